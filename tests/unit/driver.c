/* Drivers, the completion API (factum.h "Drivers", store/drive.c DRV-1..2,
 * writer.c DW-1..3): order and results equal to factum_append_multi's,
 * many appends in flight from one thread, blocking appenders on other
 * threads mixed in, freeing with work in flight, a failed fdatasync through
 * the driver-led path (ST-4), the -EDEADLK rules, relaxed durability. Each
 * test runs with io_uring (where the kernel allows it), with
 * FACTUM_DRIVER_NO_URING (the writer thread) and with FACTUM_DRIVER_SYNC
 * (the driver's thread syncs; SYNC-1 has its own test). */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "io/io.h"
#include "store/store_int.h"

static char dir[512];
static unsigned mode_flags; /* the driver flags of this round */

static factum_store *open_store(int durability)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = durability;
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

/* ---- a completion record --------------------------------------------- */

typedef struct done {
    int rc;
    size_t failed, n;
    factum_append_result res[4];
    int called;
    pthread_t thread;
    int seq; /* order of the callback */
} done;

static int seq_counter;

static void on_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    done *d = arg;
    d->rc = rc;
    d->failed = failed;
    d->n = n;
    for (size_t i = 0; i < n && i < 4; i++)
        d->res[i] = res[i];
    d->called++;
    d->thread = pthread_self();
    d->seq = seq_counter++;
}

static void run_until(factum_driver *drv, const done *d, size_t n)
{
    for (int spins = 0; spins < 100000; spins++) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !d[i].called;
        if (!left) return;
        factum_driver_run(drv, 100);
    }
}

/* ---- results equal to factum_append_multi's --------------------------- */

/* A random sequence of appends (expected versions right and wrong, replays
 * of earlier ids, multi-stream parts) applied to two stores: one through a
 * driver, one with factum_append_multi; every outcome must be the same
 * (positions included: both stores start empty and see the same order). */
