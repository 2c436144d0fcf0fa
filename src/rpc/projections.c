/*
 * projections.c - event_store.client.projections.Projections: create,
 * change and inspect projections (Create, Update, Delete, Statistics,
 * Disable, Enable, Reset, State, Result, RestartSubsystem) on the
 * projection manager (factum.h, factum_projection*). Served only when the
 * server runs one (--run-projections System or All); without it the
 * methods are not in the table, so they answer UNIMPLEMENTED and
 * ServerFeatures does not list them, as KurrentDB does.
 *
 * The manager's commands run on its own thread and take a callback; the
 * callback posts the completion back to the loop (net_post), which answers
 * the call then (NET-1). The call is referenced meanwhile (NET-4), and a
 * call the client gave up on is freed when the completion arrives.
 * Everything a call holds is charged to it (NET-5): the decoded request,
 * the copies kept while a command runs, the statuses of Statistics, the
 * state text and its google.protobuf.Value (jsonvalue.h, JV-1..3).
 *
 * Errors are what KurrentDB's gRPC service gives the clients
 * (docs/protocol.md): an unknown name is NOT_FOUND "Projection 'x' not
 * found" with no `exception` trailer (the Node clients make it a
 * NotFoundError); a failed operation (an existing name, a projection in
 * the wrong state) is UNKNOWN, as KurrentDB's "Envelope callback expected
 * Updated, received OperationFailed instead" is (UnknownError), with a
 * message that says what failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/policy.h"
#include "auth/pool.h"
#include "base/base.h"
#include "google/protobuf/struct.pb-c.h"
#include "kurrentdb/projections.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/jsonvalue.h"
#include "rpc/rpc.h"

/* A state or result converted for State/Result: nesting and memory of the
 * google.protobuf.Value, at most (JV-1, JV-2). Each level of JSON is two
 * levels of messages (Value, then Struct or ListValue) under StateResp,
 * so 31 levels of JSON are 63 of messages: what a client that guards its
 * decoding as PB-1 does (ours; .NET's protobuf stops at 100) can read.
 * KurrentDB's own limit on a state is 16 MiB of JSON (MaxProjectionStateSize). */
#define STATE_MAX_DEPTH ((PB_MAX_DEPTH - 2) / 2)
#define STATE_MAX_VALUE (256u << 20)

enum {
    P_CREATE,
    P_UPDATE,
    P_DELETE,
    P_STATISTICS,
    P_DISABLE,
    P_ENABLE,
    P_RESET,
    P_STATE,
    P_RESULT,
    P_RESTART
};

typedef struct proj_call {
    rpc_ctx *ctx;
    net_call *c;
    int method;
    int have_request;
    int pending; /* a manager command is in flight */
    int closed;  /* the call ended meanwhile: free on completion */
    int rc;      /* the command's result (written on the manager's thread) */
    struct asof_job *job; /* State/Result as of a time: the replay given to a worker */
    char *name;
    char *query;     /* Create, Update (NULL: keep it) */
    char *partition; /* State, Result */
    int mode, emit, track; /* Create; Update: emit -1 keeps it */
    unsigned flags;        /* Delete */
    size_t charged;        /* the copies above, and Statistics' rows */
    /* Statistics: the rows still to send */
    factum_projection_status *rows;
    size_t n_rows, cap_rows, next_row;
    int stats_mode; /* -1: every mode */
} proj_call;

static const char *mode_name(int mode)
{
    switch (mode) {
    case FACTUM_PROJECTION_ONE_TIME: return "OneTime";
    case FACTUM_PROJECTION_TRANSIENT: return "Transient";
    default: return "Continuous";
    }
}

static void call_free(proj_call *pc)
{
    for (size_t i = 0; i < pc->n_rows; i++) free((char *)pc->rows[i].name);
    free(pc->rows);
    free(pc->name);
    free(pc->query);
    free(pc->partition);
    free(pc); /* proj_close released what was charged */
}

/* Keep a copy of s (charged to the call). 0 or -ENOMEM/-ENOBUFS. */
static int keep(proj_call *pc, const char *s, char **out)
{
    size_t n = strlen(s) + 1;
    if (net_call_charge(pc->c, n)) return -ENOBUFS;
    if (!(*out = malloc(n))) {
        net_call_release(pc->c, n);
        return -ENOMEM;
    }
    memcpy(*out, s, n);
    pc->charged += n;
    return 0;
}

