/*
 * rm.h - the read models' internals, shared by the files of src/rm. The
 * layer uses the store only through the public API (factum.h: reads of
 * $all, appends, acknowledgement gates) and base/json.h.
 *
 *   def.c      the definition document: parsing, checking, statements with
 *              their named parameters rewritten for each target
 *   jscan.c    values at JSON paths of an event's data, without a tree
 *   js.c       JavaScript handlers: the script run by the factum-js worker
 *              (src/jshost/jsproc.h) a page at a time, its statements
 *   dyn.c      statements known only when they run (a script's sql()):
 *              the targets' bounded caches of them, their parameters
 *   target.c   the target interface; sqlite.c and pg.c implement it
 *   apply.c    one generation of a read model applied by its own thread:
 *              batches, checkpoints, failure policies, waits, the gate
 *   manager.c  the public calls: definitions in `$readmodels`, lifecycle,
 *              rebuilds, status, queries
 *
 * Design note (invariants; tests cite them as RM-n):
 *  RM-1  A generation's tables live in a namespace of their own (a SQLite
 *        file, a PostgreSQL schema) together with its checkpoint row: the
 *        last position of $all whose events are applied.
 *  RM-2  Every batch is one target transaction: the statements of its
 *        events and the checkpoint update, committed together. After a
 *        crash the applier starts after the committed checkpoint, so each
 *        event's statements take effect exactly once.
 *  RM-3  A failing statement rolls the whole batch back; the batch is then
 *        applied again one event at a time (each under a savepoint), so the
 *        events before the failing one commit, and the failing one is
 *        skipped, parked (a row in factum_parked, in the same transaction)
 *        or stops the read model, with the checkpoint just before it.
 *  RM-4  The applied position a waiter sees only grows, and is never
 *        ahead of what is committed in the target (it is published after
 *        the commit).
 *  RM-5  An inline read model holds a gate (factum_ack_gate) while it runs
 *        and has caught up; it releases the gate after each commit, so an
 *        append is acknowledged after the read model committed it.
 *  RM-6  A rebuild builds generation g+1 in a new namespace from position
 *        0 while g serves queries; when g+1 has caught up, the definition
 *        is stored with generation g+1 and queries move to it at once; g
 *        stops and its namespace is deleted once no query uses it.
 */
#ifndef FACTUM_RM_H
#define FACTUM_RM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "factum.h"
#include "factum_readmodel.h"

#define RM_NAME_MAX 63
#define RM_QUERY_MAX_BYTES (16u << 20) /* a query's answer, at most */
#define RM_STREAM   "$readmodels"
#define RM_TYPE     "$ReadModel"

/* Write a message into err (may be NULL) and return rc: how every file of
 * src/rm reports an error with its reason (def.c). */
