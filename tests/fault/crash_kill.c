/* Crash test: a child process appends under concurrent load (4 threads,
 * single- and multi-event, single- and multi-stream appends) and reports
 * every acknowledged append through a pipe; the parent kills it with
 * SIGKILL at a random moment, reopens the store and checks, each cycle:
 *   - every acknowledged event is present, at its position, intact (ST-1);
 *   - no append is partly visible: an append's events are all there,
 *     consecutive, or none is (LOG-3);
 *   - positions are gapless and versions of each stream are 0..n-1;
 *   - appends continue with the right versions and positions.
 * FACTUM_CRASH_CYCLES sets the number of cycles (default 200). Prints its
 * seed; FACTUM_SEED replays the kill timings. */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define THREADS 4
#define STREAMS 24

typedef struct ackrec {
    uint64_t first_position;
    uint64_t first_version;
    uint64_t append_id;
    uint32_t n_events, n_parts;
} ackrec;

static char dir[512];
static int ack_fd;
static pthread_mutex_t ack_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct child_arg {
    factum_store *s;
    int t;
    uint64_t seed;
} child_arg;

static void *child_thread(void *p)
{
    child_arg *a = p;
    h_rng r = {a->seed};
    char json[2][4][96], streams[2][32];
    for (uint64_t k = 0;; k++) {
        uint64_t append_id = ((uint64_t)getpid() << 24) | ((uint64_t)a->t << 20) | (k & 0xfffff);
        int parts = h_below(&r, 5) == 0 ? 2 : 1;
        size_t n = 1 + h_below(&r, 4);
        factum_event_data ev[2][4];
        factum_append_req req[2];
        for (int q = 0; q < parts; q++) {
            snprintf(streams[q], sizeof streams[q], "crash-%d", (int)h_below(&r, STREAMS / 2) * 2 + q);
            for (size_t i = 0; i < n; i++) {
                snprintf(json[q][i], sizeof json[q][i],
                         "{\"a\":%" PRIu64 ",\"q\":%d,\"k\":%zu,\"n\":%zu,\"p\":%d}", append_id, q, i, n,
                         parts);
                ev[q][i] = harness_event("Crash", json[q][i]);
            }
            req[q] = (factum_append_req){streams[q], FACTUM_ANY, ev[q], n};
        }
        factum_append_result res[2];
        if (factum_append_multi(a->s, req, (size_t)parts, res, NULL) == 0) {
            ackrec rec = {res[0].first_position, res[0].first_version, append_id, (uint32_t)n,
                          (uint32_t)parts};
            pthread_mutex_lock(&ack_mu);
            if (write(ack_fd, &rec, sizeof rec) != (ssize_t)sizeof rec) _exit(3);
            pthread_mutex_unlock(&ack_mu);
        }
    }
    return NULL;
}

static void child_main(int fd, uint64_t seed)
{
    ack_fd = fd;
    factum_options o;
    harness_small_opts(&o);
    o.memtable_entries = 500;
    factum_store *s;
    if (factum_store_open(dir, &o, &s)) _exit(2);
    pthread_t th[THREADS];
    child_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (child_arg){s, t, seed * 31 + (uint64_t)t};
        pthread_create(&th[t], NULL, child_thread, &args[t]);
    }
    for (;;)
        pause();
}

static ackrec acks[400000];
static size_t n_acks;

static void drain(int fd, int block)
{
    while (1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, block ? 1000 : 0) <= 0) return;
        ackrec buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return;
        /* Records are written whole by one write() each (PIPE_BUF atomic). */
        for (size_t i = 0; i < (size_t)n / sizeof(ackrec) && n_acks < 400000; i++)
            acks[n_acks++] = buf[i];
    }
}

/* Parse the data of an event written by child_thread. */
static int parse(const factum_event *ev, uint64_t *a, int *q, size_t *k, size_t *n, int *p)
{
    char buf[128];
    size_t len = ev->data_len < sizeof buf - 1 ? ev->data_len : sizeof buf - 1;
    memcpy(buf, ev->data, len);
    buf[len] = 0;
    return sscanf(buf, "{\"a\":%" SCNu64 ",\"q\":%d,\"k\":%zu,\"n\":%zu,\"p\":%d}", a, q, k, n, p) == 5;
}

