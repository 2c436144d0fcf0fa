/*
 * cmd_bench.c - `factum bench`: BENCH.md's workloads from the command line,
 * on a local data directory (the embedded store) or against a server
 * (--server, through the C client): W1 single-event appends to random
 * streams, W2 100-event appends, W3 concurrent clients, W4 stream reads in
 * pages of 1,000, W5 the global log, W7 the contention check. Each prints
 * its throughput and latency percentiles. bench/ holds the full harness
 * that docs/PERFORMANCE.md reports; this is the quick look for a user.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

static const cli_opt bench_opts[] = {{"workload", CLI_ARG}, {"count", CLI_ARG}, {"clients", CLI_ARG},
                                     {"relaxed", 0}};

static const char bench_help[] =
    "usage: factum [--data DIR | --server URL] bench [--workload W1,W2,W3,W4,W5,W7] [--count N] [--clients N]\n"
    "                                               [--relaxed]\n"
    "\n"
    "Runs the BENCH.md workloads (default W1,W2,W4,W5,W7) and prints events/s and latency percentiles.\n"
    "  --count N     events per workload (default 20000; W2 uses N/100 appends of 100, W5 reads the whole log)\n"
    "  --clients N   concurrent clients for W3 (default 16)\n"
    "  --relaxed     local only: open the store in relaxed durability (fdatasync every 100 ms)\n"
    "Streams are named bench-<random>-*, so a run never disturbs existing data. Against a local\n"
    "directory the store must not be in use by another process.\n";

typedef struct target {
    factum_store *store;   /* local, shared by threads */
    const char *url;       /* remote: each thread connects */
    factum_client *client; /* remote, this thread's */
} target;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
    return n ? (double)v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] / 1000.0 : 0;
}

static int t_append(target *t, const char *stream, int64_t exp, const factum_event_data *ev, size_t n,
                    factum_append_result *r)
{
    return t->store ? factum_append(t->store, stream, exp, ev, n, r)
                    : factum_client_append(t->client, stream, exp, ev, n, r);
}

/* Read up to max events; the count and the bytes seen. */
static int t_read(target *t, const char *stream, uint64_t from, int dir, uint64_t max, size_t *n, uint64_t *bytes,
                  uint64_t *last)
{
    *n = 0;
    if (t->store) {
        static _Thread_local factum_event page[1000];
        static _Thread_local factum_reader *rd; /* sealed events open here (crypto-shredding), per page */
        if (!rd && factum_store_sealing(t->store) && (rd = factum_reader_new())) factum_reader_use(rd);
        factum_reader_reset(rd);
        uint64_t next;
        int rc = stream ? factum_read_stream(t->store, stream, from, dir, page, max < 1000 ? max : 1000, n, &next)
                        : factum_read_all(t->store, from, dir, NULL, 0, page, max < 1000 ? max : 1000, n, &next);
        for (size_t i = 0; i < *n; i++) *bytes += page[i].data_len + page[i].metadata_len;
        if (*n && last) *last = stream ? page[*n - 1].version : page[*n - 1].position;
        return rc;
    }
    factum_client_batch *b;
    int rc = stream ? factum_client_read_stream(t->client, stream, from, dir, max, &b)
                    : factum_client_read_all(t->client, from, dir, NULL, max, &b);
    if (rc) return rc;
    *n = factum_client_batch_count(b);
    for (size_t i = 0; i < *n; i++) {
        const factum_event *e = factum_client_batch_event(b, i);
        *bytes += e->data_len + e->metadata_len;
        if (last) *last = stream ? e->version : e->position;
    }
    factum_client_batch_free(b);
    return 0;
}

static char data_buf[256] = "{\"accountId\":\"account-1\",\"amount\":1234,\"currency\":\"EUR\",\"reference\":\"INV-"
                            "00000001\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                            "\"at\":\"2024-03-15T10:22:31.123Z\"}";
static char meta_buf[128] = "{\"correlationId\":\"6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a\",\"causationId\":\"0d2f8e1b-"
                            "4c3a-4c55-9a7e-6f1c2a9e3b1d\",\"user\":\"alice\"}";

