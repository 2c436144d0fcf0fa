/*
 * store.c - opening, recovering and closing a store: the data directory
 * (its lock and its FACTUM identity file), the log and the index, the
 * recovery that replays the log after the index checkpoint and cuts a torn
 * tail, the threads, statistics and sync.
 *
 * Data directory (docs/format.md):
 *   FACTUM        identity: format version, store uuid, segment size
 *   LOCK          flock'd while open (exclusive; shared when read-only)
 *   log/          segments NNNNNNNN.seg
 *   index/        MANIFEST, posmap, index tables
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"
#include "store/upcast.h"

#define DEFAULT_SEGMENT_SIZE (64ull << 20)

void store_log(factum_store *s, int level, const char *fmt, ...)
{
    if (!s->opts.log_fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->opts.log_fn(s->opts.log_ctx, level, buf);
}

void factum_options_init(factum_options *o)
{
    memset(o, 0, sizeof *o);
    o->create = 1;
    o->durability = FACTUM_DURABLE;
    o->flush_interval_ms = 100;
    o->max_event_size = FACTUM_DEFAULT_MAX_EVENT_SIZE;
    o->max_append_size = 64u << 20;
    o->segment_size = DEFAULT_SEGMENT_SIZE;
    o->memtable_entries = 262144;
    o->stream_cache_entries = 65536;
    o->scavenge_grace_ms = 60000;
    o->archive_retain_bytes = 1ull << 30;
    o->archive_retain_ms = 7ull * 24 * 3600 * 1000;
    o->archive_interval_ms = 10000;
}

/* ---- the identity file ---------------------------------------------- */

static int write_identity(factum_store *s)
{
    char uuid[37];
    factum_uuid_format(s->uuid, uuid);
    base_buf b = {0};
    int rc = base_buf_printf(
        &b, "factum data directory\nformat %d\nuuid %s\nsegment_size %" PRIu64 "\ncreated %lld\n",
        FACTUM_FORMAT_VERSION, uuid, s->seg_size, (long long)base_now_ns());
    if (!rc) rc = base_buf_printf(&b, "crc %08x\n", base_crc32c(0, b.data, b.len));
    if (!rc) rc = io_write_file_atomic(s->io, s->path, "FACTUM", b.data, b.len);
    base_buf_free(&b);
    return rc;
}

static int read_identity(factum_store *s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/FACTUM", s->path);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(s->io, path, 65536, &buf, &len);
    if (rc == -EFBIG) return FACTUM_ENOTSTORE;
    if (rc) return rc;
    char *text = (char *)buf;
    if (strncmp(text, "factum data directory\n", 22) != 0) {
        free(buf);
        return FACTUM_ENOTSTORE;
    }
    char *crc_line = strstr(text, "\ncrc ");
    unsigned crc;
    if (!crc_line || sscanf(crc_line + 1, "crc %x", &crc) != 1 ||
        crc != base_crc32c(0, buf, (size_t)(crc_line + 1 - text))) {
        free(buf);
        return FACTUM_ECORRUPT;
    }
    int format = 0;
    char uuid[64] = "";
    uint64_t seg = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        sscanf(line, "format %d", &format);
        sscanf(line, "uuid %63s", uuid);
        sscanf(line, "segment_size %" SCNu64, &seg);
    }
    free(buf);
    if (format > FACTUM_FORMAT_VERSION) return FACTUM_EFORMAT;
    if (format < 1 || !seg || factum_uuid_parse(uuid, strlen(uuid), s->uuid)) return FACTUM_ECORRUPT;
    s->seg_size = seg;
    return 0;
}

/* ---- creation ------------------------------------------------------- *
 *
 * A store is created in this order: LOCK, log/ with segment 0, and last
 * the FACTUM file (written atomically), which makes it a store. A creation
 * cut short by a crash therefore leaves at most LOCK, FACTUM.tmp and a log/
 * holding a segment 0 (or its .tmp) without events; such a directory is
 * still empty to us and is created again. Once FACTUM exists, a missing log
 * is damage, never a reason to start a fresh one.
 */

