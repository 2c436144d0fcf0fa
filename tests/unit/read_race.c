/* Reads racing appends (src/store/read.c, ST-2): a backward read from
 * FACTUM_END of a stream that exists always returns its last committed
 * event, even when appends to the stream commit while the read runs (the
 * stream's state may then count an event beyond the committed position the
 * read started from: it is skipped, not taken for the end of the stream). */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

static factum_store *s;
static atomic_int stop;

static void *writer(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 0; i < 20000 && !atomic_load(&stop); i++) {
        char st[32];
        snprintf(st, sizeof st, "race-%ld", (i + base) % 8);
        factum_event_data e = harness_event("T", "{}");
        if (factum_append(s, st, FACTUM_ANY, &e, 1, NULL)) break;
    }
    return NULL;
}

typedef struct counts {
    long reads, empty;
} counts;

static void *reader(void *arg)
{
    counts *c = arg;
    h_rng r = {(uint64_t)(uintptr_t)arg};
    while (!atomic_load(&stop)) {
        char st[32];
        snprintf(st, sizeof st, "race-%d", (int)h_below(&r, 8));
        factum_event ev;
        size_t got = 0;
        int rc = factum_read_stream(s, st, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &got, NULL);
        if (rc == FACTUM_ENOTFOUND) continue; /* not written yet */
        c->reads++;
        if (rc || got != 1) c->empty++;
    }
    return NULL;
}

static void t_backward_from_end_while_appending(void)
{
    char d[512];
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    REQUIRE(factum_store_open(harness_tmpdir(d, sizeof d, "read-race"), &o, &s) == 0);
    counts c[2] = {{0, 0}, {0, 0}};
    pthread_t w[3], r[2];
    for (int k = 0; k < 2; k++) pthread_create(&r[k], NULL, reader, &c[k]);
    for (long k = 0; k < 3; k++) pthread_create(&w[k], NULL, writer, (void *)(intptr_t)k);
    for (int k = 0; k < 3; k++) pthread_join(w[k], NULL);
    atomic_store(&stop, 1);
    for (int k = 0; k < 2; k++) pthread_join(r[k], NULL);
    printf("  %ld reads, %ld without the last event\n", c[0].reads + c[1].reads, c[0].empty + c[1].empty);
    CHECK(c[0].reads + c[1].reads > 0);
    CHECK_EQ_U64(c[0].empty + c[1].empty, 0);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(d);
}

int main(void)
{
    RUN(t_backward_from_end_while_appending);
    return harness_done();
}
