/*
 * client_errors.c - how the C client names the server's refusals
 * (client_call_error in src/client/conn.c): gRPC UNAUTHENTICATED (16) is
 * FACTUM_EUNAUTHENTICATED, PERMISSION_DENIED (7) and KurrentDB's
 * `access-denied` exception (or its AccessDeniedErrorDetails) are
 * FACTUM_EACCESSDENIED, distinct from each other and from a generic
 * server failure; the CLI's exit code for both is 5. And the messages of
 * the client's codes, which libfactum-client owns (factum_client_strerror;
 * factum_strerror reaches them through base/err.c's hook), and the remote
 * decider's refusal of a client whose call table is not its own (RM-1 of
 * common/remote.h). No network.
 */
#include <stdlib.h>

#include "client/client_int.h"
#include "factum_app.h"
#include "harness.h"

static int code_of(int status, const char *exception, const char *message)
{
    client_call k;
    client_call_init(&k, "/x", NULL, NULL);
    k.grpc_status = status;
    snprintf(k.exception, sizeof k.exception, "%s", exception);
    snprintf(k.message, sizeof k.message, "%s", message);
    int rc = client_call_error(&k);
    client_call_deinit(&k);
    return rc;
}

static void t_statuses(void)
{
    CHECK_RC(code_of(GRPC_UNAUTHENTICATED, "", "Unauthenticated"), FACTUM_EUNAUTHENTICATED);
    CHECK_RC(code_of(GRPC_PERMISSION_DENIED, "", "Access Denied"), FACTUM_EACCESSDENIED);
    CHECK_RC(code_of(GRPC_PERMISSION_DENIED, "access-denied", "Access Denied"), FACTUM_EACCESSDENIED);
    /* KurrentDB's trailer alone decides, whatever the status says. */
    CHECK_RC(code_of(GRPC_UNKNOWN, "access-denied", ""), FACTUM_EACCESSDENIED);
    /* Neighbours keep their codes. */
    CHECK_RC(code_of(GRPC_UNAVAILABLE, "", "x"), FACTUM_ESERVER);
    CHECK_RC(code_of(GRPC_NOT_FOUND, "", "x"), FACTUM_ENOTFOUND);
    CHECK_RC(code_of(GRPC_OK, "", ""), 0);
    CHECK(FACTUM_EUNAUTHENTICATED != FACTUM_EACCESSDENIED);
    CHECK(strcmp(factum_strerror(FACTUM_EUNAUTHENTICATED), factum_strerror(FACTUM_EACCESSDENIED)) != 0);
    CHECK(strstr(factum_strerror(FACTUM_EACCESSDENIED), "access denied") != NULL);
    CHECK(strstr(factum_strerror(FACTUM_EUNAUTHENTICATED), "not authenticated") != NULL);
    CHECK(strstr(factum_strerror(FACTUM_ETLS), "TLS") != NULL);
}

/* Every code of factum_client.h has its own message, the same from
 * factum_strerror and factum_client_strerror; other codes pass through;
 * an unknown code of the client's range is unknown to both (and neither
 * hands it back to the other forever). */
static void t_messages(void)
{
    static const int client_codes[] = {FACTUM_ECONNECT, FACTUM_EPROTOCOL, FACTUM_ESERVER, FACTUM_EUNSUPPORTED,
                                       FACTUM_EBADURL, FACTUM_EFULL, FACTUM_ECANCELED, FACTUM_ETLS,
                                       FACTUM_EUNAUTHENTICATED, FACTUM_EACCESSDENIED};
    size_t n = sizeof client_codes / sizeof client_codes[0];
    for (size_t i = 0; i < n; i++) {
        int code = client_codes[i];
        CHECK(code <= FACTUM_CLIENT_ECODE_FIRST && code >= FACTUM_CLIENT_ECODE_LAST);
        CHECK(!strcmp(factum_strerror(code), factum_client_strerror(code)));
        CHECK(strcmp(factum_client_strerror(code), "unknown error") != 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(factum_client_strerror(code), factum_client_strerror(client_codes[j])) != 0);
    }
    /* the numeric values applications compare stay as they were */
    CHECK(FACTUM_ECONNECT == -1101 && FACTUM_EBADURL == -1106 && FACTUM_EACCESSDENIED == -1112);
    static const int others[] = {0, FACTUM_EWRONGVERSION, FACTUM_ETIMEDOUT, FACTUM_EEXISTS, -ENOENT, -5000};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        CHECK(!strcmp(factum_client_strerror(others[i]), factum_strerror(others[i])));
    CHECK(strstr(factum_strerror(FACTUM_ETIMEDOUT), "deadline") != NULL);
    CHECK(!strcmp(factum_strerror(-1150), "unknown error"));
    CHECK(!strcmp(factum_client_strerror(-1150), "unknown error"));
}

static void *initial(void *ctx)
{
    return calloc(1, 1);
}
static int evolve(void *ctx, void *state, const factum_event *ev)
{
    return 0;
}
static int decide(void *ctx, const void *command, const void *state, factum_decision *out)
{
    return 0;
}
static void state_free(void *ctx, void *state)
{
    free(state);
}

static void t_remote_table(void)
{
    factum_decider_def def;
    factum_decider_def_init(&def);
    def.initial = initial;
    def.evolve = evolve;
    def.decide = decide;
    def.state_free = state_free;
    factum_decider *d = NULL;
    CHECK_RC(factum_decider_new_remote(NULL, &def, &d), FACTUM_EINVAL);
    /* A handle without a table, or with one of another version or shape,
     * is refused before anything is called through it. */
    struct factum_client *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    CHECK_RC(factum_decider_new_remote(c, &def, &d), FACTUM_EINVAL);
    remote_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.abi = REMOTE_ABI + 1;
    ops.size = sizeof ops;
    c->head.ops = &ops;
    CHECK_RC(factum_decider_new_remote(c, &def, &d), FACTUM_EINVAL);
    ops.abi = REMOTE_ABI;
    ops.size = sizeof ops - 8;
    CHECK_RC(factum_decider_new_remote(c, &def, &d), FACTUM_EINVAL);
    CHECK(d == NULL);
    free(c);
}

int main(void)
{
    RUN(t_statuses);
    RUN(t_messages);
    RUN(t_remote_table);
    return harness_done();
}
