/*
 * bench.h - what every benchmark program shares: the clock, percentiles of
 * a sorted latency array, the --only selection, and the machine-readable
 * output bench/run-all.sh collects ("@ system workload metric value" lines
 * on stdout, latency percentiles appended to $FACTUM_BENCH_LAT).
 * Header-only: each program is one file.
 */
#ifndef FACTUM_BENCH_H
#define FACTUM_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char only[256];            /* --only W1,W2,...: empty = every workload */
static const char *bench_system;  /* the system's name in "@" lines, set by main */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile of n sorted nanosecond values, in µs. */
static inline double pct(const uint64_t *v, size_t n, double p)
{
    return n ? (double)v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] / 1000.0 : 0;
}

/* Is workload w in the --only list (an exact name of it)? */
static inline int wanted(const char *w)
{
    if (!only[0]) return 1;
    char list[sizeof only + 2], key[32];
    snprintf(list, sizeof list, ",%s,", only);
    snprintf(key, sizeof key, ",%s,", w);
    return strstr(list, key) != NULL;
}

/* A result for bench/run-all.sh. */
static inline void result(const char *w, const char *metric, double v)
{
    printf("@ %s %s %s %.6g\n", bench_system, w, metric, v);
}

/* Every 0.1 percentile of a sorted latency array (ns), for the plots, to
 * the file $FACTUM_BENCH_LAT names (if any). */
static inline void latencies(const char *w, const uint64_t *lat, size_t n)
{
    const char *path = getenv("FACTUM_BENCH_LAT");
    FILE *f = path && n ? fopen(path, "a") : NULL;
    if (!f) return;
    for (size_t i = 0; i < 1000; i++)
        fprintf(f, "%s\t%s\t%.1f\t%.1f\n", bench_system, w, i / 10.0, lat[i * n / 1000] / 1000.0);
    fclose(f);
}

#endif
