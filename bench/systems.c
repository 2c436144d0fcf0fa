/*
 * systems.c - BENCH.md's workloads against the systems beside factum, through
 * one driver (this file) and a small interface (systems.h) each system
 * implements in C with its own client library (sys_*.c), so that client
 * overhead is small and alike:
 *   sqlite   SQLite 3 in-process: the brief's event_store table (plus a global
 *            position), WAL, synchronous=FULL; optimistic concurrency by the
 *            unique (stream_id, version) key inside BEGIN IMMEDIATE.
 *   redis    Redis 7 Streams (hiredis): one stream per event stream and a
 *            global stream for $all, both written by one Lua script that checks
 *            the expected version; appendonly yes, appendfsync always.
 *   nats     NATS JetStream (libnats): one JetStream stream, a subject per
 *            event stream; expected-last-subject-sequence for concurrency.
 *            NOT durable per append: its fsync is periodic.
 *   postgres PostgreSQL 15 (libpq): the brief's event_store table plus a global
 *            position; synchronous_commit on; concurrency by the primary key;
 *            one multi-row INSERT per append; W6 by LISTEN/NOTIFY.
 * Workloads: W1 (single-event appends, random stream of 10,000, expected
 * version tracked), W2 (100-event appends), W3 (16 clients, each its own
 * connection), W4 (a 10,000-event stream read 20 times in pages of 1,000),
 * W5 ($all read in order), W6 (one $all subscriber, 1,000 appends/s: latency
 * from the append call to delivery), W7 (4 writers x 2,500 attempts on 10
 * streams, re-reading on conflict; verified: versions 0..n-1 each once, each
 * the acknowledged event), W8 (a consumer group of 10 at 10,000 ev/s: each
 * system's own group, or for PostgreSQL and SQLite a trigger-filled queue
 * table), W11 (loading an aggregate: a whole 10-event stream in one call, the
 * system's natural one: a prepared SELECT by stream for PostgreSQL and SQLite,
 * XRANGE for Redis, a consumer on the subject for NATS), W12 (1,000 live
 * subscribers on $all, --big 10,000, a writer at 1,000/s: PostgreSQL
 * LISTEN/NOTIFY and Redis XREAD BLOCK on a connection each, NATS a JetStream
 * consumer each; SQLite has none: omitted). Each result is a Markdown row and an "@" line
 * (system, workload, metric, value) that bench/run-all.sh collects.
 *
 * Usage: factum-bench-systems SYSTEM TARGET [--quick] [--big] [--only W1,...]
 *   TARGET: sqlite: a directory for the database; redis, nats: host:port;
 *   postgres: a libpq connection string.
 */
#include "systems.h"

const char *target;
int quick, big;

/* ---- W12's deliveries, from every system's subscriber side ---------------- */

static struct {
    size_t n_events;
    char (*ids)[37];
    uint64_t *start;
    hist lat;
    _Atomic uint64_t delivered;
} w12s;

/* Events are found by id: their index is in the id's last 12 hex digits. */
static size_t id_index(const char *id)
{
    return (size_t)strtoull(id + 24, NULL, 16);
}

void w12_got(const char *id, uint64_t t)
{
    size_t i = strlen(id) == 36 ? id_index(id) : SIZE_MAX;
    if (i >= w12s.n_events || memcmp(w12s.ids[i], id, 36)) return;
    hist_add(&w12s.lat, t - w12s.start[i]);
    atomic_fetch_add_explicit(&w12s.delivered, 1, memory_order_relaxed);
}

_Noreturn void die(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s\n", what, why);
    exit(1);
}

/* ---- events (BENCH.md: ~200 B JSON data, ~110 B JSON metadata) ---------- */

