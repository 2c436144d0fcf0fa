/*
 * manager.c - the projection manager (factum_projection* in factum.h): the
 * definitions kept in the store as KurrentDB keeps them, the commands, the
 * status, and the one thread that runs every projection (engine.c).
 *
 * In the store:
 *   $projections-$all         the registry: `$ProjectionsInitialized`, then a
 *                             `$ProjectionCreated` per projection (data: its
 *                             name; its version is the projection's id)
 *   $projections-<name>       the definition: `$ProjectionUpdated` events, a
 *                             JSON object with KurrentDB's PersistedState keys
 *                             (HandlerType, Query, Mode, Enabled, Epoch,
 *                             Version, ...); the last one counts
 *   $projections-<name>-checkpoint   the checkpoints (engine.c, PRJ-1)
 *
 * The thread sleeps until kicked: by the store's commit listener (new
 * events), by a batch's completion, or by a command. Commands are queued
 * and run on the thread in order; one that needs a projection's appends to
 * be done first (reset, a restart after a fault) waits in the queue, and so
 * do the later commands for the same projection.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "proj/proj.h"

#define REGISTRY "$projections-$all"
#define DEFER    1
#define SLEEP_MS 1000

enum { CMD_ENABLE, CMD_DISABLE, CMD_RESET, CMD_QUERY, CMD_CREATE, CMD_UPDATE, CMD_DELETE };

struct prj_cmd {
    prj_cmd *next;
    int kind;
    prj *p;
    char *query;
    char *name;       /* CMD_CREATE */
    int mode, enabled, emit, track; /* CMD_CREATE; emit also CMD_UPDATE (-1: keep) */
    unsigned flags;   /* CMD_DELETE */
    factum_projection_cb cb;
    void *ctx;
    int rc, done;
};

void factum_projections_options_init(factum_projections_options *o)
{
    memset(o, 0, sizeof *o);
    o->create_system = 1;
    o->run_user = 1;
    o->batch_events = 4096;
    o->batches_in_flight = 2;
}

