/*
 * jsproc.c - the host side of a JavaScript projection's engine (jsproc.h):
 * it starts factum-js (src/js) with posix_spawn, speaks the worker
 * protocol of jsproto.h over a socketpair, and turns whatever happens to
 * the worker - an ERROR frame, silence past the deadline, death by a
 * signal - into a latched error with a reason.
 *
 * Design note (invariants; tests/unit/jsproc.c cites them as JSP-n):
 *  JSP-1  Never hang: every wait on the worker has a deadline (the open:
 *         a grace period + twice ms_per_event; a batch: ms_per_event per
 *         event left and four more (the end of the batch: the worker gives
 *         it 1 s + 4 ms_per_event), plus the grace period, which is at
 *         least 10 s unless a test shortens it). The worker's own watchdog
 *         stops a handler after ms_per_event; past the host's deadline the
 *         worker is killed (SIGKILL) and the engine faults.
 *  JSP-2  Never trust the bytes: a frame longer than this engine's largest
 *         possible frame, of a type out of place, or whose payload does not
 *         decode exactly faults the engine ("protocol error").
 *  JSP-3  Errors latch: after any failure (a call out of order included)
 *         the worker is killed and every later call returns
 *         FACTUM_EFAULTED; prj_js_error() keeps the first reason.
 *  JSP-4  The worker inherits nothing but its socket (fd 3), stdin from
 *         /dev/null and stdout/stderr: every other descriptor is closed in
 *         the child, signals are unblocked and at their defaults there.
 *         Writes never raise SIGPIPE (MSG_NOSIGNAL).
 *  JSP-5  A batch is written whole before anything is read: the worker
 *         reads every EVENT frame of a batch before it runs a handler, so
 *         the two never wait on each other's full socket buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "factum.h"
#include "jshost/jsproc.h"
#include "jshost/jsproto.h"

extern char **environ;

/* Beyond the handlers' own time: spawning, V8's start, a loaded machine.
 * $FACTUM_JS_GRACE_MS overrides it (tests of the host's deadline). */
#define JSP_GRACE_MS_DEFAULT 10000
#ifndef FACTUM_LIBEXECDIR
#define FACTUM_LIBEXECDIR "/usr/local/libexec/factum"
#endif

struct prj_js {
    prj_js_limits lim;
    uint32_t partitions; /* the partition states the worker keeps (its last DONE) */
    pid_t pid; /* 0: reaped (or never started) */
    int fd;
    int faulted; /* the latched error (JSP-3), 0 if none */
    char err[1024];
    prj_js_def def;
    size_t frame_max; /* the largest frame this engine's worker can send (JSP-2) */
    pjp_buf wbuf;
    uint8_t *rb; /* read ahead from the worker */
    size_t rb_cap, rb_start, rb_end;

    /* the batch in progress */
    size_t batch_n;
    int waiting;      /* stopped at a NEED */
    uint8_t **frames; /* payloads the result points into, freed at the next call */
    size_t n_frames, cap_frames;
    prj_js_out *out;
    size_t n_out, cap_out, out_bytes;
    prj_js_part *parts;
    size_t n_parts, cap_parts;
    const char *shared;
    size_t shared_len;
    const char *need;
    size_t need_len;
    int need_shared;
    size_t need_at;
    int rm;      /* a read model's handlers (OPEN_RM) */
    int rm_sent; /* a batch is out: prj_js_rm_receive next */
    prj_js_sql *sql;
    size_t n_sql, cap_sql;
    prj_js_fail *fails;
    size_t n_fails, cap_fails;
    size_t rm_done;
    int up;           /* the store's upcasters (OPEN_UP) */
    size_t up_n;      /* scripts */
    char **up_errs;   /* why script i did not compile, or NULL */
    prj_js_up_out *upo;
    size_t n_upo, cap_upo;
    char *state; /* prj_js_get_state's answer, until handed over */
    size_t state_len;
    int have_state;
};

static void *re(void *p, size_t n)
{
    return realloc(p, n);
}

/* Read at each wait, so that a test can shorten it for one call. */
static uint64_t grace_ms(void)
{
    const char *g = getenv("FACTUM_JS_GRACE_MS");
    return g && *g ? strtoull(g, NULL, 10) : JSP_GRACE_MS_DEFAULT;
}

static uint64_t deadline_after(uint64_t ms)
{
    return base_mono_ns() + ms * 1000000u;
}

