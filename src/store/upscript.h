/*
 * upscript.h - the workers that run a store's script upcasters (upscript.c),
 * as upcast.c sees them. docs/adr/0016-script-upcasters.md says why they
 * are processes, how many, and what a failure does.
 */
#ifndef FACTUM_STORE_UPSCRIPT_H
#define FACTUM_STORE_UPSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "jshost/jsproc.h"

struct factum_store;
typedef struct upc_pool upc_pool;

/* The scripts of one registry table: what a worker is opened with. The
 * pointers belong to the table; `id` changes with every table built, so
 * that a worker opened for an older table is replaced. */
typedef struct upc_scripts {
    uint64_t id;
    size_t n;
    const char *const *names; /* "upcaster T vA->vB" */
    const char *const *texts;
    const size_t *lens;
} upc_scripts;

/* What happened to event i of a round: out (the script's result) or why
 * it failed (NUL-terminated). Called on the caller's thread, in order of
 * i, once per event; pointers valid for the call. Returns 0 or -ENOMEM. */
typedef int (*upc_round_fn)(void *ctx, size_t i, const prj_js_up_out *out, const char *why);

/* A pool of at most FACTUM_UPCAST_WORKERS workers, started when first
 * needed; the store's log gets the scripts' log() lines. */
int upc_pool_new(struct factum_store *s, upc_pool **out);
/* Kill the workers and free the pool (no call may be running). NULL: no-op. */
void upc_pool_free(upc_pool *p);

/* Run ev[0..n) through scripts script[0..n) of sc on a worker (waiting
 * for one while all are busy): each event's result goes to fn. A worker
 * that crashes, times out or cannot start fails every event of the round
 * with the reason (and is started again by the next round). 0, or -ENOMEM
 * (from fn or the pool). */
int upc_pool_run(upc_pool *p, const upc_scripts *sc, const prj_js_event *ev, const uint32_t *script, size_t n,
                 upc_round_fn fn, void *ctx);

/* Does `text` compile to a function in a worker? 0; FACTUM_EINVAL with why
 * in err (it does not; or no worker program could run it); -ENOMEM. */
int upc_script_check(const char *name, const char *text, size_t len, char *err, size_t err_len);

#endif
