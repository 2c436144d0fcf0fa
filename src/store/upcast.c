/*
 * upcast.c - store-side upcasting: the registry of upcasters (kept as
 * events in stream `$upcasters`), the checks of their documents, and the
 * function that turns a stored event into its upcast form. Readers in every
 * layer call factum_upcast on what they deliver; the stored bytes never
 * change. docs/upcasting.md is the user's manual, docs/adr/0012 the why.
 *
 * Design note (invariants; tests cite them as UPC-n):
 *  UPC-1  The registry is derived from `$upcasters` only: the latest
 *         `$upcaster-set` or `$upcaster-removed` per (eventType,
 *         fromVersion) decides. Every document in the stream was checked
 *         when it was appended (append.c calls upc_check_event); one that
 *         fails the check anyway (written by an older version) is logged
 *         and ignored, so it can never break reads.
 *  UPC-2  The writer bumps store->upc_gen before it publishes a commit
 *         that touched `$upcasters` (writer.c). An upcast compares it with
 *         the generation the registry was built from and rebuilds first if
 *         they differ, so a read that starts after an append of an upcaster
 *         was acknowledged applies it.
 *  UPC-3  Readers hold the registry's read lock only while they look up
 *         and apply (bounded CPU: the limits in factum.h); a rebuild reads
 *         and parses the stream without it and takes the write lock only
 *         to swap the tables. The writer thread never takes either lock.
 *         A reader whose events may run script upcasters (ADR 0016) holds
 *         a reference to the table instead of the lock while the scripts
 *         run, so that a rebuild never waits for a script; the table is
 *         freed by its last reference.
 *  UPC-4  The fast path (no registry, or no upcaster for the event's type)
 *         is one hash lookup and returns the stored event as it is.
 *  UPC-5  An upcast that cannot be done fails with FACTUM_EUPCAST and a
 *         message naming the event; it never returns the stored event as if
 *         it were upcast, and never skips it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/store_int.h"
#include "store/upcast.h"
#include "store/upcast_int.h"
#include "store/upscript.h"

#define UPC_BUCKETS 1024u

static const char *const op_names[] = {"rename", "move", "default", "set", "remove", "type"}; /* by OP_ */

typedef struct upcaster upcaster;
struct upcaster {
    upcaster *next; /* bucket chain */
    char *type;
    size_t type_len;
    uint64_t hash;
    int64_t from, to;
    upc_step *steps;
    size_t n_steps;
    char *doc;
    size_t doc_len;
    uint64_t position;
    char *script; /* a script upcaster's function (then no steps), or NULL */
    size_t script_len;
    char *name;          /* "upcaster T vA->vB", the script's name in messages */
    uint32_t script_idx; /* its index in the table's upc_scripts */
    int type_script;     /* a chain from this type may reach a script upcaster (upc_needs_script) */
};

typedef struct upc_table {
    upcaster **b; /* UPC_BUCKETS chains by hash of the type */
    size_t n;
    upc_scripts sc;   /* the script upcasters, for the workers (upscript.h) */
    _Atomic int refs; /* the registry's, and each reader's running scripts with it (UPC-3) */
} upc_table;

struct upc_reg {
    pthread_rwlock_t rw;     /* UPC-3 */
    pthread_mutex_t load_mu; /* one rebuild at a time */
    pthread_mutex_t pool_mu; /* the pool's creation */
    upc_pool *pool;          /* the script upcasters' workers, once one was needed */
    upc_table *t;            /* the current table (never NULL) */
    _Atomic uint64_t loaded_gen;
    _Atomic size_t count;
    _Atomic size_t n_scripts; /* script upcasters in t */
};

/* ---- documents ---------------------------------------------------------- */

static void path_free(upc_path *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->seg[i]);
    free(p->seg);
    free(p->seg_len);
    free(p->text);
    memset(p, 0, sizeof *p);
}

static void upcaster_free(upcaster *u)
{
    if (!u) return;
    for (size_t i = 0; i < u->n_steps; i++) {
        path_free(&u->steps[i].a);
        path_free(&u->steps[i].b);
        json_free(u->steps[i].value);
        free(u->steps[i].type);
    }
    free(u->steps);
    free(u->type);
    free(u->doc);
    free(u->script);
    free(u->name);
    free(u);
}

static int str_clean(const json_value *v)
{
    return v && v->type == JSON_STRING && v->len == strlen(v->str);
}

static int parse_path(const json_value *v, const char *what, size_t si, upc_path *p, char *err, size_t el)
{
    if (!str_clean(v) || v->len == 0) {
        upc_set_err(err, el, "step %zu: \"%s\" must be a non-empty string", si + 1, what);
        return FACTUM_EINVAL;
    }
    if (v->len > FACTUM_UPCAST_MAX_PATH) {
        upc_set_err(err, el, "step %zu: \"%s\" is longer than %u bytes", si + 1, what,
                    FACTUM_UPCAST_MAX_PATH);
        return FACTUM_EINVAL;
    }
    size_t n = 1;
    for (size_t i = 0; i < v->len; i++)
        n += v->str[i] == '.';
    if (n > FACTUM_UPCAST_MAX_DEPTH) {
        upc_set_err(err, el, "step %zu: \"%s\" has more than %d members", si + 1, what,
                    FACTUM_UPCAST_MAX_DEPTH);
        return FACTUM_EINVAL;
    }
    p->seg = calloc(n, sizeof *p->seg);
    p->seg_len = calloc(n, sizeof *p->seg_len);
    p->text = strdup(v->str);
    if (!p->seg || !p->seg_len || !p->text) return -ENOMEM;
    const char *s = v->str, *end = v->str + v->len;
    while (p->n < n) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        size_t l = (size_t)((dot ? dot : end) - s);
        if (!l) {
            upc_set_err(err, el, "step %zu: \"%s\" has an empty member name", si + 1, what);
            return FACTUM_EINVAL;
        }
        if (!(p->seg[p->n] = strndup(s, l))) return -ENOMEM;
        p->seg_len[p->n++] = l;
        s = dot ? dot + 1 : end;
    }
    return 0;
}

static int check_type_name(const json_value *v, const char *what, char *err, size_t el)
{
    if (!str_clean(v) || v->len == 0 || v->len > FACTUM_MAX_TYPE_LEN) {
        upc_set_err(err, el, "\"%s\" must be a non-empty string of at most %d bytes", what,
                    FACTUM_MAX_TYPE_LEN);
        return FACTUM_EINVAL;
    }
    if (v->str[0] == '$') {
        upc_set_err(err, el, "\"%s\": system event types ($...) cannot be upcast", what);
        return FACTUM_EINVAL;
    }
    return 0;
}

