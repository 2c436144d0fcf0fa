/* Unit tests of src/index: tables (TBL-1..3) written and searched in both
 * directions with repeated keys, a damaged page detected, the memtable,
 * flushes and merges (IDX-1..4), reopening from the manifest. */
#include "harness.h"

#include <fcntl.h>

#include "base/base.h"
#include "index/index.h"
#include "index/memtable.h"
#include "index/table.h"

static char dir[512];

typedef struct gen {
    uint64_t i, n;
} gen;

/* Entries (i / 3, i % 3 * 10, i), i.e. keys repeat in k1. */
static int gen_next(void *ctx, idx_entry *e)
{
    gen *g = ctx;
    if (g->i >= g->n) return 0;
    *e = (idx_entry){g->i / 3, (g->i % 3) * 10, g->i + 1};
    g->i++;
    return 1;
}

static void t_table(void)
{
    harness_tmpdir(dir, sizeof dir, "tbl");
    mkdir(dir, 0755);
    uint64_t sizes[] = {1, 169, 170, 171, 5000, 200000};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        uint64_t n = sizes[si];
        gen g = {0, n};
        CHECK_RC(tbl_write(io_posix(), dir, "t.tbl", 0, 1, n, gen_next, &g, 1, 1, n), 0);
        char p[600];
        snprintf(p, sizeof p, "%s/t.tbl", dir);
        tbl *t;
        CHECK_RC(tbl_open(io_posix(), p, &t), 0);
        REQUIRE(t);
        CHECK_EQ_U64(t->n_entries, n);
        CHECK_RC(tbl_verify(t), 0);
        /* Every present key is found exactly; absent keys position at the next. */
        for (uint64_t i = 0; i < n; i += (n > 1000 ? 97 : 1)) {
            tbl_cur c;
            idx_entry e;
            CHECK(tbl_seek(t, i / 3, (i % 3) * 10, &c) == 1);
            tbl_cur_get(&c, &e);
            CHECK(e.v == i + 1);
            int r = tbl_seek(t, i / 3, (i % 3) * 10 + 1, &c);
            if (i + 1 < n) {
                CHECK(r == 1);
                tbl_cur_get(&c, &e);
                CHECK(e.v == i + 2);
            } else {
                CHECK(r == 0);
            }
        }
        /* A full walk forward and back sees every entry in order. */
        tbl_cur c;
        uint64_t cnt = 0, last = 0;
        for (int r = tbl_seek(t, 0, 0, &c); r == 1; r = tbl_next(&c)) {
            idx_entry e;
            tbl_cur_get(&c, &e);
            CHECK(e.v == last + 1);
            last = e.v;
            cnt++;
        }
        CHECK_EQ_U64(cnt, n);
        cnt = 0;
        for (int r = tbl_last(t, &c); r == 1; r = tbl_prev(&c))
            cnt++;
        CHECK_EQ_U64(cnt, n);
        /* The Bloom filter never denies a present key and denies most others. */
        int fp = 0;
        for (uint64_t k = 0; k < 1000; k++) {
            CHECK(tbl_may_contain(t, k % ((n + 2) / 3)));
            fp += tbl_may_contain(t, (1ull << 40) + k);
        }
        CHECK(n < 100 || fp < 50);
        tbl_unref(t);
    }
    /* A flipped byte in a leaf page is found (TBL-2). */
    char p[600];
    snprintf(p, sizeof p, "%s/t.tbl", dir);
    int fd = open(p, O_RDWR);
    uint8_t b;
    CHECK(pread(fd, &b, 1, 4096 * 3 + 100) == 1);
    b ^= 1;
    CHECK(pwrite(fd, &b, 1, 4096 * 3 + 100) == 1);
    close(fd);
    tbl *t;
    CHECK_RC(tbl_open(io_posix(), p, &t), 0);
    if (t) {
        CHECK_RC(tbl_verify(t), FACTUM_ECORRUPT);
        tbl_cur c;
        int r = 0;
        for (r = tbl_seek(t, 0, 0, &c); r == 1; r = tbl_next(&c)) {
        }
        CHECK_RC(r, FACTUM_ECORRUPT);
        tbl_unref(t);
    }
    /* A damaged header is refused. */
    fd = open(p, O_RDWR);
    CHECK(pwrite(fd, "X", 1, 30) == 1);
    close(fd);
    CHECK_RC(tbl_open(io_posix(), p, &t), FACTUM_ECORRUPT);
    harness_rm_rf(dir);
}

