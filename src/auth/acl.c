/*
 * acl.c - the stream ACL evaluator of acl.h: parsing `$acl` and `$settings`
 * as KurrentDB does (StreamMetadata.ReadAcl, SystemSettings.FromJsonBytes),
 * choosing the roles that decide an action (GetEffectiveAcl), matching them
 * against a principal, and the per-stream cache that keeps the hot path
 * free of parsing and allocation (ACL-7).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "base/json.h"

static const char *const ACL_KEYS[AUTH_N_ACTIONS] = {"$r", "$w", "$d", "$mr", "$mw"};

/* ---- parsing ------------------------------------------------------------ */

/* Is v a role list KurrentDB reads: a string, or an array of strings? */
static int roles_ok(const json_value *v)
{
    if (v->type == JSON_STRING) return 1;
    if (v->type != JSON_ARRAY) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i]->type != JSON_STRING) return 0;
    return 1;
}

/* Build an auth_acl from an `$acl` object: one block holding the struct,
 * the role pointers and the strings. *out NULL when KurrentDB would not
 * read it (ACL-5). */
static int acl_make(const json_value *const v[AUTH_N_ACTIONS], int all_keys, auth_acl **out);

static int acl_build(const json_value *obj, auth_acl **out)
{
    *out = NULL;
    if (!obj || obj->type != JSON_OBJECT) return 0;
    const json_value *v[AUTH_N_ACTIONS] = {0};
    for (size_t i = 0; i < obj->n; i++) {
        int a;
        for (a = 0; a < AUTH_N_ACTIONS; a++)
            if (strcmp(obj->keys[i], ACL_KEYS[a]) == 0) break;
        if (a == AUTH_N_ACTIONS) return 0; /* KurrentDB's reader fails on an unknown key */
        if (!roles_ok(obj->items[i])) return 0;
        v[a] = obj->items[i]; /* the last of a repeated key, as JSON.NET */
    }
    return acl_make(v, 0, out);
}

/* One block from role lists (a string or an array of strings each; NULL:
 * not given, or with all_keys an empty list). */
static int acl_make(const json_value *const v[AUTH_N_ACTIONS], int all_keys, auth_acl **out)
{
    size_t n_roles = 0, bytes = 0;
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        if (!v[a]) continue;
        if (v[a]->type == JSON_STRING) {
            n_roles++;
            bytes += v[a]->len + 1;
        } else {
            n_roles += v[a]->n;
            for (size_t i = 0; i < v[a]->n; i++) bytes += v[a]->items[i]->len + 1;
        }
    }
    size_t head = sizeof(auth_acl) + n_roles * sizeof(char *);
    auth_acl *acl = malloc(head + bytes);
    if (!acl) return -ENOMEM;
    const char **slots = (const char **)(acl + 1);
    char *text = (char *)acl + head;
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        acl->roles[a] = all_keys ? slots : NULL;
        acl->n[a] = 0;
        if (!v[a]) continue;
        acl->roles[a] = slots;
        size_t k = v[a]->type == JSON_STRING ? 1 : v[a]->n;
        for (size_t i = 0; i < k; i++) {
            const json_value *s = v[a]->type == JSON_STRING ? v[a] : v[a]->items[i];
            memcpy(text, s->str, s->len + 1);
            *slots++ = text;
            text += s->len + 1;
        }
        acl->n[a] = k;
    }
    *out = acl;
    return 0;
}

/* The `$` keys KurrentDB reads as integers or a boolean: a document where
 * one has another type is read as empty (no `$acl` either, ACL-5). */
static int meta_types_ok(const json_value *doc)
{
    static const char *const ints[] = {"$maxCount", "$maxAge", "$tb", "$cacheControl"};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        const json_value *v = json_get(doc, ints[i]);
        int64_t x;
        if (v && json_int64(v, &x)) return 0;
    }
    const json_value *t = json_get(doc, "$tempStream");
    if (t && t->type != JSON_TRUE && t->type != JSON_FALSE) return 0;
    return 1;
}

