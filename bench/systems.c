/*
 * systems.c - BENCH.md's workloads against the systems beside factum, through
 * one driver and a small interface each system implements in C with its own
 * client library, so that client overhead is small and alike:
 *   sqlite   SQLite 3 in-process: the brief's event_store table (plus a global
 *            position), WAL, synchronous=FULL; optimistic concurrency by the
 *            unique (stream_id, version) key inside BEGIN IMMEDIATE.
 *   redis    Redis 7 Streams (hiredis): one stream per event stream and a
 *            global stream for $all, both written by one Lua script that checks
 *            the expected version; appendonly yes, appendfsync always.
 *   nats     NATS JetStream (libnats): one JetStream stream, a subject per
 *            event stream; expected-last-subject-sequence for concurrency.
 *            NOT durable per append: its fsync is periodic.
 *   postgres PostgreSQL 15 (libpq): the brief's event_store table plus a global
 *            position; synchronous_commit on; concurrency by the primary key;
 *            one multi-row INSERT per append; W6 by LISTEN/NOTIFY.
 * Workloads: W1 (single-event appends, random stream of 10,000, expected
 * version tracked), W2 (100-event appends), W3 (16 clients, each its own
 * connection), W4 (a 10,000-event stream read 20 times in pages of 1,000),
 * W5 ($all read in order), W6 (one $all subscriber, 1,000 appends/s: latency
 * from the append call to delivery), W7 (4 writers x 2,500 attempts on 10
 * streams, re-reading on conflict; verified: versions 0..n-1 each once, each
 * the acknowledged event), W8 (a consumer group of 10 at 10,000 ev/s: each
 * system's own group, or for PostgreSQL and SQLite a trigger-filled queue
 * table), W11 (loading an aggregate: a whole 10-event stream in one call, the
 * system's natural one: a prepared SELECT by stream for PostgreSQL and SQLite,
 * XRANGE for Redis, a consumer on the subject for NATS), W12 (1,000 live
 * subscribers on $all, --big 10,000, a writer at 1,000/s: PostgreSQL
 * LISTEN/NOTIFY and Redis XREAD BLOCK on a connection each, NATS a JetStream
 * consumer each; SQLite has none: omitted). Each result is a Markdown row and an "@" line
 * (system, workload, metric, value) that bench/run-all.sh collects.
 *
 * Usage: factum-bench-systems SYSTEM TARGET [--quick] [--big] [--only W1,...]
 *   TARGET: sqlite: a directory for the database; redis, nats: host:port;
 *   postgres: a libpq connection string.
 */
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

#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#include <poll.h>
#endif
#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_NATS
#include <nats/nats.h>
#endif

static const char *target;
static int quick, big;

/* ---- W12's deliveries, from every system's subscriber side ---------------- */

#define W12_THREADS 2 /* threads that serve the subscribers' connections */
static struct {
    size_t n_events;
    char (*ids)[37];
    uint64_t *start;
    hist lat;
    _Atomic uint64_t delivered;
} w12s;

/* Events are found by id: their index is in the id's last 12 hex digits. */
static size_t id_index(const char *id)
{
    return (size_t)strtoull(id + 24, NULL, 16);
}

/* A subscriber received the event with this id at time t. */
static void w12_got(const char *id, uint64_t t)
{
    size_t i = strlen(id) == 36 ? id_index(id) : SIZE_MAX;
    if (i >= w12s.n_events || memcmp(w12s.ids[i], id, 36)) return;
    hist_add(&w12s.lat, t - w12s.start[i]);
    atomic_fetch_add_explicit(&w12s.delivered, 1, memory_order_relaxed);
}





static _Noreturn void die(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s\n", what, why);
    exit(1);
}

/* ---- events (BENCH.md: ~200 B JSON data, ~110 B JSON metadata) ---------- */

typedef struct bev {
    char id[37];
    char data[256], meta[160];
    size_t dlen, mlen;
} bev;

static void make_event(bev *e, uint64_t account, uint64_t n)
{
    uint8_t u[16];
    char c[37], k[37];
    factum_uuid_v4(u);
    factum_uuid_format(u, e->id);
    factum_uuid_v4(u);
    factum_uuid_format(u, c);
    factum_uuid_v4(u);
    factum_uuid_format(u, k);
    e->dlen = (size_t)snprintf(e->data, sizeof e->data,
                               "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64
                               ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
                               "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
                               "\"at\":\"2024-03-15T10:22:31.123Z\"}",
                               account, 100 + n % 9000, n);
    e->mlen = (size_t)snprintf(e->meta, sizeof e->meta,
                               "{\"correlationId\":\"%s\",\"causationId\":\"%s\",\"user\":\"alice\"}", c, k);
}

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

static const backend *B;


/* ======================= PostgreSQL ========================================== */
#ifdef HAVE_LIBPQ

/* The brief's event_store table plus a global position (BIGSERIAL);
 * optimistic concurrency by the primary key (stream_id, version): an insert
 * of a taken version fails with unique_violation (23505). One multi-row
 * INSERT per append (one round trip, one commit). */
typedef struct pg {
    PGconn *c;
    size_t prepared[8], n_prepared; /* the row counts of the insert statements prepared */
} pg;

static PGresult *pg_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(what, PQerrorMessage(c));
    return r;
}

static PGconn *pg_conn(void)
{
    PGconn *c = PQconnectdb(target);
    if (PQstatus(c) != CONNECTION_OK) die("postgres connect", PQerrorMessage(c));
    PQclear(pg_ok(c, PQexec(c, "SET client_min_messages TO warning"), "set"));
    return c;
}

static void pg_setup(void)
{
    PGconn *c = pg_conn();
    PQclear(pg_ok(c, PQexec(c, "DROP TABLE IF EXISTS event_store"), "drop"));
    PQclear(pg_ok(c, PQexec(c, "CREATE TABLE event_store (stream_id VARCHAR(255) NOT NULL, version INTEGER NOT NULL, "
                               "event_id UUID NOT NULL, event_type VARCHAR(255) NOT NULL, data JSONB NOT NULL, "
                               "metadata JSONB, timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(), position BIGSERIAL, "
                               "PRIMARY KEY (stream_id, version))"),
                  "create"));
    PQclear(pg_ok(c, PQexec(c, "CREATE INDEX ON event_store (position)"), "index"));
    PQclear(pg_ok(c, PQexec(c, "CREATE OR REPLACE FUNCTION event_notify() RETURNS trigger AS $$ BEGIN "
                               "PERFORM pg_notify('events', NEW.event_id::text); RETURN NULL; END $$ LANGUAGE plpgsql"),
                  "function"));
    PQfinish(c);
}

static void *pg_connect(void)
{
    pg *p = calloc(1, sizeof *p);
    p->c = pg_conn();
    PQclear(pg_ok(p->c, PQprepare(p->c, "ver", "SELECT coalesce(max(version), -1) FROM event_store WHERE stream_id = $1", 1, NULL), "prepare"));
    PQclear(pg_ok(p->c, PQprepare(p->c, "rds", "SELECT version, data::text, metadata::text FROM event_store WHERE stream_id = $1 "
                                           "AND version > $2 ORDER BY version LIMIT $3", 3, NULL), "prepare"));
    PQclear(pg_ok(p->c, PQprepare(p->c, "rda", "SELECT position, data::text, metadata::text FROM event_store WHERE position > $1 "
                                           "ORDER BY position LIMIT $2", 2, NULL), "prepare"));
    PQclear(pg_ok(p->c, PQprepare(p->c, "ids", "SELECT event_id::text, version FROM event_store WHERE stream_id = $1 ORDER BY version", 1, NULL), "prepare"));
    PQclear(pg_ok(p->c, PQprepare(p->c, "load", "SELECT version, event_type, data::text, metadata::text FROM event_store "
                                            "WHERE stream_id = $1 ORDER BY version", 1, NULL), "prepare"));
    return p;
}

static void pg_disconnect(void *c)
{
    pg *p = c;
    PQfinish(p->c);
    free(p);
}

static int64_t pg_version(void *c, const char *stream)
{
    pg *p = c;
    const char *v[1] = {stream};
    PGresult *r = pg_ok(p->c, PQexecPrepared(p->c, "ver", 1, v, NULL, NULL, 0), "version");
    int64_t x = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return x;
}

static int pg_append(void *c, const char *stream, int64_t expected, const bev *e, size_t n, int64_t *last)
{
    pg *p = c;
    int64_t cur = expected == ANY ? pg_version(c, stream) : expected;
    char name[32];
    snprintf(name, sizeof name, "ins%zu", n);
    size_t known = 0;
    while (known < p->n_prepared && p->prepared[known] != n) known++;
    if (known == p->n_prepared) {
        char *sql = malloc(n * 80 + 200);
        size_t off = (size_t)sprintf(sql, "INSERT INTO event_store (stream_id, version, event_id, event_type, data, metadata) VALUES ");
        for (size_t k = 0; k < n; k++)
            off += (size_t)sprintf(sql + off, "%s($1,$%zu,$%zu::uuid,'MoneyDeposited',$%zu::jsonb,$%zu::jsonb)", k ? "," : "",
                                   k * 4 + 2, k * 4 + 3, k * 4 + 4, k * 4 + 5);
        PGresult *r = PQprepare(p->c, name, sql, (int)(1 + 4 * n), NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("prepare insert", PQerrorMessage(p->c));
        PQclear(r);
        free(sql);
        if (p->n_prepared == 8) { /* the workloads use 3 sizes; forget the oldest */
            char sq[48];
            snprintf(sq, sizeof sq, "DEALLOCATE ins%zu", p->prepared[0]);
            PQclear(pg_ok(p->c, PQexec(p->c, sq), "deallocate"));
            memmove(p->prepared, p->prepared + 1, 7 * sizeof *p->prepared);
            p->n_prepared--;
        }
        p->prepared[p->n_prepared++] = n;
    }
    const char **vals = malloc((1 + 4 * n) * sizeof *vals);
    char (*vers)[24] = malloc(n * 24);
    vals[0] = stream;
    for (size_t k = 0; k < n; k++) {
        snprintf(vers[k], 24, "%" PRId64, cur + 1 + (int64_t)k);
        vals[1 + 4 * k] = vers[k];
        vals[2 + 4 * k] = e[k].id;
        vals[3 + 4 * k] = e[k].data;
        vals[4 + 4 * k] = e[k].meta;
    }
    PGresult *r = PQexecPrepared(p->c, name, (int)(1 + 4 * n), vals, NULL, NULL, 0);
    free(vals);
    free(vers);
    int conflict = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!state || strcmp(state, "23505")) die("insert", PQerrorMessage(p->c));
        conflict = 1;
    }
    PQclear(r);
    if (conflict) return 1;
    *last = cur + (int64_t)n;
    return 0;
}