void make_event(bev *e, uint64_t account, uint64_t n)
{
    uint8_t u[16];
    char c[37], k[37];
    factum_uuid_v4(u);
    factum_uuid_format(u, e->id);
    factum_uuid_v4(u);
    factum_uuid_format(u, c);
    factum_uuid_v4(u);
    factum_uuid_format(u, k);
    e->dlen = (size_t)snprintf(e->data, sizeof e->data,
                               "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                               ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                               "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                               "\"at\":\"2024-03-15T10:22:31.123Z\"}",
                               account, 100 + n % 9000, n);
    e->mlen = (size_t)snprintf(e->meta, sizeof e->meta,
                               "{\"correlationId\":\"%s\",\"causationId\":\"%s\",\"user\":\"alice\"}", c, k);
}

static const backend *B;

/* ======================= the workloads ====================================== */

#define STREAMS 10000

static void w1(void)
{
    size_t n = quick ? 2000 : 20000;
    void *c = B->connect();
    int64_t *ver = malloc(STREAMS * sizeof *ver);
    for (size_t i = 0; i < STREAMS; i++) ver[i] = NO_STREAM;
    uint64_t *lat = malloc(n * sizeof *lat), seed = now_ns() | 1;
    bev e;
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % STREAMS;
        snprintf(name, sizeof name, "account-%" PRIu64, a);
        make_event(&e, a, i);
        uint64_t t = now_ns();
        int64_t last;
        if (B->append(c, name, ver[a], &e, 1, &last)) die("W1", "unexpected conflict");
        lat[i] = now_ns() - t;
        ver[a] = last;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W1 | %s | %zu single-event appends, random stream of %d | %.0f ev/s | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs |\n",
           B->name, n, STREAMS, n / secs, pct(lat, n, 50), pct(lat, n, 99), pct(lat, n, 99.9));
    result("W1", "ev_per_s", n / secs);
    result("W1", "p50_us", pct(lat, n, 50));
    result("W1", "p99_us", pct(lat, n, 99));
    latencies("W1", lat, n);
    fflush(stdout);
    free(lat);
    free(ver);
    B->disconnect(c);
}

static void w2(void)
{
    size_t appends = quick ? 200 : 2000, per = 100;
    void *c = B->connect();
    int64_t *ver = malloc(STREAMS * sizeof *ver);
    for (size_t i = 0; i < STREAMS; i++) ver[i] = NO_STREAM;
    bev *e = malloc(per * sizeof *e);
    uint64_t *lat = malloc(appends * sizeof *lat), seed = now_ns() | 1;
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < appends; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % STREAMS;
        snprintf(name, sizeof name, "batch-%" PRIu64, a);
        for (size_t k = 0; k < per; k++) make_event(&e[k], a, i * per + k);
        uint64_t t = now_ns();
        int64_t last;
        if (B->append(c, name, ver[a], e, per, &last)) die("W2", "unexpected conflict");
        lat[i] = now_ns() - t;
        ver[a] = last;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, appends, sizeof *lat, cmp_u64);
    printf("| W2 | %s | %zu appends of %zu events | %.0f ev/s | per append p50 %.0f µs |\n", B->name, appends, per,
           appends * per / secs, pct(lat, appends, 50));
    result("W2", "ev_per_s", appends * per / secs);
    fflush(stdout);
    free(lat);
    free(e);
    free(ver);
    B->disconnect(c);
}

typedef struct w3arg {
    int t, clients;
    size_t n;
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    void *c = B->connect();
    int64_t ver[100];
    for (int i = 0; i < 100; i++) ver[i] = NO_STREAM;
    bev e;
    char name[48];
    for (size_t i = 0; i < a->n; i++) {
        int k = (int)(i % 100);
        snprintf(name, sizeof name, "w3-%d-%d-%d", a->clients, a->t, k);
        make_event(&e, (uint64_t)k, i);
        int64_t last;
        if (B->append(c, name, ver[k], &e, 1, &last)) die("W3", "unexpected conflict");
        ver[k] = last;
    }
    B->disconnect(c);
    return NULL;
}

