/*
 * both.c - a program of both libraries (tests/libs/libs.sh builds it with
 * `pkg-config factum factum-client`, libfactum first on the command line):
 * factum_strerror, bound to libfactum's copy, still describes the client's
 * codes (base/err.c's hook finds the client library); and the toolkit's
 * remote decider (libfactum) drives a counter through a factum_client
 * (libfactum-client) via the table of common/remote.h: three commands,
 * each deciding on the state the previous ones left. Usage: both URL.
 */
#include <factum.h>
#include <factum_app.h>
#include <factum_client.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), 1)

static void *initial(void *ctx)
{
    return calloc(1, sizeof(int));
}

static int evolve(void *ctx, void *state, const factum_event *ev)
{
    ++*(int *)state;
    return 0;
}

/* A command is the count it expects to find: decided on any other, it is
 * refused (1), so a count the decider did not load right shows. */
static int decide(void *ctx, const void *command, const void *state, factum_decision *out)
{
    if (*(const int *)command != *(const int *)state) return 1;
    return factum_decision_add_json(out, "Counted", "{}");
}

static void state_free(void *ctx, void *state)
{
    free(state);
}

int main(int argc, char **argv)
{
    if (argc != 2) return FAIL("usage: both URL");
    if (strcmp(factum_strerror(FACTUM_ETLS), factum_client_strerror(FACTUM_ETLS)) ||
        strstr(factum_strerror(FACTUM_ECONNECT), "libfactum-client"))
        return FAIL("factum_strerror(FACTUM_ETLS) = '%s'", factum_strerror(FACTUM_ETLS));
    factum_client *c;
    int rc = factum_client_connect(argv[1], NULL, &c);
    if (rc) return FAIL("connect: %s (%s)", factum_strerror(rc), factum_client_last_error(NULL));
    factum_decider_def def;
    factum_decider_def_init(&def);
    def.initial = initial;
    def.evolve = evolve;
    def.decide = decide;
    def.state_free = state_free;
    factum_decider *d;
    if ((rc = factum_decider_new_remote(c, &def, &d))) return FAIL("decider: %s", factum_strerror(rc));
    uint8_t id[16];
    char stream[64] = "counter-";
    factum_uuid_v4(id);
    factum_uuid_format(id, stream + 8);
    for (int i = 0; i < 3; i++) {
        factum_decide_result res;
        if ((rc = factum_decider_handle(d, stream, &i, NULL, &res)) || res.n_events != 1)
            return FAIL("command %d: %d (%s)", i, rc, rc < 0 ? factum_strerror(rc) : "refused");
    }
    int wrong = 7;
    if ((rc = factum_decider_handle(d, stream, &wrong, NULL, NULL)) != 1)
        return FAIL("a command on a count not there was not refused: %d", rc);
    factum_decider_free(d);
    factum_client_close(c);
    printf("both: three commands decided over the network\n");
    return 0;
}