/* Does segment file `path` hold no event (its first frame word is zero)? */
static int seg_file_unused(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint8_t w[4] = {0};
    ssize_t n = pread(fd, w, 4, LOG_SEG_HEADER);
    close(fd);
    return n == 0 || (n == 4 && base_get32(w) == 0);
}

/* Is `sub` (a subdirectory of path) absent, or holding only the files an
 * interrupted creation leaves? */
static int leftover_subdir(const char *path, const char *sub)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s/%s", path, sub);
    DIR *dd = opendir(d);
    if (!dd) return errno == ENOENT;
    struct dirent *de;
    int ok = 1;
    while (ok && (de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char f[PATH_MAX + 256];
        snprintf(f, sizeof f, "%s/%s", d, de->d_name);
        if (!strcmp(sub, "log") && !strcmp(de->d_name, "00000000.seg.tmp")) continue;
        if (!strcmp(sub, "log") && !strcmp(de->d_name, "00000000.seg") && seg_file_unused(f)) continue;
        ok = 0;
    }
    closedir(dd);
    return ok;
}

/* Is the directory empty but for the leftovers of an interrupted creation? */
static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "LOCK") || !strcmp(n, "FACTUM.tmp")) continue;
        if ((!strcmp(n, "log") || !strcmp(n, "index")) && leftover_subdir(path, n)) continue;
        empty = 0;
    }
    closedir(d);
    return empty;
}

/* Remove what an interrupted creation left (dir_is_empty said so). */
static int remove_leftovers(factum_store *s)
{
    static const char *const files[] = {"log/00000000.seg.tmp", "log/00000000.seg", "FACTUM.tmp"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", s->path, files[i]);
        int rc = s->io->unlink(s->io, p);
        if (rc && rc != -ENOENT) return rc;
    }
    static const char *const dirs[] = {"log", "index"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", s->path, dirs[i]);
        if (rmdir(p) && errno != ENOENT) return -errno;
    }
    return 0;
}

/* ---- recovery ------------------------------------------------------- */

typedef struct replay {
    factum_store *s;
    idx_entry *ent[IDX_KINDS];
    size_t n[IDX_KINDS], cap;
    uint64_t *los; /* of every position of the batch, n_los of them */
    size_t n_los;
    uint64_t first_pos;
    int rc;
    /* Read-only: the replay stays in one memtable that never freezes. It
     * takes what a writer with this memtable_entries can leave behind: two
     * memtables, each closed at the first batch end at or past
     * memtable_entries entries (idx_add). */
    int bounded;
    uint64_t in_chunk, chunks;
} replay;

static int replay_event(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff)
{
    replay *r = ctx;
    if (r->bounded && r->chunks >= 2) return FACTUM_EREADONLY;
    if (r->n_los == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        for (int k = 0; k < IDX_KINDS; k++) {
            idx_entry *p = realloc(r->ent[k], cap * sizeof *p);
            if (!p) return -ENOMEM;
            r->ent[k] = p;
        }
        uint64_t *l = realloc(r->los, cap * sizeof *l);
        if (!l) return -ENOMEM;
        r->los = l;
        r->cap = cap;
    }
    if (r->n_los == 0) r->first_pos = ev->position;
    r->los[r->n_los++] = lo;
    if (ff & LOG_EV_REMOVED) return 0; /* a scavenge removed it (LOG-8): its position only */
    uint64_t hash = base_hash64(ev->stream, ev->stream_len);
    r->ent[IDX_STREAM][r->n[IDX_STREAM]++] = (idx_entry){hash, ev->version, lo};
    r->ent[IDX_ID][r->n[IDX_ID]++] = (idx_entry){base_get64(ev->id), base_get64(ev->id + 8), lo};
    if (ff & ST_EV_CREATES) r->ent[IDX_CAT][r->n[IDX_CAT]++] = (idx_entry){ev->position, hash, lo};
    return 0;
}

