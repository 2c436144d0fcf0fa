/*
 * upcast_tree.c - the JSON an upcast works on (upcast_int.h): a bump
 * arena per upcast buffer, a parser into it (no malloc per value once the
 * first chunk is there), the changes the declarative steps make to a tree,
 * and compact writing. The registry and the batches are upcast.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/upcast_int.h"

/* ---- messages ------------------------------------------------------------ */

void upc_set_err(char *err, size_t el, const char *fmt, ...)
{
    if (!err || !el) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, el, fmt, ap);
    va_end(ap);
}

/* ---- scratch buffers ---------------------------------------------------- */

void *upc_alloc(arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(a->end - a->p) < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        achunk *c = malloc(sizeof *c + size);
        if (!c) return NULL;
        c->size = size;
        c->next = a->chunks;
        a->chunks = c;
        a->p = c->data;
        a->end = c->data + size;
    }
    void *r = a->p;
    a->p += n;
    return r;
}

/* Forget everything; keep the last chunk (the first made) if it is the
 * ordinary size, so that the next use does not allocate. */
void upc_areset(arena *a)
{
    achunk *keep = NULL;
    for (achunk *c = a->chunks, *nx; c; c = nx) {
        nx = c->next;
        if (!nx && c->size == ARENA_CHUNK)
            keep = c;
        else
            free(c);
    }
    a->chunks = keep;
    if (keep) keep->next = NULL;
    a->p = keep ? keep->data : NULL;
    a->end = keep ? keep->data + keep->size : NULL;
}

void upc_afree(arena *a)
{
    for (achunk *c = a->chunks, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    memset(a, 0, sizeof *a);
}

int factum_upcast_buf_new(factum_upcast_buf **out)
{
    if (!out) return FACTUM_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

void factum_upcast_buf_reset(factum_upcast_buf *b)
{
    if (!b) return;
    upc_areset(&b->out);
    b->err[0] = 0;
    /* Do not keep a large scratch buffer after a large event. */
    if (b->d.cap > (1u << 20)) base_buf_free(&b->d);
    if (b->m.cap > (1u << 20)) base_buf_free(&b->m);
}

void factum_upcast_buf_free(factum_upcast_buf *b)
{
    if (!b) return;
    upc_afree(&b->tree);
    upc_afree(&b->out);
    base_buf_free(&b->d);
    base_buf_free(&b->m);
    free(b);
}

const char *factum_upcast_buf_error(const factum_upcast_buf *b)
{
    return b ? b->err : "";
}

/* ---- parsing into the arena ---------------------------------------------- */

/* Parse text that json_validate accepted (so: well formed, nested at most
 * 64 deep, strings valid UTF-8 with paired surrogates) into a tree in a.
 * Strings are decoded as json.c decodes them. NULL: out of memory. */
static json_value *tparse(arena *a, const char **pp, const char *end);

static void tskip(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    *pp = p;
}

static unsigned thex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* The string at *pp (its opening quote): decoded into the arena. */
static char *tstring(arena *a, const char **pp, size_t *len)
{
    const char *p = *pp + 1, *q = p;
    while (*q != '"')
        q += *q == '\\' ? 2 : 1; /* valid: every escape is whole */
    char *s = upc_alloc(a, (size_t)(q - p) + 1), *o = s;
    if (!s) return NULL;
    while (p < q) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp = thex4(p);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (thex4(p + 2) - 0xdc00);
                p += 6;
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xc0 | (cp >> 6));
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xe0 | (cp >> 12));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *o++ = (char)(0xf0 | (cp >> 18));
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            *o++ = e; /* " \ / */
        }
    }
    *o = 0;
    *len = (size_t)(o - s);
    *pp = q + 1;
    return s;
}

