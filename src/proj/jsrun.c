/*
 * jsrun.c - a JavaScript projection running, on the manager's thread. The
 * script runs in a worker process (jsproc.h); this side reads $all, picks
 * the events the script's sources name, stages them, hands them to the
 * worker a batch at a time, and turns what the worker answers into one
 * batch (batch.c) with the checkpoint: emitted events and links, the
 * states of the partitions the batch changed, the results, the tracked
 * emitted streams. So state, results and emitted events are committed
 * together with the position they stand for, in one atomic append (PRJ-1);
 * after a crash the projection goes on from there and the worker is asked
 * again for nothing it had already done.
 *
 * Where KurrentDB keeps each thing (ProjectionNamesBuilder), we keep it:
 *   $projections-<name>-checkpoint             `$ProjectionCheckpoint`, data
 *                                              "[state]" or "[state,result]"
 *                                              of the projection (or the
 *                                              shared state of a partitioned one)
 *   $projections-<name>-<partition>-checkpoint `$Checkpoint`, the same for a
 *                                              partition ($maxCount 2)
 *   $projections-<name>-result                 `Result` (or resultStreamName)
 *   $projections-<name>-<partition>-result     `Result` of a partition
 *   $projections-<name>-emittedstreams         `$StreamTracked`, data the name
 *
 * Results are written once per batch for each partition whose result the
 * batch changed (KurrentDB writes one per event handled); the last one is
 * the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/seal.h"
#include "base/json.h"
#include "jshost/jsproc.h"
#include "proj/proj.h"
#include "proj/stage.h"

#define POLL_ITEMS  256
#define STAGE_BYTES (8u << 20) /* event bytes staged for one batch, at most (one event may exceed it) */
#define STEP_EVENTS 16384

/* A set of strings (emitted streams known to be tracked, partitions whose
 * checkpoint stream is new). */
typedef struct strset {
    char **v;
    size_t n, cap; /* open addressing, cap a power of two */
} strset;

struct prj_jsrun {
    prj_js *j;
    const prj_js_def *def;
    factum_upcast_buf *ub; /* the event take() upcast (staged copies it at once) */
    prj_stage stage;       /* the events of the batch being filled (stage.h) */
    base_buf root;         /* the checkpoint's data as last written: "[state]"/"[state,result]" ("" none) */
    strset tracked, fresh;
    int tracked_loaded;
    int one_time;
    uint64_t stop_at; /* one-time: the head when it started */
    char name_buf[FACTUM_MAX_STREAM_LEN + 64];
    base_buf tmp;
};

/* ---- small helpers ------------------------------------------------------ */

static int set_has(const strset *s, const char *k, size_t len, size_t *slot)
{
    if (!s->cap) return 0;
    size_t i = base_hash64(k, len) & (s->cap - 1);
    for (; s->v[i]; i = (i + 1) & (s->cap - 1))
        if (strlen(s->v[i]) == len && !memcmp(s->v[i], k, len)) return 1;
    if (slot) *slot = i;
    return 0;
}

static int set_add(strset *s, const char *k, size_t len)
{
    if (set_has(s, k, len, NULL)) return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = calloc(cap, sizeof *v);
        if (!v) return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[i]) continue;
            size_t j = base_hash64(s->v[i], strlen(s->v[i])) & (cap - 1);
            while (v[j])
                j = (j + 1) & (cap - 1);
            v[j] = s->v[i];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t slot = 0;
    set_has(s, k, len, &slot);
    if (!(s->v[slot] = strndup(k, len))) return -ENOMEM;
    s->n++;
    return 0;
}

static void set_del(strset *s, const char *k, size_t len)
{
    /* rebuild without k: rare (a partition's first write) */
    if (!set_has(s, k, len, NULL)) return;
    strset t = {0};
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->v[i]) continue;
        if (!(strlen(s->v[i]) == len && !memcmp(s->v[i], k, len))) set_add(&t, s->v[i], strlen(s->v[i]));
        free(s->v[i]);
    }
    free(s->v);
    *s = t;
}

