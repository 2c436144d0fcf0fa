/*
 * persistent.c - event_store.client.persistent_subscriptions: consumer
 * groups on a stream or on $all (filtered), with at-least-once delivery to
 * competing consumers, acks and nacks (park, retry, skip, stop), message
 * timeouts and retry counts, parking of poison events in the group's parked
 * stream and their replay, persisted checkpoints, and the management calls
 * (Create, Update, Delete, GetInfo, List, ReplayParked, TruncateParked,
 * RestartSubsystem). Everything runs on the loop thread; the store is read
 * with non-blocking cursors and written with asynchronous appends.
 *
 * Design note (invariants; tests cite them as PS-n):
 *  PS-1  A group reads its source in order into a bounded lane (at most
 *        history_buffer_size + live_buffer_size messages in memory). A
 *        message is done once acked, skipped, or durably parked; the lane
 *        pops done messages from its front only, so the group's checkpoint
 *        (the last popped position) never passes an unfinished message.
 *  PS-2  Checkpoints are appended to $persistentsubscription-<src>::<group>-checkpoint
 *        after checkpoint_after ms with at least min_checkpoint_count new
 *        done messages, or at once after max_checkpoint_count. A restart
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
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "kurrentdb/persistent.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "net/grpc.h"
#include "rpc/persistent.h"
#include "rpc/streams_int.h"

#define PFX "EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__"
typedef EventStore__Client__PersistentSubscriptions__CreateReq CreateReq;
typedef EventStore__Client__PersistentSubscriptions__CreateReq__Settings CreateSettings;
typedef EventStore__Client__PersistentSubscriptions__ReadReq PReadReq;
typedef EventStore__Client__PersistentSubscriptions__SubscriptionInfo SubInfo;
typedef EventStore__Client__PersistentSubscriptions__SubscriptionInfo__ConnectionInfo ConnInfo;

#define CONFIG_STREAM "$persistentSubscriptionConfig"
#define MAX_GROUP_NAME 256
#define POLL_ITEMS 66

enum { ST_START = 0, ST_END = 1, ST_AT = 2 };
enum { STRAT_ROUND_ROBIN, STRAT_DISPATCH_TO_SINGLE, STRAT_PINNED, STRAT_PINNED_BY_CORRELATION };
static const char *const strategy_names[] = {"RoundRobin", "DispatchToSingle", "Pinned", "PinnedByCorrelation"};

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
    int32_t buffer_size;
    int32_t inflight;
    int blocked; /* its queue is full: wait for on_writable */
    uint64_t total;
    uint64_t acked, ack_ns_sum, ack_ns_max; /* extra statistics */
    char name[128], from[64], id[37];
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
    struct ps_group *next;
} ps_group;

struct ps_reg {
    ps_group *groups;
    uint64_t next_id;
    int closing; /* rpc_ps_close ran: the store is about to close */
    base_buf pack;
};

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- names --------------------------------------------------------------- */

static const char *src_name(const ps_group *g)
{
    return g->stream ? g->stream : "$all";
}

static char *sys_stream(const ps_group *g, const char *suffix)
{
    size_t n = strlen("$persistentsubscription-") + strlen(src_name(g)) + 2 + strlen(g->name) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "$persistentsubscription-%s::%s%s", src_name(g), g->name, suffix);
    return p;
}

static void fail_missing(net_call *c, const char *stream, const char *group)
{
    rpc_fail(c, GRPC_NOT_FOUND, "Subscription group does not exist.", "persistent-subscription-does-not-exist",
             "stream-name", stream, "group-name", group, NULL);
}

/* ---- settings ------------------------------------------------------------ */

static void settings_free(ps_settings *s)
{
    free(s->filter_regex);
    for (size_t i = 0; i < s->n_filter_prefixes; i++)
        free(s->filter_prefixes[i]);
    free(s->filter_prefixes);
    memset(s, 0, sizeof *s);
}

static void settings_defaults(ps_settings *s)
{
    memset(s, 0, sizeof *s);
    s->start = ST_END;
    s->message_timeout_ms = 30000;
    s->max_retry_count = 10;
    s->checkpoint_after_ms = 2000;
    s->min_checkpoint_count = 10;
    s->max_checkpoint_count = 1000;
    s->live_buffer_size = 500;
    s->read_batch_size = 20;
    s->history_buffer_size = 500;
    s->strategy = STRAT_ROUND_ROBIN;
}

/* Copy src's filter into dst (whose own filter fields are overwritten). */
static void settings_copy_filter(ps_settings *dst, const ps_settings *src)
{
    dst->has_filter = src->has_filter;
    dst->filter_on = src->filter_on;
    dst->filter_regex = src->filter_regex ? strdup(src->filter_regex) : NULL;
    dst->filter_prefixes = NULL;
    dst->n_filter_prefixes = 0;
    if (src->n_filter_prefixes && (dst->filter_prefixes = calloc(src->n_filter_prefixes, sizeof(char *)))) {
        dst->n_filter_prefixes = src->n_filter_prefixes;
        for (size_t i = 0; i < src->n_filter_prefixes; i++)
            dst->filter_prefixes[i] = strdup(src->filter_prefixes[i]);
    }
}

static int strategy_of(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, strategy_names[i])) return i;
    return -1;
}

/* Settings from a CreateReq (UpdateReq is parsed with the same descriptor:
 * its layout is a subset). Returns 0 or fails the call. */
static int settings_from(net_call *c, const CreateReq *req, int is_update, ps_settings *s, char **stream_out,
                         int *is_all_out)
{
    settings_defaults(s);
    const EventStore__Client__PersistentSubscriptions__CreateReq__Options *o = req->options;
    if (!o || !o->group_name || !o->group_name[0] || strlen(o->group_name) > MAX_GROUP_NAME) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "a group name is required", NULL, NULL);
        return -1;
    }
    const CreateSettings *st = o->settings;
    const EventStore__Client__StreamIdentifier *sid = NULL;
    *is_all_out = 0;
    if (o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__OPTIONS__STREAM_OPTION_STREAM &&
        o->stream) {
        sid = o->stream->stream_identifier;
        switch (o->stream->revision_option_case) {
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__REVISION_OPTION_REVISION:
            s->start = ST_AT;
            s->start_at = o->stream->revision;
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__REVISION_OPTION_START:
            s->start = ST_START;
            break;
        default: s->start = ST_END;
        }
    } else if (o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__OPTIONS__STREAM_OPTION_ALL &&
               o->all) {
        *is_all_out = 1;
        switch (o->all->all_option_case) {
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__ALL_OPTION_POSITION:
            s->start = ST_AT;
            s->start_at = o->all->position ? o->all->position->commit_position : 0;
            if (s->start_at == 0) s->start = ST_START;
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__ALL_OPTION_START:
            s->start = ST_START;
            break;
        default: s->start = ST_END;
        }
        if (o->all->filter_option_case ==
                EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTION_FILTER &&
            o->all->filter) {
            const EventStore__Client__PersistentSubscriptions__CreateReq__AllOptions__FilterOptions *f = o->all->filter;
            const EventStore__Client__PersistentSubscriptions__CreateReq__AllOptions__FilterOptions__Expression *e = NULL;
            if (f->filter_case ==
                EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER) {
                s->filter_on = FACTUM_FILTER_STREAM;
                e = f->stream_identifier;
            } else if (f->filter_case ==
                       EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__FILTER_EVENT_TYPE) {
                s->filter_on = FACTUM_FILTER_EVENT_TYPE;
                e = f->event_type;
            }
            if (!e || (!(e->regex && e->regex[0]) && !e->n_prefix)) {
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid filter", NULL, NULL);
                return -1;
            }
            s->has_filter = 1;
            if (e->regex && e->regex[0]) {
                s->filter_regex = strdup(e->regex);
            } else {
                s->filter_prefixes = calloc(e->n_prefix, sizeof *s->filter_prefixes);
                if (s->filter_prefixes) {
                    s->n_filter_prefixes = e->n_prefix;
                    for (size_t i = 0; i < e->n_prefix; i++)
                        s->filter_prefixes[i] = strdup(e->prefix[i] ? e->prefix[i] : "");
                }
            }
        }
    } else {
        /* The old shape (the Node clients use it for streams): the stream
         * in Options, the start revision in Settings (u64 max: the end). */
        sid = o->stream_identifier;
        if (st) {
            if (st->revision == UINT64_MAX) s->start = ST_END;
            else if (st->revision == 0) s->start = ST_START;
            else {
                s->start = ST_AT;
                s->start_at = st->revision;
            }
        }
    }
    if (!*is_all_out) {
        if (!sid || factum_check_stream_name((const char *)sid->stream_name.data, sid->stream_name.len)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
            return -1;
        }
        *stream_out = strndup((const char *)sid->stream_name.data, sid->stream_name.len);
    } else {
        *stream_out = NULL;
    }
    if (st) {
        s->resolve_links = st->resolve_links;
        s->extra_statistics = st->extra_statistics;
        if (st->message_timeout_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__MESSAGE_TIMEOUT_MESSAGE_TIMEOUT_MS)
            s->message_timeout_ms = st->message_timeout_ms;
        else if (st->message_timeout_case ==
                 EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__MESSAGE_TIMEOUT_MESSAGE_TIMEOUT_TICKS)
            s->message_timeout_ms = (int32_t)(st->message_timeout_ticks / 10000);
        if (st->checkpoint_after_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__CHECKPOINT_AFTER_CHECKPOINT_AFTER_MS)
            s->checkpoint_after_ms = st->checkpoint_after_ms;
        else if (st->checkpoint_after_case ==
                 EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__CHECKPOINT_AFTER_CHECKPOINT_AFTER_TICKS)
            s->checkpoint_after_ms = (int32_t)(st->checkpoint_after_ticks / 10000);
        s->max_retry_count = st->max_retry_count;
        s->min_checkpoint_count = st->min_checkpoint_count;
        s->max_checkpoint_count = st->max_checkpoint_count;
        s->max_subscriber_count = st->max_subscriber_count;
        s->live_buffer_size = st->live_buffer_size;
        s->read_batch_size = st->read_batch_size;
        s->history_buffer_size = st->history_buffer_size;
        switch (st->named_consumer_strategy) {
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__CONSUMER_STRATEGY__DispatchToSingle:
            s->strategy = STRAT_DISPATCH_TO_SINGLE;
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__CONSUMER_STRATEGY__Pinned:
            s->strategy = STRAT_PINNED;
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__CONSUMER_STRATEGY__RoundRobin:
            s->strategy = STRAT_ROUND_ROBIN;
            break;
        default: s->strategy = -1;
        }
        if (st->consumer_strategy && st->consumer_strategy[0] && !is_update) {
            int k = strategy_of(st->consumer_strategy);
            if (k < 0) {
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "unknown consumer strategy", NULL, NULL);
                goto bad;
            }
            s->strategy = k;
        }
    }
    if (s->strategy < 0 || s->strategy > 3 || s->message_timeout_ms < 0 || s->max_retry_count < 0 ||
        s->checkpoint_after_ms < 0 || s->min_checkpoint_count < 0 || s->max_checkpoint_count < s->min_checkpoint_count ||
        s->max_subscriber_count < 0 || s->live_buffer_size <= 0 || s->read_batch_size <= 0 ||
        s->history_buffer_size <= 0 || s->live_buffer_size > 1000000 || s->history_buffer_size > 1000000) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid persistent subscription settings", NULL, NULL);
        goto bad;
    }
    return 0;
