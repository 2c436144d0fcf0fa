/*
 * policy.h - who may run the operations that are not stream accesses, as
 * KurrentDB's default policy restricts them (LegacyPolicySelectorFactory):
 * one table in policy.c, mirrored in docs/security.md. Stream accesses
 * (reads, appends, deletes, metadata) go through acl.h; an operation whose
 * rule is AUTH_RULE_STREAM_READ needs the caller to check the stream too
 * (consuming a consumer group: authenticated and allowed to read it).
 */
#ifndef FACTUM_AUTH_POLICY_H
#define FACTUM_AUTH_POLICY_H

#include "auth/principal.h"

enum auth_rule {
    AUTH_RULE_ANYONE = 0,        /* anonymous too */
    AUTH_RULE_AUTHENTICATED = 1, /* any user */
    AUTH_RULE_OPS_OR_ADMIN = 2,  /* `$ops`/`ops`, `$admins`/`admin` */
    AUTH_RULE_ADMIN = 3,         /* `$admins`/`admin` */
    AUTH_RULE_STREAM_READ = 4,   /* authenticated; the caller checks AUTH_READ on the stream */
    AUTH_RULE_SELF_OR_ADMIN = 5, /* an admin, or the user named by the call (Users.Details) */
    AUTH_RULE_SELF = 6,          /* only the user named by the call (Users.ChangePassword) */
};

enum auth_op {
    AUTH_OP_NODE_PING,
    AUTH_OP_NODE_INFO,           /* /info, ServerFeatures */
    AUTH_OP_GOSSIP_READ,         /* Gossip.Read, /gossip */
    AUTH_OP_STATS_READ,          /* Monitoring.Stats, /stats, /metrics */
    AUTH_OP_NODE_SHUTDOWN,       /* Operations.Shutdown */
    AUTH_OP_MERGE_INDEXES,       /* Operations.MergeIndexes */
    AUTH_OP_RESIGN,              /* Operations.ResignNode, SetNodePriority */
    AUTH_OP_RELOAD_CONFIG,       /* certificate reload */
    AUTH_OP_SCAVENGE_START,      /* Operations.StartScavenge */
    AUTH_OP_SCAVENGE_STOP,       /* Operations.StopScavenge */
    AUTH_OP_SUBS_RESTART,        /* Operations.RestartPersistentSubscriptions, PS.RestartSubsystem */
    AUTH_OP_SUBS_STATISTICS,     /* PS.GetInfo, PS.List */
    AUTH_OP_SUBS_CREATE,         /* PS.Create */
    AUTH_OP_SUBS_UPDATE,         /* PS.Update */
    AUTH_OP_SUBS_DELETE,         /* PS.Delete */
    AUTH_OP_SUBS_CONSUME,        /* PS.Read (ProcessMessages) */
    AUTH_OP_SUBS_REPLAY_PARKED,  /* PS.ReplayParked */
    AUTH_OP_PROJ_LIST,           /* Projections.Statistics without a name */
    AUTH_OP_PROJ_CREATE,
    AUTH_OP_PROJ_UPDATE,
    AUTH_OP_PROJ_DELETE,
    AUTH_OP_PROJ_ENABLE,
    AUTH_OP_PROJ_DISABLE,        /* Disable and Abort */
    AUTH_OP_PROJ_RESET,
    AUTH_OP_PROJ_READ,           /* State, Result, Statistics */
    AUTH_OP_PROJ_RESTART,        /* RestartSubsystem */
    AUTH_OP_PROJ_READ_CONFIG,
    AUTH_OP_PROJ_UPDATE_CONFIG,
    AUTH_OP_USERS_LIST,
    AUTH_OP_USERS_CREATE,
    AUTH_OP_USERS_UPDATE,
    AUTH_OP_USERS_DELETE,
    AUTH_OP_USERS_ENABLE,
    AUTH_OP_USERS_DISABLE,
    AUTH_OP_USERS_RESET_PASSWORD,
    AUTH_OP_USERS_READ,          /* Details: admin, or the user themself */
    AUTH_OP_USERS_CHANGE_PASSWORD, /* the user themself */
    AUTH_OP_USERS_CURRENT,
    AUTH_N_OPS,
};

/* The operation's name (KurrentDB's, e.g. "node/shutdown") and rule. */
const char *auth_op_name(int op);
int auth_op_rule(int op);

/* May p run op? AUTH_OK, AUTH_DENIED or AUTH_UNAUTHENTICATED (acl.h).
 * self: the login the call names (for AUTH_RULE_SELF*; NULL otherwise).
 * AUTH_RULE_STREAM_READ answers only the "authenticated" half. The system
 * principal passes everything; anonymous passes only AUTH_RULE_ANYONE
 * (unless allow_anonymous_endpoints, KurrentDB's
 * AllowAnonymousEndpointAccess, which opens gossip and statistics). */
int auth_check_op(const auth_principal *p, int op, const char *self, int allow_anonymous_endpoints);

#endif
