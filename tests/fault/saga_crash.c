/* Crash test of the saga runner (src/cqrs/saga.c, SAGA-1..5) with the
 * orders example (examples/orders): a child process places orders and runs
 * the saga, with failures injected at every step (payment declined, payment
 * never answering and timing out through a scheduled event, inventory
 * unavailable, shipment failed, completion refused), and is killed with
 * SIGKILL at a random moment, cycle after cycle. A last child runs until
 * every order has ended. Then, from the log alone, every order must be
 * completed or fully compensated (each completed step's compensation once,
 * in reverse order, the order cancelled last), never half; no event type
 * twice in a stream (no step, no compensation twice); and each saga
 * instance's progress stream starts once and ends once.
 * FACTUM_SAGA_CRASH_CYCLES sets the cycles (default 20); the seed is
 * printed (FACTUM_SEED replays the choices, not the timing). */
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>

#include "orders.h"

#define MAX_ORDERS 400

static char dir[512];
static orders_config cfg;
static int n_orders;
static char ids[MAX_ORDERS][32];

static factum_store *open_store(void)
{
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED; /* a process crash loses nothing written */
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void child(uint64_t seed, int cycle, int final)
{
    h_rng r = {seed * 31 + (uint64_t)cycle};
    factum_store *s = open_store();
    if (!s) _exit(3);
    orders_app *app = orders_open(s, &cfg, 1);
    if (!app) _exit(4);
    for (int i = 0; i < n_orders; i++) {
        char customer[32];
        snprintf(customer, sizeof customer, "c%d", i % 7);
        int rc = orders_place(app, ids[i], customer, 100 + i, "sku-1", 1, NULL);
        if (rc) {
            fprintf(stderr, "place: %s\n", factum_strerror(rc));
            _exit(5);
        }
        if (h_below(&r, 4) == 0) {
            struct timespec ts = {0, (long)h_below(&r, 3000000)};
            nanosleep(&ts, NULL);
        }
    }
    if (!final) {
        for (;;)
            pause(); /* until killed */
    }
    /* The last run: until every order has ended (or 60 s). */
    for (int waited = 0; waited < 60000; waited += 20) {
        int open = 0;
        for (int i = 0; i < n_orders; i++) {
            char why[256];
            int st = orders_check(s, ids[i], why, sizeof why);
            if (st < 0) {
                fprintf(stderr, "order %s: %s\n", ids[i], why);
                _exit(6);
            }
            open += st == 0;
        }
        if (!open) {
            orders_close(app);
            factum_store_close(s);
            _exit(0);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    _exit(7);
}

static int run_child(uint64_t seed, int cycle, int kill_after_ms)
{
    pid_t pid = fork();
    if (pid == 0) child(seed, cycle, kill_after_ms < 0);
    if (pid < 0) return -1;
    if (kill_after_ms >= 0) {
        struct timespec ts = {kill_after_ms / 1000, (long)(kill_after_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    if (kill_after_ms >= 0) return WIFSIGNALED(status) ? 0 : (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int count_type(factum_store *s, const char *stream, const char *type, const char **last)
{
    factum_event evs[64];
    size_t n = 0;
    if (factum_read_stream(s, stream, 0, FACTUM_FORWARD, evs, 64, &n, NULL)) return -1;
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += !strcmp(evs[i].type, type);
    if (last) *last = n ? evs[n - 1].type : "";
    return c;
}

static int count_pending(void *ctx, const factum_schedule_info *info)
{
    (void)info;
    (*(int *)ctx)++;
    return 0;
}

static void t_crash(void)
{
    uint64_t seed = harness_seed("saga_crash");
    h_rng r = {seed};
    harness_tmpdir(dir, sizeof dir, "saga-crash");
    const char *e = getenv("FACTUM_SAGA_CRASH_CYCLES");
    int cycles = e ? atoi(e) : 20;
    memset(&cfg, 0, sizeof cfg);
    cfg.seed = seed;
    for (int k = 0; k < N_STEPS; k++)
        cfg.fail[k] = 0.15;
    cfg.silent_payment = 0.1;
    cfg.payment_timeout_ms = 250;
    /* Enough orders that every kind of failure happens (the injection is a
     * function of the seed and the id: known in advance). */
    int seen[N_STEPS + 1] = {0};
    n_orders = 0;
    while (n_orders < MAX_ORDERS) {
        snprintf(ids[n_orders], sizeof ids[n_orders], "o%d", n_orders);
        const char *id = ids[n_orders++];
        if (orders_silent(&cfg, id))
            seen[N_STEPS]++;
        else
            for (int k = 0; k < N_STEPS; k++)
                if (orders_fails(&cfg, id, k)) {
                    seen[k]++;
                    break;
                }
        int all = n_orders >= 120;
        for (int k = 0; k <= N_STEPS; k++)
            all &= seen[k] > 0;
        if (all) break;
    }
    printf("  %d orders, failures injected: payment %d, inventory %d, shipment %d, completion %d, payment "
           "timeouts %d\n",
           n_orders, seen[0], seen[1], seen[2], seen[3], seen[4]);
    for (int c = 0; c < cycles; c++) {
        int ms = 5 + (int)h_below(&r, 250);
        int rc = run_child(seed, c, ms);
        if (rc) fprintf(stderr, "  cycle %d: child exited %d\n", c, rc);
        CHECK(rc == 0);
    }
    CHECK_RC(run_child(seed, cycles, -1), 0);

    factum_store *s = open_store();
    REQUIRE(s);
    int completed = 0, compensated = 0, timed_out = 0;
    for (int i = 0; i < n_orders; i++) {
        char why[256], stream[64];
        int st = orders_check(s, ids[i], why, sizeof why);
        if (st <= 0) fprintf(stderr, "  order %s: %s\n", ids[i], why);
        CHECK(st == FACTUM_SAGA_COMPLETED || st == FACTUM_SAGA_COMPENSATED);
        completed += st == FACTUM_SAGA_COMPLETED;
        compensated += st == FACTUM_SAGA_COMPENSATED;
        /* An injected failure is compensated; an order without one completes,
         * unless its payment timed out for real (the process was dead when
         * the timeout came due). */
        int fails = orders_silent(&cfg, ids[i]);
        for (int k = 0; k < N_STEPS; k++)
            fails |= orders_fails(&cfg, ids[i], k);
        factum_saga_instance in;
        CHECK_RC(factum_saga_instance_get(s, "orders", ids[i], &in), 0);
        if (fails)
            CHECK(st == FACTUM_SAGA_COMPENSATED);
        else if (st == FACTUM_SAGA_COMPENSATED) {
            timed_out++;
            /* The timeout reached the saga first ("timeout"), or the payment
             * service first, which then refused the charge ("rejected"). */
            char pay[64];
            snprintf(pay, sizeof pay, "payment-%.31s", ids[i]);
            int ok = in.failed_step == STEP_PAYMENT && count_type(s, pay, "PaymentTimedOut", NULL) == 1 &&
                     (!strcmp(in.reason, "timeout") || !strcmp(in.reason, "rejected"));
            if (!ok)
                fprintf(stderr, "  order %s: compensated without an injected failure: step %d, %s\n", ids[i],
                        in.failed_step, in.reason);
            CHECK(ok);
        }
        snprintf(stream, sizeof stream, "saga-orders-%.31s", ids[i]);
        const char *last = NULL;
        CHECK(count_type(s, stream, "SagaStarted", NULL) == 1);
        int ends =
            count_type(s, stream, "SagaCompleted", &last) + count_type(s, stream, "SagaCompensated", NULL);
        CHECK(ends == 1);
        CHECK(last && (!strcmp(last, "SagaCompleted") || !strcmp(last, "SagaCompensated")));
    }
    printf("  %d cycles: %d completed, %d compensated (%d of them because a kill outlasted the payment's "
           "timeout)\n",
           cycles, completed, compensated, timed_out);
    /* Nothing left scheduled: every timeout was delivered or cancelled. */
    int pending = 0;
    CHECK_RC(factum_schedule_list(s, count_pending, &pending), 0);
    CHECK(pending == 0);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_crash);
    return harness_done();
}
