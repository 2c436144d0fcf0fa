/* Fuzz target: the authorization documents (src/auth/acl.c) - a stream's
 * metadata `$acl`, `$settings` and stream policies (`$policies`) come from
 * what clients write. Whatever they hold, parsing never crashes, and what
 * parses can be asked for every action's roles. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const auth_acl *a)
{
    if (!a) return;
    for (int k = 0; k < AUTH_N_ACTIONS; k++)
        for (size_t i = 0; i < a->n[k]; i++)
            if (!a->roles[k] || !a->roles[k][i]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    auth_acl *a = NULL, *u = NULL, *s = NULL;
    if (auth_acl_from_metadata(p, size, &a) == 0) walk(a);
    if (auth_settings_parse(p, size, &u, &s) == 0) {
        walk(u);
        walk(s);
    }
    auth_policies *pol = NULL;
    if (auth_policies_parse(p, size, &pol) == 0 && pol) {
        static const char *streams[] = {"a", "account-1", "$ce-x", "$all", ""};
        for (size_t i = 0; i < sizeof streams / sizeof *streams; i++)
            for (int k = 0; k < AUTH_N_ACTIONS; k++) {
                const char *const *roles;
                size_t n;
                auth_policies_roles(pol, streams[i], k, &roles, &n);
                for (size_t j = 0; j < n; j++)
                    if (!roles[j]) abort();
            }
    }
    auth_policies_free(pol);
    auth_acl_free(a);
    auth_acl_free(u);
    auth_acl_free(s);
    free(p);
    return 0;
}
