/*
 * index.c - the index of index.h: reader views, the manifest (the index
 * checkpoint), the background thread that writes frozen memtables as tables
 * and merges tables, the position map, and the merged lookups.
 *
 * The manifest (the index checkpoint) is text written atomically; its
 * syntax and bounds are manifest.c's (MAN-1, MAN-2), this file reads and
 * writes the file and opens the tables it names.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "index/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "index/manifest.h"
#include "index/memtable.h"

#define MERGE_FANIN 4
#define MERGE_MAX   8

typedef struct view {
    _Atomic int refs;
    memtable *active, *frozen;
    tbl *t[IDX_KINDS][IDX_MAX_TABLES]; /* oldest first */
    size_t nt[IDX_KINDS];
} view;

struct findex {
    io_env *io;
    char *dir;
    idx_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    view *cur;
    uint64_t next_table_id;
    idx_checkpoint cp; /* what the manifest on disk says */
    int posmap_fd;
    pthread_t thread;
    int running, stop, err, flush_req;
    uint64_t flushes, merges;
};

static void xlog(findex *x, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void xlog(findex *x, int level, const char *fmt, ...)
{
    if (!x->cfg.log_fn) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    x->cfg.log_fn(x->cfg.log_ctx, level, buf);
}

/* ---- views (IDX-2) -------------------------------------------------- */

static view *view_get(findex *x)
{
    pthread_mutex_lock(&x->mu);
    view *v = x->cur;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&x->mu);
    return v;
}

static void view_put(view *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    mt_unref(v->active);
    mt_unref(v->frozen);
    for (int k = 0; k < IDX_KINDS; k++)
        for (size_t i = 0; i < v->nt[k]; i++)
            tbl_unref(v->t[k][i]);
    free(v);
}

/* A copy of v (taking references), to be modified and published. */
static view *view_clone(const view *v)
{
    view *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    atomic_init(&n->refs, 1);
    n->active = v->active;
    n->frozen = v->frozen;
    if (n->active) mt_ref(n->active);
    if (n->frozen) mt_ref(n->frozen);
    for (int k = 0; k < IDX_KINDS; k++) {
        n->nt[k] = v->nt[k];
        for (size_t i = 0; i < v->nt[k]; i++) {
            n->t[k][i] = v->t[k][i];
            tbl_ref(n->t[k][i]);
        }
    }
    return n;
}

/* Publish n as current (caller holds mu). */
static void view_publish(findex *x, view *n)
{
    view *old = x->cur;
    x->cur = n;
    view_put(old);
}

/* ---- manifest ------------------------------------------------------- */

static int write_manifest(findex *x, const view *v, uint64_t covered_lo, uint64_t next_position)
{
    idx_manifest *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cp.covered_lo = covered_lo;
    m->cp.next_position = next_position;
    m->next_table_id = x->next_table_id;
    for (int k = 0; k < IDX_KINDS; k++)
        for (size_t i = 0; i < v->nt[k]; i++) {
            const char *name = strrchr(v->t[k][i]->path, '/') + 1;
            m->t[k][i] = (idx_manifest_table){v->t[k][i]->id, name, strlen(name)};
            m->nt[k]++;
        }
    base_buf b = {0};
    int rc = idx_manifest_format(m, &b);
    if (!rc) rc = io_write_file_atomic(x->io, x->dir, "MANIFEST", b.data, b.len);
    base_buf_free(&b);
    free(m);
    if (!rc) {
        x->cp.covered_lo = covered_lo;
        x->cp.next_position = next_position;
    }
    return rc;
}

/* Is `name` listed in the view? */
static int listed(const view *v, const char *name)
{
    for (int k = 0; k < IDX_KINDS; k++)
        for (size_t i = 0; i < v->nt[k]; i++) {
            const char *n = strrchr(v->t[k][i]->path, '/') + 1;
            if (strcmp(n, name) == 0) return 1;
        }
    return 0;
}

/* Read the manifest and open the tables it names into v. 1 if there is
 * none yet. */
