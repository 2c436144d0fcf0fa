/*
 * events.c - events between the protocol's messages and the store, for
 * every service that carries them: events taken from append requests
 * (Append, BatchAppend, AppendSession), expectations, events put into
 * ReadResp messages (reads, subscriptions, consumer groups), links
 * resolved as KurrentDB resolves them, and $all filters from read options.
 * It uses common.c and the store only; every service file uses it, and it
 * uses none of them (the direction is drawn in rpc.h).
 */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "net/grpc.h"
#include "rpc/events.h"
#include "rpc/rpc.h"
#include "rpc/wire.h"

/* ---- upcasting ---------------------------------------------------------- */

int rpc_wants_raw(const net_call *c)
{
    const char *h = net_call_header(c, "factum-raw");
    return h && (strcmp(h, "1") == 0 || strcmp(h, "true") == 0);
}

/* rpc_upcast is in upjob.c, beside the hand-off of script upcasts. */

const char *rpc_upcasters_refusal(const char *stream, const rpc_events *e, char *buf, size_t n)
{
    if (!stream || strcmp(stream, FACTUM_UPCASTERS_STREAM) != 0 || !e) return NULL;
    for (size_t i = 0; i < e->n; i++) {
        const factum_event_data *d = &e->ev[i];
        char why[400] = "";
        if (!factum_upcaster_check_event(d->type, d->data, d->data_len, why, sizeof why)) continue;
        snprintf(buf, n, "%s refused event %zu (%.100s): %s", FACTUM_UPCASTERS_STREAM, i, d->type, why);
        return buf;
    }
    return NULL;
}

/* ---- events out ------------------------------------------------------ */

static void recorded_init(rpc_recorded *r)
{
    memset(r, 0, sizeof *r);
    event_store__client__streams__read_resp__read_event__recorded_event__init(&r->rec);
    event_store__client__uuid__init(&r->uuid);
    event_store__client__uuid__structured__init(&r->su);
    event_store__client__stream_identifier__init(&r->sid);
    for (int i = 0; i < 3; i++) {
        event_store__client__streams__read_resp__read_event__recorded_event__metadata_entry__init(&r->me[i]);
        r->mep[i] = &r->me[i];
    }
    r->rec.id = &r->uuid;
    r->rec.stream_identifier = &r->sid;
    r->rec.n_metadata = 3;
    r->rec.metadata = r->mep;
}

void rpc_event_init(rpc_event_msg *b)
{
    event_store__client__streams__read_resp__init(&b->resp);
    event_store__client__streams__read_resp__read_event__init(&b->re);
    recorded_init(&b->ev);
    recorded_init(&b->link);
    b->resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT;
    b->resp.event = &b->re;
    b->re.event = &b->ev.rec;
    b->re.position_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_COMMIT_POSITION;
}

/* v in decimal as "%" PRId64 writes it, without printf's cost (one per event sent). */
static void fmt_i64(char out[24], int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0) out[o++] = '-';
    while (n) out[o++] = tmp[--n];
    out[o] = '\0';
}

static void recorded_fill(rpc_recorded *b, const factum_event *ev, int uuid_string)
{
    if (uuid_string) {
        factum_uuid_format(ev->id, b->idtext);
        b->uuid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        b->uuid.string = b->idtext;
    } else {
        uint64_t m = 0, l = 0;
        for (int i = 0; i < 8; i++) {
            m = m << 8 | ev->id[i];
            l = l << 8 | ev->id[8 + i];
        }
        b->su.most_significant_bits = (int64_t)m;
        b->su.least_significant_bits = (int64_t)l;
        b->uuid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
        b->uuid.structured = &b->su;
    }
    b->sid.stream_name.data = (uint8_t *)ev->stream;
    b->sid.stream_name.len = ev->stream_len;
    b->rec.stream_revision = ev->version;
    b->rec.prepare_position = b->rec.commit_position = ev->position;
    fmt_i64(b->created, rpc_ticks(ev->timestamp_ns));
    b->me[0].key = "type";
    b->me[0].value = (char *)ev->type;
    b->me[1].key = "created";
    b->me[1].value = b->created;
    b->me[2].key = "content-type";
    b->me[2].value = (ev->flags & FACTUM_EVENT_JSON) ? "application/json" : "application/octet-stream";
    b->rec.data.data = (uint8_t *)ev->data;
    b->rec.data.len = ev->data_len;
    b->rec.custom_metadata.data = (uint8_t *)ev->metadata;
    b->rec.custom_metadata.len = ev->metadata_len;
    /* Crypto-shredding (ADR 0027): no data, and metadata that says why
     * (docs/protocol.md). A sealed event reaches here only if a holder read
     * it without a reader: it is sent empty, never as its sealed bytes. */
    if (ev->flags & (FACTUM_EVENT_SHREDDED | FACTUM_EVENT_SEALED)) {
        static const char shredded[] = "{\"$shredded\":true}", sealed[] = "{\"$sealed\":true}";
        int sh = (ev->flags & FACTUM_EVENT_SHREDDED) != 0;
        b->rec.data.len = 0;
        b->rec.custom_metadata.data = (uint8_t *)(sh ? shredded : sealed);
        b->rec.custom_metadata.len = sh ? sizeof shredded - 1 : sizeof sealed - 1;
    }
}

