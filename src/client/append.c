/*
 * append.c - appends: Streams.Append (client streaming: the options, then
 * one proposed message per event, then the answer with the new revision
 * and position, or the wrong expected version in-band), and the atomic
 * multi-stream append of the v2 protocol, StreamsService.AppendSession
 * (one AppendRequest per stream; errors as google.rpc.Status details
 * naming the stream). Arguments are checked here the way factum_append
 * checks them, so that bad input fails before anything is sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "client/client_int.h"
#include "google/protobuf/struct.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "kurrentdb/v2/streams_errors.pb-c.h"

typedef EventStore__Client__Streams__AppendReq AppendReq;
typedef EventStore__Client__Streams__AppendResp AppendResp;
typedef EventStore__Client__Streams__AppendReq__ProposedMessage Proposed;
typedef EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry MetaEntry;

static int check_events(factum_client *c, const factum_event_data *ev, size_t n)
{
    if (!ev || n == 0) {
        client_seterr(c, "an append needs at least one event");
        return FACTUM_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = ev[i].type;
        size_t tl = t ? strlen(t) : 0;
        if (!tl || tl > FACTUM_MAX_TYPE_LEN || !base_utf8_valid(t, tl)) {
            client_seterr(c, "event %zu: invalid event type (empty, over %d bytes or not UTF-8)", i,
                          FACTUM_MAX_TYPE_LEN);
            return FACTUM_EBADTYPE;
        }
        if ((ev[i].data_len && !ev[i].data) || (ev[i].metadata_len && !ev[i].metadata)) {
            client_seterr(c, "event %zu: a payload has a length but no bytes", i);
            return FACTUM_EINVAL;
        }
    }
    return 0;
}

static int check_stream(factum_client *c, const char *stream)
{
    if (!stream || factum_check_stream_name(stream, strlen(stream))) {
        client_seterr(c, "invalid stream name (empty, over %d bytes or not UTF-8)", FACTUM_MAX_STREAM_LEN);
        return FACTUM_EBADNAME;
    }
    return 0;
}

static void set_expected(EventStore__Client__Streams__AppendReq__Options *o, int64_t expected,
                         EventStore__Client__Empty *empty)
{
    if (expected >= 0) {
        o->expected_stream_revision_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION;
        o->revision = (uint64_t)expected;
    } else if (expected == FACTUM_NO_STREAM) {
        o->expected_stream_revision_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM;
        o->no_stream = empty;
    } else if (expected == FACTUM_STREAM_EXISTS) {
        o->expected_stream_revision_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_STREAM_EXISTS;
        o->stream_exists = empty;
    } else {
        o->expected_stream_revision_case =
            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_ANY;
        o->any = empty;
    }
}

/* The result of a successful append of n events whose last one is at
 * last_version / last_position (the protocol reports only those). */
static void fill_result(factum_append_result *res, size_t n, uint64_t last_version, uint64_t last_position)
{
    memset(res, 0, sizeof *res);
    res->last_version = last_version;
    res->first_version = last_version >= n - 1 ? last_version - (n - 1) : 0;
    res->last_position = last_position;
    res->first_position = last_position >= n - 1 ? last_position - (n - 1) : 0;
    res->timestamp_ns = base_now_ns();
    res->actual_version = FACTUM_NO_STREAM;
}

static const char *expected_text(int64_t e, char buf[32])
{
    if (e == FACTUM_ANY) return "any";
    if (e == FACTUM_NO_STREAM) return "no stream";
    if (e == FACTUM_STREAM_EXISTS) return "stream exists";
    snprintf(buf, 32, "%" PRId64, e);
    return buf;
}

static void wrong_version_message(factum_client *c, const char *stream, int64_t expected, int64_t actual)
{
    char eb[32], ab[32];
    if (actual == FACTUM_NO_STREAM)
        snprintf(ab, sizeof ab, "no stream");
    else
        snprintf(ab, sizeof ab, "%" PRId64, actual);
    client_seterr(c, "wrong expected version for stream '%.200s': expected %s, actual %s", stream,
                  expected_text(expected, eb), ab);
}

/* ---- Streams.Append --------------------------------------------------------- */

