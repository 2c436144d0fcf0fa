/*
 * unit/readmodel_js.c - read models with JavaScript handlers (the
 * definition's "script", src/rm/js.c, run by the factum-js worker) through
 * the public API, on SQLite, and on PostgreSQL when FACTUM_TEST_PG is set
 * (tests/lib/with-postgres.sh): a script alone end to end (every field of
 * the event, sql() with its parameters, log()), mixed with SQL handlers
 * (theirs first, in the same transaction: RM-2), a handler that throws
 * under stop, skip and park (RM-3), a failing sql() statement and a
 * missing parameter, an infinite loop ended by the time limit, the heap
 * limit (the worker restarted), more distinct statements in a page than
 * the statement cache holds, exactly once across a reopen, bad scripts
 * refused at create with nothing changed, an inline read model with a
 * script (RM-5), and a rebuild with a changed script (RM-6). Skipped (exit 77) when the worker was not built.
 */
#include "factum_readmodel.h"
#include "harness.h"

static char dir[512];
static const char *pg;
static char pg_target[512];

#define T(sqlite, postgres) (pg ? (postgres) : (sqlite))

static factum_store *open_store(void)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    return s;
}

static uint64_t append_meta(factum_store *s, const char *stream, const char *type, const char *json,
                            const char *meta)
{
    factum_event_data e = {0};
    e.type = type;
    e.flags = FACTUM_EVENT_JSON | (meta ? FACTUM_EVENT_META_JSON : 0);
    e.data = json;
    e.data_len = strlen(json);
    e.metadata = meta;
    e.metadata_len = meta ? strlen(meta) : 0;
    factum_uuid_v4(e.id);
    factum_append_result r;
    int rc = factum_append(s, stream, FACTUM_ANY, &e, 1, &r);
    CHECK_RC(rc, 0);
    return rc ? 0 : r.last_position;
}

static uint64_t append(factum_store *s, const char *stream, const char *type, const char *json)
{
    return append_meta(s, stream, type, json, NULL);
}

static uint64_t money(factum_store *s, int id, const char *type, int amount)
{
    char st[64], js[128];
    snprintf(st, sizeof st, "account-%d", id);
    snprintf(js, sizeof js, "{\"id\":\"a%d\",\"amount\":%d}", id, amount);
    return append(s, st, type, js);
}

static uint64_t opened(factum_store *s, int id)
{
    char st[64], js[128];
    snprintf(st, sizeof st, "account-%d", id);
    snprintf(js, sizeof js, "{\"id\":\"a%d\",\"owner\":{\"name\":\"o%d\"}}", id, id);
    return append(s, st, "Opened", js);
}

static void escape(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 8 < n; s++) {
        if (*s == '"' || *s == '\\') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = 0;
}

/* A definition: name, schema (a JSON array), handlers (a JSON object or
 * NULL), script (JavaScript or NULL), extra members (",..." or ""). */
static char *def(const char *name, const char *schema, const char *handlers, const char *script,
                 const char *extra)
{
    static char buf[16384];
    char js[12000] = "";
    if (script) escape(js, sizeof js, script);
    snprintf(buf, sizeof buf, "{\"name\":\"%s\"%s,\"schema\":%s%s%s%s%s%s%s}", name, pg_target, schema,
             handlers ? ",\"handlers\":" : "", handlers ? handlers : "", script ? ",\"script\":\"" : "", js,
             script ? "\"" : "", extra);
    return buf;
}

static char *query(factum_readmodels *m, const char *name, const char *sql)
{
    char *out = NULL, err[512] = "";
    int rc = factum_readmodel_query(m, name, sql, NULL, NULL, &out, err, sizeof err);
    if (rc) fprintf(stderr, "  query %s: %s (%s)\n", sql, factum_strerror(rc), err);
    CHECK_RC(rc, 0);
    return out;
}

static int has(const char *text, const char *needle)
{
    int ok = text && strstr(text, needle) != NULL;
    if (!ok) fprintf(stderr, "  expected %s in %s\n", needle, text ? text : "(null)");
    return ok;
}

/* The query's answer contains `want`. */
#define QUERY_HAS(m, name, sql, want)                                                                        \
    do {                                                                                                     \
        char *q_ = query(m, name, sql);                                                                      \
        CHECK(has(q_, want));                                                                                \
        free(q_);                                                                                            \
    } while (0)

