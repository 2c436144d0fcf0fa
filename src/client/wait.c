/*
 * wait.c - how a thread of the C client waits on its connection's socket
 * for a call's answer: polling for it first while answers come quickly
 * (CL-8), or sleeping, then polling, while they come slowly (CL-9), by
 * the rules of src/base/spinwin.h; at most CPUs - 1 threads of a process
 * poll at once.
 */
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "client/client_int.h"

/* CL-8: how many threads of the process may poll for an answer at once
 * (the CPUs it may run on, less one), and how many do. */
static int answer_pollers_max(void)
{
    static _Atomic int max = -1;
    int m = atomic_load_explicit(&max, memory_order_relaxed);
    if (m < 0) {
        cpu_set_t set;
        long n =
            sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
        m = n > 1 ? (int)(n - 1) : 0;
        atomic_store_explicit(&max, m, memory_order_relaxed);
    }
    return m;
}
static _Atomic int answer_pollers;
static _Atomic int answer_waiters; /* threads of the process in wait_socket for an answer */

static int answer_came(const struct pollfd *pfd)
{
    return (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

/* Look at the sockets without sleeping, yielding the CPU between looks,
 * until something is ready or until (a client_now_ns time). */
static int poll_until(struct pollfd *pfd, nfds_t n, uint64_t until)
{
    int pr;
    do {
        pr = poll(pfd, n, 0);
        /* A wake-up the answer needs may be queued behind this thread on
         * its CPU (the server's, on one machine). */
        if (!pr) sched_yield();
    } while (pr == 0 && client_now_ns() < until);
    return pr;
}

/* poll() for the driver (mu not held). for_answer: its call waits for its
 * first answer: polled for first as c->poll_win says (CL-8), or, while
 * answers take longer than the window, after a sleep as c->poll_lead says
 * (CL-9). */
int client_wait_socket(factum_client *c, struct pollfd *pfd, nfds_t n, int timeout, int for_answer)
{
    if (!for_answer || !c->poll_win.max_ns || timeout == 0) return poll(pfd, n, timeout);
    uint64_t start = client_now_ns();
    c->answer_waits++;
    uint64_t limit = timeout > 0 ? start + (uint64_t)timeout * 1000000u : UINT64_MAX;
    int waiters = atomic_fetch_add_explicit(&answer_waiters, 1, memory_order_relaxed) + 1;
    uint32_t span = spinwin_span(&c->poll_win), verdict_span = 0;
    /* CL-9: only a thread that waits alone (or with fewer others than
     * CPUs to spare): with more, the CPUs have other work than a poll. */
    int sched = !span && c->poll_lead.sleep_ns && waiters <= answer_pollers_max() &&
                start + c->poll_lead.sleep_ns < limit;
    int pr = 0;
    uint64_t poll_start = start;
    if (sched) {
        struct timespec ts = {(time_t)(c->poll_lead.sleep_ns / 1000000000u),
                              (long)(c->poll_lead.sleep_ns % 1000000000u)};
        c->lead_waits++;
        pr = ppoll(pfd, n, &ts, NULL);
        /* An answer sooner than the shortest sleep: poll from the start. */
        if (pr > 0 && answer_came(pfd) && spinlead_early(&c->poll_lead, c->poll_win.max_ns)) {
            c->lead_reopens++;
            spinwin_after(&c->poll_win, 0, 1, 0);
        }
        if (pr != 0) goto slept;
        poll_start = client_now_ns();
        span = c->poll_win.max_ns;
    }
    if (span) {
        int polled = 0;
        if (atomic_fetch_add_explicit(&answer_pollers, 1, memory_order_relaxed) < answer_pollers_max()) {
            polled = 1;
            pr = poll_until(pfd, n, poll_start + span < limit ? poll_start + span : limit);
        }
        atomic_fetch_sub_explicit(&answer_pollers, 1, memory_order_relaxed);
        if (pr > 0 && answer_came(pfd)) {
            uint64_t now = client_now_ns();
            if (sched) {
                c->lead_caught++;
                spinlead_polled(&c->poll_lead, now - poll_start, spinlead_aim(span));
                spinwin_after(&c->poll_win, 0, 0, now - start);
            } else {
                spinwin_after(&c->poll_win, span, 1, 0);
            }
            goto out;
        }
        if (pr != 0) goto out; /* woken (wakefd) or an error: no verdict */
        if (polled && sched) spinlead_polled(&c->poll_lead, client_now_ns() - poll_start, spinlead_aim(span));
        else if (polled) verdict_span = span; /* a poll in vain: SPIN-2 */
        if (timeout > 0) {
            uint64_t now = client_now_ns();
            timeout = now >= limit ? 0 : (int)((limit - now + 999999u) / 1000000u);
        }
    }
    pr = poll(pfd, n, timeout);
slept:
    if (pr > 0 && answer_came(pfd)) {
        uint64_t waited = client_now_ns() - start;
        spinwin_after(&c->poll_win, verdict_span, 0, waited);
        if (!c->poll_win.win_ns) spinlead_seed(&c->poll_lead, waited, c->poll_win.max_ns);
    } else if (pr == 0) {
        spinwin_after(&c->poll_win, verdict_span, 0, UINT64_MAX); /* nothing by the wake time */
    }
out:
    if (c->poll_win.win_ns) c->poll_lead.sleep_ns = 0; /* answers come within the window again */
    atomic_fetch_sub_explicit(&answer_waiters, 1, memory_order_relaxed);
    return pr;
}