static json_value *tparse(arena *a, const char **pp, const char *end)
{
    tskip(pp, end);
    const char *p = *pp;
    json_value *v = upc_alloc(a, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    switch (*p) {
    case 'n':
        v->type = JSON_NULL;
        *pp = p + 4;
        return v;
    case 't':
        v->type = JSON_TRUE;
        *pp = p + 4;
        return v;
    case 'f':
        v->type = JSON_FALSE;
        *pp = p + 5;
        return v;
    case '"':
        v->type = JSON_STRING;
        return (v->str = tstring(a, pp, &v->len)) ? v : NULL;
    case '[':
    case '{': {
        int obj = *p == '{';
        v->type = obj ? JSON_OBJECT : JSON_ARRAY;
        *pp = p + 1;
        size_t cap = 0;
        for (;;) {
            tskip(pp, end);
            if (**pp == ']' || **pp == '}') {
                (*pp)++;
                return v;
            }
            if (**pp == ',') {
                (*pp)++;
                tskip(pp, end);
            }
            if (v->n == cap) { /* grow by copying: the old arrays stay in the arena */
                size_t nc = cap ? cap * 2 : 8;
                json_value **it = upc_alloc(a, nc * sizeof *it);
                char **k = obj ? upc_alloc(a, nc * sizeof *k) : NULL;
                size_t *kl = obj ? upc_alloc(a, nc * sizeof *kl) : NULL;
                if (!it || (obj && (!k || !kl))) return NULL;
                if (v->n) {
                    memcpy(it, v->items, v->n * sizeof *it);
                    if (obj) {
                        memcpy(k, v->keys, v->n * sizeof *k);
                        memcpy(kl, v->key_lens, v->n * sizeof *kl);
                    }
                }
                v->items = it;
                v->keys = k;
                v->key_lens = kl;
                cap = nc;
            }
            if (obj) {
                if (!(v->keys[v->n] = tstring(a, pp, &v->key_lens[v->n]))) return NULL;
                tskip(pp, end);
                (*pp)++; /* ':' */
            }
            if (!(v->items[v->n] = tparse(a, pp, end))) return NULL;
            v->n++;
        }
    }
    default: { /* a number: its text */
        const char *q = p;
        while (q < end &&
               (*q == '-' || *q == '+' || *q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9')))
            q++;
        v->type = JSON_NUMBER;
        v->len = (size_t)(q - p);
        if (!(v->str = upc_alloc(a, v->len + 1))) return NULL;
        memcpy(v->str, p, v->len);
        v->str[v->len] = 0;
        *pp = q;
        return v;
    }
    }
}

/* Validate and parse text into the arena: 0 and *out, FACTUM_EBADJSON, or
 * -ENOMEM. */
int upc_parse(arena *a, const char *text, size_t len, json_value **out)
{
    if (json_validate(text, len)) return FACTUM_EBADJSON;
    const char *p = text;
    return (*out = tparse(a, &p, text + len)) ? 0 : -ENOMEM;
}

/* ---- changing a tree in the arena ------------------------------------------ */

static long member_index(const json_value *o, const char *key, size_t len)
{
    for (size_t i = o->n; i-- > 0;)
        if (o->key_lens[i] == len && memcmp(o->keys[i], key, len) == 0) return (long)i;
    return -1;
}

/* Take member i out of o (its value is returned). */
static json_value *member_take(json_value *o, size_t i)
{
    json_value *v = o->items[i];
    memmove(&o->keys[i], &o->keys[i + 1], (o->n - i - 1) * sizeof *o->keys);
    memmove(&o->key_lens[i], &o->key_lens[i + 1], (o->n - i - 1) * sizeof *o->key_lens);
    memmove(&o->items[i], &o->items[i + 1], (o->n - i - 1) * sizeof *o->items);
    o->n--;
    return v;
}

/* Remove every member `key` of o. */
void upc_member_remove_all(json_value *o, const char *key, size_t len)
{
    long i;
    while ((i = member_index(o, key, len)) >= 0)
        member_take(o, (size_t)i);
}

/* Add key: v at the end of o (new arrays in the arena). */
static int member_add(arena *a, json_value *o, const char *key, size_t len, json_value *v)
{
    char **k = upc_alloc(a, (o->n + 1) * sizeof *k);
    size_t *kl = upc_alloc(a, (o->n + 1) * sizeof *kl);
    json_value **it = upc_alloc(a, (o->n + 1) * sizeof *it);
    char *dup = upc_alloc(a, len + 1);
    if (!k || !kl || !it || !dup) return -ENOMEM;
    if (o->n) {
        memcpy(k, o->keys, o->n * sizeof *k);
        memcpy(kl, o->key_lens, o->n * sizeof *kl);
        memcpy(it, o->items, o->n * sizeof *it);
    }
    memcpy(dup, key, len);
    dup[len] = 0;
    k[o->n] = dup;
    kl[o->n] = len;
    it[o->n] = v;
    o->keys = k;
    o->key_lens = kl;
    o->items = it;
    o->n++;
    return 0;
}

/* A copy of v (a document's value) in the arena (NULL: out of memory). */
static json_value *value_clone(arena *a, const json_value *v)
{
    json_value *c = upc_alloc(a, sizeof *c);
    if (!c) return NULL;
    *c = (json_value){.type = v->type, .len = v->len, .n = v->n};
    if (v->str) {
        if (!(c->str = upc_alloc(a, v->len + 1))) return NULL;
        memcpy(c->str, v->str, v->len + 1);
    }
    if (!v->n) return c;
    if (!(c->items = upc_alloc(a, v->n * sizeof *c->items))) return NULL;
    if (v->type == JSON_OBJECT && (!(c->keys = upc_alloc(a, v->n * sizeof *c->keys)) ||
                                   !(c->key_lens = upc_alloc(a, v->n * sizeof *c->key_lens))))
        return NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (!(c->items[i] = value_clone(a, v->items[i]))) return NULL;
        if (v->type == JSON_OBJECT) {
            if (!(c->keys[i] = upc_alloc(a, v->key_lens[i] + 1))) return NULL;
            memcpy(c->keys[i], v->keys[i], v->key_lens[i] + 1);
            c->key_lens[i] = v->key_lens[i];
        }
    }
    return c;
}

/* The object holding the last member of p, walking from root. create:
 * objects missing on the way are made. *parent NULL: a member on the way
 * is missing (and !create). Returns 0, -ENOMEM, or 1 with `why` set: a
 * member on the way is not an object. */
static int walk(arena *a, json_value *root, const upc_path *p, int create, json_value **parent, char *why,
                size_t wl)
{
    json_value *o = root;
    for (size_t i = 0; i + 1 < p->n; i++) {
        long k = member_index(o, p->seg[i], p->seg_len[i]);
        if (k < 0) {
            if (!create) {
                *parent = NULL;
                return 0;
            }
            json_value *nv = upc_alloc(a, sizeof *nv);
            if (!nv) return -ENOMEM;
            *nv = (json_value){.type = JSON_OBJECT};
            if (member_add(a, o, p->seg[i], p->seg_len[i], nv)) return -ENOMEM;
            o = nv;
            continue;
        }
        o = o->items[k];
        if (o->type != JSON_OBJECT) {
            upc_set_err(why, wl, "member \"%s\" of \"%s\" is not an object", p->seg[i], p->text);
            return 1;
        }
    }
    *parent = o;
    return 0;
}

/* Apply one step to the data tree. 0, -ENOMEM, or 1 with `why`. */
int upc_apply_step(arena *ar, json_value *root, const upc_step *st, const char **type, char *why, size_t wl)
{
    json_value *pa, *pb;
    int rc;
    const upc_path *a = &st->a;
    const char *last = a->n ? a->seg[a->n - 1] : NULL;
    size_t last_len = a->n ? a->seg_len[a->n - 1] : 0;
    switch (st->op) {
    case OP_RENAME:
    case OP_MOVE: {
        if ((rc = walk(ar, root, a, 0, &pa, why, wl)) || !pa) return rc;
        long k = member_index(pa, last, last_len);
        if (k < 0) return 0; /* nothing to move */
        json_value *v = member_take(pa, (size_t)k);
        upc_member_remove_all(pa, last, last_len); /* a repeated key: the last one counted */
        const upc_path *b = &st->b;
        if (st->op == OP_RENAME) {
            pb = pa;
        } else if ((rc = walk(ar, root, b, 1, &pb, why, wl))) {
            return rc;
        }
        if (member_index(pb, b->seg[b->n - 1], b->seg_len[b->n - 1]) >= 0) {
            upc_set_err(why, wl, "\"%s\" exists already", b->text);
            return 1;
        }
        return member_add(ar, pb, b->seg[b->n - 1], b->seg_len[b->n - 1], v);
    }
    case OP_DEFAULT:
    case OP_SET: {
        if ((rc = walk(ar, root, a, 1, &pa, why, wl))) return rc;
        if (member_index(pa, last, last_len) >= 0) {
            if (st->op == OP_DEFAULT) return 0;
            upc_member_remove_all(pa, last, last_len);
        }
        json_value *v = value_clone(ar, st->value);
        if (!v) return -ENOMEM;
        return member_add(ar, pa, last, last_len, v);
    }
    case OP_REMOVE:
        if ((rc = walk(ar, root, a, 0, &pa, why, wl)) || !pa) return rc;
        upc_member_remove_all(pa, last, last_len);
        return 0;
    default:
        *type = st->type;
        return 0;
    }
}

/* The schema version in JSON metadata: 0 and *v (1 if absent), or 1. */
int upc_meta_version(const json_value *meta, int64_t *v)
{
    *v = 1;
    const json_value *x = meta && meta->type == JSON_OBJECT ? json_get(meta, "$schemaVersion") : NULL;
    if (!x) return 0;
    if (json_int64(x, v) || *v < 1) return 1;
    return 0;
}

void upc_event_err(factum_upcast_buf *b, const factum_event *ev, int64_t version, const char *fmt, ...)
{
    int n = snprintf(b->err, sizeof b->err,
                     "cannot upcast event %" PRIu64 "@%.512s (position %" PRIu64
                     ", type %.256s, schema version %" PRId64 "): ",
                     ev->version, ev->stream, ev->position, ev->type, version);
    if (n < 0 || (size_t)n >= sizeof b->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, sizeof b->err - (size_t)n, fmt, ap);
    va_end(ap);
}
