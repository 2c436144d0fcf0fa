/*
 * http.c - factumd's plain HTTP/1.1 endpoints on the gRPC port:
 *   GET /health/live   204 when the server runs (what KurrentDB's probes use)
 *   GET /info          JSON: version, state, features
 *   GET /gossip        JSON: this node as the leader (KurrentDB's shape)
 *   GET /metrics       Prometheus text format: appends, reads, bytes,
 *                      group commits, fdatasync latency, connections, calls,
 *                      subscriptions', projections' and read models' progress and lag
 *   /readmodels...     the read models (http_rm.c)
 *
 * Who may ask (KurrentDB's LegacyPolicySelectorFactory; a secure server
 * authenticates every request first, NET-8): /health/live and /info
 * anyone; /gossip and /metrics (KurrentDB's statistics) an authenticated
 * user; POST /admin/reloadconfig `$ops` and `$admins` (a user without
 * either gets 403). Anonymous gets 401 with `WWW-Authenticate: Basic
 * realm="factum"`, wrong credentials too (before this handler runs).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "auth/users.h"
#include "auth/acl.h"
#include "auth/policy.h"
#include "factum_readmodel.h"
#include "rpc/rpc.h"
#include "rpc/persistent.h"
#include "server/log.h"
#include "server/server.h"

static void info(srv_state *st, net_http_resp *r)
{
    factum_stats fs;
    factum_store_get_stats(st->store, &fs);
    r->status = 200;
    r->content_type = "application/json";
    base_buf_printf(
        &r->body,
        "{\"esVersion\":\"%s\",\"factumVersion\":\"%s\",\"state\":\"leader\",\"authentication\":{\"type\":"
        "\"%s\",\"properties\":{}},\"tls\":%s,\"features\":{\"projections\":%s,\"userManagement\":%s,"
        "\"atomPub\":false,\"readModels\":%s},\"durability\":\"%s\",\"lastPosition\":%" PRIu64 "}\n",
        RPC_SERVER_VERSION, FACTUM_VERSION_STRING, st->sec.auth ? "internal" : "insecure",
        st->sec.tls ? "true" : "false", st->proj ? "true" : "false", st->users ? "true" : "false",
        st->rm ? "true" : "false",
        fs.durability ? "relaxed" : "durable", fs.last_position);
}

/* The hash chain's head (ADR 0025), for `factum chain sign` and anchoring
 * elsewhere. */
static void chain_head(srv_state *st, net_http_resp *r)
{
    factum_chain_head h;
    char buf[FACTUM_CHAIN_JSON_MAX];
    factum_chain_get_head(st->store, &h);
    int n = factum_chain_head_json(&h, buf, sizeof buf);
    r->status = 200;
    r->content_type = "application/json";
    base_buf_append(&r->body, buf, (size_t)n);
    base_buf_append(&r->body, "\n", 1);
}

static void gossip(srv_state *st, net_http_resp *r)
{
    char id[37];
    factum_uuid_format(st->rpc.instance_id, id);
    const char *host = st->rpc.advertise_host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) host = "127.0.0.1";
    r->status = 200;
    r->content_type = "application/json";
    base_buf_printf(
        &r->body,
        "{\"members\":[{\"instanceId\":\"%s\",\"state\":\"Leader\",\"isAlive\":true,\"httpEndPointIp\":"
        "\"%s\",\"httpEndPointPort\":%d}],\"serverIp\":\"%s\",\"serverPort\":%d}\n",
        id, host, st->rpc.advertise_port, host, st->rpc.advertise_port);
}

static void metric(base_buf *b, const char *name, const char *type, const char *help, double v)
{
    base_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label(base_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            base_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            base_buf_append(b, "\\n", 2);
        else
            base_buf_append(b, v, 1);
    }
}

typedef struct lag_out {
    base_buf *b;
    int seconds; /* this pass prints the seconds, else the events */
} lag_out;

static void lag_line(void *arg, const char *kind, const char *source, const char *name, uint64_t events,
                     double seconds)
{
    lag_out *o = arg;
    int group = !strcmp(kind, "group");
    base_buf_printf(o->b, "factum_%s_lag_%s{stream=\"", group ? "persistent_subscription" : "subscription",
                    o->seconds ? "seconds" : "events");
    label(o->b, source);
    base_buf_printf(o->b, "\",%s=\"", group ? "group" : "id");
    label(o->b, name);
    if (o->seconds)
        base_buf_printf(o->b, "\"} %.6f\n", seconds);
    else
        base_buf_printf(o->b, "\"} %llu\n", (unsigned long long)events);
}

