/*
 * compact.c - compacted generations of sealed segments (LOG-8, ADR 0026):
 * writing one from a decision per event, swapping it in, and retiring the
 * generation it replaced after a grace period.
 *
 * A generation is written as NNNNNNNN.seg.gen beside the segment: its
 * header (the segment's, with the generation fields), the kept frames back
 * to back, then the map (logical offset, offset now) of every frame. It is
 * fdatasync'd before the rename over the segment and the directory fsync'd
 * after, so that at every instant exactly one file holds each segment
 * number and what it holds is whole; a leftover .seg.gen is removed on
 * open.
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
#include <sys/mman.h>
#include <unistd.h>

#include "log/log.h"

#define OUT_BUF (1u << 20)

typedef struct gen_writer {
    flog *l;
    int fd;
    int dry; /* weigh only: count, write nothing */
    uint8_t *buf; /* OUT_BUF bytes, flushed at file offset buf_at */
    size_t used;
    uint64_t buf_at, new_off; /* the file offset the next frame gets */
    uint8_t *ent;             /* the map, 8 bytes per frame */
    uint64_t n_ent, cap_ent;
    /* The run of removed events being gathered (inside one batch). */
    uint64_t run_old, run_first;
    uint8_t *run;
    uint32_t run_n, run_cap;
    log_hasher h;
} gen_writer;

static int out_flush(gen_writer *w)
{
    if (!w->used) return 0;
    int rc = w->dry ? 0 : io_write_full(w->l->io, w->fd, w->buf, w->used, (off_t)w->buf_at);
    /* Start the write-back of each megabyte now, so that the final
     * fdatasync has little left to do and does not hold the disk for long
     * against the writer's own fdatasyncs (not a durability step: the
     * fdatasync before the rename is). */
    if (!rc && !w->dry) sync_file_range(w->fd, (off_t)w->buf_at, (off_t)w->used, SYNC_FILE_RANGE_WRITE);
    w->buf_at += w->used;
    w->used = 0;
    return rc;
}

/* Room for len bytes in the buffer (len <= a segment, so may exceed it:
 * then write straight through). */
static uint8_t *out_reserve(gen_writer *w, size_t len, int *rc)
{
    if (w->used + len > OUT_BUF && (*rc = out_flush(w))) return NULL;
    if (len > OUT_BUF) return NULL;
    return w->buf + w->used;
}

static int add_ent(gen_writer *w, uint64_t old_off)
{
    if (w->dry) {
        w->n_ent++;
        return 0;
    }
    if (w->n_ent == w->cap_ent) {
        uint64_t nc = w->cap_ent ? w->cap_ent * 2 : 4096;
        uint8_t *p = realloc(w->ent, nc * 8);
        if (!p) return -ENOMEM;
        w->ent = p;
        w->cap_ent = nc;
    }
    base_put32(w->ent + w->n_ent * 8, (uint32_t)old_off);
    base_put32(w->ent + w->n_ent * 8 + 4, (uint32_t)w->new_off);
    w->n_ent++;
    return 0;
}

/* Append a frame (len bytes at p, logical offset old_off) to the body. */
static int emit(gen_writer *w, uint64_t old_off, const uint8_t *p, uint32_t len)
{
    int rc = add_ent(w, old_off);
    if (rc) return rc;
    uint8_t *q = out_reserve(w, len, &rc);
    if (rc) return rc;
    if (q) {
        if (!w->dry) memcpy(q, p, len);
        w->used += len;
    } else if (!w->dry && (rc = io_write_full(w->l->io, w->fd, p, len, (off_t)w->buf_at))) {
        return rc;
    } else {
        w->buf_at += len;
    }
    w->new_off += len;
    return 0;
}

static int run_flush(gen_writer *w)
{
    if (!w->run_n) return 0;
    uint32_t len = log_removed_frame_len(w->run_n);
    int rc = 0;
    uint8_t *q = out_reserve(w, len, &rc), *tmp = NULL;
    if (rc) return rc;
    if (!q && !w->dry && !(q = tmp = malloc(len))) return -ENOMEM;
    if (!w->dry) log_encode_removed(q, w->run_first, w->run_n, w->run);
    if (!q || tmp) {
        rc = add_ent(w, w->run_old);
        if (!rc && !w->dry) rc = io_write_full(w->l->io, w->fd, tmp, len, (off_t)w->buf_at);
        if (!rc) {
            w->buf_at += len;
            w->new_off += len;
        }
        free(tmp);
    } else if (!(rc = add_ent(w, w->run_old))) {
        w->used += len;
        w->new_off += len;
    }
    w->run_n = 0;
    return rc;
}

