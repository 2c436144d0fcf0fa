/*
 * store_int.h - the store's internals shared by the files of src/store:
 * the handle, the writer's request queue, stream states and their cache.
 *
 * Design note (invariants; tests cite them as ST-n):
 *  ST-1  One writer thread assigns versions and positions. It takes every
 *        queued request, checks each in order against the committed state
 *        plus what the same group already added (the overlay), encodes the
 *        accepted ones into one batch, writes it, fdatasyncs once (durable
 *        mode), adds the index entries, updates the stream cache, publishes
 *        the new committed position and only then completes the requests.
 *  ST-2  Readers never see beyond the published committed position, so a
 *        partly applied group is never visible.
 *  ST-3  The stream cache holds committed states only. The writer upserts
 *        every stream it committed before publishing; a reader inserts a
 *        state it computed only if no writer update happened since it
 *        started computing (a generation counter), so a stale state can
 *        never outlive the writer's.
 *  ST-4  After a failed write or fdatasync the store is fail-stopped: every
 *        later append fails with FACTUM_EFAILED until reopened.
 *  ST-5  An append that is an exact replay of events already stored (by
 *        event id, same stream, consecutive, same order) writes nothing
 *        and returns the original result; a partial overlap fails.
 *  ST-6  No request can fail-stop the store, whatever its size: the writer
 *        checks every request's real encoded size (with the `$metadata`
 *        event it adds to re-create a soft-deleted stream) before the batch
 *        is written. A request that does not fit in a segment on its own
 *        fails alone with FACTUM_ETOOBIG; one that does not fit after the
 *        others of its group goes first into the next batch. Only I/O
 *        errors latch (ST-4).
 */
#ifndef FACTUM_STORE_INT_H
#define FACTUM_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/base.h"
#include "common/common.h"
#include "index/index.h"
#include "io/io.h"
#include "log/log.h"

/* Event frame flag: this event is the first ever written to its stream. */
#define ST_EV_CREATES 0x40u

#define ST_TB_DELETED INT64_MAX /* $tb of a soft-deleted stream */

/* The committed state of one stream. */
typedef struct sstate {
    int64_t last_version;   /* -1: no events; INT64_MAX: tombstoned */
    uint64_t last_position; /* position of the last event (0: none) */
    int64_t meta_version;   /* version of the latest $$stream event, -1 none */
    uint64_t meta_lo;       /* its log offset (0: none) */
    factum_stream_metadata meta;
} sstate;

static inline int sstate_tombstoned(const sstate *s)
{
    return s->last_version == INT64_MAX;
}
static inline int sstate_soft_deleted(const sstate *s)
{
    return !sstate_tombstoned(s) && s->meta.truncate_before == ST_TB_DELETED;
}

/* ---- the stream cache (ST-3) ---------------------------------------- */

typedef struct centry centry;
typedef struct scache {
    pthread_mutex_t mu;
    centry **buckets;
    size_t nbuckets, n, cap;
    centry *lru_head, *lru_tail; /* most recent first */
    uint64_t gen;                /* bumped by every writer update */
} scache;

int cache_init(scache *c, size_t cap);
void cache_deinit(scache *c);
/* 1 and *out if cached, else 0 and *gen_out = the generation now. */
int cache_get(scache *c, uint64_t hash, const char *name, size_t len, sstate *out, uint64_t *gen_out);
/* Writer: insert or replace; bumps the generation. */
int cache_put(scache *c, uint64_t hash, const char *name, size_t len, const sstate *st);
/* Reader: insert only if absent and the generation is still `gen`. */
void cache_put_if(scache *c, uint64_t hash, const char *name, size_t len, const sstate *st, uint64_t gen);
size_t cache_size(scache *c);

/* ---- requests ------------------------------------------------------- */

enum { OP_APPEND = 0, OP_DELETE = 1, OP_TOMBSTONE = 2 };
enum { REQ_APPEND = 0, REQ_SYNC = 1 };
enum { WSTATE_DONE = 1, WSTATE_LEAD = 2 };

typedef struct wpart {
    const char *stream;
    size_t stream_len;
    int64_t expected;
    const factum_event_data *events;
    size_t n;
    int op;
} wpart;

typedef struct wreq {
    struct wreq *next;
    int kind;
    wpart *parts;
    size_t n_parts;
    factum_append_result *results;
    size_t bytes; /* encoded size estimate, for the group limit */
    /* completion */
    factum_append_cb cb;
    void *ctx;
    int rc;
    size_t failed;
    _Atomic int wstate; /* synchronous callers: WSTATE_* bits, waited on with a futex */
    int owns_memory;         /* async: parts/results/request are freed after cb */
    struct factum_driver *drv; /* submitted through this driver: called back on its thread (drive.c) */
    uint64_t gate_pos;       /* held by a gate until every gate passed this position (gate.c) */
} wreq;

