/*
 * http1.c - the HTTP/1.1 request parser of http1.h. Every byte is from the
 * network: each index is checked against len before it is read, and
 * nothing is trusted to be NUL-terminated.
 */
#include "net/http1.h"

#include <string.h>
#include <strings.h>

static int is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Case-insensitive compare of a header name of n bytes with a literal. */
static int name_is(const uint8_t *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp((const char *)p, lit, n) == 0;
}

/* Does the comma-separated value contain the token (case-insensitive)? */
static int has_token(const uint8_t *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && strncasecmp((const char *)v + s, tok, tl) == 0) return 1;
    }
    return 0;
}

int http1_parse(const uint8_t *buf, size_t len, size_t max_head, size_t max_body, http1_request *req)
{
    memset(req, 0, sizeof *req);
    size_t lim = len < max_head ? len : max_head;
    /* The request line. */
    size_t i = 0;
    while (i < lim && buf[i] >= 'A' && buf[i] <= 'Z') i++;
    if (i == lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
    if (i == 0 || i > 15 || buf[i] != ' ') return HTTP1_EBAD;
    req->method = (const char *)buf;
    req->method_len = i;
    size_t t = ++i;
    while (i < lim && buf[i] > ' ' && buf[i] < 0x7f) i++;
    if (i == lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
    if (i == t || i - t > HTTP1_MAX_TARGET || buf[i] != ' ') return HTTP1_EBAD;
    req->target = (const char *)buf + t;
    req->target_len = i - t;
    i++;
    static const char ver[] = "HTTP/1.";
    for (size_t k = 0; k < 7; k++, i++) {
        if (i == lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
        if (buf[i] != (uint8_t)ver[k]) return HTTP1_EBAD;
    }
    if (i + 3 > lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
    if (buf[i] != '0' && buf[i] != '1') return HTTP1_EBAD;
    req->minor = buf[i] - '0';
    if (buf[i + 1] != '\r' || buf[i + 2] != '\n') return HTTP1_EBAD;
    i += 3;
    req->keep_alive = req->minor == 1;
    /* Header lines, up to the empty line. */
    int n_headers = 0, have_cl = 0, conn_close = 0, conn_keep = 0;
    size_t cl = 0;
    for (;;) {
        if (i + 2 > lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
        if (buf[i] == '\r') {
            if (buf[i + 1] != '\n') return HTTP1_EBAD;
            i += 2;
            break;
        }
        if (++n_headers > HTTP1_MAX_HEADERS) return HTTP1_EHEAD;
        size_t ns = i;
        while (i < lim && is_tchar(buf[i])) i++;
        if (i == lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
        if (i == ns || buf[i] != ':') return HTTP1_EBAD; /* also rejects folded lines (leading space) */
        size_t ne = i++;
        while (i < lim && (buf[i] == ' ' || buf[i] == '\t')) i++;
        size_t vs = i;
        while (i < lim && buf[i] != '\r') {
            if ((buf[i] < ' ' && buf[i] != '\t') || buf[i] == 0x7f) return HTTP1_EBAD;
            i++;
        }
        if (i + 1 >= lim) return len >= max_head ? HTTP1_EHEAD : HTTP1_INCOMPLETE;
        if (buf[i + 1] != '\n') return HTTP1_EBAD;
        size_t ve = i;
        while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
        i += 2;
        const uint8_t *name = buf + ns, *v = buf + vs;
        size_t nl = ne - ns, vl = ve - vs;
        if (name_is(name, nl, "content-length")) {
            if (vl == 0 || vl > 19) return vl > 19 ? HTTP1_EBODY : HTTP1_EBAD;
            size_t x = 0;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9') return HTTP1_EBAD;
                x = x * 10 + (size_t)(v[k] - '0');
            }
            if (have_cl && x != cl) return HTTP1_EBAD;
            have_cl = 1;
            cl = x;
        } else if (name_is(name, nl, "transfer-encoding")) {
            return HTTP1_ETE;
        } else if (name_is(name, nl, "connection")) {
            if (has_token(v, vl, "close")) conn_close = 1;
            if (has_token(v, vl, "keep-alive")) conn_keep = 1;
        } else if (name_is(name, nl, "accept")) {
            req->accept = (const char *)v;
            req->accept_len = vl;
        } else if (name_is(name, nl, "authorization")) {
            if (req->authorization) return HTTP1_EBAD; /* two sets of credentials: which one? */
            req->authorization = (const char *)v;
            req->authorization_len = vl;
        } else if (name_is(name, nl, "cookie")) {
            if (req->cookie) return HTTP1_EBAD; /* browsers send one: which session? */
            req->cookie = (const char *)v;
            req->cookie_len = vl;
        } else if (name_is(name, nl, "x-csrf-token")) {
            if (req->csrf) return HTTP1_EBAD;
            req->csrf = (const char *)v;
            req->csrf_len = vl;
        } else if (name_is(name, nl, "origin")) {
            if (req->origin) return HTTP1_EBAD;
            req->origin = (const char *)v;
            req->origin_len = vl;
        } else if (name_is(name, nl, "host")) {
            if (req->host) return HTTP1_EBAD;
            req->host = (const char *)v;
            req->host_len = vl;
        } else if (name_is(name, nl, "x-requested-with")) {
            req->requested_with = 1;
        }
    }
    if (conn_close) req->keep_alive = 0;
    else if (conn_keep) req->keep_alive = 1;
    if (cl > max_body) return HTTP1_EBODY;
    req->head_len = i;
    req->content_length = cl;
    if (len - i < cl) return HTTP1_INCOMPLETE;
    return HTTP1_DONE;
}

void http1_header_copy(const char *v, size_t n, char *out, size_t cap)
{
    if (!v || n >= cap) n = 0;
    if (n) memcpy(out, v, n);
    out[n] = 0;
}
