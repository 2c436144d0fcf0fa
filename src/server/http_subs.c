/*
 * http_subs.c - consumer groups and catch-up subscriptions over HTTP
 * (docs/protocol.md), for the admin web UI (ADR 0029) and for scripts:
 *
 *   GET    /api/subscriptions                the groups with their lag, and
 *                                            the open catch-up subscriptions
 *   GET    /api/subscription?stream&group    one group in detail
 *   PUT    /api/subscription?stream&group    create it (settings as JSON)
 *   POST   /api/subscription?stream&group    update it (the keys given)
 *   DELETE /api/subscription?stream&group    delete it
 *   POST   /api/subscriptions/replay?...     replay its parked messages
 *   POST   /api/subscriptions/truncate?...   forget them
 *
 * and KurrentDB's paths for the same: GET /subscriptions[/S], GET
 * /subscriptions/S/G/info, PUT/POST/DELETE /subscriptions/S/G, POST
 * /subscriptions/S/G/replayParked. A stream S of "$all" means $all.
 *
 * Each is checked as its gRPC call is (the PersistentSubscriptions rules of
 * src/auth/policy.c). A create, update or delete is answered once the
 * groups' definitions are durable (PS-5), later (NET-9), never by waiting
 * on the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/policy.h"
#include "auth/principal.h"
#include "base/json.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"
#include "server/server.h"

#define LIVE_MAX 1000 /* catch-up subscriptions listed at most (the count is exact) */

/* ---- the list ------------------------------------------------------------ */

typedef struct list_ctx {
    base_buf *b;
    size_t n;
} list_ctx;

static void group_one(void *arg, const char *src, const char *group, uint64_t lag_events, double lag_seconds,
                      uint64_t inflight, uint64_t parked, size_t consumers)
{
    list_ctx *c = arg;
    base_buf *b = c->b;
    if (c->n++) base_buf_append(b, ",", 1);
    base_buf_append(b, "{\"stream\":", 10);
    json_write_string(b, src, strlen(src));
    base_buf_append(b, ",\"group\":", 9);
    json_write_string(b, group, strlen(group));
    base_buf_printf(b,
                    ",\"lagEvents\":%" PRIu64 ",\"lagSeconds\":%.3f,\"inFlight\":%" PRIu64
                    ",\"parked\":%" PRIu64 ",\"consumers\":%zu}",
                    lag_events, lag_seconds, inflight, parked, consumers);
}

static void live_one(void *arg, const rpc_sub_view *v)
{
    list_ctx *c = arg;
    base_buf *b = c->b;
    if (c->n++) base_buf_append(b, ",", 1);
    base_buf_append(b, "{\"id\":", 6);
    json_write_string(b, v->id, strlen(v->id));
    base_buf_append(b, ",\"stream\":", 10);
    json_write_string(b, v->source, strlen(v->source));
    base_buf_append(b, ",\"user\":", 8);
    json_write_string(b, v->user, strlen(v->user));
    base_buf_append(b, ",\"from\":", 8);
    json_write_string(b, v->peer, strlen(v->peer));
    base_buf_printf(b,
                    ",\"filtered\":%s,\"resolveLinks\":%s,\"live\":%s,\"startedNs\":%" PRId64
                    ",\"position\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lagEvents\":%" PRIu64
                    ",\"lagSeconds\":%.3f}",
                    v->filtered ? "true" : "false", v->resolve_links ? "true" : "false", v->live ? "true" : "false",
                    v->started_ns, v->position, v->delivered, v->lag_events, v->lag_seconds);
}

static void list(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    if (!srv_may_op(st, req, AUTH_OP_SUBS_STATISTICS, NULL, r)) return;
    list_ctx c = {&r->body, 0};
    base_buf_append(&r->body, "{\"groups\":[", 11);
    rpc_ps_each(&st->rpc, group_one, &c);
    base_buf_append(&r->body, "],\"live\":[", 10);
    c.n = 0;
    rpc_sub_each(&st->rpc, LIVE_MAX, live_one, &c);
    base_buf_printf(&r->body, "],\"liveSubscriptions\":%" PRIu64 "}\n", st->rpc.st.subs_active);
    r->status = 200;
    r->content_type = "application/json";
}

/* ---- KurrentDB's list: every group's detail (of one source) ------------ */

static void list_detailed(srv_state *st, const char *only, net_http_resp *r)
{
    size_t k;
    int rc = base_buf_append(&r->body, "[", 1);
    if (!rc) rc = rpc_ps_describe_all(&st->rpc, only, &r->body, &k);
    if (rc) {
        r->body.len = 0;
        srv_json_fail(r, 503, "out of memory");
    } else if (only && !k) {
        r->body.len = 0;
        srv_json_fail(r, 404, "no consumer groups on this stream");
    } else {
        base_buf_append(&r->body, "]\n", 2);
        r->status = 200;
        r->content_type = "application/json";
    }
}

