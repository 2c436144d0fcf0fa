/*
 * memtable.h - the in-memory part of the index: entries added since the
 * last flush, searchable while the writer adds more (a read-write lock), and
 * emitted in table order when frozen. Internal to src/index.
 */
#ifndef FACTUM_MEMTABLE_H
#define FACTUM_MEMTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "index/index.h"

typedef struct mt_stream {
    uint64_t hash;
    uint32_t n, cap;
    idx_kv *kv; /* sorted by k2 (version); NULL marks an empty slot */
} mt_stream;

typedef struct mt_chunk mt_chunk;

typedef struct memtable {
    _Atomic int refs;
    mt_chunk *chunks; /* bump-allocated space for the per-stream vectors */
    pthread_rwlock_t lock;
    mt_stream *st;
    size_t st_cap, st_n;
    size_t st_bytes, id_bytes, cat_bytes; /* mapped sizes of st, ids, cat */
    idx_entry *ids;                       /* open addressing; v == 0 marks an empty slot */
    size_t id_cap, id_n;
    idx_entry *cat; /* in position order */
    size_t cat_n, cat_cap;
    uint64_t *pos; /* log offsets of positions first_position.. (the position map's tail) */
    size_t pos_n, pos_cap, pos_bytes;
    size_t entries; /* stream entries */
    uint64_t end_lo, next_position, first_position;
} memtable;

memtable *mt_new(void);
void mt_ref(memtable *m);
void mt_unref(memtable *m);
/* Add entries (caller holds the write lock). 0 or -ENOMEM. */
int mt_add(memtable *m, const idx_entry *const e[IDX_KINDS], const size_t n[IDX_KINDS]);

/* Append log offsets of the next positions (caller holds the write lock). */
int mt_pos_add(memtable *m, const uint64_t *los, size_t n);

/* Lookups (caller holds at least the read lock). */
const mt_stream *mt_stream_find(const memtable *m, uint64_t hash);
/* First index in s->kv with k2 >= v. */
size_t mt_lower_bound(const mt_stream *s, uint64_t v);
size_t mt_id_find(const memtable *m, uint64_t hi, uint64_t lo, uint64_t *los, size_t max);
size_t mt_cat_lower_bound(const memtable *m, uint64_t k1);

/* Sorted entries of one kind (the memtable must be frozen). Caller frees. */
int mt_sorted(const memtable *m, int kind, idx_entry **out, size_t *n);

#endif
