/*
 * engine.c - one projection running, on the manager's thread: a factum_sub
 * cursor over $all from the last checkpoint (PRJ-3), each record checked
 * against KurrentDB's source rule, links resolved for the handlers that
 * take them, the handler's output added to the batch being filled, batches
 * cut and appended asynchronously with their checkpoint (PRJ-1, PRJ-2),
 * their completions reaped in order, faults, and the streams work of a
 * reset (PRJ-6). The invariants are in proj.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/seal.h"
#include "base/json.h"
#include "proj/proj.h"

#define POLL_ITEMS  64
#define STEP_EVENTS 16384 /* events one step reads at most, so that projections take turns */

int prj_init_run(prj *p)
{
    uint32_t n = p->m->opts.batches_in_flight;
    if (p->fill) return 0;
    if (!(p->scratch = malloc(FACTUM_MAX_STREAM_LEN + 1))) return -ENOMEM;
    if (!(p->flight = calloc(n, sizeof *p->flight)) || !(p->spare = calloc(n + 1, sizeof *p->spare)))
        return -ENOMEM;
    for (uint32_t i = 0; i <= n; i++) {
        prj_batch *b = prj_batch_new();
        if (!b) return -ENOMEM;
        p->spare[p->n_spare++] = b;
    }
    p->fill = p->spare[--p->n_spare];
    return 0;
}

void prj_free_run(prj *p)
{
    factum_sub_close(p->sub);
    p->sub = NULL;
    factum_reader_free(p->rdr);
    p->rdr = NULL;
    prj_batch_free(p->fill);
    p->fill = NULL;
    for (size_t i = 0; i < p->flight_n; i++) /* only when nothing is in flight any more */
        prj_batch_free(p->flight[(p->flight_head + i) % p->m->opts.batches_in_flight]);
    p->flight_n = 0;
    for (size_t i = 0; i < p->n_spare; i++)
        prj_batch_free(p->spare[i]);
    p->n_spare = 0;
    free(p->flight);
    free(p->spare);
    free(p->scratch);
    p->flight = p->spare = NULL;
    p->scratch = NULL;
}

/* Publish the thread's view of p (shared fields) and wake the waiters. */
void prj_publish(prj *p)
{
    factum_projections *m = p->m;
    int64_t now = base_now_ns();
    pthread_mutex_lock(&m->mu);
    if (now - p->rate_at_ns >= 1000000000LL) { /* events per second over the last second or more */
        if (p->rate_at_ns)
            p->rate = (double)(p->events_processed - p->rate_events) * 1e9 / (double)(now - p->rate_at_ns);
        p->rate_events = p->events_processed;
        p->rate_at_ns = now;
    }
    p->position = p->read_pos;
    p->in_flight = (uint32_t)p->flight_n;
    p->buffered = p->fill ? (uint32_t)prj_batch_events(p->fill) : 0;
    /* Everything read is done when nothing of it waits to be written: not
     * in flight, not in the batch being filled, not staged for a
     * JavaScript projection's handlers (its batch is filled at the cut). */
    if (!p->flight_n && (!p->fill || !prj_batch_events(p->fill)) && !(p->js && prj_js_staged(p)) &&
        p->state == FACTUM_PROJECTION_RUNNING)
        p->done = p->read_pos;
    else
        p->done = p->checkpoint;
    pthread_cond_broadcast(&m->done_cv);
    pthread_mutex_unlock(&m->mu);
}

void prj_stop(prj *p, int state)
{
    factum_sub_close(p->sub);
    p->sub = NULL;
    if (p->js) prj_js_stop(p);
    if (p->fill) prj_batch_reset(p->fill, p->checkpoint);
    p->since_cut = 0;
    pthread_mutex_lock(&p->m->mu);
    p->state = state == FACTUM_PROJECTION_STOPPED && p->flight_n ? FACTUM_PROJECTION_STOPPING : state;
    p->buffered = 0;
    pthread_cond_broadcast(&p->m->done_cv);
    pthread_mutex_unlock(&p->m->mu);
}

void prj_fault(prj *p, int rc, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->m->mu);
    snprintf(p->reason, sizeof p->reason, "%s%s%s", what, rc ? ": " : "", rc ? factum_strerror(rc) : "");
    pthread_mutex_unlock(&p->m->mu);
    prj_log(p->m, FACTUM_LOG_ERROR, "projection %s faulted: %s", p->name, p->reason);
    prj_stop(p, FACTUM_PROJECTION_FAULTED);
}

/* The last committed checkpoint: *pos (0: none), its epoch, and the
 * version the checkpoint stream is at (-1: no stream). */
