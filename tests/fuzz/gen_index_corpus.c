/* Writes the seed corpora of fuzz_manifest and fuzz_table with the library
 * itself, into <corpus>/manifest and <corpus>/table:
 *   manifests  of real stores (a few events; thousands of events flushed
 *              and merged by small memtables), the largest the format
 *              allows (IDX_MAX_TABLES tables of each kind, names of
 *              IDX_NAME_MAX bytes), damaged copies (cut, bit flips) and
 *              copies with a valid CRC over bad contents (newer version,
 *              an id twice, a table the next flush would overwrite, ...);
 *   tables     empty, one entry, one full leaf, two leaves, repeated keys,
 *              format 1, format 2 in several Bloom partitions (a small
 *              partition size through the test hook) with runs of one key
 *              across partitions and a last partition of one entry, a
 *              catalog table without a filter, a table of two interior
 *              levels (the deepest that stays near 1 MiB: 256 leaves, a
 *              catalog), the smallest table of each kind of a real store,
 *              and damaged copies (cut, bits flipped in the header, an
 *              interior page and the partition index).
 * A table of more than 2^20 entries (several partitions at the default
 * size) would take 25 MiB: not a seed; the unit tests write one.
 * Usage: gen_index_corpus tests/fuzz/corpus. Rewrites the files it names
 * and leaves the others (those fuzzing added). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "base/base.h"
#include "factum.h"
#include "index/manifest.h"
#include "index/table.h"

static char out_manifest[4096], out_table[4096], work[4096];

static void die(const char *what, int rc)
{
    fprintf(stderr, "gen_index_corpus: %s: %s\n", what, factum_strerror(rc));
    exit(1);
}

static void put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) die(path, -errno);
    printf("  %s (%zu bytes)\n", path, n);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    uint8_t *b;
    int rc = io_read_file(io_posix(), path, 64u << 20, &b, n);
    if (rc) die(path, rc);
    return b;
}

/* The file, cut at n bytes and with bits flipped at each offset of flips
 * (0-terminated list; an offset past the end is skipped). */
static void variants(const char *dir, const char *name, const uint8_t *p, size_t n, const size_t *cuts,
                     const size_t *flips)
{
    char v[512];
    for (; *cuts; cuts++)
        if (*cuts < n) {
            snprintf(v, sizeof v, "%s-cut%zu", name, *cuts);
            put(dir, v, p, *cuts);
        }
    uint8_t *q = malloc(n);
    if (!q) die("malloc", -ENOMEM);
    for (; *flips; flips++)
        if (*flips < n) {
            memcpy(q, p, n);
            q[*flips] ^= 0x04;
            snprintf(v, sizeof v, "%s-flip%zu", name, *flips);
            put(dir, v, q, n);
        }
    free(q);
}

/* ---- manifests ------------------------------------------------------ */

/* The text with its crc line made valid again. */
static void put_with_crc(const char *name, const char *body)
{
    base_buf b = {0};
    if (base_buf_printf(&b, "%s", body) || base_buf_printf(&b, "crc %08x\n", base_crc32c(0, b.data, b.len)))
        die("buf", -ENOMEM);
    put(out_manifest, name, b.data, b.len);
    base_buf_free(&b);
}

/* A store of `events` events over `streams` streams with memtables of
 * memtable_entries; returns its directory (static). */
static const char *make_store(const char *name, int events, int streams, size_t memtable_entries)
{
    static char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", work, name);
    harness_rm_rf(dir);
    factum_options o;
    factum_options_init(&o);
    o.segment_size = 1u << 20;
    o.memtable_entries = memtable_entries;
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) die(dir, rc);
    for (int i = 0; i < events; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "stream-%d", i % streams);
        factum_event_data e = {.type = "Happened", .has_id = 1, .data = "{}", .data_len = 2};
        base_put64(e.id, 0x1000 + (uint64_t)i);
        base_put64(e.id + 8, 0xfac7 * (uint64_t)i);
        factum_append_result r;
        if ((rc = factum_append(s, stream, FACTUM_ANY, &e, 1, &r))) die("append", rc);
    }
    if ((rc = factum_store_close(s))) die("close", rc);
    return dir;
}