static int ms_left(uint64_t deadline)
{
    uint64_t now = base_mono_ns();
    if (now >= deadline) return 0;
    uint64_t ms = (deadline - now + 999999u) / 1000000u;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Reap the worker (it has exited or been killed); describe how it ended. */
static void reap(prj_js *j, char *why, size_t why_len)
{
    if (!j->pid) {
        if (why) snprintf(why, why_len, "the JavaScript engine is not running");
        return;
    }
    int st = 0;
    pid_t r;
    /* It closed its socket: it is exiting. Should it not, within a second, it is killed. */
    for (int i = 0; i < 100 && (r = waitpid(j->pid, &st, WNOHANG)) == 0; i++)
        usleep(10000);
    if (r == 0) {
        kill(j->pid, SIGKILL);
        while ((r = waitpid(j->pid, &st, 0)) < 0 && errno == EINTR) {
        }
    }
    j->pid = 0;
    if (!why) return;
    if (r < 0)
        snprintf(why, why_len, "the JavaScript engine is gone (waitpid: %s)", strerror(errno));
    else if (WIFSIGNALED(st))
        snprintf(why, why_len, "the JavaScript engine crashed (signal %d, %s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st))
        snprintf(why, why_len, "the JavaScript engine exited with status %d", WEXITSTATUS(st));
    else
        snprintf(why, why_len, "the JavaScript engine exited");
}

static void kill_worker(prj_js *j)
{
    if (j->fd >= 0) close(j->fd);
    j->fd = -1;
    if (j->pid) {
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        j->pid = 0;
    }
}

/* Latch an error (JSP-3): rc, and the reason. The worker is killed. */
static int fault(prj_js *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fault(prj_js *j, int rc, const char *fmt, ...)
{
    if (!j->faulted) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
        j->faulted = rc;
    }
    kill_worker(j);
    return rc;
}

/* The worker went away (end of stream, a reset): how it ended. */
static int worker_died(prj_js *j)
{
    char why[256];
    if (j->fd >= 0) close(j->fd);
    j->fd = -1;
    reap(j, why, sizeof why);
    return fault(j, FACTUM_EFAULTED, "%s", why);
}

static int timed_out(prj_js *j, uint64_t waited_ms)
{
    return fault(j, FACTUM_EFAULTED, "the JavaScript engine did not answer within %llu ms and was killed",
                 (unsigned long long)waited_ms);
}

/* Write wbuf whole by the deadline. */
static int send_buf(prj_js *j, uint64_t deadline, uint64_t budget_ms)
{
    if (j->wbuf.failed) {
        j->wbuf.failed = 0;
        j->wbuf.len = 0;
        return fault(j, -ENOMEM, "out of memory encoding a message to the JavaScript engine");
    }
    size_t off = 0;
    while (off < j->wbuf.len) {
        ssize_t w = send(j->fd, j->wbuf.p + off, j->wbuf.len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = j->fd, .events = POLLOUT};
            int left = ms_left(deadline);
            if (!left) return timed_out(j, budget_ms);
            if (poll(&p, 1, left) < 0 && errno != EINTR) return fault(j, -errno, "poll: %s", strerror(errno));
            continue;
        }
        return worker_died(j);
    }
    j->wbuf.len = 0;
    return 0;
}

/* At least n bytes read ahead (in rb, from rb_start) by the deadline: 0,
 * or the latched error. The worker's frames are read in large pieces: a
 * system call per frame would cost more than a small event's handler. */
static int rb_need(prj_js *j, size_t n, uint64_t deadline, uint64_t budget_ms)
{
    if (j->rb_end - j->rb_start >= n) return 0;
    if (j->rb_start) {
        memmove(j->rb, j->rb + j->rb_start, j->rb_end - j->rb_start);
        j->rb_end -= j->rb_start;
        j->rb_start = 0;
    }
    if (n > j->rb_cap) {
        size_t cap = j->rb_cap ? j->rb_cap : 256u << 10;
        while (cap < n)
            cap *= 2;
        uint8_t *p = realloc(j->rb, cap);
        if (!p)
            return fault(j, -ENOMEM, "out of memory for a frame of %zu bytes from the JavaScript engine", n);
        j->rb = p;
        j->rb_cap = cap;
    }
    while (j->rb_end < n) {
        ssize_t r = recv(j->fd, j->rb + j->rb_end, j->rb_cap - j->rb_end, 0);
        if (r > 0) {
            j->rb_end += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = j->fd, .events = POLLIN};
            int left = ms_left(deadline);
            if (!left) return timed_out(j, budget_ms);
            if (poll(&p, 1, left) < 0 && errno != EINTR) return fault(j, -errno, "poll: %s", strerror(errno));
            continue;
        }
        return worker_died(j);
    }
    return 0;
}

static int keep_frame(prj_js *j, uint8_t *p)
{
    if (j->n_frames == j->cap_frames) {
        size_t cap = j->cap_frames ? 2 * j->cap_frames : 16;
        uint8_t **f = realloc(j->frames, cap * sizeof *f);
        if (!f) return -ENOMEM;
        j->frames = f;
        j->cap_frames = cap;
    }
    j->frames[j->n_frames++] = p;
    return 0;
}

static void drop_frames(prj_js *j)
{
    for (size_t i = 0; i < j->n_frames; i++)
        free(j->frames[i]);
    j->n_frames = 0;
    j->n_out = j->n_parts = j->out_bytes = 0;
    j->n_sql = j->n_fails = j->rm_done = j->n_upo = 0;
    j->shared = j->need = NULL;
    j->shared_len = j->need_len = 0;
}

static int protocol(prj_js *j, const char *what, uint32_t type)
{
    return fault(j, FACTUM_EFAULTED, "protocol error from the JavaScript engine: %s (frame type %u)", what,
                 type);
}

/* An ERROR frame: the worker's reason, latched; the worker is reaped. */
static int worker_error(prj_js *j, const uint8_t *p, uint32_t len, int rc)
{
    pjp_rd r = {p, len, 0};
    uint32_t kind = pjp_get_u32(&r);
    size_t n;
    const char *msg = pjp_get_str(&r, &n, len);
    if (pjp_done(&r)) return protocol(j, "an ERROR frame that does not decode", PJP_ERROR);
    if (kind == PJP_ERR_NOMEM) rc = -ENOMEM;
    if (kind == PJP_ERR_PROTOCOL) rc = FACTUM_EFAULTED; /* ours, not the script's */
    if (!j->faulted) {
        snprintf(j->err, sizeof j->err, "%.*s", (int)n, msg);
        j->faulted = rc;
    }
    if (j->fd >= 0) close(j->fd);
    j->fd = -1;
    reap(j, NULL, 0);
    return rc;
}

enum { WANT_DEF = 1, WANT_BATCH = 2, WANT_STATE = 4, WANT_RM = 8, WANT_UPDEF = 16 };

/* Room for one more element of a growing array. */
static int grow(void **a, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return 0;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(*a, c * size);
    if (!p) return -1;
    *a = p;
    *cap = c;
    return 0;
}

static int decode_def(prj_js *j, const uint8_t *p, uint32_t len);
static int decode_updef(prj_js *j, const uint8_t *p, uint32_t len);

/* Read frames until the one the call waits for (DEF; DONE or NEED; STATE)
 * or an ERROR. rc_error is what an ERROR frame returns. */
