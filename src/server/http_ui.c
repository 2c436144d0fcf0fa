/*
 * http_ui.c - factumd's admin web UI (ADR 0029, docs/ui.md): the files of
 * ui/ and its libraries, compiled in (ui.h), served under /ui/ with a strict
 * Content-Security-Policy; `/` and `/ui` redirect to /ui/. The files hold
 * no data: they are served to anyone; what they show comes from endpoints
 * that authenticate and authorize as usual.
 */
#include <string.h>

#include "server/server.h"
#include "server/ui.h"

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
