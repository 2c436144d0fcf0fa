/*
 * streams.c - event_store.client.streams.Streams: Read (a stream or $all,
 * both directions, counts, filters), Append (client streaming), BatchAppend
 * (bidirectional, many batches keyed by correlation id), Delete and
 * Tombstone, with KurrentDB's semantics and error encodings (in-band for
 * Append and BatchAppend, trailers otherwise). docs/protocol.md lists the
 * differences.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/pool.h"
#include "google/rpc/status.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/events.h"
#include "rpc/rpc.h"
#include "rpc/streams_int.h"
#include "rpc/subscribe.h"
#include "rpc/vstream.h"
#include "rpc/wire.h"
#include "store/snapshot.h"

typedef EventStore__Client__Streams__ReadReq ReadReq;
typedef EventStore__Client__Streams__ReadReq__Options ReadOpts;
typedef EventStore__Client__Streams__ReadResp ReadResp;
typedef EventStore__Client__Streams__ReadResp__ReadEvent ReadEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent RecordedEvent;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry MetaEntry;

#define READ_STEP 256       /* events sent per step before yielding to the loop (RPC-2) */
#define READ_SCAN_STEP 4096 /* events examined per step (a filtered $all read may send none of them) */
#define READ_STEP_BYTES (64u << 10) /* event bytes sent per step: many large reads share the loop fairly */

/* ---- Read ----------------------------------------------------------- */

typedef struct read_call {
    rpc_ctx *ctx;
    net_call *c;
    int have_request, is_all, backward, uuid_string, compat, done, resolve_links;
    int raw; /* events as stored: header factum-raw (rpc_wants_raw), or a $raw/ read */
    int exhausted; /* nothing more to read in this direction */
    char *stream;
    size_t stream_len;
    uint64_t next; /* version or position to read next (FACTUM_END: at the end) */
    uint64_t remaining;
    factum_filter *filter;
    uint64_t last_version; /* for last_stream_position */
    int posted;            /* a continuation is queued */
    size_t step_bytes;     /* event bytes sent in this step */
    struct rpc_sub *sub;   /* a subscription read (subscribe.c) */
    rpc_vstream *vs;       /* a virtual stream's read (vstream.h) */
    factum_event page[64];
    size_t page_n, page_i;
    uint64_t page_epoch; /* the store's epoch when the page was read (RPC-8) */
    rpc_upjob *upj; /* the page's events upcast off the loop (upjob.c), or NULL */
    /* The page's store read on the reader pool (rdjob.c): the read's
     * arguments and its answer, written by the worker while rd_running. */
    auth_job rj;
    int rd_running, closed; /* closed: the call ended while rd_running (RDJ-4) */
    size_t rd_want, rd_scan, rd_n;
    uint64_t rd_next;
    int rd_rc;
    uint64_t rd_epoch;
    factum_reader *rdr; /* the page's sealed events open here (rpc_reader_enter; reset per page) */
} read_call;

static void read_free(read_call *r)
{
    if (r->rd_running) { /* the job is reading into r: its done frees r (RDJ-4) */
        r->closed = 1;
        return;
    }
    rpc_upjob_release(r->upj);
    free(r->stream);
    factum_filter_free(r->filter);
    rpc_vstream_free(r->vs);
    factum_reader_free(r->rdr);
    free(r);
}

static int read_start(net_call *c, void *svc)
{
    read_call *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->ctx = svc;
    r->c = c;
    net_call_set_state(c, r);
    return 0;
}

static void read_pump(read_call *r);

static void read_continue(void *arg)
{
    net_call *c = arg;
    read_call *r = net_call_state(c);
    if (r && !net_call_done(c)) {
        r->posted = 0;
        read_pump(r);
    }
    net_call_unref(c);
}

/* The event of the page to send for ev: its link's target (*target, 1),
 * ev itself (0), or a link gone (-1); < -1 a store error. */
static int read_target(read_call *r, const factum_event *ev, factum_event *target)
{
    factum_reader *prev = rpc_reader_enter(r->ctx, &r->rdr, 0); /* the target lives with the page */
    int res = !r->resolve_links ? 0
              : r->vs           ? rpc_vstream_resolve(r->ctx->store, r->vs, ev, target)
                                : rpc_resolve(r->ctx, ev, target);
    rpc_reader_leave(prev);
    if (res > 0 && !rpc_may_read_link_target(r->ctx, r->c, target)) res = -1; /* as a link gone */
    return res;
}

static void read_ready(void *owner, rpc_upjob *j)
{
    read_call *r = owner;
    (void)j;
    if (!net_call_done(r->c)) read_pump(r);
}

/* The rest of the page needs a script upcaster (rpc_upcast said 1): hand
 * the events of it that do to a job (UPJ-1). 3 (wait for read_ready), or
 * -1 (the call was failed). */
static int read_hand_off(read_call *r)
{
    factum_event cand[64];
    const factum_event *ptr[64];
    size_t k = 0;
    for (size_t i = r->page_i; i < r->page_n; i++) {
        factum_event target;
        int res = read_target(r, &r->page[i], &target);
        if (res < -1) break; /* read_flush_page reports it when it gets there */
        cand[k] = res > 0 ? target : r->page[i];
        if (rpc_upcast_needs_job(r->ctx, &cand[k], r->raw)) {
            ptr[k] = &cand[k];
            k++;
        }
    }
    rpc_upjob_release(r->upj);
    r->upj = NULL;
    if (!k) { /* cannot be: the event that asked is one of them */
        rpc_fail(r->c, GRPC_INTERNAL, "upcasting: nothing to hand off", NULL, NULL);
        return -1;
    }
    int rc = rpc_upjob_start(r->ctx, ptr, k, r, read_ready, &r->upj);
    if (rc) {
        rpc_upjob_refused(r->c, rc);
        return -1;
    }
    return 3;
}

