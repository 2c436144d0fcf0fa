/*
 * posix.c - the io_env of the real operating system, plus the helpers of
 * io.h that are written in terms of any env (full writes, atomic small files).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int px_open(io_env *e, const char *path, int flags, int mode)
{
    (void)e;
    int fd = open(path, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}
static int px_close(io_env *e, int fd)
{
    (void)e;
    return close(fd) ? -errno : 0;
}
static ssize_t px_pread(io_env *e, int fd, void *buf, size_t len, off_t off)
{
    (void)e;
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
static ssize_t px_pwrite(io_env *e, int fd, const void *buf, size_t len, off_t off)
{
    (void)e;
    ssize_t n;
    do
        n = pwrite(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
static int px_fdatasync(io_env *e, int fd)
{
    (void)e;
    return fdatasync(fd) ? -errno : 0;
}
static int px_ftruncate(io_env *e, int fd, off_t len)
{
    (void)e;
    return ftruncate(fd, len) ? -errno : 0;
}
static int px_rename(io_env *e, const char *from, const char *to)
{
    (void)e;
    return rename(from, to) ? -errno : 0;
}
static int px_unlink(io_env *e, const char *path)
{
    (void)e;
    return unlink(path) ? -errno : 0;
}
static int px_fsync_dir(io_env *e, const char *dir)
{
    (void)e;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}
static int px_mkdir(io_env *e, const char *path, int mode)
{
    (void)e;
    return mkdir(path, (mode_t)mode) ? -errno : 0;
}
static void *px_map(io_env *e, int fd, size_t len, int *err)
{
    (void)e;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    return p;
}
static void px_unmap(io_env *e, void *addr, size_t len)
{
    (void)e;
    munmap(addr, len);
}

static io_env posix_env = {px_open,   px_close,  px_pread,     px_pwrite, px_fdatasync, px_ftruncate,
                           px_rename, px_unlink, px_fsync_dir, px_mkdir,  px_map,       px_unmap};

io_env *io_posix(void)
{
    return &posix_env;
}

int io_write_full(io_env *e, int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = e->pwrite(e, fd, p, len, off);
        if (n < 0) return (int)n;
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int io_read_full(io_env *e, int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = e->pread(e, fd, p, len, off);
        if (n < 0) return (int)n;
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

int io_file_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st)) return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

int io_parent_dir(const char *path, char *buf, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    while (len > 0 && path[len - 1] != '/')
        len--;
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len == 0) return snprintf(buf, n, ".") >= (int)n ? -ENAMETOOLONG : 0;
    if (len >= n) return -ENAMETOOLONG;
    memcpy(buf, path, len);
    buf[len] = 0;
    return 0;
}

int io_ensure_dir(io_env *e, const char *path)
{
    char parent[PATH_MAX];
    int rc = e->mkdir(e, path, 0755);
    if (rc && rc != -EEXIST) return rc;
    if ((rc = io_parent_dir(path, parent, sizeof parent))) return rc;
    return e->fsync_dir(e, parent);
}

int io_write_file_atomic(io_env *e, const char *dir, const char *name, const void *buf, size_t len)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp) return -ENAMETOOLONG;
    if (snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst) return -ENAMETOOLONG;
    int fd = e->open(e, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fd;
    int rc = io_write_full(e, fd, buf, len, 0);
    if (!rc) rc = e->fdatasync(e, fd);
    e->close(e, fd);
    if (!rc) rc = e->rename(e, tmp, dst);
    if (!rc) rc = e->fsync_dir(e, dir);
    if (rc) e->unlink(e, tmp);
    return rc;
}

int io_read_file(io_env *e, const char *path, size_t max, uint8_t **out, size_t *len)
{
    int fd = e->open(e, path, O_RDONLY, 0);
    if (fd < 0) return fd;
    uint64_t size;
    int rc = io_file_size(fd, &size);
    if (rc) goto out;
    if (size > max) {
        rc = -EFBIG;
        goto out;
    }
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    rc = io_read_full(e, fd, buf, size, 0);
    if (rc) {
        free(buf);
        goto out;
    }
    buf[size] = 0;
    *out = buf;
    *len = size;
out:
    e->close(e, fd);
    return rc;
}
