/*
 * client_int.h - what the files of the C client (include/factum_client.h)
 * share: the parsed connection string (url.c), the connection and the
 * calls multiplexed on it (conn.c), the mapping of the server's
 * answers to factum codes, and a bump allocator that protobuf-c unpacks
 * response messages into (reset for every message, so that decoding a
 * stream of ReadResp messages costs no malloc per field).
 *
 * Layering: url.c knows nothing of sockets; conn.c knows HTTP/2 and gRPC
 * framing but no message types; client.c, append.c and read.c build the
 * protobuf messages of each call and decode the answers.
 *
 * Design note (invariants; tests cite them as CL-n):
 *  CL-1  Many calls share one connection, one HTTP/2 stream each (ADR
 *        0022). c->mu guards the connection, the nghttp2 session and the
 *        list of calls, and is never held across a wait, a poll() or a
 *        callback of the application. Whichever thread needs the socket
 *        drives it (the "driver", at most one: c->driver): it polls
 *        without the lock, then reads under it; the HTTP/2 callbacks only
 *        queue each whole response message on its call (client_msg) and
 *        wake the call's owner (its thread's condition variable, or the
 *        poller of an asynchronous call). A call's messages are decoded
 *        and handed to the application by its owner, outside the lock, so
 *        a slow callback stalls only its own stream. A driver whose own
 *        call has work, or is done, gives the role to one waiting thread
 *        (the only hand-off; a lone caller never pays one). Frames of an
 *        abandoned stream (timed out, cancelled) are ignored.
 *  CL-2  Nothing the server sends can abort the process or overrun a
 *        buffer: header values are copied truncated into fixed fields,
 *        messages are bounded by CLIENT_MAX_MESSAGE, every decode failure
 *        becomes FACTUM_EPROTOCOL and cancels the call.
 *  CL-3  A lost connection (EOF, socket error, HTTP/2 error) fails every
 *        call in flight on it with FACTUM_ECONNECT and the reason, and is
 *        dropped (by the driver: nobody closes an fd another thread
 *        polls; c->gen keeps a failed call off the next connection); the
 *        next call connects again. A timed-out call is cancelled
 *        (RST_STREAM) and the connection stays usable.
 *  CL-4  A response message is unpacked by its call's owner when it takes
 *        it off the queue, and a read copies it into the caller's batch,
 *        which owns every byte it points to; what waits undecoded for a
 *        call is bounded by its stream window (CL-7).
 *  CL-5  TLS never does I/O of its own: OpenSSL works on memory BIOs, and
 *        conn.c moves bytes between them and the socket (send with
 *        MSG_NOSIGNAL, recv, poll with the call's deadline), so TLS and
 *        cleartext share one path, a closed peer never raises SIGPIPE, and
 *        the handshake has the same deadline as everything else. What is
 *        received is decrypted at once (SSL_read until it wants more), so
 *        the input BIO holds at most one partial record.
 *  CL-6  A TLS context (CA, client certificate) is shared by the clients
 *        of the process that name the same files, unchanged (same inode,
 *        size and modification time); each client holds a reference.
 *  CL-7  Flow control per stream: the connection's window is given back
 *        as soon as bytes arrive, a stream's only when its owner has
 *        consumed every queued message; so a call never holds more than
 *        STREAM_WINDOW undelivered bytes, and a slow consumer stops only
 *        its own stream at the server.
 *  CL-8  A synchronous call made within CLIENT_FOLLOWS_NS of the
 *        connection's previous first answer (the server is then likely
 *        still polling after its answer, ADR 0030) polls the socket
 *        (poll with a zero timeout, yielding the CPU between) for up to a
 *        window before it sleeps, while it waits for its first answer
 *        (ADR 0031): an answer that comes within the window costs no
 *        wake-up. A call after a pause does not poll: the server's
 *        wake-up would queue behind the polling thread on its CPU. The
 *        window adapts per connection (SPIN-1..3 of src/base/spinwin.h):
 *        three polls in a row that catch nothing close it (the calls then
 *        sleep at once); an answer that comes within pollForAnswerUs of
 *        the request, caught or slept through, opens it again; a closed
 *        window is probed once after 1, 2, 4 ... 64 waits. At most one
 *        thread fewer than the CPUs the process may run on (its affinity)
 *        polls at once (none on one CPU); the others sleep.
 *        Subscriptions waiting for events, asynchronous calls and a call's
 *        later messages never poll.
 *  CL-9  While answers take longer than the window (CL-8's window closed:
 *        a durable append behind a slow disk's fdatasync), such a call
 *        sleeps for a learnt while, then polls for up to the window
 *        (SPIN-4 of src/base/spinwin.h): the wake-up is paid while the
 *        server still works, and the answer, when it comes, finds the
 *        thread awake. Only a thread that waits for an answer alone, or
 *        with fewer others in the process than CPUs to spare (CL-8's cap):
 *        with more, the CPUs have other work. The sleep is learnt per
 *        connection, aiming to poll about 25 us before the answer (with the
 *        default window; SPINLEAD_AIM_NS, at most half the window), and
 *        forgotten when answers come within the window again. An answer
 *        that came during a sleep already no longer than the aim opens the
 *        window: answers come sooner than the thread can sleep and wake.
 */
