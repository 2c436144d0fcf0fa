/* Unit tests of the store's semantics (ST-1..ST-6): idempotency rules,
 * multi-stream atomic appends, metadata and its effect on reads, soft
 * delete, tombstone, system streams and $all filters, the stream catalog,
 * and bad input. */
#include "harness.h"

#include <pthread.h>

#include "base/base.h"
#include "store/store_int.h"

static char dir[512];

static factum_store *open_at(const char *name, int fresh)
{
    factum_options o;
    harness_small_opts(&o);
    if (fresh) harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static size_t read_all_stream(factum_store *s, const char *stream, factum_event *out, size_t cap)
{
    size_t n = 0;
    uint64_t next = 0;
    int rc = factum_read_stream(s, stream, next, FACTUM_FORWARD, out, cap, &n, &next);
    return rc ? (size_t)-1 : n;
}

/* ST-5: replays by event id, every expectation kind, across a reopen. */
static void t_idempotency(void)
{
    factum_store *s = open_at("idem", 1);
    REQUIRE(s);
    factum_event_data ev[3] = {harness_event("A", "{}"), harness_event("B", "{}"), harness_event("C", "{}")};
    factum_append_result r, r2;
    CHECK_RC(factum_append(s, "idem", FACTUM_NO_STREAM, ev, 2, &r), 0);
    /* The same two events, same expectation: a replay, nothing written. */
    CHECK_RC(factum_append(s, "idem", FACTUM_NO_STREAM, ev, 2, &r2), 0);
    CHECK(r2.idempotent == 1 && r2.first_version == 0 && r2.last_version == 1);
    CHECK(r2.first_position == r.first_position && r2.last_position == r.last_position);
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, ev, 2, &r2), 0);
    CHECK(r2.idempotent == 1 && r2.last_position == r.last_position);
    CHECK_RC(factum_append(s, "idem", FACTUM_STREAM_EXISTS, ev, 2, &r2), 0);
    CHECK(r2.idempotent == 1);
    /* The second event alone with Any: replay at its own place. */
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, &ev[1], 1, &r2), 0);
    CHECK(r2.idempotent == 1 && r2.first_version == 1);
    /* Partial overlap: A and B are stored, C is new. */
    CHECK_RC(factum_append(s, "idem", FACTUM_NO_STREAM, ev, 3, &r2), FACTUM_EIDEMPOTENCY);
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, ev, 3, &r2), FACTUM_EIDEMPOTENCY);
    factum_event_data mixed[2] = {harness_event("N", "{}"), ev[0]};
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, mixed, 2, &r2), FACTUM_EIDEMPOTENCY);
    /* Out of order is not a replay either. */
    factum_event_data swapped[2] = {ev[1], ev[0]};
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, swapped, 2, &r2), FACTUM_EIDEMPOTENCY);
    /* Nothing was written by any of these. */
    factum_stats st;
    factum_store_get_stats(s, &st);
    CHECK_EQ_U64(st.last_position, 2);
    /* The same events at another place are refused too: an id is never
     * twice in a stream. */
    factum_event_data again[2] = {ev[0], harness_event("New", "{}")};
    CHECK_RC(factum_append(s, "idem", 1, again, 2, &r2), FACTUM_EIDEMPOTENCY);
    CHECK_RC(factum_append(s, "idem", 1, &ev[0], 1, &r2), FACTUM_EIDEMPOTENCY);
    /* Duplicate ids within one append. */
    factum_event_data dup[2] = {ev[2], ev[2]};
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, dup, 2, &r2), FACTUM_EDUPLICATEID);
    /* The same id in another stream is a different event. */
    CHECK_RC(factum_append(s, "other", FACTUM_NO_STREAM, ev, 1, &r2), 0);
    CHECK(r2.idempotent == 0 && r2.first_position == 3);
    /* Across a reopen, with no time window. */
    CHECK_RC(factum_store_close(s), 0);
    s = open_at("idem", 0);
    REQUIRE(s);
    CHECK_RC(factum_append(s, "idem", 0 - 1, ev, 2, &r2), 0);
    CHECK(r2.idempotent == 1 && r2.last_position == r.last_position);
    CHECK_RC(factum_append(s, "idem", FACTUM_ANY, &ev[0], 1, &r2), 0);
    CHECK(r2.idempotent == 1 && r2.first_version == 0);
    /* Two identical requests racing into one group: one write, one replay. */
    factum_event_data e4 = harness_event("D", "{}");
    factum_append_req q = {"race", FACTUM_ANY, &e4, 1};
    factum_append_req qq[1] = {q};
    CHECK_RC(factum_append_multi(s, qq, 1, &r, NULL), 0);
    CHECK_RC(factum_append_multi(s, qq, 1, &r2, NULL), 0);
    CHECK(r2.idempotent == 1 && r2.first_position == r.first_position);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_multi_stream(void)
{
    factum_store *s = open_at("multi", 1);
    REQUIRE(s);
    factum_event_data a = harness_event("A", "{}"), b = harness_event("B", "{}"),
                      c = harness_event("C", "{}");
    factum_append_req reqs[2] = {{"left", FACTUM_NO_STREAM, &a, 1}, {"right", FACTUM_NO_STREAM, &b, 1}};
    factum_append_result res[2];
    size_t failed = 99;
    CHECK_RC(factum_append_multi(s, reqs, 2, res, &failed), 0);
    CHECK(res[0].first_position == 1 && res[1].first_position == 2);
    /* All or nothing: the second part's expectation fails, so the first
     * part (which would succeed) is not written either. */
    factum_append_req bad[2] = {{"left", 0, &c, 1}, {"right", 5, &c, 1}};
    CHECK_RC(factum_append_multi(s, bad, 2, res, &failed), FACTUM_EWRONGVERSION);
    CHECK_EQ_U64(failed, 1);
    CHECK(res[1].actual_version == 0);
    factum_event out[4];
    CHECK_EQ_U64(read_all_stream(s, "left", out, 4), 1);
    /* The same stream twice in one request is refused. */
    factum_append_req twice[2] = {{"left", FACTUM_ANY, &c, 1}, {"left", FACTUM_ANY, &c, 1}};
    CHECK_RC(factum_append_multi(s, twice, 2, res, &failed), FACTUM_EINVAL);
    CHECK_EQ_U64(failed, 1);
    /* Also among many parts (found through a hash table past 16 parts),
     * and duplicate ids among many events of one part. */
    enum { MANY = 300 };
    static factum_append_req many[MANY];
    static factum_append_result many_res[MANY];
    static char names[MANY][16];
    static factum_event_data evs[MANY];
    for (int i = 0; i < MANY; i++) {
        snprintf(names[i], sizeof names[i], "many-%d", i);
        many[i] = (factum_append_req){names[i], FACTUM_ANY, &c, 1};
        evs[i] = harness_event("E", "{}");
    }
    many[257].stream = names[31];
    CHECK_RC(factum_append_multi(s, many, MANY, many_res, &failed), FACTUM_EINVAL);
    CHECK_EQ_U64(failed, 257);
    evs[250] = evs[7];
    CHECK_RC(factum_append(s, "many-ids", FACTUM_ANY, evs, MANY, NULL), FACTUM_EDUPLICATEID);
    evs[250] = harness_event("E", "{}");
    evs[250].has_id = 0; /* events without ids never collide */
    evs[251].has_id = 0;
    CHECK_RC(factum_append(s, "many-ids", FACTUM_ANY, evs, MANY, NULL), 0);
    /* A replay of the whole multi-stream append writes nothing. */
    CHECK_RC(factum_append_multi(s, reqs, 2, res, &failed), 0);
    CHECK(res[0].idempotent && res[1].idempotent);
    factum_stats st;
    factum_store_get_stats(s, &st);
    CHECK_EQ_U64(st.last_position, 2 + MANY);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_metadata(void)
{
    factum_store *s = open_at("meta", 1);
    REQUIRE(s);
    for (int i = 0; i < 10; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, "m", FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_event out[20];
    size_t n;
    uint64_t next;
    const char *mc = "{\"$maxCount\":3,\"custom\":\"kept\"}";
    factum_append_result r;
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_NO_STREAM, mc, strlen(mc), &r), 0);
    CHECK_RC(factum_read_stream(s, "m", 0, FACTUM_FORWARD, out, 20, &n, &next), 0);
    CHECK_EQ_U64(n, 3);
    CHECK(n == 3 && out[0].version == 7);
    CHECK_RC(factum_read_stream(s, "m", FACTUM_END, FACTUM_BACKWARD, out, 20, &n, &next), 0);
    CHECK(n == 3 && out[0].version == 9 && out[2].version == 7);
    char *json;
    size_t len;
    int64_t mv;
    CHECK_RC(factum_get_stream_metadata(s, "m", &json, &len, &mv), 0);
    CHECK(mv == 0 && strstr(json, "kept"));
    free(json);
    /* Expectation on the metadata stream. */
    const char *tb = "{\"$tb\":5}";
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_NO_STREAM, tb, strlen(tb), &r), FACTUM_EWRONGVERSION);
    CHECK_RC(factum_set_stream_metadata(s, "m", 0, tb, strlen(tb), &r), 0);
    CHECK_RC(factum_read_stream(s, "m", 0, FACTUM_FORWARD, out, 20, &n, &next), 0);
    CHECK(n == 5 && out[0].version == 5);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "m", &info), 0);
    CHECK(info.meta.truncate_before == 5 && info.meta.max_count == -1 && info.metadata_version == 1);
    /* Max age: events older than 1 s vanish from reads. */
    const char *age = "{\"$maxAge\":1}";
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_ANY, age, strlen(age), &r), 0);
    CHECK_RC(factum_read_stream(s, "m", 0, FACTUM_FORWARD, out, 20, &n, &next), 0);
    CHECK_EQ_U64(n, 10);
    sleep(2);
    CHECK_RC(factum_read_stream(s, "m", 0, FACTUM_FORWARD, out, 20, &n, &next), 0);
    CHECK_EQ_U64(n, 0);
    /* Bad metadata documents are refused and change nothing. */
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_ANY, "[1]", 3, &r), FACTUM_EBADJSON);
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_ANY, "{\"$maxCount\":\"x\"}", 17, &r),
             FACTUM_EBADJSON);
    CHECK_RC(factum_set_stream_metadata(s, "m", FACTUM_ANY, "{", 1, &r), FACTUM_EBADJSON);
    factum_event_data raw = harness_event("NotMetadata", "{}");
    CHECK_RC(factum_append(s, "$$m", FACTUM_ANY, &raw, 1, &r), FACTUM_EINVAL);
    CHECK_RC(factum_stream_get_info(s, "m", &info), 0);
    CHECK(info.meta.max_age_s == 1 && info.metadata_version == 2);
    /* Reopen: metadata comes back from the log, not from memory. */
    factum_store_close(s);
    s = open_at("meta", 0);
    REQUIRE(s);
    CHECK_RC(factum_stream_get_info(s, "m", &info), 0);
    CHECK(info.meta.max_age_s == 1 && info.metadata_version == 2);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_soft_delete(void)
{
    factum_store *s = open_at("softdel", 1);
    REQUIRE(s);
    factum_event_data e[3] = {harness_event("A", "{}"), harness_event("B", "{}"), harness_event("C", "{}")};
    const char *md = "{\"$maxCount\":100,\"owner\":\"x\"}";
    CHECK_RC(factum_set_stream_metadata(s, "sd", FACTUM_ANY, md, strlen(md), NULL), 0);
    CHECK_RC(factum_append(s, "sd", FACTUM_NO_STREAM, e, 2, NULL), 0);
    factum_append_result r;
    CHECK_RC(factum_delete_stream(s, "sd", 0, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 1);
    CHECK_RC(factum_delete_stream(s, "sd", 1, &r), 0);
    {
        char *dj;
        CHECK_RC(factum_get_stream_metadata(s, "sd", &dj, NULL, NULL), 0);
        CHECK(!strcmp(dj, "{\"$tb\":9223372036854775807}"));
        free(dj);
    }
    factum_event out[8];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "sd", 0, FACTUM_FORWARD, out, 8, &n, &next), FACTUM_ENOTFOUND);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "sd", &info), 0);
    CHECK(info.status == FACTUM_STREAM_SOFT_DELETED && info.last_version == 1);
    /* StreamExists fails on a soft-deleted stream; NoStream succeeds and
     * the numbering continues. */
    CHECK_RC(factum_append(s, "sd", FACTUM_STREAM_EXISTS, &e[2], 1, &r), FACTUM_EWRONGVERSION);
    CHECK_RC(factum_append(s, "sd", FACTUM_NO_STREAM, &e[2], 1, &r), 0);
    CHECK_EQ_U64(r.first_version, 2);
    CHECK_RC(factum_read_stream(s, "sd", 0, FACTUM_FORWARD, out, 8, &n, &next), 0);
    CHECK(n == 1 && out[0].version == 2 && !strcmp(out[0].type, "C"));
    /* As KurrentDB: the delete wrote a metadata document holding only $tb
     * (earlier keys are gone), and the re-creation set $tb to the first new
     * version, starting from that document. */
    char *json;
    int64_t mv;
    CHECK_RC(factum_get_stream_metadata(s, "sd", &json, NULL, &mv), 0);
    CHECK(!strcmp(json, "{\"$tb\":2}"));
    CHECK_EQ_U64(mv, 2);
    free(json);
    CHECK_RC(factum_stream_get_info(s, "sd", &info), 0);
    CHECK(info.status == FACTUM_STREAM_LIVE && info.meta.truncate_before == 2 && info.meta.max_count == -1);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_tombstone(void)
{
    factum_store *s = open_at("tomb", 1);
    REQUIRE(s);
    factum_event_data e = harness_event("A", "{}");
    CHECK_RC(factum_append(s, "tb", FACTUM_NO_STREAM, &e, 1, NULL), 0);
    factum_append_result r;
    CHECK_RC(factum_tombstone_stream(s, "tb", 5, &r), FACTUM_EWRONGVERSION);
    CHECK_RC(factum_tombstone_stream(s, "tb", 0, &r), 0);
    CHECK_EQ_U64(r.last_position, 2);
    factum_event out[4];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "tb", 0, FACTUM_FORWARD, out, 4, &n, &next), FACTUM_EDELETED);
    e = harness_event("A", "{}");
    CHECK_RC(factum_append(s, "tb", FACTUM_ANY, &e, 1, &r), FACTUM_EDELETED);
    CHECK_RC(factum_append(s, "tb", FACTUM_NO_STREAM, &e, 1, &r), FACTUM_EDELETED);
    CHECK_RC(factum_tombstone_stream(s, "tb", FACTUM_ANY, &r), FACTUM_EDELETED);
    CHECK_RC(factum_delete_stream(s, "tb", FACTUM_ANY, &r), FACTUM_EDELETED);
    /* The tombstone is in $all as a $streamDeleted event. */
    CHECK_RC(factum_read_position(s, 2, &out[0]), 0);
    CHECK(!strcmp(out[0].type, "$streamDeleted") && out[0].version == FACTUM_TOMBSTONE_VERSION);
    factum_store_close(s);
    s = open_at("tomb", 0);
    REQUIRE(s);
    CHECK_RC(factum_append(s, "tb", FACTUM_ANY, &e, 1, &r), FACTUM_EDELETED);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "tb", &info), 0);
    CHECK(info.status == FACTUM_STREAM_TOMBSTONED);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_filters(void)
{
    factum_store *s = open_at("filters", 1);
    REQUIRE(s);
    const char *streams[] = {"order-1", "order-2", "account-1", "$system", "order-3"};
    const char *types[] = {"OrderPlaced", "OrderPlaced", "MoneyDeposited", "$stats", "OrderShipped"};
    for (int i = 0; i < 5; i++) {
        factum_event_data e = harness_event(types[i], "{}");
        CHECK_RC(factum_append(s, streams[i], FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_event out[10];
    size_t n;
    uint64_t next;
    factum_filter *f;
    const char *pre[] = {"order-"};
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, pre, 1, NULL, 0, &f), 0);
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, f, 0, out, 10, &n, &next), 0);
    CHECK(n == 3 && out[2].position == 5);
    /* A scan window bounds the work and reports where to continue. */
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, f, 3, out, 10, &n, &next), 0);
    CHECK(n == 2 && next == 4);
    factum_filter_free(f);
    CHECK_RC(factum_filter_new(FACTUM_FILTER_EVENT_TYPE, NULL, 0, "^Order(Placed|Shipped)$", 0, &f), 0);
    CHECK_RC(factum_read_all(s, FACTUM_END, FACTUM_BACKWARD, f, 0, out, 10, &n, &next), 0);
    CHECK(n == 3 && out[0].position == 5 && out[2].position == 1 && next == 0);
    factum_filter_free(f);
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, NULL, 1, &f), 0);
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, f, 0, out, 10, &n, &next), 0);
    CHECK_EQ_U64(n, 4);
    factum_filter_free(f);
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "([", 0, &f), FACTUM_EBADREGEX);
    CHECK_RC(factum_filter_new(7, NULL, 0, NULL, 0, &f), FACTUM_EINVAL);
    /* Backward $all reads across many events and both directions agree. */
    CHECK_RC(factum_read_all(s, FACTUM_END, FACTUM_BACKWARD, NULL, 0, out, 10, &n, &next), 0);
    CHECK(n == 5 && out[0].position == 5 && out[4].position == 1);
    factum_store_close(s);
    harness_rm_rf(dir);
}

