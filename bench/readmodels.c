/*
 * readmodels.c - SQL read models (issue 13, include/factum_readmodel.h),
 * embedded, over a bank-accounts workload: streams `account-<n>` (10,000
 * accounts), events AccountOpened {id, owner}, Deposited {id, amount, day}
 * and Withdrawn {id, amount, day} (~200 bytes of JSON data, ~110 of
 * metadata, as BENCH.md's), and the read model `balances`: a table
 * balances(id, owner, balance, version) and a table daily_totals(day,
 * deposited, withdrawn, events), one statement per AccountOpened and two per
 * money event.
 *
 *   FILL   the source store: N events (default 1,000,000; --quick 100,000)
 *          appended in RELAXED durability (setup, not measured), runs of
 *          1-8 events to one random account; writes DIR/expect.json (the
 *          totals the tables must hold, computed by the generator),
 *          DIR/head (the last position) for bench/readmodels/baseline.js
 *          and DIR/balances.json (the definition) for factumd.js
 *   RM1    catch-up into SQLite: on a copy of the source (opened durable),
 *          create the read model and time until it has applied the head;
 *          then check its tables against the generator's totals
 *   RM2    the same into PostgreSQL (--pg CONNINFO or $FACTUM_BENCH_PG)
 *   RYOW   read-your-own-writes: a durable append of one event, then
 *          factum_readmodel_wait for its position; p50/p99 of append ->
 *          wait returns, and of the wait alone
 *   RMINL  the cost of an inline read model: W1 (one thread, single-event
 *          durable appends) and W3 (16 threads) without and with an inline
 *          read model (SQLite), in three alternating rounds: the ratio of the
 *          medians with / without, and W1's latency per append
 *   RMLAG  W3 while the async read model follows (SQLite; RMLAGPG:
 *          PostgreSQL): status.lag_events and lag_ns sampled every
 *          millisecond, p50/p99, and how long after the last append it has
 *          applied everything
 *
 * Usage: factum-bench-readmodels [--events N] [--quick] [--pg CONNINFO]
 *          [--only FILL,RM1,RM2,RYOW,RMINL,RMLAG,RMLAGPG] DIR
 * Each workload prints a Markdown row and "@ factum WORKLOAD metric value"
 * lines (bench/README.md). Durable (fdatasync before each acknowledgement)
 * everywhere but FILL and the setup of each store (opening the accounts).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "factum.h"
#include "factum_readmodel.h"

#define ACCOUNTS 10000

static const char *base_dir;
static const char *pg_conninfo;
static int quick;
static uint64_t n_events = 1000000;

static uint64_t rnd_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    uint64_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rnd_state = x;
}

static void die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "%s: %s%s%s\n", what, factum_strerror(rc), err && err[0] ? ": " : "", err ? err : "");
    exit(1);
}

__attribute__((format(printf, 1, 2))) static void shell(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd)) {
        fprintf(stderr, "%s failed\n", cmd);
        exit(1);
    }
}

/* ---- the events ---------------------------------------------------------- */

typedef struct evbuf {
    char data[320], meta[200];
    factum_event_data ev;
} evbuf;

static const char *DESCRIPTION = "Deposit at branch 042, counter 7, teller Ms. J. Smith";

