/* Randomised test of subscriptions under concurrent writes (SUB-1..5).
 * Writer threads append random batches (some multi-stream) to a few
 * streams while subscriber threads follow $all (with and without filters,
 * checkpoints) or single streams, from the start, the end or a position,
 * polling with random capacities and random pauses so that they fall
 * behind and catch up again. Afterwards each subscriber's deliveries are
 * compared with the model: exactly the events of the final log after its
 * starting point that its filter admits, in log order, each once; and its
 * markers obey SUB-4 and SUB-5. Prints its seed; FACTUM_SEED replays the
 * random choices (thread interleavings differ run to run by nature),
 * FACTUM_SUB_EVENTS sets the size of the run. */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

#define WRITERS     3
#define SUBSCRIBERS 10
#define NSTREAMS    6

static factum_store *store;
static uint64_t seed;
static size_t appends_per_writer = 1500;
static atomic_int writers_done;

typedef struct got {
    int kind;
    uint64_t position; /* item position */
    uint64_t ev_position;
    uint64_t version;
    char stream[16];
} got;

typedef struct subscriber {
    int id;
    h_rng rng;
    int all;
    char stream[16];
    int from;
    uint64_t after;
    factum_filter *filter;
    int filter_kind; /* 0 none, 1 stream prefix, 2 type regex */
    uint32_t ckpt;
    uint64_t live_lag;
    uint64_t start; /* position ($all) or version (+1 as count) after which delivery starts */
    int start_none; /* stream: no version before the start */
    got *items;
    size_t n, cap;
    int rc;
    uint64_t fell_behind, caught_up, checkpoints;
} subscriber;

static subscriber subs[SUBSCRIBERS];

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    h_rng r = {seed ^ (0x1000u + (uint64_t)w)};
    static const char *types[] = {"Alpha", "Beta", "Gamma"};
    for (size_t i = 0; i < appends_per_writer; i++) {
        factum_event_data ev[8];
        size_t n = 1 + h_below(&r, 4);
        for (size_t k = 0; k < n; k++) ev[k] = harness_event(types[h_below(&r, 3)], "{\"x\":1}");
        char s1[16], s2[16];
        snprintf(s1, sizeof s1, "s-%d", (int)h_below(&r, NSTREAMS));
        int rc;
        if (h_below(&r, 8) == 0) {
            snprintf(s2, sizeof s2, "s-%d", (int)h_below(&r, NSTREAMS));
            if (!strcmp(s1, s2)) snprintf(s2, sizeof s2, "other-%d", w);
            factum_append_req req[2] = {{s1, FACTUM_ANY, ev, n}, {s2, FACTUM_ANY, ev + 4, 0}};
            for (size_t k = 0; k < 2; k++) ev[4 + k] = harness_event("Delta", "{}");
            req[1].n_events = 2;
            rc = factum_append_multi(store, req, 2, NULL, NULL);
        } else {
            rc = factum_append(store, s1, FACTUM_ANY, ev, n, NULL);
        }
        if (rc) {
            fprintf(stderr, "writer %d: %s\n", w, factum_strerror(rc));
            abort();
        }
        if (h_below(&r, 64) == 0) usleep((useconds_t)h_below(&r, 3000));
    }
    return NULL;
}

static void record(subscriber *sb, const factum_sub_item *it)
{
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 1024;
        sb->items = realloc(sb->items, sb->cap * sizeof *sb->items);
        if (!sb->items) abort();
    }
    got *g = &sb->items[sb->n++];
    memset(g, 0, sizeof *g);
    g->kind = it->kind;
    g->position = it->position;
    if (it->kind == FACTUM_SUB_EVENT) {
        g->ev_position = it->event.position;
        g->version = it->event.version;
        snprintf(g->stream, sizeof g->stream, "%.*s", (int)it->event.stream_len, it->event.stream);
    }
}

