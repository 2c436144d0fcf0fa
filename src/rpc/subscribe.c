/*
 * subscribe.c - Streams.Read in subscription mode: a catch-up subscription
 * to a stream or $all (factum_sub) served on the loop thread. The call gets
 * confirmation{subscription_id} first, then the events from its starting
 * point, caught_up when it reaches the head, the events committed later,
 * fell_behind / caught_up again if it drops more than --subscription-live-lag
 * events behind, and (filtered $all) checkpoints every
 * checkpointIntervalMultiplier x window events examined.
 *
 * RPC-4  A subscription at the head costs no work: it sits in the context's
 *        waiting list. The store calls a commit listener on the committing
 *        thread, which posts one wake-up to the loop (at most one queued;
 *        live.c, registered before the loop serves); the wake-up pumps every
 *        waiting subscription (rpc_sub_wake_all). A commit between a
 *        subscription's last poll and its entry into the list is not missed:
 *        the listener runs after the commit is visible and its wake-up runs
 *        on the loop, after the handler that parked the subscription.
 *        The wake-up pumps SUB_WAKE_CHUNK of them and defers the rest to
 *        the next turn of the loop (net_defer), and so on: between two
 *        chunks the loop flushes what the last one queued, serves its
 *        sockets and completes appends, so that a fan-out to thousands of
 *        subscribers does not hold the writer's next append (and the
 *        subscribers pumped later take every commit made meanwhile in one
 *        write). A wake-up while a fan-out is under way adds the newly
 *        waiting to the end of the list (none is pumped twice ahead of
 *        another that waits).
 *        A subscription whose client does not read stops polling (its queue
 *        is full, on_writable resumes it): memory stays bounded (NET-2,
 *        SUB-3) and its cursor simply falls behind.
 * RPC-6  A subscription loses its access as soon as its ACL changes: every
 *        pump of one that is not the system principal's first compares
 *        the versions of its stream's metadata (`$$S`, for $all `$$$all`)
 *        and of `$settings` with those it was allowed under
 *        (auth_stamp); when one moved it checks again and, refused, ends
 *        with the clients' error before it sends anything more. A write
 *        of metadata is a commit, which wakes every waiting subscription,
 *        so the check runs right after the change; a subscription that is
 *        not pumped (its client does not read) sends nothing until it is.
 *        It checks again too when its principal moved (its user's groups
 *        changed, or it was revoked: PRINCIPAL-1); users.c then pumps
 *        every subscription (rpc_live_recheck), since the wake-up of the
 *        change's commit may have run before the change was in force.
 *        A resolved link whose target the subscriber may not read is sent
 *        as a link whose target is gone.
 * RPC-7  A live $all subscription takes its events from the shared tail
 *        (tail.c, ADR 0021) while it can: at its cursor's next position
 *        (sub_tail_cursor: live, not more than live_lag behind) it filters
 *        the tail's event, copies the tail's packed message when it
 *        matches, and only then advances the cursor past it
 *        (sub_tail_advance), sending a checkpoint where one falls due: the
 *        same items in the same order as polling (SUB-1, SUB-5). Where the
 *        tail cannot serve (the position left the ring or is not in it yet,
 *        a link to resolve, an upcast that needs a script or fails, a
 *        filter error) it polls the store from the same cursor, as before;
 *        with its queue full it stops like any send (RPC-4) and holds
 *        nothing in the tail (TAIL-3).
 * RPC-8  Events kept across the loop's turns (items[i..n) here, a read's
 *        page, a consumer group's messages, the tail's ring) carry the
 *        store's epoch taken before they were read; before any is used
 *        after the epoch changed (a scavenge swapped a segment in, whose
 *        old file goes after --scavenge-grace-ms) they are read again by
 *        position (rpc_refresh_event), and those the scavenge removed are
 *        dropped. So factumd never sends bytes of a released file, and the
 *        scavenge's space goes back while it runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "auth/pool.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "net/grpc.h"
#include "rpc/events.h"
#include "rpc/subscribe.h"
#include "rpc/tail.h"
#include "sub/sub.h"

typedef EventStore__Client__Streams__ReadReq__Options ReadOpts;
typedef EventStore__Client__Streams__ReadResp ReadResp;

#define SUB_ITEMS 66   /* items per poll: up to 64 events and two markers */
#define SUB_STEP  256  /* messages per turn before yielding to the loop (RPC-2) */
#define SUB_SCAN_STEP 4096 /* events examined per poll: a sparse filter yields after this many (RPC-2) */
#define SUB_DEFAULT_WINDOW 32
#define SUB_WAKE_CHUNK 64 /* subscriptions pumped per turn of the loop by a wake-up (RPC-4) */

