/* Unit tests of JavaScript projections in the projection manager
 * (src/proj/jsrun.c over the worker of jsproc.h): state and result kept as
 * KurrentDB keeps them, catching up after disable/enable, reset (state
 * recomputed, not doubled), restart (continued, not doubled), partitions,
 * emit and linkTo with their metadata, emit refused when not enabled, a
 * script that does not compile, a runaway script faulting only its own
 * projection, one-time mode, delete, existing names, the state kept by a
 * checkpoint whose stretch holds none of the sources. The worker's own
 * behaviour (the API, limits) is tested in tests/unit/jsproc.c. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proj/proj.h"

static char dir[512];

static factum_store *open_store(int fresh)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    if (fresh) harness_tmpdir(dir, sizeof dir, "proj_js");
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static factum_projections *open_mgr(factum_store *s)
{
    factum_projections_options o;
    factum_projections_options_init(&o);
    o.batch_events = 64; /* many batches */
    o.js_ms_per_event = 200;
    factum_projections *m = NULL;
    int rc = factum_projections_open(s, &o, &m);
    if (rc) fprintf(stderr, "projections: %s\n", factum_strerror(rc));
    return m;
}

static uint64_t append_ev(factum_store *s, const char *stream, const char *type, const char *data,
                          const char *meta)
{
    factum_event_data ev = {.type = type,
                            .flags = FACTUM_EVENT_JSON | (meta ? FACTUM_EVENT_META_JSON : 0),
                            .data = data,
                            .data_len = strlen(data),
                            .metadata = meta,
                            .metadata_len = meta ? strlen(meta) : 0};
    factum_uuid_v4(ev.id);
    factum_append_result res;
    int rc = factum_append(s, stream, FACTUM_ANY, &ev, 1, &res);
    if (rc) {
        fprintf(stderr, "append: %s\n", factum_strerror(rc));
        return 0;
    }
    return res.last_position;
}

static uint64_t last_pos(factum_store *s)
{
    factum_stats st;
    return factum_store_get_stats(s, &st) ? 0 : st.last_position;
}

static int create(factum_projections *m, const char *name, const char *query, int mode, int emit, int track)
{
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = name;
    d.query = query;
    d.mode = mode;
    d.emit_enabled = emit;
    d.track_emitted_streams = track;
    return factum_projection_create(m, &d, NULL, NULL);
}

/* The state of name (partition) equals want (JSON text compared as is:
 * the worker writes JSON.stringify's form). */
static int state_is(factum_projections *m, const char *name, const char *partition, const char *want)
{
    char *json = NULL;
    size_t len = 0;
    int rc = factum_projection_get_state(m, name, partition, &json, &len);
    int ok = !rc && len == strlen(want) && !memcmp(json, want, len);
    if (!ok) fprintf(stderr, "  state of %s/%s: rc %d '%s', want '%s'\n", name, partition ? partition : "", rc,
                     json ? json : "", want);
    free(json);
    return ok;
}

static int result_is(factum_projections *m, const char *name, const char *partition, const char *want)
{
    char *json = NULL;
    size_t len = 0;
    int rc = factum_projection_get_result(m, name, partition, &json, &len);
    int ok = !rc && len == strlen(want) && !memcmp(json, want, len);
    if (!ok) fprintf(stderr, "  result of %s: rc %d '%s', want '%s'\n", name, rc, json ? json : "", want);
    free(json);
    return ok;
}

static int status_state(factum_projections *m, const char *name, char *reason, size_t len)
{
    factum_projection_status st;
    if (factum_projection_get_status(m, name, &st)) return -1;
    if (reason) snprintf(reason, len, "%s", st.reason);
    return st.state;
}

/* Wait until name is FAULTED (or timeout): 1 if it is. */
static int wait_fault(factum_projections *m, const char *name, char *reason, size_t len)
{
    for (int i = 0; i < 1000; i++) {
        if (status_state(m, name, reason, len) == FACTUM_PROJECTION_FAULTED) return 1;
        usleep(10000);
    }
    return 0;
}

