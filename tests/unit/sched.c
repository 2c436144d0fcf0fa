/* Scheduled events (src/store/sched.c): delivery in due order, once (SC-1,
 * SC-2), cancellation (SC-3), restarts with pending requests and the
 * checkpoint (SC-4), requests past due at open, failures recorded, the
 * bounded pending set (SC-5); and the times and clock of temporal.c (TM-1). */
#include "harness.h"

#include "base/base.h"
#include "store/store_int.h"

static const int64_t MS = 1000000;

static factum_store *open_store(const char *dir)
{
    factum_store *s = NULL;
    int rc = factum_store_open(dir, NULL, &s);
    if (rc) fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
    return s;
}

static int sched(factum_store *s, const char *stream, int64_t at, const char *type, const char *data,
                 const char *meta, uint8_t id[16])
{
    factum_event_data e = {.type = type, .flags = FACTUM_EVENT_JSON, .data = data, .data_len = strlen(data)};
    if (meta) {
        e.metadata = meta;
        e.metadata_len = strlen(meta);
        e.flags |= FACTUM_EVENT_META_JSON;
    }
    return factum_schedule(s, stream, at, &e, id);
}

/* Events of stream (up to cap) after waiting up to ms for at least want. */
static size_t wait_events(factum_store *s, const char *stream, size_t want, int ms, factum_event *evs, size_t cap)
{
    size_t n = 0;
    for (int waited = 0;; waited += 10) {
        uint64_t next;
        int rc = factum_read_stream(s, stream, 0, FACTUM_FORWARD, evs, cap, &n, &next);
        if (rc) n = 0;
        if (n >= want || waited >= ms) return n;
        struct timespec ts = {0, 10 * MS};
        nanosleep(&ts, NULL);
    }
}

static int count_cb(void *ctx, const factum_schedule_info *info)
{
    (void)info;
    (*(int *)ctx)++;
    return 0;
}

static int pending(factum_store *s)
{
    int n = 0;
    int rc = factum_schedule_list(s, count_cb, &n);
    return rc ? rc : n;
}

