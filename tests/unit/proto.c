/* Unit tests of the protocol code generated from proto/ (factum_proto):
 * messages of the KurrentDB client protocol pack to the bytes the official
 * clients expect and unpack back. The expected byte strings are worked out
 * by hand from the protobuf wire format - a key is (field << 3) | wire
 * type (0 varint, 2 length-delimited), varints are little-endian groups of
 * 7 bits, sint64 is zigzag-coded ((n << 1) ^ (n >> 63)), int64 negatives
 * take ten bytes - so a wrong field number or type in a .proto fails here.
 * protobuf-c writes fields in field-number order, which fixes the layout. */
#include "harness.h"

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/rpc/code.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "kurrentdb/gossip.pb-c.h"
#include "kurrentdb/persistent.pb-c.h"
#include "kurrentdb/serverfeatures.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "kurrentdb/v2/streams_errors.pb-c.h"

/* Shorter names for the generated types used most. */
typedef EventStore__Client__Empty Empty;
typedef EventStore__Client__StreamIdentifier StreamId;
typedef EventStore__Client__UUID Uuid;
typedef EventStore__Client__Streams__ReadReq ReadReq;
typedef EventStore__Client__Streams__ReadReq__Options ReadOpts;
typedef EventStore__Client__Streams__ReadReq__Options__StreamOptions ReadStreamOpts;
typedef EventStore__Client__Streams__ReadReq__Options__UUIDOption ReadUuidOpt;
typedef EventStore__Client__Streams__AppendReq AppendReq;
typedef EventStore__Client__Streams__AppendReq__Options AppendOpts;
typedef EventStore__Client__Streams__BatchAppendResp BatchResp;
typedef EventStore__Client__WrongExpectedVersion Wev;
typedef Kurrentdb__Protocol__V2__Streams__AppendRequest V2AppendRequest;
typedef Kurrentdb__Protocol__V2__Streams__AppendRecord V2AppendRecord;
typedef Kurrentdb__Protocol__V2__Streams__SchemaInfo V2SchemaInfo;

#define WEV_TYPE_URL "type.googleapis.com/event_store.client.WrongExpectedVersion"
#define A_UUID       "0f8fad5b-d9cb-469f-a165-70867728950e"

/* Compares packed bytes with the expectation; on a mismatch prints both
 * in hex so the wrong byte can be found. */
static int same_bytes(const char *what, const uint8_t *got, size_t got_n, const uint8_t *want, size_t want_n)
{
    if (got_n == want_n && memcmp(got, want, want_n) == 0) return 1;
    fprintf(stderr, "  %s: packed %zu bytes, expected %zu\n    got: ", what, got_n, want_n);
    for (size_t i = 0; i < got_n; i++)
        fprintf(stderr, "%02x ", got[i]);
    fprintf(stderr, "\n   want: ");
    for (size_t i = 0; i < want_n; i++)
        fprintf(stderr, "%02x ", want[i]);
    fprintf(stderr, "\n");
    return 0;
}

/* Packs any message into a malloc'd buffer; *n gets the size. */
static uint8_t *pack_any(const ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*n ? *n : 1);
    if (buf && protobuf_c_message_pack(m, buf) != *n) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int bin_is(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

/* ---------------------------------------------------------------------- */

/* Streams.Read of "abc" backwards from revision 300, 10 events, string
 * UUIDs, no filter: what a client sends for a bounded stream read. */
static void t_read_req(void)
{
    Empty empty_no_filter = EVENT_STORE__CLIENT__EMPTY__INIT;
    Empty empty_string = EVENT_STORE__CLIENT__EMPTY__INIT;
    StreamId sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)"abc";
    sid.stream_name.len = 3;

    ReadStreamOpts so = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__INIT;
    so.stream_identifier = &sid;
    so.revision_option_case =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION;
    so.revision = 300;

    ReadUuidOpt uo = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__INIT;
    uo.content_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    uo.string = &empty_string;

    ReadOpts o = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__INIT;
    o.stream_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM;
    o.stream = &so;
    o.read_direction = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards;
    o.resolve_links = 1;
    o.count_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_COUNT;
    o.count = 10;
    o.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_NO_FILTER;
    o.no_filter = &empty_no_filter;
    o.uuid_option = &uo;

    ReadReq req = EVENT_STORE__CLIENT__STREAMS__READ_REQ__INIT;
    req.options = &o;

    static const uint8_t want[] = {
        0x0a, 0x18,                 /* options (1), 24 bytes */
        0x0a, 0x0a,                 /*   stream (1), 10 bytes */
        0x0a, 0x05,                 /*     stream_identifier (1), 5 bytes */
        0x1a, 0x03, 'a',  'b', 'c', /*       stream_name (3) "abc" */
        0x10, 0xac, 0x02,           /*     revision (2) = 300 */
        0x18, 0x01,                 /*   read_direction (3) = Backwards */
        0x20, 0x01,                 /*   resolve_links (4) = true */
        0x28, 0x0a,                 /*   count (5) = 10 */
        0x42, 0x00,                 /*   no_filter (8) = Empty */
        0x4a, 0x02,                 /*   uuid_option (9), 2 bytes */
        0x12, 0x00,                 /*     string (2) = Empty */
    };
    size_t n = event_store__client__streams__read_req__get_packed_size(&req);
    uint8_t buf[64];
    REQUIRE(n <= sizeof buf);
    CHECK_EQ_U64(event_store__client__streams__read_req__pack(&req, buf), n);
    CHECK(same_bytes("ReadReq", buf, n, want, sizeof want));

    /* And back, from the hand-made bytes. */
    ReadReq *r = event_store__client__streams__read_req__unpack(NULL, sizeof want, want);
    REQUIRE(r != NULL);
    REQUIRE(r->options != NULL);
    ReadOpts *ro = r->options;
    CHECK(ro->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM);
    if (ro->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM) {
        CHECK(ro->stream->stream_identifier && bin_is(ro->stream->stream_identifier->stream_name, "abc"));
        CHECK(ro->stream->revision_option_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION);
        CHECK_EQ_U64(ro->stream->revision, 300);
    }
    CHECK(ro->read_direction == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards);
    CHECK(ro->resolve_links);
    CHECK(ro->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_COUNT);
    CHECK_EQ_U64(ro->count, 10);
    CHECK(ro->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_NO_FILTER);
    CHECK(ro->uuid_option != NULL &&
          ro->uuid_option->content_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING);
    CHECK(ro->control_option == NULL);
    event_store__client__streams__read_req__free_unpacked(r, NULL);
}

