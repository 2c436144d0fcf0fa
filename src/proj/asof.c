/*
 * asof.c - a JavaScript projection's state as of a global position
 * (factum_projection_state_asof, factum.h): its current definition run
 * again over the log up to the position in a scratch factum-js worker of
 * its own, from the start of the log or from a checkpoint that holds the
 * state exactly at a position before it. Nothing is appended, nothing of
 * the running projection is read or changed but its stored checkpoints.
 * docs/temporal.md and ADR 0017 say why it is done this way.
 *
 * Design note (invariants; tests/unit/proj_asof.c cites them as PAS-n):
 *  PAS-1  Exact: the events given to the handlers are those the running
 *         projection would take (prj_js_select: the same sources, links,
 *         upcasting, $deleted), in log order, up to and including the
 *         position; partition states are given back to the worker when it
 *         asks (NEED) as the replay last saw them, so the answer does not
 *         depend on what the worker keeps.
 *  PAS-2  Nothing written: the handlers' emits are dropped (an emit with
 *         emit disabled fails the replay as it faults the projection).
 *  PAS-3  A checkpoint is a starting point only when its state is exactly
 *         the current query's state at its tag (the position it stands
 *         for): a projection without partitions and without biState (the
 *         checkpoint then holds the whole state), a tag at or before the
 *         position (the checkpoint itself may be committed later), and
 *         every stored definition of its epoch committed before it has
 *         today's query (an update without a reset changes the query
 *         mid-epoch).
 *  PAS-4  Bounded: at most max_events read (refused before any work when
 *         more would be needed), time_limit_ms checked between batches of
 *         ASOF_BATCH events, partition states kept beside the worker only
 *         for biState (max_state_bytes), at most FACTUM_PROJECTION_ASOF_MAX
 *         replays per manager at once; the worker has the projection's
 *         limits (time per event, heap, state size).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "jshost/jsproc.h"
#include "proj/proj.h"
#include "proj/stage.h"

#define ASOF_BATCH       256        /* events handed to the worker at once (PAS-4) */
#define ASOF_BATCH_BYTES (8u << 20) /* their bytes, at most (one event may exceed it) */
#define ASOF_PAGE        256        /* events read from $all at once */
#define ASOF_MAX_TIME_MS 600000u

void factum_projection_asof_options_init(factum_projection_asof_options *o)
{
    memset(o, 0, sizeof *o);
    o->time_limit_ms = 30000;
    o->max_events = 10000000;
    o->max_state_bytes = 64u << 20;
    o->use_checkpoints = 1;
}

void factum_projection_asof_free(factum_projection_asof *a)
{
    if (!a) return;
    free(a->state);
    free(a->result);
    a->state = a->result = NULL;
    a->state_len = a->result_len = 0;
}

/* A partition's state kept beside the worker (biState, PAS-1). */
typedef struct kept {
    char *key;
    size_t key_len;
    char *json; /* NULL: none */
    size_t json_len;
} kept;

typedef struct replay {
    factum_store *s;
    prj_js *j;
    const prj_js_def *def;
    char *err;
    size_t err_len;
    const char *part; /* the partition asked for ("" none) */
    size_t part_len;
    int partitioned; /* foreachStream or partitionBy */
    int only_stream; /* foreachStream without biState: only the partition's stream is read */
    /* the answer so far */
    base_buf state, result, shared;
    int have_state, have_result, have_shared;
    /* biState with partitions: every partition's state (PAS-1) */
    kept *kv;
    size_t n_kv, cap_kv, kv_bytes, max_kv_bytes;
    /* staged events */
    prj_stage stage; /* stage.h */
    factum_upcast_buf *ub;
    uint64_t handled;
} replay;

