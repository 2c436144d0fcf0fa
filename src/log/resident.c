/*
 * resident.c - is a range of the mapped log in memory? A read on factumd's
 * event loop must not take a major page fault (the loop would wait for the
 * disk while every other client waits for it); a read that asks
 * (FACTUM_NOWAIT, factum.h) checks here, before touching a frame, that every
 * page of it is in the page cache (mincore), and otherwise gives up so that
 * its caller can repeat the read on a thread that may wait
 * (docs/adr/0023-cold-reads-off-the-loop.md).
 *
 * Design note (invariants; tests cite them as RES-n):
 *  RES-1  A page is reported resident only if mincore said so for it, in
 *         this epoch or (a remembered answer) earlier in the same epoch of
 *         about a second: between those the kernel may have evicted it,
 *         and the read then takes the fault (a heuristic, never a
 *         correctness matter: the bytes read are the same).
 *  RES-2  The cache of answers is a fixed array of atomic words (no lock,
 *         no allocation): threads may race on a slot; the worst outcome is
 *         one more mincore.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log/log.h"

static uintptr_t page_size(void)
{
    static _Atomic uintptr_t ps;
    uintptr_t p = atomic_load_explicit(&ps, memory_order_relaxed);
    if (!p) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (uintptr_t)v : 4096;
        atomic_store_explicit(&ps, p, memory_order_relaxed);
    }
    return p;
}

/* The word a slot holds for a page seen resident in epoch e (RES-1). */
static uint64_t slot_word(uintptr_t page, unsigned epoch)
{
    return (uint64_t)page | ((uint64_t)(epoch & 0x7ff) << 1) | 1;
}

int log_resident(flog *l, const uint8_t *p, uint64_t len, unsigned epoch)
{
    if (!len) return 1;
    uintptr_t ps = page_size();
    uintptr_t a = (uintptr_t)p & ~(ps - 1), end = (uintptr_t)p + len;
    while (a < end) {
        _Atomic uint64_t *slot = &l->res_cache[(a / ps) & (LOG_RES_SLOTS - 1)];
        uint64_t want = slot_word(a, epoch);
        if (atomic_load_explicit(slot, memory_order_relaxed) == want) {
            a += ps;
            continue;
        }
        /* Ask for this page and the following ones of the range at once. */
        unsigned char vec[64];
        uintptr_t n = (end - a + ps - 1) / ps;
        if (n > sizeof vec) n = sizeof vec;
        if (mincore((void *)a, n * ps, vec)) return 0; /* cannot tell: not known resident */
        for (uintptr_t i = 0; i < n; i++, a += ps) {
            if (!(vec[i] & 1)) return 0;
            atomic_store_explicit(&l->res_cache[(a / ps) & (LOG_RES_SLOTS - 1)], slot_word(a, epoch),
                                  memory_order_relaxed);
        }
    }
    return 1;
}

int log_frame_resident(flog *l, uint64_t lo, unsigned epoch)
{
    uint64_t avail;
    const uint8_t *p = log_ptr(l, lo, &avail);
    if (!p) return 1; /* nothing mapped: the read reports it */
    if (avail < 8) return log_resident(l, p, avail, epoch);
    if (!log_resident(l, p, 8, epoch)) return 0;
    uint32_t len = base_get32(p);
    /* A length that is damage is the decoder's to report: check what it would touch. */
    uint64_t n = len > avail || len < 8 ? 8 : len;
    if (((uintptr_t)p & (page_size() - 1)) + n <= page_size()) return 1; /* the header's page, checked */
    return log_resident(l, p, n, epoch);
}
