/*
 * persistent_config.c - a consumer group's settings and their persistence
 * (PS-5): the settings of a Create/Update request (the clients' defaults,
 * KurrentDB's checks), the snapshot of every group's settings appended to
 * $persistentSubscriptionConfig before a change is answered, and the
 * groups of the last snapshot built again at start (rpc_ps_init).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "net/grpc.h"
#include "rpc/persistent.h"
#include "rpc/persistent_int.h"
#include "rpc/vstream.h"

#define CONFIG_STREAM "$persistentSubscriptionConfig"

const char *const rpc_ps_strategy_names[4] = {"RoundRobin", "DispatchToSingle", "Pinned",
                                               "PinnedByCorrelation"};

/* ---- settings ------------------------------------------------------------ */

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


static int strategy_of(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, rpc_ps_strategy_names[i])) return i;
    return -1;
}

static int settings_valid(const ps_settings *s)
{
    return !(s->strategy < 0 || s->strategy > 3 || s->message_timeout_ms < 0 || s->max_retry_count < 0 ||
             s->checkpoint_after_ms < 0 || s->min_checkpoint_count < 0 || s->max_checkpoint_count < 0 ||
             s->max_subscriber_count < 0 || s->live_buffer_size <= 0 || s->read_batch_size <= 0 ||
             s->history_buffer_size <= 0 || s->live_buffer_size > 1000000 || s->history_buffer_size > 1000000);
}

/* Settings from a CreateReq (UpdateReq is parsed with the same descriptor:
 * its layout is a subset). Returns 0 or fails the call. */
int rpc_ps_settings_from(net_call *c, const CreateReq *req, int is_update, ps_settings *s, char **stream_out,
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
        if (rpc_vstream_is((const char *)sid->stream_name.data, sid->stream_name.len)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT,
                     "virtual streams ($asof/, $load/, $raw/) cannot be followed by a consumer group", NULL, NULL);
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
    /* A lower checkpoint bound above the upper one is accepted, as KurrentDB
     * accepts it (the clients' defaults with checkPointUpperBound 1): the
     * upper bound then decides, a checkpoint once that many are done (PS-2).
     * Negative counts and empty or huge buffers KurrentDB takes too; they are
     * refused here, since the lanes are sized from them (PS-1). */
    if (!settings_valid(s)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid persistent subscription settings", NULL, NULL);
        goto bad;
    }
    return 0;
bad:
    free(*stream_out);
    *stream_out = NULL;
    rpc_ps_settings_free(s);
    return -1;
}

/* ---- settings from the HTTP API (KurrentDB's JSON names) ---------------- */

static const struct {
    const char *key;
    size_t off;
} json_ints[] = {
    {"messageTimeoutMilliseconds", offsetof(ps_settings, message_timeout_ms)},
    {"maxRetryCount", offsetof(ps_settings, max_retry_count)},
    {"checkPointAfterMilliseconds", offsetof(ps_settings, checkpoint_after_ms)},
    {"minCheckPointCount", offsetof(ps_settings, min_checkpoint_count)},
    {"maxCheckPointCount", offsetof(ps_settings, max_checkpoint_count)},
    {"maxSubscriberCount", offsetof(ps_settings, max_subscriber_count)},
    {"liveBufferSize", offsetof(ps_settings, live_buffer_size)},
    {"readBatchSize", offsetof(ps_settings, read_batch_size)},
    {"bufferSize", offsetof(ps_settings, history_buffer_size)},
};

static void filter_clear(ps_settings *s)
{
    free(s->filter_regex);
    for (size_t i = 0; i < s->n_filter_prefixes; i++)
        free(s->filter_prefixes[i]);
    free(s->filter_prefixes);
    s->filter_regex = NULL;
    s->filter_prefixes = NULL;
    s->n_filter_prefixes = 0;
    s->has_filter = 0;
}

