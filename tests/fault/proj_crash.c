/* Crash tests of the system projections (src/proj, PRJ-1..3): whatever
 * stops them, afterwards every source event has exactly one link (or `$@`
 * event) in each projection's output, in order, none missing, none doubled.
 *
 *   t_power_loss  the store under the fault layer: an fdatasync of the log
 *                 fails while the projections catch up or follow new
 *                 appends (the store fail-stops, the projections fault),
 *                 then the machine loses power: unsynced bytes vanish or
 *                 tear, cutting batches of links and checkpoints anywhere.
 *                 Reopened, the projections go on and the output is exact.
 *   t_kill9       a child process runs the projections, catching up over a
 *                 backlog or following a writer thread, and is killed with
 *                 SIGKILL at a random moment, cycle after cycle; then the
 *                 output is checked exactly, and compared stream by stream
 *                 with that of an uninterrupted run over the same events.
 *
 * The expected output is computed from the source events alone (their
 * streams `s<c>-<n>`, types `T<j>`, correlation ids `c<m>`), independently
 * of src/proj. FACTUM_PROJ_CRASH_CYCLES sets t_kill9's cycles (default 16);
 * the seed is printed (FACTUM_SEED replays the choices, not the timing). */
#include "harness.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "io/io.h"
#include "store/store_int.h"

#define CATS  5
#define TYPES 3
#define CORRS 7

static char dir[512];

static const char *SYSTEM[] = {"$streams", "$stream_by_category", "$by_category", "$by_event_type",
                               "$by_correlation_id"};

/* ---- source events ------------------------------------------------------ */

/* Append 1..3 events of source number k.. to one stream; returns how many
 * were appended (0 on failure, *rc set). */
static int append_source(factum_store *s, uint64_t k, int n, int *rc)
{
    static const char *types[TYPES] = {"T0", "T1", "T2"};
    char stream[32], meta[3][64];
    factum_event_data ev[3];
    snprintf(stream, sizeof stream, "s%d-%d", (int)(k % CATS), (int)(k / CATS % 4));
    for (int i = 0; i < n; i++) {
        snprintf(meta[i], sizeof meta[i], "{\"$correlationId\":\"c%d\"}", (int)((k + (uint64_t)i) % CORRS));
        ev[i] = harness_event(types[(k + (uint64_t)i) % TYPES], "{}");
        ev[i].metadata = meta[i];
        ev[i].metadata_len = strlen(meta[i]);
        ev[i].flags |= FACTUM_EVENT_META_JSON;
    }
    *rc = factum_append(s, stream, FACTUM_ANY, ev, (size_t)n, NULL);
    return *rc ? 0 : n;
}

/* ---- what the projections must have written -------------------------- */

typedef struct out {
    char stream[32];
    char data[48];
} out;

typedef struct expect {
    out *v;
    size_t n, cap;
} expect;

static void push(expect *e, const char *stream, const char *data)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->v = realloc(e->v, e->cap * sizeof *e->v);
    }
    snprintf(e->v[e->n].stream, sizeof e->v[e->n].stream, "%s", stream);
    snprintf(e->v[e->n].data, sizeof e->v[e->n].data, "%s", data);
    e->n++;
}

/* The expected output of every system projection, in $all order of the
 * source events (the `s...` streams; everything else is the projections'
 * own or their definitions). */
static void expected(factum_store *s, expect *e, uint64_t *n_sources)
{
    uint64_t from = 1;
    *n_sources = 0;
    for (;;) {
        factum_event page[256];
        size_t n = 0;
        uint64_t next;
        if (factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, page, 256, &n, &next) || !n) break;
        for (size_t i = 0; i < n; i++) {
            const factum_event *ev = &page[i];
            if (ev->stream[0] != 's') continue;
            char link[64], o[48], cat[8];
            snprintf(link, sizeof link, "%llu@%s", (unsigned long long)ev->version, ev->stream);
            snprintf(cat, sizeof cat, "%.*s", (int)(strchr(ev->stream, '-') - ev->stream), ev->stream);
            snprintf(o, sizeof o, "$ce-%s", cat);
            push(e, o, link);
            snprintf(o, sizeof o, "$et-%s", ev->type);
            push(e, o, link);
            const char *c = strstr((const char *)ev->metadata, "\"c");
            snprintf(o, sizeof o, "$bc-%.*s", (int)(strchr(c + 1, '"') - c - 1), c + 1);
            push(e, o, link);
            if (ev->version == 0) {
                push(e, "$streams", link);
                snprintf(o, sizeof o, "$category-%s", cat);
                push(e, o, ev->stream);
            }
            (*n_sources)++;
        }
        from = next;
    }
}