/* Finish c with what KurrentDB answers for rc on projection `name`. */
static void proj_fail(net_call *c, int rc, const char *name)
{
    char msg[FACTUM_MAX_STREAM_LEN + 160];
    const char *n = name ? name : "";
    switch (rc) {
    case FACTUM_ENOTFOUND:
        snprintf(msg, sizeof msg, "Projection '%s' not found", n);
        rpc_fail(c, GRPC_NOT_FOUND, msg, NULL, NULL);
        return;
    case FACTUM_EEXISTS:
        snprintf(msg, sizeof msg, "Duplicate projection name: %s", n);
        rpc_fail(c, GRPC_UNKNOWN, msg, NULL, NULL);
        return;
    case FACTUM_EBADSTATE:
    case FACTUM_EFAULTED:
        snprintf(msg, sizeof msg, "Projection '%s': %s", n, factum_strerror(rc));
        rpc_fail(c, GRPC_UNKNOWN, msg, NULL, NULL);
        return;
    case FACTUM_EINVAL:
        snprintf(msg, sizeof msg, "Projection '%s': %s", n, factum_strerror(rc));
        rpc_fail(c, GRPC_INVALID_ARGUMENT, msg, NULL, NULL);
        return;
    case -ENOBUFS:
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, NULL);
        return;
    case FACTUM_ECLOSED:
        rpc_fail(c, GRPC_UNAVAILABLE, "the projection subsystem is stopping", NULL, NULL);
        return;
    default:
        rpc_fail(c, rpc_status_of(rc), factum_strerror(rc), NULL, NULL);
    }
}

/* An empty answer (CreateResp, UpdateResp, ..., all empty messages). */
static void answer_empty(proj_call *pc)
{
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (rpc_send(pc->ctx, pc->c, &e.base) == 0) net_call_finish(pc->c, GRPC_OK, NULL, NULL, 0);
    else net_call_finish(pc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
}

/* ---- commands: the manager's thread, then the loop -------------------------- */

static void command_done_loop(void *arg)
{
    proj_call *pc = arg;
    net_call *c = pc->c;
    pc->pending = 0;
    if (!pc->rc && pc->method == P_DELETE) rpc_audit(pc->ctx, c, "projection-deleted", pc->name, NULL);
    if (pc->closed) {
        call_free(pc);
    } else if (pc->rc) {
        proj_fail(c, pc->rc, pc->name);
    } else {
        answer_empty(pc);
    }
    net_call_unref(c);
}

/* On the manager's thread. */
static void command_done(void *arg, int rc)
{
    proj_call *pc = arg;
    pc->rc = rc;
    if (net_post(pc->ctx->net, command_done_loop, pc)) {
        /* Cannot reach the loop (out of memory): the command is done; the
         * call is left to its deadline (as appends do, streams.c). */
    }
}

/* Hand a command to the manager: issue(pc) returns 0 when queued (then
 * command_done follows) or an error (answered now). */
static void run_command(proj_call *pc, int (*issue)(proj_call *pc))
{
    net_call_ref(pc->c);
    pc->pending = 1;
    int rc = issue(pc);
    if (rc == 0) return;
    pc->pending = 0;
    proj_fail(pc->c, rc, pc->name);
    net_call_unref(pc->c);
}

static int issue_enable(proj_call *pc)
{
    return factum_projection_enable(pc->ctx->projections, pc->name, command_done, pc);
}

static int issue_disable(proj_call *pc)
{
    return factum_projection_disable(pc->ctx->projections, pc->name, command_done, pc);
}

static int issue_reset(proj_call *pc)
{
    return factum_projection_reset(pc->ctx->projections, pc->name, command_done, pc);
}

/* ---- the requests --------------------------------------------------------- */

static int issue_create(proj_call *pc)
{
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = pc->name;
    d.query = pc->query;
    d.mode = pc->mode;
    d.enabled = 1;
    d.emit_enabled = pc->emit;
    d.track_emitted_streams = pc->track;
    return factum_projection_create(pc->ctx->projections, &d, command_done, pc);
}

static void create_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    pb_alloc pa;
    EventStore__Client__Projections__CreateReq *req = rpc_unpack(
        pc->c, &event_store__client__projections__create_req__descriptor, msg, len, &pa, "CreateReq");
    if (!req) return;
    const EventStore__Client__Projections__CreateReq__Options *o = req->options;
    pc->mode = FACTUM_PROJECTION_CONTINUOUS;
    const char *name = NULL;
    char uuid[37];
    const char *bad = NULL;
    if (!o) {
        bad = "CreateReq has no options";
    } else if (o->mode_case == EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_ONE_TIME) {
        /* KurrentDB names a one-time projection with a new UUID. */
        uint8_t id[16];
        factum_uuid_v4(id);
        factum_uuid_format(id, uuid);
        name = uuid;
        pc->mode = FACTUM_PROJECTION_ONE_TIME;
    } else if (o->mode_case == EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_TRANSIENT &&
               o->transient) {
        name = o->transient->name;
        pc->mode = FACTUM_PROJECTION_TRANSIENT;
    } else if (o->mode_case == EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_CONTINUOUS &&
               o->continuous) {
        name = o->continuous->name;
        pc->emit = o->continuous->emit_enabled;
        pc->track = o->continuous->track_emitted_streams;
        if (pc->track && !pc->emit) bad = "EmitEnabled must be set to true to track emitted streams.";
    } else {
        bad = "CreateReq names no mode (one_time, transient or continuous)";
    }
    /* engine_version (2: KurrentDB's engine v2) and properties are
     * accepted and ignored: there is one engine, and 25.1 has no
     * properties. */
    int rc = 0;
    if (!bad && !(rc = keep(pc, name, &pc->name))) rc = keep(pc, o->query ? o->query : "", &pc->query);
    rpc_unpack_free(req, &pa);
    if (bad) {
        rpc_fail(pc->c, GRPC_INVALID_ARGUMENT, bad, NULL, NULL);
        return;
    }
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    run_command(pc, issue_create);
}

