/*
 * upcast_int.h - what upcast.c (documents, the registry, upcasting a batch)
 * and upcast_tree.c (the JSON trees an upcast works on: an arena, parsing
 * into it, changing a tree, writing it out, applying one declarative step)
 * share. Private to src/store.
 */
#ifndef FACTUM_STORE_UPCAST_INT_H
#define FACTUM_STORE_UPCAST_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "base/json.h"
#include "factum.h"

/* The declarative steps of a document (docs/upcasting.md). */
enum { OP_RENAME = 0, OP_MOVE, OP_DEFAULT, OP_SET, OP_REMOVE, OP_TYPE };

typedef struct upc_path {
    char *text; /* as written, for messages */
    char **seg; /* members, NUL-terminated */
    size_t *seg_len;
    size_t n;
} upc_path;

typedef struct upc_step {
    int op;
    upc_path a, b;     /* rename/move: from, to; default/set/remove: a only */
    json_value *value; /* default/set */
    char *type;        /* type: the new event type */
} upc_step;

/* Bump allocation in chunks: `tree` holds the parsed data and metadata of
 * one upcast (reset at the start of each: nothing in it is freed one by
 * one), `out` the upcast events (reset by factum_upcast_buf_reset). A
 * parse costs no malloc once the first chunk is there. */
#define ARENA_CHUNK (64u * 1024u)

typedef struct achunk {
    struct achunk *next;
    size_t size;
    uint8_t data[];
} achunk;

typedef struct arena {
    achunk *chunks; /* the current one first */
    uint8_t *p, *end;
} arena;

struct factum_upcast_buf {
    arena tree, out;
    base_buf d, m;
    char err[1536];
};

/* Format a message into err (el bytes; err NULL or el 0: nothing). */
void upc_set_err(char *err, size_t el, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* n bytes (8-aligned) from the arena, or NULL (out of memory). */
void *upc_alloc(arena *a, size_t n);
/* Forget everything in the arena, keeping one ordinary chunk. */
void upc_areset(arena *a);
/* Free every chunk of the arena. */
void upc_afree(arena *a);
/* Validate and parse text into the arena: 0 and *out, FACTUM_EBADJSON, or
 * -ENOMEM. */
int upc_parse(arena *a, const char *text, size_t len, json_value **out);
/* Remove every member key of object o. */
void upc_member_remove_all(json_value *o, const char *key, size_t len);
/* Apply one step to the data tree root (the new type, for a type step, in
 * *type). 0, -ENOMEM, or 1 with why (wl bytes) saying why not. */
int upc_apply_step(arena *ar, json_value *root, const upc_step *st, const char **type, char *why, size_t wl);
/* The schema version in JSON metadata: 0 and *v (1 if absent), or 1 (not a
 * positive integer). */
int upc_meta_version(const json_value *meta, int64_t *v);
/* b's message: "cannot upcast event <n>@<stream> (...): " and fmt. */
void upc_event_err(factum_upcast_buf *b, const factum_event *ev, int64_t version, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
