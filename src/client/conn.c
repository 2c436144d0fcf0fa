/*
 * conn.c - the client's transport: one TCP connection carrying an HTTP/2
 * session (nghttp2 in client mode, driven with mem_send/mem_recv over a
 * non-blocking socket and poll(), so that every wait has a deadline), and
 * any number of gRPC calls on it at once, one stream each, from any
 * threads (ADR 0022): whichever waiting thread finds nobody reading the
 * socket drives it for all, the HTTP/2 callbacks queue each response
 * message on its call, and the call's owner (its thread, or
 * factum_client_poll for a submitted call) decodes it and runs the
 * application's code. A call sends its headers (grpc-timeout included),
 * its framed request messages and END_STREAM; the status and KurrentDB's
 * trailers are kept and turned into factum codes by client_call_error
 * (errors.c); decoded answers live in the thread's arena (arena.c). With TLS, the bytes pass
 * through OpenSSL on memory BIOs on their way (CL-5). Reaching a server is
 * connect.c's; how a call waits for its answer (CL-8, CL-9), wait.c's. The
 * invariants CL-1..CL-7 of client_int.h are kept here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client/client_int.h"
#include "kurrentdb/shared.pb-c.h"

#define STREAM_WINDOW     (16 << 20) /* per call: what the server may send before we acknowledge */
#define CONNECTION_WINDOW (64 << 20)

uint64_t client_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void client_seterr(factum_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(client_errbuf(), CLIENT_ERRLEN, fmt, ap);
    va_end(ap);
}

int client_check_expected(int64_t e)
{
    return e >= 0 || e == FACTUM_ANY || e == FACTUM_NO_STREAM || e == FACTUM_STREAM_EXISTS ? 0
                                                                                           : FACTUM_EINVAL;
}

/* ---- calls ------------------------------------------------------------------ */

void client_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void client_call_init(client_call *k, const char *path, client_msg_fn on_msg, void *ctx)
{
    memset(k, 0, sizeof *k);
    k->path = path;
    k->on_msg = on_msg;
    k->ctx = ctx;
    k->grpc_status = -1;
    k->q_tail = &k->q_head;
    client_cond_init(&k->cv);
    grpc_deframer_init(&k->df, CLIENT_MAX_MESSAGE);
}

static void free_queue(client_call *k)
{
    while (k->q_head) {
        client_msg *m = k->q_head;
        k->q_head = m->next;
        free(m);
    }
    k->q_tail = &k->q_head;
}

void client_call_deinit(client_call *k)
{
    base_buf_free(&k->body);
    grpc_deframer_deinit(&k->df);
    free(k->details);
    k->details = NULL;
    free_queue(k);
    pthread_cond_destroy(&k->cv);
}

int client_call_add(client_call *k, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > UINT32_MAX) return FACTUM_ETOOBIG;
    int rc = grpc_frame_prefix(&k->body, n);
    if (!rc) rc = base_buf_reserve(&k->body, n);
    if (rc) return -ENOMEM;
    protobuf_c_message_pack(m, k->body.data + k->body.len);
    k->body.len += n;
    return 0;
}

static int flush_out(factum_client *c);
static void fail_conn(factum_client *c, int rc);

/* The call's stream is live on the current connection (not failed under
 * it, not closed): nghttp2 may be told about it. */
static int stream_live(const factum_client *c, const client_call *k)
{
    return c->h2 && k->registered && k->stream_id > 0 && !k->closed && !k->conn_rc && k->gen == c->gen;
}

