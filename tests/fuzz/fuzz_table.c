/* Fuzz target: an index table file (src/index/table.c) on any bytes,
 * opened through the code the store uses (tbl_open of a path through the
 * posix io env: the input is written to a memfd, or to a file under
 * $FACTUM_TEST_TMP where there is no /proc). Each input is tried twice: as
 * it is, and with its header and page CRCs made valid, so that the fuzzer
 * reaches the structure behind the checksums (what a writer bug, not a
 * torn sector, would leave).
 *
 * Whatever the bytes, opening yields a table, FACTUM_ECORRUPT or
 * FACTUM_EFORMAT; lookups, iteration both ways and tbl_verify return their
 * documented results and never read outside the mapping. And when
 * tbl_verify accepts the table, the table is what its readers assume:
 * every page checked (TBL-2, the verified-page bitmap full), entries sorted
 * (TBL-1) and counted, every entry found by tbl_seek at its first
 * occurrence and by the Bloom filter of its partition (TBL-4), and every
 * other key's seek lands on its lower bound. Seeds: corpus/table, written
 * by gen_index_corpus. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "index/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES (1u << 17) /* entries compared in full; larger tables are sampled */
#define ORACLE_KEYS 2048       /* entries looked up one by one */

static int file_fd = -1;
static char file_path[4200];

static void file_remove(void)
{
    unlink(file_path);
}

/* The file every input is written to, made once. */
static int file_open(void)
{
    if (file_fd >= 0) return 0;
    int fd = memfd_create("fuzz_table", MFD_CLOEXEC);
    if (fd >= 0) {
        snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", fd);
        if (access(file_path, R_OK) == 0) {
            file_fd = fd;
            return 0;
        }
        close(fd);
    }
    const char *tmp = getenv("FACTUM_TEST_TMP");
    if (!tmp || !*tmp) tmp = "/tmp";
    mkdir(tmp, 0755);
    snprintf(file_path, sizeof file_path, "%s/fuzz_table-%d.tbl", tmp, (int)getpid());
    file_fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (file_fd < 0) return -1;
    atexit(file_remove);
    return 0;
}

