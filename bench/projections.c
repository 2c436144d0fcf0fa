/*
 * projections.c - the system projections written in C (src/proj), embedded:
 *
 *   CU1  catch-up of $by_category alone over N events already stored
 *        (BENCH.md's events, 10,000 streams `account-<n>`): source events
 *        per second, from enabling it until everything is committed
 *   CU5  the same with all five system projections at once
 *   LAG  W3 (16 threads, single-event appends, each to a random stream)
 *        while $by_category runs: W3's rate beside W3 alone, the lag in
 *        events (the projection's status, sampled every millisecond) and in
 *        milliseconds (for every link: its commit time minus its source
 *        event's commit time)
 *   W10  BENCH.md's W10: a JavaScript projection counting events by type
 *        (V8 in its worker process, state checkpointed with every batch)
 *        catching up over the same N events: source events per second
 *   LAGJS W3 while that JavaScript projection and $by_category run: W3's
 *        rate beside W3 alone, each projection's lag in events and in
 *        milliseconds (the age of the oldest event it has not handled),
 *        sampled every millisecond
 *
 * Usage: factum-bench-projections [--events N] [--relaxed] [--quick] [--only CU1,CU5,LAG,W10,LAGJS] DIR
 * The events carry `$correlationId` in their metadata (KurrentDB's key),
 * one per ten events, so that $by_correlation_id has work in CU5.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench.h"
#include "factum.h"

static const char *base_dir;
static int relaxed, quick;
static uint64_t n_events = 1000000;

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    uint64_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rnd_state = x;
}

static void rm_rf(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "rm -rf %s failed\n", dir);
}

typedef struct evbuf {
    char data[320], meta[200];
    factum_event_data ev;
} evbuf;

/* BENCH.md's event: ~200 bytes of JSON data, ~110 of metadata. */
static void make_event(evbuf *b, uint64_t account, uint64_t n)
{
    uint8_t c[16];
    char cs[37], ks[37];
    memset(c, 0, sizeof c);
    memcpy(c, &(uint64_t){n / 10 + 1}, 8);
    c[6] = 0x40;
    c[8] = 0x80;
    factum_uuid_format(c, cs);
    factum_uuid_v4(c);
    factum_uuid_format(c, ks);
    int dl = snprintf(b->data, sizeof b->data,
                      "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                      ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                      "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                      "\"at\":\"2024-03-15T10:22:31.123Z\"}",
                      account, 100 + n % 9000, n);
    int ml = snprintf(b->meta, sizeof b->meta,
                      "{\"$correlationId\":\"%s\",\"$causationId\":\"%s\",\"user\":\"alice\"}", cs, ks);
    memset(&b->ev, 0, sizeof b->ev);
    b->ev.type = "MoneyDeposited";
    b->ev.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
    b->ev.data = b->data;
    b->ev.data_len = (size_t)dl;
    b->ev.metadata = b->meta;
    b->ev.metadata_len = (size_t)ml;
    factum_uuid_v4(b->ev.id);
    b->ev.has_id = 1;
}

static factum_store *open_store(const char *name, int fresh, int durability)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, name);
    if (fresh) rm_rf(dir);
    factum_options o;
    factum_options_init(&o);
    o.durability = durability;
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        exit(1);
    }
    return s;
}

