/*
 * jsproc.c - JavaScript projections through their engine (src/jshost/jsproc.c
 * driving the worker factum-js, src/js): KurrentDB's projection API from
 * real scripts (sources, options, handlers, partitions, biState, outputs,
 * results, the event object), the NEED protocol, states saved and loaded
 * again, and isolation: every way a script or the worker can fail faults
 * its own engine with a reason while another engine goes on (JSP-1..5).
 *
 * The worker's read-model mode (OPEN_RM, src/js/rmapi.js) is tested at the
 * end: its definition, the statements and failures of a batch, the heap
 * limit ending it after a partial DONE, misuse, and a hostile worker's
 * malformed answers (this program playing the worker). Read models through it:
 * tests/unit/readmodel_js.c.
 *
 * The worker is found through FACTUM_JS_WORKER (tests/CMakeLists.txt sets
 * it); without one the test is skipped (exit 77).
 */
#include <signal.h>
#include <sys/wait.h>

#include "harness.h"
#include "jshost/jsproc.h"
#include "jshost/jsproto.h"

/* ---- helpers ------------------------------------------------------------ */

static char logbuf[8192];
static size_t loglen;
static int kill_pid, kill_sig; /* sent when the script logs "busy" (t_worker_dies) */

static void on_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx;
    if (kill_sig && len == 4 && !memcmp(msg, "busy", 4)) {
        kill(kill_pid, kill_sig);
        kill_sig = 0;
    }
    if (loglen + len + 1 < sizeof logbuf) {
        memcpy(logbuf + loglen, msg, len);
        loglen += len;
        logbuf[loglen++] = '\n';
        logbuf[loglen] = 0;
    }
}

static char err[1024];

static prj_js *open_lim(const char *query, const prj_js_limits *lim)
{
    prj_js_limits l = lim ? *lim : (prj_js_limits){0};
    /* Generous unless a test is about the time limit: on a loaded machine
     * (sanitizers, parallel tests) a handler can lose 250 ms to the
     * scheduler. */
    if (!l.ms_per_event) l.ms_per_event = 5000;
    l.log_fn = on_log;
    prj_js *j = NULL;
    int rc = prj_js_open(&l, "test", query, strlen(query), &j, err, sizeof err);
    if (rc) fprintf(stderr, "  open: %d %s\n", rc, err);
    return j;
}

static prj_js *open_js(const char *query)
{
    return open_lim(query, NULL);
}

static uint8_t ids[64][16];

static prj_js_event ev(const char *stream, uint64_t seq, const char *type, const char *data, const char *meta)
{
    static int n;
    uint8_t *id = ids[n++ % 64];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0x10 * (i % 16) + (unsigned)seq);
    prj_js_event e = {
        .position = 100 + seq,
        .stream = stream,
        .stream_len = strlen(stream),
        .seq = seq,
        .type = type,
        .type_len = strlen(type),
        .id = id,
        .timestamp_ns = INT64_C(1735689600123456789), /* 2025-01-01T00:00:00.1234567Z */
        .data = (const uint8_t *)data,
        .data_len = strlen(data),
        .is_json = 1,
        .meta = (const uint8_t *)(meta ? meta : ""),
        .meta_len = meta ? strlen(meta) : 0,
    };
    return e;
}

/* States the "store" holds, for NEED: key -> JSON (or none). */
typedef struct store_state {
    const char *key;
    const char *json;
    int shared;
} store_state;

static int needs; /* NEEDs answered by the last run() */
static char need_log[512];

/* Run a batch, answering each NEED from `have` (else no state yet). */
static int run(prj_js *j, const prj_js_event *e, size_t n, prj_js_result *res, const store_state *have)
{
    needs = 0;
    need_log[0] = 0;
    int rc = prj_js_process(j, e, n, res);
    while (rc == PRJ_JS_NEED) {
        const char *json = NULL;
        for (const store_state *h = have; h && h->key; h++)
            if (h->shared == res->need_shared && strlen(h->key) == res->need_partition_len &&
                !memcmp(h->key, res->need_partition, res->need_partition_len))
                json = h->json;
        size_t l = strlen(need_log);
        snprintf(need_log + l, sizeof need_log - l, "%s%zu:%s%.*s", l ? " " : "", res->need_at,
                 res->need_shared ? "shared" : "", (int)res->need_partition_len, res->need_partition);
        needs++;
        rc = prj_js_load(j, res->need_partition, res->need_partition_len, res->need_shared, json,
                         json ? strlen(json) : 0);
        if (rc) return rc;
        rc = prj_js_resume(j, res);
    }
    if (rc) fprintf(stderr, "  run: %d %s\n", rc, prj_js_error(j));
    return rc;
}

static const prj_js_part *part(const prj_js_result *r, const char *key)
{
    for (size_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].partition_len == strlen(key) && !memcmp(r->parts[i].partition, key, strlen(key)))
            return &r->parts[i];
    return NULL;
}

static int eq(const char *p, size_t len, const char *want)
{
    if (p && len == strlen(want) && !memcmp(p, want, len)) return 1;
    fprintf(stderr, "  got  %.*s\n  want %s\n", p ? (int)len : 6, p ? p : "(null)", want);
    return 0;
}

#define STATE_IS(res, key, want)                                                                             \
    do {                                                                                                     \
        const prj_js_part *p_ = part(res, key);                                                              \
        CHECK(p_ &&eq(p_->state, p_->state_len, want));                                                      \
    } while (0)

static int contains(const char *s, const char *want)
{
    if (s && strstr(s, want)) return 1;
    fprintf(stderr, "  \"%s\"\n  does not contain \"%s\"\n", s ? s : "(null)", want);
    return 0;
}

/* A healthy projection beside a failing one: it must still work. */
static const char COUNT[] =
    "fromAll().when({ $init: () => ({ n: 0 }), $any: (s, e) => { s.n++; return s; } })";

static void check_healthy(prj_js *good, int *batches)
{
    prj_js_event e[3] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "T", "{}", NULL),
                         ev("b", 0, "T", "{}", NULL)};
    prj_js_result res;
    CHECK_RC(run(good, e, 3, &res, NULL), 0);
    char want[32];
    snprintf(want, sizeof want, "{\"n\":%d}", 3 * ++*batches);
    STATE_IS(&res, "", want);
}

/* ---- the API ------------------------------------------------------------- */

static void t_count_by_type(void)
{
    prj_js *j = open_js("fromAll().when({\n"
                        "  $init: function () { return {}; },\n"
                        "  $any: function (s, e) { s[e.eventType] = (s[e.eventType] || 0) + 1; return s; }\n"
                        "})");
    REQUIRE(j);
    const prj_js_def *d = prj_js_definition(j);
    CHECK(d->all_streams && d->all_events && d->defines_fold && !d->by_streams && !d->by_custom_partitions);
    CHECK(d->n_streams == 0 && d->n_categories == 0 && d->n_events == 0 && !d->produces_results);
    prj_js_event e[5] = {ev("a", 0, "A", "{}", NULL), ev("a", 1, "B", "{}", NULL),
                         ev("b", 0, "A", "{}", NULL), ev("c", 0, "A", "{}", NULL),
                         ev("c", 1, "B", "{}", NULL)};
    prj_js_result res;
    CHECK_RC(run(j, e, 5, &res, NULL), 0);
    CHECK(needs == 1 && !strcmp(need_log, "0:")); /* the one state, asked for once */
    CHECK(res.n_parts == 1 && res.n_out == 0 && !res.shared);
    STATE_IS(&res, "", "{\"A\":3,\"B\":2}");
    CHECK(part(&res, "") && !part(&res, "")->result);
    CHECK_RC(run(j, e, 2, &res, NULL), 0);
    CHECK(needs == 0);
    STATE_IS(&res, "", "{\"A\":4,\"B\":3}");
    /* a batch that changes nothing reports nothing */
    prj_js_event other = ev("x", 0, "C", "", NULL); /* empty data: not given to handlers */
    CHECK_RC(run(j, &other, 1, &res, NULL), 0);
    CHECK(res.n_parts == 0);
    char *json = NULL;
    size_t len = 0;
    CHECK_RC(prj_js_get_state(j, "", 0, 0, &json, &len), 0);
    CHECK(json && eq(json, len, "{\"A\":4,\"B\":3}"));
    free(json);
    prj_js_close(j);
}

