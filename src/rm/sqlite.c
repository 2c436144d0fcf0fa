/*
 * sqlite.c - the SQLite target: one database file per generation of a
 * read model, `<dir>/<name>.g<generation>.sqlite`, in WAL mode so that
 * queries read while the applier writes.
 *
 * synchronous=NORMAL: a commit is not fsynced. The checkpoint row is in
 * every transaction (RM-2), so what a power loss takes from the file is a
 * suffix of batches together with their checkpoint, and the applier
 * applies them again from the log, which is the truth. A process crash
 * loses nothing that committed.
 *
 * Queries run on connections opened read-only, with an authorizer that
 * refuses anything but reading (no ATTACH, no PRAGMA) and a progress
 * handler that ends a statement at its time limit.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "rm/rm.h"

struct rm_conn {
    const rm_def *def;
    sqlite3 *db;
    sqlite3_stmt **st; /* by slot */
    size_t n_st;
    sqlite3_stmt *ckpt, *park, *begin, *commit, *rollback, *sp_set, *sp_release, *sp_rollback;
    uint64_t deadline_ns; /* a query's time limit (0: none) */
    int timed_out;
    rm_dyn_cache dyn; /* a script's statements (dyn.c) */
    base_buf dyn_scratch;
    rm_value *dyn_vals;
    size_t dyn_cap;
};

static int db_fail(rm_conn *c, char *err, size_t err_len, const char *what)
{
    return rm_fail(err, err_len, FACTUM_ETARGET, "%s: %s", what, sqlite3_errmsg(c->db));
}

static void file_path(char *out, size_t n, const char *dir, const char *name, uint64_t gen)
{
    snprintf(out, n, "%s/%s.g%" PRIu64 ".sqlite", dir, name, gen);
}

static int progress(void *ctx)
{
    rm_conn *c = ctx;
    if (c->deadline_ns && base_mono_ns() > c->deadline_ns) {
        c->timed_out = 1;
        return 1;
    }
    return 0;
}

/* Queries may read, and call functions; nothing else. */
static int authorize(void *ctx, int action, const char *a, const char *b, const char *db, const char *trigger)
{
    (void)ctx, (void)a, (void)b, (void)db, (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    default:
        return SQLITE_DENY;
    }
}

static void sq_close(rm_conn *c)
{
    if (!c) return;
    for (rm_dyn *d = rm_dyn_clear(&c->dyn), *next; d; d = next) {
        next = d->next;
        sqlite3_finalize(d->prepared);
        rm_dyn_free(d);
    }
    base_buf_free(&c->dyn_scratch);
    free(c->dyn_vals);
    for (size_t i = 0; i < c->n_st; i++)
        sqlite3_finalize(c->st[i]);
    free(c->st);
    sqlite3_finalize(c->ckpt);
    sqlite3_finalize(c->park);
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    sqlite3_finalize(c->rollback);
    sqlite3_finalize(c->sp_set);
    sqlite3_finalize(c->sp_release);
    sqlite3_finalize(c->sp_rollback);
    sqlite3_close_v2(c->db);
    free(c);
}

static int exec_sql(rm_conn *c, const char *sql, char *err, size_t err_len, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rm_fail(err, err_len, FACTUM_ETARGET, "%s: %s", what, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return FACTUM_ETARGET;
    }
    return 0;
}