static int version_member(const json_value *doc, const char *key, int64_t *out, char *err, size_t el)
{
    const json_value *v = json_get(doc, key);
    if (!v || json_int64(v, out) || *out < 1 || *out > FACTUM_UPCAST_MAX_VERSION) {
        upc_set_err(err, el, "\"%s\" must be an integer from 1 to %d", key, FACTUM_UPCAST_MAX_VERSION);
        return FACTUM_EINVAL;
    }
    return 0;
}

static int only_members(const json_value *o, const char *const *allowed, const char *where, char *err,
                        size_t el)
{
    for (size_t i = 0; i < o->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(o->keys[i], *a) == 0;
        if (!ok) {
            upc_set_err(err, el, "%s: unknown member \"%.64s\"", where, o->keys[i]);
            return FACTUM_EINVAL;
        }
    }
    return 0;
}

static int parse_step(const json_value *sv, size_t si, upc_step *st, char *err, size_t el)
{
    char where[32];
    snprintf(where, sizeof where, "step %zu", si + 1);
    if (!sv || sv->type != JSON_OBJECT) {
        upc_set_err(err, el, "%s must be an object", where);
        return FACTUM_EINVAL;
    }
    const json_value *op = json_get(sv, "op");
    st->op = -1;
    for (int i = 0; op && str_clean(op) && i < (int)(sizeof op_names / sizeof *op_names); i++)
        if (strcmp(op->str, op_names[i]) == 0) st->op = i;
    if (st->op < 0) {
        upc_set_err(err, el, "%s: \"op\" must be one of rename, move, default, set, remove, type", where);
        return FACTUM_EINVAL;
    }
    static const char *const two[] = {"op", "from", "to", NULL};
    static const char *const val[] = {"op", "path", "value", NULL};
    static const char *const one[] = {"op", "path", NULL};
    static const char *const typ[] = {"op", "to", NULL};
    int rc;
    switch (st->op) {
    case OP_RENAME:
    case OP_MOVE:
        if ((rc = only_members(sv, two, where, err, el))) return rc;
        if ((rc = parse_path(json_get(sv, "from"), "from", si, &st->a, err, el))) return rc;
        if ((rc = parse_path(json_get(sv, "to"), "to", si, &st->b, err, el))) return rc;
        if (st->op == OP_RENAME && st->b.n != 1) {
            upc_set_err(err, el, "%s: rename's \"to\" is a member name (no '.'); use move for another place",
                        where);
            return FACTUM_EINVAL;
        }
        break;
    case OP_DEFAULT:
    case OP_SET: {
        if ((rc = only_members(sv, val, where, err, el))) return rc;
        if ((rc = parse_path(json_get(sv, "path"), "path", si, &st->a, err, el))) return rc;
        const json_value *v = json_get(sv, "value");
        if (!v) {
            upc_set_err(err, el, "%s: \"value\" is missing", where);
            return FACTUM_EINVAL;
        }
        /* Keep the value by re-parsing its text: an independent tree. */
        base_buf b = {0};
        rc = json_write_value(&b, v);
        if (!rc) rc = json_parse((const char *)b.data, b.len, &st->value);
        base_buf_free(&b);
        if (rc) return rc == FACTUM_EBADJSON ? FACTUM_EINVAL : rc;
        break;
    }
    case OP_REMOVE:
        if ((rc = only_members(sv, one, where, err, el))) return rc;
        if ((rc = parse_path(json_get(sv, "path"), "path", si, &st->a, err, el))) return rc;
        break;
    default: { /* OP_TYPE */
        if ((rc = only_members(sv, typ, where, err, el))) return rc;
        const json_value *t = json_get(sv, "to");
        char e2[256] = "";
        if ((rc = check_type_name(t, "to", e2, sizeof e2))) {
            upc_set_err(err, el, "%s: %s", where, e2);
            return rc;
        }
        if (!(st->type = strdup(t->str))) return -ENOMEM;
    }
    }
    return 0;
}

