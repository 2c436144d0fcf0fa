/* Fuzz target: the HTTP/1.1 request parser (src/net/http1.c) on any bytes,
 * whole and cut at every length the first byte picks, under small and
 * large limits. Whatever the bytes, nothing may crash or read out of
 * bounds, and what it reports must lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *buf, size_t len, size_t max_head, size_t max_body)
{
    http1_request r;
    int rc = http1_parse(buf, len, max_head, max_body, &r);
    if (rc == HTTP1_DONE) {
        const char *end = (const char *)buf + len;
        if (r.head_len > len || r.content_length > len - r.head_len || r.head_len > max_head) abort();
        if (r.method < (const char *)buf || r.method + r.method_len > end || !r.method_len) abort();
        if (r.target < (const char *)buf || r.target + r.target_len > end || !r.target_len) abort();
        if (r.accept && (r.accept < (const char *)buf || r.accept + r.accept_len > end)) abort();
        if (r.content_length > max_body) abort();
    } else if (rc != HTTP1_INCOMPLETE && rc != HTTP1_EBAD && rc != HTTP1_EBODY && rc != HTTP1_EHEAD &&
               rc != HTTP1_ETE) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t cut = data[0] % (size < 64 ? size : 64);
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1); /* a private copy: reads past it are caught */
    if (!copy) return 0;
    memcpy(copy, data, size);
    check(copy, size, 16384, 1u << 20);
    check(copy, size, 64, 16);
    if (cut < size) check(copy, size - cut, 16384, 1u << 20);
    free(copy);
    return 0;
}