static int json_filter(const json_value *f, ps_settings *s, char *why, size_t cap)
{
    const json_value *on = json_get(f, "on"), *re = json_get(f, "regex"), *px = json_get(f, "prefixes");
    if (f->type != JSON_OBJECT || !on || on->type != JSON_STRING ||
        (strcmp(on->str, "stream") && strcmp(on->str, "eventType"))) {
        snprintf(why, cap, "filter: {\"on\": \"stream\" or \"eventType\", \"regex\": \"...\" or \"prefixes\": [...]}");
        return -1;
    }
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->keys[i], "on") && strcmp(f->keys[i], "regex") && strcmp(f->keys[i], "prefixes")) {
            snprintf(why, cap, "filter: unknown key \"%.64s\"", f->keys[i]);
            return -1;
        }
    int has_re = re && re->type == JSON_STRING && re->len;
    if (!has_re == !(px && px->type == JSON_ARRAY && px->n) || (re && !has_re) || (px && px->type != JSON_ARRAY)) {
        snprintf(why, cap, "filter: one of a non-empty \"regex\" or a non-empty \"prefixes\" array");
        return -1;
    }
    s->has_filter = 1;
    s->filter_on = !strcmp(on->str, "stream") ? FACTUM_FILTER_STREAM : FACTUM_FILTER_EVENT_TYPE;
    if (has_re) {
        if (strlen(re->str) != re->len || !(s->filter_regex = strdup(re->str))) goto bad;
        return 0;
    }
    if (px->n > 1024 || !(s->filter_prefixes = calloc(px->n, sizeof *s->filter_prefixes))) goto bad;
    for (size_t i = 0; i < px->n; i++) {
        const json_value *p = px->items[i];
        if (p->type != JSON_STRING || strlen(p->str) != p->len) goto bad;
        if (!(s->filter_prefixes[s->n_filter_prefixes] = strdup(p->str))) goto bad;
        s->n_filter_prefixes++;
    }
    return 0;
bad:
    snprintf(why, cap, "filter: strings without NUL, at most 1024 prefixes");
    return -1;
}

int rpc_ps_settings_from_json(const char *body, size_t len, int is_all, const ps_settings *base, ps_settings *s,
                              char *why, size_t cap)
{
    if (base) {
        *s = *base;
        s->filter_regex = NULL;
        s->filter_prefixes = NULL;
        s->n_filter_prefixes = 0;
        rpc_ps_settings_copy_filter(s, base);
    } else {
        settings_defaults(s);
    }
    json_value *doc = NULL;
    int rc = -1;
    if (len && json_parse(body, len, &doc)) {
        snprintf(why, cap, "the body must be a JSON object of settings");
        goto out;
    }
    if (doc && doc->type != JSON_OBJECT) {
        snprintf(why, cap, "the body must be a JSON object of settings");
        goto out;
    }
    for (size_t i = 0; doc && i < doc->n; i++) {
        const char *k = doc->keys[i];
        const json_value *v = doc->items[i];
        size_t j;
        for (j = 0; j < sizeof json_ints / sizeof *json_ints; j++)
            if (!strcmp(k, json_ints[j].key)) break;
        int64_t x;
        if (j < sizeof json_ints / sizeof *json_ints) {
            if (json_int64(v, &x) || x < 0 || x > INT32_MAX) {
                snprintf(why, cap, "%s: an integer from 0 to 2147483647", k);
                goto out;
            }
            *(int32_t *)((char *)s + json_ints[j].off) = (int32_t)x;
        } else if (!strcmp(k, "resolveLinktos") || !strcmp(k, "resolveLinkTos") || !strcmp(k, "extraStatistics")) {
            if (v->type != JSON_TRUE && v->type != JSON_FALSE) {
                snprintf(why, cap, "%s: true or false", k);
                goto out;
            }
            if (k[0] == 'r') s->resolve_links = v->type == JSON_TRUE;
            else s->extra_statistics = v->type == JSON_TRUE;
        } else if (!strcmp(k, "startFrom")) {
            /* -1 the end, 0 the start, N a revision (a stream) or a commit
             * position ($all); the text keeps u64 positions exact. */
            if (v->type == JSON_NUMBER && !strcmp(v->str, "-1")) {
                s->start = ST_END;
            } else {
                char *end;
                if (v->type != JSON_NUMBER || v->str[0] == '-' || (errno = 0, s->start_at = strtoull(v->str, &end, 10), *end) ||
                    errno) {
                    snprintf(why, cap, "startFrom: -1 (the end), 0 (the start) or a %s",
                             is_all ? "commit position" : "revision");
                    goto out;
                }
                s->start = s->start_at ? ST_AT : ST_START;
            }
        } else if (!strcmp(k, "namedConsumerStrategy")) {
            if (v->type != JSON_STRING || (s->strategy = strategy_of(v->str)) < 0) {
                snprintf(why, cap, "namedConsumerStrategy: RoundRobin, DispatchToSingle, Pinned or PinnedByCorrelation");
                goto out;
            }
        } else if (!strcmp(k, "preferRoundRobin")) {
            /* KurrentDB's old clients send it besides the strategy: ignored. */
        } else if (!strcmp(k, "filter") && is_all && !base) {
            filter_clear(s); /* a repeated key: the last one counts */
            if (v->type != JSON_NULL && json_filter(v, s, why, cap)) goto out;
        } else {
            snprintf(why, cap, "unknown setting \"%.64s\"%s", k,
                     !strcmp(k, "filter") ? (is_all ? " (a group's filter is set when it is created)"
                                                    : " (only a group on $all has a filter)")
                                          : "");
            goto out;
        }
    }
    if (!settings_valid(s)) {
        snprintf(why, cap, "invalid settings: buffers from 1 to 1000000, readBatchSize at least 1");
        goto out;
    }
    rc = 0;
out:
    json_free(doc);
    if (rc) rpc_ps_settings_free(s);
    return rc;
}

