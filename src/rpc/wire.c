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

/* A varint that protobuf-c reads as at most 5 bytes (keys, lengths: it
 * refuses longer ones, so must we). */
static int rd_varint5(rd *r, uint64_t *v)
{
    const uint8_t *start = r->p;
    if (rd_varint(r, v)) return -1;
    return r->p - start > 5 ? -1 : 0;
}

/* The next field's number and wire type; 1 at the end, -1 if malformed. */
static int rd_key(rd *r, uint32_t *field, unsigned *wt)
{
    if (r->p == r->end) return 1;
    uint64_t k;
    if (rd_varint5(r, &k) || (k >> 3) == 0 || (k >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return 0;
}

/* A length-delimited field's bytes, as a reader of its own. */
static int rd_sub(rd *r, rd *sub)
{
    uint64_t n;
    if (rd_varint5(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

/* Where the NUL-terminated copies of strings go (WIRE-2). */
typedef struct wtext {
    char *buf;
    size_t cap, used;
} wtext;

static int take_text(wtext *t, const rd *s, char **out)
{
    size_t n = (size_t)(s->end - s->p);
    if (n + 1 > t->cap - t->used) return -1;
    char *d = t->buf + t->used;
    if (n) memcpy(d, s->p, n);
    d[n] = '\0';
    t->used += n + 1;
    *out = d;
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

/* An empty message (event_store.client.Empty, google.protobuf.Empty): a
 * field of length 0, or it is not the canonical form. */
static int empty_msg(rd *r)
{
    rd s;
    return rd_sub(r, &s) || s.p != s.end ? -1 : 0;
}

/* Fields 1-5 of AppendReq.Options and BatchAppendReq.Options alike: the
 * stream (once), then the expectation (once): a revision (2), or one of
 * three Empty markers (3 no_stream, 4 any, 5 stream_exists). 1: taken;
 * 0: another field; -1: malformed or repeated. */
static int stream_and_expectation(rd *r, uint32_t f, unsigned wt, EventStore__Client__StreamIdentifier *sid,
                                  int *seen_sid, int *expect, uint64_t *revision)
{
    rd s;
    if (f == 1 && wt == 2) {
        if ((*seen_sid)++ || rd_sub(r, &s) || stream_identifier(s, sid)) return -1;
        return 1;
    }
    if (f == 2 && wt == 0) {
        if (*expect || rd_varint(r, revision)) return -1;
        *expect = 2;
        return 1;
    }
    if (f >= 3 && f <= 5 && wt == 2) {
        if (*expect || empty_msg(r)) return -1;
        *expect = (int)f;
        return 1;
    }
    return 0;
}

static int options(rd r, rpc_wire_append *w)
{
    EventStore__Client__Streams__AppendReq__Options *o = &w->opt;
    event_store__client__streams__append_req__options__init(o);
    event_store__client__empty__init(&w->empty);
    int seen_sid = 0, expect = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k < 0) return -1;
        if (k) break;
        if (stream_and_expectation(&r, f, wt, &w->sid, &seen_sid, &expect, &o->revision) != 1) return -1;
    }
    if (seen_sid) o->stream_identifier = &w->sid;
    o->expected_stream_revision_case =
        (EventStore__Client__Streams__AppendReq__Options__ExpectedStreamRevisionCase)expect;
    if (expect > 2) o->no_stream = &w->empty; /* the union's members are alike */
    return 0;
}

/* Two varint fields 1 and 2 at most once each (UUID.Structured, Timestamp,
 * Duration): their raw values. */
static int two_varints(rd r, uint64_t *a, uint64_t *b)
{
    int seen1 = 0, seen2 = 0;
    *a = *b = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        if (wt != 0 || (f == 1 ? seen1++ : f == 2 ? seen2++ : 1) || rd_varint(&r, f == 1 ? a : b)) return -1;
    }
}

static int uuid(rd r, EventStore__Client__UUID *u, EventStore__Client__UUID__Structured *su, wtext *t)
{
    event_store__client__uuid__init(u);
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (wt != 2 || u->value_case || (f != 1 && f != 2) || rd_sub(&r, &s)) return -1;
        if (f == 1) {
            uint64_t m, l;
            if (two_varints(s, &m, &l)) return -1;
            event_store__client__uuid__structured__init(su);
            su->most_significant_bits = (int64_t)m;
            su->least_significant_bits = (int64_t)l;
            u->value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
            u->structured = su;
        } else {
            if (take_text(t, &s, &u->string)) return -1;
            u->value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
        }
    }
}

/* A map<string, string> entry: key 1 and value 2, each at most once. */
static int entry_kv(rd r, char **key, char **value, wtext *t)
{
    *key = *value = empty_text;
    int seen1 = 0, seen2 = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k) return k > 0 ? 0 : -1;
        rd s;
        if (wt != 2 || (f == 1 ? seen1++ : f == 2 ? seen2++ : 1) || rd_sub(&r, &s)) return -1;
        if (take_text(t, &s, f == 1 ? key : value)) return -1;
    }
}