static int issue_update(proj_call *pc)
{
    return factum_projection_update(pc->ctx->projections, pc->name, pc->query, pc->emit, command_done, pc);
}

static void update_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    pb_alloc pa;
    EventStore__Client__Projections__UpdateReq *req = rpc_unpack(
        pc->c, &event_store__client__projections__update_req__descriptor, msg, len, &pa, "UpdateReq");
    if (!req) return;
    const EventStore__Client__Projections__UpdateReq__Options *o = req->options;
    if (!o) {
        rpc_unpack_free(req, &pa);
        rpc_fail(pc->c, GRPC_INVALID_ARGUMENT, "UpdateReq has no options", NULL, NULL);
        return;
    }
    /* No emit option (or no_emit_options): keep the projection's. An
     * empty query keeps the query (the clients always send one). */
    pc->emit =
        o->emit_option_case == EVENT_STORE__CLIENT__PROJECTIONS__UPDATE_REQ__OPTIONS__EMIT_OPTION_EMIT_ENABLED
            ? !!o->emit_enabled
            : -1;
    int rc = keep(pc, o->name ? o->name : "", &pc->name);
    if (!rc && o->query && o->query[0]) rc = keep(pc, o->query, &pc->query);
    rpc_unpack_free(req, &pa);
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    run_command(pc, issue_update);
}

static int issue_delete(proj_call *pc)
{
    return factum_projection_delete(pc->ctx->projections, pc->name, pc->flags, command_done, pc);
}

static void delete_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    pb_alloc pa;
    EventStore__Client__Projections__DeleteReq *req = rpc_unpack(
        pc->c, &event_store__client__projections__delete_req__descriptor, msg, len, &pa, "DeleteReq");
    if (!req) return;
    const EventStore__Client__Projections__DeleteReq__Options *o = req->options;
    int rc = 0;
    if (o) {
        if (o->delete_emitted_streams) pc->flags |= FACTUM_PROJECTION_DELETE_EMITTED_STREAMS;
        if (o->delete_state_stream) pc->flags |= FACTUM_PROJECTION_DELETE_STATE_STREAM;
        if (o->delete_checkpoint_stream) pc->flags |= FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM;
        rc = keep(pc, o->name ? o->name : "", &pc->name);
    }
    rpc_unpack_free(req, &pa);
    if (!o) {
        rpc_fail(pc->c, GRPC_INVALID_ARGUMENT, "DeleteReq has no options", NULL, NULL);
        return;
    }
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    run_command(pc, issue_delete);
}

/* Enable, Disable and Reset: a name (and write_checkpoint, which changes
 * nothing here: every batch is committed with its checkpoint, PRJ-1; so
 * KurrentDB's Abort, a Disable without it, is a Disable). */
static void name_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    static const struct {
        const ProtobufCMessageDescriptor *d;
        const char *what;
        int (*issue)(proj_call *pc);
    } m[] = {
        [P_DISABLE] = {&event_store__client__projections__disable_req__descriptor, "DisableReq",
                       issue_disable},
        [P_ENABLE] = {&event_store__client__projections__enable_req__descriptor, "EnableReq", issue_enable},
        [P_RESET] = {&event_store__client__projections__reset_req__descriptor, "ResetReq", issue_reset},
    };
    pb_alloc pa;
    ProtobufCMessage *req = rpc_unpack(pc->c, m[pc->method].d, msg, len, &pa, m[pc->method].what);
    if (!req) return;
    /* The three Options messages start alike: name is field 1. */
    const char *name = NULL;
    if (pc->method == P_DISABLE) {
        EventStore__Client__Projections__DisableReq *r = (void *)req;
        name = r->options ? r->options->name : NULL;
    } else if (pc->method == P_ENABLE) {
        EventStore__Client__Projections__EnableReq *r = (void *)req;
        name = r->options ? r->options->name : NULL;
    } else {
        EventStore__Client__Projections__ResetReq *r = (void *)req;
        name = r->options ? r->options->name : NULL;
    }
    int rc = keep(pc, name ? name : "", &pc->name);
    rpc_unpack_free(req, &pa);
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    run_command(pc, m[pc->method].issue);
}

/* ---- Statistics ----------------------------------------------------------- */

/* KurrentDB's position text of a checkpoint tag on $all. */
static void fmt_position(char *buf, size_t n, uint64_t pos, int any)
{
    if (any) snprintf(buf, n, "C:%" PRIu64 "/P:%" PRIu64, pos, pos);
    else snprintf(buf, n, "C:0/P:-1");
}

