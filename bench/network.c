/*
 * network.c - BENCH.md's workloads against factumd over the network with the
 * C client (factum_client.h): W1 (single appends), W2 (100-event appends), W3
 * (16 and 256 clients, each its own connection), W4 (stream reads), W5 ($all
 * reads), W6 (live subscription latency), CU (catch-up of one subscription
 * over the log) and W7 (contention correctness), plus the loopback round
 * trip measured in the same run; and two measures of what security costs
 * (issue 12), run when asked for by name: SETUP (a new connection until
 * its first answer: TCP, the TLS handshake, HTTP/2's SETTINGS, one call)
 * and CALLS (small calls per second on one connection and on 8, each
 * carrying the connection string's credentials: a cached user's cost).
 * W11 (loading a 10-event aggregate: one Read call, its p50 also in
 * loopback round trips of the same run) and W12 (1,000 live subscribers,
 * --big 10,000, each its own connection: bench/fanout.h; factumd's CPU time
 * and memory from /proc when $FACTUM_BENCH_SERVER_PID names it).
 *
 * W3P (W3's appends pipelined from one and from two threads, a client each:
 * factum_client_append_submit) and W12M (W12's subscribers multiplexed on
 * --w12-conns clients, 4 by default, a polling thread each:
 * factum_client_subscribe_submit) measure the client's multiplexing (ADR
 * 0022) beside W3 and W12.
 *
 * Usage: factum-bench-network URL [--quick] [--big] [--only W1,...] [--w4-page N] [--system NAME] [--w12-conns N]
 *   --w4-page N: W4 reads pages of N events (default 1,000, as BENCH.md), to
 *   show the fixed cost of a read call.
 *   --system NAME: the name in the "@" result lines (default factumd), e.g.
 *   factumd-tls for the secure half of bench/run-network.sh --secure.
 * (bench/run-network.sh starts a factumd and runs this.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "factum.h"
#include "bench.h"
#include "factum_client.h"
#include "fanout.h"

static const char *url;
static int quick;





static factum_client *connect_or_die(void)
{
    factum_client *c;
    int rc = factum_client_connect(url, NULL, &c);
    if (rc) {
        fprintf(stderr, "connect %s: %s\n", url, factum_strerror(rc));
        exit(1);
    }
    return c;
}

/* One untimed append on a new connection before its clock starts: the
 * steady state is measured, not the TCP and TLS handshakes, nor the first
 * check of a password (a key derivation of tens of milliseconds on the
 * server; SETUP measures a connection's start). */
static void warm_up(factum_client *c, const char *what)
{
    factum_event_data e = {.type = "warm-up", .data = "{}", .data_len = 2, .flags = FACTUM_EVENT_JSON};
    factum_append_result r;
    int rc = factum_client_append(c, "bench-warm-up", FACTUM_ANY, &e, 1, &r);
    if (rc) {
        fprintf(stderr, "%s warm-up: %s (%s)\n", what, factum_strerror(rc), factum_client_last_error(c));
        exit(1);
    }
}

/* ---- the event of BENCH.md (a pool of payloads; a fresh id each) ----- */

typedef struct evbuf {
    char data[256], meta[160];
    factum_event_data ev;
} evbuf;
#define POOL 1024
static evbuf pool[POOL];

static void make_pool(void)
{
    for (uint64_t i = 0; i < POOL; i++) {
        char c[37], k[37];
        uint8_t u[16];
        factum_uuid_v4(u);
        factum_uuid_format(u, c);
        factum_uuid_v4(u);
        factum_uuid_format(u, k);
        evbuf *b = &pool[i];
        int dl = snprintf(b->data, sizeof b->data,
                          "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                          ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                          "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                          "\"at\":\"2024-03-15T10:22:31.123Z\"}",
                          i * 7919 % 10000, 100 + i % 9000, i);
        int ml = snprintf(b->meta, sizeof b->meta,
                          "{\"correlationId\":\"%s\",\"causationId\":\"%s\",\"user\":\"alice\"}", c, k);
        memset(&b->ev, 0, sizeof b->ev);
        b->ev.type = "MoneyDeposited";
        b->ev.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
        b->ev.data = b->data;
        b->ev.data_len = (size_t)dl;
        b->ev.metadata = b->meta;
        b->ev.metadata_len = (size_t)ml;
    }
}

static factum_event_data event(uint64_t n)
{
    factum_event_data e = pool[n % POOL].ev;
    factum_uuid_v4(e.id);
    e.has_id = 1;
    return e;
}

static char tag[16];


/* ---- the wire --------------------------------------------------------- */

/* The loopback round trip, two ways: *same is one thread writing 64 bytes
 * and reading them on the other end of the connection and back (the wire
 * alone: no thread waits); the return value is a request and its answer
 * between two threads (an echo thread answers each 64 bytes), so that each
 * side waits and is woken as a client and a server are: the least a call
 * over the loopback costs. 0 if the probe could not run. */
static int echo_fd;
static void *echo_main(void *arg)
{
    (void)arg;
    char b[64];
    while (read(echo_fd, b, 64) == 64 && write(echo_fd, b, 64) == 64) {
    }
    return NULL;
}

static double loopback_rtt_us(double *same)
{
    *same = 0;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&a, &al))
        return 0;
    int cs = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cs, (struct sockaddr *)&a, sizeof a)) return 0;
    int ss = accept(ls, NULL, NULL);
    setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(ss, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[64] = {0};
    int n = 20000, i;
    uint64_t t0 = now_ns();
    for (i = 0; i < n; i++) {
        if (write(cs, b, 64) != 64 || read(ss, b, 64) != 64 || write(ss, b, 64) != 64 || read(cs, b, 64) != 64) break;
    }
    if (i == n) *same = (double)(now_ns() - t0) / 1e3 / n;
    double us = 0;
    pthread_t t;
    echo_fd = ss;
    if (!pthread_create(&t, NULL, echo_main, NULL)) {
        t0 = now_ns();
        for (i = 0; i < n; i++) {
            if (write(cs, b, 64) != 64 || read(cs, b, 64) != 64) break;
        }
        if (i == n) us = (double)(now_ns() - t0) / 1e3 / n;
        shutdown(cs, SHUT_WR); /* the echo thread reads the end and stops */
        pthread_join(t, NULL);
    }
    close(cs);
    close(ss);
    close(ls);
    return us;
}

/* ---- W1 / W2 ---------------------------------------------------------- */

