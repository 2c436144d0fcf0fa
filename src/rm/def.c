/*
 * def.c - a read model's definition: the JSON document a user registers
 * (docs/readmodels.md), checked member by member with a message that says
 * what is wrong, and its statements compiled for the target: named
 * parameters (`:data.amount`) become positional placeholders (`?1` for
 * SQLite, `$1` for PostgreSQL) with, for each, where its value comes from.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "rm/rm.h"

#define RM_MAX_DEF_BYTES  (1u << 20)
#define RM_MAX_STATEMENTS 1000
#define RM_MAX_PARAMS     100

int rm_fail(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int rm_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > RM_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- statements ------------------------------------------------------ */

static int ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Length of the parameter name at p (after the colon), 0 if none. */
static size_t param_len(const char *p, const char *e)
{
    if (p >= e || !ident_start(*p)) return 0;
    const char *s = p;
    while (p < e) {
        if (ident_char(*p)) {
            p++;
        } else if (*p == '.' && p + 1 < e && ident_char(p[1])) {
            p++;
        } else if (*p == '[' && p + 1 < e && p[1] >= '0' && p[1] <= '9') {
            const char *q = p + 1;
            while (q < e && *q >= '0' && *q <= '9')
                q++;
            if (q >= e || *q != ']') break;
            p = q + 1;
        } else {
            break;
        }
    }
    return (size_t)(p - s);
}

int rm_first_keyword(const char *sql, char *out, size_t n)
{
    const char *p = sql;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '(')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            break;
        }
    }
    size_t k = 0;
    while (k + 1 < n && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
        char c = *p++;
        out[k++] = (char)(c >= 'a' ? c - 32 : c);
    }
    out[k] = 0;
    return k > 0;
}

/* Statements a definition may hold: data and schema changes and reads;
 * not ATTACH, VACUUM INTO, PRAGMA and the like, which reach files or
 * settings beyond the read model's own tables. */
static int stmt_kind_ok(const char *sql, int schema)
{
    static const char *const handler_ok[] = {"INSERT", "UPDATE", "DELETE", "REPLACE", "WITH", "SELECT", NULL};
    static const char *const schema_ok[] = {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "WITH", NULL};
    char kw[16];
    if (!rm_first_keyword(sql, kw, sizeof kw)) return 0;
    for (const char *const *k = schema ? schema_ok : handler_ok; *k; k++)
        if (!strcmp(kw, *k)) return 1;
    return 0;
}

void rm_stmt_free(rm_stmt *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_params; i++)
        free(st->params[i].path);
    free(st->params);
    free(st->text);
    free(st->target_text);
    memset(st, 0, sizeof *st);
}