static void file_put(const uint8_t *p, size_t n)
{
    if (ftruncate(file_fd, 0)) abort();
    for (size_t off = 0; off < n;) {
        ssize_t w = pwrite(file_fd, p + off, n - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
}

static int cmp_key(uint64_t a1, uint64_t a2, uint64_t b1, uint64_t b2)
{
    return a1 != b1 ? (a1 < b1 ? -1 : 1) : a2 != b2 ? (a2 < b2 ? -1 : 1) : 0;
}

/* The cursor points at a checked leaf inside the mapping. */
static void check_cur(const tbl *t, const tbl_cur *c)
{
    if (c->leaf >= t->n_leaves || c->count == 0 || c->count > TBL_LEAF_CAP || c->idx >= c->count ||
        c->page != t->map + (1 + c->leaf) * TBL_PAGE)
        abort();
}

static idx_entry *ents; /* the forward walk */

/* Index of the first entry >= (k1, k2) among ents[0..n). */
static uint64_t lower_bound(uint64_t n, uint64_t k1, uint64_t k2)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cmp_key(ents[mid].k1, ents[mid].k2, k1, k2) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Seek (k1, k2); when the table verified (all entries in ents), the entry
 * found must be the first one >= the key. */
static void probe(tbl *t, uint64_t k1, uint64_t k2, int verified, uint64_t n)
{
    int mc = tbl_may_contain(t, k1);
    if (mc != 0 && mc != 1) abort();
    tbl_cur c;
    int r = tbl_seek(t, k1, k2, &c);
    if (r != 1 && r != 0 && r != FACTUM_ECORRUPT) abort();
    if (r == 1) check_cur(t, &c);
    if (!verified) return;
    uint64_t want = lower_bound(n, k1, k2);
    if (r != (want < n)) abort();
    if (r == 1 && (c.leaf * TBL_LEAF_CAP + c.idx != want)) abort();
    if (want < n && ents[want].k1 == k1 && !mc) abort(); /* a Bloom false negative */
}

static void run(const uint8_t *file, size_t size)
{
    file_put(file, size);
    tbl *t = NULL;
    int rc = tbl_open(io_posix(), file_path, &t);
    if (rc != 0 && rc != FACTUM_ECORRUPT && rc != FACTUM_EFORMAT && rc != -ENOMEM) abort();
    if (rc) return;
    /* The header, as checked on open, stays inside the file. */
    uint64_t pages = t->map_len / TBL_PAGE;
    if (t->map_len != size || t->n_entries > t->n_leaves * TBL_LEAF_CAP || 1 + t->n_leaves > pages ||
        t->levels > TBL_MAX_LEVELS)
        abort();
    for (uint32_t l = 0; l < t->levels; l++)
        if (t->level_first[l] + t->level_pages[l] > pages) abort();
    if (t->bloom_pages &&
        (t->bloom_parts == 0 || t->bloom_first + t->bloom_pages > pages ||
         t->bloom_first + (t->bloom_parts - 1) * t->bloom_part_pages >= t->bloom_first + t->bloom_pages ||
         t->bloom_blocks_full == 0 || t->bloom_blocks_last == 0))
        abort();
    if (t->bloom_parts > 1 &&
        (t->bidx_first + t->bidx_pages > pages || t->bidx_pages * TBL_BIDX_CAP < t->bloom_parts))
        abort();

    /* Forward and backward walks. */
    uint64_t n = 0;
    int complete = 1;
    tbl_cur c;
    int r = tbl_seek(t, 0, 0, &c);
    while (r == 1) {
        check_cur(t, &c);
        if (n < MAX_ENTRIES) tbl_cur_get(&c, &ents[n]);
        n++;
        if (n > t->n_leaves * TBL_LEAF_CAP) abort();
        r = tbl_next(&c);
    }
    if (r != 0 && r != FACTUM_ECORRUPT) abort();
    if (r) complete = 0;
    uint64_t back = 0;
    r = tbl_last(t, &c);
    while (r == 1) {
        check_cur(t, &c);
        back++;
        if (back > t->n_leaves * TBL_LEAF_CAP) abort();
        if (complete && back <= n && n <= MAX_ENTRIES) {
            idx_entry e;
            tbl_cur_get(&c, &e);
            const idx_entry *f = &ents[n - back];
            if (e.k1 != f->k1 || e.k2 != f->k2 || e.v != f->v) abort();
        }
        r = tbl_prev(&c);
    }
    if (r != 0 && r != FACTUM_ECORRUPT) abort();

    int v = tbl_verify(t);
    if (v != 0 && v != FACTUM_ECORRUPT) abort();
    int verified = v == 0;
    if (verified) {
        /* What verification promises (TBL-1, TBL-2). */
        if (!complete || r != 0 || n != t->n_entries || back != n) abort();
        for (uint64_t no = 1; no < pages; no++)
            if (!(atomic_load(&t->verified[no / 64]) & (1ull << (no % 64)))) abort();
        for (uint64_t i = 1; i < n && i < MAX_ENTRIES; i++)
            if (cmp_key(ents[i - 1].k1, ents[i - 1].k2, ents[i].k1, ents[i].k2) > 0) abort();
        if (n > MAX_ENTRIES) verified = 0; /* no full copy to compare with */
    }

    /* Lookups: entries of the walk (present), their neighbours (mostly
     * absent), the ends of the key space, and words of the input. */
    uint64_t have = n < MAX_ENTRIES ? n : MAX_ENTRIES;
    uint64_t step = have > ORACLE_KEYS ? have / ORACLE_KEYS : 1;
    for (uint64_t i = 0; i < have; i += step) {
        idx_entry e = ents[i];
        probe(t, e.k1, e.k2, verified, n);
        probe(t, e.k1, e.k2 + 1, verified, n);
        probe(t, e.k1 + 1, 0, verified, n);
        probe(t, e.k1 - 1, UINT64_MAX, verified, n);
    }
    probe(t, 0, 0, verified, n);
    probe(t, UINT64_MAX, UINT64_MAX, verified, n);
    for (size_t off = 16; off + 16 <= size && off < 64 * 1024; off += 4096 + 8)
        probe(t, base_get64(file + off), base_get64(file + off + 8), verified, n);
    tbl_unref(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ents && !(ents = malloc(MAX_ENTRIES * sizeof *ents))) return 0;
    if (file_open()) abort(); /* nowhere to put the file: say so, not pass */
    run(data, size);
    /* Again with valid checksums: the header's (where its version puts
     * it) and every page's. */
    if (size >= TBL_PAGE) {
        uint8_t *p = malloc(size);
        if (!p) return 0;
        memcpy(p, data, size);
        uint32_t crc_at = base_get32(p + 8) >= 2 ? 248 : 216;
        base_put32(p + crc_at, base_crc32c(0, p, crc_at));
        for (size_t off = TBL_PAGE; off + TBL_PAGE <= size; off += TBL_PAGE)
            base_put32(p + off, base_crc32c(0, p + off + 4, TBL_PAGE - 4));
        if (memcmp(p, data, size)) run(p, size);
        free(p);
    }
    return 0;
}
