/*
 * scavenge.c - the figures issue 16 asks of scavenge: a log where 90% is
 * expired (S streams under $maxCount 10, 100 events each per load, BENCH.md's
 * ~410-byte event frame), its disk before and after, the scavenge's
 * throughput (MB/s of the log read, MB/s given back), and the latency of W1
 * (single durable appends), W3 (16 concurrent appenders) and W6 (a live
 * $all subscriber, appends at 1,000/s) while a scavenge runs, against the
 * same workload just before on the same store (as ratios).
 *
 * Each workload gets a fresh load of expired data (N events), a baseline
 * run of --secs seconds, then the same run while a scavenge (seal, no
 * throttle) goes through the whole log; the run lasts as long as the
 * scavenge (at least 1 s).
 *
 * Usage: factum-bench-scavenge [--dir D] [--events N] [--secs S] [--throttle BYTES_PER_SEC]
 * Prints a Markdown table on stdout and "@ factum SCAVENGE metric value" lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "factum.h"
#include "files.h"

static char dir[512], logdir[600];
static size_t n_events = 1000000, n_streams;
static double secs = 3;
static uint64_t throttle;
static char data[330];

static factum_store *open_store(int relaxed)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    o.scavenge_grace_ms = 0; /* the figures are of the space given back, at once */
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) die("open", rc);
    return s;
}

/* N more events, 100 per stream: with $maxCount 10, 90% of them expired. */
static void load(int first)
{
    factum_store *s = open_store(1);
    char name[32];
    if (first)
        for (size_t i = 0; i < n_streams; i++) {
            snprintf(name, sizeof name, "st-%zu", i);
            int rc = factum_set_stream_metadata(s, name, FACTUM_ANY, "{\"$maxCount\":10}", 16, NULL);
            if (rc) die("metadata", rc);
        }
    factum_event_data e[100];
    for (size_t i = 0; i < 100; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].type = "Loaded";
        e[i].data = data;
        e[i].data_len = strlen(data);
        e[i].flags = FACTUM_EVENT_JSON;
    }
    for (size_t i = 0; i < n_streams; i++) {
        snprintf(name, sizeof name, "st-%zu", i);
        int rc = factum_append(s, name, FACTUM_ANY, e, 100, NULL);
        if (rc) die("load", rc);
    }
    factum_store_sync(s);
    factum_store_close(s);
}

typedef struct run_result {
    double ev_per_s, p50, p99;
    size_t n;
} run_result;

/* ---- workloads ---------------------------------------------------------- */

typedef struct wctx {
    factum_store *s;
    atomic_int *stop;
    uint64_t *lat;
    size_t n, cap;
    int id;
} wctx;

static void *appender(void *p)
{
    wctx *w = p;
    char name[32];
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = "W";
    e.data = data;
    e.data_len = strlen(data);
    e.flags = FACTUM_EVENT_JSON;
    uint64_t r = 88172645463325252ull + (uint64_t)w->id;
    while (!atomic_load(w->stop) && w->n < w->cap) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        snprintf(name, sizeof name, "w-%" PRIu64, r % 1000);
        uint64_t t = now_ns();
        int rc = factum_append(w->s, name, FACTUM_ANY, &e, 1, NULL);
        if (rc) die("append", rc);
        w->lat[w->n++] = now_ns() - t;
    }
    return NULL;
}

/* Appenders (1: W1, 16: W3) until *stop; the figures. */
static run_result appenders(factum_store *s, int clients, atomic_int *stop, double min_secs,
                            factum_scavenge_status *scav)
{
    wctx w[16];
    pthread_t th[16];
    for (int i = 0; i < clients; i++) {
        w[i] = (wctx){s, stop, NULL, 0, 2000000, i};
        w[i].lat = malloc(w[i].cap * sizeof *w[i].lat);
        pthread_create(&th[i], NULL, appender, &w[i]);
    }
    uint64_t t0 = now_ns();
    while (1) {
        usleep(20000);
        double el = (double)(now_ns() - t0) / 1e9;
        int done = el >= min_secs;
        if (scav) {
            factum_scavenge_get_status(s, scav->id, scav);
            done = done && scav->state != FACTUM_SCAVENGE_RUNNING;
        }
        if (done) break;
    }
    atomic_store(stop, 1);
    double el = (double)(now_ns() - t0) / 1e9;
    size_t n = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        n += w[i].n;
    }
    uint64_t *all = malloc(n * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat);
    }
    run_result r = {(double)n / el, pct(all, n, 50), pct(all, n, 99), n};
    free(all);
    return r;
}