static int verify_store(int cycle)
{
    factum_options o;
    harness_small_opts(&o);
    factum_store *s;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) {
        fprintf(stderr, "cycle %d: reopen failed: %s\n", cycle, factum_strerror(rc));
        return 1;
    }
    int bad = 0;
    factum_stats st;
    factum_store_get_stats(s, &st);
    /* Every acknowledged append is there, whole. */
    for (size_t i = 0; i < n_acks && !bad; i++) {
        ackrec *a = &acks[i];
        for (uint32_t j = 0; j < a->n_events * a->n_parts; j++) {
            factum_event ev;
            uint64_t id;
            int q, p;
            size_t k, n;
            rc = factum_read_position(s, a->first_position + j, &ev);
            if (rc || !parse(&ev, &id, &q, &k, &n, &p) || id != a->append_id || k != j % a->n_events ||
                (j == 0 && ev.version != a->first_version)) {
                fprintf(stderr,
                        "cycle %d: acknowledged append %" PRIu64 " event %u at position %" PRIu64
                        " is missing or wrong (%s)\n",
                        cycle, a->append_id, j, a->first_position + j, factum_strerror(rc));
                bad = 1;
                break;
            }
        }
    }
    /* The whole log: gapless positions, whole appends, versions 0..n-1. */
    static uint64_t next_version[STREAMS];
    memset(next_version, 0, sizeof next_version);
    factum_event page[512];
    uint64_t pos = 1, expect = 1;
    uint64_t cur_append = 0;
    size_t cur_left = 0;
    while (!bad) {
        size_t n;
        rc = factum_read_all(s, pos, FACTUM_FORWARD, NULL, 0, page, 512, &n, &pos);
        if (rc) {
            fprintf(stderr, "cycle %d: read $all: %s\n", cycle, factum_strerror(rc));
            bad = 1;
            break;
        }
        if (!n) break;
        for (size_t i = 0; i < n && !bad; i++) {
            factum_event *ev = &page[i];
            uint64_t id;
            int q, p;
            size_t k, cnt;
            int sn = -1;
            if (ev->position != expect++ || !parse(ev, &id, &q, &k, &cnt, &p) ||
                sscanf(ev->stream, "crash-%d", &sn) != 1 || sn < 0 || sn >= STREAMS) {
                fprintf(stderr, "cycle %d: unexpected event at position %" PRIu64 "\n", cycle, ev->position);
                bad = 1;
                break;
            }
            if (ev->version != next_version[sn]++) {
                fprintf(stderr, "cycle %d: %s has version %" PRIu64 " where %" PRIu64 " was due\n", cycle,
                        ev->stream, ev->version, next_version[sn] - 1);
                bad = 1;
            }
            if (cur_left == 0) {
                if (k != 0 || q != 0) {
                    fprintf(stderr,
                            "cycle %d: append %" PRIu64 " starts in the middle (position %" PRIu64 ")\n",
                            cycle, id, ev->position);
                    bad = 1;
                }
                cur_append = id;
                cur_left = cnt * (size_t)p;
            } else if (id != cur_append) {
                fprintf(stderr, "cycle %d: append %" PRIu64 " is partial (position %" PRIu64 ")\n", cycle,
                        cur_append, ev->position);
                bad = 1;
            }
            cur_left--;
        }
    }
    if (!bad && cur_left) {
        fprintf(stderr, "cycle %d: the last append is partial\n", cycle);
        bad = 1;
    }
    if (!bad && expect - 1 != st.last_position) {
        fprintf(stderr, "cycle %d: $all has %" PRIu64 " events, last position %" PRIu64 "\n", cycle,
                expect - 1, st.last_position);
        bad = 1;
    }
    /* Appends continue where the log ends. */
    if (!bad) {
        factum_event_data e = harness_event("Check", "{\"a\":0,\"q\":0,\"k\":0,\"n\":1,\"p\":1}");
        factum_append_result r;
        rc = factum_append(s, "crash-0", (int64_t)next_version[0] - 1, &e, 1, &r);
        if (rc || r.first_position != st.last_position + 1 || r.first_version != next_version[0]) {
            fprintf(stderr, "cycle %d: append after recovery: %s\n", cycle, factum_strerror(rc));
            bad = 1;
        }
        if (!rc && n_acks < 400000) acks[n_acks++] = (ackrec){r.first_position, r.first_version, 0, 1, 1};
    }
    factum_store_close(s);
    return bad;
}

static void t_kill9_cycles(void)
{
    uint64_t seed = harness_seed("kill9_cycles");
    h_rng r = {seed};
    const char *e = getenv("FACTUM_CRASH_CYCLES");
    int cycles = e ? atoi(e) : 200;
    harness_tmpdir(dir, sizeof dir, "crash");
    int bad = 0;
    for (int c = 0; c < cycles && !bad; c++) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(fds[1], h_rand(&r) ^ (uint64_t)c);
        }
        close(fds[1]);
        /* Let it run 5..80 ms (sometimes longer, so memtables flush). */
        uint64_t run_ms = 5 + h_below(&r, 75) + (h_below(&r, 10) == 0 ? 300 : 0);
        uint64_t until = base_mono_ns_test() + run_ms * 1000000u;
        while (base_mono_ns_test() < until)
            drain(fds[0], 0);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        drain(fds[0], 0);
        close(fds[0]);
        if (!WIFSIGNALED(status)) {
            fprintf(stderr, "cycle %d: child exited with %d before the kill\n", c, WEXITSTATUS(status));
            bad = 1;
            break;
        }
        bad = verify_store(c);
    }
    CHECK(!bad);
    if (bad)
        fprintf(stderr, "  kill9_cycles failed (seed %" PRIu64 "), store kept in %s\n", seed, dir);
    else {
        printf("%d kill -9 cycles, %zu acknowledged appends all intact\n", cycles, n_acks);
        factum_verify_report rep;
        CHECK_RC(factum_verify(dir, NULL, NULL, &rep), 0);
        harness_rm_rf(dir);
    }
}

int main(void)
{
    RUN(t_kill9_cycles);
    return harness_done();
}
