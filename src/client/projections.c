/*
 * projections.c - the client's side of the Projections service
 * (factum_client_projection_*): requests built from factum.h's types,
 * Statistics' Details parsed back into factum_projection_status, and a
 * state's google.protobuf.Value written out as JSON.
 *
 * A Value comes from the server and nests as deep as it likes, so it is
 * decoded through pb_unpack (PB-1: the nesting is checked before the
 * recursive decoder runs, CL-2), and written out by a recursion that the
 * same bound limits.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h> /* isfinite */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "client/client_int.h"
#include "google/protobuf/struct.pb-c.h"
#include "kurrentdb/projections.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "net/pb.h"

#define SVC "/event_store.client.projections.Projections/"

/* The largest state accepted (decoded; KurrentDB's states are at most
 * 16 MiB of JSON). */
#define STATE_DECODE_LIMIT (256u << 20)

/* The factum code of a failed projection call: factumd says what failed in
 * an UNKNOWN answer's message (KurrentDB's own message says only that the
 * operation failed: FACTUM_ESERVER). */
static int proj_error(const client_call *k, int rc)
{
    if (k->grpc_status == GRPC_UNKNOWN) {
        if (!strncmp(k->message, "Duplicate projection name", 25)) return FACTUM_EEXISTS;
        if (strstr(k->message, factum_strerror(FACTUM_EBADSTATE))) return FACTUM_EBADSTATE;
        if (strstr(k->message, factum_strerror(FACTUM_EFAULTED))) return FACTUM_EFAULTED;
    }
    return rc;
}

/* Run a call whose answer is an empty message (the lock is held). */
static int run_empty(factum_client *c, const char *method, const ProtobufCMessage *req)
{
    char path[96];
    snprintf(path, sizeof path, SVC "%s", method);
    client_call k;
    client_call_init(&k, path, NULL, NULL);
    int rc = client_call_add(&k, req);
    if (!rc) rc = client_call_run(c, &k);
    if (rc) rc = proj_error(&k, rc);
    client_call_deinit(&k);
    return rc;
}

static int check_name(factum_client *c, const char *name)
{
    if (!name || !name[0]) {
        client_seterr(c, "a projection name is required");
        return FACTUM_EINVAL;
    }
    return 0;
}

int factum_client_projection_create(factum_client *c, const factum_projection_def *d)
{
    if (!c || !d || !d->query) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = 0;
    EventStore__Client__Projections__CreateReq req = EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__INIT;
    EventStore__Client__Projections__CreateReq__Options o =
        EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__INIT;
    EventStore__Client__Projections__CreateReq__Options__Continuous cont =
        EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__CONTINUOUS__INIT;
    EventStore__Client__Projections__CreateReq__Options__Transient tr =
        EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__TRANSIENT__INIT;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    o.query = (char *)(uintptr_t)d->query;
    switch (d->mode) {
    case FACTUM_PROJECTION_ONE_TIME:
        o.mode_case = EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_ONE_TIME;
        o.one_time = &empty;
        break;
    case FACTUM_PROJECTION_TRANSIENT:
        if (!(rc = check_name(c, d->name))) {
            tr.name = (char *)(uintptr_t)d->name;
            o.mode_case = EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_TRANSIENT;
            o.transient = &tr;
        }
        break;
    case FACTUM_PROJECTION_CONTINUOUS:
        if (!(rc = check_name(c, d->name))) {
            if (d->track_emitted_streams && !d->emit_enabled) {
                client_seterr(c, "tracking emitted streams needs emit enabled");
                rc = FACTUM_EINVAL;
            }
            cont.name = (char *)(uintptr_t)d->name;
            cont.emit_enabled = !!d->emit_enabled;
            cont.track_emitted_streams = !!d->track_emitted_streams;
            o.mode_case = EVENT_STORE__CLIENT__PROJECTIONS__CREATE_REQ__OPTIONS__MODE_CONTINUOUS;
            o.continuous = &cont;
        }
        break;
    default:
        client_seterr(c, "unknown projection mode %d", d->mode);
        rc = FACTUM_EINVAL;
    }
    req.options = &o;
    if (!rc) rc = run_empty(c, "Create", &req.base);
    return rc;
}