typedef struct w6ctx {
    factum_store *s;
    atomic_int ready, stop;
    uint64_t *start, *got;
    size_t cap;
} w6ctx;

#define W6_MARK 0xfa

static void *w6_sub(void *p)
{
    w6ctx *w = p;
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    factum_sub *sub;
    if (factum_sub_open(w->s, &o, &sub)) exit(1);
    factum_sub_item it[64];
    while (!atomic_load(&w->stop)) {
        size_t n;
        if (factum_sub_poll(sub, it, 64, &n, 50)) exit(1);
        uint64_t t = now_ns();
        for (size_t k = 0; k < n; k++) {
            if (it[k].kind == FACTUM_SUB_CAUGHT_UP) atomic_store(&w->ready, 1);
            if (it[k].kind != FACTUM_SUB_EVENT || it[k].event.id[8] != W6_MARK) continue;
            uint64_t i = 0;
            for (int b = 0; b < 8; b++) i = i << 8 | it[k].event.id[b];
            if (i < w->cap && !w->got[i]) w->got[i] = t;
        }
    }
    factum_sub_close(sub);
    return NULL;
}

/* W6: appends at 1,000/s, their delivery to a live $all subscriber. */
static run_result w6(factum_store *s, double min_secs, factum_scavenge_status *scav)
{
    static w6ctx w;
    w.s = s;
    w.cap = 600000;
    w.start = calloc(w.cap, sizeof *w.start);
    w.got = calloc(w.cap, sizeof *w.got);
    atomic_store(&w.ready, 0);
    atomic_store(&w.stop, 0);
    pthread_t th;
    pthread_create(&th, NULL, w6_sub, &w);
    while (!atomic_load(&w.ready))
        usleep(1000);
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = "W6";
    e.data = data;
    e.data_len = strlen(data);
    e.flags = FACTUM_EVENT_JSON;
    e.has_id = 1;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    size_t i = 0;
    for (; i < w.cap; i++) {
        double el = (double)(now_ns() - t0) / 1e9;
        if (el >= min_secs) {
            if (!scav) break;
            factum_scavenge_get_status(s, scav->id, scav);
            if (scav->state != FACTUM_SCAVENGE_RUNNING) break;
        }
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        factum_uuid_v4(e.id);
        for (int k = 0; k < 8; k++) e.id[k] = (uint8_t)(i >> (56 - 8 * k));
        e.id[8] = W6_MARK;
        w.start[i] = now_ns();
        if (factum_append(s, "w6", FACTUM_ANY, &e, 1, NULL)) exit(1);
    }
    usleep(200000);
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    uint64_t *lat = malloc(i * sizeof *lat);
    size_t n = 0;
    for (size_t k = 0; k < i; k++)
        if (w.got[k]) lat[n++] = w.got[k] - w.start[k];
    run_result r = {(double)i / ((double)(now_ns() - t0) / 1e9), pct(lat, n, 50), pct(lat, n, 99), n};
    if (n < i) fprintf(stderr, "W6: %zu of %zu not delivered\n", i - n, i);
    free(lat);
    free(w.start);
    free(w.got);
    return r;
}

