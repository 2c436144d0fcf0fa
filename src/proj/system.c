/*
 * system.c - KurrentDB's five system projections as handlers that do no
 * I/O: a source event in, at most one event out (prj_emit). They follow
 * KurrentDB's classes in src/KurrentDB.Projections.Core/Standard/
 * (IndexStreams, CategorizeStreamByPath, CategorizeEventsByStreamPath,
 * IndexEventsByEventType, ByCorrelationId, StreamCategoryExtractor,
 * StreamDeletedHelper); docs/projections.md says what each does and where
 * factum differs. The engine (engine.c) applies the source rule
 * (prj_source_stream) and resolves links before a handler sees an event.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/json.h"
#include "proj/proj.h"

#define TOMBSTONE_TB "9223372036854775807" /* $tb of a soft-deleted stream */

static int is_system(const char *s, size_t len)
{
    return len > 0 && s[0] == '$';
}

int prj_source_stream(const char *stream, size_t len)
{
    if (!is_system(stream, len)) return 1;
    return len > 2 && stream[1] == '$' && !is_system(stream + 2, len - 2);
}

static int eq(const char *a, size_t a_len, const char *b)
{
    size_t n = strlen(b);
    return a_len == n && memcmp(a, b, n) == 0;
}

/* ---- scanning JSON without a tree ----------------------------------- */

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at an opening quote: just after the closing one, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = skip_string(p, e))) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p > s ? p : NULL;
}

int prj_json_member(const char *json, size_t len, const char *key, size_t key_len, const char **val,
                    size_t *val_len, int *is_string)
{
    const char *p = json, *e = json + len;
    int found = 0;
    p = ws(p, e);
    if (p >= e || *p != '{') return 0;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return 0;
    for (;;) {
        if (p >= e || *p != '"') return 0;
        const char *k = p + 1, *q = skip_string(p, e);
        if (!q) return 0;
        size_t kl = (size_t)(q - 1 - k);
        p = ws(q, e);
        if (p >= e || *p != ':') return 0;
        p = ws(p + 1, e);
        const char *v = p;
        if (!(p = skip_value(p, e))) return 0;
        if (kl == key_len && memcmp(k, key, kl) == 0) { /* the last one wins, as json_get */
            found = 1;
            *is_string = *v == '"';
            *val = *is_string ? v + 1 : v;
            *val_len = (size_t)(p - v) - (*is_string ? 2 : 0);
        }
        p = ws(p, e);
        if (p < e && *p == ',') {
            p = ws(p + 1, e);
            continue;
        }
        return p < e && *p == '}' ? found : 0;
    }
}

/* ---- deleted streams (StreamDeletedHelper.IsStreamDeletedEvent) ----- */

/* Is the event (record stream `stream`, event ev) the deletion of a
 * stream? 1 and *orig / *orig_len = that stream. A tombstone is a
 * `$streamDeleted` event; a soft delete a `$metadata` event of `$$x` whose
 * `$tb` is the largest version. */
static int deletion(const char *stream, size_t len, const factum_event *ev, const char **orig,
                    size_t *orig_len)
{
    if (len > 2 && stream[0] == '$' && stream[1] == '$') {
        if (!eq(ev->type, ev->type_len, "$metadata")) return 0;
        const char *v;
        size_t vl;
        int str;
        if (!prj_json_member((const char *)ev->data, ev->data_len, "$tb", 3, &v, &vl, &str) || str ||
            !eq(v, vl, TOMBSTONE_TB))
            return 0;
        *orig = stream + 2;
        *orig_len = len - 2;
        return 1;
    }
    if (!eq(ev->type, ev->type_len, "$streamDeleted")) return 0;
    *orig = stream;
    *orig_len = len;
    return 1;
}

/* ---- categories (StreamCategoryExtractor) ---------------------------- */

static const char *trim(const char *s, size_t *len)
{
    while (*len && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        (*len)--;
    }
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t' || s[*len - 1] == '\r' || s[*len - 1] == '\n'))
        (*len)--;
    return s;
}

/* Length of one UTF-8 character at s (of len bytes), 0 if s is not one. */
static size_t one_char(const char *s, size_t len)
{
    if (!len) return 0;
    unsigned char c = (unsigned char)s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    return n && n == len && base_utf8_valid(s, n) ? n : 0;
}

#define CAT_FORMAT "Configuration format is: first|last, a new line, then the separator"

