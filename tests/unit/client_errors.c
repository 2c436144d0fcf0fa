/*
 * client_errors.c - how the C client names the server's refusals
 * (client_call_error in src/client/conn.c): gRPC UNAUTHENTICATED (16) is
 * FACTUM_EUNAUTHENTICATED, PERMISSION_DENIED (7) and KurrentDB's
 * `access-denied` exception (or its AccessDeniedErrorDetails) are
 * FACTUM_EACCESSDENIED, distinct from each other and from a generic
 * server failure; the CLI's exit code for both is 5. No network.
 */
#include "client/client_int.h"
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

int main(void)
{
    RUN(t_statuses);
    return harness_done();
}
