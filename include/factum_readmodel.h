/*
 * factum_readmodel.h - SQL read models kept by factum from the log.
 *
 * A read model is a set of SQL tables that factum keeps up to date from the
 * events of the log: a named definition says which tables to create and,
 * for each event type, which SQL statements to run, with named parameters
 * bound from the event (`:data.amount`, `:stream`, `:position`, ...).
 * docs/readmodels.md describes the definition document in full.
 *
 * Targets: SQLite (a file per read model in a directory beside the store,
 * the default) and PostgreSQL (a connection string; a schema per read
 * model).
 *
 * Guarantees:
 *  - Exactly once: the events of a batch are applied in one transaction of
 *    the target that also stores the read model's checkpoint (the position
 *    of $all up to which it has applied), so a crash at any instant neither
 *    loses nor doubles an event's effect.
 *  - A statement that fails stops the read model (FAULTED) with the event,
 *    the statement and the error in its status, unless its policy says to
 *    skip the event or to park it (a row in the target's `factum_parked`
 *    table, written in the same transaction).
 *  - Lifecycles (Marten's names): async follows the log; inline holds the
 *    acknowledgement of every append until the read model has applied it
 *    (factum_ack_gate_*, factum.h), so that a query after an acknowledged
 *    append sees its effect.
 *  - Rebuild without downtime: a new generation is built beside the current
 *    one from the start of the log and replaces it when it has caught up;
 *    queries are served by the current one meanwhile.
 *
 * Definitions are kept in the store itself (the `$readmodels` stream).
 * All calls are thread-safe.
 */
#ifndef FACTUM_READMODEL_H
#define FACTUM_READMODEL_H

#include "factum.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct factum_readmodels factum_readmodels;

typedef struct factum_readmodels_options {
    /* Directory of the SQLite targets (NULL: "<store>/readmodels"). */
    const char *dir;
    /* Events applied in one target transaction, at most (default 2000,
     * 1..100000). A batch is also cut when the read model reaches the head
     * of the log. */
    uint32_t batch_events;
    /* Run the read models that are not paused on opening (default 1). */
    int start;
    /* Optional sink for log lines (any thread; must be thread-safe). */
    void (*log_fn)(void *ctx, int level, const char *message);
    void *log_ctx;
} factum_readmodels_options;

FACTUM_API void factum_readmodels_options_init(factum_readmodels_options *o);

/* Open the read models of store s: read their definitions and start each
 * (one thread per read model) from its checkpoint. At most one per store;
 * close it before the store. Errors: FACTUM_EREADONLY, -errno (the
 * directory), -ENOMEM, errors of the store's reads. */
FACTUM_API int factum_readmodels_open(factum_store *s, const factum_readmodels_options *o,
                                      factum_readmodels **out);

/* Stop every read model (what was applied stays; the next open goes on
 * from each checkpoint) and free everything. NULL is a no-op. */
FACTUM_API void factum_readmodels_close(factum_readmodels *m);

enum factum_readmodel_state {
    FACTUM_READMODEL_RUNNING = 0,
    FACTUM_READMODEL_PAUSED = 1,
    FACTUM_READMODEL_FAULTED = 2, /* stopped by an error: `error` */
    FACTUM_READMODEL_STARTING = 3, /* connecting to its target / creating its tables */
};

enum factum_readmodel_lifecycle { FACTUM_READMODEL_ASYNC = 0, FACTUM_READMODEL_INLINE = 1 };

