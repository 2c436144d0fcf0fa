/*
 * segment.c - the log's segment files: opening and validating them, creating
 * them ahead of the writer (a background thread, LOG-6), writing batches at
 * the tail, syncing, the recovery scan (LOG-3, LOG-4) and cutting a torn
 * tail (LOG-5).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void log_seg_path(const flog *l, int where, uint64_t no, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%08" PRIu64 ".seg%s", log_seg_dir(l, where), no, suffix);
}

static void seg_path(const flog *l, uint64_t no, const char *suffix, char *buf, size_t n)
{
    log_seg_path(l, LOG_LOCAL, no, suffix, buf, n);
}

uint32_t log_new_segment_format = FACTUM_FORMAT_VERSION;

static void encode_header(const flog *l, uint64_t no, uint8_t *h)
{
    memset(h, 0, LOG_SEG_HEADER);
    memcpy(h, LOG_SEG_MAGIC, 8);
    base_put32(h + 8, log_new_segment_format);
    base_put32(h + 12, LOG_SEG_HEADER);
    base_put64(h + 16, no);
    base_put64(h + 24, l->seg_size);
    memcpy(h + 32, l->store_uuid, 16);
    base_put64(h + 48, (uint64_t)base_now_ns());
    base_put32(h + 56, base_crc32c(0, h, 56));
}

static int check_header(const flog *l, uint64_t no, const uint8_t *h, char *why, size_t n)
{
    if (memcmp(h, LOG_SEG_MAGIC, 8) != 0) {
        snprintf(why, n, "bad magic");
        return FACTUM_ECORRUPT;
    }
    if (base_crc32c(0, h, 56) != base_get32(h + 56)) {
        snprintf(why, n, "header checksum mismatch");
        return FACTUM_ECORRUPT;
    }
    if (base_get32(h + 8) > FACTUM_FORMAT_VERSION) return FACTUM_EFORMAT;
    if (base_get64(h + 16) != no || base_get64(h + 24) != l->seg_size ||
        base_get32(h + 12) != LOG_SEG_HEADER) {
        snprintf(why, n, "header does not match its file name or the store's segment size");
        return FACTUM_ECORRUPT;
    }
    if (memcmp(h + 32, l->store_uuid, 16) != 0) {
        snprintf(why, n, "segment belongs to another store");
        return FACTUM_ECORRUPT;
    }
    return 0;
}

/* Encode g into header h (whose bytes 0..59 are set). */
void log_gen_header(uint8_t *h, const log_gen_info *g)
{
    base_put32(h + 8, FACTUM_FORMAT_VERSION); /* older libraries refuse a compacted segment */
    base_put32(h + 56, base_crc32c(0, h, 56));
    base_put32(h + 64, g->gen);
    base_put32(h + 68, g->batch_format);
    base_put64(h + 72, g->footer_off);
    base_put64(h + 80, g->n_ent);
    base_put64(h + 88, g->logical_end);
    base_put32(h + 96, g->footer_crc);
    base_put32(h + 100, LOG_GEN_MAGIC);
    base_put32(h + 104, base_crc32c(0, h + 64, 40));
}

/* Read a compacted generation's fields from header h of a file of `size`
 * bytes (g->gen 0: a segment as the writer made it). */
static int check_gen(const flog *l, const uint8_t *h, uint64_t size, log_gen_info *g, char *why, size_t n)
{
    memset(g, 0, sizeof *g);
    if (base_get32(h + 100) != LOG_GEN_MAGIC) {
        if (size != l->seg_size) {
            snprintf(why, n, "%" PRIu64 " bytes, not %" PRIu64, size, l->seg_size);
            return FACTUM_ECORRUPT;
        }
        return 0;
    }
    if (base_crc32c(0, h + 64, 40) != base_get32(h + 104)) {
        snprintf(why, n, "compacted generation header checksum mismatch");
        return FACTUM_ECORRUPT;
    }
    g->gen = base_get32(h + 64);
    g->batch_format = base_get32(h + 68);
    g->footer_off = base_get64(h + 72);
    g->n_ent = base_get64(h + 80);
    g->logical_end = base_get64(h + 88);
    g->footer_crc = base_get32(h + 96);
    if (!g->gen || g->footer_off < LOG_SEG_HEADER || (g->footer_off & 7) || g->n_ent > size / 8 ||
        g->footer_off + g->n_ent * 8 != size || g->logical_end > l->seg_size || g->logical_end < LOG_SEG_HEADER ||
        g->batch_format > FACTUM_FORMAT_VERSION || !g->batch_format) {
        snprintf(why, n, "compacted generation header does not match its file");
        return FACTUM_ECORRUPT;
    }
    return 0;
}

static inline uint32_t ent_old(const log_seg *s, uint64_t i)
{
    return base_get32(s->ent + i * 8);
}
static inline uint32_t ent_new(const log_seg *s, uint64_t i)
{
    return base_get32(s->ent + i * 8 + 4);
}

/* The map is strictly increasing on both sides and inside the file. */
static int gen_map_sorted(const log_seg *s)
{
    for (uint64_t i = 0; i < s->n_ent; i++) {
        uint32_t o = ent_old(s, i), nw = ent_new(s, i);
        if (o < LOG_SEG_HEADER || o >= s->logical_end || nw < LOG_SEG_HEADER || nw >= s->body_end || (o & 7) ||
            (nw & 7))
            return 0;
        if (i && (o <= ent_old(s, i - 1) || nw <= ent_new(s, i - 1))) return 0;
    }
    return 1;
}