static int fail(replay *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(replay *r, int rc, const char *fmt, ...)
{
    if (r->err && r->err_len && !r->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int set_buf(base_buf *b, const char *s, size_t n)
{
    b->len = 0;
    return n && base_buf_append(b, s, n) ? -ENOMEM : 0;
}

/* ---- the partition states kept for biState -------------------------------- */

static kept *kv_find(replay *r, const char *key, size_t len, int add)
{
    if (r->cap_kv) {
        size_t i = base_hash64(key, len) & (r->cap_kv - 1);
        for (; r->kv[i].key; i = (i + 1) & (r->cap_kv - 1))
            if (r->kv[i].key_len == len && !memcmp(r->kv[i].key, key, len)) return &r->kv[i];
    }
    if (!add) return NULL;
    if ((r->n_kv + 1) * 2 > r->cap_kv) {
        size_t cap = r->cap_kv ? r->cap_kv * 2 : 256;
        kept *v = calloc(cap, sizeof *v);
        if (!v) return NULL;
        for (size_t i = 0; i < r->cap_kv; i++) {
            if (!r->kv[i].key) continue;
            size_t k = base_hash64(r->kv[i].key, r->kv[i].key_len) & (cap - 1);
            while (v[k].key)
                k = (k + 1) & (cap - 1);
            v[k] = r->kv[i];
        }
        free(r->kv);
        r->kv = v;
        r->cap_kv = cap;
    }
    size_t i = base_hash64(key, len) & (r->cap_kv - 1);
    while (r->kv[i].key)
        i = (i + 1) & (r->cap_kv - 1);
    if (!(r->kv[i].key = malloc(len + 1))) return NULL;
    memcpy(r->kv[i].key, key, len);
    r->kv[i].key[len] = 0;
    r->kv[i].key_len = len;
    r->n_kv++;
    r->kv_bytes += len + sizeof(kept);
    return &r->kv[i];
}

static int kv_set(replay *r, const char *key, size_t len, const char *json, size_t json_len)
{
    kept *k = kv_find(r, key, len, 1);
    if (!k) return -ENOMEM;
    char *v = json_len ? malloc(json_len) : NULL;
    if (json_len && !v) return -ENOMEM;
    if (json_len) memcpy(v, json, json_len);
    r->kv_bytes = r->kv_bytes - k->json_len + json_len;
    free(k->json);
    k->json = v;
    k->json_len = json_len;
    if (r->kv_bytes > r->max_kv_bytes)
        return fail(r, FACTUM_ETOOBIG,
                    "the partition states of the replay passed %zu bytes (max_state_bytes)", r->max_kv_bytes);
    return 0;
}

static void kv_free(replay *r)
{
    for (size_t i = 0; i < r->cap_kv; i++) {
        free(r->kv[i].key);
        free(r->kv[i].json);
    }
    free(r->kv);
}

/* ---- staging -------------------------------------------------------------- */

/* The state the worker asks for (PAS-1). */
static int provide(replay *r, const prj_js_result *res)
{
    if (res->need_shared)
        return prj_js_load(r->j, NULL, 0, 1, r->have_shared ? (const char *)r->shared.data : NULL,
                           r->have_shared ? r->shared.len : 0);
    const char *key = res->need_partition;
    size_t len = res->need_partition_len;
    const char *json = NULL;
    size_t json_len = 0;
    if (len == r->part_len && !memcmp(key, r->part, len)) {
        if (r->have_state) json = (const char *)r->state.data, json_len = r->state.len;
    } else if (r->def->bi_state) {
        const kept *k = kv_find(r, key, len, 0);
        if (k) json = k->json, json_len = k->json_len;
    } /* else: another partition's state cannot change the answer: it starts afresh */
    return prj_js_load(r->j, key, len, 0, json_len ? json : NULL, json_len);
}

/* Hand the staged events to the worker; keep what it says of the states. */
static int handle(replay *r, int emit_enabled)
{
    if (!r->stage.n) return 0;
    const prj_js_event *jev;
    if (prj_stage_view(&r->stage, &jev)) return fail(r, -ENOMEM, "staging events for the replay");
    prj_js_result res;
    memset(&res, 0, sizeof res);
    int rc = prj_js_process(r->j, jev, r->stage.n, &res);
    while (rc == PRJ_JS_NEED) {
        if ((rc = provide(r, &res))) return fail(r, rc, "giving a partition's state to the replay's engine");
        rc = prj_js_resume(r->j, &res);
    }
    if (rc) {
        const char *why = prj_js_error(r->j);
        return fail(r, FACTUM_EFAULTED,
                    "the handlers failed between positions %" PRIu64 " and %" PRIu64 ": %s",
                    r->stage.ev[0].position, r->stage.ev[r->stage.n - 1].position,
                    why[0] ? why : factum_strerror(rc));
    }
    if (res.n_out && !emit_enabled) {
        const prj_js_out *o = &res.out[0];
        return fail(
            r, FACTUM_EFAULTED,
            "'%s' is not allowed: the projection was created with emit disabled (the event at position "
            "%" PRIu64 ")",
            o->kind == PRJ_JS_OUT_EMIT ? "emit" : "linkTo",
            o->source < r->stage.n ? r->stage.ev[o->source].position : 0);
    }
    /* PAS-2: res.out is dropped. */
    for (size_t i = 0; i < res.n_parts; i++) {
        const prj_js_part *pt = &res.parts[i];
        if (pt->partition_len == r->part_len && !memcmp(pt->partition, r->part, r->part_len)) {
            if ((rc = set_buf(&r->state, pt->state, pt->state_len))) return rc;
            r->have_state = pt->state_len > 0;
            if ((rc = set_buf(&r->result, pt->result ? pt->result : "", pt->result ? pt->result_len : 0)))
                return rc;
            r->have_result = pt->result != NULL;
        }
        if (r->def->bi_state && r->partitioned &&
            (rc = kv_set(r, pt->partition, pt->partition_len, pt->state, pt->state_len)))
            return rc;
    }
    if (res.shared) {
        if ((rc = set_buf(&r->shared, res.shared, res.shared_len))) return rc;
        r->have_shared = res.shared_len > 0;
    }
    r->handled += r->stage.n;
    prj_stage_clear(&r->stage);
    return 0;
}

/* ---- the starting point (PAS-3) ------------------------------------------- */

/* Element `which` of a stored "[state]"/"[state,result]" (or a bare object
 * for the state) into b: 1 if there is one, 0 if not, or -ENOMEM. */
static int element(const uint8_t *data, size_t len, int which, base_buf *b)
{
    json_value *doc = NULL;
    b->len = 0;
    if (!len || json_parse((const char *)data, len, &doc)) {
        json_free(doc);
        return 0;
    }
    const json_value *v = NULL;
    if (doc->type == JSON_ARRAY)
        v = doc->n > (size_t)which ? doc->items[which] : NULL;
    else if (doc->type == JSON_OBJECT && !which)
        v = doc;
    int rc = v ? (json_write_value(b, v) ? -ENOMEM : 1) : 0;
    json_free(doc);
    return rc;
}

/* Has every definition of `epoch` stored up to position `upto` the query
 * `query`? 1 yes (and there is one), 0 no, or an error. */
static int same_query(factum_store *s, const char *name, int64_t epoch, uint64_t upto, const char *query)
{
    char stream[FACTUM_MAX_STREAM_LEN + 32];
    int n = snprintf(stream, sizeof stream, "$projections-%s", name);
    if (n < 0 || (size_t)n > FACTUM_MAX_STREAM_LEN) return 0;
    factum_asof a = {upto, FACTUM_VALID_ANY};
    factum_event page[64];
    uint64_t from = 0;
    int seen = 0;
    while (from != FACTUM_END) {
        size_t got = 0;
        int rc = factum_read_stream_asof(s, stream, &a, from, FACTUM_FORWARD, page, 64, &got, &from);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) return 0;
        if (rc) return rc;
        for (size_t i = 0; i < got; i++) {
            json_value *doc = NULL;
            if (json_parse((const char *)page[i].data, page[i].data_len, &doc) || doc->type != JSON_OBJECT) {
                json_free(doc);
                continue;
            }
            const json_value *ep = json_get(doc, "Epoch"), *q = json_get(doc, "Query");
            int64_t e = 0;
            if (ep) json_int64(ep, &e);
            int ok = 1;
            if (e == epoch) {
                seen = 1;
                ok = q && q->type == JSON_STRING && q->len == strlen(query) && !memcmp(q->str, query, q->len);
            }
            json_free(doc);
            if (!ok) return 0;
        }
        if (!got) break;
    }
    return seen;
}

/* The newest checkpoint committed at or before log position x (the
 * checkpoint stream keeps 2, `$maxCount`; as of x it shows those it kept
 * then): 1 with *ev and its tag *c (the position whose state it holds) and
 * *epoch, 0 if none, or an error. */
static int checkpoint_at(factum_store *s, const char *stream, uint64_t x, factum_event *ev, uint64_t *c,
                         int64_t *epoch)
{
    factum_asof a = {x, FACTUM_VALID_ANY};
    size_t got = 0;
    int rc = factum_read_stream_asof(s, stream, &a, FACTUM_END, FACTUM_BACKWARD, ev, 1, &got, NULL);
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || (!rc && !got)) return 0;
    if (rc) return rc;
    return prj_checkpoint_parse(ev->metadata, ev->metadata_len, c, epoch) ? 0 : 1;
}

/* The starting point (PAS-3): the newest checkpoint whose tag is at or
 * before `position`, *from (0: none), with the state and result it holds.
 * A checkpoint's tag is below the position it is committed at, and both
 * grow along the checkpoint stream within an epoch, so a binary search over
 * the commit positions from `position` to the head finds it also when it
 * was committed after `position` (a projection created, or reset, after
 * the events it caught up with): O(log n) reads as of a position. */
static int start_point(replay *r, const char *name, const char *query, uint64_t position, uint64_t head,
                       uint64_t *from)
{
    *from = 0;
    char stream[FACTUM_MAX_STREAM_LEN + 32];
    int n = snprintf(stream, sizeof stream, "$projections-%s-checkpoint", name);
    if (n < 0 || (size_t)n > FACTUM_MAX_STREAM_LEN) return 0;
    factum_event ev;
    uint64_t c = 0;
    int64_t epoch;
    int rc = checkpoint_at(r->s, stream, head, &ev, &c, &epoch);
    if (rc < 0) return rc;
    uint64_t lo = position, hi = head; /* as of lo: a tag <= position (or none); as of hi: past it */
    if (rc > 0 && c <= position) {
        lo = head;
    } else {
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if ((rc = checkpoint_at(r->s, stream, mid, &ev, &c, &epoch)) < 0) return rc;
            if (rc > 0 && c > position)
                hi = mid;
            else
                lo = mid;
        }
    }
    if ((rc = checkpoint_at(r->s, stream, lo, &ev, &c, &epoch)) <= 0) return rc;
    if (!c || c > position) return 0; /* none (or a reset's mark at 0) */
    if ((rc = same_query(r->s, name, epoch, ev.position, query)) <= 0) return rc;
    if ((rc = element(ev.data, ev.data_len, 0, &r->state)) < 0) return rc;
    r->have_state = rc > 0;
    if ((rc = element(ev.data, ev.data_len, 1, &r->result)) < 0) return rc;
    r->have_result = rc > 0;
    *from = c;
    return 0;
}

