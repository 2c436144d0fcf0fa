/*
 * io.h - the store reaches the operating system's files only through this
 * small interface (as SQLite does through its VFS), so that tests can put a
 * fault-injecting layer underneath: failed writes and fsyncs, short writes,
 * and power loss that drops or tears everything not yet fsynced.
 *
 * Functions return >= 0 on success, -errno on failure. Files are plain file
 * descriptors owned by the caller between open and close.
 *
 * Durability of names: a file created (open with O_CREAT), a directory made
 * or a rename is durable only after fsync_dir of the directory holding the
 * new name. Whatever depends on such a name (a manifest naming a table, a
 * store naming its log) is written only after that fsync_dir.
 */
#ifndef FACTUM_IO_H
#define FACTUM_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct io_env io_env;
struct io_env {
    int (*open)(io_env *e, const char *path, int flags, int mode); /* fd or -errno */
    int (*close)(io_env *e, int fd);
    ssize_t (*pread)(io_env *e, int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(io_env *e, int fd, const void *buf, size_t len, off_t off); /* may be short */
    int (*fdatasync)(io_env *e, int fd);
    int (*ftruncate)(io_env *e, int fd, off_t len);
    int (*rename)(io_env *e, const char *from, const char *to);
    int (*unlink)(io_env *e, const char *path);
    int (*fsync_dir)(io_env *e, const char *dir);
    int (*mkdir)(io_env *e, const char *path, int mode); /* 0 or -errno (-EEXIST if it exists) */
    /* Map `len` bytes of fd read-only and shared (writes through pwrite are
     * visible). Returns the address or NULL with *err = -errno. */
    void *(*map)(io_env *e, int fd, size_t len, int *err);
    void (*unmap)(io_env *e, void *addr, size_t len);
};

/* The real thing. A static singleton; never freed. */
io_env *io_posix(void);

/* Write all of buf at off, looping over short writes. 0 or -errno. */
int io_write_full(io_env *e, int fd, const void *buf, size_t len, off_t off);
/* Read exactly len bytes at off. 0, -errno, or -EIO on a short read (EOF). */
int io_read_full(io_env *e, int fd, void *buf, size_t len, off_t off);
/* Size of an open file (fstat; not interposed). 0 or -errno. */
int io_file_size(int fd, uint64_t *size);

/* The directory holding `path` ("." for a bare name) into buf. 0 or
 * -ENAMETOOLONG. */
int io_parent_dir(const char *path, char *buf, size_t n);
/* Make directory `path` if missing, then fsync its parent so that the name
 * is durable (always: a directory found existing may be the leftover of a
 * crash before its parent was fsynced). 0 or -errno. */
int io_ensure_dir(io_env *e, const char *path);
/* Write a small file atomically: temp file, fdatasync, rename, fsync dir. */
int io_write_file_atomic(io_env *e, const char *dir, const char *name, const void *buf, size_t len);
/* Read a whole small file into a malloc'd buffer (NUL-terminated). */
int io_read_file(io_env *e, const char *path, size_t max, uint8_t **out, size_t *len);

/* ---- fault injection (tests) ------------------------------------------- */

typedef struct io_fault io_fault;

/* A fault-injecting env over the real one. All counters count calls made
 * through this env since creation (or the last io_fault_reset). */
io_fault *io_fault_new(uint64_t seed);
void io_fault_free(io_fault *f);
io_env *io_fault_env(io_fault *f);

/* Fail the n-th (1-based) pwrite / fdatasync from now with `err` (e.g. -EIO,
 * -ENOSPC); 0 disables. A failed pwrite writes nothing, or with
 * partial_before_fail a prefix first. */
void io_fault_fail_write(io_fault *f, uint64_t nth, int err, int partial_before_fail);
void io_fault_fail_fsync(io_fault *f, uint64_t nth, int err);
/* A power cut before the n-th (1-based, from now) operation that changes
 * files (pwrite, fdatasync, open creating or truncating, mkdir, rename,
 * unlink, fsync_dir): it and every one after fail with -EIO and change
 * nothing; io_fault_power_loss then loses what was not yet durable. 0
 * disables. io_fault_ops: how many were counted since. */
void io_fault_cut(io_fault *f, uint64_t nth);
uint64_t io_fault_ops(io_fault *f);
/* Make pwrite return short counts (at random) but still succeed eventually. */
void io_fault_short_writes(io_fault *f, int on);
/* Only fail writes to paths containing `substr` (NULL: all). */
void io_fault_target(io_fault *f, const char *substr);
uint64_t io_fault_writes(io_fault *f);
uint64_t io_fault_fsyncs(io_fault *f);
/* Directory entries made through this env and not yet durable. */
uint64_t io_fault_pending_entries(io_fault *f);
/* Also cover names made under `dir` behind this env's back (a plain mkdir
 * or open): from now on, power loss removes whatever a directory under dir
 * holds beyond what it held at the last fsync_dir of it through this env
 * (or now, for the directories that exist now). 0 or -errno. */
int io_fault_watch(io_fault *f, const char *dir);

enum io_power_loss_mode {
    IO_LOSE_UNSYNCED = 0, /* every byte written since the file's last fdatasync is reverted */
    IO_TEAR_LAST = 1,     /* as above, but the last write keeps a random prefix of sectors */
    IO_TEAR_RANDOM = 2,   /* unsynced writes keep a random subset of their 512-byte sectors */
};
/* Simulate power loss on every file written through this env: revert (or
 * tear) what was not fsynced, then undo every directory entry made through
 * this env (file created, directory made, rename) whose directory was not
 * fsync_dir'd since: the new name vanishes (a rename goes back, and a file
 * it replaced comes back). Unlinks are taken as durable at once. Call after
 * the store using the env has been abandoned (not closed). Files are
 * addressed by path; returns 0 or -errno. */
int io_fault_power_loss(io_fault *f, int mode);

#endif
