/*
 * users.h - factumd's users as KurrentDB keeps them, the authentication of
 * every call, and the changes the Users service makes.
 *
 * In the store (KurrentDB's layout, docs/security.md):
 *  - `$user-<login>`: `$UserCreated` then `$UserUpdated` events, each the
 *    whole record as JSON {loginName, fullName, groups, hash, salt,
 *    disabled} plus factum's `kdf` {alg, n, r, p} (passwd.h; a record
 *    without it is KurrentDB's PBKDF2). Its metadata: `$acl` with `$w`,
 *    `$d`, `$mw` = `$admins`. Deleting a user soft-deletes the stream.
 *  - `$users`: one `$User` event per creation, its data the login (not JSON).
 *  - `$users-password-notifications`: `$PasswordChanged` {loginName} when a
 *    password changes or a user is disabled or deleted (`$maxAge` 1 h).
 *
 * In memory: every user, loaded at start and kept sorted by login. A change
 * made through this module is appended first; the in-memory copy changes
 * when the append has committed (USERS-2). Events written to these streams
 * by other means are seen at the next start.
 *
 * Design note (invariants; tests cite them as USERS-n):
 *  USERS-1  Nothing here blocks the loop: key derivations run on the
 *           password workers (pool.h, bounded: UNAVAILABLE when full),
 *           appends are asynchronous; results come back through net_post.
 *           Only auth_users_open (before the loop serves) waits.
 *  USERS-2  The in-memory copy is what the store holds: it is changed only
 *           by a committed append (or at load).
 *  USERS-3  A verified credential is cached under (login, HMAC of the
 *           password) with the user's credential generation; changing the
 *           password, disabling or deleting the user bumps it, so no
 *           cached credential outlives the change. A verification that
 *           raced with such a change does not count (it fails). Calls
 *           already open as the user follow it (PRINCIPAL-1, principal.h).
 *  USERS-4  Failures look the same to a client whatever their cause (wrong
 *           password, unknown user, disabled user: UNAUTHENTICATED,
 *           "Unauthenticated"), and take about the same time: an unknown
 *           login is checked against a dummy hash.
 *  USERS-5  A source (client address) past its failed-login budget is
 *           refused without a key derivation until its budget refills;
 *           when it runs out it is logged once. A verification takes a
 *           token when it starts and gives it back when it succeeds, so a
 *           source cannot have more KDFs in flight than its budget either.
 *  USERS-6  A call without an `authorization` header over TLS with a
 *           verified client certificate acts as the user its subject CN
 *           names, if that user exists and is enabled; otherwise (and
 *           without a certificate) as anonymous. A header always wins.
 *  USERS-7  A connection remembers the Basic header it was last
 *           authenticated by (NET-10: the header, its principal and the
 *           users' epoch). A call with exactly that header on that
 *           connection is decided by the memo, without the MAC, only while
 *           no user has changed since (any change bumps the epoch) and the
 *           principal is not superseded (PRINCIPAL-1). Otherwise the call
 *           takes the full path (USERS-3), which renews the memo.
 */
#ifndef FACTUM_AUTH_USERS_H
#define FACTUM_AUTH_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "auth/passwd.h"
#include "auth/principal.h"
#include "factum.h"
#include "net/net.h"

typedef struct auth_user {
    int refs; /* loop thread */
    char *login, *full_name;
    char **groups;
    size_t n_groups;
    auth_hash hash;
    int disabled;
    int deleted;
    int64_t version;           /* of `$user-<login>` */
    int64_t updated_ns;        /* time of its last event */
    uint64_t cred_gen;         /* USERS-3 */
    auth_principal *principal; /* login and groups */
} auth_user;

typedef struct auth_users auth_users;

typedef struct auth_users_options {
    factum_store *store;
    unsigned workers;         /* password workers (default 2) */
    size_t max_queue;         /* verifications waiting, at most (default 64) */
    size_t cache_slots;       /* cached credentials (default 4096) */
    unsigned fail_burst;      /* failed logins a source may make at once (default 10; 0: no limit) */
    unsigned fail_per_minute; /* and then per minute (default 10) */
    void (*log_fn)(void *ctx, int level, const char *msg);
    void *log_ctx;
} auth_users_options;

