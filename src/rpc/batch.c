/*
 * batch.c - Streams.BatchAppend: one long-lived bidirectional call carries
 * many appends, each a "batch" keyed by its correlation id, split over
 * several messages (options in the first, is_final on the last). Each
 * finished batch becomes one asynchronous append; its result goes back
 * in-band as a BatchAppendResp, errors as a google.rpc.Status with a typed
 * Any detail, as KurrentDB does. The call is bounded: at most
 * BATCH_MAX_OPEN batches being assembled, each within the append size limit
 * and all charged to the connection (NET-5); at most BATCH_MAX_IN_STORE
 * handed to the store; and while answers wait because the client does not
 * read them, or the store has its share, the call reads no more (RPC-5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "auth/acl.h"
#include "google/rpc/status.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/events.h"
#include "store/snapshot.h"
#include "rpc/streams_int.h"
#include "rpc/vstream.h"
#include "rpc/wire.h"

#include <stddef.h>

#define BATCH_MAX_OPEN 256
#define BATCH_MAX_IN_STORE 32

typedef EventStore__Client__Streams__BatchAppendReq BatchReq;
typedef EventStore__Client__Streams__BatchAppendResp BatchResp;

typedef struct bcall bcall;

typedef struct batch {
    struct batch *next;
    bcall *owner;
    char corr[37];
    char *stream;
    int64_t expected;
    rpc_events ev;
    int rc;
    int refused; /* an event failed rpc_vstream_check_append: answered at is_final, not written */
    const char *refused_why; /* its reason (static) */
    factum_append_result res;
    rpc_submit sub;
} batch;

typedef struct outmsg {
    struct outmsg *next;
    size_t len, mem;
    uint8_t data[];
} outmsg;

struct bcall {
    rpc_ctx *ctx;
    net_call *c;
    batch *open;
    size_t n_open;
    int in_store; /* batches handed to the store and not yet answered */
    int closed, half_closed;
    int busy; /* inside done_loop: the call may close under us, k must stay */
    outmsg *out, *out_tail; /* answers the call's queue could not take yet */
};

static void batch_free(batch *b)
{
    rpc_events_free(&b->ev);
    free(b->stream);
    free(b);
}

static void bcall_free(bcall *k)
{
    while (k->open) {
        batch *b = k->open;
        k->open = b->next;
        batch_free(b);
    }
    while (k->out) {
        outmsg *o = k->out;
        k->out = o->next;
        net_call_release(k->c, o->mem);
        free(o);
    }
    free(k);
}

int rpc_batch_start(net_call *c, void *svc)
{
    bcall *k = calloc(1, sizeof *k);
    if (!k) return -ENOMEM;
    k->ctx = svc;
    k->c = c;
    net_call_set_state(c, k);
    return 0;
}

