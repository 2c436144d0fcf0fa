/*
 * factum_saga.h - process managers (sagas) for applications that embed
 * libfactum: react to events, issue commands, keep each instance's progress
 * durably in the store, time steps out through scheduled events, and when a
 * step fails or times out run the compensations of the completed steps in
 * reverse order, each once. docs/sagas.md tells the model in full, with the
 * orders example (examples/orders/) as the running example; the choice of
 * orchestration is ADR docs/adr/0015-sagas.md.
 *
 * The model, in short:
 *  - A saga definition names a start (event types that begin an instance),
 *    an ordered list of steps and, optionally, the compensation of the
 *    start itself. Each step has a command (a function of the
 *    application), the event types that mean it succeeded or failed, an
 *    optional timeout, and an optional compensation (a command too, with
 *    the event types that confirm it).
 *  - Instances are found by a correlation key (e.g. an order id): by
 *    default the string "$correlationId" of an event's JSON metadata, or
 *    what the definition's `correlate` function says.
 *  - A runner follows $all from its checkpoint (a subscription filtered on
 *    the definition's event types). For each event of an instance it
 *    decides the transition (a pure function of the instance's state and
 *    the event), appends the new state as a progress event to the
 *    instance's own stream `saga-<name>-<key>` with the version it loaded as
 *    the expectation (two runners cannot both advance one instance), and
 *    only then carries out the transition's effects: commands,
 *    compensations, scheduling and cancelling timeouts.
 *  - Exactly once. Progress event ids are derived from the instance and
 *    what caused the transition (the source event's position, or the step
 *    whose command answered at once), so an append repeated after a crash is
 *    an idempotent replay. Every command carries an id derived from the
 *    instance, the step and whether it is the step or its compensation: a
 *    command function must have its effect once per command id (a decider
 *    of factum_app.h given the id as its command id does). After a crash
 *    the runner goes on from its checkpoint, which it advances only after
 *    the events before it had their progress durable and their effects
 *    done; the effects of the last progress of an instance are carried out
 *    again when the event that caused it comes round again (commands are
 *    idempotent by id, scheduling by the timeout's derived id, a cancel of
 *    a timeout already gone is nothing). So no step and no compensation has
 *    its effect twice, and none is lost.
 *
 * Thread safety: a factum_saga runner is driven by its own thread, or (with
 * options.threaded = 0) by one thread of the caller's at a time through
 * factum_saga_run; either hands each batch's events to its worker threads
 * (an instance's events always to the same one). The other calls may be
 * made from any thread.
 * Conventions as in factum.h (0 or a negative code; borrowed pointers
 * unless said otherwise).
 */
#ifndef FACTUM_SAGA_H
#define FACTUM_SAGA_H

#include "factum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Steps of one saga, at most. */
#define FACTUM_SAGA_MAX_STEPS 32
/* Longest saga name (letters, digits, '_', '.'), in bytes. */
#define FACTUM_SAGA_MAX_NAME 64
/* Longest correlation key, in bytes (UTF-8, no control characters). */
#define FACTUM_SAGA_MAX_KEY 200

/* What a command function reports. */
enum factum_saga_outcome {
    /* The command was issued; its outcome arrives later as an event of one
     * of the step's types (for a step without done types, or a
     * compensation without confirming types: the command's return is its
     * success, as FACTUM_SAGA_DONE). */
    FACTUM_SAGA_PENDING = 0,
    /* The step (or the compensation) succeeded now. */
    FACTUM_SAGA_DONE = 1,
    /* The step failed now (e.g. a decider rejected the command): the saga
     * compensates. A compensation cannot fail this way (it is retried). */
    FACTUM_SAGA_FAILED = 2,
};

/* The command a saga issues. Every pointer is valid during the call only. */
typedef struct factum_saga_command {
    const char *saga; /* the definition's name */
    const char *key;  /* the instance's correlation key */
    /* The step: 0..n_steps-1, or FACTUM_SAGA_START for the start's
     * compensation. */
    int step;
    int compensate; /* 1: undo the step; 0: do it */
    /* The command's id: the same every time this step (or its
     * compensation) of this instance is issued, across retries and crashes.
     * Pass it to factum_decider_handle as the command id. */
    uint8_t id[16];
    /* Data of the start event and of the event that completed each step
     * (JSON text, NUL-terminated; "" for none or for data that is not
     * JSON): start_data, and step_data[i] for step i (n_steps entries). */
    const char *start_data;
    const char *const *step_data;
    size_t n_steps;
    uint32_t attempt; /* 1 for the first call by this runner, 2 for its retry... */
} factum_saga_command;