/* The status text as KurrentDB's ManagedProjection prints it: the state,
 * and " (Enabled)" for a stopped or faulted projection that is enabled. */
static void fmt_status(char *buf, size_t n, const factum_projection_status *st)
{
    switch (st->state) {
    case FACTUM_PROJECTION_RUNNING: snprintf(buf, n, "Running"); break;
    case FACTUM_PROJECTION_STOPPING: snprintf(buf, n, "Stopping"); break;
    case FACTUM_PROJECTION_COMPLETED: snprintf(buf, n, "Completed"); break;
    case FACTUM_PROJECTION_FAULTED: snprintf(buf, n, "Faulted%s", st->enabled ? " (Enabled)" : ""); break;
    default: snprintf(buf, n, "Stopped%s", st->enabled ? " (Enabled)" : ""); break;
    }
}

static int clamp32(uint64_t v)
{
    return v > INT32_MAX ? INT32_MAX : (int)v;
}

/* Send one Details message. 0, -EAGAIN (queue full) or an error. */
static int send_details(proj_call *pc, const factum_projection_status *st)
{
    EventStore__Client__Projections__StatisticsResp resp =
        EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_RESP__INIT;
    EventStore__Client__Projections__StatisticsResp__Details d =
        EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_RESP__DETAILS__INIT;
    char status[32], pos[64], ckpt[64], reason[sizeof st->reason];
    fmt_status(status, sizeof status, st);
    fmt_position(pos, sizeof pos, st->position, st->position != 0);
    fmt_position(ckpt, sizeof ckpt, st->checkpoint, st->checkpoint != 0);
    snprintf(reason, sizeof reason, "%s", st->reason);
    d.coreprocessingtime = 0; /* not measured */
    d.version = st->version;
    d.epoch = st->epoch;
    d.effectivename = (char *)st->name;
    d.writesinprogress = clamp32(st->writes_in_flight);
    d.readsinprogress = st->state == FACTUM_PROJECTION_RUNNING && st->lag_events ? 1 : 0;
    d.partitionscached = clamp32(st->partitions_cached);
    d.status = status;
    d.statereason = reason;
    d.name = (char *)st->name;
    d.mode = (char *)mode_name(st->mode);
    d.position = pos;
    d.progress = (float)st->progress;
    d.lastcheckpoint = ckpt;
    d.eventsprocessedafterrestart =
        (int64_t)(st->events_processed > INT64_MAX ? INT64_MAX : st->events_processed);
    d.checkpointstatus = st->writes_in_flight ? "Writing" : "";
    d.bufferedevents = st->buffered_events;
    d.writependingeventsbeforecheckpoint = clamp32(st->buffered_events);
    d.writependingeventsaftercheckpoint = 0;
    resp.details = &d;
    return rpc_send(pc->ctx, pc->c, &resp.base);
}

/* Send the rows not sent yet; finish when all are. */
static void stats_pump(proj_call *pc)
{
    while (pc->next_row < pc->n_rows) {
        int rc = send_details(pc, &pc->rows[pc->next_row]);
        if (rc == -EAGAIN) return; /* stats_writable goes on */
        if (rc) {
            net_call_finish(pc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
            return;
        }
        pc->next_row++;
    }
    net_call_finish(pc->c, GRPC_OK, NULL, NULL, 0);
}

static void stats_writable(net_call *c)
{
    proj_call *pc = net_call_state(c);
    if (pc && !net_call_done(c)) stats_pump(pc);
}

/* factum_projections_each: keep the rows of the mode asked for. */
static int stats_collect(void *arg, const factum_projection_status *st)
{
    proj_call *pc = arg;
    if (pc->stats_mode >= 0 && st->mode != pc->stats_mode) return 0;
    if (pc->n_rows == pc->cap_rows) {
        size_t cap = pc->cap_rows ? pc->cap_rows * 2 : 8;
        size_t add = (cap - pc->cap_rows) * sizeof *pc->rows;
        if (net_call_charge(pc->c, add)) return -ENOBUFS;
        factum_projection_status *r = realloc(pc->rows, cap * sizeof *r);
        if (!r) {
            net_call_release(pc->c, add);
            return -ENOMEM;
        }
        pc->charged += add;
        pc->rows = r;
        pc->cap_rows = cap;
    }
    factum_projection_status *row = &pc->rows[pc->n_rows];
    *row = *st;
    row->handler = NULL;
    row->name = NULL;
    char *name;
    int rc = keep(pc, st->name, &name);
    if (rc) return rc;
    row->name = name;
    pc->n_rows++;
    return 0;
}

static void statistics_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    pb_alloc pa;
    EventStore__Client__Projections__StatisticsReq *req = rpc_unpack(
        pc->c, &event_store__client__projections__statistics_req__descriptor, msg, len, &pa, "StatisticsReq");
    if (!req) return;
    const EventStore__Client__Projections__StatisticsReq__Options *o = req->options;
    int rc = 0;
    pc->stats_mode = -1;
    /* As KurrentDB: an empty name means every projection. */
    if (o && o->mode_case == EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_NAME &&
        o->name && o->name[0]) {
        rc = keep(pc, o->name, &pc->name);
    } else if (o) {
        switch (o->mode_case) {
        case EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_TRANSIENT:
            pc->stats_mode = FACTUM_PROJECTION_TRANSIENT;
            break;
        case EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_CONTINUOUS:
            pc->stats_mode = FACTUM_PROJECTION_CONTINUOUS;
            break;
        case EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_ONE_TIME:
            pc->stats_mode = FACTUM_PROJECTION_ONE_TIME;
            break;
        default: break;
        }
    }
    rpc_unpack_free(req, &pa);
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    if (pc->name) {
        factum_projection_status st;
        rc = factum_projection_get_status(pc->ctx->projections, pc->name, &st);
        if (!rc) rc = stats_collect(pc, &st);
    } else {
        rc = factum_projections_each(pc->ctx->projections, stats_collect, pc);
    }
    if (rc) {
        proj_fail(pc->c, rc, pc->name);
        return;
    }
    stats_pump(pc);
}