/* The index of the last entry whose logical offset is <= off, or -1. */
static int64_t gen_floor(const log_seg *s, uint64_t off)
{
    int64_t lo = 0, hi = (int64_t)s->n_ent - 1, ans = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ent_old(s, (uint64_t)mid) <= off) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

int log_seg_publish(flog *l, uint64_t no, log_seg *s)
{
    if (no >= LOG_MAX_SEGMENTS) return -ENOSPC;
    log_seg_slot *page = atomic_load_explicit(&l->seg_pages[no / LOG_SEG_PAGE], memory_order_acquire);
    if (!page) {
        pthread_mutex_lock(&l->seg_mu);
        page = atomic_load_explicit(&l->seg_pages[no / LOG_SEG_PAGE], memory_order_acquire);
        if (!page && (page = calloc(LOG_SEG_PAGE, sizeof *page)))
            atomic_store_explicit(&l->seg_pages[no / LOG_SEG_PAGE], page, memory_order_release);
        pthread_mutex_unlock(&l->seg_mu);
        if (!page) return -ENOMEM;
    }
    atomic_store_explicit(&page[no % LOG_SEG_PAGE], s, memory_order_release);
    return 0;
}

/* s's descriptor, opened again if it was closed (seg_mu held). */
static int seg_fd_locked(flog *l, log_seg *s)
{
    if (s->fd < 0) {
        char path[PATH_MAX];
        log_seg_path(l, atomic_load(&s->where), s->no, "", path, sizeof path);
        s->fd = l->io->open(l->io, path, l->read_only ? O_RDONLY : O_RDWR, 0);
        if (s->fd >= 0 && s->no < l->fds_closed_below) l->fds_closed_below = s->no; /* closed again later */
    }
    return s->fd;
}

int log_seg_fd(flog *l, log_seg *s)
{
    pthread_mutex_lock(&l->seg_mu);
    int fd = seg_fd_locked(l, s);
    pthread_mutex_unlock(&l->seg_mu);
    return fd;
}

/* Close the descriptors of the segments below `below` (sealed and synced:
 * read through their mappings from now on). */
