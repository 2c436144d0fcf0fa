/*
 * http_ui.c - factumd's admin web UI (ADR 0029, docs/ui.md): the files of
 * ui/ and its libraries, compiled in (ui.h), served under /ui/ with a strict
 * Content-Security-Policy; `/` and `/ui` redirect to /ui/. The files hold
 * no data: they are served to anyone; what they show comes from endpoints
 * that authenticate and authorize as usual.
 */
#include <stdio.h>
#include <openssl/crypto.h>
#include <string.h>

#include "auth/principal.h"
#include "auth/session.h"
#include "auth/users.h"
#include "base/json.h"
#include "server/server.h"
#include "server/ui.h"
#include "rpc/rpc.h"

/* Every UI response: no inline script or style, nothing from another host,
 * not framed, not sniffed, no referrer. */
static void ui_headers(net_http_resp *r)
{
    static const char h[] =
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
        "data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors "
        "'none'\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "X-Frame-Options: DENY\r\n"
        "Cache-Control: no-cache\r\n";
    base_buf_append(&r->headers, h, sizeof h - 1);
}

int srv_http_ui(const net_http_req *req, net_http_resp *resp)
{
    const char *p = req->path;
    int root = !strcmp(p, "/") || !strcmp(p, "/ui");
    if (!root && strncmp(p, "/ui/", 4)) return 0; /* not the UI's */
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        base_buf_append(&resp->body, "method not allowed\n", 19);
        return 1;
    }
    if (root) {
        resp->status = srv_ui_n_assets ? 302 : 404;
        if (srv_ui_n_assets)
            base_buf_append(&resp->headers, "Location: /ui/\r\n", 16);
        else
            base_buf_append(&resp->body, "not found (factumd was built without the UI)\n", 46);
        return 1;
    }
    if (!strcmp(p, "/ui/")) p = "/ui/index.html";
    for (size_t i = 0; i < srv_ui_n_assets; i++) {
        const srv_ui_asset *a = &srv_ui_assets[i];
        if (strcmp(a->url, p)) continue;
        resp->status = 200;
        resp->content_type = a->content_type;
        ui_headers(resp);
        base_buf_printf(&resp->headers, "ETag: %s\r\n", a->etag);
        base_buf_append(&resp->body, a->data, a->len);
        return 1;
    }
    resp->status = 404;
    ui_headers(resp);
    base_buf_append(&resp->body, "not found\n", 10);
    return 1;
}

/* ---- sign-in sessions (ADR 0029, auth/session.h) -------------------------- */

static void refuse(net_http_resp *r, int status, const char *why)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    base_buf_printf(&r->body, "%s\n", why);
}

int srv_http_guard(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")) return 1;
    /* A change asked by a page of another origin is refused, whatever its
     * credentials (a browser may hold Basic ones for this origin). */
    if (req->origin[0]) {
        char own[300];
        snprintf(own, sizeof own, "%s://%s", st->sec.tls ? "https" : "http", req->host);
        if (!req->host[0] || strcmp(req->origin, own)) {
            refuse(resp, 403, "forbidden: a request from another origin");
            return 0;
        }
    }
    /* SESS-3: with the session cookie (and no credentials of its own), the
     * session's CSRF token. */
    auth_sessions *ss = st->sec.auth ? auth_users_sessions(st->users) : NULL;
    if (ss && !req->has_authorization && auth_session_named(req->cookie) &&
        !auth_session_csrf_ok(ss, req->cookie, req->csrf, base_mono_ns())) {
        refuse(resp, 403, "forbidden: the CSRF token is missing or wrong (sign in again)");
        return 0;
    }
    return 1;
}