bad:
    free(*stream_out);
    *stream_out = NULL;
    settings_free(s);
    return -1;
}

/* ---- asynchronous writes (PS-6) ------------------------------------------ */

typedef void (*ps_done_fn)(rpc_ctx *ctx, uint64_t group_id, void *arg, int rc, uint64_t version);

typedef struct ps_write {
    rpc_ctx *ctx;
    uint64_t group_id;
    void *arg;
    ps_done_fn done;
    int rc;
    uint64_t version;
    char *stream, *type;
    base_buf data, meta;
    factum_event_data ev;
    factum_append_req req;
} ps_write;

static void write_done_loop(void *arg)
{
    ps_write *w = arg;
    w->ctx->inflight--;
    if (w->done) w->done(w->ctx, w->group_id, w->arg, w->rc, w->version);
    free(w->stream);
    free(w->type);
    base_buf_free(&w->data);
    base_buf_free(&w->meta);
    free(w);
}

static void write_cb(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    ps_write *w = ctx;
    w->rc = rc;
    if (!rc && n) w->version = res[0].last_version;
    /* The completion must run on the loop (NET-1). Out of memory, retry for
     * a while; then give it up: the append itself stands, the group finds
     * out on its next read (a checkpoint or park is then written again). */
    for (int i = 0; i < 100; i++) {
        if (net_post(w->ctx->net, write_done_loop, w) == 0) return;
        usleep(1000);
    }
}

/* Append one event (data/meta copied) and call done on the loop. */
static int ps_append(rpc_ctx *ctx, uint64_t gid, const char *stream, const char *type, const void *data, size_t dl,
                     int json, const char *meta, ps_done_fn done, void *arg)
{
    ps_write *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->ctx = ctx;
    w->group_id = gid;
    w->done = done;
    w->arg = arg;
    w->stream = strdup(stream);
    w->type = strdup(type);
    if (!w->stream || !w->type || base_buf_append(&w->data, data, dl) ||
        (meta && base_buf_append(&w->meta, meta, strlen(meta)))) {
        free(w->stream);
        free(w->type);
        base_buf_free(&w->data);
        base_buf_free(&w->meta);
        free(w);
        return -ENOMEM;
    }
    w->ev.type = w->type;
    w->ev.flags = json ? FACTUM_EVENT_JSON | (meta ? FACTUM_EVENT_META_JSON : 0) : 0;
    w->ev.data = w->data.data;
    w->ev.data_len = w->data.len;
    w->ev.metadata = meta ? w->meta.data : NULL;
    w->ev.metadata_len = meta ? w->meta.len : 0;
    w->req.stream = w->stream;
    w->req.expected = FACTUM_ANY;
    w->req.events = &w->ev;
    w->req.n_events = 1;
    ctx->inflight++;
    int rc = factum_append_async(ctx->store, &w->req, 1, write_cb, w);
    if (rc) {
        ctx->inflight--;
        free(w->stream);
        free(w->type);
        base_buf_free(&w->data);
        base_buf_free(&w->meta);
        free(w);
    }
    return rc;
}

static ps_group *group_by_id(rpc_ctx *ctx, uint64_t id)
{
    if (ctx->ps && ctx->ps->closing) return NULL; /* the store is closing or closed: touch nothing */
    for (ps_group *g = ctx->ps ? ctx->ps->groups : NULL; g; g = g->next)
        if (g->id == id) return g;
    return NULL;
}

static ps_group *group_find(rpc_ctx *ctx, const char *stream, const char *name)
{
    for (ps_group *g = ctx->ps ? ctx->ps->groups : NULL; g; g = g->next)
        if (!strcmp(g->name, name) && ((!stream && !g->stream) || (stream && g->stream && !strcmp(stream, g->stream))))
            return g;
    return NULL;
}

/* ---- the config snapshot (PS-5) ------------------------------------------ */

static int settings_json(base_buf *b, const ps_group *g)
{
    const ps_settings *s = &g->set;
    int rc = base_buf_append(b, "{\"stream\":", 10);
    if (!rc) rc = g->stream ? json_write_string(b, g->stream, strlen(g->stream)) : base_buf_append(b, "null", 4);
    if (!rc) rc = base_buf_append(b, ",\"group\":", 9);
    if (!rc) rc = json_write_string(b, g->name, strlen(g->name));
    if (!rc)
        rc = base_buf_printf(b,
                             ",\"resolveLinks\":%d,\"extraStatistics\":%d,\"start\":%d,\"startAt\":%" PRIu64
                             ",\"messageTimeoutMs\":%d,\"maxRetryCount\":%d,\"checkpointAfterMs\":%d,"
                             "\"minCheckpointCount\":%d,\"maxCheckpointCount\":%d,\"maxSubscriberCount\":%d,"
                             "\"liveBufferSize\":%d,\"readBatchSize\":%d,\"historyBufferSize\":%d,\"strategy\":%d,"
                             "\"hasFilter\":%d,\"filterOn\":%d",
                             s->resolve_links, s->extra_statistics, s->start, s->start_at, s->message_timeout_ms,
                             s->max_retry_count, s->checkpoint_after_ms, s->min_checkpoint_count,
                             s->max_checkpoint_count, s->max_subscriber_count, s->live_buffer_size,
                             s->read_batch_size, s->history_buffer_size, s->strategy, s->has_filter, s->filter_on);
    if (!rc && s->filter_regex) {
        rc = base_buf_append(b, ",\"filterRegex\":", 15);
        if (!rc) rc = json_write_string(b, s->filter_regex, strlen(s->filter_regex));
    }
    if (!rc && s->n_filter_prefixes) {
        rc = base_buf_append(b, ",\"filterPrefixes\":[", 19);
        for (size_t i = 0; !rc && i < s->n_filter_prefixes; i++) {
            if (i) rc = base_buf_append(b, ",", 1);
            if (!rc) rc = json_write_string(b, s->filter_prefixes[i], strlen(s->filter_prefixes[i]));
        }
        if (!rc) rc = base_buf_append(b, "]", 1);
    }
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc;
}

typedef struct config_waiter {
    net_call *c; /* answered when the snapshot is durable; NULL: none */
} config_waiter;

static void config_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version);

/* Write the snapshot of every group; answer c (OK or the error) when it is
 * durable. Writes are serialised: a change during a write writes again. */
static void config_save(rpc_ctx *ctx, net_call *c)
{
    struct ps_reg *r = ctx->ps;
    base_buf b = {0};
    int rc = base_buf_append(&b, "{\"version\":1,\"groups\":[", 23);
    int first = 1;
    for (ps_group *g = r->groups; g && !rc; g = g->next) {
        if (!first) rc = base_buf_append(&b, ",", 1);
        first = 0;
        if (!rc) rc = settings_json(&b, g);
    }
    if (!rc) rc = base_buf_append(&b, "]}", 2);
    if (c) net_call_ref(c);
    if (!rc) rc = ps_append(ctx, 0, CONFIG_STREAM, "$PersistentConfig", b.data, b.len, 1, NULL, config_written, c);
    base_buf_free(&b);
    if (rc && c) {
        rpc_fail(c, GRPC_INTERNAL, "could not write the persistent subscription configuration", NULL, NULL);
        net_call_unref(c);
    }
}

static void config_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)ctx;
    (void)gid;
    (void)version;
    net_call *c = arg;
    if (!c) return;
    if (!net_call_done(c)) {
        if (rc) {
            rpc_fail_store(c, rc, CONFIG_STREAM, FACTUM_ANY, -1);
        } else {
            /* CreateResp / UpdateResp / DeleteResp are all empty messages. */
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        }
    }
    net_call_unref(c);
}