static void set_free(strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void script_log(void *ctx, const char *msg, size_t len)
{
    prj *p = ctx;
    prj_log(p->m, FACTUM_LOG_INFO, "projection %s: %.*s", p->name, (int)(len > 400 ? 400 : len), msg);
}

/* "$projections-<name>-<partition><suffix>" into r->name_buf: its length, or 0 if too long. */
static size_t part_stream(prj_jsrun *r, const prj *p, const char *part, size_t part_len, const char *suffix)
{
    int n = snprintf(r->name_buf, sizeof r->name_buf, "$projections-%s-%.*s%s", p->name, (int)part_len, part,
                     suffix);
    return n > 0 && (size_t)n <= FACTUM_MAX_STREAM_LEN ? (size_t)n : 0;
}

/* The partition's result stream: outputTo's pattern ("{0}") or the default. */
static size_t result_stream(prj_jsrun *r, const prj *p, const char *part, size_t part_len)
{
    const char *pat = r->def->partition_result_stream;
    if (!part_len) {
        int n = r->def->result_stream
                    ? snprintf(r->name_buf, sizeof r->name_buf, "%s", r->def->result_stream)
                    : snprintf(r->name_buf, sizeof r->name_buf, "$projections-%s-result", p->name);
        return n > 0 && (size_t)n <= FACTUM_MAX_STREAM_LEN ? (size_t)n : 0;
    }
    if (!pat) return part_stream(r, p, part, part_len, "-result");
    size_t o = 0;
    for (const char *c = pat; *c && o < sizeof r->name_buf - 1; c++) {
        if (c[0] == '{' && c[1] == '0' && c[2] == '}') {
            size_t k = part_len < sizeof r->name_buf - 1 - o ? part_len : sizeof r->name_buf - 1 - o;
            memcpy(r->name_buf + o, part, k);
            o += k;
            c += 2;
        } else {
            r->name_buf[o++] = *c;
        }
    }
    r->name_buf[o] = 0;
    return o && o <= FACTUM_MAX_STREAM_LEN ? o : 0;
}

/* The last event of a stream: 1 with *ev, 0 if none. */
static int last_event(prj *p, const char *stream, factum_event *ev)
{
    size_t n = 0;
    int rc = factum_read_stream(p->m->s, stream, FACTUM_END, FACTUM_BACKWARD, ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) return 0;
    if (rc) return rc;
    return n ? 1 : 0;
}

/* The state element of a stored "[state]"/"[state,result]" (or, as
 * KurrentDB also reads, a bare object) into r->tmp: 1 if there is one. */
static int stored_state(prj_jsrun *r, const uint8_t *data, size_t len, int want_result)
{
    json_value *doc = NULL;
    r->tmp.len = 0;
    if (!len || json_parse((const char *)data, len, &doc)) {
        json_free(doc);
        return 0;
    }
    const json_value *v = NULL;
    if (doc->type == JSON_ARRAY)
        v = doc->n > (size_t)want_result ? doc->items[want_result] : NULL;
    else if (doc->type == JSON_OBJECT && !want_result)
        v = doc;
    int rc = 0;
    if (v) rc = json_write_value(&r->tmp, v) ? -ENOMEM : 1;
    json_free(doc);
    return rc;
}

/* ---- start and stop --------------------------------------------------------- */

static void run_free(prj_jsrun *r)
{
    if (!r) return;
    prj_js_close(r->j);
    factum_upcast_buf_free(r->ub);
    prj_stage_free(&r->stage);
    base_buf_free(&r->root);
    base_buf_free(&r->tmp);
    set_free(&r->tracked);
    set_free(&r->fresh);
    free(r);
}

void prj_js_stop(prj *p)
{
    run_free(p->jr);
    p->jr = NULL;
    pthread_mutex_lock(&p->m->mu);
    p->partitions = 0;
    pthread_mutex_unlock(&p->m->mu);
}

size_t prj_js_staged(const prj *p)
{
    return p->jr ? p->jr->stage.n : 0;
}

static int load_tracked(prj *p, prj_jsrun *r)
{
    if (r->tracked_loaded) return 0;
    char stream[FACTUM_MAX_STREAM_LEN + 64];
    snprintf(stream, sizeof stream, "$projections-%s-emittedstreams", p->name);
    uint64_t from = 0;
    factum_event page[128];
    while (from != FACTUM_END) {
        size_t n = 0;
        int rc = factum_read_stream(p->m->s, stream, from, FACTUM_FORWARD, page, 128, &n, &from);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) break;
        if (rc) return rc;
        for (size_t i = 0; i < n; i++)
            if (page[i].data_len && (rc = set_add(&r->tracked, (const char *)page[i].data, page[i].data_len)))
                return rc;
        if (!n) break;
    }
    r->tracked_loaded = 1;
    return 0;
}