static void t_sources_and_options(void)
{
    static const struct {
        const char *q;
        int all, all_events, by_streams, by_custom, deleted, results, transform, links, reorder, lag, bi;
        const char *streams, *categories, *events, *result_stream, *partition_stream;
    } c[] = {
        {"fromStream('s1').when({ $any: (s, e) => s })", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, "s1", "", "", NULL,
         NULL},
        {"fromStreams(['a', 'b']).when({ A: (s) => s, B: (s) => s })", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "a,b",
         "", "A,B", NULL, NULL},
        {"fromStreams('a', 'b', 'c').when({ $any: (s) => s })", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, "a,b,c", "",
         "", NULL, NULL},
        {"fromCategory('account').foreachStream().when({ $any: (s) => s, $deleted: (s) => {} })", 0, 1, 1, 0,
         1, 0, 0, 0, 0, 0, 0, "", "account", "", NULL, NULL},
        {"fromCategories(['x', 'y']).partitionBy(e => e.streamId).when({ $any: (s) => s })", 0, 1, 0, 1, 0, 0,
         0, 0, 0, 0, 0, "$ce-x,$ce-y", "", "", NULL, NULL},
        {"fromCategories('x', 'y').when({ $any: (s) => s }).outputState()", 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0,
         "$ce-x,$ce-y", "", "", NULL, NULL},
        {"options({ resultStreamName: 'res', $includeLinks: true, reorderEvents: true, processingLag: 100 "
         "});\n"
         "fromStreams(['a', 'b']).when({ $any: (s) => s })",
         0, 1, 0, 0, 0, 0, 0, 1, 1, 100, 0, "a,b", "", "", "res", NULL},
        {"options({ biState: true }); fromAll().foreachStream().when({ $any: (s) => s }).transformBy(s => s)",
         1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, "", "", "", NULL, NULL},
        {"fromAll().when({ $initShared: () => ({}), $any: (s) => s }).filterBy(s => true).outputTo('out', "
         "'out-{0}')",
         1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, "", "", "", "out", "out-{0}"},
        {"on_any(function (s, e) { return s; }); fromAll();", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, "", "", "",
         NULL, NULL},
        {"fromAll()", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, "", "", "", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        prj_js *j = open_js(c[i].q);
        CHECK(j);
        if (!j) {
            fprintf(stderr, "  (case %zu)\n", i);
            continue;
        }
        const prj_js_def *d = prj_js_definition(j);
        char s[256] = "", cat[256] = "", evs[256] = "";
        for (size_t k = 0; k < d->n_streams; k++)
            snprintf(s + strlen(s), sizeof s - strlen(s), "%s%s", k ? "," : "", d->streams[k]);
        for (size_t k = 0; k < d->n_categories; k++)
            snprintf(cat + strlen(cat), sizeof cat - strlen(cat), "%s%s", k ? "," : "", d->categories[k]);
        for (size_t k = 0; k < d->n_events; k++)
            snprintf(evs + strlen(evs), sizeof evs - strlen(evs), "%s%s", k ? "," : "", d->events[k]);
        int ok =
            d->all_streams == c[i].all && d->all_events == c[i].all_events &&
            d->by_streams == c[i].by_streams && d->by_custom_partitions == c[i].by_custom &&
            d->handles_deleted == c[i].deleted && d->produces_results == c[i].results &&
            d->defines_state_transform == c[i].transform && d->include_links == c[i].links &&
            d->reorder_events == c[i].reorder && d->processing_lag == c[i].lag && d->bi_state == c[i].bi &&
            !strcmp(s, c[i].streams) && !strcmp(cat, c[i].categories) && !strcmp(evs, c[i].events) &&
            (c[i].result_stream ? d->result_stream && !strcmp(d->result_stream, c[i].result_stream)
                                : !d->result_stream) &&
            (c[i].partition_stream
                 ? d->partition_result_stream && !strcmp(d->partition_result_stream, c[i].partition_stream)
                 : !d->partition_result_stream);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  case %zu: %s: streams '%s' categories '%s' events '%s'\n", i, c[i].q, s, cat,
                    evs);
        prj_js_close(j);
    }
}

/* Definitions KurrentDB refuses, with its reasons; syntax errors. */
static void t_refused(void)
{
    static const struct {
        const char *q, *why;
    } c[] = {
        {"fromStream('s').foreachStream().when({ $any: (s) => s })", "foreachStream is not a function"},
        {"fromAll().when({ $any: (s) => s, $deleted: (s) => s })",
         "Deleted stream notifications are only supported with foreachStream()"},
        {"fromAll().when({ A: (s) => s, $any: (s) => s })",
         "Both AllEvents and specific event filters cannot be set"},
        {"options({ reorderEvents: true, processingLag: 100 }); fromAll().when({ $any: (s) => s })",
         "Event reordering cannot be used with fromAll()"},
        {"options({ reorderEvents: true, processingLag: 10 }); fromStreams('a', 'b').when({ $any: (s) => s "
         "})",
         "Event reordering requires processing lag at least of 50ms"},
        {"options({ colour: 'blue' }); fromAll().when({})", "Unrecognized option: colour"},
        {"options({ biState: 'yes' }); fromAll().when({})", "Invalid value"},
        {"options({ biState: true }); fromAll().foreachStream().when({ $deleted: (s) => s })",
         "Cannot handle deletes in bi-state projections"},
        {"when({})", "when is not defined"},
        {"var x = 1;", "None of streams and categories are included"},
        {"fromAll().when({ $any: function (s, e) { return s; } ", "SyntaxError"},
        {"fromAll();\nthrow new Error('top-level boom');", "Error: top-level boom (line 2)"},
        {"fromAll().when({ $any: (s) => s }); eval('1 + 1');", "EvalError"},
    };
    prj_js *good = open_js(COUNT);
    REQUIRE(good);
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        prj_js *j = NULL;
        prj_js_limits lim = {.ms_per_event = 5000};
        int rc = prj_js_open(&lim, "test", c[i].q, strlen(c[i].q), &j, err, sizeof err);
        CHECK_RC(rc, FACTUM_EINVAL);
        CHECK(!j && contains(err, c[i].why));
        prj_js_close(j);
    }
    int batches = 0;
    check_healthy(good, &batches);
    prj_js_close(good);
}

/* partitionBy: a state per key, the NEED protocol for each, a preloaded
 * state carried on, events mapped to no partition skipped. */
static void t_partition_by(void)
{
    prj_js *j = open_js("fromAll().partitionBy(function (e) { return e.body.region; }).when({\n"
                        "  $init: function () { return { n: 0, sum: 0 }; },\n"
                        "  Sale: function (s, e) { s.n++; s.sum += e.body.amount; return s; }\n"
                        "})");
    REQUIRE(j);
    const prj_js_def *d = prj_js_definition(j);
    CHECK(d->by_custom_partitions && !d->all_events && d->n_events == 1 && !strcmp(d->events[0], "Sale"));
    prj_js_event e[5] = {
        ev("s-1", 0, "Sale", "{\"region\":\"eu\",\"amount\":5}", NULL),
        ev("s-2", 0, "Sale", "{\"region\":\"us\",\"amount\":7}", NULL),
        ev("s-3", 0, "Sale", "{\"amount\":100}", NULL), /* no region: no partition */
        ev("s-1", 1, "Sale", "{\"region\":\"eu\",\"amount\":1}", NULL),
        ev("s-4", 0, "Sale", "{\"region\":42,\"amount\":2}", NULL), /* a number is a key too */
    };
    store_state have[] = {{"us", "{\"n\":10,\"sum\":70}", 0}, {NULL, NULL, 0}};
    prj_js_result res;
    CHECK_RC(run(j, e, 5, &res, have), 0);
    CHECK(needs == 3 && !strcmp(need_log, "0:eu 1:us 4:42"));
    CHECK(res.n_parts == 3);
    STATE_IS(&res, "eu", "{\"n\":2,\"sum\":6}");
    STATE_IS(&res, "us", "{\"n\":11,\"sum\":77}");
    STATE_IS(&res, "42", "{\"n\":1,\"sum\":2}");
    /* the states stay in the worker: no NEED the second time */
    CHECK_RC(run(j, e, 2, &res, NULL), 0);
    CHECK(needs == 0);
    STATE_IS(&res, "eu", "{\"n\":3,\"sum\":11}");
    prj_js_close(j);
}

/* foreachStream: a state per stream; $init, then $created, then the
 * handler, for a new partition only; a link's "$o" names the partition. */
