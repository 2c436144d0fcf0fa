/*
 * unit/readmodel.c - SQL read models on SQLite through the public API
 * (factum_readmodel.h): definitions refused with clear errors and nothing
 * changed, events applied with their parameters, exactly once across a
 * reopen (RM-2), the failure policies (RM-3), waits (RM-4), inline
 * read models behind an acknowledgement gate (RM-5, GATE-1), rebuilds
 * under concurrent appends (RM-6), and read-only queries.
 */
#include <pthread.h>

#include "factum_readmodel.h"
#include "harness.h"

static char dir[512];

static const char *BANK =
    "{\"name\":\"bank\",\"schema\":[\"CREATE TABLE acc(id TEXT PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL "
    "CHECK (balance >= 0), n INTEGER NOT NULL, last_pos INTEGER, cat TEXT)\"],"
    "\"streams\":[\"account-\"],"
    "\"handlers\":{"
    "\"Opened\":\"INSERT INTO acc VALUES (:data.id, :data.owner.name, 0, 0, :position, :category)\","
    "\"Deposited\":[\"UPDATE acc SET balance = balance + :data.amount, n = n + 1, last_pos = :position WHERE id = "
    ":data.id\"],"
    "\"Withdrawn\":\"UPDATE acc SET balance = balance - :data.amount, n = n + 1, last_pos = :position WHERE id = "
    ":data.id\"}";

/* FACTUM_TEST_PG (tests/lib/with-postgres.sh): the same tests on PostgreSQL. */
static const char *pg;
static char pg_target[512];

/* What each target says. */
#define T(sqlite, postgres) (pg ? (postgres) : (sqlite))

static char *def_with(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s%s%s}", BANK, pg_target, extra);
    return buf;
}

static factum_store *open_store(void)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    return s;
}

static uint64_t append(factum_store *s, const char *stream, const char *type, const char *json)
{
    factum_event_data e = {0};
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    factum_append_result r;
    int rc = factum_append(s, stream, FACTUM_ANY, &e, 1, &r);
    CHECK_RC(rc, 0);
    return rc ? 0 : r.last_position;
}

static uint64_t opened(factum_store *s, int id)
{
    char st[64], js[128];
    snprintf(st, sizeof st, "account-%d", id);
    snprintf(js, sizeof js, "{\"id\":\"a%d\",\"owner\":{\"name\":\"o%d\"}}", id, id);
    return append(s, st, "Opened", js);
}

static uint64_t money(factum_store *s, int id, const char *type, int amount)
{
    char st[64], js[128];
    snprintf(st, sizeof st, "account-%d", id);
    snprintf(js, sizeof js, "{\"id\":\"a%d\",\"amount\":%d}", id, amount);
    return append(s, st, type, js);
}

/* The query's answer, or NULL (checked). */
static char *query(factum_readmodels *m, const char *name, const char *sql, const char *params)
{
    char *out = NULL, err[512] = "";
    factum_query_options o;
    factum_query_options_init(&o);
    int rc = factum_readmodel_query(m, name, sql, params, &o, &out, err, sizeof err);
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

static void t_bad_definitions(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-bad");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    struct {
        const char *def;
        int rc;
        const char *msg;
    } cases[] = {
        {"{not json", FACTUM_EBADJSON, "not valid JSON"},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"INSERT INTO t VALUES (:data.a)\"},"
         "\"colour\":1}",
         FACTUM_EINVAL, "unknown member \"colour\""},
        {"{\"name\":\"bad name!\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"SELECT 1\"}}", FACTUM_EINVAL,
         "\"name\""},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"INSERT INTO t VALUES (:nope)\"}}",
         FACTUM_EINVAL, "unknown parameter :nope"},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"INSERT INTO t VALUS (1)\"}}",
         FACTUM_EINVAL, "syntax error"},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"INSERT INTO u VALUES (1)\"}}",
         FACTUM_EINVAL, T("no such table: u", "relation \"u\" does not exist")},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a\",\"handlers\":{\"E\":\"SELECT 1\"}}", FACTUM_EINVAL,
         "schema statement 1"},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"SELECT 1; SELECT 2\"}}",
         FACTUM_EINVAL, T("exactly one statement", "multiple commands")},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"ATTACH 'x.db' AS x\"}}",
         FACTUM_EINVAL, "only INSERT, UPDATE"},
        {"{\"name\":\"x\",\"schema\":[\"CREATE TABLE t(a integer)\",\"PRAGMA journal_mode=DELETE\"],\"handlers\":{"
         "\"E\":\"SELECT 1\"}}",
         FACTUM_EINVAL, "schema statement 2: only CREATE"},
        {"{\"name\":\"x\",\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":\"SELECT 1\"},\"lifecycle\":\"soon\"}",
         FACTUM_EINVAL, "lifecycle"},
        {"{\"name\":\"x\",\"target\":{\"type\":\"postgres\"},\"schema\":\"CREATE TABLE t(a integer)\",\"handlers\":{\"E\":"
         "\"SELECT 1\"}}",
         FACTUM_EINVAL, "needs \"connection\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "", d[2048];
        /* On PostgreSQL: the target member after the opening brace. */
        if (pg && cases[i].def[0] == '{' && cases[i].def[1] == '"' && !strstr(cases[i].def, "\"target\""))
            snprintf(d, sizeof d, "{%s,%s", pg_target + 1, cases[i].def + 1);
        else
            snprintf(d, sizeof d, "%s", cases[i].def);
        CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), cases[i].rc);
        CHECK(has(err, cases[i].msg));
    }
    /* Nothing was created or stored. */
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "x", &st), FACTUM_ENOTFOUND);
    factum_event ev[1];
    size_t n = 9;
    int rc = factum_read_stream(s, "$readmodels", 0, FACTUM_FORWARD, ev, 1, &n, NULL);
    CHECK(rc == FACTUM_ENOTFOUND || n == 0);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