/* Parse and check an upcaster document into a new upcaster. */
static int parse_doc(const char *json, size_t len, upcaster **out, char *err, size_t el)
{
    *out = NULL;
    if (!json && len) return FACTUM_EINVAL;
    if (len > FACTUM_UPCAST_MAX_DOC) {
        upc_set_err(err, el, "the document is longer than %u bytes", FACTUM_UPCAST_MAX_DOC);
        return FACTUM_EINVAL;
    }
    json_value *doc = NULL;
    int rc = json_parse(json ? json : "", len, &doc);
    if (rc) {
        upc_set_err(err, el, "the document is not valid JSON");
        return rc;
    }
    upcaster *u = calloc(1, sizeof *u);
    if (!u) {
        rc = -ENOMEM;
        goto fail;
    }
    if (doc->type != JSON_OBJECT) {
        upc_set_err(err, el, "the document must be a JSON object");
        rc = FACTUM_EINVAL;
        goto fail;
    }
    static const char *const allowed[] = {"eventType", "fromVersion", "toVersion", "steps",
                                          "script",    "description", NULL};
    if ((rc = only_members(doc, allowed, "the document", err, el))) goto fail;
    const json_value *t = json_get(doc, "eventType");
    if ((rc = check_type_name(t, "eventType", err, el))) goto fail;
    if ((rc = version_member(doc, "fromVersion", &u->from, err, el))) goto fail;
    if ((rc = version_member(doc, "toVersion", &u->to, err, el))) goto fail;
    if (u->to <= u->from) {
        upc_set_err(err, el, "\"toVersion\" must be greater than \"fromVersion\"");
        rc = FACTUM_EINVAL;
        goto fail;
    }
    const json_value *d = json_get(doc, "description");
    if (d && d->type != JSON_STRING) {
        upc_set_err(err, el, "\"description\" must be a string");
        rc = FACTUM_EINVAL;
        goto fail;
    }
    const json_value *steps = json_get(doc, "steps"), *script = json_get(doc, "script");
    if (steps && script) {
        upc_set_err(err, el, "an upcaster has \"steps\" or a \"script\", not both");
        rc = FACTUM_EINVAL;
        goto fail;
    }
    if (script) {
        if (!str_clean(script) || !script->len) {
            upc_set_err(err, el, "\"script\" must be a non-empty string (a JavaScript function expression)");
            rc = FACTUM_EINVAL;
            goto fail;
        }
        if (!(u->script = strdup(script->str))) {
            rc = -ENOMEM;
            goto fail;
        }
        u->script_len = script->len;
        steps = NULL;
    } else if (!steps || steps->type != JSON_ARRAY) {
        upc_set_err(err, el, "\"steps\" must be an array (or give a \"script\")");
        rc = FACTUM_EINVAL;
        goto fail;
    }
    if (steps && steps->n > FACTUM_UPCAST_MAX_STEPS) {
        upc_set_err(err, el, "more than %d steps", FACTUM_UPCAST_MAX_STEPS);
        rc = FACTUM_EINVAL;
        goto fail;
    }
    if (steps && steps->n && !(u->steps = calloc(steps->n, sizeof *u->steps))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; steps && i < steps->n; i++) {
        u->n_steps = i + 1;
        if ((rc = parse_step(steps->items[i], i, &u->steps[i], err, el))) goto fail;
    }
    u->type_len = t->len;
    u->hash = base_hash64(t->str, t->len);
    if (asprintf(&u->name, "upcaster %s v%" PRId64 "->v%" PRId64, t->str, u->from, u->to) < 0) {
        u->name = NULL;
        rc = -ENOMEM;
        goto fail;
    }
    if (!(u->type = strdup(t->str)) || !(u->doc = malloc(len + 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(u->doc, json, len);
    u->doc[len] = 0;
    u->doc_len = len;
    json_free(doc);
    *out = u;
    return 0;
fail:
    upcaster_free(u);
    json_free(doc);
    return rc;
}

/* A `$upcaster-removed` document: its type and version. */
static int parse_removal(const void *data, size_t len, char **type, int64_t *from, char *err, size_t el)
{
    json_value *doc = NULL;
    int rc = json_parse(data ? data : "", len, &doc);
    if (rc) {
        upc_set_err(err, el, "the document is not valid JSON");
        return rc;
    }
    static const char *const allowed[] = {"eventType", "fromVersion", NULL};
    rc = FACTUM_EINVAL;
    if (doc->type != JSON_OBJECT)
        upc_set_err(err, el, "the document must be a JSON object");
    else if (!(rc = only_members(doc, allowed, "the document", err, el)) &&
             !(rc = check_type_name(json_get(doc, "eventType"), "eventType", err, el)) &&
             !(rc = version_member(doc, "fromVersion", from, err, el)) && type &&
             !(*type = strdup(json_get(doc, "eventType")->str)))
        rc = -ENOMEM;
    json_free(doc);
    return rc;
}

int upc_check_event(const char *type, const void *data, size_t len, char *err, size_t err_len)
{
    if (type && strcmp(type, FACTUM_UPCASTER_SET_TYPE) == 0) {
        upcaster *u;
        int rc = parse_doc(data, len, &u, err, err_len);
        upcaster_free(u);
        return rc;
    }
    if (type && strcmp(type, FACTUM_UPCASTER_REMOVED_TYPE) == 0) {
        int64_t from;
        return parse_removal(data, len, NULL, &from, err, err_len);
    }
    upc_set_err(err, err_len, "events of %s are %s or %s", FACTUM_UPCASTERS_STREAM, FACTUM_UPCASTER_SET_TYPE,
                FACTUM_UPCASTER_REMOVED_TYPE);
    return FACTUM_EINVAL;
}

int factum_upcaster_check_event(const char *type, const void *data, size_t len, char *err, size_t err_len)
{
    if (err && err_len) err[0] = 0;
    return upc_check_event(type, data, len, err, err_len);
}

int factum_upcaster_check(const char *json, size_t len, char *err, size_t err_len)
{
    if (err && err_len) err[0] = 0;
    upcaster *u;
    int rc = parse_doc(json, len, &u, err, err_len);
    upcaster_free(u);
    return rc;
}

/* ---- the registry ------------------------------------------------------- */

static void table_free(upc_table *t)
{
    free((void *)t->sc.names);
    free((void *)t->sc.texts);
    free((void *)t->sc.lens);
    memset(&t->sc, 0, sizeof t->sc);
    if (!t->b) return;
    for (size_t i = 0; i < UPC_BUCKETS; i++) {
        for (upcaster *u = t->b[i], *nx; u; u = nx) {
            nx = u->next;
            upcaster_free(u);
        }
    }
    free(t->b);
    t->b = NULL;
    t->n = 0;
}

/* A reference to a table less: the last frees it. */
static void table_unref(upc_table *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        table_free(t);
        free(t);
    }
}

static upcaster **table_slot(upc_table *t, const char *type, size_t len, uint64_t hash, int64_t from)
{
    upcaster **pp = &t->b[hash % UPC_BUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && (*pp)->type_len == len && (*pp)->from == from &&
            memcmp((*pp)->type, type, len) == 0)
            break;
    return pp;
}

static const upcaster *table_find(const upc_table *t, const char *type, size_t len, uint64_t hash,
                                  int64_t from)
{
    if (!t->b) return NULL;
    for (const upcaster *u = t->b[hash % UPC_BUCKETS]; u; u = u->next)
        if (u->hash == hash && u->type_len == len && u->from == from && memcmp(u->type, type, len) == 0)
            return u;
    return NULL;
}

static int table_has_type(const upc_table *t, const char *type, size_t len, uint64_t hash)
{
    if (!t->b) return 0;
    for (const upcaster *u = t->b[hash % UPC_BUCKETS]; u; u = u->next)
        if (u->hash == hash && u->type_len == len && memcmp(u->type, type, len) == 0) return 1;
    return 0;
}

/* Number the table's script upcasters and list them for the workers
 * (UPS-2: a new id for every table). 0 or -ENOMEM. */
static int table_index_scripts(upc_table *t)
{
    static _Atomic uint64_t next_id = 1;
    size_t n = 0;
    for (size_t i = 0; t->b && i < UPC_BUCKETS; i++)
        for (const upcaster *u = t->b[i]; u; u = u->next)
            n += u->script != NULL;
    t->sc.id = atomic_fetch_add(&next_id, 1);
    if (!n) return 0;
    /* Which types' chains may reach a script: those with one, and those
     * whose `type` steps lead to such a type (a fixpoint: each pass marks
     * at least one more type, or ends). */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < UPC_BUCKETS; i++)
            for (upcaster *u = t->b[i]; u; u = u->next) {
                if (u->type_script) continue;
                int reach = u->script != NULL;
                for (size_t k = 0; !reach && k < u->n_steps; k++) {
                    const char *to = u->steps[k].type;
                    if (u->steps[k].op != OP_TYPE || !to) continue;
                    size_t tl = strlen(to);
                    uint64_t h = base_hash64(to, tl);
                    for (const upcaster *w = t->b[h % UPC_BUCKETS]; w && !reach; w = w->next)
                        reach =
                            w->type_script && w->hash == h && w->type_len == tl && !memcmp(w->type, to, tl);
                }
                if (!reach) continue;
                for (upcaster *w = t->b[u->hash % UPC_BUCKETS]; w; w = w->next) /* the whole type */
                    if (w->hash == u->hash && w->type_len == u->type_len &&
                        !memcmp(w->type, u->type, u->type_len))
                        w->type_script = 1;
                changed = 1;
            }
    }
    const char **names = malloc(n * sizeof *names), **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    if (!names || !texts || !lens) {
        free(names);
        free(texts);
        free(lens);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < UPC_BUCKETS; i++)
        for (upcaster *u = t->b[i]; u; u = u->next) {
            if (!u->script) continue;
            u->script_idx = (uint32_t)k;
            names[k] = u->name;
            texts[k] = u->script;
            lens[k++] = u->script_len;
        }
    t->sc.n = n;
    t->sc.names = names;
    t->sc.texts = texts;
    t->sc.lens = lens;
    return 0;
}

