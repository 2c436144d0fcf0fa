/*
 * rpc.h - the KurrentDB-compatible gRPC services on top of the store:
 * protobuf-c messages in, store calls, protobuf-c messages and KurrentDB's
 * error trailers out. Every handler runs on the network loop thread; store
 * work that can wait for the disk (appends, deletes) is started
 * asynchronously and completed through net_post, so the loop never blocks
 * on fsync (RPC-1). Reads are served in bounded steps that yield to the
 * loop between steps and stop while the client is not reading (RPC-2).
 *
 *  RPC-5  The loop never waits for the store's queue: a store operation
 *         that finds it full (-EAGAIN) pauses its call's input and waits
 *         in line; completions and the tick start waiting operations again
 *         in the order they came. A call whose client stops reading its
 *         answers stops being read (BatchAppend), so nothing a client asks
 *         for piles up without bound.
 *
 * The files, in layers: a file calls only files on lower lines, so none
 * calls back into one that calls it (docs/architecture.md shows how to
 * check this with nm).
 *
 *   misc.c               ServerFeatures, Gossip, Monitoring, Operations; all method tables
 *   live.c               the commit listener and its wake-up (RPC-4): subscriptions, then
 *                        groups; the lag of both
 *   streams.c            Streams: Read, Append, Delete, Tombstone; its method table
 *   batch.c, v2.c        Streams.BatchAppend (streams_int.h); the v2 AppendSession
 *   subscribe.c          Streams.Read as a subscription (subscribe.h)
 *   projections.c        the Projections service, on the projection manager (rpc_ctx.projections);
 *                        State/Result as of a time replayed on its workers (rpc_ctx.proj_asof)
 *   users.c              the Users service, on src/auth/users.h (rpc_ctx.users)
 *   rm_service.c         factum.readmodels.ReadModels, on readmodels.c
 *   readmodels.c         the read models' workers, waits, authorization, errors
 *                        (readmodels.h: RMS-1..4; also used by src/server/http_rm.c)
 *   jsonvalue.c          a projection's state as google.protobuf.Value (jsonvalue.h: JV-1..3)
 *   persistent.c         the PersistentSubscriptions service: Read and management calls
 *   persistent_stats.c   GetInfo/List's SubscriptionInfo, rpc_ps_each
 *   persistent_config.c  a group's settings, their snapshot (PS-5), loading at start
 *   audit.c              the audit trail of administrative actions (`$audit`)
 *   persistent_group.c   the consumer group engine (persistent_int.h: PS-1..6)
 *   events.c             events in and out of messages, links, filters (events.h)
 *   authz.c              authorization: stream ACLs and operation rules (src/auth), their errors
 *   common.c             sending, errors and their trailers, UUIDs (this header)
 *
 * persistent.h is what the consumer groups offer the files above them and
 * the server (init, tick, close, free, on_commit, each).
 */
#ifndef FACTUM_RPC_H
#define FACTUM_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "factum.h"
#include "net/net.h"

/* The server version advertised to clients (full X.Y.Z: clients parse it
 * with semver). It names the KurrentDB protocol level factumd implements. */
#define RPC_SERVER_VERSION "25.1.0"

typedef struct rpc_stats {
    uint64_t appends, append_events, append_bytes, append_errors;
    uint64_t reads, read_events, read_bytes;
    uint64_t deletes, tombstones;
    uint64_t calls_unimplemented;
    uint64_t upcast_failures; /* reads ended by an upcaster that failed (events.c) */
    uint64_t subs_active, subs_total, sub_events, sub_caught_up, sub_fell_behind, sub_checkpoints;
    /* The shared tail (tail.c): events read into it, messages packed, messages
     * sent from it (of sub_events), packed bytes it holds now. */
    uint64_t sub_tail_read, sub_tail_packed, sub_tail_copies, sub_tail_bytes;
    uint64_t reads_off_loop; /* store reads handed to the reader pool (rdjob.c) */
    uint64_t refreshed_events; /* events held across a scavenge's swap and read again (RPC-8) */
} rpc_stats;