int factum_client_projection_update(factum_client *c, const char *name, const char *query, int emit_enabled)
{
    if (!c || emit_enabled < -1 || emit_enabled > 1) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        EventStore__Client__Projections__UpdateReq req = EVENT_STORE__CLIENT__PROJECTIONS__UPDATE_REQ__INIT;
        EventStore__Client__Projections__UpdateReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__UPDATE_REQ__OPTIONS__INIT;
        EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
        o.name = (char *)(uintptr_t)name;
        if (query) o.query = (char *)(uintptr_t)query;
        if (emit_enabled < 0) {
            o.emit_option_case =
                EVENT_STORE__CLIENT__PROJECTIONS__UPDATE_REQ__OPTIONS__EMIT_OPTION_NO_EMIT_OPTIONS;
            o.no_emit_options = &empty;
        } else {
            o.emit_option_case =
                EVENT_STORE__CLIENT__PROJECTIONS__UPDATE_REQ__OPTIONS__EMIT_OPTION_EMIT_ENABLED;
            o.emit_enabled = emit_enabled;
        }
        req.options = &o;
        rc = run_empty(c, "Update", &req.base);
    }
    return rc;
}

int factum_client_projection_delete(factum_client *c, const char *name, unsigned flags)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        EventStore__Client__Projections__DeleteReq req = EVENT_STORE__CLIENT__PROJECTIONS__DELETE_REQ__INIT;
        EventStore__Client__Projections__DeleteReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__DELETE_REQ__OPTIONS__INIT;
        o.name = (char *)(uintptr_t)name;
        o.delete_emitted_streams = !!(flags & FACTUM_PROJECTION_DELETE_EMITTED_STREAMS);
        o.delete_state_stream = !!(flags & FACTUM_PROJECTION_DELETE_STATE_STREAM);
        o.delete_checkpoint_stream = !!(flags & FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM);
        req.options = &o;
        rc = run_empty(c, "Delete", &req.base);
    }
    return rc;
}

enum { CMD_ENABLE, CMD_DISABLE, CMD_RESET };

static int name_command(factum_client *c, const char *name, int which)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc && which == CMD_ENABLE) {
        EventStore__Client__Projections__EnableReq req = EVENT_STORE__CLIENT__PROJECTIONS__ENABLE_REQ__INIT;
        EventStore__Client__Projections__EnableReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__ENABLE_REQ__OPTIONS__INIT;
        o.name = (char *)(uintptr_t)name;
        req.options = &o;
        rc = run_empty(c, "Enable", &req.base);
    } else if (!rc && which == CMD_DISABLE) {
        EventStore__Client__Projections__DisableReq req = EVENT_STORE__CLIENT__PROJECTIONS__DISABLE_REQ__INIT;
        EventStore__Client__Projections__DisableReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__DISABLE_REQ__OPTIONS__INIT;
        o.name = (char *)(uintptr_t)name;
        o.write_checkpoint = 1; /* a Disable, not KurrentDB's Abort */
        req.options = &o;
        rc = run_empty(c, "Disable", &req.base);
    } else if (!rc) {
        EventStore__Client__Projections__ResetReq req = EVENT_STORE__CLIENT__PROJECTIONS__RESET_REQ__INIT;
        EventStore__Client__Projections__ResetReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__RESET_REQ__OPTIONS__INIT;
        o.name = (char *)(uintptr_t)name;
        o.write_checkpoint = 1;
        req.options = &o;
        rc = run_empty(c, "Reset", &req.base);
    }
    return rc;
}

int factum_client_projection_enable(factum_client *c, const char *name)
{
    return name_command(c, name, CMD_ENABLE);
}

int factum_client_projection_disable(factum_client *c, const char *name)
{
    return name_command(c, name, CMD_DISABLE);
}

int factum_client_projection_reset(factum_client *c, const char *name)
{
    return name_command(c, name, CMD_RESET);
}

/* ---- Statistics ----------------------------------------------------------- */

typedef struct list_ctx {
    factum_client *c;
    int (*cb)(void *ctx, const factum_projection_status *st);
    void *ctx;
    int stopped; /* cb's non-zero answer */
} list_ctx;

/* "C:<commit>/P:<prepare>" -> the commit position; 0 for none ("C:0/P:-1",
 * "", or text of another form). */
static uint64_t parse_position(const char *s)
{
    if (!s || s[0] != 'C' || s[1] != ':') return 0;
    char *end;
    unsigned long long v = strtoull(s + 2, &end, 10);
    if (end == s + 2 || *end != '/') return 0;
    return (uint64_t)v;
}

/* The state from KurrentDB's status text: its first word, before '/' or
 * ' '; "(Enabled)" marks a stopped or faulted projection as enabled. */
