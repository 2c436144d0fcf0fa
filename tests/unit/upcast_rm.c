/* Read models over upcast events (src/rm/apply.c with src/store/upcast.c,
 * UPC-5): `:data.x` parameters see the upcast data (an upcaster registered
 * after the events were written applies to them), the type handled is the
 * one after upcasting, and an event whose upcast fails goes through the
 * read model's onError policy like a failing statement: stop faults it at
 * that event (the message names it), skip goes past it, park parks it;
 * JavaScript handlers likewise (when the worker was built). */
#include <inttypes.h>
#include <unistd.h>

#include "factum_readmodel.h"
#include "harness.h"

static char dir[512];

static const char DEF[] = "{\"name\":\"bal\",\"schema\":[\"CREATE TABLE b(id TEXT PRIMARY KEY, cents INTEGER NOT NULL, "
                         "cur TEXT NOT NULL)\"],\"streams\":[\"acct-\"],\"handlers\":{"
                         "\"FundsDeposited\":\"INSERT INTO b VALUES (:data.id, :data.money.cents, :data.money.cur) "
                         "ON CONFLICT(id) DO UPDATE SET cents = cents + excluded.cents\"}}";

static const char *UP = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"steps\":["
                        "{\"op\":\"move\",\"from\":\"amount\",\"to\":\"money.cents\"},"
                        "{\"op\":\"default\",\"path\":\"money.cur\",\"value\":\"EUR\"},"
                        "{\"op\":\"type\",\"to\":\"FundsDeposited\"}]}";

/* DEF with `extra` members added at its end. */
static void def_with(char *d, size_t n, const char *extra)
{
    snprintf(d, n, "%.*s%s}", (int)(strlen(DEF) - 1), DEF, extra);
}

static uint64_t append(factum_store *s, const char *stream, const char *type, const char *json)
{
    factum_event_data e = harness_event(type, json);
    factum_append_result r;
    int rc = factum_append(s, stream, FACTUM_ANY, &e, 1, &r);
    CHECK_RC(rc, 0);
    return rc ? 0 : r.last_position;
}

static char *query(factum_readmodels *m, const char *sql)
{
    char *out = NULL, err[512] = "";
    factum_query_options o;
    factum_query_options_init(&o);
    int rc = factum_readmodel_query(m, "bal", sql, NULL, &o, &out, err, sizeof err);
    if (rc) fprintf(stderr, "  query %s: %s (%s)\n", sql, factum_strerror(rc), err);
    return out;
}

static int has(const char *text, const char *needle)
{
    int ok = text && strstr(text, needle) != NULL;
    if (!ok) fprintf(stderr, "  expected %s in %s\n", needle, text ? text : "(null)");
    return ok;
}

static void t_policies(void)
{
    harness_tmpdir(dir, sizeof dir, "upcast-rm");
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    REQUIRE(factum_store_open(dir, &o, &s) == 0);
    append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":5}");
    uint64_t bad = append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":7,\"money\":3}"); /* money not an object */
    uint64_t last = append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":11}");
    char err[512];
    REQUIRE(factum_upcaster_set(s, UP, strlen(UP), err, sizeof err) == 0); /* after the events */
    factum_readmodels *m = NULL;
    REQUIRE(factum_readmodels_open(s, NULL, &m) == 0);
    char d[2048];
    def_with(d, sizeof d, "");
    int crc = factum_readmodel_create(m, d, strlen(d), err, sizeof err);
    if (crc) fprintf(stderr, "  create: %s\n  %s\n", err, d);
    REQUIRE(crc == 0);
    CHECK_RC(factum_readmodel_wait(m, "bal", last, 60000), FACTUM_EFAULTED);
    factum_readmodel_status st;
    REQUIRE(factum_readmodel_get_status(m, "bal", &st) == 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED);
    CHECK_EQ_U64(st.error_position, bad);
    CHECK(has(st.error, "cannot upcast event 1@acct-1"));
    CHECK(has(st.error, "\"money\" of \"money.cents\" is not an object"));
    char *out = query(m, "SELECT cents, cur FROM b");
    CHECK(has(out, "[[5,\"EUR\"]]"));
    free(out);
    /* skip goes past it */
    def_with(d, sizeof d, ",\"onError\":\"skip\"");
    REQUIRE(factum_readmodel_rebuild(m, "bal", d, strlen(d), err, sizeof err) == 0);
    CHECK_RC(factum_readmodel_wait(m, "bal", last, 60000), 0);
    out = query(m, "SELECT cents, cur FROM b");
    CHECK(has(out, "[[16,\"EUR\"]]"));
    free(out);
    /* park parks it */
    def_with(d, sizeof d, ",\"onError\":\"park\"");
    REQUIRE(factum_readmodel_rebuild(m, "bal", d, strlen(d), err, sizeof err) == 0);
    uint64_t more = append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":1}");
    for (int i = 0; i < 3000; i++) {
        REQUIRE(factum_readmodel_get_status(m, "bal", &st) == 0);
        if (st.generation == 3) break;
        usleep(20000);
    }
    CHECK_EQ_U64(st.generation, 3);
    CHECK_RC(factum_readmodel_wait(m, "bal", more, 60000), 0);
    CHECK_RC(factum_readmodel_parked(m, "bal", 10, &out, err, sizeof err), 0);
    char want[64];
    snprintf(want, sizeof want, "[[%" PRIu64 ",\"acct-1\",1,\"MoneyDeposited\"", bad);
    CHECK(has(out, want));
    CHECK(has(out, "cannot upcast event 1@acct-1"));
    free(out);
    out = query(m, "SELECT cents FROM b");
    CHECK(has(out, "[[17]]"));
    free(out);
    factum_readmodels_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* A read model's JavaScript handlers (src/rm/js.c) get upcast events, by
 * the upcast type, over pages and the read-ahead of the next one (more
 * events than a chunk), and an event whose upcast fails goes through the
 * policy (park) without reaching the script. Needs the worker. */
