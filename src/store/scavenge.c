/*
 * scavenge.c - the scavenger (factum_lifecycle.h "Scavenge", ADR 0026): decides, event
 * by event, what retention and deletes made unreadable, and has the log
 * rewrite each sealed segment before the scavenge point as a compacted
 * generation (log/compact.c, LOG-8).
 *
 * Design note (invariants; tests cite them as SC-n):
 *  SV-1  Only segments wholly before the scavenge point's are compacted, and
 *        only once they are durable: the writer never touches them again.
 *  SV-2  A decision uses the stream's state as readers see it (the stream
 *        cache) and the scavenge's start time for $maxAge: an event is
 *        removed only if no read could return it at that moment. Each
 *        stream's last event (its version), its first (the catalog names
 *        it), its tombstone and its last metadata event stay; the first and
 *        an unreadable last as stubs.
 *  SV-3  Progress is in scavenge.chk (written atomically after each
 *        segment): a run a crash interrupted resumes at the next segment
 *        when the store is opened again, with the same id and point. A run
 *        that ends (completed, stopped, failed) removes it.
 *  SV-4  Memory does not grow with the number of streams: decisions go
 *        through the bounded stream cache; a segment's rewrite holds its map
 *        (8 bytes per kept frame) and a buffer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

#define CHK_FILE "scavenge.chk"

typedef struct scav {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int th_live;  /* a thread to join */
    int running;  /* st.state == RUNNING */
    int closing;  /* the store is closing: end now */
    int have;     /* st holds a run's status */
    _Atomic int stop;
    factum_scavenge_status st; /* mu */
    factum_scavenge_options o;
    uint64_t resume_from; /* the first segment to look at */
    int fresh;            /* a new run: its point is still to be made (begin_run) */
    /* The throttle: bytes read and written since t0 (the run's thread only);
     * paced every PACE_STEP bytes, inside segments too, so that the run is
     * not a burst per segment. */
    uint64_t t0, io_bytes, paced_at;
    int64_t now_ns;       /* $maxAge is measured from here (SV-2) */
    int64_t last_swap_ns;
} scav;

int scav_init(factum_store *s)
{
    scav *v = calloc(1, sizeof *v);
    if (!v) return -ENOMEM;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    s->scav = v;
    return 0;
}

void scav_free(factum_store *s)
{
    scav *v = s->scav;
    if (!v) return;
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    free(v);
    s->scav = NULL;
}

#define PACE_STEP (256u << 10)

static void pause_until(scav *v, uint64_t until_ns);

/* Keep to the throttle: sleep until io_bytes is due (the run's thread). */
static void pace(scav *v)
{
    if (!v->o.throttle_bytes_per_sec || v->io_bytes - v->paced_at < PACE_STEP) return;
    v->paced_at = v->io_bytes;
    pause_until(v, v->t0 + (uint64_t)((double)v->io_bytes * 1e9 / (double)v->o.throttle_bytes_per_sec));
}

/* ---- decisions (SV-2) ------------------------------------------------ */

static int decide(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff)
{
    factum_store *s = ctx;
    scav *v = s->scav;
    (void)lo;
    v->io_bytes += log_event_frame_len(ev->stream_len, ev->type_len, ev->data_len, ev->metadata_len);
    pace(v);
    if (atomic_load_explicit(&v->stop, memory_order_relaxed)) return -ECANCELED;
    if (ev->position >= v->st.point) return LOG_KEEP; /* SV-1: never, but never remove past the point */
    sstate st;
    int rc = state_get(s, ev->stream, ev->stream_len, &st);
    if (rc) return rc;
    if (st.last_version < 0) return LOG_KEEP; /* not known to the index (cannot be): keep */
    int last = (int64_t)ev->version == st.last_version;
    int visible;
    if (sstate_tombstoned(&st)) {
        visible = 0; /* only the tombstone (the last) is kept */
    } else if (ev->stream_len > 2 && ev->stream[0] == '$' && ev->stream[1] == '$') {
        visible = last; /* metadata: the latest document rules */
    } else {
        uint64_t first = 0;
        if (st.meta.truncate_before > 0) first = (uint64_t)st.meta.truncate_before; /* ST_TB_DELETED: none */
        if (st.meta.max_count >= 0) {
            int64_t mc = st.last_version - st.meta.max_count + 1;
            if (mc > 0 && (uint64_t)mc > first) first = (uint64_t)mc;
        }
        visible = ev->version >= first;
        if (visible && st.meta.max_age_s >= 0 && ev->timestamp_ns < v->now_ns - st.meta.max_age_s * 1000000000ll)
            visible = 0;
    }
    if (visible) return LOG_KEEP;
    if (last && sstate_tombstoned(&st)) return LOG_KEEP;
    if (last || (ff & ST_EV_CREATES)) return LOG_STUB;
    return LOG_REMOVE;
}

