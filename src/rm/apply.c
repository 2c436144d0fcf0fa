/*
 * apply.c - one generation of a read model, applied by a thread of its own
 * (RM-1..5). It reads $all after its checkpoint in pages (factum_read_all
 * with the read model's stream filter), and applies each page as one
 * target transaction with the checkpoint (RM-2); at the head it waits for
 * commits. A failing statement sends the batch through careful mode
 * (RM-3). The live generation publishes its position to waiters after each
 * commit and, inline, releases its acknowledgement gate (RM-5); a building
 * one asks its model to switch once it has caught up (RM-6).
 *
 *   STARTING --target ready--> RUNNING --statement fails, policy stop--> FAULTED
 *                                 |  (stop: paused, dropped, closed, replaced)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/seal.h"
#include "rm/rm.h"

#define IDLE_CHECKPOINT 100000 /* events examined without effect before a checkpoint alone */
#define WAIT_MS         50     /* at the head: how long one wait for commits lasts (stop latency) */

struct rm_gen {
    factum_reader *rdr; /* the page's sealed events open here (reset per page; store/seal.h) */
    _Atomic uint64_t pos_shown; /* pos as other threads may read it (rm_gen_pos: a rebuild's progress) */
    rm_model *model;
    rm_ns *ns;
    const rm_def *def;
    const rm_target_ops *ops;
    int building; /* until it switched over */
    int temporal; /* a temporal query's generation (rm_gen_build_upto): touches nothing of the model */
    pthread_t thread;
    _Atomic int stop;
    rm_conn *conn;
    factum_filter *filter;
    factum_event *page;
    uint32_t cap;
    base_buf scratch;
    rm_value *vals;
    size_t cap_vals;
    factum_ack_gate *gate;
    rm_js *js; /* the definition's script (js.c), or NULL */
    /* The page upcast in place (docs/upcasting.md): upcast events live in
     * ub until the next page; upfail[i] is why event i could not be upcast
     * (it stays as stored, and fails like a statement: the policy
     * decides), skip[i] says so to the script. */
    factum_upcast_buf *ub;
    char **upfail;
    uint8_t *skip;
    uint64_t pos, saved; /* applied; and stored as the checkpoint */
    char err[512];
};

static factum_store *store_of(rm_gen *g)
{
    return g->model->m->s;
}

/* Run the statements of h (may be NULL) for ev, event i of the page, then
 * those its script asked for. 0, or the target's error (err) with *failed
 * the statement. */
static int run_event(rm_gen *g, const rm_handler *h, size_t ev_i, const factum_event *ev, const char **failed)
{
    if (g->upfail[ev_i]) {
        snprintf(g->err, sizeof g->err, "%s", g->upfail[ev_i]);
        *failed = "(upcasting the event)";
        return FACTUM_EUPCAST;
    }
    for (size_t i = 0; h && i < h->n_stmts; i++) {
        const rm_stmt *st = &h->stmts[i];
        if (st->n_params > g->cap_vals) {
            rm_value *v = realloc(g->vals, st->n_params * sizeof *v);
            if (!v) return -ENOMEM;
            g->vals = v;
            g->cap_vals = st->n_params;
        }
        g->scratch.len = 0;
        for (size_t k = 0; k < st->n_params; k++) {
            int rc = rm_bind_event(&st->params[k], ev, &g->scratch, &g->vals[k]);
            if (rc) return rc;
        }
        rm_values_fix(g->vals, st->n_params, &g->scratch);
        int rc = g->ops->exec(g->conn, st->slot, g->vals, st->n_params, g->err, sizeof g->err);
        if (rc) {
            *failed = st->text;
            return rc;
        }
    }
    if (g->js) return rm_js_apply(g->js, ev_i, g->ops, g->conn, failed, g->err, sizeof g->err);
    return 0;
}

static const rm_handler *handler_of(rm_gen *g, const factum_event *ev)
{
    return rm_def_handler(g->def, ev->type, ev->type_len);
}

/* Careful mode (RM-3): the page again, one event at a time under a
 * savepoint. Returns 0 (committed up to `to`), 1 (stopped at an event:
 * committed before it, the model faulted), or an error of the target. */
