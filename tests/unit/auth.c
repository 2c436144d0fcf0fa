/* Unit tests of src/auth: password hashes (scrypt and KurrentDB's PBKDF2),
 * base64, Basic credentials, login names and certificate subjects
 * (passwd.h); the credential cache (cache.h: hit, miss, the generation that
 * invalidates, the bound) and the failed-login limiter (USERS-5); the
 * password workers (pool.h: POOL-1 bounded, POOL-2 every job done once).
 * The randomised parts print their seed (FACTUM_SEED replays it). */
#include "harness.h"

#include <pthread.h>

#include "auth/cache.h"
#include "auth/passwd.h"
#include "auth/pool.h"

static void t_scrypt(void)
{
    auth_hash h;
    auth_hash_params_default(&h);
    CHECK(h.alg == AUTH_KDF_SCRYPT && h.n >= (1u << 14) && h.r == 8 && h.p == 1);
    CHECK_RC(auth_hash_make(&h, "changeit", 8), 0);
    CHECK(h.salt_len == AUTH_SALT_LEN && h.key_len == 32);
    CHECK_RC(auth_hash_verify(&h, "changeit", 8), 1);
    CHECK_RC(auth_hash_verify(&h, "changeiT", 8), 0);
    CHECK_RC(auth_hash_verify(&h, "changeit", 7), 0);
    CHECK_RC(auth_hash_verify(&h, "", 0), 0);
    /* a fresh salt each time: the same password, another key */
    auth_hash h2;
    auth_hash_params_default(&h2);
    CHECK_RC(auth_hash_make(&h2, "changeit", 8), 0);
    CHECK(memcmp(h.salt, h2.salt, AUTH_SALT_LEN) != 0 && memcmp(h.key, h2.key, 32) != 0);
    /* the parameters are the record's: cheaper ones verify too (raised later, old hashes still work) */
    auth_hash lo;
    auth_hash_params_default(&lo);
    lo.n = 1024;
    CHECK_RC(auth_hash_make(&lo, "pw", 2), 0);
    CHECK_RC(auth_hash_verify(&lo, "pw", 2), 1);
    lo.n = 2048; /* the same key under other parameters does not match */
    CHECK_RC(auth_hash_verify(&lo, "pw", 2), 0);
    /* parameters out of bounds (a hostile record) are refused, not run */
    lo.n = 1000; /* not a power of two */
    CHECK_RC(auth_hash_verify(&lo, "pw", 2), -EINVAL);
    lo.n = 1u << 22;
    CHECK_RC(auth_hash_verify(&lo, "pw", 2), -EINVAL);
    lo.n = 1024;
    lo.r = 0;
    CHECK_RC(auth_hash_verify(&lo, "pw", 2), -EINVAL);
    /* a password with a NUL inside is its bytes, all of them */
    auth_hash z;
    auth_hash_params_default(&z);
    z.n = 1024;
    CHECK_RC(auth_hash_make(&z, "a\0b", 3), 0);
    CHECK_RC(auth_hash_verify(&z, "a\0b", 3), 1);
    CHECK_RC(auth_hash_verify(&z, "a\0c", 3), 0);
    CHECK_RC(auth_hash_verify(&z, "a", 1), 0);
}

/* KurrentDB's own records: PBKDF2-HMAC-SHA1 (1000 iterations there), 20
 * bytes. The vector is RFC 6070's ("password", "salt", 4096 iterations). */
static void t_pbkdf2_kurrentdb(void)
{
    auth_hash h;
    memset(&h, 0, sizeof h);
    h.alg = AUTH_KDF_PBKDF2_SHA1;
    h.n = 4096;
    memcpy(h.salt, "salt", 4);
    h.salt_len = 4;
    static const uint8_t want[20] = {0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad,
                                     0x49, 0xd9, 0x26, 0xf7, 0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1};
    memcpy(h.key, want, 20);
    h.key_len = 20;
    CHECK_RC(auth_hash_verify(&h, "password", 8), 1);
    CHECK_RC(auth_hash_verify(&h, "passwore", 8), 0);
    h.n = 1000;
    CHECK_RC(auth_hash_verify(&h, "password", 8), 0);
}

