/* Unit tests of src/rpc/wire.c, the AppendReq decoder that needs no heap
 * (WIRE-1..3 in wire.h), against protobuf-c as the reference: random
 * messages in the canonical form must be taken by the fast path and decode
 * to what protobuf-c decodes; messages mutated (fields repeated, unknown
 * fields, wrong wire types, truncated, bytes flipped) must either be
 * declined or still decode to protobuf-c's answer. The seed is printed. */
#include "harness.h"

#include "base/base.h"
#include "kurrentdb/streams.pb-c.h"
#include "rpc/wire.h"

typedef EventStore__Client__Streams__AppendReq AppendReq;

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

static void put_key(base_buf *b, unsigned field, unsigned wt)
{
    put_varint(b, (uint64_t)field << 3 | wt);
}

static void put_bytes(base_buf *b, unsigned field, const void *p, size_t n)
{
    put_key(b, field, 2);
    put_varint(b, n);
    base_buf_append(b, p, n);
}

static void put_msg(base_buf *b, unsigned field, const base_buf *inner)
{
    put_bytes(b, field, inner->data, inner->len);
}

/* A field of a message being built: its bytes, so that fields can be
 * shuffled, repeated or dropped. */
typedef struct fields {
    base_buf f[48];
    size_t n;
} fields;

static base_buf *next_field(fields *fs)
{
    base_buf *b = &fs->f[fs->n++];
    b->len = 0;
    return b;
}

static void fields_shuffle(fields *fs, h_rng *r)
{
    for (size_t i = fs->n; i > 1; i--) {
        size_t j = h_below(r, i);
        base_buf t = fs->f[i - 1];
        fs->f[i - 1] = fs->f[j];
        fs->f[j] = t;
    }
}

static void fields_join(const fields *fs, base_buf *out)
{
    out->len = 0;
    for (size_t i = 0; i < fs->n; i++) base_buf_append(out, fs->f[i].data, fs->f[i].len);
}

static void fields_free(fields *fs)
{
    for (size_t i = 0; i < sizeof fs->f / sizeof fs->f[0]; i++) base_buf_free(&fs->f[i]);
}

/* Random text: mostly printable, sometimes a NUL or a byte that is not UTF-8. */
static size_t rand_text(h_rng *r, char *buf, size_t max)
{
    size_t n = h_below(r, max + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned)h_below(r, 100);
        buf[i] = c == 0 ? '\0' : c == 1 ? (char)0xff : (char)('a' + h_below(r, 26));
    }
    return n;
}

static void gen_options(h_rng *r, base_buf *out)
{
    fields fs = {0};
    if (h_below(r, 8)) {
        base_buf sid = {0};
        char name[40];
        size_t n = rand_text(r, name, sizeof name);
        if (h_below(r, 6)) put_bytes(&sid, 3, name, n);
        put_msg(next_field(&fs), 1, &sid);
        base_buf_free(&sid);
    }
    switch (h_below(r, 5)) {
    case 0: break;
    case 1: {
        base_buf *b = next_field(&fs);
        put_key(b, 2, 0);
        put_varint(b, h_below(r, 2) ? h_below(r, 1000) : h_rand(r));
        break;
    }
    default: put_bytes(next_field(&fs), (unsigned)(3 + h_below(r, 3)), "", 0);
    }
    fields_shuffle(&fs, r);
    base_buf inner = {0};
    fields_join(&fs, &inner);
    put_msg(out, 1, &inner);
    base_buf_free(&inner);
    fields_free(&fs);
}

