/*
 * http_rm.c - the read models over HTTP/1.1 (docs/protocol.md, "Read models
 * over HTTP"), JSON in and out:
 *   GET    /readmodels                      every read model's status
 *   POST   /readmodels                      create (the body: the definition)
 *   GET    /readmodels/<name>               status and definition
 *   DELETE /readmodels/<name>               drop
 *   POST   /readmodels/<name>/rebuild       (the body: a new definition, or empty)
 *   POST   /readmodels/<name>/pause, /resume
 *   GET    /readmodels/<name>/wait?position=P&timeout=MS   200, or 408 on timeout
 *   GET    /readmodels/<name>/query?sql=...&params=...&min_position=P&row_limit=N&time_limit_ms=MS&wait_ms=MS
 *                                            [&as_of=<RFC 3339>|&as_of_position=P]
 *   POST   /readmodels/<name>/query         {"sql","params","minPosition","rowLimit","timeLimitMs","waitMs",
 *                                            "asOf","asOfPosition"}
 *   GET    /readmodels/<name>/parked?limit=N
 * A query's answer carries Factum-ReadModel-Position, -Lag-Events and
 * -Lag-Ms headers. Errors are {"error": "..."} with 400 (bad input), 401,
 * 403, 404, 408 (a wait or query out of time), 409 (exists; faulted), 413
 * (an answer over 16 MiB) or 503 (busy, stopping, no read models).
 *
 * The work never runs on the loop (RMS-1..3): each request is deferred
 * (NET-9) and answered when its job or wait comes back. Who may do what is
 * decided first (RMS-4). Every input is the network's: names are checked,
 * the query string is percent-decoded into bounded buffers, bodies are at
 * most the HTTP parser's 1 MiB.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "rpc/readmodels.h"
#include "server/server.h"

typedef struct rm_http {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p; /* a reference, for the audit */
    rm_job *job;
    rm_wait *wait;
    int is_wait; /* a wait request (else a job, perhaps after a min_position wait) */
    uint64_t conn_id; /* its connection: its lane in the workers' queue (RMS-1) */
    char name[64];
    uint64_t position;
} rm_http;

static void error_body(net_http_resp *r, int status, const char *msg)
{
    r->status = status;
    r->content_type = "application/json";
    base_buf_free(&r->body);
    base_buf_append(&r->body, "{\"error\":", 9);
    json_write_string(&r->body, msg, strlen(msg));
    base_buf_append(&r->body, "}\n", 2);
}

static void error_rc(net_http_resp *r, int rc, const char *name, const char *err)
{
    char msg[768];
    rpc_rm_message(msg, sizeof msg, rc, name, err);
    error_body(r, rpc_rm_http_status(rc), msg);
}

static void rh_free(rm_http *h)
{
    auth_principal_unref(h->p);
    rm_job_free(h->job);
    free(h);
}

/* Answer h's deferred request with r and free h. */
static void finish(rm_http *h, net_http_resp *r)
{
    net_http_answer(h->later, r);
    base_buf_free(&r->body);
    base_buf_free(&r->headers);
    rh_free(h);
}

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

/* ---- answers ------------------------------------------------------------------- */

