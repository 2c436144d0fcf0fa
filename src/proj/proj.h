/*
 * proj.h - the projections layer's internals, shared by the files of
 * src/proj. The layer uses the store only through the public API
 * (factum.h: subscriptions, reads, appends) and base/json.h.
 *
 *   manager.c   the public factum_projection* calls: definitions in the
 *               store, commands, status; the thread that runs projections
 *   engine.c    one projection running: cursor, batches, checkpoints,
 *               recovery after a crash, faults, reset
 *   batch.c     a batch: the links of a stretch of the log grouped by
 *               stream, and its checkpoint, as one multi-stream append
 *   system.c    the five system projections as I/O-free handlers: source
 *               event in, at most one event out (KurrentDB's semantics)
 *
 * Design note (invariants; tests cite them as PRJ-n):
 *  PRJ-1  A batch covers a stretch (from, to] of $all: it holds every event
 *         the projection emits for the events at those positions, and a
 *         checkpoint event recording `to` in `$projections-<name>-checkpoint`.
 *         It is one factum_append_async of several parts, so it is
 *         committed whole or not at all (LOG-3: the store writes it as one
 *         record).
 *  PRJ-2  Batches chain: each expects the checkpoint stream at the version
 *         the previous batch leaves it at. If a batch fails, every batch
 *         appended after it fails too (wrong expected version), so the
 *         committed batches are always a prefix of those appended, in
 *         order, and their stretches are contiguous.
 *  PRJ-3  A projection starts (at open, enable, or after a fault) by
 *         reading its last committed checkpoint c and reading $all after c.
 *         With PRJ-1 and PRJ-2: every source event is projected exactly
 *         once, whatever crashed when.
 *  PRJ-4  Bounded: a projection holds at most batches_in_flight appended
 *         batches and one being filled, each at most batch_events source
 *         events and PRJ_BATCH_BYTES of output. Reading never runs ahead of
 *         the batches: when they are all in flight the projection waits.
 *  PRJ-5  Nothing a projection writes is read back by it as a source: every
 *         stream it writes is a system stream (`$...`), and system streams
 *         are not sources (KurrentDB's rule), so projections do not feed
 *         on each other. A checkpoint alone (no output) is written only
 *         after PRJ_IDLE_CHECKPOINT events read without output, so an idle
 *         log is not kept busy by checkpoints.
 *  PRJ-6  A reset bumps the epoch in the definition first, then truncates
 *         the output streams, then writes a checkpoint of the new epoch at
 *         position 0. A checkpoint of an older epoch found at start means a
 *         reset was interrupted: it is finished before anything runs.
 *
 * States of a projection (the manager's thread moves them):
 *
 *     STOPPED --enable--> RUNNING --disable--> STOPPING --in flight done--> STOPPED
 *                           |  ^
 *                   error   v  | enable / reset
 *                          FAULTED
 */
#ifndef FACTUM_PROJ_H
#define FACTUM_PROJ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "factum.h"

#define PRJ_BATCH_BYTES     (1u << 20) /* output of one batch, at most (PRJ-4) */
#define PRJ_IDLE_CHECKPOINT 4096       /* events read without output before a checkpoint alone (PRJ-5) */
#define PRJ_SUBSYSTEM       4          /* KurrentDB's ProjectionConstants.SubsystemVersion, in "$v" */

/* ---- system.c: the handlers ----------------------------------------- */

/* A handler's configuration, parsed from the projection's query. */
typedef struct prj_config {
    int last;    /* category: split at the last separator (else the first) */
    char sep[5]; /* category: the separator, one UTF-8 character */
    size_t sep_len;
    char corr_key[256]; /* $by_correlation_id: the metadata key of the id */
    size_t corr_key_len;
} prj_config;

/* A source event as a handler sees it: the record read from $all, and the
 * event it stands for (the record itself, or a resolved link's target). */
typedef struct prj_src {
    const factum_event *rec;
    const factum_event *ev;
    char *scratch; /* FACTUM_MAX_STREAM_LEN + 1 bytes a handler may decode into */
} prj_src;

