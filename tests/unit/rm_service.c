/* Unit tests of what factumd's read-model front ends share
 * (src/rpc/readmodels.c): who may read and administer a read model (RMS-4,
 * over a real store and read models), names, the mapping of errors to gRPC
 * and HTTP statuses, the figures of a query's answer, the definition
 * shown to readers (a PostgreSQL connection string hidden), and the
 * settings --run-readmodels and --readmodels-dir. */
#include "harness.h"

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "factum_readmodel.h"
#include "net/grpc.h"
#include "rpc/readmodels.h"
#include "server/config.h"

static void t_may_read(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "rmsvc");
    factum_store *s;
    CHECK_RC(factum_store_open(dir, NULL, &s), 0);
    rpc_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.store = s;
    CHECK_RC(factum_readmodels_open(s, NULL, (factum_readmodels **)&ctx.readmodels), 0);
    static const char def_secret[] = "{\"name\":\"secret\",\"readers\":[\"auditors\", \"carol\"],"
                                     "\"schema\":[\"CREATE TABLE t(x INTEGER)\"],\"handlers\":{\"X\":\"INSERT INTO t VALUES (1)\"}}";
    static const char def_open[] = "{\"name\":\"open\",\"readers\":[\"$all\"],"
                                   "\"schema\":[\"CREATE TABLE t(x INTEGER)\"],\"handlers\":{\"X\":\"INSERT INTO t VALUES (1)\"}}";
    char err[512] = "";
    CHECK_RC(factum_readmodel_create(ctx.readmodels, def_secret, strlen(def_secret), err, sizeof err), 0);
    CHECK_RC(factum_readmodel_create(ctx.readmodels, def_open, strlen(def_open), err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "create: %s\n", err);
    const char *auditors[] = {"auditors"}, *admins[] = {"$admins"}, *ops[] = {"$ops"}, *other[] = {"sales"};
    auth_principal *aud, *adm, *op, *bob, *carol;
    CHECK_RC(auth_principal_new("ann", auditors, 1, &aud), 0);
    CHECK_RC(auth_principal_new("root", admins, 1, &adm), 0);
    CHECK_RC(auth_principal_new("opal", ops, 1, &op), 0);
    CHECK_RC(auth_principal_new("bob", other, 1, &bob), 0);
    CHECK_RC(auth_principal_new("carol", NULL, 0, &carol), 0);
    const auth_principal *sys = auth_principal_system(), *anon = auth_principal_anonymous();
    /* readers: a group, a login; admins always; $all: authenticated users */
    CHECK_RC(rpc_rm_may_read(&ctx, sys, "secret"), AUTH_OK);
    CHECK_RC(rpc_rm_may_read(&ctx, aud, "secret"), AUTH_OK);
    CHECK_RC(rpc_rm_may_read(&ctx, carol, "secret"), AUTH_OK);
    CHECK_RC(rpc_rm_may_read(&ctx, adm, "secret"), AUTH_OK);
    CHECK_RC(rpc_rm_may_read(&ctx, bob, "secret"), AUTH_DENIED);
    CHECK_RC(rpc_rm_may_read(&ctx, op, "secret"), AUTH_DENIED);
    CHECK_RC(rpc_rm_may_read(&ctx, anon, "secret"), AUTH_UNAUTHENTICATED);
    CHECK_RC(rpc_rm_may_read(&ctx, bob, "open"), AUTH_OK);
    CHECK_RC(rpc_rm_may_read(&ctx, anon, "open"), AUTH_UNAUTHENTICATED);
    CHECK_RC(rpc_rm_may_read(&ctx, bob, "nosuch"), FACTUM_ENOTFOUND);
    /* a revoked principal (its user disabled) is nobody */
    auth_principal_supersede(aud, NULL);
    CHECK_RC(rpc_rm_may_read(&ctx, aud, "secret"), AUTH_UNAUTHENTICATED);
    /* administration: $ops and $admins */
    CHECK_RC(rpc_rm_may_admin(sys), AUTH_OK);
    CHECK_RC(rpc_rm_may_admin(adm), AUTH_OK);
    CHECK_RC(rpc_rm_may_admin(op), AUTH_OK);
    CHECK_RC(rpc_rm_may_admin(bob), AUTH_DENIED);
    CHECK_RC(rpc_rm_may_admin(anon), AUTH_UNAUTHENTICATED);
    auth_principal_unref(aud);
    auth_principal_unref(adm);
    auth_principal_unref(op);
    auth_principal_unref(bob);
    auth_principal_unref(carol);
    factum_readmodels_close(ctx.readmodels);
    ctx.readmodels = NULL;
    CHECK_RC(rpc_rm_may_read(&ctx, sys, "open"), FACTUM_ECLOSED);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_names_and_errors(void)
{
    CHECK(rpc_rm_valid_name("balances", 8));
    CHECK(rpc_rm_valid_name("a-b_C9", 6));
    CHECK(!rpc_rm_valid_name("", 0));
    CHECK(!rpc_rm_valid_name("a b", 3));
    CHECK(!rpc_rm_valid_name("../x", 4));
    CHECK(!rpc_rm_valid_name("a\0b", 3));
    char big[65];
    memset(big, 'a', 64);
    big[64] = 0;
    CHECK(rpc_rm_valid_name(big, 63));
    CHECK(!rpc_rm_valid_name(big, 64));
    static const struct {
        int rc, grpc, http;
    } m[] = {
        {FACTUM_ENOTFOUND, GRPC_NOT_FOUND, 404},
        {FACTUM_EEXISTS, GRPC_ALREADY_EXISTS, 409},
        {FACTUM_EINVAL, GRPC_INVALID_ARGUMENT, 400},
        {FACTUM_EBADJSON, GRPC_INVALID_ARGUMENT, 400},
        {FACTUM_ETARGET, GRPC_INVALID_ARGUMENT, 400},
        {FACTUM_ETIMEDOUT, GRPC_DEADLINE_EXCEEDED, 408},
        {FACTUM_EFAULTED, GRPC_FAILED_PRECONDITION, 409},
        {-EAGAIN, GRPC_UNAVAILABLE, 503},
        {FACTUM_ECLOSED, GRPC_UNAVAILABLE, 503},
        {-EMSGSIZE, GRPC_RESOURCE_EXHAUSTED, 413},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        CHECK_RC(rpc_rm_grpc_status(m[i].rc), m[i].grpc);
        CHECK_RC(rpc_rm_http_status(m[i].rc), m[i].http);
    }
    char msg[256];
    rpc_rm_message(msg, sizeof msg, FACTUM_EINVAL, "bal", "parameter :x is not given");
    CHECK(!strcmp(msg, "read model 'bal': parameter :x is not given"));
    rpc_rm_message(msg, sizeof msg, FACTUM_ENOTFOUND, "bal", NULL);
    CHECK(!strcmp(msg, "read model 'bal': no read model of that name"));
}

static void t_answer_figures(void)
{
    uint64_t p, e, ms;
    /* a cell that looks like the figures must not be taken for them */
    const char *a = "{\"columns\":[\"a\"],\"rows\":[[\"\\\"position\\\":7\"],[\"x\"]],\"truncated\":false,"
                    "\"position\":42,\"lag_events\":3,\"lag_ms\":15}";
    rpc_rm_answer_figures(a, &p, &e, &ms);
    CHECK_EQ_U64(p, 42);
    CHECK_EQ_U64(e, 3);
    CHECK_EQ_U64(ms, 15);
    rpc_rm_answer_figures("{}", &p, &e, &ms);
    CHECK_EQ_U64(p, 0);
}

static void t_definition_shown(void)
{
    const char *def = "{\"name\":\"pg\",\"target\":{\"type\":\"postgres\",\"connection\":\"host=h password=s3cret\"},"
                      "\"handlers\":{\"A\":\"SELECT 1\"}}";
    base_buf b = {0};
    CHECK_RC(rpc_rm_definition_shown(&b, def, 0), 0);
    CHECK_RC(base_buf_append(&b, "", 1), 0);
    CHECK(!strstr((char *)b.data, "s3cret"));
    CHECK(strstr((char *)b.data, "\"connection\":\"(hidden)\"") != NULL);
    CHECK(strstr((char *)b.data, "\"type\":\"postgres\"") != NULL);
    CHECK_RC(json_validate((char *)b.data, b.len - 1), 0);
    b.len = 0;
    CHECK_RC(rpc_rm_definition_shown(&b, def, 1), 0);
    CHECK(b.len == strlen(def) && !memcmp(b.data, def, b.len));
    b.len = 0;
    CHECK_RC(rpc_rm_definition_shown(&b, "{\"name\":\"x\",\"target\":\"sqlite\"}", 0), 0);
    CHECK(b.len == 30);
    base_buf_free(&b);
}

static void t_settings(void)
{
    srv_config c;
    const char *a0[] = {"factumd"};
    CHECK_RC(srv_config_parse(&c, 1, (char **)a0), 0);
    CHECK(c.run_readmodels == 1 && c.readmodels_dir[0] == 0);
    const char *a1[] = {"factumd", "--run-readmodels=false", "--readmodels-dir", "/tmp/rm"};
    CHECK_RC(srv_config_parse(&c, 4, (char **)a1), 0);
    CHECK(c.run_readmodels == 0 && !strcmp(c.readmodels_dir, "/tmp/rm"));
    setenv("KURRENTDB_RUN_READMODELS", "false", 1);
    CHECK_RC(srv_config_parse(&c, 1, (char **)a0), 0);
    CHECK(c.run_readmodels == 0);
    unsetenv("KURRENTDB_RUN_READMODELS");
}

int main(void)
{
    RUN(t_may_read);
    RUN(t_names_and_errors);
    RUN(t_answer_figures);
    RUN(t_definition_shown);
    RUN(t_settings);
    return harness_done();
}