static const char COUNT[] =
    "fromAll().when({ $init: function () { return { count: 0, types: {} }; },\n"
    "  $any: function (s, e) { s.count++; s.types[e.eventType] = (s.types[e.eventType] || 0) + 1; return s; }\n"
    "}).outputState();";

static void t_count_restart_reset(void)
{
    factum_store *s = open_store(1);
    CHECK(s != NULL);
    if (!s) return;
    factum_projections *m = open_mgr(s);
    CHECK(m != NULL);
    if (!m) return;
    for (int i = 0; i < 300; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "account-%d", i % 7);
        append_ev(s, stream, i % 3 ? "Deposited" : "Opened", "{\"amount\":1}", NULL);
    }
    CHECK_RC(create(m, "counter", COUNT, FACTUM_PROJECTION_CONTINUOUS, 0, 0), 0);
    CHECK_RC(create(m, "counter", COUNT, FACTUM_PROJECTION_CONTINUOUS, 0, 0), FACTUM_EEXISTS);
    CHECK_RC(factum_projection_wait(m, "counter", last_pos(s), 20000), 1);
    CHECK(state_is(m, "counter", NULL, "{\"count\":300,\"types\":{\"Opened\":100,\"Deposited\":200}}"));
    CHECK(result_is(m, "counter", NULL, "{\"count\":300,\"types\":{\"Opened\":100,\"Deposited\":200}}"));
    /* The result stream has it as its last event, as KurrentDB writes it. */
    factum_event ev;
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "$projections-counter-result", FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL), 0);
    CHECK(n == 1 && !strcmp(ev.type, "Result") &&
          ev.data_len == strlen("{\"count\":300,\"types\":{\"Opened\":100,\"Deposited\":200}}"));

    /* Disabled, it misses nothing: enabling catches up. */
    CHECK_RC(factum_projection_disable(m, "counter", NULL, NULL), 0);
    for (int i = 0; i < 50; i++)
        append_ev(s, "account-1", "Withdrawn", "{}", NULL);
    CHECK(status_state(m, "counter", NULL, 0) == FACTUM_PROJECTION_STOPPED);
    CHECK_RC(factum_projection_enable(m, "counter", NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "counter", last_pos(s), 20000), 1);
    CHECK(state_is(m, "counter", NULL, "{\"count\":350,\"types\":{\"Opened\":100,\"Deposited\":200,\"Withdrawn\":50}}"));

    /* A restart goes on from the checkpoint: nothing counted twice. */
    factum_projections_close(m);
    for (int i = 0; i < 10; i++)
        append_ev(s, "account-2", "Withdrawn", "{}", NULL);
    factum_store_close(s);
    s = open_store(0);
    m = open_mgr(s);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_RC(factum_projection_wait(m, "counter", last_pos(s), 20000), 1);
    CHECK(state_is(m, "counter", NULL, "{\"count\":360,\"types\":{\"Opened\":100,\"Deposited\":200,\"Withdrawn\":60}}"));

    /* Reset: recomputed from the start, not doubled. */
    CHECK_RC(factum_projection_reset(m, "counter", NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "counter", last_pos(s), 20000), 1);
    CHECK(state_is(m, "counter", NULL, "{\"count\":360,\"types\":{\"Opened\":100,\"Deposited\":200,\"Withdrawn\":60}}"));
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "counter", &st), 0);
    CHECK(st.epoch >= 1 && !strcmp(st.handler, "JS") && !st.system);

    /* Delete: only once stopped; then gone, and the name free again. */
    CHECK_RC(factum_projection_delete(m, "counter", FACTUM_PROJECTION_DELETE_STATE_STREAM |
                                                       FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM,
                                      NULL, NULL),
             FACTUM_EBADSTATE);
    CHECK_RC(factum_projection_disable(m, "counter", NULL, NULL), 0);
    CHECK_RC(factum_projection_delete(m, "counter", FACTUM_PROJECTION_DELETE_STATE_STREAM |
                                                       FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM,
                                      NULL, NULL),
             0);
    CHECK(status_state(m, "counter", NULL, 0) == -1);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "$projections-counter-result", &info), 0);
    CHECK(info.status != FACTUM_STREAM_LIVE);
    CHECK_RC(factum_projection_delete(m, "$by_category", 0, NULL, NULL), FACTUM_EINVAL);
    CHECK_RC(create(m, "counter", COUNT, FACTUM_PROJECTION_CONTINUOUS, 0, 0), 0);
    CHECK_RC(factum_projection_wait(m, "counter", last_pos(s), 20000), 1);
    CHECK(state_is(m, "counter", NULL, "{\"count\":360,\"types\":{\"Opened\":100,\"Deposited\":200,\"Withdrawn\":60}}"));
    factum_projections_close(m);
    /* Deleted and created again: the registry says so after a restart too. */
    m = open_mgr(s);
    CHECK(m != NULL && status_state(m, "counter", NULL, 0) >= 0);
    factum_projections_close(m);
    factum_store_close(s);
}

