/*
 * server_int.h - what the two halves of net.h's server share: server.c (the
 * event loop, connections, HTTP/1.1, memory accounting and eviction) and
 * call.c (gRPC calls over HTTP/2: nghttp2's callbacks, flow control,
 * pausing input, queued output). Nothing outside src/net includes it.
 */
#ifndef FACTUM_NET_SERVER_INT_H
#define FACTUM_NET_SERVER_INT_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <signal.h>

#include <openssl/ssl.h>

#include "base/spinwin.h"
#include "net/grpc.h"
#include "net/net.h"

#define MAX_HEADERS 48
#define MAX_HEADER_BYTES 16384
#define CALL_HSTORE 768 /* a call's headers and path are copied here while they fit (else malloc'd) */
#define CALL_CACHE 32   /* freed call structures the server keeps for its next calls */
#define LOW_WATER 65536
/* The HTTP/2 stream window: how far a client may send ahead of what a
 * call has taken (NET-6). The connection window is consumed as bytes are
 * accepted, so it never holds anything back on its own. */
#define STREAM_WINDOW (256u << 10)
#define CONN_WINDOW (16u << 20)

typedef struct conn conn;
typedef struct post post;

struct net_call {
    int refs;
    conn *conn; /* NULL once the stream or the connection is gone */
    net_server *srv;
    int32_t stream_id;
    const net_method *m;
    void *state;
    void *auth; /* net_call_set_auth */
    void (*auth_free)(void *);
    grpc_deframer df;
    size_t mem; /* bytes charged to this call (NET-5) */
    int n_headers;
    char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
    size_t header_bytes;
    char *path;
    int is_post, is_grpc;
    uint64_t deadline;
    base_buf out; /* framed messages not yet taken by nghttp2 */
    size_t out_off;
    /* NET-6: bytes that arrived while input was paused, not yet deframed
     * (their stream window is still closed) */
    base_buf in;
    size_t in_off;
    int paused, eos_pending, on_resume_list;
    int delivering; /* inside feed: input buffers stay until it returns */
    net_call *resume_next;
    uint64_t partial_since; /* CLOCK_MONOTONIC ns: a partial message last grew (0: none) */
    int started, headers_sent, deferred, finished, trailers_sent, closed_notified, half_closed;
    int want_writable;
    int auth_hold; /* NET-8: authentication pending; input held as when paused */
    /* trailers kept until nghttp2 has sent them */
    nghttp2_nv *tnv;
    size_t n_tnv;
    base_buf tstore;
    net_call *next; /* in the connection's list */
    /* Last, and not cleared when a call is made: headers and path as
     * NUL-terminated strings, while they fit. */
    size_t hstore_used;
    char hstore[CALL_HSTORE];
};

enum { CONN_NEW, CONN_H2, CONN_HTTP1, CONN_CLOSING };

struct conn {
    net_server *srv;
    uint64_t id; /* 1, 2, ...: unique for the server's life (net_call_conn_id) */
    int fd;
    int kind;
    nghttp2_session *h2;
    size_t mem; /* bytes charged to this connection, its calls' included (NET-5) */
    uint64_t req_started; /* CLOCK_MONOTONIC ns: an incomplete preface or HTTP/1.1 request began (0: none) */
    uint64_t last_active; /* CLOCK_MONOTONIC ns of the last bytes read */
    int reserved;         /* CONN_RESERVE is charged (until the protocol is known) */
    base_buf rbuf;        /* undecided / HTTP/1.1 input */
    base_buf wbuf;        /* output not yet written */
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
    net_auth *http_auth;   /* NET-8: the HTTP/1.1 request at the head of rbuf is being authenticated */
    void *http_principal;  /* ...and what it was given, for that one request */
    void (*http_principal_free)(void *);
    int http_authed;       /* http_principal is the answer for the request at the head of rbuf */
    int in_http1;          /* inside http1_input */
    net_http_later *http_later; /* NET-9: the request answered later (parsing waits for it) */
    net_http_later *http_deferring; /* set by net_http_defer inside the handler */
    int http_answered;   /* ...and answered by net_http_answer before the handler returned */
    int http_keep_alive; /* the request in the handler keeps the connection */
    int http_no_challenge; /* the request at the head of rbuf said X-Requested-With: a 401 without WWW-Authenticate */
    char peer[64];         /* the client's address as text, once asked for ("" before) */
    int is_tls;    /* the connection speaks TLS (tls.h) */
    char *peer_cn; /* subject CN of its verified client certificate, or NULL */
    void *auth_slot; /* NET-10: auth_fn's memo for this connection */
    /* The transport (conn_recv/conn_send in server.c): NULL for cleartext. */
    SSL *ssl;
    int tls_open;              /* the handshake is done */
    int tls_drained;           /* TLS-6: the last read from the socket found it empty */
    int tls_failed;            /* a fatal TLS error: no close_notify */
    int tls_read_wants_write;  /* SSL_read waits for the socket to take bytes (TLS-2) */
    int tls_write_wants_read;  /* SSL_write waits for bytes from the peer */
    size_t tls_mem;            /* charged for OpenSSL's share (TLS-5) */
    int pending;               /* on the server's pending list: decrypted bytes wait in the SSL */
    int tls_required;          /* cleartext HTTP/1.1 on the TLS port: its request gets 400 */
    conn *pending_next;
};

