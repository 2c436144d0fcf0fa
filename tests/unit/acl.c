/* Unit tests of src/auth/acl.c and src/auth/policy.c: stream ACLs from
 * metadata (every key, strings and arrays, users and groups), defaults from
 * `$settings` and the built-in ones, system streams, metadata streams and
 * `$all` (ACL-2), admins (ACL-3), anonymous (ACL-4), malformed documents
 * (ACL-5), cache invalidation by version (ACL-6, ACL-7), the system
 * principal (ACL-1), failing closed, the operation table, principals whose
 * user changed (PRINCIPAL-1), and a randomised run of the cached evaluator
 * against a fresh one (seed printed). */
#include "harness.h"

#include "auth/acl.h"
#include "auth/policy.h"

/* ---- a model of the store's metadata ------------------------------------ */

#define MAXS 64
typedef struct model {
    char name[MAXS][64];
    char json[MAXS][512];
    int64_t version[MAXS];
    size_t n;
    int fail;       /* every call fails */
    int loads;      /* meta_load calls */
    int version_calls;
} model;

/* $settings and the policy streams: their events by version. */
#define MAXE 16
typedef struct mstream {
    const char *name;
    char data[MAXE][512];
    char type[MAXE][40];
    int64_t last;
} mstream;
static mstream SETTINGS = {.name = AUTH_SETTINGS_STREAM}, PSET = {.name = AUTH_POLICY_SETTINGS_STREAM},
              POLS = {.name = AUTH_POLICIES_STREAM};

static mstream *ms_of(const char *s)
{
    return !strcmp(s, SETTINGS.name) ? &SETTINGS : !strcmp(s, PSET.name) ? &PSET : !strcmp(s, POLS.name) ? &POLS : NULL;
}

static void ms_append(mstream *m, const char *type, const char *json)
{
    m->last++;
    snprintf(m->data[m->last % MAXE], sizeof m->data[0], "%s", json);
    snprintf(m->type[m->last % MAXE], sizeof m->type[0], "%s", type);
}

static int m_find(model *m, const char *s)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->name[i], s) == 0) return (int)i;
    return -1;
}

static void m_set(model *m, const char *stream, const char *json)
{
    int i = m_find(m, stream);
    if (i < 0) {
        i = (int)m->n++;
        snprintf(m->name[i], sizeof m->name[i], "%s", stream);
        m->version[i] = -1;
    }
    snprintf(m->json[i], sizeof m->json[i], "%s", json);
    m->version[i]++;
}

static void m_settings(model *m, const char *json)
{
    (void)m;
    ms_append(&SETTINGS, "$settings", json);
}

static int src_version(void *ctx, const char *stream, int64_t *v)
{
    model *m = ctx;
    m->version_calls++;
    if (m->fail) return -EIO;
    int i = m_find(m, stream);
    *v = i < 0 ? -1 : m->version[i];
    return 0;
}

static int src_load(void *ctx, const char *stream, char **json, size_t *len, int64_t *v)
{
    model *m = ctx;
    m->loads++;
    if (m->fail) return -EIO;
    int i = m_find(m, stream);
    const char *j = i < 0 ? "{}" : m->json[i];
    *json = strdup(j);
    *len = strlen(j);
    *v = i < 0 ? -1 : m->version[i];
    return *json ? 0 : -ENOMEM;
}

static int src_last(void *ctx, const char *stream, int64_t *v)
{
    model *m = ctx;
    if (m->fail) return -EIO;
    mstream *x = ms_of(stream);
    *v = x ? x->last : -1;
    return 0;
}

static int src_event(void *ctx, const char *stream, int64_t v, char **json, size_t *len, char *type, size_t cap)
{
    model *m = ctx;
    m->loads++;
    mstream *x = ms_of(stream);
    if (!x || v < 0 || v > x->last || v <= x->last - MAXE) return FACTUM_ENOTFOUND;
    *json = strdup(x->data[v % MAXE]);
    *len = strlen(x->data[v % MAXE]);
    snprintf(type, cap, "%s", x->type[v % MAXE]);
    return *json ? 0 : -ENOMEM;
}

static model M;
static auth_authz *Z;
static auth_principal *alice, *bob, *admin, *ops, *carol_admins, *dave_ops;

