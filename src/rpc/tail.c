/*
 * tail.c - the shared tail of live $all subscriptions (ADR 0021, ADR 0005's
 * option 3). Without it every subscription at the head read each new event
 * from the store and packed its own ReadResp; with a thousand subscribers
 * one commit cost the loop a thousand reads and packings of the same bytes.
 * The tail reads each committed event once, packs it once per variant that
 * a subscriber asks for, and keeps the recent ones in a ring; a subscriber
 * at the head (subscribe.c) only filters and copies the packed bytes into
 * its call's output.
 *
 * Design note (invariants; tests cite them as TAIL-n):
 *  TAIL-1  The ring holds the consecutive positions [first, end) of $all,
 *          as the store returned them (factum_read_all without a filter:
 *          every position, so a subscriber's filter and checkpoint count
 *          see what a read would show them). Slot position % SLOTS. It is
 *          extended only by reading from `end` (never skipping: a gap
 *          restarts the ring at the later position, dropping all it held).
 *  TAIL-2  A packed message is the exact bytes the subscriber's own path
 *          would send (rpc_event_fill of rpc_upcast's form, packed as
 *          rpc_send_event): variants are the two UUID forms times raw or
 *          upcast, the only request options that change an event's bytes
 *          (resolve_links changes only links: subscribe.c does not take a
 *          link from the tail when it resolves links). An upcast form is
 *          valid for the upcaster registry's generation it was made under;
 *          a new generation drops every upcast form. An event whose upcast
 *          needs a script (UPJ-1) or fails is not covered: its subscribers
 *          read it from the store and upcast it as before, off the loop.
 *          Nor is a sealed event (crypto-shredding): the ring reads without
 *          a reader, so no plaintext is ever in it; each subscriber opens
 *          the event through its own.
 *  TAIL-3  Bounded: at most RPC_TAIL_SLOTS events and RPC_TAIL_MAX_BYTES
 *          packed bytes; a message over RPC_TAIL_MAX_FRAME is not kept.
 *          Over a bound the oldest events go first. A subscriber that is
 *          slow or behind does not hold anything in the ring: when its next
 *          position has left the ring it reads from the store (its cursor,
 *          SUB-1) and comes back when it reaches the head.
 *  TAIL-4  Loop thread only, no blocking: a refill reads at most SLOTS
 *          events of the committed log (memory-mapped, ADR 0005).
 *  TAIL-5  The ring's events were read while the store's epoch was `epoch`
 *          (taken before each read): when a scavenge swaps a segment in
 *          (the epoch changes) the ring is emptied before any of them is
 *          used again, so no event pointer outlives the scavenge's grace.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/events.h"
#include "rpc/tail.h"
#include "store/upcast.h"
#include "sub/sub.h"

#define VARIANTS    4 /* uuid_string x raw */
#define REFILL_PAGE 64

typedef struct tail_ent {
    factum_event ev; /* points into the log: while the store's epoch is the ring's (TAIL-5) */
    uint8_t *msg[VARIANTS];
    uint32_t len[VARIANTS];
    uint8_t uncovered; /* bit per variant: not covered (TAIL-2) */
} tail_ent;

struct rpc_tail {
    tail_ent *ents;      /* RPC_TAIL_SLOTS */
    uint64_t first, end; /* TAIL-1 */
    size_t bytes;
    uint64_t upc_gen; /* of the upcast forms held (TAIL-2) */
    uint64_t epoch;   /* the store's when the events held were read (TAIL-5) */
    factum_upcast_buf *ub;
    rpc_stats *st; /* the context's: sub_tail_* */
};

static tail_ent *slot(rpc_tail *t, uint64_t position)
{
    return &t->ents[position % RPC_TAIL_SLOTS];
}

static void ent_clear(rpc_tail *t, tail_ent *e, int upcast_only)
{
    for (int v = 0; v < VARIANTS; v++) {
        if (upcast_only && (v & 1)) continue; /* raw forms stay */
        if (e->msg[v]) {
            t->bytes -= e->len[v];
            t->st->sub_tail_bytes = t->bytes;
            free(e->msg[v]);
        }
        e->msg[v] = NULL;
        e->len[v] = 0;
        e->uncovered &= (uint8_t) ~(1u << v);
    }
}

static void drop_oldest(rpc_tail *t)
{
    ent_clear(t, slot(t, t->first), 0);
    t->first++;
}

static rpc_tail *tail_get(rpc_ctx *ctx)
{
    if (ctx->tail) return ctx->tail;
    rpc_tail *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (!(t->ents = calloc(RPC_TAIL_SLOTS, sizeof *t->ents))) {
        free(t);
        return NULL;
    }
    t->first = t->end = 1;
    t->st = &ctx->st;
    ctx->tail = t;
    return t;
}

/* TAIL-5: a scavenge swapped a segment in since the ring's events were
 * read: drop them all (the next refill starts at `end`). */
static void check_epoch(rpc_ctx *ctx, rpc_tail *t)
{
    uint64_t e = factum_store_epoch(ctx->store);
    if (e == t->epoch) return;
    while (t->first < t->end)
        drop_oldest(t);
    t->epoch = e;
}

