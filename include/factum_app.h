/*
 * factum_app.h - a small toolkit for event-sourced applications that embed
 * libfactum: aggregates as deciders, idempotent consumers, and the
 * deterministic event ids both rest on. docs/app-toolkit.md tells it with
 * the bank account of examples/bank/ as the running example.
 *
 *  - A decider is an aggregate written as three pure functions: `initial`
 *    (the state of a stream with no events), `evolve(state, event)` (fold
 *    one event into the state) and `decide(command, state)` (the events a
 *    command produces, or a domain error). factum_decider_handle loads the
 *    stream's state (newest usable snapshot + the events after it,
 *    factum.h "Snapshots"), decides, appends with the version it loaded as
 *    the expectation, and on a conflict (another writer came first)
 *    reloads and decides again, a bounded number of times with jittered
 *    backoff. Nothing is appended unless decide saw the latest state: an
 *    invariant decide checks holds however many threads, processes or
 *    clients write the stream.
 *  - An idempotent consumer runs an application's handler for each event of
 *    a stream or of $all (with a filter) so that each event's effect
 *    happens once across crashes, either because the effect and the
 *    consumer's checkpoint are written in one SQLite transaction, or
 *    because the effect is an append whose event ids are derived from the
 *    source event (a repeated append is an idempotent replay).
 *
 * Thread safety: a factum_decider may be used from any number of threads
 * at once (it holds no state of its own between calls). A factum_consumer
 * is used by one thread at a time. Conventions as in factum.h (0 or a
 * negative code; borrowed pointers unless said otherwise).
 */
#ifndef FACTUM_APP_H
#define FACTUM_APP_H

#include "factum.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sqlite3;       /* <sqlite3.h>'s connection handle (sqlite3 *) */
struct factum_client; /* factum_client.h: a connection to factumd */

/* ---------------------------------------------------------------------------
 * Deterministic event ids
 * ------------------------------------------------------------------------- */

/* Derive an event id from a base id (a command's id, a source event's id),
 * a salt (salt_len bytes, may be 0: what the id is for, e.g. a stream or a
 * consumer's name) and an index (the n-th event derived from the same base
 * and salt): the first 16 bytes of SHA-256 over the three, laid out as an
 * RFC 9562 version-8 UUID. The same inputs always give the same id;
 * different inputs collide with negligible probability. Appending events
 * with derived ids twice is an idempotent replay (docs/durability.md
 * "Idempotent appends"). Thread-safe; cannot fail. */
FACTUM_API void factum_app_derive_id(const uint8_t base[16], const void *salt, size_t salt_len,
                                     uint32_t index, uint8_t out[16]);

/* ---------------------------------------------------------------------------
 * Decisions: the events a command produces
 * ------------------------------------------------------------------------- */

/* A list of events being decided, filled by a decider's decide function.
 * Owned by factum_decider_handle; valid during the decide call only. */
typedef struct factum_decision factum_decision;

/* Add an event to the decision: type, flags (FACTUM_EVENT_*), data and
 * metadata are copied. The event id is set by factum_decider_handle
 * (derived from the command id, or random without one).
 * Errors: FACTUM_EBADTYPE, FACTUM_EINVAL (NULL d, or data NULL with
 * len > 0), FACTUM_ETOOBIG (over 4096 events in one decision), -ENOMEM. */
FACTUM_API int factum_decision_add(factum_decision *d, const char *type, uint32_t flags, const void *data,
                                   size_t len, const void *metadata, size_t metadata_len);

/* Add an event whose data is the JSON text `json` (NUL-terminated), no
 * metadata. The JSON is not validated here (the store does not either).
 * Errors as factum_decision_add. */
FACTUM_API int factum_decision_add_json(factum_decision *d, const char *type, const char *json);

/* ---------------------------------------------------------------------------
 * Aggregates as deciders
 * ------------------------------------------------------------------------- */

/* The application's side of a decider. `state` is an opaque value the
 * application allocates in `initial` or `snapshot_decode` and frees in
 * `state_free`; factum never looks inside it. Every function receives
 * `ctx` and may be called from any thread that calls
 * factum_decider_handle, concurrently for different loads (each load has
 * its own state value). */
