/*
 * aclsrv.c - a test server for the authorization tests (tests/integration/
 * node/acl.js): factumd's services on a temporary store, with an
 * authentication that trusts what the client says, so that the tests can
 * act as any user in any groups without a user database:
 *
 *   authorization: Basic base64(<login>:<groups>)   -> <login> in the
 *                                                       comma-separated groups
 *                                                       ("-": none)
 *   connection-name: as:<login>:<groups>            -> the same, when there is no
 *                                                       authorization header (the
 *                                                       grpc-js path of the Node
 *                                                       clients sends no credentials
 *                                                       without TLS, but always its
 *                                                       connection name)
 *   neither                                         -> anonymous
 *
 * It is NOT factumd and is built only with the tests: it exists so that
 * authorization (src/auth/acl.c, src/rpc/authz.c) is tested end to end with
 * the official clients independently of the password store. It prints
 * "listening on 127.0.0.1:<port>" like factumd and stops on SIGTERM.
 * Usage: aclsrv [--allow-anonymous-stream-access] [--durable]
 *               [--as <login>:<groups>]   calls without credentials act as this user
 *               [--no-auth]               no authentication: the system principal
 *                                         (for measuring what authorization costs)
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "net/grpc.h"
#include "net/net.h"
#include "rpc/persistent.h"
#include "rpc/rpc.h"

static net_server *g_net;

static void on_signal(int sig)
{
    (void)sig;
    if (g_net) net_server_stop(g_net);
}

static void on_tick(void *arg)
{
    rpc_ps_tick(arg);
    rpc_submit_retry(arg);
}

static void on_shutdown(void *arg)
{
    net_server_stop(arg);
}

static void log_line(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level <= 1) fprintf(stderr, "%s %s\n", level == 0 ? "ERROR" : "WARN", msg);
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static void principal_free(void *p)
{
    auth_principal_unref(p);
}

static char g_as[256]; /* --as: the principal of calls without credentials */

static int trust_auth(void *ctx, net_auth *a)
{
    (void)ctx;
    const char *h = net_auth_header(a, "authorization");
    const char *cn = net_auth_header(a, "connection-name");
    char text[512];
    size_t n = 0;
    int bits = 0;
    unsigned acc = 0;
    if (!h && cn && strncmp(cn, "as:", 3) == 0 && strlen(cn) < sizeof text) {
        snprintf(text, sizeof text, "%s", cn + 3);
        goto named;
    }
    if (!h && g_as[0]) {
        snprintf(text, sizeof text, "%s", g_as);
        goto named;
    }
    if (!h) {
        net_auth_done(a, 0, NULL, (void *)auth_principal_anonymous(), NULL);
        return NET_AUTH_DONE;
    }
    if (strncmp(h, "Basic ", 6)) goto bad;
    for (const char *p = h + 6; *p && *p != '='; p++) {
        int v = b64val((unsigned char)*p);
        if (v < 0) goto bad;
        acc = acc << 6 | (unsigned)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            if (n + 1 >= sizeof text) goto bad;
            text[n++] = (char)(acc >> bits & 0xff);
        }
    }
    text[n] = 0;
named:;
    char *colon = strchr(text, ':');
    if (!colon || colon == text) goto bad;
    *colon = 0;
    const char *groups[16];
    size_t ng = 0;
    if (strcmp(colon + 1, "-") != 0) {
        for (char *g = strtok(colon + 1, ","); g && ng < 16; g = strtok(NULL, ",")) groups[ng++] = g;
    }
    auth_principal *p;
    if (auth_principal_new(text, groups, ng, &p)) {
        net_auth_done(a, GRPC_UNAVAILABLE, "out of memory", NULL, NULL);
        return NET_AUTH_DONE;
    }
    net_auth_done(a, 0, NULL, p, principal_free);
    return NET_AUTH_DONE;
bad:
    net_auth_done(a, GRPC_UNAUTHENTICATED, "bad credentials", NULL, NULL);
    return NET_AUTH_DONE;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(int argc, char **argv)
{
    int allow_anon = 0, durable = 0, no_auth = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--allow-anonymous-stream-access")) allow_anon = 1;
        else if (!strcmp(argv[i], "--durable")) durable = 1;
        else if (!strcmp(argv[i], "--no-auth")) no_auth = 1;
        else if (!strcmp(argv[i], "--as") && i + 1 < argc) snprintf(g_as, sizeof g_as, "%s", argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--allow-anonymous-stream-access] [--durable] [--as login:groups] [--no-auth]\n",
                    argv[0]);
            return 2;
        }
    }
    char dir[64] = "/tmp/aclsrv-XXXXXX", db[96];
    if (!mkdtemp(dir)) return 1;
    snprintf(db, sizeof db, "%s/data", dir);
    factum_options o;
    factum_options_init(&o);
    o.durability = durable ? FACTUM_DURABLE : FACTUM_RELAXED;
    static rpc_ctx r;
    net_method *methods = NULL;
    size_t n_methods = 0;
    net_server *net = NULL;
    int rc = factum_store_open(db, &o, &r.store);
    if (rc) goto out;
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.create_system = 1;
    if ((rc = factum_projections_open(r.store, &po, &r.projections))) goto out;
    factum_uuid_v4(r.instance_id);
    snprintf(r.advertise_host, sizeof r.advertise_host, "127.0.0.1");
    r.max_append_size = 64u << 20;
    r.max_event_size = 16u << 20;
    r.log_fn = log_line;
    if ((rc = rpc_authz_init(&r, allow_anon, 0, AUTH_POLICY_ACL))) goto out;
    if ((rc = rpc_methods(&r, &methods, &n_methods))) goto out;
    if ((rc = rpc_ps_init(&r))) goto out;
    net_config nc;
    net_config_init(&nc);
    nc.host = "127.0.0.1";
    nc.port = 0;
    nc.max_message = (16u << 20) + (1u << 20);
    nc.log_fn = log_line;
    nc.spin_hint = rpc_spin_hint;
    nc.spin_ctx = &r;
    nc.tick_fn = on_tick;
    nc.tick_ctx = &r;
    nc.tick_ms = 100;
    nc.auth_fn = no_auth ? NULL : trust_auth;
    if ((rc = net_server_new(&nc, methods, n_methods, NULL, NULL, &net))) goto out;
    r.net = net;
    if ((rc = rpc_listen(&r))) goto out;
    r.advertise_port = net_server_port(net);
    r.shutdown = on_shutdown;
    r.shutdown_arg = net;
    g_net = net;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on 127.0.0.1:%d\n", r.advertise_port);
    fflush(stdout);
    rc = net_server_run(net, 2000);
out:
    g_net = NULL;
    if (rc) fprintf(stderr, "ERROR aclsrv: %s\n", factum_strerror(rc));
    if (r.store) rpc_deinit(&r);
    rpc_authz_free(&r);
    factum_projections_close(r.projections);
    int crc = r.store ? factum_store_close(r.store) : 0;
    net_server_free(net);
    rpc_ps_free(&r);
    free(methods);
    free(r.pack_buf);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return rc || crc ? 1 : 0;
}
