/*
 * common.c - what every service shares: packing and sending messages,
 * KurrentDB's error model (status codes plus the `exception` trailer and
 * its companions, docs/protocol.md), UUIDs in both of the protocol's
 * encodings.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "kurrentdb/shared.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/rpc.h"

/* A decoded request is charged to its call while it lives (NET-5): once,
 * when decoded (the decode itself is bounded by its limit, PB-2), and
 * released when freed. */
void *rpc_unpack(net_call *c, const ProtobufCMessageDescriptor *d, const uint8_t *msg, size_t len, pb_alloc *pa,
                 const char *what)
{
    pb_alloc_init(pa, pb_decode_limit(len));
    ProtobufCMessage *m;
    int rc = pb_unpack(d, msg, len, pa, &m);
    if (rc == PB_OK && net_call_charge(c, pa->used)) {
        pb_free(m, pa);
        rc = PB_ETOOBIG;
    }
    if (rc == PB_OK) {
        pa->charge_ctx = c; /* what rpc_unpack_free releases */
        pa->charged = pa->used;
        return m;
    }
    char why[128];
    snprintf(why, sizeof why, "%s: %s", what, pb_strerror(rc));
    rpc_fail(c, rc == PB_ETOOBIG ? GRPC_RESOURCE_EXHAUSTED : GRPC_INVALID_ARGUMENT, why, NULL, NULL);
    return NULL;
}

void rpc_unpack_free(void *m, pb_alloc *pa)
{
    pb_free(m, pa);
    if (pa->charge_ctx) net_call_release(pa->charge_ctx, pa->charged);
    pa->charge_ctx = NULL;
}

/* ---- store submissions (RPC-5) ------------------------------------------- */

void rpc_submit_wait(rpc_ctx *ctx, rpc_submit *s)
{
    if (s->c) net_call_pause(s->c);
    s->next = NULL;
    if (ctx->parked_tail) ctx->parked_tail->next = s;
    else ctx->parked = s;
    ctx->parked_tail = s;
}

/* Whether the loop's driver takes this append (docs/adr/0024). inflight
 * does not count it yet (rpc_submit_start counts it once started). */
static int loop_commits(const rpc_ctx *ctx)
{
    if (!ctx->drv) return 0;
    if (!ctx->commit_auto_max_ns) return 1;
    return ctx->commit_level == RPC_COMMIT_ALL || (ctx->commit_level == RPC_COMMIT_LONE && ctx->inflight == 0);
}

int rpc_append_async(rpc_ctx *ctx, const factum_append_req *reqs, size_t n, factum_append_cb cb, void *arg)
{
    if (loop_commits(ctx)) return factum_driver_append(ctx->drv, reqs, n, cb, arg);
    return factum_append_async(ctx->store, reqs, n, cb, arg);
}

#define COMMIT_WINDOW_MIN 8 /* fdatasyncs a decision needs */

int rpc_commit_next(int level, uint64_t avg_ns, uint64_t max_ns)
{
    uint64_t lone = max_ns, all = max_ns / 10;
    int fits = avg_ns <= all ? RPC_COMMIT_ALL : avg_ns <= lone ? RPC_COMMIT_LONE : RPC_COMMIT_WRITER;
    if (fits >= level) return fits;
    if (level == RPC_COMMIT_ALL && avg_ns > 2 * all) return avg_ns <= 2 * lone ? RPC_COMMIT_LONE : RPC_COMMIT_WRITER;
    if (level == RPC_COMMIT_LONE && avg_ns > 2 * lone) return RPC_COMMIT_WRITER;
    return level; /* within twice its bound: stays */
}

void rpc_commit_start(rpc_ctx *ctx, uint64_t max_ns, uint64_t probe_ns)
{
    ctx->commit_auto_max_ns = max_ns;
    ctx->commit_level = probe_ns ? rpc_commit_next(RPC_COMMIT_WRITER, probe_ns, max_ns) : RPC_COMMIT_WRITER;
    factum_stats st;
    if (!factum_store_get_stats(ctx->store, &st)) {
        ctx->ca_fsyncs = st.fsyncs; /* the first window begins now */
        ctx->ca_ns = st.fsync_ns_total;
    }
}