typedef struct rpc_sub {
    rpc_ctx *ctx;
    net_call *c;
    factum_sub *sub;
    factum_filter *filter;
    char *stream; /* NULL: $all */
    int uuid_string;
    int raw; /* events as stored (rpc_wants_raw) */
    int resolve; /* resolve_links: a link is not taken from the tail (TAIL-2) */
    int waiting; /* 1: in ctx->sub_waiting, 2: in ctx->sub_waking */
    int posted;  /* a continuation is queued */
    int closed; /* the call closed while a continuation was queued */
    int counted; /* in ctx->st.subs_active */
    int authz;   /* not the system principal: check again when the ACL moves (RPC-6) */
    auth_stamp stamp;
    const auth_principal *as; /* who it was allowed as (borrowed from the call; PRINCIPAL-1) */
    struct rpc_sub *wprev, *wnext;
    struct rpc_sub *aprev, *anext; /* ctx->sub_all */
    char id[37];
    size_t n, i; /* items[i..n) not yet sent */
    factum_sub_item items[SUB_ITEMS];
    uint64_t items_epoch, rd_epoch; /* the store's epoch when the items were polled (RPC-8) */
    rpc_upjob *upj; /* items[i..n) upcast off the loop (upjob.c), or NULL */
    /* A poll on the reader pool (rdjob.c): pages not known to be in memory
     * (RDJ-1). The worker fills items and rd_n, rd_rc while rd_running;
     * a call that closes meanwhile is freed by its done (RDJ-4). */
    auth_job rj;
    int rd_running, rd_rc;
    size_t rd_n;
    factum_reader *rdr; /* the items' sealed events open here (reset per poll; crypto-shredding) */
    int64_t started_ns; /* realtime, when it was confirmed (rpc_sub_each) */
} rpc_sub;

/* ---- the waiting list and the wake-up (RPC-4) ------------------------- */

static rpc_sub **list_of(rpc_sub *s)
{
    return s->waiting == 1 ? &s->ctx->sub_waiting : &s->ctx->sub_waking;
}

static void wait_remove(rpc_sub *s)
{
    if (!s->waiting) return;
    rpc_sub **head = list_of(s);
    if (s->waiting == 2 && s->ctx->sub_waking_tail == s) s->ctx->sub_waking_tail = s->wprev;
    if (s->wprev) s->wprev->wnext = s->wnext;
    else *head = s->wnext;
    if (s->wnext) s->wnext->wprev = s->wprev;
    s->wprev = s->wnext = NULL;
    s->waiting = 0;
}

static void wait_add(rpc_sub *s)
{
    if (s->waiting) return;
    s->waiting = 1;
    s->wprev = NULL;
    s->wnext = s->ctx->sub_waiting;
    if (s->wnext) s->wnext->wprev = s;
    s->ctx->sub_waiting = s;
}

static void sub_pump(rpc_sub *s);

static void wake_pump(rpc_ctx *ctx);

static void wake_more(void *arg)
{
    rpc_ctx *ctx = arg;
    ctx->sub_wake_more = 0;
    wake_pump(ctx);
}

/* Pump the first SUB_WAKE_CHUNK subscriptions of the waking list; the rest
 * in a later turn of the loop (RPC-4). */
static void wake_pump(rpc_ctx *ctx)
{
    for (int n = 0; ctx->sub_waking && n < SUB_WAKE_CHUNK; n++) {
        rpc_sub *s = ctx->sub_waking;
        wait_remove(s);
        sub_pump(s);
    }
    if (!ctx->sub_waking || ctx->sub_wake_more) return;
    if (net_defer(ctx->net, wake_more, ctx) == 0) {
        ctx->sub_wake_more = 1;
        return;
    }
    while (ctx->sub_waking) { /* out of memory for the continuation: all now */
        rpc_sub *s = ctx->sub_waking;
        wait_remove(s);
        sub_pump(s);
    }
}