/* The data of every event of a stream, in order, '|'-joined (malloc'd). */
static char *stream_data(factum_store *s, const char *stream, size_t *count)
{
    base_buf b = {0};
    uint64_t from = 0;
    *count = 0;
    while (from != FACTUM_END) {
        factum_event ev[256];
        size_t n = 0;
        if (factum_read_stream(s, stream, from, FACTUM_FORWARD, ev, 256, &n, &from)) break;
        for (size_t i = 0; i < n; i++) {
            base_buf_printf(&b, "%s%.*s", *count ? "|" : "", (int)ev[i].data_len, (const char *)ev[i].data);
            (*count)++;
        }
    }
    base_buf_append(&b, "", 1);
    return (char *)b.data;
}

static int is_output(const char *name)
{
    return !strncmp(name, "$ce-", 4) || !strncmp(name, "$et-", 4) || !strncmp(name, "$bc-", 4) ||
           !strcmp(name, "$streams") || !strncmp(name, "$category-", 10);
}

typedef struct names {
    char v[64][32];
    size_t n;
} names;

static int list_outputs(void *ctx, const char *name, size_t len, uint64_t created)
{
    (void)created;
    names *o = ctx;
    if (is_output(name) && o->n < 64 && len < 32) snprintf(o->v[o->n++], 32, "%s", name);
    return 0;
}

/* Every output stream holds exactly what the source events say: returns
 * the number of streams that differ (and prints them). */
static int verify(factum_store *s, uint64_t *n_sources)
{
    expect e = {0};
    expected(s, &e, n_sources);
    names outs = {.n = 0};
    factum_list_streams(s, 0, list_outputs, &outs);
    int bad = 0;
    size_t total = 0;
    for (size_t k = 0; k < outs.n; k++) {
        base_buf want = {0};
        size_t w = 0;
        for (size_t i = 0; i < e.n; i++)
            if (!strcmp(e.v[i].stream, outs.v[k]))
                base_buf_printf(&want, "%s%s", w++ ? "|" : "", e.v[i].data);
        base_buf_append(&want, "", 1);
        size_t got_n;
        char *got = stream_data(s, outs.v[k], &got_n);
        total += w;
        if (strcmp(got, (char *)want.data)) {
            bad++;
            fprintf(stderr, "  %s: %zu events, %zu expected\n", outs.v[k], got_n, w);
        }
        free(got);
        base_buf_free(&want);
    }
    if (total != e.n) { /* an expected stream that does not exist */
        bad++;
        fprintf(stderr, "  %zu of %zu expected events are in existing streams\n", total, e.n);
    }
    free(e.v);
    return bad;
}

/* Open descriptors and mappings of this process, printed where a store
 * stopped or a projection did not finish: fault_proj_crash_long keeps two
 * stores of a thousand 1 MiB segments open (a descriptor and a mapping
 * each), so a limit is the first thing to rule out. */
static void diag_resources(const char *where)
{
    size_t fds = 0, maps = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            fds++;
        closedir(d);
    }
    FILE *f = fopen("/proc/self/maps", "r");
    if (f) {
        int c;
        while ((c = getc(f)) != EOF)
            maps += c == '\n';
        fclose(f);
    }
    fprintf(stderr, "  %s: %zu open descriptors, %zu mappings\n", where, fds, maps);
}

/* The stores' error lines (the errno behind a fail-stop: a projection
 * only sees FACTUM_EFAILED). ctx names the store. */
static void error_log(void *ctx, int level, const char *msg)
{
    if (level != FACTUM_LOG_ERROR) return;
    fprintf(stderr, "  %s store: %s\n", (const char *)ctx, msg);
    diag_resources("then");
}