static void lag_line_subs(void *arg, const char *kind, const char *source, const char *name, uint64_t events,
                          double seconds)
{
    if (!strcmp(kind, "subscription")) lag_line(arg, kind, source, name, events, seconds);
}

static void lag_line_groups(void *arg, const char *kind, const char *source, const char *name,
                            uint64_t events, double seconds)
{
    if (!strcmp(kind, "group")) lag_line(arg, kind, source, name, events, seconds);
}

typedef struct group_out {
    base_buf *b;
    int what; /* 0 in flight, 1 parked, 2 connections */
} group_out;

static void group_line(void *arg, const char *src, const char *group, uint64_t lag_events, double lag_seconds,
                       uint64_t inflight, uint64_t parked, size_t consumers)
{
    (void)lag_events;
    (void)lag_seconds;
    group_out *o = arg;
    static const char *names[] = {"in_flight_messages", "parked_messages", "connections"};
    base_buf_printf(o->b, "factum_persistent_subscription_%s{stream=\"", names[o->what]);
    label(o->b, src);
    base_buf_append(o->b, "\",group=\"", 9);
    label(o->b, group);
    base_buf_printf(o->b, "\"} %llu\n",
                    (unsigned long long)(o->what == 0   ? inflight
                                         : o->what == 1 ? parked
                                                        : (uint64_t)consumers));
}

/* ---- projections: KurrentDB's kurrentdb_projection_* with our prefix, plus
 * position and lag ------------------------------------------------------- */

typedef struct proj_list {
    factum_projection_status *v;
    size_t n, cap;
} proj_list;

static int proj_collect(void *ctx, const factum_projection_status *ps)
{
    proj_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        factum_projection_status *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *ps;
    return 0;
}

static double proj_value(const factum_projection_status *ps, int what)
{
    switch (what) {
    case 0:
        return (double)ps->events_processed;
    case 1:
        return (double)ps->events_emitted;
    case 2:
        return ps->progress / 100.0;
    case 3:
        return ps->state == FACTUM_PROJECTION_RUNNING;
    case 4:
        return (double)ps->position;
    case 5:
        return (double)ps->checkpoint;
    case 6:
        return (double)ps->lag_events;
    case 7:
        return (double)ps->lag_ns / 1e9;
    default:
        return ps->events_per_second;
    }
}

static void projection_metrics(srv_state *st, base_buf *b)
{
    if (!st->proj) return;
    proj_list l = {0};
    factum_projections_each(st->proj, proj_collect, &l);
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"events_processed_after_restart_total", "counter",
         "Events of $all a projection has read since the start."},
        {"events_emitted_total", "counter", "Events a projection has written (links) since the start."},
        {"progress", "gauge", "How far a projection has read, 0 - 1 of the last committed position."},
        {"running", "gauge", "1 if the projection is running."},
        {"position", "gauge", "Last position of $all a projection has read."},
        {"checkpoint_position", "gauge", "Last position whose output is committed with its checkpoint."},
        {"lag_events", "gauge", "Committed events a projection has not read yet."},
        {"lag_seconds", "gauge", "Age of the oldest committed event a projection has not read yet."},
        {"events_per_second", "gauge", "Events of $all a projection read per second, over the last second or more."},
    };
    for (size_t k = 0; k < sizeof m / sizeof *m; k++) {
        base_buf_printf(b, "# HELP factum_projection_%s %s\n# TYPE factum_projection_%s %s\n", m[k].name,
                        m[k].help, m[k].name, m[k].type);
        for (size_t i = 0; i < l.n; i++) {
            base_buf_printf(b, "factum_projection_%s{projection=\"", m[k].name);
            label(b, l.v[i].name);
            base_buf_printf(b, "\"} %.17g\n", proj_value(&l.v[i], (int)k));
        }
    }
    static const char *states[] = {"Stopped", "Running", "Faulted", "Stopping", "Completed"};
    base_buf_printf(b, "# HELP factum_projection_status 1 if the projection is in that state.\n"
                       "# TYPE factum_projection_status gauge\n");
    for (size_t i = 0; i < l.n; i++)
        for (int s = 0; s < 5; s++) {
            base_buf_append(b, "factum_projection_status{projection=\"", 37);
            label(b, l.v[i].name);
            base_buf_printf(b, "\",status=\"%s\"} %d\n", states[s], l.v[i].state == s);
        }
    free(l.v);
}

