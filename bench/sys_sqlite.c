/*
 * sys_sqlite.c - SQLite 3, in-process for bench/systems.c (the interface: systems.h).
 */
#include "systems.h"

#ifdef HAVE_SQLITE
#include <sqlite3.h>
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

const backend sqlite_backend = {"SQLite",        sq_setup,        sq_connect,     sq_disconnect,  sq_append,
                                       sq_version,      sq_read,         sq_ids,         sq_sub_open,    sq_sub_next,
                                       sq_sub_close,    sq_group_create, sq_member_open, sq_member_next, sq_member_ack,
                                       sq_member_close, sq_load, "a prepared SELECT ... WHERE stream_id = ?1 ORDER BY version",
                                       NULL, NULL, NULL};
#endif
