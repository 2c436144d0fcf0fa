/*
 * archive.c - the log's side of the archive tier (LOG-9, ADR 0028): copying
 * a sealed segment's file to the archive directory, recognising a copy made
 * earlier, and serving a segment from its archived copy once the local file
 * goes.
 *
 * LOG-9. A file named NNNNNNNN.seg in the archive is always a whole,
 *        verified copy of one generation of segment NNNNNNNN: it is written
 *        as .seg.tmp, fdatasync'd, read back and compared, and only then
 *        renamed (and the directory fsync'd). A local file is unlinked only
 *        while the archive holds a copy with its size and header (the header
 *        names the store, the segment, its creation time and its
 *        generation). Opening the log takes the local file when there is
 *        one, else the archived one; a compacted generation of a segment the
 *        archive alone holds is written and swapped in the archive
 *        (compact.c), so that a scavenge reaches archived data too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define COPY_CHUNK (1u << 20)

/* Does the file at path have `size` bytes and the header `hdr`? 1, 0
 * (missing or different) or -errno. */
static int same_file(flog *l, const char *path, uint64_t size, const uint8_t *hdr)
{
    int fd = l->io->open(l->io, path, O_RDONLY, 0);
    if (fd == -ENOENT) return 0;
    if (fd < 0) return fd;
    uint64_t have = 0;
    uint8_t h[LOG_SEG_HEADER];
    int rc = io_file_size(fd, &have);
    if (!rc && have == size) rc = io_read_full(l->io, fd, h, sizeof h, 0);
    l->io->close(l->io, fd);
    if (rc) return rc == -EIO ? 0 : rc;
    return have == size && memcmp(h, hdr, sizeof h) == 0;
}

int log_archive_has(flog *l, uint64_t no)
{
    log_seg *s = log_seg_get(l, no);
    if (!s || !l->arch) return FACTUM_EINVAL;
    if (atomic_load(&s->archived)) return 1;
    char path[PATH_MAX];
    log_seg_path(l, LOG_ARCHIVE, no, "", path, sizeof path);
    int rc = same_file(l, path, s->map_len, s->map);
    if (rc == 1) atomic_store(&s->archived, 1);
    return rc;
}

/* Pace to bps bytes per second: `done` bytes since t0 (ns). */
static void pace(uint64_t bps, uint64_t t0, uint64_t done)
{
    if (!bps) return;
    uint64_t due = t0 + (uint64_t)((double)done * 1e9 / (double)bps), now = base_mono_ns();
    if (due <= now) return;
    struct timespec ts = {(time_t)((due - now) / 1000000000u), (long)((due - now) % 1000000000u)};
    nanosleep(&ts, NULL);
}