static void t_same_results_as_append_multi(void)
{
    uint64_t seed = harness_seed("driver same results");
    h_rng r = {seed};
    char dir2[512];
    harness_tmpdir(dir, sizeof dir, "driver_a");
    harness_tmpdir(dir2, sizeof dir2, "driver_b");
    factum_store *a = open_store(FACTUM_DURABLE);
    factum_options o;
    harness_small_opts(&o);
    factum_store *b = NULL;
    REQUIRE(a && factum_store_open(dir2, &o, &b) == 0);
    factum_driver *drv;
    REQUIRE(factum_driver_new(a, mode_flags, &drv) == 0);
    enum { N = 300 };
    static factum_event_data evs[N][3];
    static factum_append_req reqs[N][2];
    static char names[N][2][16];
    static done dd[N];
    memset(dd, 0, sizeof dd);
    seq_counter = 0;
    int64_t last[4] = {-1, -1, -1, -1};
    size_t nparts[N];
    for (int i = 0; i < N; i++) {
        nparts[i] = 1 + (h_below(&r, 4) == 0);
        int st0 = (int)h_below(&r, 4), st1 = (st0 + 1 + (int)h_below(&r, 3)) % 4;
        for (size_t p = 0; p < nparts[i]; p++) {
            int st = p ? st1 : st0;
            snprintf(names[i][p], sizeof names[i][p], "s-%d", st);
            size_t ne = 1 + h_below(&r, 2);
            factum_event_data *e = &evs[i][p ? 2 : 0];
            if (p) ne = 1;
            for (size_t k = 0; k < ne; k++)
                e[k] = harness_event("E", "{\"x\":1}");
            if (i > 0 && h_below(&r, 8) == 0) {
                /* a replay of an earlier append's first part */
                int j = (int)h_below(&r, (uint64_t)i);
                memcpy(names[i][p], names[j][0], sizeof names[i][p]);
                e = (factum_event_data *)reqs[j][0].events;
                ne = reqs[j][0].n_events;
            }
            int64_t exp = FACTUM_ANY;
            uint64_t pick = h_below(&r, 4);
            if (pick == 1) exp = last[st];       /* may be stale: outcomes decide */
            else if (pick == 2) exp = FACTUM_NO_STREAM;
            else if (pick == 3) exp = (int64_t)h_below(&r, 6);
            reqs[i][p] = (factum_append_req){names[i][p], exp, e, ne};
        }
        if (nparts[i] == 2 && !strcmp(names[i][0], names[i][1])) nparts[i] = 1; /* one part per stream */
        last[st0] += (int64_t)reqs[i][0].n_events;
    }
    /* Driver: all submitted at once, in order; the store keeps that order. */
    for (int i = 0; i < N; i++)
        CHECK_RC(factum_driver_append(drv, reqs[i], nparts[i], on_done, &dd[i]), 0);
    run_until(drv, dd, N);
    for (int i = 0; i < N; i++) {
        factum_append_result res[2];
        size_t failed = 0;
        int rc = factum_append_multi(b, reqs[i], nparts[i], res, &failed);
        CHECK(dd[i].called == 1);
        CHECK(dd[i].seq == i); /* callbacks in commit order */
        CHECK(pthread_equal(dd[i].thread, pthread_self()));
        if (dd[i].rc != rc) {
            fprintf(stderr, "  append %d: driver %s, append_multi %s\n", i, factum_strerror(dd[i].rc),
                    factum_strerror(rc));
            CHECK(0);
            continue;
        }
        if (rc) {
            CHECK(dd[i].failed == failed);
            if (rc == FACTUM_EWRONGVERSION) CHECK(dd[i].res[failed].actual_version == res[failed].actual_version);
            continue;
        }
        for (size_t p = 0; p < nparts[i]; p++) {
            CHECK_EQ_U64(dd[i].res[p].first_version, res[p].first_version);
            CHECK_EQ_U64(dd[i].res[p].last_version, res[p].last_version);
            CHECK_EQ_U64(dd[i].res[p].first_position, res[p].first_position);
            CHECK_EQ_U64(dd[i].res[p].last_position, res[p].last_position);
            CHECK(dd[i].res[p].idempotent == res[p].idempotent);
        }
    }
    CHECK(factum_driver_in_flight(drv) == 0);
    CHECK_RC(factum_store_close(a), -EBUSY); /* a driver is left */
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(a), 0);
    CHECK_RC(factum_store_close(b), 0);
    harness_rm_rf(dir);
    harness_rm_rf(dir2);
}

/* ---- many in flight, blocking appenders beside ------------------------- */

typedef struct client {
    factum_driver *drv;
    char stream[24];
    factum_event_data ev;
    factum_append_req req;
    uint64_t next_version;
    int left, errors;
    int *active;
} client;

static void client_send(client *c);

static void client_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    client *c = arg;
    if (rc || n != 1 || res[0].first_version != c->next_version) c->errors++;
    c->next_version++;
    if (--c->left > 0) client_send(c);
    else (*c->active)--;
}

static void client_send(client *c)
{
    c->ev = harness_event("E", "{}");
    c->req = (factum_append_req){c->stream, (int64_t)c->next_version - 1, &c->ev, 1};
    if (c->next_version == 0) c->req.expected = FACTUM_NO_STREAM;
    int rc = factum_driver_append(c->drv, &c->req, 1, client_done, c);
    if (rc) {
        c->errors++;
        (*c->active)--;
    }
}

typedef struct blocker {
    factum_store *s;
    int id, n, errors;
} blocker;

static void *blocker_main(void *arg)
{
    blocker *b = arg;
    char name[24];
    snprintf(name, sizeof name, "blk-%d", b->id);
    for (int i = 0; i < b->n; i++) {
        factum_event_data e = harness_event("B", "{}");
        factum_append_result res;
        int rc = factum_append(b->s, name, i ? (int64_t)i - 1 : FACTUM_NO_STREAM, &e, 1, &res);
        if (rc || res.first_version != (uint64_t)i) b->errors++;
    }
    return NULL;
}