static int receive(prj_js *j, int want, uint64_t deadline, uint64_t budget_ms, int rc_error)
{
    for (;;) {
        uint32_t h[2];
        int rc = rb_need(j, PJP_HDR_LEN, deadline, budget_ms);
        if (rc) return rc;
        memcpy(h, j->rb + j->rb_start, sizeof h);
        uint32_t type = h[0], len = h[1];
        if (len > j->frame_max) return protocol(j, "a frame longer than any the engine may send", type);
        rc = rb_need(j, PJP_HDR_LEN + (size_t)len, deadline, budget_ms);
        if (rc) return rc;
        const uint8_t *in = j->rb + j->rb_start + PJP_HDR_LEN;
        j->rb_start += PJP_HDR_LEN + (size_t)len;
        /* Frames the result points into are copied out of the read-ahead. */
        int kept = type == PJP_OUT || type == PJP_PART || type == PJP_SHARED || type == PJP_NEED ||
                   type == PJP_SQL || type == PJP_FAIL || type == PJP_UPOUT;
        uint8_t *p = kept ? malloc(len ? len : 1) : (uint8_t *)in;
        if (!p)
            return fault(j, -ENOMEM, "out of memory for a frame of %u bytes from the JavaScript engine", len);
        if (kept) memcpy(p, in, len);
        pjp_rd r = {p, len, 0};
        int keep = 0, last = 0;
        switch (type) {
        case PJP_LOG: {
            size_t n;
            const char *msg = pjp_get_str(&r, &n, PJP_LOG_MAX);
            if (pjp_done(&r)) goto bad;
            if (j->lim.log_fn) j->lim.log_fn(j->lim.log_ctx, msg, n);
            break;
        }
        case PJP_ERROR:
            rc = worker_error(j, p, len, rc_error);
            if (kept) free(p);
            return rc;
        case PJP_DEF:
            if (!(want & WANT_DEF) || j->up) goto bad;
            rc = decode_def(j, p, len);
            if (kept) free(p);
            return rc;
        case PJP_UPDEF:
            if (!(want & WANT_DEF) || !j->up) goto bad;
            return decode_updef(j, p, len);
        case PJP_UPOUT: {
            /* In order: one answer (UPOUT or FAIL) per event. */
            if (!(want & WANT_RM) || !j->up) goto bad;
            if (grow((void **)&j->upo, j->n_upo, &j->cap_upo, sizeof *j->upo)) {
                free(p);
                return fault(j, -ENOMEM, "out of memory for a batch's upcast events");
            }
            prj_js_up_out *q = &j->upo[j->n_upo];
            q->source = pjp_get_u32(&r);
            q->type = pjp_get_str(&r, &q->type_len, PJP_NAME_MAX);
            q->data = pjp_get_str(&r, &q->data_len, PJP_EVENT_MAX);
            q->meta = pjp_get_opt(&r, &q->meta_len, PJP_EVENT_MAX);
            if (pjp_done(&r) || q->source != j->n_upo + j->n_fails || !q->type_len) goto bad;
            j->out_bytes += len;
            if (j->out_bytes > PJP_OUT_BYTES) {
                free(p);
                return fault(j, FACTUM_EFAULTED, "the upcast events of one batch exceed %u bytes", PJP_OUT_BYTES);
            }
            j->n_upo++;
            keep = 1;
            break;
        }
        case PJP_OUT: {
            if (!(want & WANT_BATCH)) goto bad;
            if (j->n_out == j->cap_out) {
                size_t cap = j->cap_out ? 2 * j->cap_out : 64;
                prj_js_out *o = realloc(j->out, cap * sizeof *o);
                if (!o) {
                    if (kept) free(p);
                    return fault(j, -ENOMEM, "out of memory for a batch's output");
                }
                j->out = o;
                j->cap_out = cap;
            }
            prj_js_out *o = &j->out[j->n_out];
            o->source = pjp_get_u32(&r);
            o->kind = pjp_get_u8(&r);
            o->is_json = pjp_get_u8(&r);
            o->stream = pjp_get_str(&r, &o->stream_len, PJP_NAME_MAX);
            o->type = pjp_get_str(&r, &o->type_len, PJP_NAME_MAX);
            o->data = pjp_get_str(&r, &o->data_len, PJP_EVENT_MAX);
            o->meta = pjp_get_opt(&r, &o->meta_len, PJP_EVENT_MAX);
            if (pjp_done(&r) || o->source >= j->batch_n || o->kind > PRJ_JS_OUT_LINK_STREAM ||
                o->is_json > 1 || !o->stream_len || !o->type_len)
                goto bad;
            j->out_bytes += len;
            if (j->out_bytes > PJP_OUT_BYTES) {
                if (kept) free(p);
                return fault(j, FACTUM_EFAULTED, "the events one batch writes exceed %u bytes",
                             PJP_OUT_BYTES);
            }
            j->n_out++;
            keep = 1;
            break;
        }
        case PJP_PART: {
            if (!(want & WANT_BATCH)) goto bad;
            if (j->n_parts == j->cap_parts) {
                size_t cap = j->cap_parts ? 2 * j->cap_parts : 16;
                prj_js_part *q = realloc(j->parts, cap * sizeof *q);
                if (!q) {
                    if (kept) free(p);
                    return fault(j, -ENOMEM, "out of memory for a batch's states");
                }
                j->parts = q;
                j->cap_parts = cap;
            }
            prj_js_part *q = &j->parts[j->n_parts];
            q->partition = pjp_get_str(&r, &q->partition_len, PJP_NAME_MAX);
            q->state = pjp_get_opt(&r, &q->state_len, j->lim.state_bytes);
            q->result = pjp_get_opt(&r, &q->result_len, j->lim.state_bytes);
            if (pjp_done(&r)) goto bad;
            if (!q->state) q->state = "";
            j->n_parts++;
            keep = 1;
            break;
        }
        case PJP_SHARED:
            if (!(want & WANT_BATCH) || !j->def.bi_state) goto bad;
            j->shared = pjp_get_str(&r, &j->shared_len, j->lim.state_bytes);
            if (pjp_done(&r)) goto bad;
            keep = 1;
            break;
        case PJP_NEED: {
            if (!(want & WANT_BATCH)) goto bad;
            uint32_t at = pjp_get_u32(&r);
            uint8_t shared = pjp_get_u8(&r);
            j->need = pjp_get_str(&r, &j->need_len, PJP_NAME_MAX);
            if (pjp_done(&r) || at >= j->batch_n || shared > 1 || (shared && !j->def.bi_state)) goto bad;
            j->need_at = at;
            j->need_shared = shared;
            keep = last = 1;
            rc = PRJ_JS_NEED;
            break;
        }
        case PJP_SQL: {
            if (!(want & WANT_RM) || j->up) goto bad;
            if (grow((void **)&j->sql, j->n_sql, &j->cap_sql, sizeof *j->sql)) {
                free(p);
                return fault(j, -ENOMEM, "out of memory for a batch's statements");
            }
            prj_js_sql *q = &j->sql[j->n_sql];
            q->source = pjp_get_u32(&r);
            q->sql = pjp_get_str(&r, &q->sql_len, PJP_SQL_MAX);
            q->params = pjp_get_str(&r, &q->params_len, PJP_EVENT_MAX);
            if (pjp_done(&r) || q->source >= j->batch_n || !q->sql_len || !q->params_len ||
                (j->n_sql && q->source < j->sql[j->n_sql - 1].source))
                goto bad;
            j->out_bytes += len;
            if (j->out_bytes > PJP_OUT_BYTES) {
                free(p);
                return fault(j, FACTUM_EFAULTED, "the statements of one batch exceed %u bytes", PJP_OUT_BYTES);
            }
            j->n_sql++;
            keep = 1;
            break;
        }
        case PJP_FAIL: {
            if (!(want & WANT_RM)) goto bad;
            if (grow((void **)&j->fails, j->n_fails, &j->cap_fails, sizeof *j->fails)) {
                free(p);
                return fault(j, -ENOMEM, "out of memory for a batch's failures");
            }
            prj_js_fail *q = &j->fails[j->n_fails];
            q->source = pjp_get_u32(&r);
            q->kind = (int)pjp_get_u32(&r);
            q->message = pjp_get_str(&r, &q->message_len, PJP_FAIL_MAX);
            if (pjp_done(&r) || q->source >= j->batch_n ||
                (q->kind != PJP_ERR_SCRIPT && q->kind != PJP_ERR_TIMEOUT && q->kind != PJP_ERR_HEAP) ||
                (j->up && q->source != j->n_upo + j->n_fails))
                goto bad;
            j->n_fails++;
            keep = 1;
            break;
        }
        case PJP_DONE: {
            if (want & WANT_RM) {
                uint32_t n = pjp_get_u32(&r);
                uint32_t zero = pjp_get_u32(&r);
                if (pjp_done(&r) || n > j->batch_n || zero || (n < j->batch_n && (!j->n_fails ||
                    j->fails[j->n_fails - 1].source != n - 1 || j->fails[j->n_fails - 1].kind != PJP_ERR_HEAP)) ||
                    (j->up && j->n_upo + j->n_fails != n))
                    goto bad;
                j->rm_done = n;
                last = 1;
                rc = 0;
                break;
            }
            if (!(want & WANT_BATCH)) goto bad;
            uint32_t n = pjp_get_u32(&r);
            uint32_t n_kept = pjp_get_u32(&r);
            if (pjp_done(&r) || n != j->batch_n) goto bad;
            j->partitions = n_kept;
            last = 1;
            rc = 0;
            break;
        }
        case PJP_STATE: {
            if (!(want & WANT_STATE)) goto bad;
            size_t n;
            const char *s = pjp_get_opt(&r, &n, j->lim.state_bytes);
            if (pjp_done(&r)) goto bad;
            free(j->state);
            j->state = NULL;
            j->have_state = s != NULL;
            if (s) {
                j->state = malloc(n + 1);
                if (!j->state) {
                    if (kept) free(p);
                    return fault(j, -ENOMEM, "out of memory for a state of %zu bytes", n);
                }
                memcpy(j->state, s, n);
                j->state[n] = 0;
                j->state_len = n;
            }
            if (kept) free(p);
            return 0;
        }
        default:
            goto bad;
        }
        if (keep && keep_frame(j, p)) {
            free(p);
            return fault(j, -ENOMEM, "out of memory for a batch's output");
        }
        if (last) return rc;
        continue;
    bad:
        if (kept) free(p);
        return protocol(j, "a frame that does not decode or is out of place", type);
    }
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

static void free_def(prj_js_def *d)
{
    free_list(d->streams, d->n_streams);
    free_list(d->categories, d->n_categories);
    free_list(d->events, d->n_events);
    free(d->result_stream);
    free(d->partition_result_stream);
    memset(d, 0, sizeof *d);
}

static char *dup_n(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

static int decode_list(pjp_rd *r, char ***out, size_t *n_out)
{
    uint32_t n = pjp_get_u32(r);
    *out = NULL;
    *n_out = 0;
    if (r->bad || n > r->left / 4) return r->bad = 1, -1;
    if (!n) return 0;
    char **l = calloc(n, sizeof *l);
    if (!l) return -ENOMEM;
    *out = l;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *s = pjp_get_str(r, &len, PJP_NAME_MAX);
        if (!s) return -1;
        if (!(l[i] = dup_n(s, len))) return -ENOMEM;
        *n_out = i + 1;
    }
    return 0;
}

/* UPDEF: for each script, absent or why it did not compile. */
static int decode_updef(prj_js *j, const uint8_t *p, uint32_t len)
{
    pjp_rd r = {p, len, 0};
    uint32_t n = pjp_get_u32(&r);
    if (r.bad || n != j->up_n) return protocol(j, "an UPDEF frame for another number of scripts", PJP_UPDEF);
    j->up_errs = calloc(n ? n : 1, sizeof *j->up_errs);
    if (!j->up_errs) return fault(j, -ENOMEM, "out of memory for the scripts' errors");
    for (uint32_t i = 0; i < n; i++) {
        size_t l;
        const char *why = pjp_get_opt(&r, &l, PJP_FAIL_MAX);
        if (r.bad) break;
        if (why && !(j->up_errs[i] = strndup(why, l))) return fault(j, -ENOMEM, "out of memory");
        if (why && !l && !(j->up_errs[i] = strdup("the script does not compile")))
            return fault(j, -ENOMEM, "out of memory");
    }
    if (pjp_done(&r)) return protocol(j, "an UPDEF frame that does not decode", PJP_UPDEF);
    return 0;
}

static int decode_def(prj_js *j, const uint8_t *p, uint32_t len)
{
    prj_js_def *d = &j->def;
    pjp_rd r = {p, len, 0};
    uint32_t f = pjp_get_u32(&r);
    d->processing_lag = (int)pjp_get_u32(&r);
    size_t rs_len, prs_len;
    const char *rs = pjp_get_opt(&r, &rs_len, PJP_NAME_MAX);
    const char *prs = pjp_get_opt(&r, &prs_len, PJP_NAME_MAX);
    int rc = 0;
    if (rs && !(d->result_stream = dup_n(rs, rs_len))) rc = -ENOMEM;
    if (prs && !(d->partition_result_stream = dup_n(prs, prs_len))) rc = -ENOMEM;
    if (!rc) rc = decode_list(&r, &d->streams, &d->n_streams);
    if (!rc) rc = decode_list(&r, &d->categories, &d->n_categories);
    if (!rc) rc = decode_list(&r, &d->events, &d->n_events);
    if (rc == -ENOMEM) return fault(j, -ENOMEM, "out of memory for the projection's definition");
    if (rc || pjp_done(&r)) return protocol(j, "a DEF frame that does not decode", PJP_DEF);
    d->all_streams = !!(f & PJP_DEF_ALL_STREAMS);
    d->all_events = !!(f & PJP_DEF_ALL_EVENTS);
    d->by_streams = !!(f & PJP_DEF_BY_STREAMS);
    d->by_custom_partitions = !!(f & PJP_DEF_BY_CUSTOM);
    d->defines_fold = !!(f & PJP_DEF_DEFINES_FOLD);
    d->handles_deleted = !!(f & PJP_DEF_HANDLES_DELETED);
    d->produces_results = !!(f & PJP_DEF_PRODUCES_RESULTS);
    d->include_links = !!(f & PJP_DEF_INCLUDE_LINKS);
    d->reorder_events = !!(f & PJP_DEF_REORDER_EVENTS);
    d->bi_state = !!(f & PJP_DEF_BI_STATE);
    d->defines_state_transform = !!(f & PJP_DEF_STATE_TRANSFORM);
    return 0;
}

/* ---- starting the worker ---------------------------------------------- */

static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Where the worker program is (jsproc.h says in which order it looks):
 * 0 with path filled, or -ENOENT with the places in err. */
static int find_worker(const prj_js_limits *l, char *path, size_t path_len, char *err, size_t err_len)
{
    char tried[1024] = "";
    size_t tl = 0;
#define TRIED(p)                                                                                             \
    tl += (size_t)snprintf(tried + tl, tl < sizeof tried ? sizeof tried - tl : 0, "%s%s", tl ? ", " : "", p)
    if (l->worker) {
        snprintf(path, path_len, "%s", l->worker);
        if (executable(path)) return 0;
        snprintf(err, err_len, "the JavaScript worker %s is not an executable file", l->worker);
        return -ENOENT;
    }
    const char *env = getenv("FACTUM_JS_WORKER");
    if (env && *env) {
        snprintf(path, path_len, "%s", env);
        if (executable(path)) return 0;
        snprintf(err, err_len, "the JavaScript worker %s ($FACTUM_JS_WORKER) is not an executable file", env);
        return -ENOENT;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, path_len, "%s/factum-js", self);
            if (executable(path)) return 0;
            TRIED(path);
        }
    }
    snprintf(path, path_len, "%s/factum-js", FACTUM_LIBEXECDIR);
    if (executable(path)) return 0;
    TRIED(path);
    const char *pathenv = getenv("PATH");
    for (const char *p = pathenv; p && *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len) {
            snprintf(path, path_len, "%.*s/factum-js", (int)len, p);
            if (executable(path)) return 0;
        }
        p = end ? end + 1 : p + len;
    }
    TRIED("$PATH");
