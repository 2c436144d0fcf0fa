/*
 * sub.c - catch-up and live subscriptions to a stream or to $all
 * (factum_sub_*): a cursor over the committed log that reads history and
 * then new commits through the ordinary read calls, and reports the
 * transitions KurrentDB's clients expect (caught up, fell behind) and the
 * checkpoints of filtered $all subscriptions.
 *
 * Design note (invariants; tests cite them as SUB-n):
 *  SUB-1  One cursor: `next` is the first version (stream) or position
 *         ($all) not yet examined. Every item is produced by reading at
 *         `next` and advancing it past what was read, so an event is
 *         delivered exactly once, in log order, whether it was committed
 *         before the subscription opened or after (no separate live path,
 *         hence no gap and no duplicate at the catch-up -> live switch).
 *  SUB-2  Only committed events are read (ST-2); a subscription never
 *         delivers an event a crash could take back (durable mode).
 *  SUB-3  No event buffer: memory per subscription is constant. Lag costs
 *         reads from further back, never memory.
 *  SUB-4  States:   catching up --(read reached the head)--> live
 *                   live --(lag > live_lag at a poll)--> catching up
 *         CAUGHT_UP is emitted on the first transition to live and on
 *         every return to it; FELL_BEHIND on every transition away.
 *  SUB-5  A CHECKPOINT's position p means: every event at a position <= p
 *         was examined and, if it matched, delivered before the checkpoint.
 *         Resuming with FACTUM_SUB_AFTER p continues without loss.
 *  SUB-6  Upcasting (upcast option): an event whose upcast fails stops the
 *         poll before it; the cursor stays on it, so every later poll fails
 *         with FACTUM_EUPCAST again (not latched) until an upcaster that
 *         works is registered: never skipped (UPC-5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "sub/sub.h"

#define SUB_PAGE       64
#define SUB_SCAN_ROUND 4096   /* events examined per read of a filtered $all */
#define SUB_SCAN_POLL  65536  /* default of max_scan: events examined per poll before returning */

struct factum_sub {
    factum_store *s;
    char *stream; /* NULL: $all */
    size_t stream_len;
    const factum_filter *filter;
    uint32_t ckpt_interval;
    uint64_t since_ckpt; /* events examined since the last checkpoint */
    uint64_t live_lag;
    uint64_t max_scan; /* events examined per poll */
    int resolve_links;
    int nowait; /* factum_sub_set_nowait: reads with FACTUM_NOWAIT */
    factum_upcast_buf *ub; /* upcast: what this poll's events were upcast into (NULL: raw) */
    int live;
    int error;      /* latched: returned by the next poll */
    uint64_t next;  /* SUB-1 */
    uint64_t position;
    uint64_t delivered;
    factum_event page[SUB_PAGE];
};

void factum_sub_options_init(factum_sub_options *o)
{
    memset(o, 0, sizeof *o);
    o->from = FACTUM_SUB_START;
    o->live_lag = 10000;
}

static int is_all_name(const char *stream)
{
    return !stream || strcmp(stream, "$all") == 0;
}

