/*
 * http_api.c - JSON endpoints the admin web UI reads (ADR 0029,
 * docs/http.md), usable by scripts with Basic credentials too: the
 * streams, a stream's events page by page both ways, a stream's metadata.
 * Every read is checked against the stream's ACL as a gRPC read is, done on
 * the loop within a bound (at most API_MAX_EVENTS events and API_MAX_BYTES
 * of answer; a catalog scan of at most API_MAX_SCAN streams), and opens
 * sealed events through a reader of its own (crypto-shredding). Changes
 * (an event appended, metadata set, a stream deleted) are checked the same
 * way and run as the store's asynchronous appends: the answer comes later
 * (NET-9), never by waiting on the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "auth/policy.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"
#include "server/server.h"

#define API_MAX_EVENTS 200
#define API_MAX_BYTES  ((size_t)8 << 20)
#define API_MAX_SCAN   10000

void srv_json_fail(net_http_resp *r, int status, const char *why)
{
    r->status = status;
    r->content_type = "application/json";
    base_buf_append(&r->body, "{\"error\":", 9);
    json_write_string(&r->body, why, strlen(why));
    base_buf_append(&r->body, "}\n", 2);
}

/* May the request's principal do `action` on `stream` ("" is $all)? */
static int may(srv_state *st, const net_http_req *req, const char *stream, int action, net_http_resp *r)
{
    const auth_principal *p = req->auth ? req->auth : auth_principal_system(); /* no users: --insecure */
    int a;
    if (p->flags & AUTH_P_SYSTEM)
        a = AUTH_OK;
    else if (!st->rpc.authz)
        a = auth_principal_authenticated(p) ? AUTH_DENIED : AUTH_UNAUTHENTICATED;
    else
        a = auth_check_stream(st->rpc.authz, p, stream, action);
    if (a == AUTH_OK) return 1;
    srv_json_fail(r, a == AUTH_UNAUTHENTICATED ? 401 : 403,
                  a == AUTH_UNAUTHENTICATED ? "authentication required" : "access denied");
    return 0;
}

/* A query parameter as a NUL-terminated string (0 absent, -1 malformed). */
static int qs_str(const net_http_req *req, const char *key, base_buf *b)
{
    return srv_qs_get(req->query, key, b);
}

/* data or metadata: a JSON value when it is JSON, else base64. */
static void payload(base_buf *b, const char *key, const uint8_t *p, size_t n, int is_json)
{
    base_buf_printf(b, ",\"%s\":", key);
    if (!n) {
        base_buf_append(b, "null", 4);
        return;
    }
    if (is_json && json_validate((const char *)p, n) == 0) {
        base_buf_append(b, p, n);
        return;
    }
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    base_buf_append(b, "{\"base64\":\"", 11);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v =
            (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char o[4] = {a[v >> 18 & 63], a[v >> 12 & 63], i + 1 < n ? a[v >> 6 & 63] : '=',
                     i + 2 < n ? a[v & 63] : '='};
        base_buf_append(b, o, 4);
    }
    base_buf_append(b, "\"}", 2);
}

static void event_json(base_buf *b, const factum_event *ev)
{
    char id[37];
    factum_uuid_format(ev->id, id);
    base_buf_append(b, "{\"stream\":", 10);
    json_write_string(b, ev->stream, ev->stream_len);
    base_buf_append(b, ",\"type\":", 8);
    json_write_string(b, ev->type, ev->type_len);
    base_buf_printf(b, ",\"version\":%" PRIu64 ",\"position\":%" PRIu64 ",\"id\":\"%s\",\"time\":%lld",
                    ev->version, ev->position, id, (long long)(ev->timestamp_ns / 1000000));
    base_buf_printf(b, ",\"isJson\":%s", (ev->flags & FACTUM_EVENT_JSON) ? "true" : "false");
    if (ev->flags & FACTUM_EVENT_SHREDDED) base_buf_append(b, ",\"shredded\":true", 16);
    payload(b, "data", ev->data, ev->data_len, (ev->flags & FACTUM_EVENT_JSON) != 0);
    payload(b, "metadata", ev->metadata, ev->metadata_len, (ev->flags & FACTUM_EVENT_META_JSON) != 0);
}

/* ---- GET /api/streams?prefix=P&after=N&limit=L --------------------------- */

