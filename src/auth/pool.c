/*
 * pool.c - the password workers of pool.h: a mutex, a condition variable and
 * a bounded FIFO of jobs.
 */
#include "auth/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define MAX_THREADS 8

struct auth_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    auth_job *head, *tail;
    size_t queued, running, max_queue;
    int stop;
    unsigned n_threads;
    pthread_t th[MAX_THREADS];
    int (*post)(void *ctx, void (*fn)(void *), void *arg);
    void *post_ctx;
};

static void run_done(void *arg)
{
    auth_job *j = arg;
    j->done(j);
}

static void hand_back(auth_pool *p, auth_job *j)
{
    /* net_post fails only without memory: try again shortly (POOL-2) */
    while (p->post(p->post_ctx, run_done, j) != 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
}

static void *worker(void *arg)
{
    auth_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head) break;
        auth_job *j = p->head;
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        if (p->stop) j->cancelled = 1;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        if (!j->cancelled) j->work(j);
        pthread_mutex_lock(&p->mu);
        p->running--;
        pthread_mutex_unlock(&p->mu);
        hand_back(p, j); /* after this the job is the loop's */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int auth_pool_new(unsigned n_threads, size_t max_queue, int (*post)(void *ctx, void (*fn)(void *), void *arg),
                  void *post_ctx, auth_pool **out)
{
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    auth_pool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_queue = max_queue ? max_queue : 1;
    p->post = post;
    p->post_ctx = post_ctx;
    for (unsigned i = 0; i < n_threads; i++) {
        int rc = pthread_create(&p->th[i], NULL, worker, p);
        if (rc) {
            auth_pool_free(p);
            return -rc;
        }
        p->n_threads++;
    }
    *out = p;
    return 0;
}

int auth_pool_submit(auth_pool *p, auth_job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->queued >= p->max_queue || p->stop) {
        pthread_mutex_unlock(&p->mu);
        return -EAGAIN;
    }
    j->next = NULL;
    j->cancelled = 0;
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t auth_pool_pending(auth_pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->queued + p->running;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void auth_pool_free(auth_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++) pthread_join(p->th[i], NULL);
    /* With no thread (creation failed) jobs cannot be waiting: submit needs the pool. */
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