static void session_answer(srv_state *st, const auth_principal *p, const char *csrf, int insecure,
                           net_http_resp *r)
{
    r->status = 200;
    r->content_type = "application/json";
    base_buf *b = &r->body;
    base_buf_append(b, "{\"login\":", 9);
    json_write_string(b, p->login, strlen(p->login));
    base_buf_append(b, ",\"groups\":[", 11);
    for (size_t i = 0; i < p->n_groups; i++) {
        if (i) base_buf_append(b, ",", 1);
        json_write_string(b, p->groups[i], strlen(p->groups[i]));
    }
    base_buf_printf(b, "],\"admin\":%s,\"insecure\":%s", auth_principal_is_admin(p) ? "true" : "false",
                    insecure ? "true" : "false");
    if (csrf) base_buf_printf(b, ",\"csrf\":\"%s\"", csrf);
    if (auth_principal_is_admin(p)) { /* the dashboard shows it to administrators only */
        base_buf_append(b, ",\"dataDirectory\":", 17);
        json_write_string(b, st->cfg.db, strlen(st->cfg.db));
    }
    base_buf_append(b, "}\n", 2);
}

/*   POST /ui/api/login   with Basic credentials (checked as for any request):
 *        a session, its cookie (HttpOnly, SameSite=Strict, Secure over TLS)
 *        and 200 {"login","groups","admin","csrf"}; wrong credentials never
 *        reach here (401, no challenge with X-Requested-With)
 *   GET  /ui/api/session  who the request is (cookie or credentials), or 401
 *   POST /ui/api/logout   the session ends; its cookie is cleared */
int srv_http_ui_api(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    if (strncmp(req->path, "/ui/api/", 8)) return 0;
    const char *op = req->path + 8;
    /* --insecure (no authentication): nothing to sign in to */
    auth_sessions *ss = st->sec.auth ? auth_users_sessions(st->users) : NULL;
    const auth_principal *p = req->auth ? req->auth : auth_principal_system(); /* no users: --insecure */
    int post = !strcmp(req->method, "POST");
    ui_headers(resp);
    if (!strcmp(op, "login")) {
        if (!post) return refuse(resp, 405, "method not allowed: POST"), 1;
        if (!ss) return session_answer(st, p, NULL, 1, resp), 1; /* --insecure: nothing to sign in to */
        if (!req->has_authorization || !auth_principal_authenticated(p))
            return refuse(resp, 401, "sign in with a user name and password"), 1;
        char token[AUTH_SESSION_TOKEN], csrf[AUTH_SESSION_TOKEN];
        if (auth_session_create(ss, p, base_mono_ns(), token, csrf))
            return refuse(resp, 503, "cannot make a session now"), 1;
        base_buf_printf(
            &resp->headers,
            "Set-Cookie: " AUTH_SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%llu%s\r\n",
            token, (unsigned long long)(AUTH_SESSION_MAX_NS / 1000000000ull), st->sec.tls ? "; Secure" : "");
        rpc_audit_as(&st->rpc, p, NULL, "ui-signed-in", "/ui/api/login", NULL);
        session_answer(st, p, csrf, 0, resp);
        OPENSSL_cleanse(token, sizeof token);
        return 1;
    }
    if (!strcmp(op, "session")) {
        if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD"))
            return refuse(resp, 405, "method not allowed: GET"), 1;
        if (!ss) return session_answer(st, p, NULL, 1, resp), 1;
        if (!auth_principal_authenticated(p)) return refuse(resp, 401, "not signed in"), 1;
        const char *csrf = NULL;
        if (!req->has_authorization) auth_session_find(ss, req->cookie, base_mono_ns(), &csrf);
        session_answer(st, p, csrf, 0, resp);
        return 1;
    }
    if (!strcmp(op, "logout")) {
        if (!post) return refuse(resp, 405, "method not allowed: POST"), 1;
        if (ss) auth_session_end(ss, req->cookie);
        base_buf_printf(&resp->headers,
                        "Set-Cookie: " AUTH_SESSION_COOKIE
                        "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s\r\n",
                        st->sec.tls ? "; Secure" : "");
        resp->status = 204;
        return 1;
    }
    refuse(resp, 404, "not found");
    return 1;
}