/* A subscription to $all from the start with a stream-prefix filter and
 * control_option: the other branches of the Read oneofs. */
static void t_read_req_subscription(void)
{
    static const uint8_t bytes[] = {
        0x0a, 0x1c,                       /* options (1), 28 bytes */
        0x12, 0x02, 0x12, 0x00,           /*   all (2) { start (2) } */
        0x32, 0x00,                       /*   subscription (6) */
        0x3a, 0x0c,                       /*   filter (7), 12 bytes */
        0x0a, 0x06,                       /*     stream_identifier (1), 6 bytes */
        0x12, 0x04, 'a',  'c',  'c', '-', /*       prefix (2) "acc-" */
        0x22, 0x00,                       /*     count (4) */
        0x28, 0x01,                       /*     checkpointIntervalMultiplier (5) = 1 */
        0x4a, 0x02, 0x0a, 0x00,           /*   uuid_option (9) { structured (1) } */
        0x52, 0x02, 0x08, 0x01,           /*   control_option (10) { compatibility (1) = 1 } */
    };
    ReadReq *r = event_store__client__streams__read_req__unpack(NULL, sizeof bytes, bytes);
    REQUIRE(r != NULL && r->options != NULL);
    ReadOpts *o = r->options;
    CHECK(o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL);
    if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL)
        CHECK(o->all->all_option_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_START);
    CHECK(o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_SUBSCRIPTION);
    CHECK(o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER);
    if (o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER) {
        EventStore__Client__Streams__ReadReq__Options__FilterOptions *f = o->filter;
        CHECK(f->filter_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER);
        if (f->filter_case ==
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER) {
            CHECK(f->stream_identifier->n_prefix == 1 &&
                  strcmp(f->stream_identifier->prefix[0], "acc-") == 0);
            CHECK(strcmp(f->stream_identifier->regex, "") == 0);
        }
        CHECK(f->window_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__WINDOW_COUNT);
        CHECK(f->checkpointintervalmultiplier == 1);
    }
    CHECK(o->uuid_option &&
          o->uuid_option->content_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRUCTURED);
    CHECK(o->control_option && o->control_option->compatibility == 1);

    /* Packing it again gives the same bytes. */
    size_t n = event_store__client__streams__read_req__get_packed_size(r);
    uint8_t buf[64];
    if (n <= sizeof buf) {
        event_store__client__streams__read_req__pack(r, buf);
        CHECK(same_bytes("ReadReq (subscription)", buf, n, bytes, sizeof bytes));
    } else {
        CHECK(n <= sizeof buf);
    }
    event_store__client__streams__read_req__free_unpacked(r, NULL);
}

/* A read answer: an event with a structured id, metadata map and data, and
 * a caught_up whose stream_revision is set to zero (presence kept). */