void prj_log(factum_projections *m, int level, const char *fmt, ...)
{
    if (!m->opts.log_fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    m->opts.log_fn(m->opts.log_ctx, level, buf);
}

/* The kick and the sleep pair up like Dekker's flags: the kicker sets
 * `kick` then looks at `sleeping`; the thread sets `sleeping` then looks at
 * `kick`. One of them sees the other's store, so no kick is lost. */
void prj_kick(factum_projections *m)
{
    atomic_store(&m->kick, 1);
    if (atomic_load(&m->sleeping)) {
        pthread_mutex_lock(&m->mu);
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
}

static void sleep_until_kick(factum_projections *m, int ms)
{
    atomic_store(&m->sleeping, 1);
    if (!atomic_exchange(&m->kick, 0)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&m->mu);
        if (!atomic_load(&m->kick) && !m->stopping) pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        pthread_mutex_unlock(&m->mu);
    }
    atomic_store(&m->sleeping, 0);
    atomic_store(&m->kick, 0);
}

static void on_commit(void *ctx, uint64_t last)
{
    (void)last;
    prj_kick(ctx);
}

/* ---- definitions ------------------------------------------------------ */

static const char *mode_name(int mode)
{
    return mode == FACTUM_PROJECTION_ONE_TIME    ? "OneTime"
           : mode == FACTUM_PROJECTION_TRANSIENT ? "Transient"
                                                 : "Continuous";
}

static int def_json(base_buf *b, const prj *p, const char *query, int enabled, int64_t epoch, int64_t version)
{
    int rc = base_buf_append(b, "{\"HandlerType\":", 15);
    if (!rc) rc = json_write_string(b, p->type, strlen(p->type));
    if (!rc) rc = base_buf_append(b, ",\"Query\":", 9);
    if (!rc) rc = json_write_string(b, query, strlen(query));
    if (!rc)
        rc = base_buf_printf(
            b,
            ",\"Mode\":\"%s\",\"Enabled\":%s,\"EmitEnabled\":%s,\"CheckpointsDisabled\":false,"
            "\"TrackEmittedStreams\":%s,\"Epoch\":%lld,\"Version\":%lld,"
            "\"ProjectionSubsystemVersion\":%d}",
            mode_name(p->mode), enabled ? "true" : "false", p->emit_enabled ? "true" : "false",
            p->track_emitted ? "true" : "false", (long long)epoch, (long long)version, PRJ_SUBSYSTEM);
    return rc;
}

static void configure(prj *p)
{
    p->cfg_err[0] = 0;
    p->cfg_rc =
        p->h ? p->h->configure(&p->cfg, p->query, strlen(p->query), p->cfg_err, sizeof p->cfg_err) : 0;
}

/* Store p's definition with these values (the manager's thread, or the
 * opening thread before it runs); on success they become p's. */
static int persist(prj *p, const char *query, int enabled, int64_t epoch)
{
    base_buf b = {0};
    int64_t version = p->version + 1;
    if (p->transient) { /* kept in memory only */
        char *q = query == p->query ? NULL : strdup(query);
        if (query != p->query && !q) return -ENOMEM;
        pthread_mutex_lock(&p->m->mu);
        if (q) {
            free(p->query);
            p->query = q;
        }
        p->enabled = enabled;
        p->epoch = epoch;
        p->version = version;
        pthread_mutex_unlock(&p->m->mu);
        return 0;
    }
    int rc = def_json(&b, p, query, enabled, epoch, version);
    factum_event_data ev = {
        .type = "$ProjectionUpdated", .flags = FACTUM_EVENT_JSON, .data = b.data, .data_len = b.len};
    factum_append_result res;
    if (!rc) rc = factum_append(p->m->s, p->def_stream, p->def_version, &ev, 1, &res);
    base_buf_free(&b);
    if (rc) {
        prj_log(p->m, FACTUM_LOG_ERROR, "projection %s: cannot store its definition: %s", p->name,
                factum_strerror(rc));
        return rc;
    }
    char *q = query == p->query ? NULL : strdup(query);
    if (query != p->query && !q) return -ENOMEM;
    pthread_mutex_lock(&p->m->mu);
    p->def_version = (int64_t)res.last_version;
    if (q) {
        free(p->query);
        p->query = q;
    }
    p->enabled = enabled;
    p->epoch = epoch;
    p->version = version;
    pthread_mutex_unlock(&p->m->mu);
    return 0;
}

static void prj_free(prj *p)
{
    if (!p) return;
    if (p->jr) prj_js_stop(p);
    prj_free_run(p);
    free(p->name);
    free(p->ckpt_stream);
    free(p->def_stream);
    free(p->type);
    free(p->query);
    free(p);
}

static prj *prj_new(factum_projections *m, const char *name, size_t len)
{
    prj *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->m = m;
    p->def_version = FACTUM_NO_STREAM;
    p->ckpt_version = FACTUM_NO_STREAM;
    if (!(p->name = strndup(name, len))) goto fail;
    size_t n = len + 40;
    if (!(p->def_stream = malloc(n)) || !(p->ckpt_stream = malloc(n))) goto fail;
    snprintf(p->def_stream, n, "$projections-%s", p->name);
    snprintf(p->ckpt_stream, n, "$projections-%s-checkpoint", p->name);
    return p;
fail:
    prj_free(p);
    return NULL;
}

static prj *find(factum_projections *m, const char *name)
{
    for (size_t i = 0; name && i < m->n; i++)
        if (!strcmp(m->p[i]->name, name)) return m->p[i];
    return NULL;
}

static int add(factum_projections *m, prj *p)
{
    pthread_mutex_lock(&m->mu);
    prj **v = realloc(m->p, (m->n + 1) * sizeof *v);
    if (v) {
        m->p = v;
        m->p[m->n++] = p;
    }
    pthread_mutex_unlock(&m->mu);
    return v ? 0 : -ENOMEM;
}

/* Take p out of the list into the dead ones (freed at close). */
static int bury(factum_projections *m, prj *p)
{
    pthread_mutex_lock(&m->mu);
    prj **v = realloc(m->dead, (m->n_dead + 1) * sizeof *v);
    if (v) {
        m->dead = v;
        m->dead[m->n_dead++] = p;
        for (size_t k = 0; k < m->n; k++) {
            if (m->p[k] != p) continue;
            memmove(&m->p[k], &m->p[k + 1], (m->n - k - 1) * sizeof *m->p);
            m->n--;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return v ? 0 : -ENOMEM;
}

/* Read p's definition (the last event of its stream). */
static int load_definition(prj *p)
{
    factum_stream_info info;
    int rc = factum_stream_get_info(p->m->s, p->def_stream, &info);
    if (rc) return rc;
    p->def_version = info.last_version;
    factum_event ev;
    size_t n = 0;
    rc = factum_read_stream(p->m->s, p->def_stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND || (!rc && !n)) {
        prj_log(p->m, FACTUM_LOG_WARN, "projection %s is registered but has no definition", p->name);
        return FACTUM_ENOTFOUND;
    }
    if (rc) return rc;
    json_value *doc = NULL;
    if (json_parse((const char *)ev.data, ev.data_len, &doc) || doc->type != JSON_OBJECT) {
        json_free(doc);
        return FACTUM_ECORRUPT;
    }
    const json_value *t = json_get(doc, "HandlerType"), *q = json_get(doc, "Query"),
                     *mo = json_get(doc, "Mode"), *en = json_get(doc, "Enabled"),
                     *ep = json_get(doc, "Epoch"), *ve = json_get(doc, "Version");
    rc = -ENOMEM;
    if (!(p->type = strdup(t && t->type == JSON_STRING ? t->str : ""))) goto out;
    if (!(p->query = strdup(q && q->type == JSON_STRING ? q->str : ""))) goto out;
    p->mode = FACTUM_PROJECTION_CONTINUOUS;
    if (mo && mo->type == JSON_STRING && !strcmp(mo->str, "OneTime")) p->mode = FACTUM_PROJECTION_ONE_TIME;
    if (mo && mo->type == JSON_STRING && !strcmp(mo->str, "Transient")) p->mode = FACTUM_PROJECTION_TRANSIENT;
    p->enabled = en && en->type == JSON_TRUE;
    const json_value *em = json_get(doc, "EmitEnabled"), *tr = json_get(doc, "TrackEmittedStreams");
    p->emit_enabled = em && em->type == JSON_TRUE;
    p->track_emitted = tr && tr->type == JSON_TRUE;
    p->js = !strcmp(p->type, "JS");
    if (!ep || json_int64(ep, &p->epoch)) p->epoch = 0;
    if (!ve || json_int64(ve, &p->version)) p->version = 0;
    const prj_handler *h = prj_system_handler(p->name);
    p->h = h && !strcmp(h->type, p->type) ? h : NULL;
    configure(p);
    rc = 0;
out:
    json_free(doc);
    return rc;
}

/* The registry: every projection created and not deleted, in order. */
static int load_registry(factum_projections *m)
{
    factum_stream_info info;
    int rc = factum_stream_get_info(m->s, REGISTRY, &info);
    if (rc) return rc;
    m->registry_version = info.last_version;
    uint64_t from = 0;
    factum_event page[128];
    while (from != FACTUM_END && info.last_version >= 0) {
        size_t n = 0;
        rc = factum_read_stream(m->s, REGISTRY, from, FACTUM_FORWARD, page, 128, &n, &from);
        if (rc == FACTUM_ENOTFOUND) break;
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            const factum_event *ev = &page[i];
            int created = !strcmp(ev->type, "$ProjectionCreated"),
                deleted = !strcmp(ev->type, "$ProjectionDeleted");
            if ((!created && !deleted) || !ev->data_len || ev->data_len > FACTUM_MAX_STREAM_LEN ||
                memchr(ev->data, 0, ev->data_len))
                continue;
            char name[FACTUM_MAX_STREAM_LEN + 1];
            memcpy(name, ev->data, ev->data_len);
            name[ev->data_len] = 0;
            for (size_t k = 0; k < m->n; k++) {
                if (strcmp(m->p[k]->name, name)) continue;
                prj_free(m->p[k]);
                memmove(&m->p[k], &m->p[k + 1], (m->n - k - 1) * sizeof *m->p);
                m->n--;
                break;
            }
            if (!created) continue;
            prj *p = prj_new(m, name, ev->data_len);
            if (!p || add(m, p)) {
                prj_free(p);
                return -ENOMEM;
            }
            p->projection_id = (int64_t)ev->version;
        }
    }
    for (size_t k = 0; k < m->n;) {
        rc = load_definition(m->p[k]);
        if (rc == FACTUM_ENOTFOUND) { /* half made by hand: not ours to run */
            prj_free(m->p[k]);
            memmove(&m->p[k], &m->p[k + 1], (m->n - k - 1) * sizeof *m->p);
            m->n--;
            continue;
        }
        if (rc) return rc;
        k++;
    }
    return 0;
}

/* Create the system projections the registry lacks, stopped: the registry
 * entries and the definitions in one atomic append. */
static int create_system(factum_projections *m)
{
    prj *made[PRJ_N_SYSTEM];
    size_t k = 0;
    factum_event_data reg[PRJ_N_SYSTEM + 1], defs[PRJ_N_SYSTEM];
    factum_append_req reqs[PRJ_N_SYSTEM + 1];
    base_buf json[PRJ_N_SYSTEM];
    memset(json, 0, sizeof json);
    size_t n_reg = 0;
    int64_t next_id = m->registry_version + 1;
    if (m->registry_version < 0) {
        reg[n_reg++] = (factum_event_data){.type = "$ProjectionsInitialized"};
        next_id++;
    }
    int rc = 0;
    for (size_t i = 0; i < PRJ_N_SYSTEM; i++) {
        const prj_handler *h = &prj_system_handlers[i];
        if (find(m, h->name)) continue;
        prj *p = prj_new(m, h->name, strlen(h->name));
        if (!p || !(p->type = strdup(h->type)) || !(p->query = strdup(h->query))) {
            prj_free(p);
            rc = -ENOMEM;
            goto out;
        }
        p->h = h;
        p->mode = FACTUM_PROJECTION_CONTINUOUS;
        p->emit_enabled = 1;
        p->projection_id = next_id++;
        made[k] = p;
        reg[n_reg++] =
            (factum_event_data){.type = "$ProjectionCreated", .data = h->name, .data_len = strlen(h->name)};
        if ((rc = def_json(&json[k], p, p->query, 0, 0, 0))) {
            k++;
            goto out;
        }
        defs[k] = (factum_event_data){.type = "$ProjectionUpdated",
                                      .flags = FACTUM_EVENT_JSON,
                                      .data = json[k].data,
                                      .data_len = json[k].len};
        reqs[1 + k] = (factum_append_req){p->def_stream, FACTUM_ANY, &defs[k], 1};
        k++;
    }
    if (!k) goto out;
    reqs[0] = (factum_append_req){REGISTRY, m->registry_version, reg, n_reg};
    factum_append_result res[PRJ_N_SYSTEM + 1];
    if ((rc = factum_append_multi(m->s, reqs, 1 + k, res, NULL))) goto out;
    m->registry_version = (int64_t)res[0].last_version;
    for (size_t i = 0; i < k; i++) {
        made[i]->def_version = (int64_t)res[1 + i].last_version;
        configure(made[i]);
        prj_log(m, FACTUM_LOG_INFO, "created the system projection %s (stopped)", made[i]->name);
        if ((rc = add(m, made[i]))) goto out;
        made[i] = NULL;
    }
out:
    for (size_t i = 0; i < k; i++) {
        prj_free(made[i]);
        base_buf_free(&json[i]);
    }
    return rc;
}

/* ---- commands ----------------------------------------------------------- */

static int create_js(factum_projections *m, prj_cmd *c);
static int delete_js(factum_projections *m, prj *p, unsigned flags);

static int exec(factum_projections *m, prj_cmd *c)
{
    prj *p = c->p;
    int rc;
    if (c->kind == CMD_CREATE) return create_js(m, c);
    if (p->deleted) return FACTUM_ENOTFOUND;
    switch (c->kind) {
    case CMD_ENABLE:
        if (p->enabled && p->state == FACTUM_PROJECTION_RUNNING) return 0;
        if (!p->enabled && (rc = persist(p, p->query, 1, p->epoch))) return rc;
        if (p->state == FACTUM_PROJECTION_RUNNING) return 0;
        if (p->flight_n) { /* a stop or a fault left appends in flight: start after them */
            p->want_start = 1;
            return 0;
        }
        return prj_start(p);
    case CMD_DISABLE:
        p->want_start = 0;
        if (p->enabled && (rc = persist(p, p->query, 0, p->epoch))) return rc;
        if (p->state != FACTUM_PROJECTION_STOPPED) prj_stop(p, FACTUM_PROJECTION_STOPPED);
        return 0;
    case CMD_RESET:
        if (p->state == FACTUM_PROJECTION_RUNNING) prj_stop(p, FACTUM_PROJECTION_STOPPED);
        if (p->flight_n) return DEFER;
        p->want_start = 0;
        if ((rc = persist(p, p->query, p->enabled, p->version + 1))) return rc;
        if (p->h && !p->cfg_rc && (rc = prj_reset_streams(p))) {
            prj_fault(p, rc, "resetting its streams");
            return rc;
        }
        pthread_mutex_lock(&m->mu);
        p->checkpoint = p->done = p->position = 0;
        pthread_mutex_unlock(&m->mu);
        p->read_pos = 0;
        if (p->enabled) return prj_start(p);
        prj_stop(p, FACTUM_PROJECTION_STOPPED);
        return 0;
    case CMD_QUERY: {
        prj_config cfg;
        char err[200];
        if (p->h && p->h->configure(&cfg, c->query, strlen(c->query), err, sizeof err)) {
            prj_log(m, FACTUM_LOG_WARN, "projection %s: query refused: %s", p->name, err);
            return FACTUM_EINVAL;
        }
        if ((rc = persist(p, c->query, p->enabled, p->epoch))) return rc;
        configure(p); /* the next event read is projected with it */
        return 0;
    }
    case CMD_UPDATE: {
        if (!p->js) {
            if (!c->query) return 0;
            c->kind = CMD_QUERY;
            return exec(m, c);
        }
        /* A JavaScript projection restarts from its checkpoint with it. */
        int was = p->state == FACTUM_PROJECTION_RUNNING;
        if (was) prj_stop(p, FACTUM_PROJECTION_STOPPED);
        if (p->flight_n) {
            p->want_start |= was;
            return DEFER;
        }
        int old_emit = p->emit_enabled;
        if (c->emit >= 0) p->emit_enabled = c->emit;
        if ((rc = persist(p, c->query ? c->query : p->query, p->enabled, p->epoch))) {
            p->emit_enabled = old_emit;
            return rc;
        }
        p->want_start = 0;
        if (p->enabled) return prj_start(p);
        return 0;
    }
    case CMD_DELETE:
        if (p->h) return FACTUM_EINVAL;
        if (p->state == FACTUM_PROJECTION_RUNNING || p->state == FACTUM_PROJECTION_STOPPING) return FACTUM_EBADSTATE;
        if (p->flight_n) return DEFER;
        return delete_js(m, p, c->flags);
    }
    return FACTUM_EINVAL;
}

/* ---- JavaScript projections: create and delete ------------------------------ */

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (!len || len > 200 || name[0] == '$' || !base_utf8_valid(name, len)) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20) return 0;
    return 1;
}