static void parse_status(const char *s, factum_projection_status *st)
{
    size_t n = strcspn(s, "/ ");
    st->state = FACTUM_PROJECTION_STOPPED;
    if (n == 7 && !strncmp(s, "Running", 7)) st->state = FACTUM_PROJECTION_RUNNING;
    else if (n == 7 && !strncmp(s, "Faulted", 7)) st->state = FACTUM_PROJECTION_FAULTED;
    else if ((n == 8 && !strncmp(s, "Stopping", 8)) || (n == 8 && !strncmp(s, "Aborting", 8)))
        st->state = FACTUM_PROJECTION_STOPPING;
    else if (n == 8 && !strncmp(s, "Starting", 8)) st->state = FACTUM_PROJECTION_RUNNING;
    st->enabled = st->state == FACTUM_PROJECTION_RUNNING || strstr(s, "(Enabled)") != NULL;
}

static int on_details(void *arg, const uint8_t *msg, size_t len)
{
    list_ctx *l = arg;
    client_arena_reset(client_tl_arena());
    EventStore__Client__Projections__StatisticsResp *r =
        event_store__client__projections__statistics_resp__unpack(&client_tl_arena()->pa, len, msg);
    if (!r) {
        client_seterr(l->c, "the server's StatisticsResp does not decode");
        return FACTUM_EPROTOCOL;
    }
    const EventStore__Client__Projections__StatisticsResp__Details *d = r->details;
    if (!d) return 0;
    factum_projection_status st;
    memset(&st, 0, sizeof st);
    st.name = d->name ? d->name : "";
    st.handler = d->status ? d->status : "";
    st.system = st.name[0] == '$';
    st.mode = !d->mode                         ? FACTUM_PROJECTION_CONTINUOUS
              : !strcmp(d->mode, "OneTime")   ? FACTUM_PROJECTION_ONE_TIME
              : !strcmp(d->mode, "Transient") ? FACTUM_PROJECTION_TRANSIENT
                                              : FACTUM_PROJECTION_CONTINUOUS;
    parse_status(st.handler, &st);
    snprintf(st.reason, sizeof st.reason, "%s", d->statereason ? d->statereason : "");
    st.epoch = d->epoch;
    st.version = d->version;
    st.position = parse_position(d->position);
    st.checkpoint = parse_position(d->lastcheckpoint);
    st.events_processed = d->eventsprocessedafterrestart > 0 ? (uint64_t)d->eventsprocessedafterrestart : 0;
    st.progress = d->progress;
    st.writes_in_flight = d->writesinprogress > 0 ? (uint32_t)d->writesinprogress : 0;
    st.buffered_events =
        d->bufferedevents > 0 && d->bufferedevents <= UINT32_MAX ? (uint32_t)d->bufferedevents : 0;
    st.partitions_cached = d->partitionscached > 0 ? (uint32_t)d->partitionscached : 0;
    int rc = l->cb(l->ctx, &st);
    if (rc) {
        l->stopped = rc;
        return CLIENT_ENOUGH;
    }
    return 0;
}

int factum_client_projection_list(factum_client *c, const char *name, int mode,
                                  int (*cb)(void *ctx, const factum_projection_status *st), void *ctx)
{
    if (!c || !cb || mode < -1 || mode > FACTUM_PROJECTION_TRANSIENT) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    EventStore__Client__Projections__StatisticsReq req =
        EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__INIT;
    EventStore__Client__Projections__StatisticsReq__Options o =
        EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__INIT;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (name && name[0]) {
        o.mode_case = EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_NAME;
        o.name = (char *)(uintptr_t)name;
    } else {
        o.mode_case = mode == FACTUM_PROJECTION_CONTINUOUS
                          ? EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_CONTINUOUS
                      : mode == FACTUM_PROJECTION_ONE_TIME
                          ? EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_ONE_TIME
                      : mode == FACTUM_PROJECTION_TRANSIENT
                          ? EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_TRANSIENT
                          : EVENT_STORE__CLIENT__PROJECTIONS__STATISTICS_REQ__OPTIONS__MODE_ALL;
        o.all = &empty; /* the union: every Empty member is the same pointer */
    }
    req.options = &o;
    list_ctx l = {c, cb, ctx, 0};
    client_call k;
    client_call_init(&k, SVC "Statistics", on_details, &l);
    int rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    if (rc && !l.stopped) rc = proj_error(&k, rc);
    if (l.stopped) rc = l.stopped;
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    return rc;
}

/* ---- State and Result ------------------------------------------------------- */

static int write_value(base_buf *b, const Google__Protobuf__Value *v);

static int write_number(base_buf *b, double x)
{
    if (!isfinite(x)) return base_buf_append(b, "null", 4); /* JSON has no Infinity or NaN */
    if (x > -9007199254740992.0 && x < 9007199254740992.0 && x == (double)(int64_t)x)
        return base_buf_printf(b, "%" PRId64, (int64_t)x);
    return base_buf_printf(b, "%.17g", x);
}

