/*
 * memtable.c - the index's in-memory tables (memtable.h): a hash table of
 * per-stream version vectors, an open-addressing table of event ids, and the
 * streams created in position order.
 */
#include "index/memtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Memory: the memtable is filled by whichever thread leads the writer and
 * freed by the index thread, in many small pieces. Through malloc that
 * fragments every thread's arena and resident memory creeps up with the
 * number of events written. So the memtable takes its memory straight from
 * mmap in large pieces and gives it all back when it is freed: the
 * per-stream vectors are bump-allocated from 1 MiB chunks (a grown vector
 * leaves its old space behind, at most doubling the space used) and the
 * hash tables are mapped whole. The mappings are populated when made
 * (MAP_POPULATE): a hash probe reads a slot before it writes it, and on a
 * lazily mapped table that read maps the shared zero page, so the write
 * then takes a second fault and a TLB shootdown across the CPUs. Every
 * page of a table is written before it is frozen anyway; populating up
 * front cost nothing in memory and took 25% off writing small events. */

#define MT_CHUNK (1u << 20)

struct mt_chunk {
    mt_chunk *next;
    size_t used, size;
};

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void *mt_alloc(memtable *m, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    mt_chunk *c = m->chunks;
    if (!c || c->size - c->used < bytes) {
        size_t size = bytes + sizeof *c > MT_CHUNK ? bytes + sizeof *c : MT_CHUNK;
        size = (size + 4095) & ~(size_t)4095;
        mt_chunk *n = map_zeroed(size);
        if (!n) return NULL;
        n->size = size;
        n->used = (sizeof *n + 15) & ~(size_t)15;
        n->next = m->chunks;
        m->chunks = c = n;
    }
    void *p = (char *)c + c->used;
    c->used += bytes;
    return p;
}

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

memtable *mt_new(void)
{
    memtable *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    atomic_init(&m->refs, 1);
    pthread_rwlock_init(&m->lock, NULL);
    return m;
}