static int create_js(factum_projections *m, prj_cmd *c)
{
    if (find(m, c->name)) return FACTUM_EEXISTS;
    prj *p = prj_new(m, c->name, strlen(c->name));
    if (!p || !(p->type = strdup("JS")) || !(p->query = strdup(c->query))) {
        prj_free(p);
        return -ENOMEM;
    }
    p->js = 1;
    p->mode = c->mode;
    p->transient = c->mode == FACTUM_PROJECTION_TRANSIENT;
    p->emit_enabled = c->emit;
    p->track_emitted = c->track;
    p->enabled = c->enabled;
    int rc = 0;
    if (!p->transient) {
        factum_event_data reg[2], def;
        size_t n_reg = 0;
        if (m->registry_version < 0) reg[n_reg++] = (factum_event_data){.type = "$ProjectionsInitialized"};
        reg[n_reg++] =
            (factum_event_data){.type = "$ProjectionCreated", .data = p->name, .data_len = strlen(p->name)};
        base_buf json = {0};
        if ((rc = def_json(&json, p, p->query, p->enabled, 0, 0))) {
            base_buf_free(&json);
            prj_free(p);
            return rc;
        }
        def = (factum_event_data){
            .type = "$ProjectionUpdated", .flags = FACTUM_EVENT_JSON, .data = json.data, .data_len = json.len};
        factum_append_req reqs[2] = {{REGISTRY, m->registry_version, reg, n_reg}, {p->def_stream, FACTUM_ANY, &def, 1}};
        factum_append_result res[2];
        rc = factum_append_multi(m->s, reqs, 2, res, NULL);
        base_buf_free(&json);
        if (rc) {
            prj_log(m, FACTUM_LOG_ERROR, "projection %s: cannot store its definition: %s", p->name,
                    factum_strerror(rc));
            prj_free(p);
            return rc;
        }
        m->registry_version = (int64_t)res[0].last_version;
        p->projection_id = (int64_t)res[0].last_version;
        p->def_version = (int64_t)res[1].last_version;
    } else {
        p->projection_id = -1;
    }
    if ((rc = add(m, p))) {
        prj_free(p);
        return rc;
    }
    prj_log(m, FACTUM_LOG_INFO, "created the projection %s (%s%s)", p->name, mode_name(p->mode),
            p->enabled ? "" : ", stopped");
    if (p->enabled) prj_start(p); /* a script that does not run faults it: still created */
    return 0;
}

