/*
 * http_proj.c - the projections as JSON, for the admin web UI (ADR 0029,
 * docs/protocol.md) and scripts: list, one with its query, state and
 * result, and the commands (create, update, enable, disable, reset,
 * delete), each checked against KurrentDB's Projections operation rules.
 * Commands run on the projection manager's thread (they take a callback);
 * the answer is given later on the loop (NET-9).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/policy.h"
#include "auth/principal.h"
#include "base/json.h"
#include "factum_projection.h"
#include "rpc/rpc.h"
#include "server/server.h"

static const char *state_name(int s)
{
    static const char *const n[] = {"stopped", "running", "faulted", "stopping", "completed"};
    return s >= 0 && s <= 4 ? n[s] : "unknown";
}

static const char *mode_name(int m)
{
    return m == FACTUM_PROJECTION_ONE_TIME    ? "one-time"
           : m == FACTUM_PROJECTION_TRANSIENT ? "transient"
                                              : "continuous";
}

static void status_json(base_buf *b, const factum_projection_status *s)
{
    base_buf_append(b, "{\"name\":", 8);
    json_write_string(b, s->name, strlen(s->name));
    base_buf_append(b, ",\"handler\":", 11);
    json_write_string(b, s->handler, strlen(s->handler));
    base_buf_printf(
        b, ",\"mode\":\"%s\",\"system\":%s,\"enabled\":%s,\"state\":\"%s\",\"reason\":", mode_name(s->mode),
        s->system ? "true" : "false", s->enabled ? "true" : "false", state_name(s->state));
    json_write_string(b, s->reason, strlen(s->reason));
    base_buf_printf(b,
                    ",\"epoch\":%lld,\"version\":%lld,\"position\":%" PRIu64 ",\"checkpoint\":%" PRIu64
                    ",\"eventsProcessed\":%" PRIu64 ",\"eventsEmitted\":%" PRIu64 ",\"lagEvents\":%" PRIu64
                    ",\"lagSeconds\":%.3f,\"progress\":%.2f,\"eventsPerSecond\":%.1f,\"emitEnabled\":%s}",
                    (long long)s->epoch, (long long)s->version, s->position, s->checkpoint,
                    s->events_processed, s->events_emitted, s->lag_events, (double)s->lag_ns / 1e9,
                    s->progress, s->events_per_second, s->emit_enabled ? "true" : "false");
}

typedef struct list_ctx {
    base_buf *b;
    size_t n;
} list_ctx;

static int list_one(void *arg, const factum_projection_status *s)
{
    list_ctx *c = arg;
    if (c->n++) base_buf_append(c->b, ",", 1);
    status_json(c->b, s);
    return 0;
}

/* The projection's state or result, as JSON text ("" none yet: null). */
static void doc(base_buf *b, const char *key, int rc, const char *json, size_t len)
{
    base_buf_printf(b, ",\"%s\":", key);
    if (rc || !len || json_validate(json, len))
        base_buf_append(b, "null", 4);
    else
        base_buf_append(b, json, len);
}

static void one(srv_state *st, const char *name, net_http_resp *r)
{
    factum_projection_status s;
    int rc = factum_projection_get_status(st->proj, name, &s);
    if (rc) {
        srv_json_fail(r, rc == FACTUM_ENOTFOUND ? 404 : 500,
                      rc == FACTUM_ENOTFOUND ? "no such projection" : factum_strerror(rc));
        return;
    }
    base_buf *b = &r->body;
    base_buf_append(b, "{\"status\":", 10);
    status_json(b, &s);
    char *q = NULL, *state = NULL, *result = NULL;
    size_t sl = 0, rl = 0;
    if (factum_projection_get_query(st->proj, name, &q) == 0) {
        base_buf_append(b, ",\"query\":", 9);
        json_write_string(b, q, strlen(q));
    }
    int src = s.system ? -1 : factum_projection_get_state(st->proj, name, NULL, &state, &sl);
    int rrc = s.system ? -1 : factum_projection_get_result(st->proj, name, NULL, &result, &rl);
    doc(b, "state", src, state, sl);
    doc(b, "result", rrc, result, rl);
    base_buf_append(b, "}\n", 2);
    free(q);
    free(state);
    free(result);
    r->status = 200;
    r->content_type = "application/json";
}