int prj_js_start(prj *p, uint64_t pos)
{
    (void)pos;
    prj_js_stop(p);
    prj_jsrun *r = calloc(1, sizeof *r);
    if (!r) {
        prj_fault(p, -ENOMEM, "starting its JavaScript engine");
        return -ENOMEM;
    }
    prj_js_limits l = {0};
    l.ms_per_event = p->m->opts.js_ms_per_event;
    l.heap_mib = p->m->opts.js_heap_mib;
    l.state_bytes = p->m->opts.js_state_bytes;
    l.worker = p->m->opts.js_worker;
    l.log_fn = script_log;
    l.log_ctx = p;
    char err[300] = "";
    int rc = prj_js_open(&l, p->name, p->query, strlen(p->query), &r->j, err, sizeof err);
    if (rc) {
        run_free(r);
        prj_fault(p, 0, "%s", err[0] ? err : factum_strerror(rc));
        return rc ? rc : FACTUM_EINVAL;
    }
    r->def = prj_js_definition(r->j);
    /* The checkpoint's data: the state to give the worker when it asks. */
    factum_event ev;
    rc = last_event(p, p->ckpt_stream, &ev);
    if (rc > 0 && ev.data_len && base_buf_append(&r->root, ev.data, ev.data_len)) rc = -ENOMEM;
    if (rc >= 0 && p->track_emitted) rc = load_tracked(p, r);
    if (rc < 0) {
        run_free(r);
        prj_fault(p, rc, "starting its JavaScript engine");
        return rc;
    }
    r->stop_at = 0;
    if (p->mode == FACTUM_PROJECTION_ONE_TIME) {
        factum_stats fs;
        r->one_time = 1;
        if (!factum_store_get_stats(p->m->s, &fs)) r->stop_at = fs.last_position;
    }
    p->jr = r;
    return 0;
}

/* ---- which events the script takes --------------------------------------- */

static int name_in(char **v, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) == len && !memcmp(v[i], s, len)) return 1;
    return 0;
}

/* Does the record's stream belong to the script's sources? */
static int source_stream(const prj_js_def *d, const char *s, size_t len)
{
    if (d->all_streams) return 1;
    if (name_in(d->streams, d->n_streams, s, len)) return 1;
    if (d->n_categories) {
        const char *dash = memchr(s, '-', len);
        if (dash && name_in(d->categories, d->n_categories, s, (size_t)(dash - s))) return 1;
    }
    return 0;
}

static int is_link(const factum_event *ev)
{
    return ev->type_len == 2 && !memcmp(ev->type, FACTUM_LINK_TYPE, 2);
}

