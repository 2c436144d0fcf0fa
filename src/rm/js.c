/*
 * js.c - a read model's JavaScript handlers (the definition's "script",
 * docs/readmodels.md "JavaScript handlers"), for what SQL alone cannot
 * express. The script runs in the worker process of JavaScript
 * projections (factum-js, V8; src/jshost/jsproc.h) in its read-model mode
 * (src/js/rmapi.js): one worker per generation that has a script, started
 * by its applier.
 *
 * The applier hands a whole page of events to the worker at once (one
 * round trip per page), before the page's transaction: for each event the
 * worker answers the statements its handler asked for with sql(text,
 * params), or why the handler failed (it threw, ran past its time, ran out
 * of heap). The statements then run in the page's transaction after the
 * event's SQL handlers (RM-2), through the target's cache of dynamic
 * statements (dyn.c), readied here before the transaction begins. A
 * handler's failure is the failure of its event, under the read model's
 * policy (RM-3), as a failing statement is.
 *
 * While a page's statements run, the worker already runs the first events
 * of the next page (read ahead from the log; used if the next page begins
 * with them, as it does unless the read model stopped).
 *
 * The worker is restarted when it dies. If it died in the middle of a page
 * (a crash of V8, the host's deadline, a broken frame), the rest of the
 * page goes through it one event at a time, so that the event that kills
 * it is found and only that one fails.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/seal.h"
#include "jshost/jsproc.h"
#include "jshost/jsproto.h"
#include "rm/rm.h"

#define JS_MS_PER_EVENT 250 /* a handler's time for one event (as projections') */
#define JS_HEAP_MIB     128
/* Events sent to the worker at once, at most: a page is one round trip up
 * to this; between two, the applier sees whether it is asked to stop (a
 * script that runs each event to its time limit would otherwise hold a
 * pause or a close for a page's worth of limits). */
#define JS_CHUNK 500

/* Event i of the page: its statements, sql[first .. first + n_sql), or its failure. */
typedef struct ev_res {
    size_t first, n_sql;
    int has;    /* sent to the script */
    int failed; /* the handler failed: fail_off/fail_len in text, what_off the name of the handler */
    size_t fail_off, fail_len, what_off;
} ev_res;

typedef struct sql_ref {
    size_t sql_off, sql_len, params_off, params_len; /* in text; the sql NUL-terminated there */
} sql_ref;

