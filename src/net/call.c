/*
 * call.c - gRPC calls over HTTP/2 for the server of net.h: nghttp2's
 * callbacks turn a stream into a net_call, its DATA into request messages
 * (grpc.c's deframer), and the handler's messages and status back into
 * DATA and trailers. Output is fed to nghttp2 through a data provider that
 * reads the call's queue and defers when it is empty; the trailers go when
 * the queue is drained and the call finished.
 *
 * Flow control is manual (NET-6): a stream's window opens only as its
 * bytes are taken by the call (deframed, charged to the budget, handed to
 * the handler). A handler that cannot take more (the store's queue is
 * full, a client does not read its answers) pauses the call's input; what
 * arrives meanwhile is kept, charged, and its window stays shut, so the
 * client can send at most one window ahead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "net/server_int.h"

#define OUT_KEEP (256u << 10) /* a drained output buffer larger than this is freed */

/* ---- the handler's side ------------------------------------------------ */

void net_call_ref(net_call *c)
{
    c->refs++;
}

/* Free what holds input: after the call is finished or gone nothing more is
 * delivered, so the bytes are of no use (NET-5: give them back at once). */
static void drop_input(net_call *c)
{
    if (c->delivering) return; /* the handler may still look at the message; feed drops it after */
    grpc_deframer_deinit(&c->df);
    net_buf_free(c->srv, c->conn, c, &c->in);
    c->in_off = 0;
    c->partial_since = 0;
}

/* A copy of p[0..n) as a string: in the call's hstore while it fits, else
 * malloc'd. NULL on OOM. */
