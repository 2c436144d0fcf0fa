/*
 * pg.c - the PostgreSQL target (libpq): one schema per generation of a
 * read model, "rm_<name>_g<generation>", in the database the definition's
 * connection string names. Unqualified table names in the definition
 * resolve there (search_path).
 *
 * The applier's connection runs with synchronous_commit=off: a crash of
 * PostgreSQL may lose the last batches, always with their checkpoint
 * (RM-2), and the applier applies them again from the log. Batches are
 * pipelined (libpq's pipeline mode): the statements of a batch go out
 * without waiting for each answer; a statement's error shows at commit,
 * and the batch is then applied again carefully (RM-3), one statement at a
 * time.
 *
 * Queries run in a READ ONLY transaction with a statement_timeout, through
 * a cursor so that no more rows than the limit are fetched.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "rm/rm.h"

#define PIPE_CHUNK 256 /* queued statements between syncs (the socket must not fill both ways) */

struct rm_conn {
    const rm_def *def;
    PGconn *pg;
    int pipeline_on; /* wanted */
    int in_pipe;     /* libpq is in pipeline mode */
    size_t queued;   /* results to read before the next sync */
    char first_err[512];
    int failed;
    rm_dyn_cache dyn; /* a script's statements (dyn.c), prepared as "factum_d<id>" */
    base_buf dyn_scratch;
    rm_value *dyn_vals;
    size_t dyn_cap;
};

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = 0;
}

static int res_fail(PGresult *r, PGconn *pg, char *err, size_t err_len, const char *what)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    trim(msg);
    return rm_fail(err, err_len, FACTUM_ETARGET, "%s: %s", what, msg);
}

static void schema_name(char *out, size_t n, const char *name, uint64_t gen)
{
    snprintf(out, n, "\"rm_%s_g%" PRIu64 "\"", name, gen);
}

static int exec_ok(PGconn *pg, const char *sql, char *err, size_t err_len, const char *what)
{
    PGresult *r = PQexec(pg, sql);
    int st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : res_fail(r, pg, err, err_len, what);
    PQclear(r);
    return rc;
}

static void pg_close(rm_conn *c)
{
    if (!c) return;
    for (rm_dyn *d = rm_dyn_clear(&c->dyn), *next; d; d = next) {
        next = d->next;
        rm_dyn_free(d);
    }
    base_buf_free(&c->dyn_scratch);
    free(c->dyn_vals);
    if (c->pg) PQfinish(c->pg);
    free(c);
}