static void t_base64(void)
{
    char out[64];
    CHECK(auth_b64_encode((const uint8_t *)"", 0, out) == 0 && !strcmp(out, ""));
    CHECK(auth_b64_encode((const uint8_t *)"f", 1, out) == 4 && !strcmp(out, "Zg=="));
    CHECK(auth_b64_encode((const uint8_t *)"fo", 2, out) == 4 && !strcmp(out, "Zm8="));
    CHECK(auth_b64_encode((const uint8_t *)"foobar", 6, out) == 8 && !strcmp(out, "Zm9vYmFy"));
    uint8_t b[16];
    size_t n;
    CHECK_RC(auth_b64_decode("Zm9vYmE=", 8, b, sizeof b, &n), 0);
    CHECK(n == 5 && !memcmp(b, "fooba", 5));
    CHECK_RC(auth_b64_decode("Zg==", 4, b, sizeof b, &n), 0);
    CHECK(n == 1 && b[0] == 'f');
    CHECK_RC(auth_b64_decode("Zg=", 3, b, sizeof b, &n), -EINVAL);
    CHECK_RC(auth_b64_decode("Z===", 4, b, sizeof b, &n), -EINVAL);
    CHECK_RC(auth_b64_decode("Zg==Zg==", 8, b, sizeof b, &n), -EINVAL); /* padding in the middle */
    CHECK_RC(auth_b64_decode("Zm9v!mFy", 8, b, sizeof b, &n), -EINVAL);
    CHECK_RC(auth_b64_decode("Zm9vYmFy", 8, b, 5, &n), -EINVAL); /* does not fit */
    /* round trips of random bytes */
    srand((unsigned)harness_seed("unit_auth base64"));
    for (int i = 0; i < 200; i++) {
        uint8_t in[40], back[40];
        char txt[64];
        size_t len = (size_t)(rand() % 40);
        for (size_t k = 0; k < len; k++)
            in[k] = (uint8_t)rand();
        size_t tl = auth_b64_encode(in, len, txt);
        CHECK_RC(auth_b64_decode(txt, tl, back, sizeof back, &n), 0);
        CHECK(n == len && !memcmp(in, back, len));
    }
}

static int basic(const char *hdr, char *login, char *pw, size_t *pl)
{
    return auth_parse_basic(hdr, login, pw, pl);
}