/* ---- history and checkpoint ------------------------------------------ */

static int append_json(factum_store *s, const char *stream, const char *type, const char *json, uint64_t *pos)
{
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    factum_append_result r;
    int rc = factum_append(s, stream, FACTUM_ANY, &e, 1, &r);
    if (!rc && pos) *pos = r.first_position;
    return rc;
}

static int write_chk(factum_store *s, const factum_scavenge_status *st, const factum_scavenge_options *o)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "factum scavenge 1\nid %s\npoint %" PRIu64 "\nsegments %" PRIu64 "\nnext %" PRIu64
                     "\nseal %d\nthreshold %u\nthrottle %" PRIu64 "\nstarted %lld\n",
                     st->id, st->point, st->segments, st->segment, o->seal, o->threshold_percent, o->throttle_bytes_per_sec,
                     (long long)st->started_ns);
    if (n < 0 || (size_t)n >= sizeof buf - 16) return -EOVERFLOW;
    n += snprintf(buf + n, sizeof buf - (size_t)n, "crc %08x\n", base_crc32c(0, buf, (size_t)n));
    return io_write_file_atomic(s->io, s->path, CHK_FILE, buf, (size_t)n);
}

/* 0 and the interrupted run, FACTUM_ENOTFOUND if none, FACTUM_ECORRUPT. */
static int read_chk(factum_store *s, factum_scavenge_status *st, factum_scavenge_options *o)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" CHK_FILE, s->path);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(s->io, p, 4096, &buf, &len);
    if (rc) return rc == -ENOENT ? FACTUM_ENOTFOUND : rc;
    char *text = (char *)buf, *crc = strstr(text, "crc ");
    unsigned want = 0;
    long long started = 0;
    memset(st, 0, sizeof *st);
    memset(o, 0, sizeof *o);
    int ok = crc && sscanf(crc, "crc %8x", &want) == 1 && base_crc32c(0, buf, (size_t)(crc - text)) == want &&
             sscanf(text,
                    "factum scavenge 1\nid %36s\npoint %" SCNu64 "\nsegments %" SCNu64 "\nnext %" SCNu64
                    "\nseal %d\nthreshold %u\nthrottle %" SCNu64 "\nstarted %lld\n",
                    st->id, &st->point, &st->segments, &st->segment, &o->seal, &o->threshold_percent,
                    &o->throttle_bytes_per_sec, &started) == 8;
    free(buf);
    st->started_ns = started;
    return ok ? 0 : FACTUM_ECORRUPT;
}

static void drop_chk(factum_store *s)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" CHK_FILE, s->path);
    s->io->unlink(s->io, p);
    s->io->fsync_dir(s->io, s->path);
}

/* ---- the run --------------------------------------------------------- */

/* Sleep until `until_ns` (monotonic) unless stopped or closing. */
static void pause_until(scav *v, uint64_t until_ns)
{
    pthread_mutex_lock(&v->mu);
    while (!v->closing && !atomic_load(&v->stop) && base_mono_ns() < until_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t left = until_ns - base_mono_ns();
        if (left > 200000000u) left = 200000000u;
        ts.tv_nsec += (long)(left % 1000000000u);
        ts.tv_sec += (time_t)(left / 1000000000u) + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&v->cv, &v->mu, &ts);
    }
    pthread_mutex_unlock(&v->mu);
}

