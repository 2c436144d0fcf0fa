/*
 * jsbench.c - the evaluation of a JavaScript engine for projections
 * (docs/adr/0006-javascript-engine.md), built once per engine against
 * jsrt.h: factum-bench-js-v8, factum-bench-js-duk (Debian's libduktape) and
 * factum-bench-js-duk-src (Duktape from duktape-dev's shipped source with
 * its execution timeout enabled).
 *
 * What it measures, over N synthetic events (20 types, 10,000 streams, a
 * ~100-byte JSON body, ~60 bytes of metadata) generated in memory first:
 *   throughput  W10 (count by type) in-process, the state kept inside the
 *               engine; batches of 1,000 and one call per event; also
 *               count-by-stream (a 10,000-key state) and a handler that
 *               reads the body (JSON.parse per event)
 *   checkpoint  the same with the state serialized to JSON every 1,000
 *               events, as a checkpointing runtime must
 *   worker      the same projections in a worker process (this program
 *               again, --child), fed batches of 1,000 over a socket, two
 *               batches in flight; the ratio to in-process is the cost of
 *               process isolation
 *   isolation   an infinite loop, deep recursion, a state past
 *               MaxProjectionStateSize, a heap past its limit, an exception in
 *               $init, a cyclic state, a syntax error, a crash of the engine
 *               (simulated in the worker): each must fault its projection
 *               with a reason while another projection carries on
 *   es2015      which ES2015+ features the engine runs
 *   footprint   memory and time to start one more projection
 *
 * Usage: factum-bench-js-ENGINE [--events N] [--quick] [--only throughput,checkpoint,worker,isolation,es2015,footprint]
 * Prints Markdown, and "@ js-ENGINE workload metric value" lines.
 * A benchmark, not a test: nothing is asserted about speed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "../bench.h"
#include "jsrt.h"

#define BATCH 1000           /* events per batch, and per checkpoint */
#define TIMEOUT_MS 250       /* the time per event in the isolation cases */
#define EXIT_TIMEOUT 124     /* a worker that stopped itself at the time limit */
#define STATE_MAX (16u << 20) /* KurrentDB's MaxProjectionStateSize default */

/* ---- projections ---------------------------------------------------- */

static const char W10_ES2015[] =
    "fromAll().when({ $init: () => ({}), $any: (s, e) => { s[e.eventType] = (s[e.eventType] || 0) + 1; return s; } })";
static const char W10_ES5[] = "fromAll().when({ $init: function () { return {}; },\n"
                              "  $any: function (s, e) { s[e.eventType] = (s[e.eventType] || 0) + 1; return s; } })";
static const char BY_STREAM[] = "fromAll().when({ $init: function () { return {}; },\n"
                                "  $any: function (s, e) { s[e.streamId] = (s[e.streamId] || 0) + 1; return s; } })";
static const char READ_BODY[] =
    "fromAll().when({ $init: function () { return { n: 0, total: 0 }; },\n"
    "  $any: function (s, e) { s.n++; s.total += e.body.amount; return s; } })";

/* ---- synthetic events ------------------------------------------------ */

static js_event *events;
static size_t n_events = 1000000;
static char *event_bytes;

static void make_events(size_t n)
{
    static const char *const types[20] = {
        "AccountOpened", "MoneyDeposited", "MoneyWithdrawn", "AccountClosed", "OrderPlaced",
        "OrderShipped", "OrderCancelled", "PaymentReceived", "PaymentRefunded", "ItemAdded",
        "ItemRemoved", "CustomerRegistered", "AddressChanged", "InvoiceIssued", "InvoicePaid",
        "StockReserved", "StockReleased", "ShipmentDelivered", "ReviewPosted", "CouponApplied"};
    size_t cap = n * 320;
    event_bytes = malloc(cap);
    events = calloc(n, sizeof *events);
    if (!event_bytes || !events) {
        fprintf(stderr, "out of memory for %zu events\n", n);
        exit(1);
    }
    uint64_t seed = 42, *seq = calloc(10000, sizeof *seq);
    char *p = event_bytes;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint32_t r = (uint32_t)(seed >> 33);
        js_event *ev = &events[i];
        ev->type = types[r % 20];
        ev->type_len = strlen(ev->type);
        unsigned account = (r >> 5) % 10000;
        ev->stream = p;
        ev->stream_len = (size_t)sprintf(p, "account-%u", account);
        p += ev->stream_len + 1;
        ev->seq = seq[account]++;
        ev->body = p;
        ev->body_len = (size_t)sprintf(p,
                                       "{\"accountId\":\"account-%u\",\"amount\":%u,\"currency\":\"EUR\","
                                       "\"reference\":\"ref-%08zx\",\"at\":1735689600%03u}",
                                       account, r % 1000, i, r % 1000);
        p += ev->body_len + 1;
        ev->meta = p;
        ev->meta_len = (size_t)sprintf(p, "{\"$correlationId\":\"c-%08zx\",\"user\":\"u%u\"}", i / 10, r % 97);
        p += ev->meta_len + 1;
    }
    free(seq);
}

