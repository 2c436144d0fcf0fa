/*
 * arena.c - the client's memory for decoded answers (response messages are
 * unpacked into a bump arena, reset per message, so decoding costs no
 * malloc per field) and its per-thread state: the calling thread's arena
 * and the text of its last error (factum_client_last_error is per thread,
 * CL-7). Split from conn.c, which runs the connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"

/* ---- the arena ------------------------------------------------------------ */

struct client_arena_big {
    client_arena_big *next;
    max_align_t data[];
};

#define ARENA_MIN (64u << 10)
#define ARENA_MAX (1u << 20) /* kept between messages; larger ones go to big blocks */

static void *arena_pa_alloc(void *d, size_t n)
{
    return client_arena_alloc(d, n);
}

static void arena_pa_free(void *d, void *p)
{
    (void)d;
    (void)p; /* freed at the next reset */
}

void client_arena_init(client_arena *a)
{
    memset(a, 0, sizeof *a);
    a->pa.alloc = arena_pa_alloc;
    a->pa.free = arena_pa_free;
    a->pa.allocator_data = a;
}

void *client_arena_alloc(client_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) return NULL;
    if (a->buf && a->cap - a->used >= need) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    if (need > SIZE_MAX - sizeof(client_arena_big)) return NULL;
    client_arena_big *b = malloc(sizeof *b + need);
    if (!b) return NULL;
    b->next = a->big;
    a->big = b;
    a->big_bytes += need;
    return b->data;
}

static void arena_free_big(client_arena *a)
{
    while (a->big) {
        client_arena_big *b = a->big;
        a->big = b->next;
        free(b);
    }
}

void client_arena_reset(client_arena *a)
{
    arena_free_big(a);
    if (a->big_bytes && a->cap < ARENA_MAX) {
        /* The last message did not fit: make room for its like. */
        size_t cap = a->cap ? a->cap : ARENA_MIN;
        while (cap < a->used + a->big_bytes && cap < ARENA_MAX)
            cap *= 2;
        uint8_t *nb = malloc(cap);
        if (nb) {
            free(a->buf);
            a->buf = nb;
            a->cap = cap;
        }
    } else if (!a->buf) {
        a->buf = malloc(ARENA_MIN);
        a->cap = a->buf ? ARENA_MIN : 0;
    }
    a->big_bytes = 0;
    a->used = 0;
}

void client_arena_trim(client_arena *a)
{
    arena_free_big(a);
    a->big_bytes = 0;
    a->used = 0;
    if (a->cap > ARENA_MIN) {
        free(a->buf);
        a->buf = NULL;
        a->cap = 0;
    }
}

void client_arena_deinit(client_arena *a)
{
    arena_free_big(a);
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* ---- per-thread state --------------------------------------------------------- */

/* The last error and the arena are the calling thread's: calls of several
 * threads on one client run at once (CL-1). The arena lives as long as its
 * thread (a key's destructor frees it). */
static _Thread_local char tl_err[CLIENT_ERRLEN];
static _Thread_local client_arena *tl_arena;
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

char *client_errbuf(void)
{
    return tl_err;
}

static void arena_destroy(void *p)
{
    client_arena_deinit(p);
    free(p);
}

static void arena_key_make(void)
{
    (void)pthread_key_create(&arena_key, arena_destroy);
}

client_arena *client_tl_arena(void)
{
    static client_arena fallback; /* only if malloc fails at a thread's first call */
    if (tl_arena) return tl_arena;
    pthread_once(&arena_once, arena_key_make);
    client_arena *a = pthread_getspecific(arena_key);
    if (!a) {
        a = malloc(sizeof *a);
        if (!a) return &fallback;
        client_arena_init(a);
        if (pthread_setspecific(arena_key, a)) {
            free(a);
            return &fallback;
        }
    }
    tl_arena = a;
    return a;
}

client_arena *client_arena_enter(client_arena *tmp)
{
    client_arena *saved = client_tl_arena();
    client_arena_init(tmp);
    tl_arena = tmp;
    return saved;
}

void client_arena_leave(client_arena *saved)
{
    tl_arena = saved;
}