static void t_read_resp(void)
{
    EventStore__Client__UUID__Structured st = EVENT_STORE__CLIENT__UUID__STRUCTURED__INIT;
    st.most_significant_bits = 0x0f8fad5bd9cb469fLL;
    st.least_significant_bits = (int64_t)0xa16570867728950eULL; /* negative */
    Uuid id = EVENT_STORE__CLIENT__UUID__INIT;
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
    id.structured = &st;
    StreamId sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)"s1";
    sid.stream_name.len = 2;
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry md =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__RECORDED_EVENT__METADATA_ENTRY__INIT;
    md.key = "type";
    md.value = "Opened";
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry *mds[] = {&md};
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent ev =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__RECORDED_EVENT__INIT;
    ev.id = &id;
    ev.stream_identifier = &sid;
    ev.stream_revision = 0;
    ev.prepare_position = 128;
    ev.commit_position = 128;
    ev.n_metadata = 1;
    ev.metadata = mds;
    ev.data.data = (uint8_t *)"{}";
    ev.data.len = 2;
    Empty nopos = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__Streams__ReadResp__ReadEvent re =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__INIT;
    re.event = &ev;
    re.position_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__READ_EVENT__POSITION_NO_POSITION;
    re.no_position = &nopos;
    EventStore__Client__Streams__ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT;
    resp.event = &re;

    static const uint8_t want[] = {
        0x0a, 0x3d,                                                       /* event (1), 61 bytes */
        0x0a, 0x39,                                                       /*   event (1), 57 bytes */
        0x0a, 0x17,                                                       /*     id (1), 23 bytes */
        0x0a, 0x15,                                                       /*       structured (1), 21 bytes */
        0x08, 0x9f, 0x8d, 0xad, 0xce, 0xbd, 0xab, 0xeb, 0xc7, 0x0f,       /* msb (1) */
        0x10, 0x8e, 0xaa, 0xa2, 0xb9, 0xe7, 0x90, 0xdc, 0xb2, 0xa1, 0x01, /* lsb (2), negative */
        0x12, 0x04, 0x1a, 0x02, 's',  '1',                                /*     stream_identifier (2) */
        0x20, 0x80, 0x01,                                                 /*     prepare_position (4) = 128 */
        0x28, 0x80, 0x01,                                                 /*     commit_position (5) = 128 */
        0x32, 0x0e,                                    /*     metadata (6), entry of 14 bytes */
        0x0a, 0x04, 't',  'y',  'p',  'e',             /*       key (1) */
        0x12, 0x06, 'O',  'p',  'e',  'n',  'e',  'd', /*       value (2) */
        0x42, 0x02, '{',  '}',                         /*     data (8) */
        0x22, 0x00,                                    /*   no_position (4) */
    };
    size_t n = event_store__client__streams__read_resp__get_packed_size(&resp);
    uint8_t buf[128];
    REQUIRE(n <= sizeof buf);
    event_store__client__streams__read_resp__pack(&resp, buf);
    CHECK(same_bytes("ReadResp.event", buf, n, want, sizeof want));

    EventStore__Client__Streams__ReadResp *r = event_store__client__streams__read_resp__unpack(NULL, n, buf);
    REQUIRE(r != NULL);
    CHECK(r->content_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT);
    if (r->content_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT && r->event->event) {
        EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent *e = r->event->event;
        CHECK(e->id && e->id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED);
        if (e->id && e->id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED)
            CHECK(e->id->structured->least_significant_bits == (int64_t)0xa16570867728950eULL);
        CHECK(e->n_metadata == 1 && strcmp(e->metadata[0]->value, "Opened") == 0);
        CHECK(bin_is(e->data, "{}"));
        CHECK(r->event->link == NULL);
    }
    event_store__client__streams__read_resp__free_unpacked(r, NULL);

    /* caught_up with stream_revision 0: the oneof keeps the zero on the wire. */
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1;
    EventStore__Client__Streams__ReadResp__CaughtUp cu =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__INIT;
    cu.timestamp = &ts;
    cu.stream_revision_option_case =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__STREAM_REVISION_OPTION_STREAM_REVISION;
    cu.stream_revision = 0;
    EventStore__Client__Streams__ReadResp resp2 = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    resp2.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP;
    resp2.caught_up = &cu;
    static const uint8_t want2[] = {
        0x42, 0x06,             /* caught_up (8), 6 bytes */
        0x0a, 0x02, 0x08, 0x01, /*   timestamp (1) { seconds (1) = 1 } */
        0x10, 0x00,             /*   stream_revision (2) = 0, present */
    };
    n = event_store__client__streams__read_resp__get_packed_size(&resp2);
    REQUIRE(n <= sizeof buf);
    event_store__client__streams__read_resp__pack(&resp2, buf);
    CHECK(same_bytes("ReadResp.caught_up", buf, n, want2, sizeof want2));
    r = event_store__client__streams__read_resp__unpack(NULL, n, buf);
    REQUIRE(r != NULL);
    CHECK(r->content_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP);
    if (r->content_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP) {
        CHECK(r->caught_up->stream_revision_option_case ==
              EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__STREAM_REVISION_OPTION_STREAM_REVISION);
        CHECK(r->caught_up->position == NULL);
    }
    event_store__client__streams__read_resp__free_unpacked(r, NULL);
}