/* A proposed message (AppendReq's and BatchAppendReq's have the same
 * fields, in types of their own): its metadata entries taken from me[0..
 * *me_left], the pointers to them from mep. */
#define DEFINE_PROPOSED(fn, PM, ENTRY, pm_init, entry_init)                                                  \
    static int fn(rd r, PM *pm, EventStore__Client__UUID *id, EventStore__Client__UUID__Structured *su,      \
                  ENTRY *me, ENTRY **mep, size_t *me_left, wtext *t)                                         \
    {                                                                                                        \
        pm_init(pm);                                                                                         \
        int seen_id = 0, seen3 = 0, seen4 = 0;                                                               \
        for (;;) {                                                                                           \
            uint32_t f;                                                                                      \
            unsigned wt;                                                                                     \
            int k = rd_key(&r, &f, &wt);                                                                     \
            if (k < 0) return -1;                                                                            \
            if (k) break;                                                                                    \
            rd s;                                                                                            \
            if (wt != 2 || rd_sub(&r, &s)) return -1;                                                        \
            if (f == 1) {                                                                                    \
                if (seen_id++ || uuid(s, id, su, t)) return -1;                                              \
                pm->id = id;                                                                                 \
            } else if (f == 2) {                                                                             \
                if (!*me_left) return -1;                                                                    \
                ENTRY *e = &me[pm->n_metadata];                                                              \
                entry_init(e);                                                                               \
                if (entry_kv(s, &e->key, &e->value, t)) return -1;                                           \
                mep[pm->n_metadata++] = e;                                                                   \
                (*me_left)--;                                                                                \
            } else if (f == 3 || f == 4) {                                                                   \
                if (f == 3 ? seen3++ : seen4++) return -1;                                                   \
                ProtobufCBinaryData *b = f == 3 ? &pm->custom_metadata : &pm->data;                          \
                b->data = (uint8_t *)s.p;                                                                    \
                b->len = (size_t)(s.end - s.p);                                                              \
            } else {                                                                                         \
                return -1;                                                                                   \
            }                                                                                                \
        }                                                                                                    \
        if (pm->n_metadata) pm->metadata = mep;                                                              \
        return 0;                                                                                            \
    }

DEFINE_PROPOSED(proposed, EventStore__Client__Streams__AppendReq__ProposedMessage,
                EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry,
                event_store__client__streams__append_req__proposed_message__init,
                event_store__client__streams__append_req__proposed_message__metadata_entry__init)
DEFINE_PROPOSED(batch_proposed, EventStore__Client__Streams__BatchAppendReq__ProposedMessage,
                EventStore__Client__Streams__BatchAppendReq__ProposedMessage__MetadataEntry,
                event_store__client__streams__batch_append_req__proposed_message__init,
                event_store__client__streams__batch_append_req__proposed_message__metadata_entry__init)

int rpc_wire_append_req(const uint8_t *msg, size_t len, rpc_wire_append *w)
{
    rd r = {msg, msg + len};
    event_store__client__streams__append_req__init(&w->req);
    wtext t = {w->text, sizeof w->text, 0};
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
        size_t left = RPC_WIRE_META;
        if (proposed(s, &w->pm, &w->id, &w->su, w->me, w->mep, &left, &t)) return 1;
        w->req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE;
        w->req.proposed_message = &w->pm;
    }
    return 0;
}

