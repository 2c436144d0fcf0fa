/*
 * server.h - what factumd's parts share: the running server's state.
 */
#ifndef FACTUM_SERVER_H
#define FACTUM_SERVER_H

#include <stdatomic.h>
#include "factum.h"
#include "net/net.h"
#include "rpc/rpc.h"
#include "server/config.h"

typedef struct srv_state {
    srv_config cfg;
    factum_store *store;
    factum_projections *proj; /* NULL with --run-projections None */
    struct factum_readmodels *rm; /* NULL with --run-readmodels=false */
    net_server *net;
    rpc_ctx rpc;
    net_method *methods;
    size_t n_methods;
    srv_security sec; /* TLS on the port, authentication on (srv_config_security) */
    int argc;         /* the command line, parsed again on a reload */
    char **argv;
    struct auth_users *users; /* src/auth/users.h */
    struct srv_backup *backup; /* the backup running or last run (http_admin.c) */
    int64_t started_ns; /* when factumd started (wall clock; process_start_time_seconds) */
    _Atomic int shreds_running; /* POST /admin/shred threads not done (waited for before the store closes) */
} srv_state;

/* Build the TLS context from the certificate settings (checked: readable,
 * matching key, valid now, signed by a trusted root). 0, or -1 after
 * logging why. */
int srv_tls_load(srv_state *st, struct ssl_ctx_st **out);
/* Reload the certificates (SIGHUP, POST /admin/reloadconfig), on the loop
 * thread: new connections use the new ones; a failure keeps the old and
 * logs why. */
void srv_tls_reload(void *st);

void srv_http(void *ctx, const net_http_req *req, net_http_resp *resp);
/* The /readmodels endpoints (http_rm.c). */
void srv_http_readmodels(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* The decoded value of `key` in a query string into out (NUL-terminated):
 * 1 found, 0 not, -1 malformed (http_rm.c). */
int srv_qs_get(const char *qs, const char *key, base_buf *out);
/* Percent-decode s[0..n) into out, NUL-terminated ('+' is a space if plus,
 * as in a query string). 0, or -1 for a bad escape or a NUL byte. */
int srv_pct_decode(const char *s, size_t n, int plus, base_buf *out);
/* An unsigned decimal parameter up to max: 1 found (*v), 0 absent, -1 malformed. */
int srv_qs_u64(const char *qs, const char *key, uint64_t max, uint64_t *v);
/* POST and GET /admin/backup (http_admin.c): the caller checked that the
 * user is an operator or an admin. */
void srv_http_backup(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* Stop a running backup and wait for its thread: before the store closes. */
void srv_backup_stop(srv_state *st);
/* /admin/scavenge[/<id>] (http_admin.c; the caller checked ops_or_admin). */
void srv_http_scavenge(srv_state *st, const net_http_req *req, net_http_resp *resp);
void srv_http_archive(srv_state *st, const net_http_req *req, net_http_resp *resp);
void srv_http_shred(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* The admin web UI's files (http_ui.c): 1 if req was the UI's (answered), 0 if not. */
int srv_http_ui(const net_http_req *req, net_http_resp *resp);
/* The UI's sign-in (http_ui.c): /ui/api/login, session, logout. 1 if req was one of them. */
int srv_http_ui_api(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* The JSON endpoints' shared pieces (http_api.c): an error answer
 * {"error": why}; may the request's principal do operation `op` (KurrentDB's
 * rule; self: the user it is about, or NULL)? 1, or 0 with a 401/403 answered. */
void srv_json_fail(net_http_resp *r, int status, const char *why);
int srv_may_op(srv_state *st, const net_http_req *req, int op, const char *self, net_http_resp *r);
/* The JSON endpoints the UI reads (http_api.c): /api/streams, /api/stream,
 * /api/stream/metadata. 1 if req was one of them. */
int srv_http_api(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* Consumer groups and subscriptions (http_subs.c): /api/subscriptions,
 * /api/subscription[s/...], and KurrentDB's /subscriptions paths. 1 if req
 * was one of them. */
int srv_http_subs(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* The projections as JSON (http_proj.c): /api/projections, /api/projection[/enable|/disable|/reset]. */
int srv_http_proj(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* The users as JSON (http_users.c): /api/users, /api/user[/enable|/disable|/reset-password|/change-password]. */
int srv_http_users(srv_state *st, const net_http_req *req, net_http_resp *resp);
/* Before any handler: a change from another origin, or with the session
 * cookie and without its CSRF token, is refused (403; SESS-3). 1: go on. */
int srv_http_guard(srv_state *st, const net_http_req *req, net_http_resp *resp);

#endif
