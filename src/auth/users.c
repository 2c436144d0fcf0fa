/*
 * users.c - the users of users.h: their records in the store and in memory,
 * the authentication hook every call and HTTP request goes through, and the
 * changes of the Users service. Loop thread only, but for the work the
 * password workers (pool.c) do on copies and the store's append callbacks,
 * which only post back (USERS-1).
 */
#include "auth/users.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/cache.h"
#include "auth/session.h"
#include "auth/pool.h"
#include "base/base.h"
#include "base/json.h"

#define DEFAULT_PASSWORD     "changeit"
#define USERS_STREAM         "$users"
#define NOTIFY_STREAM        "$users-password-notifications"
#define USER_PREFIX          "$user-"
#define USER_ACL             "{\"$w\":\"$admins\",\"$d\":\"$admins\",\"$mw\":\"$admins\"}"
#define MAX_GROUPS           64
#define GRPC_UNAUTHENTICATED 16
#define GRPC_UNAVAILABLE     14
#define UNAUTH_MESSAGE       "Unauthenticated"

typedef struct waiter {
    struct waiter *next;
    net_auth *a;
} waiter;

/* A verification in flight: one KDF for every call that brought the same
 * credentials meanwhile. */
typedef struct vjob {
    auth_job job;
    auth_users *u;
    struct vjob *next; /* u->verifying */
    uint8_t mac[AUTH_MAC_LEN];
    char login[AUTH_LOGIN_MAX + 1];
    char pw[AUTH_PASSWORD_MAX + 1];
    size_t pw_len;
    auth_hash hash;  /* a copy: the worker reads nothing shared */
    auth_user *user; /* NULL: unknown login (checked against the dummy hash) */
    uint64_t gen;
    int result;
    char peer[64]; /* whose token it took (USERS-5), or "" */
    waiter *waiters;
} vjob;

struct auth_users {
    auth_users_options o;
    factum_store *store;
    net_server *net;
    void (*on_change)(void *arg); /* auth_users_set_on_change */
    void *on_change_arg;
    auth_user **v; /* sorted by login */
    size_t n, cap;
    auth_cache *cache;
    auth_limiter *limiter;
    auth_pool *pool;
    auth_hash dummy; /* USERS-4 */
    vjob *verifying;
    auth_sessions *sessions; /* the admin UI's sign-ins (session.h) */
    int closing; /* auth_users_stop ran: the store may be closed, answers only */
    uint64_t epoch; /* USERS-7: bumped by every change to any user */
    uint64_t memo_hits;
    auth_users_stats st;
};

/* USERS-7: what a connection was last authenticated by. */
typedef struct auth_memo {
    uint64_t epoch;
    const auth_principal *p; /* a reference */
    size_t len;
    char hdr[]; /* the authorization header's value */
} auth_memo;
#define MEMO_MAX_HEADER 1024

