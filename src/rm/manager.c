/*
 * manager.c - the read models of a store (factum_readmodel.h): their
 * definitions, kept in the `$readmodels` stream (one `$ReadModel` event per
 * change, the latest of a name wins), their lifecycle (create, pause,
 * resume, rebuild, drop), status, waits and queries.
 *
 * Locks: admin_mu orders administrative calls (each appends its record
 * while holding it; appliers never take it, and a rebuild's switch only
 * tries it). A model's mu guards its generations, state and waiters; it is
 * never held while appending or joining a thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/json.h"
#include "rm/rm.h"

struct rm_waiter {
    uint64_t position;
    void (*cb)(void *ctx, int rc);
    void *ctx;
    rm_waiter *next;
};

void factum_readmodels_options_init(factum_readmodels_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch_events = 2000;
    o->start = 1;
}

void rm_log(rm_mgr *m, int level, const char *fmt, ...)
{
    if (!m->opts.log_fn) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    m->opts.log_fn(m->opts.log_ctx, level, msg);
}

/* ---- namespaces and models ------------------------------------------- */

static rm_ns *ns_new(rm_model *model, rm_def *def, uint64_t gen)
{
    rm_ns *ns = calloc(1, sizeof *ns);
    if (!ns) return NULL;
    ns->model = model;
    ns->def = def;
    ns->gen = gen;
    ns->refs = 1;
    return ns;
}

void rm_ns_unref(rm_ns *ns)
{
    if (!ns || --ns->refs > 0) return;
    const rm_target_ops *o = rm_target(ns->def->target);
    for (int i = 0; i < ns->n_idle; i++)
        o->close(ns->idle[i]);
    if (ns->retired) {
        char err[256] = "";
        if (o->drop(ns->def, ns->model->m->dir, ns->gen, err, sizeof err))
            rm_log(ns->model->m, FACTUM_LOG_WARN, "read model %s: deleting generation %" PRIu64 ": %s",
                   ns->def->name, ns->gen, err);
    }
    rm_def_free(ns->def);
    free(ns);
}

static rm_model *model_new(rm_mgr *m, const char *name)
{
    rm_model *model = calloc(1, sizeof *model);
    if (!model) return NULL;
    model->m = m;
    snprintf(model->name, sizeof model->name, "%s", name);
    pthread_mutex_init(&model->mu, NULL);
    pthread_cond_init(&model->cv, NULL);
    model->state = FACTUM_READMODEL_STARTING;
    model->rate_t0_ns = base_mono_ns();
    return model;
}