static int connect_db(const rm_def *def, PGconn **out, char *err, size_t err_len)
{
    PGconn *pg = PQconnectdb(def->conninfo);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        trim(msg);
        if (pg) PQfinish(pg);
        return rm_fail(err, err_len, FACTUM_ETARGET, "cannot connect to PostgreSQL: %s", msg);
    }
    PQsetNoticeProcessor(pg, NULL, NULL);
    *out = pg;
    return 0;
}

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static int pg_open(const rm_def *def, const char *dir, uint64_t gen, int create, int query, rm_conn **out,
                   char *err, size_t err_len)
{
    (void)dir;
    rm_conn *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->def = def;
    int rc = connect_db(def, &c->pg, err, err_len);
    if (rc) {
        free(c);
        return rc;
    }
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    char schema[160], sql[400];
    schema_name(schema, sizeof schema, def->name, gen);
    if (create && !query) {
        snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
        rc = exec_ok(c->pg, sql, err, err_len, "creating the schema");
    }
    if (!rc) {
        snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
        rc = exec_ok(c->pg, sql, err, err_len, "search_path");
    }
    if (!rc)
        rc = exec_ok(c->pg, query ? "SET default_transaction_read_only = on" : "SET synchronous_commit = off", err,
                     err_len, "settings");
    if (rc) {
        pg_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int pg_initialized(rm_conn *c, char *err, size_t err_len)
{
    PGresult *r = PQexec(c->pg, "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                                "AND tablename = 'factum_checkpoint'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = res_fail(r, c->pg, err, err_len, "reading the schema");
        PQclear(r);
        return rc;
    }
    int n = PQntuples(r);
    PQclear(r);
    return n > 0;
}

static const char factum_tables[] =
    "CREATE TABLE factum_checkpoint(id integer PRIMARY KEY CHECK (id = 1), position bigint NOT NULL, "
    "updated_ms bigint NOT NULL);"
    "INSERT INTO factum_checkpoint VALUES (1, 0, 0);"
    "CREATE TABLE factum_parked(position bigint PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, "
    "type text NOT NULL, event_id text NOT NULL, statement text NOT NULL, error text NOT NULL, "
    "parked_ms bigint NOT NULL);";

static int create_tables(PGconn *pg, const rm_def *def, char *err, size_t err_len)
{
    for (size_t i = 0; i < def->n_schema; i++) {
        char what[64];
        snprintf(what, sizeof what, "schema statement %zu", i + 1);
        int rc = exec_ok(pg, def->schema[i], err, err_len, what);
        if (rc) return rc;
    }
    return exec_ok(pg, factum_tables, err, err_len, "creating factum_checkpoint and factum_parked");
}

static int pg_init(rm_conn *c, char *err, size_t err_len)
{
    int rc = exec_ok(c->pg, "BEGIN", err, err_len, "begin");
    if (!rc) rc = create_tables(c->pg, c->def, err, err_len);
    if (!rc) return exec_ok(c->pg, "COMMIT", err, err_len, "commit");
    exec_ok(c->pg, "ROLLBACK", NULL, 0, "rollback");
    return rc;
}

static int prep(PGconn *pg, const char *name, const char *sql, char *err, size_t err_len, const char *what)
{
    PGresult *r = PQprepare(pg, name, sql, 0, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : res_fail(r, pg, err, err_len, what);
    PQclear(r);
    return rc;
}

static int prepare_all(PGconn *pg, const rm_def *d, int named, char *err, size_t err_len)
{
    for (size_t i = 0; i <= d->n_handlers; i++) {
        const rm_handler *h = i < d->n_handlers ? &d->handlers[i] : d->any;
        for (size_t j = 0; h && j < h->n_stmts; j++) {
            char what[200], name[32];
            snprintf(what, sizeof what, "handler \"%.100s\", statement %zu", h->type, j + 1);
            snprintf(name, sizeof name, "s%zu", h->stmts[j].slot);
            int rc = prep(pg, named ? name : "", h->stmts[j].target_text, err, err_len, what);
            if (rc) return rc;
        }
    }
    return 0;
}

static int pg_prepare(rm_conn *c, char *err, size_t err_len)
{
    int rc = prepare_all(c->pg, c->def, 1, err, err_len);
    if (!rc)
        rc = prep(c->pg, "ckpt", "UPDATE factum_checkpoint SET position = $1, updated_ms = $2 WHERE id = 1", err,
                  err_len, "checkpoint");
    if (!rc)
        rc = prep(c->pg, "park",
                  "INSERT INTO factum_parked VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (position) DO "
                  "UPDATE SET statement = EXCLUDED.statement, error = EXCLUDED.error, parked_ms = EXCLUDED.parked_ms",
                  err, err_len, "parked");
    return rc;
}

/* Read the answers of everything queued up to a sync. */
static int drain(rm_conn *c, char *err, size_t err_len)
{
    if (!c->in_pipe) return 0;
    if (!PQpipelineSync(c->pg)) return res_fail(NULL, c->pg, err, err_len, "sync");
    int dead = 0;
    while (!dead) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            /* The end of one query's results (or of a dead connection). */
            if (PQstatus(c->pg) == CONNECTION_BAD) dead = 1;
            continue;
        }
        int st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_FATAL_ERROR && !c->failed) {
            c->failed = 1;
            snprintf(c->first_err, sizeof c->first_err, "%s", PQresultErrorMessage(r));
            trim(c->first_err);
        }
        if (st == PGRES_FATAL_ERROR && PQstatus(c->pg) == CONNECTION_BAD) dead = 1;
        PQclear(r);
    }
    c->queued = 0;
    if (dead) return rm_fail(err, err_len, FACTUM_ETARGET, "connection lost: %s", PQerrorMessage(c->pg));
    if (c->failed) return rm_fail(err, err_len, FACTUM_ETARGET, "%s", c->first_err);
    return 0;
}

