/*
 * server.c - the event loop and the connections of net.h.
 *
 * A connection starts undecided: the first bytes tell HTTP/2 (the client
 * preface "PRI * HTTP/2.0") from HTTP/1.1. HTTP/2 connections get an
 * nghttp2 server session; its output is produced with nghttp2_session_mem_send
 * only when the connection's write buffer is empty, so at most one chunk per
 * connection waits in user space (NET-2). gRPC responses are fed to nghttp2
 * through a data provider that reads the call's queue and defers when it is
 * empty; the trailers are submitted when the queue is drained and the call
 * finished. HTTP/1.1 connections read one request at a time (bounded) and
 * answer through the http handler.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/grpc.h"

#define READ_CHUNK 65536
#define MAX_HEADERS 48
#define MAX_HEADER_BYTES 16384
#define HTTP1_MAX_REQUEST (1u << 20)
#define LOW_WATER 65536
#define SPIN_POLL_NS 400000u

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

typedef struct conn conn;
typedef struct post post;

struct net_call {
    int refs;
    conn *conn; /* NULL once the stream or the connection is gone */
    net_server *srv;
    int32_t stream_id;
    const net_method *m;
    void *state;
    grpc_deframer df;
    int n_headers;
    char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
    size_t header_bytes;
    char *path;
    int is_post, is_grpc;
    uint64_t deadline;
    base_buf out; /* framed messages not yet taken by nghttp2 */
    size_t out_off;
    int started, headers_sent, deferred, finished, trailers_sent, closed_notified, half_closed;
    int want_writable;
    /* trailers kept until nghttp2 has sent them */
    nghttp2_nv *tnv;
    size_t n_tnv;
    base_buf tstore;
    net_call *next; /* in the connection's list */
};

enum { CONN_NEW, CONN_H2, CONN_HTTP1, CONN_CLOSING };

struct conn {
    net_server *srv;
    int fd;
    int kind;
    nghttp2_session *h2;
    base_buf rbuf; /* undecided / HTTP/1.1 input */
    base_buf wbuf; /* output not yet written */
    size_t woff;
    int want_out; /* EPOLLOUT armed */
    int close_after_write;
    int in_recv;       /* inside nghttp2_session_mem_recv: no mem_send now */
    int flush_pending; /* a flush was asked for meanwhile */
    int dirty;         /* on the server's dirty list: flush before the next wait */
    conn *dirty_next;
    net_call *calls;
    size_t n_calls;
    conn *prev, *next;
    int dead;
};

struct post {
    post *next;
    void (*fn)(void *);
    void *arg;
};

struct net_server {
    net_config cfg;
    uint64_t next_tick; /* CLOCK_MONOTONIC ns of the next tick_fn call */
    const net_method *methods;
    size_t n_methods;
    net_http_fn http;
    void *http_ctx;
    int lfd, epfd, evfd;
    int port;
    volatile sig_atomic_t stop;
    pthread_mutex_t post_mu;
    post *posts, *posts_tail;
    conn *conns;
    conn *dead;  /* closed this round, freed after the event batch */
    conn *dirty; /* output queued this round, flushed before the next wait */
    nghttp2_session_callbacks *cbs;
    nghttp2_option *h2opt;
    net_stats st;
};

