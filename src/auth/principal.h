/*
 * principal.h - who a call acts as: the identity that authentication gives
 * a call (src/auth/users.c and the gRPC/HTTP front ends) and that every
 * authorization check (src/auth/acl.c, the rpc handlers) reads. Kept tiny
 * and free of the store so that both sides and the unit tests share it.
 *
 * A principal is immutable once made and reference counted (atomically:
 * the credential cache and calls on the loop hold references, the password
 * workers make new ones). Two principals are static and never freed:
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
} auth_principal;

/* A principal for `login` with these groups (copied). 0 or -ENOMEM. */
int auth_principal_new(const char *login, const char *const *groups, size_t n_groups, auth_principal **out);
/* Another reference (returns p); static principals are returned as is. */
const auth_principal *auth_principal_ref(const auth_principal *p);
/* Drop a reference (NULL and static principals are ignored). */
void auth_principal_unref(const auth_principal *p);

const auth_principal *auth_principal_system(void);
const auth_principal *auth_principal_anonymous(void);

/* Has p the role `role` (its login, one of its groups, or `$all`)? The
 * system principal has every role; anonymous has only `$all`. */
int auth_principal_has_role(const auth_principal *p, const char *role);
/* KurrentDB's "Admins" claim set: group `$admins` or login `admin`. */
int auth_principal_is_admin(const auth_principal *p);
/* KurrentDB's "OperationsOrAdmins": admins, group `$ops` or login `ops`. */
int auth_principal_is_ops_or_admin(const auth_principal *p);
/* Authenticated: not anonymous (the system principal counts). */
int auth_principal_authenticated(const auth_principal *p);

#endif