int prj_js_select(factum_store *s, const prj_js_def *d, const factum_event *rec, const factum_asof *asof,
                  factum_upcast_buf **ub, factum_event *target, factum_event *up, const factum_event **ev,
                  int *deleted)
{
    int system = !prj_source_stream(rec->stream, rec->stream_len);
    *ev = rec;
    *deleted = 0;
    /* A system stream is a source only when the script names it
     * (fromStream("$ce-account")); its links are then resolved. */
    if (system && !name_in(d->streams, d->n_streams, rec->stream, rec->stream_len)) return 0;
    if (!source_stream(d, rec->stream, rec->stream_len)) return 0;
    if (rec->version == FACTUM_TOMBSTONE_VERSION) { /* a tombstone: $deleted */
        *deleted = 1;
        return d->handles_deleted;
    }
    const factum_event *e = rec;
    if (is_link(rec)) {
        if (!system && !d->include_links) return 0;
        int rc = asof ? factum_resolve_link_asof(s, rec, asof, target) : factum_resolve_link(s, rec, target);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || rc == FACTUM_EINVAL) return 0;
        if (rc) return rc;
        e = target;
    }
    /* Handlers see events upcast (docs/upcasting.md), chosen by the type
     * after upcasting; a failing upcast faults the projection (UPC-5). */
    int rc = *ub ? 0 : factum_upcast_buf_new(ub);
    if (!rc) {
        factum_upcast_buf_reset(*ub);
        rc = factum_upcast(s, e, *ub, up);
    }
    if (rc < 0) return rc;
    if (!d->all_events && !name_in(d->events, d->n_events, up->type, up->type_len)) return 0;
    *ev = up;
    return 1;
}

/* One record of $all: staged if the script takes it. */
static int take(prj *p, prj_jsrun *r, const factum_event *rec)
{
    factum_event target, up;
    const factum_event *ev;
    int deleted;
    int rc = prj_js_select(p->m->s, r->def, rec, NULL, &r->ub, &target, &up, &ev, &deleted);
    return rc > 0 ? prj_stage_add(&r->stage, rec, ev, deleted) : rc;
}

/* ---- the worker's answer into the batch --------------------------------- */

/* KurrentDB's metadata of an emitted event: the checkpoint tag of its
 * source, the script's own keys, $causedBy and the source's $correlationId. */
static int emitted_meta(prj *p, prj_jsrun *r, const prj_staged *src, const prj_js_out *o, base_buf *b)
{
    b->len = 0;
    int rc =
        base_buf_printf(b, "{\"$v\":\"%lld:%lld:%lld:%d\",\"$c\":%llu,\"$p\":%llu",
                        (long long)p->projection_id, (long long)p->epoch, (long long)p->version,
                        PRJ_SUBSYSTEM, (unsigned long long)src->position, (unsigned long long)src->position);
    int corr_given = 0;
    if (!rc && o->meta && o->meta_len) {
        json_value *doc = NULL;
        if (!json_parse(o->meta, o->meta_len, &doc) && doc->type == JSON_OBJECT) {
            for (size_t i = 0; !rc && i < doc->n; i++) {
                const char *k = doc->keys[i];
                if (!strcmp(k, "$causedBy") || !strcmp(k, "$v") || !strcmp(k, "$c") || !strcmp(k, "$p"))
                    continue;
                if (!strcmp(k, "$correlationId")) corr_given = 1;
                rc = base_buf_append(b, ",", 1);
                if (!rc) rc = json_write_string(b, k, doc->key_lens[i]);
                if (!rc) rc = base_buf_append(b, ":", 1);
                if (!rc) rc = json_write_value(b, doc->items[i]);
            }
        }
        json_free(doc);
    }
    if (!rc) {
        char u[37];
        factum_uuid_format(src->id, u);
        rc = base_buf_printf(b, ",\"$causedBy\":\"%s\"", u);
    }
    if (!rc && !corr_given && src->meta_len) {
        const char *v;
        size_t vl;
        int is_str;
        const char *meta = prj_stage_meta(&r->stage, src);
        if (prj_json_member(meta, src->meta_len, "$correlationId", 14, &v, &vl, &is_str) && is_str) {
            rc = base_buf_append(b, ",\"$correlationId\":\"", 19);
            if (!rc) rc = base_buf_append(b, v, vl);
            if (!rc) rc = base_buf_append(b, "\"", 1);
        }
    }
    if (!rc) rc = base_buf_append(b, "}", 1);
    return rc;
}

