/*
 * acl.h - stream authorization as KurrentDB's default ("acl") policy:
 * who may read, write, delete, and read or write the metadata of a stream.
 *
 * Where the roles come from (KurrentDB's IndexReader.GetEffectiveAcl and
 * LegacyStreamPermissionAssertion):
 *   - the stream's own `$acl` in its metadata (`$$<stream>`), keys `$r`,
 *     `$w`, `$d`, `$mr`, `$mw`, each a role or an array of roles;
 *   - else the default of `$settings` (its last event: `$userStreamAcl` for
 *     user streams, `$systemStreamAcl` for streams whose name starts with
 *     `$`);
 *   - else the built-in default: every key `$all` for user streams, every
 *     key `$admins` for system streams.
 * A key the stream's `$acl` leaves out falls back to the same key of the
 * `$settings` default, then of the built-in one; an empty array is not
 * left out (nobody but admins).
 *
 * Design note (invariants; tests cite them as ACL-n):
 *  ACL-1  The system principal (an insecure server, factumd's own work)
 *         passes every check before anything is looked up.
 *  ACL-2  Metadata streams: reading `$$x` is x's `$mr`, writing it is x's
 *         `$mw`; deleting `$$x` is refused. `$all` (and "") can be read by
 *         its ACL (the metadata of `$all`, i.e. `$$$all`, else the system
 *         default: `$admins`) and never written or deleted.
 *  ACL-3  Admins (group `$admins` or login `admin`) pass every stream
 *         check but ACL-2's refusals.
 *  ACL-4  Anonymous principals never pass a stream check unless the
 *         server allows anonymous stream access (KurrentDB's
 *         AllowAnonymousStreamAccess, default off); a refusal of an
 *         anonymous principal is AUTH_UNAUTHENTICATED, of an authenticated
 *         one AUTH_DENIED.
 *  ACL-5  Malformed metadata or `$settings` never widens access: a
 *         metadata document whose `$acl` KurrentDB would not parse counts
 *         as having no `$acl` (KurrentDB then treats the whole document as
 *         empty), so the defaults apply; a `$settings` it would not parse
 *         is the built-in default.
 *  ACL-6  A decision always uses the current metadata: cached parsed ACLs
 *         are keyed by the version of the stream's metadata and of
 *         `$settings`, looked up on every check (so a change takes effect
 *         on the very next call).
 *  ACL-7  Bounded and allocation-free on the hot path: the cache is a
 *         fixed set-associative table (AUTH_ACL_CACHE_SLOTS); a stream
 *         without metadata, or a hit, allocates nothing. Only a miss
 *         (metadata written since) parses and allocates.
 *
 * Stream policies (KurrentDB's licensed alternative to ACLs, 24.10): the
 * last event of `$authorization-policy-settings` (type
 * `$authorization-policy-changed`, {"streamAccessPolicyType": "acl" |
 * "streampolicy"}) chooses the mechanism, else the configured default.
 * With "streampolicy", stream ACLs and `$settings` are ignored and the
 * last valid `$policy-updated` event of `$policies` decides: named access
 * policies ({"$r": [roles], ...}), prefix rules (the first whose
 * `startsWith` begins the stream name wins) and the defaults for user and
 * system streams; an empty `$policies` is KurrentDB's default policy.
 *  ACL-8  Stream policies fail closed: an invalid last event of
 *         `$authorization-policy-settings` restricts every stream to
 *         admins; an invalid `$policies` event is skipped for the last
 *         valid one (of the AUTH_POLICY_SCAN last), none valid restricts
 *         every stream to admins. Anonymous principals never pass, and
 *         `$all` in a policy does not include a principal whose groups
 *         are all `$ops` (KurrentDB's rule).
 */
#ifndef FACTUM_AUTH_ACL_H
#define FACTUM_AUTH_ACL_H

#include <stddef.h>
#include <stdint.h>

#include "auth/principal.h"

enum auth_action {
    AUTH_READ = 0,       /* $r */
    AUTH_WRITE = 1,      /* $w */
    AUTH_DELETE = 2,     /* $d */
    AUTH_META_READ = 3,  /* $mr */
    AUTH_META_WRITE = 4, /* $mw */
    AUTH_N_ACTIONS = 5,
};

/* Results of a check. */
#define AUTH_OK 0
#define AUTH_DENIED 1          /* authenticated, not allowed: PERMISSION_DENIED, access-denied */
#define AUTH_UNAUTHENTICATED 2 /* anonymous where a user is needed: UNAUTHENTICATED */

#define AUTH_ACL_CACHE_SLOTS 4096 /* in sets of AUTH_ACL_CACHE_WAYS, least recently used out */
#define AUTH_ACL_CACHE_WAYS 4
#define AUTH_SETTINGS_STREAM "$settings"
#define AUTH_POLICY_SETTINGS_STREAM "$authorization-policy-settings"
#define AUTH_POLICY_SETTINGS_TYPE "$authorization-policy-changed"
#define AUTH_POLICIES_STREAM "$policies"
#define AUTH_POLICIES_TYPE "$policy-updated"
#define AUTH_POLICY_SCAN 64

/* The stream access mechanism (KurrentDB's streamAccessPolicyType). */
enum auth_policy_type {
    AUTH_POLICY_ACL = 0,        /* "acl": stream ACLs and `$settings` */
    AUTH_POLICY_STREAMS = 1,    /* "streampolicy": prefix rules in `$policies` */
    AUTH_POLICY_RESTRICTED = 2, /* an invalid choice: admins only (ACL-8) */
};
/* "acl" / "streampolicy" -> enum; -1 for anything else. */
int auth_policy_type_parse(const char *name);

