/*
 * backup.c - online backup and restore (factum.h, docs/operations.md).
 *
 * Design note (invariants; tests cite them as BK-n):
 *  BK-1  A backup holds the log up to a batch boundary E that was durable
 *        when it began: the end of the last position acknowledged then,
 *        after factum_store_sync. Appends go on meanwhile; nothing after E
 *        is copied.
 *  BK-2  Segments before E's are never written again (LOG-1: the writer
 *        only appends, in the last segment; recovery only cuts the tail of
 *        the last), so a hard link is a consistent copy. E's segment is
 *        copied up to E and zero-filled (LOG-5), whole, before its rename.
 *  BK-3  The BACKUP descriptor is written last (atomically, after every
 *        file and directory was fsynced) and removed first by an
 *        incremental run: a directory with a descriptor holds a complete
 *        backup.
 *  BK-4  The index is not copied: it is derived from the log, and the
 *        restored store rebuilds it on its first open.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "store/store_int.h"

#define DESCRIPTOR "BACKUP"
/* Paths built from a directory (checked to be shorter than PATH_MAX - 64) and a name. */
#define BK_PATH (PATH_MAX + 320)

/* ---- files ----------------------------------------------------------- */

/* Copy len bytes of the file `from` into a new file `to` (through to.tmp,
 * fdatasync'd, renamed), then zeros up to `size`. */
static int copy_file(const char *from, const char *to, uint64_t len, uint64_t size, uint64_t *copied)
{
    char tmp[BK_PATH];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", to) >= (int)sizeof tmp) return -ENAMETOOLONG;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -errno;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    int rc = 0;
    loff_t ioff = 0, ooff = 0;
    while (!rc && (uint64_t)ioff < len) {
        ssize_t n = copy_file_range(in, &ioff, out, &ooff, (size_t)(len - (uint64_t)ioff), 0);
        if (n > 0) continue;
        if (n == 0) {
            rc = -EIO; /* the file is shorter than it should be */
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL) {
            rc = -errno;
            break;
        }
        /* No copy_file_range here: read and write. */
        static _Thread_local uint8_t buf[1 << 20];
        while (!rc && (uint64_t)ioff < len) {
            size_t want = len - (uint64_t)ioff < sizeof buf ? (size_t)(len - (uint64_t)ioff) : sizeof buf;
            ssize_t r = pread(in, buf, want, ioff);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                rc = r < 0 ? -errno : -EIO;
                break;
            }
            rc = io_write_full(io_posix(), out, buf, (size_t)r, ooff);
            ioff += r;
            ooff += r;
        }
    }
    /* Zeros written, not a hole: the restored store writes into this file
     * without changing its size (LOG-6). */
    static const uint8_t zeros[65536];
    for (uint64_t off = len; !rc && off < size;) {
        size_t n = size - off < sizeof zeros ? (size_t)(size - off) : sizeof zeros;
        rc = io_write_full(io_posix(), out, zeros, n, (off_t)off);
        off += n;
    }
    if (!rc && fdatasync(out)) rc = -errno;
    close(in);
    if (close(out) && !rc) rc = -errno;
    if (!rc && rename(tmp, to)) rc = -errno;
    if (rc)
        unlink(tmp);
    else if (copied)
        *copied += len;
    return rc;
}

static int copy_small(const char *from_dir, const char *to_dir, const char *name)
{
    char p[PATH_MAX + 512];
    snprintf(p, sizeof p, "%s/%s", from_dir, name);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(io_posix(), p, 1 << 20, &buf, &len);
    if (rc) return rc;
    rc = io_write_file_atomic(io_posix(), to_dir, name, buf, len);
    free(buf);
    return rc;
}