enum { PRJ_DATA_LINK = 0, PRJ_DATA_RAW = 1 };

/* What a handler emits for one source event (at most one event). Every
 * pointer points into the source event or the configuration. */
typedef struct prj_emit {
    const char *prefix; /* the output stream is prefix + name */
    const char *name;
    size_t name_len;
    const char *type; /* FACTUM_LINK_TYPE or "$@" */
    int data_kind;    /* PRJ_DATA_LINK: "<version>@<target>"; PRJ_DATA_RAW: raw */
    uint64_t version;
    const char *target;
    size_t target_len;
    const char *raw;
    size_t raw_len;
    /* extra metadata, KurrentDB's */
    const char *orig; /* "$o" (NULL: none) */
    size_t orig_len;
    int deleted;   /* "$deleted": -1 */
    int timestamp; /* "$eventTimestamp" of the record */
} prj_emit;

typedef struct prj_handler {
    const char *name;   /* "$by_category" */
    const char *type;   /* KurrentDB's handler type: "native:KurrentDB.Projections.Core.Standard...." */
    const char *query;  /* the query KurrentDB creates it with */
    const char *prefix; /* its output streams begin with this (for a reset) */
    int exact;          /* the prefix is the whole name of its one output stream */
    int include_links;  /* links in source streams are taken (resolved) */
    /* Parse a query into *c: 0, or FACTUM_EINVAL with a reason in err. */
    int (*configure)(prj_config *c, const char *query, size_t len, char *err, size_t err_len);
    /* 1 and *out if the source event emits, 0 if not. */
    int (*process)(const prj_config *c, const prj_src *src, prj_emit *out);
} prj_handler;

extern const prj_handler prj_system_handlers[5];
#define PRJ_N_SYSTEM 5

/* The system handler of that name, or NULL. */
const prj_handler *prj_system_handler(const char *name);

/* KurrentDB's source rule (TransactionFileEventFilter): may a record of
 * this stream be a source? Not if it is a system stream (`$...`), except
 * the metadata stream `$$x` of a stream x that is not one. */
int prj_source_stream(const char *stream, size_t len);

/* The value of top-level member `key` of the JSON object json: 1 with
 * *val / *val_len (a string's contents still escaped, *is_string set, or a
 * scalar's text), 0 if absent or json is not an object. Scans without
 * building a tree; does not validate what it skips. */
int prj_json_member(const char *json, size_t len, const char *key, size_t key_len, const char **val,
                    size_t *val_len, int *is_string);

/* ---- batch.c --------------------------------------------------------- */

typedef struct prj_batch prj_batch;

/* What a batch needs to know of its projection. */
typedef struct prj_batch_ctx {
    const char *ckpt_stream; /* "$projections-<name>-checkpoint" */
    int64_t ckpt_expected;   /* the version this batch's checkpoint expects (PRJ-2) */
    int ckpt_create;         /* the checkpoint stream is new: add its `$maxCount` metadata */
    int64_t projection_id, epoch, version;
} prj_batch_ctx;

prj_batch *prj_batch_new(void);
void prj_batch_free(prj_batch *b);
/* Empty it for a stretch starting after `from`. */
void prj_batch_reset(prj_batch *b, uint64_t from);
/* Add what e says for source src: 0, or -ENOMEM / FACTUM_EBADNAME (the
 * output stream name would be too long: nothing added). */
int prj_batch_add(prj_batch *b, const prj_src *src, const prj_emit *e);
/* The stretch now ends at `to` (events up to it were read). */
void prj_batch_cover(prj_batch *b, uint64_t to);
size_t prj_batch_events(const prj_batch *b);
size_t prj_batch_bytes(const prj_batch *b);
uint64_t prj_batch_to(const prj_batch *b);
uint64_t prj_batch_from(const prj_batch *b);
/* Append it (factum_append_async): links grouped by stream, then the
 * checkpoint. cb(ctx, rc) runs on the store's writer thread. 0 when
 * queued; -EAGAIN when the store's queue is full; another error. */