static void slog(net_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slog(net_server *s, int level, const char *fmt, ...)
{
    if (!s->cfg.log_fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->cfg.log_fn(s->cfg.log_ctx, level, buf);
}

void net_config_init(net_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 2113;
    c->max_connections = 10000;
    c->max_streams = 100;
    c->max_message = 17u << 20;
    c->call_buffer_limit = 1u << 20;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- calls ---------------------------------------------------------- */

static void call_free(net_call *c)
{
    grpc_deframer_deinit(&c->df);
    for (int i = 0; i < c->n_headers; i++) {
        free(c->hname[i]);
        free(c->hvalue[i]);
    }
    free(c->path);
    base_buf_free(&c->out);
    base_buf_free(&c->tstore);
    free(c->tnv);
    free(c);
}

void net_call_ref(net_call *c)
{
    c->refs++;
}

void net_call_unref(net_call *c)
{
    if (--c->refs == 0) call_free(c);
}

void net_call_set_state(net_call *c, void *state)
{
    c->state = state;
}

void *net_call_state(const net_call *c)
{
    return c->state;
}

net_server *net_call_server(const net_call *c)
{
    return c->srv;
}

uint64_t net_call_deadline(const net_call *c)
{
    return c->deadline;
}

const char *net_call_header(const net_call *c, const char *name)
{
    for (int i = 0; i < c->n_headers; i++)
        if (strcmp(c->hname[i], name) == 0) return c->hvalue[i];
    return NULL;
}

int net_call_done(const net_call *c)
{
    return c->finished || !c->conn;
}

size_t net_call_queued(const net_call *c)
{
    return c->out.len - c->out_off;
}

void net_call_want_writable(net_call *c)
{
    c->want_writable = 1;
}

/* Tell the handler the call is over, once (NET-4). */
static void call_closed(net_call *c)
{
    if (c->closed_notified) return;
    c->closed_notified = 1;
    if (c->started && c->m && c->m->on_close) c->m->on_close(c);
}

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data);

static void conn_flush(conn *k);

/* Output was queued on k: write it once this round of events is handled, so
 * that many messages share one write (a read sends hundreds per round). */
static void conn_mark(conn *k)
{
    if (!k || k->dead || k->dirty) return;
    k->dirty = 1;
    k->dirty_next = k->srv->dirty;
    k->srv->dirty = k;
}

static void flush_dirty(net_server *s)
{
    while (s->dirty) {
        conn *k = s->dirty;
        s->dirty = k->dirty_next;
        k->dirty = 0;
        if (!k->dead) conn_flush(k);
    }
}

static int submit_headers(net_call *c)
{
    nghttp2_nv nv[2] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd;
    prd.source.ptr = c;
    prd.read_callback = data_read_cb;
    int rc = nghttp2_submit_response(c->conn->h2, c->stream_id, nv, 2, &prd);
    if (rc == 0) c->headers_sent = 1;
    return rc;
}

int net_call_send(net_call *c, const uint8_t *msg, size_t len)
{
    if (net_call_done(c)) return -EPIPE;
    if (net_call_queued(c) >= c->srv->cfg.call_buffer_limit) {
        c->want_writable = 1;
        return -EAGAIN;
    }
    if (c->out_off && c->out_off == c->out.len) c->out.len = c->out_off = 0;
    int rc = grpc_frame_prefix(&c->out, len);
    if (!rc) rc = base_buf_append(&c->out, msg, len);
    if (rc) return rc;
    if (!c->headers_sent) {
        if (submit_headers(c)) return -EIO;
    } else if (c->deferred) {
        c->deferred = 0;
        nghttp2_session_resume_data(c->conn->h2, c->stream_id);
    }
    conn_mark(c->conn);
    return 0;
}

static int add_nv(net_call *c, size_t *n, const char *name, const char *value)
{
    /* Names and values are copied into tstore; pointers fixed up below. */
    size_t nl = strlen(name), vl = strlen(value);
    size_t off = c->tstore.len;
    if (base_buf_append(&c->tstore, name, nl + 1) || base_buf_append(&c->tstore, value, vl + 1)) return -ENOMEM;
    c->tnv[*n].name = (uint8_t *)(uintptr_t)off;
    c->tnv[*n].value = (uint8_t *)(uintptr_t)(off + nl + 1);
    c->tnv[*n].namelen = nl;
    c->tnv[*n].valuelen = vl;
    c->tnv[*n].flags = NGHTTP2_NV_FLAG_NONE;
    (*n)++;
    return 0;
}

/* Build the trailer block (optionally with the response headers in front,
 * for a trailers-only response). */
static int build_trailers(net_call *c, int with_headers, int status, const char *message, const net_header *tr,
                          size_t n_tr)
{
    free(c->tnv);
    c->tstore.len = 0;
    c->tnv = calloc(n_tr + 4, sizeof *c->tnv);
    if (!c->tnv) return -ENOMEM;
    size_t n = 0;
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    int rc = 0;
    if (with_headers) {
        rc = add_nv(c, &n, ":status", "200");
        if (!rc) rc = add_nv(c, &n, "content-type", "application/grpc");
    }
    if (!rc) rc = add_nv(c, &n, "grpc-status", st);
    if (!rc && message && *message) {
        base_buf enc = {0};
        rc = grpc_encode_message(&enc, message);
        if (!rc) rc = base_buf_append(&enc, "", 1);
        if (!rc) rc = add_nv(c, &n, "grpc-message", (char *)enc.data);
        base_buf_free(&enc);
    }
    for (size_t i = 0; i < n_tr && !rc; i++) rc = add_nv(c, &n, tr[i].name, tr[i].value ? tr[i].value : "");
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        c->tnv[i].name = c->tstore.data + (uintptr_t)c->tnv[i].name;
        c->tnv[i].value = c->tstore.data + (uintptr_t)c->tnv[i].value;
    }
    c->n_tnv = n;
    return 0;
}

void net_call_finish(net_call *c, int status, const char *message, const net_header *trailers, size_t n)
{
    if (net_call_done(c)) return;
    c->finished = 1;
    conn *k = c->conn;
    if (!c->headers_sent) {
        /* Nothing sent yet: a trailers-only response (one HEADERS frame). */
        if (build_trailers(c, 1, status, message, trailers, n) == 0 &&
            nghttp2_submit_response(k->h2, c->stream_id, c->tnv, c->n_tnv, NULL) == 0)
            c->headers_sent = c->trailers_sent = 1;
        else
            nghttp2_submit_rst_stream(k->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_INTERNAL_ERROR);
    } else {
        if (build_trailers(c, 0, status, message, trailers, n))
            nghttp2_submit_rst_stream(k->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_INTERNAL_ERROR);
        else if (c->deferred) {
            c->deferred = 0;
            nghttp2_session_resume_data(k->h2, c->stream_id);
        }
    }
    conn_mark(k);
}

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)user_data;
    net_call *c = source->ptr;
    size_t avail = c->out.len - c->out_off;
    if (avail) {
        size_t n = avail < length ? avail : length;
        memcpy(buf, c->out.data + c->out_off, n);
        c->out_off += n;
        return (ssize_t)n;
    }
    if (c->finished && c->tnv && !c->trailers_sent) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, stream_id, c->tnv, c->n_tnv) == 0) c->trailers_sent = 1;
        return 0;
    }
    c->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
}

