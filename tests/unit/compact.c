/* Unit tests of compacted segment generations (LOG-8, ADR 0026 step 2),
 * made here by a test decision (the scavenger's decisions come later):
 * every reader — a stream both ways, $all both ways and paged, from
 * removed positions too, single positions, the catalog, verify with the
 * chain, the index rebuilt from the log — sees exactly the surviving
 * events, at their positions; a second generation of a generation removes
 * more; a leftover .seg.gen is dropped on open and a damaged map refused.
 * Randomised: the seed is printed. */
#include "harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "store/store_int.h"

#define NSTREAMS 10 /* keep-0..4, drop-0..4 */
#define MAXEV    40000

static char dir[512];
static h_rng rng;

typedef struct mev {
    int stream;
    uint64_t version;
    int fate; /* LOG_KEEP, LOG_STUB, LOG_REMOVE */
} mev;

static mev model[MAXEV + 1]; /* by position */
static uint64_t n_pos;
static uint64_t last_ver[NSTREAMS];
static int extra_rule; /* second generation: keep-0's versions 1..99 go too */

static void stream_name(int i, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%d", i < 5 ? "keep" : "drop", i % 5);
}

static factum_store *open_dir(void)
{
    factum_options o;
    harness_small_opts(&o);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void append_random(factum_store *s, uint64_t until)
{
    while (n_pos < until) {
        int st = (int)h_below(&rng, NSTREAMS);
        size_t k = 1 + h_below(&rng, 6);
        factum_event_data e[6];
        char data[6][64];
        for (size_t j = 0; j < k; j++) {
            snprintf(data[j], sizeof data[j], "{\"p\":%" PRIu64 ",\"pad\":\"abcdefghijklmnopqrstuvwxyz\"}",
                     n_pos + 1 + j);
            e[j] = harness_event("Happened", data[j]);
        }
        char name[32];
        stream_name(st, name, sizeof name);
        factum_append_result r;
        CHECK_RC(factum_append(s, name, FACTUM_ANY, e, k, &r), 0);
        CHECK_EQ_U64(r.first_position, n_pos + 1);
        for (size_t j = 0; j < k; j++) {
            model[n_pos + 1 + j] = (mev){st, r.first_version + j, LOG_KEEP};
        }
        last_ver[st] = r.last_version;
        n_pos += k;
    }
}

/* The rule the model and the compactor share: a drop- stream keeps its
 * last event, its first as a stub, and loses the rest. */
static int fate_of(int st, uint64_t version)
{
    if (st >= 5) {
        if (version == last_ver[st]) return LOG_KEEP;
        return version == 0 ? LOG_STUB : LOG_REMOVE;
    }
    if (extra_rule && st == 0 && version < 100 && version != last_ver[st]) return version == 0 ? LOG_STUB : LOG_REMOVE;
    return LOG_KEEP;
}

static int decide(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff)
{
    (void)ctx;
    (void)lo;
    (void)ff;
    int st = -1;
    for (int i = 0; i < NSTREAMS; i++) {
        char name[32];
        stream_name(i, name, sizeof name);
        if (ev->stream_len == strlen(name) && !memcmp(ev->stream, name, ev->stream_len)) st = i;
    }
    if (st < 0 || ev->position > n_pos || model[ev->position].stream != st) return FACTUM_ECORRUPT;
    return fate_of(st, ev->version);
}

/* Compact every sealed segment below `below`; the model follows. */
static void compact_below(factum_store *s, uint64_t below, log_compact_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (uint64_t no = 0; no < below; no++) {
        log_compact_stats st;
        CHECK_RC(log_compact_write(s->log, no, decide, NULL, &st), 0);
        CHECK_RC(log_compact_swap(s->log, no), 0);
        sum->events += st.events;
        sum->kept += st.kept;
        sum->stubbed += st.stubbed;
        sum->removed += st.removed;
        sum->bytes_before += st.bytes_before;
        sum->bytes_after += st.bytes_after;
    }
    /* Positions in those segments take the rule's fate. */
    uint64_t lo;
    for (uint64_t p = 1; p <= n_pos; p++) {
        CHECK_RC(idx_posmap_get(s->idx, p, &lo), 0);
        if (lo / s->seg_size < below) model[p].fate = fate_of(model[p].stream, model[p].version);
    }
}

static int survives(uint64_t p)
{
    return p >= 1 && p <= n_pos && model[p].fate == LOG_KEEP;
}

static void check_event(const factum_event *ev, uint64_t p)
{
    char want[64];
    snprintf(want, sizeof want, "{\"p\":%" PRIu64 ",", p);
    CHECK_EQ_U64(ev->position, p);
    char name[32];
    stream_name(model[p].stream, name, sizeof name);
    CHECK(ev->stream_len == strlen(name) && !memcmp(ev->stream, name, ev->stream_len));
    CHECK_EQ_U64(ev->version, model[p].version);
    CHECK(ev->data_len > strlen(want) && !memcmp(ev->data, want, strlen(want)));
}

static int count_streams(void *ctx, const char *name, size_t len, uint64_t created)
{
    (void)name;
    (void)created;
    CHECK(len > 0);
    (*(int *)ctx)++;
    return 0;
}

static void check_reads(factum_store *s)
{
    static factum_event evs[64];
    /* $all forward, in pages of random sizes: the survivors in order. */
    uint64_t from = 1, want = 0, got_total = 0;
    while (1) {
        size_t cap = 1 + h_below(&rng, 50), n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, cap, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            do
                want++;
            while (want <= n_pos && !survives(want));
            check_event(&evs[i], want);
        }
        got_total += n;
        if (n < cap) break;
        from = next;
    }
    uint64_t expect_total = 0;
    for (uint64_t p = 1; p <= n_pos; p++)
        expect_total += (uint64_t)survives(p);
    CHECK_EQ_U64(got_total, expect_total);
    /* Backward likewise. */
    from = n_pos;
    want = n_pos + 1;
    got_total = 0;
    while (1) {
        size_t cap = 1 + h_below(&rng, 50), n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_BACKWARD, NULL, 0, evs, cap, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            do
                want--;
            while (want >= 1 && !survives(want));
            check_event(&evs[i], want);
        }
        got_total += n;
        if (n < cap || next == 0) break;
        from = next;
    }
    CHECK_EQ_U64(got_total, expect_total);
    /* From any position, removed ones too: the next (previous) survivor;
     * a single position only if it survived. */
    for (int i = 0; i < 300; i++) {
        uint64_t p = 1 + h_below(&rng, n_pos), n, q;
        size_t cnt;
        CHECK_RC(factum_read_all(s, p, FACTUM_FORWARD, NULL, 0, evs, 1, &cnt, &n), 0);
        for (q = p; q <= n_pos && !survives(q); q++) {
        }
        CHECK_EQ_U64(cnt, q <= n_pos);
        if (cnt) check_event(&evs[0], q);
        CHECK_RC(factum_read_all(s, p, FACTUM_BACKWARD, NULL, 0, evs, 1, &cnt, &n), 0);
        for (q = p; q >= 1 && !survives(q); q--) {
        }
        CHECK_EQ_U64(cnt, q >= 1);
        if (cnt) check_event(&evs[0], q);
        factum_event one;
        CHECK_RC(factum_read_position(s, p, &one), survives(p) ? 0 : FACTUM_ENOTFOUND);
        if (survives(p)) check_event(&one, p);
    }
    /* Each stream both ways: its survivors. */
    for (int st = 0; st < NSTREAMS; st++) {
        char name[32];
        stream_name(st, name, sizeof name);
        for (int back = 0; back < 2; back++) {
            uint64_t v = back ? UINT64_MAX : 0, total = 0;
            uint64_t p = back ? n_pos + 1 : 0;
            while (1) {
                size_t n;
                uint64_t next;
                CHECK_RC(factum_read_stream(s, name, v, back ? FACTUM_BACKWARD : FACTUM_FORWARD, evs, 17, &n, &next), 0);
                for (size_t i = 0; i < n; i++) {
                    if (back)
                        do
                            p--;
                        while (p >= 1 && !(survives(p) && model[p].stream == st));
                    else
                        do
                            p++;
                        while (p <= n_pos && !(survives(p) && model[p].stream == st));
                    check_event(&evs[i], p);
                }
                total += n;
                if (next == FACTUM_END || n == 0) break;
                v = next;
            }
            uint64_t expect = 0;
            for (uint64_t q = 1; q <= n_pos; q++)
                expect += survives(q) && model[q].stream == st;
            CHECK_EQ_U64(total, expect);
        }
        factum_stream_info info;
        CHECK_RC(factum_stream_get_info(s, name, &info), 0);
        CHECK_EQ_U64((uint64_t)info.last_version, last_ver[st]);
    }
    int streams = 0;
    CHECK_RC(factum_list_streams(s, 0, count_streams, &streams), 0);
    CHECK_EQ_U64(streams, NSTREAMS);
}

