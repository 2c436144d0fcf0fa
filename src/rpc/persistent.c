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
 * This file is the service: the consumers' Read call and the management
 * calls, on the engine (persistent_group.c, whose design note PS-1..6 is in
 * persistent_int.h), the configuration (persistent_config.c) and the
 * statistics (persistent_stats.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/policy.h"
#include "auth/principal.h"
#include "kurrentdb/shared.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/vstream.h"
#include "rpc/persistent.h"
#include "rpc/events.h"
#include "rpc/persistent_int.h"

typedef EventStore__Client__PersistentSubscriptions__ReadReq PReadReq;

static void fail_missing(net_call *c, const char *stream, const char *group)
{
    rpc_fail(c, GRPC_NOT_FOUND, "Subscription group does not exist.", "persistent-subscription-does-not-exist",
             "stream-name", stream, "group-name", group, NULL);
}

/* ---- consumers (Read) --------------------------------------------------------- */

static int pread_start(net_call *c, void *svc)
{
    ps_call *pc = calloc(1, sizeof *pc);
    if (!pc) return -ENOMEM;
    pc->ctx = svc;
    net_call_set_state(c, pc);
    return 0;
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
    /* KurrentDB's ProcessMessages: authenticated, and allowed to read the
     * group's stream (or `$all`), before anything about the group is told */
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_CONSUME, NULL) ||
        rpc_authorize_stream(ctx, c, stream ? stream : "$all", AUTH_READ)) {
        free(stream);
        return;
    }
    const char *gname = o->group_name ? o->group_name : "";
    ps_group *g = rpc_ps_group_find(ctx, stream, gname);
    if (!g) {
        fail_missing(c, stream ? stream : "$all", gname);
        free(stream);
        return;
    }
    free(stream);
    if (g->set.max_subscriber_count > 0 && g->n_consumers >= (size_t)g->set.max_subscriber_count) {
        rpc_fail(c, GRPC_FAILED_PRECONDITION, "Maximum subscriptions reached.", "maximum-subscribers-reached",
                 "stream-name", rpc_ps_src_name(g), "group-name", g->name, NULL);
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
    if (!(rpc_principal(c)->flags & AUTH_P_SYSTEM) && ctx->authz) {
        k->authz = 1;
        k->as = rpc_principal(c);
        auth_stamp_take(ctx->authz, g->stream ? g->stream : "$all", &k->stamp);
    }
    k->raw = rpc_wants_raw(c);
    k->uuid_string = o->uuid_option &&
                     o->uuid_option->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    const char *cn = net_call_header(c, "connection-name");
    snprintf(k->name, sizeof k->name, "%s", cn ? cn : "");
    net_call_peer(c, k->from, sizeof k->from);
    const auth_principal *who = rpc_principal(c);
    snprintf(k->user, sizeof k->user, "%s",
             who->flags & AUTH_P_SYSTEM ? "$system" : who->login[0] ? who->login : "$anonymous");
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
    snprintf(sid, sizeof sid, "%s::%s", rpc_ps_src_name(g), g->name);
    conf.subscription_id = sid;
    resp.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_RESP__CONTENT_SUBSCRIPTION_CONFIRMATION;
    resp.subscription_confirmation = &conf;
    rpc_send(ctx, c, &resp.base);
    rpc_ps_group_pump(g);
}

static void pread_message(net_call *c, const uint8_t *msg, size_t len)
{
    ps_call *pc = net_call_state(c);
    pb_alloc pa;
    PReadReq *req = rpc_unpack(c, &event_store__client__persistent_subscriptions__read_req__descriptor, msg, len, &pa,
                   "ReadReq");
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
            rpc_ps_ack(g, k, req->ack->ids, req->ack->n_ids, -1, NULL);
        else if (req->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_NACK && req->nack) {
            int stop = req->nack->action == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Stop;
            rpc_ps_ack(g, k, req->nack->ids, req->nack->n_ids, (int)req->nack->action, req->nack->reason);
            if (stop) {
                /* Stop: this consumer leaves; its messages go to the others. */
                rpc_unpack_free(req, &pa);
                rpc_ps_consumer_drop(k, GRPC_OK, NULL, NULL);
                if (!net_call_done(c)) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
                return;
            }
        }
        rpc_ps_group_pump(g);
    }
    rpc_unpack_free(req, &pa);
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
        rpc_ps_group_pump(pc->k->g);
    }
}

