/*
 * sched.c - durable scheduled events: requests in `$scheduled`, a scheduler
 * thread per read-write store that appends each due request's event to its
 * target stream, cancellation, and the list of pending requests.
 *
 * Design note (invariants; tests cite them as SC-n):
 *  SC-1  A request has at most one outcome marker in `$scheduled-done`
 *        ("$delivered", "$cancelled" or "$failed"), because the marker's
 *        event id is derived from the schedule id and an id is never twice
 *        in a stream (ST-5). The first marker committed decides the request.
 *  SC-2  A delivery is one atomic multi-stream append: the target's event
 *        (id derived from the schedule id) and the "$delivered" marker. So
 *        the event is in its target iff the marker is: never one without
 *        the other. A delivery repeated after a crash is an idempotent
 *        replay of both parts; one after a cancellation fails as a mix of
 *        replayed and new parts (FACTUM_EIDEMPOTENCY) and is dropped.
 *  SC-3  A cancellation appends the "$cancelled" marker with FACTUM_ANY; if
 *        the append was an idempotent replay, another marker was there
 *        first (SC-1) and the cancellation lost (FACTUM_ENOTFOUND).
 *  SC-4  Every request of `$scheduled` below the checkpoint's `low` version
 *        has its marker. The checkpoint is written only with a `low` no
 *        higher than the lowest unresolved request the scheduler knows of,
 *        so a restart that reads from `low` finds every pending request.
 *  SC-5  The scheduler holds at most `max` requests, the earliest due of
 *        those it has seen; it remembers the earliest due time and lowest
 *        version of those it let go, and reads `$scheduled` again from its
 *        `low` when that time comes or the set is half empty.
 *
 * The thread:
 *
 *      open -> load checkpoint -> scan from low -> [wait] --due--> deliver
 *                                                    ^  \--$scheduled grew--> scan new
 *                                                    \-- checkpoint (<= 1/s) <-/
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "store/store_int.h"

#define SCHED_STREAM  FACTUM_SCHEDULED_STREAM
#define DONE_STREAM   FACTUM_SCHEDULED_DONE_STREAM
#define CKPT_STREAM   "$scheduled-checkpoint"
#define RETRY_NS      1000000000ll /* a delivery that failed for a passing reason is tried again after this */
#define CKPT_EVERY_NS 1000000000ll

enum { DERIVE_TARGET = 1, DERIVE_MARKER = 2 };

typedef struct sitem {
    int64_t due;
    uint64_t version; /* in $scheduled */
    uint8_t id[16];
} sitem;

struct sched {
    factum_store *s;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int kick;
    _Atomic int64_t seen_version; /* of $scheduled, by on_commit */
    int stop;
    sitem *heap; /* min-heap on due (mu) */
    size_t n, cap, max;
    uint64_t scanned; /* next version of $scheduled to read (thread only) */
    int dropped;      /* SC-5 (mu) */
    int64_t dropped_due;
    uint64_t dropped_min_version;
    uint64_t ckpt_low; /* low of the last checkpoint written (thread only) */
    int64_t ckpt_ns;
};

static size_t max_pending = FACTUM_SCHEDULE_MAX_PENDING;

void sched_test_max_pending(size_t max)
{
    max_pending = max ? max : FACTUM_SCHEDULE_MAX_PENDING;
}

/* ---- ids ------------------------------------------------------------- */

/* An id derived from the schedule id (SC-1, SC-2): a version-8 UUID made
 * from two 64-bit hashes of the id and a tag. Stable across versions. */
