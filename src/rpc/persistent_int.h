/*
 * persistent_int.h - what the consumer group files share: the group
 * engine's types and calls (persistent_group.c), the settings and their
 * persistence (persistent_config.c), the statistics (persistent_stats.c),
 * used by the service's handlers (persistent.c). Each uses only those
 * named before it: config uses the group engine; stats the engine and
 * config; persistent.c all three.
 *
 * Design note (invariants; tests cite them as PS-n):
 *  PS-1  A group reads its source in order into a bounded lane (at most
 *        history_buffer_size + live_buffer_size messages in memory). A
 *        message is done once acked, skipped, or durably parked; the lane
 *        pops done messages from its front only, so the group's checkpoint
 *        (the last popped position) never passes an unfinished message.
 *  PS-2  Checkpoints are appended to $persistentsubscription-<src>::<group>-checkpoint
 *        after checkpoint_after ms with at least min_checkpoint_count new
 *        done messages, or at once after max_checkpoint_count (also when
 *        that is below min_checkpoint_count, as in KurrentDB). A restart
 *        resumes after the last durable checkpoint: what is redelivered is
 *        at most what was done but not yet checkpointed, or in flight.
 *  PS-3  A message in flight has one owner and a deadline; on timeout, a
 *        nack retry or the owner leaving it is queued again with its retry
 *        count + 1 (not for a leaving owner), and parked once the count
 *        reaches max_retry_count. Retries go before new messages.
 *  PS-4  Parking appends a link ("$>", "<version>@<stream>") to the parked
 *        stream and marks the message done only when that append committed.
 *        Replay reads the parked stream into a second lane; its front moves
 *        the parked stream's $tb, so a replayed message leaves the parked
 *        stream only once it is done again.
 *  PS-5  Group definitions are persisted as one snapshot in
 *        $persistentSubscriptionConfig ($PersistentConfig events) before a
 *        Create/Update/Delete is answered; factumd loads them at start.
 *  PS-6  Asynchronous completions find their group by id: a group deleted
 *        or rebuilt meanwhile is simply not found.
 */
#ifndef FACTUM_RPC_PERSISTENT_INT_H
#define FACTUM_RPC_PERSISTENT_INT_H

#include "auth/acl.h"
#include "base/base.h"
#include "kurrentdb/persistent.pb-c.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"

typedef EventStore__Client__PersistentSubscriptions__CreateReq CreateReq;
typedef EventStore__Client__PersistentSubscriptions__CreateReq__Settings CreateSettings;
typedef EventStore__Client__PersistentSubscriptions__SubscriptionInfo SubInfo;
typedef EventStore__Client__PersistentSubscriptions__SubscriptionInfo__ConnectionInfo ConnInfo;

#define MAX_GROUP_NAME 256

enum { ST_START = 0, ST_END = 1, ST_AT = 2 };
enum { STRAT_ROUND_ROBIN, STRAT_DISPATCH_TO_SINGLE, STRAT_PINNED, STRAT_PINNED_BY_CORRELATION };
/* Their names, as KurrentDB spells them (persistent_config.c). */
extern const char *const rpc_ps_strategy_names[4];

typedef struct ps_settings {
    int resolve_links, extra_statistics;
    int start; /* ST_* */
    uint64_t start_at; /* ST_AT: first revision / position (inclusive) */
    int32_t message_timeout_ms, max_retry_count, checkpoint_after_ms;
    int32_t min_checkpoint_count, max_checkpoint_count, max_subscriber_count;
    int32_t live_buffer_size, read_batch_size, history_buffer_size;
    int strategy;
    /* $all filter */
    int has_filter;
    int filter_on; /* FACTUM_FILTER_STREAM or FACTUM_FILTER_EVENT_TYPE */
    char *filter_regex;
    char **filter_prefixes;
    size_t n_filter_prefixes;
} ps_settings;

enum { M_FREE = 0, M_QUEUED, M_INFLIGHT, M_PARKING, M_DONE };

