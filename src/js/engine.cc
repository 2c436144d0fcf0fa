/*
 * engine.cc - engine.h over V8 (Debian's libnode108: V8 10.2): one
 * isolate and one context for the projection, api.js loaded before its
 * source, states kept as JavaScript values between batches. A read
 * model's engine loads rmapi.js instead and runs stateless handlers: a
 * handler's exception or time limit fails its event only (FAIL), the
 * engine goes on with the next (after TerminateExecution it cancels the
 * termination); its heap limit ends the engine after the event. An
 * upcaster engine (upapi.js) runs the store's script upcasters the same
 * way: each event through one script, an UPOUT or a FAIL.
 *
 * Limits, and how each ends up in an ERROR frame with a reason:
 *  - time: a watchdog thread sees how long the current event has run
 *    (`since`) and calls Isolate::TerminateExecution() past
 *    ms_per_event; the handler unwinds with an uncatchable termination.
 *    The source's first run gets twice that (KurrentDB's compilation
 *    timeout is twice its execution timeout), the end of a batch (states
 *    to JSON, transformBy/filterBy) 1 s plus four times it.
 *  - heap: the isolate's heap is sized with ResourceConstraints; near its
 *    limit V8 calls near_heap_limit(), which terminates the script and
 *    grants some room to unwind in. Should V8 still run out (a fatal OOM
 *    aborts the process), fatal_oom() writes the ERROR frame to the
 *    host's socket itself before the process ends.
 *  - stack: V8's stack guard throws a RangeError (Maximum call stack size
 *    exceeded), an exception like any other.
 *  - state size: each state's and result's JSON at the end of a batch.
 * Threads: the isolate is entered by main's thread only; the watchdog
 * only calls TerminateExecution (safe from any thread) and reads atomics.
 */
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <sys/socket.h>
#include <unistd.h>

#include <libplatform/libplatform.h>
#include <v8.h>

#include "engine.h"

extern "C" {
extern const char factum_js_api[];
extern const size_t factum_js_api_len;
extern const char factum_js_rmapi[];
extern const size_t factum_js_rmapi_len;
extern const char factum_js_upapi[];
extern const size_t factum_js_upapi_len;
}

namespace
{

const uint64_t NS_PER_MS = 1000000u;

uint64_t mono_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *re(void *p, size_t n)
{
    return std::realloc(p, n);
}

std::unique_ptr<v8::Platform> platform;
int fatal_fd = -1;
uint32_t fatal_heap_mib;

// V8 cannot go on after this, and the process ends: tell the host why
// first, with what needs no allocation.
void fatal_report(const char *why)
{
    if (fatal_fd >= 0) {
        uint8_t frame[512];
        uint32_t kind = PJP_ERR_HEAP, len = (uint32_t)std::strlen(why);
        if (len > sizeof frame - 16) len = sizeof frame - 16;
        uint32_t type = PJP_ERROR, plen = 8 + len;
        std::memcpy(frame, &type, 4);
        std::memcpy(frame + 4, &plen, 4);
        std::memcpy(frame + 8, &kind, 4);
        std::memcpy(frame + 12, &len, 4);
        std::memcpy(frame + 16, why, len);
        ssize_t w = send(fatal_fd, frame, 16 + len, MSG_NOSIGNAL);
        (void)w;
    }
}

void fatal_oom(const char *location, bool is_heap_oom)
{
    char why[256];
    std::snprintf(why, sizeof why, "the JavaScript engine ran out of memory (%s, heap limit %u MiB)",
                  location ? location : "?", fatal_heap_mib);
    fatal_report(why);
    _exit(70);
}

void fatal_error(const char *location, const char *message)
{
    char why[256];
    std::snprintf(why, sizeof why, "the JavaScript engine failed: %s (%s)", message ? message : "?",
                  location ? location : "?");
    fatal_report(why);
    _exit(70);
}

enum { F_DEFINE, F_STEP, F_TAKE, F_NEED_KEY, F_LOAD, F_FINISH, F_TRIM, F_GET, N_FN };
const char *const fn_names[N_FN] = {"define", "step",   "takeOutputs", "needKey",
                                    "load",   "finish", "trim",        "getState"};

} // namespace

struct jse {
    jse_limits lim{};
    v8::Isolate *iso = nullptr;
    v8::ArrayBuffer::Allocator *ab = nullptr;
    v8::Global<v8::Context> ctx;
    v8::Global<v8::Object> ctl;
    v8::Global<v8::Function> fn[N_FN];
    std::string name;
    jse_out *out = nullptr;

    // the watchdog
    std::thread watchdog;
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::atomic<uint64_t> since{0};    // when the current step began (0: idle)
    std::atomic<uint64_t> limit_ns{0}; // how long it may take
    std::atomic<int> fired{0};
    std::atomic<int> heap_hit{0};

    // a read model's engine (rmapi.js): its control functions
    v8::Global<v8::Function> rm_step, rm_take;
    // an upcaster engine (upapi.js): step, and the scripts' names
    v8::Global<v8::Function> up_step;
    std::vector<std::string> up_names;
    std::vector<bool> up_ok;

    // a failure of jse_load, reported by the next call
    int pending_kind = 0;
    std::string pending;
    std::string what; // what the engine was doing, for messages
};