int prj_read_checkpoint(prj *p, uint64_t *pos, int64_t *epoch, int64_t *version)
{
    factum_stream_info info;
    *pos = 0;
    *epoch = -1;
    *version = -1;
    int rc = factum_stream_get_info(p->m->s, p->ckpt_stream, &info);
    if (rc) return rc;
    if (info.status == FACTUM_STREAM_TOMBSTONED) return FACTUM_EDELETED;
    if (info.last_version < 0) return 0;
    *version = info.last_version;
    if (info.status != FACTUM_STREAM_LIVE) return 0; /* soft-deleted by someone: start afresh */
    factum_event ev;
    size_t n = 0;
    rc = factum_read_stream(p->m->s, p->ckpt_stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND) return 0;
    if (rc || !n) return rc;
    return prj_checkpoint_parse(ev.metadata, ev.metadata_len, pos, epoch);
}

int prj_start(prj *p)
{
    factum_projections *m = p->m;
    int rc;
    p->want_start = 0;
    if (!p->h && !p->js) {
        prj_fault(p, 0, "no handler for '%s' in this build", p->type);
        return FACTUM_EINVAL;
    }
    if (p->js && !m->opts.run_user) { /* RunProjections=System: not this one */
        prj_stop(p, FACTUM_PROJECTION_STOPPED);
        return 0;
    }
    if (!p->js && p->cfg_rc) {
        prj_fault(p, 0, "invalid query: %s", p->cfg_err);
        return p->cfg_rc;
    }
    if ((rc = prj_init_run(p))) goto fail;
    uint64_t pos;
    int64_t epoch, version;
    if ((rc = prj_read_checkpoint(p, &pos, &epoch, &version))) goto fail;
    if (version >= 0 && epoch < p->epoch) { /* PRJ-6: a reset to finish */
        prj_log(m, FACTUM_LOG_INFO, "projection %s: finishing its reset to epoch %lld", p->name,
                (long long)p->epoch);
        if ((rc = prj_reset_streams(p)) || (rc = prj_read_checkpoint(p, &pos, &epoch, &version))) goto fail;
    }
    if (p->js && (rc = prj_js_start(p, pos))) return rc; /* it faulted p with the reason */
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.from = pos ? FACTUM_SUB_AFTER : FACTUM_SUB_START;
    so.after = pos;
    factum_sub_close(p->sub);
    p->sub = NULL;
    if ((rc = factum_sub_open(m->s, &so, &p->sub))) goto fail;
    p->read_pos = pos;
    p->since_cut = 0;
    p->ckpt_version = version;
    prj_batch_reset(p->fill, pos);
    pthread_mutex_lock(&m->mu);
    p->state = FACTUM_PROJECTION_RUNNING;
    p->reason[0] = 0;
    p->checkpoint = pos;
    pthread_mutex_unlock(&m->mu);
    prj_publish(p);
    prj_log(m, FACTUM_LOG_INFO, "projection %s started after position %llu", p->name,
            (unsigned long long)pos);
    return 0;
fail:
    prj_fault(p, rc, "cannot start");
    return rc;
}

/* ---- a batch's life ------------------------------------------------- */

/* The store's writer thread: a batch completed. Wake the manager; close
 * waits for `callbacks` so that m outlives this call. */
static void on_batch_done(void *ctx, int rc)
{
    (void)rc;
    prj *p = ctx;
    factum_projections *m = p->m;
    prj_kick(m);
    atomic_fetch_sub(&m->callbacks, 1);
}

/* Take completed batches off the ring, in order (PRJ-2). */
int prj_reap(prj *p)
{
    uint32_t cap = p->m->opts.batches_in_flight;
    int did = 0;
    while (p->flight_n) {
        prj_batch *b = p->flight[p->flight_head];
        int rc;
        const char *failed;
        if (!prj_batch_done(b, &rc, &failed)) break;
        did = 1;
        if (rc) {
            if (p->state == FACTUM_PROJECTION_RUNNING)
                prj_fault(p, rc, "appending to %s", failed ? failed : "its streams");
        } else {
            pthread_mutex_lock(&p->m->mu);
            if (prj_batch_to(b) > p->checkpoint) p->checkpoint = prj_batch_to(b);
            p->events_emitted += prj_batch_events(b);
            pthread_mutex_unlock(&p->m->mu);
        }
        p->spare[p->n_spare++] = b;
        p->flight_head = (p->flight_head + 1) % cap;
        p->flight_n--;
    }
    if (did && !p->flight_n && p->state == FACTUM_PROJECTION_STOPPING) {
        pthread_mutex_lock(&p->m->mu);
        p->state = FACTUM_PROJECTION_STOPPED;
        pthread_mutex_unlock(&p->m->mu);
    }
    return did;
}