static void job_done(rm_job *j)
{
    rm_http *h = j->arg;
    net_http_resp r = {.status = 200, .content_type = "application/json"};
    const char *action = audit_action(j->op);
    if (!j->rc && action)
        rpc_audit_as(&h->st->rpc, h->p, NULL, action, h->name, NULL); /* no definition: it may hold a password */
    int oom = 0;
    if (j->rc) {
        error_rc(&r, j->rc, h->name, j->err);
    } else if (j->op == RM_GET) {
        oom = base_buf_append(&r.body, "{\"status\":", 10) || rpc_rm_status_json(&r.body, &j->st) ||
              base_buf_append(&r.body, ",\"definition\":", 14);
        oom = oom || rpc_rm_definition_shown(&r.body, j->out ? j->out : "", rpc_rm_may_admin(h->p) == AUTH_OK);
        oom = oom || base_buf_append(&r.body, "}\n", 2);
    } else if (j->op == RM_LIST) {
        oom = base_buf_append(&r.body, "{\"readModels\":[", 15);
        for (size_t i = 0; i < j->n_list && !oom; i++)
            oom = (i && base_buf_append(&r.body, ",", 1)) || rpc_rm_status_json(&r.body, &j->list[i]);
        oom = oom || base_buf_append(&r.body, "]}\n", 3);
    } else if (j->op == RM_QUERY || j->op == RM_PARKED) {
        const char *out = j->out ? j->out : "{}";
        uint64_t pos, lag_events, lag_ms;
        rpc_rm_answer_figures(out, &pos, &lag_events, &lag_ms);
        oom = base_buf_append(&r.body, out, strlen(out)) || base_buf_append(&r.body, "\n", 1) ||
              base_buf_printf(&r.headers,
                              "Factum-ReadModel-Position: %" PRIu64 "\r\nFactum-ReadModel-Lag-Events: %" PRIu64
                              "\r\nFactum-ReadModel-Lag-Ms: %" PRIu64 "\r\n",
                              pos, lag_events, lag_ms);
    } else {
        r.status = j->op == RM_CREATE ? 201 : 200;
        oom = base_buf_printf(&r.body, "{\"name\":\"%s\",\"done\":\"%s\"}\n", h->name,
                              j->op == RM_CREATE    ? "created"
                              : j->op == RM_REBUILD ? "rebuilding"
                              : j->op == RM_PAUSE   ? "paused"
                              : j->op == RM_RESUME  ? "resumed"
                                                    : "dropped");
    }
    if (oom) {
        base_buf_free(&r.headers);
        error_rc(&r, -ENOMEM, h->name, NULL);
    }
    finish(h, &r);
}

static void wait_answer(rm_http *h, net_http_resp *r)
{
    factum_readmodel_status st;
    uint64_t pos = h->st->rpc.readmodels && factum_readmodel_get_status(h->st->rpc.readmodels, h->name, &st) == 0
                       ? st.position
                       : h->position;
    r->status = 200;
    r->content_type = "application/json";
    base_buf_printf(&r->body, "{\"name\":\"%s\",\"position\":%" PRIu64 ",\"waitedFor\":%" PRIu64 "}\n", h->name,
                    pos, h->position);
    base_buf_printf(&r->headers, "Factum-ReadModel-Position: %" PRIu64 "\r\n", pos);
}

static int start_job(rm_http *h);

/* NET-9: the client left before its answer. A wait is cancelled (and all
 * freed) if it can be; a job not yet started is skipped. Either way what
 * comes back later answers no one. */
static void rh_gone(void *arg)
{
    rm_http *h = arg;
    if (h->wait && rpc_rm_wait_abandon(&h->st->rpc, h->wait)) {
        h->wait = NULL;
        net_http_resp r = {0};
        finish(h, &r); /* the connection is gone: this only frees */
        return;
    }
    if (h->job) atomic_store(&h->job->abandoned, 1);
}

static void wait_done(void *arg, int rc)
{
    rm_http *h = arg;
    h->wait = NULL;
    net_http_resp r = {0};
    if (rc == FACTUM_ETIMEDOUT) {
        char why[160];
        snprintf(why, sizeof why, "did not reach position %" PRIu64 " in time", h->position);
        error_rc(&r, rc, h->name, why);
    } else if (rc == FACTUM_EFAULTED) {
        char why[600];
        rpc_rm_fault_text(&h->st->rpc, h->name, why, sizeof why);
        error_rc(&r, rc, h->name, why);
    } else if (rc) {
        error_rc(&r, rc, h->name, NULL);
    } else if (!h->is_wait && net_http_gone(h->later)) {
        /* the client left: no query for no one */
    } else if (!h->is_wait) {
        h->job->qo.min_position = 0; /* reached (RMS-3) */
        int jrc = start_job(h);
        if (jrc == 0) return;
        error_rc(&r, jrc, h->name, NULL);
    } else {
        wait_answer(h, &r);
    }
    finish(h, &r);
}