namespace
{

void watch(jse *e)
{
    std::unique_lock<std::mutex> lk(e->mu);
    uint64_t lim = e->limit_ns.load() ? e->limit_ns.load() : 250 * NS_PER_MS;
    auto tick = std::chrono::nanoseconds(lim / 8);
    if (tick < std::chrono::milliseconds(1)) tick = std::chrono::milliseconds(1);
    if (tick > std::chrono::milliseconds(20)) tick = std::chrono::milliseconds(20);
    while (!e->stopping) {
        e->cv.wait_for(lk, tick);
        uint64_t s = e->since.load(std::memory_order_acquire);
        if (s && !e->fired.load() && mono_ns() - s >= e->limit_ns.load() &&
            e->since.load(std::memory_order_acquire) == s) {
            e->fired.store(1);
            e->iso->TerminateExecution();
        }
    }
}

size_t near_heap_limit(void *data, size_t current, size_t initial)
{
    jse *e = static_cast<jse *>(data);
    e->heap_hit.store(1);
    e->iso->TerminateExecution();
    // Room to unwind in; the engine is dead afterwards.
    return current + (initial / 4 > (32u << 20) ? initial / 4 : (32u << 20));
}

// Begin a guarded stretch of script: the watchdog ends it after ms.
void guard(jse *e, uint64_t ms)
{
    e->limit_ns.store(ms * NS_PER_MS);
    e->since.store(mono_ns(), std::memory_order_release);
}

void unguard(jse *e)
{
    e->since.store(0, std::memory_order_release);
}

void error_frame(jse_out *o, int kind, const std::string &msg)
{
    size_t at = pjp_begin(&o->buf, PJP_ERROR, re);
    pjp_u32(&o->buf, (uint32_t)kind, re);
    std::string m = msg.size() > 8192 ? msg.substr(0, 8192) : msg;
    pjp_str(&o->buf, m.data(), m.size(), re);
    pjp_end(&o->buf, at);
}

std::string utf8(v8::Isolate *iso, v8::Local<v8::Value> v)
{
    v8::String::Utf8Value s(iso, v);
    return *s ? std::string(*s, (size_t)s.length()) : std::string("?");
}

// Why the call that tc watched failed: *kind (PJP_ERR_*) and the reason.
// `where` says what ran ("in the handler for event 3@a (T)").
std::string reason(jse *e, v8::Local<v8::Context> ctx, v8::TryCatch &tc, const std::string &where,
                   int script_kind, int *kind)
{
    unguard(e);
    if (tc.HasTerminated() || e->iso->IsExecutionTerminating() || e->heap_hit.load() || e->fired.load()) {
        e->iso->CancelTerminateExecution();
        if (e->heap_hit.load()) {
            *kind = PJP_ERR_HEAP;
            return "the script reached its heap limit of " + std::to_string(e->lim.heap_mib) + " MiB " +
                   where;
        }
        *kind = PJP_ERR_TIMEOUT;
        return "timed out after " + std::to_string(e->limit_ns.load() / NS_PER_MS) + " ms " + where;
    }
    std::string msg = tc.HasCaught() ? utf8(e->iso, tc.Exception()) : std::string("an exception");
    v8::Local<v8::Message> m = tc.Message();
    if (!m.IsEmpty()) {
        // The line in the projection's source: of the innermost frame in
        // it (an error thrown by api.js on the script's behalf points at
        // the script's call), or of the message itself.
        int line = 0;
        v8::Local<v8::StackTrace> st = m->GetStackTrace();
        if (!st.IsEmpty()) {
            for (int i = 0; i < st->GetFrameCount() && !line; i++) {
                v8::Local<v8::StackFrame> f = st->GetFrame(e->iso, i);
                v8::Local<v8::String> sn = f->GetScriptName();
                if (!sn.IsEmpty() && utf8(e->iso, sn) == e->name) line = f->GetLineNumber();
            }
        }
        if (!line && utf8(e->iso, m->GetScriptResourceName()) == e->name)
            line = m->GetLineNumber(ctx).FromMaybe(0);
        if (line) msg += " (line " + std::to_string(line) + ")";
    }
    *kind = script_kind;
    return msg + " " + where;
}

// The same as an ERROR frame: a negative PJP_ERR_*.
int fail(jse *e, v8::Local<v8::Context> ctx, v8::TryCatch &tc, const std::string &where, int script_kind)
{
    int kind;
    std::string why = reason(e, ctx, tc, where, script_kind, &kind);
    error_frame(e->out, kind, why);
    return -kind;
}

bool new_str(v8::Isolate *iso, const char *p, size_t n, v8::Local<v8::Value> *out,
             v8::NewStringType t = v8::NewStringType::kNormal)
{
    v8::Local<v8::String> s;
    if (n > (size_t)v8::String::kMaxLength ||
        !v8::String::NewFromUtf8(iso, p ? p : "", t, (int)n).ToLocal(&s))
        return false;
    *out = s;
    return true;
}

// A JavaScript string into the frame as a str (or, for null/undefined
// when allowed, an absent opt): false if it is something else or longer
// than max bytes (*len says how long).
bool put_string(jse *e, v8::Local<v8::Value> v, bool optional, size_t max, size_t *len)
{
    pjp_buf *b = &e->out->buf;
    *len = 0;
    if (optional && (v->IsNull() || v->IsUndefined())) {
        pjp_u32(b, PJP_ABSENT, re);
        return true;
    }
    if (!v->IsString()) return false;
    v8::Local<v8::String> s = v.As<v8::String>();
    size_t n = (size_t)s->Utf8Length(e->iso);
    *len = n;
    if (n > max) return false;
    pjp_u32(b, (uint32_t)n, re);
    if (pjp_reserve(b, n + 1, re)) return false;
    s->WriteUtf8(e->iso, (char *)b->p + b->len, (int)n, nullptr, v8::String::NO_NULL_TERMINATION);
    b->len += n;
    return true;
}

std::string event_name(const jse_event *ev)
{
    std::string s(ev->stream, ev->stream_len > 200 ? 200 : ev->stream_len);
    std::string t(ev->type, ev->type_len > 100 ? 100 : ev->type_len);
    return std::to_string(ev->seq) + "@" + s + " (" + t + ")";
}

std::string where_event(const jse_event *ev)
{
    if (ev->flags & PJP_EV_DELETED) return "in the $deleted handler for stream " + event_name(ev);
    return "in the handler for event " + event_name(ev);
}

void log_cb(const v8::FunctionCallbackInfo<v8::Value> &info)
{
    jse *e = static_cast<jse *>(info.Data().As<v8::External>()->Value());
    if (!e->out) return;
    std::string msg = info.Length() > 0 ? utf8(e->iso, info[0]) : std::string();
    if (msg.size() > PJP_LOG_MAX) msg.resize(PJP_LOG_MAX);
    size_t at = pjp_begin(&e->out->buf, PJP_LOG, re);
    pjp_str(&e->out->buf, msg.data(), msg.size(), re);
    pjp_end(&e->out->buf, at);
    e->out->flush(e->out->ctx, &e->out->buf);
}

// Everything a call into the engine needs on the stack.
struct Entry {
    v8::Isolate::Scope iscope;
    v8::HandleScope hscope;
    v8::Local<v8::Context> ctx;
    v8::Context::Scope cscope;
    v8::TryCatch tc;
    explicit Entry(jse *e) : iscope(e->iso), hscope(e->iso), ctx(e->ctx.Get(e->iso)), cscope(ctx), tc(e->iso)
    {
    }
};

bool run_script(jse *e, v8::Local<v8::Context> ctx, const char *src, size_t len, const std::string &name,
                v8::Local<v8::Value> *result)
{
    v8::Local<v8::Value> source, origin_name;
    if (!new_str(e->iso, src, len, &source) || !new_str(e->iso, name.data(), name.size(), &origin_name))
        return false;
    v8::ScriptOrigin origin(e->iso, origin_name);
    v8::Local<v8::Script> script;
    if (!v8::Script::Compile(ctx, source.As<v8::String>(), &origin).ToLocal(&script)) return false;
    v8::Local<v8::Value> r;
    if (!script->Run(ctx).ToLocal(&r)) return false;
    if (result) *result = r;
    return true;
}

v8::MaybeLocal<v8::Value> call(jse *e, v8::Local<v8::Context> ctx, int which, int argc,
                               v8::Local<v8::Value> *argv)
{
    return e->fn[which].Get(e->iso)->Call(ctx, e->ctl.Get(e->iso), argc, argv);
}

// Take the outputs the handlers wrote: OUT frames.
int take_outputs(jse *e, Entry &en, const jse_event *ev)
{
    v8::Local<v8::Value> r;
    if (!call(e, en.ctx, F_TAKE, 0, nullptr).ToLocal(&r) || !r->IsArray())
        return fail(e, en.ctx, en.tc, where_event(ev), PJP_ERR_SCRIPT);
    v8::Local<v8::Array> a = r.As<v8::Array>();
    uint32_t n = a->Length();
    pjp_buf *b = &e->out->buf;
    for (uint32_t i = 0; i + 7 <= n; i += 7) {
        v8::Local<v8::Value> v[7];
        for (uint32_t k = 0; k < 7; k++)
            if (!a->Get(en.ctx, i + k).ToLocal(&v[k]))
                return fail(e, en.ctx, en.tc, where_event(ev), PJP_ERR_SCRIPT);
        size_t at = pjp_begin(b, PJP_OUT, re), len;
        pjp_u32(b, (uint32_t)v[0]->Uint32Value(en.ctx).FromMaybe(0), re);
        pjp_u8(b, (uint8_t)v[1]->Uint32Value(en.ctx).FromMaybe(0), re);
        pjp_u8(b, v[5]->IsTrue() ? 1 : 0, re);
        const char *what = nullptr;
        size_t max = 0;
        if (!put_string(e, v[2], false, PJP_NAME_MAX, &len))
            what = "stream name", max = PJP_NAME_MAX;
        else if (!put_string(e, v[3], false, PJP_NAME_MAX, &len))
            what = "event type", max = PJP_NAME_MAX;
        else if (!put_string(e, v[4], false, PJP_EVENT_MAX, &len))
            what = "data", max = PJP_EVENT_MAX;
        else if (!put_string(e, v[6], true, PJP_EVENT_MAX, &len))
            what = "metadata", max = PJP_EVENT_MAX;
        if (what) {
            unguard(e);
            b->len = at;
            std::string stream = v[2]->IsString() ? utf8(e->iso, v[2]) : std::string();
            if (stream.size() > 200) stream.resize(200);
            error_frame(e->out, PJP_ERR_OUTPUT,
                        "an event written to '" + stream + "' has " + what + " of " + std::to_string(len) +
                            " bytes, more than the limit of " + std::to_string(max) + " bytes, " +
                            where_event(ev));
            return -PJP_ERR_OUTPUT;
        }
        pjp_end(b, at);
    }
    if (b->failed) {
        error_frame(e->out, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    if (b->len > (1u << 20) && e->out->flush(e->out->ctx, b)) return -PJP_ERR_PROTOCOL;
    return 0;
}

// .NET's Guid "D" format of the bytes as stored (RFC 4122 order), 36 chars.
void uuid(const uint8_t *b, char *s)
{
    static const char hex[] = "0123456789abcdef";
    int j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s[j++] = '-';
        s[j++] = hex[b[i] >> 4];
        s[j++] = hex[b[i] & 15];
    }
}

int too_large(jse *e, const char *what, const std::string &key, size_t n)
{
    std::string k = key.size() > 200 ? key.substr(0, 200) : key;
    std::string part = k.empty() ? std::string() : " of partition '" + k + "'";
    error_frame(e->out, PJP_ERR_STATE_SIZE,
                std::string("the ") + what + part + " is " + std::to_string(n) +
                    " bytes, more than the limit (MaxProjectionStateSize) of " +
                    std::to_string(e->lim.state_bytes) + " bytes");
    return -PJP_ERR_STATE_SIZE;
}

int finish(jse *e, Entry &en, size_t n)
{
    v8::Local<v8::Value> r;
    guard(e, 1000 + 4 * (uint64_t)e->lim.ms_per_event);
    if (!call(e, en.ctx, F_FINISH, 0, nullptr).ToLocal(&r) || !r->IsArray())
        return fail(e, en.ctx, en.tc, "at the end of the batch (the states to JSON, transformBy, filterBy)",
                    PJP_ERR_SCRIPT);
    // The partition states kept for the next batches: all of them (up to
    // keep_partitions) while the heap is less than half full, else the
    // most recently used half (the host has every state the batches
    // reported, and gives them back when asked: NEED).
    v8::HeapStatistics hs;
    e->iso->GetHeapStatistics(&hs);
    v8::Local<v8::Value> argv[2] = {v8::Integer::NewFromUnsigned(e->iso, e->lim.keep_partitions),
                                    v8::Boolean::New(e->iso, hs.used_heap_size() > hs.heap_size_limit() / 2)};
    v8::Local<v8::Value> kept;
    if (!call(e, en.ctx, F_TRIM, 2, argv).ToLocal(&kept))
        return fail(e, en.ctx, en.tc, "at the end of the batch", PJP_ERR_SCRIPT);
    uint32_t n_kept = kept->IsUint32() ? kept.As<v8::Uint32>()->Value() : 0;
    unguard(e);
    v8::Local<v8::Array> a = r.As<v8::Array>();
    uint32_t len = a->Length();
    pjp_buf *b = &e->out->buf;
    for (uint32_t i = 0; i + 3 <= len; i += 3) {
        v8::Local<v8::Value> key, state, result;
        if (!a->Get(en.ctx, i).ToLocal(&key) || !a->Get(en.ctx, i + 1).ToLocal(&state) ||
            !a->Get(en.ctx, i + 2).ToLocal(&result))
            return fail(e, en.ctx, en.tc, "at the end of the batch", PJP_ERR_SCRIPT);
        size_t at = pjp_begin(b, PJP_PART, re), l;
        if (!put_string(e, key, false, PJP_NAME_MAX, &l)) {
            b->len = at;
            error_frame(e->out, PJP_ERR_SCRIPT,
                        "a partition key of " + std::to_string(l) + " bytes (at most " +
                            std::to_string(PJP_NAME_MAX) + ")");
            return -PJP_ERR_SCRIPT;
        }
        std::string k = utf8(e->iso, key);
        if (!put_string(e, state, true, e->lim.state_bytes, &l)) {
            b->len = at;
            return too_large(e, "state", k, l);
        }
        if (!put_string(e, result, true, e->lim.state_bytes, &l)) {
            b->len = at;
            return too_large(e, "result", k, l);
        }
        pjp_end(b, at);
        if (b->len > (1u << 20) && e->out->flush(e->out->ctx, b)) return -PJP_ERR_PROTOCOL;
    }
    v8::Local<v8::Value> sh;
    if (len && a->Get(en.ctx, len - 1).ToLocal(&sh) && !sh->IsUndefined()) {
        size_t at = pjp_begin(b, PJP_SHARED, re), l;
        if (sh->IsNull()) {
            pjp_u32(b, 0, re);
        } else if (!put_string(e, sh, false, e->lim.state_bytes, &l)) {
            b->len = at;
            return too_large(e, "shared state", "", l);
        }
        pjp_end(b, at);
    }
    size_t at = pjp_begin(b, PJP_DONE, re);
    pjp_u32(b, (uint32_t)n, re);
    pjp_u32(b, n_kept, re);
    pjp_end(b, at);
    if (b->failed) {
        error_frame(e->out, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    return 0;
}

// jse_open's work inside the isolate's scopes (which must be left before
// the isolate can be disposed on failure).
int open_in(jse *e, const char *src, size_t src_len, jse_out *o)
{
    v8::Isolate::Scope iscope(e->iso);
    v8::HandleScope hscope(e->iso);
    v8::Local<v8::Context> ctx = v8::Context::New(e->iso);
    e->ctx.Reset(e->iso, ctx);
    v8::Context::Scope cscope(ctx);
    v8::TryCatch tc(e->iso);
    // As KurrentDB: no eval(), no new Function(source).
    ctx->AllowCodeGenerationFromStrings(false);
    v8::Local<v8::Value> api, ctl;
    v8::Local<v8::Function> log_fn;
    if (!run_script(e, ctx, factum_js_api, factum_js_api_len, "api.js", &api) || !api->IsFunction() ||
        !v8::Function::New(ctx, log_cb, v8::External::New(e->iso, e)).ToLocal(&log_fn))
        return fail(e, ctx, tc, "loading api.js", PJP_ERR_DEFINITION);
    v8::Local<v8::Value> argv[2] = {ctx->Global(), log_fn};
    if (!api.As<v8::Function>()->Call(ctx, v8::Undefined(e->iso), 2, argv).ToLocal(&ctl) || !ctl->IsObject())
        return fail(e, ctx, tc, "loading api.js", PJP_ERR_DEFINITION);
    e->ctl.Reset(e->iso, ctl.As<v8::Object>());
    for (int i = 0; i < N_FN; i++) {
        v8::Local<v8::Value> f, k;
        if (!new_str(e->iso, fn_names[i], std::strlen(fn_names[i]), &k) ||
            !ctl.As<v8::Object>()->Get(ctx, k).ToLocal(&f) || !f->IsFunction())
            return fail(e, ctx, tc, "loading api.js", PJP_ERR_DEFINITION);
        e->fn[i].Reset(e->iso, f.As<v8::Function>());
    }

    // The projection's source, then its definition.
    guard(e, 2 * (uint64_t)e->lim.ms_per_event);
    v8::Local<v8::Value> def;
    if (!run_script(e, ctx, src, src_len, e->name, nullptr) ||
        !call(e, ctx, F_DEFINE, 0, nullptr).ToLocal(&def) || !def->IsArray())
        return fail(e, ctx, tc, "in the projection's definition", PJP_ERR_DEFINITION);
    unguard(e);
    v8::Local<v8::Array> d = def.As<v8::Array>();
    pjp_buf *b = &o->buf;
    size_t at = pjp_begin(b, PJP_DEF, re), len;
    v8::Local<v8::Value> v[7];
    for (uint32_t i = 0; i < 7; i++)
        if (!d->Get(ctx, i).ToLocal(&v[i]))
            return fail(e, ctx, tc, "in the projection's definition", PJP_ERR_DEFINITION);
    pjp_u32(b, v[0]->Uint32Value(ctx).FromMaybe(0), re);
    pjp_u32(b, (uint32_t)v[1]->Int32Value(ctx).FromMaybe(0), re);
    bool names_ok =
        put_string(e, v[2], true, PJP_NAME_MAX, &len) && put_string(e, v[3], true, PJP_NAME_MAX, &len);
    for (int k = 4; k < 7 && names_ok; k++) {
        names_ok = v[k]->IsArray();
        if (!names_ok) break;
        v8::Local<v8::Array> list = v[k].As<v8::Array>();
        pjp_u32(b, list->Length(), re);
        for (uint32_t i = 0; i < list->Length() && names_ok; i++) {
            v8::Local<v8::Value> s;
            names_ok = list->Get(ctx, i).ToLocal(&s) && put_string(e, s, false, PJP_NAME_MAX, &len);
        }
    }
    if (!names_ok) {
        b->len = at;
        error_frame(o, PJP_ERR_DEFINITION,
                    "a stream, category or event type name longer than " + std::to_string(PJP_NAME_MAX) +
                        " bytes");
        return -PJP_ERR_DEFINITION;
    }
    pjp_end(b, at);
    if (b->failed) {
        error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    return 0;
}

// ---- read models (rmapi.js) ----------------------------------------------

// Why event ev's handler failed: *kind (PJP_ERR_*) and the message, with
// the script's part of the stack.
std::string rm_reason(jse *e, v8::Local<v8::Context> ctx, v8::TryCatch &tc, const jse_event *ev, int *kind)
{
    unguard(e);
    std::string where = where_event(ev);
    if (tc.HasTerminated() || e->iso->IsExecutionTerminating() || e->heap_hit.load() || e->fired.load()) {
        e->iso->CancelTerminateExecution();
        e->fired.store(0);
        if (e->heap_hit.load()) {
            *kind = PJP_ERR_HEAP;
            return "the script reached its heap limit of " + std::to_string(e->lim.heap_mib) + " MiB " + where;
        }
        *kind = PJP_ERR_TIMEOUT;
        return "timed out after " + std::to_string(e->limit_ns.load() / NS_PER_MS) + " ms " + where;
    }
    *kind = PJP_ERR_SCRIPT;
    std::string msg = tc.HasCaught() ? utf8(e->iso, tc.Exception()) : std::string("an exception");
    std::string out = msg + " " + where;
    v8::Local<v8::Value> st;
    if (tc.HasCaught() && tc.StackTrace(ctx).ToLocal(&st) && st->IsString()) {
        // The frames in the script (not rmapi.js's), after the message.
        std::string stack = utf8(e->iso, st);
        size_t p = 0;
        while (p < stack.size()) {
            size_t nl = stack.find('\n', p);
            std::string line = stack.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
            p = nl == std::string::npos ? stack.size() : nl + 1;
            size_t at = line.find_first_not_of(' ');
            if (at == std::string::npos || line.compare(at, 3, "at ") || line.find(e->name) == std::string::npos)
                continue;
            out += "\n    " + line.substr(at);
        }
    }
    if (out.size() > PJP_FAIL_MAX) out.resize(PJP_FAIL_MAX);
    return out;
}

int open_rm_in(jse *e, const char *src, size_t src_len, jse_out *o)
{
    v8::Isolate::Scope iscope(e->iso);
    v8::HandleScope hscope(e->iso);
    v8::Local<v8::Context> ctx = v8::Context::New(e->iso);
    e->ctx.Reset(e->iso, ctx);
    v8::Context::Scope cscope(ctx);
    v8::TryCatch tc(e->iso);
    ctx->AllowCodeGenerationFromStrings(false);
    v8::Local<v8::Value> api, ctl;
    v8::Local<v8::Function> log_fn;
    if (!run_script(e, ctx, factum_js_rmapi, factum_js_rmapi_len, "rmapi.js", &api) || !api->IsFunction() ||
        !v8::Function::New(ctx, log_cb, v8::External::New(e->iso, e)).ToLocal(&log_fn))
        return fail(e, ctx, tc, "loading rmapi.js", PJP_ERR_DEFINITION);
    v8::Local<v8::Value> argv[2] = {ctx->Global(), log_fn};
    if (!api.As<v8::Function>()->Call(ctx, v8::Undefined(e->iso), 2, argv).ToLocal(&ctl) || !ctl->IsObject())
        return fail(e, ctx, tc, "loading rmapi.js", PJP_ERR_DEFINITION);
    e->ctl.Reset(e->iso, ctl.As<v8::Object>());
    const char *const names[3] = {"define", "step", "take"};
    v8::Local<v8::Function> fns[3];
    for (int i = 0; i < 3; i++) {
        v8::Local<v8::Value> f, k;
        if (!new_str(e->iso, names[i], std::strlen(names[i]), &k) || !ctl.As<v8::Object>()->Get(ctx, k).ToLocal(&f) ||
            !f->IsFunction())
            return fail(e, ctx, tc, "loading rmapi.js", PJP_ERR_DEFINITION);
        fns[i] = f.As<v8::Function>();
    }
    e->rm_step.Reset(e->iso, fns[1]);
    e->rm_take.Reset(e->iso, fns[2]);

    // The script, and its value: the handlers.
    guard(e, 2 * (uint64_t)e->lim.ms_per_event);
    v8::Local<v8::Value> value, def;
    if (!run_script(e, ctx, src, src_len, e->name, &value) ||
        !fns[0]->Call(ctx, ctl, 1, &value).ToLocal(&def) || !def->IsArray())
        return fail(e, ctx, tc, "in the read model's script", PJP_ERR_DEFINITION);
    unguard(e);
    v8::Local<v8::Array> d = def.As<v8::Array>();
    v8::Local<v8::Value> flags, types;
    if (!d->Get(ctx, 0).ToLocal(&flags) || !d->Get(ctx, 6).ToLocal(&types) || !types->IsArray())
        return fail(e, ctx, tc, "in the read model's script", PJP_ERR_DEFINITION);
    pjp_buf *b = &o->buf;
    size_t at = pjp_begin(b, PJP_DEF, re), len;
    pjp_u32(b, flags->Uint32Value(ctx).FromMaybe(0), re);
    pjp_u32(b, 0, re);
    pjp_u32(b, PJP_ABSENT, re);
    pjp_u32(b, PJP_ABSENT, re);
    pjp_u32(b, 0, re);
    pjp_u32(b, 0, re);
    v8::Local<v8::Array> list = types.As<v8::Array>();
    pjp_u32(b, list->Length(), re);
    for (uint32_t i = 0; i < list->Length(); i++) {
        v8::Local<v8::Value> t;
        if (!list->Get(ctx, i).ToLocal(&t) || !put_string(e, t, false, PJP_NAME_MAX, &len)) {
            b->len = at;
            error_frame(o, PJP_ERR_DEFINITION,
                        "a handler's event type longer than " + std::to_string(PJP_NAME_MAX) + " bytes");
            return -PJP_ERR_DEFINITION;
        }
    }
    pjp_end(b, at);
    if (b->failed) {
        error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    return 0;
}

void rm_fail_frame(jse_out *o, size_t i, int kind, const std::string &msg)
{
    size_t at = pjp_begin(&o->buf, PJP_FAIL, re);
    pjp_u32(&o->buf, (uint32_t)i, re);
    pjp_u32(&o->buf, (uint32_t)kind, re);
    pjp_str(&o->buf, msg.data(), msg.size(), re);
    pjp_end(&o->buf, at);
}

void rm_done_frame(jse_out *o, size_t n)
{
    size_t at = pjp_begin(&o->buf, PJP_DONE, re);
    pjp_u32(&o->buf, (uint32_t)n, re);
    pjp_u32(&o->buf, 0, re);
    pjp_end(&o->buf, at);
}

// Every event of the batch through its handler: SQL frames for the
// statements it asked for, a FAIL if it failed; DONE.
int run_rm(jse *e, const jse_event *ev, size_t n, jse_out *o)
{
    v8::Isolate *iso = e->iso;
    v8::Isolate::Scope iscope(iso);
    v8::HandleScope hscope(iso);
    v8::Local<v8::Context> ctx = e->ctx.Get(iso);
    v8::Context::Scope cscope(ctx);
    v8::Local<v8::Function> step = e->rm_step.Get(iso), take = e->rm_take.Get(iso);
    v8::Local<v8::Object> ctl = e->ctl.Get(iso);
    pjp_buf *b = &o->buf;
    for (size_t i = 0; i < n; i++) {
        const jse_event *x = &ev[i];
        v8::HandleScope hs(iso);
        v8::TryCatch tc(iso);
        v8::Local<v8::Value> argv[10];
        char id[36];
        uuid(x->id, id);
        argv[0] = v8::Number::New(iso, (double)i);
        if (!new_str(iso, x->type, x->type_len, &argv[1], v8::NewStringType::kInternalized) ||
            !new_str(iso, x->stream, x->stream_len, &argv[2]) || !new_str(iso, id, sizeof id, &argv[5]) ||
            !new_str(iso, x->data, x->data_len, &argv[6]) || !new_str(iso, x->meta, x->meta_len, &argv[7])) {
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, "the event is too large for a JavaScript string " + where_event(x));
            continue;
        }
        argv[3] = v8::Number::New(iso, (double)x->seq);
        argv[4] = v8::Number::New(iso, (double)x->position);
        int64_t ms = x->timestamp_ns / 1000000, sub = x->timestamp_ns % 1000000;
        if (sub < 0) sub += 1000000, ms -= 1;
        argv[8] = v8::Number::New(iso, (double)ms);
        argv[9] = v8::Integer::New(iso, (int32_t)(sub / 1000));
        guard(e, e->lim.ms_per_event);
        v8::Local<v8::Value> r, taken;
        if (!step->Call(ctx, ctl, 10, argv).ToLocal(&r)) {
            int kind;
            std::string why = rm_reason(e, ctx, tc, x, &kind);
            rm_fail_frame(o, i, kind, why);
            if (kind == PJP_ERR_HEAP) {
                // The heap limit was raised to unwind: the engine ends here.
                rm_done_frame(o, i + 1);
                return -PJP_ERR_HEAP;
            }
            continue;
        }
        unguard(e);
        uint32_t count = r->Uint32Value(ctx).FromMaybe(0);
        if (!count) continue;
        if (!take->Call(ctx, ctl, 0, nullptr).ToLocal(&taken) || !taken->IsArray()) {
            int kind;
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, rm_reason(e, ctx, tc, x, &kind));
            continue;
        }
        v8::Local<v8::Array> a = taken.As<v8::Array>();
        size_t mark = b->len;
        std::string bad;
        for (uint32_t k = 0; k + 2 <= a->Length() && bad.empty(); k += 2) {
            v8::Local<v8::Value> text, params;
            size_t at = pjp_begin(b, PJP_SQL, re), len = 0;
            pjp_u32(b, (uint32_t)i, re);
            if (!a->Get(ctx, k).ToLocal(&text) || !a->Get(ctx, k + 1).ToLocal(&params))
                bad = "the statements could not be taken";
            else if (!put_string(e, text, false, PJP_SQL_MAX, &len))
                bad = "sql(): a statement of " + std::to_string(len) + " bytes (at most " +
                      std::to_string(PJP_SQL_MAX) + ")";
            else if (!put_string(e, params, false, PJP_EVENT_MAX, &len))
                bad = "sql(): parameters of " + std::to_string(len) + " bytes (at most " +
                      std::to_string(PJP_EVENT_MAX) + ")";
            pjp_end(b, at);
        }
        if (!bad.empty()) {
            b->len = mark;
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, bad + " " + where_event(x));
        }
        if (b->failed) {
            error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
            return -PJP_ERR_NOMEM;
        }
        if (b->len > (1u << 20) && o->flush(o->ctx, b)) return -PJP_ERR_PROTOCOL;
    }
    rm_done_frame(o, n);
    return 0;
}


// ---- upcasters (upapi.js) ---------------------------------------------------

// Why script `i` failed on an event: *kind and the message (the exception
// and its line in the script, or the time or heap limit).
std::string up_reason(jse *e, v8::Local<v8::Context> ctx, v8::TryCatch &tc, uint32_t i, int *kind)
{
    unguard(e);
    if (tc.HasTerminated() || e->iso->IsExecutionTerminating() || e->heap_hit.load() || e->fired.load()) {
        e->iso->CancelTerminateExecution();
        e->fired.store(0);
        if (e->heap_hit.load()) {
            *kind = PJP_ERR_HEAP;
            return "the script reached its heap limit of " + std::to_string(e->lim.heap_mib) + " MiB";
        }
        *kind = PJP_ERR_TIMEOUT;
        return "the script timed out after " + std::to_string(e->limit_ns.load() / NS_PER_MS) + " ms";
    }
    *kind = PJP_ERR_SCRIPT;
    std::string msg = tc.HasCaught() ? utf8(e->iso, tc.Exception()) : std::string("an exception");
    v8::Local<v8::Message> m = tc.Message();
    const std::string &name = i < e->up_names.size() ? e->up_names[i] : e->name;
    if (!m.IsEmpty()) {
        int line = 0;
        v8::Local<v8::StackTrace> st = m->GetStackTrace();
        if (!st.IsEmpty()) {
            for (int k = 0; k < st->GetFrameCount() && !line; k++) {
                v8::Local<v8::StackFrame> f = st->GetFrame(e->iso, k);
                v8::Local<v8::String> sn = f->GetScriptName();
                if (!sn.IsEmpty() && utf8(e->iso, sn) == name) line = f->GetLineNumber();
            }
        }
        if (!line && utf8(e->iso, m->GetScriptResourceName()) == name) line = m->GetLineNumber(ctx).FromMaybe(0);
        if (line) msg += " (line " + std::to_string(line) + ")";
    }
    if (msg.size() > PJP_FAIL_MAX) msg.resize(PJP_FAIL_MAX);
    return msg;
}

int open_up_in(jse *e, uint32_t n, const char *const *names, const size_t *name_lens, const char *const *srcs,
               const size_t *src_lens, jse_out *o)
{
    v8::Isolate::Scope iscope(e->iso);
    v8::HandleScope hscope(e->iso);
    v8::Local<v8::Context> ctx = v8::Context::New(e->iso);
    e->ctx.Reset(e->iso, ctx);
    v8::Context::Scope cscope(ctx);
    v8::TryCatch tc(e->iso);
    ctx->AllowCodeGenerationFromStrings(false);
    v8::Local<v8::Value> api, ctl, define, step;
    v8::Local<v8::Function> log_fn;
    if (!run_script(e, ctx, factum_js_upapi, factum_js_upapi_len, "upapi.js", &api) || !api->IsFunction() ||
        !v8::Function::New(ctx, log_cb, v8::External::New(e->iso, e)).ToLocal(&log_fn))
        return fail(e, ctx, tc, "loading upapi.js", PJP_ERR_DEFINITION);
    v8::Local<v8::Value> argv[2] = {ctx->Global(), log_fn};
    if (!api.As<v8::Function>()->Call(ctx, v8::Undefined(e->iso), 2, argv).ToLocal(&ctl) || !ctl->IsObject())
        return fail(e, ctx, tc, "loading upapi.js", PJP_ERR_DEFINITION);
    e->ctl.Reset(e->iso, ctl.As<v8::Object>());
    v8::Local<v8::Value> kd, ks;
    if (!new_str(e->iso, "define", 6, &kd) || !new_str(e->iso, "step", 4, &ks) ||
        !ctl.As<v8::Object>()->Get(ctx, kd).ToLocal(&define) || !define->IsFunction() ||
        !ctl.As<v8::Object>()->Get(ctx, ks).ToLocal(&step) || !step->IsFunction())
        return fail(e, ctx, tc, "loading upapi.js", PJP_ERR_DEFINITION);
    e->up_step.Reset(e->iso, step.As<v8::Function>());

    // Each script alone: one that does not compile, or is not a function,
    // fails its own events only (the host reports why).
    pjp_buf *b = &o->buf;
    size_t at = pjp_begin(b, PJP_UPDEF, re);
    pjp_u32(b, n, re);
    for (uint32_t i = 0; i < n; i++) {
        e->up_names.emplace_back(names[i], name_lens[i]);
        v8::HandleScope hs(e->iso);
        v8::TryCatch tci(e->iso);
        // A function expression: "(" ... ")" makes the text one, and the
        // newline keeps a trailing line comment from eating the ")".
        std::string src = "(" + std::string(srcs[i], src_lens[i]) + "\n)";
        v8::Local<v8::Value> value, args[2];
        guard(e, 2 * (uint64_t)e->lim.ms_per_event);
        bool ok = run_script(e, ctx, src.data(), src.size(), e->up_names[i], &value);
        if (ok) {
            args[0] = v8::Integer::NewFromUnsigned(e->iso, i);
            args[1] = value;
            ok = !define.As<v8::Function>()->Call(ctx, ctl, 2, args).IsEmpty();
        }
        if (ok) {
            unguard(e);
            e->up_ok.push_back(true);
            pjp_u32(b, PJP_ABSENT, re);
            continue;
        }
        int kind;
        std::string why = up_reason(e, ctx, tci, i, &kind);
        if (kind == PJP_ERR_HEAP) {
            b->len = at;
            error_frame(o, PJP_ERR_HEAP, why + " compiling " + e->up_names[i]);
            return -PJP_ERR_HEAP;
        }
        e->up_ok.push_back(false);
        pjp_str(b, why.data(), why.size(), re);
    }
    pjp_end(b, at);
    if (b->failed) {
        error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    return 0;
}

// Every event of the batch through its script: UPOUT or FAIL; DONE.
int run_up(jse *e, const jse_event *ev, size_t n, jse_out *o)
{
    v8::Isolate *iso = e->iso;
    v8::Isolate::Scope iscope(iso);
    v8::HandleScope hscope(iso);
    v8::Local<v8::Context> ctx = e->ctx.Get(iso);
    v8::Context::Scope cscope(ctx);
    v8::Local<v8::Function> step = e->up_step.Get(iso);
    v8::Local<v8::Object> ctl = e->ctl.Get(iso);
    pjp_buf *b = &o->buf;
    for (size_t i = 0; i < n; i++) {
        const jse_event *x = &ev[i];
        v8::HandleScope hs(iso);
        v8::TryCatch tc(iso);
        if (x->script >= e->up_ok.size() || !e->up_ok[x->script]) {
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, "the script does not compile");
            continue;
        }
        v8::Local<v8::Value> argv[4];
        argv[0] = v8::Integer::NewFromUnsigned(iso, x->script);
        if (!new_str(iso, x->type, x->type_len, &argv[1], v8::NewStringType::kInternalized) ||
            !new_str(iso, x->data, x->data_len, &argv[2]) || !new_str(iso, x->meta, x->meta_len, &argv[3])) {
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, "the event is too large for a JavaScript string");
            continue;
        }
        guard(e, e->lim.ms_per_event);
        v8::Local<v8::Value> r;
        if (!step->Call(ctx, ctl, 4, argv).ToLocal(&r) || !r->IsArray()) {
            int kind;
            std::string why = up_reason(e, ctx, tc, x->script, &kind);
            rm_fail_frame(o, i, kind, why);
            if (kind == PJP_ERR_HEAP) {
                rm_done_frame(o, i + 1);
                return -PJP_ERR_HEAP;
            }
            continue;
        }
        unguard(e);
        v8::Local<v8::Array> a = r.As<v8::Array>();
        v8::Local<v8::Value> t, d, m;
        size_t at = pjp_begin(b, PJP_UPOUT, re), len = 0;
        pjp_u32(b, (uint32_t)i, re);
        std::string bad;
        if (!a->Get(ctx, 0).ToLocal(&t) || !a->Get(ctx, 1).ToLocal(&d) || !a->Get(ctx, 2).ToLocal(&m))
            bad = "the result could not be taken";
        else if (!put_string(e, t, false, PJP_NAME_MAX, &len))
            bad = "the script returned a type of " + std::to_string(len) + " bytes (at most " +
                  std::to_string(PJP_NAME_MAX) + ")";
        else if (!put_string(e, d, false, PJP_EVENT_MAX, &len))
            bad = "the script returned data of " + std::to_string(len) + " bytes (at most " +
                  std::to_string(PJP_EVENT_MAX) + ")";
        else if (!put_string(e, m, true, PJP_EVENT_MAX, &len))
            bad = "the script returned metadata of " + std::to_string(len) + " bytes (at most " +
                  std::to_string(PJP_EVENT_MAX) + ")";
        if (!bad.empty()) {
            b->len = at;
            rm_fail_frame(o, i, PJP_ERR_SCRIPT, bad);
        } else {
            pjp_end(b, at);
        }
        if (b->failed) {
            error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
            return -PJP_ERR_NOMEM;
        }
        if (b->len > (1u << 20) && o->flush(o->ctx, b)) return -PJP_ERR_PROTOCOL;
    }
    rm_done_frame(o, n);
    return 0;
}

} // namespace

extern "C" {

const char *jse_version(void)
{
    static std::string v = std::string("V8 ") + v8::V8::GetVersion();
    return v.c_str();
}

// A new engine with its isolate and watchdog (no context yet).
static int engine_new(const jse_limits *l, const char *name, size_t name_len, jse_out *o, jse **out)
{
    *out = nullptr;
    if (!platform) {
        // One background thread for V8's own work (concurrent marking,
        // compilation): one projection per process.
        // Source positions computed with the code, not when first asked
        // for: a stack overflow cannot compute them, and its error would
        // point at line 1.
        static const char flags[] = "--no-enable-lazy-source-positions";
        v8::V8::SetFlagsFromString(flags, sizeof flags - 1);
        platform = v8::platform::NewDefaultPlatform(1);
        v8::V8::InitializePlatform(platform.get());
        v8::V8::Initialize();
    }
    jse *e = new (std::nothrow) jse;
    if (!e) {
        error_frame(o, PJP_ERR_NOMEM, "the worker ran out of memory");
        return -PJP_ERR_NOMEM;
    }
    e->lim = *l;
    e->name.assign(name, name_len);
    if (e->name.empty()) e->name = "projection";
    e->out = o;
    fatal_fd = l->fatal_fd;
    fatal_heap_mib = l->heap_mib;
    e->ab = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = e->ab;
    params.constraints.ConfigureDefaultsFromHeapSize(0, (size_t)l->heap_mib << 20);
    params.oom_error_callback = fatal_oom;
    e->iso = v8::Isolate::New(params);
    e->iso->SetFatalErrorHandler(fatal_error);
    e->iso->SetOOMErrorHandler(fatal_oom);
    e->iso->AddNearHeapLimitCallback(near_heap_limit, e);
    e->iso->SetCaptureStackTraceForUncaughtExceptions(true, 32);
    e->limit_ns.store((uint64_t)l->ms_per_event * NS_PER_MS);
    e->watchdog = std::thread(watch, e);
    *out = e;
    return 0;
}

int jse_open(const jse_limits *l, const char *name, size_t name_len, const char *src, size_t src_len,
             jse_out *o, jse **out)
{
    jse *e;
    int rc = engine_new(l, name, name_len, o, &e);
    if (rc) return rc;
    rc = l->readmodel ? open_rm_in(e, src, src_len, o) : open_in(e, src, src_len, o);
    if (rc) {
        jse_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int jse_open_up(const jse_limits *l, uint32_t n, const char *const *names, const size_t *name_lens,
                const char *const *srcs, const size_t *src_lens, jse_out *o, jse **out)
{
    jse *e;
    int rc = engine_new(l, "upcasters", 9, o, &e);
    if (rc) return rc;
    rc = open_up_in(e, n, names, name_lens, srcs, src_lens, o);
    if (rc) {
        jse_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void jse_load(jse *e, int shared, const char *key, size_t key_len, const char *state, size_t state_len)
{
    if (e->pending_kind) return;
    Entry en(e);
    v8::Local<v8::Value> argv[3];
    argv[1] = v8::Boolean::New(e->iso, shared != 0);
    argv[2] = v8::Null(e->iso);
    if (!new_str(e->iso, key, key_len, &argv[0]) || (state && !new_str(e->iso, state, state_len, &argv[2]))) {
        e->pending_kind = PJP_ERR_NOMEM;
        e->pending = "a state too large for a JavaScript string";
        return;
    }
    guard(e, 1000 + 4 * (uint64_t)e->lim.ms_per_event);
    if (call(e, en.ctx, F_LOAD, 3, argv).IsEmpty()) {
        std::string k(key, key_len > 200 ? 200 : key_len);
        e->pending = reason(e, en.ctx, en.tc,
                            shared ? std::string("loading the shared state")
                                   : "loading the state of partition '" + k + "'",
                            PJP_ERR_SCRIPT, &e->pending_kind);
        return;
    }
    unguard(e);
}

int jse_run(jse *e, const jse_event *ev, size_t n, size_t *at, jse_out *o)
{
    e->out = o;
    if (e->pending_kind) {
        error_frame(o, e->pending_kind, e->pending);
        return -e->pending_kind;
    }
    if (e->lim.readmodel) {
        *at = n;
        return run_rm(e, ev, n, o);
    }
    if (e->lim.upcaster) {
        *at = n;
        return run_up(e, ev, n, o);
    }
    Entry en(e);
    v8::Isolate *iso = e->iso;
    v8::Local<v8::Function> step = e->fn[F_STEP].Get(iso);
    v8::Local<v8::Object> ctl = e->ctl.Get(iso);
    v8::Local<v8::Value> null_v = v8::Null(iso);
    for (size_t i = *at; i < n; i++) {
        const jse_event *x = &ev[i];
        v8::HandleScope hs(iso);
        v8::Local<v8::Value> argv[12];
        argv[0] = v8::Number::New(iso, (double)i);
        // Event types are few and used as keys: internalized once, they are
        // looked up, not copied.
        char id[36];
        uuid(x->id, id);
        if (!new_str(iso, x->stream, x->stream_len, &argv[1]) ||
            !new_str(iso, x->type, x->type_len, &argv[2], v8::NewStringType::kInternalized) ||
            !new_str(iso, id, sizeof id, &argv[4]) || !new_str(iso, x->data, x->data_len, &argv[5]) ||
            !new_str(iso, x->meta, x->meta_len, &argv[7])) {
            error_frame(o, PJP_ERR_NOMEM, "an event too large for a JavaScript string");
            return -PJP_ERR_NOMEM;
        }
        argv[3] = v8::Number::New(iso, (double)x->seq);
        argv[6] = v8::Boolean::New(iso, (x->flags & PJP_EV_JSON) != 0);
        if (!x->link_meta)
            argv[8] = null_v;
        else if (!new_str(iso, x->link_meta, x->link_meta_len, &argv[8])) {
            error_frame(o, PJP_ERR_NOMEM, "an event too large for a JavaScript string");
            return -PJP_ERR_NOMEM;
        }
        // .NET ticks (100 ns) below the millisecond, for `created`.
        int64_t ms = x->timestamp_ns / 1000000, sub = x->timestamp_ns % 1000000;
        if (sub < 0) sub += 1000000, ms -= 1;
        argv[9] = v8::Number::New(iso, (double)ms);
        argv[10] = v8::Integer::New(iso, (int32_t)(sub / 100));
        argv[11] = v8::Boolean::New(iso, (x->flags & PJP_EV_DELETED) != 0);
        guard(e, e->lim.ms_per_event);
        v8::Local<v8::Value> r;
        if (!step->Call(en.ctx, ctl, 12, argv).ToLocal(&r))
            return fail(e, en.ctx, en.tc, where_event(x), PJP_ERR_SCRIPT);
        unguard(e);
        int code = (int)r->Int32Value(en.ctx).FromMaybe(0);
        if (code & 4) {
            int rc = take_outputs(e, en, x);
            if (rc) return rc;
        }
        if (code & 3) {
            v8::Local<v8::Value> key = v8::String::Empty(iso);
            if ((code & 1) && !call(e, en.ctx, F_NEED_KEY, 0, nullptr).ToLocal(&key))
                return fail(e, en.ctx, en.tc, where_event(x), PJP_ERR_SCRIPT);
            size_t fa = pjp_begin(&o->buf, PJP_NEED, re), len;
            pjp_u32(&o->buf, (uint32_t)i, re);
            pjp_u8(&o->buf, (code & 2) ? 1 : 0, re);
            if (!put_string(e, key, false, PJP_NAME_MAX, &len)) {
                o->buf.len = fa;
                error_frame(o, PJP_ERR_SCRIPT,
                            "partitionBy returned a key of " + std::to_string(len) + " bytes (at most " +
                                std::to_string(PJP_NAME_MAX) + ") " + where_event(x));
                return -PJP_ERR_SCRIPT;
            }
            pjp_end(&o->buf, fa);
            *at = i;
            return 1;
        }
    }
    return finish(e, en, n);
}

int jse_get(jse *e, int shared, const char *key, size_t key_len, jse_out *o)
{
    e->out = o;
    if (e->pending_kind) {
        error_frame(o, e->pending_kind, e->pending);
        return -e->pending_kind;
    }
    Entry en(e);
    v8::Local<v8::Value> argv[2], r;
    argv[1] = v8::Boolean::New(e->iso, shared != 0);
    if (!new_str(e->iso, key, key_len, &argv[0])) {
        error_frame(o, PJP_ERR_NOMEM, "a partition key too large for a JavaScript string");
        return -PJP_ERR_NOMEM;
    }
    guard(e, 1000 + 4 * (uint64_t)e->lim.ms_per_event);
    if (!call(e, en.ctx, F_GET, 2, argv).ToLocal(&r))
        return fail(e, en.ctx, en.tc, "serializing a state", PJP_ERR_SCRIPT);
    unguard(e);
    size_t at = pjp_begin(&o->buf, PJP_STATE, re), len;
    if (!put_string(e, r, true, e->lim.state_bytes, &len)) {
        o->buf.len = at;
        return too_large(e, shared ? "shared state" : "state", std::string(key, key_len), len);
    }
    pjp_end(&o->buf, at);
    return 0;
}

void jse_free(jse *e)
{
    if (!e) return;
    if (e->watchdog.joinable()) {
        {
            std::lock_guard<std::mutex> lk(e->mu);
            e->stopping = true;
        }
        e->cv.notify_all();
        e->watchdog.join();
    }
    for (auto &f : e->fn)
        f.Reset();
    e->rm_step.Reset();
    e->rm_take.Reset();
    e->up_step.Reset();
    e->ctl.Reset();
    e->ctx.Reset();
    if (e->iso) e->iso->Dispose();
    delete e->ab;
    delete e;
}

} // extern "C"