static size_t pg_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    pg *p = c;
    char from[24], lim[24];
    snprintf(from, sizeof from, "%s", cursor[0] ? cursor : stream ? "-1" : "0");
    snprintf(lim, sizeof lim, "%zu", max);
    PGresult *r;
    if (stream) {
        const char *v[3] = {stream, from, lim};
        r = pg_ok(p->c, PQexecPrepared(p->c, "rds", 3, v, NULL, NULL, 0), "read stream");
    } else {
        const char *v[2] = {from, lim};
        r = pg_ok(p->c, PQexecPrepared(p->c, "rda", 2, v, NULL, NULL, 0), "read all");
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) *bytes += (uint64_t)PQgetlength(r, i, 1) + (uint64_t)PQgetlength(r, i, 2);
    if (n) snprintf(cursor, 32, "%s", PQgetvalue(r, n - 1, 0));
    PQclear(r);
    return (size_t)n;
}

static size_t pg_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    pg *p = c;
    const char *v[1] = {stream};
    PGresult *r = pg_ok(p->c, PQexecPrepared(p->c, "ids", 1, v, NULL, NULL, 0), "ids");
    size_t n = 0;
    for (int i = 0; i < PQntuples(r) && n < cap; i++, n++) {
        snprintf(ids[n], 37, "%s", PQgetvalue(r, i, 0));
        versions[n] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    return n;
}

/* W6 with LISTEN/NOTIFY: a trigger notifies every insert (created for W6
 * only, so that it costs the other workloads nothing). */
static void *pg_sub_open(void)
{
    PGconn *c = pg_conn();
    PQclear(pg_ok(c, PQexec(c, "CREATE OR REPLACE TRIGGER event_notify AFTER INSERT ON event_store FOR EACH ROW "
                               "EXECUTE FUNCTION event_notify()"),
                  "trigger"));
    PQclear(pg_ok(c, PQexec(c, "LISTEN events"), "listen"));
    return c;
}

static int pg_sub_next(void *s, int timeout_ms, char id[37])
{
    PGconn *c = s;
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        PQconsumeInput(c);
        PGnotify *nt = PQnotifies(c);
        if (nt) {
            snprintf(id, 37, "%s", nt->extra);
            PQfreemem(nt);
            return 1;
        }
        uint64_t now = now_ns();
        if (now >= end) return 0;
        struct pollfd pfd = {PQsocket(c), POLLIN, 0};
        poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
    }
}

static void pg_sub_close(void *s)
{
    PGconn *c = s;
    PQclear(pg_ok(c, PQexec(c, "DROP TRIGGER IF EXISTS event_notify ON event_store"), "drop trigger"));
    PQfinish(c);
}

/* W8: PostgreSQL has no consumer groups; the usual analogue is a queue
 * table filled by a trigger in the append's own transaction (an outbox),
 * from which members claim rows with FOR UPDATE SKIP LOCKED and delete them
 * in the same transaction: its commit is the acknowledgement (durable, like
 * every commit here). A member claims up to 10 rows; the commit of a batch
 * travels with the claim of the next (one round trip). Members sleep on
 * LISTEN/NOTIFY (one notification per producer transaction) — notifications
 * reach a session only between transactions, so a member that found nothing
 * commits first, then waits. */
typedef struct pg_member {
    PGconn *c;
    PGresult *batch;
    int next, in_txn;
} pg_member;

static void pg_group_create(void)
{
    PGconn *c = pg_conn();
    PQclear(pg_ok(c, PQexec(c, "DROP TABLE IF EXISTS w8_queue"), "drop queue"));
    PQclear(pg_ok(c, PQexec(c, "CREATE TABLE w8_queue (position BIGINT PRIMARY KEY, event_id UUID NOT NULL)"), "queue"));
    PQclear(pg_ok(c, PQexec(c, "CREATE OR REPLACE FUNCTION w8_enqueue() RETURNS trigger AS $$ BEGIN "
                               "INSERT INTO w8_queue VALUES (NEW.position, NEW.event_id); PERFORM pg_notify('w8', ''); "
                               "RETURN NULL; END $$ LANGUAGE plpgsql"),
                  "enqueue function"));
    PQclear(pg_ok(c, PQexec(c, "CREATE OR REPLACE TRIGGER w8_enqueue AFTER INSERT ON event_store FOR EACH ROW "
                               "EXECUTE FUNCTION w8_enqueue()"),
                  "enqueue trigger"));
    PQfinish(c);
}

static void *pg_member_open(int i)
{
    (void)i;
    pg_member *m = calloc(1, sizeof *m);
    m->c = pg_conn();
    PQclear(pg_ok(m->c, PQexec(m->c, "LISTEN w8"), "listen"));
    return m;
}

/* Commit what is claimed (the ack of the previous batch), claim the next. */
static int pg_member_claim(pg_member *m)
{
    if (m->batch) PQclear(m->batch);
    m->batch = NULL;
    m->next = 0;
    /* The claim is a materialised CTE: as "position IN (SELECT ...)" the
     * planner may run the locking subquery once per row of the queue. */
#define PG_CLAIM "BEGIN; WITH c AS MATERIALIZED (SELECT position FROM w8_queue ORDER BY position LIMIT 10 FOR UPDATE " \
                 "SKIP LOCKED) DELETE FROM w8_queue q USING c WHERE q.position = c.position RETURNING q.event_id::text"
    PGresult *r = pg_ok(m->c, PQexec(m->c, m->in_txn ? "COMMIT; " PG_CLAIM : PG_CLAIM), "claim");
    m->in_txn = 1;
    if (PQntuples(r)) {
        m->batch = r;
        return 1;
    }
    PQclear(r);
    PQclear(pg_ok(m->c, PQexec(m->c, "COMMIT"), "commit"));
    m->in_txn = 0;
    return 0;
}

static int pg_member_next(void *p, int timeout_ms, char id[37])
{
    pg_member *m = p;
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!m->batch || m->next >= PQntuples(m->batch)) {
        if (pg_member_claim(m)) break;
        /* Nothing unclaimed: wait for a producer's commit. */
        int woken = 0;
        while (!woken) {
            PQconsumeInput(m->c);
            for (PGnotify *nt; (nt = PQnotifies(m->c)); PQfreemem(nt)) woken = 1;
            if (woken) break;
            uint64_t now = now_ns();
            if (now >= end) return 0;
            struct pollfd pfd = {PQsocket(m->c), POLLIN, 0};
            poll(&pfd, 1, (int)((end - now) / 1000000u) + 1);
        }
    }
    snprintf(id, 37, "%s", PQgetvalue(m->batch, m->next++, 0));
    return 1;
}

static void pg_member_ack(void *p)
{
    (void)p; /* the batch's delete commits with the next claim */
}

static void pg_member_close(void *p)
{
    pg_member *m = p;
    if (m->batch) PQclear(m->batch);
    if (m->in_txn) PQclear(pg_ok(m->c, PQexec(m->c, "COMMIT"), "commit"));
    PQfinish(m->c);
    free(m);
}


/* W11: the aggregate's events by the primary key, a prepared statement. */
static size_t pg_load(void *c, const char *stream, uint64_t *bytes)
{
    pg *p = c;
    const char *v[1] = {stream};
    PGresult *r = pg_ok(p->c, PQexecPrepared(p->c, "load", 1, v, NULL, NULL, 0), "load");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) *bytes += (uint64_t)PQgetlength(r, i, 2) + (uint64_t)PQgetlength(r, i, 3);
    PQclear(r);
    return (size_t)n;
}

/* W12: a connection per subscriber, each LISTENing (W6's trigger notifies
 * every insert with its event id); W12_THREADS threads each wait on an
 * epoll set of their share of the connections. */
typedef struct pg_fan {
    PGconn **c;
    size_t n;
    int ep[W12_THREADS];
    pthread_t th[W12_THREADS];
    atomic_int stop;
} pg_fan;

typedef struct pg_fan_arg {
    pg_fan *f;
    int t;
} pg_fan_arg;

static void *pg_fan_loop(void *p)
{
    pg_fan_arg *a = p;
    struct epoll_event ev[64];
    while (!atomic_load(&a->f->stop)) {
        int k = epoll_wait(a->f->ep[a->t], ev, 64, 100);
        for (int i = 0; i < k; i++) {
            PGconn *c = ev[i].data.ptr;
            PQconsumeInput(c);
            uint64_t t = now_ns();
            for (PGnotify *nt; (nt = PQnotifies(c)); PQfreemem(nt)) w12_got(nt->extra, t);
        }
    }
    free(a);
    return NULL;
}

static void *pg_fan_open(size_t n)
{
    pg_fan *f = calloc(1, sizeof *f);
    f->n = n;
    f->c = calloc(n, sizeof *f->c);
    PGconn *admin = pg_conn();
    PQclear(pg_ok(admin, PQexec(admin, "CREATE OR REPLACE TRIGGER event_notify AFTER INSERT ON event_store FOR EACH ROW "
                                       "EXECUTE FUNCTION event_notify()"),
                  "trigger"));
    PQfinish(admin);
    for (int t = 0; t < W12_THREADS; t++) f->ep[t] = epoll_create1(EPOLL_CLOEXEC);
    for (size_t j = 0; j < n; j++) {
        f->c[j] = pg_conn();
        PQclear(pg_ok(f->c[j], PQexec(f->c[j], "LISTEN events"), "listen"));
        if (PQsetnonblocking(f->c[j], 1)) die("postgres", "nonblocking");
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = f->c[j]};
        if (epoll_ctl(f->ep[j % W12_THREADS], EPOLL_CTL_ADD, PQsocket(f->c[j]), &e)) die("epoll", "add");
    }
    for (int t = 0; t < W12_THREADS; t++) {
        pg_fan_arg *a = malloc(sizeof *a);
        *a = (pg_fan_arg){f, t};
        pthread_create(&f->th[t], NULL, pg_fan_loop, a);
    }
    return f;
}

static void pg_fan_close(void *p)
{
    pg_fan *f = p;
    atomic_store(&f->stop, 1);
    for (int t = 0; t < W12_THREADS; t++) {
        pthread_join(f->th[t], NULL);
        close(f->ep[t]);
    }
    for (size_t j = 0; j < f->n; j++) PQfinish(f->c[j]);
    PGconn *admin = pg_conn();
    PQclear(pg_ok(admin, PQexec(admin, "DROP TRIGGER IF EXISTS event_notify ON event_store"), "drop trigger"));
    PQfinish(admin);
    free(f->c);
    free(f);
}


static const backend pg_backend = {"PostgreSQL",   pg_setup,        pg_connect,     pg_disconnect,  pg_append,
                                   pg_version,     pg_read,         pg_ids,         pg_sub_open,    pg_sub_next,
                                   pg_sub_close,   pg_group_create, pg_member_open, pg_member_next, pg_member_ack,
                                   pg_member_close, pg_load, "a prepared SELECT ... WHERE stream_id = $1 ORDER BY version",
                                   pg_fan_open, pg_fan_close, "a connection each, LISTEN/NOTIFY, served by 2 epoll threads"};
#endif