static int start_job(rm_http *h)
{
    h->job->done = job_done;
    h->job->arg = h;
    h->job->conn = h->conn_id;
    return rpc_rm_submit(&h->st->rpc, h->job);
}

/* ---- the query string ------------------------------------------------------------ */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int srv_pct_decode(const char *s, size_t n, int plus, base_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+' && plus) {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n) return -1;
            int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
            if (a < 0 || b < 0) return -1;
            ch = (char)(a * 16 + b);
            if (!ch) return -1;
            i += 2;
        }
        if (base_buf_append(out, &ch, 1)) return -1;
    }
    return base_buf_append(out, "", 1) ? -1 : 0;
}

int srv_qs_get(const char *qs, const char *key, base_buf *out)
{
    size_t kl = strlen(key);
    const char *p = qs;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t nk = eq ? (size_t)(eq - p) : n;
        if (nk == kl && !memcmp(p, key, kl)) {
            out->len = 0;
            return srv_pct_decode(eq ? eq + 1 : p + n, eq ? n - nk - 1 : 0, 1, out) ? -1 : 1;
        }
        p += n;
        if (*p) p++;
    }
    return 0;
}

int srv_qs_u64(const char *qs, const char *key, uint64_t max, uint64_t *v)
{
    base_buf b = {0};
    int rc = srv_qs_get(qs, key, &b);
    if (rc == 1) {
        const char *s = (const char *)b.data;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (!*s || *s == '-' || *end || errno || x > max) rc = -1;
        else *v = x;
    }
    base_buf_free(&b);
    return rc;
}

/* ---- the requests ------------------------------------------------------------------ */

static const auth_principal *principal(const net_http_req *req)
{
    return req->auth ? req->auth : auth_principal_system(); /* no auth_fn: insecure */
}

/* RMS-4: 1 if allowed, else resp says why. */
static int allowed(srv_state *st, const net_http_req *req, net_http_resp *resp, int admin, const char *name)
{
    int r = admin ? rpc_rm_may_admin(principal(req)) : rpc_rm_may_read(&st->rpc, principal(req), name);
    if (r == AUTH_OK) return 1;
    if (r == AUTH_UNAUTHENTICATED) error_body(resp, 401, "authentication required");
    else if (r == AUTH_DENIED)
        error_body(resp, 403, admin ? "Access Denied: for $ops and $admins" : "Access Denied: not a reader of this read model");
    else error_rc(resp, r, name, NULL);
    return 0;
}