static void t_foreach_stream(void)
{
    prj_js *j = open_js("fromAll().foreachStream().when({\n"
                        "  $init: function () { log('init'); return { n: 0 }; },\n"
                        "  $created: function (s, e) { log('created ' + e.partition); s.created = true;\n"
                        "    emit('created-' + e.partition, 'Created', { at: e.sequenceNumber }); },\n"
                        "  $any: function (s, e) { log('any ' + e.streamId); s.n++; return s; }\n"
                        "})");
    REQUIRE(j);
    CHECK(prj_js_definition(j)->by_streams);
    loglen = 0;
    logbuf[0] = 0;
    prj_js_event e[4] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "T", "{}", NULL),
                         ev("$$b", 0, "$metadata", "{}", NULL), ev("$ce-x", 0, "T", "{}", NULL)};
    e[3].link_meta = (const uint8_t *)"{\"$o\":\"x-1\"}";
    e[3].link_meta_len = strlen("{\"$o\":\"x-1\"}");
    prj_js_result res;
    CHECK_RC(run(j, e, 4, &res, NULL), 0);
    CHECK(!strcmp(need_log, "0:a 2:b 3:x-1"));
    CHECK(contains(
        logbuf, "init\ncreated a\nany a\nany a\ninit\ncreated b\nany $$b\ninit\ncreated x-1\nany $ce-x\n"));
    STATE_IS(&res, "a", "{\"n\":2,\"created\":true}");
    STATE_IS(&res, "b", "{\"n\":1,\"created\":true}");
    STATE_IS(&res, "x-1", "{\"n\":1,\"created\":true}");
    CHECK(res.n_out == 3);
    CHECK(res.n_out == 3 && res.out[0].source == 0 &&
          eq(res.out[0].stream, res.out[0].stream_len, "created-a") &&
          eq(res.out[1].stream, res.out[1].stream_len, "created-b") && res.out[1].source == 2 &&
          eq(res.out[2].data, res.out[2].data_len, "{\"at\":0}"));
    /* a partition with a stored state is not created again */
    prj_js_close(j);
    j = open_js("fromAll().foreachStream().when({ $created: function (s, e) { emit('c', 'C', {}); },\n"
                "  $any: function (s, e) { s.n = (s.n || 0) + 1; return s; } })");
    REQUIRE(j);
    store_state have[] = {{"a", "{\"n\":5}", 0}, {NULL, NULL, 0}};
    CHECK_RC(run(j, e, 1, &res, have), 0);
    CHECK(res.n_out == 0);
    STATE_IS(&res, "a", "{\"n\":6}");
    prj_js_close(j);
}

/* biState: handlers get [state, shared]; $initShared; the shared state is
 * asked for (NEED with need_shared) and reported when it changes. */
static void t_bi_state(void)
{
    prj_js *j = open_js("options({ biState: true });\n"
                        "fromAll().foreachStream().when({\n"
                        "  $init: () => ({ count: 0 }),\n"
                        "  $initShared: () => ({ total: 0 }),\n"
                        "  T: (s, e) => { s[0].count++; s[1].total++; return s; },\n"
                        "  U: ([mine, all], e) => [mine, all]\n"
                        "})");
    REQUIRE(j);
    CHECK(prj_js_definition(j)->bi_state);
    prj_js_event e[3] = {ev("a", 0, "T", "{}", NULL), ev("b", 0, "T", "{}", NULL),
                         ev("a", 1, "T", "{}", NULL)};
    prj_js_result res;
    CHECK_RC(run(j, e, 3, &res, NULL), 0);
    CHECK(!strcmp(need_log, "0:a 0:shared 1:b"));
    STATE_IS(&res, "a", "{\"count\":2}");
    STATE_IS(&res, "b", "{\"count\":1}");
    CHECK(eq(res.shared, res.shared_len, "{\"total\":3}"));
    /* an event that leaves the shared state as it was: not reported */
    prj_js_event u = ev("a", 2, "U", "{}", NULL);
    CHECK_RC(run(j, &u, 1, &res, NULL), 0);
    CHECK(!res.shared && res.n_parts == 0);
    char *json = NULL;
    CHECK_RC(prj_js_get_state(j, "", 0, 1, &json, NULL), 0);
    CHECK(json && !strcmp(json, "{\"total\":3}"));
    free(json);
    prj_js_close(j);

    /* a stored shared state is used */
    j = open_js("options({ biState: true }); fromAll().foreachStream().when({\n"
                "  $initShared: () => ({ total: 0 }), T: (s, e) => { s[1].total++; return s; } })");
    REQUIRE(j);
    store_state have[] = {{"", "{\"total\":40}", 1}, {NULL, NULL, 0}};
    CHECK_RC(run(j, e, 2, &res, have), 0);
    CHECK(eq(res.shared, res.shared_len, "{\"total\":42}"));
    prj_js_close(j);
}

/* $deleted(state, null, partition, isSoftDelete) for a deleted stream. */
static void t_deleted(void)
{
    prj_js *j = open_js("fromAll().foreachStream().when({\n"
                        "  $init: () => ({ n: 0 }),\n"
                        "  $created: (s, e) => { s.created = true; },\n"
                        "  $any: (s, e) => { s.n++; },\n"
                        "  $deleted: function (s, e, partition, soft) { s.deleted = [e, partition, soft]; }\n"
                        "})");
    REQUIRE(j);
    CHECK(prj_js_definition(j)->handles_deleted);
    prj_js_event e[3] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "$streamDeleted", "{}", NULL),
                         ev("z", 7, "$streamDeleted", "{}", NULL)};
    e[1].deleted = 1;
    e[2].deleted = 1;
    prj_js_result res;
    CHECK_RC(run(j, e, 3, &res, NULL), 0);
    STATE_IS(&res, "a", "{\"n\":1,\"created\":true,\"deleted\":[null,\"a\",false]}");
    /* a stream met first by its deletion: $init, no $created */
    STATE_IS(&res, "z", "{\"n\":0,\"deleted\":[null,\"z\",false]}");
    prj_js_close(j);
}

/* emit, linkTo, linkStreamTo, copyTo: what a batch writes, with the index
 * of the event that wrote it and the metadata the script gave. */
