/*
 * jsproc.h - a JavaScript projection's engine: V8 running in a worker
 * process of its own (factum-js, src/js/), one per projection, driven by
 * the projection manager over a socket (docs/adr/0006-javascript-engine.md).
 *
 * Why a process: a script's infinite loop, runaway heap, deep recursion or
 * a crash of the engine itself must fault that projection only. V8 stops a
 * loop (TerminateExecution) and most heap growth on its own, but a fatal
 * out-of-memory in V8 aborts the process that hosts it; in a worker that
 * process is not factumd. The worker is also where libfactum's embedders
 * get JavaScript without linking V8 (C++) themselves.
 *
 * The worker keeps every partition's state as a JavaScript value between
 * batches and asks the host for a partition's state the first time it
 * meets it (the host reads it from the store). The host keeps nothing but
 * what a batch's result tells it to write.
 *
 * All calls are made by one thread (the manager's); none blocks longer than
 * the limits allow (a batch: ms_per_event per event, plus a grace period,
 * after which the worker is killed). Errors latch: after an error other
 * than FACTUM_EINVAL from prj_js_open the engine is faulted, prj_js_error()
 * says why, and it is closed and opened again to retry.
 */
#ifndef FACTUM_PROJ_JSPROC_H
#define FACTUM_PROJ_JSPROC_H

#include <stddef.h>
#include <stdint.h>

typedef struct prj_js prj_js;

typedef struct prj_js_limits {
    uint32_t ms_per_event; /* a handler's time for one event (0: 250) */
    uint32_t heap_mib;     /* the script's heap (0: 256) */
    uint32_t state_bytes;  /* one state's JSON, at most (0: 16 MiB, MaxProjectionStateSize) */
    /* The worker program; NULL: $FACTUM_JS_WORKER, else factum-js beside
     * the running program, else in the installed libexec directory, else
     * on the PATH. */
    const char *worker;
    /* log() lines of the script (may be NULL), called on the caller's thread. */
    void (*log_fn)(void *ctx, const char *msg, size_t len);
    void *log_ctx;
} prj_js_limits;

/* What the script defines (KurrentDB's query sources and options). Owned
 * by the engine; valid until prj_js_close. */
typedef struct prj_js_def {
    int all_streams; /* fromAll() */
    char **streams;  /* fromStream()/fromStreams() */
    size_t n_streams;
    char **categories; /* fromCategory(c): one; fromCategories([a, b]) reads the streams
                          "$ce-a", "$ce-b" (in streams), as KurrentDB does */
    size_t n_categories;
    int all_events; /* a $any handler, or no handler (every event) */
    char **events;  /* the types with a handler of their own */
    size_t n_events;
    int by_streams;              /* foreachStream(): a partition per stream */
    int by_custom_partitions;    /* partitionBy(): a partition per key (events it maps to none are skipped) */
    int defines_fold;            /* when() */
    int handles_deleted;         /* a $deleted handler */
    int produces_results;        /* outputState(), transformBy(), filterBy() */
    int defines_state_transform; /* transformBy(), filterBy(): the result is not the state */
    int include_links;           /* options({$includeLinks: true}) */
    int reorder_events;          /* options({reorderEvents: true}) */
    int processing_lag;          /* options({processingLag: ms}) */
    int bi_state;                /* options({biState: true}): a shared state besides each partition's */
    char *result_stream; /* options({resultStreamName}) or outputTo(name); NULL: KurrentDB's default */
    char *partition_result_stream; /* outputTo's second argument ("{0}" is the partition); NULL: default */
} prj_js_def;

/* One source event as the handler sees it. Pointers are borrowed for the
 * call. When the event was read through a link (a "$>" in a source stream,
 * with $includeLinks off the link is resolved), stream/seq/type/... are the
 * target's and link_meta is the link's metadata. */
typedef struct prj_js_event {
    uint64_t position; /* its position in $all (of the link, if through one) */
    const char *stream;
    size_t stream_len;
    uint64_t seq; /* its number in its stream */
    const char *type;
    size_t type_len;
    const uint8_t *id;    /* 16 bytes (NULL: zeros) */
    int64_t timestamp_ns; /* its commit time (the event's `created`) */
    const uint8_t *data;
    size_t data_len;
    int is_json;
    const uint8_t *meta;
    size_t meta_len;
    const uint8_t *link_meta; /* NULL: not read through a link */
    size_t link_meta_len;
    int deleted; /* a notification that `stream` was deleted ($deleted) */
} prj_js_event;

enum {
    PRJ_JS_OUT_EMIT = 0,        /* emit(stream, type, body, metadata) / copyTo */
    PRJ_JS_OUT_LINK_TO = 1,     /* linkTo(stream, event, metadata): type "$>", data "<seq>@<stream>" */
    PRJ_JS_OUT_LINK_STREAM = 2, /* linkStreamTo(stream, linked, metadata): type "$@", data the stream name */
};