/* Run (or, pipelined, send) a prepared or plain statement. */
static int pg_send(rm_conn *c, const char *prepared, const char *sql, int n, const char *const *vals, char *err,
                size_t err_len, const char *what)
{
    if (c->in_pipe) {
        if (c->failed) return 0; /* the rest is skipped by the server; the error shows at the drain */
        int ok = prepared ? PQsendQueryPrepared(c->pg, prepared, n, vals, NULL, NULL, 0)
                          : PQsendQueryParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0);
        if (!ok) return res_fail(NULL, c->pg, err, err_len, what);
        if (++c->queued >= PIPE_CHUNK) return drain(c, err, err_len);
        return 0;
    }
    PGresult *r = prepared ? PQexecPrepared(c->pg, prepared, n, vals, NULL, NULL, 0)
                  : vals   ? PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0) /* one statement only */
                           : PQexec(c->pg, sql);
    int st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : res_fail(r, c->pg, err, err_len, what);
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        trim(msg);
        rm_fail(err, err_len, rc, "%s", msg);
    }
    PQclear(r);
    return rc;
}

static int pg_begin(rm_conn *c, char *err, size_t err_len)
{
    c->failed = 0;
    c->first_err[0] = 0;
    if (c->pipeline_on && !c->in_pipe) {
        if (!PQenterPipelineMode(c->pg)) return res_fail(NULL, c->pg, err, err_len, "pipeline mode");
        c->in_pipe = 1;
    }
    return pg_send(c, NULL, "BEGIN", 0, NULL, err, err_len, "begin");
}

/* Values as text (PostgreSQL infers their types from the statement). */
static void texts(const rm_value *v, size_t n, const char **out, char (*num)[32])
{
    for (size_t i = 0; i < n; i++) {
        switch (v[i].kind) {
        case RMV_INT:
            snprintf(num[i], 32, "%" PRId64, v[i].i);
            out[i] = num[i];
            break;
        case RMV_REAL:
            snprintf(num[i], 32, "%.17g", v[i].d);
            out[i] = num[i];
            break;
        case RMV_BOOL:
            out[i] = v[i].i ? "true" : "false";
            break;
        case RMV_TEXT:
            out[i] = v[i].s;
            break;
        default:
            out[i] = NULL;
        }
    }
}

static int pg_exec(rm_conn *c, size_t k, const rm_value *v, size_t n, char *err, size_t err_len)
{
    const char *vals[100];
    char num[100][32];
    if (n > 100) return rm_fail(err, err_len, FACTUM_EINVAL, "too many parameters");
    texts(v, n, vals, num);
    char name[32];
    snprintf(name, sizeof name, "s%zu", k);
    return pg_send(c, name, NULL, (int)n, vals, err, err_len, "statement");
}

static int pg_savepoint(rm_conn *c, int op, char *err, size_t err_len)
{
    static const char *const sql[] = {"SAVEPOINT factum_event", "RELEASE SAVEPOINT factum_event",
                                      "ROLLBACK TO SAVEPOINT factum_event"};
    return pg_send(c, NULL, sql[op], 0, NULL, err, err_len, "savepoint");
}

static int pg_set_checkpoint(rm_conn *c, uint64_t position, char *err, size_t err_len)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "%" PRIu64, position);
    snprintf(b, sizeof b, "%" PRId64, base_now_ns() / 1000000);
    const char *vals[2] = {a, b};
    return pg_send(c, "ckpt", NULL, 2, vals, err, err_len, "checkpoint");
}

static int pg_park(rm_conn *c, const rm_evinfo *ev, const char *stmt, const char *error, char *err, size_t err_len)
{
    char pos[32], ver[32], ms[32], id[37];
    snprintf(pos, sizeof pos, "%" PRIu64, ev->position);
    snprintf(ver, sizeof ver, "%" PRIu64, ev->version);
    snprintf(ms, sizeof ms, "%" PRId64, base_now_ns() / 1000000);
    factum_uuid_format(ev->id, id);
    const char *vals[8] = {pos, ev->stream, ver, ev->type, id, stmt, error, ms};
    return pg_send(c, "park", NULL, 8, vals, err, err_len, "parking");
}

static int pg_commit(rm_conn *c, char *err, size_t err_len)
{
    int rc = pg_send(c, NULL, "COMMIT", 0, NULL, err, err_len, "commit");
    if (!rc && c->in_pipe) rc = drain(c, err, err_len);
    return rc;
}

static void pg_rollback(rm_conn *c)
{
    if (c->in_pipe) {
        /* Whatever failed, end the transaction block and leave the
         * pipeline clean. */
        c->failed = 0;
        PQsendQueryParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
        drain(c, NULL, 0);
        PQexitPipelineMode(c->pg);
        c->in_pipe = 0;
        c->failed = 0;
        return;
    }
    PGresult *r = PQexec(c->pg, "ROLLBACK");
    PQclear(r);
}

