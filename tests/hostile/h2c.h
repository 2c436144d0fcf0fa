/*
 * h2c.h - the hostile clients' tools (tests/hostile): a real factumd
 * started in the background, its /metrics and resident memory, raw TCP
 * connections, and a minimal HTTP/2 client (nghttp2) whose request bodies
 * are whatever bytes a test wants to send - endless, partial, malformed -
 * and which may stop reading its socket at will.
 */
#ifndef FACTUM_TEST_H2C_H
#define FACTUM_TEST_H2C_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the server ------------------------------------------------------ */

typedef struct srv {
    pid_t pid;
    int port;
    char log[600];
    char dir[512];
} srv;

/* Start factumd (path) with a fresh data directory under base and the extra
 * arguments (NULL-terminated; --insecure is added unless they name a
 * --certificate-file); wait until it listens. 0 or -1. */
int srv_start(srv *s, const char *path, const char *base, const char *const *args);
/* SIGTERM and wait: the exit status (0 for a clean stop), or -1. */
int srv_stop(srv *s);
int srv_alive(const srv *s);
/* The value of a /metrics line (first match of name), or -1. */
double srv_metric(const srv *s, const char *name);
/* RssAnon of the server, in KiB (anonymous resident memory), or -1. */
long srv_rss_anon_kib(const srv *s);
/* GET path over HTTP/1.1: the status, or -1. */
int srv_http_status(const srv *s, const char *path);

/* ---- raw connections ------------------------------------------------- */

/* A non-blocking TCP connection to 127.0.0.1:port, or -1. */
int tcp_connect(int port);
/* 1 if the peer has closed (read returns 0 or an error), 0 if open. Drains
 * what there is to read. */
int tcp_closed(int fd);

/* ---- HTTP/2 client ------------------------------------------------------ */

typedef struct h2c h2c;

/* What a request sends: produce(ctx, buf, len) returns bytes written (> 0),
 * 0 for "nothing now" (the stream waits; h2c_resume later), or -1 for "done"
 * (the request's end). */
typedef ssize_t (*h2c_produce)(void *ctx, uint8_t *buf, size_t len);

typedef struct h2c_stream {
    int32_t id;
    int closed;      /* the stream is over */
    int grpc_status; /* from the trailers; -1 if none came */
    int reset;       /* ended by RST_STREAM (error code in reset_code) */
    uint32_t reset_code;
    size_t data_in;  /* response bytes received */
    h2c_produce produce;
    void *ctx;
    char message[256]; /* grpc-message */
} h2c_stream;

h2c *h2c_open(int port);
void h2c_close(h2c *h);
int h2c_fd(const h2c *h);
/* Is the connection still usable (not closed by the server, no GOAWAY)? */
int h2c_ok(const h2c *h);
/* Start a gRPC call on path; st is the caller's and must live until the
 * connection is closed. 0 or -1. */
int h2c_call(h2c *h, const char *path, h2c_stream *st);
/* A deferred request body has more to send. */
void h2c_resume(h2c *h, h2c_stream *st);
/* Exchange frames for up to ms milliseconds; reading only if read_too.
 * Returns 0, or -1 once the connection is gone. */
int h2c_pump(h2c *h, int ms, int read_too);

/* ---- building gRPC messages ------------------------------------------------ */

typedef struct wbuf {
    uint8_t *data;
    size_t len, cap;
} wbuf;
void wb_put(wbuf *b, const void *p, size_t n);
void wb_varint(wbuf *b, uint64_t v);
/* key(field, wire type 2), length, then the bytes of inner */
void wb_wrap(wbuf *b, unsigned field, const wbuf *inner);
void wb_string(wbuf *b, unsigned field, const char *s);
/* The 5-byte gRPC prefix and the message. */
void wb_grpc(wbuf *b, const wbuf *msg);
void wb_free(wbuf *b);

/* A request body from a buffer, for h2c_stream.produce: end says whether
 * the request ends (half close) after the last byte, or waits. */
typedef struct h2c_bytes {
    wbuf b;
    size_t off;
    int end;
} h2c_bytes;
ssize_t h2c_bytes_produce(void *ctx, uint8_t *buf, size_t len);

#endif