static int read_manifest(findex *x, view *v)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST", x->dir);
    uint8_t *buf;
    size_t len;
    int rc = io_read_file(x->io, path, IDX_MANIFEST_MAX, &buf, &len);
    if (rc == -ENOENT) return 1; /* no checkpoint yet */
    if (rc) return rc;
    idx_manifest *m = calloc(1, sizeof *m);
    if (!m) {
        rc = -ENOMEM;
        goto free_buf;
    }
    if ((rc = idx_manifest_parse(buf, len, m))) {
        xlog(x, FACTUM_LOG_ERROR, "index manifest %s: %s", path, factum_strerror(rc));
        goto free_m;
    }
    for (int k = 0; k < IDX_KINDS && !rc; k++)
        for (size_t i = 0; i < m->nt[k]; i++) {
            const idx_manifest_table *mt = &m->t[k][i];
            char tp[PATH_MAX];
            snprintf(tp, sizeof tp, "%s/%.*s", x->dir, (int)mt->name_len, mt->name);
            tbl *t;
            if ((rc = tbl_open(x->io, tp, &t))) {
                xlog(x, FACTUM_LOG_ERROR, "index table %.*s: %s", (int)mt->name_len, mt->name,
                     factum_strerror(rc));
                if (rc == -ENOENT) rc = FACTUM_ECORRUPT;
                break;
            }
            if (t->id != mt->id || t->kind != (uint32_t)k) {
                xlog(x, FACTUM_LOG_ERROR, "index table %.*s is not the table the manifest names",
                     (int)mt->name_len, mt->name);
                tbl_unref(t);
                rc = FACTUM_ECORRUPT;
                break;
            }
            v->t[k][v->nt[k]++] = t;
        }
    if (!rc) {
        x->cp = m->cp;
        x->next_table_id = m->next_table_id;
    }
free_m:
    free(m);
free_buf:
    free(buf);
    return rc;
}

/* Remove files a crash left behind: temporaries and tables no manifest
 * lists (a merge or flush that did not reach its manifest). */
static void remove_orphans(findex *x, const view *v)
{
    DIR *d = opendir(x->dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        int is_tmp = n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0;
        int is_tbl = n > 4 && strcmp(de->d_name + n - 4, ".tbl") == 0;
        if (!is_tmp && !(is_tbl && !listed(v, de->d_name))) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", x->dir, de->d_name);
        x->io->unlink(x->io, p);
    }
    closedir(d);
}

/* ---- open / close --------------------------------------------------- */

int idx_open(io_env *io, const char *dir, const idx_config *cfg, findex **out, idx_checkpoint *cp)
{
    findex *x = calloc(1, sizeof *x);
    if (!x) return -ENOMEM;
    x->io = io;
    x->cfg = *cfg;
    x->posmap_fd = -1;
    x->next_table_id = 1;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    int rc = 0;
    view *v = calloc(1, sizeof *v);
    if (!v || !(x->dir = strdup(dir)) || !(v->active = mt_new())) {
        rc = -ENOMEM;
        goto fail;
    }
    atomic_init(&v->refs, 1);
    x->cur = v;
    if (!cfg->read_only && (rc = io_ensure_dir(io, dir))) goto fail;
    x->cp.covered_lo = 0;
    x->cp.next_position = 1;
    rc = read_manifest(x, v);
    if (rc == 1) rc = 0;
    if (rc) goto fail;
    if (!cfg->read_only) remove_orphans(x, v);
    char pm[PATH_MAX];
    snprintf(pm, sizeof pm, "%s/posmap", dir);
    x->posmap_fd = io->open(io, pm, cfg->read_only ? O_RDONLY : (O_RDWR | O_CREAT), 0644);
    if (x->posmap_fd == -ENOENT && cfg->read_only && x->cp.next_position == 1) {
        /* No index at all (deleted): read-only, everything is replayed. */
    } else if (x->posmap_fd < 0) {
        rc = x->posmap_fd;
        goto fail;
    }
    /* The position map's name must be durable before a manifest relies on
     * it (a manifest's own fsync of dir would do it too; this says so). */
    if (!cfg->read_only && (rc = io->fsync_dir(io, dir))) goto fail;
    v->active->first_position = x->cp.next_position;
    v->active->next_position = x->cp.next_position;
    v->active->end_lo = x->cp.covered_lo;
    *cp = x->cp;
    *out = x;
    return 0;
fail:
    idx_close(x, 0);
    return rc;
}

static int posmap_write(findex *x, uint64_t first, const uint64_t *los, size_t n);

/* ---- writing tables ------------------------------------------------- */

typedef struct arr_src {
    const idx_entry *e;
    size_t i, n;
} arr_src;

static int arr_next(void *ctx, idx_entry *out)
{
    arr_src *s = ctx;
    if (s->i >= s->n) return 0;
    *out = s->e[s->i++];
    return 1;
}