typedef struct del_ctx {
    factum_store *s;
    int rc;
} del_ctx;

static int delete_one(void *ctx, const char *stream)
{
    del_ctx *d = ctx;
    int rc = factum_delete_stream(d->s, stream, FACTUM_ANY, NULL);
    if (rc && rc != FACTUM_ENOTFOUND && rc != FACTUM_EDELETED) d->rc = rc;
    return 0;
}

static int delete_js(factum_projections *m, prj *p, unsigned flags)
{
    int rc;
    if (flags) {
        del_ctx d = {m->s, 0};
        rc = prj_js_each_stream(p, !!(flags & FACTUM_PROJECTION_DELETE_EMITTED_STREAMS),
                                !!(flags & FACTUM_PROJECTION_DELETE_STATE_STREAM),
                                !!(flags & FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM), delete_one, &d);
        if (rc || (rc = d.rc)) return rc;
    }
    if (!p->transient) {
        factum_event_data ev = {.type = "$ProjectionDeleted", .data = p->name, .data_len = strlen(p->name)};
        factum_append_result res;
        if ((rc = factum_append(m->s, REGISTRY, FACTUM_ANY, &ev, 1, &res))) return rc;
        m->registry_version = (int64_t)res.last_version;
        rc = factum_delete_stream(m->s, p->def_stream, FACTUM_ANY, NULL);
        if (rc && rc != FACTUM_ENOTFOUND) return rc;
    }
    prj_stop(p, FACTUM_PROJECTION_STOPPED);
    pthread_mutex_lock(&m->mu);
    p->deleted = 1;
    pthread_mutex_unlock(&m->mu);
    prj_log(m, FACTUM_LOG_INFO, "deleted the projection %s", p->name);
    return bury(m, p);
}

