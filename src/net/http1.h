/*
 * http1.h - an I/O-free parser of HTTP/1.1 requests (the health, metrics and
 * info endpoints share factumd's port with gRPC). It looks at the bytes
 * received so far and says: a whole request is here (and where its parts
 * are), more bytes are needed, or the request is refused with a status.
 * Nothing is copied or allocated, so it is fuzzed on its own
 * (tests/fuzz/fuzz_http1.c).
 *
 * What is accepted, strictly (anything else is 400 unless said):
 *  - a request line `METHOD SP target SP HTTP/1.0|1.1 CRLF`: the method
 *    1..15 upper-case letters, the target 1..HTTP1_MAX_TARGET visible
 *    ASCII characters;
 *  - header lines `name: value CRLF` (name a token; value without
 *    control characters but tab), at most HTTP1_MAX_HEADERS of them;
 *    no line folding; the head (request line and headers) at most
 *    max_head bytes (431 beyond);
 *  - at most one Authorization header, and at most one Cookie,
 *    X-CSRF-Token, Origin and Host header each;
 *  - a body only with Content-Length (digits, at most max_body: 413
 *    beyond; repeated only with the same value); Transfer-Encoding is 501.
 */
#ifndef FACTUM_HTTP1_H
#define FACTUM_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_TARGET 2048
#define HTTP1_MAX_HEADERS 64

typedef struct http1_request {
    const char *method;
    size_t method_len;
    const char *target; /* path and query, as sent */
    size_t target_len;
    int minor;      /* HTTP/1.<minor> */
    int keep_alive; /* 1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    const char *accept; /* the Accept header's value, or NULL */
    size_t accept_len;
    const char *authorization; /* the Authorization header's value (at most one), or NULL */
    size_t authorization_len;
    /* The admin UI's (ADR 0029): Cookie, X-CSRF-Token, Origin, Host (each at
     * most once), or NULL; X-Requested-With present (a script's request: a
     * 401 then carries no challenge, so that no browser dialog opens). */
    const char *cookie, *csrf, *origin, *host;
    size_t cookie_len, csrf_len, origin_len, host_len;
    int requested_with;
    size_t head_len;       /* bytes of the request line and headers, final CRLF included */
    size_t content_length; /* body bytes after the head */
} http1_request;

enum {
    HTTP1_DONE = 0,       /* a whole request: head_len + content_length bytes */
    HTTP1_INCOMPLETE = 1, /* more bytes are needed (none of the limits is reached yet) */
    /* Refusals carry the HTTP status to answer with, negated. */
    HTTP1_EBAD = -400,
    HTTP1_EBODY = -413,
    HTTP1_EHEAD = -431,
    HTTP1_ETE = -501,
};

/* Parse the request at the start of buf[0..len). Returns HTTP1_DONE,
 * HTTP1_INCOMPLETE or a refusal. *req is filled (pointers into buf) on
 * HTTP1_DONE. */
int http1_parse(const uint8_t *buf, size_t len, size_t max_head, size_t max_body, http1_request *req);
/* A header's value (v, n bytes; may be NULL) as a NUL-terminated string in
 * out (cap bytes): "" when absent or when it does not fit. */
void http1_header_copy(const char *v, size_t n, char *out, size_t cap);

#endif