#undef TRIED
    snprintf(err, err_len, "no JavaScript worker (factum-js) found: looked in %s (set FACTUM_JS_WORKER)",
             tried);
    return -ENOENT;
}

/* posix_spawn, not fork: no copy of a large server's page tables, and the
 * child runs nothing of the parent's between the two (JSP-4). */
static int spawn(prj_js *j, const char *path, char *err, size_t err_len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        snprintf(err, err_len, "socketpair: %s", strerror(errno));
        return -errno;
    }
    int sz = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (sv[1] <= 3) {
        /* dup2 onto itself would keep close-on-exec; below 3 it would be clobbered */
        int fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        if (fd < 0) {
            int e = errno;
            close(sv[0]);
            close(sv[1]);
            snprintf(err, err_len, "fcntl: %s", strerror(e));
            return -e;
        }
        close(sv[1]);
        sv[1] = fd;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int rc = posix_spawn_file_actions_init(&fa);
    if (!rc) rc = posix_spawnattr_init(&at);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 4);
#endif
    if (!rc) rc = posix_spawnattr_setsigmask(&at, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&at, &all);
    if (!rc) rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *const argv[] = {"factum-js", NULL};
    pid_t pid = 0;
    if (!rc) rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        snprintf(err, err_len, "could not start the JavaScript worker %s: %s", path, strerror(rc));
        return -rc;
    }
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    j->pid = pid;
    j->fd = sv[0];
    return 0;
}

