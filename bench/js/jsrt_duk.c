/*
 * jsrt_duk.c - jsrt.h over Duktape 2.7: one Duktape heap per projection,
 * the projection API of prelude.js, the state kept on the heap between
 * events. Built twice by bench/CMakeLists.txt: against Debian's
 * libduktape.so (which has neither DUK_USE_INTERRUPT_COUNTER nor
 * DUK_USE_EXEC_TIMEOUT_CHECK, so that a running script cannot be stopped:
 * js_can_terminate() is 0 and only a worker process can be killed), and
 * from the duktape.c that duktape-dev ships in /usr/share/duktape, compiled
 * with a duk_config.h that enables the execution timeout check, to measure
 * what that check costs.
 *
 * Memory: every allocation of the heap goes through duk_alloc_cb, which
 * counts the bytes held and refuses past js_limits.heap_max_bytes; Duktape
 * then collects garbage, retries and finally throws a RangeError, which we
 * report as JS_ERR_HEAP. A Duktape fatal error (an allocation failure where
 * it cannot throw) would call abort() by default: duk_fatal_cb longjmps back
 * to the entry point instead, and the heap is then abandoned, not freed (its
 * state is undefined after a fatal error).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duktape.h"
#include "jsrt.h"

extern const char jsrt_prelude[];
extern const size_t jsrt_prelude_len;

/* Value stack slots that hold the prelude's entry points for the engine's life. */
enum { SLOT_FACTUM, SLOT_HANDLE, SLOT_INIT, SLOT_GET, SLOT_SET, SLOT_TAKE, N_SLOTS };

struct js_engine {
    duk_context *ctx;
    js_limits lim;
    size_t heap_used;
    int heap_hit;   /* an allocation was refused since the last entry */
    int terminate;  /* set by js_terminate(), read by the timeout check */
    js_progress progress;
    jmp_buf *fatal; /* where duk_fatal_cb returns to, inside an entry point */
    int dead;       /* a fatal error happened: never touch ctx again */
    int faulted;
    char fault[1024];
};

#define HDR 16 /* the size of a block in front of it, keeping Duktape's alignment */

static void *duk_alloc_cb(void *ud, duk_size_t size)
{
    js_engine *e = ud;
    if (e->lim.heap_max_bytes && e->heap_used + size > e->lim.heap_max_bytes) {
        e->heap_hit = 1;
        return NULL;
    }
    size_t *p = malloc(size + HDR);
    if (!p) return NULL;
    p[0] = size;
    e->heap_used += size;
    return (char *)p + HDR;
}

static void duk_free_cb(void *ud, void *ptr)
{
    js_engine *e = ud;
    if (!ptr) return;
    size_t *p = (size_t *)((char *)ptr - HDR);
    e->heap_used -= p[0];
    free(p);
}

static void *duk_realloc_cb(void *ud, void *ptr, duk_size_t size)
{
    js_engine *e = ud;
    if (!ptr) return duk_alloc_cb(ud, size);
    if (size == 0) {
        duk_free_cb(ud, ptr);
        return NULL;
    }
    size_t *p = (size_t *)((char *)ptr - HDR), old = p[0];
    if (size > old && e->lim.heap_max_bytes && e->heap_used + (size - old) > e->lim.heap_max_bytes) {
        e->heap_hit = 1;
        return NULL;
    }
    size_t *q = realloc(p, size + HDR);
    if (!q) return NULL;
    q[0] = size;
    e->heap_used = e->heap_used - old + size;
    return (char *)q + HDR;
}

static void duk_fatal_cb(void *ud, const char *msg)
{
    js_engine *e = ud;
    e->dead = 1;
    e->faulted = 1;
    snprintf(e->fault, sizeof e->fault, "engine fatal error: %s", msg ? msg : "?");
    if (e->fatal) longjmp(*e->fatal, 1);
    abort(); /* outside an entry point: nothing to return to */
}

#if defined(DUK_USE_EXEC_TIMEOUT_CHECK)
/* Named by our duk_config.h (bench/CMakeLists.txt): Duktape calls it every
 * few thousand bytecode instructions and throws a RangeError while it
 * returns 1. It keeps returning 1, so a script that catches the error is
 * stopped again. */
duk_bool_t jsrt_duk_exec_timeout_check(void *udata);
duk_bool_t jsrt_duk_exec_timeout_check(void *udata)
{
    js_engine *e = udata;
    return e && __atomic_load_n(&e->terminate, __ATOMIC_RELAXED);
}
#endif

