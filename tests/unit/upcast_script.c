/* Unit tests of script upcasters (src/store/upcast.c with
 * src/store/upscript.c and factum-js's upcaster mode, UPS-1..4, UPC-5): the
 * document's checks (a script or steps, not both; factum_upcaster_set
 * compiles the script first), a script upcast end to end (data, type,
 * metadata, "$schemaVersion"), chains that mix scripts and steps,
 * factum_upcast_many over a page (events without an upcaster untouched,
 * the first failure stops it at its index), every failure naming the event
 * and the upcaster (a throw with its line, an endless loop stopped by the
 * time limit, a result that is no event, the sandbox's missing clock, an
 * output over the size limit, a script that does not compile, a worker that
 * is killed and is started again), and a library subscription
 * delivering script-upcast events. Needs the worker (FACTUM_JS_WORKER):
 * without it the test is skipped (77). */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"

static char dir[512];

static factum_store *open_fresh(const char *name)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    o.max_event_size = 64 * 1024;
    harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void close_rm(factum_store *s)
{
    factum_store_close(s);
    harness_rm_rf(dir);
}

static int set_doc(factum_store *s, const char *doc, char *err, size_t el)
{
    err[0] = 0;
    int rc = factum_upcaster_set(s, doc, strlen(doc), err, el);
    if (rc) fprintf(stderr, "  (set: %s)\n", err);
    return rc;
}

/* Append a `$upcaster-set` without factum_upcaster_set's compile check. */
static void append_doc(factum_store *s, const char *doc)
{
    factum_event_data ev = harness_event(FACTUM_UPCASTER_SET_TYPE, doc);
    REQUIRE(factum_append(s, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &ev, 1, NULL) == 0);
}

static void append(factum_store *s, const char *stream, const char *type, const char *data, const char *meta)
{
    factum_event_data ev = harness_event(type, data);
    if (meta) {
        ev.metadata = meta;
        ev.metadata_len = strlen(meta);
        ev.flags |= FACTUM_EVENT_META_JSON;
    }
    REQUIRE(factum_append(s, stream, FACTUM_ANY, &ev, 1, NULL) == 0);
}

static int read_up(factum_store *s, const char *stream, uint64_t version, factum_upcast_buf *b, factum_event *out)
{
    size_t n = 0;
    factum_event raw;
    int rc = factum_read_stream(s, stream, version, FACTUM_FORWARD, &raw, 1, &n, NULL);
    if (rc || n != 1) return rc ? rc : -1;
    return factum_upcast(s, &raw, b, out);
}

static int eq(const void *p, size_t len, const char *want)
{
    int ok = len == strlen(want) && memcmp(p, want, len) == 0;
    if (!ok) fprintf(stderr, "  got  %.*s\n  want %s\n", (int)len, (const char *)p, want);
    return ok;
}

static int has(const char *text, const char *needle)
{
    int ok = text && strstr(text, needle) != NULL;
    if (!ok) fprintf(stderr, "  expected \"%s\" in \"%s\"\n", needle, text ? text : "(null)");
    return ok;
}

/* A document for MoneyDeposited from -> to with this script (JSON-escaped). */
static void doc(char *out, size_t n, const char *type, int from, int to, const char *script)
{
    snprintf(out, n, "{\"eventType\":\"%s\",\"fromVersion\":%d,\"toVersion\":%d,\"script\":\"%s\"}", type, from, to,
             script);
}