/* Append's first message: stream "s1", expected no_stream (field 3). */
static void t_append_options(void)
{
    Empty none = EVENT_STORE__CLIENT__EMPTY__INIT;
    StreamId sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)"s1";
    sid.stream_name.len = 2;
    AppendOpts o = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__INIT;
    o.stream_identifier = &sid;
    o.expected_stream_revision_case =
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM;
    o.no_stream = &none;

    static const uint8_t want_opts[] = {
        0x0a, 0x04, 0x1a, 0x02, 's', '1', /* stream_identifier (1) { stream_name (3) "s1" } */
        0x1a, 0x00,                       /* no_stream (3) */
    };
    size_t n;
    uint8_t *buf = pack_any(&o.base, &n);
    REQUIRE(buf != NULL);
    CHECK(same_bytes("AppendReq.Options", buf, n, want_opts, sizeof want_opts));
    AppendOpts *u = (AppendOpts *)protobuf_c_message_unpack(
        &event_store__client__streams__append_req__options__descriptor, NULL, n, buf);
    free(buf);
    REQUIRE(u != NULL);
    CHECK(u->expected_stream_revision_case ==
          EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM);
    CHECK(u->stream_identifier && bin_is(u->stream_identifier->stream_name, "s1"));
    protobuf_c_message_free_unpacked(&u->base, NULL);

    /* Wrapped as the content of an AppendReq (options = 1). */
    AppendReq req = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__INIT;
    req.content_case = EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS;
    req.options = &o;
    static const uint8_t want_req[] = {0x0a, 0x08, 0x0a, 0x04, 0x1a, 0x02, 's', '1', 0x1a, 0x00};
    uint8_t b2[16];
    n = event_store__client__streams__append_req__get_packed_size(&req);
    REQUIRE(n <= sizeof b2);
    event_store__client__streams__append_req__pack(&req, b2);
    CHECK(same_bytes("AppendReq", b2, n, want_req, sizeof want_req));

    /* The other expectations: any (4), stream_exists (5), revision (2). */
    static const uint8_t any_bytes[] = {0x22, 0x00}, exists_bytes[] = {0x2a, 0x00},
                         rev_bytes[] = {0x10, 0x07};
    o.stream_identifier = NULL;
    o.expected_stream_revision_case =
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_ANY;
    o.any = &none;
    buf = pack_any(&o.base, &n);
    CHECK(buf && same_bytes("Options.any", buf, n, any_bytes, sizeof any_bytes));
    free(buf);
    o.expected_stream_revision_case =
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_STREAM_EXISTS;
    o.stream_exists = &none;
    buf = pack_any(&o.base, &n);
    CHECK(buf && same_bytes("Options.stream_exists", buf, n, exists_bytes, sizeof exists_bytes));
    free(buf);
    o.expected_stream_revision_case =
        EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION;
    o.revision = 7;
    buf = pack_any(&o.base, &n);
    CHECK(buf && same_bytes("Options.revision", buf, n, rev_bytes, sizeof rev_bytes));
    free(buf);
}

/* A BatchAppend failure: error = google.rpc.Status{ALREADY_EXISTS, an Any
 * holding event_store.client.WrongExpectedVersion}. */
static void t_batch_append_error(void)
{
    Google__Protobuf__Empty gempty = GOOGLE__PROTOBUF__EMPTY__INIT;
    Wev wev = EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__INIT;
    wev.current_stream_revision_option_case =
        EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__CURRENT_STREAM_REVISION_OPTION_CURRENT_STREAM_REVISION;
    wev.current_stream_revision = 7;
    wev.expected_stream_position_option_case =
        EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_NO_STREAM;
    wev.expected_no_stream = &gempty;

    uint8_t wev_bytes[16];
    size_t wev_n = event_store__client__wrong_expected_version__get_packed_size(&wev);
    REQUIRE(wev_n <= sizeof wev_bytes);
    event_store__client__wrong_expected_version__pack(&wev, wev_bytes);
    static const uint8_t want_wev[] = {
        0x08, 0x07, /* current_stream_revision (1) = 7 */
        0x32, 0x00, /* expected_no_stream (6) */
    };
    CHECK(same_bytes("WrongExpectedVersion", wev_bytes, wev_n, want_wev, sizeof want_wev));

    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = WEV_TYPE_URL;
    any.value.data = wev_bytes;
    any.value.len = wev_n;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = GOOGLE__RPC__CODE__ALREADY_EXISTS;
    st.message = "WEV";
    st.details = &any;

    Uuid cid = EVENT_STORE__CLIENT__UUID__INIT;
    cid.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
    cid.string = A_UUID;
    StreamId sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)"s1";
    sid.stream_name.len = 2;

    BatchResp resp = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__INIT;
    resp.correlation_id = &cid;
    resp.result_case = EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__RESULT_ERROR;
    resp.error = &st;
    resp.stream_identifier = &sid;
    resp.expected_stream_position_case =
        EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_NO_STREAM;
    resp.no_stream = &gempty;

    /* Built from its parts; each length byte is worked out below. */
    uint8_t want[160];
    size_t w = 0;
#define PUT(...)                                                                                             \
    do {                                                                                                     \
        static const uint8_t part_[] = {__VA_ARGS__};                                                        \
        memcpy(want + w, part_, sizeof part_);                                                               \
        w += sizeof part_;                                                                                   \
    } while (0)
#define PUTS(s)                                                                                              \
    do {                                                                                                     \
        memcpy(want + w, s, strlen(s));                                                                      \
        w += strlen(s);                                                                                      \
    } while (0)
    PUT(0x0a, 0x26, 0x12, 0x24); /* correlation_id (1), 38 bytes { string (2), 36 bytes } */
    PUTS(A_UUID);
    PUT(0x12, 0x4c); /* error (2), 76 bytes */
    PUT(0x08, 0x06); /*   code (1) = 6 ALREADY_EXISTS */
    PUT(0x12, 0x03); /*   message (2), 3 bytes */
    PUTS("WEV");
    PUT(0x1a, 0x43); /*   details (3), 67 bytes */
    PUT(0x0a, 0x3b); /*     type_url (1), 59 bytes */
    PUTS(WEV_TYPE_URL);
    PUT(0x12, 0x04, 0x08, 0x07, 0x32, 0x00); /* value (2): the WrongExpectedVersion above */
    PUT(0x22, 0x04, 0x1a, 0x02, 's', '1');   /* stream_identifier (4) */
    PUT(0x32, 0x00);                         /* no_stream (6) */