typedef struct list_ctx {
    srv_state *st;
    const char *prefix;
    size_t plen;
    base_buf *b;
    size_t n, limit, scanned;
    uint64_t last; /* the created position of the last stream looked at */
} list_ctx;

static int list_one(void *arg, const char *name, size_t len, uint64_t created)
{
    list_ctx *c = arg;
    if (c->n >= c->limit || c->scanned >= API_MAX_SCAN) return 1;
    c->scanned++;
    c->last = created;
    if (len < c->plen || memcmp(name, c->prefix, c->plen)) return 0;
    char nm[FACTUM_MAX_STREAM_LEN + 1];
    memcpy(nm, name, len);
    nm[len] = 0;
    factum_stream_info si;
    if (factum_stream_get_info(c->st->store, nm, &si)) return 0;
    int64_t t = 0;
    factum_event ev;
    factum_reader *prev = factum_reader_use(NULL); /* the time only: the body stays sealed */
    if (si.last_position && !factum_read_position(c->st->store, si.last_position, &ev))
        t = ev.timestamp_ns / 1000000;
    factum_reader_use(prev);
    static const char *const status[] = {"none", "live", "deleted", "tombstoned"};
    base_buf_append(c->b, c->n ? ",{\"name\":" : "{\"name\":", c->n ? 9 : 8);
    json_write_string(c->b, name, len);
    base_buf_printf(c->b,
                    ",\"status\":\"%s\",\"lastVersion\":%lld,\"lastPosition\":%" PRIu64
                    ",\"lastTime\":%lld,\"created\":%" PRIu64 "}",
                    status[si.status & 3], (long long)si.last_version, si.last_position, (long long)t,
                    created);
    c->n++;
    return 0;
}

static void streams(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    if (!may(st, req, "", AUTH_READ, r)) return; /* the catalog of every stream: as reading $all */
    base_buf prefix = {0};
    uint64_t after = 0, limit = 50;
    if (qs_str(req, "prefix", &prefix) < 0 || srv_qs_u64(req->query, "after", UINT64_MAX, &after) < 0 ||
        srv_qs_u64(req->query, "limit", API_MAX_EVENTS, &limit) < 0) {
        base_buf_free(&prefix);
        srv_json_fail(r, 400, "bad parameters: prefix, after (a position), limit (1 to 200)");
        return;
    }
    const char *pre = prefix.data ? (const char *)prefix.data : "";
    list_ctx c = {st, pre, strlen(pre), &r->body, 0, limit ? limit : 50, 0, after};
    base_buf_append(&r->body, "{\"streams\":[", 12);
    int rc = factum_list_streams(st->store, after, list_one, &c);
    int more = rc > 0;
    base_buf_printf(&r->body, "],\"next\":%" PRIu64 ",\"more\":%s,\"scanned\":%zu}\n", c.last,
                    more ? "true" : "false", c.scanned);
    base_buf_free(&prefix);
    if (rc < 0) {
        r->body.len = 0;
        srv_json_fail(r, 500, factum_strerror(rc));
        return;
    }
    r->status = 200;
    r->content_type = "application/json";
}

/* ---- GET /api/stream?name=S&from=V&dir=forward|backward&limit=L ----------- */