int rm_stmt_compile(rm_stmt *st, const char *sql, int target_kind,
                    int (*resolve)(void *ctx, const char *name, size_t len, rm_param *p, char *err,
                                   size_t err_len),
                    void *ctx, char *err, size_t err_len)
{
    memset(st, 0, sizeof *st);
    base_buf out = {0};
    const char *names[RM_MAX_PARAMS];
    size_t name_lens[RM_MAX_PARAMS];
    int rc = -ENOMEM;
    size_t len = strlen(sql);
    const char *p = sql, *e = sql + len;
    if (!(st->text = strdup(sql))) goto fail;
    if (!(st->params = calloc(RM_MAX_PARAMS, sizeof *st->params))) goto fail;
    while (p < e) {
        const char *s = p;
        char c = *p;
        if (c == '\'' || c == '"' || c == '`') {
            /* A string or quoted identifier: doubled quotes stay inside. */
            for (p++; p < e; p++)
                if (*p == c) {
                    if (p + 1 < e && p[1] == c)
                        p++;
                    else
                        break;
                }
            if (p >= e) {
                rc = rm_fail(err, err_len, FACTUM_EINVAL, "unterminated quote in: %.200s", sql);
                goto fail;
            }
            p++;
        } else if (c == '-' && p + 1 < e && p[1] == '-') {
            while (p < e && *p != '\n')
                p++;
        } else if (c == '/' && p + 1 < e && p[1] == '*') {
            const char *q = strstr(p + 2, "*/");
            p = q ? q + 2 : e;
        } else if (c == '$' && target_kind == RM_POSTGRES && (p == sql || !ident_char(p[-1]))) {
            /* A dollar quote $tag$...$tag$ (PostgreSQL). */
            const char *q = p + 1;
            while (q < e && (ident_start(*q) || (*q >= '0' && *q <= '9')))
                q++;
            if (q < e && *q == '$' && !(p[1] >= '0' && p[1] <= '9')) {
                size_t tl = (size_t)(q - p) + 1;
                const char *end = q + 1;
                while (end + tl <= e && memcmp(end, p, tl))
                    end++;
                if (end + tl > e) {
                    rc = rm_fail(err, err_len, FACTUM_EINVAL, "unterminated dollar quote in: %.200s", sql);
                    goto fail;
                }
                p = end + tl;
            } else {
                p++;
            }
        } else if (c == ':' && p + 1 < e && p[1] == ':') {
            p += 2; /* a cast */
        } else if (c == ':' && param_len(p + 1, e)) {
            size_t nl = param_len(p + 1, e);
            const char *name = p + 1;
            size_t k;
            for (k = 0; k < st->n_params; k++)
                if (name_lens[k] == nl && !memcmp(names[k], name, nl)) break;
            if (k == st->n_params) {
                if (k == RM_MAX_PARAMS) {
                    rc = rm_fail(err, err_len, FACTUM_EINVAL, "more than %d parameters in: %.200s", RM_MAX_PARAMS, sql);
                    goto fail;
                }
                if ((rc = resolve(ctx, name, nl, &st->params[k], err, err_len))) goto fail;
                names[k] = name;
                name_lens[k] = nl;
                st->n_params++;
            }
            if (base_buf_printf(&out, target_kind == RM_POSTGRES ? "$%zu" : "?%zu", k + 1)) {
                rc = -ENOMEM;
                goto fail;
            }
            p += 1 + nl;
            continue;
        } else {
            p++;
        }
        if (base_buf_append(&out, s, (size_t)(p - s))) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if (base_buf_append(&out, "", 1)) {
        rc = -ENOMEM;
        goto fail;
    }
    st->target_text = (char *)out.data;
    return 0;
fail:
    base_buf_free(&out);
    rm_stmt_free(st);
    return rc;
}

static const struct {
    const char *name;
    int src;
} event_params[] = {
    {"stream", RMP_STREAM},     {"category", RMP_CATEGORY},         {"type", RMP_TYPE},
    {"version", RMP_VERSION},   {"position", RMP_POSITION},         {"timestamp", RMP_TIMESTAMP},
    {"timestamp_ms", RMP_TIMESTAMP_MS}, {"event_id", RMP_EVENT_ID}, {"data", RMP_DATA},
    {"metadata", RMP_META},
};

int rm_event_param(void *ctx, const char *name, size_t len, rm_param *p, char *err, size_t err_len)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof event_params / sizeof *event_params; i++) {
        size_t n = strlen(event_params[i].name);
        if (len < n || memcmp(name, event_params[i].name, n)) continue;
        int src = event_params[i].src;
        if (len == n) {
            p->src = src;
            return (p->path = strdup("")) ? 0 : -ENOMEM;
        }
        if ((src == RMP_DATA || src == RMP_META) && (name[n] == '.' || name[n] == '[')) {
            p->src = src;
            size_t off = name[n] == '.' ? n + 1 : n;
            if (!(p->path = malloc(len - off + 1))) return -ENOMEM;
            memcpy(p->path, name + off, len - off);
            p->path[len - off] = 0;
            return 0;
        }
    }
    return rm_fail(err, err_len, FACTUM_EINVAL,
                "unknown parameter :%.*s (an event has :stream, :category, :type, :version, :position, "
                ":timestamp, :timestamp_ms, :event_id, :data, :data.<path>, :metadata, :metadata.<path>)",
                (int)(len > 100 ? 100 : len), name);
}

/* ---- the document ---------------------------------------------------- */

static void handler_free(rm_handler *h)
{
    for (size_t i = 0; i < h->n_stmts; i++)
        rm_stmt_free(&h->stmts[i]);
    free(h->stmts);
    free(h->type);
}

void rm_def_free(rm_def *d)
{
    if (!d) return;
    free(d->conninfo);
    free(d->readers);
    for (size_t i = 0; i < d->n_streams; i++)
        free(d->streams[i]);
    free(d->streams);
    for (size_t i = 0; i < d->n_schema; i++)
        free(d->schema[i]);
    free(d->schema);
    for (size_t i = 0; i < d->n_handlers; i++)
        handler_free(&d->handlers[i]);
    free(d->handlers);
    if (d->any) {
        handler_free(d->any);
        free(d->any);
    }
    free(d->json);
    free(d->script);
    free(d);
}

