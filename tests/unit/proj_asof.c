/* Unit tests of a JavaScript projection's state as of a position
 * (factum_projection_state_asof, src/proj/asof.c, PAS-1..4): projections
 * without partitions, with foreachStream, with partitionBy and with
 * biState over a random sequence of events (seeded, with the wall clock
 * stepped back between appends), asked as of many random positions and
 * times and compared with a model computed here, with and without their
 * checkpoints as starting points; a replay never appends (the emitted
 * stream and the checkpoints are unchanged); a query changed without a
 * reset makes the checkpoints unusable (PAS-3); a position past the end, an
 * unknown projection, a system projection, a faulting handler, an emit
 * with emit disabled, the time limit and the events limit are errors with
 * a message. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "harness.h"

static char dir[512];

#define N_EVENTS 400
#define N_ACCT   5
#define N_KEYS   3

typedef struct model_ev {
    uint64_t position;
    int64_t ts;
    int acct;   /* -1: a stream of another category */
    int key;    /* partitionBy's key */
    int amount; /* > 0 deposit, < 0 withdrawal */
} model_ev;

static model_ev evs[N_EVENTS];

static const char TOTAL[] = "fromCategory('acct').when({\n"
                            "  $init: () => ({n: 0, sum: 0}),\n"
                            "  Deposited: (s, e) => { s.n++; s.sum += e.body.amount; return s; },\n"
                            "  Withdrawn: (s, e) => { s.n++; s.sum -= e.body.amount;\n"
                            "    emit('withdrawals', 'Seen', {amount: e.body.amount}); return s; },\n"
                            "}).transformBy(s => ({total: s.sum}));\n";
static const char PER[] = "fromCategory('acct').foreachStream().when({\n"
                          "  $init: () => ({bal: 0}),\n"
                          "  Deposited: (s, e) => { s.bal += e.body.amount; return s; },\n"
                          "  Withdrawn: (s, e) => { s.bal -= e.body.amount; return s; },\n"
                          "}).outputState();\n";
static const char BYK[] = "fromAll().partitionBy(e => e.body.k).when({\n"
                          "  $init: () => ({c: 0}),\n"
                          "  $any: (s, e) => { s.c++; return s; },\n"
                          "});\n";
static const char BI[] =
    "options({biState: true});\n"
    "fromCategory('acct').foreachStream().when({\n"
    "  $init: () => ({m: 0}),\n"
    "  $initShared: () => ({all: 0}),\n"
    "  Deposited: (st, e) => { st[0].m += e.body.amount; st[1].all += e.body.amount; return st; },\n"
    "  Withdrawn: (st, e) => { st[0].m -= e.body.amount; st[1].all -= e.body.amount; return st; },\n"
    "});\n";

static factum_store *open_store(void)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    harness_tmpdir(dir, sizeof dir, "proj_asof");
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static factum_projections *open_mgr(factum_store *s)
{
    factum_projections_options o;
    factum_projections_options_init(&o);
    o.batch_events = 16; /* many checkpoints */
    o.js_ms_per_event = 1000;
    factum_projections *m = NULL;
    int rc = factum_projections_open(s, &o, &m);
    if (rc) fprintf(stderr, "projections: %s\n", factum_strerror(rc));
    return m;
}

static int create(factum_projections *m, const char *name, const char *query, int emit)
{
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = name;
    d.query = query;
    d.emit_enabled = emit;
    return factum_projection_create(m, &d, NULL, NULL);
}

static uint64_t append_json(factum_store *s, const char *stream, const char *type, const char *data)
{
    factum_event_data ev = harness_event(type, data);
    factum_append_result res;
    int rc = factum_append(s, stream, FACTUM_ANY, &ev, 1, &res);
    if (rc) {
        fprintf(stderr, "append: %s\n", factum_strerror(rc));
        return 0;
    }
    return res.last_position;
}