struct rpc_sub;
struct pb_alloc;
struct rpc_submit;
struct auth_users;
struct ps_reg;
struct factum_readmodels;
struct auth_pool;
struct rm_wait;
struct rm_sched;
struct proj_asof;

typedef struct rpc_ctx {
    factum_store *store;
    /* The projection manager (NULL with --run-projections None): what the
     * Projections service answers from. Its commands take a callback, so
     * that the loop never waits for them. */
    factum_projections *projections;
    /* The users (src/auth/users.h): what the Users service changes and
     * answers from; NULL: the service is not there. */
    struct auth_users *users;
    /* The read models (NULL with --run-readmodels=false): what the
     * ReadModels service and the /readmodels endpoints answer from, through
     * the workers of rm_pool and the waits of rm_waits (readmodels.h). */
    struct factum_readmodels *readmodels;
    struct auth_pool *rm_pool;
    /* The workers that replay projections for State/Result as of a time,
     * and the replays given to them (projections.c; started at the first
     * such call, stopped by rpc_deinit). */
    struct proj_asof *proj_asof;
    struct rm_sched *rm_sched;
    struct rm_wait *rm_waits;
    net_server *net;
    uint8_t instance_id[16];
    char advertise_host[256]; /* what Gossip tells clients to connect to */
    int advertise_port;
    size_t max_append_size, max_event_size;
    void (*shutdown)(void *arg); /* Operations.Shutdown */
    void *shutdown_arg;
    void (*log_fn)(void *ctx, int level, const char *msg);
    void *log_ctx;
    rpc_stats st;
    uint64_t inflight;                       /* store operations started and not yet answered */
    struct rpc_submit *parked, *parked_tail; /* waiting for room in the store's queue (RPC-5) */
    uint8_t *pack_buf;                       /* reused buffer for packing (loop thread only) */
    factum_upcast_buf *upcast_buf;           /* events upcast for sending now (upjob.c; loop thread only) */
    struct auth_pool *up_pool;               /* threads upcasting with scripts, off the loop (upjob.c) */
    /* The reader pool (rdjob.c): store reads whose pages are not known to
     * be in memory; started at the first such read. */
    struct auth_pool *rd_pool;
    unsigned reader_threads; /* --reader-threads (0: 2) */
    int cold_reads;          /* --cold-reads: RPC_COLD_DETECT, _ALWAYS or _NEVER */
    int rd_stopped;          /* rpc_rdjob_stop ran: jobs' dones only free (the store may be closed) */
    size_t pack_cap;
    /* Subscriptions (subscribe.c): those at the head wait in sub_waiting
     * until a commit listener posts a wake-up to the loop (RPC-4). */
    uint64_t sub_live_lag;
    struct rpc_sub *sub_waiting, *sub_waking;
    struct rpc_sub *sub_waking_tail; /* the last of sub_waking */
    int sub_wake_more;               /* a continuation of the fan-out is deferred (subscribe.c) */
    struct rpc_sub *sub_all; /* every open subscription (for lag reporting) */
    struct rpc_tail *tail;   /* recent events packed once for live $all subscriptions (tail.c) */
    factum_reader *rdr;      /* the loop's, for events copied at once (a consumer group's; reset per use) */
    int sub_listening;
    _Atomic int sub_wake_posted;
    /* The loop's driver of the store (docs/adr/0020; NULL: appends go to
     * the writer thread): the loop leads group commits and gets their
     * completions on itself. Its thread is loop_thread; a commit made there
     * only sets sub_wake_local, and rpc_drive_run pumps the subscriptions
     * right after the completions, without an eventfd. */
    factum_driver *drv;
    pthread_t loop_thread;
    int sub_wake_local;
    /* --commit-mode auto (docs/adr/0024): drv makes its fdatasyncs on the
     * loop (FACTUM_DRIVER_SYNC) and takes only the appends commit_level
     * lets it (RPC_COMMIT_*); the others go to the writer thread.
     * rpc_commit_tick sets the level from the store's fdatasync times;
     * commit_auto_max_ns 0: not auto, drv takes every append. */
    int commit_level;
    uint64_t commit_auto_max_ns;
    uint64_t ca_fsyncs, ca_ns; /* the store's counters where the window began */
    uint64_t commit_changes;   /* times auto changed commit_level */
    struct ps_reg *ps; /* consumer groups (persistent_group.c) */
    /* Authorization (authz.c; NULL until rpc_authz_init: then only the
     * system principal passes). */
    struct auth_authz *authz;
    int allow_anonymous_endpoints;
} rpc_ctx;

