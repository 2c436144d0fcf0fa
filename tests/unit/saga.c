/* Sagas (src/cqrs/saga.c, include/factum_saga.h): the happy path, the
 * compensations of the completed steps in reverse order and each once
 * (SAGA-5), a step rejected at once, timeouts through scheduled events (and
 * their cancellation), a late answer after a timeout compensated once,
 * the replay of the whole log changing nothing (SAGA-1, SAGA-2), two
 * runners at once (SAGA-1), events that belong to no instance, and bad
 * definitions.
 *
 * The "services" here are command functions that append their answer to a
 * stream of their own with the command's id as the event id (so a command
 * repeated is an idempotent replay) and count their calls. */
#include "harness.h"

#include <pthread.h>

#include "factum_saga.h"

static const int64_t MS = 1000000;

/* What each service answers, per key: the step (0..2) that fails, the
 * step that answers "rejected" at once, the step that never answers. */
typedef struct plan {
    int fail_step;
    int reject_step;
    int silent_step;
    int late_answer; /* the silent step's service answers after its timeout */
    int error_step;  /* the step whose command always fails with -EIO */
    int undo_errors; /* compensations fail with -EIO this many times first */
} plan;

typedef struct world {
    factum_store *s;
    plan p;
    int calls[4][2]; /* [step + 1][compensate] */
    pthread_mutex_t mu;
} world;

static const char *const start_t[] = {"Placed"};
static const char *const done0[] = {"Charged"}, *const fail0[] = {"Declined"},
                         *const undone0[] = {"Refunded"};
static const char *const done1[] = {"Reserved"}, *const fail1[] = {"OutOfStock"},
                         *const undone1[] = {"Released"};
static const char *const done2[] = {"Shipped"}, *const fail2[] = {"Unshippable"},
                         *const undone2[] = {"ShipCancelled"};
static const char *const start_undone[] = {"Cancelled"};

static int reply(world *w, const factum_saga_command *c, const char *type)
{
    char stream[256], meta[300], data[300];
    snprintf(stream, sizeof stream, "svc%d-%s", c->step, c->key);
    snprintf(meta, sizeof meta, "{\"$correlationId\":\"%s\"}", c->key);
    snprintf(data, sizeof data, "{\"step\":%d,\"start\":%s}", c->step,
             *c->start_data ? c->start_data : "null");
    factum_event_data e = {.type = type,
                           .has_id = 1,
                           .flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON,
                           .data = data,
                           .data_len = strlen(data),
                           .metadata = meta,
                           .metadata_len = strlen(meta)};
    memcpy(e.id, c->id, 16);
    return factum_append(w->s, stream, FACTUM_ANY, &e, 1, NULL);
}

static const char *const *types_of(int step, int kind) /* kind 0 done, 1 failed, 2 undone */
{
    static const char *const *t[3][3] = {
        {done0, fail0, undone0}, {done1, fail1, undone1}, {done2, fail2, undone2}};
    return t[step][kind];
}

static int run_cmd(void *ctx, const factum_saga_command *c)
{
    world *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->calls[c->step + 1][0]++;
    pthread_mutex_unlock(&w->mu);
    if (c->step == w->p.reject_step) return FACTUM_SAGA_FAILED;
    if (c->step == w->p.silent_step) return FACTUM_SAGA_PENDING;
    if (c->step == w->p.error_step) return -EIO;
    int rc = reply(w, c, types_of(c->step, c->step == w->p.fail_step ? 1 : 0)[0]);
    return rc ? rc : FACTUM_SAGA_PENDING;
}

static int undo_cmd(void *ctx, const factum_saga_command *c)
{
    world *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->calls[c->step + 1][1]++;
    int error = w->p.undo_errors > 0 ? w->p.undo_errors-- : 0;
    pthread_mutex_unlock(&w->mu);
    if (error) return -EIO;
    if (c->step == FACTUM_SAGA_START) {
        char stream[256], meta[300];
        snprintf(stream, sizeof stream, "order-%s", c->key);
        snprintf(meta, sizeof meta, "{\"$correlationId\":\"%s\"}", c->key);
        factum_event_data e = {.type = "Cancelled",
                               .has_id = 1,
                               .flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON,
                               .data = "{}",
                               .data_len = 2,
                               .metadata = meta,
                               .metadata_len = strlen(meta)};
        memcpy(e.id, c->id, 16);
        int rc = factum_append(w->s, stream, FACTUM_ANY, &e, 1, NULL);
        return rc ? rc : FACTUM_SAGA_PENDING;
    }
    int rc = reply(w, c, types_of(c->step, 2)[0]);
    return rc ? rc : FACTUM_SAGA_PENDING;
}