typedef struct factum_decider_def {
    /* A new state of a stream without events. NULL: out of memory. */
    void *(*initial)(void *ctx);
    /* Fold one event into `state` (in place). An event the application does
     * not know should be ignored (return 0). Return 0, or a negative code
     * to stop the load (returned to the caller; e.g. FACTUM_ECORRUPT for
     * an event it cannot parse). Required. */
    int (*evolve)(void *ctx, void *state, const factum_event *ev);
    /* Decide what `command` produces given `state` (read only): add the
     * events to `out` (none: the command changes nothing, and nothing is
     * appended). Return 0, a positive domain error code of the
     * application's (the command is rejected: nothing is appended and
     * factum_decider_handle returns that code), or a negative code (an
     * error, returned as it is). Called once per attempt: it must not
     * have effects of its own. Required. */
    int (*decide)(void *ctx, const void *command, const void *state, factum_decision *out);
    /* Free a state. Required. */
    void (*state_free)(void *ctx, void *state);

    /* Snapshots (optional; all three or none): encode a state into
     * *data and *len (malloc'd; factum frees it), decode a snapshot's data
     * into a new state (*state, freed with state_free). Either returns 0 or
     * a negative code: a snapshot that does not decode is ignored and the
     * stream replayed from the start. snapshot_type is the snapshot event's
     * type (also checked when loading: a snapshot of another type is
     * ignored). */
    int (*snapshot_encode)(void *ctx, const void *state, char **data, size_t *len);
    int (*snapshot_decode)(void *ctx, const void *data, size_t len, void **state);
    const char *snapshot_type;
    /* Write a snapshot after a command when at least this many events came
     * after the one the state was loaded from (0: never; default 0). */
    uint32_t snapshot_every;
    /* Snapshots kept (factum_snapshot_write's keep; default 0 = 3). */
    uint32_t snapshot_keep;

    /* Conflicts: attempts at most (default 8, >= 1), and the wait before
     * attempt k+1: a random time in [0, min(backoff_max_ms, backoff_ms * 2^k)]
     * (full jitter; defaults 1 and 50 ms; backoff_ms 0: no wait). */
    uint32_t max_attempts;
    uint32_t backoff_ms;
    uint32_t backoff_max_ms;

    void *ctx; /* passed to every function */
} factum_decider_def;

/* Fill *d with the defaults (functions NULL). Call first. */
FACTUM_API void factum_decider_def_init(factum_decider_def *d);

typedef struct factum_decider factum_decider;

/* A decider over store s with definition *def (copied, snapshot_type
 * too; ctx is kept as given). Free with factum_decider_free before the
 * store is closed. Errors: FACTUM_EINVAL (a required function missing,
 * snapshot functions only in part, max_attempts 0), -ENOMEM. */
FACTUM_API int factum_decider_new(factum_store *s, const factum_decider_def *def, factum_decider **out);
/* The same decider over the network: loads, appends and snapshots go
 * through a connection to factumd (or any KurrentDB-compatible server)
 * with the C client, so that many processes (and clients in other
 * languages) can decide on the same streams; factumd's expected-version
 * check plays the part of the store's (DC-1). Snapshots follow the same
 * convention (`$snapshots-S`, factum.h "Snapshots"): the newest snapshot
 * whose $streamVersion is within the stream and is followed by exactly the
 * next event is used, else the stream is replayed from its start (the
 * soft-delete rule of a local load needs the store's metadata history and
 * is not applied: after re-creating a soft-deleted stream, delete its
 * `$snapshots-S` too). A command id is recognised among the events read
 * by the load (those after the snapshot): a command retried after a newer
 * snapshot was written may be decided again; its events, if the decision
 * is the same, are then refused by the server's idempotency check (same
 * ids) rather than written twice. The client is borrowed until
 * factum_decider_free; calls on one client are serialised (factum_client.h):
 * give each thread its own decider and client for parallelism. The
 * client is libfactum-client's: a program that calls this links both
 * libraries (pkg-config factum factum-client); libfactum calls the client
 * through a table the client carries, never by name (ADR 0018).
 * Errors as factum_decider_new; FACTUM_EINVAL also for a client of
 * another release of libfactum-client (its table is not this library's). */
