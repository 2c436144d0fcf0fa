/*
 * embedded.c - the BENCH.md workloads against libfactum in-process:
 * W1 (single appends), W2 (100-event appends), W3 (16 and 256 concurrent
 * clients; W3CQ: the same from one thread through a factum_driver, the
 * completion API, with io_uring and with the writer thread), W4 (stream reads), W5 ($all reads), W7 (contention correctness)
 * and W9 (10 M events in 1 M streams, kill -9, restart), together with the
 * machine's own fdatasync rate measured in the same run, so that every
 * figure can be read as a fraction of what the disk allows.
 *
 * W11 (loading a 10-event aggregate) and W12 (fan-out to 1,000 subscribers;
 * --big: 10,000) are BENCH.md's as well (bench/fanout.h).
 *
 * Usage: factum-bench-embedded [--dir D] [--relaxed] [--quick] [--seal] [--warm] [--big] [--w9] [--w9-events N] [--only W1,W2,...]
 * Prints a Markdown report on stdout. Durable mode unless --relaxed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "factum.h"
#include "bench.h"
#include "fanout.h"

static const char *base_dir = "/tmp/factum-bench";
static int relaxed, quick;
/* --seal: crypto-shredding on (ADR 0027): every workload stream is a data
 * subject's (categories account, contended, agg); reads open the events
 * through the main thread's reader, reset per page. */
static int seal;
/* --warm: W1, W2 and W3 append to streams that each have an event already
 * (written first, untimed): with --seal, what a known subject's events cost
 * (a new subject's first event also makes its key durable). */
static int warm;
static char seal_key[600];
static factum_reader *seal_rdr;



static void rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) {
    }
}



/* ---- the event of BENCH.md ------------------------------------------ */

typedef struct evbuf {
    char data[256], meta[160];
    factum_event_data ev;
} evbuf;

static _Thread_local uint64_t rng_state;
static uint64_t rnd(void)
{
    if (!rng_state) rng_state = now_ns() ^ (uint64_t)pthread_self();
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Payloads are made once (a pool of distinct ones) so that the timed loops
 * measure the store, not snprintf; every event still gets its own id. */
#define POOL 1024
static evbuf pool[POOL];

static void make_payload(evbuf *b, uint64_t account, uint64_t n)
{
    char c[37], k[37];
    uint8_t u[16];
    factum_uuid_v4(u);
    factum_uuid_format(u, c);
    factum_uuid_v4(u);
    factum_uuid_format(u, k);
    int dl = snprintf(b->data, sizeof b->data,
                      "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                      ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                      "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                      "\"at\":\"2024-03-15T10:22:31.123Z\"}",
                      account, 100 + n % 9000, n);
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

static void make_pool(void)
{
    for (uint64_t i = 0; i < POOL; i++)
        make_payload(&pool[i], i * 7919 % 10000, i);
}

/* The event of BENCH.md: ~200 bytes of JSON data, ~110 of metadata, a new id. */
static void make_event(evbuf *b, uint64_t account, uint64_t n)
{
    b->ev = pool[(account * 31 + n) % POOL].ev;
    factum_uuid_v4(b->ev.id);
    b->ev.has_id = 1;
}

static factum_store *open_store(const char *name, int fresh)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, name);
    if (fresh) rm_rf(dir);
    factum_options o;
    factum_options_init(&o);
    o.durability = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    if (seal) {
        o.master_key_file = seal_key;
        o.shred_categories = "account,contended,agg";
    }
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        exit(1);
    }
    return s;
}

/* ---- the machine ----------------------------------------------------- */

static double fsync_rate(int prealloc, double *lat_us)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fsync-probe", base_dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int n = quick ? 500 : 2000;
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    if (prealloc) {
        for (int i = 0; i < n; i++)
            if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) break;
        fsync(fd);
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        if (pwrite(fd, buf, sizeof buf, (off_t)i * 4096) != (ssize_t)sizeof buf) break;
        fdatasync(fd);
    }
    double s = (double)(now_ns() - t0) / 1e9;
    close(fd);
    unlink(path);
    *lat_us = s / n * 1e6;
    return n / s;
}


/* The disk alone at W6's pace: a 4 KiB write + fdatasync every millisecond
 * on a preallocated file (an idle disk and CPU answer slower than a busy
 * one: this is the floor of W6's latency). */
static void paced_fsync(double *p50, double *p99)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fsync-probe", base_dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int n = quick ? 500 : 2000;
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < n; i++)
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) break;
    fsync(fd);
    uint64_t *lat = malloc((size_t)n * sizeof *lat);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int i = 0; i < n; i++) {
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        uint64_t t = now_ns();
        if (pwrite(fd, buf, sizeof buf, (off_t)i * 4096) != (ssize_t)sizeof buf) break;
        fdatasync(fd);
        lat[i] = now_ns() - t;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    *p50 = pct(lat, (size_t)n, 50);
    *p99 = pct(lat, (size_t)n, 99);
    free(lat);
}


/* ---- W1: single-event appends to random streams ----------------------- */

static int64_t *versions; /* per account: last known version */

/* --warm: every stream of a write workload gets an event first (untimed,
 * 100 streams per append), so that no timed append meets a new subject. */
static void warm_streams(factum_store *s, size_t streams)
{
    factum_append_req req[100];
    evbuf b[100];
    char names[100][32];
    for (size_t i = 0; i < streams; i += 100) {
        size_t k = 0;
        for (; k < 100 && i + k < streams; k++) {
            snprintf(names[k], sizeof names[k], "account-%zu", i + k);
            make_event(&b[k], i + k, 0);
            req[k] = (factum_append_req){.stream = names[k], .expected = FACTUM_ANY, .events = &b[k].ev,
                                         .n_events = 1};
        }
        if (factum_append_multi(s, req, k, NULL, NULL)) exit(1);
        for (size_t j = 0; j < k && i + j < 10000; j++)
            versions[i + j] = 0;
    }
}