/* ---- one group: detail, replay, truncate --------------------------------- */

static void describe(srv_state *st, const char *stream, const char *group, net_http_resp *r)
{
    int rc = rpc_ps_describe(&st->rpc, stream, group, &r->body);
    if (rc) {
        r->body.len = 0;
        srv_json_fail(r, rc == FACTUM_ENOTFOUND ? 404 : 503,
                      rc == FACTUM_ENOTFOUND ? "no such consumer group" : "out of memory");
        return;
    }
    base_buf_append(&r->body, "\n", 1);
    r->status = 200;
    r->content_type = "application/json";
}

/* Replay (truncate 0) or truncate (1) the parked messages. */
static void parked(srv_state *st, const net_http_req *req, const char *stream, const char *group, int truncate,
                   net_http_resp *r)
{
    uint64_t stop = 0;
    int hs = srv_qs_u64(req->query, "stopAt", INT64_MAX, &stop);
    if (hs < 0) {
        srv_json_fail(r, 400, "stopAt: a count of messages");
        return;
    }
    if (!srv_may_op(st, req, AUTH_OP_SUBS_REPLAY_PARKED, NULL, r)) return;
    int64_t n = hs == 1 ? (int64_t)stop : -1;
    int rc = truncate ? rpc_ps_truncate_parked(&st->rpc, stream, group, n)
                      : rpc_ps_replay_parked(&st->rpc, stream, group, n);
    if (rc) {
        srv_json_fail(r, 404, "no such consumer group");
        return;
    }
    char what[FACTUM_MAX_STREAM_LEN + 300];
    snprintf(what, sizeof what, "%s::%.256s", stream ? stream : "$all", group);
    rpc_audit_as(&st->rpc, req->auth, NULL, truncate ? "parked-truncated" : "parked-replayed", what, NULL);
    r->status = 200;
    r->content_type = "application/json";
    base_buf_append(&r->body, "{}\n", 3);
}

/* ---- create, update, delete (answered when durable) ----------------------- */

typedef struct change_job {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p; /* referenced */
    int op;
    char what[FACTUM_MAX_STREAM_LEN + 300];
} change_job;

static void change_answer(change_job *j, int rc, const char *why)
{
    net_http_resp r = {0};
    if (rc) {
        int status = rc == FACTUM_EEXISTS      ? 409
                     : rc == FACTUM_ENOTFOUND  ? 404
                     : rc == FACTUM_EINVAL || rc == FACTUM_EBADREGEX || rc == FACTUM_EBADNAME ? 400
                     : rc == -ENOMEM || rc == -EAGAIN ? 503
                                                      : 500;
        srv_json_fail(&r, status, why && why[0] ? why : factum_strerror(rc));
    } else {
        static const char *const action[] = {"subscription-group-created", "subscription-group-updated",
                                             "subscription-group-deleted"};
        rpc_audit_as(&j->st->rpc, j->p, NULL, action[j->op], j->what, NULL);
        r.status = j->op == RPC_PS_CREATE ? 201 : 200;
        r.content_type = "application/json";
        base_buf_append(&r.body, "{}\n", 3);
    }
    net_http_answer(j->later, &r);
    base_buf_free(&r.body);
    base_buf_free(&r.headers);
    auth_principal_unref(j->p);
    free(j);
}

static void change_saved(void *arg, int rc)
{
    change_answer(arg, rc, NULL);
}

