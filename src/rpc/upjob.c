/*
 * upjob.c - upcasting off the loop, for events whose upcast may run a
 * script upcaster (docs/adr/0016-script-upcasters.md). A script runs in a
 * worker process and may take up to FACTUM_UPCAST_SCRIPT_MS per event: the
 * loop never waits for that. When rpc_upcast meets such an event it says
 * so (1); the read, subscription or consumer group then hands the events
 * it is about to send - the rest of its page - to a job here and
 * suspends; a thread of ctx->up_pool upcasts them all at once
 * (factum_upcast_many: one round trip to the worker per page), and the
 * owner resumes on the loop and sends them, in order, through rpc_upcast,
 * which now finds them prepared.
 *
 * Design note (invariants; tests cite them as UPJ-n):
 *  UPJ-1  A script never runs on the loop thread: rpc_upcast upcasts there
 *         with upc_upcast_noscript, which defers (and rpc_upcast hands off)
 *         any event whose chain reaches a script; upc_needs_script is the
 *         cheap check before it.
 *  UPJ-2  A job owns copies of its events' bytes: nothing it reads can be
 *         freed under it (a subscription's items, a group's messages, a
 *         call that ends while it runs).
 *  UPJ-3  Bounded: ctx->up_pool has FACTUM_UPCAST_WORKERS threads and at
 *         most RPC_UPJOB_QUEUE jobs waiting; past that a call is answered
 *         UNAVAILABLE rather than queued. A job holds at most one page, and
 *         at most RPC_UPJOB_BYTES of it beyond its first event (the rest
 *         goes to a later job when the call gets there).
 *  UPJ-4  ready runs on the loop once per job, unless the owner released
 *         the job first (then the job frees itself when its work ends) or
 *         the server is stopping (the job is cancelled; its owner frees it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/pool.h"
#include "net/grpc.h"
#include "rpc/events.h"
#include "rpc/rpc.h"
#include "store/upcast.h"

#define RPC_UPJOB_QUEUE 256
#define RPC_UPJOB_BYTES (4u << 20) /* events copied into one job, beyond its first (UPJ-3) */

struct rpc_upjob {
    auth_job job; /* first: the pool's job */
    rpc_ctx *ctx;
    factum_store *store;
    void *owner; /* NULL: released */
    void (*ready)(void *owner, rpc_upjob *j);
    int running;
    size_t n;
    factum_event *in, *out;
    uint8_t *bytes;
    factum_upcast_buf *buf;
    size_t n_done;
    int rc;
    char err[1600];
    size_t cursor; /* where the next lookup starts (events are asked for in order) */
    uint64_t gen;  /* the registry's generation when it started: later, its results are stale */
};

static void job_free(rpc_upjob *j)
{
    factum_upcast_buf_free(j->buf);
    free(j->in);
    free(j->out);
    free(j->bytes);
    free(j);
}

static void work(auth_job *aj)
{
    rpc_upjob *j = (rpc_upjob *)aj;
    j->rc = factum_upcast_many(j->store, j->in, j->n, j->buf, j->out, &j->n_done);
    if (j->rc == FACTUM_EUPCAST) snprintf(j->err, sizeof j->err, "%s", factum_upcast_buf_error(j->buf));
}

/* On the loop (UPJ-4). */
static void done(auth_job *aj)
{
    rpc_upjob *j = (rpc_upjob *)aj;
    j->running = 0;
    if (aj->cancelled) {
        j->rc = FACTUM_ECLOSED;
        j->n_done = 0;
    }
    if (!j->owner) {
        job_free(j);
        return;
    }
    if (!aj->cancelled) j->ready(j->owner, j);
}

static int post_loop(void *ctx, void (*fn)(void *), void *arg)
{
    return net_post(ctx, fn, arg);
}

static size_t copy_len(const factum_event *e)
{
    return e->stream_len + 1 + e->type_len + 1 + e->data_len + e->metadata_len + 2;
}

static uint8_t *copy_str(uint8_t *p, const void *s, size_t n, const void **dst)
{
    if (n) memcpy(p, s, n);
    p[n] = 0;
    *dst = p;
    return p + n + 1;
}