/* Fill a query job from the POST body's JSON object. 0, or -1 with resp set. */
static int query_from_body(rm_job *j, const net_http_req *req, net_http_resp *resp)
{
    json_value *v = NULL;
    if (json_parse((const char *)req->body, req->body_len, &v) || v->type != JSON_OBJECT) {
        json_free(v);
        error_body(resp, 400, "the body must be a JSON object: {\"sql\": \"SELECT ...\", \"params\": {...}, "
                              "\"minPosition\": P, \"rowLimit\": N, \"timeLimitMs\": MS}");
        return -1;
    }
    const json_value *sql = json_get(v, "sql"), *params = json_get(v, "params");
    const char *bad = NULL;
    int64_t x;
    if (!sql || sql->type != JSON_STRING || memchr(sql->str, 0, sql->len)) bad = "\"sql\" must be a string";
    else if (params && params->type != JSON_OBJECT && params->type != JSON_NULL)
        bad = "\"params\" must be an object";
    static const char *const nums[] = {"minPosition", "rowLimit", "timeLimitMs", "waitMs"};
    for (int i = 0; i < 4 && !bad; i++) {
        const json_value *n = json_get(v, nums[i]);
        if (!n || n->type == JSON_NULL) continue;
        if (n->type != JSON_NUMBER || json_int64(n, &x) || x < 0 || (i > 0 && x > UINT32_MAX) ||
            (i == 2 && x > RM_MAX_QUERY_MS) || (i == 3 && x > RM_MAX_WAIT_MS)) {
            bad = i == 0   ? "\"minPosition\" must be a position (an integer >= 0)"
                  : i == 1 ? "\"rowLimit\" must be an integer >= 0"
                  : i == 2 ? "\"timeLimitMs\" must be an integer, 0 to 60000"
                           : "\"waitMs\" must be an integer, 0 to 300000";
            break;
        }
        if (i == 0) j->qo.min_position = (uint64_t)x;
        else if (i == 1 && x) j->qo.row_limit = (uint32_t)x;
        else if (i == 2 && x) j->qo.time_limit_ms = (uint32_t)x;
        else if (i == 3 && x) j->qo.wait_ms = (int)x;
    }
    const json_value *at = json_get(v, "asOf"), *atp = json_get(v, "asOfPosition");
    if (!bad && at && at->type != JSON_NULL) {
        if (at->type != JSON_STRING || factum_time_parse(at->str, at->len, &j->asof_ns))
            bad = "\"asOf\" must be an RFC 3339 time (2026-03-15T00:00:00Z)";
        j->asof = j->asof_time = 1;
    }
    if (!bad && atp && atp->type != JSON_NULL) {
        if (j->asof || atp->type != JSON_NUMBER || json_int64(atp, &x) || x < 0)
            bad = "\"asOfPosition\" must be a position (an integer >= 0), and not with \"asOf\"";
        j->asof = 1;
        j->asof_pos = (uint64_t)x;
    }
    if (j->asof) j->qo.min_position = 0; /* the past: nothing to wait for */
    int oom = 0;
    if (!bad) {
        oom = rm_dup(&j->text, sql->str, sql->len);
        j->text_len = sql->len;
        if (!oom && params && params->type == JSON_OBJECT) {
            base_buf b = {0};
            oom = json_write_value(&b, params) || rm_dup(&j->params, (const char *)b.data, b.len);
            base_buf_free(&b);
        }
    }
    json_free(v);
    if (bad) error_body(resp, 400, bad);
    else if (oom) error_rc(resp, -ENOMEM, NULL, NULL);
    return bad || oom ? -1 : 0;
}

/* Fill a query job from the query string. 0, or -1 with resp set. */
static int query_from_qs(rm_job *j, const char *qs, net_http_resp *resp)
{
    base_buf b = {0};
    int rc = srv_qs_get(qs, "sql", &b);
    if (rc != 1) {
        base_buf_free(&b);
        error_body(resp, 400, rc ? "bad percent-encoding in sql" : "the query string needs sql=SELECT...");
        return -1;
    }
    int oom = rm_dup(&j->text, (const char *)b.data, b.len - 1);
    j->text_len = b.len - 1;
    rc = srv_qs_get(qs, "params", &b);
    if (rc < 0 || (rc == 1 && json_validate((const char *)b.data, b.len - 1))) {
        base_buf_free(&b);
        error_body(resp, 400, "params must be a JSON object (percent-encoded)");
        return -1;
    }
    if (rc == 1 && !oom) oom = rm_dup(&j->params, (const char *)b.data, b.len - 1);
    base_buf_free(&b);
    uint64_t v;
    if ((rc = srv_qs_u64(qs, "min_position", UINT64_MAX, &v)) < 0) goto bad_num;
    if (rc) j->qo.min_position = v;
    if ((rc = srv_qs_u64(qs, "row_limit", UINT32_MAX, &v)) < 0) goto bad_num;
    if (rc && v) j->qo.row_limit = (uint32_t)v;
    if ((rc = srv_qs_u64(qs, "time_limit_ms", RM_MAX_QUERY_MS, &v)) < 0) goto bad_num;
    if (rc && v) j->qo.time_limit_ms = (uint32_t)v;
    if ((rc = srv_qs_u64(qs, "wait_ms", RM_MAX_WAIT_MS, &v)) < 0) goto bad_num;
    if (rc && v) j->qo.wait_ms = (int)v;
    if ((rc = srv_qs_u64(qs, "as_of_position", UINT64_MAX, &v)) < 0) goto bad_num;
    if (rc) {
        j->asof = 1;
        j->asof_pos = v;
    }
    if ((rc = srv_qs_get(qs, "as_of", &b)) != 0) {
        int bad_t = rc < 0 || j->asof || factum_time_parse((const char *)b.data, b.len - 1, &j->asof_ns);
        base_buf_free(&b);
        if (bad_t) {
            error_body(resp, 400, "as_of must be an RFC 3339 time (2026-03-15T00:00:00Z), and not with as_of_position");
            return -1;
        }
        j->asof = j->asof_time = 1;
    }
    if (j->asof) j->qo.min_position = 0; /* the past: nothing to wait for */
    if (oom) {
        error_rc(resp, -ENOMEM, NULL, NULL);
        return -1;
    }
    return 0;
bad_num:
    error_body(resp, 400, "min_position, row_limit, time_limit_ms and wait_ms must be integers >= 0 (time_limit_ms at most 60000, wait_ms 300000)");
    return -1;
}