typedef struct append_ctx {
    factum_client *c;
    const char *stream;
    int64_t expected;
    size_t n;
    factum_append_result *res;
    int got, rc;
} append_ctx;

static int on_append_resp(void *arg, const uint8_t *msg, size_t len)
{
    append_ctx *a = arg;
    factum_client *c = a->c;
    if (a->got) return 0;
    client_arena_reset(client_tl_arena());
    AppendResp *r = event_store__client__streams__append_resp__unpack(&client_tl_arena()->pa, len, msg);
    if (!r) {
        client_seterr(c, "the server's AppendResp does not decode");
        return FACTUM_EPROTOCOL;
    }
    a->got = 1;
    if (r->result_case == EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_SUCCESS && r->success) {
        const EventStore__Client__Streams__AppendResp__Success *s = r->success;
        uint64_t pos = 0;
        if (s->position_option_case ==
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__POSITION_OPTION_POSITION &&
            s->position)
            pos = s->position->commit_position;
        if (s->current_revision_option_case !=
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_CURRENT_REVISION) {
            client_seterr(c, "the server reports success but no revision for %zu appended events", a->n);
            return FACTUM_EPROTOCOL;
        }
        fill_result(a->res, a->n, s->current_revision, pos);
        return 0;
    }
    if (r->result_case == EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_WRONG_EXPECTED_VERSION &&
        r->wrong_expected_version) {
        const EventStore__Client__Streams__AppendResp__WrongExpectedVersion *w = r->wrong_expected_version;
        int64_t actual = FACTUM_NO_STREAM;
        if (w->current_revision_option_case ==
            EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_CURRENT_REVISION)
            actual = w->current_revision > INT64_MAX ? FACTUM_NO_STREAM : (int64_t)w->current_revision;
        else if (
            w->current_revision_option_case ==
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION__NOT_SET &&
            w->current_revision_option_20_6_0_case ==
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_20_6_0_CURRENT_REVISION_20_6_0)
            actual = w->current_revision_20_6_0 > INT64_MAX ? FACTUM_NO_STREAM
                                                            : (int64_t)w->current_revision_20_6_0;
        memset(a->res, 0, sizeof *a->res);
        a->res->actual_version = actual;
        wrong_version_message(c, a->stream, a->expected, actual);
        a->rc = FACTUM_EWRONGVERSION;
        return 0;
    }
    client_seterr(c, "the server's AppendResp has neither success nor wrong_expected_version");
    return FACTUM_EPROTOCOL;
}

/* Check an append and build its request into k (set up by the caller). */
static int append_build(factum_client *c, client_call *k, const char *stream, int64_t expected,
                        const factum_event_data *events, size_t n)
{
    int rc = check_stream(c, stream);
    if (!rc) rc = check_events(c, events, n);
    if (!rc && client_check_expected(expected)) {
        client_seterr(c, "invalid expected version %" PRId64, expected);
        rc = FACTUM_EINVAL;
    }
    if (rc) return rc;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
    sid.stream_name.len = strlen(stream);
    EventStore__Client__Streams__AppendReq__Options opts =
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__INIT;
    opts.stream_identifier = &sid;
    set_expected(&opts, expected, &empty);
    AppendReq req = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__INIT;
    req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS;
    req.options = &opts;
    rc = client_call_add(k, &req.base);
    for (size_t i = 0; i < n && !rc; i++) {
        const factum_event_data *e = &events[i];
        uint8_t id[16];
        char idt[37];
        if (e->has_id)
            memcpy(id, e->id, 16);
        else
            factum_uuid_v4(id);
        factum_uuid_format(id, idt);
        EventStore__Client__UUID uuid = EVENT_STORE__CLIENT__UUID__INIT;
        uuid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        uuid.string = idt;
        MetaEntry me[2] = {EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__METADATA_ENTRY__INIT,
                           EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__METADATA_ENTRY__INIT};
        MetaEntry *mep[2] = {&me[0], &me[1]};
        me[0].key = "type";
        me[0].value = (char *)(uintptr_t)e->type;
        me[1].key = "content-type";
        me[1].value = (e->flags & FACTUM_EVENT_JSON) ? "application/json" : "application/octet-stream";
        Proposed pm = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__INIT;
        pm.id = &uuid;
        pm.n_metadata = 2;
        pm.metadata = mep;
        pm.data.data = (uint8_t *)(uintptr_t)e->data;
        pm.data.len = e->data_len;
        pm.custom_metadata.data = (uint8_t *)(uintptr_t)e->metadata;
        pm.custom_metadata.len = e->metadata_len;
        AppendReq mreq = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__INIT;
        mreq.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE;
        mreq.proposed_message = &pm;
        rc = client_call_add(k, &mreq.base);
    }
    if (rc == -ENOMEM) client_seterr(c, "out of memory");
    return rc;
}