int rm_fail(char *err, size_t err_len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- jscan.c --------------------------------------------------------- */

enum { JV_MISSING = 0, JV_NULL, JV_FALSE, JV_TRUE, JV_NUMBER, JV_STRING, JV_OBJECT, JV_ARRAY };

/* A JSON value found in a text: its kind and its bytes (a string's
 * without the quotes, still escaped). */
typedef struct jscan_val {
    int kind;
    const char *p;
    size_t len;
} jscan_val;

/* The value at `path` ("a.b[2].c"; "" is the whole text) of the JSON text.
 * JV_MISSING if absent or if the text is not JSON where it is walked.
 * Never reads past len; nesting deeper than 128 is "missing". */
jscan_val jscan_path(const char *json, size_t len, const char *path, size_t path_len);
/* Decode a JV_STRING's escapes into b (appended with a NUL, which b->len
 * counts, so that values appended one after another stay terminated).
 * 0, FACTUM_EBADJSON, -ENOMEM. */
int jscan_unescape(base_buf *b, const char *p, size_t len);

/* ---- def.c ----------------------------------------------------------- */

enum rm_target_kind { RM_SQLITE = 0, RM_POSTGRES = 1 };
enum rm_on_error { RM_STOP = 0, RM_SKIP = 1, RM_PARK = 2 };

/* Where a parameter's value comes from. */
enum rm_src {
    RMP_STREAM,
    RMP_CATEGORY,
    RMP_TYPE,
    RMP_VERSION,
    RMP_POSITION,
    RMP_TIMESTAMP,
    RMP_TIMESTAMP_MS,
    RMP_EVENT_ID,
    RMP_DATA, /* path: "" is the whole document */
    RMP_META,
    RMP_NAMED, /* a query's parameter, by name */
};

typedef struct rm_param {
    int src;    /* enum rm_src */
    char *path; /* RMP_DATA/RMP_META: the path after "data." ("" whole); RMP_NAMED: the name */
} rm_param;

/* A statement: the text as written, and the text for the target with
 * positional placeholders (?N for SQLite, $N for PostgreSQL), param[i]
 * binding placeholder i + 1. */
typedef struct rm_stmt {
    char *text;
    char *target_text;
    rm_param *params;
    size_t n_params;
    size_t slot; /* its index among all statements of the definition (targets prepare by slot) */
} rm_stmt;

/* Rewrite `sql`'s named parameters (:name) into positional ones for the
 * target kind. resolve(ctx, name, len, &param) fills a parameter (returns
 * 0, or FACTUM_EINVAL for an unknown name, with err written). Quoted
 * strings, quoted identifiers, comments, `::` casts and PostgreSQL dollar
 * quotes are left alone. 0, FACTUM_EINVAL (err), -ENOMEM. */
int rm_stmt_compile(rm_stmt *st, const char *sql, int target_kind,
                    int (*resolve)(void *ctx, const char *name, size_t len, rm_param *p, char *err,
                                   size_t err_len),
                    void *ctx, char *err, size_t err_len);
void rm_stmt_free(rm_stmt *st);
/* The first keyword of a statement, upper-cased (comments, spaces and
 * opening parentheses skipped): 1, or 0 if it starts with none. */
int rm_first_keyword(const char *sql, char *out, size_t n);
/* The event parameters (`:data.x`, `:stream`...): the resolver of handlers. */
int rm_event_param(void *ctx, const char *name, size_t len, rm_param *p, char *err, size_t err_len);

typedef struct rm_handler {
    char *type; /* "*" for any */
    rm_stmt *stmts;
    size_t n_stmts;
} rm_handler;

typedef struct rm_def {
    char name[RM_NAME_MAX + 1];
    int target;     /* enum rm_target_kind */
    char *conninfo; /* RM_POSTGRES */
    int lifecycle;  /* enum factum_readmodel_lifecycle */
    int on_error;   /* enum rm_on_error */
    char *readers;  /* JSON array text */
    char **streams; /* prefixes (n_streams 0: every non-system stream) */
    size_t n_streams;
    char **schema;
    size_t n_schema;
    rm_handler *handlers; /* sorted by type (strcmp), "*" excluded */
    size_t n_handlers;
    rm_handler *any; /* the "*" handler or NULL */
    size_t n_stmts;  /* statements of all handlers (slots 0..n_stmts-1) */
    char *script;    /* JavaScript handlers (js.c), or NULL */
    uint32_t script_ms, script_heap_mib; /* "scriptLimits" (0: js.c's defaults) */
    char *json;      /* the document as given (validated) */
} rm_def;

/* Parse and check a definition document (not against a target). 0, or
 * FACTUM_EBADJSON / FACTUM_EINVAL with err, -ENOMEM. */
int rm_def_parse(const char *json, size_t len, rm_def **out, char *err, size_t err_len);
void rm_def_free(rm_def *d);
/* The handler for an event type, or NULL. */
const rm_handler *rm_def_handler(const rm_def *d, const char *type, size_t type_len);
/* Is the name valid ([A-Za-z0-9_-], 1..63)? */
int rm_name_ok(const char *name);

/* ---- target.c, sqlite.c, pg.c --------------------------------------- */

/* A value bound to a placeholder. */
enum { RMV_NULL = 0, RMV_INT, RMV_REAL, RMV_TEXT, RMV_BOOL };
typedef struct rm_value {
    int kind;
    int64_t i; /* INT; BOOL 0/1 */
    double d;  /* REAL */
    const char *s; /* TEXT, NUL-terminated (len bytes before the NUL) */
    size_t len;
    size_t off; /* while binding: s is at scratch + off (in_scratch) */
    int in_scratch;
} rm_value;

/* An event's details for factum_parked and error messages. */
typedef struct rm_evinfo {
    uint64_t position, version;
    const char *stream, *type;
    const uint8_t *id;
    int64_t timestamp_ns;
} rm_evinfo;

typedef struct rm_conn rm_conn;

typedef struct rm_target_ops {
    const char *name;
    /* Open a connection to namespace ns of generation gen of def (creating
     * the namespace: the SQLite file, the schema, if create). query: a
     * read-only connection for queries. */
    int (*open)(const rm_def *def, const char *dir, uint64_t gen, int create, int query, rm_conn **out,
                char *err, size_t err_len);
    void (*close)(rm_conn *c);
    /* Does the namespace hold the read model's tables yet? (1/0) And create
     * them: the schema and factum's own tables, in one transaction. */
    int (*initialized)(rm_conn *c, char *err, size_t err_len);
    int (*init)(rm_conn *c, char *err, size_t err_len);
    /* Prepare every statement of the definition on this connection. */
    int (*prepare)(rm_conn *c, char *err, size_t err_len);
    int (*begin)(rm_conn *c, char *err, size_t err_len);
    /* Run statement k (an index over every handler's statements, in order)
     * with its values. In a pipelined batch, errors may show only at
     * commit. */
    int (*exec)(rm_conn *c, size_t k, const rm_value *v, size_t n, char *err, size_t err_len);
    int (*savepoint)(rm_conn *c, int op, char *err, size_t err_len); /* 0 set, 1 release, 2 roll back to */
    int (*set_checkpoint)(rm_conn *c, uint64_t position, char *err, size_t err_len);
    int (*park)(rm_conn *c, const rm_evinfo *ev, const char *stmt, const char *error, char *err, size_t err_len);
    int (*commit)(rm_conn *c, char *err, size_t err_len);
    void (*rollback)(rm_conn *c);
    /* Batches may be pipelined (errors at commit)? Turned off in careful mode. */
    void (*pipeline)(rm_conn *c, int on);
    int (*get_checkpoint)(rm_conn *c, uint64_t *position, char *err, size_t err_len);
    /* A read-only query with named parameters from params (a JSON object,
     * or NULL): the answer's columns, rows and truncated into out (the
     * members, without the braces). */
    int (*query)(rm_conn *c, const rm_stmt *st, const char *params, size_t params_len, uint32_t row_limit,
                 uint32_t time_limit_ms, base_buf *out, char *err, size_t err_len);
    /* Delete the namespace of generation gen (no connection to it open). */
    int (*drop)(const rm_def *def, const char *dir, uint64_t gen, char *err, size_t err_len);
    /* Check the definition against the target without changing anything
     * (the schema and every statement, in a scratch namespace). */
    int (*check)(const rm_def *def, const char *dir, char *err, size_t err_len);
    /* Dynamic statements (a script's sql(), js.c): `sql` (sql_len bytes, no
     * NUL needed) with named parameters from params (a JSON object), through
     * the connection's bounded cache of compiled and prepared statements
     * (dyn.c). sql_prepare readies one before a batch, outside its
     * transaction (first: a new page begins; what a page prepared is not
     * evicted before the next page); sql_exec runs one in the batch
     * (pipelined on PostgreSQL: errors at commit). Errors of the statement:
     * FACTUM_EINVAL (not exactly one statement, a parameter not given, a
     * syntax error) or FACTUM_ETARGET, with err. */
    int (*sql_prepare)(rm_conn *c, const char *sql, size_t sql_len, int first, char *err, size_t err_len);
    int (*sql_exec)(rm_conn *c, const char *sql, size_t sql_len, const char *params, size_t params_len, char *err,
                    size_t err_len);
} rm_target_ops;

extern const rm_target_ops rm_sqlite_ops;
extern const rm_target_ops rm_pg_ops;
const rm_target_ops *rm_target(int kind);

/* The value of parameter p for event ev into *v (scratch holds decoded
 * strings; reset it per event). 0, -ENOMEM. */
int rm_bind_event(const rm_param *p, const factum_event *ev, base_buf *scratch, rm_value *v);
/* A query's named parameter from a JSON object. */
int rm_bind_named(const rm_param *p, const char *json, size_t len, base_buf *scratch, rm_value *v);
/* Texts made while binding live in scratch, which may move as it grows:
 * call after all values of a statement are bound, to point at them. */
void rm_values_fix(rm_value *v, size_t n, const base_buf *scratch);

/* ---- dyn.c ----------------------------------------------------------- */

/* A dynamic statement: its text, compiled (named parameters, RMP_NAMED),
 * and the target's prepared form. */
typedef struct rm_dyn {
    char *text; /* NUL-terminated */
    size_t len;
    uint64_t hash;
    rm_stmt st;
    void *prepared; /* SQLite: the sqlite3_stmt */
    uint32_t id;    /* PostgreSQL: prepared as "factum_d<id>" */
    uint64_t used;  /* the cache's clock when last used */
    struct rm_dyn *next;
} rm_dyn;

#define RM_DYN_MAX 256 /* statements a connection keeps, unless one page needs more */

typedef struct rm_dyn_cache {
    rm_dyn **buckets;
    size_t n_buckets, n;
    uint64_t clock, page; /* entries used at or after `page` belong to the current page */
    uint32_t next_id;
} rm_dyn_cache;

/* The cached statement for the text (its use recorded), or NULL. */
rm_dyn *rm_dyn_find(rm_dyn_cache *c, const char *sql, size_t len);
/* A new page begins (what it uses is kept until the next). */
void rm_dyn_page(rm_dyn_cache *c);
/* Compile the text for target_kind (not cached yet). 0 with *out;
 * FACTUM_EINVAL (err), -ENOMEM. */
int rm_dyn_new(rm_dyn_cache *c, const char *sql, size_t len, int target_kind, rm_dyn **out, char *err,
               size_t err_len);
/* Room for one more: 0 (*victim: an entry taken out to unprepare and free,
 * or NULL), or 1 when the cache is full of the current page's (keep d
 * out of the cache: run it, then free it). */
int rm_dyn_room(rm_dyn_cache *c, rm_dyn **victim);
/* Add d (after rm_dyn_room said 0). -ENOMEM: not added. */
int rm_dyn_add(rm_dyn_cache *c, rm_dyn *d);
void rm_dyn_free(rm_dyn *d);
/* Take every entry out (each to unprepare and free) and free the table. */
rm_dyn *rm_dyn_clear(rm_dyn_cache *c);
/* Bind d's parameters from params into *v (grown as needed; texts in
 * scratch, which is reset). FACTUM_EINVAL (err): a parameter not given. */
int rm_dyn_bind(const rm_dyn *d, const char *params, size_t params_len, base_buf *scratch, rm_value **v,
                size_t *cap, char *err, size_t err_len);

/* ---- js.c ------------------------------------------------------------ */

typedef struct rm_js rm_js;

/* Check a definition's script: it compiles and evaluates to an object of
 * handler functions. 0, or FACTUM_EINVAL with err (the line), or another
 * error (no worker program: err says where it looked). */
int rm_js_check(const rm_def *def, char *err, size_t err_len);
/* A generation's script runner (its worker starts at the first page). */
int rm_js_new(struct factum_readmodels *m, const rm_def *def, rm_js **out);
void rm_js_free(rm_js *js);
/* Run the script over evs[0..n) (those of the types it handles), the
 * worker restarted as needed, and ready their statements in the target
 * (sql_prepare, outside a transaction). The results stay until the next
 * page. The page covers $all up to `to` through `filter`: meanwhile the
 * worker is given the start of the next page (upcast, as the page is:
 * events with skip[i] set, whose upcast failed, are not given to it). 0; 1 when *stop was set meanwhile; or an error with err (the
 * worker cannot start, -ENOMEM). */
int rm_js_page(rm_js *js, const factum_event *evs, const uint8_t *skip, size_t n, uint64_t to,
               const factum_filter *filter, const rm_target_ops *o, rm_conn *c, _Atomic int *stop, char *err,
               size_t err_len);
/* Has event i of the page anything to do (statements or a failure)? */
int rm_js_has(const rm_js *js, size_t i);
/* Run event i's statements (sql_exec). 0, or its error: err says why and
 * *failed is the statement (or what failed in the script). */
int rm_js_apply(rm_js *js, size_t i, const rm_target_ops *o, rm_conn *c, const char **failed, char *err,
                size_t err_len);

/* ---- apply.c, manager.c ---------------------------------------------- */

typedef struct rm_gen rm_gen;
typedef struct rm_model rm_model;
typedef struct factum_readmodels rm_mgr;

/* A generation's namespace: its definition and the idle query connections
 * to it. Reference-counted under its model's mu: held by the model while
 * it is the live or the building generation, by its applier, and by each
 * query running on it. The last reference closes its connections and, if
 * it was retired, deletes the namespace (RM-6). */
typedef struct rm_ns {
    rm_model *model;
    rm_def *def;
    uint64_t gen;
    int refs;
    int retired; /* delete the namespace when the last reference goes */
    _Atomic int ready; /* its tables exist (its applier has started once) */
    rm_conn *idle[4];
    int n_idle;
} rm_ns;

typedef struct rm_waiter rm_waiter;

struct rm_model {
    rm_mgr *m;
    char name[RM_NAME_MAX + 1];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* position or state changed */
    rm_ns *ns;         /* the generation queries read */
    rm_gen *live;      /* its applier (NULL: paused, or not started) */
    rm_ns *build_ns;   /* a rebuild's generation */
    rm_gen *build;
    int paused;
    _Atomic uint64_t position; /* RM-4: applied by the live generation */
    int state;                 /* enum factum_readmodel_state */
    int is_live;               /* caught up since it started */
    char error[512], statement[512], error_stream[256];
    uint64_t error_position, error_version;
    _Atomic uint64_t applied, skipped, parked;
    uint64_t rate_t0_ns, rate_n0; /* events_per_second: the last sample */
    double rate;
    rm_waiter *waiters;        /* asynchronous waits (mu) */
    _Atomic int n_waiting;     /* waiters of either kind: publish locks mu only then */
    rm_model *next;
};

struct factum_readmodels {
    factum_store *s;
    factum_readmodels_options opts;
    char *dir;
    pthread_mutex_t admin_mu; /* one administrative call at a time; held across its append */
    pthread_mutex_t mu;       /* the list of models */
    rm_model *models;
    rm_model *dropped; /* freed at close: a query or a waiter may still hold one */
    int closing;
};

void rm_log(rm_mgr *m, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Start applying generation ns (a reference is taken) in a thread of its
 * own. building: a rebuild, which switches over when caught up. */
int rm_gen_start(rm_model *model, rm_ns *ns, int building, rm_gen **out);
/* Stop the thread and free it (its gate removed, its reference dropped). */
void rm_gen_stop(rm_gen *g);
/* Build generation ns (a scratch namespace of a temporal query) from the
 * start of the log up to position `upto`, in the calling thread, touching
 * nothing of the model (no publishing, no gate, no fault: a failing event
 * is FACTUM_EFAULTED with err). 0 or an error with err. */
int rm_gen_build_upto(rm_model *model, rm_ns *ns, uint64_t upto, char *err, size_t err_len);
/* A rebuild's generation becomes the live one (model->mu held). */
void rm_gen_set_live(rm_gen *g);
/* An inline generation takes its acknowledgement gate at its position (on
 * its own thread: when it has caught up, or when it switches over). */
void rm_gen_hold(rm_gen *g);
/* Its applied position as its thread last published it (any thread; status only). */
uint64_t rm_gen_pos(const rm_gen *g);

/* manager.c, for apply.c */
void rm_ns_unref(rm_ns *ns); /* model->mu held */
/* The live generation moved to p (RM-4): wake the waiters. */
void rm_model_publish(rm_model *model, uint64_t p);
/* The live generation stopped on an error (state FAULTED, waiters woken). */
void rm_model_fault(rm_model *model, const char *error, const char *statement, const factum_event *ev);
/* A rebuild's generation has caught up at position p: switch to it if the
 * moment is right (RM-6). 1 when it switched (g is now the live applier). */
int rm_model_switch(rm_model *model, rm_gen *g, uint64_t p);

#endif