static void *subscriber_main(void *arg)
{
    subscriber *sb = arg;
    factum_sub_options o;
    factum_sub_options_init(&o);
    o.stream = sb->all ? NULL : sb->stream;
    o.from = sb->from;
    o.after = sb->after;
    o.filter = sb->filter;
    o.checkpoint_interval = sb->ckpt;
    o.live_lag = sb->live_lag;
    factum_sub *sub;
    if ((sb->rc = factum_sub_open(store, &o, &sub))) return NULL;
    factum_sub_status st;
    factum_sub_get_status(sub, &st);
    sb->start = st.position;
    sb->start_none = !sb->all && st.position == FACTUM_END;
    factum_sub_item items[80];
    for (;;) {
        size_t cap = 4 + h_below(&sb->rng, 70), n;
        int done = atomic_load(&writers_done);
        int rc = factum_sub_poll(sub, items, cap, &n, (int)h_below(&sb->rng, 20));
        if (rc) {
            sb->rc = rc;
            break;
        }
        for (size_t i = 0; i < n; i++)
            record(sb, &items[i]);
        /* Stop once the writers were done before a poll that found the
         * subscription at the head. */
        if (done && !factum_sub_pending(sub) && factum_sub_get_status(sub, &st) == 0 && st.live) break;
        if (h_below(&sb->rng, 16) == 0) usleep((useconds_t)h_below(&sb->rng, 5000));
    }
    factum_sub_close(sub);
    return NULL;
}

/* The events of the final log this subscriber must have received. */
static int admitted(const subscriber *sb, const factum_event *ev)
{
    if (!sb->all) {
        if (ev->stream_len != strlen(sb->stream) || memcmp(ev->stream, sb->stream, ev->stream_len)) return 0;
        return sb->start_none || ev->version > sb->start;
    }
    if (ev->position <= sb->start) return 0;
    return factum_filter_match(sb->filter, ev);
}

static void check(subscriber *sb)
{
    CHECK_RC(sb->rc, 0);
    /* Expected events, from the final log. */
    size_t k = 0, bad = 0;
    int live = 0, seen_caught_up = 0;
    uint64_t last_ckpt = 0, last_pos = 0;
    factum_event page[256];
    uint64_t from = 1;
    size_t gi = 0;
    for (;;) {
        size_t n;
        uint64_t next;
        REQUIRE(factum_read_all(store, from, FACTUM_FORWARD, NULL, 0, page, 256, &n, &next) == 0);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            const factum_event *ev = &page[i];
            if (!admitted(sb, ev)) continue;
            /* the next delivered event, skipping markers (checked below) */
            while (gi < sb->n && sb->items[gi].kind != FACTUM_SUB_EVENT)
                gi++;
            if (gi >= sb->n) {
                if (!bad++)
                    fprintf(stderr, "subscriber %d: missing event at position %llu (and later)\n", sb->id,
                            (unsigned long long)ev->position);
                continue;
            }
            if (sb->items[gi].ev_position != ev->position) {
                if (!bad++)
                    fprintf(stderr, "subscriber %d: delivery %zu is position %llu, expected %llu\n", sb->id, gi,
                            (unsigned long long)sb->items[gi].ev_position, (unsigned long long)ev->position);
            }
            gi++;
            k++;
        }
        from = next;
    }
    while (gi < sb->n && sb->items[gi].kind != FACTUM_SUB_EVENT)
        gi++;
    if (gi < sb->n) {
        bad++;
        fprintf(stderr, "subscriber %d: %zu events delivered beyond the expected %zu\n", sb->id, sb->n - gi, k);
    }
    CHECK(bad == 0);
    /* Markers: SUB-4 states, SUB-5 checkpoints, positions never go back. */
    for (size_t i = 0; i < sb->n; i++) {
        const got *g = &sb->items[i];
        switch (g->kind) {
        case FACTUM_SUB_EVENT:
            if (sb->all) {
                CHECK(last_ckpt < g->ev_position); /* nothing at or before a checkpoint comes after it */
                CHECK(g->position == g->ev_position);
            } else {
                CHECK(g->position == g->version);
            }
            CHECK(i == 0 || g->position >= last_pos || last_pos == FACTUM_END);
            last_pos = g->position;
            break;
        case FACTUM_SUB_CAUGHT_UP:
            CHECK(!live);
            live = 1;
            seen_caught_up = 1;
            sb->caught_up++;
            break;
        case FACTUM_SUB_FELL_BEHIND:
            CHECK(live);
            live = 0;
            sb->fell_behind++;
            break;
        case FACTUM_SUB_CHECKPOINT:
            CHECK(sb->all && sb->ckpt);
            CHECK(g->position > last_ckpt);
            CHECK(g->position >= last_pos || last_pos == 0);
            last_ckpt = g->position;
            sb->checkpoints++;
            break;
        default: CHECK(0);
        }
    }
    CHECK(seen_caught_up);
    CHECK(live);
    printf("subscriber %d: %s%s%s from %s, %zu events, caught up %llu, fell behind %llu, checkpoints %llu\n",
           sb->id, sb->all ? "$all" : sb->stream,
           sb->filter_kind == 1 ? " (stream prefix)" : sb->filter_kind == 2 ? " (type regex)" : "",
           sb->ckpt ? " +checkpoints" : "",
           sb->from == FACTUM_SUB_START ? "start" : sb->from == FACTUM_SUB_END ? "end" : "a position", k,
           (unsigned long long)sb->caught_up, (unsigned long long)sb->fell_behind,
           (unsigned long long)sb->checkpoints);
}

