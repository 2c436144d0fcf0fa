/*
 * app_bank.c - concurrent withdrawals against one bank account from
 * several processes, each deciding through factumd with the toolkit's
 * remote decider (factum_decider_new_remote). The store is locked by one
 * process, so processes share it through factumd; its expected-version
 * check is what keeps the no-overdraft invariant (DC-1). Driven by
 * tests/integration/app_bank.sh:
 *
 *   app_bank setup URL                 open account-p with 5000
 *   app_bank work URL SEED OPS         random commands; prints "dep wd accepted refused attempts"
 *   app_bank check URL DEP WD ACCEPTED the stream against the model: running
 *                                      balance >= 0, final = 5000 + DEP - WD, one
 *                                      event per accepted command, and the remote
 *                                      load (snapshot + replay) agrees
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "factum_client.h"

#define STREAM "account-p"

static factum_client *connect_or_die(const char *url)
{
    factum_client *c;
    factum_client_options o;
    factum_client_options_init(&o);
    int rc = factum_client_connect(url, &o, &c);
    if (rc) {
        fprintf(stderr, "connect %s: %s\n", url, factum_strerror(rc));
        exit(1);
    }
    return c;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    factum_client *c = connect_or_die(argv[2]);
    factum_decider_def def;
    bank_decider_def(&def, 16);
    def.max_attempts = 1000;
    factum_decider *d;
    if (factum_decider_new_remote(c, &def, &d)) return 1;
    int status = 0;
    if (!strcmp(argv[1], "setup")) {
        bank_command open = {BANK_OPEN, 0, "Alice", NULL}, dep = {BANK_DEPOSIT, 5000, NULL, NULL};
        if (factum_decider_handle(d, STREAM, &open, NULL, NULL) ||
            factum_decider_handle(d, STREAM, &dep, NULL, NULL))
            status = 1;
    } else if (!strcmp(argv[1], "work") && argc == 5) {
        uint64_t seed = strtoull(argv[3], NULL, 0);
        int ops = atoi(argv[4]);
        int64_t dep = 0, wd = 0;
        int acc = 0, refused = 0;
        uint64_t attempts = 0;
        for (int i = 0; i < ops; i++) {
            bank_command cmd = {rnd(&seed) % 4 == 0 ? BANK_DEPOSIT : BANK_WITHDRAW,
                                1 + (int64_t)(rnd(&seed) % 120), NULL, NULL};
            uint8_t id[16];
            factum_uuid_v4(id);
            factum_decide_result r;
            int rc = factum_decider_handle(d, STREAM, &cmd, id, &r);
            attempts += r.attempts;
            if (rc == 0 && r.n_events == 1) {
                acc++;
                if (cmd.kind == BANK_DEPOSIT)
                    dep += cmd.amount;
                else
                    wd += cmd.amount;
            } else if (rc == BANK_EINSUFFICIENT) {
                refused++;
            } else {
                fprintf(stderr, "command: %s\n", bank_strerror(rc));
                status = 1;
            }
        }
        printf("%" PRId64 " %" PRId64 " %d %d %" PRIu64 "\n", dep, wd, acc, refused, attempts);
    } else if (!strcmp(argv[1], "check") && argc == 6) {
        int64_t model = 5000 + strtoll(argv[3], NULL, 10) - strtoll(argv[4], NULL, 10);
        long accepted = atol(argv[5]);
        int64_t bal = 0, min = 0, mid_bal = 0;
        long n_events = 0;
        uint64_t mid_pos = 0; /* the position of the middle event, for the as-of load */
        uint64_t from = 0;
        for (;;) {
            factum_client_batch *b;
            if (factum_client_read_stream(c, STREAM, from, FACTUM_FORWARD, 500, &b)) return 1;
            size_t n = factum_client_batch_count(b);
            for (size_t i = 0; i < n; i++) {
                const factum_event *ev = factum_client_batch_event(b, i);
                const char *p = memmem(ev->data, ev->data_len, "\"amount\":", 9);
                int64_t a = p ? strtoll(p + 9, NULL, 10) : 0;
                if (!strcmp(ev->type, "MoneyDeposited")) bal += a;
                if (!strcmp(ev->type, "MoneyWithdrawn")) bal -= a;
                if (bal < min) min = bal;
                n_events++;
                if (n_events == (2 + accepted) / 2) mid_pos = ev->position, mid_bal = bal;
                from = ev->version + 1;
            }
            factum_client_batch_free(b);
            if (n < 500) break;
        }
        void *st;
        int64_t v, sv;
        int64_t loaded = INT64_MIN;
        if (factum_decider_load(d, STREAM, &st, &v, &sv) == 0) {
            loaded = ((bank_state *)st)->balance;
            def.state_free(def.ctx, st);
        }
        printf("events %ld (model %ld), balance %" PRId64 " (model %" PRId64 ", remote load %" PRId64
               ", snapshot at %" PRId64 "), lowest %" PRId64 "\n",
               n_events, 2 + accepted, bal, model, loaded, sv, min);
        if (min < 0 || bal != model || loaded != model || n_events != 2 + accepted || sv < 0) status = 1;
        /* the account as of the middle event's position, through $asof/ */
        factum_asof a = {.position = mid_pos, .valid_until_ns = FACTUM_VALID_ANY};
        int64_t at = INT64_MIN, atv = -2;
        if (factum_decider_load_asof(d, STREAM, &a, &st, &atv) == 0) {
            at = ((bank_state *)st)->balance;
            def.state_free(def.ctx, st);
        }
        printf("as of position %" PRIu64 ": balance %" PRId64 " (model %" PRId64 "), version %" PRId64 "\n", mid_pos,
               at, mid_bal, atv);
        if (at != mid_bal || atv != (2 + accepted) / 2 - 1) status = 1;
        /* retention: $maxCount 3 on the snapshot stream, set by the remote decider */
        factum_client_batch *sb;
        if (factum_client_read_stream(c, "$snapshots-" STREAM, 0, FACTUM_FORWARD, 100, &sb)) return 1;
        size_t kept = factum_client_batch_count(sb);
        factum_client_batch_free(sb);
        printf("snapshots kept: %zu\n", kept);
        if (kept < 1 || kept > FACTUM_SNAPSHOT_KEEP_DEFAULT) status = 1;
        /* factumd checks snapshot appends (factum.h "Snapshots"): InvalidArgument, nothing written */
        const char *metas[] = {"", "{\"$streamVersion\":99999}", "{\"$streamVersion\":\"1\"}",
                               "{\"$streamVersion\":1}"};
        const char *streams[] = {"$snapshots-" STREAM, "$snapshots-" STREAM, "$snapshots-" STREAM,
                                 "$snapshots-account-none"};
        for (int i = 0; i < 4; i++) {
            factum_event_data e = {0};
            e.type = "AccountSnapshot";
            e.flags = FACTUM_EVENT_JSON;
            e.data = "{}";
            e.data_len = 2;
            e.metadata = metas[i];
            e.metadata_len = strlen(metas[i]);
            int rc = factum_client_append(c, streams[i], FACTUM_ANY, &e, 1, NULL);
            printf("bad snapshot append %d: %s (%s)\n", i, factum_strerror(rc), factum_client_last_error(c));
            if (rc != FACTUM_EINVAL) status = 1;
        }
        /* a good one is taken */
        factum_event_data e = {0};
        e.type = "AccountSnapshot";
        e.flags = FACTUM_EVENT_JSON;
        e.data = "{\"owner\":\"Alice\",\"balance\":5000,\"opened\":1}";
        e.data_len = strlen(e.data);
        e.metadata = "{\"$streamVersion\":1}";
        e.metadata_len = strlen(e.metadata);
        if (factum_client_append(c, "$snapshots-" STREAM, FACTUM_ANY, &e, 1, NULL)) status = 1;
    } else {
        status = 2;
    }
    factum_decider_free(d);
    factum_client_close(c);
    return status;
}