static void t_documents(void)
{
    char err[512];
    const char *bad[] = {
        "{\"eventType\":\"A\",\"fromVersion\":1,\"toVersion\":2,\"script\":\"function(e){return e}\",\"steps\":[]}",
        "{\"eventType\":\"A\",\"fromVersion\":1,\"toVersion\":2,\"script\":\"\"}",
        "{\"eventType\":\"A\",\"fromVersion\":1,\"toVersion\":2,\"script\":42}",
        "{\"eventType\":\"A\",\"fromVersion\":1,\"toVersion\":2,\"script\":\"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CHECK_RC(factum_upcaster_check(bad[i], strlen(bad[i]), err, sizeof err), FACTUM_EINVAL);
        CHECK(err[0] != 0);
    }
    const char *good = "{\"eventType\":\"A\",\"fromVersion\":1,\"toVersion\":2,\"script\":\"function (e) { return e; }\"}";
    CHECK_RC(factum_upcaster_check(good, strlen(good), err, sizeof err), 0);

    /* factum_upcaster_set compiles the script first: nothing is appended
     * when it does not compile or is not a function. */
    factum_store *s = open_fresh("upscript-docs");
    REQUIRE(s);
    char d[1024];
    doc(d, sizeof d, "A", 1, 2, "function (e) { return e;");
    CHECK_RC(factum_upcaster_set(s, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "does not compile"));
    CHECK(has(err, "SyntaxError"));
    doc(d, sizeof d, "A", 1, 2, "42");
    CHECK_RC(factum_upcaster_set(s, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "must be a function expression"));
    doc(d, sizeof d, "A", 1, 2, "async function (e) { return e; }");
    CHECK_RC(factum_upcaster_set(s, d, strlen(d), err, sizeof err), FACTUM_EINVAL);
    CHECK(has(err, "async"));
    size_t n = 0;
    factum_event ev;
    CHECK_RC(factum_read_stream(s, FACTUM_UPCASTERS_STREAM, 0, FACTUM_FORWARD, &ev, 1, &n, NULL), FACTUM_ENOTFOUND);
    doc(d, sizeof d, "A", 1, 2, "function (e) { return e; }");
    CHECK_RC(set_doc(s, d, err, sizeof err), 0);
    close_rm(s);
}

static const char *SCRIPT_V1 =
    "function (e) {\\n"
    "  const d = e.data;\\n"
    "  return { type: 'FundsDeposited',\\n"
    "           data: { cents: d.amount * 100, currency: d.currency || 'EUR', tags: d.tags.map(t => t.toUpperCase()) },\\n"
    "           metadata: Object.assign({}, e.metadata, { upcastBy: 'script', sawType: e.type }) };\\n"
    "}";

static void t_script_end_to_end(void)
{
    factum_store *s = open_fresh("upscript-e2e");
    REQUIRE(s);
    append(s, "acct-1", "MoneyDeposited", "{\"amount\":12,\"tags\":[\"a\",\"b\"]}", "{\"who\":\"x\"}");
    append(s, "acct-1", "MoneyDeposited", "{\"amount\":3,\"currency\":\"USD\",\"tags\":[]}", NULL);
    append(s, "acct-1", "Other", "{\"k\":1}", NULL);
    char d[2048], err[512];
    doc(d, sizeof d, "MoneyDeposited", 1, 2, SCRIPT_V1);
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);

    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    factum_event up;
    CHECK_RC(read_up(s, "acct-1", 0, b, &up), 1);
    CHECK(eq(up.type, up.type_len, "FundsDeposited"));
    CHECK(eq(up.data, up.data_len, "{\"cents\":1200,\"currency\":\"EUR\",\"tags\":[\"A\",\"B\"]}"));
    CHECK(eq(up.metadata, up.metadata_len,
             "{\"who\":\"x\",\"upcastBy\":\"script\",\"sawType\":\"MoneyDeposited\",\"$schemaVersion\":2}"));
    CHECK((up.flags & FACTUM_EVENT_JSON) && (up.flags & FACTUM_EVENT_META_JSON));
    CHECK_RC(read_up(s, "acct-1", 1, b, &up), 1);
    CHECK(eq(up.data, up.data_len, "{\"cents\":300,\"currency\":\"USD\",\"tags\":[]}"));
    CHECK_RC(read_up(s, "acct-1", 2, b, &up), 0); /* another type: as stored */
    CHECK(eq(up.data, up.data_len, "{\"k\":1}"));
    /* the stored bytes did not change */
    size_t n = 0;
    factum_event raw;
    REQUIRE(factum_read_stream(s, "acct-1", 0, FACTUM_FORWARD, &raw, 1, &n, NULL) == 0 && n == 1);
    CHECK(eq(raw.data, raw.data_len, "{\"amount\":12,\"tags\":[\"a\",\"b\"]}"));
    CHECK(eq(raw.type, raw.type_len, "MoneyDeposited"));
    /* An event written at v2 already is not upcast. */
    append(s, "acct-1", "MoneyDeposited", "{\"cents\":5}", "{\"$schemaVersion\":2}");
    CHECK_RC(read_up(s, "acct-1", 3, b, &up), 0);
    factum_upcast_buf_free(b);
    close_rm(s);
}