static int write_value(base_buf *b, const Google__Protobuf__Value *v)
{
    if (!v) return base_buf_append(b, "null", 4);
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: return write_number(b, v->number_value);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: {
        const char *s = v->string_value ? v->string_value : "";
        return json_write_string(b, s, strlen(s));
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return v->bool_value ? base_buf_append(b, "true", 4) : base_buf_append(b, "false", 5);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE: {
        const Google__Protobuf__Struct *s = v->struct_value;
        int rc = base_buf_append(b, "{", 1);
        for (size_t i = 0; s && i < s->n_fields && !rc; i++) {
            const char *key = s->fields[i]->key ? s->fields[i]->key : "";
            if (i) rc = base_buf_append(b, ",", 1);
            if (!rc) rc = json_write_string(b, key, strlen(key));
            if (!rc) rc = base_buf_append(b, ":", 1);
            if (!rc) rc = write_value(b, s->fields[i]->value);
        }
        return rc ? rc : base_buf_append(b, "}", 1);
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE: {
        const Google__Protobuf__ListValue *l = v->list_value;
        int rc = base_buf_append(b, "[", 1);
        for (size_t i = 0; l && i < l->n_values && !rc; i++) {
            if (i) rc = base_buf_append(b, ",", 1);
            if (!rc) rc = write_value(b, l->values[i]);
        }
        return rc ? rc : base_buf_append(b, "]", 1);
    }
    default: return base_buf_append(b, "null", 4); /* null, or no kind */
    }
}

typedef struct state_ctx {
    factum_client *c;
    int got;
    base_buf out;
} state_ctx;

static int on_state(void *arg, const uint8_t *msg, size_t len)
{
    state_ctx *s = arg;
    if (s->got) return 0;
    pb_alloc pa;
    pb_alloc_init(&pa, STATE_DECODE_LIMIT);
    ProtobufCMessage *m;
    /* StateResp and ResultResp: one Value at field 1. */
    int rc = pb_unpack(&event_store__client__projections__state_resp__descriptor, msg, len, &pa, &m);
    if (rc) {
        client_seterr(s->c, "the server's answer does not decode: %s", pb_strerror(rc));
        return FACTUM_EPROTOCOL;
    }
    const EventStore__Client__Projections__StateResp *r = (const void *)m;
    if (r->state) rc = write_value(&s->out, r->state);
    else rc = base_buf_append(&s->out, "{}", 2);
    if (!rc) rc = base_buf_append(&s->out, "", 1);
    pb_free(m, &pa);
    if (rc) {
        client_seterr(s->c, "out of memory");
        return -ENOMEM;
    }
    s->got = 1;
    return 0;
}

static int get_state(factum_client *c, const char *method, const char *name, const char *partition,
                     char **json, size_t *len)
{
    if (!c || !json) return FACTUM_EINVAL;
    *json = NULL;
    if (len) *len = 0;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    state_ctx s = {c, 0, {0}};
    client_call k;
    char path[96];
    snprintf(path, sizeof path, SVC "%s", method);
    client_call_init(&k, path, on_state, &s);
    if (!rc) {
        /* StateReq and ResultReq: the same fields, the same numbers. */
        EventStore__Client__Projections__StateReq req = EVENT_STORE__CLIENT__PROJECTIONS__STATE_REQ__INIT;
        EventStore__Client__Projections__StateReq__Options o =
            EVENT_STORE__CLIENT__PROJECTIONS__STATE_REQ__OPTIONS__INIT;
        o.name = (char *)(uintptr_t)name;
        if (partition) o.partition = (char *)(uintptr_t)partition;
        req.options = &o;
        rc = client_call_add(&k, &req.base);
        if (!rc) rc = client_call_run(c, &k);
        if (rc) rc = proj_error(&k, rc);
        if (!rc && !s.got) {
            client_seterr(c, "the server's answer to %s has no message", path);
            rc = FACTUM_EPROTOCOL;
        }
    }
    client_call_deinit(&k);
    if (!rc) {
        *json = (char *)s.out.data;
        if (len) *len = s.out.len - 1;
    } else {
        base_buf_free(&s.out);
    }
    return rc;
}

int factum_client_projection_state(factum_client *c, const char *name, const char *partition, char **json,
                                   size_t *len)
{
    return get_state(c, "State", name, partition, json, len);
}

int factum_client_projection_result(factum_client *c, const char *name, const char *partition, char **json,
                                    size_t *len)
{
    return get_state(c, "Result", name, partition, json, len);
}
