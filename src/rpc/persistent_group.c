/*
 * persistent_group.c - the consumer group engine (PS-1..6 in
 * persistent_int.h): a group's lanes of messages read from its source, the
 * dispatch to its consumers by strategy, acks and nacks, retries and
 * message timeouts, parking and replay, checkpoints and the parked
 * stream's $tb written with asynchronous appends; a group's life (built
 * from settings and its durable state, rebuilt, freed) and the loop's
 * hooks (commits, ticks, close). The service's handlers (persistent.c),
 * the configuration (persistent_config.c) and the statistics
 * (persistent_stats.c) use it; it uses events.c and the store.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/pool.h"
#include "base/json.h"
#include "net/grpc.h"
#include "rpc/events.h"
#include "rpc/persistent.h"
#include "rpc/persistent_int.h"
#include "rpc/wire.h"

#define GROUP_SCAN 4096 /* events a group's cursor examines per poll (RPC-2) */
#define POLL_ITEMS 66

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- names --------------------------------------------------------------- */

const char *rpc_ps_src_name(const ps_group *g)
{
    return g->stream ? g->stream : "$all";
}

static char *sys_stream(const ps_group *g, const char *suffix)
{
    size_t n =
        strlen("$persistentsubscription-") + strlen(rpc_ps_src_name(g)) + 2 + strlen(g->name) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "$persistentsubscription-%s::%s%s", rpc_ps_src_name(g), g->name, suffix);
    return p;
}

/* ---- settings ------------------------------------------------------------ */

void rpc_ps_settings_free(ps_settings *s)
{
    free(s->filter_regex);
    for (size_t i = 0; i < s->n_filter_prefixes; i++)
        free(s->filter_prefixes[i]);
    free(s->filter_prefixes);
    memset(s, 0, sizeof *s);
}

/* Copy src's filter into dst (whose own filter fields are overwritten). */
void rpc_ps_settings_copy_filter(ps_settings *dst, const ps_settings *src)
{
    dst->has_filter = src->has_filter;
    dst->filter_on = src->filter_on;
    dst->filter_regex = src->filter_regex ? strdup(src->filter_regex) : NULL;
    dst->filter_prefixes = NULL;
    dst->n_filter_prefixes = 0;
    if (src->n_filter_prefixes && (dst->filter_prefixes = calloc(src->n_filter_prefixes, sizeof(char *)))) {
        dst->n_filter_prefixes = src->n_filter_prefixes;
        for (size_t i = 0; i < src->n_filter_prefixes; i++)
            dst->filter_prefixes[i] = strdup(src->filter_prefixes[i]);
    }
}

/* ---- asynchronous writes (PS-6) ------------------------------------------ */

typedef struct ps_write {
    rpc_ctx *ctx;
    uint64_t group_id;
    void *arg;
    ps_done_fn done;
    int rc;
    uint64_t version;
    char *stream, *type;
    base_buf data, meta;
    factum_event_data ev;
    factum_append_req req;
    rpc_submit sub;
} ps_write;

static void write_free(ps_write *w)
{
    free(w->stream);
    free(w->type);
    base_buf_free(&w->data);
    base_buf_free(&w->meta);
    free(w);
}

static void write_done_loop(void *arg)
{
    ps_write *w = arg;
    rpc_store_done(w->ctx);
    if (w->done) w->done(w->ctx, w->group_id, w->arg, w->rc, w->version);
    write_free(w);
}

static void write_cb(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)failed;
    ps_write *w = ctx;
    w->rc = rc;
    if (!rc && n) w->version = res[0].last_version;
    /* The completion must run on the loop (NET-1). Out of memory, retry for
     * a while; then give it up: the append itself stands, the group finds
     * out on its next read (a checkpoint or park is then written again). */
    for (int i = 0; i < 100; i++) {
        if (rpc_to_loop(w->ctx, write_done_loop, w) == 0) return;
        usleep(1000);
    }
}

static int write_start(rpc_submit *sb)
{
    ps_write *w = (ps_write *)((char *)sb - offsetof(ps_write, sub));
    return rpc_append_async(w->ctx, &w->req, 1, write_cb, w);
}

/* The store refused a write that waited for room (RPC-5): done hears it. */
static void write_failed(rpc_submit *sb, int rc)
{
    ps_write *w = (ps_write *)((char *)sb - offsetof(ps_write, sub));
    if (w->done) w->done(w->ctx, w->group_id, w->arg, rc, 0);
    write_free(w);
}

/* Append one event (data/meta copied) and call done on the loop (or, when
 * the store's queue is full, once it has room: RPC-5). */
int rpc_ps_append(rpc_ctx *ctx, uint64_t gid, const char *stream, const char *type, const void *data,
                  size_t dl, int json, const char *meta, ps_done_fn done, void *arg)
{
    ps_write *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->ctx = ctx;
    w->group_id = gid;
    w->done = done;
    w->arg = arg;
    w->stream = strdup(stream);
    w->type = strdup(type);
    if (!w->stream || !w->type || base_buf_append(&w->data, data, dl) ||
        (meta && base_buf_append(&w->meta, meta, strlen(meta)))) {
        free(w->stream);
        free(w->type);
        base_buf_free(&w->data);
        base_buf_free(&w->meta);
        free(w);
        return -ENOMEM;
    }
    w->ev.type = w->type;
    w->ev.flags = json ? FACTUM_EVENT_JSON | (meta ? FACTUM_EVENT_META_JSON : 0) : 0;
    w->ev.data = w->data.data;
    w->ev.data_len = w->data.len;
    w->ev.metadata = meta ? w->meta.data : NULL;
    w->ev.metadata_len = meta ? w->meta.len : 0;
    w->req.stream = w->stream;
    w->req.expected = FACTUM_ANY;
    w->req.events = &w->ev;
    w->req.n_events = 1;
    /* done never runs before this returns: when the store's queue is full
     * (or others wait for it), the write waits in line (RPC-5). */
    w->sub = (rpc_submit){NULL, NULL, write_start, write_failed};
    int rc = ctx->parked ? -EAGAIN : rpc_append_async(ctx, &w->req, 1, write_cb, w);
    if (rc == 0) {
        ctx->inflight++;
    } else if (rc == -EAGAIN) {
        rpc_submit_wait(ctx, &w->sub);
        rc = 0;
    } else {
        write_free(w);
    }
    return rc;
}

ps_group *rpc_ps_group_by_id(rpc_ctx *ctx, uint64_t id)
{
    if (ctx->ps && ctx->ps->closing) return NULL; /* the store is closing or closed: touch nothing */
    for (ps_group *g = ctx->ps ? ctx->ps->groups : NULL; g; g = g->next)
        if (g->id == id) return g;
    return NULL;
}