static void fire_waiters(rm_model *model, int all, int rc)
{
    /* model->mu held; callbacks run outside it */
    uint64_t p = atomic_load(&model->position);
    rm_waiter *fire = NULL, **pp = &model->waiters;
    while (*pp) {
        rm_waiter *w = *pp;
        if (all || w->position <= p) {
            *pp = w->next;
            w->next = fire;
            fire = w;
            atomic_fetch_sub(&model->n_waiting, 1);
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&model->mu);
    while (fire) {
        rm_waiter *w = fire;
        fire = w->next;
        w->cb(w->ctx, all ? rc : 0);
        free(w);
    }
    pthread_mutex_lock(&model->mu);
}

void rm_model_publish(rm_model *model, uint64_t p)
{
    /* RM-4: only forward. */
    uint64_t cur = atomic_load(&model->position);
    while (p > cur && !atomic_compare_exchange_weak(&model->position, &cur, p)) {
    }
    uint64_t now = base_mono_ns();
    if (now - model->rate_t0_ns > 2000000000u) {
        uint64_t n = atomic_load(&model->applied);
        model->rate = (double)(n - model->rate_n0) * 1e9 / (double)(now - model->rate_t0_ns);
        model->rate_t0_ns = now;
        model->rate_n0 = n;
    }
    if (!atomic_load(&model->n_waiting)) return;
    pthread_mutex_lock(&model->mu);
    pthread_cond_broadcast(&model->cv);
    if (model->waiters) fire_waiters(model, 0, 0);
    pthread_mutex_unlock(&model->mu);
}

void rm_model_fault(rm_model *model, const char *error, const char *statement, const factum_event *ev)
{
    pthread_mutex_lock(&model->mu);
    model->state = FACTUM_READMODEL_FAULTED;
    snprintf(model->error, sizeof model->error, "%s", error);
    snprintf(model->statement, sizeof model->statement, "%s", statement ? statement : "");
    model->error_position = ev ? ev->position : 0;
    model->error_version = ev ? ev->version : 0;
    snprintf(model->error_stream, sizeof model->error_stream, "%s", ev ? ev->stream : "");
    pthread_cond_broadcast(&model->cv);
    if (!model->build) fire_waiters(model, 1, FACTUM_EFAULTED);
    pthread_mutex_unlock(&model->mu);
    if (ev)
        rm_log(model->m, FACTUM_LOG_ERROR,
               "read model %s stopped at the event at position %" PRIu64 " (%s@%" PRIu64 "): %s; statement: %s",
               model->name, ev->position, ev->stream, ev->version, error, statement);
}

/* ---- records in $readmodels ------------------------------------------ */

static int append_record(rm_mgr *m, const char *name, const rm_def *def, uint64_t gen, int paused,
                         const rm_def *build, uint64_t build_gen, int dropped)
{
    base_buf b = {0};
    int rc = -ENOMEM;
    if (base_buf_append(&b, "{\"name\":", 8) || json_write_string(&b, name, strlen(name))) goto out;
    if (dropped) {
        if (base_buf_append(&b, ",\"dropped\":true}", 16)) goto out;
    } else {
        if (base_buf_printf(&b, ",\"generation\":%" PRIu64 ",\"paused\":%s,\"definition\":%s", gen,
                            paused ? "true" : "false", def->json))
            goto out;
        if (build && base_buf_printf(&b, ",\"building\":%" PRIu64 ",\"buildDefinition\":%s", build_gen, build->json))
            goto out;
        if (base_buf_append(&b, "}", 1)) goto out;
    }
    factum_event_data e = {0};
    e.type = RM_TYPE;
    e.flags = FACTUM_EVENT_JSON;
    e.data = b.data;
    e.data_len = b.len;
    rc = factum_append(m->s, RM_STREAM, FACTUM_ANY, &e, 1, NULL);
out:
    base_buf_free(&b);
    return rc;
}

static rm_model *find(rm_mgr *m, const char *name)
{
    for (rm_model *x = m->models; x; x = x->next)
        if (!strcmp(x->name, name)) return x;
    return NULL;
}

static rm_model *find_locked(rm_mgr *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    rm_model *x = name ? find(m, name) : NULL;
    pthread_mutex_unlock(&m->mu);
    return x;
}

/* Start the live applier of a model (admin_mu held, not running). */
static int start_live(rm_model *model)
{
    rm_gen *g;
    pthread_mutex_lock(&model->mu);
    model->state = FACTUM_READMODEL_STARTING;
    model->is_live = 0;
    model->error[0] = model->statement[0] = model->error_stream[0] = 0;
    rm_ns *ns = model->ns;
    pthread_mutex_unlock(&model->mu);
    int rc = rm_gen_start(model, ns, 0, &g);
    if (rc) return rc;
    pthread_mutex_lock(&model->mu);
    model->live = g;
    pthread_mutex_unlock(&model->mu);
    return 0;
}

static void stop_live(rm_model *model)
{
    pthread_mutex_lock(&model->mu);
    rm_gen *g = model->live;
    model->live = NULL;
    pthread_mutex_unlock(&model->mu);
    rm_gen_stop(g);
}

static void stop_build(rm_model *model, int retire)
{
    pthread_mutex_lock(&model->mu);
    rm_gen *g = model->build;
    rm_ns *ns = model->build_ns;
    model->build = NULL;
    model->build_ns = NULL;
    pthread_mutex_unlock(&model->mu);
    rm_gen_stop(g);
    if (ns) {
        pthread_mutex_lock(&model->mu);
        ns->retired = retire;
        rm_ns_unref(ns);
        pthread_mutex_unlock(&model->mu);
    }
}

static void model_free(rm_model *model)
{
    stop_build(model, 0);
    stop_live(model);
    pthread_mutex_lock(&model->mu);
    fire_waiters(model, 1, FACTUM_ECLOSED);
    rm_ns_unref(model->ns);
    model->ns = NULL;
    pthread_mutex_unlock(&model->mu);
    pthread_mutex_destroy(&model->mu);
    pthread_cond_destroy(&model->cv);
    free(model);
}

int rm_model_switch(rm_model *model, rm_gen *g, uint64_t p)
{
    rm_mgr *m = model->m;
    if (pthread_mutex_trylock(&m->admin_mu)) return 0; /* an administrative call runs: later */
    pthread_mutex_lock(&model->mu);
    /* Paused: the rebuild waits for the resume to switch. */
    int ok = model->build == g && !model->paused && p >= atomic_load(&model->position);
    rm_ns *bns = model->build_ns, *old_ns = model->ns;
    pthread_mutex_unlock(&model->mu);
    if (!ok) {
        pthread_mutex_unlock(&m->admin_mu);
        return 0;
    }
    /* RM-6: stored first; a crash after this opens the new generation. */
    int rc = append_record(m, model->name, bns->def, bns->gen, 0, NULL, 0, 0);
    if (rc) {
        pthread_mutex_unlock(&m->admin_mu);
        rm_log(m, FACTUM_LOG_WARN, "read model %s: storing the switch to generation %" PRIu64 ": %s", model->name,
               bns->gen, factum_strerror(rc));
        return 0;
    }
    pthread_mutex_lock(&model->mu);
    rm_gen *old = model->live;
    model->live = g;
    model->ns = bns;
    model->build = NULL;
    model->build_ns = NULL;
    old_ns->retired = 1;
    rm_gen_set_live(g);
    model->state = FACTUM_READMODEL_RUNNING;
    model->error[0] = model->statement[0] = model->error_stream[0] = 0;
    model->is_live = 1;
    pthread_mutex_unlock(&model->mu);
    rm_log(m, FACTUM_LOG_INFO, "read model %s: generation %" PRIu64 " replaces %" PRIu64 " at position %" PRIu64,
           model->name, bns->gen, old_ns->gen, p);
    rm_gen_hold(g); /* before the old generation lets go of its gate (RM-5) */
    rm_gen_stop(old);
    pthread_mutex_lock(&model->mu);
    rm_ns_unref(old_ns); /* the model's reference */
    pthread_mutex_unlock(&model->mu);
    rm_model_publish(model, p);
    pthread_mutex_unlock(&m->admin_mu);
    return 1;
}

/* ---- open / close ---------------------------------------------------- */

static int mkdirs(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
    return 0;
}

/* One record's state, while reading $readmodels. */
typedef struct rec {
    char name[RM_NAME_MAX + 1];
    char *def, *build_def;
    uint64_t gen, build_gen;
    int paused;
    struct rec *next;
} rec;

static void rec_free(rec *r)
{
    free(r->def);
    free(r->build_def);
    free(r);
}

static int load(rm_mgr *m, rec **out)
{
    rec *list = NULL;
    factum_event evs[64];
    uint64_t from = 0;
    int rc = 0;
    while (1) {
        size_t n = 0;
        uint64_t next = FACTUM_END;
        rc = factum_read_stream(m->s, RM_STREAM, from, FACTUM_FORWARD, evs, 64, &n, &next);
        if (rc == FACTUM_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) break;
        for (size_t i = 0; i < n; i++) {
            json_value *v = NULL;
            if (json_parse((const char *)evs[i].data, evs[i].data_len, &v)) {
                rm_log(m, FACTUM_LOG_WARN, "$readmodels@%" PRIu64 " is not JSON: ignored", evs[i].version);
                continue;
            }
            const json_value *nm = json_get(v, "name");
            if (!nm || nm->type != JSON_STRING || !rm_name_ok(nm->str)) {
                json_free(v);
                continue;
            }
            rec **pp = &list;
            while (*pp && strcmp((*pp)->name, nm->str))
                pp = &(*pp)->next;
            if (*pp) {
                rec *old = *pp;
                *pp = old->next;
                rec_free(old);
            }
            const json_value *d = json_get(v, "dropped");
            if (d && d->type == JSON_TRUE) {
                json_free(v);
                continue;
            }
            rec *r = calloc(1, sizeof *r);
            base_buf b = {0}, bb = {0};
            const json_value *def = json_get(v, "definition"), *bdef = json_get(v, "buildDefinition");
            int64_t g = 0, bg = 0;
            const json_value *x;
            if (!r || !def || json_write_value(&b, def) || base_buf_append(&b, "", 1) ||
                ((x = json_get(v, "generation")) && json_int64(x, &g))) {
                base_buf_free(&b);
                free(r);
                json_free(v);
                rc = r ? FACTUM_ECORRUPT : -ENOMEM;
                goto out;
            }
            snprintf(r->name, sizeof r->name, "%s", nm->str);
            r->def = (char *)b.data;
            r->gen = g > 0 ? (uint64_t)g : 1;
            r->paused = (x = json_get(v, "paused")) && x->type == JSON_TRUE;
            if (bdef && bdef->type == JSON_OBJECT && (x = json_get(v, "building")) && !json_int64(x, &bg) && bg > 0 &&
                !json_write_value(&bb, bdef) && !base_buf_append(&bb, "", 1)) {
                r->build_def = (char *)bb.data;
                r->build_gen = (uint64_t)bg;
            } else {
                base_buf_free(&bb);
            }
            r->next = list;
            list = r;
            json_free(v);
        }
        if (next == FACTUM_END) break;
        from = next;
    }
out:
    if (rc) {
        while (list) {
            rec *r = list;
            list = r->next;
            rec_free(r);
        }
        return rc;
    }
    *out = list;
    return 0;
}

static int add_model(rm_mgr *m, const char *name, rm_def *def, uint64_t gen, int paused, rm_def *build_def,
                     uint64_t build_gen, rm_model **out)
{
    rm_model *model = model_new(m, name);
    if (!model || !(model->ns = ns_new(model, def, gen))) {
        free(model);
        rm_def_free(def);
        rm_def_free(build_def);
        return -ENOMEM;
    }
    model->paused = paused;
    if (paused) model->state = FACTUM_READMODEL_PAUSED;
    pthread_mutex_lock(&m->mu);
    model->next = m->models;
    m->models = model;
    pthread_mutex_unlock(&m->mu);
    int rc = 0;
    if (!paused && m->opts.start) rc = start_live(model);
    if (!rc && build_def && m->opts.start) {
        if (!(model->build_ns = ns_new(model, build_def, build_gen)))
            rc = -ENOMEM;
        else if ((rc = rm_gen_start(model, model->build_ns, 1, &model->build)))
            model->build = NULL;
    } else if (build_def) {
        rm_def_free(build_def);
    }
    if (out) *out = model;
    return rc;
}

int factum_readmodels_open(factum_store *s, const factum_readmodels_options *o, factum_readmodels **out)
{
    if (!s || !out) return FACTUM_EINVAL;
    rm_mgr *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->s = s;
    if (o)
        m->opts = *o;
    else
        factum_readmodels_options_init(&m->opts);
    if (!m->opts.batch_events) m->opts.batch_events = 2000;
    if (m->opts.batch_events > 100000) m->opts.batch_events = 100000;
    pthread_mutex_init(&m->admin_mu, NULL);
    pthread_mutex_init(&m->mu, NULL);
    int rc = 0;
    if (m->opts.dir) {
        m->dir = strdup(m->opts.dir);
    } else {
        const char *path = factum_store_path(s);
        size_t n = strlen(path) + 16;
        if ((m->dir = malloc(n))) snprintf(m->dir, n, "%s/readmodels", path);
    }
    if (!m->dir) rc = -ENOMEM;
    if (!rc) rc = mkdirs(m->dir);
    rec *list = NULL;
    if (!rc) rc = load(m, &list);
    while (list) {
        rec *r = list;
        list = r->next;
        if (!rc) {
            rm_def *def = NULL, *bdef = NULL;
            char err[512];
            int prc = rm_def_parse(r->def, strlen(r->def), &def, err, sizeof err);
            if (prc) {
                rm_log(m, FACTUM_LOG_ERROR, "read model %s: its stored definition is refused: %s", r->name, err);
            } else {
                if (r->build_def && rm_def_parse(r->build_def, strlen(r->build_def), &bdef, err, sizeof err)) bdef = NULL;
                rc = add_model(m, r->name, def, r->gen, r->paused, bdef, r->build_gen, NULL);
            }
        }
        rec_free(r);
    }
    if (rc) {
        factum_readmodels_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void factum_readmodels_close(factum_readmodels *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->admin_mu);
    m->closing = 1;
    pthread_mutex_unlock(&m->admin_mu);
    while (m->models) {
        rm_model *x = m->models;
        m->models = x->next;
        model_free(x);
    }
    while (m->dropped) {
        rm_model *x = m->dropped;
        m->dropped = x->next;
        model_free(x);
    }
    pthread_mutex_destroy(&m->admin_mu);
    pthread_mutex_destroy(&m->mu);
    free(m->dir);
    free(m);
}

/* ---- administration --------------------------------------------------- */

static int check_def(rm_mgr *m, const char *definition, size_t len, rm_def **out, char *err, size_t err_len)
{
    if (!definition) return rm_fail(err, err_len, FACTUM_EINVAL, "no definition");
    int rc = rm_def_parse(definition, len, out, err, err_len);
    if (rc) return rc;
    rc = rm_target((*out)->target)->check(*out, m->dir, err, err_len);
    if (!rc && (*out)->script) rc = rm_js_check(*out, err, err_len); /* JavaScript handlers (js.c) */
    if (rc) {
        rm_def_free(*out);
        *out = NULL;
    }
    return rc;
}

int factum_readmodel_create(factum_readmodels *m, const char *definition, size_t len, char *err, size_t err_len)
{
    if (!m) return FACTUM_EINVAL;
    if (err && err_len) err[0] = 0;
    rm_def *def;
    int rc = check_def(m, definition, len, &def, err, err_len);
    if (rc) return rc;
    pthread_mutex_lock(&m->admin_mu);
    if (m->closing) {
        rc = FACTUM_ECLOSED;
    } else if (find_locked(m, def->name)) {
        rc = rm_fail(err, err_len, FACTUM_EEXISTS, "read model %s exists already", def->name);
    } else {
        /* A namespace left by a model of the same name dropped earlier. */
        char e2[256];
        rm_target(def->target)->drop(def, m->dir, 1, e2, sizeof e2);
        rc = append_record(m, def->name, def, 1, 0, NULL, 0, 0);
        if (!rc) {
            char name[RM_NAME_MAX + 1];
            strcpy(name, def->name);
            rc = add_model(m, name, def, 1, 0, NULL, 0, NULL);
            def = NULL;
        }
    }
    pthread_mutex_unlock(&m->admin_mu);
    rm_def_free(def);
    return rc;
}

int factum_readmodel_pause(factum_readmodels *m, const char *name)
{
    if (!m) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->admin_mu);
    rm_model *x = find_locked(m, name);
    int rc = 0;
    if (!x) {
        rc = FACTUM_ENOTFOUND;
    } else if (!x->paused) {
        stop_live(x); /* first: its gate would hold our own append */
        pthread_mutex_lock(&x->mu);
        x->paused = 1;
        if (x->state != FACTUM_READMODEL_FAULTED) x->state = FACTUM_READMODEL_PAUSED;
        x->is_live = 0;
        rm_def *bdef = x->build_ns ? x->build_ns->def : NULL;
        uint64_t bgen = x->build_ns ? x->build_ns->gen : 0;
        pthread_mutex_unlock(&x->mu);
        rc = append_record(m, x->name, x->ns->def, x->ns->gen, 1, bdef, bgen, 0);
    }
    pthread_mutex_unlock(&m->admin_mu);
    return rc;
}

int factum_readmodel_resume(factum_readmodels *m, const char *name)
{
    if (!m) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->admin_mu);
    rm_model *x = find_locked(m, name);
    int rc = 0;
    if (!x) {
        rc = FACTUM_ENOTFOUND;
    } else if (x->paused || x->state == FACTUM_READMODEL_FAULTED || !x->live) {
        stop_live(x); /* a faulted one's thread has ended */
        rm_def *bdef = x->build_ns ? x->build_ns->def : NULL;
        uint64_t bgen = x->build_ns ? x->build_ns->gen : 0;
        rc = append_record(m, x->name, x->ns->def, x->ns->gen, 0, bdef, bgen, 0);
        if (!rc) {
            pthread_mutex_lock(&x->mu);
            x->paused = 0;
            pthread_mutex_unlock(&x->mu);
            rc = start_live(x);
        }
    }
    pthread_mutex_unlock(&m->admin_mu);
    return rc;
}