static void pread_close(net_call *c)
{
    ps_call *pc = net_call_state(c);
    if (pc && pc->k) rpc_ps_consumer_drop(pc->k, -1, NULL, NULL);
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
    if (rpc_authorize_op(ctx, c, is_update ? AUTH_OP_SUBS_UPDATE : AUTH_OP_SUBS_CREATE, NULL)) return;
    pb_alloc pa;
    CreateReq *req = rpc_unpack(c, &event_store__client__persistent_subscriptions__create_req__descriptor, msg, len, &pa,
                   "CreateReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, is_update ? "malformed UpdateReq" : "malformed CreateReq", NULL, NULL);
        return;
    }
    ps_settings set;
    char *stream = NULL;
    int is_all;
    if (rpc_ps_settings_from(c, req, is_update, &set, &stream, &is_all)) {
        rpc_unpack_free(req, &pa);
        return;
    }
    const char *gname = req->options->group_name;
    ps_group *g = rpc_ps_group_find(ctx, stream, gname);
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
        if (g->set.has_filter && !set.has_filter) rpc_ps_settings_copy_filter(&set, &g->set);
        free(stream);
        stream = NULL;
        g = rpc_ps_group_rebuild(ctx, g, &set, &err);
    } else {
        g = rpc_ps_group_new(ctx, stream, gname, &set, &err);
        stream = NULL;
        if (g) rpc_ps_group_link(ctx, g);
    }
    if (!g) {
        if (err == FACTUM_EBADREGEX) rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid filter regex", NULL, NULL);
        else rpc_fail_store(c, err, NULL, 0, -1);
        goto out;
    }
    rpc_ps_group_pump(g);
    rpc_ps_config_save(ctx, c); /* answers c when durable (PS-5) */
out:
    free(stream);
    rpc_ps_settings_free(&set);
    rpc_unpack_free(req, &pa);
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

/* Drop g's consumers, unlink and free it (its definition is saved next). */
static void group_delete(rpc_ctx *ctx, ps_group *g)
{
    while (g->consumers)
        rpc_ps_consumer_drop(g->consumers, GRPC_CANCELLED, "The persistent subscription was deleted.",
                             "persistent-subscription-dropped");
    rpc_ps_group_unlink(ctx, g);
    rpc_ps_group_free(g);
}

static void delete_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_DELETE, NULL)) return;
    pb_alloc pa;
    EventStore__Client__PersistentSubscriptions__DeleteReq *req =
        rpc_unpack(c, &event_store__client__persistent_subscriptions__delete_req__descriptor, msg, len, &pa,
                   "DeleteReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed DeleteReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__DeleteReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = rpc_ps_group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            char what[MAX_GROUP_NAME + FACTUM_MAX_STREAM_LEN + 4];
            snprintf(what, sizeof what, "%s::%s", stream ? stream : "$all", o->group_name);
            group_delete(ctx, g);
            rpc_ps_config_save(ctx, c);
            rpc_audit(ctx, c, "subscription-group-deleted", what, NULL);
        }
        free(stream);
    }
    rpc_unpack_free(req, &pa);
}

static void getinfo_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_STATISTICS, NULL)) return;
    pb_alloc pa;
    EventStore__Client__PersistentSubscriptions__GetInfoReq *req =
        rpc_unpack(c, &event_store__client__persistent_subscriptions__get_info_req__descriptor, msg, len, &pa,
                   "GetInfoReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed GetInfoReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__GetInfoReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__GET_INFO_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = rpc_ps_group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            SubInfo si;
            info_store is;
            EventStore__Client__PersistentSubscriptions__GetInfoResp resp =
                EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__GET_INFO_RESP__INIT;
            if (rpc_ps_info_fill(g, &si, &is) == 0) {
                resp.subscription_info = &si;
                if (rpc_send(ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
            } else {
                rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            }
            rpc_ps_info_free(&is);
        }
        free(stream);
    }
    rpc_unpack_free(req, &pa);
}