ps_group *rpc_ps_group_find(rpc_ctx *ctx, const char *stream, const char *name)
{
    for (ps_group *g = ctx->ps ? ctx->ps->groups : NULL; g; g = g->next)
        if (!strcmp(g->name, name) && ((!stream && !g->stream) || (stream && g->stream && !strcmp(stream, g->stream))))
            return g;
    return NULL;
}


/* ---- lanes and queues ----------------------------------------------------- */

static void q_push(ps_queue *q, ps_msg *m)
{
    m->qnext = NULL;
    if (q->tail) q->tail->qnext = m;
    else q->head = m;
    q->tail = m;
    q->n++;
}

static void q_push_front(ps_queue *q, ps_msg *m)
{
    m->qnext = q->head;
    q->head = m;
    if (!q->tail) q->tail = m;
    q->n++;
}

static ps_msg *q_pop(ps_queue *q)
{
    ps_msg *m = q->head;
    if (!m) return NULL;
    q->head = m->qnext;
    if (!q->head) q->tail = NULL;
    q->n--;
    m->qnext = NULL;
    return m;
}

static void msg_plain_free(ps_msg *m)
{
    free(m->plain[0]);
    free(m->plain[1]);
    m->plain[0] = m->plain[1] = NULL;
}

static ps_msg *lane_slot(ps_lane *l, size_t i)
{
    return &l->ring[(l->head + i) % l->cap];
}

static ps_msg *lane_push(ps_lane *l)
{
    if (l->n == l->cap) return NULL;
    ps_msg *m = lane_slot(l, l->n++);
    memset(m, 0, sizeof *m);
    return m;
}

/* PS-1: pop the done messages at the front. */
static void lane_advance(ps_lane *l)
{
    while (l->n && l->ring[l->head].state == M_DONE) {
        l->done_pos = l->ring[l->head].pos;
        l->have_done = 1;
        l->done_since++;
        msg_plain_free(&l->ring[l->head]);
        l->ring[l->head].state = M_FREE;
        l->head = (l->head + 1) % l->cap;
        l->n--;
    }
}

static size_t key_slot(const ps_group *g, const uint8_t key[16])
{
    uint64_t h;
    memcpy(&h, key, 8);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32)) & g->inflight_mask;
}

static void hash_add(ps_group *g, ps_msg *m)
{
    size_t i = key_slot(g, m->key);
    m->hnext = g->inflight[i];
    g->inflight[i] = m;
    m->in_hash = 1;
}

static void hash_del(ps_group *g, ps_msg *m)
{
    if (!m->in_hash) return;
    for (ps_msg **p = &g->inflight[key_slot(g, m->key)]; *p; p = &(*p)->hnext)
        if (*p == m) {
            *p = m->hnext;
            break;
        }
    m->hnext = NULL;
    m->in_hash = 0;
}

static void maybe_checkpoint(ps_group *g, int timer);
static void maybe_truncate_parked(ps_group *g);

static void msg_done(ps_group *g, ps_msg *m)
{
    hash_del(g, m);
    m->state = M_DONE;
    m->owner = NULL;
    lane_advance(&g->lane[m->lane]);
    if (m->lane == 0) maybe_checkpoint(g, 0);
    else maybe_truncate_parked(g);
}

/* ---- parking (PS-4) ------------------------------------------------------- */

static void parked(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    ps_msg *m = arg;
    ps_group *g = rpc_ps_group_by_id(ctx, gid);
    if (!g) return; /* PS-6 */
    if (rc) {
        /* Not parked: deliver it again later. */
        m->state = M_QUEUED;
        q_push(&g->retry_q, m);
    } else {
        if (version + 1 > g->parked_next) g->parked_next = version + 1;
        msg_done(g, m);
    }
    rpc_ps_group_pump(g);
}

/* RPC-8: m's events as stored now, if a scavenge swapped a segment in since
 * they were read. 0, FACTUM_ENOTFOUND (the scavenge removed one of them),
 * or a store error. */
static int msg_refresh(ps_group *g, ps_msg *m)
{
    uint64_t e = factum_store_epoch(g->ctx->store);
    if (e == m->epoch) return 0;
    factum_event ev = m->ev, link = m->link;
    factum_reader *prev = rpc_reader_enter(g->ctx, &g->ctx->rdr, 1); /* copied below */
    int rc = rpc_refresh_event(g->ctx, &ev);
    if (!rc && m->has_link) rc = rpc_refresh_event(g->ctx, &link);
    if (!rc) {
        msg_plain_free(m); /* a shred: the old plaintext goes */
        if (rpc_event_own(&ev, &m->plain[0])) rpc_event_seal_again(&ev);
        if (m->has_link && rpc_event_own(&link, &m->plain[1])) rpc_event_seal_again(&link);
    }
    rpc_reader_leave(prev);
    if (rc) return rc;
    m->ev = ev;
    if (m->has_link) m->link = link;
    m->epoch = e;
    return 0;
}

static void park(ps_group *g, ps_msg *m, const char *reason)
{
    hash_del(g, m);
    int fr = msg_refresh(g, m);
    if (fr == FACTUM_ENOTFOUND) { /* a scavenge removed it: nothing to park */
        msg_done(g, m);
        return;
    }
    if (fr) { /* try again with the next retry */
        m->state = M_QUEUED;
        m->owner = NULL;
        q_push(&g->retry_q, m);
        return;
    }
    const factum_event *orig = m->has_link ? &m->link : &m->ev;
    char data[FACTUM_MAX_STREAM_LEN + 32];
    int dl = snprintf(data, sizeof data, "%" PRIu64 "@%.*s", orig->version, (int)orig->stream_len, orig->stream);
    base_buf meta = {0};
    int rc = base_buf_append(&meta, "{\"reason\":", 10);
    if (!rc) rc = json_write_string(&meta, reason, strlen(reason));
    if (!rc) rc = base_buf_printf(&meta, ",\"retryCount\":%d}", m->retry);
    if (!rc) rc = base_buf_append(&meta, "", 1); /* NUL */
    char *ps = sys_stream(g, "-parked");
    m->state = M_PARKING;
    m->owner = NULL;
    if (rc || !ps ||
        rpc_ps_append(g->ctx, g->id, ps, FACTUM_LINK_TYPE, data, (size_t)dl, 0, (const char *)meta.data, parked,
                      m)) {
        m->state = M_QUEUED; /* try again with the next retry */
        q_push(&g->retry_q, m);
    }
    free(ps);
    base_buf_free(&meta);
}

