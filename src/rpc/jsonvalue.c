/*
 * jsonvalue.c - JSON text into google.protobuf.Value for the Projections
 * service's State and Result (the invariants JV-1..3 are in jsonvalue.h).
 * A recursive-descent parser that builds protobuf-c structures directly in
 * a bump arena: no intermediate tree, one free for everything.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/jsonvalue.h"

#define CHUNK_MIN (4u << 10)
#define CHUNK_MAX (1u << 20)
#define ALIGN     16u

struct jv_chunk {
    struct jv_chunk *next;
    size_t cap, used;
    _Alignas(ALIGN) unsigned char data[];
};

typedef struct jv_parser {
    jv_arena *a;
    const unsigned char *p, *end;
    unsigned depth;
    int err;
} jv_parser;

void jv_init(jv_arena *a, unsigned max_depth, size_t max_bytes)
{
    memset(a, 0, sizeof *a);
    a->max_depth = max_depth;
    a->max_bytes = max_bytes;
}

void jv_free(jv_arena *a)
{
    struct jv_chunk *k = a->chunks;
    while (k) {
        struct jv_chunk *next = k->next;
        free(k);
        k = next;
    }
    a->chunks = NULL;
    a->held = 0;
}

const char *jv_strerror(int rc)
{
    switch (rc) {
    case JV_OK: return "ok";
    case JV_EMALFORMED: return "malformed JSON";
    case JV_EDEPTH: return "JSON nested too deep";
    case JV_ETOOBIG: return "JSON too large to convert";
    case JV_ENOMEM: return "out of memory";
    default: return "unknown error";
    }
}

/* n bytes, aligned, from the arena (JV-2); NULL with ps->err set. */
static void *take(jv_parser *ps, size_t n)
{
    jv_arena *a = ps->a;
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct jv_chunk *k = a->chunks;
    if (!k || k->cap - k->used < n) {
        size_t cap = k ? k->cap * 2 : CHUNK_MIN;
        if (cap > CHUNK_MAX) cap = CHUNK_MAX;
        if (cap < n) cap = n;
        size_t bytes = sizeof *k + cap;
        if (bytes > a->max_bytes || a->held > a->max_bytes - bytes ||
            (a->charge && a->charge(a->charge_ctx, bytes))) {
            ps->err = JV_ETOOBIG;
            return NULL;
        }
        if (a->charge) a->charged += bytes;
        struct jv_chunk *nk = malloc(bytes);
        if (!nk) {
            ps->err = JV_ENOMEM;
            return NULL;
        }
        a->held += bytes;
        nk->cap = cap;
        nk->used = 0;
        /* The new chunk goes first; the old one's tail is left unused
         * unless it is the bigger space (a large string in between). */
        if (k && k->cap - k->used > cap - n) {
            nk->next = k->next;
            k->next = nk;
            nk->used = n;
            return nk->data;
        }
        nk->next = k;
        a->chunks = k = nk;
    }
    void *r = k->data + k->used;
    k->used += n;
    return r;
}

static void skip_ws(jv_parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (< end), or 0 (JV-3). */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000;
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    unsigned cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* A string at ps->p (the opening quote), decoded into the arena. The
 * decoded text is never longer than the raw one: an escape of 6 bytes
 * gives at most 3, a pair of 12 gives 4. */
static char *parse_string(jv_parser *ps)
{
    const unsigned char *s = ++ps->p, *q = s;
    while (q < ps->end && *q != '"') {
        if (*q == '\\') {
            if (++q == ps->end) break;
        }
        q++;
    }
    if (q >= ps->end) {
        ps->err = JV_EMALFORMED;
        return NULL;
    }
    unsigned char *out = take(ps, (size_t)(q - s) + 1), *o = out;
    if (!out) return NULL;
    while (s < q) {
        unsigned c = *s;
        if (c < 0x20) goto bad;
        if (c != '\\') {
            size_t n = utf8_len(s, q);
            if (!n) goto bad;
            memcpy(o, s, n);
            o += n;
            s += n;
            continue;
        }
        s++;
        switch (*s++) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (q - s < 4 || hex4(s, &cp)) goto bad;
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && q - s >= 6 && s[0] == '\\' && s[1] == 'u' &&
                !hex4(s + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            } else if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0) {
                cp = 0xFFFD; /* JV-3: a lone surrogate, or a NUL */
            }
            o += put_utf8(o, cp);
            break;
        }
        default: goto bad;
        }
    }
    *o = 0;
    ps->p = q + 1;
    return (char *)out;
bad:
    ps->err = JV_EMALFORMED;
    return NULL;
}