/* A string or an array of non-empty strings (what = the member's name). */
static int strings(const json_value *v, const char *what, char ***out, size_t *n, int allow_empty, char *err,
                   size_t err_len)
{
    size_t k = v->type == JSON_STRING ? 1 : v->type == JSON_ARRAY ? v->n : 0;
    if (v->type != JSON_STRING && v->type != JSON_ARRAY)
        return rm_fail(err, err_len, FACTUM_EINVAL, "\"%s\" must be a string or an array of strings", what);
    if (!k && !allow_empty) return rm_fail(err, err_len, FACTUM_EINVAL, "\"%s\" is empty", what);
    char **a = calloc(k ? k : 1, sizeof *a);
    if (!a) return -ENOMEM;
    for (size_t i = 0; i < k; i++) {
        const json_value *s = v->type == JSON_STRING ? v : v->items[i];
        if (s->type != JSON_STRING || !s->len || memchr(s->str, 0, s->len)) {
            for (size_t j = 0; j < i; j++)
                free(a[j]);
            free(a);
            return rm_fail(err, err_len, FACTUM_EINVAL, "\"%s\" must hold non-empty strings", what);
        }
        if (!(a[i] = strdup(s->str))) {
            for (size_t j = 0; j < i; j++)
                free(a[j]);
            free(a);
            return -ENOMEM;
        }
    }
    *out = a;
    *n = k;
    return 0;
}

static int handler_cmp(const void *a, const void *b)
{
    return strcmp(((const rm_handler *)a)->type, ((const rm_handler *)b)->type);
}

static int parse_handler(rm_def *d, const char *type, const json_value *v, rm_handler *h, size_t *total,
                         char *err, size_t err_len)
{
    char **sql = NULL;
    size_t n = 0;
    char what[300];
    snprintf(what, sizeof what, "handlers.%.250s", type);
    int rc = strings(v, what, &sql, &n, 0, err, err_len);
    if (rc) return rc;
    if ((*total += n) > RM_MAX_STATEMENTS) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "more than %d statements", RM_MAX_STATEMENTS);
        goto out;
    }
    if (!(h->type = strdup(type)) || !(h->stmts = calloc(n, sizeof *h->stmts))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char e2[400];
        if (!stmt_kind_ok(sql[i], 0)) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL,
                      "handler \"%.100s\", statement %zu: only INSERT, UPDATE, DELETE, REPLACE, WITH and SELECT "
                      "statements may be run for an event",
                      type, i + 1);
            goto out;
        }
        rc = rm_stmt_compile(&h->stmts[i], sql[i], d->target, rm_event_param, NULL, e2, sizeof e2);
        if (rc) {
            if (rc == FACTUM_EINVAL) rm_fail(err, err_len, rc, "handler \"%.100s\", statement %zu: %s", type, i + 1, e2);
            goto out;
        }
        h->n_stmts++;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(sql[i]);
    free(sql);
    return rc;
}

static int parse_target(rm_def *d, const json_value *t, char *err, size_t err_len)
{
    const char *kind = NULL;
    if (!t) return 0;
    if (t->type == JSON_STRING) {
        kind = t->str;
    } else if (t->type == JSON_OBJECT) {
        for (size_t i = 0; i < t->n; i++)
            if (strcmp(t->keys[i], "type") && strcmp(t->keys[i], "connection"))
                return rm_fail(err, err_len, FACTUM_EINVAL, "unknown member \"target.%.100s\"", t->keys[i]);
        const json_value *k = json_get(t, "type");
        if (!k || k->type != JSON_STRING) return rm_fail(err, err_len, FACTUM_EINVAL, "\"target.type\" is missing");
        kind = k->str;
        const json_value *c = json_get(t, "connection");
        if (c) {
            if (c->type != JSON_STRING || memchr(c->str, 0, c->len))
                return rm_fail(err, err_len, FACTUM_EINVAL, "\"target.connection\" must be a string");
            if (!(d->conninfo = strdup(c->str))) return -ENOMEM;
        }
    } else {
        return rm_fail(err, err_len, FACTUM_EINVAL, "\"target\" must be \"sqlite\" or an object");
    }
    if (!strcmp(kind, "sqlite")) {
        d->target = RM_SQLITE;
        if (d->conninfo) return rm_fail(err, err_len, FACTUM_EINVAL, "a sqlite target takes no connection");
    } else if (!strcmp(kind, "postgres") || !strcmp(kind, "postgresql")) {
        d->target = RM_POSTGRES;
        if (!d->conninfo)
            return rm_fail(err, err_len, FACTUM_EINVAL, "a postgres target needs \"connection\" (a libpq connection string)");
    } else {
        return rm_fail(err, err_len, FACTUM_EINVAL, "unknown target \"%.50s\" (sqlite or postgres)", kind);
    }
    return 0;
}