static int wait_all(factum_projections *m, factum_store *s)
{
    factum_stats st;
    factum_store_get_stats(s, &st);
    for (int i = 0; i < 5; i++) {
        int rc = factum_projection_wait(m, SYSTEM[i], st.last_position, 60000);
        if (rc != 1) {
            factum_projection_status ps;
            factum_projection_get_status(m, SYSTEM[i], &ps);
            fprintf(stderr, "  wait %s: %d (%s): %s\n", SYSTEM[i], rc, factum_strerror(rc), ps.reason);
            diag_resources("then");
            return 0;
        }
    }
    return 1;
}

static factum_projections *open_projections(factum_store *s, uint32_t batch, uint32_t in_flight)
{
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.start_system = 1;
    po.batch_events = batch;
    po.batches_in_flight = in_flight;
    factum_projections *m = NULL;
    int rc = factum_projections_open(s, &po, &m);
    if (rc) fprintf(stderr, "  projections: %s\n", factum_strerror(rc));
    return m;
}

static factum_store *open_plain(int durability)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = durability;
    o.log_fn = error_log;
    o.log_ctx = "crashed";
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "  open: %s\n", factum_strerror(rc));
    return s;
}

/* The position $by_category's last committed checkpoint records (0: none). */
static uint64_t checkpoint_of(factum_store *s, const char *projection)
{
    char stream[96];
    snprintf(stream, sizeof stream, "$projections-%s-checkpoint", projection);
    factum_event ev;
    size_t n = 0;
    if (factum_read_stream(s, stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL) || !n) return 0;
    const char *c = memmem(ev.metadata, ev.metadata_len, "\"$c\":", 5);
    return c ? strtoull(c + 5, NULL, 10) : 0;
}

static uint64_t last_position(factum_store *s)
{
    factum_stats st;
    factum_store_get_stats(s, &st);
    return st.last_position;
}

typedef struct round_result {
    int faulted; /* a projection faulted on the failed fdatasync */
    int cut;     /* power loss took back committed batches of a projection */
} round_result;

/* Durable: the k-th fdatasync of the log fails, the store stops, then the
 * power goes. Relaxed: the power goes while the projections run; what was
 * not yet synced (up to 100 ms of batches and sources) vanishes or tears. */
