/*
 * client_mux.c - many calls on one C client connection at once (ADR 0022,
 * client_int.h CL-1, CL-3, CL-7), against a real factumd whose connection
 * string is FACTUMD_URL and whose pid is FACTUMD_PID
 * (tests/integration/client_mux.sh starts it, and runs this over TLS too):
 *  - threads x appends, reads and subscriptions on one client, every
 *    result checked (versions, contents, the events each subscription saw);
 *  - a subscription blocked in its callback with more than a stream window
 *    waiting for it, and appends and a read on the same connection meanwhile;
 *  - 1,000 pipelined appends from one thread (factum_client_append_submit)
 *    with expected versions, some wrong on purpose, checked against a model
 *    of the streams (results, wrong-version details, the streams' contents);
 *    bad input refused before sending; polling without waiting; pipelined
 *    appends from two threads polling one client beside blocking calls;
 *  - 50 subscriptions served by factum_client_poll (two pollers: each
 *    subscription's items in order), and a client closed with submitted
 *    subscriptions in flight;
 *  - deadlines: calls that time out (blocking and pipelined) beside a
 *    subscription on the same connection that lives on;
 *  - last: the server killed with calls in flight (blocking appends,
 *    pipelined appends, subscriptions): every one ends with FACTUM_ECONNECT
 *    (or succeeded before), none hangs, and the next call fails to connect.
 * Randomised parts print their seed (FACTUM_SEED replays one).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "factum_client.h"
#include "harness.h"

static const char *url;
static char tag[32];
static factum_client *cl; /* the one shared client */

static const char *sname(char *buf, size_t n, const char *base, int i)
{
    snprintf(buf, n, "%s-%d-%s", base, i, tag);
    return buf;
}

static factum_event_data ev(const char *type, const char *json)
{
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    return e;
}

/* ---- threads x calls on one client ---------------------------------------------- */

#define MT_THREADS 8
#define MT_APPENDS 60

typedef struct mt_arg {
    int id;
    int failures;
} mt_arg;

typedef struct sub_count {
    const char *stream;
    size_t want;
    _Atomic size_t got; /* read by the test thread while the subscriber runs (t_slow_subscriber) */
    int order_bad;
    uint64_t next;
    int (*slow)(void);
} sub_count;

static int on_count(void *ctx, const factum_sub_item *it)
{
    sub_count *s = ctx;
    if (it->kind != FACTUM_SUB_EVENT) return 0;
    if (it->event.version != s->next) s->order_bad = 1;
    s->next = it->event.version + 1;
    s->got++;
    if (s->slow) s->slow();
    return s->got >= s->want ? 1 : 0;
}

static void *mt_worker(void *arg)
{
    mt_arg *a = arg;
    char s[96];
    sname(s, sizeof s, "mt", a->id);
    for (int i = 0; i < MT_APPENDS; i++) {
        char data[64];
        snprintf(data, sizeof data, "{\"t\":%d,\"i\":%d}", a->id, i);
        factum_event_data e = ev("Mt", data);
        factum_append_result r;
        int rc = factum_client_append(cl, s, i == 0 ? FACTUM_NO_STREAM : (int64_t)i - 1, &e, 1, &r);
        if (rc || r.last_version != (uint64_t)i) {
            fprintf(stderr, "thread %d append %d: %s (%s)\n", a->id, i, factum_strerror(rc),
                    factum_client_last_error(cl));
            a->failures++;
            return NULL;
        }
        if (i % 10 == 9) {
            /* Read back what this thread wrote so far. */
            factum_client_batch *b;
            rc = factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 1000, &b);
            if (rc || factum_client_batch_count(b) != (size_t)i + 1) {
                a->failures++;
                factum_client_batch_free(b);
                return NULL;
            }
            const factum_event *x = factum_client_batch_event(b, (size_t)i);
            if (x->data_len != strlen(data) || memcmp(x->data, data, x->data_len)) a->failures++;
            factum_client_batch_free(b);
        }
    }
    return NULL;
}