static void stream_events(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    base_buf name = {0}, dir = {0};
    uint64_t from = 0, limit = 20;
    int hf;
    if (qs_str(req, "name", &name) != 1 || !name.len || qs_str(req, "dir", &dir) < 0 ||
        (hf = srv_qs_u64(req->query, "from", UINT64_MAX, &from)) < 0 ||
        srv_qs_u64(req->query, "limit", API_MAX_EVENTS, &limit) < 0) {
        base_buf_free(&name);
        base_buf_free(&dir);
        srv_json_fail(r, 400,
                      "bad parameters: name, from (a version), dir (forward or backward), limit (1 to 200)");
        return;
    }
    const char *s = (const char *)name.data;
    int back = dir.len && !strcmp((const char *)dir.data, "backward");
    if (!hf && back) from = FACTUM_END;
    if (!limit) limit = 20;
    base_buf_free(&dir);
    if (!may(st, req, s, AUTH_READ, r)) {
        base_buf_free(&name);
        return;
    }
    factum_event *evs = malloc(limit * sizeof *evs);
    factum_reader *rd = factum_reader_new();
    if (!evs || !rd) {
        free(evs);
        factum_reader_free(rd);
        base_buf_free(&name);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    factum_reader_set_limit(rd, API_MAX_BYTES);
    factum_reader *prev = factum_reader_use(rd);
    size_t n = 0;
    uint64_t next = 0;
    int rc = factum_read_stream(st->store, s, from, back ? FACTUM_BACKWARD : FACTUM_FORWARD, evs, limit, &n,
                                &next);
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) {
        srv_json_fail(
            r, 404, rc == FACTUM_EDELETED ? "the stream is deleted for good (tombstoned)" : "no such stream");
    } else if (rc) {
        srv_json_fail(r, 500, factum_strerror(rc));
    } else {
        base_buf *b = &r->body;
        base_buf_append(b, "{\"stream\":", 10);
        json_write_string(b, s, strlen(s));
        base_buf_append(b, ",\"events\":[", 11);
        size_t i = 0;
        for (; i < n && b->len < API_MAX_BYTES; i++) {
            if (i) base_buf_append(b, ",", 1);
            event_json(b, &evs[i]);
            /* A link ($>): where it leads, and the event there if the reader may see it. */
            factum_event t;
            if (evs[i].type_len == 2 && !memcmp(evs[i].type, FACTUM_LINK_TYPE, 2) &&
                !factum_resolve_link(st->store, &evs[i], &t)) {
                char ts[FACTUM_MAX_STREAM_LEN + 1];
                snprintf(ts, sizeof ts, "%.*s", (int)t.stream_len, t.stream);
                const auth_principal *p = req->auth ? req->auth : auth_principal_system();
                if ((p->flags & AUTH_P_SYSTEM) ||
                    (st->rpc.authz && auth_check_stream(st->rpc.authz, p, ts, AUTH_READ) == AUTH_OK)) {
                    base_buf_append(b, ",\"target\":", 10);
                    event_json(b, &t);
                    base_buf_append(b, "}", 1);
                }
            }
            base_buf_append(b, "}", 1);
        }
        /* Cut short by the answer's bound: the next page starts at the first not sent. */
        if (i < n) next = evs[i].version;
        base_buf_printf(b, "],\"next\":%s", next == FACTUM_END ? "null" : "");
        if (next != FACTUM_END) base_buf_printf(b, "%" PRIu64, next);
        base_buf_append(b, "}\n", 2);
        r->status = 200;
        r->content_type = "application/json";
    }
    factum_reader_use(prev);
    factum_reader_free(rd);
    free(evs);
    base_buf_free(&name);
}

/* ---- GET /api/all?from=P&dir=forward|backward&limit=L&on=stream|type
 *          &prefix=X|regex=R&excludeSystem=true --------------------------- */

