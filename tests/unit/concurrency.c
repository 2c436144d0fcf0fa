/* Many writers and readers at once (ST-1, ST-2): writer threads append with
 * exact expectations and race on a shared stream; reader threads read $all
 * and streams concurrently and check that what they see is always a gapless
 * committed prefix. Also the asynchronous append API and group commit, and
 * where asynchronous callbacks run and what they may call. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>

#include "store/store_int.h"

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


/* ---- where and how asynchronous callbacks run -------------------------- */

typedef struct where {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    pthread_t thread;
} where;

static void record_thread(void *ctx, int rc, const factum_append_result *r, size_t n, size_t failed)
{
    (void)rc;
    (void)r;
    (void)n;
    (void)failed;
    where *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->thread = pthread_self();
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* An application thread that leads a group commit inside its own
 * factum_append (ST-1) completes the asynchronous requests of that group,
 * but their callbacks run on the writer thread, never inside the caller's
 * factum_append. Deterministic: the test holds the lead while the
 * asynchronous request is queued, so that its own append leads the group. */
static void t_callbacks_on_writer_thread(void)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, "cbthread");
    REQUIRE(factum_store_open(dir, &o, &store) == 0);
    where w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, pthread_self()};
    factum_event_data ea = harness_event("A", "{}"), eb = harness_event("B", "{}");
    factum_append_req qa = {"cb", FACTUM_ANY, &ea, 1};
    pthread_mutex_lock(&store->q_mu);
    REQUIRE(!store->leader);
    store->leader = 1; /* queued, not run: nobody is woken */
    pthread_mutex_unlock(&store->q_mu);
    CHECK_RC(factum_append_async(store, &qa, 1, record_thread, &w), 0);
    pthread_mutex_lock(&store->q_mu);
    store->leader = 0;
    CHECK_EQ_U64(store->q_len, 1);
    pthread_mutex_unlock(&store->q_mu);
    /* This thread now leads the group of both appends. */
    factum_append_result r;
    CHECK_RC(factum_append(store, "cb", FACTUM_ANY, &eb, 1, &r), 0);
    CHECK_EQ_U64(r.first_position, 2);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    CHECK(!pthread_equal(w.thread, pthread_self()));
    CHECK(pthread_equal(w.thread, store->writer));
    factum_store_close(store);
    harness_rm_rf(dir);
}

typedef struct reent {
    int calls;
    int append_rc, multi_rc, delete_rc, meta_rc, sync_rc, close_rc, wait_rc, wait0_rc, read_rc, async_rc;
    int full_rc;
    unsigned queued;
    _Atomic unsigned extra_done;
    _Atomic int finished;
} reent;

static reent re;
static factum_event_data re_ev;
static factum_append_req re_req;

static void extra_done(void *ctx, int rc, const factum_append_result *r, size_t n, size_t failed)
{
    (void)ctx;
    (void)rc;
    (void)r;
    (void)n;
    (void)failed;
    atomic_fetch_add(&re.extra_done, 1);
}

/* Everything a careless callback might call on its own store. */
static void reentrant_cb(void *ctx, int rc, const factum_append_result *r, size_t n, size_t failed)
{
    (void)ctx;
    (void)rc;
    (void)r;
    (void)n;
    (void)failed;
    re.calls++;
    factum_event_data e = harness_event("Inner", "{}");
    factum_append_result res;
    re.append_rc = factum_append(store, "inner", FACTUM_ANY, &e, 1, &res);
    factum_append_req q = {"inner", FACTUM_ANY, &e, 1};
    re.multi_rc = factum_append_multi(store, &q, 1, &res, NULL);
    re.delete_rc = factum_delete_stream(store, "inner", FACTUM_ANY, &res);
    re.meta_rc = factum_set_stream_metadata(store, "inner", FACTUM_ANY, "{}", 2, &res);
    re.sync_rc = factum_store_sync(store);
    re.close_rc = factum_store_close(store);
    re.wait_rc = factum_wait_for_position(store, 1000000, 100);
    re.wait0_rc = factum_wait_for_position(store, 0, 0);
    factum_event out[4];
    size_t got;
    uint64_t next;
    re.read_rc = factum_read_all(store, 1, FACTUM_FORWARD, NULL, 0, out, 4, &got, &next);
    /* Asynchronous appends are fine, until the queue is full: nobody but
     * this thread could make room, so it does not wait for it. */
    re_ev = harness_event("Extra", "{}");
    re_ev.has_id = 0;
    re_req = (factum_append_req){"extra", FACTUM_ANY, &re_ev, 1};
    re.async_rc = factum_append_async(store, &re_req, 1, extra_done, NULL);
    if (!re.async_rc) re.queued++;
    for (int i = 0; i < 10000; i++) {
        int arc = factum_append_async(store, &re_req, 1, extra_done, NULL);
        if (arc) {
            re.full_rc = arc;
            break;
        }
        re.queued++;
    }
    atomic_store(&re.finished, 1);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "deadlock: a callback's call on its own store never returned\n";
    if (write(2, msg, sizeof msg - 1)) {
    }
    _exit(1);
}

/* A callback that calls its own store's waiting functions gets -EDEADLK at
 * once instead of waiting for itself; reads and asynchronous appends work;
 * a full queue is -EAGAIN. (A watchdog turns a deadlock into a failure.) */
static void t_callback_reentrancy(void)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, "cbreent");
    REQUIRE(factum_store_open(dir, &o, &store) == 0);
    signal(SIGALRM, on_alarm);
    alarm(60);
    factum_event_data e = harness_event("Outer", "{}");
    factum_append_req q = {"outer", FACTUM_ANY, &e, 1};
    CHECK_RC(factum_append_async(store, &q, 1, reentrant_cb, NULL), 0);
    while (!atomic_load(&re.finished))
        usleep(1000);
    CHECK(re.calls == 1);
    CHECK_RC(re.append_rc, -EDEADLK);
    CHECK_RC(re.multi_rc, -EDEADLK);
    CHECK_RC(re.delete_rc, -EDEADLK);
    CHECK_RC(re.meta_rc, -EDEADLK);
    CHECK_RC(re.sync_rc, -EDEADLK);
    CHECK_RC(re.close_rc, -EDEADLK);
    CHECK_RC(re.wait_rc, -EDEADLK);
    CHECK_RC(re.wait0_rc, 1);
    CHECK_RC(re.read_rc, 0);
    CHECK_RC(re.async_rc, 0);
    CHECK_RC(re.full_rc, -EAGAIN);
    CHECK(re.queued >= 1 && re.queued <= 4096);
    /* Everything queued from the callback completes afterwards. */
    while (atomic_load(&re.extra_done) < re.queued)
        usleep(1000);
    alarm(0);
    factum_stats st;
    factum_store_get_stats(store, &st);
    CHECK_EQ_U64(st.last_position, 1 + re.queued);
    CHECK_RC(factum_store_close(store), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_readers_and_writers);
    RUN(t_async);
    RUN(t_callbacks_on_writer_thread);
    RUN(t_callback_reentrancy);
    return harness_done();
}