/* ---- the watchdog ---------------------------------------------------- */
/*
 * The prototype of the runtime's: one thread for all engines. An engine is
 * stuck when it is busy and its call counter has not moved for the limit;
 * then fire() (js_terminate, or in a worker whose engine cannot be
 * stopped, the end of the process). Costs the engine two relaxed atomic
 * stores and an increment per event; detects within limit + limit/4.
 */
typedef struct watch {
    js_engine *e;
    uint32_t limit_ms;
    uint64_t last_calls, since_ns;
    int fired;
    void (*fire)(js_engine *e);
} watch;

static struct {
    pthread_mutex_t mu;
    watch *w[16];
    int n, running;
    pthread_t th;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *wd_main(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&wd.mu);
        if (!wd.running) {
            pthread_mutex_unlock(&wd.mu);
            return NULL;
        }
        uint64_t now = now_ns();
        for (int i = 0; i < wd.n; i++) {
            watch *w = wd.w[i];
            const js_progress *p = js_progress_of(w->e);
            uint64_t calls = __atomic_load_n(&p->calls, __ATOMIC_RELAXED);
            int busy = __atomic_load_n(&p->busy, __ATOMIC_RELAXED);
            if (!busy || calls != w->last_calls) {
                w->last_calls = calls;
                w->since_ns = now;
            } else if (!w->fired && now - w->since_ns >= (uint64_t)w->limit_ms * 1000000u) {
                w->fired = 1;
                w->fire(w->e);
            }
        }
        pthread_mutex_unlock(&wd.mu);
        usleep(TIMEOUT_MS * 1000 / 4);
    }
}

static void wd_add(watch *w)
{
    pthread_mutex_lock(&wd.mu);
    w->since_ns = now_ns();
    wd.w[wd.n++] = w;
    if (!wd.running) {
        wd.running = 1;
        pthread_create(&wd.th, NULL, wd_main, NULL);
    }
    pthread_mutex_unlock(&wd.mu);
}

static void wd_remove(watch *w)
{
    pthread_mutex_lock(&wd.mu);
    for (int i = 0; i < wd.n; i++)
        if (wd.w[i] == w) wd.w[i] = wd.w[--wd.n];
    pthread_mutex_unlock(&wd.mu);
}

static void wd_stop(void)
{
    pthread_mutex_lock(&wd.mu);
    int was = wd.running;
    wd.running = 0;
    pthread_mutex_unlock(&wd.mu);
    if (was) pthread_join(wd.th, NULL);
}

static void fire_terminate(js_engine *e)
{
    js_terminate(e);
}

/* ---- in-process runs -------------------------------------------------- */

typedef struct run {
    const char *src;
    js_limits lim;
    size_t n;          /* events */
    int batch;         /* events per js_call_batch, 1 = js_call_handler */
    int checkpoint;    /* serialize the state every BATCH events */
    int rc;            /* the first failure, or JS_OK */
    char fault[1024];
    size_t handled;
    double secs;
    double cpu_secs;   /* of every thread and process involved (the worker's too) */
    size_t state_len;  /* of the last checkpoint or the final state */
    char *final_state; /* malloc'd */
} run;

/* A field of /proc/self/status in KiB ("VmRSS:", "RssAnon:", ...), or -1. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) v = strtol(line + n, NULL, 10);
    if (f) fclose(f);
    return v;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Run r in this thread, with the watchdog watching. */
static void run_inproc(run *r)
{
    js_engine *e = NULL;
    watch w = {.limit_ms = TIMEOUT_MS, .fire = fire_terminate};
    uint64_t t0 = now_ns();
    int rc = js_engine_new(&r->lim, &e);
    if (rc == JS_OK && js_can_terminate()) {
        w.e = e;
        wd_add(&w);
    }
    if (rc == JS_OK) rc = js_eval(e, r->src, strlen(r->src), "projection.js");
    if (rc == JS_OK) rc = js_init_state(e);
    t0 = now_ns();
    uint64_t c0 = cpu_ns();
    size_t i = 0;
    while (rc == JS_OK && i < r->n) {
        size_t k = r->n - i < (size_t)r->batch ? r->n - i : (size_t)r->batch, done = 0;
        if (r->batch == 1) {
            rc = js_call_handler(e, &events[i % n_events]);
            done = rc == JS_OK;
        } else {
            size_t off = i % n_events;
            if (off + k > n_events) k = n_events - off;
            rc = js_call_batch(e, &events[off], k, &done);
        }
        i += done;
        js_take_emitted(e);
        if (rc == JS_OK && r->checkpoint && i % BATCH == 0) {
            char *json;
            rc = js_state_json(e, &json, &r->state_len);
            if (rc == JS_OK) free(json);
        }
    }
    r->secs = (double)(now_ns() - t0) / 1e9;
    r->cpu_secs = (double)(cpu_ns() - c0) / 1e9;
    r->handled = i;
    r->rc = rc;
    if (rc == JS_OK && js_state_json(e, &r->final_state, &r->state_len) != JS_OK) r->final_state = NULL;
    snprintf(r->fault, sizeof r->fault, "%s", e ? js_fault(e) : "could not create the engine");
    if (w.e) wd_remove(&w);
    js_engine_free(e);
}

