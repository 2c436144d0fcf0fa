/* Crash test of the read models (src/rm, RM-2, RM-3, RM-5): a child
 * process appends random bank events while a read model applies them
 * (async or inline, chosen per cycle), and is killed with SIGKILL at a
 * random moment, cycle after cycle; a cycle may also start a rebuild that
 * the next kill interrupts. At the end the read model catches up, and its
 * table must equal
 *   - the balances computed here from the log alone (every event's effect
 *     once: `n` counts the events of each account, so a doubled or lost
 *     event shows), and
 *   - the table of a second read model built once, uninterrupted, over the
 *     same log.
 * When the JavaScript worker is there (FACTUM_JS_WORKER), a third read model
 * applies the same events with JavaScript handlers (src/rm/js.c: its
 * statements come from the script, its worker dies with the process) and
 * must end with the same table.
 * SQLite by default; PostgreSQL with FACTUM_TEST_PG (tests/lib/with-postgres.sh).
 * FACTUM_RM_CRASH_CYCLES sets the cycles (default 12); the seed is printed
 * (FACTUM_SEED replays the choices, not the timing). */
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>

#include "factum_readmodel.h"

#define ACCOUNTS 20

static char dir[512];
static const char *pg;
static int with_js; /* the JavaScript worker is there: also "bankjs" */

static void definition(char *buf, size_t n, const char *name, int inl, const char *extra)
{
    char target[512] = "";
    if (pg) snprintf(target, sizeof target, ",\"target\":{\"type\":\"postgres\",\"connection\":\"%s\"}", pg);
    snprintf(buf, n,
             "{\"name\":\"%s\"%s,\"lifecycle\":\"%s\",\"streams\":[\"acct-\"],"
             "\"schema\":\"CREATE TABLE acc(id TEXT PRIMARY KEY, balance BIGINT NOT NULL, n BIGINT NOT NULL)\","
             "\"handlers\":{\"Opened\":\"INSERT INTO acc VALUES (:data.id, 0, 1)\","
             "\"Moved\":[\"UPDATE acc SET balance = balance + :data.amount WHERE id = :data.id\","
             "\"UPDATE acc SET n = n + 1 WHERE id = :data.id\"]}%s}",
             name, target, inl ? "inline" : "async", extra);
}

/* The same read model with JavaScript handlers for Moved. */
static void definition_js(char *buf, size_t n, const char *name)
{
    char target[512] = "";
    if (pg) snprintf(target, sizeof target, ",\"target\":{\"type\":\"postgres\",\"connection\":\"%s\"}", pg);
    snprintf(buf, n,
             "{\"name\":\"%s\"%s,\"streams\":[\"acct-\"],"
             "\"schema\":\"CREATE TABLE acc(id TEXT PRIMARY KEY, balance BIGINT NOT NULL, n BIGINT NOT NULL)\","
             "\"handlers\":{\"Opened\":\"INSERT INTO acc VALUES (:data.id, 0, 1)\"},"
             "\"script\":\"({ Moved(e) {\\n"
             "  sql('UPDATE acc SET balance = balance + :a WHERE id = :id', {a: e.data.amount, id: e.data.id});\\n"
             "  sql('UPDATE acc SET n = n + 1 WHERE id = :id', {id: e.data.id});\\n"
             "} })\"}",
             name, target);
}

