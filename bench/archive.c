/*
 * archive.c - the archive tier's figures (issue 16, ADR 0028): an archive
 * pass over a log of N events (BENCH.md's ~410-byte event frame, 100 per
 * append), its throughput (MB/s copied, written, fdatasync'd, read back and
 * compared, then the local files dropped), and the latency of W1 (single
 * durable appends) and W3 (16 concurrent appenders) while it runs, against
 * the same workload just before on the same store (as ratios). Then a full
 * read of $all with every sealed segment served from the archive against
 * the same read before the pass (page cache warm in both: the archive here
 * is a directory on the same disk, so the figure is of the mapping, not of
 * a slower device).
 *
 * Usage: factum-bench-archive [--dir D] [--archive A] [--events N] [--secs S] [--throttle BPS]
 * Prints a Markdown table on stdout and "@ factum ARCHIVE metric value" lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

static char dir[512], adir[512];
static size_t n_events = 2000000;
static double secs = 3;
static uint64_t throttle;
static char data[330];

static factum_store *open_store(int relaxed, int archive)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    if (archive) {
        o.archive_dir = adir;
        o.archive_retain_bytes = 0;
        o.archive_retain_ms = 0;
        o.archive_interval_ms = 0;
        o.archive_throttle_bytes_per_sec = throttle;
    }
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) die("open", rc);
    return s;
}

static void load(void)
{
    factum_store *s = open_store(1, 0);
    factum_event_data e[100];
    for (size_t i = 0; i < 100; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].type = "Loaded";
        e[i].data = data;
        e[i].data_len = strlen(data);
        e[i].flags = FACTUM_EVENT_JSON;
    }
    char name[32];
    for (size_t i = 0; i < n_events / 100; i++) {
        snprintf(name, sizeof name, "st-%zu", i % 10000);
        int rc = factum_append(s, name, FACTUM_ANY, e, 100, NULL);
        if (rc) die("load", rc);
    }
    factum_store_sync(s);
    factum_store_close(s);
}

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
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = "W";
    e.data = data;
    e.data_len = strlen(data);
    e.flags = FACTUM_EVENT_JSON;
    char name[32];
    snprintf(name, sizeof name, "w-%d", w->id);
    while (!atomic_load(w->stop) && w->n < w->cap) {
        uint64_t t = now_ns();
        if (factum_append(w->s, name, FACTUM_ANY, &e, 1, NULL)) exit(1);
        w->lat[w->n++] = now_ns() - t;
    }
    return NULL;
}

typedef struct pass_ctx {
    factum_store *s;
    atomic_int done;
    int rc;
    uint64_t t0, t1;
    factum_archive_status st;
} pass_ctx;

static void *pass_main(void *p)
{
    pass_ctx *c = p;
    c->t0 = now_ns();
    c->rc = factum_archive_run(c->s, &c->st);
    c->t1 = now_ns();
    atomic_store(&c->done, 1);
    return NULL;
}

typedef struct run_result {
    double ev_per_s, p50, p99;
} run_result;

/* clients appenders for secs, or (pass) while the pass runs (at least 1 s). */
static run_result appenders(factum_store *s, int clients, pass_ctx *pass)
{
    wctx w[16];
    pthread_t th[16], pt;
    atomic_int stop = 0;
    for (int i = 0; i < clients; i++) {
        w[i] = (wctx){s, &stop, NULL, 0, 2000000, i};
        w[i].lat = malloc(w[i].cap * sizeof *w[i].lat);
        pthread_create(&th[i], NULL, appender, &w[i]);
    }
    if (pass) pthread_create(&pt, NULL, pass_main, pass);
    uint64_t t0 = now_ns();
    while (1) {
        usleep(20000);
        double el = (double)(now_ns() - t0) / 1e9;
        if (pass ? el >= 1 && atomic_load(&pass->done) : el >= secs) break;
    }
    atomic_store(&stop, 1);
    double el = (double)(now_ns() - t0) / 1e9;
    size_t n = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        n += w[i].n;
    }
    if (pass) pthread_join(pt, NULL);
    uint64_t *all = malloc(n * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat);
    }
    run_result r = {(double)n / el, pct(all, n, 50), pct(all, n, 99)};
    free(all);
    return r;
}

