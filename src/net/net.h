/*
 * net.h - factumd's network server: one epoll event loop that accepts TCP
 * connections, speaks gRPC over HTTP/2 (nghttp2) and plain HTTP/1.1 on the
 * same port, over TLS (net_server_set_tls; src/net/tls.h, TLS-1..5) or in
 * cleartext, and hands each gRPC call to the handlers of its method. The loop never blocks: handlers start work (for
 * example an asynchronous append) and finish the call later from the loop
 * thread (net_post).
 *
 * Design note (invariants; tests cite them as NET-n):
 *  NET-1  Every callback into handlers runs on the loop thread. net_post is
 *         the only entry from other threads.
 *  NET-2  Memory is bounded per call (queued output: net_call_send refuses
 *         beyond call_buffer_limit; input: one message of at most
 *         max_message) and per connection (at most max_streams calls, one
 *         write buffer), and by the number of connections.
 *  NET-3  A protocol error on a stream (bad gRPC framing, an oversized
 *         message) ends that stream only; an HTTP/2 error ends that
 *         connection only. Other clients never notice.
 *  NET-4  A call is released only after on_close ran and every reference
 *         (net_call_ref, for work in flight elsewhere) was dropped; once
 *         the stream is gone, sends and finishes on it are ignored.
 *  NET-5  Every byte a client makes the server hold is charged, in real
 *         bytes, to its call, its connection and the server: connection
 *         and call structures, read and write buffers, partial and held
 *         messages, queued output, nghttp2's own allocations (its memory
 *         hook) and what handlers charge (net_call_charge: decoded
 *         requests, events waiting for the store, queued answers). A
 *         connection never goes over max_connection_memory: the charge that
 *         would is refused and the call that asked fails
 *         (RESOURCE_EXHAUSTED), or nghttp2 fails the connection. When the
 *         server goes over max_client_memory it closes the connection that
 *         holds the most until it is back under, and takes no new
 *         connection while less than a reserve is left. Everything charged
 *         is released when it is freed; a closed connection owes nothing.
 *  NET-6  HTTP/2 flow control is manual: the connection window reopens as
 *         bytes arrive (they are taken, held or dropped at once), a
 *         stream's window only as its call takes them. A paused call
 *         (net_call_pause) is delivered nothing; what arrives is held and
 *         charged, and its window stays shut, so its client can be at most
 *         one stream window ahead. Resuming delivers the held bytes, then a
 *         half close that came meanwhile, from the loop.
 *  NET-7  Nothing incomplete waits for ever: a connection's TLS handshake
 *         and preface or HTTP/1.1 request, and a partial gRPC message that
 *         stopped growing, get request_timeout_ms; then the connection is
 *         closed (408 for HTTP/1.1) or the call ends (DEADLINE_EXCEEDED).
 *  NET-8  Authentication holds a request until it is decided (at
 *         net_auth below).
 */
#ifndef FACTUM_NET_H
#define FACTUM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct net_server net_server;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
typedef struct net_call net_call;

typedef struct net_header {
    const char *name;
    const char *value;
} net_header;

/* The handlers of one gRPC method. Every function pointer but on_message
 * may be NULL. A handler may call net_call_finish at any point; after
 * that no more messages are delivered. */
typedef struct net_method {
    const char *path; /* "/package.Service/Method" */
    /* The call's request headers have arrived. Return 0 to accept it (the
     * handler may finish it right away). */
    int (*on_start)(net_call *c, void *svc);
    /* A complete request message (bytes valid during the call). */
    void (*on_message)(net_call *c, const uint8_t *msg, size_t len);
    /* The client has sent its last message. */
    void (*on_half_close)(net_call *c);
    /* Queued output fell below the low-water mark after a send was refused
     * or net_call_want_writable was set: produce more. */
    void (*on_writable)(net_call *c);
    /* The call is over (finished by us, cancelled by the client, or the
     * connection closed). Release the handler's state here. */
    void (*on_close)(net_call *c);
    void *svc;
} net_method;

/* A plain HTTP/1.1 request and the response a handler fills in. */
typedef struct net_http_req {
    const char *method; /* "GET", ... */
    const char *path;   /* without the query */
    const char *query;  /* after '?', or "" */
    const char *accept; /* Accept header or "" */
    const uint8_t *body;
    size_t body_len;
    void *auth; /* NET-8: the principal authentication gave (NULL without auth_fn) */
    void *conn; /* the net layer's (for net_http_defer) */
    /* The admin UI's (ADR 0029): the Cookie, X-CSRF-Token, Origin and Host
     * headers ("" when absent or longer than the copy holds), whether the
     * request carried Authorization, and X-Requested-With. */
    const char *cookie, *csrf, *origin, *host;
    int has_authorization, requested_with;
} net_http_req;