/* NET-8: one authentication in progress (call.c's net_auth_*). */
struct net_auth {
    net_server *srv;
    net_call *c; /* a gRPC call (referenced while pending), or NULL */
    conn *k;     /* an HTTP/1.1 request's connection (NULL once it closed) */
    char *authorization; /* HTTP/1.1: the header's value (copied: rbuf may move), or NULL */
    char *cookie;        /* HTTP/1.1: the Cookie header's value (copied), or NULL */
    char peer[64];
};

/* NET-9: an HTTP/1.1 request answered later. */
struct net_http_later {
    conn *k; /* NULL once the connection closed */
    int keep_alive;
    void (*gone_fn)(void *arg); /* net_http_on_gone */
    void *gone_arg;
};

struct post {
    post *next;
    void (*fn)(void *);
    void *arg;
};

struct net_server {
    net_config cfg;
    uint64_t next_tick;  /* CLOCK_MONOTONIC ns of the next tick_fn call */
    uint64_t next_sweep; /* of the next look for requests over request_timeout_ms */
    const net_method *methods;
    size_t n_methods;
    net_http_fn http;
    void *http_ctx;
    int lfd, epfd, evfd;
    int port;
    volatile sig_atomic_t stop;
    pthread_mutex_t post_mu;
    post *posts, *posts_tail;
    post *deferred, *deferred_tail; /* net_defer: loop thread only, run in bounded turns */
    conn *conns;
    conn *dead;       /* closed this round, freed after the event batch */
    conn *dirty;      /* output queued this round, flushed before the next wait */
    net_call *resume; /* calls whose input was resumed: delivered before the next wait */
    nghttp2_session_callbacks *cbs;
    nghttp2_option *h2opt;
    base_buf scratch; /* HTTP/2 output gathered for one write: only what the socket does not take
                         is copied into the connection (so idle connections hold no write buffer) */
    size_t mem; /* bytes charged in all (NET-5) */
    SSL_CTX *tls; /* TLS on the port (net_server_set_tls), or NULL: cleartext */
    volatile sig_atomic_t reload; /* net_server_request_reload: run cfg.reload_fn on the loop */
    conn *pending; /* TLS connections whose SSL holds bytes epoll cannot see: read next turn */
    uint64_t hs_spent; /* ns spent in TLS handshakes this turn */
    uint64_t log_sec, log_n; /* rate limit of per-connection log lines */
    uint64_t now; /* CLOCK_MONOTONIC ns when this turn of the loop began */
    /* NET-11: polling after an answer */
    int answered;           /* a call finished since the loop last chose to poll or sleep */
    spinwin poll_win;       /* how long it polls after an answer (src/base/spinwin.h) */
    net_call *call_cache; /* freed calls for reuse (linked by next), at most CALL_CACHE */
    int n_call_cache;
    net_stats st;
};

/* call.c: free the server's cached call structures. */
void net_call_cache_free(net_server *s);

/* server.c */
void net_log(net_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t net_mono_ns(void);
void conn_mark(conn *k);
void conn_flush(conn *k);
/* Charge n bytes held for k (and c, if not NULL) to the budget (NET-5).
 * -ENOBUFS if that would put k over its cap (nothing charged). */
int net_charge(net_server *s, conn *k, net_call *c, size_t n);
void net_release(net_server *s, conn *k, net_call *c, size_t n);
/* Append to a buffer, charging its growth first. 0, -ENOBUFS or -ENOMEM. */
int net_buf_append(net_server *s, conn *k, net_call *c, base_buf *b, const void *p, size_t n);
/* Free a buffer and release what it held. */
void net_buf_free(net_server *s, conn *k, net_call *c, base_buf *b);

/* The client's address of k as text ("" if unknown), kept in k->peer. */
const char *conn_peer(conn *k);
/* End the connection (its calls too, NET-4); it is freed after this turn. */
void conn_close(conn *k);

/* http1_conn.c: HTTP/1.1 on a connection */
#define HTTP1_MAX_HEAD 16384
#define HTTP1_MAX_BODY (1u << 20)
/* Handle every complete request in k's read buffer. */
void http1_input(conn *k);
/* Queue an answer (close_conn: end the connection after it). */
void http1_reply(conn *k, int status, const char *ctype, const uint8_t *body, size_t len, int close_conn);
/* Release the principal of k's authenticated request, if any. */
void http1_drop_principal(conn *k);
/* NET-8: the answer for the HTTP/1.1 request k held. */
void http1_auth_done(conn *k, int status, void *principal, void (*free_fn)(void *));

/* call.c */
/* NET-8: authenticate c (auth_fn set), then start it. */
void call_authenticate(net_call *c);
void call_h2_callbacks(nghttp2_session_callbacks *cbs);
/* Deliver the input of calls that were resumed (NET-6); loop thread, not
 * from nghttp2's callbacks. */
void call_run_resumed(net_server *s);
/* The connection is closing: end its calls (NET-4). */
void call_close_all(conn *k);
/* The connection's output drained: tell the calls waiting for room. */
void call_writable(conn *k);
/* A partial message that made no progress for request_timeout_ms ends its
 * call (NET-7). */
void call_sweep(conn *k, uint64_t now);

#endif