static factum_event_data event(void)
{
    factum_event_data e = {0};
    e.type = "MoneyDeposited";
    e.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
    e.data = data_buf;
    e.data_len = strlen(data_buf);
    e.metadata = meta_buf;
    e.metadata_len = strlen(meta_buf);
    factum_uuid_v4(e.id);
    e.has_id = 1;
    return e;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static char tag[20];

static void report(const char *w, const char *what, size_t events, uint64_t ns, uint64_t *lat, size_t n_lat)
{
    if (n_lat) qsort(lat, n_lat, sizeof *lat, cmp_u64);
    printf("%-3s %-44s %10.0f ev/s", w, what, (double)events / ((double)ns / 1e9));
    if (n_lat) printf("   p50 %.0f us  p99 %.0f us  p99.9 %.0f us", pct(lat, n_lat, 50), pct(lat, n_lat, 99),
                      pct(lat, n_lat, 99.9));
    printf("\n");
    fflush(stdout);
}

/* W1 / W2: appends of `per` events to random streams of 1,000. */
static int w_appends(cli_ctx *c, target *t, const char *w, size_t count, size_t per)
{
    size_t appends = count / per ? count / per : 1, streams = 1000;
    int64_t *ver = malloc(streams * sizeof *ver);
    uint64_t *lat = malloc(appends * sizeof *lat), seed = now_ns() | 1;
    factum_event_data *ev = malloc(per * sizeof *ev);
    if (!ver || !lat || !ev) return cli_fail(c, -ENOMEM, "bench");
    for (size_t i = 0; i < streams; i++) ver[i] = FACTUM_NO_STREAM;
    char name[64];
    uint64_t t0 = now_ns();
    int rc = 0;
    for (size_t i = 0; i < appends && !rc; i++) {
        uint64_t a = rnd(&seed) % streams;
        snprintf(name, sizeof name, "bench-%s-%s-%" PRIu64, tag, w, a);
        for (size_t k = 0; k < per; k++) ev[k] = event();
        factum_append_result r;
        uint64_t ts = now_ns();
        rc = t_append(t, name, ver[a], ev, per, &r);
        lat[i] = now_ns() - ts;
        if (!rc) ver[a] = (int64_t)r.last_version;
    }
    uint64_t dt = now_ns() - t0;
    char what[64];
    snprintf(what, sizeof what, "%zu appends of %zu event%s", appends, per, per > 1 ? "s" : "");
    if (!rc) report(w, what, appends * per, dt, lat, appends);
    free(ev);
    free(lat);
    free(ver);
    return rc ? cli_fail(c, rc, "%s", w) : 0;
}

typedef struct w3arg {
    target t;
    int id, clients;
    size_t n;
    uint64_t *lat;
    int rc;
} w3arg;

static void *w3_thread(void *p)
{
    w3arg *a = p;
    if (a->t.url && (a->rc = factum_client_connect(a->t.url, NULL, &a->t.client))) return NULL;
    uint64_t seed = (now_ns() ^ ((uint64_t)a->id * 7919)) | 1;
    int64_t ver[64];
    for (int i = 0; i < 64; i++) ver[i] = FACTUM_NO_STREAM;
    char name[64];
    for (size_t i = 0; i < a->n && !a->rc; i++) {
        int k = (int)(rnd(&seed) % 64);
        snprintf(name, sizeof name, "bench-%s-W3-%d-%d", tag, a->id, k);
        factum_event_data e = event();
        factum_append_result r;
        uint64_t ts = now_ns();
        a->rc = t_append(&a->t, name, ver[k], &e, 1, &r);
        a->lat[i] = now_ns() - ts;
        if (!a->rc) ver[k] = (int64_t)r.last_version;
    }
    factum_client_close(a->t.client);
    return NULL;
}

static int w3(cli_ctx *c, target *t, size_t count, int clients)
{
    size_t per = count / (size_t)clients ? count / (size_t)clients : 1;
    uint64_t *lat = malloc(per * (size_t)clients * sizeof *lat);
    w3arg *args = calloc((size_t)clients, sizeof *args);
    pthread_t *th = malloc((size_t)clients * sizeof *th);
    if (!lat || !args || !th) return cli_fail(c, -ENOMEM, "bench");
    uint64_t t0 = now_ns();
    for (int i = 0; i < clients; i++) {
        args[i] = (w3arg){{t->store, t->url, NULL}, i, clients, per, lat + (size_t)i * per, 0};
        pthread_create(&th[i], NULL, w3_thread, &args[i]);
    }
    int rc = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        if (args[i].rc && !rc) rc = args[i].rc;
    }
    uint64_t dt = now_ns() - t0;
    char what[64];
    snprintf(what, sizeof what, "%d clients, %zu single-event appends", clients, per * (size_t)clients);
    if (!rc) report("W3", what, per * (size_t)clients, dt, lat, per * (size_t)clients);
    free(th);
    free(args);
    free(lat);
    return rc ? cli_fail(c, rc, "W3") : 0;
}

