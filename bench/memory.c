/*
 * memory.c - resident memory against the number of events (DESIGN.md
 * principle 5: memory does not grow with the number of events). Not a test:
 * it prints figures for docs/architecture.md's Memory section.
 *
 *   factum-bench-memory table N [DIR]  write one index table of N entries,
 *       as a merge writes it (tbl_write from a sorted stream of keys spread
 *       like stream hashes), and report how much the peak resident memory
 *       grew: the Bloom filter is built one partition at a time (TBL-4).
 *   factum-bench-memory store N [DIR]  append N events (appends of 100
 *       events to 10,000 streams, durable) to a fresh store, so that the
 *       index flushes and merges as it goes, then close it; report the peak
 *       resident memory and the peak of its anonymous part.
 *
 * Peak resident memory is VmHWM of /proc/self/status, reset before the work
 * (/proc/self/clear_refs). The anonymous part has no kernel peak, so a
 * thread samples RssAnon every 5 ms. File-backed resident pages (mapped log
 * segments and index tables) are the page cache, counted in VmHWM but
 * reclaimable; the anonymous part is what the process itself holds.
 * DIR (default /tmp/factum-bench-memory) is removed afterwards.
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
#include "index/table.h"

static uint64_t status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t v = 0;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) v = strtoull(line + kl, NULL, 10);
    if (f) fclose(f);
    return v;
}

static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f || fprintf(f, "5") != 1) {
        fprintf(stderr, "cannot reset the peak (/proc/self/clear_refs)\n");
        exit(1);
    }
    fclose(f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Atomic int sampling;
static _Atomic uint64_t anon_peak;

static void *sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&sampling)) {
        uint64_t a = status_kib("RssAnon:");
        if (a > atomic_load(&anon_peak)) atomic_store(&anon_peak, a);
        usleep(5000);
    }
    return NULL;
}

static void rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", p);
}

typedef struct gen {
    uint64_t i, n;
} gen;

static int spread_next(void *ctx, idx_entry *e)
{
    gen *g = ctx;
    if (g->i >= g->n) return 0;
    *e = (idx_entry){g->i * (UINT64_MAX / g->n), g->i & 7, g->i + 1};
    g->i++;
    return 1;
}

static int run_table(uint64_t n, const char *dir)
{
    rm_rf(dir);
    mkdir(dir, 0755);
    reset_peak();
    uint64_t base = status_kib("VmHWM:"), anon0 = status_kib("RssAnon:");
    atomic_store(&anon_peak, anon0);
    atomic_store(&sampling, 1);
    pthread_t th;
    pthread_create(&th, NULL, sampler, NULL);
    gen g = {0, n};
    double t0 = now_s();
    int rc = tbl_write(io_posix(), dir, "m.tbl", 0, 1, n, spread_next, &g, 1, 1, n);
    double dt = now_s() - t0;
    atomic_store(&sampling, 0);
    pthread_join(th, NULL);
    uint64_t peak = status_kib("VmHWM:");
    char p[600];
    snprintf(p, sizeof p, "%s/m.tbl", dir);
    struct stat st;
    uint64_t size = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
    rm_rf(dir);
    if (rc) {
        fprintf(stderr, "tbl_write: %s\n", factum_strerror(rc));
        return 1;
    }
    printf("| table | %" PRIu64 " entries | file %.1f MiB | peak RSS +%" PRIu64 " KiB | anonymous peak +%" PRIu64
           " KiB | %.1f s |\n",
           n, (double)size / 1048576.0, peak - base, atomic_load(&anon_peak) - anon0, dt);
    return 0;
}

static int run_store(uint64_t n, const char *dir)
{
    rm_rf(dir);
    factum_options o;
    factum_options_init(&o);
    reset_peak();
    atomic_store(&anon_peak, status_kib("RssAnon:"));
    atomic_store(&sampling, 1);
    pthread_t th;
    pthread_create(&th, NULL, sampler, NULL);
    double t0 = now_s();
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open: %s\n", factum_strerror(rc));
        return 1;
    }
    enum { BATCH = 100, STREAMS = 10000 };
    static char data[BATCH][64];
    factum_event_data ev[BATCH];
    char stream[32];
    for (uint64_t done = 0; done < n && !rc; done += BATCH) {
        snprintf(stream, sizeof stream, "memory-%" PRIu64, (done / BATCH) % STREAMS);
        for (int i = 0; i < BATCH; i++) {
            snprintf(data[i], sizeof data[i], "{\"n\":%" PRIu64 "}", done + (uint64_t)i);
            ev[i] = (factum_event_data){.type = "Measured", .flags = FACTUM_EVENT_JSON, .data = data[i],
                                        .data_len = strlen(data[i])};
        }
        rc = factum_append(s, stream, FACTUM_ANY, ev, BATCH, NULL);
    }
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    if (!rc) rc = factum_store_close(s);
    else factum_store_close(s);
    double dt = now_s() - t0;
    atomic_store(&sampling, 0);
    pthread_join(th, NULL);
    uint64_t peak = status_kib("VmHWM:");
    rm_rf(dir);
    if (rc) {
        fprintf(stderr, "append: %s\n", factum_strerror(rc));
        return 1;
    }
    printf("| store | %" PRIu64 " events | log %.0f MiB, %" PRIu64 " index tables at the end | peak RSS %" PRIu64
           " MiB | anonymous peak %" PRIu64 " MiB | %.0f s |\n",
           n, (double)fs.log_bytes / 1048576.0, fs.index_tables, peak / 1024, atomic_load(&anon_peak) / 1024, dt);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "table") && strcmp(argv[1], "store"))) {
        fprintf(stderr, "usage: %s table|store N [DIR]\n", argv[0]);
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 0);
    const char *dir = argc > 3 ? argv[3] : "/tmp/factum-bench-memory";
    return !strcmp(argv[1], "table") ? run_table(n, dir) : run_store(n, dir);
}