static void close_fds_below(flog *l, uint64_t below)
{
    pthread_mutex_lock(&l->seg_mu);
    for (uint64_t no = l->fds_closed_below; no < below; no++) {
        log_seg *s = log_seg_get(l, no);
        if (s && s->fd >= 0) {
            l->io->close(l->io, s->fd);
            s->fd = -1;
        }
    }
    if (below > l->fds_closed_below) l->fds_closed_below = below;
    pthread_mutex_unlock(&l->seg_mu);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Map segment `no` (already on disk) and publish it. On failure, why
 * (may be NULL) says what is wrong with it. */
static int seg_attach_why(flog *l, uint64_t no, int where, char *why, size_t why_len)
{
    char path[PATH_MAX];
    log_seg_path(l, where, no, "", path, sizeof path);
    int fd = l->io->open(l->io, path, l->read_only ? O_RDONLY : O_RDWR, 0);
    if (fd < 0) return fd;
    uint64_t size;
    int rc = io_file_size(fd, &size);
    if (rc) goto fail_fd;
    /* The header is read with pread, not through the mapping: touching the
     * mapping would make its first folio (up to a megabyte on kernels with
     * large folios) resident in every segment's mapping, a cost that grows
     * with the log. */
    uint8_t hdr[LOG_SEG_HEADER];
    char what[128] = "";
    log_gen_info gi;
    if (size < LOG_SEG_HEADER) {
        snprintf(what, sizeof what, "%" PRIu64 " bytes, shorter than a header", size);
        rc = FACTUM_ECORRUPT;
    }
    if (!rc) rc = io_read_full(l->io, fd, hdr, sizeof hdr, 0);
    if (!rc) rc = check_header(l, no, hdr, what, sizeof what);
    if (!rc) rc = check_gen(l, hdr, size, &gi, what, sizeof what);
    if (rc) {
        if (why)
            snprintf(why, why_len, "segment %" PRIu64 "%s: %s", no, where == LOG_ARCHIVE ? " (archived)" : "",
                     what[0] ? what : "newer format");
        goto fail_fd;
    }
    int err = 0;
    uint8_t *map = l->io->map(l->io, fd, size, &err);
    if (!map) {
        rc = err;
        goto fail_fd;
    }
    log_seg *s = calloc(1, sizeof *s);
    if (!s) {
        rc = -ENOMEM;
        goto fail_map;
    }
    s->no = no;
    s->fd = fd;
    s->where = (uint8_t)where;
    s->archived = where == LOG_ARCHIVE;
    s->map = map;
    s->map_len = size;
    s->format = base_get32(hdr + 8);
    if (gi.gen) {
        s->gen = gi.gen;
        s->format = gi.batch_format;
        s->ent = map + gi.footer_off;
        s->n_ent = gi.n_ent;
        s->body_end = gi.footer_off;
        s->logical_end = gi.logical_end;
        if (base_crc32c(0, s->ent, gi.n_ent * 8) != gi.footer_crc || !gen_map_sorted(s)) {
            if (why) snprintf(why, why_len, "segment %" PRIu64 ": its compacted generation's map is damaged", no);
            free(s);
            rc = FACTUM_ECORRUPT;
            goto fail_map;
        }
    }
    if ((rc = log_seg_publish(l, no, s))) {
        free(s);
        goto fail_map;
    }
    if (atomic_load(&l->n_segs) < no + 1) atomic_store_explicit(&l->n_segs, no + 1, memory_order_release);
    return 0;
fail_map:
    l->io->unmap(l->io, map, size);
fail_fd:
    l->io->close(l->io, fd);
    return rc;
}

/* Map segment `no` and publish it: a new one, or (compact.c's swap) the
 * file now holding its number in place of the one readers find. */
int log_seg_attach(flog *l, uint64_t no, int where)
{
    return seg_attach_why(l, no, where, NULL, 0);
}

/* Create segment `no`: header and zeros, fdatasync, rename, fsync the dir
 * (LOG-6). Not yet attached. */
static int seg_create(flog *l, uint64_t no)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    seg_path(l, no, ".tmp", tmp, sizeof tmp);
    seg_path(l, no, "", path, sizeof path);
    int fd = l->io->open(l->io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fd;
    size_t chunk = 1u << 20;
    uint8_t *buf = calloc(1, chunk);
    int rc = buf ? 0 : -ENOMEM;
    if (!rc) {
        encode_header(l, no, buf);
        for (uint64_t off = 0; off < l->seg_size && !rc; off += chunk) {
            size_t n = l->seg_size - off < chunk ? (size_t)(l->seg_size - off) : chunk;
            rc = io_write_full(l->io, fd, buf, n, (off_t)off);
            if (off == 0) memset(buf, 0, LOG_SEG_HEADER);
        }
    }
    free(buf);
    if (!rc) rc = l->io->fdatasync(l->io, fd);
    l->io->close(l->io, fd);
    if (!rc) rc = l->io->rename(l->io, tmp, path);
    if (!rc) rc = l->io->fsync_dir(l->io, l->dir);
    if (rc) l->io->unlink(l->io, tmp);
    return rc;
}

static int seg_has_data(flog *l, uint64_t no)
{
    log_seg *s = log_seg_get(l, no);
    if (s && s->gen) return s->n_ent > 0;
    return s && base_get32(s->map + LOG_SEG_HEADER) != 0;
}

/* The segment numbers named in dir (sorted, into *nums / *count), removing
 * leftovers of segments and generations not finished (unless read_only).
 * A missing directory: -ENOENT. */
static int list_segments(io_env *io, const char *dir, int read_only, uint64_t **nums, size_t *count, char *why,
                         size_t why_len)
{
    *nums = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return -errno;
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && !rc) {
        uint64_t no;
        char tail[16], canon[64];
        if (sscanf(de->d_name, "%" SCNu64 ".seg%15s", &no, tail) == 2 &&
            (strcmp(tail, ".tmp") == 0 || strcmp(tail, ".gen") == 0)) {
            /* A segment (or an archive copy) whose making did not finish, or
             * a compacted generation not swapped in (LOG-8). */
            if (!read_only) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                io->unlink(io, p);
            }
            continue;
        }
        if (sscanf(de->d_name, "%" SCNu64 ".seg%15s", &no, tail) != 1) continue;
        /* Exactly the name the writer gives (8 digits at least, more past 99,999,999). */
        snprintf(canon, sizeof canon, "%08" PRIu64 ".seg", no);
        if (strcmp(canon, de->d_name)) continue;
        if (no >= LOG_MAX_SEGMENTS) {
            snprintf(why, why_len, "segment number %" PRIu64 " in %s is out of range", no, dir);
            rc = FACTUM_ECORRUPT;
            break;
        }
        if (*count == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            uint64_t *n2 = realloc(*nums, nc * sizeof **nums);
            if (!n2) {
                rc = -ENOMEM;
                break;
            }
            *nums = n2;
            cap = nc;
        }
        (*nums)[(*count)++] = no;
    }
    closedir(d);
    if (rc) {
        free(*nums);
        *nums = NULL;
        *count = 0;
        return rc;
    }
    if (*count) qsort(*nums, *count, sizeof **nums, cmp_u64);
    return 0;
}

static int has_num(const uint64_t *nums, size_t count, uint64_t no)
{
    return count && bsearch(&no, nums, count, sizeof *nums, cmp_u64) != NULL;
}