static int touch(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

/* Crypto-shredding: the key file as it is now, after the backup's
 * position was fixed, so that every shred recorded up to that position is
 * in it already (the restore applies `$shreds` again in any case). */
static int backup_keys(factum_store *s, const char *dest)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/keys/keystore", s->path);
    if (access(from, F_OK)) return 0;
    snprintf(from, sizeof from, "%s/keys", s->path);
    snprintf(to, sizeof to, "%s/keys", dest);
    int rc = io_ensure_dir(io_posix(), to);
    if (rc) return rc;
    if (seal_enabled(s)) seal_lock(s, 1);
    rc = copy_small(from, to, "keystore");
    if (seal_enabled(s)) seal_lock(s, 0);
    return rc;
}

/* A restore applies shreds again: those the store recorded in `$shreds`,
 * and the key ids listed in `file` (made after the backup). */
static int reapply_shreds(factum_store *s, const char *file, uint64_t *from_file)
{
    factum_event ev[64];
    uint64_t from = 0, next = 0;
    *from_file = 0;
    int rc = 0;
    for (;;) {
        size_t n = 0;
        rc = factum_read_stream(s, FACTUM_SHREDS_STREAM, from, FACTUM_FORWARD, ev, 64, &n, &next);
        if (rc == FACTUM_ENOTFOUND) rc = 0;
        if (rc || !n) break;
        for (size_t i = 0; i < n && !rc; i++) {
            json_value *doc = NULL;
            int64_t id;
            if (!json_parse((const char *)ev[i].data, ev[i].data_len, &doc) && doc->type == JSON_OBJECT &&
                json_get(doc, "keyId") && !json_int64(json_get(doc, "keyId"), &id) && id > 0 && id <= UINT32_MAX) {
                rc = store_shred_id(s, (uint32_t)id);
                if (rc == FACTUM_ENOTFOUND) rc = 0;
            }
            json_free(doc);
        }
        if (next == FACTUM_END) break;
        from = next;
    }
    if (rc || !file) return rc;
    FILE *f = fopen(file, "r");
    if (!f) return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (!rc && getline(&line, &cap, f) > 0) {
        char *end;
        if (line[0] == '#' || line[0] == '\n') continue;
        unsigned long long id = strtoull(line, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        if (end == line || *end || id == 0 || id > UINT32_MAX) {
            rc = FACTUM_EINVAL; /* not a list of key ids */
            break;
        }
        rc = store_shred_id(s, (uint32_t)id);
        if (!rc) {
            (*from_file)++;
            char doc[64];
            int dl = snprintf(doc, sizeof doc, "{\"keyId\":%llu,\"restored\":true}", id);
            factum_event_data d = {0};
            d.type = FACTUM_SHRED_EVENT_TYPE;
            d.flags = FACTUM_EVENT_JSON;
            d.data = doc;
            d.data_len = (size_t)dl;
            rc = factum_append(s, FACTUM_SHREDS_STREAM, FACTUM_ANY, &d, 1, NULL);
        } else if (rc == FACTUM_ENOTFOUND) {
            rc = 0;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

/* Is dir missing or empty? 1 yes, 0 no, < 0 error. */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 1 : -errno;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static int fsync_dir(const char *dir)
{
    return io_posix()->fsync_dir(io_posix(), dir);
}

/* ---- the descriptor -------------------------------------------------- */

static int write_descriptor(const char *dest, const factum_backup_report *r)
{
    char uuid[40], h[2 * FACTUM_HASH_LEN + 1];
    factum_uuid_format(r->head.store_uuid, uuid);
    base_hex_encode(r->head.hash, FACTUM_HASH_LEN, h);
    base_buf b = {0};
    int rc = base_buf_printf(
        &b,
        "factum backup 1\nstore %s\nposition %" PRIu64 "\nlog_end %" PRIu64 "\nsegments %" PRIu64
        "\nchain_position %" PRIu64 "\nchain_hash %s\ncreated %lld\n",
        uuid, r->position, r->log_end, r->segments, r->head.position, h, (long long)base_now_ns());
    if (!rc) rc = base_buf_printf(&b, "crc %08x\n", base_crc32c(0, b.data, b.len));
    if (!rc) rc = io_write_file_atomic(io_posix(), dest, DESCRIPTOR, b.data, b.len);
    base_buf_free(&b);
    return rc;
}

int factum_backup_read(const char *dir, factum_backup_report *r)
{
    if (!dir || !r) return FACTUM_EINVAL;
    memset(r, 0, sizeof *r);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" DESCRIPTOR, dir);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(io_posix(), p, 65536, &buf, &len);
    if (rc) return rc == -ENOENT ? FACTUM_ENOTSTORE : rc;
    char *text = (char *)buf, *crc = strstr(text, "crc ");
    unsigned want = 0;
    char uuid[64] = "", h[80] = "";
    int ok = crc && sscanf(crc, "crc %8x", &want) == 1 && base_crc32c(0, buf, (size_t)(crc - text)) == want &&
             !strncmp(text, "factum backup 1\n", 16) &&
             sscanf(text,
                    "factum backup 1\nstore %63s\nposition %" SCNu64 "\nlog_end %" SCNu64
                    "\nsegments %" SCNu64 "\nchain_position %" SCNu64 "\nchain_hash %79s\n",
                    uuid, &r->position, &r->log_end, &r->segments, &r->head.position, h) == 6 &&
             !factum_uuid_parse(uuid, strlen(uuid), r->head.store_uuid) &&
             !base_hex_decode(h, strlen(h), r->head.hash, FACTUM_HASH_LEN) && r->segments >= 1;
    free(buf);
    return ok ? 0 : FACTUM_ECORRUPT;
}

/* ---- backup ---------------------------------------------------------- */

/* BK-1: the durable end to copy up to: the last acknowledged position, the
 * log offset after it, and the chain's head there. */
static int backup_point(factum_store *s, factum_backup_report *r)
{
    int rc = 0;
    if (!s->opts.read_only && (rc = factum_store_sync(s))) return rc;
    uint64_t p = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    memcpy(r->head.store_uuid, s->uuid, 16);
    r->position = p;
    if (!p) {
        r->log_end = LOG_SEG_HEADER;
        return log_chain_genesis_of(s->uuid, r->head.hash);
    }
    uint64_t blo;
    log_batch_hdr bh;
    if ((rc = store_batch_at(s, p, &blo, &bh))) return rc;
    r->log_end = blo + bh.frame_len + bh.body_len;
    if (bh.first_position + bh.n_events - 1 != p) return FACTUM_ECORRUPT; /* p ends its batch */
    if (bh.frame_len != LOG_BATCH_CHAIN_LEN) /* no chained batch yet (an older store's last segment) */
        return log_chain_genesis_of(s->uuid, r->head.hash);
    r->head.position = p;
    memcpy(r->head.hash, bh.chain, FACTUM_HASH_LEN);
    return 0;
}

/* The destination: empty (a full backup) or an earlier backup of this store
 * (incremental: *keep_below = the segments it had whole). Its descriptor is
 * removed first (BK-3). */
static int prepare_dest(factum_store *s, const char *dest, uint64_t *keep_below)
{
    *keep_below = 0;
    factum_backup_report old;
    int rc = factum_backup_read(dest, &old);
    if (rc == 0) {
        if (memcmp(old.head.store_uuid, s->uuid, 16)) return FACTUM_EEXISTS; /* another store's */
        *keep_below = old.segments - 1; /* its last segment was partial */
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/" DESCRIPTOR, dest);
        if (unlink(p)) return -errno;
        return fsync_dir(dest);
    }
    if (rc != FACTUM_ENOTSTORE) return rc == FACTUM_ECORRUPT ? FACTUM_EEXISTS : rc;
    int e = dir_empty(dest);
    if (e < 0) return e;
    if (!e) {
        /* Only the leftovers of an interrupted first backup may be there: a
         * log/ and index/ and the small files, never anything else. */
        DIR *d = opendir(dest);
        if (!d) return -errno;
        struct dirent *de;
        int foreign = 0;
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "log") &&
                strcmp(de->d_name, "index") && strcmp(de->d_name, "FACTUM") && strcmp(de->d_name, "LOCK") &&
                strcmp(de->d_name, "FACTUM.tmp") && strcmp(de->d_name, DESCRIPTOR ".tmp"))
                foreign = 1;
        closedir(d);
        if (foreign) return FACTUM_EEXISTS;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/FACTUM", dest);
        uint8_t *buf;
        size_t len;
        if (!io_read_file(io_posix(), p, 65536, &buf, &len)) {
            char want[40];
            factum_uuid_format(s->uuid, want);
            int same = strstr((char *)buf, want) != NULL;
            free(buf);
            if (!same) return FACTUM_EEXISTS;
        }
    }
    return io_ensure_dir(io_posix(), dest);
}

/* Does the earlier backup's copy of a sealed segment hold what the store's
 * file holds now: the same size and the same header, generation fields
 * included (a scavenge since replaces the segment by a compacted
 * generation, LOG-8)? */
static int same_generation(const char *src, const char *dst)
{
    struct stat a, b;
    if (stat(src, &a) || stat(dst, &b) || a.st_size != b.st_size) return 0;
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) return 1;
    uint8_t ha[128], hb[128];
    int fa = open(src, O_RDONLY | O_CLOEXEC), fb = open(dst, O_RDONLY | O_CLOEXEC);
    int same = fa >= 0 && fb >= 0 && pread(fa, ha, sizeof ha, 0) == (ssize_t)sizeof ha &&
               pread(fb, hb, sizeof hb, 0) == (ssize_t)sizeof hb && !memcmp(ha, hb, sizeof ha);
    if (fa >= 0) close(fa);
    if (fb >= 0) close(fb);
    return same;
}

/* Remove dest/log's segments numbered >= from (left by an earlier backup
 * that reached further: none in practice, but never leave a stale one). */
static int drop_segments_from(const char *logdir, uint64_t from)
{
    DIR *d = opendir(logdir);
    if (!d) return -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) && !rc) {
        uint64_t no;
        char tail[16] = "";
        if (sscanf(de->d_name, "%8" SCNu64 ".seg%15s", &no, tail) >= 1 && no >= from) {
            char p[BK_PATH];
            if (snprintf(p, sizeof p, "%s/%s", logdir, de->d_name) >= (int)sizeof p) continue;
            if (unlink(p) && errno != ENOENT) rc = -errno;
        }
    }
    closedir(d);
    return rc;
}