int factum_readmodel_rebuild(factum_readmodels *m, const char *name, const char *definition, size_t len, char *err,
                             size_t err_len)
{
    if (!m) return FACTUM_EINVAL;
    if (err && err_len) err[0] = 0;
    rm_model *x = find_locked(m, name);
    if (!x) return FACTUM_ENOTFOUND;
    rm_def *def;
    int rc;
    if (definition) {
        rc = check_def(m, definition, len, &def, err, err_len);
    } else {
        pthread_mutex_lock(&x->mu);
        const char *j = x->ns->def->json;
        rc = rm_def_parse(j, strlen(j), &def, err, err_len);
        pthread_mutex_unlock(&x->mu);
    }
    if (rc) return rc;
    if (strcmp(def->name, name)) {
        rc = rm_fail(err, err_len, FACTUM_EINVAL, "the definition is named %s, not %s", def->name, name);
        rm_def_free(def);
        return rc;
    }
    pthread_mutex_lock(&m->admin_mu);
    if (find_locked(m, name) != x) {
        rc = FACTUM_ENOTFOUND;
        goto out;
    }
    uint64_t gen = x->ns->gen;
    pthread_mutex_lock(&x->mu);
    if (x->build_ns && x->build_ns->gen > gen) gen = x->build_ns->gen;
    pthread_mutex_unlock(&x->mu);
    stop_build(x, 1);
    gen++;
    char e2[256];
    rm_target(def->target)->drop(def, m->dir, gen, e2, sizeof e2); /* leftovers of an interrupted drop */
    if ((rc = append_record(m, x->name, x->ns->def, x->ns->gen, x->paused, def, gen, 0))) goto out;
    rm_ns *ns = ns_new(x, def, gen);
    if (!ns) {
        rc = -ENOMEM;
        goto out;
    }
    def = NULL;
    pthread_mutex_lock(&x->mu);
    x->build_ns = ns;
    pthread_mutex_unlock(&x->mu);
    rm_gen *g;
    if ((rc = rm_gen_start(x, ns, 1, &g))) goto out;
    pthread_mutex_lock(&x->mu);
    x->build = g;
    pthread_mutex_unlock(&x->mu);
out:
    pthread_mutex_unlock(&m->admin_mu);
    rm_def_free(def);
    return rc;
}