static int tag_meta(prj *p, uint64_t pos, base_buf *b)
{
    return prj_checkpoint_meta(b, p->projection_id, p->epoch, p->version, pos);
}

/* "[state]" or "[state,result]" into b. */
static int serialize(base_buf *b, const prj_js_part *pt)
{
    b->len = 0;
    int rc = base_buf_append(b, "[", 1);
    if (!rc) rc = base_buf_append(b, pt->state, pt->state_len);
    if (!rc && pt->result) {
        rc = base_buf_append(b, ",", 1);
        if (!rc) rc = base_buf_append(b, pt->result, pt->result_len);
    }
    if (!rc) rc = base_buf_append(b, "]", 1);
    return rc;
}

static int apply(prj *p, prj_jsrun *r, const prj_js_result *res)
{
    prj_batch *b = p->fill;
    base_buf meta = {0}, data = {0};
    int rc = 0;
    uint64_t to = r->stage.n ? r->stage.ev[r->stage.n - 1].position : p->read_pos;
    for (size_t i = 0; !rc && i < res->n_out; i++) {
        const prj_js_out *o = &res->out[i];
        if (!p->emit_enabled) {
            prj_fault(p, 0, "'%s' is not allowed: the projection was created with emit disabled",
                      o->kind == PRJ_JS_OUT_EMIT ? "emit" : "linkTo");
            rc = FACTUM_EINVAL;
            break;
        }
        if (o->source >= r->stage.n) {
            rc = FACTUM_EINVAL;
            break;
        }
        if (!o->stream_len || o->stream_len > FACTUM_MAX_STREAM_LEN) {
            prj_fault(p, 0, "emit to an invalid stream name (%zu bytes)", o->stream_len);
            rc = FACTUM_EBADNAME;
            break;
        }
        if ((rc = emitted_meta(p, r, &r->stage.ev[o->source], o, &meta))) break;
        uint32_t flags = FACTUM_EVENT_META_JSON | (o->is_json ? FACTUM_EVENT_JSON : 0);
        rc = prj_batch_add_event(b, o->stream, o->stream_len, o->type, o->type_len, flags, o->data,
                                 o->data_len, meta.data, meta.len);
        if (rc == FACTUM_EBADNAME) {
            prj_fault(p, 0, "emit to an invalid stream name");
            break;
        }
        if (!rc && p->track_emitted && !set_has(&r->tracked, o->stream, o->stream_len, NULL)) {
            char ts[FACTUM_MAX_STREAM_LEN + 64];
            snprintf(ts, sizeof ts, "$projections-%s-emittedstreams", p->name);
            rc = prj_batch_add_event(b, ts, strlen(ts), "$StreamTracked", 14, 0, o->stream, o->stream_len,
                                     NULL, 0);
            if (!rc) rc = set_add(&r->tracked, o->stream, o->stream_len);
        }
    }
    if (!rc && (rc = tag_meta(p, to, &meta))) goto out;
    for (size_t i = 0; !rc && i < res->n_parts; i++) {
        const prj_js_part *pt = &res->parts[i];
        if ((rc = serialize(&data, pt))) break;
        if (!pt->partition_len) {
            r->root.len = 0;
            rc = base_buf_append(&r->root, data.data, data.len);
        } else {
            size_t n = part_stream(r, p, pt->partition, pt->partition_len, "-checkpoint");
            if (!n) {
                prj_fault(p, 0, "a partition's name is too long for its stream (%zu bytes)",
                          pt->partition_len);
                rc = FACTUM_EBADNAME;
                break;
            }
            if (set_has(&r->fresh, pt->partition, pt->partition_len, NULL)) {
                char ms[FACTUM_MAX_STREAM_LEN + 72];
                snprintf(ms, sizeof ms, "$$%s", r->name_buf);
                static const char doc[] = "{\"$maxCount\":2}";
                rc = prj_batch_add_event(b, ms, strlen(ms), "$metadata", 9, FACTUM_EVENT_JSON, doc,
                                         sizeof doc - 1, NULL, 0);
                if (rc) break;
                set_del(&r->fresh, pt->partition, pt->partition_len);
            }
            rc = prj_batch_add_event(b, r->name_buf, n, "$Checkpoint", 11,
                                     FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON, data.data, data.len,
                                     meta.data, meta.len);
        }
        if (!rc && r->def->produces_results) {
            size_t n = result_stream(r, p, pt->partition, pt->partition_len);
            if (!n) continue;
            rc = pt->result ? prj_batch_add_event(b, r->name_buf, n, "Result", 6,
                                                  FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON, pt->result,
                                                  pt->result_len, meta.data, meta.len)
                            : prj_batch_add_event(b, r->name_buf, n, "ResultRemoved", 13,
                                                  FACTUM_EVENT_META_JSON, NULL, 0, meta.data, meta.len);
        }
    }
    if (!rc && res->shared) { /* biState: the shared state is the projection's own */
        r->root.len = 0;
        rc = base_buf_append(&r->root, "[", 1);
        if (!rc) rc = base_buf_append(&r->root, res->shared, res->shared_len);
        if (!rc) rc = base_buf_append(&r->root, "]", 1);
    }
    if (!rc && r->root.len) rc = prj_batch_set_checkpoint_data(b, r->root.data, r->root.len);
out:
    base_buf_free(&meta);
    base_buf_free(&data);
    return rc;
}

