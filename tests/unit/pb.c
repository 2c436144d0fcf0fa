/* Unit tests of src/net/pb.c, the guarded decoding of protobuf messages
 * from the network: nesting depth is checked on the raw bytes before
 * protobuf-c recurses (PB-1), and decoding memory is counted and limited
 * (PB-2). The deep messages are the attack of issue 10: an AppendSession
 * request whose record properties nest google.protobuf.Value/ListValue
 * thousands of levels deep, which crashed factumd. */
#include "harness.h"

#include "base/base.h"
#include "kurrentdb/streams.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "net/pb.h"

typedef Kurrentdb__Protocol__V2__Streams__AppendRequest V2AppendRequest;

/* ---- a little protobuf writer (inside out) ---------------------------- */

static void put_varint(base_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    base_buf_append(b, tmp, n);
}

/* out = key(field, 2) len inner */
static void wrap(base_buf *out, unsigned field, const base_buf *inner)
{
    put_varint(out, (uint64_t)field << 3 | 2);
    put_varint(out, inner->len);
    base_buf_append(out, inner->data, inner->len);
}

static void put_string(base_buf *out, unsigned field, const char *s)
{
    base_buf t = {0};
    base_buf_append(&t, s, strlen(s));
    wrap(out, field, &t);
    base_buf_free(&t);
}

/* A Value that is `lists` ListValues around the string "x". */
static void nested_value(base_buf *out, int lists)
{
    base_buf v = {0}, lv = {0};
    put_string(&v, 3, "x"); /* Value.string_value */
    for (int i = 0; i < lists; i++) {
        lv.len = 0;
        wrap(&lv, 1, &v); /* ListValue.values */
        v.len = 0;
        wrap(&v, 6, &lv); /* Value.list_value */
    }
    base_buf_append(out, v.data, v.len);
    base_buf_free(&v);
    base_buf_free(&lv);
}

/* An AppendRequest for stream "s" with one record whose property "k" is
 * the given Value bytes. */
static void append_request(base_buf *out, const base_buf *value)
{
    base_buf entry = {0}, record = {0};
    put_string(&entry, 1, "k");
    wrap(&entry, 2, value);
    wrap(&record, 2, &entry); /* AppendRecord.properties */
    put_string(out, 1, "s");  /* AppendRequest.stream */
    wrap(out, 2, &record);    /* AppendRequest.records */
    base_buf_free(&entry);
    base_buf_free(&record);
}

static const ProtobufCMessageDescriptor *v2_desc(void)
{
    return &kurrentdb__protocol__v2__streams__append_request__descriptor;
}

/* ---- tests ----------------------------------------------------------- */

/* PB-1: 5,000 levels (the 34 KB request that crashed factumd) are refused
 * before protobuf-c sees them; nothing is allocated. */
static void t_deep_nesting_refused(void)
{
    base_buf value = {0}, req = {0};
    nested_value(&value, 2500); /* 5,000 levels of Value/ListValue */
    append_request(&req, &value);
    CHECK(req.len > 10000);
    CHECK_RC(pb_check(v2_desc(), req.data, req.len, PB_MAX_DEPTH), PB_EDEPTH);
    pb_alloc pa;
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    CHECK_RC(pb_unpack(v2_desc(), req.data, req.len, &pa, &m), PB_EDEPTH);
    CHECK(m == NULL);
    CHECK_EQ_U64(pa.used, 0);
    base_buf_free(&value);
    base_buf_free(&req);
}

/* PB-1 at the edge: the request is depth 0, the record 1, the map entry 2,
 * the outermost Value 3, and every ListValue adds two levels: 30 lists put
 * the innermost Value at depth 63 (accepted), 31 at 65 (refused). What is
 * accepted decodes to the tree that was sent. */