static void w1(void)
{
    factum_client *c = connect_or_die();
    warm_up(c, "W1");
    size_t n = quick ? 5000 : 100000, streams = 10000;
    int64_t *ver = malloc(streams * sizeof *ver);
    for (size_t i = 0; i < streams; i++) ver[i] = FACTUM_NO_STREAM;
    uint64_t *lat = malloc(n * sizeof *lat), seed = now_ns() | 1;
    char name[48];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % streams;
        snprintf(name, sizeof name, "w1-%s-%" PRIu64, tag, a);
        factum_event_data e = event(i);
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_client_append(c, name, ver[a], &e, 1, &r);
        lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W1: %s (%s)\n", factum_strerror(rc), factum_client_last_error(c));
            exit(1);
        }
        ver[a] = (int64_t)r.last_version;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W1 | network | %zu single-event appends, random stream of %zu | %.0f ev/s | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs |\n",
           n, streams, n / secs, pct(lat, n, 50), pct(lat, n, 99), pct(lat, n, 99.9));
    result("W1", "ev_per_s", n / secs);
    result("W1", "p50_us", pct(lat, n, 50));
    result("W1", "p99_us", pct(lat, n, 99));
    latencies("W1", lat, n);
    fflush(stdout);
    free(lat);
    free(ver);
    factum_client_close(c);
}

static void w2(void)
{
    factum_client *c = connect_or_die();
    warm_up(c, "W2");
    size_t appends = quick ? 500 : 10000, per = 100, streams = 10000;
    int64_t *ver = malloc(streams * sizeof *ver);
    for (size_t i = 0; i < streams; i++) ver[i] = FACTUM_NO_STREAM;
    factum_event_data *ev = malloc(per * sizeof *ev);
    uint64_t *lat = malloc(appends * sizeof *lat), seed = now_ns() | 1;
    char name[48];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < appends; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % streams;
        snprintf(name, sizeof name, "w2-%s-%" PRIu64, tag, a);
        for (size_t k = 0; k < per; k++) ev[k] = event(i * per + k);
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_client_append(c, name, ver[a], ev, per, &r);
        lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W2: %s\n", factum_strerror(rc));
            exit(1);
        }
        ver[a] = (int64_t)r.last_version;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, appends, sizeof *lat, cmp_u64);
    printf("| W2 | network | %zu appends of %zu events, random stream | %.0f ev/s | per append p50 %.0f µs, p99 %.0f "
           "µs |\n",
           appends, per, appends * per / secs, pct(lat, appends, 50), pct(lat, appends, 99));
    result("W2", "ev_per_s", appends * per / secs);
    fflush(stdout);
    free(lat);
    free(ev);
    free(ver);
    factum_client_close(c);
}

/* ---- W3 --------------------------------------------------------------- */

typedef struct w3arg {
    int t, clients;
    size_t n;
    uint64_t *lat;
    pthread_barrier_t *ready; /* every client connected and warmed up: the clock starts */
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    factum_client *c = connect_or_die();
    warm_up(c, "W3");
    pthread_barrier_wait(a->ready);
    size_t streams = 10000 / (size_t)a->clients + 1;
    int64_t *ver = malloc(streams * sizeof *ver);
    for (size_t i = 0; i < streams; i++) ver[i] = FACTUM_NO_STREAM;
    uint64_t seed = (now_ns() ^ ((uint64_t)a->t * 7919)) | 1;
    char name[48];
    for (size_t i = 0; i < a->n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        size_t k = seed % streams;
        snprintf(name, sizeof name, "w3-%s-%d-%" PRIu64, tag, a->clients, (uint64_t)(k * (size_t)a->clients + (size_t)a->t));
        factum_event_data e = event(i);
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_client_append(c, name, ver[k], &e, 1, &r);
        a->lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W3: %s\n", factum_strerror(rc));
            exit(1);
        }
        ver[k] = (int64_t)r.last_version;
    }
    free(ver);
    factum_client_close(c);
    return NULL;
}

static void w3(int clients)
{
    size_t total = quick ? 20000 : 200000, per = total / (size_t)clients;
    uint64_t *lat = malloc(total * sizeof *lat);
    pthread_t *th = malloc((size_t)clients * sizeof *th);
    w3arg *args = malloc((size_t)clients * sizeof *args);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, (unsigned)clients + 1);
    for (int t = 0; t < clients; t++) {
        args[t] = (w3arg){t, clients, per, lat + (size_t)t * per, &ready};
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 256 << 10);
        pthread_create(&th[t], &at, w3_client, &args[t]);
        pthread_attr_destroy(&at);
    }
    pthread_barrier_wait(&ready);
    uint64_t t0 = now_ns();
    for (int t = 0; t < clients; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&ready);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t n = per * (size_t)clients;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W3 | network | %d clients, %zu single-event appends | %.0f ev/s | p50 %.0f µs, p99 %.0f µs |\n", clients,
           n, n / secs, pct(lat, n, 50), pct(lat, n, 99));
    result(clients == 16 ? "W3" : "W3_256", "ev_per_s", n / secs);
    fflush(stdout);
    free(args);
    free(th);
    free(lat);
}

/* ---- W3P: W3's appends pipelined from one or two threads --------------------
 * Each thread has one client and keeps W3P_WINDOW appends in flight
 * (factum_client_append_submit, completions from factum_client_poll), to
 * random streams of its own with exact expected versions (decided at
 * submission: one connection's appends are carried out in order). */
#define W3P_WINDOW 256

typedef struct w3p_thread {
    int t, threads;
    size_t n, done, inflight;
    uint64_t *lat;
    int failed;
} w3p_thread;

typedef struct w3p_op {
    w3p_thread *th;
    size_t i;
    uint64_t t0;
} w3p_op;

static void w3p_done(void *ctx, int rc, const factum_append_result *res, const char *error)
{
    (void)res;
    w3p_op *op = ctx;
    w3p_thread *a = op->th;
    a->lat[op->i] = now_ns() - op->t0;
    if (rc) {
        fprintf(stderr, "W3P: %s: %s\n", factum_strerror(rc), error);
        a->failed = 1;
    }
    a->done++;
    a->inflight--;
}

static void *w3p_client(void *p)
{
    w3p_thread *a = p;
    factum_client *c = connect_or_die();
    size_t streams = 10000 / (size_t)a->threads + 1;
    int64_t *ver = malloc(streams * sizeof *ver);
    w3p_op *ops = malloc(a->n * sizeof *ops);
    for (size_t i = 0; i < streams; i++) ver[i] = FACTUM_NO_STREAM;
    uint64_t seed = (now_ns() ^ ((uint64_t)a->t * 7919)) | 1;
    char name[48];
    size_t i = 0;
    while (a->done < a->n) {
        while (i < a->n && a->inflight < W3P_WINDOW) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t k = seed % streams;
            snprintf(name, sizeof name, "w3p-%s-%d-%" PRIu64, tag, a->threads,
                     (uint64_t)(k * (size_t)a->threads + (size_t)a->t));
            factum_event_data e = event(i);
            ops[i] = (w3p_op){a, i, now_ns()};
            int rc = factum_client_append_submit(c, name, ver[k], &e, 1, w3p_done, &ops[i]);
            if (rc) {
                fprintf(stderr, "W3P submit: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
                exit(1);
            }
            ver[k] = ver[k] == FACTUM_NO_STREAM ? 0 : ver[k] + 1;
            a->inflight++;
            i++;
        }
        if (factum_client_poll(c, 10000) < 0 || a->failed) exit(1);
    }
    free(ops);
    free(ver);
    factum_client_close(c);
    return NULL;
}