static int parse_number(jv_parser *ps, double *out)
{
    const unsigned char *s = ps->p, *p = s, *e = ps->end;
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') {
        p++;
    } else if (p < e && *p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') p++;
    } else {
        return JV_EMALFORMED;
    }
    if (p < e && *p == '.') {
        p++;
        if (p == e || *p < '0' || *p > '9') return JV_EMALFORMED;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p == e || *p < '0' || *p > '9') return JV_EMALFORMED;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    /* strtod needs a terminated copy; long numbers are copied to the heap. */
    size_t n = (size_t)(p - s);
    char small[64], *buf = small;
    if (n >= sizeof small && !(buf = malloc(n + 1))) return JV_ENOMEM;
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = strtod(buf, NULL); /* out of range: +-HUGE_VAL or 0, as JSON.parse gives Infinity or 0 */
    if (buf != small) free(buf);
    ps->p = p;
    return JV_OK;
}

static int literal(jv_parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return JV_EMALFORMED;
    ps->p += n;
    return JV_OK;
}

static Google__Protobuf__Value *parse_value(jv_parser *ps);

/* Grow a pointer array (in the arena) to hold one more. */
static void **grow(jv_parser *ps, void **arr, size_t n, size_t *cap)
{
    if (n < *cap) return arr;
    size_t nc = *cap ? *cap * 2 : 4;
    void **na = take(ps, nc * sizeof *na);
    if (!na) return NULL;
    if (n) memcpy(na, arr, n * sizeof *na);
    *cap = nc;
    return na;
}

static Google__Protobuf__ListValue *parse_array(jv_parser *ps)
{
    Google__Protobuf__ListValue *l = take(ps, sizeof *l);
    if (!l) return NULL;
    google__protobuf__list_value__init(l);
    size_t cap = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return l;
    }
    for (;;) {
        Google__Protobuf__Value *v = parse_value(ps);
        if (!v) return NULL;
        void **arr = grow(ps, (void **)l->values, l->n_values, &cap);
        if (!arr) return NULL;
        l->values = (Google__Protobuf__Value **)arr;
        l->values[l->n_values++] = v;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return l;
        }
        ps->err = JV_EMALFORMED;
        return NULL;
    }
}

static Google__Protobuf__Struct *parse_object(jv_parser *ps)
{
    Google__Protobuf__Struct *st = take(ps, sizeof *st);
    if (!st) return NULL;
    google__protobuf__struct__init(st);
    size_t cap = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return st;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            ps->err = JV_EMALFORMED;
            return NULL;
        }
        Google__Protobuf__Struct__FieldsEntry *f = take(ps, sizeof *f);
        if (!f) return NULL;
        google__protobuf__struct__fields_entry__init(f);
        if (!(f->key = parse_string(ps))) return NULL;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            ps->err = JV_EMALFORMED;
            return NULL;
        }
        ps->p++;
        if (!(f->value = parse_value(ps))) return NULL;
        void **arr = grow(ps, (void **)st->fields, st->n_fields, &cap);
        if (!arr) return NULL;
        st->fields = (Google__Protobuf__Struct__FieldsEntry **)arr;
        st->fields[st->n_fields++] = f;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return st;
        }
        ps->err = JV_EMALFORMED;
        return NULL;
    }
}

static Google__Protobuf__Value *parse_value(jv_parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end) {
        ps->err = JV_EMALFORMED;
        return NULL;
    }
    Google__Protobuf__Value *v = take(ps, sizeof *v);
    if (!v) return NULL;
    google__protobuf__value__init(v);
    int rc = JV_OK;
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= ps->a->max_depth) { /* JV-1 */
            ps->err = JV_EDEPTH;
            return NULL;
        }
        ps->depth++;
        if (*ps->p == '{') {
            v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
            v->struct_value = parse_object(ps);
            if (!v->struct_value) return NULL;
        } else {
            v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
            v->list_value = parse_array(ps);
            if (!v->list_value) return NULL;
        }
        ps->depth--;
        return v;
    case '"':
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        v->string_value = parse_string(ps);
        return v->string_value ? v : NULL;
    case 't':
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = 1;
        rc = literal(ps, "true");
        break;
    case 'f':
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        v->bool_value = 0;
        rc = literal(ps, "false");
        break;
    case 'n':
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        rc = literal(ps, "null");
        break;
    default:
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        rc = parse_number(ps, &v->number_value);
    }
    if (rc) {
        ps->err = rc;
        return NULL;
    }
    return v;
}

int jv_parse(jv_arena *a, const char *json, size_t len, Google__Protobuf__Value **out)
{
    *out = NULL;
    jv_parser ps = {a, (const unsigned char *)json, (const unsigned char *)json + len, 0, JV_OK};
    Google__Protobuf__Value *v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) ps.err = JV_EMALFORMED;
    }
    if (ps.err || !v) return ps.err ? ps.err : JV_EMALFORMED;
    *out = v;
    return JV_OK;
}