static uint64_t stream_count(factum_store *s, const char *stream)
{
    factum_stream_info info;
    if (factum_stream_get_info(s, stream, &info)) return 0;
    return (uint64_t)(info.last_version + 1);
}

/* The model's answers as of position p. */
static void model(uint64_t p, const char *proj, const char *part, char *state, char *result, size_t n)
{
    long sum = 0, cnt = 0, all = 0;
    int seen_all = 0;
    for (int i = 0; i < N_EVENTS && evs[i].position && evs[i].position <= p; i++) {
        const model_ev *e = &evs[i];
        if (!strcmp(proj, "total") && e->acct >= 0) cnt++, sum += e->amount;
        if (!strcmp(proj, "per") || !strcmp(proj, "bi")) {
            if (e->acct < 0) continue;
            char name[32];
            snprintf(name, sizeof name, "acct-%d", e->acct);
            all += e->amount, seen_all = 1;
            if (!strcmp(name, part)) cnt++, sum += e->amount;
        }
        if (!strcmp(proj, "byk")) {
            char k[8];
            snprintf(k, sizeof k, "k%d", e->key);
            if (!strcmp(k, part)) cnt++;
        }
    }
    state[0] = result[0] = 0;
    if (!strcmp(proj, "total") && cnt) {
        snprintf(state, n, "{\"n\":%ld,\"sum\":%ld}", cnt, sum);
        snprintf(result, n, "{\"total\":%ld}", sum);
    }
    if (!strcmp(proj, "per") && cnt) {
        snprintf(state, n, "{\"bal\":%ld}", sum);
        snprintf(result, n, "{\"bal\":%ld}", sum);
    }
    if (!strcmp(proj, "byk") && cnt) snprintf(state, n, "{\"c\":%ld}", cnt);
    if (!strcmp(proj, "bi")) {
        if (!part[0] && seen_all) snprintf(state, n, "{\"all\":%ld}", all);
        if (part[0] && cnt) snprintf(state, n, "{\"m\":%ld}", sum);
    }
}

static int asked = 0, from_checkpoint = 0;

/* Ask proj/part as of p (with or without checkpoints) and compare. */
static void check_at(factum_projections *m, const char *proj, const char *part, uint64_t p, int ckpt)
{
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.use_checkpoints = ckpt;
    factum_projection_asof a;
    char err[512], want_s[128], want_r[128];
    int rc = factum_projection_state_asof(m, proj, part, p, &o, &a, err, sizeof err);
    CHECK_RC(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s/%s at %" PRIu64 ": %s\n", proj, part, p, err);
        return;
    }
    asked++;
    if (a.from) from_checkpoint++;
    CHECK(ckpt || a.from == 0);
    CHECK(a.from <= p);
    CHECK_EQ_U64(a.position, p);
    model(p, proj, part, want_s, want_r, sizeof want_s);
    if (strcmp(a.state, want_s) || strcmp(a.result, want_r)) {
        fprintf(stderr, "  %s/%s at %" PRIu64 " (from %" PRIu64 "): state '%s' result '%s', want '%s' '%s'\n",
                proj, part, p, a.from, a.state, a.result, want_s, want_r);
        CHECK(0);
    }
    factum_projection_asof_free(&a);
}