static void t_model(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sub-model");
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED; /* many appends; durability is not what is tested here */
    REQUIRE(factum_store_open(dir, &o, &store) == 0);
    h_rng r = {seed};
    /* Some history before anyone subscribes. */
    for (int i = 0; i < 200; i++) {
        factum_event_data ev = harness_event(i % 2 ? "Alpha" : "Beta", "{}");
        char s[16];
        snprintf(s, sizeof s, "s-%d", (int)h_below(&r, NSTREAMS));
        REQUIRE(factum_append(store, s, FACTUM_ANY, &ev, 1, NULL) == 0);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subscriber *sb = &subs[i];
        memset(sb, 0, sizeof *sb);
        sb->id = i;
        sb->rng.s = seed ^ (0x2000u + (uint64_t)i);
        sb->all = i < 6;
        snprintf(sb->stream, sizeof sb->stream, "s-%d", (int)h_below(&r, NSTREAMS));
        sb->from = (int)h_below(&r, 3);
        sb->after = sb->all ? h_below(&r, 200) : h_below(&r, 20);
        if (sb->all && i % 3 == 1) {
            const char *p[] = {"s-1", "s-2"};
            REQUIRE(factum_filter_new(FACTUM_FILTER_STREAM, p, 2, NULL, 0, &sb->filter) == 0);
            sb->filter_kind = 1;
        } else if (sb->all && i % 3 == 2) {
            REQUIRE(factum_filter_new(FACTUM_FILTER_EVENT_TYPE, NULL, 0, "^(Beta|Delta)$", 0, &sb->filter) == 0);
            sb->filter_kind = 2;
        }
        if (sb->all && h_below(&r, 2)) sb->ckpt = 1 + (uint32_t)h_below(&r, 40);
        sb->live_lag = 1 + h_below(&r, 60);
    }
    pthread_t wt[WRITERS], st[SUBSCRIBERS];
    atomic_store(&writers_done, 0);
    /* Half the subscribers start before the writers, half while they run. */
    for (int i = 0; i < SUBSCRIBERS / 2; i++)
        pthread_create(&st[i], NULL, subscriber_main, &subs[i]);
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&wt[i], NULL, writer, (void *)(intptr_t)i);
    usleep(20000);
    for (int i = SUBSCRIBERS / 2; i < SUBSCRIBERS; i++)
        pthread_create(&st[i], NULL, subscriber_main, &subs[i]);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(wt[i], NULL);
    atomic_store(&writers_done, 1);
    for (int i = 0; i < SUBSCRIBERS; i++)
        pthread_join(st[i], NULL);
    for (int i = 0; i < SUBSCRIBERS; i++) {
        check(&subs[i]);
        factum_filter_free(subs[i].filter);
        free(subs[i].items);
    }
    factum_store_close(store);
    harness_rm_rf(dir);
}

int main(void)
{
    seed = harness_seed("sub_model");
    const char *e = getenv("FACTUM_SUB_EVENTS");
    if (e) appends_per_writer = strtoull(e, NULL, 10);
    RUN(t_model);
    return harness_done();
}
