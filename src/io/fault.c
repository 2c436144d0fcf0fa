/*
 * fault.c - a fault-injecting io_env for tests. It forwards to the real
 * system but can fail the n-th write or fdatasync, return short writes, and
 * simulate power loss: every write remembers the bytes it overwrote until
 * the file is fdatasync'd, so io_fault_power_loss() can put them back (or
 * keep a torn part of them), exactly what a machine losing power may leave.
 * Directory operations (rename, unlink) are treated as durable at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAULT_MAX_FDS 4096

typedef struct pending {
    struct pending *next;
    char *path;
    off_t off;
    size_t len;
    uint64_t old_size; /* file size before this write */
    uint8_t *old;      /* old bytes of [off, min(off+len, old_size)) */
    size_t old_len;
} pending;

struct io_fault {
    io_env env; /* first member: io_env* casts back to io_fault* */
    pthread_mutex_t mu;
    char *paths[FAULT_MAX_FDS];
    pending *head; /* newest first */
    uint64_t writes, fsyncs;
    uint64_t fail_write_at, fail_fsync_at;
    int write_err, fsync_err, partial;
    int short_writes;
    char *target;
    uint64_t rng;
};

static uint64_t frand(io_fault *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

static int targeted(io_fault *f, int fd)
{
    if (!f->target) return 1;
    return fd >= 0 && fd < FAULT_MAX_FDS && f->paths[fd] && strstr(f->paths[fd], f->target);
}

static int ft_open(io_env *e, const char *path, int flags, int mode)
{
    io_fault *f = (io_fault *)e;
    int fd = io_posix()->open(io_posix(), path, flags, mode);
    if (fd >= 0 && fd < FAULT_MAX_FDS) {
        pthread_mutex_lock(&f->mu);
        free(f->paths[fd]);
        f->paths[fd] = strdup(path);
        pthread_mutex_unlock(&f->mu);
    }
    return fd;
}

static int ft_close(io_env *e, int fd)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    if (fd >= 0 && fd < FAULT_MAX_FDS) {
        free(f->paths[fd]);
        f->paths[fd] = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    return io_posix()->close(io_posix(), fd);
}

static ssize_t ft_pread(io_env *e, int fd, void *buf, size_t len, off_t off)
{
    (void)e;
    return io_posix()->pread(io_posix(), fd, buf, len, off);
}

/* Remember what [off, off+len) held before this write. Called locked. */
static int remember(io_fault *f, int fd, off_t off, size_t len)
{
    if (fd < 0 || fd >= FAULT_MAX_FDS || !f->paths[fd]) return 0;
    uint64_t size;
    if (io_file_size(fd, &size)) return 0;
    pending *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->path = strdup(f->paths[fd]);
    p->off = off;
    p->len = len;
    p->old_size = size;
    if ((uint64_t)off < size) {
        p->old_len = (size_t)((uint64_t)off + len <= size ? len : size - (uint64_t)off);
        p->old = malloc(p->old_len ? p->old_len : 1);
        if (!p->path || !p->old || io_read_full(io_posix(), fd, p->old, p->old_len, off)) {
            free(p->old);
            free(p->path);
            free(p);
            return -ENOMEM;
        }
    }
    p->next = f->head;
    f->head = p;
    return 0;
}

static ssize_t ft_pwrite(io_env *e, int fd, const void *buf, size_t len, off_t off)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    int tgt = targeted(f, fd);
    if (tgt) f->writes++;
    if (tgt && f->fail_write_at && f->writes == f->fail_write_at) {
        int err = f->write_err;
        f->fail_write_at = 0;
        ssize_t rc = err;
        if (f->partial && len > 1) {
            size_t part = 1 + (size_t)(frand(f) % (len - 1));
            remember(f, fd, off, part);
            io_posix()->pwrite(io_posix(), fd, buf, part, off);
        }
        pthread_mutex_unlock(&f->mu);
        return rc;
    }
    if (f->short_writes && len > 1 && frand(f) % 3 == 0) len = 1 + (size_t)(frand(f) % (len - 1));
    int rc = remember(f, fd, off, len);
    pthread_mutex_unlock(&f->mu);
    if (rc) return rc;
    return io_posix()->pwrite(io_posix(), fd, buf, len, off);
}