/* The test's projections over the random events (PAS-1, PAS-3). */
static void t_model(void)
{
    uint64_t seed = harness_seed("proj_asof");
    h_rng rng = {seed};
    factum_store *s = open_store();
    REQUIRE(s);
    factum_projections *m = open_mgr(s);
    REQUIRE(m);
    CHECK_RC(create(m, "total", TOTAL, 1), 0);
    CHECK_RC(create(m, "per", PER, 0), 0);
    CHECK_RC(create(m, "byk", BYK, 0), 0);
    CHECK_RC(create(m, "bi", BI, 0), 0);
    for (int i = 0; i < N_EVENTS; i++) {
        model_ev *e = &evs[i];
        e->acct = h_below(&rng, 8) == 0 ? -1 : (int)h_below(&rng, N_ACCT);
        e->key = (int)h_below(&rng, N_KEYS);
        int amt = 1 + (int)h_below(&rng, 100);
        e->amount = h_below(&rng, 3) == 0 ? -amt : amt;
        char stream[32], data[96];
        if (e->acct >= 0)
            snprintf(stream, sizeof stream, "acct-%d", e->acct);
        else
            snprintf(stream, sizeof stream, "other-%d", (int)h_below(&rng, 3));
        snprintf(data, sizeof data, "{\"amount\":%d,\"k\":\"k%d\"}", amt, e->key);
        if (h_below(&rng, 10) == 0) base_clock_step_for_tests(-(int64_t)h_below(&rng, 2000000000)); /* back */
        e->position = append_json(s, stream, e->amount > 0 ? "Deposited" : "Withdrawn", data);
        REQUIRE(e->position);
        factum_event ev;
        REQUIRE(factum_read_position(s, e->position, &ev) == 0);
        e->ts = ev.timestamp_ns;
        if (i % 50 == 49) usleep(20000); /* let the projections checkpoint along the way */
    }
    uint64_t last = evs[N_EVENTS - 1].position;
    const char *names[] = {"total", "per", "byk", "bi"};
    for (int i = 0; i < 4; i++)
        CHECK_RC(factum_projection_wait(m, names[i], last, 30000), 1);
    /* The live states agree with the model (the model is right). */
    char want_s[128], want_r[128];
    char *json = NULL;
    size_t len;
    model(last, "total", "", want_s, want_r, sizeof want_s);
    CHECK_RC(factum_projection_get_state(m, "total", NULL, &json, &len), 0);
    if (json && strcmp(json, want_s)) {
        fprintf(stderr, "  live total '%s' want '%s'\n", json, want_s);
        CHECK(0);
    }
    free(json);
    /* The projections stopped (a replay does not need them to run; with a
     * batch of 16 they go on writing checkpoints a while after the last
     * event, reading each other's), so that anything appended from here on
     * would be the replays'. */
    for (int i = 0; i < 4; i++)
        CHECK_RC(factum_projection_disable(m, names[i], NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        factum_projection_status st;
        for (int k = 0; k < 3000; k++) {
            if (factum_projection_get_status(m, names[i], &st) || st.state == FACTUM_PROJECTION_STOPPED)
                break;
            usleep(10000);
        }
        CHECK(st.state == FACTUM_PROJECTION_STOPPED);
    }
    uint64_t emitted = stream_count(s, "withdrawals");
    uint64_t ckpts = stream_count(s, "$projections-total-checkpoint");
    uint64_t head;
    {
        factum_stats st;
        factum_store_get_stats(s, &st);
        head = st.last_position;
    }
    /* Random positions (some before the first event), each projection. */
    for (int round = 0; round < 12; round++) {
        uint64_t p = round == 0 ? last : round == 1 ? 1 : 1 + h_below(&rng, last);
        int ckpt = round % 3 != 2;
        char part[32];
        check_at(m, "total", "", p, ckpt);
        snprintf(part, sizeof part, "acct-%d", (int)h_below(&rng, N_ACCT));
        check_at(m, "per", part, p, ckpt);
        snprintf(part, sizeof part, "k%d", (int)h_below(&rng, N_KEYS));
        check_at(m, "byk", part, p, ckpt);
        snprintf(part, sizeof part, "acct-%d", (int)h_below(&rng, N_ACCT));
        check_at(m, "bi", part, p, ckpt);
        check_at(m, "bi", "", p, ckpt);
    }
    /* By time: the position of a random event's commit time (the clock was
     * stepped back: the times are still in order). The projections' own
     * appends may share the event's group commit, so its stamp: the
     * position is the event's or one of theirs after it, before the next
     * event. */
    for (int round = 0; round < 6; round++) {
        int k = (int)h_below(&rng, N_EVENTS);
        uint64_t p = 0;
        CHECK_RC(factum_position_at(s, evs[k].ts, &p), 0);
        CHECK(p >= evs[k].position && (k == N_EVENTS - 1 || p < evs[k + 1].position));
        check_at(m, "total", "", p, 1);
    }
    printf("  %d answers, %d from a checkpoint\n", asked, from_checkpoint);
    CHECK(from_checkpoint > 0);
    /* PAS-2: nothing was appended by the replays. */
    CHECK_EQ_U64(stream_count(s, "withdrawals"), emitted);
    CHECK_EQ_U64(stream_count(s, "$projections-total-checkpoint"), ckpts);
    {
        factum_stats st;
        factum_store_get_stats(s, &st);
        CHECK_EQ_U64(st.last_position, head);
    }
    /* PAS-3: a projection created after the events: its checkpoints are
     * committed after the positions they stand for, and still used. */
    static const char LATE[] = "fromCategory('acct').when({\n"
                               "  $init: () => ({n: 0, sum: 0}),\n"
                               "  Deposited: (s, e) => { s.n++; s.sum += e.body.amount; return s; },\n"
                               "  Withdrawn: (s, e) => { s.n++; s.sum -= e.body.amount; return s; },\n"
                               "}).transformBy(s => ({total: s.sum}));\n";
    CHECK_RC(create(m, "late", LATE, 0), 0);
    {
        factum_stats st;
        factum_store_get_stats(s, &st);
        CHECK_RC(factum_projection_wait(m, "late", st.last_position, 30000), 1);
    }
    for (int round = 0; round < 4; round++) {
        /* after the first checkpoints (a batch is 16 events) */
        uint64_t p = evs[N_EVENTS / 8 + h_below(&rng, N_EVENTS - N_EVENTS / 8)].position;
        factum_projection_asof a;
        char err[512];
        CHECK_RC(factum_projection_state_asof(m, "late", NULL, p, NULL, &a, err, sizeof err), 0);
        model(p, "total", "", want_s, want_r, sizeof want_s);
        CHECK(a.from > 0 && a.from <= p);
        if (!a.state || strcmp(a.state, want_s) || strcmp(a.result, want_r)) {
            fprintf(stderr, "  late at %" PRIu64 " (from %" PRIu64 "): '%s' '%s' want '%s' '%s'\n", p, a.from,
                    a.state ? a.state : "", a.result ? a.result : "", want_s, want_r);
            CHECK(0);
        }
        factum_projection_asof_free(&a);
    }
    /* PAS-3: an update without a reset: the checkpoints hold a state of the
     * old query, so the replay starts at the beginning. */
    static const char TOTAL2[] = "fromCategory('acct').when({\n"
                                 "  $init: () => ({n: 0, sum: 0}),\n"
                                 "  $any: (s, e) => { s.n++; s.sum += 1; return s; },\n"
                                 "});\n";
    CHECK_RC(factum_projection_update(m, "total", TOTAL2, -1, NULL, NULL), 0);
    factum_projection_asof a;
    char err[512];
    uint64_t p = evs[N_EVENTS / 2].position;
    CHECK_RC(factum_projection_state_asof(m, "total", NULL, p, NULL, &a, err, sizeof err), 0);
    CHECK_EQ_U64(a.from, 0);
    long cnt = 0;
    for (int i = 0; i < N_EVENTS && evs[i].position <= p; i++)
        cnt += evs[i].acct >= 0;
    snprintf(want_s, sizeof want_s, "{\"n\":%ld,\"sum\":%ld}", cnt, cnt);
    if (!a.state || strcmp(a.state, want_s)) {
        fprintf(stderr, "  updated: '%s' want '%s'\n", a.state ? a.state : "(null)", want_s);
        CHECK(0);
    }
    factum_projection_asof_free(&a);
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static int always(void *ctx)
{
    (void)ctx;
    return 1;
}

/* Errors, each with its message; a stopped projection can be asked. */
static void t_errors(void)
{
    factum_store *s = open_store();
    REQUIRE(s);
    factum_projections *m = open_mgr(s);
    REQUIRE(m);
    static const char BAD[] =
        "fromCategory('acct').when({\n"
        "  $init: () => ({n: 0}),\n"
        "  Deposited: (s, e) => { if (e.body.amount === 13) throw new Error('unlucky'); s.n++; return s; },\n"
        "});\n";
    static const char SLOW[] =
        "fromCategory('acct').when({\n"
        "  $init: () => ({n: 0}),\n"
        "  Deposited: (s, e) => { const t = Date.now(); while (Date.now() - t < 3) {} s.n++; return s; },\n"
        "});\n";
    static const char EMITS[] = "fromCategory('acct').when({\n"
                                "  Deposited: (s, e) => { emit('out', 'X', {}); return s; },\n"
                                "});\n";
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = "bad", d.query = BAD, d.enabled = 0;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    d.name = "slow", d.query = SLOW;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    d.name = "emits", d.query = EMITS;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    d.name = "broken", d.query = "fromAll().when({";
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    uint64_t p13 = 0;
    for (int i = 0; i < 300; i++) {
        char data[64];
        snprintf(data, sizeof data, "{\"amount\":%d}", i == 150 ? 13 : 1);
        uint64_t p = append_json(s, "acct-1", "Deposited", data);
        if (i == 150) p13 = p;
    }
    factum_projection_asof a;
    char err[512];
    /* A stopped projection, before the faulting event: fine. */
    CHECK_RC(factum_projection_state_asof(m, "bad", NULL, p13 - 1, NULL, &a, err, sizeof err), 0);
    CHECK(a.state && !strcmp(a.state, "{\"n\":150}"));
    factum_projection_asof_free(&a);
    /* At it: the handler's error, naming the positions. */
    CHECK_RC(factum_projection_state_asof(m, "bad", NULL, p13, NULL, &a, err, sizeof err), FACTUM_EFAULTED);
    printf("  faulting handler: %s\n", err);
    CHECK(strstr(err, "unlucky") != NULL);
    CHECK(a.state == NULL);
    /* Past the end. */
    CHECK_RC(factum_projection_state_asof(m, "bad", NULL, p13 + 100000, NULL, &a, err, sizeof err),
             FACTUM_EINVAL);
    printf("  past the end: %s\n", err);
    CHECK(strstr(err, "past the end") != NULL);
    /* Unknown, system. */
    CHECK_RC(factum_projection_state_asof(m, "nope", NULL, FACTUM_END, NULL, &a, err, sizeof err),
             FACTUM_ENOTFOUND);
    CHECK_RC(factum_projection_state_asof(m, "$by_category", NULL, FACTUM_END, NULL, &a, err, sizeof err),
             FACTUM_EINVAL);
    printf("  system: %s\n", err);
    CHECK(strstr(err, "system projection") != NULL);
    /* A query that does not compile. */
    CHECK_RC(factum_projection_state_asof(m, "broken", NULL, FACTUM_END, NULL, &a, err, sizeof err),
             FACTUM_EINVAL);
    printf("  broken: %s\n", err);
    /* Emit with emit disabled: the live projection would fault there. */
    CHECK_RC(factum_projection_state_asof(m, "emits", NULL, FACTUM_END, NULL, &a, err, sizeof err),
             FACTUM_EFAULTED);
    printf("  emit disabled: %s\n", err);
    CHECK(strstr(err, "emit disabled") != NULL);
    CHECK_EQ_U64(stream_count(s, "out"), 0);
    /* The time limit (3 ms an event, 300 events, 100 ms allowed). */
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.time_limit_ms = 100;
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, FACTUM_END, &o, &a, err, sizeof err),
             FACTUM_ETIMEDOUT);
    printf("  time limit: %s\n", err);
    CHECK(strstr(err, "time limit") != NULL);
    /* Cancelled by the caller (a client that left). */
    factum_projection_asof_options_init(&o);
    o.cancelled = always;
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, FACTUM_END, &o, &a, err, sizeof err), -ECANCELED);
    printf("  cancelled: %s\n", err);
    /* The events limit: refused before any work. */
    factum_projection_asof_options_init(&o);
    o.max_events = 10;
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, FACTUM_END, &o, &a, err, sizeof err),
             FACTUM_ETOOBIG);
    printf("  events limit: %s\n", err);
    CHECK(strstr(err, "max_events") != NULL);
    /* Position 0: nothing handled yet. */
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, 0, NULL, &a, err, sizeof err), 0);
    CHECK(a.state && !a.state[0] && a.events_read == 0);
    factum_projection_asof_free(&a);
    /* An upcaster that fails on an event the replay reads: as the live
     * projection would fault there (UPC-5), the replay fails naming it. */
    static const char UP[] = "{\"eventType\":\"Odd\",\"fromVersion\":1,\"toVersion\":2,\"steps\":["
                             "{\"op\":\"move\",\"from\":\"a\",\"to\":\"b.c\"}]}";
    char uerr[256];
    CHECK_RC(factum_upcaster_set(s, UP, strlen(UP), uerr, sizeof uerr), 0);
    uint64_t p_odd = append_json(s, "acct-1", "Odd", "[1,2]"); /* not an object: the move fails */
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, p_odd - 1, NULL, &a, err, sizeof err), 0);
    factum_projection_asof_free(&a);
    CHECK_RC(factum_projection_state_asof(m, "slow", NULL, p_odd, NULL, &a, err, sizeof err),
             FACTUM_EFAULTED);
    printf("  upcaster: %s\n", err);
    CHECK(strstr(err, "not a JSON object") != NULL);
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

