/*
 * common.h - the internal declarations of src/common: the parts of
 * factum.h's API that need no store (filters, stream metadata documents,
 * the defaults of option structs the client's calls take too). Both
 * libraries carry them, libfactum and libfactum-client, with src/base
 * (docs/adr/0018-client-library.md); nothing here may call the store.
 */
#ifndef FACTUM_COMMON_H
#define FACTUM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "factum.h"

/* meta.c: a stream's metadata document ($maxAge, $maxCount, $tb,
 * $cacheControl). meta_none: no limits (every field -1). Lenient parse:
 * a document that is not valid means "no metadata" (the store reads what
 * others wrote; factum_stream_metadata_parse is the strict one). */
void meta_none(factum_stream_metadata *m);
void meta_parse_lenient(const uint8_t *data, size_t len, factum_stream_metadata *m);
/* The `$subject` of a parsed metadata document: 1 and *subject (into doc),
 * 0 when it names none (absent or null), FACTUM_EBADJSON when it is not a
 * string of 1 to 255 bytes. */
struct json_value;
int meta_subject(const struct json_value *doc, const char **subject, size_t *len);

#endif