/* ---- BatchAppendReq in ------------------------------------------------------ */

static int batch_options(rd r, rpc_wire_batch *w)
{
    EventStore__Client__Streams__BatchAppendReq__Options *o = &w->opt;
    event_store__client__streams__batch_append_req__options__init(o);
    google__protobuf__empty__init(&w->empty);
    int seen_sid = 0, expect = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k < 0) return -1;
        if (k) break;
        int t = stream_and_expectation(&r, f, wt, &w->sid, &seen_sid, &expect, &o->stream_position);
        if (t < 0) return -1;
        if (t) continue;
        rd s;
        if ((f == 6 || f == 7) && wt == 2 && !o->deadline_option_case) {
            uint64_t sec, ns;
            if (rd_sub(&r, &s) || two_varints(s, &sec, &ns)) return -1;
            if (f == 6) {
                google__protobuf__timestamp__init(&w->ts);
                w->ts.seconds = (int64_t)sec;
                w->ts.nanos = (int32_t)(uint32_t)ns; /* an int32 is the low 32 bits of its varint */
                o->deadline_21_10_0 = &w->ts;
            } else {
                google__protobuf__duration__init(&w->dur);
                w->dur.seconds = (int64_t)sec;
                w->dur.nanos = (int32_t)(uint32_t)ns;
                o->deadline = &w->dur;
            }
            o->deadline_option_case =
                (EventStore__Client__Streams__BatchAppendReq__Options__DeadlineOptionCase)f;
        } else {
            return -1;
        }
    }
    if (seen_sid) o->stream_identifier = &w->sid;
    o->expected_stream_position_case =
        (EventStore__Client__Streams__BatchAppendReq__Options__ExpectedStreamPositionCase)expect;
    if (expect > 2) o->no_stream = &w->empty; /* the union's members are alike */
    return 0;
}

int rpc_wire_batch_req(const uint8_t *msg, size_t len, rpc_wire_batch *w)
{
    rd r = {msg, msg + len};
    EventStore__Client__Streams__BatchAppendReq *q = &w->req;
    event_store__client__streams__batch_append_req__init(q);
    wtext t = {w->text, sizeof w->text, 0};
    size_t left = RPC_WIRE_BATCH_META;
    int seen1 = 0, seen2 = 0, seen4 = 0;
    for (;;) {
        uint32_t f;
        unsigned wt;
        int k = rd_key(&r, &f, &wt);
        if (k < 0) return 1;
        if (k) break;
        rd s;
        if (f == 4) {
            /* a bool: one byte, 0 or 1 */
            if (wt != 0 || seen4++ || r.p == r.end || *r.p > 1) return 1;
            q->is_final = *r.p++;
            continue;
        }
        if (wt != 2 || rd_sub(&r, &s)) return 1;
        if (f == 1) {
            if (seen1++ || uuid(s, &w->corr, &w->corr_su, &t)) return 1;
            q->correlation_id = &w->corr;
        } else if (f == 2) {
            if (seen2++ || batch_options(s, w)) return 1;
            q->options = &w->opt;
        } else if (f == 3) {
            size_t i = q->n_proposed_messages;
            if (i == RPC_WIRE_BATCH ||
                batch_proposed(s, &w->pm[i], &w->id[i], &w->su[i], w->me + (RPC_WIRE_BATCH_META - left),
                               w->mep + (RPC_WIRE_BATCH_META - left), &left, &t))
                return 1;
            w->pmp[i] = &w->pm[i];
            q->n_proposed_messages++;
        } else {
            return 1;
        }
    }
    if (q->n_proposed_messages) q->proposed_messages = w->pmp;
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
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING && u->string)
        return ld_size(strlen(u->string));
    return 0;
}

static size_t
entry_inner(const EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry *e)
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
    for (size_t i = 0; i < r->n_metadata; i++)
        n += ld_size(entry_inner(r->metadata[i]));
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
    } else if (re->position_case ==
                   EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_NO_POSITION &&
               re->no_position) {
        *p++ = KEY(4, 2);
        *p++ = 0;
    }
    return (size_t)(p - out);
}