static factum_saga_step steps[3];
static factum_saga_def def;

static void make_def(world *w, int64_t timeout_ms)
{
    memset(steps, 0, sizeof steps);
    const char *names[3] = {"payment", "inventory", "shipment"};
    for (int i = 0; i < 3; i++) {
        steps[i].name = names[i];
        steps[i].run = run_cmd;
        steps[i].done_types = types_of(i, 0);
        steps[i].n_done = 1;
        steps[i].failed_types = types_of(i, 1);
        steps[i].n_failed = 1;
        steps[i].compensate = undo_cmd;
        steps[i].compensated_types = types_of(i, 2);
        steps[i].n_compensated = 1;
    }
    steps[0].timeout_ms = timeout_ms;
    steps[0].timeout_stream = "svc0-{key}";
    steps[0].timeout_type = "PaymentTimedOut";
    memset(&def, 0, sizeof def);
    def.name = "orders";
    def.start_types = start_t;
    def.n_start = 1;
    def.compensate_start = undo_cmd;
    def.start_compensated_types = start_undone;
    def.n_start_compensated = 1;
    def.steps = steps;
    def.n_steps = 3;
    def.ctx = w;
}

static world *world_new(const char *dir)
{
    world *w = calloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    if (factum_store_open(dir, &o, &w->s)) {
        free(w);
        return NULL;
    }
    w->p = (plan){-9, -9, -9, 0, -9, 0};
    return w;
}

static void world_free(world *w)
{
    factum_store_close(w->s);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static uint64_t place(world *w, const char *key)
{
    char stream[256], meta[300], data[300];
    snprintf(stream, sizeof stream, "order-%s", key);
    snprintf(meta, sizeof meta, "{\"$correlationId\":\"%s\"}", key);
    snprintf(data, sizeof data, "{\"order\":\"%s\",\"amount\":42}", key);
    factum_event_data e = harness_event("Placed", data);
    e.flags |= FACTUM_EVENT_META_JSON;
    e.metadata = meta;
    e.metadata_len = strlen(meta);
    factum_append_result r;
    int rc = factum_append(w->s, stream, FACTUM_ANY, &e, 1, &r);
    return rc ? 0 : r.last_position;
}

static uint64_t head(world *w)
{
    factum_stats st;
    factum_store_get_stats(w->s, &st);
    return st.last_position;
}

/* Drive a non-threaded runner until it has handled the head and nothing
 * more arrives for quiet_ms. */
static void drain(factum_saga *sg, world *w, int quiet_ms)
{
    int quiet = 0;
    while (quiet < quiet_ms) {
        size_t n = 0;
        uint64_t h = head(w);
        int rc = factum_saga_run(sg, 10, &n);
        if (rc) fprintf(stderr, "run: %s\n", factum_strerror(rc));
        factum_saga_stats st;
        factum_saga_get_stats(sg, &st);
        if (n == 0 && st.position >= h && head(w) == h)
            quiet += 10;
        else
            quiet = 0;
    }
}

static void log_line(void *ctx, int level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "  [saga %d] %s\n", level, msg);
}

static factum_saga *open_manual(world *w)
{
    factum_saga_options o;
    factum_saga_options_init(&o);
    o.log_fn = log_line;
    o.threaded = 0;
    o.backoff_ms = 1;
    factum_saga *sg = NULL;
    int rc = factum_saga_open(w->s, &def, &o, &sg);
    if (rc) fprintf(stderr, "saga open: %s\n", factum_strerror(rc));
    return sg;
}

/* The types of stream's events, joined by ' '. */
static void types_in(world *w, const char *stream, char *out, size_t cap)
{
    factum_event evs[32];
    size_t n = 0;
    out[0] = 0;
    if (factum_read_stream(w->s, stream, 0, FACTUM_FORWARD, evs, 32, &n, NULL)) return;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? " " : "", evs[i].type);
    }
}

