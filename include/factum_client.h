/*
 * factum_client.h - the C client of factumd (and of any server speaking the
 * KurrentDB gRPC client protocol over HTTP/2). It is its own library,
 * libfactum-client (pkg-config factum-client; link -lfactum-client), which
 * needs neither libfactum nor the storage engine: it carries the parts of
 * factum.h that need no store (factum_strerror, the factum_uuid_*
 * functions, factum_check_stream_name, factum_stream_metadata_parse,
 * filters, factum_query_options_init, factum_projection_def_init) and
 * exports them as well. A program that uses the store too, or the
 * toolkit's remote decider (factum_app.h), links both. The conventions of
 * factum.h apply (0 or a negative code, factum_strerror, borrowed vs owned
 * pointers stated per function).
 *
 * A factum_client is one HTTP/2 connection that carries any number of
 * calls at once, one HTTP/2 stream each (docs/adr/0022): every call may be
 * made from any thread at any time, and calls of different threads run in
 * parallel on the connection (a subscription on one thread does not hold up
 * appends of another; N subscriptions may share one client). Whichever
 * waiting thread needs the socket reads it for all, and each call's
 * answers are decoded on its own thread, so a slow callback delays only its
 * own call: the server's data for it waits behind that stream's HTTP/2
 * window (16 MiB), never the connection's. One thread can also keep many
 * calls in flight itself: factum_client_append_submit and
 * factum_client_subscribe_submit, whose callbacks factum_client_poll runs.
 * A connection runs at most the server's limit of concurrent calls at once
 * (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; factumd: 100, `--max-concurrent-streams`; KurrentDB: 100); the
 * calls beyond it wait in the client, in order, for a stream to end (their
 * deadlines run meanwhile). Subscriptions hold their stream for their whole
 * life, so spread more than about 90 of them over several clients.
 * factum_client_close must not race with calls in progress on c.
 *
 * Connections: HTTP/2 over TLS 1.2 or 1.3 (ALPN h2, the server's
 * certificate verified against tlsCAFile or the system's roots, and its
 * host name or address checked), with a client certificate for mutual TLS
 * when the connection string names one; or cleartext HTTP/2 with prior
 * knowledge (tls=false). Credentials are sent on every call as
 * `authorization: Basic ...`. When the connection is lost (the server went away, a
 * protocol error), the call in progress fails with FACTUM_ECONNECT and the
 * next call connects again, to the first host of the connection string
 * that answers. A call that fails with FACTUM_ECONNECT or
 * FACTUM_ETIMEDOUT may or may not have been carried out by the server.
 *
 * Deadlines: every call, reads included, must finish within
 * options.timeout_ms; the deadline is also sent to the server
 * (grpc-timeout). Read large ranges in pages (a max per call), or set
 * timeout_ms to 0.
 */
#ifndef FACTUM_CLIENT_H
#define FACTUM_CLIENT_H

#include "factum.h"
#include "factum_readmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Errors of the client beyond factum.h's (which it also returns, mapped
 * from the server's answers: FACTUM_EWRONGVERSION, FACTUM_EDELETED,
 * FACTUM_ENOTFOUND, FACTUM_ETOOBIG, FACTUM_EINVAL, ...). */
enum {
    FACTUM_ECONNECT = -1101,     /* cannot connect, or the connection was lost */
    FACTUM_EPROTOCOL = -1102,    /* the server's answer is not what the protocol allows */
    FACTUM_ESERVER = -1103,      /* the server failed the call (see factum_client_last_error) */
    FACTUM_EUNSUPPORTED = -1104, /* the server does not implement this call */
    FACTUM_EBADURL = -1106,  /* the connection string (or an option) is malformed */
    /* -1107 is FACTUM_EEXISTS (factum.h): it exists already */
    FACTUM_EFULL = -1108,     /* the consumer group has its maximum number of consumers */
    FACTUM_ECANCELED = -1109, /* the server ended the subscription (its group was deleted or restarted) */
    /* TLS failed: the server's certificate was refused ("certificate verify
     * failed: <OpenSSL's reason>"), a file of the connection string cannot
     * be used, the server refused ours, or one side speaks TLS and the
     * other does not (the message says which). */
    FACTUM_ETLS = -1110,
    /* The server did not accept the credentials, or wants some (gRPC
     * UNAUTHENTICATED: wrong password, unknown or disabled user). */
    FACTUM_EUNAUTHENTICATED = -1111,
    /* The user may not do this (gRPC PERMISSION_DENIED, KurrentDB's
     * AccessDenied): nothing was done. */
    FACTUM_EACCESSDENIED = -1112,
};