/* ---- HTTP/2 callbacks ------------------------------------------------ */

static const net_method *find_method(net_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0) return &s->methods[i];
    return NULL;
}

static net_call *stream_call(conn *k, int32_t id)
{
    return nghttp2_session_get_stream_user_data(k->h2, id);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    conn *k = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    net_call *c = calloc(1, sizeof *c);
    if (!c) return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->refs = 1; /* the connection's */
    c->conn = k;
    c->srv = k->srv;
    c->stream_id = frame->hd.stream_id;
    grpc_deframer_init(&c->df, k->srv->cfg.max_message);
    c->next = k->calls;
    k->calls = c;
    k->n_calls++;
    k->srv->st.calls++;
    k->srv->st.calls_total++;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, c);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    conn *k = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    net_call *c = stream_call(k, frame->hd.stream_id);
    if (!c || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers from the client: ignored */
    c->header_bytes += namelen + valuelen;
    if (c->header_bytes > MAX_HEADER_BYTES) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (namelen == 5 && !memcmp(name, ":path", 5)) {
        free(c->path);
        c->path = strndup((const char *)value, valuelen);
        return c->path ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (namelen == 7 && !memcmp(name, ":method", 7)) {
        c->is_post = valuelen == 4 && !memcmp(value, "POST", 4);
        return 0;
    }
    if (namelen == 12 && !memcmp(name, "content-type", 12)) {
        c->is_grpc = valuelen >= 16 && !memcmp(value, "application/grpc", 16);
        return 0;
    }
    if (namelen == 12 && !memcmp(name, "grpc-timeout", 12)) {
        uint64_t ns;
        if (grpc_parse_timeout((const char *)value, valuelen, &ns) == 0) c->deadline = mono_ns() + ns;
        return 0;
    }
    if (namelen && name[0] == ':' && !(namelen == 10 && !memcmp(name, ":authority", 10))) return 0;
    if (c->n_headers < MAX_HEADERS) {
        c->hname[c->n_headers] = strndup((const char *)name, namelen);
        c->hvalue[c->n_headers] = strndup((const char *)value, valuelen);
        if (!c->hname[c->n_headers] || !c->hvalue[c->n_headers]) return NGHTTP2_ERR_CALLBACK_FAILURE;
        c->n_headers++;
    }
    return 0;
}

/* The request headers are complete: route the call. */
static void call_start(conn *k, net_call *c)
{
    net_server *s = k->srv;
    c->m = c->path ? find_method(s, c->path) : NULL;
    if (!c->is_post || !c->is_grpc) {
        /* Not gRPC at all: a plain HTTP/2 request. */
        nghttp2_nv nv[1] = {{(uint8_t *)":status", (uint8_t *)"415", 7, 3, NGHTTP2_NV_FLAG_NONE}};
        c->finished = c->headers_sent = c->trailers_sent = 1;
        nghttp2_submit_response(k->h2, c->stream_id, nv, 1, NULL);
        return;
    }
    if (!c->m) {
        c->started = 1; /* so that finish works; there is no on_close */
        net_call_finish(c, GRPC_UNIMPLEMENTED, "Method not found", NULL, 0);
        return;
    }
    c->started = 1;
    if (c->m->on_start && c->m->on_start(c, c->m->svc) != 0 && !c->finished)
        net_call_finish(c, GRPC_INTERNAL, "call refused", NULL, 0);
}

static void half_close(net_call *c)
{
    if (c->half_closed) return;
    c->half_closed = 1;
    if (!net_call_done(c) && grpc_deframer_partial(&c->df)) {
        net_call_finish(c, GRPC_INTERNAL, "incomplete message at end of stream", NULL, 0);
        return;
    }
    if (!net_call_done(c) && c->m && c->m->on_half_close) c->m->on_half_close(c);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)session;
    conn *k = user_data;
    net_call *c = frame->hd.stream_id ? stream_call(k, frame->hd.stream_id) : NULL;
    if (!c) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) call_start(k, c);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && c->started)
        half_close(c);
    return 0;
}