typedef struct replay_arg {
    factum_projections *m;
    int rc;
    char err[512];
    uint64_t ms;
} replay_arg;

static void *replay_thread(void *arg)
{
    replay_arg *x = arg;
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.time_limit_ms = 600000;
    factum_projection_asof a;
    uint64_t t0 = base_mono_ns_test();
    x->rc = factum_projection_state_asof(x->m, "slow", NULL, FACTUM_END, &o, &a, x->err, sizeof x->err);
    x->ms = (base_mono_ns_test() - t0) / 1000000u;
    if (!x->rc) factum_projection_asof_free(&a);
    return NULL;
}

/* PAS-4: closing the manager ends a replay at its next batch (and waits
 * for it), instead of letting it run its time. */
static void t_close_during_replay(void)
{
    factum_store *s = open_store();
    REQUIRE(s);
    factum_projections *m = open_mgr(s);
    REQUIRE(m);
    static const char SLOW[] =
        "fromCategory('acct').when({\n"
        "  $init: () => ({n: 0}),\n"
        "  Deposited: (s, e) => { const t = Date.now(); while (Date.now() - t < 5) {} s.n++; return s; },\n"
        "});\n";
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = "slow", d.query = SLOW, d.enabled = 0;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    for (int i = 0; i < 4000; i++)
        append_json(s, "acct-1", "Deposited", "{\"amount\":1}"); /* 20 s of handlers */
    replay_arg x = {.m = m};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, replay_thread, &x) == 0);
    usleep(1500000); /* well into it */
    uint64_t t0 = base_mono_ns_test();
    factum_projections_close(m);
    uint64_t close_ms = (base_mono_ns_test() - t0) / 1000000u;
    pthread_join(th, NULL);
    printf("  closed in %" PRIu64 " ms, the replay ended after %" PRIu64 " ms: %s\n", close_ms, x.ms, x.err);
    CHECK_RC(x.rc, FACTUM_ECLOSED);
    CHECK(close_ms < 10000);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set: the JavaScript worker was not built (skipped)\n");
        return 77;
    }
    RUN(t_model);
    RUN(t_errors);
    RUN(t_close_during_replay);
    return harness_done();
}
