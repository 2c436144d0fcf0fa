/*
 * v2.c - kurrentdb.protocol.v2.streams.StreamsService.AppendSession: the
 * atomic multi-stream append. The client streams one AppendRequest per
 * stream (each stream once), then closes; all of them are written as one
 * factum_append_multi, all or nothing. Errors travel as gRPC statuses with
 * a google.rpc.Status in grpc-status-details-bin whose Any names the v2
 * error detail (StreamRevisionConflictErrorDetails, ...), which is what the
 * clients decode.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "auth/acl.h"
#include "google/rpc/status.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "kurrentdb/v2/streams_errors.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "store/snapshot.h"
#include "rpc/rpc.h"
#include "rpc/events.h"
#include "rpc/vstream.h"

#define SESSION_MAX_STREAMS 1024

typedef Kurrentdb__Protocol__V2__Streams__AppendRequest AppendRequest;
typedef Kurrentdb__Protocol__V2__Streams__AppendRecord AppendRecord;

typedef struct part {
    char *stream;
    int64_t expected;
    rpc_events ev;
} part;

typedef struct session {
    rpc_ctx *ctx;
    net_call *c;
    part *parts;
    size_t n, cap;
    size_t bytes;
    int pending, closed, failed;
    int rc;
    size_t failed_part;
    factum_append_result *res;
    rpc_submit sub;
} session;

static void session_free(session *s)
{
    for (size_t i = 0; i < s->n; i++) {
        rpc_events_free(&s->parts[i].ev);
        free(s->parts[i].stream);
    }
    free(s->parts);
    free(s->res);
    free(s);
}

static int session_start(net_call *c, void *svc)
{
    session *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->ctx = svc;
    s->c = c;
    net_call_set_state(c, s);
    return 0;
}

/* Finish with `code` and a detail message `m` of type `type_name`. */
static void fail_detail(net_call *c, int code, const char *message, const char *type_name, const ProtobufCMessage *m)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    char url[200];
    uint8_t *detail = NULL;
    if (m) {
        size_t n = protobuf_c_message_get_packed_size(m);
        detail = malloc(n ? n : 1);
        if (detail) {
            protobuf_c_message_pack(m, detail);
            snprintf(url, sizeof url, "type.googleapis.com/%s", type_name);
            any.type_url = url;
            any.value.data = detail;
            any.value.len = n;
            st.details = &any;
        }
    }
    st.code = code;
    st.message = (char *)message;
    size_t n = google__rpc__status__get_packed_size(&st);
    uint8_t *packed = malloc(n ? n : 1);
    base_buf b64 = {0};
    if (packed) {
        google__rpc__status__pack(&st, packed);
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)packed[i] << 16 | (i + 1 < n ? (uint32_t)packed[i + 1] << 8 : 0) |
                         (i + 2 < n ? packed[i + 2] : 0);
            char q[4] = {tbl[v >> 18 & 63], tbl[v >> 12 & 63], i + 1 < n ? tbl[v >> 6 & 63] : '=',
                         i + 2 < n ? tbl[v & 63] : '='};
            base_buf_append(&b64, q, 4);
        }
        base_buf_append(&b64, "", 1);
    }
    net_header h[1] = {{"grpc-status-details-bin", b64.data ? (const char *)b64.data : ""}};
    net_call_finish(c, code, message, h, b64.data ? 1 : 0);
    base_buf_free(&b64);
    free(packed);
    free(detail);
}

/* google.protobuf.Value -> JSON (properties become the event's metadata). */
static int value_json(base_buf *b, const Google__Protobuf__Value *v, int depth);

static int struct_json(base_buf *b, const Google__Protobuf__Struct *s, int depth)
{
    int rc = base_buf_append(b, "{", 1);
    for (size_t i = 0; s && i < s->n_fields && !rc; i++) {
        if (i) rc = base_buf_append(b, ",", 1);
        const char *k = s->fields[i]->key ? s->fields[i]->key : "";
        if (!rc) rc = json_write_string(b, k, strlen(k));
        if (!rc) rc = base_buf_append(b, ":", 1);
        if (!rc) rc = value_json(b, s->fields[i]->value, depth + 1);
    }
    return rc ? rc : base_buf_append(b, "}", 1);
}