/* ======================= SQLite ============================================ */
#ifdef HAVE_SQLITE

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *ver, *ins, *rd_stream, *rd_all, *ids, *after, *load;
} sq;

static char sq_path[1024];

static void sq_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die(sql, err ? err : "?");
}

static void sq_prep(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(db));
}

static void sq_setup(void)
{
    snprintf(sq_path, sizeof sq_path, "%s/events.db", target);
    unlink(sq_path);
    char p[1100];
    snprintf(p, sizeof p, "%s-wal", sq_path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", sq_path);
    unlink(p);
    sqlite3 *db;
    if (sqlite3_open(sq_path, &db) != SQLITE_OK) die("sqlite open", sqlite3_errmsg(db));
    sq_exec(db, "PRAGMA journal_mode=WAL");
    sq_exec(db, "CREATE TABLE event_store (position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL, "
                "version INTEGER NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL, data TEXT NOT NULL, "
                "metadata TEXT, timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
                "UNIQUE (stream_id, version))");
    sqlite3_close(db);
}

/* W8's members wait for the lock 20 µs, then twice as long each try up to
 * 1 ms (for up to 60 s): sqlite3_busy_timeout sleeps 1, 2, 5, 10 ... 100 ms
 * between tries, which costs a claim tens of milliseconds. (W3 and W7 keep
 * sqlite3_busy_timeout: with 16 or 256 writers, short sleeps make SQLite
 * slower, measured.) */
static int sq_busy(void *arg, int tries)
{
    (void)arg;
    if (tries >= 60000) return 0;
    usleep(tries < 6 ? 20u << tries : 1000u);
    return 1;
}

static void *sq_connect(void)
{
    sq *s = calloc(1, sizeof *s);
    if (sqlite3_open(sq_path, &s->db) != SQLITE_OK) die("sqlite open", sqlite3_errmsg(s->db));
    sqlite3_busy_timeout(s->db, 60000);
    sq_exec(s->db, "PRAGMA journal_mode=WAL");
    sq_exec(s->db, "PRAGMA synchronous=FULL");
    sq_prep(s->db, &s->ver, "SELECT max(version) FROM event_store WHERE stream_id = ?1");
    sq_prep(s->db, &s->ins,
            "INSERT INTO event_store (stream_id, version, event_id, event_type, data, metadata) "
            "VALUES (?1, ?2, ?3, 'MoneyDeposited', ?4, ?5)");
    sq_prep(s->db, &s->rd_stream,
            "SELECT version, data, metadata FROM event_store WHERE stream_id = ?1 AND version > ?2 "
            "ORDER BY version LIMIT ?3");
    sq_prep(s->db, &s->rd_all,
            "SELECT position, data, metadata FROM event_store WHERE position > ?1 ORDER BY position LIMIT ?2");
    sq_prep(s->db, &s->ids, "SELECT event_id, version FROM event_store WHERE stream_id = ?1 ORDER BY version");
    sq_prep(s->db, &s->after, "SELECT position, event_id FROM event_store WHERE position > ?1 ORDER BY position LIMIT 1");
    sq_prep(s->db, &s->load,
            "SELECT version, event_type, data, metadata FROM event_store WHERE stream_id = ?1 ORDER BY version");
    return s;
}

static void sq_disconnect(void *c)
{
    sq *s = c;
    sqlite3_finalize(s->ver);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->rd_stream);
    sqlite3_finalize(s->rd_all);
    sqlite3_finalize(s->ids);
    sqlite3_finalize(s->after);
    sqlite3_finalize(s->load);
    sqlite3_close(s->db);
    free(s);
}

static int64_t sq_version_locked(sq *s, const char *stream)
{
    sqlite3_bind_text(s->ver, 1, stream, -1, SQLITE_STATIC);
    int64_t v = NO_STREAM;
    if (sqlite3_step(s->ver) == SQLITE_ROW && sqlite3_column_type(s->ver, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(s->ver, 0);
    sqlite3_reset(s->ver);
    return v;
}

static int sq_append(void *c, const char *stream, int64_t expected, const bev *e, size_t n, int64_t *last)
{
    sq *s = c;
    sq_exec(s->db, "BEGIN IMMEDIATE");
    int64_t cur = sq_version_locked(s, stream);
    if (expected != ANY && cur != expected) {
        sq_exec(s->db, "ROLLBACK");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(s->ins, 1, stream, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ins, 2, cur + 1 + (int64_t)i);
        sqlite3_bind_text(s->ins, 3, e[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->ins, 4, e[i].data, (int)e[i].dlen, SQLITE_STATIC);
        sqlite3_bind_text(s->ins, 5, e[i].meta, (int)e[i].mlen, SQLITE_STATIC);
        if (sqlite3_step(s->ins) != SQLITE_DONE) die("sqlite insert", sqlite3_errmsg(s->db));
        sqlite3_reset(s->ins);
    }
    sq_exec(s->db, "COMMIT");
    *last = cur + (int64_t)n;
    return 0;
}

static int64_t sq_version(void *c, const char *stream)
{
    return sq_version_locked(c, stream);
}

static size_t sq_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    sq *s = c;
    int64_t after = cursor[0] ? strtoll(cursor, NULL, 10) : (stream ? -1 : 0);
    sqlite3_stmt *st = stream ? s->rd_stream : s->rd_all;
    int k = 1;
    if (stream) sqlite3_bind_text(st, k++, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, k++, after);
    sqlite3_bind_int64(st, k, (int64_t)max);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        after = sqlite3_column_int64(st, 0);
        *bytes += (uint64_t)sqlite3_column_bytes(st, 1) + (uint64_t)sqlite3_column_bytes(st, 2);
        n++;
    }
    sqlite3_reset(st);
    snprintf(cursor, 32, "%" PRId64, after);
    return n;
}

static size_t sq_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    sq *s = c;
    sqlite3_bind_text(s->ids, 1, stream, -1, SQLITE_STATIC);
    size_t n = 0;
    while (sqlite3_step(s->ids) == SQLITE_ROW && n < cap) {
        snprintf(ids[n], 37, "%s", (const char *)sqlite3_column_text(s->ids, 0));
        versions[n++] = sqlite3_column_int64(s->ids, 1);
    }
    sqlite3_reset(s->ids);
    return n;
}

/* SQLite has no notification between connections: the subscriber polls. */
typedef struct sq_sub {
    sq *s;
    int64_t pos;
} sq_sub;

static void *sq_sub_open(void)
{
    sq_sub *u = calloc(1, sizeof *u);
    u->s = sq_connect();
    sqlite3_stmt *st;
    sq_prep(u->s->db, &st, "SELECT coalesce(max(position), 0) FROM event_store");
    if (sqlite3_step(st) == SQLITE_ROW) u->pos = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return u;
}

static int sq_sub_next(void *p, int timeout_ms, char id[37])
{
    sq_sub *u = p;
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        sqlite3_bind_int64(u->s->after, 1, u->pos);
        int got = 0;
        if (sqlite3_step(u->s->after) == SQLITE_ROW) {
            u->pos = sqlite3_column_int64(u->s->after, 0);
            snprintf(id, 37, "%s", (const char *)sqlite3_column_text(u->s->after, 1));
            got = 1;
        }
        sqlite3_reset(u->s->after);
        if (got) return 1;
        if (now_ns() >= end) return 0;
        usleep(50); /* a 50 µs polling period */
    }
}

static void sq_sub_close(void *p)
{
    sq_sub *u = p;
    sq_disconnect(u->s);
    free(u);
}

/* W8: SQLite has neither consumer groups nor notifications between
 * connections. The analogue: a queue table filled by a trigger in the
 * append's transaction; a member claims up to 10 unowned rows (UPDATE ...
 * RETURNING) and deletes them once handled (the ack), both in one write
 * transaction (BEGIN IMMEDIATE, synchronous=FULL: an fsync). A member with
 * nothing claimed polls a read-only query every 50 µs, as the W6 subscriber. */
typedef struct sq_member {
    sq *s;
    sqlite3_stmt *peek, *claim, *ack;
    int64_t me;
    char ids[10][37];
    int n, next;
} sq_member;

static void sq_group_create(void)
{
    sq *s = sq_connect();
    sq_exec(s->db, "DROP TABLE IF EXISTS w8_queue");
    sq_exec(s->db, "CREATE TABLE w8_queue (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, owner INTEGER)");
    sq_exec(s->db, "CREATE TRIGGER IF NOT EXISTS w8_enqueue AFTER INSERT ON event_store BEGIN "
                   "INSERT INTO w8_queue (position, event_id) VALUES (NEW.position, NEW.event_id); END");
    sq_disconnect(s);
}

static void *sq_member_open(int i)
{
    sq_member *m = calloc(1, sizeof *m);
    m->s = sq_connect();
    sqlite3_busy_handler(m->s->db, sq_busy, NULL);
    m->me = i + 1;
    sq_prep(m->s->db, &m->peek, "SELECT 1 FROM w8_queue WHERE owner IS NULL LIMIT 1");
    sq_prep(m->s->db, &m->claim,
            "UPDATE w8_queue SET owner = ?1 WHERE position IN (SELECT position FROM w8_queue WHERE owner IS NULL "
            "ORDER BY position LIMIT 10) RETURNING event_id");
    sq_prep(m->s->db, &m->ack, "DELETE FROM w8_queue WHERE owner = ?1");
    return m;
}

/* The ack: delete the member's handled rows (in a write transaction). */
static void sq_member_delete_handled(sq_member *m)
{
    sqlite3_bind_int64(m->ack, 1, m->me);
    if (sqlite3_step(m->ack) != SQLITE_DONE) die("sqlite ack", sqlite3_errmsg(m->s->db));
    sqlite3_reset(m->ack);
}

/* Delete the handled batch (if any) and claim the next, in one transaction. */
static int sq_member_claim(sq_member *m)
{
    sq_exec(m->s->db, "BEGIN IMMEDIATE");
    if (m->n) sq_member_delete_handled(m);
    m->n = m->next = 0;
    sqlite3_bind_int64(m->claim, 1, m->me);
    int rc;
    while ((rc = sqlite3_step(m->claim)) == SQLITE_ROW)
        if (m->n < 10) snprintf(m->ids[m->n++], 37, "%s", (const char *)sqlite3_column_text(m->claim, 0));
    if (rc != SQLITE_DONE) die("sqlite claim", sqlite3_errmsg(m->s->db));
    sqlite3_reset(m->claim);
    sq_exec(m->s->db, "COMMIT");
    return m->n > 0;
}

static int sq_member_next(void *p, int timeout_ms, char id[37])
{
    sq_member *m = p;
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (m->next >= m->n) {
        int ready = m->n > 0; /* a handled batch to acknowledge */
        if (!ready) {
            ready = sqlite3_step(m->peek) == SQLITE_ROW;
            sqlite3_reset(m->peek);
        }
        if (ready && sq_member_claim(m)) break;
        if (now_ns() >= end) return 0;
        usleep(50);
    }
    memcpy(id, m->ids[m->next++], 37);
    return 1;
}