/* One event a batch writes. Valid until the next call on the engine;
 * the strings are not NUL-terminated. */
typedef struct prj_js_out {
    uint32_t source; /* index, in the events given, of the event whose handler wrote it */
    int kind;        /* PRJ_JS_OUT_* */
    const char *stream;
    size_t stream_len;
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
    int is_json;
    const char *meta; /* a JSON object of the metadata the script gave, or NULL; for copyTo the
                         copied event's metadata with the script's merged in */
    size_t meta_len;
} prj_js_out;

/* A partition whose state a batch changed, as it stands after the batch
 * (the strings are not NUL-terminated). */
typedef struct prj_js_part {
    const char *partition; /* "" : the state of a projection without partitions */
    size_t partition_len;
    const char *state; /* JSON; "" (state_len 0) when the handler left no state (null) */
    size_t state_len;
    /* JSON of the result (outputState: the state itself; transformBy/filterBy:
     * transformed). NULL: none - the projection produces no results
     * (prj_js_def.produces_results), or, if it does, filterBy refused or
     * transformBy gave null (KurrentDB writes "ResultRemoved"). */
    const char *result;
    size_t result_len;
} prj_js_part;

/* What prj_js_process reports; valid until the next call on the engine. */
typedef struct prj_js_result {
    const prj_js_out *out; /* in the order the handlers wrote them */
    size_t n_out;
    const prj_js_part *parts; /* each changed partition once */
    size_t n_parts;
    const char *shared; /* biState: the shared state's JSON if it changed, else NULL */
    size_t shared_len;
    uint32_t partitions; /* when all is done: the partition states the worker keeps now */
    /* PRJ_JS_NEED: the state the worker needs before it goes on. */
    const char *need_partition; /* the partition's key; "" the only state */
    size_t need_partition_len;
    int need_shared; /* 1: the shared state (biState) is needed, not a partition's */
    size_t need_at;  /* events before this index are done */
} prj_js_result;

#define PRJ_JS_NEED 1

/* Start a worker and run `query` (the projection's source) in it. 0 with
 * *out; FACTUM_EINVAL with the reason in err (a syntax error, an exception
 * or a time or heap limit while the source runs, a definition KurrentDB
 * refuses - e.g. foreachStream over fromStream, $deleted without
 * foreachStream - with its message); -ENOENT (no worker program: err says
 * where it looked); -EIO (the worker crashed or did not answer); or
 * another error with err set. */
int prj_js_open(const prj_js_limits *l, const char *name, const char *query, size_t query_len, prj_js **out,
                char *err, size_t err_len);
const prj_js_def *prj_js_definition(const prj_js *j);

/* Give the worker a partition's state (state NULL: it has none yet: the
 * worker runs $init, and $initShared for the shared state, and $created
 * for a new partition as KurrentDB does). Called after PRJ_JS_NEED, or
 * before the first batch to preload. */
int prj_js_load(prj_js *j, const char *partition, size_t partition_len, int shared, const char *state,
                size_t state_len);

/* Handle events ev[0..n) in order. 0: all done, *res says what to write.
 * PRJ_JS_NEED: the worker stopped before event res->need_at for want of a
 * state; call prj_js_load for it, then prj_js_resume (res accumulates over
 * the whole batch). Another value: an error (the engine is faulted):
 * FACTUM_EFAULTED (the script failed, ran out of time or heap, a state
 * grew past state_bytes, the worker crashed or stopped answering: see
 * prj_js_error), FACTUM_ETOOBIG (an event too large to hand over),
 * -ENOMEM. */
int prj_js_process(prj_js *j, const prj_js_event *ev, size_t n, prj_js_result *res);
int prj_js_resume(prj_js *j, prj_js_result *res);

/* The current state of a partition, as the worker holds it (JSON, malloc'd,
 * free()), or *json NULL if the worker has not got it. */
int prj_js_get_state(prj_js *j, const char *partition, size_t partition_len, int shared, char **json,
                     size_t *len);

/* Why the engine faulted ("" if it has not). */
const char *prj_js_error(const prj_js *j);

/* The worker's process id (0 once it is gone), for status and tests. */
int prj_js_pid(const prj_js *j);

/* Kill the worker if it still runs, reap it, free everything. NULL is a no-op. */
void prj_js_close(prj_js *j);

/* ---- read models (src/rm/js.c) -----------------------------------------
 * The same worker runs a read model's JavaScript handlers (OPEN_RM,
 * jsproto.h; src/js/rmapi.js): stateless, each event's handler asks for
 * SQL statements with their named parameters. */

