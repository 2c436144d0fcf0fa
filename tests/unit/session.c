/* Unit tests of the admin UI's sign-in sessions (src/auth/session.c,
 * SESS-1..3): a session found by its cookie among others, never by a wrong,
 * short or absent one; its CSRF token checked exactly; idle and total
 * expiry; a revoked principal (password changed, user disabled) ends it;
 * sign-out; beyond AUTH_SESSIONS the least recently used goes. */
#include "harness.h"

#include "auth/principal.h"
#include "auth/session.h"

#define SEC 1000000000ull

static void cookie_of(const char *token, char *out, size_t n)
{
    snprintf(out, n, "theme=dark; " AUTH_SESSION_COOKIE "=%s; lang=en", token);
}

static void t_sessions(void)
{
    auth_sessions *s;
    REQUIRE(auth_sessions_new(&s) == 0);
    auth_principal *p;
    const char *groups[] = {"$admins"};
    REQUIRE(auth_principal_new("admin", groups, 1, &p) == 0);
    char tok[AUTH_SESSION_TOKEN], csrf[AUTH_SESSION_TOKEN], tok2[AUTH_SESSION_TOKEN],
        csrf2[AUTH_SESSION_TOKEN];
    uint64_t t0 = 1000 * SEC;
    CHECK_RC(auth_session_create(s, p, t0, tok, csrf), 0);
    CHECK_RC(auth_session_create(s, p, t0, tok2, csrf2), 0);
    CHECK_EQ_U64(strlen(tok), AUTH_SESSION_TOKEN - 1);
    CHECK(strcmp(tok, tok2) && strcmp(csrf, csrf2) && strcmp(tok, csrf));
    char c[200], c2[200];
    cookie_of(tok, c, sizeof c);
    cookie_of(tok2, c2, sizeof c2);
    CHECK(auth_session_named(c) && !auth_session_named("theme=dark") && !auth_session_named(NULL));
    const char *got = NULL;
    const auth_principal *q = auth_session_find(s, c, t0 + SEC, &got);
    CHECK(q && !strcmp(q->login, "admin") && got && !strcmp(got, csrf));
    /* Wrong, short, absent tokens. */
    char bad[200];
    snprintf(bad, sizeof bad, AUTH_SESSION_COOKIE "=%s", tok);
    bad[sizeof AUTH_SESSION_COOKIE + 5] ^= 1;
    CHECK(auth_session_find(s, bad, t0 + SEC, NULL) == NULL);
    CHECK(auth_session_find(s, AUTH_SESSION_COOKIE "=abc", t0 + SEC, NULL) == NULL);
    CHECK(auth_session_find(s, "", t0 + SEC, NULL) == NULL);
    CHECK(auth_session_find(s, NULL, t0 + SEC, NULL) == NULL);
    /* SESS-3 */
    CHECK(auth_session_csrf_ok(s, c, csrf, t0 + SEC));
    CHECK(!auth_session_csrf_ok(s, c, csrf2, t0 + SEC)); /* another session's */
    CHECK(!auth_session_csrf_ok(s, c, NULL, t0 + SEC));
    CHECK(!auth_session_csrf_ok(s, c, "", t0 + SEC));
    char longer[80];
    snprintf(longer, sizeof longer, "%sx", csrf);
    CHECK(!auth_session_csrf_ok(s, c, longer, t0 + SEC));
    /* SESS-2: idle expiry (use keeps it), total expiry. */
    uint64_t t = t0 + SEC;
    for (int i = 0; i < 30; i++) { /* 20 minutes apart: idle never reached, 10 h in all */
        t += 20 * 60 * SEC;
        CHECK(auth_session_find(s, c, t, NULL) != NULL);
    }
    CHECK(auth_session_find(s, c2, t, NULL) == NULL); /* unused for 10 h: gone */
    t += 3 * 3600 * SEC;
    CHECK(auth_session_find(s, c, t, NULL) == NULL); /* over 12 h in all */
    CHECK_EQ_U64(auth_sessions_count(s), 0);
    /* A revoked principal ends its sessions; sign-out ends one. */
    CHECK_RC(auth_session_create(s, p, t, tok, csrf), 0);
    cookie_of(tok, c, sizeof c);
    CHECK(auth_session_find(s, c, t, NULL) != NULL);
    CHECK_EQ_U64(auth_session_end(s, c), 1);
    CHECK_EQ_U64(auth_session_end(s, c), 0);
    CHECK(auth_session_find(s, c, t, NULL) == NULL);
    CHECK_RC(auth_session_create(s, p, t, tok, csrf), 0);
    cookie_of(tok, c, sizeof c);
    auth_principal_supersede(p, NULL); /* PRINCIPAL-1: the password changed */
    CHECK(auth_session_find(s, c, t, NULL) == NULL);
    auth_principal_unref(p);
    /* Capacity: the least recently used goes. */
    auth_principal *p2;
    REQUIRE(auth_principal_new("ops", NULL, 0, &p2) == 0);
    char first[AUTH_SESSION_TOKEN], keep[AUTH_SESSION_TOKEN], fc[200], kc[200];
    CHECK_RC(auth_session_create(s, p2, t, first, csrf), 0);
    CHECK_RC(auth_session_create(s, p2, t, keep, csrf), 0);
    cookie_of(first, fc, sizeof fc);
    cookie_of(keep, kc, sizeof kc);
    for (int i = 0; i < AUTH_SESSIONS; i++) {
        CHECK(auth_session_find(s, kc, t + (uint64_t)i + 1, NULL) != NULL); /* keep stays in use */
        CHECK_RC(auth_session_create(s, p2, t + (uint64_t)i + 1, tok, csrf), 0);
    }
    CHECK_EQ_U64(auth_sessions_count(s), AUTH_SESSIONS);
    CHECK(auth_session_find(s, fc, t + AUTH_SESSIONS + 1, NULL) == NULL);
    CHECK(auth_session_find(s, kc, t + AUTH_SESSIONS + 1, NULL) != NULL);
    auth_principal_unref(p2);
    auth_sessions_free(s);
}

int main(void)
{
    RUN(t_sessions);
    return harness_done();
}