/* The result of a finished append call (rc: the call's). */
static int append_end(factum_client *c, client_call *k, append_ctx *a, int rc)
{
    if (!rc && !a->got) {
        client_seterr(c, "the server ended the append without an answer");
        rc = FACTUM_EPROTOCOL;
    }
    if (!rc) rc = a->rc;
    if (rc == FACTUM_EWRONGVERSION && !a->got) {
        /* From the trailers (KurrentDB's encoding outside of Append). */
        a->res->actual_version = client_call_actual_version(k);
        wrong_version_message(c, a->stream, a->expected, a->res->actual_version);
    }
    return rc;
}

int client_append_locked(factum_client *c, const char *stream, int64_t expected,
                         const factum_event_data *events, size_t n, factum_append_result *res)
{
    factum_append_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->actual_version = FACTUM_NO_STREAM;
    append_ctx a = {c, stream, expected, n, res, 0, 0};
    client_call k;
    client_call_init(&k, "/event_store.client.streams.Streams/Append", on_append_resp, &a);
    int rc = append_build(c, &k, stream, expected, events, n);
    if (!rc) rc = client_call_run(c, &k);
    rc = append_end(c, &k, &a, rc);
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    return rc;
}

int factum_client_append(factum_client *c, const char *stream, int64_t expected,
                         const factum_event_data *events, size_t n, factum_append_result *res)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    return client_append_locked(c, stream, expected, events, n, res);
}

/* ---- pipelined appends ---------------------------------------------------------- */

typedef struct append_op {
    client_call k; /* first: on_done gets it */
    append_ctx a;
    factum_append_result res;
    factum_client_append_cb cb;
    void *ctx;
    char stream[FACTUM_MAX_STREAM_LEN + 1];
} append_op;

static void append_done(client_call *k, int rc)
{
    append_op *op = (append_op *)k;
    rc = append_end(op->a.c, k, &op->a, rc);
    if (!rc) client_errbuf()[0] = 0;
    op->cb(op->ctx, rc, &op->res, rc ? client_errbuf() : "");
    client_call_deinit(k);
    free(op);
}

int factum_client_append_submit(factum_client *c, const char *stream, int64_t expected,
                                const factum_event_data *events, size_t n, factum_client_append_cb cb, void *ctx)
{
    if (!c || !cb) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_stream(c, stream);
    if (rc) return rc;
    append_op *op = calloc(1, sizeof *op);
    if (!op) {
        client_seterr(c, "out of memory");
        return -ENOMEM;
    }
    memcpy(op->stream, stream, strlen(stream) + 1);
    op->res.actual_version = FACTUM_NO_STREAM;
    op->a = (append_ctx){c, op->stream, expected, n, &op->res, 0, 0};
    op->cb = cb;
    op->ctx = ctx;
    client_call_init(&op->k, "/event_store.client.streams.Streams/Append", on_append_resp, &op->a);
    op->k.on_done = append_done;
    rc = append_build(c, &op->k, stream, expected, events, n);
    if (!rc) rc = client_call_submit(c, &op->k);
    if (rc) {
        client_call_deinit(&op->k);
        free(op);
    }
    return rc;
}

/* ---- v2 AppendSession ------------------------------------------------------------ */

typedef Kurrentdb__Protocol__V2__Streams__AppendRequest V2Request;
typedef Kurrentdb__Protocol__V2__Streams__AppendRecord V2Record;
typedef Kurrentdb__Protocol__V2__Streams__AppendRecord__PropertiesEntry V2Prop;
typedef Google__Protobuf__Value PValue;

/* JSON -> google.protobuf.Value, allocated in the arena. */
static PValue *json_to_value(client_arena *a, const json_value *j);