static void gen_proposed_as(h_rng *r, base_buf *out, unsigned field)
{
    fields fs = {0};
    char t[64];
    if (h_below(r, 8)) { /* the id */
        base_buf u = {0};
        switch (h_below(r, 4)) {
        case 0: {
            size_t n = rand_text(r, t, 40);
            put_bytes(&u, 2, t, n);
            break;
        }
        case 1: put_bytes(&u, 2, "0b0f1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d", 36); break;
        case 2: break; /* an empty UUID */
        default: {
            base_buf s = {0};
            if (h_below(r, 4)) {
                put_key(&s, 1, 0);
                put_varint(&s, h_rand(r));
            }
            if (h_below(r, 4)) {
                put_key(&s, 2, 0);
                put_varint(&s, h_rand(r));
            }
            put_msg(&u, 1, &s);
            base_buf_free(&s);
        }
        }
        put_msg(next_field(&fs), 1, &u);
        base_buf_free(&u);
    }
    size_t nm = h_below(r, 4) ? h_below(r, 4) : h_below(r, 20);
    for (size_t i = 0; i < nm; i++) {
        base_buf e = {0};
        static const char *const keys[] = {"type", "content-type", "x"};
        if (h_below(r, 6)) {
            unsigned k = (unsigned)h_below(r, 4);
            if (k < 3) put_bytes(&e, 1, keys[k], strlen(keys[k]));
            else put_bytes(&e, 1, t, rand_text(r, t, 30));
        }
        if (h_below(r, 6)) put_bytes(&e, 2, t, rand_text(r, t, 60));
        put_msg(next_field(&fs), 2, &e);
        base_buf_free(&e);
    }
    for (unsigned f = 3; f <= 4; f++) {
        if (!h_below(r, 4)) continue;
        uint8_t d[300];
        size_t n = h_below(r, sizeof d);
        for (size_t i = 0; i < n; i++) d[i] = (uint8_t)h_rand(r);
        put_bytes(next_field(&fs), f, d, n);
    }
    fields_shuffle(&fs, r);
    base_buf inner = {0};
    fields_join(&fs, &inner);
    put_msg(out, field, &inner);
    base_buf_free(&inner);
    fields_free(&fs);
}

static void gen_proposed(h_rng *r, base_buf *out)
{
    gen_proposed_as(r, out, 2);
}

#include "lib/wire_same.h"

/* One message through both decoders. Returns 1 if the fast path took it. */
static int compare(const uint8_t *msg, size_t len, int *mismatch)
{
    static rpc_wire_append w;
    int fast = rpc_wire_append_req(msg, len, &w);
    AppendReq *ref = event_store__client__streams__append_req__unpack(NULL, len, msg);
    if (fast == 0 && (!ref || !same_req(&w.req, ref))) *mismatch = 1;
    if (ref) event_store__client__streams__append_req__free_unpacked(ref, NULL);
    return fast == 0;
}

static void mutate(h_rng *r, base_buf *m)
{
    switch (h_below(r, 6)) {
    case 0: /* truncate */
        if (m->len) m->len = h_below(r, m->len);
        break;
    case 1: /* flip a byte */
        if (m->len) m->data[h_below(r, m->len)] ^= (uint8_t)(1 + h_below(r, 255));
        break;
    case 2: { /* an unknown field at the end of the top message */
        put_key(m, (unsigned)(3 + h_below(r, 20)), 0);
        put_varint(m, h_rand(r));
        break;
    }
    case 3: { /* the message twice (a repeated oneof field, merged by protobuf-c) */
        base_buf copy = {0};
        base_buf_append(&copy, m->data, m->len); /* not from m itself: appending may move it */
        base_buf_append(m, copy.data, copy.len);
        base_buf_free(&copy);
        break;
    }
    case 4: /* a group wire type at the end */
        put_key(m, 7, 3);
        break;
    default: { /* a random byte inserted */
        if (!m->len) break;
        size_t at = h_below(r, m->len);
        uint8_t c = (uint8_t)h_rand(r);
        base_buf t = {0};
        base_buf_append(&t, m->data, at);
        base_buf_append(&t, &c, 1);
        base_buf_append(&t, m->data + at, m->len - at);
        m->len = 0;
        base_buf_append(m, t.data, t.len);
        base_buf_free(&t);
    }
    }
}

static void t_random_and_mutated(void)
{
    h_rng r = {harness_seed("wire")};
    base_buf m = {0};
    size_t canonical = 0, taken = 0, mutated_taken = 0, mutated = 0;
    int mismatch = 0;
    for (int i = 0; i < 200000 && !mismatch; i++) {
        m.len = 0;
        if (h_below(&r, 3)) gen_proposed(&r, &m);
        else gen_options(&r, &m);
        int fast = compare(m.data, m.len, &mismatch);
        canonical++;
        taken += (size_t)fast;
        if (mismatch) fprintf(stderr, "  canonical message %d differs\n", i);
        m.len = m.len; /* then a mutation of it */
        mutate(&r, &m);
        mutated++;
        mutated_taken += (size_t)compare(m.data, m.len, &mismatch);
        if (mismatch) fprintf(stderr, "  mutated message %d differs\n", i);
    }
    printf("  canonical: %zu of %zu taken by the fast path; mutated: %zu of %zu\n", taken, canonical, mutated_taken,
           mutated);
    CHECK(!mismatch);
    /* the generator's messages over the fast path's limits (more than 16
     * metadata entries, or more text than it keeps) are the only ones it may
     * decline: they are a few percent */
    CHECK(taken * 100 >= canonical * 90);
    base_buf_free(&m);
}