int factum_sub_open(factum_store *s, const factum_sub_options *o, factum_sub **out)
{
    if (!s || !out) return FACTUM_EINVAL;
    factum_sub_options def;
    if (!o) {
        factum_sub_options_init(&def);
        o = &def;
    }
    if (o->from != FACTUM_SUB_START && o->from != FACTUM_SUB_END && o->from != FACTUM_SUB_AFTER)
        return FACTUM_EINVAL;
    int all = is_all_name(o->stream);
    size_t len = 0;
    if (!all) {
        len = strnlen(o->stream, FACTUM_MAX_STREAM_LEN + 1);
        int rc = factum_check_stream_name(o->stream, len);
        if (rc) return rc;
        if (o->filter) return FACTUM_EINVAL;
        if (o->from == FACTUM_SUB_AFTER && o->after >= (uint64_t)INT64_MAX) return FACTUM_EINVAL;
    }
    factum_sub *sub = calloc(1, sizeof *sub);
    if (!sub) return -ENOMEM;
    sub->s = s;
    sub->filter = o->filter;
    sub->ckpt_interval = all ? o->checkpoint_interval : 0;
    sub->live_lag = o->live_lag ? o->live_lag : 1;
    sub->max_scan = o->max_scan ? o->max_scan : SUB_SCAN_POLL;
    sub->resolve_links = o->resolve_links;
    if (o->upcast) {
        int rc = factum_upcast_buf_new(&sub->ub);
        if (rc) {
            free(sub);
            return rc;
        }
    }
    if (all) {
        uint64_t head = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
        switch (o->from) {
        case FACTUM_SUB_START: sub->next = 1; break;
        case FACTUM_SUB_END: sub->next = head + 1; break;
        default: sub->next = o->after + 1;
        }
        sub->position = sub->next - 1;
    } else {
        if (!(sub->stream = strndup(o->stream, len))) {
            free(sub);
            return -ENOMEM;
        }
        sub->stream_len = len;
        factum_stream_info info;
        int rc = factum_stream_get_info(s, sub->stream, &info);
        if (!rc && info.status == FACTUM_STREAM_TOMBSTONED) rc = FACTUM_EDELETED;
        if (rc) {
            factum_sub_close(sub);
            return rc;
        }
        switch (o->from) {
        case FACTUM_SUB_START: sub->next = 0; break;
        case FACTUM_SUB_END: sub->next = info.last_version >= 0 ? (uint64_t)info.last_version + 1 : 0; break;
        default: sub->next = o->after + 1;
        }
        sub->position = sub->next ? sub->next - 1 : FACTUM_END;
    }
    *out = sub;
    return 0;
}

void factum_sub_close(factum_sub *sub)
{
    if (!sub) return;
    factum_upcast_buf_free(sub->ub);
    free(sub->stream);
    free(sub);
}

/* Committed events not yet examined, and the head they end at. */
static int lag_of(factum_sub *sub, uint64_t *lag)
{
    if (!sub->stream) {
        uint64_t head = atomic_load_explicit(&sub->s->committed_pos, memory_order_acquire);
        *lag = head >= sub->next ? head - sub->next + 1 : 0;
        return 0;
    }
    factum_stream_info info;
    int rc = factum_stream_get_info(sub->s, sub->stream, &info);
    if (rc) return rc;
    if (info.status != FACTUM_STREAM_LIVE || info.last_version < 0) {
        *lag = 0;
        return 0;
    }
    uint64_t last = (uint64_t)info.last_version;
    *lag = last >= sub->next ? last - sub->next + 1 : 0;
    return 0;
}

static void marker(factum_sub_item *it, int kind, uint64_t position)
{
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->position = position;
}

/* Turn a read event into an item (resolving a link if asked). */
static int event_item(factum_sub *sub, const factum_event *ev, factum_sub_item *it)
{
    memset(it, 0, sizeof *it);
    it->kind = FACTUM_SUB_EVENT;
    it->event = *ev;
    if (sub->resolve_links && ev->type_len == 2 && memcmp(ev->type, FACTUM_LINK_TYPE, 2) == 0) {
        factum_event target;
        int rc = factum_resolve_link(sub->s, ev, &target);
        if (rc == 0) {
            it->event = target;
            it->link = *ev;
            it->has_link = 1;
        } else if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || rc == FACTUM_EINVAL) {
            it->unresolved = 1;
        } else {
            return rc;
        }
    }
    if (sub->ub && !it->unresolved) {
        int rc = factum_upcast(sub->s, &it->event, sub->ub, &it->event);
        if (rc < 0) return rc; /* SUB-6 */
    }
    return 0;
}

const char *factum_sub_error(const factum_sub *sub)
{
    return sub && sub->ub ? factum_upcast_buf_error(sub->ub) : "";
}