static Google__Protobuf__Struct *json_to_struct(client_arena *a, const json_value *j)
{
    Google__Protobuf__Struct *s = client_arena_alloc(a, sizeof *s);
    if (!s) return NULL;
    google__protobuf__struct__init(s);
    s->n_fields = j->n;
    s->fields = j->n ? client_arena_alloc(a, j->n * sizeof *s->fields) : NULL;
    if (j->n && !s->fields) return NULL;
    for (size_t i = 0; i < j->n; i++) {
        Google__Protobuf__Struct__FieldsEntry *f = client_arena_alloc(a, sizeof *f);
        if (!f) return NULL;
        google__protobuf__struct__fields_entry__init(f);
        f->key = j->keys[i];
        if (!(f->value = json_to_value(a, j->items[i]))) return NULL;
        s->fields[i] = f;
    }
    return s;
}

static PValue *json_to_value(client_arena *a, const json_value *j)
{
    PValue *v = client_arena_alloc(a, sizeof *v);
    if (!v) return NULL;
    google__protobuf__value__init(v);
    switch (j->type) {
    case JSON_NULL:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = j->type == JSON_TRUE;
        break;
    case JSON_NUMBER:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v->number_value = json_number(j);
        break;
    case JSON_STRING:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v->string_value = j->str;
        break;
    case JSON_ARRAY: {
        Google__Protobuf__ListValue *l = client_arena_alloc(a, sizeof *l);
        if (!l) return NULL;
        google__protobuf__list_value__init(l);
        l->n_values = j->n;
        l->values = j->n ? client_arena_alloc(a, j->n * sizeof *l->values) : NULL;
        if (j->n && !l->values) return NULL;
        for (size_t i = 0; i < j->n; i++)
            if (!(l->values[i] = json_to_value(a, j->items[i]))) return NULL;
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        v->list_value = l;
        break;
    }
    case JSON_OBJECT:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        if (!(v->struct_value = json_to_struct(a, j))) return NULL;
        break;
    }
    return v;
}

typedef struct session_ctx {
    factum_client *c;
    const factum_append_req *reqs;
    size_t n;
    factum_append_result *results;
    int got;
} session_ctx;

static int on_session_resp(void *arg, const uint8_t *msg, size_t len)
{
    session_ctx *s = arg;
    factum_client *c = s->c;
    if (s->got) return 0;
    client_arena_reset(client_tl_arena());
    Kurrentdb__Protocol__V2__Streams__AppendSessionResponse *r =
        kurrentdb__protocol__v2__streams__append_session_response__unpack(&client_tl_arena()->pa, len, msg);
    if (!r) {
        client_seterr(c, "the server's AppendSessionResponse does not decode");
        return FACTUM_EPROTOCOL;
    }
    if (r->n_output != s->n) {
        client_seterr(c, "the server answered %zu of %zu streams of the append session", r->n_output, s->n);
        return FACTUM_EPROTOCOL;
    }
    for (size_t i = 0; i < s->n; i++) {
        const Kurrentdb__Protocol__V2__Streams__AppendResponse *o = r->output[i];
        if (!o ||
            o->stream_revision_option_case !=
                KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RESPONSE__STREAM_REVISION_OPTION_STREAM_REVISION ||
            o->stream_revision < 0 ||
            (o->stream_option_case && o->stream && strcmp(o->stream, s->reqs[i].stream))) {
            client_seterr(c, "the server's answer for stream %zu of the append session is not valid", i);
            return FACTUM_EPROTOCOL;
        }
        int64_t pos = o->position_option_case ? o->position : (r->position_option_case ? r->position : 0);
        fill_result(&s->results[i], s->reqs[i].n_events, (uint64_t)o->stream_revision,
                    pos > 0 ? (uint64_t)pos : 0);
    }
    s->got = 1;
    return 0;
}

static size_t part_of(const factum_append_req *reqs, size_t n, const char *stream)
{
    for (size_t i = 0; stream && i < n; i++)
        if (!strcmp(reqs[i].stream, stream)) return i;
    return 0;
}

