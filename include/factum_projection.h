/*
 * factum_projection.h - projections of a libfactum store: system and user
 * (JavaScript) projections, their manager, states, results and states as of
 * a position.
 *
 * Part of factum.h, which includes it: include either. Everything here
 * follows factum.h's conventions (its first comment).
 */
#ifndef FACTUM_PROJECTION_H
#define FACTUM_PROJECTION_H

#include "factum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Projections
 *
 * A projection reads the log ($all) in order and appends what it derives to
 * streams of its own. A projection manager holds a store's projections:
 * their definitions (kept in the store itself, in KurrentDB's
 * `$projections-...` streams), whether each is enabled, how far each has
 * read, and one thread that runs them. It runs KurrentDB's five system
 * projections, written in C:
 *
 *   $streams             the first event of every stream  -> `$streams`
 *   $by_category         every event of `<category>-...`  -> `$ce-<category>`
 *   $stream_by_category  every stream `<category>-...`    -> `$category-<category>`
 *   $by_event_type       every event                      -> `$et-<type>`
 *   $by_correlation_id   every event with a correlation id in its metadata
 *                                                         -> `$bc-<id>`
 *
 * They write link events (type FACTUM_LINK_TYPE, data "<version>@<stream>";
 * `$stream_by_category` writes `$@` events holding a stream name), which
 * reads resolve when asked (factum_sub_options.resolve_links,
 * factum_resolve_link). docs/projections.md says exactly which events each
 * takes, what it writes, and how to configure it.
 *
 * Exactly once: what a projection writes for a stretch of the log is
 * appended in one atomic append together with its checkpoint (the position
 * up to which it has read), so after a crash it goes on after its last
 * committed batch; no source event is projected twice or skipped.
 *
 * The calls below may be made from any thread. Commands (enable, disable,
 * reset, set_query) run on the manager's thread: pass a callback to be told
 * when one is done (the call then never waits: an event loop may use it),
 * or NULL to wait for it.
 * ------------------------------------------------------------------------- */

typedef struct factum_projections factum_projections;

typedef struct factum_projections_options {
    /* Create the five system projections, stopped, if the store has not got
     * them yet (default 1). */
    int create_system;
    /* Enable the five system projections on opening, as KurrentDB's
     * StartStandardProjections does (default 0). */
    int start_system;
    /* Source events a projection reads into one batch, at most (default
     * 4096, 1..65536). A batch is also cut at 1 MiB of output and whenever
     * the projection reaches the head of the log. */
    uint32_t batch_events;
    /* Batches a projection may have appended and not yet committed (default
     * 2, 1..16): it prepares the next batch while the store writes one. */
    uint32_t batches_in_flight;
    /* JavaScript projections (docs/projections.md): the time a handler may
     * take for one event (default 250 ms), the script's heap (default 256
     * MiB), a state's size at most (default 16 MiB, KurrentDB's
     * MaxProjectionStateSize), and the worker program (NULL: found as
     * docs/projections.md says). 0 means the default. */
    /* Run JavaScript projections (default 1); 0: they may be created and
     * listed but do not run (KurrentDB's RunProjections=System). */
    int run_user;
    uint32_t js_ms_per_event;
    uint32_t js_heap_mib;
    uint32_t js_state_bytes;
    const char *js_worker;
    /* Optional sink for log lines, called from the manager's thread (and
     * from the opening thread). */
    void (*log_fn)(void *ctx, int level, const char *message);
    void *log_ctx;
} factum_projections_options;

FACTUM_API void factum_projections_options_init(factum_projections_options *o);

/* Open the projection manager of store s (o may be NULL: the defaults):
 * read the definitions, create the system projections if asked and
 * missing, and start the thread that runs the enabled projections, each
 * from its last checkpoint. At most one manager per store; close it before
 * the store. The manager's own writes are appends to s.
 * Errors: FACTUM_EREADONLY, FACTUM_EINVAL, FACTUM_ECORRUPT, -ENOMEM, and
 * errors of the store's reads and appends. */
FACTUM_API int factum_projections_open(factum_store *s, const factum_projections_options *o,
                                       factum_projections **out);

/* Stop the thread, wait for the appends in flight, free everything. What a
 * projection read after its last committed batch is read again at the next
 * open (and projected then, once). NULL is a no-op. */
FACTUM_API void factum_projections_close(factum_projections *m);