static void check_verify(uint64_t expect_removed, const factum_chain_head *head)
{
    factum_verify_options o = {.chain = 1, .expect = head};
    factum_verify_report r;
    CHECK_RC(factum_verify_with(dir, &o, NULL, NULL, &r), 0);
    CHECK_EQ_U64(r.damaged, 0);
    CHECK_EQ_U64(r.removed, expect_removed);
    CHECK_EQ_U64(r.events, n_pos);
    CHECK(r.receipt_checked);
    CHECK(memcmp(r.chain_head.hash, head->hash, 32) == 0);
}

static uint64_t removed_count(void)
{
    uint64_t n = 0;
    for (uint64_t p = 1; p <= n_pos; p++)
        n += model[p].fate == LOG_REMOVE;
    return n;
}

static uint64_t file_blocks(uint64_t no)
{
    char p[600];
    snprintf(p, sizeof p, "%s/log/%08" PRIu64 ".seg", dir, no);
    struct stat sb;
    return stat(p, &sb) ? 0 : (uint64_t)sb.st_blocks * 512;
}

/* A new store in dir (named `name`), its seed printed, the model reset,
 * and n events appended at random. */
static uint64_t fixed_seed; /* non-zero: this seed, not a random one */

static factum_store *fresh_store(const char *name, uint64_t n)
{
    harness_tmpdir(dir, sizeof dir, name);
    rng.s = fixed_seed ? fixed_seed : harness_seed(name);
    memset(model, 0, sizeof model);
    memset(last_ver, 0, sizeof last_ver);
    n_pos = 0;
    extra_rule = 0;
    factum_store *s = open_dir();
    if (s) append_random(s, n);
    return s;
}