static void *run_thread(void *arg)
{
    run_inproc(arg);
    return NULL;
}

/* ---- worker processes ------------------------------------------------- */
/*
 * Messages on a stream socket, parent to child: a header {kind, n, len}
 * and len bytes. LOAD carries the limits and the source, BATCH n encoded
 * events (flag CKPT: reply with the state's JSON). The child answers each
 * message with {rc, len} and len bytes (the fault's reason, or the state).
 */
enum { W_LOAD = 1, W_BATCH = 2, W_STATE = 3, W_CPU = 4, W_QUIT = 5 };
#define CKPT 0x80000000u
typedef struct msg_hdr {
    uint32_t kind, n;
    uint64_t len;
} msg_hdr;
typedef struct reply_hdr {
    int32_t rc;
    uint32_t pad;
    uint64_t len;
} reply_hdr;
typedef struct load_msg {
    uint64_t heap_max, state_max;
    uint32_t timeout_ms, crash_after;
} load_msg;

static int write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

static size_t encode_batch(char *buf, const js_event *ev, size_t n)
{
    char *p = buf;
    for (size_t i = 0; i < n; i++) {
        uint32_t lens[4] = {(uint32_t)ev[i].type_len, (uint32_t)ev[i].stream_len, (uint32_t)ev[i].body_len,
                            (uint32_t)ev[i].meta_len};
        memcpy(p, lens, sizeof lens);
        p += sizeof lens;
        memcpy(p, &ev[i].seq, 8);
        p += 8;
        memcpy(p, ev[i].type, lens[0]), p += lens[0];
        memcpy(p, ev[i].stream, lens[1]), p += lens[1];
        memcpy(p, ev[i].body, lens[2]), p += lens[2];
        memcpy(p, ev[i].meta, lens[3]), p += lens[3];
    }
    return (size_t)(p - buf);
}

static void decode_batch(const char *p, js_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t lens[4];
        memcpy(lens, p, sizeof lens);
        p += sizeof lens;
        memcpy(&ev[i].seq, p, 8);
        p += 8;
        ev[i].type = p, ev[i].type_len = lens[0], p += lens[0];
        ev[i].stream = p, ev[i].stream_len = lens[1], p += lens[1];
        ev[i].body = p, ev[i].body_len = lens[2], p += lens[2];
        ev[i].meta = p, ev[i].meta_len = lens[3], p += lens[3];
    }
}

static int child_fd = -1;

static int reply(int rc, const char *p, size_t n)
{
    reply_hdr h = {.rc = rc, .len = n};
    return write_all(child_fd, &h, sizeof h) || (n && write_all(child_fd, p, n)) ? -1 : 0;
}

/* In a worker whose engine cannot be interrupted, the watchdog ends the
 * process; the parent reads the exit status. */
static void fire_exit(js_engine *e)
{
    static const char why[] = "time limit exceeded: the worker stopped itself";
    reply_hdr h = {.rc = JS_ERR_TIMEOUT, .len = sizeof why - 1};
    if (write(child_fd, &h, sizeof h) == sizeof h && write(child_fd, why, sizeof why - 1)) {}
    _exit(EXIT_TIMEOUT);
}

static int child_main(int fd)
{
    child_fd = fd;
    js_engine *e = NULL;
    watch w = {.limit_ms = TIMEOUT_MS};
    uint32_t crash_after = 0;
    uint64_t handled = 0;
    size_t cap = 0;
    char *buf = NULL;
    js_event *ev = calloc(BATCH, sizeof *ev);
    for (;;) {
        msg_hdr h;
        if (read_all(fd, &h, sizeof h)) break;
        if (h.len > cap) {
            free(buf);
            cap = h.len;
            buf = malloc(cap);
            if (!buf) return 1;
        }
        if (h.len && read_all(fd, buf, h.len)) break;
        int rc = JS_OK;
        char *json = NULL;
        size_t json_len = 0;
        switch (h.kind) {
        case W_LOAD: {
            load_msg lm;
            memcpy(&lm, buf, sizeof lm);
            js_limits lim = {.heap_max_bytes = lm.heap_max, .state_max_bytes = lm.state_max};
            crash_after = lm.crash_after;
            rc = js_engine_new(&lim, &e);
            if (rc == JS_OK && lm.timeout_ms) {
                w.e = e;
                w.limit_ms = lm.timeout_ms;
                w.fire = js_can_terminate() ? fire_terminate : fire_exit;
                wd_add(&w);
            }
            if (rc == JS_OK) rc = js_eval(e, buf + sizeof lm, h.len - sizeof lm, "projection.js");
            if (rc == JS_OK) rc = js_init_state(e);
            break;
        }
        case W_BATCH: {
            size_t n = h.n & ~CKPT;
            if (n > BATCH) return 1;
            decode_batch(buf, ev, n);
            if (crash_after && handled + n >= crash_after) raise(SIGSEGV); /* an engine crash, simulated */
            rc = js_call_batch(e, ev, n, NULL);
            handled += n;
            js_take_emitted(e);
            if (rc == JS_OK && (h.n & CKPT)) rc = js_state_json(e, &json, &json_len);
            break;
        }
        case W_STATE:
            rc = js_state_json(e, &json, &json_len);
            break;
        case W_CPU: { /* the worker's CPU time so far (ns), and its resident memory (KiB) */
            uint64_t c[3] = {cpu_ns(), (uint64_t)status_kib("RssAnon:"), (uint64_t)status_kib("RssFile:")};
            json = malloc(sizeof c);
            if (json) memcpy(json, c, sizeof c), json_len = sizeof c;
            break;
        }
        default:
            goto out;
        }
        const char *why = rc == JS_OK ? NULL : js_fault(e);
        int wr = rc == JS_OK ? reply(rc, json, json_len) : reply(rc, why, why ? strlen(why) : 0);
        free(json);
        if (wr) break;
    }
out:
    if (w.e) wd_remove(&w);
    wd_stop();
    js_engine_free(e);
    free(buf);
    free(ev);
    return 0;
}