static const char *BANK_SCHEMA =
    "[\"CREATE TABLE acc(id TEXT PRIMARY KEY, owner TEXT, balance BIGINT NOT NULL "
    "CHECK (balance >= 0), n BIGINT NOT NULL)\","
    "\"CREATE TABLE big(id TEXT, amount BIGINT, pos BIGINT)\"]";

static const char *BANK_JS =
    "({\n"
    "  Opened(e) { sql('INSERT INTO acc(id, owner, balance, n) VALUES (:id, :owner, 0, 0)',\n"
    "                  {id: e.data.id, owner: e.data.owner.name}); },\n"
    "  Deposited(e) {\n"
    "    if (e.data.amount > 1000) sql('INSERT INTO big VALUES (:id, :a, :p)', {id: e.data.id, a: "
    "e.data.amount, p: "
    "e.position});\n"
    "    if (e.data.amount < 0) throw new Error('negative deposit ' + e.data.amount);\n"
    "    sql('UPDATE acc SET balance = balance + :a, n = n + 1 WHERE id = :id', {id: e.data.id, a: "
    "e.data.amount});\n"
    "  },\n"
    "  Withdrawn(e) { sql('UPDATE acc SET balance = balance - :a, n = n + 1 WHERE id = :id', {id: e.data.id, "
    "a: "
    "e.data.amount}); },\n"
    "})\n";