enum factum_projection_mode {
    FACTUM_PROJECTION_CONTINUOUS = 0, /* follows the log for ever (every system projection) */
    FACTUM_PROJECTION_ONE_TIME = 1,
    FACTUM_PROJECTION_TRANSIENT = 2,
};

enum factum_projection_state {
    FACTUM_PROJECTION_STOPPED = 0,  /* disabled, or not running yet */
    FACTUM_PROJECTION_RUNNING = 1,
    FACTUM_PROJECTION_FAULTED = 2,  /* stopped by an error: `reason`; enable (or reset) starts it again */
    FACTUM_PROJECTION_STOPPING = 3, /* disabled; waiting for its appends in flight */
    FACTUM_PROJECTION_COMPLETED = 4, /* a one-time projection that has read the whole log */
};

/* Where a projection stands (KurrentDB's Statistics). */
typedef struct factum_projection_status {
    const char *name;    /* valid until factum_projections_close */
    const char *handler; /* KurrentDB's handler type, e.g. "native:...CategorizeEventsByStreamPath" */
    int mode;            /* enum factum_projection_mode */
    int system;          /* 1: one of the five system projections */
    int enabled;         /* as stored: should run */
    int state;           /* enum factum_projection_state */
    char reason[256];    /* FAULTED: why; otherwise empty */
    int64_t epoch;       /* bumped by every reset */
    int64_t version;     /* bumped by every change of the definition */
    uint64_t position;   /* last position of $all read (0: none) */
    uint64_t checkpoint; /* last position whose output is committed with its checkpoint */
    uint64_t events_processed; /* events read since the manager opened (KurrentDB's eventsProcessedAfterRestart) */
    uint64_t events_emitted;   /* events written since the manager opened */
    uint64_t lag_events;       /* committed events after `position` */
    int64_t lag_ns;            /* age of the oldest of them (0 if none) */
    double progress;           /* 100 * position / last committed position */
    uint32_t writes_in_flight; /* batches appended, not yet committed */
    uint32_t buffered_events;  /* events prepared for the next batch */
    double events_per_second;  /* source events handled per second, over the last few seconds */
    uint32_t partitions_cached; /* partitions whose state the engine holds (JavaScript) */
    int emit_enabled;          /* JavaScript: may emit */
    int track_emitted_streams; /* JavaScript: lists its emitted streams */
} factum_projection_status;

/* A command's completion: rc is 0 or its error. Runs on the manager's
 * thread: return quickly, do not wait for other commands. */
typedef void (*factum_projection_cb)(void *ctx, int rc);

/* Enable `name` (stored in its definition) and start it from its last
 * checkpoint; a faulted projection starts again. Enabling one that runs
 * is a no-op. Returns 0 when queued (cb runs once) or, with cb NULL, the
 * command's result. Errors: FACTUM_ENOTFOUND (no such projection),
 * FACTUM_ECLOSED (the manager is closing), errors of the store's appends. */
FACTUM_API int factum_projection_enable(factum_projections *m, const char *name, factum_projection_cb cb,
                                        void *ctx);

/* Disable `name` (stored) and stop it once its appends in flight are done;
 * events read into a batch not yet appended are read again when it is
 * enabled. Errors as factum_projection_enable. */
FACTUM_API int factum_projection_disable(factum_projections *m, const char *name, factum_projection_cb cb,
                                         void *ctx);

/* Reset `name`: a new epoch; the streams it wrote are truncated (their
 * `$tb` set past their last event, so reads show only what comes after),
 * and it starts again from the beginning of the log (if enabled). Errors
 * as factum_projection_enable. */
FACTUM_API int factum_projection_reset(factum_projections *m, const char *name, factum_projection_cb cb,
                                       void *ctx);

/* Replace the query (configuration) of `name`, e.g. "last\n-" for
 * $by_category, and store it; a running projection applies it from the
 * next event it reads (what it wrote stays). Errors: FACTUM_EINVAL (the
 * handler refuses the query; docs/projections.md), and as
 * factum_projection_enable. */
FACTUM_API int factum_projection_set_query(factum_projections *m, const char *name, const char *query,
                                           factum_projection_cb cb, void *ctx);

/* The status of `name`. Errors: FACTUM_ENOTFOUND. */
FACTUM_API int factum_projection_get_status(factum_projections *m, const char *name,
                                            factum_projection_status *st);

/* The query of `name` into *out (malloc'd, NUL-terminated; free() it).
 * Errors: FACTUM_ENOTFOUND, -ENOMEM. */
FACTUM_API int factum_projection_get_query(factum_projections *m, const char *name, char **out);

