/*
 * verify.c - the offline tools behind `factum verify` and `factum dump`.
 * Both read a data directory without changing it (a shared lock keeps a
 * writer out). verify checks every frame of the log and, after damage,
 * resynchronises on the next valid batch so that every damaged place is
 * reported, then checks every index table (every page, and the structure
 * lookups rely on: tbl_verify) and that each checkpointed event is found
 * through the stream index and the position map.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/store_int.h"

typedef struct vctx {
    factum_store *s;
    void (*cb)(void *ctx, const factum_damage *d);
    void *ctx;
    factum_verify_report *rep;
    uint64_t checked_upto; /* positions below this are in the index tables */
    char file[PATH_MAX];
    char what[256];
    /* --chain (LOG-7) */
    const factum_verify_options *opts;
    log_hasher h;
    int in_batch;               /* an event of the current batch was seen */
    int batch_chained;          /* ... and that batch is chained */
    int linked;                 /* prev is known: the chain can be checked from here */
    int seen_chained;           /* a chained batch came before */
    uint64_t batch_lo;          /* the current batch's frame */
    log_batch_hdr bh;           /* ... decoded */
    uint8_t prev[LOG_HASH_LEN]; /* the hash the next chained batch follows */
} vctx;

static void damage(vctx *v, uint64_t lo, const char *what)
{
    v->rep->damaged++;
    if (!v->cb) return;
    log_seg *g = log_seg_get(v->s->log, lo / v->s->seg_size);
    if (g && atomic_load(&g->where) == LOG_ARCHIVE) /* the archived file's own path (LOG-9) */
        log_seg_path(v->s->log, LOG_ARCHIVE, g->no, "", v->file, sizeof v->file);
    else
        snprintf(v->file, sizeof v->file, "log/%08" PRIu64 ".seg", lo / v->s->seg_size);
    factum_damage d = {v->file, lo % v->s->seg_size, what};
    v->cb(v->ctx, &d);
}

static void damage_file(vctx *v, const char *file, const char *what)
{
    v->rep->damaged++;
    if (!v->cb) return;
    factum_damage d = {file, 0, what};
    v->cb(v->ctx, &d);
}

static void chain_event(vctx *v, const factum_event *ev, uint64_t lo)
{
    if (!v->in_batch) {
        v->in_batch = 1;
        if (log_batch_of(v->s->log, lo, &v->batch_lo, &v->bh)) {
            snprintf(v->what, sizeof v->what, "the batch of position %" PRIu64 " cannot be found",
                     ev->position);
            damage(v, lo, v->what);
            v->batch_chained = 0;
            v->linked = 0;
            return;
        }
        v->batch_chained = v->bh.frame_len == LOG_BATCH_CHAIN_LEN;
        if (!v->batch_chained) {
            if (v->seen_chained) {
                snprintf(v->what, sizeof v->what,
                         "a batch without a hash after hashed ones (positions from %" PRIu64 ")",
                         ev->position);
                damage(v, v->batch_lo, v->what);
            }
            return;
        }
        if (!v->seen_chained) {
            v->seen_chained = 1;
            v->linked = 1;
            v->rep->chain_first_position = ev->position;
            log_chain_genesis(&v->h, v->s->uuid, v->prev);
        }
        if (log_chain_begin(&v->h, v->prev, log_ptr(v->s->log, v->batch_lo, NULL))) v->linked = 0;
    }
    if (!v->batch_chained) return;
    /* The digest of the frame, or the one a scavenge kept for it (LOG-8). */
    uint8_t d[LOG_HASH_LEN];
    if (log_event_digest(v->s->log, &v->h, lo, ev->position, d) || log_chain_add(&v->h, d, 1)) v->linked = 0;
}

/* After each valid batch: check its hash against the recomputed one. */
static int chain_batch(void *ctx, uint64_t end_lo, uint64_t next_position)
{
    vctx *v = ctx;
    (void)end_lo;
    if (!v->in_batch) return 0;
    v->in_batch = 0;
    if (!v->batch_chained) return 0;
    uint64_t first = v->bh.first_position, last = first + v->bh.n_events - 1;
    (void)next_position;
    uint8_t got[LOG_HASH_LEN];
    int ok = v->linked && !log_chain_end(&v->h, got) && !memcmp(got, v->bh.chain, LOG_HASH_LEN);
    if (v->linked && !ok) {
        snprintf(v->what, sizeof v->what,
                 "hash chain broken at the batch of positions %" PRIu64 "..%" PRIu64
                 ": its events, header or predecessor are not what was written",
                 first, last);
        damage(v, v->batch_lo, v->what);
    }
    if (ok) v->rep->chain_batches++;
    /* Go on from the hash written (a damaged batch is reported once, and the
     * batches after it are checked against what was written then). */
    memcpy(v->prev, v->bh.chain, LOG_HASH_LEN);
    v->linked = 1;
    v->rep->chain_head.position = last;
    memcpy(v->rep->chain_head.hash, v->bh.chain, LOG_HASH_LEN);
    const factum_chain_head *e = v->opts->expect;
    if (e && e->position == last) {
        if (ok && !memcmp(e->hash, v->bh.chain, LOG_HASH_LEN)) {
            v->rep->receipt_checked = 1;
        } else {
            snprintf(v->what, sizeof v->what,
                     "the chain does not pass through the expected head at position %" PRIu64
                     ": the log up to there was changed or replaced",
                     last);
            damage(v, v->batch_lo, v->what);
        }
    }
    return 0;
}