/* The lag of every catch-up subscription and consumer group, for /metrics
 * and Monitoring.Stats: kind "subscription" (name: its id) or "group"
 * (name: the group); events committed and not yet delivered (groups: not
 * yet acked), and the age of the oldest of them in seconds. */
typedef void (*rpc_lag_fn)(void *arg, const char *kind, const char *source, const char *name,
                           uint64_t lag_events, double lag_seconds);
void rpc_lag_each(rpc_ctx *ctx, rpc_lag_fn fn, void *arg);

/* One open catch-up subscription as the admin UI lists it (GET
 * /api/subscriptions): its id, source ("$all" or the stream), whether a
 * filter applies, who opened it and from where, when (realtime ns), and its
 * status (live: caught up; the position after the last event sent, events
 * sent, lag in events and seconds). The strings live until fn returns. */
typedef struct rpc_sub_view {
    const char *id, *source, *user, *peer;
    int filtered, resolve_links, live;
    int64_t started_ns;
    uint64_t position, delivered, lag_events;
    double lag_seconds;
} rpc_sub_view;
/* The first max open catch-up subscriptions, newest first (loop thread;
 * each one's status reads the log). */
void rpc_sub_each(rpc_ctx *ctx, size_t max, void (*fn)(void *arg, const rpc_sub_view *v), void *arg);

/* --commit-mode auto's levels: who makes an append's fdatasync. */
enum {
    RPC_COMMIT_WRITER = 0, /* the writer thread, always */
    RPC_COMMIT_LONE = 1,   /* the loop for an append that comes alone (none other in flight) */
    RPC_COMMIT_ALL = 2     /* the loop, always */
};

/* --commit-mode auto's rule: the level after `level` for an average
 * fdatasync of avg_ns: ALL at most a tenth of max_ns, LONE at most max_ns,
 * else WRITER; a level is left downwards only above twice its bound. */
int rpc_commit_next(int level, uint64_t avg_ns, uint64_t max_ns);

/* --commit-mode auto, every tick: rpc_commit_next with the average
 * fdatasync since the last decision (at least 8 of them). Returns 1 when
 * the level changed, with that average in *avg_ns. */
int rpc_commit_tick(rpc_ctx *ctx, uint64_t *avg_ns);

/* Who makes the fdatasyncs now, for /metrics: 0 the writer thread, 1 the
 * loop for appends that come alone, 2 the loop for all of them (auto's
 * levels; --commit-mode loop is 2), 3 the loop through io_uring. */
int rpc_commit_now(const rpc_ctx *ctx);

/* --commit-mode auto from the start (ctx->drv made with FACTUM_DRIVER_SYNC):
 * max_ns is --commit-loop-max-us; the first level is the one a probe of
 * the disk's fdatasync (probe_ns; 0: none) fits, WRITER without one. */
void rpc_commit_start(rpc_ctx *ctx, uint64_t max_ns, uint64_t probe_ns);

/* Register the store's commit listener that wakes subscriptions and
 * consumer groups (once; live.c). Call it before the loop serves calls:
 * subscriptions and groups rely on it. 0 or -ENOMEM. */
int rpc_listen(rpc_ctx *ctx);

/* Pump every live subscription and consumer group now, as a commit does,
 * so that each checks its access again (for auth_users_set_on_change: a
 * user's change is in force after the commit that woke them; PRINCIPAL-1).
 * On the loop; ctx is the rpc_ctx. */
void rpc_live_recheck(void *ctx);

/* Undo what serving set up on the store (the commit listener). Call before
 * the store is closed. */
void rpc_deinit(rpc_ctx *ctx);
/* Stop the projections' replay workers (projections.c): the replays
 * running end at their next batch, those queued are answered UNAVAILABLE.
 * Called by rpc_deinit, once the loop has stopped. */
