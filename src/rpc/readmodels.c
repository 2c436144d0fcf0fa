/*
 * readmodels.c - what factumd's two front ends of the read models share
 * (readmodels.h, RMS-1..4): the jobs that run the library's blocking calls
 * on a few worker threads, the asynchronous waits and their expiry, the
 * authorization rules, and the mapping of the library's errors to gRPC
 * and HTTP statuses.
 */
#include "rpc/readmodels.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "net/grpc.h"

/* Workers and their queue (RMS-1). SQLite readers run in parallel; a
 * PostgreSQL create may wait for its connection. */
#define RM_THREADS 4
#define RM_QUEUE 64
/* The workers' niceness: a query that burns CPU for its whole time limit
 * must not take it from the loop (and the store's threads) on a small
 * machine. Linux gives each thread its own. */
#define RM_NICE 10

static uint64_t mono_ns(void);

/* ---- jobs (RMS-1) ---------------------------------------------------------- */

rm_job *rm_job_new(rpc_ctx *ctx, int op)
{
    rm_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->ctx = ctx;
    j->op = op;
    factum_query_options_init(&j->qo);
    return j;
}

void rm_job_free(rm_job *j)
{
    if (!j) return;
    free(j->name);
    free(j->text);
    free(j->params);
    free(j->out);
    free(j->list);
    free(j);
}

int rm_dup(char **dst, const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return -ENOMEM;
    memcpy(p, s, n);
    p[n] = 0;
    free(*dst);
    *dst = p;
    return 0;
}