/* PS-3: a message comes back (timeout, nack retry, or its owner left). */
static void requeue(ps_group *g, ps_msg *m, int count_retry, const char *why)
{
    hash_del(g, m);
    if (m->owner) {
        m->owner->inflight--;
        m->owner = NULL;
    }
    if (count_retry) {
        if (m->retry >= g->set.max_retry_count) {
            park(g, m, why);
            return;
        }
        m->retry++;
    }
    m->state = M_QUEUED;
    q_push(&g->retry_q, m);
}

/* ---- checkpoints (PS-2) and the parked stream's $tb ----------------------- */

static void ckpt_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)version;
    uint64_t pos = *(uint64_t *)arg;
    free(arg);
    ps_group *g = rpc_ps_group_by_id(ctx, gid);
    if (!g) return;
    g->ckpt_writing = 0;
    if (!rc) {
        g->last_ckpt = pos;
        g->have_ckpt = 1;
    }
    maybe_checkpoint(g, 0);
}

static void ckpt_meta_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)arg;
    (void)version;
    ps_group *g = rpc_ps_group_by_id(ctx, gid);
    if (g && rc) g->ckpt_meta = 0; /* try again with the next checkpoint */
}

static void maybe_checkpoint(ps_group *g, int timer)
{
    ps_lane *l = &g->lane[0];
    if (g->ckpt_writing || !l->have_done || (g->have_ckpt && l->done_pos == g->last_ckpt)) return;
    uint64_t now = mono_now();
    int due = l->done_since >= (uint64_t)g->set.max_checkpoint_count ||
              (timer && now - g->ckpt_time >= (uint64_t)g->set.checkpoint_after_ms * 1000000u &&
               l->done_since >= (uint64_t)g->set.min_checkpoint_count);
    if (!due) return;
    char data[64];
    int dl = g->stream ? snprintf(data, sizeof data, "%" PRIu64, l->done_pos)
                       : snprintf(data, sizeof data, "\"C:%" PRIu64 "/P:%" PRIu64 "\"", l->done_pos, l->done_pos);
    char *cs = sys_stream(g, "-checkpoint");
    uint64_t *pos = malloc(sizeof *pos);
    if (!cs || !pos) {
        free(cs);
        free(pos);
        return;
    }
    *pos = l->done_pos;
    if (!g->ckpt_meta) {
        /* Only the last checkpoint is ever read: $maxCount 1, as KurrentDB
         * sets it, so that a scavenge gives the older ones back. Queued
         * before the checkpoint; once per group load. */
        char meta[FACTUM_MAX_STREAM_LEN + 3];
        int ml = snprintf(meta, sizeof meta, "$$%s", cs);
        static const char doc[] = "{\"$maxCount\":1}";
        if (ml > 0 && (size_t)ml < sizeof meta &&
            !rpc_ps_append(g->ctx, g->id, meta, "$metadata", doc, sizeof doc - 1, 1, NULL, ckpt_meta_written, NULL))
            g->ckpt_meta = 1;
    }
    if (rpc_ps_append(g->ctx, g->id, cs, "$SubscriptionCheckpoint", data, (size_t)dl, 1, NULL, ckpt_written,
                      pos)) {
        free(pos);
    } else {
        g->ckpt_writing = 1;
        g->ckpt_time = now;
        l->done_since = 0;
    }
    free(cs);
}

static void tb_written(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)version;
    uint64_t tb = *(uint64_t *)arg;
    free(arg);
    ps_group *g = rpc_ps_group_by_id(ctx, gid);
    if (!g) return;
    g->tb_writing = 0;
    if (!rc && tb > g->tb_written) g->tb_written = tb;
    rpc_ps_tb_sync(g, 1); /* what moved meanwhile */
}

/* Move the parked stream's $tb to parked_first (the first parked message
 * not yet finished), one write at a time and never backwards (PS-4). */
void rpc_ps_tb_sync(ps_group *g, int force)
{
    if (g->tb_writing || g->parked_first <= g->tb_written) return;
    if (!force && g->lane[1].n != 0 && g->lane[1].done_since < 100) return; /* batch while replaying */
    g->lane[1].done_since = 0;
    uint64_t tb = g->parked_first;
    char *ps = sys_stream(g, "-parked");
    char *meta = ps ? malloc(strlen(ps) + 3) : NULL;
    uint64_t *arg = malloc(sizeof *arg);
    if (!ps || !meta || !arg) goto out;
    sprintf(meta, "$$%s", ps);
    char data[64];
    int dl = snprintf(data, sizeof data, "{\"$tb\":%" PRIu64 "}", tb);
    *arg = tb;
    if (rpc_ps_append(g->ctx, g->id, meta, "$metadata", data, (size_t)dl, 1, NULL, tb_written, arg) == 0) {
        g->tb_writing = 1;
        arg = NULL;
    }
out:
    free(arg);
    free(meta);
    free(ps);
}

static void maybe_truncate_parked(ps_group *g)
{
    ps_lane *l = &g->lane[1];
    if (l->have_done && l->done_pos + 1 > g->parked_first) g->parked_first = l->done_pos + 1;
    rpc_ps_tb_sync(g, 0);
}

/* ---- reading into the lanes ------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void fill_msg(ps_group *g, ps_msg *m, const factum_event *ev, const factum_event *link, int unresolved,
                     uint64_t epoch)
{
    m->ev = *ev;
    m->epoch = epoch;
    if (link) {
        m->link = *link;
        m->has_link = 1;
    }
    /* Crypto-shredding: a message outlives the reader it was opened into
     * (it waits for its consumer's ack): it keeps a copy (freed with it,
     * bounded by the lanes' capacity). Out of memory: sent as sealed. */
    if (rpc_event_own(&m->ev, &m->plain[0])) rpc_event_seal_again(&m->ev);
    if (link && rpc_event_own(&m->link, &m->plain[1])) rpc_event_seal_again(&m->link);
    m->unresolved = unresolved;
    memcpy(m->key, link ? link->id : ev->id, 16);
    m->state = M_QUEUED;
    /* Pinned: by the event's stream; PinnedByCorrelation: by $correlationId
     * of its JSON metadata if it has one. Computed once, not per dispatch. */
    if (g->set.strategy == STRAT_PINNED || g->set.strategy == STRAT_PINNED_BY_CORRELATION) {
        m->pin = hash_bytes(ev->stream, ev->stream_len);
        if (g->set.strategy == STRAT_PINNED_BY_CORRELATION && ev->metadata_len && (ev->flags & FACTUM_EVENT_META_JSON)) {
            json_value *v;
            if (json_parse((const char *)ev->metadata, ev->metadata_len, &v) == 0) {
                const json_value *cid = json_get(v, "$correlationId");
                if (cid && cid->type == JSON_STRING) m->pin = hash_bytes(cid->str, cid->len);
                json_free(v);
            }
        }
    }
}