void rpc_proj_stop(rpc_ctx *ctx);

/* ---- the reader pool (rdjob.c, RDJ-1..4) ------------------------------ */

enum { RPC_COLD_DETECT = 0, RPC_COLD_ALWAYS = 1, RPC_COLD_NEVER = 2 };
struct auth_job;
/* The flag a page read on the loop ORs into its direction: FACTUM_NOWAIT,
 * or 0 with --cold-reads never. */
int rpc_read_nowait(const rpc_ctx *ctx);
/* With --cold-reads always: every page read goes to the pool at once. */
int rpc_read_off_loop(const rpc_ctx *ctx);
/* Run j (embedded in its owner, whose work and done are set) on a reader
 * thread; its done runs on the loop, exactly once (with cancelled set at
 * shutdown). 0, or -EAGAIN (RDJ-3: answer with rpc_rdjob_refused), -ENOMEM.
 * The owner must stay allocated until done ran (RDJ-4). */
int rpc_rdjob_submit(rpc_ctx *ctx, struct auth_job *j);
/* Fail c after rpc_rdjob_submit refused (-EAGAIN: UNAVAILABLE). */
void rpc_rdjob_refused(net_call *c, int rc);
/* Stop the pool (rpc_deinit): running jobs finish, waiting ones are done
 * cancelled. Dones that run after this (net_server_free runs what was
 * posted, after the store closed) must only free: rpc_rdjob_gone says so. */
void rpc_rdjob_stop(rpc_ctx *ctx);
/* In a reader job's done: was it cancelled, or is the server past
 * rpc_rdjob_stop (then touch neither the store nor the call)? */
int rpc_rdjob_gone(const rpc_ctx *ctx, const struct auth_job *j);

/* For net_config.spin_hint: is store work in flight? */
int rpc_spin_hint(void *ctx);

/* The method table, with svc pointing at ctx. The array is owned by the
 * caller (free it after net_server_free). */
int rpc_methods(rpc_ctx *ctx, net_method **out, size_t *n);

/* ---- shared helpers (common.c) --------------------------------------- */

/* The message of RESOURCE_EXHAUSTED when a connection is at its cap (NET-5). */
#define RPC_MEM_MESSAGE "the connection holds more memory than the server allows (--max-connection-memory)"

/* A store operation of a call, started from the loop (RPC-5). start tries
 * the store's asynchronous call (0 queued, -EAGAIN queue full, or an
 * error); fail undoes what the handler set up when the operation will not
 * run (an error, or the call ended while it waited). */
typedef struct rpc_submit {
    struct rpc_submit *next;
    net_call *c; /* NULL: the server's own work (consumer groups' writes), no input to pause */
    int (*start)(struct rpc_submit *s);
    void (*fail)(struct rpc_submit *s, int rc);
} rpc_submit;

/* The store's asynchronous append, through the loop's driver if there is
 * one (completions then on the loop thread), else factum_append_async. */
int rpc_append_async(rpc_ctx *ctx, const factum_append_req *reqs, size_t n, factum_append_cb cb, void *arg);
/* From a store completion: run fn(arg) on the loop, at once when this is
 * the loop thread (a driver's completion), else posted (net_post). 0 or
 * -ENOMEM. */
int rpc_to_loop(rpc_ctx *ctx, void (*fn)(void *arg), void *arg);
/* The loop's hooks for the driver (net_config drive_*; ctx is the rpc_ctx). */
int rpc_drive_ready(void *ctx);
void rpc_drive_run(void *ctx);

/* Start s now or, with the store's queue full or others waiting, when
 * there is room (pausing s->c's input meanwhile). Counted in inflight once
 * queued. */
void rpc_submit_start(rpc_ctx *ctx, rpc_submit *s);
/* Queue s to start when there is room, without trying now (for a caller
 * that must not see fail run before it returns). */
void rpc_submit_wait(rpc_ctx *ctx, rpc_submit *s);
/* A store operation completed (on the loop): uncount it and start waiting
 * ones while there is room. */
