/* Unit tests of subscriptions (factum_sub_*, SUB-1..5), links, and commit
 * notification: bad input, where a subscription starts, markers, a
 * stream's life (not yet written, soft-deleted, tombstoned), resolved and
 * unresolved links, falling behind and catching up, checkpoints of a
 * sparse filter and resuming from one, waiting for commits, listeners and
 * status. The concurrent exactness of the catch-up -> live switch is in
 * tests/prop/sub_model.c. */
#include <pthread.h>

#include "harness.h"

static char dir[512];

static factum_store *open_fresh(const char *name)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
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

static void append_n(factum_store *s, const char *stream, const char *type, int n)
{
    for (int i = 0; i < n; i++) {
        factum_event_data ev = harness_event(type, "{}");
        REQUIRE(factum_append(s, stream, FACTUM_ANY, &ev, 1, NULL) == 0);
    }
}

/* Poll until the subscription is at the head; collect the items. */
static size_t drain(factum_sub *sub, factum_sub_item *out, size_t cap)
{
    size_t total = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
        factum_sub_item items[16];
        size_t n = 0;
        int rc = factum_sub_poll(sub, items, 16, &n, 0);
        if (rc) {
            fprintf(stderr, "poll: %s\n", factum_strerror(rc));
            return (size_t)-1;
        }
        for (size_t i = 0; i < n && total < cap; i++)
            out[total++] = items[i];
        if (!n && !factum_sub_pending(sub)) break;
    }
    return total;
}

static size_t count_kind(const factum_sub_item *it, size_t n, int kind)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += it[i].kind == kind;
    return c;
}

static int is_stream(const factum_event *ev, const char *name)
{
    return ev->stream_len == strlen(name) && memcmp(ev->stream, name, ev->stream_len) == 0;
}

static void t_bad_input(void)
{
    factum_store *s = open_fresh("sub-bad");
    REQUIRE(s);
    factum_sub_options o;
    factum_sub *sub = NULL;
    factum_filter *f;
    const char *p[] = {"x"};
    REQUIRE(factum_filter_new(FACTUM_FILTER_STREAM, p, 1, NULL, 0, &f) == 0);
    factum_sub_options_init(&o);
    o.stream = "orders";
    o.filter = f;
    CHECK_RC(factum_sub_open(s, &o, &sub), FACTUM_EINVAL); /* filters are for $all */
    factum_sub_options_init(&o);
    o.stream = "";
    CHECK_RC(factum_sub_open(s, &o, &sub), FACTUM_EBADNAME);
    factum_sub_options_init(&o);
    o.from = 7;
    CHECK_RC(factum_sub_open(s, &o, &sub), FACTUM_EINVAL);
    CHECK_RC(factum_sub_open(NULL, &o, &sub), FACTUM_EINVAL);
    CHECK_RC(factum_sub_open(s, NULL, &sub), 0); /* defaults: $all from the start */
    factum_sub_item items[4];
    size_t n = 99;
    CHECK_RC(factum_sub_poll(sub, items, 3, &n, 0), FACTUM_EINVAL);
    CHECK_RC(factum_sub_poll(sub, items, 4, NULL, 0), FACTUM_EINVAL);
    CHECK_RC(factum_sub_poll(sub, items, 4, &n, 0), 0);
    CHECK(n == 1 && items[0].kind == FACTUM_SUB_CAUGHT_UP); /* an empty store: at the head */
    factum_sub_close(sub);
    factum_sub_close(NULL);
    factum_filter_free(f);
    close_rm(s);
}