/* ---- lanes and queues ----------------------------------------------------- */

static void q_push(ps_queue *q, ps_msg *m)
{
    m->qnext = NULL;
    if (q->tail) q->tail->qnext = m;
    else q->head = m;
    q->tail = m;
    q->n++;
}

static void q_push_front(ps_queue *q, ps_msg *m)
{
    m->qnext = q->head;
    q->head = m;
    if (!q->tail) q->tail = m;
    q->n++;
}

static ps_msg *q_pop(ps_queue *q)
{
    ps_msg *m = q->head;
    if (!m) return NULL;
    q->head = m->qnext;
    if (!q->head) q->tail = NULL;
    q->n--;
    m->qnext = NULL;
    return m;
}

static ps_msg *lane_slot(ps_lane *l, size_t i)
{
    return &l->ring[(l->head + i) % l->cap];
}

static ps_msg *lane_push(ps_lane *l)
{
    if (l->n == l->cap) return NULL;
    ps_msg *m = lane_slot(l, l->n++);
    memset(m, 0, sizeof *m);
    return m;
}

/* PS-1: pop the done messages at the front. */
static void lane_advance(ps_lane *l)
{
    while (l->n && l->ring[l->head].state == M_DONE) {
        l->done_pos = l->ring[l->head].pos;
        l->have_done = 1;
        l->done_since++;
        l->ring[l->head].state = M_FREE;
        l->head = (l->head + 1) % l->cap;
        l->n--;
    }
}

static size_t key_slot(const ps_group *g, const uint8_t key[16])
{
    uint64_t h;
    memcpy(&h, key, 8);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32)) & g->inflight_mask;
}

static void hash_add(ps_group *g, ps_msg *m)
{
    size_t i = key_slot(g, m->key);
    m->hnext = g->inflight[i];
    g->inflight[i] = m;
    m->in_hash = 1;
}

static void hash_del(ps_group *g, ps_msg *m)
{
    if (!m->in_hash) return;
    for (ps_msg **p = &g->inflight[key_slot(g, m->key)]; *p; p = &(*p)->hnext)
        if (*p == m) {
            *p = m->hnext;
            break;
        }
    m->hnext = NULL;
    m->in_hash = 0;
}

static void group_pump(ps_group *g);
static void consumer_drop(struct ps_consumer *k, int code, const char *msg, const char *exc);
static void maybe_checkpoint(ps_group *g, int timer);
static void maybe_truncate_parked(ps_group *g);

static void msg_done(ps_group *g, ps_msg *m)
{
    hash_del(g, m);
    m->state = M_DONE;
    m->owner = NULL;
    lane_advance(&g->lane[m->lane]);
    if (m->lane == 0) maybe_checkpoint(g, 0);
    else maybe_truncate_parked(g);
}

/* ---- parking (PS-4) ------------------------------------------------------- */

typedef struct park_arg {
    ps_msg *m;
} park_arg;

static void parked(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    ps_msg *m = arg;
    ps_group *g = group_by_id(ctx, gid);
    if (!g) return; /* PS-6 */
    if (rc) {
        /* Not parked: deliver it again later. */
        m->state = M_QUEUED;
        q_push(&g->retry_q, m);
    } else {
        if (version + 1 > g->parked_next) g->parked_next = version + 1;
        msg_done(g, m);
    }
    group_pump(g);
}

static void park(ps_group *g, ps_msg *m, const char *reason)
{
    hash_del(g, m);
    const factum_event *orig = m->has_link ? &m->link : &m->ev;
    char data[FACTUM_MAX_STREAM_LEN + 32];
    int dl = snprintf(data, sizeof data, "%" PRIu64 "@%.*s", orig->version, (int)orig->stream_len, orig->stream);
    base_buf meta = {0};
    int rc = base_buf_append(&meta, "{\"reason\":", 10);
    if (!rc) rc = json_write_string(&meta, reason, strlen(reason));
    if (!rc) rc = base_buf_printf(&meta, ",\"retryCount\":%d}", m->retry);
    if (!rc) rc = base_buf_append(&meta, "", 1); /* NUL */
    char *ps = sys_stream(g, "-parked");
    m->state = M_PARKING;
    m->owner = NULL;
    if (rc || !ps ||
        ps_append(g->ctx, g->id, ps, FACTUM_LINK_TYPE, data, (size_t)dl, 0, (const char *)meta.data, parked, m)) {
        m->state = M_QUEUED; /* try again with the next retry */
        q_push(&g->retry_q, m);
    }
    free(ps);
    base_buf_free(&meta);
}

/* PS-3: a message comes back (timeout, nack retry, or its owner left). */
static void requeue(ps_group *g, ps_msg *m, int count_retry, const char *why)
{
    hash_del(g, m);
    if (m->owner) {
        m->owner->inflight--;
        m->owner = NULL;
    }
    if (count_retry) {
        if (m->retry >= g->set.max_retry_count) {
            park(g, m, why);
            return;
        }
        m->retry++;
    }
    m->state = M_QUEUED;
    q_push(&g->retry_q, m);
}

/* ---- checkpoints (PS-2) and the parked stream's $tb ----------------------- */

static void ckpt_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)version;
    uint64_t pos = *(uint64_t *)arg;
    free(arg);
    ps_group *g = group_by_id(ctx, gid);
    if (!g) return;
    g->ckpt_writing = 0;
    if (!rc) {
        g->last_ckpt = pos;
        g->have_ckpt = 1;
    }
    maybe_checkpoint(g, 0);
}

static void maybe_checkpoint(ps_group *g, int timer)
{
    ps_lane *l = &g->lane[0];
    if (g->ckpt_writing || !l->have_done || (g->have_ckpt && l->done_pos == g->last_ckpt)) return;
    uint64_t now = mono_now();
    int due = l->done_since >= (uint64_t)g->set.max_checkpoint_count ||
              (timer && now - g->ckpt_time >= (uint64_t)g->set.checkpoint_after_ms * 1000000u &&
               l->done_since >= (uint64_t)g->set.min_checkpoint_count);
    if (!due) return;
    char data[64];
    int dl = g->stream ? snprintf(data, sizeof data, "%" PRIu64, l->done_pos)
                       : snprintf(data, sizeof data, "\"C:%" PRIu64 "/P:%" PRIu64 "\"", l->done_pos, l->done_pos);
    char *cs = sys_stream(g, "-checkpoint");
    uint64_t *pos = malloc(sizeof *pos);
    if (!cs || !pos) {
        free(cs);
        free(pos);
        return;
    }
    *pos = l->done_pos;
    if (ps_append(g->ctx, g->id, cs, "$SubscriptionCheckpoint", data, (size_t)dl, 1, NULL, ckpt_written, pos)) {
        free(pos);
    } else {
        g->ckpt_writing = 1;
        g->ckpt_time = now;
        l->done_since = 0;
    }
    free(cs);
}

static void tb_sync(ps_group *g, int force);

static void tb_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)version;
    uint64_t tb = *(uint64_t *)arg;
    free(arg);
    ps_group *g = group_by_id(ctx, gid);
    if (!g) return;
    g->tb_writing = 0;
    if (!rc && tb > g->tb_written) g->tb_written = tb;
    tb_sync(g, 1); /* what moved meanwhile */
}

/* Move the parked stream's $tb to parked_first (the first parked message
 * not yet finished), one write at a time and never backwards (PS-4). */
static void tb_sync(ps_group *g, int force)
{
    if (g->tb_writing || g->parked_first <= g->tb_written) return;
    if (!force && g->lane[1].n != 0 && g->lane[1].done_since < 100) return; /* batch while replaying */
    g->lane[1].done_since = 0;
    uint64_t tb = g->parked_first;
    char *ps = sys_stream(g, "-parked");
    char *meta = ps ? malloc(strlen(ps) + 3) : NULL;
    uint64_t *arg = malloc(sizeof *arg);
    if (!ps || !meta || !arg) goto out;
    sprintf(meta, "$$%s", ps);
    char data[64];
    int dl = snprintf(data, sizeof data, "{\"$tb\":%" PRIu64 "}", tb);
    *arg = tb;
    if (ps_append(g->ctx, g->id, meta, "$metadata", data, (size_t)dl, 1, NULL, tb_written, arg) == 0) {
        g->tb_writing = 1;
        arg = NULL;
    }
out:
    free(arg);
    free(meta);
    free(ps);
}

static void maybe_truncate_parked(ps_group *g)
{
    ps_lane *l = &g->lane[1];
    if (l->have_done && l->done_pos + 1 > g->parked_first) g->parked_first = l->done_pos + 1;
    tb_sync(g, 0);
}

/* ---- reading into the lanes ------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void fill_msg(ps_group *g, ps_msg *m, const factum_event *ev, const factum_event *link, int unresolved)
{
    m->ev = *ev;
    if (link) {
        m->link = *link;
        m->has_link = 1;
    }
    m->unresolved = unresolved;
    memcpy(m->key, link ? link->id : ev->id, 16);
    m->state = M_QUEUED;
    /* Pinned: by the event's stream; PinnedByCorrelation: by $correlationId
     * of its JSON metadata if it has one. Computed once, not per dispatch. */
    if (g->set.strategy == STRAT_PINNED || g->set.strategy == STRAT_PINNED_BY_CORRELATION) {
        m->pin = hash_bytes(ev->stream, ev->stream_len);
        if (g->set.strategy == STRAT_PINNED_BY_CORRELATION && ev->metadata_len && (ev->flags & FACTUM_EVENT_META_JSON)) {
            json_value *v;
            if (json_parse((const char *)ev->metadata, ev->metadata_len, &v) == 0) {
                const json_value *cid = json_get(v, "$correlationId");
                if (cid && cid->type == JSON_STRING) m->pin = hash_bytes(cid->str, cid->len);
                json_free(v);
            }
        }
    }
}