/* A poll of the group's cursor on the reader pool (rdjob.c): its pages
 * were not known to be in memory (RDJ-1). The job owns its items; while it
 * runs nothing else touches g->cur (RDJ-2); a group freed meanwhile hands
 * the cursor to the job, which closes it when done (RDJ-4). */
typedef struct main_job {
    auth_job job; /* first: the pool's */
    ps_group *g;  /* NULL: released */
    factum_sub *cur;
    size_t cap, n;
    int rc;
    uint64_t epoch; /* the store's, before the poll (RPC-8) */
    factum_store *store;
    rpc_ctx *ctx;
    factum_reader *rdr; /* the poll's sealed events open here; main_took copies them */
    factum_sub_item it[POLL_ITEMS];
} main_job;

/* The cursor's answer: messages into lane 0, or the group stops. 0 go on,
 * 1 stop filling now. */
static int main_took(ps_group *g, int rc, const factum_sub_item *it, size_t n, uint64_t epoch)
{
    ps_lane *l = &g->lane[0];
    if (rc) {
        /* The group stops here (GetInfo says Dropped), e.g. a filter
         * whose regular expression hit its match limits (FLT-2). */
        g->cur_error = rc;
        if (g->ctx->log_fn) {
            char line[512];
            snprintf(line, sizeof line, "consumer group %s of %s stopped reading: %s", g->name,
                     g->stream ? g->stream : "$all", factum_strerror(rc));
            g->ctx->log_fn(g->ctx->log_ctx, FACTUM_LOG_ERROR, line);
        }
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (it[i].kind != FACTUM_SUB_EVENT) continue;
        ps_msg *m = lane_push(l);
        if (!m) return 1; /* cannot happen: room was checked */
        fill_msg(g, m, &it[i].event, it[i].has_link ? &it[i].link : NULL, it[i].unresolved, epoch);
        m->lane = 0;
        m->pos = it[i].position;
        g->last_known = m->pos;
        g->have_known = 1;
        q_push(&g->new_q, m);
    }
    if (!n && !factum_sub_pending(g->cur)) return 1; /* at the head: the commit listener wakes us */
    return 0;
}

static void main_work(auth_job *aj)
{
    main_job *j = (main_job *)aj;
    factum_sub_set_nowait(j->cur, 0);
    j->n = 0;
    j->epoch = factum_store_epoch(j->store);
    factum_reader *prev = rpc_reader_enter(j->ctx, &j->rdr, 1);
    j->rc = factum_sub_poll(j->cur, j->it, j->cap, &j->n, 0);
    rpc_reader_leave(prev);
}

/* On the loop (RDJ-4). */
static void main_done(auth_job *aj)
{
    main_job *j = (main_job *)aj;
    ps_group *g = j->g;
    if (!g) {
        factum_sub_close(j->cur);
        factum_reader_free(j->rdr);
        free(j);
        return;
    }
    g->mj = NULL;
    int cancelled = rpc_rdjob_gone(g->ctx, aj);
    if (!cancelled) main_took(g, j->rc, j->it, j->n, j->epoch);
    factum_reader_free(j->rdr);
    free(j);
    if (!cancelled && !g->dying) rpc_ps_group_pump(g);
}

static void fill_main(ps_group *g)
{
    ps_lane *l = &g->lane[0];
    if (!g->cur || g->cur_error || g->mj) return;
    factum_sub_item it[POLL_ITEMS];
    /* At most 4 polls of up to GROUP_SCAN events examined (a sparse filter
     * may match none): the pump continues from the loop (RPC-2). */
    for (int rounds = 0; rounds < 4; rounds++) {
        size_t room = l->cap - l->n;
        if (room < 2) return;
        size_t cap = room + 2 < POLL_ITEMS ? room + 2 : POLL_ITEMS;
        if (cap > (size_t)g->set.read_batch_size + 2 && g->n_consumers == 0) cap = (size_t)g->set.read_batch_size + 2;
        if (cap < 4) cap = 4; /* factum_sub_poll's minimum (room >= 2 was checked: at most room events come) */
        size_t n = 0;
        int rc = -EWOULDBLOCK;
        uint64_t epoch = factum_store_epoch(g->ctx->store); /* before the poll (RPC-8) */
        if (!rpc_read_off_loop(g->ctx)) {
            factum_sub_set_nowait(g->cur, rpc_read_nowait(g->ctx) != 0);
            factum_reader *prev = rpc_reader_enter(g->ctx, &g->ctx->rdr, 1); /* main_took copies */
            rc = factum_sub_poll(g->cur, it, cap, &n, 0);
            rpc_reader_leave(prev); /* not reset until main_took copied the items */
        }
        if (rc == -EWOULDBLOCK) { /* pages not known in memory: the reader pool polls (RDJ-1) */
            main_job *j = calloc(1, sizeof *j);
            if (!j) return; /* the tick pumps again */
            j->g = g;
            j->store = g->ctx->store;
            j->ctx = g->ctx;
            j->cur = g->cur;
            j->cap = cap;
            j->job.work = main_work;
            j->job.done = main_done;
            g->mj = j;
            if (rpc_rdjob_submit(g->ctx, &j->job)) {
                g->mj = NULL; /* the pool is full: the tick pumps again */
                free(j);
            }
            return;
        }
        if (main_took(g, rc, it, n, epoch)) return;
    }
}

/* A page of parked messages to replay, read on the reader pool (rdjob.c;
 * always: parked messages are old, their events scattered through the
 * log, RDJ-1) or, with --cold-reads never, on the loop. The job owns
 * what it reads (the parked stream's name, the page, the events the links
 * lead to: pointers into the mapped log); the group only points at it and
 * lets go of it when it is freed (then the job frees itself when done,
 * RDJ-4). */
typedef struct parked_item {
    factum_event link;   /* the entry of the parked stream */
    int gone;            /* the parked event is gone: nothing to replay */
    int linked, resolved; /* resolve_links: orig is a link; it led to target */
    factum_event orig, target;
} parked_item;

typedef struct parked_job {
    auth_job job; /* first: the pool's */
    ps_group *g;  /* NULL: released */
    factum_store *store;
    char *ps;
    uint64_t from, end;
    size_t want, n;
    int resolve_links, running, rc;
    uint64_t nx;
    uint64_t epoch; /* the store's, before the read (RPC-8) */
    rpc_ctx *ctx;
    factum_reader *rdr; /* the page's sealed events open here; parked_apply copies them */
    parked_item it[64];
} parked_job;

