/* Unit tests of a subscription's cursor moved by factumd's shared tail
 * (src/sub/sub.h, ADR 0021): sub_tail_cursor says when a subscription may
 * take events from a tail (live $all only, not more than live_lag behind),
 * sub_tail_advance refuses anything but the cursor's next position, and —
 * randomised against polling — a subscription that takes some of its events
 * the tail's way (read once without a filter, filtered here, advanced) and
 * the rest by polling yields exactly the events and checkpoints of one that
 * only polls (SUB-1, SUB-5), whatever the filter, the checkpoint interval
 * and the interleaving. Prints its seed (FACTUM_SEED replays it). */
#include "harness.h"
#include "sub/sub.h"

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

/* What is compared: events (by position) and checkpoints (by position). */
typedef struct rec {
    int kind;
    uint64_t position;
} rec;

typedef struct recs {
    rec *r;
    size_t n, cap;
} recs;

static void push(recs *v, int kind, uint64_t position)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->r = realloc(v->r, v->cap * sizeof *v->r);
        REQUIRE(v->r);
    }
    v->r[v->n++] = (rec){kind, position};
}

/* One poll; events and checkpoints recorded. 1 if it returned items or
 * more wait, 0 at the head or after a failed poll (the CHECK records it). */
static int poll_once(factum_sub *sub, recs *v)
{
    factum_sub_item it[16];
    size_t n = 0;
    int rc = factum_sub_poll(sub, it, 16, &n, 0);
    CHECK_RC(rc, 0);
    if (rc) return 0;
    for (size_t i = 0; i < n; i++) {
        if (it[i].kind == FACTUM_SUB_EVENT)
            push(v, FACTUM_SUB_EVENT, it[i].event.position);
        else if (it[i].kind == FACTUM_SUB_CHECKPOINT)
            push(v, FACTUM_SUB_CHECKPOINT, it[i].position);
    }
    return n > 0 || factum_sub_pending(sub);
}

/* The tail's way (subscribe.c's tail_take): up to k events read at the
 * cursor without a filter, filtered here, the cursor advanced past each. */
static void take_like_tail(factum_store *s, factum_sub *sub, const factum_filter *f, size_t k, recs *v)
{
    uint64_t next, head;
    if (!sub_tail_cursor(sub, &next, &head)) return;
    factum_event page[32];
    if (k > 32) k = 32;
    size_t n = 0;
    uint64_t nx;
    REQUIRE(factum_read_all(s, next, FACTUM_FORWARD, NULL, k, page, k, &n, &nx) == 0);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(page[i].position == next + i);
        int m = factum_filter_match(f, &page[i]);
        REQUIRE(m >= 0);
        if (m) push(v, FACTUM_SUB_EVENT, page[i].position);
        int due = sub_tail_advance(sub, page[i].position, m);
        REQUIRE(due >= 0);
        if (due) push(v, FACTUM_SUB_CHECKPOINT, page[i].position);
    }
}

static const char *const types[] = {"Alpha", "Beta", "$sys", "Gamma"};
static const char *const streams[] = {"a-1", "a-2", "b-1", "$meta-x"};

static void append_random(factum_store *s, h_rng *r, int n)
{
    for (int i = 0; i < n; i++) {
        factum_event_data ev = harness_event(types[h_below(r, 4)], "{}");
        REQUIRE(factum_append(s, streams[h_below(r, 4)], FACTUM_ANY, &ev, 1, NULL) == 0);
    }
}