void rpc_sub_wake_all(rpc_ctx *ctx)
{
    /* Move the waiting list to the end of the waking one (which still holds
     * those a previous wake-up has not reached yet), then pump from its
     * front: a pump may park its subscription again (into sub_waiting) or
     * close others (which unlink themselves from sub_waking). */
    rpc_sub *w = ctx->sub_waiting, *last = NULL;
    ctx->sub_waiting = NULL;
    for (rpc_sub *s = w; s; s = s->wnext) {
        s->waiting = 2;
        last = s;
    }
    if (w) {
        if (ctx->sub_waking_tail) {
            ctx->sub_waking_tail->wnext = w;
            w->wprev = ctx->sub_waking_tail;
        } else {
            ctx->sub_waking = w;
        }
        ctx->sub_waking_tail = last;
    }
    wake_pump(ctx);
}

void rpc_sub_lag_each(rpc_ctx *ctx, rpc_lag_fn fn, void *arg)
{
    for (rpc_sub *s = ctx->sub_all; s; s = s->anext) {
        factum_sub_status st;
        if (s->rd_running) continue; /* a reader thread polls it now (RDJ-2): reported next time */
        if (factum_sub_get_status(s->sub, &st)) continue;
        fn(arg, "subscription", s->stream ? s->stream : "$all", s->id, st.lag_events, (double)st.lag_ns / 1e9);
    }
}

void rpc_sub_each(rpc_ctx *ctx, size_t max, void (*fn)(void *arg, const rpc_sub_view *v), void *arg)
{
    size_t n = 0;
    for (rpc_sub *s = ctx->sub_all; s && n < max; s = s->anext, n++) {
        factum_sub_status st = {0};
        /* A poll on a reader thread owns the cursor (RDJ-2): its status
         * waits, the rest of the row is known. */
        if (!s->rd_running && factum_sub_get_status(s->sub, &st)) continue;
        char peer[64];
        const auth_principal *p = rpc_principal(s->c);
        rpc_sub_view v = {
            .id = s->id,
            .source = s->stream ? s->stream : "$all",
            .user = p->flags & AUTH_P_SYSTEM ? "$system" : p->login[0] ? p->login : "$anonymous",
            .peer = net_call_peer(s->c, peer, sizeof peer),
            .filtered = s->filter != NULL,
            .resolve_links = s->resolve,
            .live = st.live,
            .started_ns = s->started_ns,
            .position = st.position,
            .delivered = st.delivered,
            .lag_events = st.lag_events,
            .lag_seconds = (double)st.lag_ns / 1e9,
        };
        fn(arg, &v);
    }
}

/* ---- messages out ----------------------------------------------------- */

static void now_ts(Google__Protobuf__Timestamp *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t->seconds = ts.tv_sec;
    t->nanos = (int32_t)ts.tv_nsec;
}

/* Is item it's event sent as a link whose target may not be read (RPC-6)? */
static int link_gone(rpc_sub *s, const factum_sub_item *it)
{
    return it->has_link && !rpc_may_read_link_target(s->ctx, s->c, &it->event);
}

static void sub_ready(void *owner, rpc_upjob *j)
{
    rpc_sub *s = owner;
    (void)j;
    if (!net_call_done(s->c)) sub_pump(s);
}

/* An event of items[i..n) needs a script upcaster: hand those that do to
 * a job (UPJ-1). 1 (wait for sub_ready) or -1 (the call was failed). */
static int sub_hand_off(rpc_sub *s)
{
    const factum_event *ptr[SUB_ITEMS];
    size_t k = 0;
    for (size_t i = s->i; i < s->n; i++) {
        const factum_sub_item *it = &s->items[i];
        if (it->kind != FACTUM_SUB_EVENT || it->unresolved || link_gone(s, it)) continue;
        if (rpc_upcast_needs_job(s->ctx, &it->event, s->raw)) ptr[k++] = &it->event;
    }
    rpc_upjob_release(s->upj);
    s->upj = NULL;
    int rc = k ? rpc_upjob_start(s->ctx, ptr, k, s, sub_ready, &s->upj) : -EINVAL;
    if (rc) {
        if (rc == -EINVAL) rpc_fail(s->c, GRPC_INTERNAL, "upcasting: nothing to hand off", NULL, NULL);
        else rpc_upjob_refused(s->c, rc);
        return -1;
    }
    return 1;
}