static void complete(factum_projections *m, prj_cmd *c, int rc)
{
    if (c->cb) {
        c->cb(c->ctx, rc);
        free(c->query);
        free(c->name);
        free(c);
        return;
    }
    pthread_mutex_lock(&m->mu);
    c->rc = rc;
    c->done = 1;
    pthread_cond_broadcast(&m->done_cv);
    pthread_mutex_unlock(&m->mu);
}

/* Run the queued commands that can run; 1 if any did. */
static int run_commands(factum_projections *m)
{
    int did = 0;
    prj *blocked[16];
    size_t n_blocked = 0;
    pthread_mutex_lock(&m->mu);
    prj_cmd *prev = NULL, *c = m->cmd_head;
    while (c) {
        int skip = 0;
        for (size_t i = 0; i < n_blocked; i++)
            skip |= blocked[i] == c->p;
        if (skip) {
            prev = c;
            c = c->next;
            continue;
        }
        pthread_mutex_unlock(&m->mu);
        int rc = exec(m, c);
        pthread_mutex_lock(&m->mu);
        prj_cmd *next = c->next;
        if (rc == DEFER) {
            if (n_blocked < sizeof blocked / sizeof *blocked)
                blocked[n_blocked++] = c->p;
            else
                break;
            prev = c;
            c = next;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            m->cmd_head = next;
        if (m->cmd_tail == c) m->cmd_tail = prev;
        pthread_mutex_unlock(&m->mu);
        complete(m, c, rc);
        did = 1;
        pthread_mutex_lock(&m->mu);
        c = next;
    }
    pthread_mutex_unlock(&m->mu);
    return did;
}

/* ---- the thread ----------------------------------------------------------- */

static void *run(void *arg)
{
    factum_projections *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        int stop = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stop) break;
        int did = run_commands(m);
        for (size_t i = 0; i < m->n; i++) {
            prj *p = m->p[i];
            did |= prj_step(p);
            if (p->want_start && !p->flight_n) {
                prj_start(p);
                did = 1;
            }
        }
        if (!did) sleep_until_kick(m, SLEEP_MS);
    }
    /* Closing: stop reading, let the appends in flight finish. */
    for (size_t i = 0; i < m->n; i++)
        if (m->p[i]->state != FACTUM_PROJECTION_STOPPED) prj_stop(m->p[i], FACTUM_PROJECTION_STOPPED);
    for (;;) {
        size_t busy = 0;
        for (size_t i = 0; i < m->n; i++) {
            prj_step(m->p[i]);
            busy += m->p[i]->flight_n;
        }
        if (!busy) break;
        sleep_until_kick(m, SLEEP_MS);
    }
    pthread_mutex_lock(&m->mu);
    prj_cmd *c = m->cmd_head;
    m->cmd_head = m->cmd_tail = NULL;
    pthread_mutex_unlock(&m->mu);
    while (c) {
        prj_cmd *next = c->next;
        complete(m, c, FACTUM_ECLOSED);
        c = next;
    }
    return NULL;
}

