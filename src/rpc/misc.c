/*
 * misc.c - the small services of a single node: ServerFeatures (what is
 * implemented, with the feature tags clients check), Gossip.Read (this one
 * node as Leader, so `+discover` connection strings work), Monitoring.Stats
 * and Operations (Shutdown, StartScavenge, StopScavenge); and the table of
 * every method factumd serves.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "kurrentdb/gossip.pb-c.h"
#include "kurrentdb/monitoring.pb-c.h"
#include "kurrentdb/operations.pb-c.h"
#include "kurrentdb/serverfeatures.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"
#include "rpc/streams_int.h"

/* v2.c */
extern const net_method rpc_v2_methods[];
extern const size_t rpc_v2_n;
/* projections.c */
extern const net_method rpc_projections_methods[];
extern const size_t rpc_projections_n;
extern const net_method rpc_users_methods[];
extern const size_t rpc_users_n;
/* rm_service.c */
extern const net_method rpc_rm_methods[];
extern const size_t rpc_rm_n;

#define N_TABLES 7

/* The state of a unary call: just whether the request arrived. */
static int unary_start(net_call *c, void *svc)
{
    net_call_set_state(c, svc);
    return 0;
}

/* A unary call whose request never came. */
static void unary_half_close(net_call *c)
{
    if (!net_call_done(c)) rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request message is missing", NULL, NULL);
}

/* ---- ServerFeatures -------------------------------------------------- */

static void features_message(net_call *c, const uint8_t *msg, size_t len);

static const net_method *all_methods[N_TABLES];
static size_t all_counts[N_TABLES];