/* ---- the handle ----------------------------------------------------- */

struct factum_store {
    char *path;
    io_env *io;
    factum_options opts;
    int lock_fd;
    uint8_t uuid[16];
    uint64_t seg_size;
    flog *log;
    findex *idx;
    scache cache;

    _Atomic uint64_t committed_pos; /* last committed position, 0 = none (ST-2) */
    _Atomic uint64_t log_end;       /* log offset after the last committed batch */

    /* writer */
    pthread_t writer;
    int writer_running;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;    /* the writer thread waits for work */
    pthread_cond_t q_space; /* producers wait for room */
    wreq *q_head, *q_tail;
    size_t q_len;
    size_t q_deferred; /* of q_len: requests of SYNC drivers, which lead them in their runs (SYNC-2) */
    unsigned q_waiting_space;
    int leader;        /* someone leads (runs groups); see writer.c */
    int writer_lead;   /* the lead is handed to the writer thread */
    struct factum_driver *drv_leader; /* the driver that leads, if one does (writer.c DW-1) */
    _Atomic int n_drivers;            /* drivers open on this store (drive.c) */
    _Atomic int writer_spinning, writer_kick; /* see writer_main */
    uint64_t last_group_ns;                   /* writer thread only */
    struct group *grp; /* the leader's working buffers */
    wreq *cq_head, *cq_tail; /* completed asynchronous requests for the writer thread to call back (q_mu) */
    int stopping, abandon;
    _Atomic int failed; /* ST-4: the error that stopped the store, 0 if none */
    int64_t last_ts;
    _Atomic uint64_t last_sync_ns;
    _Atomic int unsynced; /* relaxed: writes since the last fdatasync */

    /* commit notification (notify.c) */
    _Atomic uint32_t commit_seq;  /* futex word, bumped after each publish */
    _Atomic int commit_waiters;   /* threads waiting on commit_seq */
    pthread_rwlock_t lis_mu;      /* listeners: read-held while calling them */
    struct listener *lis;
    size_t n_lis, cap_lis;

    /* acknowledgement gates (gate.c) */
    pthread_mutex_t gate_mu;
    _Atomic size_t n_gates;
    struct factum_ack_gate **gates;
    size_t cap_gates;
    uint64_t gate_min;           /* the lowest position the gates passed (gate_mu) */
    wreq *held_head, *held_tail; /* completions held, in commit order (gate_mu) */

    /* scheduled events (sched.c): read-write stores only */
    struct sched *sched;
    int abandon_sched; /* stopping as a crash would: no final checkpoint */

    /* upcasting (upcast.c): the registry, and the generation of
     * `$upcasters` the writer bumps before publishing a commit to it (UPC-2) */
    struct upc_reg *upc;
    _Atomic uint64_t upc_gen;

    /* the hash chain's head as of the last published commit (LOG-7;
     * factum_chain_head) */
    pthread_mutex_t chain_mu;
    uint8_t chain_head[32];
    uint64_t chain_pos; /* the last position the head covers, 0: no chained batch yet */

    /* scavenge (scavenge.c): its thread and status; seal_req asks the
     * writer to roll to a new segment before its next batch */
    struct scav *scav;
    _Atomic int seal_req;

    /* the archive tier (archiver.c): its thread and counters; seg_life_mu
     * keeps the scavenger and the archiver off one segment at once (AR-3) */
    struct archiver *arc;
    pthread_mutex_t seg_life_mu;

    /* crypto-shredding (seal.c): NULL without a master key; shred_epoch
     * is added to the log's swap epoch by factum_store_epoch (SEAL-3) */
    struct seal *seal;
    _Atomic uint64_t shred_epoch;

    /* statistics */
    _Atomic uint64_t st_appends, st_events, st_bytes, st_fsyncs, st_fsync_ns, st_fsync_max, st_groups,
        st_group_max;
};

/* scavenge.c */
int scav_init(factum_store *s);
/* At open, read-write: resume a scavenge a crash interrupted. */
int scav_resume(factum_store *s);
/* At close: stop the running scavenge and wait for its thread. */
void scav_shutdown(factum_store *s);
void scav_free(factum_store *s);