static void child(uint64_t seed, int cycle)
{
    h_rng r = {seed * 7919 + (uint64_t)cycle};
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED; /* a process crash loses nothing written */
    factum_store *s;
    /* The killed child's JavaScript worker may be between its spawn and its
     * exec for a moment, holding a copy of the lock's descriptor (closed at
     * exec): wait for it rather than call that a failed recovery. */
    int orc;
    for (int t = 0; (orc = factum_store_open(dir, &o, &s)) == FACTUM_ELOCKED && t < 500; t++)
        usleep(10000);
    if (orc) {
        fprintf(stderr, "  child %d: opening the store: %s\n", cycle, factum_strerror(orc));
        _exit(3);
    }
    factum_readmodels_options ro;
    factum_readmodels_options_init(&ro);
    ro.batch_events = 1 + (uint32_t)h_below(&r, 500);
    factum_readmodels *m;
    if (factum_readmodels_open(s, &ro, &m)) _exit(4);
    char def[2048], err[512];
    int inl = (int)h_below(&r, 2);
    definition(def, sizeof def, "bank", inl, "");
    int rebuild = h_below(&r, 3) == 0;
    if (rebuild && factum_readmodel_rebuild(m, "bank", def, strlen(def), err, sizeof err)) {
        fprintf(stderr, "rebuild: %s\n", err);
        _exit(5);
    }
    if (with_js && rebuild && factum_readmodel_rebuild(m, "bankjs", NULL, 0, err, sizeof err)) {
        fprintf(stderr, "rebuild bankjs: %s\n", err);
        _exit(5);
    }
    /* Open accounts once (idempotent: fixed ids per account). */
    for (int a = 0; a < ACCOUNTS; a++) {
        char stream[32], js[64];
        snprintf(stream, sizeof stream, "acct-%d", a);
        snprintf(js, sizeof js, "{\"id\":\"a%d\"}", a);
        factum_event_data e = {0};
        e.type = "Opened";
        e.flags = FACTUM_EVENT_JSON;
        e.data = js;
        e.data_len = strlen(js);
        factum_append(s, stream, FACTUM_NO_STREAM, &e, 1, NULL); /* exists: EWRONGVERSION, fine */
    }
    for (;;) {
        int a = (int)h_below(&r, ACCOUNTS), n = 1 + (int)h_below(&r, 3);
        char stream[32], js[3][64];
        factum_event_data e[3];
        memset(e, 0, sizeof e);
        snprintf(stream, sizeof stream, "acct-%d", a);
        for (int i = 0; i < n; i++) {
            snprintf(js[i], sizeof js[i], "{\"id\":\"a%d\",\"amount\":%d}", a, (int)h_below(&r, 200) - 100);
            e[i].type = "Moved";
            e[i].flags = FACTUM_EVENT_JSON;
            e[i].data = js[i];
            e[i].data_len = strlen(js[i]);
        }
        if (factum_append(s, stream, FACTUM_ANY, e, (size_t)n, NULL)) _exit(6);
        if (h_below(&r, 50) == 0) usleep(2000);
    }
}

/* The expected table from the log alone: "a<i>|balance|n" lines, sorted. */
static void expected(factum_store *s, int64_t *bal, int64_t *cnt)
{
    memset(bal, 0, ACCOUNTS * sizeof *bal);
    memset(cnt, 0, ACCOUNTS * sizeof *cnt);
    factum_event ev[256];
    uint64_t from = 0;
    for (;;) {
        size_t n = 0;
        uint64_t next = 0;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, ev, 256, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            if (strncmp(ev[i].stream, "acct-", 5)) continue;
            int a = atoi(ev[i].stream + 5);
            cnt[a]++;
            if (!strcmp(ev[i].type, "Moved")) {
                const char *p = strstr((const char *)ev[i].data, "\"amount\":");
                bal[a] += strtoll(p + 9, NULL, 10);
            }
        }
        if (!n) break;
        from = next;
    }
}

static char *table(factum_readmodels *m, const char *name)
{
    char *out = NULL, err[512];
    factum_query_options q;
    factum_query_options_init(&q);
    int rc = factum_readmodel_query(m, name, "SELECT id, balance, n FROM acc ORDER BY id", NULL, &q, &out, err,
                                    sizeof err);
    if (rc) fprintf(stderr, "  query %s: %s\n", name, err);
    CHECK_RC(rc, 0);
    return out;
}