static int configure_category(prj_config *c, const char *q, size_t len, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    q = trim(q, &len);
    if (!len) {
        snprintf(err, err_len, "one separator or a configuration must be given. " CAT_FORMAT);
        return FACTUM_EINVAL;
    }
    size_t n = one_char(q, len);
    if (n) { /* a lone separator: split at its last occurrence */
        c->last = 1;
        memcpy(c->sep, q, n);
        c->sep_len = n;
        return 0;
    }
    const char *nl = memchr(q, '\n', len);
    if (!nl || memchr(nl + 1, '\n', len - (size_t)(nl + 1 - q))) {
        snprintf(err, err_len, "invalid configuration. " CAT_FORMAT);
        return FACTUM_EINVAL;
    }
    size_t dl = (size_t)(nl - q);
    const char *dir = trim(q, &dl);
    if (dl == 4 && !strncasecmp(dir, "last", 4))
        c->last = 1;
    else if (!(dl == 5 && !strncasecmp(dir, "first", 5))) {
        snprintf(err, err_len, "invalid direction: 'first' or 'last' expected. " CAT_FORMAT);
        return FACTUM_EINVAL;
    }
    const char *sep = nl + 1;
    size_t sl = len - (size_t)(sep - q);
    if (!(n = one_char(sep, sl))) {
        snprintf(err, err_len, "a single separator character expected. " CAT_FORMAT);
        return FACTUM_EINVAL;
    }
    memcpy(c->sep, sep, n);
    c->sep_len = n;
    return 0;
}

/* The category of a stream: its name before the first (or last)
 * separator; none for a system stream or one without a separator after its
 * first character. */
static int category(const prj_config *c, const char *s, size_t len, size_t *cat_len)
{
    if (!len || s[0] == '$' || len < c->sep_len) return 0;
    size_t at = SIZE_MAX;
    if (c->last) {
        for (size_t i = len - c->sep_len + 1; i-- > 0;)
            if (!memcmp(s + i, c->sep, c->sep_len)) {
                at = i;
                break;
            }
    } else {
        for (size_t i = 0; i + c->sep_len <= len; i++)
            if (!memcmp(s + i, c->sep, c->sep_len)) {
                at = i;
                break;
            }
    }
    if (at == SIZE_MAX || at == 0) return 0;
    *cat_len = at;
    return 1;
}

static int configure_empty(prj_config *c, const char *q, size_t len, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    trim(q, &len);
    if (len) {
        snprintf(err, err_len, "this projection takes no configuration: its query must be empty");
        return FACTUM_EINVAL;
    }
    return 0;
}

static int configure_correlation(prj_config *c, const char *q, size_t len, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    memcpy(c->corr_key, "$correlationId", 14);
    c->corr_key_len = 14;
    const char *t = trim(q, &len);
    if (!len) return 0;
    json_value *doc = NULL;
    const json_value *v = NULL;
    if (!json_parse(t, len, &doc) && doc->type == JSON_OBJECT) v = json_get(doc, "correlationIdProperty");
    int ok = v && v->type == JSON_STRING && v->len < sizeof c->corr_key && !memchr(v->str, 0, v->len);
    if (ok) {
        memcpy(c->corr_key, v->str, v->len);
        c->corr_key_len = v->len;
    } else {
        snprintf(err, err_len,
                 "the query must be a JSON object with a string property 'correlationIdProperty'");
    }
    json_free(doc);
    return ok ? 0 : FACTUM_EINVAL;
}

/* ---- the five handlers ---------------------------------------------- */

static int is_link(const factum_event *ev)
{
    return ev->type_len == 2 && !memcmp(ev->type, FACTUM_LINK_TYPE, 2);
}

static void emit_init(prj_emit *o, const char *prefix, const char *type)
{
    memset(o, 0, sizeof *o);
    o->prefix = prefix;
    o->type = type;
}

/* The link to the event a source stands for: a link's own body when the
 * event is itself a link, else "<version>@<stream>". */
static void link_to_event(prj_emit *o, const factum_event *ev)
{
    if (is_link(ev)) {
        o->data_kind = PRJ_DATA_RAW;
        o->raw = (const char *)ev->data;
        o->raw_len = ev->data_len;
    } else {
        o->data_kind = PRJ_DATA_LINK;
        o->version = ev->version;
        o->target = ev->stream;
        o->target_len = ev->stream_len;
    }
}

/* $streams (IndexStreams): the first event of every stream. */
static int process_streams(const prj_config *c, const prj_src *src, prj_emit *o)
{
    (void)c;
    const factum_event *r = src->rec;
    if (r->version != 0) return 0;
    emit_init(o, "$streams", FACTUM_LINK_TYPE);
    o->data_kind = PRJ_DATA_LINK;
    o->version = 0;
    o->target = r->stream;
    o->target_len = r->stream_len;
    return 1;
}

/* $stream_by_category (CategorizeStreamByPath): a `$@` event naming every
 * new stream in its category's stream. */
static int process_stream_by_category(const prj_config *c, const prj_src *src, prj_emit *o)
{
    const factum_event *r = src->rec;
    size_t cl;
    if (r->version != 0 || !category(c, r->stream, r->stream_len, &cl)) return 0;
    emit_init(o, "$category-", "$@");
    o->name = r->stream;
    o->name_len = cl;
    o->data_kind = PRJ_DATA_RAW;
    o->raw = r->stream;
    o->raw_len = r->stream_len;
    return 1;
}