struct ps_consumer;
typedef struct ps_msg {
    factum_event ev, link;
    int has_link, unresolved;
    uint64_t pos;    /* main lane: checkpoint value; parked lane: version in the parked stream */
    uint8_t key[16]; /* the id the client acks: the link's if any, else the event's */
    uint64_t pin;    /* Pinned strategies: the hash that picks its consumer */
    int retry;
    int state;
    int lane;        /* 0 main, 1 parked */
    struct ps_consumer *owner;
    uint64_t deadline;
    struct ps_msg *qnext; /* in a dispatch queue */
    struct ps_msg *hnext; /* in the group's in-flight table */
    int in_hash;
    uint64_t sent_ns;     /* when it was last sent */
    uint64_t epoch;       /* the store's epoch when ev and link were read (RPC-8) */
    uint8_t *plain[2];    /* crypto-shredding: ev's and link's opened bytes, owned (rpc_event_own) */
} ps_msg;

typedef struct ps_lane {
    ps_msg *ring;
    size_t cap, head, n;
    uint64_t done_pos; /* last position popped (done and contiguous) */
    int have_done;
    uint64_t done_since; /* popped since the last persisted mark */
} ps_lane;

typedef struct ps_queue {
    ps_msg *head, *tail;
    size_t n;
} ps_queue;

typedef struct ps_consumer {
    struct ps_group *g;
    net_call *c;
    int uuid_string;
    int raw; /* events as stored (rpc_wants_raw) */
    int32_t buffer_size;
    int32_t inflight;
    int blocked; /* its queue is full: wait for on_writable */
    uint64_t total;
    uint64_t acked, ack_ns_sum, ack_ns_max; /* extra statistics */
    char name[128], from[64], id[37], user[64]; /* user: who it reads as (its login) */
    int authz;        /* not the system principal: checked again when the ACL moves (RPC-6) */
    auth_stamp stamp; /* the versions of the metadata it was allowed under */
    const struct auth_principal *as; /* who it was allowed as (borrowed from the call; PRINCIPAL-1) */
    struct ps_consumer *next;
} ps_consumer;

typedef struct ps_group {
    uint64_t id;
    rpc_ctx *ctx;
    char *stream; /* NULL: $all */
    char *name;
    ps_settings set;
    factum_filter *filter;
    factum_sub *cur; /* the main lane's source */
    int cur_error;
    ps_lane lane[2];
    ps_queue retry_q, new_q;
    ps_msg **inflight; /* messages in flight by the id the client acks: a chained table */
    size_t inflight_mask;
    ps_consumer *consumers;
    size_t n_consumers;
    size_t rr;
    /* checkpoints (PS-2) */
    uint64_t last_ckpt; /* persisted (or loaded) */
    int have_ckpt;
    int ckpt_writing;
    int ckpt_meta; /* the checkpoint stream's $maxCount 1 was written since the group was loaded */
    uint64_t ckpt_time; /* mono ns of the last checkpoint write */
    uint64_t last_known; /* last position read */
    int have_known;
    /* the parked stream (PS-4) */
    uint64_t parked_first, parked_next; /* versions: [first, next) are parked */
    uint64_t replay_next, replay_end;   /* being read into lane 1 */
    int tb_writing;
    uint64_t tb_written;
    /* statistics */
    uint64_t total_items, items_at_measure;
    int32_t avg_per_second;
    uint64_t measure_time;
    int dying; /* being freed: no more pumping */
    int pump_posted; /* a continuation of a pump that used its scan budget is posted (RPC-2) */
    struct rpc_upjob *upj; /* messages upcast off the loop (src/rpc/upjob.c), or NULL */
    struct parked_job *pj; /* parked messages being read by the reader pool (rdjob.c), or NULL */
    struct main_job *mj;   /* the cursor being polled by the reader pool (rdjob.c), or NULL */
    struct ps_group *next;
} ps_group;

struct ps_reg {
    ps_group *groups;
    uint64_t next_id;
    int closing; /* rpc_ps_close ran: the store is about to close */
    base_buf pack;
};

/* A consumer's Read call (persistent.c); the engine clears k when it drops
 * the consumer. */
typedef struct ps_call {
    rpc_ctx *ctx;
    ps_consumer *k; /* NULL until the options arrived */
    int have_options;
} ps_call;

/* ---- the engine (persistent_group.c) ------------------------------------ */

/* The group's source as KurrentDB names it: its stream, or "$all". */
const char *rpc_ps_src_name(const ps_group *g);
void rpc_ps_settings_free(ps_settings *s);
/* Copy src's filter into dst (whose own filter fields are overwritten). */
void rpc_ps_settings_copy_filter(ps_settings *dst, const ps_settings *src);

