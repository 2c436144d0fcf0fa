/*
 * manifest.h - the text of the index manifest (the index checkpoint: which
 * tables, what part of the log they cover; docs/format.md), parsed and
 * formatted without any I/O, so that the parser can be fuzzed on any bytes
 * (tests/fuzz/fuzz_manifest.c). index.c reads and writes the file.
 *
 * Invariants (MAN-n):
 *  MAN-1  The parser accepts exactly the texts idx_manifest_format writes:
 *         for any accepted input, formatting what it returned gives the
 *         input back byte for byte. Anything else is FACTUM_ECORRUPT (or
 *         FACTUM_EFORMAT for a valid CRC over a newer version line).
 *  MAN-2  What a successful parse returns is within bounds: at most
 *         IDX_MAX_TABLES tables of each kind; each name a plain file name
 *         (5..IDX_NAME_MAX printable bytes, no '/', ending in ".tbl")
 *         inside the parsed buffer; names and ids unique; every id in
 *         1..next_table_id-1, so a new table never takes a listed table's
 *         name; next_position >= 1, and covered_lo is 0 exactly when
 *         next_position is 1 (every batch holds an event).
 */
#ifndef FACTUM_MANIFEST_H
#define FACTUM_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "index/index.h"

#define IDX_MANIFEST_VERSION 1
#define IDX_NAME_MAX         255         /* bytes of a table's file name */
#define IDX_MANIFEST_MAX     (16u << 20) /* bytes of a manifest file read on open */

typedef struct idx_manifest_table {
    uint64_t id;
    const char *name; /* borrowed (see idx_manifest_parse); not NUL-terminated */
    size_t name_len;
} idx_manifest_table;

typedef struct idx_manifest {
    idx_checkpoint cp;
    uint64_t next_table_id;
    size_t nt[IDX_KINDS];
    idx_manifest_table t[IDX_KINDS][IDX_MAX_TABLES]; /* oldest first within each kind */
} idx_manifest;

/* Parse the len bytes of a manifest file into *m (MAN-1, MAN-2). Names in
 * *m point into buf and are valid as long as buf is. Returns 0,
 * FACTUM_ECORRUPT (bad CRC, syntax or bounds), or FACTUM_EFORMAT (a newer
 * manifest version). *m is undefined after a failure. No I/O. */
int idx_manifest_parse(const uint8_t *buf, size_t len, idx_manifest *m);

/* Append the text of m to b (MAN-1). m is borrowed for the call. Returns 0,
 * -ENOMEM, or FACTUM_EINVAL if m is out of bounds (MAN-2). */
int idx_manifest_format(const idx_manifest *m, base_buf *b);

/* The kind's letter in manifests and table names ('s', 'i', 'c'). */
char idx_kind_char(int kind);

#endif