static void t_basic(void)
{
    char login[AUTH_LOGIN_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    size_t pl;
    CHECK_RC(basic(NULL, login, pw, &pl), AUTH_CRED_NONE);
    CHECK_RC(basic("Basic YWRtaW46Y2hhbmdlaXQ=", login, pw, &pl), AUTH_CRED_BASIC); /* admin:changeit */
    CHECK(!strcmp(login, "admin") && pl == 8 && !memcmp(pw, "changeit", 8));
    CHECK_RC(basic("basic  YWRtaW46Y2hhbmdlaXQ= ", login, pw, &pl),
             AUTH_CRED_BASIC);                                      /* scheme case, spaces */
    CHECK_RC(basic("Basic YTo=", login, pw, &pl), AUTH_CRED_BASIC); /* "a:" - an empty password */
    CHECK(!strcmp(login, "a") && pl == 0);
    CHECK_RC(basic("Basic YTpiOmM=", login, pw, &pl),
             AUTH_CRED_BASIC); /* "a:b:c": the password has a colon */
    CHECK(!strcmp(login, "a") && pl == 3 && !memcmp(pw, "b:c", 3));
    CHECK_RC(basic("Bearer abc", login, pw, &pl), AUTH_CRED_BAD);
    CHECK_RC(basic("Basic", login, pw, &pl), AUTH_CRED_BAD);
    CHECK_RC(basic("Basic ", login, pw, &pl), AUTH_CRED_BAD);
    CHECK_RC(basic("Basic YWRtaW4=", login, pw, &pl), AUTH_CRED_BAD); /* "admin": no colon */
    CHECK_RC(basic("Basic OnB3", login, pw, &pl), AUTH_CRED_BAD);     /* ":pw": no login */
    CHECK_RC(basic("Basic YQliOmM=", login, pw, &pl), AUTH_CRED_BAD); /* "a\tb:c": a control character */
    CHECK_RC(basic("Basic !!!!", login, pw, &pl), AUTH_CRED_BAD);
    CHECK_RC(basic("Basic /w==Og==", login, pw, &pl), AUTH_CRED_BAD); /* padding in the middle */
    CHECK_RC(basic("Basic /zpi", login, pw, &pl), AUTH_CRED_BAD);     /* "\xff:b": not UTF-8 */
    /* bounds: a login of AUTH_LOGIN_MAX bytes passes, one more does not; the same for passwords */
    char raw[AUTH_LOGIN_MAX + AUTH_PASSWORD_MAX + 8], hdr[2 * sizeof raw];
    for (int over = 0; over < 2; over++) {
        size_t ll = AUTH_LOGIN_MAX + (size_t)over;
        memset(raw, 'l', ll);
        raw[ll] = ':';
        memcpy(raw + ll + 1, "p", 1);
        strcpy(hdr, "Basic ");
        auth_b64_encode((const uint8_t *)raw, ll + 2, hdr + 6);
        CHECK_RC(basic(hdr, login, pw, &pl), over ? AUTH_CRED_BAD : AUTH_CRED_BASIC);
        size_t ppl = AUTH_PASSWORD_MAX + (size_t)over;
        raw[0] = 'u';
        raw[1] = ':';
        memset(raw + 2, 'p', ppl);
        auth_b64_encode((const uint8_t *)raw, ppl + 2, hdr + 6);
        CHECK_RC(basic(hdr, login, pw, &pl), over ? AUTH_CRED_BAD : AUTH_CRED_BASIC);
    }
}

static void t_names(void)
{
    CHECK(auth_login_valid("admin", 5));
    CHECK(auth_login_valid("$admins", 7));
    CHECK(auth_login_valid("Zoë", strlen("Zoë")));
    CHECK(!auth_login_valid("", 0));
    CHECK(!auth_login_valid("a:b", 3));
    CHECK(!auth_login_valid("a\nb", 3));
    CHECK(!auth_login_valid("a\x7f", 2));
    CHECK(!auth_login_valid("\xc3", 1));
    char out[AUTH_LOGIN_MAX + 1];
    CHECK_RC(auth_cert_login("admin", out), 0);
    CHECK(!strcmp(out, "admin"));
    CHECK_RC(auth_cert_login(NULL, out), -EINVAL);
    CHECK_RC(auth_cert_login("", out), -EINVAL);
    CHECK_RC(auth_cert_login("CN=x:y", out), -EINVAL);
}

static int refs;
static void vref(void *v)
{
    (void)v;
    refs++;
}
static void vunref(void *v)
{
    (void)v;
    refs--;
}

static void t_cache(void)
{
    auth_cache *c;
    CHECK_RC(auth_cache_new(8, vref, vunref, &c), 0);
    if (!c) return;
    int users[3];
    uint8_t m1[AUTH_MAC_LEN], m2[AUTH_MAC_LEN], m3[AUTH_MAC_LEN];
    CHECK_RC(auth_cache_mac(c, "ann", "pw", 2, m1), 0);
    CHECK_RC(auth_cache_mac(c, "ann", "pw", 2, m2), 0);
    CHECK(!memcmp(m1, m2, AUTH_MAC_LEN)); /* the same credentials, the same key */
    CHECK_RC(auth_cache_mac(c, "ann", "pX", 2, m2), 0);
    CHECK(memcmp(m1, m2, AUTH_MAC_LEN));
    CHECK_RC(auth_cache_mac(c, "an", "n:pw", 4, m3), 0); /* "an" + "n:pw" is not "ann" + "pw" */
    CHECK(memcmp(m1, m3, AUTH_MAC_LEN));
    uint64_t gen = 99;
    CHECK(auth_cache_get(c, m1, &gen) == NULL); /* miss */
    auth_cache_put(c, m1, &users[0], 7);
    CHECK(refs == 1);
    CHECK(auth_cache_get(c, m1, &gen) == &users[0] && gen == 7); /* hit, with its generation */
    CHECK(auth_cache_get(c, m2, &gen) == NULL);                  /* another password: a miss */
    auth_cache_put(c, m1, &users[0], 8);                         /* replaced, not added */
    CHECK(refs == 1);
    CHECK(auth_cache_get(c, m1, &gen) == &users[0] && gen == 8);
    auth_cache_forget(c, &users[0]);
    CHECK(refs == 0 && auth_cache_get(c, m1, &gen) == NULL);
    /* bounded: many entries keep at most the capacity, and every value put is referenced or released */
    char pw[32];
    for (int i = 0; i < 1000; i++) {
        uint8_t m[AUTH_MAC_LEN];
        snprintf(pw, sizeof pw, "pw-%d", i);
        CHECK_RC(auth_cache_mac(c, "bob", pw, strlen(pw), m), 0);
        auth_cache_put(c, m, &users[i % 3], (uint64_t)i);
    }
    auth_cache_stats st;
    auth_cache_get_stats(c, &st);
    CHECK(st.entries <= st.capacity && st.capacity == 8 && refs == (int)st.entries);
    /* the most recent one is there */
    uint8_t m[AUTH_MAC_LEN];
    CHECK_RC(auth_cache_mac(c, "bob", "pw-999", 6, m), 0);
    CHECK(auth_cache_get(c, m, &gen) == &users[999 % 3] && gen == 999);
    auth_cache_free(c);
    CHECK(refs == 0);
    /* two caches (two processes) key the same credentials differently: the key is random */
    auth_cache *a, *b;
    CHECK_RC(auth_cache_new(8, NULL, NULL, &a), 0);
    CHECK_RC(auth_cache_new(8, NULL, NULL, &b), 0);
    CHECK_RC(auth_cache_mac(a, "ann", "pw", 2, m1), 0);
    CHECK_RC(auth_cache_mac(b, "ann", "pw", 2, m2), 0);
    CHECK(memcmp(m1, m2, AUTH_MAC_LEN));
    auth_cache_free(a);
    auth_cache_free(b);
}

static void t_limiter(void)
{
    auth_limiter *l;
    CHECK_RC(auth_limiter_new(64, 3, 6, &l), 0); /* 3 at once, then one every 10 s */
    if (!l) return;
    uint64_t t = 1000000000ull, s = 1000000000ull;
    CHECK(!auth_limiter_blocked(l, "10.0.0.1", t));
    CHECK(auth_limiter_fail(l, "10.0.0.1", t) == 0);
    CHECK(auth_limiter_fail(l, "10.0.0.1", t) == 0);
    CHECK(!auth_limiter_blocked(l, "10.0.0.1", t));
    CHECK(auth_limiter_fail(l, "10.0.0.1", t) == 1); /* the last token: reported once */
    CHECK(auth_limiter_blocked(l, "10.0.0.1", t));
    CHECK(auth_limiter_fail(l, "10.0.0.1", t) == 0); /* not reported again */
    CHECK(!auth_limiter_blocked(l, "10.0.0.2", t));  /* per source */
    CHECK(auth_limiter_blocked(l, "10.0.0.1", t + 9 * s));
    CHECK(!auth_limiter_blocked(l, "10.0.0.1", t + 10 * s)); /* one token back after 10 s */
    CHECK(auth_limiter_fail(l, "10.0.0.1", t + 10 * s) == 1);
    CHECK(auth_limiter_blocked(l, "10.0.0.1", t + 10 * s));
    CHECK(!auth_limiter_blocked(l, "10.0.0.1", t + 1000 * s));
    /* a refund gives a token back (a verification that succeeded), never past the burst */
    auth_limiter_fail(l, "10.0.0.3", t);
    auth_limiter_fail(l, "10.0.0.3", t);
    auth_limiter_fail(l, "10.0.0.3", t);
    CHECK(auth_limiter_blocked(l, "10.0.0.3", t));
    auth_limiter_refund(l, "10.0.0.3", t);
    CHECK(!auth_limiter_blocked(l, "10.0.0.3", t));
    for (int i = 0; i < 10; i++)
        auth_limiter_refund(l, "10.0.0.3", t);
    CHECK(auth_limiter_fail(l, "10.0.0.3", t) == 0 && auth_limiter_fail(l, "10.0.0.3", t) == 0 &&
          auth_limiter_fail(l, "10.0.0.3", t) == 1);
    /* bounded: a flood of sources never grows the table; the blocked one is the last to go */
    auth_limiter_fail(l, "10.0.0.9", t + 1000 * s);
    auth_limiter_fail(l, "10.0.0.9", t + 1000 * s);
    auth_limiter_fail(l, "10.0.0.9", t + 1000 * s);
    CHECK(auth_limiter_blocked(l, "10.0.0.9", t + 1000 * s));
    char src[32];
    int evicted = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(src, sizeof src, "192.168.%d.%d", i / 256, i % 256);
        auth_limiter_fail(l, src, t + 1000 * s);
        if (!auth_limiter_blocked(l, "10.0.0.9", t + 1000 * s)) evicted = 1;
    }
    /* sources with one failure each have more tokens than the blocked one: they replace each other
     * first; it may go only when its whole window is blocked sources */
    CHECK(!evicted);
    auth_limiter_free(l);
}