int client_call_push(factum_client *c, client_call *k, const ProtobufCMessage *m)
{
    pthread_mutex_lock(&c->mu);
    if (k->body_off == k->body.len) k->body.len = k->body_off = 0; /* all sent: start again */
    int rc = client_call_add(k, m);
    if (!rc && k->deferred && stream_live(c, k)) {
        k->deferred = 0;
        nghttp2_session_resume_data(c->h2, k->stream_id);
        int f = flush_out(c);
        if (f) fail_conn(c, f);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- HTTP/2 callbacks (CL-1: they only queue and wake) ----------------------- */

static client_call *call_of(factum_client *c, int32_t stream_id)
{
    return c->h2 ? nghttp2_session_get_stream_user_data(c->h2, stream_id) : NULL;
}

/* Something happened to k (a message, its end): wake its owner. */
static void notify(factum_client *c, client_call *k)
{
    if (k->async) {
        if (!k->ready) {
            k->ready = 1;
            k->rnext = NULL;
            *c->ready_tail = k;
            c->ready_tail = &k->rnext;
        }
        if (c->poll_waiting) pthread_cond_signal(&c->poll_cv);
    } else if (k->waiting) {
        pthread_cond_signal(&k->cv);
    }
}

static void copy_value(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded (gRPC over HTTP/2). */
static void decode_message(char *dst, size_t cap, const uint8_t *v, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        int hi, lo;
        if (v[i] == '%' && i + 2 < n && (hi = hexval(v[i + 1])) >= 0 && (lo = hexval(v[i + 2])) >= 0) {
            unsigned char ch = (unsigned char)(hi << 4 | lo);
            dst[j++] = ch ? (char)ch : '?';
            i += 2;
        } else {
            dst[j++] = (char)v[i];
        }
    }
    dst[j] = 0;
}

static int name_is(const uint8_t *name, size_t len, const char *what)
{
    return strlen(what) == len && !memcmp(name, what, len);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    client_call *k = call_of(ud, f->hd.stream_id);
    if (!k || f->hd.type != NGHTTP2_HEADERS) return 0;
    if (name_is(name, nl, ":status")) {
        int st = 0;
        for (size_t i = 0; i < vl && i < 4; i++)
            st = value[i] >= '0' && value[i] <= '9' ? st * 10 + (value[i] - '0') : -1000;
        k->http_status = st > 0 ? st : 0;
    } else if (name_is(name, nl, "content-type")) {
        copy_value(k->content_type, sizeof k->content_type, value, vl);
    } else if (name_is(name, nl, "grpc-status")) {
        int st = vl ? 0 : -2;
        for (size_t i = 0; i < vl && st >= 0; i++)
            st = value[i] >= '0' && value[i] <= '9' && st < 100000 ? st * 10 + (value[i] - '0') : -2;
        k->grpc_status = st < 0 ? GRPC_UNKNOWN : st;
    } else if (name_is(name, nl, "grpc-message")) {
        decode_message(k->message, sizeof k->message, value, vl);
    } else if (name_is(name, nl, "exception")) {
        copy_value(k->exception, sizeof k->exception, value, vl);
    } else if (name_is(name, nl, "stream-name")) {
        copy_value(k->stream_name, sizeof k->stream_name, value, vl);
    } else if (name_is(name, nl, "actual-version")) {
        copy_value(k->actual_version, sizeof k->actual_version, value, vl);
    } else if (name_is(name, nl, "grpc-status-details-bin") && !k->details && vl <= (64u << 10)) {
        k->details = malloc(vl + 1);
        if (k->details) {
            memcpy(k->details, value, vl);
            k->details[vl] = 0;
            k->details_len = vl;
        }
    }
    return 0;
}

static void cancel(factum_client *c, client_call *k)
{
    if (k->cancelled || !stream_live(c, k)) return;
    k->cancelled = 1;
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->stream_id, NGHTTP2_CANCEL);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    factum_client *c = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) c->got_settings = 1;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = 1;
        c->goaway_code = f->goaway.error_code;
        size_t n = f->goaway.opaque_data_len < sizeof c->goaway_msg - 1 ? f->goaway.opaque_data_len
                                                                        : sizeof c->goaway_msg - 1;
        for (size_t i = 0; i < n; i++) /* printable only: it goes into messages */
            c->goaway_msg[i] = f->goaway.opaque_data[i] >= 0x20 && f->goaway.opaque_data[i] < 0x7f
                                   ? (char)f->goaway.opaque_data[i]
                                   : '?';
        c->goaway_msg[n] = 0;
    }
    client_call *k = call_of(c, f->hd.stream_id);
    if (k && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        k->remote_closed = 1;
        if (!k->local_closed && !k->cancelled && !k->reset_sent) {
            /* The server answered before taking the whole request (an
             * error, e.g. an event over its limit): stop sending the rest;
             * its status stands. */
            k->reset_sent = 1;
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->stream_id, NGHTTP2_CANCEL);
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    (void)s;
    factum_client *c = ud;
    client_call *k = call_of(c, stream_id);
    if (k) {
        k->closed = 1;
        k->done = 1;
        k->reset_code = error_code;
        notify(c, k);
    }
    return 0;
}

typedef struct deliver_ctx {
    factum_client *c;
    client_call *k;
    int nomem;
} deliver_ctx;

/* A whole response message: onto the call's queue (CL-1). */
static int deliver(void *arg, const uint8_t *msg, size_t len)
{
    deliver_ctx *d = arg;
    client_call *k = d->k;
    client_msg *m = malloc(sizeof *m + len);
    if (!m) {
        d->nomem = 1;
        return 1;
    }
    m->next = NULL;
    m->len = len;
    if (len) memcpy(m->data, msg, len);
    *k->q_tail = m;
    k->q_tail = &m->next;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    factum_client *c = ud;
    /* CL-7: the connection's window back at once; the stream's when its
     * owner has consumed the messages. */
    nghttp2_session_consume_connection(s, len);
    client_call *k = call_of(c, stream_id);
    if (!k || k->cancelled || k->cb_rc) {
        nghttp2_session_consume_stream(s, stream_id, len);
        return 0;
    }
    k->unconsumed += len;
    deliver_ctx d = {c, k, 0};
    int rc = grpc_deframe(&k->df, data, len, deliver, &d);
    if (rc == 1 && d.nomem) rc = GRPC_DEFRAME_NOMEM;
    if (rc < 0) {
        k->cb_rc = rc == GRPC_DEFRAME_NOMEM ? -ENOMEM : FACTUM_EPROTOCOL;
        snprintf(k->errmsg, sizeof k->errmsg, "%s",
                 rc == GRPC_DEFRAME_TOO_LARGE    ? "the server sent a message larger than 64 MiB"
                 : rc == GRPC_DEFRAME_COMPRESSED ? "the server sent a compressed message"
                 : rc == GRPC_DEFRAME_NOMEM      ? "out of memory"
                                                 : "the server sent a malformed gRPC message prefix");
        cancel(c, k);
    }
    if (k->q_head || k->cb_rc) notify(c, k);
    return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *ud)
{
    (void)s;
    (void)source;
    client_call *k = call_of(ud, stream_id);
    if (!k) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* an abandoned stream: reset it */
    size_t left = k->body.len - k->body_off;
    size_t n = left < length ? left : length;
    if (!n && k->streaming) {
        k->deferred = 1; /* client_call_push resumes */
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n) memcpy(buf, k->body.data + k->body_off, n);
    k->body_off += n;
    if (k->body_off == k->body.len && !k->streaming) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        k->local_closed = 1;
    }
    return (ssize_t)n;
}

/* ---- the socket -------------------------------------------------------------- */

static void drop(factum_client *c)
{
    if (c->h2) nghttp2_session_del(c->h2);
    c->h2 = NULL;
    if (c->ssl) SSL_free(c->ssl); /* frees its BIOs */
    c->ssl = NULL;
    c->pbuf.len = 0;
    c->rx_bytes = 0;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->wbuf.len = c->woff = 0;
    c->got_settings = c->goaway = 0;
    c->goaway_code = 0;
    c->dead = 0;
    c->gen++; /* the calls of this connection are failed already (CL-3) */
    c->goaway_msg[0] = 0;
}