static void w3p(int threads)
{
    size_t total = quick ? 20000 : 200000, per = total / (size_t)threads;
    uint64_t *lat = malloc(total * sizeof *lat);
    pthread_t th[2];
    w3p_thread args[2];
    double cpu0 = self_cpu_s();
    uint64_t t0 = now_ns();
    for (int t = 0; t < threads; t++) {
        args[t] = (w3p_thread){t, threads, per, 0, 0, lat + (size_t)t * per, 0};
        pthread_create(&th[t], NULL, w3p_client, &args[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double secs = (double)(now_ns() - t0) / 1e9, cpu = self_cpu_s() - cpu0;
    size_t n = per * (size_t)threads;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W3P | network | %d thread%s, one client each, %d appends in flight each, %zu single-event appends | "
           "%.0f ev/s | p50 %.0f µs, p99 %.0f µs; client CPU %.2f µs per append |\n",
           threads, threads == 1 ? "" : "s", W3P_WINDOW, n, n / secs, pct(lat, n, 50), pct(lat, n, 99), 1e6 * cpu / (double)n);
    char w[16];
    snprintf(w, sizeof w, "W3P_%d", threads);
    result(w, "ev_per_s", n / secs);
    result(w, "p50_us", pct(lat, n, 50));
    result(w, "client_cpu_us_per_append", 1e6 * cpu / (double)n);
    fflush(stdout);
    free(lat);
}

/* ---- W4 / W5 ---------------------------------------------------------- */

static uint64_t w4_page = 1000; /* --w4-page: events per read call (BENCH.md: 1,000) */

static void w4(void)
{
    factum_client *c = connect_or_die();
    char name[48];
    snprintf(name, sizeof name, "w4-%s", tag);
    factum_event_data *ev = malloc(1000 * sizeof *ev);
    for (size_t i = 0; i < 10000; i += 1000) {
        for (size_t k = 0; k < 1000; k++) ev[k] = event(i + k);
        if (factum_client_append(c, name, FACTUM_ANY, ev, 1000, NULL)) exit(1);
    }
    free(ev);
    uint64_t events = 0, bytes = 0, t0 = now_ns();
    uint64_t calls = 0;
    for (int pass = 0; pass < 20; pass++)
        for (uint64_t from = 0; from < 10000; from += w4_page, calls++) {
            factum_client_batch *b;
            if (factum_client_read_stream(c, name, from, FACTUM_FORWARD, w4_page, &b)) exit(1);
            size_t n = factum_client_batch_count(b);
            for (size_t i = 0; i < n; i++) {
                const factum_event *e = factum_client_batch_event(b, i);
                bytes += e->data_len + e->metadata_len;
            }
            events += n;
            factum_client_batch_free(b);
        }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W4 | network | one 10,000-event stream read forward 20 times, pages of %" PRIu64 " | %.0f ev/s | %.0f MB/s, "
           "%.1f µs per call |\n",
           w4_page, events / secs, bytes / secs / 1e6, secs * 1e6 / (double)calls);
    result("W4", "ev_per_s", events / secs);
    fflush(stdout);
    factum_client_close(c);
}

#define W5U_DOC "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"steps\":[" \
                   "{\"op\":\"rename\",\"from\":\"amount\",\"to\":\"amountCents\"}," \
                   "{\"op\":\"default\",\"path\":\"channel\",\"value\":\"branch\"}]}"
static double w5_passes(factum_client *c, const char *label, const char *what);

static void w5(void)
{
    factum_client *c = connect_or_die();
    size_t target = quick ? 200000 : 1300000;
    factum_stats dummy;
    (void)dummy;
    /* Fill up to `target` events in the log (the earlier workloads count). */
    factum_client_batch *b;
    uint64_t have = 0;
    if (factum_client_read_all(c, FACTUM_END, FACTUM_BACKWARD, NULL, 1, &b) == 0) {
        if (factum_client_batch_count(b)) have = factum_client_batch_event(b, 0)->position;
        factum_client_batch_free(b);
    }
    factum_event_data *ev = malloc(1000 * sizeof *ev);
    char name[48];
    for (uint64_t i = have; i < target; i += 1000) {
        snprintf(name, sizeof name, "w5-%s-%" PRIu64, tag, i / 1000 % 1000);
        for (size_t k = 0; k < 1000; k++) ev[k] = event(i + k);
        if (factum_client_append(c, name, FACTUM_ANY, ev, 1000, NULL)) exit(1);
    }
    free(ev);
    double none = w5_passes(c, "W5", "");
    if (wanted("W5U")) {
        /* The same reads with one upcaster on every event (issue 14): the
         * server upcasts each; then it is removed again. */
        static const char doc[] = W5U_DOC;
        factum_event_data up = {.type = FACTUM_UPCASTER_SET_TYPE, .flags = FACTUM_EVENT_JSON, .data = doc,
                                .data_len = sizeof doc - 1};
        none = w5_passes(c, "W5N", ", again: the baseline of W5U");
        if (factum_client_append(c, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &up, 1, NULL)) exit(1);
        double with = w5_passes(c, "W5U", ", one upcaster (2 steps) on every event");
        printf("| W5U/W5N | network | upcasting's cost on W5 | %.3f | |\n", with / none);
        result("W5U", "ratio", with / none);
        if (wanted("W5S")) {
            /* ADR 0016: the same change as a script upcaster (it replaces the
             * declarative one): the server upcasts off its loop, a page of 64
             * per round trip to the script's worker. */
            static const char js[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"script\":"
                                     "\"function (e) { const d = e.data; d.amountCents = d.amount; delete d.amount; "
                                     "if (d.channel === undefined) d.channel = 'branch'; return e; }\"}";
            factum_event_data sup = {.type = FACTUM_UPCASTER_SET_TYPE, .flags = FACTUM_EVENT_JSON, .data = js,
                                     .data_len = sizeof js - 1};
            if (factum_client_append(c, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &sup, 1, NULL)) exit(1);
            double script = w5_passes(c, "W5S", ", one script upcaster on every event");
            printf("| W5S/W5N | network | a script upcaster's cost on W5 | %.3f | |\n"
                   "| W5S/W5U | network | script / declarative | %.3f | |\n", script / none, script / with);
            result("W5S", "ratio", script / none);
            result("W5S", "ratio_declarative", script / with);
        }
        static const char rm[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1}";
        factum_event_data del = {.type = FACTUM_UPCASTER_REMOVED_TYPE, .flags = FACTUM_EVENT_JSON, .data = rm,
                                 .data_len = sizeof rm - 1};
        if (factum_client_append(c, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &del, 1, NULL)) exit(1);
    }
    factum_client_close(c);
}

/* W5's reads: $all in order, 3 passes; prints the row and returns ev/s. */
static double w5_passes(factum_client *c, const char *label, const char *what)
{
    factum_client_batch *b;
    uint64_t events = 0, bytes = 0, t0 = now_ns();
    for (int pass = 0; pass < 3; pass++) {
        uint64_t from = 0;
        for (;;) {
            if (factum_client_read_all(c, from, FACTUM_FORWARD, NULL, 100000, &b)) exit(1);
            size_t n = factum_client_batch_count(b);
            for (size_t i = 0; i < n; i++) {
                const factum_event *e = factum_client_batch_event(b, i);
                bytes += e->data_len + e->metadata_len;
            }
            if (n) from = factum_client_batch_event(b, n - 1)->position + 1;
            events += n;
            factum_client_batch_free(b);
            if (n < 100000) break;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| %s | network | $all (%" PRIu64 " events) read in order, 3 passes%s | %.0f ev/s | %.0f MB/s |\n", label,
           events / 3, what, events / secs, bytes / secs / 1e6);
    result(label, "ev_per_s", events / secs);
    fflush(stdout);
    return events / secs;
}

/* ---- W7 --------------------------------------------------------------- */

typedef struct w7ack {
    int stream;
    uint64_t version;
    uint8_t id[16];
} w7ack;
typedef struct w7arg {
    int t;
    w7ack acks[2500];
    size_t n, conflicts;
} w7arg;

static void *w7_writer(void *p)
{
    w7arg *a = p;
    factum_client *c = connect_or_die();
    char name[48];
    uint64_t seed = (now_ns() ^ (uint64_t)a->t) | 1;
    for (int i = 0; i < 2500; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int k = (int)(seed % 10);
        snprintf(name, sizeof name, "w7-%s-%d", tag, k);
        factum_client_batch *b;
        int64_t cur = FACTUM_NO_STREAM;
        int rc = factum_client_read_stream(c, name, FACTUM_END, FACTUM_BACKWARD, 1, &b);
        if (rc == 0) {
            if (factum_client_batch_count(b)) cur = (int64_t)factum_client_batch_event(b, 0)->version;
            factum_client_batch_free(b);
        } else if (rc != FACTUM_ENOTFOUND) {
            fprintf(stderr, "W7 read: %s\n", factum_strerror(rc));
            exit(1);
        }
        factum_event_data e = event((uint64_t)i);
        factum_append_result r;
        rc = factum_client_append(c, name, cur, &e, 1, &r);
        if (rc == 0) {
            a->acks[a->n] = (w7ack){k, r.last_version, {0}};
            memcpy(a->acks[a->n].id, e.id, 16);
            a->n++;
        } else if (rc == FACTUM_EWRONGVERSION) {
            a->conflicts++;
        } else {
            fprintf(stderr, "W7: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    factum_client_close(c);
    return NULL;
}

static void w7(void)
{
    static w7arg args[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].t = t;
        pthread_create(&th[t], NULL, w7_writer, &args[t]);
    }
    size_t ok = 0, conflicts = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].n;
        conflicts += args[t].conflicts;
    }
    factum_client *c = connect_or_die();
    int pass = 1;
    size_t stored = 0;
    for (int k = 0; k < 10; k++) {
        char name[48];
        snprintf(name, sizeof name, "w7-%s-%d", tag, k);
        factum_client_batch *b;
        int rc = factum_client_read_stream(c, name, 0, FACTUM_FORWARD, 100000, &b);
        if (rc == FACTUM_ENOTFOUND) continue;
        if (rc) {
            pass = 0;
            continue;
        }
        size_t n = factum_client_batch_count(b);
        stored += n;
        for (size_t i = 0; i < n; i++) {
            const factum_event *e = factum_client_batch_event(b, i);
            int found = e->version == i ? 0 : -1;
            for (int t = 0; t < 4 && found == 0; t++)
                for (size_t j = 0; j < args[t].n; j++)
                    if (args[t].acks[j].stream == k && args[t].acks[j].version == i &&
                        !memcmp(args[t].acks[j].id, e->id, 16))
                        found = 1;
            if (found != 1) pass = 0;
        }
        factum_client_batch_free(b);
    }
    if (stored != ok) pass = 0;
    factum_client_close(c);
    printf("| W7 | network | 4 writers x 2,500 attempts on 10 streams | %zu successes, %zu conflicts | %s |\n", ok,
           conflicts, pass ? "PASS" : "FAIL");
    result("W7", "pass", pass);
    fflush(stdout);
    if (!pass) exit(2);
}

/* ---- W6: live subscription latency; catch-up throughput ----------------- */

/* The writer stamps each event's id with its index (bytes 0..7, then a
 * marker) so that the subscriber can match deliveries to appends. */
#define W6_MARK 0xfa
typedef struct w6_state {
    size_t n;
    uint64_t *start, *got, *acked;
    size_t received;
    int ready; /* the subscription is live */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} w6_state;

static int w6_on(void *ctx, const factum_sub_item *it)
{
    w6_state *w = ctx;
    if (it->kind == FACTUM_SUB_CAUGHT_UP) {
        pthread_mutex_lock(&w->mu);
        w->ready = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    if (it->kind != FACTUM_SUB_EVENT || it->event.id[8] != W6_MARK) return 0;
    uint64_t t = now_ns(), i = 0;
    for (int k = 0; k < 8; k++) i = i << 8 | it->event.id[k];
    if (i < w->n && !w->got[i]) {
        w->got[i] = t;
        w->received++;
    }
    return w->received >= w->n;
}

static void *w6_sub(void *p)
{
    w6_state *w = p;
    factum_client *c = connect_or_die();
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    int rc = factum_client_subscribe(c, &o, w6_on, w);
    if (rc) {
        fprintf(stderr, "W6 subscription: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
        exit(1);
    }
    factum_client_close(c);
    return NULL;
}

static void w6(void)
{
    static w6_state w;
    w.n = quick ? 2000 : 10000;
    w.start = calloc(w.n, sizeof *w.start);
    w.got = calloc(w.n, sizeof *w.got);
    w.acked = calloc(w.n, sizeof *w.acked);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t th;
    pthread_create(&th, NULL, w6_sub, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.ready) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    factum_client *c = connect_or_die();
    warm_up(c, "W6");
    char name[48];
    snprintf(name, sizeof name, "w6-%s", tag);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (size_t i = 0; i < w.n; i++) {
        next.tv_nsec += 1000000; /* 1,000 appends/s */
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        factum_event_data e = event(i);
        for (int k = 0; k < 8; k++) e.id[k] = (uint8_t)(i >> (56 - 8 * k));
        e.id[8] = W6_MARK;
        w.start[i] = now_ns();
        int rc = factum_client_append(c, name, FACTUM_ANY, &e, 1, NULL);
        if (rc) {
            fprintf(stderr, "W6 append: %s\n", factum_strerror(rc));
            exit(1);
        }
        w.acked[i] = now_ns();
    }
    pthread_join(th, NULL);
    factum_client_close(c);
    uint64_t *lat = malloc(w.n * sizeof *lat);
    for (size_t i = 0; i < w.n; i++)
        lat[i] = w.got[i] - w.start[i];
    qsort(lat, w.n, sizeof *lat, cmp_u64);
    uint64_t *ack = malloc(w.n * sizeof *ack);
    for (size_t i = 0; i < w.n; i++)
        ack[i] = w.acked[i] - w.start[i];
    qsort(ack, w.n, sizeof *ack, cmp_u64);
    printf("| W6 | network | the same appends, acknowledged | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs | |\n",
           pct(ack, w.n, 50), pct(ack, w.n, 99), pct(ack, w.n, 99.9));
    free(ack);
    free(w.acked);
    printf("| W6 | network | one $all subscriber, %zu single appends at 1,000/s | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs "
           "| max %.0f µs |\n",
           w.n, pct(lat, w.n, 50), pct(lat, w.n, 99), pct(lat, w.n, 99.9), (double)lat[w.n - 1] / 1000.0);
    result("W6", "p50_us", pct(lat, w.n, 50));
    result("W6", "p99_us", pct(lat, w.n, 99));
    latencies("W6", lat, w.n);
    fflush(stdout);
    free(lat);
    free(w.start);
    free(w.got);
}

typedef struct catchup {
    uint64_t events, bytes;
} catchup;

static int cu_on(void *ctx, const factum_sub_item *it)
{
    catchup *c = ctx;
    if (it->kind == FACTUM_SUB_CAUGHT_UP) return 1;
    if (it->kind == FACTUM_SUB_EVENT) {
        c->events++;
        c->bytes += it->event.data_len + it->event.metadata_len;
    }
    return 0;
}

/* One subscription to $all from the start until it is caught up. */
static void catch_up(void)
{
    factum_client *c = connect_or_die();
    size_t target = quick ? 200000 : 1300000;
    factum_client_batch *b;
    uint64_t have = 0;
    if (factum_client_read_all(c, FACTUM_END, FACTUM_BACKWARD, NULL, 1, &b) == 0) {
        if (factum_client_batch_count(b)) have = factum_client_batch_event(b, 0)->position;
        factum_client_batch_free(b);
    }
    factum_event_data *ev = malloc(1000 * sizeof *ev);
    char name[48];
    for (uint64_t i = have; i < target; i += 1000) {
        snprintf(name, sizeof name, "cu-%s-%" PRIu64, tag, i / 1000 % 1000);
        for (size_t k = 0; k < 1000; k++) ev[k] = event(i + k);
        if (factum_client_append(c, name, FACTUM_ANY, ev, 1000, NULL)) exit(1);
    }
    free(ev);
    catchup r = {0, 0};
    uint64_t t0 = now_ns();
    int rc = factum_client_subscribe(c, NULL, cu_on, &r);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (rc) {
        fprintf(stderr, "catch-up: %s\n", factum_strerror(rc));
        exit(1);
    }
    printf("| catch-up | network | one subscription to $all from the start until caught up (%" PRIu64
           " events) | %.0f ev/s | %.0f MB/s |\n",
           r.events, r.events / secs, r.bytes / secs / 1e6);
    result("CU", "ev_per_s", r.events / secs);
    fflush(stdout);
    factum_client_close(c);
}

/* ---- SETUP, CALLS: the cost of TLS and authentication ------------------- */

/* A new connection until its first answer, n times (each closed after). */
static void setup(void)
{
    size_t n = quick ? 100 : 1000;
    uint64_t *lat = malloc(n * sizeof *lat);
    char v[64];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t t = now_ns();
        factum_client *c = connect_or_die();
        int rc = factum_client_server_version(c, v, sizeof v);
        lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "SETUP: %s (%s)\n", factum_strerror(rc), factum_client_last_error(c));
            exit(1);
        }
        factum_client_close(c);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    factum_client *c = connect_or_die();
    const char *tls = factum_client_tls(c);
    printf("| SETUP | network | %zu new connections until their first answer (connect, %s%s, SETTINGS, one "
           "call) | %.0f conn/s | p50 %.0f µs, p99 %.0f µs |\n",
           n, tls[0] ? "handshake " : "no TLS", tls, n / secs, pct(lat, n, 50), pct(lat, n, 99));
    factum_client_close(c);
    result("SETUP", "p50_us", pct(lat, n, 50));
    result("SETUP", "p99_us", pct(lat, n, 99));
    result("SETUP", "conn_per_s", n / secs);
    fflush(stdout);
    free(lat);
}

typedef struct calls_arg {
    size_t n;
    const char *stream;
    uint64_t *lat;
    pthread_barrier_t *ready; /* every client connected and warmed up: the clock starts */
} calls_arg;

/* Read the one event of a small stream, n times: the smallest call that
 * goes through authentication and authorization of a stream. */
static void *calls_client(void *p)
{
    calls_arg *a = p;
    factum_client *c = connect_or_die();
    warm_up(c, "CALLS");
    pthread_barrier_wait(a->ready);
    for (size_t i = 0; i < a->n; i++) {
        factum_client_batch *b;
        uint64_t t = now_ns();
        int rc = factum_client_read_stream(c, a->stream, 0, FACTUM_FORWARD, 1, &b);
        a->lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "CALLS: %s (%s)\n", factum_strerror(rc), factum_client_last_error(c));
            exit(1);
        }
        factum_client_batch_free(b);
    }
    factum_client_close(c);
    return NULL;
}

static void calls(void)
{
    char name[48];
    snprintf(name, sizeof name, "calls-%s", tag);
    factum_client *c = connect_or_die();
    factum_event_data e = event(0);
    if (factum_client_append(c, name, FACTUM_ANY, &e, 1, NULL)) exit(1);
    factum_client_close(c);
    static const int widths[] = {1, 8};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++) {
        int k = widths[w];
        size_t per = (quick ? 4000 : 40000) / (size_t)k, n = per * (size_t)k;
        uint64_t *lat = malloc(n * sizeof *lat);
        calls_arg *args = malloc((size_t)k * sizeof *args);
        pthread_t *th = malloc((size_t)k * sizeof *th);
        pthread_barrier_t ready;
        pthread_barrier_init(&ready, NULL, (unsigned)k + 1);
        for (int t = 0; t < k; t++) {
            args[t] = (calls_arg){per, name, lat + (size_t)t * per, &ready};
            pthread_create(&th[t], NULL, calls_client, &args[t]);
        }
        pthread_barrier_wait(&ready);
        uint64_t t0 = now_ns();
        for (int t = 0; t < k; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&ready);
        double secs = (double)(now_ns() - t0) / 1e9;
        qsort(lat, n, sizeof *lat, cmp_u64);
        printf("| CALLS | network | %d client%s, %zu one-event reads, credentials on each | %.0f calls/s | p50 %.0f µs, "
               "p99 %.0f µs |\n",
               k, k > 1 ? "s" : "", n, n / secs, pct(lat, n, 50), pct(lat, n, 99));
        result(k == 1 ? "CALLS" : "CALLS_8", "calls_per_s", n / secs);
        result(k == 1 ? "CALLS" : "CALLS_8", "p50_us", pct(lat, n, 50));
        fflush(stdout);
        free(th);
        free(args);
        free(lat);
    }
}