static void *mt_subscriber(void *arg)
{
    sub_count *s = arg;
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.stream = s->stream;
    int rc = factum_client_subscribe(cl, &o, on_count, s);
    if (rc)
        fprintf(stderr, "subscription to %s: %s (%s)\n", s->stream, factum_strerror(rc),
                factum_client_last_error(cl));
    return NULL;
}

static void t_threads(void)
{
    /* Subscriptions to half of the workers' streams run on the same client
     * while the workers append and read (CL-1). */
    pthread_t th[MT_THREADS], sth[MT_THREADS / 2];
    mt_arg args[MT_THREADS];
    sub_count subs[MT_THREADS / 2];
    char names[MT_THREADS / 2][96];
    for (int i = 0; i < MT_THREADS / 2; i++) {
        memset(&subs[i], 0, sizeof subs[i]);
        subs[i].stream = sname(names[i], sizeof names[i], "mt", i);
        subs[i].want = MT_APPENDS;
        REQUIRE(pthread_create(&sth[i], NULL, mt_subscriber, &subs[i]) == 0);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        args[i] = (mt_arg){i, 0};
        REQUIRE(pthread_create(&th[i], NULL, mt_worker, &args[i]) == 0);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].failures == 0);
    }
    for (int i = 0; i < MT_THREADS / 2; i++) {
        pthread_join(sth[i], NULL);
        CHECK_EQ_U64(subs[i].got, MT_APPENDS);
        CHECK(!subs[i].order_bad);
    }
}

/* ---- a slow subscription does not stall appends ------------------------------------ */

static atomic_int slow_release;
static int slow_wait(void)
{
    /* The first event blocks the callback until the appends are done. */
    while (!atomic_load(&slow_release))
        usleep(1000);
    return 0;
}

static void t_slow_subscriber(void)
{
    char s[96], w[96];
    sname(s, sizeof s, "slow", 0);
    sname(w, sizeof w, "slow-w", 0);
    /* More history than the stream's window (16 MiB): with the callback
     * blocked (on its own thread, not the driver: CL-1) the server stops
     * sending on that stream once its window is used, and only on it
     * (CL-7: the connection's window is given back as bytes arrive). */
    enum { HIST = 50, PER = 10, SIZE = 400 << 10 };
    char *json = malloc(SIZE + 16);
    REQUIRE(json);
    memset(json, 'x', SIZE + 16);
    memcpy(json, "{\"p\":\"", 6);
    memcpy(json + SIZE - 2, "\"}", 3);
    factum_event_data e = ev("Big", json);
    factum_event_data es[PER];
    for (int i = 0; i < PER; i++)
        es[i] = e;
    for (int i = 0; i < HIST / PER; i++)
        REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, PER, NULL) == 0);
    free(json);
    sub_count sc;
    memset(&sc, 0, sizeof sc);
    sc.stream = s;
    sc.want = HIST;
    sc.slow = slow_wait;
    atomic_store(&slow_release, 0);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, mt_subscriber, &sc) == 0);
    usleep(200 * 1000); /* the subscription is blocked in its callback */
    uint64_t t0 = base_mono_ns_test();
    for (int i = 0; i < 100; i++) {
        factum_event_data x = ev("W", "{}");
        CHECK_RC(factum_client_append(cl, w, FACTUM_ANY, &x, 1, NULL), 0);
    }
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, w, 0, FACTUM_FORWARD, 1000, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 100);
    factum_client_batch_free(b);
    uint64_t ms = (base_mono_ns_test() - t0) / 1000000;
    printf("  100 appends and a read beside a blocked subscription: %llu ms\n", (unsigned long long)ms);
    CHECK(sc.got <= 1); /* it was blocked all along */
    atomic_store(&slow_release, 1);
    pthread_join(th, NULL);
    CHECK_EQ_U64(sc.got, HIST);
    CHECK(!sc.order_bad);
}