static void t_script(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "  FACTUM_JS_WORKER is not set: the JavaScript part is skipped\n");
        return;
    }
    harness_tmpdir(dir, sizeof dir, "upcast-rm-js");
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    REQUIRE(factum_store_open(dir, &o, &s) == 0);
    char err[512];
    REQUIRE(factum_upcaster_set(s, UP, strlen(UP), err, sizeof err) == 0);
    enum { N = 1500 };
    uint64_t last = 0, sum = 0;
    for (int i = 1; i <= N; i++) {
        char js[96];
        if (i == 700) { /* one that cannot be upcast */
            last = append(s, "acct-9", "MoneyDeposited", "{\"id\":\"x\",\"amount\":1,\"money\":[]}");
            continue;
        }
        snprintf(js, sizeof js, "{\"id\":\"a%d\",\"amount\":%d}", i % 7, i);
        sum += (uint64_t)i;
        last = append(s, "acct-9", "MoneyDeposited", js);
    }
    factum_readmodels *m = NULL;
    REQUIRE(factum_readmodels_open(s, NULL, &m) == 0);
    const char *d = "{\"name\":\"bal\",\"schema\":[\"CREATE TABLE b(id TEXT PRIMARY KEY, cents INTEGER NOT NULL, "
                    "cur TEXT NOT NULL)\"],\"streams\":[\"acct-\"],\"onError\":\"park\",\"script\":\"({ "
                    "FundsDeposited(e) { sql('INSERT INTO b VALUES (:id, :c, :cur) ON CONFLICT(id) DO UPDATE SET "
                    "cents = cents + excluded.cents', {id: e.data.id, c: e.data.money.cents, cur: e.data.money.cur + "
                    "'/' + e.metadata.$schemaVersion}); }, MoneyDeposited(e) { throw new Error('raw event seen'); } "
                    "})\"}";
    int crc = factum_readmodel_create(m, d, strlen(d), err, sizeof err);
    if (crc) fprintf(stderr, "  create: %s\n", err);
    REQUIRE(crc == 0);
    CHECK_RC(factum_readmodel_wait(m, "bal", last, 60000), 0);
    char want[96];
    snprintf(want, sizeof want, "[[%" PRIu64 ",7,\"EUR/2\"]]", sum);
    char *out = query(m, "SELECT sum(cents), count(*), min(cur) FROM b");
    CHECK(has(out, want));
    free(out);
    CHECK_RC(factum_readmodel_parked(m, "bal", 10, &out, err, sizeof err), 0);
    CHECK(has(out, "cannot upcast event 699@acct-9"));
    free(out);
    factum_readmodels_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* The same statements over a script upcaster (ADR 0016): the read model's
 * `:data.x` parameters see what the script made, by the type it gave; an
 * event whose script throws faults it (stop), naming the event and the
 * script's error. Needs the worker. */
static void t_script_upcaster(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "  FACTUM_JS_WORKER is not set: skipped\n");
        return;
    }
    harness_tmpdir(dir, sizeof dir, "upcast-rm-script");
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    REQUIRE(factum_store_open(dir, &o, &s) == 0);
    append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":5}");
    append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":7}");
    uint64_t bad = append(s, "acct-1", "MoneyDeposited", "{\"id\":\"a1\",\"amount\":-1}");
    static const char SUP[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"script\":"
                              "\"function (e) { if (e.data.amount < 0) throw new Error('negative'); "
                              "return { type: 'FundsDeposited', data: { id: e.data.id, money: { cents: e.data.amount * 10, "
                              "cur: 'SEK' } } }; }\"}";
    char err[512];
    REQUIRE(factum_upcaster_set(s, SUP, strlen(SUP), err, sizeof err) == 0);
    factum_readmodels *m = NULL;
    REQUIRE(factum_readmodels_open(s, NULL, &m) == 0);
    char d[2048];
    def_with(d, sizeof d, "");
    REQUIRE(factum_readmodel_create(m, d, strlen(d), err, sizeof err) == 0);
    CHECK_RC(factum_readmodel_wait(m, "bal", bad, 60000), FACTUM_EFAULTED);
    factum_readmodel_status st;
    REQUIRE(factum_readmodel_get_status(m, "bal", &st) == 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED);
    CHECK_EQ_U64(st.error_position, bad);
    CHECK(has(st.error, "cannot upcast event 2@acct-1"));
    CHECK(has(st.error, "upcaster MoneyDeposited v1->v2 (script): Error: negative"));
    char *out = query(m, "SELECT cents, cur FROM b");
    CHECK(has(out, "[[120,\"SEK\"]]"));
    free(out);
    factum_readmodels_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_policies);
    RUN(t_script);
    RUN(t_script_upcaster);
    return harness_done();
}