static int replay_batch(void *ctx, uint64_t end_lo, uint64_t next_position)
{
    replay *r = ctx;
    if (!r->n_los) return 0;
    r->in_chunk += r->n_los;
    if (r->in_chunk >= r->s->opts.memtable_entries) {
        r->chunks++;
        r->in_chunk = 0;
    }
    int rc = 0;
    rc = idx_posmap_put(r->s->idx, r->first_pos, r->los, r->n_los);
    const idx_entry *e[IDX_KINDS] = {r->ent[0], r->ent[1], r->ent[2]};
    if (!rc) rc = idx_add(r->s->idx, e, r->n, end_lo, next_position);
    for (int k = 0; k < IDX_KINDS; k++)
        r->n[k] = 0;
    r->n_los = 0;
    return rc;
}

/* Before an index checkpoint covering the log up to lo is made durable
 * (IDX-1). Durable mode synced every batch before indexing it, so this
 * finds nothing to do; relaxed mode syncs every segment written since the
 * last sync, however many a memtable spans. Runs on the index thread. */
static int sync_log_cb(void *ctx, uint64_t lo)
{
    factum_store *s = ctx;
    return log_sync_upto(s->log, lo);
}

/* The log must hold what the index checkpoint covers: the frame that ends
 * at covered_lo is the event at position next_position - 1 (LOG-1: frames
 * end with their length). A log that lost its directory or its last
 * segments, or is not the one the index was built from, fails here rather
 * than having the old index served over it. */
static int check_checkpoint(factum_store *s, const idx_checkpoint *cp)
{
    if (cp->next_position <= 1) return 0; /* covers nothing */
    uint64_t end = cp->covered_lo, avail = 0, last = 0;
    uint64_t seg = end ? (end - 1) / s->seg_size : 0;
    if (end < LOG_SEG_HEADER + 4 || seg >= atomic_load(&s->log->n_segs) || !log_seg_get(s->log, seg)) {
        store_log(s, FACTUM_LOG_ERROR,
                  "log segment %" PRIu64 " is missing: the index checkpoint covers the log up to segment %" PRIu64
                  " offset %" PRIu64 " (position %" PRIu64 "); refusing to open",
                  (end - 1) / s->seg_size, (end - 1) / s->seg_size, (end - 1) % s->seg_size + 1,
                  cp->next_position - 1);
        return FACTUM_ECORRUPT;
    }
    /* The frame ending at covered_lo (LOG-1: frames end with their length;
     * LOG-8: a compacted generation's map) holds that position: an event,
     * a stub, or a removed frame whose run ends there. */
    uint64_t in_seg = (end - 4) % s->seg_size + 4; /* covered_lo's offset in the segment of its last frame */
    factum_event ev;
    int type = 0, n = -1;
    const uint8_t *p = NULL;
    if (!log_prev_lo(s->log, end, &last) && (p = log_ptr(s->log, last, &avail)))
        n = log_decode_frame(p, avail, &type, &ev, NULL, NULL);
    int ok = 0;
    if (n > 0 && log_next_lo(s->log, last, (uint32_t)n) == end) {
        if (type == LOG_FRAME_EVENT) {
            ok = ev.position == cp->next_position - 1;
        } else if (type == LOG_FRAME_REMOVED) {
            log_removed r;
            log_removed_get(p, &r);
            ok = r.first_position + r.count == cp->next_position;
        }
    }
    if (!ok) {
        store_log(s, FACTUM_LOG_ERROR,
                  "the log does not hold what the index checkpoint covers: position %" PRIu64
                  " should end at segment %" PRIu64 " offset %" PRIu64 "; refusing to open",
                  cp->next_position - 1, (end - 4) / s->seg_size, in_seg);
        return FACTUM_ECORRUPT;
    }
    return 0;
}