/* The state the worker asks for, from the store. */
static int provide(prj *p, prj_jsrun *r, const prj_js_result *res)
{
    if (res->need_shared || !res->need_partition_len) {
        int have = r->root.len ? stored_state(r, r->root.data, r->root.len, 0) : 0;
        if (have < 0) return have;
        return prj_js_load(r->j, res->need_partition, res->need_partition_len, res->need_shared,
                           have ? (const char *)r->tmp.data : NULL, have ? r->tmp.len : 0);
    }
    size_t n = part_stream(r, p, res->need_partition, res->need_partition_len, "-checkpoint");
    if (!n) return FACTUM_EBADNAME;
    /* The worker keeps only so many partitions; one it let go may have its
     * latest state in a batch still in flight: read it once that is
     * committed (rare: the worker keeps the recent ones). */
    for (int i = 0; p->flight_n && i < 60000; i++) {
        if (!prj_reap(p)) usleep(100);
        if (p->state != FACTUM_PROJECTION_RUNNING) return FACTUM_EFAULTED;
    }
    if (p->flight_n) return -ETIMEDOUT;
    factum_event ev;
    int rc = last_event(p, r->name_buf, &ev);
    if (rc < 0) return rc;
    int have = 0;
    if (rc > 0 && (have = stored_state(r, ev.data, ev.data_len, 0)) < 0) return have;
    factum_stream_info info;
    if (!rc && !factum_stream_get_info(p->m->s, r->name_buf, &info) && info.last_version < 0 &&
        (rc = set_add(&r->fresh, res->need_partition, res->need_partition_len)))
        return rc; /* a new stream: its $maxCount goes with its first state */
    return prj_js_load(r->j, res->need_partition, res->need_partition_len, 0,
                       have ? (const char *)r->tmp.data : NULL, have ? r->tmp.len : 0);
}