static void parked_read(parked_job *j)
{
    factum_event page[64];
    j->n = 0;
    j->epoch = factum_store_epoch(j->store);
    factum_reader *prev = rpc_reader_enter(j->ctx, &j->rdr, 1);
    j->rc = factum_read_stream(j->store, j->ps, j->from, FACTUM_FORWARD, page, j->want, &j->n, &j->nx);
    if (j->rc) j->n = 0;
    for (size_t i = 0; i < j->n; i++) {
        parked_item *x = &j->it[i];
        memset(x, 0, sizeof *x);
        x->link = page[i];
        if (page[i].version >= j->end) {
            j->n = i + 1;
            break;
        }
        if (factum_resolve_link(j->store, &page[i], &x->orig)) {
            x->gone = 1;
            continue;
        }
        x->linked = j->resolve_links && x->orig.type_len == 2 && !memcmp(x->orig.type, FACTUM_LINK_TYPE, 2);
        if (x->linked && factum_resolve_link(j->store, &x->orig, &x->target) == 0) x->resolved = 1;
    }
    rpc_reader_leave(prev);
}

static void parked_job_free(parked_job *j)
{
    factum_reader_free(j->rdr);
    free(j->ps);
    free(j);
}

/* Turn the page j read into lane 1's messages (PS-4). */
static void parked_apply(ps_group *g, parked_job *j)
{
    ps_lane *l = &g->lane[1];
    if (g->replay_next != j->from) return; /* moved meanwhile (a truncation): read again from there */
    if (j->rc || !j->n) {
        g->replay_next = g->replay_end;
        return;
    }
    for (size_t i = 0; i < j->n && g->replay_next < g->replay_end; i++) {
        parked_item *x = &j->it[i];
        g->replay_next = x->link.version + 1;
        if (x->link.version >= g->replay_end) {
            g->replay_next = g->replay_end;
            break;
        }
        ps_msg *m = lane_push(l);
        if (!m) break;
        m->lane = 1;
        m->pos = x->link.version;
        if (x->gone) {
            m->state = M_DONE;
            continue;
        }
        if (x->resolved) fill_msg(g, m, &x->target, &x->orig, 0, j->epoch);
        else fill_msg(g, m, &x->orig, NULL, x->linked, j->epoch);
        q_push(&g->retry_q, m);
    }
    if (j->nx == FACTUM_END) g->replay_next = g->replay_end;
}

static void parked_work(auth_job *aj)
{
    parked_read((parked_job *)aj);
}

/* On the loop (RDJ-4). */
static void parked_done(auth_job *aj)
{
    parked_job *j = (parked_job *)aj;
    j->running = 0;
    ps_group *g = j->g;
    if (!g) {
        parked_job_free(j);
        return;
    }
    int cancelled = rpc_rdjob_gone(g->ctx, aj);
    if (!cancelled) {
        parked_apply(g, j);
        lane_advance(&g->lane[1]);
        maybe_truncate_parked(g);
    }
    g->pj = NULL;
    parked_job_free(j);
    if (!cancelled && !g->dying) rpc_ps_group_pump(g);
}

static void parked_release(ps_group *g)
{
    parked_job *j = g->pj;
    g->pj = NULL;
    if (!j) return;
    if (j->running) j->g = NULL; /* parked_done frees it */
    else parked_job_free(j);
}

/* Read replayed parked messages into lane 1 (PS-4): a page at a time, on
 * the reader pool (RDJ-1). */