/* The messages the C client and the official clients send, byte for byte
 * as protobuf-c packs them, are all taken. */
static void t_packed_by_protobuf_c(void)
{
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)"account-1";
    sid.stream_name.len = 9;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__Streams__AppendReq__Options o = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__INIT;
    o.stream_identifier = &sid;
    AppendReq req = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__INIT;
    req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS;
    req.options = &o;
    uint8_t buf[1024];
    static rpc_wire_append w;
    for (int k = 2; k <= 5; k++) {
        o.expected_stream_revision_case = (EventStore__Client__Streams__AppendReq__Options__ExpectedStreamRevisionCase)k;
        if (k == 2) o.revision = 41;
        else o.any = &empty;
        size_t n = event_store__client__streams__append_req__pack(&req, buf);
        CHECK_RC(rpc_wire_append_req(buf, n, &w), 0);
        CHECK(same_req(&w.req, &req));
    }

    EventStore__Client__UUID__Structured su = EVENT_STORE__CLIENT__UUID__STRUCTURED__INIT;
    su.most_significant_bits = -5;
    su.least_significant_bits = INT64_MAX;
    EventStore__Client__UUID id = EVENT_STORE__CLIENT__UUID__INIT;
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
    id.structured = &su;
    EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry e[2] = {
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__METADATA_ENTRY__INIT,
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__METADATA_ENTRY__INIT};
    e[0].key = "type";
    e[0].value = "MoneyDeposited";
    e[1].key = "content-type";
    e[1].value = "application/json";
    EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry *ep[2] = {&e[0], &e[1]};
    EventStore__Client__Streams__AppendReq__ProposedMessage pm = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__PROPOSED_MESSAGE__INIT;
    pm.id = &id;
    pm.n_metadata = 2;
    pm.metadata = ep;
    pm.data.data = (uint8_t *)"{\"amount\":5}";
    pm.data.len = 12;
    req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE;
    req.proposed_message = &pm;
    size_t n = event_store__client__streams__append_req__pack(&req, buf);
    CHECK_RC(rpc_wire_append_req(buf, n, &w), 0);
    CHECK(same_req(&w.req, &req));
    /* the string form of the id */
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
    id.string = "0b0f1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d";
    n = event_store__client__streams__append_req__pack(&req, buf);
    CHECK_RC(rpc_wire_append_req(buf, n, &w), 0);
    CHECK(same_req(&w.req, &req));
    CHECK(w.req.proposed_message->data.data >= buf && w.req.proposed_message->data.data < buf + n); /* WIRE-3 */
}

/* What is not the canonical form is declined, never decoded differently. */
static void t_declined(void)
{
    static rpc_wire_append w;
    base_buf m = {0};
    /* empty message: protobuf-c gives content NOT_SET; the fast path declines */
    CHECK_RC(rpc_wire_append_req((const uint8_t *)"", 0, &w), 1);
    /* a proposed message with the data field twice */
    base_buf in = {0};
    put_bytes(&in, 4, "a", 1);
    put_bytes(&in, 4, "b", 1);
    put_msg(&m, 2, &in);
    CHECK_RC(rpc_wire_append_req(m.data, m.len, &w), 1);
    /* 17 metadata entries */
    in.len = m.len = 0;
    for (int i = 0; i < RPC_WIRE_META + 1; i++) {
        base_buf e = {0};
        put_bytes(&e, 1, "k", 1);
        put_msg(&in, 2, &e);
        base_buf_free(&e);
    }
    put_msg(&m, 2, &in);
    CHECK_RC(rpc_wire_append_req(m.data, m.len, &w), 1);
    /* a type longer than the text the fast path keeps */
    in.len = m.len = 0;
    {
        char big[RPC_WIRE_TEXT + 10];
        memset(big, 'x', sizeof big);
        base_buf e = {0};
        put_bytes(&e, 2, big, sizeof big);
        put_msg(&in, 2, &e);
        base_buf_free(&e);
    }
    put_msg(&m, 2, &in);
    CHECK_RC(rpc_wire_append_req(m.data, m.len, &w), 1);
    base_buf_free(&in);
    base_buf_free(&m);
}


/* ---- ReadResp.ReadEvent packed by hand (WIRE-4) ------------------------ */

typedef EventStore__Client__Streams__ReadResp__ReadEvent ReadEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent Recorded;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry Entry;

