/*
 * principal.h - who a call acts as: the identity that authentication gives
 * a call (src/auth/users.c and the gRPC/HTTP front ends) and that every
 * authorization check (src/auth/acl.c, the rpc handlers) reads. Kept tiny
 * and free of the store so that both sides and the unit tests share it.
 *
 * A principal is immutable once made, but for what became of its user, and
 * reference counted (atomically: the credential cache and calls on the loop
 * hold references, the password workers make new ones). A call keeps the
 * principal it was authenticated as for its whole life, and a stream call
 * (BatchAppend, a subscription, a consumer) can live as long as its
 * connection, so:
 *  PRINCIPAL-1  When a user changes, src/auth/users.c (on the loop) links
 *               the principals made for it before to what it is now: a new
 *               identity (groups) becomes their `successor`; disabling,
 *               deleting it or changing its password `revoke`s them. Checks
 *               ask auth_principal_current(): a call acts as its user is
 *               now, and as nobody (no roles, not authenticated) once its
 *               credentials no longer hold.
 * Two principals are static and never freed:
 *  - system: what a call acts as when factumd runs with --insecure (as in
 *    KurrentDB, no authentication and no authorization: every check passes)
 *    and what factumd's own work acts as;
 *  - anonymous: a call that brought no credentials on a secure server.
 *
 * Roles, as KurrentDB names them: an ACL entry or an operation's rule names
 * roles; a principal has the role of its login, of each of its groups, and
 * `$all` (everyone, anonymous included). `$admins` and `$ops` are groups.
 */
#ifndef FACTUM_AUTH_PRINCIPAL_H
#define FACTUM_AUTH_PRINCIPAL_H

#include <stdatomic.h>
#include <stddef.h>

#define AUTH_ROLE_ALL "$all"
#define AUTH_ROLE_ADMINS "$admins"
#define AUTH_ROLE_OPS "$ops"
#define AUTH_USER_ADMIN "admin"
#define AUTH_USER_OPS "ops"

enum {
    AUTH_P_SYSTEM = 1u << 0,    /* every check passes (insecure mode, factumd's own work) */
    AUTH_P_ANONYMOUS = 1u << 1, /* no credentials */
};

typedef struct auth_principal {
    atomic_int refs; /* < 0: static, never freed */
    unsigned flags;
    char *login;     /* "" for anonymous and system */
    size_t n_groups;
    char **groups;
    /* PRINCIPAL-1, loop thread only: what its user became (a reference), and
     * whether its user was disabled, deleted or its password changed. */
    struct auth_principal *successor;
    int revoked;
} auth_principal;

/* A principal for `login` with these groups (copied). 0 or -ENOMEM. */
int auth_principal_new(const char *login, const char *const *groups, size_t n_groups, auth_principal **out);
/* Another reference (returns p); static principals are returned as is. */
const auth_principal *auth_principal_ref(const auth_principal *p);
/* Drop a reference (NULL and static principals are ignored). */
void auth_principal_unref(const auth_principal *p);

/* PRINCIPAL-1: who p's user is now: the last of its successors (p itself
 * when its user has not changed), revoked or not. Borrowed, valid while p
 * is. Loop thread. */
const auth_principal *auth_principal_current(const auth_principal *p);
/* PRINCIPAL-1 (src/auth/users.c): p's user is now `next` (a reference is
 * taken), or no longer anyone (next NULL: p is revoked). Loop thread. */
void auth_principal_supersede(auth_principal *p, const auth_principal *next);

const auth_principal *auth_principal_system(void);
const auth_principal *auth_principal_anonymous(void);

/* Has p the role `role` (its login, one of its groups, or `$all`)? The
 * system principal has every role; anonymous has only `$all`; a revoked
 * principal none. */
int auth_principal_has_role(const auth_principal *p, const char *role);
/* KurrentDB's "Admins" claim set: group `$admins` or login `admin`. */
int auth_principal_is_admin(const auth_principal *p);
/* KurrentDB's "OperationsOrAdmins": admins, group `$ops` or login `ops`. */
int auth_principal_is_ops_or_admin(const auth_principal *p);
/* Authenticated: neither anonymous nor revoked (the system principal counts). */
int auth_principal_authenticated(const auth_principal *p);

#endif