static void w1_as(const char *label, int warmed)
{
    size_t n = quick ? 10000 : 100000, streams = 10000;
    factum_store *s = open_store("w1", 1);
    if (!versions) versions = malloc(streams * sizeof *versions);
    for (size_t i = 0; i < streams; i++)
        versions[i] = FACTUM_NO_STREAM;
    if (warmed) warm_streams(s, streams);
    uint64_t *lat = malloc(n * sizeof *lat);
    evbuf b;
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = rnd() % streams;
        snprintf(name, sizeof name, "account-%" PRIu64, a);
        make_event(&b, a, i);
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_append(s, name, versions[a], &b.ev, 1, &r);
        lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W1 append: %s\n", factum_strerror(rc));
            exit(1);
        }
        versions[a] = (int64_t)r.last_version;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| %s | %zu single-event appends, random stream of %zu%s | %.0f ev/s | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs |\n",
           label, n, streams, warmed ? " (each with an event already)" : "", n / secs, pct(lat, n, 50),
           pct(lat, n, 99), pct(lat, n, 99.9));
    result(label, "ev_per_s", n / secs);
    result(label, "p50_us", pct(lat, n, 50));
    result(label, "p99_us", pct(lat, n, 99));
    latencies(label, lat, n);
    fflush(stdout);
    free(lat);
    factum_store_close(s);
}

static void w1(void)
{
    w1_as("W1", warm);
}

/* ---- W2: 100-event appends ------------------------------------------ */

static void w2(void)
{
    size_t appends = quick ? 1000 : 10000, per = 100, streams = 10000;
    factum_store *s = open_store("w2", 1);
    for (size_t i = 0; i < streams; i++)
        versions[i] = FACTUM_NO_STREAM;
    if (warm) warm_streams(s, streams);
    evbuf *b = malloc(per * sizeof *b);
    factum_event_data *ev = malloc(per * sizeof *ev);
    uint64_t *lat = malloc(appends * sizeof *lat);
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < appends; i++) {
        uint64_t a = rnd() % streams;
        snprintf(name, sizeof name, "account-%" PRIu64, a);
        for (size_t k = 0; k < per; k++) {
            make_event(&b[k], a, i * per + k);
            ev[k] = b[k].ev;
        }
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_append(s, name, versions[a], ev, per, &r);
        lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W2 append: %s\n", factum_strerror(rc));
            exit(1);
        }
        versions[a] = (int64_t)r.last_version;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, appends, sizeof *lat, cmp_u64);
    printf("| W2 | %zu appends of %zu events, random stream | %.0f ev/s | per append p50 %.0f µs, p99 %.0f "
           "µs |\n",
           appends, per, appends * per / secs, pct(lat, appends, 50), pct(lat, appends, 99));
    result("W2", "ev_per_s", appends * per / secs);
    fflush(stdout);
    free(lat);
    free(ev);
    free(b);
    factum_store_close(s);
}

/* ---- W3: concurrent clients ----------------------------------------- */

typedef struct w3arg {
    factum_store *s;
    int t, clients;
    size_t n;
    uint64_t *lat;
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    size_t streams = 10000 / (size_t)a->clients + 1;
    int64_t *ver = malloc(streams * sizeof *ver);
    for (size_t i = 0; i < streams; i++)
        ver[i] = warm ? 0 : FACTUM_NO_STREAM;
    evbuf b;
    char name[32];
    for (size_t i = 0; i < a->n; i++) {
        size_t k = rnd() % streams;
        uint64_t acct = k * (uint64_t)a->clients + (uint64_t)a->t; /* ≡ t (mod clients) */
        snprintf(name, sizeof name, "account-%" PRIu64, acct);
        make_event(&b, acct, i);
        factum_append_result r;
        uint64_t t = now_ns();
        int rc = factum_append(a->s, name, ver[k], &b.ev, 1, &r);
        a->lat[i] = now_ns() - t;
        if (rc) {
            fprintf(stderr, "W3 append: %s\n", factum_strerror(rc));
            exit(1);
        }
        ver[k] = (int64_t)r.last_version;
    }
    free(ver);
    return NULL;
}

static void w3(int clients)
{
    size_t total = quick ? 20000 : 200000;
    factum_store *s = open_store("w3", 1);
    if (warm) warm_streams(s, (10000 / (size_t)clients + 1) * (size_t)clients);
    pthread_t *th = malloc((size_t)clients * sizeof *th);
    w3arg *args = malloc((size_t)clients * sizeof *args);
    uint64_t *lat = malloc(total * sizeof *lat);
    size_t per = total / (size_t)clients;
    uint64_t t0 = now_ns();
    for (int t = 0; t < clients; t++) {
        args[t] = (w3arg){s, t, clients, per, lat + (size_t)t * per};
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 256 << 10);
        pthread_create(&th[t], &at, w3_client, &args[t]);
        pthread_attr_destroy(&at);
    }
    for (int t = 0; t < clients; t++)
        pthread_join(th[t], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t n = per * (size_t)clients;
    qsort(lat, n, sizeof *lat, cmp_u64);
    factum_stats st;
    factum_store_get_stats(s, &st);
    printf("| W3 | %d clients, %zu single-event appends | %.0f ev/s | p50 %.0f µs, p99 %.0f µs; %.1f appends "
           "per fdatasync |\n",
           clients, n, n / secs, pct(lat, n, 50), pct(lat, n, 99),
           st.fsyncs ? (double)st.appends / (double)st.fsyncs : 0);
    result(clients == 16 ? "W3" : "W3_256", "ev_per_s", n / secs);
    fflush(stdout);
    free(lat);
    free(args);
    free(th);
    factum_store_close(s);
}

/* ---- W3CQ: the same load from one thread, through a driver ----------- */

