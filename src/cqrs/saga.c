/*
 * saga.c - the process manager runner of include/factum_saga.h.
 *
 * A runner follows $all (filtered on its definition's event types) from a
 * checkpoint, keeps each instance's state in the instance's own stream
 * `saga-<name>-<key>` (one progress event per transition, holding the
 * whole state, so loading reads one event) and carries out the effects of
 * each transition after its progress event is durable. docs/sagas.md tells
 * the model; what follows is what the code must keep true.
 *
 * Design note - invariants:
 *  SAGA-1  Transitions are a pure function of (state, event): replaying an
 *          event gives the same progress event, with the same id (derived
 *          from the instance and the event's position, or for a command's
 *          immediate answer from the instance, the step and the answer), so a
 *          progress append repeated after a crash is an idempotent replay,
 *          and one that races another runner fails on its expectation
 *          (the version loaded), never both.
 *  SAGA-2  An instance's state records the position of the last event that
 *          moved it (`pos`). An event at or before it changed the instance
 *          already and is not applied again; the event at exactly `pos`
 *          makes the runner carry out the last progress's effects again
 *          (they may not have run before a crash).
 *  SAGA-3  Effects (commands, compensations, timeouts) run only after the
 *          progress that calls for them is durable, in the order: cancel
 *          timeouts, schedule the new timeout, issue the command. Each has
 *          an id derived from (instance, step, kind): commands are
 *          idempotent by it, a timeout is scheduled with it (an idempotent
 *          replay) and cancelled by it (FACTUM_ENOTFOUND once gone).
 *  SAGA-4  The checkpoint only moves past an event once its progress is
 *          durable and its effects are done: everything after the
 *          checkpoint is handled again after a crash (SAGA-2 makes that
 *          harmless).
 *  SAGA-5  Compensations run one at a time, from the last completed step
 *          down to the start: the next is issued only once the previous is
 *          confirmed (its event, or its command's immediate answer). Each
 *          step is compensated at most once (its bit in `undone`), and a
 *          step that completes late, after the saga failed (its answer lost
 *          the race with a timeout elsewhere), is compensated then, once.
 *  SAGA-6  Workers: the events of one polled batch are shared out among
 *          options.workers threads by a hash of their key, so one
 *          instance's events are handled by one worker, in log order, and
 *          different instances in parallel (their appends share group
 *          commits). The runner's position moves past the batch only when
 *          every worker has finished it; a worker's error sends the whole
 *          batch round again (SAGA-2 makes that harmless).
 *
 * States (RUNNING i: waiting for step i; COMPENSATING j: waiting for the
 * compensation of step j):
 *
 *   start ─► RUNNING 0 ─done─► RUNNING 1 ─done─► ... ─done─► COMPLETED
 *               │ failed / timeout / rejected / error
 *               ▼
 *        COMPENSATING (last completed step) ─confirmed─► ... ─► COMPENSATED
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/seal.h"
#include "base/base.h"
#include "base/json.h"
#include "factum_app.h"
#include "factum_saga.h"

#define NSTEP       (FACTUM_SAGA_MAX_STEPS + 1) /* internal index 0 is the start, step i is i + 1 */
#define POLL_CAP    256
#define MAX_EFFECTS 8

enum { EF_CANCEL = 1, EF_SCHEDULE = 2, EF_DO = 3, EF_UNDO = 4, EF_LATE_UNDO = 5 };

/* One instance, as loaded from (or about to be written to) its stream. */
typedef struct inst {
    char key[FACTUM_SAGA_MAX_KEY + 1];
    uint8_t id[16]; /* base of every id derived for this instance */
    int exists;
    int64_t version; /* of the progress stream; FACTUM_NO_STREAM if none */
    int status;
    int step;   /* internal index (0 = start) */
    int failed; /* internal index of the failed step, -1 if none */
    char reason[128];
    uint64_t done, undone, late; /* bits by internal index */
    uint64_t pos;                /* SAGA-2 */
    int64_t ts_ns;               /* commit time of the last progress (timeouts count from it) */
    char *data[NSTEP];           /* JSON text of the start event and of each step's done event, or NULL */
    uint32_t effects[MAX_EFFECTS];
    size_t n_effects;
} inst;

struct factum_saga {
    factum_store *s;
    factum_reader *rdr; /* the batch's sealed events open here (reset per poll; store/seal.h) */
    const factum_saga_def *def;
    factum_saga_options o;
    char name[FACTUM_SAGA_MAX_NAME + 1];
    char cp_stream[FACTUM_SAGA_MAX_NAME + 32];
    char to_stream[FACTUM_SAGA_MAX_NAME + 32]; /* the default timeout stream */
    factum_filter *filter;
    factum_sub *sub;
    factum_sub_item *items;
    uint64_t checkpoint; /* as written */
    uint64_t since_cp;   /* events handled since it was written */
    uint64_t cp_mono_ns;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t handled; /* SAGA-4: every position <= this is handled */
    factum_saga_stats st;
    int stop;
    int threaded;
    pthread_t thread;
    /* Workers (SAGA-6): each batch's events are shared out by key. */
    uint32_t n_workers;
    pthread_t *workers;
    char (*keys)[FACTUM_SAGA_MAX_KEY + 1]; /* per item: its key ("" none) */
    int *timeout_ix;                       /* per item */
    uint32_t *owner;                       /* per item: the worker that handles it */
    size_t batch_n;
    uint64_t batch_gen;
    uint32_t batch_left; /* workers not done with the batch */
    int batch_rc;
    int quit;
    pthread_cond_t work_cv, done_cv;
};

/* ---- small helpers ------------------------------------------------------ */

static void slog(factum_saga *sg, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slog(factum_saga *sg, int level, const char *fmt, ...)
{
    if (!sg->o.log_fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sg->o.log_fn(sg->o.log_ctx, level, msg);
}

static int stopping(factum_saga *sg)
{
    pthread_mutex_lock(&sg->mu);
    int v = sg->stop;
    pthread_mutex_unlock(&sg->mu);
    return v;
}

/* Sleep ms, in slices, returning early (1) when the runner is stopping. */
static int nap(factum_saga *sg, uint32_t ms)
{
    while (ms) {
        if (stopping(sg)) return 1;
        uint32_t d = ms > 20 ? 20 : ms;
        struct timespec ts = {0, (long)d * 1000000L};
        nanosleep(&ts, NULL);
        ms -= d;
    }
    return stopping(sg);
}

static int in_list(const char *const *list, size_t n, const char *t)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], t)) return 1;
    return 0;
}

static const factum_saga_step *step_of(const factum_saga *sg, int ix)
{
    return ix >= 1 ? &sg->def->steps[ix - 1] : NULL;
}

static int has_compensation(const factum_saga *sg, int ix)
{
    return ix == 0 ? sg->def->compensate_start != NULL : step_of(sg, ix)->compensate != NULL;
}

static size_t n_confirm(const factum_saga *sg, int ix)
{
    return ix == 0 ? sg->def->n_start_compensated : step_of(sg, ix)->n_compensated;
}

static int is_confirm(const factum_saga *sg, int ix, const char *t)
{
    return ix == 0 ? in_list(sg->def->start_compensated_types, sg->def->n_start_compensated, t)
                   : in_list(step_of(sg, ix)->compensated_types, step_of(sg, ix)->n_compensated, t);
}

