/*
 * worker.c - factum-bench-js-worker: the production JavaScript engine
 * (src/jshost/jsproc.c driving factum-js, src/js) measured the way the
 * prototypes of jsbench.c are, over the same synthetic events (20 types,
 * 10,000 streams, ~100-byte JSON bodies), in batches of 1,000 with every
 * changed state serialized and handed to the host at the end of each
 * batch, as the projection manager will use it:
 *   W10          count by type, one state
 *   by_stream    foreachStream(): a state per stream (10,000 partitions,
 *                each asked for once through the NEED protocol)
 *   read_body    the sum of body.amount (JSON.parse per event)
 *   emit         linkTo() of every event (one output per event)
 *   footprint    prj_js_open to a loaded projection, the worker's memory
 * Usage: factum-bench-js-worker [--events N] [--quick] [--only ...]
 * (FACTUM_JS_WORKER or factum-js beside it). A benchmark, not a test.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench.h"
#include "jshost/jsproc.h"

#define BATCH 1000

static prj_js_event *events;
static size_t n_events = 1000000;

static void make_events(size_t n)
{
    static const char *const types[20] = {
        "AccountOpened", "MoneyDeposited",     "MoneyWithdrawn",    "AccountClosed",   "OrderPlaced",
        "OrderShipped",  "OrderCancelled",     "PaymentReceived",   "PaymentRefunded", "ItemAdded",
        "ItemRemoved",   "CustomerRegistered", "AddressChanged",    "InvoiceIssued",   "InvoicePaid",
        "StockReserved", "StockReleased",      "ShipmentDelivered", "ReviewPosted",    "CouponApplied"};
    char *p = malloc(n * 320);
    static uint8_t id[16];
    events = calloc(n, sizeof *events);
    uint64_t seed = 42, *seq = calloc(10000, sizeof *seq);
    if (!p || !events || !seq) exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint32_t r = (uint32_t)(seed >> 33);
        prj_js_event *e = &events[i];
        unsigned account = (r >> 5) % 10000;
        e->type = types[r % 20];
        e->type_len = strlen(e->type);
        e->stream = p;
        e->stream_len = (size_t)sprintf(p, "account-%u", account);
        p += e->stream_len + 1;
        e->seq = seq[account]++;
        e->position = i + 1;
        e->id = id;
        e->timestamp_ns = INT64_C(1735689600000000000) + (int64_t)i * 1000;
        e->data = (const uint8_t *)p;
        e->data_len = (size_t)sprintf(p,
                                      "{\"accountId\":\"account-%u\",\"amount\":%u,\"currency\":\"EUR\","
                                      "\"reference\":\"ref-%08zx\",\"at\":1735689600%03u}",
                                      account, r % 1000, i, r % 1000);
        p += e->data_len + 1;
        e->is_json = 1;
        e->meta = (const uint8_t *)p;
        e->meta_len = (size_t)sprintf(p, "{\"$correlationId\":\"c-%08zx\",\"user\":\"u%u\"}", i / 10, r % 97);
        p += e->meta_len + 1;
    }
    free(seq);
}

static uint64_t cpu_of(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
        return (uint64_t)(ut + st) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
    return 0;
}

static long rss_anon_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8)) v = strtol(line + 8, NULL, 10);
    if (f) fclose(f);
    return v;
}

static uint64_t self_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void run_case(const char *name, const char *metric, const char *query)
{
    prj_js *j = NULL;
    char err[512];
    if (prj_js_open(NULL, "bench", query, strlen(query), &j, err, sizeof err)) {
        printf("| %s | failed: %s | | | |\n", name, err);
        return;
    }
    uint64_t t0 = now_ns(), c0 = self_cpu_ns(), w0 = cpu_of(prj_js_pid(j));
    size_t parts = 0, outs = 0, state_bytes = 0, needs = 0;
    int rc = 0;
    for (size_t i = 0; i < n_events && !rc; i += BATCH) {
        size_t k = n_events - i < BATCH ? n_events - i : BATCH;
        prj_js_result res;
        rc = prj_js_process(j, events + i, k, &res);
        while (rc == PRJ_JS_NEED) {
            needs++;
            rc = prj_js_load(j, res.need_partition, res.need_partition_len, res.need_shared, NULL, 0);
            if (!rc) rc = prj_js_resume(j, &res);
        }
        if (rc) break;
        parts += res.n_parts;
        outs += res.n_out;
        for (size_t p = 0; p < res.n_parts; p++)
            state_bytes += res.parts[p].state_len;
    }
    uint64_t cpu = self_cpu_ns() - c0 + cpu_of(prj_js_pid(j)) - w0;
    double secs = (double)(now_ns() - t0) / 1e9;
    if (rc)
        printf("| %s | failed: %s | | | |\n", name, prj_js_error(j));
    else {
        double eps = (double)n_events / secs, cpu_eps = cpu ? (double)n_events * 1e9 / (double)cpu : 0;
        printf("| %s | %.0f | %.0f | %.2f | %zu states (%zu bytes), %zu NEEDs, %zu outputs |\n", name, eps,
               cpu_eps, cpu ? (double)cpu / 1e3 / (double)n_events : 0, parts, state_bytes, needs, outs);
        result("worker", metric, eps);
        char m[64];
        snprintf(m, sizeof m, "%s_cpu", metric);
        result("worker", m, cpu_eps);
    }
    fflush(stdout);
    prj_js_close(j);
}

static void footprint(void)
{
    const char *q =
        "fromAll().when({ $init: () => ({}), $any: (s, e) => { s[e.eventType] = (s[e.eventType] || 0) + 1; "
        "return s; } })";
    enum { N = 10 };
    uint64_t ms[N];
    long rss = 0;
    for (int i = 0; i < N; i++) {
        prj_js *j = NULL;
        char err[512];
        uint64_t t0 = now_ns();
        if (prj_js_open(NULL, "bench", q, strlen(q), &j, err, sizeof err)) return;
        ms[i] = now_ns() - t0;
        prj_js_result res;
        int rc = prj_js_process(j, events, BATCH, &res);
        if (rc == PRJ_JS_NEED && !prj_js_load(j, "", 0, 0, NULL, 0)) prj_js_resume(j, &res);
        rss = rss_anon_kib(prj_js_pid(j));
        prj_js_close(j);
    }
    qsort(ms, N, sizeof *ms, cmp_u64);
    printf("\nprj_js_open to a loaded projection: %.1f ms (median of %d); the worker's RssAnon after 1,000 "
           "events: "
           "%ld KiB\n",
           (double)ms[N / 2] / 1e6, N, rss);
    result("footprint", "open_ms", (double)ms[N / 2] / 1e6);
    result("footprint", "rss_anon_kib", (double)rss);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quick"))
            n_events = 100000;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof only, "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--events N] [--quick] [--only worker,footprint]\n", argv[0]);
            return 2;
        }
    }
    if (n_events < BATCH) n_events = BATCH;
    bench_system = "js-worker";
    make_events(n_events);
    printf("## factum-js (jsproc.c and the worker), %zu events, batches of %d\n", n_events, BATCH);
    if (wanted("worker")) {
        printf(
            "\n| projection | events/s | events per CPU-second (host + worker) | CPU µs/event | per run |\n"
            "|---|---|---|---|---|\n");
        run_case("W10 count by type", "eps",
                 "fromAll().when({ $init: () => ({}),\n"
                 "  $any: (s, e) => { s[e.eventType] = (s[e.eventType] || 0) + 1; return s; } })");
        run_case("count per stream, foreachStream (10,000 partitions)", "eps_foreach",
                 "fromAll().foreachStream().when({ $init: () => ({ n: 0 }), $any: (s, e) => { s.n++; return "
                 "s; } })");
        run_case("sum of body.amount (JSON.parse per event)", "eps_read_body",
                 "fromAll().when({ $init: () => ({ n: 0, total: 0 }),\n"
                 "  $any: (s, e) => { s.n++; s.total += e.body.amount; return s; } })");
        run_case("linkTo every event (one output per event)", "eps_link",
                 "fromAll().when({ $any: (s, e) => { linkTo('all-' + e.eventType, e); } })");
    }
    if (wanted("footprint")) footprint();
    free(events);
    return 0;
}