static void t_many_in_flight_with_blocking_threads(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_many");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, mode_flags, &drv) == 0);
    enum { CLIENTS = 256, EACH = 12, BLOCKERS = 3, BEACH = 40 };
    static client cl[CLIENTS];
    int active = CLIENTS;
    pthread_t th[BLOCKERS];
    blocker bl[BLOCKERS];
    for (int i = 0; i < BLOCKERS; i++) {
        bl[i] = (blocker){s, i, BEACH, 0};
        REQUIRE(pthread_create(&th[i], NULL, blocker_main, &bl[i]) == 0);
    }
    size_t peak = 0;
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (client){.drv = drv, .left = EACH, .active = &active};
        snprintf(cl[i].stream, sizeof cl[i].stream, "cl-%d", i);
        client_send(&cl[i]);
    }
    peak = factum_driver_in_flight(drv);
    while (active > 0)
        if (factum_driver_run(drv, 1000) < 0) break;
    for (int i = 0; i < BLOCKERS; i++) {
        pthread_join(th[i], NULL);
        CHECK(bl[i].errors == 0);
    }
    CHECK(peak == CLIENTS);
    int errors = 0;
    for (int i = 0; i < CLIENTS; i++)
        errors += cl[i].errors;
    CHECK(errors == 0);
    factum_stats st;
    CHECK_RC(factum_store_get_stats(s, &st), 0);
    CHECK_EQ_U64(st.last_position, (uint64_t)(CLIENTS * EACH + BLOCKERS * BEACH));
    CHECK(st.fsyncs < (uint64_t)(CLIENTS * EACH)); /* groups were formed */
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* ---- free with work in flight ------------------------------------------ */

static void t_free_waits_for_work_in_flight(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_free");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, mode_flags, &drv) == 0);
    enum { N = 500 };
    static factum_event_data ev[N];
    static factum_append_req req[N];
    static done dd[N];
    memset(dd, 0, sizeof dd);
    for (int i = 0; i < N; i++) {
        ev[i] = harness_event("E", "{}");
        req[i] = (factum_append_req){"f", (int64_t)i - 1, &ev[i], 1};
        CHECK_RC(factum_driver_append(drv, &req[i], 1, on_done, &dd[i]), 0);
    }
    CHECK(factum_driver_in_flight(drv) == N);
    factum_driver_free(drv); /* runs every callback first */
    for (int i = 0; i < N; i++) {
        CHECK(dd[i].called == 1);
        CHECK_RC(dd[i].rc, 0);
    }
    CHECK_RC(factum_store_close(s), 0);
    s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_event out[4];
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "f", N - 2, FACTUM_FORWARD, out, 4, &n, NULL), 0);
    CHECK(n == 2);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* ---- the -EDEADLK rule (DW-3) and callbacks never inside append -------- */

static void t_never_inside_append_and_deadlock_rule(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_dl");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, mode_flags, &drv) == 0);
    factum_event_data e = harness_event("E", "{}");
    factum_append_req q = {"d", FACTUM_ANY, &e, 1};
    printf("# io_uring in use: %s\n", factum_driver_uring(drv) ? "yes" : "no");
    done d0 = {0};
    CHECK_RC(factum_driver_append(drv, &q, 1, on_done, &d0), 0);
    CHECK(d0.called == 0); /* DRV-1: never inside the submitting call */
    if (factum_driver_uring(drv)) {
        /* The driver leads with the fdatasync in flight: a blocking append
         * on its thread would wait for itself. */
        factum_event_data e2 = harness_event("E", "{}");
        CHECK_RC(factum_append(s, "d", FACTUM_ANY, &e2, 1, NULL), -EDEADLK);
        CHECK_RC(factum_store_sync(s), -EDEADLK);
    }
    run_until(drv, &d0, 1);
    CHECK(d0.called == 1 && d0.rc == 0);
    /* Nothing in flight: blocking calls work on this thread again. */
    factum_event_data e3 = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "d", FACTUM_ANY, &e3, 1, NULL), 0);
    /* A wrong expected version is decided without any I/O: still called
     * back only from factum_driver_run. */
    done d1 = {0};
    factum_event_data e4 = harness_event("E", "{}");
    factum_append_req bad = {"d", 99, &e4, 1};
    CHECK_RC(factum_driver_append(drv, &bad, 1, on_done, &d1), 0);
    CHECK(d1.called == 0);
    struct pollfd p = {.fd = factum_driver_fd(drv), .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1); /* the fd says so, whoever decided it */
    run_until(drv, &d1, 1);
    CHECK_RC(d1.rc, FACTUM_EWRONGVERSION);
    CHECK(d1.res[0].actual_version == 1);
    CHECK_RC(factum_driver_run(drv, 0), 0);
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* ---- relaxed durability ------------------------------------------------ */

