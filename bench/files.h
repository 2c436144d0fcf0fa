/*
 * files.h - what the benchmarks that measure files share (backup.c,
 * scavenge.c, archive.c): the clock, a percentile of latencies, the bytes a
 * directory takes on disk as du counts them, removing a tree, and giving up
 * on an error. Header-only.
 */
#ifndef FACTUM_BENCH_FILES_H
#define FACTUM_BENCH_FILES_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "factum.h"

static inline uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-th percentile of n latencies in ns, in µs (sorts v). */
static inline double pct(uint64_t *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

static uint64_t du_bytes;
static int du_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)p;
    (void)flag;
    (void)f;
    du_bytes += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Bytes the directory's files take (a hard-linked file counts once per
 * directory tree, as du counts it). */
static inline uint64_t du(const char *dir)
{
    du_bytes = 0;
    nftw(dir, du_cb, 16, FTW_PHYS);
    return du_bytes;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void rm_rf(const char *d)
{
    nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, factum_strerror(rc));
    exit(1);
}

#endif