/* One statement a handler asked for (strings not NUL-terminated). */
typedef struct prj_js_sql {
    uint32_t source; /* index, in the events given, of the event whose handler asked */
    const char *sql;
    size_t sql_len;
    const char *params; /* a JSON object */
    size_t params_len;
} prj_js_sql;

/* An event whose handler failed: threw, ran past ms_per_event, or out of heap. */
typedef struct prj_js_fail {
    uint32_t source;
    int kind; /* PJP_ERR_SCRIPT, PJP_ERR_TIMEOUT, PJP_ERR_HEAP */
    const char *message; /* the error, where, and the script's stack */
    size_t message_len;
} prj_js_fail;

/* What prj_js_rm_process reports; valid until the next call on the engine. */
typedef struct prj_js_rm_result {
    const prj_js_sql *sql; /* in order of events, then of the calls */
    size_t n_sql;
    const prj_js_fail *fail;
    size_t n_fail;
    /* Events handled: [0, done). Less than the batch's count when the
     * script ran out of heap at event done - 1: the worker is gone (the
     * engine faulted); open another for the rest. */
    size_t done;
} prj_js_rm_result;

/* Start a worker for a read model's script (name: for messages and the
 * script's stack). 0 with *out, whose prj_js_definition() has all_events
 * (a $any handler) and events (the types with a handler); otherwise as
 * prj_js_open (FACTUM_EINVAL with the reason and line: the script does not
 * compile, throws, or is not an object of functions). state_bytes is not
 * used. */
int prj_js_open_rm(const prj_js_limits *l, const char *name, const char *script, size_t script_len, prj_js **out,
                   char *err, size_t err_len);

/* Run ev[0..n) through their handlers (the fields of prj_js_event but
 * link_meta and deleted). 0 with *res (a handler's failure is in res, not
 * an error of the call); FACTUM_EFAULTED (the worker crashed, stopped
 * answering or broke the protocol: prj_js_error; nothing of the batch is
 * usable), FACTUM_ETOOBIG, -ENOMEM. */
int prj_js_rm_process(prj_js *j, const prj_js_event *ev, size_t n, prj_js_rm_result *res);

/* The same in two halves, so that the worker runs a batch while the caller
 * does something else: send (0, or an error as above), then receive (the
 * answer, as prj_js_rm_process's). Anything else in between faults the
 * engine (FACTUM_EINVAL). */
int prj_js_rm_send(prj_js *j, const prj_js_event *ev, size_t n);
int prj_js_rm_receive(prj_js *j, prj_js_rm_result *res);

/* ---- upcasters (src/store/upscript.c) ------------------------------------
 * The same worker runs the store's script upcasters (OPEN_UP, jsproto.h;
 * src/js/upapi.js): each event through one of the scripts it was opened
 * with, stateless. This file depends on src/base only, which is why the
 * store may use it (docs/adr/0016-script-upcasters.md). */

/* What an upcast script made of one event (strings not NUL-terminated). */
typedef struct prj_js_up_out {
    uint32_t source; /* index, in the events given */
    const char *type;
    size_t type_len;
    const char *data; /* JSON of an object */
    size_t data_len;
    const char *meta; /* JSON of an object, or NULL: the metadata unchanged */
    size_t meta_len;
} prj_js_up_out;

/* What prj_js_up_process reports; valid until the next call on the engine.
 * Each event of [0, done) has one out or one fail. */
typedef struct prj_js_up_result {
    const prj_js_up_out *out;
    size_t n_out;
    const prj_js_fail *fail;
    size_t n_fail;
    size_t done; /* less than the batch's count: the worker ran out of heap at done - 1 and is gone */
} prj_js_up_result;

/* Start a worker with n scripts (each the text of a function expression,
 * at most PJP_UP_SCRIPT_MAX bytes; names[i] for messages). 0 with *out;
 * a script that does not compile is not an error of the call:
 * prj_js_up_script_error says why for it. Otherwise as prj_js_open (-EIO:
 * the worker crashed or did not answer; -ENOENT: no worker program). */
int prj_js_open_up(const prj_js_limits *l, size_t n, const char *const *names, const char *const *scripts,
                   const size_t *script_lens, prj_js **out, char *err, size_t err_len);

/* Why script i did not compile (NUL-terminated, valid until prj_js_close),
 * or NULL if it did. */
const char *prj_js_up_script_error(const prj_js *j, size_t i);

/* Run ev[0..n) through scripts script[0..n) (the fields of prj_js_event but
 * link_meta and deleted). 0 with *res (a script's failure is in res, not an
 * error of the call); FACTUM_EFAULTED (the worker crashed, stopped
 * answering or broke the protocol: prj_js_error; nothing of the batch is
 * usable), FACTUM_ETOOBIG, -ENOMEM. */
int prj_js_up_process(prj_js *j, const prj_js_event *ev, const uint32_t *script, size_t n, prj_js_up_result *res);

#endif
