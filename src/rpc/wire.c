/*
 * wire.c - AppendReq decoded in place (wire.h, WIRE-1..3): a reader of the
 * protobuf wire format that knows the one message it reads, and gives up
 * (returns 1) at the first thing that is not the canonical form.
 */
#include "rpc/wire.h"

#include <string.h>

typedef struct rd {
    const uint8_t *p, *end;
} rd;

/* A varint of at most 10 bytes. 0, or -1 (truncated or too long). */
static int rd_varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The next field's number and wire type; 1 at the end, -1 if malformed. */
static int rd_key(rd *r, uint32_t *field, unsigned *wt)
{
    if (r->p == r->end) return 1;
    uint64_t k;
    if (rd_varint(r, &k) || (k >> 3) == 0 || (k >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return 0;
}

/* A length-delimited field's bytes, as a reader of its own. */
static int rd_sub(rd *r, rd *sub)
{
    uint64_t n;
    if (rd_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* A NUL-terminated copy of a string field in w's text (WIRE-2). */
static int take_text(rpc_wire_append *w, const rd *s, char **out)
{
    size_t n = (size_t)(s->end - s->p);
    if (n + 1 > sizeof w->text - w->text_used) return -1;
    char *t = w->text + w->text_used;
    if (n) memcpy(t, s->p, n);
    t[n] = '\0';
    w->text_used += n + 1;
    *out = t;
    return 0;
}

static char empty_text[1] = "";

static int stream_identifier(rd r, EventStore__Client__StreamIdentifier *sid)
{
    event_store__client__stream_identifier__init(sid);
    int seen = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (f != 3 || wt != 2 || seen++ || rd_sub(&r, &s)) return -1;
        sid->stream_name.data = (uint8_t *)s.p;
        sid->stream_name.len = (size_t)(s.end - s.p);
    }
}

static int options(rd r, rpc_wire_append *w)
{
    EventStore__Client__Streams__AppendReq__Options *o = &w->opt;
    event_store__client__streams__append_req__options__init(o);
    event_store__client__empty__init(&w->empty);
    int seen_sid = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (f == 1 && wt == 2 && !seen_sid++) {
            if (rd_sub(&r, &s) || stream_identifier(s, &w->sid)) return -1;
            o->stream_identifier = &w->sid;
        } else if (f == 2 && wt == 0 && !o->expected_stream_revision_case) {
            if (rd_varint(&r, &o->revision)) return -1;
            o->expected_stream_revision_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION;
        } else if (f >= 3 && f <= 5 && wt == 2 && !o->expected_stream_revision_case) {
            /* an Empty: nothing inside, or it is not the canonical form */
            if (rd_sub(&r, &s) || s.p != s.end) return -1;
            o->expected_stream_revision_case = (EventStore__Client__Streams__AppendReq__Options__ExpectedStreamRevisionCase)f;
            o->no_stream = &w->empty; /* the union's members are alike */
        } else {
            return -1;
        }
    }
}

static int structured(rd r, EventStore__Client__UUID__Structured *su)
{
    event_store__client__uuid__structured__init(su);
    int seen1 = 0, seen2 = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        uint64_t v;
        if (wt != 0 || (f == 1 ? seen1++ : f == 2 ? seen2++ : 1) || rd_varint(&r, &v)) return -1;
        if (f == 1) su->most_significant_bits = (int64_t)v;
        else su->least_significant_bits = (int64_t)v;
    }
}

static int uuid(rd r, rpc_wire_append *w)
{
    EventStore__Client__UUID *u = &w->id;
    event_store__client__uuid__init(u);
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (wt != 2 || u->value_case || (f != 1 && f != 2) || rd_sub(&r, &s)) return -1;
        if (f == 1) {
            if (structured(s, &w->su)) return -1;
            u->value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
            u->structured = &w->su;
        } else {
            if (take_text(w, &s, &u->string)) return -1;
            u->value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        }
    }
}