/* ---- W8: a consumer group of 10 at a steady 10,000 events/s ------------- */

#define W8_MEMBERS 10
#define W8_PRODUCERS 2 /* each appends W8_BATCH events every millisecond: 10,000/s */
#define W8_BATCH 5
#define W8_MARK 0xfb
static struct {
    size_t n;          /* events in all */
    uint64_t *start;   /* by sequence number */
    uint64_t *lat;     /* delivery latency of the first delivery */
    _Atomic size_t received;
    _Atomic int stop;
    char group[64], stream[64];
} w8s;

static int w8_on(void *ctx, const factum_sub_item *it, int retry)
{
    (void)ctx;
    (void)retry;
    if (it->kind == FACTUM_SUB_IDLE) return atomic_load(&w8s.stop) ? FACTUM_PS_STOP : FACTUM_PS_LATER;
    if (it->event.id[8] != W8_MARK) return FACTUM_PS_ACK;
    uint64_t t = now_ns(), i = 0;
    for (int k = 0; k < 8; k++) i = i << 8 | it->event.id[k];
    if (i < w8s.n && !w8s.lat[i]) {
        w8s.lat[i] = t - w8s.start[i];
        atomic_fetch_add(&w8s.received, 1);
    }
    return FACTUM_PS_ACK;
}

