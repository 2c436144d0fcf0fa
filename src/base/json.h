/*
 * json.h - a small, strict JSON (RFC 8259) parser into a tree, and string
 * escaping for writers. Used for stream metadata documents and by the CLI.
 * Numbers keep their text so integers up to int64 are exact.
 */
#ifndef FACTUM_JSON_H
#define FACTUM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    char *str;        /* STRING: decoded UTF-8 (may contain NUL; use len), NUL-terminated; NUMBER: its text */
    size_t len;       /* length of str */
    size_t n;         /* ARRAY/OBJECT: number of items */
    char **keys;      /* OBJECT: n decoded keys (NUL-terminated) */
    size_t *key_lens; /* OBJECT: their lengths */
    json_value **items; /* ARRAY/OBJECT: n values */
};

/* Parse exactly one JSON value (surrounding whitespace allowed). Nesting is
 * limited to 64 levels. Returns 0 or FACTUM_EBADJSON / -ENOMEM. */
int json_parse(const char *text, size_t len, json_value **out);
void json_free(json_value *v);
/* Validate without building a tree. Returns 0 or FACTUM_EBADJSON. */
int json_validate(const char *text, size_t len);

/* Object member by key (the last one if repeated), or NULL. */
const json_value *json_get(const json_value *obj, const char *key);
/* NUMBER that is an integer in int64 range: 0 and *out, else FACTUM_EBADJSON. */
int json_int64(const json_value *v, int64_t *out);
/* NUMBER as double. */
double json_number(const json_value *v);

/* Append v to b as compact JSON text. */
int json_write_value(base_buf *b, const json_value *v);
/* Append s (len bytes, UTF-8) to b as a quoted JSON string. */
int json_write_string(base_buf *b, const char *s, size_t len);

#endif
