/*
 * dyn.c - statements known only when they run: the texts a read model's
 * JavaScript handlers give sql() (js.c). Each target connection keeps a
 * bounded cache of them by text (a hash table; the least recently used
 * goes first), each compiled once with rm_stmt_compile (named parameters
 * become positional ones) and prepared once by the target (sqlite.c,
 * pg.c). Their parameters come from the JSON object the handler gave.
 *
 * What a page (one batch of events) prepared before its transaction is not
 * evicted while the page runs: a pipelined PostgreSQL batch cannot prepare
 * in the middle, and a careful replay of the page (RM-3) uses them again.
 * So the cache holds RM_DYN_MAX statements, or one page's if it needs
 * more; a statement that finds no room is run unprepared.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rm/rm.h"

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

rm_dyn *rm_dyn_find(rm_dyn_cache *c, const char *sql, size_t len)
{
    if (!c->n_buckets) return NULL;
    uint64_t h = hash(sql, len);
    for (rm_dyn *d = c->buckets[h % c->n_buckets]; d; d = d->next)
        if (d->hash == h && d->len == len && !memcmp(d->text, sql, len)) {
            d->used = ++c->clock;
            return d;
        }
    return NULL;
}

void rm_dyn_page(rm_dyn_cache *c)
{
    c->page = ++c->clock;
}

/* A query's or handler's parameter by name (a path into the JSON object). */
static int named(void *ctx, const char *name, size_t len, rm_param *p, char *err, size_t err_len)
{
    (void)ctx, (void)err, (void)err_len;
    p->src = RMP_NAMED;
    if (!(p->path = malloc(len + 1))) return -ENOMEM;
    memcpy(p->path, name, len);
    p->path[len] = 0;
    return 0;
}

/* What an event's statement may be: as a SQL handler's (def.c). */
static int kind_ok(const char *sql)
{
    static const char *const ok[] = {"INSERT", "UPDATE", "DELETE", "REPLACE", "WITH", "SELECT", NULL};
    char kw[16];
    if (!rm_first_keyword(sql, kw, sizeof kw)) return 0;
    for (const char *const *k = ok; *k; k++)
        if (!strcmp(kw, *k)) return 1;
    return 0;
}

int rm_dyn_new(rm_dyn_cache *c, const char *sql, size_t len, int target_kind, rm_dyn **out, char *err,
               size_t err_len)
{
    *out = NULL;
    if (memchr(sql, 0, len)) {
        snprintf(err, err_len, "a statement with a NUL character");
        return FACTUM_EINVAL;
    }
    rm_dyn *d = calloc(1, sizeof *d);
    if (!d || !(d->text = malloc(len + 1))) {
        free(d);
        return -ENOMEM;
    }
    memcpy(d->text, sql, len);
    d->text[len] = 0;
    d->len = len;
    if (!kind_ok(d->text)) {
        /* Not transaction control (the batch's transaction is factum's,
         * RM-2), nor ATTACH, PRAGMA, VACUUM, SET and the like. */
        snprintf(err, err_len,
                 "only INSERT, UPDATE, DELETE, REPLACE, WITH and SELECT statements may be run for an event: "
                 "%.200s",
                 d->text);
        free(d->text);
        free(d);
        return FACTUM_EINVAL;
    }
    d->hash = hash(sql, len);
    int rc = rm_stmt_compile(&d->st, d->text, target_kind, named, NULL, err, err_len);
    if (rc) {
        free(d->text);
        free(d);
        return rc;
    }
    d->id = ++c->next_id;
    d->used = ++c->clock;
    *out = d;
    return 0;
}

int rm_dyn_room(rm_dyn_cache *c, rm_dyn **victim)
{
    *victim = NULL;
    if (c->n < RM_DYN_MAX) return 0;
    /* The least recently used that the current page does not use. A scan:
     * eviction is rare next to the lookups (a script's texts are few). */
    rm_dyn **best = NULL;
    for (size_t b = 0; b < c->n_buckets; b++)
        for (rm_dyn **pp = &c->buckets[b]; *pp; pp = &(*pp)->next)
            if ((*pp)->used < c->page && (!best || (*pp)->used < (*best)->used)) best = pp;
    if (!best) return 1;
    rm_dyn *d = *best;
    *best = d->next;
    d->next = NULL;
    c->n--;
    *victim = d;
    return 0;
}

int rm_dyn_add(rm_dyn_cache *c, rm_dyn *d)
{
    if (!c->n_buckets) {
        size_t nb = 2 * RM_DYN_MAX + 1;
        if (!(c->buckets = calloc(nb, sizeof *c->buckets))) return -ENOMEM;
        c->n_buckets = nb;
    }
    size_t b = d->hash % c->n_buckets;
    d->next = c->buckets[b];
    c->buckets[b] = d;
    c->n++;
    return 0;
}

void rm_dyn_free(rm_dyn *d)
{
    if (!d) return;
    rm_stmt_free(&d->st);
    free(d->text);
    free(d);
}

rm_dyn *rm_dyn_clear(rm_dyn_cache *c)
{
    rm_dyn *all = NULL;
    for (size_t b = 0; b < c->n_buckets; b++)
        while (c->buckets[b]) {
            rm_dyn *d = c->buckets[b];
            c->buckets[b] = d->next;
            d->next = all;
            all = d;
        }
    free(c->buckets);
    c->buckets = NULL;
    c->n_buckets = c->n = 0;
    return all;
}

int rm_dyn_bind(const rm_dyn *d, const char *params, size_t params_len, base_buf *scratch, rm_value **v,
                size_t *cap, char *err, size_t err_len)
{
    const rm_stmt *st = &d->st;
    if (st->n_params > *cap) {
        rm_value *nv = realloc(*v, st->n_params * sizeof *nv);
        if (!nv) return -ENOMEM;
        *v = nv;
        *cap = st->n_params;
    }
    scratch->len = 0;
    for (size_t k = 0; k < st->n_params; k++) {
        int rc = rm_bind_named(&st->params[k], params, params_len, scratch, &(*v)[k]);
        if (rc == FACTUM_ENOTFOUND) {
            snprintf(err, err_len, "parameter :%s is not given", st->params[k].path);
            return FACTUM_EINVAL;
        }
        if (rc) return rc;
    }
    rm_values_fix(*v, st->n_params, scratch);
    return 0;
}
