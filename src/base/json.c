/*
 * json.c - strict JSON parsing (RFC 8259) into json_value trees, and string
 * escaping. Bytes from users and from disk pass through here, so every path
 * is bounded: depth is limited and nothing is read past `len`.
 */
#include "base/json.h"

#include <errno.h>
#include <stdlib.h>

#define JSON_MAX_DEPTH 64

typedef struct jp {
    const char *p, *end;
    int depth;
    int build; /* 0: validate only */
} jp;

static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static json_value *jv_new(json_type t)
{
    json_value *v = calloc(1, sizeof *v);
    if (v) v->type = t;
    return v;
}

void json_free(json_value *v)
{
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys) free(v->keys[i]);
        json_free(v->items[i]);
    }
    free(v->keys);
    free(v->key_lens);
    free(v->items);
    free(v->str);
    free(v);
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(base_buf *b, uint32_t cp)
{
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (uint8_t)(0xc0 | (cp >> 6));
        t[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (uint8_t)(0xe0 | (cp >> 12));
        t[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (uint8_t)(0xf0 | (cp >> 18));
        t[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return base_buf_append(b, t, n);
}

/* Parses a string at j->p (which points at the opening quote). With out,
 * the decoded bytes are appended (NUL-terminated, length excludes NUL). */
static int parse_string(jp *j, base_buf *out)
{
    j->p++;
    const char *run = j->p;
    while (1) {
        if (j->p >= j->end) return FACTUM_EBADJSON;
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') break;
        if (c < 0x20) return FACTUM_EBADJSON;
        if (c == '\\') {
            if (out && base_buf_append(out, run, (size_t)(j->p - run))) return -ENOMEM;
            if (j->end - j->p < 2) return FACTUM_EBADJSON;
            char e = j->p[1];
            j->p += 2;
            char lit = 0;
            switch (e) {
            case '"':
                lit = '"';
                break;
            case '\\':
                lit = '\\';
                break;
            case '/':
                lit = '/';
                break;
            case 'b':
                lit = '\b';
                break;
            case 'f':
                lit = '\f';
                break;
            case 'n':
                lit = '\n';
                break;
            case 'r':
                lit = '\r';
                break;
            case 't':
                lit = '\t';
                break;
            case 'u': {
                uint32_t cp;
                if (j->end - j->p < 4 || hex4(j->p, &cp)) return FACTUM_EBADJSON;
                j->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return FACTUM_EBADJSON;
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return FACTUM_EBADJSON;
                }
                /* U+0000 is valid JSON; decoded strings carry their length. */
                if (out && put_utf8(out, cp)) return -ENOMEM;
                run = j->p;
                continue;
            }
            default:
                return FACTUM_EBADJSON;
            }
            if (out && base_buf_append(out, &lit, 1)) return -ENOMEM;
            run = j->p;
            continue;
        }
        if (c >= 0x80) {
            /* Validate the UTF-8 sequence in place. */
            size_t n = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : 2;
            if ((size_t)(j->end - j->p) < n || !base_utf8_valid(j->p, n)) return FACTUM_EBADJSON;
            j->p += n;
            continue;
        }
        j->p++;
    }
    if (out && base_buf_append(out, run, (size_t)(j->p - run))) return -ENOMEM;
    j->p++;
    if (out) {
        if (base_buf_append(out, "", 1)) return -ENOMEM;
        out->len--;
    }
    return 0;
}

static int parse_number(jp *j)
{
    const char *p = j->p;
    if (p < j->end && *p == '-') p++;
    if (p >= j->end) return FACTUM_EBADJSON;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return FACTUM_EBADJSON;
    }
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || *p < '0' || *p > '9') return FACTUM_EBADJSON;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (p >= j->end || *p < '0' || *p > '9') return FACTUM_EBADJSON;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return 0;
}

static int lit(jp *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return FACTUM_EBADJSON;
    j->p += n;
    return 0;
}