/* Segment no: weigh it, and compact it if that frees enough. */
static int one_segment(factum_store *s, uint64_t no, factum_scavenge_status *delta)
{
    scav *v = s->scav;
    int rc = log_sync_upto(s->log, (no + 1) * s->seg_size); /* SV-1 (relaxed mode syncs it here) */
    if (rc) return rc;
    log_compact_stats w;
    if ((rc = log_compact_weigh(s->log, no, decide, s, &w))) return rc;
    delta->bytes_read += w.bytes_before;
    uint64_t removed_now = w.removed - w.removed_before;
    uint64_t gain = w.bytes_before > w.bytes_after ? w.bytes_before - w.bytes_after : 0;
    if (!removed_now && !w.stubbed_now) {
        delta->skipped++;
        return 0;
    }
    /* With no threshold, anything removed is removed, even when the map
     * makes the file no smaller: an erasure must reach every segment. */
    if (v->o.threshold_percent && (!gain || gain * 100 < (uint64_t)v->o.threshold_percent * w.bytes_before)) {
        delta->skipped++;
        return 0;
    }
    log_compact_stats st;
    pthread_mutex_lock(&s->seg_life_mu); /* AR-3: not while the archiver copies or drops it */
    if ((rc = log_compact_write(s->log, no, decide, s, &st))) {
        log_compact_abandon(s->log, no);
        pthread_mutex_unlock(&s->seg_life_mu);
        return rc;
    }
    if ((rc = log_compact_swap(s->log, no))) {
        log_compact_abandon(s->log, no);
        pthread_mutex_unlock(&s->seg_life_mu);
        return rc;
    }
    arc_after_compact(s, no); /* a failure is the archiver's to mend */
    pthread_mutex_unlock(&s->seg_life_mu);
    v->last_swap_ns = (int64_t)base_mono_ns();
    delta->compacted++;
    delta->events_removed += st.removed - st.removed_before;
    delta->bytes_before += st.bytes_before;
    delta->bytes_after += st.bytes_after;
    delta->bytes_read += st.bytes_before;
    delta->bytes_written += st.bytes_after;
    return 0;
}

static const char *state_name(int state)
{
    switch (state) {
    case FACTUM_SCAVENGE_COMPLETED: return "Success";
    case FACTUM_SCAVENGE_STOPPED: return "Stopped";
    case FACTUM_SCAVENGE_FAILED: return "Failed";
    default: return "Running";
    }
}

static int begin_run(factum_store *s);