/* W3's clients as logical clients of one thread: each keeps one append
 * outstanding through a factum_driver (the completion API), submitting the
 * next from its completion callback. flags: 0 (io_uring: the thread leads
 * the group commit) or FACTUM_DRIVER_NO_URING (the writer thread). */
typedef struct cqclient {
    factum_driver *d;
    int t, clients;
    size_t left, done;
    int64_t *ver;
    size_t k; /* stream slot of the append in flight */
    evbuf b;
    char name[32];
    factum_append_req req;
    uint64_t t0;
    uint64_t *lat;
} cqclient;

static void cq_send(cqclient *c);

static void cq_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)n;
    (void)failed;
    cqclient *c = arg;
    c->lat[c->done++] = now_ns() - c->t0;
    if (rc) {
        fprintf(stderr, "W3CQ append: %s\n", factum_strerror(rc));
        exit(1);
    }
    c->ver[c->k] = (int64_t)res[0].last_version;
    if (--c->left) cq_send(c);
}

static void cq_send(cqclient *c)
{
    size_t streams = 10000 / (size_t)c->clients + 1;
    c->k = rnd() % streams;
    uint64_t acct = c->k * (uint64_t)c->clients + (uint64_t)c->t;
    snprintf(c->name, sizeof c->name, "account-%" PRIu64, acct);
    make_event(&c->b, acct, c->done);
    c->req = (factum_append_req){c->name, c->ver[c->k], &c->b.ev, 1};
    c->t0 = now_ns();
    int rc = factum_driver_append(c->d, &c->req, 1, cq_done, c);
    if (rc) {
        fprintf(stderr, "W3CQ submit: %s\n", factum_strerror(rc));
        exit(1);
    }
}

static void w3cq(int clients, unsigned flags)
{
    size_t total = quick ? 20000 : 200000;
    factum_store *s = open_store("w3cq", 1);
    factum_driver *d;
    int rc = factum_driver_new(s, flags, &d);
    if (rc) {
        fprintf(stderr, "W3CQ driver: %s\n", factum_strerror(rc));
        exit(1);
    }
    cqclient *cl = calloc((size_t)clients, sizeof *cl);
    uint64_t *lat = malloc(total * sizeof *lat);
    size_t per = total / (size_t)clients, streams = 10000 / (size_t)clients + 1;
    uint64_t t0 = now_ns();
    for (int t = 0; t < clients; t++) {
        cl[t] = (cqclient){.d = d, .t = t, .clients = clients, .left = per, .lat = lat + (size_t)t * per};
        cl[t].ver = malloc(streams * sizeof *cl[t].ver);
        for (size_t i = 0; i < streams; i++)
            cl[t].ver[i] = FACTUM_NO_STREAM;
        cq_send(&cl[t]);
    }
    while (factum_driver_in_flight(d))
        factum_driver_run(d, -1);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t n = per * (size_t)clients;
    qsort(lat, n, sizeof *lat, cmp_u64);
    factum_stats st;
    factum_store_get_stats(s, &st);
    const char *how = factum_driver_uring(d)  ? "io_uring, the thread leads"
                      : factum_driver_sync(d) ? "the thread makes the fdatasync itself"
                                              : "writer thread";
    printf("| W3CQ | %d logical clients on one thread (driver: %s), %zu single-event appends | %.0f ev/s | p50 %.0f "
           "µs, p99 %.0f µs; %.1f appends per fdatasync |\n",
           clients, how, n, n / secs, pct(lat, n, 50), pct(lat, n, 99),
           st.fsyncs ? (double)st.appends / (double)st.fsyncs : 0);
    char key[32];
    snprintf(key, sizeof key, "W3CQ%s%s", clients == 16 ? "" : "_256",
             factum_driver_uring(d) ? "" : factum_driver_sync(d) ? "_SYNC" : "_WT");
    result(key, "ev_per_s", n / secs);
    fflush(stdout);
    factum_driver_free(d);
    for (int t = 0; t < clients; t++)
        free(cl[t].ver);
    free(cl);
    free(lat);
    factum_store_close(s);
}

/* ---- W4 / W5: reads -------------------------------------------------- */

static void w4(void)
{
    factum_store *s = open_store("w4", 1);
    size_t n = 10000;
    evbuf *b = malloc(1000 * sizeof *b);
    factum_event_data *ev = malloc(1000 * sizeof *ev);
    for (size_t i = 0; i < n; i += 1000) {
        for (size_t k = 0; k < 1000; k++) {
            make_event(&b[k], 1, i + k);
            ev[k] = b[k].ev;
        }
        if (factum_append(s, "account-1", FACTUM_ANY, ev, 1000, NULL)) exit(1);
    }
    factum_event *page = malloc(1000 * sizeof *page);
    uint64_t events = 0, bytes = 0;
    uint64_t t0 = now_ns();
    for (int pass = 0; pass < 20; pass++) {
        uint64_t next = 0;
        size_t got;
        do {
            factum_reader_reset(seal_rdr);
            if (factum_read_stream(s, "account-1", next, FACTUM_FORWARD, page, 1000, &got, &next)) exit(1);
            if (seal && got && !(page[0].flags & FACTUM_EVENT_OPENED)) {
                fprintf(stderr, "W4: --seal, and the events were not sealed\n");
                exit(1);
            }
            for (size_t i = 0; i < got; i++)
                bytes += page[i].data_len + page[i].metadata_len;
            events += got;
        } while (next != FACTUM_END);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W4 | one %zu-event stream read forward 20 times, pages of 1,000 | %.0f ev/s | %.0f MB/s of "
           "data+metadata |\n",
           n, events / secs, bytes / secs / 1e6);
    result("W4", "ev_per_s", events / secs);
    fflush(stdout);
    free(page);
    free(ev);
    free(b);
    factum_store_close(s);
}

