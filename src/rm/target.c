/*
 * target.c - what every target shares: the choice of implementation, and
 * the values bound to a statement's placeholders, taken from an event (or
 * from a query's parameters): its fields, or the JSON at a path of its data
 * or metadata, typed as JSON types them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rm/rm.h"

const rm_target_ops *rm_target(int kind)
{
    return kind == RM_POSTGRES ? &rm_pg_ops : &rm_sqlite_ops;
}

static int scratch_text(base_buf *b, rm_value *v, const char *p, size_t len)
{
    v->kind = RMV_TEXT;
    v->off = b->len;
    v->len = len;
    v->in_scratch = 1;
    if (base_buf_append(b, p, len) || base_buf_append(b, "", 1)) return -ENOMEM;
    return 0;
}

/* A JSON value found at a path, as a bound value. */
static int from_json(jscan_val j, base_buf *scratch, rm_value *v)
{
    switch (j.kind) {
    case JV_MISSING:
    case JV_NULL:
        v->kind = RMV_NULL;
        return 0;
    case JV_TRUE:
    case JV_FALSE:
        v->kind = RMV_BOOL;
        v->i = j.kind == JV_TRUE;
        return 0;
    case JV_NUMBER: {
        char num[64];
        if (j.len >= sizeof num) {
            v->kind = RMV_NULL;
            return 0;
        }
        memcpy(num, j.p, j.len);
        num[j.len] = 0;
        int integer = !strpbrk(num, ".eE");
        char *end;
        if (integer) {
            errno = 0;
            long long x = strtoll(num, &end, 10);
            if (!errno && !*end) {
                v->kind = RMV_INT;
                v->i = x;
                return 0;
            }
        }
        v->d = strtod(num, &end);
        v->kind = *end ? RMV_NULL : RMV_REAL;
        return 0;
    }
    case JV_STRING: {
        size_t off = scratch->len;
        int rc = jscan_unescape(scratch, j.p, j.len);
        if (rc == -ENOMEM) return rc;
        if (rc) {
            v->kind = RMV_NULL; /* a malformed escape: as if missing */
            return 0;
        }
        v->kind = RMV_TEXT;
        v->off = off;
        v->len = scratch->len - off - 1;
        v->in_scratch = 1;
        return 0;
    }
    default: /* an object or array: its JSON text */
        return scratch_text(scratch, v, j.p, j.len);
    }
}

int rm_bind_event(const rm_param *p, const factum_event *ev, base_buf *scratch, rm_value *v)
{
    memset(v, 0, sizeof *v);
    char tmp[64];
    switch (p->src) {
    case RMP_STREAM:
        v->kind = RMV_TEXT;
        v->s = ev->stream;
        v->len = ev->stream_len;
        return 0;
    case RMP_CATEGORY: {
        const char *dash = memchr(ev->stream, '-', ev->stream_len);
        return scratch_text(scratch, v, ev->stream, dash ? (size_t)(dash - ev->stream) : ev->stream_len);
    }
    case RMP_TYPE:
        v->kind = RMV_TEXT;
        v->s = ev->type;
        v->len = ev->type_len;
        return 0;
    case RMP_VERSION:
        v->kind = RMV_INT;
        v->i = (int64_t)ev->version;
        return 0;
    case RMP_POSITION:
        v->kind = RMV_INT;
        v->i = (int64_t)ev->position;
        return 0;
    case RMP_TIMESTAMP_MS:
        v->kind = RMV_INT;
        v->i = ev->timestamp_ns / 1000000;
        return 0;
    case RMP_TIMESTAMP: {
        time_t secs = (time_t)(ev->timestamp_ns / 1000000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        int n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         (int)((ev->timestamp_ns % 1000000000) / 1000));
        return scratch_text(scratch, v, tmp, (size_t)n);
    }
    case RMP_EVENT_ID: {
        factum_uuid_format(ev->id, tmp);
        return scratch_text(scratch, v, tmp, 36);
    }
    case RMP_DATA:
    case RMP_META: {
        const char *j = (const char *)(p->src == RMP_DATA ? ev->data : ev->metadata);
        size_t len = p->src == RMP_DATA ? ev->data_len : ev->metadata_len;
        if (!p->path[0]) {
            if (!len) {
                v->kind = RMV_NULL;
                return 0;
            }
            return scratch_text(scratch, v, j, len);
        }
        return from_json(jscan_path(j, len, p->path, strlen(p->path)), scratch, v);
    }
    default:
        v->kind = RMV_NULL;
        return 0;
    }
}

int rm_bind_named(const rm_param *p, const char *json, size_t len, base_buf *scratch, rm_value *v)
{
    memset(v, 0, sizeof *v);
    char path[300];
    /* The name as a path: a plain member (names with '.' or '[' reach into it). */
    size_t n = strlen(p->path);
    if (n >= sizeof path) {
        v->kind = RMV_NULL;
        return 0;
    }
    memcpy(path, p->path, n + 1);
    jscan_val j = jscan_path(json, len, path, n);
    if (j.kind == JV_MISSING) return FACTUM_ENOTFOUND;
    return from_json(j, scratch, v);
}

void rm_values_fix(rm_value *v, size_t n, const base_buf *scratch)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].in_scratch) v[i].s = (const char *)scratch->data + v[i].off;
}