int upc_reg_new(upc_reg **out)
{
    upc_reg *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    pthread_rwlock_init(&r->rw, NULL);
    pthread_mutex_init(&r->load_mu, NULL);
    pthread_mutex_init(&r->pool_mu, NULL);
    if (!(r->t = calloc(1, sizeof *r->t))) {
        upc_reg_free(r);
        return -ENOMEM;
    }
    atomic_store(&r->t->refs, 1);
    *out = r;
    return 0;
}

void upc_reg_free(upc_reg *r)
{
    if (!r) return;
    upc_pool_free(r->pool);
    table_unref(r->t);
    pthread_rwlock_destroy(&r->rw);
    pthread_mutex_destroy(&r->load_mu);
    pthread_mutex_destroy(&r->pool_mu);
    free(r);
}

/* Apply one event of `$upcasters` to table t (UPC-1). */
static int table_apply(factum_store *s, upc_table *t, const factum_event *ev)
{
    char err[256] = "";
    if (ev->type_len == sizeof FACTUM_UPCASTER_SET_TYPE - 1 &&
        strcmp(ev->type, FACTUM_UPCASTER_SET_TYPE) == 0) {
        upcaster *u;
        int rc = parse_doc((const char *)ev->data, ev->data_len, &u, err, sizeof err);
        if (rc == -ENOMEM) return rc;
        if (rc) {
            store_log(s, FACTUM_LOG_WARN, "%s: ignoring event %" PRIu64 " (position %" PRIu64 "): %s",
                      FACTUM_UPCASTERS_STREAM, ev->version, ev->position, err);
            return 0;
        }
        u->position = ev->position;
        upcaster **pp = table_slot(t, u->type, u->type_len, u->hash, u->from);
        if (*pp) {
            u->next = (*pp)->next;
            upcaster_free(*pp);
            *pp = u;
        } else if (t->n >= FACTUM_UPCASTERS_MAX) {
            store_log(s, FACTUM_LOG_WARN, "%s: ignoring event %" PRIu64 ": more than %d upcasters",
                      FACTUM_UPCASTERS_STREAM, ev->version, FACTUM_UPCASTERS_MAX);
            upcaster_free(u);
        } else {
            *pp = u;
            t->n++;
        }
        return 0;
    }
    if (ev->type_len == sizeof FACTUM_UPCASTER_REMOVED_TYPE - 1 &&
        strcmp(ev->type, FACTUM_UPCASTER_REMOVED_TYPE) == 0) {
        char *type = NULL;
        int64_t from;
        int rc = parse_removal(ev->data, ev->data_len, &type, &from, err, sizeof err);
        if (rc == -ENOMEM) return rc;
        if (rc) {
            store_log(s, FACTUM_LOG_WARN, "%s: ignoring event %" PRIu64 ": %s", FACTUM_UPCASTERS_STREAM,
                      ev->version, err);
            return 0;
        }
        size_t len = strlen(type);
        upcaster **pp = table_slot(t, type, len, base_hash64(type, len), from);
        if (*pp) {
            upcaster *u = *pp;
            *pp = u->next;
            upcaster_free(u);
            t->n--;
        }
        free(type);
        return 0;
    }
    /* `$metadata` of the stream and the like are not upcasters. */
    return 0;
}

/* Rebuild the registry if `$upcasters` changed since it was built (UPC-2). */
static int reg_refresh(factum_store *s)
{
    upc_reg *r = s->upc;
    uint64_t gen = atomic_load(&s->upc_gen);
    if (atomic_load(&r->loaded_gen) == gen) return 0;
    pthread_mutex_lock(&r->load_mu);
    gen = atomic_load(&s->upc_gen);
    int rc = 0;
    if (atomic_load(&r->loaded_gen) != gen) {
        upc_table t = {calloc(UPC_BUCKETS, sizeof(upcaster *)), 0, {0}, 1};
        if (!t.b) rc = -ENOMEM;
        uint64_t from = 0;
        factum_event page[64];
        while (!rc && from != FACTUM_END) {
            size_t n = 0;
            rc = factum_read_stream(s, FACTUM_UPCASTERS_STREAM, from, FACTUM_FORWARD, page, 64, &n, &from);
            if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) { /* never written, deleted: none */
                rc = 0;
                break;
            }
            for (size_t i = 0; !rc && i < n; i++)
                rc = table_apply(s, &t, &page[i]);
            if (!rc && !n) break;
        }
        if (!rc) rc = table_index_scripts(&t);
        upc_table *nt = rc ? NULL : malloc(sizeof *nt);
        if (!rc && !nt) rc = -ENOMEM;
        if (rc) {
            table_free(&t);
        } else {
            *nt = t;
            atomic_store(&nt->refs, 1);
            pthread_rwlock_wrlock(&r->rw);
            upc_table *old = r->t;
            r->t = nt;
            atomic_store(&r->count, nt->n);
            atomic_store(&r->n_scripts, nt->sc.n);
            pthread_rwlock_unlock(&r->rw);
            table_unref(old); /* freed now, or by the last reader running its scripts */
            atomic_store(&r->loaded_gen, gen);
        }
    }
    pthread_mutex_unlock(&r->load_mu);
    return rc;
}

int upc_reg_load(factum_store *s)
{
    return reg_refresh(s);
}

uint64_t upc_generation(factum_store *s)
{
    return atomic_load(&s->upc_gen);
}