static int key_valid(const char *k, size_t len)
{
    if (len == 0 || len > FACTUM_SAGA_MAX_KEY || !base_utf8_valid(k, len)) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f) return 0;
    return 1;
}

static int name_valid(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len == 0 || len > FACTUM_SAGA_MAX_NAME) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static void progress_stream(const factum_saga *sg, const char *key, char *buf, size_t cap)
{
    snprintf(buf, cap, "saga-%s-%s", sg->name, key);
}

/* The timeout stream of step ix for key: "{key}" replaced, or the default. */
static int timeout_stream(const factum_saga *sg, int ix, const char *key, char *buf, size_t cap)
{
    const char *pat = step_of(sg, ix)->timeout_stream;
    if (!pat) {
        snprintf(buf, cap, "%s", sg->to_stream);
        return 0;
    }
    size_t o = 0;
    for (const char *p = pat; *p;) {
        const char *add = p;
        size_t n = 1;
        if (!strncmp(p, "{key}", 5)) {
            add = key;
            n = strlen(key);
            p += 5;
        } else {
            p++;
        }
        if (o + n >= cap) return FACTUM_EBADNAME;
        memcpy(buf + o, add, n);
        o += n;
    }
    buf[o] = 0;
    return factum_check_stream_name(buf, o);
}

static const char *timeout_type(const factum_saga *sg, int ix)
{
    const char *t = step_of(sg, ix)->timeout_type;
    return t ? t : "$sagaTimeout";
}

static void derive(const inst *in, const char *what, uint32_t index, uint8_t out[16])
{
    factum_app_derive_id(in->id, what, strlen(what), index, out);
}

static void inst_reset(inst *in)
{
    for (int i = 0; i < NSTEP; i++) {
        free(in->data[i]);
        in->data[i] = NULL;
    }
}

/* The instance's id base: derived from the saga's name and the key. */
static void inst_init(const factum_saga *sg, inst *in, const char *key)
{
    memset(in, 0, sizeof *in);
    snprintf(in->key, sizeof in->key, "%s", key);
    char salt[FACTUM_SAGA_MAX_NAME + FACTUM_SAGA_MAX_KEY + 16];
    int n = snprintf(salt, sizeof salt, "saga\n%s\n%s", sg->name, key);
    static const uint8_t zero[16];
    factum_app_derive_id(zero, salt, (size_t)n, 0, in->id);
    in->version = FACTUM_NO_STREAM;
    in->failed = -1;
}

/* ---- the progress event: encoding and decoding --------------------------- */

static const char *status_name(int st)
{
    switch (st) {
    case FACTUM_SAGA_RUNNING:
        return "running";
    case FACTUM_SAGA_COMPENSATING:
        return "compensating";
    case FACTUM_SAGA_COMPLETED:
        return "completed";
    default:
        return "compensated";
    }
}

/* The status a progress event names, or -1. */
static int status_parse(const char *name)
{
    static const int all[] = {FACTUM_SAGA_RUNNING, FACTUM_SAGA_COMPENSATING, FACTUM_SAGA_COMPLETED,
                              FACTUM_SAGA_COMPENSATED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, status_name(all[i]))) return all[i];
    return -1;
}

static int encode(const factum_saga *sg, const inst *in, base_buf *b)
{
    int rc = base_buf_printf(b, "{\"saga\":");
    if (!rc) rc = json_write_string(b, sg->name, strlen(sg->name));
    if (!rc) rc = base_buf_printf(b, ",\"key\":");
    if (!rc) rc = json_write_string(b, in->key, strlen(in->key));
    if (!rc)
        rc = base_buf_printf(b,
                             ",\"status\":\"%s\",\"step\":%d,\"failed\":%d,\"done\":%llu,\"undone\":%llu,"
                             "\"late\":%llu,\"pos\":%llu,\"reason\":",
                             status_name(in->status), in->step, in->failed, (unsigned long long)in->done,
                             (unsigned long long)in->undone, (unsigned long long)in->late,
                             (unsigned long long)in->pos);
    if (!rc) rc = json_write_string(b, in->reason, strlen(in->reason));
    if (!rc) rc = base_buf_printf(b, ",\"data\":[");
    for (size_t i = 0; !rc && i <= sg->def->n_steps; i++) {
        if (i) rc = base_buf_append(b, ",", 1);
        if (!rc)
            rc = in->data[i] ? base_buf_append(b, in->data[i], strlen(in->data[i]))
                             : base_buf_append(b, "null", 4);
    }
    if (!rc) rc = base_buf_printf(b, "],\"effects\":[");
    for (size_t i = 0; !rc && i < in->n_effects; i++)
        rc = base_buf_printf(b, "%s%u", i ? "," : "", in->effects[i]);
    if (!rc) rc = base_buf_append(b, "]}", 2);
    return rc;
}

static int get_int(const json_value *o, const char *k, int64_t *out)
{
    const json_value *v = json_get(o, k);
    return v ? json_int64(v, out) : FACTUM_ECORRUPT;
}

/* Decode a progress event into *in (whose key and id are set). */
static int decode(const factum_saga *sg, inst *in, const factum_event *ev)
{
    json_value *root = NULL;
    if (json_parse((const char *)ev->data, ev->data_len, &root) || root->type != JSON_OBJECT) {
        json_free(root);
        return FACTUM_ECORRUPT;
    }
    int rc = FACTUM_ECORRUPT;
    int64_t step, failed, done, undone, late, pos;
    const json_value *st = json_get(root, "status"), *reason = json_get(root, "reason");
    const json_value *data = json_get(root, "data"), *eff = json_get(root, "effects");
    if (!st || st->type != JSON_STRING || !reason || reason->type != JSON_STRING || !data ||
        data->type != JSON_ARRAY || data->n != sg->def->n_steps + 1 || !eff || eff->type != JSON_ARRAY ||
        eff->n > MAX_EFFECTS)
        goto out;
    if (get_int(root, "step", &step) || get_int(root, "failed", &failed) || get_int(root, "done", &done) ||
        get_int(root, "undone", &undone) || get_int(root, "late", &late) || get_int(root, "pos", &pos))
        goto out;
    if (step < -1 || step > (int64_t)sg->def->n_steps + 1 || failed < -1 ||
        failed > (int64_t)sg->def->n_steps)
        goto out;
    if ((in->status = status_parse(st->str)) < 0) goto out;
    in->step = (int)step;
    in->failed = (int)failed;
    in->done = (uint64_t)done;
    in->undone = (uint64_t)undone;
    in->late = (uint64_t)late;
    in->pos = (uint64_t)pos;
    snprintf(in->reason, sizeof in->reason, "%s", reason->str);
    inst_reset(in);
    for (size_t i = 0; i < data->n; i++) {
        if (data->items[i]->type == JSON_NULL) continue;
        base_buf b = {0};
        if (json_write_value(&b, data->items[i]) || base_buf_append(&b, "", 1)) {
            base_buf_free(&b);
            rc = -ENOMEM;
            goto out;
        }
        in->data[i] = (char *)b.data;
    }
    in->n_effects = 0;
    for (size_t i = 0; i < eff->n; i++) {
        int64_t e;
        if (json_int64(eff->items[i], &e) || e < 0 || e > 0xffff) goto out;
        int kind = (int)(e >> 8), ix = (int)(e & 0xff);
        if (kind < EF_CANCEL || kind > EF_LATE_UNDO || ix > (int)sg->def->n_steps) goto out;
        in->effects[in->n_effects++] = (uint32_t)e;
    }
    in->version = (int64_t)ev->version;
    in->ts_ns = ev->timestamp_ns;
    in->exists = 1;
    rc = 0;
out:
    json_free(root);
    return rc;
}