/* Fill a store with `target` events quickly (100-event appends to random
 * streams, durable). */
static void fill(factum_store *s, size_t target, size_t streams)
{
    evbuf *b = malloc(100 * sizeof *b);
    factum_event_data *ev = malloc(100 * sizeof *ev);
    char name[32];
    for (size_t i = 0; i < target; i += 100) {
        uint64_t a = rnd() % streams;
        snprintf(name, sizeof name, "account-%" PRIu64, a);
        for (size_t k = 0; k < 100; k++) {
            make_event(&b[k], a, i + k);
            ev[k] = b[k].ev;
        }
        if (factum_append(s, name, FACTUM_ANY, ev, 100, NULL)) exit(1);
    }
    free(ev);
    free(b);
}

/* W5's reads: $all in order, 3 passes; with ub, each event through
 * factum_upcast (many: each page through factum_upcast_many, as a reader
 * with pages does: one round trip to a script's worker per page). Prints
 * the row and returns ev/s. */
static double w5_passes_many(factum_store *s, size_t n, factum_upcast_buf *ub, int many, const char *label,
                             const char *what);
static double w5_passes(factum_store *s, size_t n, factum_upcast_buf *ub, const char *label, const char *what)
{
    return w5_passes_many(s, n, ub, 0, label, what);
}

static double w5_passes_many(factum_store *s, size_t n, factum_upcast_buf *ub, int many, const char *label,
                             const char *what)
{
    factum_event *page = malloc(1000 * sizeof *page);
    uint64_t events = 0, bytes = 0;
    uint64_t t0 = now_ns();
    for (int pass = 0; pass < 3; pass++) {
        uint64_t pos = 1;
        size_t got;
        do {
            factum_reader_reset(seal_rdr);
            if (factum_read_all(s, pos, FACTUM_FORWARD, NULL, 0, page, 1000, &got, &pos)) exit(1);
            if (ub) factum_upcast_buf_reset(ub);
            size_t done = 0;
            if (ub && many && got) {
                int rc = factum_upcast_many(s, page, got, ub, page, &done);
                if (rc) {
                    fprintf(stderr, "%s: %s %s\n", label, factum_strerror(rc), factum_upcast_buf_error(ub));
                    exit(1);
                }
            }
            for (size_t i = 0; i < got; i++) {
                if (ub && !many && factum_upcast(s, &page[i], ub, &page[i]) < 0) exit(1);
                bytes += page[i].data_len + page[i].metadata_len;
            }
            events += got;
        } while (got);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| %s | $all of %zu events read in order, 3 passes%s | %.0f ev/s | %.0f MB/s of data+metadata |\n", label,
           n, what, events / secs, bytes / secs / 1e6);
    result(label, "ev_per_s", events / secs);
    fflush(stdout);
    free(page);
    return events / secs;
}

static void w5(void)
{
    size_t n = quick ? 200000 : 1300000;
    factum_store *s = open_store("w5", 1);
    fill(s, n, 10000);
    double none = w5_passes(s, n, NULL, "W5", "");
    if (wanted("W5U")) {
        /* Issue 14: factum_upcast on every event, first with no upcaster
         * (the fast path), then with one (2 steps) on every event. */
        static const char doc[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"steps\":[" \
                   "{\"op\":\"rename\",\"from\":\"amount\",\"to\":\"amountCents\"}," \
                   "{\"op\":\"default\",\"path\":\"channel\",\"value\":\"branch\"}]}";
        factum_upcast_buf *ub;
        if (factum_upcast_buf_new(&ub)) exit(1);
        /* The baseline again, in the same state of the page cache. */
        none = w5_passes(s, n, NULL, "W5N", ", again: the baseline of W5U");
        double fast = w5_passes(s, n, ub, "W5U0", ", factum_upcast on each, no upcaster");
        if (factum_upcaster_set(s, doc, sizeof doc - 1, NULL, 0)) exit(1);
        double with = w5_passes(s, n, ub, "W5U", ", one upcaster (2 steps) on every event");
        printf("| W5U0/W5N | the fast path's cost | %.3f | |\n| W5U/W5N | upcasting's cost on W5 | %.3f | |\n",
               fast / none, with / none);
        result("W5U0", "ratio", fast / none);
        result("W5U", "ratio", with / none);
        if (wanted("W5S")) {
            /* ADR 0016: the same change as a script upcaster (it replaces
             * the declarative one), each page through factum_upcast_many. */
            static const char js[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"script\":"
                                     "\"function (e) { const d = e.data; d.amountCents = d.amount; delete d.amount; "
                                     "if (d.channel === undefined) d.channel = 'branch'; return e; }\"}";
            char err[512] = "";
            if (factum_upcaster_set(s, js, sizeof js - 1, err, sizeof err)) {
                fprintf(stderr, "W5S: %s\n", err);
                exit(1);
            }
            double script = w5_passes_many(s, n, ub, 1, "W5S", ", one script upcaster on every event (pages of 1,000)");
            printf("| W5S/W5N | a script upcaster's cost on W5 | %.3f | |\n| W5S/W5U | script / declarative | %.3f | |\n",
                   script / none, script / with);
            result("W5S", "ratio", script / none);
            result("W5S", "ratio_declarative", script / with);
        }
        factum_upcast_buf_free(ub);
    }
    factum_store_close(s);
}

/* ---- W7: contention correctness -------------------------------------- */

#define W7_STREAMS 10
typedef struct w7ack {
    int stream;
    uint64_t version;
    uint8_t id[16];
} w7ack;
typedef struct w7arg {
    factum_store *s;
    int t;
    w7ack *acks;
    size_t n_acks, conflicts;
} w7arg;

static void *w7_writer(void *p)
{
    w7arg *a = p;
    char name[32];
    for (int i = 0; i < 2500; i++) {
        int k = (int)(rnd() % W7_STREAMS);
        snprintf(name, sizeof name, "contended-%d", k);
        factum_stream_info info;
        factum_stream_get_info(a->s, name, &info);
        evbuf b;
        make_event(&b, (uint64_t)k, (uint64_t)i);
        factum_append_result r;
        int rc = factum_append(a->s, name, info.last_version, &b.ev, 1, &r);
        if (rc == 0) {
            w7ack *x = &a->acks[a->n_acks++];
            x->stream = k;
            x->version = r.first_version;
            memcpy(x->id, b.ev.id, 16);
        } else if (rc == FACTUM_EWRONGVERSION) {
            a->conflicts++;
        } else {
            fprintf(stderr, "W7: %s\n", factum_strerror(rc));
            exit(1);
        }
    }
    return NULL;
}

static void w7(void)
{
    factum_store *s = open_store("w7", 1);
    pthread_t th[4];
    w7arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (w7arg){s, t, malloc(2500 * sizeof(w7ack)), 0, 0};
        pthread_create(&th[t], NULL, w7_writer, &args[t]);
    }
    size_t ok = 0, conflicts = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].n_acks;
        conflicts += args[t].conflicts;
    }
    /* Every stream holds versions 0..n-1 exactly once, each the acknowledged
     * event: nothing lost, duplicated or invented. */
    int pass = 1;
    size_t stored = 0;
    for (int k = 0; k < W7_STREAMS; k++) {
        char name[32];
        snprintf(name, sizeof name, "contended-%d", k);
        static factum_event page[10000];
        size_t n = 0;
        uint64_t next;
        int rc = factum_read_stream(s, name, 0, FACTUM_FORWARD, page, 10000, &n, &next);
        if (rc == FACTUM_ENOTFOUND)
            n = 0;
        else if (rc)
            pass = 0;
        stored += n;
        for (size_t i = 0; i < n; i++) {
            if (page[i].version != i) pass = 0;
            int found = 0;
            for (int t = 0; t < 4 && !found; t++)
                for (size_t j = 0; j < args[t].n_acks; j++)
                    if (args[t].acks[j].stream == k && args[t].acks[j].version == i &&
                        !memcmp(args[t].acks[j].id, page[i].id, 16))
                        found = 1;
            if (!found) pass = 0;
        }
    }
    if (stored != ok) pass = 0;
    printf("| W7 | 4 writers x 2,500 attempts on 10 streams | %zu successes, %zu conflicts | %s |\n", ok,
           conflicts, pass ? "PASS" : "FAIL");
    result("W7", "pass", pass);
    fflush(stdout);
    for (int t = 0; t < 4; t++)
        free(args[t].acks);
    factum_store_close(s);
    if (!pass) exit(2);
}