static void t_relaxed(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_relaxed");
    factum_store *s = open_store(FACTUM_RELAXED);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, mode_flags, &drv) == 0);
    enum { N = 200 };
    static factum_event_data ev[N];
    static factum_append_req req[N];
    static done dd[N];
    memset(dd, 0, sizeof dd);
    for (int i = 0; i < N; i++) {
        ev[i] = harness_event("E", "{}");
        req[i] = (factum_append_req){"r", FACTUM_ANY, &ev[i], 1};
        CHECK_RC(factum_driver_append(drv, &req[i], 1, on_done, &dd[i]), 0);
    }
    run_until(drv, dd, N);
    for (int i = 0; i < N; i++)
        CHECK(dd[i].called == 1 && dd[i].rc == 0 && dd[i].res[0].first_version == (uint64_t)i);
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(s), 0); /* the relaxed tail is synced on close */
    harness_rm_rf(dir);
}

/* ---- a failed fdatasync through the driver-led path (ST-4, DW-2) ------- */

static void t_failed_fdatasync_latches(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_fault");
    io_fault *f = io_fault_new(7);
    factum_options o;
    harness_small_opts(&o);
    factum_store *s = NULL;
    REQUIRE(store_open_io(dir, &o, io_fault_env(f), &s) == 0);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, mode_flags, &drv) == 0);
    /* With the fault layer the driver leads with a synchronous fdatasync
     * (drive.c INLINE) unless told to use the writer thread. */
    CHECK(factum_driver_uring(drv) == 0);
    io_fault_target(f, "/log/");
    factum_event_data e[3];
    factum_append_req q[3];
    done dd[3];
    memset(dd, 0, sizeof dd);
    for (int i = 0; i < 3; i++) {
        e[i] = harness_event("E", "{}");
        q[i] = (factum_append_req){"x", FACTUM_ANY, &e[i], 1};
    }
    CHECK_RC(factum_driver_append(drv, &q[0], 1, on_done, &dd[0]), 0);
    run_until(drv, &dd[0], 1);
    CHECK_RC(dd[0].rc, 0);
    io_fault_fail_fsync(f, 1, -EIO);
    CHECK_RC(factum_driver_append(drv, &q[1], 1, on_done, &dd[1]), 0);
    run_until(drv, &dd[1], 1);
    CHECK_RC(dd[1].rc, -EIO); /* the failed fdatasync fails the append */
    /* and latches the store: every later append fails */
    int rc = factum_driver_append(drv, &q[2], 1, on_done, &dd[2]);
    if (rc == 0) {
        run_until(drv, &dd[2], 1);
        rc = dd[2].rc;
    }
    CHECK_RC(rc, FACTUM_EFAILED);
    factum_event_data e4 = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "y", FACTUM_ANY, &e4, 1, NULL), FACTUM_EFAILED);
    factum_driver_free(drv);
    store_abandon(s);
    CHECK_RC(io_fault_power_loss(f, IO_LOSE_UNSYNCED), 0);
    io_fault_free(f);
    /* Reopened: the acknowledged event is there, the failed one is not. */
    s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_event out[4];
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "x", 0, FACTUM_FORWARD, out, 4, &n, NULL), 0);
    CHECK(n == 1 && !memcmp(out[0].id, e[0].id, 16));
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* ---- FACTUM_DRIVER_SYNC: a run commits what was submitted as one group -- */

