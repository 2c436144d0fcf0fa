/*
 * main.c - the orders example's driver: places N orders, lets the saga
 * drive each through payment, inventory, shipment and completion (with
 * failures injected per step, seeded), waits until every order has ended,
 * checks that each is completed or fully compensated, and prints the three
 * read models (order summary, revenue, shipping manifest).
 *
 *   example_orders [--orders N] [--seed S] [--fail-payment P] [--fail-inventory P]
 *                  [--fail-shipment P] [--fail-completion P] [--silent-payment P]
 *                  [--payment-timeout-ms MS] [--relaxed] DIR
 *
 * Probabilities are 0..1 (defaults: 0.1 for each step, 0.05 for a payment
 * that never answers and so times out after --payment-timeout-ms, default
 * 1000). Running it again on the same DIR with the same seed places the same
 * orders (their command ids are derived from the order ids): nothing
 * happens twice. Exit status 0 when every order ended as it must, 1 if not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orders.h"

static int usage(void)
{
    fprintf(stderr, "usage: example_orders [--orders N] [--seed S] [--fail-payment P] [--fail-inventory P]\n"
                    "         [--fail-shipment P] [--fail-completion P] [--silent-payment P]\n"
                    "         [--payment-timeout-ms MS] [--relaxed] DIR\n");
    return 1;
}

static int query(factum_readmodels *m, const char *name, const char *sql, char *out, size_t cap)
{
    char *json = NULL, err[256] = "";
    factum_query_options qo;
    factum_query_options_init(&qo);
    int rc = factum_readmodel_query(m, name, sql, NULL, &qo, &json, err, sizeof err);
    if (rc) {
        fprintf(stderr, "query %s: %s %s\n", name, factum_strerror(rc), err);
        return rc;
    }
    /* Just the rows. */
    const char *r = strstr(json, "\"rows\":");
    const char *e = r ? strstr(r, ",\"truncated\"") : NULL;
    snprintf(out, cap, "%.*s", r && e ? (int)(e - r - 7) : 0, r ? r + 7 : "");
    free(json);
    return 0;
}

