/*
 * state.c - what the store knows about a stream: its last version and
 * position, its metadata (from `$$<stream>`), found through the index with
 * hash collisions resolved by reading the events themselves; the bounded
 * LRU cache of those states (ST-3). Metadata documents are parsed by
 * src/common/meta.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/store_int.h"

size_t meta_stream_name(const char *stream, size_t len, char *buf)
{
    buf[0] = '$';
    buf[1] = '$';
    memcpy(buf + 2, stream, len);
    buf[len + 2] = 0;
    return len + 2;
}

/* ---- events by offset and by version -------------------------------- */

int event_at(factum_store *s, uint64_t lo, factum_event *ev)
{
    uint64_t avail;
    const uint8_t *p = log_ptr(s->log, lo, &avail);
    if (!p) return FACTUM_ECORRUPT;
    int type;
    int n = log_decode_frame(p, avail, &type, ev, NULL, NULL);
    if (n > 0 && type == LOG_FRAME_REMOVED) {
        /* Removed by a scavenge (LOG-8): an event of no stream, which every
         * caller's name check passes over (as a hash collision). */
        memset(ev, 0, sizeof *ev);
        ev->stream = ev->type = "";
        return 0;
    }
    if (n <= 0 || type != LOG_FRAME_EVENT) {
        store_log(s, FACTUM_LOG_ERROR, "damaged event record at segment %llu offset %llu",
                  (unsigned long long)(lo / s->seg_size), (unsigned long long)(lo % s->seg_size));
        return FACTUM_ECORRUPT;
    }
    return 0;
}

static int same_stream(const factum_event *ev, const char *name, size_t len)
{
    return ev->stream_len == len && memcmp(ev->stream, name, len) == 0;
}

int stream_event(factum_store *s, const char *name, size_t len, uint64_t hash, uint64_t version,
                 factum_event *ev, uint64_t *lo_out)
{
    idx_kv kv[256];
    size_t n;
    /* Usually one entry has this version; names sharing the hash add more. */
    int rc = idx_stream_range(s->idx, hash, version, 0, kv, 4, &n);
    if (!rc && n == 4 && kv[3].k2 == version) rc = idx_stream_range(s->idx, hash, version, 0, kv, 256, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n && kv[i].k2 == version; i++) {
        if ((rc = event_at(s, kv[i].v, ev))) return rc;
        if (same_stream(ev, name, len) && ev->version == version) {
            if (lo_out) *lo_out = kv[i].v;
            return 1;
        }
    }
    return 0;
}

/* The newest event of `name` in the index: 1 found (ev, lo), 0 none.
 * Streams whose names share the hash interleave by version (IDX-3). */
static int last_event(factum_store *s, const char *name, size_t len, uint64_t hash, factum_event *ev,
                      uint64_t *lo)
{
    uint64_t from = UINT64_MAX;
    idx_kv kv[64];
    size_t want = 4;
    while (1) {
        size_t n;
        int rc = idx_stream_range(s->idx, hash, from, 1, kv, want, &n);
        if (rc) return rc;
        /* Leave the last version's entries for the next round unless the
         * index had no more (some of that version may not be in this batch). */
        size_t limit = n;
        if (n == want) {
            while (limit > 0 && kv[limit - 1].k2 == kv[n - 1].k2)
                limit--;
            if (limit == 0) {
                if (want < 64) {
                    want *= 4;
                    continue;
                }
                limit = n;
            }
        }
        for (size_t i = 0; i < limit; i++) {
            if ((rc = event_at(s, kv[i].v, ev))) return rc;
            if (same_stream(ev, name, len)) {
                *lo = kv[i].v;
                return 1;
            }
        }
        if (n < want) return 0;
        from = kv[limit < n ? limit : n - 1].k2;
        if (limit == n) {
            if (from == 0) return 0;
            from--;
        }
    }
}