static int verify_event(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff)
{
    vctx *v = ctx;
    if (v->opts->chain) chain_event(v, ev, lo);
    if (!v->rep->first_position) v->rep->first_position = ev->position;
    v->rep->last_position = ev->position;
    v->rep->bytes += ev->data_len + ev->metadata_len;
    if (ff & LOG_EV_REMOVED) {
        v->rep->removed++; /* a scavenge took it (LOG-8): no index entry to check */
        return 0;
    }
    if (ev->position >= v->checked_upto) return 0;
    /* The index must find this event by (stream, version) and position. */
    uint64_t hash = base_hash64(ev->stream, ev->stream_len);
    idx_kv kv[16];
    size_t n;
    int found = 0;
    if (!idx_stream_range(v->s->idx, hash, ev->version, 0, kv, 16, &n))
        for (size_t i = 0; i < n && kv[i].k2 == ev->version; i++)
            if (kv[i].v == lo) found = 1;
    if (!found) {
        snprintf(v->what, sizeof v->what,
                 "event at position %" PRIu64 " (stream %.*s version %" PRIu64
                 ") is missing from the stream index",
                 ev->position, (int)(ev->stream_len > 100 ? 100 : ev->stream_len), ev->stream, ev->version);
        damage(v, lo, v->what);
    }
    uint64_t plo;
    if (idx_posmap_get(v->s->idx, ev->position, &plo) || plo != lo) {
        snprintf(v->what, sizeof v->what, "position map entry for position %" PRIu64 " is wrong",
                 ev->position);
        damage(v, lo, v->what);
    }
    return 0;
}

/* Open the parts of a store needed to read it offline. On
 * FACTUM_ECORRUPT, why says what is damaged (or is empty). */
static int open_offline(const char *path, const char *archive_dir, factum_store **out, idx_checkpoint *cp,
                        char *why, size_t why_len)
{
    why[0] = 0;
    factum_store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    factum_options_init(&s->opts);
    s->opts.read_only = 1;
    s->io = io_posix();
    s->lock_fd = -1;
    int rc = 0;
    char p[PATH_MAX];
    if (!(s->path = strdup(path))) rc = -ENOMEM;
    if (!rc) {
        snprintf(p, sizeof p, "%s/LOCK", path);
        s->lock_fd = open(p, O_RDONLY | O_CLOEXEC);
        if (s->lock_fd < 0)
            rc = errno == ENOENT ? FACTUM_ENOTSTORE : -errno;
        else if (flock(s->lock_fd, LOCK_SH | LOCK_NB))
            rc = errno == EWOULDBLOCK ? FACTUM_ELOCKED : -errno;
    }
    if (rc) goto fail;
    {
        snprintf(p, sizeof p, "%s/FACTUM", path);
        uint8_t *buf;
        size_t len;
        rc = io_read_file(s->io, p, 65536, &buf, &len);
        if (rc == -ENOENT) rc = FACTUM_ENOTSTORE;
        if (rc) goto fail;
        char uuid[64] = "";
        int format = 0;
        if (strncmp((char *)buf, "factum data directory\n", 22)) rc = FACTUM_ENOTSTORE;
        for (char *line = strtok((char *)buf, "\n"); line && !rc; line = strtok(NULL, "\n")) {
            sscanf(line, "format %d", &format);
            sscanf(line, "uuid %63s", uuid);
            sscanf(line, "segment_size %" SCNu64, &s->seg_size);
        }
        free(buf);
        if (!rc && format > FACTUM_FORMAT_VERSION) rc = FACTUM_EFORMAT;
        if (!rc && (!s->seg_size || factum_uuid_parse(uuid, strlen(uuid), s->uuid))) rc = FACTUM_ECORRUPT;
        if (rc) goto fail;
    }
    snprintf(p, sizeof p, "%s/log", path);
    char arch_base[PATH_MAX], arch[PATH_MAX];
    if ((rc = store_archive_base(path, archive_dir, arch_base, sizeof arch_base)) ||
        (rc = store_archive_dir(arch_base, s->uuid, arch, sizeof arch)))
        goto fail;
    if ((rc = log_open(s->io, p, arch[0] ? arch : NULL, s->seg_size, s->uuid, 0, 1, why, why_len, &s->log)))
        goto fail;
    idx_config ic = {1u << 30, 1, NULL, NULL, NULL, NULL};
    snprintf(p, sizeof p, "%s/index", path);
    if ((rc = idx_open(s->io, p, &ic, &s->idx, cp))) goto fail;
    *out = s;
    return 0;
fail:
    if (s->log) log_close(s->log);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->path);
    free(s);
    return rc;
}