static void derive_id(const uint8_t id[16], int tag, uint8_t out[16])
{
    uint8_t in[16 + 16];
    memcpy(in, id, 16);
    memcpy(in + 16, tag == DERIVE_TARGET ? "factum:deliver:1" : "factum:marker::2", 16);
    uint64_t a = base_hash64(in, sizeof in);
    in[0] ^= 0x5a;
    uint64_t b = base_hash64(in, sizeof in);
    base_put64(out, a);
    base_put64(out + 8, b);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

/* The committed event with `id` in `stream`: 1 (in *ev), 0 none. */
static int find_by_id(factum_store *s, const char *stream, const uint8_t id[16], factum_event *ev)
{
    uint64_t los[16];
    size_t n;
    int rc = idx_id_lookup(s->idx, id, los, 16, &n);
    if (rc) return rc;
    size_t len = strlen(stream);
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        if ((rc = event_at(s, los[i], ev))) return rc;
        if (ev->position <= committed && ev->stream_len == len && !memcmp(ev->stream, stream, len) &&
            !memcmp(ev->id, id, 16) && !(ev->flags & LOG_EV_STUB))
            return 1;
    }
    return 0;
}

static int resolved(factum_store *s, const uint8_t id[16])
{
    uint8_t mid[16];
    derive_id(id, DERIVE_MARKER, mid);
    factum_event ev;
    return find_by_id(s, DONE_STREAM, mid, &ev);
}

/* ---- requests -------------------------------------------------------- */

typedef struct request {
    json_value *doc;    /* the metadata */
    const char *target; /* in doc */
    int64_t due;
} request;

static void request_free(request *r)
{
    json_free(r->doc);
    r->doc = NULL;
}

/* Parse the metadata of a request. Errors: FACTUM_EINVAL with *why. */
static int request_parse(const void *meta, size_t len, request *r, const char **why)
{
    memset(r, 0, sizeof *r);
    if (!len || json_parse(meta, len, &r->doc) || r->doc->type != JSON_OBJECT) {
        *why = "the metadata of a scheduled request must be a JSON object";
        request_free(r);
        return FACTUM_EINVAL;
    }
    const json_value *to = json_get(r->doc, "$deliverTo"), *at = json_get(r->doc, "$deliverAt");
    if (!to || to->type != JSON_STRING || factum_check_stream_name(to->str, to->len) ||
        strlen(to->str) != to->len) {
        *why = "\"$deliverTo\" must be a valid stream name";
        request_free(r);
        return FACTUM_EINVAL;
    }
    if (!strncmp(to->str, SCHED_STREAM, strlen(SCHED_STREAM))) {
        *why = "\"$deliverTo\" may not be a $scheduled stream";
        request_free(r);
        return FACTUM_EINVAL;
    }
    if (tm_json_time(at, &r->due)) {
        *why = "\"$deliverAt\" must be an RFC 3339 UTC time or integer milliseconds since the epoch";
        request_free(r);
        return FACTUM_EINVAL;
    }
    r->target = to->str;
    return 0;
}

int factum_schedule_check_request(const void *metadata, size_t len, const char **why)
{
    const char *w = NULL;
    request r;
    int rc = request_parse(metadata, len, &r, &w);
    if (!rc) request_free(&r);
    if (why) *why = w;
    return rc;
}

/* The metadata to deliver: the request's without the two keys. */
static int delivered_meta(const request *r, base_buf *b)
{
    int rc = base_buf_append(b, "{", 1);
    int first = 1;
    for (size_t i = 0; !rc && i < r->doc->n; i++) {
        const char *k = r->doc->keys[i];
        if (!strcmp(k, "$deliverTo") || !strcmp(k, "$deliverAt")) continue;
        if (!first) rc = base_buf_append(b, ",", 1);
        first = 0;
        if (!rc) rc = json_write_string(b, k, r->doc->key_lens[i]);
        if (!rc) rc = base_buf_append(b, ":", 1);
        if (!rc) rc = json_write_value(b, r->doc->items[i]);
    }
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc;
}

/* Read `$scheduled` forward from version `from`; cb(ctx, ev) for every
 * event (0 go on). *next: the version after the last read. */
