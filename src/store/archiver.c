/*
 * archiver.c - the archive tier (factum_lifecycle.h "The archive tier", ADR 0028): a
 * thread that copies sealed segments to the archive directory and drops
 * the local files retention lets go (the log's side is log/archive.c,
 * LOG-9).
 *
 * Design note (invariants; tests cite them as AR-n):
 *  AR-1  Only sealed, durable segments are copied (the writer never touches
 *        them again); a copy is named in the archive only once verified.
 *  AR-2  A local file is dropped only while the archive holds a copy of
 *        that very file (checked against the file at that moment), and only
 *        when it is older than archive_retain_ms and followed by
 *        archive_retain_bytes of the log.
 *  AR-3  The scavenger and the archiver never work on one segment at once
 *        (seg_life_mu): a copy is of one generation, and a compacted
 *        generation of an archived segment replaces its archived copy
 *        (scavenge.c), so that erasures reach the archive.
 *  AR-4  The store remembers its archive directory (the file ARCHIVE in the
 *        data directory, written before the first local file is dropped):
 *        opening it later, or verifying, dumping or backing it up offline,
 *        finds archived segments without being told where they are.
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

#define RECORD_FILE "ARCHIVE"

typedef struct archiver {
    pthread_mutex_t mu; /* st, the thread's control */
    pthread_cond_t cv;
    pthread_t th;
    int th_live, stop, kicked;
    pthread_mutex_t pass_mu; /* one pass at a time */
    factum_archive_status st;
    int recorded; /* RECORD_FILE names this archive (AR-4) */
    int last_logged;
} archiver;

int arc_init(factum_store *s)
{
    archiver *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    pthread_mutex_init(&a->pass_mu, NULL);
    pthread_mutex_init(&s->seg_life_mu, NULL);
    s->arc = a;
    return 0;
}

void arc_free(factum_store *s)
{
    archiver *a = s->arc;
    if (!a) return;
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->pass_mu);
    pthread_mutex_destroy(&s->seg_life_mu);
    free(a);
    s->arc = NULL;
}

/* The archive directory the store uses: the option, else the one it
 * recorded (AR-4); "" if none. */
int store_archive_base(const char *path, const char *opt, char *out, size_t n)
{
    out[0] = 0;
    if (opt && *opt) {
        if (opt[0] != '/') {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) return -errno;
            if (snprintf(out, n, "%s/%s", cwd, opt) >= (int)n) return -ENAMETOOLONG;
        } else if (snprintf(out, n, "%s", opt) >= (int)n) {
            return -ENAMETOOLONG;
        }
        return 0;
    }
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" RECORD_FILE, path);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(io_posix(), p, PATH_MAX, &buf, &len);
    if (rc == -ENOENT) return 0;
    if (rc) return rc;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = 0;
    if (len >= n) rc = -ENAMETOOLONG;
    else memcpy(out, buf, len + 1);
    free(buf);
    return rc;
}

int store_archive_dir(const char *base, const uint8_t uuid[16], char *out, size_t n)
{
    out[0] = 0;
    if (!base || !*base) return 0;
    char u[40];
    factum_uuid_format(uuid, u);
    return snprintf(out, n, "%s/%s", base, u) >= (int)n ? -ENAMETOOLONG : 0;
}

/* AR-4: the data directory names its archive before a local file goes. */
static int record(factum_store *s)
{
    archiver *a = s->arc;
    if (a->recorded) return 0;
    char base[PATH_MAX], line[PATH_MAX + 2];
    int rc = store_archive_base(s->path, s->opts.archive_dir, base, sizeof base);
    if (rc) return rc;
    int n = snprintf(line, sizeof line, "%s\n", base);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" RECORD_FILE, s->path);
    uint8_t *buf;
    size_t len;
    if (!io_read_file(s->io, p, PATH_MAX, &buf, &len)) {
        int same = len == (size_t)n && !memcmp(buf, line, len);
        free(buf);
        if (same) {
            a->recorded = 1;
            return 0;
        }
    }
    if (!(rc = io_write_file_atomic(s->io, s->path, RECORD_FILE, line, (size_t)n))) a->recorded = 1;
    return rc;
}

/* When segment no was sealed, at the latest: the time of the first batch
 * after it (now if there is none yet). */
