/*
 * notify.c - telling the rest of the world that events were committed:
 * threads blocked in factum_wait_for_position (subscriptions polling with a
 * timeout) and registered listeners (factumd's event loop). The committing
 * thread calls notify_commit right after it published the new committed
 * position (ST-2), before it acknowledges the group's appends.
 *
 * Waiting uses a 32-bit futex word, commit_seq, bumped on every publish. A
 * waiter reads the word, checks the position, and sleeps only while the word
 * is unchanged, so a publish between its check and its sleep is never missed.
 * The committing thread makes the wake-up syscall only when someone waits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

struct listener {
    factum_commit_fn fn;
    void *ctx;
};

int notify_init(factum_store *s)
{
    atomic_store(&s->commit_seq, 0);
    atomic_store(&s->commit_waiters, 0);
    return -pthread_rwlock_init(&s->lis_mu, NULL);
}

void notify_deinit(factum_store *s)
{
    pthread_rwlock_destroy(&s->lis_mu);
    free(s->lis);
    s->lis = NULL;
    s->n_lis = s->cap_lis = 0;
}

void notify_commit(factum_store *s, uint64_t last)
{
    atomic_fetch_add(&s->commit_seq, 1); /* seq_cst: pairs with the waiter's commit_waiters++ */
    if (atomic_load(&s->commit_waiters) > 0)
        syscall(SYS_futex, (uint32_t *)&s->commit_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    if (!s->n_lis) return; /* racy read: a listener added now sees the next commit */
    pthread_rwlock_rdlock(&s->lis_mu);
    for (size_t i = 0; i < s->n_lis; i++)
        s->lis[i].fn(s->lis[i].ctx, last);
    pthread_rwlock_unlock(&s->lis_mu);
}

int factum_commit_listener_add(factum_store *s, factum_commit_fn fn, void *ctx)
{
    if (!s || !fn) return FACTUM_EINVAL;
    pthread_rwlock_wrlock(&s->lis_mu);
    int rc = 0;
    if (s->n_lis == s->cap_lis) {
        size_t cap = s->cap_lis ? s->cap_lis * 2 : 4;
        struct listener *l = realloc(s->lis, cap * sizeof *l);
        if (!l)
            rc = -ENOMEM;
        else {
            s->lis = l;
            s->cap_lis = cap;
        }
    }
    if (!rc) s->lis[s->n_lis++] = (struct listener){fn, ctx};
    pthread_rwlock_unlock(&s->lis_mu);
    return rc;
}

int factum_commit_listener_remove(factum_store *s, factum_commit_fn fn, void *ctx)
{
    if (!s || !fn) return FACTUM_EINVAL;
    /* The write lock waits for a call in progress to return. */
    pthread_rwlock_wrlock(&s->lis_mu);
    int rc = FACTUM_ENOTFOUND;
    for (size_t i = 0; i < s->n_lis; i++) {
        if (s->lis[i].fn == fn && s->lis[i].ctx == ctx) {
            s->lis[i] = s->lis[--s->n_lis];
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&s->lis_mu);
    return rc;
}

int factum_wait_for_position(factum_store *s, uint64_t position, int timeout_ms)
{
    if (!s) return FACTUM_EINVAL;
    if (timeout_ms != 0 && writer_in_callback(s)) return -EDEADLK; /* a callback must not wait */
    uint64_t deadline = timeout_ms >= 0 ? base_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        uint32_t seq = atomic_load_explicit(&s->commit_seq, memory_order_acquire);
        if (atomic_load_explicit(&s->committed_pos, memory_order_acquire) > position) return 1;
        struct timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            uint64_t now = base_mono_ns();
            if (now >= deadline) return 0;
            uint64_t left = deadline - now;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            tsp = &ts;
        }
        atomic_fetch_add(&s->commit_waiters, 1);
        /* Sleeps only while commit_seq == seq (else EAGAIN at once). */
        syscall(SYS_futex, (uint32_t *)&s->commit_seq, FUTEX_WAIT_PRIVATE, seq, tsp, NULL, 0);
        atomic_fetch_sub(&s->commit_waiters, 1);
    }
}