/* Hand the staged events to the worker and put its answer into the batch. */
static int handle(prj *p, prj_jsrun *r)
{
    if (!r->stage.n) return 0;
    const prj_js_event *jev;
    if (prj_stage_view(&r->stage, &jev)) return -ENOMEM;
    prj_js_result res;
    memset(&res, 0, sizeof res);
    int rc = prj_js_process(r->j, jev, r->stage.n, &res);
    while (rc == PRJ_JS_NEED) {
        if ((rc = provide(p, r, &res))) {
            if (p->state == FACTUM_PROJECTION_RUNNING) prj_fault(p, rc, "loading a partition's state");
            return rc;
        }
        rc = prj_js_resume(r->j, &res);
    }
    if (rc) {
        prj_fault(p, 0, "%s", prj_js_error(r->j)[0] ? prj_js_error(r->j) : factum_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&p->m->mu);
    p->partitions = res.partitions;
    pthread_mutex_unlock(&p->m->mu);
    if ((rc = apply(p, r, &res))) {
        if (p->state == FACTUM_PROJECTION_RUNNING) prj_fault(p, rc, "writing what its handlers emitted");
        return rc;
    }
    prj_stage_clear(&r->stage);
    return 0;
}

/* ---- a step ----------------------------------------------------------------- */

static int staged_full(const prj *p, const prj_jsrun *r)
{
    return p->since_cut >= p->m->opts.batch_events || r->stage.arena.len >= STAGE_BYTES;
}

/* Cut: handle what is staged and append the batch (if there is room in
 * flight; else leave it staged). 1 if appended. */
static int cut(prj *p, prj_jsrun *r)
{
    if (p->flight_n >= p->m->opts.batches_in_flight) return 0;
    if (handle(p, r)) return -1;
    /* Every checkpoint carries the state, also one whose stretch held no
     * source event (nothing handled, nothing applied): the state is read
     * back from the last checkpoint, and a restart goes on from it. */
    if (r->root.len && prj_batch_set_checkpoint_data(p->fill, r->root.data, r->root.len)) {
        prj_fault(p, -ENOMEM, "writing its checkpoint");
        return -1;
    }
    prj_batch_cover(p->fill, p->read_pos);
    return prj_submit(p);
}

static int js_step_bound(prj *p, int *did);

/* As read_some (engine.c): the step's events open into p's reader; what the
 * script needs of them is copied into the stage. */
int prj_js_step(prj *p, int *did)
{
    holder_bind b = holder_reader_enter(p->m->s, &p->rdr, 1);
    int rc = js_step_bound(p, did);
    holder_reader_leave(b);
    return rc;
}

static int js_step_bound(prj *p, int *did)
{
    prj_jsrun *r = p->jr;
    if (!r || p->state != FACTUM_PROJECTION_RUNNING) return 0;
    factum_sub_item it[POLL_ITEMS];
    uint64_t read = 0;
    int at_head = 0;
    while (read < STEP_EVENTS) {
        if (staged_full(p, r)) {
            int rc = cut(p, r);
            if (rc <= 0) break; /* no room in flight, or faulted */
            *did = 1;
            continue;
        }
        size_t n = 0;
        int rc = factum_sub_poll(p->sub, it, POLL_ITEMS, &n, 0);
        if (rc) {
            prj_fault(p, rc, "reading $all after position %llu", (unsigned long long)p->read_pos);
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            if (it[i].kind != FACTUM_SUB_EVENT) continue;
            if (r->one_time && it[i].event.position > r->stop_at) break;
            if ((rc = take(p, r, &it[i].event))) {
                if (rc == FACTUM_EUPCAST)
                    prj_fault(p, 0, "%s", factum_upcast_buf_error(r->ub));
                else
                    prj_fault(p, rc, "reading the event at position %llu",
                              (unsigned long long)it[i].event.position);
                return rc;
            }
            p->read_pos = it[i].event.position;
            p->since_cut++;
            read++;
        }
        if ((!n && !factum_sub_pending(p->sub)) || (r->one_time && p->read_pos >= r->stop_at)) {
            at_head = 1;
            break;
        }
    }
    if (read) {
        *did = 1;
        pthread_mutex_lock(&p->m->mu);
        p->events_processed += read;
        pthread_mutex_unlock(&p->m->mu);
    }
    if (p->state != FACTUM_PROJECTION_RUNNING) return 0;
    /* At the head, what was read goes out when nothing is in flight (as
     * engine.c does); so does a checkpoint after a long quiet stretch. */
    if (at_head && !p->flight_n &&
        (r->stage.n || prj_batch_events(p->fill) || p->since_cut >= PRJ_IDLE_CHECKPOINT)) {
        if (cut(p, r) > 0) *did = 1;
        if (p->state != FACTUM_PROJECTION_RUNNING) return 0; /* it faulted: p->jr (r) is freed */
    }
    if (at_head && r->one_time && !p->flight_n && !r->stage.n && p->read_pos >= r->stop_at) {
        /* one-time: the whole log as it was at the start is done once its
         * last checkpoint is written. Not appended yet (the store's queue
         * was full), it is tried again at the next step; a fault stands. */
        if (p->since_cut) {
            if (cut(p, r) > 0) *did = 1;
            return 0;
        }
        prj_stop(p, FACTUM_PROJECTION_COMPLETED);
        *did = 1;
    }
    return 0;
}

/* ---- reset and delete ------------------------------------------------------ */

typedef struct lister {
    prj *p;
    char prefix[FACTUM_MAX_STREAM_LEN + 32];
    size_t prefix_len;
    char **v;
    size_t n, cap;
    uint64_t last;
} lister;

static int collect(void *ctx, const char *name, size_t len, uint64_t created)
{
    lister *c = ctx;
    c->last = created;
    if (len < c->prefix_len || memcmp(name, c->prefix, c->prefix_len)) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **v = realloc(c->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strndup(name, len))) return -ENOMEM;
    c->n++;
    return 0;
}