static void *scav_main(void *arg)
{
    factum_store *s = arg;
    scav *v = s->scav;
    int rc = 0;
    uint64_t t0 = base_mono_ns();
    v->t0 = t0;
    v->io_bytes = v->paced_at = 0;
    char stream[64], json[512];
    snprintf(stream, sizeof stream, "$scavenges-%s", v->st.id);
    if (v->fresh) {
        v->fresh = 0;
        rc = begin_run(s);
    }
    for (uint64_t no = v->resume_from; no < v->st.segments && !rc; no++) {
        if (atomic_load(&v->stop) || v->closing) break;
        factum_scavenge_status d;
        memset(&d, 0, sizeof d);
        rc = one_segment(s, no, &d);
        if (rc == -ECANCELED) {
            rc = 0;
            break;
        }
        pthread_mutex_lock(&v->mu);
        v->st.segment = no + 1;
        v->st.compacted += d.compacted;
        v->st.skipped += d.skipped;
        v->st.events_removed += d.events_removed;
        v->st.bytes_before += d.bytes_before;
        v->st.bytes_after += d.bytes_after;
        v->st.bytes_read += d.bytes_read;
        v->st.bytes_written += d.bytes_written;
        factum_scavenge_status now = v->st;
        pthread_mutex_unlock(&v->mu);
        if (rc) break;
        if (d.compacted) {
            snprintf(json, sizeof json,
                     "{\"scavengeId\":\"%s\",\"segment\":%" PRIu64 ",\"bytesBefore\":%" PRIu64
                     ",\"bytesAfter\":%" PRIu64 ",\"eventsRemoved\":%" PRIu64 "}",
                     v->st.id, no, d.bytes_before, d.bytes_after, d.events_removed);
            if ((rc = append_json(s, stream, "$scavengeSegmentCompleted", json, NULL))) break;
        }
        if ((rc = write_chk(s, &now, &v->o))) break; /* SV-3 */
        if (s->opts.scavenge_grace_ms != FACTUM_SCAVENGE_GRACE_UNTIL_CLOSE)
            log_retire(s->log, (int64_t)s->opts.scavenge_grace_ms * 1000000);
        v->io_bytes += d.bytes_written; /* (what it read, decide counted) */
        pace(v);
    }
    int closing;
    pthread_mutex_lock(&v->mu);
    closing = v->closing;
    pthread_mutex_unlock(&v->mu);
    int state = rc ? FACTUM_SCAVENGE_FAILED
                : v->st.segment >= v->st.segments ? FACTUM_SCAVENGE_COMPLETED
                                                   : FACTUM_SCAVENGE_STOPPED;
    if (closing && state == FACTUM_SCAVENGE_STOPPED) {
        /* Closing, not stopped by anyone: stays interrupted (SV-3), resumed at the next open. */
        pthread_mutex_lock(&v->mu);
        v->running = 0;
        v->st.state = FACTUM_SCAVENGE_STOPPED;
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
        return NULL;
    }
    if (rc) store_log(s, FACTUM_LOG_ERROR, "scavenge %s failed: %s", v->st.id, factum_strerror(rc));
    snprintf(json, sizeof json,
             "{\"scavengeId\":\"%s\",\"result\":\"%s\",\"error\":\"%s\",\"timeTakenMs\":%" PRIu64
             ",\"spaceSaved\":%" PRIu64 ",\"segmentsCompacted\":%" PRIu64 ",\"eventsRemoved\":%" PRIu64 "}",
             v->st.id, state_name(state), rc ? factum_strerror(rc) : "", (base_mono_ns() - t0) / 1000000,
             v->st.bytes_before - v->st.bytes_after, v->st.compacted, v->st.events_removed);
    int hrc = append_json(s, stream, "$scavengeCompleted", json, NULL);
    if (!hrc) hrc = append_json(s, "$scavenges", "$scavengeCompleted", json, NULL);
    if (!hrc || rc) drop_chk(s);
    if (rc) store_log(s, FACTUM_LOG_INFO, "scavenge %s: %s", v->st.id, state_name(state));
    pthread_mutex_lock(&v->mu);
    v->st.state = state;
    v->st.error = rc;
    v->st.finished_ns = base_now_ns();
    v->running = 0;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    /* The generations it replaced go once their grace is over (never with
     * FACTUM_SCAVENGE_GRACE_UNTIL_CLOSE: log_close unmaps them). */
    while (s->opts.scavenge_grace_ms != FACTUM_SCAVENGE_GRACE_UNTIL_CLOSE) {
        uint64_t due = (uint64_t)v->last_swap_ns + (uint64_t)s->opts.scavenge_grace_ms * 1000000u;
        if (!v->last_swap_ns || base_mono_ns() >= due) break;
        pause_until(v, due);
        pthread_mutex_lock(&v->mu);
        closing = v->closing || v->running || atomic_load(&v->stop);
        pthread_mutex_unlock(&v->mu);
        if (closing) break; /* what is not due yet goes with the next run, or at close */
    }
    if (s->opts.scavenge_grace_ms != FACTUM_SCAVENGE_GRACE_UNTIL_CLOSE)
        log_retire(s->log, (int64_t)s->opts.scavenge_grace_ms * 1000000);
    return NULL;
}