int prj_submit(prj *p)
{
    factum_projections *m = p->m;
    prj_batch_ctx c = {p->ckpt_stream,   p->ckpt_version, p->ckpt_version < 0,
                       p->projection_id, p->epoch,        p->version};
    atomic_fetch_add(&m->callbacks, 1);
    int rc = prj_batch_submit(p->fill, m->s, &c, on_batch_done, p);
    if (rc) {
        atomic_fetch_sub(&m->callbacks, 1);
        if (rc == -EAGAIN) return 0; /* the store's queue is full: its next commit wakes us */
        prj_fault(p, rc, "appending a batch");
        return rc;
    }
    uint32_t cap = m->opts.batches_in_flight;
    p->flight[(p->flight_head + p->flight_n) % cap] = p->fill;
    p->flight_n++;
    p->ckpt_version++;
    uint64_t to = prj_batch_to(p->fill);
    p->fill = p->spare[--p->n_spare];
    prj_batch_reset(p->fill, to);
    p->since_cut = 0;
    return 1;
}

/* ---- reading ---------------------------------------------------------- */

static int is_link(const factum_event *ev)
{
    return ev->type_len == 2 && !memcmp(ev->type, FACTUM_LINK_TYPE, 2);
}

/* One record of $all through the handler into the batch. */
static int project(prj *p, const factum_event *rec)
{
    if (!prj_source_stream(rec->stream, rec->stream_len)) return 0;
    factum_event target;
    const factum_event *ev = rec;
    if (is_link(rec)) {
        if (!p->h->include_links) return 0;
        int rc = factum_resolve_link(p->m->s, rec, &target);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || rc == FACTUM_EINVAL)
            return 0; /* as KurrentDB */
        if (rc) return rc;
        ev = &target;
    }
    prj_src src = {rec, ev, p->scratch};
    prj_emit e;
    if (!p->h->process(&p->cfg, &src, &e)) return 0;
    int rc = prj_batch_add(p->fill, &src, &e);
    return rc == FACTUM_EBADNAME ? 0 : rc; /* an output name past the limit: docs/projections.md */
}

static int batch_full(const prj *p)
{
    return p->since_cut >= p->m->opts.batch_events || prj_batch_bytes(p->fill) >= PRJ_BATCH_BYTES;
}

/* Read into the batch until it is full, the head is reached or the step's
 * budget is spent. *at_head: nothing more is committed. */
static int read_some_bound(prj *p, int *at_head, int *did);

/* The step's events (and the links they resolve) open into p's reader: the
 * step before is done with its own (its batch holds copies). */
static int read_some(prj *p, int *at_head, int *did)
{
    holder_bind b = holder_reader_enter(p->m->s, &p->rdr, 1);
    int rc = read_some_bound(p, at_head, did);
    holder_reader_leave(b);
    return rc;
}

static int read_some_bound(prj *p, int *at_head, int *did)
{
    factum_sub_item it[POLL_ITEMS];
    uint64_t read = 0;
    *at_head = 0;
    while (read < STEP_EVENTS && !batch_full(p)) {
        size_t n = 0;
        int rc = factum_sub_poll(p->sub, it, POLL_ITEMS, &n, 0);
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            if (it[i].kind != FACTUM_SUB_EVENT) continue;
            if ((rc = project(p, &it[i].event))) return rc;
            p->read_pos = it[i].event.position;
            p->since_cut++;
            read++;
        }
        if (!n && !factum_sub_pending(p->sub)) {
            *at_head = 1;
            break;
        }
    }
    if (read) {
        *did = 1;
        prj_batch_cover(p->fill, p->read_pos);
        pthread_mutex_lock(&p->m->mu);
        p->events_processed += read;
        pthread_mutex_unlock(&p->m->mu);
    }
    return 0;
}

int prj_step(prj *p)
{
    int did = prj_reap(p);
    if (p->state != FACTUM_PROJECTION_RUNNING) {
        if (did) prj_publish(p);
        return did;
    }
    if (p->js) {
        prj_js_step(p, &did);
        prj_publish(p);
        return did;
    }
    uint32_t cap = p->m->opts.batches_in_flight;
    for (int round = 0; round < 4; round++) {
        /* PRJ-4: a full batch waits for room in flight; nothing more is read. */
        if (batch_full(p)) {
            if (p->flight_n >= cap) break;
            int rc = prj_submit(p);
            if (rc <= 0) break;
            did = 1;
            continue;
        }
        int at_head = 0;
        int rc = read_some(p, &at_head, &did);
        if (rc) {
            prj_fault(p, rc, "reading $all after position %llu", (unsigned long long)p->read_pos);
            return 1;
        }
        if (!at_head) continue;
        /* At the head: what was read goes out now if nothing is in flight;
         * otherwise it waits for the batch in flight and goes with what
         * arrives meanwhile (as a group commit does: no wait when idle,
         * fewer and larger batches under load). */
        if (prj_batch_events(p->fill) && !p->flight_n && prj_submit(p) > 0) did = 1;
        break;
    }
    prj_publish(p);
    return did;
}