void mt_ref(memtable *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void mt_unref(memtable *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    while (m->chunks) {
        mt_chunk *c = m->chunks;
        m->chunks = c->next;
        munmap(c, c->size);
    }
    if (m->st) munmap(m->st, m->st_bytes);
    if (m->ids) munmap(m->ids, m->id_bytes);
    if (m->cat) munmap(m->cat, m->cat_bytes);
    if (m->pos) munmap(m->pos, m->pos_bytes);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

static mt_stream *st_slot(mt_stream *tab, size_t cap, uint64_t hash)
{
    size_t i = mix(hash) & (cap - 1);
    while (tab[i].kv && tab[i].hash != hash)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static int st_grow(memtable *m)
{
    size_t cap = m->st_cap ? m->st_cap * 2 : 1024;
    mt_stream *t = map_zeroed(cap * sizeof *t);
    if (!t) return -ENOMEM;
    for (size_t i = 0; i < m->st_cap; i++)
        if (m->st[i].kv) *st_slot(t, cap, m->st[i].hash) = m->st[i];
    if (m->st) munmap(m->st, m->st_bytes);
    m->st = t;
    m->st_cap = cap;
    m->st_bytes = cap * sizeof *t;
    return 0;
}

static int id_grow(memtable *m)
{
    size_t cap = m->id_cap ? m->id_cap * 2 : 1024;
    idx_entry *t = map_zeroed(cap * sizeof *t);
    if (!t) return -ENOMEM;
    for (size_t i = 0; i < m->id_cap; i++) {
        if (!m->ids[i].v) continue;
        size_t j = mix(m->ids[i].k1 ^ m->ids[i].k2) & (cap - 1);
        while (t[j].v)
            j = (j + 1) & (cap - 1);
        t[j] = m->ids[i];
    }
    if (m->ids) munmap(m->ids, m->id_bytes);
    m->ids = t;
    m->id_cap = cap;
    m->id_bytes = cap * sizeof *t;
    return 0;
}

int mt_add(memtable *m, const idx_entry *const e[IDX_KINDS], const size_t n[IDX_KINDS])
{
    for (size_t i = 0; i < n[IDX_STREAM]; i++) {
        const idx_entry *x = &e[IDX_STREAM][i];
        if ((m->st_n + 1) * 2 > m->st_cap && st_grow(m)) return -ENOMEM;
        mt_stream *s = st_slot(m->st, m->st_cap, x->k1);
        if (!s->kv) {
            if (!(s->kv = mt_alloc(m, 4 * sizeof *s->kv))) return -ENOMEM;
            s->hash = x->k1;
            s->n = 0;
            s->cap = 4;
            m->st_n++;
        }
        if (s->n == s->cap) {
            idx_kv *nk = mt_alloc(m, (size_t)s->cap * 2 * sizeof *nk);
            if (!nk) return -ENOMEM;
            memcpy(nk, s->kv, s->n * sizeof *nk);
            s->kv = nk;
            s->cap *= 2;
        }
        /* Versions of one stream arrive in order; streams whose names share
         * a hash interleave, so keep the vector sorted (IDX-3). */
        size_t at = s->n;
        while (at > 0 && s->kv[at - 1].k2 > x->k2)
            at--;
        if (at < s->n) memmove(&s->kv[at + 1], &s->kv[at], (s->n - at) * sizeof *s->kv);
        s->kv[at] = (idx_kv){x->k2, x->v};
        s->n++;
        m->entries++;
    }
    for (size_t i = 0; i < n[IDX_ID]; i++) {
        const idx_entry *x = &e[IDX_ID][i];
        if ((m->id_n + 1) * 2 > m->id_cap && id_grow(m)) return -ENOMEM;
        size_t j = mix(x->k1 ^ x->k2) & (m->id_cap - 1);
        while (m->ids[j].v)
            j = (j + 1) & (m->id_cap - 1);
        m->ids[j] = *x;
        m->id_n++;
    }
    for (size_t i = 0; i < n[IDX_CAT]; i++) {
        if (m->cat_n == m->cat_cap) {
            size_t cap = m->cat_cap ? m->cat_cap * 2 : 256;
            idx_entry *nc = map_zeroed(cap * sizeof *nc);
            if (!nc) return -ENOMEM;
            if (m->cat) {
                memcpy(nc, m->cat, m->cat_n * sizeof *nc);
                munmap(m->cat, m->cat_bytes);
            }
            m->cat = nc;
            m->cat_cap = cap;
            m->cat_bytes = cap * sizeof *nc;
        }
        m->cat[m->cat_n++] = e[IDX_CAT][i];
    }
    return 0;
}

int mt_pos_add(memtable *m, const uint64_t *los, size_t n)
{
    if (m->pos_n + n > m->pos_cap) {
        size_t cap = m->pos_cap ? m->pos_cap : 4096;
        while (cap < m->pos_n + n)
            cap *= 2;
        uint64_t *np = map_zeroed(cap * sizeof *np);
        if (!np) return -ENOMEM;
        if (m->pos) {
            memcpy(np, m->pos, m->pos_n * sizeof *np);
            munmap(m->pos, m->pos_bytes);
        }
        m->pos = np;
        m->pos_cap = cap;
        m->pos_bytes = cap * sizeof *np;
    }
    memcpy(m->pos + m->pos_n, los, n * sizeof *los);
    m->pos_n += n;
    return 0;
}

const mt_stream *mt_stream_find(const memtable *m, uint64_t hash)
{
    if (!m->st_cap) return NULL;
    const mt_stream *s = st_slot(m->st, m->st_cap, hash);
    return s->kv ? s : NULL;
}

size_t mt_lower_bound(const mt_stream *s, uint64_t v)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->kv[mid].k2 < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t mt_id_find(const memtable *m, uint64_t hi, uint64_t lo, uint64_t *los, size_t max)
{
    if (!m->id_cap) return 0;
    size_t n = 0;
    size_t j = mix(hi ^ lo) & (m->id_cap - 1);
    while (m->ids[j].v) {
        if (m->ids[j].k1 == hi && m->ids[j].k2 == lo && n < max) los[n++] = m->ids[j].v;
        j = (j + 1) & (m->id_cap - 1);
    }
    return n;
}

size_t mt_cat_lower_bound(const memtable *m, uint64_t k1)
{
    size_t lo = 0, hi = m->cat_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->cat[mid].k1 < k1)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int cmp_stream_ptr(const void *a, const void *b)
{
    uint64_t x = (*(const mt_stream *const *)a)->hash, y = (*(const mt_stream *const *)b)->hash;
    return x < y ? -1 : x > y;
}

static int cmp_entry(const void *a, const void *b)
{
    const idx_entry *x = a, *y = b;
    if (x->k1 != y->k1) return x->k1 < y->k1 ? -1 : 1;
    if (x->k2 != y->k2) return x->k2 < y->k2 ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v; /* v = log offset: insertion order */
}

int mt_sorted(const memtable *m, int kind, idx_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t total = kind == IDX_STREAM ? m->entries : kind == IDX_ID ? m->id_n : m->cat_n;
    if (!total) return 0;
    idx_entry *e = malloc(total * sizeof *e);
    if (!e) return -ENOMEM;
    size_t k = 0;
    if (kind == IDX_STREAM) {
        const mt_stream **ps = malloc(m->st_n * sizeof *ps);
        if (!ps) {
            free(e);
            return -ENOMEM;
        }
        size_t ns = 0;
        for (size_t i = 0; i < m->st_cap; i++)
            if (m->st[i].kv) ps[ns++] = &m->st[i];
        qsort(ps, ns, sizeof *ps, cmp_stream_ptr);
        for (size_t i = 0; i < ns; i++)
            for (uint32_t j = 0; j < ps[i]->n; j++)
                e[k++] = (idx_entry){ps[i]->hash, ps[i]->kv[j].k2, ps[i]->kv[j].v};
        free(ps);
    } else if (kind == IDX_ID) {
        for (size_t i = 0; i < m->id_cap; i++)
            if (m->ids[i].v) e[k++] = m->ids[i];
        qsort(e, k, sizeof *e, cmp_entry);
    } else {
        memcpy(e, m->cat, m->cat_n * sizeof *e);
        k = m->cat_n;
    }
    *out = e;
    *n = k;
    return 0;
}