/* Call cb with the status of every projection, in the order they were
 * created; cb returns 0 to go on, anything else to stop (returned). */
FACTUM_API int factum_projections_each(factum_projections *m,
                                       int (*cb)(void *ctx, const factum_projection_status *st), void *ctx);

/* Wait until everything `name` writes for the events at positions <=
 * `position` is committed (it has read that far and its batches are
 * done), or timeout_ms passed (< 0: no limit). Returns 1 when it is, 0 on
 * timeout or if the projection is stopped, FACTUM_EFAULTED if it faulted,
 * FACTUM_ENOTFOUND. Do not call it from a command's callback. */
FACTUM_API int factum_projection_wait(factum_projections *m, const char *name, uint64_t position,
                                      int timeout_ms);

/* ---- JavaScript projections -------------------------------------------
 *
 * A user projection is a JavaScript source in KurrentDB's projection API
 * (fromAll().when({...}), partitionBy, outputState, emit, linkTo, ...; see
 * docs/projections.md), run by V8 in a worker process of its own, so that
 * a runaway script faults its projection and nothing else. Its state,
 * result, checkpoints and emitted-stream list are kept as KurrentDB keeps
 * them ($projections-<name>-checkpoint, -result, -emittedstreams, and
 * -<partition>-... for partitions); what it emits is appended together
 * with its checkpoint (exactly once, as for the system projections). */

typedef struct factum_projection_def {
    const char *name;          /* not empty, no '$' first (system names are KurrentDB's) */
    const char *query;         /* the JavaScript source */
    int mode;                  /* enum factum_projection_mode (default CONTINUOUS) */
    int enabled;               /* start it at once (default 1) */
    int emit_enabled;          /* may emit()/linkTo() (default 0: a script that emits faults) */
    int track_emitted_streams; /* list emitted streams in -emittedstreams (default 0) */
} factum_projection_def;

FACTUM_API void factum_projection_def_init(factum_projection_def *d);

/* Create a JavaScript projection and store its definition. A script that
 * does not compile is created all the same and faults with the reason in
 * its status, as in KurrentDB. Errors: FACTUM_EEXISTS, FACTUM_EINVAL (a bad
 * name or mode), FACTUM_ECLOSED, errors of the store's appends. A
 * TRANSIENT projection's definition is not stored (it is gone after a
 * restart). */
FACTUM_API int factum_projection_create(factum_projections *m, const factum_projection_def *d,
                                        factum_projection_cb cb, void *ctx);

/* Replace a projection's query (NULL: keep it) and its emit option (-1:
 * keep it); a running projection restarts from its checkpoint with it.
 * For a system projection the query is its configuration
 * (factum_projection_set_query). Errors as factum_projection_enable. */
FACTUM_API int factum_projection_update(factum_projections *m, const char *name, const char *query,
                                        int emit_enabled, factum_projection_cb cb, void *ctx);

enum {
    FACTUM_PROJECTION_DELETE_EMITTED_STREAMS = 1, /* delete the streams it emitted to (tracked ones) */
    FACTUM_PROJECTION_DELETE_STATE_STREAM = 2,    /* delete -result and the partitions' streams */
    FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM = 4,
};

/* Delete a stopped projection (its definition; with flags, what it wrote).
 * Errors: FACTUM_EBADSTATE (it runs: disable it first, as KurrentDB
 * requires), FACTUM_EINVAL (a system projection), and as
 * factum_projection_enable. */
FACTUM_API int factum_projection_delete(factum_projections *m, const char *name, unsigned flags,
                                        factum_projection_cb cb, void *ctx);

/* The state (or the result) of `name` as last committed, for `partition`
 * (NULL or "": the projection's only state, or the shared one): JSON into
 * *json (malloc'd, NUL-terminated, free() it) and *len; "" when it has
 * none yet. A system projection has no state (""). Errors:
 * FACTUM_ENOTFOUND (no such projection), -ENOMEM, read errors. */
FACTUM_API int factum_projection_get_state(factum_projections *m, const char *name, const char *partition,
                                           char **json, size_t *len);
FACTUM_API int factum_projection_get_result(factum_projections *m, const char *name, const char *partition,
                                            char **json, size_t *len);

