/*
 * sagas.c - the orders saga end to end (issue 14, include/factum_saga.h,
 * examples/orders), embedded: client threads place orders (PlaceOrder
 * through the order decider), the saga runner drives each through payment,
 * inventory, shipment and completion (each step a decider command in the
 * participant's stream, its answer an event the runner reacts to), and the
 * clock stops when every order has ended.
 *
 *   SAGA     every order succeeds: orders/s completed, and each order's
 *            time from OrderPlaced to SagaCompleted (p50/p99)
 *   SAGAF    10% of the orders fail at each step (payment declined,
 *            inventory unavailable, shipment failed, completion refused):
 *            orders/s ended (completed or fully compensated)
 *   SAGA1    one order at a time (N/10, at least 50): place it, wait until
 *            its saga has completed; p50/p99 of that time, with no backlog
 *
 * SAGA and SAGAF place all N orders at once (K threads), so an order's
 * start -> end time there includes waiting behind the others.
 *
 * One order is 5 progress events of the saga, 5 events of the
 * participants (OrderPlaced, PaymentCharged, InventoryReserved,
 * ShipmentCreated, OrderCompleted) and a scheduled payment timeout
 * requested then cancelled (2 events in `$scheduled`/`$scheduled-done`):
 * 12 appends, each durable (fdatasync before the acknowledgement, group
 * commit across the threads) unless --relaxed.
 *
 * Usage: factum-bench-sagas [--orders N] [--clients K] [--workers W] [--quick] [--relaxed]
 *          [--only SAGA,SAGAF,SAGA1] DIR
 * Prints a Markdown row per workload and "@ factum WORKLOAD metric value"
 * lines (bench/README.md).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench.h"
#include "factum.h"
#include "orders.h"

static const char *base_dir;
static int n_orders = 2000, n_clients = 4, relaxed, workers;

typedef struct client {
    orders_app *app;
    int from, to;
    const char *prefix;
    int rc;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    for (int i = c->from; i < c->to && !c->rc; i++) {
        char id[64], customer[32];
        snprintf(id, sizeof id, "%s%d", c->prefix, i);
        snprintf(customer, sizeof customer, "customer-%d", i % 97);
        c->rc = orders_place(c->app, id, customer, 100 + i % 900, "sku-1", 1 + i % 3, NULL);
    }
    return NULL;
}

static void run(const char *w, double fail)
{
    if (!wanted(w)) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, w);
    factum_options o;
    factum_options_init(&o);
    if (relaxed) o.durability = FACTUM_RELAXED;
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        exit(1);
    }
    orders_config cfg = {.seed = 42, .payment_timeout_ms = 600000, .saga_workers = (uint32_t)workers};
    for (int k = 0; k < N_STEPS; k++)
        cfg.fail[k] = fail;
    orders_app *app = orders_open(s, &cfg, 1);
    if (!app) exit(1);
    factum_saga *sg = orders_saga(app);

    uint64_t t0 = now_ns();
    pthread_t th[64];
    client cl[64];
    for (int k = 0; k < n_clients; k++) {
        cl[k] = (client){app, n_orders * k / n_clients, n_orders * (k + 1) / n_clients, w, 0};
        pthread_create(&th[k], NULL, client_main, &cl[k]);
    }
    for (int k = 0; k < n_clients; k++) {
        pthread_join(th[k], NULL);
        if (cl[k].rc) {
            fprintf(stderr, "place: %s\n", factum_strerror(cl[k].rc));
            exit(1);
        }
    }
    uint64_t placed = now_ns();
    factum_saga_stats st;
    for (;;) {
        factum_saga_get_stats(sg, &st);
        if (st.completed + st.compensated >= (uint64_t)n_orders) break;
        if (now_ns() - t0 > 600000000000ull) {
            fprintf(stderr, "%s: only %" PRIu64 " of %d orders ended after 600 s\n", w,
                    st.completed + st.compensated, n_orders);
            exit(1);
        }
        usleep(1000);
    }
    uint64_t t1 = now_ns();
    double secs = (double)(t1 - t0) / 1e9;
    double rate = n_orders / secs;

    /* Each order's time from its start to its end (the progress stream's
     * first and last commit times), and the invariant. */
    uint64_t *lat = calloc((size_t)n_orders, sizeof *lat);
    size_t nl = 0;
    int wrong = 0;
    for (int i = 0; i < n_orders && lat; i++) {
        char id[64], stream[128], why[256];
        snprintf(id, sizeof id, "%s%d", w, i);
        if (orders_check(s, id, why, sizeof why) <= 0) wrong++;
        snprintf(stream, sizeof stream, "saga-orders-%s", id);
        factum_event first, last;
        size_t n1 = 0, n2 = 0;
        if (!factum_read_stream(s, stream, 0, FACTUM_FORWARD, &first, 1, &n1, NULL) &&
            !factum_read_stream(s, stream, FACTUM_END, FACTUM_BACKWARD, &last, 1, &n2, NULL) && n1 && n2)
            lat[nl++] = (uint64_t)(last.timestamp_ns - first.timestamp_ns);
    }
    qsort(lat, nl, sizeof *lat, cmp_u64);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    factum_saga_options so;
    factum_saga_options_init(&so);
    printf("| %s | %d orders, %d client threads, %u saga workers, %s | %.0f orders/s ended (%" PRIu64
           " completed, %" PRIu64
           " compensated; placing took %.2f s) | start -> end p50 %.1f ms, p99 %.1f ms | %.0f events/s, %.0f "
           "fsyncs/s | %d wrong |\n",
           w, n_orders, n_clients, workers ? (unsigned)workers : so.workers, relaxed ? "relaxed" : "durable",
           rate, st.completed, st.compensated, (double)(placed - t0) / 1e9, pct(lat, nl, 50) / 1000,
           pct(lat, nl, 99) / 1000, (double)fs.events_written / secs, (double)fs.fsyncs / secs, wrong);
    result(w, "orders_per_s", rate);
    result(w, "latency_ms_p50", pct(lat, nl, 50) / 1000);
    result(w, "latency_ms_p99", pct(lat, nl, 99) / 1000);
    result(w, "wrong", wrong);
    free(lat);
    orders_close(app);
    factum_store_close(s);
    if (wrong) exit(1);
}