static void fill_main(ps_group *g)
{
    ps_lane *l = &g->lane[0];
    if (!g->cur || g->cur_error) return;
    factum_sub_item it[POLL_ITEMS];
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t room = l->cap - l->n;
        if (room < 2) return;
        size_t cap = room + 2 < POLL_ITEMS ? room + 2 : POLL_ITEMS;
        if (cap > (size_t)g->set.read_batch_size + 2 && g->n_consumers == 0) cap = (size_t)g->set.read_batch_size + 2;
        if (cap < 4) cap = 4; /* factum_sub_poll's minimum (room >= 2 was checked: at most room events come) */
        size_t n = 0;
        int rc = factum_sub_poll(g->cur, it, cap, &n, 0);
        if (rc) {
            g->cur_error = rc;
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (it[i].kind != FACTUM_SUB_EVENT) continue;
            ps_msg *m = lane_push(l);
            if (!m) return; /* cannot happen: room was checked */
            fill_msg(g, m, &it[i].event, it[i].has_link ? &it[i].link : NULL, it[i].unresolved);
            m->lane = 0;
            m->pos = it[i].position;
            g->last_known = m->pos;
            g->have_known = 1;
            q_push(&g->new_q, m);
        }
        if (!n && !factum_sub_pending(g->cur)) return; /* at the head: the commit listener wakes us */
    }
}

/* Read replayed parked messages into lane 1 (PS-4). */
static void fill_parked(ps_group *g)
{
    ps_lane *l = &g->lane[1];
    if (g->replay_next >= g->replay_end) return;
    char *ps = sys_stream(g, "-parked");
    if (!ps) return;
    factum_event page[64];
    while (g->replay_next < g->replay_end && l->cap - l->n > 0) {
        size_t want = l->cap - l->n < 64 ? l->cap - l->n : 64, n = 0;
        uint64_t nx;
        int rc = factum_read_stream(g->ctx->store, ps, g->replay_next, FACTUM_FORWARD, page, want, &n, &nx);
        if (rc || !n) {
            g->replay_next = g->replay_end;
            break;
        }
        for (size_t i = 0; i < n && g->replay_next < g->replay_end; i++) {
            g->replay_next = page[i].version + 1;
            if (page[i].version >= g->replay_end) {
                g->replay_next = g->replay_end;
                break;
            }
            factum_event orig;
            ps_msg *m = lane_push(l);
            if (!m) break;
            m->lane = 1;
            m->pos = page[i].version;
            if (factum_resolve_link(g->ctx->store, &page[i], &orig)) {
                m->state = M_DONE; /* the parked event is gone: nothing to replay */
                continue;
            }
            factum_event target;
            int linked = g->set.resolve_links && orig.type_len == 2 && !memcmp(orig.type, FACTUM_LINK_TYPE, 2);
            if (linked && factum_resolve_link(g->ctx->store, &orig, &target) == 0)
                fill_msg(g, m, &target, &orig, 0);
            else
                fill_msg(g, m, &orig, NULL, linked);
            q_push(&g->retry_q, m);
        }
        if (nx == FACTUM_END) {
            g->replay_next = g->replay_end;
            break;
        }
    }
    lane_advance(l);
    maybe_truncate_parked(g);
    free(ps);
}

/* ---- dispatch ---------------------------------------------------------------- */

static int available(const ps_consumer *k)
{
    return !k->blocked && k->inflight < k->buffer_size && !net_call_done(k->c);
}

/* The consumer a message goes to, or NULL if none can take it now. */
static ps_consumer *choose(ps_group *g, const ps_msg *m)
{
    if (!g->n_consumers) return NULL;
    if (g->set.strategy == STRAT_PINNED || g->set.strategy == STRAT_PINNED_BY_CORRELATION) {
        size_t want = (size_t)(m->pin % g->n_consumers), i = 0;
        for (ps_consumer *k = g->consumers; k; k = k->next, i++)
            if (i == want) return available(k) ? k : NULL;
        return NULL;
    }
    if (g->set.strategy == STRAT_DISPATCH_TO_SINGLE) {
        for (ps_consumer *k = g->consumers; k; k = k->next)
            if (available(k)) return k;
        return NULL;
    }
    /* RoundRobin: the next available one after the last used. */
    for (size_t t = 0; t < g->n_consumers; t++) {
        size_t want = (g->rr + t) % g->n_consumers, i = 0;
        for (ps_consumer *k = g->consumers; k; k = k->next, i++) {
            if (i != want) continue;
            if (available(k)) {
                g->rr = want + 1;
                return k;
            }
            break;
        }
    }
    return NULL;
}

/* Send m to k: 0, -EAGAIN (k's queue is full), -1 (k is gone). */
static int send_msg(ps_group *g, ps_consumer *k, ps_msg *m)
{
    rpc_ctx *ctx = g->ctx;
    rpc_event_msg em;
    rpc_event_init(&em);
    if (m->has_link) rpc_event_fill_resolved(&em, &m->ev, &m->link, k->uuid_string);
    else if (m->unresolved) rpc_event_fill_resolved(&em, NULL, &m->ev, k->uuid_string);
    else rpc_event_fill(&em, &m->ev, k->uuid_string);
    /* The persistent ReadResp.ReadEvent is the streams one plus
     * retry_count (field 5): pack that, add the field, wrap it as field 1. */
    base_buf *b = &ctx->ps->pack;
    size_t inner = protobuf_c_message_get_packed_size(&em.re.base);
    b->len = 0;
    uint8_t hdr[16];
    size_t extra = 1, v = (size_t)(uint32_t)m->retry;
    do extra++; while (v >>= 7);
    size_t total = inner + extra, hl = 0;
    hdr[hl++] = 0x0a; /* field 1, length-delimited */
    for (size_t t = total; ; t >>= 7) {
        hdr[hl++] = (uint8_t)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
        if (t < 0x80) break;
    }
    if (base_buf_reserve(b, hl + total)) return -1;
    memcpy(b->data, hdr, hl);
    protobuf_c_message_pack(&em.re.base, b->data + hl);
    size_t o = hl + inner;
    b->data[o++] = 0x28; /* field 5, varint */
    for (uint64_t t = (uint32_t)m->retry; ; t >>= 7) {
        b->data[o++] = (uint8_t)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
        if (t < 0x80) break;
    }
    int rc = net_call_send(k->c, b->data, o);
    if (rc == -EAGAIN) return rc;
    return rc ? -1 : 0;
}