/* One read at the cursor into items[*n..cap-2) (two slots stay free: a
 * checkpoint and a caught-up marker). Sets *at_head when the read reached
 * the head. */
static int read_step(factum_sub *sub, factum_sub_item *items, size_t cap, size_t *n, int *at_head,
                     uint64_t *scanned)
{
    size_t room = cap - *n - 2;
    if (room > SUB_PAGE) room = SUB_PAGE;
    size_t got = 0;
    int rc;
    if (!sub->stream) {
        uint64_t head = atomic_load_explicit(&sub->s->committed_pos, memory_order_acquire);
        size_t max_scan = SUB_SCAN_ROUND;
        if (sub->max_scan - *scanned < max_scan) max_scan = (size_t)(sub->max_scan - *scanned);
        if (sub->ckpt_interval && sub->ckpt_interval - sub->since_ckpt < max_scan)
            max_scan = (size_t)(sub->ckpt_interval - sub->since_ckpt);
        uint64_t nx;
        if (!sub->filter && room < max_scan) max_scan = room;
        rc = factum_read_all(sub->s, sub->next, FACTUM_FORWARD | sub->nowait, sub->filter, max_scan, sub->page, room,
                             &got, &nx);
        if (rc) return rc;
        int up_rc = 0;
        for (size_t i = 0; i < got; i++) {
            if ((rc = event_item(sub, &sub->page[i], &items[*n]))) {
                if (rc != FACTUM_EUPCAST) return rc;
                nx = sub->page[i].position; /* SUB-6: stop before it */
                got = i;
                up_rc = rc;
                break;
            }
            items[(*n)++].position = sub->page[i].position;
        }
        uint64_t examined = nx - sub->next;
        *scanned += examined;
        sub->since_ckpt += examined;
        sub->next = nx;
        sub->position = nx - 1;
        sub->delivered += got;
        if (sub->ckpt_interval && sub->since_ckpt >= sub->ckpt_interval) {
            marker(&items[(*n)++], FACTUM_SUB_CHECKPOINT, sub->position);
            sub->since_ckpt = 0;
        }
        *at_head = nx > head;
        return up_rc;
    }
    uint64_t nx;
    rc = factum_read_stream(sub->s, sub->stream, sub->next, FACTUM_FORWARD | sub->nowait, sub->page, room, &got,
                            &nx);
    if (rc == FACTUM_ENOTFOUND) { /* not yet written, or soft-deleted: wait */
        *at_head = 1;
        return 0;
    }
    if (rc) return rc;
    for (size_t i = 0; i < got; i++) {
        if ((rc = event_item(sub, &sub->page[i], &items[*n]))) return rc;
        items[(*n)++].position = sub->page[i].version;
        sub->next = sub->page[i].version + 1;
        sub->position = sub->page[i].version;
    }
    *scanned += got;
    sub->delivered += got;
    *at_head = nx == FACTUM_END;
    return 0;
}