int log_open(io_env *io, const char *dir, const char *arch, uint64_t seg_size, const uint8_t uuid[16],
             int create, int read_only, char *why, size_t why_len, flog **out)
{
    char none[8];
    if (!why) {
        why = none;
        why_len = sizeof none;
    }
    why[0] = 0;
    if (seg_size < (1u << 20) || (seg_size & (LOG_SEG_HEADER - 1))) return FACTUM_EINVAL;
    flog *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->io = io;
    l->seg_size = seg_size;
    l->read_only = read_only;
    memcpy(l->store_uuid, uuid, 16);
    pthread_mutex_init(&l->prep_mu, NULL);
    pthread_cond_init(&l->prep_cv, NULL);
    pthread_mutex_init(&l->seg_mu, NULL);
    int rc = 0;
    uint64_t *nums = NULL, *anums = NULL; /* the segment numbers found here and in the archive */
    size_t count = 0, acount = 0;
    if (!(l->dir = strdup(dir)) || (arch && !(l->arch = strdup(arch)))) {
        rc = -ENOMEM;
        goto fail;
    }
    create = create && !read_only;
    if (create && (rc = io_ensure_dir(io, dir))) goto fail; /* durable before segment 0 is named in it */
    if ((rc = list_segments(io, dir, read_only, &nums, &count, why, why_len))) {
        if (rc == -ENOENT) {
            snprintf(why, why_len, "the log directory %s is missing", dir);
            rc = FACTUM_ECORRUPT;
        }
        goto fail;
    }
    /* An archive directory not made yet holds nothing (the archiver makes it). */
    if (arch && (rc = list_segments(io, arch, read_only, &anums, &acount, why, why_len)) && rc != -ENOENT) goto fail;
    rc = 0;
    uint64_t max_no = count ? nums[count - 1] : 0;
    if (acount && anums[acount - 1] > max_no) max_no = anums[acount - 1];
    if (count == 0 && acount == 0) {
        if (!create) {
            snprintf(why, why_len, "log segment 0 is missing from %s (a store always has it)", dir);
            rc = FACTUM_ECORRUPT;
            goto fail;
        }
        if ((rc = seg_create(l, 0))) goto fail;
    }
    /* Each segment from its local file, or else its archived one (LOG-9);
     * none may be missing. */
    for (uint64_t no = 0; no <= max_no; no++) {
        if (has_num(nums, count, no)) continue;
        if (has_num(anums, acount, no) && (no < max_no || read_only)) continue;
        if (no == 0 && count == 0 && acount == 0) continue; /* just made */
        snprintf(why, why_len, "log segment %" PRIu64 " is missing (segments up to %" PRIu64 " exist)%s", no,
                 max_no,
                 arch ? ""
                      : "; if it was archived, open the store with its archive directory (archive_dir, "
                        "--archive-dir)");
        rc = FACTUM_ECORRUPT;
        goto fail;
    }
    /* Until recovery finds the tail, only the last segment may be written:
     * the others are read through their mappings, their descriptors closed
     * as they are attached (opened again if a sync needs them), so that no
     * limit on open files caps the log. */
    for (uint64_t no = 0; no <= max_no; no++) {
        int local = (count == 0 && acount == 0) || has_num(nums, count, no);
        if ((rc = seg_attach_why(l, no, local ? LOG_LOCAL : LOG_ARCHIVE, why, why_len))) goto fail;
        if (no < max_no) close_fds_below(l, no + 1);
    }
    l->tail_lo = LOG_SEG_HEADER;
    l->unsynced_from = UINT64_MAX;
    free(nums);
    free(anums);
    *out = l;
    return 0;
fail:
    free(nums);
    free(anums);
    log_close(l);
    return rc;
}

void log_close(flog *l)
{
    if (!l) return;
    log_prep_stop(l);
    uint64_t n = atomic_load(&l->n_segs);
    for (uint64_t i = 0; i < n; i++) {
        log_seg *s = log_seg_get(l, i);
        if (!s) continue;
        l->io->unmap(l->io, s->map, s->map_len);
        if (s->fd >= 0) l->io->close(l->io, s->fd);
        free(s);
    }
    while (l->retired) {
        log_seg *s = l->retired;
        l->retired = s->next;
        l->io->unmap(l->io, s->map, s->map_len);
        if (s->fd >= 0) l->io->close(l->io, s->fd);
        free(s);
    }
    for (uint64_t p = 0; p < LOG_SEG_PAGES; p++)
        free(atomic_load(&l->seg_pages[p]));
    pthread_mutex_destroy(&l->seg_mu);
    pthread_mutex_destroy(&l->prep_mu);
    pthread_cond_destroy(&l->prep_cv);
    free(l->dir);
    free(l->arch);
    free(l);
}

/* ---- segment preparation --------------------------------------------- */

static void *prep_main(void *arg)
{
    flog *l = arg;
    pthread_mutex_lock(&l->prep_mu);
    while (!l->prep_stop) {
        uint64_t have = atomic_load(&l->n_segs);
        if (have > l->prep_want || l->prep_err) {
            pthread_cond_wait(&l->prep_cv, &l->prep_mu);
            continue;
        }
        pthread_mutex_unlock(&l->prep_mu);
        int rc = seg_create(l, have);
        if (!rc) rc = log_seg_attach(l, have, LOG_LOCAL);
        pthread_mutex_lock(&l->prep_mu);
        if (rc) l->prep_err = rc;
        pthread_cond_broadcast(&l->prep_cv);
    }
    pthread_mutex_unlock(&l->prep_mu);
    return NULL;
}

int log_prep_start(flog *l)
{
    if (l->read_only || l->prep_running) return 0;
    l->prep_stop = 0;
    l->prep_want = l->tail_lo / l->seg_size; /* the next one when this is half full */
    l->prep_asked = l->prep_want;
    int rc = pthread_create(&l->prep_thread, NULL, prep_main, l);
    if (rc) return -rc;
    l->prep_running = 1;
    return 0;
}

void log_prep_stop(flog *l)
{
    if (!l->prep_running) return;
    pthread_mutex_lock(&l->prep_mu);
    l->prep_stop = 1;
    pthread_cond_broadcast(&l->prep_cv);
    pthread_mutex_unlock(&l->prep_mu);
    pthread_join(l->prep_thread, NULL);
    l->prep_running = 0;
}

/* Make sure segment `no` exists; ask for `no + 1` to be prepared ahead. */
static int ensure_segment(flog *l, uint64_t no)
{
    if (no >= LOG_MAX_SEGMENTS - 1) return -ENOSPC;
    if (!l->prep_running) {
        int rc = 0;
        if (atomic_load(&l->n_segs) <= no) {
            rc = seg_create(l, no);
            if (!rc) rc = log_seg_attach(l, no, LOG_LOCAL);
        }
        return rc;
    }
    if (atomic_load_explicit(&l->n_segs, memory_order_acquire) > no) return 0;
    pthread_mutex_lock(&l->prep_mu);
    if (l->prep_want < no + 1) {
        l->prep_want = no + 1;
        pthread_cond_broadcast(&l->prep_cv);
    }
    while (atomic_load(&l->n_segs) <= no && !l->prep_err)
        pthread_cond_wait(&l->prep_cv, &l->prep_mu);
    int rc = atomic_load(&l->n_segs) > no ? 0 : l->prep_err;
    pthread_mutex_unlock(&l->prep_mu);
    return rc;
}