/* The failing part and its details, from the status of a failed session. */
static int session_error(factum_client *c, const client_call *k, int rc, const factum_append_req *reqs,
                         size_t n, factum_append_result *results, size_t *failed)
{
    const char *type;
    ProtobufCBinaryData v;
    *failed = part_of(reqs, n, k->stream_name[0] ? k->stream_name : NULL);
    if (client_call_detail(c, k, &type, &v) == 0) {
        if (!strcmp(type, "kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails")) {
            Kurrentdb__Protocol__V2__Streams__Errors__StreamRevisionConflictErrorDetails *d =
                kurrentdb__protocol__v2__streams__errors__stream_revision_conflict_error_details__unpack(
                    &client_tl_arena()->pa, v.len, v.data);
            if (d) {
                *failed = part_of(reqs, n, d->stream);
                results[*failed].actual_version =
                    d->actual_revision < 0 ? FACTUM_NO_STREAM : d->actual_revision;
                wrong_version_message(c, reqs[*failed].stream, reqs[*failed].expected,
                                      results[*failed].actual_version);
            }
            return FACTUM_EWRONGVERSION;
        }
        if (!strcmp(type, "kurrentdb.protocol.v2.streams.errors.StreamTombstonedErrorDetails")) {
            Kurrentdb__Protocol__V2__Streams__Errors__StreamTombstonedErrorDetails *d =
                kurrentdb__protocol__v2__streams__errors__stream_tombstoned_error_details__unpack(
                    &client_tl_arena()->pa, v.len, v.data);
            if (d) *failed = part_of(reqs, n, d->stream);
            client_seterr(c, "stream '%.200s' is deleted (tombstoned)", reqs[*failed].stream);
            return FACTUM_EDELETED;
        }
        if (!strcmp(type, "kurrentdb.protocol.v2.streams.errors.AppendRecordSizeExceededErrorDetails")) {
            Kurrentdb__Protocol__V2__Streams__Errors__AppendRecordSizeExceededErrorDetails *d =
                kurrentdb__protocol__v2__streams__errors__append_record_size_exceeded_error_details__unpack(
                    &client_tl_arena()->pa, v.len, v.data);
            if (d) *failed = part_of(reqs, n, d->stream);
            return FACTUM_ETOOBIG;
        }
    }
    if (rc == FACTUM_EWRONGVERSION) results[*failed].actual_version = client_call_actual_version(k);
    return rc;
}