int auth_acl_from_metadata(const char *json, size_t len, auth_acl **out)
{
    *out = NULL;
    json_value *doc;
    int rc = json_parse(json, len, &doc);
    if (rc) return rc == -ENOMEM ? rc : 0;
    if (doc->type == JSON_OBJECT && meta_types_ok(doc)) rc = acl_build(json_get(doc, "$acl"), out);
    json_free(doc);
    return rc;
}

int auth_settings_parse(const char *json, size_t len, auth_acl **user, auth_acl **system)
{
    *user = *system = NULL;
    json_value *doc;
    int rc = json_parse(json, len, &doc);
    if (rc) return rc == -ENOMEM ? rc : 0;
    if (doc->type != JSON_OBJECT) goto out;
    const json_value *u = json_get(doc, "$userStreamAcl"), *s = json_get(doc, "$systemStreamAcl");
    /* KurrentDB fails the whole document when either is unreadable (ACL-5). */
    auth_acl *ua = NULL, *sa = NULL;
    if (u && ((rc = acl_build(u, &ua)) || !ua)) goto out;
    if (s && ((rc = acl_build(s, &sa)) || !sa)) {
        auth_acl_free(ua);
        goto out;
    }
    *user = ua;
    *system = sa;
out:
    json_free(doc);
    return rc;
}

void auth_acl_free(auth_acl *a)
{
    free(a);
}

/* ---- stream policies (ACL-8) ------------------------------------------------ */

struct auth_policies {
    size_t n_pol;
    char **names;
    auth_acl **pol;
    size_t n_rules;
    char **prefix;
    size_t *rule_pol;
    size_t user_pol, system_pol;
};

int auth_policy_type_parse(const char *name)
{
    if (strcmp(name, "acl") == 0) return AUTH_POLICY_ACL;
    if (strcmp(name, "streampolicy") == 0) return AUTH_POLICY_STREAMS;
    return -1;
}

void auth_policies_free(auth_policies *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_pol; i++) {
        free(p->names[i]);
        auth_acl_free(p->pol[i]);
    }
    for (size_t i = 0; i < p->n_rules; i++) free(p->prefix[i]);
    free(p->names);
    free(p->pol);
    free(p->prefix);
    free(p->rule_pol);
    free(p);
}