#undef PUT
#undef PUTS
    CHECK_EQ_U64(strlen(A_UUID), 36);
    CHECK_EQ_U64(strlen(WEV_TYPE_URL), 59);
    CHECK_EQ_U64(w, 126);

    size_t n = event_store__client__streams__batch_append_resp__get_packed_size(&resp);
    uint8_t buf[160];
    REQUIRE(n <= sizeof buf);
    event_store__client__streams__batch_append_resp__pack(&resp, buf);
    CHECK(same_bytes("BatchAppendResp", buf, n, want, w));

    /* Back again, down to the Any's payload. */
    BatchResp *r = event_store__client__streams__batch_append_resp__unpack(NULL, n, buf);
    REQUIRE(r != NULL);
    CHECK(r->correlation_id && r->correlation_id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING &&
          strcmp(r->correlation_id->string, A_UUID) == 0);
    REQUIRE(r->result_case == EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__RESULT_ERROR && r->error);
    CHECK(r->error->code == GOOGLE__RPC__CODE__ALREADY_EXISTS);
    CHECK(strcmp(r->error->message, "WEV") == 0);
    REQUIRE(r->error->details != NULL);
    CHECK(strcmp(r->error->details->type_url, WEV_TYPE_URL) == 0);
    CHECK(r->expected_stream_position_case ==
          EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_RESP__EXPECTED_STREAM_POSITION_NO_STREAM);
    Wev *uw = event_store__client__wrong_expected_version__unpack(NULL, r->error->details->value.len,
                                                                  r->error->details->value.data);
    CHECK(uw != NULL);
    if (uw) {
        CHECK(
            uw->current_stream_revision_option_case ==
            EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__CURRENT_STREAM_REVISION_OPTION_CURRENT_STREAM_REVISION);
        CHECK_EQ_U64(uw->current_stream_revision, 7);
        CHECK(
            uw->expected_stream_position_option_case ==
            EVENT_STORE__CLIENT__WRONG_EXPECTED_VERSION__EXPECTED_STREAM_POSITION_OPTION_EXPECTED_NO_STREAM);
        event_store__client__wrong_expected_version__free_unpacked(uw, NULL);
    }
    event_store__client__streams__batch_append_resp__free_unpacked(r, NULL);
}

/* A BatchAppend request as the Node client sends it: string correlation
 * id, options with an absolute deadline (deadline_21_10_0 = 6), one event,
 * is_final. */
static void t_batch_append_req(void)
{
    static const uint8_t bytes[] = {
        0x0a, 0x03, 0x12, 0x01, 'c',      /* correlation_id (1) { string (2) "c" } */
        0x12, 0x0c,                       /* options (2), 12 bytes */
        0x0a, 0x04, 0x1a, 0x02, 's', '1', /*   stream_identifier (1) */
        0x22, 0x00,                       /*   any (4) */
        0x32, 0x02, 0x08, 0x05,           /*   deadline_21_10_0 (6) { seconds (1) = 5 } */
        0x1a, 0x0a,                       /* proposed_messages (3), 10 bytes */
        0x0a, 0x03, 0x12, 0x01, 'e',      /*   id (1) { string (2) "e" } */
        0x22, 0x03, 'x',  'y',  'z',      /*   data (4) */
        0x20, 0x01,                       /* is_final (4) = true */
    };
    EventStore__Client__Streams__BatchAppendReq *r =
        event_store__client__streams__batch_append_req__unpack(NULL, sizeof bytes, bytes);
    REQUIRE(r != NULL);
    CHECK(r->correlation_id && r->correlation_id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING);
    REQUIRE(r->options != NULL);
    CHECK(r->options->expected_stream_position_case ==
          EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__EXPECTED_STREAM_POSITION_ANY);
    CHECK(r->options->deadline_option_case ==
          EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__DEADLINE_OPTION_DEADLINE_21_10_0);
    if (r->options->deadline_option_case ==
        EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__DEADLINE_OPTION_DEADLINE_21_10_0)
        CHECK(r->options->deadline_21_10_0->seconds == 5);
    CHECK(r->n_proposed_messages == 1);
    if (r->n_proposed_messages == 1) {
        CHECK(bin_is(r->proposed_messages[0]->data, "xyz"));
        CHECK(r->proposed_messages[0]->id && strcmp(r->proposed_messages[0]->id->string, "e") == 0);
    }
    CHECK(r->is_final);
    event_store__client__streams__batch_append_req__free_unpacked(r, NULL);
}

/* v2 AppendSession request: stream "orders", one JSON record, expected
 * revision -1 (NO_STREAM), which zigzag makes 1. */