void client_disconnect(factum_client *c)
{
    drop(c);
}

static int flush_out(factum_client *c);

void client_goodbye(factum_client *c)
{
    if (!c->h2 || c->fd < 0) return;
    nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    if (flush_out(c)) return;
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        if (!client_out_tls(c)) client_out_send(c);
    }
}

/* OpenSSL's reason for the last error (the queue is cleared). */
const char *client_tls_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, n, "%s", r ? r : "unknown reason");
    ERR_clear_error();
    return buf;
}

/* Encrypt what pbuf gathered (CL-5); the records land in the write BIO. */
static int seal(factum_client *c)
{
    size_t done;
    if (c->pbuf.len && SSL_write_ex(c->ssl, c->pbuf.data, c->pbuf.len, &done) != 1) {
        char why[200];
        client_seterr(c, "TLS: cannot encrypt: %s", client_tls_reason(why, sizeof why));
        return FACTUM_ECONNECT;
    }
    c->pbuf.len = 0;
    return 0;
}

/* What TLS has produced (records, alerts, handshake messages) into wbuf. */
int client_out_tls(factum_client *c)
{
    if (!c->ssl) return 0;
    BIO *w = SSL_get_wbio(c->ssl);
    size_t pending;
    while ((pending = BIO_ctrl_pending(w)) > 0) {
        if (base_buf_reserve(&c->wbuf, pending)) return -ENOMEM;
        int got = BIO_read(w, c->wbuf.data + c->wbuf.len, (int)(pending < INT32_MAX ? pending : INT32_MAX));
        if (got <= 0) break;
        c->wbuf.len += (size_t)got;
    }
    return 0;
}

static ssize_t take_in(factum_client *c);

/* Send what wbuf holds until the socket takes no more: 0 (sent or
 * blocked), or FACTUM_ECONNECT. */
int client_out_send(factum_client *c)
{
    while (c->woff < c->wbuf.len) {
        ssize_t w = send(c->fd, c->wbuf.data + c->woff, c->wbuf.len - c->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            client_seterr(c, "writing to the server failed: %s", strerror(errno));
            /* A TLS server that ends the connection says why in an alert
             * first (e.g. it refuses our client certificate): it may wait
             * unread behind the reset. */
            if (c->ssl && c->h2 && take_in(c) == FACTUM_ETLS) return FACTUM_ETLS;
            return FACTUM_ECONNECT;
        }
        c->woff += (size_t)w;
    }
    c->wbuf.len = c->woff = 0;
    return 0;
}

/* Hand nghttp2's output to the socket; what it does not take waits in
 * wbuf. 0 or FACTUM_ECONNECT. */
static int flush_out(factum_client *c)
{
    if (client_out_tls(c)) return -ENOMEM;
    for (;;) {
        /* Gather every frame nghttp2 has ready (up to 64 KiB beside what
         * waits) behind what waits, and hand it all to the socket in one
         * send: a call's frames then travel together (with TLS, in as few
         * records as possible, and behind the handshake's last flight). */
        size_t before = c->wbuf.len;
        int rc;
        while (c->wbuf.len - c->woff + c->pbuf.len < 65536) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(c->h2, &p);
            if (n < 0) {
                client_seterr(c, "HTTP/2 error: %s", nghttp2_strerror((int)n));
                return n == NGHTTP2_ERR_NOMEM ? -ENOMEM : FACTUM_ECONNECT;
            }
            if (n == 0) break;
            if (base_buf_append(c->ssl ? &c->pbuf : &c->wbuf, p, (size_t)n)) return -ENOMEM;
        }
        if (c->ssl && ((rc = seal(c)) || (rc = client_out_tls(c)))) return rc;
        int gathered = c->wbuf.len != before;
        rc = client_out_send(c);
        if (rc || c->woff < c->wbuf.len || !gathered) return rc;
    }
}

/* The first bytes of a cleartext connection are TLS records (a handshake
 * or an alert): the server speaks TLS. */
int client_looks_like_tls(const uint8_t *p, size_t n)
{
    return n >= 3 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03 && p[2] <= 0x04;
}

/* Received bytes into nghttp2. */
static int feed_h2(factum_client *c, const uint8_t *p, size_t n)
{
    ssize_t used = nghttp2_session_mem_recv(c->h2, p, n);
    if (used < 0) {
        client_seterr(c, "the server broke the HTTP/2 protocol: %s", nghttp2_strerror((int)used));
        return used == NGHTTP2_ERR_NOMEM ? -ENOMEM : FACTUM_EPROTOCOL;
    }
    return 0;
}

/* The message for a TLS failure after the handshake (the server ended the
 * connection with an alert, e.g. it wants a client certificate). */
static void tls_read_error(factum_client *c)
{
    char why[200];
    client_tls_reason(why, sizeof why);
    if (strstr(why, "certificate required"))
        client_seterr(c,
                      "the server refused the TLS connection: %s (it wants a client certificate: "
                      "userCertFile and userKeyFile)",
                      why);
    else if (strstr(why, "alert"))
        client_seterr(c, "the server refused the TLS connection: %s", why);
    else
        client_seterr(c, "TLS error: %s", why);
}

static int tls_drain(factum_client *c);

/* One recv into nghttp2 (through TLS when on). The number of bytes
 * received (> 0), 0 when there was nothing, or an error with client_errbuf() set:
 * FACTUM_ECONNECT, FACTUM_ETLS, FACTUM_EPROTOCOL, -ENOMEM. */
