/* Unit tests of src/rpc/jsonvalue.c, a projection's state (JSON) into the
 * google.protobuf.Value of Projections.State/Result: every JSON type and
 * escape, the Value packed and decoded again, malformed text refused
 * (JV-3), nesting bounded without a deep stack (JV-1), memory bounded by
 * the limit and by the charge hook (JV-2), and random mutations of valid
 * text that never crash and never give a Value that does not pack. */
#include "harness.h"

#include "base/base.h"
#include "net/pb.h"
#include "rpc/jsonvalue.h"

#define DEPTH 64
#define BIG   (64u << 20)

static int parse(const char *text, Google__Protobuf__Value **v, jv_arena *a)
{
    jv_init(a, DEPTH, BIG);
    return jv_parse(a, text, strlen(text), v);
}

/* Parse, pack, decode (with the network's guard), and return the decoded
 * copy's kind; -1 on any failure. */
static int roundtrip_kind(const char *text)
{
    jv_arena a;
    Google__Protobuf__Value *v;
    int kind = -1;
    if (parse(text, &v, &a) == JV_OK) {
        size_t n = google__protobuf__value__get_packed_size(v);
        uint8_t *buf = malloc(n ? n : 1);
        google__protobuf__value__pack(v, buf);
        pb_alloc pa;
        pb_alloc_init(&pa, pb_decode_limit(n));
        ProtobufCMessage *m;
        if (pb_unpack(&google__protobuf__value__descriptor, buf, n, &pa, &m) == PB_OK) {
            kind = (int)((Google__Protobuf__Value *)m)->kind_case;
            pb_free(m, &pa);
        }
        free(buf);
    }
    jv_free(&a);
    return kind;
}