/* ---- the call ------------------------------------------------------------- */

/* JSON as factum_projection_get_state gives it (parsed and written again),
 * malloc'd and NUL-terminated, into *out; "" when there is none. */
static int normalized(const base_buf *b, int have, char **out, size_t *len)
{
    base_buf o = {0};
    int rc = 0;
    if (have && b->len) {
        json_value *doc = NULL;
        if (!json_parse((const char *)b->data, b->len, &doc)) rc = json_write_value(&o, doc) ? -ENOMEM : 0;
        json_free(doc);
    }
    if (!rc && base_buf_append(&o, "", 1)) rc = -ENOMEM;
    if (rc) {
        base_buf_free(&o);
        return rc;
    }
    *len = o.len - 1;
    *out = (char *)o.data;
    return 0;
}

static void drop_log(void *ctx, const char *msg, size_t len)
{
    (void)ctx, (void)msg, (void)len;
}

static int run(factum_projections *m, const char *name, const factum_projection_status *st, const char *query,
               uint64_t position, uint64_t head, const factum_projection_asof_options *o, replay *r,
               factum_projection_asof *out)
{
    uint64_t t0 = base_mono_ns();
    uint64_t deadline = t0 + (uint64_t)o->time_limit_ms * 1000000u;
    prj_js_limits l = {0};
    l.ms_per_event = m->opts.js_ms_per_event;
    l.heap_mib = m->opts.js_heap_mib;
    l.state_bytes = m->opts.js_state_bytes;
    l.worker = m->opts.js_worker;
    l.log_fn = drop_log;
    char why[300] = "";
    int rc = prj_js_open(&l, name, query, strlen(query), &r->j, why, sizeof why);
    if (rc == FACTUM_EINVAL)
        return fail(r, rc, "the query of projection '%s' does not compile: %s", name, why);
    if (rc)
        return fail(r, rc, "cannot start a JavaScript engine for the replay: %s",
                    why[0] ? why : factum_strerror(rc));
    r->def = prj_js_definition(r->j);
    r->partitioned = r->def->by_streams || r->def->by_custom_partitions;
    r->only_stream = r->def->by_streams && !r->def->bi_state && r->part_len;
    /* A partition of a projection without partitions, or the root of a
     * partitioned one without biState: none (as factum_projection_get_state). */
    int nothing = (!r->partitioned && r->part_len) || (r->partitioned && !r->part_len && !r->def->bi_state);
    uint64_t from = 0;
    if (!nothing && o->use_checkpoints && !r->partitioned && !r->def->bi_state &&
        (rc = start_point(r, name, query, position, head, &from)))
        return fail(r, rc, "reading the checkpoints of projection '%s'", name);
    out->from = from;
    if (!nothing && position - from > o->max_events)
        return fail(r, FACTUM_ETOOBIG,
                    "the replay would read %" PRIu64 " events (positions %" PRIu64 " to %" PRIu64
                    "), more than its limit of %" PRIu64 " (max_events)",
                    position - from, from + 1, position, o->max_events);
    factum_asof asof = {position, FACTUM_VALID_ANY};
    factum_event page[ASOF_PAGE];
    uint64_t next = from + 1, read = 0, last = from;
    while (!nothing && next <= position) {
        if (atomic_load(&m->asof_stop)) return fail(r, FACTUM_ECLOSED, "the projections are closing");
        if (o->cancelled && o->cancelled(o->cancel_ctx))
            return fail(r, -ECANCELED, "the replay was cancelled");
        size_t got = 0;
        uint64_t cap = position - next + 1 < ASOF_PAGE ? position - next + 1 : ASOF_PAGE;
        if ((rc = factum_read_all(r->s, next, FACTUM_FORWARD, NULL, 0, page, (size_t)cap, &got, &next)))
            return fail(r, rc, "reading $all at position %" PRIu64, next);
        if (!got) break;
        for (size_t i = 0; i < got && page[i].position <= position; i++) {
            const factum_event *rec = &page[i], *ev;
            factum_event target, up;
            int deleted;
            read++;
            rc = prj_js_select(r->s, r->def, rec, &asof, &r->ub, &target, &up, &ev, &deleted);
            if (rc == FACTUM_EUPCAST)
                return fail(r, FACTUM_EFAULTED, "the event at position %" PRIu64 ": %s", rec->position,
                            factum_upcast_buf_error(r->ub));
            if (rc < 0) return fail(r, rc, "reading the event at position %" PRIu64, rec->position);
            if (!rc) continue;
            if (r->only_stream) { /* PAS-1: foreachStream's key is the stream ("$$x" deleted: x) */
                const char *k = ev->stream;
                size_t kl = ev->stream_len;
                if (deleted && kl > 2 && k[0] == '$' && k[1] == '$') k += 2, kl -= 2;
                if (kl != r->part_len || memcmp(k, r->part, kl)) continue;
            }
            if ((rc = prj_stage_add(&r->stage, rec, ev, deleted))) return rc;
            if ((r->stage.n >= ASOF_BATCH || r->stage.arena.len >= ASOF_BATCH_BYTES) &&
                (rc = handle(r, st->emit_enabled)))
                return rc;
        }
        if (got) last = page[got - 1].position < position ? page[got - 1].position : position;
        if (base_mono_ns() >= deadline) break;
    }
    /* PAS-4: the time limit, checked after every batch, the last one too. */
    if (base_mono_ns() < deadline && (rc = handle(r, st->emit_enabled))) return rc;
    if (base_mono_ns() >= deadline)
        return fail(r, FACTUM_ETIMEDOUT,
                    "the replay passed its time limit of %" PRIu32
                    " ms with the events up to position %" PRIu64 " of %" PRIu64 " read",
                    o->time_limit_ms, last, position);
    out->events_read = read;
    out->events_handled = r->handled;
    const base_buf *sb = &r->state;
    int have = r->have_state;
    if (r->partitioned && !r->part_len && r->def->bi_state) sb = &r->shared, have = r->have_shared;
    if ((rc = normalized(sb, have, &out->state, &out->state_len))) return rc;
    if ((rc = normalized(&r->result, r->have_result && sb == &r->state, &out->result, &out->result_len)))
        return rc;
    prj_log(m, FACTUM_LOG_INFO,
            "projection %s: state as of position %" PRIu64 " replayed from %" PRIu64 " (%" PRIu64
            " events read, %" PRIu64 " handled) in %" PRIu64 " ms",
            name, position, from, read, r->handled, (base_mono_ns() - t0) / 1000000u);
    return 0;
}