/* Where a subscription starts: START, END, AFTER (exclusive). */
static void t_start_points(void)
{
    factum_store *s = open_fresh("sub-start");
    REQUIRE(s);
    append_n(s, "a", "E", 5);
    factum_sub_item it[64];
    factum_sub_options o;
    factum_sub *sub;

    factum_sub_options_init(&o);
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    size_t n = drain(sub, it, 64);
    REQUIRE(n == 6);
    for (size_t i = 0; i < 5; i++)
        CHECK(it[i].kind == FACTUM_SUB_EVENT && it[i].event.position == i + 1 && it[i].position == i + 1);
    CHECK(it[5].kind == FACTUM_SUB_CAUGHT_UP && it[5].position == 5);
    factum_sub_close(sub);

    o.from = FACTUM_SUB_END;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    CHECK(n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP && it[0].position == 5);
    append_n(s, "a", "E", 1);
    n = drain(sub, it, 64);
    CHECK(n == 1 && it[0].kind == FACTUM_SUB_EVENT && it[0].event.position == 6 && it[0].event.version == 5);
    factum_sub_close(sub);

    o.from = FACTUM_SUB_AFTER;
    o.after = 3;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    CHECK(n == 4 && it[0].event.position == 4 && it[2].event.position == 6 && it[3].kind == FACTUM_SUB_CAUGHT_UP);
    factum_sub_close(sub);

    /* A stream: versions. */
    factum_sub_options_init(&o);
    o.stream = "a";
    o.from = FACTUM_SUB_AFTER;
    o.after = 2;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    REQUIRE(n == 4);
    CHECK(it[0].event.version == 3 && it[1].event.version == 4 && it[2].event.version == 5);
    CHECK(it[2].position == 5 && it[3].kind == FACTUM_SUB_CAUGHT_UP && it[3].position == 5);
    factum_sub_close(sub);
    o.from = FACTUM_SUB_END;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    CHECK(n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP && it[0].position == 5);
    append_n(s, "other", "E", 3); /* not this stream */
    append_n(s, "a", "E", 1);
    n = drain(sub, it, 64);
    CHECK(n == 1 && it[0].event.version == 6 && is_stream(&it[0].event, "a"));
    factum_sub_close(sub);
    close_rm(s);
}

/* A stream subscription across the stream's life. */
static void t_stream_life(void)
{
    factum_store *s = open_fresh("sub-life");
    REQUIRE(s);
    factum_sub_item it[64];
    factum_sub_options o;
    factum_sub *sub;
    factum_sub_options_init(&o);
    o.stream = "life";
    REQUIRE(factum_sub_open(s, &o, &sub) == 0); /* not written yet: allowed */
    size_t n = drain(sub, it, 64);
    CHECK(n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP && it[0].position == FACTUM_END);
    append_n(s, "life", "E", 3);
    n = drain(sub, it, 64);
    CHECK(n == 3 && it[0].event.version == 0 && it[2].event.version == 2);
    REQUIRE(factum_delete_stream(s, "life", FACTUM_ANY, NULL) == 0);
    n = drain(sub, it, 64);
    CHECK(n == 0); /* soft delete writes to $$life, nothing to deliver */
    append_n(s, "life", "E", 2);
    n = drain(sub, it, 64);
    CHECK(n == 2 && it[0].event.version == 3 && it[1].event.version == 4);
    REQUIRE(factum_tombstone_stream(s, "life", FACTUM_ANY, NULL) == 0);
    factum_sub_item one[4];
    CHECK_RC(factum_sub_poll(sub, one, 4, &n, 0), FACTUM_EDELETED);
    CHECK_RC(factum_sub_poll(sub, one, 4, &n, 0), FACTUM_EDELETED);
    factum_sub_close(sub);
    CHECK_RC(factum_sub_open(s, &o, &sub), FACTUM_EDELETED);
    close_rm(s);
}

static void append_link(factum_store *s, const char *stream, const char *data)
{
    factum_event_data ev = harness_event(FACTUM_LINK_TYPE, data);
    ev.flags = 0;
    REQUIRE(factum_append(s, stream, FACTUM_ANY, &ev, 1, NULL) == 0);
}

static void t_links(void)
{
    factum_store *s = open_fresh("sub-links");
    REQUIRE(s);
    append_n(s, "target", "Real", 2);
    append_link(s, "links", "1@target");
    append_link(s, "links", "9@target"); /* no such event */
    append_link(s, "links", "nonsense");
    append_link(s, "links", "0@target");
    append_n(s, "gone", "Real", 1);
    append_link(s, "links", "0@gone");
    REQUIRE(factum_tombstone_stream(s, "gone", FACTUM_ANY, NULL) == 0);

    factum_event target;
    factum_event page[8];
    size_t n;
    REQUIRE(factum_read_stream(s, "links", 0, FACTUM_FORWARD, page, 8, &n, NULL) == 0 && n == 5);
    CHECK_RC(factum_resolve_link(s, &page[0], &target), 0);
    CHECK(is_stream(&target, "target") && target.version == 1);
    CHECK_RC(factum_resolve_link(s, &page[1], &target), FACTUM_ENOTFOUND);
    CHECK_RC(factum_resolve_link(s, &page[2], &target), FACTUM_EINVAL);
    CHECK_RC(factum_resolve_link(s, &page[4], &target), FACTUM_EDELETED);
    REQUIRE(factum_read_stream(s, "target", 0, FACTUM_FORWARD, page, 1, &n, NULL) == 0);
    CHECK_RC(factum_resolve_link(s, &page[0], &target), FACTUM_EINVAL); /* not a link */

    factum_sub_item it[64];
    factum_sub_options o;
    factum_sub *sub;
    factum_sub_options_init(&o);
    o.stream = "links";
    o.resolve_links = 1;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    REQUIRE(n == 6);
    CHECK(it[0].has_link && !it[0].unresolved && is_stream(&it[0].event, "target") && it[0].event.version == 1);
    CHECK(is_stream(&it[0].link, "links") && it[0].link.version == 0 && it[0].position == 0);
    CHECK(!it[1].has_link && it[1].unresolved && is_stream(&it[1].event, "links") && it[1].event.version == 1);
    CHECK(!it[2].has_link && it[2].unresolved);
    CHECK(it[3].has_link && it[3].event.version == 0 && it[3].link.version == 3 && it[3].position == 3);
    CHECK(!it[4].has_link && it[4].unresolved && it[4].position == 4);
    CHECK(it[5].kind == FACTUM_SUB_CAUGHT_UP);
    factum_sub_close(sub);
    o.resolve_links = 0;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    REQUIRE(n == 6);
    for (size_t i = 0; i < 5; i++)
        CHECK(!it[i].has_link && !it[i].unresolved && is_stream(&it[i].event, "links"));
    factum_sub_close(sub);
    close_rm(s);
}