/* ---- W9: 10 M events, kill -9, restart ------------------------------- */

static uint64_t dir_bytes(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "du -sb '%s' | cut -f1", dir);
    FILE *p = popen(cmd, "r");
    uint64_t v = 0;
    if (p && fscanf(p, "%" SCNu64, &v) != 1) v = 0;
    if (p) pclose(p);
    return v;
}

static void rss_kb(long *rss, long *anon)
{
    *rss = *anon = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", rss);
        sscanf(line, "RssAnon: %ld", anon);
    }
    if (f) fclose(f);
}

typedef struct w9load {
    factum_store *s;
    int t, threads;
    size_t streams, per_stream;
} w9load;

static void *w9_loader(void *p)
{
    w9load *a = p;
    evbuf *b = malloc(a->per_stream * sizeof *b);
    factum_event_data *ev = malloc(a->per_stream * sizeof *ev);
    char name[32];
    for (size_t k = (size_t)a->t; k < a->streams; k += (size_t)a->threads) {
        snprintf(name, sizeof name, "account-%zu", k);
        for (size_t i = 0; i < a->per_stream; i++) {
            make_event(&b[i], k, i);
            ev[i] = b[i].ev;
        }
        if (factum_append(a->s, name, FACTUM_NO_STREAM, ev, a->per_stream, NULL)) exit(1);
    }
    free(ev);
    free(b);
    return NULL;
}

/* One restart: open, first read, first append; in a fresh process. */
static void w9_restart(const char *name, size_t streams, double *open_ms, double *serve_ms, long *rss,
                       long *anon)
{
    int fds[2];
    if (pipe(fds)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        uint64_t t0 = now_ns();
        factum_store *s = open_store(name, 0);
        double o = (double)(now_ns() - t0) / 1e6;
        char stream[32];
        snprintf(stream, sizeof stream, "account-%zu", streams / 2);
        factum_event ev[10];
        size_t n;
        uint64_t next;
        if (factum_read_stream(s, stream, 0, FACTUM_FORWARD, ev, 10, &n, &next) || n == 0) _exit(3);
        evbuf b;
        make_event(&b, 1, 1);
        if (factum_append(s, stream, FACTUM_ANY, &b.ev, 1, NULL)) _exit(4);
        double sv = (double)(now_ns() - t0) / 1e6;
        long r, a;
        rss_kb(&r, &a);
        double out[2] = {o, sv};
        long outl[2] = {r, a};
        if (write(fds[1], out, sizeof out) != sizeof out || write(fds[1], outl, sizeof outl) != sizeof outl)
            _exit(5);
        _exit(0); /* no close: leave as a crash would, for the next measurement */
    }
    close(fds[1]);
    double in[2] = {0, 0};
    long inl[2] = {0, 0};
    if (read(fds[0], in, sizeof in) != sizeof in || read(fds[0], inl, sizeof inl) != sizeof inl)
        fprintf(stderr, "W9 restart child failed\n");
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    *open_ms = in[0];
    *serve_ms = in[1];
    *rss = inl[0];
    *anon = inl[1];
}

