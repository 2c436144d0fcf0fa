/*
 * persistent_stats.c - what a consumer group reports: its SubscriptionInfo
 * (settings, positions, counts, connections and, with extra statistics,
 * each consumer's acknowledgement latency) for GetInfo and List, and its
 * lag and counts for /metrics and Monitoring.Stats (rpc_ps_each).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "rpc/persistent.h"
#include "rpc/persistent_int.h"

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

int rpc_ps_info_fill(const ps_group *g, SubInfo *si, info_store *is)
{
    event_store__client__persistent_subscriptions__subscription_info__init(si);
    memset(is, 0, sizeof *is);
    si->event_source = (char *)rpc_ps_src_name(g);
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
    si->named_consumer_strategy = (char *)rpc_ps_strategy_names[g->set.strategy];
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
            ci->username = (char *)k->user;
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

void rpc_ps_info_free(info_store *is)
{
    free(is->conns);
    free(is->connp);
    free(is->meas);
    free(is->measp);
}

/* g's lag: events of its source after what it has done (the head of $all
 * is last_position), and how old the oldest of them is. */
static void group_lag(const ps_group *g, uint64_t last_position, uint64_t *events, double *seconds)
{
    uint64_t done = g->lane[0].have_done ? g->lane[0].done_pos : g->have_ckpt ? g->last_ckpt : 0;
    uint64_t head = last_position;
    if (g->stream) {
        factum_stream_info info;
        head = 0;
        if (factum_stream_get_info(g->ctx->store, g->stream, &info) == 0 && info.last_version >= 0)
            head = (uint64_t)info.last_version + (g->lane[0].have_done || g->have_ckpt ? 0 : 1);
    }
    *events = head > done ? head - done : 0;
    /* The group's cursor knows what it has not examined yet (unless a
     * reader thread polls it now: RDJ-2; then the estimates stand). */
    const ps_lane *l = &g->lane[0];
    int nothing_done = !l->have_done && !g->have_ckpt;
    factum_sub_status ss;
    int have_ss = (nothing_done || !l->n) && g->cur && !g->mj && factum_sub_get_status(g->cur, &ss) == 0;
    if (nothing_done && have_ss) {
        /* Nothing done yet: then done is no position, and the group may have
         * started at the end. What its cursor has not examined, and what it
         * read and has not finished. */
        uint64_t open = 0;
        for (size_t i = 0; i < l->n; i++)
            if (l->ring[(l->head + i) % l->cap].state != M_DONE) open++;
        *events = ss.lag_events + open;
    }
    /* The age of its oldest unfinished message, or (none read: no consumer
     * made it read) of the oldest event it has not examined. */
    *seconds = 0;
    if (l->n) {
        int64_t age = base_now_ns() - l->ring[l->head].ev.timestamp_ns;
        *seconds = age > 0 ? (double)age / 1e9 : 0;
    } else if (have_ss) {
        *seconds = (double)ss.lag_ns / 1e9;
    }
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
        uint64_t lag;
        double secs;
        group_lag(g, st.last_position, &lag, &secs);
        int32_t inflight, outstanding;
        group_counts(g, &inflight, &outstanding);
        fn(arg, rpc_ps_src_name(g), g->name, lag, secs, (uint64_t)inflight, g->parked_next - g->parked_first,
           g->n_consumers);
    }
}

static int json_str(base_buf *b, const char *key, const char *v)
{
    int rc = base_buf_printf(b, ",\"%s\":", key);
    return rc ? rc : json_write_string(b, v, strlen(v));
}

/* The group as the HTTP API shows it: KurrentDB's info document (its
 * names), with its lag and the parked stream's name besides. */