/* ---- writing -------------------------------------------------------- */

int log_reserve(flog *l, uint64_t len, uint64_t *lo)
{
    if (len > l->seg_size - LOG_SEG_HEADER) return FACTUM_ETOOBIG;
    uint64_t no = l->tail_lo / l->seg_size, off = l->tail_lo % l->seg_size;
    if (off < LOG_SEG_HEADER) off = LOG_SEG_HEADER;
    if (off + len > l->seg_size) {
        no++;
        off = LOG_SEG_HEADER;
    }
    int rc = ensure_segment(l, no);
    if (rc) return rc;
    *lo = no * l->seg_size + off;
    return 0;
}

void log_seal(flog *l)
{
    if (l->tail_lo % l->seg_size > LOG_SEG_HEADER) l->tail_lo = (l->tail_lo / l->seg_size + 1) * l->seg_size;
}

int log_write(flog *l, uint64_t lo, const void *buf, size_t len)
{
    uint64_t no = lo / l->seg_size;
    log_seg *s = log_seg_get(l, no);
    if (!s) return -EIO;
    if (no < l->unsynced_from) l->unsynced_from = no;
    int fd = log_seg_fd(l, s);
    if (fd < 0) return fd;
    int rc = io_write_full(l->io, fd, buf, len, (off_t)(lo % l->seg_size));
    if (rc) return rc;
    l->tail_lo = lo + len;
    if (l->prep_running && l->prep_asked <= no && (lo + len) % l->seg_size > l->seg_size / 2) {
        /* Half full: have the next segment made while this one fills. */
        l->prep_asked = no + 1;
        pthread_mutex_lock(&l->prep_mu);
        if (l->prep_want < no + 1) l->prep_want = no + 1;
        pthread_cond_broadcast(&l->prep_cv);
        pthread_mutex_unlock(&l->prep_mu);
    }
    return 0;
}

/* synced_lo = max(synced_lo, lo). */
static void raise_synced(flog *l, uint64_t lo)
{
    uint64_t cur = atomic_load(&l->synced_lo);
    while (cur < lo && !atomic_compare_exchange_weak(&l->synced_lo, &cur, lo)) {
    }
}

int log_sync(flog *l)
{
    if (l->unsynced_from == UINT64_MAX) return 0;
    uint64_t upto = l->tail_lo;
    uint64_t last = l->tail_lo / l->seg_size;
    for (uint64_t no = l->unsynced_from; no <= last; no++) {
        log_seg *s = log_seg_get(l, no);
        if (!s) continue;
        int fd = log_seg_fd(l, s);
        int rc = fd < 0 ? fd : l->io->fdatasync(l->io, fd);
        if (rc) return rc;
    }
    l->unsynced_from = UINT64_MAX;
    raise_synced(l, upto);
    close_fds_below(l, last); /* sealed and synced: never written again */
    return 0;
}

void log_sync_fds(flog *l, int *fds, size_t cap, size_t *n, uint64_t *upto)
{
    *n = 0;
    *upto = l->tail_lo;
    if (l->unsynced_from == UINT64_MAX) return;
    uint64_t last = l->tail_lo / l->seg_size;
    for (uint64_t no = l->unsynced_from; no <= last; no++) {
        log_seg *s = log_seg_get(l, no);
        if (!s) continue;
        if (*n < cap) fds[*n] = log_seg_fd(l, s);
        (*n)++;
    }
}

void log_sync_done(flog *l, uint64_t upto)
{
    if (l->tail_lo == upto) l->unsynced_from = UINT64_MAX;
    raise_synced(l, upto);
    if (l->unsynced_from == UINT64_MAX) close_fds_below(l, l->tail_lo / l->seg_size);
}

int log_sync_upto(flog *l, uint64_t lo)
{
    uint64_t from = atomic_load(&l->synced_lo);
    if (lo <= from) return 0;
    /* The bytes in [from, lo) lie in these segments, all of them written
     * (and so attached) before lo was handed to us. */
    uint64_t n = atomic_load_explicit(&l->n_segs, memory_order_acquire);
    int rc = 0;
    /* seg_mu held: the writer may not close a descriptor this uses. */
    pthread_mutex_lock(&l->seg_mu);
    for (uint64_t no = from / l->seg_size; no <= (lo - 1) / l->seg_size && !rc; no++) {
        log_seg *s = no < n ? log_seg_get(l, no) : NULL;
        if (!s) {
            rc = -EIO;
            break;
        }
        int fd = seg_fd_locked(l, s); /* closed again by the writer's next sync */
        rc = fd < 0 ? fd : l->io->fdatasync(l->io, fd);
    }
    pthread_mutex_unlock(&l->seg_mu);
    if (!rc) raise_synced(l, lo);
    return rc;
}

void log_release(flog *l, uint64_t from_lo, uint64_t to_lo)
{
    uint64_t n = atomic_load_explicit(&l->n_segs, memory_order_acquire);
    for (uint64_t no = from_lo / l->seg_size; no < n && no * l->seg_size < to_lo; no++) {
        log_seg *s = log_seg_get(l, no);
        if (!s) continue;
        uint64_t a = no == from_lo / l->seg_size ? from_lo % l->seg_size : 0;
        uint64_t b = (no + 1) * l->seg_size <= to_lo ? l->seg_size : to_lo % l->seg_size;
        if (s->gen) { /* compacted: its offsets are not logical ones; release all of it */
            a = 0;
            b = s->map_len;
        }
        a = a / 4096 * 4096;
        if (b > a) madvise(s->map + a, b - a, MADV_DONTNEED);
    }
}