int factum_backup(factum_store *s, const char *dest, const factum_backup_options *opts,
                  factum_backup_report *report)
{
    static const factum_backup_options none;
    factum_backup_report local;
    factum_backup_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    if (!s || !dest || !*dest) return FACTUM_EINVAL;
    if (!opts) opts = &none;
    if (writer_in_callback(s)) return -EDEADLK;
    if (strlen(dest) >= PATH_MAX - 64 || strlen(s->path) >= PATH_MAX - 64) return -ENAMETOOLONG;
    int rc = backup_point(s, r);
    uint64_t keep_below = 0;
    if (!rc) rc = prepare_dest(s, dest, &keep_below);
    char logdir[PATH_MAX], src[BK_PATH], dst[BK_PATH];
    snprintf(logdir, sizeof logdir, "%s/log", dest);
    if (!rc) rc = io_ensure_dir(io_posix(), logdir);
    if (rc) return rc;
    uint64_t last = (r->log_end - 1) / s->seg_size; /* E's segment */
    r->segments = last + 1;
    uint64_t total = r->segments * s->seg_size, done = 0;
    for (uint64_t no = 0; no <= last && !rc; no++) {
        snprintf(src, sizeof src, "%s/log/%08" PRIu64 ".seg", s->path, no);
        snprintf(dst, sizeof dst, "%s/%08" PRIu64 ".seg", logdir, no);
        struct stat sst;
        /* A segment whose local file the archiver dropped (or drops while
         * this runs) is taken from the archive: the same bytes (LOG-9). */
        if (no < last && s->log->arch && access(src, F_OK) != 0)
            log_seg_path(s->log, LOG_ARCHIVE, no, "", src, sizeof src);
        if (no < last && no < keep_below && same_generation(src, dst)) {
            r->kept++;
        } else if (no < last) {
            /* BK-2: sealed: a hard link, or a whole copy (of a compacted
             * generation's own size, LOG-8). A scavenge may swap in a new
             * generation meanwhile: link and open take one whole file. */
            if (unlink(dst) && errno != ENOENT) rc = -errno;
            if (!rc && link(src, dst) == 0) {
                r->linked++;
            } else if (!rc && stat(src, &sst) && errno == ENOENT && s->log->arch) {
                log_seg_path(s->log, LOG_ARCHIVE, no, "", src, sizeof src); /* dropped just now */
                if (link(src, dst) == 0) r->linked++;
                else if (stat(src, &sst)) rc = -errno;
                else if (!(rc = copy_file(src, dst, (uint64_t)sst.st_size, (uint64_t)sst.st_size, &r->bytes_copied)))
                    r->copied++;
            } else if (!rc && stat(src, &sst)) {
                rc = -errno;
            } else if (!rc) {
                rc = copy_file(src, dst, (uint64_t)sst.st_size, (uint64_t)sst.st_size, &r->bytes_copied);
                if (!rc) r->copied++;
            }
        } else {
            rc = copy_file(src, dst, r->log_end % s->seg_size ? r->log_end % s->seg_size : s->seg_size,
                           s->seg_size, &r->bytes_copied);
            if (!rc) r->copied++;
        }
        done += s->seg_size;
        if (!rc && opts->progress && opts->progress(opts->progress_ctx, done, total)) rc = -ECANCELED;
    }
    if (!rc) rc = drop_segments_from(logdir, last + 1);
    if (!rc) rc = fsync_dir(logdir);
    snprintf(dst, sizeof dst, "%s/index", dest);
    if (!rc) rc = io_ensure_dir(io_posix(), dst); /* empty: rebuilt on the first open (BK-4) */
    if (!rc) rc = copy_small(s->path, dest, "FACTUM");
    if (!rc) rc = backup_keys(s, dest);
    if (!rc) rc = touch(dest, "LOCK");
    if (!rc) rc = fsync_dir(dest);
    if (!rc && !opts->no_verify) {
        factum_verify_options vo = {.chain = 1, .expect = &r->head};
        factum_verify_report vr;
        rc = factum_verify_with(dest, &vo, NULL, NULL, &vr);
        if (!rc && (!vr.receipt_checked || vr.last_position != r->position)) rc = FACTUM_ECORRUPT;
        if (!rc) r->verified = 1;
        if (rc)
            store_log(s, FACTUM_LOG_ERROR, "backup into %s: the copy does not verify: %s", dest,
                      factum_strerror(rc));
    }
    if (!rc) rc = write_descriptor(dest, r); /* BK-3: last */
    if (!rc)
        store_log(s, FACTUM_LOG_INFO,
                  "backup into %s: positions 1..%" PRIu64 ", %" PRIu64 " segments (%" PRIu64
                  " linked, %" PRIu64 " copied, %" PRIu64 " kept)%s",
                  dest, r->position, r->segments, r->linked, r->copied, r->kept,
                  r->verified ? ", verified" : "");
    return rc;
}