static void setup(int allow_anon)
{
    memset(&M, 0, sizeof M);
    SETTINGS.last = PSET.last = POLS.last = -1;
    auth_meta_source src = {src_version, src_load, src_last, src_event, &M};
    auth_authz_free(Z);
    Z = NULL;
    CHECK_RC(auth_authz_new(&src, allow_anon, AUTH_POLICY_ACL, &Z), 0);
}

static const auth_principal *anon(void)
{
    return auth_principal_anonymous();
}

static int chk(const auth_principal *p, const char *s, int a)
{
    return auth_check_stream(Z, p, s, a);
}

static void t_defaults(void)
{
    setup(0);
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        CHECK(chk(alice, "orders-1", a) == AUTH_OK);   /* user streams: $all */
        CHECK(chk(anon(), "orders-1", a) == AUTH_UNAUTHENTICATED); /* ACL-4 */
        CHECK(chk(alice, "$ce-orders", a) == AUTH_DENIED); /* system streams: $admins */
        CHECK(chk(ops, "$ce-orders", a) == AUTH_DENIED);
        CHECK(chk(admin, "$ce-orders", a) == AUTH_OK); /* ACL-3 */
        CHECK(chk(carol_admins, "$ce-orders", a) == AUTH_OK);
        CHECK(chk(anon(), "$ce-orders", a) == AUTH_UNAUTHENTICATED);
    }
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(alice, "", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(admin, "$all", AUTH_READ) == AUTH_OK);
    CHECK(M.loads == 0); /* no metadata anywhere: nothing loaded (ACL-7) */
}

static void t_system_principal(void)
{
    setup(0);
    M.fail = 1; /* ACL-1: nothing is asked */
    const auth_principal *sys = auth_principal_system();
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        CHECK(chk(sys, "$all", a) == AUTH_OK);
        CHECK(chk(sys, "$$x", a) == AUTH_OK);
        CHECK(chk(sys, "$settings", a) == AUTH_OK);
    }
    CHECK(M.version_calls == 0);
    CHECK(auth_check_op(sys, AUTH_OP_NODE_SHUTDOWN, NULL, 0) == AUTH_OK);
}

static void t_each_key(void)
{
    setup(0);
    static const char *keys[] = {"$r", "$w", "$d", "$mr", "$mw"};
    for (int a = 0; a < AUTH_N_ACTIONS; a++) {
        char doc[128], name[32];
        snprintf(name, sizeof name, "s-%d", a);
        snprintf(doc, sizeof doc, "{\"$acl\":{\"%s\":\"alice\"}}", keys[a]);
        m_set(&M, name, doc);
        for (int b = 0; b < AUTH_N_ACTIONS; b++) {
            /* the key given decides its action; the others fall back to $all */
            CHECK(chk(alice, name, b) == AUTH_OK);
            CHECK(chk(bob, name, b) == (a == b ? AUTH_DENIED : AUTH_OK));
            CHECK(chk(admin, name, b) == AUTH_OK);
        }
        snprintf(doc, sizeof doc, "{\"$acl\":{\"%s\":[\"bob\",\"$ops\"]}}", keys[a]);
        m_set(&M, name, doc);
        CHECK(chk(alice, name, a) == AUTH_DENIED);
        CHECK(chk(bob, name, a) == AUTH_OK);
        CHECK(chk(dave_ops, name, a) == AUTH_OK); /* by group */
        CHECK(chk(ops, name, a) == AUTH_DENIED);  /* login ops is not group $ops in an ACL */
        snprintf(doc, sizeof doc, "{\"$acl\":{\"%s\":[]}}", keys[a]);
        m_set(&M, name, doc);
        CHECK(chk(bob, name, a) == AUTH_DENIED); /* empty: nobody but admins */
        CHECK(chk(admin, name, a) == AUTH_OK);
        snprintf(doc, sizeof doc, "{\"$acl\":{\"%s\":\"$all\"}}", keys[a]);
        m_set(&M, name, doc);
        CHECK(chk(bob, name, a) == AUTH_OK);
        CHECK(chk(anon(), name, a) == AUTH_UNAUTHENTICATED); /* ACL-4 still */
    }
}