/* SUB-4: live -> fell behind -> caught up, with nothing lost. */
static void t_fell_behind(void)
{
    factum_store *s = open_fresh("sub-behind");
    REQUIRE(s);
    factum_sub_item it[128];
    factum_sub_options o;
    factum_sub *sub;
    for (int stream_sub = 0; stream_sub < 2; stream_sub++) {
        factum_sub_options_init(&o);
        o.stream = stream_sub ? "b" : NULL;
        o.from = FACTUM_SUB_END;
        o.live_lag = 5;
        REQUIRE(factum_sub_open(s, &o, &sub) == 0);
        size_t n = drain(sub, it, 128);
        CHECK(n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP);
        append_n(s, "b", "E", 3); /* within the lag: stays live */
        n = drain(sub, it, 128);
        CHECK(n == 3 && count_kind(it, n, FACTUM_SUB_EVENT) == 3);
        append_n(s, "b", "E", 20);
        n = drain(sub, it, 128);
        REQUIRE(n == 22);
        CHECK(it[0].kind == FACTUM_SUB_FELL_BEHIND);
        CHECK(count_kind(it, n, FACTUM_SUB_EVENT) == 20);
        CHECK(it[21].kind == FACTUM_SUB_CAUGHT_UP);
        for (size_t i = 2; i < 21; i++)
            CHECK(it[i].event.position == it[i - 1].event.position + 1);
        factum_sub_status st;
        REQUIRE(factum_sub_get_status(sub, &st) == 0);
        CHECK(st.live && st.lag_events == 0 && st.lag_ns == 0 && st.delivered == 23);
        factum_sub_close(sub);
    }
    close_rm(s);
}

/* SUB-5: a sparse filter still reports progress, and resuming from a
 * checkpoint loses nothing. */
static void t_checkpoints(void)
{
    factum_store *s = open_fresh("sub-ckpt");
    REQUIRE(s);
    append_n(s, "noise", "Noise", 35); /* positions 1..35 */
    factum_filter *f;
    REQUIRE(factum_filter_new(FACTUM_FILTER_EVENT_TYPE, NULL, 0, "^Signal$", 0, &f) == 0);
    factum_sub_item it[64];
    factum_sub_options o;
    factum_sub *sub;
    factum_sub_options_init(&o);
    o.filter = f;
    o.checkpoint_interval = 10;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    size_t n = drain(sub, it, 64);
    REQUIRE(n == 4);
    CHECK(it[0].kind == FACTUM_SUB_CHECKPOINT && it[0].position == 10);
    CHECK(it[1].kind == FACTUM_SUB_CHECKPOINT && it[1].position == 20);
    CHECK(it[2].kind == FACTUM_SUB_CHECKPOINT && it[2].position == 30);
    CHECK(it[3].kind == FACTUM_SUB_CAUGHT_UP && it[3].position == 35);
    append_n(s, "noise", "Noise", 2);  /* 36, 37 */
    append_n(s, "sig", "Signal", 1);   /* 38 */
    n = drain(sub, it, 64);
    REQUIRE(n == 1);
    CHECK(it[0].kind == FACTUM_SUB_EVENT && it[0].event.position == 38 && is_stream(&it[0].event, "sig"));
    factum_sub_close(sub);
    /* Resume from the last checkpoint seen (30): the signal still arrives. */
    o.from = FACTUM_SUB_AFTER;
    o.after = 30;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    REQUIRE(n == 2);
    CHECK(it[0].kind == FACTUM_SUB_EVENT && it[0].event.position == 38);
    CHECK(it[1].kind == FACTUM_SUB_CAUGHT_UP);
    factum_sub_close(sub);
    /* Without a checkpoint interval: no checkpoints. */
    o.from = FACTUM_SUB_START;
    o.checkpoint_interval = 0;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    n = drain(sub, it, 64);
    CHECK(n == 2 && count_kind(it, n, FACTUM_SUB_CHECKPOINT) == 0);
    factum_sub_close(sub);
    factum_filter_free(f);
    close_rm(s);
}

