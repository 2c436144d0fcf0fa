/*
 * meta.c - stream metadata documents (the `$$<stream>` events): the fields
 * the store applies ($maxAge, $maxCount, $tb, $cacheControl) and the types
 * KurrentDB's clients give them. The store parses leniently (what is in
 * the log is read as well as it can be), factum_stream_metadata_parse
 * strictly (what a caller is about to write, in the store or in the C
 * client before it sends the document).
 */
#include <errno.h>

#include "base/json.h"
#include "common/common.h"

void meta_none(factum_stream_metadata *m)
{
    m->max_age_s = m->max_count = m->truncate_before = m->cache_control_s = -1;
    m->has_subject = 0;
}

int meta_subject(const json_value *doc, const char **subject, size_t *len)
{
    const json_value *v = json_get(doc, "$subject");
    if (!v || v->type == JSON_NULL) return 0;
    if (v->type != JSON_STRING || v->len == 0 || v->len > 255) return FACTUM_EBADJSON;
    *subject = v->str;
    *len = v->len;
    return 1;
}

static int meta_field(const json_value *doc, const char *key, int64_t *out, int strict)
{
    const json_value *v = json_get(doc, key);
    if (!v || v->type == JSON_NULL) return 0;
    int64_t x;
    if (json_int64(v, &x) || x < 0) return strict ? FACTUM_EBADJSON : 0;
    *out = x;
    return 0;
}

static int meta_parse(const char *json, size_t len, factum_stream_metadata *m, int strict)
{
    meta_none(m);
    json_value *doc;
    int rc = json_parse(json, len, &doc);
    if (rc) return rc == -ENOMEM ? rc : FACTUM_EBADJSON;
    if (doc->type != JSON_OBJECT) {
        json_free(doc);
        return FACTUM_EBADJSON;
    }
    rc = meta_field(doc, "$maxAge", &m->max_age_s, strict);
    if (!rc) rc = meta_field(doc, "$maxCount", &m->max_count, strict);
    if (!rc) rc = meta_field(doc, "$tb", &m->truncate_before, strict);
    if (!rc) rc = meta_field(doc, "$cacheControl", &m->cache_control_s, strict);
    const json_value *acl = json_get(doc, "$acl");
    if (!rc && strict && acl && acl->type != JSON_OBJECT && acl->type != JSON_NULL) rc = FACTUM_EBADJSON;
    if (!rc) {
        const char *sub;
        size_t sub_len;
        int r = meta_subject(doc, &sub, &sub_len);
        if (r < 0 && strict) rc = r;
        m->has_subject = r == 1;
    }
    json_free(doc);
    return rc;
}

int factum_stream_metadata_parse(const char *json, size_t len, factum_stream_metadata *out)
{
    if (!json || !out) return FACTUM_EINVAL;
    return meta_parse(json, len, out, 1);
}

void meta_parse_lenient(const uint8_t *data, size_t len, factum_stream_metadata *m)
{
    if (meta_parse((const char *)data, len, m, 0)) meta_none(m);
}