static int careful(rm_gen *g, const factum_event *evs, size_t n, uint64_t to)
{
    const rm_target_ops *o = g->ops;
    o->rollback(g->conn);
    o->pipeline(g->conn, 0);
    int rc = o->begin(g->conn, g->err, sizeof g->err);
    uint64_t applied = 0, skipped = 0, parked = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const factum_event *ev = &evs[i];
        const rm_handler *h = handler_of(g, ev);
        /* An event of its streams that cannot be upcast goes through the
         * policy whatever its type: the type it would have is unknown. */
        int upfail = g->upfail[i] != NULL;
        if (!upfail && !h && !(g->js && rm_js_has(g->js, i))) continue;
        if ((rc = o->savepoint(g->conn, 0, g->err, sizeof g->err))) break;
        const char *failed = NULL;
        rc = run_event(g, h, i, ev, &failed);
        if (rc == -ENOMEM || !failed) {
            if (!rc) rc = o->savepoint(g->conn, 1, g->err, sizeof g->err);
            if (!rc) applied++;
            continue;
        }
        char error[512];
        snprintf(error, sizeof error, "%s", g->err);
        if ((rc = o->savepoint(g->conn, 2, g->err, sizeof g->err))) break;
        if ((rc = o->savepoint(g->conn, 1, g->err, sizeof g->err))) break;
        int policy = g->def->on_error;
        if (policy == RM_SKIP) {
            skipped++;
            rm_log(g->model->m, FACTUM_LOG_WARN,
                   "read model %s skipped the event at position %" PRIu64 " (%s@%" PRIu64 "): %s", g->def->name,
                   ev->position, ev->stream, ev->version, error);
            continue;
        }
        if (policy == RM_PARK) {
            rm_evinfo info = {ev->position, ev->version, ev->stream, ev->type, ev->id, ev->timestamp_ns};
            if (!(rc = o->park(g->conn, &info, failed, error, g->err, sizeof g->err))) {
                parked++;
                continue;
            }
            break;
        }
        if (g->temporal) {
            /* A temporal query stops here, with the reason; the model is not faulted. */
            int k = snprintf(g->err, sizeof g->err, "the event at position %" PRIu64 " (%.200s@%" PRIu64 ") failed: ",
                             ev->position, ev->stream, ev->version);
            if (k > 0 && (size_t)k < sizeof g->err - 1) {
                size_t room = sizeof g->err - 1 - (size_t)k, el = strnlen(error, room);
                memcpy(g->err + k, error, el);
                g->err[(size_t)k + el] = 0;
            }
            o->rollback(g->conn);
            return 1;
        }
        /* Stop: commit what came before it, with the checkpoint before it. */
        if (!(rc = o->set_checkpoint(g->conn, ev->position - 1, g->err, sizeof g->err)) &&
            !(rc = o->commit(g->conn, g->err, sizeof g->err))) {
            g->pos = g->saved = ev->position - 1;
            atomic_fetch_add(&g->model->applied, applied);
            if (!g->building) rm_model_publish(g->model, g->pos);
            rm_model_fault(g->model, error, failed, ev);
            o->pipeline(g->conn, 1);
            return 1;
        }
        break;
    }
    if (!rc) rc = o->set_checkpoint(g->conn, to, g->err, sizeof g->err);
    if (!rc) rc = o->commit(g->conn, g->err, sizeof g->err);
    if (rc) {
        o->rollback(g->conn);
        return rc;
    }
    o->pipeline(g->conn, 1);
    g->pos = g->saved = to;
    if (!g->building) {
        atomic_fetch_add(&g->model->applied, applied);
        atomic_fetch_add(&g->model->skipped, skipped);
        atomic_fetch_add(&g->model->parked, parked);
    }
    return 0;
}

/* Apply evs[0..n) and the checkpoint `to` as one transaction (RM-2).
 * 0, 1 (stopped by the policy, or asked to stop), or an error of the
 * target. */