void rpc_event_fill(rpc_event_msg *b, const factum_event *ev, int uuid_string)
{
    recorded_fill(&b->ev, ev, uuid_string);
    b->re.event = &b->ev.rec;
    b->re.link = NULL;
    b->re.commit_position = ev->position;
}

size_t rpc_event_packed_size(const rpc_event_msg *m)
{
    size_t inner = rpc_wire_read_event_size(&m->re), hl = 1;
    for (size_t t = inner; t >= 0x80; t >>= 7) hl++;
    return 1 + hl + inner;
}

size_t rpc_event_pack(const rpc_event_msg *m, uint8_t *b)
{
    size_t inner = rpc_wire_read_event_size(&m->re), o = 0;
    b[o++] = 0x0a; /* ReadResp.event: field 1, length-delimited */
    for (size_t t = inner;; t >>= 7) {
        b[o++] = (uint8_t)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
        if (t < 0x80) break;
    }
    return o + rpc_wire_read_event_pack(&m->re, b + o);
}

int rpc_send_event(rpc_ctx *ctx, net_call *c, const rpc_event_msg *m)
{
    uint8_t *b = rpc_pack_buf(ctx, rpc_event_packed_size(m));
    if (!b) return -ENOMEM;
    return rpc_send_buf(ctx, c, rpc_event_pack(m, b));
}

void rpc_event_fill_resolved(rpc_event_msg *b, const factum_event *event, const factum_event *link, int uuid_string)
{
    if (!link) {
        rpc_event_fill(b, event, uuid_string);
        return;
    }
    recorded_fill(&b->link, link, uuid_string);
    b->re.link = &b->link.rec;
    b->re.event = NULL;
    if (event) {
        recorded_fill(&b->ev, event, uuid_string);
        b->re.event = &b->ev.rec;
    }
    b->re.commit_position = link->position;
}

/* ---- links and filters -------------------------------------------------- */

int rpc_resolve(rpc_ctx *ctx, const factum_event *ev, factum_event *target)
{
    if (ev->type_len != 2 || memcmp(ev->type, FACTUM_LINK_TYPE, 2) != 0) return 0;
    int rc = factum_resolve_link(ctx->store, ev, target);
    if (rc == 0) return 1;
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || rc == FACTUM_EINVAL) return -1;
    return rc < -1 ? rc : -1;
}

static int expr_filter(const EventStore__Client__Streams__ReadReq__Options__FilterOptions__Expression *e, int on,
                       factum_filter **out)
{
    if (!e) return FACTUM_EINVAL;
    if (e->regex && e->regex[0]) return factum_filter_new(on, NULL, 0, e->regex, 0, out);
    if (e->n_prefix) return factum_filter_new(on, (const char *const *)e->prefix, e->n_prefix, NULL, 0, out);
    return FACTUM_EINVAL;
}

int rpc_read_filter(net_call *c, const EventStore__Client__Streams__ReadReq__Options__FilterOptions *f,
                    factum_filter **out)
{
    int rc;
    if (f->filter_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER)
        rc = expr_filter(f->stream_identifier, FACTUM_FILTER_STREAM, out);
    else if (f->filter_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_EVENT_TYPE)
        rc = expr_filter(f->event_type, FACTUM_FILTER_EVENT_TYPE, out);
    else
        rc = FACTUM_EINVAL;
    if (rc)
        rpc_fail(c, GRPC_INVALID_ARGUMENT, rc == FACTUM_EBADREGEX ? "invalid filter regex" : "invalid filter", NULL,
                 NULL);
    return rc;
}

/* ---- appends: events in ------------------------------------------------- */

/* Copy one proposed message (Append and BatchAppend share its shape) into
 * ev, with its bytes in *store. Returns 0 or fails the call. */