/* ---- the public calls ----------------------------------------------------- */

static void free_manager(factum_projections *m)
{
    for (size_t i = 0; i < m->n; i++)
        prj_free(m->p[i]);
    for (size_t i = 0; i < m->n_dead; i++)
        prj_free(m->dead[i]);
    free(m->p);
    free(m->dead);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->done_cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int factum_projections_open(factum_store *s, const factum_projections_options *o, factum_projections **out)
{
    if (!s || !out) return FACTUM_EINVAL;
    factum_projections_options def;
    if (!o) {
        factum_projections_options_init(&def);
        o = &def;
    }
    if (o->batch_events < 1 || o->batch_events > 65536 || o->batches_in_flight < 1 ||
        o->batches_in_flight > 16)
        return FACTUM_EINVAL;
    factum_projections *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->s = s;
    m->opts = *o;
    m->registry_version = FACTUM_NO_STREAM;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&m->cv, &ca);
    pthread_cond_init(&m->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = load_registry(m);
    if (!rc && o->create_system) rc = create_system(m);
    for (size_t i = 0; !rc && o->start_system && i < m->n; i++) {
        prj *p = m->p[i];
        if (p->h && !p->enabled) {
            rc = persist(p, p->query, 1, p->epoch);
            if (!rc) prj_log(m, FACTUM_LOG_INFO, "enabled the system projection %s", p->name);
        }
    }
    if (rc) goto fail;
    if ((rc = factum_commit_listener_add(s, on_commit, m))) goto fail;
    m->listening = 1;
    /* The enabled ones start before the call returns (their status says
     * Running at once); the thread takes over from there. */
    for (size_t i = 0; i < m->n; i++)
        if (m->p[i]->enabled) prj_start(m->p[i]);
    if ((rc = -pthread_create(&m->thread, NULL, run, m))) goto fail;
    m->thread_running = 1;
    *out = m;
    return 0;
fail:
    if (m->listening) factum_commit_listener_remove(s, on_commit, m);
    free_manager(m);
    return rc;
}

void factum_projections_close(factum_projections *m)
{
    if (!m) return;
    if (m->thread_running) {
        pthread_mutex_lock(&m->mu);
        m->stopping = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    if (m->listening) factum_commit_listener_remove(m->s, on_commit, m);
    while (atomic_load(&m->callbacks)) /* a completion's last instructions */
        sched_yield();
    /* Replays of factum_projection_state_asof end at their next batch
     * (FACTUM_ECLOSED); they use m until then. */
    atomic_store(&m->asof_stop, 1);
    while (atomic_load(&m->asof_running))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    free_manager(m);
}

/* Queue c and, without a callback, wait for it. c->p or c->name set. */
static int queue(factum_projections *m, prj_cmd *c)
{
    /* With a callback, c belongs to the manager's thread once queued: it
     * may be run and freed before this function looks at it again. */
    int async = c->cb != NULL;
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        free(c->query);
        free(c->name);
        free(c);
        return FACTUM_ECLOSED;
    }
    if (m->cmd_tail)
        m->cmd_tail->next = c;
    else
        m->cmd_head = c;
    m->cmd_tail = c;
    pthread_mutex_unlock(&m->mu);
    prj_kick(m);
    if (async) return 0;
    pthread_mutex_lock(&m->mu);
    while (!c->done)
        pthread_cond_wait(&m->done_cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    int rc = c->rc;
    free(c->query);
    free(c->name);
    free(c);
    return rc;
}

static prj *find_locked(factum_projections *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    prj *p = find(m, name);
    pthread_mutex_unlock(&m->mu);
    return p;
}

static prj_cmd *new_cmd(factum_projections *m, int kind, const char *name, const char *query,
                        factum_projection_cb cb, void *ctx, int *rc)
{
    *rc = FACTUM_EINVAL;
    if (!m || !name) return NULL;
    *rc = -EDEADLK;
    if (!cb && m->thread_running && pthread_equal(pthread_self(), m->thread)) return NULL;
    prj *p = NULL;
    if (kind != CMD_CREATE) {
        *rc = FACTUM_ENOTFOUND;
        if (!(p = find_locked(m, name))) return NULL;
    }
    *rc = -ENOMEM;
    prj_cmd *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->p = p;
    c->cb = cb;
    c->ctx = ctx;
    c->emit = -1;
    if ((query && !(c->query = strdup(query))) || (kind == CMD_CREATE && !(c->name = strdup(name)))) {
        free(c->query);
        free(c);
        return NULL;
    }
    *rc = 0;
    return c;
}

static int command(factum_projections *m, int kind, const char *name, const char *query,
                   factum_projection_cb cb, void *ctx)
{
    int rc;
    prj_cmd *c = new_cmd(m, kind, name, query, cb, ctx, &rc);
    return c ? queue(m, c) : rc;
}

int factum_projection_create(factum_projections *m, const factum_projection_def *d, factum_projection_cb cb,
                             void *ctx)
{
    if (!m || !d || !d->name || !d->query || !valid_name(d->name) || !d->query[0] ||
        d->mode < FACTUM_PROJECTION_CONTINUOUS || d->mode > FACTUM_PROJECTION_TRANSIENT)
        return FACTUM_EINVAL;
    int rc;
    prj_cmd *c = new_cmd(m, CMD_CREATE, d->name, d->query, cb, ctx, &rc);
    if (!c) return rc;
    c->mode = d->mode;
    c->enabled = !!d->enabled;
    c->emit = !!d->emit_enabled;
    c->track = !!d->track_emitted_streams;
    return queue(m, c);
}

int factum_projection_update(factum_projections *m, const char *name, const char *query, int emit_enabled,
                             factum_projection_cb cb, void *ctx)
{
    int rc;
    prj_cmd *c = new_cmd(m, CMD_UPDATE, name, query, cb, ctx, &rc);
    if (!c) return rc;
    c->emit = emit_enabled < 0 ? -1 : !!emit_enabled;
    return queue(m, c);
}

int factum_projection_delete(factum_projections *m, const char *name, unsigned flags, factum_projection_cb cb,
                             void *ctx)
{
    int rc;
    prj_cmd *c = new_cmd(m, CMD_DELETE, name, NULL, cb, ctx, &rc);
    if (!c) return rc;
    c->flags = flags;
    return queue(m, c);
}

/* The stored "[state]"/"[state,result]" of a partition: element `which`. */
static int stored(factum_projections *m, const char *name, const char *partition, int which, char **json,
                  size_t *len)
{
    if (!m || !name || !json || !len) return FACTUM_EINVAL;
    *json = NULL;
    *len = 0;
    prj *p = find_locked(m, name);
    if (!p) return FACTUM_ENOTFOUND;
    char stream[FACTUM_MAX_STREAM_LEN + 64];
    int n = partition && partition[0]
                ? snprintf(stream, sizeof stream, "$projections-%s-%s-checkpoint", p->name, partition)
                : snprintf(stream, sizeof stream, "%s", p->ckpt_stream);
    base_buf out = {0};
    int rc = 0;
    if (p->js && n > 0 && (size_t)n <= FACTUM_MAX_STREAM_LEN) {
        factum_event ev;
        size_t got = 0;
        rc = factum_read_stream(m->s, stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &got, NULL);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) rc = 0, got = 0;
        if (!rc && got && ev.data_len) {
            json_value *doc = NULL;
            if (!json_parse((const char *)ev.data, ev.data_len, &doc)) {
                const json_value *v = NULL;
                if (doc->type == JSON_ARRAY && doc->n > (size_t)which)
                    v = doc->items[which];
                else if (doc->type == JSON_OBJECT && !which)
                    v = doc;
                if (v) rc = json_write_value(&out, v);
            }
            json_free(doc);
        }
    }
    if (!rc) rc = base_buf_append(&out, "", 1); /* NUL */
    if (rc) {
        base_buf_free(&out);
        return rc;
    }
    *len = out.len - 1;
    *json = (char *)out.data;
    return 0;
}

int factum_projection_get_state(factum_projections *m, const char *name, const char *partition, char **json,
                                size_t *len)
{
    return stored(m, name, partition, 0, json, len);
}

int factum_projection_get_result(factum_projections *m, const char *name, const char *partition, char **json,
                                 size_t *len)
{
    return stored(m, name, partition, 1, json, len);
}

int factum_projection_enable(factum_projections *m, const char *name, factum_projection_cb cb, void *ctx)
{
    return command(m, CMD_ENABLE, name, NULL, cb, ctx);
}

int factum_projection_disable(factum_projections *m, const char *name, factum_projection_cb cb, void *ctx)
{
    return command(m, CMD_DISABLE, name, NULL, cb, ctx);
}

int factum_projection_reset(factum_projections *m, const char *name, factum_projection_cb cb, void *ctx)
{
    return command(m, CMD_RESET, name, NULL, cb, ctx);
}

int factum_projection_set_query(factum_projections *m, const char *name, const char *query,
                                factum_projection_cb cb, void *ctx)
{
    if (!query) return FACTUM_EINVAL;
    return command(m, CMD_QUERY, name, query, cb, ctx);
}

/* Fill *st from p (m->mu held). */
static void status_of(const prj *p, factum_projection_status *st)
{
    memset(st, 0, sizeof *st);
    st->name = p->name;
    st->handler = p->type;
    st->mode = p->mode;
    st->system = p->h != NULL;
    st->enabled = p->enabled;
    st->state = p->state;
    snprintf(st->reason, sizeof st->reason, "%s", p->state == FACTUM_PROJECTION_FAULTED ? p->reason : "");
    st->epoch = p->epoch;
    st->version = p->version;
    st->position = p->position;
    st->checkpoint = p->checkpoint;
    st->events_processed = p->events_processed;
    st->events_emitted = p->events_emitted;
    st->writes_in_flight = p->in_flight;
    st->buffered_events = p->buffered;
    st->events_per_second = p->rate;
    st->partitions_cached = p->partitions;
    st->emit_enabled = p->emit_enabled;
    st->track_emitted_streams = p->track_emitted;
}

/* The lag (reads the log: outside m->mu). */
static void lag_of(factum_projections *m, factum_projection_status *st)
{
    factum_stats fs;
    if (factum_store_get_stats(m->s, &fs)) return;
    st->lag_events = fs.last_position > st->position ? fs.last_position - st->position : 0;
    st->progress = fs.last_position ? 100.0 * (double)st->position / (double)fs.last_position : 100.0;
    factum_event ev;
    if (st->lag_events && !factum_read_position(m->s, st->position + 1, &ev)) {
        int64_t age = base_now_ns() - ev.timestamp_ns;
        st->lag_ns = age > 0 ? age : 0;
    }
}

int factum_projection_get_status(factum_projections *m, const char *name, factum_projection_status *st)
{
    if (!m || !st) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->mu);
    prj *p = find(m, name);
    if (p) status_of(p, st);
    pthread_mutex_unlock(&m->mu);
    if (!p) return FACTUM_ENOTFOUND;
    lag_of(m, st);
    return 0;
}