/* What a compacted generation answers past its data: zero bytes (the
 * segment's end, LOG-5). */
static const uint8_t gen_zeros[64];

static const uint8_t *gen_ptr(const log_seg *s, uint64_t off, uint64_t *avail)
{
    if (off >= s->logical_end) {
        if (avail) *avail = sizeof gen_zeros;
        return gen_zeros;
    }
    int64_t i = gen_floor(s, off);
    if (i < 0) return NULL;
    uint32_t nw = ent_new(s, (uint64_t)i);
    const uint8_t *p = s->map + nw;
    /* The frame there, or a removed frame standing for the event at off. */
    if (ent_old(s, (uint64_t)i) != off && p[8] != LOG_FRAME_REMOVED) return NULL;
    if (avail) *avail = s->body_end - nw;
    return p;
}

const uint8_t *log_ptr(flog *l, uint64_t lo, uint64_t *avail)
{
    uint64_t no = lo / l->seg_size;
    if (no >= atomic_load_explicit(&l->n_segs, memory_order_acquire)) return NULL;
    log_seg *s = log_seg_get(l, no);
    if (!s) return NULL;
    uint64_t off = lo % l->seg_size;
    if (s->gen) return gen_ptr(s, off, avail);
    if (avail) *avail = l->seg_size - off;
    return s->map + off;
}

uint64_t log_next_lo(flog *l, uint64_t lo, uint32_t len)
{
    uint64_t no = lo / l->seg_size;
    log_seg *s = no < atomic_load_explicit(&l->n_segs, memory_order_acquire) ? log_seg_get(l, no) : NULL;
    if (!s || !s->gen) return lo + len;
    uint64_t base = no * l->seg_size, off = lo - base;
    int64_t i = gen_floor(s, off);
    if ((uint64_t)(i + 1) < s->n_ent) return base + ent_old(s, (uint64_t)(i + 1));
    return base + (off < s->logical_end ? s->logical_end : off + len);
}

uint64_t log_frame_lo(flog *l, uint64_t lo)
{
    uint64_t no = lo / l->seg_size;
    log_seg *s = no < atomic_load_explicit(&l->n_segs, memory_order_acquire) ? log_seg_get(l, no) : NULL;
    if (!s || !s->gen || lo % l->seg_size >= s->logical_end) return lo;
    int64_t i = gen_floor(s, lo % l->seg_size);
    return i < 0 ? lo : no * l->seg_size + ent_old(s, (uint64_t)i);
}

int log_prev_lo(flog *l, uint64_t end, uint64_t *prev)
{
    if (!end) return FACTUM_ENOTFOUND;
    /* A frame may end at its segment's very end: end is then the next one's
     * offset 0, and the frame is in the segment of end - 1. */
    uint64_t no = (end - 1) / l->seg_size, base = no * l->seg_size, off = end - base;
    log_seg *s = no < atomic_load_explicit(&l->n_segs, memory_order_acquire) ? log_seg_get(l, no) : NULL;
    if (!s) return FACTUM_ECORRUPT;
    if (off <= LOG_SEG_HEADER) return FACTUM_ENOTFOUND;
    if (s->gen) {
        int64_t i = gen_floor(s, off - 1);
        if (i < 0) return FACTUM_ENOTFOUND;
        *prev = base + ent_old(s, (uint64_t)i);
        return 0;
    }
    if (off < LOG_SEG_HEADER + 8) return FACTUM_ECORRUPT;
    uint32_t plen = base_get32(s->map + off - 4);
    if (plen < LOG_BATCH_FRAME_LEN || (plen & 7) || plen > off - LOG_SEG_HEADER) return FACTUM_ECORRUPT;
    *prev = end - plen;
    return 0;
}

void log_set_tail(flog *l, uint64_t end_lo)
{
    l->tail_lo = end_lo;
}

/* ---- recovery scan -------------------------------------------------- */

/* Offset just after the last non-zero byte of [p, p+len), or 0. */
static uint64_t nonzero_end(const uint8_t *p, uint64_t len)
{
    uint64_t i = len;
    while (i >= 8) {
        uint64_t w;
        memcpy(&w, p + i - 8, 8);
        if (w) break;
        i -= 8;
    }
    while (i > 0 && p[i - 1] == 0)
        i--;
    return i;
}

int log_seg_chained(flog *l, uint64_t lo)
{
    uint64_t no = lo / l->seg_size;
    log_seg *sg = no < atomic_load(&l->n_segs) ? log_seg_get(l, no) : NULL;
    return sg && sg->format >= LOG_CHAIN_FORMAT;
}

/* The batch frame at p is of the kind its segment holds (LOG-7). */
static int batch_kind_ok(flog *l, uint64_t lo, const log_batch_hdr *bh)
{
    return (bh->frame_len == LOG_BATCH_CHAIN_LEN) == (log_seg_chained(l, lo) != 0);
}

/* Validate the batch at lo. Returns its total (logical) length (> 0), 0
 * for zero bytes, or FACTUM_ECORRUPT; with fn, reports its events, each
 * position of a removed frame (LOG-8) as a blank event with
 * LOG_EV_REMOVED. */