typedef struct rec_parts {
    Recorded rec;
    EventStore__Client__UUID uuid;
    EventStore__Client__UUID__Structured su;
    EventStore__Client__StreamIdentifier sid;
    Entry me[4];
    Entry *mep[4];
    char text[6][48];
    uint8_t data[2][200];
} rec_parts;

static uint64_t rand_u64(h_rng *r)
{
    switch (h_below(r, 4)) {
    case 0: return 0;
    case 1: return h_below(r, 200);
    case 2: return h_rand(r) >> h_below(r, 64);
    default: return h_rand(r);
    }
}

static char *rand_str(h_rng *r, char *buf)
{
    if (!h_below(r, 8)) return NULL;
    size_t n = h_below(r, 4) ? h_below(r, 40) : 0;
    for (size_t i = 0; i < n; i++) buf[i] = (char)(1 + h_below(r, 255));
    buf[n] = '\0';
    return buf;
}

static Recorded *gen_recorded(h_rng *r, rec_parts *x)
{
    event_store__client__streams__read_resp__read_event__recorded_event__init(&x->rec);
    event_store__client__uuid__init(&x->uuid);
    event_store__client__uuid__structured__init(&x->su);
    event_store__client__stream_identifier__init(&x->sid);
    if (h_below(r, 6)) {
        x->rec.id = &x->uuid;
        switch (h_below(r, 4)) {
        case 0: break;
        case 1:
            x->uuid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
            x->uuid.string = rand_str(r, x->text[0]);
            break;
        default:
            x->uuid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
            x->uuid.structured = h_below(r, 8) ? &x->su : NULL;
            x->su.most_significant_bits = (int64_t)rand_u64(r);
            x->su.least_significant_bits = (int64_t)rand_u64(r);
        }
    }
    if (h_below(r, 6)) {
        x->rec.stream_identifier = &x->sid;
        size_t n = h_below(r, 30);
        for (size_t i = 0; i < n; i++) x->data[0][i] = (uint8_t)h_rand(r);
        x->sid.stream_name.data = n || h_below(r, 2) ? x->data[0] : NULL;
        x->sid.stream_name.len = n;
    }
    x->rec.stream_revision = rand_u64(r);
    x->rec.prepare_position = rand_u64(r);
    x->rec.commit_position = rand_u64(r);
    x->rec.n_metadata = h_below(r, 5);
    for (size_t i = 0; i < x->rec.n_metadata; i++) {
        event_store__client__streams__read_resp__read_event__recorded_event__metadata_entry__init(&x->me[i]);
        x->me[i].key = i < 2 ? rand_str(r, x->text[1 + 2 * i]) : (char *)"created";
        x->me[i].value = i < 2 ? rand_str(r, x->text[2 + 2 * i]) : (char *)"638000000000000000";
        x->mep[i] = &x->me[i];
    }
    x->rec.metadata = x->rec.n_metadata ? x->mep : NULL;
    size_t n = h_below(r, 3) ? h_below(r, 200) : 0;
    for (size_t i = 0; i < n; i++) x->data[1][i] = (uint8_t)h_rand(r);
    x->rec.data.data = x->data[1];
    x->rec.data.len = n;
    n = h_below(r, 3) ? h_below(r, 48) : 0;
    x->rec.custom_metadata.data = (uint8_t *)x->text[5];
    memset(x->text[5], 'm', sizeof x->text[5]);
    x->rec.custom_metadata.len = n;
    return &x->rec;
}

static void t_read_event_packed(void)
{
    h_rng r = {harness_seed("wire read event")};
    static rec_parts ev, link;
    static uint8_t mine[4096], ref[4096];
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    int bad = 0;
    for (int i = 0; i < 200000 && !bad; i++) {
        ReadEvent re = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__INIT;
        if (h_below(&r, 8)) re.event = gen_recorded(&r, &ev);
        if (!h_below(&r, 3)) re.link = gen_recorded(&r, &link);
        switch (h_below(&r, 4)) {
        case 0: break;
        case 1:
            re.position_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_NO_POSITION;
            re.no_position = h_below(&r, 4) ? &empty : NULL;
            break;
        default:
            re.position_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_COMMIT_POSITION;
            re.commit_position = rand_u64(&r);
        }
        size_t want = protobuf_c_message_get_packed_size(&re.base);
        size_t n = rpc_wire_read_event_size(&re);
        if (n != want || want > sizeof ref) {
            fprintf(stderr, "  event %d: size %zu, protobuf-c %zu\n", i, n, want);
            bad = 1;
            break;
        }
        protobuf_c_message_pack(&re.base, ref);
        if (rpc_wire_read_event_pack(&re, mine) != n || memcmp(mine, ref, n) != 0) {
            fprintf(stderr, "  event %d: bytes differ\n", i);
            bad = 1;
        }
    }
    CHECK(!bad);
}