/* A static message for any code: the ones above, and every other code as
 * factum_strerror describes it (factum.h's, -errno). factum_strerror
 * answers for the codes above too. Never NULL. Thread-safe. */
FACTUM_API const char *factum_client_strerror(int code);

typedef struct factum_client factum_client;

/* timeout_ms's default: the connection string's defaultDeadline if it has
 * one, else 10000 ms. */
#define FACTUM_CLIENT_DEFAULT_TIMEOUT UINT32_MAX

typedef struct factum_client_options {
    uint32_t timeout_ms;         /* deadline of each call (default FACTUM_CLIENT_DEFAULT_TIMEOUT; 0: none) */
    uint32_t connect_timeout_ms; /* default 5000 (TCP, the TLS handshake and HTTP/2's SETTINGS) */
    /* Each non-NULL field overrides the connection string's (NULL, the
     * default: as the string says). Borrowed for factum_client_connect. */
    const char *username;       /* with password: the credentials of every call */
    const char *password;
    const char *tls_ca_file;    /* tlsCAFile */
    const char *user_cert_file; /* userCertFile and userKeyFile (mutual TLS) */
    const char *user_key_file;
    /* 1: ask for events as stored, not upcast (every read, subscription
     * and consumer group of this connection sends the request header
     * `factum-raw: 1`; docs/upcasting.md). Default 0. */
    int raw;
} factum_client_options;

FACTUM_API void factum_client_options_init(factum_client_options *o);

/* Connect to the server named by a connection string, as KurrentDB's
 * clients read it:
 *   kurrentdb://[user:pass@]host:port[,host:port...][?key=value&...]
 *   (also kurrent://, kdb://, esdb://, and the +discover forms; several
 *   hosts: the first that answers is used)
 * The port defaults to 2113; IPv6 addresses go in brackets; user and
 * password are percent-decoded. opts may be NULL. Options used:
 *   tls=true|false     TLS (the default) or cleartext HTTP/2
 *   tlsCAFile=PATH     the CA certificates (PEM) to verify the server with;
 *                      without it, the system's roots
 *   tlsVerifyCert=false  accept any server certificate (testing only)
 *   userCertFile=PATH&userKeyFile=PATH  a client certificate (PEM) for
 *                      mutual TLS; both or neither
 *   defaultDeadline=MS the deadline of each call, unless opts sets timeout_ms
 *   connectionName=X   sent as the connection-name header
 *   pollForAnswerUs=US factum's own (0..10000, default 50, 0: off): a
 *                      synchronous call made within 100 µs of the previous
 *                      answer on the connection polls the socket for its
 *                      answer for up to US before it sleeps (no wake-up
 *                      for a fast answer); three answers in a row that
 *                      take longer close the window (it is tried again
 *                      after 1, 2, 4 ... 64 calls); while answers take
 *                      longer than US, a thread that waits alone sleeps
 *                      for a learnt while, then polls for up to US (an
 *                      answer sooner than its shortest sleep opens the
 *                      window again); at most one thread fewer
 *                      than the CPUs the process may run on polls at once
 *                      (docs/adr/0031)
 * every other key (keepAliveInterval, nodePreference, ...) is accepted and
 * ignored. TLS: 1.2 or 1.3, ALPN h2, SNI with the host name, and the
 * server's certificate must name the host (DNS) or address (IP) of the
 * connection string. Credentials go with every call, also with tls=false
 * (as the Rust-based KurrentDB client does; a server without
 * authentication ignores them). "Answers" means the TCP connection is
 * accepted, the TLS handshake succeeds, and the server's HTTP/2 SETTINGS
 * arrive within connect_timeout_ms. The +discover forms then ask the
 * server (Gossip.Read) for the cluster's leader and connect to it if it
 * is another node.
 * Errors: FACTUM_EBADURL, FACTUM_ECONNECT, FACTUM_ETLS (every host that
 * was reached failed TLS: "certificate verify failed: ...", "the server
 * does not speak TLS ...", "the server speaks TLS ...", a file that cannot
 * be loaded), -ENOMEM; the reason is factum_client_last_error(NULL).
 * Calls that the server refuses for their credentials fail with
 * FACTUM_EUNAUTHENTICATED, for their rights with FACTUM_EACCESSDENIED. */