/* ---- State and Result ------------------------------------------------------- */

static int charge_call(void *ctx, size_t n)
{
    return net_call_charge(ctx, n);
}

/* Answer State or Result with the JSON text json[0..n) ("": none). */
static void answer_state(proj_call *pc, const char *json, size_t n)
{
    int result = pc->method == P_RESULT;
    /* The text was read before it could be charged: charge it now, and
     * refuse to go on if the connection cannot hold it. */
    if (net_call_charge(pc->c, n)) {
        proj_fail(pc->c, -ENOBUFS, pc->name);
        return;
    }
    jv_arena a;
    jv_init(&a, STATE_MAX_DEPTH, STATE_MAX_VALUE);
    a.charge = charge_call;
    a.charge_ctx = pc->c;
    Google__Protobuf__Value empty_v = GOOGLE__PROTOBUF__VALUE__INIT, *v = &empty_v;
    Google__Protobuf__Struct empty_s = GOOGLE__PROTOBUF__STRUCT__INIT;
    int jrc = JV_OK;
    if (n == 0) {
        /* No state yet: KurrentDB answers an empty Struct. */
        empty_v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        empty_v.struct_value = &empty_s;
    } else {
        jrc = jv_parse(&a, json, n, &v);
    }
    if (jrc == JV_OK) {
        int sent;
        if (result) {
            EventStore__Client__Projections__ResultResp resp =
                EVENT_STORE__CLIENT__PROJECTIONS__RESULT_RESP__INIT;
            resp.result = v;
            sent = rpc_send(pc->ctx, pc->c, &resp.base);
        } else {
            EventStore__Client__Projections__StateResp resp =
                EVENT_STORE__CLIENT__PROJECTIONS__STATE_RESP__INIT;
            resp.state = v;
            sent = rpc_send(pc->ctx, pc->c, &resp.base);
        }
        if (sent == 0) net_call_finish(pc->c, GRPC_OK, NULL, NULL, 0);
        else if (sent == -ENOBUFS) rpc_fail(pc->c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, NULL);
        else net_call_finish(pc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
    } else {
        char why[FACTUM_MAX_STREAM_LEN + 128];
        snprintf(why, sizeof why, "the %s of projection '%s' cannot be sent: %s", result ? "result" : "state",
                 pc->name, jv_strerror(jrc));
        int code = jrc == JV_ETOOBIG || jrc == JV_ENOMEM ? GRPC_RESOURCE_EXHAUSTED : GRPC_UNKNOWN;
        rpc_fail(pc->c, code, why, NULL, NULL);
    }
    jv_free(&a);
    net_call_release(pc->c, a.charged + n);
}

/* ---- State and Result as of a time: `$asof/<name>?time=T|position=P` --------
 *
 * The official clients' getProjectionState/getProjectionResult carry a name
 * and a partition only, so the point of view travels in the name, as the
 * `$asof/` virtual streams carry it (docs/protocol.md; ADR 0017): no
 * projection's name begins with '$' but the system ones, whose names have
 * no '/'. The replay (factum_projection_state_asof) runs on a worker of
 * ctx->proj_asof, never on the loop: PROJ_ASOF_THREADS at once, at most
 * PROJ_ASOF_QUEUE waiting (beyond: UNAVAILABLE), each within the call's
 * deadline and PROJ_ASOF_MAX_MS. */

#define ASOF_PREFIX       "$asof/"
#define PROJ_ASOF_THREADS 2
#define PROJ_ASOF_QUEUE   8
#define PROJ_ASOF_MAX_MS  30000

/* The workers and the jobs given to them (loop thread), so that a client
 * that leaves, or the server stopping, ends a replay at its next batch. */
struct proj_asof {
    auth_pool *pool;
    struct asof_job *jobs;
};

typedef struct asof_job {
    auth_job job; /* first: the pool's */
    struct asof_job *prev, *next; /* ctx->proj_asof->jobs */
    _Atomic int abandoned;        /* nobody waits for the answer any more */
    proj_call *pc;
    factum_store *store;
    factum_projections *m;
    char *name; /* the projection's own name */
    int have_time;
    int64_t time_ns;
    uint64_t position;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC: the call's deadline, or PROJ_ASOF_MAX_MS after it came */
    uint32_t time_limit_ms;
    int rc;
    char err[512];
    factum_projection_asof a;
} asof_job;

/* "<name>?time=<RFC 3339>" or "<name>?position=<n>" (after the prefix). 0,
 * or FACTUM_EINVAL with *why. */
static int asof_parse(const char *rest, asof_job *j, const char **why)
{
    const char *q = strrchr(rest, '?');
    *why = "$asof/ needs a projection and a point of view: $asof/<name>?time=<RFC 3339>|position=<n>";
    if (!q || q == rest) return FACTUM_EINVAL;
    const char *eq = strchr(q + 1, '=');
    if (!eq || strchr(eq + 1, '&')) return FACTUM_EINVAL;
    size_t kl = (size_t)(eq - q - 1), vl = strlen(eq + 1);
    const char *v = eq + 1;
    if (kl == 4 && !memcmp(q + 1, "time", 4)) {
        j->have_time = 1;
        *why = "$asof/: time must be an RFC 3339 time (2026-03-15T10:00:00Z)";
        if (factum_time_parse(v, vl, &j->time_ns)) return FACTUM_EINVAL;
    } else if (kl == 8 && !memcmp(q + 1, "position", 8)) {
        *why = "$asof/: position must be a non-negative integer";
        if (!vl || vl > 20) return FACTUM_EINVAL;
        uint64_t p = 0;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9' || p > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10) return FACTUM_EINVAL;
            p = p * 10 + (uint64_t)(v[i] - '0');
        }
        j->position = p;
    } else {
        *why = "$asof/: the point of view is time=<RFC 3339> or position=<n>, one of them";
        return FACTUM_EINVAL;
    }
    if (!(j->name = strndup(rest, (size_t)(q - rest)))) return -ENOMEM;
    return 0;
}

