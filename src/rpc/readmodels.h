/*
 * readmodels.h - factumd's side of the read models (include/factum_readmodel.h)
 * shared by the gRPC service (rm_service.c, factum.readmodels.ReadModels)
 * and the HTTP endpoints (src/server/http_rm.c): the worker threads that
 * run the library's calls that may block, the waits, who may do what, and
 * the errors.
 *
 *  RMS-1  The loop never runs SQL and never waits for a read model (NET-1):
 *        create, rebuild, pause, resume, drop, get, list, query and parked
 *        run as jobs on a few worker threads (src/auth/pool.h), their
 *        `done` on the loop. Jobs wait in a bounded queue with a lane per
 *        client connection, served in turn (a job that finds it full is
 *        refused at once, UNAVAILABLE / 503), so that one client's slow
 *        queries delay another's by at most one job per worker.
 *  RMS-2  A wait never occupies a thread: factum_readmodel_wait_async's
 *        callback posts to the loop; the tick (about every 100 ms) expires
 *        waits whose time is up by cancelling them. Each wait ends exactly
 *        once: done(rc) on the loop, or abandoned by its caller (then done
 *        never runs, or runs having been told nothing is listening).
 *  RMS-3  A query with a min_position first waits (RMS-2) and only then
 *        takes a worker, so that waiting queries hold no thread.
 *  RMS-4  Authorization is decided on the loop before any work starts:
 *        create, rebuild, pause, resume and drop need `$ops` or `$admins`;
 *        get, wait, query and parked a principal with one of the read
 *        model's readers (`$all`: any authenticated user; admins always).
 *        The system principal (--insecure) may do everything.
 */
#ifndef FACTUM_RPC_READMODELS_H
#define FACTUM_RPC_READMODELS_H

#include <stdatomic.h>

#include "auth/pool.h"
#include "base/base.h"
#include "factum_readmodel.h"
#include "rpc/rpc.h"

struct auth_principal;

enum rm_op { RM_CREATE, RM_REBUILD, RM_PAUSE, RM_RESUME, RM_DROP, RM_GET, RM_LIST, RM_QUERY, RM_PARKED };

/* Results larger than this are refused (RESOURCE_EXHAUSTED / 413): ask
 * for fewer rows. */
#define RM_MAX_RESULT (16u << 20)
/* A wait's time, at most (a longer one is cut to this). */
#define RM_MAX_WAIT_MS 300000
#define RM_DEFAULT_WAIT_MS 5000
/* A query's time limit, at most (a longer one is refused): with the
 * workers and their queue, what bounds how long a client that fills the
 * queue with slow queries delays everyone else's (RMS-1). */
#define RM_MAX_QUERY_MS 60000

/* One library call run on a worker (RMS-1). The strings are the job's
 * (malloc'd, freed by rm_job_free). */
typedef struct rm_job {
    auth_job job; /* first: the pool's */
    rpc_ctx *ctx;
    int op;
    char *name;
    char *text; /* the definition (create, rebuild: NULL keeps it) or the SQL (query) */
    size_t text_len;
    char *params; /* query: a JSON object, or NULL */
    factum_query_options qo;
    /* query: as of a time (RFC 3339, asof_time) or a position (asof_pos),
     * when asof is set (factum_readmodel_query_asof: a replay on the worker) */
    int asof, asof_time;
    int64_t asof_ns;
    uint64_t asof_pos;
    uint32_t limit; /* parked */
    /* Results, written on the worker. */
    int rc;
    char err[512];
    char *out; /* query, parked: the JSON answer; get: the definition (malloc'd) */
    factum_readmodel_status st; /* get */
    factum_readmodel_status *list; /* list: every read model, by name */
    size_t n_list;
    /* On the loop, when the work is done (or was cancelled at shutdown:
     * rc is FACTUM_ECLOSED then). */
    void (*done)(struct rm_job *j);
    void *arg;
    /* Set (any thread) when nobody waits for the answer any more: a job
     * not yet started is skipped (rc -ECANCELED), so that work queued by
     * clients that left does not hold the workers (RMS-1). */
    _Atomic int abandoned;
    /* CLOCK_MONOTONIC ns after which nobody waits for it either (the gRPC
     * call's deadline), or 0: skipped then with FACTUM_ETIMEDOUT. */
    uint64_t deadline_ns;
    /* The client's connection (net_call_conn_id, net_http_conn_id): its
     * lane in the queue (RMS-1). */
    uint64_t conn;
    struct rm_job *next_in_lane;
} rm_job;