int factum_client_append_multi(factum_client *c, const factum_append_req *reqs, size_t n,
                               factum_append_result *results, size_t *failed)
{
    if (!c) return FACTUM_EINVAL;
    size_t failed_dummy;
    if (!failed) failed = &failed_dummy;
    *failed = 0;
    factum_append_result *res = results ? results : calloc(n ? n : 1, sizeof *res);
    if (!res) return -ENOMEM;
    client_errbuf()[0] = 0;
    int rc = 0;
    if (!reqs || n == 0) {
        client_seterr(c, "a multi-stream append needs at least one part");
        rc = FACTUM_EINVAL;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        memset(&res[i], 0, sizeof res[i]);
        res[i].actual_version = FACTUM_NO_STREAM;
    }
    /* Check everything before sending anything. */
    for (size_t i = 0; i < n && !rc; i++) {
        *failed = i;
        if ((rc = check_stream(c, reqs[i].stream)) ||
            (rc = check_events(c, reqs[i].events, reqs[i].n_events)))
            break;
        if (client_check_expected(reqs[i].expected)) {
            client_seterr(c, "part %zu: invalid expected version %" PRId64, i, reqs[i].expected);
            rc = FACTUM_EINVAL;
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(reqs[j].stream, reqs[i].stream)) {
                client_seterr(c, "stream '%.200s' appears twice in one multi-stream append", reqs[i].stream);
                rc = FACTUM_EINVAL;
                break;
            }
        for (size_t e = 0; e < reqs[i].n_events && !rc; e++) {
            const factum_event_data *ev = &reqs[i].events[e];
            if (!ev->metadata_len) continue;
            json_value *j;
            if (json_parse(ev->metadata, ev->metadata_len, &j) == 0) {
                int obj = j->type == JSON_OBJECT;
                json_free(j);
                if (obj) continue;
            }
            client_seterr(c,
                          "part %zu, event %zu: the metadata of a multi-stream append must be a JSON object "
                          "(the v2 protocol carries it as properties)",
                          i, e);
            rc = FACTUM_EINVAL;
        }
    }
    client_call k;
    client_call_init(&k, "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession", on_session_resp,
                     NULL);
    session_ctx s = {c, reqs, n, res, 0};
    k.ctx = &s;
    client_arena build;
    client_arena_init(&build);
    for (size_t i = 0; i < n && !rc; i++) {
        const factum_append_req *q = &reqs[i];
        client_arena_reset(&build);
        /* The JSON trees the properties point into live until the part is packed. */
        json_value **trees = calloc(q->n_events, sizeof *trees);
        V2Record **recs = client_arena_alloc(&build, q->n_events * sizeof *recs);
        if (!recs || !trees) rc = -ENOMEM;
        for (size_t e = 0; e < q->n_events && !rc; e++) {
            const factum_event_data *ev = &q->events[e];
            V2Record *r = client_arena_alloc(&build, sizeof *r);
            Kurrentdb__Protocol__V2__Streams__SchemaInfo *si = client_arena_alloc(&build, sizeof *si);
            char *idt = client_arena_alloc(&build, 37);
            if (!r || !si || !idt) {
                rc = -ENOMEM;
                break;
            }
            kurrentdb__protocol__v2__streams__append_record__init(r);
            kurrentdb__protocol__v2__streams__schema_info__init(si);
            uint8_t id[16];
            if (ev->has_id)
                memcpy(id, ev->id, 16);
            else
                factum_uuid_v4(id);
            factum_uuid_format(id, idt);
            r->record_id_option_case =
                KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__RECORD_ID_OPTION_RECORD_ID;
            r->record_id = idt;
            si->format_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__FORMAT_OPTION_FORMAT;
            si->format = (ev->flags & FACTUM_EVENT_JSON)
                             ? KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON
                             : KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_BYTES;
            si->name_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__NAME_OPTION_NAME;
            si->name = (char *)(uintptr_t)ev->type;
            r->schema = si;
            r->data.data = (uint8_t *)(uintptr_t)ev->data;
            r->data.len = ev->data_len;
            if (ev->metadata_len) {
                /* It parsed as an object above: only memory can fail now. */
                const json_value *j = NULL;
                if (json_parse(ev->metadata, ev->metadata_len, &trees[e]) == 0) j = trees[e];
                V2Prop **props = j && j->n ? client_arena_alloc(&build, j->n * sizeof *props) : NULL;
                if (!j || (j->n && !props)) {
                    rc = -ENOMEM;
                    break;
                }
                for (size_t f = 0; f < j->n && !rc; f++) {
                    V2Prop *pr = client_arena_alloc(&build, sizeof *pr);
                    if (!pr) {
                        rc = -ENOMEM;
                        break;
                    }
                    kurrentdb__protocol__v2__streams__append_record__properties_entry__init(pr);
                    pr->key = j->keys[f];
                    if (!(pr->value = json_to_value(&build, j->items[f]))) rc = -ENOMEM;
                    props[f] = pr;
                }
                r->n_properties = j->n;
                r->properties = props;
            }
            recs[e] = r;
        }
        if (!rc) {
            V2Request req = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__INIT;
            req.stream_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__STREAM_OPTION_STREAM;
            req.stream = (char *)(uintptr_t)q->stream;
            if (q->expected != FACTUM_ANY) {
                req.expected_revision_option_case =
                    KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__EXPECTED_REVISION_OPTION_EXPECTED_REVISION;
                req.expected_revision = q->expected;
            }
            req.n_records = q->n_events;
            req.records = recs;
            rc = client_call_add(&k, &req.base);
        }
        for (size_t e = 0; trees && e < q->n_events; e++)
            json_free(trees[e]);
        free(trees);
    }
    client_arena_deinit(&build);
    if (rc == -ENOMEM) client_seterr(c, "out of memory");
    if (!rc) {
        rc = client_call_run(c, &k);
        if (!rc && !s.got) {
            client_seterr(c, "the server ended the append session without an answer");
            rc = FACTUM_EPROTOCOL;
        }
        if (rc && k.grpc_status > 0) rc = session_error(c, &k, rc, reqs, n, res, failed);
    }
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    if (!results) free(res);
    return rc;
}