static int run_add(gen_writer *w, uint64_t old_off, uint64_t position, const uint8_t *digests, uint32_t n)
{
    if (!w->run_n) {
        w->run_old = old_off;
        w->run_first = position;
    }
    if (w->run_n + n > w->run_cap) {
        uint32_t nc = w->run_cap ? w->run_cap : 64;
        while (nc < w->run_n + n)
            nc *= 2;
        uint8_t *p = realloc(w->run, (size_t)nc * LOG_HASH_LEN);
        if (!p) return -ENOMEM;
        w->run = p;
        w->run_cap = nc;
    }
    memcpy(w->run + (size_t)w->run_n * LOG_HASH_LEN, digests, (size_t)n * LOG_HASH_LEN);
    w->run_n += n;
    return 0;
}

/* Beside the segment's file: in the log directory, or in the archive for a
 * segment only the archive holds (LOG-9: the archive is scavenged too). */
static void gen_path(flog *l, uint64_t no, const char *suffix, char *buf, size_t n)
{
    log_seg *s = log_seg_get(l, no);
    log_seg_path(l, s ? atomic_load(&s->where) : LOG_LOCAL, no, suffix, buf, n);
}

/* Walk segment no's frames, writing what fn keeps. */
static int compact_body(gen_writer *w, uint64_t no, log_decide_fn fn, void *ctx, log_compact_stats *st,
                        uint64_t *logical_end)
{
    flog *l = w->l;
    uint64_t base = no * l->seg_size, lo = base + LOG_SEG_HEADER;
    int rc = 0;
    while (lo < base + l->seg_size) {
        uint64_t avail;
        const uint8_t *p = log_ptr(l, lo, &avail);
        if (!p) return FACTUM_ECORRUPT;
        int type;
        factum_event ev;
        log_batch_hdr bh;
        uint32_t ff;
        int n = log_decode_frame(p, avail, &type, &ev, &bh, &ff);
        if (n < 0) return FACTUM_ECORRUPT;
        if (n == 0) break; /* the end of the segment's data */
        if (type == LOG_FRAME_BATCH) {
            if ((rc = run_flush(w)) || (rc = emit(w, lo - base, p, (uint32_t)n))) return rc;
        } else if (type == LOG_FRAME_REMOVED) {
            log_removed r;
            log_removed_get(p, &r);
            st->events += r.count;
            st->removed += r.count;
            st->removed_before += r.count;
            if ((rc = run_add(w, lo - base, r.first_position, r.digests, r.count))) return rc;
        } else {
            st->events++;
            int d = fn(ctx, &ev, lo, ff);
            if (d < 0) return d;
            uint8_t dig[LOG_HASH_LEN] = {0};
            if (d != LOG_KEEP && !w->dry && !(ev.flags & LOG_EV_STUB) &&
                (rc = log_chain_event(&w->h, p, (size_t)n, dig)))
                return rc;
            if (d != LOG_KEEP && (ev.flags & LOG_EV_STUB)) memcpy(dig, ev.data, LOG_HASH_LEN);
            if (d == LOG_REMOVE) {
                st->removed++;
                if ((rc = run_add(w, lo - base, ev.position, dig, 1))) return rc;
            } else if (d == LOG_STUB && !(ev.flags & LOG_EV_STUB)) {
                st->stubbed++;
                st->stubbed_now++;
                uint32_t slen = log_stub_len(&ev); /* < OUT_BUF: names are at most 64 KiB */
                if ((rc = run_flush(w)) || (rc = add_ent(w, lo - base))) return rc;
                uint8_t *q = out_reserve(w, slen, &rc);
                if (rc) return rc;
                if (!w->dry) log_encode_stub(q, &ev, ff, dig);
                w->used += slen;
                w->new_off += slen;
            } else {
                if (d == LOG_STUB) st->stubbed++;
                else st->kept++;
                if ((rc = run_flush(w)) || (rc = emit(w, lo - base, p, (uint32_t)n))) return rc;
            }
        }
        lo = log_next_lo(l, lo, (uint32_t)n);
    }
    if ((rc = run_flush(w))) return rc;
    *logical_end = lo - base;
    return 0;
}