static void t_kill9(void)
{
    harness_tmpdir(dir, sizeof dir, "rm-crash");
    uint64_t seed = harness_seed("rm_crash");
    h_rng r = {seed};
    int cycles = getenv("FACTUM_RM_CRASH_CYCLES") ? atoi(getenv("FACTUM_RM_CRASH_CYCLES")) : 12;
    {
        factum_store *s;
        factum_readmodels *m;
        REQUIRE(factum_store_open(dir, NULL, &s) == 0);
        REQUIRE(factum_readmodels_open(s, NULL, &m) == 0);
        char def[2048], err[512];
        definition(def, sizeof def, "bank", 0, "");
        CHECK_RC(factum_readmodel_create(m, def, strlen(def), err, sizeof err), 0);
        if (with_js) {
            definition_js(def, sizeof def, "bankjs");
            CHECK_RC(factum_readmodel_create(m, def, strlen(def), err, sizeof err), 0);
        }
        factum_readmodels_close(m);
        CHECK_RC(factum_store_close(s), 0);
    }
    for (int c = 0; c < cycles; c++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child(seed, c);
        usleep((useconds_t)(50000 + h_below(&r, 350000)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "  child exited with %d\n", WEXITSTATUS(status));
            return;
        }
    }
    factum_store *s;
    REQUIRE(factum_store_open(dir, NULL, &s) == 0);
    factum_readmodels *m;
    REQUIRE(factum_readmodels_open(s, NULL, &m) == 0);
    char def[2048], err[512];
    definition(def, sizeof def, "fresh", 0, "");
    CHECK_RC(factum_readmodel_create(m, def, strlen(def), err, sizeof err), 0);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    printf("%d cycles, %" PRIu64 " events\n", cycles, fs.last_position);
    CHECK_RC(factum_readmodel_wait(m, "bank", fs.last_position, 60000), 0);
    CHECK_RC(factum_readmodel_wait(m, "fresh", fs.last_position, 60000), 0);
    if (with_js) CHECK_RC(factum_readmodel_wait(m, "bankjs", fs.last_position, 60000), 0);
    int64_t bal[ACCOUNTS], cnt[ACCOUNTS];
    expected(s, bal, cnt);
    char want[4096] = "[";
    /* Sorted as text: a0, a1, a10, a11, ... */
    char ids[ACCOUNTS][8];
    for (int a = 0; a < ACCOUNTS; a++)
        snprintf(ids[a], sizeof ids[a], "a%d", a);
    qsort(ids, ACCOUNTS, sizeof ids[0], (int (*)(const void *, const void *))strcmp);
    for (int k = 0; k < ACCOUNTS; k++) {
        int a = atoi(ids[k] + 1);
        char row[96];
        snprintf(row, sizeof row, "%s[\"a%d\",%" PRId64 ",%" PRId64 "]", k ? "," : "", a, bal[a], cnt[a]);
        strcat(want, row);
    }
    strcat(want, "]");
    char *t1 = table(m, "bank"), *t2 = table(m, "fresh");
    CHECK(t1 && strstr(t1, want));
    CHECK(t2 && strstr(t2, want));
    if (t1 && !strstr(t1, want)) fprintf(stderr, "  want %s\n  got  %.4000s\n", want, t1);
    free(t1);
    free(t2);
    if (with_js) {
        char *t3 = table(m, "bankjs");
        CHECK(t3 && strstr(t3, want));
        if (t3 && !strstr(t3, want)) fprintf(stderr, "  want %s\n  got  %.4000s (bankjs)\n", want, t3);
        free(t3);
        factum_readmodel_drop(m, "bankjs");
    }
    factum_readmodel_drop(m, "fresh");
    factum_readmodel_drop(m, "bank");
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir); /* kept for a look when it failed */
}

int main(void)
{
    pg = getenv("FACTUM_TEST_PG");
    if (pg && !*pg) pg = NULL;
    with_js = getenv("FACTUM_JS_WORKER") && *getenv("FACTUM_JS_WORKER");
    printf("target: %s%s\n", pg ? "postgres" : "sqlite", with_js ? ", with JavaScript handlers" : "");
    RUN(t_kill9);
    return harness_done();
}
