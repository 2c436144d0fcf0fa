/*
 * app_consumer.c - idempotent consumers (factum_app.h, src/cqrs/consumer.c)
 * in one process: a stream consumer and a $all consumer with a filter, the
 * checkpoint in SQLite (mode a) and in the store (mode b), a handler
 * error that rolls its batch back and has it handled again (CN-3),
 * resuming after close, and the options that are refused. The crash
 * behaviour is fault_app_consumer's.
 */
#include <sqlite3.h>

#include "factum_app.h"
#include "harness.h"

static factum_store *open_store(const char *name, char *dir, size_t n)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    harness_tmpdir(dir, n, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void append_n(factum_store *s, const char *stream, int n)
{
    for (int i = 0; i < n; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
}

typedef struct counter {
    int calls;
    int fail_at; /* the call that fails (once), 0: none */
    factum_store *s;
} counter;

static int count_rows(void *ctx, struct sqlite3 *db, const factum_event *ev)
{
    counter *c = ctx;
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) {
        c->fail_at = 0;
        return -EIO;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO fx VALUES ('%.*s', %" PRIu64 ")", (int)ev->stream_len, ev->stream,
             ev->version);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : FACTUM_ETARGET;
}

static int rows(sqlite3 *db)
{
    sqlite3_stmt *st;
    int n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(DISTINCT s || v) FROM fx", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int all_rows(sqlite3 *db)
{
    sqlite3_stmt *st;
    int n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM fx", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void t_sqlite_stream(void)
{
    char dir[512];
    factum_store *s = open_store("cons-sql", dir, sizeof dir);
    REQUIRE(s);
    sqlite3 *db;
    REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE fx(s TEXT, v INTEGER)", NULL, NULL, NULL);
    append_n(s, "order-1", 10);
    append_n(s, "order-2", 5);
    counter c = {0, 4, s};
    factum_consumer_options o;
    factum_consumer_options_init(&o);
    o.name = "fx";
    o.stream = "order-1";
    o.db = db;
    o.handle = count_rows;
    o.ctx = &c;
    o.batch_events = 6;
    factum_consumer *k;
    REQUIRE(factum_consumer_open(s, &o, &k) == 0);
    CHECK(factum_consumer_checkpoint(k) == FACTUM_END);
    size_t h;
    /* the 4th handler call fails: the batch (3 rows) is rolled back */
    CHECK_RC(factum_consumer_poll(k, 0, &h), -EIO);
    CHECK(h == 0 && all_rows(db) == 0 && factum_consumer_checkpoint(k) == FACTUM_END);
    /* handled again from the checkpoint, nothing skipped; batches of at
     * most 6 (the subscription's markers take places too) */
    size_t total = 0;
    int polls = 0;
    do {
        CHECK_RC(factum_consumer_poll(k, 0, &h), 0);
        CHECK(h <= 6);
        total += h;
    } while ((h || factum_consumer_checkpoint(k) != 9) && ++polls < 20);
    CHECK(total == 10 && factum_consumer_checkpoint(k) == 9);
    CHECK(rows(db) == 10 && all_rows(db) == 10);
    factum_consumer_close(k);
    /* reopened: resumes after the checkpoint in the same database */
    append_n(s, "order-1", 2);
    REQUIRE(factum_consumer_open(s, &o, &k) == 0);
    CHECK(factum_consumer_checkpoint(k) == 9);
    total = 0;
    for (polls = 0; polls < 5; polls++) {
        CHECK_RC(factum_consumer_poll(k, 0, &h), 0);
        total += h;
    }
    CHECK(total == 2 && rows(db) == 12 && all_rows(db) == 12 && factum_consumer_checkpoint(k) == 11);
    factum_consumer_close(k);
    sqlite3_close(db);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static int ledger(void *ctx, struct sqlite3 *db, const factum_event *ev)
{
    (void)db;
    counter *c = ctx;
    c->calls++;
    factum_event_data e = harness_event("Effect", "{}");
    factum_consumer_effect_id("ledger", ev, 0, e.id);
    return factum_append(c->s, "ledger", FACTUM_ANY, &e, 1, NULL);
}

static void t_store_all(void)
{
    char dir[512];
    factum_store *s = open_store("cons-store", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "order-1", 7);
    append_n(s, "customer-1", 3);
    const char *pre[] = {"order-"};
    factum_filter *f;
    REQUIRE(factum_filter_new(FACTUM_FILTER_STREAM, pre, 1, NULL, 1, &f) == 0);
    counter c = {0, 0, s};
    factum_consumer_options o;
    factum_consumer_options_init(&o);
    o.name = "ledger";
    o.filter = f;
    o.handle = ledger;
    o.ctx = &c;
    factum_consumer *k;
    REQUIRE(factum_consumer_open(s, &o, &k) == 0);
    size_t h;
    CHECK_RC(factum_consumer_poll(k, 0, &h), 0);
    CHECK(h == 7);
    uint64_t cp = factum_consumer_checkpoint(k);
    factum_consumer_close(k);
    /* the checkpoint is in the store; a consumer reopened at an older
     * checkpoint (as after a crash) handles events again, and their
     * effects replay: still one ledger event per order event */
    factum_event ev;
    size_t n;
    CHECK_RC(factum_read_stream(s, "$consumer-ledger", FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL), 0);
    CHECK(n == 1);
    factum_event_data e = harness_event("$checkpoint", "{\"position\":2}");
    CHECK_RC(factum_append(s, "$consumer-ledger", FACTUM_ANY, &e, 1, NULL), 0);
    REQUIRE(factum_consumer_open(s, &o, &k) == 0);
    CHECK(factum_consumer_checkpoint(k) == 2);
    c.calls = 0;
    while (factum_consumer_poll(k, 0, &h) == 0 && h) {
    }
    CHECK(c.calls == 5);
    CHECK(factum_consumer_checkpoint(k) == cp);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "ledger", &info), 0);
    CHECK(info.last_version == 6);
    factum_stream_metadata_parse("{}", 2, &info.meta);
    CHECK_RC(factum_stream_get_info(s, "$consumer-ledger", &info), 0);
    CHECK(info.meta.max_count == 1);
    factum_consumer_close(k);

    /* refused options */
    factum_consumer_options bad = o;
    bad.name = "";
    CHECK_RC(factum_consumer_open(s, &bad, &k), FACTUM_EINVAL);
    bad = o;
    bad.handle = NULL;
    CHECK_RC(factum_consumer_open(s, &bad, &k), FACTUM_EINVAL);
    bad = o;
    bad.stream = "order-1"; /* a filter on a stream */
    CHECK_RC(factum_consumer_open(s, &bad, &k), FACTUM_EINVAL);
    factum_filter_free(f);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_sqlite_stream);
    RUN(t_store_all);
    return harness_done();
}
