/*
 * systems.h - what bench/systems.c (the driver: workloads and main) and the
 * systems beside factum (sys_postgres.c, sys_sqlite.c, sys_redis.c,
 * sys_nats.c) share: the event, the interface each system implements, W12's
 * delivery record and the driver's settings.
 */
#ifndef FACTUM_BENCH_SYSTEMS_H
#define FACTUM_BENCH_SYSTEMS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "factum.h"
#include "bench.h"
#include "fanout.h"

extern const char *target; /* the system's address (main's TARGET) */
extern int quick, big;

/* ---- W12's deliveries, from every system's subscriber side ---------------- */

#define W12_THREADS 2 /* threads that serve the subscribers' connections */

/* A subscriber received the event with this id at time t. */
void w12_got(const char *id, uint64_t t);

_Noreturn void die(const char *what, const char *why);

/* ---- events (BENCH.md: ~200 B JSON data, ~110 B JSON metadata) ---------- */

typedef struct bev {
    char id[37];
    char data[256], meta[160];
    size_t dlen, mlen;
} bev;

void make_event(bev *e, uint64_t account, uint64_t n);

/* ---- the interface of a system ------------------------------------------- */

#define ANY (-2)
#define NO_STREAM (-1)

typedef struct backend {
    const char *name;
    void (*setup)(void); /* once: a fresh, empty store */
    void *(*connect)(void);
    void (*disconnect)(void *c);
    /* Append n events; 0 (and *last the new last version), 1 on a wrong
     * expected version. Errors exit. */
    int (*append)(void *c, const char *stream, int64_t expected, const bev *e, size_t n, int64_t *last);
    /* The stream's last version, NO_STREAM if none. */
    int64_t (*version)(void *c, const char *stream);
    /* Read up to max events after *cursor (opaque; "" = the start) of a
     * stream or, stream NULL, of $all; advance the cursor. Returns the count;
     * *bytes += data + metadata. */
    size_t (*read)(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes);
    /* The event ids of a stream in version order, with their versions. */
    size_t (*ids)(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap);
    /* W6: a subscriber positioned at the end of $all; next waits for the
     * following event and returns its id (1), or 0 after timeout_ms. */
    void *(*sub_open)(void);
    int (*sub_next)(void *s, int timeout_ms, char id[37]);
    void (*sub_close)(void *s);
    /* W8 (optional: NULL when the system has no consumer groups): create the
     * group on $all from now; a member waits for its next message (id out,
     * 1) or times out (0), and acknowledges it. */
    void (*group_create)(void);
    void *(*member_open)(int i);
    int (*member_next)(void *m, int timeout_ms, char id[37]);
    void (*member_ack)(void *m);
    void (*member_close)(void *m);
    /* W11: read the whole stream in one call; returns its event count,
     * *bytes += data + metadata. load_how says how, for the row. */
    size_t (*load)(void *c, const char *stream, uint64_t *bytes);
    const char *load_how;
    /* W12 (optional: NULL when the system has no live delivery): n
     * subscribers positioned at the end of $all, each delivery reported to
     * w12_got from the system's own threads, until fan_close. */
    void *(*fan_open)(size_t n);
    void (*fan_close)(void *f);
    const char *fan_how;
} backend;

extern const backend pg_backend, sqlite_backend, redis_backend, nats_backend;

#endif