int state_load(factum_store *s, const char *name, size_t len, uint64_t hash, sstate *st)
{
    st->last_version = -1;
    st->last_position = 0;
    st->meta_version = -1;
    st->meta_lo = 0;
    meta_none(&st->meta);
    factum_event ev;
    uint64_t lo;
    int rc = last_event(s, name, len, hash, &ev, &lo);
    if (rc < 0) return rc;
    if (rc) {
        st->last_version = (int64_t)ev.version;
        st->last_position = ev.position;
    }
    if (len >= 2 && name[0] == '$' && name[1] == '$') return 0; /* metadata streams have no metadata */
    char mname[FACTUM_MAX_STREAM_LEN + 3];
    size_t mlen = meta_stream_name(name, len, mname);
    rc = last_event(s, mname, mlen, base_hash64(mname, mlen), &ev, &lo);
    if (rc < 0) return rc;
    if (rc) {
        st->meta_version = (int64_t)ev.version;
        st->meta_lo = lo;
        meta_parse_lenient(ev.data, ev.data_len, &st->meta);
    }
    return 0;
}

int state_get(factum_store *s, const char *name, size_t len, sstate *st)
{
    uint64_t hash = base_hash64(name, len), gen;
    if (cache_get(&s->cache, hash, name, len, st, &gen)) return 0;
    int rc = state_load(s, name, len, hash, st);
    if (!rc) cache_put_if(&s->cache, hash, name, len, st, gen);
    return rc;
}

/* ---- the cache ------------------------------------------------------ */

struct centry {
    centry *hnext, *prev, *next;
    uint64_t hash;
    size_t len;
    sstate st;
    char name[];
};

int cache_init(scache *c, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->cap = cap ? cap : 1;
    c->nbuckets = 64;
    while (c->nbuckets < c->cap)
        c->nbuckets *= 2;
    if (!(c->buckets = calloc(c->nbuckets, sizeof *c->buckets))) return -ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    return 0;
}

void cache_deinit(scache *c)
{
    if (!c->buckets) return;
    for (centry *e = c->lru_head; e;) {
        centry *n = e->next;
        free(e);
        e = n;
    }
    free(c->buckets);
    c->buckets = NULL;
    pthread_mutex_destroy(&c->mu);
}

static centry **find(scache *c, uint64_t hash, const char *name, size_t len)
{
    centry **pp = &c->buckets[hash & (c->nbuckets - 1)];
    while (*pp && !((*pp)->hash == hash && (*pp)->len == len && memcmp((*pp)->name, name, len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(scache *c, centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(scache *c, centry *e)
{
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

int cache_get(scache *c, uint64_t hash, const char *name, size_t len, sstate *out, uint64_t *gen_out)
{
    pthread_mutex_lock(&c->mu);
    centry *e = *find(c, hash, name, len);
    if (e) {
        *out = e->st;
        if (c->lru_head != e) {
            lru_unlink(c, e);
            lru_front(c, e);
        }
    }
    *gen_out = c->gen;
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

static void evict(scache *c)
{
    while (c->n > c->cap && c->lru_tail) {
        centry *v = c->lru_tail;
        lru_unlink(c, v);
        centry **pp = find(c, v->hash, v->name, v->len);
        *pp = v->hnext;
        free(v);
        c->n--;
    }
}

static int insert(scache *c, uint64_t hash, const char *name, size_t len, const sstate *st)
{
    centry **pp = find(c, hash, name, len);
    if (*pp) {
        (*pp)->st = *st;
        lru_unlink(c, *pp);
        lru_front(c, *pp);
        return 0;
    }
    centry *e = malloc(sizeof *e + len + 1);
    if (!e) return -ENOMEM;
    e->hash = hash;
    e->len = len;
    e->st = *st;
    memcpy(e->name, name, len);
    e->name[len] = 0;
    e->hnext = NULL;
    *pp = e;
    lru_front(c, e);
    c->n++;
    evict(c);
    return 0;
}

int cache_put(scache *c, uint64_t hash, const char *name, size_t len, const sstate *st)
{
    pthread_mutex_lock(&c->mu);
    c->gen++;
    int rc = insert(c, hash, name, len, st);
    if (rc) {
        /* Cannot cache it: make sure no older state of it survives. */
        centry **pp = find(c, hash, name, len);
        if (*pp) {
            centry *v = *pp;
            *pp = v->hnext;
            lru_unlink(c, v);
            free(v);
            c->n--;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void cache_put_if(scache *c, uint64_t hash, const char *name, size_t len, const sstate *st, uint64_t gen)
{
    pthread_mutex_lock(&c->mu);
    if (c->gen == gen && !*find(c, hash, name, len)) insert(c, hash, name, len, st);
    pthread_mutex_unlock(&c->mu);
}

size_t cache_size(scache *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}