static ssize_t take_in(factum_client *c)
{
    ssize_t n;
    do
        n = recv(c->fd, c->rbuf, c->rcap, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        client_seterr(c, "reading from the server failed: %s", strerror(errno));
        return FACTUM_ECONNECT;
    }
    if (n == 0) {
        client_seterr(c, "the server closed the connection");
        return FACTUM_ECONNECT;
    }
    int first = c->rx_bytes == 0;
    c->rx_bytes += (uint64_t)n;
    if (!c->ssl) {
        if (first && client_looks_like_tls(c->rbuf, (size_t)n)) {
            client_seterr(c, "the server speaks TLS: connect with tls=true (the default) and its CA in "
                             "tlsCAFile, not tls=false");
            return FACTUM_ETLS;
        }
        int rc = feed_h2(c, c->rbuf, (size_t)n);
        return rc ? rc : n;
    }
    /* CL-5: all of it into the TLS engine, then decrypt until it wants more
     * (rbuf is free again once copied). */
    if (BIO_write(SSL_get_rbio(c->ssl), c->rbuf, (int)n) != (int)n) {
        client_seterr(c, "out of memory");
        return -ENOMEM;
    }
    int rc = tls_drain(c);
    return rc ? rc : n;
}

/* Decrypt every whole record the input BIO holds into nghttp2. */
static int tls_drain(factum_client *c)
{
    for (;;) {
        size_t got;
        if (SSL_read_ex(c->ssl, c->rbuf, c->rcap, &got) == 1) {
            int rc = feed_h2(c, c->rbuf, got);
            if (rc) return rc;
            /* Nothing more in the SSL nor in its input: no call only to
             * hear WANT_READ (~1,500 instructions per answer). */
            if (!SSL_has_pending(c->ssl) && BIO_ctrl_pending(SSL_get_rbio(c->ssl)) == 0) break;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            client_seterr(c, "the server closed the connection");
            ERR_clear_error();
            return FACTUM_ECONNECT;
        }
        tls_read_error(c);
        return FACTUM_ETLS;
    }
    return 0;
}

/* One round of I/O: flush, wait (until deadline_ns, 0: forever) for the
 * socket, read what arrived into nghttp2. Sending can end what the caller
 * waits for (our RST_STREAM closes the call): with *done set after the
 * flush, return without waiting. 0, FACTUM_ETIMEDOUT, FACTUM_ECONNECT (the
 * connection is unusable), FACTUM_EPROTOCOL. */
static int pump(factum_client *c, uint64_t deadline_ns, const int *done)
{
    int rc = flush_out(c);
    if (rc || *done) return rc;
    int timeout = -1;
    if (deadline_ns) {
        uint64_t now = client_now_ns();
        if (now >= deadline_ns) return FACTUM_ETIMEDOUT;
        uint64_t ms = (deadline_ns - now + 999999) / 1000000;
        timeout = ms > 60000 ? 60000 : (int)ms;
    }
    struct pollfd pfd = {c->fd, POLLIN, 0};
    if (c->woff < c->wbuf.len) pfd.events |= POLLOUT;
    int pr = poll(&pfd, 1, timeout);
    if (pr < 0) {
        if (errno == EINTR) return 0;
        client_seterr(c, "poll: %s", strerror(errno));
        return FACTUM_ECONNECT;
    }
    if (pr == 0) return 0; /* the caller checks the deadline */
    if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) return 0;
    for (int i = 0; i < 16; i++) {
        ssize_t n = take_in(c);
        if (n <= 0) return (int)n;
        if ((size_t)n < c->rcap) return 0;
        /* A full buffer: more may be waiting; acknowledge windows first. */
        if ((rc = flush_out(c))) return rc;
    }
    return 0;
}

/* HTTP/2 on the connected socket: our SETTINGS, then wait for the
 * server's, which proves it speaks HTTP/2 (prior knowledge, cleartext). */
int client_h2_start(factum_client *c, char *why, size_t wlen)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) return -ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        return -ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1); /* CL-7 */
    int rc = nghttp2_session_client_new2(&c->h2, cb, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc) {
        c->h2 = NULL;
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) ||
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW))
        return -ENOMEM;
    uint64_t deadline =
        c->connect_timeout_ms ? client_now_ns() + (uint64_t)c->connect_timeout_ms * 1000000u : 0;
    /* Records that came with the end of the TLS handshake (the server's
     * SETTINGS, say) wait in the input BIO: take them first. */
    if (c->ssl && (rc = tls_drain(c)) != 0) {
        snprintf(why, wlen, "%.500s", client_errbuf());
        return rc;
    }
    while (!c->got_settings) {
        rc = pump(c, deadline, &c->got_settings);
        if (rc == FACTUM_ETIMEDOUT) {
            snprintf(why, wlen, "no HTTP/2 answer within %u ms", c->connect_timeout_ms);
            return FACTUM_ECONNECT;
        }
        if (rc == -ENOMEM) return rc;
        if (rc == FACTUM_ETLS) {
            snprintf(why, wlen, "%.500s", client_errbuf());
            return rc;
        }
        if (rc) {
            if (c->ssl)
                snprintf(why, wlen, "no HTTP/2 over TLS (%.300s)", client_errbuf());
            else if (c->rx_bytes == 0 && rc == FACTUM_ECONNECT)
                snprintf(why, wlen,
                         "no HTTP/2 answer, the connection ended (%.200s): does the server speak "
                         "TLS? then leave out tls=false",
                         client_errbuf());
            else
                snprintf(why, wlen, "it does not speak HTTP/2 with prior knowledge (%.300s)",
                         client_errbuf());
            return FACTUM_ECONNECT;
        }
    }
    /* A server that says goodbye at once says why (factumd's TLS port
     * answers cleartext HTTP/2 so: INADEQUATE_SECURITY). */
    if (c->goaway) {
        int tls = c->goaway_code == NGHTTP2_INADEQUATE_SECURITY;
        snprintf(why, wlen, "%s%s%s",
                 tls && !c->ssl ? "the server speaks TLS: leave out tls=false ("
                                : "the server closed the connection at once (",
                 c->goaway_msg[0] ? c->goaway_msg : nghttp2_http2_strerror(c->goaway_code), ")");
        return tls ? FACTUM_ETLS : FACTUM_ECONNECT;
    }
    return 0;
}