int main(int argc, char **argv)
{
    orders_config cfg = {
        .seed = 1, .fail = {0.1, 0.1, 0.1, 0.1}, .silent_payment = 0.05, .payment_timeout_ms = 1000};
    int n_orders = 100, relaxed = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--relaxed")) {
            relaxed = 1;
            continue;
        }
        if (a[0] != '-') {
            dir = a;
            continue;
        }
        if (i + 1 >= argc) return usage(); /* every other option takes a value */
        const char *v = argv[++i];
        char *end = NULL;
        double p = strtod(v, &end);
        int bad = !*v || *end;
        if (!strcmp(a, "--orders"))
            n_orders = bad || p < 1 || p > 10000000 ? 0 : (int)p;
        else if (!strcmp(a, "--seed"))
            cfg.seed = strtoull(v, &end, 0), bad = !*v || *end;
        else if (!strcmp(a, "--payment-timeout-ms"))
            cfg.payment_timeout_ms = bad || p < 1 ? (bad = 1, 0) : (int64_t)p;
        else if (!strcmp(a, "--fail-payment"))
            cfg.fail[STEP_PAYMENT] = p;
        else if (!strcmp(a, "--fail-inventory"))
            cfg.fail[STEP_INVENTORY] = p;
        else if (!strcmp(a, "--fail-shipment"))
            cfg.fail[STEP_SHIPMENT] = p;
        else if (!strcmp(a, "--fail-completion"))
            cfg.fail[STEP_COMPLETION] = p;
        else if (!strcmp(a, "--silent-payment"))
            cfg.silent_payment = p;
        else
            return usage();
        if (bad || p < 0 || (strncmp(a, "--fail-", 7) == 0 && p > 1) ||
            (!strcmp(a, "--silent-payment") && p > 1)) {
            fprintf(stderr, "example_orders: bad value for %s: %s\n", a, v);
            return usage();
        }
    }
    if (!dir || n_orders < 1) return usage();

    factum_options o;
    factum_options_init(&o);
    if (relaxed) o.durability = FACTUM_RELAXED;
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        return 1;
    }
    factum_readmodels *rms = NULL;
    rc = factum_readmodels_open(s, NULL, &rms);
    if (!rc) rc = orders_readmodels(rms);
    orders_app *app = rc ? NULL : orders_open(s, &cfg, 1);
    if (!app) {
        factum_readmodels_close(rms);
        factum_store_close(s);
        return 1;
    }

    /* Place the orders. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char(*ids)[64] = calloc((size_t)n_orders, sizeof *ids);
    for (int i = 0; i < n_orders && ids; i++) {
        snprintf(ids[i], sizeof ids[i], "o%llu-%d", (unsigned long long)cfg.seed, i);
        char customer[32], sku[32];
        snprintf(customer, sizeof customer, "customer-%d", i % 37);
        snprintf(sku, sizeof sku, "sku-%d", i % 11);
        rc = orders_place(app, ids[i], customer, 100 + (i * 7919) % 9900, sku, 1 + i % 3, NULL);
        if (rc) {
            fprintf(stderr, "place %s: %s\n", ids[i], factum_strerror(rc));
            break;
        }
    }

    /* Wait until every order has ended (a silent payment takes its timeout). */
    int completed = 0, compensated = 0, bad = 0;
    int64_t deadline_ms = 60000 + 2 * cfg.payment_timeout_ms;
    for (int i = 0; i < n_orders && ids && !rc; i++) {
        char why[256];
        int st;
        for (;;) {
            st = orders_check(s, ids[i], why, sizeof why);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int64_t ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            if (st != 0 || ms > deadline_ms) break;
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
        if (st == FACTUM_SAGA_COMPLETED)
            completed++;
        else if (st == FACTUM_SAGA_COMPENSATED)
            compensated++;
        else {
            bad++;
            fprintf(stderr, "order %s: %s\n", ids[i], why);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%d orders: %d completed, %d compensated, %d wrong, in %.2f s (%s)\n", n_orders, completed,
           compensated, bad, secs, relaxed ? "relaxed" : "durable");

    /* The read models, once they have applied everything. */
    factum_stats st;
    factum_store_get_stats(s, &st);
    for (int i = 0; i < 3; i++)
        factum_readmodel_wait(rms, orders_readmodel_names[i], st.last_position, 30000);
    char rows[4096], net[128], expect[128], ready[128], want_ready[128];
    if (!query(rms, "order_summary",
               "SELECT status, count(*), sum(amount) FROM orders GROUP BY status ORDER BY status", rows,
               sizeof rows))
        printf("order_summary      [status, orders, amount]: %s\n", rows);
    if (!query(rms, "revenue", "SELECT day, charged, refunded, charged - refunded FROM revenue ORDER BY day",
               rows, sizeof rows))
        printf("revenue            [day, charged, refunded, net]: %s\n", rows);
    if (!query(rms, "shipping_manifest",
               "SELECT status, carrier, count(*) FROM manifest GROUP BY status, carrier "
               "ORDER BY status, carrier",
               rows, sizeof rows))
        printf("shipping_manifest  [status, carrier, shipments]: %s\n", rows);
    /* The three read models agree with each other. */
    if (!query(rms, "revenue", "SELECT coalesce(sum(charged) - sum(refunded), 0) FROM revenue", net,
               sizeof net) &&
        !query(rms, "order_summary", "SELECT coalesce(sum(amount), 0) FROM orders WHERE status = 'completed'",
               expect, sizeof expect) &&
        !query(rms, "shipping_manifest", "SELECT count(*) FROM manifest WHERE status = 'ready'", ready,
               sizeof ready) &&
        !query(rms, "order_summary", "SELECT count(*) FROM orders WHERE status = 'completed'", want_ready,
               sizeof want_ready)) {
        int agree = !strcmp(net, expect) && !strcmp(ready, want_ready);
        printf("read models agree: %s (net revenue %s = completed orders' amount %s; ready shipments %s)\n",
               agree ? "yes" : "NO", net, expect, ready);
        if (!agree) bad++;
    }

    free(ids);
    orders_close(app);
    factum_readmodels_close(rms);
    factum_store_close(s);
    return bad || rc ? 1 : 0;
}