static int deliver(void *ctx, const uint8_t *msg, size_t len)
{
    net_call *c = ctx;
    if (net_call_done(c)) return 1;
    c->m->on_message(c, msg, len);
    return net_call_done(c) ? 1 : 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data)
{
    (void)session;
    (void)flags;
    conn *k = user_data;
    net_call *c = stream_call(k, stream_id);
    if (!c || !c->m || net_call_done(c)) return 0;
    int rc = grpc_deframe(&c->df, data, len, deliver, c);
    if (rc < 0) {
        k->srv->st.protocol_errors++;
        const char *why = rc == GRPC_DEFRAME_TOO_LARGE    ? "message larger than the server accepts"
                          : rc == GRPC_DEFRAME_COMPRESSED ? "compressed messages are not supported"
                          : rc == GRPC_DEFRAME_NOMEM      ? "out of memory"
                                                          : "malformed gRPC message prefix";
        net_call_finish(c, rc == GRPC_DEFRAME_TOO_LARGE   ? GRPC_RESOURCE_EXHAUSTED
                           : rc == GRPC_DEFRAME_COMPRESSED ? GRPC_UNIMPLEMENTED
                                                           : GRPC_INTERNAL,
                        why, NULL, 0);
    }
    return 0;
}

static void conn_unlink_call(conn *k, net_call *c)
{
    for (net_call **pp = &k->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            k->n_calls--;
            k->srv->st.calls--;
            return;
        }
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    (void)error_code;
    conn *k = user_data;
    net_call *c = stream_call(k, stream_id);
    if (!c) return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    conn_unlink_call(k, c);
    c->conn = NULL;
    call_closed(c);
    net_call_unref(c);
    return 0;
}

/* ---- connections ----------------------------------------------------- */

