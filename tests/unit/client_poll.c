/*
 * client_poll.c - the C client's polling for an answer (CL-8 of
 * src/client/client_int.h, ADR 0031): how the window adapts after each
 * wait, and the connection string's pollForAnswerUs.
 */
#include <string.h>

#include "client/client_int.h"
#include "harness.h"

#define US 1000u

static void t_window(void)
{
    const uint32_t max = 50 * US;
    /* Caught while polling: the whole window again. */
    CHECK(client_poll_window(25 * US, max, 1, 1, 20 * US) == max);
    /* Polled in vain, the answer later than the bound: halved... */
    CHECK(client_poll_window(max, max, 1, 0, 200 * US) == 25 * US);
    CHECK(client_poll_window(25 * US, max, 1, 0, 200 * US) == 12500);
    /* ...and below CLIENT_POLL_MIN_NS, no polling at all. */
    CHECK(client_poll_window(12500, max, 1, 0, 200 * US) == 0);
    CHECK(client_poll_window(2 * CLIENT_POLL_MIN_NS - 2, max, 1, 0, 200 * US) == 0);
    CHECK(client_poll_window(2 * CLIENT_POLL_MIN_NS, max, 1, 0, 200 * US) == CLIENT_POLL_MIN_NS);
    /* Slept through without polling (off, or too many pollers): a late
     * answer leaves the window as it was... */
    CHECK(client_poll_window(0, max, 0, 0, 900 * US) == 0);
    CHECK(client_poll_window(25 * US, max, 0, 0, 900 * US) == 25 * US);
    /* ...an answer within the bound, slept through or after polling too
     * short a while, sets it back. */
    CHECK(client_poll_window(0, max, 0, 0, 40 * US) == max);
    CHECK(client_poll_window(12500, max, 1, 0, max) == max);
    /* A window of 0 configured stays 0 whatever happens. */
    CHECK(client_poll_window(0, 0, 0, 0, 0) == 0);
    CHECK(client_poll_window(0, 0, 0, 0, 10 * US) == 0);
    /* Steady slow answers (a 1 ms fdatasync): three polls in vain, then none. */
    uint32_t w = max;
    int polls = 0;
    for (int i = 0; i < 100; i++) {
        int polled = w != 0;
        polls += polled;
        w = client_poll_window(w, max, polled, 0, 1000 * US);
    }
    CHECK(polls == 3 && w == 0);
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

int main(void)
{
    RUN(t_window);
    RUN(t_option);
    return harness_done();
}
