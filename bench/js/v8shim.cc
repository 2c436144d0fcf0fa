/*
 * v8shim.cc - jsrt.h over V8 (the one in Debian's libnode108: V8 10.2), a
 * small C++ shim with a C API so that the rest of factum stays C. One
 * isolate and one context per projection; the state stays a JavaScript
 * value inside the context between events.
 *
 * Limits:
 *  - time: js_terminate() calls Isolate::TerminateExecution(), which is
 *    safe from any thread; the script unwinds with an uncatchable
 *    termination and the call fails with JS_ERR_TIMEOUT. A watchdog thread
 *    decides when (jsbench.c has the prototype of one).
 *  - heap: the isolate's old generation is capped with ResourceConstraints;
 *    near the cap V8 calls near_heap_limit(), which terminates the script
 *    and grants a little more room so that the unwinding itself cannot run
 *    out (V8 would otherwise abort the whole process: its out-of-memory is
 *    fatal). The call fails with JS_ERR_HEAP and the isolate is disposed.
 *  - stack: V8's own stack guard throws a RangeError well before the
 *    thread's stack ends (about 1 MB below where the isolate was entered).
 * Threads: an isolate is used by one thread at a time; this prototype
 * enters it on each call (Isolate::Scope), which is enough as long as one
 * thread owns each engine. A pool of threads sharing engines would need a
 * v8::Locker per call.
 */
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include <libplatform/libplatform.h>
#include <v8.h>

#include "jsrt.h"

extern "C" {
extern const char jsrt_prelude[];
extern const size_t jsrt_prelude_len;
}

namespace {

enum { FN_HANDLE, FN_INIT, FN_GET, FN_SET, FN_TAKE, N_FN };

std::once_flag v8_once;
std::unique_ptr<v8::Platform> v8_platform;

void v8_setup()
{
    // One background thread for V8's own work (concurrent marking,
    // compilation): the machine has two cores and projections have their
    // own threads.
    v8_platform = v8::platform::NewDefaultPlatform(1);
    v8::V8::InitializePlatform(v8_platform.get());
    v8::V8::Initialize();
}

void v8_oom(const char *location, bool is_heap_oom)
{
    // V8 cannot continue after this and neither can the process: say why.
    std::fprintf(stderr, "v8shim: V8 out of memory (%s, heap %d): the process aborts\n", location ? location : "?",
                 is_heap_oom);
    std::abort();
}

} // namespace

struct js_engine {
    v8::Isolate *iso = nullptr;
    v8::ArrayBuffer::Allocator *ab_alloc = nullptr;
    v8::Global<v8::Context> ctx;
    v8::Global<v8::Function> fn[N_FN];
    js_limits lim{};
    js_progress progress{};
    std::atomic<int> terminated{0};
    std::atomic<int> heap_hit{0};
    bool faulted = false;
    std::string fault;
};