/* Send one item: 0, -EAGAIN (queue full), 1 (its event is upcast off the
 * loop first: sub_ready resumes), or -1 (the call is over). */
static int send_item(rpc_sub *s, const factum_sub_item *it)
{
    rpc_ctx *ctx = s->ctx;
    int rc;
    if (it->kind == FACTUM_SUB_EVENT) {
        rpc_event_msg m;
        rpc_event_init(&m);
        factum_event up;
        int gone = link_gone(s, it);
        if (!gone && !it->unresolved) {
            int u = rpc_upcast(ctx, s->c, &it->event, &up, s->raw, s->upj);
            if (u == 1) return sub_hand_off(s);
            if (u) return -1;
        }
        if (gone)
            rpc_event_fill_resolved(&m, NULL, &it->link, s->uuid_string); /* RPC-6: as a link gone */
        else if (it->has_link) rpc_event_fill_resolved(&m, &up, &it->link, s->uuid_string);
        else if (it->unresolved) rpc_event_fill_resolved(&m, NULL, &it->event, s->uuid_string);
        else rpc_event_fill(&m, &up, s->uuid_string);
        rc = rpc_send_event(ctx, s->c, &m);
        if (!rc) {
            ctx->st.sub_events++;
            ctx->st.read_bytes += it->event.data_len + it->event.metadata_len;
        }
    } else {
        ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
        Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        EventStore__Client__Streams__ReadResp__Position pos = EVENT_STORE__CLIENT__STREAMS__READ_RESP__POSITION__INIT;
        EventStore__Client__Streams__ReadResp__CaughtUp cu = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__INIT;
        EventStore__Client__Streams__ReadResp__FellBehind fb =
            EVENT_STORE__CLIENT__STREAMS__READ_RESP__FELL_BEHIND__INIT;
        EventStore__Client__Streams__ReadResp__Checkpoint cp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CHECKPOINT__INIT;
        now_ts(&ts);
        pos.commit_position = pos.prepare_position = it->position;
        int has_pos = !s->stream && it->position > 0;
        int has_rev = s->stream && it->position != FACTUM_END;
        switch (it->kind) {
        case FACTUM_SUB_CAUGHT_UP:
            cu.timestamp = &ts;
            if (has_pos) cu.position = &pos;
            if (has_rev) {
                cu.stream_revision_option_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CAUGHT_UP__STREAM_REVISION_OPTION_STREAM_REVISION;
                cu.stream_revision = (int64_t)it->position;
            }
            resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP;
            resp.caught_up = &cu;
            break;
        case FACTUM_SUB_FELL_BEHIND:
            fb.timestamp = &ts;
            if (has_pos) fb.position = &pos;
            if (has_rev) {
                fb.stream_revision_option_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__FELL_BEHIND__STREAM_REVISION_OPTION_STREAM_REVISION;
                fb.stream_revision = (int64_t)it->position;
            }
            resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_FELL_BEHIND;
            resp.fell_behind = &fb;
            break;
        default:
            cp.commit_position = cp.prepare_position = it->position;
            cp.timestamp = &ts;
            resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CHECKPOINT;
            resp.checkpoint = &cp;
        }
        rc = rpc_send(ctx, s->c, &resp.base);
        if (!rc) {
            if (it->kind == FACTUM_SUB_CAUGHT_UP) ctx->st.sub_caught_up++;
            else if (it->kind == FACTUM_SUB_FELL_BEHIND) ctx->st.sub_fell_behind++;
            else ctx->st.sub_checkpoints++;
        }
    }
    if (rc == -EAGAIN) return rc;
    return rc ? -1 : 0;
}


/* ---- from the shared tail (RPC-7) -------------------------------------- */