static int each_request(factum_store *s, uint64_t from, int (*cb)(void *ctx, const factum_event *ev),
                        void *ctx, uint64_t *next)
{
    factum_event evs[128];
    uint64_t cur = from;
    int rc = 0;
    while (1) {
        size_t n;
        uint64_t nx;
        rc = factum_read_stream(s, SCHED_STREAM, cur, FACTUM_FORWARD, evs, 128, &n, &nx);
        if (rc == FACTUM_ENOTFOUND) rc = 0, n = 0, nx = FACTUM_END;
        if (rc) break;
        for (size_t i = 0; i < n && !rc; i++) {
            /* Past an event only once it was handled: a scan that failed
             * goes on from it next time (SC-4). */
            if (!(rc = cb(ctx, &evs[i]))) cur = evs[i].version + 1;
        }
        if (rc || nx == FACTUM_END) break;
        cur = nx;
    }
    if (next) *next = cur;
    return rc;
}

/* ---- markers --------------------------------------------------------- */

static int marker_append(factum_store *s, const uint8_t id[16], const char *type, const char *extra,
                         factum_append_result *res)
{
    char idt[37];
    factum_uuid_format(id, idt);
    base_buf b = {0};
    int rc = base_buf_printf(&b, "{\"id\":\"%s\"%s%s}", idt, extra ? "," : "", extra ? extra : "");
    if (rc) return rc;
    factum_event_data m = {
        .type = type, .has_id = 1, .flags = FACTUM_EVENT_JSON, .data = b.data, .data_len = b.len};
    derive_id(id, DERIVE_MARKER, m.id);
    rc = factum_append(s, DONE_STREAM, FACTUM_ANY, &m, 1, res);
    base_buf_free(&b);
    return rc;
}

static int marker_failed(factum_store *s, const uint8_t id[16], int code, const char *why)
{
    base_buf e = {0};
    int rc = base_buf_printf(&e, "\"code\":%d,\"error\":", code);
    if (!rc) rc = json_write_string(&e, why, strlen(why));
    if (!rc) rc = base_buf_append(&e, "", 1); /* NUL */
    factum_append_result res;
    if (!rc) rc = marker_append(s, id, "$failed", (const char *)e.data, &res);
    base_buf_free(&e);
    char idt[37];
    factum_uuid_format(id, idt);
    store_log(s, FACTUM_LOG_WARN, "scheduled event %s failed: %s", idt, why);
    return rc;
}

/* ---- the pending set (SC-5) ----------------------------------------- */

static void heap_up(sitem *h, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p].due <= h[i].due) break;
        sitem t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static void heap_down(sitem *h, size_t n, size_t i)
{
    while (1) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due < h[m].due) m = l;
        if (r < n && h[r].due < h[m].due) m = r;
        if (m == i) return;
        sitem t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
}

static void heap_remove_at(struct sched *c, size_t i)
{
    c->heap[i] = c->heap[--c->n];
    if (i < c->n) {
        heap_down(c->heap, c->n, i);
        heap_up(c->heap, i);
    }
}

static void drop(struct sched *c, const sitem *it)
{
    c->dropped = 1;
    if (it->due < c->dropped_due) c->dropped_due = it->due;
    if (it->version < c->dropped_min_version) c->dropped_min_version = it->version;
}

/* Add (mu held). When full, the latest due of the set and it is let go. The
 * set grows by doubling up to max (an allocation that fails is "full"). */
static void pending_add(struct sched *c, const sitem *it)
{
    if (c->n == c->cap && c->cap < c->max) {
        size_t cap = c->cap * 2 < c->max ? c->cap * 2 : c->max;
        sitem *h = realloc(c->heap, cap * sizeof *h);
        if (h) {
            c->heap = h;
            c->cap = cap;
        }
    }
    if (c->n < c->cap) {
        c->heap[c->n] = *it;
        heap_up(c->heap, c->n++);
        return;
    }
    size_t latest = 0;
    for (size_t i = 1; i < c->n; i++)
        if (c->heap[i].due > c->heap[latest].due) latest = i;
    if (c->n && c->heap[latest].due > it->due) {
        drop(c, &c->heap[latest]);
        heap_remove_at(c, latest);
        c->heap[c->n] = *it;
        heap_up(c->heap, c->n++);
    } else {
        drop(c, it);
    }
}