static void all_events(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    base_buf dir = {0}, on = {0}, prefix = {0}, regex = {0}, exsys = {0};
    uint64_t from = 0, limit = 20;
    int hf = 0;
    factum_filter *f = NULL;
    if (qs_str(req, "dir", &dir) < 0 || qs_str(req, "on", &on) < 0 || qs_str(req, "prefix", &prefix) < 0 ||
        qs_str(req, "regex", &regex) < 0 || qs_str(req, "excludeSystem", &exsys) < 0 ||
        (hf = srv_qs_u64(req->query, "from", UINT64_MAX, &from)) < 0 ||
        srv_qs_u64(req->query, "limit", API_MAX_EVENTS, &limit) < 0) {
        srv_json_fail(
            r, 400,
            "bad parameters: from (a position), dir, limit (1 to 200), on (stream or type), prefix or regex, "
            "excludeSystem");
        goto out;
    }
    int back = dir.len && !strcmp((const char *)dir.data, "backward");
    if (!hf) from = back ? FACTUM_END : 0;
    if (!limit) limit = 20;
    const char *pre = prefix.len ? (const char *)prefix.data : NULL,
               *re = regex.len ? (const char *)regex.data : NULL;
    int ex = exsys.len && !strcmp((const char *)exsys.data, "true");
    if (pre || re || ex) {
        int o = on.len && !strcmp((const char *)on.data, "type") ? FACTUM_FILTER_EVENT_TYPE
                                                                 : FACTUM_FILTER_STREAM;
        int rc = factum_filter_new(o, pre && !re ? &pre : NULL, pre && !re ? 1 : 0, re, ex, &f);
        if (rc) {
            srv_json_fail(r, 400,
                          rc == FACTUM_EBADREGEX
                              ? "the regular expression does not compile, or is over a limit"
                              : factum_strerror(rc));
            goto out;
        }
    }
    if (!may(st, req, "", AUTH_READ, r)) goto out;
    factum_event *evs = malloc(limit * sizeof *evs);
    factum_reader *rd = factum_reader_new();
    if (!evs || !rd) {
        free(evs);
        factum_reader_free(rd);
        srv_json_fail(r, 503, "out of memory");
        goto out;
    }
    factum_reader_set_limit(rd, API_MAX_BYTES);
    factum_reader *prev = factum_reader_use(rd);
    size_t n = 0;
    uint64_t next = 0;
    int rc = factum_read_all(st->store, from, back ? FACTUM_BACKWARD : FACTUM_FORWARD, f, API_MAX_SCAN, evs,
                             limit, &n, &next);
    if (rc) {
        srv_json_fail(r, rc == FACTUM_EREGEXLIMIT ? 400 : 500, factum_strerror(rc));
    } else {
        base_buf *b = &r->body;
        base_buf_append(b, "{\"events\":[", 11);
        size_t i = 0;
        for (; i < n && b->len < API_MAX_BYTES; i++) {
            if (i) base_buf_append(b, ",", 1);
            event_json(b, &evs[i]);
            base_buf_append(b, "}", 1);
        }
        if (i < n) next = evs[i].position; /* the rest, from the first not sent */
        factum_stats fs;
        factum_store_get_stats(st->store, &fs);
        base_buf_printf(b, "],\"next\":%" PRIu64 ",\"head\":%" PRIu64 "}\n", next, fs.last_position);
        r->status = 200;
        r->content_type = "application/json";
    }
    factum_reader_use(prev);
    factum_reader_free(rd);
    free(evs);
out:
    factum_filter_free(f);
    base_buf_free(&dir);
    base_buf_free(&on);
    base_buf_free(&prefix);
    base_buf_free(&regex);
    base_buf_free(&exsys);
}

/* ---- GET /api/stream/metadata?name=S -------------------------------------- */

static void stream_metadata(srv_state *st, const net_http_req *req, net_http_resp *r)
{
    base_buf name = {0};
    if (qs_str(req, "name", &name) != 1 || !name.len) {
        base_buf_free(&name);
        srv_json_fail(r, 400, "bad parameters: name");
        return;
    }
    const char *s = (const char *)name.data;
    if (may(st, req, s, AUTH_META_READ, r)) {
        char *json = NULL;
        size_t len = 0;
        int64_t v = -1;
        int rc = factum_get_stream_metadata(st->store, s, &json, &len, &v);
        if (rc) {
            srv_json_fail(r, rc == FACTUM_EBADNAME ? 400 : 500, factum_strerror(rc));
        } else {
            r->status = 200;
            r->content_type = "application/json";
            base_buf_printf(&r->body, "{\"version\":%lld,\"metadata\":", (long long)v);
            base_buf_append(&r->body, json, len);
            base_buf_append(&r->body, "}\n", 2);
        }
        free(json);
    }
    base_buf_free(&name);
}

/* ---- changes: POST /api/stream, PUT /api/stream/metadata, DELETE /api/stream ---- */

enum { W_APPEND, W_META, W_DELETE, W_TOMBSTONE };

typedef struct write_job {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p; /* referenced */
    int op;
    char *stream, *target; /* the stream written ($$S for metadata), the stream meant */
    char *type;
    base_buf data, meta;
    factum_event_data ev;
    factum_append_req req;
    int rc;
    factum_append_result res;
} write_job;

static void job_free(write_job *j)
{
    if (j->p) auth_principal_unref(j->p);
    free(j->stream);
    free(j->target);
    free(j->type);
    base_buf_free(&j->data);
    base_buf_free(&j->meta);
    free(j);
}