namespace {

size_t near_heap_limit(void *data, size_t current, size_t initial)
{
    js_engine *e = static_cast<js_engine *>(data);
    e->heap_hit.store(1);
    e->iso->TerminateExecution();
    // Room to unwind; the engine is faulted and disposed afterwards.
    return current + (initial / 4 > (16u << 20) ? initial / 4 : (16u << 20));
}

// Record the failure of the call that tc watched.
int fail(js_engine *e, v8::TryCatch &tc, v8::Local<v8::Context> ctx)
{
    e->faulted = true;
    if (tc.HasTerminated() || e->iso->IsExecutionTerminating()) {
        int heap = e->heap_hit.load();
        e->fault = heap ? "heap limit exceeded (" + std::to_string(e->lim.heap_max_bytes) + " bytes)"
                        : "time limit exceeded: the script was terminated";
        e->iso->CancelTerminateExecution();
        return heap ? JS_ERR_HEAP : JS_ERR_TIMEOUT;
    }
    std::string msg = "exception";
    if (tc.HasCaught()) {
        v8::Local<v8::Value> st;
        if (tc.StackTrace(ctx).ToLocal(&st) && st->IsString()) {
            v8::String::Utf8Value s(e->iso, st);
            if (*s) msg = *s;
        } else {
            v8::String::Utf8Value s(e->iso, tc.Exception());
            if (*s) msg = *s;
        }
        v8::Local<v8::Message> m = tc.Message();
        if (!m.IsEmpty()) {
            v8::String::Utf8Value res(e->iso, m->GetScriptResourceName());
            int line = m->GetLineNumber(ctx).FromMaybe(0);
            if (*res) msg += std::string(" (") + *res + ":" + std::to_string(line) + ")";
        }
    }
    e->fault = msg;
    return JS_ERR_SCRIPT;
}

bool run_script(js_engine *e, v8::Local<v8::Context> ctx, const char *src, size_t len, const char *name,
                v8::TryCatch &tc)
{
    v8::Local<v8::String> source, origin_name;
    if (!v8::String::NewFromUtf8(e->iso, src, v8::NewStringType::kNormal, (int)len).ToLocal(&source))
        return false;
    if (!v8::String::NewFromUtf8(e->iso, name ? name : "projection").ToLocal(&origin_name)) return false;
    v8::ScriptOrigin origin(e->iso, origin_name);
    v8::Local<v8::Script> script;
    if (!v8::Script::Compile(ctx, source, &origin).ToLocal(&script)) return false;
    return !script->Run(ctx).IsEmpty();
}

// Everything a call into the engine needs on the stack.
struct Entry {
    v8::Isolate::Scope iscope;
    v8::HandleScope hscope;
    v8::Local<v8::Context> ctx;
    v8::Context::Scope cscope;
    v8::TryCatch tc;
    explicit Entry(js_engine *e)
        : iscope(e->iso), hscope(e->iso), ctx(e->ctx.Get(e->iso)), cscope(ctx), tc(e->iso)
    {
        e->heap_hit.store(0);
    }
};

bool str(v8::Isolate *iso, const char *p, size_t n, v8::NewStringType t, v8::Local<v8::Value> *out)
{
    v8::Local<v8::String> s;
    if (n > (size_t)v8::String::kMaxLength || !v8::String::NewFromUtf8(iso, p, t, (int)n).ToLocal(&s)) return false;
    *out = s;
    return true;
}

int call_fn(js_engine *e, Entry &en, int which, int argc, v8::Local<v8::Value> *argv, v8::Local<v8::Value> *result)
{
    __atomic_add_fetch(&e->progress.calls, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&e->progress.busy, 1, __ATOMIC_RELAXED);
    v8::MaybeLocal<v8::Value> r = e->fn[which].Get(e->iso)->Call(en.ctx, v8::Undefined(e->iso), argc, argv);
    __atomic_store_n(&e->progress.busy, 0, __ATOMIC_RELAXED);
    if (r.IsEmpty()) return fail(e, en.tc, en.ctx);
    if (result) *result = r.ToLocalChecked();
    return JS_OK;
}

int handle_one(js_engine *e, Entry &en, const js_event *ev)
{
    v8::HandleScope hs(e->iso);
    v8::Local<v8::Value> argv[5];
    // Event types are few and used as property names: internalized once,
    // they are looked up, not copied, and make s[e.eventType] fast.
    if (!str(e->iso, ev->type, ev->type_len, v8::NewStringType::kInternalized, &argv[0]) ||
        !str(e->iso, ev->stream, ev->stream_len, v8::NewStringType::kNormal, &argv[1]) ||
        !str(e->iso, ev->body, ev->body_len, v8::NewStringType::kNormal, &argv[3]) ||
        !str(e->iso, ev->meta, ev->meta_len, v8::NewStringType::kNormal, &argv[4])) {
        e->faulted = true;
        e->fault = "an event too large for a JavaScript string";
        return JS_ERR_SCRIPT;
    }
    argv[2] = v8::Number::New(e->iso, (double)ev->seq);
    return call_fn(e, en, FN_HANDLE, 5, argv, nullptr);
}

} // namespace