/* ---- pipelined appends against a model ----------------------------------------------- */

#define PL_STREAMS 10
#define PL_N       1000

typedef struct pl_op {
    int stream;
    int64_t expected;
    int rc;
    uint64_t last_version;
    int64_t actual;
    _Atomic int done; /* another thread's poll may run the callback (t_pipelined_threads) */
    char err[160];
} pl_op;

static void pl_done(void *ctx, int rc, const factum_append_result *res, const char *error)
{
    pl_op *op = ctx;
    op->rc = rc;
    op->last_version = res->last_version;
    op->actual = res->actual_version;
    snprintf(op->err, sizeof op->err, "%s", error);
    op->done++;
}

static void t_pipelined(void)
{
    uint64_t seed = harness_seed("t_pipelined");
    h_rng r = {seed};
    static pl_op ops[PL_N];
    char names[PL_STREAMS][96];
    for (int i = 0; i < PL_STREAMS; i++)
        sname(names[i], sizeof names[i], "pl", i);
    /* The model: the server carries appends out in the order it receives
     * them, which is the order of submission on one connection; so each
     * expected version is decided against the model's state at submission. */
    int64_t model[PL_STREAMS];
    for (int i = 0; i < PL_STREAMS; i++)
        model[i] = -1;
    int want_rc[PL_N];
    int64_t want_v[PL_N];
    uint64_t t0 = base_mono_ns_test();
    for (int i = 0; i < PL_N; i++) {
        pl_op *op = &ops[i];
        memset(op, 0, sizeof *op);
        op->stream = (int)h_below(&r, PL_STREAMS);
        int64_t cur = model[op->stream];
        uint64_t kind = h_below(&r, 10);
        if (kind == 0)
            op->expected = cur + 2; /* wrong */
        else if (kind == 1)
            op->expected = FACTUM_ANY;
        else if (kind == 2)
            op->expected = cur < 0 ? FACTUM_NO_STREAM : FACTUM_STREAM_EXISTS;
        else
            op->expected = cur < 0 ? FACTUM_NO_STREAM : cur;
        int ok = !(kind == 0);
        want_rc[i] = ok ? 0 : FACTUM_EWRONGVERSION;
        if (ok) model[op->stream] = cur + 1;
        want_v[i] = ok ? model[op->stream] : cur;
        char data[48];
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        factum_event_data e = ev("Pl", data);
        int rc = factum_client_append_submit(cl, names[op->stream], op->expected, &e, 1, pl_done, op);
        REQUIRE(rc == 0);
    }
    CHECK(factum_client_pending(cl) > 0);
    while (factum_client_pending(cl) > 0) {
        int n = factum_client_poll(cl, 10000);
        REQUIRE(n >= 0);
        if (n == 0 && factum_client_pending(cl) > 0) {
            fprintf(stderr, "poll: nothing within 10 s, %zu pending\n", factum_client_pending(cl));
            REQUIRE(0);
        }
    }
    double secs = (double)(base_mono_ns_test() - t0) / 1e9;
    printf("  %d pipelined appends from one thread: %.3f s\n", PL_N, secs);
    int bad = 0;
    for (int i = 0; i < PL_N; i++) {
        pl_op *op = &ops[i];
        if (op->done != 1 || op->rc != want_rc[i] ||
            (op->rc == 0 && op->last_version != (uint64_t)want_v[i]) ||
            (op->rc == FACTUM_EWRONGVERSION &&
             (op->actual != (want_v[i] < 0 ? FACTUM_NO_STREAM : want_v[i]) ||
              !strstr(op->err, "wrong expected version")))) {
            if (bad++ < 5)
                fprintf(stderr,
                        "op %d (stream %d, expected %lld): done %d rc %d (%s) last %llu actual %lld, want rc "
                        "%d v %lld\n",
                        i, op->stream, (long long)op->expected, op->done, op->rc, op->err,
                        (unsigned long long)op->last_version, (long long)op->actual, want_rc[i],
                        (long long)want_v[i]);
        }
    }
    CHECK(bad == 0);
    /* The streams hold exactly the model's events, in submission order. */
    for (int s = 0; s < PL_STREAMS; s++) {
        factum_client_batch *b;
        CHECK_RC(factum_client_read_stream(cl, names[s], 0, FACTUM_FORWARD, 10000, &b),
                 model[s] < 0 ? FACTUM_ENOTFOUND : 0);
        if (!b) continue;
        CHECK_EQ_U64(factum_client_batch_count(b), (uint64_t)(model[s] + 1));
        int prev = -1;
        for (size_t j = 0; j < factum_client_batch_count(b); j++) {
            const factum_event *x = factum_client_batch_event(b, j);
            int i = atoi((const char *)x->data + 5);
            CHECK(i > prev && ops[i].stream == s && want_rc[i] == 0);
            prev = i;
        }
        factum_client_batch_free(b);
    }
    /* Bad input is refused before sending, and the callback never runs. */
    factum_event_data e = ev("Pl", "{}");
    CHECK_RC(factum_client_append_submit(cl, "", FACTUM_ANY, &e, 1, pl_done, &ops[0]), FACTUM_EBADNAME);
    CHECK_RC(factum_client_append_submit(cl, names[0], -7, &e, 1, pl_done, &ops[0]), FACTUM_EINVAL);
    CHECK_RC(factum_client_append_submit(cl, names[0], FACTUM_ANY, &e, 1, NULL, NULL), FACTUM_EINVAL);
    CHECK(factum_client_pending(cl) == 0);
    CHECK_RC(factum_client_poll(cl, 0), 0);
    /* A program's own loop that polls without waiting makes progress. */
    for (int i = 0; i < 10; i++)
        CHECK_RC(factum_client_append_submit(cl, names[0], FACTUM_ANY, &e, 1, pl_done, &ops[i]), 0);
    uint64_t t1 = base_mono_ns_test();
    while (factum_client_pending(cl) && base_mono_ns_test() - t1 < 10000000000ull) {
        CHECK(factum_client_poll(cl, 0) >= 0);
        usleep(100);
    }
    CHECK(factum_client_pending(cl) == 0);
}