/* Send (or queue) one packed answer. */
static void send_resp(bcall *k, const BatchResp *r)
{
    if (net_call_done(k->c)) return;
    if (!k->out) {
        int rc = rpc_send(k->ctx, k->c, &r->base);
        if (rc == 0) return;
        if (rc != -EAGAIN) {
            net_call_finish(k->c, GRPC_INTERNAL, "could not send a response", NULL, 0);
            return;
        }
    }
    size_t n = event_store__client__streams__batch_append_resp__get_packed_size(r);
    if (net_call_charge(k->c, sizeof(outmsg) + n + 16)) {
        net_call_finish(k->c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, 0);
        return;
    }
    outmsg *o = malloc(sizeof *o + n);
    if (!o) {
        net_call_release(k->c, sizeof(outmsg) + n + 16);
        net_call_finish(k->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
        return;
    }
    o->next = NULL;
    o->len = n;
    o->mem = sizeof(outmsg) + n + 16;
    event_store__client__streams__batch_append_resp__pack(r, o->data);
    if (k->out_tail) k->out_tail->next = o;
    else k->out = o;
    k->out_tail = o;
    net_call_want_writable(k->c);
    net_call_pause(k->c); /* no more requests until the client reads its answers (RPC-5) */
}

/* Read more requests only while the client reads its answers and the
 * store does not hold too many of this call's batches (RPC-5). */
static void flow(bcall *k)
{
    if (k->out || k->in_store >= BATCH_MAX_IN_STORE || rpc_submit_waiting(k->ctx, k->c)) net_call_pause(k->c);
    else net_call_resume(k->c);
}

static void maybe_end(bcall *k)
{
    /* The client has said everything and every batch is answered. */
    if (k->half_closed && !k->in_store && !k->out && !net_call_done(k->c))
        net_call_finish(k->c, GRPC_OK, NULL, NULL, 0);
}

void rpc_batch_writable(net_call *c)
{
    bcall *k = net_call_state(c);
    while (k->out && !net_call_done(c)) {
        int rc = net_call_send(c, k->out->data, k->out->len);
        if (rc == -EAGAIN) {
            net_call_want_writable(c);
            return;
        }
        outmsg *o = k->out;
        k->out = o->next;
        if (!k->out) k->out_tail = NULL;
        net_call_release(c, o->mem);
        free(o);
    }
    flow(k);
    maybe_end(k);
}

/* Answer a batch: success, or an error Status with a typed detail. */
static void answer(bcall *k, const char *corr, const char *stream, int64_t expected, int rc,
                   const factum_append_result *res, const char *why)
{
    BatchResp r = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__INIT;
    EventStore__Client__UUID id = EVENT_STORE__CLIENT__UUID__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
    EventStore__Client__Streams__BatchAppendResp__Success ok =
        EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__SUCCESS__INIT;
    EventStore__Client__AllStreamPosition pos = EVENT_STORE__CLIENT__ALL_STREAM_POSITION__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    uint8_t detail[1200];
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
    id.string = (char *)corr;
    r.correlation_id = &id;
    if (stream) {
        sid.stream_name.data = (uint8_t *)stream;
        sid.stream_name.len = strlen(stream);
        r.stream_identifier = &sid;
    }
    if (expected >= 0) {
        r.expected_stream_position_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_STREAM_POSITION;
        r.stream_position = (uint64_t)expected;
    } else if (expected == FACTUM_NO_STREAM) {
        r.expected_stream_position_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_NO_STREAM;
        r.no_stream = &empty;
    } else if (expected == FACTUM_STREAM_EXISTS) {
        r.expected_stream_position_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_STREAM_EXISTS;
        r.stream_exists = &empty;
    } else {
        r.expected_stream_position_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_ANY;
        r.any = &empty;
    }
    if (rc == 0) {
        r.result_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__RESULT_SUCCESS;
        r.success = &ok;
        if ((int64_t)res->last_version < 0) {
            ok.current_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_NO_STREAM;
            ok.no_stream = &empty;
        } else {
            ok.current_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_CURRENT_REVISION;
            ok.current_revision = res->last_version;
        }
        if (res->last_position) {
            pos.commit_position = pos.prepare_position = res->last_position;
            ok.position_option_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__SUCCESS__POSITION_OPTION_POSITION;
            ok.position = &pos;
        } else {
            ok.position_option_case =
                EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__SUCCESS__POSITION_OPTION_NO_POSITION;
            ok.no_position = &empty;
        }
        send_resp(k, &r);
        return;
    }
    /* The typed detail, packed into the Any. */
    size_t dn = 0;
    const char *type;
    if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EIDEMPOTENCY) {
        EventStore__Client__WrongExpectedVersion w = EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__INIT;
        int64_t actual = res->actual_version;
        if (rc == FACTUM_EIDEMPOTENCY) {
            factum_stream_info info;
            actual = factum_stream_get_info(k->ctx->store, stream, &info) == 0 ? info.last_version : FACTUM_NO_STREAM;
        }
        if (actual < 0) {
            w.current_stream_revision_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__CURRENT_STREAM_REVISION_OPTION_CURRENT_NO_STREAM;
            w.current_no_stream = &empty;
        } else {
            w.current_stream_revision_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__CURRENT_STREAM_REVISION_OPTION_CURRENT_STREAM_REVISION;
            w.current_stream_revision = (uint64_t)actual;
        }
        if (expected >= 0) {
            w.expected_stream_position_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_STREAM_POSITION;
            w.expected_stream_position = (uint64_t)expected;
        } else if (expected == FACTUM_NO_STREAM) {
            w.expected_stream_position_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_NO_STREAM;
            w.expected_no_stream = &empty;
        } else if (expected == FACTUM_STREAM_EXISTS) {
            w.expected_stream_position_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_STREAM_EXISTS;
            w.expected_stream_exists = &empty;
        } else {
            w.expected_stream_position_option_case =
                EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_ANY;
            w.expected_any = &empty;
        }
        dn = event_store__client__wrong_expected_version__pack(&w, detail);
        type = "type.googleapis.com/event_store.client.WrongExpectedVersion";
        st.code = GRPC_ALREADY_EXISTS;
        st.message = "Wrong expected version.";
    } else if (rc == FACTUM_EDELETED) {
        EventStore__Client__StreamDeleted d = EVENT_STORE__CLIENT__STREAM_DELETED__INIT;
        d.stream_identifier = stream ? &sid : NULL;
        if (event_store__client__stream_deleted__get_packed_size(&d) <= sizeof detail)
            dn = event_store__client__stream_deleted__pack(&d, detail);
        type = "type.googleapis.com/event_store.client.StreamDeleted";
        st.code = GRPC_NOT_FOUND;
        st.message = "Event stream is deleted.";
    } else if (rc == -EACCES || rc == -EPERM) { /* refused by authorization (-EPERM: not authenticated) */
        EventStore__Client__AccessDenied d = EVENT_STORE__CLIENT__ACCESS_DENIED__INIT;
        dn = event_store__client__access_denied__pack(&d, detail);
        type = "type.googleapis.com/event_store.client.AccessDenied";
        st.code = rc == -EPERM ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED;
        st.message = rc == -EPERM ? "Authentication required." : "Access Denied";
    } else if (rc == FACTUM_ETOOBIG) {
        EventStore__Client__MaximumAppendSizeExceeded m = EVENT_STORE__CLIENT__MAXIMUM_APPEND_SIZE_EXCEEDED__INIT;
        m.maxappendsize = (uint32_t)k->ctx->max_append_size;
        dn = event_store__client__maximum_append_size_exceeded__pack(&m, detail);
        type = "type.googleapis.com/event_store.client.MaximumAppendSizeExceeded";
        st.code = GRPC_INVALID_ARGUMENT;
        st.message = "Maximum append size exceeded.";
    } else if (rc == FACTUM_EINVAL || rc == FACTUM_EBADNAME || rc == FACTUM_EBADTYPE || rc == FACTUM_EBADUUID ||
               rc == FACTUM_EDUPLICATEID || rc == FACTUM_EBADJSON) {
        EventStore__Client__BadRequest b = EVENT_STORE__CLIENT__BAD_REQUEST__INIT;
        b.message = (char *)(why ? why : factum_strerror(rc));
        dn = event_store__client__bad_request__pack(&b, detail);
        type = "type.googleapis.com/event_store.client.BadRequest";
        st.code = GRPC_INVALID_ARGUMENT;
        st.message = b.message;
    } else {
        EventStore__Client__Unknown u = EVENT_STORE__CLIENT__UNKNOWN__INIT;
        dn = event_store__client__unknown__pack(&u, detail);
        type = "type.googleapis.com/event_store.client.Unknown";
        st.code = rpc_status_of(rc);
        st.message = (char *)factum_strerror(rc);
    }
    any.type_url = (char *)type;
    any.value.data = detail;
    any.value.len = dn;
    st.details = &any;
    r.result_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__RESULT_ERROR;
    r.error = &st;
    send_resp(k, &r);
}

