/*
 * main.c - the bank account of the brief, event-sourced with libfactum and
 * its application toolkit (factum_app.h), from the command line:
 *
 *   example_bank [--snapshot-every N] DIR open ACCOUNT OWNER
 *   example_bank [--snapshot-every N] DIR deposit ACCOUNT AMOUNT [COMMAND-ID]
 *   example_bank [--snapshot-every N] DIR withdraw ACCOUNT AMOUNT [COMMAND-ID]
 *   example_bank DIR balance ACCOUNT
 *
 * DIR is a factum data directory (created if missing). Commands go through
 * the account's decider (account.c): the state is loaded from the newest
 * snapshot plus the events after it, the command is decided (a withdrawal
 * that would overdraw the account is refused), the events are appended with
 * the loaded version as the expectation, and a conflict with a concurrent
 * writer is retried. A COMMAND-ID (a UUID) makes a command idempotent:
 * running it twice has its effect once. A snapshot is written every N
 * events (default 20). `balance` prints the balance twice: from the
 * decider's load, and from the `balances` read model (SQLite,
 * factum_readmodel.h), which this program registers on first use.
 * Amounts are integers (cents). Exit status: 0 done, 2 refused by the
 * domain (the message says why), 1 an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "factum_readmodel.h"

static const char BALANCES[] =
    "{\"name\":\"balances\",\"streams\":[\"account-\"],"
    "\"schema\":[\"CREATE TABLE balances(account TEXT PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL, "
    "version INTEGER NOT NULL)\"],"
    "\"handlers\":{"
    "\"AccountOpened\":\"INSERT INTO balances(account, owner, balance, version) VALUES (:stream, "
    ":data.owner, 0, "
    ":version)\","
    "\"MoneyDeposited\":\"UPDATE balances SET balance = balance + :data.amount, version = :version WHERE "
    "account = "
    ":stream\","
    "\"MoneyWithdrawn\":\"UPDATE balances SET balance = balance - :data.amount, version = :version WHERE "
    "account = "
    ":stream\"}}";

static int usage(void)
{
    fprintf(stderr,
            "usage: example_bank [--snapshot-every N] DIR open ACCOUNT OWNER\n"
            "       example_bank [--snapshot-every N] DIR deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID]\n"
            "       example_bank DIR balance ACCOUNT\n");
    return 1;
}

/* The read model's balance of `stream`, once it has applied `position`. */
static int read_model_balance(factum_store *store, const char *stream, uint64_t position)
{
    factum_readmodels *rms;
    int rc = factum_readmodels_open(store, NULL, &rms);
    if (rc) {
        fprintf(stderr, "read models: %s\n", factum_strerror(rc));
        return rc;
    }
    char err[512] = "";
    rc = factum_readmodel_create(rms, BALANCES, sizeof BALANCES - 1, err, sizeof err);
    if (rc && rc != FACTUM_EEXISTS) {
        fprintf(stderr, "read model balances: %s %s\n", factum_strerror(rc), err);
        factum_readmodels_close(rms);
        return rc;
    }
    factum_query_options qo;
    factum_query_options_init(&qo);
    qo.min_position = position;
    qo.wait_ms = 10000;
    char params[1200];
    snprintf(params, sizeof params, "{\"a\":\"%s\"}", stream);
    char *out = NULL;
    rc = factum_readmodel_query(rms, "balances", "SELECT balance FROM balances WHERE account = :a", params,
                                &qo, &out, err, sizeof err);
    if (rc)
        fprintf(stderr, "query: %s %s\n", factum_strerror(rc), err);
    else
        printf("read model: %s\n", out);
    free(out);
    factum_readmodels_close(rms);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t every = 20;
    int a = 1;
    if (a + 1 < argc && !strcmp(argv[a], "--snapshot-every")) {
        every = (uint32_t)strtoul(argv[a + 1], NULL, 10);
        a += 2;
    }
    if (argc - a < 3) return usage();
    const char *dir = argv[a], *cmd = argv[a + 1], *account = argv[a + 2];
    char stream[256];
    if (snprintf(stream, sizeof stream, "account-%s", account) >= (int)sizeof stream) return usage();

    bank_command c = {0};
    uint8_t idb[16], *id = NULL;
    int rest = argc - a - 3;
    char **args = argv + a + 3;
    if (!strcmp(cmd, "open") && rest == 1) {
        c.kind = BANK_OPEN;
        c.owner = args[0];
    } else if ((!strcmp(cmd, "deposit") || !strcmp(cmd, "withdraw")) && (rest == 1 || rest == 2)) {
        c.kind = !strcmp(cmd, "deposit") ? BANK_DEPOSIT : BANK_WITHDRAW;
        char *end;
        c.amount = strtoll(args[0], &end, 10);
        if (*end || end == args[0]) return usage();
        if (rest == 2) {
            if (factum_uuid_parse(args[1], strlen(args[1]), idb)) {
                fprintf(stderr, "not a UUID: %s\n", args[1]);
                return 1;
            }
            id = idb;
        }
    } else if (strcmp(cmd, "balance") || rest != 0) {
        return usage();
    }

    factum_store *store;
    int rc = factum_store_open(dir, NULL, &store);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        return 1;
    }
    factum_decider_def def;
    bank_decider_def(&def, every);
    factum_decider *d;
    if ((rc = factum_decider_new(store, &def, &d))) {
        fprintf(stderr, "decider: %s\n", factum_strerror(rc));
        factum_store_close(store);
        return 1;
    }
    int status = 0;
    if (!strcmp(cmd, "balance")) {
        void *st;
        int64_t version, snap;
        rc = factum_decider_load(d, stream, &st, &version, &snap);
        if (rc) {
            fprintf(stderr, "load %s: %s\n", stream, factum_strerror(rc));
            status = 1;
        } else {
            bank_state *b = st;
            if (!b->opened) {
                fprintf(stderr, "%s: %s\n", stream, bank_strerror(BANK_ENOTOPEN));
                status = 2;
            } else {
                printf("%s owner %s balance %lld version %lld (snapshot at %lld)\n", stream, b->owner,
                       (long long)b->balance, (long long)version, (long long)snap);
                factum_stream_info info;
                if (factum_stream_get_info(store, stream, &info) ||
                    read_model_balance(store, stream, info.last_position))
                    status = 1;
            }
            def.state_free(def.ctx, st);
        }
    } else {
        factum_decide_result res;
        rc = factum_decider_handle(d, stream, &c, id, &res);
        if (rc > 0) {
            fprintf(stderr, "%s %s: refused: %s\n", cmd, stream, bank_strerror(rc));
            status = 2;
        } else if (rc) {
            fprintf(stderr, "%s %s: %s\n", cmd, stream, factum_strerror(rc));
            status = 1;
        } else {
            printf("%s %s: version %lld%s (attempts %u%s)\n", cmd, stream, (long long)res.version,
                   res.idempotent ? ", already done" : "", res.attempts,
                   res.snapshot_written ? ", snapshot written" : "");
        }
    }
    factum_decider_free(d);
    if (factum_store_close(store)) status = 1;
    return status;
}