/* Start the thread for v->st (mu held). */
static int launch(factum_store *s)
{
    scav *v = s->scav;
    v->running = 1;
    v->have = 1;
    v->st.state = FACTUM_SCAVENGE_RUNNING;
    if (v->th_live) {
        /* A finished run lingering for its grace period: wake it, it ends. */
        atomic_store(&v->stop, 1);
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
        pthread_join(v->th, NULL);
        pthread_mutex_lock(&v->mu);
        v->th_live = 0;
    }
    atomic_store(&v->stop, 0);
    int rc = pthread_create(&v->th, NULL, scav_main, s);
    if (rc) {
        v->running = 0;
        v->st.state = FACTUM_SCAVENGE_FAILED;
        v->st.error = -rc;
        return -rc;
    }
    v->th_live = 1;
    return 0;
}

/* A new run's first steps, on its own thread: the point (with seal, the
 * writer rolls to a new segment first, so that everything before it can
 * be compacted), its history, its checkpoint. */
static int begin_run(factum_store *s)
{
    scav *v = s->scav;
    factum_scavenge_status st = v->st;
    if (v->o.seal) atomic_store(&s->seal_req, 1);
    char json[256], stream[64];
    snprintf(json, sizeof json,
             "{\"scavengeId\":\"%s\",\"seal\":%s,\"thresholdPercent\":%u,\"throttleBytesPerSec\":%" PRIu64 "}",
             st.id, v->o.seal ? "true" : "false", v->o.threshold_percent, v->o.throttle_bytes_per_sec);
    int rc = append_json(s, "$scavenges", "$scavengeStarted", json, &st.point);
    snprintf(stream, sizeof stream, "$scavenges-%s", st.id);
    if (!rc) rc = append_json(s, stream, "$scavengeStarted", json, NULL);
    uint64_t plo = 0;
    if (!rc) rc = idx_posmap_get(s->idx, st.point, &plo);
    if (!rc) {
        st.segments = plo / s->seg_size;
        rc = write_chk(s, &st, &v->o);
    }
    if (!rc) {
        pthread_mutex_lock(&v->mu);
        v->st.point = st.point;
        v->st.segments = st.segments;
        pthread_mutex_unlock(&v->mu);
    }
    return rc;
}

int factum_scavenge_start(factum_store *s, const factum_scavenge_options *opts, char id_out[37])
{
    static const factum_scavenge_options none;
    if (!s) return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    if (!opts) opts = &none;
    if (opts->threshold_percent > 100) return FACTUM_EINVAL;
    if (atomic_load(&s->failed)) return FACTUM_EFAILED;
    scav *v = s->scav;
    pthread_mutex_lock(&v->mu);
    if (v->running) {
        if (id_out) memcpy(id_out, v->st.id, 37);
        pthread_mutex_unlock(&v->mu);
        return FACTUM_EEXISTS;
    }
    memset(&v->st, 0, sizeof v->st);
    uint8_t id[16];
    factum_uuid_v4(id);
    factum_uuid_format(id, v->st.id);
    v->st.started_ns = base_now_ns();
    v->o = *opts;
    v->resume_from = 0;
    v->fresh = 1;
    v->now_ns = v->st.started_ns;
    int rc = launch(s);
    if (!rc && id_out) memcpy(id_out, v->st.id, 37);
    pthread_mutex_unlock(&v->mu);
    return rc;
}