FACTUM_API int factum_client_connect(const char *url, const factum_client_options *opts, factum_client **out);
/* Close the connection and free. NULL is a no-op. Submitted calls still in
 * flight end first: their callbacks run here, with FACTUM_ECONNECT ("the
 * client was closed with the call in flight"). No other call on c may be in
 * progress (another thread's) or come after. */
FACTUM_API void factum_client_close(factum_client *c);

/* What protects the connection now: e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384",
 * or "" (cleartext, or no connection at the moment). The calling thread's
 * text, valid until its next call of this function. */
FACTUM_API const char *factum_client_tls(factum_client *c);

/* The message of the calling thread's last failed call (on any client;
 * the text is the thread's own, so threads sharing c do not see each
 * other's): valid until the thread's next call. Never NULL. With c ==
 * NULL: why the last factum_client_connect of the calling thread failed. */
FACTUM_API const char *factum_client_last_error(const factum_client *c);
/* The version the server advertises (ServerFeatures), e.g. "25.1.0",
 * NUL-terminated into buf. Errors: -ERANGE if it does not fit in len
 * bytes, FACTUM_EUNSUPPORTED, the errors of every call. */
FACTUM_API int factum_client_server_version(factum_client *c, char *buf, size_t len);

/* Append, with the semantics of factum_append (expectations, idempotency
 * by event id; ids the caller leaves unset are generated here). res->
 * first_version/first_position are not known over the protocol and are
 * computed from the last ones and n (exact for factumd, whose positions
 * are gapless). res->idempotent is always 0 (the protocol does not say
 * whether a replay wrote nothing) and res->timestamp_ns is the client's
 * clock when the answer arrived. Events are sent with content-type
 * application/json when flagged FACTUM_EVENT_JSON, else
 * application/octet-stream; FACTUM_EVENT_META_JSON has no encoding in the
 * protocol. Errors: FACTUM_EWRONGVERSION (res->actual_version set, from
 * the in-band answer or the trailers), FACTUM_EDELETED, FACTUM_ETOOBIG,
 * FACTUM_EBADNAME, FACTUM_EBADTYPE, FACTUM_EINVAL (checked before sending),
 * the store's own code when factumd names it (FACTUM_EDUPLICATEID, ...),
 * FACTUM_ECONNECT, FACTUM_ETIMEDOUT, FACTUM_EPROTOCOL, FACTUM_ESERVER. */
FACTUM_API int factum_client_append(factum_client *c, const char *stream, int64_t expected,
                                    const factum_event_data *events, size_t n, factum_append_result *res);
/* ---- pipelined (asynchronous) appends ----------------------------------
 *
 * One thread can keep many appends in flight on one connection (one HTTP/2
 * stream each): factum_client_append_submit sends the request and returns;
 * the result arrives in a callback that factum_client_poll runs. */

/* The end of a submitted append: rc and *res exactly as factum_client_append
 * would have returned them (FACTUM_EWRONGVERSION with res->actual_version,
 * the server's errors, FACTUM_ECONNECT when the connection was lost with the
 * append in flight, FACTUM_ETIMEDOUT after options.timeout_ms); error is
 * the message factum_client_last_error would give ("" on success). res and
 * error are valid during the call only. Runs on the thread that calls
 * factum_client_poll; it may submit more appends (and make blocking calls
 * on another client), but must not call factum_client_poll on c. */
typedef void (*factum_client_append_cb)(void *ctx, int rc, const factum_append_result *res, const char *error);

/* Submit an append (as factum_client_append) without waiting for it: the
 * request is sent (or queued behind what the socket has not taken yet) and
 * cb runs once, from factum_client_poll, with the outcome. Appends submitted
 * are carried out in the order the server receives them; appends to the
 * same stream with explicit expected versions are therefore checked in
 * submission order. stream and events are borrowed for the call only.
 * Returns 0 (cb will run), or an error found before sending
 * (FACTUM_EBADNAME, FACTUM_EBADTYPE, FACTUM_EINVAL, -ENOMEM, FACTUM_ECONNECT
 * when no connection can be made): cb will not run. Thread-safe; no limit
 * of its own on the number in flight (the server's limit of concurrent
 * streams, 100 by default in HTTP/2 and factumd, queues the rest inside
 * the client). */
FACTUM_API int factum_client_append_submit(factum_client *c, const char *stream, int64_t expected,
                                           const factum_event_data *events, size_t n,
                                           factum_client_append_cb cb, void *ctx);