static void asof_job_free(asof_job *j)
{
    factum_projection_asof_free(&j->a);
    free(j->name);
    free(j);
}

static int asof_cancelled(void *arg)
{
    asof_job *j = arg;
    return atomic_load(&j->abandoned);
}

/* On a worker. */
static void asof_work(auth_job *aj)
{
    asof_job *j = (asof_job *)aj;
    j->rc = 0;
    if (atomic_load(&j->abandoned)) { /* its client left while it waited */
        j->rc = -ECANCELED;
        return;
    }
    uint64_t now = base_mono_ns();
    if (now >= j->deadline_ns) {
        j->rc = FACTUM_ETIMEDOUT;
        snprintf(j->err, sizeof j->err, "the call's deadline passed while it waited for a worker");
        return;
    }
    j->time_limit_ms = (uint32_t)((j->deadline_ns - now + 999999u) / 1000000u);
    if (j->have_time) j->rc = factum_position_at(j->store, j->time_ns, &j->position);
    if (j->rc) return;
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.time_limit_ms = j->time_limit_ms;
    o.cancelled = asof_cancelled;
    o.cancel_ctx = j;
    j->rc = factum_projection_state_asof(j->m, j->name, j->pc->partition, j->position, &o, &j->a, j->err,
                                         sizeof j->err);
}

/* On the loop (also for a job cancelled at shutdown). */
static void asof_done(auth_job *aj)
{
    asof_job *j = (asof_job *)aj;
    proj_call *pc = j->pc;
    net_call *c = pc->c;
    struct proj_asof *pa = pc->ctx->proj_asof;
    if (j->prev) j->prev->next = j->next;
    else if (pa && pa->jobs == j) pa->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    pc->pending = 0;
    pc->job = NULL;
    if (aj->cancelled) {
        j->rc = FACTUM_ECLOSED;
        snprintf(j->err, sizeof j->err, "the server is stopping");
    }
    if (pc->closed) {
        call_free(pc);
    } else if (j->rc == FACTUM_ENOTFOUND) {
        proj_fail(c, j->rc, j->name);
    } else if (j->rc) {
        int code;
        switch (j->rc) {
        case FACTUM_EINVAL: code = GRPC_INVALID_ARGUMENT; break;
        case FACTUM_EFAULTED: code = GRPC_FAILED_PRECONDITION; break;
        case FACTUM_ETIMEDOUT: code = GRPC_DEADLINE_EXCEEDED; break;
        case FACTUM_ETOOBIG: code = GRPC_RESOURCE_EXHAUSTED; break;
        case -EBUSY:
        case -ECANCELED:
        case -ENOENT:
        case FACTUM_ECLOSED: code = GRPC_UNAVAILABLE; break;
        default: code = rpc_status_of(j->rc);
        }
        char msg[700];
        snprintf(msg, sizeof msg, "Projection '%s' as of a time: %s", j->name,
                 j->err[0] ? j->err : factum_strerror(j->rc));
        rpc_fail(c, code, msg, NULL, NULL);
    } else if (pc->method == P_RESULT) {
        answer_state(pc, j->a.result, j->a.result_len);
    } else {
        answer_state(pc, j->a.state, j->a.state_len);
    }
    asof_job_free(j);
    net_call_unref(c);
}

