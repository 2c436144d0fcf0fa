/*
 * client_poll.c - polling before sleeping: the window of src/base/spinwin.h
 * (SPIN-1..3) that the C client's polling for an answer (CL-8, ADR 0031)
 * and factumd's loop after an answer (NET-11, ADR 0030) adapt, and the
 * connection string's pollForAnswerUs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/client_int.h"
#include "harness.h"

#define US 1000u

/* One wait under the rule: polls for what spinwin_span says; what it
 * waits for comes after arrive_ns; a thread that sleeps wakes wake_ns
 * after that. Returns 1 if it polled. */
static int one_wait(spinwin *w, uint64_t arrive_ns, uint64_t wake_ns)
{
    uint32_t span = spinwin_span(w);
    if (span && arrive_ns <= span)
        spinwin_after(w, span, 1, arrive_ns);
    else
        spinwin_after(w, span, 0, arrive_ns + wake_ns);
    return span != 0;
}

static void t_window(void)
{
    const uint32_t max = 50 * US;
    spinwin w;
    spinwin_init(&w, max);
    CHECK(spinwin_span(&w) == max);
    /* Polled in vain, the answer later than the bound: the window stays
     * whole for SPINWIN_MISSES - 1 misses in a row (SPIN-2)... */
    for (unsigned i = 0; i + 1 < SPINWIN_MISSES; i++) {
        spinwin_after(&w, max, 0, 200 * US);
        CHECK(w.win_ns == max);
    }
    /* ...a catch, or an answer within the bound slept through, starts the
     * count again (SPIN-1): one slow answer among quick ones never closes
     * it, nor shrinks it below what the quick ones need... */
    spinwin_after(&w, max, 1, 45 * US);
    CHECK(w.win_ns == max && w.misses == 0);
    for (int i = 0; i < 100; i++) {
        spinwin_after(&w, max, 0, 300 * US);       /* the outlier */
        spinwin_after(&w, max, i & 1, 45 * US);    /* caught, or slept through within the bound */
        CHECK(w.win_ns == max);
    }
    /* ...and SPINWIN_MISSES in a row close it: the next wait sleeps at once. */
    for (unsigned i = 0; i < SPINWIN_MISSES; i++) spinwin_after(&w, max, 0, 200 * US);
    CHECK(w.win_ns == 0 && spinwin_span(&w) == 0 && w.misses == 0);
    /* Slept through without polling (too many pollers): a late answer
     * leaves an open window as it was, and counts no miss... */
    spinwin_init(&w, max);
    spinwin_after(&w, 0, 0, 900 * US);
    CHECK(w.win_ns == max && w.misses == 0);
    /* ...an answer within the bound slept through sets a closed one back
     * (SPIN-1). */
    w.win_ns = 0;
    spinwin_after(&w, 0, 0, 40 * US);
    CHECK(w.win_ns == max);
    /* A window of 0 configured never polls, whatever happens. */
    spinwin z;
    spinwin_init(&z, 0);
    for (int i = 0; i < 200; i++) {
        CHECK(spinwin_span(&z) == 0);
        spinwin_after(&z, 0, i & 1, (uint64_t)i * US);
    }
    CHECK(z.win_ns == 0 && z.max_ns == 0);
}

/* Steady slow answers (a 1 ms fdatasync): three polls in vain, then a probe
 * after sleeping through 1, 2, 4 ... waits, at most one in 65 (SPIN-3). */
static void t_slow(void)
{
    spinwin w;
    spinwin_init(&w, 50 * US);
    int polled_at[64], polls = 0;
    for (int i = 0; i < 1000; i++)
        if (one_wait(&w, 1000 * US, 30 * US) && polls < 64) polled_at[polls++] = i;
    /* 0, 1, 2 close it; probes at 4, 7, 12, 21, 38, 71, 136, 201, ... */
    const int expect[] = {0, 1, 2, 4, 7, 12, 21, 38, 71, 136, 201, 266};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) CHECK(polled_at[i] == expect[i]);
    CHECK(polls == 3 + 6 + (1000 - 136 - 1) / 65 + 1);
    CHECK(w.win_ns == 0 && w.gap == SPINWIN_GAP_MAX);
}

