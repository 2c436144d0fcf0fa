/*
 * sys_postgres.c - PostgreSQL 15 (libpq) for bench/systems.c (the interface: systems.h).
 */
#include "systems.h"

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#include <poll.h>
#endif
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


const backend pg_backend = {"PostgreSQL",   pg_setup,        pg_connect,     pg_disconnect,  pg_append,
                                   pg_version,     pg_read,         pg_ids,         pg_sub_open,    pg_sub_next,
                                   pg_sub_close,   pg_group_create, pg_member_open, pg_member_next, pg_member_ack,
                                   pg_member_close, pg_load, "a prepared SELECT ... WHERE stream_id = $1 ORDER BY version",
                                   pg_fan_open, pg_fan_close, "a connection each, LISTEN/NOTIFY, served by 2 epoll threads"};
#endif