static void t_apply_query_reopen(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-apply");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    for (int i = 0; i < 10; i++)
        opened(s, i);
    append(s, "other-1", "Opened", "{\"id\":\"zzz\"}"); /* not an account- stream: not applied */
    char err[512] = "";
    const char *d = def_with("");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), FACTUM_EEXISTS);
    uint64_t last = 0;
    for (int k = 0; k < 50; k++)
        last = money(s, k % 10, "Deposited", 10 + k);
    CHECK_RC(factum_readmodel_wait(m, "bank", last, 60000), 0);
    char *out = query(m, "bank", "SELECT count(*) AS n, sum(balance) AS b, sum(n) AS k FROM acc", NULL);
    /* sum(10..59) = 1725 */
    CHECK(has(out, "\"columns\":[\"n\",\"b\",\"k\"]"));
    CHECK(has(out, "\"rows\":[[10,1725,50]]"));
    free(out);
    out = query(m, "bank", "SELECT owner, cat FROM acc WHERE id = :id", "{\"id\":\"a3\"}");
    CHECK(has(out, "[[\"o3\",\"account\"]]"));
    free(out);
    /* Exactly once across a reopen: the same totals, then more. */
    factum_readmodels_close(m);
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    last = money(s, 1, "Withdrawn", 5);
    CHECK_RC(factum_readmodel_wait(m, "bank", last, 60000), 0);
    out = query(m, "bank", "SELECT sum(balance), sum(n) FROM acc", NULL);
    CHECK(has(out, "[[1720,51]]"));
    free(out);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_RUNNING);
    CHECK_EQ_U64(st.position, last);
    CHECK_EQ_U64(st.lag_events, 0);
    CHECK(!strcmp(st.target, T("sqlite", "postgres")));
    CHECK(!strcmp(st.readers, "[\"$all\"]"));
    /* Queries are read-only, one statement, with their parameters given. */
    char *o2 = NULL;
    CHECK_RC(factum_readmodel_query(m, "bank", "DELETE FROM acc", NULL, NULL, &o2, err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "read-only"));
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT 1; DELETE FROM acc", NULL, NULL, &o2, err, sizeof err),
             FACTUM_EINVAL);
    CHECK_RC(factum_readmodel_query(m, "bank", "ATTACH '/tmp/x.db' AS x", NULL, NULL, &o2, err, sizeof err),
             FACTUM_EINVAL);
    CHECK_RC(factum_readmodel_query(m, "bank", "PRAGMA writable_schema = 1", NULL, NULL, &o2, err, sizeof err),
             FACTUM_EINVAL);
    char vac[700], vsql[800];
    snprintf(vac, sizeof vac, "%s/vacuumed.db", dir);
    snprintf(vsql, sizeof vsql, "VACUUM INTO '%s'", vac);
    CHECK_RC(factum_readmodel_query(m, "bank", vsql, NULL, NULL, &o2, err, sizeof err), FACTUM_EINVAL);
    CHECK(access(vac, F_OK) != 0);
    CHECK_RC(factum_readmodel_query(m, "bank", " /* c */ SELECT 1", NULL, NULL, &o2, err, sizeof err), 0);
    free(o2);
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT :x", "{}", NULL, &o2, err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, ":x is not given"));
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT nonsense FROM WHERE", NULL, NULL, &o2, err, sizeof err),
             FACTUM_EINVAL);
    CHECK(has(err, "syntax error"));
    CHECK_RC(factum_readmodel_query(m, "nope", "SELECT 1", NULL, NULL, &o2, err, sizeof err), FACTUM_ENOTFOUND);
    /* A row limit, and a time limit. */
    factum_query_options qo;
    factum_query_options_init(&qo);
    qo.row_limit = 3;
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT id FROM acc ORDER BY id", NULL, &qo, &o2, err, sizeof err), 0);
    CHECK(has(o2, "[[\"a0\"],[\"a1\"],[\"a2\"]],\"truncated\":true"));
    free(o2);
    qo.row_limit = 10;
    qo.time_limit_ms = 50;
    CHECK_RC(factum_readmodel_query(m, "bank",
                                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) "
                                    "FROM c",
                                    NULL, &qo, &o2, err, sizeof err),
             FACTUM_ETIMEDOUT);
    /* An answer over 16 MiB is refused, not built. */
    qo.row_limit = 100000;
    qo.time_limit_ms = 20000;
    CHECK_RC(factum_readmodel_query(m, "bank",
                                    pg ? "SELECT repeat('x', 1000000) FROM generate_series(1, 40)"
                                       : "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40) "
                                         "SELECT printf('%.*c', 1000000, 'x') FROM c",
                                    NULL, &qo, &o2, err, sizeof err),
             FACTUM_ETOOBIG);
    CHECK(has(err, "over 16 MiB"));
    /* Still unchanged. */
    out = query(m, "bank", "SELECT count(*) FROM acc", NULL);
    CHECK(has(out, "[[10]]"));
    free(out);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