static char *call_strdup(net_call *c, const uint8_t *p, size_t n)
{
    char *d;
    if (n < CALL_HSTORE - c->hstore_used) {
        d = c->hstore + c->hstore_used;
        c->hstore_used += n + 1;
    } else if (!(d = malloc(n + 1))) {
        return NULL;
    }
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

static void call_strfree(net_call *c, char *p)
{
    if (p && (p < c->hstore || p >= c->hstore + CALL_HSTORE)) free(p);
}

/* Sanitizer builds free every call, so that a use after free is caught. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CALL_CACHE_MAX 0
#else
#define CALL_CACHE_MAX CALL_CACHE
#endif

/* A zeroed call structure (hstore excepted), from the server's cache when it
 * has one: a call is 2 KiB, above what malloc serves from its fast lists. */
static net_call *call_alloc(net_server *s)
{
    net_call *c = s->call_cache;
    if (c) {
        s->call_cache = c->next;
        s->n_call_cache--;
    } else if (!(c = malloc(sizeof *c))) {
        return NULL;
    }
    memset(c, 0, offsetof(net_call, hstore));
    return c;
}

void net_call_cache_free(net_server *s)
{
    while (s->call_cache) {
        net_call *c = s->call_cache;
        s->call_cache = c->next;
        free(c);
    }
    s->n_call_cache = 0;
}

static void call_free(net_call *c)
{
    net_server *s = c->srv;
    drop_input(c);
    for (int i = 0; i < c->n_headers; i++) {
        call_strfree(c, c->hname[i]);
        call_strfree(c, c->hvalue[i]);
    }
    call_strfree(c, c->path);
    net_buf_free(s, c->conn, c, &c->out);
    base_buf_free(&c->tstore);
    free(c->tnv);
    if (c->auth_free) c->auth_free(c->auth);
    /* What is left is the call's own size and whatever a handler forgot to
     * release: both leave the budget with the call. */
    net_release(s, NULL, c, c->mem);
    if (s->n_call_cache < CALL_CACHE_MAX) {
        c->next = s->call_cache;
        s->call_cache = c;
        s->n_call_cache++;
    } else {
        free(c);
    }
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

void net_call_set_auth(net_call *c, void *auth, void (*free_fn)(void *auth))
{
    if (c->auth_free) c->auth_free(c->auth);
    c->auth = auth;
    c->auth_free = free_fn;
}

void *net_call_auth(const net_call *c)
{
    return c->auth;
}

int net_call_is_tls(const net_call *c)
{
    return c->conn && c->conn->is_tls;
}

const char *net_call_peer_cn(const net_call *c)
{
    return c->conn ? c->conn->peer_cn : NULL;
}

char *net_call_peer(const net_call *c, char *buf, size_t cap)
{
    if (!cap) return buf;
    buf[0] = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!c->conn || getpeername(c->conn->fd, (struct sockaddr *)&ss, &sl)) return buf;
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    }
    return buf;
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

int net_call_charge(net_call *c, size_t n)
{
    return net_charge(c->srv, c->conn, c, n);
}

void net_call_release(net_call *c, size_t n)
{
    net_release(c->srv, c->conn, c, n);
}

/* The stream is gone: the call's bytes stop counting for its connection
 * (they still count for the server until released). */
static void call_detach(net_call *c)
{
    if (!c->conn) return;
    c->conn->mem -= c->mem;
    c->conn = NULL;
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
    size_t queued = net_call_queued(c);
    if (queued >= c->srv->cfg.call_buffer_limit) {
        c->want_writable = 1;
        return -EAGAIN;
    }
    if (c->out_off && c->out_off == c->out.len) c->out.len = c->out_off = 0;
    c->srv->answered = 1; /* NET-11: a response (BatchAppend answers on a call that stays open) */
    uint8_t pre[5];
    base_buf pb = {pre, 0, sizeof pre};
    grpc_frame_prefix(&pb, len);
    int rc = net_buf_append(c->srv, c->conn, c, &c->out, NULL, 5 + len);
    if (rc == -ENOBUFS && queued) {
        /* The connection is at its cap: this call waits for its own
         * output to drain (NET-5), as when its queue is full. */
        c->want_writable = 1;
        return -EAGAIN;
    }
    if (rc) return rc;
    memcpy(c->out.data + c->out.len - 5 - len, pre, 5);
    if (len) memcpy(c->out.data + c->out.len - len, msg, len);
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
    c->srv->answered = 1; /* NET-11 */
    drop_input(c);
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
        if (c->out_off == c->out.len) {
            c->out.len = c->out_off = 0;
            if (c->out.cap > OUT_KEEP) net_buf_free(c->srv, c->conn, c, &c->out);
        }
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

/* ---- input: pausing and resuming (NET-6) -------------------------------- */

void net_call_pause(net_call *c)
{
    c->paused = 1;
}

void net_call_resume(net_call *c)
{
    if (!c->paused) return;
    c->paused = 0;
    if (c->on_resume_list || net_call_done(c)) return;
    if (c->in.len == c->in_off && !c->eos_pending) return;
    /* Delivered from the loop, not from inside the handler that resumed. */
    net_call_ref(c);
    c->on_resume_list = 1;
    c->resume_next = c->srv->resume;
    c->srv->resume = c;
}

static void half_close(net_call *c)
{
    if (c->half_closed) return;
    if (c->paused || c->auth_hold || c->in.len > c->in_off) {
        c->eos_pending = 1; /* after the held bytes (NET-6, NET-8) */
        return;
    }
    c->half_closed = 1;
    c->eos_pending = 0;
    if (!net_call_done(c) && grpc_deframer_partial(&c->df)) {
        net_call_finish(c, GRPC_INTERNAL, "incomplete message at end of stream", NULL, 0);
        return;
    }
    if (!net_call_done(c) && c->m && c->m->on_half_close) c->m->on_half_close(c);
}

static int deliver(void *ctx, const uint8_t *msg, size_t len)
{
    net_call *c = ctx;
    if (net_call_done(c)) return 1;
    c->m->on_message(c, msg, len);
    return net_call_done(c) || c->paused ? 1 : 0;
}

static int df_charge(void *ctx, long delta)
{
    net_call *c = ctx;
    if (delta >= 0) return net_charge(c->srv, c->conn, c, (size_t)delta);
    net_release(c->srv, c->conn, c, (size_t)-delta);
    return 0;
}

/* Deframe and deliver; returns the bytes taken (fewer than len when the
 * handler paused the call, all when the call is over). */
static size_t feed(net_call *c, const uint8_t *data, size_t len)
{
    c->delivering = 1;
    int rc = grpc_deframe(&c->df, data, len, deliver, c);
    c->delivering = 0;
    if (net_call_done(c)) drop_input(c); /* finished by the handler: its input is of no more use */
    if (rc >= 0) {
        c->partial_since = grpc_deframer_partial(&c->df) ? c->srv->now : 0;
        return net_call_done(c) ? len : c->df.consumed;
    }
    c->srv->st.protocol_errors++;
    const char *why = rc == GRPC_DEFRAME_TOO_LARGE    ? "message larger than the server accepts"
                      : rc == GRPC_DEFRAME_COMPRESSED ? "compressed messages are not supported"
                      : rc == GRPC_DEFRAME_NOMEM      ? "the connection holds more memory than the server allows"
                                                      : "malformed gRPC message prefix";
    net_call_finish(c,
                    rc == GRPC_DEFRAME_TOO_LARGE || rc == GRPC_DEFRAME_NOMEM ? GRPC_RESOURCE_EXHAUSTED
                    : rc == GRPC_DEFRAME_COMPRESSED                          ? GRPC_UNIMPLEMENTED
                                                                             : GRPC_INTERNAL,
                    why, NULL, 0);
    return len;
}

/* Keep bytes of a paused call (their stream window stays shut). */
static void hold(net_call *c, const uint8_t *data, size_t len)
{
    if (c->in_off && c->in_off == c->in.len) c->in.len = c->in_off = 0;
    if (net_buf_append(c->srv, c->conn, c, &c->in, data, len)) {
        c->srv->st.protocol_errors++;
        net_call_finish(c, GRPC_RESOURCE_EXHAUSTED, "the connection holds more memory than the server allows", NULL,
                        0);
    }
}

void call_run_resumed(net_server *s)
{
    while (s->resume) {
        net_call *c = s->resume;
        s->resume = c->resume_next;
        c->on_resume_list = 0;
        conn *k = c->conn;
        if (!net_call_done(c) && !c->paused && !c->auth_hold && k && !k->dead) {
            size_t avail = c->in.len - c->in_off;
            if (avail) {
                size_t used = feed(c, c->in.data + c->in_off, avail);
                /* feed may finish the call, which frees c->in */
                if (c->in.len) c->in_off += used;
                if (c->conn && c->conn->h2) nghttp2_session_consume_stream(k->h2, c->stream_id, used);
                conn_mark(k);
            }
            if (c->in.len == c->in_off) {
                net_buf_free(s, c->conn, c, &c->in);
                c->in_off = 0;
                if (c->eos_pending && !c->paused && !c->auth_hold) half_close(c);
            }
        }
        net_call_unref(c);
    }
}

/* ---- HTTP/2 callbacks ----------------------------------------------------- */

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
    if (net_charge(k->srv, k, NULL, sizeof(net_call))) return NGHTTP2_ERR_CALLBACK_FAILURE;
    net_call *c = call_alloc(k->srv);
    if (!c) {
        net_release(k->srv, k, NULL, sizeof(net_call));
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    c->mem = sizeof(net_call); /* charged above, to the connection; now the call's */
    c->refs = 1;               /* the connection's */
    c->conn = k;
    c->srv = k->srv;
    c->stream_id = frame->hd.stream_id;
    grpc_deframer_init(&c->df, k->srv->cfg.max_message);
    c->df.charge = df_charge;
    c->df.charge_ctx = c;
    c->next = k->calls;
    k->calls = c;
    k->n_calls++;
    k->srv->st.calls++;
    k->srv->st.calls_total++;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, c);
    return 0;
}

static int keep_header(net_call *c, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen)
{
    /* Header bytes are bounded (MAX_HEADER_BYTES) and charged (NET-5). */
    if (net_charge(c->srv, c->conn, c, namelen + valuelen + 2)) return -1;
    c->hname[c->n_headers] = call_strdup(c, name, namelen);
    c->hvalue[c->n_headers] = call_strdup(c, value, valuelen);
    c->n_headers++; /* freed with the call even if one strndup failed */
    return c->hname[c->n_headers - 1] && c->hvalue[c->n_headers - 1] ? 0 : -1;
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
        call_strfree(c, c->path);
        c->path = call_strdup(c, value, valuelen);
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
        if (grpc_parse_timeout((const char *)value, valuelen, &ns) == 0) c->deadline = net_mono_ns() + ns;
        return 0;
    }
    if (namelen && name[0] == ':' && !(namelen == 10 && !memcmp(name, ":authority", 10))) return 0;
    if (c->n_headers < MAX_HEADERS && keep_header(c, name, namelen, value, valuelen))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* Hand the call to its handler. */
static void call_begin(net_call *c)
{
    c->started = 1;
    if (c->m->on_start && c->m->on_start(c, c->m->svc) != 0 && !c->finished)
        net_call_finish(c, GRPC_INTERNAL, "call refused", NULL, 0);
}

/* ---- authentication (NET-8) ------------------------------------------------ */

const char *net_auth_header(const net_auth *a, const char *name)
{
    if (a->c) return net_call_header(a->c, name);
    if (a->authorization && strcmp(name, "authorization") == 0) return a->authorization;
    if (a->cookie && strcmp(name, "cookie") == 0) return a->cookie;
    return NULL;
}

net_call *net_auth_call(const net_auth *a)
{
    return a->c;
}

int net_auth_gone(const net_auth *a);

const char *net_auth_peer_cn(const net_auth *a)
{
    if (net_auth_gone(a)) return NULL;
    conn *k = a->c ? a->c->conn : a->k;
    return k ? k->peer_cn : NULL;
}

int net_auth_gone(const net_auth *a)
{
    return a->c ? net_call_done(a->c) : !a->k || a->k->dead;
}

void **net_auth_slot(net_auth *a)
{
    if (net_auth_gone(a)) return NULL;
    conn *k = a->c ? a->c->conn : a->k;
    return k ? &k->auth_slot : NULL;
}

const char *net_auth_peer(net_auth *a)
{
    if (!a->peer[0] && !net_auth_gone(a)) {
        conn *k = a->c ? a->c->conn : a->k;
        if (k) snprintf(a->peer, sizeof a->peer, "%s", conn_peer(k));
    }
    return a->peer;
}

void call_authenticate(net_call *c)
{
    net_server *s = c->srv;
    net_auth *a = calloc(1, sizeof *a);
    if (!a) {
        c->started = 1;
        net_call_finish(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    a->srv = s;
    a->c = c;
    net_call_ref(c); /* until net_auth_done */
    c->auth_hold = 1;
    s->cfg.auth_fn(s->cfg.auth_ctx, a);
}

void net_auth_done(net_auth *a, int status, const char *message, void *principal, void (*free_fn)(void *))
{
    net_call *c = a->c;
    if (!c) {
        if (a->k && !a->k->dead) {
            a->k->http_auth = NULL;
            http1_auth_done(a->k, status, principal, free_fn);
        } else if (free_fn) {
            free_fn(principal);
        }
        free(a->authorization);
        free(a->cookie);
        free(a);
        return;
    }
    free(a);
    c->auth_hold = 0;
    if (net_call_done(c)) {
        if (free_fn) free_fn(principal);
    } else if (status) {
        if (free_fn) free_fn(principal);
        net_call_finish(c, status, message, NULL, 0); /* never started: no on_close */
    } else {
        net_call_set_auth(c, principal, free_fn);
        call_begin(c);
        /* What arrived meanwhile goes to the handler from the loop (NET-6). */
        if (!net_call_done(c) && !c->paused && !c->on_resume_list && (c->in.len > c->in_off || c->eos_pending)) {
            net_call_ref(c);
            c->on_resume_list = 1;
            c->resume_next = c->srv->resume;
            c->srv->resume = c;
        }
    }
    if (c->conn) conn_mark(c->conn);
    net_call_unref(c);
}

/* The request headers are complete: route the call. */
static void call_start(conn *k, net_call *c)
{
    net_server *s = k->srv;
    c->m = c->path ? find_method(s, c->path) : NULL;
    if (!c->is_post || !c->is_grpc) {
        /* Not gRPC at all: a plain HTTP request (a browser that chose h2
         * over TLS, curl). The HTTP endpoints speak HTTP/1.1: RFC 9113's
         * HTTP_1_1_REQUIRED tells the client to send it again over
         * HTTP/1.1, which browsers and curl do on a new connection (whose
         * ALPN then offers http/1.1 alone). */
        c->finished = c->headers_sent = c->trailers_sent = 1;
        nghttp2_submit_rst_stream(k->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_HTTP_1_1_REQUIRED);
        return;
    }
    if (!c->m) {
        c->started = 1; /* so that finish works; there is no on_close */
        net_call_finish(c, GRPC_UNIMPLEMENTED, "Method not found", NULL, 0);
        return;
    }
    if (s->cfg.auth_fn) {
        call_authenticate(c); /* NET-8: started when it is decided */
        return;
    }
    call_begin(c);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)session;
    conn *k = user_data;
    net_call *c = frame->hd.stream_id ? stream_call(k, frame->hd.stream_id) : NULL;
    if (!c) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) call_start(k, c);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && (c->started || c->auth_hold))
        half_close(c);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data)
{
    (void)flags;
    conn *k = user_data;
    net_call *c = stream_call(k, stream_id);
    /* The connection window always reopens: the bytes are taken, kept
     * (charged) or thrown away right here. */
    nghttp2_session_consume_connection(session, len);
    if (!c || !c->m || net_call_done(c)) {
        nghttp2_session_consume_stream(session, stream_id, len);
        return 0;
    }
    if (c->paused || c->auth_hold || c->in.len > c->in_off) {
        hold(c, data, len);
        if (net_call_done(c)) nghttp2_session_consume_stream(session, stream_id, len);
        return 0;
    }
    size_t used = feed(c, data, len);
    nghttp2_session_consume_stream(session, stream_id, used);
    if (used < len && !net_call_done(c)) {
        hold(c, data + used, len - used); /* the handler paused mid-chunk */
        if (net_call_done(c)) nghttp2_session_consume_stream(session, stream_id, len - used);
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
    drop_input(c);
    call_detach(c);
    call_closed(c);
    net_call_unref(c);
    return 0;
}

void call_h2_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

void call_close_all(conn *k)
{
    net_server *s = k->srv;
    while (k->calls) {
        net_call *c = k->calls;
        k->calls = c->next;
        s->st.calls--;
        drop_input(c);
        call_detach(c);
        call_closed(c);
        net_call_unref(c);
    }
}

void call_writable(conn *k)
{
    /* Collect them first (with references): producing can close streams. */
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

void call_sweep(conn *k, uint64_t now)
{
    uint64_t limit = (uint64_t)k->srv->cfg.request_timeout_ms * 1000000u;
    for (net_call *c = k->calls; c; c = c->next)
        if (c->partial_since && now - c->partial_since > limit && !net_call_done(c)) {
            k->srv->st.timeouts++;
            net_call_finish(c, GRPC_DEADLINE_EXCEEDED, "the request message stopped arriving", NULL, 0);
        }
}