int rpc_commit_tick(rpc_ctx *ctx, uint64_t *avg_ns)
{
    if (!ctx->drv || !ctx->commit_auto_max_ns) return 0;
    factum_stats st;
    if (factum_store_get_stats(ctx->store, &st)) return 0;
    uint64_t n = st.fsyncs - ctx->ca_fsyncs;
    if (n < COMMIT_WINDOW_MIN) return 0; /* the window goes on */
    uint64_t avg = (st.fsync_ns_total - ctx->ca_ns) / n;
    ctx->ca_fsyncs = st.fsyncs;
    ctx->ca_ns = st.fsync_ns_total;
    int level = rpc_commit_next(ctx->commit_level, avg, ctx->commit_auto_max_ns);
    if (level == ctx->commit_level) return 0;
    /* Appends in flight on the other path finish there; both paths feed
     * one sequencer, so the order of commits is the same. */
    ctx->commit_level = level;
    ctx->commit_changes++;
    *avg_ns = avg;
    return 1;
}

int rpc_commit_now(const rpc_ctx *ctx)
{
    if (!ctx->drv) return RPC_COMMIT_WRITER;
    if (ctx->commit_auto_max_ns) return ctx->commit_level;
    return factum_driver_sync(ctx->drv) ? RPC_COMMIT_ALL : 3;
}

int rpc_to_loop(rpc_ctx *ctx, void (*fn)(void *arg), void *arg)
{
    if (ctx->drv && pthread_equal(ctx->loop_thread, pthread_self())) {
        fn(arg);
        return 0;
    }
    return net_post(ctx->net, fn, arg);
}

void rpc_submit_start(rpc_ctx *ctx, rpc_submit *s)
{
    if (ctx->parked) { /* no overtaking those already waiting */
        rpc_submit_wait(ctx, s);
        return;
    }
    int rc = s->start(s);
    if (rc == 0) ctx->inflight++;
    else if (rc == -EAGAIN) rpc_submit_wait(ctx, s);
    else s->fail(s, rc);
}

void rpc_submit_retry(rpc_ctx *ctx)
{
    while (ctx->parked) {
        rpc_submit *s = ctx->parked;
        int rc = s->c && net_call_done(s->c) ? FACTUM_ECLOSED : s->start(s);
        if (rc == -EAGAIN) return;
        ctx->parked = s->next;
        if (!ctx->parked) ctx->parked_tail = NULL;
        if (s->c) net_call_resume(s->c);
        if (rc == 0) ctx->inflight++;
        else s->fail(s, rc);
    }
}

int rpc_submit_waiting(const rpc_ctx *ctx, const net_call *c)
{
    for (const rpc_submit *s = ctx->parked; s; s = s->next)
        if (s->c == c) return 1;
    return 0;
}

void rpc_store_done(rpc_ctx *ctx)
{
    ctx->inflight--;
    if (ctx->parked) rpc_submit_retry(ctx);
}

uint8_t *rpc_pack_buf(rpc_ctx *ctx, size_t n)
{
    if (n > ctx->pack_cap || !ctx->pack_buf) { /* an empty message too needs a buffer to point at */
        size_t cap = n < 65536 ? 65536 : n;
        uint8_t *b = realloc(ctx->pack_buf, cap);
        if (!b) return NULL;
        ctx->pack_buf = b;
        ctx->pack_cap = cap;
    }
    return ctx->pack_buf;
}

int rpc_send_buf(rpc_ctx *ctx, net_call *c, size_t n)
{
    int rc = net_call_send(c, ctx->pack_buf, n);
    if (ctx->pack_cap > (1u << 20) && n < 65536) { /* do not hold a large buffer after a large event */
        free(ctx->pack_buf);
        ctx->pack_buf = NULL;
        ctx->pack_cap = 0;
    }
    return rc;
}

int rpc_send(rpc_ctx *ctx, net_call *c, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = rpc_pack_buf(ctx, n);
    if (!b) return -ENOMEM;
    protobuf_c_message_pack(m, b);
    return rpc_send_buf(ctx, c, n);
}