/* The case the probes exist for: a wake-up alone takes longer than the
 * window (a slow virtual machine), so no answer slept through ever comes
 * "within the bound". A few slow answers close the window; without a
 * probe it would stay closed while answers, polled for, would be caught
 * in 20 us. With SPIN-3 the first probe opens it again. */
static void t_reopens(void)
{
    spinwin w;
    spinwin_init(&w, 50 * US);
    for (int i = 0; i < 3; i++) CHECK(one_wait(&w, 300 * US, 100 * US) == 1);
    CHECK(w.win_ns == 0);
    int polls = 0;
    for (int i = 0; i < 100; i++) polls += one_wait(&w, 20 * US, 100 * US);
    CHECK(w.win_ns == 50 * US);
    CHECK(polls == 99); /* one wait slept through, then the probe caught its answer */
    /* A probe that could not be made (too many pollers: span 0) is made at
     * the next wait instead. */
    for (int i = 0; i < 3; i++) one_wait(&w, 300 * US, 100 * US);
    CHECK(w.win_ns == 0 && w.skip == 1);
    spinwin_after(&w, 0, 0, 400 * US); /* slept through: the skip */
    CHECK(spinwin_span(&w) == 50 * US);
    spinwin_after(&w, 0, 0, 400 * US); /* the probe not made */
    CHECK(spinwin_span(&w) == 50 * US && w.gap == 1);
}

/* SPIN-4: the scheduled poll's sleep learns where the answer comes. A
 * simulated wait: the answer comes at answer_ns; the thread sleeps for
 * sleep_ns and is awake late_ns after that (timer slack, the wake-up). */
static void lead_wait(spinlead *l, uint64_t answer_ns, uint64_t late_ns, int *early)
{
    uint64_t awake = l->sleep_ns + late_ns;
    if (answer_ns <= awake) {
        CHECK(spinlead_early(l, 1000 * US) == 0); /* sleeps longer than the aim here */
        (*early)++;
    } else {
        spinlead_polled(l, answer_ns - awake, SPINLEAD_AIM_NS);
    }
}

static void t_lead(void)
{
    spinlead l = {0};
    /* Seeded only by an answer slower than twice the window. */
    spinlead_seed(&l, 30 * US, 20 * US);
    CHECK(l.sleep_ns == 0);
    spinlead_seed(&l, UINT64_MAX, 20 * US);
    CHECK(l.sleep_ns == 0);
    spinlead_seed(&l, 400 * US, 20 * US);
    CHECK(l.sleep_ns == 200 * US);
    spinlead_seed(&l, 800 * US, 20 * US); /* known: kept */
    CHECK(l.sleep_ns == 200 * US);
    /* Too long a sleep: an eighth off, at least SPINLEAD_EARLY_NS (with a
     * 50 us window: the aim is 25 us). */
    CHECK(spinlead_early(&l, 50 * US) == 0);
    CHECK(l.sleep_ns == 175 * US);
    l.sleep_ns = 28 * US;
    CHECK(spinlead_early(&l, 50 * US) == 0);
    CHECK(l.sleep_ns == 28 * US - SPINLEAD_EARLY_NS);
    /* A sleep no longer than the aim, and the answer still came during it:
     * answers come sooner than this thread sleeps and wakes. The caller
     * polls from the start instead: spinlead_early says so, and opening
     * the window forgets the sleep (wait.c). */
    CHECK(spinlead_early(&l, 50 * US) == 1);
    CHECK(l.sleep_ns == 24 * US);
    l.sleep_ns = 5 * US;
    CHECK(spinlead_early(&l, 10 * US) == 1);
    l.sleep_ns = 6 * US;
    CHECK(spinlead_early(&l, 10 * US) == 0 && l.sleep_ns == 2 * US);
    /* Polled longer than the aim: half the excess on; within it: kept. */
    l.sleep_ns = 100 * US;
    spinlead_polled(&l, SPINLEAD_AIM_NS, SPINLEAD_AIM_NS);
    CHECK(l.sleep_ns == 100 * US);
    spinlead_polled(&l, SPINLEAD_AIM_NS + 40 * US, SPINLEAD_AIM_NS);
    CHECK(l.sleep_ns == 120 * US);
    spinlead_polled(&l, 10 * US, spinlead_aim(10 * US)); /* a 10 us window: the aim is 5 us */
    CHECK(l.sleep_ns == 122500);
    CHECK(spinlead_aim(50 * US) == 25 * US && spinlead_aim(1000 * US) == SPINLEAD_AIM_NS);
    l.sleep_ns = 120 * US;
    CHECK(l.sleep_ns == 120 * US);
    l.sleep_ns = SPINLEAD_MAX_NS - 1;
    spinlead_polled(&l, 1000000 * US, SPINLEAD_AIM_NS);
    CHECK(l.sleep_ns == SPINLEAD_MAX_NS);
    /* It converges, from a sleep too short or too long: answers at 250 us,
     * the thread awake 60 us after its timer. After the first 50 waits
     * the thread is awake before the answer and polls for at most twice
     * the aim, in nearly every wait. */
    const uint64_t seeds[] = {120 * US, 800 * US};
    for (size_t k = 0; k < 2; k++) {
        spinlead c = {0};
        spinlead_seed(&c, seeds[k], 50 * US);
        int early = 0, long_polls = 0;
        for (int i = 0; i < 1000; i++) {
            if (i == 50) early = 0;
            uint64_t awake = c.sleep_ns + 60 * US;
            if (i >= 50 && awake < 250 * US && 250 * US - awake > 2 * SPINLEAD_AIM_NS) long_polls++;
            lead_wait(&c, 250 * US, 60 * US, &early);
        }
        CHECK(early < 950 / 10);
        CHECK(long_polls == 0);
        CHECK(c.sleep_ns + 60 * US < 250 * US && c.sleep_ns + 60 * US + 2 * SPINLEAD_AIM_NS >= 250 * US);
    }
}