/* Day of year d (0..365) of 2024 as "2024-MM-DD". */
static void day_text(unsigned d, char out[11])
{
    static const unsigned len[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned m = 0;
    d %= 366;
    while (d >= len[m])
        d -= len[m++];
    memcpy(out, "2024-MM-DD", 11);
    out[5] = (char)('0' + (m + 1) / 10);
    out[6] = (char)('0' + (m + 1) % 10);
    out[8] = (char)('0' + (d + 1) / 10);
    out[9] = (char)('0' + (d + 1) % 10);
}

static void set_meta(evbuf *b)
{
    uint8_t u[16];
    char cs[37], ks[37];
    factum_uuid_v4(u);
    factum_uuid_format(u, cs);
    factum_uuid_v4(u);
    factum_uuid_format(u, ks);
    int ml = snprintf(b->meta, sizeof b->meta, "{\"$correlationId\":\"%s\",\"$causationId\":\"%s\",\"user\":\"alice\"}",
                      cs, ks);
    b->ev.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
    b->ev.data = b->data;
    b->ev.metadata = b->meta;
    b->ev.metadata_len = (size_t)ml;
    factum_uuid_v4(b->ev.id);
    b->ev.has_id = 1;
}

static void make_opened(evbuf *b, uint64_t acct)
{
    memset(&b->ev, 0, sizeof b->ev);
    int dl = snprintf(b->data, sizeof b->data,
                      "{\"id\":\"account-%" PRIu64 "\",\"owner\":\"owner-%" PRIu64
                      "\",\"currency\":\"EUR\",\"branch\":\"042\",\"kind\":\"current\","
                      "\"description\":\"Opened at branch 042, counter 7, by Ms. J. Smith\"}",
                      acct, acct);
    b->ev.type = "AccountOpened";
    b->ev.data_len = (size_t)dl;
    set_meta(b);
}

static void make_money(evbuf *b, uint64_t acct, int withdraw, uint64_t amount, unsigned day, uint64_t n)
{
    char d[11];
    day_text(day, d);
    memset(&b->ev, 0, sizeof b->ev);
    int dl = snprintf(b->data, sizeof b->data,
                      "{\"id\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                      ",\"day\":\"%s\",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                      "\",\"description\":\"%s\"}",
                      acct, amount, d, n, DESCRIPTION);
    b->ev.type = withdraw ? "Withdrawn" : "Deposited";
    b->ev.data_len = (size_t)dl;
    set_meta(b);
}

/* What the generator knows the tables must hold. */
typedef struct totals {
    int64_t accounts, balance, versions, deposited, withdrawn, events;
} totals;

static factum_store *open_store(const char *name, int fresh, int durability)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, name);
    if (fresh) shell("rm -rf '%s'", dir);
    factum_options o;
    factum_options_init(&o);
    o.durability = durability;
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) die(dir, rc, NULL);
    return s;
}

static char *definition(const char *target, const char *lifecycle);

/* FILL: the source store and what its read model must hold. */
static void fill(void)
{
    factum_store *s = open_store("source", 1, FACTUM_RELAXED);
    static int64_t balance[ACCOUNTS], version[ACCOUNTS];
    for (size_t i = 0; i < ACCOUNTS; i++)
        version[i] = -1;
    totals t = {0};
    static evbuf b[8];
    factum_event_data ev[8];
    uint64_t t0 = now_ns(), n = 0;
    while (n < n_events) {
        uint64_t acct = rnd() % ACCOUNTS;
        size_t k = 1 + rnd() % 8;
        if (k > n_events - n) k = (size_t)(n_events - n);
        for (size_t j = 0; j < k; j++, n++) {
            if (version[acct] + (int64_t)j < 0) {
                make_opened(&b[j], acct);
                t.accounts++;
            } else {
                uint64_t amount = 1 + rnd() % 5000;
                int withdraw = rnd() % 3 == 0 && balance[acct] >= (int64_t)amount;
                make_money(&b[j], acct, withdraw, amount, (unsigned)(rnd() % 366), n);
                balance[acct] += withdraw ? -(int64_t)amount : (int64_t)amount;
                *(withdraw ? &t.withdrawn : &t.deposited) += (int64_t)amount;
                t.events++;
            }
            ev[j] = b[j].ev;
        }
        factum_append_result r;
        char stream[32];
        snprintf(stream, sizeof stream, "account-%" PRIu64, acct);
        int rc = factum_append(s, stream, version[acct] < 0 ? FACTUM_NO_STREAM : version[acct], ev, k, &r);
        if (rc) die("fill: append", rc, NULL);
        version[acct] = (int64_t)r.last_version;
    }
    for (size_t i = 0; i < ACCOUNTS; i++)
        if (version[i] >= 0) {
            t.balance += balance[i];
            t.versions += version[i];
        }
    factum_stats st;
    factum_store_get_stats(s, &st);
    double secs = (double)(now_ns() - t0) / 1e9;
    factum_store_close(s);
    char path[600];
    snprintf(path, sizeof path, "%s/expect.json", base_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f,
            "{\"accounts\":%" PRId64 ",\"balance\":%" PRId64 ",\"versions\":%" PRId64 ",\"deposited\":%" PRId64
            ",\"withdrawn\":%" PRId64 ",\"events\":%" PRId64 "}\n",
            t.accounts, t.balance, t.versions, t.deposited, t.withdrawn, t.events);
    fclose(f);
    snprintf(path, sizeof path, "%s/balances.json", base_dir); /* for bench/readmodels/factumd.js */
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "%s\n", definition("\"sqlite\"", "async"));
    fclose(f);
    snprintf(path, sizeof path, "%s/head", base_dir);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "%" PRIu64 "\n", st.last_position);
    fclose(f);
    printf("| FILL | %" PRIu64 " events in %" PRId64 " accounts (relaxed durability: setup) | %.0f ev/s | head %" PRIu64
           "; %" PRId64 " money events |\n",
           n, t.accounts, (double)n / secs, st.last_position, t.events);
    fflush(stdout);
}

