/*
 * events.h - events between the protocol's messages and the store
 * (events.c), shared by every service that carries events: streams.c,
 * batch.c and v2.c take them from requests; streams.c, subscribe.c and the
 * consumer groups (persistent*.c) put them into ReadResp messages.
 */
#ifndef FACTUM_RPC_EVENTS_H
#define FACTUM_RPC_EVENTS_H

#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "rpc/rpc.h"

/* ---- events in (appends) ---------------------------------------------- */

/* Events copied out of request messages (their bytes must outlive the
 * messages, until the store has written them). What they hold is charged
 * to the call that sent them (NET-5) and released by rpc_events_free,
 * which must run while that call is still referenced. */
typedef struct rpc_events {
    factum_event_data *ev;
    char **store;
    size_t n, cap;
    size_t bytes;
    net_call *c;
    size_t mem; /* bytes charged to c */
} rpc_events;

void rpc_events_free(rpc_events *e);
/* Take one proposed message (type and content-type from its metadata map).
 * On an error the call is finished and -1 returned. */
int rpc_take_event(rpc_ctx *ctx, net_call *c, const EventStore__Client__UUID *id, size_t n_meta, char *const *keys,
                   char *const *values, ProtobufCBinaryData data, ProtobufCBinaryData meta, rpc_events *e);
/* which: 0 revision, 1 no_stream, 2 any, 3 stream_exists. */
int rpc_expected_of_options(int which, uint64_t revision, int64_t *out);

/* ---- events out (reads, subscriptions, consumer groups) ---------------- */

/* One RecordedEvent with all its parts in one place. */
typedef struct rpc_recorded {
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent rec;
    EventStore__Client__UUID uuid;
    EventStore__Client__UUID__Structured su;
    EventStore__Client__StreamIdentifier sid;
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry me[3];
    EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent__MetadataEntry *mep[3];
    char created[24];
    char idtext[37];
} rpc_recorded;

/* A ReadResp carrying one event (and the link that led to it). */
typedef struct rpc_event_msg {
    EventStore__Client__Streams__ReadResp resp;
    EventStore__Client__Streams__ReadResp__ReadEvent re;
    rpc_recorded ev, link;
} rpc_event_msg;

void rpc_event_init(rpc_event_msg *m);
/* Send m (a ReadResp carrying m->re) on c, packed by hand (wire.h, WIRE-4:
 * the bytes protobuf-c would write). As rpc_send: 0, -EAGAIN, -errno. */
int rpc_send_event(rpc_ctx *ctx, net_call *c, const rpc_event_msg *m);
/* The same bytes into memory of the caller's: rpc_event_packed_size bytes
 * at out (rpc_event_pack returns how many it wrote: as many). The shared
 * tail (tail.c) packs an event once this way for all its subscribers. */
size_t rpc_event_packed_size(const rpc_event_msg *m);
size_t rpc_event_pack(const rpc_event_msg *m, uint8_t *out);
/* A plain event. */
void rpc_event_fill(rpc_event_msg *m, const factum_event *ev, int uuid_string);
/* As KurrentDB with resolve_links: event is the link's target and link the
 * link (event NULL: a link whose target is gone, sent as the link alone;
 * link NULL: not a link). The position is the link's when there is one. */
void rpc_event_fill_resolved(rpc_event_msg *m, const factum_event *event, const factum_event *link, int uuid_string);

/* ---- upcasting (docs/upcasting.md) ------------------------------------- */

/* Does the call ask for events as stored (request header `factum-raw: 1`)? */
int rpc_wants_raw(const net_call *c);
/* Upcasting off the loop (upjob.c): a job upcasts copies of a page of
 * events on a worker thread, for events whose upcast may run a script. */
typedef struct rpc_upjob rpc_upjob;

/* The form of ev to send now: ev itself when raw or when no upcaster
 * applies; its upcast form from `prepared` (a job done, may be NULL) when
 * the job holds ev; else, when no script may be needed, its upcast form in
 * ctx's scratch (valid until the next call; the loop thread only). 0; 1
 * when ev needs a script upcaster and `prepared` does not hold it: nothing
 * was sent, the caller hands its page to rpc_upjob_start and resumes when
 * it is ready (UPJ-1); or -1 after failing the call: a failing upcast ends
 * it with FAILED_PRECONDITION, exception "upcast-failed" and a message
 * naming the event (UPC-5). */
int rpc_upcast(rpc_ctx *ctx, net_call *c, const factum_event *ev, factum_event *out, int raw, rpc_upjob *prepared);
/* Would rpc_upcast answer 1 for ev (without a job)? For building a page's job. */
int rpc_upcast_needs_job(rpc_ctx *ctx, const factum_event *ev, int raw);
/* Upcast copies of *ev[0..n) on a worker thread; ready(owner, j) runs on
 * the loop when they are done (then pass j to rpc_upcast as `prepared`),
 * unless the owner released j first. 0 with *out; -EAGAIN (the workers'
 * queue is full: UPJ-3), -ENOMEM. */
int rpc_upjob_start(rpc_ctx *ctx, const factum_event *const *ev, size_t n, void *owner,
                    void (*ready)(void *owner, rpc_upjob *j), rpc_upjob **out);
/* Is the job still working (its owner waits for ready)? */
int rpc_upjob_running(const rpc_upjob *j);
/* The owner is done with j (NULL: nothing): freed now, or by itself when
 * its work ends (ready is not called then). */
void rpc_upjob_release(rpc_upjob *j);
/* Fail c after rpc_upjob_start refused (-EAGAIN: UNAVAILABLE, busy). */
void rpc_upjob_refused(net_call *c, int rc);
/* Stop the workers (rpc_deinit): a running job finishes, waiting ones are
 * cancelled; owners release their jobs as their calls end. */
void rpc_upjob_stop(rpc_ctx *ctx);

/* Why the store refused events appended to `$upcasters` (an upcaster
 * document that is not valid; the store says only FACTUM_EINVAL or
 * FACTUM_EBADJSON): the reason in buf, or NULL when `stream` is another
 * stream or no event is at fault. */
const char *rpc_upcasters_refusal(const char *stream, const rpc_events *e, char *buf, size_t n);

/* ---- links and filters ------------------------------------------------- */

/* Resolve ev if it is a link (resolve_links): *target and 1 if resolved,
 * 0 if not a link, -1 if a link that does not resolve. Store errors other
 * than a missing target are returned as they are (< -1). */
int rpc_resolve(rpc_ctx *ctx, const factum_event *ev, factum_event *target);

/* A $all filter from read options; on an error the call is failed. */
int rpc_read_filter(net_call *c, const EventStore__Client__Streams__ReadReq__Options__FilterOptions *f,
                    factum_filter **out);

#endif