/* ---- A JavaScript projection's state as of a position -------------------
 *
 * The exact state (and result) a projection had after the event at a
 * global position, by running its handlers again over the log up to that
 * position in a scratch engine of its own (a factum-js worker): nothing is
 * appended (what the handlers emit is dropped), the running projection is
 * not touched and need not run (a stopped or faulted one can be asked).
 * docs/temporal.md, "A projection's state as of a time"; ADR 0017.
 *
 *   - The definition is the projection's current one (its query now, with
 *     the upcasters registered now), not the one it had then.
 *   - The replay starts at the beginning of the log, or, for a projection
 *     without partitions (nor biState), after the newest checkpoint that
 *     stands for a position at or before the one asked (whenever it was
 *     committed) whose state the current query computed (every definition
 *     of the checkpoint's epoch up to it has today's query).
 *   - foreachStream() without biState reads only the asked partition's
 *     stream's events; partitionBy() and biState replay every event.
 *   - Links in sources resolve as of the position (factum_resolve_link_asof).
 *   - The script's log() lines are dropped.
 * A system projection has no state: what it writes (its streams) is read
 * as of a time with factum_read_stream_asof. */

typedef struct factum_projection_asof_options {
    /* The whole replay, at most (default 30000 ms, at most 600000). It is
     * checked between batches of 256 events: one batch's handlers may run
     * past it by at most their own time limit. */
    uint32_t time_limit_ms;
    /* Events of $all the replay may read, at most (default 10,000,000): a
     * position further than that from its starting point is refused before
     * any work. */
    uint64_t max_events;
    /* biState with partitions: the bytes of partition states the replay
     * keeps beside the engine, at most (default 64 MiB). */
    size_t max_state_bytes;
    /* Start from a usable checkpoint (default 1); 0: always from the
     * beginning of the log (tests, figures). */
    int use_checkpoints;
    /* Optional (NULL: none): called on the replaying thread between
     * batches; non-zero ends the replay with -ECANCELED (a client that gave
     * up, a server stopping). */
    int (*cancelled)(void *ctx);
    void *cancel_ctx;
} factum_projection_asof_options;

FACTUM_API void factum_projection_asof_options_init(factum_projection_asof_options *o);

/* What factum_projection_state_asof answers. */
typedef struct factum_projection_asof {
    char *state;  /* JSON, as factum_projection_get_state gives it ("" none); malloc'd, NUL-terminated */
    size_t state_len;
    char *result; /* JSON, as factum_projection_get_result gives it ("" none) */
    size_t result_len;
    uint64_t position;       /* the position answered for (FACTUM_END: the head then) */
    uint64_t from;           /* the replay read after this position: 0 the start, else a checkpoint's */
    uint64_t events_read;    /* events of $all read */
    uint64_t events_handled; /* events given to the handlers */
} factum_projection_asof;

/* Replay `name`'s handlers over the log up to and including `position`
 * (FACTUM_END: the last committed; factum_position_at turns a time into a
 * position) and fill *out with the state and result of `partition` (NULL
 * or "": the projection's only state, or the shared one of a biState
 * projection) as they were then; free it with factum_projection_asof_free.
 * o may be NULL (the defaults); err (may be NULL) receives a message.
 * Errors: FACTUM_ENOTFOUND (no such projection), FACTUM_EINVAL (a system
 * projection; a position past the last committed one; a query that does
 * not compile), FACTUM_EFAULTED (a handler failed, ran out of time or
 * heap, emitted with emit disabled, or an upcaster failed, at or before
 * the position: err names the event), FACTUM_ETIMEDOUT (time_limit_ms),
 * FACTUM_ETOOBIG (more than max_events to read, or max_state_bytes),
 * -EBUSY (FACTUM_PROJECTION_ASOF_MAX replays run on this manager already:
 * try later), FACTUM_ECLOSED (factum_projections_close was called: a
 * replay running ends at its next batch, and close waits for it),
 * -ECANCELED (o->cancelled said so), -ENOENT
 * (no factum-js worker), -ENOMEM, read errors. All
 * pointers are borrowed for the call. Thread-safe; blocks for the replay:
 * never call it from an event loop. */
#define FACTUM_PROJECTION_ASOF_MAX 4
FACTUM_API int factum_projection_state_asof(factum_projections *m, const char *name, const char *partition,
                                            uint64_t position, const factum_projection_asof_options *o,
                                            factum_projection_asof *out, char *err, size_t err_len);

/* Free what *a holds (not a itself); a zeroed or freed one is a no-op. */
FACTUM_API void factum_projection_asof_free(factum_projection_asof *a);

#ifdef __cplusplus
}
#endif
#endif /* FACTUM_PROJECTION_H */