static void sq_member_ack(void *p)
{
    (void)p; /* the batch is deleted with the next claim */
}

static void sq_member_close(void *p)
{
    sq_member *m = p;
    if (m->n) {
        sq_exec(m->s->db, "BEGIN IMMEDIATE");
        sq_member_delete_handled(m);
        sq_exec(m->s->db, "COMMIT");
    }
    sqlite3_finalize(m->peek);
    sqlite3_finalize(m->claim);
    sqlite3_finalize(m->ack);
    sq_disconnect(m->s);
    free(m);
}


/* W11: the aggregate's events by the (stream_id, version) key. */
static size_t sq_load(void *c, const char *stream, uint64_t *bytes)
{
    sq *s = c;
    sqlite3_bind_text(s->load, 1, stream, -1, SQLITE_STATIC);
    size_t n = 0;
    while (sqlite3_step(s->load) == SQLITE_ROW) {
        *bytes += (uint64_t)sqlite3_column_bytes(s->load, 2) + (uint64_t)sqlite3_column_bytes(s->load, 3);
        n++;
    }
    sqlite3_reset(s->load);
    return n;
}

static const backend sqlite_backend = {"SQLite",        sq_setup,        sq_connect,     sq_disconnect,  sq_append,
                                       sq_version,      sq_read,         sq_ids,         sq_sub_open,    sq_sub_next,
                                       sq_sub_close,    sq_group_create, sq_member_open, sq_member_next, sq_member_ack,
                                       sq_member_close, sq_load, "a prepared SELECT ... WHERE stream_id = ?1 ORDER BY version",
                                       NULL, NULL, NULL};
#endif

/* ======================= Redis Streams ====================================== */
#ifdef HAVE_HIREDIS

static char rd_host[256];
static int rd_port;

/* KEYS[1] the stream, KEYS[2] the global stream; ARGV[1] expected version
 * (-2 any, -1 no stream), ARGV[2] the stream name, then id, data, metadata
 * per event. The version is the stream's length - 1. */
static const char rd_script[] =
    "local cur = redis.call('XLEN', KEYS[1]) - 1\n"
    "local exp = tonumber(ARGV[1])\n"
    "if exp ~= -2 and exp ~= cur then return -100 - cur end\n"
    "for i = 3, #ARGV, 3 do\n"
    "  cur = cur + 1\n"
    "  redis.call('XADD', KEYS[1], '*', 'v', cur, 'id', ARGV[i], 'type', 'MoneyDeposited', 'data', ARGV[i+1], 'meta', ARGV[i+2])\n"
    "  redis.call('XADD', KEYS[2], '*', 's', ARGV[2], 'v', cur, 'id', ARGV[i], 'type', 'MoneyDeposited', 'data', ARGV[i+1], 'meta', ARGV[i+2])\n"
    "end\n"
    "return cur\n";
static char rd_sha[64];

static redisContext *rd_conn(void)
{
    redisContext *r = redisConnect(rd_host, rd_port);
    if (!r || r->err) die("redis connect", r ? r->errstr : "out of memory");
    return r;
}

static redisReply *rd_cmd(redisContext *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *x = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!x) die("redis", r->errstr);
    if (x->type == REDIS_REPLY_ERROR) die("redis", x->str);
    return x;
}

static void rd_setup(void)
{
    const char *colon = strrchr(target, ':');
    if (!colon) die("redis target", "host:port");
    snprintf(rd_host, sizeof rd_host, "%.*s", (int)(colon - target), target);
    rd_port = atoi(colon + 1);
    redisContext *r = rd_conn();
    freeReplyObject(rd_cmd(r, "FLUSHALL"));
    redisReply *x = rd_cmd(r, "SCRIPT LOAD %s", rd_script);
    snprintf(rd_sha, sizeof rd_sha, "%s", x->str);
    freeReplyObject(x);
    redisFree(r);
}

static void *rd_connect(void)
{
    return rd_conn();
}

static void rd_disconnect(void *c)
{
    redisFree(c);
}

static int rd_append(void *c, const char *stream, int64_t expected, const bev *e, size_t n, int64_t *last)
{
    size_t argc = 7 + 3 * n, k = 0;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char key[80], exp[24];
    snprintf(key, sizeof key, "s:%s", stream);
    snprintf(exp, sizeof exp, "%" PRId64, expected);
#define ARG(p, l) (argv[k] = (p), lens[k] = (l), k++)
    ARG("EVALSHA", 7);
    ARG(rd_sha, strlen(rd_sha));
    ARG("2", 1);
    ARG(key, strlen(key));
    ARG("all", 3);
    ARG(exp, strlen(exp));
    ARG(stream, strlen(stream));
    for (size_t i = 0; i < n; i++) {
        ARG(e[i].id, 36);
        ARG(e[i].data, e[i].dlen);
        ARG(e[i].meta, e[i].mlen);
    }
#undef ARG
    redisReply *x = redisCommandArgv(c, (int)k, argv, lens);
    free(argv);
    free(lens);
    if (!x) die("redis append", ((redisContext *)c)->errstr);
    if (x->type != REDIS_REPLY_INTEGER) die("redis append", x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
    long long v = x->integer;
    freeReplyObject(x);
    if (v <= -100) return 1;
    *last = v;
    return 0;
}

static int64_t rd_version(void *c, const char *stream)
{
    redisReply *x = rd_cmd(c, "XLEN s:%s", stream);
    int64_t v = (int64_t)x->integer - 1;
    freeReplyObject(x);
    return v;
}

/* The value of a field of a stream entry's field list. */
static const redisReply *rd_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (!strcmp(fields->element[i]->str, name)) return fields->element[i + 1];
    return NULL;
}

static size_t rd_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    char start[64];
    snprintf(start, sizeof start, "%s%s", cursor[0] ? "(" : "", cursor[0] ? cursor : "-");
    redisReply *x = stream ? rd_cmd(c, "XRANGE s:%s %s + COUNT %d", stream, start, (int)max)
                           : rd_cmd(c, "XRANGE all %s + COUNT %d", start, (int)max);
    size_t n = x->elements;
    for (size_t i = 0; i < n; i++) {
        const redisReply *ent = x->element[i], *f = ent->element[1];
        const redisReply *d = rd_field(f, "data"), *m = rd_field(f, "meta");
        *bytes += (d ? d->len : 0) + (m ? m->len : 0);
        if (i == n - 1) snprintf(cursor, 64, "%s", ent->element[0]->str);
    }
    freeReplyObject(x);
    return n;
}

static size_t rd_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    redisReply *x = rd_cmd(c, "XRANGE s:%s - +", stream);
    size_t n = 0;
    for (size_t i = 0; i < x->elements && n < cap; i++) {
        const redisReply *f = x->element[i]->element[1];
        const redisReply *id = rd_field(f, "id"), *v = rd_field(f, "v");
        snprintf(ids[n], 37, "%s", id ? id->str : "");
        versions[n++] = v ? strtoll(v->str, NULL, 10) : -1;
    }
    freeReplyObject(x);
    return n;
}

typedef struct rd_sub {
    redisContext *r;
    char last[64];
} rd_sub;

static void *rd_sub_open(void)
{
    rd_sub *u = calloc(1, sizeof *u);
    u->r = rd_conn();
    snprintf(u->last, sizeof u->last, "$");
    return u;
}

static int rd_sub_next(void *p, int timeout_ms, char id[37])
{
    rd_sub *u = p;
    redisReply *x = rd_cmd(u->r, "XREAD COUNT 1 BLOCK %d STREAMS all %s", timeout_ms, u->last);
    int got = 0;
    if (x->type == REDIS_REPLY_ARRAY && x->elements) {
        const redisReply *ent = x->element[0]->element[1]->element[0];
        snprintf(u->last, sizeof u->last, "%s", ent->element[0]->str);
        const redisReply *f = rd_field(ent->element[1], "id");
        snprintf(id, 37, "%s", f ? f->str : "");
        got = 1;
    }
    freeReplyObject(x);
    return got;
}

static void rd_sub_close(void *p)
{
    rd_sub *u = p;
    redisFree(u->r);
    free(u);
}


/* W8: a Redis consumer group on the global stream. A member reads up to 10
 * entries per XREADGROUP and acknowledges them with one XACK once it has
 * handled them (each XACK is a write: with appendfsync always, an fsync). */
typedef struct rd_member {
    redisContext *r;
    char name[32];
    redisReply *batch;
    size_t next;
    char ids[10][64];
    size_t n_acks;
} rd_member;

static void rd_group_create(void)
{
    redisContext *r = rd_conn();
    redisReply *x = redisCommand(r, "XGROUP CREATE all w8 $ MKSTREAM");
    if (x) freeReplyObject(x);
    redisFree(r);
}

static void *rd_member_open(int i)
{
    rd_member *m = calloc(1, sizeof *m);
    m->r = rd_conn();
    snprintf(m->name, sizeof m->name, "member-%d", i);
    return m;
}

static void rd_flush_acks(rd_member *m)
{
    if (!m->n_acks) return;
    const char *argv[13];
    size_t lens[13], k = 0;
    argv[k] = "XACK", lens[k++] = 4;
    argv[k] = "all", lens[k++] = 3;
    argv[k] = "w8", lens[k++] = 2;
    for (size_t i = 0; i < m->n_acks; i++) argv[k] = m->ids[i], lens[k++] = strlen(m->ids[i]);
    redisReply *x = redisCommandArgv(m->r, (int)k, argv, lens);
    if (x) freeReplyObject(x);
    m->n_acks = 0;
}

static int rd_member_next(void *p, int timeout_ms, char id[37])
{
    rd_member *m = p;
    const redisReply *entries = m->batch ? m->batch->element[0]->element[1] : NULL;
    if (!entries || m->next >= entries->elements) {
        rd_flush_acks(m);
        if (m->batch) freeReplyObject(m->batch);
        m->batch = NULL;
        m->next = 0;
        redisReply *x = rd_cmd(m->r, "XREADGROUP GROUP w8 %s COUNT 10 BLOCK %d STREAMS all >", m->name, timeout_ms);
        if (x->type != REDIS_REPLY_ARRAY || !x->elements) {
            freeReplyObject(x);
            return 0;
        }
        m->batch = x;
        entries = x->element[0]->element[1];
    }
    const redisReply *ent = entries->element[m->next++];
    snprintf(m->ids[m->n_acks++], 64, "%s", ent->element[0]->str);
    const redisReply *f = rd_field(ent->element[1], "id");
    snprintf(id, 37, "%s", f ? f->str : "");
    return 1;
}

static void rd_member_ack(void *p)
{
    (void)p; /* acknowledged in batches: rd_flush_acks */
}

static void rd_member_close(void *p)
{
    rd_member *m = p;
    rd_flush_acks(m);
    if (m->batch) freeReplyObject(m->batch);
    redisFree(m->r);
    free(m);
}