/* Load instance `key` (its last progress event). */
static int load(const factum_saga *sg, inst *in, const char *key)
{
    inst_reset(in);
    inst_init(sg, in, key);
    char stream[FACTUM_SAGA_MAX_NAME + FACTUM_SAGA_MAX_KEY + 16];
    progress_stream(sg, key, stream, sizeof stream);
    factum_event ev;
    size_t n = 0;
    int rc = factum_read_stream(sg->s, stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND) return 0;
    if (rc) return rc;
    if (n == 0) {
        /* Never take a stream that has events for a missing instance (its
         * event would be ignored and the instance stuck): the batch is
         * handled again after a backoff. */
        factum_stream_info info;
        rc = factum_stream_get_info(sg->s, stream, &info);
        if (rc) return rc;
        return info.status == FACTUM_STREAM_LIVE ? -EAGAIN : 0;
    }
    return decode(sg, in, &ev);
}

/* ---- transitions (pure: SAGA-1) ----------------------------------------- */

static void add_effect(inst *in, int kind, int ix)
{
    if (in->n_effects < MAX_EFFECTS) in->effects[in->n_effects++] = (uint32_t)(kind << 8 | ix);
}

static int has_timeout(const factum_saga *sg, int ix)
{
    return ix >= 1 && step_of(sg, ix)->timeout_ms > 0;
}

/* Enter step ix (or complete the saga past the last one). */
static void enter(const factum_saga *sg, inst *in, int ix)
{
    if (ix > (int)sg->def->n_steps) {
        in->status = FACTUM_SAGA_COMPLETED;
        in->step = ix;
        return;
    }
    in->status = FACTUM_SAGA_RUNNING;
    in->step = ix;
    if (has_timeout(sg, ix)) add_effect(in, EF_SCHEDULE, ix);
    add_effect(in, EF_DO, ix);
}

/* Compensate the completed steps below `from` (inclusive), highest first:
 * the next one not yet compensated, or the end (SAGA-5). */
static void next_undo(const factum_saga *sg, inst *in, int from)
{
    for (int ix = from; ix >= 0; ix--) {
        if (!(in->done & (1ull << ix)) || (in->undone & (1ull << ix)) || !has_compensation(sg, ix)) continue;
        in->status = FACTUM_SAGA_COMPENSATING;
        in->step = ix;
        add_effect(in, EF_UNDO, ix);
        return;
    }
    in->status = FACTUM_SAGA_COMPENSATED;
    in->step = -1;
}

static void complete(const factum_saga *sg, inst *in, int ix, const char *data)
{
    in->done |= 1ull << ix;
    free(in->data[ix]);
    in->data[ix] = data ? strdup(data) : NULL;
    if (has_timeout(sg, ix)) add_effect(in, EF_CANCEL, ix);
    enter(sg, in, ix + 1);
}

static void fail(const factum_saga *sg, inst *in, int ix, const char *reason)
{
    in->failed = ix;
    snprintf(in->reason, sizeof in->reason, "%s", reason);
    if (has_timeout(sg, ix) && strcmp(reason, "timeout")) add_effect(in, EF_CANCEL, ix);
    next_undo(sg, in, ix - 1);
}

static void undone(const factum_saga *sg, inst *in, int ix)
{
    in->undone |= 1ull << ix;
    next_undo(sg, in, ix - 1);
}

/* ---- effects (SAGA-3) --------------------------------------------------- */

static int append_progress(factum_saga *sg, inst *in, const char *type, const uint8_t id[16],
                           const uint8_t cause[16]);

static void fill_command(const factum_saga *sg, const inst *in, int ix, int compensate,
                         factum_saga_command *c, const char **step_data)
{
    memset(c, 0, sizeof *c);
    c->saga = sg->name;
    c->key = in->key;
    c->step = ix - 1;
    c->compensate = compensate;
    derive(in, compensate ? "undo" : "do", (uint32_t)ix, c->id);
    c->start_data = in->data[0] ? in->data[0] : "";
    for (size_t i = 0; i < sg->def->n_steps; i++)
        step_data[i] = in->data[i + 1] ? in->data[i + 1] : "";
    c->step_data = step_data;
    c->n_steps = sg->def->n_steps;
}

static uint32_t backoff(const factum_saga *sg, uint32_t attempt)
{
    uint64_t ms = (uint64_t)sg->o.backoff_ms << (attempt > 10 ? 10 : attempt);
    return ms > 1000 ? 1000 : (uint32_t)ms;
}

static void count(factum_saga *sg, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&sg->mu);
    *field += n;
    pthread_mutex_unlock(&sg->mu);
}

/* Call a command function, retrying errors: forward steps up to
 * max_attempts (then the error is returned), compensations until they
 * succeed or the runner stops (FACTUM_ECLOSED). */
static int call_command(factum_saga *sg, inst *in, int ix, int compensate)
{
    const char *step_data[FACTUM_SAGA_MAX_STEPS];
    factum_saga_command c;
    fill_command(sg, in, ix, compensate, &c, step_data);
    factum_saga_command_fn fn = compensate
                                    ? (ix == 0 ? sg->def->compensate_start : step_of(sg, ix)->compensate)
                                    : step_of(sg, ix)->run;
    for (uint32_t attempt = 1;; attempt++) {
        c.attempt = attempt;
        count(sg, &sg->st.commands, 1);
        int r = fn(sg->def->ctx, &c);
        if (r >= 0) return r;
        int last = !compensate && attempt >= sg->o.max_attempts;
        pthread_mutex_lock(&sg->mu);
        sg->st.retries += !last;
        sg->st.last_error = r;
        pthread_mutex_unlock(&sg->mu);
        slog(sg, FACTUM_LOG_WARN, "saga %s: %s of step %d of %s failed (attempt %u%s): %s", sg->name,
             compensate ? "compensation" : "command", ix - 1, in->key, attempt, last ? ", the last" : "",
             factum_strerror(r));
        if (last) return r;
        if (nap(sg, backoff(sg, attempt))) return FACTUM_ECLOSED;
    }
}