static void fill_parked(ps_group *g)
{
    ps_lane *l = &g->lane[1];
    if (g->pj || g->replay_next >= g->replay_end || l->cap - l->n == 0) return;
    parked_job *j = calloc(1, sizeof *j);
    if (!j || !(j->ps = sys_stream(g, "-parked"))) {
        free(j);
        return; /* the tick pumps again */
    }
    j->g = g;
    j->store = g->ctx->store;
    j->ctx = g->ctx;
    j->from = g->replay_next;
    j->end = g->replay_end;
    j->want = l->cap - l->n < 64 ? l->cap - l->n : 64;
    j->resolve_links = g->set.resolve_links;
    if (g->ctx->cold_reads == RPC_COLD_NEVER) {
        /* As before the pool: on the loop, page after page while there is room. */
        while (g->replay_next < g->replay_end && l->cap - l->n > 0) {
            j->from = g->replay_next;
            j->want = l->cap - l->n < 64 ? l->cap - l->n : 64;
            parked_read(j);
            parked_apply(g, j);
            if (!j->n || j->rc) break;
        }
        lane_advance(l);
        maybe_truncate_parked(g);
        parked_job_free(j);
        return;
    }
    j->job.work = parked_work;
    j->job.done = parked_done;
    j->running = 1;
    g->pj = j;
    if (rpc_rdjob_submit(g->ctx, &j->job)) {
        g->pj = NULL; /* the pool is full: the tick pumps again */
        parked_job_free(j);
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

static int available(const ps_consumer *k)
{
    return !k->blocked && k->inflight < k->buffer_size && !net_call_done(k->c);
}

/* The consumer a message goes to, or NULL if none can take it now. */
static ps_consumer *choose(ps_group *g, const ps_msg *m)
{
    if (!g->n_consumers) return NULL;
    if (g->set.strategy == STRAT_PINNED || g->set.strategy == STRAT_PINNED_BY_CORRELATION) {
        size_t want = (size_t)(m->pin % g->n_consumers), i = 0;
        for (ps_consumer *k = g->consumers; k; k = k->next, i++)
            if (i == want) return available(k) ? k : NULL;
        return NULL;
    }
    if (g->set.strategy == STRAT_DISPATCH_TO_SINGLE) {
        for (ps_consumer *k = g->consumers; k; k = k->next)
            if (available(k)) return k;
        return NULL;
    }
    /* RoundRobin: the next available one after the last used. */
    for (size_t t = 0; t < g->n_consumers; t++) {
        size_t want = (g->rr + t) % g->n_consumers, i = 0;
        for (ps_consumer *k = g->consumers; k; k = k->next, i++) {
            if (i != want) continue;
            if (available(k)) {
                g->rr = want + 1;
                return k;
            }
            break;
        }
    }
    return NULL;
}

static void group_ready(void *owner, rpc_upjob *j)
{
    ps_group *g = owner;
    (void)j;
    if (!g->dying) rpc_ps_group_pump(g);
}

/* m (taken from queue q) needs a script upcaster: hand it and the next
 * messages of q that do to a job (UPJ-1). 1 (wait for group_ready), or -1
 * (k's call was failed). */
static int group_hand_off(ps_group *g, ps_consumer *k, ps_msg *m, ps_queue *q)
{
    const factum_event *ptr[64];
    size_t n = 0;
    for (ps_msg *x = m; x && n < 64; x = x == m ? q->head : x->qnext)
        if (!x->unresolved && !msg_refresh(g, x) && rpc_upcast_needs_job(g->ctx, &x->ev, 0)) ptr[n++] = &x->ev;
    rpc_upjob_release(g->upj);
    g->upj = NULL;
    int rc = n ? rpc_upjob_start(g->ctx, ptr, n, g, group_ready, &g->upj) : -EINVAL;
    if (rc) {
        if (rc == -EINVAL) rpc_fail(k->c, GRPC_INTERNAL, "upcasting: nothing to hand off", NULL, NULL);
        else rpc_upjob_refused(k->c, rc);
        return -1;
    }
    return 1;
}

/* Send m (taken from q) to k: 0, -EAGAIN (k's queue is full), 1 (m is
 * upcast off the loop first: group_ready pumps again), -1 (k is gone). */
static int send_msg(ps_group *g, ps_consumer *k, ps_msg *m, ps_queue *q)
{
    rpc_ctx *ctx = g->ctx;
    rpc_event_msg em;
    rpc_event_init(&em);
    factum_event up;
    int gone = m->has_link && !rpc_may_read_link_target(ctx, k->c, &m->ev);
    /* A failing upcast ends k's call with a message naming the event; the
     * message stays first in the queue (never skipped, UPC-5). */
    if (!gone && !m->unresolved) {
        int u = rpc_upcast(ctx, k->c, &m->ev, &up, k->raw, g->upj);
        if (u == 1) return group_hand_off(g, k, m, q);
        if (u) return -1;
    }
    if (gone)
        rpc_event_fill_resolved(&em, NULL, &m->link, k->uuid_string); /* as a link gone (RPC-6) */
    else if (m->has_link) rpc_event_fill_resolved(&em, &up, &m->link, k->uuid_string);
    else if (m->unresolved) rpc_event_fill_resolved(&em, NULL, &m->ev, k->uuid_string);
    else rpc_event_fill(&em, &up, k->uuid_string);
    /* The persistent ReadResp.ReadEvent is the streams one plus
     * retry_count (field 5): pack that, add the field, wrap it as field 1. */
    base_buf *b = &ctx->ps->pack;
    size_t inner = rpc_wire_read_event_size(&em.re); /* WIRE-4 */
    b->len = 0;
    uint8_t hdr[16];
    size_t extra = 1, v = (size_t)(uint32_t)m->retry;
    do extra++; while (v >>= 7);
    size_t total = inner + extra, hl = 0;
    hdr[hl++] = 0x0a; /* field 1, length-delimited */
    for (size_t t = total; ; t >>= 7) {
        hdr[hl++] = (uint8_t)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
        if (t < 0x80) break;
    }
    if (base_buf_reserve(b, hl + total)) return -1;
    memcpy(b->data, hdr, hl);
    rpc_wire_read_event_pack(&em.re, b->data + hl);
    size_t o = hl + inner;
    b->data[o++] = 0x28; /* field 5, varint */
    for (uint64_t t = (uint32_t)m->retry; ; t >>= 7) {
        b->data[o++] = (uint8_t)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
        if (t < 0x80) break;
    }
    int rc = net_call_send(k->c, b->data, o);
    if (rc == -EAGAIN) return rc;
    return rc ? -1 : 0;
}

static void dispatch(ps_group *g)
{
    if (rpc_upjob_running(g->upj)) return; /* group_ready pumps again, in order */
    uint64_t now = mono_now();
    for (;;) {
        ps_queue *q = g->retry_q.head ? &g->retry_q : &g->new_q;
        ps_msg *m = q->head;
        if (!m) return;
        int fr = msg_refresh(g, m); /* RPC-8 */
        if (fr == FACTUM_ENOTFOUND) { /* a scavenge removed its event: nothing to deliver */
            q_pop(q);
            msg_done(g, m);
            continue;
        }
        if (fr) return; /* a store error: the next pump tries again */
        ps_consumer *k = choose(g, m);
        if (!k) return;
        q_pop(q);
        int rc = send_msg(g, k, m, q);
        if (rc) {
            q_push_front(q, m);
            if (rc == 1) return;
            if (rc == -EAGAIN) {
                k->blocked = 1;
                net_call_want_writable(k->c);
            } else if (!net_call_done(k->c)) {
                /* The send failed on a live call (out of memory): end it;
                 * its messages go to the others. */
                rpc_ps_consumer_drop(k, GRPC_RESOURCE_EXHAUSTED, "out of memory", NULL);
                return;
            } else {
                k->blocked = 1; /* gone: on_close drops it */
            }
            continue; /* choose skips k now */
        }
        m->state = M_INFLIGHT;
        m->owner = k;
        m->sent_ns = now;
        m->deadline = now + (uint64_t)g->set.message_timeout_ms * 1000000u;
        hash_add(g, m);
        k->inflight++;
        k->total++;
        g->total_items++;
    }
}

typedef struct pump_later {
    rpc_ctx *ctx;
    uint64_t id;
} pump_later;

static void pump_continue(void *arg)
{
    pump_later *p = arg;
    ps_group *g = rpc_ps_group_by_id(p->ctx, p->id);
    free(p);
    if (!g || g->dying) return;
    g->pump_posted = 0;
    rpc_ps_group_pump(g);
}

void rpc_ps_group_pump(ps_group *g)
{
    for (int i = 0; i < 4; i++) {
        fill_parked(g);
        fill_main(g);
        size_t before = g->retry_q.n + g->new_q.n;
        dispatch(g);
        lane_advance(&g->lane[0]);
        lane_advance(&g->lane[1]);
        if (g->retry_q.n + g->new_q.n == before) break; /* nothing more went out */
    }
    /* The scan budget ran out far from the head with room in the lane: go
     * on after the other clients had their turn (RPC-2). */
    if (g->cur && !g->cur_error && !g->mj && !g->pump_posted && g->lane[0].cap - g->lane[0].n >= 2 &&
        factum_sub_pending(g->cur)) {
        pump_later *p = malloc(sizeof *p);
        if (!p) return; /* the tick pumps again */
        *p = (pump_later){g->ctx, g->id};
        if (net_defer(g->ctx->net, pump_continue, p)) {
            free(p);
            return;
        }
        g->pump_posted = 1;
    }
}

/* ---- groups ------------------------------------------------------------------ */

static int open_cursor(ps_group *g)
{
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.stream = g->stream;
    so.resolve_links = g->set.resolve_links;
    so.live_lag = UINT64_MAX / 2; /* a group never "falls behind": it reads at its own pace */
    so.max_scan = GROUP_SCAN;
    so.filter = g->filter;
    if (g->have_ckpt) {
        so.from = FACTUM_SUB_AFTER;
        so.after = g->last_ckpt;
    } else if (g->set.start == ST_START || (g->set.start == ST_AT && g->set.start_at == 0)) {
        so.from = FACTUM_SUB_START;
    } else if (g->set.start == ST_END) {
        so.from = FACTUM_SUB_END;
    } else {
        so.from = FACTUM_SUB_AFTER; /* the start is inclusive */
        so.after = g->set.start_at - 1;
    }
    return factum_sub_open(g->ctx->store, &so, &g->cur);
}

void rpc_ps_group_free(ps_group *g)
{
    g->dying = 1;
    rpc_upjob_release(g->upj);
    g->upj = NULL;
    parked_release(g);
    if (g->mj) { /* a reader thread polls the cursor: it closes it when done (RDJ-4) */
        g->mj->g = NULL;
        g->mj = NULL;
        g->cur = NULL;
    }
    while (g->consumers)
        rpc_ps_consumer_drop(g->consumers, -1, NULL, NULL);
    factum_sub_close(g->cur);
    factum_filter_free(g->filter);
    /* Only the messages in a lane can hold plaintext (a pop frees it): a
     * lane sized for a million messages but never filled is not walked
     * (its pages were never touched). */
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; g->lane[k].ring && i < g->lane[k].n; i++)
            msg_plain_free(lane_slot(&g->lane[k], i));
    free(g->lane[0].ring);
    free(g->lane[1].ring);
    free(g->inflight);
    rpc_ps_settings_free(&g->set);
    free(g->stream);
    free(g->name);
    free(g);
}

/* Load the group's durable state: its checkpoint and parked range. */
static void group_load_state(ps_group *g)
{
    char *cs = sys_stream(g, "-checkpoint"), *ps = sys_stream(g, "-parked");
    factum_event ev;
    size_t n = 0;
    if (cs && factum_read_stream(g->ctx->store, cs, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL) == 0 && n) {
        char buf[64];
        size_t l = ev.data_len < sizeof buf - 1 ? ev.data_len : sizeof buf - 1;
        memcpy(buf, ev.data, l);
        buf[l] = 0;
        unsigned long long v;
        if (sscanf(buf, "\"C:%llu/P:", &v) == 1 || sscanf(buf, "%llu", &v) == 1) {
            g->last_ckpt = v;
            g->have_ckpt = 1;
        }
    }
    factum_stream_info info;
    if (ps && factum_stream_get_info(g->ctx->store, ps, &info) == 0 && info.last_version >= 0 &&
        info.status == FACTUM_STREAM_LIVE) {
        g->parked_next = (uint64_t)info.last_version + 1;
        n = 0;
        if (factum_read_stream(g->ctx->store, ps, 0, FACTUM_FORWARD, &ev, 1, &n, NULL) == 0 && n)
            g->parked_first = ev.version;
        else
            g->parked_first = g->parked_next;
        g->tb_written = g->parked_first;
    }
    free(cs);
    free(ps);
}

/* A new group object from settings (taken over). Returns NULL on OOM or
 * a bad filter (the settings are then freed). */
ps_group *rpc_ps_group_new(rpc_ctx *ctx, char *stream, const char *name, ps_settings *set, int *err)
{
    ps_group *g = calloc(1, sizeof *g);
    *err = -ENOMEM;
    if (!g) goto fail;
    g->ctx = ctx;
    g->id = ++ctx->ps->next_id;
    g->stream = stream;
    stream = NULL;
    g->set = *set;
    memset(set, 0, sizeof *set);
    if (!(g->name = strdup(name))) goto fail_g;
    if (g->set.has_filter) {
        int rc = factum_filter_new(g->set.filter_on, (const char *const *)g->set.filter_prefixes,
                                   g->set.n_filter_prefixes, g->set.filter_regex, 0, &g->filter);
        if (rc) {
            *err = rc;
            goto fail_g;
        }
    }
    g->lane[0].cap = (size_t)g->set.history_buffer_size + (size_t)g->set.live_buffer_size;
    g->lane[1].cap = (size_t)g->set.history_buffer_size;
    size_t slots = 16;
    while (slots < 2 * (g->lane[0].cap + g->lane[1].cap)) slots <<= 1;
    g->inflight_mask = slots - 1;
    if (!(g->lane[0].ring = calloc(g->lane[0].cap, sizeof(ps_msg))) ||
        !(g->lane[1].ring = calloc(g->lane[1].cap, sizeof(ps_msg))) || !(g->inflight = calloc(slots, sizeof(ps_msg *))))
        goto fail_g;
    g->ckpt_time = g->measure_time = mono_now();
    group_load_state(g);
    int rc = open_cursor(g);
    if (rc && rc != FACTUM_EDELETED) {
        *err = rc;
        goto fail_g;
    }
    if (rc) g->cur_error = rc;
    *err = 0;
    return g;
fail_g:
    rpc_ps_group_free(g);
    return NULL;
fail:
    free(stream);
    rpc_ps_settings_free(set);
    return NULL;
}

void rpc_ps_group_link(rpc_ctx *ctx, ps_group *g)
{
    g->next = ctx->ps->groups;
    ctx->ps->groups = g;
}

void rpc_ps_group_unlink(rpc_ctx *ctx, ps_group *g)
{
    for (ps_group **p = &ctx->ps->groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            return;
        }
}

/* Rebuild a group from its durable state (Update, RestartSubsystem): its
 * consumers are dropped and reconnect; in-flight work is redelivered. The
 * new group is built first: if that fails, the old one stays as it was and
 * NULL is returned (set, if given, is freed). */
ps_group *rpc_ps_group_rebuild(rpc_ctx *ctx, ps_group *old, ps_settings *set, int *err)
{
    *err = -ENOMEM;
    char *stream = old->stream ? strdup(old->stream) : NULL;
    ps_settings copy;
    if (!set) {
        /* the same settings: copy them (the filter strings too) */
        copy = old->set;
        rpc_ps_settings_copy_filter(&copy, &old->set);
        set = &copy;
    }
    if (old->stream && !stream) {
        rpc_ps_settings_free(set);
        return NULL;
    }
    ps_group *g = rpc_ps_group_new(ctx, stream, old->name, set, err); /* takes stream and set */
    if (!g) return NULL;
    while (old->consumers)
        rpc_ps_consumer_drop(old->consumers, GRPC_CANCELLED, "The persistent subscription was restarted.",
                      "persistent-subscription-dropped");
    rpc_ps_group_unlink(ctx, old);
    rpc_ps_group_free(old);
    rpc_ps_group_link(ctx, g);
    return g;
}


/* ---- consumers ---------------------------------------------------------------- */

static void consumer_unlink(ps_consumer *k)
{
    ps_group *g = k->g;
    for (ps_consumer **p = &g->consumers; *p; p = &(*p)->next)
        if (*p == k) {
            *p = k->next;
            g->n_consumers--;
            break;
        }
    /* Its messages in flight go to the others (PS-3), oldest first. */
    for (int ln = 0; ln < 2; ln++) {
        ps_lane *l = &g->lane[ln];
        for (size_t i = l->n; i-- > 0;) {
            ps_msg *m = lane_slot(l, i);
            if (m->state == M_INFLIGHT && m->owner == k) {
                hash_del(g, m);
                m->owner = NULL;
                m->state = M_QUEUED;
                q_push_front(&g->retry_q, m);
            }
        }
    }
    k->g = NULL;
}

/* Detach a consumer from its group and end its call (code < 0: the call is
 * already over). */
void rpc_ps_consumer_drop(ps_consumer *k, int code, const char *msg, const char *exc)
{
    ps_group *g = k->g;
    net_call *c = k->c;
    if (g) {
        consumer_unlink(k);
        if (code >= 0 && !net_call_done(c))
            rpc_fail(c, code, msg, exc, "stream-name", rpc_ps_src_name(g), "group-name", g->name, NULL);
    }
    ps_call *pc = net_call_state(c);
    if (pc) pc->k = NULL;
    free(k);
    if (g && !g->dying) rpc_ps_group_pump(g);
}

void rpc_ps_ack(ps_group *g, ps_consumer *k, EventStore__Client__UUID **ids, size_t n, int action,
                const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t id[16];
        if (rpc_uuid_from(ids[i], id)) continue;
        ps_msg *found = NULL;
        for (ps_msg *m = g->inflight[key_slot(g, id)]; m; m = m->hnext) {
            if (memcmp(m->key, id, 16)) continue;
            if (m->owner == k) {
                found = m;
                break;
            }
            if (!found) found = m; /* the same id sent to another: an ack is an ack */
        }
        if (!found) continue; /* already done, or timed out and given to another */
        ps_msg *m = found;
        if (action < 0) { /* ack */
            if (m->owner) {
                m->owner->inflight--;
                if (g->set.extra_statistics) {
                    uint64_t dt = mono_now() - m->sent_ns;
                    m->owner->acked++;
                    m->owner->ack_ns_sum += dt;
                    if (dt > m->owner->ack_ns_max) m->owner->ack_ns_max = dt;
                }
            }
            msg_done(g, m);
            continue;
        }
        switch (action) {
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Park: {
            if (m->owner) m->owner->inflight--;
            char why[600];
            snprintf(why, sizeof why, "Client explicitly NAK'ed message.\n%s", reason ? reason : "");
            park(g, m, why);
            break;
        }
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Skip:
            if (m->owner) m->owner->inflight--;
            msg_done(g, m);
            break;
        case EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Stop:
            requeue(g, m, 0, "stopped");
            break;
        default: /* Retry, Unknown */
            requeue(g, m, 1, "Max retry count exceeded.");
        }
    }
}