int factum_readmodel_drop(factum_readmodels *m, const char *name)
{
    if (!m) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->admin_mu);
    rm_model *x = find_locked(m, name);
    int rc = 0;
    if (!x) {
        rc = FACTUM_ENOTFOUND;
    } else {
        stop_build(x, 1);
        stop_live(x);
        rc = append_record(m, x->name, NULL, 0, 0, NULL, 0, 1);
        if (!rc) {
            pthread_mutex_lock(&m->mu);
            rm_model **pp = &m->models;
            while (*pp != x)
                pp = &(*pp)->next;
            *pp = x->next;
            pthread_mutex_unlock(&m->mu);
            pthread_mutex_lock(&x->mu);
            x->ns->retired = 1;
            fire_waiters(x, 1, FACTUM_ENOTFOUND);
            pthread_cond_broadcast(&x->cv);
            pthread_mutex_unlock(&x->mu);
            /* Queries running on it hold references; a query that looked
             * the model up just before holds none: models are freed only
             * at close (kept on a list of the dropped). */
            pthread_mutex_lock(&x->mu);
            rm_ns_unref(x->ns);
            x->ns = NULL;
            pthread_mutex_unlock(&x->mu);
            pthread_mutex_lock(&m->mu);
            x->next = m->dropped;
            m->dropped = x;
            pthread_mutex_unlock(&m->mu);
        }
    }
    pthread_mutex_unlock(&m->admin_mu);
    return rc;
}