typedef struct net_http_resp {
    int status; /* 401 adds `WWW-Authenticate: <net_config.http_challenge>` */
    const char *content_type;
    base_buf body;
    /* Extra header lines, each `Name: value\r\n` (the handler's, sent as
     * they are: no CR or LF inside a value). */
    base_buf headers;
} net_http_resp;

typedef void (*net_http_fn)(void *ctx, const net_http_req *req, net_http_resp *resp);

/* ---- HTTP/1.1 requests answered later ---------------------------------------
 *  NET-9  A handler whose answer needs work that must not run on the loop
 *         (SQL, a wait) defers it: net_http_defer in the handler, then
 *         net_http_answer exactly once, later, on the loop. Meanwhile the
 *         connection parses no further request (pipelined bytes wait,
 *         bounded as during NET-8); if the client goes away, the answer is
 *         dropped (and net_http_on_gone tells the handler, which may give
 *         up its work). What the handler filled in resp is then ignored;
 *         an answer given before the handler returns is sent as usual. */
typedef struct net_http_later net_http_later;
/* In the http handler only: answer req later. NULL without memory (then
 * answer now). */
net_http_later *net_http_defer(const net_http_req *req);
/* The answer (loop thread; frees l; resp is borrowed for the call). */
void net_http_answer(net_http_later *l, const net_http_resp *resp);
/* The id of req's connection (1, 2, ...: unique for the server's life). */
uint64_t net_http_conn_id(const net_http_req *req);
/* Has the client of l gone away (nothing will be sent)? */
int net_http_gone(const net_http_later *l);
/* Call fn(arg) on the loop if the connection closes before l is answered,
 * so that the handler can give up its work. l stays valid: it is still to
 * be answered exactly once (fn may do it: nothing is sent, l is freed). */
void net_http_on_gone(net_http_later *l, void (*fn)(void *arg), void *arg);

/* ---- authentication (NET-8) ------------------------------------------------
 * One request to authenticate: a gRPC call whose headers have arrived (before
 * its handler's on_start) or an HTTP/1.1 request (before the http handler).
 * The net layer knows nothing of users: it asks net_config.auth_fn, which
 * decides now or later and answers with net_auth_done exactly once.
 *
 *  NET-8  While an authentication is pending, nothing of its request reaches
 *         a handler: a call's messages and half close are held as for a
 *         paused call (NET-6: charged, its window shut), an HTTP/1.1
 *         connection parses no further request (and is closed if it sends
 *         more than two requests' worth meanwhile). A call whose
 *         authentication failed never sees on_start or on_close; one whose
 *         client left meanwhile is dropped when the answer comes. */
typedef struct net_auth net_auth;
enum {
    NET_AUTH_DONE = 0,    /* auth_fn called net_auth_done before returning */
    NET_AUTH_PENDING = 1, /* it will, later, on the loop thread (a stays valid until then) */
};
/* A request header of what is being authenticated (lower-case name), or
 * NULL. For HTTP/1.1 only `authorization` and `cookie` are kept. */
const char *net_auth_header(const net_auth *a, const char *name);
/* The gRPC call being authenticated, or NULL for an HTTP/1.1 request. */
net_call *net_auth_call(const net_auth *a);
/* The client's address as text ("127.0.0.1", "::1"), or "" when it is
 * gone or unknown. Valid until net_auth_done. */
const char *net_auth_peer(net_auth *a);
/* The subject CN of the connection's verified client certificate (TLS),
 * or NULL. Valid until net_auth_done. */
const char *net_auth_peer_cn(const net_auth *a);
/* Has the client gone away meanwhile (nothing will be answered)? */
int net_auth_gone(const net_auth *a);
/* The answer (loop thread only, NET-1; frees a). status 0: the request goes
 * on acting as `principal` (kept like net_call_set_auth; free_fn runs when
 * it is released, also when the request is gone). Otherwise it is refused:
 * a call ends with that gRPC status and message, an HTTP/1.1 request is
 * answered 401 with net_config.http_challenge (503 for GRPC_UNAVAILABLE). */
void net_auth_done(net_auth *a, int status, const char *message, void *principal, void (*free_fn)(void *));
/* NET-10: a slot that auth_fn may keep per connection (its memo of the
 * credentials the connection used last, so that the next call with the
 * same header is decided without a MAC). *slot starts NULL; what is left in
 * it goes to net_config.auth_slot_free when the connection ends. NULL when
 * the request's connection is gone. Loop thread only. */
void **net_auth_slot(net_auth *a);

