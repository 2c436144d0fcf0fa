/*
 * jscan.c - the values of an event's JSON data at the paths its read
 * model's statements name (`:data.a.b[2]`), found by scanning the text:
 * no tree, no allocation. Event data is whatever a client wrote: the scan
 * never reads past the text, treats anything that is not JSON where it
 * walks as "missing", and skips nested values iteratively with a depth
 * bound.
 */
#include <errno.h>
#include <string.h>

#include "rm/rm.h"

#define JSCAN_DEPTH 128

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* End of the string whose opening quote is at p (pointer after the closing
 * quote), or NULL. */
static const char *str_end(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '"') return p + 1;
    }
    return NULL;
}

/* Skip one value at p (whitespace skipped already); NULL if malformed. */
static const char *skip_value(const char *p, const char *e)
{
    if (p >= e) return NULL;
    if (*p == '"') return str_end(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            char c = *p;
            if (c == '"') {
                if (!(p = str_end(p, e))) return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > JSCAN_DEPTH) return NULL;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    return p > s ? p : NULL;
}

static jscan_val classify(const char *p, const char *end)
{
    jscan_val v = {JV_MISSING, NULL, 0};
    const char *e = skip_value(p, end);
    if (!e) return v;
    v.p = p;
    v.len = (size_t)(e - p);
    switch (*p) {
    case '"':
        v.kind = JV_STRING;
        v.p = p + 1;
        v.len -= 2;
        break;
    case '{':
        v.kind = JV_OBJECT;
        break;
    case '[':
        v.kind = JV_ARRAY;
        break;
    case 't':
        v.kind = v.len == 4 && !memcmp(p, "true", 4) ? JV_TRUE : JV_MISSING;
        break;
    case 'f':
        v.kind = v.len == 5 && !memcmp(p, "false", 5) ? JV_FALSE : JV_MISSING;
        break;
    case 'n':
        v.kind = v.len == 4 && !memcmp(p, "null", 4) ? JV_NULL : JV_MISSING;
        break;
    default:
        v.kind = (*p == '-' || (*p >= '0' && *p <= '9')) ? JV_NUMBER : JV_MISSING;
    }
    return v;
}

/* In the object at p, the value of member key; NULL if absent. */
static const char *member(const char *p, const char *e, const char *key, size_t klen)
{
    p = ws(p + 1, e);
    if (p < e && *p == '}') return NULL;
    while (p < e) {
        if (*p != '"') return NULL;
        const char *ks = p + 1, *ke = str_end(p, e);
        if (!ke) return NULL;
        size_t kl = (size_t)(ke - 1 - ks);
        p = ws(ke, e);
        if (p >= e || *p != ':') return NULL;
        p = ws(p + 1, e);
        /* Keys are compared as written (escaped keys do not match). */
        if (kl == klen && !memcmp(ks, key, klen)) return p;
        if (!(p = skip_value(p, e))) return NULL;
        p = ws(p, e);
        if (p >= e || *p != ',') return NULL;
        p = ws(p + 1, e);
    }
    return NULL;
}

static const char *element(const char *p, const char *e, size_t index)
{
    p = ws(p + 1, e);
    if (p < e && *p == ']') return NULL;
    for (size_t i = 0; p < e; i++) {
        if (i == index) return p;
        if (!(p = skip_value(p, e))) return NULL;
        p = ws(p, e);
        if (p >= e || *p != ',') return NULL;
        p = ws(p + 1, e);
    }
    return NULL;
}

jscan_val jscan_path(const char *json, size_t len, const char *path, size_t path_len)
{
    jscan_val none = {JV_MISSING, NULL, 0};
    if (!json) return none;
    const char *e = json + len, *p = ws(json, e);
    size_t i = 0;
    while (i < path_len) {
        if (p >= e) return none;
        if (path[i] == '[') {
            size_t idx = 0, j = i + 1;
            while (j < path_len && path[j] >= '0' && path[j] <= '9' && idx < (1u << 30))
                idx = idx * 10 + (size_t)(path[j++] - '0');
            if (j >= path_len || path[j] != ']' || j == i + 1 || *p != '[') return none;
            if (!(p = element(p, e, idx))) return none;
            i = j + 1;
        } else {
            if (path[i] == '.') i++;
            size_t j = i;
            while (j < path_len && path[j] != '.' && path[j] != '[')
                j++;
            if (j == i || *p != '{') return none;
            if (!(p = member(p, e, path + i, j - i))) return none;
            i = j;
        }
        p = ws(p, e);
    }
    return p < e ? classify(p, e) : none;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

int jscan_unescape(base_buf *b, const char *p, size_t len)
{
    if (base_buf_reserve(b, len + 1)) return -ENOMEM;
    char *o = (char *)b->data + b->len;
    const char *e = p + len;
    while (p < e) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        if (++p >= e) return FACTUM_EBADJSON;
        char c = *p++;
        switch (c) {
        case '"': case '\\': case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (e - p < 4 || hex4(p, &cp)) return FACTUM_EBADJSON;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return FACTUM_EBADJSON;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return FACTUM_EBADJSON;
            }
            /* 6 escaped bytes become at most 4: the reservation holds. */
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | (cp >> 6));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | (cp >> 12));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | (cp >> 18));
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return FACTUM_EBADJSON;
        }
    }
    *o++ = 0;
    b->len = (size_t)(o - (char *)b->data);
    return 0;
}