static void t_memtable_order(void)
{
    memtable *m = mt_new();
    /* Two streams with one hash interleave; the vector stays sorted. */
    idx_entry e[6] = {{7, 5, 100}, {7, 0, 101}, {7, 6, 102}, {7, 1, 103}, {7, 1, 104}, {9, 0, 105}};
    const idx_entry *ents[IDX_KINDS] = {e, NULL, NULL};
    size_t n[IDX_KINDS] = {6, 0, 0};
    CHECK_RC(mt_add(m, ents, n), 0);
    const mt_stream *s = mt_stream_find(m, 7);
    REQUIRE(s && s->n == 5);
    CHECK(s->kv[0].k2 == 0 && s->kv[1].k2 == 1 && s->kv[1].v == 103 && s->kv[2].v == 104 && s->kv[4].k2 == 6);
    idx_entry *sorted;
    size_t ns;
    CHECK_RC(mt_sorted(m, IDX_STREAM, &sorted, &ns), 0);
    CHECK(ns == 6 && sorted[5].k1 == 9);
    free(sorted);
    mt_unref(m);
}

static void t_index_flush_merge(void)
{
    harness_tmpdir(dir, sizeof dir, "idx");
    idx_config cfg = {100, 0, NULL, NULL, NULL, NULL};
    findex *x;
    idx_checkpoint cp;
    REQUIRE(idx_open(io_posix(), dir, &cfg, &x, &cp) == 0);
    CHECK(cp.covered_lo == 0 && cp.next_position == 1);
    REQUIRE(idx_start(x) == 0);
    /* 50 streams, 40 versions each, added in batches of 10 entries. */
    uint64_t pos = 1;
    for (int round = 0; round < 200; round++) {
        idx_entry st[10], id[10], cat[10];
        size_t n[IDX_KINDS] = {10, 10, 0};
        uint64_t los[10];
        for (int i = 0; i < 10; i++) {
            uint64_t sidx = (uint64_t)(round % 5) * 10 + (uint64_t)i, ver = (uint64_t)round / 5;
            uint64_t lo = 4096 + pos * 8;
            st[i] = (idx_entry){base_hash64(&sidx, 8), ver, lo};
            id[i] = (idx_entry){pos, ~pos, lo};
            if (ver == 0) cat[n[IDX_CAT]++] = (idx_entry){pos, st[i].k1, lo};
            los[i] = lo;
            pos++;
        }
        const idx_entry *e[IDX_KINDS] = {st, id, cat};
        CHECK_RC(idx_posmap_put(x, pos - 10, los, 10), 0);
        CHECK_RC(idx_add(x, e, n, 4096 + pos * 8, pos), 0);
    }
    CHECK_RC(idx_flush_sync(x), 0);
    idx_stats stt;
    /* Merges run in the background: give them a moment. */
    for (int i = 0; i < 500; i++) {
        idx_get_stats(x, &stt);
        if (stt.tables < 30) break;
        usleep(10000);
    }
    CHECK(stt.flushes >= 10);
    CHECK(stt.tables < 30); /* merges keep the count down */
    /* Lookups see everything, in order, both ways. */
    for (uint64_t sidx = 0; sidx < 50; sidx++) {
        idx_kv kv[64];
        size_t n;
        uint64_t h = base_hash64(&sidx, 8);
        CHECK_RC(idx_stream_range(x, h, 0, 0, kv, 64, &n), 0);
        CHECK_EQ_U64(n, 40);
        for (size_t i = 0; i < n; i++)
            CHECK(kv[i].k2 == i);
        CHECK_RC(idx_stream_range(x, h, 25, 1, kv, 64, &n), 0);
        CHECK(n == 26 && kv[0].k2 == 25 && kv[25].k2 == 0);
    }
    CHECK_EQ_U64(idx_cat_count(x), 50);
    uint8_t idb[16];
    base_put64(idb, 77);
    base_put64(idb + 8, ~77ull);
    uint64_t los[4];
    size_t nl;
    CHECK_RC(idx_id_lookup(x, idb, los, 4, &nl), 0);
    CHECK(nl == 1 && los[0] == 4096 + 77 * 8);
    uint64_t lo;
    CHECK_RC(idx_posmap_get(x, 1999, &lo), 0);
    CHECK_EQ_U64(lo, 4096 + 1999 * 8);
    CHECK_RC(idx_posmap_get(x, 5000, &lo), FACTUM_ENOTFOUND);
    CHECK_RC(idx_close(x, 1), 0);
    /* Reopen: the manifest covers everything. */
    REQUIRE(idx_open(io_posix(), dir, &cfg, &x, &cp) == 0);
    CHECK_EQ_U64(cp.next_position, 2001);
    CHECK_EQ_U64(idx_cat_count(x), 50);
    char what[256];
    CHECK_RC(idx_verify_tables(x, what, sizeof what), 0);
    idx_close(x, 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_table);
    RUN(t_memtable_order);
    RUN(t_index_flush_merge);
    return harness_done();
}