static void t_outputs(void)
{
    prj_js *j = open_js("fromAll().when({\n"
                        "  A: function (s, e) {\n"
                        "    emit('out-' + e.streamId, 'Seen', { n: e.sequenceNumber }, { by: 'test', n: 1, "
                        "u: undefined });\n"
                        "    emit('plain', 'Seen', { a: [1, 'x'] });\n"
                        "  },\n"
                        "  B: function (s, e) {\n"
                        "    linkTo('links', e, { why: 'b' });\n"
                        "    linkStreamTo('streams', e.streamId);\n"
                        "    copyTo('copies', e, { extra: true });\n"
                        "    linkTo('links2', e);\n"
                        "  }\n"
                        "})");
    REQUIRE(j);
    prj_js_event e[3] = {ev("s1", 3, "A", "{}", NULL), ev("s2", 9, "C", "{}", NULL),
                         ev("s3", 4, "B", "{\"v\":1}", "{\"m\":2}")};
    prj_js_result res;
    CHECK_RC(run(j, e, 3, &res, NULL), 0);
    REQUIRE(res.n_out == 6);
    const prj_js_out *o = res.out;
    CHECK(o[0].source == 0 && o[0].kind == PRJ_JS_OUT_EMIT && o[0].is_json &&
          eq(o[0].stream, o[0].stream_len, "out-s1") && eq(o[0].type, o[0].type_len, "Seen") &&
          eq(o[0].data, o[0].data_len, "{\"n\":3}") &&
          eq(o[0].meta, o[0].meta_len, "{\"by\":\"test\",\"n\":1}"));
    CHECK(o[1].source == 0 && eq(o[1].data, o[1].data_len, "{\"a\":[1,\"x\"]}") && !o[1].meta);
    CHECK(o[2].source == 2 && o[2].kind == PRJ_JS_OUT_LINK_TO && !o[2].is_json &&
          eq(o[2].stream, o[2].stream_len, "links") && eq(o[2].type, o[2].type_len, "$>") &&
          eq(o[2].data, o[2].data_len, "4@s3") && eq(o[2].meta, o[2].meta_len, "{\"why\":\"b\"}"));
    CHECK(o[3].kind == PRJ_JS_OUT_LINK_STREAM && eq(o[3].type, o[3].type_len, "$@") &&
          eq(o[3].stream, o[3].stream_len, "streams") && eq(o[3].data, o[3].data_len, "s3") && !o[3].meta);
    CHECK(o[4].kind == PRJ_JS_OUT_EMIT && o[4].is_json && eq(o[4].stream, o[4].stream_len, "copies") &&
          eq(o[4].type, o[4].type_len, "B") && eq(o[4].data, o[4].data_len, "{\"v\":1}") &&
          eq(o[4].meta, o[4].meta_len, "{\"m\":2,\"extra\":true}"));
    CHECK(o[5].kind == PRJ_JS_OUT_LINK_TO && !o[5].meta);
    prj_js_close(j);

    /* KurrentDB's argument checks fault the projection */
    static const struct {
        const char *q, *why;
    } bad[] = {
        {"fromAll().when({ $any: (s, e) => { emit('', 'T', {}); } })",
         "streamId may not be null or empty (line 1)"},
        {"fromAll().when({ $any: (s, e) => { emit('x', 'T', null); } })",
         "eventBody may not be null or empty"},
        {"fromAll().when({ $any: (s, e) => { emit('x', 'T', {}, 'meta'); } })",
         "metadata: an object expected"},
        {"fromAll().when({ $any: (s, e) => { linkTo('x', {}); } })",
         "Invalid link to event undefined@undefined"},
        {"fromAll().when({ $any: (s, e) => {\n emit('x', 'T', { big: 'y'.repeat(17 << 20) }); } })",
         "has data of 17825802 bytes, more than the limit of 16777216 bytes, in the handler for event 0@a "
         "(T)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        prj_js_limits lim = {.ms_per_event = 5000}; /* 17 MiB to JSON on a loaded machine */
        j = open_lim(bad[i].q, &lim);
        CHECK(j);
        if (!j) continue;
        prj_js_event one = ev("a", 0, "T", "{}", NULL);
        CHECK_RC(run(j, &one, 1, &res, NULL), FACTUM_EFAULTED);
        CHECK(contains(prj_js_error(j), bad[i].why));
        CHECK_RC(prj_js_process(j, &one, 1, &res), FACTUM_EFAULTED); /* latched (JSP-3) */
        prj_js_close(j);
    }
}

/* outputState: the result is the state; transformBy/filterBy: a
 * transformed result, none (NULL) when the filter says no. */
static void t_results(void)
{
    static const struct {
        const char *q, *state, *result; /* result NULL: none */
        int produces;
    } c[] = {
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } })", "{\"n\":2}", NULL, 0},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).outputState()", "{\"n\":2}",
         "{\"n\":2}", 1},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).transformBy(s => ({ total: "
         "s.n * 10 }))",
         "{\"n\":2}", "{\"total\":20}", 1},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } })\n"
         "  .transformBy(s => ({ total: s.n })).transformBy(s => [s.total]).outputState()",
         "{\"n\":2}", "[2]", 1},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).filterBy(s => s.n > 5)",
         "{\"n\":2}", NULL, 1},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).filterBy(s => s.n > 1)",
         "{\"n\":2}", "{\"n\":2}", 1},
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).filterBy(s => 1)", "{\"n\":2}",
         NULL, 1}, /* only true passes */
        {"fromAll().when({ $init: () => ({ n: 0 }), $any: (s) => { s.n++; } }).transformBy(s => null)",
         "{\"n\":2}", NULL, 1},
        /* no handler for the type and no $any: the state becomes the body (KurrentDB's default) */
        {"fromAll().when({ Other: (s) => s })", "{\"v\":2}", NULL, 0},
        {"fromAll()", "{\"v\":2}", NULL, 0},
        /* a handler's null: no state */
        {"fromAll().when({ $any: (s) => null })", "", NULL, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        prj_js *j = open_js(c[i].q);
        CHECK(j);
        if (!j) continue;
        CHECK(prj_js_definition(j)->produces_results == c[i].produces);
        prj_js_event e[2] = {ev("a", 0, "T", "{\"v\":1}", NULL), ev("a", 1, "T", "{\"v\":2}", NULL)};
        prj_js_result res;
        CHECK_RC(run(j, e, 2, &res, NULL), 0);
        const prj_js_part *p = part(&res, "");
        int ok = p && eq(p->state, p->state_len, c[i].state) &&
                 (c[i].result ? eq(p->result, p->result_len, c[i].result) : !p->result);
        if (*c[i].state == 0) ok = !p; /* null from the start: nothing changed */
        CHECK(ok);
        if (!ok) fprintf(stderr, "  case %zu: %s\n", i, c[i].q);
        prj_js_close(j);
    }
}

/* The event object as KurrentDB builds it; body parsed only when read. */
static void t_event_object(void)
{
    prj_js *j = open_js(
        "fromCategory('acct').when({\n"
        "  $any: function (s, e) {\n"
        "    return { streamId: e.streamId, sequenceNumber: e.sequenceNumber, eventType: e.eventType,\n"
        "      eventId: e.eventId, isJson: e.isJson, bodyRaw: e.bodyRaw, x: e.body.x, same: e.data === "
        "e.body,\n"
        "      metadataRaw: e.metadataRaw, m: e.metadata.m, linkMetadataRaw: e.linkMetadataRaw,\n"
        "      link: e.linkMetadata, partition: e.partition, category: e.category, created: e.created,\n"
        "      keys: Object.keys(e).length, forIn: Array.from((function* () { for (const k in e) yield k; "
        "})()).sort().join(','),\n"
        "      json: JSON.parse(JSON.stringify(e)).body };\n"
        "  }\n"
        "})");
    REQUIRE(j);
    prj_js_event e = ev("acct-1", 5, "Opened", "{\"x\":[1,2]}", "{\"m\":\"meta\"}");
    e.link_meta = (const uint8_t *)"{\"l\":1}";
    e.link_meta_len = 7;
    prj_js_result res;
    CHECK_RC(run(j, &e, 1, &res, NULL), 0);
    STATE_IS(
        &res, "",
        "{\"streamId\":\"acct-1\",\"sequenceNumber\":5,\"eventType\":\"Opened\","
        "\"eventId\":\"05152535-4555-6575-8595-a5b5c5d5e5f5\",\"isJson\":true,\"bodyRaw\":\"{\\\"x\\\":[1,2]}"
        "\","
        "\"x\":[1,2],\"same\":true,\"metadataRaw\":\"{\\\"m\\\":\\\"meta\\\"}\",\"m\":\"meta\","
        "\"linkMetadataRaw\":\"{\\\"l\\\":1}\",\"link\":{\"l\":1},\"partition\":\"\",\"category\":\"acct\","
        "\"created\":\"2025-01-01T00:00:00.1234567Z\","
        "\"keys\":10,\"forIn\":\"body,bodyRaw,category,created,data,eventId,eventType,isJson,linkMetadata,"
        "linkMetadataRaw,metadata,metadataRaw,partition,sequenceNumber,streamId\",\"json\":{\"x\":[1,2]}}");
    prj_js_close(j);

    /* not JSON: no body; a body that is not valid JSON is fine until read */
    j = open_js(
        "fromAll().when({\n"
        "  Bin: (s, e) => ({ isJson: e.isJson, body: typeof e.body, raw: e.bodyRaw, meta: e.metadata }),\n"
        "  Lazy: (s, e) => ({ raw: e.bodyRaw }),\n"
        "  Eager: (s, e) => ({ x: e.body.x })\n"
        "})");
    REQUIRE(j);
    prj_js_event b[3] = {ev("a", 0, "Bin", "raw bytes", NULL), ev("a", 1, "Lazy", "{not json", NULL),
                         ev("a", 2, "Eager", "{not json", NULL)};
    b[0].is_json = 0;
    CHECK_RC(run(j, b, 1, &res, NULL), 0);
    STATE_IS(&res, "", "{\"isJson\":false,\"body\":\"undefined\",\"raw\":\"raw bytes\",\"meta\":null}");
    CHECK_RC(run(j, b + 1, 1, &res, NULL), 0);
    STATE_IS(&res, "", "{\"raw\":\"{not json\"}");
    CHECK_RC(run(j, b + 2, 1, &res, NULL), FACTUM_EFAULTED);
    CHECK(contains(prj_js_error(j), "SyntaxError") &&
          contains(prj_js_error(j), "(line 4) in the handler for event 2@a (Eager)"));
    prj_js_close(j);
}