/* A parsed ACL: for each action, either not given (roles[a] == NULL) or a
 * list of n[a] roles (possibly empty). One allocation; free with
 * auth_acl_free. */
typedef struct auth_acl {
    const char *const *roles[AUTH_N_ACTIONS];
    size_t n[AUTH_N_ACTIONS];
} auth_acl;

/* Parse the `$acl` of a stream metadata document. *out = NULL (and 0) when
 * the document has no usable `$acl` (ACL-5); 0 or -ENOMEM. */
int auth_acl_from_metadata(const char *json, size_t len, auth_acl **out);
/* Stream policies (ACL-8): a parsed `$policies` document. */
typedef struct auth_policies auth_policies;
/* Parse a `$policy-updated` document; *out NULL (and 0) when invalid. */
int auth_policies_parse(const char *json, size_t len, auth_policies **out);
/* KurrentDB's default policy (static). */
const auth_policies *auth_policies_default(void);
void auth_policies_free(auth_policies *p);
/* The access policy of `stream` (not a metastream): its roles for action. */
void auth_policies_roles(const auth_policies *p, const char *stream, int action, const char *const **roles,
                         size_t *n);

/* Parse a `$settings` document: its `$userStreamAcl` and
 * `$systemStreamAcl` (each NULL when absent or when the document does not
 * parse, ACL-5). 0 or -ENOMEM. */
int auth_settings_parse(const char *json, size_t len, auth_acl **user, auth_acl **system);
void auth_acl_free(auth_acl *a);

/* The built-in defaults (static). */
const auth_acl *auth_acl_default_user(void);
const auth_acl *auth_acl_default_system(void);

/* The roles that decide `action` given the stream's own ACL (may be NULL),
 * the `$settings` default for its kind (may be NULL) and its kind. */
void auth_acl_roles(const auth_acl *stream, const auth_acl *settings, int system_stream, int action,
                    const char *const **roles, size_t *n);
/* Has p one of the roles (`$all` matches everyone)? */
int auth_roles_match(const auth_principal *p, const char *const *roles, size_t n);

/* ---- the evaluator with its cache (one per server, loop thread only) --- */

/* Where the evaluator finds metadata (the rpc layer gives the store's; the
 * unit tests a model). Each returns 0 or an error (a check then fails
 * closed: AUTH_DENIED). */
typedef struct auth_meta_source {
    /* The version of `stream`'s metadata (-1: none). Called on every
     * check: it must be cheap and must not allocate. */
    int (*meta_version)(void *ctx, const char *stream, int64_t *version);
    /* The metadata document (malloc'd, the caller frees) and its version. */
    int (*meta_load)(void *ctx, const char *stream, char **json, size_t *len, int64_t *version);
    /* The version of `stream`'s last event (-1: none, or not live);
     * cheap, called on every check for `$settings` and the policy streams. */
    int (*last_version)(void *ctx, const char *stream, int64_t *version);
    /* The event of `stream` at `version`: its data (malloc'd, the caller
     * frees) and its type (NUL-terminated, cut to type_cap). */
    int (*event_load)(void *ctx, const char *stream, int64_t version, char **json, size_t *len, char *type,
                      size_t type_cap);
    void *ctx;
} auth_meta_source;

typedef struct auth_authz auth_authz;

typedef struct auth_authz_stats {
    uint64_t checks, hits, misses, denied;
} auth_authz_stats;

/* 0 or -ENOMEM. allow_anonymous_streams: ACL-4. default_type: the
 * mechanism while `$authorization-policy-settings` is empty
 * (AUTH_POLICY_ACL or AUTH_POLICY_STREAMS). */
int auth_authz_new(const auth_meta_source *src, int allow_anonymous_streams, int default_type, auth_authz **out);
/* The mechanism in force now (enum auth_policy_type). */
int auth_authz_policy_type(auth_authz *z);
void auth_authz_free(auth_authz *z);
void auth_authz_stats_get(const auth_authz *z, auth_authz_stats *st);

/* May p do `action` on `stream`? AUTH_OK, AUTH_DENIED or
 * AUTH_UNAUTHENTICATED (ACL-1..7). stream "" is `$all`. */
int auth_check_stream(auth_authz *z, const auth_principal *p, const char *stream, int action);

/* What a live reader's access depends on: the versions of the metadata
 * that decided it. A subscription keeps one and asks auth_stamp_changed
 * on each wake-up; when it changed it checks again. */
typedef struct auth_stamp {
    int64_t meta_version;     /* the stream's metadata */
    int64_t settings_version; /* `$settings` */
    int64_t mode_version;     /* `$authorization-policy-settings` */
    int64_t policies_version; /* `$policies` */
} auth_stamp;
/* Fill *st with the current versions for `stream` (a metastream: those of
 * its stream). */
void auth_stamp_take(auth_authz *z, const char *stream, auth_stamp *st);
/* 1 when the versions moved since *st (and updates *st), else 0. */
int auth_stamp_changed(auth_authz *z, const char *stream, auth_stamp *st);

/* Is `stream` a system stream (starts with '$')? A metastream (`$$x`)? */
static inline int auth_is_system_stream(const char *s)
{
    return s[0] == '$';
}
static inline int auth_is_metastream(const char *s)
{
    return s[0] == '$' && s[1] == '$';
}

#endif