/* RPC-8: a scavenge swapped a segment in since the page was read: read
 * what is left of it again (without what the scavenge removed). 0, or a
 * store error. */
static int read_refresh(read_call *r)
{
    uint64_t e = factum_store_epoch(r->ctx->store);
    size_t k = r->page_i;
    factum_reader *prev = rpc_reader_enter(r->ctx, &r->rdr, 0);
    for (size_t i = r->page_i; i < r->page_n; i++) {
        factum_event f = r->page[i];
        int rc = rpc_refresh_event(r->ctx, &f);
        if (rc == FACTUM_ENOTFOUND) continue;
        if (rc) {
            rpc_reader_leave(prev);
            return rc;
        }
        r->page[k++] = f;
    }
    rpc_reader_leave(prev);
    r->page_n = k;
    r->page_epoch = e;
    return 0;
}

/* Send the events of the current page; 1 if the page is done, 0 if the
 * call's queue is full (on_writable resumes), 2 to yield, 3 while its
 * events are upcast off the loop (read_ready resumes), < 0 if the call is
 * gone. */
static int read_flush_page(read_call *r)
{
    rpc_event_msg m;
    rpc_event_init(&m);
    if (r->page_i < r->page_n && factum_store_epoch(r->ctx->store) != r->page_epoch) {
        int rc = read_refresh(r);
        if (rc) {
            rpc_fail_store(r->c, rc, NULL, 0, -1);
            return -1;
        }
    }
    while (r->page_i < r->page_n) {
        if (r->step_bytes >= READ_STEP_BYTES) return 2; /* the step's share: yield (RPC-2) */
        const factum_event *ev = &r->page[r->page_i];
        factum_event target;
        int res = read_target(r, ev, &target);
        if (res < -1) {
            rpc_fail_store(r->c, res, NULL, 0, -1);
            return -1;
        }
        factum_event up;
        int u = res <= 0 ? rpc_upcast(r->ctx, r->c, ev, &up, r->raw, r->upj)
                         : rpc_upcast(r->ctx, r->c, &target, &target, r->raw, r->upj);
        if (u == 1) return read_hand_off(r);
        if (u) return -1;
        if (res) rpc_event_fill_resolved(&m, res > 0 ? &target : NULL, ev, r->uuid_string);
        else rpc_event_fill(&m, &up, r->uuid_string);
        int rc = rpc_send_event(r->ctx, r->c, &m);
        if (rc == -EAGAIN) return 0;
        if (rc) return -1;
        r->ctx->st.read_events++;
        r->ctx->st.read_bytes += ev->data_len + ev->metadata_len;
        r->step_bytes += ev->data_len + ev->metadata_len + ev->stream_len + 64;
        r->page_i++;
    }
    r->page_i = r->page_n = 0;
    rpc_upjob_release(r->upj); /* the page is sent */
    r->upj = NULL;
    return 1;
}

static void read_finish(read_call *r)
{
    if (r->compat && !r->is_all) {
        ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
        resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_LAST_STREAM_POSITION;
        resp.last_stream_position = r->last_version;
        if (rpc_send(r->ctx, r->c, &resp.base) == -EAGAIN) {
            net_call_want_writable(r->c);
            return; /* on_writable comes back here */
        }
    }
    r->done = 1;
    net_call_finish(r->c, GRPC_OK, NULL, NULL, 0);
}

/* The store read of the page read_pump asks for (r->rd_want events,
 * examining at most r->rd_scan), with FACTUM_NOWAIT or not; its answer in
 * rd_rc, rd_n, rd_next. On the loop, or on a reader thread while
 * rd_running (then nothing else touches r: RDJ-2). */
static void read_fetch(read_call *r, int flags)
{
    int dir = (r->backward ? FACTUM_BACKWARD : FACTUM_FORWARD) | flags;
    r->rd_n = 0;
    r->rd_next = 0;
    r->rd_epoch = factum_store_epoch(r->ctx->store); /* before the read (RPC-8) */
    /* The page before is sent: its opened events go (crypto-shredding). */
    factum_reader *prev = rpc_reader_enter(r->ctx, &r->rdr, 1);
    if (r->is_all)
        r->rd_rc = factum_read_all(r->ctx->store, r->next, dir, r->filter, r->rd_scan, r->page, r->rd_want, &r->rd_n,
                                   &r->rd_next);
    else
        r->rd_rc = factum_read_stream(r->ctx->store, r->stream, r->next, dir, r->page, r->rd_want, &r->rd_n,
                                      &r->rd_next);
    rpc_reader_leave(prev);
}

/* Take the answer of read_fetch: the page to send, or the end. 0 go on,
 * -1 the call was ended. */