static int apply_page(rm_gen *g, const factum_event *evs, size_t n, uint64_t to)
{
    const rm_target_ops *o = g->ops;
    int rc;
    /* The script's part of the page first: one round trip, outside the
     * transaction (js.c). */
    if (g->js &&
        (rc = rm_js_page(g->js, evs, g->skip, n, to, g->filter, o, g->conn, &g->stop, g->err, sizeof g->err)))
        return rc;
    if ((rc = o->begin(g->conn, g->err, sizeof g->err))) return rc;
    uint64_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        const rm_handler *h = handler_of(g, &evs[i]);
        int upfail = g->upfail[i] != NULL; /* as in careful() */
        if (!upfail && !h && !(g->js && rm_js_has(g->js, i))) continue;
        const char *failed = NULL;
        if ((rc = run_event(g, h, i, &evs[i], &failed))) {
            if (rc == -ENOMEM) goto undo;
            return careful(g, evs, n, to);
        }
        applied++;
    }
    if ((rc = o->set_checkpoint(g->conn, to, g->err, sizeof g->err))) goto undo;
    if ((rc = o->commit(g->conn, g->err, sizeof g->err))) {
        /* A pipelined batch shows its statements' errors here. */
        return careful(g, evs, n, to);
    }
    g->pos = g->saved = to;
    if (!g->building) atomic_fetch_add(&g->model->applied, applied);
    return 0;
undo:
    o->rollback(g->conn);
    return rc;
}

/* Upcast the page in place (see rm_gen.ub). 0, or an error other than
 * FACTUM_EUPCAST (err says why). */
static int upcast_page(rm_gen *g, size_t n)
{
    factum_upcast_buf_reset(g->ub);
    for (size_t i = 0; i < n; i++) {
        free(g->upfail[i]);
        g->upfail[i] = NULL;
        g->skip[i] = 0;
    }
    /* A page at once (one round trip to a script upcaster's worker), again
     * after each event that cannot be upcast: it alone is skipped here. */
    for (size_t i = 0; i < n;) {
        size_t want = n - i > 4096 ? 4096 : n - i, done = 0;
        int rc = factum_upcast_many(store_of(g), &g->page[i], want, g->ub, &g->page[i], &done);
        if (rc == FACTUM_EUPCAST) {
            if (!(g->upfail[i + done] = strdup(factum_upcast_buf_error(g->ub)))) return -ENOMEM;
            g->skip[i + done] = 1;
            i += done + 1;
        } else if (rc < 0) {
            snprintf(g->err, sizeof g->err, "upcasting the event at position %" PRIu64 ": %s", g->page[i].position,
                     factum_strerror(rc));
            return rc;
        } else {
            i += want;
        }
    }
    return 0;
}

/* A checkpoint alone (after many events without effect). */
static int save_checkpoint(rm_gen *g)
{
    const rm_target_ops *o = g->ops;
    int rc = o->begin(g->conn, g->err, sizeof g->err);
    if (!rc) rc = o->set_checkpoint(g->conn, g->pos, g->err, sizeof g->err);
    if (!rc) rc = o->commit(g->conn, g->err, sizeof g->err);
    if (rc)
        o->rollback(g->conn);
    else
        g->saved = g->pos;
    return rc;
}

static void progressed(rm_gen *g)
{
    atomic_store_explicit(&g->pos_shown, g->pos, memory_order_relaxed);
    if (g->gate) factum_ack_gate_release(g->gate, g->pos);
    if (!g->building) rm_model_publish(g->model, g->pos);
}

/* Connect, create the tables if new, read the checkpoint. */
static int start(rm_gen *g)
{
    const rm_target_ops *o = g->ops;
    rm_mgr *m = g->model->m;
    int rc = o->open(g->def, m->dir, g->ns->gen, 1, 0, &g->conn, g->err, sizeof g->err);
    if (rc) return rc;
    int init = o->initialized(g->conn, g->err, sizeof g->err);
    if (init < 0) return init;
    if (!init && (rc = o->init(g->conn, g->err, sizeof g->err))) return rc;
    if ((rc = o->prepare(g->conn, g->err, sizeof g->err))) return rc;
    if ((rc = o->get_checkpoint(g->conn, &g->pos, g->err, sizeof g->err))) return rc;
    g->saved = g->pos;
    atomic_store_explicit(&g->pos_shown, g->pos, memory_order_relaxed);
    o->pipeline(g->conn, 1);
    const rm_def *d = g->def;
    if (d->script && (rc = rm_js_new(m, d, &g->js))) return rc;
    return factum_filter_new(FACTUM_FILTER_STREAM, (const char *const *)d->streams, d->n_streams, NULL, 1,
                             &g->filter);
}

