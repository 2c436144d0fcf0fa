/*
 * server.c - the event loop and the connections of net.h.
 *
 * A connection starts undecided: the first bytes tell HTTP/2 (the client
 * preface "PRI * HTTP/2.0") from HTTP/1.1. HTTP/2 connections get an
 * nghttp2 server session (its calls are call.c's); its output is produced
 * with nghttp2_session_mem_send only when the connection's write buffer is
 * empty, so at most one chunk per connection waits in user space (NET-2).
 * HTTP/1.1 connections read one request at a time (http1.c parses it) and
 * answer through the http handler.
 *
 * Everything a client makes the server hold is charged to its connection
 * and to the server (NET-5): buffers, calls, nghttp2's own memory (through
 * its allocator hook), decoded messages and the handlers' state. A
 * connection over its cap has the call that pushed it over refused; the
 * server over its budget closes the connection holding the most, as Redis
 * does with maxmemory-clients, and takes no new connections until it is
 * back under. Incomplete requests are given request_timeout_ms (NET-7).
 *
 * With TLS on the port (net_server_set_tls), a connection's first byte
 * tells a TLS ClientHello (0x16) from cleartext sent to the wrong port
 * (answered in cleartext, then closed). Every byte of a connection passes
 * through one small transport, conn_recv/conn_send: read/write on the
 * socket, or tls.c's SSL on it. The handshake runs on the loop,
 * non-blocking, within a budget of time per turn (HS_TURN_NS) so that a
 * flood of handshakes delays established clients by at most about that
 * much per turn; a handshake that does not finish gets request_timeout_ms
 * like any incomplete request (NET-7). Bytes OpenSSL has read from the
 * socket but not yet handed out when a connection's share of the turn is
 * spent are invisible to epoll: such connections go on a pending list and
 * are read in the next turn, which then does not sleep.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "net/net.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "net/http1.h"
#include "net/server_int.h"
#include "net/tls.h"

#define READ_CHUNK 65536
#define TURN_READ_BYTES (1u << 20) /* bytes read from all connections in one turn of the loop */
#define SPIN_POLL_NS 400000u
#define SWEEP_NS 1000000000u
#define POST_TURN_NS 2000000u /* deferred work run per turn of the loop */
/* What a connection is charged from its accept until its protocol is known:
 * about what its HTTP/2 session will cost (nghttp2 allocates ~26 KiB), so
 * that connections are refused before they put the server over (NET-5). */
#define CONN_RESERVE (32u << 10)
/* Connections holding this much are evicted first, the largest first;
 * below it, the one idle the longest (NET-5). */
#define EVICT_LARGE (1u << 20)
/* Time the TLS handshakes of one turn may take (at least one step runs):
 * a flood of handshakes delays everyone else by about this per turn. The
 * hostile suite's tls phase measured 1 ms and 0.3 ms: established clients'
 * median during a flood followed it (2.6 ms, 0.9 ms), handshakes served
 * did not. */
#define HS_TURN_NS 300000u
/* Per-connection log lines (failed handshakes, wrong protocols) per second:
 * a flood must not flood the log. */
#define LOG_PER_SEC 10

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

void net_log(net_server *s, int level, const char *fmt, ...)
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
    c->max_client_memory = 1024u << 20;
    c->max_connection_memory = 128u << 20;
    c->request_timeout_ms = 30000;
    c->drive_fd = -1;
}