static int64_t sealed_at(factum_store *s, uint64_t no, int64_t now)
{
    uint64_t avail;
    const uint8_t *p = log_ptr(s->log, (no + 1) * s->seg_size + LOG_SEG_HEADER, &avail);
    if (!p) return now;
    int type;
    log_batch_hdr bh;
    int n = log_decode_frame(p, avail, &type, NULL, &bh, NULL);
    return n > 0 && type == LOG_FRAME_BATCH && bh.timestamp < now ? bh.timestamp : now;
}

/* AR-2's retention half. */
static int may_drop(factum_store *s, uint64_t no, uint64_t tail, int64_t now)
{
    const factum_options *o = &s->opts;
    if (o->archive_retain_bytes == FACTUM_ARCHIVE_KEEP_LOCAL || o->archive_retain_ms == FACTUM_ARCHIVE_KEEP_LOCAL)
        return 0;
    uint64_t end = (no + 1) * s->seg_size;
    if ((tail > end ? tail - end : 0) < o->archive_retain_bytes) return 0;
    return (uint64_t)(now - sealed_at(s, no, now)) >= o->archive_retain_ms * 1000000u;
}

/* Segments 0..n-1 are sealed and durable (AR-1). */
static uint64_t sealed_segments(factum_store *s)
{
    uint64_t n = atomic_load(&s->log->synced_lo) / s->seg_size, have = atomic_load(&s->log->n_segs);
    return n < have ? n : have;
}

static void count(factum_store *s, factum_archive_status *st)
{
    st->enabled = s->log->arch != NULL;
    st->segments = sealed_segments(s);
    st->local_only = st->archived = st->archive_only = st->bytes_local = st->bytes_archived = 0;
    for (uint64_t no = 0; no < st->segments; no++) {
        log_seg *g = log_seg_get(s->log, no);
        if (!g) continue;
        if (atomic_load(&g->where) == LOG_ARCHIVE) {
            st->archive_only++;
            st->bytes_archived += g->map_len;
            continue;
        }
        st->bytes_local += g->map_len;
        if (atomic_load(&g->archived)) {
            st->archived++;
            st->bytes_archived += g->map_len;
        } else {
            st->local_only++;
        }
    }
}

static int pass(factum_store *s)
{
    archiver *a = s->arc;
    flog *l = s->log;
    uint64_t n = sealed_segments(s), tail = atomic_load(&s->log_end);
    int64_t now = base_now_ns();
    int rc = 0;
    for (uint64_t no = 0; no < n && !rc; no++) {
        pthread_mutex_lock(&a->mu);
        int stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop) break;
        log_seg *g = log_seg_get(l, no);
        if (!g || atomic_load(&g->where) == LOG_ARCHIVE) continue;
        uint64_t bytes = 0;
        int copied = 0, dropped = 0;
        pthread_mutex_lock(&s->seg_life_mu); /* AR-3 */
        rc = log_archive_has(l, no);
        if (rc == 0 && !(rc = log_archive_copy(l, no, s->opts.archive_throttle_bytes_per_sec, &bytes))) copied = 1;
        if (rc == 1) rc = 0;
        if (!rc && may_drop(s, no, tail, now) && !(rc = record(s)) && !(rc = log_archive_drop_local(l, no)))
            dropped = 1;
        pthread_mutex_unlock(&s->seg_life_mu);
        pthread_mutex_lock(&a->mu);
        a->st.copied += (uint64_t)copied;
        a->st.bytes_copied += bytes;
        a->st.dropped += (uint64_t)dropped;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_lock(&a->mu);
    a->st.passes++;
    a->st.last_error = rc;
    a->st.last_pass_ns = base_now_ns();
    int log_it = rc && rc != a->last_logged;
    a->last_logged = rc;
    pthread_mutex_unlock(&a->mu);
    if (log_it)
        store_log(s, FACTUM_LOG_WARN, "archiving to %s: %s (local files are kept; the next pass tries again)",
                  l->arch, factum_strerror(rc));
    return rc;
}

static int run_pass(factum_store *s)
{
    pthread_mutex_lock(&s->arc->pass_mu);
    int rc = pass(s);
    pthread_mutex_unlock(&s->arc->pass_mu);
    return rc;
}