/* ---- the calls ------------------------------------------------------- */

static int open_engine(const prj_js_limits *l, int rm, const char *name, const char *query, size_t query_len,
                       prj_js **out, char *err, size_t err_len)
{
    *out = NULL;
    if (err_len) err[0] = 0;
    prj_js_limits lim = l ? *l : (prj_js_limits){0};
    if (!lim.ms_per_event) lim.ms_per_event = 250;
    if (!lim.heap_mib) lim.heap_mib = 256;
    if (!lim.state_bytes) lim.state_bytes = 16u << 20;
    size_t name_len = name ? strlen(name) : 0;
    if (!query || query_len > PJP_QUERY_MAX || name_len > PJP_NAME_MAX || lim.state_bytes > PJP_STATE_MAX ||
        lim.heap_mib < 4 || lim.heap_mib > 65536 || lim.ms_per_event > 3600000) {
        snprintf(err, err_len, "invalid limits, name or query (a query of at most %u bytes)", PJP_QUERY_MAX);
        return FACTUM_EINVAL;
    }
    char path[PATH_MAX + 64]; /* a directory of PATH_MAX, then /factum-js */
    int rc = find_worker(&lim, path, sizeof path, err, err_len);
    if (rc) return rc;
    prj_js *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->fd = -1;
    lim.worker = NULL;
    j->lim = lim;
    j->rm = rm;
    size_t big = 2 * (size_t)(lim.state_bytes > PJP_EVENT_MAX ? lim.state_bytes : PJP_EVENT_MAX);
    j->frame_max = big + 4 * PJP_NAME_MAX + 64;
    rc = spawn(j, path, err, err_len);
    if (rc) {
        free(j);
        return rc;
    }

    size_t at = pjp_begin(&j->wbuf, rm ? PJP_OPEN_RM : PJP_OPEN, re);
    pjp_u32(&j->wbuf, lim.ms_per_event, re);
    pjp_u32(&j->wbuf, lim.heap_mib, re);
    if (!rm) pjp_u32(&j->wbuf, lim.state_bytes, re);
    pjp_str(&j->wbuf, name, name_len, re);
    pjp_str(&j->wbuf, query, query_len, re);
    pjp_end(&j->wbuf, at);
    uint64_t budget = grace_ms() + 2 * (uint64_t)lim.ms_per_event;
    uint64_t deadline = deadline_after(budget);
    rc = send_buf(j, deadline, budget);
    if (!rc) rc = receive(j, WANT_DEF, deadline, budget, FACTUM_EINVAL);
    if (rc) {
        /* The script's own failures are FACTUM_EINVAL (from its ERROR);
         * the worker's (a crash, a timeout of the host's) say so. */
        if (rc == FACTUM_EFAULTED) rc = -EIO;
        snprintf(err, err_len, "%s", j->err);
        prj_js_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

int prj_js_open(const prj_js_limits *l, const char *name, const char *query, size_t query_len, prj_js **out,
                char *err, size_t err_len)
{
    return open_engine(l, 0, name, query, query_len, out, err, err_len);
}

int prj_js_open_rm(const prj_js_limits *l, const char *name, const char *script, size_t script_len, prj_js **out,
                   char *err, size_t err_len)
{
    return open_engine(l, 1, name, script, script_len, out, err, err_len);
}

const prj_js_def *prj_js_definition(const prj_js *j)
{
    return &j->def;
}

static int check_usable(prj_js *j)
{
    if (j->faulted) return FACTUM_EFAULTED;
    if (j->fd < 0) return fault(j, FACTUM_EFAULTED, "the JavaScript engine is not running");
    return 0;
}

int prj_js_load(prj_js *j, const char *partition, size_t partition_len, int shared, const char *state,
                size_t state_len)
{
    int rc = check_usable(j);
    if (rc) return rc;
    if (partition_len > PJP_NAME_MAX || (state && state_len > j->lim.state_bytes) ||
        (shared && !j->def.bi_state))
        return fault(j, FACTUM_EINVAL,
                     "a state to load that is too large, or a shared state without biState");
    size_t at = pjp_begin(&j->wbuf, PJP_LOAD, re);
    pjp_u8(&j->wbuf, shared ? 1 : 0, re);
    pjp_str(&j->wbuf, partition, partition_len, re);
    pjp_opt(&j->wbuf, state, state_len, re);
    pjp_end(&j->wbuf, at);
    uint64_t budget = grace_ms();
    return send_buf(j, deadline_after(budget), budget);
}

static void fill_result(prj_js *j, prj_js_result *res)
{
    memset(res, 0, sizeof *res);
    res->out = j->out;
    res->n_out = j->n_out;
    res->parts = j->parts;
    res->n_parts = j->n_parts;
    res->shared = j->shared;
    res->shared_len = j->shared_len;
    res->partitions = j->partitions;
    if (j->waiting) {
        res->need_partition = j->need;
        res->need_partition_len = j->need_len;
        res->need_shared = j->need_shared;
        res->need_at = j->need_at;
    }
}

/* Wait for the end of the batch (or a NEED) from event `from` on. */
static int run(prj_js *j, size_t from, prj_js_result *res)
{
    uint64_t budget = grace_ms() + (uint64_t)(j->batch_n - from + 4) * j->lim.ms_per_event;
    int rc = receive(j, WANT_BATCH, deadline_after(budget), budget, FACTUM_EFAULTED);
    j->waiting = rc == PRJ_JS_NEED;
    if (rc == 0 || rc == PRJ_JS_NEED) fill_result(j, res);
    return rc;
}

/* Send a batch of events (JSP-5: all of it before anything is read). */
static int send_batch(prj_js *j, const prj_js_event *ev, const uint32_t *script, size_t n)
{
    if (n > PJP_BATCH_MAX)
        return fault(j, FACTUM_EINVAL, "a batch of %zu events (at most %u)", n, PJP_BATCH_MAX);
    drop_frames(j);
    size_t at = pjp_begin(&j->wbuf, PJP_BATCH, re);
    pjp_u32(&j->wbuf, (uint32_t)n, re);
    pjp_end(&j->wbuf, at);
    static const uint8_t zero_id[16];
    for (size_t i = 0; i < n; i++) {
        const prj_js_event *e = &ev[i];
        if (e->stream_len > PJP_NAME_MAX || e->type_len > PJP_NAME_MAX || e->data_len > PJP_EVENT_MAX ||
            e->meta_len > PJP_EVENT_MAX || e->link_meta_len > PJP_EVENT_MAX)
            return fault(j, FACTUM_ETOOBIG, "event %llu@%.*s is too large for the JavaScript engine",
                         (unsigned long long)e->seq, (int)(e->stream_len > 200 ? 200 : e->stream_len),
                         e->stream);
        at = pjp_begin(&j->wbuf, script ? PJP_UPCAST : PJP_EVENT, re);
        if (script) pjp_u32(&j->wbuf, script[i], re);
        pjp_u64(&j->wbuf, e->position, re);
        pjp_u64(&j->wbuf, e->seq, re);
        pjp_u64(&j->wbuf, (uint64_t)e->timestamp_ns, re);
        pjp_u8(&j->wbuf, (uint8_t)((e->is_json ? PJP_EV_JSON : 0) | (e->deleted ? PJP_EV_DELETED : 0)), re);
        pjp_put(&j->wbuf, e->id ? e->id : zero_id, 16, re);
        pjp_str(&j->wbuf, e->stream, e->stream_len, re);
        pjp_str(&j->wbuf, e->type, e->type_len, re);
        pjp_str(&j->wbuf, e->data, e->data_len, re);
        pjp_str(&j->wbuf, e->meta, e->meta_len, re);
        pjp_opt(&j->wbuf, e->link_meta, e->link_meta_len, re);
        pjp_end(&j->wbuf, at);
        if (j->wbuf.len > PJP_BATCH_BYTES)
            return fault(j, FACTUM_ETOOBIG, "a batch of more than %u bytes for the JavaScript engine",
                         PJP_BATCH_BYTES);
    }
    j->batch_n = n;
    uint64_t budget = grace_ms() + (uint64_t)n * j->lim.ms_per_event;
    return send_buf(j, deadline_after(budget), budget);
}

int prj_js_process(prj_js *j, const prj_js_event *ev, size_t n, prj_js_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = check_usable(j);
    if (rc) return rc;
    if (j->waiting)
        return fault(j, FACTUM_EINVAL, "prj_js_process while a batch waits for a state (PRJ_JS_NEED)");
    if (j->rm) return fault(j, FACTUM_EINVAL, "prj_js_process on a read model's engine");
    if ((rc = send_batch(j, ev, NULL, n))) return rc;
    return run(j, 0, res);
}

int prj_js_rm_send(prj_js *j, const prj_js_event *ev, size_t n)
{
    int rc = check_usable(j);
    if (rc) return rc;
    if (!j->rm || j->up) return fault(j, FACTUM_EINVAL, "prj_js_rm_send on a projection's engine");
    if (j->rm_sent) return fault(j, FACTUM_EINVAL, "prj_js_rm_send while a batch is out");
    if ((rc = send_batch(j, ev, NULL, n))) return rc;
    j->rm_sent = 1;
    return 0;
}

int prj_js_rm_receive(prj_js *j, prj_js_rm_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = check_usable(j);
    if (rc) return rc;
    if (!j->rm_sent) return fault(j, FACTUM_EINVAL, "prj_js_rm_receive without a batch out");
    j->rm_sent = 0;
    size_t n = j->batch_n;
    uint64_t budget = grace_ms() + (uint64_t)(n + 4) * j->lim.ms_per_event;
    rc = receive(j, WANT_RM, deadline_after(budget), budget, FACTUM_EFAULTED);
    if (rc) return rc;
    res->sql = j->sql;
    res->n_sql = j->n_sql;
    res->fail = j->fails;
    res->n_fail = j->n_fails;
    res->done = j->rm_done;
    if (j->rm_done < n) {
        /* The worker exits after a DONE of fewer events (its heap). */
        if (j->fd >= 0) close(j->fd);
        j->fd = -1;
        reap(j, NULL, 0);
        j->faulted = FACTUM_EFAULTED;
        snprintf(j->err, sizeof j->err, "%.*s", (int)res->fail[res->n_fail - 1].message_len,
                 res->fail[res->n_fail - 1].message);
    }
    return 0;
}

int prj_js_rm_process(prj_js *j, const prj_js_event *ev, size_t n, prj_js_rm_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = prj_js_rm_send(j, ev, n);
    return rc ? rc : prj_js_rm_receive(j, res);
}

int prj_js_resume(prj_js *j, prj_js_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = check_usable(j);
    if (rc) return rc;
    if (!j->waiting) return fault(j, FACTUM_EINVAL, "prj_js_resume without a PRJ_JS_NEED");
    size_t at = pjp_begin(&j->wbuf, PJP_RESUME, re);
    pjp_end(&j->wbuf, at);
    rc = send_buf(j, deadline_after(grace_ms()), grace_ms());
    if (rc) return rc;
    return run(j, j->need_at, res);
}

int prj_js_get_state(prj_js *j, const char *partition, size_t partition_len, int shared, char **json,
                     size_t *len)
{
    *json = NULL;
    if (len) *len = 0;
    int rc = check_usable(j);
    if (rc) return rc;
    if (partition_len > PJP_NAME_MAX)
        return fault(j, FACTUM_EINVAL, "a partition key of %zu bytes", partition_len);
    size_t at = pjp_begin(&j->wbuf, PJP_GET, re);
    pjp_u8(&j->wbuf, shared ? 1 : 0, re);
    pjp_str(&j->wbuf, partition, partition_len, re);
    pjp_end(&j->wbuf, at);
    uint64_t budget = grace_ms() + 1000 + 4 * (uint64_t)j->lim.ms_per_event;
    uint64_t deadline = deadline_after(budget);
    rc = send_buf(j, deadline, budget);
    if (!rc) rc = receive(j, WANT_STATE, deadline, budget, FACTUM_EFAULTED);
    if (rc) return rc;
    if (j->have_state) {
        *json = j->state;
        if (len) *len = j->state_len;
        j->state = NULL;
    }
    return 0;
}

const char *prj_js_error(const prj_js *j)
{
    return j && j->faulted ? j->err : "";
}

int prj_js_pid(const prj_js *j)
{
    return j ? (int)j->pid : 0;
}

void prj_js_close(prj_js *j)
{
    if (!j) return;
    kill_worker(j);
    drop_frames(j);
    free(j->frames);
    free(j->out);
    free(j->parts);
    free(j->sql);
    free(j->fails);
    free(j->state);
    for (size_t i = 0; j->up_errs && i < j->up_n; i++)
        free(j->up_errs[i]);
    free(j->up_errs);
    free(j->upo);
    free(j->wbuf.p);
    free(j->rb);
    free_def(&j->def);
    free(j);
}

/* ---- upcasters ----------------------------------------------------------- */

int prj_js_open_up(const prj_js_limits *l, size_t n, const char *const *names, const char *const *scripts,
                   const size_t *script_lens, prj_js **out, char *err, size_t err_len)
{
    *out = NULL;
    if (err_len) err[0] = 0;
    prj_js_limits lim = l ? *l : (prj_js_limits){0};
    if (!lim.ms_per_event) lim.ms_per_event = 250;
    if (!lim.heap_mib) lim.heap_mib = 256;
    lim.state_bytes = PJP_EVENT_MAX;
    if (n > PJP_UP_SCRIPTS || lim.heap_mib < 4 || lim.heap_mib > 65536 || lim.ms_per_event > 3600000) {
        snprintf(err, err_len, "invalid limits, or more than %u scripts", PJP_UP_SCRIPTS);
        return FACTUM_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (script_lens[i] > PJP_UP_SCRIPT_MAX || strlen(names[i]) > PJP_NAME_MAX) {
            snprintf(err, err_len, "script %zu is longer than %u bytes (or its name than %u)", i, PJP_UP_SCRIPT_MAX,
                     PJP_NAME_MAX);
            return FACTUM_EINVAL;
        }
    }
    char path[PATH_MAX + 64];
    int rc = find_worker(&lim, path, sizeof path, err, err_len);
    if (rc) return rc;
    prj_js *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->fd = -1;
    lim.worker = NULL;
    j->lim = lim;
    j->rm = j->up = 1;
    j->up_n = n;
    j->frame_max = 2 * (size_t)PJP_EVENT_MAX + 4 * PJP_NAME_MAX + 64;
    if (n * (size_t)(PJP_FAIL_MAX + 4) + 64 > j->frame_max) j->frame_max = n * (size_t)(PJP_FAIL_MAX + 4) + 64;
    rc = spawn(j, path, err, err_len);
    if (rc) {
        free(j);
        return rc;
    }
    size_t at = pjp_begin(&j->wbuf, PJP_OPEN_UP, re);
    pjp_u32(&j->wbuf, lim.ms_per_event, re);
    pjp_u32(&j->wbuf, lim.heap_mib, re);
    pjp_u32(&j->wbuf, (uint32_t)n, re);
    for (size_t i = 0; i < n; i++) {
        pjp_str(&j->wbuf, names[i], strlen(names[i]), re);
        pjp_str(&j->wbuf, scripts[i], script_lens[i], re);
    }
    pjp_end(&j->wbuf, at);
    /* Each script may take twice its time to compile and run. */
    uint64_t budget = grace_ms() + 2 * (uint64_t)lim.ms_per_event * (n + 1);
    uint64_t deadline = deadline_after(budget);
    rc = send_buf(j, deadline, budget);
    if (!rc) rc = receive(j, WANT_DEF, deadline, budget, FACTUM_EINVAL);
    if (rc) {
        if (rc == FACTUM_EFAULTED) rc = -EIO;
        snprintf(err, err_len, "%s", j->err);
        prj_js_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

const char *prj_js_up_script_error(const prj_js *j, size_t i)
{
    return j && j->up && j->up_errs && i < j->up_n ? j->up_errs[i] : NULL;
}

int prj_js_up_process(prj_js *j, const prj_js_event *ev, const uint32_t *script, size_t n, prj_js_up_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = check_usable(j);
    if (rc) return rc;
    if (!j->up) return fault(j, FACTUM_EINVAL, "prj_js_up_process on another engine");
    for (size_t i = 0; i < n; i++)
        if (script[i] >= j->up_n) return fault(j, FACTUM_EINVAL, "event %zu names script %u of %zu", i, script[i], j->up_n);
    if ((rc = send_batch(j, ev, script, n))) return rc;
    uint64_t budget = grace_ms() + (uint64_t)(n + 4) * j->lim.ms_per_event;
    rc = receive(j, WANT_RM, deadline_after(budget), budget, FACTUM_EFAULTED);
    if (rc) return rc;
    res->out = j->upo;
    res->n_out = j->n_upo;
    res->fail = j->fails;
    res->n_fail = j->n_fails;
    res->done = j->rm_done;
    if (j->rm_done < n) {
        if (j->fd >= 0) close(j->fd);
        j->fd = -1;
        reap(j, NULL, 0);
        j->faulted = FACTUM_EFAULTED;
        snprintf(j->err, sizeof j->err, "%.*s", (int)res->fail[res->n_fail - 1].message_len,
                 res->fail[res->n_fail - 1].message);
    }
    return 0;
}