/* ---- reset (PRJ-6) ---------------------------------------------------- */

typedef struct names {
    char **v;
    size_t n, cap;
    uint64_t last; /* created position of the last stream listed */
    const prj_handler *h;
} names;

static int owned(const prj_handler *h, const char *name, size_t len)
{
    size_t pl = strlen(h->prefix);
    if (h->exact) return len == pl && !memcmp(name, h->prefix, pl);
    return len >= pl && !memcmp(name, h->prefix, pl);
}

static int collect(void *ctx, const char *name, size_t len, uint64_t created)
{
    names *c = ctx;
    c->last = created;
    if (!owned(c->h, name, len)) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **v = realloc(c->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strndup(name, len))) return -ENOMEM;
    c->n++;
    return c->n >= 1024; /* a page at a time */
}

/* Hide a stream's events: its metadata with `$tb` past its last event,
 * every other key kept. */
int prj_truncate_stream(factum_store *s, const char *stream)
{
    factum_stream_info info;
    int rc = factum_stream_get_info(s, stream, &info);
    if (rc || info.status != FACTUM_STREAM_LIVE || info.last_version < 0) return rc;
    int64_t tb = info.last_version + 1;
    if (info.meta.truncate_before >= tb) return 0; /* done before a crash */
    char *json = NULL;
    size_t len;
    int64_t mv;
    if ((rc = factum_get_stream_metadata(s, stream, &json, &len, &mv))) return rc;
    json_value *doc = NULL;
    base_buf b = {0};
    if (json_parse(json, len, &doc) || doc->type != JSON_OBJECT) {
        json_free(doc);
        doc = NULL;
    }
    rc = base_buf_append(&b, "{", 1);
    for (size_t i = 0; !rc && doc && i < doc->n; i++) {
        if (!strcmp(doc->keys[i], "$tb")) continue;
        rc = json_write_string(&b, doc->keys[i], doc->key_lens[i]);
        if (!rc) rc = base_buf_append(&b, ":", 1);
        if (!rc) rc = json_write_value(&b, doc->items[i]);
        if (!rc) rc = base_buf_append(&b, ",", 1);
    }
    if (!rc) rc = base_buf_printf(&b, "\"$tb\":%lld}", (long long)tb);
    if (!rc) rc = factum_set_stream_metadata(s, stream, FACTUM_ANY, (const char *)b.data, b.len, NULL);
    base_buf_free(&b);
    json_free(doc);
    free(json);
    return rc;
}

int prj_reset_streams(prj *p)
{
    factum_store *s = p->m->s;
    names c = {0};
    c.h = p->h;
    int rc = 0;
    if (p->js) {
        if ((rc = prj_js_reset_streams(p))) return rc;
        goto checkpoint;
    }
    uint64_t after = 0;
    for (;;) {
        c.n = 0;
        c.last = after;
        int lrc = factum_list_streams(s, after, collect, &c); /* 1: a page is full */
        if (lrc < 0) rc = lrc;
        for (size_t i = 0; i < c.n; i++) {
            if (!rc) rc = prj_truncate_stream(s, c.v[i]);
            free(c.v[i]);
        }
        if (rc || lrc == 0) break;
        after = c.last;
    }
    free(c.v);
    if (rc) return rc;
checkpoint:;
    /* The new epoch's checkpoint at position 0 marks the reset done. */
    uint64_t pos;
    int64_t epoch, version;
    if ((rc = prj_read_checkpoint(p, &pos, &epoch, &version))) return rc;
    base_buf meta = {0};
    if ((rc = prj_checkpoint_meta(&meta, p->projection_id, p->epoch, p->version, 0))) return rc;
    factum_event_data ev = {.type = PRJ_CHECKPOINT_TYPE,
                            .flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON,
                            .metadata = meta.data,
                            .metadata_len = meta.len};
    rc = factum_append(s, p->ckpt_stream, version, &ev, 1, NULL);
    base_buf_free(&meta);
    return rc;
}