/* A per-connection log line, rate-limited. */
static void net_log_conn(net_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void net_log_conn(net_server *s, int level, const char *fmt, ...)
{
    uint64_t sec = s->now / 1000000000u;
    if (sec != s->log_sec) {
        if (s->log_n > LOG_PER_SEC)
            net_log(s, 1, "%llu more connection errors like the above in the last second were not logged",
                    (unsigned long long)(s->log_n - LOG_PER_SEC));
        s->log_sec = sec;
        s->log_n = 0;
    }
    if (++s->log_n > LOG_PER_SEC || !s->cfg.log_fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->cfg.log_fn(s->cfg.log_ctx, level, buf);
}

uint64_t net_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- memory accounting (NET-5) ------------------------------------------ */

/* How far the server may go over its budget before charges are refused:
 * eviction runs after each event, and one event's growth may overshoot. */
static size_t over_margin(const net_server *s)
{
    size_t m = s->cfg.max_client_memory / 64;
    return m < (4u << 20) ? (4u << 20) : m;
}

int net_charge(net_server *s, conn *k, net_call *c, size_t n)
{
    if (k && (k->mem + n > s->cfg.max_connection_memory || k->mem + n < k->mem)) {
        s->st.refused_charges++;
        return -ENOBUFS;
    }
    /* A hard ceiling: whoever grows past the budget and its margin before
     * the next eviction is refused (NET-5). */
    if (k && s->mem + n > s->cfg.max_client_memory + over_margin(s)) {
        s->st.refused_charges++;
        return -ENOBUFS;
    }
    if (k) k->mem += n;
    if (c) c->mem += n;
    s->mem += n;
    if (s->mem > s->st.mem_peak) s->st.mem_peak = s->mem;
    return 0;
}

void net_release(net_server *s, conn *k, net_call *c, size_t n)
{
    if (k) k->mem -= n;
    if (c) c->mem -= n;
    s->mem -= n;
}

int net_buf_append(net_server *s, conn *k, net_call *c, base_buf *b, const void *p, size_t n)
{
    size_t cap = base_buf_cap_after(b, n);
    if (cap == SIZE_MAX) return -ENOMEM;
    size_t grow = cap - b->cap;
    if (grow && net_charge(s, k, c, grow)) return -ENOBUFS;
    if (base_buf_reserve(b, n)) {
        net_release(s, k, c, grow);
        return -ENOMEM;
    }
    if (p && n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void net_buf_free(net_server *s, conn *k, net_call *c, base_buf *b)
{
    if (b->cap) net_release(s, k, c, b->cap);
    base_buf_free(b);
    *b = (base_buf){0};
}

/* nghttp2's allocations, charged to their connection: what malloc really
 * reserved, plus its header. */
static size_t real_size(void *p)
{
    return p ? malloc_usable_size(p) + sizeof(size_t) : 0;
}

/* Charge without a cap: the bytes are already taken (exact sizes after
 * an allocation the cap was checked for). */
static void charge_force(net_server *s, conn *k, size_t n)
{
    k->mem += n;
    s->mem += n;
    if (s->mem > s->st.mem_peak) s->st.mem_peak = s->mem;
}

static int h2_room(conn *k, size_t n)
{
    if (k->mem + n <= k->srv->cfg.max_connection_memory) return 1;
    k->srv->st.refused_charges++;
    return 0; /* nghttp2 fails the session: the connection ends (NET-5) */
}

static void *h2_malloc(size_t size, void *ud)
{
    conn *k = ud;
    if (!h2_room(k, size)) return NULL;
    void *p = malloc(size);
    if (p) charge_force(k->srv, k, real_size(p));
    return p;
}

static void h2_free(void *p, void *ud)
{
    conn *k = ud;
    if (!p) return;
    size_t n = real_size(p);
    free(p);
    net_release(k->srv, k, NULL, n);
}

static void *h2_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size && nmemb > SIZE_MAX / size) return NULL;
    void *p = h2_malloc(nmemb * size, ud);
    if (p) memset(p, 0, nmemb * size);
    return p;
}

static void *h2_realloc(void *p, size_t size, void *ud)
{
    conn *k = ud;
    if (!p) return h2_malloc(size, ud);
    size_t before = real_size(p);
    if (size > before && !h2_room(k, size - before)) return NULL;
    void *q = realloc(p, size);
    if (!q) return NULL;
    net_release(k->srv, k, NULL, before);
    charge_force(k->srv, k, real_size(q));
    return q;
}

/* The connection's protocol is known: its reservation gives way to what it
 * really holds. */
static void unreserve(conn *k)
{
    if (!k->reserved) return;
    k->reserved = 0;
    net_release(k->srv, k, NULL, CONN_RESERVE);
}

/* ---- connections ----------------------------------------------------- */


void conn_close(conn *k)
{
    if (k->dead) return;
    k->dead = 1;
    net_server *s = k->srv;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, k->fd, NULL);
    if (k->ssl) tls_conn_free(k->ssl, !k->tls_failed); /* close_notify, if it can go now */
    k->ssl = NULL;
    close(k->fd);
    call_close_all(k); /* the calls of this connection are over (NET-4) */
    if (k->http_auth) k->http_auth->k = NULL; /* NET-8: its answer finds no one */
    k->http_auth = NULL;
    net_http_later *later = k->http_later;
    k->http_later = NULL;
    if (later) { /* NET-9: nor does this one; its handler may give up its work */
        later->k = NULL;
        if (later->gone_fn) later->gone_fn(later->gone_arg);
    }
    http1_drop_principal(k);
    unreserve(k);
    if (k->tls_mem) net_release(s, k, NULL, k->tls_mem);
    k->tls_mem = 0;
    if (k->peer_cn) net_release(s, k, NULL, real_size(k->peer_cn));
    free(k->peer_cn);
    k->peer_cn = NULL;
    if (k->auth_slot && s->cfg.auth_slot_free) s->cfg.auth_slot_free(s->cfg.auth_ctx, k->auth_slot);
    k->auth_slot = NULL;
    if (k->pending) { /* off the pending list */
        for (conn **pp = &s->pending; *pp; pp = &(*pp)->pending_next)
            if (*pp == k) {
                *pp = k->pending_next;
                break;
            }
        k->pending = 0;
    }
    if (k->h2) nghttp2_session_del(k->h2);
    k->h2 = NULL;
    net_buf_free(s, k, NULL, &k->rbuf);
    net_buf_free(s, k, NULL, &k->wbuf);
    if (k->prev) k->prev->next = k->next;
    else s->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    k->next = s->dead;
    s->dead = k;
    s->st.connections--;
}

static void arm(conn *k, int out)
{
    out = out || k->tls_read_wants_write; /* TLS-2: a read that waits for room */
    if (k->want_out == out) return;
    k->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = k};
    epoll_ctl(k->srv->epfd, EPOLL_CTL_MOD, k->fd, &ev);
}