static int schedule_timeout(factum_saga *sg, inst *in, int ix)
{
    char stream[FACTUM_MAX_STREAM_LEN + 1];
    int rc = timeout_stream(sg, ix, in->key, stream, sizeof stream);
    if (rc) return rc;
    base_buf data = {0}, meta = {0};
    rc = base_buf_printf(&data, "{\"saga\":");
    if (!rc) rc = json_write_string(&data, sg->name, strlen(sg->name));
    if (!rc) rc = base_buf_printf(&data, ",\"key\":");
    if (!rc) rc = json_write_string(&data, in->key, strlen(in->key));
    if (!rc) rc = base_buf_printf(&data, ",\"step\":%d,\"stepName\":", ix - 1);
    if (!rc) rc = json_write_string(&data, step_of(sg, ix)->name, strlen(step_of(sg, ix)->name));
    if (!rc) rc = base_buf_printf(&data, ",\"timeoutMs\":%lld}", (long long)step_of(sg, ix)->timeout_ms);
    if (!rc) rc = base_buf_printf(&meta, "{\"$correlationId\":");
    if (!rc) rc = json_write_string(&meta, in->key, strlen(in->key));
    if (!rc) rc = base_buf_printf(&meta, ",\"$saga\":");
    if (!rc) rc = json_write_string(&meta, sg->name, strlen(sg->name));
    if (!rc) rc = base_buf_printf(&meta, ",\"$sagaStep\":%d}", ix - 1);
    if (!rc) {
        factum_event_data e = {0};
        e.type = timeout_type(sg, ix);
        derive(in, "timeout", (uint32_t)ix, e.id);
        e.has_id = 1;
        e.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
        e.data = data.data;
        e.data_len = data.len;
        e.metadata = meta.data;
        e.metadata_len = meta.len;
        int64_t at = in->ts_ns + step_of(sg, ix)->timeout_ms * 1000000LL;
        rc = factum_schedule(sg->s, stream, at, &e, NULL);
    }
    base_buf_free(&data);
    base_buf_free(&meta);
    return rc;
}

static int cancel_timeout(factum_saga *sg, inst *in, int ix)
{
    uint8_t id[16];
    derive(in, "timeout", (uint32_t)ix, id);
    int rc = factum_schedule_cancel(sg->s, id);
    return rc == FACTUM_ENOTFOUND ? 0 : rc;
}

/* A store call of an effect (schedule, cancel): retried like a compensation. */
static int store_effect(factum_saga *sg, inst *in, int kind, int ix)
{
    for (uint32_t attempt = 1;; attempt++) {
        int rc = kind == EF_SCHEDULE ? schedule_timeout(sg, in, ix) : cancel_timeout(sg, in, ix);
        if (!rc) return 0;
        if (rc == FACTUM_EBADNAME || rc == FACTUM_EINVAL || rc == FACTUM_EBADTYPE || rc == FACTUM_EREADONLY) {
            slog(sg, FACTUM_LOG_ERROR, "saga %s: timeout of step %d of %s: %s", sg->name, ix - 1, in->key,
                 factum_strerror(rc));
            return rc;
        }
        pthread_mutex_lock(&sg->mu);
        sg->st.retries++;
        sg->st.last_error = rc;
        pthread_mutex_unlock(&sg->mu);
        if (nap(sg, backoff(sg, attempt))) return FACTUM_ECLOSED;
    }
}

/* Carry out in->effects. A command that answers at once moves the instance
 * (a progress event of its own, id derived from the step), whose effects
 * are then carried out in turn. Returns 0, or an error (the effects are
 * done again when the event comes round again: SAGA-2, SAGA-4). */
static int run_effects(factum_saga *sg, inst *in)
{
    for (int guard = 0; guard < 4 * NSTEP; guard++) {
        int moved = 0;
        for (size_t i = 0; i < in->n_effects && !moved; i++) {
            int kind = (int)(in->effects[i] >> 8), ix = (int)(in->effects[i] & 0xff);
            int rc = 0;
            switch (kind) {
            case EF_CANCEL:
            case EF_SCHEDULE:
                rc = store_effect(sg, in, kind, ix);
                if (rc) return rc;
                break;
            case EF_DO: {
                const factum_saga_step *st = step_of(sg, ix);
                int r = st->run ? call_command(sg, in, ix, 0) : FACTUM_SAGA_PENDING;
                if (r == FACTUM_ECLOSED) return r;
                if (r == FACTUM_SAGA_PENDING && st->n_done == 0) r = FACTUM_SAGA_DONE;
                if (r == FACTUM_SAGA_PENDING) break;
                in->n_effects = 0;
                const char *why = r == FACTUM_SAGA_DONE     ? "done"
                                  : r == FACTUM_SAGA_FAILED ? "rejected"
                                                            : "error";
                if (r == FACTUM_SAGA_DONE)
                    complete(sg, in, ix, NULL);
                else
                    fail(sg, in, ix, why);
                /* The answer is in the id (SAGA-1): a second runner that got
                 * another answer for the same command fails on the
                 * expectation instead of replaying a different event. */
                char salt[32];
                snprintf(salt, sizeof salt, "sync-%s", why);
                uint8_t id[16];
                derive(in, salt, (uint32_t)ix, id);
                rc = append_progress(sg, in, r == FACTUM_SAGA_DONE ? "SagaStepCompleted" : "SagaStepFailed",
                                     id, NULL);
                if (rc) return rc;
                moved = 1;
                break;
            }
            case EF_UNDO: {
                int r = call_command(sg, in, ix, 1);
                if (r < 0) return r;
                if (r == FACTUM_SAGA_PENDING && n_confirm(sg, ix) > 0) break;
                in->n_effects = 0;
                undone(sg, in, ix);
                uint8_t id[16];
                derive(in, "sync-undo", (uint32_t)ix, id);
                rc = append_progress(sg, in, "SagaStepCompensated", id, NULL);
                if (rc) return rc;
                moved = 1;
                break;
            }
            case EF_LATE_UNDO: {
                int r = call_command(sg, in, ix, 1);
                if (r < 0) return r;
                break;
            }
            }
        }
        if (!moved) return 0;
    }
    return 0;
}

/* Append in's state as a progress event with expectation in->version.
 * On success in->version and ts_ns are the new ones. A lost race
 * (FACTUM_EWRONGVERSION, FACTUM_EIDEMPOTENCY) is returned as it is. */
