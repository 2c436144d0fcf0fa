/*
 * table.c - writing and reading the index tables of table.h.
 *
 * File layout (pages of 4 KiB; docs/format.md):
 *   page 0                header (magic, counts, where each level starts)
 *   pages 1..L            leaf pages, 170 entries of 24 bytes each
 *   then each level       interior pages, 255 keys (k1, k2) each; the key i
 *                         of page p is the first key of child p * 255 + i
 *                         of the level below; the last level is one page
 *   then (format 2, more than one Bloom partition)
 *                         partition index pages: the first k1 of each
 *                         partition, 510 per page
 *   then                  Bloom pages, 63 blocks of 64 bytes each; format 2
 *                         splits them into partitions of part_entries
 *                         consecutive entries, each starting on a page
 * Each page but the header starts with: u32 crc (of bytes 4..4095),
 * u16 count, u16 page kind, u64 page number.
 *
 * The layout follows from the entry count (and the partition size) alone,
 * so the writer streams entries through one buffer page per level and one
 * Bloom partition: memory stays bounded however large the table (TBL-4).
 * Format 1 had one filter over the whole table, built in memory (1.25 bytes
 * per entry); it is still read.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "index/table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/base.h"

#define TBL_MAGIC            "FCTMIDX"
#define PK_LEAF              0
#define PK_NODE              1
#define PK_BLOOM             2
#define PK_BIDX              3
#define BLOOM_BITS_PER_ENTRY 10u
#define BLOOM_K              6
#define HDR_CRC_V1           216u /* format 1: CRC of bytes 0..215 here */
#define HDR_CRC_V2           248u /* format 2: partition fields at 216..247, CRC here */

static uint64_t part_entries_setting;

void tbl_bloom_part_entries_for_tests(uint64_t n)
{
    part_entries_setting = n;
}

typedef struct layout {
    uint64_t leaves, levels, level_first[TBL_MAX_LEVELS], level_pages[TBL_MAX_LEVELS];
    uint64_t bloom_first, bloom_pages, bloom_blocks, total_pages;
    uint64_t parts, part_pages, blocks_full, blocks_last, bidx_first, bidx_pages;
} layout;

static uint64_t blocks_for(uint64_t n)
{
    return (n * BLOOM_BITS_PER_ENTRY + 511) / 512;
}

static uint64_t pages_for(uint64_t blocks)
{
    return (blocks + TBL_BLOOM_BLOCKS_PER_PAGE - 1) / TBL_BLOOM_BLOCKS_PER_PAGE;
}

/* The layout of a table of n entries (format `version`; part_entries only
 * matters for format 2). */
static int compute_layout(uint64_t n, int bloom, uint32_t version, uint64_t part_entries, layout *L)
{
    memset(L, 0, sizeof *L);
    L->leaves = (n + TBL_LEAF_CAP - 1) / TBL_LEAF_CAP;
    uint64_t next = 1 + L->leaves;
    uint64_t keys = L->leaves;
    if (L->leaves > 1) {
        while (1) {
            if (L->levels >= TBL_MAX_LEVELS) return FACTUM_ETOOBIG;
            uint64_t pages = (keys + TBL_NODE_CAP - 1) / TBL_NODE_CAP;
            L->level_first[L->levels] = next;
            L->level_pages[L->levels] = pages;
            L->levels++;
            next += pages;
            if (pages == 1) break;
            keys = pages;
        }
    }
    if (bloom && n) {
        if (version < 2 || n <= part_entries) {
            L->parts = 1;
            L->blocks_full = L->blocks_last = L->bloom_blocks = blocks_for(n);
            L->part_pages = L->bloom_pages = pages_for(L->bloom_blocks);
        } else {
            L->parts = (n - 1) / part_entries + 1;
            L->bidx_first = next;
            L->bidx_pages = (L->parts - 1) / TBL_BIDX_CAP + 1;
            next += L->bidx_pages;
            L->blocks_full = blocks_for(part_entries);
            L->part_pages = pages_for(L->blocks_full);
            L->blocks_last = blocks_for(n - (L->parts - 1) * part_entries);
            L->bloom_blocks = (L->parts - 1) * L->blocks_full + L->blocks_last;
            L->bloom_pages = (L->parts - 1) * L->part_pages + pages_for(L->blocks_last);
        }
        L->bloom_first = next;
        next += L->bloom_pages;
    }
    L->total_pages = next;
    return 0;
}