#define TAIL_AT_HEAD 1 /* everything committed was examined: wait (RPC-4) */
#define TAIL_YIELD   2 /* a step's worth done (RPC-2) */
#define TAIL_ITEMS   3 /* a checkpoint is due: it waits in items[] */
#define TAIL_POLL    0 /* the tail cannot serve the next position: poll */

static int is_link(const factum_event *ev)
{
    return ev->type_len == 2 && memcmp(ev->type, FACTUM_LINK_TYPE, 2) == 0;
}

/* One of the TAIL_ codes, -EAGAIN (queue full, nothing lost: the cursor
 * stays on the event not sent) or -1 (the call is over). */
static int tail_take(rpc_sub *s, int *sent)
{
    rpc_ctx *ctx = s->ctx;
    uint64_t next, head;
    if (s->stream || !sub_tail_cursor(s->sub, &next, &head)) return TAIL_POLL;
    for (int examined = 0;; examined++) {
        if (next > head) return TAIL_AT_HEAD;
        if (*sent >= SUB_STEP || examined >= SUB_SCAN_STEP) return TAIL_YIELD;
        const factum_event *ev = rpc_tail_event(ctx, next);
        if (!ev) return TAIL_POLL;
        int m = s->filter ? factum_filter_match(s->filter, ev) : 1;
        if (m < 0) return TAIL_POLL; /* the poll reports it */
        if (m) {
            const uint8_t *msg;
            size_t len;
            if (s->resolve && is_link(ev)) return TAIL_POLL;
            if (rpc_tail_frame(ctx, next, s->uuid_string, s->raw, &msg, &len)) return TAIL_POLL;
            int rc = net_call_send(s->c, msg, len);
            if (rc == -EAGAIN) return rc;
            if (rc) return -1;
            ctx->st.sub_tail_copies++;
            ctx->st.sub_events++;
            ctx->st.read_bytes += ev->data_len + ev->metadata_len;
            (*sent)++;
        }
        int due = sub_tail_advance(s->sub, next, m);
        if (due < 0) return TAIL_POLL; /* never: next is the cursor's */
        if (due) {
            memset(&s->items[0], 0, sizeof s->items[0]);
            s->items[0].kind = FACTUM_SUB_CHECKPOINT;
            s->items[0].position = next;
            s->i = 0;
            s->n = 1;
            return TAIL_ITEMS;
        }
        next++;
    }
}

/* ---- the pump ---------------------------------------------------------- */

static void sub_destroy(rpc_sub *s)
{
    if (s->counted) {
        s->ctx->st.subs_active--;
        if (s->aprev) s->aprev->anext = s->anext;
        else s->ctx->sub_all = s->anext;
        if (s->anext) s->anext->aprev = s->aprev;
    }
    rpc_upjob_release(s->upj);
    factum_sub_close(s->sub);
    factum_filter_free(s->filter);
    factum_reader_free(s->rdr);
    free(s->stream);
    free(s);
}

static void sub_continue(void *arg)
{
    rpc_sub *s = arg;
    net_call *c = s->c;
    s->posted = 0;
    if (s->closed) {
        if (!s->rd_running) sub_destroy(s); /* else sub_job_done does (RDJ-4) */
    }
    else if (!net_call_done(c)) sub_pump(s);
    net_call_unref(c); /* last: the call (and with it s->c) may go here */
}

static void sub_fail(rpc_sub *s, int rc)
{
    if (rc == FACTUM_EDELETED) rpc_fail_store(s->c, rc, s->stream, 0, -1);
    else rpc_fail(s->c, rpc_status_of(rc), factum_strerror(rc), NULL, NULL);
}

static void sub_job_work(auth_job *j)
{
    rpc_sub *s = (rpc_sub *)((char *)j - offsetof(rpc_sub, rj));
    factum_sub_set_nowait(s->sub, 0);
    s->rd_n = 0;
    s->rd_epoch = factum_store_epoch(s->ctx->store); /* before the poll (RPC-8) */
    factum_reader *prev = rpc_reader_enter(s->ctx, &s->rdr, 1); /* the items before are sent */
    s->rd_rc = factum_sub_poll(s->sub, s->items, SUB_ITEMS, &s->rd_n, 0);
    rpc_reader_leave(prev);
}