/* Lowest version not known to be resolved (SC-4). mu held. */
static uint64_t pending_low(const struct sched *c)
{
    uint64_t low = c->scanned;
    for (size_t i = 0; i < c->n; i++)
        if (c->heap[i].version < low) low = c->heap[i].version;
    if (c->dropped && c->dropped_min_version < low) low = c->dropped_min_version;
    return low;
}

/* ---- checkpoint (SC-4) ---------------------------------------------- */

static int ckpt_load(factum_store *s, uint64_t *low)
{
    *low = 0;
    factum_event ev;
    size_t n;
    int rc = factum_read_stream(s, CKPT_STREAM, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND) return 0;
    if (rc || !n) return rc;
    json_value *doc;
    if (json_parse((const char *)ev.data, ev.data_len, &doc)) return 0; /* not ours: read from the start */
    int64_t v;
    if (doc->type == JSON_OBJECT && !json_int64(json_get(doc, "low"), &v) && v >= 0) *low = (uint64_t)v;
    json_free(doc);
    return 0;
}

static int ckpt_write(struct sched *c, uint64_t low)
{
    factum_store *s = c->s;
    factum_stream_info info;
    int rc = factum_stream_get_info(s, CKPT_STREAM, &info);
    if (rc) return rc;
    if (info.metadata_version < 0 &&
        (rc = factum_set_stream_metadata(s, CKPT_STREAM, FACTUM_ANY, "{\"$maxCount\":1}", 15, NULL)))
        return rc;
    char data[64];
    int len = snprintf(data, sizeof data, "{\"low\":%" PRIu64 "}", low);
    factum_event_data e = {
        .type = "$checkpoint", .flags = FACTUM_EVENT_JSON, .data = data, .data_len = (size_t)len};
    if ((rc = factum_append(s, CKPT_STREAM, FACTUM_ANY, &e, 1, NULL))) return rc;
    c->ckpt_low = low;
    c->ckpt_ns = (int64_t)base_mono_ns();
    return 0;
}

/* ---- scanning -------------------------------------------------------- */

typedef struct scan_ctx {
    struct sched *c;
} scan_ctx;