const char *js_engine_name(void)
{
    static char name[64];
    if (!name[0])
        snprintf(name, sizeof name, "Duktape %ld.%ld.%ld%s", (long)(DUK_VERSION / 10000),
                 (long)(DUK_VERSION / 100 % 100), (long)(DUK_VERSION % 100),
                 js_can_terminate() ? " (with exec timeout)" : "");
    return name;
}

int js_can_terminate(void)
{
#if defined(DUK_USE_EXEC_TIMEOUT_CHECK)
    return 1;
#else
    return 0;
#endif
}

/* The error on top of the stack as the fault reason; which code it is. */
static int fail(js_engine *e, int code_hint)
{
    int code = code_hint;
    const char *msg = duk_safe_to_stacktrace(e->ctx, -1);
    if (e->heap_hit) code = JS_ERR_HEAP; /* the slow emergency collections may also have run out the clock */
    else if (__atomic_load_n(&e->terminate, __ATOMIC_RELAXED)) code = JS_ERR_TIMEOUT;
    snprintf(e->fault, sizeof e->fault, "%s%s",
             code == JS_ERR_TIMEOUT ? "time limit exceeded: "
             : code == JS_ERR_HEAP  ? "heap limit exceeded: "
                                    : "",
             msg ? msg : "?");
    duk_pop(e->ctx);
    e->faulted = 1;
    return code;
}

/* Every entry point: refuse a faulted engine, set up the return from a fatal error. */
#define ENTER(e)                                                                                             \
    jmp_buf jb_;                                                                                             \
    if (!(e)) return JS_ERR_ARG;                                                                             \
    if ((e)->faulted) return JS_ERR_FAULTED;                                                                 \
    if (setjmp(jb_)) {                                                                                       \
        (e)->fatal = NULL;                                                                                   \
        __atomic_store_n(&(e)->progress.busy, 0, __ATOMIC_RELAXED);                                          \
        return JS_ERR_SCRIPT;                                                                                \
    }                                                                                                        \
    (e)->fatal = &jb_;                                                                                       \
    (e)->heap_hit = 0
#define LEAVE(e, rc)                                                                                         \
    do {                                                                                                     \
        (e)->fatal = NULL;                                                                                   \
        return (rc);                                                                                         \
    } while (0)