static int policy_index(const auth_policies *p, const json_value *name, size_t *out)
{
    if (!name || name->type != JSON_STRING) return 0;
    for (size_t i = 0; i < p->n_pol; i++)
        if (strcmp(p->names[i], name->str) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

/* Roles of an access policy: arrays of strings (null or missing: none). */
static int policy_acl(const json_value *obj, auth_acl **out)
{
    *out = NULL;
    if (obj->type != JSON_OBJECT) return 0;
    const json_value *v[AUTH_N_ACTIONS] = {0};
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        const json_value *x = json_get(obj, ACL_KEYS[a]);
        if (!x || x->type == JSON_NULL) continue;
        if (x->type != JSON_ARRAY || !roles_ok(x)) return 0;
        v[a] = x;
    }
    return acl_make(v, 1, out);
}

int auth_policies_parse(const char *json, size_t len, auth_policies **out)
{
    *out = NULL;
    json_value *doc;
    int rc = json_parse(json, len, &doc);
    if (rc) return rc == -ENOMEM ? rc : 0;
    auth_policies *p = NULL;
    const json_value *pols = doc->type == JSON_OBJECT ? json_get(doc, "streamPolicies") : NULL;
    const json_value *rules = doc->type == JSON_OBJECT ? json_get(doc, "streamRules") : NULL;
    const json_value *defs = doc->type == JSON_OBJECT ? json_get(doc, "defaultStreamRules") : NULL;
    if (!pols || pols->type != JSON_OBJECT || !rules || rules->type != JSON_ARRAY || !defs ||
        defs->type != JSON_OBJECT)
        goto invalid;
    rc = -ENOMEM;
    if (!(p = calloc(1, sizeof *p))) goto out;
    if (pols->n && (!(p->names = calloc(pols->n, sizeof *p->names)) || !(p->pol = calloc(pols->n, sizeof *p->pol))))
        goto out;
    for (size_t i = 0; i < pols->n; i++) {
        /* a repeated name: the last one, as a dictionary would keep it */
        size_t at = p->n_pol;
        json_value key = {.type = JSON_STRING, .str = pols->keys[i], .len = pols->key_lens[i]};
        if (policy_index(p, &key, &at)) {
            auth_acl_free(p->pol[at]);
            p->pol[at] = NULL;
        } else {
            if (!(p->names[at] = strdup(pols->keys[i]))) goto out;
            p->n_pol++;
        }
        if ((rc = policy_acl(pols->items[i], &p->pol[at]))) goto out;
        rc = -ENOMEM;
        if (!p->pol[at]) goto invalid;
    }
    if (rules->n && (!(p->prefix = calloc(rules->n, sizeof *p->prefix)) ||
                     !(p->rule_pol = calloc(rules->n, sizeof *p->rule_pol))))
        goto out;
    for (size_t i = 0; i < rules->n; i++) {
        const json_value *r = rules->items[i];
        const json_value *sw = r->type == JSON_OBJECT ? json_get(r, "startsWith") : NULL;
        if (!sw || sw->type != JSON_STRING || !sw->len || memchr(sw->str, 0, sw->len)) goto invalid;
        if (!policy_index(p, json_get(r, "policy"), &p->rule_pol[i])) goto invalid;
        if (!(p->prefix[i] = strdup(sw->str))) goto out;
        p->n_rules++;
    }
    if (!policy_index(p, json_get(defs, "userStreams"), &p->user_pol) ||
        !policy_index(p, json_get(defs, "systemStreams"), &p->system_pol))
        goto invalid;
    *out = p;
    p = NULL;
invalid:
    rc = 0;
out:
    auth_policies_free(p);
    json_free(doc);
    return rc;
}

static const char DEFAULT_POLICY[] =
    "{\"streamPolicies\":{"
    "\"publicDefault\":{\"$r\":[\"$all\"],\"$w\":[\"$all\"],\"$d\":[\"$all\"],\"$mr\":[\"$all\"],\"$mw\":[\"$all\"]},"
    "\"adminsDefault\":{\"$r\":[\"$admins\"],\"$w\":[\"$admins\"],\"$d\":[\"$admins\"],\"$mr\":[\"$admins\"],"
    "\"$mw\":[\"$admins\"]},"
    "\"projectionsDefault\":{\"$r\":[\"$all\"],\"$w\":[\"$admins\"],\"$d\":[\"$admins\"],\"$mr\":[\"$all\"],"
    "\"$mw\":[\"$admins\"]}},"
    "\"streamRules\":[{\"startsWith\":\"$et-\",\"policy\":\"projectionsDefault\"},"
    "{\"startsWith\":\"$ce-\",\"policy\":\"projectionsDefault\"},"
    "{\"startsWith\":\"$bc-\",\"policy\":\"projectionsDefault\"},"
    "{\"startsWith\":\"$category-\",\"policy\":\"projectionsDefault\"},"
    "{\"startsWith\":\"$streams\",\"policy\":\"projectionsDefault\"}],"
    "\"defaultStreamRules\":{\"userStreams\":\"publicDefault\",\"systemStreams\":\"adminsDefault\"}}";

const auth_policies *auth_policies_default(void)
{
    /* parsed once (loop thread, or a test's thread); kept for the process */
    static auth_policies *def;
    if (!def && auth_policies_parse(DEFAULT_POLICY, sizeof DEFAULT_POLICY - 1, &def)) def = NULL;
    return def;
}

void auth_policies_roles(const auth_policies *p, const char *stream, int action, const char *const **roles,
                         size_t *n)
{
    size_t k = auth_is_system_stream(stream) ? p->system_pol : p->user_pol;
    for (size_t i = 0; i < p->n_rules; i++)
        if (strncmp(stream, p->prefix[i], strlen(p->prefix[i])) == 0) {
            k = p->rule_pol[i];
            break;
        }
    *roles = p->pol[k]->roles[action];
    *n = p->pol[k]->n[action];
}

/* KurrentDB's stream-policy match: `$all` opens a policy to everyone but a
 * principal whose groups are all `$ops`; other roles by login or group. */
static int policy_match(const auth_principal *p, const char *const *roles, size_t n)
{
    int ops_only = p->n_groups > 0;
    for (size_t i = 0; i < p->n_groups && ops_only; i++) ops_only = strcmp(p->groups[i], AUTH_ROLE_OPS) == 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(roles[i], AUTH_ROLE_ALL) == 0) {
            if (!ops_only) return 1;
        } else if (auth_principal_has_role(p, roles[i])) {
            return 1;
        }
    }
    return 0;
}