typedef struct resubmitter {
    factum_driver *drv;
    factum_event_data ev;
    factum_append_req req;
    int left; /* appends still to submit from the callback */
    int called;
} resubmitter;

static void resubmit_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)res;
    (void)n;
    (void)failed;
    resubmitter *r = arg;
    CHECK_RC(rc, 0);
    r->called++;
    if (r->left-- > 0) {
        r->ev = harness_event("E", "{}"); /* a new id: the same one would be an idempotent replay */
        CHECK_RC(factum_driver_append(r->drv, &r->req, 1, resubmit_done, r), 0);
    }
}

static void on_async_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)res;
    (void)n;
    (void)failed;
    CHECK_RC(rc, 0);
    atomic_store((_Atomic int *)arg, 1);
}

/* SYNC-1: appends are only queued when submitted (nothing written, nothing
 * synced, the fd readable); the next run writes them as one group with one
 * fdatasync and calls every one back in that same call. A callback that
 * keeps appending does not hold the run forever: it returns after a few
 * groups with the fd readable again, and later runs finish the rest. */
static void t_sync_run_commits_one_group(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_sync");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, FACTUM_DRIVER_SYNC, &drv) == 0);
    CHECK(factum_driver_sync(drv) == 1);
    CHECK(factum_driver_uring(drv) == 0);
    /* SYNC-2: the writer thread, just back from a group of its own (an
     * asynchronous append) and polling for more, must leave the driver's
     * requests to the driver. */
    _Atomic int async_done = 0;
    factum_event_data ae = harness_event("E", "{}");
    factum_append_req aq = {"w", FACTUM_ANY, &ae, 1};
    CHECK_RC(factum_append_async(s, &aq, 1, on_async_done, (void *)&async_done), 0);
    while (!atomic_load(&async_done))
        usleep(10);
    factum_stats before, after;
    CHECK_RC(factum_store_get_stats(s, &before), 0);
    enum { N = 64 };
    static factum_event_data ev[N];
    static factum_append_req req[N];
    static done dd[N];
    memset(dd, 0, sizeof dd);
    struct pollfd p = {.fd = factum_driver_fd(drv), .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0); /* nothing to do yet */
    for (int i = 0; i < N; i++) {
        ev[i] = harness_event("E", "{}");
        req[i] = (factum_append_req){"g", (int64_t)i - 1, &ev[i], 1};
        CHECK_RC(factum_driver_append(drv, &req[i], 1, on_done, &dd[i]), 0);
    }
    CHECK(poll(&p, 1, 0) == 1); /* the fd says: run me */
    usleep(3000);               /* longer than the writer thread polls after a group */
    CHECK_RC(factum_store_get_stats(s, &after), 0);
    CHECK(after.appends == before.appends && after.fsyncs == before.fsyncs); /* only queued */
    CHECK(dd[0].called == 0);
    CHECK(factum_driver_run(drv, 0) == N); /* all of them, in this call */
    CHECK_RC(factum_store_get_stats(s, &after), 0);
    CHECK(after.groups - before.groups == 1);
    CHECK(after.fsyncs - before.fsyncs == 1);
    for (int i = 0; i < N; i++) {
        CHECK(dd[i].called == 1 && dd[i].rc == 0 && dd[i].res[0].first_version == (uint64_t)i);
        CHECK(pthread_equal(dd[i].thread, pthread_self()));
        if (i) CHECK(dd[i].seq == dd[i - 1].seq + 1);
    }
    CHECK(factum_driver_in_flight(drv) == 0);
    CHECK_RC(factum_driver_run(drv, 0), 0);
    CHECK(poll(&p, 1, 0) == 0);

    /* Decided at once, without I/O (a wrong expected version): called back
     * in the run after the submit, and the fd said so. */
    done bad = {0};
    factum_event_data be = harness_event("E", "{}");
    factum_append_req bq = {"g", 7, &be, 1};
    CHECK_RC(factum_driver_append(drv, &bq, 1, on_done, &bad), 0);
    CHECK(poll(&p, 1, 0) == 1);
    CHECK(factum_driver_run(drv, 0) == 1);
    CHECK_RC(bad.rc, FACTUM_EWRONGVERSION);
    CHECK(poll(&p, 1, 0) == 0);

    /* A callback that appends again, 20 times over. */
    resubmitter r = {.drv = drv, .left = 20};
    r.ev = harness_event("E", "{}");
    r.req = (factum_append_req){"h", FACTUM_ANY, &r.ev, 1};
    CHECK_RC(factum_driver_append(drv, &r.req, 1, resubmit_done, &r), 0);
    int ran = factum_driver_run(drv, 0);
    CHECK(ran >= 1 && ran < 21); /* bounded: not all 21 in one call */
    CHECK(poll(&p, 1, 0) == 1);  /* and it says there is more */
    for (int i = 0; i < 100 && r.called < 21; i++)
        factum_driver_run(drv, 100);
    CHECK(r.called == 21);
    factum_event out[1];
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "h", 20, FACTUM_FORWARD, out, 1, &n, NULL), 0);
    CHECK(n == 1);
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* SYNC-2, deterministically: the SYNC driver's appends are queued from the
 * callback of an asynchronous append, which runs on the writer thread while
 * it leads; once back from that group, the writer thread must not lead them
 * (it used to, when the submitter was quick enough: a rare failure of the
 * test above). */