static void conn_close(conn *k)
{
    if (k->dead) return;
    k->dead = 1;
    net_server *s = k->srv;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, k->fd, NULL);
    close(k->fd);
    /* The calls of this connection are over (NET-4). */
    while (k->calls) {
        net_call *c = k->calls;
        k->calls = c->next;
        s->st.calls--;
        c->conn = NULL;
        call_closed(c);
        net_call_unref(c);
    }
    if (k->h2) nghttp2_session_del(k->h2);
    k->h2 = NULL;
    if (k->prev) k->prev->next = k->next;
    else s->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    k->next = s->dead;
    s->dead = k;
    s->st.connections--;
}

static void arm(conn *k, int out)
{
    if (k->want_out == out) return;
    k->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = k};
    epoll_ctl(k->srv->epfd, EPOLL_CTL_MOD, k->fd, &ev);
}

/* Write what is buffered; then, for HTTP/2, produce more from nghttp2 as
 * long as the socket takes it (NET-2: at most one chunk in wbuf). Not
 * re-entered from nghttp2's callbacks (which may not call mem_send). */
static void conn_flush(conn *k)
{
    if (!k || k->dead) return;
    if (k->in_recv) {
        k->flush_pending = 1;
        return;
    }
    net_server *s = k->srv;
    for (;;) {
        while (k->woff < k->wbuf.len) {
            ssize_t n = write(k->fd, k->wbuf.data + k->woff, k->wbuf.len - k->woff);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    arm(k, 1);
                    return;
                }
                conn_close(k);
                return;
            }
            k->woff += (size_t)n;
            s->st.bytes_out += (uint64_t)n;
        }
        k->wbuf.len = k->woff = 0;
        if (k->kind != CONN_H2 || !k->h2) break;
        /* Gather the frames nghttp2 has ready (up to 64 KiB, NET-2) into one
         * write: a response's headers, messages and trailers go together. */
        for (;;) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(k->h2, &data);
            if (n < 0) {
                conn_close(k);
                return;
            }
            if (n == 0) break;
            if (base_buf_append(&k->wbuf, data, (size_t)n)) {
                conn_close(k);
                return;
            }
            if (k->wbuf.len >= 65536) break;
        }
        if (k->wbuf.len == 0) break;
    }
    arm(k, 0);
    if (k->close_after_write) {
        conn_close(k);
        return;
    }
    if (k->kind == CONN_H2 && k->h2 && !nghttp2_session_want_read(k->h2) && !nghttp2_session_want_write(k->h2)) {
        conn_close(k);
        return;
    }
    /* Output drained: calls that wait for room may produce more. Collect
     * them first (with references): producing can close streams. */
    net_call *ready[64];
    size_t nr = 0;
    for (net_call *c = k->calls; c && nr < 64; c = c->next)
        if (c->want_writable && !net_call_done(c) && net_call_queued(c) < LOW_WATER) {
            c->want_writable = 0;
            net_call_ref(c);
            ready[nr++] = c;
        }
    for (size_t i = 0; i < nr; i++) {
        net_call *c = ready[i];
        if (!net_call_done(c) && c->m && c->m->on_writable) c->m->on_writable(c);
        net_call_unref(c);
    }
}

static int start_h2(conn *k)
{
    net_server *s = k->srv;
    if (nghttp2_session_server_new2(&k->h2, s->cbs, k, s->h2opt)) return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->cfg.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES * 2},
    };
    if (nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv)) return -ENOMEM;
    nghttp2_session_set_local_window_size(k->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    k->kind = CONN_H2;
    return 0;
}

static void h2_input(conn *k, const uint8_t *data, size_t len)
{
    k->in_recv = 1;
    ssize_t rc = nghttp2_session_mem_recv(k->h2, data, len);
    k->in_recv = 0;
    k->flush_pending = 0;
    if (rc < 0) {
        /* A protocol error ends this connection only (NET-3). */
        k->srv->st.protocol_errors++;
        slog(k->srv, 2, "HTTP/2 error from a client: %s", nghttp2_strerror((int)rc));
        nghttp2_session_terminate_session(k->h2, NGHTTP2_PROTOCOL_ERROR);
        k->close_after_write = 1;
    }
    conn_flush(k);
}