struct waiter {
    factum_sub *sub;
    size_t n;
    int rc;
    factum_sub_item it[8];
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = factum_sub_poll(w->sub, w->it, 8, &w->n, 20000);
    return NULL;
}

struct counter {
    int calls;
    uint64_t last;
};

static void count_commit(void *ctx, uint64_t last)
{
    struct counter *c = ctx;
    c->calls++;
    c->last = last;
}

/* A poll waiting for commits is woken by another thread's append; a poll
 * with a timeout and no commits returns empty; listeners are called. */
static void t_wait_and_listen(void)
{
    factum_store *s = open_fresh("sub-wait");
    REQUIRE(s);
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.from = FACTUM_SUB_END;
    factum_sub *sub;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    factum_sub_item it[8];
    size_t n;
    CHECK_RC(factum_sub_poll(sub, it, 8, &n, 0), 0);
    CHECK(n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP);
    CHECK_RC(factum_sub_poll(sub, it, 8, &n, 30), 0); /* nothing comes: times out */
    CHECK(n == 0);
    CHECK(factum_wait_for_position(s, 0, 10) == 0);

    struct counter c = {0, 0};
    CHECK_RC(factum_commit_listener_add(s, count_commit, &c), 0);
    struct waiter w = {.sub = sub};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, wait_main, &w) == 0);
    usleep(50000); /* let it block (if it has not, the test still holds) */
    append_n(s, "w", "E", 1);
    pthread_join(t, NULL);
    CHECK_RC(w.rc, 0);
    /* With a 20 s timeout, an empty return would mean the wake-up was lost. */
    CHECK(w.n == 1 && w.it[0].kind == FACTUM_SUB_EVENT && w.it[0].event.position == 1);
    CHECK(c.calls == 1 && c.last == 1);
    CHECK(factum_wait_for_position(s, 0, 0) == 1);
    append_n(s, "w", "E", 2);
    CHECK(c.calls == 3 && c.last == 3);
    CHECK_RC(factum_commit_listener_remove(s, count_commit, &c), 0);
    CHECK_RC(factum_commit_listener_remove(s, count_commit, &c), FACTUM_ENOTFOUND);
    append_n(s, "w", "E", 1);
    CHECK(c.calls == 3);
    factum_sub_close(sub);
    close_rm(s);
}

static void t_status(void)
{
    factum_store *s = open_fresh("sub-status");
    REQUIRE(s);
    append_n(s, "st", "E", 7);
    factum_sub_options o;
    factum_sub_options_init(&o);
    factum_sub *sub;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    factum_sub_status st;
    REQUIRE(factum_sub_get_status(sub, &st) == 0);
    CHECK(!st.live && st.lag_events == 7 && st.delivered == 0 && st.lag_ns >= 0);
    CHECK(factum_sub_pending(sub) == 1);
    factum_sub_item it[4];
    size_t n;
    REQUIRE(factum_sub_poll(sub, it, 4, &n, 0) == 0);
    CHECK(n == 2); /* cap 4 leaves 2 for markers */
    REQUIRE(factum_sub_get_status(sub, &st) == 0);
    CHECK(!st.live && st.lag_events == 5 && st.delivered == 2 && st.position == 2);
    factum_sub_item all[16];
    n = drain(sub, all, 16);
    REQUIRE(factum_sub_get_status(sub, &st) == 0);
    CHECK(st.live && st.lag_events == 0 && st.delivered == 7 && st.position == 7);
    CHECK(factum_sub_pending(sub) == 0);
    factum_sub_close(sub);
    close_rm(s);
}

int main(void)
{
    RUN(t_bad_input);
    RUN(t_start_points);
    RUN(t_stream_life);
    RUN(t_links);
    RUN(t_fell_behind);
    RUN(t_checkpoints);
    RUN(t_wait_and_listen);
    RUN(t_status);
    return harness_done();
}