static void seal_page(uint8_t *p, uint16_t count, uint16_t kind, uint64_t no)
{
    base_put16(p + 4, count);
    base_put16(p + 6, kind);
    base_put64(p + 8, no);
    base_put32(p, base_crc32c(0, p + 4, TBL_PAGE - 4));
}

static void bloom_set(uint8_t *area, uint64_t blocks, uint64_t k1)
{
    uint64_t h = tbl_bloom_hash(k1);
    uint64_t b = h % blocks;
    uint8_t *blk = area + (b / TBL_BLOOM_BLOCKS_PER_PAGE) * TBL_PAGE + TBL_PAGE_HDR +
                   (b % TBL_BLOOM_BLOCKS_PER_PAGE) * 64;
    uint64_t h2 = h * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < BLOOM_K; i++) {
        unsigned bit = (unsigned)((h2 >> (i * 9)) & 511);
        blk[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

typedef struct writer {
    io_env *io;
    int fd;
    layout L;
    uint8_t *leaf;
    uint64_t leaf_no;
    uint32_t leaf_count;
    uint8_t *node[TBL_MAX_LEVELS];
    uint64_t node_no[TBL_MAX_LEVELS];
    uint32_t node_count[TBL_MAX_LEVELS];
} writer;

static int write_page(writer *w, const uint8_t *p, uint64_t no)
{
    return io_write_full(w->io, w->fd, p, TBL_PAGE, (off_t)(no * TBL_PAGE));
}

static int flush_node(writer *w, uint32_t lvl)
{
    if (!w->node_count[lvl]) return 0;
    uint64_t no = w->L.level_first[lvl] + w->node_no[lvl];
    seal_page(w->node[lvl], (uint16_t)w->node_count[lvl], PK_NODE, no);
    int rc = write_page(w, w->node[lvl], no);
    memset(w->node[lvl], 0, TBL_PAGE);
    w->node_count[lvl] = 0;
    w->node_no[lvl]++;
    return rc;
}

/* Push the first key of a page of the level below into level lvl. */
static int push_key(writer *w, uint32_t lvl, uint64_t k1, uint64_t k2)
{
    if (lvl >= w->L.levels) return 0;
    if (w->node_count[lvl] == TBL_NODE_CAP) {
        int rc = flush_node(w, lvl);
        if (rc) return rc;
    }
    if (w->node_count[lvl] == 0) {
        int rc = push_key(w, lvl + 1, k1, k2);
        if (rc) return rc;
    }
    uint8_t *q = w->node[lvl] + TBL_PAGE_HDR + w->node_count[lvl] * 16u;
    base_put64(q, k1);
    base_put64(q + 8, k2);
    w->node_count[lvl]++;
    return 0;
}

static int flush_leaf(writer *w)
{
    if (!w->leaf_count) return 0;
    uint64_t no = 1 + w->leaf_no;
    seal_page(w->leaf, (uint16_t)w->leaf_count, PK_LEAF, no);
    int rc = write_page(w, w->leaf, no);
    memset(w->leaf, 0, TBL_PAGE);
    w->leaf_count = 0;
    w->leaf_no++;
    return rc;
}

/* Seal and write Bloom partition p from the writer's buffer, then clear
 * the buffer for the next one. */
static int flush_bloom_part(writer *w, uint8_t *area, uint64_t p)
{
    uint64_t pages = p + 1 == w->L.parts ? pages_for(w->L.blocks_last) : w->L.part_pages;
    uint64_t first = w->L.bloom_first + p * w->L.part_pages;
    int rc = 0;
    for (uint64_t i = 0; i < pages && !rc; i++) {
        uint8_t *pg = area + i * TBL_PAGE;
        seal_page(pg, TBL_BLOOM_BLOCKS_PER_PAGE, PK_BLOOM, first + i);
        rc = write_page(w, pg, first + i);
    }
    memset(area, 0, pages * TBL_PAGE);
    return rc;
}

int tbl_write(io_env *io, const char *dir, const char *name, uint32_t kind, uint64_t id, uint64_t n,
              tbl_next_fn next, void *ctx, int bloom, uint64_t min_pos, uint64_t max_pos)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp ||
        snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    writer w = {.io = io};
    uint64_t part_entries = part_entries_setting ? part_entries_setting : TBL_BLOOM_PART_ENTRIES;
    int rc = compute_layout(n, bloom, FACTUM_FORMAT_VERSION, part_entries, &w.L);
    if (rc) return rc;
    uint8_t *bloom_area = NULL, *bidx = NULL; /* one partition; one page of first keys */
    w.fd = io->open(io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (w.fd < 0) return w.fd;
    w.leaf = calloc(1, TBL_PAGE);
    rc = w.leaf ? 0 : -ENOMEM;
    for (uint32_t i = 0; i < w.L.levels && !rc; i++)
        if (!(w.node[i] = calloc(1, TBL_PAGE))) rc = -ENOMEM;
    if (!rc && w.L.bloom_pages && !(bloom_area = calloc(w.L.part_pages, TBL_PAGE))) rc = -ENOMEM;
    if (!rc && w.L.bidx_pages && !(bidx = calloc(1, TBL_PAGE))) rc = -ENOMEM;
    uint64_t part = 0, part_left = part_entries;
    idx_entry e, prev = {0, 0, 0};
    for (uint64_t i = 0; i < n && !rc; i++) {
        int r = next(ctx, &e);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0 || (i && (e.k1 < prev.k1 || (e.k1 == prev.k1 && e.k2 < prev.k2)))) {
            rc = FACTUM_EINVAL; /* fewer entries than promised, or unsorted */
            break;
        }
        if (w.leaf_count == TBL_LEAF_CAP && (rc = flush_leaf(&w))) break;
        if (w.leaf_count == 0 && (rc = push_key(&w, 0, e.k1, e.k2))) break;
        uint8_t *q = w.leaf + TBL_PAGE_HDR + w.leaf_count * 24u;
        base_put64(q, e.k1);
        base_put64(q + 8, e.k2);
        base_put64(q + 16, e.v);
        w.leaf_count++;
        if (bloom_area) {
            if (w.L.parts > 1 && part_left == 0) {
                /* This entry starts the next partition: the last one is
                 * complete, write it out (TBL-4). */
                if ((rc = flush_bloom_part(&w, bloom_area, part))) break;
                part++;
                part_left = part_entries;
            }
            if (bidx && part_left == part_entries) {
                /* Its first key, in the partition index. */
                uint64_t slot = part % TBL_BIDX_CAP;
                if (slot == 0 && part) {
                    uint64_t no = w.L.bidx_first + part / TBL_BIDX_CAP - 1;
                    seal_page(bidx, TBL_BIDX_CAP, PK_BIDX, no);
                    if ((rc = write_page(&w, bidx, no))) break;
                    memset(bidx, 0, TBL_PAGE);
                }
                base_put64(bidx + TBL_PAGE_HDR + slot * 8, e.k1);
            }
            bloom_set(bloom_area, part + 1 == w.L.parts ? w.L.blocks_last : w.L.blocks_full, e.k1);
            part_left--;
        }
        prev = e;
    }
    if (!rc) rc = flush_leaf(&w);
    for (uint32_t i = 0; i < w.L.levels && !rc; i++)
        rc = flush_node(&w, i);
    if (!rc && bloom_area) rc = flush_bloom_part(&w, bloom_area, part);
    if (!rc && bidx) {
        uint64_t no = w.L.bidx_first + part / TBL_BIDX_CAP;
        seal_page(bidx, (uint16_t)(part % TBL_BIDX_CAP + 1), PK_BIDX, no);
        rc = write_page(&w, bidx, no);
    }
    if (!rc) {
        uint8_t *h = w.leaf; /* reuse as the header page */
        memset(h, 0, TBL_PAGE);
        memcpy(h, TBL_MAGIC, 8);
        base_put32(h + 8, FACTUM_FORMAT_VERSION);
        base_put32(h + 12, kind);
        base_put64(h + 16, id);
        base_put64(h + 24, n);
        base_put64(h + 32, w.L.leaves);
        base_put32(h + 40, (uint32_t)w.L.levels);
        for (int i = 0; i < TBL_MAX_LEVELS; i++) {
            base_put64(h + 48 + 8 * i, w.L.level_first[i]);
            base_put64(h + 112 + 8 * i, w.L.level_pages[i]);
        }
        base_put64(h + 176, w.L.bloom_first);
        base_put64(h + 184, w.L.bloom_pages);
        base_put64(h + 192, w.L.bloom_blocks);
        base_put64(h + 200, min_pos);
        base_put64(h + 208, max_pos);
        base_put64(h + 216, w.L.bloom_pages ? part_entries : 0);
        base_put64(h + 224, w.L.parts);
        base_put64(h + 232, w.L.bidx_first);
        base_put64(h + 240, w.L.bidx_pages);
        base_put32(h + HDR_CRC_V2, base_crc32c(0, h, HDR_CRC_V2));
        rc = write_page(&w, h, 0);
    }
    if (!rc) rc = io->fdatasync(io, w.fd);
    io->close(io, w.fd);
    if (!rc) rc = io->rename(io, tmp, path);
    if (!rc) rc = io->fsync_dir(io, dir);
    if (rc) io->unlink(io, tmp);
    free(w.leaf);
    for (uint32_t i = 0; i < TBL_MAX_LEVELS; i++)
        free(w.node[i]);
    free(bloom_area);
    free(bidx);
    return rc;
}

int tbl_open(io_env *io, const char *path, tbl **out)
{
    tbl *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    t->io = io;
    t->fd = -1;
    atomic_init(&t->refs, 1);
    int rc = 0;
    if (!(t->path = strdup(path))) {
        rc = -ENOMEM;
        goto fail;
    }
    t->fd = io->open(io, path, O_RDONLY, 0);
    if (t->fd < 0) {
        rc = t->fd;
        goto fail;
    }
    uint64_t size;
    if ((rc = io_file_size(t->fd, &size))) goto fail;
    if (size < TBL_PAGE || size % TBL_PAGE) {
        rc = FACTUM_ECORRUPT;
        goto fail;
    }
    int err = 0;
    t->map = io->map(io, t->fd, size, &err);
    if (!t->map) {
        rc = err;
        goto fail;
    }
    t->map_len = size;
    const uint8_t *h = t->map;
    t->version = base_get32(h + 8);
    uint32_t crc_at = t->version >= 2 ? HDR_CRC_V2 : HDR_CRC_V1;
    if (memcmp(h, TBL_MAGIC, 8) || t->version == 0 || base_crc32c(0, h, crc_at) != base_get32(h + crc_at)) {
        rc = FACTUM_ECORRUPT;
        goto fail;
    }
    if (t->version > FACTUM_FORMAT_VERSION) {
        rc = FACTUM_EFORMAT;
        goto fail;
    }
    t->kind = base_get32(h + 12);
    t->id = base_get64(h + 16);
    t->n_entries = base_get64(h + 24);
    t->n_leaves = base_get64(h + 32);
    t->levels = base_get32(h + 40);
    t->bloom_first = base_get64(h + 176);
    t->bloom_pages = base_get64(h + 184);
    t->bloom_blocks = base_get64(h + 192);
    t->min_position = base_get64(h + 200);
    t->max_position = base_get64(h + 208);
    uint64_t part_entries = t->version >= 2 ? base_get64(h + 216) : 0;
    if (t->version >= 2) {
        t->bloom_parts = base_get64(h + 224);
        t->bidx_first = base_get64(h + 232);
        t->bidx_pages = base_get64(h + 240);
    }
    /* The header must describe exactly the layout its count implies, so that
     * no later access can leave the mapping. (A count no file of this size
     * can hold is refused first, so that the layout's arithmetic stays in
     * range.) */
    layout L;
    if (t->n_entries > size / 24 + TBL_LEAF_CAP ||
        (t->version >= 2 && t->bloom_pages && (part_entries < 64 || part_entries > (1ull << 40))) ||
        compute_layout(t->n_entries, t->bloom_pages != 0, t->version, part_entries, &L) ||
        L.leaves != t->n_leaves || L.levels != t->levels || L.bloom_pages != t->bloom_pages ||
        L.bloom_blocks != t->bloom_blocks || L.bloom_first != t->bloom_first ||
        L.total_pages * TBL_PAGE != size ||
        (t->version >= 2 && (L.parts != t->bloom_parts || L.bidx_first != t->bidx_first ||
                             L.bidx_pages != t->bidx_pages))) {
        rc = FACTUM_ECORRUPT;
        goto fail;
    }
    t->bloom_parts = L.parts;
    t->bloom_part_entries = part_entries;
    t->bloom_part_pages = L.part_pages;
    t->bloom_blocks_full = L.blocks_full;
    t->bloom_blocks_last = L.blocks_last;
    for (int i = 0; i < TBL_MAX_LEVELS; i++) {
        t->level_first[i] = base_get64(h + 48 + 8 * i);
        t->level_pages[i] = base_get64(h + 112 + 8 * i);
        if (t->level_first[i] != L.level_first[i] || t->level_pages[i] != L.level_pages[i]) {
            rc = FACTUM_ECORRUPT;
            goto fail;
        }
    }
    uint64_t words = (L.total_pages + 63) / 64;
    if (!(t->verified = calloc(words, sizeof *t->verified))) {
        rc = -ENOMEM;
        goto fail;
    }
    *out = t;
    return 0;
fail:
    if (t->map) io->unmap(io, (void *)t->map, t->map_len);
    if (t->fd >= 0) io->close(io, t->fd);
    free(t->path);
    free(t);
    return rc;
}

void tbl_ref(tbl *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tbl_unref(tbl *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    t->io->unmap(t->io, (void *)t->map, t->map_len);
    t->io->close(t->io, t->fd);
    if (t->obsolete) t->io->unlink(t->io, t->path);
    free(t->path);
    free(t->verified);
    free(t);
}

/* The page `no`, checked on first use (TBL-2), or NULL if damaged. */
static const uint8_t *page(tbl *t, uint64_t no, uint16_t kind)
{
    const uint8_t *p = t->map + no * TBL_PAGE;
    uint64_t bit = 1ull << (no & 63);
    if (atomic_load_explicit(&t->verified[no / 64], memory_order_relaxed) & bit) return p;
    if (base_get32(p) != base_crc32c(0, p + 4, TBL_PAGE - 4) || base_get16(p + 6) != kind ||
        base_get64(p + 8) != no)
        return NULL;
    uint16_t count = base_get16(p + 4);
    if (kind == PK_LEAF   ? (count == 0 || count > TBL_LEAF_CAP)
        : kind == PK_NODE ? (count == 0 || count > TBL_NODE_CAP)
        : kind == PK_BIDX ? (count == 0 || count > TBL_BIDX_CAP)
                          : count != TBL_BLOOM_BLOCKS_PER_PAGE)
        return NULL;
    atomic_fetch_or_explicit(&t->verified[no / 64], bit, memory_order_relaxed);
    return p;
}

/* First key of Bloom partition i: 1 and *k, or 0 if its page is damaged. */
static int bidx_key(tbl *t, uint64_t i, uint64_t *k)
{
    const uint8_t *p = page(t, t->bidx_first + i / TBL_BIDX_CAP, PK_BIDX);
    if (!p || i % TBL_BIDX_CAP >= base_get16(p + 4)) return 0;
    *k = base_get64(p + TBL_PAGE_HDR + (i % TBL_BIDX_CAP) * 8);
    return 1;
}

/* Probe partition part's filter for k1: 1 maybe, 0 no, -1 its page is
 * damaged. */
static int bloom_probe(tbl *t, uint64_t part, uint64_t k1)
{
    uint64_t blocks = part + 1 == t->bloom_parts ? t->bloom_blocks_last : t->bloom_blocks_full;
    uint64_t h = tbl_bloom_hash(k1);
    uint64_t b = h % blocks;
    const uint8_t *p =
        page(t, t->bloom_first + part * t->bloom_part_pages + b / TBL_BLOOM_BLOCKS_PER_PAGE, PK_BLOOM);
    if (!p) return -1;
    const uint8_t *blk = p + TBL_PAGE_HDR + (b % TBL_BLOOM_BLOCKS_PER_PAGE) * 64;
    uint64_t h2 = h * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < BLOOM_K; i++) {
        unsigned bit = (unsigned)((h2 >> (i * 9)) & 511);
        if (!(blk[bit >> 3] & (1u << (bit & 7)))) return 0;
    }
    return 1;
}

int tbl_may_contain(tbl *t, uint64_t k1)
{
    if (!t->bloom_pages) return 1;
    uint64_t part = 0;
    if (t->bloom_parts > 1) {
        /* The last partition whose first key is <= k1 holds k1's last
         * entries if it has any (TBL-1: partitions follow the key order). */
        uint64_t lo = 0, hi = t->bloom_parts;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2, k;
            if (!bidx_key(t, mid, &k)) return 1; /* damaged: fall back to the search */
            if (k <= k1)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0) return 0; /* below every key of the table */
        part = lo - 1;
    }
    /* A damaged filter page: fall back to the search, which checks pages. */
    return bloom_probe(t, part, k1) != 0;
}