/* ---- HTTP/1.1 -------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    }
    return "Unknown";
}

static void http1_reply(conn *k, int status, const char *ctype, const uint8_t *body, size_t len, int close_conn)
{
    base_buf_printf(&k->wbuf,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status, reason(status),
                    ctype ? ctype : "text/plain; charset=utf-8", len, close_conn ? "Connection: close\r\n" : "");
    base_buf_append(&k->wbuf, body, len);
    if (close_conn) k->close_after_write = 1;
}

static int ieq(const char *a, size_t n, const char *b)
{
    return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* Handle every complete request in rbuf. */
static void http1_input(conn *k)
{
    net_server *s = k->srv;
    while (!k->close_after_write) {
        char *buf = (char *)k->rbuf.data;
        size_t len = k->rbuf.len;
        char *end = len >= 4 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
        if (!end) {
            if (len > 16384) http1_reply(k, 431, NULL, (const uint8_t *)"headers too large\n", 18, 1);
            break;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        /* Request line. */
        char *line_end = memmem(buf, head_len, "\r\n", 2);
        char method[16], target[2048];
        int keep = 1;
        if (sscanf(buf, "%15s %2047s HTTP/1.%*d", method, target) != 2 || line_end - buf > 4000) {
            http1_reply(k, 400, NULL, (const uint8_t *)"bad request\n", 12, 1);
            break;
        }
        size_t content_length = 0;
        char accept[256] = "";
        for (char *h = line_end + 2; h < end;) {
            char *he = memmem(h, (size_t)(end - h) + 2, "\r\n", 2);
            if (!he) break;
            char *colon = memchr(h, ':', (size_t)(he - h));
            if (colon) {
                char *v = colon + 1;
                while (v < he && *v == ' ') v++;
                size_t nlen = (size_t)(colon - h), vlen = (size_t)(he - v);
                if (ieq(h, nlen, "content-length")) content_length = strtoul(v, NULL, 10);
                else if (ieq(h, nlen, "connection") && vlen >= 5 && !strncasecmp(v, "close", 5)) keep = 0;
                else if (ieq(h, nlen, "accept") && vlen < sizeof accept) {
                    memcpy(accept, v, vlen);
                    accept[vlen] = 0;
                }
            }
            h = he + 2;
        }
        if (content_length > HTTP1_MAX_REQUEST) {
            http1_reply(k, 413, NULL, (const uint8_t *)"request too large\n", 18, 1);
            break;
        }
        if (len < head_len + content_length) break; /* the body is still coming */
        char *q = strchr(target, '?');
        const char *query = "";
        if (q) {
            *q = 0;
            query = q + 1;
        }
        net_http_req req = {method, target, query, accept, (const uint8_t *)buf + head_len, content_length};
        net_http_resp resp = {404, NULL, {0}};
        if (s->http) s->http(s->http_ctx, &req, &resp);
        else base_buf_append(&resp.body, "not found\n", 10);
        http1_reply(k, resp.status, resp.content_type, resp.body.data, resp.body.len, !keep);
        base_buf_free(&resp.body);
        size_t used = head_len + content_length;
        memmove(k->rbuf.data, k->rbuf.data + used, len - used);
        k->rbuf.len = len - used;
    }
    conn_flush(k);
}

/* ---- reading ---------------------------------------------------------- */

static void conn_readable(conn *k)
{
    net_server *s = k->srv;
    uint8_t buf[READ_CHUNK];
    for (int rounds = 0; rounds < 16 && !k->dead; rounds++) {
        ssize_t n = read(k->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) conn_close(k);
            return;
        }
        if (n == 0) {
            conn_close(k);
            return;
        }
        s->st.bytes_in += (uint64_t)n;
        if (k->kind == CONN_H2) {
            h2_input(k, buf, (size_t)n);
            continue;
        }
        if (base_buf_append(&k->rbuf, buf, (size_t)n)) {
            conn_close(k);
            return;
        }
        if (k->kind == CONN_NEW) {
            size_t cmp = k->rbuf.len < 24 ? k->rbuf.len : 24;
            if (memcmp(k->rbuf.data, H2_PREFACE, cmp) == 0) {
                if (k->rbuf.len < 24) continue; /* wait for the whole preface */
                if (start_h2(k)) {
                    conn_close(k);
                    return;
                }
                base_buf pending = k->rbuf;
                k->rbuf = (base_buf){0};
                h2_input(k, pending.data, pending.len);
                base_buf_free(&pending);
                continue;
            }
            k->kind = CONN_HTTP1;
        }
        if (k->rbuf.len > HTTP1_MAX_REQUEST + 16384) {
            http1_reply(k, 413, NULL, (const uint8_t *)"request too large\n", 18, 1);
            conn_flush(k);
            return;
        }
        http1_input(k);
    }
}