static int collect(void *arg, const factum_readmodel_status *st)
{
    rm_job *j = arg;
    if ((j->n_list & (j->n_list - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        size_t cap = j->n_list ? j->n_list * 2 : 1;
        factum_readmodel_status *v = realloc(j->list, cap * sizeof *v);
        if (!v) return -ENOMEM;
        j->list = v;
    }
    j->list[j->n_list++] = *st;
    return 0;
}

/* On a worker. */
static void job_work(auth_job *aj)
{
    static _Thread_local int niced;
    if (!niced) {
        niced = 1;
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RM_NICE); /* best effort */
    }
    rm_job *j = (rm_job *)aj;
    if (atomic_load(&j->abandoned)) {
        j->rc = -ECANCELED;
        return;
    }
    if (j->deadline_ns && mono_ns() >= j->deadline_ns) {
        j->rc = FACTUM_ETIMEDOUT;
        snprintf(j->err, sizeof j->err, "the call's deadline passed while it waited for a worker");
        return;
    }
    factum_readmodels *m = j->ctx->readmodels;
    char *e = j->err;
    size_t el = sizeof j->err;
    switch (j->op) {
    case RM_CREATE: j->rc = factum_readmodel_create(m, j->text, j->text_len, e, el); break;
    case RM_REBUILD: j->rc = factum_readmodel_rebuild(m, j->name, j->text, j->text_len, e, el); break;
    case RM_PAUSE: j->rc = factum_readmodel_pause(m, j->name); break;
    case RM_RESUME: j->rc = factum_readmodel_resume(m, j->name); break;
    case RM_DROP: j->rc = factum_readmodel_drop(m, j->name); break;
    case RM_GET:
        j->rc = factum_readmodel_get_status(m, j->name, &j->st);
        if (!j->rc) j->rc = factum_readmodel_get_definition(m, j->name, &j->out);
        break;
    case RM_LIST: j->rc = factum_readmodels_each(m, collect, j); break;
    case RM_QUERY:
        if (!j->asof) {
            j->rc = factum_readmodel_query(m, j->name, j->text, j->params, &j->qo, &j->out, e, el);
            break;
        }
        j->rc = j->asof_time ? factum_position_at(j->ctx->store, j->asof_ns, &j->asof_pos) : 0;
        if (!j->rc)
            j->rc = factum_readmodel_query_asof(m, j->name, j->asof_pos, j->text, j->params, &j->qo, &j->out, e, el);
        break;
    case RM_PARKED: j->rc = factum_readmodel_parked(m, j->name, j->limit, &j->out, e, el); break;
    default: j->rc = FACTUM_EINVAL;
    }
    if (!j->rc && j->out && strlen(j->out) > RM_MAX_RESULT) {
        free(j->out);
        j->out = NULL;
        j->rc = -EMSGSIZE;
    }
}

/* ---- the queue: a lane per connection, served in turn (RMS-1) ----------------
 *
 * The workers are given at most RM_THREADS jobs at a time; the others wait
 * here, on the loop, in a lane per client connection, and a free worker
 * takes the next job of the next lane in turn. So a connection that queues
 * many slow queries delays another's by at most one job per worker, not by
 * all of its own. At most RM_QUEUE jobs wait in all; when they do, a job
 * of a connection that has fewer waiting than the longest lane takes the
 * place of that lane's last job (refused, as busy), so a greedy client
 * cannot keep the others out of the queue either. */

struct rm_sched {
    struct rm_lane {
        uint64_t conn;
        rm_job *head, *tail;
        size_t n;
    } lanes[RM_QUEUE + 1]; /* a lane per connection with jobs waiting (at most one job each, at worst) */
    size_t n_lanes, next; /* next: the lane whose turn it is */
    size_t queued;        /* jobs in the lanes */
    size_t running;       /* jobs handed to the workers */
};

static void pump(rpc_ctx *ctx);

/* On the loop. */
static void job_done(auth_job *aj)
{
    rm_job *j = (rm_job *)aj;
    rpc_ctx *ctx = j->ctx;
    if (aj->cancelled) j->rc = FACTUM_ECLOSED; /* POOL-2: at shutdown */
    if (ctx->rm_sched) ctx->rm_sched->running--;
    j->done(j);
    pump(ctx);
}

/* Hand jobs to free workers, a lane at a time. */
static void pump(rpc_ctx *ctx)
{
    struct rm_sched *q = ctx->rm_sched;
    while (q && ctx->rm_pool && q->queued && q->running < RM_THREADS) {
        if (q->next >= q->n_lanes) q->next = 0;
        struct rm_lane *l = &q->lanes[q->next];
        rm_job *j = l->head;
        l->head = j->next_in_lane;
        l->n--;
        if (!l->head) {
            l->tail = NULL;
            *l = q->lanes[--q->n_lanes]; /* the last lane takes its place, and this turn */
        } else {
            q->next++;
        }
        q->queued--;
        q->running++;
        if (auth_pool_submit(ctx->rm_pool, &j->job)) { /* cannot happen: at most RM_THREADS given */
            q->running--;
            j->rc = -EAGAIN;
            j->done(j);
        }
    }
}

static int post_loop(void *ctx, void (*fn)(void *), void *arg)
{
    return net_post(ctx, fn, arg);
}

int rpc_rm_init(rpc_ctx *ctx)
{
    if (!ctx->readmodels) return 0;
    if (!(ctx->rm_sched = calloc(1, sizeof *ctx->rm_sched))) return -ENOMEM;
    return auth_pool_new(RM_THREADS, RM_THREADS, post_loop, ctx->net, &ctx->rm_pool);
}

static void cancelled_loop(void *arg)
{
    rm_job *j = arg;
    j->rc = FACTUM_ECLOSED;
    j->done(j);
}

/* A job pushed out of the queue by another connection's (answered from a
 * later turn: its caller's state is not to be touched from inside another
 * request's handler). */
static void evicted_loop(void *arg)
{
    rm_job *j = arg;
    j->rc = -EAGAIN;
    j->done(j);
}

void rpc_rm_stop(rpc_ctx *ctx)
{
    auth_pool_free(ctx->rm_pool); /* the jobs given to it: done with FACTUM_ECLOSED */
    ctx->rm_pool = NULL;
    struct rm_sched *q = ctx->rm_sched;
    if (!q) return;
    /* The jobs still in the lanes end the same way, on the loop (the
     * server runs what is posted when it is freed). */
    for (size_t i = 0; i < q->n_lanes; i++)
        for (rm_job *j = q->lanes[i].head, *next; j; j = next) {
            next = j->next_in_lane;
            while (net_post(ctx->net, cancelled_loop, j) != 0)
                nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
    free(q);
    ctx->rm_sched = NULL;
}

int rpc_rm_submit(rpc_ctx *ctx, rm_job *j)
{
    struct rm_sched *q = ctx->rm_sched;
    if (!ctx->readmodels || !ctx->rm_pool || !q) return FACTUM_ECLOSED;
    size_t i = 0;
    while (i < q->n_lanes && q->lanes[i].conn != j->conn) i++;
    if (q->queued >= RM_QUEUE) {
        /* Full: the longest lane gives up its last job, unless it is this one's. */
        size_t L = 0;
        for (size_t k = 1; k < q->n_lanes; k++)
            if (q->lanes[k].n > q->lanes[L].n) L = k;
        size_t mine = i < q->n_lanes ? q->lanes[i].n : 0;
        if (!q->n_lanes || q->lanes[L].n <= mine + 1) return -EAGAIN;
        struct rm_lane *big = &q->lanes[L];
        rm_job *prev = big->head;
        while (prev->next_in_lane != big->tail) prev = prev->next_in_lane;
        rm_job *out = big->tail;
        prev->next_in_lane = NULL;
        big->tail = prev;
        big->n--;
        q->queued--;
        if (net_post(ctx->net, evicted_loop, out)) { /* no memory: undo, refuse this one */
            prev->next_in_lane = out;
            big->tail = out;
            big->n++;
            q->queued++;
            return -EAGAIN;
        }
    }
    j->job.work = job_work;
    j->job.done = job_done;
    j->next_in_lane = NULL;
    if (i == q->n_lanes) { /* a new lane: its turn comes after the current one's */
        q->lanes[q->n_lanes++] = (struct rm_lane){j->conn, NULL, NULL, 0};
    }
    struct rm_lane *l = &q->lanes[i];
    if (l->tail) l->tail->next_in_lane = j;
    else l->head = j;
    l->tail = j;
    l->n++;
    q->queued++;
    pump(ctx);
    return 0;
}

/* ---- waits (RMS-2) ---------------------------------------------------------- */

struct rm_wait {
    rpc_ctx *ctx;
    factum_readmodel_waiter *w;
    uint64_t deadline_ns;
    int rc;
    int abandoned; /* nobody listens: the completion only frees it */
    int expiring;  /* its cancel came too late: the completion is on its way */
    /* Set by the read model's thread before it posts the completion: the
     * library has then freed w (its waiter), and a cancel must not be tried
     * with that pointer (another wait started meanwhile on this loop may
     * have been given the same address). */
    _Atomic int fired;
    void (*done)(void *arg, int rc);
    void *arg;
    rm_wait *prev, *next; /* ctx->rm_waits */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void unlink_wait(rm_wait *w)
{
    if (w->prev) w->prev->next = w->next;
    else w->ctx->rm_waits = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* On the loop: the library's answer arrived. */
static void wait_fired_loop(void *arg)
{
    rm_wait *w = arg;
    unlink_wait(w);
    if (!w->abandoned) w->done(w->arg, w->rc);
    free(w);
}

/* On a read model's thread. */
static void wait_fired(void *arg, int rc)
{
    rm_wait *w = arg;
    w->rc = rc;
    atomic_store(&w->fired, 1);
    /* net_post fails only without memory: try again shortly (RMS-2: the
     * wait must end). */
    while (net_post(w->ctx->net, wait_fired_loop, w) != 0)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
}

int rpc_rm_wait(rpc_ctx *ctx, const char *name, uint64_t position, int timeout_ms,
                void (*done)(void *arg, int rc), void *arg, rm_wait **out)
{
    *out = NULL;
    if (!ctx->readmodels) return FACTUM_ECLOSED;
    if (timeout_ms < 0 || timeout_ms > RM_MAX_WAIT_MS) timeout_ms = RM_MAX_WAIT_MS;
    rm_wait *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->ctx = ctx;
    w->done = done;
    w->arg = arg;
    w->deadline_ns = mono_ns() + (uint64_t)timeout_ms * 1000000u;
    /* In the list before the callback can run (it posts to this thread). */
    w->next = ctx->rm_waits;
    if (w->next) w->next->prev = w;
    ctx->rm_waits = w;
    int rc = factum_readmodel_wait_async(ctx->readmodels, name, position, wait_fired, w, &w->w);
    if (rc != 0) {
        unlink_wait(w);
        free(w);
        return rc; /* 1: applied already; or an error */
    }
    *out = w;
    return 0;
}

int rpc_rm_wait_abandon(rpc_ctx *ctx, rm_wait *w)
{
    if (!w->expiring && !atomic_load(&w->fired) && ctx->readmodels &&
        factum_readmodel_wait_cancel(ctx->readmodels, w->w)) {
        unlink_wait(w);
        free(w);
        return 1;
    }
    w->abandoned = 1; /* its completion is posted: it frees w */
    return 0;
}

void rpc_rm_tick(rpc_ctx *ctx)
{
    if (!ctx->rm_waits) return;
    uint64_t now = mono_ns();
    /* Stopping: the waits end now (UNAVAILABLE), so that the drain does not
     * wait for them. */
    int stopping = ctx->net && net_server_stopping(ctx->net);
    for (rm_wait *w = ctx->rm_waits, *next; w; w = next) {
        next = w->next;
        if (w->expiring || (now < w->deadline_ns && !stopping)) continue;
        if (!atomic_load(&w->fired) && factum_readmodel_wait_cancel(ctx->readmodels, w->w)) {
            unlink_wait(w);
            if (!w->abandoned) w->done(w->arg, stopping ? FACTUM_ECLOSED : FACTUM_ETIMEDOUT);
            free(w);
        } else {
            w->expiring = 1; /* answered meanwhile: that answer stands */
        }
    }
}

/* ---- authorization (RMS-4) ---------------------------------------------------- */

int rpc_rm_may_admin(const auth_principal *p)
{
    if (p->flags & AUTH_P_SYSTEM) return AUTH_OK;
    p = auth_principal_current(p);
    if (!auth_principal_authenticated(p)) return AUTH_UNAUTHENTICATED;
    return auth_principal_is_ops_or_admin(p) ? AUTH_OK : AUTH_DENIED;
}

int rpc_rm_may_read(rpc_ctx *ctx, const auth_principal *p, const char *name)
{
    if (!ctx->readmodels) return FACTUM_ECLOSED;
    factum_readmodel_status *st = malloc(sizeof *st);
    if (!st) return -ENOMEM;
    int rc = factum_readmodel_get_status(ctx->readmodels, name, st);
    if (rc) goto out;
    if (p->flags & AUTH_P_SYSTEM) goto out; /* AUTH_OK */
    p = auth_principal_current(p);
    if (!auth_principal_authenticated(p)) {
        rc = AUTH_UNAUTHENTICATED;
        goto out;
    }
    if (auth_principal_is_admin(p)) goto out;
    rc = AUTH_DENIED;
    json_value *v = NULL;
    if (json_parse(st->readers, strlen(st->readers), &v) == 0 && v->type == JSON_ARRAY) {
        for (size_t i = 0; i < v->n && rc != AUTH_OK; i++) {
            const json_value *r = v->items[i];
            if (r->type != JSON_STRING) continue;
            if (!strcmp(r->str, AUTH_ROLE_ALL) || auth_principal_has_role(p, r->str)) rc = AUTH_OK;
        }
    }
    json_free(v);
out:
    free(st);
    return rc;
}

/* ---- names, errors, statuses ----------------------------------------------------- */

int rpc_rm_valid_name(const char *name, size_t len)
{
    if (len < 1 || len > 63) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return 0;
    }
    return 1;
}

int rpc_rm_grpc_status(int rc)
{
    switch (rc) {
    case FACTUM_ENOTFOUND: return GRPC_NOT_FOUND;
    case FACTUM_EEXISTS: return GRPC_ALREADY_EXISTS;
    case FACTUM_EBADJSON:
    case FACTUM_EINVAL:
    case FACTUM_ETARGET: return GRPC_INVALID_ARGUMENT;
    case FACTUM_ETIMEDOUT: return GRPC_DEADLINE_EXCEEDED;
    case FACTUM_EFAULTED:
    case FACTUM_EBADSTATE: return GRPC_FAILED_PRECONDITION;
    case FACTUM_ETOOBIG:
    case -EMSGSIZE:
    case -ENOBUFS:
    case -ENOMEM: return GRPC_RESOURCE_EXHAUSTED;
    case -EAGAIN:
    case FACTUM_ECLOSED:
    case FACTUM_EREADONLY:
    case FACTUM_EFAILED: return GRPC_UNAVAILABLE;
    default: return GRPC_INTERNAL;
    }
}

int rpc_rm_http_status(int rc)
{
    switch (rc) {
    case FACTUM_ENOTFOUND: return 404;
    case FACTUM_EEXISTS: return 409;
    case FACTUM_EBADJSON:
    case FACTUM_EINVAL:
    case FACTUM_ETARGET: return 400;
    case FACTUM_ETIMEDOUT: return 408;
    case FACTUM_EFAULTED:
    case FACTUM_EBADSTATE: return 409;
    case FACTUM_ETOOBIG:
    case -EMSGSIZE: return 413;
    case -EAGAIN:
    case -ENOBUFS:
    case -ENOMEM:
    case FACTUM_ECLOSED:
    case FACTUM_EREADONLY:
    case FACTUM_EFAILED: return 503;
    default: return 500;
    }
}

void rpc_rm_message(char *buf, size_t n, int rc, const char *name, const char *err)
{
    const char *what;
    switch (rc) {
    case FACTUM_ENOTFOUND: what = "no read model of that name"; break;
    case FACTUM_EEXISTS: what = "a read model of that name exists already"; break;
    case -EAGAIN: what = "the server is busy (its read-model workers' queue is full): try again"; break;
    case -EMSGSIZE: what = "the answer is larger than 16 MiB: ask for fewer rows (rowLimit)"; break;
    case -ENOBUFS: what = RPC_MEM_MESSAGE; break;
    case FACTUM_ECLOSED: what = "the server runs no read models (--run-readmodels=false) or is stopping"; break;
    default: what = factum_strerror(rc);
    }
    if (err && err[0])
        snprintf(buf, n, "read model '%s': %s", name && name[0] ? name : "?", err);
    else if (name && name[0])
        snprintf(buf, n, "read model '%s': %s", name, what);
    else
        snprintf(buf, n, "%s", what);
}

void rpc_rm_fault_text(rpc_ctx *ctx, const char *name, char *buf, size_t n)
{
    buf[0] = 0;
    factum_readmodel_status *st = ctx->readmodels ? malloc(sizeof *st) : NULL;
    if (st && factum_readmodel_get_status(ctx->readmodels, name, st) == 0 &&
        st->state == FACTUM_READMODEL_FAULTED)
        snprintf(buf, n, "stopped at position %" PRIu64 " (%.200s@%" PRIu64 "): %.300s", st->error_position,
                 st->error_stream, st->error_version, st->error);
    free(st);
}

const char *rpc_rm_state_name(int state)
{
    switch (state) {
    case FACTUM_READMODEL_RUNNING: return "running";
    case FACTUM_READMODEL_PAUSED: return "paused";
    case FACTUM_READMODEL_FAULTED: return "faulted";
    case FACTUM_READMODEL_STARTING: return "starting";
    default: return "unknown";
    }
}

const char *rpc_rm_lifecycle_name(int lifecycle)
{
    return lifecycle == FACTUM_READMODEL_INLINE ? "inline" : "async";
}

static int json_str(base_buf *b, const char *key, const char *v)
{
    if (base_buf_printf(b, "\"%s\":", key)) return -ENOMEM;
    return json_write_string(b, v, strlen(v));
}

int rpc_rm_status_json(base_buf *b, const factum_readmodel_status *st)
{
    int rc = base_buf_append(b, "{", 1);
    if (!rc) rc = json_str(b, "name", st->name);
    if (!rc) rc = base_buf_append(b, ",", 1);
    if (!rc) rc = json_str(b, "target", st->target);
    if (!rc)
        rc = base_buf_printf(
            b,
            ",\"lifecycle\":\"%s\",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"position\":%" PRIu64
            ",\"head\":%" PRIu64 ",\"lagEvents\":%" PRIu64 ",\"lagSeconds\":%.6f,\"applied\":%" PRIu64
            ",\"skipped\":%" PRIu64 ",\"parked\":%" PRIu64 ",\"eventsPerSecond\":%.1f,\"live\":%s,\"readers\":",
            rpc_rm_lifecycle_name(st->lifecycle), rpc_rm_state_name(st->state), st->generation, st->position,
            st->head, st->lag_events, (double)st->lag_ns / 1e9, st->applied, st->skipped, st->parked,
            st->events_per_second, st->live ? "true" : "false");
    /* readers is the definition's JSON array; anything else is shown as [] */
    if (!rc) rc = json_validate(st->readers, strlen(st->readers)) == 0 && st->readers[0] == '['
                      ? base_buf_append(b, st->readers, strlen(st->readers))
                      : base_buf_append(b, "[]", 2);
    if (!rc && st->building)
        rc = base_buf_printf(b, ",\"rebuild\":{\"generation\":%" PRIu64 ",\"position\":%" PRIu64 "}",
                             st->building, st->building_position);
    if (!rc && st->state == FACTUM_READMODEL_FAULTED) {
        rc = base_buf_append(b, ",\"error\":{", 10);
        if (!rc) rc = json_str(b, "message", st->error);
        if (!rc) rc = base_buf_append(b, ",", 1);
        if (!rc) rc = json_str(b, "statement", st->statement);
        if (!rc)
            rc = base_buf_printf(b, ",\"position\":%" PRIu64 ",\"version\":%" PRIu64 ",", st->error_position,
                                 st->error_version);
        if (!rc) rc = json_str(b, "stream", st->error_stream);
        if (!rc) rc = base_buf_append(b, "}", 1);
    }
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc ? -ENOMEM : 0;
}

/* The unsigned integer value of top-level key `key` of a JSON object
 * text the library wrote (compact, keys unescaped), or 0. */
static uint64_t top_u64(const char *json, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    /* The figures come after "rows" (the library's order), so look for the
     * last occurrence: a string cell cannot hold an unescaped quote. */
    const char *hit = NULL;
    for (const char *p = strstr(json, pat); p; p = strstr(p + 1, pat)) hit = p;
    if (!hit) return 0;
    return strtoull(hit + strlen(pat), NULL, 10);
}

void rpc_rm_answer_figures(const char *json, uint64_t *position, uint64_t *lag_events, uint64_t *lag_ms)
{
    *position = top_u64(json, "position");
    *lag_events = top_u64(json, "lag_events");
    *lag_ms = top_u64(json, "lag_ms");
}

int rpc_rm_definition_shown(base_buf *b, const char *def, int admin)
{
    size_t len = strlen(def);
    json_value *v = NULL;
    if (json_parse(def, len, &v) || v->type != JSON_OBJECT) {
        json_free(v);
        return json_write_string(b, def, len) ? -ENOMEM : 0;
    }
    int rc = 0;
    if (admin) {
        rc = base_buf_append(b, def, len);
    } else {
        rc = base_buf_append(b, "{", 1);
        for (size_t i = 0; i < v->n && !rc; i++) {
            const json_value *x = v->items[i];
            rc = (i && base_buf_append(b, ",", 1)) || json_write_string(b, v->keys[i], v->key_lens[i]) ||
                 base_buf_append(b, ":", 1);
            if (rc) break;
            if (strcmp(v->keys[i], "target") || x->type != JSON_OBJECT) {
                rc = json_write_value(b, x);
                continue;
            }
            rc = base_buf_append(b, "{", 1);
            for (size_t k = 0; k < x->n && !rc; k++) {
                rc = (k && base_buf_append(b, ",", 1)) || json_write_string(b, x->keys[k], x->key_lens[k]) ||
                     base_buf_append(b, ":", 1) ||
                     (strcmp(x->keys[k], "connection") ? json_write_value(b, x->items[k])
                                                       : base_buf_append(b, "\"(hidden)\"", 10));
            }
            rc = rc || base_buf_append(b, "}", 1);
        }
        rc = rc || base_buf_append(b, "}", 1);
    }
    json_free(v);
    return rc ? -ENOMEM : 0;
}