/* Compensation events of key in $all order, joined by ' '. */
static void compensations(world *w, const char *key, char *out, size_t cap)
{
    out[0] = 0;
    static const char *const want[] = {"Refunded", "Released", "ShipCancelled", "Cancelled"};
    uint64_t from = 1;
    factum_event evs[256];
    for (;;) {
        size_t n = 0;
        uint64_t next;
        if (factum_read_all(w->s, from, FACTUM_FORWARD, NULL, 0, evs, 256, &n, &next) || n == 0) break;
        for (size_t i = 0; i < n; i++) {
            int is = 0;
            for (int k = 0; k < 4; k++)
                is |= !strcmp(evs[i].type, want[k]);
            char tail[260];
            snprintf(tail, sizeof tail, "-%s", key);
            size_t sl = strlen(evs[i].stream), tl = strlen(tail);
            if (is && sl > tl && !strcmp(evs[i].stream + sl - tl, tail)) {
                size_t l = strlen(out);
                snprintf(out + l, cap - l, "%s%s", l ? " " : "", evs[i].type);
            }
        }
        from = next;
    }
}

static void t_completes(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-ok"));
    REQUIRE(w);
    make_def(w, 0);
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    CHECK(place(w, "a1"));
    drain(sg, w, 50);
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "a1", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPLETED);
    CHECK_EQ_U64(in.completed, 7);
    CHECK_EQ_U64(in.compensated, 0);
    CHECK(in.failed_step == -2);
    for (int i = 1; i <= 3; i++)
        CHECK(w->calls[i][0] == 1 && w->calls[i][1] == 0);
    char t[512];
    types_in(w, "saga-orders-a1", t, sizeof t);
    CHECK(!strcmp(t, "SagaStarted SagaStepCompleted SagaStepCompleted SagaCompleted"));
    /* The start's data reached the services. */
    factum_event ev;
    size_t n;
    CHECK_RC(factum_read_stream(w->s, "svc2-a1", 0, FACTUM_FORWARD, &ev, 1, &n, NULL), 0);
    CHECK(n == 1 && memmem(ev.data, ev.data_len, "\"order\":\"a1\"", 12));
    factum_saga_stats st;
    factum_saga_get_stats(sg, &st);
    CHECK_EQ_U64(st.started, 1);
    CHECK_EQ_U64(st.completed, 1);
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "nope", &in), FACTUM_ENOTFOUND);
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "", &in), FACTUM_EINVAL);
    factum_saga_close(sg);
    world_free(w);
}

/* A failure at each step: the compensations of the completed steps (and
 * of the start) in reverse order, each once. */
static void t_compensation_order(void)
{
    static const char *want[3] = {"Cancelled", "Refunded Cancelled", "Released Refunded Cancelled"};
    for (int f = 0; f < 3; f++) {
        char d[512];
        world *w = world_new(harness_tmpdir(d, sizeof d, "saga-comp"));
        REQUIRE(w);
        make_def(w, 0);
        w->p.fail_step = f;
        factum_saga *sg = open_manual(w);
        REQUIRE(sg);
        CHECK(place(w, "b"));
        drain(sg, w, 50);
        factum_saga_instance in;
        CHECK_RC(factum_saga_instance_get(w->s, "orders", "b", &in), 0);
        CHECK(in.status == FACTUM_SAGA_COMPENSATED);
        CHECK(in.failed_step == f);
        CHECK(!strcmp(in.reason, types_of(f, 1)[0]));
        CHECK_EQ_U64(in.completed, (1u << f) - 1);
        CHECK_EQ_U64(in.compensated, ((1u << f) - 1) | (1ull << FACTUM_SAGA_START_BIT));
        char c[512];
        compensations(w, "b", c, sizeof c);
        if (strcmp(c, want[f]))
            fprintf(stderr, "  step %d failed: compensations '%s', want '%s'\n", f, c, want[f]);
        CHECK(!strcmp(c, want[f]));
        for (int i = 0; i <= 3; i++)
            CHECK(w->calls[i][1] == (i == 0 || i <= f ? 1 : 0));
        factum_saga_close(sg);
        world_free(w);
    }
}

/* Step 2 (shipment) rejects the command at once: a progress of its own,
 * then the compensations. */