static void t_script_end_to_end(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-e2e");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    for (int i = 0; i < 5; i++)
        opened(s, i);
    char err[1024] = "";
    const char *d = def("bank", BANK_SCHEMA, NULL, BANK_JS, ",\"streams\":[\"account-\"]");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  create: %s\n", err);
    uint64_t last = 0;
    for (int k = 0; k < 100; k++)
        last = money(s, k % 5, "Deposited", k == 50 ? 5000 : 10);
    last = money(s, 1, "Withdrawn", 3);
    append(s, "account-1", "Unhandled", "{\"id\":\"a1\"}"); /* a type nobody names: skipped */
    last = money(s, 2, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", last, 20000), 0);
    /* 99 x 10 + 5000 + 1 - 3 */
    QUERY_HAS(m, "bank", "SELECT count(*), sum(balance), sum(n) FROM acc", "[[5,5988,102]]");
    QUERY_HAS(m, "bank", "SELECT owner FROM acc WHERE id = 'a3'", "[[\"o3\"]]");
    QUERY_HAS(m, "bank", "SELECT id, amount FROM big", "[[\"a0\",5000]]");
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_RUNNING);
    CHECK_EQ_U64(st.position, last);
    /* Exactly once across a reopen (a new worker). */
    factum_readmodels_close(m);
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    last = money(s, 4, "Deposited", 7);
    CHECK_RC(factum_readmodel_wait(m, "bank", last, 20000), 0);
    QUERY_HAS(m, "bank", "SELECT count(*), sum(balance), sum(n) FROM acc", "[[5,5995,103]]");
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* Every field of the event, as SQL handlers bind them; handlers first. */
static void t_fields_and_mixed(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-mixed");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    const char *schema =
        "[\"CREATE TABLE a(pos BIGINT PRIMARY KEY, stream TEXT, cat TEXT, type TEXT, version BIGINT, ts "
        "TEXT, id "
        "TEXT, who TEXT, note TEXT)\",\"CREATE TABLE b(pos BIGINT PRIMARY KEY, stream TEXT, cat TEXT, type "
        "TEXT, "
        "version BIGINT, ts TEXT, id TEXT, who TEXT, data TEXT, tags TEXT, flag BIGINT, nada TEXT)\"]";
    const char *handlers =
        "{\"Thing\":\"INSERT INTO a VALUES (:position, :stream, :category, :type, :version, "
        ":timestamp, :event_id, :metadata.who, NULL)\"}";
    const char *script =
        "({\n"
        "  Thing(e) {\n"
        "    log('thing', e.position);\n"
        "    sql('UPDATE a SET note = :n WHERE pos = :p', {n: 'after the SQL handler', p: e.position});\n"
        "    sql('INSERT INTO b VALUES (:pos, :stream, :cat, :type, :version, :ts, :id, :who, :data, :tags, "
        ":flag, "
        ":nada)',\n"
        "        {pos: e.position, stream: e.stream, cat: e.category, type: e.type, version: e.version, ts: "
        "e.timestamp,\n"
        "         id: e.id, who: e.metadata.who, data: typeof e.data === 'string' ? e.data : "
        "JSON.stringify(e.data),\n"
        "         tags: e.data.tags, flag: e.data.flag ? 1 : 0, nada: undefined});\n"
        "  },\n"
        "  $any(e) { sql('INSERT INTO b(pos, type, data) VALUES (:p, :t, :d)', {p: e.position, t: e.type, d: "
        "e.data}); },\n"
        "})";
    char err[1024] = "";
    const char *d = def("mix", schema, handlers, script, "");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  create: %s\n", err);
    append_meta(s, "thing-1", "Thing", "{\"tags\":[\"x\",\"y\"],\"flag\":true}", "{\"who\":\"ann\"}");
    append_meta(s, "thing-2", "Thing", "{\"tags\":{\"k\":1}}", "{\"who\":\"bob\"}");
    /* Not JSON: the raw text. */
    factum_event_data raw = {.type = "Other", .data = "plain text", .data_len = 10};
    factum_append_result r;
    CHECK_RC(factum_append(s, "misc", FACTUM_ANY, &raw, 1, &r), 0);
    CHECK_RC(factum_readmodel_wait(m, "mix", r.last_position, 20000), 0);
    /* The script saw what the SQL handler binds, and ran after it. */
    QUERY_HAS(m, "mix",
              "SELECT count(*) FROM a JOIN b ON a.pos = b.pos AND a.stream = b.stream AND a.cat = b.cat AND "
              "a.type = "
              "b.type AND a.version = b.version AND a.ts = b.ts AND a.id = b.id AND a.who = b.who",
              "[[2]]");
    QUERY_HAS(m, "mix", "SELECT count(*) FROM a WHERE note = 'after the SQL handler'", "[[2]]");
    QUERY_HAS(m, "mix", "SELECT cat, tags, flag, nada FROM b WHERE stream = 'thing-1'",
              "[[\"thing\",\"[\\\"x\\\",\\\"y\\\"]\",1,null]]");
    QUERY_HAS(m, "mix", "SELECT tags FROM b WHERE stream = 'thing-2'", "[[\"{\\\"k\\\":1}\"]]");
    QUERY_HAS(m, "mix", "SELECT type, data FROM b WHERE type = 'Other'", "[[\"Other\",\"plain text\"]]");
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

static void t_failures_and_policies(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-policy");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    opened(s, 1);
    money(s, 1, "Deposited", 10);
    uint64_t bad = money(s, 1, "Deposited", -5); /* the handler throws */
    uint64_t after = money(s, 1, "Deposited", 1);
    char err[1024] = "";
    const char *d = def("bank", BANK_SCHEMA, NULL, BANK_JS, "");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    /* stop: faulted at the event with the error and the script's stack. */
    CHECK_RC(factum_readmodel_wait(m, "bank", after, 20000), FACTUM_EFAULTED);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED);
    CHECK_EQ_U64(st.error_position, bad);
    CHECK_EQ_U64(st.position, bad - 1);
    CHECK(has(st.error, "Error: negative deposit -5"));
    CHECK(has(st.error, "bank.js:6")); /* the line of the throw, in the stack */
    CHECK(has(st.statement, "JavaScript handler for Deposited"));
    QUERY_HAS(m, "bank", "SELECT balance, n FROM acc", "[[10,1]]");
    /* skip: past it. */
    d = def("bank", BANK_SCHEMA, NULL, BANK_JS, ",\"onError\":\"skip\"");
    CHECK_RC(factum_readmodel_rebuild(m, "bank", d, strlen(d), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_wait(m, "bank", after, 20000), 0);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK_EQ_U64(st.generation, 2);
    QUERY_HAS(m, "bank", "SELECT balance, n FROM acc", "[[11,2]]");
    /* park: a row with the error; a failing sql() statement too (the
     * CHECK constraint), with its text. */
    uint64_t over = money(s, 1, "Withdrawn", 1000);
    d = def("bank", BANK_SCHEMA, NULL, BANK_JS, ",\"onError\":\"park\"");
    CHECK_RC(factum_readmodel_rebuild(m, "bank", d, strlen(d), err, sizeof err), 0);
    uint64_t more = money(s, 1, "Deposited", 1);
    for (int i = 0; i < 500 && (factum_readmodel_get_status(m, "bank", &st), st.generation != 3); i++)
        usleep(20000);
    CHECK_EQ_U64(st.generation, 3);
    CHECK_RC(factum_readmodel_wait(m, "bank", more, 20000), 0);
    char *out = NULL;
    CHECK_RC(factum_readmodel_parked(m, "bank", 10, &out, err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "[%" PRIu64 ",\"account-1\",2,\"Deposited\"", bad);
    CHECK(has(out, want));
    CHECK(has(out, "negative deposit -5"));
    snprintf(want, sizeof want, "[%" PRIu64 ",\"account-1\",4,\"Withdrawn\"", over);
    CHECK(has(out, want));
    CHECK(has(out, "UPDATE acc SET balance = balance - :a"));
    CHECK(has(out, T("CHECK constraint failed", "violates check constraint")));
    free(out);
    QUERY_HAS(m, "bank", "SELECT balance, n FROM acc", "[[12,3]]");
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* Statements the handler gets wrong: each fails its event only. */
static void t_bad_statements(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-badsql");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    const char *script = "({\n"
                         "  Missing(e) { sql('INSERT INTO t VALUES (:a, :b)', {a: 1}); },\n"
                         "  Two(e) { sql('INSERT INTO t VALUES (1, 1); INSERT INTO t VALUES (2, 2)'); },\n"
                         "  Commit(e) { sql('COMMIT'); },\n"
                         "  Syntax(e) { sql('INSERT INTO nowhere VALUES (1)'); },\n"
                         "  NotObject(e) { sql('INSERT INTO t VALUES (:a, 0)', [1]); },\n"
                         "  Promise(e) { return Promise.resolve(1); },\n"
                         "  Good(e) { sql('INSERT INTO t VALUES (:a, :b)', {a: e.data.a, b: e.data.b}); },\n"
                         "})";
    char err[1024] = "";
    const char *d =
        def("bad", "[\"CREATE TABLE t(a BIGINT, b BIGINT)\"]", NULL, script, ",\"onError\":\"park\"");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  create: %s\n", err);
    const char *types[] = {"Missing", "Two", "Commit", "Syntax", "NotObject", "Promise"};
    for (int i = 0; i < 6; i++) {
        append(s, "x-1", "Good", "{\"a\":1,\"b\":2}");
        append(s, "x-1", types[i], "{}");
    }
    uint64_t last = append(s, "x-1", "Good", "{\"a\":3,\"b\":4}");
    CHECK_RC(factum_readmodel_wait(m, "bad", last, 20000), 0);
    QUERY_HAS(m, "bad", "SELECT count(*), sum(a), sum(b) FROM t", "[[7,9,16]]");
    char *out = NULL;
    CHECK_RC(factum_readmodel_parked(m, "bad", 10, &out, err, sizeof err), 0);
    CHECK(has(out, "parameter :b is not given"));
    CHECK(has(out, T("exactly one statement", "multiple commands")));
    CHECK(has(
        out,
        "only INSERT, UPDATE, DELETE, REPLACE, WITH and SELECT statements may be run for an event: COMMIT"));
    CHECK(has(out, T("no such table: nowhere", "relation \\\"nowhere\\\" does not exist")));
    CHECK(has(out, "params must be an object"));
    CHECK(has(out, "the handler returned a promise"));
    free(out);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "bad", &st), 0);
    CHECK_EQ_U64(st.parked, 6);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* An infinite loop ends at the time limit; the heap limit ends the worker,
 * which is started again for the events after; so does V8's fatal
 * out-of-memory in the middle of a page (the page then goes through a new
 * worker one event at a time, and only the event that kills it fails). */
static void t_limits(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-limits");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    const char *script = "({\n"
                         "  Loop(e) { for (;;) {} },\n"
                         "  Hog(e) { const a = []; for (;;) a.push(new Array(10000).fill(e.position)); },\n"
                         "  Boom(e) { sql('SELECT 1', {n: new Array(2e8).fill(1.5).length}); },\n"
                         "  Good(e) { sql('INSERT INTO t VALUES (:p)', {p: e.position}); },\n"
                         "})";
    const char *schema = "[\"CREATE TABLE t(p BIGINT)\"]";
    char err[1024] = "";
    const char *d = def("lim", schema, NULL, script,
                        ",\"onError\":\"park\",\"scriptLimits\":{\"msPerEvent\":2000,\"heapMiB\":16}");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  create: %s\n", err);
    append(s, "x-1", "Good", "{}");
    uint64_t loop = append(s, "x-1", "Loop", "{}");
    append(s, "x-1", "Good", "{}");
    uint64_t hog = append(s, "x-1", "Hog", "{}");
    append(s, "x-1", "Good", "{}");
    uint64_t boom = append(s, "x-1", "Boom", "{}");
    uint64_t last = append(s, "x-1", "Good", "{}");
    CHECK_RC(factum_readmodel_wait(m, "lim", last, 60000), 0);
    QUERY_HAS(m, "lim", "SELECT count(*) FROM t", "[[4]]");
    char *out = NULL;
    CHECK_RC(factum_readmodel_parked(m, "lim", 10, &out, err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "[%" PRIu64 ",\"x-1\",1,\"Loop\"", loop);
    CHECK(has(out, want));
    CHECK(has(out, "timed out after 2000 ms in the handler for event 1@x-1 (Loop)"));
    snprintf(want, sizeof want, "[%" PRIu64 ",\"x-1\",3,\"Hog\"", hog);
    CHECK(has(out, want));
    CHECK(has(out, "the script reached its heap limit of 16 MiB in the handler for event 3@x-1 (Hog)"));
    snprintf(want, sizeof want, "[%" PRIu64 ",\"x-1\",5,\"Boom\"", boom);
    CHECK(has(out, want));
    CHECK(has(out, "the JavaScript engine ran out of memory"));
    free(out);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "lim", &st), 0);
    CHECK_EQ_U64(st.parked, 3);
    /* stop: the loop faults a read model with it. */
    d = def("lim2", schema, NULL, script, ",\"scriptLimits\":{\"msPerEvent\":300,\"heapMiB\":16}");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_wait(m, "lim2", last, 60000), FACTUM_EFAULTED);
    CHECK_RC(factum_readmodel_get_status(m, "lim2", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED);
    CHECK_EQ_U64(st.error_position, loop);
    CHECK(has(st.error, "timed out after 300 ms in the handler for event 1@x-1 (Loop)"));
    QUERY_HAS(m, "lim2", "SELECT count(*) FROM t", "[[1]]");
    /* Limits out of range, or without a script. */
    d = def("lim3", schema, NULL, script, ",\"scriptLimits\":{\"heapMiB\":1}");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "\"scriptLimits\""));
    d = def("lim3", schema, "{\"A\":\"INSERT INTO t VALUES (1)\"}", NULL,
            ",\"scriptLimits\":{\"msPerEvent\":10}");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "beside a \"script\""));
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* Inline (RM-5): after each acknowledged append, a query sees what the
 * script made of it. */
static void t_inline(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-inline");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    char err[1024] = "";
    const char *d = def("bank", BANK_SCHEMA, NULL, BANK_JS, ",\"lifecycle\":\"inline\"");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    uint64_t p = opened(s, 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", p, 20000), 0);
    factum_readmodel_status st;
    for (int i = 0; i < 500 && (factum_readmodel_get_status(m, "bank", &st), !st.live); i++)
        usleep(10000);
    CHECK(st.live);
    int misses = 0;
    for (int k = 1; k <= 50; k++) {
        money(s, 1, "Deposited", 1);
        char *out = NULL, want[64];
        if (factum_readmodel_query(m, "bank", "SELECT n FROM acc WHERE id = 'a1'", NULL, NULL, &out, NULL,
                                   0)) {
            misses++;
            continue;
        }
        snprintf(want, sizeof want, "[[%d]]", k);
        if (!strstr(out, want)) misses++;
        free(out);
    }
    CHECK(misses == 0);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* The same failures when each page is one event: the worker already has
 * the next page's events while a page's statements run, so each failure
 * happens in what was sent ahead (a crash there: those events again, one
 * at a time). */
static void t_limits_paged(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-paged");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    factum_readmodels_options o;
    factum_readmodels_options_init(&o);
    o.batch_events = 1;
    CHECK_RC(factum_readmodels_open(s, &o, &m), 0);
    const char *script = "({\n"
                         "  Loop(e) { for (;;) {} },\n"
                         "  Hog(e) { const a = []; for (;;) a.push(new Array(10000).fill(e.position)); },\n"
                         "  Boom(e) { sql('SELECT 1', {n: new Array(2e8).fill(1.5).length}); },\n"
                         "  Good(e) { sql('INSERT INTO t VALUES (:p)', {p: e.position}); },\n"
                         "})";
    const char *types[] = {"Good", "Loop", "Good", "Hog", "Good", "Boom", "Good", "Good"};
    uint64_t last = 0;
    for (int i = 0; i < 8; i++)
        last = append(s, "x-1", types[i], "{}");
    char err[1024] = "";
    const char *d = def("lim", "[\"CREATE TABLE t(p BIGINT)\"]", NULL, script,
                        ",\"onError\":\"park\",\"scriptLimits\":{\"msPerEvent\":2000,\"heapMiB\":16}");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_wait(m, "lim", last, 60000), 0);
    QUERY_HAS(m, "lim", "SELECT count(*), sum(p) FROM t", "[[5,24]]");
    char *out = NULL;
    CHECK_RC(factum_readmodel_parked(m, "lim", 10, &out, err, sizeof err), 0);
    CHECK(has(out, "timed out after 2000 ms in the handler for event 1@x-1 (Loop)"));
    CHECK(has(out, "the script reached its heap limit of 16 MiB in the handler for event 3@x-1 (Hog)"));
    CHECK(has(out, "[6,\"x-1\",5,\"Boom\""));
    CHECK(has(out, "the JavaScript engine ran out of memory"));
    free(out);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* More distinct statements in one page than a connection's cache holds. */
static void t_many_statements(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-many");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    const char *script = "({ N(e) { sql('INSERT INTO t VALUES (:n) -- ' + e.data.n, {n: e.data.n}); } })";
    char err[1024] = "";
    for (int i = 0; i < 700; i++) {
        char js[64];
        snprintf(js, sizeof js, "{\"n\":%d}", i % 600);
        append(s, "n-1", "N", js);
    }
    const char *d = def("many", "[\"CREATE TABLE t(n BIGINT)\"]", NULL, script, "");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    uint64_t last = append(s, "n-1", "N", "{\"n\":1}");
    CHECK_RC(factum_readmodel_wait(m, "many", last, 30000), 0);
    /* sum(0..599) + sum(0..99) + 1 */
    QUERY_HAS(m, "many", "SELECT count(*), sum(n) FROM t", "[[701,184651]]");
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

static void t_bad_scripts(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-badjs");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    struct {
        const char *script;
        const char *msg;
    } cases[] = {
        {"({\n  A(e) {\n    sql('x'\n  },\n})", "SyntaxError"},
        {"({\n  A(e) {\n    sql('x'\n  },\n})", "(line 3)"},
        {"42", "must evaluate to an object of handler functions"},
        {"({ A: 1 })", "member \"A\" must be a handler function"},
        {"({})", "no handlers"},
        {"\n\nthrow new Error('at load')", "Error: at load (line 3)"},
        {"for (;;) {}", "timed out"},
        {"sql('INSERT INTO t VALUES (1)'); ({ A(e) {} })", "sql() can only be called from a handler"},
        {"({ async A(e) { sql('INSERT INTO t VALUES (1)'); } })",
         "handler \"A\" is async or a generator (AsyncFunction)"},
        {"({ *A(e) { sql('INSERT INTO t VALUES (1)'); } })",
         "handler \"A\" is async or a generator (GeneratorFunction)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024] = "";
        const char *d = def("x", "[\"CREATE TABLE t(a BIGINT)\"]", NULL, cases[i].script, "");
        CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
        CHECK(has(err, cases[i].msg));
    }
    /* Not a string; neither handlers nor a script. */
    char err[1024] = "";
    char d[1024];
    snprintf(d, sizeof d, "{\"name\":\"x\"%s,\"schema\":\"CREATE TABLE t(a BIGINT)\",\"script\":5}",
             pg_target);
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "\"script\" must be a non-empty string"));
    snprintf(d, sizeof d, "{\"name\":\"x\"%s,\"schema\":\"CREATE TABLE t(a BIGINT)\"}", pg_target);
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "or give a \"script\""));
    /* Nothing was created or stored. */
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "x", &st), FACTUM_ENOTFOUND);
    factum_event ev[1];
    size_t n = 9;
    int rc = factum_read_stream(s, "$readmodels", 0, FACTUM_FORWARD, ev, 1, &n, NULL);
    CHECK(rc == FACTUM_ENOTFOUND || n == 0);
    /* A rebuild with a bad script changes nothing either. */
    const char *good = def("x", "[\"CREATE TABLE t(a BIGINT)\"]", NULL,
                           "({ A(e) { sql('INSERT INTO t VALUES (1)'); } })", "");
    CHECK_RC(factum_readmodel_create(m, good, strlen(good), err, sizeof err), 0);
    const char *worse = def("x", "[\"CREATE TABLE t(a BIGINT)\"]", NULL, "({ A(e) { ", "");
    CHECK_RC(factum_readmodel_rebuild(m, "x", worse, strlen(worse), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "SyntaxError"));
    CHECK_RC(factum_readmodel_get_status(m, "x", &st), 0);
    CHECK_EQ_U64(st.building, 0);
    CHECK_EQ_U64(st.generation, 1);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* A rebuild with a changed script: the new generation from the start of
 * the log, under appends, then it serves the queries (RM-6). */
static void t_rebuild_changed_script(void)
{
    harness_tmpdir(dir, sizeof dir, "rmjs-rebuild");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    factum_readmodels_options o;
    factum_readmodels_options_init(&o);
    o.batch_events = 300;
    CHECK_RC(factum_readmodels_open(s, &o, &m), 0);
    const char *v1 =
        "({ Deposited(e) { sql('INSERT INTO t(id, x) VALUES (:id, :a) ON CONFLICT (id) DO UPDATE SET x "
        "= t.x + excluded.x', {id: e.data.id, a: e.data.amount}); } })";
    const char *v2 =
        "({ Deposited(e) { sql('INSERT INTO t(id, x) VALUES (:id, :a) ON CONFLICT (id) DO UPDATE SET x "
        "= t.x + excluded.x', {id: e.data.id, a: 2 * e.data.amount}); } })";
    const char *schema = "[\"CREATE TABLE t(id TEXT PRIMARY KEY, x BIGINT NOT NULL)\"]";
    char err[1024] = "";
    char d1[16384];
    snprintf(d1, sizeof d1, "%s", def("r", schema, NULL, v1, ""));
    CHECK_RC(factum_readmodel_create(m, d1, strlen(d1), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  create: %s\n", err);
    for (int k = 0; k < 2000; k++)
        money(s, k % 4, "Deposited", 1);
    uint64_t last = money(s, 0, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "r", last, 30000), 0);
    QUERY_HAS(m, "r", "SELECT sum(x) FROM t", "[[2001]]");
    const char *d2 = def("r", schema, NULL, v2, "");
    CHECK_RC(factum_readmodel_rebuild(m, "r", d2, strlen(d2), err, sizeof err), 0);
    for (int k = 0; k < 300; k++)
        money(s, k % 4, "Deposited", 1);
    factum_readmodel_status st;
    for (int i = 0; i < 3000 && (factum_readmodel_get_status(m, "r", &st), st.generation != 2); i++)
        usleep(10000);
    CHECK_EQ_U64(st.generation, 2);
    last = money(s, 1, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "r", last, 30000), 0);
    QUERY_HAS(m, "r", "SELECT sum(x) FROM t", "[[4604]]");
    char *text = NULL;
    CHECK_RC(factum_readmodel_get_definition(m, "r", &text), 0);
    CHECK(has(text, "2 * e.data.amount"));
    free(text);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set: the JavaScript worker was not built (skipped)\n");
        return 77;
    }
    pg = getenv("FACTUM_TEST_PG");
    if (pg && *pg)
        snprintf(pg_target, sizeof pg_target, ",\"target\":{\"type\":\"postgres\",\"connection\":\"%s\"}",
                 pg);
    else
        pg = NULL;
    printf("target: %s\n", pg ? "postgres" : "sqlite");
    RUN(t_script_end_to_end);
    RUN(t_fields_and_mixed);
    RUN(t_failures_and_policies);
    RUN(t_bad_statements);
    RUN(t_limits);
    RUN(t_limits_paged);
    RUN(t_many_statements);
    RUN(t_inline);
    RUN(t_bad_scripts);
    RUN(t_rebuild_changed_script);
    return harness_done();
}
