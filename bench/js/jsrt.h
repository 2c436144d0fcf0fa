/*
 * jsrt.h - the C API that each JavaScript engine prototype implements
 * (jsrt_duk.c over Duktape, v8shim.cc over V8 from libnode), so that one
 * benchmark driver (jsbench.c) runs the same projections through either.
 * It is the sketch of what src/proj's JavaScript runtime will call; see
 * docs/adr/0006-javascript-engine.md.
 *
 * One js_engine is one projection: its own heap (a Duktape heap, a V8
 * isolate and context), its projection definition, its state kept inside
 * the engine as a JavaScript value, and its recorded emits. It is used by
 * one thread at a time; only js_terminate() and js_progress() may be called
 * from another thread (a watchdog).
 *
 * Failures latch: after any error other than JS_ERR_ARG the engine is
 * faulted, js_fault() tells why, and every call but js_fault(),
 * js_engine_free() and js_progress() returns JS_ERR_FAULTED. A faulted
 * engine is thrown away, never repaired (its heap may be full, a handler
 * half-run).
 */
#ifndef FACTUM_BENCH_JSRT_H
#define FACTUM_BENCH_JSRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    JS_OK = 0,
    JS_ERR_ARG = -1,         /* a bad argument; the engine is not faulted */
    JS_ERR_NOMEM = -2,       /* the host could not allocate (not the script's heap) */
    JS_ERR_SCRIPT = -3,      /* the script threw (syntax error, exception, stack overflow) */
    JS_ERR_TIMEOUT = -4,     /* stopped by js_terminate() (the time per event ran out) */
    JS_ERR_HEAP = -5,        /* the script's heap reached js_limits.heap_max_bytes */
    JS_ERR_STATE_SIZE = -6,  /* the serialized state exceeds js_limits.state_max_bytes */
    JS_ERR_FAULTED = -7,     /* an earlier failure latched */
    JS_ERR_UNSUPPORTED = -8, /* this engine cannot do that (js_terminate on Debian's Duktape) */
};

typedef struct js_limits {
    size_t heap_max_bytes;  /* the script's heap; 0 = the engine's default */
    size_t state_max_bytes; /* the state's JSON at js_state_json(); 0 = no limit.
                               KurrentDB's MaxProjectionStateSize is 16 MiB */
} js_limits;

/* One event as a projection sees it. Every pointer is borrowed for the call;
 * body and meta are JSON text (the projection parses body lazily). */
typedef struct js_event {
    const char *type;
    size_t type_len;
    const char *stream;
    size_t stream_len;
    uint64_t seq; /* the event's number in its stream */
    const char *body;
    size_t body_len;
    const char *meta;
    size_t meta_len;
} js_event;

/* What a watchdog reads: calls counts handler calls begun, busy is 1 while
 * the engine runs script. Read with __atomic_load_n (relaxed). */
typedef struct js_progress {
    uint64_t calls;
    int busy;
} js_progress;

typedef struct js_engine js_engine;

/* The engine's name and version, e.g. "V8 10.2.154.26"; static. */
const char *js_engine_name(void);

/* Can js_terminate() stop a running script in this build? 1 or 0. */
int js_can_terminate(void);

/* A new engine with the projection API (fromAll, when, emit, ...) loaded.
 * limits is borrowed for the call. *out is freed with js_engine_free(). */
int js_engine_new(const js_limits *limits, js_engine **out);
void js_engine_free(js_engine *e);

/* Run a projection's source (fromAll().when({...})), which defines its
 * handlers. src is borrowed; name appears in error messages. */
int js_eval(js_engine *e, const char *src, size_t len, const char *name);

/* The state from the definition's $init (or {}), kept inside the engine. */
int js_init_state(js_engine *e);

/* Run the handler for ev (its type's, else $any) on the state kept inside
 * the engine; the handler's result, if not undefined, becomes the state. */
int js_call_handler(js_engine *e, const js_event *ev);

/* The same for n events in one entry into the engine. On failure
 * *n_done (if not NULL) is the number of events handled before it. */
int js_call_batch(js_engine *e, const js_event *ev, size_t n, size_t *n_done);

/* The state as JSON (JSON.stringify), as a checkpoint stores it. *json is
 * malloc'd, NUL-terminated, the caller frees it with free(). Faults with
 * JS_ERR_STATE_SIZE past limits->state_max_bytes. */
int js_state_json(js_engine *e, char **json, size_t *len);

/* Replace the state with JSON.parse(json) (restart from a checkpoint). */
int js_state_load(js_engine *e, const char *json, size_t len);

/* emit()/linkTo() calls recorded since the last call, then forgotten. */
size_t js_take_emitted(js_engine *e);

/* Why the engine faulted ("" if it has not); valid until js_engine_free(). */
const char *js_fault(const js_engine *e);

/* From any thread: stop the script running now (or the next one to run),
 * which then fails with JS_ERR_TIMEOUT. JS_ERR_UNSUPPORTED if this engine
 * cannot interrupt a script (see js_can_terminate()). */
int js_terminate(js_engine *e);

/* The engine's progress counters, for a watchdog on another thread; valid
 * until js_engine_free(). */
const js_progress *js_progress_of(const js_engine *e);

#ifdef __cplusplus
}
#endif
#endif