static void w9(size_t events)
{
    size_t streams = events / 10, per = 10;
    const char *name = "w9";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, name);
    rm_rf(dir);
    /* Load in a child process, then kill -9 it. */
    uint64_t t0 = now_ns();
    int fds[2];
    if (pipe(fds)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        factum_store *s = open_store(name, 0);
        int threads = 16;
        pthread_t th[16];
        w9load args[16];
        for (int t = 0; t < threads; t++) {
            args[t] = (w9load){s, t, threads, streams, per};
            pthread_create(&th[t], NULL, w9_loader, &args[t]);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(th[t], NULL);
        long r, a;
        rss_kb(&r, &a);
        long out[2] = {r, a};
        if (write(fds[1], out, sizeof out) != sizeof out) _exit(1);
        for (;;)
            pause(); /* wait for the kill */
    }
    close(fds[1]);
    long load_rss[2] = {0, 0};
    if (read(fds[0], load_rss, sizeof load_rss) != sizeof load_rss) {
        fprintf(stderr, "W9 loader failed\n");
        exit(1);
    }
    double load_s = (double)(now_ns() - t0) / 1e9;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(fds[0]);
    uint64_t bytes = dir_bytes(dir);
    double open_ms, serve_ms;
    long rss, anon;
    w9_restart(name, streams, &open_ms, &serve_ms, &rss, &anon);
    printf("| W9 | %zu events in %zu streams (loaded in %.1f s, %.0f ev/s), kill -9, restart | serving after "
           "%.0f ms (open %.0f ms) | RSS %ld KiB (anon %ld KiB) after restart, %ld KiB (anon %ld KiB) "
           "loading; %.0f disk bytes/event |\n",
           events, streams, load_s, events / load_s, serve_ms, open_ms, rss, anon, load_rss[0], load_rss[1],
           (double)bytes / (double)events);
    fflush(stdout);
}

/* ---- W6: live subscription latency; catch-up of one subscription ------ */

#define W6_MARK 0xfa
typedef struct w6_state {
    factum_store *s;
    size_t n;
    uint64_t *start, *got;
    atomic_int ready;
} w6_state;

static void *w6_sub(void *p)
{
    w6_state *w = p;
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    factum_sub *sub;
    if (factum_sub_open(w->s, &o, &sub)) exit(1);
    factum_sub_item it[64];
    size_t received = 0;
    while (received < w->n) {
        size_t n;
        if (factum_sub_poll(sub, it, 64, &n, -1)) exit(1);
        uint64_t t = now_ns();
        for (size_t k = 0; k < n; k++) {
            if (it[k].kind == FACTUM_SUB_CAUGHT_UP) atomic_store(&w->ready, 1);
            if (it[k].kind != FACTUM_SUB_EVENT || it[k].event.id[8] != W6_MARK) continue;
            uint64_t i = 0;
            for (int b = 0; b < 8; b++) i = i << 8 | it[k].event.id[b];
            if (i < w->n && !w->got[i]) {
                w->got[i] = t;
                received++;
            }
        }
    }
    factum_sub_close(sub);
    return NULL;
}

static void w6(void)
{
    static w6_state w;
    w.n = quick ? 2000 : 10000;
    w.s = open_store("w6", 1);
    w.start = calloc(w.n, sizeof *w.start);
    w.got = calloc(w.n, sizeof *w.got);
    uint64_t *ack = calloc(w.n, sizeof *ack);
    atomic_store(&w.ready, 0);
    pthread_t th;
    pthread_create(&th, NULL, w6_sub, &w);
    while (!atomic_load(&w.ready)) usleep(1000);
    evbuf b;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (size_t i = 0; i < w.n; i++) {
        next.tv_nsec += 1000000; /* 1,000 appends/s */
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        make_event(&b, 1, i);
        for (int k = 0; k < 8; k++) b.ev.id[k] = (uint8_t)(i >> (56 - 8 * k));
        b.ev.id[8] = W6_MARK;
        w.start[i] = now_ns();
        if (factum_append(w.s, "w6", FACTUM_ANY, &b.ev, 1, NULL)) exit(1);
        ack[i] = now_ns() - w.start[i];
    }
    pthread_join(th, NULL);
    uint64_t *lat = malloc(w.n * sizeof *lat);
    for (size_t i = 0; i < w.n; i++)
        lat[i] = w.got[i] - w.start[i];
    qsort(lat, w.n, sizeof *lat, cmp_u64);
    qsort(ack, w.n, sizeof *ack, cmp_u64);
    printf("| W6 | one $all subscriber, %zu single appends at 1,000/s: delivered | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs | acknowledged: p50 %.0f µs, p99 %.0f µs |\n",
           w.n, pct(lat, w.n, 50), pct(lat, w.n, 99), pct(lat, w.n, 99.9), pct(ack, w.n, 50), pct(ack, w.n, 99));
    result("W6", "p50_us", pct(lat, w.n, 50));
    result("W6", "p99_us", pct(lat, w.n, 99));
    latencies("W6", lat, w.n);
    fflush(stdout);
    free(lat);
    free(ack);
    free(w.start);
    free(w.got);
    factum_store_close(w.s);
}