/* ---- the transport: every byte of a connection passes here ---------- */

/* Read up to n bytes: > 0, 0 at the end, -EAGAIN (nothing now), or another
 * negative value (the connection is broken). */
static ssize_t conn_recv(conn *k, void *buf, size_t n)
{
    if (!k->ssl) {
        for (;;) {
            ssize_t r = read(k->fd, buf, n);
            if (r >= 0) return r;
            if (errno == EINTR) continue;
            return errno == EAGAIN ? -EAGAIN : -EPIPE;
        }
    }
    int want = 0;
    char why[160] = "";
    ssize_t r = tls_conn_read(k->ssl, buf, n, &want, why, sizeof why);
    int was = k->tls_read_wants_write;
    k->tls_read_wants_write = r == -EAGAIN && want == TLS_WANT_WRITE;
    if (k->tls_read_wants_write != was) arm(k, k->want_out);
    if (r == -EPROTO) {
        k->tls_failed = 1;
        net_log_conn(k->srv, 2, "TLS error from a client: %s; closing its connection", why);
    }
    if (r == -EPIPE) k->tls_failed = 1;
    return r;
}

/* Write up to n bytes: > 0 taken, -EAGAIN (the socket is full; the same
 * bytes again later, from wherever they are then), or another negative
 * value (the connection is broken). */
static ssize_t conn_send(conn *k, const void *p, size_t n)
{
    if (!k->ssl) {
        for (;;) {
            ssize_t r = write(k->fd, p, n);
            if (r >= 0) return r;
            if (errno == EINTR) continue;
            return errno == EAGAIN ? -EAGAIN : -EPIPE;
        }
    }
    int want = 0;
    ssize_t r = tls_conn_write(k->ssl, p, n, &want);
    k->tls_write_wants_read = r == -EAGAIN && want == TLS_WANT_READ;
    if (r < 0 && r != -EAGAIN) k->tls_failed = 1;
    return r;
}

/* Output was queued on k: write it once this round of events is handled, so
 * that many messages share one write (a read sends hundreds per round). */
void conn_mark(conn *k)
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

/* Write what is buffered; then, for HTTP/2, produce more from nghttp2 as
 * long as the socket takes it (NET-2: at most one chunk in wbuf). Not
 * re-entered from nghttp2's callbacks (which may not call mem_send). */
static void tls_account(conn *k);
static void conn_flush_io(conn *k);

void conn_flush(conn *k)
{
    if (!k || k->dead) return;
    conn_flush_io(k);
    if (k->ssl) tls_account(k);
}

static void conn_flush_io(conn *k)
{
    if (k->in_recv) {
        k->flush_pending = 1;
        return;
    }
    net_server *s = k->srv;
    for (;;) {
        while (k->woff < k->wbuf.len) {
            ssize_t n = conn_send(k, k->wbuf.data + k->woff, k->wbuf.len - k->woff);
            if (n < 0) {
                if (n == -EAGAIN) {
                    arm(k, !k->tls_write_wants_read); /* TLS-2: or wait for bytes from the peer */
                    return;
                }
                conn_close(k);
                return;
            }
            k->woff += (size_t)n;
            s->st.bytes_out += (uint64_t)n;
        }
        k->woff = 0;
        net_buf_free(s, k, NULL, &k->wbuf);
        if (k->kind != CONN_H2 || !k->h2) break;
        /* Gather the frames nghttp2 has ready (up to 64 KiB, NET-2) into one
         * write: a response's headers, messages and trailers go together. */
        base_buf *g = &s->scratch;
        g->len = 0;
        for (;;) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(k->h2, &data);
            if (n < 0 || (n > 0 && base_buf_append(g, data, (size_t)n))) {
                conn_close(k);
                return;
            }
            if (n == 0 || g->len >= 65536) break;
        }
        if (g->len == 0) break;
        size_t off = 0;
        while (off < g->len) {
            ssize_t n = conn_send(k, g->data + off, g->len - off);
            if (n < 0 && n != -EAGAIN) {
                conn_close(k);
                return;
            }
            if (n < 0) break;
            off += (size_t)n;
            s->st.bytes_out += (uint64_t)n;
        }
        if (off < g->len) {
            /* The socket is full: the rest waits in the connection (at most
             * one gathering, NET-2), charged to it. */
            if (net_buf_append(s, k, NULL, &k->wbuf, g->data + off, g->len - off)) {
                conn_close(k);
                return;
            }
            arm(k, !k->tls_write_wants_read);
            return;
        }
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
    call_writable(k); /* output drained: calls that wait for room may produce more */
}