static void write_answer(void *arg)
{
    write_job *j = arg;
    net_http_resp r = {0};
    if (j->rc == FACTUM_EWRONGVERSION) {
        r.status = 409;
        r.content_type = "application/json";
        base_buf_printf(&r.body, "{\"error\":\"wrong expected version\",\"actualVersion\":%lld}\n",
                        (long long)j->res.actual_version);
    } else if (j->rc) {
        int status = j->rc == FACTUM_EDELETED  ? 410
                     : j->rc == -EAGAIN        ? 503
                     : j->rc == FACTUM_ETOOBIG ? 413
                     : j->rc == FACTUM_EBADNAME || j->rc == FACTUM_EBADTYPE || j->rc == FACTUM_EBADJSON ||
                             j->rc == FACTUM_EINVAL
                         ? 400
                         : 500;
        srv_json_fail(&r, status, factum_strerror(j->rc));
    } else {
        r.status = 200;
        r.content_type = "application/json";
        base_buf_printf(&r.body, "{\"firstVersion\":%lld,\"lastVersion\":%lld,\"position\":%" PRIu64 "}\n",
                        (long long)(int64_t)j->res.first_version, (long long)(int64_t)j->res.last_version,
                        j->res.last_position);
        static const char *const action[] = {NULL, "stream-metadata-set", "stream-deleted",
                                             "stream-tombstoned"};
        if (action[j->op]) rpc_audit_as(&j->st->rpc, j->p, NULL, action[j->op], j->target, NULL);
    }
    net_http_answer(j->later, &r);
    base_buf_free(&r.body);
    base_buf_free(&r.headers);
    job_free(j);
}

static void write_done(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    write_job *j = ctx;
    j->rc = rc;
    if (n) j->res = res[0];
    while (rpc_to_loop(&j->st->rpc, write_answer, j))
        usleep(1000); /* out of memory: the answer must still be given, once */
}

/* expected=V | any | no-stream | exists (default any). 0, or -1 malformed. */
static int expected_of(const net_http_req *req, int64_t *e)
{
    base_buf b = {0};
    int rc = srv_qs_get(req->query, "expected", &b);
    *e = FACTUM_ANY;
    if (rc == 1) {
        const char *v = (const char *)b.data;
        char *end;
        if (!strcmp(v, "any"))
            *e = FACTUM_ANY;
        else if (!strcmp(v, "no-stream"))
            *e = FACTUM_NO_STREAM;
        else if (!strcmp(v, "exists"))
            *e = FACTUM_STREAM_EXISTS;
        else {
            long long x = strtoll(v, &end, 10);
            if (!*v || *end || x < 0)
                rc = -1;
            else
                *e = x;
        }
    }
    base_buf_free(&b);
    return rc < 0 ? -1 : 0;
}