static void catch_up(void)
{
    size_t n = quick ? 200000 : 1300000;
    factum_store *s = open_store("cu", 1);
    fill(s, n, 10000);
    factum_sub *sub;
    if (factum_sub_open(s, NULL, &sub)) exit(1);
    factum_sub_item *it = malloc(1024 * sizeof *it);
    uint64_t events = 0, bytes = 0, t0 = now_ns();
    for (int live = 0; !live;) {
        size_t got;
        if (factum_sub_poll(sub, it, 1024, &got, 0)) exit(1);
        for (size_t k = 0; k < got; k++) {
            if (it[k].kind == FACTUM_SUB_CAUGHT_UP) live = 1;
            if (it[k].kind != FACTUM_SUB_EVENT) continue;
            events++;
            bytes += it[k].event.data_len + it[k].event.metadata_len;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| catch-up | one subscription to $all from the start until caught up (%" PRIu64
           " events) | %.0f ev/s | %.0f MB/s |\n",
           events, events / secs, bytes / secs / 1e6);
    result("CU", "ev_per_s", events / secs);
    fflush(stdout);
    free(it);
    factum_sub_close(sub);
    factum_store_close(s);
}

/* ---- W11: loading an aggregate (a whole 10-event stream in one call) ---- */

static int big; /* --big: W12 with 10,000 subscribers */

static void w11(void)
{
    size_t streams = quick ? 500 : 10000, loads = quick ? 2000 : 100000;
    factum_store *s = open_store("w11", 1);
    /* The fill (not timed): 10 events per stream, one append each. */
    evbuf b[10];
    factum_event_data ev[10];
    char name[32];
    for (size_t a = 0; a < streams; a++) {
        snprintf(name, sizeof name, "agg-%zu", a);
        for (size_t k = 0; k < 10; k++) {
            make_event(&b[k], a, a * 10 + k);
            ev[k] = b[k].ev;
        }
        if (factum_append(s, name, FACTUM_NO_STREAM, ev, 10, NULL)) exit(1);
    }
    factum_event out[16];
    uint64_t *lat = malloc(loads * sizeof *lat), bytes = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < loads; i++) {
        uint64_t a = rnd() % streams;
        snprintf(name, sizeof name, "agg-%" PRIu64, a);
        size_t n;
        uint64_t t = now_ns();
        int rc = factum_read_stream(s, name, 0, FACTUM_FORWARD, out, 16, &n, NULL);
        lat[i] = now_ns() - t;
        if (rc || n != 10) {
            fprintf(stderr, "W11: %s, %zu events\n", factum_strerror(rc), rc ? 0 : n);
            exit(1);
        }
        for (size_t k = 0; k < n; k++) bytes += out[k].data_len + out[k].metadata_len;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, loads, sizeof *lat, cmp_u64);
    printf("| W11 | load an aggregate: %zu whole 10-event streams (factum_read_stream), random of %zu | %.0f calls/s | "
           "p50 %.1f µs, p99 %.1f µs (%.0f MB/s) |\n",
           loads, streams, loads / secs, pct(lat, loads, 50), pct(lat, loads, 99), bytes / secs / 1e6);
    result("W11", "calls_per_s", loads / secs);
    result("W11", "p50_us", pct(lat, loads, 50));
    result("W11", "p99_us", pct(lat, loads, 99));
    latencies("W11", lat, loads);
    fflush(stdout);
    free(lat);
    factum_store_close(s);
}

/* ---- W12: fan-out to many live subscribers ------------------------------
 * N library subscriptions on $all, polled by W12_POLLERS threads, each
 * serving its share in turn (factum_sub_poll without waiting) and, when a
 * round found nothing, waiting for the next commit (factum_wait_for_position
 * with the head a commit listener last reported, read before the round). */
#define W12_POLLERS 2
#define W12_MARK 0xfc
static struct {
    factum_store *s;
    factum_sub **subs;
    size_t n_subs, n_events;
    uint64_t *start;
    hist lat;
    _Atomic uint64_t delivered, head;
    atomic_int stop;
} w12e;

static void w12_on_commit(void *ctx, uint64_t last_position)
{
    (void)ctx;
    atomic_store(&w12e.head, last_position);
}

static void *w12_poller(void *p)
{
    size_t me = (size_t)(uintptr_t)p;
    factum_sub_item it[64];
    while (!atomic_load(&w12e.stop)) {
        uint64_t head = atomic_load(&w12e.head), got = 0;
        for (size_t j = me; j < w12e.n_subs; j += W12_POLLERS) {
            for (;;) {
                size_t n;
                if (factum_sub_poll(w12e.subs[j], it, 64, &n, 0)) exit(1);
                uint64_t t = now_ns();
                for (size_t k = 0; k < n; k++) {
                    if (it[k].kind != FACTUM_SUB_EVENT || it[k].event.id[8] != W12_MARK) continue;
                    uint64_t i = 0;
                    for (int b = 0; b < 8; b++) i = i << 8 | it[k].event.id[b];
                    if (i >= w12e.n_events) continue;
                    hist_add(&w12e.lat, t - w12e.start[i]);
                    got++;
                }
                if (n < 64 && !factum_sub_pending(w12e.subs[j])) break;
            }
        }
        if (got) atomic_fetch_add(&w12e.delivered, got);
        else factum_wait_for_position(w12e.s, head, 50);
    }
    return NULL;
}

static void w12(void)
{
    w12_report r = {.how = "library subscriptions polled by " "2" " threads", .have_server = 0};
    r.subs = w12_subs(quick, big);
    r.events = w12_events(quick, big);
    w12e.n_subs = r.subs;
    w12e.n_events = r.events;
    w12e.s = open_store("w12", 1);
    w12e.start = calloc(r.events, sizeof *w12e.start);
    w12e.subs = calloc(r.subs, sizeof *w12e.subs);
    memset(&w12e.lat, 0, sizeof w12e.lat);
    atomic_store(&w12e.delivered, 0);
    atomic_store(&w12e.stop, 0);
    if (factum_commit_listener_add(w12e.s, w12_on_commit, NULL)) exit(1);
    evbuf b;
    make_event(&b, 12, 0);
    if (factum_append(w12e.s, "w12-first", FACTUM_ANY, &b.ev, 1, NULL)) exit(1); /* the listener knows the head */
    int self = getpid();
    proc_usage_get(self, &r.before);
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    for (size_t j = 0; j < r.subs; j++)
        if (factum_sub_open(w12e.s, &o, &w12e.subs[j])) exit(1);
    pthread_t th[W12_POLLERS];
    for (size_t t = 0; t < W12_POLLERS; t++) pthread_create(&th[t], NULL, w12_poller, (void *)(uintptr_t)t);
    usleep(200000);
    proc_usage_get(self, &r.connected);
    double cpu0 = self_cpu_s();
    uint64_t t_conn = now_ns();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r.events && !w12_late(t0, r.events); i++, r.appended++) {
        pace_ms(&next);
        make_event(&b, 12, i);
        for (int k = 0; k < 8; k++) b.ev.id[k] = (uint8_t)(i >> (56 - 8 * k));
        b.ev.id[8] = W12_MARK;
        w12e.start[i] = now_ns();
        if (factum_append(w12e.s, "w12", FACTUM_ANY, &b.ev, 1, NULL)) exit(1);
    }
    r.secs = (double)(now_ns() - t0) / 1e9;
    w12_drain(&w12e.delivered, (uint64_t)r.subs * r.appended);
    proc_usage_get(self, &r.after);
    r.self_cpu_s = self_cpu_s() - cpu0;
    r.wall_s = (double)(now_ns() - t_conn) / 1e9;
    atomic_store(&w12e.stop, 1);
    for (size_t t = 0; t < W12_POLLERS; t++) pthread_join(th[t], NULL);
    r.delivered = atomic_load(&w12e.delivered);
    w12_print(w12_name(r.subs), "factum", &w12e.lat, &r);
    for (size_t j = 0; j < r.subs; j++) factum_sub_close(w12e.subs[j]);
    factum_commit_listener_remove(w12e.s, w12_on_commit, NULL);
    factum_store_close(w12e.s);
    free(w12e.subs);
    free(w12e.start);
}