static const char *const R_ALL[] = {AUTH_ROLE_ALL};
static const char *const R_ADMINS[] = {AUTH_ROLE_ADMINS};
static const auth_acl ACL_USER = {{R_ALL, R_ALL, R_ALL, R_ALL, R_ALL}, {1, 1, 1, 1, 1}};
static const auth_acl ACL_SYSTEM = {{R_ADMINS, R_ADMINS, R_ADMINS, R_ADMINS, R_ADMINS}, {1, 1, 1, 1, 1}};

const auth_acl *auth_acl_default_user(void)
{
    return &ACL_USER;
}

const auth_acl *auth_acl_default_system(void)
{
    return &ACL_SYSTEM;
}

void auth_acl_roles(const auth_acl *stream, const auth_acl *settings, int system_stream, int action,
                    const char *const **roles, size_t *n)
{
    const auth_acl *def = system_stream ? &ACL_SYSTEM : &ACL_USER;
    const auth_acl *sys = settings ? settings : def;
    const auth_acl *acl = stream ? stream : sys;
    const auth_acl *from = acl->roles[action] ? acl : sys->roles[action] ? sys : def;
    *roles = from->roles[action];
    *n = from->n[action];
}

int auth_roles_match(const auth_principal *p, const char *const *roles, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (auth_principal_has_role(p, roles[i])) return 1;
    return 0;
}

/* ---- the evaluator -------------------------------------------------------- */

typedef struct acl_slot {
    char *stream; /* NULL: empty */
    uint64_t hash;
    int64_t version; /* of the stream's metadata when parsed */
    auth_acl *acl;   /* NULL: the metadata has no `$acl` */
    uint64_t used;   /* the evaluator's tick when last used */
} acl_slot;

struct auth_authz {
    auth_meta_source src;
    int allow_anonymous;
    int default_type;
    int64_t mode_version; /* of `$authorization-policy-settings` when read; -2: not yet */
    int mode;             /* enum auth_policy_type in force */
    int64_t policies_version;
    auth_policies *policies_own;     /* parsed from `$policies` */
    const auth_policies *policies;   /* in force: own, the default, or NULL (admins only) */
    int64_t settings_version; /* of the parsed settings; -2: not read yet */
    auth_acl *set_user, *set_system;
    auth_authz_stats st;
    uint64_t tick;
    acl_slot slots[AUTH_ACL_CACHE_SLOTS];
};

int auth_authz_new(const auth_meta_source *src, int allow_anonymous_streams, int default_type, auth_authz **out)
{
    auth_authz *z = calloc(1, sizeof *z);
    if (!z) return -ENOMEM;
    z->src = *src;
    z->allow_anonymous = allow_anonymous_streams;
    z->default_type = default_type == AUTH_POLICY_STREAMS ? AUTH_POLICY_STREAMS : AUTH_POLICY_ACL;
    z->mode_version = z->policies_version = -2;
    z->settings_version = -2;
    *out = z;
    return 0;
}

void auth_authz_free(auth_authz *z)
{
    if (!z) return;
    for (size_t i = 0; i < AUTH_ACL_CACHE_SLOTS; i++) {
        free(z->slots[i].stream);
        auth_acl_free(z->slots[i].acl);
    }
    auth_acl_free(z->set_user);
    auth_acl_free(z->set_system);
    auth_policies_free(z->policies_own);
    free(z);
}