static int scan_one(void *ctx, const factum_event *ev)
{
    struct sched *c = ((scan_ctx *)ctx)->c;
    factum_store *s = c->s;
    int rc = resolved(s, ev->id);
    if (rc) return rc < 0 ? rc : 0;
    request r;
    const char *why;
    if (request_parse(ev->metadata, ev->metadata_len, &r, &why)) {
        rc = marker_failed(s, ev->id, FACTUM_EINVAL, why);
        return rc == FACTUM_EIDEMPOTENCY ? 0 : rc;
    }
    sitem it = {.due = r.due, .version = ev->version};
    memcpy(it.id, ev->id, 16);
    request_free(&r);
    pthread_mutex_lock(&c->mu);
    pending_add(c, &it);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int scan_from(struct sched *c, uint64_t from)
{
    scan_ctx sc = {c};
    uint64_t next;
    int rc = each_request(c->s, from, scan_one, &sc, &next);
    if (next > c->scanned || !rc) c->scanned = next > c->scanned ? next : c->scanned;
    return rc;
}

/* Read `$scheduled` again from low, keeping the earliest due (SC-5). */
static int rescan(struct sched *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t low = pending_low(c);
    c->n = 0;
    c->dropped = 0;
    c->dropped_due = INT64_MAX;
    c->dropped_min_version = UINT64_MAX;
    pthread_mutex_unlock(&c->mu);
    return scan_from(c, low);
}

/* ---- delivery (SC-2) ------------------------------------------------- */

static int deliver(struct sched *c, const sitem *it)
{
    factum_store *s = c->s;
    factum_event req;
    int rc = stream_event(s, SCHED_STREAM, strlen(SCHED_STREAM),
                          base_hash64(SCHED_STREAM, strlen(SCHED_STREAM)), it->version, &req, NULL);
    if (rc <= 0) return rc < 0 ? rc : FACTUM_ECORRUPT;
    request r;
    const char *why;
    if (request_parse(req.metadata, req.metadata_len, &r, &why))
        return marker_failed(s, it->id, FACTUM_EINVAL, why);
    base_buf meta = {0}, mdata = {0};
    char idt[37];
    factum_uuid_format(it->id, idt);
    rc = delivered_meta(&r, &meta);
    if (!rc) rc = base_buf_printf(&mdata, "{\"id\":\"%s\",\"stream\":", idt);
    if (!rc) rc = json_write_string(&mdata, r.target, strlen(r.target));
    if (!rc) rc = base_buf_printf(&mdata, ",\"version\":%" PRIu64 "}", it->version);
    if (rc) goto out;
    factum_event_data te = {.type = req.type,
                            .has_id = 1,
                            .flags = (req.flags & FACTUM_EVENT_JSON) | FACTUM_EVENT_META_JSON,
                            .data = req.data,
                            .data_len = req.data_len,
                            .metadata = meta.data,
                            .metadata_len = meta.len};
    derive_id(it->id, DERIVE_TARGET, te.id);
    factum_event_data me = {.type = "$delivered",
                            .has_id = 1,
                            .flags = FACTUM_EVENT_JSON,
                            .data = mdata.data,
                            .data_len = mdata.len};
    derive_id(it->id, DERIVE_MARKER, me.id);
    factum_append_req parts[2] = {{r.target, FACTUM_ANY, &te, 1}, {DONE_STREAM, FACTUM_ANY, &me, 1}};
    factum_append_result res[2];
    size_t failed = 0;
    rc = factum_append_multi(s, parts, 2, res, &failed);
    if (!rc) goto out;
    int had = resolved(s, it->id); /* SC-2: cancelled (or decided) meanwhile */
    if (had) {
        rc = had < 0 ? had : 0;
        goto out;
    }
    switch (rc) {
    case FACTUM_EDELETED:
    case FACTUM_EBADNAME:
    case FACTUM_EBADTYPE:
    case FACTUM_ETOOBIG:
    case FACTUM_EIDEMPOTENCY:
    case FACTUM_EDUPLICATEID:
    case FACTUM_EINVAL:
    case FACTUM_EWRONGVERSION: {
        char msg[256];
        snprintf(msg, sizeof msg, "appending to %s: %s", r.target, factum_strerror(rc));
        rc = marker_failed(s, it->id, rc, msg);
        if (rc == FACTUM_EIDEMPOTENCY) rc = 0; /* another marker came first */
        break;
    }
    default:
        break; /* a passing failure (the store's): the caller tries again later */
    }
out:
    base_buf_free(&meta);
    base_buf_free(&mdata);
    request_free(&r);
    return rc;
}

/* ---- the thread ------------------------------------------------------- */

static void on_commit(void *ctx, uint64_t last)
{
    struct sched *c = ctx;
    (void)last;
    /* Only a change of `$scheduled` wakes the thread (a cached state: no
     * disk read on the committing thread). */
    factum_stream_info info;
    if (factum_stream_get_info(c->s, SCHED_STREAM, &info) ||
        atomic_exchange(&c->seen_version, info.last_version) == info.last_version)
        return;
    if (atomic_exchange(&c->kick, 1)) return; /* already told */
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int64_t next_wake(const struct sched *c)
{
    int64_t t = c->n ? c->heap[0].due : INT64_MAX;
    if (c->dropped && c->dropped_due < t) t = c->dropped_due;
    return t;
}

static void *sched_main(void *arg)
{
    struct sched *c = arg;
    factum_store *s = c->s;
    uint64_t low = 0;
    int rc = ckpt_load(s, &low);
    if (!rc) {
        c->scanned = low;
        c->ckpt_low = low;
        rc = scan_from(c, low);
    }
    if (rc) store_log(s, FACTUM_LOG_ERROR, "scheduler: reading %s: %s", SCHED_STREAM, factum_strerror(rc));
    int64_t last_seen_version = -2;
    while (1) {
        pthread_mutex_lock(&c->mu);
        while (!c->stop && !atomic_load(&c->kick)) {
            int64_t now = base_now_ns(), due = next_wake(c);
            if (due <= now) break;
            int64_t wait = due - now;
            if (wait > 1000000000ll) wait = 1000000000ll; /* the wall clock may be stepped */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + wait;
            ts.tv_sec = at / 1000000000;
            ts.tv_nsec = at % 1000000000;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        /* Closing: one last pass, so that what is due is delivered even by
         * a store opened briefly (a command line), unless crashing. */
        if (stop && s->abandon_sched) break;
        atomic_store(&c->kick, 0);
        if (atomic_load(&s->failed)) {
            if (stop) break; /* fail-stopped (ST-4): nothing can be delivered until reopened */
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* New requests? */
        factum_stream_info info;
        if (!factum_stream_get_info(s, SCHED_STREAM, &info) && info.last_version != last_seen_version) {
            last_seen_version = info.last_version;
            if ((rc = scan_from(c, c->scanned)))
                store_log(s, FACTUM_LOG_ERROR, "scheduler: reading %s: %s", SCHED_STREAM,
                          factum_strerror(rc));
        }
        /* Deliver what is due. */
        while (1) {
            pthread_mutex_lock(&c->mu);
            int64_t now = base_now_ns();
            if (!c->n || c->heap[0].due > now) {
                pthread_mutex_unlock(&c->mu);
                break;
            }
            sitem it = c->heap[0];
            heap_remove_at(c, 0);
            pthread_mutex_unlock(&c->mu);
            if ((rc = deliver(c, &it))) {
                char idt[37];
                factum_uuid_format(it.id, idt);
                store_log(s, FACTUM_LOG_WARN, "scheduler: delivering %s: %s; trying again in a second", idt,
                          factum_strerror(rc));
                it.due = base_now_ns() + RETRY_NS;
                pthread_mutex_lock(&c->mu);
                pending_add(c, &it);
                pthread_mutex_unlock(&c->mu);
                break;
            }
        }
        /* SC-5 */
        pthread_mutex_lock(&c->mu);
        int again = c->dropped && (c->dropped_due <= base_now_ns() || c->n <= c->max / 2);
        uint64_t plow = pending_low(c);
        pthread_mutex_unlock(&c->mu);
        if (again && (rc = rescan(c)))
            store_log(s, FACTUM_LOG_ERROR, "scheduler: reading %s: %s", SCHED_STREAM, factum_strerror(rc));
        if (stop) break;
        if (plow > c->ckpt_low && (int64_t)base_mono_ns() - c->ckpt_ns >= CKPT_EVERY_NS) ckpt_write(c, plow);
    }
    if (!c->s->abandon_sched) {
        pthread_mutex_lock(&c->mu);
        uint64_t plow = pending_low(c);
        pthread_mutex_unlock(&c->mu);
        if (plow > c->ckpt_low && !atomic_load(&s->failed)) ckpt_write(c, plow);
    }
    return NULL;
}

int sched_start(factum_store *s)
{
    struct sched *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->s = s;
    c->max = max_pending;
    c->dropped_due = INT64_MAX;
    c->dropped_min_version = UINT64_MAX;
    atomic_store(&c->seen_version, INT64_MIN);
    c->cap = c->max < 64 ? c->max : 64;
    if (!(c->heap = malloc(c->cap * sizeof *c->heap))) {
        free(c);
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = factum_commit_listener_add(s, on_commit, c);
    if (!rc) {
        rc = -pthread_create(&c->th, NULL, sched_main, c);
        if (rc) factum_commit_listener_remove(s, on_commit, c);
    }
    if (rc) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c->heap);
        free(c);
        return rc;
    }
    s->sched = c;
    return 0;
}

void sched_stop(factum_store *s, int abandon)
{
    struct sched *c = s->sched;
    if (!c) return;
    s->abandon_sched = abandon;
    factum_commit_listener_remove(s, on_commit, c);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c->heap);
    free(c);
    s->sched = NULL;
}

/* ---- the public calls ------------------------------------------------ */

int factum_schedule(factum_store *s, const char *stream, int64_t deliver_at_ns, const factum_event_data *ev,
                    uint8_t schedule_id[16])
{
    if (!s || !ev || !ev->type) return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    if (!stream) return FACTUM_EBADNAME;
    size_t slen = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(stream, slen);
    if (rc) return rc;
    if (!strncmp(stream, SCHED_STREAM, strlen(SCHED_STREAM))) return FACTUM_EINVAL;
    json_value *doc = NULL;
    if (ev->metadata_len) {
        if (json_parse(ev->metadata, ev->metadata_len, &doc)) return FACTUM_EBADJSON;
        if (doc->type != JSON_OBJECT) {
            json_free(doc);
            return FACTUM_EBADJSON;
        }
        if (json_get(doc, "$deliverAt") || json_get(doc, "$deliverTo")) {
            json_free(doc);
            return FACTUM_EINVAL;
        }
    }
    char at[40];
    factum_time_format(deliver_at_ns, at);
    base_buf b = {0};
    rc = base_buf_printf(&b, "{\"$deliverAt\":\"%s\",\"$deliverTo\":", at);
    if (!rc) rc = json_write_string(&b, stream, slen);
    for (size_t i = 0; doc && !rc && i < doc->n; i++) {
        rc = base_buf_append(&b, ",", 1);
        if (!rc) rc = json_write_string(&b, doc->keys[i], doc->key_lens[i]);
        if (!rc) rc = base_buf_append(&b, ":", 1);
        if (!rc) rc = json_write_value(&b, doc->items[i]);
    }
    if (!rc) rc = base_buf_append(&b, "}", 1);
    json_free(doc);
    if (rc) {
        base_buf_free(&b);
        return rc;
    }
    factum_event_data e = *ev;
    e.metadata = b.data;
    e.metadata_len = b.len;
    e.flags |= FACTUM_EVENT_META_JSON;
    if (!e.has_id) {
        factum_uuid_v4(e.id);
        e.has_id = 1;
    }
    rc = factum_append(s, SCHED_STREAM, FACTUM_ANY, &e, 1, NULL);
    base_buf_free(&b);
    if (!rc && schedule_id) memcpy(schedule_id, e.id, 16);
    return rc;
}

int factum_schedule_cancel(factum_store *s, const uint8_t schedule_id[16])
{
    if (!s || !schedule_id) return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    factum_event req;
    int rc = find_by_id(s, SCHED_STREAM, schedule_id, &req);
    if (rc <= 0) return rc < 0 ? rc : FACTUM_ENOTFOUND;
    factum_append_result res;
    if ((rc = marker_append(s, schedule_id, "$cancelled", NULL, &res))) return rc;
    if (res.idempotent) return FACTUM_ENOTFOUND; /* SC-3: decided before */
    struct sched *c = s->sched;
    if (c) {
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < c->n; i++)
            if (!memcmp(c->heap[i].id, schedule_id, 16)) {
                heap_remove_at(c, i);
                break;
            }
        pthread_mutex_unlock(&c->mu);
    }
    return 0;
}

typedef struct list_ctx {
    factum_store *s;
    int (*cb)(void *ctx, const factum_schedule_info *info);
    void *ctx;
} list_ctx;

static int list_one(void *ctx, const factum_event *ev)
{
    list_ctx *l = ctx;
    int rc = resolved(l->s, ev->id);
    if (rc) return rc < 0 ? rc : 0;
    request r;
    const char *why;
    if (request_parse(ev->metadata, ev->metadata_len, &r, &why)) return 0; /* will fail, not pending */
    factum_schedule_info info = {.stream = r.target,
                                 .type = ev->type,
                                 .deliver_at_ns = r.due,
                                 .position = ev->position,
                                 .version = ev->version};
    memcpy(info.id, ev->id, 16);
    rc = l->cb(l->ctx, &info);
    request_free(&r);
    return rc;
}

int factum_schedule_list(factum_store *s, int (*cb)(void *ctx, const factum_schedule_info *info), void *ctx)
{
    if (!s || !cb) return FACTUM_EINVAL;
    uint64_t low;
    int rc = ckpt_load(s, &low);
    if (rc) return rc;
    list_ctx l = {s, cb, ctx};
    return each_request(s, low, list_one, &l, NULL);
}
