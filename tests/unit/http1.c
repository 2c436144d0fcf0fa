/* Unit tests of the HTTP/1.1 request parser (src/net/http1.c): what it
 * accepts, what it refuses and with which status, and that an incomplete
 * request is told apart from a refused one at every length. */
#include "harness.h"

#include "net/http1.h"

static int parse(const char *s, http1_request *r)
{
    return http1_parse((const uint8_t *)s, strlen(s), 16384, 1u << 20, r);
}

static void t_accepts(void)
{
    http1_request r;
    CHECK_RC(parse("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n", &r), HTTP1_DONE);
    CHECK(r.method_len == 3 && !memcmp(r.method, "GET", 3));
    CHECK(r.target_len == 12 && !memcmp(r.target, "/health/live", 12));
    CHECK(r.minor == 1 && r.keep_alive && r.content_length == 0 && !r.accept);
    const char *post = "POST /x?y=1 HTTP/1.1\r\nContent-Length: 5\r\nAccept:  text/plain \r\n\r\nhelloGET";
    CHECK_RC(parse(post, &r), HTTP1_DONE);
    CHECK(r.content_length == 5 && r.head_len + 5 == strlen(post) - 3);
    CHECK(r.accept_len == 10 && !memcmp(r.accept, "text/plain", 10));
    CHECK_RC(parse("GET / HTTP/1.0\r\n\r\n", &r), HTTP1_DONE);
    CHECK(!r.keep_alive);
    CHECK_RC(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), HTTP1_DONE);
    CHECK(r.keep_alive);
    CHECK_RC(parse("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n", &r), HTTP1_DONE);
    CHECK(!r.keep_alive);
    CHECK_RC(parse("GET / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab", &r), HTTP1_DONE);
    /* The admin UI's headers (ADR 0029): each at most once. */
    CHECK_RC(parse("POST /ui/api/logout HTTP/1.1\r\nHost: h:1\r\nCookie: a=1; factum_session=t\r\n"
                   "X-CSRF-Token: tok\r\nOrigin: http://h:1\r\nX-Requested-With: factum-ui\r\n\r\n",
                   &r),
             HTTP1_DONE);
    CHECK(r.cookie_len == 21 && !memcmp(r.cookie, "a=1; factum_session=t", 21));
    CHECK(r.csrf_len == 3 && !memcmp(r.csrf, "tok", 3) && r.origin_len == 10 && r.host_len == 3 && r.requested_with);
    CHECK_RC(parse("GET / HTTP/1.1\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nX-CSRF-Token: a\r\nx-csrf-token: a\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nOrigin: a\r\nOrigin: b\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\n\r\n", &r), HTTP1_DONE);
    CHECK(!r.cookie && !r.csrf && !r.origin && !r.host && !r.requested_with);
    /* credentials (NET-8): the value, trimmed; none without the header */
    CHECK(!r.authorization);
    CHECK_RC(parse("GET /metrics HTTP/1.1\r\nAuthorization:  Basic YTpi \r\n\r\n", &r), HTTP1_DONE);
    CHECK(r.authorization_len == 10 && !memcmp(r.authorization, "Basic YTpi", 10));
}

/* Two sets of credentials: which one would count? Refused. */
static void t_authorization_once(void)
{
    http1_request r;
    CHECK_RC(parse("GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\nauthorization: Basic YzpkCg==\r\n\r\n", &r),
             HTTP1_EBAD);
}

static void t_refuses(void)
{
    http1_request r;
    CHECK_RC(parse("get / HTTP/1.1\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET  / HTTP/1.1\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/2.0\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\nHost: x\n\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\n folded: x\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &r), HTTP1_EBAD);
    CHECK_RC(parse("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &r), HTTP1_EBODY);
    CHECK_RC(parse("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", &r), HTTP1_EBODY);
    CHECK_RC(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r), HTTP1_ETE);
    /* Limits of the head: the target, the number of headers, the size. */
    char big[20000];
    snprintf(big, sizeof big, "GET /%0*d HTTP/1.1\r\n\r\n", HTTP1_MAX_TARGET + 10, 0);
    CHECK_RC(parse(big, &r), HTTP1_EBAD);
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP1_MAX_HEADERS; i++) n += (size_t)snprintf(big + n, sizeof big - n, "X-%d: y\r\n", i);
    snprintf(big + n, sizeof big - n, "\r\n");
    CHECK_RC(parse(big, &r), HTTP1_EHEAD);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    big[sizeof big - 1] = 0;
    CHECK_RC(parse(big, &r), HTTP1_EHEAD); /* a header line that never ends */
}

/* Every prefix of a valid request is incomplete, never refused. */
static void t_incomplete_at_every_length(void)
{
    const char *req = "POST /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nContent-Length: 4\r\n\r\nbody";
    http1_request r;
    size_t len = strlen(req);
    for (size_t i = 0; i < len; i++)
        CHECK_RC(http1_parse((const uint8_t *)req, i, 16384, 1u << 20, &r), HTTP1_INCOMPLETE);
    CHECK_RC(http1_parse((const uint8_t *)req, len, 16384, 1u << 20, &r), HTTP1_DONE);
    /* ... unless the prefix is already over the head limit. */
    CHECK_RC(http1_parse((const uint8_t *)req, 30, 20, 1u << 20, &r), HTTP1_EHEAD);
}

int main(void)
{
    RUN(t_accepts);
    RUN(t_refuses);
    RUN(t_authorization_once);
    RUN(t_incomplete_at_every_length);
    return harness_done();
}