/* Drive the connection and run the callbacks of submitted calls whose
 * outcome arrived: waits until at least one callback ran, timeout_ms
 * passed (< 0: no limit, 0: do not wait), or nothing is in flight.
 * Returns the number of callbacks run (0: none), or FACTUM_EINVAL.
 * One thread at a time should poll a client (two pollers share the work
 * in no particular order); other threads may make blocking calls on c
 * meanwhile. */
FACTUM_API int factum_client_poll(factum_client *c, int timeout_ms);
/* The number of submitted calls whose callback has not run yet. */
FACTUM_API size_t factum_client_pending(factum_client *c);

/* Atomic multi-stream append (the v2 AppendSession call). The v2 protocol
 * carries an event's metadata as properties (a map of JSON values), so
 * the metadata of each event must be empty or a JSON object (else
 * FACTUM_EINVAL); the server stores it re-encoded as compact JSON, numbers
 * as doubles. On failure *failed is the part the server names (or the
 * part that failed the checks made before sending), and for
 * FACTUM_EWRONGVERSION results[*failed].actual_version is set. A stream
 * may appear in one part only (FACTUM_EINVAL). */
FACTUM_API int factum_client_append_multi(factum_client *c, const factum_append_req *reqs, size_t n,
                                          factum_append_result *results, size_t *failed);

/* Events read from the server, owned by the batch: every pointer of its
 * factum_events points into memory the batch owns (stream and type are
 * NUL-terminated). flags is FACTUM_EVENT_JSON when the server gives
 * content-type application/json (and then FACTUM_EVENT_META_JSON too if
 * there is metadata: the protocol has no content type for it), else 0;
 * timestamp_ns is the server's `created` (100 ns ticks). */
typedef struct factum_client_batch factum_client_batch;
FACTUM_API size_t factum_client_batch_count(const factum_client_batch *b);
/* The i-th event (NULL if i is out of range); valid until
 * factum_client_batch_free, also after the client is closed. Freed
 * batches leave their memory to the client for its next reads (up to
 * 64 MiB per client, given back when the client is closed and its batches
 * are freed), so that reading in pages needs no fresh memory. */
FACTUM_API const factum_event *factum_client_batch_event(const factum_client_batch *b, size_t i);
FACTUM_API void factum_client_batch_free(factum_client_batch *b);

/* Read up to max events of a stream from version `from` (FACTUM_END: the
 * end) in `direction`, inclusive in both directions, into a new batch
 * *out (free it with factum_client_batch_free; NULL on error). Events its
 * metadata hides are skipped by the server. Fewer than max events means
 * the end of the stream was reached. Errors: FACTUM_ENOTFOUND (missing or
 * soft-deleted), FACTUM_EDELETED (tombstoned), FACTUM_EBADNAME,
 * FACTUM_EINVAL, and those of every call. */
FACTUM_API int factum_client_read_stream(factum_client *c, const char *stream, uint64_t from, int direction,
                                         uint64_t max, factum_client_batch **out);

/* A server-side filter for reads of $all (NULL: none). Strings are
 * borrowed for the call. Exactly one of prefixes and regex (a POSIX
 * extended regular expression, checked here first: FACTUM_EBADREGEX). */
typedef struct factum_client_filter {
    int on;                      /* FACTUM_FILTER_STREAM or FACTUM_FILTER_EVENT_TYPE */
    const char *const *prefixes; /* either prefixes ... */
    size_t n_prefixes;
    const char *regex; /* ... or a regular expression */
} factum_client_filter;

/* Read up to max events of $all from position `from` (0: start; FACTUM_END:
 * the end) in `direction`. Forward reads include `from`; backward reads
 * start before it (KurrentDB's positions point at the start of an event).
 * With a filter, up to max matching events (the server scans as far as it
 * needs). To page: forward, continue from the last position + 1;
 * backward, from the last position. */
FACTUM_API int factum_client_read_all(factum_client *c, uint64_t from, int direction,
                                      const factum_client_filter *filter, uint64_t max,
                                      factum_client_batch **out);

/* Soft delete / tombstone; res->last_position (and first_position, the
 * same) is the position the server reports; the versions are not
 * reported. Errors: FACTUM_EWRONGVERSION (res->actual_version from the
 * trailers), FACTUM_EDELETED, FACTUM_ENOTFOUND, ... */
FACTUM_API int factum_client_delete_stream(factum_client *c, const char *stream, int64_t expected,
                                           factum_append_result *res);
FACTUM_API int factum_client_tombstone_stream(factum_client *c, const char *stream, int64_t expected,
                                              factum_append_result *res);