static void t_partitions_and_emit(void)
{
    factum_store *s = open_store(1);
    factum_projections *m = s ? open_mgr(s) : NULL;
    CHECK(m != NULL);
    if (!m) return;
    uint8_t first_id[16] = {0};
    for (int i = 0; i < 40; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "cart-%d", i % 4);
        uint64_t pos = append_ev(s, stream, i % 2 ? "ItemAdded" : "ItemRemoved", "{\"sku\":\"x\"}",
                                 "{\"$correlationId\":\"corr-1\"}");
        if (i == 0) {
            factum_event ev;
            CHECK_RC(factum_read_position(s, pos, &ev), 0);
            memcpy(first_id, ev.id, 16);
        }
    }
    append_ev(s, "other-1", "ItemAdded", "{}", NULL);
    CHECK_RC(create(m, "per-cart",
                    "fromCategory('cart').foreachStream().when({\n"
                    "  $init: () => ({ added: 0, removed: 0 }),\n"
                    "  ItemAdded: (s, e) => { s.added++; return s; },\n"
                    "  ItemRemoved: (s, e) => { s.removed += 1; return s; } });",
                    FACTUM_PROJECTION_CONTINUOUS, 0, 0),
             0);
    CHECK_RC(create(m, "by-sku",
                    "fromCategory('cart').partitionBy(e => e.body.sku).when({\n"
                    "  $init: () => ({ n: 0 }), $any: (s, e) => { s.n++; return s; } });",
                    FACTUM_PROJECTION_CONTINUOUS, 0, 0),
             0);
    CHECK_RC(create(m, "linker",
                    "const target = 'added';\n"
                    "fromCategory('cart').when({ ItemAdded: (s, e) => {\n"
                    "  linkTo(`${target}-items`, e);\n"
                    "  emit('audit', 'Seen', { stream: e.streamId, n: e.sequenceNumber }, { origin: 'test' }); } });",
                    FACTUM_PROJECTION_CONTINUOUS, 1, 1),
             0);
    CHECK_RC(create(m, "no-emit", "fromAll().when({ $any: (s, e) => { emit('x-out', 'T', {}); } });",
                    FACTUM_PROJECTION_CONTINUOUS, 0, 0),
             0);
    uint64_t head = last_pos(s);
    CHECK_RC(factum_projection_wait(m, "per-cart", head, 20000), 1);
    CHECK_RC(factum_projection_wait(m, "by-sku", head, 20000), 1);
    CHECK_RC(factum_projection_wait(m, "linker", head, 20000), 1);
    CHECK(state_is(m, "per-cart", "cart-0", "{\"added\":0,\"removed\":10}"));
    CHECK(state_is(m, "per-cart", "cart-1", "{\"added\":10,\"removed\":0}"));
    CHECK(state_is(m, "by-sku", "x", "{\"n\":40}"));
    CHECK(state_is(m, "per-cart", "other-1", ""));
    factum_projection_status pst;
    CHECK_RC(factum_projection_get_status(m, "per-cart", &pst), 0);
    CHECK(pst.partitions_cached == 4); /* cart-0 .. cart-3, kept by the worker */
    /* linkTo: 20 links to the ItemAdded events, resolvable. */
    factum_event evs[32];
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "added-items", 0, FACTUM_FORWARD, evs, 32, &n, NULL), 0);
    CHECK(n == 20);
    if (n) {
        CHECK(!strcmp(evs[0].type, "$>") && evs[0].data_len == strlen("0@cart-1") &&
              !memcmp(evs[0].data, "0@cart-1", 8));
        factum_event t;
        CHECK_RC(factum_resolve_link(s, &evs[0], &t), 0);
        CHECK(!strcmp(t.type, "ItemAdded") && t.stream_len == 6 && !memcmp(t.stream, "cart-1", 6));
    }
    /* emit: the body, and metadata with $causedBy, the source's
     * $correlationId and the script's own keys. */
    CHECK_RC(factum_read_stream(s, "audit", 0, FACTUM_FORWARD, evs, 32, &n, NULL), 0);
    CHECK(n == 20);
    if (n) {
        CHECK(!strcmp(evs[0].type, "Seen"));
        CHECK(evs[0].data_len && memmem(evs[0].data, evs[0].data_len, "\"stream\":\"cart-1\"", 17));
        const char *md = (const char *)evs[0].metadata;
        size_t ml = evs[0].metadata_len;
        CHECK(memmem(md, ml, "\"origin\":\"test\"", 15) != NULL);
        CHECK(memmem(md, ml, "\"$correlationId\":\"corr-1\"", 25) != NULL);
        CHECK(memmem(md, ml, "\"$causedBy\":\"", 13) != NULL);
    }
    /* Tracked emitted streams. */
    CHECK_RC(factum_read_stream(s, "$projections-linker-emittedstreams", 0, FACTUM_FORWARD, evs, 32, &n, NULL), 0);
    CHECK(n == 2);
    /* emit when not enabled faults that projection with the reason. */
    char reason[256];
    CHECK(wait_fault(m, "no-emit", reason, sizeof reason));
    CHECK(strstr(reason, "emit") != NULL);
    /* Restarted, the partitioned states go on from their checkpoints. */
    factum_projections_close(m);
    for (int i = 0; i < 4; i++)
        append_ev(s, "cart-1", "ItemAdded", "{\"sku\":\"x\"}", NULL);
    m = open_mgr(s);
    CHECK(m != NULL);
    if (!m) return;
    head = last_pos(s);
    CHECK_RC(factum_projection_wait(m, "per-cart", head, 20000), 1);
    CHECK_RC(factum_projection_wait(m, "by-sku", head, 20000), 1);
    CHECK_RC(factum_projection_wait(m, "linker", head, 20000), 1);
    CHECK(state_is(m, "per-cart", "cart-1", "{\"added\":14,\"removed\":0}"));
    CHECK(state_is(m, "by-sku", "x", "{\"n\":44}"));
    CHECK_RC(factum_read_stream(s, "added-items", 0, FACTUM_FORWARD, evs, 32, &n, NULL), 0);
    CHECK(n == 24);
    factum_projections_close(m);
    factum_store_close(s);
}

