/*
 * policy.c - the operation table of policy.h: KurrentDB's default policy
 * (LegacyPolicySelectorFactory) for everything that is not a stream
 * access, in one place. docs/security.md shows the same table; change both.
 */
#include <string.h>

#include "auth/acl.h"
#include "auth/policy.h"

typedef struct op_entry {
    const char *name;
    int rule;
    int endpoint; /* opened to anonymous by allow_anonymous_endpoints */
} op_entry;

static const op_entry OPS[AUTH_N_OPS] = {
    [AUTH_OP_NODE_PING] = {"node/ping", AUTH_RULE_ANYONE, 0},
    [AUTH_OP_NODE_INFO] = {"node/info", AUTH_RULE_ANYONE, 0},
    /* KurrentDB's OverrideAnonymousEndpointAccessForGossip is on by default */
    [AUTH_OP_GOSSIP_READ] = {"node/gossip/client/read", AUTH_RULE_ANYONE, 0},
    [AUTH_OP_STATS_READ] = {"node/statistics/read", AUTH_RULE_AUTHENTICATED, 1},
    [AUTH_OP_NODE_SHUTDOWN] = {"node/shutdown", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_MERGE_INDEXES] = {"node/mergeIndexes", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_RESIGN] = {"node/resign", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_RELOAD_CONFIG] = {"node/reloadConfiguration", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SCAVENGE_START] = {"node/scavenge/start", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SCAVENGE_STOP] = {"node/scavenge/stop", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SUBS_RESTART] = {"subscriptions/restart", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SUBS_STATISTICS] = {"subscriptions/statistics", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_SUBS_CREATE] = {"subscriptions/create", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SUBS_UPDATE] = {"subscriptions/update", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SUBS_DELETE] = {"subscriptions/delete", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_SUBS_CONSUME] = {"subscriptions/process", AUTH_RULE_STREAM_READ, 0},
    [AUTH_OP_SUBS_REPLAY_PARKED] = {"subscriptions/replayParked", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_PROJ_LIST] = {"projections/list", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_CREATE] = {"projections/create", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_UPDATE] = {"projections/update", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_DELETE] = {"projections/delete", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_PROJ_ENABLE] = {"projections/enable", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_DISABLE] = {"projections/disable", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_RESET] = {"projections/reset", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_READ] = {"projections/read", AUTH_RULE_AUTHENTICATED, 0},
    [AUTH_OP_PROJ_RESTART] = {"projections/restart", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_PROJ_READ_CONFIG] = {"projections/readConfiguration", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_PROJ_UPDATE_CONFIG] = {"projections/updateConfiguration", AUTH_RULE_OPS_OR_ADMIN, 0},
    [AUTH_OP_USERS_LIST] = {"users/list", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_CREATE] = {"users/create", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_UPDATE] = {"users/update", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_DELETE] = {"users/delete", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_ENABLE] = {"users/enable", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_DISABLE] = {"users/disable", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_RESET_PASSWORD] = {"users/resetPassword", AUTH_RULE_ADMIN, 0},
    [AUTH_OP_USERS_READ] = {"users/read", AUTH_RULE_SELF_OR_ADMIN, 0},
    [AUTH_OP_USERS_CHANGE_PASSWORD] = {"users/password", AUTH_RULE_SELF, 0},
    [AUTH_OP_USERS_CURRENT] = {"users/self", AUTH_RULE_AUTHENTICATED, 0},
};

const char *auth_op_name(int op)
{
    return op >= 0 && op < AUTH_N_OPS ? OPS[op].name : "?";
}

int auth_op_rule(int op)
{
    return op >= 0 && op < AUTH_N_OPS ? OPS[op].rule : AUTH_RULE_ADMIN;
}

int auth_check_op(const auth_principal *p, int op, const char *self, int allow_anonymous_endpoints)
{
    if (!p || op < 0 || op >= AUTH_N_OPS) return AUTH_DENIED;
    if (p->flags & AUTH_P_SYSTEM) return AUTH_OK;
    const op_entry *e = &OPS[op];
    if (e->rule == AUTH_RULE_ANYONE || (e->endpoint && allow_anonymous_endpoints)) return AUTH_OK;
    if (!auth_principal_authenticated(p)) return AUTH_UNAUTHENTICATED;
    int self_match = self && strcmp(self, p->login) == 0;
    int ok;
    switch (e->rule) {
    case AUTH_RULE_AUTHENTICATED:
    case AUTH_RULE_STREAM_READ: ok = 1; break;
    case AUTH_RULE_OPS_OR_ADMIN: ok = auth_principal_is_ops_or_admin(p); break;
    case AUTH_RULE_ADMIN: ok = auth_principal_is_admin(p); break;
    case AUTH_RULE_SELF_OR_ADMIN: ok = auth_principal_is_admin(p) || self_match; break;
    case AUTH_RULE_SELF: ok = self_match; break;
    default: ok = 0;
    }
    return ok ? AUTH_OK : AUTH_DENIED;
}
