/*
 * cache.h - the two small tables that make authentication cheap and safe on
 * the loop thread (neither locks: loop thread only, NET-1):
 *
 *  - the credential cache: what a password worker verified, so that the
 *    next call with the same credentials costs an HMAC and a lookup
 *    (microseconds) instead of a KDF (tens of milliseconds). The key is the
 *    HMAC-SHA256, under a random key made at start and never stored, of
 *    `login:password`: the cache never holds a password or anything from
 *    which one could be checked offline after the process is gone. Each
 *    entry names its value (a user) and the value's generation when it was
 *    verified; the owner bumps the generation when the password changes or
 *    the user is disabled or deleted, which invalidates every entry of that
 *    user at once. Bounded: a fixed number of slots, two ways per set; a
 *    new entry replaces the older of its set.
 *
 *  - the failed-login limiter: a token bucket per source address. Every
 *    verification takes a token when it starts and gives it back if it
 *    succeeds (so failures and verifications in flight both count); tokens
 *    come back at a steady rate up to the burst; a source without a token
 *    is refused before any KDF runs.
 *    Bounded: a fixed table; when a probe window is full the entry with
 *    the most tokens (the least suspicious) is replaced.
 */
#ifndef FACTUM_AUTH_CACHE_H
#define FACTUM_AUTH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_MAC_LEN 32

typedef struct auth_cache auth_cache;

/* n_slots (rounded up to a power of two, at least 2). ref/unref keep a
 * value alive while an entry names it (may be NULL). 0 or -ENOMEM/-EIO. */
int auth_cache_new(size_t n_slots, void (*ref)(void *v), void (*unref)(void *v), auth_cache **out);
void auth_cache_free(auth_cache *c);
/* The key of `login` with `password`. 0 or -EIO. */
int auth_cache_mac(auth_cache *c, const char *login, const char *pw, size_t pw_len, uint8_t mac[AUTH_MAC_LEN]);
/* The value cached under mac and its generation then, or NULL. The caller
 * compares the generation with the value's current one. */
void *auth_cache_get(auth_cache *c, const uint8_t mac[AUTH_MAC_LEN], uint64_t *gen);
void auth_cache_put(auth_cache *c, const uint8_t mac[AUTH_MAC_LEN], void *v, uint64_t gen);
/* Drop every entry naming v (when v goes away). */
void auth_cache_forget(auth_cache *c, const void *v);
typedef struct auth_cache_stats {
    uint64_t hits, misses, entries, capacity;
} auth_cache_stats;
void auth_cache_get_stats(const auth_cache *c, auth_cache_stats *st);

typedef struct auth_limiter auth_limiter;

/* n sources at most; burst failures at once, then per_minute. 0 or -ENOMEM. */
int auth_limiter_new(size_t n, unsigned burst, unsigned per_minute, auth_limiter **out);
void auth_limiter_free(auth_limiter *l);
/* Has `source` no failure left (refuse it without verifying)? 1 or 0. */
int auth_limiter_blocked(auth_limiter *l, const char *source, uint64_t now_ns);
/* Count a failure of `source`; 1 if this one used its last token (log it). */
int auth_limiter_fail(auth_limiter *l, const char *source, uint64_t now_ns);
/* Give back a token taken by auth_limiter_fail (the login it stood for
 * succeeded): a source's tokens bound its failures and the verifications it
 * has in flight. */
void auth_limiter_refund(auth_limiter *l, const char *source, uint64_t now_ns);

#endif