static int new_table(findex *x, int kind, uint64_t n, tbl_next_fn next, void *ctx, uint64_t min_pos,
                     uint64_t max_pos, tbl **out)
{
    uint64_t id = x->next_table_id++;
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "%c-%08" PRIu64 ".tbl", idx_kind_char(kind), id);
    int rc =
        tbl_write(x->io, x->dir, name, (uint32_t)kind, id, n, next, ctx, kind != IDX_CAT, min_pos, max_pos);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s", x->dir, name);
    return tbl_open(x->io, path, out);
}

/* Write the frozen memtable's tables and a manifest covering it (IDX-1). */
static int flush_frozen(findex *x, memtable *m)
{
    tbl *nt[IDX_KINDS] = {0};
    int rc = 0;
    uint64_t min_pos = m->first_position, max_pos = m->next_position - 1;
    for (int k = 0; k < IDX_KINDS && !rc; k++) {
        idx_entry *e;
        size_t n;
        if ((rc = mt_sorted(m, k, &e, &n))) break;
        if (n) {
            arr_src src = {e, 0, n};
            rc = new_table(x, k, n, arr_next, &src, min_pos, max_pos, &nt[k]);
        }
        free(e);
    }
    if (!rc && x->cfg.sync_log) rc = x->cfg.sync_log(x->cfg.sync_ctx, m->end_lo);
    if (!rc && m->pos_n) rc = posmap_write(x, m->first_position, m->pos, m->pos_n);
    if (!rc && x->posmap_fd >= 0) rc = x->io->fdatasync(x->io, x->posmap_fd);
    view *n = NULL;
    if (!rc) {
        pthread_mutex_lock(&x->mu);
        n = view_clone(x->cur);
        pthread_mutex_unlock(&x->mu);
        if (!n) rc = -ENOMEM;
    }
    for (int k = 0; k < IDX_KINDS && !rc; k++)
        if (nt[k] && n->nt[k] >= IDX_MAX_TABLES) rc = -ENOSPC;
    if (!rc) {
        for (int k = 0; k < IDX_KINDS; k++)
            if (nt[k]) {
                n->t[k][n->nt[k]++] = nt[k];
                nt[k] = NULL;
            }
        /* The manifest is written outside the lock (it fsyncs); only this
         * thread changes table lists, and the writer cannot freeze while
         * `m` is still frozen, so n's lists and memtables stay current. */
        rc = write_manifest(x, n, m->end_lo, m->next_position);
    }
    pthread_mutex_lock(&x->mu);
    if (!rc) {
        if (n->frozen == m) {
            mt_unref(n->frozen);
            n->frozen = NULL;
        }
        view_publish(x, n);
        n = NULL;
        x->flushes++;
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    view_put(n);
    for (int k = 0; k < IDX_KINDS; k++)
        if (nt[k]) {
            nt[k]->obsolete = 1;
            tbl_unref(nt[k]);
        }
    return rc;
}

/* ---- merging -------------------------------------------------------- */

static int level_of(uint64_t memtable_entries, uint64_t n)
{
    uint64_t m = memtable_entries ? memtable_entries : 1;
    int l = 0;
    for (uint64_t q = n / m; q >= 4; q /= 4)
        l++;
    return l;
}

/* Leaves a merge reads before it drops them from its resident memory. */
#define MERGE_RELEASE_LEAVES 256

typedef struct merge_src {
    tbl_cur c[MERGE_MAX];
    int live[MERGE_MAX];
    idx_entry cur[MERGE_MAX];
    uint64_t released[MERGE_MAX]; /* leaves dropped so far, per input */
    size_t n;
    int err;
} merge_src;

static int merge_next(void *ctx, idx_entry *out)
{
    merge_src *m = ctx;
    int best = -1;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->live[i]) continue;
        /* Ties go to the older table (lower index), keeping TBL-1's order. */
        if (best < 0 || m->cur[i].k1 < m->cur[best].k1 ||
            (m->cur[i].k1 == m->cur[best].k1 && m->cur[i].k2 < m->cur[best].k2))
            best = (int)i;
    }
    if (best < 0) return 0;
    *out = m->cur[best];
    int r = tbl_next(&m->c[best]);
    if (r < 0) return r;
    m->live[best] = r;
    if (r) tbl_cur_get(&m->c[best], &m->cur[best]);
    /* Resident memory of a merge stays bounded: inputs are read once, in
     * order, through their mappings. */
    if (r && m->c[best].leaf >= m->released[best] + MERGE_RELEASE_LEAVES) {
        tbl_release_leaves(m->c[best].t, m->c[best].leaf);
        m->released[best] = m->c[best].leaf;
    }
    return 1;
}