/* ---- the loop's hooks ------------------------------------------------------------- */

void rpc_ps_close(rpc_ctx *ctx)
{
    if (ctx->ps) ctx->ps->closing = 1;
}

/* RPC-6 for consumers: one whose group's stream (or `$all`) ACL or
 * `$settings` moved is checked again, and dropped with PERMISSION_DENIED
 * when it may no longer read (its messages in flight go back to the
 * group, as for any consumer that leaves). */
static void recheck_consumers(ps_group *g)
{
    const char *name = g->stream ? g->stream : "$all";
    ps_consumer *k = g->consumers;
    while (k) {
        ps_consumer *next = k->next;
        if (k->authz) {
            const auth_principal *as = rpc_principal(k->c); /* PRINCIPAL-1 */
            int moved = as != k->as || as->revoked, r;
            k->as = as;
            if ((auth_stamp_changed(g->ctx->authz, name, &k->stamp) || moved) &&
                (r = rpc_check_stream(g->ctx, k->c, name, AUTH_READ)) != AUTH_OK) {
                if (r == AUTH_UNAUTHENTICATED)
                    rpc_ps_consumer_drop(k, GRPC_UNAUTHENTICATED, "Authentication required.", NULL);
                else
                    rpc_ps_consumer_drop(k, GRPC_PERMISSION_DENIED, "Access Denied", "access-denied");
            }
        }
        k = next;
    }
}