static void dispatch(ps_group *g)
{
    uint64_t now = mono_now();
    for (;;) {
        ps_queue *q = g->retry_q.head ? &g->retry_q : &g->new_q;
        ps_msg *m = q->head;
        if (!m) return;
        ps_consumer *k = choose(g, m);
        if (!k) return;
        q_pop(q);
        int rc = send_msg(g, k, m);
        if (rc) {
            q_push_front(q, m);
            if (rc == -EAGAIN) {
                k->blocked = 1;
                net_call_want_writable(k->c);
            } else if (!net_call_done(k->c)) {
                /* The send failed on a live call (out of memory): end it;
                 * its messages go to the others. */
                consumer_drop(k, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
                return;
            } else {
                k->blocked = 1; /* gone: on_close drops it */
            }
            continue; /* choose skips k now */
        }
        m->state = M_INFLIGHT;
        m->owner = k;
        m->sent_ns = now;
        m->deadline = now + (uint64_t)g->set.message_timeout_ms * 1000000u;
        hash_add(g, m);
        k->inflight++;
        k->total++;
        g->total_items++;
    }
}

static void group_pump(ps_group *g)
{
    for (int i = 0; i < 4; i++) {
        fill_parked(g);
        fill_main(g);
        size_t before = g->retry_q.n + g->new_q.n;
        dispatch(g);
        lane_advance(&g->lane[0]);
        lane_advance(&g->lane[1]);
        if (g->retry_q.n + g->new_q.n == before) break; /* nothing more went out */
    }
}

/* ---- groups ------------------------------------------------------------------ */

static void consumer_drop(ps_consumer *k, int code, const char *msg, const char *exc);

static int open_cursor(ps_group *g)
{
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.stream = g->stream;
    so.resolve_links = g->set.resolve_links;
    so.live_lag = UINT64_MAX / 2; /* a group never "falls behind": it reads at its own pace */
    so.filter = g->filter;
    if (g->have_ckpt) {
        so.from = FACTUM_SUB_AFTER;
        so.after = g->last_ckpt;
    } else if (g->set.start == ST_START || (g->set.start == ST_AT && g->set.start_at == 0)) {
        so.from = FACTUM_SUB_START;
    } else if (g->set.start == ST_END) {
        so.from = FACTUM_SUB_END;
    } else {
        so.from = FACTUM_SUB_AFTER; /* the start is inclusive */
        so.after = g->set.start_at - 1;
    }
    return factum_sub_open(g->ctx->store, &so, &g->cur);
}

static void group_free(ps_group *g)
{
    g->dying = 1;
    while (g->consumers)
        consumer_drop(g->consumers, -1, NULL, NULL);
    factum_sub_close(g->cur);
    factum_filter_free(g->filter);
    free(g->lane[0].ring);
    free(g->lane[1].ring);
    free(g->inflight);
    settings_free(&g->set);
    free(g->stream);
    free(g->name);
    free(g);
}

/* Load the group's durable state: its checkpoint and parked range. */
static void group_load_state(ps_group *g)
{
    char *cs = sys_stream(g, "-checkpoint"), *ps = sys_stream(g, "-parked");
    factum_event ev;
    size_t n = 0;
    if (cs && factum_read_stream(g->ctx->store, cs, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL) == 0 && n) {
        char buf[64];
        size_t l = ev.data_len < sizeof buf - 1 ? ev.data_len : sizeof buf - 1;
        memcpy(buf, ev.data, l);
        buf[l] = 0;
        unsigned long long v;
        if (sscanf(buf, "\"C:%llu/P:", &v) == 1 || sscanf(buf, "%llu", &v) == 1) {
            g->last_ckpt = v;
            g->have_ckpt = 1;
        }
    }
    factum_stream_info info;
    if (ps && factum_stream_get_info(g->ctx->store, ps, &info) == 0 && info.last_version >= 0 &&
        info.status == FACTUM_STREAM_LIVE) {
        g->parked_next = (uint64_t)info.last_version + 1;
        n = 0;
        if (factum_read_stream(g->ctx->store, ps, 0, FACTUM_FORWARD, &ev, 1, &n, NULL) == 0 && n)
            g->parked_first = ev.version;
        else
            g->parked_first = g->parked_next;
        g->tb_written = g->parked_first;
    }
    free(cs);
    free(ps);
}

/* A new group object from settings (taken over). Returns NULL on OOM or
 * a bad filter (the settings are then freed). */
static ps_group *group_new(rpc_ctx *ctx, char *stream, const char *name, ps_settings *set, int *err)
{
    ps_group *g = calloc(1, sizeof *g);
    *err = -ENOMEM;
    if (!g) goto fail;
    g->ctx = ctx;
    g->id = ++ctx->ps->next_id;
    g->stream = stream;
    stream = NULL;
    g->set = *set;
    memset(set, 0, sizeof *set);
    if (!(g->name = strdup(name))) goto fail_g;
    if (g->set.has_filter) {
        int rc = factum_filter_new(g->set.filter_on, (const char *const *)g->set.filter_prefixes,
                                   g->set.n_filter_prefixes, g->set.filter_regex, 0, &g->filter);
        if (rc) {
            *err = rc;
            goto fail_g;
        }
    }
    g->lane[0].cap = (size_t)g->set.history_buffer_size + (size_t)g->set.live_buffer_size;
    g->lane[1].cap = (size_t)g->set.history_buffer_size;
    size_t slots = 16;
    while (slots < 2 * (g->lane[0].cap + g->lane[1].cap)) slots <<= 1;
    g->inflight_mask = slots - 1;
    if (!(g->lane[0].ring = calloc(g->lane[0].cap, sizeof(ps_msg))) ||
        !(g->lane[1].ring = calloc(g->lane[1].cap, sizeof(ps_msg))) || !(g->inflight = calloc(slots, sizeof(ps_msg *))))
        goto fail_g;
    g->ckpt_time = g->measure_time = mono_now();
    group_load_state(g);
    int rc = open_cursor(g);
    if (rc && rc != FACTUM_EDELETED) {
        *err = rc;
        goto fail_g;
    }
    if (rc) g->cur_error = rc;
    *err = 0;
    return g;
fail_g:
    group_free(g);
    return NULL;
fail:
    free(stream);
    settings_free(set);
    return NULL;
}

static void group_link(rpc_ctx *ctx, ps_group *g)
{
    g->next = ctx->ps->groups;
    ctx->ps->groups = g;
}

static void group_unlink(rpc_ctx *ctx, ps_group *g)
{
    for (ps_group **p = &ctx->ps->groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            return;
        }
}

/* Rebuild a group from its durable state (Update, RestartSubsystem): its
 * consumers are dropped and reconnect; in-flight work is redelivered. The
 * new group is built first: if that fails, the old one stays as it was and
 * NULL is returned (set, if given, is freed). */
static ps_group *group_rebuild(rpc_ctx *ctx, ps_group *old, ps_settings *set, int *err)
{
    *err = -ENOMEM;
    char *stream = old->stream ? strdup(old->stream) : NULL;
    ps_settings copy;
    if (!set) {
        /* the same settings: copy them (the filter strings too) */
        copy = old->set;
        settings_copy_filter(&copy, &old->set);
        set = &copy;
    }
    if (old->stream && !stream) {
        settings_free(set);
        return NULL;
    }
    ps_group *g = group_new(ctx, stream, old->name, set, err); /* takes stream and set */
    if (!g) return NULL;
    while (old->consumers)
        consumer_drop(old->consumers, GRPC_CANCELLED, "The persistent subscription was restarted.",
                      "persistent-subscription-dropped");
    group_unlink(ctx, old);
    group_free(old);
    group_link(ctx, g);
    return g;
}

/* ---- consumers (Read) --------------------------------------------------------- */

typedef struct ps_call {
    rpc_ctx *ctx;
    ps_consumer *k; /* NULL until the options arrived */
    int have_options;
} ps_call;

static void consumer_unlink(ps_consumer *k)
{
    ps_group *g = k->g;
    for (ps_consumer **p = &g->consumers; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            g->n_consumers--;
            break;
        }
    /* Its messages in flight go to the others (PS-3), oldest first. */
    for (int ln = 0; ln < 2; ln++) {
        ps_lane *l = &g->lane[ln];
        for (size_t i = l->n; i-- > 0;) {
            ps_msg *m = lane_slot(l, i);
            if (m->state == M_INFLIGHT && m->owner == k) {
                hash_del(g, m);
                m->owner = NULL;
                m->state = M_QUEUED;
                q_push_front(&g->retry_q, m);
            }
        }
    }
    k->g = NULL;
}

/* Detach a consumer from its group and end its call (code < 0: the call is
 * already over). */
static void consumer_drop(ps_consumer *k, int code, const char *msg, const char *exc)
{
    ps_group *g = k->g;
    net_call *c = k->c;
    if (g) {
        consumer_unlink(k);
        if (code >= 0 && !net_call_done(c))
            rpc_fail(c, code, msg, exc, "stream-name", src_name(g), "group-name", g->name, NULL);
    }
    ps_call *pc = net_call_state(c);
    if (pc) pc->k = NULL;
    free(k);
    if (g && !g->dying) group_pump(g);
}

static int pread_start(net_call *c, void *svc)
{
    ps_call *pc = calloc(1, sizeof *pc);
    if (!pc) return -ENOMEM;
    pc->ctx = svc;
    net_call_set_state(c, pc);
    return 0;
}

static void ack_ids(ps_group *g, ps_consumer *k, EventStore__Client__UUID **ids, size_t n, int action,
                    const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t id[16];
        if (rpc_uuid_from(ids[i], id)) continue;
        ps_msg *found = NULL;
        for (ps_msg *m = g->inflight[key_slot(g, id)]; m; m = m->hnext) {
            if (memcmp(m->key, id, 16)) continue;
            if (m->owner == k) {
                found = m;
                break;
            }
            if (!found) found = m; /* the same id sent to another: an ack is an ack */
        }
        if (!found) continue; /* already done, or timed out and given to another */
        ps_msg *m = found;
        if (action < 0) { /* ack */
            if (m->owner) {
                m->owner->inflight--;
                if (g->set.extra_statistics) {
                    uint64_t dt = mono_now() - m->sent_ns;
                    m->owner->acked++;
                    m->owner->ack_ns_sum += dt;
                    if (dt > m->owner->ack_ns_max) m->owner->ack_ns_max = dt;
                }
            }
            msg_done(g, m);
            continue;
        }
        switch (action) {
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Park: {
            if (m->owner) m->owner->inflight--;
            char why[600];
            snprintf(why, sizeof why, "Client explicitly NAK'ed message.\n%s", reason ? reason : "");
            park(g, m, why);
            break;
        }
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Skip:
            if (m->owner) m->owner->inflight--;
            msg_done(g, m);
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Stop:
            requeue(g, m, 0, "stopped");
            break;
        default: /* Retry, Unknown */
            requeue(g, m, 1, "Max retry count exceeded.");
        }
    }
}