static void manifests(void)
{
    const char *small = make_store("small", 5, 2, 1000);
    char p[8192];
    snprintf(p, sizeof p, "%s/index/MANIFEST", small);
    size_t n;
    uint8_t *m = slurp(p, &n);
    put(out_manifest, "store-small", m, n);
    free(m);

    const char *merged = make_store("merged", 3000, 40, 100);
    snprintf(p, sizeof p, "%s/index/MANIFEST", merged);
    m = slurp(p, &n);
    put(out_manifest, "store-merged", m, n);
    size_t cuts[] = {1, 14, n / 3, n / 2, n - 14, n - 13, n - 1, 0};
    size_t flips[] = {0, 13, 20, 40, 60, n / 2, n - 12, n - 3, n - 2, 0};
    variants(out_manifest, "store-merged", m, n, cuts, flips);
    /* Its smallest table of each kind, as real store tables (the table
     * corpus). */
    snprintf(p, sizeof p, "%s/index", merged);
    DIR *d = opendir(p);
    if (!d) die(p, -errno);
    struct dirent *de;
    char best[IDX_KINDS][300] = {{0}};
    off_t best_size[IDX_KINDS] = {0};
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || l >= sizeof best[0] || strcmp(de->d_name + l - 4, ".tbl")) continue;
        int k = de->d_name[0] == 's' ? 0 : de->d_name[0] == 'i' ? 1 : 2;
        char tp[8600];
        struct stat st;
        snprintf(tp, sizeof tp, "%s/%s", p, de->d_name);
        if (stat(tp, &st)) die(tp, -errno);
        if (!best[k][0] || st.st_size < best_size[k] ||
            (st.st_size == best_size[k] && strcmp(de->d_name, best[k]) < 0)) {
            snprintf(best[k], sizeof best[k], "%s", de->d_name);
            best_size[k] = st.st_size;
        }
    }
    closedir(d);
    for (int k = 0; k < IDX_KINDS; k++) {
        if (!best[k][0]) die("no table of a kind", FACTUM_ECORRUPT);
        char tp[sizeof p + sizeof best + 2], nm[32];
        snprintf(tp, sizeof tp, "%s/%s", p, best[k]);
        size_t tn;
        uint8_t *t = slurp(tp, &tn);
        snprintf(nm, sizeof nm, "store-%c", idx_kind_char(k));
        put(out_table, nm, t, tn);
        free(t);
    }

    /* A valid CRC over contents the parser must refuse. The body of the
     * merged store's manifest, without its crc line, then changed. */
    char *body = calloc(1, n + 1);
    if (!body) die("calloc", -ENOMEM);
    memcpy(body, m, n - 13);
    free(m);
    put_with_crc("crc-recomputed", body); /* the same as store-merged */
    char *t = malloc(2 * n + 512);
    if (!t) die("malloc", -ENOMEM);
    /* Newer version. */
    snprintf(t, 2 * n + 512, "factum-index 2%s", strchr(body, '\n'));
    put_with_crc("bad-version-2", t);
    snprintf(t, 2 * n + 512, "factum-index 0%s", strchr(body, '\n'));
    put_with_crc("bad-version-0", t);
    /* A table listed twice. */
    char *first = strstr(body, "table ");
    if (first) {
        size_t line = (size_t)(strchr(first, '\n') + 1 - first);
        size_t pre = (size_t)(first - body);
        memcpy(t, body, pre + line);
        memcpy(t + pre + line, first, strlen(first) + 1);
        put_with_crc("bad-table-twice", t);
    }
    /* next_table_id no larger than a listed id: the next flush would
     * overwrite that table. */
    char *nid = strstr(body, "next_table_id ");
    if (nid) {
        size_t pre = (size_t)(nid - body);
        memcpy(t, body, pre);
        snprintf(t + pre, 2 * n + 512 - pre, "next_table_id 2%s", strchr(nid, '\n'));
        put_with_crc("bad-next-table-id", t);
    }
    /* A name that leaves the directory; kinds out of order. */
    put_with_crc("bad-name-slash", "factum-index 1\ncovered_lo 4224\nnext_position 2\nnext_table_id 4\n"
                                   "table s 1 ../s-00000001.tbl\n");
    put_with_crc("bad-kind-order", "factum-index 1\ncovered_lo 4224\nnext_position 2\nnext_table_id 4\n"
                                   "table c 3 c-00000003.tbl\ntable s 1 s-00000001.tbl\n");
    put_with_crc("bad-checkpoint", "factum-index 1\ncovered_lo 0\nnext_position 9\nnext_table_id 1\n");
    put_with_crc("covers-nothing", "factum-index 1\ncovered_lo 0\nnext_position 1\nnext_table_id 1\n");
    free(t);
    free(body);

    /* The largest: IDX_MAX_TABLES of each kind, the longest names. */
    static idx_manifest big;
    static char names[IDX_KINDS][IDX_MAX_TABLES][IDX_NAME_MAX + 1];
    big.cp = (idx_checkpoint){(1ull << 40) + 4096, 1ull << 32};
    big.next_table_id = 1u << 20;
    for (int k = 0; k < IDX_KINDS; k++) {
        for (size_t i = 0; i < IDX_MAX_TABLES; i++) {
            int l = snprintf(names[k][i], sizeof names[k][i], "%c-%08zu-", idx_kind_char(k), i + 1);
            memset(names[k][i] + l, 'a' + (int)(i % 26), IDX_NAME_MAX - (size_t)l - 4);
            memcpy(names[k][i] + IDX_NAME_MAX - 4, ".tbl", 5);
            big.t[k][i] =
                (idx_manifest_table){(uint64_t)k * IDX_MAX_TABLES + i + 1, names[k][i], IDX_NAME_MAX};
        }
        big.nt[k] = IDX_MAX_TABLES;
    }
    base_buf b = {0};
    int rc = idx_manifest_format(&big, &b);
    if (rc) die("format", rc);
    put(out_manifest, "max-tables", b.data, b.len);
    base_buf_free(&b);
}

