/* Many writers and readers at once (ST-1, ST-2): writer threads append with
 * exact expectations and race on a shared stream; reader threads read $all
 * and streams concurrently and check that what they see is always a gapless
 * committed prefix. Also the asynchronous append API and group commit. */
#include "harness.h"

#include <pthread.h>

#define WRITERS    8
#define READERS    4
#define PER_WRITER 400

static char dir[512];
static factum_store *store;
static _Atomic int writers_done;
static _Atomic int failures;
static _Atomic uint64_t shared_wins;

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    char stream[32];
    snprintf(stream, sizeof stream, "w-%d", t);
    for (int i = 0; i < PER_WRITER; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"t\":%d,\"i\":%d}", t, i);
        factum_event_data e = harness_event("W", json);
        factum_append_result r;
        if (factum_append(store, stream, i - 1, &e, 1, &r) || r.last_version != (uint64_t)i) failures++;
        /* Everyone races on one stream: exactly one wins each version. */
        factum_stream_info info;
        factum_stream_get_info(store, "shared", &info);
        factum_event_data e2 = harness_event("S", json);
        int rc = factum_append(store, "shared", info.last_version, &e2, 1, &r);
        if (rc == 0)
            shared_wins++;
        else if (rc != FACTUM_EWRONGVERSION)
            failures++;
    }
    writers_done++;
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    factum_event page[256];
    uint64_t rounds = 0;
    while (writers_done < WRITERS || rounds < 3) {
        uint64_t pos = 1, expect = 1;
        size_t n;
        do {
            if (factum_read_all(store, pos, FACTUM_FORWARD, NULL, 0, page, 256, &n, &pos)) {
                failures++;
                return NULL;
            }
            for (size_t i = 0; i < n; i++)
                if (page[i].position != expect++) failures++;
        } while (n == 256);
        factum_stats st;
        factum_store_get_stats(store, &st);
        if (st.last_position + 1 < expect) failures++;
        /* A stream read sees versions 0..n-1 without gaps. */
        uint64_t next = 0, v = 0;
        do {
            int rc = factum_read_stream(store, "shared", next, FACTUM_FORWARD, page, 256, &n, &next);
            if (rc == FACTUM_ENOTFOUND) break;
            if (rc) failures++;
            for (size_t i = 0; i < n; i++)
                if (page[i].version != v++) failures++;
        } while (next != FACTUM_END && n);
        rounds++;
    }
    return NULL;
}

static void t_readers_and_writers(void)
{
    factum_options o;
    harness_small_opts(&o);
    o.memtable_entries = 300;
    harness_tmpdir(dir, sizeof dir, "conc");
    REQUIRE(factum_store_open(dir, &o, &store) == 0);
    pthread_t w[WRITERS], r[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    CHECK_EQ_U64(failures, 0);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(store, "shared", &info), 0);
    CHECK_EQ_U64(info.last_version + 1, shared_wins);
    factum_stats st;
    factum_store_get_stats(store, &st);
    CHECK_EQ_U64(st.last_position, WRITERS * PER_WRITER + shared_wins);
    /* Group commit: concurrent appends shared fdatasyncs. */
    printf("appends %" PRIu64 ", groups %" PRIu64 ", fsyncs %" PRIu64 ", largest group %" PRIu64 "\n",
           st.appends, st.groups, st.fsyncs, st.group_events_max);
    CHECK(st.fsyncs < st.appends);
    CHECK(st.group_events_max > 1);
    factum_store_close(store);
    harness_rm_rf(dir);
}

typedef struct async_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok;
    uint64_t last_pos;
} async_ctx;

static void on_done(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    async_ctx *a = ctx;
    (void)failed;
    pthread_mutex_lock(&a->mu);
    if (rc == 0 && n == 1 && res[0].last_position > a->last_pos) a->ok++;
    if (rc == 0 && n == 1) a->last_pos = res[0].last_position;
    a->done++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void t_async(void)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, "async");
    REQUIRE(factum_store_open(dir, &o, &store) == 0);
    async_ctx a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    static factum_event_data ev[500];
    static factum_append_req req[500];
    for (int i = 0; i < 500; i++) {
        ev[i] = harness_event("Async", "{}");
        req[i] = (factum_append_req){"async", i == 0 ? FACTUM_NO_STREAM : FACTUM_ANY, &ev[i], 1};
        CHECK_RC(factum_append_async(store, &req[i], 1, on_done, &a), 0);
    }
    pthread_mutex_lock(&a.mu);
    while (a.done < 500)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    CHECK_EQ_U64(a.ok, 500); /* completed in order, each after the previous */
    /* Invalid on its face: refused at once, callback never runs. */
    factum_append_req badreq = {"", FACTUM_ANY, &ev[0], 1};
    CHECK_RC(factum_append_async(store, &badreq, 1, on_done, &a), FACTUM_EBADNAME);
    factum_stats st;
    factum_store_get_stats(store, &st);
    CHECK(st.groups < 500);
    factum_store_close(store);
    CHECK_EQ_U64(a.done, 500);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_readers_and_writers);
    RUN(t_async);
    return harness_done();
}