/* ES2015+ as KurrentDB users write it. */
static void t_modern_javascript(void)
{
    prj_js *j = open_js(
        "class Tally {\n"
        "  constructor(o = {}) { this.byType = { ...o.byType }; this.n = o.n ?? 0; }\n"
        "  add({ eventType: t }) { this.byType[t] = (this.byType[t] || 0) + 1; this.n++; return this; }\n"
        "}\n"
        "const label = (t, n) => `${t}:${n}`;\n"
        "fromAll().when({\n"
        "  $init: () => ({ byType: {}, n: 0, labels: [] }),\n"
        "  $any: (s, e) => {\n"
        "    let t = new Tally(s).add(e);\n"
        "    const [first, ...rest] = [e.body.a, e.body.b, e.body.c];\n"
        "    const labels = [...s.labels, label(e.eventType, first + rest.length)];\n"
        "    for (const [k, v] of Object.entries({ k: 1 })) t[k] = v;\n"
        "    return { byType: t.byType, n: t.n, labels, k: t.k };\n"
        "  }\n"
        "})");
    REQUIRE(j);
    prj_js_event e[2] = {ev("a", 0, "X", "{\"a\":1,\"b\":2,\"c\":3}", NULL),
                         ev("a", 1, "Y", "{\"a\":5}", NULL)};
    prj_js_result res;
    CHECK_RC(run(j, e, 2, &res, NULL), 0);
    STATE_IS(&res, "", "{\"byType\":{\"X\":1,\"Y\":1},\"n\":2,\"labels\":[\"X:3\",\"Y:7\"],\"k\":1}");
    prj_js_close(j);
}

/* States saved after a batch and loaded into a new engine give what one
 * engine running on gives. */
static void t_state_round_trip(void)
{
    const char *q = "fromAll().partitionBy(e => e.streamId).when({\n"
                    "  $init: () => ({ n: 0, seen: [] }),\n"
                    "  $any: (s, e) => { s.n++; s.seen.push(e.sequenceNumber); return s; }\n"
                    "})";
    prj_js_event e[4] = {ev("a", 0, "T", "{}", NULL), ev("b", 0, "T", "{}", NULL),
                         ev("a", 1, "T", "{}", NULL), ev("b", 1, "T", "{}", NULL)};
    prj_js *one = open_js(q), *first = open_js(q), *second = open_js(q);
    REQUIRE(one && first && second);
    prj_js_result res;
    CHECK_RC(run(one, e, 4, &res, NULL), 0);
    CHECK_RC(run(first, e, 2, &res, NULL), 0);
    char *a = NULL, *b = NULL;
    CHECK_RC(prj_js_get_state(first, "a", 1, 0, &a, NULL), 0);
    CHECK_RC(prj_js_get_state(first, "b", 1, 0, &b, NULL), 0);
    char *none = (char *)1;
    CHECK_RC(prj_js_get_state(first, "zz", 2, 0, &none, NULL), 0);
    CHECK(none == NULL);
    REQUIRE(a && b);
    /* preloaded before the batch: no NEED */
    CHECK_RC(prj_js_load(second, "a", 1, 0, a, strlen(a)), 0);
    CHECK_RC(prj_js_load(second, "b", 1, 0, b, strlen(b)), 0);
    CHECK_RC(run(second, e + 2, 2, &res, NULL), 0);
    CHECK(needs == 0);
    STATE_IS(&res, "a", "{\"n\":2,\"seen\":[0,1]}");
    STATE_IS(&res, "b", "{\"n\":2,\"seen\":[0,1]}");
    for (const char *k = "a"; *k <= 'b'; k = *k == 'a' ? "b" : "c") {
        char *x = NULL, *y = NULL;
        CHECK_RC(prj_js_get_state(one, k, 1, 0, &x, NULL), 0);
        CHECK_RC(prj_js_get_state(second, k, 1, 0, &y, NULL), 0);
        CHECK(x && y && !strcmp(x, y));
        free(x);
        free(y);
    }
    /* a stored state that is not JSON faults with the partition's name */
    CHECK_RC(prj_js_load(first, "c", 1, 0, "{broken", 7), 0);
    prj_js_event c = ev("c", 0, "T", "{}", NULL);
    CHECK_RC(run(first, &c, 1, &res, NULL), FACTUM_EFAULTED);
    CHECK(contains(prj_js_error(first), "loading the state of partition 'c'"));
    free(a);
    free(b);
    prj_js_close(one);
    prj_js_close(first);
    prj_js_close(second);
}

/* When its heap is more than half full the worker drops the least
 * recently used half of its partition states after a batch, and asks for
 * one again when it is met: the host gives back what the batches said. */
static void t_partition_cache(void)
{
    prj_js_limits lim = {.heap_mib = 16};
    prj_js *j = open_lim("fromAll().partitionBy(e => e.streamId).when({\n"
                         "  $init: () => ({ n: 0, pad: 'x'.repeat(100000) }),\n"
                         "  $any: (s) => { s.n++; return s; }\n"
                         "})",
                         &lim);
    REQUIRE(j);
    enum { N = 50 };
    static char names[N][8], *saved[N];
    prj_js_event e[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        e[i] = ev(names[i], 0, "T", "{}", NULL);
    }
    prj_js_result res;
    CHECK_RC(run(j, e, N, &res, NULL), 0);
    CHECK(needs == N && res.n_parts == N);
    for (size_t i = 0; i < res.n_parts; i++) {
        int k = atoi(res.parts[i].partition + 1);
        if (k >= 0 && k < N) saved[k] = strndup(res.parts[i].state, res.parts[i].state_len);
    }
    store_state have[N + 1] = {{0}};
    for (int i = 0; i < N; i++)
        have[i] = (store_state){names[i], saved[i], 0};
    /* the first partitions were used least recently: gone */
    prj_js_event again[2] = {ev("p0", 1, "T", "{}", NULL), ev("p49", 1, "T", "{}", NULL)};
    CHECK_RC(run(j, again, 2, &res, have), 0);
    CHECK(!strcmp(need_log, "0:p0"));
    const prj_js_part *p = part(&res, "p0");
    CHECK(p && p->state_len > 7 && !memcmp(p->state, "{\"n\":2,", 7));
    p = part(&res, "p49");
    CHECK(p && p->state_len > 7 && !memcmp(p->state, "{\"n\":2,", 7));
    for (int i = 0; i < N; i++)
        free(saved[i]);
    prj_js_close(j);
}

/* ---- isolation ------------------------------------------------------------ */

typedef struct bad_case {
    const char *name, *q;
    uint32_t ms, heap_mib, state_bytes;
    const char *why;
} bad_case;

static void t_script_faults(void)
{
    static const bad_case c[] = {
        {"infinite loop", "fromAll().when({ $any: function (s, e) {\n for (;;) {} } })", 100, 0, 0,
         "timed out after 100 ms in the handler for event 0@a (T)"},
        {"infinite loop catching everything",
         "fromAll().when({ $any: (s, e) => { for (;;) { try { for (;;) {} } catch (x) {} } } })", 100, 0, 0,
         "timed out after 100 ms"},
        {"deep recursion",
         "fromAll().when({ $any: (s, e) => {\n const r = (n) => r(n + 1) + 1; return r(0); } })", 0, 0, 0,
         "RangeError: Maximum call stack size exceeded (line 2) in the handler for event 0@a (T)"},
        {"state past its limit",
         "fromAll().when({ $init: () => ({ l: [] }), $any: (s, e) => { s.l.push('x'.repeat(600)); return s; "
         "} })",
         0, 0, 1000, "the state is 1213 bytes, more than the limit (MaxProjectionStateSize) of 1000 bytes"},
        {"heap past its limit",
         "fromAll().when({ $any: (s, e) => { const keep = []; for (;;) keep.push(new Array(10000).fill(e)); "
         "} })",
         0, 16, 0, "the script reached its heap limit of 16 MiB in the handler for event 0@a (T)"},
        /* one allocation past anything the heap can grant: V8's fatal
         * out-of-memory, which ends the worker (it says why first) */
        {"fatal out-of-memory",
         "fromAll().when({ $any: (s, e) => ({ n: new Array(2e8).fill(1.5).length }) })", 5000, 16, 0,
         "the JavaScript engine ran out of memory"},
        {"exception in $init",
         "fromAll().when({\n $init: function () { throw new Error('boom in $init'); },\n $any: (s) => s })",
         0, 0, 0, "Error: boom in $init (line 2) in the handler for event 0@a (T)"},
        {"a thrown string", "fromAll().when({ $any: (s) => { throw 'plain'; } })", 0, 0, 0, "plain (line 1)"},
        {"a cyclic state", "fromAll().when({ $any: (s) => { s.self = s; return s; } })", 0, 0, 0,
         "TypeError: Converting circular structure to JSON"},
    };
    prj_js *good = open_js(COUNT);
    REQUIRE(good);
    int batches = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        prj_js_limits lim = {
            .ms_per_event = c[i].ms, .heap_mib = c[i].heap_mib, .state_bytes = c[i].state_bytes};
        prj_js *j = open_lim(c[i].q, &lim);
        CHECK(j);
        if (!j) continue;
        prj_js_event e[2] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "T", "{}", NULL)};
        prj_js_result res;
        CHECK_RC(run(j, e, 2, &res, NULL), FACTUM_EFAULTED);
        if (!contains(prj_js_error(j), c[i].why)) fprintf(stderr, "  (%s)\n", c[i].name);
        CHECK(prj_js_pid(j) == 0); /* the worker is gone */
        CHECK_RC(prj_js_process(j, e, 1, &res), FACTUM_EFAULTED);
        prj_js_close(j);
        check_healthy(good, &batches);
    }
    prj_js_close(good);
}

