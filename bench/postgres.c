/*
 * postgres.c - BENCH.md's write workloads against PostgreSQL, the store most
 * users would otherwise pick: the brief's event_store table plus a global
 * position column, synchronous_commit on, optimistic concurrency by the
 * primary key (stream_id, version). W1 (single-event appends to random
 * streams), W2 (100-event appends, one transaction each) and W3 (16 and 256
 * clients, each on its own connection). The same events as bench/embedded.c.
 *
 * Usage: factum-bench-postgres "host=127.0.0.1 port=5433 dbname=bench" [--quick] [--only W1,W2,W3]
 * (bench/run-postgres.sh starts a private server and runs this.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "factum.h"

static const char *conninfo;
static int quick;
static char only[64];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    return n ? (double)v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)] / 1000.0 : 0;
}

static int wanted(const char *w)
{
    return !only[0] || strstr(only, w) != NULL;
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "postgres: %s", PQerrorMessage(c));
        exit(1);
    }
    PGresult *r = PQprepare(c, "ins",
                            "INSERT INTO event_store (stream_id, version, event_id, event_type, data, metadata) "
                            "VALUES ($1, $2, $3::uuid, $4, $5::jsonb, $6::jsonb)",
                            6, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "prepare: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    return c;
}

static void exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

static void reset(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "postgres: %s", PQerrorMessage(c));
        exit(1);
    }
    exec(c, "SET client_min_messages TO warning");
    exec(c, "DROP TABLE IF EXISTS event_store");
    exec(c, "CREATE TABLE event_store (stream_id VARCHAR(255) NOT NULL, version INTEGER NOT NULL, event_id UUID NOT "
            "NULL, event_type VARCHAR(255) NOT NULL, data JSONB NOT NULL, metadata JSONB, timestamp TIMESTAMPTZ NOT "
            "NULL DEFAULT NOW(), position BIGSERIAL, PRIMARY KEY (stream_id, version))");
    exec(c, "CREATE INDEX ON event_store (position)");
    PQfinish(c);
}

typedef struct ev {
    char stream[32], version[24], id[37], data[256], meta[160];
} ev;

static void make(ev *e, uint64_t account, int64_t version, uint64_t n)
{
    uint8_t u[16];
    char c[37], k[37];
    snprintf(e->stream, sizeof e->stream, "account-%" PRIu64, account);
    snprintf(e->version, sizeof e->version, "%" PRId64, version);
    factum_uuid_v4(u);
    factum_uuid_format(u, e->id);
    factum_uuid_v4(u);
    factum_uuid_format(u, c);
    factum_uuid_v4(u);
    factum_uuid_format(u, k);
    snprintf(e->data, sizeof e->data,
             "{\"accountId\":\"account-%" PRIu64 "\",\"amount\":%" PRIu64 ",\"currency\":\"EUR\",\"reference\":\"INV-%08" PRIu64
             "\",\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\",\"at\":\"2024-03-15T10:22:31.123Z\"}",
             account, 100 + n % 9000, n);
    snprintf(e->meta, sizeof e->meta, "{\"correlationId\":\"%s\",\"causationId\":\"%s\",\"user\":\"alice\"}", c, k);
}

static int insert(PGconn *c, const ev *e)
{
    const char *vals[6] = {e->stream, e->version, e->id, "MoneyDeposited", e->data, e->meta};
    PGresult *r = PQexecPrepared(c, "ins", 6, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "", "23505")) {
        fprintf(stderr, "insert: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    return ok; /* 0: the version was taken (optimistic concurrency) */
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void w1(void)
{
    reset();
    PGconn *c = connect_db();
    size_t n = quick ? 5000 : 100000, streams = 10000;
    int64_t *ver = calloc(streams, sizeof *ver);
    uint64_t *lat = malloc(n * sizeof *lat), seed = now_ns() | 1;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = rnd(&seed) % streams;
        ev e;
        make(&e, a, ver[a], i);
        uint64_t t = now_ns();
        if (!insert(c, &e)) exit(3);
        lat[i] = now_ns() - t;
        ver[a]++;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W1 | PostgreSQL | %zu single-event appends, random stream of %zu | %.0f ev/s | p50 %.0f µs, p99 %.0f µs, "
           "p99.9 %.0f µs |\n",
           n, streams, n / secs, pct(lat, n, 50), pct(lat, n, 99), pct(lat, n, 99.9));
    fflush(stdout);
    free(lat);
    free(ver);
    PQfinish(c);
}