static int sq_open_path(const rm_def *def, const char *path, int create, int query, rm_conn **out, char *err,
                        size_t err_len)
{
    rm_conn *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->def = def;
    int flags = SQLITE_OPEN_NOMUTEX | (query ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    if (create && !query) flags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        int rc = rm_fail(err, err_len, FACTUM_ETARGET, "cannot open %s: %s", path,
                      c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sq_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->db, 5000);
    sqlite3_limit(c->db, SQLITE_LIMIT_ATTACHED, 0); /* no other database files, ever */
    int rc = 0;
    if (!query && strcmp(path, ":memory:"))
        rc = exec_sql(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err, err_len, "setting WAL mode");
    if (!rc && query) {
        /* No value of a query's answer over the answer's own limit. */
        sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, RM_QUERY_MAX_BYTES);
        sqlite3_set_authorizer(c->db, authorize, c);
        sqlite3_progress_handler(c->db, 1000, progress, c);
    }
    if (rc) {
        sq_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int sq_open(const rm_def *def, const char *dir, uint64_t gen, int create, int query, rm_conn **out,
                   char *err, size_t err_len)
{
    char path[4096];
    file_path(path, sizeof path, dir, def->name, gen);
    if (!create && access(path, F_OK)) return rm_fail(err, err_len, FACTUM_ETARGET, "%s is missing", path);
    return sq_open_path(def, path, create, query, out, err, err_len);
}

static int sq_initialized(rm_conn *c, char *err, size_t err_len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE name = 'factum_checkpoint'", -1, &st, NULL))
        return db_fail(c, err, err_len, "reading the schema");
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_ROW && r != SQLITE_DONE) return db_fail(c, err, err_len, "reading the schema");
    return r == SQLITE_ROW;
}

static const char factum_tables[] =
    "CREATE TABLE factum_checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), position INTEGER NOT NULL, "
    "updated_ms INTEGER NOT NULL);"
    "INSERT INTO factum_checkpoint VALUES (1, 0, 0);"
    "CREATE TABLE factum_parked(position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, "
    "type TEXT NOT NULL, event_id TEXT NOT NULL, statement TEXT NOT NULL, error TEXT NOT NULL, "
    "parked_ms INTEGER NOT NULL);";

/* The schema and factum's tables (no transaction around: the caller's). */
static int create_tables(rm_conn *c, char *err, size_t err_len)
{
    for (size_t i = 0; i < c->def->n_schema; i++) {
        char what[64];
        snprintf(what, sizeof what, "schema statement %zu", i + 1);
        int rc = exec_sql(c, c->def->schema[i], err, err_len, what);
        if (rc) return rc;
    }
    return exec_sql(c, factum_tables, err, err_len, "creating factum_checkpoint and factum_parked");
}

static int sq_init(rm_conn *c, char *err, size_t err_len)
{
    int rc = exec_sql(c, "BEGIN IMMEDIATE", err, err_len, "begin");
    if (rc) return rc;
    if ((rc = create_tables(c, err, err_len))) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec_sql(c, "COMMIT", err, err_len, "commit");
}

static int prep(rm_conn *c, const char *sql, sqlite3_stmt **out, char *err, size_t err_len, const char *what)
{
    const char *tail = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, &tail) != SQLITE_OK)
        return rm_fail(err, err_len, FACTUM_EINVAL, "%s: %s", what, sqlite3_errmsg(c->db));
    while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
        tail++;
    if (!*out || (tail && *tail)) {
        sqlite3_finalize(*out);
        *out = NULL;
        return rm_fail(err, err_len, FACTUM_EINVAL, "%s: must be exactly one statement", what);
    }
    return 0;
}

static int sq_prepare(rm_conn *c, char *err, size_t err_len)
{
    const rm_def *d = c->def;
    if (!(c->st = calloc(d->n_stmts ? d->n_stmts : 1, sizeof *c->st))) return -ENOMEM;
    c->n_st = d->n_stmts;
    for (size_t i = 0; i <= d->n_handlers; i++) {
        const rm_handler *h = i < d->n_handlers ? &d->handlers[i] : d->any;
        for (size_t j = 0; h && j < h->n_stmts; j++) {
            char what[200];
            snprintf(what, sizeof what, "handler \"%.100s\", statement %zu", h->type, j + 1);
            int rc = prep(c, h->stmts[j].target_text, &c->st[h->stmts[j].slot], err, err_len, what);
            if (rc) return rc;
        }
    }
    int rc = prep(c, "UPDATE factum_checkpoint SET position = ?1, updated_ms = ?2 WHERE id = 1", &c->ckpt, err,
                  err_len, "checkpoint");
    if (!rc)
        rc = prep(c, "INSERT OR REPLACE INTO factum_parked VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &c->park, err,
                  err_len, "parked");
    if (!rc) rc = prep(c, "BEGIN IMMEDIATE", &c->begin, err, err_len, "begin");
    if (!rc) rc = prep(c, "COMMIT", &c->commit, err, err_len, "commit");
    if (!rc) rc = prep(c, "ROLLBACK", &c->rollback, err, err_len, "rollback");
    if (!rc) rc = prep(c, "SAVEPOINT factum_event", &c->sp_set, err, err_len, "savepoint");
    if (!rc) rc = prep(c, "RELEASE factum_event", &c->sp_release, err, err_len, "savepoint");
    if (!rc) rc = prep(c, "ROLLBACK TO factum_event", &c->sp_rollback, err, err_len, "savepoint");
    return rc == FACTUM_EINVAL ? FACTUM_ETARGET : rc;
}