/* ---- running a call ---------------------------------------------------------- */

static int add_nv(nghttp2_nv *nv, size_t *n, const char *name, const char *value)
{
    nv[*n].name = (uint8_t *)(uintptr_t)name;
    nv[*n].value = (uint8_t *)(uintptr_t)value;
    nv[*n].namelen = strlen(name);
    nv[*n].valuelen = strlen(value);
    nv[*n].flags = NGHTTP2_NV_FLAG_NONE;
    (*n)++;
    return 0;
}

/* The status of a finished call as a factum code (client_errbuf() set). */
static int call_result(factum_client *c, client_call *k)
{
    if (k->cb_rc) return k->cb_rc;
    if (k->cancelled) return 0; /* CLIENT_ENOUGH: we had what we wanted */
    if (k->grpc_status < 0) {
        if (k->http_status && k->http_status != 200) {
            client_seterr(c, "the server answered HTTP status %d to %s", k->http_status, k->path);
            return k->http_status == 404 ? FACTUM_EUNSUPPORTED : FACTUM_EPROTOCOL;
        }
        if (k->reset_code && k->reset_code != NGHTTP2_NO_ERROR) {
            client_seterr(c, "the server reset the call (%s)", nghttp2_http2_strerror(k->reset_code));
            return FACTUM_ESERVER;
        }
        client_seterr(c, "the call ended without a gRPC status");
        return FACTUM_EPROTOCOL;
    }
    if (k->grpc_status == GRPC_OK) {
        if (k->http_status != 200 || strncmp(k->content_type, "application/grpc", 16) != 0) {
            client_seterr(c, "the answer is not gRPC (HTTP status %d, content-type '%s')", k->http_status,
                          k->content_type);
            return FACTUM_EPROTOCOL;
        }
        if (grpc_deframer_partial(&k->df)) {
            client_seterr(c, "the answer ends inside a message");
            return FACTUM_EPROTOCOL;
        }
        return 0;
    }
    int rc = client_call_error(k);
    const char *said = k->message[0] ? k->message : "no message";
    if (rc == FACTUM_EUNAUTHENTICATED && c->auth[0])
        client_seterr(c, "the server did not accept the credentials of user '%.200s': %s", c->url.username,
                      said);
    else if (rc == FACTUM_EUNAUTHENTICATED)
        client_seterr(c, "the server wants credentials (user:password@ in the connection string): %s", said);
    else if (rc == FACTUM_EACCESSDENIED && c->auth[0])
        client_seterr(c, "user '%.200s' may not do this: %s", c->url.username, said);
    else if (rc == FACTUM_EACCESSDENIED)
        client_seterr(c, "access denied without credentials (user:password@ in the connection string): %s",
                      said);
    else if (k->message[0])
        client_seterr(c, "%s", k->message);
    else
        client_seterr(c, "the server failed the call with gRPC status %d", k->grpc_status);
    return rc;
}

/* ---- running calls (CL-1) ------------------------------------------------------ */

/* Wake a driver that sits in poll(): it re-reads what it must wait for. */
static void wake_driver(factum_client *c)
{
    if (c->driver && c->wakefd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(c->wakefd, &one, sizeof one);
        (void)w; /* a full counter is awake enough */
    }
}

/* The driver role is free again: let one thread that waits for it take it
 * (a synchronous call's owner, else the poller, else a connect). */
static void handoff(factum_client *c)
{
    for (client_call *k = c->calls; k; k = k->next)
        if (k->waiting && !k->done) {
            pthread_cond_signal(&k->cv);
            return;
        }
    if (c->poll_waiting) {
        pthread_cond_signal(&c->poll_cv);
        return;
    }
    if (c->drv_waiting) pthread_cond_broadcast(&c->drv_cv);
}

/* Before a thread runs the application's code (or leaves): it gives up the
 * driver role if it had it (CL-1: never run the application's code as the
 * driver), and if nobody drives, it wakes a waiting thread to (a thread
 * woken to drive that finds work of its own first must not leave the
 * others without a driver while its callback runs). */
static void step_aside(factum_client *c, int *driving)
{
    if (*driving) {
        *driving = 0;
        c->driver = 0;
    }
    if (!c->driver) handoff(c);
}

/* The connection failed (CL-3): every call on it fails with rc and the
 * thread's message. The driver (or anyone when none polls) closes it;
 * else the socket is shut down, which wakes the driver to close it. */
static void fail_conn(factum_client *c, int rc)
{
    if (rc != -ENOMEM && rc != FACTUM_EPROTOCOL && rc != FACTUM_ETLS) rc = FACTUM_ECONNECT;
    for (client_call *k = c->calls; k; k = k->next)
        if (!k->conn_rc && k->gen == c->gen) {
            k->conn_rc = rc;
            snprintf(k->errmsg, sizeof k->errmsg, "%s",
                     client_errbuf()[0] ? client_errbuf() : "the connection was lost");
            k->done = 1;
            notify(c, k);
        }
    if (c->fd >= 0 && !c->dead) {
        c->dead = 1;
        shutdown(c->fd, SHUT_RDWR);
    }
    wake_driver(c);
}

/* Take the socket's news (the driver, or a thread that finds it idle):
 * read everything that waits, then flush. 0 or the connection's failure. */
static int take_all(factum_client *c)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = take_in(c);
        if (n < 0) return (int)n;
        if (n == 0 || (size_t)n < c->rcap) break;
        int rc = flush_out(c); /* a full buffer: acknowledge windows first */
        if (rc) return rc;
    }
    return flush_out(c);
}