/* Pipelined appends from several threads, each polling its own
 * completions on the shared client while others make blocking calls. */
static void *pl_thread(void *arg)
{
    int id = *(int *)arg;
    char s[96];
    sname(s, sizeof s, "plt", id);
    enum { N = 200 };
    static _Thread_local pl_op ops[N];
    for (int i = 0; i < N; i++) {
        memset(&ops[i], 0, sizeof ops[i]);
        factum_event_data e = ev("P", "{}");
        if (factum_client_append_submit(cl, s, i == 0 ? FACTUM_NO_STREAM : i - 1, &e, 1, pl_done, &ops[i]))
            return (void *)1;
    }
    /* Two threads poll one client: each runs whichever callbacks it finds;
     * wait until ours are all done. */
    for (int spins = 0; spins < 100000; spins++) {
        int all = 1;
        for (int i = 0; i < N; i++)
            all &= ops[i].done == 1;
        if (all) break;
        factum_client_poll(cl, 100);
    }
    for (int i = 0; i < N; i++)
        if (ops[i].done != 1 || ops[i].rc || ops[i].last_version != (uint64_t)i) return (void *)1;
    return NULL;
}

static void t_pipelined_threads(void)
{
    pthread_t th[2];
    int ids[2] = {0, 1};
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&th[i], NULL, pl_thread, &ids[i]) == 0);
    for (int i = 0; i < 20; i++) {
        char v[64];
        CHECK_RC(factum_client_server_version(cl, v, sizeof v), 0);
    }
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        CHECK(ret == NULL);
    }
}

/* ---- many subscriptions served by one thread ---------------------------------------- */