static int value_json(base_buf *b, const Google__Protobuf__Value *v, int depth)
{
    if (!v || depth > 32) return base_buf_append(b, "null", 4);
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
        double d = v->number_value;
        if (d != d || d == 1.0 / 0.0 || d == -1.0 / 0.0) return base_buf_append(b, "null", 4);
        if (d == (double)(int64_t)d && d < 9e15 && d > -9e15) return base_buf_printf(b, "%" PRId64, (int64_t)d);
        return base_buf_printf(b, "%.17g", d);
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        return json_write_string(b, v->string_value ? v->string_value : "", v->string_value ? strlen(v->string_value) : 0);
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE: return base_buf_printf(b, "%s", v->bool_value ? "true" : "false");
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE: return struct_json(b, v->struct_value, depth);
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE: {
        int rc = base_buf_append(b, "[", 1);
        for (size_t i = 0; v->list_value && i < v->list_value->n_values && !rc; i++) {
            if (i) rc = base_buf_append(b, ",", 1);
            if (!rc) rc = value_json(b, v->list_value->values[i], depth + 1);
        }
        return rc ? rc : base_buf_append(b, "]", 1);
    }
    default: return base_buf_append(b, "null", 4);
    }
}

/* A record over the event size limit: APPEND_RECORD_SIZE_EXCEEDED. */
static int record_size_check(session *s, const part *p, const char *record_id, size_t size)
{
    if (size <= s->ctx->max_event_size) return 0;
    Kurrentdb__Protocol__V2__Streams__Errors__AppendRecordSizeExceededErrorDetails d =
        KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__APPEND_RECORD_SIZE_EXCEEDED_ERROR_DETAILS__INIT;
    d.stream = p->stream;
    d.record_id = (char *)(record_id ? record_id : "");
    d.size = (int32_t)(size > INT32_MAX ? INT32_MAX : size);
    d.max_size = (int32_t)s->ctx->max_event_size;
    fail_detail(s->c, GRPC_INVALID_ARGUMENT, "The record is larger than the server accepts",
                "kurrentdb.protocol.v2.streams.errors.AppendRecordSizeExceededErrorDetails", &d.base);
    return -1;
}

static int take_record(session *s, part *p, const AppendRecord *r)
{
    rpc_ctx *ctx = s->ctx;
    const char *type = r->schema && r->schema->name_option_case ? r->schema->name : NULL;
    if (!type || !*type) {
        rpc_fail(s->c, GRPC_INVALID_ARGUMENT, "a record needs schema.name (its event type)", NULL, NULL);
        return -1;
    }
    base_buf meta = {0};
    if (r->n_properties) {
        int rc = base_buf_append(&meta, "{", 1);
        for (size_t i = 0; i < r->n_properties && !rc; i++) {
            if (i) rc = base_buf_append(&meta, ",", 1);
            const char *k = r->properties[i]->key ? r->properties[i]->key : "";
            if (!rc) rc = json_write_string(&meta, k, strlen(k));
            if (!rc) rc = base_buf_append(&meta, ":", 1);
            if (!rc) rc = value_json(&meta, r->properties[i]->value, 0);
        }
        if (!rc) rc = base_buf_append(&meta, "}", 1);
        if (rc) {
            base_buf_free(&meta);
            rpc_fail(s->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            return -1;
        }
    }
    EventStore__Client__UUID id = EVENT_STORE__CLIENT__UUID__INIT;
    char gen[37];
    if (r->record_id_option_case && r->record_id && *r->record_id) {
        id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        id.string = r->record_id;
    } else {
        uint8_t u[16];
        factum_uuid_v4(u); /* the server makes one if the client did not */
        factum_uuid_format(u, gen);
        id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        id.string = gen;
    }
    int json = r->schema->format_option_case &&
               r->schema->format == KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON;
    char *keys[2] = {"type", "content-type"};
    char *values[2] = {(char *)type, json ? "application/json" : "application/octet-stream"};
    ProtobufCBinaryData md = {meta.len, meta.data};
    if (record_size_check(s, p, id.string, r->data.len + meta.len)) {
        base_buf_free(&meta);
        return -1;
    }
    const char *why = NULL;
    if (rpc_vstream_check_append(p->stream, strlen(p->stream), meta.data, meta.len, &why)) {
        base_buf_free(&meta);
        rpc_fail(s->c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
        return -1;
    }
    int rc = rpc_take_event(ctx, s->c, &id, 2, keys, values, r->data, md, &p->ev);
    base_buf_free(&meta);
    return rc;
}

static void session_message(net_call *c, const uint8_t *msg, size_t len)
{
    session *s = net_call_state(c);
    pb_alloc pa;
    AppendRequest *req =
        rpc_unpack(c, &kurrentdb__protocol__v2__streams__append_request__descriptor, msg, len, &pa, "AppendRequest");
    if (!req) return;
    const char *stream = req->stream_option_case ? req->stream : NULL;
    if (!stream || factum_check_stream_name(stream, strlen(stream))) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
        goto out;
    }
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->parts[i].stream, stream)) {
            Kurrentdb__Protocol__V2__Streams__Errors__StreamAlreadyInAppendSessionErrorDetails d =
                KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__STREAM_ALREADY_IN_APPEND_SESSION_ERROR_DETAILS__INIT;
            d.stream = (char *)stream;
            fail_detail(c, GRPC_ABORTED, "The stream appears twice in the append session",
                        "kurrentdb.protocol.v2.streams.errors.StreamAlreadyInAppendSessionErrorDetails", &d.base);
            goto out;
        }
    /* Each stream as it comes, before its records are taken; nothing is
     * written before the last one (all or nothing). */
    if (rpc_authorize_stream(s->ctx, c, stream, AUTH_WRITE)) goto out;
    if (s->n >= SESSION_MAX_STREAMS) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "too many streams in one append session", NULL, NULL);
        goto out;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        part *np = realloc(s->parts, cap * sizeof *np);
        if (!np) {
            rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            goto out;
        }
        s->parts = np;
        s->cap = cap;
    }
    part *p = &s->parts[s->n];
    memset(p, 0, sizeof *p);
    if (!(p->stream = strdup(stream))) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        goto out;
    }
    s->n++;
    /* Absent: any. Otherwise KurrentDB's constants or a revision. */
    p->expected = FACTUM_ANY;
    if (req->expected_revision_option_case) {
        int64_t e = req->expected_revision;
        if (e >= 0 || e == FACTUM_ANY || e == FACTUM_NO_STREAM || e == FACTUM_STREAM_EXISTS) {
            p->expected = e;
        } else {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "unsupported expected revision", NULL, NULL);
            goto out;
        }
    }
    for (size_t i = 0; i < req->n_records; i++) {
        if (take_record(s, p, req->records[i])) goto out;
        s->bytes += req->records[i]->data.len;
    }
    if (s->bytes > s->ctx->max_append_size) {
        Kurrentdb__Protocol__V2__Streams__Errors__AppendTransactionSizeExceededErrorDetails d =
            KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__APPEND_TRANSACTION_SIZE_EXCEEDED_ERROR_DETAILS__INIT;
        d.size = (int32_t)(s->bytes > INT32_MAX ? INT32_MAX : s->bytes);
        d.max_size = (int32_t)s->ctx->max_append_size;
        fail_detail(c, GRPC_ABORTED, "The append session is larger than the server accepts",
                    "kurrentdb.protocol.v2.streams.errors.AppendTransactionSizeExceededErrorDetails", &d.base);
    }