/* ---- read models: position, lag, counters and state per read model ---------- */

typedef struct rm_list {
    factum_readmodel_status *v;
    size_t n, cap;
} rm_list;

static int rm_collect(void *ctx, const factum_readmodel_status *rs)
{
    rm_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        factum_readmodel_status *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *rs;
    return 0;
}

static double rm_value(const factum_readmodel_status *rs, int what)
{
    switch (what) {
    case 0: return (double)rs->position;
    case 1: return (double)rs->lag_events;
    case 2: return (double)rs->lag_ns / 1e9;
    case 3: return (double)rs->applied;
    case 4: return (double)rs->parked;
    default: return (double)rs->skipped;
    }
}

static void readmodel_metrics(srv_state *st, base_buf *b)
{
    if (!st->rm) return;
    rm_list l = {0};
    factum_readmodels_each(st->rm, rm_collect, &l);
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"position", "gauge", "Position of $all up to which a read model has applied every event."},
        {"lag_events", "gauge", "Committed events a read model has not applied yet."},
        {"lag_seconds", "gauge", "Age of the oldest committed event a read model has not applied yet."},
        {"applied_total", "counter", "Events that ran a read model's statements, since factumd started."},
        {"parked_total", "counter", "Events a read model parked (onError: park), since factumd started."},
        {"skipped_total", "counter", "Events a read model skipped (onError: skip), since factumd started."},
    };
    for (size_t k = 0; k < sizeof m / sizeof *m; k++) {
        base_buf_printf(b, "# HELP factum_readmodel_%s %s\n# TYPE factum_readmodel_%s %s\n", m[k].name, m[k].help,
                        m[k].name, m[k].type);
        for (size_t i = 0; i < l.n; i++) {
            base_buf_printf(b, "factum_readmodel_%s{readmodel=\"", m[k].name);
            label(b, l.v[i].name);
            base_buf_printf(b, "\"} %.17g\n", rm_value(&l.v[i], (int)k));
        }
    }
    static const char *states[] = {"running", "paused", "faulted", "starting"};
    base_buf_printf(b, "# HELP factum_readmodel_state 1 if the read model is in that state.\n"
                       "# TYPE factum_readmodel_state gauge\n");
    for (size_t i = 0; i < l.n; i++)
        for (int s = 0; s < 4; s++) {
            base_buf_append(b, "factum_readmodel_state{readmodel=\"", 34);
            label(b, l.v[i].name);
            base_buf_printf(b, "\",state=\"%s\"} %d\n", states[s], l.v[i].state == s);
        }
    free(l.v);
}

/* Per subscription and group: lag in events and seconds; groups' in-flight,
 * parked and connection counts. */
static void lag_metrics(srv_state *st, base_buf *b)
{
    static const char *help[2][2] = {
        {"Committed events a catch-up subscription has not yet been sent.",
         "Age of the oldest committed event a catch-up subscription has not yet been sent."},
        {"Committed events of a consumer group's source not yet acknowledged (or not yet read).",
         "Age of the oldest event a consumer group holds unacknowledged (or has not read yet)."}};
    for (int g = 0; g < 2; g++)
        for (int sec = 0; sec < 2; sec++) {
            const char *n = g ? "factum_persistent_subscription_lag_" : "factum_subscription_lag_";
            base_buf_printf(b, "# HELP %s%s %s\n# TYPE %s%s gauge\n", n, sec ? "seconds" : "events",
                            help[g][sec], n, sec ? "seconds" : "events");
            lag_out o = {b, sec};
            if (!g) {
                /* only the subscriptions: filter the kind */
                rpc_lag_each(&st->rpc, lag_line_subs, &o);
            } else {
                rpc_lag_each(&st->rpc, lag_line_groups, &o);
            }
        }
    static const char *ghelp[] = {"Messages a consumer group has sent and not yet had acknowledged.",
                                  "Events in a consumer group's parked-messages stream.",
                                  "Consumers connected to a consumer group."};
    static const char *gname[] = {"in_flight_messages", "parked_messages", "connections"};
    for (int w = 0; w < 3; w++) {
        base_buf_printf(
            b,
            "# HELP factum_persistent_subscription_%s %s\n# TYPE factum_persistent_subscription_%s gauge\n",
            gname[w], ghelp[w], gname[w]);
        group_out o = {b, w};
        rpc_ps_each(&st->rpc, group_line, &o);
    }
}