static int metadata_entry(rd r, rpc_wire_append *w, EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry *e)
{
    event_store__client__streams__append_req__proposed_message__metadata_entry__init(e);
    e->key = e->value = empty_text;
    int seen1 = 0, seen2 = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (wt != 2 || (f == 1 ? seen1++ : f == 2 ? seen2++ : 1) || rd_sub(&r, &s)) return -1;
        if (take_text(w, &s, f == 1 ? &e->key : &e->value)) return -1;
    }
}

static int proposed(rd r, rpc_wire_append *w)
{
    EventStore__Client__Streams__AppendReq__ProposedMessage *pm = &w->pm;
    event_store__client__streams__append_req__proposed_message__init(pm);
    int seen_id = 0, seen3 = 0, seen4 = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k < 0) return -1;
        if (k) break;
        rd s;
        if (wt != 2 || rd_sub(&r, &s)) return -1;
        switch (f) {
        case 1:
            if (seen_id++ || uuid(s, w)) return -1;
            pm->id = &w->id;
            break;
        case 2:
            if (pm->n_metadata == RPC_WIRE_META || metadata_entry(s, w, &w->me[pm->n_metadata])) return -1;
            w->mep[pm->n_metadata] = &w->me[pm->n_metadata];
            pm->n_metadata++;
            break;
        case 3:
        case 4: {
            if (f == 3 ? seen3++ : seen4++) return -1;
            ProtobufCBinaryData *b = f == 3 ? &pm->custom_metadata : &pm->data;
            b->data = (uint8_t *)s.p;
            b->len = (size_t)(s.end - s.p);
            break;
        }
        default:
            return -1;
        }
    }
    if (pm->n_metadata) pm->metadata = w->mep;
    return 0;
}

int rpc_wire_append_req(const uint8_t *msg, size_t len, rpc_wire_append *w)
{
    rd r = {msg, msg + len};
    event_store__client__streams__append_req__init(&w->req);
    w->text_used = 0;
    uint32_t f;
    unsigned wt;
    rd s;
    /* exactly one field: the options or a proposed message */
    if (rd_key(&r, &f, &wt) || wt != 2 || (f != 1 && f != 2) || rd_sub(&r, &s) || r.p != r.end) return 1;
    if (f == 1) {
        if (options(s, w)) return 1;
        w->req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS;
        w->req.options = &w->opt;
    } else {
        if (proposed(s, w)) return 1;
        w->req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE;
        w->req.proposed_message = &w->pm;
    }
    return 0;
}

/* ---- ReadResp.ReadEvent out (WIRE-4) ------------------------------------- */

typedef EventStore__Client__Streams__ReadResp__ReadEvent ReadEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent Recorded;

static size_t vlen(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_v(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Every field number here is below 16: a key is one byte. */
#define KEY(f, wt) ((uint8_t)((f) << 3 | (wt)))

/* A length-delimited field of n bytes, key included. */
static size_t ld_size(size_t n)
{
    return 1 + vlen(n) + n;
}

static uint8_t *put_ld(uint8_t *p, unsigned f, const void *data, size_t n)
{
    *p++ = KEY(f, 2);
    p = put_v(p, n);
    if (n) memcpy(p, data, n);
    return p + n;
}

/* A proto3 varint field: left out when zero. */
static size_t u64_size(uint64_t v)
{
    return v ? 1 + vlen(v) : 0;
}

static uint8_t *put_u64(uint8_t *p, unsigned f, uint64_t v)
{
    if (!v) return p;
    *p++ = KEY(f, 0);
    return put_v(p, v);
}

/* A proto3 string field: left out when NULL or empty. */
static size_t str_size(const char *s)
{
    return s && *s ? ld_size(strlen(s)) : 0;
}

static uint8_t *put_str(uint8_t *p, unsigned f, const char *s)
{
    return s && *s ? put_ld(p, f, s, strlen(s)) : p;
}

static size_t uuid_inner(const EventStore__Client__UUID *u)
{
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED && u->structured)
        return ld_size(u64_size((uint64_t)u->structured->most_significant_bits) +
                       u64_size((uint64_t)u->structured->least_significant_bits));
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING && u->string) return ld_size(strlen(u->string));
    return 0;
}