static void pg_pipeline(rm_conn *c, int on)
{
    c->pipeline_on = on;
    if (!on && c->in_pipe) {
        PQexitPipelineMode(c->pg);
        c->in_pipe = 0;
    }
}

static int pg_get_checkpoint(rm_conn *c, uint64_t *position, char *err, size_t err_len)
{
    PGresult *r = PQexec(c->pg, "SELECT position FROM factum_checkpoint WHERE id = 1");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = res_fail(r, c->pg, err, err_len, "reading the checkpoint");
    else if (PQntuples(r) != 1)
        rc = rm_fail(err, err_len, FACTUM_ETARGET, "the checkpoint row is missing");
    else
        *position = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

static int write_value(base_buf *b, PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return base_buf_append(b, "null", 4);
    const char *v = PQgetvalue(r, row, col);
    size_t n = (size_t)PQgetlength(r, row, col);
    switch (PQftype(r, col)) {
    case 16: /* bool */
        return base_buf_append(b, v[0] == 't' ? "true" : "false", v[0] == 't' ? 4 : 5);
    case 20: case 21: case 23: case 26: /* integers, oid */
        return base_buf_append(b, v, n);
    case 700: case 701: case 1700: /* float4, float8, numeric */
        if (!strcmp(v, "NaN") || strstr(v, "Infinity")) return base_buf_append(b, "null", 4);
        return base_buf_append(b, v, n);
    case 114: case 3802: /* json, jsonb */
        return base_buf_append(b, v, n);
    default:
        return json_write_string(b, v, n);
    }
}

static int pg_query(rm_conn *c, const rm_stmt *q, const char *params, size_t params_len, uint32_t row_limit,
                    uint32_t time_limit_ms, base_buf *out, char *err, size_t err_len)
{
    base_buf scratch = {0}, sql = {0};
    rm_value v[100];
    const char *vals[100];
    char num[100][32];
    PGresult *r = NULL;
    int rc;
    if (q->n_params > 100) return rm_fail(err, err_len, FACTUM_EINVAL, "more than 100 parameters");
    for (size_t i = 0; i < q->n_params; i++) {
        rc = rm_bind_named(&q->params[i], params, params_len, &scratch, &v[i]);
        if (rc == FACTUM_ENOTFOUND) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "parameter :%s is not given", q->params[i].path);
            goto out;
        }
        if (rc) goto out;
    }
    rm_values_fix(v, q->n_params, &scratch);
    texts(v, q->n_params, vals, num);
    char set[64];
    snprintf(set, sizeof set, "SET LOCAL statement_timeout = %" PRIu32, time_limit_ms);
    if ((rc = exec_ok(c->pg, "BEGIN READ ONLY", err, err_len, "begin")) ||
        (rc = exec_ok(c->pg, set, err, err_len, "statement_timeout")))
        goto out;
    /* Trailing semicolons would end the DECLARE early. */
    size_t n = strlen(q->target_text);
    while (n && (q->target_text[n - 1] == ';' || q->target_text[n - 1] == ' ' || q->target_text[n - 1] == '\n'))
        n--;
    if (base_buf_printf(&sql, "DECLARE factum_q NO SCROLL CURSOR FOR %.*s", (int)n, q->target_text)) {
        rc = -ENOMEM;
        goto undo;
    }
    r = PQexecParams(c->pg, (const char *)sql.data, (int)q->n_params, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && (!strcmp(state, "25006") || !strcmp(state, "42601"))) {
            /* read_only_sql_transaction, or a statement a cursor cannot run */
            char msg[300];
            snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
            trim(msg);
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "queries are read-only SELECTs: %s", msg);
        } else {
            rc = res_fail(r, c->pg, err, err_len, "query");
            if (state && !strcmp(state, "57014"))
                rc = rm_fail(err, err_len, FACTUM_ETIMEDOUT, "the query ran over its time limit of %" PRIu32 " ms",
                          time_limit_ms);
            else if (state && state[0] == '4' && state[1] == '2')
                rc = FACTUM_EINVAL; /* syntax or access rule: the query's fault */
        }
        goto undo;
    }
    PQclear(r);
    /* Fetched in chunks, so that the answer's size is checked as it grows
     * (RM_QUERY_MAX_BYTES), not after every row is in memory. */
    uint32_t got = 0;
    int truncated = 0, first = 1;
    uint64_t deadline = base_mono_ns() + (uint64_t)time_limit_ms * 1000000u;
    for (;;) {
        uint32_t want = row_limit + 1 - got;
        if (want > 256) want = 256;
        char fetch[64];
        snprintf(fetch, sizeof fetch, "FETCH %" PRIu32 " FROM factum_q", want);
        r = PQexec(c->pg, fetch);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            rc = res_fail(r, c->pg, err, err_len, "query");
            if (state && !strcmp(state, "57014"))
                rc = rm_fail(err, err_len, FACTUM_ETIMEDOUT, "the query ran over its time limit of %" PRIu32 " ms",
                          time_limit_ms);
            else if (state && (state[0] == '2' || state[0] == '4'))
                rc = FACTUM_EINVAL;
            goto undo;
        }
        int cols = PQnfields(r), nrows = PQntuples(r);
        rc = -ENOMEM;
        if (first) {
            first = 0;
            if (base_buf_append(out, "\"columns\":[", 11)) goto undo;
            for (int i = 0; i < cols; i++) {
                const char *name = PQfname(r, i);
                if ((i && base_buf_append(out, ",", 1)) || json_write_string(out, name, strlen(name))) goto undo;
            }
            if (base_buf_append(out, "],\"rows\":[", 10)) goto undo;
        }
        for (int k = 0; k < nrows; k++) {
            if (got == row_limit) {
                truncated = 1;
                break;
            }
            if (base_buf_append(out, got ? ",[" : "[", got ? 2 : 1)) goto undo;
            for (int i = 0; i < cols; i++)
                if ((i && base_buf_append(out, ",", 1)) || write_value(out, r, k, i)) goto undo;
            if (base_buf_append(out, "]", 1)) goto undo;
            got++;
            if (out->len > RM_QUERY_MAX_BYTES) {
                rc = rm_fail(err, err_len, FACTUM_ETOOBIG,
                          "the answer is over %u MiB: select fewer rows or columns (LIMIT)", RM_QUERY_MAX_BYTES >> 20);
                goto undo;
            }
        }
        PQclear(r);
        r = NULL;
        if (truncated || (uint32_t)nrows < want) break;
        if (base_mono_ns() > deadline) {
            rc = rm_fail(err, err_len, FACTUM_ETIMEDOUT, "the query ran over its time limit of %" PRIu32 " ms",
                      time_limit_ms);
            goto undo;
        }
    }
    rc = base_buf_printf(out, "],\"truncated\":%s", truncated ? "true" : "false") ? -ENOMEM : 0;
