/* Fuzz target: the recovery scanner (log_scan) and the resynchronisation
 * used by verify (log_find_batch) over an arbitrary segment body. The input
 * becomes the data of a 1 MiB in-memory segment; whatever it holds, the
 * scan must end with a clean end, a torn tail or reported corruption, and
 * report only events inside the segment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEG (1u << 20)

static int on_event(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff)
{
    (void)ff;
    const uint8_t *base = ctx;
    if (lo < LOG_SEG_HEADER || lo >= SEG) abort();
    if ((const uint8_t *)ev->data < base || (const uint8_t *)ev->data + ev->data_len > base + SEG) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static flog *l;
    static uint8_t *seg;
    static log_seg s0;
    if (!l) {
        l = calloc(1, sizeof *l);
        seg = calloc(1, SEG);
        if (!l || !seg) return 0;
        l->seg_size = SEG;
        s0.map = seg;
        s0.fd = -1;
        pthread_mutex_init(&l->seg_mu, NULL);
        if (log_seg_publish(l, 0, &s0)) return 0;
        atomic_store(&l->n_segs, 1);
    }
    memset(seg + LOG_SEG_HEADER, 0, SEG - LOG_SEG_HEADER);
    size_t n = size < SEG - LOG_SEG_HEADER ? size : SEG - LOG_SEG_HEADER;
    memcpy(seg + LOG_SEG_HEADER, data, n);
    log_scan_result res;
    log_scan(l, LOG_SEG_HEADER, 1, on_event, NULL, seg, &res);
    if (res.end_lo < LOG_SEG_HEADER || res.end_lo > SEG) abort();
    uint64_t lo, first;
    if (log_find_batch(l, LOG_SEG_HEADER, &lo, &first) && (lo < LOG_SEG_HEADER || lo >= SEG)) abort();
    return 0;
}