static void w3(int clients)
{
    size_t total = quick ? 4000 : 40000;
    pthread_t th[256];
    w3arg args[256];
    uint64_t t0 = now_ns();
    for (int i = 0; i < clients; i++) {
        args[i] = (w3arg){i, clients, total / (size_t)clients};
        pthread_create(&th[i], NULL, w3_client, &args[i]);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t done = total / (size_t)clients * (size_t)clients;
    printf("| W3 | %s | %d clients, %zu single-event appends | %.0f ev/s | |\n", B->name, clients, done, done / secs);
    result(clients == 16 ? "W3" : "W3_256", "ev_per_s", done / secs);
    fflush(stdout);
}

static void w4(void)
{
    void *c = B->connect();
    bev *e = malloc(1000 * sizeof *e);
    int64_t last = NO_STREAM;
    for (int b = 0; b < 10; b++) {
        for (int k = 0; k < 1000; k++) make_event(&e[k], 1, (uint64_t)(b * 1000 + k));
        if (B->append(c, "w4-stream", last, e, 1000, &last)) die("W4", "conflict");
    }
    free(e);
    uint64_t events = 0, bytes = 0, t0 = now_ns();
    for (int pass = 0; pass < 20; pass++) {
        char cursor[64] = "";
        size_t n;
        while ((n = B->read(c, "w4-stream", cursor, 1000, &bytes)) > 0) events += n;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W4 | %s | one 10,000-event stream read forward 20 times, pages of 1,000 | %.0f ev/s | %.0f MB/s |\n",
           B->name, events / secs, bytes / secs / 1e6);
    result("W4", "ev_per_s", events / secs);
    fflush(stdout);
    B->disconnect(c);
}

static void w5(void)
{
    void *c = B->connect();
    size_t target_n = quick ? 100000 : 500000;
    /* Top the log up to target_n events (the earlier workloads count). */
    uint64_t have = 0, bytes = 0;
    char cursor[64] = "";
    size_t n;
    while ((n = B->read(c, NULL, cursor, 10000, &bytes)) > 0) have += n;
    bev *e = malloc(1000 * sizeof *e);
    char name[32];
    for (uint64_t i = have; i < target_n; i += 1000) {
        snprintf(name, sizeof name, "w5-%" PRIu64, i / 1000 % 1000);
        for (int k = 0; k < 1000; k++) make_event(&e[k], i / 1000, i + (uint64_t)k);
        int64_t last;
        B->append(c, name, ANY, e, 1000, &last);
    }
    free(e);
    uint64_t events = 0;
    bytes = 0;
    uint64_t t0 = now_ns();
    for (int pass = 0; pass < 3; pass++) {
        cursor[0] = 0;
        while ((n = B->read(c, NULL, cursor, 1000, &bytes)) > 0) events += n;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W5 | %s | $all (%" PRIu64 " events) read in order, 3 passes | %.0f ev/s | %.0f MB/s |\n", B->name,
           events / 3, events / secs, bytes / secs / 1e6);
    result("W5", "ev_per_s", events / secs);
    fflush(stdout);
    B->disconnect(c);
}

/* W6: the subscriber matches deliveries to appends by event id. */
static struct {
    size_t n;
    char (*ids)[37];
    uint64_t *start, *got;
    atomic_int ready;
} w6s;

static void *w6_sub(void *p)
{
    (void)p;
    void *s = B->sub_open();
    atomic_store(&w6s.ready, 1);
    size_t received = 0, next = 0;
    char id[37];
    while (received < w6s.n) {
        if (!B->sub_next(s, 5000, id)) break;
        uint64_t t = now_ns();
        /* deliveries come in order: look ahead from the last match */
        for (size_t i = next; i < w6s.n && i < next + 64; i++)
            if (!strcmp(w6s.ids[i], id)) {
                w6s.got[i] = t;
                next = i + 1;
                received++;
                break;
            }
    }
    B->sub_close(s);
    return NULL;
}

static void w6(void)
{
    w6s.n = quick ? 1000 : 10000;
    w6s.ids = calloc(w6s.n, 37);
    w6s.start = calloc(w6s.n, sizeof *w6s.start);
    w6s.got = calloc(w6s.n, sizeof *w6s.got);
    bev *e = malloc(w6s.n * sizeof *e);
    for (size_t i = 0; i < w6s.n; i++) {
        make_event(&e[i], 6, i);
        memcpy(w6s.ids[i], e[i].id, 37);
    }
    atomic_store(&w6s.ready, 0);
    pthread_t th;
    pthread_create(&th, NULL, w6_sub, NULL);
    while (!atomic_load(&w6s.ready)) usleep(1000);
    usleep(100000);
    void *c = B->connect();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (size_t i = 0; i < w6s.n; i++) {
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        w6s.start[i] = now_ns();
        int64_t last;
        B->append(c, "w6-stream", ANY, &e[i], 1, &last);
    }
    pthread_join(th, NULL);
    B->disconnect(c);
    uint64_t *lat = malloc(w6s.n * sizeof *lat);
    size_t k = 0;
    for (size_t i = 0; i < w6s.n; i++)
        if (w6s.got[i]) lat[k++] = w6s.got[i] - w6s.start[i];
    qsort(lat, k, sizeof *lat, cmp_u64);
    printf("| W6 | %s | one $all subscriber, %zu single appends at 1,000/s (%zu delivered) | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs | |\n",
           B->name, w6s.n, k, pct(lat, k, 50), pct(lat, k, 99), pct(lat, k, 99.9));
    result("W6", "p50_us", pct(lat, k, 50));
    result("W6", "p99_us", pct(lat, k, 99));
    latencies("W6", lat, k);
    fflush(stdout);
    free(lat);
    free(e);
    free(w6s.ids);
    free(w6s.start);
    free(w6s.got);
}

/* W7: 4 writers, 2,500 attempts each, on the same 10 streams. */
typedef struct w7ack {
    int stream;
    int64_t version;
    char id[37];
} w7ack;
typedef struct w7arg {
    int t;
    size_t attempts;
    w7ack *acks;
    size_t n, conflicts;
} w7arg;

static void *w7_writer(void *p)
{
    w7arg *a = p;
    void *c = B->connect();
    uint64_t seed = now_ns() ^ (uint64_t)(a->t + 1) * 0x9e3779b97f4a7c15ull;
    char name[32];
    for (size_t i = 0; i < a->attempts; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int k = (int)(seed % 10);
        snprintf(name, sizeof name, "w7-%d", k);
        int64_t cur = B->version(c, name), last;
        bev e;
        make_event(&e, (uint64_t)k, i);
        if (B->append(c, name, cur, &e, 1, &last) == 0) {
            a->acks[a->n] = (w7ack){k, last, ""};
            memcpy(a->acks[a->n].id, e.id, 37);
            a->n++;
        } else {
            a->conflicts++;
        }
    }
    B->disconnect(c);
    return NULL;
}

static void w7(void)
{
    static w7arg args[4];
    pthread_t th[4];
    size_t attempts = quick ? 500 : 2500;
    for (int t = 0; t < 4; t++) {
        args[t] = (w7arg){t, attempts, calloc(attempts, sizeof(w7ack)), 0, 0};
        pthread_create(&th[t], NULL, w7_writer, &args[t]);
    }
    size_t ok = 0, conflicts = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].n;
        conflicts += args[t].conflicts;
    }
    void *c = B->connect();
    int pass = 1;
    size_t stored = 0, cap = 4 * attempts;
    char (*ids)[37] = malloc(cap * 37);
    int64_t *vers = malloc(cap * sizeof *vers);
    for (int k = 0; k < 10; k++) {
        char name[32];
        snprintf(name, sizeof name, "w7-%d", k);
        size_t n = B->ids(c, name, ids, vers, cap);
        stored += n;
        for (size_t i = 0; i < n; i++) {
            int found = vers[i] == (int64_t)i ? 0 : -1;
            for (int t = 0; t < 4 && found == 0; t++)
                for (size_t j = 0; j < args[t].n; j++)
                    if (args[t].acks[j].stream == k && args[t].acks[j].version == (int64_t)i &&
                        !strcmp(args[t].acks[j].id, ids[i]))
                        found = 1;
            if (found != 1) pass = 0;
        }
    }
    if (stored != ok) pass = 0;
    free(ids);
    free(vers);
    B->disconnect(c);
    printf("| W7 | %s | 4 writers x %zu attempts on 10 streams | %zu successes, %zu conflicts | %s |\n", B->name,
           attempts, ok, conflicts, pass ? "PASS" : "FAIL");
    result("W7", "pass", pass);
    fflush(stdout);
    for (int t = 0; t < 4; t++) free(args[t].acks);
    if (!pass) exit(2);
}