#ifndef FACTUM_CLIENT_INT_H
#define FACTUM_CLIENT_INT_H

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/spinwin.h"
#include "common/remote.h"
#include "factum_client.h"
#include "net/grpc.h"

/* ---- connection strings (url.c) ----------------------------------------- */

#define CLIENT_MAX_HOSTS    16
#define CLIENT_DEFAULT_PORT 2113

typedef struct client_host {
    char name[256]; /* host name or address, without IPv6 brackets */
    uint16_t port;
} client_host;

typedef struct client_url {
    client_host hosts[CLIENT_MAX_HOSTS];
    size_t n_hosts;
    int discover;                /* the +discover form: ask Gossip for the leader */
    int has_credentials;         /* user[:pass]@ was given: username/password, percent-decoded */
    char username[256];
    char password[256];
    int64_t default_deadline_ms; /* defaultDeadline=, -1 if absent */
    char connection_name[128];   /* connectionName=, sent as the connection-name header */
    int tls;                     /* tls= (default 1, as KurrentDB's clients) */
    int tls_verify_cert;         /* tlsVerifyCert= (default 1) */
    char ca_file[1024];          /* tlsCAFile=, percent-decoded; "" = the system's roots */
    char user_cert_file[1024];   /* userCertFile= and userKeyFile= (both or neither) */
    char user_key_file[1024];
    int64_t poll_for_answer_us;  /* pollForAnswerUs= (0..10000), -1 if absent: CLIENT_POLL_FOR_ANSWER_US */
} client_url;

/* wait.c: poll() for the connection's driver (mu not held) on pfd (the
 * socket, then the wake-up eventfd); for_answer: its call waits for its
 * first answer (CL-8, CL-9). */
int client_wait_socket(factum_client *c, struct pollfd *pfd, nfds_t n, int timeout, int for_answer);

/* gRPC's grpc-timeout header value for a deadline of ms milliseconds into
 * out (12 bytes or more): "<ms>m", or "<s>S" above 99,999,999 ms. */
void client_grpc_timeout(uint32_t ms, char *out);

/* How long (µs) a thread that waits for its call's answer polls the socket
 * before it sleeps in poll(), unless the connection string says
 * otherwise (CL-8). */
#define CLIENT_POLL_FOR_ANSWER_US 50
#define CLIENT_FOLLOWS_NS  100000u /* "closely": within factumd's default poll window */

/* Parse a KurrentDB connection string. Returns 0, or FACTUM_EBADURL with
 * a one-line reason in err (always NUL-terminated when errlen > 0). */
int client_url_parse(const char *url, client_url *out, char *err, size_t errlen);

#define CLIENT_ERRLEN 1024 /* an error message, NUL included */

/* ---- a bump allocator for protobuf-c unpacking ---------------------------- */

typedef struct client_arena_big client_arena_big;

