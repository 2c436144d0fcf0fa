/*
 * index.h - the store's derived indexes, all rebuildable from the log:
 *   stream index   (hash(stream), version)      -> log offset of the event
 *   event-id index (id[0..8], id[8..16])        -> log offset of the event
 *   catalog        (position created, hash)     -> log offset of version 0
 *   position map   position                      -> log offset (dense file)
 * Recent entries live in a bounded in-memory memtable; a full memtable is
 * frozen and written as immutable tables (table.h) by a background thread,
 * which also merges tables (size-tiered) so lookups touch few of them. The
 * manifest names the tables and the log point they cover: on open, only the
 * log after that point is scanned (the index checkpoint).
 *
 * Invariants (IDX-n):
 *  IDX-1  Tables and the position map cover exactly the log before the
 *         manifest's covered offset; the log is fdatasync'd up to that
 *         offset before the manifest is written (cfg.sync_log: in relaxed
 *         mode that is every segment written since the last sync).
 *  IDX-2  Readers see a consistent view (active memtable, frozen memtable,
 *         tables), swapped atomically and reference-counted; files of tables
 *         merged away are unlinked only after the last reader let go.
 *  IDX-3  Lookups return entries in key order; entries with the same key
 *         (hash collisions) may be several: the caller checks the event.
 *  IDX-4  Memory is bounded: at most two memtables of memtable_entries.
 *  IDX-5  Merges are never starved: a kind with IDX_MERGE_STALL tables is
 *         merged before the next flush, however fast the writer refills
 *         the memtable (it waits), so no flush meets IDX_MAX_TABLES.
 */
#ifndef FACTUM_INDEX_H
#define FACTUM_INDEX_H

#include <pthread.h>
#include <stdint.h>

#include "index/table.h"
#include "io/io.h"

enum { IDX_STREAM = 0, IDX_ID = 1, IDX_CAT = 2, IDX_KINDS = 3 };

/* Tables of one kind at most (merges keep far fewer; a flush past it fails
 * with -ENOSPC, a manifest listing more is damaged). */
#define IDX_MAX_TABLES 64
/* IDX-5: with this many tables of one kind, the background thread merges
 * before it writes the next frozen memtable (the writer waits meanwhile). */
#define IDX_MERGE_STALL 32

typedef struct findex findex;

/* What the background thread merges next in one kind's tables, given their
 * entry counts (oldest first): 1 with the neighbours *from .. *from + *cnt,
 * or 0. Levels are powers of 4 of memtable_entries; the newest run of one
 * level is merged from its oldest end, and past a pressure limit the
 * smallest neighbours are merged whatever their levels (index.c says why).
 * Pure: exposed for the tests. */
int idx_merge_choice(uint64_t memtable_entries, const uint64_t *n_entries, size_t nt, size_t *from,
                     size_t *cnt);

typedef struct idx_checkpoint {
    uint64_t covered_lo;    /* log offset the tables cover up to (a batch boundary) */
    uint64_t next_position; /* first position not covered */
} idx_checkpoint;

typedef struct idx_config {
    size_t memtable_entries;
    int read_only;
    /* Called before a checkpoint is made durable: must fdatasync the log up
     * to at least `lo` (IDX-1). Runs on the index thread. */
    int (*sync_log)(void *ctx, uint64_t lo);
    void *sync_ctx;
    void (*log_fn)(void *ctx, int level, const char *msg);
    void *log_ctx;
} idx_config;

/* Open (creating when missing) the index in dir. *cp receives the
 * checkpoint to replay the log from. */
int idx_open(io_env *io, const char *dir, const idx_config *cfg, findex **out, idx_checkpoint *cp);
/* Start the background flush/merge thread. */
int idx_start(findex *x);
/* Write a final checkpoint (unless read-only or failed) and free. */
int idx_close(findex *x, int checkpoint);

/* Writer: add the entries of one batch that ends at log offset end_lo and
 * position next_position - 1. May block while a previous memtable is still
 * being written (back-pressure, IDX-4). */
int idx_add(findex *x, const idx_entry *const entries[IDX_KINDS], const size_t n[IDX_KINDS], uint64_t end_lo,
            uint64_t next_position);
/* Writer: record log offsets of positions first..first+n-1 (call before
 * idx_add of the same batch; kept in the memtable until it is flushed). */
int idx_posmap_put(findex *x, uint64_t first, const uint64_t *los, size_t n);
/* Position -> log offset. 0 or FACTUM_ENOTFOUND / -errno. */
int idx_posmap_get(findex *x, uint64_t position, uint64_t *lo);

/* (k2, v) pairs of one k1, in key order. */
typedef struct idx_kv {
    uint64_t k2, v;
} idx_kv;

/* Stream index: entries of `hash` with version >= from (forward) or
 * <= from (backward), up to max, in version order (IDX-3). */
int idx_stream_range(findex *x, uint64_t hash, uint64_t from, int backward, idx_kv *out, size_t max,
                     size_t *n);
/* Event-id index: offsets of events with this id (any stream), up to max. */
int idx_id_lookup(findex *x, const uint8_t id[16], uint64_t *los, size_t max, size_t *n);
/* Catalog: streams created after position `after`, in creation order:
 * out[i].k2 = position, out[i].v = log offset of the creating event. */
int idx_cat_range(findex *x, uint64_t after, idx_kv *out, size_t max, size_t *n);
uint64_t idx_cat_count(findex *x);

typedef struct idx_stats {
    uint64_t tables, memtable_entries, flushes, merges;
} idx_stats;
void idx_get_stats(findex *x, idx_stats *st);
/* Latched error of the background thread (0 if none). */
int idx_error(findex *x);

/* Force a flush of the current memtable and wait for it (tests). */
int idx_flush_sync(findex *x);
/* Check every table page (verify). */
int idx_verify_tables(findex *x, char *what, size_t n);

#endif