static void close_offline(factum_store *s)
{
    idx_close(s->idx, 0);
    log_close(s->log);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->path);
    free(s);
}

int factum_verify(const char *path, void (*cb)(void *ctx, const factum_damage *d), void *ctx,
                  factum_verify_report *report)
{
    return factum_verify_with(path, NULL, cb, ctx, report);
}

int factum_verify_with(const char *path, const factum_verify_options *opts,
                       void (*cb)(void *ctx, const factum_damage *d), void *ctx, factum_verify_report *report)
{
    static const factum_verify_options none = {0, NULL, NULL};
    factum_verify_report local;
    factum_verify_report *rep = report ? report : &local;
    memset(rep, 0, sizeof *rep);
    if (!path) return FACTUM_EINVAL;
    if (!opts) opts = &none;
    factum_store *s;
    idx_checkpoint cp;
    char why[256];
    int rc = open_offline(path, opts->archive_dir, &s, &cp, why, sizeof why);
    if (rc == FACTUM_ECORRUPT && why[0]) {
        /* The log is not all there (a missing directory or segment). */
        vctx v0 = {.cb = cb, .ctx = ctx, .rep = rep};
        damage_file(&v0, "log", why);
    }
    if (rc) return rc;
    vctx v = {.s = s, .cb = cb, .ctx = ctx, .rep = rep, .checked_upto = cp.next_position, .opts = opts};
    memcpy(rep->chain_head.store_uuid, s->uuid, 16);
    if (opts->chain) {
        if ((rc = log_hasher_init(&v.h))) {
            close_offline(s);
            return rc;
        }
        log_chain_genesis(&v.h, s->uuid, rep->chain_head.hash);
        if (opts->expect && memcmp(opts->expect->store_uuid, s->uuid, 16))
            damage_file(&v, "FACTUM", "the expected chain head belongs to another store");
    }
    rep->segments = atomic_load(&s->log->n_segs);
    char what[256];
    if ((rc = idx_verify_tables(s->idx, what, sizeof what))) {
        damage_file(&v, "index", what);
        v.checked_upto = 0; /* do not trust lookups in a damaged index */
        rc = 0;
    }
    uint64_t lo = LOG_SEG_HEADER, pos = 1, end_pos = 1;
    while (1) {
        log_scan_result res;
        if ((rc = log_scan(s->log, lo, pos, verify_event, opts->chain ? chain_batch : NULL, &v, &res))) break;
        v.in_batch = 0;
        end_pos = res.next_position;
        rep->batches += res.batches;
        rep->events += res.events;
        if (!res.corrupt && !res.torn) break;
        uint64_t next_lo, next_pos;
        int found = log_find_batch(s->log, res.end_lo, &next_lo, &next_pos);
        if (res.torn && !found && res.end_lo >= cp.covered_lo) {
            rep->torn_tail = 1; /* an unacknowledged write at the end: not damage */
            break;
        }
        if (res.torn && res.end_lo < cp.covered_lo) {
            snprintf(what, sizeof what,
                     "damaged batch inside the part of the log the index checkpoint covers "
                     "(it was acknowledged)");
            damage(&v, res.end_lo, what);
            if (!found) break;
        }
        if (!res.torn || res.end_lo >= cp.covered_lo) {
            snprintf(what, sizeof what, "%s", res.corrupt ? res.what : "damaged batch");
            damage(&v, res.end_lo, what);
        }
        if (!found) break;
        if (next_pos != res.next_position) {
            snprintf(what, sizeof what, "positions %" PRIu64 "..%" PRIu64 " are lost in the damage",
                     res.next_position, next_pos - 1);
            damage(&v, res.end_lo, what);
        }
        lo = next_lo;
        pos = next_pos;
        v.linked = 0; /* across damage the chain cannot be followed: take up the next batch's hash */
    }
    if (!rc && opts->chain && opts->expect && !rep->receipt_checked &&
        !memcmp(opts->expect->store_uuid, s->uuid, 16)) {
        const factum_chain_head *e = opts->expect;
        uint8_t g[LOG_HASH_LEN];
        log_chain_genesis(&v.h, s->uuid, g);
        if (e->position == 0 && !memcmp(e->hash, g, LOG_HASH_LEN)) {
            rep->receipt_checked = 1; /* the head of a chain not yet begun */
        } else if (e->position == 0 || e->position >= end_pos || e->position < rep->chain_first_position) {
            snprintf(what, sizeof what,
                     "no hashed batch ends at the expected head's position %" PRIu64
                     " (the log ends at %" PRIu64 "): the log was cut or replaced",
                     e->position, end_pos - 1);
            damage_file(&v, "log", what);
        } else if (!rep->damaged) {
            snprintf(what, sizeof what,
                     "the expected head's position %" PRIu64
                     " is not the end of a batch: the log was changed",
                     e->position);
            damage_file(&v, "log", what);
        }
    }
    if (opts->chain) log_hasher_free(&v.h);
    if (!rc && cp.next_position > end_pos && !rep->damaged) {
        snprintf(what, sizeof what, "index checkpoint covers position %" PRIu64 " beyond the log's end",
                 cp.next_position - 1);
        damage_file(&v, "index/MANIFEST", what);
    }
    close_offline(s);
    if (rc) return rc;
    return rep->damaged ? FACTUM_ECORRUPT : 0;
}