static int read_took(read_call *r, int *sent, size_t *examined)
{
    int rc = r->rd_rc;
    size_t n = r->rd_n;
    uint64_t next = r->rd_next;
    if (rc == FACTUM_ENOTFOUND && !r->is_all) {
        /* Deleted while we were reading: the stream ends here. */
        read_finish(r);
        return -1;
    }
    if (rc) {
        rpc_fail_store(r->c, rc, r->stream, 0, -1);
        return -1;
    }
    r->page_n = n;
    r->page_i = 0;
    r->page_epoch = r->rd_epoch;
    r->remaining -= n;
    *sent += (int)n + 1;
    if (r->is_all) {
        /* at most what was asked for (a backward read from the end
         * starts below r->next) */
        uint64_t d = r->backward ? r->next - next : next - r->next;
        *examined += d < READ_SCAN_STEP - *examined ? (size_t)d : READ_SCAN_STEP - *examined;
        /* forward: next is the first unexamined position, past the last
         * committed one at the end; backward: 0 at the start */
        factum_stats st;
        factum_store_get_stats(r->ctx->store, &st);
        if (r->backward ? next == 0 : next > st.last_position) r->exhausted = 1;
    } else if (next == FACTUM_END) {
        r->exhausted = 1;
    }
    r->next = next;
    return 0;
}

static void read_job_work(auth_job *j)
{
    read_call *r = (read_call *)((char *)j - offsetof(read_call, rj));
    read_fetch(r, 0);
}

/* On the loop: the pool read the page (RDJ-2); send it and go on. */
static void read_job_done(auth_job *j)
{
    read_call *r = (read_call *)((char *)j - offsetof(read_call, rj));
    r->rd_running = 0;
    if (r->closed) { /* RDJ-4 */
        read_free(r);
        return;
    }
    if (r->ctx->rd_stopped) return; /* RDJ-4: the call is being closed; the store may be */
    if (net_call_done(r->c)) return;
    if (j->cancelled) {
        rpc_fail(r->c, GRPC_UNAVAILABLE, "the server is stopping", NULL, NULL);
        return;
    }
    int sent = 0;
    size_t examined = 0;
    if (read_took(r, &sent, &examined) == 0) read_pump(r);
}

static void read_pump(read_call *r)
{
    if (rpc_upjob_running(r->upj) || r->rd_running) return; /* read_ready or read_job_done resumes */
    int sent = 0;
    size_t examined = 0; /* a step ends after READ_STEP events sent or READ_SCAN_STEP examined */
    r->step_bytes = 0;   /* ... or READ_STEP_BYTES sent */
    while (!net_call_done(r->c)) {
        int flushed = 1;
        if (r->page_i < r->page_n) {
            flushed = read_flush_page(r);
            if (flushed <= 0 || flushed == 3) {
                if (flushed == 0) net_call_want_writable(r->c);
                return;
            }
        }
        if (flushed == 1 && (r->remaining == 0 || r->exhausted)) {
            read_finish(r);
            return;
        }
        if (flushed == 2 || sent >= READ_STEP || examined >= READ_SCAN_STEP) {
            /* Yield to the loop: other connections go first (RPC-2). */
            if (!r->posted) {
                r->posted = 1;
                net_call_ref(r->c);
                if (net_defer(r->ctx->net, read_continue, r->c)) {
                    r->posted = 0;
                    net_call_unref(r->c);
                    net_call_finish(r->c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, 0);
                }
            }
            return;
        }
        size_t want = r->remaining < 64 ? (size_t)r->remaining : 64, n = 0;
        uint64_t next;
        if (r->vs) {
            int end = 0;
            uint64_t epoch = factum_store_epoch(r->ctx->store); /* before the read (RPC-8) */
            factum_reader *prev = rpc_reader_enter(r->ctx, &r->rdr, 1); /* the page before is sent */
            int rc = rpc_vstream_read(r->ctx->store, r->vs, r->next, r->backward ? FACTUM_BACKWARD : FACTUM_FORWARD,
                                      READ_SCAN_STEP - examined, r->page, want, &n, &next, &end);
            rpc_reader_leave(prev);
            if (!rc) {
                r->page_n = n;
                r->page_i = 0;
                r->page_epoch = epoch;
                r->remaining -= n;
                sent += (int)n + 1;
                examined += n + 1;
                if (end) r->exhausted = 1;
                r->next = next;
                continue;
            }
            if (rc == FACTUM_ENOTFOUND && !r->vs->is_all) {
                read_finish(r); /* deleted while we were reading: the stream ends here */
                return;
            }
            rpc_fail_store(r->c, rc, r->stream, 0, -1);
            return;
        }
        r->rd_want = want;
        r->rd_scan = READ_SCAN_STEP - examined;
        if (!rpc_read_off_loop(r->ctx)) {
            read_fetch(r, rpc_read_nowait(r->ctx));
            if (r->rd_rc != -EWOULDBLOCK) {
                if (read_took(r, &sent, &examined)) return;
                continue;
            }
        }
        /* Pages not known to be in memory: a reader thread reads this page (RDJ-1). */
        r->rj.work = read_job_work;
        r->rj.done = read_job_done;
        r->rd_running = 1;
        int rc = rpc_rdjob_submit(r->ctx, &r->rj);
        if (rc) {
            r->rd_running = 0;
            rpc_rdjob_refused(r->c, rc);
        }
        return;
    }
}

