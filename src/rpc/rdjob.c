/*
 * rdjob.c - store reads off the loop: the reader pool
 * (docs/adr/0023-cold-reads-off-the-loop.md). A page read on the loop
 * thread that would touch log pages not in memory would take a major page
 * fault there, and every other client would wait for the disk. So the
 * loop reads with FACTUM_NOWAIT (the store checks residence with mincore
 * before touching a frame, RES-1); when the store answers -EWOULDBLOCK the
 * owner (a Read call, a consumer group's parked-message replay) hands the
 * same read to a thread of ctx->rd_pool and resumes, on the loop, when it
 * is done. Hot reads never leave the loop: no hand-off cost for them.
 *
 * The owner embeds an auth_job (the one off-loop job facility, auth/pool.h,
 * shared with the password, read model and upcasting workers): its work
 * reads into the owner's page, its done resumes the owner.
 *
 * Design note (invariants; tests cite them as RDJ-n):
 *  RDJ-1  The loop never waits for the disk on a Read page, a consumer
 *         group's catch-up page or a parked replay page: with
 *         --cold-reads detect it reads only pages known resident, with
 *         always every such read goes to the pool (tests; disks where
 *         mincore is no guide), with never all stay on the loop (as before).
 *  RDJ-2  An owner has at most one job at a time and sends nothing while it
 *         runs: the order of messages within a call is the order of the
 *         log. The pages read by a job are what the same read on the loop
 *         returns (the same store call, without the flag).
 *  RDJ-3  Bounded: --reader-threads threads and at most RPC_RDJOB_QUEUE
 *         jobs waiting in all (so at most one per call, and a
 *         connection's calls are bounded by its streams); past that the
 *         call is answered UNAVAILABLE (rpc_rdjob_refused), like upjob.c.
 *         A job reads one page (at most 64 events, examining at most
 *         READ_SCAN_STEP): pointers into the mapped log, no copies.
 *  RDJ-4  An owner whose call ends while its job runs is not freed until
 *         the job's done ran on the loop (it frees it then): the job never
 *         writes into freed memory and nothing leaks. At shutdown waiting
 *         jobs are done with cancelled set (POOL-2), and dones that run
 *         after rpc_rdjob_stop (net_server_free runs them once the store is
 *         closed) only free (rpc_rdjob_gone).
 */
#include <errno.h>

#include "auth/pool.h"
#include "net/grpc.h"
#include "rpc/rpc.h"

#define RPC_RDJOB_QUEUE 256

static int post_loop(void *ctx, void (*fn)(void *), void *arg)
{
    return net_post(ctx, fn, arg);
}

int rpc_read_nowait(const rpc_ctx *ctx)
{
    return ctx->cold_reads == RPC_COLD_NEVER ? 0 : FACTUM_NOWAIT;
}

int rpc_read_off_loop(const rpc_ctx *ctx)
{
    return ctx->cold_reads == RPC_COLD_ALWAYS;
}

int rpc_rdjob_submit(rpc_ctx *ctx, auth_job *j)
{
    if (!ctx->rd_pool) {
        unsigned n = ctx->reader_threads ? ctx->reader_threads : 2;
        int rc = auth_pool_new(n, RPC_RDJOB_QUEUE, post_loop, ctx->net, &ctx->rd_pool);
        if (rc) return rc;
    }
    j->cancelled = 0;
    int rc = auth_pool_submit(ctx->rd_pool, j); /* RDJ-3 */
    if (!rc) ctx->st.reads_off_loop++;
    return rc;
}

void rpc_rdjob_refused(net_call *c, int rc)
{
    if (rc == -EAGAIN)
        rpc_fail(c, GRPC_UNAVAILABLE, "the server's readers are busy: try again", NULL, NULL);
    else
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
}

int rpc_rdjob_gone(const rpc_ctx *ctx, const auth_job *j)
{
    return j->cancelled || ctx->rd_stopped;
}

void rpc_rdjob_stop(rpc_ctx *ctx)
{
    ctx->rd_stopped = 1;
    auth_pool_free(ctx->rd_pool); /* running jobs finish; waiting ones are done cancelled (RDJ-4) */
    ctx->rd_pool = NULL;
}