static int append_progress(factum_saga *sg, inst *in, const char *type, const uint8_t id[16],
                           const uint8_t cause[16])
{
    if (in->status == FACTUM_SAGA_COMPLETED)
        type = "SagaCompleted";
    else if (in->status == FACTUM_SAGA_COMPENSATED)
        type = "SagaCompensated";
    base_buf data = {0}, meta = {0};
    int rc = encode(sg, in, &data);
    if (!rc) rc = base_buf_printf(&meta, "{\"$correlationId\":");
    if (!rc) rc = json_write_string(&meta, in->key, strlen(in->key));
    if (!rc && cause) {
        char u[37];
        factum_uuid_format(cause, u);
        rc = base_buf_printf(&meta, ",\"$causationId\":\"%s\"", u);
    }
    if (!rc) rc = base_buf_append(&meta, "}", 1);
    if (rc) goto out;
    factum_event_data e = {0};
    e.type = type;
    memcpy(e.id, id, 16);
    e.has_id = 1;
    e.flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
    e.data = data.data;
    e.data_len = data.len;
    e.metadata = meta.data;
    e.metadata_len = meta.len;
    char stream[FACTUM_SAGA_MAX_NAME + FACTUM_SAGA_MAX_KEY + 16];
    progress_stream(sg, in->key, stream, sizeof stream);
    factum_append_result res;
    rc = factum_append(sg->s, stream, in->version, &e, 1, &res);
    if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EIDEMPOTENCY) {
        count(sg, &sg->st.conflicts, 1);
        goto out;
    }
    if (rc) goto out;
    in->version = (int64_t)res.last_version;
    in->ts_ns = res.timestamp_ns;
    if (res.idempotent) { /* stored before (a replay reports no time): its commit time */
        factum_event ev;
        size_t n = 0;
        rc = factum_read_stream(sg->s, stream, res.last_version, FACTUM_FORWARD, &ev, 1, &n, NULL);
        if (!rc && n == 1)
            in->ts_ns = ev.timestamp_ns;
        else if (!rc)
            rc = FACTUM_ECORRUPT;
        if (rc) goto out;
        /* Another runner wrote it and has moved the instance on since: its
         * effects are that runner's (or, after its crash, the last
         * progress's); reload rather than issue stale ones. */
        factum_stream_info info;
        rc = factum_stream_get_info(sg->s, stream, &info);
        if (rc) goto out;
        if (info.last_version > (int64_t)res.last_version) {
            count(sg, &sg->st.conflicts, 1);
            rc = FACTUM_EWRONGVERSION;
            goto out;
        }
    }
    in->exists = 1;
    pthread_mutex_lock(&sg->mu);
    if (!res.idempotent) sg->st.transitions++;
    if (!strcmp(type, "SagaStarted")) sg->st.started++;
    if (in->status == FACTUM_SAGA_COMPLETED) sg->st.completed++;
    if (in->status == FACTUM_SAGA_COMPENSATED) sg->st.compensated++;
    pthread_mutex_unlock(&sg->mu);
    if ((in->status == FACTUM_SAGA_COMPLETED || in->status == FACTUM_SAGA_COMPENSATED) && sg->def->on_end)
        sg->def->on_end(sg->def->ctx, in->key, in->status);
out:
    base_buf_free(&data);
    base_buf_free(&meta);
    return rc;
}

/* ---- handling one event ------------------------------------------------- */

/* The key of ev, and whether it is one of this saga's timeouts (*timeout_ix
 * set to the step's internal index). Returns 1 if it belongs to an
 * instance. */
static int correlate(factum_saga *sg, const factum_event *ev, char *key, int *timeout_ix)
{
    *timeout_ix = -1;
    int found = 0;
    /* Requests waiting in $scheduled (with the types of the events they
     * will deliver) are not facts yet. */
    if (!strncmp(ev->stream, FACTUM_SCHEDULED_STREAM, strlen(FACTUM_SCHEDULED_STREAM))) return 0;
    if ((ev->flags & FACTUM_EVENT_META_JSON) && ev->metadata_len > 0) {
        json_value *m = NULL;
        if (!json_parse((const char *)ev->metadata, ev->metadata_len, &m) && m->type == JSON_OBJECT) {
            const json_value *c = json_get(m, "$correlationId"), *saga = json_get(m, "$saga");
            const json_value *step = json_get(m, "$sagaStep");
            int64_t s;
            if (saga && saga->type == JSON_STRING && !strcmp(saga->str, sg->name) && step &&
                !json_int64(step, &s) && s >= 0 && s < (int64_t)sg->def->n_steps && c &&
                c->type == JSON_STRING && !strcmp(ev->type, timeout_type(sg, (int)s + 1))) {
                *timeout_ix = (int)s + 1;
            }
            if ((*timeout_ix >= 0 || !sg->def->correlate) && c && c->type == JSON_STRING &&
                c->len < FACTUM_SAGA_MAX_KEY + 1 && key_valid(c->str, c->len)) {
                memcpy(key, c->str, c->len + 1);
                found = 1;
            }
            /* A timeout counts only where this saga delivers it. */
            char want[FACTUM_MAX_STREAM_LEN + 1];
            if (*timeout_ix >= 0 && (!found || timeout_stream(sg, *timeout_ix, key, want, sizeof want) ||
                                     strcmp(want, ev->stream))) {
                *timeout_ix = -1;
                found = 0;
                json_free(m);
                return 0;
            }
        }
        json_free(m);
    }
    if (*timeout_ix < 0 && sg->def->correlate) {
        key[0] = 0;
        found = sg->def->correlate(sg->def->ctx, ev, key, FACTUM_SAGA_MAX_KEY + 1) == 1;
        key[FACTUM_SAGA_MAX_KEY] = 0;
        if (found && !key_valid(key, strlen(key))) found = 0;
    }
    return found;
}

/* The JSON data of ev as text, or NULL (not JSON). */
static char *json_data(const factum_event *ev)
{
    if (!(ev->flags & FACTUM_EVENT_JSON) || json_validate((const char *)ev->data, ev->data_len)) return NULL;
    char *p = malloc(ev->data_len + 1);
    if (!p) return NULL;
    memcpy(p, ev->data, ev->data_len);
    p[ev->data_len] = 0;
    return p;
}

/* Decide the transition ev causes on in (pure). Returns the progress
 * event's type, or NULL when the event moves nothing. */
static const char *transition(const factum_saga *sg, inst *in, const factum_event *ev, int timeout_ix,
                              const char *data)
{
    const char *t = ev->type;
    in->n_effects = 0;
    if (!in->exists) {
        if (timeout_ix >= 0 || !in_list(sg->def->start_types, sg->def->n_start, t)) return NULL;
        in->done = 1; /* the start */
        in->data[0] = data ? strdup(data) : NULL;
        enter(sg, in, 1);
        return "SagaStarted";
    }
    int f = in->failed;
    if (in->status == FACTUM_SAGA_RUNNING && in->step >= 1) {
        const factum_saga_step *st = step_of(sg, in->step);
        if (timeout_ix >= 0) {
            if (timeout_ix != in->step) return NULL; /* a stale timeout (its step ended first) */
            fail(sg, in, in->step, "timeout");
            return "SagaStepFailed";
        }
        if (in_list(st->done_types, st->n_done, t)) {
            complete(sg, in, in->step, data);
            return "SagaStepCompleted";
        }
        if (in_list(st->failed_types, st->n_failed, t)) {
            fail(sg, in, in->step, t);
            return "SagaStepFailed";
        }
        return NULL;
    }
    if (timeout_ix >= 0) return NULL;
    if (in->status == FACTUM_SAGA_COMPENSATING && is_confirm(sg, in->step, t)) {
        undone(sg, in, in->step);
        return "SagaStepCompensated";
    }
    /* SAGA-5: the failed step completed after all (its answer came after
     * the failure, e.g. after a timeout in another stream): undo it, once. */
    if (f >= 1 && !(in->late & (1ull << f)) && step_of(sg, f)->compensate &&
        in_list(step_of(sg, f)->done_types, step_of(sg, f)->n_done, t)) {
        in->late |= 1ull << f;
        free(in->data[f]);
        in->data[f] = data ? strdup(data) : NULL;
        add_effect(in, EF_LATE_UNDO, f);
        return "SagaLateCompletion";
    }
    return NULL;
}

