/*
 * drive.c - drivers: one thread keeps many appends in flight and gets their
 * completions on itself (factum.h, "Drivers"; docs/adr/0020).
 *
 * A driver has one of three modes, chosen when it is made:
 *
 *   URING    the driver's thread leads group commits (writer.c, DW-1..3):
 *            the group is written to the page cache there and its
 *            fdatasync is an IORING_OP_FSYNC (IORING_FSYNC_DATASYNC) on the
 *            driver's ring; factum_driver_run reaps the completion from the
 *            ring's queue in memory and finishes the group on this thread.
 *   INLINE   as URING, but the fdatasync goes through the store's I/O
 *            environment, synchronously, when the group is started: the
 *            fault-injecting environment of the tests (src/io/fault.c) sees
 *            and can fail it. Only for stores opened on an environment other
 *            than the real one, so only in tests. The group is finished in
 *            the next factum_driver_run as in URING mode.
 *   SYNC     asked for with FACTUM_DRIVER_SYNC (docs/adr/0024): the
 *            driver's thread leads and makes the fdatasync itself,
 *            synchronously, for a disk whose fdatasync costs less than the
 *            thread wake-ups the other modes pay. It never leads when an
 *            append is submitted: factum_driver_append only marks a kick
 *            (and signals the fd once), and the next factum_driver_run
 *            leads one group of everything submitted since, finishes it and
 *            calls back in the same call (SYNC-1). No other thread leads a
 *            queue of SYNC drivers' requests alone (SYNC-2, writer.c). An
 *            event loop that submits a turn's appends and then runs the
 *            driver so commits each turn as one group.
 *   WRITER   no io_uring (not built with it, io_uring_queue_init failed, or
 *            FACTUM_DRIVER_NO_URING): requests go to the writer thread as
 *            factum_append_async's do; only their completions come back.
 *
 * Completions reach the driver through `done` (a list in commit order,
 * under mu). A thread other than the driver's that completes one of its
 * requests (the writer thread, a blocking caller leading a group, a gate
 * releasing held acknowledgements) also writes the eventfd; the driver's
 * own thread does not need to. The ring's completion queue signals the same
 * eventfd (io_uring_register_eventfd), so one fd covers both.
 *
 *   DRV-1  Callbacks run only inside factum_driver_run (and
 *          factum_driver_free), on the calling thread, in the order the
 *          requests were completed, which is commit order.
 *   DRV-3  A driver leads another group only while some of its own requests
 *          are not completed yet (writer.c drive_lead): its thread then keeps
 *          calling factum_driver_run, so others' requests in its groups are
 *          finished too. With none of its own left it hands the lead on (to a
 *          waiting caller or the writer thread), so an application that stops
 *          running an idle driver holds up no other thread.
 *   DRV-4  When a group's fdatasync completed, d keeps the lead but starts
 *          the next group only after its callbacks ran, and appends
 *          submitted from its callbacks queue without leading; so the clients
 *          that resubmit on a completion form one group with those that
 *          waited, not a group of the first and a group of the rest.
 *   DRV-2  `outstanding` counts requests submitted and not yet called
 *          back; factum_driver_free returns only when it is 0, and the store
 *          refuses to close while a driver exists, so a group in flight is
 *          always finished by its driver.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifdef FACTUM_HAVE_URING
#include <liburing.h>
#endif

#include "store/store_int.h"

enum { DRV_WRITER = 0, DRV_URING = 1, DRV_INLINE = 2, DRV_SYNC = 3 };

#define SYNC_GROUPS_PER_RUN 4 /* SYNC-1: groups one factum_driver_run leads and finishes */
#define RING_ENTRIES 32 /* fdatasyncs of one group: one per unsynced segment */

