/* Unit tests of the store's basic semantics: appends with each kind of
 * expectation, reads both ways, $all, reopen. */
#include "harness.h"

#include "store/store_int.h"

static char dir[512];

static factum_store *open_fresh(const char *name)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void t_append_read(void)
{
    factum_store *s = open_fresh("append_read");
    REQUIRE(s);
    factum_event_data ev[3] = {harness_event("A", "{\"n\":1}"), harness_event("B", "{\"n\":2}"),
                               harness_event("C", "{\"n\":3}")};
    factum_append_result r;
    CHECK_RC(factum_append(s, "account-1", FACTUM_NO_STREAM, ev, 3, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    CHECK_EQ_U64(r.last_version, 2);
    CHECK_EQ_U64(r.first_position, 1);
    CHECK_EQ_U64(r.last_position, 3);
    factum_event out[10];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "account-1", 0, FACTUM_FORWARD, out, 10, &n, &next), 0);
    CHECK_EQ_U64(n, 3);
    CHECK(next == FACTUM_END);
    CHECK(n == 3 && !strcmp(out[1].type, "B") && out[1].version == 1 && out[1].position == 2);
    CHECK(n == 3 && out[2].data_len == 7 && !memcmp(out[2].data, "{\"n\":3}", 7));
    CHECK(n == 3 && !memcmp(out[0].id, ev[0].id, 16));
    CHECK_RC(factum_read_stream(s, "account-1", FACTUM_END, FACTUM_BACKWARD, out, 2, &n, &next), 0);
    CHECK_EQ_U64(n, 2);
    CHECK(n == 2 && out[0].version == 2 && out[1].version == 1);
    CHECK_EQ_U64(next, 0);
    CHECK_RC(factum_read_stream(s, "nope", 0, FACTUM_FORWARD, out, 10, &n, &next), FACTUM_ENOTFOUND);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_expectations(void)
{
    factum_store *s = open_fresh("expect");
    REQUIRE(s);
    factum_event_data e = harness_event("X", "{}");
    factum_append_result r;
    CHECK_RC(factum_append(s, "s", FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == FACTUM_NO_STREAM);
    CHECK_RC(factum_append(s, "s", 5, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK_RC(factum_append(s, "s", FACTUM_NO_STREAM, &e, 1, &r), 0);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_NO_STREAM, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 0);
    CHECK_RC(factum_append(s, "s", 0, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 1);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_STREAM_EXISTS, &e, 1, &r), 0);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_ANY, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 3);
    /* The same event again, expected at the same place: an idempotent replay. */
    CHECK_RC(factum_append(s, "s", 2, &e, 1, &r), 0);
    CHECK(r.idempotent == 1 && r.last_version == 3);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", 2, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 3);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_reopen(void)
{
    factum_store *s = open_fresh("reopen");
    REQUIRE(s);
    char json[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(json, sizeof json, "{\"i\":%d}", i);
        factum_event_data e = harness_event("E", json);
        char stream[32];
        snprintf(stream, sizeof stream, "st-%d", i % 7);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
    CHECK_RC(factum_store_close(s), 0);
    factum_options o;
    harness_small_opts(&o);
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "st-3", &info), 0);
    CHECK_EQ_U64(info.last_version, 3000 / 7 - 1 + (3 < 3000 % 7));
    factum_event out[1000];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, NULL, 0, out, 1000, &n, &next), 0);
    CHECK_EQ_U64(n, 1000);
    CHECK_EQ_U64(next, 1001);
    CHECK(n == 1000 && out[999].position == 1000);
    uint64_t count;
    CHECK_RC(factum_stream_count(s, &count), 0);
    CHECK_EQ_U64(count, 7);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* A read-only open after a crash replays the log tail in memory and serves
 * all of it, without writing anything. */
static void t_read_only_after_crash(void)
{
    factum_store *s = open_fresh("ro");
    REQUIRE(s);
    for (int i = 0; i < 50; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, "ro", FACTUM_ANY, &e, 1, NULL), 0);
    }
    store_abandon(s); /* no checkpoint: the index must come from the log */
    factum_options o;
    harness_small_opts(&o);
    o.read_only = 1;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_event out[64];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_all(s, 1, FACTUM_FORWARD, NULL, 0, out, 64, &n, &next), 0);
    CHECK_EQ_U64(n, 50);
    CHECK_RC(factum_read_stream(s, "ro", 0, FACTUM_FORWARD, out, 64, &n, &next), 0);
    CHECK_EQ_U64(n, 50);
    factum_event_data e = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "ro", FACTUM_ANY, &e, 1, NULL), FACTUM_EREADONLY);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* The index is derived: removed or damaged, it is rebuilt from the log, and
 * a long rebuild is written out as tables (memory stays bounded). */
static void t_index_rebuild(void)
{
    factum_store *s = open_fresh("rebuild");
    REQUIRE(s);
    for (int i = 0; i < 3000; i++) {
        factum_event_data e = harness_event("E", "{}");
        char stream[16];
        snprintf(stream, sizeof stream, "r-%d", i % 10);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_store_close(s);
    char p[700];
    factum_options o;
    harness_small_opts(&o);
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            snprintf(p, sizeof p, "%s/index", dir);
            harness_rm_rf(p);
        } else {
            snprintf(p, sizeof p, "%s/index/MANIFEST", dir);
            FILE *f = fopen(p, "r+");
            REQUIRE(f);
            fputs("garbage", f);
            fclose(f);
        }
        CHECK_RC(factum_store_open(dir, &o, &s), 0);
        REQUIRE(s);
        factum_stats st;
        factum_store_get_stats(s, &st);
        CHECK_EQ_U64(st.last_position, 3000);
        CHECK(st.index_tables > 0); /* the replay was flushed to tables */
        CHECK(st.memtable_entries <= 2 * o.memtable_entries);
        factum_event out[400];
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_stream(s, "r-7", 0, FACTUM_FORWARD, out, 400, &n, &next), 0);
        CHECK_EQ_U64(n, 300);
        uint64_t count;
        factum_stream_count(s, &count);
        CHECK_EQ_U64(count, 10);
        factum_store_close(s);
    }
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_index_rebuild);
    RUN(t_read_only_after_crash);
    RUN(t_append_read);
    RUN(t_expectations);
    RUN(t_reopen);
    return harness_done();
}
