/*
 * app_consumer.c - idempotent consumers (factum_app.h, src/cqrs/consumer.c)
 * killed with SIGKILL while they handle events, again and again, then
 * restarted: each event's effect exists exactly once, in both modes:
 *   (a) the effect is a row of the application's SQLite database, written
 *       in the transaction that stores the checkpoint (CN-1);
 *   (b) the effect is an append to the store with an id derived from the
 *       source event; the checkpoint is kept in the store (CN-2).
 * Between kills the parent appends more source events (the store is
 * locked by one process: the child owns it while it runs). Randomised; the
 * seed is printed (FACTUM_SEED replays it).
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "factum_app.h"
#include "harness.h"

static char dir[512], dbpath[600];

static int effect_sql(void *ctx, struct sqlite3 *db, const factum_event *ev)
{
    (void)ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO effects(stream, version) VALUES (?1, ?2)", -1, &st, NULL) !=
        SQLITE_OK)
        return FACTUM_ETARGET;
    sqlite3_bind_text(st, 1, ev->stream, (int)ev->stream_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->version);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    usleep(150); /* widen the window a kill can land in */
    return r == SQLITE_DONE ? 0 : FACTUM_ETARGET;
}

static factum_store *g_store;

static int effect_append(void *ctx, struct sqlite3 *db, const factum_event *ev)
{
    (void)ctx, (void)db;
    char buf[1200];
    int n = snprintf(buf, sizeof buf, "{\"source\":\"%.*s\",\"version\":%" PRIu64 "}", (int)ev->stream_len,
                     ev->stream, ev->version);
    factum_event_data e = {0};
    e.type = "Effect";
    e.flags = FACTUM_EVENT_JSON;
    e.data = buf;
    e.data_len = (size_t)n;
    e.has_id = 1;
    factum_consumer_effect_id("ledger", ev, 0, e.id);
    usleep(150);
    return factum_append(g_store, "ledger", FACTUM_ANY, &e, 1, NULL);
}

static const char *const prefixes[] = {"order-"};

/* The child: both consumers until both reached the end; exit 0. */
static void child(void)
{
    factum_store *s;
    factum_options so;
    harness_small_opts(&so);
    /* a kill -9 of the process loses nothing written (the page cache keeps it):
     * relaxed mode leaves the time to the handlers, where the kills should land */
    so.durability = FACTUM_RELAXED;
    if (factum_store_open(dir, &so, &s)) _exit(3);
    g_store = s;
    sqlite3 *db;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK) _exit(4);
    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS effects(stream TEXT, version INTEGER)", NULL, NULL, NULL);
    factum_filter *f;
    if (factum_filter_new(FACTUM_FILTER_STREAM, prefixes, 1, NULL, 1, &f)) _exit(5);
    factum_consumer_options oa, ob;
    factum_consumer_options_init(&oa);
    oa.name = "rows";
    oa.filter = f;
    oa.db = db;
    oa.handle = effect_sql;
    oa.batch_events = 16;
    factum_consumer_options_init(&ob);
    ob.name = "ledger";
    ob.filter = f;
    ob.handle = effect_append;
    ob.batch_events = 16;
    factum_consumer *ca, *cb;
    if (factum_consumer_open(s, &oa, &ca) || factum_consumer_open(s, &ob, &cb)) _exit(6);
    /* done when both checkpoints reached the last order event */
    factum_event last;
    size_t n;
    if (factum_read_all(s, FACTUM_END, FACTUM_BACKWARD, f, 0, &last, 1, &n, NULL) || !n) _exit(8);
    while (factum_consumer_checkpoint(ca) == FACTUM_END || factum_consumer_checkpoint(ca) < last.position ||
           factum_consumer_checkpoint(cb) == FACTUM_END || factum_consumer_checkpoint(cb) < last.position) {
        if (factum_consumer_poll(ca, 10, NULL) || factum_consumer_poll(cb, 10, NULL)) _exit(7);
    }
    factum_consumer_close(ca);
    factum_consumer_close(cb);
    factum_filter_free(f);
    sqlite3_close(db);
    factum_store_close(s);
    _exit(0);
}

static void add_orders(h_rng *r, int n, int *total)
{
    factum_store *s;
    factum_options o;
    harness_small_opts(&o); /* small segments: opening is quick, the kills land in the handlers */
    if (factum_store_open(dir, &o, &s)) return;
    for (int i = 0; i < n; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "order-%d", (int)h_below(r, 20));
        factum_event_data e = harness_event("OrderPlaced", "{\"total\":1}");
        if (factum_append(s, stream, FACTUM_ANY, &e, 1, NULL) == 0) (*total)++;
        if (h_below(r, 8) == 0) {
            factum_event_data x = harness_event("Other", "{}");
            factum_append(s, "customer-1", FACTUM_ANY, &x, 1, NULL); /* not matched by the filter */
        }
    }
    factum_store_close(s);
}

static void t_kill9(void)
{
    uint64_t seed = harness_seed("consumer kill -9");
    h_rng r = {seed};
    harness_tmpdir(dir, sizeof dir, "app-consumer");
    snprintf(dbpath, sizeof dbpath, "%s.sqlite", dir);
    unlink(dbpath);
    int total = 0, killed_busy = 0;
    add_orders(&r, 300, &total);
    int cycles = getenv("FACTUM_CONSUMER_CYCLES") ? atoi(getenv("FACTUM_CONSUMER_CYCLES")) : 20;
    for (int c = 0; c < cycles; c++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child();
        usleep((useconds_t)(30000 + h_below(&r, 200000)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status))
            killed_busy++;
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (getenv("APP_CONSUMER_DEBUG")) { /* how far each run got */
            sqlite3 *db;
            sqlite3_stmt *st;
            if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
                sqlite3_prepare_v2(db, "SELECT count(*) FROM effects", -1, &st, NULL) == SQLITE_OK) {
                if (sqlite3_step(st) == SQLITE_ROW)
                    printf("  cycle %d: %d rows\n", c, sqlite3_column_int(st, 0));
                sqlite3_finalize(st);
            }
            sqlite3_close(db);
        }
        add_orders(&r, 80 + (int)h_below(&r, 200), &total);
    }
    /* a last run to the end, not killed */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) child();
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("  %d source events, %d of %d runs killed while working\n", total, killed_busy, cycles);
    CHECK(killed_busy > 0);

    /* (a): one row per source event */
    sqlite3 *db;
    REQUIRE(sqlite3_open(dbpath, &db) == SQLITE_OK);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT stream || '/' || version) FROM effects",
                               -1, &st, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    int rows = sqlite3_column_int(st, 0), distinct = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("  mode a: %d rows, %d distinct\n", rows, distinct);
    CHECK(rows == total && distinct == total);

    /* (b): one ledger event per source event */
    factum_store *s;
    REQUIRE(factum_store_open(dir, NULL, &s) == 0);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "ledger", &info), 0);
    printf("  mode b: %" PRId64 " ledger events\n", info.last_version + 1);
    CHECK(info.last_version + 1 == total);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) {
        harness_rm_rf(dir);
        unlink(dbpath);
    }
}

int main(void)
{
    RUN(t_kill9);
    return harness_done();
}