/* The worker dies in the middle of a batch: by a signal, or it stops
 * answering (SIGSTOP) and the host's deadline kills it (JSP-1). */
static void t_worker_dies(void)
{
    static const struct {
        int sig;
        uint32_t ms; /* a stopped worker's own watchdog cannot fire: the host's deadline must */
        const char *why;
    } c[] = {
        {SIGSEGV, 5000, "the JavaScript engine crashed (signal 11"},
        {SIGKILL, 5000, "the JavaScript engine crashed (signal 9"},
        {SIGSTOP, 500, "did not answer within"},
    };
    prj_js *good = open_js(COUNT);
    REQUIRE(good);
    int batches = 0;
    /* In a sanitized build the worker is too, and AddressSanitizer would
     * turn the SIGSEGV into a report and an abort (SIGABRT): not here. */
    char asan[512];
    const char *was = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%shandle_segv=0", was ? was : "", was && *was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        prj_js_limits lim = {.ms_per_event = c[i].ms};
        /* The signal is sent when the script says it is in its handler (a
         * LOG frame, read by the host during the batch). */
        prj_js *j = open_lim("fromAll().when({ $any: (s, e) => { log('busy'); for (;;) {} } })", &lim);
        CHECK(j);
        if (!j) continue;
        kill_pid = prj_js_pid(j);
        kill_sig = c[i].sig;
        prj_js_event e[4] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "T", "{}", NULL),
                             ev("a", 2, "T", "{}", NULL), ev("a", 3, "T", "{}", NULL)};
        prj_js_result res;
        uint64_t t0 = (uint64_t)time(NULL);
        /* the host's deadline, shortened for this batch (read at each wait) */
        if (c[i].sig == SIGSTOP) setenv("FACTUM_JS_GRACE_MS", "300", 1);
        CHECK_RC(run(j, e, c[i].sig == SIGSTOP ? 1 : 4, &res, NULL), FACTUM_EFAULTED);
        unsetenv("FACTUM_JS_GRACE_MS");
        CHECK(kill_sig == 0); /* it was sent */
        CHECK(contains(prj_js_error(j), c[i].why));
        CHECK((uint64_t)time(NULL) - t0 < 10);
        prj_js_close(j); /* reaps a stopped worker too */
        check_healthy(good, &batches);
    }
    /* no worker program: where it looked */
    prj_js_limits lim = {.worker = "/nonexistent/factum-js"};
    prj_js *j = NULL;
    CHECK_RC(prj_js_open(&lim, "x", COUNT, strlen(COUNT), &j, err, sizeof err), -ENOENT);
    CHECK(!j && contains(err, "/nonexistent/factum-js"));
    prj_js_close(good);
}

/* The host's calls out of order fault the engine rather than confuse it. */
static void t_misuse(void)
{
    prj_js *j = open_js("fromAll().partitionBy(e => e.streamId).when({ $any: (s) => s })");
    REQUIRE(j);
    prj_js_result res;
    CHECK_RC(prj_js_resume(j, &res), FACTUM_EINVAL);
    CHECK(contains(prj_js_error(j), "without a PRJ_JS_NEED"));
    CHECK_RC(prj_js_process(j, NULL, 0, &res), FACTUM_EFAULTED);
    prj_js_close(j);
    j = open_js("fromAll().partitionBy(e => e.streamId).when({ $any: (s) => s })");
    REQUIRE(j);
    prj_js_event e = ev("a", 0, "T", "{}", NULL);
    CHECK_RC(prj_js_process(j, &e, 1, &res), PRJ_JS_NEED);
    CHECK_RC(prj_js_process(j, &e, 1, &res), FACTUM_EINVAL);
    prj_js_close(j);
    prj_js_close(NULL);
}

/* ---- read models (OPEN_RM) ------------------------------------------------ */

static prj_js *open_rm(const char *script, uint32_t ms, uint32_t heap_mib)
{
    prj_js_limits l = {.ms_per_event = ms ? ms : 5000, .heap_mib = heap_mib, .log_fn = on_log};
    prj_js *j = NULL;
    int rc = prj_js_open_rm(&l, "rm.js", script, strlen(script), &j, err, sizeof err);
    if (rc) fprintf(stderr, "  open_rm: %d %s\n", rc, err);
    return j;
}