static int start_h2(conn *k)
{
    net_server *s = k->srv;
    nghttp2_mem mem = {k, h2_malloc, h2_free, h2_calloc, h2_realloc};
    if (nghttp2_session_server_new3(&k->h2, s->cbs, k, s->h2opt, &mem)) return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->cfg.max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES * 2},
    };
    if (nghttp2_submit_settings(k->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv)) return -ENOMEM;
    nghttp2_session_set_local_window_size(k->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    k->kind = CONN_H2;
    k->req_started = 0;
    unreserve(k);
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
        net_log(k->srv, 2, "HTTP/2 error from a client: %s", nghttp2_strerror((int)rc));
        nghttp2_session_terminate_session(k->h2, NGHTTP2_PROTOCOL_ERROR);
        k->close_after_write = 1;
    }
    conn_flush(k);
}

const char *conn_peer(conn *k)
{
    if (!k->peer[0]) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(k->fd, (struct sockaddr *)&ss, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&ss, sl, k->peer, sizeof k->peer, NULL, 0, NI_NUMERICHOST) != 0)
            k->peer[0] = 0;
    }
    return k->peer;
}

/* What cleartext on the TLS port is told over HTTP/2. */
static const char TLS_REQUIRED_H2[] =
    "factumd requires TLS on this port: connect with tls=true (kurrentdb://host:port?tls=true&tlsCAFile=ca.crt)";

/* ---- protocols on the wrong port ------------------------------------- */

/* Cleartext on the TLS port. An HTTP/1.1 request is read as usual (the
 * parser's limits and NET-7's timeout hold) and answered 400 saying why
 * (http1_input, tls_required). An HTTP/2 preface gets SETTINGS and GOAWAY
 * (INADEQUATE_SECURITY) whose debug data says why; what it sent is read
 * and dropped. Then the connection closes. 1 if the bytes are to be read
 * as HTTP/1.1. */
static int plaintext_on_tls_port(conn *k, size_t budget, const uint8_t *head, size_t hl)
{
    net_server *s = k->srv;
    s->st.tls_failures++;
    s->st.protocol_errors++;
    int h2 = hl >= 3 && memcmp(head, H2_PREFACE, hl) == 0; /* "PRI", not "POST", "PUT" or "PATCH" */
    net_log_conn(s, 1, "a client sent cleartext %s to the TLS port: answered that factumd requires TLS",
                 h2 ? "HTTP/2 (gRPC with tls=false?)" : "HTTP/1.1");
    unreserve(k);
    k->kind = CONN_HTTP1; /* answered in cleartext, then closed */
    if (!h2) {
        k->tls_required = 1;
        return 1;
    }
    uint8_t buf[4096];
    size_t got = 0;
    ssize_t n;
    while (got < budget && (n = conn_recv(k, buf, sizeof buf)) > 0)
        got += (size_t)n;
    if (!k->dead) {
        uint8_t f[9 + 9 + 8 + sizeof TLS_REQUIRED_H2];
        size_t dl = sizeof TLS_REQUIRED_H2 - 1, gl = 8 + dl;
        memset(f, 0, sizeof f);
        f[3] = 4; /* SETTINGS, empty */
        f[9] = (uint8_t)(gl >> 16), f[10] = (uint8_t)(gl >> 8), f[11] = (uint8_t)gl;
        f[12] = 7;                       /* GOAWAY, stream 0, last stream 0 */
        f[18 + 7] = 0x0c;                /* INADEQUATE_SECURITY */
        memcpy(f + 26, TLS_REQUIRED_H2, dl);
        if (net_buf_append(s, k, NULL, &k->wbuf, f, 26 + dl)) {
            conn_close(k);
            return 0;
        }
        k->close_after_write = 1;
    }
    conn_flush(k);
    return 0;
}

/* A TLS ClientHello on a cleartext (--insecure) port: a TLS alert record
 * (handshake_failure) the client's TLS library reports, and a log line. */
static void tls_on_plain_port(conn *k)
{
    static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    net_server *s = k->srv;
    s->st.protocol_errors++;
    net_log_conn(s, 1, "a client started a TLS handshake, but factumd runs with --insecure and speaks cleartext: "
                       "connect with tls=false, or start factumd with certificates");
    unreserve(k);
    k->kind = CONN_HTTP1;
    net_buf_free(s, k, NULL, &k->rbuf);
    if (net_buf_append(s, k, NULL, &k->wbuf, alert, sizeof alert)) {
        conn_close(k);
        return;
    }
    k->close_after_write = 1;
    conn_flush(k);
}

/* ---- TLS handshakes ------------------------------------------------------ */

/* The first bytes on a TLS port: a ClientHello starts the handshake,
 * anything else is cleartext sent to the wrong port. 1 if TLS goes on, 2
 * if cleartext HTTP/1.1 is to be read (and refused), 0 if not now. */