static void features_message(net_call *c, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    rpc_ctx *ctx = net_call_state(c);
    EventStore__Client__ServerFeatures__SupportedMethods sm = EVENT_STORE__CLIENT__SERVER_FEATURES__SUPPORTED_METHODS__INIT;
    EventStore__Client__ServerFeatures__SupportedMethod m[64], *mp[64];
    char names[64][2][128];
    static char *read_features[] = {"position", "events"};
    static char *batch_features[] = {"deadline_duration"};
    static char *ps_features[] = {"stream", "all"};
    static char *create_features[] = {"track_emitted_streams"};
    size_t n = 0;
    for (int t = 0; t < N_TABLES; t++)
        for (size_t i = 0; i < all_counts[t] && n < 64; i++) {
            const char *path = all_methods[t][i].path;
            const char *svc, *meth;
            size_t sl, ml;
            if (grpc_split_path(path, strlen(path), &svc, &sl, &meth, &ml)) continue;
            /* Only the client-facing services, as KurrentDB lists them. */
            if (!memmem(svc, sl, "client", 6) && !memmem(svc, sl, "kurrentdb.protocol", 18)) continue;
            event_store__client__server_features__supported_method__init(&m[n]);
            snprintf(names[n][0], sizeof names[n][0], "%.*s", (int)ml, meth);
            snprintf(names[n][1], sizeof names[n][1], "%.*s", (int)sl, svc);
            for (char *p = names[n][0]; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            for (char *p = names[n][1]; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            m[n].method_name = names[n][0];
            m[n].service_name = names[n][1];
            if (!strcmp(names[n][1], "event_store.client.streams.streams") && !strcmp(names[n][0], "read")) {
                m[n].n_features = 2;
                m[n].features = read_features;
            } else if (!strcmp(names[n][1], "event_store.client.streams.streams") &&
                       !strcmp(names[n][0], "batchappend")) {
                m[n].n_features = 1;
                m[n].features = batch_features;
            } else if (!strcmp(names[n][1], "event_store.client.persistent_subscriptions.persistentsubscriptions") &&
                       strcmp(names[n][0], "restartsubsystem")) {
                m[n].n_features = 2;
                m[n].features = ps_features;
            } else if (!strcmp(names[n][1], "event_store.client.projections.projections") &&
                       !strcmp(names[n][0], "create")) {
                m[n].n_features = 1;
                m[n].features = create_features;
            }
            mp[n] = &m[n];
            n++;
        }
    sm.n_methods = n;
    sm.methods = mp;
    sm.event_store_server_version = RPC_SERVER_VERSION;
    if (rpc_send(ctx, c, &sm.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
    else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
}

/* ---- Gossip ----------------------------------------------------------- */

static void gossip_message(net_call *c, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    rpc_ctx *ctx = net_call_state(c);
    EventStore__Client__Gossip__ClusterInfo ci = EVENT_STORE__CLIENT__GOSSIP__CLUSTER_INFO__INIT;
    EventStore__Client__Gossip__MemberInfo mi = EVENT_STORE__CLIENT__GOSSIP__MEMBER_INFO__INIT;
    EventStore__Client__Gossip__EndPoint ep = EVENT_STORE__CLIENT__GOSSIP__END_POINT__INIT;
    EventStore__Client__UUID id = EVENT_STORE__CLIENT__UUID__INIT;
    char idt[37];
    factum_uuid_format(ctx->instance_id, idt);
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
    id.string = idt;
    /* The address the client reached us by, unless one is configured. */
    char host[256];
    snprintf(host, sizeof host, "%s", ctx->advertise_host);
    const char *authority = net_call_header(c, ":authority");
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) {
        snprintf(host, sizeof host, "%s", "127.0.0.1");
        if (authority) {
            snprintf(host, sizeof host, "%s", authority);
            char *colon = strrchr(host, ':');
            if (colon && !strchr(colon, ']')) *colon = 0;
        }
    }
    ep.address = host;
    ep.port = (uint32_t)ctx->advertise_port;
    mi.instance_id = &id;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mi.time_stamp = rpc_ticks((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    mi.state = EVENT_STORE__CLIENT__GOSSIP__MEMBER_INFO__VNODE_STATE__Leader;
    mi.is_alive = 1;
    mi.http_end_point = &ep;
    EventStore__Client__Gossip__MemberInfo *mp = &mi;
    ci.n_members = 1;
    ci.members = &mp;
    if (rpc_send(ctx, c, &ci.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
    else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
}

/* ---- Monitoring.Stats -------------------------------------------------- */

typedef struct stat_list {
    char **keys, **vals;
    size_t n, cap;
    int oom;
} stat_list;

static void stat_add(stat_list *l, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stat_add(stat_list *l, const char *key, const char *fmt, ...)
{
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **k = realloc(l->keys, cap * sizeof *k), **v = k ? realloc(l->vals, cap * sizeof *v) : NULL;
        if (k) l->keys = k;
        if (!k || !v) {
            l->oom = 1;
            return;
        }
        l->vals = v;
        l->cap = cap;
    }
    char val[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    l->keys[l->n] = strdup(key);
    l->vals[l->n] = strdup(val);
    if (!l->keys[l->n] || !l->vals[l->n]) {
        free(l->keys[l->n]);
        free(l->vals[l->n]);
        l->oom = 1;
        return;
    }
    l->n++;
}

/* Subscription and group lag as stats entries (es-subscription-<stream>-<id>-lag...,
 * es-persistentSubscription-<stream>::<group>-lag...). */
static void stat_lag(void *arg, const char *kind, const char *source, const char *name, uint64_t events,
                     double seconds)
{
    stat_list *l = arg;
    int group = !strcmp(kind, "group");
    char key[FACTUM_MAX_STREAM_LEN + 400];
    snprintf(key, sizeof key, "es-%s-%s%s%s-lagEvents", group ? "persistentSubscription" : "subscription", source,
             group ? "::" : "-", name);
    stat_add(l, key, "%" PRIu64, events);
    snprintf(key, sizeof key, "es-%s-%s%s%s-lagSeconds", group ? "persistentSubscription" : "subscription", source,
             group ? "::" : "-", name);
    stat_add(l, key, "%.3f", seconds);
}

static void stats_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = net_call_state(c);
    pb_alloc pa;
    EventStore__Client__Monitoring__StatsReq *req =
        rpc_unpack(c, &event_store__client__monitoring__stats_req__descriptor, msg, len, &pa, "StatsReq");
    if (!req) return;
    rpc_unpack_free(req, &pa);
    factum_stats st;
    factum_store_get_stats(ctx->store, &st);
    net_stats ns;
    net_server_stats(ctx->net, &ns);
    stat_list l = {0};
#define STAT(k, v) stat_add(&l, (k), "%" PRIu64, (uint64_t)(v))
    STAT("es-writer-lastPosition", st.last_position);
    STAT("es-writer-appends", st.appends);
    STAT("es-writer-eventsWritten", st.events_written);
    STAT("es-writer-bytesWritten", st.bytes_written);
    STAT("es-writer-flushes", st.fsyncs);
    STAT("es-writer-groupCommits", st.groups);
    STAT("es-index-tables", st.index_tables);
    STAT("es-tcp-connections", ns.connections);
    STAT("es-grpc-calls", ns.calls);
    STAT("es-grpc-bytesReceived", ns.bytes_in);
    STAT("es-grpc-bytesSent", ns.bytes_out);
    STAT("es-reads", ctx->st.reads);
    STAT("es-readEvents", ctx->st.read_events);
    STAT("es-subscriptions", ctx->st.subs_active);
    STAT("es-subscriptionEvents", ctx->st.sub_events);
#undef STAT
    rpc_lag_each(ctx, stat_lag, &l);
    EventStore__Client__Monitoring__StatsResp resp = EVENT_STORE__CLIENT__MONITORING__STATS_RESP__INIT;
    EventStore__Client__Monitoring__StatsResp__StatsEntry *e = calloc(l.n ? l.n : 1, sizeof *e);
    EventStore__Client__Monitoring__StatsResp__StatsEntry **ep = calloc(l.n ? l.n : 1, sizeof *ep);
    if (l.oom || !e || !ep) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
    } else {
        for (size_t i = 0; i < l.n; i++) {
            event_store__client__monitoring__stats_resp__stats_entry__init(&e[i]);
            e[i].key = l.keys[i];
            e[i].value = l.vals[i];
            ep[i] = &e[i];
        }
        resp.n_stats = l.n;
        resp.stats = ep;
        if (rpc_send(ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.keys[i]);
        free(l.vals[i]);
    }
    free(l.keys);
    free(l.vals);
    free(e);
    free(ep);
}

/* ---- Operations.Shutdown ----------------------------------------------- */

static void shutdown_message(net_call *c, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    rpc_ctx *ctx = net_call_state(c);
    if (rpc_authorize_op(ctx, c, AUTH_OP_NODE_SHUTDOWN, NULL)) return;
    rpc_audit(ctx, c, "shutdown", "", NULL);
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (rpc_send(ctx, c, &e.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
    if (ctx->shutdown) ctx->shutdown(ctx->shutdown_arg);
}

/* ---- Operations.StartScavenge / StopScavenge ---------------------------- */

static void scavenge_reply(rpc_ctx *ctx, net_call *c, const char *id, int result)
{
    EventStore__Client__Operations__ScavengeResp r = EVENT_STORE__CLIENT__OPERATIONS__SCAVENGE_RESP__INIT;
    r.scavenge_id = (char *)id;
    r.scavenge_result = result;
    if (rpc_send(ctx, c, &r.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
}

/* KurrentDB's options (thread_count, start_from_chunk) do not apply: one
 * scavenge thread, every sealed segment before the point (the threshold,
 * throttle and seal of POST /admin/scavenge take their defaults). */
static void start_scavenge_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = net_call_state(c);
    pb_alloc pa;
    EventStore__Client__Operations__StartScavengeReq *req =
        rpc_unpack(c, &event_store__client__operations__start_scavenge_req__descriptor, msg, len, &pa,
                   "StartScavengeReq");
    if (!req) return;
    rpc_unpack_free(req, &pa);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SCAVENGE_START, NULL)) return;
    char id[37];
    int rc = factum_scavenge_start(ctx->store, NULL, id); /* its thread appends the point: no wait here */
    if (rc == FACTUM_EEXISTS) {
        scavenge_reply(ctx, c, id, EVENT_STORE__CLIENT__OPERATIONS__SCAVENGE_RESP__SCAVENGE_RESULT__InProgress);
        return;
    }
    if (rc) {
        rpc_fail(c, GRPC_UNAVAILABLE, factum_strerror(rc), NULL, NULL);
        return;
    }
    rpc_audit(ctx, c, "scavenge-started", id, NULL);
    scavenge_reply(ctx, c, id, EVENT_STORE__CLIENT__OPERATIONS__SCAVENGE_RESP__SCAVENGE_RESULT__Started);
}

static void stop_scavenge_message(net_call *c, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = net_call_state(c);
    pb_alloc pa;
    EventStore__Client__Operations__StopScavengeReq *req =
        rpc_unpack(c, &event_store__client__operations__stop_scavenge_req__descriptor, msg, len, &pa,
                   "StopScavengeReq");
    if (!req) return;
    char id[37] = "";
    const char *want = req->options && req->options->scavenge_id ? req->options->scavenge_id : "";
    int ok = strlen(want) < sizeof id;
    if (ok) memcpy(id, want, strlen(want) + 1);
    rpc_unpack_free(req, &pa);
    if (rpc_authorize_op(ctx, c, AUTH_OP_SCAVENGE_STOP, NULL)) return;
    /* An empty id is no scavenge's (KurrentDB's clients always name one). */
    if (!ok || !id[0] || !strcmp(id, "current") || !strcmp(id, "last") || factum_scavenge_stop(ctx->store, id)) {
        factum_scavenge_status st;
        const char *running =
            !factum_scavenge_get_status(ctx->store, "current", &st) && st.state == FACTUM_SCAVENGE_RUNNING
                ? st.id
                : "<unknown>";
        char m[128];
        snprintf(m, sizeof m, "Scavenge not found. The currently running scavenge is %s.", running);
        rpc_fail(c, GRPC_NOT_FOUND, m, "scavenge-not-found", "scavenge-id", running, NULL);
        return;
    }
    rpc_audit(ctx, c, "scavenge-stopped", id, NULL);
    scavenge_reply(ctx, c, id, EVENT_STORE__CLIENT__OPERATIONS__SCAVENGE_RESP__SCAVENGE_RESULT__Stopped);
}

static const net_method misc_methods[] = {
    {"/event_store.client.server_features.ServerFeatures/GetSupportedMethods", unary_start, features_message,
     unary_half_close, NULL, NULL, NULL},
    {"/event_store.client.gossip.Gossip/Read", unary_start, gossip_message, unary_half_close, NULL, NULL, NULL},
    {"/event_store.client.monitoring.Monitoring/Stats", unary_start, stats_message, unary_half_close, NULL, NULL,
     NULL},
    {"/event_store.client.operations.Operations/Shutdown", unary_start, shutdown_message, unary_half_close, NULL, NULL,
     NULL},
    {"/event_store.client.operations.Operations/StartScavenge", unary_start, start_scavenge_message,
     unary_half_close, NULL, NULL, NULL},
    {"/event_store.client.operations.Operations/StopScavenge", unary_start, stop_scavenge_message, unary_half_close,
     NULL, NULL, NULL},
};

int rpc_methods(rpc_ctx *ctx, net_method **out, size_t *n)
{
    all_methods[0] = rpc_streams_methods;
    all_counts[0] = rpc_streams_n;
    all_methods[1] = misc_methods;
    all_counts[1] = sizeof misc_methods / sizeof *misc_methods;
    all_methods[2] = rpc_v2_methods;
    all_counts[2] = rpc_v2_n;
    all_methods[3] = rpc_ps_methods;
    all_counts[3] = rpc_ps_n;
    /* Without a projection manager (--run-projections None) the service is
     * not there at all, as in KurrentDB: UNIMPLEMENTED, and not listed. */
    all_methods[4] = rpc_projections_methods;
    all_counts[4] = ctx->projections ? rpc_projections_n : 0;
    all_methods[5] = rpc_users_methods;
    all_counts[5] = ctx->users ? rpc_users_n : 0;
    /* factum's own (not listed by ServerFeatures); without read models it
     * answers UNAVAILABLE saying why. */
    all_methods[6] = rpc_rm_methods;
    all_counts[6] = rpc_rm_n;
    size_t total = 0;
    for (int t = 0; t < N_TABLES; t++) total += all_counts[t];
    net_method *m = calloc(total, sizeof *m);
    if (!m) return -ENOMEM;
    size_t k = 0;
    for (int t = 0; t < N_TABLES; t++)
        for (size_t i = 0; i < all_counts[t]; i++) {
            m[k] = all_methods[t][i];
            m[k].svc = ctx;
            k++;
        }
    *out = m;
    *n = total;
    return 0;
}