static void t_rejected(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-rej"));
    REQUIRE(w);
    make_def(w, 0);
    w->p.reject_step = 2;
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    CHECK(place(w, "c"));
    drain(sg, w, 50);
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "c", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPENSATED);
    CHECK(in.failed_step == 2 && !strcmp(in.reason, "rejected"));
    char c[512];
    compensations(w, "c", c, sizeof c);
    CHECK(!strcmp(c, "Released Refunded Cancelled"));
    factum_saga_close(sg);
    world_free(w);
}

/* A step's command that keeps failing with an error fails the step after
 * max_attempts calls (reason "error"); a compensation that fails is
 * retried until it succeeds, and still happens once. */
static void t_command_errors(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-err"));
    REQUIRE(w);
    make_def(w, 0);
    w->p.error_step = 1;
    w->p.undo_errors = 3;
    factum_saga *sg = open_manual(w); /* max_attempts 5 (the default), backoff 1 ms */
    REQUIRE(sg);
    CHECK(place(w, "e"));
    drain(sg, w, 50);
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "e", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPENSATED);
    CHECK(in.failed_step == 1 && !strcmp(in.reason, "error"));
    CHECK(w->calls[2][0] == 5);
    char c[512];
    compensations(w, "e", c, sizeof c);
    CHECK(!strcmp(c, "Refunded Cancelled"));
    CHECK(w->calls[1][1] == 4); /* 3 errors, then the refund */
    factum_saga_stats st;
    factum_saga_get_stats(sg, &st);
    CHECK_EQ_U64(st.retries, 4 + 3);
    CHECK(st.last_error == -EIO);
    factum_saga_close(sg);
    world_free(w);
}

/* The payment never answers: its timeout (a scheduled event in the
 * payment's stream) fails the step; the order is cancelled. A late answer
 * after that is compensated, once. */
static void t_timeout(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-to"));
    REQUIRE(w);
    make_def(w, 150);
    w->p.silent_step = 0;
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    CHECK(place(w, "t"));
    drain(sg, w, 50);
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "t", &in), 0);
    if (in.status != FACTUM_SAGA_RUNNING || in.step != 0) {
        char t0[512];
        types_in(w, "saga-orders-t", t0, sizeof t0);
        fprintf(stderr, "  status %d step %d reason %s: %s\n", in.status, in.step, in.reason, t0);
    }
    CHECK(in.status == FACTUM_SAGA_RUNNING && in.step == 0);
    drain(sg, w, 400); /* past the timeout */
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "t", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPENSATED);
    CHECK(in.failed_step == 0 && !strcmp(in.reason, "timeout"));
    char t[512];
    types_in(w, "svc0-t", t, sizeof t);
    CHECK(!strcmp(t, "PaymentTimedOut"));
    compensations(w, "t", t, sizeof t);
    CHECK(!strcmp(t, "Cancelled"));
    /* The late answer: the payment is refunded (once, however often it comes). */
    char meta[64] = "{\"$correlationId\":\"t\"}";
    for (int k = 0; k < 2; k++) {
        factum_event_data e = harness_event("Charged", "{}");
        e.flags |= FACTUM_EVENT_META_JSON;
        e.metadata = meta;
        e.metadata_len = strlen(meta);
        CHECK_RC(factum_append(w->s, "svc0-t", FACTUM_ANY, &e, 1, NULL), 0);
    }
    drain(sg, w, 50);
    compensations(w, "t", t, sizeof t);
    CHECK(!strcmp(t, "Cancelled Refunded"));
    CHECK(w->calls[1][1] == 1);
    factum_saga_close(sg);
    world_free(w);
}

static int count_pending(void *ctx, const factum_schedule_info *info)
{
    (void)info;
    (*(int *)ctx)++;
    return 0;
}

/* The payment answers in time: its timeout is cancelled, never delivered. */
static void t_timeout_cancelled(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-tc"));
    REQUIRE(w);
    make_def(w, 200);
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    CHECK(place(w, "k"));
    drain(sg, w, 50);
    int n = 0;
    CHECK_RC(factum_schedule_list(w->s, count_pending, &n), 0);
    CHECK(n == 0);
    struct timespec ts = {0, 400 * MS};
    nanosleep(&ts, NULL);
    char t[512];
    types_in(w, "svc0-k", t, sizeof t);
    CHECK(!strcmp(t, "Charged"));
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "k", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPLETED);
    factum_saga_close(sg);
    world_free(w);
}