/* ---- commands ----------------------------------------------------------- */

typedef struct cmd_job {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p;
    char action[32];
    char name[256];
    char *query;
    int rc;
} cmd_job;

static void cmd_answer(void *arg)
{
    cmd_job *j = arg;
    net_http_resp r = {0};
    if (j->rc) {
        int s = j->rc == FACTUM_ENOTFOUND   ? 404
                : j->rc == FACTUM_EEXISTS   ? 409
                : j->rc == FACTUM_EBADSTATE ? 409
                : j->rc == FACTUM_EINVAL    ? 400
                : j->rc == FACTUM_ECLOSED   ? 503
                                            : 500;
        srv_json_fail(&r, s, factum_strerror(j->rc));
    } else {
        rpc_audit_as(&j->st->rpc, j->p, NULL, j->action, j->name, NULL);
        r.status = 200;
        r.content_type = "application/json";
        base_buf_append(&r.body, "{}\n", 3);
    }
    net_http_answer(j->later, &r);
    base_buf_free(&r.body);
    base_buf_free(&r.headers);
    if (j->p) auth_principal_unref(j->p);
    free(j->query);
    free(j);
}

static void cmd_done(void *ctx, int rc)
{
    cmd_job *j = ctx;
    j->rc = rc;
    while (rpc_to_loop(&j->st->rpc, cmd_answer, j))
        usleep(1000); /* out of memory: the answer must still be given, once */
}

enum { C_CREATE, C_UPDATE, C_ENABLE, C_DISABLE, C_RESET, C_DELETE };