/* ---- the password workers ---------------------------------------------------- */

typedef struct tjob {
    auth_job job;
    int worked, done, accepted;
    pthread_mutex_t *gate;
} tjob;

static pthread_mutex_t post_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*posted_fn[256])(void *);
static void *posted_arg[256];
static int n_posted;

static int test_post(void *ctx, void (*fn)(void *), void *arg)
{
    (void)ctx;
    pthread_mutex_lock(&post_mu);
    posted_fn[n_posted] = fn;
    posted_arg[n_posted++] = arg;
    pthread_mutex_unlock(&post_mu);
    return 0;
}

static void run_posted(void)
{
    pthread_mutex_lock(&post_mu);
    int n = n_posted;
    n_posted = 0;
    pthread_mutex_unlock(&post_mu);
    for (int i = 0; i < n; i++)
        posted_fn[i](posted_arg[i]);
}

static void slow_work(auth_job *j)
{
    tjob *t = (tjob *)j;
    pthread_mutex_lock(t->gate); /* held by the test: the workers stay busy */
    pthread_mutex_unlock(t->gate);
    t->worked++;
}

static void count_done(auth_job *j)
{
    ((tjob *)j)->done++;
}

static void t_pool(void)
{
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&gate);
    auth_pool *p;
    CHECK_RC(auth_pool_new(2, 4, test_post, NULL, &p), 0);
    if (!p) return;
    tjob jobs[10];
    memset(jobs, 0, sizeof jobs);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        jobs[i].job.work = slow_work;
        jobs[i].job.done = count_done;
        jobs[i].gate = &gate;
        int rc = auth_pool_submit(p, &jobs[i].job);
        if (rc == 0) {
            accepted++;
            jobs[i].accepted = 1; /* not always the first ones: a worker may take one between two refusals */
        } else {
            CHECK_RC(rc, -EAGAIN); /* POOL-1 */
            refused++;
        }
    }
    CHECK(accepted <= 2 + 4 && accepted >= 4 && refused == 10 - accepted);
    pthread_mutex_unlock(&gate);
    for (int k = 0; k < 2000 && auth_pool_pending(p); k++)
        usleep(1000);
    CHECK(auth_pool_pending(p) == 0);
    /* a worker posts a job's completion just after it stops counting it as
     * pending: take what is posted until every accepted job is done */
    for (int k = 0; k < 2000; k++) {
        run_posted();
        int done = 0;
        for (int i = 0; i < 10; i++) done += jobs[i].done;
        if (done >= accepted) break;
        usleep(1000);
    }
    for (int i = 0; i < 10; i++) {
        if (jobs[i].accepted) CHECK(jobs[i].worked == 1 && jobs[i].done == 1);
        else CHECK(jobs[i].worked == 0 && jobs[i].done == 0);
    }
    /* POOL-2: jobs still waiting when the pool is freed are done, cancelled */
    pthread_mutex_lock(&gate);
    tjob more[4];
    memset(more, 0, sizeof more);
    for (int i = 0; i < 4; i++) {
        more[i].job.work = slow_work;
        more[i].job.done = count_done;
        more[i].gate = &gate;
        CHECK_RC(auth_pool_submit(p, &more[i].job), 0);
    }
    pthread_mutex_unlock(&gate);
    auth_pool_free(p);
    run_posted();
    for (int i = 0; i < 4; i++)
        CHECK(more[i].done == 1 && (more[i].worked == 1 || more[i].job.cancelled));
}

int main(void)
{
    RUN(t_scrypt);
    RUN(t_pbkdf2_kurrentdb);
    RUN(t_base64);
    RUN(t_basic);
    RUN(t_names);
    RUN(t_cache);
    RUN(t_limiter);
    RUN(t_pool);
    return harness_done();
}