extern "C" {

const char *js_engine_name(void)
{
    static std::string name = std::string("V8 ") + v8::V8::GetVersion();
    return name.c_str();
}

int js_can_terminate(void)
{
    return 1;
}

int js_engine_new(const js_limits *limits, js_engine **out)
{
    if (!out) return JS_ERR_ARG;
    std::call_once(v8_once, v8_setup);
    js_engine *e = new (std::nothrow) js_engine;
    if (!e) return JS_ERR_NOMEM;
    if (limits) e->lim = *limits;
    e->ab_alloc = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = e->ab_alloc;
    if (e->lim.heap_max_bytes) params.constraints.ConfigureDefaultsFromHeapSize(0, e->lim.heap_max_bytes);
    params.oom_error_callback = v8_oom;
    e->iso = v8::Isolate::New(params);
    if (!e->iso) {
        delete e->ab_alloc;
        delete e;
        return JS_ERR_NOMEM;
    }
    if (e->lim.heap_max_bytes) e->iso->AddNearHeapLimitCallback(near_heap_limit, e);
    *out = e;

    v8::Isolate::Scope iscope(e->iso);
    v8::HandleScope hscope(e->iso);
    v8::Local<v8::Context> ctx = v8::Context::New(e->iso);
    e->ctx.Reset(e->iso, ctx);
    v8::Context::Scope cscope(ctx);
    v8::TryCatch tc(e->iso);
    if (!run_script(e, ctx, jsrt_prelude, jsrt_prelude_len, "prelude.js", tc)) return fail(e, tc, ctx);
    v8::Local<v8::Value> f;
    if (!ctx->Global()->Get(ctx, v8::String::NewFromUtf8Literal(e->iso, "__factum")).ToLocal(&f) || !f->IsObject())
        return fail(e, tc, ctx);
    static const char *const names[N_FN] = {"handle", "init", "getState", "setState", "takeEmitted"};
    for (int i = 0; i < N_FN; i++) {
        v8::Local<v8::Value> fn;
        if (!f.As<v8::Object>()->Get(ctx, v8::String::NewFromUtf8(e->iso, names[i]).ToLocalChecked()).ToLocal(&fn) ||
            !fn->IsFunction())
            return fail(e, tc, ctx);
        e->fn[i].Reset(e->iso, fn.As<v8::Function>());
    }
    return JS_OK;
}

void js_engine_free(js_engine *e)
{
    if (!e) return;
    for (auto &f : e->fn) f.Reset();
    e->ctx.Reset();
    if (e->iso) e->iso->Dispose();
    delete e->ab_alloc;
    delete e;
}

int js_eval(js_engine *e, const char *src, size_t len, const char *name)
{
    if (!e || !src) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    __atomic_store_n(&e->progress.busy, 1, __ATOMIC_RELAXED);
    bool ok = run_script(e, en.ctx, src, len, name, en.tc);
    __atomic_store_n(&e->progress.busy, 0, __ATOMIC_RELAXED);
    return ok ? JS_OK : fail(e, en.tc, en.ctx);
}

int js_init_state(js_engine *e)
{
    if (!e) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    return call_fn(e, en, FN_INIT, 0, nullptr, nullptr);
}

int js_call_handler(js_engine *e, const js_event *ev)
{
    if (!e || !ev) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    return handle_one(e, en, ev);
}

int js_call_batch(js_engine *e, const js_event *ev, size_t n, size_t *n_done)
{
    if (n_done) *n_done = 0;
    if (!e || (n && !ev)) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    for (size_t i = 0; i < n; i++) {
        int rc = handle_one(e, en, &ev[i]);
        if (rc != JS_OK) return rc;
        if (n_done) *n_done = i + 1;
    }
    return JS_OK;
}

int js_state_json(js_engine *e, char **json, size_t *len)
{
    if (!e || !json) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    v8::Local<v8::Value> r;
    int rc = call_fn(e, en, FN_GET, 0, nullptr, &r);
    if (rc != JS_OK) return rc;
    v8::Local<v8::String> s = r.As<v8::String>();
    size_t n = (size_t)s->Utf8Length(e->iso);
    if (e->lim.state_max_bytes && n > e->lim.state_max_bytes) {
        e->faulted = true;
        e->fault = "state too large: " + std::to_string(n) + " bytes, the limit is " +
                   std::to_string(e->lim.state_max_bytes);
        return JS_ERR_STATE_SIZE;
    }
    char *copy = static_cast<char *>(std::malloc(n + 1));
    if (!copy) return JS_ERR_NOMEM;
    s->WriteUtf8(e->iso, copy, (int)n + 1, nullptr, v8::String::NO_NULL_TERMINATION);
    copy[n] = 0;
    *json = copy;
    if (len) *len = n;
    return JS_OK;
}

int js_state_load(js_engine *e, const char *json, size_t len)
{
    if (!e || !json) return JS_ERR_ARG;
    if (e->faulted) return JS_ERR_FAULTED;
    Entry en(e);
    v8::Local<v8::Value> arg;
    if (!str(e->iso, json, len, v8::NewStringType::kNormal, &arg)) return JS_ERR_ARG;
    return call_fn(e, en, FN_SET, 1, &arg, nullptr);
}

size_t js_take_emitted(js_engine *e)
{
    if (!e || e->faulted) return 0;
    Entry en(e);
    v8::Local<v8::Value> r;
    if (call_fn(e, en, FN_TAKE, 0, nullptr, &r) != JS_OK) return 0;
    return (size_t)r->NumberValue(en.ctx).FromMaybe(0);
}

const char *js_fault(const js_engine *e)
{
    return e ? e->fault.c_str() : "";
}

int js_terminate(js_engine *e)
{
    if (!e) return JS_ERR_ARG;
    e->terminated.store(1);
    e->iso->TerminateExecution();
    return JS_OK;
}

const js_progress *js_progress_of(const js_engine *e)
{
    return e ? &e->progress : nullptr;
}

} // extern "C"