/* Stream metadata (the `$$<stream>` stream), as JSON. *json_out is
 * malloc'd ("{}" if none); free() it. *version_out (may be NULL) is -1 if
 * none. set appends a `$metadata` event with `expected` applying to the
 * metadata stream; the document must be a JSON object whose $-keys have
 * KurrentDB's types (FACTUM_EBADJSON otherwise, before sending). */
FACTUM_API int factum_client_get_stream_metadata(factum_client *c, const char *stream, char **json_out,
                                                 int64_t *version_out);
FACTUM_API int factum_client_set_stream_metadata(factum_client *c, const char *stream, int64_t expected,
                                                 const char *json, factum_append_result *res);

/* The server's statistics (Monitoring.Stats) as "key value" lines,
 * malloc'd; free() it. */
FACTUM_API int factum_client_stats(factum_client *c, char **text_out);

/* ---- catch-up subscriptions ------------------------------------------
 *
 * Callback style: factum_client_subscribe runs the subscription on the
 * calling thread, on this client's connection, until the callback asks to
 * stop or an error ends it; other threads' calls on the same client go on
 * meanwhile (and other subscriptions: N subscriptions may share one
 * client). factum_client_subscribe_submit runs one without a thread of its
 * own (its callbacks from factum_client_poll). The server sends
 * history, then FACTUM_SUB_CAUGHT_UP, then live events; FACTUM_SUB_FELL_BEHIND
 * if this consumer drops too far behind (it catches up again by itself);
 * FACTUM_SUB_CHECKPOINT for filtered $all subscriptions. A slow callback
 * slows the server's sending (HTTP/2 flow control), never its memory. */
typedef struct factum_client_sub_options {
    const char *stream; /* NULL or "$all": the global log */
    int from;           /* FACTUM_SUB_START, FACTUM_SUB_END or FACTUM_SUB_AFTER */
    uint64_t after;     /* FACTUM_SUB_AFTER: a version, or a position of $all (exclusive) */
    const factum_client_filter *filter; /* $all only */
    /* $all with a filter: a FACTUM_SUB_CHECKPOINT every this many events
     * examined (0: every 32). Resume with FACTUM_SUB_AFTER its position. */
    uint32_t checkpoint_interval;
    int resolve_links;
    /* > 0: call the callback with FACTUM_SUB_IDLE after this long without
     * a message, so that it can decide to stop. */
    int idle_ms;
} factum_client_sub_options;

FACTUM_API void factum_client_sub_options_init(factum_client_sub_options *o);

/* Called for each item, in order. The item and the event memory it points
 * to are valid during the call only (stream and type are NUL-terminated).
 * it->position: for $all the commit position (of the event, checkpoint or
 * head); for a stream the version (FACTUM_END before the first). Return 0
 * to go on, 1 to stop (factum_client_subscribe then returns 0), or a
 * negative code to stop with that code. */
typedef int (*factum_client_sub_fn)(void *ctx, const factum_sub_item *it);

/* Subscribe per *o (NULL: $all from the start). Returns 0 when the
 * callback stopped it, or an error: FACTUM_EDELETED (the stream is or
 * became tombstoned), FACTUM_EBADNAME, FACTUM_EINVAL, FACTUM_EBADREGEX,
 * FACTUM_ECONNECT (the connection was lost: subscribe again with
 * FACTUM_SUB_AFTER the last position seen), and those of every call. No
 * deadline applies (the client's timeout_ms is for other calls). */
FACTUM_API int factum_client_subscribe(factum_client *c, const factum_client_sub_options *o,
                                       factum_client_sub_fn fn, void *ctx);

/* The end of a submitted subscription (factum_client_subscribe_submit):
 * rc as factum_client_subscribe would have returned it (0 when the
 * callback stopped it), error its message ("" for 0), valid during the
 * call. Runs from factum_client_poll. */
typedef void (*factum_client_sub_end_fn)(void *ctx, int rc, const char *error);

/* Start a subscription per *o (as factum_client_subscribe) without a thread
 * of its own: fn and then end run from factum_client_poll on c, on the
 * polling thread, so one thread can serve any number of subscriptions
 * multiplexed on one connection (one HTTP/2 stream each). The items of
 * one subscription come in order and never two at once, even with several
 * pollers. fn and end may make calls (blocking ones too, on c as well) but
 * must not call factum_client_poll on c; end may be NULL. o->idle_ms must
 * be 0 (FACTUM_EINVAL): the poll's timeout is the idle check. Returns 0
 * (end will run once), or an error found before sending (those of
 * factum_client_subscribe's checks, FACTUM_ECONNECT, -ENOMEM; end will not
 * run). o and its strings are borrowed for the call only. Thread-safe. */