/* seal.c (ADR 0027) */
int seal_open(factum_store *s); /* at open, before the log: SEAL-4 */
void seal_free(factum_store *s);
int seal_enabled(const factum_store *s);
void seal_lock(factum_store *s, int lock); /* the key file, held still (a backup copying it) */
/* 1 and the subject (inside name) when a shred_categories rule covers the
 * stream `name`, else 0. */
int seal_category_subject(const factum_store *s, const char *name, size_t len, const char **sub, size_t *sub_len);
/* 1 and the `$subject` of metadata document doc (copied to out, 255
 * bytes at most), else 0. */
int seal_doc_subject(const uint8_t *doc, size_t len, char *out, size_t *out_len);
/* The subject's key, made if it has none yet (written; durable by
 * seal_sync, which the writer calls before it writes a batch: SEAL-1). */
int seal_subject_key(factum_store *s, const char *sub, size_t len, uint32_t *id, uint8_t key[32]);
int seal_sync(factum_store *s);
/* The writer's cipher context, keyed with key id kid (0: none yet). */
#define SEAL_NONCES 256
typedef struct seal_gcm {
    struct ks_gcm *g;
    uint32_t kid;
    unsigned nonces_left;              /* of nonces, drawn with one RAND_bytes call */
    uint8_t nonces[SEAL_NONCES * 12];
} seal_gcm;
void seal_gcm_free(seal_gcm *sg);
/* Seal an event's data and metadata into out (u32 key id, nonce,
 * ciphertext, tag: the sealed frame's data, LOG_EV_SEALED), through sg. */
int seal_event(seal_gcm *sg, uint32_t key_id, const uint8_t key[32], const char *stream, size_t slen,
               const char *type, size_t tlen, const uint8_t id[16], const void *data, size_t dlen, const void *meta,
               size_t mlen, base_buf *out);
/* Open the sealed events among evs (SEAL-2), in place. */
int store_unseal(factum_store *s, factum_event *evs, size_t n);
/* The calling thread's reader holds more than its limit: a read stops
 * after the event it has (factum_reader_set_limit). */
int store_reader_over(void);
/* Shred by key id (restore). */
int store_shred_id(factum_store *s, uint32_t id);

/* archiver.c */
int arc_init(factum_store *s);
void arc_free(factum_store *s);
/* After open, read-write, with an archive_dir: start the thread. */
int arc_start(factum_store *s);
void arc_shutdown(factum_store *s);
/* The scavenger swapped a compacted generation of segment no in (holding
 * seg_life_mu): replace the archive's copy, if it has one (AR-3). */
int arc_after_compact(factum_store *s, uint64_t no);
/* The archive directory a store uses (AR-4): the option `opt` if set (made
 * absolute), else the one recorded in the data directory at path; "" if
 * none. Then the store's own directory under it. */
int store_archive_base(const char *path, const char *opt, char *out, size_t n);
int store_archive_dir(const char *base, const uint8_t uuid[16], char *out, size_t n);