int log_archive_copy(flog *l, uint64_t no, uint64_t throttle_bps, uint64_t *bytes)
{
    log_seg *s = log_seg_get(l, no);
    if (!s || !l->arch || l->read_only) return FACTUM_EINVAL;
    if (atomic_load(&s->where) == LOG_ARCHIVE) return 0; /* the archive's own */
    /* Sealed and durable only: the bytes copied are the segment's last. */
    if ((no + 1) * l->seg_size > atomic_load(&l->synced_lo)) return FACTUM_EINVAL;
    int rc = io_ensure_dir(l->io, l->arch);
    if (rc) return rc;
    char tmp[PATH_MAX], path[PATH_MAX];
    log_seg_path(l, LOG_ARCHIVE, no, ".tmp", tmp, sizeof tmp);
    log_seg_path(l, LOG_ARCHIVE, no, "", path, sizeof path);
    uint8_t *buf = malloc(COPY_CHUNK);
    if (!buf) return -ENOMEM;
    int fd = l->io->open(l->io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(buf);
        return fd;
    }
    /* Written from the mapping (the file this process reads), CRC-32C on
     * the way out; read back once durable and compared. */
    uint32_t crc = 0, back = 0;
    uint64_t t0 = base_mono_ns(), done = 0; /* the throttle counts what is written and read back */
    for (uint64_t off = 0; off < s->map_len && !rc; off += COPY_CHUNK) {
        size_t n = s->map_len - off < COPY_CHUNK ? (size_t)(s->map_len - off) : COPY_CHUNK;
        crc = base_crc32c(crc, s->map + off, n);
        rc = io_write_full(l->io, fd, s->map + off, n, (off_t)off);
        if (!rc) sync_file_range(fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
        pace(throttle_bps, t0, done += n);
    }
    if (!rc) rc = l->io->fdatasync(l->io, fd);
    /* Read what the disk holds, not the pages just written. */
    if (!rc) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    for (uint64_t off = 0; off < s->map_len && !rc; off += COPY_CHUNK) {
        size_t n = s->map_len - off < COPY_CHUNK ? (size_t)(s->map_len - off) : COPY_CHUNK;
        if (!(rc = io_read_full(l->io, fd, buf, n, (off_t)off))) back = base_crc32c(back, buf, n);
        pace(throttle_bps, t0, done += n);
    }
    if (!rc && back != crc) rc = FACTUM_ECORRUPT;
    l->io->close(l->io, fd);
    free(buf);
    /* The pages of the local file this copy read are not needed now. */
    madvise(s->map, s->map_len, MADV_DONTNEED);
    if (!rc) rc = l->io->rename(l->io, tmp, path);
    if (!rc) rc = l->io->fsync_dir(l->io, l->arch);
    if (rc) {
        l->io->unlink(l->io, tmp);
        return rc;
    }
    atomic_store(&s->archived, 1);
    if (bytes) *bytes = s->map_len;
    return 0;
}

int log_archive_drop_local(flog *l, uint64_t no)
{
    log_seg *s = log_seg_get(l, no);
    if (!s || !l->arch || l->read_only) return FACTUM_EINVAL;
    if (atomic_load(&s->where) == LOG_ARCHIVE) return 0;
    char local[PATH_MAX], path[PATH_MAX];
    log_seg_path(l, LOG_LOCAL, no, "", local, sizeof local);
    log_seg_path(l, LOG_ARCHIVE, no, "", path, sizeof path);
    /* Checked again now, against the file itself: LOG-9. */
    int rc = same_file(l, path, s->map_len, s->map);
    if (rc <= 0) {
        atomic_store(&s->archived, 0);
        return rc ? rc : FACTUM_ENOTFOUND;
    }
    int fd = l->io->open(l->io, path, O_RDONLY, 0);
    if (fd < 0) return fd;
    pthread_mutex_lock(&l->seg_mu);
    /* The archived file over the same addresses: a reader between two loads
     * sees the same bytes from either file. */
    void *p = mmap(s->map, s->map_len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        /* MAP_FIXED may have dropped the old mapping: map the local file again. */
        int lfd = s->fd >= 0 ? s->fd : l->io->open(l->io, local, O_RDONLY, 0);
        if (lfd >= 0) {
            mmap(s->map, s->map_len, PROT_READ, MAP_SHARED | MAP_FIXED, lfd, 0);
            if (lfd != s->fd) l->io->close(l->io, lfd);
        }
        pthread_mutex_unlock(&l->seg_mu);
        l->io->close(l->io, fd);
        return rc;
    }
    if (s->fd >= 0) l->io->close(l->io, s->fd);
    s->fd = -1; /* sealed: never written again; log_seg_fd opens the archived file */
    atomic_store(&s->where, LOG_ARCHIVE);
    pthread_mutex_unlock(&l->seg_mu);
    l->io->close(l->io, fd);
    rc = l->io->unlink(l->io, local);
    if (rc == -ENOENT) rc = 0;
    if (!rc) rc = l->io->fsync_dir(l->io, l->dir);
    return rc;
}