/* ---- the read model ------------------------------------------------------ */

/* Its definition: target is "\"sqlite\"" or a PostgreSQL target object. */
static char *definition(const char *target, const char *lifecycle)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"name\":\"balances\",\"target\":%s,\"lifecycle\":\"%s\",\"onError\":\"stop\","
             "\"streams\":[\"account-\"],"
             "\"schema\":["
             "\"CREATE TABLE balances(id TEXT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL, "
             "version BIGINT NOT NULL)\","
             "\"CREATE TABLE daily_totals(day TEXT PRIMARY KEY, deposited BIGINT NOT NULL, withdrawn BIGINT NOT "
             "NULL, events BIGINT NOT NULL)\"],"
             "\"handlers\":{"
             "\"AccountOpened\":\"INSERT INTO balances(id, owner, balance, version) VALUES (:data.id, :data.owner, "
             "0, :version)\","
             "\"Deposited\":[\"UPDATE balances SET balance = balance + :data.amount, version = :version WHERE id = "
             ":data.id\","
             "\"INSERT INTO daily_totals(day, deposited, withdrawn, events) VALUES (:data.day, :data.amount, 0, 1) "
             "ON CONFLICT(day) DO UPDATE SET deposited = daily_totals.deposited + excluded.deposited, events = "
             "daily_totals.events + 1\"],"
             "\"Withdrawn\":[\"UPDATE balances SET balance = balance - :data.amount, version = :version WHERE id = "
             ":data.id\","
             "\"INSERT INTO daily_totals(day, deposited, withdrawn, events) VALUES (:data.day, 0, :data.amount, 1) "
             "ON CONFLICT(day) DO UPDATE SET withdrawn = daily_totals.withdrawn + excluded.withdrawn, events = "
             "daily_totals.events + 1\"]}}",
             target, lifecycle);
    return buf;
}

static const char *pg_target(void)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "{\"type\":\"postgres\",\"connection\":\"%s\"}", pg_conninfo);
    return buf;
}

static factum_readmodels *open_models(factum_store *s)
{
    factum_readmodels_options o;
    factum_readmodels_options_init(&o);
    factum_readmodels *m;
    int rc = factum_readmodels_open(s, &o, &m);
    if (rc) die("factum_readmodels_open", rc, NULL);
    return m;
}

static void create(factum_readmodels *m, const char *def)
{
    char err[512] = "";
    int rc = factum_readmodel_create(m, def, strlen(def), err, sizeof err);
    if (rc) die("factum_readmodel_create", rc, err);
}

/* A PostgreSQL target outlives the store: drop its schema, so that the
 * next workload creates `balances` afresh. */
static void drop_pg(factum_readmodels *m, const char *target)
{
    if (target[0] != '{') return;
    int rc = factum_readmodel_drop(m, "balances");
    if (rc) die("factum_readmodel_drop", rc, NULL);
}

/* Until the read model has reached the head once (an inline one holds
 * appends only then). */
static void wait_live(factum_readmodels *m)
{
    for (;;) {
        factum_readmodel_status st;
        int rc = factum_readmodel_get_status(m, "balances", &st);
        if (rc) die("status", rc, NULL);
        if (st.state == FACTUM_READMODEL_FAULTED) die("balances faulted", FACTUM_EFAULTED, st.error);
        if (st.live && st.position >= st.head) return;
        usleep(1000);
    }
}

/* The integers of the first row of a query's JSON answer. */
static size_t first_row(const char *json, int64_t *v, size_t max)
{
    const char *p = strstr(json, "\"rows\":[[");
    size_t n = 0;
    if (!p) return 0;
    p += 9;
    while (n < max && *p && *p != ']') {
        char *end;
        v[n++] = strtoll(p, &end, 10);
        p = end;
        while (*p && *p != ',' && *p != ']')
            p++;
        if (*p == ',') p++;
    }
    return n;
}