static int take_event(rpc_ctx *ctx, net_call *c, const EventStore__Client__UUID *id, size_t n_meta,
                      char *const *keys, char *const *values, ProtobufCBinaryData data, ProtobufCBinaryData meta,
                      factum_event_data *ev, char **store, rpc_events *e)
{
    size_t *total = &e->bytes;
    const char *type = NULL, *ctype = NULL;
    for (size_t i = 0; i < n_meta; i++) {
        if (!keys[i]) continue;
        if (!strcmp(keys[i], "type")) type = values[i];
        else if (!strcmp(keys[i], "content-type")) ctype = values[i];
    }
    if (!type || !ctype) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "Required metadata properties are missing",
                 "missing-required-metadata-property", "required-metadata-properties", "type,content-type", NULL);
        return -1;
    }
    memset(ev, 0, sizeof *ev);
    if (rpc_uuid_from(id, ev->id)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid event id", NULL, NULL);
        return -1;
    }
    ev->has_id = 1;
    if (data.len + meta.len > ctx->max_event_size) {
        char idt[37], sz[24], mx[24];
        factum_uuid_format(ev->id, idt);
        snprintf(sz, sizeof sz, "%zu", data.len + meta.len);
        snprintf(mx, sizeof mx, "%zu", ctx->max_event_size);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "Maximum append event size exceeded", "maximum-append-event-size-exceeded",
                 "event-id", idt, "proposed-append-event-size", sz, "maximum-append-event-size", mx, NULL);
        return -1;
    }
    *total += data.len + meta.len + strlen(type);
    if (*total > ctx->max_append_size) {
        char mx[24];
        snprintf(mx, sizeof mx, "%zu", ctx->max_append_size);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "Maximum append size exceeded", "maximum-append-size-exceeded",
                 "maximum-append-size", mx, NULL);
        return -1;
    }
    size_t tl = strlen(type);
    char *p = malloc(tl + 1 + data.len + meta.len + 1);
    if (!p) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return -1;
    }
    size_t real = malloc_usable_size(p) + sizeof(size_t);
    if (net_call_charge(c, real)) {
        free(p);
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, RPC_MEM_MESSAGE, NULL, NULL);
        return -1;
    }
    e->mem += real;
    memcpy(p, type, tl + 1);
    if (data.len) memcpy(p + tl + 1, data.data, data.len);
    if (meta.len) memcpy(p + tl + 1 + data.len, meta.data, meta.len);
    ev->type = p;
    ev->data = p + tl + 1;
    ev->data_len = data.len;
    ev->metadata = p + tl + 1 + data.len;
    ev->metadata_len = meta.len;
    if (!strcmp(ctype, "application/json")) ev->flags = FACTUM_EVENT_JSON | (meta.len ? FACTUM_EVENT_META_JSON : 0);
    *store = p;
    return 0;
}

void rpc_events_free(rpc_events *e)
{
    for (size_t i = 0; i < e->n; i++) free(e->store[i]);
    free(e->ev);
    free(e->store);
    if (e->c && e->mem) net_call_release(e->c, e->mem);
    memset(e, 0, sizeof *e);
}

#define EVENT_SLOT (sizeof(factum_event_data) + sizeof(char *))

/* Room for one more event; the arrays' growth is charged (NET-5). */
static int events_grow(rpc_events *e, net_call *c)
{
    if (!e->c) e->c = c;
    if (e->n < e->cap) return 0;
    size_t cap = e->cap ? e->cap * 2 : 16;
    if (net_call_charge(e->c, (cap - e->cap) * EVENT_SLOT)) return -ENOBUFS;
    e->mem += (cap - e->cap) * EVENT_SLOT;
    factum_event_data *ev = realloc(e->ev, cap * sizeof *ev);
    if (ev) e->ev = ev;
    char **st = ev ? realloc(e->store, cap * sizeof *st) : NULL;
    if (st) e->store = st;
    if (!st) {
        /* keep the old capacity's charge; give back the rest */
        net_call_release(e->c, (cap - e->cap) * EVENT_SLOT);
        e->mem -= (cap - e->cap) * EVENT_SLOT;
        return -ENOMEM;
    }
    e->cap = cap;
    return 0;
}

int rpc_expected_of_options(int which, uint64_t revision, int64_t *out)
{
    /* which: 0 revision, 1 no_stream, 2 any, 3 stream_exists */
    switch (which) {
    case 0:
        if (revision > (uint64_t)INT64_MAX - 1) return FACTUM_EINVAL;
        *out = (int64_t)revision;
        return 0;
    case 1: *out = FACTUM_NO_STREAM; return 0;
    case 2: *out = FACTUM_ANY; return 0;
    case 3: *out = FACTUM_STREAM_EXISTS; return 0;
    }
    return FACTUM_EINVAL;
}

int rpc_take_event(rpc_ctx *ctx, net_call *c, const EventStore__Client__UUID *id, size_t n_meta, char *const *keys,
                   char *const *values, ProtobufCBinaryData data, ProtobufCBinaryData meta, rpc_events *e)
{
    int rc = events_grow(e, c);
    if (rc) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, rc == -ENOBUFS ? RPC_MEM_MESSAGE : "out of memory", NULL, NULL);
        return -1;
    }
    if (take_event(ctx, c, id, n_meta, keys, values, data, meta, &e->ev[e->n], &e->store[e->n], e)) return -1;
    e->n++;
    return 0;
}
