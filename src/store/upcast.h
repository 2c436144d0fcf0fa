/*
 * upcast.h - the store's upcaster registry (upcast.c), as the other files
 * of src/store and the layers above see it.
 *
 * The registry is a cache of stream `$upcasters`: the writer bumps
 * store->upc_gen when a commit touches that stream, and the next upcast or
 * list rebuilds the registry from the stream (UPC-2 in upcast.c).
 */
#ifndef FACTUM_STORE_UPCAST_H
#define FACTUM_STORE_UPCAST_H

#include <stddef.h>
#include <stdint.h>

#include "factum.h"

typedef struct upc_reg upc_reg;

/* Allocate / free a store's registry (store.c). */
int upc_reg_new(upc_reg **out);
void upc_reg_free(upc_reg *r);

/* Build the registry from `$upcasters` now if a commit changed it (at the
 * end of opening, so that documents ignored are logged then; every upcast
 * does it too, UPC-2). 0 or a read error. */
struct factum_store;
int upc_reg_load(struct factum_store *s);

/* May upcasting ev run a script upcaster (its type's chain reaches one,
 * whatever its version)? 1 or 0 (conservative: 1 may still find nothing to
 * do), or a read error of the registry. What factumd's loop asks before it
 * upcasts: a script never runs on the loop (src/rpc/events.c). One hash
 * lookup; 0 at once when no script upcaster is registered. */
int upc_needs_script(struct factum_store *s, const factum_event *ev);

/* factum_upcast that never runs a script: 0 or 1 as factum_upcast, errors
 * as factum_upcast, or UPC_DEFER when the event's chain reaches a script
 * upcaster (nothing is written then): what factumd's loop calls, so that a
 * script cannot run there even when the registry changed since it asked
 * upc_needs_script (UPJ-1). */
#define UPC_DEFER 2
int upc_upcast_noscript(struct factum_store *s, const factum_event *in, factum_upcast_buf *b, factum_event *out);

/* The registry's generation: it moves with every commit to `$upcasters`
 * (UPC-2), so that an upcast done earlier can be known to be stale. */
uint64_t upc_generation(struct factum_store *s);

/* Check one event appended to `$upcasters` (append.c, before it is
 * queued): `$upcaster-set` with a valid document, or `$upcaster-removed`
 * with {"eventType":..,"fromVersion":..}. err (may be NULL) receives why.
 * Returns 0, FACTUM_EBADJSON or FACTUM_EINVAL. */
int upc_check_event(const char *type, const void *data, size_t len, char *err, size_t err_len);

/* Upcast `in` with the upcasters of documents docs[0..n) (invalid ones are
 * ignored; later ones replace earlier ones of the same type and version)
 * instead of a store's registry, with max_size as the output limit: what
 * factum_upcast does, without a store (the fuzz target). */
int upc_apply_docs(const char *const *docs, const size_t *lens, size_t n, size_t max_size, const factum_event *in,
                   factum_upcast_buf *b, factum_event *out);

/* Is `name` (len bytes) the registry's stream? (writer.c) */
static inline int upc_is_stream(const char *name, size_t len)
{
    return len == sizeof FACTUM_UPCASTERS_STREAM - 1 && name[0] == '$' &&
           __builtin_memcmp(name, FACTUM_UPCASTERS_STREAM, len) == 0;
}

#endif
