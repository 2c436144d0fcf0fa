/* Crash test: a child process appends under concurrent load (4 threads,
 * single- and multi-event, single- and multi-stream appends, and a driver's
 * thread with 16 appends in flight whose fdatasyncs it makes itself or
 * through io_uring, by the cycle) and reports
 * every acknowledged append through a pipe; the parent kills it with
 * SIGKILL at a random moment, reopens the store and checks, each cycle:
 *   - every append acknowledged in this cycle is present, at its position,
 *     intact (ST-1), and so is a random sample of the older ones;
 *   - the log written since the last cycle: no append is partly visible
 *     (an append's events are all there, consecutive, or none is: LOG-3),
 *     positions are gapless and each stream's versions go on from where the
 *     verified part left them;
 *   - appends continue with the right versions and positions.
 * What a cycle verified was made durable by that reopen (recovery
 * fdatasyncs the replayed tail), so later cycles need not read it again:
 * each cycle costs what it added, not the whole run. At the end, every
 * acknowledged append and the whole log are verified once more, and
 * factum_verify checks every record.
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

/* A driver's thread (factum.h "Drivers"): SLOTS appends in flight at once
 * from one thread, each acknowledged from its callback and replaced by a
 * new one. The driver makes its fdatasyncs itself (FACTUM_DRIVER_SYNC) or
 * through io_uring, by the cycle's seed. */
#define SLOTS 16

typedef struct slot {
    factum_driver *drv;
    h_rng *r;
    uint64_t *k;
    uint64_t append_id;
    size_t n;
    char json[4][96];
    char stream[32];
    factum_event_data ev[4];
    factum_append_req req;
} slot;

static void slot_submit(slot *sl);

static void slot_done(void *arg, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)n;
    (void)failed;
    slot *sl = arg;
    if (rc == 0) {
        ackrec rec = {res[0].first_position, res[0].first_version, sl->append_id, (uint32_t)sl->n, 1};
        pthread_mutex_lock(&ack_mu);
        if (write(ack_fd, &rec, sizeof rec) != (ssize_t)sizeof rec) _exit(3);
        pthread_mutex_unlock(&ack_mu);
    }
    slot_submit(sl);
}

static void slot_submit(slot *sl)
{
    sl->append_id = ((uint64_t)getpid() << 24) | ((uint64_t)THREADS << 20) | ((*sl->k)++ & 0xfffff);
    sl->n = 1 + h_below(sl->r, 4);
    snprintf(sl->stream, sizeof sl->stream, "crash-%d", (int)h_below(sl->r, STREAMS / 2) * 2);
    for (size_t i = 0; i < sl->n; i++) {
        snprintf(sl->json[i], sizeof sl->json[i], "{\"a\":%" PRIu64 ",\"q\":0,\"k\":%zu,\"n\":%zu,\"p\":1}",
                 sl->append_id, i, sl->n);
        sl->ev[i] = harness_event("Crash", sl->json[i]);
    }
    sl->req = (factum_append_req){sl->stream, FACTUM_ANY, sl->ev, sl->n};
    if (factum_driver_append(sl->drv, &sl->req, 1, slot_done, sl)) _exit(4);
}

static void *driver_thread(void *p)
{
    child_arg *a = p;
    h_rng r = {a->seed};
    uint64_t k = 0;
    factum_driver *drv;
    if (factum_driver_new(a->s, a->seed & 1 ? FACTUM_DRIVER_SYNC : 0, &drv)) _exit(5);
    static slot slots[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        slots[i] = (slot){.drv = drv, .r = &r, .k = &k};
        slot_submit(&slots[i]);
    }
    for (;;)
        factum_driver_run(drv, 1000);
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
    pthread_t th[THREADS + 1];
    child_arg args[THREADS + 1];
    for (int t = 0; t <= THREADS; t++) {
        args[t] = (child_arg){s, t, seed * 31 + (uint64_t)t};
        pthread_create(&th[t], NULL, t < THREADS ? child_thread : driver_thread, &args[t]);
    }
    for (;;)
        pause();
}

#define OLD_SAMPLE 256 /* older acknowledgements re-read per cycle */

static ackrec *acks;
static size_t n_acks, cap_acks;

static void add_ack(const ackrec *a)
{
    if (n_acks == cap_acks) {
        size_t c = cap_acks ? cap_acks * 2 : 65536;
        ackrec *n = realloc(acks, c * sizeof *n);
        if (!n) {
            fprintf(stderr, "out of memory for %zu acknowledgements\n", c);
            exit(2);
        }
        acks = n;
        cap_acks = c;
    }
    acks[n_acks++] = *a;
}

static void drain(int fd, int block)
{
    while (1) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, block ? 1000 : 0) <= 0) return;
        ackrec buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return;
        /* Records are written whole by one write() each (PIPE_BUF atomic). */
        for (size_t i = 0; i < (size_t)n / sizeof(ackrec); i++)
            add_ack(&buf[i]);
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