static void t_scalars(void)
{
    jv_arena a;
    Google__Protobuf__Value *v;
    CHECK_RC(parse(" null ", &v, &a), JV_OK);
    CHECK(v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    jv_free(&a);
    CHECK_RC(parse("true", &v, &a), JV_OK);
    CHECK(v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE && v->bool_value);
    jv_free(&a);
    CHECK_RC(parse("false", &v, &a), JV_OK);
    CHECK(v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE && !v->bool_value);
    jv_free(&a);
    const struct {
        const char *text;
        double want;
    } nums[] = {{"0", 0},         {"-0", 0},         {"42", 42},
                {"-17", -17},     {"3.25", 3.25},    {"1e3", 1000},
                {"2.5E-1", 0.25}, {"-1.5e+2", -150}, {"9007199254740993", 9007199254740992.0}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        CHECK_RC(parse(nums[i].text, &v, &a), JV_OK);
        CHECK(v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE &&
              v->number_value == nums[i].want);
        jv_free(&a);
    }
    /* A number longer than the parser's small buffer. */
    char longnum[400];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = 0;
    CHECK_RC(parse(longnum, &v, &a), JV_OK);
    CHECK(v->number_value > 1e300);
    jv_free(&a);
}

static void t_strings(void)
{
    jv_arena a;
    Google__Protobuf__Value *v;
    CHECK_RC(parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", &v, &a), JV_OK);
    CHECK(!strcmp(v->string_value, "a\"b\\c/d\b\f\n\r\t"));
    jv_free(&a);
    CHECK_RC(parse("\"caf\\u00e9 \xe2\x82\xac\"", &v, &a), JV_OK);
    CHECK(!strcmp(v->string_value, "caf\xc3\xa9 \xe2\x82\xac"));
    jv_free(&a);
    /* A surrogate pair is one 4-byte character. */
    CHECK_RC(parse("\"\\ud83d\\ude00\"", &v, &a), JV_OK);
    CHECK(!strcmp(v->string_value, "\xf0\x9f\x98\x80"));
    jv_free(&a);
    /* JV-3: a lone surrogate and a NUL become U+FFFD. */
    CHECK_RC(parse("\"x\\ud800y\\udc00z\\u0000\"", &v, &a), JV_OK);
    CHECK(!strcmp(v->string_value, "x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd"));
    jv_free(&a);
    CHECK_RC(parse("\"\"", &v, &a), JV_OK);
    CHECK(v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && !strcmp(v->string_value, ""));
    jv_free(&a);
}

static void t_containers(void)
{
    jv_arena a;
    Google__Protobuf__Value *v;
    CHECK_RC(parse("{\"count\": 3, \"names\": [\"a\", {\"b\": null}, []], \"e\": {}, \"count\": 4}", &v, &a),
             JV_OK);
    REQUIRE(v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    Google__Protobuf__Struct *s = v->struct_value;
    REQUIRE(s->n_fields == 4); /* order kept, a repeated key kept twice (the last wins when decoded) */
    CHECK(!strcmp(s->fields[0]->key, "count") && s->fields[0]->value->number_value == 3);
    CHECK(!strcmp(s->fields[3]->key, "count") && s->fields[3]->value->number_value == 4);
    Google__Protobuf__ListValue *l = s->fields[1]->value->list_value;
    REQUIRE(l && l->n_values == 3);
    CHECK(!strcmp(l->values[0]->string_value, "a"));
    CHECK(l->values[1]->struct_value->n_fields == 1);
    CHECK(l->values[2]->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE &&
          l->values[2]->list_value->n_values == 0);
    CHECK(s->fields[2]->value->struct_value->n_fields == 0);
    jv_free(&a);
    /* Many members: the arrays grow. */
    base_buf b = {0};
    base_buf_append(&b, "[", 1);
    for (int i = 0; i < 10000; i++) base_buf_printf(&b, "%s{\"k%d\":%d}", i ? "," : "", i, i);
    base_buf_append(&b, "]", 1);
    jv_init(&a, DEPTH, BIG);
    CHECK_RC(jv_parse(&a, (const char *)b.data, b.len, &v), JV_OK);
    CHECK(v && v->list_value->n_values == 10000 &&
          v->list_value->values[9999]->struct_value->fields[0]->value->number_value == 9999);
    jv_free(&a);
    base_buf_free(&b);
    CHECK(roundtrip_kind("{\"a\":[1,2,{\"b\":\"c\"}],\"d\":true}") ==
          GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    CHECK(roundtrip_kind("[]") == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    CHECK(roundtrip_kind("\"\\u0000\"") == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
}

/* JV-3 */
static void t_malformed(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{a:1}",
        "{'a':1}",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "falsey",
        "1 2",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"a\nb\"",
        "\"\t\"",
        "\"\\",
        "[\"a\"",
        "\"\xc0\x80\"",     /* overlong NUL */
        "\"\xed\xa0\x80\"", /* an encoded surrogate */
        "\"\xff\"",
        "\"\xe2\x82\"",         /* not UTF-8, a cut sequence */
        "\"\xf4\x90\x80\x80\"", /* beyond U+10FFFF */
        "{\"a\":1}}",
        "[]]",
        "/*c*/1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        jv_arena a;
        Google__Protobuf__Value *v = (void *)1;
        int rc = parse(bad[i], &v, &a);
        if (rc != JV_EMALFORMED) fprintf(stderr, "  input #%zu '%s' gave %d\n", i, bad[i], rc);
        CHECK(rc == JV_EMALFORMED);
        CHECK(v == NULL);
        jv_free(&a);
    }
    /* Text with a NUL inside, given by length. */
    jv_arena a;
    Google__Protobuf__Value *v;
    jv_init(&a, DEPTH, BIG);
    CHECK_RC(jv_parse(&a, "[1]\0", 4, &v), JV_EMALFORMED);
    jv_free(&a);
}

static char *nested(size_t depth, char open, char close, const char *inner)
{
    size_t n = strlen(inner);
    char *s = malloc(2 * depth + n + 1);
    memset(s, open, depth);
    memcpy(s + depth, inner, n);
    memset(s + depth + n, close, depth);
    s[2 * depth + n] = 0;
    return s;
}

/* JV-1 */
static void t_deep(void)
{
    jv_arena a;
    Google__Protobuf__Value *v;
    char *ok = nested(DEPTH, '[', ']', "1");
    CHECK_RC(parse(ok, &v, &a), JV_OK);
    jv_free(&a);
    free(ok);
    /* The service's limit, (PB_MAX_DEPTH - 2) / 2 levels of JSON: what it
     * sends decodes within PB-1 (a level of JSON is two of messages). */
    char *svc = nested((PB_MAX_DEPTH - 2) / 2, '[', ']', "1");
    CHECK(roundtrip_kind(svc) == GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    free(svc);
    char *over = nested(DEPTH + 1, '[', ']', "1");
    CHECK_RC(parse(over, &v, &a), JV_EDEPTH);
    CHECK(v == NULL);
    jv_free(&a);
    free(over);
    /* A million levels: refused at the limit, not by the stack. */
    char *huge = nested(1000000, '[', ']', "");
    CHECK_RC(parse(huge, &v, &a), JV_EDEPTH);
    jv_free(&a);
    free(huge);
    /* Objects count as levels too, mixed with arrays. */
    base_buf b = {0};
    for (int i = 0; i < DEPTH + 1; i++) base_buf_append(&b, i % 2 ? "[" : "{\"k\":", i % 2 ? 1 : 5);
    base_buf_append(&b, "0", 1);
    for (int i = DEPTH; i >= 0; i--) base_buf_append(&b, i % 2 ? "]" : "}", 1);
    jv_init(&a, DEPTH, BIG);
    CHECK_RC(jv_parse(&a, (const char *)b.data, b.len, &v), JV_EDEPTH);
    jv_free(&a);
    jv_init(&a, DEPTH + 1, BIG);
    CHECK_RC(jv_parse(&a, (const char *)b.data, b.len, &v), JV_OK);
    jv_free(&a);
    base_buf_free(&b);
    /* An unclosed deep prefix is malformed or too deep, never a crash. */
    char *cut = nested(500, '{', '}', "");
    cut[500] = 0;
    CHECK(parse(cut, &v, &a) != JV_OK);
    jv_free(&a);
    free(cut);
}

typedef struct budget {
    size_t left, told;
} budget;

static int charge_budget(void *ctx, size_t n)
{
    budget *b = ctx;
    if (n > b->left) return -1;
    b->left -= n;
    b->told += n;
    return 0;
}

/* JV-2 */
static void t_huge(void)
{
    /* 2 M small numbers: 4 MiB of text, far more as a Value. */
    size_t n = 2u << 20;
    char *text = malloc(2 * n + 2);
    text[0] = '[';
    for (size_t i = 0; i < n; i++) {
        text[1 + 2 * i] = '7';
        text[2 + 2 * i] = ',';
    }
    text[2 * n] = ']';
    text[2 * n + 1] = 0;
    jv_arena a;
    Google__Protobuf__Value *v;
    jv_init(&a, DEPTH, 8u << 20);
    CHECK_RC(jv_parse(&a, text, 2 * n + 1, &v), JV_ETOOBIG);
    CHECK(v == NULL);
    CHECK(a.held <= 8u << 20);
    jv_free(&a);
    /* With room: every element there. */
    jv_init(&a, DEPTH, 1u << 30);
    CHECK_RC(jv_parse(&a, text, 2 * n + 1, &v), JV_OK);
    CHECK(v && v->list_value->n_values == n && v->list_value->values[n - 1]->number_value == 7);
    jv_free(&a);
    /* The charge hook: refused at its budget, told exactly what was taken. */
    budget bu = {3u << 20, 0};
    jv_init(&a, DEPTH, 1u << 30);
    a.charge = charge_budget;
    a.charge_ctx = &bu;
    CHECK_RC(jv_parse(&a, text, 2 * n + 1, &v), JV_ETOOBIG);
    CHECK(bu.told == a.charged && a.charged == a.held && a.held <= 3u << 20);
    jv_free(&a);
    free(text);
    /* One long string: a chunk of its own. */
    size_t sl = 5u << 20;
    char *s = malloc(sl + 3);
    s[0] = '"';
    memset(s + 1, 'x', sl);
    s[sl + 1] = '"';
    s[sl + 2] = 0;
    jv_init(&a, DEPTH, BIG);
    CHECK_RC(jv_parse(&a, s, sl + 2, &v), JV_OK);
    CHECK(v && strlen(v->string_value) == sl);
    jv_free(&a);
    jv_init(&a, DEPTH, 1u << 20);
    CHECK_RC(jv_parse(&a, s, sl + 2, &v), JV_ETOOBIG);
    jv_free(&a);
    free(s);
}

/* Mutations of valid text: whatever comes out, nothing crashes, and a
 * Value that comes out packs and decodes. */
static void t_mutations(void)
{
    static const char *const seeds[] = {
        "{\"count\":3,\"names\":[\"a\",\"b\\u00e9\"],\"nested\":{\"x\":[1,2.5,-3e2,true,false,null]}}",
        "[[[[{\"a\":[{}]}]]]]",
        "\"\\ud83d\\ude00 \\n\"",
    };
    h_rng r = {harness_seed("jsonvalue mutations")};
    static const char alphabet[] = "{}[]\",:\\ -.e0123456789tfnu\x80\xc3\xff";
    for (int it = 0; it < 20000; it++) {
        const char *seed = seeds[h_below(&r, sizeof seeds / sizeof *seeds)];
        size_t n = strlen(seed);
        char buf[256];
        memcpy(buf, seed, n);
        int edits = 1 + (int)h_below(&r, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = h_below(&r, n ? n : 1);
            switch (h_below(&r, 3)) {
            case 0: buf[at] = alphabet[h_below(&r, sizeof alphabet - 1)]; break;
            case 1:
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            default:
                if (n < sizeof buf - 1) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[h_below(&r, sizeof alphabet - 1)];
                    n++;
                }
            }
        }
        jv_arena a;
        Google__Protobuf__Value *v;
        jv_init(&a, 8, 1u << 20);
        int rc = jv_parse(&a, buf, n, &v);
        CHECK(rc == JV_OK || rc == JV_EMALFORMED || rc == JV_EDEPTH);
        if (rc == JV_OK) {
            size_t len = google__protobuf__value__get_packed_size(v);
            uint8_t *out = malloc(len ? len : 1);
            google__protobuf__value__pack(v, out);
            pb_alloc pa;
            pb_alloc_init(&pa, pb_decode_limit(len));
            ProtobufCMessage *m;
            int prc = pb_unpack(&google__protobuf__value__descriptor, out, len, &pa, &m);
            CHECK(prc == PB_OK);
            if (prc == PB_OK) pb_free(m, &pa);
            free(out);
        }
        jv_free(&a);
    }
}

int main(void)
{
    RUN(t_scalars);
    RUN(t_strings);
    RUN(t_containers);
    RUN(t_malformed);
    RUN(t_deep);
    RUN(t_huge);
    RUN(t_mutations);
    return harness_done();
}