typedef struct net_config {
    const char *host; /* address to listen on ("127.0.0.1", "0.0.0.0", "::") */
    int port;         /* 0: any free port (see net_server_port) */
    size_t max_connections;
    size_t max_streams;       /* concurrent calls per connection */
    size_t max_message;       /* largest request message */
    size_t call_buffer_limit; /* queued output per call */
    size_t max_client_memory;     /* NET-5: all that clients make the server hold */
    size_t max_connection_memory; /* NET-5: what one connection may make it hold */
    unsigned request_timeout_ms;  /* NET-7 (0: none) */
    void (*log_fn)(void *ctx, int level, const char *msg);
    void *log_ctx;
    /* Optional: non-zero while work posted back soon is in flight (appends
     * waiting for their fdatasync); the loop then polls briefly instead of
     * sleeping. */
    int (*spin_hint)(void *ctx);
    void *spin_ctx;
    /* Optional (NET-11): after a turn that finished a call, poll the same
     * way for up to this many microseconds (0: sleep at once): a client that
     * makes its calls one after the other (read an aggregate, then append)
     * sends the next within a round trip. The window adapts
     * (src/base/spinwin.h): three polls in a row that catch nothing close
     * it (no poll, and a whole poll now and then as a probe), a request
     * that comes within this bound opens it again. */
    unsigned poll_after_answer_us;
    /* Optional: completions the loop drives itself (a store driver, with
     * io_uring: the appends' fdatasyncs). drive_fd (>= 0) joins the epoll
     * set and is readable when drive_run has work; drive_ready says so
     * without a system call (the loop looks at it while polling and after
     * every turn); drive_run runs that work on the loop thread. */
    int drive_fd;
    int (*drive_ready)(void *ctx);
    void (*drive_run)(void *ctx);
    void *drive_ctx;
    /* Optional: called on the loop thread about every tick_ms (timers of
     * the handlers: message timeouts, periodic checkpoints). */
    void (*tick_fn)(void *ctx);
    void *tick_ctx;
    unsigned tick_ms;
    /* Optional (NET-8): authenticate every gRPC call and HTTP/1.1 request;
     * returns NET_AUTH_DONE or NET_AUTH_PENDING. NULL: no authentication
     * (net_call_auth stays NULL, net_http_req.auth NULL). */
    int (*auth_fn)(void *ctx, net_auth *a);
    void *auth_ctx;
    /* Frees what auth_fn left in a connection's slot (net_auth_slot). */
    void (*auth_slot_free)(void *ctx, void *slot);
    /* The WWW-Authenticate value of a 401 (e.g. `Basic realm="factum"`);
     * NULL: none. */
    const char *http_challenge;
    /* Optional: called on the loop thread after net_server_request_reload
     * (SIGHUP, /admin/reloadconfig): reload the certificates. */
    void (*reload_fn)(void *ctx);
    void *reload_ctx;
} net_config;

void net_config_init(net_config *c);

/* Create a server listening per cfg, with these methods (the array is
 * borrowed until net_server_free) and an HTTP/1.1 handler (may be NULL).
 * Returns 0 or -errno. */
int net_server_new(const net_config *cfg, const net_method *methods, size_t n_methods, net_http_fn http,
                   void *http_ctx, net_server **out);
/* The port actually bound. */
int net_server_port(const net_server *s);
/* Run the loop on the calling thread until net_server_stop; then finish
 * gracefully: stop accepting, let calls in flight end (up to drain_ms),
 * close connections. Returns 0 or -errno. */
int net_server_run(net_server *s, int drain_ms);
/* Ask the loop to stop. Thread-safe and async-signal-safe. */
void net_server_stop(net_server *s);
/* Has a stop been asked for (the loop drains its calls)? For handlers
 * whose calls would otherwise wait out the drain (a long wait). */
int net_server_stopping(const net_server *s);
/* Free the server. Work that other threads post after run returned is still
 * run here (so finish that work, e.g. close the store, before this). */
void net_server_free(net_server *s);
/* TLS on the port (tls.h, TLS-4): new connections use ctx from now on
 * (the server takes this reference; connections keep the context they
 * started with); NULL serves cleartext. Before run, or on the loop thread
 * (cfg.reload_fn). Without TLS a TLS ClientHello is answered with an
 * alert; with it, cleartext HTTP/1.1 gets 400 and a cleartext HTTP/2
 * preface SETTINGS and GOAWAY, each saying why. */