/* StreamNotFound for r->stream, and the end of the call. */
static void read_not_found(read_call *r)
{
    ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
    EventStore__Client__Streams__ReadResp__StreamNotFound nf = EVENT_STORE__CLIENT__STREAMS__READ_RESP__STREAM_NOT_FOUND__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)r->stream;
    sid.stream_name.len = r->stream_len;
    nf.stream_identifier = &sid;
    resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_STREAM_NOT_FOUND;
    resp.stream_not_found = &nf;
    rpc_send(r->ctx, r->c, &resp.base);
    r->done = 1;
    net_call_finish(r->c, GRPC_OK, NULL, NULL, 0);
}

/* Where a stream read starts: its revision, the end, or the start. */
static uint64_t read_from_revision(const EventStore__Client__Streams__ReadReq__Options__StreamOptions *so)
{
    switch (so->revision_option_case) {
    case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION: return so->revision;
    case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END: return FACTUM_END;
    default: return 0;
    }
}

/* A read of a virtual stream (vstream.h): the name is parsed, read access
 * to the stream it reads is checked, then read_pump pages through it. */
static void read_virtual(read_call *r, const ReadOpts *o)
{
    net_call *c = r->c;
    const EventStore__Client__Streams__ReadReq__Options__StreamOptions *so = o->stream;
    if (o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "The combination of stream read and filter is invalid", NULL, NULL);
        return;
    }
    const ProtobufCBinaryData *sn = &so->stream_identifier->stream_name;
    r->stream_len = sn->len;
    if (!(r->stream = strndup((const char *)sn->data, sn->len)) || strlen(r->stream) != sn->len) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
        return;
    }
    const char *why = NULL;
    int rc = rpc_vstream_open(r->ctx->store, r->stream, r->stream_len, &r->vs, &why);
    if (rc == FACTUM_EINVAL) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
        return;
    }
    if (rc) {
        rpc_fail_store(c, rc, r->stream, 0, -1);
        return;
    }
    /* Access is the stream's: `$load/S` serves S's snapshot on S's right,
     * the snapshot being S's state (docs/app-toolkit.md). */
    if (rpc_authorize_stream(r->ctx, c, r->vs->is_all ? "$all" : r->vs->target, AUTH_READ)) return;
    if (r->vs->raw) r->raw = 1;
    r->next = read_from_revision(so);
    if (!r->backward && r->next == FACTUM_END) r->exhausted = 1;
    if (!r->vs->is_all) {
        /* The stream as of then: missing, deleted, or its last version. */
        factum_event ev;
        size_t n;
        uint64_t nx;
        int end;
        rc = rpc_vstream_read(r->ctx->store, r->vs, FACTUM_END, FACTUM_BACKWARD, 1, &ev, 1, &n, &nx, &end);
        if (rc == FACTUM_ENOTFOUND) {
            read_not_found(r);
            return;
        }
        if (rc) {
            rpc_fail_store(c, rc, r->vs->target, 0, -1);
            return;
        }
        r->last_version = n ? ev.version : 0;
    }
    read_pump(r);
}

