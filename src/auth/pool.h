/*
 * pool.h - the password workers: a few threads that run the slow, memory
 * hungry key derivations (scrypt: tens of milliseconds, 32 MiB each) off the
 * loop thread, which never waits for them (NET-1). A job's work runs on a
 * worker; its done is handed back through `post` (net_post in factumd) and
 * runs on the loop.
 *
 *  POOL-1  Bounded: at most max_queue jobs wait; submitting past that fails
 *          at once with -EAGAIN (the caller answers UNAVAILABLE), so a flood
 *          of logins costs a bounded amount of memory and never queues for
 *          minutes.
 *  POOL-2  Every job submitted gets its done exactly once, also when the
 *          pool is being freed (the work of jobs still waiting then is
 *          skipped and done runs with job->cancelled set).
 */
#ifndef FACTUM_AUTH_POOL_H
#define FACTUM_AUTH_POOL_H

#include <stddef.h>

typedef struct auth_job {
    struct auth_job *next;
    void (*work)(struct auth_job *j); /* on a worker */
    void (*done)(struct auth_job *j); /* through post, on the loop */
    int cancelled;
} auth_job;

typedef struct auth_pool auth_pool;

/* post(ctx, fn, arg) must run fn(arg) later on the owner's thread and return
 * 0, or fail (the worker then retries it). 0 or -errno. */
int auth_pool_new(unsigned n_threads, size_t max_queue, int (*post)(void *ctx, void (*fn)(void *), void *arg),
                  void *post_ctx, auth_pool **out);
/* 0 (queued) or -EAGAIN (POOL-1). */
int auth_pool_submit(auth_pool *p, auth_job *j);
/* Jobs waiting or running. */
size_t auth_pool_pending(auth_pool *p);
/* Stop the workers (POOL-2: the jobs still waiting are posted cancelled)
 * and free the pool. */
void auth_pool_free(auth_pool *p);

#endif