/* Is acknowledged append a whole and intact at its positions? */
static int check_ack(factum_store *s, const ackrec *a, int cycle)
{
    for (uint32_t j = 0; j < a->n_events * a->n_parts; j++) {
        factum_event ev;
        uint64_t id;
        int q, p;
        size_t k, n;
        int rc = factum_read_position(s, a->first_position + j, &ev);
        if (rc || !parse(&ev, &id, &q, &k, &n, &p) || id != a->append_id || k != j % a->n_events ||
            (j == 0 && ev.version != a->first_version)) {
            fprintf(stderr,
                    "cycle %d: acknowledged append %" PRIu64 " event %u at position %" PRIu64
                    " is missing or wrong (%s)\n",
                    cycle, a->append_id, j, a->first_position + j, factum_strerror(rc));
            return 1;
        }
    }
    return 0;
}

/* Where the verified part of the log ends, and the state the scan of the
 * next part starts from. */
typedef struct verified {
    uint64_t next_pos;                 /* first position not verified */
    uint64_t next_version[STREAMS];   /* each stream's next version */
} verified;

/* Check the log from v->next_pos to its end: gapless positions, whole
 * appends, versions going on from v->next_version. Advances *v. */
static int check_log(factum_store *s, verified *v, uint64_t last_position, int cycle)
{
    factum_event page[512];
    uint64_t pos = v->next_pos, expect = v->next_pos;
    uint64_t cur_append = 0;
    size_t cur_left = 0;
    int bad = 0;
    while (!bad) {
        size_t n;
        int rc = factum_read_all(s, pos, FACTUM_FORWARD, NULL, 0, page, 512, &n, &pos);
        if (rc) {
            fprintf(stderr, "cycle %d: read $all: %s\n", cycle, factum_strerror(rc));
            return 1;
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
                return 1;
            }
            if (ev->version != v->next_version[sn]++) {
                fprintf(stderr, "cycle %d: %s has version %" PRIu64 " where %" PRIu64 " was due\n", cycle,
                        ev->stream, ev->version, v->next_version[sn] - 1);
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
    if (!bad && expect - 1 != last_position) {
        fprintf(stderr, "cycle %d: $all has %" PRIu64 " events, last position %" PRIu64 "\n", cycle,
                expect - 1, last_position);
        bad = 1;
    }
    v->next_pos = expect;
    return bad;
}

static verified done_part; /* what earlier cycles verified */
static h_rng sample_rng;

/* Reopen after a crash and check what this cycle added (acknowledgements
 * from `first_new` on, the log after done_part) and a sample of the rest;
 * with `everything`, all acknowledgements and the whole log. */
static int verify_store(int cycle, size_t first_new, int everything)
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
    /* Every acknowledged append of this cycle is there, whole; so is a
     * random sample of the older ones. */
    if (everything) first_new = 0;
    for (size_t i = first_new; i < n_acks && !bad; i++)
        bad = check_ack(s, &acks[i], cycle);
    for (int i = 0; i < OLD_SAMPLE && first_new && !bad; i++)
        bad = check_ack(s, &acks[h_below(&sample_rng, first_new)], cycle);
    /* The log since the verified part (or all of it). */
    verified v = done_part;
    if (everything) {
        memset(&v, 0, sizeof v);
        v.next_pos = 1;
    }
    if (!bad) bad = check_log(s, &v, st.last_position, cycle);
    /* Appends continue where the log ends. */
    if (!bad) {
        factum_event_data e = harness_event("Check", "{\"a\":0,\"q\":0,\"k\":0,\"n\":1,\"p\":1}");
        factum_append_result r;
        rc = factum_append(s, "crash-0", (int64_t)v.next_version[0] - 1, &e, 1, &r);
        if (rc || r.first_position != st.last_position + 1 || r.first_version != v.next_version[0]) {
            fprintf(stderr, "cycle %d: append after recovery: %s\n", cycle, factum_strerror(rc));
            bad = 1;
        } else {
            add_ack(&(ackrec){r.first_position, r.first_version, 0, 1, 1});
            v.next_version[0]++;
            v.next_pos++;
        }
    }
    if (!bad) done_part = v; /* durable: the reopen synced the tail, the check append was durable */
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
    sample_rng.s = seed ^ 0x5a5a5a5a;
    done_part.next_pos = 1;
    int bad = 0;
    uint64_t t_start = base_mono_ns_test();
    for (int c = 0; c < cycles && !bad; c++) {
        size_t first_new = n_acks;
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
        bad = verify_store(c, first_new, 0);
    }
    /* Once more, everything: every acknowledgement, the whole log. */
    if (!bad) bad = verify_store(cycles, 0, 1);
    CHECK(!bad);
    size_t by_driver = 0;
    for (size_t i = 0; i < n_acks; i++)
        by_driver += (acks[i].append_id >> 20 & 0xf) == THREADS;
    CHECK(by_driver > 0); /* the driver's thread took part */
    if (bad)
        fprintf(stderr, "  kill9_cycles failed (seed %" PRIu64 "), store kept in %s\n", seed, dir);
    else {
        printf("%d kill -9 cycles, %zu acknowledged appends (%zu through a driver; %" PRIu64
               " events) all intact, %.1f s\n",
               cycles, n_acks, by_driver, done_part.next_pos - 1, (double)(base_mono_ns_test() - t_start) / 1e9);
        factum_verify_report rep;
        CHECK_RC(factum_verify(dir, NULL, NULL, &rep), 0);
        CHECK_EQ_U64(rep.events, done_part.next_pos - 1);
        harness_rm_rf(dir);
    }
    free(acks);
}

int main(void)
{
    RUN(t_kill9_cycles);
    return harness_done();
}