static void done_loop(void *arg)
{
    batch *b = arg;
    bcall *k = b->owner;
    net_call *c = k->c;
    rpc_store_done(k->ctx);
    k->in_store--;
    k->busy = 1;
    if (!k->closed) {
        if (b->rc == 0) {
            if (!b->res.idempotent) rpc_audit_stream_write(k->ctx, c, b->stream, b->ev.ev, b->ev.n);
            k->ctx->st.appends++;
            k->ctx->st.append_events += b->ev.n;
            k->ctx->st.append_bytes += b->ev.bytes;
        } else {
            k->ctx->st.append_errors++;
        }
        answer(k, b->corr, b->stream, b->expected, b->rc, &b->res, NULL);
        flow(k);
        maybe_end(k); /* may close the call: rpc_batch_close sees busy */
    }
    k->busy = 0;
    if (k->closed && k->in_store == 0) bcall_free(k);
    batch_free(b);
    net_call_unref(c);
}

static void done_store(void *ctx, int rc, const factum_append_result *results, size_t n, size_t failed)
{
    (void)failed;
    batch *b = ctx;
    b->rc = rc;
    if (n) b->res = results[0];
    rpc_to_loop(b->owner->ctx, done_loop, b);
}

static batch *find_open(bcall *k, const char *corr, batch ***link)
{
    for (batch **pp = &k->open; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->corr, corr)) {
            *link = pp;
            return *pp;
        }
    return NULL;
}