static int tls_classify(conn *k, size_t budget)
{
    net_server *s = k->srv;
    uint8_t head[24];
    ssize_t n;
    while ((n = recv(k->fd, head, sizeof head, MSG_PEEK)) < 0 && errno == EINTR) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        conn_close(k);
        return 0;
    }
    if (n < 0) return 0;
    if (head[0] != 0x16) /* not a TLS handshake record */
        return plaintext_on_tls_port(k, budget, head, (size_t)n) ? 2 : 0;
    if (net_charge(s, k, NULL, TLS_MEM_HANDSHAKE)) { /* TLS-5 */
        conn_close(k);
        return 0;
    }
    k->tls_mem = TLS_MEM_HANDSHAKE;
    k->ssl = tls_conn_new(s->tls, k->fd, &k->tls_drained);
    if (!k->ssl) {
        conn_close(k);
        return 0;
    }
    k->is_tls = 1;
    return 1;
}

/* One step of k's handshake, within the turn's budget. 1 when the
 * connection is open for application bytes. */
static int tls_step(conn *k)
{
    net_server *s = k->srv;
    if (s->hs_spent >= HS_TURN_NS) {
        s->st.tls_deferred++; /* the next turn: its bytes stay in the socket (epoll is level-triggered) */
        return 0;
    }
    char why[256];
    uint64_t t0 = net_mono_ns();
    int rc = tls_conn_handshake(k->ssl, why, sizeof why);
    s->hs_spent += net_mono_ns() - t0;
    if (rc > 0) {
        int was = k->tls_read_wants_write;
        k->tls_read_wants_write = rc == TLS_WANT_WRITE;
        if (was != k->tls_read_wants_write) arm(k, k->want_out);
        return 0;
    }
    if (rc < 0) {
        s->st.tls_failures++;
        k->tls_failed = 1;
        if (rc == -EPROTO) net_log_conn(s, 2, "TLS handshake with a client failed: %s", why);
        conn_close(k);
        return 0;
    }
    k->tls_open = 1;
    k->tls_read_wants_write = 0;
    arm(k, k->want_out);
    s->st.tls_handshakes++;
    /* TLS-5: from the handshake's share to an open connection's */
    net_release(s, k, NULL, k->tls_mem);
    k->tls_mem = 0;
    if (net_charge(s, k, NULL, TLS_MEM_OPEN)) {
        conn_close(k);
        return 0;
    }
    k->tls_mem = TLS_MEM_OPEN;
    char *cn = tls_conn_peer_cn(k->ssl);
    if (cn && net_charge(s, k, NULL, real_size(cn))) {
        free(cn);
        conn_close(k);
        return 0;
    }
    k->peer_cn = cn;
    if (s->cfg.log_fn) { /* debug level, opt-in: not rate-limited */
        char alpn[32];
        tls_conn_alpn(k->ssl, alpn, sizeof alpn);
        net_log(s, 3, "TLS connection: %s, ALPN %s, client certificate %s%s", SSL_get_version(k->ssl),
                     alpn[0] ? alpn : "none", cn ? "CN=" : "none", cn ? cn : "");
    }
    return 1;
}

/* TLS-5: an open TLS connection is charged TLS_MEM_OPEN, and a record
 * buffer more for each direction in which OpenSSL holds a partial record
 * (bytes it read and we have not taken; a write the socket did not take,
 * which then also waits in wbuf). Those bytes are already held: charged
 * without a cap, like nghttp2's. */
static void tls_account(conn *k)
{
    if (!k->ssl || !k->tls_open || k->dead) return;
    size_t want = TLS_MEM_OPEN + (tls_conn_pending(k->ssl) ? TLS_MEM_RECORD : 0) +
                  (k->woff < k->wbuf.len ? TLS_MEM_RECORD : 0);
    if (want > k->tls_mem) charge_force(k->srv, k, want - k->tls_mem);
    else if (want < k->tls_mem) net_release(k->srv, k, NULL, k->tls_mem - want);
    k->tls_mem = want;
}

static void pending_add(conn *k)
{
    if (k->pending || k->dead) return;
    k->pending = 1;
    k->pending_next = k->srv->pending;
    k->srv->pending = k;
}

/* ---- reading ---------------------------------------------------------- */