static void power_loss_round(uint64_t seed, int relaxed, round_result *res)
{
    h_rng r = {seed};
    harness_tmpdir(dir, sizeof dir, "proj-power");
    io_fault *f = io_fault_new(seed);
    factum_options o;
    harness_small_opts(&o);
    o.durability = relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    factum_store *s = NULL;
    REQUIRE(store_open_io(dir, &o, io_fault_env(f), &s) == 0);
    int rc = 0;
    uint64_t k = 0, acked = 0;
    for (int i = 0; i < 600; i++) /* a backlog to catch up on */
        k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
    CHECK_RC(rc, 0);
    acked = k;
    factum_projections *m = open_projections(s, 1 + (uint32_t)h_below(&r, 40), 1 + (uint32_t)h_below(&r, 3));
    REQUIRE(m);
    if (!relaxed) { /* from now on the n-th fdatasync of the log fails */
        io_fault_target(f, "/log/");
        io_fault_fail_fsync(f, 1 + h_below(&r, 40), -EIO);
    }
    int n = relaxed ? 200 + (int)h_below(&r, 1500) : 2000;
    for (int i = 0; i < n && !rc; i++) {
        k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
        if (!rc) acked = k;
        if (h_below(&r, 8) == 0) usleep(200);
    }
    /* Durable: the store has stopped; a projection faults when it next
     * appends. Give the projections' thread the time to get there (a
     * loaded or sanitized machine may still be reading when the writer
     * stops), so that the round shows what it is meant to. */
    for (int w = 0; w < (relaxed ? 1 : 500) && !res->faulted; w++) {
        for (int i = 0; i < 5; i++) {
            factum_projection_status st;
            factum_projection_get_status(m, SYSTEM[i], &st);
            if (st.state == FACTUM_PROJECTION_FAULTED) res->faulted = 1;
        }
        if (!res->faulted && !relaxed) usleep(10000);
    }
    factum_projections_close(m);
    uint64_t before = checkpoint_of(s, "$by_category");
    store_abandon(s);
    /* Relaxed mode: a random subset of the unsynced sectors surviving can
     * leave damage before intact batches, which open refuses (LOG-4 cannot
     * tell relaxed acknowledged data from a torn tail): lose or tear only
     * the end there. */
    int mode = (int)h_below(&r, relaxed ? 2 : 3);
    CHECK_RC(io_fault_power_loss(f, mode), 0);
    io_fault_free(f);
    /* Recovered: the projections go on from their last committed batch. */
    s = open_plain(FACTUM_DURABLE);
    REQUIRE(s);
    if (checkpoint_of(s, "$by_category") < before) res->cut = 1;
    m = open_projections(s, 1 + (uint32_t)h_below(&r, 40), 1 + (uint32_t)h_below(&r, 3));
    REQUIRE(m);
    for (int i = 0; i < 100; i++)
        append_source(s, k + (uint64_t)i, 1, &rc);
    CHECK(wait_all(m, s));
    factum_projections_close(m);
    uint64_t n_sources;
    CHECK_RC(verify(s, &n_sources), 0);
    if (!relaxed) CHECK(n_sources >= acked + 100); /* durable: every acknowledged source is there */
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_power_loss(void)
{
    uint64_t seed = harness_seed("proj power loss");
    round_result durable = {0, 0}, relaxed = {0, 0};
    int faulted = 0, cut = 0;
    for (int round = 0; round < 32; round++) {
        round_result rr = {0, 0};
        power_loss_round(seed + (uint64_t)round, round % 2, &rr);
        faulted += rr.faulted;
        cut += rr.cut;
        if (round % 2)
            relaxed.cut += rr.cut;
        else
            durable.faulted += rr.faulted;
    }
    printf("  32 rounds: projections faulted on the failed fdatasync in %d, power loss took back committed "
           "batches in %d\n",
           faulted, cut);
    /* The test is only worth something if both happened. */
    CHECK(durable.faulted > 0);
    CHECK(relaxed.cut > 0);
}

/* ---- kill -9 ------------------------------------------------------------ */

typedef struct child_writer {
    factum_store *s;
    uint64_t k;
} child_writer;

static void *child_write(void *p)
{
    child_writer *w = p;
    int rc;
    for (;;) {
        w->k += (uint64_t)append_source(w->s, w->k, 1, &rc);
        if (rc) _exit(4);
    }
    return NULL;
}

/* The child: run the projections (and, live, a writer) until killed. */
static void child_main(int live, uint64_t k, uint64_t seed)
{
    h_rng r = {seed};
    factum_store *s = open_plain(FACTUM_RELAXED);
    if (!s) _exit(2);
    factum_projections *m = open_projections(s, 1 + (uint32_t)h_below(&r, 200), 1 + (uint32_t)h_below(&r, 3));
    if (!m) _exit(3);
    if (live) {
        static child_writer w;
        w = (child_writer){s, k};
        pthread_t t;
        pthread_create(&t, NULL, child_write, &w);
    }
    for (;;)
        pause();
}

/* Copy the source events, in order, into a fresh store and project them
 * without interruption; every output stream must equal the crashed run's. */
static int compare_uninterrupted(factum_store *crashed)
{
    char other[600];
    snprintf(other, sizeof other, "%s-clean", dir);
    harness_rm_rf(other);
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    o.log_fn = error_log;
    o.log_ctx = "uninterrupted";
    factum_store *s = NULL;
    if (factum_store_open(other, &o, &s)) return 1;
    uint64_t from = 1;
    for (;;) {
        factum_event page[256];
        size_t n = 0;
        uint64_t next;
        if (factum_read_all(crashed, from, FACTUM_FORWARD, NULL, 0, page, 256, &n, &next) || !n) break;
        for (size_t i = 0; i < n; i++) {
            if (page[i].stream[0] != 's') continue;
            factum_event_data ev = {.type = page[i].type,
                                    .flags = page[i].flags,
                                    .data = page[i].data,
                                    .data_len = page[i].data_len,
                                    .metadata = page[i].metadata,
                                    .metadata_len = page[i].metadata_len};
            if (factum_append(s, page[i].stream, FACTUM_ANY, &ev, 1, NULL)) return 1;
        }
        from = next;
    }
    factum_projections *m = open_projections(s, 4096, 2);
    int bad = !m || !wait_all(m, s);
    factum_projections_close(m);
    names outs = {.n = 0};
    factum_list_streams(crashed, 0, list_outputs, &outs);
    names outs2 = {.n = 0};
    factum_list_streams(s, 0, list_outputs, &outs2);
    if (outs.n != outs2.n) {
        fprintf(stderr, "  %zu output streams, %zu uninterrupted\n", outs.n, outs2.n);
        bad++;
    }
    for (size_t i = 0; i < outs.n; i++) {
        size_t a, b;
        char *x = stream_data(crashed, outs.v[i], &a), *y = stream_data(s, outs.v[i], &b);
        if (strcmp(x, y)) {
            fprintf(stderr, "  %s: %zu events, %zu uninterrupted\n", outs.v[i], a, b);
            bad++;
        }
        free(x);
        free(y);
    }
    factum_store_close(s);
    harness_rm_rf(other);
    return bad;
}

static void t_kill9(void)
{
    uint64_t seed = harness_seed("proj kill -9");
    h_rng r = {seed};
    const char *e = getenv("FACTUM_PROJ_CRASH_CYCLES");
    int cycles = e ? atoi(e) : 16;
    harness_tmpdir(dir, sizeof dir, "proj-kill");
    factum_store *s = open_plain(FACTUM_RELAXED);
    REQUIRE(s);
    int rc = 0;
    uint64_t k = 0;
    for (int i = 0; i < 6000; i++)
        k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
    REQUIRE(rc == 0);
    factum_store_close(s);
    int live_cycles = 0, catchup_cycles = 0, midway = 0;
    uint64_t prev_ck = 0;
    for (int c = 0; c < cycles; c++) {
        int live = c % 2;
        /* Before a catch-up cycle, a backlog: events the projections have
         * not read, appended while they did not run. */
        if (!live) {
            s = open_plain(FACTUM_RELAXED);
            REQUIRE(s);
            for (int i = 0; i < 3000; i++)
                k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
            factum_store_close(s);
        }
        uint64_t child_seed = h_rand(&r);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_main(live, k, child_seed);
        usleep((useconds_t)(1000 + h_below(&r, live ? 200000 : 60000)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status)); /* killed, not exited on its own */
        live ? live_cycles++ : catchup_cycles++;
        s = open_plain(FACTUM_RELAXED);
        REQUIRE(s);
        uint64_t ck = checkpoint_of(s, "$by_category");
        if (!live && ck > prev_ck && ck < last_position(s))
            midway++; /* killed in the middle of catching up */
        prev_ck = ck;
        factum_store_close(s);
        if (c % 4 == 3) { /* now and then: the output so far is exact already */
            s = open_plain(FACTUM_RELAXED);
            REQUIRE(s);
            factum_projections *m = open_projections(s, 64, 2);
            REQUIRE(m);
            CHECK(wait_all(m, s));
            factum_projections_close(m);
            uint64_t n_sources;
            CHECK_RC(verify(s, &n_sources), 0);
            factum_store_close(s);
        }
    }
    s = open_plain(FACTUM_RELAXED);
    REQUIRE(s);
    factum_projections *m = open_projections(s, 4096, 2);
    REQUIRE(m);
    CHECK(wait_all(m, s));
    factum_projections_close(m);
    uint64_t n_sources;
    CHECK_RC(verify(s, &n_sources), 0);
    CHECK_RC(compare_uninterrupted(s), 0);
    printf("  %d kill -9 during catch-up (%d of them after some batches and before the end), %d during live "
           "processing; %" PRIu64 " source events\n",
           catchup_cycles, midway, live_cycles, n_sources);
    CHECK(midway > 0);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_power_loss);
    RUN(t_kill9);
    return harness_done();
}