typedef struct list_ctx {
    char names[16][32];
    uint64_t pos[16];
    int n;
} list_ctx;

static int list_cb(void *ctx, const char *name, size_t len, uint64_t pos)
{
    list_ctx *l = ctx;
    if (l->n < 16 && len < 32) {
        memcpy(l->names[l->n], name, len);
        l->names[l->n][len] = 0;
        l->pos[l->n++] = pos;
    }
    return 0;
}

static void t_catalog(void)
{
    factum_store *s = open_at("catalog", 1);
    REQUIRE(s);
    const char *names[] = {"c", "a", "b", "a", "c", "d"};
    for (int i = 0; i < 6; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, names[i], FACTUM_ANY, &e, 1, NULL), 0);
    }
    list_ctx l = {0};
    CHECK_RC(factum_list_streams(s, 0, list_cb, &l), 0);
    CHECK(l.n == 4 && !strcmp(l.names[0], "c") && !strcmp(l.names[1], "a") && !strcmp(l.names[3], "d"));
    CHECK(l.n == 4 && l.pos[3] == 6);
    uint64_t count;
    CHECK_RC(factum_stream_count(s, &count), 0);
    CHECK_EQ_U64(count, 4);
    list_ctx l2 = {0};
    CHECK_RC(factum_list_streams(s, 2, list_cb, &l2), 0);
    CHECK(l2.n == 2 && !strcmp(l2.names[0], "b"));
    factum_store_close(s);
    s = open_at("catalog", 0);
    REQUIRE(s);
    CHECK_RC(factum_stream_count(s, &count), 0);
    CHECK_EQ_U64(count, 4);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_bad_input(void)
{
    factum_store *s = open_at("bad", 1);
    REQUIRE(s);
    factum_event_data e = harness_event("E", "{}");
    char longname[FACTUM_MAX_STREAM_LEN + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK_RC(factum_append(s, "", FACTUM_ANY, &e, 1, NULL), FACTUM_EBADNAME);
    CHECK_RC(factum_append(s, NULL, FACTUM_ANY, &e, 1, NULL), FACTUM_EBADNAME);
    CHECK_RC(factum_append(s, longname, FACTUM_ANY, &e, 1, NULL), FACTUM_EBADNAME);
    CHECK_RC(factum_append(s, "bad\xff\xfe", FACTUM_ANY, &e, 1, NULL), FACTUM_EBADNAME);
    CHECK_RC(factum_append(s, "over\xc0\xaflong", FACTUM_ANY, &e, 1, NULL), FACTUM_EBADNAME);
    longname[FACTUM_MAX_STREAM_LEN] = 0; /* exactly the limit is fine */
    CHECK_RC(factum_append(s, longname, FACTUM_ANY, &e, 1, NULL), 0);
    factum_event_data t = e;
    t.type = "";
    CHECK_RC(factum_append(s, "ok", FACTUM_ANY, &t, 1, NULL), FACTUM_EBADTYPE);
    t.type = NULL;
    CHECK_RC(factum_append(s, "ok", FACTUM_ANY, &t, 1, NULL), FACTUM_EBADTYPE);
    t.type = "\xed\xa0\x80"; /* a UTF-16 surrogate */
    CHECK_RC(factum_append(s, "ok", FACTUM_ANY, &t, 1, NULL), FACTUM_EBADTYPE);
    CHECK_RC(factum_append(s, "ok", -3, &e, 1, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_append(s, "ok", -100, &e, 1, NULL), FACTUM_EINVAL);
    /* Over the event size limit (1 MiB test segments cap it lower). */
    size_t big = 2u << 20;
    char *blob = calloc(1, big);
    factum_event_data b = harness_event("Big", "{}");
    b.flags = 0;
    b.data = blob;
    b.data_len = big;
    CHECK_RC(factum_append(s, "big", FACTUM_ANY, &b, 1, NULL), FACTUM_ETOOBIG);
    b.data_len = 512u << 10; /* fits */
    CHECK_RC(factum_append(s, "big", FACTUM_ANY, &b, 1, NULL), 0);
    free(blob);
    uint8_t id[16];
    CHECK_RC(factum_uuid_parse("not-a-uuid", 10, id), FACTUM_EBADUUID);
    CHECK_RC(factum_uuid_parse("123e4567-e89b-12d3-a456-42661417400g", 36, id), FACTUM_EBADUUID);
    CHECK_RC(factum_uuid_parse("123e4567-e89b-12d3-a456-426614174000", 36, id), 0);
    CHECK_RC(factum_uuid_parse("{123e4567-e89b-12d3-a456-426614174000}", 38, id), 0);
    char txt[37];
    factum_uuid_format(id, txt);
    CHECK(!strcmp(txt, "123e4567-e89b-12d3-a456-426614174000"));
    /* Nothing of the failures was written: positions 1 and 2 only. */
    factum_stats st;
    factum_store_get_stats(s, &st);
    CHECK_EQ_U64(st.last_position, 2);
    /* A second opener of the same directory is refused (locked). */
    factum_options o;
    harness_small_opts(&o);
    factum_store *s2 = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s2), FACTUM_ELOCKED);
    factum_store_close(s);

    /* A directory that is not a store. */
    char other[600];
    snprintf(other, sizeof other, "%s-notours", dir);
    harness_rm_rf(other);
    mkdir(other, 0755);
    char f[700];
    snprintf(f, sizeof f, "%s/precious.txt", other);
    FILE *fp = fopen(f, "w");
    fputs("keep me", fp);
    fclose(fp);
    CHECK_RC(factum_store_open(other, &o, &s2), FACTUM_ENOTSTORE);
    CHECK(access(f, F_OK) == 0);
    snprintf(f, sizeof f, "%s/LOCK", other);
    CHECK(access(f, F_OK) != 0); /* nothing left behind */
    /* A newer format version. */
    char idf[700];
    snprintf(idf, sizeof idf, "%s/FACTUM", dir);
    fp = fopen(idf, "r");
    char buf[1024] = {0};
    size_t len = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    (void)len;
    char want[32];
    snprintf(want, sizeof want, "format %d\n", FACTUM_FORMAT_VERSION);
    char *fmt = strstr(buf, want);
    REQUIRE(fmt);
    fmt[7] = '9';
    char *crc = strstr(buf, "crc ");
    REQUIRE(crc);
    sprintf(crc, "crc %08x\n", base_crc32c(0, buf, (size_t)(crc - buf)));
    fp = fopen(idf, "w");
    fputs(buf, fp);
    fclose(fp);
    CHECK_RC(factum_store_open(dir, &o, &s2), FACTUM_EFORMAT);
    harness_rm_rf(other);
    harness_rm_rf(dir);
}

