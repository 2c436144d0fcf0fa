/* Crash test of scheduled events (src/store/sched.c): a child process
 * schedules events due within the next few hundred milliseconds (and
 * cancels some of them) while its store's scheduler delivers the ones
 * that come due; it reports every acknowledged schedule and cancellation
 * through a pipe. The parent kills it with SIGKILL at a random moment,
 * again and again (each child reopens the store, finding the pending
 * requests again: SC-4). At the end the parent opens the store, lets
 * everything due be delivered and checks:
 *   - every acknowledged schedule not cancelled was delivered exactly once;
 *   - no cancelled one was delivered (SC-3);
 *   - a schedule whose acknowledgement was lost in the kill is delivered
 *     at most once;
 *   - every request of `$scheduled` has exactly one marker, "$delivered"
 *     exactly for those in a target (SC-1, SC-2).
 * FACTUM_SCHED_CRASH_CYCLES sets the number of kills (default 25). Prints
 * its seed; FACTUM_SEED replays the timings. */
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>

#define TARGETS 4
#define MAXREQ  20000

typedef struct rec {
    uint8_t id[16];
    int kind; /* 1 scheduled (acknowledged), 2 cancelling (about to call), 4 cancelled (acknowledged) */
} rec;

static void child(const char *dir, int fd, uint64_t seed)
{
    factum_store *s;
    if (factum_store_open(dir, NULL, &s)) _exit(2);
    h_rng r = {seed};
    uint8_t mine[64][16];
    size_t n_mine = 0, k_mine = 0; /* the last 64 scheduled, to cancel some */
    for (;;) {
        if (n_mine && h_below(&r, 6) == 0) {
            size_t k = h_below(&r, n_mine);
            rec c = {.kind = 2};
            memcpy(c.id, mine[k], 16);
            if (write(fd, &c, sizeof c) != sizeof c) _exit(3);
            if (!factum_schedule_cancel(s, mine[k])) {
                c.kind = 4;
                if (write(fd, &c, sizeof c) != sizeof c) _exit(3);
            }
            continue;
        }
        factum_event_data e = {.type = "Due", .has_id = 1, .flags = FACTUM_EVENT_JSON};
        factum_uuid_v4(e.id);
        char data[40];
        data[0] = '"';
        factum_uuid_format(e.id, data + 1);
        data[37] = '"';
        data[38] = 0;
        e.data = data;
        e.data_len = 38;
        char stream[32];
        snprintf(stream, sizeof stream, "due-%d", (int)h_below(&r, TARGETS));
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + (int64_t)h_below(&r, 300) * 1000000;
        uint8_t id[16];
        if (factum_schedule(s, stream, at, &e, id)) _exit(4);
        rec a = {.kind = 1};
        memcpy(a.id, id, 16);
        if (write(fd, &a, sizeof a) != sizeof a) _exit(3);
        memcpy(mine[k_mine++ % 64], id, 16);
        n_mine = k_mine < 64 ? k_mine : 64;
        struct timespec ts = {0, (long)(1 + h_below(&r, 5)) * 1000000};
        nanosleep(&ts, NULL);
    }
}

static rec recs[MAXREQ];
static size_t n_recs;

static int state_of(const uint8_t id[16])
{
    int st = 0;
    for (size_t i = 0; i < n_recs; i++)
        if (!memcmp(recs[i].id, id, 16)) st |= recs[i].kind;
    return st;
}

static int pending_cb(void *ctx, const factum_schedule_info *info)
{
    (void)info;
    (*(int *)ctx)++;
    return 0;
}

