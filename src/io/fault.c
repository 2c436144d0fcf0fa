/*
 * fault.c - a fault-injecting io_env for tests. It forwards to the real
 * system but can fail the n-th write or fdatasync, return short writes, and
 * simulate power loss: every write remembers the bytes it overwrote until
 * the file is fdatasync'd, so io_fault_power_loss() can put them back (or
 * keep a torn part of them), exactly what a machine losing power may leave.
 *
 * Directory entries are modelled too: a file created, a directory made or
 * a rename is remembered until fsync_dir of the directory holding the new
 * name; power loss undoes the ones still remembered, newest first (a
 * created name is removed, a rename goes back and the file it replaced
 * returns). Unlinks are taken as durable at once: the store only unlinks
 * what it no longer needs, so a name coming back could do no harm there.
 * Paths are compared as strings (trailing and doubled slashes removed), so
 * callers must name a directory the same way in fsync_dir as in the paths
 * below it, which the store does.
 *
 * Names made behind the env's back (a plain mkdir or open) cannot be
 * tracked one by one; io_fault_watch(dir) covers them: it records the
 * listing of every directory under dir, each fsync_dir through the env
 * records that directory's listing again, and power loss removes whatever
 * a directory holds beyond its last recorded listing (all of it for a
 * directory never listed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A directory entry not yet durable. */
typedef struct dentry {
    struct dentry *next;
    char *path;   /* the new name (normalised) */
    char *parent; /* the directory holding it */
    char *from;   /* rename: the old name; NULL: created */
    uint8_t *old; /* rename over an existing file: its bytes */
    size_t old_len;
    int had_old;
} dentry;

/* The names a watched directory held at its last fsync_dir (sorted). */
typedef struct dlist {
    struct dlist *next;
    char *dir;
    char **names;
    size_t n;
} dlist;

struct io_fault {
    io_env env; /* first member: io_env* casts back to io_fault* */
    pthread_mutex_t mu;
    char *paths[FAULT_MAX_FDS];
    pending *head;  /* newest first */
    dentry *dents;  /* newest first */
    char *watch;    /* io_fault_watch's directory (normalised), or NULL */
    dlist *lists;
    uint64_t writes, fsyncs;
    uint64_t fail_write_at, fail_fsync_at;
    int write_err, fsync_err, partial;
    int short_writes;
    char *target;
    uint64_t rng;
    /* io_fault_cut: operations that change files, counted; from the cut_at-th
     * on, the power is off (each fails with -EIO and changes nothing). */
    uint64_t ops, cut_at;
    int cut;
};

/* Is the power off for this changing operation (mu held)? */
static int cut_op(io_fault *f)
{
    if (f->cut) return 1;
    if (!f->cut_at) return 0;
    if (++f->ops >= f->cut_at) f->cut = 1;
    return f->cut;
}

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

/* ---- directory entries ---------------------------------------------- */

/* path without doubled or trailing slashes, malloc'd. */
static char *norm(const char *path)
{
    size_t n = strlen(path);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (path[i] == '/' && k > 0 && o[k - 1] == '/') continue;
        o[k++] = path[i];
    }
    while (k > 1 && o[k - 1] == '/')
        k--;
    o[k] = 0;
    return o;
}

/* Remember a new name (locked). A failure to remember only weakens the
 * simulation, so it is not reported. */
static void dent_add(io_fault *f, const char *path, const char *from)
{
    dentry *d = calloc(1, sizeof *d);
    char parent[PATH_MAX];
    if (!d || !(d->path = norm(path)) || io_parent_dir(d->path, parent, sizeof parent) ||
        !(d->parent = strdup(parent)) || (from && !(d->from = norm(from)))) {
        if (d) {
            free(d->path);
            free(d->parent);
            free(d);
        }
        return;
    }
    if (from) {
        /* A file the rename replaces comes back if the rename is undone. */
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            d->old = malloc(st.st_size ? (size_t)st.st_size : 1);
            if (fd >= 0 && d->old && io_read_full(io_posix(), fd, d->old, (size_t)st.st_size, 0) == 0) {
                d->old_len = (size_t)st.st_size;
                d->had_old = 1;
            }
            if (fd >= 0) close(fd);
        }
    }
    d->next = f->dents;
    f->dents = d;
}