static int64_t check_batch(flog *l, uint64_t lo, uint64_t expect_pos, log_event_fn fn, void *ctx,
                           log_batch_hdr *bh, int *cb_rc)
{
    uint64_t avail;
    const uint8_t *p = log_ptr(l, lo, &avail);
    if (!p) return 0;
    int type;
    int rc = log_decode_frame(p, avail, &type, NULL, bh, NULL);
    if (rc <= 0) return rc;
    uint64_t hdr = bh->frame_len, in_seg = lo % l->seg_size;
    if (type != LOG_FRAME_BATCH || !batch_kind_ok(l, lo, bh) || bh->first_position != expect_pos ||
        bh->body_len > l->seg_size - in_seg - hdr)
        return FACTUM_ECORRUPT;
    const log_seg *sg = log_seg_get(l, lo / l->seg_size);
    int compacted = sg && sg->gen;
    uint64_t end = lo + hdr + bh->body_len, last = expect_pos + bh->n_events;
    /* Validate the whole batch first; only then report its events (LOG-3). */
    for (int pass = 0; pass < (fn ? 2 : 1); pass++) {
        uint64_t flo = log_next_lo(l, lo, (uint32_t)hdr), pos = expect_pos;
        while (pos < last) {
            uint64_t qa;
            const uint8_t *q = flo < end ? log_ptr(l, flo, &qa) : NULL;
            if (!q) return FACTUM_ECORRUPT;
            if (!compacted && qa > end - flo) qa = end - flo; /* a frame may not cross its batch's end */
            factum_event ev;
            uint32_t ff;
            int n = log_decode_frame(q, qa, &type, &ev, NULL, &ff);
            if (n <= 0) return FACTUM_ECORRUPT;
            if (type == LOG_FRAME_REMOVED) {
                log_removed r;
                log_removed_get(q, &r);
                if (!compacted || r.first_position != pos || r.count > last - pos) return FACTUM_ECORRUPT;
                for (uint32_t k = 0; pass && k < r.count; k++) {
                    factum_event blank;
                    memset(&blank, 0, sizeof blank);
                    blank.stream = "";
                    blank.type = "";
                    blank.position = pos + k;
                    int cr = fn(ctx, &blank, flo, LOG_EV_REMOVED);
                    if (cr) {
                        *cb_rc = cr;
                        return FACTUM_ECORRUPT;
                    }
                }
                pos += r.count;
            } else {
                if (type != LOG_FRAME_EVENT || ev.position != pos || (!compacted && (ff & LOG_EV_STUB)))
                    return FACTUM_ECORRUPT;
                if (pass) {
                    int cr = fn(ctx, &ev, flo, ff);
                    if (cr) {
                        *cb_rc = cr;
                        return FACTUM_ECORRUPT;
                    }
                }
                pos++;
            }
            flo = log_next_lo(l, flo, (uint32_t)n);
        }
        if (flo != end) return FACTUM_ECORRUPT;
    }
    return (int64_t)(end - lo);
}

/* The first valid batch frame at an 8-aligned offset in (from, end of from's
 * segment), durable ones only if asked. 1 and *lo / *bh, else 0. */
static int batch_in_segment(flog *l, uint64_t from, int durable_only, uint64_t *lo, log_batch_hdr *bh)
{
    uint64_t start = base_align_up(from + 1, 8);
    uint64_t avail;
    const log_seg *sg = log_seg_get(l, from / l->seg_size);
    if (sg && sg->gen) { /* compacted: its frames are the map's (LOG-8) */
        uint64_t base = from / l->seg_size * l->seg_size;
        int64_t i = from % l->seg_size < LOG_SEG_HEADER ? 0 : gen_floor(sg, from % l->seg_size) + 1;
        for (; (uint64_t)i < sg->n_ent; i++) {
            uint64_t flo = base + ent_old(sg, (uint64_t)i);
            const uint8_t *q = log_ptr(l, flo, &avail);
            int type;
            if (q && log_decode_frame(q, avail, &type, NULL, bh, NULL) > 0 && type == LOG_FRAME_BATCH &&
                batch_kind_ok(l, flo, bh) && (!durable_only || (bh->flags & LOG_BATCH_DURABLE))) {
                *lo = flo;
                return 1;
            }
        }
        return 0;
    }
    const uint8_t *p = start / l->seg_size == from / l->seg_size ? log_ptr(l, start, &avail) : NULL;
    for (uint64_t off = 0; p && off + LOG_BATCH_FRAME_LEN <= avail; off += 8) {
        uint32_t len = base_get32(p + off);
        if ((len != LOG_BATCH_FRAME_LEN && len != LOG_BATCH_CHAIN_LEN) || p[off + 8] != LOG_FRAME_BATCH) continue;
        int type;
        if (log_decode_frame(p + off, avail - off, &type, NULL, bh, NULL) == (int)len &&
            batch_kind_ok(l, start + off, bh) && (!durable_only || (bh->flags & LOG_BATCH_DURABLE))) {
            *lo = start + off;
            return 1;
        }
    }
    return 0;
}

int log_batch_of(flog *l, uint64_t event_lo, uint64_t *batch_lo, log_batch_hdr *bh)
{
    uint64_t lo = event_lo;
    /* A removed event's old offset is inside its removed frame: start there. */
    uint64_t avail;
    const uint8_t *p = log_ptr(l, lo, &avail);
    if (p) {
        uint64_t no = lo / l->seg_size;
        const log_seg *sg = log_seg_get(l, no);
        if (sg && sg->gen && p[8] == LOG_FRAME_REMOVED) {
            int64_t i = gen_floor(sg, lo % l->seg_size);
            if (i >= 0) lo = no * l->seg_size + ent_old(sg, (uint64_t)i);
        }
    }
    for (int steps = 0; steps < (1 << 24); steps++) {
        uint64_t prev;
        if (log_prev_lo(l, lo, &prev)) break;
        p = log_ptr(l, prev, &avail);
        int type;
        factum_event ev;
        int n = p ? log_decode_frame(p, avail, &type, &ev, bh, NULL) : -1;
        if (n <= 0) break;
        lo = prev;
        if (type == LOG_FRAME_BATCH) {
            if (!batch_kind_ok(l, lo, bh) || lo + bh->frame_len + bh->body_len <= event_lo) break;
            *batch_lo = lo;
            return 0;
        }
    }
    return FACTUM_ECORRUPT;
}

