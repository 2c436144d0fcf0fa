/*
 * table.h - immutable, sorted index tables on disk. A table holds entries
 * (k1, k2, v), sorted by (k1, k2), in 4 KiB leaf pages, above them a static
 * B-tree of separator keys, and a blocked Bloom filter on k1. Tables are
 * written once (from a frozen memtable or by merging tables), fsync'd, then
 * only read, through a read-only shared mapping: the operating system's page
 * cache is the block cache, so resident memory stays bounded however large
 * the tables grow.
 *
 * Invariants (TBL-n):
 *  TBL-1  Entries are sorted by (k1, k2); equal keys may repeat (hash
 *         collisions) and keep the order of their sources, older first.
 *  TBL-2  Every page carries a CRC32C, checked the first time the page is
 *         used (a bit per page remembers it). A bad page is FACTUM_ECORRUPT.
 *  TBL-3  A table is visible only after it was fdatasync'd and renamed into
 *         place; the manifest that lists it is written after that.
 *  TBL-4  Writing a table takes memory independent of its size: one page
 *         per B-tree level and one Bloom partition (the filter is split
 *         into partitions of a fixed number of consecutive entries, each
 *         written as soon as its entries are; format 2). A lookup finds its
 *         partition from the partitions' first keys, then probes one block.
 */
#ifndef FACTUM_TABLE_H
#define FACTUM_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

#define TBL_PAGE                  4096u
#define TBL_PAGE_HDR              16u
#define TBL_LEAF_CAP              ((TBL_PAGE - TBL_PAGE_HDR) / 24u) /* 170 entries */
#define TBL_NODE_CAP              ((TBL_PAGE - TBL_PAGE_HDR) / 16u) /* 255 keys */
#define TBL_MAX_LEVELS            8
#define TBL_BLOOM_BLOCKS_PER_PAGE 63u /* 63 x 64 bytes + crc */
#define TBL_BIDX_CAP              ((TBL_PAGE - TBL_PAGE_HDR) / 8u) /* 510 partition first keys */
#define TBL_BLOOM_PART_ENTRIES    (1u << 20) /* entries per Bloom partition (format 2) */

typedef struct idx_entry {
    uint64_t k1, k2, v;
} idx_entry;

typedef struct tbl {
    _Atomic int refs;
    int obsolete; /* unlink the file when the last reference goes */
    io_env *io;
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t map_len;
    uint64_t id;
    uint32_t kind;
    uint64_t n_entries;
    uint64_t n_leaves;
    uint32_t levels; /* interior levels above the leaves */
    uint64_t level_first[TBL_MAX_LEVELS];
    uint64_t level_pages[TBL_MAX_LEVELS];
    uint32_t version; /* 1: one Bloom filter for the table; 2: partitioned (TBL-4) */
    uint64_t bloom_first, bloom_pages, bloom_blocks;
    uint64_t bloom_parts;       /* partitions (1 for format 1 and small tables) */
    uint64_t bloom_part_entries; /* entries per partition (format 2) */
    uint64_t bloom_part_pages;  /* pages of every partition but the last */
    uint64_t bloom_blocks_full; /* blocks of every partition but the last */
    uint64_t bloom_blocks_last;
    uint64_t bidx_first, bidx_pages; /* pages of the partitions' first keys */
    uint64_t min_position, max_position; /* log positions the table covers */
    _Atomic uint64_t *verified;          /* bit per page (TBL-2) */
} tbl;

/* A source of sorted entries for tbl_write. */
typedef int (*tbl_next_fn)(void *ctx, idx_entry *out); /* 1 = entry, 0 = end, < 0 error */

/* Write a table of exactly n entries (from next, sorted per TBL-1) to
 * dir/name atomically (TBL-3). bloom: 1 to build the k1 Bloom filter. */
int tbl_write(io_env *io, const char *dir, const char *name, uint32_t kind, uint64_t id, uint64_t n,
              tbl_next_fn next, void *ctx, int bloom, uint64_t min_pos, uint64_t max_pos);

/* Tests: entries per Bloom partition of the tables written from now on
 * (0: the default, TBL_BLOOM_PART_ENTRIES). Not thread-safe. */
void tbl_bloom_part_entries_for_tests(uint64_t n);

/* Open a table file (validates its header only). */
int tbl_open(io_env *io, const char *path, tbl **out);
void tbl_ref(tbl *t);
void tbl_unref(tbl *t);

/* Might the table hold k1? (Bloom filter; 1 if it has none.) */
int tbl_may_contain(tbl *t, uint64_t k1);

/* A position in a table: entry `idx` of leaf `leaf`. */
typedef struct tbl_cur {
    tbl *t;
    uint64_t leaf;
    uint32_t idx, count;
    const uint8_t *page;
} tbl_cur;

/* Position at the first entry >= (k1, k2). Returns 1 if positioned, 0 if
 * every entry is smaller, or FACTUM_ECORRUPT. */
int tbl_seek(tbl *t, uint64_t k1, uint64_t k2, tbl_cur *c);
/* Current entry (only when positioned). */
void tbl_cur_get(const tbl_cur *c, idx_entry *e);
/* Step. Return 1 if positioned, 0 past the end/start, or FACTUM_ECORRUPT. */
int tbl_next(tbl_cur *c);
int tbl_prev(tbl_cur *c);
/* Position at the last entry (1), or 0 if empty. */
int tbl_last(tbl *t, tbl_cur *c);

/* Drop the leaves before `leaf` from this process's resident memory (they
 * stay in the page cache; a later access maps them again). For a long
 * sequential scan (a merge), so that its resident memory does not grow
 * with the table. */
void tbl_release_leaves(tbl *t, uint64_t leaf);

/* Check every page of the table and everything lookups rely on (for
 * verify): sorted, counted leaves (TBL-1), every page's CRC (TBL-2), the
 * interior pages' keys and counts, every entry's k1 in its partition's
 * filter and the partition index (TBL-4). A table that passes answers every
 * lookup of its entries. Returns 0 or FACTUM_ECORRUPT. */
int tbl_verify(tbl *t);

/* Bloom hash of k1 (k1 is itself a hash for streams; mixed again). */
static inline uint64_t tbl_bloom_hash(uint64_t k1)
{
    k1 ^= k1 >> 31;
    k1 *= 0x7fb5d329728ea185ull;
    k1 ^= k1 >> 27;
    k1 *= 0x81dadef4bc2dd44dull;
    k1 ^= k1 >> 33;
    return k1;
}

#endif