/* Merge the tables [from, from+cnt) of kind k of the current view. */
static int merge_tables(findex *x, int k, size_t from, size_t cnt)
{
    view *v = view_get(x);
    merge_src src = {.n = cnt};
    uint64_t total = 0, min_pos = UINT64_MAX, max_pos = 0;
    int rc = 0;
    for (size_t i = 0; i < cnt && !rc; i++) {
        tbl *t = v->t[k][from + i];
        total += t->n_entries;
        if (t->min_position < min_pos) min_pos = t->min_position;
        if (t->max_position > max_pos) max_pos = t->max_position;
        int r = tbl_seek(t, 0, 0, &src.c[i]);
        if (r < 0) rc = r;
        src.live[i] = r > 0;
        if (r > 0) tbl_cur_get(&src.c[i], &src.cur[i]);
    }
    tbl *merged = NULL;
    if (!rc) rc = new_table(x, k, total, merge_next, &src, min_pos, max_pos, &merged);
    view *n = NULL;
    if (!rc) {
        pthread_mutex_lock(&x->mu);
        n = view_clone(x->cur);
        pthread_mutex_unlock(&x->mu);
        if (!n) rc = -ENOMEM;
    }
    if (!rc) {
        /* Only this thread changes the table lists, so the run is where it
         * was when the merge started. */
        for (size_t i = 0; i < cnt; i++)
            tbl_unref(n->t[k][from + i]);
        n->t[k][from] = merged;
        memmove(&n->t[k][from + 1], &n->t[k][from + cnt], (n->nt[k] - from - cnt) * sizeof(tbl *));
        n->nt[k] -= cnt - 1;
        rc = write_manifest(x, n, x->cp.covered_lo, x->cp.next_position);
        if (rc) {
            /* The manifest on disk still lists the old tables: keep them and
             * drop the merged one (n holds its only reference). */
            merged->obsolete = 1;
            merged = NULL;
            view_put(n);
            n = NULL;
        }
    }
    if (!rc) {
        for (size_t i = 0; i < cnt; i++)
            v->t[k][from + i]->obsolete = 1;
        pthread_mutex_lock(&x->mu);
        /* The writer may have frozen meanwhile: take the current memtables. */
        memtable *a = x->cur->active, *f = x->cur->frozen;
        mt_ref(a);
        if (f) mt_ref(f);
        mt_unref(n->active);
        mt_unref(n->frozen);
        n->active = a;
        n->frozen = f;
        view_publish(x, n);
        n = NULL;
        merged = NULL;
        x->merges++;
        pthread_mutex_unlock(&x->mu);
    }
    if (merged) {
        merged->obsolete = 1;
        tbl_unref(merged);
    }
    view_put(v);
    return rc;
}

/* Tables of one kind past which the smallest neighbours are merged
 * whatever their levels (a safety valve, far below IDX_MAX_TABLES). */
#define MERGE_PRESSURE 24

/* idx_merge_choice (index.h): what to merge next in one kind's list of
 * tables.
 *  - The newest run of >= MERGE_FANIN tables of one level. A run longer
 *    than MERGE_MAX (flushes outran merging) is merged from its oldest end,
 *    so the rest stays the newest run and is merged next: merging its newest
 *    end would bury the older ones under a table of a higher level, where no
 *    newest run ever reaches them again (each restart adds such stragglers:
 *    a store opened and closed a few hundred times hit IDX_MAX_TABLES and
 *    stopped with -ENOSPC).
 *  - Past MERGE_PRESSURE tables, the MERGE_FANIN neighbours with the fewest
 *    entries (stragglers left by an earlier version). */
int idx_merge_choice(uint64_t memtable_entries, const uint64_t *n_entries, size_t nt, size_t *from,
                     size_t *cnt)
{
    if (nt < MERGE_FANIN) return 0;
    int lvl = level_of(memtable_entries, n_entries[nt - 1]);
    size_t run = 0;
    while (run < nt && level_of(memtable_entries, n_entries[nt - 1 - run]) == lvl)
        run++;
    if (run >= MERGE_FANIN) {
        *from = nt - run;
        *cnt = run < MERGE_MAX ? run : MERGE_MAX;
        return 1;
    }
    if (nt <= MERGE_PRESSURE) return 0;
    uint64_t best = UINT64_MAX;
    for (size_t i = 0; i + MERGE_FANIN <= nt; i++) {
        uint64_t sum = 0;
        for (size_t j = 0; j < MERGE_FANIN; j++)
            sum += n_entries[i + j];
        if (sum < best) {
            best = sum;
            *from = i;
        }
    }
    *cnt = MERGE_FANIN;
    return 1;
}

