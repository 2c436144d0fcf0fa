/*
 * cache.c - the credential cache and the failed-login limiter of cache.h.
 */
#include "auth/cache.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct centry {
    uint8_t mac[AUTH_MAC_LEN];
    void *v; /* NULL: free */
    uint64_t gen;
    uint64_t stamp; /* for replacing the older of a set */
} centry;

struct auth_cache {
    centry *slots;
    size_t mask; /* sets - 1 */
    void (*ref)(void *);
    void (*unref)(void *);
    EVP_MAC *mac;
    EVP_MAC_CTX *proto; /* keyed once; each use starts from a copy */
    uint64_t clock;
    uint64_t hits, misses, entries;
};

int auth_cache_new(size_t n_slots, void (*ref)(void *), void (*unref)(void *), auth_cache **out)
{
    *out = NULL;
    size_t sets = 1;
    while (sets * 2 < n_slots) sets <<= 1;
    auth_cache *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->slots = calloc(sets * 2, sizeof *c->slots);
    c->mask = sets - 1;
    c->ref = ref;
    c->unref = unref;
    if (!c->slots) goto nomem;
    uint8_t key[32];
    c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c->proto = c->mac ? EVP_MAC_CTX_new(c->mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!c->proto || RAND_bytes(key, sizeof key) != 1 || EVP_MAC_init(c->proto, key, sizeof key, params) != 1) {
        OPENSSL_cleanse(key, sizeof key);
        auth_cache_free(c);
        return -EIO;
    }
    OPENSSL_cleanse(key, sizeof key);
    *out = c;
    return 0;
nomem:
    auth_cache_free(c);
    return -ENOMEM;
}

void auth_cache_free(auth_cache *c)
{
    if (!c) return;
    if (c->slots)
        for (size_t i = 0; i < (c->mask + 1) * 2; i++)
            if (c->slots[i].v && c->unref) c->unref(c->slots[i].v);
    free(c->slots);
    EVP_MAC_CTX_free(c->proto);
    EVP_MAC_free(c->mac);
    free(c);
}

int auth_cache_mac(auth_cache *c, const char *login, const char *pw, size_t pw_len, uint8_t mac[AUTH_MAC_LEN])
{
    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(c->proto);
    size_t n = 0;
    /* login cannot hold ':' (passwd.h), so login ':' password is unambiguous */
    int ok = m && EVP_MAC_update(m, (const uint8_t *)login, strlen(login)) == 1 &&
             EVP_MAC_update(m, (const uint8_t *)":", 1) == 1 &&
             (pw_len == 0 || EVP_MAC_update(m, (const uint8_t *)pw, pw_len) == 1) &&
             EVP_MAC_final(m, mac, &n, AUTH_MAC_LEN) == 1 && n == AUTH_MAC_LEN;
    EVP_MAC_CTX_free(m);
    return ok ? 0 : -EIO;
}

static centry *set_of(auth_cache *c, const uint8_t mac[AUTH_MAC_LEN])
{
    uint64_t h;
    memcpy(&h, mac, sizeof h); /* the MAC is uniformly distributed */
    return &c->slots[(h & c->mask) * 2];
}

void *auth_cache_get(auth_cache *c, const uint8_t mac[AUTH_MAC_LEN], uint64_t *gen)
{
    centry *s = set_of(c, mac);
    for (int i = 0; i < 2; i++)
        if (s[i].v && CRYPTO_memcmp(s[i].mac, mac, AUTH_MAC_LEN) == 0) {
            s[i].stamp = ++c->clock;
            c->hits++;
            *gen = s[i].gen;
            return s[i].v;
        }
    c->misses++;
    return NULL;
}