struct rm_js {
    rm_mgr *m;
    factum_reader *rdr; /* the read-ahead's sealed events open here (reset per prefetch; store/seal.h) */
    factum_upcast_buf *ub; /* the read-ahead events, upcast (prefetch) */
    const rm_def *def;
    prj_js *eng;
    char **types; /* the types with a handler of their own, sorted */
    size_t n_types;
    int all; /* a $any handler */
    int have_types;
    /* the page */
    ev_res *res;
    size_t n_ev, cap_ev;
    sql_ref *sql;
    size_t n_sql, cap_sql;
    base_buf text;
    prj_js_event *pev;
    size_t *sel;
    /* The next page's first chunk, sent to the worker before this page's
     * statements run (it works while the target does): its events'
     * positions, to be matched with the next page's. */
    factum_event *ahead;
    size_t ahead_cap;
    prj_js_event *pre_pev;
    uint64_t *pre_pos;
    size_t pre_n;
    int pre_out;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void script_log(void *ctx, const char *msg, size_t len)
{
    rm_js *js = ctx;
    rm_log(js->m, FACTUM_LOG_INFO, "read model %s: log: %.*s", js->def->name, (int)(len > 900 ? 900 : len),
           msg);
}

static void limits(const rm_def *def, prj_js_limits *l)
{
    memset(l, 0, sizeof *l);
    l->ms_per_event = def->script_ms ? def->script_ms : JS_MS_PER_EVENT;
    l->heap_mib = def->script_heap_mib ? def->script_heap_mib : JS_HEAP_MIB;
}

int rm_js_check(const rm_def *def, char *err, size_t err_len)
{
    prj_js_limits l;
    limits(def, &l);
    char name[RM_NAME_MAX + 8], e2[1024] = "";
    snprintf(name, sizeof name, "%s.js", def->name);
    prj_js *j = NULL;
    int rc = prj_js_open_rm(&l, name, def->script, strlen(def->script), &j, e2, sizeof e2);
    prj_js_close(j);
    if (!rc || rc == -ENOMEM) return rc;
    if (err && err_len) snprintf(err, err_len, "script: %s", e2[0] ? e2 : factum_strerror(rc));
    return FACTUM_EINVAL;
}

int rm_js_new(rm_mgr *m, const rm_def *def, rm_js **out)
{
    rm_js *js = calloc(1, sizeof *js);
    if (!js) return -ENOMEM;
    js->m = m;
    js->def = def;
    js->ahead_cap = m->opts.batch_events;
    if (!(js->ahead = calloc(js->ahead_cap, sizeof *js->ahead)) ||
        !(js->pre_pev = calloc(JS_CHUNK, sizeof *js->pre_pev)) ||
        !(js->pre_pos = calloc(JS_CHUNK, sizeof *js->pre_pos))) {
        rm_js_free(js);
        return -ENOMEM;
    }
    *out = js;
    return 0;
}

void rm_js_free(rm_js *js)
{
    if (!js) return;
    prj_js_close(js->eng);
    factum_upcast_buf_free(js->ub);
    factum_reader_free(js->rdr);
    for (size_t i = 0; i < js->n_types; i++)
        free(js->types[i]);
    free(js->types);
    free(js->res);
    free(js->sql);
    free(js->pev);
    free(js->sel);
    free(js->ahead);
    free(js->pre_pev);
    free(js->pre_pos);
    base_buf_free(&js->text);
    free(js);
}

/* Start the worker; the first time, learn which types the script handles. */
static int start(rm_js *js, char *err, size_t err_len)
{
    prj_js_limits l;
    limits(js->def, &l);
    l.log_fn = script_log;
    l.log_ctx = js;
    char name[RM_NAME_MAX + 8], e2[1024] = "";
    snprintf(name, sizeof name, "%s.js", js->def->name);
    int rc = prj_js_open_rm(&l, name, js->def->script, strlen(js->def->script), &js->eng, e2, sizeof e2);
    if (rc) {
        snprintf(err, err_len, "the JavaScript handlers cannot start: %s", e2[0] ? e2 : factum_strerror(rc));
        return rc == -ENOMEM ? rc : FACTUM_EFAULTED;
    }
    if (js->have_types) return 0;
    const prj_js_def *d = prj_js_definition(js->eng);
    js->all = d->all_events;
    if (d->n_events && !(js->types = calloc(d->n_events, sizeof *js->types))) return -ENOMEM;
    for (size_t i = 0; i < d->n_events; i++) {
        if (!(js->types[i] = strdup(d->events[i]))) return -ENOMEM;
        js->n_types++;
    }
    qsort(js->types, js->n_types, sizeof *js->types, cmp_str);
    js->have_types = 1;
    return 0;
}

static int handles(const rm_js *js, const factum_event *ev)
{
    if (js->all) return 1;
    size_t lo = 0, hi = js->n_types;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *t = js->types[mid];
        int c = strncmp(t, ev->type, ev->type_len);
        if (c == 0 && t[ev->type_len]) c = 1;
        if (c == 0) return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static prj_js_event to_pev(const factum_event *ev)
{
    return (prj_js_event){
        .position = ev->position,
        .stream = ev->stream,
        .stream_len = ev->stream_len,
        .seq = ev->version,
        .type = ev->type,
        .type_len = ev->type_len,
        .id = ev->id,
        .timestamp_ns = ev->timestamp_ns,
        .data = ev->data,
        .data_len = ev->data_len,
        .is_json = (ev->flags & FACTUM_EVENT_JSON) != 0,
        .meta = ev->metadata,
        .meta_len = ev->metadata_len,
    };
}

static void restarted(rm_js *js, const char *why)
{
    rm_log(js->m, FACTUM_LOG_WARN, "read model %s: the JavaScript worker is restarted: %s", js->def->name,
           why);
}

/* Send the first chunk of the page after `to` to the worker (read ahead);
 * rm_js_page takes its answer with the next page. */
static void prefetch(rm_js *js, uint64_t to, const factum_filter *filter)
{
    size_t n = 0, k = 0;
    uint64_t next = 0;
    if (!js->eng) return;
    holder_bind hb = holder_reader_enter(js->m->s, &js->rdr, 1); /* sent (copied) before the next prefetch */
    int rc = factum_read_all(js->m->s, to + 1, FACTUM_FORWARD, filter, 65536, js->ahead, js->ahead_cap, &n, &next);
    holder_reader_leave(hb);
    if (rc) return;
    if (!js->ub && factum_upcast_buf_new(&js->ub)) return;
    factum_upcast_buf_reset(js->ub);
    for (size_t i = 0; i < n && k < JS_CHUNK; i++) {
        /* Upcast as apply.c upcasts the page; stop before one that fails
         * (the page itself meets it and applies the policy). */
        if (factum_upcast(js->m->s, &js->ahead[i], js->ub, &js->ahead[i]) < 0) break;
        if (!handles(js, &js->ahead[i])) continue;
        js->pre_pos[k] = js->ahead[i].position;
        js->pre_pev[k++] = to_pev(&js->ahead[i]);
    }
    if (!k) return;
    if (prj_js_rm_send(js->eng, js->pre_pev, k)) {
        restarted(js, prj_js_error(js->eng));
        prj_js_close(js->eng);
        js->eng = NULL;
        return;
    }
    js->pre_n = k;
    js->pre_out = 1;
}

/* Keep a string in the page's text (NUL-terminated): its offset, or (size_t)-1. */
static size_t keep(rm_js *js, const char *p, size_t n)
{
    size_t off = js->text.len;
    if (base_buf_append(&js->text, p, n) || base_buf_append(&js->text, "", 1)) return (size_t)-1;
    return off;
}

static int record_fail(rm_js *js, const factum_event *ev, ev_res *r, const char *msg, size_t len)
{
    char what[200];
    int n = snprintf(what, sizeof what, "(the JavaScript handler for %.*s)",
                     (int)(ev->type_len > 100 ? 100 : ev->type_len), ev->type);
    r->failed = 1;
    r->n_sql = 0;
    r->fail_len = len;
    if ((r->fail_off = keep(js, msg, len)) == (size_t)-1) return -ENOMEM;
    if ((r->what_off = keep(js, what, (size_t)n)) == (size_t)-1) return -ENOMEM;
    return 0;
}

/* Take a batch's answer for the events sel[pos .. pos + res->done). */
static int take(rm_js *js, const factum_event *evs, size_t pos, const prj_js_rm_result *r)
{
    for (size_t k = 0; k < r->n_sql; k++) {
        const prj_js_sql *q = &r->sql[k];
        ev_res *e = &js->res[js->sel[pos + q->source]];
        if (js->n_sql == js->cap_sql) {
            size_t cap = js->cap_sql ? 2 * js->cap_sql : 256;
            sql_ref *p = realloc(js->sql, cap * sizeof *p);
            if (!p) return -ENOMEM;
            js->sql = p;
            js->cap_sql = cap;
        }
        sql_ref *s = &js->sql[js->n_sql];
        if ((s->sql_off = keep(js, q->sql, q->sql_len)) == (size_t)-1 ||
            (s->params_off = keep(js, q->params, q->params_len)) == (size_t)-1)
            return -ENOMEM;
        s->sql_len = q->sql_len;
        s->params_len = q->params_len;
        if (!e->n_sql) e->first = js->n_sql;
        e->n_sql++;
        js->n_sql++;
    }
    for (size_t k = 0; k < r->n_fail; k++) {
        size_t i = js->sel[pos + r->fail[k].source];
        int rc = record_fail(js, &evs[i], &js->res[i], r->fail[k].message, r->fail[k].message_len);
        if (rc) return rc;
    }
    return 0;
}

int rm_js_page(rm_js *js, const factum_event *evs, const uint8_t *skip, size_t n, uint64_t to,
               const factum_filter *filter, const rm_target_ops *o, rm_conn *c, _Atomic int *stop, char *err,
               size_t err_len)
{
    if (n > js->cap_ev) {
        ev_res *r = realloc(js->res, n * sizeof *r);
        if (!r) return -ENOMEM;
        js->res = r;
        prj_js_event *p = realloc(js->pev, n * sizeof *p);
        if (!p) return -ENOMEM;
        js->pev = p;
        size_t *s = realloc(js->sel, n * sizeof *s);
        if (!s) return -ENOMEM;
        js->sel = s;
        js->cap_ev = n;
    }
    memset(js->res, 0, n * sizeof *js->res);
    js->n_ev = n;
    js->n_sql = 0;
    js->text.len = 0;
    int rc;
    if (!js->have_types && (rc = start(js, err, err_len))) return rc;
    size_t nsel = 0;
    for (size_t i = 0; i < n; i++) {
        const factum_event *ev = &evs[i];
        if ((skip && skip[i]) || !handles(js, ev)) continue;
        js->res[i].has = 1;
        js->sel[nsel] = i;
        js->pev[nsel++] = to_pev(ev);
    }
    size_t pos = 0;
    int single = 0;
    if (js->pre_out) {
        /* The answer to what was sent ahead: this page's first chunk, if
         * the page begins with those events (it does unless the last one
         * stopped). */
        js->pre_out = 0;
        int match = nsel >= js->pre_n;
        for (size_t k = 0; match && k < js->pre_n; k++)
            match = js->pev[k].position == js->pre_pos[k];
        prj_js_rm_result r;
        rc = prj_js_rm_receive(js->eng, &r);
        if (rc == -ENOMEM) {
            snprintf(err, err_len, "out of memory running the JavaScript handlers");
            return rc;
        }
        if (rc) {
            restarted(js, prj_js_error(js->eng));
            prj_js_close(js->eng);
            js->eng = NULL;
            single = match; /* one of these events may be what killed it */
        } else {
            if (match) {
                if ((rc = take(js, evs, 0, &r))) return rc;
                pos = r.done;
            }
            if (r.done < js->pre_n) {
                prj_js_close(js->eng);
                js->eng = NULL;
            }
        }
    }
    while (pos < nsel) {
        if (atomic_load(stop)) return 1;
        if (!js->eng && (rc = start(js, err, err_len))) return rc;
        size_t cnt = single ? 1 : nsel - pos > JS_CHUNK ? JS_CHUNK : nsel - pos;
        prj_js_rm_result r;
        rc = prj_js_rm_process(js->eng, js->pev + pos, cnt, &r);
        if (rc == -ENOMEM) {
            snprintf(err, err_len, "out of memory running the JavaScript handlers");
            return rc;
        }
        if (rc) {
            /* The worker died or broke: nothing of this batch is usable. */
            char why[1024];
            snprintf(why, sizeof why, "%s", prj_js_error(js->eng));
            prj_js_close(js->eng);
            js->eng = NULL;
            restarted(js, why);
            if (cnt > 1) {
                single = 1; /* find the event that does it */
                continue;
            }
            size_t i = js->sel[pos++];
            if ((rc = record_fail(js, &evs[i], &js->res[i], why, strlen(why)))) return rc;
            continue;
        }
        if ((rc = take(js, evs, pos, &r))) return rc;
        if (r.done < cnt) {
            /* Out of heap at event done - 1: the worker is gone. */
            prj_js_close(js->eng);
            js->eng = NULL;
        }
        pos += r.done;
    }
    /* The worker goes on with the next page while this one's statements
     * run. */
    if (!single && !atomic_load(stop)) prefetch(js, to, filter);
    /* Ready the statements before the transaction (PostgreSQL prepares
     * them outside its pipeline). A statement that does not prepare fails
     * its event when it runs. */
    for (size_t k = 0; k < js->n_sql; k++) {
        char e2[256];
        const char *t = (const char *)js->text.data;
        rc = o->sql_prepare(c, t + js->sql[k].sql_off, js->sql[k].sql_len, k == 0, e2, sizeof e2);
        if (rc == -ENOMEM) return rc;
    }
    return 0;
}

int rm_js_has(const rm_js *js, size_t i)
{
    return i < js->n_ev && js->res[i].has;
}

int rm_js_apply(rm_js *js, size_t i, const rm_target_ops *o, rm_conn *c, const char **failed, char *err,
                size_t err_len)
{
    if (!rm_js_has(js, i)) return 0;
    const ev_res *r = &js->res[i];
    const char *t = (const char *)js->text.data;
    if (r->failed) {
        snprintf(err, err_len, "%.*s", (int)r->fail_len, t + r->fail_off);
        *failed = t + r->what_off;
        return FACTUM_EINVAL;
    }
    for (size_t k = r->first; k < r->first + r->n_sql; k++) {
        const sql_ref *s = &js->sql[k];
        int rc = o->sql_exec(c, t + s->sql_off, s->sql_len, t + s->params_off, s->params_len, err, err_len);
        if (rc) {
            *failed = t + s->sql_off;
            return rc;
        }
    }
    return 0;
}