/* ---- tables --------------------------------------------------------- */

typedef struct gen {
    uint64_t i, n, run, stride;
} gen;

/* Keys (i / run * stride, i % run), values like log offsets. */
static int gen_next(void *ctx, idx_entry *e)
{
    gen *g = ctx;
    if (g->i >= g->n) return 0;
    *e = (idx_entry){g->i / g->run * g->stride, g->i % g->run, 4096 + 64 * g->i};
    g->i++;
    return 1;
}

static uint8_t *table(const char *name, uint32_t kind, uint64_t n, uint64_t run, uint64_t stride,
                      uint64_t part_entries, size_t *len)
{
    tbl_bloom_part_entries_for_tests(part_entries);
    gen g = {0, n, run, stride};
    int rc = tbl_write(io_posix(), work, "t.tbl", kind, 7, n, gen_next, &g, kind != 2, 1, n ? n : 1);
    tbl_bloom_part_entries_for_tests(0);
    if (rc) die(name, rc);
    char p[8192];
    snprintf(p, sizeof p, "%s/t.tbl", work);
    uint8_t *b = slurp(p, len);
    put(out_table, name, b, *len);
    return b;
}

static void tables(void)
{
    size_t n;
    free(table("empty", 0, 0, 1, 1, 0, &n));
    free(table("one", 1, 1, 1, 1, 0, &n));
    free(table("leaf-full", 0, TBL_LEAF_CAP, 1, 3, 0, &n));
    free(table("two-leaves", 0, TBL_LEAF_CAP + 1, 2, 1000, 0, &n));
    free(table("catalog", 2, 500, 1, 1, 0, &n));
    /* Repeated keys, one partition (the layout of format 1)... */
    uint8_t *t = table("runs", 0, 500, 3, UINT64_MAX / 200, 0, &n);
    /* ...and the same as format 1: one filter, the CRC at byte 216. */
    base_put32(t + 8, 1);
    memset(t + 216, 0, TBL_PAGE - 216);
    base_put32(t + 216, base_crc32c(0, t, 216));
    put(out_table, "format1", t, n);
    free(t);
    /* Format 2 in partitions of 64 entries: 16 partitions with runs of
     * five; one key over three partitions; a last partition of one entry. */
    free(table("parts-long-run", 1, 300, 150, 12345, 64, &n));
    free(table("parts-last-one", 0, 129, 1, 2, 64, &n));
    /* Damaged copies of a small partitioned table: 200 entries, 4
     * partitions; pages: 0 header, 1-2 leaves, 3 root, 4 partition index,
     * 5-8 Bloom. Flips in the header's version and partition count, the
     * root's key and the partition index's first key (fuzz_table tries
     * each with valid CRCs too). */
    t = table("parts-small", 0, 200, 2, 1ull << 40, 64, &n);
    size_t cuts[] = {TBL_PAGE - 1, TBL_PAGE, 0};
    size_t flips[] = {8, 224, 3 * TBL_PAGE + 32, 4 * TBL_PAGE + 16, 0};
    variants(out_table, "parts-small", t, n, cuts, flips);
    free(t);
    /* Two interior levels: 256 leaves, a catalog table (no filter: 1 MiB
     * rather than 1.1). */
    free(table("two-levels", 2, 256 * TBL_LEAF_CAP, 1, UINT64_MAX / (256 * TBL_LEAF_CAP), 0, &n));
    char p[8192];
    snprintf(p, sizeof p, "%s/t.tbl", work);
    unlink(p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_index_corpus <tests/fuzz/corpus>\n");
        return 2;
    }
    snprintf(out_manifest, sizeof out_manifest, "%s/manifest", argv[1]);
    snprintf(out_table, sizeof out_table, "%s/table", argv[1]);
    mkdir(out_manifest, 0755);
    mkdir(out_table, 0755);
    harness_tmpdir(work, sizeof work, "gen_index_corpus");
    mkdir(work, 0755);
    manifests();
    tables();
    harness_rm_rf(work);
    return 0;
}