static void pread_options(ps_call *pc, net_call *c, const EventStore__Client__PersistentSubscriptions__ReadReq__Options *o)
{
    rpc_ctx *ctx = pc->ctx;
    char *stream = NULL;
    if (o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER) {
        const EventStore__Client__StreamIdentifier *sid = o->stream_identifier;
        if (!sid || factum_check_stream_name((const char *)sid->stream_name.data, sid->stream_name.len)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
            return;
        }
        stream = strndup((const char *)sid->stream_name.data, sid->stream_name.len);
        if (!stream) {
            rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            return;
        }
    } else if (o->stream_option_case != EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__STREAM_OPTION_ALL) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "read options name neither a stream nor $all", NULL, NULL);
        return;
    }
    const char *gname = o->group_name ? o->group_name : "";
    ps_group *g = group_find(ctx, stream, gname);
    if (!g) {
        fail_missing(c, stream ? stream : "$all", gname);
        free(stream);
        return;
    }
    free(stream);
    if (g->set.max_subscriber_count > 0 && g->n_consumers >= (size_t)g->set.max_subscriber_count) {
        rpc_fail(c, GRPC_FAILED_PRECONDITION, "Maximum subscriptions reached.", "maximum-subscribers-reached",
                 "stream-name", src_name(g), "group-name", g->name, NULL);
        return;
    }
    if (o->buffer_size <= 0) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "buffer_size must be positive", NULL, NULL);
        return;
    }
    ps_consumer *k = calloc(1, sizeof *k);
    if (!k) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return;
    }
    k->g = g;
    k->c = c;
    k->buffer_size = o->buffer_size;
    k->uuid_string = o->uuid_option &&
                     o->uuid_option->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    const char *cn = net_call_header(c, "connection-name");
    snprintf(k->name, sizeof k->name, "%s", cn ? cn : "");
    snprintf(k->from, sizeof k->from, "%s", "127.0.0.1");
    uint8_t u[16];
    factum_uuid_v4(u);
    factum_uuid_format(u, k->id);
    /* Appended at the end: DispatchToSingle prefers the first connected. */
    ps_consumer **p = &g->consumers;
    while (*p) p = &(*p)->next;
    *p = k;
    g->n_consumers++;
    pc->k = k;
    EventStore__Client__PersistentSubscriptions__ReadResp resp = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_RESP__INIT;
    EventStore__Client__PersistentSubscriptions__ReadResp__SubscriptionConfirmation conf =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_RESP__SUBSCRIPTION_CONFIRMATION__INIT;
    char sid[MAX_GROUP_NAME + FACTUM_MAX_STREAM_LEN + 4];
    snprintf(sid, sizeof sid, "%s::%s", src_name(g), g->name);
    conf.subscription_id = sid;
    resp.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_RESP__CONTENT_SUBSCRIPTION_CONFIRMATION;
    resp.subscription_confirmation = &conf;
    rpc_send(ctx, c, &resp.base);
    group_pump(g);
}

static void pread_message(net_call *c, const uint8_t *msg, size_t len)
{
    ps_call *pc = net_call_state(c);
    PReadReq *req = event_store__client__persistent_subscriptions__read_req__unpack(NULL, len, msg);
    if (!req) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed ReadReq", NULL, NULL);
        return;
    }
    if (req->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_OPTIONS && req->options) {
        if (pc->have_options) rpc_fail(c, GRPC_INVALID_ARGUMENT, "options were already sent", NULL, NULL);
        else {
            pc->have_options = 1;
            pread_options(pc, c, req->options);
        }
    } else if (!pc->have_options) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "the first message must carry the options", NULL, NULL);
    } else if (pc->k && pc->k->g) {
        ps_consumer *k = pc->k;
        ps_group *g = k->g;
        if (req->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_ACK && req->ack)
            ack_ids(g, k, req->ack->ids, req->ack->n_ids, -1, NULL);
        else if (req->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_NACK && req->nack) {
            int stop = req->nack->action == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Stop;
            ack_ids(g, k, req->nack->ids, req->nack->n_ids, (int)req->nack->action, req->nack->reason);
            if (stop) {
                /* Stop: this consumer leaves; its messages go to the others. */
                event_store__client__persistent_subscriptions__read_req__free_unpacked(req, NULL);
                consumer_drop(k, GRPC_OK, NULL, NULL);
                if (!net_call_done(c)) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
                return;
            }
        }
        group_pump(g);
    }
    event_store__client__persistent_subscriptions__read_req__free_unpacked(req, NULL);
}

static void pread_half_close(net_call *c)
{
    ps_call *pc = net_call_state(c);
    if (!pc->have_options) rpc_fail(c, GRPC_INVALID_ARGUMENT, "no ReadReq was sent", NULL, NULL);
}

static void pread_writable(net_call *c)
{
    ps_call *pc = net_call_state(c);
    if (pc && pc->k && pc->k->g) {
        pc->k->blocked = 0;
        group_pump(pc->k->g);
    }
}

static void pread_close(net_call *c)
{
    ps_call *pc = net_call_state(c);
    if (pc && pc->k) consumer_drop(pc->k, -1, NULL, NULL);
    net_call_set_state(c, NULL);
    free(pc);
}

/* ---- management calls ------------------------------------------------------------ */

/* A unary call's state: some are answered later (when the config snapshot
 * is durable), so whether the request came is recorded here. */
typedef struct ps_unary {
    rpc_ctx *ctx;
    int got;
} ps_unary;

static int ps_unary_start(net_call *c, void *svc)
{
    ps_unary *u = calloc(1, sizeof *u);
    if (!u) return -ENOMEM;
    u->ctx = svc;
    net_call_set_state(c, u);
    return 0;
}

/* The context of a unary call whose request arrived. */
static rpc_ctx *uctx(net_call *c)
{
    ps_unary *u = net_call_state(c);
    u->got = 1;
    return u->ctx;
}

static void ps_unary_half_close(net_call *c)
{
    ps_unary *u = net_call_state(c);
    if (!u->got && !net_call_done(c)) rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request message is missing", NULL, NULL);
}

static void ps_unary_close(net_call *c)
{
    free(net_call_state(c));
    net_call_set_state(c, NULL);
}

static void create_or_update(net_call *c, const uint8_t *msg, size_t len, int is_update)
{
    rpc_ctx *ctx = uctx(c);
    CreateReq *req = event_store__client__persistent_subscriptions__create_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__create_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, is_update ? "malformed UpdateReq" : "malformed CreateReq", NULL, NULL);
        return;
    }
    ps_settings set;
    char *stream = NULL;
    int is_all;
    if (settings_from(c, req, is_update, &set, &stream, &is_all)) {
        event_store__client__persistent_subscriptions__create_req__free_unpacked(req, NULL);
        return;
    }
    const char *gname = req->options->group_name;
    ps_group *g = group_find(ctx, stream, gname);
    if (!is_update && g) {
        rpc_fail(c, GRPC_ALREADY_EXISTS, "Subscription group already exists.", "persistent-subscription-exists",
                 "stream-name", stream ? stream : "$all", "group-name", gname, NULL);
        goto out;
    }
    if (is_update && !g) {
        fail_missing(c, stream ? stream : "$all", gname);
        goto out;
    }
    int err = 0;
    if (is_update) {
        /* An update keeps the filter (UpdateReq has none). */
        if (g->set.has_filter && !set.has_filter) settings_copy_filter(&set, &g->set);
        free(stream);
        stream = NULL;
        g = group_rebuild(ctx, g, &set, &err);
    } else {
        g = group_new(ctx, stream, gname, &set, &err);
        stream = NULL;
        if (g) group_link(ctx, g);
    }
    if (!g) {
        if (err == FACTUM_EBADREGEX) rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid filter regex", NULL, NULL);
        else rpc_fail_store(c, err, NULL, 0, -1);
        goto out;
    }
    group_pump(g);
    config_save(ctx, c); /* answers c when durable (PS-5) */
out:
    free(stream);
    settings_free(&set);
    event_store__client__persistent_subscriptions__create_req__free_unpacked(req, NULL);
}

static void create_message(net_call *c, const uint8_t *msg, size_t len)
{
    create_or_update(c, msg, len, 0);
}

static void update_message(net_call *c, const uint8_t *msg, size_t len)
{
    create_or_update(c, msg, len, 1);
}

/* The (stream or $all, group) of Delete/GetInfo/ReplayParked/TruncateParked
 * options, which share this shape. 0, or the call is failed. */
static int target_of(net_call *c, int is_stream, const EventStore__Client__StreamIdentifier *sid, const char *group,
                     char **stream)
{
    *stream = NULL;
    if (!group || !group[0]) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "a group name is required", NULL, NULL);
        return -1;
    }
    if (!is_stream) return 0;
    if (!sid || factum_check_stream_name((const char *)sid->stream_name.data, sid->stream_name.len)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
        return -1;
    }
    *stream = strndup((const char *)sid->stream_name.data, sid->stream_name.len);
    return *stream ? 0 : -1;
}

static void delete_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    EventStore__Client__PersistentSubscriptions__DeleteReq *req =
        event_store__client__persistent_subscriptions__delete_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__delete_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed DeleteReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__DeleteReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            while (g->consumers)
                consumer_drop(g->consumers, GRPC_CANCELLED, "The persistent subscription was deleted.",
                              "persistent-subscription-dropped");
            group_unlink(ctx, g);
            group_free(g);
            config_save(ctx, c);
        }
        free(stream);
    }
    event_store__client__persistent_subscriptions__delete_req__free_unpacked(req, NULL);
}

/* SubscriptionInfo of g into *si (strings in buf, connections in the arrays). */
typedef struct info_store {
    char start_from[64], last_ckpt[64], last_known[64];
    ConnInfo *conns;
    ConnInfo **connp;
    EventStore__Client__PersistentSubscriptions__SubscriptionInfo__Measurement *meas;
    EventStore__Client__PersistentSubscriptions__SubscriptionInfo__Measurement **measp;
} info_store;

static void group_counts(const ps_group *g, int32_t *inflight, int32_t *outstanding)
{
    int32_t f = 0, o = 0;
    for (int ln = 0; ln < 2; ln++) {
        const ps_lane *l = &g->lane[ln];
        for (size_t i = 0; i < l->n; i++) {
            const ps_msg *m = &l->ring[(l->head + i) % l->cap];
            if (m->state == M_INFLIGHT) f++;
            if (m->state != M_DONE && m->state != M_FREE) o++;
        }
    }
    *inflight = f;
    *outstanding = o;
}