static void t_depth_limit_exact(void)
{
    for (int lists = 29; lists <= 32; lists++) {
        base_buf value = {0}, req = {0};
        nested_value(&value, lists);
        append_request(&req, &value);
        int want = 3 + 2 * lists <= PB_MAX_DEPTH ? PB_OK : PB_EDEPTH;
        CHECK_RC(pb_check(v2_desc(), req.data, req.len, PB_MAX_DEPTH), want);
        pb_alloc pa;
        pb_alloc_init(&pa, pb_decode_limit(req.len));
        ProtobufCMessage *m = NULL;
        CHECK_RC(pb_unpack(v2_desc(), req.data, req.len, &pa, &m), want);
        if (m) {
            V2AppendRequest *r = (V2AppendRequest *)m;
            CHECK(r->n_records == 1 && r->records[0]->n_properties == 1);
            const Google__Protobuf__Value *v = r->records[0]->properties[0]->value;
            int seen = 0;
            while (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE) {
                CHECK(v->list_value->n_values == 1);
                v = v->list_value->values[0];
                seen++;
            }
            CHECK(seen == lists);
            CHECK(v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && !strcmp(v->string_value, "x"));
            CHECK(pa.used > 0);
            pb_free(m, &pa);
            CHECK_EQ_U64(pa.used, 0);
        }
        base_buf_free(&value);
        base_buf_free(&req);
    }
}

