/*
 * rm_service.c - factum.readmodels.ReadModels (proto/factum/readmodels.proto,
 * docs/protocol.md): create, rebuild, pause, resume, drop, inspect, wait
 * for and query the read models of include/factum_readmodel.h over gRPC.
 * Served when factumd runs read models (--run-readmodels, the default);
 * without them every method answers UNAVAILABLE saying so.
 *
 * Every method is unary. Authorization is decided first, on the loop
 * (RMS-4); then the library's call runs as a job on a worker (RMS-1) or, for
 * Wait and a Query's min_position, as an asynchronous wait (RMS-2, RMS-3).
 * The call is referenced while work is in flight (NET-4); a call the
 * client gave up on is freed when the work comes back (a wait is
 * cancelled at once). The copies a call keeps are charged to it (NET-5).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "factum/readmodels.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/readmodels.h"

enum { M_CREATE, M_REBUILD, M_PAUSE, M_RESUME, M_DROP, M_GET, M_LIST, M_WAIT, M_QUERY, M_PARKED };

typedef struct rm_call {
    rpc_ctx *ctx;
    net_call *c;
    int method;
    int have_request;
    int pending;  /* a job or a wait is in flight (the call is referenced) */
    int closed;   /* the call ended meanwhile: free when it comes back */
    size_t charged;
    rm_job *job;  /* the job being prepared or in flight */
    rm_wait *wait; /* Wait, or a Query's min_position (RMS-3) */
    char name[64];
    uint64_t position; /* Wait */
    int admin_view;    /* Get: the caller may administer (sees connection strings) */
    uint64_t conn_id;  /* its connection: its lane in the workers' queue (RMS-1) */
} rm_call;

/* What a call holds besides its copies, charged to it (NET-5): its state
 * and, for a wait, the waiter here and in the library. */
#define RM_CALL_COST (sizeof(rm_call) + 256)

static void call_free(rm_call *rc)
{
    rm_job_free(rc->job);
    free(rc);
}

static void rm_fail(rm_call *rc, int code, const char *err)
{
    char msg[768];
    rpc_rm_message(msg, sizeof msg, code, rc->name, err);
    rpc_fail(rc->c, rpc_rm_grpc_status(code), msg, NULL, NULL);
}