/* N events in appends of 100 to random accounts (relaxed: this is setup). */
static void load(const char *name)
{
    factum_store *s = open_store(name, 1, FACTUM_RELAXED);
    static evbuf b[100];
    static factum_event_data ev[100];
    for (uint64_t i = 0; i < n_events; i += 100) {
        uint64_t acct = rnd() % 10000;
        char stream[32];
        snprintf(stream, sizeof stream, "account-%" PRIu64, acct);
        size_t k = n_events - i < 100 ? (size_t)(n_events - i) : 100;
        for (size_t j = 0; j < k; j++) {
            make_event(&b[j], acct, i + j);
            ev[j] = b[j].ev;
        }
        int rc = factum_append(s, stream, FACTUM_ANY, ev, k, NULL);
        if (rc) {
            fprintf(stderr, "load: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    factum_store_close(s);
}

static factum_projections *open_manager(factum_store *s)
{
    factum_projections *m;
    int rc = factum_projections_open(s, NULL, &m);
    if (rc) {
        fprintf(stderr, "projections: %s\n", factum_strerror(rc));
        exit(1);
    }
    return m;
}

static const char W10_QUERY[] =
    "fromAll().when({ $init: () => ({}), $any: (s, e) => { s[e.eventType] = (s[e.eventType] || 0) + 1; return s; } })";

static void create_js(factum_projections *m, const char *name, const char *query, int enabled)
{
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = name;
    d.query = query;
    d.enabled = enabled;
    int rc = factum_projection_create(m, &d, NULL, NULL);
    if (rc) {
        fprintf(stderr, "create %s: %s\n", name, factum_strerror(rc));
        exit(1);
    }
}

static const char *SYSTEM[] = {"$streams", "$stream_by_category", "$by_category", "$by_event_type",
                               "$by_correlation_id"};

/* Enable the projections named and time their catch-up to `last`, over a
 * copy of the events loaded once. */
static void catch_up(const char *w, const char **names, int n)
{
    static int loaded;
    char cmd[2048];
    if (!loaded++) load("source");
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s' && cp -a '%s/source' '%s/%s' && sync", base_dir, w, base_dir,
             base_dir, w);
    if (system(cmd)) {
        fprintf(stderr, "%s failed\n", cmd);
        exit(1);
    }
    if (getenv("FACTUM_BENCH_PAUSE")) { /* time to attach a profiler */
        fprintf(stderr, "%s: starting in 3 s (pid %d)\n", w, (int)getpid());
        sleep(3);
    }
    factum_store *s = open_store(w, 0, relaxed ? FACTUM_RELAXED : FACTUM_DURABLE);
    factum_stats st;
    factum_store_get_stats(s, &st);
    uint64_t last = st.last_position;
    factum_projections *m = open_manager(s);
    for (int i = 0; i < n; i++)
        if (names[i][0] != '$') create_js(m, names[i], W10_QUERY, 0);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++)
        factum_projection_enable(m, names[i], NULL, NULL);
    for (int i = 0; i < n; i++) {
        int rc = factum_projection_wait(m, names[i], last, -1);
        if (rc != 1) fprintf(stderr, "%s: %s\n", names[i], factum_strerror(rc));
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t emitted = 0;
    for (int i = 0; i < n; i++) {
        factum_projection_status ps;
        factum_projection_get_status(m, names[i], &ps);
        emitted += ps.events_emitted;
    }
    factum_store_get_stats(s, &st);
    printf("| %s | %s over %" PRIu64 " events | **%.0f source ev/s** | %.2f s; %" PRIu64
           " events written (%.0f/s), %" PRIu64 " appends, %.1f MB of log |\n",
           w, n == 1 ? (names[0][0] == '$' ? names[0] : "JavaScript count by type") : "the five system projections", last, (double)last / secs, secs, emitted,
           (double)emitted / secs, st.appends, (double)st.bytes_written / 1e6);
    result(w, "source_ev_per_s", (double)last / secs);
    result(w, "written_ev_per_s", (double)emitted / secs);
    fflush(stdout);
    factum_projections_close(m);
    factum_store_close(s);
}

/* ---- LAG: W3 with $by_category following ------------------------------ */

typedef struct w3arg {
    factum_store *s;
    int t;
    size_t n;
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    evbuf b;
    char name[32];
    uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(a->t + 1);
    for (size_t i = 0; i < a->n; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint64_t acct = (r % 625) * 16 + (uint64_t)a->t; /* ≡ t (mod 16) */
        snprintf(name, sizeof name, "account-%" PRIu64, acct);
        make_event(&b, acct, i);
        int rc = factum_append(a->s, name, FACTUM_ANY, &b.ev, 1, NULL);
        if (rc) {
            fprintf(stderr, "W3 append: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    return NULL;
}

typedef struct sampler {
    factum_projections *m;
    const char *name;
    atomic_int stop;
    uint64_t *lag;
    int64_t *lag_ns;
    size_t n, cap;
} sampler;

static void *sample(void *p)
{
    sampler *sm = p;
    while (!atomic_load(&sm->stop) && sm->n < sm->cap) {
        factum_projection_status st;
        if (!factum_projection_get_status(sm->m, sm->name, &st)) {
            if (sm->lag_ns) sm->lag_ns[sm->n] = st.lag_ns;
            sm->lag[sm->n++] = st.lag_events;
        }
        usleep(1000);
    }
    return NULL;
}

static double w3_run(factum_store *s, size_t total)
{
    enum { CLIENTS = 16 };
    pthread_t th[CLIENTS];
    w3arg a[CLIENTS];
    uint64_t t0 = now_ns();
    for (int t = 0; t < CLIENTS; t++) {
        a[t] = (w3arg){s, t, total / CLIENTS};
        pthread_create(&th[t], NULL, w3_client, &a[t]);
    }
    for (int t = 0; t < CLIENTS; t++)
        pthread_join(th[t], NULL);
    return (double)(total / CLIENTS * CLIENTS) / ((double)(now_ns() - t0) / 1e9);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void lag(void)
{
    size_t total = quick ? 20000 : 200000;
    int dur = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    factum_store *s = open_store("lag-alone", 1, dur);
    double alone = w3_run(s, total);
    factum_store_close(s);

    s = open_store("lag", 1, dur);
    factum_projections *m = open_manager(s);
    factum_projection_enable(m, "$by_category", NULL, NULL);
    sampler sm = {m, "$by_category", 0, NULL, NULL, 0, 600000};
    sm.lag = malloc(sm.cap * sizeof *sm.lag);
    pthread_t st;
    pthread_create(&st, NULL, sample, &sm);
    double with = w3_run(s, total);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    uint64_t t_end = now_ns();
    factum_projection_wait(m, "$by_category", fs.last_position, -1);
    double drain_ms = (double)(now_ns() - t_end) / 1e6;
    atomic_store(&sm.stop, 1);
    pthread_join(st, NULL);
    /* Every link's lag: its commit time minus its source event's. */
    int64_t *ms = malloc(total * sizeof *ms);
    size_t n = 0;
    uint64_t from = 0;
    while (from != FACTUM_END) {
        factum_event page[256];
        size_t k = 0;
        if (factum_read_stream(s, "$ce-account", from, FACTUM_FORWARD, page, 256, &k, &from)) break;
        for (size_t i = 0; i < k && n < total; i++) {
            factum_event target;
            if (factum_resolve_link(s, &page[i], &target)) continue;
            ms[n++] = page[i].timestamp_ns - target.timestamp_ns;
        }
    }
    qsort(ms, n, sizeof *ms, cmp_i64);
    qsort(sm.lag, sm.n, sizeof *sm.lag, cmp_u64);
#define P(v, cnt, p) ((cnt) ? (v)[(size_t)((p) / 100.0 * (double)((cnt)-1) + 0.5)] : 0)
    printf(
        "| LAG | W3 (16 clients, %zu single-event appends) with $by_category running | W3 %.0f ev/s (alone "
        "%.0f) | lag p50 %" PRIu64 " / p99 %" PRIu64 " / max %" PRIu64
        " events; p50 %.2f / p99 %.2f / max %.2f ms "
        "(%zu links); drained %.1f ms after the last append |\n",
        total, with, alone, P(sm.lag, sm.n, 50), P(sm.lag, sm.n, 99), sm.n ? sm.lag[sm.n - 1] : 0,
        (double)P(ms, n, 50) / 1e6, (double)P(ms, n, 99) / 1e6, n ? (double)ms[n - 1] / 1e6 : 0, n, drain_ms);
    result("LAG", "w3_ev_per_s", with);
    result("LAG", "w3_alone_ev_per_s", alone);
    result("LAG", "lag_events_p50", (double)P(sm.lag, sm.n, 50));
    result("LAG", "lag_events_p99", (double)P(sm.lag, sm.n, 99));
    result("LAG", "lag_ms_p50", (double)P(ms, n, 50) / 1e6);
    result("LAG", "lag_ms_p99", (double)P(ms, n, 99) / 1e6);
    free(ms);
    free(sm.lag);
    factum_projections_close(m);
    factum_store_close(s);
}

/* ---- LAGJS: W3 with a JavaScript projection and $by_category following -- */

static void lag_js(void)
{
    size_t total = quick ? 20000 : 200000;
    int dur = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    factum_store *s = open_store("lagjs-alone", 1, dur);
    double alone = w3_run(s, total);
    factum_store_close(s);

    s = open_store("lagjs", 1, dur);
    factum_projections *m = open_manager(s);
    factum_projection_enable(m, "$by_category", NULL, NULL);
    create_js(m, "count-by-type", W10_QUERY, 1);
    sampler sm[2] = {{m, "count-by-type", 0, NULL, NULL, 0, 600000}, {m, "$by_category", 0, NULL, NULL, 0, 600000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        sm[i].lag = malloc(sm[i].cap * sizeof *sm[i].lag);
        sm[i].lag_ns = malloc(sm[i].cap * sizeof *sm[i].lag_ns);
        pthread_create(&th[i], NULL, sample, &sm[i]);
    }
    double with = w3_run(s, total);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    uint64_t t_end = now_ns();
    factum_projection_wait(m, "count-by-type", fs.last_position, -1);
    double drain_js = (double)(now_ns() - t_end) / 1e6;
    factum_projection_wait(m, "$by_category", fs.last_position, -1);
    for (int i = 0; i < 2; i++) {
        atomic_store(&sm[i].stop, 1);
        pthread_join(th[i], NULL);
    }
    printf("| LAGJS | W3 (16 clients, %zu single-event appends) with a JavaScript projection and $by_category "
           "running | W3 %.0f ev/s (alone %.0f) |",
           total, with, alone);
    result("LAGJS", "w3_ev_per_s", with);
    result("LAGJS", "w3_alone_ev_per_s", alone);
    for (int i = 0; i < 2; i++) {
        qsort(sm[i].lag, sm[i].n, sizeof *sm[i].lag, cmp_u64);
        qsort(sm[i].lag_ns, sm[i].n, sizeof *sm[i].lag_ns, cmp_i64);
        printf(" %s: lag p50 %" PRIu64 " / p99 %" PRIu64 " events, p50 %.2f / p99 %.2f ms;", sm[i].name,
               P(sm[i].lag, sm[i].n, 50), P(sm[i].lag, sm[i].n, 99), (double)P(sm[i].lag_ns, sm[i].n, 50) / 1e6,
               (double)P(sm[i].lag_ns, sm[i].n, 99) / 1e6);
        char w[64];
        snprintf(w, sizeof w, "LAGJS-%s", i ? "by_category" : "js");
        result(w, "lag_events_p50", (double)P(sm[i].lag, sm[i].n, 50));
        result(w, "lag_events_p99", (double)P(sm[i].lag, sm[i].n, 99));
        result(w, "lag_ms_p50", (double)P(sm[i].lag_ns, sm[i].n, 50) / 1e6);
        result(w, "lag_ms_p99", (double)P(sm[i].lag_ns, sm[i].n, 99) / 1e6);
        free(sm[i].lag);
        free(sm[i].lag_ns);
    }
    printf(" the JavaScript projection drained %.1f ms after the last append |\n", drain_js);
    factum_projections_close(m);
    factum_store_close(s);
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--relaxed"))
            relaxed = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof only, "%s", argv[++i]);
        else if (argv[i][0] != '-')
            base_dir = argv[i];
        else {
            fprintf(stderr, "usage: %s [--events N] [--relaxed] [--quick] [--only CU1,CU5,LAG,W10,LAGJS] DIR\n",
                    argv[0]);
            return 2;
        }
    }
    if (!base_dir) {
        fprintf(stderr, "usage: %s [--events N] [--relaxed] [--quick] [--only CU1,CU5,LAG,W10,LAGJS] DIR\n", argv[0]);
        return 2;
    }
    if (quick && n_events == 1000000) n_events = 100000;
    printf("| workload | what | result | detail |\n|---|---|---|---|\n");
    const char *by_cat = "$by_category";
    if (wanted("CU1")) catch_up("CU1", &by_cat, 1);
    if (wanted("CU5")) catch_up("CU5", SYSTEM, 5);
    if (wanted("LAG")) lag();
    const char *w10 = "count-by-type";
    if (wanted("W10")) catch_up("W10", &w10, 1);
    if (wanted("LAGJS")) lag_js();
    return 0;
}