static void t_readmodel_mode(void)
{
    static const char script[] =
        "({\n"
        "  A(e) { log('a', e.position, e.version, e.stream, e.category, e.timestamp, e.id);\n"
        "         sql('INSERT INTO t VALUES (:x, :y)', {x: e.data.x, y: [e.type, e.metadata && e.metadata.m]});\n"
        "         sql('UPDATE t SET n = n + 1', null); },\n"
        "  B(e) { if (e.data.bad) throw new TypeError('bad B'); },\n"
        "  Slow(e) { for (;;) {} },\n"
        "  $any(e) { sql('SELECT :d', {d: e.data, u: undefined, b: 12345678901234567890n}); },\n"
        "})";
    prj_js *j = open_rm(script, 300, 0);
    REQUIRE(j);
    const prj_js_def *d = prj_js_definition(j);
    CHECK(d->all_events);
    CHECK(d->n_events == 3);
    loglen = 0;
    logbuf[0] = 0;
    prj_js_event e[6] = {ev("acc-1", 0, "A", "{\"x\":7}", "{\"m\":true}"), ev("acc-1", 1, "B", "{\"bad\":1}", NULL),
                         ev("acc-1", 2, "B", "{}", NULL),                        ev("acc-1", 3, "Slow", "{}", NULL),
                         ev("acc-1", 4, "Other", "not json", NULL),             ev("acc-1", 5, "A", "{}", NULL)};
    e[4].is_json = 0;
    prj_js_rm_result r;
    CHECK_RC(prj_js_rm_process(j, e, 6, &r), 0);
    CHECK(r.done == 6);
    CHECK(contains(logbuf, "a 100 0 acc-1 acc 2025-01-01T00:00:00.123456Z 00102030-4050-6070-8090-a0b0c0d0e0f0"));
    REQUIRE(r.n_sql == 5);
    CHECK(r.sql[0].source == 0 && eq(r.sql[0].sql, r.sql[0].sql_len, "INSERT INTO t VALUES (:x, :y)"));
    CHECK(eq(r.sql[0].params, r.sql[0].params_len, "{\"x\":7,\"y\":[\"A\",true]}"));
    CHECK(r.sql[1].source == 0 && eq(r.sql[1].params, r.sql[1].params_len, "{}"));
    CHECK(r.sql[2].source == 4 &&
          eq(r.sql[2].params, r.sql[2].params_len, "{\"d\":\"not json\",\"u\":null,\"b\":\"12345678901234567890\"}"));
    CHECK(r.sql[3].source == 5 && eq(r.sql[3].params, r.sql[3].params_len, "{\"x\":null,\"y\":[\"A\",null]}"));
    REQUIRE(r.n_fail == 2);
    CHECK(r.fail[0].source == 1 && r.fail[0].kind == PJP_ERR_SCRIPT);
    char msg[2048];
    snprintf(msg, sizeof msg, "%.*s", (int)r.fail[0].message_len, r.fail[0].message);
    CHECK(contains(msg, "TypeError: bad B in the handler for event 1@acc-1 (B)\n    at Object.B (rm.js:5:"));
    CHECK(r.fail[1].source == 3 && r.fail[1].kind == PJP_ERR_TIMEOUT);
    snprintf(msg, sizeof msg, "%.*s", (int)r.fail[1].message_len, r.fail[1].message);
    CHECK(contains(msg, "timed out after 300 ms in the handler for event 3@acc-1 (Slow)"));
    /* The engine goes on after both. */
    CHECK_RC(prj_js_rm_process(j, e + 5, 1, &r), 0);
    CHECK(r.done == 1 && r.n_sql == 2 && r.n_fail == 0);
    /* A projection's call on it is misuse. */
    prj_js_result pres;
    CHECK_RC(prj_js_process(j, e, 1, &pres), FACTUM_EINVAL);
    prj_js_close(j);

    /* The heap limit: the events after are not handled; the worker is gone. */
    j = open_rm("({ Hog(e) { const a = []; for (;;) a.push(new Array(10000).fill(1)); },\n"
                "   A(e) { sql('SELECT 1'); } })",
                0, 16);
    REQUIRE(j);
    prj_js_event h[3] = {ev("a", 0, "A", "{}", NULL), ev("a", 1, "Hog", "{}", NULL), ev("a", 2, "A", "{}", NULL)};
    CHECK_RC(prj_js_rm_process(j, h, 3, &r), 0);
    CHECK(r.done == 2 && r.n_sql == 1 && r.n_fail == 1);
    CHECK(r.n_fail == 1 && r.fail[0].kind == PJP_ERR_HEAP);
    CHECK(prj_js_pid(j) == 0);
    CHECK_RC(prj_js_rm_process(j, h, 1, &r), FACTUM_EFAULTED);
    CHECK(contains(prj_js_error(j), "heap limit of 16 MiB"));
    prj_js_close(j);

    /* Scripts refused at open, with the reason and the line. */
    static const struct {
        const char *script, *why;
    } bad[] = {
        {"fromAll().when({ $any: (s) => s })", "ReferenceError: fromAll is not defined (line 1)"},
        {"({ A(e) {} }) +", "SyntaxError"},
        {"[function () {}]", "must evaluate to an object of handler functions"},
        {"({ A: 'INSERT' })", "member \"A\" must be a handler function"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        prj_js_limits l = {0};
        j = NULL;
        CHECK_RC(prj_js_open_rm(&l, "rm.js", bad[i].script, strlen(bad[i].script), &j, err, sizeof err),
                 FACTUM_EINVAL);
        CHECK(!j && contains(err, bad[i].why));
    }
    /* A projection's engine refuses the read models' call. */
    j = open_js(COUNT);
    REQUIRE(j);
    CHECK_RC(prj_js_rm_process(j, e, 1, &r), FACTUM_EINVAL);
    prj_js_close(j);
}

/* A hostile read-model worker (JSP-2): this program itself, started as the
 * worker with FACTUM_FAKE_RM_WORKER=<case> in its environment. It answers
 * OPEN_RM properly, reads a batch, then sends a malformed answer. */
static int fake_read(int fd, void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = read(fd, (char *)p + off, n - off);
        if (r <= 0) return -1;
        off += (size_t)r;
    }
    return 0;
}

static int fake_frame(int fd, uint32_t *type, uint8_t **payload)
{
    uint32_t h[2];
    if (fake_read(fd, h, 8)) return -1;
    *type = h[0];
    *payload = malloc(h[1] ? h[1] : 1);
    return *payload && !fake_read(fd, *payload, h[1]) ? 0 : -1;
}

static void *fake_re(void *p, size_t n)
{
    return realloc(p, n);
}