typedef struct client_arena {
    ProtobufCAllocator pa; /* hand &pa to protobuf_c_message_unpack */
    uint8_t *buf;
    size_t cap, used;
    client_arena_big *big; /* what did not fit in buf; freed by the next reset */
    size_t big_bytes;
} client_arena;

void client_arena_init(client_arena *a);
/* Forget everything allocated (grows buf when the last round overflowed). */
void client_arena_reset(client_arena *a);
/* Reset and give back a buffer grown by a large message. */
void client_arena_trim(client_arena *a);
void client_arena_deinit(client_arena *a);
/* Allocate n bytes (16-aligned) until the next reset; NULL on OOM. */
void *client_arena_alloc(client_arena *a, size_t n);

/* ---- the connection and its calls (conn.c) ------------------------------ */

/* The largest response message accepted (CL-2). factumd's events are at
 * most 16 MiB by default; KurrentDB's clients accept 17 MiB. */
#define CLIENT_MAX_MESSAGE (64u << 20)

/* A response message of a call: return 0 to go on, CLIENT_ENOUGH to end
 * the call successfully without the rest (it is cancelled), or a negative
 * factum code after client_seterr (the call is cancelled and fails). */
#define CLIENT_ENOUGH 1
typedef int (*client_msg_fn)(void *ctx, const uint8_t *msg, size_t len);

/* A response message waiting for its call's owner (CL-1). */
typedef struct client_msg {
    struct client_msg *next;
    size_t len;
    uint8_t data[];
} client_msg;

typedef struct client_call client_call;

struct client_call {
    const char *path; /* "/package.Service/Method" */
    base_buf body;    /* the framed request messages, sent in order, then END_STREAM */
    size_t body_off;
    client_msg_fn on_msg;
    void *ctx;
    int no_deadline; /* a subscription: the client's timeout does not apply */
    uint32_t idle_ms; /* > 0: on_idle after this long without a message */
    int (*on_idle)(void *ctx); /* as on_msg's return: 0 go on, CLIENT_ENOUGH, < 0 */
    int got_msg;     /* a message arrived since the last idle check */
    int streaming;   /* bidirectional: the request stays open for client_call_push */
    int deferred;    /* nghttp2 waits for more request data */
    /* Filled in by conn.c while the call runs. */
    int32_t stream_id;
    int closed;        /* the stream is gone */
    int remote_closed; /* the server ended its side (trailers) */
    int local_closed;  /* all of body was handed to nghttp2 */
    int cancelled;     /* we reset the stream (CLIENT_ENOUGH or an error) */
    int reset_sent;    /* we reset it after the server's early answer */
    int cb_rc;         /* the error that cancelled it, or 0 */
    uint32_t reset_code;
    int http_status;
    int grpc_status; /* -1: none received */
    char content_type[64];
    char message[1024];      /* grpc-message, percent-decoded */
    char exception[64];      /* KurrentDB's exception trailer */
    char stream_name[1100];  /* stream-name trailer */
    char actual_version[32]; /* actual-version trailer */
    char *details;           /* grpc-status-details-bin (base64 text), malloc'd */
    size_t details_len;
    grpc_deframer df;
    /* Multiplexing (CL-1, CL-7); all under c->mu. */
    client_call *next, *prev; /* c->calls while registered */
    pthread_cond_t cv;        /* its owner waits here (synchronous calls) */
    int waiting;              /* its owner waits on cv */
    int registered;
    int done;                 /* nothing more arrives: closed, or the connection failed */
    client_msg *q_head, **q_tail;
    size_t unconsumed;        /* stream bytes received, window not yet given back */
    int conn_rc;              /* the connection failed under the call: its code */
    char errmsg[CLIENT_ERRLEN]; /* the reason of conn_rc or of a framing error (cb_rc) */
    uint64_t gen;             /* the connection (c->gen) its stream is on */
    uint64_t deadline_ns;     /* 0: none */
    /* An asynchronous call (client_call_submit): owned by the client's
     * poller, which runs on_done when it ends. */
    int async;
    int ready;                /* on c->ready */
    int consuming;            /* a poller runs its callbacks (one at a time per call) */
    client_call *rnext;
    void (*on_done)(client_call *k, int rc);
};