static void t_compacted_reads(void)
{
    factum_store *s = fresh_store("compact", 24000);
    REQUIRE(s);
    uint64_t segs = atomic_load(&s->log->n_segs);
    CHECK(segs >= 4);
    check_reads(s);
    factum_chain_head head;
    CHECK_RC(factum_chain_get_head(s, &head), 0);

    /* An event read before the compaction: its pointers stay readable
     * (the old generation stays mapped) until retired, then read zeros. */
    factum_event held;
    CHECK_RC(factum_read_position(s, 1, &held), 0);
    char held_copy[64];
    size_t held_len = held.data_len < sizeof held_copy ? held.data_len : sizeof held_copy;
    memcpy(held_copy, held.data, held_len);

    /* Generation 1 of every sealed segment but the last two. */
    uint64_t below = segs - 2, before = file_blocks(0);
    log_compact_stats st;
    compact_below(s, below, &st);
    CHECK(!memcmp(held.data, held_copy, held_len)); /* within the grace */
    CHECK(st.removed > 0 && st.stubbed > 0 && st.kept > 0);
    CHECK(st.bytes_after < st.bytes_before);
    printf("  compacted %" PRIu64 " segments: %" PRIu64 " events, %" PRIu64 " kept, %" PRIu64 " stubs, %" PRIu64
           " removed; %" PRIu64 " -> %" PRIu64 " bytes\n",
           below, st.events, st.kept, st.stubbed, st.removed, st.bytes_before, st.bytes_after);
    CHECK_EQ_U64(st.removed, removed_count());
    check_reads(s);
    /* The old generation's file stays until retired; then its blocks go. */
    CHECK(file_blocks(0) < before);
    CHECK(log_retire(s->log, 0) == (int)below);
    static const uint8_t zeros[64];
    CHECK(!memcmp(held.data, zeros, held_len)); /* retired: zeros, not a fault */
    CHECK_EQ_U64(log_retire(s->log, 0), 0);     /* once */

    /* Appends go on; the chain head is the same one, extended. */
    append_random(s, 26000);
    CHECK_RC(factum_chain_get_head(s, &head), 0);
    check_reads(s);
    factum_store_close(s);
    check_verify(removed_count(), &head);

    /* Reopened: the index (checkpointed before the compaction) finds the
     * removed events' old offsets inside removed frames. */
    s = open_dir();
    REQUIRE(s);
    check_reads(s);
    /* Generation 2 of the first segment: more goes. */
    extra_rule = 1;
    compact_below(s, 1, &st);
    CHECK(log_seg_get(s->log, 0)->gen == 2);
    check_reads(s);
    factum_store_close(s);
    check_verify(removed_count(), &head);

    /* The index rebuilt from the log: removed positions map to removed frames. */
    char idx[600];
    snprintf(idx, sizeof idx, "%s/index", dir);
    harness_rm_rf(idx);
    s = open_dir();
    REQUIRE(s);
    check_reads(s);
    factum_chain_head h2;
    CHECK_RC(factum_chain_get_head(s, &h2), 0);
    CHECK(memcmp(h2.hash, head.hash, 32) == 0);
    factum_store_close(s);
    check_verify(removed_count(), &head);
    harness_rm_rf(dir);
}

