/*
 * live.c - what keeps subscriptions and consumer groups live: the store's
 * commit listener, the one wake-up it posts to the loop, which pumps the
 * subscriptions waiting at the head (subscribe.c, RPC-4) and then the
 * consumer groups with consumers (persistent_group.c); and their lag, for
 * /metrics and Monitoring.Stats. It sits above both, so that neither calls
 * the other.
 */
#include <errno.h>
#include <stdatomic.h>

#include "rpc/events.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"
#include "rpc/subscribe.h"
#include "rpc/tail.h"

/* On the loop: at most one of these is queued (sub_wake_posted). The flag
 * is cleared first, so a commit during the pumps posts another wake-up. */
static void wake_all(void *arg)
{
    rpc_ctx *ctx = arg;
    atomic_store(&ctx->sub_wake_posted, 0);
    rpc_sub_wake_all(ctx);
    rpc_ps_on_commit(ctx);
}

/* On the committing thread, after the commit is visible (RPC-4). */
static void on_commit(void *arg, uint64_t last)
{
    (void)last;
    rpc_ctx *ctx = arg;
    if (ctx->drv && pthread_equal(ctx->loop_thread, pthread_self())) {
        ctx->sub_wake_local = 1; /* the loop committed: rpc_drive_run pumps */
        return;
    }
    if (atomic_exchange(&ctx->sub_wake_posted, 1)) return;
    if (net_post(ctx->net, wake_all, ctx)) atomic_store(&ctx->sub_wake_posted, 0);
}

int rpc_drive_ready(void *arg)
{
    rpc_ctx *ctx = arg;
    return ctx->sub_wake_local || factum_driver_ready(ctx->drv);
}

/* Completions first (what clients wait for), then the subscriptions the
 * commits woke. */
void rpc_drive_run(void *arg)
{
    rpc_ctx *ctx = arg;
    factum_driver_run(ctx->drv, 0);
    if (ctx->sub_wake_local) {
        ctx->sub_wake_local = 0;
        rpc_sub_wake_all(ctx);
        rpc_ps_on_commit(ctx);
    }
}

void rpc_live_recheck(void *arg)
{
    rpc_ctx *ctx = arg;
    rpc_sub_wake_all(ctx);
    rpc_ps_on_commit(ctx);
}

int rpc_listen(rpc_ctx *ctx)
{
    if (ctx->sub_listening) return 0;
    if (factum_commit_listener_add(ctx->store, on_commit, ctx)) return -ENOMEM;
    ctx->sub_listening = 1;
    return 0;
}

void rpc_deinit(rpc_ctx *ctx)
{
    rpc_proj_stop(ctx);
    rpc_ps_close(ctx);
    rpc_upjob_stop(ctx);
    rpc_rdjob_stop(ctx);
    factum_upcast_buf_free(ctx->upcast_buf);
    ctx->upcast_buf = NULL;
    rpc_tail_free(ctx);
    factum_reader_free(ctx->rdr);
    ctx->rdr = NULL;
    if (ctx->sub_listening) factum_commit_listener_remove(ctx->store, on_commit, ctx);
    ctx->sub_listening = 0;
}

typedef struct lag_fwd {
    rpc_lag_fn fn;
    void *arg;
} lag_fwd;

static void group_lag(void *arg, const char *src, const char *group, uint64_t lag_events, double lag_seconds,
                      uint64_t inflight, uint64_t parked, size_t consumers)
{
    (void)inflight;
    (void)parked;
    (void)consumers;
    lag_fwd *f = arg;
    f->fn(f->arg, "group", src, group, lag_events, lag_seconds);
}

void rpc_lag_each(rpc_ctx *ctx, rpc_lag_fn fn, void *arg)
{
    rpc_sub_lag_each(ctx, fn, arg);
    lag_fwd f = {fn, arg};
    rpc_ps_each(ctx, group_lag, &f);
}