/* ---- status ---------------------------------------------------------- */

static void fill_status(rm_mgr *m, rm_model *x, factum_readmodel_status *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&x->mu);
    snprintf(st->name, sizeof st->name, "%s", x->name);
    const rm_def *d = x->ns->def;
    snprintf(st->target, sizeof st->target, "%s", rm_target(d->target)->name);
    st->lifecycle = d->lifecycle;
    st->state = x->state;
    st->generation = x->ns->gen;
    st->position = atomic_load(&x->position);
    st->applied = atomic_load(&x->applied);
    st->skipped = atomic_load(&x->skipped);
    st->parked = atomic_load(&x->parked);
    st->events_per_second = x->rate;
    if (x->build_ns) {
        st->building = x->build_ns->gen;
        st->building_position = x->build ? rm_gen_pos(x->build) : 0;
    }
    snprintf(st->error, sizeof st->error, "%s", x->error);
    snprintf(st->statement, sizeof st->statement, "%s", x->statement);
    st->error_position = x->error_position;
    snprintf(st->error_stream, sizeof st->error_stream, "%s", x->error_stream);
    st->error_version = x->error_version;
    snprintf(st->readers, sizeof st->readers, "%s", d->readers);
    st->live = x->is_live && x->state == FACTUM_READMODEL_RUNNING;
    pthread_mutex_unlock(&x->mu);
    factum_stats fs;
    st->head = factum_store_get_stats(m->s, &fs) ? st->position : fs.last_position;
    st->lag_events = st->head > st->position ? st->head - st->position : 0;
    if (st->lag_events) {
        factum_event ev;
        if (!factum_read_position(m->s, st->position + 1, &ev)) {
            int64_t age = base_now_ns() - ev.timestamp_ns;
            st->lag_ns = age > 0 ? age : 0;
        }
    }
}

