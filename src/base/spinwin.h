/*
 * spinwin.h - an adaptive window of polling before sleeping: how long a
 * thread that expects something soon (factumd's loop after an answer,
 * NET-11; a client thread waiting for its answer, CL-8) looks for it
 * before it sleeps, where a wake-up costs tens of microseconds.
 *
 * The rule (SPIN-1..3; SPIN-4 below):
 *  SPIN-1  What comes while polling, or within max_ns of the start of the
 *          wait even if slept through, opens the window to max_ns.
 *  SPIN-2  SPINWIN_MISSES polls in a row that catch nothing close the
 *          window (the thread sleeps at once). It stays whole until
 *          then: one slow answer among quick ones must not shrink it
 *          below what the quick ones need (halving it on each miss, as
 *          first built, closed it after one outlier when answers took
 *          most of the window: TLS's 40-45 us against 50).
 *  SPIN-3  A closed window is probed: after sleeping through `gap` waits,
 *          the next wait polls for max_ns once. A probe that catches
 *          nothing doubles the gap (up to SPINWIN_GAP_MAX); one that
 *          catches opens the window and the gap is 1 again. Without
 *          probes a window once closed could stay closed for good: when a
 *          wake-up alone takes longer than max_ns, no wait slept through
 *          is ever short enough for SPIN-1.
 * Steady slow answers cost three polls, then one poll every 64 waits
 * (and, where SPIN-4 is used, a short poll at their end).
 * A window with max_ns 0 never polls. One owner; no locking.
 */
#ifndef FACTUM_SPINWIN_H
#define FACTUM_SPINWIN_H

#include <stdint.h>

#define SPINWIN_GAP_MAX 64u    /* waits slept through between probes, at most */
#define SPINWIN_MISSES  3u     /* polls in vain in a row that close the window */

typedef struct spinwin {
    uint32_t max_ns; /* the longest window; 0: never poll */
    uint32_t win_ns; /* the window now; 0: closed */
    uint32_t skip;   /* closed: waits to sleep through before the next probe */
    uint32_t gap;    /* closed: the waits between probes now */
    uint32_t misses; /* open: polls in vain in a row */
} spinwin;

static inline void spinwin_init(spinwin *w, uint32_t max_ns)
{
    w->max_ns = w->win_ns = max_ns;
    w->skip = 0;
    w->gap = 1;
    w->misses = 0;
}

/* How long to poll at the start of this wait (0: sleep at once). */
static inline uint32_t spinwin_span(const spinwin *w)
{
    if (w->win_ns || !w->max_ns) return w->win_ns;
    return w->skip ? 0 : w->max_ns; /* SPIN-3: a probe */
}

/* After the wait: span is what it polled for (spinwin_span, or 0 if it
 * could not poll after all); caught: what it waited for came while it
 * polled; waited_ns: from the start of the wait until it came
 * (UINT64_MAX: it did not come, the wait timed out). */
static inline void spinwin_after(spinwin *w, uint32_t span, int caught, uint64_t waited_ns)
{
    if (!w->max_ns) return;
    if (caught || waited_ns <= w->max_ns) { /* SPIN-1 */
        w->win_ns = w->max_ns;
        w->misses = 0;
        w->skip = 0;
        w->gap = 1;
        return;
    }
    if (w->win_ns) {
        if (!span) return; /* it did not poll: no verdict */
        if (++w->misses >= SPINWIN_MISSES) { /* SPIN-2 */
            w->win_ns = 0;
            w->misses = 0;
            w->skip = w->gap;
        }
        return;
    }
    if (w->skip) { /* closed, slept through */
        w->skip--;
        return;
    }
    if (!span) return; /* the probe was not made: at the next wait */
    if (w->gap < SPINWIN_GAP_MAX) w->gap *= 2; /* a probe in vain */
    w->skip = w->gap;
}

/* SPIN-4: a scheduled poll, for waits longer than the window (the C
 * client waiting for an answer behind a slow disk's fdatasync): sleep
 * for sleep_ns, then poll for the answer, so that the wake-up is paid
 * while the server still works. sleep_ns learns from each such wait,
 * aiming to poll about SPINLEAD_AIM_NS (at most half the window) before
 * the answer: an answer that came during the sleep shortens it by an
 * eighth (at least 4 us); one polled for longer than the aim lengthens it
 * by half the excess. The sleep's own lateness (timer slack, the wake-up)
 * is learnt with it. An answer that came during a sleep already no longer
 * than the aim came sooner than this thread can sleep and wake: the
 * caller opens the window instead (SPIN-1), and the sleep is forgotten.
 * Without that, answers a little quicker than the shortest sleep (TLS on
 * a VM whose wake-up takes 50-100 us) kept the window closed and every
 * wait sleeping past its answer.
 * sleep_ns 0: not known; seeded from the next slow answer slept through. */
#define SPINLEAD_AIM_NS   30000u
#define SPINLEAD_MAX_NS   100000000u /* 100 ms */
#define SPINLEAD_EARLY_NS 4000u

typedef struct spinlead {
    uint32_t sleep_ns;
} spinlead;

/* An answer slept through waited_ns while the window was closed. */
static inline void spinlead_seed(spinlead *l, uint64_t waited_ns, uint32_t window_ns)
{
    if (l->sleep_ns || waited_ns <= 2 * (uint64_t)window_ns || waited_ns == UINT64_MAX) return;
    l->sleep_ns = waited_ns / 2 > SPINLEAD_MAX_NS ? SPINLEAD_MAX_NS : (uint32_t)(waited_ns / 2);
}

/* The aim for a window of window_ns: SPINLEAD_AIM_NS, at most half the
 * window (the poll after the sleep lasts at most the window). */
static inline uint32_t spinlead_aim(uint32_t window_ns)
{
    return window_ns / 2 < SPINLEAD_AIM_NS ? window_ns / 2 : SPINLEAD_AIM_NS;
}

/* The answer came while it slept, with a window of window_ns: too long a
 * sleep. Returns 1 when the sleep was no longer than the aim: the caller
 * opens the window (spinwin_after as caught), which forgets the sleep. */
static inline int spinlead_early(spinlead *l, uint32_t window_ns)
{
    if (l->sleep_ns <= spinlead_aim(window_ns)) return 1;
    uint32_t d = l->sleep_ns / 8 < SPINLEAD_EARLY_NS ? SPINLEAD_EARLY_NS : l->sleep_ns / 8;
    l->sleep_ns = l->sleep_ns > d ? l->sleep_ns - d : 0;
    return 0;
}

/* It polled polled_ns after the sleep (until the answer, or in vain),
 * aiming at aim_ns (spinlead_aim). */
static inline void spinlead_polled(spinlead *l, uint64_t polled_ns, uint32_t aim_ns)
{
    if (polled_ns <= aim_ns) return;
    uint64_t s = (uint64_t)l->sleep_ns + (polled_ns - aim_ns) / 2;
    l->sleep_ns = s > SPINLEAD_MAX_NS ? SPINLEAD_MAX_NS : (uint32_t)s;
}

#endif
