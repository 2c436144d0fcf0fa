/*
 * http1_conn.c - HTTP/1.1 on a connection of the net server (server.c):
 * the requests in a connection's read buffer parsed (src/net/http1.c),
 * authenticated (NET-8), handed to the HTTP handler, answered now or later
 * (NET-9), and the answers written into the connection's write buffer.
 * Loop thread only (NET-1).
 */
#include "net/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "net/http1.h"
#include "net/server_int.h"

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

static void http1_reply_with(conn *k, int status, const char *ctype, const uint8_t *body, size_t len,
                             int close_conn, const char *extra, size_t extra_len)
{
    char head[512];
    /* No challenge for a script's request (X-Requested-With): a browser
     * would open its own password dialog over the page's sign-in. */
    const char *chal = status == 401 && !k->http_no_challenge ? k->srv->cfg.http_challenge : NULL;
    int hn = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %.100s\r\nContent-Length: %zu\r\n%s%.200s%s%s",
                      status, reason(status), ctype ? ctype : "text/plain; charset=utf-8", len,
                      chal ? "WWW-Authenticate: " : "", chal ? chal : "", chal ? "\r\n" : "",
                      close_conn ? "Connection: close\r\n" : "");
    size_t keep = k->wbuf.len;
    if (net_buf_append(k->srv, k, NULL, &k->wbuf, head, (size_t)hn) ||
        (extra_len && net_buf_append(k->srv, k, NULL, &k->wbuf, extra, extra_len)) ||
        net_buf_append(k->srv, k, NULL, &k->wbuf, "\r\n", 2) ||
        net_buf_append(k->srv, k, NULL, &k->wbuf, body, len)) {
        k->wbuf.len = keep; /* no room for the answer (NET-5): end the connection after what was queued */
        close_conn = 1;
    }
    if (close_conn) k->close_after_write = 1;
}

void http1_reply(conn *k, int status, const char *ctype, const uint8_t *body, size_t len, int close_conn)
{
    http1_reply_with(k, status, ctype, body, len, close_conn, NULL, 0);
}

void http1_drop_principal(conn *k)
{
    if (k->http_principal_free) k->http_principal_free(k->http_principal);
    k->http_principal = NULL;
    k->http_principal_free = NULL;
    k->http_authed = 0;
}

/* NET-8: ask auth_fn about the request at the head of rbuf. Returns 1 while
 * it is pending (the connection parses nothing more), 0 when decided. */
static int http1_authenticate(conn *k, const http1_request *hr)
{
    net_server *s = k->srv;
    net_auth *a = calloc(1, sizeof *a);
    if (a && hr->authorization) a->authorization = strndup(hr->authorization, hr->authorization_len);
    if (a && hr->cookie) a->cookie = strndup(hr->cookie, hr->cookie_len);
    if (!a || (hr->authorization && !a->authorization) || (hr->cookie && !a->cookie)) {
        if (a) {
            free(a->authorization);
            free(a->cookie);
        }
        free(a);
        http1_reply(k, 503, NULL, (const uint8_t *)"out of memory\n", 14, 1);
        return 0;
    }
    a->srv = s;
    a->k = k;
    k->http_auth = a;
    s->cfg.auth_fn(s->cfg.auth_ctx, a);
    return k->http_auth != NULL;
}

void http1_auth_done(conn *k, int status, void *principal, void (*free_fn)(void *))
{
    if (status) {
        if (free_fn) free_fn(principal);
        if (status == 14 /* UNAVAILABLE */)
            http1_reply(k, 503, NULL, (const uint8_t *)"server busy\n", 12, 1);
        else
            http1_reply(k, 401, NULL, (const uint8_t *)"unauthorized\n", 13, 1);
        conn_mark(k);
        return;
    }
    k->http_principal = principal;
    k->http_principal_free = free_fn;
    k->http_authed = 1;
    if (k->in_http1) return; /* decided inside http1_input: it goes on */
    http1_input(k);
}

/* What cleartext on the TLS port is told. */
static const char TLS_REQUIRED_HTTP[] =
    "This port speaks TLS: factumd requires it (use https://, or a client with tls=true). Cleartext is served "
    "only when factumd runs with --insecure.\n";