struct factum_driver {
    factum_store *s;
    pthread_t thread;
    int mode;
    int efd;
#ifdef FACTUM_HAVE_URING
    struct io_uring ring;
#endif
    unsigned sync_pending; /* fdatasync completions the group in flight still waits for */
    int sync_rc;           /* the first error among them */
    int inline_done;       /* INLINE: a group's fdatasync is done, with inline_rc */
    int inline_rc;
    int kick;              /* SYNC: appends were submitted since the last run: lead them there */
    int self_signaled;     /* this thread wrote efd since the last run read it (notify_self) */
    int poll_ready;        /* FACTUM_DRIVER_POLL_READY: no signal for the driver's own thread */
    _Atomic int signaled;  /* efd was written (set after the write): a run must read it */
    _Atomic int delivering; /* other threads inside drive_deliver: free waits for them */
    size_t outstanding; /* DRV-2; the driver's thread only */
    _Atomic size_t uncompleted; /* submitted, not yet completed (DRV-3) */
    int in_callbacks;           /* DRV-4; the driver's thread only */
    int resume;                 /* DRV-4: d holds the lead, to resume after its callbacks */
    pthread_mutex_t mu;
    wreq *done_head, *done_tail; /* mu */
    _Atomic int has_done;        /* done_head != NULL, readable without mu */
};

static _Thread_local factum_driver *tl_running; /* the driver whose run/append this thread is in */

int drive_leads(const factum_driver *d)
{
    return d->mode != DRV_WRITER;
}

int drive_is_sync(const factum_driver *d)
{
    return d->mode == DRV_SYNC; /* set before the driver is shared, never changed */
}

int drive_is_own_thread(const factum_driver *d)
{
    return pthread_equal(d->thread, pthread_self());
}

static void signal_fd(factum_driver *d)
{
    uint64_t one = 1;
    ssize_t w = write(d->efd, &one, sizeof one);
    (void)w; /* only fails when the counter is saturated: it is readable then */
    /* After the write: a run that sees the flag reads the fd and so resets
     * this write; one that does not will be woken by the fd. */
    atomic_store_explicit(&d->signaled, 1, memory_order_release);
}

void drive_signal(factum_driver *d)
{
    signal_fd(d);
}

/* On d's own thread, outside factum_driver_run's loop: make the fd
 * readable if a later run has work (completions delivered here without a
 * signal, a synced group, appends to lead), once per run. */
static void notify_self(factum_driver *d)
{
    if (d->self_signaled || d->poll_ready) return; /* POLL_READY: the application looks first */
    if (atomic_load_explicit(&d->has_done, memory_order_acquire) || d->inline_done || d->kick) {
        d->self_signaled = 1;
        signal_fd(d);
    }
}

int drive_defers_lead(const factum_driver *d)
{
    return d->in_callbacks || d->mode == DRV_SYNC;
}

int drive_has_uncompleted(const factum_driver *d)
{
    return atomic_load(&d->uncompleted) > 0;
}

void drive_deliver(factum_driver *d, wreq *r)
{
    /* Counted before the completion is visible: the driver's thread may run
     * its callback and free d as soon as it is, while this thread still
     * signals d's fd (factum_driver_free waits for the count). */
    atomic_fetch_add(&d->delivering, 1);
    r->next = NULL;
    atomic_fetch_sub(&d->uncompleted, 1);
    pthread_mutex_lock(&d->mu);
    if (d->done_tail)
        d->done_tail->next = r;
    else
        d->done_head = r;
    d->done_tail = r;
    atomic_store_explicit(&d->has_done, 1, memory_order_release);
    pthread_mutex_unlock(&d->mu);
    if (tl_running != d && !(d->poll_ready && drive_is_own_thread(d))) signal_fd(d);
    atomic_fetch_sub_explicit(&d->delivering, 1, memory_order_release); /* the last touch of d */
}

