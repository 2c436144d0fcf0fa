/*
 * harness.h - the in-house test harness: checks that count instead of
 * abort, a fresh temporary directory per test, a seed that is printed (and
 * taken from FACTUM_SEED to replay), and a final "N passed, N failed" line.
 *
 *   static void t_something(void) { CHECK(x == 1); CHECK_RC(f(), 0); }
 *   int main(void) { RUN(t_something); return harness_done(); }
 */
#ifndef FACTUM_HARNESS_H
#define FACTUM_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "factum.h"

static int h_checks_failed_in_test __attribute__((unused));
static int h_passed __attribute__((unused)), h_failed __attribute__((unused));
static const char *h_current __attribute__((unused)) = "";

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, h_current, #cond);                \
            h_checks_failed_in_test++;                                                                       \
        }                                                                                                    \
    } while (0)

#define CHECK_RC(expr, want)                                                                                 \
    do {                                                                                                     \
        int h_rc_ = (expr), h_want_ = (want);                                                                \
        if (h_rc_ != h_want_) {                                                                              \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s = %d (%s), expected %d (%s)\n", __FILE__, __LINE__,       \
                    h_current, #expr, h_rc_, factum_strerror(h_rc_), h_want_, factum_strerror(h_want_));     \
            h_checks_failed_in_test++;                                                                       \
        }                                                                                                    \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                                   \
    do {                                                                                                     \
        uint64_t h_a_ = (uint64_t)(a), h_b_ = (uint64_t)(b);                                                 \
        if (h_a_ != h_b_) {                                                                                  \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s = %" PRIu64 ", expected %" PRIu64 "\n", __FILE__,         \
                    __LINE__, h_current, #a, h_a_, h_b_);                                                    \
            h_checks_failed_in_test++;                                                                       \
        }                                                                                                    \
    } while (0)

/* Stop the current test function (after a failed precondition). */
#define REQUIRE(cond)                                                                                        \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "  FAIL %s:%d [%s]: required %s\n", __FILE__, __LINE__, h_current, #cond);       \
            h_checks_failed_in_test++;                                                                       \
            return;                                                                                          \
        }                                                                                                    \
    } while (0)

#define RUN(fn)                                                                                              \
    do {                                                                                                     \
        h_current = #fn;                                                                                     \
        h_checks_failed_in_test = 0;                                                                         \
        fn();                                                                                                \
        if (h_checks_failed_in_test) {                                                                       \
            h_failed++;                                                                                      \
            fprintf(stderr, "not ok %s\n", #fn);                                                             \
        } else {                                                                                             \
            h_passed++;                                                                                      \
            printf("ok %s\n", #fn);                                                                          \
        }                                                                                                    \
        fflush(stdout);                                                                                      \
    } while (0)

static inline int harness_done(void)
{
    printf("%d passed, %d failed\n", h_passed, h_failed);
    return h_failed ? 1 : 0;
}

static int h_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void harness_rm_rf(const char *path)
{
    nftw(path, h_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh, empty directory path (not created: the store creates it). The
 * returned buffer is static per call site use; copy it if you need two. */
static inline const char *harness_tmpdir(char *buf, size_t n, const char *name)
{
    const char *base = getenv("FACTUM_TEST_TMP");
    if (!base || !*base) base = "/tmp/factum-tests";
    mkdir(base, 0755);
    snprintf(buf, n, "%s/%s-%d", base, name, (int)getpid());
    harness_rm_rf(buf);
    return buf;
}

/* The test's random seed: FACTUM_SEED if set, else from the clock. Printed
 * so that a failure can be replayed with FACTUM_SEED=<seed>. */
static inline uint64_t harness_seed(const char *what)
{
    const char *e = getenv("FACTUM_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
    printf("%s: seed %" PRIu64 " (replay with FACTUM_SEED=%" PRIu64 ")\n", what, seed, seed);
    return seed;
}

typedef struct h_rng {
    uint64_t s;
} h_rng;
static inline uint64_t h_rand(h_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t h_below(h_rng *r, uint64_t n)
{
    return n ? h_rand(r) % n : 0;
}

static inline uint64_t base_mono_ns_test(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Options for small, fast test stores. */
static inline void harness_small_opts(factum_options *o)
{
    factum_options_init(o);
    o->segment_size = 1u << 20;
    o->memtable_entries = 1024;
    o->stream_cache_entries = 256;
}

/* One JSON event with a fresh id. */
static inline factum_event_data harness_event(const char *type, const char *json)
{
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    factum_uuid_v4(e.id);
    e.has_id = 1;
    return e;
}

#endif