int prj_js_each_stream(prj *p, int emitted, int state, int checkpoint,
                       int (*cb)(void *ctx, const char *stream), void *ctx)
{
    factum_store *s = p->m->s;
    int rc = 0;
    if (emitted) { /* the tracked ones (KurrentDB deletes only those) */
        prj_jsrun tmp = {0};
        rc = load_tracked(p, &tmp);
        for (size_t i = 0; !rc && i < tmp.tracked.cap; i++)
            if (tmp.tracked.v[i]) rc = cb(ctx, tmp.tracked.v[i]);
        set_free(&tmp.tracked);
        if (rc) return rc;
    }
    if (!state && !checkpoint) return 0;
    /* $projections-<name>-... : results, partition checkpoints, the emitted list */
    lister c = {.p = p};
    c.prefix_len = (size_t)snprintf(c.prefix, sizeof c.prefix, "$projections-%s-", p->name);
    rc = factum_list_streams(s, 0, collect, &c);
    for (size_t i = 0; i < c.n; i++) {
        const char *n = c.v[i];
        size_t len = strlen(n);
        int is_ckpt = len >= 11 && !strcmp(n + len - 11, "-checkpoint");
        int is_emitted_list = !strcmp(n + c.prefix_len, "emittedstreams");
        int want = is_ckpt ? checkpoint : is_emitted_list ? emitted : state;
        if (!rc && want) rc = cb(ctx, n);
        free(c.v[i]);
    }
    free(c.v);
    if (rc) return rc;
    if (state && p->jr && p->jr->def->result_stream) /* a result stream named by the script */
        rc = cb(ctx, p->jr->def->result_stream);
    return rc;
}

static int truncate_cb(void *ctx, const char *stream)
{
    prj *p = ctx;
    if (!strcmp(stream, p->ckpt_stream)) return 0; /* the reset writes its new epoch there */
    return prj_truncate_stream(p->m->s, stream);
}

int prj_js_reset_streams(prj *p)
{
    /* Everything it wrote: the emitted streams it tracks, and its own
     * $projections-<name>-... streams but the checkpoint. */
    return prj_js_each_stream(p, 1, 1, 1, truncate_cb, p);
}