static size_t entry_inner(const EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry *e)
{
    return str_size(e->key) + str_size(e->value);
}

static size_t recorded_inner(const Recorded *r)
{
    size_t n = 0;
    if (r->id) n += ld_size(uuid_inner(r->id));
    if (r->stream_identifier) {
        size_t sl = r->stream_identifier->stream_name.len;
        n += ld_size(sl ? ld_size(sl) : 0);
    }
    n += u64_size(r->stream_revision) + u64_size(r->prepare_position) + u64_size(r->commit_position);
    for (size_t i = 0; i < r->n_metadata; i++) n += ld_size(entry_inner(r->metadata[i]));
    if (r->custom_metadata.len) n += ld_size(r->custom_metadata.len);
    if (r->data.len) n += ld_size(r->data.len);
    return n;
}

static uint8_t *put_recorded(uint8_t *p, unsigned f, const Recorded *r)
{
    *p++ = KEY(f, 2);
    p = put_v(p, recorded_inner(r));
    if (r->id) {
        const EventStore__Client__UUID *u = r->id;
        *p++ = KEY(1, 2);
        p = put_v(p, uuid_inner(u));
        if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED && u->structured) {
            uint64_t m = (uint64_t)u->structured->most_significant_bits;
            uint64_t l = (uint64_t)u->structured->least_significant_bits;
            *p++ = KEY(1, 2);
            p = put_v(p, u64_size(m) + u64_size(l));
            p = put_u64(p, 1, m);
            p = put_u64(p, 2, l);
        } else if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING && u->string) {
            p = put_ld(p, 2, u->string, strlen(u->string));
        }
    }
    if (r->stream_identifier) {
        const ProtobufCBinaryData *sn = &r->stream_identifier->stream_name;
        *p++ = KEY(2, 2);
        p = put_v(p, sn->len ? ld_size(sn->len) : 0);
        if (sn->len) p = put_ld(p, 3, sn->data, sn->len);
    }
    p = put_u64(p, 3, r->stream_revision);
    p = put_u64(p, 4, r->prepare_position);
    p = put_u64(p, 5, r->commit_position);
    for (size_t i = 0; i < r->n_metadata; i++) {
        *p++ = KEY(6, 2);
        p = put_v(p, entry_inner(r->metadata[i]));
        p = put_str(p, 1, r->metadata[i]->key);
        p = put_str(p, 2, r->metadata[i]->value);
    }
    if (r->custom_metadata.len) p = put_ld(p, 7, r->custom_metadata.data, r->custom_metadata.len);
    if (r->data.len) p = put_ld(p, 8, r->data.data, r->data.len);
    return p;
}

size_t rpc_wire_read_event_size(const ReadEvent *re)
{
    size_t n = 0;
    if (re->event) n += ld_size(recorded_inner(re->event));
    if (re->link) n += ld_size(recorded_inner(re->link));
    if (re->position_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_COMMIT_POSITION)
        n += 1 + vlen(re->commit_position);
    else if (re->position_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_NO_POSITION &&
             re->no_position)
        n += 2;
    return n;
}

size_t rpc_wire_read_event_pack(const ReadEvent *re, uint8_t *out)
{
    uint8_t *p = out;
    if (re->event) p = put_recorded(p, 1, re->event);
    if (re->link) p = put_recorded(p, 2, re->link);
    if (re->position_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_COMMIT_POSITION) {
        *p++ = KEY(3, 0);
        p = put_v(p, re->commit_position);
    } else if (re->position_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_NO_POSITION &&
               re->no_position) {
        *p++ = KEY(4, 2);
        *p++ = 0;
    }
    return (size_t)(p - out);
}