static void *gen_main(void *arg)
{
    rm_gen *g = arg;
    rm_model *model = g->model;
    factum_store *s = store_of(g);
    int rc = start(g);
    if (rc) {
        if (!g->building) rm_model_fault(model, g->err[0] ? g->err : factum_strerror(rc), "", NULL);
        rm_log(model->m, FACTUM_LOG_ERROR, "read model %s (generation %" PRIu64 ") cannot start: %s", g->def->name,
               g->ns->gen, g->err[0] ? g->err : factum_strerror(rc));
        return NULL;
    }
    atomic_store(&g->ns->ready, 1);
    if (!g->building) {
        pthread_mutex_lock(&model->mu);
        model->state = FACTUM_READMODEL_RUNNING;
        pthread_mutex_unlock(&model->mu);
        rm_model_publish(model, g->pos);
    }
    int caught_up = 0;
    while (!atomic_load(&g->stop)) {
        size_t n = 0;
        uint64_t next = 0;
        holder_bind hb = holder_reader_enter(s, &g->rdr, 1); /* the page before is applied */
        rc = factum_read_all(s, g->pos + 1, FACTUM_FORWARD, g->filter, 65536, g->page, g->cap, &n, &next);
        holder_reader_leave(hb);
        if (rc) {
            snprintf(g->err, sizeof g->err, "reading the log: %s", factum_strerror(rc));
            break;
        }
        uint64_t to = next ? next - 1 : g->pos;
        if (n && (rc = upcast_page(g, n))) break;
        if (n) {
            rc = apply_page(g, g->page, n, to);
            if (rc == 1) return NULL; /* faulted by the policy */
            if (rc) break;
        } else if (to > g->pos) {
            g->pos = to;
            if (g->pos - g->saved >= IDLE_CHECKPOINT && (rc = save_checkpoint(g))) break;
        }
        progressed(g);
        /* At the head? (Nothing committed after what was examined.) */
        if (factum_wait_for_position(s, g->pos, 0)) continue;
        /* RM-5: from now on an append waits for this read model. (A
         * rebuild's generation takes its gate when it switches over, before
         * the old one lets go of its own; not earlier: the switch appends,
         * and would wait for itself.) */
        if (!g->building) rm_gen_hold(g);
        if (!caught_up) {
            caught_up = 1;
            if (g->building && !rm_model_switch(model, g, g->pos)) caught_up = 0; /* try again */
        }
        if (!g->building) { /* is_live is the model's, under its lock (a rebuild's switch writes it too) */
            pthread_mutex_lock(&model->mu);
            model->is_live = 1;
            pthread_mutex_unlock(&model->mu);
        }
        factum_wait_for_position(s, g->pos, WAIT_MS);
    }
    if (rc) {
        /* The target failed (not a statement of an event): fault. */
        if (g->gate) {
            factum_ack_gate_remove(g->gate);
            g->gate = NULL;
        }
        if (!g->building) rm_model_fault(model, g->err[0] ? g->err : factum_strerror(rc), "", NULL);
        rm_log(model->m, FACTUM_LOG_ERROR, "read model %s stopped: %s", g->def->name,
               g->err[0] ? g->err : factum_strerror(rc));
    }
    return NULL;
}

int rm_gen_start(rm_model *model, rm_ns *ns, int building, rm_gen **out)
{
    rm_gen *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->model = model;
    g->ns = ns;
    g->def = ns->def;
    g->ops = rm_target(ns->def->target);
    g->building = building;
    g->cap = model->m->opts.batch_events;
    if (!(g->page = calloc(g->cap, sizeof *g->page)) || !(g->upfail = calloc(g->cap, sizeof *g->upfail)) ||
        !(g->skip = calloc(g->cap, 1)) || factum_upcast_buf_new(&g->ub)) {
        free(g->page);
        free(g->upfail);
        free(g->skip);
        free(g);
        return -ENOMEM;
    }
    pthread_mutex_lock(&model->mu);
    ns->refs++;
    pthread_mutex_unlock(&model->mu);
    int rc = pthread_create(&g->thread, NULL, gen_main, g);
    if (rc) {
        pthread_mutex_lock(&model->mu);
        rm_ns_unref(ns);
        pthread_mutex_unlock(&model->mu);
        free(g->page);
        free(g->upfail);
        free(g->skip);
        factum_upcast_buf_free(g->ub);
        free(g);
        return -rc;
    }
    *out = g;
    return 0;
}