/* One order at a time: place it, wait until its saga has ended; the time
 * from the append of OrderPlaced to SagaCompleted, with no backlog. */
static void run_one_at_a_time(void)
{
    const char *w = "SAGA1";
    if (!wanted(w)) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, w);
    factum_options o;
    factum_options_init(&o);
    if (relaxed) o.durability = FACTUM_RELAXED;
    factum_store *s;
    if (factum_store_open(dir, &o, &s)) exit(1);
    orders_config cfg = {.seed = 42, .payment_timeout_ms = 600000, .saga_workers = (uint32_t)workers};
    orders_app *app = orders_open(s, &cfg, 1);
    if (!app) exit(1);
    int n = n_orders / 10 < 50 ? 50 : n_orders / 10;
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n && lat; i++) {
        char id[64];
        snprintf(id, sizeof id, "one%d", i);
        uint64_t a = now_ns();
        if (orders_place(app, id, "customer", 100, "sku-1", 1, NULL)) exit(1);
        factum_saga_instance in;
        for (;;) {
            if (!factum_saga_instance_get(s, "orders", id, &in) && in.status == FACTUM_SAGA_COMPLETED) break;
            usleep(100);
        }
        lat[i] = now_ns() - a;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("| %s | %d orders one at a time, %s | %.0f orders/s | place -> completed p50 %.1f ms, p99 %.1f ms "
           "| | |\n",
           w, n, relaxed ? "relaxed" : "durable", n / secs, pct(lat, (size_t)n, 50) / 1000,
           pct(lat, (size_t)n, 99) / 1000);
    result(w, "latency_ms_p50", pct(lat, (size_t)n, 50) / 1000);
    result(w, "latency_ms_p99", pct(lat, (size_t)n, 99) / 1000);
    free(lat);
    orders_close(app);
    factum_store_close(s);
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--orders") && i + 1 < argc)
            n_orders = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
            n_clients = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            n_orders = 300;
        else if (!strcmp(argv[i], "--relaxed"))
            relaxed = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            snprintf(only, sizeof only, "%s", argv[++i]);
        else
            base_dir = argv[i];
    }
    if (!base_dir || n_orders < 1 || n_clients < 1 || n_clients > 64) {
        fprintf(stderr,
                "usage: factum-bench-sagas [--orders N] [--clients K] [--workers W] [--quick] [--relaxed]\n"
                "         [--only SAGA,SAGAF,SAGA1] DIR\n");
        return 2;
    }
    printf("| workload | setup | throughput | order latency | store | check |\n|---|---|---|---|---|---|\n");
    run("SAGA", 0);
    run("SAGAF", 0.1);
    run_one_at_a_time();
    return 0;
}