void rpc_fail(net_call *c, int code, const char *message, const char *exception, ...)
{
    net_header h[8];
    size_t n = 0;
    if (exception) h[n++] = (net_header){"exception", exception};
    va_list ap;
    va_start(ap, exception);
    const char *name;
    while (n < 8 && (name = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        h[n++] = (net_header){name, value ? value : ""};
    }
    va_end(ap);
    net_call_finish(c, code, message, h, n);
}

int rpc_status_of(int rc)
{
    switch (rc) {
    case 0: return GRPC_OK;
    case FACTUM_EWRONGVERSION:
    case FACTUM_EDELETED:
    case FACTUM_EIDEMPOTENCY: return GRPC_FAILED_PRECONDITION;
    case FACTUM_ENOTFOUND: return GRPC_NOT_FOUND;
    case FACTUM_ETOOBIG:
    case FACTUM_EBADNAME:
    case FACTUM_EBADTYPE:
    case FACTUM_EBADUUID:
    case FACTUM_EBADJSON:
    case FACTUM_EBADREGEX:
    case FACTUM_EDUPLICATEID:
    case FACTUM_EINVAL: return GRPC_INVALID_ARGUMENT;
    case FACTUM_ECORRUPT: return GRPC_DATA_LOSS;
    case FACTUM_EREADONLY:
    case FACTUM_EUPCAST: return GRPC_FAILED_PRECONDITION;
    case FACTUM_EREGEXLIMIT:
    case -ENOMEM: return GRPC_RESOURCE_EXHAUSTED;
    default: return GRPC_UNAVAILABLE; /* fail-stopped, closing, I/O errors */
    }
}

static void fmt_expected(int64_t e, char *buf, size_t n)
{
    snprintf(buf, n, "%" PRId64, e);
}

void rpc_fail_store(net_call *c, int rc, const char *stream, int64_t expected, int64_t actual)
{
    const char *sn = stream ? stream : "";
    if (rc == FACTUM_EDELETED) {
        rpc_fail(c, GRPC_FAILED_PRECONDITION, "Event stream is deleted.", "stream-deleted", "stream-name", sn, NULL);
    } else if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EIDEMPOTENCY) {
        char e[32], a[32] = "";
        fmt_expected(expected, e, sizeof e);
        if (actual >= 0) snprintf(a, sizeof a, "%" PRId64, actual);
        rpc_fail(c, GRPC_FAILED_PRECONDITION, "Wrong expected version.", "wrong-expected-version", "stream-name",
                 sn, "expected-version", e, "actual-version", a, NULL);
    } else if (rc == FACTUM_ENOTFOUND) {
        rpc_fail(c, GRPC_NOT_FOUND, "Event stream is not found.", "stream-not-found", "stream-name", sn, NULL);
    } else {
        rpc_fail(c, rpc_status_of(rc), factum_strerror(rc), NULL, NULL);
    }
}

int rpc_uuid_from(const EventStore__Client__UUID *u, uint8_t out[16])
{
    if (!u) return FACTUM_EBADUUID;
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING)
        return u->string ? factum_uuid_parse(u->string, strlen(u->string), out) : FACTUM_EBADUUID;
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED && u->structured) {
        uint64_t m = (uint64_t)u->structured->most_significant_bits;
        uint64_t l = (uint64_t)u->structured->least_significant_bits;
        for (int i = 0; i < 8; i++) {
            out[i] = (uint8_t)(m >> (56 - 8 * i));
            out[8 + i] = (uint8_t)(l >> (56 - 8 * i));
        }
        return 0;
    }
    return FACTUM_EBADUUID;
}

const auth_principal *rpc_principal(const net_call *c)
{
    const auth_principal *p = net_call_auth(c);
    return p ? auth_principal_current(p) : auth_principal_system(); /* PRINCIPAL-1 */
}

int rpc_refresh_event(rpc_ctx *ctx, factum_event *ev)
{
    factum_event f;
    int rc = factum_read_position(ctx->store, ev->position, &f);
    if (rc) return rc;
    ctx->st.refreshed_events++;
    *ev = f;
    return 0;
}

factum_reader *rpc_reader_enter(rpc_ctx *ctx, factum_reader **r, int reset)
{
    if (!*r && factum_store_sealing(ctx->store) && (*r = factum_reader_new()))
        factum_reader_set_limit(*r, RPC_READER_LIMIT);
    if (*r && reset) factum_reader_reset(*r);
    return factum_reader_use(*r);
}

void rpc_reader_leave(factum_reader *prev)
{
    factum_reader_use(prev);
}

int rpc_event_own(factum_event *ev, uint8_t **buf)
{
    if (!(ev->flags & FACTUM_EVENT_OPENED)) return 0;
    size_t n = ev->data_len + ev->metadata_len;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return -ENOMEM;
    if (ev->data_len) memcpy(b, ev->data, ev->data_len);
    if (ev->metadata_len) memcpy(b + ev->data_len, ev->metadata, ev->metadata_len);
    free(*buf);
    *buf = b;
    ev->data = b;
    ev->metadata = b + ev->data_len;
    ev->flags &= ~(uint32_t)FACTUM_EVENT_OPENED;
    return 0;
}

void rpc_event_seal_again(factum_event *ev)
{
    if (!(ev->flags & FACTUM_EVENT_OPENED)) return;
    ev->data = ev->metadata = (const uint8_t *)"";
    ev->data_len = ev->metadata_len = 0;
    ev->flags = (ev->flags & ~(uint32_t)(FACTUM_EVENT_OPENED | FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON)) |
                FACTUM_EVENT_SEALED;
}
