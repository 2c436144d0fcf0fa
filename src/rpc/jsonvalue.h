/*
 * jsonvalue.h - JSON text into google.protobuf.Value, as KurrentDB answers
 * Projections.State and .Result: objects become Struct, arrays ListValue,
 * numbers double, and the rest what they are. The text is a projection's
 * state, written by a user's script, so the conversion is bounded:
 *
 *  JV-1  Nesting deeper than max_depth arrays and objects is refused
 *        (JV_EDEPTH); the parser recurses once per level, so its stack
 *        is bounded too.
 *  JV-2  Every byte the Value takes comes from the converter's arena, in
 *        chunks; a chunk that would take the arena over max_bytes, or that
 *        charge refuses, ends the conversion (JV_ETOOBIG). Nothing is
 *        half-built: on any error *out is NULL and the arena can only be
 *        freed.
 *  JV-3  Malformed text (RFC 8259; invalid UTF-8 included) is refused
 *        (JV_EMALFORMED), never guessed at. Strings that protobuf-c cannot
 *        carry are mended, not refused: a lone UTF-16 surrogate escape and
 *        a \u0000 (protobuf-c strings end at NUL) become U+FFFD.
 *
 * No I/O, no network: tests/unit/jsonvalue.c drives it directly.
 */
#ifndef FACTUM_RPC_JSONVALUE_H
#define FACTUM_RPC_JSONVALUE_H

#include <stddef.h>

#include "google/protobuf/struct.pb-c.h"

enum {
    JV_OK = 0,
    JV_EMALFORMED = -1, /* not one JSON value */
    JV_EDEPTH = -2,     /* nested deeper than max_depth */
    JV_ETOOBIG = -3,    /* the Value would take more than max_bytes, or charge refused */
    JV_ENOMEM = -4,     /* malloc failed */
};

struct jv_chunk;

typedef struct jv_arena {
    unsigned max_depth;
    size_t max_bytes;
    /* Optional: told of every chunk before it is allocated (n bytes);
     * non-zero refuses it. What it accepted adds up in `charged`, which
     * the caller releases (after jv_free; jv_free does not reset it). */
    int (*charge)(void *ctx, size_t n);
    void *charge_ctx;
    size_t charged;
    struct jv_chunk *chunks;
    size_t held; /* bytes of the chunks */
} jv_arena;

void jv_init(jv_arena *a, unsigned max_depth, size_t max_bytes);
/* Convert json (len bytes, not necessarily NUL-terminated) into *out,
 * which lives in a's memory until jv_free. JV_OK or a JV_E* code. */
int jv_parse(jv_arena *a, const char *json, size_t len, Google__Protobuf__Value **out);
/* Free everything a holds; it may be used again. */
void jv_free(jv_arena *a);
const char *jv_strerror(int rc);

#endif