static void dent_free(dentry *d)
{
    free(d->path);
    free(d->parent);
    free(d->from);
    free(d->old);
    free(d);
}

/* fsync_dir(dir): the names in dir are durable now (locked). */
static void dent_sync(io_fault *f, const char *dir)
{
    char *n = norm(dir);
    if (!n) return;
    for (dentry **pp = &f->dents; *pp;) {
        dentry *d = *pp;
        if (strcmp(d->parent, n) == 0) {
            *pp = d->next;
            dent_free(d);
        } else {
            pp = &d->next;
        }
    }
    free(n);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Undo one entry at power loss (locked). */
static int dent_undo(const dentry *d)
{
    struct stat st;
    if (!d->from) {
        if (lstat(d->path, &st) == 0 && nftw(d->path, rm_cb, 16, FTW_DEPTH | FTW_PHYS)) return -errno;
        return 0;
    }
    if (lstat(d->path, &st) == 0 && rename(d->path, d->from)) return -errno;
    if (d->had_old) {
        int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return -errno;
        int rc = io_write_full(io_posix(), fd, d->old, d->old_len, 0);
        if (!rc && fsync(fd)) rc = -errno;
        close(fd);
        return rc;
    }
    return 0;
}

/* ---- watched directories (names made behind the env's back) --------- */

static int under_watch(const io_fault *f, const char *n)
{
    size_t w = f->watch ? strlen(f->watch) : 0;
    return f->watch && strncmp(n, f->watch, w) == 0 && (n[w] == 0 || n[w] == '/');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dl_free(dlist *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    free(d->dir);
    free(d);
}

/* Record what directory n (normalised) holds now (locked). */
static int dl_record(io_fault *f, const char *n)
{
    dlist *d = calloc(1, sizeof *d);
    DIR *dd = d ? opendir(n) : NULL;
    int rc = dd && (d->dir = strdup(n)) ? 0 : -ENOMEM;
    size_t cap = 0;
    struct dirent *de;
    while (!rc && (de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (d->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(d->names, cap * sizeof *nn);
            if (!nn) {
                rc = -ENOMEM;
                break;
            }
            d->names = nn;
        }
        if (!(d->names[d->n] = strdup(de->d_name))) rc = -ENOMEM;
        else d->n++;
    }
    if (dd) closedir(dd);
    if (rc) {
        if (d) dl_free(d);
        return rc;
    }
    if (d->n) qsort(d->names, d->n, sizeof *d->names, cmp_str);
    for (dlist **pp = &f->lists; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->dir, n)) {
            dlist *old = *pp;
            d->next = old->next;
            *pp = d;
            dl_free(old);
            return 0;
        }
    d->next = f->lists;
    f->lists = d;
    return 0;
}

/* Record the listing of n and of every directory below it (locked). */
static int dl_record_tree(io_fault *f, const char *n)
{
    int rc = dl_record(f, n);
    DIR *dd = rc ? NULL : opendir(n);
    struct dirent *de;
    while (dd && !rc && (de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", n, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc = dl_record_tree(f, p);
    }
    if (dd) closedir(dd);
    return rc;
}

/* Power loss under the watch: remove what each directory holds beyond its
 * last recorded listing (locked). */
static int dl_prune(io_fault *f, const char *n)
{
    dlist *d = f->lists;
    while (d && strcmp(d->dir, n))
        d = d->next;
    DIR *dd = opendir(n);
    if (!dd) return 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", n, de->d_name);
        const char *key = de->d_name;
        struct stat st;
        if (!d || !d->n || !bsearch(&key, d->names, d->n, sizeof *d->names, cmp_str)) {
            if (nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS) && !rc) rc = -errno;
        } else if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            int r = dl_prune(f, p);
            if (r && !rc) rc = r;
        }
    }
    closedir(dd);
    return rc;
}

/* ---- the env -------------------------------------------------------- */