out:
    rpc_unpack_free(req, &pa);
}

static void session_done_loop(void *arg)
{
    session *s = arg;
    rpc_store_done(s->ctx);
    s->pending = 0;
    net_call *c = s->c;
    if (s->closed) {
        session_free(s); /* releases its charges on c: before the last reference goes */
        net_call_unref(c);
        return;
    }
    rpc_ctx *ctx = s->ctx;
    if (s->rc == 0) {
        Kurrentdb__Protocol__V2__Streams__AppendSessionResponse r =
            KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_SESSION_RESPONSE__INIT;
        Kurrentdb__Protocol__V2__Streams__AppendResponse *out = calloc(s->n, sizeof *out);
        Kurrentdb__Protocol__V2__Streams__AppendResponse **outp = calloc(s->n, sizeof *outp);
        if (!out || !outp) {
            free(out);
            free(outp);
            net_call_finish(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
            net_call_unref(c);
            return;
        }
        uint64_t last_pos = 0;
        for (size_t i = 0; i < s->n; i++) {
            kurrentdb__protocol__v2__streams__append_response__init(&out[i]);
            out[i].stream_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RESPONSE__STREAM_OPTION_STREAM;
            out[i].stream = s->parts[i].stream;
            out[i].stream_revision_option_case =
                KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RESPONSE__STREAM_REVISION_OPTION_STREAM_REVISION;
            out[i].stream_revision = (int64_t)s->res[i].last_version;
            if (s->res[i].last_position) {
                out[i].position_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RESPONSE__POSITION_OPTION_POSITION;
                out[i].position = (int64_t)s->res[i].last_position;
                if (s->res[i].last_position > last_pos) last_pos = s->res[i].last_position;
            }
            outp[i] = &out[i];
            if (!s->res[i].idempotent)
                rpc_audit_stream_write(ctx, c, s->parts[i].stream, s->parts[i].ev.ev, s->parts[i].ev.n);
            ctx->st.append_events += s->parts[i].ev.n;
            ctx->st.append_bytes += s->parts[i].ev.bytes;
        }
        ctx->st.appends++;
        r.n_output = s->n;
        r.output = outp;
        if (last_pos) {
            r.position_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_SESSION_RESPONSE__POSITION_OPTION_POSITION;
            r.position = (int64_t)last_pos;
        }
        if (rpc_send(ctx, c, &r.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
        free(out);
        free(outp);
    } else {
        ctx->st.append_errors++;
        part *p = &s->parts[s->failed_part < s->n ? s->failed_part : 0];
        if (s->rc == FACTUM_EWRONGVERSION || s->rc == FACTUM_EIDEMPOTENCY) {
            Kurrentdb__Protocol__V2__Streams__Errors__StreamRevisionConflictErrorDetails d =
                KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__STREAM_REVISION_CONFLICT_ERROR_DETAILS__INIT;
            d.stream = p->stream;
            d.expected_revision = p->expected;
            d.actual_revision = s->res[s->failed_part].actual_version;
            if (s->rc == FACTUM_EIDEMPOTENCY) {
                factum_stream_info info;
                if (factum_stream_get_info(ctx->store, p->stream, &info) == 0) d.actual_revision = info.last_version;
            }
            fail_detail(c, GRPC_FAILED_PRECONDITION, "Wrong expected revision",
                        "kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails", &d.base);
        } else if (s->rc == FACTUM_EDELETED) {
            Kurrentdb__Protocol__V2__Streams__Errors__StreamTombstonedErrorDetails d =
                KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__STREAM_TOMBSTONED_ERROR_DETAILS__INIT;
            d.stream = p->stream;
            fail_detail(c, GRPC_FAILED_PRECONDITION, "The stream is tombstoned",
                        "kurrentdb.protocol.v2.streams.errors.StreamTombstonedErrorDetails", &d.base);
        } else {
            rpc_fail_store(c, s->rc, p->stream, p->expected, -1);
        }
    }
    net_call_unref(c);
}

static void session_done_store(void *arg, int rc, const factum_append_result *results, size_t n, size_t failed)
{
    session *s = arg;
    s->rc = rc;
    s->failed_part = failed;
    if (n && s->res) memcpy(s->res, results, n * sizeof *results);
    rpc_to_loop(s->ctx, session_done_loop, s);
}

static int session_submit(rpc_submit *sb)
{
    session *s = (session *)((char *)sb - offsetof(session, sub));
    factum_append_req *reqs = calloc(s->n, sizeof *reqs);
    if (!reqs) return -ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        reqs[i] = (factum_append_req){s->parts[i].stream, s->parts[i].expected, s->parts[i].ev.ev, s->parts[i].ev.n};
    int rc = rpc_append_async(s->ctx, reqs, s->n, session_done_store, s);
    free(reqs); /* the request structs are copied into the writer's request */
    return rc;
}

static void session_submit_failed(rpc_submit *sb, int rc)
{
    session *s = (session *)((char *)sb - offsetof(session, sub));
    net_call *c = s->c;
    s->pending = 0;
    char why[600];
    const char *m = NULL;
    for (size_t i = 0; !m && (rc == FACTUM_EINVAL || rc == FACTUM_EBADJSON) && i < s->n; i++)
        m = rpc_upcasters_refusal(s->parts[i].stream, &s->parts[i].ev, why, sizeof why);
    if (s->closed) session_free(s);
    else if (m) rpc_fail(c, GRPC_INVALID_ARGUMENT, m, NULL, NULL);
    else rpc_fail_store(c, rc, s->parts[0].stream, s->parts[0].expected, -1);
    net_call_unref(c);
}

static void session_half_close(net_call *c)
{
    session *s = net_call_state(c);
    if (!s->n) {
        fail_detail(c, GRPC_FAILED_PRECONDITION, "The append session has no requests", "", NULL);
        return;
    }
    /* the snapshot convention (factum.h "Snapshots"): $streamVersion checked */
    for (size_t i = 0; i < s->n; i++) {
        char why[512];
        if (snapshot_check_append(s->ctx->store, s->parts[i].stream, s->parts[i].ev.ev, s->parts[i].ev.n, why,
                                  sizeof why)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
            return;
        }
    }
    s->res = calloc(s->n, sizeof *s->res);
    if (!s->res) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return;
    }
    net_call_ref(c);
    s->pending = 1;
    s->sub = (rpc_submit){NULL, c, session_submit, session_submit_failed};
    rpc_submit_start(s->ctx, &s->sub);
}

static void session_close(net_call *c)
{
    session *s = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!s) return;
    if (s->pending) s->closed = 1;
    else session_free(s);
}

const net_method rpc_v2_methods[] = {
    {"/kurrentdb.protocol.v2.streams.StreamsService/AppendSession", session_start, session_message, session_half_close,
     NULL, session_close, NULL},
};
const size_t rpc_v2_n = sizeof rpc_v2_methods / sizeof *rpc_v2_methods;