static void read_request(read_call *r, const ReadOpts *o)
{
    net_call *c = r->c;
    if (r->ctx->log_fn) {
        char line[160];
        int stream_read = o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM;
        snprintf(line, sizeof line, "read %s %s, %s", stream_read ? "a stream" : "$all",
                 o->read_direction ? "backwards" : "forwards",
                 o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_SUBSCRIPTION
                     ? "subscription"
                     : "count");
        r->ctx->log_fn(r->ctx->log_ctx, FACTUM_LOG_DEBUG, line);
    }
    if (!o->uuid_option) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "uuid_option is required", NULL, NULL);
        return;
    }
    int virtual_read = o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM &&
                       o->stream && o->stream->stream_identifier &&
                       rpc_vstream_is((const char *)o->stream->stream_identifier->stream_name.data,
                                      o->stream->stream_identifier->stream_name.len);
    if (o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_SUBSCRIPTION) {
        if (virtual_read) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT,
                     "virtual streams ($asof/, $load/, $raw/) cannot be subscribed to; read them", NULL, NULL);
            return;
        }
        r->sub = rpc_sub_start(r->ctx, c, o);
        return;
    }
    r->resolve_links = o->resolve_links;
    r->raw = rpc_wants_raw(c);
    r->uuid_string = o->uuid_option->content_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    r->backward = o->read_direction == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards;
    r->compat = o->control_option && o->control_option->compatibility >= 1;
    r->remaining = o->count_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_COUNT
                       ? o->count
                       : UINT64_MAX;
    r->ctx->st.reads++;
    if (virtual_read) {
        read_virtual(r, o);
        return;
    }
    if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM && o->stream) {
        const EventStore__Client__Streams__ReadReq__Options__StreamOptions *so = o->stream;
        if (o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "The combination of stream read and filter is invalid", NULL, NULL);
            return;
        }
        if (!so->stream_identifier || factum_check_stream_name((const char *)so->stream_identifier->stream_name.data,
                                                                so->stream_identifier->stream_name.len)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name", NULL, NULL);
            return;
        }
        r->stream_len = so->stream_identifier->stream_name.len;
        if (!(r->stream = strndup((const char *)so->stream_identifier->stream_name.data, r->stream_len))) {
            rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            return;
        }
        if (rpc_authorize_stream(r->ctx, c, r->stream, AUTH_READ)) return;
        r->next = read_from_revision(so);
        factum_stream_info info;
        int rc = factum_stream_get_info(r->ctx->store, r->stream, &info);
        if (rc) {
            rpc_fail_store(c, rc, r->stream, 0, -1);
            return;
        }
        if (info.status == FACTUM_STREAM_TOMBSTONED) {
            rpc_fail_store(c, FACTUM_EDELETED, r->stream, 0, -1);
            return;
        }
        if (info.status != FACTUM_STREAM_LIVE) {
            ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
            EventStore__Client__Streams__ReadResp__StreamNotFound nf =
                EVENT_STORE__CLIENT__STREAMS__READ_RESP__STREAM_NOT_FOUND__INIT;
            EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
            sid.stream_name.data = (uint8_t *)r->stream;
            sid.stream_name.len = r->stream_len;
            nf.stream_identifier = &sid;
            resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_STREAM_NOT_FOUND;
            resp.stream_not_found = &nf;
            rpc_send(r->ctx, c, &resp.base);
            r->done = 1;
            net_call_finish(c, GRPC_OK, NULL, NULL, 0);
            return;
        }
        r->last_version = (uint64_t)info.last_version;
        /* Reading forwards from the end gives nothing; backwards from the
         * start gives the first event (inclusive, as everywhere). */
        if (!r->backward && r->next == FACTUM_END) r->exhausted = 1;
        if (r->compat && !r->backward && r->next != FACTUM_END) {
            /* Tell where the stream begins if the read starts before it. */
            uint64_t first = 0;
            factum_event ev;
            size_t n;
            uint64_t nx;
            if (factum_read_stream(r->ctx->store, r->stream, 0, FACTUM_FORWARD, &ev, 1, &n, &nx) == 0 && n)
                first = ev.version;
            if (r->next < first) {
                ReadResp resp = EVENT_STORE__CLIENT__STREAMS__READ_RESP__INIT;
                resp.content_case = EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_FIRST_STREAM_POSITION;
                resp.first_stream_position = first;
                rpc_send(r->ctx, c, &resp.base);
            }
        }
    } else if (o->stream_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL && o->all) {
        r->is_all = 1;
        if (rpc_authorize_stream(r->ctx, c, "$all", AUTH_READ)) return;
        switch (o->all->all_option_case) {
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION:
            if (!o->all->position) {
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "missing position", NULL, NULL);
                return;
            }
            r->next = o->all->position->commit_position;
            /* Backwards from a position: the events before it (KurrentDB's
             * positions point at the start of an event). */
            if (r->backward) r->next = r->next ? r->next - 1 : 0;
            if (!r->backward && r->next == 0) r->next = 1;
            break;
        case EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END:
            r->next = FACTUM_END;
            if (!r->backward) r->exhausted = 1;
            break;
        default:
            r->next = r->backward ? 0 : 1;
        }
        if (r->backward && r->next == 0) r->exhausted = 1;
        if (o->filter_option_case == EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER && o->filter &&
            rpc_read_filter(c, o->filter, &r->filter))
            return;
    } else {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "read options name neither a stream nor $all", NULL, NULL);
        return;
    }
    read_pump(r);
}

static void read_message(net_call *c, const uint8_t *msg, size_t len)
{
    read_call *r = net_call_state(c);
    if (r->have_request) return; /* one request per read */
    r->have_request = 1;
    pb_alloc pa;
    ReadReq *req = rpc_unpack(c, &event_store__client__streams__read_req__descriptor, msg, len, &pa, "ReadReq");
    if (!req) return;
    if (!req->options) {
        rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "malformed ReadReq", NULL, NULL);
        return;
    }
    read_request(r, req->options);
    rpc_unpack_free(req, &pa);
}

static void read_half_close(net_call *c)
{
    read_call *r = net_call_state(c);
    if (!r->have_request) rpc_fail(c, GRPC_INVALID_ARGUMENT, "no ReadReq was sent", NULL, NULL);
}

static void read_writable(net_call *c)
{
    read_call *r = net_call_state(c);
    if (r->sub) rpc_sub_writable(r->sub);
    else if (!r->done && r->have_request) read_pump(r);
}

static void read_close(net_call *c)
{
    read_call *r = net_call_state(c);
    net_call_set_state(c, NULL);
    if (r) {
        rpc_sub_free(r->sub);
        read_free(r);
    }
}

/* ---- Append ---------------------------------------------------------- */

typedef struct append_call {
    rpc_ctx *ctx;
    net_call *c;
    int have_options, pending, closed;
    char *stream;
    int64_t expected;
    rpc_events ev;
    int rc;
    factum_append_result res;
    rpc_submit sub;
} append_call;

static void append_call_free(append_call *a)
{
    rpc_events_free(&a->ev);
    free(a->stream);
    free(a);
}

static int append_start(net_call *c, void *svc)
{
    append_call *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->ctx = svc;
    a->c = c;
    net_call_set_state(c, a);
    return 0;
}