FACTUM_API int factum_client_subscribe_submit(factum_client *c, const factum_client_sub_options *o,
                                              factum_client_sub_fn fn, void *ctx, factum_client_sub_end_fn end,
                                              void *end_ctx);

/* ---- persistent subscriptions (consumer groups) ------------------------
 *
 * A group on a stream or $all lives in the server; any number of consumers
 * share its events (each event goes to one of them, by the group's
 * strategy) and acknowledge them; an event not acknowledged within the
 * message timeout, or nacked with retry, is delivered again (to any
 * member) up to max_retry_count times, then parked. */
typedef struct factum_client_ps_settings {
    int start;          /* FACTUM_SUB_START, FACTUM_SUB_END (default), or FACTUM_SUB_AFTER: from start_at */
    uint64_t start_at;  /* FACTUM_SUB_AFTER: the first version / position delivered (inclusive) */
    const factum_client_filter *filter; /* $all groups only */
    int resolve_links;
    int32_t message_timeout_ms;   /* default 30000 */
    int32_t max_retry_count;      /* default 10 */
    int32_t checkpoint_after_ms;  /* default 2000 */
    int32_t min_checkpoint_count; /* default 10 */
    int32_t max_checkpoint_count; /* default 1000 */
    int32_t max_subscriber_count; /* default 0: unbounded */
    int32_t live_buffer_size;     /* default 500 */
    int32_t read_batch_size;      /* default 20 */
    int32_t history_buffer_size;  /* default 500 */
    const char *strategy; /* "RoundRobin" (default), "DispatchToSingle", "Pinned", "PinnedByCorrelation" */
} factum_client_ps_settings;

FACTUM_API void factum_client_ps_settings_init(factum_client_ps_settings *s);

/* Create / update / delete the group `group` on `stream` (NULL or "$all").
 * Errors: FACTUM_EEXISTS (create of an existing group), FACTUM_ENOTFOUND
 * (update or delete of a missing one), FACTUM_EINVAL, and those of every call. */
FACTUM_API int factum_client_ps_create(factum_client *c, const char *stream, const char *group,
                                       const factum_client_ps_settings *s);
FACTUM_API int factum_client_ps_update(factum_client *c, const char *stream, const char *group,
                                       const factum_client_ps_settings *s);
FACTUM_API int factum_client_ps_delete(factum_client *c, const char *stream, const char *group);

/* What the callback of factum_client_ps_subscribe returns for an event. */
enum factum_client_ps_action {
    FACTUM_PS_ACK = 0,   /* done */
    FACTUM_PS_PARK = 1,  /* nack: park it now */
    FACTUM_PS_RETRY = 2, /* nack: deliver it again (counts against max_retry_count) */
    FACTUM_PS_SKIP = 3,  /* nack: drop it (done) */
    FACTUM_PS_LATER = 4, /* nothing now (the message timeout will redeliver it) */
    FACTUM_PS_STOP = 5,  /* end the subscription; unacknowledged events go to the others */
};

/* Called for each event (it->kind FACTUM_SUB_EVENT, with retry_count the
 * times it was delivered before) and, with idle_ms, for FACTUM_SUB_IDLE
 * (return FACTUM_PS_STOP to end). Return an action, or a negative code to
 * end with it. The item is valid during the call only. */
typedef int (*factum_client_ps_fn)(void *ctx, const factum_sub_item *it, int retry_count);

/* Join the group as one consumer with up to buffer_size events in flight
 * (0: 10), on this client's connection, until the callback stops it (then
 * 0). Errors: FACTUM_ENOTFOUND (no such group), FACTUM_EFULL (the group's
 * max subscriber count is reached), FACTUM_ECANCELED (the group was
 * deleted or restarted), FACTUM_ECONNECT, and those of every call. */
FACTUM_API int factum_client_ps_subscribe(factum_client *c, const char *stream, const char *group,
                                          int buffer_size, int idle_ms, factum_client_ps_fn fn, void *ctx);