static void write_op(srv_state *st, const net_http_req *req, net_http_resp *r, int op)
{
    base_buf name = {0};
    int64_t expected;
    if (qs_str(req, "name", &name) != 1 || !name.len || expected_of(req, &expected)) {
        base_buf_free(&name);
        srv_json_fail(r, 400, "bad parameters: name, expected (a version, any, no-stream or exists)");
        return;
    }
    if (op == W_DELETE) {
        base_buf hard = {0};
        if (qs_str(req, "hard", &hard) == 1 && !strcmp((const char *)hard.data, "true")) op = W_TOMBSTONE;
        base_buf_free(&hard);
    }
    const char *s = (const char *)name.data;
    int action = op == W_APPEND ? AUTH_WRITE : op == W_META ? AUTH_META_WRITE : AUTH_DELETE;
    if (!may(st, req, s, action, r)) {
        base_buf_free(&name);
        return;
    }
    write_job *j = calloc(1, sizeof *j);
    if (!j) {
        base_buf_free(&name);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    j->st = st;
    j->op = op;
    j->target = (char *)name.data; /* owned now */
    json_value *doc = NULL;
    int rc = 0;
    if (op == W_APPEND) {
        /* {"type": "...", "data": any JSON value, "metadata": an object or null} */
        const json_value *t = NULL, *d = NULL, *m = NULL;
        if (json_parse((const char *)req->body, req->body_len, &doc) || doc->type != JSON_OBJECT ||
            !(t = json_get(doc, "type")) || t->type != JSON_STRING || !(d = json_get(doc, "data")) ||
            ((m = json_get(doc, "metadata")) && m->type != JSON_OBJECT && m->type != JSON_NULL)) {
            rc = FACTUM_EBADJSON;
        } else {
            j->type = strndup(t->str, t->len);
            rc = j->type ? json_write_value(&j->data, d) : -ENOMEM;
            if (!rc && m && m->type == JSON_OBJECT) rc = json_write_value(&j->meta, m);
            j->stream = strdup(s);
            if (!j->stream) rc = -ENOMEM;
        }
        j->ev.type = j->type;
        j->ev.flags = FACTUM_EVENT_JSON | (j->meta.len ? FACTUM_EVENT_META_JSON : 0);
        j->ev.data = j->data.data;
        j->ev.data_len = j->data.len;
        j->ev.metadata = j->meta.data;
        j->ev.metadata_len = j->meta.len;
    } else if (op == W_META) {
        factum_stream_metadata sm;
        if (!req->body_len || factum_stream_metadata_parse((const char *)req->body, req->body_len, &sm)) {
            rc = FACTUM_EBADJSON;
        } else {
            size_t n = strlen(s) + 3;
            j->stream = malloc(n);
            if (!j->stream || base_buf_append(&j->data, req->body, req->body_len))
                rc = -ENOMEM;
            else
                snprintf(j->stream, n, "$$%s", s);
            j->ev.type = "$metadata";
            j->ev.flags = FACTUM_EVENT_JSON;
            j->ev.data = j->data.data;
            j->ev.data_len = j->data.len;
        }
    }
    json_free(doc);
    if (rc) {
        srv_json_fail(
            r, rc == -ENOMEM ? 503 : 400,
            rc == -ENOMEM ? "out of memory"
            : op == W_APPEND
                ? "the body must be {\"type\": \"...\", \"data\": a JSON value, \"metadata\": an object}"
                : "the body must be a metadata document (a JSON object: $maxAge, $maxCount, $tb, $acl, ...)");
        job_free(j);
        return;
    }
    if (!(j->later = net_http_defer(req))) {
        srv_json_fail(r, 503, "out of memory");
        job_free(j);
        return;
    }
    j->p = auth_principal_ref(req->auth ? req->auth : auth_principal_system());
    if (op == W_APPEND || op == W_META) {
        factum_uuid_v4(j->ev.id);
        j->ev.has_id = 1;
        j->req =
            (factum_append_req){.stream = j->stream, .expected = expected, .events = &j->ev, .n_events = 1};
        rc = rpc_append_async(&st->rpc, &j->req, 1, write_done, j);
    } else {
        rc = op == W_DELETE ? factum_delete_stream_async(st->store, j->target, expected, write_done, j)
                            : factum_tombstone_stream_async(st->store, j->target, expected, write_done, j);
    }
    if (rc) { /* not queued: the callback will not run */
        j->rc = rc;
        write_answer(j);
    }
}

/* ---- shared with the other JSON endpoints ---- */

int srv_may_op(srv_state *st, const net_http_req *req, int op, const char *self, net_http_resp *r)
{
    const auth_principal *p = req->auth ? req->auth : auth_principal_system();
    int a = auth_check_op(p, op, self, st->rpc.allow_anonymous_endpoints);
    if (a == AUTH_OK) return 1;
    srv_json_fail(r, a == AUTH_UNAUTHENTICATED ? 401 : 403,
                  a == AUTH_UNAUTHENTICATED ? "authentication required" : "access denied");
    return 0;
}

int srv_http_api(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    if (strncmp(req->path, "/api/", 5)) return 0;
    const char *op = req->path + 5;
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!strcmp(op, "stream") && !strcmp(req->method, "POST")) {
        write_op(st, req, resp, W_APPEND);
        return 1;
    }
    if (!strcmp(op, "stream") && !strcmp(req->method, "DELETE")) {
        write_op(st, req, resp, W_DELETE);
        return 1;
    }
    if (!strcmp(op, "stream/metadata") && !strcmp(req->method, "PUT")) {
        write_op(st, req, resp, W_META);
        return 1;
    }
    if (!get) {
        srv_json_fail(resp, 405, "method not allowed");
        return 1;
    }
    if (!strcmp(op, "streams"))
        streams(st, req, resp);
    else if (!strcmp(op, "stream"))
        stream_events(st, req, resp);
    else if (!strcmp(op, "stream/metadata"))
        stream_metadata(st, req, resp);
    else if (!strcmp(op, "all"))
        all_events(st, req, resp);
    else
        srv_json_fail(resp, 404, "not found");
    return 1;
}