/* W11: the aggregate's stream, whole (XRANGE s:<stream> - +). */
static size_t rd_load(void *c, const char *stream, uint64_t *bytes)
{
    redisReply *x = rd_cmd(c, "XRANGE s:%s - +", stream);
    size_t n = x->elements;
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = x->element[i]->element[1];
        const redisReply *d = rd_field(f, "data"), *m = rd_field(f, "meta");
        *bytes += (d ? d->len : 0) + (m ? m->len : 0);
    }
    freeReplyObject(x);
    return n;
}

/* W12: a connection per subscriber, each blocked in XREAD BLOCK 0 on the
 * global stream after the last entry it saw (the first: the stream's last
 * entry before the subscribers connect, so that none can miss an entry);
 * W12_THREADS threads each wait on an epoll set of their share, parse
 * what arrived with hiredis's reader and send the next XREAD. */
typedef struct rd_fsub {
    redisContext *r;
    char last[64];
} rd_fsub;

typedef struct rd_fan {
    rd_fsub *s;
    size_t n;
    int ep[W12_THREADS];
    pthread_t th[W12_THREADS];
    atomic_int stop;
} rd_fan;

typedef struct rd_fan_arg {
    rd_fan *f;
    int t;
} rd_fan_arg;

static void rd_fan_xread(rd_fsub *s)
{
    if (redisAppendCommand(s->r, "XREAD BLOCK 0 STREAMS all %s", s->last) != REDIS_OK) die("redis", s->r->errstr);
    for (int done = 0; !done;)
        if (redisBufferWrite(s->r, &done) != REDIS_OK) die("redis write", s->r->errstr);
}

static void *rd_fan_loop(void *p)
{
    rd_fan_arg *a = p;
    struct epoll_event ev[64];
    while (!atomic_load(&a->f->stop)) {
        int k = epoll_wait(a->f->ep[a->t], ev, 64, 100);
        for (int i = 0; i < k; i++) {
            rd_fsub *s = ev[i].data.ptr;
            if (redisBufferRead(s->r) != REDIS_OK) die("redis read", s->r->errstr);
            uint64_t t = now_ns();
            void *reply;
            while (redisReaderGetReply(s->r->reader, &reply) == REDIS_OK && reply) {
                redisReply *x = reply;
                if (x->type == REDIS_REPLY_ARRAY && x->elements) {
                    const redisReply *entries = x->element[0]->element[1];
                    for (size_t e = 0; e < entries->elements; e++) {
                        const redisReply *ent = entries->element[e], *id = rd_field(ent->element[1], "id");
                        if (id) w12_got(id->str, t);
                        if (e == entries->elements - 1) snprintf(s->last, sizeof s->last, "%s", ent->element[0]->str);
                    }
                }
                freeReplyObject(x);
                rd_fan_xread(s);
            }
        }
    }
    free(a);
    return NULL;
}

static void *rd_fan_open(size_t n)
{
    rd_fan *f = calloc(1, sizeof *f);
    f->n = n;
    f->s = calloc(n, sizeof *f->s);
    redisContext *r = rd_conn();
    redisReply *x = rd_cmd(r, "XREVRANGE all + - COUNT 1");
    char last[64] = "0-0";
    if (x->elements) snprintf(last, sizeof last, "%s", x->element[0]->element[0]->str);
    freeReplyObject(x);
    redisFree(r);
    for (int t = 0; t < W12_THREADS; t++) f->ep[t] = epoll_create1(EPOLL_CLOEXEC);
    for (size_t j = 0; j < n; j++) {
        f->s[j].r = rd_conn();
        snprintf(f->s[j].last, sizeof f->s[j].last, "%s", last);
        rd_fan_xread(&f->s[j]);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &f->s[j]};
        if (epoll_ctl(f->ep[j % W12_THREADS], EPOLL_CTL_ADD, f->s[j].r->fd, &e)) die("epoll", "add");
    }
    for (int t = 0; t < W12_THREADS; t++) {
        rd_fan_arg *a = malloc(sizeof *a);
        *a = (rd_fan_arg){f, t};
        pthread_create(&f->th[t], NULL, rd_fan_loop, a);
    }
    return f;
}

static void rd_fan_close(void *p)
{
    rd_fan *f = p;
    atomic_store(&f->stop, 1);
    for (int t = 0; t < W12_THREADS; t++) {
        pthread_join(f->th[t], NULL);
        close(f->ep[t]);
    }
    for (size_t j = 0; j < f->n; j++) redisFree(f->s[j].r);
    free(f->s);
    free(f);
}

static const backend redis_backend = {"Redis",        rd_setup,        rd_connect,     rd_disconnect,  rd_append,
                                      rd_version,     rd_read,         rd_ids,         rd_sub_open,    rd_sub_next,
                                      rd_sub_close,   rd_group_create, rd_member_open, rd_member_next, rd_member_ack,
                                      rd_member_close, rd_load, "XRANGE s:<stream> - +",
                                      rd_fan_open, rd_fan_close, "a connection each, XREAD BLOCK, served by 2 epoll threads"};
#endif


/* ======================= NATS JetStream ====================================== */
#ifdef HAVE_NATS

/* One JetStream stream EVENTS over subjects ev.<stream>; the version is a
 * header of each message; the concurrency check is JetStream's
 * expected-last-subject-sequence (or expected-no-message). The stream
 * fsyncs periodically (sync_interval), not before each acknowledgement. */
typedef struct nk {
    char stream[64];
    int64_t version;
    uint64_t seq;
} nk;

typedef struct nt {
    natsConnection *nc;
    jsCtx *js;
    nk *known; /* last (version, subject sequence) per stream this connection saw */
    size_t known_cap;
    natsSubscription *rsub; /* the reader's pull consumer */
    char rsubject[80];
    uint64_t rnext;
    int rend;
} nt;

static char nats_url[300];

static void nchk(natsStatus s, const char *what)
{
    if (s != NATS_OK) die(what, natsStatus_GetText(s));
}

static nt *nt_new(void)
{
    nt *n = calloc(1, sizeof *n);
    nchk(natsConnection_ConnectTo(&n->nc, nats_url), "nats connect");
    nchk(natsConnection_JetStream(&n->js, n->nc, NULL), "nats jetstream");
    n->known_cap = 16384;
    n->known = calloc(n->known_cap, sizeof *n->known);
    return n;
}

static void nt_setup(void)
{
    snprintf(nats_url, sizeof nats_url, "nats://%s", target);
    nt *n = nt_new();
    js_DeleteStream(n->js, "EVENTS", NULL, NULL);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"ev.>"};
    sc.Name = "EVENTS";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.AllowDirect = true; /* W11: direct gets */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    nchk(js_AddStream(&si, n->js, &sc, NULL, &jerr), "nats add stream");
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n->known);
    free(n);
}

static void *nt_connect(void)
{
    return nt_new();
}

static void nt_reader_close(nt *n)
{
    if (n->rsub) {
        natsSubscription_Unsubscribe(n->rsub);
        natsSubscription_Destroy(n->rsub);
    }
    n->rsub = NULL;
}

static void nt_disconnect(void *c)
{
    nt *n = c;
    nt_reader_close(n);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n->known);
    free(n);
}

static nk *nt_known(nt *n, const char *stream)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = stream; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    nk *k = &n->known[h % n->known_cap];
    if (strcmp(k->stream, stream)) {
        snprintf(k->stream, sizeof k->stream, "%s", stream);
        k->version = -3; /* unknown */
    }
    return k;
}

static int64_t nt_version(void *c, const char *stream)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    natsMsg *m = NULL;
    nk *k = nt_known(n, stream);
    if (js_GetLastMsg(&m, n->js, "EVENTS", subj, NULL, NULL) != NATS_OK) {
        k->version = NO_STREAM;
        k->seq = 0;
        return NO_STREAM;
    }
    const char *v = NULL;
    natsMsgHeader_Get(m, "v", &v);
    k->version = v ? strtoll(v, NULL, 10) : NO_STREAM;
    k->seq = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    return k->version;
}

static natsMsg *nt_msg(const char *subj, const bev *e, int64_t version)
{
    natsMsg *m;
    char v[24];
    nchk(natsMsg_Create(&m, subj, NULL, e->data, (int)e->dlen), "nats msg");
    snprintf(v, sizeof v, "%" PRId64, version);
    natsMsgHeader_Set(m, "v", v);
    natsMsgHeader_Set(m, "id", e->id);
    natsMsgHeader_Set(m, "type", "MoneyDeposited");
    char meta[170];
    snprintf(meta, sizeof meta, "%.*s", (int)e->mlen, e->meta);
    natsMsgHeader_Set(m, "m", meta);
    return m;
}

static int nt_append(void *c, const char *stream, int64_t expected, const bev *e, size_t cnt, int64_t *last)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    nk *k = nt_known(n, stream);
    /* No stream: ExpectNoMessage needs no sequence; a version: the sequence of
     * its message (known from our last append, else read). */
    if (expected >= 0 && k->version != expected) nt_version(n, stream);
    if (expected >= 0 && k->version != expected) return 1;
    int64_t cur = expected == ANY ? (k->version == -3 ? nt_version(n, stream) : k->version) : expected;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    if (expected == NO_STREAM) po.ExpectNoMessage = true;
    else if (expected != ANY) po.ExpectLastSubjectSeq = k->seq;
    /* The first message carries the check; the rest of a batch follow it
     * (JetStream has no atomic multi-message publish). */
    natsMsg *m = nt_msg(subj, &e[0], cur + 1);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_PublishMsg(&ack, n->js, m, &po, &jerr);
    natsMsg_Destroy(m);
    if (st != NATS_OK) {
        if (jerr == JSStreamWrongLastSequenceErr) {
            k->version = -3;
            return 1;
        }
        die("nats publish", natsStatus_GetText(st));
    }
    uint64_t seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    for (size_t i = 1; i < cnt; i++) {
        m = nt_msg(subj, &e[i], cur + 1 + (int64_t)i);
        nchk(js_PublishMsgAsync(n->js, &m, NULL), "nats publish async");
    }
    if (cnt > 1) {
        jsPubOptions wait;
        jsPubOptions_Init(&wait);
        wait.MaxWait = 30000;
        nchk(js_PublishAsyncComplete(n->js, &wait), "nats publish complete");
        seq = 0; /* unknown: re-read when the stream is next checked */
    }
    k->version = cur + (int64_t)cnt;
    k->seq = seq;
    if (!seq) k->version = -3;
    *last = cur + (int64_t)cnt;
    return 0;
}