static void ulog(auth_users *u, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ulog(auth_users *u, int level, const char *fmt, ...)
{
    if (!u->o.log_fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    u->o.log_fn(u->o.log_ctx, level, msg);
}

void auth_principal_release(void *p)
{
    auth_principal_unref(p);
}

/* ---- user records ------------------------------------------------------------ */

static void user_ref(void *p)
{
    ((auth_user *)p)->refs++;
}

static void user_unref(void *p)
{
    auth_user *x = p;
    if (!x || --x->refs > 0) return;
    free(x->login);
    free(x->full_name);
    for (size_t i = 0; i < x->n_groups; i++)
        free(x->groups[i]);
    free(x->groups);
    auth_principal_unref(x->principal);
    OPENSSL_cleanse(&x->hash, sizeof x->hash);
    free(x);
}

/* Set name and groups (copies) and the principal they make. */
static int user_set_identity(auth_user *x, const char *full, const char *const *groups, size_t ng)
{
    char *f = strdup(full ? full : "");
    char **g = ng ? calloc(ng, sizeof *g) : NULL;
    auth_principal *p = NULL;
    size_t i = 0;
    if (!f || (ng && !g)) goto nomem;
    for (; i < ng; i++)
        if (!(g[i] = strdup(groups[i]))) goto nomem;
    if (auth_principal_new(x->login, (const char *const *)g, ng, &p)) goto nomem;
    free(x->full_name);
    for (size_t k = 0; k < x->n_groups; k++)
        free(x->groups[k]);
    free(x->groups);
    if (x->principal)
        auth_principal_supersede(x->principal, p); /* PRINCIPAL-1: open calls act as it is now */
    auth_principal_unref(x->principal);
    x->full_name = f;
    x->groups = g;
    x->n_groups = ng;
    x->principal = p;
    return 0;
nomem:
    while (i)
        free(g[--i]);
    free(g);
    free(f);
    return -ENOMEM;
}

/* PRINCIPAL-1: the calls authenticated as x until now act as nobody (its
 * credentials changed, or it was disabled); later ones get a new principal.
 * Out of memory, x keeps the revoked one: its logins fail until a restart. */
static int user_revoke(auth_user *x)
{
    auth_principal *p;
    auth_principal_supersede(x->principal, NULL);
    if (auth_principal_new(x->login, (const char *const *)x->groups, x->n_groups, &p)) return -ENOMEM;
    auth_principal_unref(x->principal);
    x->principal = p;
    return 0;
}

static auth_user *user_new(const char *login)
{
    auth_user *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->refs = 1;
    x->login = strdup(login);
    if (!x->login || user_set_identity(x, "", NULL, 0)) {
        user_unref(x);
        return NULL;
    }
    return x;
}

/* The record's JSON (users.h). */
static int record_json(base_buf *b, const char *login, const char *full, char *const *groups, size_t ng,
                       const auth_hash *h, int disabled)
{
    char hash[4 * (AUTH_KEY_MAX + 2) / 3 + 4], salt[4 * (sizeof h->salt + 2) / 3 + 4];
    auth_b64_encode(h->key, h->key_len, hash);
    auth_b64_encode(h->salt, h->salt_len, salt);
    int rc = base_buf_append(b, "{\"loginName\":", 13);
    if (!rc) rc = json_write_string(b, login, strlen(login));
    if (!rc) rc = base_buf_append(b, ",\"fullName\":", 12);
    if (!rc) rc = json_write_string(b, full ? full : "", full ? strlen(full) : 0);
    if (!rc) rc = base_buf_append(b, ",\"groups\":[", 11);
    for (size_t i = 0; i < ng && !rc; i++) {
        if (i) rc = base_buf_append(b, ",", 1);
        if (!rc) rc = json_write_string(b, groups[i], strlen(groups[i]));
    }
    if (!rc)
        rc = base_buf_printf(b, "],\"hash\":\"%s\",\"salt\":\"%s\",\"disabled\":%s", hash, salt,
                             disabled ? "true" : "false");
    if (!rc && h->alg == AUTH_KDF_SCRYPT)
        rc = base_buf_printf(b, ",\"kdf\":{\"alg\":\"scrypt\",\"n\":%llu,\"r\":%u,\"p\":%u}",
                             (unsigned long long)h->n, h->r, h->p);
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc;
}

static const char *jstr(const json_value *o, const char *key)
{
    const json_value *v = json_get(o, key);
    return v && v->type == JSON_STRING ? v->str : NULL;
}

/* Fill x from a record; 0 or -EINVAL (the record is not one we can use). */
static int record_parse(auth_user *x, const uint8_t *data, size_t len)
{
    json_value *root = NULL;
    int rc = -EINVAL;
    if (json_parse((const char *)data, len, &root) || root->type != JSON_OBJECT) goto out;
    const char *hash = jstr(root, "hash"), *salt = jstr(root, "salt");
    if (!hash || !salt) goto out;
    auth_hash h;
    memset(&h, 0, sizeof h);
    if (auth_b64_decode(hash, strlen(hash), h.key, sizeof h.key, &h.key_len) || !h.key_len ||
        auth_b64_decode(salt, strlen(salt), h.salt, sizeof h.salt, &h.salt_len) || !h.salt_len)
        goto out;
    const json_value *kdf = json_get(root, "kdf");
    if (kdf && kdf->type == JSON_OBJECT) {
        const char *alg = jstr(kdf, "alg");
        int64_t n, r, p;
        if (!alg || strcmp(alg, "scrypt") || json_int64(json_get(kdf, "n"), &n) ||
            json_int64(json_get(kdf, "r"), &r) || json_int64(json_get(kdf, "p"), &p) || n < 2 || r < 1 ||
            p < 1 || r > 1024 || p > 1024)
            goto out;
        h.alg = AUTH_KDF_SCRYPT;
        h.n = (uint64_t)n;
        h.r = (uint32_t)r;
        h.p = (uint32_t)p;
    } else {
        h.alg = AUTH_KDF_PBKDF2_SHA1; /* KurrentDB's own */
        h.n = 1000;
    }
    const json_value *g = json_get(root, "groups");
    const char *groups[MAX_GROUPS];
    size_t ng = 0;
    if (g && g->type == JSON_ARRAY)
        for (size_t i = 0; i < g->n && ng < MAX_GROUPS; i++)
            if (g->items[i]->type == JSON_STRING) groups[ng++] = g->items[i]->str;
    const json_value *d = json_get(root, "disabled");
    if (user_set_identity(x, jstr(root, "fullName"), groups, ng)) {
        rc = -ENOMEM;
        goto out;
    }
    x->hash = h;
    x->disabled = d && d->type == JSON_TRUE;
    rc = 0;
out:
    json_free(root);
    return rc;
}

/* ---- the table ----------------------------------------------------------------- */

static size_t lower_bound(auth_users *u, const char *login, int *found)
{
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(u->v[mid]->login, login);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static auth_user *find(auth_users *u, const char *login)
{
    int f;
    size_t i = lower_bound(u, login, &f);
    return f ? u->v[i] : NULL;
}

/* Put x in the table (the table takes the caller's reference), replacing a
 * user of the same login. */
static int table_put(auth_users *u, auth_user *x)
{
    int f;
    size_t i = lower_bound(u, x->login, &f);
    if (f) {
        user_unref(u->v[i]);
        u->v[i] = x;
        return 0;
    }
    if (u->n == u->cap) {
        size_t nc = u->cap ? u->cap * 2 : 16;
        auth_user **nv = realloc(u->v, nc * sizeof *nv);
        if (!nv) return -ENOMEM;
        u->v = nv;
        u->cap = nc;
    }
    memmove(&u->v[i + 1], &u->v[i], (u->n - i) * sizeof *u->v);
    u->v[i] = x;
    u->n++;
    return 0;
}

static void table_remove(auth_users *u, const char *login)
{
    int f;
    size_t i = lower_bound(u, login, &f);
    if (!f) return;
    auth_user *x = u->v[i];
    memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof *u->v);
    u->n--;
    x->deleted = 1;
    x->cred_gen++;
    u->epoch++; /* USERS-7 */
    auth_principal_supersede(x->principal, NULL); /* PRINCIPAL-1 */
    auth_cache_forget(u->cache, x);
    user_unref(x);
}

const auth_user *auth_users_find(auth_users *u, const char *login)
{
    return find(u, login);
}

const auth_user *const *auth_users_all(auth_users *u, size_t *n)
{
    *n = u->n;
    return (const auth_user *const *)u->v;
}

/* ---- loading and the default users (before the loop: blocking is fine) -------- */

static int load_user(auth_users *u, const char *login)
{
    if (find(u, login) || !auth_login_valid(login, strlen(login))) return 0;
    char stream[AUTH_LOGIN_MAX + 8];
    snprintf(stream, sizeof stream, USER_PREFIX "%s", login);
    factum_event ev;
    size_t n = 0;
    int rc = factum_read_stream(u->store, stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || (!rc && !n)) return 0; /* deleted */
    if (rc) return rc;
    auth_user *x = user_new(login);
    if (!x) return -ENOMEM;
    rc = record_parse(x, ev.data, ev.data_len);
    if (rc) {
        user_unref(x);
        if (rc == -ENOMEM) return rc;
        ulog(u, 1, "user '%s': its record in %s cannot be read; the user cannot log in", login, stream);
        return 0;
    }
    x->version = (int64_t)ev.version;
    x->updated_ns = ev.timestamp_ns;
    rc = table_put(u, x);
    if (rc) user_unref(x);
    return rc;
}

static int load_all(auth_users *u)
{
    factum_event ev[128];
    uint64_t from = 0;
    for (;;) {
        size_t n = 0;
        uint64_t next = FACTUM_END;
        int rc = factum_read_stream(u->store, USERS_STREAM, from, FACTUM_FORWARD, ev, 128, &n, &next);
        if (rc == FACTUM_ENOTFOUND) return 0;
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            char login[AUTH_LOGIN_MAX + 1];
            if (ev[i].data_len == 0 || ev[i].data_len > AUTH_LOGIN_MAX) continue;
            memcpy(login, ev[i].data, ev[i].data_len);
            login[ev[i].data_len] = 0;
            if ((rc = load_user(u, login))) return rc;
        }
        if (next == FACTUM_END || n == 0) return 0;
        from = next;
    }
}

/* Create a default user if its stream was never written; *created says so. */
static int create_default(auth_users *u, const char *login, const char *full, const char *group, int first,
                          int *created)
{
    *created = 0;
    char stream[64], meta[64];
    snprintf(stream, sizeof stream, USER_PREFIX "%s", login);
    snprintf(meta, sizeof meta, "$$" USER_PREFIX "%s", login);
    factum_stream_info info;
    int rc = factum_stream_get_info(u->store, stream, &info);
    if (rc) return rc;
    if (info.status != FACTUM_STREAM_NONE) return 0; /* it was created (and maybe deleted) once */
    auth_hash h;
    auth_hash_params_default(&h);
    if ((rc = auth_hash_make(&h, DEFAULT_PASSWORD, strlen(DEFAULT_PASSWORD)))) return rc;
    char *groups[1] = {(char *)group};
    base_buf rec = {0};
    if ((rc = record_json(&rec, login, full, groups, 1, &h, 0))) goto out;
    const char *acl = "{\"$acl\":" USER_ACL "}";
    const char *notify_meta = "{\"$maxAge\":3600}";
    factum_event_data ev[4] = {
        {.type = "$UserCreated", .flags = FACTUM_EVENT_JSON, .data = rec.data, .data_len = rec.len},
        {.type = "$metadata", .flags = FACTUM_EVENT_JSON, .data = acl, .data_len = strlen(acl)},
        {.type = "$User", .data = login, .data_len = strlen(login)},
        {.type = "$metadata",
         .flags = FACTUM_EVENT_JSON,
         .data = notify_meta,
         .data_len = strlen(notify_meta)},
    };
    factum_append_req req[4] = {
        {stream, FACTUM_NO_STREAM, &ev[0], 1},
        {meta, FACTUM_ANY, &ev[1], 1},
        {USERS_STREAM, FACTUM_ANY, &ev[2], 1},
        {"$$" NOTIFY_STREAM, FACTUM_ANY, &ev[3], 1},
    };
    rc = factum_append_multi(u->store, req, first ? 4 : 3, NULL, NULL);
    if (rc) goto out;
    ulog(u, 2, "the '%s' user account has been created (password '%s')", login, DEFAULT_PASSWORD);
    *created = 1;
    rc = load_user(u, login);
out:
    base_buf_free(&rec);
    OPENSSL_cleanse(&h, sizeof h);
    return rc;
}

void auth_users_options_init(auth_users_options *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 2;
    o->max_queue = 64;
    o->cache_slots = 4096;
    o->fail_burst = 10;
    o->fail_per_minute = 10;
}

static int post_to_net(void *ctx, void (*fn)(void *), void *arg)
{
    auth_users *u = ctx;
    return net_post(u->net, fn, arg);
}

int auth_users_open(const auth_users_options *o, auth_users **out)
{
    *out = NULL;
    auth_users *u = calloc(1, sizeof *u);
    if (!u) return -ENOMEM;
    u->o = *o;
    u->store = o->store;
    int rc = auth_cache_new(o->cache_slots, user_ref, user_unref, &u->cache);
    if (!rc && o->fail_burst) rc = auth_limiter_new(4096, o->fail_burst, o->fail_per_minute, &u->limiter);
    if (!rc) rc = auth_sessions_new(&u->sessions);
    if (rc) goto fail;
    /* USERS-4: unknown logins are checked against this (a random password). */
    auth_hash_params_default(&u->dummy);
    uint8_t rnd[16];
    factum_uuid_v4(rnd);
    if ((rc = auth_hash_make(&u->dummy, (const char *)rnd, sizeof rnd))) goto fail;
    if ((rc = load_all(u))) goto fail;
    int first = u->n == 0, created[2];
    if ((rc = create_default(u, AUTH_USER_ADMIN, "factum Administrator", AUTH_ROLE_ADMINS, first,
                             &created[0])))
        goto fail;
    if ((rc = create_default(u, AUTH_USER_OPS, "factum Operations", AUTH_ROLE_OPS, 0, &created[1])))
        goto fail;
    static const char *const defaults[] = {AUTH_USER_ADMIN, AUTH_USER_OPS};
    for (int i = 0; i < 2; i++) {
        auth_user *x = find(u, defaults[i]);
        /* just created: it has the default password without asking a KDF */
        if (x && !x->disabled &&
            (created[i] || auth_hash_verify(&x->hash, DEFAULT_PASSWORD, strlen(DEFAULT_PASSWORD)) == 1))
            ulog(u, 1,
                 "the '%s' user still has the default password '%s': change it (factum user change-password "
                 "%s, "
                 "or the Users service)",
                 defaults[i], DEFAULT_PASSWORD, defaults[i]);
    }
    if ((rc = auth_pool_new(o->workers, o->max_queue, post_to_net, u, &u->pool))) goto fail;
    *out = u;
    return 0;
fail:
    auth_users_free(u);
    return rc;
}

void auth_users_set_net(auth_users *u, net_server *net)
{
    u->net = net;
}

void auth_users_set_on_change(auth_users *u, void (*fn)(void *arg), void *arg)
{
    u->on_change = fn;
    u->on_change_arg = arg;
}

void auth_users_stop(auth_users *u)
{
    if (!u) return;
    u->closing = 1;
    auth_pool_free(u->pool);
    u->pool = NULL;
}

void auth_users_free(auth_users *u)
{
    if (!u) return;
    auth_users_stop(u);
    for (size_t i = 0; i < u->n; i++)
        user_unref(u->v[i]);
    free(u->v);
    auth_cache_free(u->cache);
    auth_limiter_free(u->limiter);
    auth_sessions_free(u->sessions);
    free(u);
}

auth_sessions *auth_users_sessions(auth_users *u)
{
    return u ? u->sessions : NULL;
}

void auth_users_get_stats(auth_users *u, auth_users_stats *st)
{
    *st = u->st;
    st->users = u->n;
    auth_cache_stats cs;
    auth_cache_get_stats(u->cache, &cs);
    st->cache_hits = cs.hits;
    st->memo_hits = u->memo_hits;
    st->cache_misses = cs.misses;
    st->cache_entries = cs.entries;
}

/* ---- authentication (NET-8) ------------------------------------------------------ */

/* Take a token of peer's (USERS-5). */
static void take_token(auth_users *u, const char *peer)
{
    if (u->limiter && peer[0] && auth_limiter_fail(u->limiter, peer, base_mono_ns()))
        ulog(u, 1, "too many failed logins from %s: its logins are refused for a while", peer);
}

static void refuse(auth_users *u, net_auth *a)
{
    u->st.failures++;
    net_auth_done(a, GRPC_UNAUTHENTICATED, UNAUTH_MESSAGE, NULL, NULL);
}

static void verify_work(auth_job *j)
{
    vjob *v = (vjob *)j;
    v->result = auth_hash_verify(&v->hash, v->pw, v->pw_len);
}

static void vjob_free(vjob *v)
{
    if (v->user) user_unref(v->user);
    OPENSSL_cleanse(v, sizeof *v);
    free(v);
}

static void verify_done(auth_job *j)
{
    vjob *v = (vjob *)j;
    auth_users *u = v->u;
    for (vjob **pp = &u->verifying; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    auth_user *x = v->user;
    /* USERS-3: a change of the user meanwhile makes this verification void */
    int ok = !j->cancelled && v->result == 1 && x && !x->deleted && !x->disabled && x->cred_gen == v->gen;
    if (ok) auth_cache_put(u->cache, v->mac, x, v->gen);
    /* the token it took stays taken for a failure (USERS-5) */
    if (ok && u->limiter && v->peer[0]) auth_limiter_refund(u->limiter, v->peer, base_mono_ns());
    while (v->waiters) {
        waiter *w = v->waiters;
        v->waiters = w->next;
        if (j->cancelled)
            net_auth_done(w->a, GRPC_UNAVAILABLE, "the server is shutting down", NULL, NULL);
        else if (ok)
            net_auth_done(w->a, 0, NULL, (void *)auth_principal_ref(x->principal), auth_principal_release);
        else
            refuse(u, w->a);
        free(w);
    }
    vjob_free(v);
}

/* USERS-7: the principal the connection's memo gives this header, or NULL. */
static const auth_principal *memo_find(auth_users *u, void **slot, const char *hdr)
{
    auth_memo *m = slot ? *slot : NULL;
    if (!m || !hdr) return NULL;
    size_t n = strlen(hdr);
    if (m->epoch != u->epoch || m->len != n || CRYPTO_memcmp(m->hdr, hdr, n) != 0) return NULL;
    if (m->p->revoked || m->p->successor) return NULL; /* PRINCIPAL-1 */
    return m->p;
}

void auth_users_slot_free(void *ctx, void *slot)
{
    (void)ctx;
    auth_memo *m = slot;
    if (!m) return;
    auth_principal_unref(m->p);
    OPENSSL_cleanse(m->hdr, m->len); /* a password, in base64 */
    free(m);
}

/* USERS-7: remember that hdr was p's, now (best effort). */
static void memo_keep(auth_users *u, void **slot, const char *hdr, const auth_principal *p)
{
    size_t n = hdr ? strlen(hdr) : 0;
    if (!slot || !n || n > MEMO_MAX_HEADER) return;
    auth_memo *m = *slot;
    if (!m || m->len != n) {
        auth_users_slot_free(u, m);
        *slot = m = malloc(sizeof *m + n);
        if (!m) return;
    } else {
        auth_principal_unref(m->p);
    }
    m->epoch = u->epoch;
    m->p = auth_principal_ref(p);
    m->len = n;
    memcpy(m->hdr, hdr, n);
}

int auth_users_authenticate(void *ctx, net_auth *a)
{
    auth_users *u = ctx;
    const char *hdr = net_auth_header(a, "authorization");
    void **slot = hdr ? net_auth_slot(a) : NULL;
    const auth_principal *known = memo_find(u, slot, hdr);
    if (known) {
        u->memo_hits++;
        net_auth_done(a, 0, NULL, (void *)auth_principal_ref(known), auth_principal_release);
        return NET_AUTH_DONE;
    }
    char login[AUTH_LOGIN_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    size_t pw_len = 0;
    int kind = auth_parse_basic(hdr, login, pw, &pw_len);
    if (kind == AUTH_CRED_NONE && u->sessions) {
        /* The admin UI's session cookie (SESS-2): its user, as Basic credentials would be; an unknown or
         * ended session is anonymous (the page then asks to sign in). */
        const auth_principal *sp = auth_session_find(u->sessions, net_auth_header(a, "cookie"), base_mono_ns(), NULL);
        if (sp) {
            net_auth_done(a, 0, NULL, (void *)auth_principal_ref(sp), auth_principal_release);
            return NET_AUTH_DONE;
        }
    }
    if (kind == AUTH_CRED_NONE) {
        /* X.509 (KurrentDB licenses it): a verified client certificate whose
         * CN names an existing, enabled user is that user; any other is
         * anonymous, as no certificate is. */
        char cn[AUTH_LOGIN_MAX + 1];
        auth_user *x = auth_cert_login(net_auth_peer_cn(a), cn) == 0 ? find(u, cn) : NULL;
        if (x && !x->disabled) {
            u->st.cert_logins++;
            net_auth_done(a, 0, NULL, (void *)auth_principal_ref(x->principal), auth_principal_release);
        } else {
            net_auth_done(a, 0, NULL, (void *)auth_principal_anonymous(), NULL);
        }
        return NET_AUTH_DONE;
    }
    if (kind != AUTH_CRED_BASIC) {
        take_token(u, net_auth_peer(a)); /* a failure without a KDF */
        refuse(u, a);
        return NET_AUTH_DONE;
    }
    uint8_t mac[AUTH_MAC_LEN];
    int rc = auth_cache_mac(u->cache, login, pw, pw_len, mac);
    if (rc) {
        OPENSSL_cleanse(pw, sizeof pw);
        net_auth_done(a, GRPC_UNAVAILABLE, "cannot check credentials now", NULL, NULL);
        return NET_AUTH_DONE;
    }
    uint64_t gen;
    auth_user *x = auth_cache_get(u->cache, mac, &gen);
    if (x && gen == x->cred_gen && !x->disabled && !x->deleted && strcmp(x->login, login) == 0) {
        OPENSSL_cleanse(pw, sizeof pw);
        memo_keep(u, slot, hdr, x->principal);
        net_auth_done(a, 0, NULL, (void *)auth_principal_ref(x->principal), auth_principal_release);
        return NET_AUTH_DONE;
    }
    /* USERS-5: a source out of failures gets no KDF */
    const char *peer = net_auth_peer(a);
    if (u->limiter && peer[0] && auth_limiter_blocked(u->limiter, peer, base_mono_ns())) {
        OPENSSL_cleanse(pw, sizeof pw);
        u->st.rate_limited++;
        refuse(u, a);
        return NET_AUTH_DONE;
    }
    waiter *w = malloc(sizeof *w);
    if (!w) goto busy;
    w->a = a;
    for (vjob *v = u->verifying; v; v = v->next)
        if (CRYPTO_memcmp(v->mac, mac, AUTH_MAC_LEN) == 0) {
            OPENSSL_cleanse(pw, sizeof pw);
            w->next = v->waiters;
            v->waiters = w;
            return NET_AUTH_PENDING;
        }
    vjob *v = calloc(1, sizeof *v);
    if (!v) {
        free(w);
        goto busy;
    }
    v->job.work = verify_work;
    v->job.done = verify_done;
    v->u = u;
    memcpy(v->mac, mac, AUTH_MAC_LEN);
    memcpy(v->login, login, strlen(login) + 1);
    memcpy(v->pw, pw, pw_len);
    v->pw_len = pw_len;
    OPENSSL_cleanse(pw, sizeof pw);
    x = find(u, login);
    if (x) {
        user_ref(x);
        v->user = x;
        v->hash = x->hash;
        v->gen = x->cred_gen;
    } else {
        v->hash = u->dummy; /* USERS-4 */
    }
    if (!u->pool || auth_pool_submit(u->pool, &v->job)) {
        free(w);
        vjob_free(v);
        goto busy;
    }
    u->st.verifications++;
    snprintf(v->peer, sizeof v->peer, "%s", peer);
    take_token(u, v->peer); /* given back if it succeeds */
    w->next = NULL;
    v->waiters = w;
    v->next = u->verifying;
    u->verifying = v;
    return NET_AUTH_PENDING;
busy:
    OPENSSL_cleanse(pw, sizeof pw);
    u->st.busy++;
    net_auth_done(a, GRPC_UNAVAILABLE, "too many logins are being checked: try again", NULL, NULL);
    return NET_AUTH_DONE;
}

/* ---- changes ---------------------------------------------------------------------- */

enum { OP_CREATE, OP_UPDATE, OP_DELETE, OP_DISABLE, OP_ENABLE, OP_RESET, OP_CHANGE };

typedef struct cjob {
    auth_job job; /* the KDF stage (create, reset, change) */
    auth_users *u;
    int op;
    auth_users_cb cb;
    void *arg;
    char *login, *full;
    char **groups;
    size_t n_groups;
    char pw[AUTH_PASSWORD_MAX + 1], cur[AUTH_PASSWORD_MAX + 1];
    size_t pw_len, cur_len;
    auth_hash hash;  /* new (create, reset, change) */
    auth_hash check; /* change: the current one, to verify */
    int verified;
    int exists;   /* create of an existing login: only check its password (KurrentDB's idempotent create) */
    int disabled; /* the record's flag */
    uint64_t gen; /* change: the user's credential generation when it began */
    int64_t stream_tb; /* create over a deleted user: its `$tb` */
    /* the append */
    base_buf rec, meta;
    char stream[AUTH_LOGIN_MAX + 8], meta_stream[AUTH_LOGIN_MAX + 10];
    factum_event_data ev[4];
    factum_append_req req[4];
    int rc;
    int64_t version;
    int64_t ts;
} cjob;

static void cjob_free(cjob *c)
{
    free(c->login);
    free(c->full);
    for (size_t i = 0; i < c->n_groups; i++)
        free(c->groups[i]);
    free(c->groups);
    base_buf_free(&c->rec);
    base_buf_free(&c->meta);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

static void finish(cjob *c, int rc)
{
    c->cb(c->arg, rc);
    cjob_free(c);
}

static int map_store_rc(int rc)
{
    if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EDELETED) return AUTH_ECONFLICT;
    if (rc == -EAGAIN) return AUTH_EBUSY;
    return rc;
}

static void notify(auth_users *u, const char *login);

/* USERS-2: the append committed; now the copy in memory. */
static void apply(cjob *c)
{
    auth_users *u = c->u;
    if (c->op == OP_DELETE) {
        table_remove(u, c->login);
        return;
    }
    auth_user *x = c->op == OP_CREATE ? user_new(c->login) : find(u, c->login);
    if (!x) return; /* deleted meanwhile: its next event failed on the version */
    u->epoch++; /* USERS-7: whatever changes, no connection's memo holds */
    if (c->op == OP_CREATE || c->op == OP_UPDATE)
        if (user_set_identity(x, c->full, (const char *const *)c->groups, c->n_groups))
            ulog(u, 0, "user '%s': out of memory updating its copy; restart to reload it", c->login);
    if (c->op == OP_CREATE || c->op == OP_RESET || c->op == OP_CHANGE) {
        x->hash = c->hash;
        x->cred_gen++;
    }
    if (c->op == OP_DISABLE || c->op == OP_ENABLE) {
        x->disabled = c->op == OP_DISABLE;
        x->cred_gen++;
    }
    if ((c->op == OP_RESET || c->op == OP_CHANGE || c->op == OP_DISABLE) && user_revoke(x))
        ulog(u, 0, "user '%s': out of memory renewing its identity; its logins fail until a restart",
             c->login);
    x->version = c->version;
    x->updated_ns = c->ts;
    if (c->op == OP_CREATE && table_put(u, x)) user_unref(x);
}

static void appended_on_loop(void *arg)
{
    cjob *c = arg;
    if (c->rc == 0) apply(c);
    if (c->rc == 0 && c->op == OP_DELETE) notify(c->u, c->login);
    /* PRINCIPAL-1: the commit woke the subscriptions before this ran */
    if (c->rc == 0 && c->u->on_change) c->u->on_change(c->u->on_change_arg);
    finish(c, map_store_rc(c->rc));
}

static void post_back(cjob *c)
{
    while (net_post(c->u->net, appended_on_loop, c)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The store's callback: on its writer thread, only post back (USERS-1). */
static void appended(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    cjob *c = ctx;
    c->rc = rc;
    if (!rc && n) {
        c->version = (int64_t)res[0].last_version;
        c->ts = res[0].timestamp_ns;
    }
    post_back(c);
}

/* A `$PasswordChanged` notification nothing waits for (after a delete). */
typedef struct note {
    base_buf data;
    factum_event_data ev;
    factum_append_req req;
} note;

static void notified(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)rc;
    (void)res;
    (void)n;
    (void)failed;
    note *x = ctx;
    base_buf_free(&x->data);
    free(x);
}

static void notify(auth_users *u, const char *login)
{
    if (u->closing) return;
    note *x = calloc(1, sizeof *x);
    if (!x) return;
    int rc = base_buf_printf(&x->data, "{\"loginName\":");
    if (!rc) rc = json_write_string(&x->data, login, strlen(login));
    if (!rc) rc = base_buf_append(&x->data, "}", 1);
    x->ev = (factum_event_data){.type = "$PasswordChanged",
                                .flags = FACTUM_EVENT_JSON,
                                .data = x->data.data,
                                .data_len = x->data.len};
    x->req = (factum_append_req){NOTIFY_STREAM, FACTUM_ANY, &x->ev, 1};
    if (!rc) rc = factum_append_async(u->store, &x->req, 1, notified, x);
    if (rc) {
        ulog(u, 1, "user '%s': cannot write its %s notification: %s", login, NOTIFY_STREAM,
             factum_strerror(rc));
        base_buf_free(&x->data);
        free(x);
    }
}

static void deleted(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)res;
    (void)n;
    (void)failed;
    cjob *c = ctx;
    c->rc = rc;
    post_back(c);
}

/* Write the record (and what goes with it) for c: 0 (appended() follows)
 * or an error (c is the caller's still). */
static int write_record(cjob *c)
{
    auth_users *u = c->u;
    auth_user *x = c->op == OP_CREATE ? NULL : find(u, c->login);
    if (c->op != OP_CREATE && !x) return AUTH_ENOTFOUND;
    if (c->op == OP_CREATE && find(u, c->login)) return AUTH_ECONFLICT;
    snprintf(c->stream, sizeof c->stream, USER_PREFIX "%s", c->login);
    snprintf(c->meta_stream, sizeof c->meta_stream, "$$" USER_PREFIX "%s", c->login);
    if (c->op == OP_DELETE) {
        int rc = factum_delete_stream_async(u->store, c->stream, x->version, deleted, c);
        if (rc) return map_store_rc(rc);
        x->cred_gen++; /* its cached credentials go now (USERS-3); the copy when it committed */
        u->epoch++;    /* and the connections' memos (USERS-7) */
        return 0;
    }
    const auth_hash *h = c->op == OP_CREATE || c->op == OP_RESET || c->op == OP_CHANGE ? &c->hash : &x->hash;
    const char *full = c->op == OP_CREATE || c->op == OP_UPDATE ? c->full : x->full_name;
    char *const *groups = c->op == OP_CREATE || c->op == OP_UPDATE ? c->groups : x->groups;
    size_t ng = c->op == OP_CREATE || c->op == OP_UPDATE ? c->n_groups : x->n_groups;
    int disabled = c->op == OP_DISABLE ? 1 : c->op == OP_ENABLE ? 0 : x ? x->disabled : 0;
    int rc = record_json(&c->rec, c->login, full, groups, ng, h, disabled);
    size_t n = 0;
    c->ev[0] = (factum_event_data){.type = c->op == OP_CREATE ? "$UserCreated" : "$UserUpdated",
                                   .flags = FACTUM_EVENT_JSON,
                                   .data = c->rec.data,
                                   .data_len = c->rec.len};
    c->req[n++] =
        (factum_append_req){c->stream, c->op == OP_CREATE ? FACTUM_NO_STREAM : x->version, &c->ev[0], 1};
    if (c->op == OP_CREATE) {
        if (!rc && c->stream_tb >= 0)
            rc = base_buf_printf(&c->meta, "{\"$tb\":%lld,\"$acl\":" USER_ACL "}", (long long)c->stream_tb);
        else if (!rc)
            rc = base_buf_printf(&c->meta, "{\"$acl\":" USER_ACL "}");
        c->ev[1] = (factum_event_data){
            .type = "$metadata", .flags = FACTUM_EVENT_JSON, .data = c->meta.data, .data_len = c->meta.len};
        c->req[n++] = (factum_append_req){c->meta_stream, FACTUM_ANY, &c->ev[1], 1};
        c->ev[2] = (factum_event_data){.type = "$User", .data = c->login, .data_len = strlen(c->login)};
        c->req[n++] = (factum_append_req){USERS_STREAM, FACTUM_ANY, &c->ev[2], 1};
    } else if (c->op != OP_UPDATE && c->op != OP_ENABLE) {
        /* KurrentDB's notification that cached credentials of the user are void */
        if (!rc) rc = base_buf_printf(&c->meta, "{\"loginName\":");
        if (!rc) rc = json_write_string(&c->meta, c->login, strlen(c->login));
        if (!rc) rc = base_buf_append(&c->meta, "}", 1);
        c->ev[1] = (factum_event_data){.type = "$PasswordChanged",
                                       .flags = FACTUM_EVENT_JSON,
                                       .data = c->meta.data,
                                       .data_len = c->meta.len};
        c->req[n++] = (factum_append_req){NOTIFY_STREAM, FACTUM_ANY, &c->ev[1], 1};
    }
    if (!rc) rc = factum_append_async(u->store, c->req, n, appended, c);
    return rc ? map_store_rc(rc) : 0;
}

static void kdf_work(auth_job *j)
{
    cjob *c = (cjob *)j;
    if (c->exists) {
        c->verified = auth_hash_verify(&c->check, c->pw, c->pw_len) == 1;
        return;
    }
    if (c->op == OP_CHANGE) {
        c->verified = auth_hash_verify(&c->check, c->cur, c->cur_len) == 1;
        if (!c->verified) return;
    }
    auth_hash_params_default(&c->hash);
    c->rc = auth_hash_make(&c->hash, c->pw, c->pw_len);
}

static void kdf_done(auth_job *j)
{
    cjob *c = (cjob *)j;
    if (j->cancelled || c->u->closing) {
        finish(c, AUTH_EBUSY);
        return;
    }
    if (c->exists) { /* the same password: done already, nothing written */
        auth_user *x = find(c->u, c->login);
        finish(c, c->verified && x && x->cred_gen == c->gen ? AUTH_UNCHANGED : AUTH_ECONFLICT);
        return;
    }
    if (c->op == OP_CHANGE) {
        auth_user *x = find(c->u, c->login);
        if (!c->verified) {
            finish(c, AUTH_EDENIED);
            return;
        }
        if (!x || x->cred_gen != c->gen) { /* changed meanwhile: verified against a stale hash */
            finish(c, x ? AUTH_ECONFLICT : AUTH_ENOTFOUND);
            return;
        }
    }
    int rc = c->rc ? c->rc : write_record(c);
    if (rc) finish(c, rc);
}

/* A change without a KDF: write it now, or give the error at once. */
static int start_write(cjob *c)
{
    int rc = write_record(c);
    if (rc) cjob_free(c);
    return rc;
}

static int valid_groups(const char *const *groups, size_t n)
{
    if (n > MAX_GROUPS) return 0;
    for (size_t i = 0; i < n; i++)
        if (!groups[i] || !auth_login_valid(groups[i], strlen(groups[i]))) return 0;
    return 1;
}

static cjob *cjob_new(auth_users *u, int op, const char *login, auth_users_cb cb, void *arg)
{
    if (!login || !auth_login_valid(login, strlen(login))) return NULL;
    cjob *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->u = u;
    c->op = op;
    c->cb = cb;
    c->arg = arg;
    c->stream_tb = -1;
    c->job.work = kdf_work;
    c->job.done = kdf_done;
    if (!(c->login = strdup(login))) {
        cjob_free(c);
        return NULL;
    }
    return c;
}

static int set_identity(cjob *c, const auth_user_spec *s)
{
    if (s->full_name && strlen(s->full_name) > 1024) return AUTH_EINVAL;
    if (!valid_groups(s->groups, s->n_groups)) return AUTH_EINVAL;
    c->full = strdup(s->full_name ? s->full_name : "");
    c->groups = s->n_groups ? calloc(s->n_groups, sizeof *c->groups) : NULL;
    if (!c->full || (s->n_groups && !c->groups)) return -ENOMEM;
    for (size_t i = 0; i < s->n_groups; i++) {
        if (!(c->groups[i] = strdup(s->groups[i]))) return -ENOMEM;
        c->n_groups++;
    }
    return 0;
}

static int submit_kdf(cjob *c)
{
    if (!c->u->pool || auth_pool_submit(c->u->pool, &c->job)) {
        cjob_free(c);
        return AUTH_EBUSY;
    }
    return 0;
}

int auth_users_create(auth_users *u, const auth_user_spec *s, auth_users_cb cb, void *arg)
{
    if (!s->password || s->password_len > AUTH_PASSWORD_MAX) return AUTH_EINVAL;
    cjob *c = cjob_new(u, OP_CREATE, s->login, cb, arg);
    if (!c) return AUTH_EINVAL;
    int rc = set_identity(c, s);
    if (rc) {
        cjob_free(c);
        return rc;
    }
    memcpy(c->pw, s->password, s->password_len);
    c->pw_len = s->password_len;
    auth_user *x = find(u, s->login);
    if (x) {
        /* As KurrentDB: creating a user that exists with the same password succeeds (a retried
         * create), with another password it is a conflict. */
        c->exists = 1;
        c->check = x->hash;
        c->gen = x->cred_gen;
        return submit_kdf(c);
    }
    /* A user deleted before: the new life of its stream starts after the old events. */
    factum_stream_info info;
    snprintf(c->stream, sizeof c->stream, USER_PREFIX "%s", c->login);
    if (factum_stream_get_info(u->store, c->stream, &info) == 0 && info.status == FACTUM_STREAM_SOFT_DELETED)
        c->stream_tb = info.last_version + 1;
    return submit_kdf(c);
}

int auth_users_update(auth_users *u, const auth_user_spec *s, auth_users_cb cb, void *arg)
{
    cjob *c = cjob_new(u, OP_UPDATE, s->login, cb, arg);
    if (!c) return AUTH_EINVAL;
    int rc = set_identity(c, s);
    if (rc) {
        cjob_free(c);
        return rc;
    }
    return start_write(c);
}

int auth_users_delete(auth_users *u, const char *login, auth_users_cb cb, void *arg)
{
    cjob *c = cjob_new(u, OP_DELETE, login, cb, arg);
    if (!c) return AUTH_EINVAL;
    return start_write(c);
}

int auth_users_set_disabled(auth_users *u, const char *login, int disabled, auth_users_cb cb, void *arg)
{
    cjob *c = cjob_new(u, disabled ? OP_DISABLE : OP_ENABLE, login, cb, arg);
    if (!c) return AUTH_EINVAL;
    return start_write(c);
}

int auth_users_reset_password(auth_users *u, const char *login, const char *pw, size_t pw_len,
                              auth_users_cb cb, void *arg)
{
    if (!pw || pw_len > AUTH_PASSWORD_MAX) return AUTH_EINVAL;
    if (login && !find(u, login)) return AUTH_ENOTFOUND;
    cjob *c = cjob_new(u, OP_RESET, login, cb, arg);
    if (!c) return AUTH_EINVAL;
    memcpy(c->pw, pw, pw_len);
    c->pw_len = pw_len;
    return submit_kdf(c);
}

int auth_users_change_password(auth_users *u, const char *login, const char *current, size_t current_len,
                               const char *pw, size_t pw_len, auth_users_cb cb, void *arg)
{
    if (!pw || pw_len > AUTH_PASSWORD_MAX || !current || current_len > AUTH_PASSWORD_MAX) return AUTH_EINVAL;
    auth_user *x = login ? find(u, login) : NULL;
    if (login && !x) return AUTH_ENOTFOUND;
    cjob *c = cjob_new(u, OP_CHANGE, login, cb, arg);
    if (!c) return AUTH_EINVAL;
    c->check = x->hash;
    c->gen = x->cred_gen;
    memcpy(c->cur, current, current_len);
    c->cur_len = current_len;
    memcpy(c->pw, pw, pw_len);
    c->pw_len = pw_len;
    return submit_kdf(c);
}