static void accept_all(net_server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE)
                slog(s, 1, "cannot accept a connection: %s", strerror(errno));
            return;
        }
        if (s->st.connections >= s->cfg.max_connections) {
            close(fd); /* over the limit (NET-2) */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *k = calloc(1, sizeof *k);
        if (!k) {
            close(fd);
            continue;
        }
        k->srv = s;
        k->fd = fd;
        k->kind = CONN_NEW;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            free(k);
            continue;
        }
        k->next = s->conns;
        if (s->conns) s->conns->prev = k;
        s->conns = k;
        s->st.connections++;
        s->st.connections_total++;
    }
}

/* ---- the server ------------------------------------------------------- */

int net_post(net_server *s, void (*fn)(void *arg), void *arg)
{
    post *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&s->post_mu);
    if (s->posts_tail) s->posts_tail->next = p;
    else s->posts = p;
    s->posts_tail = p;
    pthread_mutex_unlock(&s->post_mu);
    uint64_t one = 1;
    ssize_t w = write(s->evfd, &one, sizeof one);
    (void)w;
    return 0;
}

static void run_posts(net_server *s)
{
    uint64_t v;
    ssize_t r = read(s->evfd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&s->post_mu);
    post *list = s->posts;
    s->posts = s->posts_tail = NULL;
    pthread_mutex_unlock(&s->post_mu);
    while (list) {
        post *p = list;
        list = p->next;
        p->fn(p->arg);
        free(p);
    }
}

void net_server_stop(net_server *s)
{
    s->stop = 1;
    uint64_t one = 1;
    ssize_t w = write(s->evfd, &one, sizeof one);
    (void)w;
}

static void flush_dirty(net_server *s);

static void free_dead(net_server *s)
{
    /* Dirty connections are written first: the list may name dead ones,
     * which must not be freed while it does. */
    flush_dirty(s);
    while (s->dead) {
        conn *k = s->dead;
        s->dead = k->next;
        base_buf_free(&k->rbuf);
        base_buf_free(&k->wbuf);
        free(k);
    }
}

static int listen_on(net_server *s)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int rc = getaddrinfo(s->cfg.host, port, &hints, &res);
    if (rc) return -EADDRNOTAVAIL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
        rc = -errno;
        close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->lfd = fd;
    return 0;
}

int net_server_new(const net_config *cfg, const net_method *methods, size_t n_methods, net_http_fn http,
                   void *http_ctx, net_server **out)
{
    net_server *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->cfg = *cfg;
    s->methods = methods;
    s->n_methods = n_methods;
    s->http = http;
    s->http_ctx = http_ctx;
    s->lfd = s->epfd = s->evfd = -1;
    pthread_mutex_init(&s->post_mu, NULL);
    int rc = listen_on(s);
    if (rc) goto fail;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->evfd < 0) {
        rc = -errno;
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->lfd};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev);
    ev.data.ptr = &s->evfd;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);
    if (nghttp2_session_callbacks_new(&s->cbs) || nghttp2_option_new(&s->h2opt)) {
        rc = -ENOMEM;
        goto fail;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close);
    /* Bound what one client can make us hold (NET-2). */
    nghttp2_option_set_max_deflate_dynamic_table_size(s->h2opt, 4096);
    nghttp2_option_set_max_outbound_ack(s->h2opt, 1000);
    nghttp2_option_set_max_settings(s->h2opt, 64);
    *out = s;
    return 0;