int log_chain_resume(flog *l, uint64_t batch_lo)
{
    int rc = log_chain_genesis_of(l->store_uuid, l->chain);
    if (rc) return rc;
    l->chain_pos = 0;
    if (!batch_lo) return 0;
    uint64_t avail;
    const uint8_t *p = log_ptr(l, batch_lo, &avail);
    log_batch_hdr bh;
    int type;
    if (!p || log_decode_frame(p, avail, &type, NULL, &bh, NULL) <= 0 || type != LOG_FRAME_BATCH)
        return FACTUM_ECORRUPT;
    if (bh.frame_len == LOG_BATCH_CHAIN_LEN) {
        memcpy(l->chain, bh.chain, LOG_HASH_LEN);
        l->chain_pos = bh.first_position + bh.n_events - 1;
    }
    return 0;
}

/* Is there a valid durable batch frame anywhere after `from` in its segment,
 * or any data in a later segment? (LOG-4) */
static int valid_after(flog *l, uint64_t from, uint64_t *where)
{
    log_batch_hdr bh;
    if (batch_in_segment(l, from, 1, where, &bh)) return 1;
    uint64_t n = atomic_load(&l->n_segs);
    for (uint64_t s = from / l->seg_size + 1; s < n; s++) {
        if (seg_has_data(l, s)) {
            *where = s * l->seg_size + LOG_SEG_HEADER;
            return 1;
        }
    }
    return 0;
}

int log_scan(flog *l, uint64_t from_lo, uint64_t from_position, log_event_fn fn, log_batch_fn bfn, void *ctx,
             log_scan_result *res)
{
    memset(res, 0, sizeof *res);
    uint64_t lo = from_lo, pos = from_position;
    uint64_t nsegs = atomic_load(&l->n_segs);
    while (nsegs) {
        if (lo % l->seg_size < LOG_SEG_HEADER) lo = lo / l->seg_size * l->seg_size + LOG_SEG_HEADER;
        uint64_t no = lo / l->seg_size;
        if (no >= nsegs) break;
        log_batch_hdr bh;
        int cb_rc = 0;
        int64_t n = check_batch(l, lo, pos, fn, ctx, &bh, &cb_rc);
        if (cb_rc) return cb_rc;
        if (n > 0) {
            res->last_batch_lo = lo;
            res->batches++;
            res->events += bh.n_events;
            pos += bh.n_events;
            lo += (uint64_t)n;
            if (bfn && (cb_rc = bfn(ctx, lo, pos))) return cb_rc;
            continue;
        }
        uint64_t avail = 0;
        const uint8_t *p = log_ptr(l, lo, &avail);
        if (n == 0) {
            /* Zero bytes: the end of this segment's data. The rest of the
             * segment must be zero too (LOG-5). */
            uint64_t nz = nonzero_end(p, avail);
            if (nz == 0) {
                if (no + 1 < nsegs && seg_has_data(l, no + 1)) {
                    lo = log_next_seg_lo(l, lo);
                    continue;
                }
                break; /* the end of the log */
            }
            /* Non-zero bytes after a hole. */
        }
        uint64_t where = 0;
        if (valid_after(l, lo, &where)) {
            res->corrupt = 1;
            res->corrupt_lo = lo;
            snprintf(res->what, sizeof res->what,
                     "damaged batch at segment %" PRIu64 " offset %" PRIu64
                     " followed by valid data at segment %" PRIu64 " offset %" PRIu64,
                     no, lo % l->seg_size, where / l->seg_size, where % l->seg_size);
            break;
        }
        res->torn = 1;
        res->torn_bytes = nonzero_end(p, avail);
        break;
    }
    res->end_lo = lo;
    res->next_position = pos;
    return 0;
}

int log_cut_tail(flog *l, uint64_t end_lo)
{
    uint64_t avail;
    const uint8_t *p = log_ptr(l, end_lo, &avail);
    if (!p) return -EIO;
    uint64_t nz = nonzero_end(p, avail);
    log_seg *s = log_seg_get(l, end_lo / l->seg_size);
    uint8_t zeros[65536] = {0};
    for (uint64_t off = 0; off < nz;) {
        size_t n = nz - off < sizeof zeros ? (size_t)(nz - off) : sizeof zeros;
        int fd = log_seg_fd(l, s);
        int rc = fd < 0 ? fd : io_write_full(l->io, fd, zeros, n, (off_t)(end_lo % l->seg_size + off));
        if (rc) return rc;
        off += n;
    }
    int fd = log_seg_fd(l, s);
    int rc = fd < 0 ? fd : l->io->fdatasync(l->io, fd);
    if (rc) return rc;
    l->tail_lo = end_lo;
    return 0;
}

int log_find_batch(flog *l, uint64_t from, uint64_t *lo, uint64_t *first_position)
{
    uint64_t n = atomic_load(&l->n_segs);
    log_batch_hdr bh;
    for (uint64_t no = from / l->seg_size; no < n; no++) {
        /* In later segments, search from just before their first frame. */
        uint64_t start = no == from / l->seg_size ? from : no * l->seg_size + LOG_SEG_HEADER - 8;
        if (batch_in_segment(l, start, 0, lo, &bh)) {
            *first_position = bh.first_position;
            return 1;
        }
    }
    return 0;
}