/* gRPC's grpc-timeout value for ms (at most 8 digits and a unit: "m",
 * or whole seconds "S" above 99,999,999 ms), without printf (~700
 * instructions a call). out: at least 12 bytes. */
void client_grpc_timeout(uint32_t ms, char *out)
{
    uint32_t v = ms <= 99999999u ? ms : (uint32_t)(((uint64_t)ms + 999) / 1000);
    char d[10];
    size_t n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    size_t i = 0;
    while (n) out[i++] = d[--n];
    out[i++] = ms <= 99999999u ? 'm' : 'S';
    out[i] = 0;
}

/* One round of the driver (c->driver set by the caller, mu held): flush,
 * poll (unlocked) until wake_ns (0: no limit), read. for_answer: see
 * wait_socket. */
static void drive_round(factum_client *c, uint64_t wake_ns, int for_answer)
{
    if (c->fd < 0 || !c->h2) return; /* dropped: the callers see their calls failed */
    int rc = c->dead ? 0 : flush_out(c);
    if (rc) fail_conn(c, rc);
    if (c->dead) {
        drop(c);
        return;
    }
    int timeout = -1;
    if (wake_ns) {
        uint64_t now = client_now_ns();
        uint64_t ms = now >= wake_ns ? 0 : (wake_ns - now + 999999) / 1000000; /* past: just look */
        timeout = ms > 60000 ? 60000 : (int)ms;
    }
    struct pollfd pfd[2] = {{c->fd, POLLIN, 0}, {c->wakefd, POLLIN, 0}};
    if (c->woff < c->wbuf.len) pfd[0].events |= POLLOUT;
    pthread_mutex_unlock(&c->mu);
    int pr = client_wait_socket(c, pfd, c->wakefd >= 0 ? 2 : 1, timeout, for_answer);
    int err = errno;
    pthread_mutex_lock(&c->mu);
    if (pr > 0 && (pfd[1].revents & POLLIN)) {
        uint64_t v;
        ssize_t r = read(c->wakefd, &v, sizeof v);
        (void)r;
    }
    if (c->dead) {
        drop(c);
        return;
    }
    if (pr < 0 && err != EINTR) {
        client_seterr(c, "poll: %s", strerror(err));
        fail_conn(c, FACTUM_ECONNECT);
        drop(c);
        return;
    }
    if (pr > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR | POLLOUT))) {
        rc = take_all(c);
        if (!rc && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
            client_seterr(c, "the server closed the connection");
            rc = FACTUM_ECONNECT;
        }
        if (rc) {
            fail_conn(c, rc);
            drop(c);
        }
    }
}

/* One step of a thread waiting for its call or for submitted calls (mu
 * held): drive the connection for a round if nobody does (or this thread
 * already does: *driving), handing the lead on if the connection dropped,
 * so that whoever waits may connect again; else sleep on cv until woken or
 * until wake (a monotonic time in ns; 0: no limit), flagging *waiting
 * meanwhile so that a driver knows to wake it. now: the caller's clock. */
static void drive_or_wait(factum_client *c, int *driving, uint64_t wake, uint64_t now, pthread_cond_t *cv,
                          int *waiting, int for_answer)
{
    if (!c->driver || *driving) {
        c->driver = *driving = 1;
        drive_round(c, wake, for_answer);
        if (c->fd < 0) {
            *driving = 0;
            c->driver = 0;
            handoff(c);
        }
        return;
    }
    *waiting = 1;
    if (wake) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t at =
            (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (wake > now ? wake - now : 0);
        ts.tv_sec = (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        pthread_cond_timedwait(cv, &c->mu, &ts);
    } else {
        pthread_cond_wait(cv, &c->mu);
    }
    *waiting = 0;
}

/* Before a call on a connection without calls: take in what the server
 * sent meanwhile (a GOAWAY, a PING, or the end of the connection, say
 * after a restart), so that a connection already gone is replaced before
 * the call is sent rather than failing it. */
static void check_idle(factum_client *c)
{
    if (c->fd < 0 || !c->h2 || c->calls || c->driver) return;
    struct pollfd pfd = {c->fd, POLLIN, 0};
    if (c->dead || (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && take_all(c)) ||
        c->goaway || flush_out(c))
        drop(c);
}

static void unregister(factum_client *c, client_call *k)
{
    if (!k->registered) return;
    if (stream_live(c, k)) {
        /* Abandoned before its end (a deadline, an error): reset it, and
         * what still arrives for it is ignored. */
        nghttp2_session_set_stream_user_data(c->h2, k->stream_id, NULL);
        if (!k->cancelled) nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->stream_id, NGHTTP2_CANCEL);
        int rc = flush_out(c);
        if (rc) fail_conn(c, rc);
    }
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next) k->next->prev = k->prev;
    k->next = k->prev = NULL;
    k->registered = 0;
    if (k->async) c->n_async--;
}