undo:
    PQclear(r);
    exec_ok(c->pg, "ROLLBACK", NULL, 0, "rollback");
out:
    base_buf_free(&scratch);
    base_buf_free(&sql);
    return rc;
}

static int pg_drop(const rm_def *def, const char *dir, uint64_t gen, char *err, size_t err_len)
{
    (void)dir;
    PGconn *pg;
    int rc = connect_db(def, &pg, err, err_len);
    if (rc) return rc;
    PQsetNoticeProcessor(pg, quiet, NULL);
    char schema[160], sql[300];
    schema_name(schema, sizeof schema, def->name, gen);
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    rc = exec_ok(pg, sql, err, err_len, "dropping the schema");
    PQfinish(pg);
    return rc;
}

static int pg_check(const rm_def *def, const char *dir, char *err, size_t err_len)
{
    (void)dir;
    PGconn *pg;
    int rc = connect_db(def, &pg, err, err_len);
    if (rc) return rc;
    PQsetNoticeProcessor(pg, quiet, NULL);
    char sql[200];
    snprintf(sql, sizeof sql, "CREATE SCHEMA \"factum_check_%d_%" PRIu64 "\"", (int)getpid(), base_mono_ns());
    char set[260];
    snprintf(set, sizeof set, "SET LOCAL search_path TO %s", sql + strlen("CREATE SCHEMA "));
    if ((rc = exec_ok(pg, "BEGIN", err, err_len, "begin")) || (rc = exec_ok(pg, sql, err, err_len, "scratch schema")) ||
        (rc = exec_ok(pg, set, err, err_len, "search_path")))
        goto out;
    if ((rc = create_tables(pg, def, err, err_len)) || (rc = prepare_all(pg, def, 0, err, err_len)))
        rc = FACTUM_EINVAL; /* the definition's fault: the connection works */
out:
    exec_ok(pg, "ROLLBACK", NULL, 0, "rollback");
    PQfinish(pg);
    return rc;
}