static int ft_open(io_env *e, const char *path, int flags, int mode)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    struct stat st;
    int created = (flags & O_CREAT) && lstat(path, &st) != 0;
    if ((created || (flags & O_TRUNC)) && cut_op(f)) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
    int fd = io_posix()->open(io_posix(), path, flags, mode);
    if (fd >= 0 && created) dent_add(f, path, NULL);
    if (fd >= 0 && fd < FAULT_MAX_FDS) {
        free(f->paths[fd]);
        f->paths[fd] = strdup(path);
    }
    pthread_mutex_unlock(&f->mu);
    return fd;
}

static int ft_mkdir(io_env *e, const char *path, int mode)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    if (cut_op(f)) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
    int rc = io_posix()->mkdir(io_posix(), path, mode);
    if (!rc) dent_add(f, path, NULL);
    pthread_mutex_unlock(&f->mu);
    return rc;
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
        int rc = !p->path || !p->old ? -ENOMEM : io_read_full(io_posix(), fd, p->old, p->old_len, off);
        if (rc) { /* (a descriptor opened write-only cannot be read: EBADF) */
            free(p->old);
            free(p->path);
            free(p);
            return rc;
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
    if (cut_op(f)) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
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
    if (cut_op(f)) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
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
    pthread_mutex_lock(&f->mu);
    if (cut_op(f)) {
        pthread_mutex_unlock(&f->mu);
        return -EIO;
    }
    dent_add(f, to, from); /* before: it saves what `to` held */
    int rc = io_posix()->rename(io_posix(), from, to);
    if (!rc) {
        drop_pending(f, to);
        rename_pending(f, from, to);
    } else {
        dentry *d = f->dents;
        f->dents = d->next;
        dent_free(d);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int ft_unlink(io_env *e, const char *path)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    int off = cut_op(f);
    pthread_mutex_unlock(&f->mu);
    if (off) return -EIO;
    int rc = io_posix()->unlink(io_posix(), path);
    if (!rc) {
        pthread_mutex_lock(&f->mu);
        drop_pending(f, path);
        char *n = norm(path);
        for (dentry **pp = &f->dents; n && *pp;) {
            dentry *d = *pp;
            if (strcmp(d->path, n) == 0) {
                *pp = d->next;
                dent_free(d);
            } else {
                pp = &d->next;
            }
        }
        free(n);
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
}

static int ft_fsync_dir(io_env *e, const char *dir)
{
    io_fault *f = (io_fault *)e;
    pthread_mutex_lock(&f->mu);
    int off = cut_op(f);
    pthread_mutex_unlock(&f->mu);
    if (off) return -EIO;
    int rc = io_posix()->fsync_dir(io_posix(), dir);
    if (!rc) {
        pthread_mutex_lock(&f->mu);
        dent_sync(f, dir);
        char *n = norm(dir);
        if (n && under_watch(f, n)) dl_record(f, n);
        free(n);
        pthread_mutex_unlock(&f->mu);
    }
    return rc;
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
                      ft_rename, ft_unlink, ft_fsync_dir, ft_mkdir,  ft_map,       ft_unmap};
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
    while (f->dents) {
        dentry *d = f->dents;
        f->dents = d->next;
        dent_free(d);
    }
    while (f->lists) {
        dlist *d = f->lists;
        f->lists = d->next;
        dl_free(d);
    }
    free(f->watch);
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

void io_fault_cut(io_fault *f, uint64_t nth)
{
    pthread_mutex_lock(&f->mu);
    f->ops = 0;
    f->cut = 0;
    f->cut_at = nth;
    pthread_mutex_unlock(&f->mu);
}

uint64_t io_fault_ops(io_fault *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->ops;
    pthread_mutex_unlock(&f->mu);
    return n;
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

int io_fault_watch(io_fault *f, const char *dir)
{
    pthread_mutex_lock(&f->mu);
    free(f->watch);
    f->watch = norm(dir);
    int rc = f->watch ? dl_record_tree(f, f->watch) : -ENOMEM;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

uint64_t io_fault_pending_entries(io_fault *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = 0;
    for (dentry *d = f->dents; d; d = d->next)
        n++;
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
    /* Then the names that were never made durable, newest first. */
    while (f->dents) {
        dentry *d = f->dents;
        f->dents = d->next;
        int r = dent_undo(d);
        if (r && !rc) rc = r;
        dent_free(d);
    }
    if (f->watch) {
        int r = dl_prune(f, f->watch);
        if (r && !rc) rc = r;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}