/* SAGA-1, SAGA-2: the whole log handled again (checkpoint back at 0)
 * writes nothing and issues no step again. */
static void t_replay(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-replay"));
    REQUIRE(w);
    make_def(w, 0);
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "r%d", i);
        w->p.fail_step = i % 4 == 3 ? -9 : i % 4;
        CHECK(place(w, k));
        drain(sg, w, 20);
    }
    factum_saga_close(sg);
    int before[4][2];
    memcpy(before, w->calls, sizeof before);
    uint64_t h = head(w);
    factum_event_data e = harness_event("$sagaCheckpoint", "{\"position\":0}");
    CHECK_RC(factum_append(w->s, "$saga-orders-checkpoint", FACTUM_ANY, &e, 1, NULL), 0);
    sg = open_manual(w);
    REQUIRE(sg);
    drain(sg, w, 50);
    factum_saga_stats st;
    factum_saga_get_stats(sg, &st);
    CHECK_EQ_U64(st.transitions, 0);
    CHECK(memcmp(before, w->calls, sizeof before) == 0);
    factum_saga_close(sg);
    /* Only the checkpoints were written. */
    CHECK(head(w) <= h + 3);
    world_free(w);
}

/* SAGA-1: two threaded runners of the same saga: every instance ends once,
 * no step or compensation event twice. */
static void t_two_runners(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-two"));
    REQUIRE(w);
    make_def(w, 0);
    factum_saga *a = NULL, *b = NULL;
    factum_saga_options o;
    factum_saga_options_init(&o);
    o.log_fn = log_line;
    CHECK_RC(factum_saga_open(w->s, &def, &o, &a), 0);
    o.batch_events = 255; /* near the poll array's size */
    o.workers = 3;
    CHECK_RC(factum_saga_open(w->s, &def, &o, &b), 0);
    REQUIRE(a && b);
    w->p.fail_step = 2;
    uint64_t last = 0;
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "x%d", i);
        last = place(w, k);
    }
    /* Wait for every instance to end. */
    int ended = 0;
    for (int tries = 0; tries < 1000 && !ended; tries++) {
        factum_saga_wait(a, last, 100);
        struct timespec ts = {0, 10 * MS};
        nanosleep(&ts, NULL);
        ended = 1;
        for (int i = 0; i < 40 && ended; i++) {
            char k[16];
            snprintf(k, sizeof k, "x%d", i);
            factum_saga_instance in;
            ended = !factum_saga_instance_get(w->s, "orders", k, &in) && in.status == FACTUM_SAGA_COMPENSATED;
        }
    }
    CHECK(ended);
    for (int i = 0; i < 40; i++) {
        char k[16], s[64], c[512];
        snprintf(k, sizeof k, "x%d", i);
        compensations(w, k, c, sizeof c);
        CHECK(!strcmp(c, "Released Refunded Cancelled"));
        snprintf(s, sizeof s, "svc0-%s", k);
        types_in(w, s, c, sizeof c);
        CHECK(!strcmp(c, "Charged Refunded"));
        snprintf(s, sizeof s, "saga-orders-%s", k);
        types_in(w, s, c, sizeof c);
        if (strcmp(c, "SagaStarted SagaStepCompleted SagaStepCompleted SagaStepFailed SagaStepCompensated "
                      "SagaStepCompensated SagaCompensated")) {
            fprintf(stderr, "  %s: %s\n", s, c);
            compensations(w, k, c, sizeof c);
            fprintf(stderr, "    compensations %s\n", c);
        }
        CHECK(!strcmp(c, "SagaStarted SagaStepCompleted SagaStepCompleted SagaStepFailed SagaStepCompensated "
                         "SagaStepCompensated SagaCompensated"));
    }
    factum_saga_stats sa, sb;
    factum_saga_get_stats(a, &sa);
    factum_saga_get_stats(b, &sb);
    printf("  two runners: transitions %llu + %llu, conflicts %llu + %llu\n",
           (unsigned long long)sa.transitions, (unsigned long long)sb.transitions,
           (unsigned long long)sa.conflicts, (unsigned long long)sb.conflicts);
    CHECK_EQ_U64(sa.transitions + sb.transitions, 40 * 7);
    factum_saga_close(a);
    factum_saga_close(b);
    world_free(w);
}

