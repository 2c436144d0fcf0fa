/* Fault test of the archive tier (LOG-9, AR-1..4): a power cut before every
 * operation that changes a file while the archiver copies and drops
 * segments, a sealing scavenge then compacts them (in the archive, and a
 * local one's archived copy replaced), and the archiver runs again — each
 * write, fdatasync, file creation, rename, unlink and directory fsync, in
 * the data directory and in the archive — then the loss of whatever was not
 * durable (directory entries included). Reopened, every segment is found in
 * one valid place; every event a cut-free run keeps is there, with its
 * data, at its position; one more scavenge and pass end exactly where the
 * cut-free run did; `factum verify --chain` passes through the head from
 * before. Randomised tearing: the seed is printed. */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "io/io.h"
#include "store/store_int.h"

static char base_dir[512], dir[512], adir[600];

#define NSTREAMS 4
static const char *names[NSTREAMS] = {"mc", "tb", "keep", "live"};
#define MAXL 20000

typedef struct listing {
    uint64_t n;
    uint64_t pos[MAXL];
    uint32_t stream[MAXL], crc[MAXL];
    uint64_t version[MAXL];
} listing;

static listing ref, got;
static uint64_t base_last;

static factum_store *open_at(const char *path, io_env *io, int with_archive)
{
    factum_options o;
    harness_small_opts(&o);
    o.scavenge_grace_ms = 0;
    if (with_archive) {
        o.archive_dir = adir;
        o.archive_retain_bytes = 0;
        o.archive_retain_ms = 0;
        o.archive_interval_ms = 0;
    }
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
        for (size_t i = 0; i < n && evs[i].position <= base_last && l->n < MAXL; i++) {
            uint32_t st = 99;
            for (uint32_t k = 0; k < NSTREAMS; k++)
                if (evs[i].stream_len == strlen(names[k]) && !memcmp(evs[i].stream, names[k], evs[i].stream_len))
                    st = k;
            l->pos[l->n] = evs[i].position;
            l->stream[l->n] = st;
            l->version[l->n] = evs[i].version;
            l->crc[l->n] = base_crc32c(0, evs[i].data, evs[i].data_len);
            l->n++;
        }
        if (n < 256) break;
        from = next;
    }
}

static void build_base(void)
{
    harness_tmpdir(base_dir, sizeof base_dir, "archcut_base");
    factum_store *s = open_at(base_dir, NULL, 0);
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
    base_last = atomic_load(&s->committed_pos);
    CHECK(atomic_load(&s->log->n_segs) >= 3);
    factum_store_close(s);
}

static void copy_base(void)
{
    char cmd[1300];
    harness_rm_rf(dir);
    harness_rm_rf(adir);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", base_dir, dir);
    REQUIRE(system(cmd) == 0);
    REQUIRE(mkdir(adir, 0755) == 0);
}

/* Archive, scavenge (sealing), archive again. */
static void work(factum_store *s)
{
    if (factum_archive_run(s, NULL)) return;
    factum_scavenge_options so = {.seal = 1};
    factum_scavenge_status st;
    if (factum_scavenge_start(s, &so, NULL) || factum_scavenge_wait(s, NULL, &st) ||
        st.state != FACTUM_SCAVENGE_COMPLETED)
        return;
    factum_archive_run(s, NULL);
}

static void build_reference(factum_chain_head *head)
{
    copy_base();
    factum_store *s = open_at(dir, NULL, 1);
    REQUIRE(s);
    CHECK_RC(factum_chain_get_head(s, head), 0);
    work(s);
    factum_archive_status as;
    CHECK_RC(factum_archive_get_status(s, &as), 0);
    CHECK(as.archive_only >= 3);
    CHECK_EQ_U64(as.last_error, 0);
    list_all(s, &ref);
    CHECK(ref.n > 0 && ref.n < base_last);
    factum_store_close(s);
}

static int same(const listing *a, const listing *b)
{
    return a->n == b->n && !memcmp(a->pos, b->pos, a->n * sizeof a->pos[0]) &&
           !memcmp(a->stream, b->stream, a->n * sizeof a->stream[0]) &&
           !memcmp(a->version, b->version, a->n * sizeof a->version[0]) &&
           !memcmp(a->crc, b->crc, a->n * sizeof a->crc[0]);
}

static void t_cut_everywhere(void)
{
    uint64_t seed = harness_seed("archive_cut");
    h_rng r = {seed};
    build_base();
    harness_tmpdir(dir, sizeof dir, "archcut");
    snprintf(adir, sizeof adir, "%s.arch", dir);
    factum_chain_head head;
    build_reference(&head);
    printf("  %" PRIu64 " events; %" PRIu64 " survive\n", base_last, ref.n);
    uint64_t rounds = 0;
    for (uint64_t k = 1;; k++) {
        copy_base();
        io_fault *f = io_fault_new(h_rand(&r));
        factum_store *s = open_at(dir, io_fault_env(f), 1);
        REQUIRE(s);
        REQUIRE(io_fault_watch(f, dir) == 0);
        REQUIRE(io_fault_watch(f, adir) == 0);
        io_fault_cut(f, k);
        work(s);
        int cut = io_fault_ops(f) >= k;
        store_abandon(s);
        int mode = (int)h_below(&r, 3);
        CHECK_RC(io_fault_power_loss(f, mode), 0);
        io_fault_free(f);

        /* Every segment in one valid place: the open finds them all. */
        s = open_at(dir, NULL, 1);
        REQUIRE(s);
        factum_scavenge_wait(s, NULL, NULL); /* one resumed at the open (SV-3) */
        list_all(s, &got);
        size_t j = 0;
        for (uint64_t i = 0; i < got.n && j < ref.n; i++)
            if (got.pos[i] == ref.pos[j]) {
                CHECK(got.stream[i] == ref.stream[j] && got.version[i] == ref.version[j] &&
                      got.crc[i] == ref.crc[j]);
                j++;
            }
        CHECK_EQ_U64(j, ref.n);
        /* What the cut left undone, one more round does. */
        work(s);
        list_all(s, &got);
        int eq = same(&got, &ref);
        if (!eq) printf("  cut before operation %" PRIu64 " (mode %d): survivors differ\n", k, mode);
        CHECK(eq);
        factum_archive_status as;
        CHECK_RC(factum_archive_get_status(s, &as), 0);
        CHECK_EQ_U64(as.last_error, 0);
        CHECK_EQ_U64(as.local_only, 0);
        factum_store_close(s);
        factum_verify_options vo = {.chain = 1, .expect = &head};
        factum_verify_report vr;
        CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
        CHECK(vr.receipt_checked);
        rounds++;
        if (!cut || h_failed) break; /* the work ran to its end before operation k */
    }
    printf("  %" PRIu64 " cut points (every operation that changes a file)\n", rounds);
    CHECK(rounds > 40);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
    harness_rm_rf(base_dir);
}

int main(void)
{
    RUN(t_cut_everywhere);
    return harness_done();
}