FACTUM_API int factum_decider_new_remote(struct factum_client *c, const factum_decider_def *def,
                                         factum_decider **out);

/* NULL is a no-op. No call of d may be running. */
FACTUM_API void factum_decider_free(factum_decider *d);

/* Load the current state of `stream`: the newest usable snapshot the
 * decoder accepts, then the events after it folded with evolve. On success
 * *state is a new state (free it with def->state_free) and *version the
 * version it reflects (FACTUM_NO_STREAM for a stream without events, or
 * soft-deleted: then *state is initial()). *snapshot_version (may be NULL)
 * receives the version of the snapshot used, or FACTUM_NO_STREAM if none.
 * Errors: FACTUM_EDELETED, FACTUM_EBADNAME, evolve's errors, read errors,
 * -ENOMEM. */
FACTUM_API int factum_decider_load(factum_decider *d, const char *stream, void **state, int64_t *version,
                                   int64_t *snapshot_version);

/* The state of `stream` as recorded at a->position and restricted to the
 * events whose valid time is <= a->valid_until_ns (factum.h "Temporal
 * reads": "the balance on March 15", as known then or as known now): the
 * events a temporal read returns (factum_read_stream_asof; over the
 * network the `$asof/` virtual stream), upcast, folded with evolve from
 * initial(). Snapshots are not used (they hold the current state, and a
 * valid-time bound can leave out events they include). On success *state
 * is a new state (free it with def->state_free) and *version the version
 * of the last event folded (FACTUM_NO_STREAM if none). A stream that did
 * not exist then gives initial() and FACTUM_NO_STREAM. Errors:
 * FACTUM_EDELETED (tombstoned by then), FACTUM_EBADNAME, FACTUM_EINVAL,
 * evolve's errors, read errors, -ENOMEM. */
FACTUM_API int factum_decider_load_asof(factum_decider *d, const char *stream, const factum_asof *a, void **state,
                                        int64_t *version);

/* What factum_decider_handle did. */
typedef struct factum_decide_result {
    uint32_t attempts;      /* decide calls made (1 + conflicts retried) */
    size_t n_events;        /* events appended (0: the command produced none) */
    uint64_t first_version; /* n_events > 0 or idempotent: versions and positions of the events */
    uint64_t last_version;
    uint64_t first_position;
    uint64_t last_position;
    int64_t version;      /* the stream's version after the command (FACTUM_NO_STREAM: none) */
    int idempotent;       /* 1: this command id was handled before; nothing was decided or written */
    int snapshot_written; /* 1: a snapshot was written after the append */
    int snapshot_rc;      /* the error of that snapshot write (the command still succeeded) */
} factum_decide_result;

/* Handle `command` (borrowed, passed to decide) on `stream`: load, decide,
 * append with the loaded version as the expectation; on
 * FACTUM_EWRONGVERSION reload and decide again, up to max_attempts times.
 *
 * command_id (16 bytes, may be NULL): the command's identity. The ids of
 * its events are then factum_app_derive_id(command_id, stream, i), and a
 * command whose first event id is already in the stream is not decided
 * again: the call returns 0 with res->idempotent = 1 and the versions of
 * the events it stored then. So a command retried after a timeout or a
 * crash has its effect once. (A command that produced no events, or was
 * rejected, leaves no trace and is decided again.) Without a command id
 * the events get random ids.
 *
 * After a successful append, a snapshot is written per the policy
 * (snapshot_every); its failure is reported in res, not returned.
 * res may be NULL. Returns 0, decide's positive domain code (nothing
 * appended), FACTUM_EWRONGVERSION (still conflicting after max_attempts),
 * FACTUM_EDELETED, FACTUM_EINVAL, errors of decide, evolve, reads and
 * appends (FACTUM_EIDEMPOTENCY: the command id's events are in the stream
 * but not as this command would write them). Blocks (appends, backoff).
 * Thread-safe. */
FACTUM_API int factum_decider_handle(factum_decider *d, const char *stream, const void *command,
                                     const uint8_t *command_id, factum_decide_result *res);