typedef struct end_rec {
    int rc, n;
} end_rec;

static void on_end(void *ctx, int rc, const char *error)
{
    end_rec *e = ctx;
    e->rc = rc;
    e->n++;
    if (rc && rc != FACTUM_ECONNECT)
        fprintf(stderr, "subscription ended: %s (%s)\n", factum_strerror(rc), error);
}

static void *poll_all(void *arg)
{
    (void)arg;
    uint64_t t0 = base_mono_ns_test();
    while (factum_client_pending(cl) && base_mono_ns_test() - t0 < 30000000000ull)
        factum_client_poll(cl, 100);
    return NULL;
}

static void t_submitted_subscriptions(void)
{
    /* 50 subscriptions to 5 streams and $all-free stream ones, one thread:
     * every subscriber sees every event of its stream in order. */
    enum { SUBS = 50, STREAMS = 5, EVENTS = 40 };
    char names[STREAMS][96];
    static sub_count sc[SUBS];
    static end_rec ends[SUBS];
    for (int i = 0; i < STREAMS; i++)
        sname(names[i], sizeof names[i], "subm", i);
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    for (int i = 0; i < SUBS; i++) {
        memset(&sc[i], 0, sizeof sc[i]);
        memset(&ends[i], 0, sizeof ends[i]);
        sc[i].stream = names[i % STREAMS];
        sc[i].want = EVENTS;
        o.stream = sc[i].stream;
        CHECK_RC(factum_client_subscribe_submit(cl, &o, on_count, &sc[i], on_end, &ends[i]), 0);
    }
    o.idle_ms = 10;
    CHECK_RC(factum_client_subscribe_submit(cl, &o, on_count, &sc[0], on_end, &ends[0]), FACTUM_EINVAL);
    o.idle_ms = 0;
    o.stream = "";
    CHECK_RC(factum_client_subscribe_submit(cl, &o, on_count, &sc[0], on_end, &ends[0]), FACTUM_EBADNAME);
    static pl_op ops[STREAMS * EVENTS];
    for (int j = 0; j < EVENTS; j++)
        for (int i = 0; i < STREAMS; i++) {
            factum_event_data e = ev("S", "{}");
            CHECK_RC(
                factum_client_append_submit(cl, names[i], FACTUM_ANY, &e, 1, pl_done, &ops[j * STREAMS + i]),
                0);
        }
    /* Two pollers: a subscription's items still come in order, one at a
     * time (on_count checks the order; it is not thread-safe on purpose). */
    pthread_t helper;
    REQUIRE(pthread_create(&helper, NULL, poll_all, NULL) == 0);
    poll_all(NULL);
    pthread_join(helper, NULL);
    CHECK(factum_client_pending(cl) == 0);
    for (int i = 0; i < STREAMS * EVENTS; i++)
        CHECK(ops[i].done == 1 && ops[i].rc == 0);
    for (int i = 0; i < SUBS; i++) {
        CHECK_EQ_U64(sc[i].got, EVENTS);
        CHECK(!sc[i].order_bad);
        CHECK(ends[i].n == 1 && ends[i].rc == 0);
    }
    /* Closing a client with submitted calls in flight ends each of them
     * (FACTUM_ECONNECT, from factum_client_close) and leaks nothing. */
    factum_client *c;
    REQUIRE(factum_client_connect(url, NULL, &c) == 0);
    end_rec e3[3];
    memset(e3, 0, sizeof e3);
    for (int i = 0; i < 3; i++) {
        o.stream = names[i];
        sc[i].got = 0;
        sc[i].next = 0;
        sc[i].want = 1u << 30;
        CHECK_RC(factum_client_subscribe_submit(c, &o, on_count, &sc[i], on_end, &e3[i]), 0);
    }
    factum_client_poll(c, 200);
    CHECK(factum_client_pending(c) == 3);
    factum_client_close(c);
    for (int i = 0; i < 3; i++)
        CHECK(e3[i].n == 1 && e3[i].rc == FACTUM_ECONNECT);
}