/* Connect if needed, open k's stream, send what can be sent (mu held). */
static int start_call(factum_client *c, client_call *k)
{
    check_idle(c);
    while (c->dead && c->driver) {
        /* The driver has yet to close the failed connection. */
        c->drv_waiting++;
        wake_driver(c);
        pthread_cond_wait(&c->drv_cv, &c->mu);
        c->drv_waiting--;
    }
    if (c->dead && !c->driver) drop(c);
    if (c->fd < 0 || !c->h2 || (c->goaway && !c->calls)) {
        int rc = client_connect_hosts(c);
        if (rc) return rc;
    }
    char timeout[24] = "";
    if (c->timeout_ms) client_grpc_timeout(c->timeout_ms, timeout);
    nghttp2_nv nv[12];
    size_t n = 0;
    add_nv(nv, &n, ":method", "POST");
    add_nv(nv, &n, ":scheme", c->url.tls ? "https" : "http");
    add_nv(nv, &n, ":path", k->path);
    add_nv(nv, &n, ":authority", c->authority);
    add_nv(nv, &n, "content-type", "application/grpc");
    add_nv(nv, &n, "te", "trailers");
    add_nv(nv, &n, "user-agent", "factum-client/" FACTUM_VERSION_STRING);
    if (timeout[0]) add_nv(nv, &n, "grpc-timeout", timeout);
    if (c->url.connection_name[0]) add_nv(nv, &n, "connection-name", c->url.connection_name);
    if (c->auth[0]) add_nv(nv, &n, "authorization", c->auth);
    if (c->raw) add_nv(nv, &n, "factum-raw", "1");
    nghttp2_data_provider prd;
    prd.source.ptr = NULL;
    prd.read_callback = body_read;
    int32_t id = nghttp2_submit_request(c->h2, NULL, nv, n, &prd, k);
    if (id < 0) {
        client_seterr(c, "cannot start a call: %s", nghttp2_strerror(id));
        if (id == NGHTTP2_ERR_NOMEM) return -ENOMEM;
        if (!c->calls) drop(c); /* no stream ids left, or the session is going away */
        return FACTUM_ECONNECT;
    }
    k->stream_id = id;
    k->gen = c->gen;
    k->registered = 1;
    k->prev = NULL;
    k->next = c->calls;
    if (c->calls) c->calls->prev = k;
    c->calls = k;
    if (k->async) c->n_async++;
    k->deadline_ns =
        c->timeout_ms && !k->no_deadline ? client_now_ns() + (uint64_t)c->timeout_ms * 1000000u : 0;
    int rc = flush_out(c);
    if (rc) {
        fail_conn(c, rc);
        if (!c->driver) drop(c);
    } else if (c->woff < c->wbuf.len) {
        wake_driver(c); /* the socket is full: the driver waits for room too */
    }
    return 0;
}

/* Hand k's queued messages to on_msg (its owner's thread, mu held on entry
 * and exit, released meanwhile), then give the stream's window back
 * (CL-7). Returns the number of messages. */
static size_t consume(factum_client *c, client_call *k)
{
    client_msg *m = k->q_head;
    size_t bytes = k->unconsumed, n = 0;
    k->q_head = NULL;
    k->q_tail = &k->q_head;
    k->unconsumed = 0;
    int stop = k->cancelled || k->cb_rc;
    pthread_mutex_unlock(&c->mu);
    int rc = 0;
    while (m) {
        client_msg *next = m->next;
        if (!stop) {
            k->got_msg = 1;
            rc = k->on_msg ? k->on_msg(k->ctx, m->data, m->len) : 0;
            if (rc) stop = 1;
        }
        free(m);
        m = next;
        n++;
    }
    pthread_mutex_lock(&c->mu);
    if (rc < 0 && !k->cb_rc) k->cb_rc = rc;
    if (rc) cancel(c, k);
    if (stream_live(c, k) && bytes && !k->cancelled)
        nghttp2_session_consume_stream(c->h2, k->stream_id, bytes);
    if (stream_live(c, k) || rc) {
        int f = flush_out(c);
        if (f) fail_conn(c, f);
    }
    return n;
}

static int call_result(factum_client *c, client_call *k);

/* The result of a finished call (its owner's thread, mu held). */
static int finish(factum_client *c, client_call *k, int rc)
{
    (void)c;
    if (rc == FACTUM_ETIMEDOUT) return rc;
    if (k->cb_rc && k->errmsg[0] && !k->conn_rc) {
        client_seterr(c, "%s", k->errmsg);
        return k->cb_rc;
    }
    if (k->conn_rc) {
        /* CL-3; unless the answer was complete before it went. */
        if (k->conn_rc == FACTUM_EPROTOCOL || k->conn_rc == -ENOMEM || !k->remote_closed ||
            k->grpc_status < 0) {
            client_seterr(c, "%s", k->errmsg);
            return k->cb_rc ? k->cb_rc : k->conn_rc;
        }
    }
    if (k->reset_code == NGHTTP2_REFUSED_STREAM && k->grpc_status < 0) {
        client_seterr(c, "the server refused the call (too many calls, or it is shutting down)");
        return FACTUM_ESERVER;
    }
    return call_result(c, k);
}