int upc_needs_script(factum_store *s, const factum_event *ev)
{
    int rc = reg_refresh(s);
    if (rc) return rc;
    upc_reg *r = s->upc;
    if (!atomic_load_explicit(&r->n_scripts, memory_order_relaxed) || !ev->type || ev->type[0] == '$' ||
        (ev->flags & (FACTUM_EVENT_SEALED | FACTUM_EVENT_SHREDDED)))
        return 0;
    uint64_t h = base_hash64(ev->type, ev->type_len);
    int yes = 0;
    pthread_rwlock_rdlock(&r->rw);
    for (const upcaster *u = r->t->b ? r->t->b[h % UPC_BUCKETS] : NULL; u && !yes; u = u->next)
        yes = u->type_script && u->hash == h && u->type_len == ev->type_len &&
              !memcmp(u->type, ev->type, ev->type_len);
    pthread_rwlock_unlock(&r->rw);
    return yes;
}

int factum_upcasters_each(factum_store *s, int (*cb)(void *ctx, const factum_upcaster_info *u), void *ctx)
{
    if (!s || !cb) return FACTUM_EINVAL;
    int rc = reg_refresh(s);
    if (rc) return rc;
    upc_reg *r = s->upc;
    pthread_rwlock_rdlock(&r->rw);
    /* In order of type, then version: collect and sort. */
    const upcaster **all = r->t->n ? malloc(r->t->n * sizeof *all) : NULL;
    size_t n = 0;
    if (r->t->n && !all) rc = -ENOMEM;
    for (size_t i = 0; !rc && i < UPC_BUCKETS && r->t->b; i++)
        for (const upcaster *u = r->t->b[i]; u; u = u->next)
            all[n++] = u;
    for (size_t i = 1; i < n; i++) { /* insertion sort: at most FACTUM_UPCASTERS_MAX */
        const upcaster *x = all[i];
        size_t j = i;
        for (; j > 0; j--) {
            int c = strcmp(all[j - 1]->type, x->type);
            if (c < 0 || (c == 0 && all[j - 1]->from < x->from)) break;
            all[j] = all[j - 1];
        }
        all[j] = x;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        factum_upcaster_info info = {all[i]->type, all[i]->from,    all[i]->to,
                                     all[i]->doc,  all[i]->doc_len, all[i]->position};
        rc = cb(ctx, &info);
    }
    pthread_rwlock_unlock(&r->rw);
    free(all);
    return rc;
}

static int has_upcaster(factum_store *s, const char *type, int64_t from, int *out)
{
    int rc = reg_refresh(s);
    if (rc) return rc;
    size_t len = strlen(type);
    pthread_rwlock_rdlock(&s->upc->rw);
    *out = table_find(s->upc->t, type, len, base_hash64(type, len), from) != NULL;
    size_t n = s->upc->t->n;
    pthread_rwlock_unlock(&s->upc->rw);
    return *out ? 0 : (n >= FACTUM_UPCASTERS_MAX ? 1 : 0);
}

int factum_upcaster_set(factum_store *s, const char *json, size_t len, char *err, size_t err_len)
{
    if (err && err_len) err[0] = 0;
    if (!s) return FACTUM_EINVAL;
    upcaster *u;
    int rc = parse_doc(json, len, &u, err, err_len);
    if (rc) return rc;
    /* A script is compiled in a worker before it is registered (an append
     * to `$upcasters` by other means is checked as JSON only: ADR 0016). */
    if (u->script) rc = upc_script_check(u->name, u->script, u->script_len, err, err_len);
    int exists = 0;
    if (!rc) rc = has_upcaster(s, u->type, u->from, &exists);
    upcaster_free(u);
    if (rc == 1) {
        upc_set_err(err, err_len, "%d upcasters are registered already", FACTUM_UPCASTERS_MAX);
        return FACTUM_EINVAL;
    }
    if (rc) return rc;
    factum_event_data ev = {
        .type = FACTUM_UPCASTER_SET_TYPE, .flags = FACTUM_EVENT_JSON, .data = json, .data_len = len};
    return factum_append(s, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &ev, 1, NULL);
}

int factum_upcaster_remove(factum_store *s, const char *type, int64_t from_version)
{
    if (!s) return FACTUM_EINVAL;
    if (!type || !*type || strlen(type) > FACTUM_MAX_TYPE_LEN) return FACTUM_EBADTYPE;
    if (from_version < 1 || from_version > FACTUM_UPCAST_MAX_VERSION) return FACTUM_EINVAL;
    int exists = 0;
    int rc = has_upcaster(s, type, from_version, &exists);
    if (rc < 0) return rc;
    if (!exists) return FACTUM_ENOTFOUND;
    base_buf b = {0};
    rc = base_buf_append(&b, "{\"eventType\":", 13);
    if (!rc) rc = json_write_string(&b, type, strlen(type));
    if (!rc) rc = base_buf_printf(&b, ",\"fromVersion\":%" PRId64 "}", from_version);
    if (!rc) {
        factum_event_data ev = {.type = FACTUM_UPCASTER_REMOVED_TYPE,
                                .flags = FACTUM_EVENT_JSON,
                                .data = b.data,
                                .data_len = b.len};
        rc = factum_append(s, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &ev, 1, NULL);
    }
    base_buf_free(&b);
    return rc;
}

/* ---- upcasting a batch ------------------------------------------------------
 *
 * Each event goes through its chain: declarative upcasters are applied at
 * once; at a script upcaster the event waits for a round, in which every
 * waiting event of the batch goes to a worker together (upscript.c). So a
 * page costs one round trip per script in its longest chain, not one per
 * event. The trees of all events of the batch live in b->tree until the
 * batch is written out. */

typedef struct item {
    const factum_event *in;
    json_value *meta, *data; /* in b->tree; meta NULL: none (or meta_text) */
    const char *type;
    size_t type_len;
    int64_t v, v0;     /* the version reached, the stored one */
    const upcaster *u; /* the next upcaster to apply; NULL: the chain is done */
    int hops;
    int meta_text; /* metadata kept as text (no "$schemaVersion" in it) */
    size_t m_open, m_close;
    int upcast; /* it goes through at least one upcaster */
} item;

typedef struct batch {
    const upc_table *t;
    factum_upcast_buf *b;
    item *it;
    size_t n;
    size_t limit; /* events from here on are not done (the first failure) */
    int defer;    /* a script is needed and may not run here: say so (UPC_DEFER), run nothing */
    int deferred;
} batch;

static void item_fail(batch *bt, size_t i)
{
    if (i < bt->limit) bt->limit = i;
}