static int info_fill(const ps_group *g, SubInfo *si, info_store *is)
{
    event_store__client__persistent_subscriptions__subscription_info__init(si);
    memset(is, 0, sizeof *is);
    si->event_source = (char *)src_name(g);
    si->group_name = g->name;
    si->status = g->cur_error ? "Dropped" : "Live";
    if (g->stream) {
        snprintf(is->start_from, sizeof is->start_from, "%s",
                 g->set.start == ST_START ? "0" : g->set.start == ST_END ? "-1" : "");
        if (g->set.start == ST_AT) snprintf(is->start_from, sizeof is->start_from, "%" PRIu64, g->set.start_at);
        if (g->have_ckpt) snprintf(is->last_ckpt, sizeof is->last_ckpt, "%" PRIu64, g->last_ckpt);
        if (g->have_known) snprintf(is->last_known, sizeof is->last_known, "%" PRIu64, g->last_known);
    } else {
        if (g->set.start == ST_START) snprintf(is->start_from, sizeof is->start_from, "C:0/P:0");
        else if (g->set.start == ST_END) snprintf(is->start_from, sizeof is->start_from, "C:-1/P:-1");
        else snprintf(is->start_from, sizeof is->start_from, "C:%" PRIu64 "/P:%" PRIu64, g->set.start_at, g->set.start_at);
        if (g->have_ckpt)
            snprintf(is->last_ckpt, sizeof is->last_ckpt, "C:%" PRIu64 "/P:%" PRIu64, g->last_ckpt, g->last_ckpt);
        if (g->have_known)
            snprintf(is->last_known, sizeof is->last_known, "C:%" PRIu64 "/P:%" PRIu64, g->last_known, g->last_known);
    }
    si->start_from = is->start_from;
    si->last_checkpointed_event_position = is->last_ckpt;
    si->last_known_event_position = is->last_known;
    si->resolve_link_tos = g->set.resolve_links;
    si->message_timeout_milliseconds = g->set.message_timeout_ms;
    si->extra_statistics = g->set.extra_statistics;
    si->max_retry_count = g->set.max_retry_count;
    si->live_buffer_size = g->set.live_buffer_size;
    si->buffer_size = g->set.history_buffer_size;
    si->read_batch_size = g->set.read_batch_size;
    si->check_point_after_milliseconds = g->set.checkpoint_after_ms;
    si->min_check_point_count = g->set.min_checkpoint_count;
    si->max_check_point_count = g->set.max_checkpoint_count;
    si->named_consumer_strategy = (char *)strategy_names[g->set.strategy];
    si->max_subscriber_count = g->set.max_subscriber_count;
    si->parked_message_count = (int64_t)(g->parked_next - g->parked_first);
    si->total_items = (int64_t)g->total_items;
    si->average_per_second = g->avg_per_second;
    si->count_since_last_measurement = (int64_t)(g->total_items - g->items_at_measure);
    si->read_buffer_count = (int32_t)g->new_q.n;
    si->live_buffer_count = (int64_t)g->new_q.n;
    si->retry_buffer_count = (int32_t)g->retry_q.n;
    group_counts(g, &si->total_in_flight_messages, &si->outstanding_messages_count);
    if (g->n_consumers) {
        is->conns = calloc(g->n_consumers, sizeof *is->conns);
        is->connp = calloc(g->n_consumers, sizeof *is->connp);
        is->meas = calloc(g->n_consumers * 3, sizeof *is->meas);
        is->measp = calloc(g->n_consumers * 3, sizeof *is->measp);
        if (!is->conns || !is->connp || !is->meas || !is->measp) return -ENOMEM;
        size_t i = 0;
        for (const ps_consumer *k = g->consumers; k; k = k->next, i++) {
            ConnInfo *ci = &is->conns[i];
            event_store__client__persistent_subscriptions__subscription_info__connection_info__init(ci);
            ci->from = (char *)k->from;
            ci->username = "$admin";
            ci->total_items = (int64_t)k->total;
            ci->available_slots = k->buffer_size - k->inflight;
            ci->in_flight_messages = k->inflight;
            ci->connection_name = (char *)k->name;
            if (g->set.extra_statistics) {
                /* Acknowledgement latency since the consumer joined. */
                static char *const keys[] = {"AckedCount", "AckLatencyMeanUs", "AckLatencyMaxUs"};
                int64_t vals[3] = {(int64_t)k->acked, k->acked ? (int64_t)(k->ack_ns_sum / k->acked / 1000) : 0,
                                   (int64_t)(k->ack_ns_max / 1000)};
                for (int j = 0; j < 3; j++) {
                    EventStore__Client__PersistentSubscriptions__SubscriptionInfo__Measurement *me = &is->meas[i * 3 + j];
                    event_store__client__persistent_subscriptions__subscription_info__measurement__init(me);
                    me->key = keys[j];
                    me->value = vals[j];
                    is->measp[i * 3 + j] = me;
                }
                ci->n_observed_measurements = 3;
                ci->observed_measurements = &is->measp[i * 3];
            }
            is->connp[i] = ci;
        }
        si->n_connections = g->n_consumers;
        si->connections = is->connp;
    }
    return 0;
}

static void info_free(info_store *is)
{
    free(is->conns);
    free(is->connp);
    free(is->meas);
    free(is->measp);
}

static void getinfo_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    EventStore__Client__PersistentSubscriptions__GetInfoReq *req =
        event_store__client__persistent_subscriptions__get_info_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__get_info_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed GetInfoReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__GetInfoReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__GET_INFO_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            SubInfo si;
            info_store is;
            EventStore__Client__PersistentSubscriptions__GetInfoResp resp =
                EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__GET_INFO_RESP__INIT;
            if (info_fill(g, &si, &is) == 0) {
                resp.subscription_info = &si;
                if (rpc_send(ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
            } else {
                rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            }
            info_free(&is);
        }
        free(stream);
    }
    event_store__client__persistent_subscriptions__get_info_req__free_unpacked(req, NULL);
}

static void list_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    EventStore__Client__PersistentSubscriptions__ListReq *req =
        event_store__client__persistent_subscriptions__list_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__list_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed ListReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__ListReq__Options *o = req->options;
    int all = 1, on_all = 0;
    char *stream = NULL;
    if (o->list_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__LIST_REQ__OPTIONS__LIST_OPTION_LIST_FOR_STREAM &&
        o->list_for_stream) {
        all = 0;
        if (o->list_for_stream->stream_option_case ==
            EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__LIST_REQ__STREAM_OPTION__STREAM_OPTION_STREAM) {
            const EventStore__Client__StreamIdentifier *sid = o->list_for_stream->stream;
            if (sid) stream = strndup((const char *)sid->stream_name.data, sid->stream_name.len);
        } else {
            on_all = 1;
        }
    }
    size_t n = 0;
    for (ps_group *g = ctx->ps->groups; g; g = g->next) n++;
    SubInfo *sis = calloc(n ? n : 1, sizeof *sis), **sip = calloc(n ? n : 1, sizeof *sip);
    info_store *iss = calloc(n ? n : 1, sizeof *iss);
    size_t k = 0;
    int rc = sis && sip && iss ? 0 : -ENOMEM;
    for (ps_group *g = ctx->ps->groups; g && !rc; g = g->next) {
        if (!all && (on_all ? g->stream != NULL : !g->stream || !stream || strcmp(g->stream, stream))) continue;
        rc = info_fill(g, &sis[k], &iss[k]);
        sip[k] = &sis[k];
        k++;
    }
    if (rc) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
    } else if (!all && !k) {
        /* KurrentDB answers a stream without groups as not found. */
        fail_missing(c, stream ? stream : "$all", "");
    } else {
        EventStore__Client__PersistentSubscriptions__ListResp resp = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__LIST_RESP__INIT;
        resp.n_subscriptions = k;
        resp.subscriptions = sip;
        if (rpc_send(ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
    }
    for (size_t i = 0; iss && i < k; i++) info_free(&iss[i]);
    free(sis);
    free(sip);
    free(iss);
    free(stream);
    event_store__client__persistent_subscriptions__list_req__free_unpacked(req, NULL);
}

static void replay_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    EventStore__Client__PersistentSubscriptions__ReplayParkedReq *req =
        event_store__client__persistent_subscriptions__replay_parked_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__replay_parked_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed ReplayParkedReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__ReplayParkedReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__REPLAY_PARKED_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            /* Replay [parked_first, parked_next), or stop_at of them; a replay
             * in progress keeps its position (what it has not read yet is
             * still to come) and may only be extended. */
            uint64_t end = g->parked_next;
            if (o->stop_at_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__REPLAY_PARKED_REQ__OPTIONS__STOP_AT_OPTION_STOP_AT &&
                o->stop_at >= 0 && g->parked_first + (uint64_t)o->stop_at < end)
                end = g->parked_first + (uint64_t)o->stop_at;
            if (g->replay_next < g->parked_first) g->replay_next = g->parked_first;
            if (end > g->replay_end) g->replay_end = end;
            group_pump(g);
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        }
        free(stream);
    }
    event_store__client__persistent_subscriptions__replay_parked_req__free_unpacked(req, NULL);
}