static int recover(factum_store *s, const idx_checkpoint *cp)
{
    int rc = check_checkpoint(s, cp);
    if (rc) return rc;
    if (s->opts.verify_on_open) {
        log_scan_result full;
        rc = log_scan(s->log, LOG_SEG_HEADER, 1, NULL, NULL, NULL, &full);
        if (rc) return rc;
        log_release(s->log, 0, UINT64_MAX);
        if (full.corrupt) {
            store_log(s, FACTUM_LOG_ERROR, "log is damaged: %s", full.what);
            return FACTUM_ECORRUPT;
        }
    }
    replay r = {.s = s, .bounded = s->opts.read_only};
    uint64_t from_lo = cp->covered_lo ? cp->covered_lo : LOG_SEG_HEADER;
    /* IDX-1: the log before the checkpoint was synced before it was made. */
    atomic_store(&s->log->synced_lo, from_lo);
    if (!s->opts.read_only) {
        /* What the replay indexes may come from a relaxed-mode writer that
         * died before its fdatasync: make it durable before any index
         * checkpoint can cover it (IDX-1). */
        uint64_t n = atomic_load(&s->log->n_segs);
        for (uint64_t i = from_lo / s->seg_size; i < n; i++) {
            log_seg *sg = log_seg_get(s->log, i);
            int fd = sg ? log_seg_fd(s->log, sg) : 0;
            if (sg && (rc = fd < 0 ? fd : s->io->fdatasync(s->io, fd))) return rc;
        }
    }
    log_scan_result res;
    rc = log_scan(s->log, from_lo, cp->next_position, replay_event, replay_batch, &r, &res);
    for (int k = 0; k < IDX_KINDS; k++)
        free(r.ent[k]);
    free(r.los);
    if (rc == FACTUM_EREADONLY) {
        store_log(s, FACTUM_LOG_ERROR,
                  "the index checkpoint is more than two memtables (of %zu entries) behind the log, more than a "
                  "read-only open replays in memory; open the store read-write once to bring the index up to "
                  "date, or open it with a larger memtable_entries",
                  s->opts.memtable_entries);
        return rc;
    }
    if (rc) return rc;
    if (res.corrupt) {
        store_log(s, FACTUM_LOG_ERROR, "log is damaged: %s; run `factum verify` for details", res.what);
        return FACTUM_ECORRUPT;
    }
    if (res.torn) {
        store_log(s, FACTUM_LOG_WARN,
                  "cut a torn write at the end of the log (segment %" PRIu64 " offset %" PRIu64 ", %" PRIu64
                  " bytes); it was never acknowledged",
                  res.end_lo / s->seg_size, res.end_lo % s->seg_size, res.torn_bytes);
        if (!s->opts.read_only && (rc = log_cut_tail(s->log, res.end_lo))) return rc;
    }
    /* The scan read (mapped) the tail segment to its end (LOG-5) and the
     * replayed part: none of it needs to stay resident. */
    log_release(s->log, from_lo, UINT64_MAX);
    log_set_tail(s->log, res.end_lo);
    /* Read-only opens synced nothing; the others synced all of the replay
     * above (or found a clean log). */
    if (!s->opts.read_only) atomic_store(&s->log->synced_lo, res.end_lo);
    atomic_store(&s->log_end, res.end_lo);
    atomic_store(&s->committed_pos, res.next_position - 1);
    /* The hash chain goes on from the last batch (LOG-7): the scan's, or
     * the one holding the last event the index checkpoint covers. */
    uint64_t last_batch = res.last_batch_lo;
    if (!last_batch && res.next_position > 1) {
        log_batch_hdr bh;
        if ((rc = store_batch_at(s, res.next_position - 1, &last_batch, &bh))) {
            store_log(s, FACTUM_LOG_ERROR, "the last batch of the log (position %" PRIu64 ") cannot be found: %s",
                      res.next_position - 1, factum_strerror(rc));
            return rc;
        }
    }
    if ((rc = log_chain_resume(s->log, last_batch))) return rc;
    memcpy(s->chain_head, s->log->chain, sizeof s->chain_head);
    s->chain_pos = s->log->chain_pos;
    if (res.events)
        store_log(s, FACTUM_LOG_INFO, "replayed %" PRIu64 " events after the index checkpoint", res.events);
    return 0;
}

int store_batch_at(factum_store *s, uint64_t position, uint64_t *batch_lo, log_batch_hdr *bh)
{
    uint64_t lo;
    int rc = idx_posmap_get(s->idx, position, &lo);
    if (rc) return rc == FACTUM_ENOTFOUND ? FACTUM_ECORRUPT : rc;
    return log_batch_of(s->log, lo, batch_lo, bh);
}

int factum_chain_get_head(factum_store *s, factum_chain_head *out)
{
    if (!s || !out) return FACTUM_EINVAL;
    memcpy(out->store_uuid, s->uuid, 16);
    pthread_mutex_lock(&s->chain_mu);
    out->position = s->chain_pos;
    memcpy(out->hash, s->chain_head, FACTUM_HASH_LEN);
    pthread_mutex_unlock(&s->chain_mu);
    return 0;
}