void rpc_store_done(rpc_ctx *ctx);
/* Start waiting operations while there is room (from the tick too). */
void rpc_submit_retry(rpc_ctx *ctx);
/* Does an operation of call c wait for room? */
int rpc_submit_waiting(const rpc_ctx *ctx, const net_call *c);

/* Decode a request message of type d with the limits of src/net/pb.h
 * (depth PB-1, decode memory PB-2; pa is the caller's, to free the message
 * with rpc_unpack_free). On failure finishes c (INVALID_ARGUMENT naming
 * `what`, or RESOURCE_EXHAUSTED) and returns NULL. */
void *rpc_unpack(net_call *c, const ProtobufCMessageDescriptor *d, const uint8_t *msg, size_t len,
                 struct pb_alloc *pa, const char *what);
void rpc_unpack_free(void *m, struct pb_alloc *pa);

/* Pack m and send it on c. 0, -EAGAIN (queue full), or -errno. */
int rpc_send(rpc_ctx *ctx, net_call *c, const ProtobufCMessage *m);
/* The loop's packing buffer with room for n bytes (NULL: out of memory),
 * and the send of its first n bytes as one message (as rpc_send; a buffer
 * grown past 1 MiB is given back after a small message). */
uint8_t *rpc_pack_buf(rpc_ctx *ctx, size_t n);
int rpc_send_buf(rpc_ctx *ctx, net_call *c, size_t n);
/* Finish c with a status and KurrentDB's `exception` trailer and extras
 * (pairs of name, value; NULL-terminated). */
void rpc_fail(net_call *c, int code, const char *message, const char *exception, ...);
/* Who the call acts as (src/auth/principal.h): what authentication put in
 * the call (net_call_auth), or the system principal when none did (an
 * insecure server: no authentication, no authorization). Borrowed for the
 * call's life. */
struct auth_principal;
const struct auth_principal *rpc_principal(const net_call *c);

/* ---- authorization (authz.c) ------------------------------------------ */

/* Set up the stream ACL evaluator on ctx->store (after it is set). The two
 * flags are KurrentDB's AllowAnonymousStreamAccess and
 * AllowAnonymousEndpointAccess; default_type its
 * Authorization:DefaultPolicyType (enum auth_policy_type: ACL or stream
 * policies while `$authorization-policy-settings` is empty). 0 or -ENOMEM. */
int rpc_authz_init(rpc_ctx *ctx, int allow_anonymous_streams, int allow_anonymous_endpoints, int default_type);
void rpc_authz_free(rpc_ctx *ctx);
/* May c's principal do `action` (enum auth_action) on `stream` ("" or
 * "$all": the global log; "$$x": x's metadata)? AUTH_OK, AUTH_DENIED or
 * AUTH_UNAUTHENTICATED (src/auth/acl.h). Finishes nothing. */
int rpc_check_stream(rpc_ctx *ctx, const net_call *c, const char *stream, int action);
/* As rpc_check_stream, and on a refusal finishes c with the clients'
 * error (rpc_fail_auth). Returns AUTH_OK (0) when allowed. */
int rpc_authorize_stream(rpc_ctx *ctx, net_call *c, const char *stream, int action);
/* May c's principal run operation op (enum auth_op, src/auth/policy.h)?
 * self: the login the call names (Users), else NULL. On a refusal finishes
 * c. Returns AUTH_OK (0) when allowed. */
int rpc_authorize_op(rpc_ctx *ctx, net_call *c, int op, const char *self);
/* Finish c for a refusal: AUTH_UNAUTHENTICATED -> UNAUTHENTICATED,
 * AUTH_DENIED -> PERMISSION_DENIED with `exception: access-denied`. */
void rpc_fail_auth(net_call *c, int result);
/* Link resolution: may c's principal see the target of a link (its
 * stream's read ACL)? A link whose target it may not read is sent
 * unresolved, as a link whose target is gone. c NULL: yes. */
int rpc_may_read_link_target(rpc_ctx *ctx, const net_call *c, const factum_event *target);