static int run(rm_conn *c, sqlite3_stmt *st, char *err, size_t err_len, const char *what)
{
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    }
    int rc = 0;
    if (r != SQLITE_DONE) rc = db_fail(c, err, err_len, what);
    sqlite3_reset(st);
    return rc;
}

static int sq_begin(rm_conn *c, char *err, size_t err_len)
{
    return run(c, c->begin, err, err_len, "begin");
}

static int bind(sqlite3_stmt *st, const rm_value *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = (int)i + 1, r;
        switch (v[i].kind) {
        case RMV_INT:
        case RMV_BOOL:
            r = sqlite3_bind_int64(st, k, v[i].i);
            break;
        case RMV_REAL:
            r = sqlite3_bind_double(st, k, v[i].d);
            break;
        case RMV_TEXT:
            r = sqlite3_bind_text(st, k, v[i].s, (int)v[i].len, SQLITE_STATIC);
            break;
        default:
            r = sqlite3_bind_null(st, k);
        }
        if (r != SQLITE_OK) return r;
    }
    return SQLITE_OK;
}

static int sq_exec(rm_conn *c, size_t k, const rm_value *v, size_t n, char *err, size_t err_len)
{
    sqlite3_stmt *st = c->st[k];
    if (bind(st, v, n) != SQLITE_OK) return db_fail(c, err, err_len, "binding");
    int rc = run(c, st, err, err_len, "statement");
    sqlite3_clear_bindings(st);
    if (rc) rm_fail(err, err_len, FACTUM_ETARGET, "%s", sqlite3_errmsg(c->db));
    return rc;
}

static int sq_savepoint(rm_conn *c, int op, char *err, size_t err_len)
{
    return run(c, op == 0 ? c->sp_set : op == 1 ? c->sp_release : c->sp_rollback, err, err_len, "savepoint");
}

static int sq_set_checkpoint(rm_conn *c, uint64_t position, char *err, size_t err_len)
{
    sqlite3_bind_int64(c->ckpt, 1, (int64_t)position);
    sqlite3_bind_int64(c->ckpt, 2, base_now_ns() / 1000000);
    return run(c, c->ckpt, err, err_len, "checkpoint");
}

static int sq_park(rm_conn *c, const rm_evinfo *ev, const char *stmt, const char *error, char *err, size_t err_len)
{
    char id[37];
    factum_uuid_format(ev->id, id);
    sqlite3_bind_int64(c->park, 1, (int64_t)ev->position);
    sqlite3_bind_text(c->park, 2, ev->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(c->park, 3, (int64_t)ev->version);
    sqlite3_bind_text(c->park, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->park, 5, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->park, 6, stmt, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->park, 7, error, -1, SQLITE_STATIC);
    sqlite3_bind_int64(c->park, 8, base_now_ns() / 1000000);
    int rc = run(c, c->park, err, err_len, "parking");
    sqlite3_clear_bindings(c->park);
    return rc;
}

static int sq_commit(rm_conn *c, char *err, size_t err_len)
{
    return run(c, c->commit, err, err_len, "commit");
}

static void sq_rollback(rm_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) run(c, c->rollback, NULL, 0, "rollback");
}

static void sq_pipeline(rm_conn *c, int on)
{
    (void)c, (void)on; /* statements run at once: nothing to pipeline */
}

static int sq_get_checkpoint(rm_conn *c, uint64_t *position, char *err, size_t err_len)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT position FROM factum_checkpoint WHERE id = 1", -1, &st, NULL))
        return db_fail(c, err, err_len, "reading the checkpoint");
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *position = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (r != SQLITE_ROW) return rm_fail(err, err_len, FACTUM_ETARGET, "the checkpoint row is missing");
    return 0;
}