/* Where a read model stands. Strings are copies. */
typedef struct factum_readmodel_status {
    char name[128];
    char target[16];    /* "sqlite" or "postgres" */
    int lifecycle;      /* enum factum_readmodel_lifecycle */
    int state;          /* enum factum_readmodel_state */
    uint64_t generation; /* of the tables queries read (bumped by each rebuild) */
    uint64_t position;   /* every event of $all at positions <= this is applied */
    uint64_t head;       /* the last committed position of the log */
    uint64_t lag_events; /* head - position */
    int64_t lag_ns;      /* age of the oldest event not applied (0 if none) */
    uint64_t applied;    /* events that ran statements, since opening */
    uint64_t skipped;    /* events skipped by the policy, since opening */
    uint64_t parked;     /* events parked by the policy, since opening */
    double events_per_second; /* over the last few seconds */
    /* A rebuild in progress (building != 0): its generation and position. */
    uint64_t building;
    uint64_t building_position;
    /* FAULTED: the error, the statement and the event that stopped it. */
    char error[512];
    char statement[512];
    uint64_t error_position;
    char error_stream[256];
    uint64_t error_version;
    /* Who may query it: the definition's "readers", a JSON array of roles
     * (users or groups; "$all": every authenticated user). */
    char readers[512];
    int live; /* it has reached the head since it started (an inline one holds appends only then) */
} factum_readmodel_status;

/* Create a read model from its definition (a JSON document,
 * docs/readmodels.md), store it and start it. Everything is checked first
 * (the document, every statement against the target, every parameter): a
 * bad definition changes nothing and err (may be NULL) says what is wrong.
 * Errors: FACTUM_EEXISTS, FACTUM_EBADJSON, FACTUM_EINVAL (with err), errors
 * of the target (FACTUM_ETARGET with err), of the store's appends. */
FACTUM_API int factum_readmodel_create(factum_readmodels *m, const char *definition, size_t len, char *err,
                                       size_t err_len);

/* Pause (stop applying; queries are still served) and resume. Stored.
 * Resume also restarts a FAULTED read model at the event that stopped it.
 * Errors: FACTUM_ENOTFOUND. */
FACTUM_API int factum_readmodel_pause(factum_readmodels *m, const char *name);
FACTUM_API int factum_readmodel_resume(factum_readmodels *m, const char *name);

/* Rebuild `name` from the start of the log into a new generation, with its
 * definition or, if definition is not NULL, with a new one (checked as by
 * create; its name must be the same). Returns when the build has started;
 * the new generation replaces the current one when it has caught up.
 * A rebuild already running is replaced. Errors as create, and
 * FACTUM_ENOTFOUND. */
FACTUM_API int factum_readmodel_rebuild(factum_readmodels *m, const char *name, const char *definition,
                                        size_t len, char *err, size_t err_len);

/* Stop `name`, forget its definition and delete its tables (the SQLite
 * file, or the PostgreSQL schema). Errors: FACTUM_ENOTFOUND. */
FACTUM_API int factum_readmodel_drop(factum_readmodels *m, const char *name);

/* The status of `name`. Errors: FACTUM_ENOTFOUND. */
FACTUM_API int factum_readmodel_get_status(factum_readmodels *m, const char *name,
                                           factum_readmodel_status *st);

/* Call cb for every read model, by name; cb returns 0 to go on, anything
 * else to stop (returned). */
FACTUM_API int factum_readmodels_each(factum_readmodels *m,
                                      int (*cb)(void *ctx, const factum_readmodel_status *st), void *ctx);

/* The definition of `name` (JSON, as stored) into *out (malloc'd,
 * NUL-terminated; free() it). Errors: FACTUM_ENOTFOUND, -ENOMEM. */
FACTUM_API int factum_readmodel_get_definition(factum_readmodels *m, const char *name, char **out);

/* Read-your-own-writes: wait until `name` has applied every event at
 * positions <= `position` (the position an append returned), at most
 * timeout_ms (< 0: no limit). Returns 0 when it has, FACTUM_ETIMEDOUT,
 * FACTUM_EFAULTED (it stopped on an error before reaching it),
 * FACTUM_ENOTFOUND, FACTUM_ECLOSED. */
FACTUM_API int factum_readmodel_wait(factum_readmodels *m, const char *name, uint64_t position,
                                     int timeout_ms);

