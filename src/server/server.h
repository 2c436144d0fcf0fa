/*
 * server.h - what factumd's parts share: the running server's state.
 */
#ifndef FACTUM_SERVER_H
#define FACTUM_SERVER_H

#include "factum.h"
#include "net/net.h"
#include "rpc/rpc.h"
#include "server/config.h"

typedef struct srv_state {
    srv_config cfg;
    factum_store *store;
    factum_projections *proj; /* NULL with --run-projections None */
    net_server *net;
    rpc_ctx rpc;
    net_method *methods;
    size_t n_methods;
    struct auth_users *users; /* src/auth/users.h */
} srv_state;

void srv_http(void *ctx, const net_http_req *req, net_http_resp *resp);

#endif