static void sub_took(rpc_sub *s, int rc, size_t n);

/* On the loop: the pool polled (RDJ-2); send what it got and go on. */
static void sub_job_done(auth_job *j)
{
    rpc_sub *s = (rpc_sub *)((char *)j - offsetof(rpc_sub, rj));
    s->rd_running = 0;
    if (s->closed) {
        if (!s->posted) sub_destroy(s); /* RDJ-4 (else sub_continue does) */
        return;
    }
    if (s->ctx->rd_stopped) return; /* RDJ-4: the call is being closed; the store may be */
    if (net_call_done(s->c)) return;
    if (j->cancelled) {
        rpc_fail(s->c, GRPC_UNAVAILABLE, "the server is stopping", NULL, NULL);
        return;
    }
    sub_took(s, s->rd_rc, s->rd_n);
}

/* Poll s's subscription: on the loop when its pages are in memory, else
 * on the reader pool (RDJ-1). 0 with s->n items, 1 while the pool polls
 * (sub_job_done resumes), 2 when the pool refused (the call was failed),
 * or the poll's error. */
static int sub_poll(rpc_sub *s)
{
    size_t n = 0;
    int rc = -EWOULDBLOCK;
    if (!rpc_read_off_loop(s->ctx)) {
        factum_sub_set_nowait(s->sub, rpc_read_nowait(s->ctx) != 0);
        uint64_t epoch = factum_store_epoch(s->ctx->store); /* before the poll (RPC-8) */
        factum_reader *prev = rpc_reader_enter(s->ctx, &s->rdr, 1); /* the items before are sent */
        rc = factum_sub_poll(s->sub, s->items, SUB_ITEMS, &n, 0);
        rpc_reader_leave(prev);
        s->items_epoch = epoch;
    }
    if (rc != -EWOULDBLOCK) {
        s->n = n;
        return rc;
    }
    s->rj.work = sub_job_work;
    s->rj.done = sub_job_done;
    s->rd_running = 1;
    rc = rpc_rdjob_submit(s->ctx, &s->rj);
    if (rc) {
        s->rd_running = 0;
        rpc_rdjob_refused(s->c, rc);
        return 2;
    }
    return 1;
}

/* RPC-8: a scavenge swapped a segment in since items[i..n) were polled:
 * read their events again (dropping those it removed). 0 or a store error. */
static int sub_refresh(rpc_sub *s)
{
    uint64_t e = factum_store_epoch(s->ctx->store);
    size_t k = s->i;
    factum_reader *prev = rpc_reader_enter(s->ctx, &s->rdr, 0);
    for (size_t i = s->i; i < s->n; i++) {
        factum_sub_item it = s->items[i];
        if (it.kind == FACTUM_SUB_EVENT) {
            int rc = rpc_refresh_event(s->ctx, &it.event);
            if (!rc && it.has_link) rc = rpc_refresh_event(s->ctx, &it.link);
            if (rc == FACTUM_ENOTFOUND) continue;
            if (rc) {
                rpc_reader_leave(prev);
                return rc;
            }
        }
        s->items[k++] = it;
    }
    rpc_reader_leave(prev);
    s->n = k;
    s->items_epoch = e;
    return 0;
}