static size_t nt_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "%s%s", stream ? "ev." : "ev.>", stream ? stream : "");
    uint64_t start = cursor[0] ? strtoull(cursor, NULL, 10) : 1;
    if (!n->rsub || strcmp(n->rsubject, subj) || n->rnext != start) {
        nt_reader_close(n);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = start;
        so.Config.AckPolicy = js_AckNone;
        char durable[48];
        snprintf(durable, sizeof durable, "r%lx%x", (unsigned long)now_ns(), (unsigned)rand());
        nchk(js_PullSubscribe(&n->rsub, n->js, subj, durable, NULL, &so, NULL), "nats pull subscribe");
        snprintf(n->rsubject, sizeof n->rsubject, "%s", subj);
        n->rend = 0;
    }
    n->rnext = start;
    if (n->rend) return 0;
    natsMsgList list = {0};
    natsStatus st = natsSubscription_Fetch(&list, n->rsub, (int)max, 2000, NULL);
    if (st == NATS_TIMEOUT) {
        n->rend = 1;
        return 0;
    }
    nchk(st, "nats fetch");
    size_t got = 0;
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        const char *meta = NULL;
        natsMsgHeader_Get(m, "m", &meta);
        *bytes += (uint64_t)natsMsg_GetDataLength(m) + (meta ? strlen(meta) : 0);
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
            n->rnext = md->Sequence.Stream + 1;
            if (md->NumPending == 0) n->rend = 1;
            jsMsgMetaData_Destroy(md);
        }
        got++;
    }
    natsMsgList_Destroy(&list);
    snprintf(cursor, 32, "%" PRIu64, n->rnext);
    return got;
}

static size_t nt_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    nt_reader_close(n);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckNone;
    char durable[48];
    snprintf(durable, sizeof durable, "i%lx%x", (unsigned long)now_ns(), (unsigned)rand());
    natsSubscription *sub;
    nchk(js_PullSubscribe(&sub, n->js, subj, durable, NULL, &so, NULL), "nats pull subscribe");
    size_t k = 0;
    for (int done = 0; !done && k < cap;) {
        natsMsgList list = {0};
        if (natsSubscription_Fetch(&list, sub, 1000, 1000, NULL) != NATS_OK) break;
        for (int i = 0; i < list.Count && k < cap; i++) {
            const char *id = NULL, *v = NULL;
            natsMsgHeader_Get(list.Msgs[i], "id", &id);
            natsMsgHeader_Get(list.Msgs[i], "v", &v);
            snprintf(ids[k], 37, "%s", id ? id : "");
            versions[k++] = v ? strtoll(v, NULL, 10) : -1;
            jsMsgMetaData *md = NULL;
            if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
                if (md->NumPending == 0) done = 1;
                jsMsgMetaData_Destroy(md);
            }
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return k;
}

typedef struct nt_sub {
    nt *n;
    natsSubscription *sub;
} nt_sub;

static void *nt_sub_open(void)
{
    nt_sub *u = calloc(1, sizeof *u);
    u->n = nt_new();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.DeliverPolicy = js_DeliverNew;
    so.Config.AckPolicy = js_AckNone;
    nchk(js_SubscribeSync(&u->sub, u->n->js, "ev.>", NULL, &so, NULL), "nats subscribe");
    return u;
}

static int nt_sub_next(void *p, int timeout_ms, char id[37])
{
    nt_sub *u = p;
    natsMsg *m = NULL;
    if (natsSubscription_NextMsg(&m, u->sub, timeout_ms) != NATS_OK) return 0;
    const char *v = NULL;
    natsMsgHeader_Get(m, "id", &v);
    snprintf(id, 37, "%s", v ? v : "");
    natsMsg_Destroy(m);
    return 1;
}

static void nt_sub_close(void *p)
{
    nt_sub *u = p;
    natsSubscription_Unsubscribe(u->sub);
    natsSubscription_Destroy(u->sub);
    nt_disconnect(u->n);
    free(u);
}


/* W8: one durable pull consumer (explicit acks) shared by the members. */
typedef struct nt_member {
    nt *n;
    natsSubscription *sub;
    natsMsgList list; /* up to 10 fetched at a time */
    int next;
    natsMsg *pending;
} nt_member;

static void nt_group_create(void)
{
    nt *n = nt_new();
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "w8";
    cc.DeliverPolicy = js_DeliverNew;
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = "ev.>";
    cc.MaxAckPending = 10000;
    jsConsumerInfo *ci = NULL;
    nchk(js_AddConsumer(&ci, n->js, "EVENTS", &cc, NULL, NULL), "nats add consumer");
    jsConsumerInfo_Destroy(ci);
    nt_disconnect(n);
}

static void *nt_member_open(int i)
{
    (void)i;
    nt_member *m = calloc(1, sizeof *m);
    m->n = nt_new();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "EVENTS";
    so.Consumer = "w8";
    nchk(js_PullSubscribe(&m->sub, m->n->js, "ev.>", "w8", NULL, &so, NULL), "nats bind consumer");
    return m;
}

static int nt_member_next(void *p, int timeout_ms, char id[37])
{
    nt_member *m = p;
    if (m->next >= m->list.Count) {
        natsMsgList_Destroy(&m->list);
        memset(&m->list, 0, sizeof m->list);
        m->next = 0;
        if (natsSubscription_Fetch(&m->list, m->sub, 10, timeout_ms, NULL) != NATS_OK || !m->list.Count) return 0;
    }
    m->pending = m->list.Msgs[m->next++];
    const char *v = NULL;
    natsMsgHeader_Get(m->pending, "id", &v);
    snprintf(id, 37, "%s", v ? v : "");
    return 1;
}

static void nt_member_ack(void *p)
{
    nt_member *m = p;
    natsMsg_Ack(m->pending, NULL); /* each message acknowledged (no fsync: periodic) */
}

static void nt_member_close(void *p)
{
    nt_member *m = p;
    natsMsgList_Destroy(&m->list);
    natsSubscription_Destroy(m->sub);
    nt_disconnect(m->n);
    free(m);
}


/* W11: JetStream keeps a subject's messages in the stream. The cheapest
 * way to read them here is the direct get (the stream allows it:
 * allow_direct), following the subject from sequence to sequence
 * (next_by_subj): one request per message and one that finds no more, 11
 * for a 10-event stream. NATS 2.9 has no batched direct get; an ephemeral
 * pull consumer on the subject (create, one fetch, delete: three requests,
 * but consumer state on the server) measured ~10% slower on this machine. */
static size_t nt_load(void *c, const char *stream, uint64_t *bytes)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    size_t k = 0;
    uint64_t seq = 1;
    for (;;) {
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.Sequence = seq;
        o.NextBySubject = subj;
        natsMsg *m = NULL;
        natsStatus st = js_DirectGetMsg(&m, n->js, "EVENTS", NULL, &o);
        if (st == NATS_NOT_FOUND) break;
        nchk(st, "nats direct get");
        const char *meta = NULL, *seqh = NULL;
        natsMsgHeader_Get(m, "m", &meta);
        natsMsgHeader_Get(m, "Nats-Sequence", &seqh);
        *bytes += (uint64_t)natsMsg_GetDataLength(m) + (meta ? strlen(meta) : 0);
        seq = (seqh ? strtoull(seqh, NULL, 10) : seq) + 1;
        natsMsg_Destroy(m);
        k++;
    }
    return k;
}

/* W12: a JetStream consumer per subscriber (ephemeral push consumers of
 * new messages on ev.>, no acks), spread over W12_NATS_CONNS connections
 * (NATS's usual way: many subscriptions on a connection); libnats calls
 * the handlers from a pool of W12_THREADS delivery threads. */
#define W12_NATS_CONNS 4
typedef struct nt_fan {
    nt *conns[W12_NATS_CONNS];
    natsSubscription **subs;
    size_t n;
} nt_fan;

static void nt_fan_on(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    uint64_t t = now_ns();
    const char *id = NULL;
    if (natsMsgHeader_Get(m, "id", &id) == NATS_OK && id) w12_got(id, t);
    natsMsg_Destroy(m);
}

static void *nt_fan_open(size_t n)
{
    nt_fan *f = calloc(1, sizeof *f);
    f->n = n;
    f->subs = calloc(n, sizeof *f->subs);
    nchk(nats_SetMessageDeliveryPoolSize(W12_THREADS), "nats delivery pool");
    for (int k = 0; k < W12_NATS_CONNS; k++) {
        nt *c = calloc(1, sizeof *c);
        natsOptions *o;
        nchk(natsOptions_Create(&o), "nats options");
        natsOptions_SetURL(o, nats_url);
        natsOptions_UseGlobalMessageDelivery(o, true);
        nchk(natsConnection_Connect(&c->nc, o), "nats connect");
        natsOptions_Destroy(o);
        nchk(natsConnection_JetStream(&c->js, c->nc, NULL), "nats jetstream");
        f->conns[k] = c;
    }
    for (size_t j = 0; j < n; j++) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Config.DeliverPolicy = js_DeliverNew;
        so.Config.AckPolicy = js_AckNone;
        so.Config.MemoryStorage = true;
        nchk(js_Subscribe(&f->subs[j], f->conns[j % W12_NATS_CONNS]->js, "ev.>", nt_fan_on, NULL, NULL, &so, NULL),
             "nats subscribe");
    }
    return f;
}

static void nt_fan_close(void *p)
{
    nt_fan *f = p;
    for (size_t j = 0; j < f->n; j++) {
        natsSubscription_Unsubscribe(f->subs[j]);
        natsSubscription_Destroy(f->subs[j]);
    }
    for (int k = 0; k < W12_NATS_CONNS; k++) {
        jsCtx_Destroy(f->conns[k]->js);
        natsConnection_Destroy(f->conns[k]->nc);
        free(f->conns[k]);
    }
    free(f->subs);
    free(f);
}

static const backend nats_backend = {"NATS JetStream", nt_setup,        nt_connect,     nt_disconnect,  nt_append,
                                     nt_version,       nt_read,         nt_ids,         nt_sub_open,    nt_sub_next,
                                     nt_sub_close,     nt_group_create, nt_member_open, nt_member_next, nt_member_ack,
                                     nt_member_close, nt_load, "direct gets by subject, one per message",
                                     nt_fan_open, nt_fan_close, "a JetStream push consumer each on 4 connections, 2 delivery threads"};
#endif

/* ======================= the workloads ====================================== */

#define STREAMS 10000

static void w1(void)
{
    size_t n = quick ? 2000 : 20000;
    void *c = B->connect();
    int64_t *ver = malloc(STREAMS * sizeof *ver);
    for (size_t i = 0; i < STREAMS; i++) ver[i] = NO_STREAM;
    uint64_t *lat = malloc(n * sizeof *lat), seed = now_ns() | 1;
    bev e;
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % STREAMS;
        snprintf(name, sizeof name, "account-%" PRIu64, a);
        make_event(&e, a, i);
        uint64_t t = now_ns();
        int64_t last;
        if (B->append(c, name, ver[a], &e, 1, &last)) die("W1", "unexpected conflict");
        lat[i] = now_ns() - t;
        ver[a] = last;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W1 | %s | %zu single-event appends, random stream of %d | %.0f ev/s | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs |\n",
           B->name, n, STREAMS, n / secs, pct(lat, n, 50), pct(lat, n, 99), pct(lat, n, 99.9));
    result("W1", "ev_per_s", n / secs);
    result("W1", "p50_us", pct(lat, n, 50));
    result("W1", "p99_us", pct(lat, n, 99));
    latencies("W1", lat, n);
    fflush(stdout);
    free(lat);
    free(ver);
    B->disconnect(c);
}