static void truncate_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    EventStore__Client__PersistentSubscriptions__TruncateParkedReq *req =
        event_store__client__persistent_subscriptions__truncate_parked_req__unpack(NULL, len, msg);
    if (!req || !req->options) {
        if (req) event_store__client__persistent_subscriptions__truncate_parked_req__free_unpacked(req, NULL);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed TruncateParkedReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__TruncateParkedReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__TRUNCATE_PARKED_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            uint64_t tb = g->parked_next;
            if (o->stop_at_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__TRUNCATE_PARKED_REQ__OPTIONS__STOP_AT_OPTION_STOP_AT &&
                o->stop_at >= 0 && g->parked_first + (uint64_t)o->stop_at < tb)
                tb = g->parked_first + (uint64_t)o->stop_at;
            if (tb > g->parked_first) {
                g->parked_first = tb;
                if (g->replay_next < tb) g->replay_next = tb;
                if (g->replay_end < tb) g->replay_end = tb;
                tb_sync(g, 1);
            }
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        }
        free(stream);
    }
    event_store__client__persistent_subscriptions__truncate_parked_req__free_unpacked(req, NULL);
}

static void restart_message(net_call *c, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    rpc_ctx *ctx = uctx(c);
    /* Rebuild every group from its durable state. */
    size_t n = 0;
    for (ps_group *g = ctx->ps->groups; g; g = g->next) n++;
    uint64_t *ids = calloc(n ? n : 1, sizeof *ids);
    size_t k = 0;
    for (ps_group *g = ctx->ps->groups; g && ids; g = g->next) ids[k++] = g->id;
    for (size_t i = 0; i < k; i++) {
        ps_group *g = group_by_id(ctx, ids[i]);
        int err;
        if (g && (g = group_rebuild(ctx, g, NULL, &err))) group_pump(g);
    }
    free(ids);
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
}

/* ---- the loop's hooks ------------------------------------------------------------- */

void rpc_ps_close(rpc_ctx *ctx)
{
    if (ctx->ps) ctx->ps->closing = 1;
}

void rpc_ps_on_commit(rpc_ctx *ctx)
{
    if (!ctx->ps || ctx->ps->closing) return;
    for (ps_group *g = ctx->ps->groups; g; g = g->next)
        if (g->n_consumers) group_pump(g);
}

void rpc_ps_tick(rpc_ctx *ctx)
{
    if (!ctx->ps || ctx->ps->closing) return;
    uint64_t now = mono_now();
    for (ps_group *g = ctx->ps->groups; g; g = g->next) {
        /* PS-3: message timeouts. */
        int any = 0;
        for (int ln = 0; ln < 2; ln++) {
            ps_lane *l = &g->lane[ln];
            for (size_t i = 0; i < l->n; i++) {
                ps_msg *m = lane_slot(l, i);
                if (m->state == M_INFLIGHT && m->deadline <= now) {
                    requeue(g, m, 1, "Max retry count exceeded.");
                    any = 1;
                }
            }
        }
        if (now - g->measure_time >= 1000000000u) {
            uint64_t dt = now - g->measure_time;
            g->avg_per_second = (int32_t)((g->total_items - g->items_at_measure) * 1000000000u / dt);
            g->items_at_measure = g->total_items;
            g->measure_time = now;
        }
        maybe_checkpoint(g, 1);
        if (any || g->n_consumers) group_pump(g);
    }
}

int rpc_ps_init(rpc_ctx *ctx)
{
    ctx->ps = calloc(1, sizeof *ctx->ps);
    if (!ctx->ps) return -ENOMEM;
    /* PS-5: the groups of the last snapshot. */
    factum_event ev;
    size_t n = 0;
    int rc = factum_read_stream(ctx->store, CONFIG_STREAM, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND || (!rc && !n)) return 0;
    if (rc) return rc;
    json_value *doc;
    if (json_parse((const char *)ev.data, ev.data_len, &doc)) return FACTUM_ECORRUPT;
    const json_value *groups = json_get(doc, "groups");
    for (size_t i = 0; groups && groups->type == JSON_ARRAY && i < groups->n; i++) {
        const json_value *j = groups->items[i];
        const json_value *sv = json_get(j, "stream"), *gv = json_get(j, "group");
        if (!gv || gv->type != JSON_STRING) continue;
        ps_settings s;
        settings_defaults(&s);
        int64_t v;
#define GETI(key, field)                                                                                        \
    do {                                                                                                        \
        const json_value *x = json_get(j, key);                                                                 \
        if (x && json_int64(x, &v) == 0) s.field = (int32_t)v;                                                  \
    } while (0)
        GETI("resolveLinks", resolve_links);
        GETI("extraStatistics", extra_statistics);
        GETI("start", start);
        GETI("messageTimeoutMs", message_timeout_ms);
        GETI("maxRetryCount", max_retry_count);
        GETI("checkpointAfterMs", checkpoint_after_ms);
        GETI("minCheckpointCount", min_checkpoint_count);
        GETI("maxCheckpointCount", max_checkpoint_count);
        GETI("maxSubscriberCount", max_subscriber_count);
        GETI("liveBufferSize", live_buffer_size);
        GETI("readBatchSize", read_batch_size);
        GETI("historyBufferSize", history_buffer_size);
        GETI("strategy", strategy);
        GETI("hasFilter", has_filter);
        GETI("filterOn", filter_on);
#undef GETI
        const json_value *sa = json_get(j, "startAt"); /* unsigned 64-bit: from the number's text */
        if (sa && sa->type == JSON_NUMBER) s.start_at = strtoull(sa->str, NULL, 10);
        const json_value *fr = json_get(j, "filterRegex"), *fp = json_get(j, "filterPrefixes");
        if (fr && fr->type == JSON_STRING) s.filter_regex = strdup(fr->str);
        if (fp && fp->type == JSON_ARRAY && fp->n) {
            s.filter_prefixes = calloc(fp->n, sizeof(char *));
            for (size_t k = 0; s.filter_prefixes && k < fp->n; k++)
                s.filter_prefixes[s.n_filter_prefixes++] = strdup(fp->items[k]->type == JSON_STRING ? fp->items[k]->str : "");
        }
        if (s.strategy < 0 || s.strategy > 3) s.strategy = STRAT_ROUND_ROBIN;
        if (s.live_buffer_size <= 0) s.live_buffer_size = 500;
        if (s.history_buffer_size <= 0) s.history_buffer_size = 500;
        char *stream = sv && sv->type == JSON_STRING ? strdup(sv->str) : NULL;
        int err;
        ps_group *g = group_new(ctx, stream, gv->str, &s, &err);
        if (g) group_link(ctx, g);
    }
    json_free(doc);
    return 0;
}

void rpc_ps_free(rpc_ctx *ctx)
{
    if (!ctx->ps) return;
    while (ctx->ps->groups) {
        ps_group *g = ctx->ps->groups;
        ctx->ps->groups = g->next;
        /* Every call was closed (pread_close) before this: no consumer
         * is left, and their calls must not be touched. */
        while (g->consumers) {
            ps_consumer *k = g->consumers;
            g->consumers = k->next;
            free(k);
        }
        g->n_consumers = 0;
        group_free(g);
    }
    base_buf_free(&ctx->ps->pack);
    free(ctx->ps);
    ctx->ps = NULL;
}

/* Lag of every group, for /metrics and Monitoring.Stats: fn(ctx, source,
 * group, events behind the head, seconds behind, in flight, parked). */
void rpc_ps_each(rpc_ctx *ctx, void (*fn)(void *arg, const char *src, const char *group, uint64_t lag_events,
                                         double lag_seconds, uint64_t inflight, uint64_t parked, size_t consumers),
                 void *arg)
{
    if (!ctx->ps) return;
    factum_stats st;
    factum_store_get_stats(ctx->store, &st);
    for (ps_group *g = ctx->ps->groups; g; g = g->next) {
        uint64_t done = g->lane[0].have_done ? g->lane[0].done_pos : g->have_ckpt ? g->last_ckpt : 0;
        uint64_t head = st.last_position;
        if (g->stream) {
            factum_stream_info info;
            head = 0;
            if (factum_stream_get_info(ctx->store, g->stream, &info) == 0 && info.last_version >= 0)
                head = (uint64_t)info.last_version + (g->lane[0].have_done || g->have_ckpt ? 0 : 1);
        }
        uint64_t lag = head > done ? head - done : 0;
        double secs = 0;
        const ps_lane *l = &g->lane[0];
        if (l->n) {
            int64_t age = base_now_ns() - l->ring[l->head].ev.timestamp_ns;
            secs = age > 0 ? (double)age / 1e9 : 0;
        }
        int32_t inflight, outstanding;
        group_counts(g, &inflight, &outstanding);
        fn(arg, src_name(g), g->name, lag, secs, (uint64_t)inflight, g->parked_next - g->parked_first, g->n_consumers);
    }
}

#define PS "/event_store.client.persistent_subscriptions.PersistentSubscriptions/"
const net_method rpc_ps_methods[] = {
    {PS "Create", ps_unary_start, create_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "Update", ps_unary_start, update_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "Delete", ps_unary_start, delete_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "Read", pread_start, pread_message, pread_half_close, pread_writable, pread_close, NULL},
    {PS "GetInfo", ps_unary_start, getinfo_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "ReplayParked", ps_unary_start, replay_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "TruncateParked", ps_unary_start, truncate_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "List", ps_unary_start, list_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
    {PS "RestartSubsystem", ps_unary_start, restart_message, ps_unary_half_close, NULL, ps_unary_close, NULL},
};
const size_t rpc_ps_n = sizeof rpc_ps_methods / sizeof *rpc_ps_methods;