typedef struct from_writer {
    factum_driver *drv;
    factum_event_data ev[8];
    factum_append_req req[8];
    done dd[8];
    _Atomic int queued;
} from_writer;

static void queue_from_writer(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)res, (void)n, (void)failed;
    from_writer *f = arg;
    CHECK_RC(rc, 0);
    for (int i = 0; i < 8; i++) {
        f->ev[i] = harness_event("E", "{}");
        f->req[i] = (factum_append_req){"q", (int64_t)i - 1, &f->ev[i], 1};
        CHECK_RC(factum_driver_append(f->drv, &f->req[i], 1, on_done, &f->dd[i]), 0);
    }
    atomic_store(&f->queued, 1);
}

static void t_sync_writer_leaves_driver_requests(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_sync_writer");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    static from_writer f;
    memset(&f, 0, sizeof f);
    REQUIRE(factum_driver_new(s, FACTUM_DRIVER_SYNC, &f.drv) == 0);
    factum_stats before, after;
    CHECK_RC(factum_store_get_stats(s, &before), 0);
    factum_event_data ae = harness_event("E", "{}");
    factum_append_req aq = {"w", FACTUM_ANY, &ae, 1};
    CHECK_RC(factum_append_async(s, &aq, 1, queue_from_writer, &f), 0);
    while (!atomic_load(&f.queued))
        usleep(10);
    usleep(5000); /* longer than the writer thread polls after a group */
    CHECK_RC(factum_store_get_stats(s, &after), 0);
    CHECK(after.appends - before.appends == 1); /* the asynchronous one only */
    CHECK(after.groups - before.groups == 1);
    CHECK(factum_driver_run(f.drv, 0) == 8);
    CHECK_RC(factum_store_get_stats(s, &after), 0);
    CHECK(after.appends - before.appends == 9 && after.groups - before.groups == 2);
    for (int i = 0; i < 8; i++)
        CHECK(f.dd[i].called == 1 && f.dd[i].rc == 0 && f.dd[i].res[0].first_version == (uint64_t)i);
    factum_driver_free(f.drv);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void *blocking_append(void *arg)
{
    factum_store *s = arg;
    factum_event_data e = harness_event("E", "{}");
    factum_append(s, "other-thread", FACTUM_ANY, &e, 1, NULL);
    return NULL;
}

/* FACTUM_DRIVER_POLL_READY: the driver's own appends and decisions leave
 * the fd alone (the application looks at factum_driver_ready before it
 * waits); a completion made by another thread still makes it readable. */
static void t_poll_ready(void)
{
    harness_tmpdir(dir, sizeof dir, "driver_poll_ready");
    factum_store *s = open_store(FACTUM_DURABLE);
    REQUIRE(s);
    factum_driver *drv;
    REQUIRE(factum_driver_new(s, FACTUM_DRIVER_SYNC | FACTUM_DRIVER_POLL_READY, &drv) == 0);
    struct pollfd p = {.fd = factum_driver_fd(drv), .events = POLLIN};
    enum { N = 8 };
    static factum_event_data ev[N];
    static factum_append_req req[N];
    static done dd[N];
    memset(dd, 0, sizeof dd);
    for (int i = 0; i < N; i++) {
        ev[i] = harness_event("E", "{}");
        req[i] = (factum_append_req){"pr", (int64_t)i - 1, &ev[i], 1};
        CHECK_RC(factum_driver_append(drv, &req[i], 1, on_done, &dd[i]), 0);
    }
    CHECK(poll(&p, 1, 0) == 0);           /* no signal for its own appends */
    CHECK(factum_driver_ready(drv) == 1); /* but ready says so */
    CHECK(factum_driver_run(drv, 0) == N);
    for (int i = 0; i < N; i++)
        CHECK(dd[i].called == 1 && dd[i].rc == 0);
    CHECK(factum_driver_ready(drv) == 0);
    /* Decided at once (a wrong expected version): no signal either. */
    done bad = {0};
    factum_event_data be = harness_event("E", "{}");
    factum_append_req bq = {"pr", 99, &be, 1};
    CHECK_RC(factum_driver_append(drv, &bq, 1, on_done, &bad), 0);
    CHECK(poll(&p, 1, 0) == 0);
    CHECK(factum_driver_ready(drv) == 1);
    CHECK(factum_driver_run(drv, 0) == 1);
    CHECK_RC(bad.rc, FACTUM_EWRONGVERSION);
    /* Another thread's append leads a group and takes the driver's queued
     * append along (SYNC-2): its completion comes from that thread, and the
     * fd says so. */
    done one = {0};
    factum_event_data oe = harness_event("E", "{}");
    factum_append_req oq = {"pr", FACTUM_ANY, &oe, 1};
    CHECK_RC(factum_driver_append(drv, &oq, 1, on_done, &one), 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, blocking_append, s) == 0);
    pthread_join(t, NULL);
    CHECK(poll(&p, 1, 1000) == 1); /* completed by that thread: signalled */
    CHECK(factum_driver_run(drv, 0) == 1);
    CHECK(one.called == 1 && one.rc == 0);
    CHECK_RC(factum_driver_run(drv, 0), 0);
    CHECK(poll(&p, 1, 0) == 0); /* nothing left: the fd was reset */
    factum_driver_free(drv);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    const char *names[3] = {"io_uring (or its fallback)", "writer thread", "synchronous (FACTUM_DRIVER_SYNC)"};
    unsigned flags[3] = {0, FACTUM_DRIVER_NO_URING, FACTUM_DRIVER_SYNC};
    RUN(t_sync_run_commits_one_group);
    RUN(t_sync_writer_leaves_driver_requests);
    RUN(t_poll_ready);
    for (int m = 0; m < 3; m++) {
        mode_flags = flags[m];
        printf("# drivers: %s\n", names[m]);
        RUN(t_same_results_as_append_multi);
        RUN(t_many_in_flight_with_blocking_threads);
        RUN(t_free_waits_for_work_in_flight);
        RUN(t_never_inside_append_and_deadlock_rule);
        RUN(t_relaxed);
        RUN(t_failed_fdatasync_latches);
    }
    return harness_done();
}
