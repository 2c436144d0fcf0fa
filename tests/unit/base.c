/* Unit tests of src/base: CRC32C against known vectors (hardware and table
 * paths agree), the stream hash's stability, UTF-8 validation, UUIDs and
 * the JSON parser. */
#include "harness.h"

#include "base/base.h"
#include "base/json.h"

static void t_crc32c(void)
{
    /* RFC 3720 B.4 test vectors. */
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, 32);
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    CHECK(base_crc32c(0, zeros, 32) == 0x8a9136aau);
    CHECK(base_crc32c(0, ones, 32) == 0x62a8ab43u);
    CHECK(base_crc32c(0, inc, 32) == 0x46dd794eu);
    CHECK(base_crc32c(0, "123456789", 9) == 0xe3069283u);
    /* Incremental equals one-shot, at every split and misalignment. */
    uint8_t buf[200];
    for (int i = 0; i < 200; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    uint32_t whole = base_crc32c(0, buf + 3, 190);
    for (size_t cut = 0; cut <= 190; cut += 7)
        CHECK(base_crc32c(base_crc32c(0, buf + 3, cut), buf + 3 + cut, 190 - cut) == whole);
}

static void t_hash(void)
{
    /* Stored on disk: these values must never change. */
    CHECK(base_hash64("account-42", 10) == base_hash64("account-42", 10));
    CHECK(base_hash64("account-42", 10) != base_hash64("account-43", 10));
    CHECK(base_hash64("", 0) != base_hash64("a", 1));
    CHECK(base_hash64("abcdefgh", 8) != base_hash64("abcdefgh\0", 9));
    /* Single-bit changes flip about half the output bits. */
    int total = 0;
    for (int i = 0; i < 64; i++) {
        char a[9] = "xxxxxxxx";
        char b[9] = "xxxxxxxx";
        b[i / 8] ^= (char)(1 << (i % 8));
        total += __builtin_popcountll(base_hash64(a, 8) ^ base_hash64(b, 8));
    }
    CHECK(total > 64 * 24 && total < 64 * 40);
}

static void t_hex(void)
{
    const uint8_t in[4] = {0x00, 0x9f, 0xa0, 0xff};
    char out[9];
    base_hex_encode(in, 4, out);
    CHECK(strcmp(out, "009fa0ff") == 0);
    uint8_t back[4];
    CHECK(base_hex_decode(out, 8, back, 4) == 0 && !memcmp(back, in, 4));
    CHECK(base_hex_decode("009fa0f", 7, back, 4) == -1);  /* too short */
    CHECK(base_hex_decode("009FA0FF", 8, back, 4) == -1); /* upper case: not what we write */
    CHECK(base_hex_decode("009fa0fg", 8, back, 4) == -1);
}

static void t_utf8(void)
{
    CHECK(base_utf8_valid("plain", 5));
    CHECK(base_utf8_valid("caf\xc3\xa9", 5));
    CHECK(base_utf8_valid("\xf0\x9f\x98\x80", 4));  /* emoji */
    CHECK(!base_utf8_valid("\xc3", 1));             /* truncated */
    CHECK(!base_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    CHECK(!base_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    CHECK(!base_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!base_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!base_utf8_valid("a\0b", 3));
    CHECK(!base_utf8_valid("\x80", 1));
    CHECK_RC(factum_check_stream_name("ok", 2), 0);
    CHECK_RC(factum_check_stream_name("", 0), FACTUM_EBADNAME);
}

static void t_uuid(void)
{
    uint8_t a[16], b[16];
    factum_uuid_v4(a);
    factum_uuid_v4(b);
    CHECK(memcmp(a, b, 16) != 0);
    CHECK((a[6] >> 4) == 4 && (a[8] & 0xc0) == 0x80);
    char t[37];
    factum_uuid_format(a, t);
    uint8_t c[16];
    CHECK_RC(factum_uuid_parse(t, 36, c), 0);
    CHECK(!memcmp(a, c, 16));
    CHECK_RC(factum_uuid_parse(t, 35, c), FACTUM_EBADUUID);
    CHECK_RC(factum_uuid_parse("123e4567e89b-12d3-a456-4266141740000", 36, c), FACTUM_EBADUUID);
    CHECK_RC(factum_uuid_parse(NULL, 0, c), FACTUM_EBADUUID);
}

static void t_json(void)
{
    json_value *v;
    const char *doc = " {\"$maxCount\": 9223372036854775807, \"s\": \"a\\u00e9\\n\\ud83d\\ude00\", \"arr\": "
                      "[1, -2.5e3, true, null], \"o\": {}} ";
    CHECK_RC(json_parse(doc, strlen(doc), &v), 0);
    REQUIRE(v);
    int64_t x;
    CHECK_RC(json_int64(json_get(v, "$maxCount"), &x), 0);
    CHECK(x == INT64_MAX);
    const json_value *s = json_get(v, "s");
    CHECK(s && s->type == JSON_STRING && s->len == 8 && !memcmp(s->str, "a\xc3\xa9\n\xf0\x9f\x98\x80", 8));
    const json_value *arr = json_get(v, "arr");
    CHECK(arr && arr->n == 4 && json_number(arr->items[1]) == -2500.0);
    CHECK_RC(json_int64(arr->items[1], &x), FACTUM_EBADJSON);
    base_buf b = {0};
    CHECK_RC(json_write_value(&b, v), 0);
    json_value *w;
    CHECK_RC(json_parse((char *)b.data, b.len, &w), 0);
    json_free(w);
    base_buf_free(&b);
    json_free(v);
    const char *bad[] = {"",      "{",        "{\"a\"}",           "[1,]",     "{\"a\":1,}", "01",
                         "1.",    "-",        "\"\\x\"",           "\"\x01\"", "tru",        "\"\\ud800\"",
                         "[1] 2", "\"\xff\"", "{\"a\":1 \"b\":2}", "nul"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = json_parse(bad[i], strlen(bad[i]), &v);
        if (rc != FACTUM_EBADJSON) fprintf(stderr, "  accepted bad JSON #%zu: %s\n", i, bad[i]);
        CHECK_RC(rc, FACTUM_EBADJSON);
        CHECK_RC(json_validate(bad[i], strlen(bad[i])), FACTUM_EBADJSON);
    }
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK_RC(json_validate(deep, 200), FACTUM_EBADJSON); /* nesting limit */
    CHECK_RC(json_validate(deep + 40, 120), 0);
    CHECK_RC(json_int64(NULL, &x), FACTUM_EBADJSON);
    CHECK_RC(json_parse("\"a\\u0000b\"", 10, &v), 0); /* U+0000 is valid JSON */
    CHECK(v && v->len == 3 && v->str[1] == 0 && v->str[2] == 'b');
    json_free(v);
    CHECK_RC(json_parse("-9223372036854775809", 20, &v), 0);
    CHECK_RC(json_int64(v, &x), FACTUM_EBADJSON);
    json_free(v);
}

int main(void)
{
    RUN(t_crc32c);
    RUN(t_hash);
    RUN(t_hex);
    RUN(t_utf8);
    RUN(t_uuid);
    RUN(t_json);
    return harness_done();
}