/* Handle one event of the subscription: SAGA-1..3. */
static int handle(factum_saga *sg, const factum_event *ev, const char *key, int timeout_ix)
{
    char *data = json_data(ev);
    inst in = {0};
    int rc = 0;
    for (int attempt = 0; attempt < 64; attempt++) {
        rc = load(sg, &in, key);
        if (rc == FACTUM_ECORRUPT) {
            /* Its stream ends in an event this library did not write (a
             * client appended to it): the instance cannot move safely; its
             * events are ignored (and logged) rather than stop every other
             * instance. */
            slog(sg, FACTUM_LOG_ERROR,
                 "saga %s: instance %s: its last progress event is not one of a saga %s; "
                 "event at position %llu ignored",
                 sg->name, key, sg->name, (unsigned long long)ev->position);
            count(sg, &sg->st.ignored, 1);
            rc = 0;
            break;
        }
        if (rc) break;
        if (in.exists && ev->position < in.pos) break; /* SAGA-2: applied already */
        if (in.exists && ev->position == in.pos) {     /* applied; its effects may not be */
            rc = run_effects(sg, &in);
            break;
        }
        const char *type = transition(sg, &in, ev, timeout_ix, data);
        if (!type) {
            count(sg, &sg->st.ignored, 1);
            break;
        }
        in.pos = ev->position;
        char salt[32];
        snprintf(salt, sizeof salt, "in:%llu", (unsigned long long)ev->position);
        uint8_t id[16];
        derive(&in, salt, 0, id);
        rc = append_progress(sg, &in, type, id, ev->id);
        if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EIDEMPOTENCY) continue; /* another runner: reload */
        if (rc) break;
        rc = run_effects(sg, &in);
        break;
    }
    if (rc == FACTUM_EWRONGVERSION || rc == FACTUM_EIDEMPOTENCY) rc = 0; /* another runner moved it on */
    inst_reset(&in);
    free(data);
    return rc;
}

/* ---- the runner --------------------------------------------------------- */

static int read_checkpoint(factum_saga *sg, uint64_t *pos)
{
    factum_event ev;
    size_t n = 0;
    *pos = 0;
    int rc = factum_read_stream(sg->s, sg->cp_stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND || (!rc && n == 0)) return 0;
    if (rc) return rc;
    json_value *v = NULL;
    int64_t p;
    rc = json_parse((const char *)ev.data, ev.data_len, &v);
    if (!rc) rc = get_int(v, "position", &p) ? FACTUM_ECORRUPT : 0;
    if (!rc && p < 0) rc = FACTUM_ECORRUPT;
    if (!rc) *pos = (uint64_t)p;
    json_free(v);
    return rc;
}

static int write_checkpoint(factum_saga *sg, uint64_t pos)
{
    char data[64];
    int n = snprintf(data, sizeof data, "{\"position\":%llu}", (unsigned long long)pos);
    factum_event_data e = {0};
    e.type = "$sagaCheckpoint";
    e.flags = FACTUM_EVENT_JSON;
    e.data = data;
    e.data_len = (size_t)n;
    int rc = factum_append(sg->s, sg->cp_stream, FACTUM_ANY, &e, 1, NULL);
    if (!rc) {
        sg->checkpoint = pos;
        sg->since_cp = 0;
        sg->cp_mono_ns = base_mono_ns();
    }
    return rc;
}

static int open_sub(factum_saga *sg)
{
    factum_sub_close(sg->sub);
    sg->sub = NULL;
    factum_sub_options so;
    factum_sub_options_init(&so);
    pthread_mutex_lock(&sg->mu);
    uint64_t after = sg->handled;
    pthread_mutex_unlock(&sg->mu);
    so.from = after ? FACTUM_SUB_AFTER : FACTUM_SUB_START;
    so.after = after;
    so.filter = sg->filter;
    so.checkpoint_interval = 4096;
    return factum_sub_open(sg->s, &so, &sg->sub);
}

static void set_handled(factum_saga *sg, uint64_t pos)
{
    pthread_mutex_lock(&sg->mu);
    if (pos > sg->handled) sg->handled = pos;
    sg->st.position = sg->handled;
    pthread_cond_broadcast(&sg->cv);
    pthread_mutex_unlock(&sg->mu);
}

static int run_batch(factum_saga *sg, int timeout_ms, size_t *handled)
{
    if (handled) *handled = 0;
    if (!sg->sub) {
        int rc = open_sub(sg);
        if (rc) return rc;
    }
    size_t n = 0;
    holder_bind hb = holder_reader_enter(sg->s, &sg->rdr, 1); /* the batch before is handled */
    int rc =
        factum_sub_poll(sg->sub, sg->items,
                        (size_t)sg->o.batch_events + 4 < POLL_CAP ? (size_t)sg->o.batch_events + 4 : POLL_CAP,
                        &n, timeout_ms);
    holder_reader_leave(hb);
    if (rc) goto fail;
    /* Keys first (on this thread), then the events of each instance on the
     * worker its key hashes to, all workers at once (SAGA-6). */
    size_t n_events = 0;
    for (size_t i = 0; i < n; i++) {
        const factum_sub_item *it = &sg->items[i];
        sg->keys[i][0] = 0;
        if (it->kind != FACTUM_SUB_EVENT) continue;
        n_events++;
        if (!correlate(sg, &it->event, sg->keys[i], &sg->timeout_ix[i])) {
            sg->keys[i][0] = 0;
            count(sg, &sg->st.ignored, 1);
        }
        sg->owner[i] = (uint32_t)(base_hash64(sg->keys[i], strlen(sg->keys[i])) % sg->n_workers);
    }
    count(sg, &sg->st.events, n_events);
    if (sg->n_workers == 1) {
        for (size_t i = 0; i < n && !rc; i++)
            if (sg->items[i].kind == FACTUM_SUB_EVENT && sg->keys[i][0])
                rc = handle(sg, &sg->items[i].event, sg->keys[i], sg->timeout_ix[i]);
    } else if (n_events) {
        pthread_mutex_lock(&sg->mu);
        sg->batch_n = n;
        sg->batch_rc = 0;
        sg->batch_left = sg->n_workers;
        sg->batch_gen++;
        pthread_cond_broadcast(&sg->work_cv);
        while (sg->batch_left)
            pthread_cond_wait(&sg->done_cv, &sg->mu);
        rc = sg->batch_rc;
        pthread_mutex_unlock(&sg->mu);
    }
    if (rc) goto fail;
    sg->since_cp += n_events;
    if (handled) *handled = n_events;
    for (size_t i = 0; i < n; i++) {
        const factum_sub_item *it = &sg->items[i];
        if (it->kind == FACTUM_SUB_EVENT || it->kind == FACTUM_SUB_CHECKPOINT) set_handled(sg, it->position);
    }
    /* Every item returned is handled: the subscription's position (the
     * last event examined, matching or not) is too. */
    factum_sub_status sst;
    if (!factum_sub_get_status(sg->sub, &sst) && sst.position != FACTUM_END) set_handled(sg, sst.position);
    pthread_mutex_lock(&sg->mu);
    uint64_t h = sg->handled;
    pthread_mutex_unlock(&sg->mu);
    if (h > sg->checkpoint &&
        (sg->since_cp >= sg->o.batch_events || base_mono_ns() - sg->cp_mono_ns >= 1000000000ull)) {
        rc = write_checkpoint(sg, h); /* SAGA-4 */
        if (rc) return rc;
    }
    return 0;
fail:
    /* Back to the last event handled: the subscription is opened again
     * after it at the next call. */
    factum_sub_close(sg->sub);
    sg->sub = NULL;
    return rc;
}