void auth_users_options_init(auth_users_options *o);

/* Load the users (creating `admin` and `ops` with password `changeit` when
 * their streams were never written) and warn for each that still has the
 * default password. Blocking: call before the loop serves. 0 or an error. */
int auth_users_open(const auth_users_options *o, auth_users **out);
/* The loop that answers (net_post) - before the first call. */
void auth_users_set_net(auth_users *u, net_server *net);
/* Called on the loop after a change through this module is in force in the
 * copy in memory (USERS-2): what holds a principal for long (subscriptions,
 * consumers) checks again (PRINCIPAL-1). Before the first call. */
void auth_users_set_on_change(auth_users *u, void (*fn)(void *arg), void *arg);
/* Stop the workers (their answers are posted to the net server: free that
 * after this), then, after net_server_free, auth_users_free. */
void auth_users_stop(auth_users *u);
void auth_users_free(auth_users *u);
/* The admin UI's sign-in sessions (auth/session.h): loop thread. */
struct auth_sessions *auth_users_sessions(auth_users *u);

/* net_config.auth_fn (NET-8): authenticate a call or an HTTP request. */
int auth_users_authenticate(void *u, net_auth *a);
/* net_config.auth_slot_free: a connection's memo (USERS-7). */
void auth_users_slot_free(void *u, void *slot);
/* For net_call_set_auth & co: releases an auth_principal. */
void auth_principal_release(void *p);

/* ---- reading (loop thread) ------------------------------------------------- */

/* The user of login, or NULL (borrowed until the loop's next turn). */
const auth_user *auth_users_find(auth_users *u, const char *login);
/* Every user, sorted by login (borrowed until the loop's next turn). */
const auth_user *const *auth_users_all(auth_users *u, size_t *n);

/* ---- changes (loop thread; cb runs later on the loop, exactly once) -------- */

/* Results: 0, AUTH_UNCHANGED, AUTH_ENOTFOUND, AUTH_ECONFLICT, AUTH_EDENIED (change-password:
 * the current password is wrong), AUTH_EBUSY (the workers' queue is full),
 * AUTH_EINVAL (a bad name, group or password), or a store error. */
enum {
    AUTH_ENOTFOUND = -20001,
    AUTH_ECONFLICT = -20002,
    AUTH_EDENIED = -20003,
    AUTH_EBUSY = -20004,
    AUTH_EINVAL = -20005,
};
/* A success that wrote nothing (create of an existing user with the same
 * password, as KurrentDB answers a retried create). */
#define AUTH_UNCHANGED 1
typedef void (*auth_users_cb)(void *arg, int rc);

typedef struct auth_user_spec {
    const char *login;
    const char *full_name;
    const char *const *groups;
    size_t n_groups;
    const char *password; /* create: required; update: ignored (as KurrentDB) */
    size_t password_len;
} auth_user_spec;

/* Each returns 0 (cb will run) or an error at once (cb will not run). */
int auth_users_create(auth_users *u, const auth_user_spec *s, auth_users_cb cb, void *arg);
int auth_users_update(auth_users *u, const auth_user_spec *s, auth_users_cb cb, void *arg);
int auth_users_delete(auth_users *u, const char *login, auth_users_cb cb, void *arg);
int auth_users_set_disabled(auth_users *u, const char *login, int disabled, auth_users_cb cb, void *arg);
int auth_users_reset_password(auth_users *u, const char *login, const char *pw, size_t pw_len,
                              auth_users_cb cb, void *arg);
int auth_users_change_password(auth_users *u, const char *login, const char *current, size_t current_len,
                               const char *pw, size_t pw_len, auth_users_cb cb, void *arg);

/* For /metrics. */
typedef struct auth_users_stats {
    uint64_t users;
    uint64_t cache_hits, cache_misses, cache_entries;
    uint64_t memo_hits; /* USERS-7 */
    uint64_t verifications, failures, rate_limited, busy, cert_logins;
} auth_users_stats;
void auth_users_get_stats(auth_users *u, auth_users_stats *st);

#endif