/* ---- BatchAppendReq -------------------------------------------------------- */

static void gen_batch(h_rng *r, base_buf *out)
{
    fields fs = {0};
    if (h_below(r, 8)) { /* the correlation id */
        base_buf u = {0}, st = {0};
        put_key(&st, 1, 0);
        put_varint(&st, h_rand(r));
        put_key(&st, 2, 0);
        put_varint(&st, h_rand(r));
        if (h_below(r, 4)) put_msg(&u, 1, &st);
        else put_bytes(&u, 2, "0b0f1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d", 36);
        put_msg(next_field(&fs), 1, &u);
        base_buf_free(&u);
        base_buf_free(&st);
    }
    if (h_below(r, 4)) { /* the options: gen_options's, plus a deadline */
        base_buf o = {0}, opt = {0};
        gen_options(r, &o); /* field 1 of an AppendReq: take its inside */
        base_buf_append(&opt, o.data + 1, o.len - 1);
        /* skip the length varint */
        size_t skip = 0;
        while (opt.data[skip] & 0x80) skip++;
        skip++;
        base_buf in = {0};
        base_buf_append(&in, opt.data + skip, opt.len - skip);
        if (h_below(r, 2)) {
            base_buf d = {0};
            if (h_below(r, 4)) {
                put_key(&d, 1, 0);
                put_varint(&d, h_rand(r) >> h_below(r, 64));
            }
            if (h_below(r, 4)) {
                put_key(&d, 2, 0);
                put_varint(&d, h_below(r, 2) ? h_below(r, 1000000000) : h_rand(r));
            }
            put_msg(&in, (unsigned)(6 + h_below(r, 2)), &d);
            base_buf_free(&d);
        }
        put_msg(next_field(&fs), 2, &in);
        base_buf_free(&o);
        base_buf_free(&opt);
        base_buf_free(&in);
    }
    size_t n = h_below(r, 4) ? h_below(r, 4) : h_below(r, 20);
    for (size_t i = 0; i < n && fs.n < 40; i++) gen_proposed_as(r, next_field(&fs), 3);
    if (h_below(r, 2)) {
        base_buf *b = next_field(&fs);
        put_key(b, 4, 0);
        put_varint(b, h_below(r, 8) ? h_below(r, 2) : h_rand(r));
    }
    fields_shuffle(&fs, r);
    fields_join(&fs, out);
    fields_free(&fs);
}

static void t_batch_random_and_mutated(void)
{
    h_rng r = {harness_seed("wire batch")};
    static rpc_wire_batch w;
    base_buf m = {0};
    size_t taken = 0, total = 0, mutated_taken = 0;
    int bad = 0;
    for (int i = 0; i < 100000 && !bad; i++) {
        m.len = 0;
        gen_batch(&r, &m);
        for (int pass = 0; pass < 2 && !bad; pass++) {
            if (pass) mutate(&r, &m);
            int fast = rpc_wire_batch_req(m.data, m.len, &w) == 0;
            EventStore__Client__Streams__BatchAppendReq *ref =
                event_store__client__streams__batch_append_req__unpack(NULL, m.len, m.data);
            if (fast && (!ref || !same_batch(&w.req, ref))) {
                fprintf(stderr, "  batch message %d (pass %d) differs\n", i, pass);
                bad = 1;
            }
            if (ref) event_store__client__streams__batch_append_req__free_unpacked(ref, NULL);
            if (pass) mutated_taken += (size_t)fast;
            else {
                taken += (size_t)fast;
                total++;
            }
        }
    }
    printf("  batches: %zu of %zu taken by the fast path; mutated: %zu\n", taken, total, mutated_taken);
    CHECK(!bad);
    CHECK(taken * 100 >= total * 70); /* declined: over 16 messages or 64 entries, a long bool */
    base_buf_free(&m);
}

int main(void)
{
    RUN(t_packed_by_protobuf_c);
    RUN(t_declined);
    RUN(t_random_and_mutated);
    RUN(t_read_event_packed);
    RUN(t_batch_random_and_mutated);
    return harness_done();
}