#define FACTUM_SAGA_START (-1)
/* The bit of the start in factum_saga_instance.compensated. */
#define FACTUM_SAGA_START_BIT 32

/* A command function: issue `cmd` and return a factum_saga_outcome, or a
 * negative code for an error: the runner calls it again (with the same
 * id) after a backoff; a step's command that still fails after
 * options.max_attempts calls fails the step (reason "error"), a
 * compensation is retried until it succeeds. Called on one of the
 * runner's worker threads (options.workers), concurrently for different
 * instances, never for two commands of one instance at once. It must be
 * idempotent for cmd->id (it may be called again after a crash, or by a
 * second runner of the same saga). */
typedef int (*factum_saga_command_fn)(void *ctx, const factum_saga_command *cmd);

/* One step. Type lists are arrays of n NUL-terminated strings; borrowed
 * until factum_saga_close. */
typedef struct factum_saga_step {
    const char *name; /* non-empty, for status and docs (e.g. "payment") */
    /* The step's command (NULL: the step only waits for its done or
     * failed events). */
    factum_saga_command_fn run;
    const char *const *done_types; /* events that complete the step */
    size_t n_done;
    const char *const *failed_types; /* events that fail it */
    size_t n_failed;
    /* Compensation (NULL: nothing to undo) and the events that confirm it
     * (none: done when `compensate` returns DONE or PENDING). */
    factum_saga_command_fn compensate;
    const char *const *compensated_types;
    size_t n_compensated;
    /* Timeout (0: none): when the step has neither completed nor failed
     * timeout_ms after it began, an event of type timeout_type (default
     * "$sagaTimeout") is appended to timeout_stream by the store's
     * scheduler (factum_schedule) and fails the step (reason "timeout").
     * timeout_stream: a stream name in which "{key}" is replaced by the
     * correlation key (e.g. "payment-{key}", so that the participant's own
     * stream orders its answer and the timeout: its decider can refuse a
     * late answer); NULL: "$saga-<name>-timeouts". The timeout is
     * cancelled (factum_schedule_cancel) when the step ends first. Its
     * metadata carries "$correlationId", "$saga" and "$sagaStep". */
    int64_t timeout_ms;
    const char *timeout_stream;
    const char *timeout_type;
} factum_saga_step;

typedef struct factum_saga_def {
    /* 1..FACTUM_SAGA_MAX_NAME letters, digits, '_' or '.'; names the
     * streams `saga-<name>-<key>` (progress), `$saga-<name>-checkpoint`
     * and `$saga-<name>-timeouts`. */
    const char *name;
    /* Events that begin an instance (a second start event of an existing
     * instance is ignored). At least one. */
    const char *const *start_types;
    size_t n_start;
    /* The start's own compensation, run last when the saga compensates
     * (e.g. cancel the order), and its confirming events; optional. */
    factum_saga_command_fn compensate_start;
    const char *const *start_compensated_types;
    size_t n_start_compensated;
    const factum_saga_step *steps; /* 1..FACTUM_SAGA_MAX_STEPS, borrowed until close */
    size_t n_steps;
    /* The correlation key of an event into key[0..cap) (NUL-terminated):
     * return 1 if the event belongs to an instance, 0 if not (it is
     * ignored). NULL: the string "$correlationId" of its JSON metadata.
     * Events the saga wrote itself (timeouts) are always correlated by
     * their metadata. Called on the runner's thread (the one polling). */
    int (*correlate)(void *ctx, const factum_event *ev, char *key, size_t cap);
    /* Called once an instance has ended (FACTUM_SAGA_COMPLETED or
     * FACTUM_SAGA_COMPENSATED), after its last progress is durable, from a
     * worker thread; it may be called again for the same instance after a
     * crash. Optional. */
    void (*on_end)(void *ctx, const char *key, int status);
    void *ctx; /* passed to every function */
} factum_saga_def;

typedef struct factum_saga_options {
    int threaded;          /* run on a thread of the runner's own (default 1); 0: call factum_saga_run */
    /* Events polled and shared out at once, at most (default 256; one poll
     * takes about 250 at most); the checkpoint is written once this many
     * events were handled since the last one, or a second has passed. */
    uint32_t batch_events;
    uint32_t max_attempts; /* calls of a step's command that fails with an error (default 5) */
    uint32_t backoff_ms;   /* first wait before a retry, doubled up to 1 s (default 10) */
    /* Threads that handle the events of a batch, instances shared out by
     * key: one instance's events are handled in order by one of them,
     * different instances in parallel (default 16, 1..64). Command
     * functions are called from these threads, several at once. */
    uint32_t workers;
    /* Optional sink for log lines (errors retried), called from the
     * runner's threads (must be thread-safe). */
    void (*log_fn)(void *ctx, int level, const char *message);
    void *log_ctx;
} factum_saga_options;