static void drop_pending(io_fault *f, const char *path)
{
    pending **pp = &f->head;
    while (*pp) {
        pending *p = *pp;
        if (strcmp(p->path, path) == 0) {
            *pp = p->next;
            free(p->old);
            free(p->path);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

static int ft_fdatasync(io_env *e, int fd)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    int tgt = targeted(f, fd);
    if (tgt) f->fsyncs++;
    if (tgt && f->fail_fsync_at && f->fsyncs == f->fail_fsync_at) {
        f->fail_fsync_at = 0;
        int err = f->fsync_err;
        /* Like Linux after a failed fsync: the dirty pages may or may not
         * have reached the disk; we keep them pending (lost on power loss). */
        pthread_mutex_unlock(&f->mu);
        return err;
    }
    int rc = io_posix()->fdatasync(io_posix(), fd);
    if (!rc && fd >= 0 && fd < FAULT_MAX_FDS && f->paths[fd]) drop_pending(f, f->paths[fd]);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int ft_ftruncate(io_env *e, int fd, off_t len)
{
    (void)e;
    return io_posix()->ftruncate(io_posix(), fd, len);
}

static void rename_pending(io_fault *f, const char *from, const char *to)
{
    for (pending *p = f->head; p; p = p->next) {
        if (strcmp(p->path, from) == 0) {
            char *n = strdup(to);
            if (n) {
                free(p->path);
                p->path = n;
            }
        }
    }
    for (int i = 0; i < FAULT_MAX_FDS; i++) {
        if (f->paths[i] && strcmp(f->paths[i], from) == 0) {
            char *n = strdup(to);
            if (n) {
                free(f->paths[i]);
                f->paths[i] = n;
            }
        }
    }
}

static int ft_rename(io_env *e, const char *from, const char *to)
{
    io_fault *f = (io_fault *)e;
    int rc = io_posix()->rename(io_posix(), from, to);
    if (!rc) {
        pthread_mutex_lock(&f->mu);
        drop_pending(f, to);
        rename_pending(f, from, to);
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
}

static int ft_unlink(io_env *e, const char *path)
{
    io_fault *f = (io_fault *)e;
    int rc = io_posix()->unlink(io_posix(), path);
    if (!rc) {
        pthread_mutex_lock(&f->mu);
        drop_pending(f, path);
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
}

static int ft_fsync_dir(io_env *e, const char *dir)
{
    (void)e;
    return io_posix()->fsync_dir(io_posix(), dir);
}

static void *ft_map(io_env *e, int fd, size_t len, int *err)
{
    (void)e;
    return io_posix()->map(io_posix(), fd, len, err);
}

static void ft_unmap(io_env *e, void *addr, size_t len)
{
    (void)e;
    io_posix()->unmap(io_posix(), addr, len);
}

io_fault *io_fault_new(uint64_t seed)
{
    io_fault *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->env = (io_env){ft_open,   ft_close,  ft_pread,     ft_pwrite, ft_fdatasync, ft_ftruncate,
                      ft_rename, ft_unlink, ft_fsync_dir, ft_map,    ft_unmap};
    pthread_mutex_init(&f->mu, NULL);
    f->rng = seed ? seed : 0x853c49e6748fea9bull;
    return f;
}

void io_fault_free(io_fault *f)
{
    if (!f) return;
    while (f->head) {
        pending *p = f->head;
        f->head = p->next;
        free(p->old);
        free(p->path);
        free(p);
    }
    for (int i = 0; i < FAULT_MAX_FDS; i++)
        free(f->paths[i]);
    free(f->target);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

io_env *io_fault_env(io_fault *f)
{
    return &f->env;
}

void io_fault_fail_write(io_fault *f, uint64_t nth, int err, int partial_before_fail)
{
    pthread_mutex_lock(&f->mu);
    f->fail_write_at = nth ? f->writes + nth : 0;
    f->write_err = err;
    f->partial = partial_before_fail;
    pthread_mutex_unlock(&f->mu);
}

void io_fault_fail_fsync(io_fault *f, uint64_t nth, int err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_fsync_at = nth ? f->fsyncs + nth : 0;
    f->fsync_err = err;
    pthread_mutex_unlock(&f->mu);
}

void io_fault_short_writes(io_fault *f, int on)
{
    pthread_mutex_lock(&f->mu);
    f->short_writes = on;
    pthread_mutex_unlock(&f->mu);
}

void io_fault_target(io_fault *f, const char *substr)
{
    pthread_mutex_lock(&f->mu);
    free(f->target);
    f->target = substr ? strdup(substr) : NULL;
    pthread_mutex_unlock(&f->mu);
}

uint64_t io_fault_writes(io_fault *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->writes;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t io_fault_fsyncs(io_fault *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->fsyncs;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int io_fault_power_loss(io_fault *f, int mode)
{
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    pending *last = f->head; /* the newest write overall */
    while (f->head) {
        pending *p = f->head;
        f->head = p->next;
        int fd = open(p->path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            /* Decide which 512-byte sectors of this write survive. */
            size_t nsec = (p->len + 511) / 512;
            size_t keep_prefix = 0;
            if (mode == IO_TEAR_LAST && p == last) keep_prefix = (size_t)(frand(f) % (nsec + 1));
            uint64_t kept_end = 0;
            for (size_t s = 0; s < nsec; s++) {
                size_t a = s * 512, b = a + 512 < p->len ? a + 512 : p->len;
                int keep = (mode == IO_TEAR_LAST && p == last && s < keep_prefix) ||
                           (mode == IO_TEAR_RANDOM && (frand(f) & 1));
                if (keep) {
                    if ((uint64_t)p->off + b > kept_end) kept_end = (uint64_t)p->off + b;
                    continue;
                }
                /* Restore old bytes where they existed, zeros beyond old EOF. */
                for (size_t x = a; x < b;) {
                    size_t chunk = b - x;
                    if (x < p->old_len) {
                        if (chunk > p->old_len - x) chunk = p->old_len - x;
                        if (pwrite(fd, p->old + x, chunk, p->off + (off_t)x) < 0) rc = -errno;
                    } else {
                        static const uint8_t zeros[512];
                        if (pwrite(fd, zeros, chunk, p->off + (off_t)x) < 0) rc = -errno;
                    }
                    x += chunk;
                }
            }
            uint64_t size;
            if (!io_file_size(fd, &size)) {
                uint64_t want = p->old_size > kept_end ? p->old_size : kept_end;
                if (size > want && ftruncate(fd, (off_t)want)) rc = -errno;
            }
            fsync(fd);
            close(fd);
        }
        free(p->old);
        free(p->path);
        free(p);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}