int prj_batch_submit(prj_batch *b, factum_store *s, const prj_batch_ctx *c, void (*cb)(void *ctx, int rc),
                     void *ctx);
/* A JavaScript projection's event: stream, type, data and metadata copied
 * (type is stored NUL-terminated). 0, or -ENOMEM / FACTUM_EBADNAME. */
int prj_batch_add_event(prj_batch *b, const char *stream, size_t stream_len, const char *type, size_t type_len,
                        uint32_t flags, const void *data, size_t data_len, const void *meta, size_t meta_len);
/* The data of the batch's checkpoint event (a JavaScript projection's
 * state, "[state]" or "[state,result]" as KurrentDB serializes it). */
int prj_batch_set_checkpoint_data(prj_batch *b, const void *data, size_t len);
/* Has the append completed? 1 with its result (and, if it failed, the
 * stream of the part that failed, or NULL), 0 if it is still in flight. */
int prj_batch_done(prj_batch *b, int *rc, const char **failed_stream);

/* The JSON metadata of a checkpoint at `position` for this projection:
 * {"$v":"<id>:<epoch>:<version>:4","$c":p,"$p":p}. */
int prj_checkpoint_meta(base_buf *b, int64_t projection_id, int64_t epoch, int64_t version,
                        uint64_t position);
/* Parse a checkpoint event's metadata: 0 with *position and *epoch, or
 * FACTUM_ECORRUPT. */
int prj_checkpoint_parse(const uint8_t *meta, size_t len, uint64_t *position, int64_t *epoch);

#define PRJ_CHECKPOINT_TYPE "$ProjectionCheckpoint"

/* ---- engine.c / manager.c -------------------------------------------- */

typedef struct prj prj;
typedef struct prj_cmd prj_cmd;
typedef struct prj_jsrun prj_jsrun;

struct factum_projections {
    factum_store *s;
    factum_projections_options opts;
    pthread_t thread;
    int thread_running;
    pthread_mutex_t mu;     /* the projections' shared fields, the command queue */
    pthread_cond_t cv;      /* the thread sleeps here */
    pthread_cond_t done_cv; /* waiters of commands and of factum_projection_wait */
    _Atomic int kick;       /* work for the thread: a commit, a completion, a command */
    _Atomic int sleeping;
    _Atomic int callbacks; /* batch completions not yet returned (close waits for 0) */
    int listening;         /* the commit listener is registered */
    int stopping;
    prj **p; /* written by the manager's thread under mu; other threads read under mu */
    size_t n;
    prj **dead; /* deleted projections, kept until close (their status names stay valid) */
    size_t n_dead;
    prj_cmd *cmd_head, *cmd_tail;
    int64_t registry_version; /* of `$projections-$all` (-1: none) */
    _Atomic int asof_running; /* replays of factum_projection_state_asof running (asof.c) */
    _Atomic int asof_stop;    /* closing: replays end at their next batch, new ones are refused */
};