static int batch_submit(rpc_submit *sb)
{
    batch *b = (batch *)((char *)sb - offsetof(batch, sub));
    factum_append_req q = {b->stream, b->expected, b->ev.ev, b->ev.n};
    return rpc_append_async(b->owner->ctx, &q, 1, done_store, b);
}

/* The store will not run the batch: answer it with the error (as done_loop
 * answers a failed append). */
static void batch_submit_failed(rpc_submit *sb, int rc)
{
    batch *b = (batch *)((char *)sb - offsetof(batch, sub));
    bcall *k = b->owner;
    net_call *c = k->c;
    k->in_store--;
    k->busy = 1;
    if (!k->closed) {
        k->ctx->st.append_errors++;
        factum_append_result none = {0};
        none.actual_version = FACTUM_NO_STREAM;
        char why[600];
        const char *m = rc == FACTUM_EINVAL || rc == FACTUM_EBADJSON
                            ? rpc_upcasters_refusal(b->stream, &b->ev, why, sizeof why)
                            : NULL;
        answer(k, b->corr, b->stream, b->expected, rc, &none, m);
        flow(k);
        maybe_end(k);
    }
    k->busy = 0;
    if (k->closed && k->in_store == 0) bcall_free(k);
    batch_free(b);
    net_call_unref(c);
}

static void submit(bcall *k, batch *b)
{
    k->in_store++;
    net_call_ref(k->c);
    b->sub = (rpc_submit){NULL, k->c, batch_submit, batch_submit_failed};
    rpc_submit_start(k->ctx, &b->sub);
    if (!k->closed) flow(k);
}

