/*
 * main.c - the bank account of the brief, event-sourced with libfactum and
 * its application toolkit (factum_app.h), from the command line:
 *
 *   example_bank [--snapshot-every N] DIR open ACCOUNT OWNER [--valid-from T]
 *   example_bank [--snapshot-every N] DIR deposit ACCOUNT AMOUNT [COMMAND-ID] [--valid-from T]
 *   example_bank [--snapshot-every N] DIR withdraw ACCOUNT AMOUNT [COMMAND-ID] [--valid-from T]
 *   example_bank DIR balance ACCOUNT [--valid-at T] [--as-of T]
 *   example_bank DIR import-v1 ACCOUNT AMOUNT
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
 * Time (docs/temporal.md): --valid-from records that an opening, a deposit
 * or a withdrawal happened at an earlier time T (an RFC 3339 time or a date; the
 * event's "$validFrom"), e.g. one made at a branch and booked days later.
 * `balance --valid-at T` answers "the balance at T" (events that had
 * happened by T, as known now); with `--as-of T1` as well, as it was known
 * at T1 (events recorded by T1): a late booking changes the first answer,
 * not the second. Either option alone works; both fold the account from
 * its start through the temporal read (factum_decider_load_asof).
 * `import-v1` appends a MoneyDeposited in the shape an older version of
 * the application wrote ({"value": N}, schema version 1), as a migration
 * from it would: the program registers the upcaster of MoneyDeposited
 * 1 -> 2 (account.h) when it opens the store, so the decider and the read
 * model read that event as version 2, while the log keeps it as written.
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
            "usage: example_bank [--snapshot-every N] DIR open ACCOUNT OWNER [--valid-from T]\n"
            "       example_bank [--snapshot-every N] DIR deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID]\n"
            "                    [--valid-from T]\n"
            "       example_bank DIR balance ACCOUNT [--valid-at T] [--as-of T]\n"
            "       example_bank DIR import-v1 ACCOUNT AMOUNT\n");
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

/* The balance of `stream` as of a time (NULL: now) about a valid time
 * (NULL: any): the temporal read folded by the decider. */
static int balance_asof(factum_store *store, factum_decider *d, const factum_decider_def *def, const char *stream,
                        const char *as_of, const char *valid_at)
{
    int64_t t1 = 0, t2 = FACTUM_VALID_ANY;
    if ((as_of && factum_time_parse(as_of, strlen(as_of), &t1)) ||
        (valid_at && factum_time_parse(valid_at, strlen(valid_at), &t2))) {
        fprintf(stderr, "%s\n", bank_strerror(BANK_EVALIDFROM));
        return 1;
    }
    factum_asof a = {.position = FACTUM_END, .valid_until_ns = t2};
    int rc = as_of ? factum_asof_at_time(store, t1, t2, &a) : 0;
    void *st = NULL;
    int64_t version;
    if (!rc) rc = factum_decider_load_asof(d, stream, &a, &st, &version);
    if (rc) {
        fprintf(stderr, "load %s: %s\n", stream, factum_strerror(rc));
        return 1;
    }
    const bank_state *b = st;
    printf("%s balance %lld at %s as known %s%s (%s)\n", stream, (long long)b->balance, valid_at ? valid_at : "any time",
           as_of ? "at " : "now", as_of ? as_of : "", b->opened ? "open" : "not open then");
    def->state_free(def->ctx, st);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t every = 20;
    const char *valid_from = NULL, *valid_at = NULL, *as_of = NULL;
    /* options anywhere; the rest are the positional arguments, in order */
    char *pos[9] = {argv[0]};
    int np = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int opt = !strcmp(o, "--snapshot-every") || !strcmp(o, "--valid-from") || !strcmp(o, "--valid-at") ||
                  !strcmp(o, "--as-of");
        if (opt && i + 1 >= argc) return usage();
        if (!strcmp(o, "--snapshot-every")) every = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(o, "--valid-from")) valid_from = argv[++i];
        else if (!strcmp(o, "--valid-at")) valid_at = argv[++i];
        else if (!strcmp(o, "--as-of")) as_of = argv[++i];
        else if (np < (int)(sizeof pos / sizeof pos[0])) pos[np++] = argv[i];
        else return usage();
    }
    argv = pos; /* argv[1..np) are the positional arguments */
    argc = np;
    int a = 1;
    if (argc - a < 3) return usage();
    const char *dir = argv[a], *cmd = argv[a + 1], *account = argv[a + 2];
    int temporal = valid_at || as_of;
    if ((valid_from && strcmp(cmd, "open") && strcmp(cmd, "deposit") && strcmp(cmd, "withdraw")) ||
        (temporal && strcmp(cmd, "balance")))
        return usage();
    char stream[256];
    if (snprintf(stream, sizeof stream, "account-%s", account) >= (int)sizeof stream) return usage();

    bank_command c = {0};
    uint8_t idb[16], *id = NULL;
    int rest = argc - a - 3;
    char **args = argv + a + 3;
    if (!strcmp(cmd, "open") && rest == 1) {
        c.kind = BANK_OPEN;
        c.owner = args[0];
        c.valid_from = valid_from;
    } else if ((!strcmp(cmd, "deposit") || !strcmp(cmd, "withdraw")) && (rest == 1 || rest == 2)) {
        c.kind = !strcmp(cmd, "deposit") ? BANK_DEPOSIT : BANK_WITHDRAW;
        c.valid_from = valid_from;
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
    } else if (!strcmp(cmd, "import-v1") && rest == 1) {
        char *end;
        c.amount = strtoll(args[0], &end, 10);
        if (*end || end == args[0] || c.amount <= 0 || c.amount > BANK_MAX_AMOUNT) return usage();
    } else if (strcmp(cmd, "balance") || rest != 0) {
        return usage();
    }

    factum_store *store;
    int rc = factum_store_open(dir, NULL, &store);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        return 1;
    }
    if ((rc = bank_register_upcaster(store))) {
        fprintf(stderr, "upcaster: %s\n", factum_strerror(rc));
        factum_store_close(store);
        return 1;
    }
    if (!strcmp(cmd, "import-v1")) {
        /* the old application's shape, as stored by it: no $schemaVersion */
        char data[64];
        factum_event_data ev = {.type = "MoneyDeposited", .flags = FACTUM_EVENT_JSON, .data = data};
        ev.data_len = (size_t)snprintf(data, sizeof data, "{\"value\":%lld}", (long long)c.amount);
        factum_append_result res;
        rc = factum_append(store, stream, FACTUM_STREAM_EXISTS, &ev, 1, &res);
        if (rc) fprintf(stderr, "import-v1 %s: %s\n", stream, factum_strerror(rc));
        else printf("import-v1 %s: version %llu (stored as version 1)\n", stream, (unsigned long long)res.last_version);
        return factum_store_close(store) || rc ? 1 : 0;
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
    if (temporal) {
        status = balance_asof(store, d, &def, stream, as_of, valid_at);
    } else if (!strcmp(cmd, "balance")) {
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