static void *w8_member(void *p)
{
    (void)p;
    factum_client *c = connect_or_die();
    int rc = factum_client_ps_subscribe(c, w8s.stream, w8s.group, 100, 200, w8_on, NULL);
    if (rc) {
        fprintf(stderr, "W8 member: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
        exit(1);
    }
    factum_client_close(c);
    return NULL;
}

static void *w8_producer(void *p)
{
    size_t me = (size_t)(uintptr_t)p, per = w8s.n / W8_PRODUCERS;
    factum_client *c = connect_or_die();
    warm_up(c, "W8");
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    /* Each producer appends W8_BATCH events every millisecond, the
     * producers offset from each other within the millisecond. */
    next.tv_nsec += (long)(me * (1000000 / W8_PRODUCERS));
    factum_event_data e[W8_BATCH];
    for (size_t j = 0; j < per; j += W8_BATCH) {
        next.tv_nsec += 1000000;
        while (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        uint64_t t = now_ns();
        for (size_t b = 0; b < W8_BATCH; b++) {
            uint64_t i = me * per + j + b;
            e[b] = event(i);
            for (int k = 0; k < 8; k++) e[b].id[k] = (uint8_t)(i >> (56 - 8 * k));
            e[b].id[8] = W8_MARK;
            w8s.start[i] = t;
        }
        if (factum_client_append(c, w8s.stream, FACTUM_ANY, e, W8_BATCH, NULL)) {
            fprintf(stderr, "W8 append failed\n");
            exit(1);
        }
    }
    factum_client_close(c);
    return NULL;
}

static void w8(void)
{
    int secs = quick ? 5 : 60;
    w8s.n = (size_t)secs * 10000;
    w8s.start = calloc(w8s.n, sizeof *w8s.start);
    w8s.lat = calloc(w8s.n, sizeof *w8s.lat);
    atomic_store(&w8s.received, 0);
    atomic_store(&w8s.stop, 0);
    snprintf(w8s.stream, sizeof w8s.stream, "w8-%s", tag);
    snprintf(w8s.group, sizeof w8s.group, "w8");
    factum_client *c = connect_or_die();
    factum_client_ps_settings st;
    factum_client_ps_settings_init(&st);
    st.start = FACTUM_SUB_START;
    int rc = factum_client_ps_create(c, w8s.stream, w8s.group, &st);
    if (rc) {
        fprintf(stderr, "W8 create: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
        exit(1);
    }
    pthread_t m[W8_MEMBERS], pr[W8_PRODUCERS];
    for (int i = 0; i < W8_MEMBERS; i++)
        pthread_create(&m[i], NULL, w8_member, NULL);
    usleep(300000);
    uint64_t t0 = now_ns();
    for (int i = 0; i < W8_PRODUCERS; i++)
        pthread_create(&pr[i], NULL, w8_producer, (void *)(uintptr_t)i);
    for (int i = 0; i < W8_PRODUCERS; i++)
        pthread_join(pr[i], NULL);
    double prod_secs = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < 1000 && atomic_load(&w8s.received) < w8s.n; i++)
        usleep(10000);
    atomic_store(&w8s.stop, 1);
    for (int i = 0; i < W8_MEMBERS; i++)
        pthread_join(m[i], NULL);
    size_t got = atomic_load(&w8s.received);
    uint64_t *lat = malloc(w8s.n * sizeof *lat);
    size_t k = 0, le1 = 0, le2 = 0, le5 = 0, le10 = 0;
    for (size_t i = 0; i < w8s.n; i++) {
        if (!w8s.lat[i]) continue;
        lat[k++] = w8s.lat[i];
        le1 += w8s.lat[i] <= 1000000;
        le2 += w8s.lat[i] <= 2000000;
        le5 += w8s.lat[i] <= 5000000;
        le10 += w8s.lat[i] <= 10000000;
    }
    qsort(lat, k, sizeof *lat, cmp_u64);
    printf("| W8 | network | group of %d members, %d producers (%d events per append, every ms) at 10,000 ev/s for %d s "
           "(%.0f ev/s achieved), %zu/%zu "
           "delivered | ≤1 ms %.2f%%, ≤2 ms %.2f%%, ≤5 ms %.2f%%, ≤10 ms %.2f%% | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs |\n",
           W8_MEMBERS, W8_PRODUCERS, W8_BATCH, secs, (double)w8s.n / prod_secs, got, w8s.n, 100.0 * le1 / (double)w8s.n,
           100.0 * le2 / (double)w8s.n, 100.0 * le5 / (double)w8s.n, 100.0 * le10 / (double)w8s.n, pct(lat, k, 50),
           pct(lat, k, 99), pct(lat, k, 99.9));
    result("W8", "pace_pct", (double)w8s.n / prod_secs / 100.0); /* of 10,000 ev/s */
    result("W8", "le2ms_pct", 100.0 * le2 / (double)w8s.n);
    result("W8", "p50_us", pct(lat, k, 50));
    result("W8", "p999_us", pct(lat, k, 99.9));
    latencies("W8", lat, k);
    fflush(stdout);
    factum_client_ps_delete(c, w8s.stream, w8s.group);
    factum_client_close(c);
    free(lat);
    free(w8s.start);
    free(w8s.lat);
}

/* ---- W11: loading an aggregate (a whole 10-event stream, one Read call) --- */

static int big;         /* --big: W12 with 10,000 subscribers */
static double rtt_us;   /* the loopback round trip of this run */

static void w11(void)
{
    factum_client *c = connect_or_die();
    size_t streams = quick ? 500 : 10000, loads = quick ? 2000 : 100000;
    char name[48];
    factum_event_data ev[10];
    for (size_t a = 0; a < streams; a++) { /* the fill, not timed */
        snprintf(name, sizeof name, "agg-%s-%zu", tag, a);
        for (size_t k = 0; k < 10; k++) ev[k] = event(a * 10 + k);
        int rc = factum_client_append(c, name, FACTUM_NO_STREAM, ev, 10, NULL);
        if (rc) {
            fprintf(stderr, "W11 fill: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    uint64_t *lat = malloc(loads * sizeof *lat), seed = now_ns() | 1, bytes = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < loads; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        snprintf(name, sizeof name, "agg-%s-%" PRIu64, tag, seed % streams);
        factum_client_batch *b;
        uint64_t t = now_ns();
        int rc = factum_client_read_stream(c, name, 0, FACTUM_FORWARD, 1000, &b);
        lat[i] = now_ns() - t;
        if (rc || factum_client_batch_count(b) != 10) {
            fprintf(stderr, "W11: %s (%s)\n", factum_strerror(rc), rc ? factum_client_last_error(c) : "not 10 events");
            exit(1);
        }
        for (size_t k = 0; k < 10; k++) {
            const factum_event *e = factum_client_batch_event(b, k);
            bytes += e->data_len + e->metadata_len;
        }
        factum_client_batch_free(b);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, loads, sizeof *lat, cmp_u64);
    double p50 = pct(lat, loads, 50);
    printf("| W11 | network | load an aggregate: %zu whole 10-event streams (one Read call each), random of %zu | "
           "%.0f calls/s | p50 %.0f µs (%.1f loopback round trips of %.1f µs), p99 %.0f µs |\n",
           loads, streams, loads / secs, p50, rtt_us > 0 ? p50 / rtt_us : 0, rtt_us, pct(lat, loads, 99));
    result("W11", "calls_per_s", loads / secs);
    result("W11", "p50_us", p50);
    result("W11", "p99_us", pct(lat, loads, 99));
    if (rtt_us > 0) result("W11", "p50_rtt", p50 / rtt_us);
    latencies("W11", lat, loads);
    fflush(stdout);
    free(lat);
    factum_client_close(c);
}

/* ---- W12: fan-out to many live subscribers ----------------------------------
 * The C client runs one subscription per connection and blocks the thread
 * that runs it (factum_client_subscribe), so N subscribers are N
 * connections, each on a thread of its own with a small stack: that is
 * the measuring side's cost, reported beside the server's. */
#define W12_MARK 0xfc
static struct {
    size_t n_events;
    uint64_t *start;
    hist lat;
    _Atomic uint64_t delivered;
    _Atomic size_t live;
    atomic_int stop;
} w12n;

static int w12_on(void *ctx, const factum_sub_item *it)
{
    (void)ctx;
    if (it->kind == FACTUM_SUB_CAUGHT_UP) {
        atomic_fetch_add(&w12n.live, 1);
        return 0;
    }
    if (it->kind == FACTUM_SUB_IDLE) return atomic_load(&w12n.stop);
    if (it->kind != FACTUM_SUB_EVENT || it->event.id[8] != W12_MARK) return 0;
    uint64_t t = now_ns(), i = 0;
    for (int k = 0; k < 8; k++) i = i << 8 | it->event.id[k];
    if (i < w12n.n_events) {
        hist_add(&w12n.lat, t - w12n.start[i]);
        atomic_fetch_add_explicit(&w12n.delivered, 1, memory_order_relaxed);
    }
    return atomic_load(&w12n.stop);
}

static void *w12_sub(void *p)
{
    factum_client *c = p;
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    o.idle_ms = 200; /* to notice the end of the run */
    int rc = factum_client_subscribe(c, &o, w12_on, NULL);
    if (rc) {
        fprintf(stderr, "W12 subscription: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
        exit(1);
    }
    return NULL;
}

static void w12(void)
{
    w12_report r = {.how = "a connection and a client thread each"};
    r.subs = w12_subs(quick, big);
    r.events = w12_events(quick, big);
    w12n.n_events = r.events;
    w12n.start = calloc(r.events, sizeof *w12n.start);
    memset(&w12n.lat, 0, sizeof w12n.lat);
    atomic_store(&w12n.delivered, 0);
    atomic_store(&w12n.live, 0);
    atomic_store(&w12n.stop, 0);
    int pid = server_pid();
    r.have_server = pid > 0 && proc_usage_get(pid, &r.before) == 0;
    if (!r.have_server) proc_usage_get(getpid(), &r.before);
    factum_client **cs = calloc(r.subs, sizeof *cs);
    pthread_t *th = calloc(r.subs, sizeof *th);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 128 << 10);
    for (size_t j = 0; j < r.subs; j++) {
        cs[j] = connect_or_die();
        if (pthread_create(&th[j], &at, w12_sub, cs[j])) {
            fprintf(stderr, "W12: cannot start subscriber thread %zu\n", j);
            exit(1);
        }
    }
    pthread_attr_destroy(&at);
    for (int i = 0; i < 6000 && atomic_load(&w12n.live) < r.subs; i++) usleep(10000);
    if (atomic_load(&w12n.live) < r.subs) {
        fprintf(stderr, "W12: only %zu of %zu subscriptions live after 60 s\n", atomic_load(&w12n.live), r.subs);
        exit(1);
    }
    usleep(200000);
    proc_usage_get(r.have_server ? pid : getpid(), &r.connected);
    double cpu0 = self_cpu_s();
    uint64_t t_conn = now_ns();
    factum_client *c = connect_or_die();
    char name[48];
    snprintf(name, sizeof name, "w12-%s", tag);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r.events && !w12_late(t0, r.events); i++, r.appended++) {
        pace_ms(&next);
        factum_event_data e = event(i);
        for (int k = 0; k < 8; k++) e.id[k] = (uint8_t)(i >> (56 - 8 * k));
        e.id[8] = W12_MARK;
        w12n.start[i] = now_ns();
        int rc = factum_client_append(c, name, FACTUM_ANY, &e, 1, NULL);
        if (rc) {
            fprintf(stderr, "W12 append: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    r.secs = (double)(now_ns() - t0) / 1e9;
    factum_client_close(c);
    w12_drain(&w12n.delivered, (uint64_t)r.subs * r.appended);
    proc_usage_get(r.have_server ? pid : getpid(), &r.after);
    r.self_cpu_s = self_cpu_s() - cpu0;
    r.wall_s = (double)(now_ns() - t_conn) / 1e9;
    r.delivered = atomic_load(&w12n.delivered);
    atomic_store(&w12n.stop, 1);
    for (size_t j = 0; j < r.subs; j++) {
        pthread_join(th[j], NULL);
        factum_client_close(cs[j]);
    }
    w12_print(w12_name(r.subs), "network", &w12n.lat, &r);
    result(w12_name(r.subs), "client_cpu_us_per_delivery", r.delivered ? 1e6 * r.self_cpu_s / (double)r.delivered : 0);
    printf("| %s | network | measuring side CPU per delivery | %.2f µs | |\n", w12_name(r.subs),
           r.delivered ? 1e6 * r.self_cpu_s / (double)r.delivered : 0);
    free(th);
    free(cs);
    free(w12n.start);
}

/* ---- W12M: W12 with the subscribers multiplexed ---------------------------
 * The same subscribers, events and measures as W12, but served by
 * w12_conns clients (--w12-conns, default 4; at least one per 90
 * subscribers: factumd runs 100 calls at once per connection), each subscription one HTTP/2
 * stream (factum_client_subscribe_submit) and each client one thread that
 * runs factum_client_poll: the measuring side's cost per delivery without a
 * connection and a thread per subscriber. */
static int w12_conns = 4;

static void *w12m_poller(void *p)
{
    factum_client *c = p;
    while (!atomic_load(&w12n.stop)) factum_client_poll(c, 100);
    return NULL;
}

static void w12m(void)
{
    w12_report r;
    memset(&r, 0, sizeof r);
    r.subs = w12_subs(quick, big);
    r.events = w12_events(quick, big);
    /* A connection carries at most the server's SETTINGS_MAX_CONCURRENT_STREAMS
     * calls at once (factumd: 100): a subscription beyond it would wait for
     * a stream to end. So at least one connection per 90 subscribers. */
    int min_conns = (int)((r.subs + 89) / 90);
    int conns = w12_conns > min_conns ? w12_conns : min_conns;
    char how[128];
    snprintf(how, sizeof how, "multiplexed on %d connections, a client thread each", conns);
    r.how = how;
    w12n.n_events = r.events;
    w12n.start = calloc(r.events, sizeof *w12n.start);
    memset(&w12n.lat, 0, sizeof w12n.lat);
    atomic_store(&w12n.delivered, 0);
    atomic_store(&w12n.live, 0);
    atomic_store(&w12n.stop, 0);
    int pid = server_pid();
    r.have_server = pid > 0 && proc_usage_get(pid, &r.before) == 0;
    if (!r.have_server) proc_usage_get(getpid(), &r.before);
    factum_client **cs = calloc((size_t)conns, sizeof *cs);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    for (int j = 0; j < conns; j++) cs[j] = connect_or_die();
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    for (size_t j = 0; j < r.subs; j++) {
        factum_client *c = cs[j % (size_t)conns];
        int rc = factum_client_subscribe_submit(c, &o, w12_on, NULL, NULL, NULL);
        if (rc) {
            fprintf(stderr, "W12M subscription: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
            exit(1);
        }
    }
    for (int j = 0; j < conns; j++)
        if (pthread_create(&th[j], NULL, w12m_poller, cs[j])) {
            fprintf(stderr, "W12M: cannot start poller thread %d\n", j);
            exit(1);
        }
    for (int i = 0; i < 6000 && atomic_load(&w12n.live) < r.subs; i++) usleep(10000);
    if (atomic_load(&w12n.live) < r.subs) {
        fprintf(stderr, "W12M: only %zu of %zu subscriptions live after 60 s\n", atomic_load(&w12n.live), r.subs);
        exit(1);
    }
    usleep(200000);
    proc_usage_get(r.have_server ? pid : getpid(), &r.connected);
    double cpu0 = self_cpu_s();
    uint64_t t_conn = now_ns();
    factum_client *c = connect_or_die();
    char name[48];
    snprintf(name, sizeof name, "w12m-%s", tag);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r.events && !w12_late(t0, r.events); i++, r.appended++) {
        pace_ms(&next);
        factum_event_data e = event(i);
        for (int k = 0; k < 8; k++) e.id[k] = (uint8_t)(i >> (56 - 8 * k));
        e.id[8] = W12_MARK;
        w12n.start[i] = now_ns();
        int rc = factum_client_append(c, name, FACTUM_ANY, &e, 1, NULL);
        if (rc) {
            fprintf(stderr, "W12M append: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    r.secs = (double)(now_ns() - t0) / 1e9;
    factum_client_close(c);
    w12_drain(&w12n.delivered, (uint64_t)r.subs * r.appended);
    proc_usage_get(r.have_server ? pid : getpid(), &r.after);
    r.self_cpu_s = self_cpu_s() - cpu0;
    r.wall_s = (double)(now_ns() - t_conn) / 1e9;
    r.delivered = atomic_load(&w12n.delivered);
    atomic_store(&w12n.stop, 1);
    for (int j = 0; j < conns; j++) {
        pthread_join(th[j], NULL);
        factum_client_close(cs[j]); /* ends its subscriptions */
    }
    char w[16];
    snprintf(w, sizeof w, "%sM", w12_name(r.subs));
    w12_print(w, "network", &w12n.lat, &r);
    result(w, "client_cpu_us_per_delivery", r.delivered ? 1e6 * r.self_cpu_s / (double)r.delivered : 0);
    printf("| %s | network | measuring side CPU per delivery | %.2f µs | |\n", w,
           r.delivered ? 1e6 * r.self_cpu_s / (double)r.delivered : 0);
    free(th);
    free(cs);
    free(w12n.start);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [--quick] [--big] [--only W1,W2,...] [--w4-page N] [--system NAME]\n", argv[0]);
        return 2;
    }
    url = argv[1];
    bench_system = "factumd";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--big")) big = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--system") && i + 1 < argc) bench_system = argv[++i];
        else if (!strcmp(argv[i], "--w12-conns") && i + 1 < argc) {
            w12_conns = atoi(argv[++i]);
            if (w12_conns < 1 || w12_conns > 64) {
                fprintf(stderr, "--w12-conns: 1 to 64\n");
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--w4-page") && i + 1 < argc) {
            w4_page = strtoull(argv[++i], NULL, 10);
            if (w4_page < 1 || w4_page > 10000) {
                fprintf(stderr, "--w4-page: 1 to 10000\n");
                return 2;
            }
        }
    }
    uint8_t u[16];
    factum_uuid_v4(u);
    snprintf(tag, sizeof tag, "%02x%02x%02x%02x", u[0], u[1], u[2], u[3]);
    make_pool();
    double same_us;
    rtt_us = loopback_rtt_us(&same_us);
    printf("| wire | loopback TCP round trip, 64 bytes | %.1f µs between two threads | %.1f µs within one |\n", rtt_us,
           same_us);
    if (wanted("W1")) w1();
    if (wanted("W2")) w2();
    if (wanted("W3")) {
        w3(16);
        w3(256);
    }
    if (only[0] && wanted("W3P")) { /* when named: ADR 0022 */
        w3p(1);
        w3p(2);
    }
    if (wanted("W4")) w4();
    if (wanted("W5")) w5();
    if (wanted("W6")) w6();
    if (wanted("CU")) catch_up();
    if (wanted("W8")) w8();
    if (wanted("W7")) w7();
    if (wanted("W11")) w11();
    if (wanted("W12")) {
        raise_nofile();
        w12();
    }
    if (only[0] && wanted("W12M")) w12m();
    /* Only when named: they measure the cost of security (run-network.sh --secure). */
    if (only[0] && wanted("SETUP")) setup();
    if (only[0] && wanted("CALLS")) calls();
    return 0;
}