void auth_authz_stats_get(const auth_authz *z, auth_authz_stats *st)
{
    *st = z->st;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* The mechanism in force (ACL-8): the last event of
 * `$authorization-policy-settings`, else the configured default. */
static int mode_current(auth_authz *z)
{
    int64_t v;
    int rc = z->src.last_version(z->src.ctx, AUTH_POLICY_SETTINGS_STREAM, &v);
    if (rc) return rc;
    if (v == z->mode_version) return 0;
    int mode = z->default_type;
    if (v >= 0) {
        char *json, type[64];
        size_t len;
        if ((rc = z->src.event_load(z->src.ctx, AUTH_POLICY_SETTINGS_STREAM, v, &json, &len, type, sizeof type)))
            return rc;
        json_value *doc = NULL;
        rc = json_parse(json, len, &doc);
        free(json);
        if (rc == -ENOMEM) return rc;
        mode = AUTH_POLICY_RESTRICTED;
        const json_value *t = !rc && doc->type == JSON_OBJECT ? json_get(doc, "streamAccessPolicyType") : NULL;
        if (strcmp(type, AUTH_POLICY_SETTINGS_TYPE) == 0 && t && t->type == JSON_STRING) {
            int k = auth_policy_type_parse(t->str);
            if (k >= 0) mode = k;
        }
        json_free(doc);
    }
    z->mode = mode;
    z->mode_version = v;
    return 0;
}

/* The stream policies in force (ACL-8): the last valid event of
 * `$policies` among its AUTH_POLICY_SCAN last, the default when it is
 * empty, NULL (admins only) when none is valid. */
static int policies_current(auth_authz *z)
{
    int64_t v;
    int rc = z->src.last_version(z->src.ctx, AUTH_POLICIES_STREAM, &v);
    if (rc) return rc;
    if (v == z->policies_version) return 0;
    auth_policies *found = NULL;
    for (int64_t at = v; at >= 0 && at > v - AUTH_POLICY_SCAN && !found; at--) {
        char *json, type[64];
        size_t len;
        if ((rc = z->src.event_load(z->src.ctx, AUTH_POLICIES_STREAM, at, &json, &len, type, sizeof type))) break;
        rc = strcmp(type, AUTH_POLICIES_TYPE) == 0 ? auth_policies_parse(json, len, &found) : 0;
        free(json);
        if (rc) return rc;
    }
    auth_policies_free(z->policies_own);
    z->policies_own = found;
    z->policies = v < 0 ? auth_policies_default() : found;
    z->policies_version = v;
    return 0;
}

int auth_authz_policy_type(auth_authz *z)
{
    return mode_current(z) ? AUTH_POLICY_RESTRICTED : z->mode;
}

/* The current `$settings` defaults (ACL-6). 0 or an error. */
static int settings_current(auth_authz *z)
{
    int64_t v;
    int rc = z->src.last_version(z->src.ctx, AUTH_SETTINGS_STREAM, &v);
    if (rc) return rc;
    if (v == z->settings_version) return 0;
    auth_acl *u = NULL, *s = NULL;
    if (v >= 0) {
        char *json, type[8];
        size_t len;
        if ((rc = z->src.event_load(z->src.ctx, AUTH_SETTINGS_STREAM, v, &json, &len, type, sizeof type))) return rc;
        rc = auth_settings_parse(json, len, &u, &s);
        free(json);
        if (rc) return rc;
    }
    auth_acl_free(z->set_user);
    auth_acl_free(z->set_system);
    z->set_user = u;
    z->set_system = s;
    z->settings_version = v;
    return 0;
}

/* The stream's own ACL (NULL: none), from the cache when its metadata has
 * not moved (ACL-6, ACL-7). 0 or an error. */
static int stream_acl(auth_authz *z, const char *stream, const auth_acl **out)
{
    *out = NULL;
    int64_t v;
    int rc = z->src.meta_version(z->src.ctx, stream, &v);
    if (rc) return rc;
    if (v < 0) return 0; /* the fast path: no metadata */
    uint64_t h = name_hash(stream);
    acl_slot *set = &z->slots[(h % (AUTH_ACL_CACHE_SLOTS / AUTH_ACL_CACHE_WAYS)) * AUTH_ACL_CACHE_WAYS];
    acl_slot *sl = NULL; /* the stream's slot, else the least recently used */
    for (int w = 0; w < AUTH_ACL_CACHE_WAYS; w++) {
        acl_slot *x = &set[w];
        if (x->stream && x->hash == h && strcmp(x->stream, stream) == 0) {
            sl = x;
            break;
        }
        if (!sl || (sl->stream && (!x->stream || x->used < sl->used))) sl = x;
    }
    sl->used = ++z->tick;
    if (sl->stream && sl->hash == h && sl->version == v && strcmp(sl->stream, stream) == 0) {
        z->st.hits++;
        *out = sl->acl;
        return 0;
    }
    z->st.misses++;
    char *json;
    size_t len;
    if ((rc = z->src.meta_load(z->src.ctx, stream, &json, &len, &v))) return rc;
    auth_acl *acl;
    rc = auth_acl_from_metadata(json, len, &acl);
    free(json);
    if (rc) return rc;
    char *name = strdup(stream);
    if (!name) {
        auth_acl_free(acl);
        return -ENOMEM;
    }
    free(sl->stream);
    auth_acl_free(sl->acl);
    *sl = (acl_slot){name, h, v, acl, z->tick};
    *out = acl;
    return 0;
}

static int refuse(auth_authz *z, const auth_principal *p)
{
    z->st.denied++;
    return auth_principal_authenticated(p) ? AUTH_DENIED : AUTH_UNAUTHENTICATED;
}

int auth_check_stream(auth_authz *z, const auth_principal *p, const char *stream, int action)
{
    if (!p || (p->flags & AUTH_P_SYSTEM)) return p ? AUTH_OK : AUTH_DENIED; /* ACL-1 */
    z->st.checks++;
    const char *s = *stream ? stream : "$all";
    if (strcmp(s, "$all") == 0 && (action == AUTH_WRITE || action == AUTH_DELETE)) return refuse(z, p);
    if (auth_is_metastream(s)) { /* ACL-2 */
        if (action == AUTH_READ) action = AUTH_META_READ;
        else if (action == AUTH_WRITE) action = AUTH_META_WRITE;
        else if (action != AUTH_META_READ && action != AUTH_META_WRITE) return refuse(z, p);
        s += 2;
        if (!*s) return refuse(z, p);
    }
    if (auth_principal_is_admin(p)) return AUTH_OK; /* ACL-3 */
    if (mode_current(z)) return refuse(z, p); /* fail closed */
    if (z->mode != AUTH_POLICY_ACL) { /* ACL-8 */
        if (!auth_principal_authenticated(p) || z->mode == AUTH_POLICY_RESTRICTED || policies_current(z) ||
            !z->policies)
            return refuse(z, p);
        const char *const *proles;
        size_t pn;
        auth_policies_roles(z->policies, s, action, &proles, &pn);
        return policy_match(p, proles, pn) ? AUTH_OK : refuse(z, p);
    }
    if (!auth_principal_authenticated(p) && !z->allow_anonymous) return refuse(z, p); /* ACL-4 */
    const auth_acl *acl;
    if (settings_current(z) || stream_acl(z, s, &acl)) return refuse(z, p); /* fail closed */
    int sys = auth_is_system_stream(s);
    const char *const *roles;
    size_t n;
    auth_acl_roles(acl, sys ? z->set_system : z->set_user, sys, action, &roles, &n);
    return auth_roles_match(p, roles, n) ? AUTH_OK : refuse(z, p);
}

void auth_stamp_take(auth_authz *z, const char *stream, auth_stamp *st)
{
    const char *s = *stream ? stream : "$all";
    if (auth_is_metastream(s)) s += 2;
    st->meta_version = st->settings_version = st->mode_version = st->policies_version = -3;
    if (!*s || z->src.meta_version(z->src.ctx, s, &st->meta_version)) st->meta_version = -3;
    if (z->src.last_version(z->src.ctx, AUTH_SETTINGS_STREAM, &st->settings_version)) st->settings_version = -3;
    if (z->src.last_version(z->src.ctx, AUTH_POLICY_SETTINGS_STREAM, &st->mode_version)) st->mode_version = -3;
    if (z->src.last_version(z->src.ctx, AUTH_POLICIES_STREAM, &st->policies_version)) st->policies_version = -3;
}

int auth_stamp_changed(auth_authz *z, const char *stream, auth_stamp *st)
{
    auth_stamp now;
    auth_stamp_take(z, stream, &now);
    if (now.meta_version == st->meta_version && now.settings_version == st->settings_version &&
        now.mode_version == st->mode_version && now.policies_version == st->policies_version)
        return 0;
    *st = now;
    return 1;
}
