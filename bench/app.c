/*
 * app.c - the application toolkit (issue 14): loading an aggregate of
 * 10,000 events (the bank account of examples/bank) with and without a
 * snapshot, p50/p99, embedded and over the network.
 *
 *   factum-bench-app fill DIR [EVENTS]      account-big: AccountOpened + EVENTS-1 deposits and
 *                                           withdrawals, and a snapshot 50 events before the end
 *                                           (where a snapshot every 100 events leaves a load on
 *                                           average)
 *   factum-bench-app embedded DIR [LOADS]   factum_decider_load, libfactum embedded
 *   factum-bench-app network URL [LOADS]    the same through factumd (factum_decider_new_remote:
 *                                           the C client reads $snapshots-S, then the stream)
 *
 * Both modes print "@ factum APP-<mode> <metric> <value>" lines
 * (bench/run-app.sh collects them) for: full replay (a decider without
 * snapshot functions) and snapshot + the 50 events after it. Loads are
 * repeated (the log is in the page cache: warm loads, the usual case for
 * a live aggregate).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "bench.h"
#include "factum_client.h"

#define STREAM "account-big"
#define BEHIND 50

static int fill(const char *dir, int events)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED; /* setup only */
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        return 1;
    }
    factum_decider_def def;
    bank_decider_def(&def, 0);
    factum_decider *d;
    if (factum_decider_new(s, &def, &d)) return 1;
    bank_command open = {BANK_OPEN, 0, "Alice", NULL};
    if ((rc = factum_decider_handle(d, STREAM, &open, NULL, NULL))) return 1;
    /* deposits and withdrawals, appended in pages (as commands would, but faster to set up) */
    factum_event_data ev[100];
    char buf[100][48];
    int64_t balance = 0;
    for (int i = 1; i < events;) {
        size_t n = 0;
        for (; n < 100 && i < events; n++, i++) {
            int withdraw = i % 3 == 0 && balance >= 7;
            int64_t amount = withdraw ? 7 : 10;
            balance += withdraw ? -amount : amount;
            snprintf(buf[n], sizeof buf[n], "{\"amount\":%lld}", (long long)amount);
            memset(&ev[n], 0, sizeof ev[n]);
            ev[n].type = withdraw ? "MoneyWithdrawn" : "MoneyDeposited";
            ev[n].flags = FACTUM_EVENT_JSON;
            ev[n].data = buf[n];
            ev[n].data_len = strlen(buf[n]);
        }
        if ((rc = factum_append(s, STREAM, FACTUM_ANY, ev, n, NULL))) {
            fprintf(stderr, "append: %s\n", factum_strerror(rc));
            return 1;
        }
    }
    /* the snapshot BEHIND events before the end: the state folded up to there */
    factum_snapshot sn;
    factum_event page[256];
    size_t n;
    uint64_t next = 0;
    bank_state st = {0};
    int64_t upto = events - 1 - BEHIND;
    for (int done = 0; !done;) {
        if (factum_read_stream(s, STREAM, next, FACTUM_FORWARD, page, 256, &n, &next)) return 1;
        for (size_t i = 0; i < n && !done; i++) {
            if ((int64_t)page[i].version > upto) {
                done = 1;
                break;
            }
            def.evolve(NULL, &st, &page[i]);
        }
        if (next == FACTUM_END) done = 1;
    }
    (void)sn;
    char *data;
    size_t len;
    def.snapshot_encode(NULL, &st, &data, &len);
    rc = factum_snapshot_write(s, STREAM, (uint64_t)upto, "AccountSnapshot", data, len, 0, NULL);
    free(data);
    factum_decider_free(d);
    factum_store_close(s);
    printf("filled %s: %d events, snapshot at version %lld, balance %lld\n", dir, events, (long long)upto,
           (long long)balance);
    return rc ? 1 : 0;
}

static int run(factum_decider *with, factum_decider *plain, const char *mode, int loads)
{
    uint64_t *lat = malloc(sizeof *lat * (size_t)loads);
    if (!lat) return 1;
    factum_decider *ds[2] = {plain, with};
    const char *names[2] = {"replay", "snapshot"};
    for (int k = 0; k < 2; k++) {
        int64_t first_balance = 0;
        for (int i = -5; i < loads; i++) { /* 5 warm-up loads */
            void *st;
            int64_t v, sv;
            uint64_t t0 = now_ns();
            int rc = factum_decider_load(ds[k], STREAM, &st, &v, &sv);
            uint64_t t1 = now_ns();
            if (rc) {
                fprintf(stderr, "load: %s\n", factum_strerror(rc));
                return 1;
            }
            if (i == 0) first_balance = ((bank_state *)st)->balance;
            if ((k == 1) != (sv >= 0)) {
                fprintf(stderr, "load %s: snapshot %lld unexpected\n", names[k], (long long)sv);
                return 1;
            }
            free(st);
            if (i >= 0) lat[i] = t1 - t0;
        }
        qsort(lat, (size_t)loads, sizeof *lat, cmp_u64);
        char w[64];
        snprintf(w, sizeof w, "APP-%s-%s", mode, names[k]);
        printf("%-28s p50 %9.1f us  p99 %9.1f us  (%d loads, balance %lld)\n", w, pct(lat, (size_t)loads, 50),
               pct(lat, (size_t)loads, 99), loads, (long long)first_balance);
        result(w, "p50_us", pct(lat, (size_t)loads, 50));
        result(w, "p99_us", pct(lat, (size_t)loads, 99));
    }
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    if (argc < 3) {
        fprintf(stderr, "usage: %s fill DIR [EVENTS] | embedded DIR [LOADS] | network URL [LOADS]\n",
                argv[0]);
        return 2;
    }
    if (!strcmp(argv[1], "fill")) return fill(argv[2], argc > 3 ? atoi(argv[3]) : 10000);
    int loads = argc > 3 ? atoi(argv[3]) : 200;
    if (loads < 1) loads = 1;
    factum_decider_def with, plain;
    bank_decider_def(&with, 0);
    bank_decider_def(&plain, 0);
    plain.snapshot_encode = NULL;
    plain.snapshot_decode = NULL;
    plain.snapshot_type = NULL;
    factum_decider *dw, *dp;
    int rc = 1;
    if (!strcmp(argv[1], "embedded")) {
        factum_store *s;
        if (factum_store_open(argv[2], NULL, &s)) return 1;
        if (factum_decider_new(s, &with, &dw) || factum_decider_new(s, &plain, &dp)) return 1;
        rc = run(dw, dp, "embedded", loads);
        factum_decider_free(dw);
        factum_decider_free(dp);
        factum_store_close(s);
    } else if (!strcmp(argv[1], "network")) {
        factum_client *c;
        factum_client_options o;
        factum_client_options_init(&o);
        if (factum_client_connect(argv[2], &o, &c)) return 1;
        if (factum_decider_new_remote(c, &with, &dw) || factum_decider_new_remote(c, &plain, &dp)) return 1;
        rc = run(dw, dp, "network", loads);
        factum_decider_free(dw);
        factum_decider_free(dp);
        factum_client_close(c);
    }
    return rc;
}