typedef struct worker_arg {
    factum_saga *sg;
    uint32_t ix;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    factum_saga *sg = wa->sg;
    uint32_t ix = wa->ix;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&sg->mu);
    for (;;) {
        while (sg->batch_gen == seen && !sg->quit)
            pthread_cond_wait(&sg->work_cv, &sg->mu);
        if (sg->quit) break;
        seen = sg->batch_gen;
        size_t n = sg->batch_n;
        pthread_mutex_unlock(&sg->mu);
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++)
            if (sg->items[i].kind == FACTUM_SUB_EVENT && sg->keys[i][0] && sg->owner[i] == ix)
                rc = handle(sg, &sg->items[i].event, sg->keys[i], sg->timeout_ix[i]);
        pthread_mutex_lock(&sg->mu);
        if (rc && !sg->batch_rc) sg->batch_rc = rc;
        if (--sg->batch_left == 0) pthread_cond_signal(&sg->done_cv);
    }
    pthread_mutex_unlock(&sg->mu);
    return NULL;
}

static void *runner_main(void *arg)
{
    factum_saga *sg = arg;
    uint32_t errors = 0;
    while (!stopping(sg)) {
        int rc = run_batch(sg, 100, NULL);
        if (!rc) {
            errors = 0;
            continue;
        }
        if (rc == FACTUM_ECLOSED) continue;
        pthread_mutex_lock(&sg->mu);
        sg->st.last_error = rc;
        pthread_mutex_unlock(&sg->mu);
        slog(sg, FACTUM_LOG_ERROR, "saga %s: %s (retrying)", sg->name, factum_strerror(rc));
        nap(sg, backoff(sg, ++errors));
    }
    return NULL;
}

/* ---- the API -------------------------------------------------------------- */

void factum_saga_options_init(factum_saga_options *o)
{
    memset(o, 0, sizeof *o);
    o->threaded = 1;
    o->batch_events = 256;
    o->max_attempts = 5;
    o->backoff_ms = 10;
    o->workers = 16;
}

static int types_valid(const char *const *list, size_t n)
{
    if (n && !list) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!list[i] || !*list[i] || strlen(list[i]) > FACTUM_MAX_TYPE_LEN) return 0;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(list[i], list[j])) return 0;
    }
    return 1;
}

static int disjoint(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    for (size_t i = 0; i < na; i++)
        if (in_list(b, nb, a[i])) return 0;
    return 1;
}

static int def_valid(const factum_saga_def *d)
{
    if (!d || !name_valid(d->name) || !d->steps || d->n_steps < 1 || d->n_steps > FACTUM_SAGA_MAX_STEPS)
        return 0;
    if (d->n_start < 1 || !types_valid(d->start_types, d->n_start)) return 0;
    if (!types_valid(d->start_compensated_types, d->n_start_compensated)) return 0;
    if (d->n_start_compensated && !d->compensate_start) return 0;
    for (size_t i = 0; i < d->n_steps; i++) {
        const factum_saga_step *s = &d->steps[i];
        if (!s->name || !*s->name || (!s->run && !s->n_done) || s->timeout_ms < 0) return 0;
        if (!types_valid(s->done_types, s->n_done) || !types_valid(s->failed_types, s->n_failed) ||
            !types_valid(s->compensated_types, s->n_compensated))
            return 0;
        if (s->n_compensated && !s->compensate) return 0;
        if (!disjoint(s->done_types, s->n_done, s->failed_types, s->n_failed) ||
            !disjoint(s->done_types, s->n_done, s->compensated_types, s->n_compensated) ||
            !disjoint(s->failed_types, s->n_failed, s->compensated_types, s->n_compensated) ||
            !disjoint(s->done_types, s->n_done, d->start_types, d->n_start) ||
            !disjoint(s->failed_types, s->n_failed, d->start_types, d->n_start))
            return 0;
        if (s->timeout_type && (!*s->timeout_type || strlen(s->timeout_type) > FACTUM_MAX_TYPE_LEN)) return 0;
        if (s->timeout_stream) {
            /* "{key}" replaced by a key of the longest length must still name a stream. */
            char key[FACTUM_SAGA_MAX_KEY + 1], buf[FACTUM_MAX_STREAM_LEN + 1];
            memset(key, 'k', FACTUM_SAGA_MAX_KEY);
            key[FACTUM_SAGA_MAX_KEY] = 0;
            size_t o = 0;
            for (const char *p = s->timeout_stream; *p;) {
                size_t n = strncmp(p, "{key}", 5) ? 1 : FACTUM_SAGA_MAX_KEY;
                if (o + n >= sizeof buf) return 0;
                memcpy(buf + o, n == 1 ? p : key, n);
                o += n;
                p += n == 1 ? 1 : 5;
            }
            if (factum_check_stream_name(buf, o) ||
                !strncmp(buf, FACTUM_SCHEDULED_STREAM, strlen(FACTUM_SCHEDULED_STREAM)))
                return 0;
        }
    }
    return 1;
}

/* The filter: every type the definition reacts to (prefixes; the exact
 * match is made per event). */
static int make_filter(factum_saga *sg)
{
    const factum_saga_def *d = sg->def;
    size_t n = d->n_start + d->n_start_compensated, k = 0;
    for (size_t i = 0; i < d->n_steps; i++)
        n += d->steps[i].n_done + d->steps[i].n_failed + d->steps[i].n_compensated +
             (d->steps[i].timeout_ms > 0);
    const char **p = calloc(n, sizeof *p);
    if (!p) return -ENOMEM;
    for (size_t i = 0; i < d->n_start; i++)
        p[k++] = d->start_types[i];
    for (size_t i = 0; i < d->n_start_compensated; i++)
        p[k++] = d->start_compensated_types[i];
    for (size_t i = 0; i < d->n_steps; i++) {
        const factum_saga_step *s = &d->steps[i];
        for (size_t j = 0; j < s->n_done; j++)
            p[k++] = s->done_types[j];
        for (size_t j = 0; j < s->n_failed; j++)
            p[k++] = s->failed_types[j];
        for (size_t j = 0; j < s->n_compensated; j++)
            p[k++] = s->compensated_types[j];
        if (s->timeout_ms > 0) p[k++] = timeout_type(sg, (int)i + 1);
    }
    int rc = factum_filter_new(FACTUM_FILTER_EVENT_TYPE, p, k, NULL, 0, &sg->filter);
    free(p);
    return rc;
}

static void stop_workers(factum_saga *sg, uint32_t n)
{
    pthread_mutex_lock(&sg->mu);
    sg->quit = 1;
    pthread_cond_broadcast(&sg->work_cv);
    pthread_mutex_unlock(&sg->mu);
    for (uint32_t i = 0; i < n; i++)
        pthread_join(sg->workers[i], NULL);
}

static void free_arrays(factum_saga *sg)
{
    factum_reader_free(sg->rdr);
    sg->rdr = NULL;
    free(sg->items);
    free(sg->keys);
    free(sg->timeout_ix);
    free(sg->owner);
    free(sg->workers);
}