static void t_option(void)
{
    client_url u;
    char err[256];
    CHECK_RC(client_url_parse("kurrentdb://h?tls=false", &u, err, sizeof err), 0);
    CHECK(u.poll_for_answer_us == -1); /* absent: CLIENT_POLL_FOR_ANSWER_US */
    CHECK_RC(client_url_parse("kurrentdb://h?tls=false&pollForAnswerUs=0", &u, err, sizeof err), 0);
    CHECK(u.poll_for_answer_us == 0);
    CHECK_RC(client_url_parse("kurrentdb://h?POLLFORANSWERUS=10000", &u, err, sizeof err), 0);
    CHECK(u.poll_for_answer_us == 10000);
    CHECK_RC(client_url_parse("kurrentdb://h?pollForAnswerUs=10001", &u, err, sizeof err), FACTUM_EBADURL);
    CHECK(strstr(err, "pollForAnswerUs must be a number of microseconds from 0 to 10000") != NULL);
    CHECK_RC(client_url_parse("kurrentdb://h?pollForAnswerUs=-1", &u, err, sizeof err), FACTUM_EBADURL);
    CHECK_RC(client_url_parse("kurrentdb://h?pollForAnswerUs=fast", &u, err, sizeof err), FACTUM_EBADURL);
    CHECK_RC(client_url_parse("kurrentdb://h?pollForAnswerUs=", &u, err, sizeof err), FACTUM_EBADURL);
}

/* The grpc-timeout header's value (written without printf). */
static void t_grpc_timeout(void)
{
    char out[24], want[24];
    const uint32_t ms[] = {1, 9, 10, 999, 10000, 99999999u, 100000000u, 100000001u, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
        client_grpc_timeout(ms[i], out);
        if (ms[i] <= 99999999u)
            snprintf(want, sizeof want, "%" PRIu32 "m", ms[i]);
        else
            snprintf(want, sizeof want, "%" PRIu32 "S", (uint32_t)(((uint64_t)ms[i] + 999) / 1000));
        CHECK(!strcmp(out, want));
        CHECK(strlen(out) <= 9); /* gRPC allows at most 8 digits */
    }
}

int main(void)
{
    RUN(t_window);
    RUN(t_slow);
    RUN(t_reopens);
    RUN(t_lead);
    RUN(t_option);
    RUN(t_grpc_timeout);
    return harness_done();
}