typedef struct client_pool client_pool;

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

struct factum_client {
    remote_head head;   /* first (RM-2 of common/remote.h): libfactum's remote decider calls through it */
    pthread_mutex_t mu; /* CL-1 */
    client_url url;
    uint32_t timeout_ms, connect_timeout_ms;
    /* TLS (url.tls): the context is made once (CA, client certificate) and
     * kept across reconnections; ssl is the connection's, over memory BIOs
     * (CL-5). */
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    uint64_t rx_bytes;   /* bytes received on this connection (mismatch detection) */
    int raw;             /* options.raw: send factum-raw: 1 */
    char auth[700];      /* "Basic base64(user:pass)", or "" without credentials */
    /* The connection; fd < 0 when there is none (CL-3). */
    int fd;
    nghttp2_session *h2;
    char authority[300];
    int got_settings, goaway;
    uint32_t goaway_code; /* the GOAWAY's error code and debug data */
    char goaway_msg[256];
    /* Multiplexing (CL-1). */
    client_call *calls;       /* registered calls (streams in flight) */
    size_t n_async;           /* asynchronous calls registered */
    client_call *ready, **ready_tail; /* asynchronous calls with work for the poller */
    int driver;               /* a thread drives the socket */
    int dead;                 /* the connection failed while a driver polled: it drops it */
    uint64_t gen;             /* counts connections */
    int wakefd;               /* eventfd: wakes the driver's poll() */
    pthread_cond_t poll_cv;   /* factum_client_poll waits here */
    int poll_waiting;
    pthread_cond_t drv_cv;    /* a connect waits here for a failed driver to let go */
    int drv_waiting;
    uint8_t *rbuf;
    size_t rcap;
    base_buf wbuf; /* output (encrypted, with TLS) that the socket did not take yet */
    base_buf pbuf; /* TLS: nghttp2's output gathered, to be encrypted in as few records as possible */
    size_t woff;
    client_pool *pool;  /* memory for batches (read.c) */
    spinwin poll_win; /* CL-8: polling for an answer (max: pollForAnswerUs); the driver's alone */
    spinlead poll_lead; /* CL-9: the sleep before polling for a slow answer; the driver's alone */
    /* For tests: waits for an answer that followed closely (CL-8), those of
     * them that slept then polled (CL-9), answers so caught, and answers
     * that came during a sleep no longer than the aim (the window opened). */
    uint64_t answer_waits, lead_waits, lead_caught, lead_reopens;
    uint64_t last_answer_ns; /* when a synchronous call last got its first answer */
};

/* A condition variable on CLOCK_MONOTONIC (the clock of every deadline). */
void client_cond_init(pthread_cond_t *cv);
/* The calling thread's last error message (factum_client_last_error). */
char *client_errbuf(void);
/* The calling thread's arena: response messages are unpacked into it. */
client_arena *client_tl_arena(void);
/* Around an application callback that gets pointers into the thread's
 * arena: a fresh arena for calls the callback makes (tmp, initialised
 * here), then back; the caller deinits tmp. */
client_arena *client_arena_enter(client_arena *tmp);
void client_arena_leave(client_arena *saved);