/* Handle every complete request in rbuf (src/net/http1.c parses them). */
void http1_input(conn *k)
{
    net_server *s = k->srv;
    if (k->http_auth || k->http_later) {
        /* NET-8, NET-9: a request is being authenticated or answered; what
         * comes meanwhile waits, up to two requests' worth. */
        if (k->rbuf.len > 2 * (HTTP1_MAX_HEAD + HTTP1_MAX_BODY)) conn_close(k);
        return;
    }
    k->in_http1 = 1;
    while (!k->close_after_write && k->rbuf.len) {
        http1_request hr;
        int rc = http1_parse(k->rbuf.data, k->rbuf.len, HTTP1_MAX_HEAD, HTTP1_MAX_BODY, &hr);
        if (rc == HTTP1_INCOMPLETE) break;
        if (k->tls_required) { /* cleartext on the TLS port: the whole request came, or a bad one */
            http1_reply(k, 400, NULL, (const uint8_t *)TLS_REQUIRED_HTTP, sizeof TLS_REQUIRED_HTTP - 1, 1);
            break;
        }
        if (rc < 0) {
            int status = -rc;
            const char *why = status == 431   ? "headers too large\n"
                              : status == 413 ? "request too large\n"
                              : status == 501 ? "transfer encodings are not supported\n"
                                              : "bad request\n";
            s->st.protocol_errors++;
            http1_reply(k, status, NULL, (const uint8_t *)why, strlen(why), 1);
            break;
        }
        k->http_no_challenge = hr.requested_with;
        if (s->cfg.auth_fn && !k->http_authed) {
            /* NET-8: authenticate it first; it stays at the head of rbuf. */
            if (http1_authenticate(k, &hr)) break;
            if (k->close_after_write || k->dead) break;
        }
        k->req_started = 0; /* a whole request arrived in time */
        char method[16], target[HTTP1_MAX_TARGET + 1], accept[256], cookie[1024], csrf[128], origin[256], host[256];
        http1_header_copy(hr.accept, hr.accept_len, accept, sizeof accept);
        http1_header_copy(hr.cookie, hr.cookie_len, cookie, sizeof cookie);
        http1_header_copy(hr.csrf, hr.csrf_len, csrf, sizeof csrf);
        http1_header_copy(hr.origin, hr.origin_len, origin, sizeof origin);
        http1_header_copy(hr.host, hr.host_len, host, sizeof host);
        memcpy(method, hr.method, hr.method_len);
        method[hr.method_len] = 0;
        memcpy(target, hr.target, hr.target_len);
        target[hr.target_len] = 0;
        char *q = strchr(target, '?');
        const char *query = "";
        if (q) {
            *q = 0;
            query = q + 1;
        }
        net_http_req req = {method,  target,     query,  accept, k->rbuf.data + hr.head_len, hr.content_length,
                            k->http_principal, k, cookie, csrf, origin, host, hr.authorization != NULL,
                            hr.requested_with};
        net_http_resp resp = {.status = 404};
        k->http_deferring = NULL;
        k->http_answered = 0;
        k->http_keep_alive = hr.keep_alive;
        if (s->http) s->http(s->http_ctx, &req, &resp);
        else base_buf_append(&resp.body, "not found\n", 10);
        net_http_later *later = k->http_deferring;
        k->http_deferring = NULL;
        if (k->http_answered) {
            /* net_http_answer ran inside the handler */
        } else if (later) {
            later->keep_alive = hr.keep_alive; /* NET-9: answered by net_http_answer */
        } else {
            http1_reply_with(k, resp.status, resp.content_type, resp.body.data, resp.body.len, !hr.keep_alive,
                             (const char *)resp.headers.data, resp.headers.len);
        }
        base_buf_free(&resp.body);
        base_buf_free(&resp.headers);
        http1_drop_principal(k);
        size_t used = hr.head_len + hr.content_length;
        memmove(k->rbuf.data, k->rbuf.data + used, k->rbuf.len - used);
        k->rbuf.len -= used;
        if (later) {
            k->http_later = later;
            break;
        }
    }
    k->in_http1 = 0;
    if (k->rbuf.len && !k->req_started) k->req_started = s->now; /* the next request has begun */
    conn_flush(k);
}

net_http_later *net_http_defer(const net_http_req *req)
{
    conn *k = req->conn;
    if (!k || k->http_deferring) return k ? k->http_deferring : NULL;
    net_http_later *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->k = k;
    k->http_deferring = l;
    return l;
}

void net_http_on_gone(net_http_later *l, void (*fn)(void *arg), void *arg)
{
    l->gone_fn = fn;
    l->gone_arg = arg;
}

uint64_t net_http_conn_id(const net_http_req *req)
{
    const conn *k = req->conn;
    return k ? k->id : 0;
}

uint64_t net_call_conn_id(const net_call *c)
{
    return c->conn ? c->conn->id : 0;
}

int net_http_gone(const net_http_later *l)
{
    return !l->k || l->k->dead;
}

void net_http_answer(net_http_later *l, const net_http_resp *resp)
{
    conn *k = l->k;
    int keep_alive = l->keep_alive;
    if (k && k->http_deferring == l) {
        /* Answered inside the handler after all: now, and http1_input goes on. */
        k->http_deferring = NULL;
        k->http_answered = 1;
        keep_alive = k->http_keep_alive;
        free(l);
        http1_reply_with(k, resp->status, resp->content_type, resp->body.data, resp->body.len, !keep_alive,
                         (const char *)resp->headers.data, resp->headers.len);
        return;
    }
    free(l);
    if (!k || k->dead) return;
    k->http_later = NULL;
    http1_reply_with(k, resp->status, resp->content_type, resp->body.data, resp->body.len, !keep_alive,
                     (const char *)resp->headers.data, resp->headers.len);
    if (!k->close_after_write && k->rbuf.len) http1_input(k); /* what was pipelined meanwhile */
    else conn_flush(k);
}