static int fake_worker(int which)
{
    int fd = 3;
    uint32_t type;
    uint8_t *p;
    if (fake_frame(fd, &type, &p) || type != PJP_OPEN_RM) return 2;
    free(p);
    pjp_buf b = {0};
    size_t at = pjp_begin(&b, PJP_DEF, fake_re);
    pjp_u32(&b, PJP_DEF_ALL_EVENTS, fake_re);
    pjp_u32(&b, 0, fake_re);
    pjp_u32(&b, PJP_ABSENT, fake_re);
    pjp_u32(&b, PJP_ABSENT, fake_re);
    for (int i = 0; i < 3; i++)
        pjp_u32(&b, 0, fake_re);
    pjp_end(&b, at);
    if (b.failed || write(fd, b.p, b.len) != (ssize_t)b.len) return 2;
    b.len = 0;
    if (fake_frame(fd, &type, &p) == 0 && type == PJP_BATCH) {
        uint32_t n;
        memcpy(&n, p, 4);
        free(p);
        for (uint32_t i = 0; i < n; i++) {
            if (fake_frame(fd, &type, &p)) return 2;
            free(p);
        }
    } else {
        free(p);
        return 2;
    }
    switch (which) {
    case 1: /* a statement for an event not in the batch */
        at = pjp_begin(&b, PJP_SQL, fake_re);
        pjp_u32(&b, 7, fake_re);
        pjp_str(&b, "SELECT 1", 8, fake_re);
        pjp_str(&b, "{}", 2, fake_re);
        pjp_end(&b, at);
        break;
    case 2: /* statements out of the events' order */
        for (int k = 0; k < 2; k++) {
            uint32_t src = k ? 0 : 1;
            at = pjp_begin(&b, PJP_SQL, fake_re);
            pjp_u32(&b, src, fake_re);
            pjp_str(&b, "SELECT 1", 8, fake_re);
            pjp_str(&b, "{}", 2, fake_re);
            pjp_end(&b, at);
        }
        break;
    case 3: /* fewer events done, without running out of heap */
        at = pjp_begin(&b, PJP_DONE, fake_re);
        pjp_u32(&b, 1, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_end(&b, at);
        break;
    case 4: /* a failure of an unknown kind */
        at = pjp_begin(&b, PJP_FAIL, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_u32(&b, 99, fake_re);
        pjp_str(&b, "x", 1, fake_re);
        pjp_end(&b, at);
        break;
    case 5: { /* a frame longer than any the worker may send */
        uint32_t h[2] = {PJP_SQL, 0xfffffff0u};
        pjp_put(&b, h, 8, fake_re);
        break;
    }
    case 6: /* an empty statement */
        at = pjp_begin(&b, PJP_SQL, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_str(&b, "", 0, fake_re);
        pjp_str(&b, "{}", 2, fake_re);
        pjp_end(&b, at);
        break;
    case 7: /* a projection's frame */
        at = pjp_begin(&b, PJP_PART, fake_re);
        pjp_str(&b, "", 0, fake_re);
        pjp_u32(&b, PJP_ABSENT, fake_re);
        pjp_u32(&b, PJP_ABSENT, fake_re);
        pjp_end(&b, at);
        break;
    }
    /* then a proper end, which must not be reached */
    at = pjp_begin(&b, PJP_DONE, fake_re);
    pjp_u32(&b, 2, fake_re);
    pjp_u32(&b, 0, fake_re);
    pjp_end(&b, at);
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(fd, b.p + off, b.len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(b.p);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    return 0;
}

static void t_readmodel_hostile_worker(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0);
    self[n] = 0;
    for (int which = 1; which <= 7; which++) {
        char v[8];
        snprintf(v, sizeof v, "%d", which);
        setenv("FACTUM_FAKE_RM_WORKER", v, 1);
        prj_js_limits l = {.worker = self};
        prj_js *j = NULL;
        int rc = prj_js_open_rm(&l, "rm.js", "({})", 4, &j, err, sizeof err);
        unsetenv("FACTUM_FAKE_RM_WORKER");
        CHECK_RC(rc, 0);
        if (rc) continue;
        prj_js_event e[2] = {ev("a", 0, "A", "{}", NULL), ev("a", 1, "A", "{}", NULL)};
        prj_js_rm_result r;
        CHECK_RC(prj_js_rm_process(j, e, 2, &r), FACTUM_EFAULTED);
        if (!contains(prj_js_error(j), "protocol error")) fprintf(stderr, "  (case %d)\n", which);
        CHECK(prj_js_pid(j) == 0);
        prj_js_close(j);
    }
}

/* A hostile upcaster worker (JSP-2, ADR 0016): started as the worker with
 * FACTUM_FAKE_UP_WORKER=<case>. It answers OPEN_UP (one script, compiled),
 * reads a batch of UPCAST frames, then sends a malformed answer. */
static int fake_up_worker(int which)
{
    int fd = 3;
    uint32_t type;
    uint8_t *p;
    if (fake_frame(fd, &type, &p) || type != PJP_OPEN_UP) return 2;
    free(p);
    pjp_buf b = {0};
    size_t at = pjp_begin(&b, PJP_UPDEF, fake_re);
    pjp_u32(&b, which == 6 ? 2 : 1, fake_re); /* case 6: an answer for another number of scripts */
    pjp_u32(&b, PJP_ABSENT, fake_re);
    if (which == 6) pjp_u32(&b, PJP_ABSENT, fake_re);
    pjp_end(&b, at);
    if (b.failed || write(fd, b.p, b.len) != (ssize_t)b.len) return 2;
    b.len = 0;
    if (fake_frame(fd, &type, &p) == 0 && type == PJP_BATCH) {
        uint32_t n;
        memcpy(&n, p, 4);
        free(p);
        for (uint32_t i = 0; i < n; i++) {
            if (fake_frame(fd, &type, &p) || type != PJP_UPCAST) return 2;
            free(p);
        }
    } else {
        free(p);
        return 2;
    }
    switch (which) {
    case 1: /* the second event's answer first */
        at = pjp_begin(&b, PJP_UPOUT, fake_re);
        pjp_u32(&b, 1, fake_re);
        pjp_str(&b, "T", 1, fake_re);
        pjp_str(&b, "{}", 2, fake_re);
        pjp_u32(&b, PJP_ABSENT, fake_re);
        pjp_end(&b, at);
        break;
    case 2: /* an empty type */
        at = pjp_begin(&b, PJP_UPOUT, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_str(&b, "", 0, fake_re);
        pjp_str(&b, "{}", 2, fake_re);
        pjp_u32(&b, PJP_ABSENT, fake_re);
        pjp_end(&b, at);
        break;
    case 3: /* done without an answer for every event */
        at = pjp_begin(&b, PJP_DONE, fake_re);
        pjp_u32(&b, 2, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_end(&b, at);
        break;
    case 4: /* a read model's frame */
        at = pjp_begin(&b, PJP_SQL, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_str(&b, "SELECT 1", 8, fake_re);
        pjp_str(&b, "{}", 2, fake_re);
        pjp_end(&b, at);
        break;
    case 5: /* an answer that does not decode */
        at = pjp_begin(&b, PJP_UPOUT, fake_re);
        pjp_u32(&b, 0, fake_re);
        pjp_str(&b, "T", 1, fake_re);
        pjp_end(&b, at);
        break;
    }
    for (size_t off = 0; off < b.len;) {
        ssize_t w = write(fd, b.p + off, b.len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(b.p);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    return 0;
}

static void t_upcaster_hostile_worker(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0);
    self[n] = 0;
    for (int which = 1; which <= 6; which++) {
        char v[8];
        snprintf(v, sizeof v, "%d", which);
        setenv("FACTUM_FAKE_UP_WORKER", v, 1);
        prj_js_limits l = {.worker = self};
        prj_js *j = NULL;
        const char *names[1] = {"upcaster T v1->v2"}, *texts[1] = {"function (e) { return e; }"};
        size_t lens[1] = {strlen(texts[0])};
        int rc = prj_js_open_up(&l, 1, names, texts, lens, &j, err, sizeof err);
        unsetenv("FACTUM_FAKE_UP_WORKER");
        if (which == 6) { /* refused at the open */
            CHECK_RC(rc, -EIO);
            CHECK(contains(err, "protocol error"));
            continue;
        }
        CHECK_RC(rc, 0);
        if (rc) continue;
        prj_js_event e[2] = {ev("a", 0, "T", "{}", NULL), ev("a", 1, "T", "{}", NULL)};
        uint32_t script[2] = {0, 0};
        prj_js_up_result r;
        CHECK_RC(prj_js_up_process(j, e, script, 2, &r), FACTUM_EFAULTED);
        if (!contains(prj_js_error(j), "protocol error")) fprintf(stderr, "  (case %d: %s)\n", which, prj_js_error(j));
        CHECK(prj_js_pid(j) == 0);
        prj_js_close(j);
    }
}

/* The upcaster mode with the real worker: each event through its script;
 * a script that does not compile is reported at the open and fails its
 * events only; a throw, a time limit, a result that is no event are FAILs
 * of their events, the others are answered. */
static void t_upcaster_mode(void)
{
    const char *names[3] = {"upcaster A v1->v2", "upcaster B v1->v2", "upcaster C v1->v2"};
    const char *texts[3] = {"function (e) { return { type: e.type + '2', data: { n: e.data.n + 1 }, metadata: { m: 1 } }; }",
                            "function (e) { return e", /* does not compile */
                            "function (e) { if (e.data.n === 3) for (;;) {} if (e.data.n === 4) throw new Error('four');"
                            " if (e.data.n === 5) return 5; return { data: e.data }; }"};
    size_t lens[3] = {strlen(texts[0]), strlen(texts[1]), strlen(texts[2])};
    prj_js_limits l = {.ms_per_event = 100};
    prj_js *j = NULL;
    REQUIRE(prj_js_open_up(&l, 3, names, texts, lens, &j, err, sizeof err) == 0);
    CHECK(prj_js_up_script_error(j, 0) == NULL && prj_js_up_script_error(j, 2) == NULL);
    CHECK(contains(prj_js_up_script_error(j, 1), "SyntaxError"));
    prj_js_event e[6] = {ev("a", 0, "A", "{\"n\":1}", NULL), ev("a", 1, "B", "{}", NULL),
                         ev("a", 2, "C", "{\"n\":3}", NULL), ev("a", 3, "C", "{\"n\":4}", NULL),
                         ev("a", 4, "C", "{\"n\":5}", NULL), ev("a", 5, "C", "{\"n\":6}", NULL)};
    uint32_t script[6] = {0, 1, 2, 2, 2, 2};
    prj_js_up_result r;
    REQUIRE(prj_js_up_process(j, e, script, 6, &r) == 0);
    CHECK(r.done == 6 && r.n_out == 2 && r.n_fail == 4);
    CHECK(r.out[0].source == 0 && r.out[0].type_len == 2 && !memcmp(r.out[0].type, "A2", 2));
    CHECK(r.out[0].data_len == 7 && !memcmp(r.out[0].data, "{\"n\":2}", 7));
    CHECK(r.out[0].meta && r.out[0].meta_len == 7 && !memcmp(r.out[0].meta, "{\"m\":1}", 7));
    CHECK(r.out[1].source == 5 && r.out[1].meta == NULL);
    CHECK(r.fail[0].source == 1 && r.fail[1].source == 2 && r.fail[1].kind == PJP_ERR_TIMEOUT);
    CHECK(r.fail[2].source == 3 && r.fail[2].kind == PJP_ERR_SCRIPT);
    CHECK(r.fail[3].source == 4);
    CHECK(prj_js_pid(j) != 0); /* the worker goes on */
    prj_js_close(j);
}

int main(void)
{
    const char *fake = getenv("FACTUM_FAKE_RM_WORKER");
    if (fake) return fake_worker(atoi(fake));
    const char *fake_up = getenv("FACTUM_FAKE_UP_WORKER");
    if (fake_up) return fake_up_worker(atoi(fake_up));
    const char *w = getenv("FACTUM_JS_WORKER");
    if (!w || !*w || access(w, X_OK)) {
        printf("skipped: no JavaScript worker (FACTUM_JS_WORKER)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    RUN(t_upcaster_mode);
    RUN(t_upcaster_hostile_worker);
    RUN(t_count_by_type);
    RUN(t_sources_and_options);
    RUN(t_refused);
    RUN(t_partition_by);
    RUN(t_foreach_stream);
    RUN(t_bi_state);
    RUN(t_deleted);
    RUN(t_outputs);
    RUN(t_results);
    RUN(t_event_object);
    RUN(t_modern_javascript);
    RUN(t_state_round_trip);
    RUN(t_partition_cache);
    RUN(t_script_faults);
    RUN(t_worker_dies);
    RUN(t_misuse);
    RUN(t_readmodel_mode);
    RUN(t_readmodel_hostile_worker);
    return harness_done();
}