/* Format the message of the failing call into the thread's error text. */
void client_seterr(factum_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Connect to the first host of c->url that answers with HTTP/2 (and, for
 * +discover, move to the leader Gossip names). 0, FACTUM_ECONNECT or
 * -ENOMEM, with c->err set. */
int client_connect_hosts(factum_client *c);
/* Close the connection (if any). */
void client_disconnect(factum_client *c);
/* HTTP/2 on c's connected socket (conn.c): our SETTINGS, then the
 * server's within connect_timeout_ms. 0, or FACTUM_ECONNECT, FACTUM_ETLS or
 * -ENOMEM with why (connect.c's use). */
int client_h2_start(factum_client *c, char *why, size_t wlen);
/* A polite goodbye before closing (GOAWAY, TLS close_notify), without
 * waiting: the server would notice the close anyway. */
void client_goodbye(factum_client *c);

void client_call_init(client_call *k, const char *path, client_msg_fn on_msg, void *ctx);
void client_call_deinit(client_call *k);
/* Pack m, with its 5-byte prefix, at the end of the request body. */
int client_call_add(client_call *k, const ProtobufCMessage *m);
/* A streaming call in progress (k->streaming): send one more request
 * message (from its callbacks). 0 or -ENOMEM / FACTUM_ETOOBIG. */
int client_call_push(factum_client *c, client_call *k, const ProtobufCMessage *m);
/* Start k asynchronously (k->async, k->on_done set; k heap-allocated and
 * left alone until on_done): its messages go to on_msg and on_done runs
 * in factum_client_poll. 0, or an error (on_done is then not called). */
int client_call_submit(factum_client *c, client_call *k);
/* factum_client_close: end every asynchronous call still in flight or
 * waiting for the poller (its on_done runs with FACTUM_ECONNECT). */
void client_end_async(factum_client *c);
/* Run the call on c's connection (connecting first if there is none), with
 * c's deadline: 0 when the server answered OK (and every message was
 * accepted by on_msg), or a factum code with c->err set: the server's error
 * mapped (client_call_error), FACTUM_ECONNECT, FACTUM_ETIMEDOUT,
 * FACTUM_EPROTOCOL, -ENOMEM, or on_msg's error. */
int client_call_run(factum_client *c, client_call *k);
/* The factum code of a call the server failed (grpc-status != 0), from its
 * exception trailer, the status details, the message and the status. */
int client_call_error(const client_call *k);
/* The actual-version trailer as a version: FACTUM_NO_STREAM when empty. */
int64_t client_call_actual_version(const client_call *k);
/* Decode grpc-status-details-bin into a google.rpc.Status whose single
 * detail is unpacked into the arena: *type is the detail's type name
 * (after the last '/'), *value its bytes. 0, or -1 if there is none or it
 * does not decode. */
int client_call_detail(factum_client *c, const client_call *k, const char **type, ProtobufCBinaryData *value);

/* Run a unary call: one request message, the first response message is
 * unpacked with desc into c->arena (valid until the next use of the arena)
 * and returned in *resp. A call that ends OK without a message is
 * FACTUM_EPROTOCOL. keep (may be NULL) receives the finished call, for its
 * trailers; the caller then deinits it. */
int client_unary(factum_client *c, client_call *keep, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp);

/* 0 for a valid expected version (>= 0, ANY, NO_STREAM, STREAM_EXISTS). */
int client_check_expected(int64_t e);

/* TLS (tls.c, and the record movers of conn.c it drives) */
/* OpenSSL's reason for its last error, in buf (the error queue is cleared). */
const char *client_tls_reason(char *buf, size_t n);
/* Move what TLS produced (records, alerts) from the write BIO into wbuf. 0 or -ENOMEM. */
int client_out_tls(factum_client *c);
/* Write wbuf to the socket as far as it takes it. */
int client_out_send(factum_client *c);
/* Do these first bytes from a server look like a TLS record? */
int client_looks_like_tls(const uint8_t *p, size_t n);
/* The connection's SSL_CTX (shared, CL-6), made or found for c->url: 0 or an error with its reason set. */
int client_tls_context(factum_client *c);
/* The TLS handshake on c's connected socket to h: 0, or FACTUM_ETLS / FACTUM_ECONNECT with why. */
int client_tls_start(factum_client *c, const client_host *h, char *why, size_t wlen);
/* Monotonic clock, ns. */
uint64_t client_now_ns(void);

/* ---- the calls (append.c, read.c) ---------------------------------------- */

/* Freed batch memory kept for the next reads (read.c); reference-counted
 * because batches may outlive their client. */
int client_pool_new(client_pool **out);
void client_pool_unref(client_pool *p);

/* factum_client_append without the lock (also used for metadata). */
int client_append_locked(factum_client *c, const char *stream, int64_t expected,
                         const factum_event_data *events, size_t n, factum_append_result *res);
int client_read_stream_locked(factum_client *c, const char *stream, uint64_t from, int direction,
                              uint64_t max, factum_client_batch **out);

#endif
