/*
 * session.h - the admin web UI's sign-in sessions (ADR 0029): a random
 * token in the `factum_session` cookie stands for the principal that signed
 * in, with a CSRF token of its own. In factumd's memory only (a restart
 * signs everyone out); loop thread only.
 *
 * Design note (invariants; tests cite them as SESS-n):
 *  SESS-1  A token is 256 random bits (base64url); it is compared in
 *          constant time, and only its SHA-256 is kept.
 *  SESS-2  A session ends after AUTH_SESSION_IDLE_NS without use, after
 *          AUTH_SESSION_MAX_NS in all, at sign-out, and as soon as its
 *          principal is revoked (the user's password changed, the user
 *          disabled or deleted: PRINCIPAL-1). At most AUTH_SESSIONS live;
 *          beyond, the least recently used ends.
 *  SESS-3  A request that changes something with the cookie must carry the
 *          session's CSRF token (auth_session_csrf_ok): another site can
 *          make a browser send the cookie, not read the token.
 */
#ifndef FACTUM_AUTH_SESSION_H
#define FACTUM_AUTH_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "auth/principal.h"

#define AUTH_SESSION_COOKIE  "factum_session"
#define AUTH_SESSION_TOKEN   44 /* base64url of 32 bytes (43) and a NUL */
#define AUTH_SESSIONS        1024
#define AUTH_SESSION_IDLE_NS (30ull * 60 * 1000000000ull)
#define AUTH_SESSION_MAX_NS  (12ull * 3600 * 1000000000ull)

typedef struct auth_sessions auth_sessions;

int auth_sessions_new(auth_sessions **out); /* 0 or -ENOMEM */
void auth_sessions_free(auth_sessions *s);

/* A new session for p (referenced while it lives): its cookie token and
 * CSRF token. 0, or -EIO (no randomness). */
int auth_session_create(auth_sessions *s, const auth_principal *p, uint64_t now_ns,
                        char token[AUTH_SESSION_TOKEN], char csrf[AUTH_SESSION_TOKEN]);
/* The session a Cookie header names (factum_session=...), alive at now_ns
 * (it is then used: its idle time starts again): its principal (borrowed;
 * the current one) and *csrf (may be NULL), or NULL. */
const auth_principal *auth_session_find(auth_sessions *s, const char *cookie_header, uint64_t now_ns,
                                        const char **csrf);
/* End the session the Cookie header names: 1 if there was one. */
int auth_session_end(auth_sessions *s, const char *cookie_header);
/* SESS-3: does csrf_header hold the CSRF token of the session the Cookie
 * header names? */
int auth_session_csrf_ok(auth_sessions *s, const char *cookie_header, const char *csrf_header,
                         uint64_t now_ns);
/* Does the Cookie header carry a factum_session cookie at all? */
int auth_session_named(const char *cookie_header);
size_t auth_sessions_count(const auth_sessions *s);

#endif