/* W8: a consumer group of 10 members; 2 producers append 5 events every
 * millisecond each (10,000 events/s) for 60 s (quick: 5 s); latency from
 * the append call to the member's receipt (the ack follows at once). */
#define W8_MEMBERS 10
#define W8_BATCH 5
static struct {
    size_t n;
    char (*ids)[37];
    uint64_t *start, *lat;
    atomic_size_t received, produced;
    atomic_int stop;
    uint64_t deadline; /* producers that fall behind stop here */
} w8s;

/* Events are found by id: their index is in the id's last 12 hex digits. */
static size_t w8_index(const char *id)
{
    return (size_t)strtoull(id + 24, NULL, 16);
}

static void *w8_member(void *p)
{
    void *m = B->member_open((int)(intptr_t)p);
    char id[37];
    while (!atomic_load(&w8s.stop)) {
        if (!B->member_next(m, 100, id)) continue;
        uint64_t t = now_ns();
        size_t i = w8_index(id);
        if (i < w8s.n && !w8s.lat[i] && !strcmp(w8s.ids[i], id)) {
            w8s.lat[i] = t - w8s.start[i];
            atomic_fetch_add(&w8s.received, 1);
        }
        B->member_ack(m);
    }
    B->member_close(m);
    return NULL;
}

static void *w8_producer(void *p)
{
    size_t me = (size_t)(uintptr_t)p, per = w8s.n / 2;
    void *c = B->connect();
    bev e[W8_BATCH];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    next.tv_nsec += (long)(me * 500000);
    for (size_t j = 0; j < per; j += W8_BATCH) {
        next.tv_nsec += 1000000;
        while (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        uint64_t t = now_ns();
        if (t > w8s.deadline) break; /* the system cannot take the pace */
        for (size_t b = 0; b < W8_BATCH; b++) {
            size_t i = me * per + j + b;
            make_event(&e[b], 8, i);
            snprintf(e[b].id + 24, 13, "%012zx", i); /* the index, for the members */
            memcpy(w8s.ids[i], e[b].id, 37);
            w8s.start[i] = t;
        }
        int64_t last;
        char name[32];
        snprintf(name, sizeof name, "w8-%zu", me);
        B->append(c, name, ANY, e, W8_BATCH, &last);
        atomic_fetch_add(&w8s.produced, W8_BATCH);
    }
    B->disconnect(c);
    return NULL;
}

static void w8(void)
{
    if (!B->group_create) return;
    int secs = quick ? 5 : 60;
    w8s.n = (size_t)secs * 10000;
    w8s.ids = calloc(w8s.n, 37);
    w8s.start = calloc(w8s.n, sizeof *w8s.start);
    w8s.lat = calloc(w8s.n, sizeof *w8s.lat);
    atomic_store(&w8s.received, 0);
    atomic_store(&w8s.produced, 0);
    atomic_store(&w8s.stop, 0);
    B->group_create();
    pthread_t m[W8_MEMBERS], pr[2];
    for (int i = 0; i < W8_MEMBERS; i++) pthread_create(&m[i], NULL, w8_member, (void *)(intptr_t)i);
    usleep(300000);
    uint64_t t0 = now_ns();
    w8s.deadline = t0 + (uint64_t)secs * 2000000000u; /* twice the planned time */
    for (int i = 0; i < 2; i++) pthread_create(&pr[i], NULL, w8_producer, (void *)(uintptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(pr[i], NULL);
    size_t produced = atomic_load(&w8s.produced);
    double took = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < 500 && atomic_load(&w8s.received) < produced; i++) usleep(10000);
    atomic_store(&w8s.stop, 1);
    for (int i = 0; i < W8_MEMBERS; i++) pthread_join(m[i], NULL);
    uint64_t *lat = malloc(w8s.n * sizeof *lat);
    size_t k = 0, le1 = 0, le2 = 0;
    for (size_t i = 0; i < w8s.n; i++) {
        if (!w8s.lat[i]) continue;
        lat[k++] = w8s.lat[i];
        le1 += w8s.lat[i] <= 1000000;
        le2 += w8s.lat[i] <= 2000000;
    }
    qsort(lat, k, sizeof *lat, cmp_u64);
    /* Shares are of the events produced (an event not delivered counts as
     * late); a system that could not take the pace shows it in "produced". */
    double base = produced ? (double)produced : 1;
    printf("| W8 | %s | group of %d members, 2 producers at 10,000 ev/s for %d s: %zu/%zu produced in %.0f s, %zu delivered | "
           "≤1 ms %.2f%%, ≤2 ms %.2f%% | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs |\n",
           B->name, W8_MEMBERS, secs, produced, w8s.n, took, k,
           100.0 * le1 / base, 100.0 * le2 / base, pct(lat, k, 50), pct(lat, k, 99), pct(lat, k, 99.9));
    result("W8", "pace_pct", (double)produced / took / 100.0); /* of 10,000 ev/s */
    result("W8", "le2ms_pct", 100.0 * le2 / base);
    result("W8", "p50_us", pct(lat, k, 50));
    result("W8", "p999_us", pct(lat, k, 99.9));
    latencies("W8", lat, k);
    fflush(stdout);
    free(lat);
    free(w8s.ids);
    free(w8s.start);
    free(w8s.lat);
}


/* W11: loading an aggregate. The fill (10 events per stream, one append
 * each) is not timed; then random streams are loaded whole, one call each. */
static void w11(void)
{
    size_t streams = quick ? 500 : 10000, loads = quick ? 2000 : 100000;
    void *c = B->connect();
    bev e[10];
    char name[32];
    for (size_t a = 0; a < streams; a++) {
        snprintf(name, sizeof name, "agg-%zu", a);
        for (size_t k = 0; k < 10; k++) make_event(&e[k], a, a * 10 + k);
        int64_t last;
        if (B->append(c, name, NO_STREAM, e, 10, &last)) die("W11", "unexpected conflict in the fill");
    }
    uint64_t *lat = malloc(loads * sizeof *lat), seed = now_ns() | 1, bytes = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < loads; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        snprintf(name, sizeof name, "agg-%" PRIu64, seed % streams);
        uint64_t t = now_ns();
        size_t n = B->load(c, name, &bytes);
        lat[i] = now_ns() - t;
        if (n != 10) die("W11", "a load did not return the stream's 10 events");
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, loads, sizeof *lat, cmp_u64);
    printf("| W11 | %s | load an aggregate: %zu whole 10-event streams (%s), random of %zu | %.0f calls/s | "
           "p50 %.0f µs, p99 %.0f µs |\n",
           B->name, loads, B->load_how, streams, loads / secs, pct(lat, loads, 50), pct(lat, loads, 99));
    result("W11", "calls_per_s", loads / secs);
    result("W11", "p50_us", pct(lat, loads, 50));
    result("W11", "p99_us", pct(lat, loads, 99));
    latencies("W11", lat, loads);
    fflush(stdout);
    free(lat);
    B->disconnect(c);
}

/* W12: fan-out. The subscribers (B->fan_open: a connection or consumer
 * each, served by W12_THREADS threads) follow $all; one writer appends
 * single events at 1,000/s; every delivery's latency from the start of its
 * append call goes into one histogram. */
static void w12(void)
{
    w12_report r = {.how = B->fan_how};
    r.subs = w12_subs(quick, big);
    r.events = w12_events(quick, big);
    if (!B->fan_open) {
        printf("| %s | %s | %zu subscribers on $all: omitted, %s has no live delivery between connections "
               "(W6 polls) | | |\n",
               w12_name(r.subs), B->name, r.subs, B->name);
        fflush(stdout);
        return;
    }
    if (!strcmp(bench_system, "postgres") && r.subs > 2000) {
        printf("| %s | %s | %zu subscribers on $all: omitted, a backend process per LISTENing connection "
               "(about 1 MiB each, measured with 1,000) is more than this shared machine can spare | | |\n",
               w12_name(r.subs), B->name, r.subs);
        fflush(stdout);
        return;
    }
    w12s.n_events = r.events;
    w12s.ids = calloc(r.events, 37);
    w12s.start = calloc(r.events, sizeof *w12s.start);
    memset(&w12s.lat, 0, sizeof w12s.lat);
    atomic_store(&w12s.delivered, 0);
    bev *e = malloc(r.events * sizeof *e);
    for (size_t i = 0; i < r.events; i++) {
        make_event(&e[i], 12, i);
        snprintf(e[i].id + 24, 13, "%012x", (unsigned)i); /* the index, for the subscribers */
        memcpy(w12s.ids[i], e[i].id, 37);
    }
    int pid = server_pid();
    r.have_server = pid > 0 && proc_usage_get(pid, &r.before) == 0;
    if (!r.have_server) pid = getpid(), proc_usage_get(pid, &r.before);
    void *f = B->fan_open(r.subs);
    usleep(300000);
    proc_usage_get(pid, &r.connected);
    double cpu0 = self_cpu_s();
    uint64_t t_conn = now_ns();
    void *c = B->connect();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r.events && !w12_late(t0, r.events); i++, r.appended++) {
        pace_ms(&next);
        w12s.start[i] = now_ns();
        int64_t last;
        B->append(c, "w12-stream", ANY, &e[i], 1, &last);
    }
    r.secs = (double)(now_ns() - t0) / 1e9;
    w12_drain(&w12s.delivered, (uint64_t)r.subs * r.appended);
    proc_usage_get(pid, &r.after);
    r.self_cpu_s = self_cpu_s() - cpu0;
    r.wall_s = (double)(now_ns() - t_conn) / 1e9;
    r.delivered = atomic_load(&w12s.delivered);
    B->disconnect(c);
    B->fan_close(f);
    w12_print(w12_name(r.subs), B->name, &w12s.lat, &r);
    free(e);
    free(w12s.ids);
    free(w12s.start);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s postgres|sqlite|redis|nats TARGET [--quick] [--big] [--only W1,...]\n", argv[0]);
        return 2;
    }
    B = NULL;
#ifdef HAVE_LIBPQ
    if (!strcmp(argv[1], "postgres")) B = &pg_backend;
#endif
#ifdef HAVE_SQLITE
    if (!strcmp(argv[1], "sqlite")) B = &sqlite_backend;
#endif
#ifdef HAVE_HIREDIS
    if (!strcmp(argv[1], "redis")) B = &redis_backend;
#endif
#ifdef HAVE_NATS
    if (!strcmp(argv[1], "nats")) B = &nats_backend;
#endif
    if (!B) {
        fprintf(stderr, "%s: not built in (its client library was missing at build time)\n", argv[1]);
        return 2;
    }
    target = argv[2];
    bench_system = argv[1];
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--big")) big = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
    }
    B->setup();
    if (wanted("W1")) w1();
    if (wanted("W2")) w2();
    if (wanted("W3")) {
        w3(16);
        w3(256);
    }
    if (wanted("W4")) w4();
    if (wanted("W5")) w5();
    if (wanted("W6")) w6();
    if (wanted("W7")) w7();
    if (wanted("W11")) w11();
    if (wanted("W12")) {
        raise_nofile();
        w12();
    }
    if (wanted("W8")) w8(); /* last: its queue trigger stays on event_store */
    return 0;
}