/* Read at most `budget` bytes (this connection's share of the turn). */
static void conn_readable(conn *k, size_t budget)
{
    net_server *s = k->srv;
    if (k->kind == CONN_NEW && !k->ssl) {
        if (s->tls) {
            if (!tls_classify(k, budget)) return;
        } else if (k->rbuf.len == 0) {
            uint8_t b;
            if (recv(k->fd, &b, 1, MSG_PEEK) == 1 && b == 0x16) {
                tls_on_plain_port(k);
                return;
            }
        }
    }
    if (k->ssl && !k->tls_open && !tls_step(k)) return;
    uint8_t buf[READ_CHUNK];
    size_t got = 0;
    int drained = 0; /* TLS-6: no read just to meet EAGAIN (epoll is level-triggered) */
    for (; got < budget && !k->dead && !drained;) {
        size_t want = budget - got < sizeof buf ? budget - got : sizeof buf;
        ssize_t n = conn_recv(k, buf, want);
        if (n == -EAGAIN) break;
        if (n <= 0) {
            conn_close(k);
            return;
        }
        drained = k->ssl ? k->tls_drained && !tls_conn_pending(k->ssl) : (size_t)n < want;
        s->st.bytes_in += (uint64_t)n;
        got += (size_t)n;
        k->last_active = s->now;
        if (k->kind == CONN_H2) {
            h2_input(k, buf, (size_t)n);
            continue;
        }
        if (net_buf_append(s, k, NULL, &k->rbuf, buf, (size_t)n)) {
            conn_close(k);
            return;
        }
        if (!k->req_started) k->req_started = s->now; /* NET-7 */
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
                net_buf_free(s, k, NULL, &pending); /* k may be closed by now: it is freed only after this round */
                continue;
            }
            k->kind = CONN_HTTP1;
            unreserve(k);
        }
        http1_input(k);
    }
    /* The share is spent: bytes OpenSSL already holds would not wake epoll
     * again. */
    if (got >= budget && k->ssl && !k->dead && tls_conn_pending(k->ssl)) pending_add(k);
    tls_account(k);
}