void auth_cache_put(auth_cache *c, const uint8_t mac[AUTH_MAC_LEN], void *v, uint64_t gen)
{
    centry *s = set_of(c, mac), *e = NULL;
    for (int i = 0; i < 2 && !e; i++)
        if (s[i].v && CRYPTO_memcmp(s[i].mac, mac, AUTH_MAC_LEN) == 0) e = &s[i];
    if (!e) e = !s[0].v ? &s[0] : !s[1].v ? &s[1] : s[0].stamp <= s[1].stamp ? &s[0] : &s[1];
    if (c->ref) c->ref(v);
    if (e->v) {
        if (c->unref) c->unref(e->v);
    } else {
        c->entries++;
    }
    memcpy(e->mac, mac, AUTH_MAC_LEN);
    e->v = v;
    e->gen = gen;
    e->stamp = ++c->clock;
}

void auth_cache_forget(auth_cache *c, const void *v)
{
    for (size_t i = 0; i < (c->mask + 1) * 2; i++)
        if (c->slots[i].v == v) {
            if (c->unref) c->unref(c->slots[i].v);
            c->slots[i].v = NULL;
            c->entries--;
        }
}

void auth_cache_get_stats(const auth_cache *c, auth_cache_stats *st)
{
    st->hits = c->hits;
    st->misses = c->misses;
    st->entries = c->entries;
    st->capacity = (c->mask + 1) * 2;
}

/* ---- the failed-login limiter ---------------------------------------------- */

#define PROBE 8
#define SRC_MAX 64

typedef struct lentry {
    char src[SRC_MAX]; /* "" free */
    double tokens;
    uint64_t at; /* when tokens was computed */
} lentry;

struct auth_limiter {
    lentry *t;
    size_t n;
    double burst, per_ns;
};

int auth_limiter_new(size_t n, unsigned burst, unsigned per_minute, auth_limiter **out)
{
    *out = NULL;
    auth_limiter *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->n = n < PROBE ? PROBE : n;
    l->t = calloc(l->n, sizeof *l->t);
    if (!l->t) {
        free(l);
        return -ENOMEM;
    }
    l->burst = burst ? burst : 1;
    l->per_ns = per_minute / 60e9;
    *out = l;
    return 0;
}

void auth_limiter_free(auth_limiter *l)
{
    if (!l) return;
    free(l->t);
    free(l);
}

static uint64_t hash_src(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: the table is bounded, collisions only cost probes */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static double refill(auth_limiter *l, lentry *e, uint64_t now)
{
    if (now > e->at) {
        e->tokens += (double)(now - e->at) * l->per_ns;
        if (e->tokens > l->burst) e->tokens = l->burst;
        e->at = now;
    }
    return e->tokens;
}

/* The entry of src, or NULL (create: a new one, replacing the least
 * suspicious of its window when all are taken). */
static lentry *find(auth_limiter *l, const char *src, uint64_t now, int create)
{
    size_t h = (size_t)(hash_src(src) % l->n);
    lentry *victim = NULL;
    double most = -1;
    for (size_t i = 0; i < PROBE; i++) {
        lentry *e = &l->t[(h + i) % l->n];
        if (e->src[0] && strcmp(e->src, src) == 0) return e;
        if (!create) continue;
        double tk = e->src[0] ? refill(l, e, now) : l->burst + 1; /* a free slot first */
        if (tk > most) {
            most = tk;
            victim = e;
        }
    }
    if (!create) return NULL;
    snprintf(victim->src, sizeof victim->src, "%s", src);
    victim->tokens = l->burst;
    victim->at = now;
    return victim;
}

int auth_limiter_blocked(auth_limiter *l, const char *source, uint64_t now_ns)
{
    lentry *e = find(l, source, now_ns, 0);
    return e && refill(l, e, now_ns) < 1.0;
}

int auth_limiter_fail(auth_limiter *l, const char *source, uint64_t now_ns)
{
    lentry *e = find(l, source, now_ns, 1);
    double before = refill(l, e, now_ns);
    e->tokens = before >= 1.0 ? before - 1.0 : 0;
    return before >= 1.0 && e->tokens < 1.0;
}

void auth_limiter_refund(auth_limiter *l, const char *source, uint64_t now_ns)
{
    lentry *e = find(l, source, now_ns, 0);
    if (!e) return; /* replaced meanwhile: it starts full anyway */
    refill(l, e, now_ns);
    e->tokens = e->tokens + 1.0 > l->burst ? l->burst : e->tokens + 1.0;
}