int factum_sub_poll(factum_sub *sub, factum_sub_item *items, size_t cap, size_t *n_out, int timeout_ms)
{
    if (!sub || !n_out || !items || cap < 4) return FACTUM_EINVAL;
    *n_out = 0;
    if (sub->error) return sub->error;
    if (sub->ub) factum_upcast_buf_reset(sub->ub); /* the last poll's upcast events end here */
    uint64_t deadline = timeout_ms > 0 ? base_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        size_t n = 0;
        uint64_t scanned = 0;
        int at_head = 0, rc = 0;
        uint64_t head = atomic_load_explicit(&sub->s->committed_pos, memory_order_acquire);
        if (sub->live) {
            uint64_t lag;
            if ((rc = lag_of(sub, &lag))) goto failed;
            if (lag > sub->live_lag) {
                marker(&items[n++], FACTUM_SUB_FELL_BEHIND, sub->position);
                sub->live = 0;
            }
        }
        while (n + 2 < cap && !at_head && scanned < sub->max_scan) {
            if ((rc = read_step(sub, items, cap, &n, &at_head, &scanned))) goto failed;
            if (n && !sub->filter) break; /* hand over what we have */
        }
        if (at_head && !sub->live) {
            marker(&items[n++], FACTUM_SUB_CAUGHT_UP, sub->position);
            sub->live = 1;
        }
        if (n || !at_head) {
            /* Items, or the scan budget ran out far from the head: the
             * caller comes back at once (factum_sub_pending says so). */
            *n_out = n;
            return 0;
        }
        if (timeout_ms == 0) return 0;
        int left = -1;
        if (timeout_ms > 0) {
            uint64_t now = base_mono_ns();
            if (now >= deadline) return 0;
            left = (int)((deadline - now + 999999u) / 1000000u);
        }
        if (!factum_wait_for_position(sub->s, head, left)) return 0;
        continue;
    failed:
        if (rc == -EWOULDBLOCK) { /* factum_sub_set_nowait: nothing moved; poll again (waiting) */
            *n_out = n;
            return n ? 0 : rc;
        }
        if (n) { /* deliver what came before the error; report it next time */
            if (rc != FACTUM_EUPCAST) sub->error = rc; /* SUB-6: read again at the cursor */
            *n_out = n;
            return 0;
        }
        return rc;
    }
}

int factum_sub_set_nowait(factum_sub *sub, int on)
{
    if (!sub) return FACTUM_EINVAL;
    sub->nowait = on ? FACTUM_NOWAIT : 0;
    return 0;
}

int factum_sub_pending(const factum_sub *sub)
{
    if (!sub || sub->error) return 0;
    if (!sub->stream) return atomic_load_explicit(&sub->s->committed_pos, memory_order_acquire) >= sub->next;
    uint64_t lag = 0;
    if (lag_of((factum_sub *)sub, &lag)) return 1; /* let the poll report the error */
    return lag > 0;
}

int factum_sub_get_status(factum_sub *sub, factum_sub_status *st)
{
    if (!sub || !st) return FACTUM_EINVAL;
    memset(st, 0, sizeof *st);
    st->live = sub->live;
    st->position = sub->position;
    st->delivered = sub->delivered;
    int rc = lag_of(sub, &st->lag_events);
    if (rc || !st->lag_events) return rc;
    factum_event ev;
    if (!sub->stream) {
        rc = factum_read_position(sub->s, sub->next, &ev);
    } else {
        size_t n = 0;
        rc = factum_read_stream(sub->s, sub->stream, sub->next, FACTUM_FORWARD, &ev, 1, &n, NULL);
        if (!rc && !n) rc = FACTUM_ENOTFOUND;
    }
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) return 0; /* gone meanwhile: no age */
    if (rc) return rc;
    int64_t age = base_now_ns() - ev.timestamp_ns;
    st->lag_ns = age > 0 ? age : 0;
    return 0;
}

/* ---- the shared tail's view (sub.h) -------------------------------------- */

uint64_t sub_head(factum_store *s)
{
    return atomic_load_explicit(&s->committed_pos, memory_order_acquire);
}

int sub_tail_cursor(const factum_sub *sub, uint64_t *next, uint64_t *head)
{
    if (!sub || sub->stream || !sub->live || sub->error || sub->ub) return 0;
    uint64_t h = sub_head(sub->s);
    uint64_t lag = h >= sub->next ? h - sub->next + 1 : 0;
    if (lag > sub->live_lag) return 0; /* the poll reports FELL_BEHIND (SUB-4) */
    *next = sub->next;
    *head = h;
    return 1;
}

int sub_tail_advance(factum_sub *sub, uint64_t position, int delivered)
{
    if (!sub || sub->stream || position != sub->next) return FACTUM_EINVAL;
    sub->next = position + 1;
    sub->position = position;
    sub->delivered += delivered ? 1 : 0;
    if (!sub->ckpt_interval || ++sub->since_ckpt < sub->ckpt_interval) return 0;
    sub->since_ckpt = 0;
    return 1;
}