/* ---- deadlines -------------------------------------------------------------------- */

static factum_client *sub_on_client;
static int sub_on_rc;

/* A blocking subscription on sub_on_client (to *arg's stream). */
static void *sub_on(void *arg)
{
    sub_count *sc = arg;
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.stream = sc->stream;
    sub_on_rc = factum_client_subscribe(sub_on_client, &o, on_count, sc);
    return NULL;
}

static void t_deadlines(void)
{
    /* A client with a 1 ms deadline: large reads time out, each on its
     * own stream, and the connection stays usable (CL-3). */
    char s[96];
    sname(s, sizeof s, "dl", 0);
    size_t n = 2u << 20;
    char *blob = malloc(n + 16);
    REQUIRE(blob);
    memset(blob, 'a', n);
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = "Slow";
    e.data = blob;
    e.data_len = n;
    factum_event_data es[4] = {e, e, e, e};
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, 4, NULL) == 0);
    factum_client_options o;
    factum_client_options_init(&o);
    o.timeout_ms = 1;
    factum_client *c;
    REQUIRE(factum_client_connect(url, &o, &c) == 0);
    /* A subscription on the same connection (no deadline applies to it)
     * lives through the timeouts of the calls beside it. */
    char live[96];
    sname(live, sizeof live, "dl-live", 0);
    sub_count sc;
    memset(&sc, 0, sizeof sc);
    sc.stream = live;
    sc.want = 3;
    pthread_t sth;
    sub_on_client = c;
    REQUIRE(pthread_create(&sth, NULL, sub_on, &sc) == 0);
    int timeouts = 0;
    for (int i = 0; i < 5; i++) {
        factum_client_batch *b;
        int rc = factum_client_read_stream(c, s, 0, FACTUM_FORWARD, 10, &b);
        if (rc == FACTUM_ETIMEDOUT)
            timeouts++;
        else
            CHECK_RC(rc, 0);
        factum_client_batch_free(b);
    }
    CHECK(timeouts > 0);
    for (int i = 0; i < 3; i++) {
        factum_event_data x = ev("L", "{}");
        CHECK_RC(factum_client_append(cl, live, FACTUM_ANY, &x, 1, NULL), 0);
    }
    pthread_join(sth, NULL);
    CHECK_EQ_U64(sc.got, 3);
    CHECK_RC(sub_on_rc, 0);
    /* Pipelined appends of 2 MiB with a 1 ms deadline time out too, through
     * their callbacks. */
    pl_op ops[4];
    memset(ops, 0, sizeof ops);
    for (int i = 0; i < 4; i++)
        CHECK_RC(factum_client_append_submit(c, s, FACTUM_ANY, &e, 1, pl_done, &ops[i]), 0);
    while (factum_client_pending(c))
        factum_client_poll(c, 1000);
    int to = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(ops[i].done == 1);
        to += ops[i].rc == FACTUM_ETIMEDOUT;
        CHECK(ops[i].rc == 0 || ops[i].rc == FACTUM_ETIMEDOUT);
    }
    CHECK(to > 0);
    factum_client_close(c);
    free(blob);
    /* The shared client, with the default deadline, reads it. */
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    CHECK(factum_client_batch_count(b) >= 4);
    factum_client_batch_free(b);
}

/* ---- the server killed with calls in flight ----------------------------------------- */

typedef struct kill_arg {
    _Atomic int rc;
    _Atomic int started; /* read by the test's thread while this one runs */
} kill_arg;

static int on_forever(void *ctx, const factum_sub_item *it)
{
    kill_arg *k = ctx;
    if (it->kind == FACTUM_SUB_CAUGHT_UP) k->started = 1;
    return 0;
}

static void *kill_sub(void *arg)
{
    kill_arg *k = arg;
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    k->rc = factum_client_subscribe(cl, &o, on_forever, k);
    return NULL;
}