void rpc_batch_message(net_call *c, const uint8_t *msg, size_t len)
{
    bcall *k = net_call_state(c);
    pb_alloc pa;
    static _Thread_local rpc_wire_batch wb; /* the canonical form without protobuf-c's heap (WIRE-1) */
    BatchReq *req = &wb.req;
    int slow = rpc_wire_batch_req(msg, len, &wb);
    if (slow &&
        !(req = rpc_unpack(c, &event_store__client__streams__batch_append_req__descriptor, msg, len, &pa, "BatchAppendReq")))
        return;
    uint8_t idb[16];
    char corr[37];
    if (rpc_uuid_from(req->correlation_id, idb)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "BatchAppendReq without a valid correlation id", NULL, NULL);
        goto out;
    }
    factum_uuid_format(idb, corr);
    if (rpc_principal(c)->revoked) {
        /* PRINCIPAL-1: its user was disabled or deleted or its password changed since the call
         * began; ending the call makes the client open another, which authenticates again */
        rpc_fail(c, GRPC_UNAUTHENTICATED, "Authentication required.", NULL, NULL);
        goto out;
    }
    batch **link = NULL;
    batch *b = find_open(k, corr, &link);
    if (!b) {
        const EventStore__Client__Streams__BatchAppendReq__Options *o = req->options;
        int64_t expected = FACTUM_ANY;
        int rc = 0;
        if (!o || !o->stream_identifier) rc = FACTUM_EINVAL;
        if (!rc) {
            int which = 2;
            switch (o->expected_stream_position_case) {
            case EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__EXPECTED_STREAM_POSITION_STREAM_POSITION:
                which = 0;
                break;
            case EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__EXPECTED_STREAM_POSITION_NO_STREAM:
                which = 1;
                break;
            case EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__EXPECTED_STREAM_POSITION_STREAM_EXISTS:
                which = 3;
                break;
            default: break;
            }
            rc = rpc_expected_of_options(which, o->stream_position, &expected);
        }
        const ProtobufCBinaryData *sn = o && o->stream_identifier ? &o->stream_identifier->stream_name : NULL;
        if (!rc && factum_check_stream_name((const char *)sn->data, sn->len)) rc = FACTUM_EBADNAME;
        if (!rc) {
            /* checked before any event is taken (nothing is held for a refused writer) */
            char name[FACTUM_MAX_STREAM_LEN + 1];
            memcpy(name, sn->data, sn->len);
            name[sn->len] = 0;
            int a = rpc_check_stream(k->ctx, c, name, AUTH_WRITE);
            if (a != AUTH_OK) {
                rc = a == AUTH_UNAUTHENTICATED ? -EPERM : -EACCES;
                answer(k, corr, name, expected, rc, &(factum_append_result){.actual_version = FACTUM_NO_STREAM}, NULL);
                goto out;
            }
        }
        if (!rc && k->n_open >= BATCH_MAX_OPEN) rc = FACTUM_ETOOBIG;
        if (!rc && !(b = calloc(1, sizeof *b))) rc = -ENOMEM;
        if (!rc && !(b->stream = strndup((const char *)sn->data, sn->len))) {
            free(b);
            b = NULL;
            rc = -ENOMEM;
        }
        if (rc) {
            factum_append_result none = {0};
            none.actual_version = FACTUM_NO_STREAM;
            answer(k, corr, NULL, expected, rc, &none, NULL);
            goto out;
        }
        b->owner = k;
        memcpy(b->corr, corr, sizeof corr);
        b->expected = expected;
        b->next = k->open;
        k->open = b;
        k->n_open++;
        link = &k->open;
    }
    for (size_t i = 0; i < req->n_proposed_messages; i++) {
        const EventStore__Client__Streams__BatchAppendReq__ProposedMessage *pm = req->proposed_messages[i];
        char *keys[16], *values[16];
        size_t nm = pm->n_metadata < 16 ? pm->n_metadata : 16;
        for (size_t j = 0; j < nm; j++) {
            keys[j] = pm->metadata[j]->key;
            values[j] = pm->metadata[j]->value;
        }
        const char *why;
        if (b->refused || rpc_vstream_check_append(b->stream, strlen(b->stream), pm->custom_metadata.data,
                                                   pm->custom_metadata.len, &why)) {
            if (!b->refused) b->refused_why = why;
            b->refused = 1; /* a `$scheduled` request without its keys, a virtual stream */
            continue;
        }
        if (rpc_take_event(k->ctx, c, pm->id, nm, keys, values, pm->data, pm->custom_metadata, &b->ev)) goto out;
    }
    if (req->is_final) {
        *link = b->next;
        k->n_open--;
        if (b->refused) {
            factum_append_result none = {0};
            none.actual_version = FACTUM_NO_STREAM;
            answer(k, b->corr, b->stream, b->expected, FACTUM_EINVAL, &none, b->refused_why);
            batch_free(b);
            goto out;
        }
        /* the snapshot convention (factum.h "Snapshots"): $streamVersion checked */
        char why[512];
        if (snapshot_check_append(k->ctx->store, b->stream, b->ev.ev, b->ev.n, why, sizeof why)) {
            factum_append_result none = {0};
            none.actual_version = FACTUM_NO_STREAM;
            answer(k, b->corr, b->stream, b->expected, FACTUM_EINVAL, &none, why); /* < 512 bytes: fits detail */
            batch_free(b);
            goto out;
        }
        submit(k, b);
    }
out:
    if (slow) rpc_unpack_free(req, &pa);
}

void rpc_batch_half_close(net_call *c)
{
    bcall *k = net_call_state(c);
    k->half_closed = 1;
    maybe_end(k);
}

void rpc_batch_close(net_call *c)
{
    bcall *k = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!k) return;
    k->closed = 1;
    if (k->in_store == 0 && !k->busy) bcall_free(k);
}
