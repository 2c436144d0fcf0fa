/* Fault test of the scavenge (SV-1..3, LOG-8): a power cut before every
 * operation that changes a file during a scavenge — each write, fdatasync,
 * file creation, rename, unlink and directory fsync — then the loss of
 * whatever was not durable (the fault layer, directory entries included).
 * Reopened, the store resumes or reruns its scavenge; afterwards the
 * surviving events are exactly those of a scavenge that was never cut, at
 * the same positions, the removed ones absent, and `factum verify --chain`
 * passes through the head from before the scavenge. Randomised tearing:
 * the seed is printed. */
#include "harness.h"

#include <unistd.h>

#include "base/base.h"
#include "io/io.h"
#include "store/store_int.h"

static char base_dir[512], dir[512];

#define NSTREAMS 4
static const char *names[NSTREAMS] = {"mc", "tb", "sd", "live"};

typedef struct listing {
    uint64_t n;
    uint64_t pos[20000];
    uint32_t stream[20000];
    uint64_t version[20000];
} listing;

static listing ref, got;
static uint64_t base_last;

static factum_store *open_at(const char *path, io_env *io)
{
    factum_options o;
    harness_small_opts(&o);
    o.scavenge_grace_ms = 0;
    factum_store *s = NULL;
    int rc = io ? store_open_io(path, &o, io, &s) : factum_store_open(path, &o, &s);
    if (rc) fprintf(stderr, "open %s: %s\n", path, factum_strerror(rc));
    return s;
}

static void list_all(factum_store *s, listing *l)
{
    static factum_event evs[256];
    l->n = 0;
    uint64_t from = 1;
    while (1) {
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 256, &n, &next), 0);
        for (size_t i = 0; i < n && evs[i].position <= base_last && l->n < 20000; i++) {
            uint32_t st = 99;
            for (uint32_t k = 0; k < NSTREAMS; k++)
                if (evs[i].stream_len == strlen(names[k]) && !memcmp(evs[i].stream, names[k], evs[i].stream_len))
                    st = k;
            l->pos[l->n] = evs[i].position;
            l->stream[l->n] = st;
            l->version[l->n] = evs[i].version;
            l->n++;
        }
        if (n < 256) break;
        from = next;
    }
}

static void build_base(void)
{
    harness_tmpdir(base_dir, sizeof base_dir, "scavcut_base");
    factum_store *s = open_at(base_dir, NULL);
    REQUIRE(s);
    CHECK_RC(factum_set_stream_metadata(s, "mc", FACTUM_ANY, "{\"$maxCount\":3}", 15, NULL), 0);
    char pad[1200];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    for (int i = 0; i < 2400; i++) {
        char json[1300];
        snprintf(json, sizeof json, "{\"i\":%d,\"pad\":\"%s\"}", i, pad);
        factum_event_data e = harness_event("Happened", json);
        CHECK_RC(factum_append(s, names[i % NSTREAMS], FACTUM_ANY, &e, 1, NULL), 0);
    }
    CHECK_RC(factum_set_stream_metadata(s, "tb", FACTUM_ANY, "{\"$tb\":500}", 11, NULL), 0);
    CHECK_RC(factum_delete_stream(s, "sd", FACTUM_ANY, NULL), 0);
    base_last = atomic_load(&s->committed_pos);
    CHECK(atomic_load(&s->log->n_segs) >= 3);
    factum_store_close(s);
}

static void copy_base(void)
{
    char cmd[1200];
    harness_rm_rf(dir);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", base_dir, dir);
    REQUIRE(system(cmd) == 0);
}

/* A full scavenge of an intact copy: what every cut run must end with. */
static void build_reference(factum_chain_head *head)
{
    copy_base();
    factum_store *s = open_at(dir, NULL);
    REQUIRE(s);
    CHECK_RC(factum_chain_get_head(s, head), 0);
    factum_scavenge_options so = {.seal = 1};
    CHECK_RC(factum_scavenge_start(s, &so, NULL), 0);
    factum_scavenge_status st;
    CHECK_RC(factum_scavenge_wait(s, NULL, &st), 0);
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
    CHECK(st.compacted >= 2);
    list_all(s, &ref);
    CHECK(ref.n > 0 && ref.n < base_last);
    factum_store_close(s);
}

static void t_cut_everywhere(void)
{
    uint64_t seed = harness_seed("scavenge_cut");
    h_rng r = {seed};
    build_base();
    harness_tmpdir(dir, sizeof dir, "scavcut");
    factum_chain_head head;
    build_reference(&head);
    printf("  %" PRIu64 " events; %" PRIu64 " survive a scavenge\n", base_last, ref.n);
    uint64_t rounds = 0, resumed = 0;
    for (uint64_t k = 1;; k++) {
        copy_base();
        io_fault *f = io_fault_new(h_rand(&r));
        factum_store *s = open_at(dir, io_fault_env(f));
        REQUIRE(s);
        REQUIRE(io_fault_watch(f, dir) == 0);
        io_fault_cut(f, k);
        factum_scavenge_options so = {.seal = 1};
        if (factum_scavenge_start(s, &so, NULL) == 0) factum_scavenge_wait(s, NULL, NULL);
        int cut = io_fault_ops(f) >= k;
        store_abandon(s);
        int mode = (int)h_below(&r, 3);
        CHECK_RC(io_fault_power_loss(f, mode), 0);
        io_fault_free(f);

        s = open_at(dir, NULL);
        REQUIRE(s);
        char chk[600];
        snprintf(chk, sizeof chk, "%s/scavenge.chk", dir);
        factum_scavenge_status st;
        if (factum_scavenge_wait(s, NULL, &st) == 0) { /* resumed at the open (SV-3) */
            resumed++;
            CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
        }
        CHECK(access(chk, F_OK) != 0);
        /* Every segment holds one whole generation: every survivor of the
         * reference is there, and whatever else is, is the base's. */
        list_all(s, &got);
        size_t j = 0;
        for (uint64_t i = 0; i < got.n && j < ref.n; i++)
            if (got.pos[i] == ref.pos[j]) {
                CHECK(got.stream[i] == ref.stream[j] && got.version[i] == ref.version[j]);
                j++;
            }
        CHECK_EQ_U64(j, ref.n);
        /* Whatever the cut left undone, one more scavenge does. */
        CHECK_RC(factum_scavenge_start(s, &so, NULL), 0);
        CHECK_RC(factum_scavenge_wait(s, NULL, &st), 0);
        CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
        list_all(s, &got);
        CHECK_EQ_U64(got.n, ref.n);
        int same = got.n == ref.n && !memcmp(got.pos, ref.pos, ref.n * sizeof ref.pos[0]) &&
                   !memcmp(got.stream, ref.stream, ref.n * sizeof ref.stream[0]) &&
                   !memcmp(got.version, ref.version, ref.n * sizeof ref.version[0]);
        if (!same) printf("  cut before operation %" PRIu64 " (mode %d): survivors differ\n", k, mode);
        CHECK(same);
        factum_store_close(s);
        factum_verify_options vo = {.chain = 1, .expect = &head};
        factum_verify_report vr;
        CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
        CHECK(vr.receipt_checked);
        rounds++;
        if (!cut || h_failed) break; /* the scavenge ran to its end before operation k */
    }
    printf("  %" PRIu64 " cut points (every operation that changes a file), %" PRIu64 " resumed at open\n", rounds,
           resumed);
    CHECK(rounds > 20);
    harness_rm_rf(dir);
    harness_rm_rf(base_dir);
}

int main(void)
{
    RUN(t_cut_everywhere);
    return harness_done();
}