/* Merge what merge_choice picks, in each kind. */
static int maybe_merge(findex *x, int *merged)
{
    *merged = 0;
    for (int k = 0; k < IDX_KINDS; k++) {
        view *v = view_get(x);
        uint64_t n_entries[IDX_MAX_TABLES];
        for (size_t i = 0; i < v->nt[k]; i++)
            n_entries[i] = v->t[k][i]->n_entries;
        size_t from = 0, cnt = 0;
        int pick = idx_merge_choice(x->cfg.memtable_entries, n_entries, v->nt[k], &from, &cnt);
        view_put(v);
        if (pick) {
            int rc = merge_tables(x, k, from, cnt);
            if (rc) return rc;
            *merged = 1;
        }
    }
    return 0;
}

/* ---- the background thread ----------------------------------------- */

/* Has some kind IDX_MERGE_STALL tables or more (IDX-5)? Caller holds mu. */
static int at_stall(const view *v)
{
    for (int k = 0; k < IDX_KINDS; k++)
        if (v->nt[k] >= IDX_MERGE_STALL) return 1;
    return 0;
}

/* One merge step with mu released (caller holds it, and holds it again on
 * return). A failure latches x->err: returns it. */
static int merge_unlocked(findex *x, int *merged)
{
    pthread_mutex_unlock(&x->mu);
    int rc = maybe_merge(x, merged);
    pthread_mutex_lock(&x->mu);
    if (rc) {
        x->err = rc;
        xlog(x, FACTUM_LOG_ERROR, "index merge failed: %s", factum_strerror(rc));
        pthread_cond_broadcast(&x->cv);
    }
    return rc;
}