/* A completion of rpc_ps_append, on the loop; group_id as given (PS-6). */
typedef void (*ps_done_fn)(rpc_ctx *ctx, uint64_t group_id, void *arg, int rc, uint64_t version);
/* Append one event (data/meta copied) and call done on the loop. 0 or an
 * error (then done is not called). */
int rpc_ps_append(rpc_ctx *ctx, uint64_t gid, const char *stream, const char *type, const void *data,
                  size_t dl, int json, const char *meta, ps_done_fn done, void *arg);

/* The group by id (NULL once the store is closing: PS-6), or by source and
 * name (stream NULL: $all). */
ps_group *rpc_ps_group_by_id(rpc_ctx *ctx, uint64_t id);
ps_group *rpc_ps_group_find(rpc_ctx *ctx, const char *stream, const char *name);
/* A new group from settings (stream and set taken over) and its durable
 * state; NULL with *err (-ENOMEM, a bad filter, a store error). */
ps_group *rpc_ps_group_new(rpc_ctx *ctx, char *stream, const char *name, ps_settings *set, int *err);
void rpc_ps_group_link(rpc_ctx *ctx, ps_group *g);
void rpc_ps_group_unlink(rpc_ctx *ctx, ps_group *g);
void rpc_ps_group_free(ps_group *g);
/* Rebuild a group from its durable state with new settings (set; NULL: the
 * same ones). Its consumers are dropped; NULL and the old group unchanged
 * if the new one cannot be built. */
ps_group *rpc_ps_group_rebuild(rpc_ctx *ctx, ps_group *old, ps_settings *set, int *err);
/* Read into the lanes and dispatch what the consumers can take. */
void rpc_ps_group_pump(ps_group *g);
/* Detach a consumer and end its call with code (< 0: the call is over). */
void rpc_ps_consumer_drop(ps_consumer *k, int code, const char *msg, const char *exc);
/* Acks (action < 0) or nacks (a Nack.Action) of k for the given ids. */
void rpc_ps_ack(ps_group *g, ps_consumer *k, EventStore__Client__UUID **ids, size_t n, int action,
                const char *reason);
/* Move the parked stream's $tb to parked_first (force: now). */
void rpc_ps_tb_sync(ps_group *g, int force);

/* ---- settings and their persistence (persistent_config.c) --------------- */

/* Settings from a CreateReq (UpdateReq is parsed with the same descriptor:
 * its layout is a subset). 0, or -1 and the call is failed. */
int rpc_ps_settings_from(net_call *c, const CreateReq *req, int is_update, ps_settings *s, char **stream_out,
                         int *is_all_out);
/* Write the snapshot of every group (PS-5); answer c (if not NULL) when it
 * is durable. */
void rpc_ps_config_save(rpc_ctx *ctx, net_call *c);

/* The same, calling fn(arg, rc) on the loop when it is durable or failed.
 * 0, or an error now (fn is not called). */
int rpc_ps_config_save_fn(rpc_ctx *ctx, rpc_ps_saved_fn fn, void *arg);
/* Settings from the HTTP API's JSON body (KurrentDB's names): over base (an
 * update: the group's settings) or the defaults (base NULL). 0, or -1 and
 * why says what is wrong (s then holds nothing to free). */
int rpc_ps_settings_from_json(const char *body, size_t len, int is_all, const ps_settings *base, ps_settings *s,
                              char *why, size_t cap);

/* ,"key":[...] of s's filter prefixes appended to b. 0 or -ENOMEM. */
int rpc_ps_prefixes_json(base_buf *b, const char *key, const ps_settings *s);

/* ---- statistics (persistent_stats.c) ------------------------------------ */

/* The strings and arrays a SubscriptionInfo points into. */
typedef struct info_store {
    char start_from[64], last_ckpt[64], last_known[64];
    ConnInfo *conns;
    ConnInfo **connp;
    EventStore__Client__PersistentSubscriptions__SubscriptionInfo__Measurement *meas;
    EventStore__Client__PersistentSubscriptions__SubscriptionInfo__Measurement **measp;
} info_store;

/* SubscriptionInfo of g into *si (its strings and arrays in *is; free with
 * rpc_ps_info_free even on an error). 0 or -ENOMEM. */
int rpc_ps_info_fill(const ps_group *g, SubInfo *si, info_store *is);
void rpc_ps_info_free(info_store *is);

#endif
