/*
 * group.h - the writer's group (writer.c, group.c): the batch being built
 * (its buffer, events, index entries, hash chain state) and its overlay,
 * the streams' states as the group has changed them, with the undo log
 * that restores them when a request fails half-way.
 */
#ifndef FACTUM_STORE_GROUP_H
#define FACTUM_STORE_GROUP_H

#include "store/store_int.h"

/* An event of the current group. */
typedef struct gev {
    uint64_t hash;
    const char *stream;
    size_t stream_len;
    uint64_t version, position;
    uint8_t id[16];
    size_t off; /* frame offset in the batch buffer */
    int creates;
} gev;

/* A stream's state as the group has changed it. */
typedef struct ovs {
    uint64_t hash;
    const char *name;
    size_t len;
    sstate st;
    int dirty;
    size_t meta_off;      /* offset of a metadata event in this group (0: none) */
    uint64_t touched_req; /* request that last saved this entry for undo */
} ovs;

typedef struct undo {
    size_t idx;
    ovs saved;
} undo;

typedef struct group {
    base_buf buf; /* batch frame + event frames */
    gev *ev;
    size_t n_ev, cap_ev;
    ovs *ov;
    size_t n_ov, cap_ov;
    uint32_t *ov_idx; /* hash index into ov: slot = index + 1, 0 empty */
    size_t ov_idx_cap;
    uint64_t first_pos;
    int64_t ts;
    idx_entry *ent[IDX_KINDS];
    size_t n_ent[IDX_KINDS], cap_ent[IDX_KINDS];
    uint64_t *los;
    size_t cap_los;
    char **names; /* "$$" names made here, each malloc'd, freed on reset */
    size_t n_names, cap_names;
    base_buf scratch;
    base_buf seal_out; /* crypto-shredding: an event's sealed bytes */
    seal_gcm gcm;      /* and the cipher that seals them */
    undo *undo;
    size_t n_undo, cap_undo;
    uint64_t req_seq;
    /* A driver's group in flight (drive.c): its requests, where its batch
     * went, the tail its fdatasync covers, when that started; and the
     * requests that go into the next batch. */
    wreq *fl_list;
    uint64_t fl_lo, fl_upto, fl_t0;
    wreq *rest;
    /* The hash chain (LOG-7): the hasher, and the hash of this group's
     * batch once written into a segment of chained batches. */
    log_hasher hasher;
    int hasher_ready, chained;
    uint8_t chain[LOG_HASH_LEN];
    uint8_t (*dig)[LOG_HASH_LEN]; /* each event frame's SHA-256, made as it is encoded (hot in cache) */
    size_t cap_dig;
} group;

/* Room the batch frame takes at the start of a group's buffer: a chained
 * frame's. A batch in an older segment (plain frame, LOG-7) is written from
 * GROUP_HDR - LOG_BATCH_FRAME_LEN on, so event frames never move. */
#define GROUP_HDR LOG_BATCH_CHAIN_LEN

/* ---- group.c --------------------------------------------------------- */

/* Grow *p (elements of elem bytes) to hold need; 0 or -ENOMEM. */
int group_grow(void **p, size_t *cap, size_t need, size_t elem);
ovs *ov_find(group *g, uint64_t hash, const char *name, size_t len);
int ov_add(group *g, uint64_t hash, const char *name, size_t len, const sstate *st, ovs **out);
/* The state of a stream as of this point in the group. The returned
 * pointer is valid until the next ov_add. */
int ov_get(factum_store *s, group *g, const char *name, size_t len, ovs **out);
/* A name that must outlive the group ("$$stream"). */
const char *keep_name(group *g, const char *name, size_t len);
/* Save g->ov[i] before the current request changes it, so that a failure
 * half-way through encoding can restore the overlay. */
int ov_touch(group *g, size_t i);
void ov_rebuild_index(group *g);
void group_reset(group *g);
void group_free(group *g);

#endif