static void t_faults_isolated(void)
{
    factum_store *s = open_store(1);
    factum_projections *m = s ? open_mgr(s) : NULL;
    CHECK(m != NULL);
    if (!m) return;
    for (int i = 0; i < 20; i++)
        append_ev(s, "loop-1", "Tick", "{}", NULL);
    CHECK_RC(create(m, "bad-syntax", "fromAll().when({ $any: function (s, e) { return s; }", FACTUM_PROJECTION_CONTINUOUS,
                    0, 0),
             0);
    CHECK_RC(create(m, "spin", "fromAll().when({ Tick: function (s, e) { for (;;) {} } });",
                    FACTUM_PROJECTION_CONTINUOUS, 0, 0),
             0);
    CHECK_RC(create(m, "throws-init", "fromAll().when({ $init: () => { throw new Error('no state today'); } });",
                    FACTUM_PROJECTION_CONTINUOUS, 0, 0),
             0);
    CHECK_RC(create(m, "fine", COUNT, FACTUM_PROJECTION_CONTINUOUS, 0, 0), 0);
    char reason[256];
    CHECK(wait_fault(m, "bad-syntax", reason, sizeof reason));
    CHECK(reason[0] != 0);
    CHECK(wait_fault(m, "spin", reason, sizeof reason));
    CHECK(strstr(reason, "timed out") != NULL || strstr(reason, "time") != NULL);
    CHECK(wait_fault(m, "throws-init", reason, sizeof reason));
    CHECK(strstr(reason, "no state today") != NULL);
    /* The others' faults cost the good one nothing. */
    CHECK_RC(factum_projection_wait(m, "fine", last_pos(s), 20000), 1);
    CHECK(state_is(m, "fine", NULL, "{\"count\":20,\"types\":{\"Tick\":20}}"));
    /* A fixed script (update) runs from its checkpoint. */
    CHECK_RC(factum_projection_update(m, "spin", "fromAll().when({ Tick: (s, e) => s });", -1, NULL, NULL), 0);
    CHECK_RC(factum_projection_enable(m, "spin", NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "spin", last_pos(s), 20000), 1);
    CHECK(status_state(m, "spin", NULL, 0) == FACTUM_PROJECTION_RUNNING);
    factum_projections_close(m);
    factum_store_close(s);
}

