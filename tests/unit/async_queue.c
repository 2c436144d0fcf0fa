/* The asynchronous append never waits: when the store's queue is full it
 * says -EAGAIN at once (nothing queued, no callback), so that an event loop
 * calling it is never blocked; factumd pauses that call's input and tries
 * again after a completion. The queue is filled deterministically by
 * holding the writer inside the first completion callback. */
#include <pthread.h>

#include "harness.h"

static char dir[512];

typedef struct ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hold, held; /* the first callback waits while hold is set */
    int done, failed;
    uint64_t last_version;
    int in_order;
} ctx;

static void on_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    if (!c->held) {
        c->held = 1;
        pthread_cond_broadcast(&c->cv);
        while (c->hold) pthread_cond_wait(&c->cv, &c->mu);
    }
    if (rc || n != 1) c->failed++;
    else {
        if (c->done && res[0].last_version != c->last_version + 1) c->in_order = 0;
        c->last_version = res[0].last_version;
    }
    c->done++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void t_full_queue_says_eagain(void)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, "async_queue");
    factum_store *s;
    REQUIRE(factum_store_open(dir, &o, &s) == 0);
    enum { N = 6000 };
    static factum_event_data ev[N];
    static factum_append_req req[N];
    ctx c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, 0, 0, 1};
    for (int i = 0; i < N; i++) {
        ev[i] = harness_event("E", "{}");
        req[i] = (factum_append_req){"q", FACTUM_ANY, &ev[i], 1};
    }
    CHECK_RC(factum_append_async(s, &req[0], 1, on_done, &c), 0);
    pthread_mutex_lock(&c.mu);
    while (!c.held) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    /* The writer is held: the queue fills, then refuses without waiting. */
    int accepted = 1, first_refused = -1;
    for (int i = 1; i < N; i++) {
        int rc = factum_append_async(s, &req[i], 1, on_done, &c);
        if (rc == -EAGAIN) {
            first_refused = i;
            break;
        }
        CHECK_RC(rc, 0);
        accepted++;
    }
    CHECK(first_refused > 0);
    CHECK(accepted >= 4096 && accepted <= 4097);
    /* Deletes go through the same queue. */
    CHECK_RC(factum_delete_stream_async(s, "other", FACTUM_ANY, on_done, &c), -EAGAIN);
    pthread_mutex_lock(&c.mu);
    c.hold = 0;
    pthread_cond_broadcast(&c.cv);
    while (c.done < accepted) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    /* The refused ones are retried after completions, as factumd does. */
    for (int i = first_refused; i < N; i++) {
        int rc;
        while ((rc = factum_append_async(s, &req[i], 1, on_done, &c)) == -EAGAIN) {
            pthread_mutex_lock(&c.mu);
            int seen = c.done;
            while (c.done == seen) pthread_cond_wait(&c.cv, &c.mu);
            pthread_mutex_unlock(&c.mu);
        }
        CHECK_RC(rc, 0);
    }
    pthread_mutex_lock(&c.mu);
    while (c.done < N) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    CHECK_EQ_U64(c.done, N); /* exactly once each: a refused request has no callback */
    CHECK_EQ_U64(c.failed, 0);
    CHECK(c.in_order);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "q", &info), 0);
    CHECK_EQ_U64(info.last_version, N - 1);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_full_queue_says_eagain);
    return harness_done();
}
