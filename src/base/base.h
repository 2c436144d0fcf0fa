/*
 * base.h - the small utilities every layer uses: checksums, hashing, UUIDs,
 * UTF-8 checks, time, little-endian encoding and a growable byte buffer.
 * Nothing here does I/O or knows about events.
 */
#ifndef FACTUM_BASE_H
#define FACTUM_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "factum.h"

/* CRC32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
uint32_t base_crc32c(uint32_t crc, const void *buf, size_t len);

/* 64-bit hash of a byte string (stream names). Stable across versions: it is
 * stored on disk in index tables. */
uint64_t base_hash64(const void *buf, size_t len);

/* n bytes as 2n lower-case hex digits and a NUL into out (2n + 1 bytes). */
void base_hex_encode(const uint8_t *p, size_t n, char *out);
/* Exactly 2n lower-case hex digits (slen characters) into out (n bytes).
 * 0, or -1 for any other text. */
int base_hex_decode(const char *s, size_t slen, uint8_t *out, size_t n);
/* Tests only: keep just these bits of every hash, so that hash collisions
 * become common and their handling is exercised. Never in production: the
 * hashes are stored on disk. */
void base_hash_mask_for_tests(uint64_t mask);

/* Validates UTF-8 (no overlongs, no surrogates, no NUL). Returns 1 if valid. */
int base_utf8_valid(const char *s, size_t len);

/* Wall-clock time in ns since the epoch, and a monotonic clock in ns. */
int64_t base_now_ns(void);
/* Tests only: add delta_ns to what base_now_ns returns from now on (steps
 * the wall clock backwards or forwards, as NTP or a restored VM would). */
void base_clock_step_for_tests(int64_t delta_ns);
uint64_t base_mono_ns(void);

/* Little-endian fixed-width encoding. */
static inline void base_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void base_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void base_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t base_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t base_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* x86/ARM little-endian hosts; see docs/format.md */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}
static inline uint64_t base_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* A growable byte buffer. Zero-initialise, then append; base_buf_free. */
typedef struct base_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} base_buf;

int base_buf_reserve(base_buf *b, size_t extra); /* 0 or -ENOMEM */
/* The capacity b would have after base_buf_reserve(b, extra) (b->cap when
 * no growth is needed; SIZE_MAX on overflow): to account for memory before
 * taking it. */
size_t base_buf_cap_after(const base_buf *b, size_t extra);
int base_buf_append(base_buf *b, const void *p, size_t n);
int base_buf_printf(base_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void base_buf_free(base_buf *b);

/* Round up to a multiple of a power of two. */
static inline uint64_t base_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* The CPU's hint for one turn of a spin-wait loop (x86 PAUSE, AArch64
 * YIELD, as Linux's cpu_relax): it lets a sibling hardware thread run and
 * eases the polled cache line. Elsewhere only a compiler barrier. */
static inline void base_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