static void metrics(srv_state *st, net_http_resp *r)
{
    factum_stats fs;
    factum_store_get_stats(st->store, &fs);
    net_stats ns;
    net_server_stats(st->net, &ns);
    const rpc_stats *rs = &st->rpc.st;
    base_buf *b = &r->body;
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    metric(b, "factum_log_last_position", "gauge", "Last committed global position.",
           (double)fs.last_position);
    metric(b, "factum_log_bytes", "gauge", "Bytes of log in use.", (double)fs.log_bytes);
    metric(b, "factum_appends_total", "counter", "Append requests completed by the store.",
           (double)fs.appends);
    metric(b, "factum_events_written_total", "counter", "Events written.", (double)fs.events_written);
    metric(b, "factum_bytes_written_total", "counter", "Log bytes written.", (double)fs.bytes_written);
    metric(b, "factum_group_commits_total", "counter", "Group commits (one write, one fdatasync each).",
           (double)fs.groups);
    metric(b, "factum_group_commit_max_appends", "gauge", "Largest group commit so far, in appends.",
           (double)fs.group_events_max);
    metric(b, "factum_fsync_total", "counter", "fdatasync calls on the log.", (double)fs.fsyncs);
    metric(b, "factum_fsync_seconds_total", "counter", "Time spent in fdatasync on the log.",
           (double)fs.fsync_ns_total / 1e9);
    metric(b, "factum_fsync_seconds_max", "gauge", "Longest fdatasync on the log.",
           (double)fs.fsync_ns_max / 1e9);
    factum_scavenge_status sv;
    int have_sv = !factum_scavenge_get_status(st->store, "last", &sv);
    metric(b, "factum_scavenge_running", "gauge", "1 while a scavenge runs.",
           have_sv && sv.state == FACTUM_SCAVENGE_RUNNING ? 1.0 : 0.0);
    metric(b, "factum_scavenge_segments_done", "gauge",
           "Segments the running or last scavenge since the start has looked at.", have_sv ? (double)sv.segment : 0);
    metric(b, "factum_scavenge_segments", "gauge", "Segments before the running or last scavenge's point.",
           have_sv ? (double)sv.segments : 0);
    metric(b, "factum_scavenge_space_saved_bytes", "gauge",
           "Bytes the running or last scavenge since the start gave back (its compacted files, before minus after).",
           have_sv && sv.bytes_before > sv.bytes_after ? (double)(sv.bytes_before - sv.bytes_after) : 0);
    factum_archive_status ar;
    if (!factum_archive_get_status(st->store, &ar) && ar.enabled) {
        metric(b, "factum_archive_segments_local_only", "gauge", "Sealed segments not archived yet.",
               (double)ar.local_only);
        metric(b, "factum_archive_segments_archived", "gauge", "Sealed segments archived, the local file kept.",
               (double)ar.archived);
        metric(b, "factum_archive_segments_archive_only", "gauge",
               "Sealed segments read from the archive, the local file dropped.", (double)ar.archive_only);
        metric(b, "factum_archive_local_bytes", "gauge", "Bytes of sealed segments' local files.",
               (double)ar.bytes_local);
        metric(b, "factum_archive_archived_bytes", "gauge", "Bytes of sealed segments' archived copies.",
               (double)ar.bytes_archived);
        metric(b, "factum_archive_copied_bytes_total", "counter", "Bytes the archiver copied since the start.",
               (double)ar.bytes_copied);
        metric(b, "factum_archive_failing", "gauge", "1 while the archiver's last pass failed (see the log).",
               ar.last_error ? 1.0 : 0.0);
    }
    metric(b, "factum_commit_level", "gauge",
           "Who makes appends' fdatasyncs (--commit-mode): 0 the writer thread, 1 the event loop for appends "
           "that come alone, 2 the event loop for all, 3 the event loop through io_uring.",
           (double)rpc_commit_now(&st->rpc));
    metric(b, "factum_commit_level_changes_total", "counter",
           "Times --commit-mode auto changed factum_commit_level.", (double)st->rpc.commit_changes);
    metric(b, "factum_index_tables", "gauge", "Index tables on disk.", (double)fs.index_tables);
    metric(b, "factum_memtable_entries", "gauge", "Index entries in memory.", (double)fs.memtable_entries);
    metric(b, "factum_store_failed", "gauge", "1 if the store stopped after an I/O error.",
           (double)fs.failed);
    if (st->users) {
        auth_users_stats as;
        auth_users_get_stats(st->users, &as);
        metric(b, "factum_users", "gauge", "Users (src/auth/users.h).", (double)as.users);
        metric(b, "factum_auth_cache_hits_total", "counter", "Calls whose credentials were found verified in the cache.",
               (double)as.cache_hits);
        metric(b, "factum_auth_cache_misses_total", "counter", "Calls whose credentials were not in the cache.",
               (double)as.cache_misses);
        metric(b, "factum_auth_memo_hits_total", "counter",
               "Calls decided by their connection's memo of the credentials it used last (before the cache).",
               (double)as.memo_hits);
        metric(b, "factum_auth_cache_entries", "gauge", "Verified credentials cached.", (double)as.cache_entries);
        metric(b, "factum_auth_verifications_total", "counter", "Password verifications run (key derivations).",
               (double)as.verifications);
        metric(b, "factum_auth_failures_total", "counter", "Calls and requests refused as unauthenticated.",
               (double)as.failures);
        metric(b, "factum_auth_rate_limited_total", "counter",
               "Logins refused unchecked: their source had no failed-login budget left.", (double)as.rate_limited);
        metric(b, "factum_auth_busy_total", "counter", "Logins refused because the password workers' queue was full.",
               (double)as.busy);
        metric(b, "factum_auth_certificate_logins_total", "counter", "Calls authenticated by a client certificate.",
               (double)as.cert_logins);
    }
    metric(b, "factum_grpc_appends_total", "counter", "Appends served over gRPC.", (double)rs->appends);
    metric(b, "factum_grpc_append_events_total", "counter", "Events appended over gRPC.",
           (double)rs->append_events);
    metric(b, "factum_grpc_append_bytes_total", "counter", "Event bytes appended over gRPC.",
           (double)rs->append_bytes);
    metric(b, "factum_grpc_append_errors_total", "counter", "Appends that failed.",
           (double)rs->append_errors);
    metric(b, "factum_grpc_reads_total", "counter", "Read calls.", (double)rs->reads);
    metric(b, "factum_grpc_read_events_total", "counter", "Events sent by reads.", (double)rs->read_events);
    metric(b, "factum_grpc_read_bytes_total", "counter", "Event bytes sent by reads.",
           (double)rs->read_bytes);
    metric(b, "factum_reads_off_loop_total", "counter",
           "Store reads (pages of Read calls, catch-ups, parked replays) handed to the reader threads.",
           (double)rs->reads_off_loop);
    metric(b, "factum_subscriptions", "gauge", "Catch-up subscriptions open.", (double)rs->subs_active);
    metric(b, "factum_subscriptions_total", "counter", "Catch-up subscriptions started.",
           (double)rs->subs_total);
    metric(b, "factum_subscription_events_total", "counter", "Events sent to catch-up subscriptions.",
           (double)rs->sub_events);
    metric(b, "factum_subscription_caught_up_total", "counter",
           "Subscriptions that reached the head (caught_up sent).", (double)rs->sub_caught_up);
    metric(b, "factum_subscription_fell_behind_total", "counter",
           "Live subscriptions that fell more than --subscription-live-lag behind (fell_behind sent).",
           (double)rs->sub_fell_behind);
    metric(b, "factum_subscription_checkpoints_total", "counter",
           "Checkpoints sent to filtered subscriptions.", (double)rs->sub_checkpoints);
    metric(b, "factum_subscription_tail_events_total", "counter",
           "Events read once into the shared tail of live $all subscriptions.", (double)rs->sub_tail_read);
    metric(b, "factum_subscription_tail_packed_total", "counter",
           "Event messages packed by the shared tail (once per event and variant).", (double)rs->sub_tail_packed);
    metric(b, "factum_subscription_tail_copies_total", "counter",
           "Events sent to subscriptions as copies of the shared tail's messages.", (double)rs->sub_tail_copies);
    metric(b, "factum_events_refreshed_total", "counter",
           "Events held across a scavenge's swap of their segment (a slow client's page, a consumer group's "
           "messages, a subscription's items) and read again by position.",
           (double)rs->refreshed_events);
    metric(b, "factum_subscription_tail_bytes", "gauge", "Packed message bytes held by the shared tail.",
           (double)rs->sub_tail_bytes);
    metric(b, "process_start_time_seconds", "gauge", "When factumd started, in seconds since the Unix epoch.",
           (double)st->started_ns / 1e9);
    metric(b, "factum_connections", "gauge", "Open client connections.", (double)ns.connections);
    metric(b, "factum_connections_total", "counter", "Client connections accepted.",
           (double)ns.connections_total);
    metric(b, "factum_grpc_calls", "gauge", "gRPC calls in progress.", (double)ns.calls);
    metric(b, "factum_grpc_calls_total", "counter", "gRPC calls started.", (double)ns.calls_total);
    metric(b, "factum_network_bytes_received_total", "counter", "Bytes received.", (double)ns.bytes_in);
    metric(b, "factum_network_bytes_sent_total", "counter", "Bytes sent.", (double)ns.bytes_out);
    metric(b, "factum_protocol_errors_total", "counter", "Malformed frames or messages from clients.",
           (double)ns.protocol_errors);
    metric(b, "factum_client_memory_bytes", "gauge",
           "Memory held for clients: buffers, requests, queued answers (--max-client-memory).",
           (double)ns.mem);
    metric(b, "factum_client_memory_peak_bytes", "gauge", "The most memory held for clients since start.",
           (double)ns.mem_peak);
    metric(b, "factum_client_memory_limit_bytes", "gauge", "--max-client-memory.", (double)ns.mem_limit);
    metric(b, "factum_connections_refused_total", "counter",
           "Connections refused at --max-connections or with the memory budget spent.",
           (double)ns.connections_refused);
    metric(b, "factum_connections_evicted_total", "counter",
           "Connections closed because clients held more than --max-client-memory (the largest first).",
           (double)ns.evictions);
    metric(b, "factum_memory_refusals_total", "counter",
           "Requests refused because their connection was at --max-connection-memory.",
           (double)ns.refused_charges);
    metric(b, "factum_request_timeouts_total", "counter",
           "Incomplete requests ended after --request-timeout-ms without progress.", (double)ns.timeouts);
    metric(b, "factum_tls_handshakes_total", "counter", "TLS handshakes completed.", (double)ns.tls_handshakes);
    metric(b, "factum_tls_failures_total", "counter",
           "TLS handshakes that failed, and cleartext sent to the TLS port.", (double)ns.tls_failures);
    metric(b, "factum_tls_handshakes_deferred_total", "counter",
           "TLS handshake steps put off to a later turn of the loop (its handshake budget was spent).",
           (double)ns.tls_deferred);
    lag_metrics(st, b);
    projection_metrics(st, b);
    readmodel_metrics(st, b);
}