/* W4: a stream of `count` events read forward 5 times in pages of 1,000. */
static int w4(cli_ctx *c, target *t, size_t count)
{
    char name[64];
    snprintf(name, sizeof name, "bench-%s-W4", tag);
    factum_event_data *ev = malloc(1000 * sizeof *ev);
    if (!ev) return cli_fail(c, -ENOMEM, "bench");
    int rc = 0;
    for (size_t i = 0; i < count && !rc; i += 1000) {
        size_t n = count - i < 1000 ? count - i : 1000;
        for (size_t k = 0; k < n; k++) ev[k] = event();
        rc = t_append(t, name, FACTUM_ANY, ev, n, NULL);
    }
    free(ev);
    if (rc) return cli_fail(c, rc, "W4 (writing the stream)");
    uint64_t bytes = 0, events = 0, t0 = now_ns();
    for (int pass = 0; pass < 5 && !rc; pass++)
        for (uint64_t from = 0; from < count && !rc; from += 1000) {
            size_t n;
            rc = t_read(t, name, from, FACTUM_FORWARD, 1000, &n, &bytes, NULL);
            events += n;
        }
    if (rc) return cli_fail(c, rc, "W4");
    char what[64];
    snprintf(what, sizeof what, "a %zu-event stream read 5 times (pages 1,000)", count);
    report("W4", what, events, now_ns() - t0, NULL, 0);
    return 0;
}

/* W5: the whole global log, in order. */
static int w5(cli_ctx *c, target *t)
{
    uint64_t bytes = 0, events = 0, from = 1, last = 0, t0 = now_ns();
    int rc = 0;
    for (;;) {
        size_t n;
        if ((rc = t_read(t, NULL, from, FACTUM_FORWARD, t->store ? 1000 : 100000, &n, &bytes, &last))) break;
        events += n;
        if (!n) break;
        from = last + 1;
    }
    if (rc) return cli_fail(c, rc, "W5");
    char what[64];
    snprintf(what, sizeof what, "$all, %" PRIu64 " events, in order", events);
    report("W5", what, events, now_ns() - t0, NULL, 0);
    return 0;
}

/* W7: 4 writers on the same 10 streams; every stream must hold 0..n-1. */
typedef struct w7arg {
    target t;
    int id;
    size_t attempts, ok, conflicts;
    int rc;
} w7arg;

static void *w7_thread(void *p)
{
    w7arg *a = p;
    if (a->t.url && (a->rc = factum_client_connect(a->t.url, NULL, &a->t.client))) return NULL;
    uint64_t seed = (now_ns() ^ (uint64_t)a->id) | 1;
    char name[64];
    for (size_t i = 0; i < a->attempts && !a->rc; i++) {
        snprintf(name, sizeof name, "bench-%s-W7-%d", tag, (int)(rnd(&seed) % 10));
        int64_t cur = FACTUM_NO_STREAM;
        size_t n;
        uint64_t bytes = 0, last = 0;
        int rc = t_read(&a->t, name, FACTUM_END, FACTUM_BACKWARD, 1, &n, &bytes, &last);
        if (rc == 0 && n) cur = (int64_t)last;
        else if (rc && rc != FACTUM_ENOTFOUND) {
            a->rc = rc;
            break;
        }
        factum_event_data e = event();
        rc = t_append(&a->t, name, cur, &e, 1, NULL);
        if (rc == 0) a->ok++;
        else if (rc == FACTUM_EWRONGVERSION) a->conflicts++;
        else a->rc = rc;
    }
    factum_client_close(a->t.client);
    return NULL;
}