static void t_policies(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-policy");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    opened(s, 1);
    money(s, 1, "Deposited", 10);
    uint64_t bad = money(s, 1, "Withdrawn", 100); /* violates CHECK (balance >= 0) */
    uint64_t after = money(s, 1, "Deposited", 1);
    char err[512];
    const char *d = def_with("");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    /* stop: faulted at the event, what came before it committed. */
    CHECK_RC(factum_readmodel_wait(m, "bank", after, 60000), FACTUM_EFAULTED);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED);
    CHECK_EQ_U64(st.error_position, bad);
    CHECK_EQ_U64(st.position, bad - 1);
    CHECK(!strcmp(st.error_stream, "account-1"));
    CHECK(has(st.error, T("CHECK constraint failed", "violates check constraint")));
    CHECK(has(st.statement, "balance - :data.amount"));
    char *out = query(m, "bank", "SELECT balance, n FROM acc", NULL);
    CHECK(has(out, "[[10,1]]"));
    free(out);
    /* skip: a rebuild with the policy changed goes past it. */
    d = def_with(",\"onError\":\"skip\"");
    CHECK_RC(factum_readmodel_rebuild(m, "bank", d, strlen(d), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_wait(m, "bank", after, 60000), 0);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_RUNNING);
    CHECK_EQ_U64(st.generation, 2);
    out = query(m, "bank", "SELECT balance, n FROM acc", NULL);
    CHECK(has(out, "[[11,2]]"));
    free(out);
    /* park: the event is a row of factum_parked. */
    d = def_with(",\"onError\":\"park\"");
    CHECK_RC(factum_readmodel_rebuild(m, "bank", d, strlen(d), err, sizeof err), 0);
    uint64_t more = money(s, 1, "Deposited", 1);
    for (int i = 0; i < 3000; i++) { /* up to a minute on a loaded machine */
        CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
        if (st.generation == 3) break;
        usleep(20000);
    }
    CHECK_EQ_U64(st.generation, 3);
    CHECK_RC(factum_readmodel_wait(m, "bank", more, 60000), 0);
    CHECK_RC(factum_readmodel_parked(m, "bank", 10, &out, err, sizeof err), 0);
    char want[64];
    snprintf(want, sizeof want, "[[%" PRIu64 ",\"account-1\",2,\"Withdrawn\"", bad);
    CHECK(has(out, want));
    CHECK(has(out, T("CHECK constraint failed", "violates check constraint")));
    free(out);
    out = query(m, "bank", "SELECT balance, n FROM acc", NULL);
    CHECK(has(out, "[[12,3]]"));
    free(out);
    /* The old generations' files are gone. */
    char path[700];
    snprintf(path, sizeof path, "%s/readmodels/bank.g1.sqlite", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/readmodels/bank.g3.sqlite", dir);
    CHECK(access(path, F_OK) == (pg ? -1 : 0));
    /* Pause, resume, drop. */
    CHECK_RC(factum_readmodel_pause(m, "bank"), 0);
    uint64_t p2 = money(s, 1, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", p2, 200), FACTUM_ETIMEDOUT);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK(st.state == FACTUM_READMODEL_PAUSED);
    CHECK_RC(factum_readmodel_resume(m, "bank"), 0);
    CHECK_RC(factum_readmodel_wait(m, "bank", p2, 60000), 0);
    /* The state survives a reopen: generation 3, running. */
    factum_readmodels_close(m);
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
    CHECK_EQ_U64(st.generation, 3);
    CHECK_RC(factum_readmodel_drop(m, "bank"), 0);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), FACTUM_ENOTFOUND);
    CHECK(access(path, F_OK) != 0);
    factum_readmodels_close(m);
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &st), FACTUM_ENOTFOUND);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* Inline: after an acknowledged append, a query sees it, every time. */
typedef struct writer_arg {
    factum_store *s;
    factum_readmodels *m;
    int id, n, misses;
} writer_arg;

