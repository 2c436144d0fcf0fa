/*
 * uuid.c - parsing, formatting and generating UUIDs (RFC 4122 byte order).
 * Random ids come from a per-thread xoshiro256** generator seeded from
 * getrandom(2): appends generate ids on the hot path, so a syscall per id
 * would be too slow, and ids need uniqueness, not secrecy.
 */
#include "base/base.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int factum_uuid_parse(const char *text, size_t len, uint8_t out[16])
{
    if (!text) return FACTUM_EBADUUID;
    if (len >= 2 && text[0] == '{' && text[len - 1] == '}') {
        text++;
        len -= 2;
    }
    if (len != 36) return FACTUM_EBADUUID;
    size_t j = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') return FACTUM_EBADUUID;
            i++;
            continue;
        }
        int hi = hexval(text[i]), lo = hexval(text[i + 1]);
        if (hi < 0 || lo < 0) return FACTUM_EBADUUID;
        out[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

void factum_uuid_format(const uint8_t id[16], char buf[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) buf[j++] = '-';
        buf[j++] = hex[id[i] >> 4];
        buf[j++] = hex[id[i] & 15];
    }
    buf[j] = 0;
}

static _Thread_local uint64_t rng_s[4];
static _Thread_local int rng_seeded;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(rng_s, sizeof rng_s, 0) != (ssize_t)sizeof rng_s) {
            /* No entropy source: fall back to time, pid and an address. */
            uint64_t seed =
                (uint64_t)base_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&rng_s;
            for (int i = 0; i < 4; i++) {
                seed += 0x9e3779b97f4a7c15ull;
                uint64_t z = seed;
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                rng_s[i] = z ^ (z >> 31);
            }
        }
        if (!(rng_s[0] | rng_s[1] | rng_s[2] | rng_s[3])) rng_s[0] = 1;
        rng_seeded = 1;
    }
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

void factum_uuid_v4(uint8_t out[16])
{
    uint64_t a = rng_next(), b = rng_next();
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

int factum_check_stream_name(const char *name, size_t len)
{
    if (!name || len == 0 || len > FACTUM_MAX_STREAM_LEN) return FACTUM_EBADNAME;
    if (!base_utf8_valid(name, len)) return FACTUM_EBADNAME;
    return 0;
}