int scav_resume(factum_store *s)
{
    factum_scavenge_status st;
    factum_scavenge_options o;
    int rc = read_chk(s, &st, &o);
    if (rc == FACTUM_ENOTFOUND) return 0;
    if (rc) {
        store_log(s, FACTUM_LOG_WARN, "%s/" CHK_FILE " is damaged; the interrupted scavenge is dropped", s->path);
        drop_chk(s);
        return 0;
    }
    store_log(s, FACTUM_LOG_INFO, "resuming scavenge %s at segment %" PRIu64 " of %" PRIu64, st.id, st.segment,
              st.segments);
    scav *v = s->scav;
    pthread_mutex_lock(&v->mu);
    v->st = st;
    v->o = o;
    v->fresh = 0;
    v->resume_from = st.segment;
    v->now_ns = st.started_ns;
    rc = launch(s);
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static int id_matches(const scav *v, const char *id, int want_running)
{
    if (!id || !strcmp(id, "current")) return want_running ? v->running : v->have;
    if (!strcmp(id, "last")) return v->have;
    return v->have && !strcmp(id, v->st.id) && (!want_running || v->running);
}

int factum_scavenge_stop(factum_store *s, const char *id)
{
    if (!s) return FACTUM_EINVAL;
    scav *v = s->scav;
    pthread_mutex_lock(&v->mu);
    int ok = id_matches(v, id, 1);
    if (ok) {
        atomic_store(&v->stop, 1);
        pthread_cond_broadcast(&v->cv);
    }
    pthread_mutex_unlock(&v->mu);
    return ok ? 0 : FACTUM_ENOTFOUND;
}

int factum_scavenge_get_status(factum_store *s, const char *id, factum_scavenge_status *out)
{
    if (!s || !out) return FACTUM_EINVAL;
    scav *v = s->scav;
    pthread_mutex_lock(&v->mu);
    int ok = id_matches(v, id, 0);
    if (ok) *out = v->st;
    pthread_mutex_unlock(&v->mu);
    return ok ? 0 : FACTUM_ENOTFOUND;
}

int factum_scavenge_wait(factum_store *s, const char *id, factum_scavenge_status *out)
{
    if (!s) return FACTUM_EINVAL;
    if (writer_in_callback(s)) return -EDEADLK;
    scav *v = s->scav;
    pthread_mutex_lock(&v->mu);
    int ok = id_matches(v, id, 0);
    while (ok && v->running && (!id || !strcmp(id, "current") || !strcmp(id, v->st.id)))
        pthread_cond_wait(&v->cv, &v->mu);
    if (ok && out) *out = v->st;
    pthread_mutex_unlock(&v->mu);
    return ok ? 0 : FACTUM_ENOTFOUND;
}

void scav_shutdown(factum_store *s)
{
    scav *v = s->scav;
    if (!v) return;
    pthread_mutex_lock(&v->mu);
    v->closing = 1;
    atomic_store(&v->stop, 1);
    pthread_cond_broadcast(&v->cv);
    int live = v->th_live;
    v->th_live = 0;
    pthread_mutex_unlock(&v->mu);
    if (live) pthread_join(v->th, NULL);
}

int factum_scavenge_status_json(const factum_scavenge_status *st, char *buf, size_t cap)
{
    static const char *const names[] = {"unknown", "running", "completed", "stopped", "failed"};
    int state = st->state >= 1 && st->state <= 4 ? st->state : 0;
    return snprintf(buf, cap,
                    "{\"scavengeId\":\"%s\",\"state\":\"%s\",\"point\":%" PRIu64 ",\"segments\":%" PRIu64
                    ",\"segment\":%" PRIu64 ",\"compacted\":%" PRIu64 ",\"skipped\":%" PRIu64
                    ",\"eventsRemoved\":%" PRIu64 ",\"bytesBefore\":%" PRIu64 ",\"bytesAfter\":%" PRIu64
                    ",\"spaceSaved\":%" PRIu64 ",\"bytesRead\":%" PRIu64 ",\"bytesWritten\":%" PRIu64
                    ",\"startedAt\":%lld,\"finishedAt\":%lld,\"error\":\"%s\"}",
                    st->id, names[state], st->point, st->segments, st->segment, st->compacted, st->skipped,
                    st->events_removed, st->bytes_before, st->bytes_after,
                    st->bytes_before > st->bytes_after ? st->bytes_before - st->bytes_after : 0, st->bytes_read,
                    st->bytes_written, (long long)st->started_ns, (long long)st->finished_ns,
                    st->error ? factum_strerror(st->error) : "");
}