/* A new job of op for ctx (NULL without memory). */
rm_job *rm_job_new(rpc_ctx *ctx, int op);
void rm_job_free(rm_job *j);
/* Copy n bytes of s into *dst (NUL-terminated). 0 or -ENOMEM. */
int rm_dup(char **dst, const char *s, size_t n);
/* Start j (RMS-1): 0 (j->done will run), -EAGAIN (the queue is full) or
 * FACTUM_ECLOSED (no read models); j is still the caller's on an error. */
int rpc_rm_submit(rpc_ctx *ctx, rm_job *j);

/* The workers: start them (after ctx->net and ctx->readmodels are set)
 * and stop them (before the read models are closed; the jobs still
 * queued end with FACTUM_ECLOSED). 0 or -errno. */
int rpc_rm_init(rpc_ctx *ctx);
void rpc_rm_stop(rpc_ctx *ctx);
/* RMS-2: expire waits (the server's tick); all of them, FACTUM_ECLOSED,
 * once the server is stopping. */
void rpc_rm_tick(rpc_ctx *ctx);

/* ---- waits (RMS-2) -------------------------------------------------------- */

typedef struct rm_wait rm_wait;
/* Wait until `name` has applied `position`, at most timeout_ms. Returns 1
 * when it has already (done will not run), 0 when done(arg, rc) will run
 * on the loop (*out set; rc: 0, FACTUM_ETIMEDOUT, FACTUM_EFAULTED,
 * FACTUM_ENOTFOUND, FACTUM_ECLOSED), or an error (done will not run). */
int rpc_rm_wait(rpc_ctx *ctx, const char *name, uint64_t position, int timeout_ms,
                void (*done)(void *arg, int rc), void *arg, rm_wait **out);
/* The caller no longer listens: 1 if done will never run (w is freed), 0
 * if it runs later all the same (the caller must expect it). */
int rpc_rm_wait_abandon(rpc_ctx *ctx, rm_wait *w);

/* ---- who may do what (RMS-4) ---------------------------------------------- */

/* AUTH_OK, AUTH_DENIED or AUTH_UNAUTHENTICATED (src/auth/acl.h). */
int rpc_rm_may_admin(const struct auth_principal *p);
/* May p read `name`? AUTH_OK, AUTH_DENIED, AUTH_UNAUTHENTICATED, or
 * FACTUM_ENOTFOUND / FACTUM_ECLOSED. */
int rpc_rm_may_read(rpc_ctx *ctx, const struct auth_principal *p, const char *name);

/* ---- names, errors and statuses -------------------------------------------- */

/* Is name a read model's name ([A-Za-z0-9_-], 1..63 characters)? */
int rpc_rm_valid_name(const char *name, size_t len);
/* The gRPC status and HTTP status of a library error. */
int rpc_rm_grpc_status(int rc);
int rpc_rm_http_status(int rc);
/* The message for rc on `name` (err: the library's text, may be "" or NULL). */
void rpc_rm_message(char *buf, size_t n, int rc, const char *name, const char *err);
/* Why `name` is faulted, into buf ("stopped at position P (stream@v): the
 * error"), or "" when it is not (or is gone). Loop thread. */
void rpc_rm_fault_text(rpc_ctx *ctx, const char *name, char *buf, size_t n);
/* The state and lifecycle as text ("running", ...; "async", "inline"). */
const char *rpc_rm_state_name(int state);
const char *rpc_rm_lifecycle_name(int lifecycle);
/* A status as a JSON object (camelCase names, docs/protocol.md). 0 or -ENOMEM. */
int rpc_rm_status_json(base_buf *b, const factum_readmodel_status *st);
/* The definition as shown to a reader who may not administer: a
 * PostgreSQL target's connection string (which may hold a password) is
 * replaced by "(hidden)". Into b; 0 or -ENOMEM (text that is not JSON is
 * copied as a JSON string). */
int rpc_rm_definition_shown(base_buf *b, const char *def, int admin);
/* Read "position", "lag_events" and "lag_ms" of a query's JSON answer (0 when absent). */
void rpc_rm_answer_figures(const char *json, uint64_t *position, uint64_t *lag_events, uint64_t *lag_ms);

#endif
