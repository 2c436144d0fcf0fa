/*
 * upscript.c - the workers that run a store's script upcasters: factum-js
 * processes in their upcaster mode (OPEN_UP, src/jshost/jsproto.h), driven
 * through jsproc.c, a few per store, used synchronously by the thread that
 * upcasts (upcast.c). docs/adr/0016-script-upcasters.md is the why.
 *
 * Design note (invariants; tests cite them as UPS-n):
 *  UPS-1  Bounded: at most FACTUM_UPCAST_WORKERS workers per store, started
 *         when a round first needs one; a caller waits for a free worker
 *         while all are busy (each busy one is bounded by its deadline).
 *  UPS-2  A worker runs the scripts of one registry table (upc_scripts.id):
 *         a round for another table closes it and opens one for that table.
 *  UPS-3  A worker that crashes, stops answering, runs out of heap or
 *         cannot start fails every event of the round it was given with the
 *         reason, and is closed; the next round starts another. A script's
 *         own failure (it threw, timed out, returned something else than an
 *         event) fails its event only.
 *  UPS-4  No lock of the pool is held while a worker runs: the pool's mutex
 *         guards only which worker is taken.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"
#include "store/upscript.h"

typedef struct slot {
    prj_js *j;
    uint64_t table; /* the upc_scripts.id it was opened with */
    int busy;
} slot;

struct upc_pool {
    factum_store *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[FACTUM_UPCAST_WORKERS];
};

static void script_log(void *ctx, const char *msg, size_t len)
{
    store_log(ctx, FACTUM_LOG_INFO, "upcaster script: %.*s", (int)(len > 2000 ? 2000 : len), msg);
}

static prj_js_limits limits(factum_store *s)
{
    prj_js_limits l = {0};
    l.ms_per_event = FACTUM_UPCAST_SCRIPT_MS;
    l.heap_mib = FACTUM_UPCAST_SCRIPT_HEAP_MIB;
    l.log_fn = s ? script_log : NULL;
    l.log_ctx = s;
    return l;
}

int upc_pool_new(factum_store *s, upc_pool **out)
{
    upc_pool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->s = s;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    return 0;
}

void upc_pool_free(upc_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < FACTUM_UPCAST_WORKERS; i++)
        prj_js_close(p->slots[i].j);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Take a free worker, preferring one opened for this table (UPS-1). */
static slot *take(upc_pool *p, uint64_t table)
{
    pthread_mutex_lock(&p->mu);
    slot *got = NULL;
    for (;;) {
        for (size_t i = 0; i < FACTUM_UPCAST_WORKERS && !got; i++)
            if (!p->slots[i].busy && p->slots[i].j && p->slots[i].table == table) got = &p->slots[i];
        for (size_t i = 0; i < FACTUM_UPCAST_WORKERS && !got; i++)
            if (!p->slots[i].busy) got = &p->slots[i];
        if (got) break;
        pthread_cond_wait(&p->cv, &p->mu);
    }
    got->busy = 1;
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void give_back(upc_pool *p, slot *sl)
{
    pthread_mutex_lock(&p->mu);
    sl->busy = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Every event of the round fails with why (UPS-3). */
static int fail_all(size_t n, const char *why, upc_round_fn fn, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        int rc = fn(ctx, i, NULL, why);
        if (rc) return rc;
    }
    return 0;
}

int upc_pool_run(upc_pool *p, const upc_scripts *sc, const prj_js_event *ev, const uint32_t *script, size_t n,
                 upc_round_fn fn, void *ctx)
{
    if (!n) return 0;
    slot *sl = take(p, sc->id);
    char why[1200];
    int rc = 0;
    if (sl->j && (sl->table != sc->id || !prj_js_pid(sl->j) || prj_js_error(sl->j)[0])) { /* UPS-2, UPS-3 */
        prj_js_close(sl->j);
        sl->j = NULL;
    }
    if (!sl->j) {
        prj_js_limits l = limits(p->s);
        char err[1024] = "";
        rc = prj_js_open_up(&l, sc->n, sc->names, sc->texts, sc->lens, &sl->j, err, sizeof err);
        if (rc == -ENOMEM) goto out;
        if (rc) {
            snprintf(why, sizeof why, "the JavaScript engine could not start: %s", err);
            rc = fail_all(n, why, fn, ctx);
            goto out;
        }
        sl->table = sc->id;
    }
    prj_js_up_result res;
    rc = prj_js_up_process(sl->j, ev, script, n, &res);
    if (rc == -ENOMEM) goto out;
    if (rc) {
        snprintf(why, sizeof why, "%s", prj_js_error(sl->j));
        prj_js_close(sl->j);
        sl->j = NULL;
        rc = fail_all(n, why, fn, ctx);
        goto out;
    }
    /* One answer per event, in order (jsproc.c checks it). */
    size_t io = 0, ifail = 0;
    for (size_t i = 0; i < res.done && !rc; i++) {
        if (io < res.n_out && res.out[io].source == i) {
            rc = fn(ctx, i, &res.out[io++], NULL);
            continue;
        }
        const prj_js_fail *f = &res.fail[ifail++];
        const char *cerr = prj_js_up_script_error(sl->j, script[i]);
        if (cerr)
            snprintf(why, sizeof why, "the script does not compile: %s", cerr);
        else
            snprintf(why, sizeof why, "%.*s", (int)f->message_len, f->message);
        rc = fn(ctx, i, NULL, why);
    }
    if (!rc && res.done < n) { /* out of heap: the worker is gone */
        snprintf(why, sizeof why, "%s", prj_js_error(sl->j));
        for (size_t i = res.done; i < n && !rc; i++)
            rc = fn(ctx, i, NULL, why);
    }
    if (res.done < n) {
        prj_js_close(sl->j);
        sl->j = NULL;
    }
out:
    give_back(p, sl);
    return rc;
}

int upc_script_check(const char *name, const char *text, size_t len, char *err, size_t err_len)
{
    prj_js_limits l = limits(NULL);
    prj_js *j = NULL;
    char e[1024] = "";
    const char *names[1] = {name};
    const char *texts[1] = {text};
    size_t lens[1] = {len};
    int rc = prj_js_open_up(&l, 1, names, texts, lens, &j, e, sizeof e);
    if (rc == -ENOMEM) return rc;
    if (rc) {
        snprintf(err, err_len, "the script could not be checked: %s", e);
        return FACTUM_EINVAL;
    }
    const char *why = prj_js_up_script_error(j, 0);
    if (why) {
        snprintf(err, err_len, "the script does not compile: %s", why);
        rc = FACTUM_EINVAL;
    }
    prj_js_close(j);
    return rc;
}