fail:
    net_server_free(s);
    return rc;
}

int net_server_port(const net_server *s)
{
    return s->port;
}

int net_server_run(net_server *s, int drain_ms)
{
    struct epoll_event evs[128];
    uint64_t drain_until = 0;
    for (;;) {
        if (s->stop && !drain_until) {
            /* Graceful stop: no new connections or calls; let calls end. */
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
            close(s->lfd);
            s->lfd = -1;
            for (conn *k = s->conns; k; k = k->next) {
                if (k->kind == CONN_H2 && k->h2) {
                    nghttp2_submit_goaway(k->h2, NGHTTP2_FLAG_NONE,
                                          nghttp2_session_get_last_proc_stream_id(k->h2), NGHTTP2_NO_ERROR, NULL, 0);
                    conn_flush(k);
                } else {
                    k->close_after_write = 1;
                    conn_flush(k);
                }
            }
            free_dead(s);
            drain_until = mono_ns() + (uint64_t)drain_ms * 1000000u;
        }
        if (drain_until && (s->st.calls == 0 || mono_ns() >= drain_until)) break;
        int n = 0;
        if (s->cfg.spin_hint && s->cfg.spin_hint(s->cfg.spin_ctx) && !drain_until) {
            /* Work is in flight elsewhere and will be posted back soon (an
             * fdatasync): poll for a moment instead of sleeping, which costs
             * a wake-up of tens of microseconds on small virtual machines. */
            uint64_t until = mono_ns() + SPIN_POLL_NS;
            while ((n = epoll_wait(s->epfd, evs, 128, 0)) == 0 && mono_ns() < until) base_cpu_relax();
        }
        int wait_ms = drain_until ? 20 : 1000;
        if (s->cfg.tick_fn && s->cfg.tick_ms) {
            uint64_t now = mono_ns();
            if (!s->next_tick) s->next_tick = now + (uint64_t)s->cfg.tick_ms * 1000000u;
            int to_tick = now >= s->next_tick ? 0 : (int)((s->next_tick - now + 999999u) / 1000000u);
            if (to_tick < wait_ms) wait_ms = to_tick;
        }
        if (n == 0) n = epoll_wait(s->epfd, evs, 128, wait_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &s->lfd) {
                accept_all(s);
            } else if (p == &s->evfd) {
                run_posts(s);
            } else {
                conn *k = p;
                if (k->dead) continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                    conn_close(k);
                    continue;
                }
                if (evs[i].events & EPOLLOUT) conn_flush(k);
                if (!k->dead && evs[i].events & EPOLLIN) conn_readable(k);
            }
        }
        if (s->cfg.tick_fn && s->cfg.tick_ms && mono_ns() >= s->next_tick) {
            s->next_tick = mono_ns() + (uint64_t)s->cfg.tick_ms * 1000000u;
            s->cfg.tick_fn(s->cfg.tick_ctx);
        }
        free_dead(s);
    }
    flush_dirty(s);
    while (s->conns) conn_close(s->conns);
    /* Work posted by other threads for calls that are gone. */
    run_posts(s);
    free_dead(s);
    return 0;
}

void net_server_free(net_server *s)
{
    if (!s) return;
    while (s->conns) conn_close(s->conns);
    free_dead(s);
    /* Completions posted after the loop ended (work that was in flight
     * elsewhere) still run: they release what their calls held. */
    while (s->posts) {
        post *list = s->posts;
        s->posts = s->posts_tail = NULL;
        while (list) {
            post *p = list;
            list = p->next;
            p->fn(p->arg);
            free(p);
        }
    }
    if (s->lfd >= 0) close(s->lfd);
    if (s->epfd >= 0) close(s->epfd);
    if (s->evfd >= 0) close(s->evfd);
    if (s->cbs) nghttp2_session_callbacks_del(s->cbs);
    if (s->h2opt) nghttp2_option_del(s->h2opt);
    pthread_mutex_destroy(&s->post_mu);
    free(s);
}

void net_server_stats(const net_server *s, net_stats *st)
{
    *st = s->st;
}