/* ---- projections ------------------------------------------------------
 *
 * The Projections service of a server that runs projections (factumd
 * with --run-projections System or All, KurrentDB with
 * RunProjections): the calls of factum.h's projection manager, over the
 * network. A server without projections answers FACTUM_EUNSUPPORTED.
 * Errors of every call below, beyond those of every call:
 * FACTUM_ENOTFOUND (no projection of that name), FACTUM_EEXISTS (create:
 * the name is taken), FACTUM_EBADSTATE (e.g. deleting one that runs),
 * FACTUM_EINVAL (refused by the server, e.g. a bad name, or a system
 * projection's query it cannot use). KurrentDB itself reports EEXISTS and
 * EBADSTATE only as unknown errors: those come back as FACTUM_ESERVER,
 * with its message in factum_client_last_error. */

/* Create a projection (and start it) per d: name, query, mode (one-time
 * projections are named by the server: d->name is not sent), and for a
 * continuous one emit_enabled and track_emitted_streams (which needs
 * emit_enabled: FACTUM_EINVAL). d->enabled is not sent (the server starts
 * every new projection). d and its strings are borrowed for the call. */
FACTUM_API int factum_client_projection_create(factum_client *c, const factum_projection_def *d);
/* Replace the query of `name` (NULL or "": keep it) and its emit option
 * (-1: keep it, 0 or 1). */
FACTUM_API int factum_client_projection_update(factum_client *c, const char *name, const char *query,
                                               int emit_enabled);
/* Delete a stopped projection; flags are factum.h's
 * FACTUM_PROJECTION_DELETE_*. */
FACTUM_API int factum_client_projection_delete(factum_client *c, const char *name, unsigned flags);
FACTUM_API int factum_client_projection_enable(factum_client *c, const char *name);
FACTUM_API int factum_client_projection_disable(factum_client *c, const char *name);
FACTUM_API int factum_client_projection_reset(factum_client *c, const char *name);

/* The status of projections (Statistics): of `name` only, or (name NULL)
 * of every projection of mode `mode` (an enum factum_projection_mode, or
 * -1 for all). cb runs once per projection with the fields the protocol
 * carries: name, mode, enabled and state (from KurrentDB's status text:
 * "Running", "Stopped (Enabled)", "Faulted", ...; `handler` points at that
 * text), reason, epoch, version, position and checkpoint (from its
 * "C:<commit>/P:<prepare>" positions; 0 for none), events_processed,
 * progress, writes_in_flight, buffered_events, partitions_cached; system
 * is 1 for a name starting with '$'; the rest is 0. The struct and its
 * strings are valid during the call only; cb returns 0 to go on, anything
 * else to stop (then returned). */
FACTUM_API int factum_client_projection_list(factum_client *c, const char *name, int mode,
                                             int (*cb)(void *ctx, const factum_projection_status *st),
                                             void *ctx);

/* The state (or result) of `name`, of `partition` (NULL or "": the
 * projection's own), as compact JSON into *json (malloc'd, NUL-terminated;
 * free() it) and *len. A projection without one gives "{}", as KurrentDB
 * answers then. Numbers come as the protocol carries them, doubles:
 * integers beyond 2^53 lose precision. */
FACTUM_API int factum_client_projection_state(factum_client *c, const char *name, const char *partition,
                                              char **json, size_t *len);
FACTUM_API int factum_client_projection_result(factum_client *c, const char *name, const char *partition,
                                               char **json, size_t *len);

/* ---------------------------------------------------------------------------
 * Users (the Users service; docs/security.md). Admins create, update,
 * delete, enable, disable, reset passwords and list users; a user may read
 * its own details and change its own password. Errors: FACTUM_ENOTFOUND (no
 * such user), FACTUM_EEXISTS (create: the login is taken; or a change that
 * raced with another), FACTUM_EACCESSDENIED (not allowed, or change-password:
 * the current password is wrong), FACTUM_EUNAUTHENTICATED, FACTUM_EINVAL (a
 * bad login, group or password), FACTUM_EUNSUPPORTED (a server without
 * users), and the connection's errors. Every string is borrowed for the call.
 * ------------------------------------------------------------------------- */

typedef struct factum_user_info {
    const char *login;
    const char *full_name;
    const char *const *groups;
    size_t n_groups;
    int disabled;
    int64_t updated_ns; /* when the user last changed (ns since the Unix epoch) */
} factum_user_info;

FACTUM_API int factum_client_user_create(factum_client *c, const char *login, const char *full_name,
                                         const char *const *groups, size_t n_groups, const char *password);
/* Replace the full name and the groups (the password stays). */
FACTUM_API int factum_client_user_update(factum_client *c, const char *login, const char *full_name,
                                         const char *const *groups, size_t n_groups);