void rpc_ps_on_commit(rpc_ctx *ctx)
{
    if (!ctx->ps || ctx->ps->closing) return;
    for (ps_group *g = ctx->ps->groups; g; g = g->next) {
        if (g->n_consumers && ctx->authz) recheck_consumers(g);
        if (g->n_consumers) rpc_ps_group_pump(g);
    }
}

void rpc_ps_tick(rpc_ctx *ctx)
{
    if (!ctx->ps || ctx->ps->closing) return;
    uint64_t now = mono_now();
    for (ps_group *g = ctx->ps->groups; g; g = g->next) {
        /* PS-3: message timeouts. */
        int any = 0;
        for (int ln = 0; ln < 2; ln++) {
            ps_lane *l = &g->lane[ln];
            for (size_t i = 0; i < l->n; i++) {
                ps_msg *m = lane_slot(l, i);
                if (m->state == M_INFLIGHT && m->deadline <= now) {
                    requeue(g, m, 1, "Max retry count exceeded.");
                    any = 1;
                }
            }
        }
        if (now - g->measure_time >= 1000000000u) {
            uint64_t dt = now - g->measure_time;
            g->avg_per_second = (int32_t)((g->total_items - g->items_at_measure) * 1000000000u / dt);
            g->items_at_measure = g->total_items;
            g->measure_time = now;
        }
        maybe_checkpoint(g, 1);
        if (any || g->n_consumers) rpc_ps_group_pump(g);
    }
}

void rpc_ps_free(rpc_ctx *ctx)
{
    if (!ctx->ps) return;
    while (ctx->ps->groups) {
        ps_group *g = ctx->ps->groups;
        ctx->ps->groups = g->next;
        /* Every call was closed (pread_close) before this: no consumer
         * is left, and their calls must not be touched. */
        while (g->consumers) {
            ps_consumer *k = g->consumers;
            g->consumers = k->next;
            free(k);
        }
        g->n_consumers = 0;
        rpc_ps_group_free(g);
    }
    base_buf_free(&ctx->ps->pack);
    free(ctx->ps);
    ctx->ps = NULL;
}