void net_server_set_tls(net_server *s, struct ssl_ctx_st *ctx);
/* Ask the loop to call cfg.reload_fn. Thread-safe and async-signal-safe. */
void net_server_request_reload(net_server *s);
/* Run fn(arg) on the loop thread soon. Thread-safe. 0 or -ENOMEM. */
int net_post(net_server *s, void (*fn)(void *arg), void *arg);
/* Run fn(arg) in a later turn of the loop, after the sockets and posted
 * completions, within the turn's budget for such work (2 ms): for a handler
 * that yields in the middle of long work (RPC-2). Loop thread only. 0 or
 * -ENOMEM. */
int net_defer(net_server *s, void (*fn)(void *arg), void *arg);

typedef struct net_stats {
    uint64_t connections;       /* open now */
    uint64_t connections_total; /* accepted since start */
    uint64_t calls;             /* in progress */
    uint64_t calls_total;
    uint64_t bytes_in, bytes_out;
    uint64_t protocol_errors;
    uint64_t connections_refused; /* at max_connections, or with the budget spent */
    uint64_t evictions;           /* connections closed because the budget was spent */
    uint64_t refused_charges;     /* allocations refused at a connection's cap */
    uint64_t timeouts;            /* incomplete requests ended (NET-7) */
    uint64_t tls_handshakes;      /* TLS handshakes completed */
    uint64_t tls_failures;        /* TLS handshakes that failed (and cleartext sent to the TLS port) */
    uint64_t tls_deferred;        /* handshake steps put off to a later turn (the turn's budget was spent) */
    uint64_t mem, mem_peak;       /* bytes held for clients now, and at most (NET-5) */
    uint64_t mem_limit;           /* max_client_memory */
} net_stats;
/* Loop thread only (or after run returned). */
void net_server_stats(const net_server *s, net_stats *st);

/* ---- calls (loop thread only, NET-1) ---------------------------------- */

void net_call_set_state(net_call *c, void *state);
void *net_call_state(const net_call *c);
/* Who the call acts as (set by authentication, read by authorization: an
 * auth_principal, src/auth/principal.h; the net layer only keeps it).
 * free_fn(auth) runs when the call is freed or the slot is set again. */
void net_call_set_auth(net_call *c, void *auth, void (*free_fn)(void *auth));
void *net_call_auth(const net_call *c);
/* The client's address as "ip:port" ("[ip6]:port") in buf (cap bytes);
 * "" when unknown or the connection is gone. Returns buf. */
char *net_call_peer(const net_call *c, char *buf, size_t cap);
net_server *net_call_server(const net_call *c);
/* The id of the call's connection (as net_http_conn_id), or 0 once it is gone:
 * for handlers that share something fairly among connections. */
uint64_t net_call_conn_id(const net_call *c);
/* Does the call's connection speak TLS? 1 or 0. */
int net_call_is_tls(const net_call *c);
/* The subject CN of the verified client certificate of the call's
 * connection (TLS with a certificate that chains to the trusted roots), or
 * NULL (no TLS, no certificate, no CN, or the connection is gone). Valid
 * while the call is in a handler callback (until it returns). */
const char *net_call_peer_cn(const net_call *c);
/* A request header (lower-case name), or NULL. */
const char *net_call_header(const net_call *c, const char *name);
/* Absolute deadline (CLOCK_MONOTONIC ns) from grpc-timeout, or 0. */
uint64_t net_call_deadline(const net_call *c);
/* Queue one response message. 0, -EAGAIN when the queue is over the limit
 * (nothing queued; on_writable follows), or -EPIPE if the call is over. */
int net_call_send(net_call *c, const uint8_t *msg, size_t len);
/* Bytes queued and not yet handed to the connection. */
size_t net_call_queued(const net_call *c);
/* Ask for on_writable once the queue drains. */
void net_call_want_writable(net_call *c);
/* End the call with a gRPC status, message (may be NULL) and extra
 * trailers. Later calls are ignored. */
void net_call_finish(net_call *c, int status, const char *message, const net_header *trailers, size_t n);
/* Is the call over (finished or gone)? */
int net_call_done(const net_call *c);
/* Stop delivering request messages until net_call_resume (NET-6): for a
 * handler that cannot take more now (the store's queue is full, answers
 * are not being read). May be called from on_message: the messages after
 * the current one wait. */
void net_call_pause(net_call *c);
void net_call_resume(net_call *c);
/* Charge n bytes the handler holds for this call to the budget (NET-5); 0,
 * or -ENOBUFS when the connection would go over its cap (nothing charged).
 * Release exactly what was charged, before the last reference goes. */
int net_call_charge(net_call *c, size_t n);
void net_call_release(net_call *c, size_t n);
/* Keep the call object alive across asynchronous work (NET-4). */
void net_call_ref(net_call *c);
void net_call_unref(net_call *c);

#endif