static int w7(cli_ctx *c, target *t, size_t count)
{
    w7arg args[4];
    pthread_t th[4];
    uint64_t t0 = now_ns();
    for (int i = 0; i < 4; i++) {
        args[i] = (w7arg){{t->store, t->url, NULL}, i, count / 4 ? count / 4 : 1, 0, 0, 0};
        pthread_create(&th[i], NULL, w7_thread, &args[i]);
    }
    size_t ok = 0, conflicts = 0;
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        conflicts += args[i].conflicts;
        if (args[i].rc && !rc) rc = args[i].rc;
    }
    uint64_t dt = now_ns() - t0;
    if (rc) return cli_fail(c, rc, "W7");
    /* Every stream holds versions 0..n-1, and together as many as succeeded. */
    size_t stored = 0;
    int pass = 1;
    for (int k = 0; k < 10; k++) {
        char name[64];
        snprintf(name, sizeof name, "bench-%s-W7-%d", tag, k);
        for (uint64_t from = 0;;) {
            size_t n;
            uint64_t bytes = 0, last = 0;
            rc = t_read(t, name, from, FACTUM_FORWARD, 1000, &n, &bytes, &last);
            if (rc == FACTUM_ENOTFOUND) {
                rc = 0;
                break;
            }
            if (rc) return cli_fail(c, rc, "W7 (checking)");
            if (n && last != from + n - 1) pass = 0;
            stored += n;
            if (n < 1000) break;
            from += n;
        }
    }
    if (stored != ok) pass = 0;
    printf("W7  4 writers on 10 streams: %zu successes, %zu conflicts, %.0f attempts/s   %s\n", ok, conflicts,
           (double)(ok + conflicts) / ((double)dt / 1e9), pass ? "PASS" : "FAIL");
    return pass ? 0 : CLI_FAIL;
}

int cli_cmd_bench(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, bench_opts, sizeof bench_opts / sizeof *bench_opts, &a);
    if (code) return code;
    if (a.help) {
        fputs(bench_help, stdout);
        cli_args_free(&a);
        return 0;
    }
    uint64_t count = 20000, clients = 16;
    const char *ws = cli_get(&a, "workload") ? cli_get(&a, "workload") : "W1,W2,W4,W5,W7";
    if ((code = cli_want_pos(c, &a, 0, 0, ""))) goto out;
    if (cli_get(&a, "count") && (code = cli_parse_u64(c, "--count", cli_get(&a, "count"), &count))) goto out;
    if (cli_get(&a, "clients") && (code = cli_parse_u64(c, "--clients", cli_get(&a, "clients"), &clients))) goto out;
    if (count == 0 || clients == 0 || clients > 1024) {
        code = cli_usage(c, "--count must be positive and --clients 1..1024");
        goto out;
    }
    for (const char *p = ws; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!(l == 2 && p[0] == 'W' && strchr("123457", p[1]))) {
            code = cli_usage(c, "unknown workload '%.*s' (W1, W2, W3, W4, W5, W7)", (int)l, p);
            goto out;
        }
        p += l + (e ? 1 : 0);
    }
    uint8_t u[16];
    factum_uuid_v4(u);
    snprintf(tag, sizeof tag, "%02x%02x%02x%02x", u[0], u[1], u[2], u[3]);
    target t = {0};
    if (c->server) {
        t.url = c->server;
        if ((code = cli_connect(c, &t.client))) goto out;
        printf("factum bench against %s\n", c->server);
    } else {
        if ((code = cli_open_write(c, cli_has(&a, "relaxed"), &t.store))) goto out;
        printf("factum bench on %s (%s, embedded)\n", c->data_dir, cli_has(&a, "relaxed") ? "relaxed" : "durable");
    }
    if (!code && strstr(ws, "W1")) code = w_appends(c, &t, "W1", count, 1);
    if (!code && strstr(ws, "W2")) code = w_appends(c, &t, "W2", count * 10, 100);
    if (!code && strstr(ws, "W3")) code = w3(c, &t, count, (int)clients);
    if (!code && strstr(ws, "W4")) code = w4(c, &t, count < 1000 ? 1000 : count);
    if (!code && strstr(ws, "W5")) code = w5(c, &t);
    if (!code && strstr(ws, "W7")) code = w7(c, &t, count / 2);
    if (t.store) code = cli_close(c, t.store, code);
    factum_client_close(t.client);
out:
    cli_args_free(&a);
    return code;
}
