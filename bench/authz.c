/*
 * authz.c - the cost of a stream authorization check (src/rpc/authz.c on
 * the store), the check every read, append and delete of a secure server
 * makes: nanoseconds per check and allocations per check, for the system
 * principal (insecure server), a user on a stream without metadata (the
 * fast path), on a stream with an `$acl` (a cache hit), under stream
 * policies, and after each metadata change (a miss). Not a test: it
 * reports, it asserts nothing.
 * Usage: factum-bench-authz [checks]   (default 2,000,000)
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "rpc/rpc.h"

/* Count allocations: the hot path must make none (ACL-7). */
static unsigned long n_alloc;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
void *malloc(size_t n)
{
    n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    n_alloc++;
    return __libc_realloc(p, n);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void append(factum_store *s, const char *stream, const char *type, const char *json)
{
    factum_event_data e = {.type = type, .flags = FACTUM_EVENT_JSON, .data = json, .data_len = strlen(json)};
    if (factum_append(s, stream, FACTUM_ANY, &e, 1, NULL)) {
        fprintf(stderr, "append to %s failed\n", stream);
        exit(1);
    }
}

static void run(const char *what, auth_authz *z, const auth_principal *p, const char *const *streams, size_t ns,
                int action, long n, factum_store *s, const char *rewrite)
{
    int denied = 0;
    unsigned long a0 = n_alloc;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (rewrite && i % 1000 == 0) { /* not timed apart: a miss every 1,000 checks */
            char doc[96];
            snprintf(doc, sizeof doc, "{\"$acl\":{\"$r\":[\"alice\",\"r%ld\"]}}", i);
            factum_set_stream_metadata(s, rewrite, FACTUM_ANY, doc, strlen(doc), NULL);
        }
        denied += auth_check_stream(z, p, streams[(size_t)i % ns], action) != AUTH_OK;
    }
    double dt = now_s() - t0;
    printf("%-44s %8.0f ns/check  %6.3f allocations/check  (%d refused)\n", what, dt / (double)n * 1e9,
           (double)(n_alloc - a0) / (double)n, denied);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    char dir[] = "/tmp/factum-bench-authz-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED;
    static rpc_ctx ctx;
    if (factum_store_open(dir, &o, &ctx.store)) return 1;
    enum { NS = 1000 };
    static char names[2][NS][32];
    const char *plain[NS], *acl[NS];
    for (int i = 0; i < NS; i++) {
        snprintf(names[0][i], 32, "order-%d", i);
        snprintf(names[1][i], 32, "account-%d", i);
        plain[i] = names[0][i];
        acl[i] = names[1][i];
        append(ctx.store, plain[i], "E", "{}");
        append(ctx.store, acl[i], "E", "{}");
        const char *doc = "{\"$acl\":{\"$r\":[\"auditors\",\"alice\"],\"$w\":\"writers\"}}";
        factum_set_stream_metadata(ctx.store, acl[i], FACTUM_ANY, doc, strlen(doc), NULL);
    }
    if (rpc_authz_init(&ctx, 0, 0, AUTH_POLICY_ACL)) return 1;
    auth_principal *alice;
    const char *groups[] = {"readers", "auditors"};
    auth_principal_new("alice", groups, 2, &alice);
    printf("%ld checks over %d streams each\n", n, NS);
    run("system principal (insecure server)", ctx.authz, auth_principal_system(), plain, NS, AUTH_WRITE, n, NULL,
        NULL);
    run("user, stream without metadata (append)", ctx.authz, alice, plain, NS, AUTH_WRITE, n, NULL, NULL);
    run("user, stream with an $acl (read, cache hit)", ctx.authz, alice, acl, NS, AUTH_READ, n, NULL, NULL);
    run("user, $acl, metadata rewritten every 1,000", ctx.authz, alice, acl, NS, AUTH_READ, n / 10, ctx.store,
        acl[0]);
    append(ctx.store, AUTH_POLICIES_STREAM, AUTH_POLICIES_TYPE,
           "{\"streamPolicies\":{\"p\":{\"$r\":[\"$all\"],\"$w\":[\"$all\"]},\"a\":{\"$r\":[\"auditors\"]}},"
           "\"streamRules\":[{\"startsWith\":\"account-\",\"policy\":\"a\"},{\"startsWith\":\"x-\",\"policy\":\"p\"}],"
           "\"defaultStreamRules\":{\"userStreams\":\"p\",\"systemStreams\":\"a\"}}");
    append(ctx.store, AUTH_POLICY_SETTINGS_STREAM, AUTH_POLICY_SETTINGS_TYPE,
           "{\"streamAccessPolicyType\":\"streampolicy\"}");
    run("user, stream policies (read, prefix rule)", ctx.authz, alice, acl, NS, AUTH_READ, n, NULL, NULL);
    auth_authz_stats st;
    auth_authz_stats_get(ctx.authz, &st);
    printf("cache: %llu hits, %llu misses\n", (unsigned long long)st.hits, (unsigned long long)st.misses);
    auth_principal_unref(alice);
    rpc_authz_free(&ctx);
    factum_store_close(ctx.store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}