/* Send m and finish OK. */
static void answer(rm_call *rc, const ProtobufCMessage *m)
{
    int sent = rpc_send(rc->ctx, rc->c, m);
    if (sent == 0) net_call_finish(rc->c, GRPC_OK, NULL, NULL, 0);
    else if (sent == -ENOBUFS) rpc_fail(rc->c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, NULL);
    else net_call_finish(rc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
}

static void answer_empty(rm_call *rc)
{
    Factum__Readmodels__Empty e = FACTUM__READMODELS__EMPTY__INIT;
    answer(rc, &e.base);
}

/* Work is over: release the call, or free everything if it ended meanwhile.
 * Returns 1 if the caller may still answer. */
static int come_back(rm_call *rc)
{
    rc->pending = 0;
    if (rc->closed) {
        net_call *c = rc->c;
        call_free(rc);
        net_call_unref(c);
        return 0;
    }
    return 1;
}

/* ---- statuses ---------------------------------------------------------------- */

static void fill_status(Factum__Readmodels__Status *s, const factum_readmodel_status *st)
{
    factum__readmodels__status__init(s);
    s->name = (char *)st->name;
    s->target = (char *)st->target;
    s->lifecycle = (char *)rpc_rm_lifecycle_name(st->lifecycle);
    s->state = (char *)rpc_rm_state_name(st->state);
    s->generation = st->generation;
    s->position = st->position;
    s->head = st->head;
    s->lag_events = st->lag_events;
    s->lag_seconds = (double)st->lag_ns / 1e9;
    s->applied = st->applied;
    s->skipped = st->skipped;
    s->parked = st->parked;
    s->events_per_second = st->events_per_second;
    s->building = st->building;
    s->building_position = st->building_position;
    s->error = (char *)st->error;
    s->statement = (char *)st->statement;
    s->error_position = st->error_position;
    s->error_stream = (char *)st->error_stream;
    s->error_version = st->error_version;
    s->readers = (char *)st->readers;
    s->live = !!st->live;
}

/* ---- jobs ---------------------------------------------------------------------- */

static const char *audit_action(int op)
{
    switch (op) {
    case RM_CREATE: return "readmodel-created";
    case RM_REBUILD: return "readmodel-rebuilt";
    case RM_PAUSE: return "readmodel-paused";
    case RM_RESUME: return "readmodel-resumed";
    case RM_DROP: return "readmodel-dropped";
    default: return NULL;
    }
}

/* On the loop (RMS-1). */
static void job_done(rm_job *j)
{
    rm_call *rc = j->arg;
    net_call *c = rc->c;
    const char *action = audit_action(j->op);
    if (!j->rc && action) {
        /* create: the name is the definition's */
        if (j->op == RM_CREATE && !rc->name[0]) {
            json_value *v = NULL;
            if (json_parse(j->text, j->text_len, &v) == 0) {
                const json_value *n = json_get(v, "name");
                if (n && n->type == JSON_STRING) snprintf(rc->name, sizeof rc->name, "%s", n->str);
            }
            json_free(v);
        }
        /* without the definition: a PostgreSQL target's connection string may hold a password */
        rpc_audit(rc->ctx, c, action, rc->name, NULL);
    }
    if (!come_back(rc)) return;
    rc->job = NULL;
    if (j->rc) {
        rm_fail(rc, j->rc, j->err);
    } else if (j->op == RM_GET) {
        Factum__Readmodels__GetResp r = FACTUM__READMODELS__GET_RESP__INIT;
        Factum__Readmodels__Status s;
        fill_status(&s, &j->st);
        r.status = &s;
        base_buf d = {0};
        if (rpc_rm_definition_shown(&d, j->out ? j->out : "", rc->admin_view) || base_buf_append(&d, "", 1)) {
            rm_fail(rc, -ENOMEM, NULL);
        } else {
            r.definition = (char *)d.data;
            answer(rc, &r.base);
        }
        base_buf_free(&d);
    } else if (j->op == RM_LIST) {
        Factum__Readmodels__ListResp r = FACTUM__READMODELS__LIST_RESP__INIT;
        Factum__Readmodels__Status *s = calloc(j->n_list ? j->n_list : 1, sizeof *s);
        Factum__Readmodels__Status **sp = calloc(j->n_list ? j->n_list : 1, sizeof *sp);
        if (!s || !sp) {
            rm_fail(rc, -ENOMEM, NULL);
        } else {
            for (size_t i = 0; i < j->n_list; i++) {
                fill_status(&s[i], &j->list[i]);
                sp[i] = &s[i];
            }
            r.n_read_models = j->n_list;
            r.read_models = sp;
            answer(rc, &r.base);
        }
        free(s);
        free(sp);
    } else if (j->op == RM_QUERY || j->op == RM_PARKED) {
        Factum__Readmodels__QueryResp r = FACTUM__READMODELS__QUERY_RESP__INIT;
        r.result = j->out ? j->out : "";
        rpc_rm_answer_figures(r.result, &r.position, &r.lag_events, &r.lag_ms);
        answer(rc, &r.base);
    } else {
        answer_empty(rc);
    }
    rm_job_free(j);
    net_call_unref(c);
}

/* Hand the prepared job to a worker; on failure answer now. */
static void run_job(rm_call *rc)
{
    rm_job *j = rc->job;
    j->done = job_done;
    j->arg = rc;
    j->deadline_ns = net_call_deadline(rc->c);
    j->conn = rc->conn_id;
    net_call_ref(rc->c);
    rc->pending = 1;
    int r = rpc_rm_submit(rc->ctx, j);
    if (r == 0) return;
    rc->pending = 0;
    net_call_unref(rc->c);
    rm_fail(rc, r, NULL);
}

/* Keep a copy of n bytes of s in *dst, charged to the call. */
static int keep(rm_call *rc, char **dst, const char *s, size_t n)
{
    if (net_call_charge(rc->c, n + 1)) return -ENOBUFS;
    if (rm_dup(dst, s, n)) {
        net_call_release(rc->c, n + 1);
        return -ENOMEM;
    }
    rc->charged += n + 1;
    return 0;
}

static int set_name(rm_call *rc, const char *name)
{
    if (!name) name = "";
    size_t n = strlen(name);
    if (!rpc_rm_valid_name(name, n)) {
        rpc_fail(rc->c, GRPC_INVALID_ARGUMENT,
                 "a read model's name is 1 to 63 characters of A-Z, a-z, 0-9, '_' and '-'", NULL, NULL);
        return -1;
    }
    memcpy(rc->name, name, n + 1);
    return 0;
}

/* ---- waits (RMS-2) ------------------------------------------------------------- */

static void query_after_wait(rm_call *rc);

static void answer_wait(rm_call *rc)
{
    Factum__Readmodels__WaitResp w = FACTUM__READMODELS__WAIT_RESP__INIT;
    factum_readmodel_status st;
    w.position = rc->ctx->readmodels && factum_readmodel_get_status(rc->ctx->readmodels, rc->name, &st) == 0
                     ? st.position
                     : rc->position;
    answer(rc, &w.base);
}

static void wait_done(void *arg, int r)
{
    rm_call *rc = arg;
    net_call *c = rc->c;
    rc->wait = NULL;
    if (!come_back(rc)) return;
    if (r == FACTUM_ETIMEDOUT) {
        char why[160];
        snprintf(why, sizeof why, "did not reach position %" PRIu64 " in time",
                 rc->method == M_QUERY ? rc->job->qo.min_position : rc->position);
        rm_fail(rc, r, why);
    } else if (r == FACTUM_EFAULTED) {
        char why[600];
        rpc_rm_fault_text(rc->ctx, rc->name, why, sizeof why);
        rm_fail(rc, r, why);
    } else if (r) rm_fail(rc, r, NULL);
    else if (rc->method == M_QUERY) query_after_wait(rc);
    else answer_wait(rc);
    net_call_unref(c);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Start a wait: 1 when the position is applied already, 0 when wait_done
 * follows, -1 when the call was failed. */
static int start_wait(rm_call *rc, uint64_t position, int timeout_ms)
{
    uint64_t dl = net_call_deadline(rc->c);
    if (dl) {
        uint64_t now = mono_ns();
        int left = dl > now ? (int)((dl - now) / 1000000u) : 0;
        if (left < timeout_ms) timeout_ms = left;
    }
    int r = rpc_rm_wait(rc->ctx, rc->name, position, timeout_ms, wait_done, rc, &rc->wait);
    if (r == 1) return 1;
    if (r < 0) {
        char why[600] = "";
        if (r == FACTUM_EFAULTED) rpc_rm_fault_text(rc->ctx, rc->name, why, sizeof why);
        rm_fail(rc, r, why);
        return -1;
    }
    net_call_ref(rc->c);
    rc->pending = 1;
    return 0;
}

/* ---- the requests --------------------------------------------------------------- */

static void query_after_wait(rm_call *rc)
{
    rc->job->qo.min_position = 0; /* reached (RMS-3) */
    run_job(rc);
}

static int authorize(rm_call *rc, int admin)
{
    const auth_principal *p = rpc_principal(rc->c);
    int r = admin ? rpc_rm_may_admin(p) : rpc_rm_may_read(rc->ctx, p, rc->name);
    if (r == AUTH_OK) return 0;
    if (r == AUTH_DENIED || r == AUTH_UNAUTHENTICATED) rpc_fail_auth(rc->c, r);
    else rm_fail(rc, r, NULL);
    return -1;
}

static void rm_message(net_call *c, const uint8_t *msg, size_t len)
{
    rm_call *rc = net_call_state(c);
    if (!rc || rc->have_request) return; /* unary: one request */
    rc->have_request = 1;
    if (net_call_charge(c, RM_CALL_COST)) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, NULL);
        return;
    }
    rc->charged += RM_CALL_COST;
    rc->conn_id = net_call_conn_id(c);
    if (!rc->ctx->readmodels) {
        rm_fail(rc, FACTUM_ECLOSED, NULL);
        return;
    }
    static const int ops[] = {[M_CREATE] = RM_CREATE, [M_REBUILD] = RM_REBUILD, [M_PAUSE] = RM_PAUSE,
                              [M_RESUME] = RM_RESUME, [M_DROP] = RM_DROP,       [M_GET] = RM_GET,
                              [M_LIST] = RM_LIST,     [M_WAIT] = -1,            [M_QUERY] = RM_QUERY,
                              [M_PARKED] = RM_PARKED};
    int admin = rc->method <= M_DROP;
    /* Administration is refused before the request is read (as the
     * Projections service does); reading needs the name first. */
    if (admin && authorize(rc, 1)) return;
    if (ops[rc->method] >= 0 && !(rc->job = rm_job_new(rc->ctx, ops[rc->method]))) {
        rm_fail(rc, -ENOMEM, NULL);
        return;
    }
    pb_alloc pa;
    int r = 0;
    switch (rc->method) {
    case M_CREATE: {
        Factum__Readmodels__CreateReq *req =
            rpc_unpack(c, &factum__readmodels__create_req__descriptor, msg, len, &pa, "CreateReq");
        if (!req) return;
        const char *d = req->definition ? req->definition : "";
        r = keep(rc, &rc->job->text, d, strlen(d));
        rc->job->text_len = strlen(d);
        rpc_unpack_free(req, &pa);
        break;
    }
    case M_REBUILD: {
        Factum__Readmodels__RebuildReq *req =
            rpc_unpack(c, &factum__readmodels__rebuild_req__descriptor, msg, len, &pa, "RebuildReq");
        if (!req) return;
        if (set_name(rc, req->name)) {
            rpc_unpack_free(req, &pa);
            return;
        }
        r = rm_dup(&rc->job->name, rc->name, strlen(rc->name));
        if (!r && req->definition && req->definition[0]) {
            rc->job->text_len = strlen(req->definition);
            r = keep(rc, &rc->job->text, req->definition, rc->job->text_len);
        }
        rpc_unpack_free(req, &pa);
        break;
    }
    case M_PAUSE:
    case M_RESUME:
    case M_DROP:
    case M_GET: {
        Factum__Readmodels__NameReq *req =
            rpc_unpack(c, &factum__readmodels__name_req__descriptor, msg, len, &pa, "NameReq");
        if (!req) return;
        int bad = set_name(rc, req->name);
        rpc_unpack_free(req, &pa);
        if (bad) return;
        if (rc->method == M_GET) {
            if (authorize(rc, 0)) return;
            rc->admin_view = rpc_rm_may_admin(rpc_principal(c)) == AUTH_OK;
        }
        r = rm_dup(&rc->job->name, rc->name, strlen(rc->name));
        break;
    }
    case M_LIST: {
        Factum__Readmodels__Empty *req =
            rpc_unpack(c, &factum__readmodels__empty__descriptor, msg, len, &pa, "Empty");
        if (!req) return;
        rpc_unpack_free(req, &pa);
        /* Listing shows names and progress, not data: any authenticated
         * user (as /metrics shows them). */
        const auth_principal *p = rpc_principal(c);
        if (!(p->flags & AUTH_P_SYSTEM) && !auth_principal_authenticated(auth_principal_current(p))) {
            rpc_fail_auth(c, AUTH_UNAUTHENTICATED);
            return;
        }
        break;
    }
    case M_WAIT: {
        Factum__Readmodels__WaitReq *req =
            rpc_unpack(c, &factum__readmodels__wait_req__descriptor, msg, len, &pa, "WaitReq");
        if (!req) return;
        int bad = set_name(rc, req->name);
        uint64_t pos = req->position;
        int timeout = req->timeout_ms;
        rpc_unpack_free(req, &pa);
        if (bad || authorize(rc, 0)) return;
        if (timeout < 0) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "timeout_ms must be 0 (the default) or more", NULL, NULL);
            return;
        }
        rc->position = pos;
        int w = start_wait(rc, pos, timeout ? timeout : RM_DEFAULT_WAIT_MS);
        if (w == 1) answer_wait(rc);
        return;
    }
    case M_QUERY: {
        Factum__Readmodels__QueryReq *req =
            rpc_unpack(c, &factum__readmodels__query_req__descriptor, msg, len, &pa, "QueryReq");
        if (!req) return;
        int bad = set_name(rc, req->name);
        if (!bad && authorize(rc, 0)) bad = 1;
        if (!bad) {
            rm_job *j = rc->job;
            r = rm_dup(&j->name, rc->name, strlen(rc->name));
            const char *sql = req->sql ? req->sql : "";
            if (!r) r = keep(rc, &j->text, sql, strlen(sql));
            j->text_len = strlen(sql);
            if (!r && req->params && req->params[0]) r = keep(rc, &j->params, req->params, strlen(req->params));
            j->qo.min_position = req->min_position;
            if (req->row_limit) j->qo.row_limit = req->row_limit;
            if (req->time_limit_ms > RM_MAX_QUERY_MS) {
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "time_limit_ms is at most 60000", NULL, NULL);
                bad = 1;
            }
            if (req->time_limit_ms) j->qo.time_limit_ms = req->time_limit_ms;
            if (req->wait_ms) j->qo.wait_ms = req->wait_ms > RM_MAX_WAIT_MS ? RM_MAX_WAIT_MS : (int)req->wait_ms;
            if (!bad && req->as_of_option_case == FACTUM__READMODELS__QUERY_REQ__AS_OF_OPTION_AS_OF) {
                const char *t = req->as_of ? req->as_of : "";
                if (factum_time_parse(t, strlen(t), &j->asof_ns)) {
                    rpc_fail(c, GRPC_INVALID_ARGUMENT, "as_of must be an RFC 3339 time (2026-03-15T00:00:00Z)", NULL,
                             NULL);
                    bad = 1;
                }
                j->asof = j->asof_time = 1;
            } else if (req->as_of_option_case == FACTUM__READMODELS__QUERY_REQ__AS_OF_OPTION_AS_OF_POSITION) {
                j->asof = 1;
                j->asof_pos = req->as_of_position;
            }
            if (j->asof) j->qo.min_position = 0; /* the past: nothing to wait for */
        }
        rpc_unpack_free(req, &pa);
        if (bad) return;
        if (r) break;
        if (rc->job->qo.min_position) {
            int w = start_wait(rc, rc->job->qo.min_position, rc->job->qo.wait_ms);
            if (w != 1) return; /* query_after_wait follows, or the call failed */
            rc->job->qo.min_position = 0;
        }
        break;
    }
    case M_PARKED: {
        Factum__Readmodels__ParkedReq *req =
            rpc_unpack(c, &factum__readmodels__parked_req__descriptor, msg, len, &pa, "ParkedReq");
        if (!req) return;
        int bad = set_name(rc, req->name);
        rc->job->limit = req->limit ? req->limit : 100;
        rpc_unpack_free(req, &pa);
        if (bad || authorize(rc, 0)) return;
        r = rm_dup(&rc->job->name, rc->name, strlen(rc->name));
        break;
    }
    }
    if (r) {
        rm_fail(rc, r, NULL);
        return;
    }
    run_job(rc);
}