int js_engine_new(const js_limits *limits, js_engine **out)
{
    if (!out) return JS_ERR_ARG;
    js_engine *e = calloc(1, sizeof *e);
    if (!e) return JS_ERR_NOMEM;
    if (limits) e->lim = *limits;
    e->ctx = duk_create_heap(duk_alloc_cb, duk_realloc_cb, duk_free_cb, e, duk_fatal_cb);
    if (!e->ctx) {
        free(e);
        return JS_ERR_NOMEM;
    }
    *out = e;
    ENTER(e);
    duk_context *ctx = e->ctx;
    duk_push_string(ctx, "prelude.js");
    if (duk_pcompile_lstring_filename(ctx, 0, jsrt_prelude, jsrt_prelude_len) != 0 || duk_pcall(ctx, 0) != 0)
        LEAVE(e, fail(e, JS_ERR_SCRIPT));
    duk_pop(ctx);
    duk_get_global_string(ctx, "__factum"); /* SLOT_FACTUM */
    static const char *const names[] = {"handle", "init", "getState", "setState", "takeEmitted"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        duk_get_prop_string(ctx, SLOT_FACTUM, names[i]);
    LEAVE(e, JS_OK);
}

void js_engine_free(js_engine *e)
{
    if (!e) return;
    if (!e->dead) duk_destroy_heap(e->ctx); /* a dead heap is leaked: its state is undefined */
    free(e);
}

int js_eval(js_engine *e, const char *src, size_t len, const char *name)
{
    ENTER(e);
    duk_push_string(e->ctx, name ? name : "projection");
    __atomic_store_n(&e->progress.busy, 1, __ATOMIC_RELAXED);
    int rc = duk_pcompile_lstring_filename(e->ctx, 0, src, len) != 0 || duk_pcall(e->ctx, 0) != 0;
    __atomic_store_n(&e->progress.busy, 0, __ATOMIC_RELAXED);
    if (rc) LEAVE(e, fail(e, JS_ERR_SCRIPT));
    duk_pop(e->ctx);
    LEAVE(e, JS_OK);
}

/* Call the prelude function in slot with nargs arguments already pushed
 * above it (slot is duplicated below them); leaves the result on the stack. */
static int call_slot(js_engine *e, int slot, int nargs)
{
    duk_context *ctx = e->ctx;
    duk_dup(ctx, slot);
    duk_insert(ctx, -nargs - 1);
    __atomic_store_n(&e->progress.busy, 1, __ATOMIC_RELAXED);
    int rc = duk_pcall(ctx, nargs);
    __atomic_store_n(&e->progress.busy, 0, __ATOMIC_RELAXED);
    return rc == 0 ? JS_OK : fail(e, JS_ERR_SCRIPT);
}

int js_init_state(js_engine *e)
{
    ENTER(e);
    __atomic_add_fetch(&e->progress.calls, 1, __ATOMIC_RELAXED);
    int rc = call_slot(e, SLOT_INIT, 0);
    if (rc == JS_OK) duk_pop(e->ctx);
    LEAVE(e, rc);
}

static int handle_one(js_engine *e, const js_event *ev)
{
    duk_context *ctx = e->ctx;
    __atomic_add_fetch(&e->progress.calls, 1, __ATOMIC_RELAXED);
    duk_push_lstring(ctx, ev->type, ev->type_len);
    duk_push_lstring(ctx, ev->stream, ev->stream_len);
    duk_push_number(ctx, (duk_double_t)ev->seq);
    duk_push_lstring(ctx, ev->body, ev->body_len);
    duk_push_lstring(ctx, ev->meta, ev->meta_len);
    int rc = call_slot(e, SLOT_HANDLE, 5);
    if (rc == JS_OK) duk_pop(ctx);
    return rc;
}

int js_call_handler(js_engine *e, const js_event *ev)
{
    if (!ev) return JS_ERR_ARG;
    ENTER(e);
    LEAVE(e, handle_one(e, ev));
}

int js_call_batch(js_engine *e, const js_event *ev, size_t n, size_t *n_done)
{
    if (n_done) *n_done = 0;
    if (n && !ev) return JS_ERR_ARG;
    ENTER(e);
    for (size_t i = 0; i < n; i++) {
        int rc = handle_one(e, &ev[i]);
        if (rc != JS_OK) LEAVE(e, rc);
        if (n_done) *n_done = i + 1;
    }
    LEAVE(e, JS_OK);
}

int js_state_json(js_engine *e, char **json, size_t *len)
{
    if (!json) return JS_ERR_ARG;
    ENTER(e);
    int rc = call_slot(e, SLOT_GET, 0);
    if (rc != JS_OK) LEAVE(e, rc);
    duk_size_t n;
    const char *s = duk_get_lstring(e->ctx, -1, &n);
    if (e->lim.state_max_bytes && n > e->lim.state_max_bytes) {
        snprintf(e->fault, sizeof e->fault, "state too large: %zu bytes, the limit is %zu", (size_t)n,
                 e->lim.state_max_bytes);
        e->faulted = 1;
        duk_pop(e->ctx);
        LEAVE(e, JS_ERR_STATE_SIZE);
    }
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = 0;
        *json = copy;
        if (len) *len = n;
    }
    duk_pop(e->ctx);
    LEAVE(e, copy ? JS_OK : JS_ERR_NOMEM);
}

int js_state_load(js_engine *e, const char *json, size_t len)
{
    if (!json) return JS_ERR_ARG;
    ENTER(e);
    duk_push_lstring(e->ctx, json, len);
    int rc = call_slot(e, SLOT_SET, 1);
    if (rc == JS_OK) duk_pop(e->ctx);
    LEAVE(e, rc);
}

size_t js_take_emitted(js_engine *e)
{
    if (!e || e->faulted) return 0;
    jmp_buf jb;
    if (setjmp(jb)) {
        e->fatal = NULL;
        return 0;
    }
    e->fatal = &jb;
    size_t n = 0;
    if (call_slot(e, SLOT_TAKE, 0) == JS_OK) {
        n = (size_t)duk_get_number(e->ctx, -1);
        duk_pop(e->ctx);
    }
    e->fatal = NULL;
    return n;
}

const char *js_fault(const js_engine *e)
{
    return e ? e->fault : "";
}

int js_terminate(js_engine *e)
{
    if (!e) return JS_ERR_ARG;
    if (!js_can_terminate()) return JS_ERR_UNSUPPORTED;
    __atomic_store_n(&e->terminate, 1, __ATOMIC_RELAXED);
    return JS_OK;
}

const js_progress *js_progress_of(const js_engine *e)
{
    return e ? &e->progress : NULL;
}