static void *bg_main(void *arg)
{
    findex *x = arg;
    pthread_mutex_lock(&x->mu);
    while (!x->stop && !x->err) {
        memtable *fz = x->cur->frozen;
        if (!fz) {
            int merged = 0;
            if (merge_unlocked(x, &merged)) break;
            if (!merged && !x->cur->frozen && !x->stop) pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        if (at_stall(x->cur)) {
            /* IDX-5: a writer that refills the memtable while the last one
             * is written would keep a frozen memtable here forever and
             * merges would never run: merge first; the writer waits. */
            int merged = 0;
            if (merge_unlocked(x, &merged)) break;
            if (merged) continue;
        }
        mt_ref(fz);
        pthread_mutex_unlock(&x->mu);
        int rc = flush_frozen(x, fz);
        mt_unref(fz);
        pthread_mutex_lock(&x->mu);
        if (rc) {
            x->err = rc;
            xlog(x, FACTUM_LOG_ERROR, "index flush failed: %s", factum_strerror(rc));
            pthread_cond_broadcast(&x->cv);
        }
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

int idx_start(findex *x)
{
    if (x->cfg.read_only || x->running) return 0;
    int rc = pthread_create(&x->thread, NULL, bg_main, x);
    if (rc) return -rc;
    x->running = 1;
    return 0;
}

/* Freeze the active memtable (caller holds mu; none frozen). */
static int freeze(findex *x)
{
    memtable *fresh = mt_new();
    view *n = fresh ? view_clone(x->cur) : NULL;
    if (!n) {
        mt_unref(fresh);
        return -ENOMEM;
    }
    memtable *old = n->active;
    fresh->first_position = fresh->next_position = old->next_position;
    fresh->end_lo = old->end_lo;
    n->frozen = old; /* takes the clone's reference on old */
    n->active = fresh;
    view_publish(x, n);
    pthread_cond_broadcast(&x->cv);
    return 0;
}

int idx_close(findex *x, int checkpoint)
{
    if (!x) return 0;
    int rc = 0;
    if (x->running) {
        pthread_mutex_lock(&x->mu);
        x->stop = 1;
        pthread_cond_broadcast(&x->cv);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->thread, NULL);
        x->running = 0;
    }
    if (checkpoint && x->cur && !x->err && !x->cfg.read_only) {
        /* Write what is in memory so that the next open replays nothing. */
        if (x->cur->frozen) rc = flush_frozen(x, x->cur->frozen);
        if (!rc && x->cur->active->next_position > x->cp.next_position) {
            pthread_mutex_lock(&x->mu);
            rc = freeze(x);
            pthread_mutex_unlock(&x->mu);
            if (!rc) rc = flush_frozen(x, x->cur->frozen);
        }
    }
    view_put(x->cur);
    if (x->posmap_fd >= 0) x->io->close(x->io, x->posmap_fd);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x->dir);
    free(x);
    return rc;
}

int idx_add(findex *x, const idx_entry *const entries[IDX_KINDS], const size_t n[IDX_KINDS], uint64_t end_lo,
            uint64_t next_position)
{
    pthread_mutex_lock(&x->mu);
    memtable *m = x->cur->active;
    pthread_mutex_unlock(&x->mu);
    /* Only the writer changes `active`, so m stays current. */
    pthread_rwlock_wrlock(&m->lock);
    int rc = mt_add(m, entries, n);
    m->end_lo = end_lo;
    m->next_position = next_position;
    size_t entries_now = m->entries;
    pthread_rwlock_unlock(&m->lock);
    if (rc) return rc;
    if (entries_now < x->cfg.memtable_entries) return 0;
    pthread_mutex_lock(&x->mu);
    /* Back-pressure: wait while the previous memtable is being written. */
    while (x->cur->frozen && !x->err && x->running)
        pthread_cond_wait(&x->cv, &x->mu);
    if (x->err)
        rc = x->err;
    else if (x->running)
        rc = freeze(x);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int idx_flush_sync(findex *x)
{
    pthread_mutex_lock(&x->mu);
    int rc = 0;
    while (x->cur->frozen && !x->err)
        pthread_cond_wait(&x->cv, &x->mu);
    if (x->err)
        rc = x->err;
    else if (x->cur->active->next_position > x->cur->active->first_position) {
        rc = freeze(x);
        while (!rc && x->cur->frozen && !x->err)
            pthread_cond_wait(&x->cv, &x->mu);
        if (x->err) rc = x->err;
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int idx_error(findex *x)
{
    pthread_mutex_lock(&x->mu);
    int e = x->err;
    pthread_mutex_unlock(&x->mu);
    return e;
}

/* ---- position map --------------------------------------------------- */

/* Write log offsets of positions first.. to the position map file. */
static int posmap_write(findex *x, uint64_t first, const uint64_t *los, size_t n)
{
    uint8_t buf[8 * 512];
    while (n) {
        size_t k = n < 512 ? n : 512;
        for (size_t i = 0; i < k; i++)
            base_put64(buf + 8 * i, los[i]);
        int rc = io_write_full(x->io, x->posmap_fd, buf, 8 * k, (off_t)((first - 1) * 8));
        if (rc) return rc;
        first += k;
        los += k;
        n -= k;
    }
    return 0;
}

int idx_posmap_put(findex *x, uint64_t first, const uint64_t *los, size_t n)
{
    /* Recent positions live in the active memtable and reach the file when
     * it is flushed: no write on the append path. */
    pthread_mutex_lock(&x->mu);
    memtable *m = x->cur->active;
    pthread_mutex_unlock(&x->mu);
    pthread_rwlock_wrlock(&m->lock);
    int rc = first == m->first_position + m->pos_n ? mt_pos_add(m, los, n) : FACTUM_EINVAL;
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

int idx_posmap_get(findex *x, uint64_t position, uint64_t *lo)
{
    if (position == 0) return FACTUM_ENOTFOUND;
    view *v = view_get(x);
    memtable *mts[2] = {v->active, v->frozen};
    int found = 0;
    for (int i = 0; i < 2 && !found; i++) {
        memtable *m = mts[i];
        if (!m) continue;
        pthread_rwlock_rdlock(&m->lock);
        if (position >= m->first_position && position - m->first_position < m->pos_n) {
            *lo = m->pos[position - m->first_position];
            found = 1;
        }
        pthread_rwlock_unlock(&m->lock);
    }
    uint64_t covered = v->active->first_position;
    if (v->frozen) covered = v->frozen->first_position;
    view_put(v);
    if (found) return 0;
    if (position >= covered) return FACTUM_ENOTFOUND;
    if (x->posmap_fd < 0) return FACTUM_ECORRUPT; /* not reached: no file, no checkpoint */
    uint8_t b[8];
    ssize_t n = x->io->pread(x->io, x->posmap_fd, b, 8, (off_t)((position - 1) * 8));
    if (n < 0) return (int)n;
    if (n != 8) return FACTUM_ENOTFOUND;
    *lo = base_get64(b);
    return *lo ? 0 : FACTUM_ENOTFOUND;
}

/* ---- lookups -------------------------------------------------------- */

/* One source of (k2, v) for a fixed k1, walked in one direction. */
typedef struct src {
    int is_tbl, live;
    tbl_cur c;
    const mt_stream *s;
    size_t i;
    idx_kv cur;
} src;

static int src_load(src *s, uint64_t k1)
{
    if (s->is_tbl) {
        idx_entry e;
        tbl_cur_get(&s->c, &e);
        if (e.k1 != k1) return 0;
        s->cur = (idx_kv){e.k2, e.v};
    } else {
        s->cur = s->s->kv[s->i];
    }
    return 1;
}

static int src_step(src *s, uint64_t k1, int backward)
{
    int r;
    if (s->is_tbl) {
        r = backward ? tbl_prev(&s->c) : tbl_next(&s->c);
        if (r <= 0) return r;
    } else {
        if (backward) {
            if (s->i == 0) return 0;
            s->i--;
        } else {
            if (++s->i >= s->s->n) return 0;
        }
    }
    return src_load(s, k1);
}

static int src_tbl_init(src *s, tbl *t, uint64_t k1, uint64_t from, int backward)
{
    memset(s, 0, sizeof *s);
    s->is_tbl = 1;
    if (!tbl_may_contain(t, k1)) return 0;
    int r;
    if (!backward) {
        r = tbl_seek(t, k1, from, &s->c);
    } else {
        /* Last entry <= (k1, from): seek past it and step back. */
        r = from == UINT64_MAX ? (k1 == UINT64_MAX ? 0 : tbl_seek(t, k1 + 1, 0, &s->c))
                               : tbl_seek(t, k1, from + 1, &s->c);
        if (r == 0)
            r = tbl_last(t, &s->c);
        else if (r > 0)
            r = tbl_prev(&s->c);
        if (r > 0) {
            idx_entry e;
            tbl_cur_get(&s->c, &e);
            if (e.k1 > k1 || (e.k1 == k1 && e.k2 > from)) r = tbl_prev(&s->c);
        }
    }
    if (r <= 0) return r;
    return src_load(s, k1);
}

static int src_mt_init(src *s, const memtable *m, uint64_t k1, uint64_t from, int backward)
{
    memset(s, 0, sizeof *s);
    if (!m) return 0;
    s->s = mt_stream_find(m, k1);
    if (!s->s) return 0;
    size_t lb = mt_lower_bound(s->s, backward ? (from == UINT64_MAX ? UINT64_MAX : from + 1) : from);
    if (backward) {
        if (from == UINT64_MAX) lb = s->s->n;
        if (lb == 0) return 0;
        s->i = lb - 1;
    } else {
        if (lb >= s->s->n) return 0;
        s->i = lb;
    }
    return src_load(s, k1);
}

int idx_stream_range(findex *x, uint64_t hash, uint64_t from, int backward, idx_kv *out, size_t max,
                     size_t *n)
{
    *n = 0;
    view *v = view_get(x);
    src srcs[IDX_MAX_TABLES + 2];
    size_t ns = 0;
    int rc = 0;
    memtable *mts[2] = {v->frozen, v->active};
    for (size_t i = 0; i < v->nt[IDX_STREAM] && rc >= 0; i++) {
        rc = src_tbl_init(&srcs[ns], v->t[IDX_STREAM][i], hash, from, backward);
        if (rc > 0) srcs[ns++].live = 1;
    }
    if (mts[0]) pthread_rwlock_rdlock(&mts[0]->lock);
    pthread_rwlock_rdlock(&mts[1]->lock);
    for (int i = 0; i < 2 && rc >= 0; i++) {
        rc = src_mt_init(&srcs[ns], mts[i], hash, from, backward);
        if (rc > 0) srcs[ns++].live = 1;
    }
    while (rc >= 0 && *n < max) {
        int best = -1;
        for (size_t i = 0; i < ns; i++) {
            if (!srcs[i].live) continue;
            if (best < 0 ||
                (backward ? srcs[i].cur.k2 > srcs[best].cur.k2 : srcs[i].cur.k2 < srcs[best].cur.k2))
                best = (int)i;
        }
        if (best < 0) break;
        out[(*n)++] = srcs[best].cur;
        int r = src_step(&srcs[best], hash, backward);
        if (r < 0) rc = r;
        srcs[best].live = r > 0;
    }
    pthread_rwlock_unlock(&mts[1]->lock);
    if (mts[0]) pthread_rwlock_unlock(&mts[0]->lock);
    view_put(v);
    return rc < 0 ? rc : 0;
}

int idx_id_lookup(findex *x, const uint8_t id[16], uint64_t *los, size_t max, size_t *n)
{
    *n = 0;
    uint64_t hi = base_get64(id), lo = base_get64(id + 8);
    view *v = view_get(x);
    int rc = 0;
    for (size_t i = 0; i < v->nt[IDX_ID] && *n < max; i++) {
        tbl *t = v->t[IDX_ID][i];
        if (!tbl_may_contain(t, hi)) continue;
        tbl_cur c;
        int r = tbl_seek(t, hi, lo, &c);
        while (r > 0 && *n < max) {
            idx_entry e;
            tbl_cur_get(&c, &e);
            if (e.k1 != hi || e.k2 != lo) break;
            los[(*n)++] = e.v;
            r = tbl_next(&c);
        }
        if (r < 0) {
            rc = r;
            break;
        }
    }
    memtable *mts[2] = {v->frozen, v->active};
    for (int i = 0; i < 2 && !rc; i++) {
        if (!mts[i]) continue;
        pthread_rwlock_rdlock(&mts[i]->lock);
        *n += mt_id_find(mts[i], hi, lo, los + *n, max - *n);
        pthread_rwlock_unlock(&mts[i]->lock);
    }
    view_put(v);
    return rc;
}

int idx_cat_range(findex *x, uint64_t after, idx_kv *out, size_t max, size_t *n)
{
    /* Catalog tables cover disjoint, increasing position ranges in list order
     * (each flush covers the positions after the previous one, and merges
     * join neighbours), so concatenation is the merge. */
    *n = 0;
    view *v = view_get(x);
    int rc = 0;
    for (size_t i = 0; i < v->nt[IDX_CAT] && *n < max && !rc; i++) {
        tbl *t = v->t[IDX_CAT][i];
        if (t->max_position <= after) continue;
        tbl_cur c;
        int r = tbl_seek(t, after + 1, 0, &c);
        while (r > 0 && *n < max) {
            idx_entry e;
            tbl_cur_get(&c, &e);
            out[(*n)++] = (idx_kv){e.k1, e.v};
            r = tbl_next(&c);
        }
        if (r < 0) rc = r;
    }
    memtable *mts[2] = {v->frozen, v->active};
    for (int i = 0; i < 2 && !rc; i++) {
        if (!mts[i]) continue;
        pthread_rwlock_rdlock(&mts[i]->lock);
        for (size_t j = mt_cat_lower_bound(mts[i], after + 1); j < mts[i]->cat_n && *n < max; j++)
            out[(*n)++] = (idx_kv){mts[i]->cat[j].k1, mts[i]->cat[j].v};
        pthread_rwlock_unlock(&mts[i]->lock);
    }
    view_put(v);
    return rc;
}

uint64_t idx_cat_count(findex *x)
{
    view *v = view_get(x);
    uint64_t n = 0;
    for (size_t i = 0; i < v->nt[IDX_CAT]; i++)
        n += v->t[IDX_CAT][i]->n_entries;
    memtable *mts[2] = {v->frozen, v->active};
    for (int i = 0; i < 2; i++) {
        if (!mts[i]) continue;
        pthread_rwlock_rdlock(&mts[i]->lock);
        n += mts[i]->cat_n;
        pthread_rwlock_unlock(&mts[i]->lock);
    }
    view_put(v);
    return n;
}

void idx_get_stats(findex *x, idx_stats *st)
{
    view *v = view_get(x);
    memset(st, 0, sizeof *st);
    for (int k = 0; k < IDX_KINDS; k++)
        st->tables += v->nt[k];
    pthread_rwlock_rdlock(&v->active->lock);
    st->memtable_entries = v->active->entries;
    pthread_rwlock_unlock(&v->active->lock);
    if (v->frozen) st->memtable_entries += v->frozen->entries;
    pthread_mutex_lock(&x->mu);
    st->flushes = x->flushes;
    st->merges = x->merges;
    pthread_mutex_unlock(&x->mu);
    view_put(v);
}

int idx_verify_tables(findex *x, char *what, size_t n)
{
    view *v = view_get(x);
    int rc = 0;
    for (int k = 0; k < IDX_KINDS && !rc; k++)
        for (size_t i = 0; i < v->nt[k] && !rc; i++)
            if ((rc = tbl_verify(v->t[k][i])))
                snprintf(what, n, "index table %s is damaged", v->t[k][i]->path);
    view_put(v);
    return rc;
}