static int describe(rpc_ctx *ctx, const ps_group *g, base_buf *b)
{
    SubInfo si;
    info_store is;
    int rc = rpc_ps_info_fill(g, &si, &is);
    factum_stats st;
    factum_store_get_stats(ctx->store, &st);
    uint64_t lag;
    double secs;
    group_lag(g, st.last_position, &lag, &secs);
    const ps_settings *s = &g->set;
    char start[32];
    if (s->start == ST_END) snprintf(start, sizeof start, "-1");
    else snprintf(start, sizeof start, "%" PRIu64, s->start == ST_AT ? s->start_at : 0);
    if (!rc) rc = base_buf_append(b, "{\"eventStreamId\":", 17);
    if (!rc) rc = json_write_string(b, si.event_source, strlen(si.event_source));
    if (!rc) rc = json_str(b, "groupName", g->name);
    if (!rc) rc = json_str(b, "status", si.status);
    if (!rc) {
        size_t n = strlen("$persistentsubscription-") + strlen(si.event_source) + 2 + strlen(g->name) + 8;
        char *ps = malloc(n);
        rc = ps ? 0 : -ENOMEM;
        if (ps) {
            snprintf(ps, n, "$persistentsubscription-%s::%s-parked", si.event_source, g->name);
            rc = json_str(b, "parkedStream", ps);
            free(ps);
        }
    }
    if (!rc) rc = json_str(b, "lastCheckpointedEventPosition", si.last_checkpointed_event_position);
    if (!rc) rc = json_str(b, "lastKnownEventPosition", si.last_known_event_position);
    if (!rc)
        rc = base_buf_printf(
            b,
            ",\"averageItemsPerSecond\":%d,\"totalItemsProcessed\":%" PRId64 ",\"countSinceLastMeasurement\":%" PRId64
            ",\"readBufferCount\":%d,\"liveBufferCount\":%" PRId64 ",\"retryBufferCount\":%d,"
            "\"totalInFlightMessages\":%d,\"outstandingMessagesCount\":%d,\"parkedMessageCount\":%" PRId64
            ",\"lagEvents\":%" PRIu64 ",\"lagSeconds\":%.3f,\"connectionCount\":%zu,"
            "\"config\":{\"resolveLinktos\":%s,\"startFrom\":%s,\"messageTimeoutMilliseconds\":%d,"
            "\"extraStatistics\":%s,\"maxRetryCount\":%d,\"liveBufferSize\":%d,\"bufferSize\":%d,"
            "\"readBatchSize\":%d,\"checkPointAfterMilliseconds\":%d,\"minCheckPointCount\":%d,"
            "\"maxCheckPointCount\":%d,\"maxSubscriberCount\":%d,\"namedConsumerStrategy\":\"%s\"",
            si.average_per_second, si.total_items, si.count_since_last_measurement, si.read_buffer_count,
            si.live_buffer_count, si.retry_buffer_count, si.total_in_flight_messages, si.outstanding_messages_count,
            si.parked_message_count, lag, secs, g->n_consumers, s->resolve_links ? "true" : "false", start,
            s->message_timeout_ms, s->extra_statistics ? "true" : "false", s->max_retry_count, s->live_buffer_size,
            s->history_buffer_size, s->read_batch_size, s->checkpoint_after_ms, s->min_checkpoint_count,
            s->max_checkpoint_count, s->max_subscriber_count, rpc_ps_strategy_names[s->strategy]);
    if (!rc && s->has_filter) {
        rc = base_buf_printf(b, ",\"filter\":{\"on\":\"%s\"",
                             s->filter_on == FACTUM_FILTER_STREAM ? "stream" : "eventType");
        if (!rc && s->filter_regex) rc = json_str(b, "regex", s->filter_regex);
        if (!rc && s->n_filter_prefixes) rc = rpc_ps_prefixes_json(b, "prefixes", s);
        if (!rc) rc = base_buf_append(b, "}", 1);
    }
    if (!rc) rc = base_buf_append(b, "},\"connections\":[", 17);
    for (size_t i = 0; !rc && i < si.n_connections; i++) {
        const ConnInfo *ci = si.connections[i];
        rc = base_buf_append(b, i ? ",{\"from\":" : "{\"from\":", i ? 9 : 8);
        if (!rc) rc = json_write_string(b, ci->from, strlen(ci->from));
        if (!rc) rc = json_str(b, "username", ci->username);
        if (!rc) rc = json_str(b, "connectionName", ci->connection_name);
        if (!rc)
            rc = base_buf_printf(b,
                                 ",\"totalItemsProcessed\":%" PRId64
                                 ",\"availableSlots\":%d,\"inFlightMessages\":%d}",
                                 ci->total_items, ci->available_slots, ci->in_flight_messages);
    }
    if (!rc) rc = base_buf_append(b, "]}", 2);
    rpc_ps_info_free(&is);
    return rc;
}

int rpc_ps_describe(rpc_ctx *ctx, const char *stream, const char *group, base_buf *b)
{
    ps_group *g = rpc_ps_group_find(ctx, stream, group);
    return g ? describe(ctx, g, b) : FACTUM_ENOTFOUND;
}

int rpc_ps_describe_all(rpc_ctx *ctx, const char *source, base_buf *b, size_t *n)
{
    int rc = 0;
    *n = 0;
    for (ps_group *g = ctx->ps ? ctx->ps->groups : NULL; g && !rc; g = g->next) {
        if (source && strcmp(source, rpc_ps_src_name(g))) continue;
        if ((*n)++) rc = base_buf_append(b, ",", 1);
        if (!rc) rc = describe(ctx, g, b);
    }
    return rc;
}