int factum_dump(const char *path, int (*cb)(void *ctx, const factum_raw_record *r), void *ctx)
{
    if (!path || !cb) return FACTUM_EINVAL;
    factum_store *s;
    idx_checkpoint cp;
    char why[256];
    int rc = open_offline(path, NULL, &s, &cp, why, sizeof why);
    if (rc) return rc;
    char file[64];
    uint64_t lo = LOG_SEG_HEADER, nsegs = atomic_load(&s->log->n_segs);
    while (lo / s->seg_size < nsegs) {
        uint64_t avail;
        const uint8_t *p = log_ptr(s->log, lo, &avail);
        factum_event ev;
        log_batch_hdr bh;
        int type;
        int n = avail >= 8 ? log_decode_frame(p, avail, &type, &ev, &bh, NULL) : 0;
        if (n < 0) {
            rc = FACTUM_ECORRUPT;
            break;
        }
        if (n == 0) {
            lo = log_next_seg_lo(s->log, lo);
            continue;
        }
        snprintf(file, sizeof file, "log/%08" PRIu64 ".seg", lo / s->seg_size);
        factum_raw_record r = {file, lo % s->seg_size, (uint32_t)n, base_get32(p + 4), NULL, 0, 0, NULL};
        if (type == LOG_FRAME_BATCH) {
            r.kind = "batch";
            r.position = bh.first_position;
            r.n_events = bh.n_events;
        } else if (type == LOG_FRAME_REMOVED) {
            log_removed rm;
            log_removed_get(p, &rm);
            r.kind = "removed";
            r.position = rm.first_position;
            r.n_events = rm.count;
        } else if (ev.flags & LOG_EV_STUB) {
            r.kind = "stub";
            r.position = ev.position;
            r.n_events = 1;
            r.ev = &ev;
        } else {
            r.kind = "event";
            r.position = ev.position;
            r.n_events = 1;
            r.ev = &ev;
        }
        if ((rc = cb(ctx, &r))) break;
        lo = log_next_lo(s->log, lo, (uint32_t)n);
    }
    close_offline(s);
    return rc;
}

int factum_chain_head_offline(const char *path, factum_chain_head *out)
{
    if (!path || !out) return FACTUM_EINVAL;
    factum_store *s;
    idx_checkpoint cp;
    char why[256];
    int rc = open_offline(path, NULL, &s, &cp, why, sizeof why);
    if (rc) return rc;
    /* The last valid batch: after the index checkpoint, or the one holding
     * the last event it covers (a torn tail is not part of the log). */
    log_scan_result res;
    uint64_t from = cp.covered_lo ? cp.covered_lo : LOG_SEG_HEADER;
    rc = log_scan(s->log, from, cp.next_position, NULL, NULL, NULL, &res);
    if (!rc && res.corrupt) rc = FACTUM_ECORRUPT;
    uint64_t last = res.last_batch_lo;
    if (!rc && !last && res.next_position > 1) {
        log_batch_hdr bh;
        rc = store_batch_at(s, res.next_position - 1, &last, &bh);
    }
    if (!rc) rc = log_chain_resume(s->log, last);
    if (!rc) {
        memcpy(out->store_uuid, s->uuid, 16);
        out->position = s->log->chain_pos;
        memcpy(out->hash, s->log->chain, FACTUM_HASH_LEN);
    }
    close_offline(s);
    return rc;
}