static void rm_half_close(net_call *c)
{
    rm_call *rc = net_call_state(c);
    if (rc && !rc->have_request && !net_call_done(c))
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request message is missing", NULL, NULL);
}

static void rm_close(net_call *c)
{
    rm_call *rc = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!rc) return;
    if (rc->charged) net_call_release(c, rc->charged);
    rc->charged = 0;
    if (rc->wait && rpc_rm_wait_abandon(rc->ctx, rc->wait)) {
        /* cancelled: wait_done will not run; let go of what it held */
        rc->wait = NULL;
        rc->pending = 0;
        call_free(rc);
        net_call_unref(c);
        return;
    }
    if (rc->job && rc->pending) atomic_store(&rc->job->abandoned, 1); /* not started: skipped */
    if (rc->pending) rc->closed = 1; /* job_done or wait_done frees it */
    else call_free(rc);
}

static int rm_start(net_call *c, void *svc, int method)
{
    rm_call *rc = calloc(1, sizeof *rc);
    if (!rc) return -ENOMEM;
    rc->ctx = svc;
    rc->c = c;
    rc->method = method;
    net_call_set_state(c, rc);
    return 0;
}

#define START(fn, m)                                                                                         \
    static int fn(net_call *c, void *svc)                                                                    \
    {                                                                                                        \
        return rm_start(c, svc, m);                                                                          \
    }
START(create_start, M_CREATE)
START(rebuild_start, M_REBUILD)
START(pause_start, M_PAUSE)
START(resume_start, M_RESUME)
START(drop_start, M_DROP)
START(get_start, M_GET)
START(list_start, M_LIST)
START(wait_start, M_WAIT)
START(query_start, M_QUERY)
START(parked_start, M_PARKED)
#undef START

#define RM(method, start)                                                                                    \
    {                                                                                                        \
        "/factum.readmodels.ReadModels/" method, start, rm_message, rm_half_close, NULL, rm_close, NULL      \
    }
const net_method rpc_rm_methods[] = {
    RM("Create", create_start), RM("Rebuild", rebuild_start), RM("Pause", pause_start),
    RM("Resume", resume_start), RM("Drop", drop_start),       RM("Get", get_start),
    RM("List", list_start),     RM("Wait", wait_start),       RM("Query", query_start),
    RM("Parked", parked_start),
};
#undef RM
const size_t rpc_rm_n = sizeof rpc_rm_methods / sizeof *rpc_rm_methods;