static void w2(void)
{
    size_t appends = quick ? 200 : 2000, per = 100;
    void *c = B->connect();
    int64_t *ver = malloc(STREAMS * sizeof *ver);
    for (size_t i = 0; i < STREAMS; i++) ver[i] = NO_STREAM;
    bev *e = malloc(per * sizeof *e);
    uint64_t *lat = malloc(appends * sizeof *lat), seed = now_ns() | 1;
    char name[32];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < appends; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        uint64_t a = seed % STREAMS;
        snprintf(name, sizeof name, "batch-%" PRIu64, a);
        for (size_t k = 0; k < per; k++) make_event(&e[k], a, i * per + k);
        uint64_t t = now_ns();
        int64_t last;
        if (B->append(c, name, ver[a], e, per, &last)) die("W2", "unexpected conflict");
        lat[i] = now_ns() - t;
        ver[a] = last;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, appends, sizeof *lat, cmp_u64);
    printf("| W2 | %s | %zu appends of %zu events | %.0f ev/s | per append p50 %.0f µs |\n", B->name, appends, per,
           appends * per / secs, pct(lat, appends, 50));
    result("W2", "ev_per_s", appends * per / secs);
    fflush(stdout);
    free(lat);
    free(e);
    free(ver);
    B->disconnect(c);
}

typedef struct w3arg {
    int t, clients;
    size_t n;
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    void *c = B->connect();
    int64_t ver[100];
    for (int i = 0; i < 100; i++) ver[i] = NO_STREAM;
    bev e;
    char name[48];
    for (size_t i = 0; i < a->n; i++) {
        int k = (int)(i % 100);
        snprintf(name, sizeof name, "w3-%d-%d-%d", a->clients, a->t, k);
        make_event(&e, (uint64_t)k, i);
        int64_t last;
        if (B->append(c, name, ver[k], &e, 1, &last)) die("W3", "unexpected conflict");
        ver[k] = last;
    }
    B->disconnect(c);
    return NULL;
}

static void w3(int clients)
{
    size_t total = quick ? 4000 : 40000;
    pthread_t th[256];
    w3arg args[256];
    uint64_t t0 = now_ns();
    for (int i = 0; i < clients; i++) {
        args[i] = (w3arg){i, clients, total / (size_t)clients};
        pthread_create(&th[i], NULL, w3_client, &args[i]);
    }
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t done = total / (size_t)clients * (size_t)clients;
    printf("| W3 | %s | %d clients, %zu single-event appends | %.0f ev/s | |\n", B->name, clients, done, done / secs);
    result(clients == 16 ? "W3" : "W3_256", "ev_per_s", done / secs);
    fflush(stdout);
}

static void w4(void)
{
    void *c = B->connect();
    bev *e = malloc(1000 * sizeof *e);
    int64_t last = NO_STREAM;
    for (int b = 0; b < 10; b++) {
        for (int k = 0; k < 1000; k++) make_event(&e[k], 1, (uint64_t)(b * 1000 + k));
        if (B->append(c, "w4-stream", last, e, 1000, &last)) die("W4", "conflict");
    }
    free(e);
    uint64_t events = 0, bytes = 0, t0 = now_ns();
    for (int pass = 0; pass < 20; pass++) {
        char cursor[64] = "";
        size_t n;
        while ((n = B->read(c, "w4-stream", cursor, 1000, &bytes)) > 0) events += n;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W4 | %s | one 10,000-event stream read forward 20 times, pages of 1,000 | %.0f ev/s | %.0f MB/s |\n",
           B->name, events / secs, bytes / secs / 1e6);
    result("W4", "ev_per_s", events / secs);
    fflush(stdout);
    B->disconnect(c);
}

static void w5(void)
{
    void *c = B->connect();
    size_t target_n = quick ? 100000 : 500000;
    /* Top the log up to target_n events (the earlier workloads count). */
    uint64_t have = 0, bytes = 0;
    char cursor[64] = "";
    size_t n;
    while ((n = B->read(c, NULL, cursor, 10000, &bytes)) > 0) have += n;
    bev *e = malloc(1000 * sizeof *e);
    char name[32];
    for (uint64_t i = have; i < target_n; i += 1000) {
        snprintf(name, sizeof name, "w5-%" PRIu64, i / 1000 % 1000);
        for (int k = 0; k < 1000; k++) make_event(&e[k], i / 1000, i + (uint64_t)k);
        int64_t last;
        B->append(c, name, ANY, e, 1000, &last);
    }
    free(e);
    uint64_t events = 0;
    bytes = 0;
    uint64_t t0 = now_ns();
    for (int pass = 0; pass < 3; pass++) {
        cursor[0] = 0;
        while ((n = B->read(c, NULL, cursor, 1000, &bytes)) > 0) events += n;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| W5 | %s | $all (%" PRIu64 " events) read in order, 3 passes | %.0f ev/s | %.0f MB/s |\n", B->name,
           events / 3, events / secs, bytes / secs / 1e6);
    result("W5", "ev_per_s", events / secs);
    fflush(stdout);
    B->disconnect(c);
}

/* W6: the subscriber matches deliveries to appends by event id. */
static struct {
    size_t n;
    char (*ids)[37];
    uint64_t *start, *got;
    atomic_int ready;
} w6s;

static void *w6_sub(void *p)
{
    (void)p;
    void *s = B->sub_open();
    atomic_store(&w6s.ready, 1);
    size_t received = 0, next = 0;
    char id[37];
    while (received < w6s.n) {
        if (!B->sub_next(s, 5000, id)) break;
        uint64_t t = now_ns();
        /* deliveries come in order: look ahead from the last match */
        for (size_t i = next; i < w6s.n && i < next + 64; i++)
            if (!strcmp(w6s.ids[i], id)) {
                w6s.got[i] = t;
                next = i + 1;
                received++;
                break;
            }
    }
    B->sub_close(s);
    return NULL;
}

static void w6(void)
{
    w6s.n = quick ? 1000 : 10000;
    w6s.ids = calloc(w6s.n, 37);
    w6s.start = calloc(w6s.n, sizeof *w6s.start);
    w6s.got = calloc(w6s.n, sizeof *w6s.got);
    bev *e = malloc(w6s.n * sizeof *e);
    for (size_t i = 0; i < w6s.n; i++) {
        make_event(&e[i], 6, i);
        memcpy(w6s.ids[i], e[i].id, 37);
    }
    atomic_store(&w6s.ready, 0);
    pthread_t th;
    pthread_create(&th, NULL, w6_sub, NULL);
    while (!atomic_load(&w6s.ready)) usleep(1000);
    usleep(100000);
    void *c = B->connect();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (size_t i = 0; i < w6s.n; i++) {
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        w6s.start[i] = now_ns();
        int64_t last;
        B->append(c, "w6-stream", ANY, &e[i], 1, &last);
    }
    pthread_join(th, NULL);
    B->disconnect(c);
    uint64_t *lat = malloc(w6s.n * sizeof *lat);
    size_t k = 0;
    for (size_t i = 0; i < w6s.n; i++)
        if (w6s.got[i]) lat[k++] = w6s.got[i] - w6s.start[i];
    qsort(lat, k, sizeof *lat, cmp_u64);
    printf("| W6 | %s | one $all subscriber, %zu single appends at 1,000/s (%zu delivered) | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs | |\n",
           B->name, w6s.n, k, pct(lat, k, 50), pct(lat, k, 99), pct(lat, k, 99.9));
    result("W6", "p50_us", pct(lat, k, 50));
    result("W6", "p99_us", pct(lat, k, 99));
    latencies("W6", lat, k);
    fflush(stdout);
    free(lat);
    free(e);
    free(w6s.ids);
    free(w6s.start);
    free(w6s.got);
}

/* W7: 4 writers, 2,500 attempts each, on the same 10 streams. */
typedef struct w7ack {
    int stream;
    int64_t version;
    char id[37];
} w7ack;
typedef struct w7arg {
    int t;
    size_t attempts;
    w7ack *acks;
    size_t n, conflicts;
} w7arg;

static void *w7_writer(void *p)
{
    w7arg *a = p;
    void *c = B->connect();
    uint64_t seed = now_ns() ^ (uint64_t)(a->t + 1) * 0x9e3779b97f4a7c15ull;
    char name[32];
    for (size_t i = 0; i < a->attempts; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int k = (int)(seed % 10);
        snprintf(name, sizeof name, "w7-%d", k);
        int64_t cur = B->version(c, name), last;
        bev e;
        make_event(&e, (uint64_t)k, i);
        if (B->append(c, name, cur, &e, 1, &last) == 0) {
            a->acks[a->n] = (w7ack){k, last, ""};
            memcpy(a->acks[a->n].id, e.id, 37);
            a->n++;
        } else {
            a->conflicts++;
        }
    }
    B->disconnect(c);
    return NULL;
}

static void w7(void)
{
    static w7arg args[4];
    pthread_t th[4];
    size_t attempts = quick ? 500 : 2500;
    for (int t = 0; t < 4; t++) {
        args[t] = (w7arg){t, attempts, calloc(attempts, sizeof(w7ack)), 0, 0};
        pthread_create(&th[t], NULL, w7_writer, &args[t]);
    }
    size_t ok = 0, conflicts = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].n;
        conflicts += args[t].conflicts;
    }
    void *c = B->connect();
    int pass = 1;
    size_t stored = 0, cap = 4 * attempts;
    char (*ids)[37] = malloc(cap * 37);
    int64_t *vers = malloc(cap * sizeof *vers);
    for (int k = 0; k < 10; k++) {
        char name[32];
        snprintf(name, sizeof name, "w7-%d", k);
        size_t n = B->ids(c, name, ids, vers, cap);
        stored += n;
        for (size_t i = 0; i < n; i++) {
            int found = vers[i] == (int64_t)i ? 0 : -1;
            for (int t = 0; t < 4 && found == 0; t++)
                for (size_t j = 0; j < args[t].n; j++)
                    if (args[t].acks[j].stream == k && args[t].acks[j].version == (int64_t)i &&
                        !strcmp(args[t].acks[j].id, ids[i]))
                        found = 1;
            if (found != 1) pass = 0;
        }
    }
    if (stored != ok) pass = 0;
    free(ids);
    free(vers);
    B->disconnect(c);
    printf("| W7 | %s | 4 writers x %zu attempts on 10 streams | %zu successes, %zu conflicts | %s |\n", B->name,
           attempts, ok, conflicts, pass ? "PASS" : "FAIL");
    result("W7", "pass", pass);
    fflush(stdout);
    for (int t = 0; t < 4; t++) free(args[t].acks);
    if (!pass) exit(2);
}


/* W8: a consumer group of 10 members; 2 producers append 5 events every
 * millisecond each (10,000 events/s) for 60 s (quick: 5 s); latency from
 * the append call to the member's receipt (the ack follows at once). */