static run_result workload(const char *w, factum_store *s, factum_scavenge_status *scav)
{
    atomic_int stop = 0;
    if (!strcmp(w, "W1")) return appenders(s, 1, &stop, scav ? 1 : secs, scav);
    if (!strcmp(w, "W3")) return appenders(s, 16, &stop, scav ? 1 : secs, scav);
    return w6(s, scav ? 1 : secs, scav);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "/tmp/factum-bench-scavenge");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--secs") && i + 1 < argc)
            secs = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--throttle") && i + 1 < argc)
            throttle = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--dir D] [--events N] [--secs S] [--throttle BYTES_PER_SEC]\n", argv[0]);
            return 2;
        }
    }
    n_streams = n_events / 100 ? n_events / 100 : 1;
    memset(data, 'x', sizeof data - 1);
    memcpy(data, "{\"pad\":\"", 8);
    memcpy(data + sizeof data - 3, "\"}", 3);
    rm_rf(dir);
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    printf("| | figure |\n|---|---|\n");
    static const char *const ws[] = {"W1", "W3", "W6"};
    for (int k = 0; k < 3; k++) {
        uint64_t t = now_ns();
        load(k == 0);
        double load_s = (double)(now_ns() - t) / 1e9;
        factum_store *s = open_store(0);
        run_result base = workload(ws[k], s, NULL);
        uint64_t before = du(logdir);
        factum_scavenge_options o = {.seal = 1, .throttle_bytes_per_sec = throttle};
        factum_scavenge_status st;
        memset(&st, 0, sizeof st);
        uint64_t t0 = now_ns();
        int rc = factum_scavenge_start(s, &o, st.id);
        if (rc) die("scavenge", rc);
        run_result during = workload(ws[k], s, &st);
        factum_scavenge_wait(s, st.id, &st);
        double took = (double)(now_ns() - t0) / 1e9;
        if (st.state != FACTUM_SCAVENGE_COMPLETED) die("scavenge", st.error);
        usleep(100000);
        uint64_t after = du(logdir);
        double scav_s = (double)(st.finished_ns - st.started_ns) / 1e9;
        printf("| load %d: %zu events into %zu streams under $maxCount 10 | %.1f s |\n", k + 1, n_events, n_streams,
               load_s);
        printf("| scavenge %d: the compacted segments before / after | %.1f MB / %.1f MB (%.1f%% given back) |\n",
               k + 1, (double)st.bytes_before / 1e6, (double)st.bytes_after / 1e6,
               100.0 * (double)(st.bytes_before - st.bytes_after) / (double)st.bytes_before);
        printf("| scavenge %d: the log directory before / after (with the segment being written and the one "
               "prepared ahead, 64 MiB each) | %.1f MB / %.1f MB |\n",
               k + 1, (double)before / 1e6, (double)after / 1e6);
        printf("| scavenge %d: %" PRIu64 " segments compacted, %" PRIu64 " events removed | %.2f s: %.0f MB/s read, "
               "%.0f MB/s given back |\n",
               k + 1, st.compacted, st.events_removed, scav_s, (double)st.bytes_read / 1e6 / scav_s,
               (double)(st.bytes_before - st.bytes_after) / 1e6 / scav_s);
        printf("| %s before / during the scavenge (%.1f s) | %.0f / %.0f ev/s; p50 %.0f / %.0f µs, p99 %.0f / %.0f µs |\n",
               ws[k], took, base.ev_per_s, during.ev_per_s, base.p50, during.p50, base.p99, during.p99);
        printf("@ factum SCAVENGE %s_rate_ratio %.3f\n", ws[k], during.ev_per_s / base.ev_per_s);
        printf("@ factum SCAVENGE %s_p50_ratio %.3f\n", ws[k], during.p50 / base.p50);
        printf("@ factum SCAVENGE %s_p99_ratio %.3f\n", ws[k], during.p99 / base.p99);
        printf("@ factum SCAVENGE mb_per_s_read_%d %.1f\n", k + 1, (double)st.bytes_read / 1e6 / scav_s);
        printf("@ factum SCAVENGE mb_per_s_freed_%d %.1f\n", k + 1,
               (double)(st.bytes_before - st.bytes_after) / 1e6 / scav_s);
        printf("@ factum SCAVENGE disk_before_%d %" PRIu64 "\n@ factum SCAVENGE disk_after_%d %" PRIu64 "\n", k + 1,
               before, k + 1, after);
        fflush(stdout);
        factum_store_close(s);
    }
    rm_rf(dir);
    return 0;
}