/* A generation written but not swapped in (a crash before the rename) is
 * dropped on open; a generation whose map is damaged is refused. */
static void t_leftover_and_damage(void)
{
    factum_store *s = fresh_store("compact_dmg", 12000);
    REQUIRE(s);
    CHECK_RC(log_compact_write(s->log, 0, decide, NULL, NULL), 0);
    factum_store_close(s);
    char gen[600], seg[600];
    snprintf(gen, sizeof gen, "%s/log/00000000.seg.gen", dir);
    snprintf(seg, sizeof seg, "%s/log/00000000.seg", dir);
    CHECK(access(gen, F_OK) == 0);
    s = open_dir();
    REQUIRE(s);
    CHECK(access(gen, F_OK) != 0);
    CHECK(log_seg_get(s->log, 0)->gen == 0);
    check_reads(s);
    /* Compact for real, then damage one map entry. */
    compact_below(s, 1, &(log_compact_stats){0});
    factum_store_close(s);
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0);
    uint8_t b;
    CHECK(pread(fd, &b, 1, sb.st_size - 5) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, sb.st_size - 5) == 1);
    close(fd);
    factum_options o;
    harness_small_opts(&o);
    CHECK_RC(factum_store_open(dir, &o, &s), FACTUM_ECORRUPT);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), FACTUM_ECORRUPT);
    harness_rm_rf(dir);
}

/* A seed whose log fills a segment to its very end before a compacted one:
 * $all's step from the last event of a compacted segment then lands on the
 * next segment's offset 0, which a compacted segment maps to no frame (a
 * read failed there with FACTUM_ECORRUPT before frame_fwd skipped a
 * segment's header first). */
static void t_full_segment(void)
{
    fixed_seed = 4768848468174025207ull;
    t_compacted_reads();
    fixed_seed = 0;
}

int main(void)
{
    RUN(t_compacted_reads);
    RUN(t_full_segment);
    RUN(t_leftover_and_damage);
    return harness_done();
}