static void list_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_STATISTICS, NULL)) return;
    pb_alloc pa;
    EventStore__Client__PersistentSubscriptions__ListReq *req =
        rpc_unpack(c, &event_store__client__persistent_subscriptions__list_req__descriptor, msg, len, &pa,
                   "ListReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
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
        rc = rpc_ps_info_fill(g, &sis[k], &iss[k]);
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
    for (size_t i = 0; iss && i < k; i++) rpc_ps_info_free(&iss[i]);
    free(sis);
    free(sip);
    free(iss);
    free(stream);
    rpc_unpack_free(req, &pa);
}

/* Replay [parked_first, parked_next), or stop_at (>= 0) of them; a replay
 * in progress keeps its position (what it has not read yet is still to
 * come) and may only be extended. */
static void replay_parked(ps_group *g, int64_t stop_at)
{
    uint64_t end = g->parked_next;
    if (stop_at >= 0 && g->parked_first + (uint64_t)stop_at < end) end = g->parked_first + (uint64_t)stop_at;
    if (g->replay_next < g->parked_first) g->replay_next = g->parked_first;
    if (end > g->replay_end) g->replay_end = end;
    rpc_ps_group_pump(g);
}

int rpc_ps_replay_parked(rpc_ctx *ctx, const char *stream, const char *group, int64_t stop_at)
{
    ps_group *g = rpc_ps_group_find(ctx, stream, group);
    if (!g) return FACTUM_ENOTFOUND;
    replay_parked(g, stop_at);
    return 0;
}

static void replay_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_REPLAY_PARKED, NULL)) return;
    pb_alloc pa;
    EventStore__Client__PersistentSubscriptions__ReplayParkedReq *req =
        rpc_unpack(c, &event_store__client__persistent_subscriptions__replay_parked_req__descriptor, msg, len, &pa,
                   "ReplayParkedReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed ReplayParkedReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__ReplayParkedReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__REPLAY_PARKED_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = rpc_ps_group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            replay_parked(g, o->stop_at_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__REPLAY_PARKED_REQ__OPTIONS__STOP_AT_OPTION_STOP_AT
                                 ? o->stop_at
                                 : -1);
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        }
        free(stream);
    }
    rpc_unpack_free(req, &pa);
}

/* Forget the parked messages [parked_first, parked_next), or the first
 * stop_at (>= 0) of them: the parked stream's $tb moves past them. */
static void truncate_parked(ps_group *g, int64_t stop_at)
{
    uint64_t tb = g->parked_next;
    if (stop_at >= 0 && g->parked_first + (uint64_t)stop_at < tb) tb = g->parked_first + (uint64_t)stop_at;
    if (tb > g->parked_first) {
        g->parked_first = tb;
        if (g->replay_next < tb) g->replay_next = tb;
        if (g->replay_end < tb) g->replay_end = tb;
        rpc_ps_tb_sync(g, 1);
    }
}

int rpc_ps_truncate_parked(rpc_ctx *ctx, const char *stream, const char *group, int64_t stop_at)
{
    ps_group *g = rpc_ps_group_find(ctx, stream, group);
    if (!g) return FACTUM_ENOTFOUND;
    truncate_parked(g, stop_at);
    return 0;
}