static int write_value(base_buf *b, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return base_buf_printf(b, "%lld", (long long)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: {
        double d = sqlite3_column_double(st, i);
        if (!isfinite(d)) return base_buf_append(b, "null", 4);
        return base_buf_printf(b, "%.17g", d);
    }
    case SQLITE_TEXT:
        return json_write_string(b, (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    case SQLITE_BLOB: {
        /* As hexadecimal text. */
        const uint8_t *p = sqlite3_column_blob(st, i);
        int n = sqlite3_column_bytes(st, i);
        if (base_buf_append(b, "\"", 1)) return -ENOMEM;
        for (int k = 0; k < n; k++)
            if (base_buf_printf(b, "%02x", p[k])) return -ENOMEM;
        return base_buf_append(b, "\"", 1);
    }
    default:
        return base_buf_append(b, "null", 4);
    }
}

static int sq_query(rm_conn *c, const rm_stmt *q, const char *params, size_t params_len, uint32_t row_limit,
                    uint32_t time_limit_ms, base_buf *out, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    base_buf scratch = {0};
    rm_value *v = NULL;
    int rc = prep(c, q->target_text, &st, err, err_len, "query");
    if (rc == FACTUM_EINVAL && sqlite3_errcode(c->db) == SQLITE_NOMEM) rc = -ENOMEM;
    if (rc) {
        /* The authorizer refuses writes at prepare time. */
        if (sqlite3_errcode(c->db) == SQLITE_AUTH)
            rm_fail(err, err_len, FACTUM_EINVAL, "queries are read-only: the statement would write or change settings");
        return rc;
    }
    if (!sqlite3_stmt_readonly(st)) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "queries are read-only: the statement would write");
        goto out;
    }
    if (q->n_params && !(v = calloc(q->n_params, sizeof *v))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < q->n_params; i++) {
        rc = rm_bind_named(&q->params[i], params, params_len, &scratch, &v[i]);
        if (rc == FACTUM_ENOTFOUND) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "parameter :%s is not given", q->params[i].path);
            goto out;
        }
        if (rc) goto out;
    }
    rm_values_fix(v, q->n_params, &scratch);
    if (bind(st, v, q->n_params) != SQLITE_OK) {
        rc = db_fail(c, err, err_len, "binding");
        goto out;
    }
    int ncol = sqlite3_column_count(st);
    rc = -ENOMEM;
    if (base_buf_append(out, "\"columns\":[", 11)) goto out;
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        if ((i && base_buf_append(out, ",", 1)) || json_write_string(out, name ? name : "", name ? strlen(name) : 0))
            goto out;
    }
    if (base_buf_append(out, "],\"rows\":[", 10)) goto out;
    c->deadline_ns = base_mono_ns() + (uint64_t)time_limit_ms * 1000000u;
    c->timed_out = 0;
    uint32_t rows = 0;
    int r, truncated = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == row_limit) {
            truncated = 1;
            break;
        }
        if (base_buf_append(out, rows ? ",[" : "[", rows ? 2 : 1)) goto out;
        for (int i = 0; i < ncol; i++)
            if ((i && base_buf_append(out, ",", 1)) || write_value(out, st, i)) goto out;
        if (base_buf_append(out, "]", 1)) goto out;
        rows++;
        if (out->len > RM_QUERY_MAX_BYTES) {
            rc = rm_fail(err, err_len, FACTUM_ETOOBIG, "the answer is over %u MiB: select fewer rows or columns (LIMIT)",
                      RM_QUERY_MAX_BYTES >> 20);
            goto out;
        }
        if (base_mono_ns() > c->deadline_ns) { /* the rows' text too, not only SQLite's steps */
            c->timed_out = 1;
            r = SQLITE_INTERRUPT;
            break;
        }
    }
    c->deadline_ns = 0;
    if (!truncated && r != SQLITE_DONE) {
        if (c->timed_out)
            rc = rm_fail(err, err_len, FACTUM_ETIMEDOUT, "the query ran over its time limit of %" PRIu32 " ms",
                      time_limit_ms);
        else
            rc = db_fail(c, err, err_len, "query");
        goto out;
    }
    rc = base_buf_printf(out, "],\"truncated\":%s", truncated ? "true" : "false") ? -ENOMEM : 0;