static void append_message(net_call *c, const uint8_t *msg, size_t len)
{
    append_call *a = net_call_state(c);
    pb_alloc pa;
    rpc_wire_append w; /* the canonical form without protobuf-c's heap (WIRE-1) */
    EventStore__Client__Streams__AppendReq *req = &w.req;
    int slow = rpc_wire_append_req(msg, len, &w);
    if (slow && !(req = rpc_unpack(c, &event_store__client__streams__append_req__descriptor, msg, len, &pa, "AppendReq")))
        return;
    if (!a->have_options) {
        const EventStore__Client__Streams__AppendReq__Options *o = req->options;
        if (req->content_case != EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS || !o ||
            !o->stream_identifier) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "the first AppendReq must carry the options", NULL, NULL);
            goto out;
        }
        int which = -1;
        switch (o->expected_stream_revision_case) {
        case EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION: which = 0; break;
        case EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM: which = 1; break;
        case EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_ANY: which = 2; break;
        case EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_STREAM_EXISTS: which = 3; break;
        default: which = 2;
        }
        const ProtobufCBinaryData *sn = &o->stream_identifier->stream_name;
        if (factum_check_stream_name((const char *)sn->data, sn->len) ||
            rpc_expected_of_options(which, o->revision, &a->expected)) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid stream name or expected revision", NULL, NULL);
            goto out;
        }
        if (!(a->stream = strndup((const char *)sn->data, sn->len))) {
            rpc_fail(c, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL);
            goto out;
        }
        /* before any event is taken: a refused writer makes factumd hold nothing */
        if (rpc_authorize_stream(a->ctx, c, a->stream, AUTH_WRITE)) goto out;
        a->have_options = 1;
        goto out;
    }
    const EventStore__Client__Streams__AppendReq__ProposedMessage *pm = req->proposed_message;
    if (req->content_case != EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_PROPOSED_MESSAGE || !pm) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "expected a proposed message", NULL, NULL);
        goto out;
    }
    char *keys[16], *values[16];
    size_t nm = pm->n_metadata < 16 ? pm->n_metadata : 16;
    for (size_t i = 0; i < nm; i++) {
        keys[i] = pm->metadata[i]->key;
        values[i] = pm->metadata[i]->value;
    }
    const char *why = NULL;
    if (rpc_vstream_check_append(a->stream, strlen(a->stream), pm->custom_metadata.data, pm->custom_metadata.len, &why)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
        goto out;
    }
    rpc_take_event(a->ctx, c, pm->id, nm, keys, values, pm->data, pm->custom_metadata, &a->ev); /* fails c on error */
out:
    if (slow) rpc_unpack_free(req, &pa);
}