/* The same, without blocking (for an event loop): cb(ctx, rc) runs once, on
 * a read model's thread, with 0 when `name` has applied `position`,
 * FACTUM_EFAULTED, FACTUM_ENOTFOUND (dropped) or FACTUM_ECLOSED - unless
 * cancelled first. Returns 1 if the position is applied already (cb will
 * not run, *out is NULL), 0 with *out when cb will run, or an error
 * (FACTUM_ENOTFOUND, FACTUM_EFAULTED, -ENOMEM; cb will not run). There is
 * no timeout: cancel the wait when yours expires. */
typedef struct factum_readmodel_waiter factum_readmodel_waiter;
FACTUM_API int factum_readmodel_wait_async(factum_readmodels *m, const char *name, uint64_t position,
                                           void (*cb)(void *ctx, int rc), void *ctx,
                                           factum_readmodel_waiter **out);
/* Cancel a wait: 1 if cb will not run (the waiter is freed), 0 if cb has
 * run or is running (it frees the waiter itself; do not touch it). */
FACTUM_API int factum_readmodel_wait_cancel(factum_readmodels *m, factum_readmodel_waiter *w);

typedef struct factum_query_options {
    /* Wait first until the read model has applied this position (0: do not
     * wait), at most wait_ms (default 5000). */
    uint64_t min_position;
    int wait_ms;
    uint32_t row_limit;     /* rows returned at most (default 1000, at most 100000) */
    uint32_t time_limit_ms; /* the statement's time at most (default 5000) */
} factum_query_options;

FACTUM_API void factum_query_options_init(factum_query_options *o);

/* Run one read-only SQL statement on `name`'s current generation, with
 * named parameters (`:name`) from params_json (a JSON object, may be NULL).
 * *out receives the result as JSON (malloc'd; free() it):
 *   {"columns":["a","b"],"rows":[[1,"x"],...],"truncated":false,
 *    "position":P,"lag_events":N,"lag_ms":M}
 * A statement that could write, more than one statement, a parameter not
 * given: FACTUM_EINVAL with err. An answer over 16 MiB: FACTUM_ETOOBIG
 * (nothing returned; select fewer rows). Errors: FACTUM_ENOTFOUND,
 * FACTUM_ETIMEDOUT (waiting for min_position, or the time limit),
 * FACTUM_ETARGET (the target's error, in err), -ENOMEM. */
FACTUM_API int factum_readmodel_query(factum_readmodels *m, const char *name, const char *sql,
                                      const char *params_json, const factum_query_options *o, char **out,
                                      char *err, size_t err_len);

/* Run a query on `name`'s tables as they were at global position
 * `position` (FACTUM_END or any position past the head: the head): a
 * scratch generation of the read model (its current definition) is built
 * from the start of the log up to that position in the calling thread, the
 * query runs on it as factum_readmodel_query would (same statement rules,
 * limits and answer, with "position" the as-of position), and the scratch
 * tables are deleted. The live read model is not touched. The cost is a
 * replay of the log up to `position` (the read model's events only): meant
 * for occasional questions about the past ("the balances on March 15":
 * factum_position_at gives the position of a time), not for a hot path.
 * o->min_position and o->wait_ms are ignored. An event whose statement
 * fails is handled by the definition's policy (skip; park, into the
 * scratch tables); with the policy stop, the read model would have faulted
 * there, so a position at or after it is FACTUM_EFAULTED with err naming
 * the event. The live read model's state is irrelevant (a paused or faulted
 * one can be asked about a position it never reached). Errors: as
 * factum_readmodel_query, FACTUM_EFAULTED, errors of the target in
 * building (FACTUM_ETARGET with err). Thread-safe; many may run at once. */
FACTUM_API int factum_readmodel_query_asof(factum_readmodels *m, const char *name, uint64_t position,
                                           const char *sql, const char *params_json, const factum_query_options *o,
                                           char **out, char *err, size_t err_len);

/* Parked events of `name`, as JSON rows (the same shape as a query's). */
FACTUM_API int factum_readmodel_parked(factum_readmodels *m, const char *name, uint32_t limit, char **out,
                                       char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