/* The front of an upcast: the metadata, the version, the first upcaster,
 * the data. 0 (it.upcast says whether there is anything to do),
 * FACTUM_EUPCAST (b->err says why), -ENOMEM. */
static int item_begin(const upc_table *t, item *it, uint64_t hash, factum_upcast_buf *b)
{
    const factum_event *in = it->in;
    int rc = 0;
    /* Metadata without "$schemaVersion" anywhere (the common case: version
     * 1) is not parsed: the member is appended to its text at the end. */
    const char *mt = (const char *)in->metadata;
    size_t ml = in->metadata_len;
    if (ml && !memmem(mt, ml, "$schemaVersion", 14)) {
        if (!json_validate(mt, ml)) {
            size_t o = 0;
            while (o < ml && mt[o] != '{' && mt[o] != '[' && mt[o] != '"')
                o++;
            if (o < ml && mt[o] == '{') {
                it->meta_text = 1;
                it->m_open = o;
                it->m_close = ml;
                while (mt[--it->m_close] != '}') {
                }
            }
        }
    } else if (ml && (rc = upc_parse(&b->tree, mt, ml, &it->meta))) {
        if (rc == -ENOMEM) return rc;
        it->meta = NULL; /* not JSON: replaced */
    }
    if (it->meta && it->meta->type != JSON_OBJECT) it->meta = NULL;
    it->type = in->type;
    it->type_len = in->type_len;
    if (upc_meta_version(it->meta, &it->v)) {
        upc_event_err(b, in, 0, "its metadata's \"$schemaVersion\" is not an integer >= 1");
        return FACTUM_EUPCAST;
    }
    it->v0 = it->v;
    it->u = table_find(t, it->type, it->type_len, hash, it->v);
    if (!it->u) return 0; /* at or past every registered version */
    it->upcast = 1;
    rc = upc_parse(&b->tree, (const char *)in->data, in->data_len, &it->data);
    if (rc == -ENOMEM) return rc;
    if (rc || it->data->type != JSON_OBJECT) {
        upc_event_err(b, in, it->v0, "its data is not a JSON object");
        return FACTUM_EUPCAST;
    }
    return 0;
}

/* The hop to the next upcaster after it->u was applied. */
static int item_next(const upc_table *t, item *it, factum_upcast_buf *b)
{
    it->v = it->u->to;
    it->type_len = strlen(it->type);
    it->u = table_find(t, it->type, it->type_len, base_hash64(it->type, it->type_len), it->v);
    if (it->u && ++it->hops == FACTUM_UPCAST_MAX_CHAIN) {
        upc_event_err(b, it->in, it->v0, "more than %d upcasters in its chain", FACTUM_UPCAST_MAX_CHAIN);
        return FACTUM_EUPCAST;
    }
    return 0;
}

/* Apply declarative upcasters until the chain ends or a script upcaster
 * is next. 0, FACTUM_EUPCAST, -ENOMEM. */
static int item_advance(const upc_table *t, item *it, factum_upcast_buf *b)
{
    while (it->u && !it->u->script) {
        const upcaster *u = it->u;
        for (size_t i = 0; i < u->n_steps; i++) {
            char why[600] = "";
            int rc = upc_apply_step(&b->tree, it->data, &u->steps[i], &it->type, why, sizeof why);
            if (rc == 1) {
                upc_event_err(b, it->in, it->v0, "upcaster %s v%" PRId64 "->v%" PRId64 ", step %zu (%s): %s",
                              u->type, u->from, u->to, i + 1, op_names[u->steps[i].op], why);
                return FACTUM_EUPCAST;
            }
            if (rc) return rc;
        }
        int rc = item_next(t, it, b);
        if (rc) return rc;
    }
    return 0;
}

/* Write the upcast event into b->out. 0, FACTUM_EUPCAST (too large), -ENOMEM. */
static int item_finish(item *it, size_t max_size, factum_upcast_buf *b, factum_event *out)
{
    const factum_event *in = it->in;
    const char *mt = (const char *)in->metadata;
    b->d.len = b->m.len = 0;
    int rc = json_write_value(&b->d, it->data);
    if (!rc) {
        if (it->meta_text) { /* {...} -> {..., "$schemaVersion":N} */
            size_t k = it->m_open + 1;
            while (k < it->m_close && (mt[k] == ' ' || mt[k] == '\t' || mt[k] == '\n' || mt[k] == '\r'))
                k++;
            rc = base_buf_append(&b->m, mt + it->m_open, k < it->m_close ? it->m_close - it->m_open : 1);
            if (!rc)
                rc = base_buf_printf(&b->m, "%s\"$schemaVersion\":%" PRId64 "}", k < it->m_close ? "," : "",
                                     it->v);
        } else if (it->meta) {
            upc_member_remove_all(it->meta, "$schemaVersion", 14);
            rc = base_buf_append(&b->m, "{", 1);
            for (size_t i = 0; !rc && i < it->meta->n; i++) {
                rc = json_write_string(&b->m, it->meta->keys[i], it->meta->key_lens[i]);
                if (!rc) rc = base_buf_append(&b->m, ":", 1);
                if (!rc) rc = json_write_value(&b->m, it->meta->items[i]);
                if (!rc) rc = base_buf_append(&b->m, ",", 1);
            }
            if (!rc) rc = base_buf_printf(&b->m, "\"$schemaVersion\":%" PRId64 "}", it->v);
        } else {
            rc = base_buf_printf(&b->m, "{\"$schemaVersion\":%" PRId64 "}", it->v);
        }
    }
    if (rc) return rc;
    if (b->d.len + b->m.len > max_size) {
        upc_event_err(b, in, it->v0, "the upcast event (%zu bytes) is over the event size limit (%zu)",
                      b->d.len + b->m.len, max_size);
        return FACTUM_EUPCAST;
    }
    uint8_t *p = upc_alloc(&b->out, it->type_len + 1 + b->d.len + b->m.len + 1);
    if (!p) return -ENOMEM;
    memcpy(p, it->type, it->type_len);
    p[it->type_len] = 0;
    factum_event e = *in;
    e.type = (const char *)p;
    e.type_len = it->type_len;
    p += it->type_len + 1;
    if (b->d.len) memcpy(p, b->d.data, b->d.len);
    e.data = p;
    e.data_len = b->d.len;
    p += b->d.len;
    memcpy(p, b->m.data, b->m.len);
    e.metadata = p;
    e.metadata_len = b->m.len;
    e.flags |= FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
    *out = e;
    return 0;
}

/* ---- a round of script upcasts ---- */

typedef struct round {
    batch *bt;
    size_t *idx; /* round event -> batch item */
} round;