/* Read the events committed since `end` (at most SLOTS: TAIL-4). */
static void refill(rpc_ctx *ctx, rpc_tail *t)
{
    check_epoch(ctx, t); /* before the reads (TAIL-5) */
    uint64_t head = sub_head(ctx->store);
    if (head < t->end) return;
    if (head - t->end + 1 > RPC_TAIL_SLOTS) { /* a gap: start again nearer the head (TAIL-1) */
        while (t->first < t->end)
            drop_oldest(t);
        t->first = t->end = head - RPC_TAIL_SLOTS + 1;
    }
    factum_event page[REFILL_PAGE];
    /* No reader: a sealed event stays sealed here and is not covered
     * (pack); its subscribers open it through their own reader. */
    factum_reader *prev = factum_reader_use(NULL);
    while (t->end <= head) {
        size_t n = 0;
        uint64_t nx = 0;
        size_t want = head - t->end + 1 < REFILL_PAGE ? (size_t)(head - t->end + 1) : REFILL_PAGE;
        if (factum_read_all(ctx->store, t->end, FACTUM_FORWARD, NULL, want, page, want, &n, &nx) || !n) break;
        for (size_t i = 0; i < n; i++) {
            if (page[i].position != t->end) { /* never: read_all returns every position (TAIL-1) */
                factum_reader_use(prev);
                return;
            }
            if (t->end - t->first >= RPC_TAIL_SLOTS) drop_oldest(t);
            tail_ent *e = slot(t, t->end);
            memset(e, 0, sizeof *e);
            e->ev = page[i];
            t->end++;
            t->st->sub_tail_read++;
        }
    }
    factum_reader_use(prev);
}

const factum_event *rpc_tail_event(rpc_ctx *ctx, uint64_t position)
{
    rpc_tail *t = tail_get(ctx);
    if (!t) return NULL;
    check_epoch(ctx, t);
    if (position >= t->end) refill(ctx, t);
    if (position < t->first || position >= t->end) return NULL;
    return &slot(t, position)->ev;
}

/* Pack e's event for variant v into a message of its own; 0 or 1 (not covered). */
static int pack(rpc_ctx *ctx, rpc_tail *t, tail_ent *e, int v)
{
    int uuid_string = v >> 1, raw = v & 1;
    if (e->ev.flags & FACTUM_EVENT_SEALED) return 1; /* not covered: opened per subscriber (TAIL-2) */
    factum_event up = e->ev;
    if (!raw) {
        if (upc_needs_script(ctx->store, &e->ev) != 0) return 1; /* UPJ-1: off the loop, per subscriber */
        if (!t->ub && factum_upcast_buf_new(&t->ub)) return 1;
        factum_upcast_buf_reset(t->ub);
        int rc = upc_upcast_noscript(ctx->store, &e->ev, t->ub, &up);
        if (rc < 0 || rc == UPC_DEFER) return 1; /* the subscriber's own path reports or defers it */
    }
    rpc_event_msg m;
    rpc_event_init(&m);
    rpc_event_fill(&m, &up, uuid_string);
    size_t n = rpc_event_packed_size(&m);
    if (n > RPC_TAIL_MAX_FRAME) return 1;
    uint8_t *b = malloc(n);
    if (!b) return 1;
    rpc_event_pack(&m, b);
    e->msg[v] = b;
    e->len[v] = (uint32_t)n;
    t->bytes += n;
    t->st->sub_tail_bytes = t->bytes;
    t->st->sub_tail_packed++;
    return 0;
}

int rpc_tail_frame(rpc_ctx *ctx, uint64_t position, int uuid_string, int raw, const uint8_t **msg,
                   size_t *len)
{
    rpc_tail *t = ctx->tail;
    if (t) check_epoch(ctx, t);
    if (!t || position < t->first || position >= t->end) return 1;
    int v = (uuid_string ? 2 : 0) | (raw ? 1 : 0);
    if (!raw) {
        uint64_t gen = upc_generation(ctx->store);
        if (gen != t->upc_gen) { /* the registry changed: no upcast form holds (TAIL-2) */
            for (uint64_t p = t->first; p < t->end; p++)
                ent_clear(t, slot(t, p), 1);
            t->upc_gen = gen;
        }
    }
    tail_ent *e = slot(t, position);
    if (e->uncovered & (1u << v)) return 1;
    if (!e->msg[v]) {
        if (pack(ctx, t, e, v)) {
            e->uncovered |= (uint8_t)(1u << v);
            return 1;
        }
        /* TAIL-3: make room by dropping the oldest, never this one. */
        while (t->bytes > RPC_TAIL_MAX_BYTES && t->first < position)
            drop_oldest(t);
    }
    *msg = e->msg[v];
    *len = e->len[v];
    return 0;
}

void rpc_tail_free(rpc_ctx *ctx)
{
    rpc_tail *t = ctx->tail;
    if (!t) return;
    while (t->first < t->end)
        drop_oldest(t);
    factum_upcast_buf_free(t->ub);
    free(t->ents);
    free(t);
    ctx->tail = NULL;
}