int factum_readmodel_get_status(factum_readmodels *m, const char *name, factum_readmodel_status *st)
{
    if (!m || !st) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->mu);
    rm_model *x = find(m, name);
    if (x) fill_status(m, x, st);
    pthread_mutex_unlock(&m->mu);
    return x ? 0 : FACTUM_ENOTFOUND;
}

int factum_readmodels_each(factum_readmodels *m, int (*cb)(void *ctx, const factum_readmodel_status *st), void *ctx)
{
    if (!m || !cb) return FACTUM_EINVAL;
    /* By name: collect the names first (cb may call back into us). */
    pthread_mutex_lock(&m->mu);
    size_t n = 0;
    for (rm_model *x = m->models; x; x = x->next)
        n++;
    char(*names)[RM_NAME_MAX + 1] = calloc(n ? n : 1, sizeof *names);
    if (!names) {
        pthread_mutex_unlock(&m->mu);
        return -ENOMEM;
    }
    size_t i = 0;
    for (rm_model *x = m->models; x; x = x->next)
        strcpy(names[i++], x->name);
    pthread_mutex_unlock(&m->mu);
    qsort(names, n, sizeof *names, (int (*)(const void *, const void *))strcmp);
    int rc = 0;
    for (i = 0; i < n && !rc; i++) {
        factum_readmodel_status st;
        if (factum_readmodel_get_status(m, names[i], &st)) continue;
        rc = cb(ctx, &st);
    }
    free(names);
    return rc;
}