out:
    c->deadline_ns = 0;
    sqlite3_finalize(st);
    base_buf_free(&scratch);
    free(v);
    return rc;
}

static int sq_drop(const rm_def *def, const char *dir, uint64_t gen, char *err, size_t err_len)
{
    char path[4096], side[4200];
    file_path(path, sizeof path, dir, def->name, gen);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    if (unlink(path) && errno != ENOENT) return rm_fail(err, err_len, -errno, "deleting %s: %s", path, strerror(errno));
    return 0;
}

static int sq_check(const rm_def *def, const char *dir, char *err, size_t err_len)
{
    (void)dir;
    rm_conn *c = NULL;
    int rc = sq_open_path(def, ":memory:", 1, 0, &c, err, err_len);
    if (rc) return rc;
    rc = create_tables(c, err, err_len);
    if (rc == FACTUM_ETARGET) rc = FACTUM_EINVAL;
    if (!rc) rc = sq_prepare(c, err, err_len);
    if (rc == FACTUM_ETARGET) rc = FACTUM_EINVAL;
    sq_close(c);
    return rc;
}

/* ---- dynamic statements (a script's sql(), dyn.c) -------------------- */

static void dyn_drop(rm_dyn *d)
{
    sqlite3_finalize(d->prepared);
    rm_dyn_free(d);
}

/* The prepared statement for the text: cached, or made now (*tmp: kept out
 * of a full cache; drop it after use). */
static int dyn_get(rm_conn *c, const char *sql, size_t len, rm_dyn **out, int *tmp, char *err, size_t err_len)
{
    *tmp = 0;
    if ((*out = rm_dyn_find(&c->dyn, sql, len))) return 0;
    rm_dyn *d;
    int rc = rm_dyn_new(&c->dyn, sql, len, RM_SQLITE, &d, err, err_len);
    if (rc) return rc;
    if ((rc = prep(c, d->st.target_text, (sqlite3_stmt **)&d->prepared, err, err_len, "sql()"))) {
        if (sqlite3_errcode(c->db) == SQLITE_NOMEM) rc = -ENOMEM;
        rm_dyn_free(d);
        return rc;
    }
    rm_dyn *victim;
    if (rm_dyn_room(&c->dyn, &victim) || rm_dyn_add(&c->dyn, d)) *tmp = 1;
    if (victim) dyn_drop(victim);
    *out = d;
    return 0;
}

static int sq_sql_prepare(rm_conn *c, const char *sql, size_t sql_len, int first, char *err, size_t err_len)
{
    if (first) rm_dyn_page(&c->dyn);
    rm_dyn *d;
    int tmp;
    int rc = dyn_get(c, sql, sql_len, &d, &tmp, err, err_len);
    if (!rc && tmp) dyn_drop(d);
    return rc;
}

static int sq_sql_exec(rm_conn *c, const char *sql, size_t sql_len, const char *params, size_t params_len,
                       char *err, size_t err_len)
{
    rm_dyn *d;
    int tmp;
    int rc = dyn_get(c, sql, sql_len, &d, &tmp, err, err_len);
    if (rc) return rc;
    sqlite3_stmt *st = d->prepared;
    rc = rm_dyn_bind(d, params, params_len, &c->dyn_scratch, &c->dyn_vals, &c->dyn_cap, err, err_len);
    if (!rc && bind(st, c->dyn_vals, d->st.n_params) != SQLITE_OK) rc = db_fail(c, err, err_len, "binding");
    if (!rc && (rc = run(c, st, err, err_len, "statement"))) rm_fail(err, err_len, rc, "%s", sqlite3_errmsg(c->db));
    sqlite3_clear_bindings(st);
    if (tmp) dyn_drop(d);
    return rc;
}

const rm_target_ops rm_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .initialized = sq_initialized,
    .init = sq_init,
    .prepare = sq_prepare,
    .begin = sq_begin,
    .exec = sq_exec,
    .savepoint = sq_savepoint,
    .set_checkpoint = sq_set_checkpoint,
    .park = sq_park,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .pipeline = sq_pipeline,
    .get_checkpoint = sq_get_checkpoint,
    .query = sq_query,
    .drop = sq_drop,
    .check = sq_check,
    .sql_prepare = sq_sql_prepare,
    .sql_exec = sq_sql_exec,
};