static void *kill_appender(void *arg)
{
    kill_arg *k = arg;
    char s[96];
    sname(s, sizeof s, "kill", (int)(intptr_t)pthread_self() & 0xffff);
    factum_event_data e = ev("K", "{}");
    for (;;) {
        int rc = factum_client_append(cl, s, FACTUM_ANY, &e, 1, NULL);
        k->started = 1;
        if (rc) {
            k->rc = rc;
            return NULL;
        }
    }
}

static void t_server_killed(void)
{
    const char *pid_s = getenv("FACTUMD_PID");
    REQUIRE(pid_s && atoi(pid_s) > 0);
    kill_arg subs[3], apps[3];
    pthread_t sth[3], ath[3];
    memset(subs, 0, sizeof subs);
    memset(apps, 0, sizeof apps);
    for (int i = 0; i < 3; i++) {
        REQUIRE(pthread_create(&sth[i], NULL, kill_sub, &subs[i]) == 0);
        REQUIRE(pthread_create(&ath[i], NULL, kill_appender, &apps[i]) == 0);
    }
    pl_op ops[50];
    memset(ops, 0, sizeof ops);
    for (int t = 0; t < 500; t++) {
        int all = 1;
        for (int i = 0; i < 3; i++)
            all &= subs[i].started && apps[i].started;
        if (all) break;
        usleep(10000);
    }
    char s[96];
    sname(s, sizeof s, "kill-pl", 0);
    factum_event_data e = ev("K", "{}");
    for (int i = 0; i < 50; i++)
        CHECK_RC(factum_client_append_submit(cl, s, FACTUM_ANY, &e, 1, pl_done, &ops[i]), 0);
    REQUIRE(kill(atoi(pid_s), SIGKILL) == 0);
    uint64_t t0 = base_mono_ns_test();
    while (factum_client_pending(cl) && base_mono_ns_test() - t0 < 20000000000ull)
        factum_client_poll(cl, 1000);
    CHECK(factum_client_pending(cl) == 0);
    int lost = 0;
    for (int i = 0; i < 50; i++) {
        CHECK(ops[i].done == 1);
        CHECK(ops[i].rc == 0 || ops[i].rc == FACTUM_ECONNECT);
        lost += ops[i].rc == FACTUM_ECONNECT;
    }
    printf("  pipelined appends in flight at the kill: %d of 50 failed with FACTUM_ECONNECT\n", lost);
    for (int i = 0; i < 3; i++) {
        pthread_join(sth[i], NULL);
        pthread_join(ath[i], NULL);
        CHECK_RC(subs[i].rc, FACTUM_ECONNECT);
        CHECK_RC(apps[i].rc, FACTUM_ECONNECT);
    }
    /* And the next call fails to connect, quickly, without hanging. */
    factum_event_data x = ev("K", "{}");
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &x, 1, NULL), FACTUM_ECONNECT);
    CHECK_RC(factum_client_append_submit(cl, s, FACTUM_ANY, &x, 1, pl_done, &ops[0]), FACTUM_ECONNECT);
}

int main(void)
{
    url = getenv("FACTUMD_URL");
    if (!url || !*url) {
        fprintf(stderr, "FACTUMD_URL is not set: run this through tests/integration/client_mux.sh\n");
        return 1;
    }
    snprintf(tag, sizeof tag, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    int rc = factum_client_connect(url, NULL, &cl);
    if (rc) {
        fprintf(stderr, "cannot connect to %s: %s: %s\n", url, factum_strerror(rc),
                factum_client_last_error(NULL));
        return 1;
    }
    RUN(t_threads);
    RUN(t_slow_subscriber);
    RUN(t_pipelined);
    RUN(t_pipelined_threads);
    RUN(t_submitted_subscriptions);
    RUN(t_deadlines);
    if (!getenv("FACTUM_MUX_NO_KILL")) RUN(t_server_killed);
    factum_client_close(cl);
    return harness_done();
}