int factum_readmodel_get_definition(factum_readmodels *m, const char *name, char **out)
{
    if (!m || !out) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->mu);
    rm_model *x = find(m, name);
    int rc = FACTUM_ENOTFOUND;
    if (x) {
        pthread_mutex_lock(&x->mu);
        rc = (*out = strdup(x->ns->def->json)) ? 0 : -ENOMEM;
        pthread_mutex_unlock(&x->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- waiting ---------------------------------------------------------- */

int factum_readmodel_wait(factum_readmodels *m, const char *name, uint64_t position, int timeout_ms)
{
    if (!m) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->mu);
    rm_model *x = find(m, name);
    if (!x) {
        pthread_mutex_unlock(&m->mu);
        return FACTUM_ENOTFOUND;
    }
    pthread_mutex_lock(&x->mu);
    pthread_mutex_unlock(&m->mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    int rc = 0;
    atomic_fetch_add(&x->n_waiting, 1);
    while (atomic_load(&x->position) < position) {
        if (x->state == FACTUM_READMODEL_FAULTED && !x->build) { /* a rebuild may still get there */
            rc = FACTUM_EFAULTED;
            break;
        }
        if (!x->ns) {
            rc = FACTUM_ENOTFOUND;
            break;
        }
        if (timeout_ms == 0) {
            rc = FACTUM_ETIMEDOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&x->cv, &x->mu);
        } else if (pthread_cond_timedwait(&x->cv, &x->mu, &dl) == ETIMEDOUT) {
            rc = atomic_load(&x->position) >= position ? 0 : FACTUM_ETIMEDOUT;
            break;
        }
    }
    atomic_fetch_sub(&x->n_waiting, 1);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int factum_readmodel_wait_async(factum_readmodels *m, const char *name, uint64_t position,
                                void (*cb)(void *ctx, int rc), void *ctx, factum_readmodel_waiter **out)
{
    if (!m || !cb || !out) return FACTUM_EINVAL;
    *out = NULL;
    pthread_mutex_lock(&m->mu);
    rm_model *x = find(m, name);
    if (!x) {
        pthread_mutex_unlock(&m->mu);
        return FACTUM_ENOTFOUND;
    }
    pthread_mutex_lock(&x->mu);
    pthread_mutex_unlock(&m->mu);
    int rc;
    if (atomic_load(&x->position) >= position) {
        rc = 1;
    } else if (x->state == FACTUM_READMODEL_FAULTED && !x->build) {
        rc = FACTUM_EFAULTED;
    } else {
        rm_waiter *w = calloc(1, sizeof *w);
        if (!w) {
            rc = -ENOMEM;
        } else {
            w->position = position;
            w->cb = cb;
            w->ctx = ctx;
            w->next = x->waiters;
            x->waiters = w;
            atomic_fetch_add(&x->n_waiting, 1);
            *out = (factum_readmodel_waiter *)w;
            rc = 0;
        }
    }
    /* The position may have moved between the check and the insertion:
     * publish locks mu when n_waiting > 0, so it sees this waiter. */
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int factum_readmodel_wait_cancel(factum_readmodels *m, factum_readmodel_waiter *wv)
{
    if (!m || !wv) return 0;
    rm_waiter *w = (rm_waiter *)wv;
    int found = 0;
    pthread_mutex_lock(&m->mu);
    for (rm_model *x = m->models; x && !found; x = x->next) {
        pthread_mutex_lock(&x->mu);
        for (rm_waiter **pp = &x->waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                atomic_fetch_sub(&x->n_waiting, 1);
                found = 1;
                break;
            }
        pthread_mutex_unlock(&x->mu);
    }
    pthread_mutex_unlock(&m->mu);
    if (found) free(w);
    return found;
}

/* ---- queries ---------------------------------------------------------- */

static int named_param(void *ctx, const char *name, size_t len, rm_param *p, char *err, size_t err_len)
{
    (void)ctx, (void)err, (void)err_len;
    p->src = RMP_NAMED;
    if (!(p->path = malloc(len + 1))) return -ENOMEM;
    memcpy(p->path, name, len);
    p->path[len] = 0;
    return 0;
}

/* Take a reference on the live namespace and a connection to it. */
static int acquire(rm_mgr *m, const char *name, rm_ns **ns_out, rm_conn **c_out, char *err, size_t err_len)
{
    pthread_mutex_lock(&m->mu);
    rm_model *x = find(m, name);
    if (!x) {
        pthread_mutex_unlock(&m->mu);
        return FACTUM_ENOTFOUND;
    }
    pthread_mutex_lock(&x->mu);
    pthread_mutex_unlock(&m->mu);
    rm_ns *ns = x->ns;
    int faulted = x->state == FACTUM_READMODEL_FAULTED;
    ns->refs++;
    rm_conn *c = ns->n_idle ? ns->idle[--ns->n_idle] : NULL;
    pthread_mutex_unlock(&x->mu);
    const rm_target_ops *o = rm_target(ns->def->target);
    int rc = 0;
    if (!c) rc = o->open(ns->def, m->dir, ns->gen, 0, 1, &c, err, err_len);
    if (!atomic_load(&ns->ready)) {
        /* Have its tables been created? (Yes for a generation opened
         * from before, paused or not; maybe not yet for a new one.) */
        int init = rc ? 0 : o->initialized(c, err, err_len);
        if (init == 1) {
            atomic_store(&ns->ready, 1);
        } else if (init == 0) {
            if (c) o->close(c);
            c = NULL;
            if (faulted)
                rc = rm_fail(err, err_len, FACTUM_EFAULTED, "read model %s could not start (its status says why)", name);
            else
                rc = rm_fail(err, err_len, FACTUM_EBADSTATE,
                          "read model %s is starting (its tables are being created): try again, or wait for a "
                          "position",
                          name);
        } else {
            rc = init;
        }
    }
    if (rc) {
        if (c) o->close(c);
        pthread_mutex_lock(&x->mu);
        rm_ns_unref(ns);
        pthread_mutex_unlock(&x->mu);
        return rc;
    }
    *ns_out = ns;
    *c_out = c;
    return 0;
}

static void release(rm_ns *ns, rm_conn *c, int keep)
{
    rm_model *x = ns->model;
    const rm_target_ops *ops = rm_target(ns->def->target);
    pthread_mutex_lock(&x->mu);
    if (keep && ns->n_idle < 4 && !ns->retired) {
        ns->idle[ns->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    /* Closed before the reference goes: the last one frees ns (and, retired,
     * deletes its tables), so nothing of ns is touched after it. */
    if (c) ops->close(c);
    pthread_mutex_lock(&x->mu);
    rm_ns_unref(ns);
    pthread_mutex_unlock(&x->mu);
}

/* What every query checks before it runs: the limits (defaults, caps),
 * parameters that are a JSON object, and a statement that reads: a SELECT,
 * WITH ... SELECT or VALUES, nothing else (VACUUM INTO, for one, would
 * write a file even on a read-only connection). */
static int query_check(const char *sql, const char *params_json, const factum_query_options *o,
                       uint32_t *row_limit, uint32_t *time_limit, size_t *params_len, char *err, size_t err_len)
{
    *row_limit = o->row_limit ? o->row_limit : 1000;
    if (*row_limit > 100000) *row_limit = 100000;
    *time_limit = o->time_limit_ms ? o->time_limit_ms : 5000;
    *params_len = params_json ? strlen(params_json) : 0;
    if (params_json) {
        json_value *pv = NULL;
        int prc = json_parse(params_json, *params_len, &pv);
        int obj = !prc && pv->type == JSON_OBJECT;
        json_free(pv);
        if (!obj) return rm_fail(err, err_len, FACTUM_EINVAL, "the parameters must be a JSON object");
    }
    char kw[16];
    if (!rm_first_keyword(sql, kw, sizeof kw) || (strcmp(kw, "SELECT") && strcmp(kw, "WITH") && strcmp(kw, "VALUES")))
        return rm_fail(err, err_len, FACTUM_EINVAL, "queries are read-only: a SELECT, WITH ... SELECT or VALUES statement");
    return 0;
}

int factum_readmodel_query(factum_readmodels *m, const char *name, const char *sql, const char *params_json,
                           const factum_query_options *o, char **out, char *err, size_t err_len)
{
    if (!m || !sql || !out) return FACTUM_EINVAL;
    if (err && err_len) err[0] = 0;
    factum_query_options def;
    if (!o) {
        factum_query_options_init(&def);
        o = &def;
    }
    uint32_t row_limit, time_limit;
    size_t params_len;
    int rc = query_check(sql, params_json, o, &row_limit, &time_limit, &params_len, err, err_len);
    if (rc) return rc;
    if (o->min_position) {
        rc = factum_readmodel_wait(m, name, o->min_position, o->wait_ms);
        if (rc == FACTUM_ETIMEDOUT)
            return rm_fail(err, err_len, rc, "the read model did not reach position %" PRIu64 " within %d ms",
                        o->min_position, o->wait_ms);
        if (rc) return rc;
    }
    rm_ns *ns = NULL;
    rm_conn *c = NULL;
    rc = acquire(m, name, &ns, &c, err, err_len);
    if (rc) return rc;
    rm_stmt st;
    base_buf b = {0};
    rc = rm_stmt_compile(&st, sql, ns->def->target, named_param, NULL, err, err_len);
    if (!rc) {
        rc = base_buf_append(&b, "{", 1) ? -ENOMEM : 0;
        if (!rc)
            rc = rm_target(ns->def->target)->query(c, &st, params_json, params_len, row_limit, time_limit, &b, err,
                                                   err_len);
        rm_stmt_free(&st);
    }
    release(ns, c, rc != FACTUM_ETARGET);
    if (!rc) {
        factum_readmodel_status s;
        if (!factum_readmodel_get_status(m, name, &s) &&
            base_buf_printf(&b, ",\"position\":%" PRIu64 ",\"lag_events\":%" PRIu64 ",\"lag_ms\":%" PRId64 "}",
                            s.position, s.lag_events, s.lag_ns / 1000000))
            rc = -ENOMEM;
        if (!rc && base_buf_append(&b, "", 1)) rc = -ENOMEM;
    }
    if (rc) {
        base_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}

int factum_readmodel_parked(factum_readmodels *m, const char *name, uint32_t limit, char **out, char *err,
                            size_t err_len)
{
    factum_query_options o;
    factum_query_options_init(&o);
    o.row_limit = limit ? limit : 1000;
    return factum_readmodel_query(m, name,
                                  "SELECT position, stream, version, type, event_id, statement, error, parked_ms "
                                  "FROM factum_parked ORDER BY position",
                                  NULL, &o, out, err, err_len);
}

/* ---- temporal queries -------------------------------------------------- */

/* Generations of temporal queries are numbered from here (rebuilds count
 * from 1 upwards and never get near it), one number per query. */
#define RM_TEMPORAL_GEN_BASE (1ull << 48)
static _Atomic uint64_t temporal_seq;

int factum_readmodel_query_asof(factum_readmodels *m, const char *name, uint64_t position, const char *sql,
                                const char *params_json, const factum_query_options *o, char **out, char *err,
                                size_t err_len)
{
    if (!m || !sql || !out) return FACTUM_EINVAL;
    if (err && err_len) err[0] = 0;
    factum_query_options def_o;
    if (!o) {
        factum_query_options_init(&def_o);
        o = &def_o;
    }
    uint32_t row_limit, time_limit;
    size_t params_len;
    int rc = query_check(sql, params_json, o, &row_limit, &time_limit, &params_len, err, err_len);
    if (rc) return rc;
    /* The definition as it is now, parsed again: the scratch namespace owns its copy. */
    char *json = NULL;
    rc = factum_readmodel_get_definition(m, name, &json);
    if (rc) return rc;
    rm_def *d = NULL;
    rc = rm_def_parse(json, strlen(json), &d, err, err_len);
    free(json);
    if (rc) return rc;
    rm_model *x = find_locked(m, name);
    rm_ns *ns = x ? ns_new(x, d, RM_TEMPORAL_GEN_BASE + atomic_fetch_add(&temporal_seq, 1)) : NULL;
    if (!ns) {
        rm_def_free(d);
        return x ? -ENOMEM : FACTUM_ENOTFOUND;
    }
    ns->retired = 1; /* its tables go with the last reference */
    const rm_target_ops *ops = rm_target(d->target);
    rm_conn *c = NULL;
    base_buf b = {0};
    rc = rm_gen_build_upto(x, ns, position, err, err_len);
    if (!rc) rc = ops->open(d, m->dir, ns->gen, 0, 1, &c, err, err_len);
    if (!rc) {
        rm_stmt st;
        rc = rm_stmt_compile(&st, sql, d->target, named_param, NULL, err, err_len);
        if (!rc) {
            rc = base_buf_append(&b, "{", 1) ? -ENOMEM : 0;
            if (!rc) rc = ops->query(c, &st, params_json, params_len, row_limit, time_limit, &b, err, err_len);
            rm_stmt_free(&st);
        }
    }
    if (c) ops->close(c);
    pthread_mutex_lock(&x->mu);
    rm_ns_unref(ns); /* deletes the scratch tables */
    pthread_mutex_unlock(&x->mu);
    if (!rc) {
        factum_stats st;
        factum_store_get_stats(m->s, &st);
        uint64_t p = position < st.last_position ? position : st.last_position;
        if (base_buf_printf(&b, ",\"position\":%" PRIu64 ",\"lag_events\":0,\"lag_ms\":0}", p) ||
            base_buf_append(&b, "", 1))
            rc = -ENOMEM;
    }
    if (rc) {
        base_buf_free(&b);
        return rc;
    }
    *out = (char *)b.data;
    return 0;
}