static void change(srv_state *st, const net_http_req *req, const char *stream, const char *group, int op,
                   net_http_resp *r)
{
    static const int ops[] = {AUTH_OP_SUBS_CREATE, AUTH_OP_SUBS_UPDATE, AUTH_OP_SUBS_DELETE};
    if (!srv_may_op(st, req, ops[op], NULL, r)) return;
    change_job *j = calloc(1, sizeof *j);
    if (!j || !(j->later = net_http_defer(req))) {
        free(j);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    j->st = st;
    j->op = op;
    j->p = auth_principal_ref(req->auth ? req->auth : auth_principal_system());
    snprintf(j->what, sizeof j->what, "%s::%.256s", stream ? stream : "$all", group);
    char why[200];
    int rc = rpc_ps_change(&st->rpc, op, stream, group, (const char *)req->body, req->body_len, why, sizeof why,
                           change_saved, j);
    if (rc) change_answer(j, rc, why);
}

/* ---- routing ---------------------------------------------------------------- */

/* The change a method makes to a group: PUT creates, POST updates, DELETE
 * deletes (as KurrentDB's paths do); -1 for another method. */
static int change_op(const char *m)
{
    return !strcmp(m, "PUT") ? RPC_PS_CREATE : !strcmp(m, "POST") ? RPC_PS_UPDATE : !strcmp(m, "DELETE") ? RPC_PS_DELETE : -1;
}

/* The group a request names: stream (NULL: $all) and group, from the query
 * string (/api/...) or two path segments (KurrentDB's). */
typedef struct target {
    base_buf stream, group;
} target;

static void target_free(target *t)
{
    base_buf_free(&t->stream);
    base_buf_free(&t->group);
}

static const char *src_of(const target *t)
{
    return strcmp((const char *)t->stream.data, "$all") ? (const char *)t->stream.data : NULL;
}

static int target_qs(const net_http_req *req, target *t)
{
    return srv_qs_get(req->query, "stream", &t->stream) == 1 && t->stream.len > 1 &&
                   srv_qs_get(req->query, "group", &t->group) == 1 && t->group.len > 1
               ? 0
               : -1;
}

static int api(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    const char *p = req->path, *m = req->method;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    if (!strcmp(p, "/api/subscriptions")) {
        if (get) list(st, req, r);
        else srv_json_fail(r, 405, "method not allowed");
        return 1;
    }
    int replay = !strcmp(p, "/api/subscriptions/replay"), truncate = !strcmp(p, "/api/subscriptions/truncate");
    if (strcmp(p, "/api/subscription") && !replay && !truncate) return 0;
    if ((replay || truncate) && strcmp(m, "POST")) {
        srv_json_fail(r, 405, "method not allowed");
        return 1;
    }
    target t = {0};
    if (target_qs(req, &t)) {
        srv_json_fail(r, 400, "bad parameters: stream ($all for $all) and group");
    } else if (replay || truncate) {
        parked(st, req, src_of(&t), (const char *)t.group.data, truncate, r);
    } else if (get) {
        if (srv_may_op(st, req, AUTH_OP_SUBS_STATISTICS, NULL, r))
            describe(st, src_of(&t), (const char *)t.group.data, r);
    } else if (change_op(m) >= 0) {
        change(st, req, src_of(&t), (const char *)t.group.data, change_op(m), r);
    } else {
        srv_json_fail(r, 405, "method not allowed");
    }
    target_free(&t);
    return 1;
}

/* KurrentDB's /subscriptions[/S[/G[/info|/replayParked]]]. */
static int kurrent(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    const char *p = req->path, *m = req->method;
    if (strncmp(p, "/subscriptions", 14) || (p[14] && p[14] != '/')) return 0;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    const char *seg[4];
    size_t len[4], n = 0;
    for (const char *s = p + 14; *s == '/' && s[1];) {
        if (n == 4) {
            n = 5;
            break;
        }
        s++;
        const char *e = strchr(s, '/');
        seg[n] = s;
        len[n] = e ? (size_t)(e - s) : strlen(s);
        n++;
        s += len[n - 1];
    }
    target t = {0};
    const char *tail = n == 3 ? seg[2] : "";
    size_t tl = n == 3 ? len[2] : 0;
    if (n > 3 || (n >= 1 && srv_pct_decode(seg[0], len[0], 0, &t.stream)) ||
        (n >= 2 && srv_pct_decode(seg[1], len[1], 0, &t.group)) || (n >= 1 && t.stream.len <= 1) ||
        (n >= 2 && t.group.len <= 1)) {
        srv_json_fail(r, n > 3 ? 404 : 400, n > 3 ? "not found" : "bad stream or group in the path");
    } else if (n == 0 || n == 1) {
        if (!get) srv_json_fail(r, 405, "method not allowed");
        else if (srv_may_op(st, req, AUTH_OP_SUBS_STATISTICS, NULL, r))
            list_detailed(st, n ? (const char *)t.stream.data : NULL, r);
    } else if (n == 3 && tl == 4 && !memcmp(tail, "info", 4)) {
        if (!get) srv_json_fail(r, 405, "method not allowed");
        else if (srv_may_op(st, req, AUTH_OP_SUBS_STATISTICS, NULL, r))
            describe(st, src_of(&t), (const char *)t.group.data, r);
    } else if (n == 3 && tl == 12 && !memcmp(tail, "replayParked", 12)) {
        if (strcmp(m, "POST")) srv_json_fail(r, 405, "method not allowed");
        else parked(st, req, src_of(&t), (const char *)t.group.data, 0, r);
    } else if (n == 3) {
        srv_json_fail(r, 404, "not found");
    } else if (change_op(m) >= 0) {
        change(st, req, src_of(&t), (const char *)t.group.data, change_op(m), r);
    } else {
        /* GET /subscriptions/S/G is KurrentDB's competing consumers over
         * AtomPub, which factumd does not serve: gRPC's Read does that. */
        srv_json_fail(r, 405, "method not allowed: consumers read over gRPC (PersistentSubscriptions.Read)");
    }
    target_free(&t);
    return 1;
}

int srv_http_subs(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    return api(st, req, resp) || kurrent(st, req, resp);
}