static void append_done_loop(void *arg)
{
    append_call *a = arg;
    rpc_store_done(a->ctx);
    if (a->closed) {
        net_call *c = a->c;
        append_call_free(a); /* releases its charges on c: before the last reference goes */
        net_call_unref(c);
        return;
    }
    /* a->pending stays set until the end: finishing the call can close it
     * (append_close) right here, and a must outlive that. */
    net_call *c = a->c;
    rpc_ctx *ctx = a->ctx;
    EventStore__Client__Streams__AppendResp resp = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__INIT;
    EventStore__Client__Streams__AppendResp__Success ok = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__INIT;
    EventStore__Client__Streams__AppendResp__Position pos = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__POSITION__INIT;
    EventStore__Client__Streams__AppendResp__WrongExpectedVersion w =
        EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__INIT;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (a->rc == 0) {
        if (!a->res.idempotent) rpc_audit_stream_write(ctx, c, a->stream, a->ev.ev, a->ev.n);
        ctx->st.appends++;
        ctx->st.append_events += a->ev.n;
        ctx->st.append_bytes += a->ev.bytes;
        resp.result_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_SUCCESS;
        resp.success = &ok;
        if (a->ev.n == 0 && (int64_t)a->res.last_version < 0) {
            ok.current_revision_option_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_NO_STREAM;
            ok.no_stream = &empty;
        } else {
            ok.current_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__CURRENT_REVISION_OPTION_CURRENT_REVISION;
            ok.current_revision = a->res.last_version;
        }
        if (a->res.last_position) {
            pos.commit_position = pos.prepare_position = a->res.last_position;
            ok.position_option_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__POSITION_OPTION_POSITION;
            ok.position = &pos;
        } else {
            ok.position_option_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__SUCCESS__POSITION_OPTION_NO_POSITION;
            ok.no_position = &empty;
        }
    } else if (a->rc == FACTUM_EWRONGVERSION || a->rc == FACTUM_EIDEMPOTENCY) {
        ctx->st.append_errors++;
        int64_t actual = a->rc == FACTUM_EWRONGVERSION ? a->res.actual_version : FACTUM_NO_STREAM;
        if (a->rc == FACTUM_EIDEMPOTENCY) {
            factum_stream_info info;
            if (factum_stream_get_info(ctx->store, a->stream, &info) == 0) actual = info.last_version;
        }
        resp.result_case = EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__RESULT_WRONG_EXPECTED_VERSION;
        resp.wrong_expected_version = &w;
        /* Both the legacy (20.6.0) and the current fields, as KurrentDB does. */
        if (actual < 0) {
            w.current_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_20_6_0_NO_STREAM_20_6_0;
            w.no_stream_20_6_0 = &empty;
            w.current_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_CURRENT_NO_STREAM;
            w.current_no_stream = &empty;
        } else {
            w.current_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_20_6_0_CURRENT_REVISION_20_6_0;
            w.current_revision_20_6_0 = (uint64_t)actual;
            w.current_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__CURRENT_REVISION_OPTION_CURRENT_REVISION;
            w.current_revision = (uint64_t)actual;
        }
        if (a->expected >= 0) {
            w.expected_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_EXPECTED_REVISION_20_6_0;
            w.expected_revision_20_6_0 = (uint64_t)a->expected;
            w.expected_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_REVISION;
            w.expected_revision = (uint64_t)a->expected;
        } else if (a->expected == FACTUM_NO_STREAM) {
            w.expected_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_EXPECTED_REVISION_20_6_0;
            w.expected_revision_20_6_0 = UINT64_MAX;
            w.expected_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_NO_STREAM;
            w.expected_no_stream = &empty;
        } else if (a->expected == FACTUM_STREAM_EXISTS) {
            w.expected_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_STREAM_EXISTS_20_6_0;
            w.stream_exists_20_6_0 = &empty;
            w.expected_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_STREAM_EXISTS;
            w.expected_stream_exists = &empty;
        } else {
            w.expected_revision_option_20_6_0_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_20_6_0_ANY_20_6_0;
            w.any_20_6_0 = &empty;
            w.expected_revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__APPEND_RESP__WRONG_EXPECTED_VERSION__EXPECTED_REVISION_OPTION_EXPECTED_ANY;
            w.expected_any = &empty;
        }
    } else {
        ctx->st.append_errors++;
        rpc_fail_store(c, a->rc, a->stream, a->expected, -1);
        goto done;
    }
    if (rpc_send(ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
    else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
done:
    rpc_events_free(&a->ev);
    a->pending = 0;
    if (a->closed) append_call_free(a);
    net_call_unref(c);
}

static void append_done_store(void *ctx, int rc, const factum_append_result *results, size_t n, size_t failed)
{
    (void)failed;
    append_call *a = ctx;
    a->rc = rc;
    if (n) a->res = results[0];
    if (rpc_to_loop(a->ctx, append_done_loop, a)) {
        /* Cannot reach the loop (out of memory): nothing safe to do but
         * leave the call to time out; the append itself is durable. */
    }
}

static int append_submit(rpc_submit *sb)
{
    append_call *a = (append_call *)((char *)sb - offsetof(append_call, sub));
    factum_append_req q = {a->stream, a->expected, a->ev.ev, a->ev.n};
    return rpc_append_async(a->ctx, &q, 1, append_done_store, a);
}

static void append_submit_failed(rpc_submit *sb, int rc)
{
    append_call *a = (append_call *)((char *)sb - offsetof(append_call, sub));
    net_call *c = a->c;
    a->pending = 0;
    if (a->closed) {
        append_call_free(a);
    } else {
        if (rc == FACTUM_EWRONGVERSION) rc = FACTUM_EINVAL;
        char why[600];
        const char *m = rc == FACTUM_EINVAL || rc == FACTUM_EBADJSON
                            ? rpc_upcasters_refusal(a->stream, &a->ev, why, sizeof why)
                            : NULL;
        if (m) rpc_fail(c, GRPC_INVALID_ARGUMENT, m, NULL, NULL);
        else rpc_fail_store(c, rc, a->stream, a->expected, -1);
    }
    net_call_unref(c);
}

static void append_half_close(net_call *c)
{
    append_call *a = net_call_state(c);
    if (!a->have_options) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "no options were sent", NULL, NULL);
        return;
    }
    /* the snapshot convention (factum.h "Snapshots"): $streamVersion checked */
    char why[512];
    if (snapshot_check_append(a->ctx->store, a->stream, a->ev.ev, a->ev.n, why, sizeof why)) {
        rpc_fail(c, GRPC_INVALID_ARGUMENT, why, NULL, NULL);
        return;
    }
    net_call_ref(c);
    a->pending = 1;
    a->sub = (rpc_submit){NULL, c, append_submit, append_submit_failed};
    rpc_submit_start(a->ctx, &a->sub);
}

static void append_close(net_call *c)
{
    append_call *a = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!a) return;
    if (a->pending) a->closed = 1; /* freed when the store answers */
    else append_call_free(a);
}

/* ---- Delete and Tombstone -------------------------------------------- */

typedef struct delete_call {
    rpc_ctx *ctx;
    net_call *c;
    int tombstone, pending, closed, have_request;
    char *stream;
    int64_t expected;
    int rc;
    factum_append_result res;
    rpc_submit sub;
} delete_call;

static int delete_start_common(net_call *c, void *svc, int tombstone)
{
    delete_call *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->ctx = svc;
    d->c = c;
    d->tombstone = tombstone;
    net_call_set_state(c, d);
    return 0;
}

static int delete_start(net_call *c, void *svc)
{
    return delete_start_common(c, svc, 0);
}

static int tombstone_start(net_call *c, void *svc)
{
    return delete_start_common(c, svc, 1);
}

static void delete_free(delete_call *d)
{
    free(d->stream);
    free(d);
}