int factum_chain_head_json(const factum_chain_head *h, char *buf, size_t cap)
{
    char uuid[40], hex[2 * FACTUM_HASH_LEN + 1];
    factum_uuid_format(h->store_uuid, uuid);
    base_hex_encode(h->hash, FACTUM_HASH_LEN, hex);
    return snprintf(buf, cap, "{\"store\":\"%s\",\"position\":%" PRIu64 ",\"hash\":\"%s\"}", uuid, h->position, hex);
}

/* ---- open / close --------------------------------------------------- */

static void free_handle(factum_store *s)
{
    upc_reg_free(s->upc);
    cache_deinit(&s->cache);
    notify_deinit(s);
    gate_deinit(s);
    scav_free(s);
    arc_free(s);
    seal_free(s);
    if (s->lock_fd >= 0) close(s->lock_fd);
    pthread_mutex_destroy(&s->q_mu);
    pthread_mutex_destroy(&s->chain_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_cond_destroy(&s->q_space);
    free(s->path);
    free(s);
}

int store_open_io(const char *path, const factum_options *opts, io_env *io, factum_store **out)
{
    if (!path || !out) return FACTUM_EINVAL;
    factum_store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    if (opts)
        s->opts = *opts;
    else
        factum_options_init(&s->opts);
    factum_options *o = &s->opts;
    s->io = io;
    s->lock_fd = -1;
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_mutex_init(&s->chain_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_cond_init(&s->q_space, NULL);
    int rc = notify_init(s);
    if (!rc && (rc = gate_init(s))) notify_deinit(s);
    if (!rc && (rc = scav_init(s))) {
        gate_deinit(s);
        notify_deinit(s);
    }
    if (!rc && (rc = arc_init(s))) {
        scav_free(s);
        gate_deinit(s);
        notify_deinit(s);
    }
    if (rc) {
        pthread_mutex_destroy(&s->q_mu);
        pthread_mutex_destroy(&s->chain_mu);
        pthread_cond_destroy(&s->q_cv);
        pthread_cond_destroy(&s->q_space);
        free(s);
        return rc;
    }
    if (o->durability != FACTUM_DURABLE && o->durability != FACTUM_RELAXED) rc = FACTUM_EINVAL;
    if (!o->max_event_size || !o->max_append_size || !o->memtable_entries) rc = FACTUM_EINVAL;
    if (!o->flush_interval_ms) o->flush_interval_ms = 1;
    if (!rc && !(s->path = strdup(path))) rc = -ENOMEM;
    if (!rc) rc = cache_init(&s->cache, o->stream_cache_entries);
    if (!rc) rc = upc_reg_new(&s->upc);
    s->upc_gen = 1; /* the registry is built at the first use (UPC-2) */
    if (rc) {
        free_handle(s);
        return rc;
    }

    struct stat st;
    if (stat(path, &st)) {
        if (errno != ENOENT || !o->create || o->read_only) {
            rc = -errno;
            goto fail;
        }
        /* Its name must be durable in its parent before anything in it is. */
        if ((rc = io_ensure_dir(io, path))) goto fail;
    } else if (!S_ISDIR(st.st_mode)) {
        rc = FACTUM_ENOTSTORE;
        goto fail;
    }
    char p[PATH_MAX];
    /* Never leave anything behind in a directory that is not ours. */
    snprintf(p, sizeof p, "%s/FACTUM", path);
    if (access(p, F_OK) != 0 && (!dir_is_empty(path) || !o->create || o->read_only)) {
        rc = FACTUM_ENOTSTORE;
        goto fail;
    }
    snprintf(p, sizeof p, "%s/LOCK", path);
    s->lock_fd = open(p, (o->read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        rc = errno == ENOENT ? FACTUM_ENOTSTORE : -errno;
        goto fail;
    }
    if (flock(s->lock_fd, (o->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
        rc = errno == EWOULDBLOCK ? FACTUM_ELOCKED : -errno;
        goto fail;
    }
    snprintf(p, sizeof p, "%s/FACTUM", path);
    int fresh = 0;
    if (access(p, F_OK) != 0) {
        if (!dir_is_empty(path)) {
            rc = FACTUM_ENOTSTORE;
            goto fail;
        }
        if (!o->create || o->read_only) {
            rc = FACTUM_ENOTSTORE;
            goto fail;
        }
        if (o->segment_size < (1u << 20) || o->segment_size % LOG_SEG_HEADER ||
            o->segment_size > (4ull << 30)) {
            rc = FACTUM_EINVAL;
            goto fail;
        }
        s->seg_size = o->segment_size;
        factum_uuid_v4(s->uuid);
        if ((rc = remove_leftovers(s))) goto fail;
        /* The directory may have been made by someone else: make its name
         * durable too before the store in it is. */
        if ((rc = io_ensure_dir(io, path))) goto fail;
        fresh = 1;
    } else if ((rc = read_identity(s))) {
        goto fail;
    }
    /* One append must fit in a segment with its batch frame. */
    uint64_t room = s->seg_size - LOG_SEG_HEADER - LOG_BATCH_CHAIN_LEN;
    if (o->max_append_size > room) o->max_append_size = room;
    if (o->max_event_size > o->max_append_size) o->max_event_size = o->max_append_size;

    if ((rc = seal_open(s))) goto fail; /* SEAL-4 */
    snprintf(p, sizeof p, "%s/log", path);
    char why[256 + PATH_MAX], arch_base[PATH_MAX], arch[PATH_MAX];
    if ((rc = store_archive_base(path, o->archive_dir, arch_base, sizeof arch_base)) ||
        (rc = store_archive_dir(arch_base, s->uuid, arch, sizeof arch)))
        goto fail;
    if ((rc = log_open(io, p, arch[0] ? arch : NULL, s->seg_size, s->uuid, fresh, o->read_only, why, sizeof why,
                       &s->log))) {
        if (why[0]) store_log(s, FACTUM_LOG_ERROR, "the log is damaged: %s; refusing to open", why);
        goto fail;
    }
    /* The identity file comes last: it makes the directory a store. */
    if (fresh && (rc = write_identity(s))) goto fail_log;
    idx_config ic = {o->memtable_entries, o->read_only, sync_log_cb, s, o->log_fn, o->log_ctx};
    idx_checkpoint cp;
    snprintf(p, sizeof p, "%s/index", path);
    rc = idx_open(io, p, &ic, &s->idx, &cp);
    if (rc == FACTUM_ECORRUPT && !o->read_only) {
        /* The index is derived from the log: set the damaged one aside and
         * build it again (IDX-1). */
        char aside[PATH_MAX];
        snprintf(aside, sizeof aside, "%s/index.damaged-%lld", path, (long long)(base_now_ns() / 1000000000));
        store_log(s, FACTUM_LOG_WARN, "the index is damaged; moved it to %s and rebuilding it from the log", aside);
        rc = io->rename(io, p, aside);
        if (!rc) rc = idx_open(io, p, &ic, &s->idx, &cp); /* fsyncs path (the rename too) */
    }
    if (rc) goto fail_log;
    /* The index thread runs during the replay, so that a long replay (a
     * rebuilt index) is written out as tables instead of filling memory. */
    if (!o->read_only && (rc = idx_start(s->idx))) goto fail_idx;
    if ((rc = recover(s, &cp))) goto fail_idx;
    /* TM-1 (temporal.c): commit times never go backwards, across restarts
     * too: the next group is stamped after the log's last event even if the
     * clock now reads earlier. */
    uint64_t last_pos = atomic_load(&s->committed_pos);
    if (last_pos) {
        factum_event last_ev;
        if ((rc = factum_read_position(s, last_pos, &last_ev))) goto fail_idx;
        s->last_ts = last_ev.timestamp_ns;
    }
    if (!o->read_only) {
        if ((rc = log_prep_start(s->log))) goto fail_idx;
        if ((rc = writer_start(s))) goto fail_idx;
        if ((rc = sched_start(s))) {
            writer_stop(s);
            goto fail_idx;
        }
        /* SV-3: a scavenge a crash interrupted goes on. */
        if ((rc = scav_resume(s))) {
            sched_stop(s, 0);
            writer_stop(s);
            goto fail_idx;
        }
        if ((rc = arc_start(s))) {
            scav_shutdown(s);
            sched_stop(s, 0);
            writer_stop(s);
            goto fail_idx;
        }
    }
    /* The upcasters, loaded now so that a document that cannot be used is
     * logged at open; a failure here is met again by the reads that need
     * them (UPC-2), it does not fail the open. */
    int urc = upc_reg_load(s);
    if (urc) store_log(s, FACTUM_LOG_WARN, "loading the upcasters of %s: %s", FACTUM_UPCASTERS_STREAM,
                       factum_strerror(urc));
    *out = s;
    return 0;
fail_idx:
    log_prep_stop(s->log);
    idx_close(s->idx, 0);
fail_log:
    log_close(s->log);
fail:
    free_handle(s);
    return rc;
}

const char *factum_store_path(const factum_store *s)
{
    return s ? s->path : NULL;
}

uint64_t factum_store_epoch(factum_store *s)
{
    return s ? atomic_load_explicit(&s->log->swap_epoch, memory_order_acquire) +
                   atomic_load_explicit(&s->shred_epoch, memory_order_acquire)
             : 0;
}

int factum_store_open(const char *path, const factum_options *opts, factum_store **out)
{
    return store_open_io(path, opts, io_posix(), out);
}

static int close_impl(factum_store *s, int abandon)
{
    if (!s) return 0;
    if (abandon) {
        pthread_mutex_lock(&s->q_mu);
        s->abandon = 1;
        pthread_mutex_unlock(&s->q_mu);
    }
    gate_release_all(s); /* nobody will release them now */
    arc_shutdown(s);
    scav_shutdown(s);       /* it appends too */
    sched_stop(s, abandon); /* it appends: before the writer stops */
    writer_stop(s);
    log_prep_stop(s->log);
    int ok = !abandon && !atomic_load(&s->failed) && !s->opts.read_only;
    int rc = idx_close(s->idx, ok);
    if (!abandon && !rc && atomic_load(&s->failed)) rc = atomic_load(&s->failed);
    log_close(s->log);
    free_handle(s);
    return rc;
}

int factum_store_close(factum_store *s)
{
    if (s && writer_in_callback(s)) return -EDEADLK; /* it would wait for the writer thread, itself */
    if (s && atomic_load(&s->n_drivers)) return -EBUSY; /* a driver's group may be in flight */
    return close_impl(s, 0);
}

void store_abandon(factum_store *s)
{
    close_impl(s, 1);
}

int factum_store_get_stats(factum_store *s, factum_stats *out)
{
    if (!s || !out) return FACTUM_EINVAL;
    memset(out, 0, sizeof *out);
    out->last_position = atomic_load(&s->committed_pos);
    out->log_bytes = atomic_load(&s->log_end);
    out->appends = atomic_load(&s->st_appends);
    out->events_written = atomic_load(&s->st_events);
    out->bytes_written = atomic_load(&s->st_bytes);
    out->fsyncs = atomic_load(&s->st_fsyncs);
    out->fsync_ns_total = atomic_load(&s->st_fsync_ns);
    out->fsync_ns_max = atomic_load(&s->st_fsync_max);
    out->groups = atomic_load(&s->st_groups);
    out->group_events_max = atomic_load(&s->st_group_max);
    idx_stats is;
    idx_get_stats(s->idx, &is);
    out->index_tables = is.tables;
    out->memtable_entries = is.memtable_entries;
    out->stream_cache_size = cache_size(&s->cache);
    out->durability = s->opts.durability;
    out->failed_code = atomic_load(&s->failed);
    out->failed = out->failed_code != 0;
    return 0;
}

int factum_store_sync(factum_store *s)
{
    if (!s) return FACTUM_EINVAL;
    if (s->opts.read_only) return 0;
    if (atomic_load(&s->failed)) return FACTUM_EFAILED;
    wreq r = {0};
    r.kind = REQ_SYNC;
    int rc = writer_submit(s, &r);
    return rc ? rc : r.rc;
}