/* ---- dynamic statements (a script's sql(), dyn.c) -------------------- */

static void dyn_drop(rm_conn *c, rm_dyn *d)
{
    if (d->prepared && !c->in_pipe) {
        char sql[64];
        snprintf(sql, sizeof sql, "DEALLOCATE factum_d%" PRIu32, d->id);
        PQclear(PQexec(c->pg, sql));
    }
    rm_dyn_free(d);
}

/* The statement for the text: cached (prepared), or compiled now and
 * prepared unless pipelined or the cache is full of this page's (*tmp:
 * run it by its text, then free it). */
static int dyn_get(rm_conn *c, const char *sql, size_t len, rm_dyn **out, int *tmp, char *err, size_t err_len)
{
    *tmp = 0;
    if ((*out = rm_dyn_find(&c->dyn, sql, len))) return 0;
    rm_dyn *d, *victim = NULL;
    int rc = rm_dyn_new(&c->dyn, sql, len, RM_POSTGRES, &d, err, err_len);
    if (rc) return rc;
    *out = d;
    if (c->in_pipe || rm_dyn_room(&c->dyn, &victim)) {
        *tmp = 1;
        return 0;
    }
    if (victim) dyn_drop(c, victim);
    char name[32];
    snprintf(name, sizeof name, "factum_d%" PRIu32, d->id);
    if ((rc = prep(c->pg, name, d->st.target_text, err, err_len, "sql()"))) {
        rm_dyn_free(d);
        *out = NULL;
        return rc;
    }
    d->prepared = d; /* on the server */
    if (rm_dyn_add(&c->dyn, d)) {
        dyn_drop(c, d);
        *out = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int pg_sql_prepare(rm_conn *c, const char *sql, size_t sql_len, int first, char *err, size_t err_len)
{
    if (first) rm_dyn_page(&c->dyn);
    /* Between batches the connection may still be in pipeline mode, idle:
     * leave it to prepare (the next begin enters it again). */
    if (c->in_pipe && !c->queued && PQexitPipelineMode(c->pg)) c->in_pipe = 0;
    rm_dyn *d;
    int tmp;
    int rc = dyn_get(c, sql, sql_len, &d, &tmp, err, err_len);
    if (!rc && tmp) rm_dyn_free(d);
    return rc;
}

static int pg_sql_exec(rm_conn *c, const char *sql, size_t sql_len, const char *params, size_t params_len,
                       char *err, size_t err_len)
{
    rm_dyn *d;
    int tmp;
    int rc = dyn_get(c, sql, sql_len, &d, &tmp, err, err_len);
    if (rc) return rc;
    const char *vals[100];
    char num[100][32];
    rc = rm_dyn_bind(d, params, params_len, &c->dyn_scratch, &c->dyn_vals, &c->dyn_cap, err, err_len);
    if (!rc && d->st.n_params > 100) rc = FACTUM_EINVAL; /* rm_stmt_compile allows no more */
    if (!rc) {
        texts(c->dyn_vals, d->st.n_params, vals, num);
        char name[32];
        snprintf(name, sizeof name, "factum_d%" PRIu32, d->id);
        rc = tmp ? pg_send(c, NULL, d->st.target_text, (int)d->st.n_params, vals, err, err_len, "sql()")
                 : pg_send(c, name, NULL, (int)d->st.n_params, vals, err, err_len, "sql()");
    }
    if (tmp) rm_dyn_free(d);
    return rc;
}

const rm_target_ops rm_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .initialized = pg_initialized,
    .init = pg_init,
    .prepare = pg_prepare,
    .begin = pg_begin,
    .exec = pg_exec,
    .savepoint = pg_savepoint,
    .set_checkpoint = pg_set_checkpoint,
    .park = pg_park,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .pipeline = pg_pipeline,
    .get_checkpoint = pg_get_checkpoint,
    .query = pg_query,
    .drop = pg_drop,
    .check = pg_check,
    .sql_prepare = pg_sql_prepare,
    .sql_exec = pg_sql_exec,
};