static int take_buf(base_buf *b, char **s, size_t *len)
{
    if (!b->data && base_buf_reserve(b, 1)) return -ENOMEM;
    b->data[b->len] = 0;
    *s = (char *)b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

static int push_item(json_value *c, char *key, size_t klen, json_value *item, size_t *cap)
{
    if (c->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        json_value **ni = realloc(c->items, nc * sizeof *ni);
        if (!ni) return -ENOMEM;
        c->items = ni;
        if (c->type == JSON_OBJECT) {
            char **nk = realloc(c->keys, nc * sizeof *nk);
            if (!nk) return -ENOMEM;
            c->keys = nk;
            size_t *nl = realloc(c->key_lens, nc * sizeof *nl);
            if (!nl) return -ENOMEM;
            c->key_lens = nl;
        }
        *cap = nc;
    }
    if (c->type == JSON_OBJECT) {
        c->keys[c->n] = key;
        c->key_lens[c->n] = klen;
    }
    c->items[c->n++] = item;
    return 0;
}

static int parse_value(jp *j, json_value **out)
{
    skip_ws(j);
    if (j->p >= j->end) return FACTUM_EBADJSON;
    char c = *j->p;
    int rc = 0;
    json_value *v = NULL;
    if (c == '{' || c == '[') {
        if (++j->depth > JSON_MAX_DEPTH) return FACTUM_EBADJSON;
        int obj = c == '{';
        if (j->build && !(v = jv_new(obj ? JSON_OBJECT : JSON_ARRAY))) return -ENOMEM;
        size_t cap = 0;
        j->p++;
        skip_ws(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
        } else {
            while (1) {
                char *key = NULL;
                size_t klen = 0;
                skip_ws(j);
                if (obj) {
                    if (j->p >= j->end || *j->p != '"') {
                        rc = FACTUM_EBADJSON;
                        goto fail;
                    }
                    base_buf kb = {0};
                    if ((rc = parse_string(j, j->build ? &kb : NULL))) {
                        base_buf_free(&kb);
                        goto fail;
                    }
                    if (j->build && (rc = take_buf(&kb, &key, &klen))) goto fail;
                    skip_ws(j);
                    if (j->p >= j->end || *j->p != ':') {
                        free(key);
                        rc = FACTUM_EBADJSON;
                        goto fail;
                    }
                    j->p++;
                }
                json_value *item = NULL;
                if ((rc = parse_value(j, j->build ? &item : NULL))) {
                    free(key);
                    goto fail;
                }
                if (j->build && (rc = push_item(v, key, klen, item, &cap))) {
                    free(key);
                    json_free(item);
                    goto fail;
                }
                skip_ws(j);
                if (j->p >= j->end) {
                    rc = FACTUM_EBADJSON;
                    goto fail;
                }
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                if (*j->p == (obj ? '}' : ']')) {
                    j->p++;
                    break;
                }
                rc = FACTUM_EBADJSON;
                goto fail;
            }
        }
        j->depth--;
    } else if (c == '"') {
        base_buf sb = {0};
        if ((rc = parse_string(j, j->build ? &sb : NULL))) {
            base_buf_free(&sb);
            return rc;
        }
        if (j->build) {
            if (!(v = jv_new(JSON_STRING))) {
                base_buf_free(&sb);
                return -ENOMEM;
            }
            if ((rc = take_buf(&sb, &v->str, &v->len))) goto fail;
        }
    } else if (c == 't' || c == 'f' || c == 'n') {
        json_type t = c == 't' ? JSON_TRUE : c == 'f' ? JSON_FALSE : JSON_NULL;
        if ((rc = lit(j, c == 't' ? "true" : c == 'f' ? "false" : "null", c == 'f' ? 5 : 4))) return rc;
        if (j->build && !(v = jv_new(t))) return -ENOMEM;
    } else {
        const char *start = j->p;
        if ((rc = parse_number(j))) return rc;
        if (j->build) {
            if (!(v = jv_new(JSON_NUMBER))) return -ENOMEM;
            v->len = (size_t)(j->p - start);
            if (!(v->str = malloc(v->len + 1))) {
                rc = -ENOMEM;
                goto fail;
            }
            memcpy(v->str, start, v->len);
            v->str[v->len] = 0;
        }
    }
    if (out) *out = v;
    return 0;
fail:
    json_free(v);
    return rc;
}

static int run(const char *text, size_t len, int build, json_value **out)
{
    if (!text) return FACTUM_EBADJSON;
    jp j = {text, text + len, 0, build};
    json_value *v = NULL;
    int rc = parse_value(&j, build ? &v : NULL);
    if (rc) return rc;
    skip_ws(&j);
    if (j.p != j.end) {
        json_free(v);
        return FACTUM_EBADJSON;
    }
    if (out) *out = v;
    return 0;
}

int json_parse(const char *text, size_t len, json_value **out)
{
    return run(text, len, 1, out);
}

int json_validate(const char *text, size_t len)
{
    return run(text, len, 0, NULL);
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = obj->n; i-- > 0;)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return obj->items[i];
    return NULL;
}

int json_int64(const json_value *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER) return FACTUM_EBADJSON;
    const char *p = v->str;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    uint64_t acc = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return FACTUM_EBADJSON; /* fraction or exponent */
        uint64_t d = (uint64_t)(*p - '0');
        if (acc > (UINT64_MAX - d) / 10) return FACTUM_EBADJSON;
        acc = acc * 10 + d;
    }
    if (neg ? acc > (uint64_t)INT64_MAX + 1 : acc > (uint64_t)INT64_MAX) return FACTUM_EBADJSON;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

double json_number(const json_value *v)
{
    return (v && v->type == JSON_NUMBER) ? strtod(v->str, NULL) : 0.0;
}

/* One reservation for the worst case (every byte escaped as \u00XX), then
 * the bytes written straight into the buffer. */
int json_write_string(base_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (len > (SIZE_MAX - 2) / 6 || base_buf_reserve(b, len * 6 + 2)) return -ENOMEM;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (uint8_t)hex[c >> 4];
            *o++ = (uint8_t)hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

int json_write_value(base_buf *b, const json_value *v)
{
    int rc = 0;
    switch (v->type) {
    case JSON_NULL:
        return base_buf_append(b, "null", 4);
    case JSON_FALSE:
        return base_buf_append(b, "false", 5);
    case JSON_TRUE:
        return base_buf_append(b, "true", 4);
    case JSON_NUMBER:
        return base_buf_append(b, v->str, v->len);
    case JSON_STRING:
        return json_write_string(b, v->str, v->len);
    case JSON_ARRAY:
    case JSON_OBJECT:
        rc = base_buf_append(b, v->type == JSON_ARRAY ? "[" : "{", 1);
        for (size_t i = 0; i < v->n && !rc; i++) {
            if (i) rc = base_buf_append(b, ",", 1);
            if (!rc && v->type == JSON_OBJECT) {
                rc = json_write_string(b, v->keys[i], v->key_lens[i]);
                if (!rc) rc = base_buf_append(b, ":", 1);
            }
            if (!rc) rc = json_write_value(b, v->items[i]);
        }
        if (!rc) rc = base_buf_append(b, v->type == JSON_ARRAY ? "]" : "}", 1);
        return rc;
    }
    return FACTUM_EINVAL;
}