static void sub_pump(rpc_sub *s)
{
    if (rpc_upjob_running(s->upj) || s->rd_running) return; /* sub_ready or sub_job_done resumes */
    if (s->i < s->n && factum_store_epoch(s->ctx->store) != s->items_epoch) {
        int rc = sub_refresh(s);
        if (rc) {
            sub_fail(s, rc);
            return;
        }
    }
    int sent = 0, polls = 0; /* a step: SUB_STEP messages, or 4 polls of up to SUB_SCAN_STEP events examined */
    if (s->authz && !net_call_done(s->c)) { /* RPC-6 */
        const char *name = s->stream ? s->stream : "$all";
        const auth_principal *as = rpc_principal(s->c);
        int moved = as != s->as || as->revoked;
        s->as = as;
        if ((auth_stamp_changed(s->ctx->authz, name, &s->stamp) || moved) &&
            rpc_authorize_stream(s->ctx, s->c, name, AUTH_READ) != AUTH_OK)
            return;
    }
    while (!net_call_done(s->c)) {
        while (s->i < s->n) {
            int rc = send_item(s, &s->items[s->i]);
            if (rc == -EAGAIN) {
                net_call_want_writable(s->c); /* on_writable resumes (RPC-4) */
                return;
            }
            if (rc == 1) return; /* upcasting off the loop: sub_ready resumes */
            if (rc) {
                /* Not sent on a live call (out of memory): end it rather
                 * than leave it with nothing to wake it. */
                if (!net_call_done(s->c)) rpc_fail(s->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
                return;
            }
            s->i++;
            sent++;
        }
        s->i = s->n = 0;
        rpc_upjob_release(s->upj); /* the items it upcast are sent */
        s->upj = NULL;
        if (sent >= SUB_STEP || polls >= 4) goto yield;
        int t = tail_take(s, &sent);
        if (t == TAIL_ITEMS) continue;
        if (t == TAIL_YIELD) goto yield;
        if (t == TAIL_AT_HEAD) {
            wait_add(s);
            return;
        }
        if (t == -EAGAIN) {
            net_call_want_writable(s->c); /* on_writable resumes (RPC-4) */
            return;
        }
        if (t < 0) {
            if (!net_call_done(s->c)) rpc_fail(s->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            return;
        }
        polls++;
        int rc = sub_poll(s);
        if (rc == 1 || rc == 2) return; /* on the reader pool (sub_job_done resumes), or failed */
        if (rc) {
            sub_fail(s, rc);
            return;
        }
        if (s->n) continue;
        if (factum_sub_pending(s->sub)) goto yield; /* a sparse filter scanned a while: let others run */
        wait_add(s);
        return;
    }
    return;
yield:
    if (s->posted) return;
    s->posted = 1;
    net_call_ref(s->c);
    if (net_defer(s->ctx->net, sub_continue, s)) {
        s->posted = 0;
        net_call_unref(s->c);
        rpc_fail(s->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
    }
}

/* The answer of a poll on the pool: as sub_pump's own (RDJ-2). */
static void sub_took(rpc_sub *s, int rc, size_t n)
{
    if (rc) {
        sub_fail(s, rc);
        return;
    }
    s->i = 0;
    s->n = n;
    s->items_epoch = s->rd_epoch;
    if (n) {
        sub_pump(s);
        return;
    }
    if (factum_sub_pending(s->sub)) sub_pump(s);
    else wait_add(s);
}

void rpc_sub_writable(rpc_sub *s)
{
    if (s && !s->waiting && !s->posted) sub_pump(s);
}

void rpc_sub_free(rpc_sub *s)
{
    if (!s) return;
    wait_remove(s);
    if (s->posted || s->rd_running) {
        s->closed = 1; /* sub_continue or sub_job_done frees it (the last of them) */
        return;
    }
    sub_destroy(s);
}

/* ---- starting ---------------------------------------------------------- */

static void invalid_combination(net_call *c, const ReadOpts *o)
{
    char msg[160];
    snprintf(msg, sizeof msg, "The combination of (%s, Subscription, %s, %s) is invalid.",
             o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM ? "Stream"
                                                                                                      : "All",
             o->read_direction ? "Backwards" : "Forwards",
             o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER ? "Filter"
                                                                                                      : "NoFilter");
    rpc_fail(c, GRPC_INVALID_ARGUMENT, msg, NULL, NULL);
}

rpc_sub *rpc_sub_start(rpc_ctx *ctx, net_call *c, const ReadOpts *o)
{
    int is_stream = o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM;
    int is_all = o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL;
    int filtered = o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER;
    if ((!is_stream || !o->stream) && (!is_all || !o->all)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "read options name neither a stream nor $all", NULL, NULL);
        return NULL;
    }
    if (o->read_direction != EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Forwards ||
        (is_stream && filtered)) {
        invalid_combination(c, o);
        return NULL;
    }
    rpc_sub *s = calloc(1, sizeof *s);
    if (!s) {
        rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        return NULL;
    }
    s->ctx = ctx;
    s->c = c;
    s->raw = rpc_wants_raw(c);
    s->uuid_string =
        o->uuid_option->content_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.live_lag = ctx->sub_live_lag ? ctx->sub_live_lag : 10000;
    so.max_scan = SUB_SCAN_STEP;
    so.resolve_links = o->resolve_links;
    s->resolve = o->resolve_links;
    if (is_stream) {
        const EventStore__Client__StreamIdentifier *id = o->stream->stream_identifier;
        if (!id || factum_check_stream_name((const char *)id->stream_name.data, id->stream_name.len)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
            goto fail;
        }
        if (!(s->stream = strndup((const char *)id->stream_name.data, id->stream_name.len))) {
            rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            goto fail;
        }
        so.stream = s->stream;
        switch (o->stream->revision_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION:
            so.from = FACTUM_SUB_AFTER; /* exclusive, as KurrentDB */
            so.after = o->stream->revision;
            if (so.after >= (uint64_t)INT64_MAX) so.from = FACTUM_SUB_END;
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END:
            so.from = FACTUM_SUB_END;
            break;
        default: so.from = FACTUM_SUB_START;
        }
    } else {
        switch (o->all->all_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION:
            if (!o->all->position) {
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "missing position", NULL, NULL);
                goto fail;
            }
            so.from = FACTUM_SUB_AFTER; /* exclusive, as KurrentDB */
            so.after = o->all->position->commit_position;
            if (so.after >= (uint64_t)INT64_MAX) so.from = FACTUM_SUB_END; /* "no position" (u64 max): the end */
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END:
            so.from = FACTUM_SUB_END;
            break;
        default: so.from = FACTUM_SUB_START;
        }
        if (filtered && o->filter) {
            if (rpc_read_filter(c, o->filter, &s->filter)) goto fail;
            so.filter = s->filter;
            uint32_t window = o->filter->window_case ==
                                      EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__WINDOW_MAX &&
                                      o->filter->max
                                  ? o->filter->max
                                  : SUB_DEFAULT_WINDOW;
            uint64_t every = (uint64_t)window * (o->filter->checkpointintervalmultiplier
                                                     ? o->filter->checkpointintervalmultiplier
                                                     : 1);
            so.checkpoint_interval = every > UINT32_MAX ? UINT32_MAX : (uint32_t)every;
        }
    }
    if (rpc_authorize_stream(ctx, c, s->stream ? s->stream : "$all", AUTH_READ)) goto fail;
    if (!(rpc_principal(c)->flags & AUTH_P_SYSTEM) && ctx->authz) {
        s->authz = 1;
        s->as = rpc_principal(c);
        auth_stamp_take(ctx->authz, s->stream ? s->stream : "$all", &s->stamp);
    }
    int rc = factum_sub_open(ctx->store, &so, &s->sub);
    if (rc) {
        sub_fail(s, rc);
        goto fail;
    }
    /* The confirmation first. */
    uint8_t uuid[16];
    char id[37];
    factum_uuid_v4(uuid);
    factum_uuid_format(uuid, id);
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    EventStore__Client__Streams__ReadResp__SubscriptionConfirmation conf =
        EVENT_STORE__CLIENT__STREAMS__READ_RESP__SUBSCRIPTION_CONFIRMATION__INIT;
    conf.subscription_id = id;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CONFIRMATION;
    resp.confirmation = &conf;
    rc = rpc_send(ctx, c, &resp.base);
    if (rc) {
        if (rc != -EPIPE) rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
        goto fail;
    }
    ctx->st.subs_total++;
    ctx->st.subs_active++;
    s->counted = 1;
    memcpy(s->id, id, sizeof s->id);
    s->started_ns = base_now_ns();
    s->anext = ctx->sub_all;
    if (s->anext) s->anext->aprev = s;
    ctx->sub_all = s;
    if (ctx->log_fn) {
        char line[200];
        snprintf(line, sizeof line, "subscription %s to %s%s", id, s->stream ? s->stream : "$all",
                 s->filter ? " (filtered)" : "");
        ctx->log_fn(ctx->log_ctx, FACTUM_LOG_DEBUG, line);
    }
    sub_pump(s);
    return s;
fail:
    sub_destroy(s);
    return NULL;
}