/* Broken encodings are refused by the walk, whatever the schema. */
static void t_malformed(void)
{
    const ProtobufCMessageDescriptor *d = v2_desc();
    const uint8_t group[] = {0x0b, 0x0c};                  /* field 1, wire type 3 (start group) */
    const uint8_t overlong[] = {0x0a, 0x05, 'a', 'b'};       /* length past the end */
    const uint8_t varint11[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t field0[] = {0x02, 0x00};                   /* field number 0 */
    const uint8_t cut_key[] = {0x80};                        /* a key that never ends */
    const uint8_t fixed_short[] = {0x19, 1, 2, 3};           /* fixed64 with 3 bytes */
    const uint8_t wt7[] = {0x0f};
    CHECK_RC(pb_check(d, group, sizeof group, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, overlong, sizeof overlong, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, varint11, sizeof varint11, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, field0, sizeof field0, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, cut_key, sizeof cut_key, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, fixed_short, sizeof fixed_short, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, wt7, sizeof wt7, PB_MAX_DEPTH), PB_EMALFORMED);
    CHECK_RC(pb_check(d, (const uint8_t *)"", 0, PB_MAX_DEPTH), PB_OK);
    /* A sub-message whose inner length runs past its own end. */
    const uint8_t inner_over[] = {0x12, 0x02, 0x12, 0x05};
    CHECK_RC(pb_check(d, inner_over, sizeof inner_over, PB_MAX_DEPTH), PB_EMALFORMED);
    /* Unknown fields are skipped, not entered. */
    const uint8_t unknown[] = {0xfa, 0x01, 0x02, 0x12, 0x00};
    CHECK_RC(pb_check(d, unknown, sizeof unknown, PB_MAX_DEPTH), PB_OK);
}

/* PB-2: a list of 200,000 empty Values is 400 KB of wire but tens of MB
 * decoded; the limit refuses it and nothing stays allocated. */
static void t_decode_memory_limited(void)
{
    base_buf lv = {0}, value = {0}, req = {0};
    for (int i = 0; i < 200000; i++) base_buf_append(&lv, "\x0a\x00", 2);
    wrap(&value, 6, &lv);
    append_request(&req, &value);
    pb_alloc pa;
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    ProtobufCMessage *m = NULL;
    CHECK_RC(pb_unpack(v2_desc(), req.data, req.len, &pa, &m), PB_ETOOBIG);
    CHECK(m == NULL);
    CHECK_EQ_U64(pa.used, 0);
    /* With room enough it decodes: the limit, not the bytes, refused it. */
    pb_alloc_init(&pa, 1u << 30);
    CHECK_RC(pb_unpack(v2_desc(), req.data, req.len, &pa, &m), PB_OK);
    fprintf(stderr, "  200,000 empty Values: %zu wire bytes, %zu decoded (%.1fx)\n", req.len, pa.used,
            (double)pa.used / (double)req.len);
    CHECK(pa.used > pb_decode_limit(req.len));
    pb_free(m, &pa);
    CHECK_EQ_U64(pa.used, 0);
    base_buf_free(&lv);
    base_buf_free(&value);
    base_buf_free(&req);
}

static int charge_hook(void *ctx, long delta)
{
    long *budget = ctx;
    if (delta > 0 && *budget < delta) return -1;
    *budget -= delta;
    return 0;
}

/* What legitimate clients send decodes within the limit: a BatchAppend
 * request of 1,000 events with empty bodies (the most structure per byte a
 * client library produces), and the charge hook sees every byte come and
 * go. */
static void t_legitimate_within_limit(void)
{
    base_buf req = {0};
    for (int i = 0; i < 1000; i++) {
        base_buf pm = {0}, id = {0}, e1 = {0}, e2 = {0};
        put_string(&id, 2, "0f8fad5b-d9cb-469f-a165-70867728950e"); /* UUID.string */
        wrap(&pm, 1, &id);                                           /* ProposedMessage.id */
        put_string(&e1, 1, "type");
        put_string(&e1, 2, "MoneyDeposited");
        put_string(&e2, 1, "content-type");
        put_string(&e2, 2, "application/json");
        wrap(&pm, 2, &e1); /* metadata */
        wrap(&pm, 2, &e2);
        wrap(&req, 3, &pm); /* BatchAppendReq.proposed_messages */
        base_buf_free(&pm);
        base_buf_free(&id);
        base_buf_free(&e1);
        base_buf_free(&e2);
    }
    const ProtobufCMessageDescriptor *d = &event_store__client__streams__batch_append_req__descriptor;
    long budget = 1L << 30, start = budget;
    pb_alloc pa;
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    pa.charge = charge_hook;
    pa.charge_ctx = &budget;
    ProtobufCMessage *m = NULL;
    CHECK_RC(pb_unpack(d, req.data, req.len, &pa, &m), PB_OK);
    fprintf(stderr, "  BatchAppend of 1,000 empty events: %zu wire bytes, %zu decoded (%.1fx)\n", req.len, pa.used,
            (double)pa.used / (double)req.len);
    CHECK(m && ((EventStore__Client__Streams__BatchAppendReq *)m)->n_proposed_messages == 1000);
    CHECK_EQ_U64((uint64_t)(start - budget), pa.used);
    pb_free(m, &pa);
    CHECK_EQ_U64((uint64_t)budget, (uint64_t)start);
    /* A charge hook that says no refuses the decode like the limit does. */
    budget = 4096;
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    pa.charge = charge_hook;
    pa.charge_ctx = &budget;
    CHECK_RC(pb_unpack(d, req.data, req.len, &pa, &m), PB_ETOOBIG);
    CHECK_EQ_U64((uint64_t)budget, 4096);
    base_buf_free(&req);
}

/* PB-1 applies where nesting is unbounded: a type reachable from itself is
 * walked; KurrentDB's other messages nest only as deep as their schema. The
 * walk refuses depth, so only a walked type refuses the deep request -
 * here a v2 request's bytes read as a v1 AppendReq are just malformed. */
static void t_walk_only_recursive_types(void)
{
    base_buf value = {0}, req = {0};
    nested_value(&value, 2500);
    append_request(&req, &value);
    pb_alloc pa;
    ProtobufCMessage *m = NULL;
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    CHECK_RC(pb_unpack(v2_desc(), req.data, req.len, &pa, &m), PB_EDEPTH); /* walked */
    pb_alloc_init(&pa, pb_decode_limit(req.len));
    int rc = pb_unpack(&event_store__client__streams__append_req__descriptor, req.data, req.len, &pa, &m);
    CHECK(rc != PB_EDEPTH); /* not walked: the schema bounds it */
    if (m) pb_free(m, &pa);
    CHECK_EQ_U64(pa.used, 0);
    base_buf_free(&value);
    base_buf_free(&req);
}

int main(void)
{
    RUN(t_walk_only_recursive_types);
    RUN(t_deep_nesting_refused);
    RUN(t_depth_limit_exact);
    RUN(t_malformed);
    RUN(t_decode_memory_limited);
    RUN(t_legitimate_within_limit);
    return harness_done();
}