/* store.c */
void store_log(factum_store *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int store_open_io(const char *path, const factum_options *opts, io_env *io, factum_store **out);
/* The batch holding the event at `position` (through the position map):
 * 0 and *batch_lo / *bh, or FACTUM_ECORRUPT (a committed position is always
 * mapped) or -errno. */
int store_batch_at(factum_store *s, uint64_t position, uint64_t *batch_lo, log_batch_hdr *bh);
/* Stop everything as a crash would: no final sync or checkpoint (tests). */
void store_abandon(factum_store *s);

/* writer.c */
int writer_start(factum_store *s);
void writer_stop(factum_store *s);
int writer_submit(factum_store *s, wreq *r); /* queues; waits for room (asynchronous requests: -EAGAIN) */
/* Is the calling thread inside an asynchronous append's callback of s?
 * (Then calls that wait for the writer would wait for themselves.) */
int writer_in_callback(const factum_store *s);
/* Acknowledge the requests of list now (wake their callers, or hand their
 * callbacks to the writer thread). Any thread. */
void writer_complete_now(factum_store *s, wreq *list);
/* Call back the asynchronous requests of list, in order, on this thread
 * (as the writer thread does), and free those that own their memory. */
void writer_call_back(factum_store *s, wreq *list);
/* A driver's fdatasync of the group in flight ended with rc (0 or -errno):
 * publish and complete the group, then lead on (on the driver's thread). */
/* Returns 1 when d keeps the lead without a group in flight: it calls
 * writer_drive_resume once it ran its callbacks (DRV-4). */
int writer_drive_synced(factum_store *s, struct factum_driver *d, int rc);
void writer_drive_resume(factum_store *s, struct factum_driver *d);
/* d leads if requests are queued, nobody leads and some are d's (DRV-4). */
void writer_drive_kick(factum_store *s, struct factum_driver *d);

/* append.c: factum_append_async, through driver d (NULL: none). */
int append_async_via(factum_store *s, struct factum_driver *d, const factum_append_req *reqs, size_t n,
                     factum_append_cb cb, void *ctx);

/* drive.c */
/* Does d lead groups itself (io_uring, or the fault layer's synchronous
 * fdatasync), or hand its requests to the writer thread? */
int drive_leads(const struct factum_driver *d);
/* Is d's thread running d's callbacks (appends then queue, DRV-4)? */
int drive_defers_lead(const struct factum_driver *d);
/* Has d requests not completed yet (DRV-3)? Any thread. */
int drive_has_uncompleted(const struct factum_driver *d);
/* Is the calling thread d's thread? */
int drive_is_own_thread(const struct factum_driver *d);
/* Is d a SYNC driver (FACTUM_DRIVER_SYNC: it leads its requests in its
 * runs, SYNC-2)? Any thread. */
int drive_is_sync(const struct factum_driver *d);
/* Make d's fd readable (any thread). */
void drive_signal(struct factum_driver *d);
/* Start the fdatasync of everything the log wrote since its last sync;
 * writer_drive_synced follows on d's thread, from factum_driver_run. *upto:
 * the log tail it covers. 0, or -errno if it could not be started. */
int drive_sync_start(struct factum_driver *d, flog *log, uint64_t *upto);
/* Hand a completed request to d (any thread): called back on d's thread. */
void drive_deliver(struct factum_driver *d, wreq *r);

/* gate.c */
int gate_init(factum_store *s);
void gate_deinit(factum_store *s);
/* Hold the committed requests of list that a gate has not passed yet;
 * returns the rest (to complete now). */
wreq *gate_hold(factum_store *s, wreq *list);
/* Let every held request go (closing). */
void gate_release_all(factum_store *s);

/* notify.c */
int notify_init(factum_store *s);
void notify_deinit(factum_store *s);
/* After committed_pos moved to `last`: wake waiters, call listeners. */
void notify_commit(factum_store *s, uint64_t last);

/* state.c */
/* Build "$$<stream>" into buf (>= len + 3). */
size_t meta_stream_name(const char *stream, size_t len, char *buf);
/* Load a stream's committed state from the index (not the cache). */
int state_load(factum_store *s, const char *name, size_t len, uint64_t hash, sstate *st);
/* Committed state through the cache. */
int state_get(factum_store *s, const char *name, size_t len, sstate *st);
/* Decode and check the event at log offset lo (in the committed log). */
int event_at(factum_store *s, uint64_t lo, factum_event *ev);
/* The event of `name` at `version` (collisions resolved): 1 found, 0 not, < 0 error. */
int stream_event(factum_store *s, const char *name, size_t len, uint64_t hash, uint64_t version,
                 factum_event *ev, uint64_t *lo_out);
/* read.c: the versions [first, last] of a stream, events at positions up
 * to `committed`, committed at or after min_ts, valid (factum_event_valid_time)
 * at or before valid_until (INT64_MAX: no bound): what factum_read_stream
 * and factum_read_stream_asof read, with their paging. */
typedef struct stream_range {
    uint64_t first, last, committed;
    int64_t min_ts, valid_until;
    /* out: events of the stream examined, and how many of them were
     * committed after `committed` (the stream's state, read after it, may
     * count them: ST-2) */
    size_t examined, beyond;
    /* FACTUM_NOWAIT: give up with -EWOULDBLOCK before touching a frame not
     * in memory (log_frame_resident with this epoch) */
    int nowait;
    unsigned epoch;
} stream_range;
int stream_read_range(factum_store *s, const char *stream, size_t len, stream_range *r, uint64_t from,
                      int back, factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out);
/* meta_parse_lenient, meta_none: common/common.h */

/* sched.c */
/* Start the scheduler thread (after the writer); stop it (before). */
int sched_start(factum_store *s);
void sched_stop(factum_store *s, int abandon);
/* Tests only: hold at most max pending requests in memory (0: the default)
 * in schedulers started from now on. */
void sched_test_max_pending(size_t max);

/* temporal.c */
struct json_value;
/* A time in metadata ("$validFrom", "$deliverAt"): an RFC 3339 string or
 * integer milliseconds, into ns. Errors: FACTUM_EINVAL. */
int tm_json_time(const struct json_value *v, int64_t *ns);

#endif