static inline int key_lt(const uint8_t *q, uint64_t k1, uint64_t k2)
{
    uint64_t a = base_get64(q), b = base_get64(q + 8);
    return a < k1 || (a == k1 && b < k2);
}

static int load_leaf(tbl_cur *c, uint64_t leaf)
{
    const uint8_t *p = page(c->t, 1 + leaf, PK_LEAF);
    if (!p) return FACTUM_ECORRUPT;
    c->leaf = leaf;
    c->page = p;
    c->count = base_get16(p + 4);
    return 1;
}

int tbl_seek(tbl *t, uint64_t k1, uint64_t k2, tbl_cur *c)
{
    c->t = t;
    if (!t->n_entries) return 0;
    uint64_t idx = 0;
    for (uint32_t lvl = t->levels; lvl-- > 0;) {
        if (idx >= t->level_pages[lvl]) return FACTUM_ECORRUPT;
        const uint8_t *p = page(t, t->level_first[lvl] + idx, PK_NODE);
        if (!p) return FACTUM_ECORRUPT;
        uint32_t n = base_get16(p + 4);
        /* Largest i with key[i] < target (else 0): the first entry >= target
         * is in child i or right after it (TBL-1 allows repeated keys). */
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (key_lt(p + TBL_PAGE_HDR + mid * 16u, k1, k2))
                lo = mid + 1;
            else
                hi = mid;
        }
        idx = idx * TBL_NODE_CAP + (lo ? lo - 1 : 0);
    }
    if (idx >= t->n_leaves) return FACTUM_ECORRUPT;
    int rc = load_leaf(c, idx);
    if (rc < 0) return rc;
    while (1) {
        uint32_t lo = 0, hi = c->count;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (key_lt(c->page + TBL_PAGE_HDR + mid * 24u, k1, k2))
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < c->count) {
            c->idx = lo;
            return 1;
        }
        if (c->leaf + 1 >= t->n_leaves) return 0;
        if ((rc = load_leaf(c, c->leaf + 1)) < 0) return rc;
    }
}