static int post_loop(void *ctx, void (*fn)(void *), void *arg)
{
    return net_post(ctx, fn, arg);
}

void rpc_proj_stop(rpc_ctx *ctx)
{
    struct proj_asof *pa = ctx->proj_asof;
    if (!pa) return;
    for (asof_job *j = pa->jobs; j; j = j->next) atomic_store(&j->abandoned, 1);
    auth_pool_free(pa->pool); /* POOL-2: the jobs waiting end cancelled, on the loop's queue */
    /* Their completions run when the server is freed (the loop has
     * stopped): they find no list to leave. */
    for (asof_job *j = pa->jobs, *next; j; j = next) {
        next = j->next;
        j->prev = j->next = NULL;
    }
    free(pa);
    ctx->proj_asof = NULL;
}

/* State/Result of pc->name = "$asof/...": parse, then replay on a worker. */
static void asof_start(proj_call *pc)
{
    rpc_ctx *ctx = pc->ctx;
    asof_job *j = calloc(1, sizeof *j);
    if (!j) {
        proj_fail(pc->c, -ENOMEM, NULL);
        return;
    }
    const char *why = NULL;
    int rc = asof_parse(pc->name + strlen(ASOF_PREFIX), j, &why);
    if (rc) {
        asof_job_free(j);
        if (rc == FACTUM_EINVAL) rpc_fail(pc->c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
        else proj_fail(pc->c, rc, NULL);
        return;
    }
    j->pc = pc;
    j->store = ctx->store;
    j->m = ctx->projections;
    /* The time it may take, waiting for a worker included: the call's
     * deadline, at most PROJ_ASOF_MAX_MS. */
    uint64_t deadline = net_call_deadline(pc->c);
    j->deadline_ns = base_mono_ns() + (uint64_t)PROJ_ASOF_MAX_MS * 1000000u;
    if (deadline && deadline < j->deadline_ns) j->deadline_ns = deadline;
    j->job.work = asof_work;
    j->job.done = asof_done;
    if (!ctx->proj_asof && !(ctx->proj_asof = calloc(1, sizeof *ctx->proj_asof))) rc = -ENOMEM;
    if (!rc && !ctx->proj_asof->pool && ctx->net)
        rc = auth_pool_new(PROJ_ASOF_THREADS, PROJ_ASOF_QUEUE, post_loop, ctx->net, &ctx->proj_asof->pool);
    if (rc) {
        asof_job_free(j);
        proj_fail(pc->c, rc, NULL);
        return;
    }
    struct proj_asof *pa = ctx->proj_asof;
    if (!pa->pool || auth_pool_submit(pa->pool, &j->job)) {
        asof_job_free(j);
        rpc_fail(pc->c, GRPC_UNAVAILABLE,
                 "too many projection states as of a time are being computed: try again later", NULL, NULL);
        return;
    }
    /* Queued: its completion comes back to the loop (POOL-2). */
    net_call_ref(pc->c);
    pc->pending = 1;
    pc->job = j;
    j->next = pa->jobs;
    if (j->next) j->next->prev = j;
    pa->jobs = j;
}

static void state_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    int result = pc->method == P_RESULT;
    pb_alloc pa;
    ProtobufCMessage *req =
        result ? rpc_unpack(pc->c, &event_store__client__projections__result_req__descriptor, msg, len, &pa,
                            "ResultReq")
               : rpc_unpack(pc->c, &event_store__client__projections__state_req__descriptor, msg, len, &pa,
                            "StateReq");
    if (!req) return;
    /* StateReq and ResultReq have the same fields and numbers. */
    const EventStore__Client__Projections__StateReq__Options *o =
        ((EventStore__Client__Projections__StateReq *)(void *)req)->options;
    int rc = keep(pc, o && o->name ? o->name : "", &pc->name);
    if (!rc) rc = keep(pc, o && o->partition ? o->partition : "", &pc->partition);
    rpc_unpack_free(req, &pa);
    if (rc) {
        proj_fail(pc->c, rc, NULL);
        return;
    }
    if (!strncmp(pc->name, ASOF_PREFIX, strlen(ASOF_PREFIX))) {
        asof_start(pc);
        return;
    }
    char *json = NULL;
    size_t n = 0;
    factum_projections *m = pc->ctx->projections;
    rc = result ? factum_projection_get_result(m, pc->name, pc->partition, &json, &n)
                : factum_projection_get_state(m, pc->name, pc->partition, &json, &n);
    if (rc) {
        proj_fail(pc->c, rc, pc->name);
        return;
    }
    answer_state(pc, json, n);
    free(json);
}