static void t_cursor_rules(void)
{
    factum_store *s = open_fresh("subtail-rules");
    REQUIRE(s);
    h_rng r = {1};
    append_random(s, &r, 10);
    factum_sub_options o;
    factum_sub_options_init(&o);
    factum_sub *sub, *st;
    uint64_t next, head;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    CHECK(!sub_tail_cursor(sub, &next, &head)); /* catching up: not live */
    factum_sub_item it[16];
    size_t n;
    while (factum_sub_poll(sub, it, 16, &n, 0) == 0 && (n || factum_sub_pending(sub))) {
    }
    CHECK(sub_tail_cursor(sub, &next, &head) && next == 11 && head == 10);
    CHECK(sub_tail_advance(sub, 12, 1) == FACTUM_EINVAL); /* not the cursor's next */
    append_random(s, &r, 2);
    CHECK(sub_tail_cursor(sub, &next, &head) && next == 11 && head == 12);
    CHECK(sub_tail_advance(sub, 11, 1) == 0);
    factum_sub_status ss;
    CHECK(factum_sub_get_status(sub, &ss) == 0 && ss.position == 11 && ss.lag_events == 1);
    factum_sub_close(sub);
    /* More than live_lag behind: the poll must report FELL_BEHIND. */
    o.live_lag = 3;
    o.from = FACTUM_SUB_END;
    REQUIRE(factum_sub_open(s, &o, &sub) == 0);
    REQUIRE(factum_sub_poll(sub, it, 16, &n, 0) == 0 && n == 1 && it[0].kind == FACTUM_SUB_CAUGHT_UP);
    append_random(s, &r, 3);
    CHECK(sub_tail_cursor(sub, &next, &head));
    append_random(s, &r, 1);
    CHECK(!sub_tail_cursor(sub, &next, &head));
    REQUIRE(factum_sub_poll(sub, it, 16, &n, 0) == 0 && n >= 1 && it[0].kind == FACTUM_SUB_FELL_BEHIND);
    factum_sub_close(sub);
    /* A stream subscription never takes from the tail. */
    o.stream = "a-1";
    o.live_lag = 0;
    REQUIRE(factum_sub_open(s, &o, &st) == 0);
    REQUIRE(factum_sub_poll(st, it, 16, &n, 0) == 0);
    CHECK(!sub_tail_cursor(st, &next, &head));
    CHECK(sub_tail_advance(st, 0, 1) == FACTUM_EINVAL);
    factum_sub_close(st);
    close_rm(s);
}

static void t_same_as_polling(void)
{
    uint64_t seed = harness_seed("sub_tail same as polling");
    h_rng r = {seed};
    for (int round = 0; round < 40; round++) {
        factum_store *s = open_fresh("subtail-model");
        REQUIRE(s);
        factum_filter *f = NULL;
        switch (h_below(&r, 4)) {
        case 0:
            break;
        case 1: {
            const char *p[] = {"a-"};
            REQUIRE(factum_filter_new(FACTUM_FILTER_STREAM, p, 1, NULL, 0, &f) == 0);
            break;
        }
        case 2:
            REQUIRE(factum_filter_new(FACTUM_FILTER_EVENT_TYPE, NULL, 0, "^(Beta|Gamma)$", 0, &f) == 0);
            break;
        default:
            REQUIRE(factum_filter_new(FACTUM_FILTER_EVENT_TYPE, NULL, 0, NULL, 1, &f) == 0); /* no $ */
        }
        factum_sub_options o;
        factum_sub_options_init(&o);
        o.filter = f;
        o.checkpoint_interval = f ? (uint32_t)(1 + h_below(&r, 7)) : 0;
        o.live_lag = 1 + h_below(&r, 40);
        o.max_scan = (uint32_t)(1 + h_below(&r, 50));
        append_random(s, &r, (int)h_below(&r, 30));
        factum_sub *a, *b;
        REQUIRE(factum_sub_open(s, &o, &a) == 0);
        REQUIRE(factum_sub_open(s, &o, &b) == 0);
        recs va = {0}, vb = {0};
        for (int step = 0; step < 200; step++) {
            uint64_t what = h_below(&r, 4);
            if (what == 0)
                append_random(s, &r, (int)h_below(&r, 8));
            else if (what == 1)
                poll_once(b, &vb);
            else
                take_like_tail(s, b, f, 1 + h_below(&r, 20), &vb);
        }
        while (poll_once(b, &vb)) {
        }
        while (poll_once(a, &va)) {
        }
        CHECK(va.n == vb.n);
        int same = va.n == vb.n;
        for (size_t i = 0; same && i < va.n; i++)
            same = va.r[i].kind == vb.r[i].kind && va.r[i].position == vb.r[i].position;
        if (!same)
            fprintf(stderr, "round %d: %zu items polling, %zu the tail's way: they differ\n", round, va.n,
                    vb.n);
        CHECK(same);
        factum_sub_close(a);
        factum_sub_close(b);
        factum_filter_free(f);
        free(va.r);
        free(vb.r);
        close_rm(s);
    }
}

int main(void)
{
    RUN(t_cursor_rules);
    RUN(t_same_as_polling);
    return harness_done();
}