/* Fill *o with the defaults above. Call it first, then change what you
 * need, so that fields added later get their defaults. */
FACTUM_API void factum_saga_options_init(factum_saga_options *o);

typedef struct factum_saga factum_saga;

/* Check *def, read the runner's checkpoint and start following $all after
 * it (on the runner's thread if options.threaded), with options.workers
 * worker threads. def and everything it points to stay borrowed until
 * factum_saga_close. o may be NULL (the defaults). Several runners of one
 * saga may run at once on one store (each its own handle); they do not
 * both advance an instance, and each effect still happens once. Close
 * every runner before its store.
 * Errors: FACTUM_EINVAL (a bad definition: a name, no steps, a step with
 * neither a command nor done types, a type empty or listed twice within a
 * step or also as a start type, a timeout_stream that does not name a
 * stream), FACTUM_EREADONLY, errors of the store's reads, -ENOMEM. */
FACTUM_API int factum_saga_open(factum_store *s, const factum_saga_def *def, const factum_saga_options *o,
                                factum_saga **out);

/* Stop the runner (an instance's effects in progress are finished first,
 * or left to be done again at the next open), write its checkpoint and
 * free it. NULL is a no-op. */
FACTUM_API void factum_saga_close(factum_saga *sg);

/* options.threaded = 0 only: handle the events that are ready (up to
 * batch_events; the workers still share them out), waiting up to
 * timeout_ms for the first (as factum_sub_poll), and write the checkpoint
 * when it is due. *handled (may be NULL) receives the number of events of
 * the definition's types examined. Errors: FACTUM_EINVAL (a threaded
 * runner), errors of the store (the batch is then handled again at the
 * next call: SAGA-2 makes that harmless). One thread at a time. */
FACTUM_API int factum_saga_run(factum_saga *sg, int timeout_ms, size_t *handled);

/* Wait until the runner has handled every event at positions <= position
 * (progress durable and effects done), at most timeout_ms (< 0: no limit).
 * Returns 1 when it has, 0 on timeout. A runner driven by factum_saga_run
 * is not waited for (the answer is given at once). Any thread. */
FACTUM_API int factum_saga_wait(factum_saga *sg, uint64_t position, int timeout_ms);

/* An instance's status. */
enum factum_saga_status {
    FACTUM_SAGA_RUNNING = 0,      /* waiting for step `step` */
    FACTUM_SAGA_COMPENSATING = 1, /* waiting for the compensation of step `step` */
    FACTUM_SAGA_COMPLETED = 2,    /* every step succeeded */
    FACTUM_SAGA_COMPENSATED = 3,  /* a step failed; every completed step was compensated */
};

typedef struct factum_saga_instance {
    int status;           /* enum factum_saga_status */
    int step;             /* RUNNING/COMPENSATING: the step (FACTUM_SAGA_START: the start's compensation) */
    int failed_step;      /* the step that failed, -2 if none */
    char reason[128];     /* why it failed: the failing event's type, "timeout", "rejected" or "error" */
    uint64_t completed;   /* bit i: step i completed */
    uint64_t compensated; /* bit i: step i compensated; bit FACTUM_SAGA_START_BIT: the start */
    uint64_t version;     /* of the instance's progress stream */
    uint64_t position;    /* the last event of $all that moved it */
} factum_saga_instance;

/* The status of instance `key` of saga `name`, from its progress stream
 * (no runner needed). Errors: FACTUM_ENOTFOUND (no such instance),
 * FACTUM_EINVAL (a bad name or key), FACTUM_ECORRUPT (its last progress
 * event is not one this library wrote), read errors. */
FACTUM_API int factum_saga_instance_get(factum_store *s, const char *name, const char *key,
                                        factum_saga_instance *out);

/* What a runner has done since it opened. */
typedef struct factum_saga_stats {
    uint64_t position;    /* every event of $all at positions <= this is handled */
    uint64_t events;      /* events examined that matched the filter */
    uint64_t transitions; /* progress events written */
    uint64_t commands;    /* command and compensation calls */
    uint64_t retries;     /* command calls that failed with an error and were retried */
    uint64_t conflicts;   /* progress appends that lost to another runner (state reloaded) */
    uint64_t ignored;     /* events that moved no instance (no key, unknown instance, not awaited) */
    uint64_t started, completed, compensated; /* instances */
    int last_error;                           /* the last error retried (0: none) */
} factum_saga_stats;

/* Copy the runner's counters into *st. Any thread. */
FACTUM_API void factum_saga_get_stats(factum_saga *sg, factum_saga_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* FACTUM_SAGA_H */