static void accept_all(net_server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE)
                net_log(s, 1, "cannot accept a connection: %s", strerror(errno));
            return;
        }
        if (s->st.connections >= s->cfg.max_connections ||
            s->mem + sizeof(conn) + CONN_RESERVE > s->cfg.max_client_memory) {
            /* over the limit (NET-2), or the budget is (nearly) spent (NET-5) */
            s->st.connections_refused++;
            close(fd);
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
        k->mem = sizeof *k + CONN_RESERVE;
        s->mem += sizeof *k + CONN_RESERVE;
        k->reserved = 1;
        k->last_active = s->now;
        k->req_started = s->now; /* the first request (or the preface) must come in time (NET-7) */
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
        k->id = s->st.connections_total;
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

/* Run what other threads posted (completions: cheap, and what clients
 * wait for), all of it. */
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

int net_defer(net_server *s, void (*fn)(void *arg), void *arg)
{
    post *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    if (s->deferred_tail) s->deferred_tail->next = p;
    else s->deferred = p;
    s->deferred_tail = p;
    return 0;
}

/* Run deferred work (the continuations of long reads, subscriptions and
 * groups) for at most POST_TURN_NS: what is left waits for the next turn,
 * after the sockets and the completions, so a burst of continuations
 * (hundreds of large reads) holds nobody's answers back. What is deferred
 * meanwhile runs in a later turn. */
static void run_deferred(net_server *s)
{
    post *list = s->deferred, *last = s->deferred_tail;
    s->deferred = s->deferred_tail = NULL;
    uint64_t until = net_mono_ns() + POST_TURN_NS;
    for (int n = 0; list; n++) {
        if ((n & 7) == 7 && net_mono_ns() >= until) {
            last->next = s->deferred; /* the rest goes first next turn */
            if (!s->deferred) s->deferred_tail = last;
            s->deferred = list;
            return;
        }
        post *p = list;
        list = p->next;
        p->fn(p->arg);
        free(p);
    }
}

void net_server_set_tls(net_server *s, struct ssl_ctx_st *ctx)
{
    if (s->tls) SSL_CTX_free(s->tls); /* connections hold their own references (TLS-4) */
    s->tls = ctx;
}

void net_server_request_reload(net_server *s)
{
    s->reload = 1;
    uint64_t one = 1;
    ssize_t w = write(s->evfd, &one, sizeof one);
    (void)w;
}

void net_server_stop(net_server *s)
{
    s->stop = 1;
    uint64_t one = 1;
    ssize_t w = write(s->evfd, &one, sizeof one);
    (void)w;
}

int net_server_stopping(const net_server *s)
{
    return s->stop != 0;
}

static void free_dead(net_server *s)
{
    /* Dirty connections are written first: the list may name dead ones,
     * which must not be freed while it does. */
    flush_dirty(s);
    while (s->dead) {
        conn *k = s->dead;
        s->dead = k->next;
        assert(k->mem == sizeof *k); /* NET-5: everything the connection held was given back */
        s->mem -= sizeof *k;
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
    spinwin_init(&s->poll_win, (uint32_t)cfg->poll_after_answer_us * 1000u); /* NET-11 */
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
    if (s->cfg.drive_fd >= 0 && s->cfg.drive_run) {
        struct epoll_event dev = {.events = EPOLLIN, .data.ptr = &s->cfg.drive_fd};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->cfg.drive_fd, &dev);
    }
    if (nghttp2_session_callbacks_new(&s->cbs) || nghttp2_option_new(&s->h2opt)) {
        rc = -ENOMEM;
        goto fail;
    }
    call_h2_callbacks(s->cbs);
    /* Bound what one client can make us hold (NET-2), and open stream
     * windows only as calls take their bytes (NET-6). */
    nghttp2_option_set_no_auto_window_update(s->h2opt, 1);
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

/* NET-5: the server holds more for its clients than its budget. Close the
 * connection that holds the most (a well-behaved client holds little, so
 * it is the last to go), until back under. What a closed connection held
 * is released as its calls end; work in flight elsewhere (appends waiting
 * for their fdatasync) releases its share when it completes. */
static void evict(net_server *s)
{
    int evicted = 0;
    for (int rounds = 0; rounds < 64 && s->mem > s->cfg.max_client_memory; rounds++) {
        /* The largest holder if it holds much; else many hold little (idle
         * connections, say): the one idle the longest, so that a client at
         * work is the last to go. */
        conn *big = NULL, *idle = NULL;
        for (conn *k = s->conns; k; k = k->next) {
            if (!big || k->mem > big->mem) big = k;
            if (!idle || k->last_active < idle->last_active) idle = k;
        }
        if (!big) return;
        if (big->mem < EVICT_LARGE) big = idle;
        net_log(s, 1, "clients hold %zu bytes, over the budget of %zu: closing the connection that holds the most "
                      "(%zu bytes, %zu calls)",
                s->mem, s->cfg.max_client_memory, big->mem, big->n_calls);
        s->st.evictions++;
        if (big->h2 && big->woff == big->wbuf.len) { /* not in the middle of a frame */
            nghttp2_session_terminate_session(big->h2, NGHTTP2_ENHANCE_YOUR_CALM);
            const uint8_t *data;
            ssize_t w = nghttp2_session_mem_send(big->h2, &data); /* the GOAWAY, if the socket takes it */
            if (w > 0 && conn_send(big, data, (size_t)w) < 0) w = 0;
        }
        conn_close(big);
        evicted = 1;
    }
    /* What the evicted held is free: give the heap's free pages back to the
     * system, so that the resident size follows the budget down. */
    if (evicted) malloc_trim(0);
}

/* NET-7: a connection whose preface or HTTP/1.1 request is still incomplete
 * after request_timeout_ms is closed (slow-loris); a gRPC message that has
 * stopped arriving ends its call. */
static void sweep(net_server *s)
{
    uint64_t now = net_mono_ns(), limit = (uint64_t)s->cfg.request_timeout_ms * 1000000u;
    if (!limit) return;
    for (conn *k = s->conns, *next; k; k = next) {
        next = k->next; /* closing k moves it to the dead list */
        if (k->kind == CONN_H2) {
            call_sweep(k, now);
            continue;
        }
        if (k->req_started && now - k->req_started > limit && !k->close_after_write) {
            s->st.timeouts++;
            if (k->kind == CONN_HTTP1 && k->wbuf.len == 0)
                http1_reply(k, 408, NULL, (const uint8_t *)"request timeout\n", 16, 1);
            k->close_after_write = 1;
            conn_flush(k);
        }
    }
}

static int drive_ready(net_server *s)
{
    return s->cfg.drive_run && s->cfg.drive_ready(s->cfg.drive_ctx);
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
            for (conn *k = s->conns, *next; k; k = next) {
                next = k->next; /* flushing may close k */
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
            drain_until = net_mono_ns() + (uint64_t)drain_ms * 1000000u;
        }
        if (drain_until && (s->st.calls == 0 || net_mono_ns() >= drain_until)) break;
        int n = 0;
        /* NET-11: after a turn that answered a call, poll for the next
         * request instead of sleeping (a wake-up costs tens of microseconds
         * on small virtual machines), as long as that pays (SPIN-1..3 of
         * src/base/spinwin.h): three polls in a row that catch nothing close
         * the window (the loop sleeps, and probes now and then); a request
         * that comes within the window, polled for or slept through, opens
         * it again and starts the count again. A client that
         * calls one after the other keeps it; one that calls every few
         * milliseconds costs a few polls, then one in 64 answers. */
        int answered = s->answered;
        s->answered = 0;
        int hint = s->cfg.spin_hint && s->cfg.spin_hint(s->cfg.spin_ctx);
        uint32_t span = 0;
        int verdict = 0; /* after an answer: the window awaits this turn's verdict */
        uint64_t wait_start = 0;
        if (hint) {
            span = SPIN_POLL_NS;
        } else if (answered && s->poll_win.max_ns) {
            span = spinwin_span(&s->poll_win);
            verdict = 1;
        }
        if (span && drain_until) span = 0;
        if (verdict || span) wait_start = net_mono_ns();
        if (span) {
            /* Work is in flight elsewhere and will be posted back soon (an
             * fdatasync), or a client's next call is likely. */
            uint64_t until = wait_start + span;
            while (!drive_ready(s) && (n = epoll_wait(s->epfd, evs, 128, 0)) == 0 && net_mono_ns() < until)
                sched_yield(); /* a client woken on this CPU runs now, not after the spin */
            if (verdict && (n > 0 || drive_ready(s))) {
                spinwin_after(&s->poll_win, span, 1, 0);
                verdict = 0;
            }
        }
        int wait_ms = s->deferred || s->pending || drive_ready(s) ? 0 : drain_until ? 20 : 1000;
        if (s->cfg.tick_fn && s->cfg.tick_ms) {
            uint64_t now = net_mono_ns();
            if (!s->next_tick) s->next_tick = now + (uint64_t)s->cfg.tick_ms * 1000000u;
            int to_tick = now >= s->next_tick ? 0 : (int)((s->next_tick - now + 999999u) / 1000000u);
            if (to_tick < wait_ms) wait_ms = to_tick;
        }
        if (n == 0) n = epoll_wait(s->epfd, evs, 128, wait_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        s->now = net_mono_ns(); /* the time of this turn: connections' activity, partial messages (NET-7) */
        if (verdict) /* slept (through what came, or until a timer) */
            spinwin_after(&s->poll_win, span, 0, n > 0 ? s->now - wait_start : UINT64_MAX);
        /* Completions the loop drives (its own fdatasyncs, seen in memory by
         * drive_ready) first: what clients wait for. Their answers go out at
         * the end of this turn, with the rest. */
        if (drive_ready(s)) s->cfg.drive_run(s->cfg.drive_ctx);
        s->hs_spent = 0;        /* the turn's budget of TLS handshakes */
        /* What each connection may read this turn: the turn's share split
         * among those ready, at least 16 KiB. A turn costs about the same
         * however many clients flood it, so a well-behaved client's request
         * waits for at most about one turn's reading (the rest stays in
         * the sockets for the next turn; epoll is level-triggered). */
        size_t share = TURN_READ_BYTES / (size_t)(n > 0 ? n : 1);
        if (share < (16u << 10)) share = 16u << 10;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &s->lfd) {
                accept_all(s);
            } else if (p == &s->evfd) {
                run_posts(s);
                call_run_resumed(s);
            } else if (p == &s->cfg.drive_fd) {
                s->cfg.drive_run(s->cfg.drive_ctx);
                call_run_resumed(s);
            } else {
                conn *k = p;
                if (k->dead) continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                    conn_close(k);
                    continue;
                }
                if (evs[i].events & EPOLLOUT) {
                    conn_flush(k);
                    if (!k->dead && k->tls_read_wants_write) conn_readable(k, share); /* TLS-2 */
                }
                if (!k->dead && evs[i].events & EPOLLIN) {
                    if (k->tls_write_wants_read) conn_flush(k); /* TLS-2 */
                    if (!k->dead) conn_readable(k, share);
                }
            }
            if (s->mem > s->cfg.max_client_memory) evict(s);
        }
        /* TLS connections whose share ran out with decrypted bytes inside
         * OpenSSL (epoll does not see those): their next share now. */
        conn *list = s->pending;
        s->pending = NULL;
        while (list) {
            conn *k = list;
            list = k->pending_next;
            k->pending = 0;
            k->pending_next = NULL;
            if (!k->dead) conn_readable(k, share);
            if (s->mem > s->cfg.max_client_memory) evict(s);
        }
        if (s->reload) {
            s->reload = 0;
            if (s->cfg.reload_fn) s->cfg.reload_fn(s->cfg.reload_ctx);
        }
        call_run_resumed(s);
        run_deferred(s);
        if (net_mono_ns() >= s->next_sweep) {
            s->next_sweep = net_mono_ns() + SWEEP_NS;
            sweep(s);
        }
        if (s->cfg.tick_fn && s->cfg.tick_ms && net_mono_ns() >= s->next_tick) {
            s->next_tick = net_mono_ns() + (uint64_t)s->cfg.tick_ms * 1000000u;
            s->cfg.tick_fn(s->cfg.tick_ctx);
        }
        free_dead(s);
    }
    flush_dirty(s);
    while (s->conns) conn_close(s->conns);
    /* Work posted by other threads for calls that are gone, and deferred
     * continuations (their calls are over: they only let go). */
    run_posts(s);
    while (s->deferred) run_deferred(s);
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
    while (s->deferred) run_deferred(s);
    if (s->cbs) nghttp2_session_callbacks_del(s->cbs);
    if (s->h2opt) nghttp2_option_del(s->h2opt);
    base_buf_free(&s->scratch);
    net_call_cache_free(s);
    if (s->tls) SSL_CTX_free(s->tls);
    pthread_mutex_destroy(&s->post_mu);
    free(s);
}

void net_server_stats(const net_server *s, net_stats *st)
{
    *st = s->st;
    st->mem = s->mem;
    st->mem_limit = s->cfg.max_client_memory;
}
