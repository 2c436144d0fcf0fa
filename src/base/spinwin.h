/*
 * spinwin.h - an adaptive window of polling before sleeping: how long a
 * thread that expects something soon (factumd's loop after an answer,
 * NET-11; a client thread waiting for its answer, CL-8) looks for it
 * before it sleeps, where a wake-up costs tens of microseconds.
 *
 * The rule (SPIN-1..3):
 *  SPIN-1  What comes while polling, or within max_ns of the start of the
 *          wait even if slept through, opens the window to max_ns.
 *  SPIN-2  A poll that catches nothing halves the window; below
 *          SPINWIN_MIN_NS it closes (the thread sleeps at once).
 *  SPIN-3  A closed window is probed: after sleeping through `gap` waits,
 *          the next wait polls for max_ns once. A probe that catches
 *          nothing doubles the gap (up to SPINWIN_GAP_MAX); one that
 *          catches opens the window and the gap is 1 again. Without
 *          probes a window once closed could stay closed for good: when a
 *          wake-up alone takes longer than max_ns, no wait slept through
 *          is ever short enough for SPIN-1.
 * Steady slow answers cost three polls, then one poll every 64 waits.
 * A window with max_ns 0 never polls. One owner; no locking.
 */
#ifndef FACTUM_SPINWIN_H
#define FACTUM_SPINWIN_H

#include <stdint.h>

#define SPINWIN_MIN_NS  10000u /* a shorter poll is not worth it */
#define SPINWIN_GAP_MAX 64u    /* waits slept through between probes, at most */

typedef struct spinwin {
    uint32_t max_ns; /* the longest window; 0: never poll */
    uint32_t win_ns; /* the window now; 0: closed */
    uint32_t skip;   /* closed: waits to sleep through before the next probe */
    uint32_t gap;    /* closed: the waits between probes now */
} spinwin;

static inline void spinwin_init(spinwin *w, uint32_t max_ns)
{
    w->max_ns = w->win_ns = max_ns;
    w->skip = 0;
    w->gap = 1;
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
        w->skip = 0;
        w->gap = 1;
        return;
    }
    if (w->win_ns) {
        if (!span) return; /* it did not poll: no verdict */
        if ((w->win_ns /= 2) < SPINWIN_MIN_NS) { /* SPIN-2 */
            w->win_ns = 0;
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

#endif