int main(int argc, char **argv)
{
    size_t w9_events = 10000000;
    int do_w9 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base_dir = argv[++i];
        else if (!strcmp(argv[i], "--relaxed"))
            relaxed = 1;
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--seal"))
            seal = 1;
        else if (!strcmp(argv[i], "--warm"))
            warm = 1;
        else if (!strcmp(argv[i], "--big"))
            big = 1;
        else if (!strcmp(argv[i], "--w9"))
            do_w9 = 1;
        else if (!strcmp(argv[i], "--w9-events") && i + 1 < argc)
            w9_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof only, "%s", argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--dir D] [--relaxed] [--quick] [--seal] [--warm] [--big] [--w9] [--w9-events N] [--only W1,W2,...]\n",
                    argv[0]);
            return 2;
        }
    }
    bench_system = relaxed ? "factum-relaxed" : "factum";
    mkdir(base_dir, 0755);
    if (seal) {
        /* A master key of the run's own, outside the stores' directories. */
        snprintf(seal_key, sizeof seal_key, "%s/bench-master.key", base_dir);
        uint8_t k[32];
        for (unsigned i = 0; i < sizeof k; i++)
            k[i] = (uint8_t)rnd();
        FILE *f = fopen(seal_key, "wb");
        if (!f || fwrite(k, 1, sizeof k, f) != sizeof k || fclose(f) || chmod(seal_key, 0600)) {
            fprintf(stderr, "cannot write %s\n", seal_key);
            return 1;
        }
        if (!(seal_rdr = factum_reader_new())) return 1;
        factum_reader_use(seal_rdr);
        bench_system = relaxed ? "factum-relaxed-sealed" : "factum-sealed";
    }
    struct utsname u;
    uname(&u);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("factum %s embedded, %s, %s %s, %ld CPUs, data in %s\n\n", FACTUM_VERSION_STRING,
           relaxed ? "RELAXED durability (fdatasync every 100 ms)"
                   : "durable (fdatasync before every acknowledgement)",
           u.sysname, u.release, cpus, base_dir);
    double grow_us, pre_us;
    double grow = fsync_rate(0, &grow_us), pre = fsync_rate(1, &pre_us);
    printf("| machine | 4 KiB write + fdatasync | growing file %.0f/s (%.0f µs) | preallocated file %.0f/s "
           "(%.0f µs) |\n",
           grow, grow_us, pre, pre_us);
    if (wanted("W6") || wanted("PACED")) {
        double p50, p99;
        paced_fsync(&p50, &p99);
        printf("| machine | 4 KiB write + fdatasync paced at 1,000/s (W6's pace) | p50 %.0f µs | p99 %.0f µs |\n", p50,
               p99);
    }
    printf("|---|---|---|---|\n");
    fflush(stdout);
    versions = malloc(10000 * sizeof *versions);
    make_pool();
    if (wanted("W1")) w1();
    if (wanted("W2")) w2();
    if (wanted("W3")) {
        w3(16);
        w3(256);
    }
    if (wanted("W3CQ")) {
        w3cq(16, 0);
        w3cq(256, 0);
        w3cq(16, FACTUM_DRIVER_NO_URING);
        w3cq(256, FACTUM_DRIVER_NO_URING);
        w3cq(16, FACTUM_DRIVER_SYNC);
        w3cq(256, FACTUM_DRIVER_SYNC);
    }
    if (wanted("W4")) w4();
    if (wanted("W5")) w5();
    if (wanted("W6")) w6();
    if (wanted("CU")) catch_up();
    if (wanted("W7")) w7();
    if (wanted("W11")) w11();
    if (wanted("W12")) w12();
    if (do_w9 || wanted("W9")) {
        if (do_w9 || only[0]) w9(quick ? 1000000 : w9_events);
    }
    double grow2_us, pre2_us;
    double pre2 = fsync_rate(1, &pre2_us), grow2 = fsync_rate(0, &grow2_us);
    printf("| machine (again, at the end) | 4 KiB write + fdatasync | growing file %.0f/s | preallocated "
           "file %.0f/s |\n",
           grow2, pre2);
    free(versions);
    return 0;
}