static const char *const known_members[] = {"name",   "target",   "lifecycle", "onError",     "readers",
                                            "streams", "schema", "handlers",  "description", "script", "scriptLimits",
                                            NULL};

int rm_def_parse(const char *json, size_t len, rm_def **out, char *err, size_t err_len)
{
    if (err && err_len) err[0] = 0;
    if (len > RM_MAX_DEF_BYTES) return rm_fail(err, err_len, FACTUM_EINVAL, "the definition is over 1 MiB");
    json_value *v = NULL;
    if (json_parse(json, len, &v)) return rm_fail(err, err_len, FACTUM_EBADJSON, "the definition is not valid JSON");
    int rc;
    rm_def *d = calloc(1, sizeof *d);
    if (!d) {
        json_free(v);
        return -ENOMEM;
    }
    if (v->type != JSON_OBJECT) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "the definition must be a JSON object");
        goto out;
    }
    for (size_t i = 0; i < v->n; i++) {
        int ok = 0;
        for (size_t k = 0; known_members[k]; k++)
            ok |= !strcmp(v->keys[i], known_members[k]);
        if (!ok) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "unknown member \"%.100s\"", v->keys[i]);
            goto out;
        }
    }
    const json_value *x = json_get(v, "name");
    if (!x || x->type != JSON_STRING || !rm_name_ok(x->str)) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"name\" must be 1 to %d letters, digits, '_' or '-'", RM_NAME_MAX);
        goto out;
    }
    strcpy(d->name, x->str);
    if ((rc = parse_target(d, json_get(v, "target"), err, err_len))) goto out;
    if ((x = json_get(v, "lifecycle"))) {
        if (x->type == JSON_STRING && !strcmp(x->str, "async"))
            d->lifecycle = FACTUM_READMODEL_ASYNC;
        else if (x->type == JSON_STRING && !strcmp(x->str, "inline"))
            d->lifecycle = FACTUM_READMODEL_INLINE;
        else {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"lifecycle\" must be \"async\" or \"inline\"");
            goto out;
        }
    }
    if ((x = json_get(v, "onError"))) {
        if (x->type == JSON_STRING && !strcmp(x->str, "stop"))
            d->on_error = RM_STOP;
        else if (x->type == JSON_STRING && !strcmp(x->str, "skip"))
            d->on_error = RM_SKIP;
        else if (x->type == JSON_STRING && !strcmp(x->str, "park"))
            d->on_error = RM_PARK;
        else {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"onError\" must be \"stop\", \"skip\" or \"park\"");
            goto out;
        }
    }
    if ((x = json_get(v, "description")) && x->type != JSON_STRING) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"description\" must be a string");
        goto out;
    }
    {
        base_buf b = {0};
        x = json_get(v, "readers");
        if (x) {
            char **r = NULL;
            size_t n = 0;
            if ((rc = strings(x, "readers", &r, &n, 1, err, err_len))) goto out;
            for (size_t i = 0; i < n; i++)
                free(r[i]);
            free(r);
            if (x->type == JSON_ARRAY)
                rc = json_write_value(&b, x);
            else
                rc = base_buf_append(&b, "[", 1) || json_write_string(&b, x->str, x->len) || base_buf_append(&b, "]", 1)
                         ? -ENOMEM
                         : 0;
        } else {
            rc = base_buf_append(&b, "[\"$all\"]", 8) ? -ENOMEM : 0;
        }
        if (!rc && base_buf_append(&b, "", 1)) rc = -ENOMEM;
        if (rc) {
            base_buf_free(&b);
            goto out;
        }
        d->readers = (char *)b.data;
    }
    if ((x = json_get(v, "streams")) && (rc = strings(x, "streams", &d->streams, &d->n_streams, 1, err, err_len)))
        goto out;
    if (!(x = json_get(v, "schema"))) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"schema\" is missing (the CREATE TABLE statements)");
        goto out;
    }
    if ((rc = strings(x, "schema", &d->schema, &d->n_schema, 0, err, err_len))) goto out;
    for (size_t i = 0; i < d->n_schema; i++)
        if (!stmt_kind_ok(d->schema[i], 1)) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL,
                      "schema statement %zu: only CREATE, ALTER, DROP, INSERT, UPDATE, DELETE and WITH statements "
                      "may create a read model's tables",
                      i + 1);
            goto out;
        }
    /* JavaScript handlers (js.c): checked by running them (rm_js_check). */
    if ((x = json_get(v, "script"))) {
        if (x->type != JSON_STRING || !x->len || memchr(x->str, 0, x->len)) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "\"script\" must be a non-empty string (JavaScript)");
            goto out;
        }
        if (!(d->script = strdup(x->str))) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if ((x = json_get(v, "scriptLimits"))) {
        const json_value *ms = x->type == JSON_OBJECT ? json_get(x, "msPerEvent") : NULL;
        const json_value *heap = x->type == JSON_OBJECT ? json_get(x, "heapMiB") : NULL;
        int64_t a = 0, b = 0;
        int ok = d->script && x->type == JSON_OBJECT && x->n == (size_t)(!!ms + !!heap) &&
                 (!ms || (!json_int64(ms, &a) && a >= 1 && a <= 60000)) &&
                 (!heap || (!json_int64(heap, &b) && b >= 16 && b <= 4096));
        if (!ok) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL,
                      "\"scriptLimits\" must be an object with \"msPerEvent\" (1 to 60000) and/or \"heapMiB\" (16 "
                      "to 4096), beside a \"script\"");
            goto out;
        }
        d->script_ms = (uint32_t)a;
        d->script_heap_mib = (uint32_t)b;
    }
    x = json_get(v, "handlers");
    if (x ? x->type != JSON_OBJECT || (!x->n && !d->script) : !d->script) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL,
                  "\"handlers\" must be an object: event type -> statements (or give a \"script\")");
        goto out;
    }
    if (!x) {
        /* A script alone. */
    } else if (!(d->handlers = calloc(x->n ? x->n : 1, sizeof *d->handlers))) {
        rc = -ENOMEM;
        goto out;
    }
    size_t total = 0;
    for (size_t i = 0; x && i < x->n; i++) {
        const char *type = x->keys[i];
        if (!x->key_lens[i] || strlen(type) != x->key_lens[i] || x->key_lens[i] > FACTUM_MAX_TYPE_LEN) {
            rc = rm_fail(err, err_len, FACTUM_EINVAL, "a handler's event type is empty or too long");
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(x->keys[j], type)) {
                rc = rm_fail(err, err_len, FACTUM_EINVAL, "handler \"%.100s\" is given twice", type);
                goto out;
            }
        if (!strcmp(type, "*")) {
            if (!(d->any = calloc(1, sizeof *d->any))) {
                rc = -ENOMEM;
                goto out;
            }
            if ((rc = parse_handler(d, type, x->items[i], d->any, &total, err, err_len))) goto out;
        } else {
            rm_handler *h = &d->handlers[d->n_handlers++]; /* counted first: freed with the rest on failure */
            if ((rc = parse_handler(d, type, x->items[i], h, &total, err, err_len))) goto out;
        }
    }
    if (d->n_handlers) qsort(d->handlers, d->n_handlers, sizeof *d->handlers, handler_cmp);
    for (size_t i = 0; i <= d->n_handlers; i++) {
        rm_handler *h = i < d->n_handlers ? &d->handlers[i] : d->any;
        for (size_t j = 0; h && j < h->n_stmts; j++)
            h->stmts[j].slot = d->n_stmts++;
    }
    if (!(d->json = malloc(len + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(d->json, json, len);
    d->json[len] = 0;
out:
    json_free(v);
    if (rc) {
        rm_def_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

const rm_handler *rm_def_handler(const rm_def *d, const char *type, size_t type_len)
{
    size_t lo = 0, hi = d->n_handlers;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *t = d->handlers[mid].type;
        int c = strncmp(t, type, type_len);
        if (c == 0 && t[type_len]) c = 1;
        if (c == 0) return &d->handlers[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d->any;
}