/* $by_category (CategorizeEventsByStreamPath): every event, in its
 * stream's category; a deletion in the category of the deleted stream. */
static int process_by_category(const prj_config *c, const prj_src *src, prj_emit *o)
{
    const factum_event *r = src->rec, *ev = src->ev;
    const char *s = r->stream;
    size_t len = r->stream_len, cl;
    int deleted = deletion(r->stream, r->stream_len, ev, &s, &len);
    if (!category(c, s, len, &cl)) return 0;
    emit_init(o, "$ce-", FACTUM_LINK_TYPE);
    o->name = s;
    o->name_len = cl;
    link_to_event(o, ev);
    o->orig = s;
    o->orig_len = len;
    o->deleted = deleted;
    return 1;
}

/* $by_event_type (IndexEventsByEventType): every event under its type;
 * deletions under `$deleted`. Links are not sources here. */
static int process_by_event_type(const prj_config *c, const prj_src *src, prj_emit *o)
{
    (void)c;
    const factum_event *ev = src->ev;
    if (src->ev != src->rec || is_link(ev)) return 0;
    const char *s;
    size_t len;
    if (deletion(ev->stream, ev->stream_len, ev, &s, &len)) {
        /* KurrentDB links a deletion to <version>@<deleted stream>. */
        emit_init(o, "$et-", FACTUM_LINK_TYPE);
        o->name = "$deleted";
        o->name_len = 8;
        o->data_kind = PRJ_DATA_LINK;
        o->version = ev->version;
        o->target = s;
        o->target_len = len;
        o->deleted = 1;
        return 1;
    }
    emit_init(o, "$et-", FACTUM_LINK_TYPE);
    o->name = ev->type;
    o->name_len = ev->type_len;
    link_to_event(o, ev);
    return 1;
}

/* The string s (JSON-escaped, len bytes) decoded into buf (of
 * FACTUM_MAX_STREAM_LEN + 1 bytes): its length, or 0 if it is malformed,
 * empty after decoding, too long or holds a NUL. */
static size_t unescape(const char *s, size_t len, char *buf)
{
    size_t n = 0;
    if (len + 2 > FACTUM_MAX_STREAM_LEN) return 0;
    buf[n++] = '"';
    memcpy(buf + n, s, len);
    n += len;
    buf[n++] = '"';
    json_value *v = NULL;
    size_t out = 0;
    if (!json_parse(buf, n, &v) && v->type == JSON_STRING && v->len <= FACTUM_MAX_STREAM_LEN &&
        !memchr(v->str, 0, v->len)) {
        memcpy(buf, v->str, v->len);
        out = v->len;
    }
    json_free(v);
    return out;
}

/* $by_correlation_id (ByCorrelationId): every event whose metadata, a
 * JSON object, has the configured property as a string (or a number: its
 * text, as .NET's Value<string>() gives it). */
static int process_by_correlation_id(const prj_config *c, const prj_src *src, prj_emit *o)
{
    const factum_event *ev = src->ev;
    if (src->ev != src->rec || is_link(ev) || !ev->metadata_len) return 0;
    const char *v;
    size_t vl;
    int str;
    if (!prj_json_member((const char *)ev->metadata, ev->metadata_len, c->corr_key, c->corr_key_len, &v, &vl,
                         &str))
        return 0;
    if (!str && !(vl && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))) return 0; /* null, true, {..} */
    if (json_validate((const char *)ev->metadata, ev->metadata_len)) return 0; /* KurrentDB parses it whole */
    if (str && memchr(v, '\\', vl)) {
        if (!(vl = unescape(v, vl, src->scratch))) return 0;
        v = src->scratch;
    }
    emit_init(o, "$bc-", FACTUM_LINK_TYPE);
    o->name = v;
    o->name_len = vl;
    link_to_event(o, ev);
    o->timestamp = 1;
    return 1;
}

#define STD "native:KurrentDB.Projections.Core.Standard."

const prj_handler prj_system_handlers[PRJ_N_SYSTEM] = {
    {"$streams", STD "IndexStreams", "", "$streams", 1, 1, configure_empty, process_streams},
    {"$stream_by_category", STD "CategorizeStreamByPath", "first\r\n-", "$category-", 0, 1,
     configure_category, process_stream_by_category},
    {"$by_category", STD "CategorizeEventsByStreamPath", "first\r\n-", "$ce-", 0, 1, configure_category,
     process_by_category},
    {"$by_event_type", STD "IndexEventsByEventType", "", "$et-", 0, 0, configure_empty,
     process_by_event_type},
    {"$by_correlation_id", STD "ByCorrelationId", "{\"correlationIdProperty\":\"$correlationId\"}", "$bc-", 0,
     0, configure_correlation, process_by_correlation_id},
};

const prj_handler *prj_system_handler(const char *name)
{
    for (size_t i = 0; i < PRJ_N_SYSTEM; i++)
        if (!strcmp(prj_system_handlers[i].name, name)) return &prj_system_handlers[i];
    return NULL;
}
