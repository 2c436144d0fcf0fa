/*
 * principal.c - the identities of principal.h: making, sharing and matching
 * them against KurrentDB's roles.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"

static auth_principal p_system = {.refs = -1, .flags = AUTH_P_SYSTEM, .login = "", .n_groups = 0, .groups = NULL};
static auth_principal p_anon = {.refs = -1, .flags = AUTH_P_ANONYMOUS, .login = "", .n_groups = 0, .groups = NULL};

const auth_principal *auth_principal_system(void)
{
    return &p_system;
}

const auth_principal *auth_principal_anonymous(void)
{
    return &p_anon;
}

int auth_principal_new(const char *login, const char *const *groups, size_t n_groups, auth_principal **out)
{
    *out = NULL;
    auth_principal *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    atomic_init(&p->refs, 1);
    p->login = strdup(login ? login : "");
    p->groups = n_groups ? calloc(n_groups, sizeof *p->groups) : NULL;
    if (!p->login || (n_groups && !p->groups)) goto fail;
    for (size_t i = 0; i < n_groups; i++) {
        p->groups[i] = strdup(groups[i]);
        if (!p->groups[i]) goto fail;
        p->n_groups++;
    }
    *out = p;
    return 0;
fail:
    auth_principal_unref(p);
    return -ENOMEM;
}

const auth_principal *auth_principal_ref(const auth_principal *p)
{
    if (p && atomic_load(&p->refs) >= 0) atomic_fetch_add(&((auth_principal *)p)->refs, 1);
    return p;
}

void auth_principal_unref(const auth_principal *cp)
{
    auth_principal *p = (auth_principal *)cp;
    if (!p || atomic_load(&p->refs) < 0) return;
    if (atomic_fetch_sub(&p->refs, 1) != 1) return;
    for (size_t i = 0; i < p->n_groups; i++) free(p->groups[i]);
    free(p->groups);
    free(p->login);
    auth_principal *next = p->successor;
    free(p);
    auth_principal_unref(next);
}

const auth_principal *auth_principal_current(const auth_principal *p)
{
    while (p && p->successor)
        p = p->successor;
    return p;
}

void auth_principal_supersede(auth_principal *p, const auth_principal *next)
{
    if (!p || atomic_load(&p->refs) < 0) return;
    p = (auth_principal *)auth_principal_current(p);
    if (p == next || p->revoked) return;
    if (next)
        p->successor = (auth_principal *)auth_principal_ref(next);
    else
        p->revoked = 1;
}

int auth_principal_has_role(const auth_principal *p, const char *role)
{
    if (!p || !role) return 0;
    if (p->flags & AUTH_P_SYSTEM) return 1;
    if (p->revoked) return 0; /* PRINCIPAL-1 */
    if (strcmp(role, AUTH_ROLE_ALL) == 0) return 1;
    if (p->flags & AUTH_P_ANONYMOUS) return 0;
    if (strcmp(role, p->login) == 0) return 1;
    for (size_t i = 0; i < p->n_groups; i++)
        if (strcmp(role, p->groups[i]) == 0) return 1;
    return 0;
}

int auth_principal_is_admin(const auth_principal *p)
{
    return auth_principal_has_role(p, AUTH_ROLE_ADMINS) || auth_principal_has_role(p, AUTH_USER_ADMIN);
}

int auth_principal_is_ops_or_admin(const auth_principal *p)
{
    return auth_principal_is_admin(p) || auth_principal_has_role(p, AUTH_ROLE_OPS) ||
           auth_principal_has_role(p, AUTH_USER_OPS);
}

int auth_principal_authenticated(const auth_principal *p)
{
    return p && !(p->flags & AUTH_P_ANONYMOUS) && !p->revoked;
}