#define W8_MEMBERS 10
#define W8_BATCH 5
static struct {
    size_t n;
    char (*ids)[37];
    uint64_t *start, *lat;
    atomic_size_t received, produced;
    atomic_int stop;
    uint64_t deadline; /* producers that fall behind stop here */
} w8s;

/* Events are found by id: their index is in the id's last 12 hex digits. */
static size_t w8_index(const char *id)
{
    return (size_t)strtoull(id + 24, NULL, 16);
}

static void *w8_member(void *p)
{
    void *m = B->member_open((int)(intptr_t)p);
    char id[37];
    while (!atomic_load(&w8s.stop)) {
        if (!B->member_next(m, 100, id)) continue;
        uint64_t t = now_ns();
        size_t i = w8_index(id);
        if (i < w8s.n && !w8s.lat[i] && !strcmp(w8s.ids[i], id)) {
            w8s.lat[i] = t - w8s.start[i];
            atomic_fetch_add(&w8s.received, 1);
        }
        B->member_ack(m);
    }
    B->member_close(m);
    return NULL;
}

static void *w8_producer(void *p)
{
    size_t me = (size_t)(uintptr_t)p, per = w8s.n / 2;
    void *c = B->connect();
    bev e[W8_BATCH];
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    next.tv_nsec += (long)(me * 500000);
    for (size_t j = 0; j < per; j += W8_BATCH) {
        next.tv_nsec += 1000000;
        while (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        uint64_t t = now_ns();
        if (t > w8s.deadline) break; /* the system cannot take the pace */
        for (size_t b = 0; b < W8_BATCH; b++) {
            size_t i = me * per + j + b;
            make_event(&e[b], 8, i);
            snprintf(e[b].id + 24, 13, "%012zx", i); /* the index, for the members */
            memcpy(w8s.ids[i], e[b].id, 37);
            w8s.start[i] = t;
        }
        int64_t last;
        char name[32];
        snprintf(name, sizeof name, "w8-%zu", me);
        B->append(c, name, ANY, e, W8_BATCH, &last);
        atomic_fetch_add(&w8s.produced, W8_BATCH);
    }
    B->disconnect(c);
    return NULL;
}

static void w8(void)
{
    if (!B->group_create) return;
    int secs = quick ? 5 : 60;
    w8s.n = (size_t)secs * 10000;
    w8s.ids = calloc(w8s.n, 37);
    w8s.start = calloc(w8s.n, sizeof *w8s.start);
    w8s.lat = calloc(w8s.n, sizeof *w8s.lat);
    atomic_store(&w8s.received, 0);
    atomic_store(&w8s.produced, 0);
    atomic_store(&w8s.stop, 0);
    B->group_create();
    pthread_t m[W8_MEMBERS], pr[2];
    for (int i = 0; i < W8_MEMBERS; i++) pthread_create(&m[i], NULL, w8_member, (void *)(intptr_t)i);
    usleep(300000);
    uint64_t t0 = now_ns();
    w8s.deadline = t0 + (uint64_t)secs * 2000000000u; /* twice the planned time */
    for (int i = 0; i < 2; i++) pthread_create(&pr[i], NULL, w8_producer, (void *)(uintptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(pr[i], NULL);
    size_t produced = atomic_load(&w8s.produced);
    double took = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < 500 && atomic_load(&w8s.received) < produced; i++) usleep(10000);
    atomic_store(&w8s.stop, 1);
    for (int i = 0; i < W8_MEMBERS; i++) pthread_join(m[i], NULL);
    uint64_t *lat = malloc(w8s.n * sizeof *lat);
    size_t k = 0, le1 = 0, le2 = 0;
    for (size_t i = 0; i < w8s.n; i++) {
        if (!w8s.lat[i]) continue;
        lat[k++] = w8s.lat[i];
        le1 += w8s.lat[i] <= 1000000;
        le2 += w8s.lat[i] <= 2000000;
    }
    qsort(lat, k, sizeof *lat, cmp_u64);
    /* Shares are of the events produced (an event not delivered counts as
     * late); a system that could not take the pace shows it in "produced". */
    double base = produced ? (double)produced : 1;
    printf("| W8 | %s | group of %d members, 2 producers at 10,000 ev/s for %d s: %zu/%zu produced in %.0f s, %zu delivered | "
           "≤1 ms %.2f%%, ≤2 ms %.2f%% | p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs |\n",
           B->name, W8_MEMBERS, secs, produced, w8s.n, took, k,
           100.0 * le1 / base, 100.0 * le2 / base, pct(lat, k, 50), pct(lat, k, 99), pct(lat, k, 99.9));
    result("W8", "pace_pct", (double)produced / took / 100.0); /* of 10,000 ev/s */
    result("W8", "le2ms_pct", 100.0 * le2 / base);
    result("W8", "p50_us", pct(lat, k, 50));
    result("W8", "p999_us", pct(lat, k, 99.9));
    latencies("W8", lat, k);
    fflush(stdout);
    free(lat);
    free(w8s.ids);
    free(w8s.start);
    free(w8s.lat);
}


/* W11: loading an aggregate. The fill (10 events per stream, one append
 * each) is not timed; then random streams are loaded whole, one call each. */
static void w11(void)
{
    size_t streams = quick ? 500 : 10000, loads = quick ? 2000 : 100000;
    void *c = B->connect();
    bev e[10];
    char name[32];
    for (size_t a = 0; a < streams; a++) {
        snprintf(name, sizeof name, "agg-%zu", a);
        for (size_t k = 0; k < 10; k++) make_event(&e[k], a, a * 10 + k);
        int64_t last;
        if (B->append(c, name, NO_STREAM, e, 10, &last)) die("W11", "unexpected conflict in the fill");
    }
    uint64_t *lat = malloc(loads * sizeof *lat), seed = now_ns() | 1, bytes = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < loads; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        snprintf(name, sizeof name, "agg-%" PRIu64, seed % streams);
        uint64_t t = now_ns();
        size_t n = B->load(c, name, &bytes);
        lat[i] = now_ns() - t;
        if (n != 10) die("W11", "a load did not return the stream's 10 events");
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, loads, sizeof *lat, cmp_u64);
    printf("| W11 | %s | load an aggregate: %zu whole 10-event streams (%s), random of %zu | %.0f calls/s | "
           "p50 %.0f µs, p99 %.0f µs |\n",
           B->name, loads, B->load_how, streams, loads / secs, pct(lat, loads, 50), pct(lat, loads, 99));
    result("W11", "calls_per_s", loads / secs);
    result("W11", "p50_us", pct(lat, loads, 50));
    result("W11", "p99_us", pct(lat, loads, 99));
    latencies("W11", lat, loads);
    fflush(stdout);
    free(lat);
    B->disconnect(c);
}

/* W12: fan-out. The subscribers (B->fan_open: a connection or consumer
 * each, served by W12_THREADS threads) follow $all; one writer appends
 * single events at 1,000/s; every delivery's latency from the start of its
 * append call goes into one histogram. */
static void w12(void)
{
    w12_report r = {.how = B->fan_how};
    r.subs = w12_subs(quick, big);
    r.events = w12_events(quick, big);
    if (!B->fan_open) {
        printf("| %s | %s | %zu subscribers on $all: omitted, %s has no live delivery between connections "
               "(W6 polls) | | |\n",
               w12_name(r.subs), B->name, r.subs, B->name);
        fflush(stdout);
        return;
    }
    if (!strcmp(bench_system, "postgres") && r.subs > 2000) {
        printf("| %s | %s | %zu subscribers on $all: omitted, a backend process per LISTENing connection "
               "(about 1 MiB each, measured with 1,000) is more than this shared machine can spare | | |\n",
               w12_name(r.subs), B->name, r.subs);
        fflush(stdout);
        return;
    }
    w12s.n_events = r.events;
    w12s.ids = calloc(r.events, 37);
    w12s.start = calloc(r.events, sizeof *w12s.start);
    memset(&w12s.lat, 0, sizeof w12s.lat);
    atomic_store(&w12s.delivered, 0);
    bev *e = malloc(r.events * sizeof *e);
    for (size_t i = 0; i < r.events; i++) {
        make_event(&e[i], 12, i);
        snprintf(e[i].id + 24, 13, "%012x", (unsigned)i); /* the index, for the subscribers */
        memcpy(w12s.ids[i], e[i].id, 37);
    }
    int pid = server_pid();
    r.have_server = pid > 0 && proc_usage_get(pid, &r.before) == 0;
    if (!r.have_server) pid = getpid(), proc_usage_get(pid, &r.before);
    void *f = B->fan_open(r.subs);
    usleep(300000);
    proc_usage_get(pid, &r.connected);
    double cpu0 = self_cpu_s();
    uint64_t t_conn = now_ns();
    void *c = B->connect();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < r.events && !w12_late(t0, r.events); i++, r.appended++) {
        pace_ms(&next);
        w12s.start[i] = now_ns();
        int64_t last;
        B->append(c, "w12-stream", ANY, &e[i], 1, &last);
    }
    r.secs = (double)(now_ns() - t0) / 1e9;
    w12_drain(&w12s.delivered, (uint64_t)r.subs * r.appended);
    proc_usage_get(pid, &r.after);
    r.self_cpu_s = self_cpu_s() - cpu0;
    r.wall_s = (double)(now_ns() - t_conn) / 1e9;
    r.delivered = atomic_load(&w12s.delivered);
    B->disconnect(c);
    B->fan_close(f);
    w12_print(w12_name(r.subs), B->name, &w12s.lat, &r);
    free(e);
    free(w12s.ids);
    free(w12s.start);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s postgres|sqlite|redis|nats TARGET [--quick] [--big] [--only W1,...]\n", argv[0]);
        return 2;
    }
    B = NULL;
#ifdef HAVE_LIBPQ
    if (!strcmp(argv[1], "postgres")) B = &pg_backend;
#endif
#ifdef HAVE_SQLITE
    if (!strcmp(argv[1], "sqlite")) B = &sqlite_backend;
#endif
#ifdef HAVE_HIREDIS
    if (!strcmp(argv[1], "redis")) B = &redis_backend;
#endif
#ifdef HAVE_NATS
    if (!strcmp(argv[1], "nats")) B = &nats_backend;
#endif
    if (!B) {
        fprintf(stderr, "%s: not built in (its client library was missing at build time)\n", argv[1]);
        return 2;
    }
    target = argv[2];
    bench_system = argv[1];
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--big")) big = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
    }
    B->setup();
    if (wanted("W1")) w1();
    if (wanted("W2")) w2();
    if (wanted("W3")) {
        w3(16);
        w3(256);
    }
    if (wanted("W4")) w4();
    if (wanted("W5")) w5();
    if (wanted("W6")) w6();
    if (wanted("W7")) w7();
    if (wanted("W11")) w11();
    if (wanted("W12")) {
        raise_nofile();
        w12();
    }
    if (wanted("W8")) w8(); /* last: its queue trigger stays on event_store */
    return 0;
}