void rm_gen_set_live(rm_gen *g)
{
    g->building = 0;
}

void rm_gen_hold(rm_gen *g)
{
    if (g->gate || g->def->lifecycle != FACTUM_READMODEL_INLINE) return;
    if (factum_ack_gate_add(store_of(g), g->pos, &g->gate)) g->gate = NULL;
}

void rm_gen_stop(rm_gen *g)
{
    if (!g) return;
    atomic_store(&g->stop, 1);
    pthread_join(g->thread, NULL);
    if (g->gate) factum_ack_gate_remove(g->gate);
    if (g->conn) {
        g->ops->rollback(g->conn);
        g->ops->close(g->conn);
    }
    factum_filter_free(g->filter);
    rm_js_free(g->js);
    factum_reader_free(g->rdr);
    free(g->page);
    for (size_t i = 0; i < g->cap; i++) free(g->upfail[i]);
    free(g->upfail);
    free(g->skip);
    factum_upcast_buf_free(g->ub);
    free(g->vals);
    base_buf_free(&g->scratch);
    rm_model *model = g->model;
    pthread_mutex_lock(&model->mu);
    rm_ns_unref(g->ns);
    pthread_mutex_unlock(&model->mu);
    free(g);
}

int rm_gen_build_upto(rm_model *model, rm_ns *ns, uint64_t upto, char *err, size_t err_len)
{
    rm_gen *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->model = model;
    g->ns = ns;
    g->def = ns->def;
    g->ops = rm_target(ns->def->target);
    g->building = 1;
    g->temporal = 1;
    g->cap = model->m->opts.batch_events;
    factum_store *s = store_of(g);
    int rc = (g->page = calloc(g->cap, sizeof *g->page)) && (g->upfail = calloc(g->cap, sizeof *g->upfail)) &&
                     (g->skip = calloc(g->cap, 1)) && !factum_upcast_buf_new(&g->ub)
                 ? start(g)
                 : -ENOMEM;
    factum_stats st;
    if (!rc) rc = factum_store_get_stats(s, &st);
    uint64_t limit = !rc && upto > st.last_position ? st.last_position : upto;
    factum_asof a = {limit, FACTUM_VALID_ANY};
    while (!rc && g->pos < limit) {
        size_t n = 0;
        uint64_t next = 0;
        holder_bind hb = holder_reader_enter(s, &g->rdr, 1); /* the page before is applied */
        rc = factum_read_all_asof(s, &a, g->pos + 1, FACTUM_FORWARD, g->filter, 65536, g->page, g->cap, &n, &next);
        holder_reader_leave(hb);
        if (rc) {
            snprintf(g->err, sizeof g->err, "reading the log: %s", factum_strerror(rc));
            break;
        }
        uint64_t to = next ? next - 1 : g->pos;
        if (to > limit) to = limit;
        if (n && (rc = upcast_page(g, n))) break;
        if (n) {
            rc = apply_page(g, g->page, n, to);
            if (rc == 1) rc = FACTUM_EFAULTED;
        } else if (to > g->pos) {
            g->pos = to;
        } else {
            break; /* nothing more */
        }
    }
    if (rc) rm_fail(err, err_len, rc, "%s", g->err[0] ? g->err : factum_strerror(rc));
    if (g->conn) {
        g->ops->rollback(g->conn);
        g->ops->close(g->conn);
    }
    factum_filter_free(g->filter);
    rm_js_free(g->js);
    factum_reader_free(g->rdr);
    free(g->page);
    for (size_t i = 0; g->upfail && i < g->cap; i++)
        free(g->upfail[i]);
    free(g->upfail);
    free(g->skip);
    factum_upcast_buf_free(g->ub);
    free(g->vals);
    base_buf_free(&g->scratch);
    free(g);
    return rc;
}

uint64_t rm_gen_pos(const rm_gen *g)
{
    /* Another thread's view of the generation's thread's pos (TSan found the plain read racing). */
    return atomic_load_explicit(&((rm_gen *)g)->pos_shown, memory_order_relaxed);
}