static void query_row(factum_readmodels *m, const char *sql, int64_t *v, size_t n)
{
    char *out = NULL, err[512] = "";
    factum_query_options o;
    factum_query_options_init(&o);
    int rc = factum_readmodel_query(m, "balances", sql, NULL, &o, &out, err, sizeof err);
    if (rc) die(sql, rc, err);
    if (first_row(out, v, n) != n) {
        fprintf(stderr, "%s: unexpected answer %.300s\n", sql, out);
        exit(1);
    }
    free(out);
}

/* Check the tables against the generator's totals (DIR/expect.json). */
static void check(factum_readmodels *m, const char *w)
{
    char path[600], buf[1024];
    snprintf(path, sizeof path, "%s/expect.json", base_dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        fprintf(stderr, "%s: cannot read %s\n", w, path);
        exit(1);
    }
    fclose(f);
    static const char *keys[6] = {"accounts", "balance", "versions", "deposited", "withdrawn", "events"};
    int64_t want[6], got[6];
    for (int i = 0; i < 6; i++) {
        char k[32];
        snprintf(k, sizeof k, "\"%s\":", keys[i]);
        const char *p = strstr(buf, k);
        if (!p) {
            fprintf(stderr, "%s: %s lacks %s\n", w, path, keys[i]);
            exit(1);
        }
        want[i] = strtoll(p + strlen(k), NULL, 10);
    }
    query_row(m, "SELECT count(*), sum(balance), sum(version) FROM balances", got, 3);
    query_row(m, "SELECT sum(deposited), sum(withdrawn), sum(events) FROM daily_totals", got + 3, 3);
    for (int i = 0; i < 6; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "%s: the tables hold %s %" PRId64 ", the generator says %" PRId64 "\n", w, keys[i], got[i],
                    want[i]);
            exit(1);
        }
    printf("%" PRId64 " accounts, balance %" PRId64 ", %" PRId64 " money events: as generated", got[0], got[1], got[5]);
}

/* ---- RM1 / RM2: catching up ---------------------------------------------- */

static void ensure_source(void)
{
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/expect.json", base_dir);
    if (stat(path, &sb)) fill();
}