static void w2(void)
{
    reset();
    PGconn *c = connect_db();
    size_t appends = quick ? 500 : 10000, per = 100, streams = 10000;
    /* One statement of 100 rows per append: one round trip, one commit. */
    char *sql = malloc(per * 64 + 256);
    size_t off = (size_t)sprintf(sql, "INSERT INTO event_store (stream_id, version, event_id, event_type, data, metadata) VALUES ");
    for (size_t k = 0; k < per; k++)
        off += (size_t)sprintf(sql + off, "%s($%zu,$%zu,$%zu::uuid,$%zu,$%zu::jsonb,$%zu::jsonb)", k ? "," : "", k * 6 + 1,
                               k * 6 + 2, k * 6 + 3, k * 6 + 4, k * 6 + 5, k * 6 + 6);
    PGresult *pr = PQprepare(c, "ins100", sql, (int)(per * 6), NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
        fprintf(stderr, "prepare: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(pr);
    free(sql);
    int64_t *ver = calloc(streams, sizeof *ver);
    uint64_t *lat = malloc(appends * sizeof *lat), seed = now_ns() | 1;
    ev *evs = malloc(per * sizeof *evs);
    const char **vals = malloc(per * 6 * sizeof *vals);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < appends; i++) {
        uint64_t a = rnd(&seed) % streams;
        for (size_t k = 0; k < per; k++) {
            make(&evs[k], a, ver[a] + (int64_t)k, i * per + k);
            const char *v[6] = {evs[k].stream, evs[k].version, evs[k].id, "MoneyDeposited", evs[k].data, evs[k].meta};
            memcpy(vals + k * 6, v, sizeof v);
        }
        uint64_t t = now_ns();
        PGresult *r = PQexecPrepared(c, "ins100", (int)(per * 6), vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "insert: %s", PQerrorMessage(c));
            exit(1);
        }
        PQclear(r);
        lat[i] = now_ns() - t;
        ver[a] += (int64_t)per;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, appends, sizeof *lat, cmp_u64);
    printf("| W2 | PostgreSQL | %zu appends of %zu events (one 100-row INSERT each) | %.0f ev/s | per append p50 %.0f "
           "µs, p99 %.0f µs |\n",
           appends, per, appends * per / secs, pct(lat, appends, 50), pct(lat, appends, 99));
    fflush(stdout);
    free(vals);
    free(evs);
    free(lat);
    free(ver);
    PQfinish(c);
}

typedef struct w3arg {
    int t, clients;
    size_t n;
    uint64_t *lat;
} w3arg;

static void *w3_client(void *p)
{
    w3arg *a = p;
    PGconn *c = connect_db();
    size_t streams = 10000 / (size_t)a->clients + 1;
    int64_t *ver = calloc(streams, sizeof *ver);
    uint64_t seed = (now_ns() ^ ((uint64_t)a->t * 7919)) | 1;
    for (size_t i = 0; i < a->n; i++) {
        size_t k = rnd(&seed) % streams;
        ev e;
        make(&e, k * (uint64_t)a->clients + (uint64_t)a->t, ver[k], i);
        uint64_t t = now_ns();
        if (!insert(c, &e)) exit(3);
        a->lat[i] = now_ns() - t;
        ver[k]++;
    }
    free(ver);
    PQfinish(c);
    return NULL;
}

static void w3(int clients)
{
    reset();
    size_t total = quick ? 10000 : 200000, per = total / (size_t)clients;
    uint64_t *lat = malloc(total * sizeof *lat);
    pthread_t th[256];
    w3arg args[256];
    uint64_t t0 = now_ns();
    for (int t = 0; t < clients; t++) {
        args[t] = (w3arg){t, clients, per, lat + (size_t)t * per};
        pthread_create(&th[t], NULL, w3_client, &args[t]);
    }
    for (int t = 0; t < clients; t++) pthread_join(th[t], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t n = per * (size_t)clients;
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("| W3 | PostgreSQL | %d clients, %zu single-event appends | %.0f ev/s | p50 %.0f µs, p99 %.0f µs |\n", clients,
           n, n / secs, pct(lat, n, 50), pct(lat, n, 99));
    fflush(stdout);
    free(lat);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONNINFO [--quick] [--only W1,W2,W3]\n", argv[0]);
        return 2;
    }
    conninfo = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
    }
    if (wanted("W1")) w1();
    if (wanted("W2")) w2();
    if (wanted("W3")) {
        w3(16);
        w3(256);
    }
    return 0;
}