/* Events of the saga's types that belong to no instance are ignored. */
static void t_ignored(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-ign"));
    REQUIRE(w);
    make_def(w, 0);
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    const char *metas[] = {NULL,
                           "{}",
                           "{\"$correlationId\":5}",
                           "{\"$correlationId\":\"\"}",
                           "{\"$correlationId\":\"a\\u0001b\"}",
                           "not json",
                           "{\"$correlationId\":\"nobody\"}"};
    for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
        factum_event_data e = harness_event(i % 2 ? "Charged" : "Placed", "{}");
        if (metas[i]) {
            e.flags |= FACTUM_EVENT_META_JSON;
            e.metadata = metas[i];
            e.metadata_len = strlen(metas[i]);
        }
        if (i == 6) e.type = "Charged"; /* an answer for an instance that does not exist */
        CHECK_RC(factum_append(w->s, "junk", FACTUM_ANY, &e, 1, NULL), 0);
    }
    drain(sg, w, 30);
    factum_saga_stats st;
    factum_saga_get_stats(sg, &st);
    CHECK_EQ_U64(st.transitions, 0);
    CHECK_EQ_U64(st.ignored, 7);
    CHECK(w->calls[1][0] == 0);
    factum_saga_close(sg);
    world_free(w);
}

/* An instance whose stream ends in an event the runner did not write
 * (a client appended to it) is left alone, logged; the others go on. */
static void t_foreign_progress(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-foreign"));
    REQUIRE(w);
    make_def(w, 0);
    factum_event_data e = harness_event("SagaStarted", "{\"status\":\"completed\"}");
    CHECK_RC(factum_append(w->s, "saga-orders-zz", FACTUM_ANY, &e, 1, NULL), 0);
    factum_saga *sg = open_manual(w);
    REQUIRE(sg);
    CHECK(place(w, "zz"));
    CHECK(place(w, "fine"));
    drain(sg, w, 50);
    factum_saga_instance in;
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "fine", &in), 0);
    CHECK(in.status == FACTUM_SAGA_COMPLETED);
    CHECK_RC(factum_saga_instance_get(w->s, "orders", "zz", &in), FACTUM_ECORRUPT);
    factum_saga_stats st;
    factum_saga_get_stats(sg, &st);
    CHECK_EQ_U64(st.ignored, 1);
    factum_saga_close(sg);
    world_free(w);
}

static void t_bad_definitions(void)
{
    char d[512];
    world *w = world_new(harness_tmpdir(d, sizeof d, "saga-bad"));
    REQUIRE(w);
    factum_saga *sg = NULL;
    const char *const dup[] = {"Charged", "Charged"};
    const char *const empty[] = {""};
    for (int k = 0; k < 9; k++) {
        make_def(w, 0);
        switch (k) {
        case 0:
            def.name = "has space";
            break;
        case 1:
            def.n_steps = 0;
            break;
        case 2:
            def.n_start = 0;
            break;
        case 3:
            steps[1].done_types = dup;
            steps[1].n_done = 2;
            break;
        case 4:
            steps[1].failed_types = done1;
            break; /* done and failed alike */
        case 5:
            steps[0].done_types = start_t;
            break; /* a start type as a step's */
        case 6:
            steps[2].run = NULL;
            steps[2].n_done = 0;
            break;
        case 7:
            steps[0].timeout_ms = 10;
            steps[0].timeout_stream = "$scheduled";
            break;
        case 8:
            steps[1].compensated_types = empty;
            break;
        }
        CHECK_RC(factum_saga_open(w->s, &def, NULL, &sg), FACTUM_EINVAL);
    }
    CHECK_EQ_U64(head(w), 0); /* nothing written */
    world_free(w);
}

int main(void)
{
    RUN(t_completes);
    RUN(t_compensation_order);
    RUN(t_rejected);
    RUN(t_command_errors);
    RUN(t_timeout);
    RUN(t_timeout_cancelled);
    RUN(t_replay);
    RUN(t_two_runners);
    RUN(t_ignored);
    RUN(t_foreign_progress);
    RUN(t_bad_definitions);
    return harness_done();
}