static void delete_done_loop(void *arg)
{
    delete_call *d = arg;
    rpc_store_done(d->ctx);
    d->pending = 0;
    net_call *c = d->c;
    if (d->closed) {
        delete_free(d);
        net_call_unref(c);
        return;
    }
    if (d->rc) {
        int64_t actual = d->res.actual_version;
        if (d->rc == FACTUM_EWRONGVERSION && actual == FACTUM_NO_STREAM) actual = -1;
        rpc_fail_store(c, d->rc, d->stream, d->expected, actual);
    } else {
        if (d->tombstone) d->ctx->st.tombstones++;
        else d->ctx->st.deletes++;
        rpc_audit(d->ctx, c, d->tombstone ? "stream-tombstoned" : "stream-deleted", d->stream, NULL);
        /* DeleteResp and TombstoneResp have the same shape. */
        EventStore__Client__Streams__DeleteResp resp = EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__INIT;
        EventStore__Client__Streams__DeleteResp__Position pos = EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION__INIT;
        pos.commit_position = pos.prepare_position = d->res.last_position;
        resp.position_option_case = EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION_OPTION_POSITION;
        resp.position = &pos;
        if (rpc_send(d->ctx, c, &resp.base) == 0) net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        else net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
    }
    net_call_unref(c);
}

static void delete_done_store(void *ctx, int rc, const factum_append_result *results, size_t n, size_t failed)
{
    (void)failed;
    delete_call *d = ctx;
    d->rc = rc;
    if (n) d->res = results[0];
    net_post(d->ctx->net, delete_done_loop, d);
}

static int delete_submit(rpc_submit *sb)
{
    delete_call *d = (delete_call *)((char *)sb - offsetof(delete_call, sub));
    return d->tombstone ? factum_tombstone_stream_async(d->ctx->store, d->stream, d->expected, delete_done_store, d)
                        : factum_delete_stream_async(d->ctx->store, d->stream, d->expected, delete_done_store, d);
}

static void delete_submit_failed(rpc_submit *sb, int rc)
{
    delete_call *d = (delete_call *)((char *)sb - offsetof(delete_call, sub));
    net_call *c = d->c;
    d->pending = 0;
    if (d->closed) delete_free(d);
    else rpc_fail_store(c, rc, d->stream, d->expected, -1);
    net_call_unref(c);
}

static void delete_message(net_call *c, const uint8_t *msg, size_t len)
{
    delete_call *d = net_call_state(c);
    if (d->have_request) return;
    d->have_request = 1;
    /* DeleteReq and TombstoneReq have the same fields and numbers. */
    pb_alloc pa;
    const char *what = d->tombstone ? "TombstoneReq" : "DeleteReq";
    EventStore__Client__Streams__DeleteReq *req =
        rpc_unpack(c, &event_store__client__streams__delete_req__descriptor, msg, len, &pa, what);
    if (!req) return;
    if (!req->options || !req->options->stream_identifier) {
        rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, d->tombstone ? "malformed TombstoneReq" : "malformed DeleteReq", NULL, NULL);
        return;
    }
    const EventStore__Client__Streams__DeleteReq__Options *o = req->options;
    int which;
    switch (o->expected_stream_revision_case) {
    case EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION: which = 0; break;
    case EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM: which = 1; break;
    case EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_STREAM_EXISTS: which = 3; break;
    default: which = 2;
    }
    const ProtobufCBinaryData *sn = &o->stream_identifier->stream_name;
    int rc = factum_check_stream_name((const char *)sn->data, sn->len);
    if (!rc && rpc_vstream_is((const char *)sn->data, sn->len)) {
        rpc_unpack_free(req, &pa);
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "virtual streams ($asof/, $load/, $raw/) are read-only", NULL, NULL);
        return;
    }
    if (!rc) rc = rpc_expected_of_options(which, o->revision, &d->expected);
    if (!rc && !(d->stream = strndup((const char *)sn->data, sn->len))) rc = -ENOMEM;
    rpc_unpack_free(req, &pa);
    if (rc) {
        rpc_fail(c, rpc_status_of(rc), "invalid stream name or expected revision", NULL, NULL);
        return;
    }
    if (rpc_authorize_stream(d->ctx, c, d->stream, AUTH_DELETE)) return;
    net_call_ref(c);
    d->pending = 1;
    d->sub = (rpc_submit){NULL, c, delete_submit, delete_submit_failed};
    rpc_submit_start(d->ctx, &d->sub);
}

static void delete_close(net_call *c)
{
    delete_call *d = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!d) return;
    if (d->pending) d->closed = 1;
    else delete_free(d);
}

/* ---- the table ------------------------------------------------------- */

const net_method rpc_streams_methods[] = {
    {"/event_store.client.streams.Streams/Read", read_start, read_message, read_half_close, read_writable, read_close,
     NULL},
    {"/event_store.client.streams.Streams/Append", append_start, append_message, append_half_close, NULL, append_close,
     NULL},
    {"/event_store.client.streams.Streams/Delete", delete_start, delete_message, NULL, NULL, delete_close, NULL},
    {"/event_store.client.streams.Streams/Tombstone", tombstone_start, delete_message, NULL, NULL, delete_close,
     NULL},
    {"/event_store.client.streams.Streams/BatchAppend", rpc_batch_start, rpc_batch_message, rpc_batch_half_close,
     rpc_batch_writable, rpc_batch_close, NULL},
};
const size_t rpc_streams_n = sizeof rpc_streams_methods / sizeof *rpc_streams_methods;


int rpc_spin_hint(void *ctx)
{
    /* A few appends waiting (a lone or a few sequential clients): their
     * answers come within one fdatasync, worth polling for. With many, the
     * loop has other work and the clients need the CPU more. */
    rpc_ctx *r = ctx;
    uint64_t n = r->inflight;
    /* After the answers, the net layer polls for a sequential client's
     * next call (NET-11, --poll-after-answer-us). */
    return n > 0 && n <= 4;
}