int client_call_run(factum_client *c, client_call *k)
{
    pthread_mutex_lock(&c->mu);
    int rc = start_call(c, k);
    if (rc) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    uint64_t idle_ns = (uint64_t)k->idle_ms * 1000000u;
    uint64_t idle_at = idle_ns ? client_now_ns() + idle_ns : 0;
    /* CL-8: poll only when this call follows an answer closely. */
    int driving = 0, answered = 0;
    int follows = c->last_answer_ns && client_now_ns() - c->last_answer_ns <= CLIENT_FOLLOWS_NS;
    for (;;) {
        if (k->q_head) {
            step_aside(c, &driving);
            if (!answered) c->last_answer_ns = client_now_ns();
            consume(c, k);
            answered = 1;
            continue;
        }
        if (k->done) break;
        uint64_t now = client_now_ns();
        if (k->deadline_ns && now >= k->deadline_ns) {
            client_seterr(c, "no answer from the server within %" PRIu32 " ms", c->timeout_ms);
            rc = FACTUM_ETIMEDOUT;
            break;
        }
        if (idle_at) {
            if (k->got_msg) {
                k->got_msg = 0;
                idle_at = now + idle_ns;
            } else if (now >= idle_at && !k->cancelled) {
                idle_at = now + idle_ns;
                step_aside(c, &driving);
                pthread_mutex_unlock(&c->mu);
                int r = k->on_idle ? k->on_idle(k->ctx) : 0;
                pthread_mutex_lock(&c->mu);
                if (r) {
                    if (r < 0) k->cb_rc = r;
                    cancel(c, k);
                    int f = flush_out(c);
                    if (f) fail_conn(c, f);
                }
                continue;
            }
        }
        uint64_t wake = k->deadline_ns;
        if (idle_at && (!wake || idle_at < wake)) wake = idle_at;
        drive_or_wait(c, &driving, wake, now, &k->cv, &k->waiting, follows && !answered);
    }
    step_aside(c, &driving);
    unregister(c, k);
    free_queue(k);
    rc = finish(c, k, rc);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- asynchronous calls -------------------------------------------------------- */

int client_call_submit(factum_client *c, client_call *k)
{
    k->async = 1;
    pthread_mutex_lock(&c->mu);
    int rc = start_call(c, k);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Cancel the asynchronous calls whose deadline passed; the earliest
 * deadline still ahead (0: none). mu held. */
static uint64_t async_deadlines(factum_client *c, uint64_t now)
{
    uint64_t next = 0;
    for (client_call *k = c->calls; k; k = k->next) {
        if (!k->async || k->done || !k->deadline_ns) continue;
        if (now >= k->deadline_ns) {
            snprintf(k->errmsg, sizeof k->errmsg, "no answer from the server within %" PRIu32 " ms",
                     c->timeout_ms);
            k->cb_rc = FACTUM_ETIMEDOUT;
            unregister(c, k);
            k->done = 1;
            k->registered = 0;
            /* not on c->calls any more: queue it for the poller directly */
            if (!k->ready) {
                k->ready = 1;
                k->rnext = NULL;
                *c->ready_tail = k;
                c->ready_tail = &k->rnext;
            }
            return async_deadlines(c, now); /* the list changed */
        }
        if (!next || k->deadline_ns < next) next = k->deadline_ns;
    }
    return next;
}

int factum_client_poll(factum_client *c, int timeout_ms)
{
    if (!c) return FACTUM_EINVAL;
    uint64_t until = timeout_ms > 0 ? client_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    pthread_mutex_lock(&c->mu);
    int ran = 0, driving = 0, looked = 0;
    for (;;) {
        uint64_t now = client_now_ns();
        uint64_t next_deadline = async_deadlines(c, now);
        if (c->ready) {
            step_aside(c, &driving);
            client_call *list = c->ready;
            c->ready = NULL;
            c->ready_tail = &c->ready;
            while (list) {
                client_call *k = list;
                list = k->rnext;
                k->ready = 0;
                if (k->consuming) continue; /* another poller is at it: it looks again when done */
                k->consuming = 1;
                while (k->q_head)
                    ran += (int)consume(c, k); /* a call's callbacks never run at once */
                k->consuming = 0;
                if (k->done && !k->q_head && !k->ready) {
                    unregister(c, k);
                    int rc = finish(c, k, k->cb_rc == FACTUM_ETIMEDOUT ? FACTUM_ETIMEDOUT : 0);
                    if (rc == FACTUM_ETIMEDOUT) client_seterr(c, "%s", k->errmsg);
                    pthread_mutex_unlock(&c->mu);
                    k->on_done(k, rc); /* frees k */
                    pthread_mutex_lock(&c->mu);
                    ran++;
                }
            }
            if (ran) break;
            continue;
        }
        if (!c->n_async || (timeout_ms > 0 && now >= until) || (timeout_ms == 0 && looked)) break;
        uint64_t wake = timeout_ms == 0 ? 1 : until; /* 0 ms: one look at the socket, no wait */
        looked = 1;
        if (next_deadline && (!wake || next_deadline < wake)) wake = next_deadline;
        drive_or_wait(c, &driving, wake, now, &c->poll_cv, &c->poll_waiting, 0);
    }
    step_aside(c, &driving);
    pthread_mutex_unlock(&c->mu);
    return ran;
}

void client_end_async(factum_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        client_call *k = c->ready;
        if (k) {
            c->ready = k->rnext;
            if (!c->ready) c->ready_tail = &c->ready;
            k->ready = 0;
        } else {
            for (k = c->calls; k && !k->async; k = k->next)
                ;
            if (!k) break;
        }
        if (!k->async) continue;
        unregister(c, k);
        free_queue(k);
        client_seterr(c, "the client was closed with the call in flight");
        pthread_mutex_unlock(&c->mu);
        k->on_done(k, FACTUM_ECONNECT);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

size_t factum_client_pending(factum_client *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->n_async;
    for (client_call *k = c->ready; k; k = k->rnext)
        if (!k->registered) n++;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- unary calls ------------------------------------------------------------------ */

typedef struct unary_ctx {
    factum_client *c;
    const ProtobufCMessageDescriptor *desc;
    ProtobufCMessage *resp;
} unary_ctx;

static int unary_msg(void *arg, const uint8_t *msg, size_t len)
{
    unary_ctx *u = arg;
    if (u->resp) return 0; /* a second answer to a unary call: ignore it */
    client_arena_reset(client_tl_arena());
    u->resp = protobuf_c_message_unpack(u->desc, &client_tl_arena()->pa, len, msg);
    if (!u->resp) {
        client_seterr(u->c, "the server's %s does not decode", u->desc->short_name);
        return FACTUM_EPROTOCOL;
    }
    return 0;
}

int client_unary(factum_client *c, client_call *keep, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    unary_ctx u = {c, desc, NULL};
    client_call local, *k = keep ? keep : &local;
    client_call_init(k, path, unary_msg, &u);
    int rc = client_call_add(k, req);
    if (!rc) rc = client_call_run(c, k);
    if (!rc && !u.resp) {
        client_seterr(c, "the server's answer to %s has no message", path);
        rc = FACTUM_EPROTOCOL;
    }
    k->on_msg = NULL;
    k->ctx = NULL;
    if (!keep) client_call_deinit(k);
    *resp = rc ? NULL : u.resp;
    return rc;
}