int drive_sync_start(factum_driver *d, flog *log, uint64_t *upto)
{
    int fds[RING_ENTRIES];
    size_t n;
    log_sync_fds(log, fds, RING_ENTRIES, &n, upto);
#ifdef FACTUM_HAVE_URING
    if (d->mode == DRV_URING && n > 0 && n <= RING_ENTRIES) {
        for (size_t i = 0; i < n; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
            if (!sqe) return -EBUSY; /* cannot happen: one group at a time, RING_ENTRIES each */
            io_uring_prep_fsync(sqe, fds[i], IORING_FSYNC_DATASYNC);
            io_uring_sqe_set_data64(sqe, 1);
        }
        int rc = io_uring_submit(&d->ring);
        if (rc < 0) return rc;
        if ((size_t)rc != n) return -EIO; /* a partly submitted sync cannot be finished safely */
        d->sync_pending = (unsigned)n;
        d->sync_rc = 0;
        return 0;
    }
#endif
    /* INLINE (the tests' fault layer sees the fdatasync), or the rare case
     * of more unsynced segments than the ring takes at once: synchronous.
     * The group is finished in the next factum_driver_run all the same. */
    d->inline_rc = log_sync(log);
    d->inline_done = 1;
    if (d->mode != DRV_SYNC) signal_fd(d); /* a loop sleeping in epoll must come back for it */
    return 0;
}

int factum_driver_new(factum_store *s, unsigned flags, factum_driver **out)
{
    if (!s || !out || (flags & ~(FACTUM_DRIVER_NO_URING | FACTUM_DRIVER_SYNC | FACTUM_DRIVER_POLL_READY)))
        return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    factum_driver *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->s = s;
    d->thread = pthread_self();
    d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->efd < 0) {
        int rc = -errno;
        free(d);
        return rc;
    }
    pthread_mutex_init(&d->mu, NULL);
    d->poll_ready = (flags & FACTUM_DRIVER_POLL_READY) != 0;
    d->mode = DRV_WRITER;
    if (flags & FACTUM_DRIVER_SYNC) {
        d->mode = DRV_SYNC;
    } else if (!(flags & FACTUM_DRIVER_NO_URING)) {
        if (s->io != io_posix()) {
            d->mode = DRV_INLINE;
        } else {
#ifdef FACTUM_HAVE_URING
            int rc = io_uring_queue_init(RING_ENTRIES, &d->ring, 0);
            if (!rc) {
                rc = io_uring_register_eventfd(&d->ring, d->efd);
                if (rc) io_uring_queue_exit(&d->ring);
            }
            if (!rc) {
                d->mode = DRV_URING;
            } else {
                static _Atomic int logged;
                if (!atomic_exchange(&logged, 1))
                    store_log(s, FACTUM_LOG_WARN, "io_uring unavailable (%s): appends go through the writer thread",
                              strerror(-rc));
            }
#endif
        }
    }
    atomic_fetch_add(&s->n_drivers, 1);
    *out = d;
    return 0;
}

int factum_driver_uring(const factum_driver *d)
{
    return d && d->mode == DRV_URING;
}

int factum_driver_sync(const factum_driver *d)
{
    return d && d->mode == DRV_SYNC;
}

int factum_driver_fd(const factum_driver *d)
{
    return d ? d->efd : -1;
}

size_t factum_driver_in_flight(const factum_driver *d)
{
    return d ? d->outstanding : 0;
}

int factum_driver_append(factum_driver *d, const factum_append_req *reqs, size_t n, factum_append_cb cb,
                         void *ctx)
{
    if (!d) return FACTUM_EINVAL;
    factum_driver *outer = tl_running;
    tl_running = d;
    atomic_fetch_add(&d->uncompleted, 1); /* before: it may be completed inside */
    int rc = append_async_via(d->s, d, reqs, n, cb, ctx);
    tl_running = outer;
    if (!rc) {
        d->outstanding++;
        if (d->mode == DRV_SYNC) d->kick = 1; /* SYNC-1: led in the next factum_driver_run */
    } else {
        atomic_fetch_sub(&d->uncompleted, 1);
    }
    if (!outer) notify_self(d); /* from a callback, the run in progress sees it */
    return rc;
}

int factum_driver_ready(const factum_driver *d)
{
    if (!d) return 0;
    if (atomic_load_explicit(&d->has_done, memory_order_acquire) || d->inline_done || d->kick) return 1;
#ifdef FACTUM_HAVE_URING
    if (d->mode == DRV_URING && d->sync_pending && io_uring_cq_ready(&d->ring)) return 1;
#endif
    return 0;
}