/* Text of v into the tree arena (for the worker). NULL: out of memory. */
static const char *tree_text(factum_upcast_buf *b, const json_value *v, size_t *len)
{
    base_buf w = {0};
    if (json_write_value(&w, v)) {
        base_buf_free(&w);
        return NULL;
    }
    char *p = upc_alloc(&b->tree, w.len + 1);
    if (p) {
        memcpy(p, w.data, w.len);
        p[w.len] = 0;
        *len = w.len;
    }
    base_buf_free(&w);
    return p;
}

static int round_result(void *ctx, size_t ri, const prj_js_up_out *o, const char *why)
{
    round *rd = ctx;
    batch *bt = rd->bt;
    size_t i = rd->idx[ri];
    if (i >= bt->limit) return 0; /* after the first failure: not needed */
    item *it = &bt->it[i];
    factum_upcast_buf *b = bt->b;
    const upcaster *u = it->u;
    if (!o) {
        upc_event_err(b, it->in, it->v0, "%s (script): %s", u->name, why);
        item_fail(bt, i);
        return 0;
    }
    /* The worker checked the result's shape; the bytes are checked again. */
    if (o->type_len > FACTUM_MAX_TYPE_LEN || memchr(o->type, 0, o->type_len) || o->type[0] == '$') {
        upc_event_err(b, it->in, it->v0, "%s (script): it returned an event type that is not valid", u->name);
        item_fail(bt, i);
        return 0;
    }
    json_value *d = NULL, *m = NULL;
    int rc = upc_parse(&b->tree, o->data, o->data_len, &d);
    if (rc == -ENOMEM) return rc;
    if (!rc && o->meta) {
        rc = upc_parse(&b->tree, o->meta, o->meta_len, &m);
        if (rc == -ENOMEM) return rc;
    }
    if (rc || d->type != JSON_OBJECT || (m && m->type != JSON_OBJECT)) {
        upc_event_err(b, it->in, it->v0,
                      "%s (script): it returned data or metadata that is not a JSON object", u->name);
        item_fail(bt, i);
        return 0;
    }
    char *type = upc_alloc(&b->tree, o->type_len + 1);
    if (!type) return -ENOMEM;
    memcpy(type, o->type, o->type_len);
    type[o->type_len] = 0;
    it->type = type;
    it->data = d;
    if (m) {
        it->meta = m;
        it->meta_text = 0;
    }
    rc = item_next(bt->t, it, b);
    if (!rc) rc = item_advance(bt->t, it, b);
    if (rc == FACTUM_EUPCAST) {
        item_fail(bt, i);
        rc = 0;
    }
    return rc;
}

/* One round: every event of [0, limit) that waits for a script goes to a
 * worker. 0 (nothing waited: *any 0), or -ENOMEM. */
static int script_round(batch *bt, upc_pool *pool, int *any)
{
    factum_upcast_buf *b = bt->b;
    size_t k = 0;
    for (size_t i = 0; i < bt->limit; i++)
        k += bt->it[i].u != NULL;
    *any = k > 0;
    if (!k) return 0;
    if (!pool && bt->defer) { /* upc_upcast_noscript: the caller hands it off */
        bt->deferred = 1;
        *any = 0;
        return 0;
    }
    if (!pool) { /* upc_apply_docs: no store, no workers */
        for (size_t i = 0; i < bt->limit; i++)
            if (bt->it[i].u) {
                upc_event_err(b, bt->it[i].in, bt->it[i].v0,
                              "%s (script): script upcasters run only in a store", bt->it[i].u->name);
                item_fail(bt, i);
            }
        return 0;
    }
    prj_js_event *ev = calloc(k, sizeof *ev);
    uint32_t *script = calloc(k, sizeof *script);
    size_t *idx = calloc(k, sizeof *idx);
    int rc = 0;
    if (!ev || !script || !idx) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < bt->limit; i++) {
        item *it = &bt->it[i];
        if (!it->u) continue;
        const factum_event *in = it->in;
        prj_js_event *e = &ev[n];
        e->position = in->position;
        e->stream = in->stream;
        e->stream_len = in->stream_len;
        e->seq = in->version;
        e->type = it->type;
        e->type_len = strlen(it->type);
        e->id = in->id;
        e->timestamp_ns = in->timestamp_ns;
        e->is_json = 1;
        size_t dl = 0, ml = 0;
        const char *dt = tree_text(b, it->data, &dl), *mtx = "";
        if (!dt) {
            rc = -ENOMEM;
            goto out;
        }
        if (it->meta_text) {
            mtx = (const char *)in->metadata;
            ml = in->metadata_len;
        } else if (it->meta) {
            upc_member_remove_all(it->meta, "$schemaVersion", 14); /* set again at the end */
            if (!(mtx = tree_text(b, it->meta, &ml))) {
                rc = -ENOMEM;
                goto out;
            }
        }
        e->data = (const uint8_t *)dt;
        e->data_len = dl;
        e->meta = (const uint8_t *)mtx;
        e->meta_len = ml;
        script[n] = it->u->script_idx;
        idx[n++] = i;
    }
    round rd = {bt, idx};
    rc = upc_pool_run(pool, &bt->t->sc, ev, script, n, round_result, &rd);
out:
    free(ev);
    free(script);
    free(idx);
    return rc;
}

/* Upcast in[0..n) through table t (whose read lock the caller holds, if it
 * has one) into out; changed[i] (may be NULL) says whether event i was
 * upcast. 0 with *n_done = n, FACTUM_EUPCAST with *n_done, -ENOMEM. */
static int upcast_batch(const upc_table *t, upc_pool *pool, size_t max_size, const factum_event *in, size_t n,
                        factum_upcast_buf *b, factum_event *out, size_t *n_done, unsigned char *changed,
                        int defer)
{
    item one, *it = n == 1 ? &one : calloc(n, sizeof *it);
    if (!it) return -ENOMEM;
    memset(it, 0, n * sizeof *it);
    batch bt = {t, b, it, n, n, defer, 0};
    int rc = 0;
    upc_areset(&b->tree);
    for (size_t i = 0; i < bt.limit; i++) {
        it[i].in = &in[i];
        if (!in[i].type || in[i].type[0] == '$' ||
            !table_has_type(t, in[i].type, in[i].type_len, base_hash64(in[i].type, in[i].type_len)))
            continue; /* UPC-4 */
        rc = item_begin(t, &it[i], base_hash64(in[i].type, in[i].type_len), b);
        if (!rc) rc = item_advance(t, &it[i], b);
        if (rc == FACTUM_EUPCAST) {
            item_fail(&bt, i);
            rc = 0;
        }
        if (rc) goto out;
    }
    for (int any = 1;
         any;) /* each round moves every waiting event one script on (at most the chain's length) */
        if ((rc = script_round(&bt, pool, &any))) goto out;
    if (bt.deferred) {
        rc = UPC_DEFER;
        goto out;
    }
    for (size_t i = 0; i < bt.limit; i++) {
        if (changed) changed[i] = (unsigned char)it[i].upcast;
        if (!it[i].upcast) {
            if (&out[i] != &in[i]) out[i] = in[i];
            continue;
        }
        rc = item_finish(&it[i], max_size, b, &out[i]);
        if (rc == FACTUM_EUPCAST) {
            item_fail(&bt, i);
            rc = 0;
            break;
        }
        if (rc) goto out;
    }
    *n_done = bt.limit;
    rc = bt.limit < n ? FACTUM_EUPCAST : 0;
out:
    if (it != &one) free(it);
    return rc;
}