void tbl_cur_get(const tbl_cur *c, idx_entry *e)
{
    const uint8_t *q = c->page + TBL_PAGE_HDR + c->idx * 24u;
    e->k1 = base_get64(q);
    e->k2 = base_get64(q + 8);
    e->v = base_get64(q + 16);
}

int tbl_next(tbl_cur *c)
{
    if (c->idx + 1 < c->count) {
        c->idx++;
        return 1;
    }
    if (c->leaf + 1 >= c->t->n_leaves) return 0;
    int rc = load_leaf(c, c->leaf + 1);
    if (rc < 0) return rc;
    c->idx = 0;
    return 1;
}

int tbl_prev(tbl_cur *c)
{
    if (c->idx > 0) {
        c->idx--;
        return 1;
    }
    if (c->leaf == 0) return 0;
    int rc = load_leaf(c, c->leaf - 1);
    if (rc < 0) return rc;
    c->idx = c->count - 1;
    return 1;
}

int tbl_last(tbl *t, tbl_cur *c)
{
    c->t = t;
    if (!t->n_entries) return 0;
    int rc = load_leaf(c, t->n_leaves - 1);
    if (rc < 0) return rc;
    c->idx = c->count - 1;
    return 1;
}

void tbl_release_leaves(tbl *t, uint64_t leaf)
{
    /* Leaves start at page 1; the mapping itself is page-aligned. */
    if (leaf == 0) return;
    uint64_t end = 1 + (leaf < t->n_leaves ? leaf : t->n_leaves);
    madvise((void *)t->map, end * TBL_PAGE, MADV_DONTNEED);
}