/* The default event size limit: 16 MiB of data + metadata. */
static void t_default_size_limit(void)
{
    factum_options o;
    factum_options_init(&o);
    harness_tmpdir(dir, sizeof dir, "limit");
    factum_store *s;
    REQUIRE(factum_store_open(dir, &o, &s) == 0);
    size_t max = FACTUM_DEFAULT_MAX_EVENT_SIZE;
    uint8_t *blob = malloc(max + 1);
    REQUIRE(blob);
    memset(blob, 'x', max + 1);
    factum_event_data e = harness_event("Big", "{}");
    e.flags = 0;
    e.data = blob;
    e.data_len = max + 1;
    CHECK_RC(factum_append(s, "big", FACTUM_ANY, &e, 1, NULL), FACTUM_ETOOBIG);
    e.data_len = max - 10;
    e.metadata = blob;
    e.metadata_len = 11;
    CHECK_RC(factum_append(s, "big", FACTUM_ANY, &e, 1, NULL), FACTUM_ETOOBIG);
    e.metadata_len = 10;
    factum_append_result r;
    CHECK_RC(factum_append(s, "big", FACTUM_ANY, &e, 1, &r), 0);
    factum_event ev;
    CHECK_RC(factum_read_position(s, r.first_position, &ev), 0);
    CHECK(ev.data_len == max - 10 && ev.metadata_len == 10 && ev.data[max - 11] == 'x');
    free(blob);
    factum_stats st;
    factum_store_get_stats(s, &st);
    CHECK_EQ_U64(st.last_position, 1);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* KurrentDB accepts StreamExists on a stream that has metadata but no
 * events (and refuses it on a soft-deleted one, or one with neither). */
static void t_stream_exists_with_metadata_only(void)
{
    factum_store *s = open_at("exists", 1);
    REQUIRE(s);
    factum_event_data e = harness_event("A", "{}");
    factum_append_result r;
    CHECK_RC(factum_append(s, "nothing", FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == FACTUM_NO_STREAM);
    const char *md = "{\"$maxCount\":5}";
    CHECK_RC(factum_set_stream_metadata(s, "mo", FACTUM_NO_STREAM, md, strlen(md), NULL), 0);
    CHECK_RC(factum_append(s, "mo", FACTUM_STREAM_EXISTS, &e, 1, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    /* Soft-deleted before any event: metadata exists, the stream does not. */
    CHECK_RC(factum_delete_stream(s, "gone", FACTUM_ANY, NULL), 0);
    e = harness_event("A", "{}");
    CHECK_RC(factum_append(s, "gone", FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    /* The same after a reopen (state from the index, not the cache). */
    factum_store_close(s);
    s = open_at("exists", 0);
    REQUIRE(s);
    const char *md2 = "{\"custom\":1}";
    CHECK_RC(factum_set_stream_metadata(s, "mo2", FACTUM_ANY, md2, strlen(md2), NULL), 0);
    factum_store_close(s);
    s = open_at("exists", 0);
    REQUIRE(s);
    e = harness_event("A", "{}");
    CHECK_RC(factum_append(s, "mo2", FACTUM_STREAM_EXISTS, &e, 1, &r), 0);
    e = harness_event("A", "{}");
    CHECK_RC(factum_append(s, "gone", FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* A metadata document of `pad` bytes of padding with the given $tb (or
 * none when tb < 0), malloc'd. */
static char *big_metadata(size_t pad, int64_t tb)
{
    char *j = malloc(pad + 64);
    if (!j) return NULL;
    size_t n = 0;
    n += (size_t)sprintf(j, "{\"pad\":\"");
    memset(j + n, 'p', pad);
    n += pad;
    if (tb >= 0)
        sprintf(j + n, "\",\"$tb\":%lld}", (long long)tb);
    else
        sprintf(j + n, "\"}");
    return j;
}

static int store_failed(factum_store *s)
{
    factum_stats st;
    factum_store_get_stats(s, &st);
    return st.failed;
}

/* Re-creating a soft-deleted stream adds a $metadata event copied from its
 * metadata. No request may latch the store whatever its size: if that copy
 * and the append do not fit in a segment, this append alone fails with
 * FACTUM_ETOOBIG, before anything is written. */
static void t_oversized_recreate_refused_alone(void)
{
    factum_store *s = open_at("oversize", 1); /* 1 MiB segments */
    REQUIRE(s);
    size_t room = (1u << 20) - LOG_SEG_HEADER - LOG_BATCH_FRAME_LEN;
    uint8_t *blob = malloc(room);
    REQUIRE(blob);
    memset(blob, 'x', room);
    factum_event_data e = harness_event("Big", "{}");
    e.flags = 0;
    e.data = blob;

    /* 1. Metadata with big custom keys, then a soft delete: the delete keeps
     * none of them (KurrentDB), so re-creating with a big event works. */
    char *md = big_metadata(600u << 10, -1);
    REQUIRE(md);
    CHECK_RC(factum_set_stream_metadata(s, "a", FACTUM_ANY, md, strlen(md), NULL), 0);
    free(md);
    CHECK_RC(factum_append(s, "a", FACTUM_ANY, &e, 1, NULL), 0); /* data_len 0 */
    CHECK_RC(factum_delete_stream(s, "a", FACTUM_ANY, NULL), 0);
    factum_uuid_v4(e.id);
    e.data_len = 500u << 10;
    factum_append_result r;
    CHECK_RC(factum_append(s, "a", FACTUM_ANY, &e, 1, &r), 0);
    CHECK_EQ_U64(r.first_version, 1);
    CHECK(!store_failed(s));

    /* 2. Metadata that is both big and soft-deleting (a client may write
     * that): the copy plus the append outgrow the segment. */
    md = big_metadata(600u << 10, INT64_MAX);
    REQUIRE(md);
    CHECK_RC(factum_set_stream_metadata(s, "b", FACTUM_ANY, md, strlen(md), NULL), 0);
    free(md);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "b", &info), 0);
    CHECK(info.meta.truncate_before == INT64_MAX);
    uint64_t before;
    {
        factum_stats st;
        factum_store_get_stats(s, &st);
        before = st.last_position;
    }
    e = harness_event("Big", "{}");
    e.flags = 0;
    e.data = blob;
    e.data_len = 500u << 10;
    CHECK_RC(factum_append(s, "b", FACTUM_ANY, &e, 1, &r), FACTUM_ETOOBIG);
    /* A multi-stream append holding it fails as a whole, at that part. */
    factum_event_data small = harness_event("Small", "{}");
    factum_append_req q[2] = {{"c", FACTUM_ANY, &small, 1}, {"b", FACTUM_ANY, &e, 1}};
    size_t failed = 9;
    factum_append_result rr[2];
    CHECK_RC(factum_append_multi(s, q, 2, rr, &failed), FACTUM_ETOOBIG);
    CHECK_EQ_U64(failed, 1);
    /* Nothing was written, and the store goes on. */
    CHECK(!store_failed(s));
    {
        factum_stats st;
        factum_store_get_stats(s, &st);
        CHECK_EQ_U64(st.last_position, before);
    }
    small = harness_event("Small", "{}");
    CHECK_RC(factum_append(s, "b", FACTUM_ANY, &small, 1, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    CHECK_RC(factum_stream_get_info(s, "b", &info), 0);
    CHECK(info.status == FACTUM_STREAM_LIVE && info.meta.truncate_before == 0);
    small = harness_event("Small", "{}");
    CHECK_RC(factum_append(s, "c", FACTUM_ANY, &small, 1, &r), 0);
    CHECK(!store_failed(s));
    free(blob);
    factum_store_close(s);
    /* And it reopens with everything acknowledged. */
    s = open_at("oversize", 0);
    REQUIRE(s);
    factum_event out[4];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "b", 0, FACTUM_FORWARD, out, 4, &n, &next), 0);
    CHECK(n == 1 && !strcmp(out[0].type, "Small"));
    factum_store_close(s);
    harness_rm_rf(dir);
}

typedef struct acb {
    pthread_mutex_t mu;
    int done, rc[2];
    factum_append_result res[2];
} acb;

typedef struct acb_slot {
    acb *a;
    int i;
} acb_slot;

static void async_done(void *ctx, int rc, const factum_append_result *results, size_t n, size_t failed)
{
    (void)n;
    (void)failed;
    acb_slot *sl = ctx;
    pthread_mutex_lock(&sl->a->mu);
    sl->a->rc[sl->i] = rc;
    sl->a->res[sl->i] = results[0];
    sl->a->done++;
    pthread_mutex_unlock(&sl->a->mu);
}

/* Two requests whose estimates fit one batch but whose real encoded size
 * (with the metadata copy) does not: the second goes into the next batch
 * instead of failing or latching the store. Deterministic: the test holds
 * the lead while both are queued (ST-1's leadership, see writer.c). */
static void t_group_split_on_real_size(void)
{
    factum_store *s = open_at("split", 1);
    REQUIRE(s);
    char *md = big_metadata(500u << 10, INT64_MAX);
    REQUIRE(md);
    CHECK_RC(factum_set_stream_metadata(s, "y", FACTUM_ANY, md, strlen(md), NULL), 0);
    free(md);
    uint8_t *blob = malloc(300u << 10);
    REQUIRE(blob);
    memset(blob, 'z', 300u << 10);
    factum_event_data ex = harness_event("X", "{}"), ey = harness_event("Y", "{}");
    ex.flags = ey.flags = 0;
    ex.data = ey.data = blob;
    ex.data_len = ey.data_len = 300u << 10;
    factum_append_req qx = {"x", FACTUM_ANY, &ex, 1}, qy = {"y", FACTUM_ANY, &ey, 1};
    acb a = {.mu = PTHREAD_MUTEX_INITIALIZER};
    acb_slot slot[2] = {{&a, 0}, {&a, 1}};
    factum_stats st0;
    factum_store_get_stats(s, &st0);

    pthread_mutex_lock(&s->q_mu);
    REQUIRE(!s->leader);
    s->leader = 1; /* nobody runs groups until we say so */
    pthread_mutex_unlock(&s->q_mu);
    CHECK_RC(factum_append_async(s, &qx, 1, async_done, &slot[0]), 0);
    CHECK_RC(factum_append_async(s, &qy, 1, async_done, &slot[1]), 0);
    pthread_mutex_lock(&s->q_mu);
    CHECK_EQ_U64(s->q_len, 2);
    s->writer_lead = 1; /* hand the lead to the writer thread */
    pthread_cond_signal(&s->q_cv);
    atomic_store(&s->writer_kick, 1);
    pthread_mutex_unlock(&s->q_mu);
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&a.mu);
        int done = a.done;
        pthread_mutex_unlock(&a.mu);
        if (done == 2) break;
        usleep(1000);
    }
    CHECK(a.done == 2);
    CHECK_RC(a.rc[0], 0);
    CHECK_RC(a.rc[1], 0);
    CHECK_EQ_U64(a.res[1].first_version, 0);
    /* y's metadata copy and event follow x's event. */
    CHECK_EQ_U64(a.res[1].first_position, a.res[0].first_position + 2);
    factum_stats st;
    factum_store_get_stats(s, &st);
    CHECK_EQ_U64(st.groups - st0.groups, 2);
    CHECK(!st.failed);
    factum_event ev;
    CHECK_RC(factum_read_position(s, a.res[1].first_position, &ev), 0);
    CHECK(ev.data_len == 300u << 10 && !strcmp(ev.stream, "y"));
    free(blob);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_default_size_limit);
    RUN(t_stream_exists_with_metadata_only);
    RUN(t_oversized_recreate_refused_alone);
    RUN(t_group_split_on_real_size);
    RUN(t_idempotency);
    RUN(t_multi_stream);
    RUN(t_metadata);
    RUN(t_soft_delete);
    RUN(t_tombstone);
    RUN(t_filters);
    RUN(t_catalog);
    RUN(t_bad_input);
    return harness_done();
}