int factum_projection_state_asof(factum_projections *m, const char *name, const char *partition,
                                 uint64_t position, const factum_projection_asof_options *o,
                                 factum_projection_asof *out, char *err, size_t err_len)
{
    if (err && err_len) err[0] = 0;
    if (!m || !name || !out) return FACTUM_EINVAL;
    memset(out, 0, sizeof *out);
    factum_projection_asof_options def;
    if (!o) {
        factum_projection_asof_options_init(&def);
        o = &def;
    }
    factum_projection_asof_options lim = *o;
    if (!lim.time_limit_ms) lim.time_limit_ms = 30000;
    if (lim.time_limit_ms > ASOF_MAX_TIME_MS) lim.time_limit_ms = ASOF_MAX_TIME_MS;
    if (!lim.max_events) lim.max_events = 10000000;
    if (!lim.max_state_bytes) lim.max_state_bytes = 64u << 20;
    replay r = {.s = m->s, .err = err, .err_len = err_len, .max_kv_bytes = lim.max_state_bytes};
    r.part = partition ? partition : "";
    r.part_len = strlen(r.part);
    factum_projection_status st;
    int rc = factum_projection_get_status(m, name, &st);
    if (rc) return fail(&r, rc, "no projection '%s'", name);
    if (st.system)
        return fail(&r, FACTUM_EINVAL,
                    "'%s' is a system projection: it has no state; read the streams it writes as of the time "
                    "($asof/<stream>, factum_read_stream_asof)",
                    name);
    if (strcmp(st.handler, "JS"))
        return fail(&r, FACTUM_EINVAL, "'%s' is not a JavaScript projection (handler %s)", name, st.handler);
    factum_stats fs;
    if ((rc = factum_store_get_stats(m->s, &fs))) return rc;
    if (position == FACTUM_END) position = fs.last_position;
    if (position > fs.last_position)
        return fail(&r, FACTUM_EINVAL,
                    "position %" PRIu64 " is past the end of the log (the last is %" PRIu64 ")", position,
                    fs.last_position);
    out->position = position;
    /* Counted first, then the closing flag read: close sets the flag, then
     * waits for the count (PAS-4). */
    int running = atomic_fetch_add(&m->asof_running, 1);
    if (atomic_load(&m->asof_stop)) {
        atomic_fetch_sub(&m->asof_running, 1);
        return fail(&r, FACTUM_ECLOSED, "the projections are closing");
    }
    if (running >= FACTUM_PROJECTION_ASOF_MAX) {
        atomic_fetch_sub(&m->asof_running, 1);
        return fail(&r, -EBUSY, "%d replays of projections run already: try again later",
                    FACTUM_PROJECTION_ASOF_MAX);
    }
    char *query = NULL;
    rc = factum_projection_get_query(m, name, &query);
    if (!rc) rc = run(m, name, &st, query, position, fs.last_position, &lim, &r, out);
    atomic_fetch_sub(&m->asof_running, 1);
    free(query);
    prj_js_close(r.j);
    factum_upcast_buf_free(r.ub);
    base_buf_free(&r.state);
    base_buf_free(&r.result);
    base_buf_free(&r.shared);
    prj_stage_free(&r.stage);
    kv_free(&r);
    if (rc) {
        factum_projection_asof_free(out);
        if (err && err_len && !err[0]) snprintf(err, err_len, "%s", factum_strerror(rc));
    }
    return rc;
}