/* ---------------------------------------------------------------------------
 * Idempotent consumers
 *
 * Two ways to make each event's effect happen once:
 *  (a) SQLite: the effect is a change of the application's SQLite database
 *      `db`. The consumer runs the handler for a batch of events inside one
 *      transaction (BEGIN IMMEDIATE ... COMMIT) that also stores its
 *      checkpoint in its table `factum_consumer_checkpoints(name TEXT
 *      PRIMARY KEY, position INTEGER NOT NULL)`. A crash before COMMIT
 *      undoes the effects and the checkpoint together; the events are
 *      handled again after the restart.
 *  (b) Appends to the store: the handler appends with ids from
 *      factum_consumer_effect_id (derived from the source event), so an
 *      effect repeated after a crash is an idempotent replay. With db NULL
 *      the checkpoint is kept in the store (stream `$consumer-<name>`,
 *      `$maxCount` 1), written after each batch: after a crash, the events
 *      since it are handled again and their appends replay.
 * ------------------------------------------------------------------------- */

typedef struct factum_consumer factum_consumer;

/* The application's handler: the effect of one event. db is the
 * consumer's database (NULL in mode (b)), inside the open transaction: do
 * not BEGIN, COMMIT or ROLLBACK. Return 0, or a negative code to stop:
 * the batch is rolled back (mode a) and factum_consumer_poll returns the
 * code; the next poll handles the batch again from the checkpoint. */
typedef int (*factum_consumer_fn)(void *ctx, struct sqlite3 *db, const factum_event *ev);

typedef struct factum_consumer_options {
    const char *name;            /* the checkpoint's name: 1..200 bytes, required */
    const char *stream;          /* a stream, or NULL / "$all" for the global log */
    const factum_filter *filter; /* $all only (may be NULL); borrowed until close */
    struct sqlite3 *db;          /* mode (a); NULL: mode (b). Borrowed until close; used by the
                                    consumer's thread only while it polls */
    factum_consumer_fn handle;   /* required */
    void *ctx;
    uint32_t batch_events; /* events per transaction or checkpoint, at most (default 256) */
    int exclude_system;    /* skip events whose stream or type begins with '$' (default 1) */
} factum_consumer_options;

FACTUM_API void factum_consumer_options_init(factum_consumer_options *o);

/* Open a consumer: create its checkpoint table (mode a) if missing, read
 * its checkpoint, subscribe after it. Errors: FACTUM_EINVAL (bad options),
 * FACTUM_ETARGET (SQLite failed), errors of factum_sub_open and of the
 * store's reads, -ENOMEM. */
FACTUM_API int factum_consumer_open(factum_store *s, const factum_consumer_options *o, factum_consumer **out);

/* Handle the events that are ready, up to batch_events, waiting up to
 * timeout_ms (as factum_sub_poll) for the first: run the handler for each,
 * then store the checkpoint (mode a: in the same transaction). *handled
 * (may be NULL) receives the number of events handled and committed.
 * Errors: the handler's code, FACTUM_ETARGET (SQLite), errors of
 * factum_sub_poll and of the checkpoint's append (mode b). After an error
 * the consumer is back at its checkpoint. */
FACTUM_API int factum_consumer_poll(factum_consumer *c, int timeout_ms, size_t *handled);

/* The checkpoint: the $all position (or, for a stream, the version) of the
 * last event whose effect is committed; FACTUM_END if none yet. Like every
 * call on a consumer, from the thread that polls it (not while another
 * thread is in factum_consumer_poll). */
FACTUM_API uint64_t factum_consumer_checkpoint(const factum_consumer *c);

/* Close the subscription and free (what is committed stays). NULL: no-op. */
FACTUM_API void factum_consumer_close(factum_consumer *c);

/* The id of the index-th event appended as the effect of `source` by the
 * consumer named `consumer_name`: factum_app_derive_id(source->id,
 * "<consumer_name>\n<source stream>", index). Thread-safe. */
FACTUM_API void factum_consumer_effect_id(const char *consumer_name, const factum_event *source,
                                          uint32_t index, uint8_t out[16]);

#ifdef __cplusplus
}
#endif
#endif /* FACTUM_APP_H */