/* ---- the config snapshot (PS-5) ------------------------------------------ */

int rpc_ps_prefixes_json(base_buf *b, const char *key, const ps_settings *s)
{
    int rc = base_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; !rc && i < s->n_filter_prefixes; i++) {
        if (i) rc = base_buf_append(b, ",", 1);
        if (!rc) rc = json_write_string(b, s->filter_prefixes[i], strlen(s->filter_prefixes[i]));
    }
    return rc ? rc : base_buf_append(b, "]", 1);
}

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
    if (!rc && s->n_filter_prefixes) rc = rpc_ps_prefixes_json(b, "filterPrefixes", s);
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc;
}

typedef struct save_wait {
    net_call *c;             /* a gRPC call to answer, or */
    rpc_ps_saved_fn fn;      /* a function to call */
    void *arg;
} save_wait;

static void config_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version);

/* Write the snapshot of every group (writes are not serialised: each is a
 * whole snapshot, and the store orders them as they were made). 0, or an
 * error and nothing is written. */
static int config_write(rpc_ctx *ctx, save_wait *w)
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
    if (!rc)
        rc = rpc_ps_append(ctx, 0, CONFIG_STREAM, "$PersistentConfig", b.data, b.len, 1, NULL, config_written, w);
    base_buf_free(&b);
    return rc;
}

/* Write the snapshot; answer c (if not NULL: OK or the error) when it is
 * durable. */
void rpc_ps_config_save(rpc_ctx *ctx, net_call *c)
{
    save_wait *w = c ? calloc(1, sizeof *w) : NULL;
    if (c && !w) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return;
    }
    if (w) {
        w->c = c;
        net_call_ref(c);
    }
    if (config_write(ctx, w)) {
        if (w) {
            rpc_fail(c, GRPC_INTERNAL, "could not write the persistent subscription configuration", NULL, NULL);
            net_call_unref(c);
            free(w);
        }
    }
}

int rpc_ps_config_save_fn(rpc_ctx *ctx, rpc_ps_saved_fn fn, void *arg)
{
    save_wait *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->fn = fn;
    w->arg = arg;
    int rc = config_write(ctx, w);
    if (rc) free(w);
    return rc;
}

static void config_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)gid;
    (void)version;
    save_wait *w = arg;
    if (!w) return;
    if (w->fn) {
        w->fn(w->arg, rc);
    } else if (!net_call_done(w->c)) {
        if (rc) {
            rpc_fail_store(w->c, rc, CONFIG_STREAM, FACTUM_ANY, -1);
        } else {
            /* CreateResp / UpdateResp / DeleteResp are all empty messages. */
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, w->c, &e.base) == 0) net_call_finish(w->c, GRPC_OK, NULL, NULL, 0);
        }
    }
    if (w->c) net_call_unref(w->c);
    free(w);
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
        ps_group *g = rpc_ps_group_new(ctx, stream, gv->str, &s, &err);
        if (g) rpc_ps_group_link(ctx, g);
    }
    json_free(doc);
    return 0;
}