static void t_metastreams(void)
{
    setup(0);
    m_set(&M, "acct", "{\"$acl\":{\"$r\":\"alice\",\"$mr\":\"bob\",\"$mw\":\"carol\"}}");
    CHECK(chk(alice, "acct", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "$$acct", AUTH_READ) == AUTH_DENIED); /* ACL-2: $$x read is x's $mr */
    CHECK(chk(bob, "$$acct", AUTH_READ) == AUTH_OK);
    CHECK(chk(bob, "acct", AUTH_META_READ) == AUTH_OK);
    CHECK(chk(bob, "$$acct", AUTH_WRITE) == AUTH_DENIED);
    CHECK(chk(carol_admins, "$$acct", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(admin, "$$acct", AUTH_DELETE) == AUTH_DENIED); /* deleting a metastream: refused */
    /* the metastream of a system stream is the system stream's */
    CHECK(chk(alice, "$$$ce-x", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(admin, "$$$ce-x", AUTH_READ) == AUTH_OK);
}

static void t_all(void)
{
    setup(0);
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_DENIED);
    m_set(&M, "$all", "{\"$acl\":{\"$r\":[\"alice\"]}}"); /* written as $$$all */
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_OK);
    CHECK(chk(bob, "$all", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(bob, "$$$all", AUTH_READ) == AUTH_DENIED); /* its $mr: system default */
    CHECK(chk(admin, "$$$all", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(admin, "$all", AUTH_WRITE) == AUTH_DENIED); /* ACL-2 */
    CHECK(chk(admin, "$all", AUTH_DELETE) == AUTH_DENIED);
    CHECK(chk(alice, "", AUTH_READ) == AUTH_OK);
}

static void t_settings(void)
{
    setup(0);
    m_settings(&M, "{\"$userStreamAcl\":{\"$r\":\"$all\",\"$w\":\"writers\"},"
                   "\"$systemStreamAcl\":{\"$r\":[\"$admins\",\"alice\"]},\"other\":[1,{\"a\":2}]}");
    CHECK(chk(alice, "o-1", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "o-1", AUTH_WRITE) == AUTH_DENIED);
    CHECK(chk(bob, "o-1", AUTH_WRITE) == AUTH_OK); /* bob is in group writers */
    CHECK(chk(alice, "o-1", AUTH_DELETE) == AUTH_OK); /* not given: the built-in $all */
    CHECK(chk(alice, "$ce-o", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "$ce-o", AUTH_WRITE) == AUTH_DENIED); /* built-in $admins */
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_OK);      /* $all is a system stream */
    /* a stream's own key beats $settings, a missing one falls back to $settings */
    m_set(&M, "o-2", "{\"$acl\":{\"$r\":\"bob\"}}");
    CHECK(chk(alice, "o-2", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(alice, "o-2", AUTH_WRITE) == AUTH_DENIED);
    CHECK(chk(bob, "o-2", AUTH_WRITE) == AUTH_OK);
    /* a change of $settings counts at once (ACL-6) */
    m_settings(&M, "{\"$userStreamAcl\":{\"$w\":\"alice\"}}");
    CHECK(chk(alice, "o-1", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(bob, "o-1", AUTH_WRITE) == AUTH_DENIED);
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_DENIED);
    /* unreadable $settings: the built-in defaults (ACL-5) */
    m_settings(&M, "{\"$userStreamAcl\":{\"$w\":5}}");
    CHECK(chk(bob, "o-1", AUTH_WRITE) == AUTH_OK);
    m_settings(&M, "not json");
    CHECK(chk(bob, "o-1", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(bob, "$ce-o", AUTH_READ) == AUTH_DENIED);
}

static void t_malformed(void)
{
    setup(0);
    m_settings(&M, "{\"$userStreamAcl\":{\"$r\":\"alice\"}}");
    static const char *bad[] = {
        "{\"$acl\":{\"$r\":\"bob\",\"$x\":\"bob\"}}", /* unknown key */
        "{\"$acl\":{\"$r\":5}}",
        "{\"$acl\":{\"$r\":[\"bob\",1]}}",
        "{\"$acl\":{\"$r\":null}}",
        "{\"$acl\":\"bob\"}",
        "{\"$acl\":{\"$r\":\"bob\"},\"$maxCount\":\"x\"}",
        "{\"$acl\":{\"$r\":\"bob\"},\"$tempStream\":1}",
        "[1]",
        "{\"$acl\":{\"$r\":\"bob\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m_set(&M, "m", bad[i]);
        /* as if it had no $acl: $settings decides (alice), never bob */
        CHECK(chk(alice, "m", AUTH_READ) == AUTH_OK);
        CHECK(chk(bob, "m", AUTH_READ) == AUTH_DENIED);
    }
    m_set(&M, "m", "{\"$acl\":{\"$r\":\"bob\",\"$r\":\"carol\"},\"custom\":{\"$acl\":1}}");
    CHECK(chk(bob, "m", AUTH_READ) == AUTH_DENIED); /* the last of a repeated key */
    CHECK(chk(carol_admins, "m", AUTH_READ) == AUTH_OK);
}

static void t_cache(void)
{
    setup(0);
    m_set(&M, "c", "{\"$acl\":{\"$w\":\"alice\"}}");
    CHECK(chk(bob, "c", AUTH_WRITE) == AUTH_DENIED);
    int loads = M.loads;
    for (int i = 0; i < 100; i++) CHECK(chk(alice, "c", AUTH_WRITE) == AUTH_OK);
    CHECK(M.loads == loads); /* hits: nothing loaded again (ACL-7) */
    auth_authz_stats st;
    auth_authz_stats_get(Z, &st);
    CHECK(st.hits >= 100);
    m_set(&M, "c", "{\"$acl\":{\"$w\":\"bob\"}}"); /* the next check sees it (ACL-6) */
    CHECK(chk(bob, "c", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(alice, "c", AUTH_WRITE) == AUTH_DENIED);
    CHECK(M.loads == loads + 1);
    m_set(&M, "c", "{}"); /* ACL removed */
    CHECK(chk(alice, "c", AUTH_WRITE) == AUTH_OK);
    /* more streams than slots: still right, still bounded */
    for (int i = 0; i < 3 * AUTH_ACL_CACHE_SLOTS; i++) {
        char n[32];
        snprintf(n, sizeof n, "%s", i % 2 ? "c" : "$all");
        CHECK(chk(alice, n, AUTH_READ) == (i % 2 ? AUTH_OK : AUTH_DENIED));
    }
}

static void t_stamps(void)
{
    setup(0);
    auth_stamp st;
    auth_stamp_take(Z, "s", &st);
    CHECK(!auth_stamp_changed(Z, "s", &st));
    m_set(&M, "other", "{}");
    CHECK(!auth_stamp_changed(Z, "s", &st));
    m_set(&M, "s", "{\"$acl\":{\"$r\":\"alice\"}}");
    CHECK(auth_stamp_changed(Z, "s", &st));
    CHECK(!auth_stamp_changed(Z, "s", &st));
    m_settings(&M, "{}");
    CHECK(auth_stamp_changed(Z, "s", &st));
    auth_stamp_take(Z, "$all", &st);
    m_set(&M, "$all", "{}");
    CHECK(auth_stamp_changed(Z, "", &st));
}

static void t_fail_closed(void)
{
    setup(0);
    m_set(&M, "f", "{\"$acl\":{\"$r\":\"$all\"}}");
    M.fail = 1;
    CHECK(chk(alice, "f", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(anon(), "f", AUTH_READ) == AUTH_UNAUTHENTICATED);
    CHECK(chk(admin, "f", AUTH_READ) == AUTH_OK); /* admins need no lookup */
    M.fail = 0;
    CHECK(chk(alice, "f", AUTH_READ) == AUTH_OK);
}

static void t_anonymous_allowed(void)
{
    setup(1);
    CHECK(chk(anon(), "o", AUTH_READ) == AUTH_OK); /* $all in the default */
    CHECK(chk(anon(), "$all", AUTH_READ) == AUTH_UNAUTHENTICATED);
    m_set(&M, "o", "{\"$acl\":{\"$r\":\"alice\"}}");
    CHECK(chk(anon(), "o", AUTH_READ) == AUTH_UNAUTHENTICATED);
}

/* PRINCIPAL-1: a call's principal follows its user: new groups count at
 * once, and a revoked one (disabled, deleted, password changed) is nobody,
 * whatever anonymous may do. */
static void t_superseded(void)
{
    setup(1);
    m_set(&M, "w", "{\"$acl\":{\"$r\":\"writers\",\"$w\":\"writers\"}}");
    const char *wg[] = {"writers"};
    auth_principal *p1, *p2, *p3, *p4;
    CHECK_RC(auth_principal_new("erin", wg, 1, &p1), 0);
    CHECK_RC(auth_principal_new("erin", NULL, 0, &p2), 0);
    CHECK_RC(auth_principal_new("erin", wg, 1, &p3), 0);
    CHECK_RC(auth_principal_new("erin", wg, 1, &p4), 0);
    CHECK(auth_principal_current(p1) == p1);
    CHECK(chk(auth_principal_current(p1), "w", AUTH_WRITE) == AUTH_OK);
    auth_principal_supersede(p1, p2); /* out of writers */
    CHECK(auth_principal_current(p1) == p2);
    CHECK(chk(auth_principal_current(p1), "w", AUTH_WRITE) == AUTH_DENIED);
    auth_principal_supersede(p2, p3); /* back in */
    CHECK(auth_principal_current(p1) == p3);
    CHECK(chk(auth_principal_current(p1), "w", AUTH_READ) == AUTH_OK);
    auth_principal_supersede(p3, NULL); /* revoked */
    auth_principal_supersede(p3, p4);   /* stays revoked: its credentials never hold again */
    const auth_principal *now = auth_principal_current(p1);
    CHECK(now == p3 && now->revoked);
    CHECK(!auth_principal_authenticated(now));
    CHECK(!auth_principal_has_role(now, AUTH_ROLE_ALL));
    CHECK(chk(now, "w", AUTH_READ) == AUTH_UNAUTHENTICATED);
    CHECK(chk(now, "open", AUTH_READ) == AUTH_UNAUTHENTICATED); /* though anonymous may (setup(1)) */
    CHECK(chk(anon(), "open", AUTH_READ) == AUTH_OK);
    CHECK(auth_check_op(now, AUTH_OP_NODE_SHUTDOWN, NULL, 0) == AUTH_UNAUTHENTICATED);
    /* the chain holds its successors: dropping the others first frees nothing early (ASan) */
    auth_principal_unref(p4);
    auth_principal_unref(p3);
    auth_principal_unref(p2);
    CHECK(chk(auth_principal_current(p1), "w", AUTH_READ) == AUTH_UNAUTHENTICATED);
    auth_principal_unref(p1);
}

static void t_policy(void)
{
    const auth_principal *a = auth_principal_anonymous();
    CHECK(auth_check_op(a, AUTH_OP_GOSSIP_READ, NULL, 0) == AUTH_OK);
    CHECK(auth_check_op(a, AUTH_OP_NODE_INFO, NULL, 0) == AUTH_OK);
    CHECK(auth_check_op(a, AUTH_OP_STATS_READ, NULL, 0) == AUTH_UNAUTHENTICATED);
    CHECK(auth_check_op(a, AUTH_OP_STATS_READ, NULL, 1) == AUTH_OK);
    CHECK(auth_check_op(a, AUTH_OP_NODE_SHUTDOWN, NULL, 1) == AUTH_UNAUTHENTICATED);
    static const int opsadm[] = {AUTH_OP_NODE_SHUTDOWN,     AUTH_OP_MERGE_INDEXES,      AUTH_OP_SCAVENGE_START,
                                 AUTH_OP_SCAVENGE_STOP,     AUTH_OP_SUBS_RESTART,       AUTH_OP_SUBS_CREATE,
                                 AUTH_OP_SUBS_UPDATE,       AUTH_OP_SUBS_DELETE,        AUTH_OP_SUBS_REPLAY_PARKED,
                                 AUTH_OP_PROJ_DELETE,       AUTH_OP_PROJ_RESTART,       AUTH_OP_PROJ_READ_CONFIG,
                                 AUTH_OP_PROJ_UPDATE_CONFIG, AUTH_OP_RESIGN};
    for (size_t i = 0; i < sizeof opsadm / sizeof *opsadm; i++) {
        int op = opsadm[i];
        CHECK(auth_op_rule(op) == AUTH_RULE_OPS_OR_ADMIN);
        CHECK(auth_check_op(alice, op, NULL, 0) == AUTH_DENIED);
        CHECK(auth_check_op(ops, op, NULL, 0) == AUTH_OK);
        CHECK(auth_check_op(dave_ops, op, NULL, 0) == AUTH_OK);
        CHECK(auth_check_op(admin, op, NULL, 0) == AUTH_OK);
        CHECK(auth_check_op(carol_admins, op, NULL, 0) == AUTH_OK);
        CHECK(auth_check_op(a, op, NULL, 0) == AUTH_UNAUTHENTICATED);
    }
    static const int authd[] = {AUTH_OP_PROJ_LIST,   AUTH_OP_PROJ_CREATE, AUTH_OP_PROJ_UPDATE,
                                AUTH_OP_PROJ_ENABLE, AUTH_OP_PROJ_DISABLE, AUTH_OP_PROJ_RESET,
                                AUTH_OP_PROJ_READ,   AUTH_OP_SUBS_STATISTICS, AUTH_OP_SUBS_CONSUME};
    for (size_t i = 0; i < sizeof authd / sizeof *authd; i++) {
        CHECK(auth_check_op(alice, authd[i], NULL, 0) == AUTH_OK);
        CHECK(auth_check_op(a, authd[i], NULL, 0) == AUTH_UNAUTHENTICATED);
    }
    CHECK(auth_check_op(alice, AUTH_OP_USERS_CREATE, NULL, 0) == AUTH_DENIED);
    CHECK(auth_check_op(ops, AUTH_OP_USERS_CREATE, NULL, 0) == AUTH_DENIED);
    CHECK(auth_check_op(admin, AUTH_OP_USERS_CREATE, NULL, 0) == AUTH_OK);
    CHECK(auth_check_op(alice, AUTH_OP_USERS_READ, "alice", 0) == AUTH_OK);
    CHECK(auth_check_op(alice, AUTH_OP_USERS_READ, "bob", 0) == AUTH_DENIED);
    CHECK(auth_check_op(admin, AUTH_OP_USERS_READ, "bob", 0) == AUTH_OK);
    CHECK(auth_check_op(admin, AUTH_OP_USERS_CHANGE_PASSWORD, "bob", 0) == AUTH_DENIED);
    CHECK(auth_check_op(bob, AUTH_OP_USERS_CHANGE_PASSWORD, "bob", 0) == AUTH_OK);
    for (int op = 0; op < AUTH_N_OPS; op++) CHECK(strcmp(auth_op_name(op), "?") != 0);
}

static const char *CUSTOM =
    "{\"streamPolicies\":{\"pub\":{\"$r\":[\"$all\"],\"$w\":[\"$all\"],\"$d\":[\"$all\"],\"$mr\":[\"$all\"],"
    "\"$mw\":[\"$all\"]},\"adm\":{\"$r\":[\"$admins\"]},"
    "\"acct\":{\"$r\":[\"readers\",\"writers\"],\"$w\":[\"writers\"],\"$mr\":[\"alice\"],\"$d\":null}},"
    "\"streamRules\":[{\"startsWith\":\"account-vip\",\"policy\":\"adm\"},"
    "{\"startsWith\":\"account\",\"policy\":\"acct\"}],"
    "\"defaultStreamRules\":{\"userStreams\":\"pub\",\"systemStreams\":\"adm\"}}";

static void t_stream_policies(void)
{
    setup(1);
    m_set(&M, "o", "{\"$acl\":{\"$r\":\"bob\"}}");
    CHECK(chk(alice, "o", AUTH_READ) == AUTH_DENIED); /* ACLs now */
    auth_stamp st;
    auth_stamp_take(Z, "o", &st);
    ms_append(&PSET, AUTH_POLICY_SETTINGS_TYPE, "{\"streamAccessPolicyType\":\"streampolicy\"}");
    CHECK(auth_stamp_changed(Z, "o", &st));
    CHECK(auth_authz_policy_type(Z) == AUTH_POLICY_STREAMS);
    /* an empty $policies: KurrentDB's default policy; ACLs and $settings are ignored */
    CHECK(chk(alice, "o", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "o", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(alice, "$ce-o", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "$$$ce-o", AUTH_READ) == AUTH_OK); /* $mr */
    CHECK(chk(alice, "$ce-o", AUTH_WRITE) == AUTH_DENIED);
    CHECK(chk(alice, "$streams", AUTH_READ) == AUTH_OK);
    CHECK(chk(alice, "$settings", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(alice, "$all", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(dave_ops, "o", AUTH_READ) == AUTH_DENIED); /* $all leaves out $ops-only principals */
    CHECK(chk(dave_ops, "$ce-o", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(ops, "o", AUTH_READ) == AUTH_OK); /* login ops without the group: not ops-only */
    CHECK(chk(admin, "$settings", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(anon(), "o", AUTH_READ) == AUTH_UNAUTHENTICATED); /* never anonymous (ACL-8) */
    /* a custom policy: the first matching prefix wins */
    ms_append(&POLS, AUTH_POLICIES_TYPE, CUSTOM);
    CHECK(auth_stamp_changed(Z, "o", &st));
    CHECK(chk(alice, "account-1", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(alice, "$$account-1", AUTH_READ) == AUTH_OK);
    CHECK(chk(bob, "account-1", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(bob, "account-1", AUTH_DELETE) == AUTH_DENIED); /* null: nobody */
    CHECK(chk(bob, "account-vip-1", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(alice, "other", AUTH_WRITE) == AUTH_OK);
    CHECK(chk(alice, "$ce-o", AUTH_READ) == AUTH_DENIED); /* no rule: the system default (adm) */
    /* an invalid event is skipped for the last valid one */
    ms_append(&POLS, AUTH_POLICIES_TYPE, "{\"streamPolicies\":{},\"streamRules\":[],\"defaultStreamRules\":{}}");
    CHECK(chk(bob, "account-1", AUTH_WRITE) == AUTH_OK);
    ms_append(&POLS, "other-type", CUSTOM);
    CHECK(chk(bob, "account-1", AUTH_WRITE) == AUTH_OK);
    static const char *bad[] = {
        "{\"streamPolicies\":{\"p\":{\"$r\":\"alice\"}},\"streamRules\":[],"
        "\"defaultStreamRules\":{\"userStreams\":\"p\",\"systemStreams\":\"p\"}}", /* a string, not an array */
        "{\"streamPolicies\":{\"p\":{}},\"streamRules\":[{\"startsWith\":\"\",\"policy\":\"p\"}],"
        "\"defaultStreamRules\":{\"userStreams\":\"p\",\"systemStreams\":\"p\"}}", /* an empty prefix */
        "{\"streamPolicies\":{\"p\":{}},\"streamRules\":[{\"startsWith\":\"a\",\"policy\":\"q\"}],"
        "\"defaultStreamRules\":{\"userStreams\":\"p\",\"systemStreams\":\"p\"}}", /* an unknown policy */
        "{\"streamPolicies\":{\"p\":{}},\"streamRules\":[],\"defaultStreamRules\":{\"userStreams\":\"p\"}}",
        "[]",
        "nope",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        auth_policies *p;
        CHECK_RC(auth_policies_parse(bad[i], strlen(bad[i]), &p), 0);
        CHECK(p == NULL);
    }
    /* none valid: admins only */
    setup(0);
    ms_append(&PSET, AUTH_POLICY_SETTINGS_TYPE, "{\"streamAccessPolicyType\":\"streampolicy\"}");
    ms_append(&POLS, AUTH_POLICIES_TYPE, bad[0]);
    CHECK(chk(alice, "o", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(admin, "o", AUTH_READ) == AUTH_OK);
    /* an invalid choice of mechanism: admins only (KurrentDB's fallback) */
    ms_append(&PSET, AUTH_POLICY_SETTINGS_TYPE, "{\"streamAccessPolicyType\":\"ldap\"}");
    CHECK(auth_authz_policy_type(Z) == AUTH_POLICY_RESTRICTED);
    CHECK(chk(alice, "o", AUTH_READ) == AUTH_DENIED);
    CHECK(chk(admin, "o", AUTH_READ) == AUTH_OK);
    ms_append(&PSET, "wrong-type", "{\"streamAccessPolicyType\":\"acl\"}");
    CHECK(auth_authz_policy_type(Z) == AUTH_POLICY_RESTRICTED);
    ms_append(&PSET, AUTH_POLICY_SETTINGS_TYPE, "{\"streamAccessPolicyType\":\"acl\"}");
    CHECK(auth_authz_policy_type(Z) == AUTH_POLICY_ACL);
    CHECK(chk(alice, "o", AUTH_READ) == AUTH_OK);
    /* the configured default while $authorization-policy-settings is empty */
    setup(0);
    auth_meta_source src = {src_version, src_load, src_last, src_event, &M};
    auth_authz *z;
    CHECK_RC(auth_authz_new(&src, 0, AUTH_POLICY_STREAMS, &z), 0);
    CHECK(auth_authz_policy_type(z) == AUTH_POLICY_STREAMS);
    CHECK(auth_check_stream(z, dave_ops, "o", AUTH_READ) == AUTH_DENIED);
    CHECK(auth_check_stream(z, alice, "o", AUTH_READ) == AUTH_OK);
    auth_authz_free(z);
    CHECK(auth_policy_type_parse("acl") == AUTH_POLICY_ACL);
    CHECK(auth_policy_type_parse("streampolicy") == AUTH_POLICY_STREAMS);
    CHECK(auth_policy_type_parse("ACL") == -1);
}

/* The cached evaluator against a fresh one (no cache) after random
 * metadata and $settings changes: the same answer every time (ACL-6). */
static void t_random(void)
{
    uint64_t seed = harness_seed("unit_acl random");
    setup(0);
    static const char *docs[] = {
        "{}", "{\"$acl\":{\"$r\":\"alice\"}}", "{\"$acl\":{\"$w\":[\"bob\",\"writers\"]}}",
        "{\"$acl\":{\"$r\":[],\"$mr\":\"$all\"}}", "{\"$acl\":{\"$d\":\"x\"},\"$maxCount\":3}",
        "{\"$acl\":{\"$r\":1}}", "{\"$acl\":{\"$mw\":\"alice\",\"$r\":\"$all\"}}",
    };
    static const char *sets[] = {
        "{}", "{\"$userStreamAcl\":{\"$r\":\"bob\"}}", "{\"$systemStreamAcl\":{\"$r\":\"$all\"}}",
        "{\"$userStreamAcl\":{\"$w\":[]},\"$systemStreamAcl\":{\"$w\":\"alice\"}}", "[]",
    };
    static const char *streams[] = {"a", "account-1", "$c", "$$a", "$all", "$$$all", "$$$c"};
    const auth_principal *ps[] = {alice, bob, ops, dave_ops, admin, auth_principal_anonymous()};
    uint64_t x = seed | 1;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int r = (int)(x % 100);
        if (r < 5) {
            const char *s = streams[x / 100 % 7];
            if (auth_is_metastream(s)) s += 2;
            m_set(&M, s, docs[x / 1000 % 7]);
        } else if (r < 7) {
            m_settings(&M, sets[x / 1000 % 5]);
        } else if (r < 8) {
            static const char *modes[] = {"{\"streamAccessPolicyType\":\"acl\"}",
                                          "{\"streamAccessPolicyType\":\"streampolicy\"}", "{}"};
            ms_append(&PSET, AUTH_POLICY_SETTINGS_TYPE, modes[x / 1000 % 3]);
        } else if (r < 9) {
            ms_append(&POLS, AUTH_POLICIES_TYPE, x / 1000 % 2 ? CUSTOM : "{}");
        } else {
            const char *s = streams[x / 100 % 7];
            const auth_principal *p = ps[x / 1000 % 6];
            int a = (int)(x / 10000 % AUTH_N_ACTIONS);
            auth_meta_source src = {src_version, src_load, src_last, src_event, &M};
            auth_authz *fresh;
            CHECK_RC(auth_authz_new(&src, 0, AUTH_POLICY_ACL, &fresh), 0);
            int want = auth_check_stream(fresh, p, s, a);
            auth_authz_free(fresh);
            int got = chk(p, s, a);
            if (got != want) {
                fprintf(stderr, "  seed %" PRIu64 " step %d: %s on %s action %d: %d, fresh %d\n", seed, i,
                        p->login, s, a, got, want);
                CHECK(got == want);
                return;
            }
        }
    }
}

int main(void)
{
    const char *wg[] = {"writers"}, *ag[] = {AUTH_ROLE_ADMINS}, *og[] = {AUTH_ROLE_OPS};
    auth_principal_new("alice", NULL, 0, &alice);
    auth_principal_new("bob", wg, 1, &bob);
    auth_principal_new(AUTH_USER_ADMIN, NULL, 0, &admin);
    auth_principal_new(AUTH_USER_OPS, NULL, 0, &ops);
    auth_principal_new("carol", ag, 1, &carol_admins);
    auth_principal_new("dave", og, 1, &dave_ops);
    RUN(t_defaults);
    RUN(t_system_principal);
    RUN(t_each_key);
    RUN(t_metastreams);
    RUN(t_all);
    RUN(t_settings);
    RUN(t_malformed);
    RUN(t_cache);
    RUN(t_stamps);
    RUN(t_fail_closed);
    RUN(t_anonymous_allowed);
    RUN(t_superseded);
    RUN(t_policy);
    RUN(t_stream_policies);
    RUN(t_random);
    auth_authz_free(Z);
    auth_principal_unref(alice);
    auth_principal_unref(bob);
    auth_principal_unref(admin);
    auth_principal_unref(ops);
    auth_principal_unref(carol_admins);
    auth_principal_unref(dave_ops);
    return harness_done();
}