void srv_http_readmodels(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    if (!st->rpc.readmodels) {
        error_rc(resp, FACTUM_ECLOSED, NULL, NULL);
        return;
    }
    /* /readmodels[/<name>[/<action>]] */
    const char *rest = req->path + strlen("/readmodels");
    char name[64] = "", action[16] = "";
    if (*rest == '/' && rest[1]) {
        const char *n = rest + 1, *slash = strchr(n, '/');
        size_t nl = slash ? (size_t)(slash - n) : strlen(n);
        if (!rpc_rm_valid_name(n, nl)) {
            error_body(resp, 400, "a read model's name is 1 to 63 characters of A-Z, a-z, 0-9, '_' and '-'");
            return;
        }
        memcpy(name, n, nl);
        name[nl] = 0;
        if (slash) {
            const char *a = slash + 1;
            if (strlen(a) >= sizeof action || strchr(a, '/')) {
                error_body(resp, 404, "no such endpoint");
                return;
            }
            strcpy(action, a);
        }
    } else if (*rest && strcmp(rest, "/")) {
        error_body(resp, 404, "no such endpoint");
        return;
    }
    const char *m = req->method;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    int op = -1, admin = 0, wait = 0;
    if (!name[0]) {
        if (get) op = RM_LIST;
        else if (post) op = RM_CREATE, admin = 1;
    } else if (!action[0]) {
        if (get) op = RM_GET;
        else if (del) op = RM_DROP, admin = 1;
    } else if (!strcmp(action, "rebuild") || !strcmp(action, "pause") || !strcmp(action, "resume")) {
        if (post) op = action[0] == 'r' && action[1] == 'e' && action[2] == 'b' ? RM_REBUILD
                       : action[0] == 'p'                                    ? RM_PAUSE
                                                                             : RM_RESUME,
                  admin = 1;
    } else if (!strcmp(action, "wait")) {
        if (get) wait = 1;
    } else if (!strcmp(action, "query")) {
        if (get || post) op = RM_QUERY;
    } else if (!strcmp(action, "parked")) {
        if (get) op = RM_PARKED;
    } else {
        error_body(resp, 404, "no such endpoint");
        return;
    }
    if (op < 0 && !wait) {
        error_body(resp, 405, "method not allowed");
        return;
    }
    if (op == RM_LIST) {
        const auth_principal *p = auth_principal_current(principal(req));
        if (!(p->flags & AUTH_P_SYSTEM) && !auth_principal_authenticated(p)) {
            error_body(resp, 401, "authentication required");
            return;
        }
    } else if (!allowed(st, req, resp, admin, name)) {
        return;
    }
    rm_http *h = calloc(1, sizeof *h);
    if (!h || (!wait && !(h->job = rm_job_new(&st->rpc, op)))) {
        free(h);
        error_rc(resp, -ENOMEM, name, NULL);
        return;
    }
    h->st = st;
    h->is_wait = wait;
    h->conn_id = net_http_conn_id(req);
    snprintf(h->name, sizeof h->name, "%s", name);
    int bad = 0, oom = 0;
    rm_job *j = h->job;
    if (j && name[0]) oom = rm_dup(&j->name, name, strlen(name));
    uint64_t wait_pos = 0, timeout = RM_DEFAULT_WAIT_MS;
    if (wait) {
        int rc = srv_qs_u64(req->query, "position", UINT64_MAX, &wait_pos);
        if (rc != 1) {
            error_body(resp, 400, "wait needs position=P (an integer >= 0)");
            bad = 1;
        } else if (srv_qs_u64(req->query, "timeout", RM_MAX_WAIT_MS, &timeout) < 0) {
            error_body(resp, 400, "timeout must be milliseconds, 0 to 300000");
            bad = 1;
        }
        h->position = wait_pos;
    } else if (op == RM_CREATE || (op == RM_REBUILD && req->body_len)) {
        if (memchr(req->body, 0, req->body_len)) {
            error_body(resp, 400, "the definition holds a NUL byte");
            bad = 1;
        } else {
            oom = oom || rm_dup(&j->text, (const char *)req->body, req->body_len);
            j->text_len = req->body_len;
        }
        if (op == RM_CREATE && !bad && !oom) {
            /* the name, for the audit and the answer */
            json_value *v = NULL;
            if (json_parse(j->text, j->text_len, &v) == 0 && v->type == JSON_OBJECT) {
                const json_value *n = json_get(v, "name");
                if (n && n->type == JSON_STRING) snprintf(h->name, sizeof h->name, "%.63s", n->str);
            }
            json_free(v);
        }
    } else if (op == RM_QUERY) {
        bad = post ? query_from_body(j, req, resp) : query_from_qs(j, req->query, resp);
    } else if (op == RM_PARKED) {
        uint64_t lim = 100;
        if (srv_qs_u64(req->query, "limit", 100000, &lim) < 0) {
            error_body(resp, 400, "limit must be an integer, 0 to 100000");
            bad = 1;
        }
        j->limit = lim ? (uint32_t)lim : 100;
    }
    if (bad || oom) {
        if (oom && !bad) error_rc(resp, -ENOMEM, name, NULL);
        rh_free(h);
        return;
    }
    /* From here on the answer is given later (NET-9), also when it is
     * known at once (net_http_answer then answers inside this handler). */
    h->later = net_http_defer(req);
    if (!h->later) {
        error_rc(resp, -ENOMEM, name, NULL);
        rh_free(h);
        return;
    }
    h->p = auth_principal_ref(principal(req));
    net_http_on_gone(h->later, rh_gone, h);
    net_http_resp r = {0};
    /* A wait, or a query's min_position first (RMS-2, RMS-3). */
    uint64_t need = wait ? wait_pos : op == RM_QUERY ? j->qo.min_position : 0;
    h->position = need;
    if (wait || need) {
        int rc = rpc_rm_wait(&st->rpc, name, need, wait ? (int)timeout : j->qo.wait_ms, wait_done, h, &h->wait);
        if (rc == 0) return; /* wait_done answers */
        if (rc < 0 || wait) {
            if (rc < 0) {
                char why[600] = "";
                if (rc == FACTUM_EFAULTED) rpc_rm_fault_text(&st->rpc, name, why, sizeof why);
                error_rc(&r, rc, name, why);
            } else {
                wait_answer(h, &r);
            }
            finish(h, &r);
            return;
        }
        j->qo.min_position = 0; /* reached already */
    }
    int rc = start_job(h);
    if (rc) {
        error_rc(&r, rc, name, NULL);
        finish(h, &r);
    }
}
