/*
 * util.c - hashing, UTF-8 validation, clocks and the byte buffer of base.h.
 */
#include "base/base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <time.h>

/* A 64-bit multiply-xorshift hash over 8-byte words. The constants are odd
 * 64-bit multipliers with good avalanche; the final mix makes every input bit
 * affect every output bit. Stored on disk: never change it without bumping
 * the format version. */
static inline uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_mask = UINT64_MAX;

void base_hash_mask_for_tests(uint64_t mask)
{
    hash_mask = mask;
}

void base_hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

int base_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n)
{
    if (slen != 2 * n) return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        if (i % 2)
            out[i / 2] = (uint8_t)(out[i / 2] | d);
        else
            out[i / 2] = (uint8_t)(d << 4);
    }
    return 0;
}

uint64_t base_hash64(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ hash_mix(w + 0x2545f4914f6cdd1dull)) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = (h ^ hash_mix(w + 0x2545f4914f6cdd1dull + len)) * 0xc4ceb9fe1a85ec53ull;
    }
    return hash_mix(h) & hash_mask;
}

int base_utf8_valid(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str, *end = s + len;
    while (s < end) {
        uint8_t c = *s;
        if (c == 0) return 0;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - s) <= n) return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        s += n + 1;
    }
    return 1;
}

static _Atomic int64_t clock_offset_ns; /* tests only (base_clock_step_for_tests) */

void base_clock_step_for_tests(int64_t delta_ns)
{
    atomic_fetch_add(&clock_offset_ns, delta_ns);
}

int64_t base_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
           atomic_load_explicit(&clock_offset_ns, memory_order_relaxed);
}

uint64_t base_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t base_buf_cap_after(const base_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return b->cap;
    size_t need = b->len + extra;
    if (need < b->len) return SIZE_MAX;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    return cap;
}

int base_buf_reserve(base_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t cap = base_buf_cap_after(b, extra);
    if (cap == SIZE_MAX) return -ENOMEM;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int base_buf_append(base_buf *b, const void *p, size_t n)
{
    int rc = base_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int base_buf_printf(base_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return -EINVAL;
    }
    int rc = base_buf_reserve(b, (size_t)n + 1);
    if (rc) {
        va_end(ap2);
        return rc;
    }
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

void base_buf_free(base_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