/* Finish the group whose fdatasync completed, if it did. */
static void reap(factum_driver *d)
{
#ifdef FACTUM_HAVE_URING
    struct io_uring_cqe *cqe;
    while (d->mode == DRV_URING && d->sync_pending && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
        if (cqe->res < 0 && !d->sync_rc) d->sync_rc = cqe->res;
        io_uring_cqe_seen(&d->ring, cqe);
        if (--d->sync_pending == 0) d->resume = writer_drive_synced(d->s, d, d->sync_rc);
    }
#endif
    while (d->inline_done) {
        d->inline_done = 0;
        d->resume = writer_drive_synced(d->s, d, d->inline_rc);
        if (d->resume) break;
    }
}

int factum_driver_run(factum_driver *d, int timeout_ms)
{
    if (!d || tl_running == d) return FACTUM_EINVAL;
    factum_driver *outer = tl_running;
    tl_running = d;
    uint64_t deadline = timeout_ms > 0 ? base_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    int ran = 0, sync_groups = 0;
    for (;;) {
        /* Reset the fd before looking: a later signal is not lost. Only if
         * it was written (io_uring writes it without telling): with
         * POLL_READY, most runs have nothing to reset. */
        if (d->mode == DRV_URING || atomic_exchange_explicit(&d->signaled, 0, memory_order_acq_rel)) {
            uint64_t v;
            ssize_t r = read(d->efd, &v, sizeof v);
            (void)r;
        }
        d->self_signaled = 0;
        reap(d);
        wreq *list = NULL;
        if (atomic_load_explicit(&d->has_done, memory_order_acquire)) {
            pthread_mutex_lock(&d->mu);
            list = d->done_head;
            d->done_head = d->done_tail = NULL;
            atomic_store(&d->has_done, 0);
            pthread_mutex_unlock(&d->mu);
        }
        if (list) {
            size_t n = 0;
            for (wreq *q = list; q; q = q->next)
                n++;
            d->outstanding -= n;
            ran += (int)n;
            d->in_callbacks = 1;
            writer_call_back(d->s, list); /* DRV-1 */
            d->in_callbacks = 0;
        }
        int kick = d->kick;
        d->kick = 0;
        if (d->resume) {
            d->resume = 0;
            writer_drive_resume(d->s, d); /* DRV-4: the next group, with what the callbacks queued */
        } else if (list || kick || d->mode == DRV_SYNC) {
            /* DRV-4; SYNC-1, and SYNC-2: a SYNC driver's requests may also
             * have been left to it by a leader that finished (hand_off). */
            writer_drive_kick(d->s, d);
        }
        /* SYNC-1: a group led just now is already synced, or was decided at
         * once: finish it and call back in this call, a few groups at most
         * so that callbacks that keep appending do not hold the caller. */
        if (d->mode == DRV_SYNC &&
            (d->inline_done || d->resume || atomic_load_explicit(&d->has_done, memory_order_acquire)) &&
            ++sync_groups <= SYNC_GROUPS_PER_RUN)
            continue;
        if (ran || timeout_ms == 0 || !d->outstanding) break;
        int wait_ms = -1;
        if (timeout_ms > 0) {
            uint64_t now = base_mono_ns();
            if (now >= deadline) break;
            wait_ms = (int)((deadline - now + 999999u) / 1000000u);
        }
        struct pollfd p = {.fd = d->efd, .events = POLLIN};
        poll(&p, 1, wait_ms);
    }
    /* Completions, a synced group or appends to lead left past the bound:
     * the fd tells an application that sleeps on it to come back. */
    notify_self(d);
    tl_running = outer;
    return ran;
}

void factum_driver_free(factum_driver *d)
{
    if (!d) return;
    while (d->outstanding)
        factum_driver_run(d, 1000); /* DRV-2: its group in flight, and the rest */
    while (atomic_load_explicit(&d->delivering, memory_order_acquire))
        sched_yield(); /* a thread that completed one of them is still signalling */
#ifdef FACTUM_HAVE_URING
    if (d->mode == DRV_URING) io_uring_queue_exit(&d->ring);
#endif
    atomic_fetch_sub(&d->s->n_drivers, 1);
    close(d->efd);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