int factum_projection_get_query(factum_projections *m, const char *name, char **out)
{
    if (!m || !out) return FACTUM_EINVAL;
    pthread_mutex_lock(&m->mu);
    prj *p = find(m, name);
    *out = p ? strdup(p->query) : NULL;
    pthread_mutex_unlock(&m->mu);
    if (!p) return FACTUM_ENOTFOUND;
    return *out ? 0 : -ENOMEM;
}

int factum_projections_each(factum_projections *m, int (*cb)(void *ctx, const factum_projection_status *st),
                            void *ctx)
{
    if (!m || !cb) return FACTUM_EINVAL;
    for (size_t i = 0;; i++) {
        factum_projection_status st;
        pthread_mutex_lock(&m->mu);
        int more = i < m->n;
        if (more) status_of(m->p[i], &st);
        pthread_mutex_unlock(&m->mu);
        if (!more) break;
        lag_of(m, &st);
        int rc = cb(ctx, &st);
        if (rc) return rc;
    }
    return 0;
}

int factum_projection_wait(factum_projections *m, const char *name, uint64_t position, int timeout_ms)
{
    if (!m) return FACTUM_EINVAL;
    prj *p = find_locked(m, name);
    if (!p) return FACTUM_ENOTFOUND;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (timeout_ms > 0) {
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
    }
    int rc;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (p->done >= position) {
            rc = 1;
            break;
        }
        if (p->state == FACTUM_PROJECTION_FAULTED) {
            rc = FACTUM_EFAULTED;
            break;
        }
        if ((p->state == FACTUM_PROJECTION_STOPPED && !p->enabled) || p->state == FACTUM_PROJECTION_COMPLETED ||
            p->deleted || m->stopping || !timeout_ms) {
            rc = 0;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&m->done_cv, &m->mu);
        } else if (pthread_cond_timedwait(&m->done_cv, &m->mu, &ts)) {
            rc = p->done >= position;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}
