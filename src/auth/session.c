/*
 * session.c - the admin web UI's sign-in sessions (session.h, SESS-1..3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/session.h"

typedef struct sess {
    uint8_t hash[32]; /* SHA-256 of the token (SESS-1) */
    char csrf[AUTH_SESSION_TOKEN];
    const auth_principal *p; /* referenced; NULL: a free slot */
    uint64_t created, used;
} sess;

struct auth_sessions {
    sess v[AUTH_SESSIONS];
    size_t n;
};

int auth_sessions_new(auth_sessions **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void drop(auth_sessions *s, sess *x)
{
    if (!x->p) return;
    auth_principal_unref(x->p);
    OPENSSL_cleanse(x, sizeof *x);
    s->n--;
}

void auth_sessions_free(auth_sessions *s)
{
    if (!s) return;
    for (size_t i = 0; i < AUTH_SESSIONS; i++)
        drop(s, &s->v[i]);
    free(s);
}

size_t auth_sessions_count(const auth_sessions *s)
{
    return s->n;
}

static void b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = a[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits) out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = 0;
}

static void sha256(const char *s, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    EVP_Digest(s, n, out, &len, EVP_sha256(), NULL);
}

int auth_session_named(const char *cookie)
{
    /* Cookie: a=1; factum_session=TOKEN; b=2 */
    for (const char *p = cookie; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t nl = sizeof AUTH_SESSION_COOKIE - 1;
        if (!strncmp(p, AUTH_SESSION_COOKIE, nl) && p[nl] == '=') return 1;
        p = strchr(p, ';');
    }
    return 0;
}

/* The factum_session cookie's value (its length into *len), or NULL. */
static const char *token_of(const char *cookie, size_t *len)
{
    for (const char *p = cookie; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t nl = sizeof AUTH_SESSION_COOKIE - 1;
        if (!strncmp(p, AUTH_SESSION_COOKIE, nl) && p[nl] == '=') {
            const char *v = p + nl + 1;
            *len = strcspn(v, "; ");
            return *len == AUTH_SESSION_TOKEN - 1 ? v : NULL;
        }
        p = strchr(p, ';');
    }
    return NULL;
}

static int dead(const sess *x, uint64_t now)
{
    const auth_principal *cur = auth_principal_current(x->p);
    return !cur || cur->revoked || now - x->used > AUTH_SESSION_IDLE_NS ||
           now - x->created > AUTH_SESSION_MAX_NS;
}

static sess *lookup(auth_sessions *s, const char *cookie, uint64_t now)
{
    size_t len;
    const char *t = token_of(cookie, &len);
    if (!t) return NULL;
    uint8_t h[32];
    sha256(t, len, h);
    sess *found = NULL;
    for (size_t i = 0; i < AUTH_SESSIONS; i++) { /* every slot: the time does not tell which matched */
        sess *x = &s->v[i];
        if (x->p && CRYPTO_memcmp(x->hash, h, sizeof h) == 0) found = x;
    }
    if (found && now && dead(found, now)) { /* SESS-2 (now 0: ending it anyway) */
        drop(s, found);
        found = NULL;
    }
    return found;
}

int auth_session_create(auth_sessions *s, const auth_principal *p, uint64_t now,
                        char token[AUTH_SESSION_TOKEN], char csrf[AUTH_SESSION_TOKEN])
{
    uint8_t r[64];
    if (RAND_priv_bytes(r, sizeof r) != 1) return -EIO;
    sess *slot = NULL, *lru = NULL;
    for (size_t i = 0; i < AUTH_SESSIONS && !slot; i++) {
        sess *x = &s->v[i];
        if (x->p && dead(x, now)) drop(s, x);
        if (!x->p)
            slot = x;
        else if (!lru || x->used < lru->used)
            lru = x;
    }
    if (!slot) { /* full: the least recently used goes (SESS-2) */
        drop(s, lru);
        slot = lru;
    }
    b64url(r, 32, token);
    b64url(r + 32, 32, csrf);
    OPENSSL_cleanse(r, sizeof r);
    sha256(token, AUTH_SESSION_TOKEN - 1, slot->hash);
    memcpy(slot->csrf, csrf, AUTH_SESSION_TOKEN);
    slot->p = auth_principal_ref(p);
    slot->created = slot->used = now;
    s->n++;
    return 0;
}

const auth_principal *auth_session_find(auth_sessions *s, const char *cookie, uint64_t now, const char **csrf)
{
    sess *x = lookup(s, cookie, now);
    if (!x) return NULL;
    x->used = now;
    if (csrf) *csrf = x->csrf;
    return auth_principal_current(x->p);
}

int auth_session_end(auth_sessions *s, const char *cookie)
{
    sess *x = lookup(s, cookie, 0);
    if (!x) return 0;
    drop(s, x);
    return 1;
}

int auth_session_csrf_ok(auth_sessions *s, const char *cookie, const char *csrf_header, uint64_t now)
{
    sess *x = lookup(s, cookie, now);
    if (!x || !csrf_header || strlen(csrf_header) != AUTH_SESSION_TOKEN - 1) return 0;
    return CRYPTO_memcmp(x->csrf, csrf_header, AUTH_SESSION_TOKEN - 1) == 0;
}