typedef struct worker {
    pid_t pid;
    int fd;
} worker;

static const char *self_exe = "/proc/self/exe";

static int worker_start(worker *wk)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return -errno;
    int sz = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (sv[1] == 3) { /* dup2 onto itself would keep close-on-exec */
        int fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        close(sv[1]);
        sv[1] = fd;
    }
    /* posix_spawn, not fork: it does not copy the parent's page tables (a
     * server with a large heap would pay for that at every start) and the
     * parent may run V8's threads, which a forked child must not touch. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    char *const args[] = {"factum-js-worker", "--child", "3", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self_exe, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        return -rc;
    }
    wk->pid = pid;
    wk->fd = sv[0];
    return 0;
}

/* Wait for the worker's reply; a worker that does not answer within the
 * backstop is killed. Fills why on failure. */
static int worker_reply(worker *wk, char **payload, size_t *len, char *why, size_t why_len, int backstop_ms)
{
    struct pollfd pfd = {.fd = wk->fd, .events = POLLIN};
    int pr = poll(&pfd, 1, backstop_ms);
    reply_hdr h;
    if (pr == 0) {
        kill(wk->pid, SIGKILL);
        snprintf(why, why_len, "the worker did not answer in %d ms and was killed", backstop_ms);
        return JS_ERR_TIMEOUT;
    }
    if (read_all(wk->fd, &h, sizeof h)) {
        int st = 0;
        waitpid(wk->pid, &st, 0);
        wk->pid = 0;
        if (WIFSIGNALED(st)) snprintf(why, why_len, "the worker died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else snprintf(why, why_len, "the worker exited with status %d", WEXITSTATUS(st));
        return JS_ERR_SCRIPT;
    }
    char *p = malloc(h.len + 1);
    if (!p || (h.len && read_all(wk->fd, p, h.len))) {
        free(p);
        snprintf(why, why_len, "the worker's reply was cut short");
        return JS_ERR_SCRIPT;
    }
    p[h.len] = 0;
    if (h.rc != JS_OK) {
        snprintf(why, why_len, "%s", p);
        free(p);
        return h.rc;
    }
    if (payload) *payload = p, *len = h.len;
    else free(p);
    return JS_OK;
}

static void worker_stop(worker *wk)
{
    msg_hdr q = {.kind = W_QUIT};
    if (wk->pid) {
        if (write_all(wk->fd, &q, sizeof q)) kill(wk->pid, SIGKILL);
        waitpid(wk->pid, NULL, 0);
    }
    close(wk->fd);
}

/* The worker's CPU time in ns; its RssAnon and RssFile in KiB in mem[2] if not NULL. */
static uint64_t worker_cpu(worker *wk, uint64_t *mem)
{
    msg_hdr h = {.kind = W_CPU};
    char *p = NULL, why[256];
    size_t len = 0;
    uint64_t c[3] = {0};
    if (write_all(wk->fd, &h, sizeof h) == 0 && worker_reply(wk, &p, &len, why, sizeof why, 10000) == JS_OK &&
        len == sizeof c)
        memcpy(c, p, sizeof c);
    free(p);
    if (mem) mem[0] = c[1], mem[1] = c[2];
    return c[0];
}

/* Run r in a worker process: batches of BATCH, two in flight. */
static void run_worker(run *r, uint32_t crash_after)
{
    worker wk = {0};
    r->rc = JS_OK;
    r->fault[0] = 0;
    r->handled = 0;
    uint64_t t0 = now_ns();
    if (worker_start(&wk)) {
        r->rc = JS_ERR_NOMEM;
        snprintf(r->fault, sizeof r->fault, "could not start a worker");
        return;
    }
    size_t slen = strlen(r->src);
    char *buf = malloc(sizeof(load_msg) + slen > BATCH * 512 ? sizeof(load_msg) + slen : BATCH * 512);
    load_msg lm = {.heap_max = r->lim.heap_max_bytes, .state_max = r->lim.state_max_bytes,
                   .timeout_ms = TIMEOUT_MS, .crash_after = crash_after};
    memcpy(buf, &lm, sizeof lm);
    memcpy(buf + sizeof lm, r->src, slen);
    msg_hdr h = {.kind = W_LOAD, .len = sizeof lm + slen};
    int rc = write_all(wk.fd, &h, sizeof h) || write_all(wk.fd, buf, h.len) ? JS_ERR_SCRIPT : JS_OK;
    if (rc == JS_OK) rc = worker_reply(&wk, NULL, NULL, r->fault, sizeof r->fault, 10000);
    uint64_t child_c0 = rc == JS_OK ? worker_cpu(&wk, NULL) : 0, c0 = cpu_ns();
    t0 = now_ns();
    size_t sent = 0, acked = 0, in_flight = 0;
    while (rc == JS_OK && acked < r->n) {
        while (sent < r->n && in_flight < 2) {
            size_t off = sent % n_events, k = r->n - sent < BATCH ? r->n - sent : BATCH;
            if (off + k > n_events) k = n_events - off;
            h = (msg_hdr){.kind = W_BATCH, .n = (uint32_t)k | (r->checkpoint ? CKPT : 0)};
            h.len = encode_batch(buf, &events[off], k);
            if (write_all(wk.fd, &h, sizeof h) || write_all(wk.fd, buf, h.len)) break;
            sent += k;
            in_flight++;
        }
        char *state = NULL;
        size_t len = 0;
        rc = worker_reply(&wk, &state, &len, r->fault, sizeof r->fault, 30000);
        if (rc == JS_OK) {
            acked += acked + BATCH <= sent ? BATCH : sent - acked;
            in_flight--;
            if (state) r->state_len = len;
        }
        free(state);
    }
    r->secs = (double)(now_ns() - t0) / 1e9;
    r->handled = acked;
    r->rc = rc;
    if (rc == JS_OK) r->cpu_secs = (double)(cpu_ns() - c0 + worker_cpu(&wk, NULL) - child_c0) / 1e9;
    if (rc == JS_OK) {
        h = (msg_hdr){.kind = W_STATE};
        if (write_all(wk.fd, &h, sizeof h) == 0)
            worker_reply(&wk, &r->final_state, &r->state_len, r->fault, sizeof r->fault, 10000);
    }
    free(buf);
    worker_stop(&wk);
}

/* ---- reports ---------------------------------------------------------- */

static const char *sys;

static const char *rc_name(int rc)
{
    switch (rc) {
    case JS_OK: return "ok";
    case JS_ERR_SCRIPT: return "JS_ERR_SCRIPT";
    case JS_ERR_TIMEOUT: return "JS_ERR_TIMEOUT";
    case JS_ERR_HEAP: return "JS_ERR_HEAP";
    case JS_ERR_STATE_SIZE: return "JS_ERR_STATE_SIZE";
    case JS_ERR_FAULTED: return "JS_ERR_FAULTED";
    case JS_ERR_NOMEM: return "JS_ERR_NOMEM";
    default: return "?";
    }
}

/* The fault reason on one line, shortened for a table cell. */
static const char *cell(const char *s)
{
    static char buf[120];
    size_t j = 0;
    for (size_t i = 0; s[i] && j < sizeof buf - 4; i++) buf[j++] = s[i] == '\n' ? ' ' : s[i] == '|' ? '/' : s[i];
    if (strlen(s) >= sizeof buf - 4) j = sizeof buf - 4, memcpy(buf + j, "...", 3), j += 3;
    buf[j] = 0;
    return buf;
}

static double eps(const run *r)
{
    return r->secs > 0 ? (double)r->handled / r->secs : 0;
}

static void print_run(const char *what, const char *w, const char *metric, run *r)
{
    if (r->rc != JS_OK) {
        printf("| %s | failed: %s %s | | | | |\n", what, rc_name(r->rc), cell(r->fault));
        return;
    }
    double cpu_eps = r->cpu_secs > 0 ? (double)r->handled / r->cpu_secs : 0;
    printf("| %s | %.0f | %.0f | %.2f | %.3f | %zu |\n", what, eps(r), cpu_eps,
           r->handled ? r->cpu_secs * 1e6 / (double)r->handled : 0, r->secs, r->state_len);
    result(w, metric, eps(r));
    char m[64];
    snprintf(m, sizeof m, "%s_cpu", metric);
    result(w, m, cpu_eps);
    fflush(stdout);
}

static js_limits default_limits(void)
{
    return (js_limits){.heap_max_bytes = 256u << 20, .state_max_bytes = STATE_MAX};
}

/* Check the W10 state: the counts add up to the events handled. */
static int w10_total_ok(const run *r)
{
    if (!r->final_state) return 0;
    unsigned long total = 0;
    for (const char *p = r->final_state; (p = strchr(p, ':')); p++) total += strtoul(p + 1, NULL, 10);
    return total == r->handled;
}

static void bench_throughput(int checkpoint, int in_worker)
{
    const char *mode = in_worker ? (checkpoint ? "worker process, checkpoint every 1,000" : "worker process, state in engine")
                                 : (checkpoint ? "in-process, checkpoint every 1,000" : "in-process, state in engine");
    printf("\n### %s: %s\n\n| projection | events/s | events per CPU-second | CPU µs/event | s | state bytes |\n"
           "|---|---|---|---|---|---|\n",
           js_engine_name(), mode);
    struct {
        const char *name, *src, *metric;
        int batch;
    } cases[] = {
        {"W10 count by type (ES5 source)", W10_ES5, "eps", BATCH},
        {"W10 count by type (ES2015 source)", W10_ES2015, "eps_es2015", BATCH},
        {"W10, one call per event", W10_ES5, "eps_per_call", 1},
        {"count by stream (10,000 keys)", BY_STREAM, "eps_by_stream", BATCH},
        {"sum of body.amount (JSON.parse per event)", READ_BODY, "eps_read_body", BATCH},
    };
    char w[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (in_worker && cases[i].batch == 1) continue;
        run r = {.src = cases[i].src, .lim = default_limits(), .n = n_events, .batch = cases[i].batch,
                 .checkpoint = checkpoint};
        if (in_worker) run_worker(&r, 0);
        else run_inproc(&r);
        snprintf(w, sizeof w, "W10%s%s", in_worker ? "-worker" : "", checkpoint ? "-ckpt" : "");
        print_run(cases[i].name, w, cases[i].metric, &r);
        if (r.rc == JS_OK && cases[i].src == W10_ES5 && !w10_total_ok(&r))
            printf("| (the counts do not add up to %zu: %s) | | | | | |\n", r.handled, cell(r.final_state ? r.final_state : ""));
        free(r.final_state);
    }
}

/* ---- isolation -------------------------------------------------------- */

static const struct fault_case {
    const char *name, *src;
    size_t heap_max, n;
    int checkpoint;
    uint32_t crash_after; /* worker only */
} fault_cases[] = {
    {"infinite loop in a handler", "fromAll().when({ $any: function (s, e) { for (;;) {} } })", 0, 10, 0, 0},
    {"infinite loop, catching every exception",
     "fromAll().when({ $any: function (s, e) { for (;;) { try { for (;;) {} } catch (x) {} } } })", 0, 10, 0, 0},
    {"deep recursion", "fromAll().when({ $any: function (s, e) { function r(n) { return r(n + 1) + 1; } return r(0); } })",
     0, 10, 0, 0},
    {"deep recursion through a native call (Array.map)",
     "fromAll().when({ $any: function (s, e) { function r(n) { return [n].map(r)[0]; } return r(0); } })", 0, 10, 0, 0},
    {"state past MaxProjectionStateSize (16 MiB)",
     "fromAll().when({ $init: function () { return { l: [] }; },\n"
     "  $any: function (s, e) { s.l.push(e.bodyRaw + e.metadataRaw + e.bodyRaw + e.metadataRaw); return s; } })",
     512u << 20, 400000, 1, 0},
    {"heap past its limit (32 MiB) within one event",
     "fromAll().when({ $any: function (s, e) { var keep = [], a = [e]; for (;;) { a = a.concat(a); keep.push(a); } } })",
     32u << 20, 10, 0, 0},
    {"exception in $init", "fromAll().when({ $init: function () { throw new Error('boom in $init'); }, $any: function (s) { return s; } })",
     0, 10, 0, 0},
    {"a cyclic state (checkpoint)", "fromAll().when({ $any: function (s, e) { s.self = s; return s; } })", 0, 2000, 1, 0},
    {"syntax error", "fromAll().when({ $any: function (s, e) { return s; } ", 0, 10, 0, 0},
    {"engine crash (SIGSEGV in the worker, simulated)", W10_ES5, 0, 5000, 0, 3000},
};

static void bench_isolation(void)
{
    printf("\n### %s: isolation (time per event %d ms; the other projection is W10 over 300,000 events)\n\n",
           js_engine_name(), TIMEOUT_MS);
    printf("| case | in-process: result | detected after | the other projection | worker process: result | detected after |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof fault_cases / sizeof *fault_cases; i++) {
        const struct fault_case *fc = &fault_cases[i];
        js_limits lim = default_limits();
        if (fc->heap_max) lim.heap_max_bytes = fc->heap_max;
        run bad = {.src = fc->src, .lim = lim, .n = fc->n, .batch = 1, .checkpoint = fc->checkpoint};
        char in_res[400], other[120];
        double in_secs = 0;
        int is_loop = strstr(fc->name, "infinite loop") != NULL;
        if (fc->crash_after) {
            snprintf(in_res, sizeof in_res, "(would take the server down: not run)");
            other[0] = 0;
        } else if (is_loop && !js_can_terminate()) {
            snprintf(in_res, sizeof in_res, "cannot be stopped in-process (no exec timeout in this build): not run");
            other[0] = 0;
        } else {
            /* The faulty projection and a healthy one, each on its own thread. */
            run good = {.src = W10_ES5, .lim = default_limits(), .n = 300000, .batch = BATCH};
            pthread_t tb, tg;
            uint64_t t0 = now_ns();
            pthread_create(&tb, NULL, run_thread, &bad);
            pthread_create(&tg, NULL, run_thread, &good);
            pthread_join(tb, NULL);
            in_secs = (double)(now_ns() - t0) / 1e9;
            pthread_join(tg, NULL);
            snprintf(in_res, sizeof in_res, "%s: %s", rc_name(bad.rc), cell(bad.fault));
            snprintf(other, sizeof other, "%s, %zu events, %s", good.rc == JS_OK ? "ok" : rc_name(good.rc), good.handled,
                     w10_total_ok(&good) ? "counts right" : "COUNTS WRONG");
            free(good.final_state);
            free(bad.final_state);
        }
        run wbad = {.src = fc->src, .lim = lim, .n = fc->n, .checkpoint = fc->checkpoint};
        uint64_t t0 = now_ns();
        run_worker(&wbad, fc->crash_after);
        double w_secs = (double)(now_ns() - t0) / 1e9;
        char in_after[32] = "", w_after[32];
        if (in_secs > 0) snprintf(in_after, sizeof in_after, "%.0f ms", in_secs * 1000);
        snprintf(w_after, sizeof w_after, "%.0f ms", w_secs * 1000);
        printf("| %s | %s | %s | %s | %s: %s | %s |\n", fc->name, in_res, in_after, other, rc_name(wbad.rc),
               cell(wbad.fault), w_after);
        free(wbad.final_state);
        fflush(stdout);
    }
}

/* ---- ES2015+ ------------------------------------------------------------ */

static void bench_es2015(void)
{
    static const struct {
        const char *name, *src;
    } feats[] = {
        {"arrow functions", "var f = (a, b) => a + b; if (f(1, 2) !== 3) throw new Error('wrong');"},
        {"let / const (block scope)", "let a = 1; { let a = 2; } const b = a + 1; if (b !== 2) throw new Error('wrong');"},
        {"template literals", "var x = 2; if (`x=${x + 1}` !== 'x=3') throw new Error('wrong');"},
        {"destructuring (object, array)", "var { a, b: [c, d] } = { a: 1, b: [2, 3] }; if (a + c + d !== 6) throw new Error('wrong');"},
        {"destructuring in parameters", "var f = function ({ n }, [m]) { return n + m; }; if (f({ n: 1 }, [2]) !== 3) throw new Error('wrong');"},
        {"default parameters", "function f(a, b = 2) { return a + b; } if (f(1) !== 3) throw new Error('wrong');"},
        {"rest parameters", "function f(...xs) { return xs.length; } if (f(1, 2, 3) !== 3) throw new Error('wrong');"},
        {"spread (array, call)", "var a = [1, 2]; var b = [0, ...a]; if (Math.max(...b) !== 2 || b.length !== 3) throw new Error('wrong');"},
        {"object spread (ES2018)", "var o = { a: 1 }; var p = { ...o, b: 2 }; if (p.a + p.b !== 3) throw new Error('wrong');"},
        {"classes", "class A { constructor(x) { this.x = x; } get twice() { return 2 * this.x; } }\n"
                    "class B extends A { static make() { return new B(2); } } if (B.make().twice !== 4) throw new Error('wrong');"},
        {"shorthand properties and methods", "var x = 1; var o = { x, f() { return this.x; } }; if (o.f() !== 1) throw new Error('wrong');"},
        {"computed property names", "var k = 'a'; var o = { [k + 'b']: 1 }; if (o.ab !== 1) throw new Error('wrong');"},
        {"for...of", "var n = 0; for (var v of [1, 2, 3]) n += v; if (n !== 6) throw new Error('wrong');"},
        {"Map and Set", "var m = new Map([[1, 'a']]); var s = new Set([1, 1, 2]); if (m.get(1) !== 'a' || s.size !== 2) throw new Error('wrong');"},
        {"Symbol", "var s = Symbol('x'); var o = {}; o[s] = 1; if (o[s] !== 1) throw new Error('wrong');"},
        {"generators", "function* g() { yield 1; yield 2; } var n = 0; for (var v of g()) n += v; if (n !== 3) throw new Error('wrong');"},
        {"Promise", "if (typeof Promise !== 'function') throw new Error('no Promise');"},
        {"Object.assign", "var o = Object.assign({}, { a: 1 }); if (o.a !== 1) throw new Error('wrong');"},
        {"Array.prototype.find, Array.from", "if ([1, 2].find(function (x) { return x > 1; }) !== 2 || Array.from('ab').length !== 2) throw new Error('wrong');"},
        {"** (ES2016)", "if (2 ** 3 !== 8) throw new Error('wrong');"},
        {"Array.prototype.includes (ES2016)", "if (![1, 2].includes(2)) throw new Error('wrong');"},
        {"Object.entries, Object.values (ES2017)", "if (Object.entries({ a: 1 })[0][1] !== 1 || Object.values({ a: 2 })[0] !== 2) throw new Error('wrong');"},
        {"optional chaining, ?? (ES2020)", "var o = null; if ((o?.a ?? 5) !== 5) throw new Error('wrong');"},
        {"W10 as KurrentDB users write it", NULL},
    };
    printf("\n### %s: ES2015+ features\n\n| feature | result |\n|---|---|\n", js_engine_name());
    int ok = 0, total = 0;
    for (size_t i = 0; i < sizeof feats / sizeof *feats; i++) {
        js_engine *e = NULL;
        js_limits lim = default_limits();
        int rc = js_engine_new(&lim, &e);
        if (feats[i].src) {
            if (rc == JS_OK) rc = js_eval(e, feats[i].src, strlen(feats[i].src), "feature.js");
        } else {
            if (rc == JS_OK) rc = js_eval(e, W10_ES2015, strlen(W10_ES2015), "projection.js");
            if (rc == JS_OK) rc = js_init_state(e);
            if (rc == JS_OK) rc = js_call_batch(e, events, 100, NULL);
        }
        total++;
        ok += rc == JS_OK;
        char first[160];
        snprintf(first, sizeof first, "%s", js_fault(e));
        first[strcspn(first, "\n")] = 0; /* the message, not its stack */
        printf("| %s | %s |\n", feats[i].name, rc == JS_OK ? "yes" : cell(first));
        js_engine_free(e);
    }
    printf("\n%d of %d run.\n", ok, total);
    result("es2015", "features_ok", ok);
}

/* ---- footprint -------------------------------------------------------- */

static void bench_footprint(void)
{
    enum { N = 50 };
    js_engine *es[N];
    js_limits lim = default_limits();
    long before = status_kib("VmRSS:");
    uint64_t t0 = now_ns();
    int made = 0;
    for (int i = 0; i < N; i++) {
        if (js_engine_new(&lim, &es[i]) != JS_OK) break;
        js_eval(es[i], W10_ES5, strlen(W10_ES5), "projection.js");
        js_init_state(es[i]);
        js_call_batch(es[i], events, BATCH, NULL);
        made++;
    }
    double ms = (double)(now_ns() - t0) / 1e6 / (made ? made : 1);
    long after = status_kib("VmRSS:");
    for (int i = 0; i < made; i++) js_engine_free(es[i]);
    printf("\n### %s: footprint\n\n%d projections (W10 loaded, 1,000 events handled each): %.2f ms to start one, "
           "%.0f KiB of resident memory each\n",
           js_engine_name(), made, ms, (double)(after - before) / (made ? made : 1));
    result("footprint", "start_ms", ms);
    result("footprint", "rss_kib", (double)(after - before) / (made ? made : 1));

    /* One worker process with one projection: spawn to loaded, and its memory. */
    worker wk = {0};
    t0 = now_ns();
    if (worker_start(&wk)) return;
    size_t slen = strlen(W10_ES5);
    char *buf = malloc(BATCH * 512);
    load_msg lm = {.heap_max = lim.heap_max_bytes, .state_max = lim.state_max_bytes};
    memcpy(buf, &lm, sizeof lm);
    memcpy(buf + sizeof lm, W10_ES5, slen);
    msg_hdr h = {.kind = W_LOAD, .len = sizeof lm + slen};
    char why[256];
    int rc = write_all(wk.fd, &h, sizeof h) || write_all(wk.fd, buf, h.len) ? JS_ERR_SCRIPT
             : worker_reply(&wk, NULL, NULL, why, sizeof why, 10000);
    double start_ms = (double)(now_ns() - t0) / 1e6;
    if (rc == JS_OK) {
        h = (msg_hdr){.kind = W_BATCH, .n = BATCH};
        h.len = encode_batch(buf, events, BATCH);
        if (write_all(wk.fd, &h, sizeof h) == 0 && write_all(wk.fd, buf, h.len) == 0)
            rc = worker_reply(&wk, NULL, NULL, why, sizeof why, 10000);
    }
    uint64_t mem[2] = {0};
    if (rc == JS_OK) worker_cpu(&wk, mem);
    printf("one worker process with that projection: %.1f ms from spawn to loaded, RssAnon %" PRIu64
           " KiB (its own), RssFile %" PRIu64 " KiB (mostly the engine's library, shared between workers)\n",
           start_ms, mem[0], mem[1]);
    result("footprint", "worker_start_ms", start_ms);
    result("footprint", "worker_rss_anon_kib", (double)mem[0]);
    free(buf);
    worker_stop(&wk);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--child")) return child_main(atoi(argv[2]));
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc) n_events = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quick")) n_events = 100000;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--events N] [--quick] [--only throughput,checkpoint,worker,isolation,es2015,footprint]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n_events < BATCH) n_events = BATCH;
    sys = strstr(argv[0], "duk-src") ? "js-duk-src" : strstr(argv[0], "duk") ? "js-duk" : "js-v8";
    bench_system = sys;
    make_events(n_events);
    printf("## %s, %zu events\n", js_engine_name(), n_events);
    if (wanted("throughput")) bench_throughput(0, 0);
    if (wanted("checkpoint")) bench_throughput(1, 0);
    if (wanted("worker")) {
        bench_throughput(0, 1);
        bench_throughput(1, 1);
    }
    if (wanted("es2015")) bench_es2015();
    if (wanted("footprint")) bench_footprint();
    if (wanted("isolation")) bench_isolation();
    wd_stop();
    free(events);
    free(event_bytes);
    return 0;
}