/* v1 -steps-> v2 -script-> v3 (renames the type) -steps-> v4 of the new type. */
static void t_mixed_chain(void)
{
    factum_store *s = open_fresh("upscript-chain");
    REQUIRE(s);
    char d[2048], err[512];
    const char *v1 = "{\"eventType\":\"Dep\",\"fromVersion\":1,\"toVersion\":2,\"steps\":["
                     "{\"op\":\"rename\",\"from\":\"amount\",\"to\":\"amt\"}]}";
    REQUIRE(set_doc(s, v1, err, sizeof err) == 0);
    doc(d, sizeof d, "Dep", 2, 3,
        "function (e) { return { type: 'Deposit', data: { value: e.data.amt + 1, was: e.metadata.$schemaVersion === undefined } }; }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    const char *v3 = "{\"eventType\":\"Deposit\",\"fromVersion\":3,\"toVersion\":4,\"steps\":["
                     "{\"op\":\"default\",\"path\":\"unit\",\"value\":\"cent\"}]}";
    REQUIRE(set_doc(s, v3, err, sizeof err) == 0);
    append(s, "d-1", "Dep", "{\"amount\":41}", "{\"a\":1}");
    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    factum_event up;
    CHECK_RC(read_up(s, "d-1", 0, b, &up), 1);
    CHECK(eq(up.type, up.type_len, "Deposit"));
    CHECK(eq(up.data, up.data_len, "{\"value\":42,\"was\":true,\"unit\":\"cent\"}"));
    CHECK(eq(up.metadata, up.metadata_len, "{\"a\":1,\"$schemaVersion\":4}"));
    factum_upcast_buf_free(b);
    close_rm(s);
}

static void t_many(void)
{
    factum_store *s = open_fresh("upscript-many");
    REQUIRE(s);
    enum { N = 200, BAD = 136 }; /* an Ev (i % 3 != 2) */
    for (int i = 0; i < N; i++) {
        char js[64];
        snprintf(js, sizeof js, "{\"n\":%d%s}", i, i == BAD ? ",\"boom\":true" : "");
        append(s, "m-1", i % 3 == 2 ? "Plain" : "Ev", js, NULL);
    }
    char d[1024], err[512];
    doc(d, sizeof d, "Ev", 1, 2,
        "function (e) { if (e.data.boom) throw new Error('boom at ' + e.data.n); return { data: { m: e.data.n * 2 } }; }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    factum_event raw[N], up[N];
    size_t n = 0;
    REQUIRE(factum_read_stream(s, "m-1", 0, FACTUM_FORWARD, raw, N, &n, NULL) == 0 && n == N);
    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    size_t done = 99;
    /* The first 100: all upcast (or untouched: Plain). */
    CHECK_RC(factum_upcast_many(s, raw, 100, b, up, &done), 0);
    CHECK(done == 100);
    int ok = 1;
    for (int i = 0; i < 100 && ok; i++) {
        char want[64];
        if (i % 3 == 2) {
            snprintf(want, sizeof want, "{\"n\":%d}", i);
            ok = eq(up[i].data, up[i].data_len, want) && up[i].data == raw[i].data;
        } else {
            snprintf(want, sizeof want, "{\"m\":%d}", 2 * i);
            ok = eq(up[i].data, up[i].data_len, want) && eq(up[i].metadata, up[i].metadata_len, "{\"$schemaVersion\":2}");
        }
    }
    CHECK(ok);
    factum_upcast_buf_reset(b);
    /* All of them: stops at BAD, the ones before it upcast. */
    CHECK_RC(factum_upcast_many(s, raw, N, b, up, &done), FACTUM_EUPCAST);
    CHECK(done == BAD);
    CHECK(has(factum_upcast_buf_error(b), "cannot upcast event 136@m-1"));
    CHECK(has(factum_upcast_buf_error(b), "upcaster Ev v1->v2 (script): Error: boom at 136 (line 1)"));
    CHECK(eq(up[BAD - 1].data, up[BAD - 1].data_len, "{\"m\":270}"));
    /* in place */
    factum_upcast_buf_reset(b);
    CHECK_RC(factum_upcast_many(s, raw, 10, b, raw, &done), 0);
    CHECK(done == 10 && eq(raw[0].data, raw[0].data_len, "{\"m\":0}"));
    factum_upcast_buf_free(b);
    close_rm(s);
}

static void expect_failure(factum_store *s, const char *stream, const char *script, const char *data,
                           const char *want1, const char *want2)
{
    char d[2048], err[512];
    doc(d, sizeof d, "F", 1, 2, script);
    append_doc(s, d); /* as a client would: no compile check */
    append(s, stream, "F", data, NULL);
    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    factum_event up;
    CHECK_RC(read_up(s, stream, 0, b, &up), FACTUM_EUPCAST);
    char e0[64];
    snprintf(e0, sizeof e0, "cannot upcast event 0@%s", stream);
    CHECK(has(factum_upcast_buf_error(b), e0));
    CHECK(has(factum_upcast_buf_error(b), want1));
    if (want2) CHECK(has(factum_upcast_buf_error(b), want2));
    factum_upcast_buf_free(b);
    (void)err;
}

/* SIGKILL this process's factum-js children: how many. */
static int kill_workers(void)
{
    int killed = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        int pid = atoi(de->d_name);
        if (pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1 || ppid != getpid() || !strstr(buf, "(factum-js)")) continue;
        if (kill(pid, SIGKILL) == 0) killed++;
    }
    if (d) closedir(d);
    return killed;
}

static void t_failures(void)
{
    factum_store *s = open_fresh("upscript-fail");
    REQUIRE(s);
    expect_failure(s, "f-throw", "function (e) {\\n  let x = 1;\\n  throw new TypeError('no ' + x);\\n}", "{}",
                   "upcaster F v1->v2 (script): TypeError: no 1", "(line 3)");
    uint64_t t0 = (base_mono_ns_test() / 1000000u);
    expect_failure(s, "f-loop", "function (e) { for (;;) {} }", "{}", "upcaster F v1->v2 (script): the script timed out after 250 ms", NULL);
    fprintf(stderr, "  the endless loop was stopped after %" PRIu64 " ms\n", (base_mono_ns_test() / 1000000u) - t0);
    expect_failure(s, "f-undef", "function (e) { }", "{}", "(script): TypeError: the script returned undefined, not an object", NULL);
    expect_failure(s, "f-array", "function (e) { return { data: [1] }; }", "{}", "data that is an array", NULL);
    expect_failure(s, "f-type", "function (e) { return { type: '$x', data: {} }; }", "{}", "type string $x", NULL);
    expect_failure(s, "f-clock", "function (e) { return { data: { t: Date.now() } }; }", "{}",
                   "Date.now() is not available to upcasters", NULL);
    expect_failure(s, "f-rand", "function (e) { return { data: { r: Math.random() } }; }", "{}",
                   "Math.random() is not available", NULL);
    expect_failure(s, "f-newdate", "function (e) { return { data: { t: new Date().getTime() } }; }", "{}",
                   "new Date() without arguments", NULL);
    expect_failure(s, "f-eval", "function (e) { return { data: eval('({})') }; }", "{}", "EvalError", NULL);
    expect_failure(s, "f-big", "function (e) { return { data: { s: 'x'.repeat(100000) } }; }", "{}",
                   "over the event size limit", NULL);
    expect_failure(s, "f-syntax", "function (e) { return e", "{}", "upcaster F v1->v2 (script): the script does not compile: SyntaxError", NULL);
    expect_failure(s, "f-data", "function (e) { return e; }", "[1,2]", "its data is not a JSON object", NULL);
    /* A worker killed (as a crash would): the events of that round fail
     * saying so, the next upcast starts another worker (UPS-3). */
    char d[512], err[512];
    doc(d, sizeof d, "F", 1, 2, "function (e) { return { data: { fine: true } }; }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    factum_event up;
    CHECK_RC(read_up(s, "f-throw", 0, b, &up), 1);
    CHECK(eq(up.data, up.data_len, "{\"fine\":true}"));
    CHECK(kill_workers() >= 1);
    CHECK_RC(read_up(s, "f-throw", 0, b, &up), FACTUM_EUPCAST);
    CHECK(has(factum_upcast_buf_error(b), "upcaster F v1->v2 (script): the JavaScript engine"));
    CHECK(has(factum_upcast_buf_error(b), "signal 9"));
    CHECK_RC(read_up(s, "f-throw", 0, b, &up), 1);
    CHECK(eq(up.data, up.data_len, "{\"fine\":true}"));
    factum_upcast_buf_free(b);
    close_rm(s);
}

/* UPC-3 with scripts: while one thread's script runs (an endless loop, up
 * to the time limit), another registers an upcaster and upcasts with it at
 * once: the rebuild does not wait for the script. */
typedef struct slow_arg {
    factum_store *s;
    int rc;
    uint64_t done_ms;
} slow_arg;

static void *slow_reader(void *p)
{
    slow_arg *a = p;
    factum_upcast_buf *b;
    if (factum_upcast_buf_new(&b)) return NULL;
    factum_event up;
    a->rc = read_up(a->s, "spin-1", 0, b, &up);
    a->done_ms = base_mono_ns_test() / 1000000u;
    factum_upcast_buf_free(b);
    return NULL;
}

static void t_rebuild_during_script(void)
{
    factum_store *s = open_fresh("upscript-rebuild");
    REQUIRE(s);
    char d[512], err[512];
    doc(d, sizeof d, "Spin", 1, 2, "function (e) { for (;;) {} }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    append(s, "spin-1", "Spin", "{}", NULL);
    append(s, "dep-1", "Dep", "{\"amount\":1}", NULL);
    /* the worker started once, so that the slow read below is the script's time */
    doc(d, sizeof d, "Warm", 1, 2, "function (e) { return e; }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    factum_upcast_buf *b;
    REQUIRE(factum_upcast_buf_new(&b) == 0);
    factum_event up;
    CHECK_RC(read_up(s, "dep-1", 0, b, &up), 0);
    slow_arg a = {s, 0, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, slow_reader, &a) == 0);
    usleep(50000); /* the script is running */
    const char *v1 = "{\"eventType\":\"Dep\",\"fromVersion\":1,\"toVersion\":2,\"steps\":["
                     "{\"op\":\"rename\",\"from\":\"amount\",\"to\":\"cents\"}]}";
    REQUIRE(set_doc(s, v1, err, sizeof err) == 0);
    CHECK_RC(read_up(s, "dep-1", 0, b, &up), 1);
    uint64_t mine = base_mono_ns_test() / 1000000u;
    CHECK(eq(up.data, up.data_len, "{\"cents\":1}"));
    pthread_join(th, NULL);
    CHECK_RC(a.rc, FACTUM_EUPCAST);
    fprintf(stderr, "  the new upcaster applied %" PRId64 " ms before the endless script was stopped\n",
            (int64_t)a.done_ms - (int64_t)mine);
    CHECK(mine < a.done_ms);
    factum_upcast_buf_free(b);
    close_rm(s);
}

static void t_subscription(void)
{
    factum_store *s = open_fresh("upscript-sub");
    REQUIRE(s);
    char d[1024], err[512];
    doc(d, sizeof d, "Ev", 1, 2, "function (e) { return { data: { twice: e.data.n * 2 } }; }");
    REQUIRE(set_doc(s, d, err, sizeof err) == 0);
    for (int i = 0; i < 5; i++) {
        char js[32];
        snprintf(js, sizeof js, "{\"n\":%d}", i);
        append(s, "sub-1", "Ev", js, NULL);
    }
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.stream = "sub-1";
    o.upcast = 1;
    factum_sub *sub = NULL;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    factum_sub_item it[8];
    int seen = 0;
    for (int tries = 0; tries < 50 && seen < 5; tries++) {
        size_t n = 0;
        REQUIRE(factum_sub_poll(sub, it, 8, &n, 100) == 0);
        for (size_t i = 0; i < n; i++) {
            if (it[i].kind != FACTUM_SUB_EVENT) continue;
            char want[32];
            snprintf(want, sizeof want, "{\"twice\":%d}", 2 * seen);
            CHECK(eq(it[i].event.data, it[i].event.data_len, want));
            seen++;
        }
    }
    CHECK(seen == 5);
    factum_sub_close(sub);
    close_rm(s);
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set (no factum-js): skipped\n");
        return 77;
    }
    RUN(t_documents);
    RUN(t_script_end_to_end);
    RUN(t_mixed_chain);
    RUN(t_many);
    RUN(t_failures);
    RUN(t_rebuild_during_script);
    RUN(t_subscription);
    return harness_done();
}