int rpc_upjob_start(rpc_ctx *ctx, const factum_event *const *ev, size_t n, void *owner,
                    void (*ready)(void *owner, rpc_upjob *j), rpc_upjob **out)
{
    *out = NULL;
    if (!ctx->up_pool) {
        int rc = auth_pool_new(FACTUM_UPCAST_WORKERS, RPC_UPJOB_QUEUE, post_loop, ctx->net, &ctx->up_pool);
        if (rc) return rc;
    }
    rpc_upjob *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && total + copy_len(ev[i]) > RPC_UPJOB_BYTES) {
            n = i;
            break;
        }
        total += copy_len(ev[i]);
    }
    j->in = calloc(n ? n : 1, sizeof *j->in);
    j->out = calloc(n ? n : 1, sizeof *j->out);
    j->bytes = malloc(total ? total : 1);
    if (!j->in || !j->out || !j->bytes || factum_upcast_buf_new(&j->buf)) {
        job_free(j);
        return -ENOMEM;
    }
    uint8_t *p = j->bytes; /* UPJ-2 */
    for (size_t i = 0; i < n; i++) {
        factum_event *e = &j->in[i];
        *e = *ev[i];
        const void *d;
        p = copy_str(p, ev[i]->stream, ev[i]->stream_len, &d);
        e->stream = d;
        p = copy_str(p, ev[i]->type, ev[i]->type_len, &d);
        e->type = d;
        p = copy_str(p, ev[i]->data, ev[i]->data_len, &d);
        e->data = d;
        p = copy_str(p, ev[i]->metadata, ev[i]->metadata_len, &d);
        e->metadata = d;
    }
    j->n = n;
    j->gen = upc_generation(ctx->store);
    j->ctx = ctx;
    j->store = ctx->store;
    j->owner = owner;
    j->ready = ready;
    j->job.work = work;
    j->job.done = done;
    j->running = 1;
    int rc = auth_pool_submit(ctx->up_pool, &j->job); /* UPJ-3 */
    if (rc) {
        job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void rpc_upjob_release(rpc_upjob *j)
{
    if (!j) return;
    if (j->running) j->owner = NULL; /* done frees it (UPJ-4) */
    else job_free(j);
}

int rpc_upjob_running(const rpc_upjob *j)
{
    return j && j->running;
}

void rpc_upjob_stop(rpc_ctx *ctx)
{
    auth_pool_free(ctx->up_pool); /* running jobs finish; waiting ones are cancelled (POOL-2) */
    ctx->up_pool = NULL;
}

static int same(const factum_event *a, const factum_event *b)
{
    return a->position == b->position && a->version == b->version && a->stream_len == b->stream_len &&
           a->type_len == b->type_len && !memcmp(a->stream, b->stream, a->stream_len);
}

/* The index of ev among j's events, or -1. */
static long find(rpc_upjob *j, const factum_event *ev)
{
    for (size_t k = 0; k < j->n; k++) {
        size_t i = (j->cursor + k) % j->n;
        if (same(&j->in[i], ev)) {
            j->cursor = i + 1 < j->n ? i + 1 : 0;
            return (long)i;
        }
    }
    return -1;
}

int rpc_upcast(rpc_ctx *ctx, net_call *c, const factum_event *ev, factum_event *out, int raw, rpc_upjob *prepared)
{
    if (raw) {
        *out = *ev;
        return 0;
    }
    long i = prepared && !prepared->running && prepared->n && prepared->gen == upc_generation(ctx->store)
                 ? find(prepared, ev)
                 : -1;
    if (i >= 0 && (size_t)i < prepared->n_done) {
        *out = prepared->out[i];
        return 0;
    }
    if (i >= 0 && (size_t)i > prepared->n_done) i = -1; /* after the one that failed: not done */
    if (i >= 0 && prepared->rc == FACTUM_EUPCAST) {
        ctx->st.upcast_failures++;
        rpc_fail(c, GRPC_FAILED_PRECONDITION, prepared->err, "upcast-failed", NULL);
        return -1;
    }
    if (i >= 0 && prepared->rc < 0) {
        if (prepared->rc == FACTUM_ECLOSED)
            rpc_fail(c, GRPC_UNAVAILABLE, "the server is stopping", NULL, NULL);
        else
            rpc_fail_store(c, prepared->rc, NULL, 0, -1);
        return -1;
    }
    int rc = upc_needs_script(ctx->store, ev);
    if (rc == 1) return 1; /* UPJ-1: the owner hands it off */
    if (rc < 0) {
        rpc_fail_store(c, rc, NULL, 0, -1);
        return -1;
    }
    if (!ctx->upcast_buf && factum_upcast_buf_new(&ctx->upcast_buf)) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return -1;
    }
    factum_upcast_buf_reset(ctx->upcast_buf); /* the previous event was packed already */
    rc = upc_upcast_noscript(ctx->store, ev, ctx->upcast_buf, out);
    if (rc == UPC_DEFER) return 1; /* the registry changed since upc_needs_script: hand it off (UPJ-1) */
    if (rc >= 0) return 0;
    if (rc == FACTUM_EUPCAST) {
        ctx->st.upcast_failures++;
        rpc_fail(c, GRPC_FAILED_PRECONDITION, factum_upcast_buf_error(ctx->upcast_buf), "upcast-failed", NULL);
    } else {
        rpc_fail_store(c, rc, NULL, 0, -1);
    }
    return -1;
}

int rpc_upcast_needs_job(rpc_ctx *ctx, const factum_event *ev, int raw)
{
    return !raw && upc_needs_script(ctx->store, ev) == 1;
}

void rpc_upjob_refused(net_call *c, int rc)
{
    if (rc == -EAGAIN)
        rpc_fail(c, GRPC_UNAVAILABLE, "the server's upcasting workers are busy: try again", NULL, NULL);
    else
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
}