/* The store's pool of workers, made when a script upcaster is first run. */
static upc_pool *reg_pool(factum_store *s)
{
    upc_reg *r = s->upc;
    pthread_mutex_lock(&r->pool_mu);
    if (!r->pool && upc_pool_new(s, &r->pool)) r->pool = NULL;
    upc_pool *p = r->pool;
    pthread_mutex_unlock(&r->pool_mu);
    return p;
}

int factum_upcast_many(factum_store *s, const factum_event *in, size_t n, factum_upcast_buf *b,
                       factum_event *out, size_t *n_done)
{
    if (n_done) *n_done = 0;
    if (!s || (!in && n) || !b || (!out && n) || !n_done || n > 4096) return FACTUM_EINVAL;
    b->err[0] = 0;
    int rc = reg_refresh(s);
    if (rc) return rc;
    upc_reg *r = s->upc;
    if (!atomic_load_explicit(&r->count, memory_order_relaxed)) {
        if (out != in) memmove(out, in, n * sizeof *in);
        *n_done = n;
        return 0;
    }
    /* The read lock stays held until the output is written: the new type
     * may point into the registry, and a round's scripts belong to this
     * table (UPC-3). */
    pthread_rwlock_rdlock(&r->rw);
    upc_table *t = r->t;
    if (!t->sc.n) {
        rc = upcast_batch(t, NULL, s->opts.max_event_size, in, n, b, out, n_done, NULL, 0);
        pthread_rwlock_unlock(&r->rw);
        return rc;
    }
    /* Scripts may run: hold the table, not the lock (UPC-3). */
    atomic_fetch_add(&t->refs, 1);
    pthread_rwlock_unlock(&r->rw);
    upc_pool *pool = reg_pool(s);
    rc = pool ? upcast_batch(t, pool, s->opts.max_event_size, in, n, b, out, n_done, NULL, 0) : -ENOMEM;
    table_unref(t);
    return rc;
}

/* factum_upcast, or with defer set upc_upcast_noscript. */
static int upcast_one(factum_store *s, const factum_event *in, factum_upcast_buf *b, factum_event *out,
                      int defer)
{
    if (!s || !in || !b || !out) return FACTUM_EINVAL;
    b->err[0] = 0;
    int rc = reg_refresh(s);
    if (rc) return rc;
    upc_reg *r = s->upc;
    /* A sealed or shredded event has no data to upcast: it passes as it is. */
    if (!atomic_load_explicit(&r->count, memory_order_relaxed) || !in->type || in->type[0] == '$' ||
        (in->flags & (FACTUM_EVENT_SEALED | FACTUM_EVENT_SHREDDED))) {
        if (out != in) *out = *in;
        return 0;
    }
    uint64_t hash = base_hash64(in->type, in->type_len);
    pthread_rwlock_rdlock(&r->rw);
    if (!table_has_type(r->t, in->type, in->type_len, hash)) { /* UPC-4 */
        pthread_rwlock_unlock(&r->rw);
        if (out != in) *out = *in;
        return 0;
    }
    /* The read lock stays held until the output is written (UPC-3); where
     * scripts may run, a reference to the table instead. */
    upc_table *t = r->t;
    size_t done = 0;
    unsigned char changed = 0;
    if (!t->sc.n || defer) {
        rc = upcast_batch(t, NULL, s->opts.max_event_size, in, 1, b, out, &done, &changed, defer);
        pthread_rwlock_unlock(&r->rw);
    } else {
        atomic_fetch_add(&t->refs, 1);
        pthread_rwlock_unlock(&r->rw);
        upc_pool *pool = reg_pool(s);
        rc =
            pool ? upcast_batch(t, pool, s->opts.max_event_size, in, 1, b, out, &done, &changed, 0) : -ENOMEM;
        table_unref(t);
    }
    if (rc == FACTUM_EUPCAST && out != in) *out = *in;
    if (rc == UPC_DEFER) return rc;
    return rc ? rc : changed;
}

int factum_upcast(factum_store *s, const factum_event *in, factum_upcast_buf *b, factum_event *out)
{
    return upcast_one(s, in, b, out, 0);
}

int upc_upcast_noscript(factum_store *s, const factum_event *in, factum_upcast_buf *b, factum_event *out)
{
    return upcast_one(s, in, b, out, 1);
}

int upc_apply_docs(const char *const *docs, const size_t *lens, size_t n, size_t max_size,
                   const factum_event *in, factum_upcast_buf *b, factum_event *out)
{
    upc_table t = {calloc(UPC_BUCKETS, sizeof(upcaster *)), 0, {0}, 1};
    if (!t.b) return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        upcaster *u;
        if (parse_doc(docs[i], lens[i], &u, NULL, 0)) continue;
        upcaster **pp = table_slot(&t, u->type, u->type_len, u->hash, u->from);
        if (*pp) {
            u->next = (*pp)->next;
            upcaster_free(*pp);
        } else {
            t.n++;
        }
        *pp = u;
    }
    rc = table_index_scripts(&t);
    b->err[0] = 0;
    if (rc) {
    } else if (!in->type || in->type[0] == '$' ||
               !table_has_type(&t, in->type, in->type_len, base_hash64(in->type, in->type_len))) {
        if (out != in) *out = *in;
    } else {
        size_t done = 0;
        unsigned char changed = 0;
        rc = upcast_batch(&t, NULL, max_size, in, 1, b, out, &done, &changed, 0);
        if (!rc) rc = changed;
        if (rc == FACTUM_EUPCAST && out != in) *out = *in;
    }
    table_free(&t);
    return rc;
}