/* Wake the manager's thread (from any thread, the store's included). */
void prj_kick(factum_projections *m);
void prj_log(factum_projections *m, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One projection. Fields marked shared are read by other threads under
 * m->mu and written by the manager's thread under it; the rest belong to
 * the manager's thread. */
struct prj {
    factum_projections *m;
    char *name;
    char *ckpt_stream;    /* "$projections-<name>-checkpoint" */
    char *def_stream;     /* "$projections-<name>" */
    const prj_handler *h; /* NULL: no handler for its type in this build (it does not run) */
    char *type;           /* handler type, as stored */
    prj_config cfg;
    int cfg_rc; /* 0, or why the query does not configure the handler */
    char cfg_err[200];
    int64_t def_version; /* version of the definition stream */
    int64_t projection_id;
    int js;           /* a JavaScript projection (HandlerType "JS") */
    int transient;    /* its definition is not stored */
    int deleted;      /* deleted: in m->dead, commands for it fail */
    prj_jsrun *jr;    /* a JavaScript projection's run (jsrun.c), NULL when not running */
    /* shared */
    char *query;
    int mode, enabled, state;
    char reason[256];
    int64_t epoch, version;
    uint64_t position, checkpoint, done;
    uint64_t events_processed, events_emitted;
    int emit_enabled, track_emitted;
    uint32_t partitions;   /* JavaScript: partitions the engine holds */
    double rate;           /* events handled per second (recent) */
    uint64_t rate_events;  /* events_processed when rate was last computed */
    int64_t rate_at_ns;
    uint32_t in_flight, buffered;
    /* the manager's thread */
    factum_sub *sub;
    factum_reader *rdr; /* the sealed events it reads open here (reset per step; store/seal.h) */
    char *scratch;        /* FACTUM_MAX_STREAM_LEN + 1 bytes for handlers */
    uint64_t read_pos;    /* last position read */
    uint64_t since_cut;   /* events read into the batch being filled */
    int64_t ckpt_version; /* checkpoint stream's version after the last batch appended (-1: none) */
    prj_batch *fill;      /* the batch being filled */
    prj_batch **flight;   /* ring of opts.batches_in_flight batches appended */
    size_t flight_head, flight_n;
    prj_batch **spare; /* batches free for filling */
    size_t n_spare;
    int want_start; /* start once its batches in flight are done */
};

/* engine.c: shared with jsrun.c. */
void prj_publish(prj *p);
int prj_reap(prj *p);
int prj_submit(prj *p);
int prj_read_checkpoint(prj *p, uint64_t *pos, int64_t *epoch, int64_t *version);
int prj_truncate_stream(factum_store *s, const char *stream);

/* jsrun.c: which records of $all a script takes (KurrentDB's rules,
 * docs/projections.md), for the running projection and for a replay
 * (asof.c). 1 if rec is taken: *ev is the event its handlers see (rec, or
 * its link's target resolved into *target - as of *asof when asof is not
 * NULL -, upcast into *up through *ub, created if NULL) and *deleted says
 * it is a tombstone ($deleted); 0 if not taken; or an error
 * (FACTUM_EUPCAST: factum_upcast_buf_error(*ub) says why). */
struct prj_js_def;
int prj_js_select(factum_store *s, const struct prj_js_def *d, const factum_event *rec, const factum_asof *asof,
                  factum_upcast_buf **ub, factum_event *target, factum_event *up, const factum_event **ev,
                  int *deleted);

/* jsrun.c: a JavaScript projection's engine on the manager's thread. */
int prj_js_start(prj *p, uint64_t pos);   /* open the worker (after prj_init_run and the checkpoint read) */
int prj_js_step(prj *p, int *did);        /* read, handle, append; an error faults p */
void prj_js_stop(prj *p);                 /* close the worker, drop what is staged */
size_t prj_js_staged(const prj *p);       /* events staged for the handlers, not yet handled */
int prj_js_reset_streams(prj *p);         /* the streams a reset truncates (PRJ-6) */
/* Streams a JavaScript projection wrote, for delete: cb per stream name. */
int prj_js_each_stream(prj *p, int emitted, int state, int checkpoint, int (*cb)(void *ctx, const char *stream),
                       void *ctx);

/* engine.c: called on the manager's thread. */
int prj_init_run(prj *p); /* the batches and buffers of a projection */
void prj_free_run(prj *p);
int prj_start(prj *p);            /* from the last checkpoint: RUNNING, or FAULTED (returned) */
void prj_stop(prj *p, int state); /* close the cursor, drop the batch being filled, set state */
int prj_step(prj *p);             /* reap completions, read, append: 1 if it did something */
void prj_fault(prj *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The reset's work after the epoch was bumped (PRJ-6): truncate the output
 * streams, write a checkpoint of the epoch at position 0. */
int prj_reset_streams(prj *p);

#endif