static void catch_up(const char *w, const char *target)
{
    ensure_source();
    char dst[600], src[600];
    snprintf(src, sizeof src, "%s/source", base_dir);
    snprintf(dst, sizeof dst, "%s/%s", base_dir, w);
    shell("rm -rf '%s' && cp -a '%s' '%s' && sync", dst, src, dst);
    factum_store *s = open_store(w, 0, FACTUM_DURABLE);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    uint64_t last = fs.last_position;
    factum_readmodels *m = open_models(s);
    uint64_t t0 = now_ns();
    create(m, definition(target, "async"));
    int rc = factum_readmodel_wait(m, "balances", last, -1);
    if (rc) die("factum_readmodel_wait", rc, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    factum_readmodel_status st;
    factum_readmodel_get_status(m, "balances", &st);
    printf("| %s | read model `balances` (%s) catching up over %" PRIu64 " events | **%.0f ev/s** | %.2f s, %" PRIu64
           " events applied; ",
           w, st.target, last, (double)last / secs, secs, st.applied);
    check(m, w);
    printf(" |\n");
    result(w, "ev_per_s", (double)last / secs);
    fflush(stdout);
    drop_pg(m, target);
    factum_readmodels_close(m);
    factum_store_close(s);
}

/* A fresh durable store with the 10,000 accounts opened (in relaxed mode:
 * setup). */
static factum_store *accounts_store(const char *name)
{
    factum_store *s = open_store(name, 1, FACTUM_RELAXED);
    evbuf b;
    for (uint64_t a = 0; a < ACCOUNTS; a++) {
        char stream[32];
        snprintf(stream, sizeof stream, "account-%" PRIu64, a);
        make_opened(&b, a);
        int rc = factum_append(s, stream, FACTUM_NO_STREAM, &b.ev, 1, NULL);
        if (rc) die("accounts", rc, NULL);
    }
    factum_store_close(s);
    return open_store(name, 0, FACTUM_DURABLE);
}

/* ---- RYOW ------------------------------------------------------------------ */

static void ryow(void)
{
    size_t n = quick ? 2000 : 10000;
    factum_store *s = accounts_store("ryow");
    factum_readmodels *m = open_models(s);
    create(m, definition("\"sqlite\"", "async"));
    wait_live(m);
    uint64_t *total = malloc(n * sizeof *total), *wait = malloc(n * sizeof *wait);
    evbuf b;
    for (size_t i = 0; i < n; i++) {
        uint64_t acct = rnd() % ACCOUNTS;
        char stream[32];
        snprintf(stream, sizeof stream, "account-%" PRIu64, acct);
        make_money(&b, acct, 0, 100 + i % 900, (unsigned)(i % 366), i);
        factum_append_result r;
        uint64_t t0 = now_ns();
        int rc = factum_append(s, stream, FACTUM_ANY, &b.ev, 1, &r);
        if (rc) die("append", rc, NULL);
        uint64_t t1 = now_ns();
        rc = factum_readmodel_wait(m, "balances", r.last_position, 10000);
        if (rc) die("factum_readmodel_wait", rc, NULL);
        uint64_t t2 = now_ns();
        total[i] = t2 - t0;
        wait[i] = t2 - t1;
    }
    qsort(total, n, sizeof *total, cmp_u64);
    qsort(wait, n, sizeof *wait, cmp_u64);
    printf("| RYOW | durable append of one event, then factum_readmodel_wait for its position (SQLite), %zu times | "
           "**p50 %.0f / p99 %.0f µs** | the wait alone p50 %.0f / p99 %.0f µs |\n",
           n, pct(total, n, 50), pct(total, n, 99), pct(wait, n, 50), pct(wait, n, 99));
    result("RYOW", "p50_us", pct(total, n, 50));
    result("RYOW", "p99_us", pct(total, n, 99));
    result("RYOW", "wait_p50_us", pct(wait, n, 50));
    result("RYOW", "wait_p99_us", pct(wait, n, 99));
    latencies("RYOW", total, n);
    fflush(stdout);
    free(total);
    free(wait);
    factum_readmodels_close(m);
    factum_store_close(s);
}

/* ---- W1 / W3 loops (RMINL, RMLAG) ---------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct writer {
    factum_store *s;
    int t, n_threads;
    size_t n;
    uint64_t *lat; /* each append's latency (ns), if not NULL */
} writer;

static void *write_loop(void *p)
{
    writer *a = p;
    evbuf b;
    char name[32];
    uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(a->t + 1);
    for (size_t i = 0; i < a->n; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        /* client t on accounts = t (mod threads), as W3 */
        uint64_t acct = (r % (ACCOUNTS / (uint64_t)a->n_threads)) * (uint64_t)a->n_threads + (uint64_t)a->t;
        snprintf(name, sizeof name, "account-%" PRIu64, acct);
        make_money(&b, acct, 0, 100 + i % 900, (unsigned)(i % 366), i);
        uint64_t t0 = a->lat ? now_ns() : 0;
        int rc = factum_append(a->s, name, FACTUM_ANY, &b.ev, 1, NULL);
        if (rc) die("append", rc, NULL);
        if (a->lat) a->lat[i] = now_ns() - t0;
    }
    return NULL;
}

/* total single-event appends by `threads` threads: events per second.
 * lat (one thread only, may be NULL) receives each append's latency. */