FACTUM_API int factum_client_user_delete(factum_client *c, const char *login);
FACTUM_API int factum_client_user_enable(factum_client *c, const char *login);
FACTUM_API int factum_client_user_disable(factum_client *c, const char *login);
FACTUM_API int factum_client_user_change_password(factum_client *c, const char *login, const char *current,
                                                  const char *new_password);
FACTUM_API int factum_client_user_reset_password(factum_client *c, const char *login, const char *new_password);
/* The details of `login`, or (login NULL or "") of every user, sorted by
 * login: cb runs once per user (the struct and its strings are valid during
 * the call only) and returns 0 to go on, anything else to stop (then
 * returned). */
FACTUM_API int factum_client_user_list(factum_client *c, const char *login,
                                       int (*cb)(void *ctx, const factum_user_info *u), void *ctx);

/* ---------------------------------------------------------------------------
 * Read models (factumd's own ReadModels service, docs/protocol.md; the
 * calls of factum_readmodel.h over the network). Errors: FACTUM_ENOTFOUND
 * (no read model of that name), FACTUM_EEXISTS (create), FACTUM_EINVAL (a
 * bad definition, statement or parameter: factum_client_last_error has the
 * server's reason), FACTUM_ETIMEDOUT (a wait, or a query's time limit or
 * min_position), FACTUM_EFAULTED (the read model stopped on an error),
 * FACTUM_EACCESSDENIED / FACTUM_EUNAUTHENTICATED, FACTUM_EUNSUPPORTED (a
 * server without the service: KurrentDB), FACTUM_ESERVER (the server is
 * busy, or runs no read models), and the connection's errors. Every
 * string argument is borrowed for the call. A wait, or a query whose wait
 * and time limit together are longer than the client's timeout, gets that
 * time plus 2 s instead.
 * ------------------------------------------------------------------------- */

FACTUM_API int factum_client_readmodel_create(factum_client *c, const char *definition, size_t len);
/* Rebuild `name` (definition NULL: with its current one). */
FACTUM_API int factum_client_readmodel_rebuild(factum_client *c, const char *name, const char *definition,
                                               size_t len);
FACTUM_API int factum_client_readmodel_pause(factum_client *c, const char *name);
FACTUM_API int factum_client_readmodel_resume(factum_client *c, const char *name);
FACTUM_API int factum_client_readmodel_drop(factum_client *c, const char *name);
/* The status of `name` into *st and (definition not NULL) its definition
 * into *definition (malloc'd JSON; free() it). */
FACTUM_API int factum_client_readmodel_get(factum_client *c, const char *name, factum_readmodel_status *st,
                                           char **definition);
/* cb once per read model, by name (st valid during the call); cb returns 0
 * to go on, anything else to stop (returned). */
FACTUM_API int factum_client_readmodel_list(factum_client *c,
                                            int (*cb)(void *ctx, const factum_readmodel_status *st), void *ctx);
/* Wait until `name` has applied `position`, at most timeout_ms (0: the
 * server's default, 5000). *reached (may be NULL): where it stands then. */
FACTUM_API int factum_client_readmodel_wait(factum_client *c, const char *name, uint64_t position,
                                            int timeout_ms, uint64_t *reached);
/* A read-only query (factum_readmodel_query's): *out receives the JSON
 * answer (malloc'd; free() it). o may be NULL (the defaults). */
/* The same on the tables as they were at a time (as_of_time: RFC 3339) or,
 * with as_of_time NULL, at global position as_of_position: the server's
 * factum_readmodel_query_asof, a replay of the log up to then (the call
 * may take long: its deadline is stretched by five minutes).
 * o->min_position is ignored. Errors: as factum_client_readmodel_query,
 * FACTUM_EFAULTED (an event's statement failed before that point). */
FACTUM_API int factum_client_readmodel_query_asof(factum_client *c, const char *name, const char *as_of_time,
                                                  uint64_t as_of_position, const char *sql, const char *params_json,
                                                  const factum_query_options *o, char **out);
FACTUM_API int factum_client_readmodel_query(factum_client *c, const char *name, const char *sql,
                                             const char *params_json, const factum_query_options *o, char **out);
/* Parked events (limit 0: 100), as a query's JSON answer into *out. */
FACTUM_API int factum_client_readmodel_parked(factum_client *c, const char *name, uint32_t limit, char **out);

#ifdef __cplusplus
}
#endif
#endif /* FACTUM_CLIENT_H */