/* ---- RestartSubsystem ----------------------------------------------------- */

/* KurrentDB stops every projection and starts the enabled ones again from
 * their checkpoints, and answers at once. factum's manager has no state
 * beyond what the store holds: there is nothing to restart, so the call is
 * accepted (docs/protocol.md). */
static void restart_message(proj_call *pc, const uint8_t *msg, size_t len)
{
    pb_alloc pa;
    EventStore__Client__Empty *req =
        rpc_unpack(pc->c, &event_store__client__empty__descriptor, msg, len, &pa, "Empty");
    if (!req) return;
    rpc_unpack_free(req, &pa);
    rpc_audit(pc->ctx, pc->c, "projections-restarted", "", NULL);
    answer_empty(pc);
}

/* ---- the calls -------------------------------------------------------------- */

static int start_common(net_call *c, void *svc, int method)
{
    proj_call *pc = calloc(1, sizeof *pc);
    if (!pc) return -ENOMEM;
    pc->ctx = svc;
    pc->c = c;
    pc->method = method;
    net_call_set_state(c, pc);
    return 0;
}

#define START(fn, m)                                                                                         \
    static int fn(net_call *c, void *svc)                                                                    \
    {                                                                                                        \
        return start_common(c, svc, m);                                                                      \
    }
START(create_start, P_CREATE)
START(update_start, P_UPDATE)
START(delete_start, P_DELETE)
START(statistics_start, P_STATISTICS)
START(disable_start, P_DISABLE)
START(enable_start, P_ENABLE)
START(reset_start, P_RESET)
START(state_start, P_STATE)
START(result_start, P_RESULT)
START(restart_start, P_RESTART)
#undef START

static void proj_message(net_call *c, const uint8_t *msg, size_t len)
{
    proj_call *pc = net_call_state(c);
    if (!pc || pc->have_request) return; /* unary: one request */
    pc->have_request = 1;
    /* KurrentDB's rules (src/auth/policy.c): before the request is read */
    int op;
    switch (pc->method) {
    case P_CREATE: op = AUTH_OP_PROJ_CREATE; break;
    case P_UPDATE: op = AUTH_OP_PROJ_UPDATE; break;
    case P_DELETE: op = AUTH_OP_PROJ_DELETE; break;
    case P_DISABLE: op = AUTH_OP_PROJ_DISABLE; break;
    case P_ENABLE: op = AUTH_OP_PROJ_ENABLE; break;
    case P_RESET: op = AUTH_OP_PROJ_RESET; break;
    case P_RESTART: op = AUTH_OP_PROJ_RESTART; break;
    default: op = AUTH_OP_PROJ_READ; /* Statistics, State, Result */
    }
    if (rpc_authorize_op(pc->ctx, c, op, NULL)) return;
    switch (pc->method) {
    case P_CREATE: create_message(pc, msg, len); break;
    case P_UPDATE: update_message(pc, msg, len); break;
    case P_DELETE: delete_message(pc, msg, len); break;
    case P_STATISTICS: statistics_message(pc, msg, len); break;
    case P_STATE:
    case P_RESULT: state_message(pc, msg, len); break;
    case P_RESTART: restart_message(pc, msg, len); break;
    default: name_message(pc, msg, len); break;
    }
}

static void proj_half_close(net_call *c)
{
    proj_call *pc = net_call_state(c);
    if (pc && !pc->have_request && !net_call_done(c))
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request message is missing", NULL, NULL);
}

static void proj_close(net_call *c)
{
    proj_call *pc = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!pc) return;
    if (pc->charged) net_call_release(c, pc->charged);
    pc->charged = 0;
    if (pc->job) atomic_store(&pc->job->abandoned, 1); /* the replay ends at its next batch */
    if (pc->pending) pc->closed = 1; /* command_done_loop (asof_done) frees it */
    else call_free(pc);
}

#define PM(method, start, writable)                                                                          \
    {                                                                                                        \
        "/event_store.client.projections.Projections/" method, start, proj_message, proj_half_close,         \
            writable, proj_close, NULL                                                                       \
    }
const net_method rpc_projections_methods[] = {
    PM("Create", create_start, NULL),
    PM("Update", update_start, NULL),
    PM("Delete", delete_start, NULL),
    PM("Statistics", statistics_start, stats_writable),
    PM("Disable", disable_start, NULL),
    PM("Enable", enable_start, NULL),
    PM("Reset", reset_start, NULL),
    PM("State", state_start, NULL),
    PM("Result", result_start, NULL),
    PM("RestartSubsystem", restart_start, NULL),
};
#undef PM
const size_t rpc_projections_n = sizeof rpc_projections_methods / sizeof *rpc_projections_methods;