/* ---- restore --------------------------------------------------------- */

int factum_restore(const char *backup, const char *dest, const factum_backup_options *opts,
                   factum_backup_report *report)
{
    static const factum_backup_options none;
    factum_backup_report local;
    factum_backup_report *r = report ? report : &local;
    if (!backup || !dest || !*dest) return FACTUM_EINVAL;
    if (!opts) opts = &none;
    if (strlen(dest) >= PATH_MAX - 64 || strlen(backup) >= PATH_MAX - 64) return -ENAMETOOLONG;
    int rc = factum_backup_read(backup, r);
    if (rc) return rc;
    int e = dir_empty(dest);
    if (e < 0) return e;
    if (!e) return FACTUM_EEXISTS;
    char logdir[PATH_MAX], src[BK_PATH], dst[BK_PATH];
    snprintf(logdir, sizeof logdir, "%s/log", dest);
    if ((rc = io_ensure_dir(io_posix(), dest)) || (rc = io_ensure_dir(io_posix(), logdir))) return rc;
    snprintf(dst, sizeof dst, "%s/index", dest);
    if ((rc = io_ensure_dir(io_posix(), dst))) return rc;
    /* Copies, never links: the restored store writes into its files. */
    uint64_t total = 0, done = 0;
    for (uint64_t no = 0; no < r->segments && !rc; no++) {
        snprintf(src, sizeof src, "%s/log/%08" PRIu64 ".seg", backup, no);
        snprintf(dst, sizeof dst, "%s/%08" PRIu64 ".seg", logdir, no);
        struct stat st;
        if (stat(src, &st)) {
            rc = errno == ENOENT ? FACTUM_ECORRUPT : -errno;
            break;
        }
        if (!total) total = (uint64_t)st.st_size * r->segments;
        rc = copy_file(src, dst, (uint64_t)st.st_size, (uint64_t)st.st_size, NULL);
        done += (uint64_t)st.st_size;
        if (!rc && opts->progress && opts->progress(opts->progress_ctx, done, total)) rc = -ECANCELED;
    }
    if (!rc) rc = fsync_dir(logdir);
    if (!rc) rc = copy_small(backup, dest, "FACTUM");
    snprintf(src, sizeof src, "%s/keys/keystore", backup);
    if (!rc && !access(src, F_OK)) {
        snprintf(src, sizeof src, "%s/keys", backup);
        snprintf(dst, sizeof dst, "%s/keys", dest);
        if (!(rc = io_ensure_dir(io_posix(), dst))) rc = copy_small(src, dst, "keystore");
    }
    if (!rc) rc = touch(dest, "LOCK");
    if (!rc) rc = fsync_dir(dest);
    if (rc) return rc;
    /* Open it once: the index is rebuilt and checkpointed; it must end where
     * the backup does, with the same chain head. */
    factum_options o;
    factum_options_init(&o);
    o.create = 0;
    o.master_key_file = opts->master_key_file;
    factum_store *s = NULL;
    if ((rc = factum_store_open(dest, &o, &s))) return rc;
    factum_chain_head h;
    factum_chain_get_head(s, &h);
    uint64_t last = atomic_load(&s->committed_pos);
    int same = last == r->position && h.position == r->head.position &&
               !memcmp(h.hash, r->head.hash, FACTUM_HASH_LEN) && !memcmp(h.store_uuid, r->head.store_uuid, 16);
    uint64_t applied = 0;
    /* Crypto-shredding: before the store is used for anything else. */
    if (same && seal_enabled(s)) rc = reapply_shreds(s, opts->shreds_file, &applied);
    else if (same && opts->shreds_file) rc = FACTUM_EKEY; /* shreds to apply, and no keys to apply them to */
    factum_store_close(s);
    if (!same) return FACTUM_ECORRUPT;
    if (rc) return rc;
    if (!opts->no_verify) {
        factum_verify_options vo = {.chain = 1, .expect = &r->head};
        factum_verify_report vr;
        rc = factum_verify_with(dest, &vo, NULL, NULL, &vr);
        if (!rc && !vr.receipt_checked) rc = FACTUM_ECORRUPT;
        if (!rc) r->verified = 1;
    }
    return rc;
}