/* RPC-8: events kept across the loop's turns (a page waiting for a slow
 * client, a consumer group's messages, a subscription's items, the shared
 * tail) were read while the store's epoch (factum_store_epoch, taken before
 * the read) had some value; before using them after a change (a scavenge
 * swapped a segment in: their bytes stay readable only for its grace),
 * their holder reads them again by position here. 0 (*ev is the event as
 * stored now), FACTUM_ENOTFOUND (the scavenge removed it: skip it), or a
 * store error. */
int rpc_refresh_event(rpc_ctx *ctx, factum_event *ev);

/* Crypto-shredding (ADR 0027): a holder of events (a read call, a
 * subscription, a consumer group's poll) opens sealed events into a reader
 * of its own, made here on first use when the store seals (NULL
 * otherwise), bound to the calling thread (the loop or a reader-pool
 * thread) until rpc_reader_leave. reset: forget what it opened before (the
 * holder is done with those events). Each reader is bounded by
 * RPC_READER_LIMIT per read (factum_reader_set_limit). */
#define RPC_READER_LIMIT ((size_t)32 << 20)
factum_reader *rpc_reader_enter(rpc_ctx *ctx, factum_reader **r, int reset);
void rpc_reader_leave(factum_reader *prev);
/* What an event read through a holder's reader needs to be kept beyond its
 * next reset: the bytes of its data and metadata when they live in the
 * reader (FACTUM_EVENT_OPENED), else 0. rpc_event_own copies them into
 * *buf (realloc'd; free it with the holder) and points ev at the copy. */
int rpc_event_own(factum_event *ev, uint8_t **buf);
/* When rpc_event_own could not copy: the event as if read without a reader
 * (empty, FACTUM_EVENT_SEALED), never pointing into a reader reset later. */
void rpc_event_seal_again(factum_event *ev);

/* ---- the audit trail (audit.c) ----------------------------------------- */

#define RPC_AUDIT_STREAM "$audit"
/* Record an administrative action done by call c (NULL: by factumd itself)
 * in RPC_AUDIT_STREAM: event type `action` (e.g. "user-created",
 * "stream-deleted", "acl-changed", "shutdown"), JSON data with the action,
 * the principal's login, the client's address, the target and detail_json
 * (a JSON value, or NULL). Asynchronous, in the store's queue (RPC-5); a
 * record that cannot be written is logged. Loop thread only. */
void rpc_audit(rpc_ctx *ctx, net_call *c, const char *action, const char *target, const char *detail_json);
/* The same for an action that is not a gRPC call (an HTTP request, a
 * signal): done by principal p (NULL: factumd itself) from source ("ip:port",
 * or "" / NULL when unknown). Loop thread only. */
void rpc_audit_as(rpc_ctx *ctx, const struct auth_principal *p, const char *source, const char *action,
                  const char *target, const char *detail_json);
/* After a successful write of events to `stream`: record ACL, `$settings`
 * and stream-policy changes (writes to `$$x`, `$settings`,
 * `$authorization-policy-settings`, `$policies`; other streams: nothing). */
void rpc_audit_stream_write(rpc_ctx *ctx, net_call *c, const char *stream, const factum_event_data *evs, size_t n);
/* Finish c with the status and trailers KurrentDB gives a store error on a
 * non-append operation (RPC-3). stream may be NULL. */
void rpc_fail_store(net_call *c, int rc, const char *stream, int64_t expected, int64_t actual);
/* gRPC status for a store error. */
int rpc_status_of(int rc);

/* UUID message <-> 16 bytes. 0 or FACTUM_EBADUUID. */
struct EventStore__Client__UUID;
int rpc_uuid_from(const struct EventStore__Client__UUID *u, uint8_t out[16]);
/* Fill u (and its storage) from 16 bytes, as a string or structured. */
typedef struct rpc_uuid_store {
    char text[37];
    void *structured; /* EventStore__Client__UUID__Structured, owned by the caller's frame */
} rpc_uuid_store;

/* Ticks (100 ns) since the Unix epoch, KurrentDB's `created`. */
static inline int64_t rpc_ticks(int64_t ns)
{
    return ns / 100;
}

#endif