/* The first key of child `i` of interior level `lvl` (level -1: the
 * leaves): 1, or 0 if its page is damaged. */
static int first_key(tbl *t, int lvl, uint64_t i, uint64_t *k1, uint64_t *k2)
{
    const uint8_t *p = lvl < 0 ? page(t, 1 + i, PK_LEAF) : page(t, t->level_first[lvl] + i, PK_NODE);
    if (!p) return 0;
    *k1 = base_get64(p + TBL_PAGE_HDR);
    *k2 = base_get64(p + TBL_PAGE_HDR + 8);
    return 1;
}

/* Everything a lookup relies on, so that a table that passes is one where
 * every entry is found (a checksum only says that a page is as written):
 * every page sound (TBL-2); the leaves full but the last, sorted (TBL-1)
 * and holding n_entries; each interior page holding exactly the first keys
 * of its children; each entry's k1 in its partition's filter, and each
 * partition's first key in the partition index (TBL-4). */
int tbl_verify(tbl *t)
{
    uint64_t total = 0;
    idx_entry prev = {0, 0, 0};
    for (uint64_t i = 0; i < t->n_leaves; i++) {
        const uint8_t *p = page(t, 1 + i, PK_LEAF);
        if (!p) return FACTUM_ECORRUPT;
        uint32_t n = base_get16(p + 4);
        if (i + 1 < t->n_leaves && n != TBL_LEAF_CAP) return FACTUM_ECORRUPT;
        for (uint32_t j = 0; j < n; j++) {
            const uint8_t *q = p + TBL_PAGE_HDR + j * 24u;
            idx_entry e = {base_get64(q), base_get64(q + 8), 0};
            if (total && (e.k1 < prev.k1 || (e.k1 == prev.k1 && e.k2 < prev.k2))) return FACTUM_ECORRUPT;
            if (total >= t->n_entries) return FACTUM_ECORRUPT;
            if (t->bloom_pages &&
                bloom_probe(t, t->bloom_parts > 1 ? total / t->bloom_part_entries : 0, e.k1) != 1)
                return FACTUM_ECORRUPT;
            prev = e;
            total++;
        }
    }
    if (total != t->n_entries) return FACTUM_ECORRUPT;
    for (uint32_t l = 0; l < t->levels; l++) {
        uint64_t children = l == 0 ? t->n_leaves : t->level_pages[l - 1];
        for (uint64_t i = 0; i < t->level_pages[l]; i++) {
            const uint8_t *p = page(t, t->level_first[l] + i, PK_NODE);
            if (!p) return FACTUM_ECORRUPT;
            uint64_t left = children - i * TBL_NODE_CAP;
            if (base_get16(p + 4) != (left < TBL_NODE_CAP ? left : TBL_NODE_CAP)) return FACTUM_ECORRUPT;
            for (uint32_t j = 0; j < base_get16(p + 4); j++) {
                uint64_t k1, k2;
                if (!first_key(t, (int)l - 1, i * TBL_NODE_CAP + j, &k1, &k2) ||
                    base_get64(p + TBL_PAGE_HDR + j * 16u) != k1 ||
                    base_get64(p + TBL_PAGE_HDR + j * 16u + 8) != k2)
                    return FACTUM_ECORRUPT;
            }
        }
    }
    for (uint64_t i = 0; i < t->bloom_pages; i++)
        if (!page(t, t->bloom_first + i, PK_BLOOM)) return FACTUM_ECORRUPT;
    /* Partition index: the first key of each partition's first entry. */
    for (uint64_t i = 0; t->bloom_parts > 1 && i < t->bloom_parts; i++) {
        uint64_t k, e = i * t->bloom_part_entries;
        const uint8_t *p = page(t, 1 + e / TBL_LEAF_CAP, PK_LEAF);
        if (!bidx_key(t, i, &k) || !p || base_get64(p + TBL_PAGE_HDR + (e % TBL_LEAF_CAP) * 24u) != k)
            return FACTUM_ECORRUPT;
    }
    return 0;
}