static void *arc_main(void *arg)
{
    factum_store *s = arg;
    archiver *a = s->arc;
    pthread_mutex_lock(&a->mu);
    /* With no period, passes only when asked (the first one too). */
    while (!s->opts.archive_interval_ms && !a->stop && !a->kicked)
        pthread_cond_wait(&a->cv, &a->mu);
    while (!a->stop) {
        a->kicked = 0;
        pthread_mutex_unlock(&a->mu);
        run_pass(s);
        pthread_mutex_lock(&a->mu);
        if (a->stop || a->kicked) continue;
        if (!s->opts.archive_interval_ms) {
            pthread_cond_wait(&a->cv, &a->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)s->opts.archive_interval_ms * 1000000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int arc_start(factum_store *s)
{
    archiver *a = s->arc;
    if (s->opts.read_only || !s->opts.archive_dir || !*s->opts.archive_dir || !s->log->arch) return 0;
    /* AR-4: opened with an archive that moved, the record follows it. */
    uint64_t n = atomic_load(&s->log->n_segs);
    for (uint64_t no = 0; no < n; no++) {
        log_seg *g = log_seg_get(s->log, no);
        if (g && atomic_load(&g->where) == LOG_ARCHIVE) {
            int rc = record(s);
            if (rc) return rc;
            break;
        }
    }
    a->stop = 0;
    int rc = pthread_create(&a->th, NULL, arc_main, s);
    if (rc) return -rc;
    a->th_live = 1;
    return 0;
}

void arc_shutdown(factum_store *s)
{
    archiver *a = s->arc;
    if (!a || !a->th_live) return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    a->th_live = 0;
}

int arc_after_compact(factum_store *s, uint64_t no)
{
    flog *l = s->log;
    log_seg *g = log_seg_get(l, no);
    if (!l->arch || !g || atomic_load(&g->where) == LOG_ARCHIVE) return 0; /* compacted in the archive itself */
    char path[PATH_MAX];
    log_seg_path(l, LOG_ARCHIVE, no, "", path, sizeof path);
    if (access(path, F_OK) != 0) return 0; /* never archived */
    /* The archive's copy is the generation before: replace it now (AR-3). */
    int rc = log_archive_copy(l, no, s->opts.archive_throttle_bytes_per_sec, NULL);
    if (rc)
        store_log(s, FACTUM_LOG_WARN,
                  "replacing the archived copy of segment %" PRIu64 " after a scavenge: %s (the archiver tries again)",
                  no, factum_strerror(rc));
    return rc;
}

int factum_archive_run(factum_store *s, factum_archive_status *after)
{
    if (!s) return FACTUM_EINVAL;
    if (!s->log->arch || !s->opts.archive_dir || s->opts.read_only) return FACTUM_EINVAL;
    int rc = run_pass(s);
    if (after) factum_archive_get_status(s, after);
    return rc;
}

int factum_archive_kick(factum_store *s)
{
    if (!s) return FACTUM_EINVAL;
    archiver *a = s->arc;
    if (!a->th_live) return FACTUM_EINVAL;
    pthread_mutex_lock(&a->mu);
    a->kicked = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int factum_archive_get_status(factum_store *s, factum_archive_status *out)
{
    if (!s || !out) return FACTUM_EINVAL;
    archiver *a = s->arc;
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    pthread_mutex_unlock(&a->mu);
    count(s, out);
    return 0;
}

int factum_archive_status_json(const factum_archive_status *st, char *buf, size_t cap)
{
    return snprintf(buf, cap,
                    "{\"enabled\":%s,\"segments\":%" PRIu64 ",\"localOnly\":%" PRIu64 ",\"archived\":%" PRIu64
                    ",\"archiveOnly\":%" PRIu64 ",\"bytesLocal\":%" PRIu64 ",\"bytesArchived\":%" PRIu64
                    ",\"copied\":%" PRIu64 ",\"bytesCopied\":%" PRIu64 ",\"dropped\":%" PRIu64
                    ",\"passes\":%" PRIu64 ",\"lastPassAt\":%" PRId64 ",\"error\":\"%s\"}",
                    st->enabled ? "true" : "false", st->segments, st->local_only, st->archived, st->archive_only,
                    st->bytes_local, st->bytes_archived, st->copied, st->bytes_copied, st->dropped, st->passes,
                    st->last_pass_ns, st->last_error ? factum_strerror(st->last_error) : "");
}