static void command(srv_state *st, const net_http_req *req, net_http_resp *r, int c, const char *name)
{
    static const int ops[] = {AUTH_OP_PROJ_CREATE,  AUTH_OP_PROJ_UPDATE, AUTH_OP_PROJ_ENABLE,
                              AUTH_OP_PROJ_DISABLE, AUTH_OP_PROJ_RESET,  AUTH_OP_PROJ_DELETE};
    static const char *const actions[] = {"projection-created",  "projection-updated", "projection-enabled",
                                          "projection-disabled", "projection-reset",   "projection-deleted"};
    if (!srv_may_op(st, req, ops[c], NULL, r)) return;
    if ((c == C_CREATE || c == C_UPDATE) && (!req->body_len || memchr(req->body, 0, req->body_len))) {
        srv_json_fail(r, 400, "the body must be the projection's query (JavaScript, no NUL)");
        return;
    }
    cmd_job *j = calloc(1, sizeof *j);
    if (!j ||
        ((c == C_CREATE || c == C_UPDATE) && !(j->query = strndup((const char *)req->body, req->body_len)))) {
        free(j);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    j->st = st;
    snprintf(j->action, sizeof j->action, "%s", actions[c]);
    snprintf(j->name, sizeof j->name, "%s", name);
    if (!(j->later = net_http_defer(req))) {
        free(j->query);
        free(j);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    j->p = auth_principal_ref(req->auth ? req->auth : auth_principal_system());
    base_buf v = {0};
    int rc;
    if (c == C_CREATE) {
        factum_projection_def d;
        factum_projection_def_init(&d);
        d.name = j->name;
        d.query = j->query;
        if (srv_qs_get(req->query, "mode", &v) == 1)
            d.mode = !strcmp((const char *)v.data, "one-time")    ? FACTUM_PROJECTION_ONE_TIME
                     : !strcmp((const char *)v.data, "transient") ? FACTUM_PROJECTION_TRANSIENT
                                                                  : FACTUM_PROJECTION_CONTINUOUS;
        if (srv_qs_get(req->query, "emit", &v) == 1) d.emit_enabled = !strcmp((const char *)v.data, "true");
        rc = factum_projection_create(st->proj, &d, cmd_done, j);
    } else if (c == C_UPDATE) {
        int emit = -1;
        if (srv_qs_get(req->query, "emit", &v) == 1) emit = !strcmp((const char *)v.data, "true");
        rc = factum_projection_update(st->proj, j->name, j->query, emit, cmd_done, j);
    } else if (c == C_ENABLE) {
        rc = factum_projection_enable(st->proj, j->name, cmd_done, j);
    } else if (c == C_DISABLE) {
        rc = factum_projection_disable(st->proj, j->name, cmd_done, j);
    } else if (c == C_RESET) {
        rc = factum_projection_reset(st->proj, j->name, cmd_done, j);
    } else {
        unsigned flags = 0;
        if (srv_qs_get(req->query, "deleteStateStream", &v) == 1 && !strcmp((const char *)v.data, "true"))
            flags |= FACTUM_PROJECTION_DELETE_STATE_STREAM;
        if (srv_qs_get(req->query, "deleteCheckpointStream", &v) == 1 &&
            !strcmp((const char *)v.data, "true"))
            flags |= FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM;
        if (srv_qs_get(req->query, "deleteEmittedStreams", &v) == 1 && !strcmp((const char *)v.data, "true"))
            flags |= FACTUM_PROJECTION_DELETE_EMITTED_STREAMS;
        rc = factum_projection_delete(st->proj, j->name, flags, cmd_done, j);
    }
    base_buf_free(&v);
    if (rc) { /* not queued: the callback will not run */
        j->rc = rc;
        cmd_answer(j);
    }
}

int srv_http_proj(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    const char *p = req->path;
    if (strcmp(p, "/api/projections") && strncmp(p, "/api/projection", 15)) return 0;
    if (!st->proj) {
        srv_json_fail(resp, 503, "factumd runs without projections (--run-projections None)");
        return 1;
    }
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!strcmp(p, "/api/projections")) {
        if (!get) {
            srv_json_fail(resp, 405, "method not allowed");
        } else if (srv_may_op(st, req, AUTH_OP_PROJ_LIST, NULL, resp)) {
            list_ctx c = {&resp->body, 0};
            base_buf_append(&resp->body, "{\"projections\":[", 16);
            factum_projections_each(st->proj, list_one, &c);
            base_buf_append(&resp->body, "]}\n", 3);
            resp->status = 200;
            resp->content_type = "application/json";
        }
        return 1;
    }
    base_buf name = {0};
    if (srv_qs_get(req->query, "name", &name) != 1 || !name.len || strlen((const char *)name.data) > 200) {
        base_buf_free(&name);
        srv_json_fail(resp, 400, "bad parameters: name");
        return 1;
    }
    const char *n = (const char *)name.data;
    const char *cmd = p + 15; /* after /api/projection */
    if (!strcmp(cmd, "") && get) {
        if (srv_may_op(st, req, AUTH_OP_PROJ_READ, NULL, resp)) one(st, n, resp);
    } else if (!strcmp(cmd, "") && !strcmp(req->method, "POST")) {
        command(st, req, resp, C_CREATE, n);
    } else if (!strcmp(cmd, "") && !strcmp(req->method, "PUT")) {
        command(st, req, resp, C_UPDATE, n);
    } else if (!strcmp(cmd, "") && !strcmp(req->method, "DELETE")) {
        command(st, req, resp, C_DELETE, n);
    } else if (!strcmp(req->method, "POST") && !strcmp(cmd, "/enable")) {
        command(st, req, resp, C_ENABLE, n);
    } else if (!strcmp(req->method, "POST") && !strcmp(cmd, "/disable")) {
        command(st, req, resp, C_DISABLE, n);
    } else if (!strcmp(req->method, "POST") && !strcmp(cmd, "/reset")) {
        command(st, req, resp, C_RESET, n);
    } else {
        srv_json_fail(resp,
                      strcmp(cmd, "") && strcmp(cmd, "/enable") && strcmp(cmd, "/disable") &&
                              strcmp(cmd, "/reset")
                          ? 404
                          : 405,
                      "not found, or method not allowed");
    }
    base_buf_free(&name);
    return 1;
}