int factum_saga_open(factum_store *s, const factum_saga_def *def, const factum_saga_options *o,
                     factum_saga **out)
{
    if (!s || !out || !def_valid(def)) return FACTUM_EINVAL;
    factum_saga *sg = calloc(1, sizeof *sg);
    if (!sg) return -ENOMEM;
    sg->s = s;
    sg->def = def;
    if (o)
        sg->o = *o;
    else
        factum_saga_options_init(&sg->o);
    if (!sg->o.batch_events) sg->o.batch_events = 256;
    if (!sg->o.max_attempts) sg->o.max_attempts = 1;
    snprintf(sg->name, sizeof sg->name, "%s", def->name);
    snprintf(sg->cp_stream, sizeof sg->cp_stream, "$saga-%s-checkpoint", def->name);
    snprintf(sg->to_stream, sizeof sg->to_stream, "$saga-%s-timeouts", def->name);
    pthread_mutex_init(&sg->mu, NULL);
    pthread_cond_init(&sg->cv, NULL);
    int rc = -ENOMEM;
    if (!sg->o.workers) sg->o.workers = 1;
    if (sg->o.workers > 64) sg->o.workers = 64;
    sg->n_workers = sg->o.workers;
    pthread_cond_init(&sg->work_cv, NULL);
    pthread_cond_init(&sg->done_cv, NULL);
    sg->items = calloc(POLL_CAP, sizeof *sg->items);
    sg->keys = calloc(POLL_CAP, sizeof *sg->keys);
    sg->timeout_ix = calloc(POLL_CAP, sizeof *sg->timeout_ix);
    sg->owner = calloc(POLL_CAP, sizeof *sg->owner);
    sg->workers = calloc(sg->n_workers, sizeof *sg->workers);
    if (!sg->items || !sg->keys || !sg->timeout_ix || !sg->owner || !sg->workers) goto fail;
    rc = make_filter(sg);
    if (rc) goto fail;
    rc = read_checkpoint(sg, &sg->checkpoint);
    if (rc) goto fail;
    sg->handled = sg->checkpoint;
    sg->st.position = sg->handled;
    sg->cp_mono_ns = base_mono_ns();
    /* Only the last checkpoint is read: keep a few. */
    factum_stream_info info;
    rc = factum_stream_get_info(s, sg->cp_stream, &info);
    if (!rc && info.metadata_version < 0)
        rc = factum_set_stream_metadata(s, sg->cp_stream, FACTUM_ANY, "{\"$maxCount\":4}", 15, NULL);
    if (rc) goto fail;
    uint32_t started = 0;
    for (; sg->n_workers > 1 && started < sg->n_workers; started++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){sg, started};
        if (!wa || pthread_create(&sg->workers[started], NULL, worker_main, wa)) {
            free(wa);
            rc = -EAGAIN;
            goto fail_workers;
        }
    }
    sg->threaded = sg->o.threaded;
    if (sg->threaded && pthread_create(&sg->thread, NULL, runner_main, sg)) {
        rc = -EAGAIN;
        goto fail_workers;
    }
    *out = sg;
    return 0;
fail_workers:
    stop_workers(sg, started);
fail:
    factum_filter_free(sg->filter);
    free_arrays(sg);
    pthread_mutex_destroy(&sg->mu);
    pthread_cond_destroy(&sg->cv);
    pthread_cond_destroy(&sg->work_cv);
    pthread_cond_destroy(&sg->done_cv);
    free(sg);
    return rc;
}

void factum_saga_close(factum_saga *sg)
{
    if (!sg) return;
    pthread_mutex_lock(&sg->mu);
    sg->stop = 1;
    pthread_cond_broadcast(&sg->cv);
    pthread_mutex_unlock(&sg->mu);
    if (sg->threaded) pthread_join(sg->thread, NULL);
    stop_workers(sg, sg->n_workers > 1 ? sg->n_workers : 0);
    if (sg->handled > sg->checkpoint) write_checkpoint(sg, sg->handled);
    factum_sub_close(sg->sub);
    factum_filter_free(sg->filter);
    free_arrays(sg);
    pthread_mutex_destroy(&sg->mu);
    pthread_cond_destroy(&sg->cv);
    pthread_cond_destroy(&sg->work_cv);
    pthread_cond_destroy(&sg->done_cv);
    free(sg);
}

int factum_saga_run(factum_saga *sg, int timeout_ms, size_t *handled)
{
    if (!sg || sg->threaded) return FACTUM_EINVAL;
    return run_batch(sg, timeout_ms, handled);
}

int factum_saga_wait(factum_saga *sg, uint64_t position, int timeout_ms)
{
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
    pthread_mutex_lock(&sg->mu);
    int ok = 1;
    while (sg->handled < position) {
        if (timeout_ms == 0 || (!sg->threaded && timeout_ms > 0)) {
            ok = 0;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&sg->cv, &sg->mu);
        else if (pthread_cond_timedwait(&sg->cv, &sg->mu, &dl) == ETIMEDOUT) {
            ok = sg->handled >= position;
            break;
        }
    }
    pthread_mutex_unlock(&sg->mu);
    return ok;
}

void factum_saga_get_stats(factum_saga *sg, factum_saga_stats *st)
{
    pthread_mutex_lock(&sg->mu);
    *st = sg->st;
    pthread_mutex_unlock(&sg->mu);
}

int factum_saga_instance_get(factum_store *s, const char *name, const char *key, factum_saga_instance *out)
{
    if (!s || !out || !name_valid(name) || !key || !key_valid(key, strlen(key))) return FACTUM_EINVAL;
    char stream[FACTUM_SAGA_MAX_NAME + FACTUM_SAGA_MAX_KEY + 16];
    snprintf(stream, sizeof stream, "saga-%s-%s", name, key);
    factum_event ev;
    size_t n = 0;
    int rc = factum_read_stream(s, stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc) return rc;
    if (n == 0) return FACTUM_ENOTFOUND;
    json_value *v = NULL;
    if (json_parse((const char *)ev.data, ev.data_len, &v) || v->type != JSON_OBJECT) {
        json_free(v);
        return FACTUM_ECORRUPT;
    }
    rc = FACTUM_ECORRUPT;
    int64_t step, failed, done, undone;
    const json_value *st = json_get(v, "status"), *reason = json_get(v, "reason");
    if (!st || st->type != JSON_STRING || !reason || reason->type != JSON_STRING ||
        get_int(v, "step", &step) || get_int(v, "failed", &failed) || get_int(v, "done", &done) ||
        get_int(v, "undone", &undone) || step < -1 || step > FACTUM_SAGA_MAX_STEPS + 1 || failed < -1 ||
        failed > FACTUM_SAGA_MAX_STEPS)
        goto out;
    memset(out, 0, sizeof *out);
    if ((out->status = status_parse(st->str)) < 0) goto out;
    /* Internal bit/step i is the start (0) or step i - 1. */
    out->step = (int)step - 1;
    out->failed_step = failed >= 1 ? (int)failed - 1 : -2;
    snprintf(out->reason, sizeof out->reason, "%s", reason->str);
    out->completed = (uint64_t)done >> 1;
    out->compensated = ((uint64_t)undone >> 1) | (((uint64_t)undone & 1) << FACTUM_SAGA_START_BIT);
    out->version = ev.version;
    int64_t pos;
    out->position = get_int(v, "pos", &pos) ? 0 : (uint64_t)pos;
    rc = 0;
out:
    json_free(v);
    return rc;
}