static void t_v2_append_request(void)
{
    V2SchemaInfo si = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__INIT;
    si.format_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__FORMAT_OPTION_FORMAT;
    si.format = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON;
    si.name_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_INFO__NAME_OPTION_NAME;
    si.name = "OrderPlaced";
    V2AppendRecord rec = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__INIT;
    rec.record_id_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__RECORD_ID_OPTION_RECORD_ID;
    rec.record_id = "r1";
    rec.schema = &si;
    rec.data.data = (uint8_t *)"{}";
    rec.data.len = 2;
    V2AppendRecord *recs[] = {&rec};
    V2AppendRequest req = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__INIT;
    req.stream_option_case = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__STREAM_OPTION_STREAM;
    req.stream = "orders";
    req.n_records = 1;
    req.records = recs;
    req.expected_revision_option_case =
        KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__EXPECTED_REVISION_OPTION_EXPECTED_REVISION;
    req.expected_revision =
        KURRENTDB__PROTOCOL__V2__STREAMS__EXPECTED_REVISION_CONSTANTS__EXPECTED_REVISION_CONSTANTS_NO_STREAM;

    static const uint8_t want[] = {
        0x0a, 0x06, 'o', 'r', 'd', 'e', 'r', 's',                          /* stream (1) */
        0x12, 0x19,                                                        /* records (2), 25 bytes */
        0x0a, 0x02, 'r', '1',                                              /*   record_id (1) */
        0x1a, 0x0f,                                                        /*   schema (3), 15 bytes */
        0x08, 0x01,                                                        /*     format (1) = JSON */
        0x12, 0x0b, 'O', 'r', 'd', 'e', 'r', 'P', 'l', 'a', 'c', 'e', 'd', /* name (2) */
        0x22, 0x02, '{', '}',                                              /*   data (4) */
        0x18, 0x01, /* expected_revision (3) = zigzag(-1) */
    };
    uint8_t buf[64];
    size_t n = kurrentdb__protocol__v2__streams__append_request__get_packed_size(&req);
    REQUIRE(n <= sizeof buf);
    kurrentdb__protocol__v2__streams__append_request__pack(&req, buf);
    CHECK(same_bytes("v2 AppendRequest", buf, n, want, sizeof want));

    V2AppendRequest *r = kurrentdb__protocol__v2__streams__append_request__unpack(NULL, n, buf);
    REQUIRE(r != NULL);
    CHECK(r->stream_option_case == KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__STREAM_OPTION_STREAM &&
          strcmp(r->stream, "orders") == 0);
    CHECK(r->expected_revision_option_case ==
          KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__EXPECTED_REVISION_OPTION_EXPECTED_REVISION);
    CHECK(r->expected_revision == -1);
    CHECK(r->n_records == 1);
    if (r->n_records == 1) {
        CHECK(r->records[0]->schema && strcmp(r->records[0]->schema->name, "OrderPlaced") == 0);
        CHECK(r->records[0]->schema->format ==
              KURRENTDB__PROTOCOL__V2__STREAMS__SCHEMA_FORMAT__SCHEMA_FORMAT_JSON);
        CHECK(r->records[0]->stream_option_case ==
              KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__STREAM_OPTION__NOT_SET);
    }
    kurrentdb__protocol__v2__streams__append_request__free_unpacked(r, NULL);

    /* expected_revision alone: the other constants, the extremes, and 0
     * (present, so sent) against absent (ANY, not sent). */
    static const struct {
        int64_t v;
        uint8_t bytes[12];
        size_t n;
    } cases[] = {
        {-2, {0x18, 0x03}, 2},
        {-4, {0x18, 0x07}, 2},
        {0, {0x18, 0x00}, 2},
        {5, {0x18, 0x0a}, 2},
        {INT64_MAX, {0x18, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11},
        {INT64_MIN, {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        V2AppendRequest e = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__INIT;
        e.expected_revision_option_case =
            KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__EXPECTED_REVISION_OPTION_EXPECTED_REVISION;
        e.expected_revision = cases[i].v;
        n = kurrentdb__protocol__v2__streams__append_request__get_packed_size(&e);
        REQUIRE(n <= sizeof buf);
        kurrentdb__protocol__v2__streams__append_request__pack(&e, buf);
        CHECK(same_bytes("v2 expected_revision", buf, n, cases[i].bytes, cases[i].n));
        r = kurrentdb__protocol__v2__streams__append_request__unpack(NULL, n, buf);
        CHECK(r && r->expected_revision == cases[i].v);
        if (r) kurrentdb__protocol__v2__streams__append_request__free_unpacked(r, NULL);
    }
    V2AppendRequest absent = KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__INIT;
    CHECK_EQ_U64(kurrentdb__protocol__v2__streams__append_request__get_packed_size(&absent), 0);
    r = kurrentdb__protocol__v2__streams__append_request__unpack(NULL, 0, buf);
    REQUIRE(r != NULL);
    CHECK(r->expected_revision_option_case ==
          KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__EXPECTED_REVISION_OPTION__NOT_SET);
    CHECK(r->stream_option_case == KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_REQUEST__STREAM_OPTION__NOT_SET);
    kurrentdb__protocol__v2__streams__append_request__free_unpacked(r, NULL);
}

/* v2 record properties are map<string, google.protobuf.Value>, and v2
 * errors are *ErrorDetails in an Any. */
static void t_v2_properties_and_errors(void)
{
    static const uint8_t bytes[] = {
        0x12, 0x08,                                          /* properties (2), entry of 8 bytes */
        0x0a, 0x01, 'k',                                     /*   key (1) */
        0x12, 0x03, 0x1a, 0x01, 'v',                         /*   value (2) { string_value (3) "v" } */
        0x12, 0x0e,                                          /* properties (2), entry of 14 bytes */
        0x0a, 0x01, 'n',                                     /*   key (1) */
        0x12, 0x09, 0x11, 0,    0,   0, 0, 0, 0, 0xf8, 0x3f, /* value { number_value (2) = 1.5, fixed64 } */
        0x2a, 0x01, 'x',                                     /* stream (5) */
    };
    V2AppendRecord *rec = kurrentdb__protocol__v2__streams__append_record__unpack(NULL, sizeof bytes, bytes);
    REQUIRE(rec != NULL);
    CHECK(rec->n_properties == 2);
    if (rec->n_properties == 2) {
        CHECK(strcmp(rec->properties[0]->key, "k") == 0);
        CHECK(rec->properties[0]->value &&
              rec->properties[0]->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE &&
              strcmp(rec->properties[0]->value->string_value, "v") == 0);
        CHECK(rec->properties[1]->value &&
              rec->properties[1]->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE &&
              rec->properties[1]->value->number_value == 1.5);
    }
    CHECK(rec->stream_option_case == KURRENTDB__PROTOCOL__V2__STREAMS__APPEND_RECORD__STREAM_OPTION_STREAM &&
          strcmp(rec->stream, "x") == 0);
    kurrentdb__protocol__v2__streams__append_record__free_unpacked(rec, NULL);

    Kurrentdb__Protocol__V2__Streams__Errors__StreamRevisionConflictErrorDetails d =
        KURRENTDB__PROTOCOL__V2__STREAMS__ERRORS__STREAM_REVISION_CONFLICT_ERROR_DETAILS__INIT;
    d.stream = "s";
    d.expected_revision = -1;
    d.actual_revision = 5;
    static const uint8_t want[] = {
        0x0a, 0x01, 's', /* stream (1) */
        0x10, 0x01,      /* expected_revision (2) = zigzag(-1) */
        0x18, 0x0a,      /* actual_revision (3) = zigzag(5) */
    };
    uint8_t buf[16];
    size_t n =
        kurrentdb__protocol__v2__streams__errors__stream_revision_conflict_error_details__get_packed_size(&d);
    REQUIRE(n <= sizeof buf);
    kurrentdb__protocol__v2__streams__errors__stream_revision_conflict_error_details__pack(&d, buf);
    CHECK(same_bytes("StreamRevisionConflictErrorDetails", buf, n, want, sizeof want));
}

/* ServerFeatures.GetSupportedMethods answer, as the clients parse it. */
static void t_server_features(void)
{
    char *features[] = {"position", "events"};
    EventStore__Client__ServerFeatures__SupportedMethod m =
        EVENT_STORE__CLIENT__SERVER_FEATURES__SUPPORTED_METHOD__INIT;
    m.method_name = "read";
    m.service_name = "event_store.client.streams.streams";
    m.n_features = 2;
    m.features = features;
    EventStore__Client__ServerFeatures__SupportedMethod *ms[] = {&m};
    EventStore__Client__ServerFeatures__SupportedMethods sm =
        EVENT_STORE__CLIENT__SERVER_FEATURES__SUPPORTED_METHODS__INIT;
    sm.n_methods = 1;
    sm.methods = ms;
    sm.event_store_server_version = "26.1.0";

    uint8_t want[80];
    size_t w = 0;
    static const uint8_t head[] = {0x0a, 0x3c, 0x0a, 0x04, 'r', 'e', 'a', 'd', 0x12, 0x22};
    memcpy(want, head, sizeof head); /* methods (1) 60 bytes { method_name (1), service_name (2) 34 bytes */
    w += sizeof head;
    memcpy(want + w, "event_store.client.streams.streams", 34);
    w += 34;
    static const uint8_t tail[] = {
        0x1a, 0x08, 'p', 'o', 's', 'i', 't', 'i', 'o', 'n', /* features (3) */
        0x1a, 0x06, 'e', 'v', 'e', 'n', 't', 's',           /* features (3) */
        0x12, 0x06, '2', '6', '.', '1', '.', '0',           /* event_store_server_version (2) */
    };
    memcpy(want + w, tail, sizeof tail);
    w += sizeof tail;
    CHECK_EQ_U64(w, 70);

    uint8_t buf[80];
    size_t n = event_store__client__server_features__supported_methods__get_packed_size(&sm);
    REQUIRE(n <= sizeof buf);
    event_store__client__server_features__supported_methods__pack(&sm, buf);
    CHECK(same_bytes("SupportedMethods", buf, n, want, w));
}

/* Client gossip: one leader member with a structured instance id (a
 * negative int64 half takes ten bytes) and its HTTP endpoint. */
static void t_gossip(void)
{
    EventStore__Client__UUID__Structured st = EVENT_STORE__CLIENT__UUID__STRUCTURED__INIT;
    st.most_significant_bits = 1;
    st.least_significant_bits = -1;
    Uuid id = EVENT_STORE__CLIENT__UUID__INIT;
    id.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED;
    id.structured = &st;
    EventStore__Client__Gossip__EndPoint ep = EVENT_STORE__CLIENT__GOSSIP__END_POINT__INIT;
    ep.address = "127.0.0.1";
    ep.port = 2113;
    EventStore__Client__Gossip__MemberInfo mi = EVENT_STORE__CLIENT__GOSSIP__MEMBER_INFO__INIT;
    mi.instance_id = &id;
    mi.time_stamp = 1;
    mi.state = EVENT_STORE__CLIENT__GOSSIP__MEMBER_INFO__VNODE_STATE__Leader;
    mi.is_alive = 1;
    mi.http_end_point = &ep;
    EventStore__Client__Gossip__MemberInfo *mis[] = {&mi};
    EventStore__Client__Gossip__ClusterInfo ci = EVENT_STORE__CLIENT__GOSSIP__CLUSTER_INFO__INIT;
    ci.n_members = 1;
    ci.members = mis;

    static const uint8_t want[] = {
        0x0a, 0x27,             /* members (1), 39 bytes */
        0x0a, 0x0f, 0x0a, 0x0d, /*   instance_id (1) { structured (1), 13 bytes */
        0x08, 0x01,             /*     most_significant_bits (1) = 1 */
        0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* least (2) = -1 */
        0x10, 0x01,                                                       /*   time_stamp (2) = 1 */
        0x18, 0x08,                                                       /*   state (3) = Leader */
        0x20, 0x01,                                                       /*   is_alive (4) */
        0x2a, 0x0e,                                                       /*   http_end_point (5), 14 bytes */
        0x0a, 0x09, '1',  '2',  '7',  '.',  '0',  '.',  '0',  '.',  '1',  /* address (1) */
        0x10, 0xc1, 0x10,                                                 /*     port (2) = 2113 */
    };
    uint8_t buf[64];
    size_t n = event_store__client__gossip__cluster_info__get_packed_size(&ci);
    REQUIRE(n <= sizeof buf);
    event_store__client__gossip__cluster_info__pack(&ci, buf);
    CHECK(same_bytes("ClusterInfo", buf, n, want, sizeof want));
}

/* Persistent subscription traffic: a Nack from the client (Park, one
 * string id) and the Options of Read on $all (all = 5). */
static void t_persistent(void)
{
    static const uint8_t nack[] = {
        0x1a, 0x0c,                  /* nack (3), 12 bytes */
        0x12, 0x03, 0x12, 0x01, 'e', /*   ids (2) { string (2) "e" } */
        0x18, 0x01,                  /*   action (3) = Park */
        0x22, 0x03, 'b',  'a',  'd', /*   reason (4) */
    };
    EventStore__Client__PersistentSubscriptions__ReadReq *r =
        event_store__client__persistent_subscriptions__read_req__unpack(NULL, sizeof nack, nack);
    REQUIRE(r != NULL);
    CHECK(r->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_NACK);
    if (r->content_case == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_NACK) {
        CHECK(r->nack->n_ids == 1 && strcmp(r->nack->ids[0]->string, "e") == 0);
        CHECK(r->nack->action == EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Park);
        CHECK(strcmp(r->nack->reason, "bad") == 0);
    }
    event_store__client__persistent_subscriptions__read_req__free_unpacked(r, NULL);

    Empty all = EVENT_STORE__CLIENT__EMPTY__INIT, str = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__PersistentSubscriptions__ReadReq__Options__UUIDOption uo =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__INIT;
    uo.content_case =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    uo.string = &str;
    EventStore__Client__PersistentSubscriptions__ReadReq__Options o =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__INIT;
    o.stream_option_case =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__STREAM_OPTION_ALL;
    o.all = &all;
    o.group_name = "g";
    o.buffer_size = 10;
    o.uuid_option = &uo;
    static const uint8_t want[] = {
        0x12, 0x01, 'g',        /* group_name (2) */
        0x18, 0x0a,             /* buffer_size (3) = 10 */
        0x22, 0x02, 0x12, 0x00, /* uuid_option (4) { string (2) } */
        0x2a, 0x00,             /* all (5) */
    };
    size_t n;
    uint8_t *buf = pack_any(&o.base, &n);
    REQUIRE(buf != NULL);
    CHECK(same_bytes("persistent ReadReq.Options", buf, n, want, sizeof want));
    free(buf);
}

/* Unknown fields (a newer client) are skipped, not fatal; truncated input
 * is refused. */
static void t_robustness(void)
{
    static const uint8_t newer[] = {
        0x0a, 0x04, 0x1a, 0x02, 's', '1', /* stream_identifier (1) */
        0xf8, 0x06, 0x01,                 /* field 111, varint: unknown */
        0x1a, 0x00,                       /* no_stream (3) */
    };
    AppendOpts *o = (AppendOpts *)protobuf_c_message_unpack(
        &event_store__client__streams__append_req__options__descriptor, NULL, sizeof newer, newer);
    CHECK(o != NULL);
    if (o) {
        CHECK(o->expected_stream_revision_case ==
              EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM);
        protobuf_c_message_free_unpacked(&o->base, NULL);
    }
    static const uint8_t cut[] = {0x0a, 0x18, 0x0a, 0x0a, 0x0a};
    CHECK(event_store__client__streams__read_req__unpack(NULL, sizeof cut, cut) == NULL);
}

int main(void)
{
    RUN(t_read_req);
    RUN(t_read_req_subscription);
    RUN(t_read_resp);
    RUN(t_append_options);
    RUN(t_batch_append_error);
    RUN(t_batch_append_req);
    RUN(t_v2_append_request);
    RUN(t_v2_properties_and_errors);
    RUN(t_server_features);
    RUN(t_gossip);
    RUN(t_persistent);
    RUN(t_robustness);
    return harness_done();
}