/* Events per second of a read of all of $all (pages of 1,000). */
static double read_all(factum_store *s)
{
    static factum_event evs[1000];
    uint64_t from = 1, n = 0, t0 = now_ns();
    for (;;) {
        size_t got;
        uint64_t next;
        int rc = factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 1000, &got, &next);
        if (rc) die("read", rc);
        n += got;
        if (got < 1000) break;
        from = next;
    }
    return (double)n / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "/tmp/factum-bench-archive");
    snprintf(adir, sizeof adir, "/tmp/factum-bench-archive.cold");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--archive") && i + 1 < argc)
            snprintf(adir, sizeof adir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--secs") && i + 1 < argc)
            secs = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--throttle") && i + 1 < argc)
            throttle = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--dir D] [--archive A] [--events N] [--secs S] [--throttle BPS]\n", argv[0]);
            return 2;
        }
    }
    memset(data, 'x', sizeof data - 1);
    memcpy(data, "{\"pad\":\"", 8);
    memcpy(data + sizeof data - 3, "\"}", 3);
    printf("| | figure |\n|---|---|\n");
    static const char *const ws[] = {"W1", "W3"};
    static const int clients[] = {1, 16};
    for (int k = 0; k < 2; k++) {
        rm_rf(dir);
        rm_rf(adir);
        mkdir(adir, 0755);
        uint64_t t = now_ns();
        load();
        double load_s = (double)(now_ns() - t) / 1e9;
        factum_store *s = open_store(0, 1);
        double read_before = 0;
        if (k == 0) {
            read_all(s); /* warm, as the archived read below */
            read_before = read_all(s);
        }
        run_result base = appenders(s, clients[k], NULL);
        pass_ctx pc = {.s = s};
        run_result during = appenders(s, clients[k], &pc);
        if (pc.rc) die("archive", pc.rc);
        double pass_s = (double)(pc.t1 - pc.t0) / 1e9;
        printf("| load %d: %zu events | %.1f s |\n", k + 1, n_events, load_s);
        printf("| pass %d: %" PRIu64 " segments copied, verified and dropped locally (%.1f MB) | %.2f s: %.0f MB/s |\n",
               k + 1, pc.st.copied, (double)pc.st.bytes_copied / 1e6, pass_s,
               (double)pc.st.bytes_copied / 1e6 / pass_s);
        printf("| %s before / during the pass | %.0f / %.0f ev/s; p50 %.0f / %.0f µs, p99 %.0f / %.0f µs |\n", ws[k],
               base.ev_per_s, during.ev_per_s, base.p50, during.p50, base.p99, during.p99);
        printf("@ factum ARCHIVE %s_rate_ratio %.3f\n", ws[k], during.ev_per_s / base.ev_per_s);
        printf("@ factum ARCHIVE %s_p50_ratio %.3f\n", ws[k], during.p50 / base.p50);
        printf("@ factum ARCHIVE %s_p99_ratio %.3f\n", ws[k], during.p99 / base.p99);
        printf("@ factum ARCHIVE mb_per_s_%d %.1f\n", k + 1, (double)pc.st.bytes_copied / 1e6 / pass_s);
        if (k == 0) {
            read_all(s); /* the archived files' pages into the cache, as the local ones were */
            double read_after = read_all(s);
            printf("| $all read, local / from the archive (%" PRIu64 " of %" PRIu64 " sealed segments) | %.2f / %.2f M ev/s |\n",
                   pc.st.archive_only, pc.st.segments, read_before / 1e6, read_after / 1e6);
            printf("@ factum ARCHIVE read_ratio %.3f\n", read_after / read_before);
        }
        fflush(stdout);
        factum_store_close(s);
    }
    rm_rf(dir);
    rm_rf(adir);
    return 0;
}