static void truncate_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_REPLAY_PARKED, NULL)) return;
    pb_alloc pa;
    EventStore__Client__PersistentSubscriptions__TruncateParkedReq *req =
        rpc_unpack(c, &event_store__client__persistent_subscriptions__truncate_parked_req__descriptor, msg, len, &pa,
                   "TruncateParkedReq");
    if (!req || !req->options) {
        if (req) rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed TruncateParkedReq", NULL, NULL);
        return;
    }
    const EventStore__Client__PersistentSubscriptions__TruncateParkedReq__Options *o = req->options;
    char *stream;
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__TRUNCATE_PARKED_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
    if (target_of(c, is_stream, is_stream ? o->stream_identifier : NULL, o->group_name, &stream) == 0) {
        ps_group *g = rpc_ps_group_find(ctx, stream, o->group_name);
        if (!g) {
            fail_missing(c, stream ? stream : "$all", o->group_name);
        } else {
            truncate_parked(g, o->stop_at_option_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__TRUNCATE_PARKED_REQ__OPTIONS__STOP_AT_OPTION_STOP_AT
                                   ? o->stop_at
                                   : -1);
            EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
            if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        }
        free(stream);
    }
    rpc_unpack_free(req, &pa);
}

static void restart_message(net_call *c, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    rpc_ctx *ctx = uctx(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SUBS_RESTART, NULL)) return;
    /* Rebuild every group from its durable state. */
    size_t n = 0;
    for (ps_group *g = ctx->ps->groups; g; g = g->next) n++;
    uint64_t *ids = calloc(n ? n : 1, sizeof *ids);
    size_t k = 0;
    for (ps_group *g = ctx->ps->groups; g && ids; g = g->next) ids[k++] = g->id;
    for (size_t i = 0; i < k; i++) {
        ps_group *g = rpc_ps_group_by_id(ctx, ids[i]);
        int err;
        if (g && (g = rpc_ps_group_rebuild(ctx, g, NULL, &err))) rpc_ps_group_pump(g);
    }
    free(ids);
    rpc_audit(ctx, c, "subscriptions-restarted", "", NULL);
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
}

/* ---- the HTTP API's changes -------------------------------------------- */

int rpc_ps_change(rpc_ctx *ctx, int op, const char *stream, const char *group, const char *body, size_t len,
                  char *why, size_t cap, rpc_ps_saved_fn done, void *arg)
{
    snprintf(why, cap, "%s", "");
    if (!group || !group[0] || strlen(group) > MAX_GROUP_NAME) {
        snprintf(why, cap, "a group name of 1 to %d bytes is required", MAX_GROUP_NAME);
        return FACTUM_EINVAL;
    }
    if (stream && (factum_check_stream_name(stream, strlen(stream)) || rpc_vstream_is(stream, strlen(stream)))) {
        snprintf(why, cap, "invalid stream name");
        return FACTUM_EBADNAME;
    }
    ps_group *g = rpc_ps_group_find(ctx, stream, group);
    if (op == RPC_PS_CREATE ? g != NULL : g == NULL) {
        snprintf(why, cap, "%s", g ? "the consumer group exists already" : "no such consumer group");
        return g ? FACTUM_EEXISTS : FACTUM_ENOTFOUND;
    }
    if (op == RPC_PS_DELETE) {
        group_delete(ctx, g);
    } else {
        ps_settings set;
        int err = 0;
        if (rpc_ps_settings_from_json(body, len, stream == NULL, op == RPC_PS_UPDATE ? &g->set : NULL, &set, why,
                                      cap))
            return FACTUM_EINVAL;
        if (op == RPC_PS_UPDATE) {
            g = rpc_ps_group_rebuild(ctx, g, &set, &err);
        } else {
            char *name = stream ? strdup(stream) : NULL;
            if (stream && !name) {
                rpc_ps_settings_free(&set);
                return -ENOMEM;
            }
            if ((g = rpc_ps_group_new(ctx, name, group, &set, &err))) rpc_ps_group_link(ctx, g);
        }
        rpc_ps_settings_free(&set);
        if (!g) {
            if (err == FACTUM_EBADREGEX) snprintf(why, cap, "invalid filter regex");
            return err ? err : -ENOMEM;
        }
        rpc_ps_group_pump(g);
    }
    /* The change is made: its definition is written next (PS-5). Without
     * memory for that write, done still hears of it (never silently). */
    int rc = rpc_ps_config_save_fn(ctx, done, arg);
    if (rc) done(arg, rc);
    return 0;
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