/* A checkpoint written for a stretch of the log without any of its
 * source events (events of other streams only: a batch that fills up, or
 * a quiet stretch at the head) carries the state all the same: the
 * state read back and the one a restart goes on from stay the last one
 * (PRJ-1, PRJ-3). It once carried nothing: the state read as {} and a
 * restart began again from $init. */
static void t_checkpoint_without_sources(void)
{
    factum_store *s = open_store(1);
    factum_projections *m = s ? open_mgr(s) : NULL;
    CHECK(m != NULL);
    if (!m) return;
    static const char Q[] =
        "fromStream('src').when({ $init: () => ({ n: 0 }), $any: (s, e) => { s.n++; return s; } })"
        ".outputState();";
    for (int i = 0; i < 3; i++)
        append_ev(s, "src", "A", "{}", NULL);
    CHECK_RC(create(m, "quiet", Q, FACTUM_PROJECTION_CONTINUOUS, 0, 0), 0);
    CHECK_RC(factum_projection_wait(m, "quiet", last_pos(s), 20000), 1);
    CHECK(state_is(m, "quiet", NULL, "{\"n\":3}"));
    for (int i = 0; i < 300; i++) /* past batch_events (64): checkpoints with no source in their stretch */
        append_ev(s, "other", "B", "{}", NULL);
    CHECK_RC(factum_projection_wait(m, "quiet", last_pos(s), 20000), 1);
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "quiet", &st), 0);
    CHECK(st.checkpoint > 200); /* such a checkpoint was written */
    CHECK(state_is(m, "quiet", NULL, "{\"n\":3}"));
    CHECK(result_is(m, "quiet", NULL, "{\"n\":3}"));
    factum_projections_close(m);
    m = open_mgr(s);
    CHECK(m != NULL);
    if (!m) return;
    append_ev(s, "src", "A", "{}", NULL);
    CHECK_RC(factum_projection_wait(m, "quiet", last_pos(s), 20000), 1);
    CHECK(state_is(m, "quiet", NULL, "{\"n\":4}"));
    factum_projections_close(m);
    factum_store_close(s);
}

static void t_one_time(void)
{
    factum_store *s = open_store(1);
    factum_projections *m = s ? open_mgr(s) : NULL;
    CHECK(m != NULL);
    if (!m) return;
    for (int i = 0; i < 30; i++)
        append_ev(s, "job-1", "Done", "{}", NULL);
    CHECK_RC(create(m, "once", COUNT, FACTUM_PROJECTION_ONE_TIME, 0, 0), 0);
    int st = -1;
    for (int i = 0; i < 1000 && (st = status_state(m, "once", NULL, 0)) != FACTUM_PROJECTION_COMPLETED; i++)
        usleep(10000);
    CHECK(st == FACTUM_PROJECTION_COMPLETED);
    CHECK(state_is(m, "once", NULL, "{\"count\":30,\"types\":{\"Done\":30}}"));
    factum_projections_close(m);
    factum_store_close(s);
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set: the JavaScript worker was not built (skipped)\n");
        return 77;
    }
    RUN(t_count_restart_reset);
    RUN(t_partitions_and_emit);
    RUN(t_faults_isolated);
    RUN(t_one_time);
    RUN(t_checkpoint_without_sources);
    return harness_done();
}