/* Does the endpoint's "an authenticated user" hold? Otherwise answer 401. */
static int authenticated(const net_http_req *req, net_http_resp *resp)
{
    const auth_principal *p = req->auth ? req->auth : auth_principal_system(); /* no auth_fn: insecure */
    if (auth_principal_authenticated(p)) return 1;
    resp->status = 401;
    base_buf_append(&resp->body, "authentication required\n", 24);
    return 0;
}

/* KurrentDB's OperationsOrAdmins: anonymous gets 401, another user 403. */
static int ops_or_admin(const net_http_req *req, net_http_resp *resp)
{
    const auth_principal *p = req->auth ? req->auth : auth_principal_system();
    if (!authenticated(req, resp)) return 0;
    if (auth_principal_is_ops_or_admin(p)) return 1;
    resp->status = 403;
    base_buf_append(&resp->body, "forbidden: for $ops and $admins\n", 32);
    return 0;
}

void srv_http(void *ctx, const net_http_req *req, net_http_resp *resp)
{
    srv_state *st = ctx;
    if (!srv_http_guard(st, req, resp)) return; /* http_ui.c: Origin, CSRF (ADR 0029) */
    if (!strcmp(req->path, "/admin/reloadconfig")) {
        /* KurrentDB's reload of the configuration (Operations.Node.ReloadConfiguration:
         * $ops and $admins); here, the certificates. */
        if (strcmp(req->method, "POST")) {
            resp->status = 405;
            base_buf_append(&resp->body, "method not allowed\n", 19);
            return;
        }
        if (!ops_or_admin(req, resp)) return;
        slog_write(SLOG_INFO, "reloading the configuration: a request was received on /admin/reloadconfig");
        rpc_audit_as(&st->rpc, req->auth, NULL, "configuration-reload-requested", "/admin/reloadconfig", NULL);
        net_server_request_reload(st->net);
        resp->status = 200;
        base_buf_append(&resp->body, "OK", 2);
        return;
    }
    if (!strcmp(req->path, "/admin/backup")) {
        if (ops_or_admin(req, resp)) {
            if (!strcmp(req->method, "POST"))
                rpc_audit_as(&st->rpc, req->auth, NULL, "backup-requested", "/admin/backup", NULL);
            srv_http_backup(st, req, resp); /* http_admin.c */
        }
        return;
    }
    if (!strcmp(req->path, "/admin/shred")) {
        /* Erasure for good: $admins only. */
        const auth_principal *p = req->auth ? req->auth : auth_principal_system();
        if (!authenticated(req, resp)) return;
        if (!auth_principal_is_admin(p)) {
            resp->status = 403;
            base_buf_append(&resp->body, "forbidden: for $admins\n", 23);
            return;
        }
        srv_http_shred(st, req, resp); /* http_admin.c */
        return;
    }
    if (!strcmp(req->path, "/admin/archive")) {
        if (ops_or_admin(req, resp)) srv_http_archive(st, req, resp); /* http_admin.c */
        return;
    }
    if (!strncmp(req->path, "/admin/scavenge", 15) && (!req->path[15] || req->path[15] == '/')) {
        if (ops_or_admin(req, resp)) srv_http_scavenge(st, req, resp); /* http_admin.c */
        return;
    }
    if (srv_http_ui_api(st, req, resp)) return; /* http_ui.c: /ui/api/login, session, logout */
    if (srv_http_proj(st, req, resp)) return;   /* http_proj.c: /api/projections, /api/projection... */
    if (srv_http_users(st, req, resp)) return;  /* http_users.c: /api/users, /api/user... */
    if (srv_http_subs(st, req, resp)) return;   /* http_subs.c: /api/subscription..., /subscriptions... */
    if (srv_http_api(st, req, resp)) return;    /* http_api.c: /api/streams, /api/stream, ... */
    if (srv_http_ui(req, resp)) return;         /* http_ui.c: /, /ui, /ui/... */
    if (!strncmp(req->path, "/readmodels", 11) && (!req->path[11] || req->path[11] == '/')) {
        srv_http_readmodels(st, req, resp); /* http_rm.c */
        return;
    }
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        base_buf_append(&resp->body, "method not allowed\n", 19);
        return;
    }
    if (!strcmp(req->path, "/health/live")) {
        resp->status = 204;
    } else if (!strcmp(req->path, "/info")) {
        info(st, resp);
    } else if (!strcmp(req->path, "/gossip")) {
        if (authenticated(req, resp)) gossip(st, resp);
    } else if (!strcmp(req->path, "/admin/chain")) {
        if (ops_or_admin(req, resp)) chain_head(st, resp);
    } else if (!strcmp(req->path, "/metrics")) {
        /* KurrentDB's Node.Statistics.Read: a user, unless anonymous
         * endpoint access is allowed (src/auth/policy.c) */
        const auth_principal *p = req->auth ? req->auth : auth_principal_system();
        int a = auth_check_op(p, AUTH_OP_STATS_READ, NULL, st->rpc.allow_anonymous_endpoints);
        if (a == AUTH_OK) {
            metrics(st, resp);
        } else {
            resp->status = a == AUTH_UNAUTHENTICATED ? 401 : 403;
            base_buf_append(&resp->body, a == AUTH_UNAUTHENTICATED ? "authentication required\n" : "access denied\n",
                            a == AUTH_UNAUTHENTICATED ? 24 : 14);
        }
    } else {
        resp->status = 404;
        base_buf_append(&resp->body, "not found\n", 10);
    }
}