static void t_due_order(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-order");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    int64_t now = base_now_ns();
    static const int order[] = {3, 0, 4, 1, 2};
    for (int i = 0; i < 5; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"n\":%d}", order[i]);
        CHECK_RC(sched(s, "target", now + (200 + 60 * order[i]) * MS, "Tick", data, "{\"k\":\"v\"}", NULL), 0);
    }
    CHECK(pending(s) == 5);
    factum_event evs[8];
    size_t n = wait_events(s, "target", 5, 5000, evs, 8);
    CHECK_EQ_U64(n, 5);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", (int)i);
        CHECK(evs[i].data_len == strlen(want) && !memcmp(evs[i].data, want, evs[i].data_len));
        CHECK(!strcmp(evs[i].type, "Tick"));
        CHECK(evs[i].timestamp_ns >= now + (200 + 60 * (int64_t)i) * MS); /* not before it is due */
        CHECK(evs[i].metadata_len == 9 && !memcmp(evs[i].metadata, "{\"k\":\"v\"}", 9));
    }
    CHECK(pending(s) == 0);
    /* Nothing more arrives (each once). */
    struct timespec ts = {0, 300 * MS};
    nanosleep(&ts, NULL);
    CHECK_EQ_U64(wait_events(s, "target", 6, 0, evs, 8), 5);
    factum_event m[8];
    CHECK_EQ_U64(wait_events(s, FACTUM_SCHEDULED_DONE_STREAM, 5, 0, m, 8), 5);
    for (int i = 0; i < 5; i++)
        CHECK(!strcmp(m[i].type, "$delivered"));
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_cancel(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-cancel");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    int64_t now = base_now_ns();
    uint8_t a[16], b[16], unknown[16];
    CHECK_RC(sched(s, "c-target", now + 400 * MS, "A", "{}", NULL, a), 0);
    CHECK_RC(sched(s, "c-target", now + 200 * MS, "B", "{}", NULL, b), 0);
    CHECK_RC(factum_schedule_cancel(s, a), 0);
    CHECK_RC(factum_schedule_cancel(s, a), FACTUM_ENOTFOUND); /* cancelled already */
    factum_uuid_v4(unknown);
    CHECK_RC(factum_schedule_cancel(s, unknown), FACTUM_ENOTFOUND);
    CHECK(pending(s) == 1);
    factum_event evs[4];
    CHECK_EQ_U64(wait_events(s, "c-target", 1, 3000, evs, 4), 1);
    CHECK(!strcmp(evs[0].type, "B"));
    CHECK_RC(factum_schedule_cancel(s, b), FACTUM_ENOTFOUND); /* delivered already */
    struct timespec ts = {0, 500 * MS};
    nanosleep(&ts, NULL);
    CHECK_EQ_U64(wait_events(s, "c-target", 2, 0, evs, 4), 1); /* A never came */
    CHECK(pending(s) == 0);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* Cancellations racing deliveries: exactly one wins for each (SC-1, SC-3). */
static void t_cancel_race(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-race");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    enum { N = 60 };
    uint8_t ids[N][16];
    int64_t now = base_now_ns();
    for (int i = 0; i < N; i++)
        CHECK_RC(sched(s, "r-target", now + (100 + i * 3) * MS, "E", "{}", NULL, ids[i]), 0);
    int won = 0;
    for (int i = 0; i < N; i++) {
        while (base_now_ns() < now + (100 + i * 3) * MS)
            ;
        int rc = factum_schedule_cancel(s, ids[i]);
        CHECK(rc == 0 || rc == FACTUM_ENOTFOUND);
        won += rc == 0;
    }
    struct timespec ts = {0, 300 * MS};
    nanosleep(&ts, NULL);
    factum_event evs[N + 1];
    size_t n = wait_events(s, "r-target", N - (size_t)won, 2000, evs, N + 1);
    CHECK_EQ_U64(n + (size_t)won, N);
    factum_event m[N + 1];
    CHECK_EQ_U64(wait_events(s, FACTUM_SCHEDULED_DONE_STREAM, N, 0, m, N + 1), N);
    printf("  %d of %d cancellations won the race\n", won, N);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_restart_pending(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-restart");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    int64_t now = base_now_ns();
    CHECK_RC(sched(s, "early", now - 5000 * MS, "Past", "{}", NULL, NULL), 0); /* due already */
    factum_event evs[4];
    CHECK_EQ_U64(wait_events(s, "early", 1, 3000, evs, 4), 1);
    CHECK_RC(sched(s, "soon", now + 700 * MS, "Soon", "{}", NULL, NULL), 0);
    CHECK_RC(sched(s, "later", now + 600000 * MS, "Later", "{}", NULL, NULL), 0);
    CHECK_RC(factum_store_close(s), 0);
    /* Closed while "soon" comes due: delivered at once on the next open. */
    struct timespec ts = {0, 900 * MS};
    nanosleep(&ts, NULL);
    s = open_store(dir);
    REQUIRE(s);
    CHECK_EQ_U64(wait_events(s, "soon", 1, 1000, evs, 4), 1);
    CHECK(pending(s) == 1);
    CHECK_EQ_U64(wait_events(s, "early", 1, 0, evs, 4), 1); /* not again */
    CHECK_RC(factum_store_close(s), 0);
    /* The checkpoint covers the resolved prefix (SC-4). */
    s = open_store(dir);
    REQUIRE(s);
    factum_event ck;
    size_t n;
    CHECK_RC(factum_read_stream(s, "$scheduled-checkpoint", FACTUM_END, FACTUM_BACKWARD, &ck, 1, &n, NULL), 0);
    CHECK(n == 1 && ck.data_len == 9 && !memcmp(ck.data, "{\"low\":2}", 9));
    CHECK(pending(s) == 1);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_failures(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-fail");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    int64_t now = base_now_ns();
    /* Refused at the call. */
    CHECK_RC(sched(s, "", now, "T", "{}", NULL, NULL), FACTUM_EBADNAME);
    CHECK_RC(sched(s, "$scheduled", now, "T", "{}", NULL, NULL), FACTUM_EINVAL);
    CHECK_RC(sched(s, "x", now, "T", "{}", "[1]", NULL), FACTUM_EBADJSON);
    CHECK_RC(sched(s, "x", now, "T", "{}", "{\"$deliverTo\":\"y\"}", NULL), FACTUM_EINVAL);
    CHECK_RC(factum_schedule_check_request("{\"$deliverTo\":\"y\",\"$deliverAt\":\"2026-01-01T00:00:00Z\"}", 54,
                                           NULL),
             0);
    const char *why = NULL;
    CHECK_RC(factum_schedule_check_request("{\"$deliverTo\":\"y\",\"$deliverAt\":\"tomorrow\"}", 42, &why),
             FACTUM_EINVAL);
    CHECK(why != NULL);
    /* A tombstoned target: recorded as failed, not retried. */
    factum_event_data e = {.type = "T", .data = "x", .data_len = 1};
    CHECK_RC(factum_append(s, "dead", FACTUM_ANY, &e, 1, NULL), 0);
    CHECK_RC(factum_tombstone_stream(s, "dead", FACTUM_ANY, NULL), 0);
    uint8_t id[16];
    CHECK_RC(sched(s, "dead", now, "T", "{}", NULL, id), 0);
    /* A malformed request appended directly (not through factumd). */
    const char *bad = "{\"$deliverTo\":\"y\",\"$deliverAt\":\"not a time\"}";
    factum_event_data r = {.type = "T", .flags = FACTUM_EVENT_META_JSON, .metadata = bad, .metadata_len = strlen(bad)};
    CHECK_RC(factum_append(s, FACTUM_SCHEDULED_STREAM, FACTUM_ANY, &r, 1, NULL), 0);
    factum_event m[4];
    size_t n = wait_events(s, FACTUM_SCHEDULED_DONE_STREAM, 2, 3000, m, 4);
    CHECK_EQ_U64(n, 2);
    for (size_t i = 0; i < n; i++)
        CHECK(!strcmp(m[i].type, "$failed"));
    CHECK(pending(s) == 0);
    CHECK_RC(factum_schedule_cancel(s, id), FACTUM_ENOTFOUND);
    CHECK_RC(factum_store_close(s), 0);
    /* Not retried after a restart either. */
    s = open_store(dir);
    REQUIRE(s);
    struct timespec ts = {0, 200 * MS};
    nanosleep(&ts, NULL);
    CHECK_EQ_U64(wait_events(s, FACTUM_SCHEDULED_DONE_STREAM, 3, 0, m, 4), 2);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* SC-5: more requests than the scheduler holds. */
static void t_paging(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-paging");
    sched_test_max_pending(4);
    factum_store *s = open_store(dir);
    REQUIRE(s);
    h_rng r = {harness_seed("sched paging")};
    enum { N = 40 };
    int64_t now = base_now_ns(), due[N];
    for (int i = 0; i < N; i++) {
        due[i] = now + (int64_t)(100 + h_below(&r, 1200)) * MS;
        char data[32];
        snprintf(data, sizeof data, "%d", i);
        CHECK_RC(sched(s, "p-target", due[i], "P", data, NULL, NULL), 0);
    }
    factum_event evs[N + 1];
    size_t n = wait_events(s, "p-target", N, 6000, evs, N + 1);
    CHECK_EQ_U64(n, N);
    int seen[N] = {0};
    for (size_t i = 0; i < n; i++) {
        int k = atoi((const char *)evs[i].data);
        REQUIRE(k >= 0 && k < N);
        seen[k]++;
        CHECK(evs[i].timestamp_ns >= due[k]);
    }
    for (int i = 0; i < N; i++)
        CHECK(seen[i] == 1);
    CHECK_RC(factum_store_close(s), 0);
    sched_test_max_pending(0);
    harness_rm_rf(dir);
}

static void t_times(void)
{
    int64_t ns;
    CHECK_RC(factum_time_parse("1970-01-01T00:00:00Z", 20, &ns), 0);
    CHECK(ns == 0);
    CHECK_RC(factum_time_parse("2026-03-15T00:00:00Z", 20, &ns), 0);
    CHECK(ns == 1773532800ll * 1000000000);
    CHECK_RC(factum_time_parse("2026-03-15", 10, &ns), 0);
    CHECK(ns == 1773532800ll * 1000000000);
    CHECK_RC(factum_time_parse("2026-03-15T02:00:00.5+02:00", 27, &ns), 0);
    CHECK(ns == 1773532800ll * 1000000000 + 500000000);
    CHECK_RC(factum_time_parse("1969-12-31T23:59:59.999999999Z", 30, &ns), 0);
    CHECK(ns == -1);
    static const char *const bad[] = {"", "2026-02-29", "2026-13-01", "2026-03-15T00:00:00", "2026-03-15T25:00:00Z",
                                      "2026-03-15T00:00:00.Z", "tomorrow", "2026-03-15T00:00:00Zjunk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RC(factum_time_parse(bad[i], strlen(bad[i]), &ns), FACTUM_EINVAL);
    char buf[40];
    factum_time_format(1773532800ll * 1000000000 + 5, buf);
    CHECK(!strcmp(buf, "2026-03-15T00:00:00.000000005Z"));
    factum_time_format(-1, buf);
    CHECK(!strcmp(buf, "1969-12-31T23:59:59.999999999Z"));
    h_rng r = {harness_seed("time round trip")};
    for (int i = 0; i < 10000; i++) {
        int64_t t = (int64_t)(h_rand(&r) % (8000000000ull * 1000000000ull)) - 4000000000ll * 1000000000ll;
        factum_time_format(t, buf);
        CHECK_RC(factum_time_parse(buf, strlen(buf), &ns), 0);
        CHECK(ns == t);
    }
}

/* TM-1 across a restart: the clock stepped back an hour while closed. */
static void t_clock_restart(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "clock-restart");
    factum_store *s = open_store(dir);
    REQUIRE(s);
    factum_event_data e = {.type = "T", .data = "x", .data_len = 1};
    factum_append_result r1, r2, r3;
    CHECK_RC(factum_append(s, "c", FACTUM_ANY, &e, 1, &r1), 0);
    CHECK_RC(factum_store_close(s), 0);
    base_clock_step_for_tests(-3600ll * 1000000000);
    s = open_store(dir);
    REQUIRE(s);
    CHECK_RC(factum_append(s, "c", FACTUM_ANY, &e, 1, &r2), 0);
    CHECK(r2.timestamp_ns > r1.timestamp_ns);
    base_clock_step_for_tests(-60ll * 1000000000);
    CHECK_RC(factum_append(s, "c", FACTUM_ANY, &e, 1, &r3), 0);
    CHECK(r3.timestamp_ns > r2.timestamp_ns);
    base_clock_step_for_tests(3660ll * 1000000000);
    uint64_t p;
    CHECK_RC(factum_position_at(s, r2.timestamp_ns, &p), 0);
    CHECK_EQ_U64(p, r2.first_position);
    CHECK_RC(factum_position_at(s, r1.timestamp_ns - 1, &p), 0);
    CHECK_EQ_U64(p, 0);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_times);
    RUN(t_clock_restart);
    RUN(t_due_order);
    RUN(t_cancel);
    RUN(t_cancel_race);
    RUN(t_restart_pending);
    RUN(t_failures);
    RUN(t_paging);
    return harness_done();
}