static double write_run(factum_store *s, int threads, size_t total, uint64_t *lat)
{
    pthread_t th[16];
    writer a[16];
    uint64_t t0 = now_ns();
    for (int t = 0; t < threads; t++) {
        a[t] = (writer){s, t, threads, total / (size_t)threads, threads == 1 ? lat : NULL};
        pthread_create(&th[t], NULL, write_loop, &a[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    return (double)(total / (size_t)threads * (size_t)threads) / ((double)(now_ns() - t0) / 1e9);
}

/* ---- RMINL ----------------------------------------------------------------- */

/* Three rounds, each W1 (or W3) on a fresh store without a read model and
 * then on a fresh store with an inline one: the medians of the rounds (the
 * disk of a shared machine drifts; alternating keeps both sides in step). */
static void rminl(void)
{
    enum { ROUNDS = 3 };
    static const struct {
        const char *w;
        int threads;
        size_t n, n_quick;
    } runs[2] = {{"W1", 1, 30000, 3000}, {"W3", 16, 240000, 24000}};
    for (int i = 0; i < 2; i++) {
        size_t n = (quick ? runs[i].n_quick : runs[i].n) / ROUNDS;
        double alone[ROUNDS], with[ROUNDS];
        uint64_t *lat[2] = {NULL, NULL};
        size_t n_lat = runs[i].threads == 1 ? n * ROUNDS : 0;
        if (n_lat)
            for (int k = 0; k < 2; k++)
                lat[k] = malloc(n_lat * sizeof *lat[k]);
        for (int r = 0; r < ROUNDS; r++) {
            factum_store *s = accounts_store("rminl-alone");
            alone[r] = write_run(s, runs[i].threads, n, lat[0] ? lat[0] + (size_t)r * n : NULL);
            factum_store_close(s);

            s = accounts_store("rminl");
            factum_readmodels *m = open_models(s);
            create(m, definition("\"sqlite\"", "inline"));
            wait_live(m);
            with[r] = write_run(s, runs[i].threads, n, lat[1] ? lat[1] + (size_t)r * n : NULL);
            factum_readmodels_close(m);
            factum_store_close(s);
        }
        qsort(alone, ROUNDS, sizeof *alone, cmp_double);
        qsort(with, ROUNDS, sizeof *with, cmp_double);
        double a = alone[ROUNDS / 2], w = with[ROUNDS / 2];
        char lat_text[160] = "";
        if (n_lat) {
            for (int k = 0; k < 2; k++)
                qsort(lat[k], n_lat, sizeof *lat[k], cmp_u64);
            snprintf(lat_text, sizeof lat_text, "; per append p50 %.0f / p99 %.0f µs (without: %.0f / %.0f)",
                     pct(lat[1], n_lat, 50), pct(lat[1], n_lat, 99), pct(lat[0], n_lat, 50), pct(lat[0], n_lat, 99));
        }
        printf("| RMINL | %s (%d thread%s, %d × %zu durable single-event appends) with an inline read model (SQLite) / "
               "without | **%.2f** | %.0f / %.0f ev/s (medians of %d alternating rounds; with %.0f–%.0f, without "
               "%.0f–%.0f)%s |\n",
               runs[i].w, runs[i].threads, runs[i].threads > 1 ? "s" : "", ROUNDS, n, w / a, w, a, ROUNDS, with[0],
               with[ROUNDS - 1], alone[0], alone[ROUNDS - 1], lat_text);
        char metric[32];
        snprintf(metric, sizeof metric, "%s_ratio", runs[i].w);
        result("RMINL", metric, w / a);
        snprintf(metric, sizeof metric, "%s_with_ev_per_s", runs[i].w);
        result("RMINL", metric, w);
        snprintf(metric, sizeof metric, "%s_alone_ev_per_s", runs[i].w);
        result("RMINL", metric, a);
        if (n_lat) {
            result("RMINL", "W1_with_p50_us", pct(lat[1], n_lat, 50));
            result("RMINL", "W1_with_p99_us", pct(lat[1], n_lat, 99));
            result("RMINL", "W1_alone_p50_us", pct(lat[0], n_lat, 50));
            result("RMINL", "W1_alone_p99_us", pct(lat[0], n_lat, 99));
        }
        fflush(stdout);
        free(lat[0]);
        free(lat[1]);
    }
}

/* ---- RMLAG ----------------------------------------------------------------- */

typedef struct sampler {
    factum_readmodels *m;
    atomic_int stop;
    uint64_t *lag;
    int64_t *lag_ns;
    size_t n, cap;
} sampler;

static void *sample(void *p)
{
    sampler *sm = p;
    while (!atomic_load(&sm->stop) && sm->n < sm->cap) {
        factum_readmodel_status st;
        if (!factum_readmodel_get_status(sm->m, "balances", &st)) {
            sm->lag_ns[sm->n] = st.lag_ns;
            sm->lag[sm->n++] = st.lag_events;
        }
        usleep(1000);
    }
    return NULL;
}


static void rmlag(const char *w, const char *target)
{
    size_t total = quick ? 20000 : 200000;
    factum_store *s = accounts_store("rmlag");
    factum_readmodels *m = open_models(s);
    create(m, definition(target, "async"));
    wait_live(m);
    sampler sm = {m, 0, NULL, NULL, 0, 600000};
    sm.lag = malloc(sm.cap * sizeof *sm.lag);
    sm.lag_ns = malloc(sm.cap * sizeof *sm.lag_ns);
    pthread_t th;
    pthread_create(&th, NULL, sample, &sm);
    double rate = write_run(s, 16, total, NULL);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    uint64_t t_end = now_ns();
    int rc = factum_readmodel_wait(m, "balances", fs.last_position, -1);
    if (rc) die("factum_readmodel_wait", rc, NULL);
    double drain_ms = (double)(now_ns() - t_end) / 1e6;
    atomic_store(&sm.stop, 1);
    pthread_join(th, NULL);
    qsort(sm.lag, sm.n, sizeof *sm.lag, cmp_u64);
    qsort(sm.lag_ns, sm.n, sizeof *sm.lag_ns, cmp_i64);
#define P(v, cnt, p) ((cnt) ? (v)[(size_t)((p) / 100.0 * (double)((cnt)-1) + 0.5)] : 0)
    factum_readmodel_status st;
    factum_readmodel_get_status(m, "balances", &st);
    printf("| %s | W3 (16 threads, %zu durable single-event appends) with the async read model following (%s) | W3 "
           "%.0f ev/s | lag p50 %" PRIu64 " / p99 %" PRIu64 " / max %" PRIu64 " events; p50 %.2f / p99 %.2f / max "
           "%.2f ms (%zu samples); drained %.1f ms after the last append |\n",
           w, total, st.target, rate, P(sm.lag, sm.n, 50), P(sm.lag, sm.n, 99), sm.n ? sm.lag[sm.n - 1] : 0,
           (double)P(sm.lag_ns, sm.n, 50) / 1e6, (double)P(sm.lag_ns, sm.n, 99) / 1e6,
           sm.n ? (double)sm.lag_ns[sm.n - 1] / 1e6 : 0, sm.n, drain_ms);
    result(w, "w3_ev_per_s", rate);
    result(w, "lag_events_p50", (double)P(sm.lag, sm.n, 50));
    result(w, "lag_events_p99", (double)P(sm.lag, sm.n, 99));
    result(w, "lag_ms_p50", (double)P(sm.lag_ns, sm.n, 50) / 1e6);
    result(w, "lag_ms_p99", (double)P(sm.lag_ns, sm.n, 99) / 1e6);
    fflush(stdout);
    free(sm.lag);
    free(sm.lag_ns);
    drop_pg(m, target);
    factum_readmodels_close(m);
    factum_store_close(s);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--events N] [--quick] [--pg CONNINFO] [--only FILL,RM1,RM2,RYOW,RMINL,RMLAG,RMLAGPG] DIR\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    pg_conninfo = getenv("FACTUM_BENCH_PG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--pg") && i + 1 < argc)
            pg_conninfo = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof only, "%s", argv[++i]);
        else if (argv[i][0] != '-' && !base_dir)
            base_dir = argv[i];
        else
            usage(argv[0]);
    }
    if (!base_dir || n_events == 0) usage(argv[0]);
    if (quick && n_events == 1000000) n_events = 100000;
    if (pg_conninfo && strpbrk(pg_conninfo, "\"\\")) {
        fprintf(stderr, "--pg: no quotes or backslashes, please (it goes into a JSON string)\n");
        return 2;
    }
    mkdir(base_dir, 0755);
    printf("| workload | what | result | detail |\n|---|---|---|---|\n");
    fflush(stdout);
    if (wanted("FILL")) fill();
    if (wanted("RM1")) catch_up("RM1", "\"sqlite\"");
    if (wanted("RM2") || wanted("RMLAGPG")) {
        if (!pg_conninfo) {
            fprintf(stderr, "RM2, RMLAGPG: no PostgreSQL (--pg CONNINFO or FACTUM_BENCH_PG): skipped\n");
        } else {
            if (wanted("RM2")) catch_up("RM2", pg_target());
        }
    }
    if (wanted("RYOW")) ryow();
    if (wanted("RMINL")) rminl();
    if (wanted("RMLAG")) rmlag("RMLAG", "\"sqlite\"");
    if (wanted("RMLAGPG") && pg_conninfo) rmlag("RMLAGPG", pg_target());
    return 0;
}