int log_compact_write(flog *l, uint64_t no, log_decide_fn fn, void *ctx, log_compact_stats *st)
{
    log_compact_stats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (l->read_only) return FACTUM_EREADONLY;
    log_seg *s = log_seg_get(l, no);
    /* Sealed and durable segments only: the writer never touches them again. */
    if (!s || (no + 1) * l->seg_size > atomic_load(&l->synced_lo)) return FACTUM_EINVAL;
    char path[PATH_MAX];
    gen_path(l, no, ".gen", path, sizeof path);
    gen_writer w = {.l = l, .fd = -1};
    int rc = log_hasher_init(&w.h);
    if (rc) return rc;
    if (!(w.buf = calloc(1, OUT_BUF))) {
        rc = -ENOMEM;
        goto out;
    }
    w.fd = l->io->open(l->io, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (w.fd < 0) {
        rc = w.fd;
        goto out;
    }
    /* The body starts after the header, written last. */
    w.buf_at = LOG_SEG_HEADER;
    w.new_off = LOG_SEG_HEADER;
    uint64_t logical_end = 0;
    if ((rc = compact_body(&w, no, fn, ctx, st, &logical_end))) goto out;
    if ((rc = out_flush(&w))) goto out;
    log_gen_info g = {.gen = s->gen + 1,
                      .batch_format = s->format,
                      .footer_off = w.new_off,
                      .n_ent = w.n_ent,
                      .logical_end = logical_end < LOG_SEG_HEADER ? LOG_SEG_HEADER : logical_end,
                      .footer_crc = base_crc32c(0, w.ent, w.n_ent * 8)};
    if (w.n_ent && (rc = io_write_full(l->io, w.fd, w.ent, w.n_ent * 8, (off_t)w.new_off))) goto out;
    /* The header: the segment's own (bytes 0..59, read through its mapping:
     * a sealed segment's descriptor is the writer's to close at any time),
     * then the generation's. */
    uint8_t *h = w.buf;
    memset(h, 0, LOG_SEG_HEADER);
    memcpy(h, s->map, 60);
    log_gen_header(h, &g);
    if ((rc = io_write_full(l->io, w.fd, h, LOG_SEG_HEADER, 0))) goto out;
    if ((rc = l->io->fdatasync(l->io, w.fd))) goto out;
    st->bytes_before = s->map_len;
    st->bytes_after = w.new_off + w.n_ent * 8;
out:
    if (w.fd >= 0) l->io->close(l->io, w.fd);
    if (rc && w.fd >= 0) l->io->unlink(l->io, path);
    free(w.buf);
    free(w.ent);
    free(w.run);
    log_hasher_free(&w.h);
    return rc;
}

int log_compact_weigh(flog *l, uint64_t no, log_decide_fn fn, void *ctx, log_compact_stats *st)
{
    memset(st, 0, sizeof *st);
    log_seg *s = log_seg_get(l, no);
    if (!s) return FACTUM_EINVAL;
    gen_writer w = {.l = l, .fd = -1, .dry = 1, .buf_at = LOG_SEG_HEADER, .new_off = LOG_SEG_HEADER};
    int rc = log_hasher_init(&w.h);
    if (rc) return rc;
    uint64_t logical_end = 0;
    if (!(w.buf = malloc(OUT_BUF))) rc = -ENOMEM;
    if (!rc) rc = compact_body(&w, no, fn, ctx, st, &logical_end);
    st->bytes_before = s->map_len;
    st->bytes_after = w.new_off + w.n_ent * 8;
    free(w.buf);
    free(w.run);
    log_hasher_free(&w.h);
    return rc;
}

void log_compact_abandon(flog *l, uint64_t no)
{
    char path[PATH_MAX];
    gen_path(l, no, ".gen", path, sizeof path);
    l->io->unlink(l->io, path);
}

int log_compact_swap(flog *l, uint64_t no)
{
    char from[PATH_MAX], to[PATH_MAX];
    gen_path(l, no, ".gen", from, sizeof from);
    gen_path(l, no, "", to, sizeof to);
    log_seg *old = log_seg_get(l, no);
    if (!old) return FACTUM_EINVAL;
    int where = atomic_load(&old->where);
    int rc = l->io->rename(l->io, from, to);
    if (!rc) rc = l->io->fsync_dir(l->io, log_seg_dir(l, where));
    if (rc) return rc;
    /* The new generation is the segment from here on, whatever happens to
     * this process; map it and let readers find it. */
    if ((rc = log_seg_attach(l, no, where))) return rc;
    pthread_mutex_lock(&l->seg_mu);
    if (old->fd >= 0) {
        l->io->close(l->io, old->fd);
        old->fd = -1;
    }
    old->retired_at = base_now_ns();
    old->next = l->retired;
    l->retired = old;
    log_seg *s = log_seg_get(l, no);
    if (s && s->fd >= 0) { /* compacted segments are never written */
        l->io->close(l->io, s->fd);
        s->fd = -1;
    }
    /* After the new generation is published: a holder that samples the
     * epoch before it reads either sees the bump or reads the new file. */
    atomic_fetch_add_explicit(&l->swap_epoch, 1, memory_order_release);
    pthread_mutex_unlock(&l->seg_mu);
    return 0;
}

int log_retire(flog *l, int64_t grace_ns)
{
    int64_t now = base_now_ns();
    int n = 0;
    pthread_mutex_lock(&l->seg_mu);
    for (log_seg *s = l->retired; s; s = s->next) {
        if (s->retired_at == 0 || now - s->retired_at < grace_ns) continue;
        /* Zero pages in place of the file's: its blocks go back to the file
         * system, a pointer still held reads zeros. */
        void *p = mmap(s->map, s->map_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) continue;
        s->retired_at = 0;
        n++;
    }
    pthread_mutex_unlock(&l->seg_mu);
    return n;
}