static void t_crash(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "sched-crash");
    h_rng r = {harness_seed("sched crash")};
    const char *e = getenv("FACTUM_SCHED_CRASH_CYCLES");
    int cycles = e ? atoi(e) : 25;
    for (int c = 0; c < cycles; c++) {
        int p[2];
        REQUIRE(!pipe(p));
        uint64_t cseed = h_rand(&r);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(dir, p[1], cseed);
            _exit(0);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(30 + h_below(&r, 400)) * 1000000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        rec x;
        while (read(p[0], &x, sizeof x) == sizeof x && n_recs < MAXREQ)
            recs[n_recs++] = x;
        close(p[0]);
    }
    factum_store *s;
    REQUIRE(!factum_store_open(dir, NULL, &s));
    /* Everything was due within 300 ms of its scheduling: wait until nothing is pending. */
    int left = -1;
    for (int w = 0; w < 500 && left != 0; w++) {
        left = 0;
        CHECK_RC(factum_schedule_list(s, pending_cb, &left), 0);
        if (left) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(left == 0);
    /* Deliveries per schedule id. */
    size_t n_sched = 0, n_cancel = 0, n_delivered = 0;
    static uint8_t got[MAXREQ][16];
    size_t n_got = 0;
    for (int t = 0; t < TARGETS; t++) {
        char stream[32];
        snprintf(stream, sizeof stream, "due-%d", t);
        uint64_t from = 0;
        for (;;) {
            factum_event evs[64];
            size_t n;
            uint64_t next;
            int rc = factum_read_stream(s, stream, from, FACTUM_FORWARD, evs, 64, &n, &next);
            if (rc == FACTUM_ENOTFOUND) break;
            CHECK_RC(rc, 0);
            for (size_t i = 0; i < n && n_got < MAXREQ; i++) {
                REQUIRE(evs[i].data_len == 38);
                CHECK_RC(factum_uuid_parse((const char *)evs[i].data + 1, 36, got[n_got]), 0);
                n_got++;
            }
            if (rc || next == FACTUM_END) break;
            from = next;
        }
    }
    /* At most once, whatever the acknowledgements said. */
    for (size_t i = 0; i < n_got; i++)
        for (size_t j = i + 1; j < n_got; j++)
            if (!memcmp(got[i], got[j], 16)) {
                char t[37];
                factum_uuid_format(got[i], t);
                fprintf(stderr, "  delivered twice: %s\n", t);
                CHECK(0);
            }
    /* Exactly once for the acknowledged, never for the cancelled. */
    for (size_t i = 0; i < n_recs; i++) {
        if (recs[i].kind != 1) {
            n_cancel += recs[i].kind == 4;
            continue;
        }
        n_sched++;
        int st = state_of(recs[i].id), found = 0;
        for (size_t j = 0; j < n_got; j++)
            found += !memcmp(got[j], recs[i].id, 16);
        char t[37];
        factum_uuid_format(recs[i].id, t);
        /* A cancellation that was acknowledged won; one cut short by the
         * kill may have won or not; without one, the delivery must come. */
        int ok = (st & 4) ? found == 0 : (st & 2) ? found <= 1 : found == 1;
        if (!ok) fprintf(stderr, "  state %d, delivered %d times: %s\n", st, found, t);
        CHECK(ok);
        n_delivered += found;
    }
    /* One marker per request; "$delivered" for exactly the delivered ones. */
    size_t n_req = 0, n_marks = 0, n_deliv_marks = 0;
    {
        uint64_t from = 0, next;
        factum_event evs[64];
        size_t n;
        while (!factum_read_stream(s, FACTUM_SCHEDULED_STREAM, from, FACTUM_FORWARD, evs, 64, &n, &next)) {
            n_req += n;
            if (next == FACTUM_END) break;
            from = next;
        }
        from = 0;
        while (
            !factum_read_stream(s, FACTUM_SCHEDULED_DONE_STREAM, from, FACTUM_FORWARD, evs, 64, &n, &next)) {
            n_marks += n;
            for (size_t i = 0; i < n; i++)
                n_deliv_marks += !strcmp(evs[i].type, "$delivered");
            if (next == FACTUM_END) break;
            from = next;
        }
    }
    CHECK_EQ_U64(n_marks, n_req);
    CHECK_EQ_U64(n_deliv_marks, n_got);
    printf("  %d kills: %zu requests, %zu acknowledged, %zu cancellations acknowledged, %zu delivered\n",
           cycles, n_req, n_sched, n_cancel, n_got);
    CHECK_RC(factum_store_close(s), 0);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_crash);
    return harness_done();
}