static void *inline_writer(void *p)
{
    writer_arg *a = p;
    for (int k = 1; k <= a->n; k++) {
        money(a->s, a->id, "Deposited", 1);
        char params[64], *out = NULL, want[64];
        snprintf(params, sizeof params, "{\"id\":\"a%d\"}", a->id);
        if (factum_readmodel_query(a->m, "bank", "SELECT n FROM acc WHERE id = :id", params, NULL, &out, NULL, 0)) {
            a->misses++;
            continue;
        }
        snprintf(want, sizeof want, "[[%d]]", k);
        if (!strstr(out, want)) a->misses++;
        free(out);
    }
    return NULL;
}

static void t_inline(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-inline");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    char err[512];
    const char *d = def_with(",\"lifecycle\":\"inline\"");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    uint64_t p = 0;
    for (int i = 0; i < 4; i++)
        p = opened(s, i);
    CHECK_RC(factum_readmodel_wait(m, "bank", p, 60000), 0);
    factum_readmodel_status st;
    for (int i = 0; i < 3000 && (factum_readmodel_get_status(m, "bank", &st), !st.live); i++)
        usleep(10000);
    CHECK(st.live);
    pthread_t th[4];
    writer_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (writer_arg){s, m, i, 200, 0};
        pthread_create(&th[i], NULL, inline_writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(a[i].misses == 0);
    }
    /* Paused: appends are not held. */
    CHECK_RC(factum_readmodel_pause(m, "bank"), 0);
    money(s, 0, "Deposited", 1);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* A rebuild while writers append: the new generation has every event. */
static void *rebuild_writer(void *p)
{
    writer_arg *a = p;
    for (int k = 0; k < a->n; k++)
        money(a->s, a->id, "Deposited", 1);
    return NULL;
}

static void t_rebuild_under_load(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-rebuild");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    factum_readmodels_options o;
    factum_readmodels_options_init(&o);
    o.batch_events = 100;
    CHECK_RC(factum_readmodels_open(s, &o, &m), 0);
    for (int i = 0; i < 4; i++)
        opened(s, i);
    char err[512];
    const char *d = def_with("");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    uint64_t before = 0;
    for (int k = 0; k < 3000; k++)
        before = money(s, k % 4, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", before, 60000), 0); /* so that there is something to serve */
    pthread_t th[2];
    writer_arg a[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (writer_arg){s, m, i, 1500, 0};
        pthread_create(&th[i], NULL, rebuild_writer, &a[i]);
    }
    CHECK_RC(factum_readmodel_rebuild(m, "bank", NULL, 0, err, sizeof err), 0);
    factum_readmodel_status st;
    time_t until = time(NULL) + 60; /* generous: a loaded machine */
    while (time(NULL) < until) {
        CHECK_RC(factum_readmodel_get_status(m, "bank", &st), 0);
        if (st.generation == 2) break;
        /* Queries keep being served meanwhile. */
        char *out = query(m, "bank", "SELECT count(*) FROM acc", NULL);
        CHECK(has(out, "[[4]]"));
        if (!out || !strstr(out, "[[4]]"))
            fprintf(stderr, "  status: state %d, generation %" PRIu64 ", position %" PRIu64 ", building %" PRIu64
                            " at %" PRIu64 ", error '%s'\n",
                    st.state, st.generation, st.position, st.building, st.building_position, st.error);
        free(out);
        usleep(5000);
    }
    CHECK_EQ_U64(st.generation, 2);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    uint64_t last = money(s, 3, "Deposited", 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", last, 60000), 0);
    char *out = query(m, "bank", "SELECT sum(n), sum(balance) FROM acc", NULL);
    CHECK(has(out, "[[6001,6001]]"));
    free(out);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

static void wait_cb(void *ctx, int rc)
{
    int *p = ctx;
    __atomic_store_n(p, rc == 0 ? 1 : rc, __ATOMIC_SEQ_CST);
}

static void t_waits(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-wait");
    factum_store *s = open_store();
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    char err[512];
    const char *d = def_with("");
    CHECK_RC(factum_readmodel_create(m, d, strlen(d), err, sizeof err), 0);
    uint64_t p = opened(s, 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", p, 60000), 0);
    /* A position not written yet: times out after about the timeout. */
    uint64_t t0 = (uint64_t)time(NULL);
    CHECK_RC(factum_readmodel_wait(m, "bank", p + 5, 300), FACTUM_ETIMEDOUT);
    CHECK((uint64_t)time(NULL) - t0 < 5);
    CHECK_RC(factum_readmodel_wait(m, "nope", 1, 10), FACTUM_ENOTFOUND);
    /* Asynchronous: reached already, later, and cancelled. */
    factum_readmodel_waiter *w = NULL;
    int fired = 0, fired2 = 0;
    CHECK_RC(factum_readmodel_wait_async(m, "bank", p, wait_cb, &fired, &w), 1);
    CHECK_RC(factum_readmodel_wait_async(m, "bank", p + 1, wait_cb, &fired, &w), 0);
    factum_readmodel_waiter *w2 = NULL;
    CHECK_RC(factum_readmodel_wait_async(m, "bank", p + 100, wait_cb, &fired2, &w2), 0);
    money(s, 1, "Deposited", 1);
    for (int i = 0; i < 3000 && !__atomic_load_n(&fired, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    CHECK(fired == 1);
    CHECK_RC(factum_readmodel_wait_cancel(m, w2), 1);
    CHECK(fired2 == 0);
    /* A query that waits for a position first. */
    factum_query_options qo;
    factum_query_options_init(&qo);
    qo.min_position = p + 50;
    qo.wait_ms = 100;
    char *out = NULL;
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT 1", NULL, &qo, &out, err, sizeof err), FACTUM_ETIMEDOUT);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

/* GATE-1: an acknowledgement gate holds appends until released. */
typedef struct gate_arg {
    factum_store *s;
    int done;
} gate_arg;

static void *gate_writer(void *p)
{
    gate_arg *a = p;
    money(a->s, 1, "Deposited", 1);
    __atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void t_gate(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-gate");
    factum_store *s = open_store();
    uint64_t p = opened(s, 1);
    factum_ack_gate *g = NULL;
    CHECK_RC(factum_ack_gate_add(s, p, &g), 0);
    gate_arg a = {s, 0};
    pthread_t th;
    pthread_create(&th, NULL, gate_writer, &a);
    CHECK(factum_wait_for_position(s, p, 5000) == 1); /* committed and readable ... */
    usleep(100000);
    CHECK(__atomic_load_n(&a.done, __ATOMIC_SEQ_CST) == 0); /* ... but not acknowledged */
    factum_ack_gate_release(g, p + 1);
    pthread_join(th, NULL);
    CHECK(a.done == 1);
    /* A failed append is not held. */
    factum_event_data e = {0};
    e.type = "X";
    CHECK_RC(factum_append(s, "account-1", 0, &e, 1, NULL), FACTUM_EWRONGVERSION);
    /* Removing the gate lets what it held go. */
    a.done = 0;
    pthread_create(&th, NULL, gate_writer, &a);
    CHECK(factum_wait_for_position(s, p + 1, 5000) == 1);
    factum_ack_gate_remove(g);
    pthread_join(th, NULL);
    CHECK(a.done == 1);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

int main(void)
{
    pg = getenv("FACTUM_TEST_PG");
    if (pg && *pg)
        snprintf(pg_target, sizeof pg_target, ",\"target\":{\"type\":\"postgres\",\"connection\":\"%s\"}", pg);
    else
        pg = NULL;
    printf("target: %s\n", pg ? "postgres" : "sqlite");
    RUN(t_gate);
    RUN(t_bad_definitions);
    RUN(t_apply_query_reopen);
    RUN(t_policies);
    RUN(t_waits);
    RUN(t_inline);
    RUN(t_rebuild_under_load);
    return harness_done();
}
