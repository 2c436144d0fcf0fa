/* Crash tests of JavaScript projections (src/proj/jsrun.c, PRJ-1..3): a
 * child process runs a partitioned JavaScript projection that emits and
 * links, catching up over a backlog or following a writer thread, and is
 * killed with SIGKILL at a random moment, cycle after cycle. Afterwards:
 *
 *   - every partition's state equals what the source events say (a count
 *     and the last sequence number per stream, no gap seen by the script);
 *   - each emitted stream holds exactly one event per source event that
 *     emits, in order, none missing, none doubled; so does the linked one;
 *   - no worker process outlives its parent (they exit when it dies).
 *
 * The expected output is computed from the source events alone.
 * FACTUM_PROJ_CRASH_CYCLES sets the cycles (default 8); the seed is printed
 * (FACTUM_SEED replays the choices, not the timing). */
#include "harness.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define CATS 3

static char dir[512];

static const char QUERY[] =
    "fromAll().foreachStream().when({\n"
    "  $init: () => ({ n: 0, last: -1 }),\n"
    "  $any: (s, e) => {\n"
    "    if (e.sequenceNumber !== s.last + 1) s.gap = (s.gap || 0) + 1;\n"
    "    s.n++; s.last = e.sequenceNumber;\n"
    "    const [cat] = e.streamId.split('-');\n"
    "    if (e.eventType === 'T0') emit(`audit-${cat}`, 'Seen', { s: e.streamId, n: e.sequenceNumber });\n"
    "    if (e.eventType === 'T1') linkTo('t1-links', e);\n"
    "    return s;\n"
    "  }\n"
    "}).outputState();";

static int append_source(factum_store *s, uint64_t k, int n, int *rc)
{
    static const char *types[3] = {"T0", "T1", "T2"};
    char stream[32];
    factum_event_data ev[3];
    snprintf(stream, sizeof stream, "s%d-%d", (int)(k % CATS), (int)(k / CATS % 5));
    for (int i = 0; i < n; i++)
        ev[i] = harness_event(types[(k + (uint64_t)i) % 3], "{}");
    *rc = factum_append(s, stream, FACTUM_ANY, ev, (size_t)n, NULL);
    return *rc ? 0 : n;
}

static factum_store *open_plain(void)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static factum_projections *open_projections(factum_store *s, uint32_t batch)
{
    factum_projections_options o;
    factum_projections_options_init(&o);
    o.create_system = 0;
    o.batch_events = batch;
    o.js_ms_per_event = 2000;
    factum_projections *m = NULL;
    int rc = factum_projections_open(s, &o, &m);
    if (rc) fprintf(stderr, "projections: %s\n", factum_strerror(rc));
    return m;
}

static uint64_t last_position(factum_store *s)
{
    factum_stats st;
    return factum_store_get_stats(s, &st) ? 0 : st.last_position;
}

static int wait_done(factum_projections *m, factum_store *s)
{
    int rc = factum_projection_wait(m, "crashy", last_position(s), 60000);
    if (rc != 1) {
        factum_projection_status st;
        factum_projection_get_status(m, "crashy", &st);
        fprintf(stderr, "  wait: %d (state %d, %s)\n", rc, st.state, st.reason);
    }
    return rc == 1;
}

/* ---- the check ------------------------------------------------------------ */

typedef struct per_stream {
    char name[32];
    uint64_t n;
} per_stream;

static int verify(factum_store *s, factum_projections *m, uint64_t *n_sources)
{
    per_stream ps[CATS * 5];
    size_t nps = 0;
    /* expected emitted data and links, from the sources in $all order */
    size_t cap = 1 << 16, n_audit[CATS] = {0}, n_links = 0;
    char **audit[CATS], **links = calloc(cap, sizeof *links);
    for (int c = 0; c < CATS; c++)
        audit[c] = calloc(cap, sizeof(char *));
    uint64_t from = 1, sources = 0;
    int bad = 0;
    for (;;) {
        factum_event page[256];
        size_t n = 0;
        uint64_t next;
        if (factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, page, 256, &n, &next) || !n) break;
        for (size_t i = 0; i < n; i++) {
            const factum_event *e = &page[i];
            if (e->stream[0] != 's') continue;
            sources++;
            size_t k = 0;
            while (k < nps && (strlen(ps[k].name) != e->stream_len || memcmp(ps[k].name, e->stream, e->stream_len)))
                k++;
            if (k == nps) {
                snprintf(ps[nps].name, sizeof ps[nps].name, "%.*s", (int)e->stream_len, e->stream);
                ps[nps++].n = 0;
            }
            ps[k].n++;
            char buf[96];
            int cat = e->stream[1] - '0';
            if (!strcmp(e->type, "T0") && n_audit[cat] < cap) {
                snprintf(buf, sizeof buf, "{\"s\":\"%.*s\",\"n\":%llu}", (int)e->stream_len, e->stream,
                         (unsigned long long)e->version);
                audit[cat][n_audit[cat]++] = strdup(buf);
            }
            if (!strcmp(e->type, "T1") && n_links < cap) {
                snprintf(buf, sizeof buf, "%llu@%.*s", (unsigned long long)e->version, (int)e->stream_len, e->stream);
                links[n_links++] = strdup(buf);
            }
        }
        from = next;
    }
    *n_sources = sources;
    /* states */
    for (size_t k = 0; k < nps; k++) {
        char want[96], *json = NULL;
        size_t len;
        snprintf(want, sizeof want, "{\"n\":%llu,\"last\":%llu}", (unsigned long long)ps[k].n,
                 (unsigned long long)ps[k].n - 1);
        int rc = factum_projection_get_state(m, "crashy", ps[k].name, &json, &len);
        if (rc || strcmp(json, want)) {
            if (bad < 5) fprintf(stderr, "  state of %s: '%s', want '%s'\n", ps[k].name, json ? json : "?", want);
            bad++;
        }
        free(json);
    }
    /* emitted and linked streams, event by event */
    for (int c = 0; c <= CATS; c++) {
        char stream[32];
        char **want = c < CATS ? audit[c] : links;
        size_t n_want = c < CATS ? n_audit[c] : n_links;
        if (c < CATS)
            snprintf(stream, sizeof stream, "audit-s%d", c);
        else
            snprintf(stream, sizeof stream, "t1-links");
        uint64_t at = 0;
        size_t got = 0;
        while (at != FACTUM_END) {
            factum_event page[256];
            size_t n = 0;
            int rc = factum_read_stream(s, stream, at, FACTUM_FORWARD, page, 256, &n, &at);
            if (rc || !n) break;
            for (size_t i = 0; i < n; i++, got++) {
                if (got >= n_want || page[i].data_len != strlen(want[got]) ||
                    memcmp(page[i].data, want[got], page[i].data_len)) {
                    if (bad < 5)
                        fprintf(stderr, "  %s[%zu]: '%.*s', want '%s'\n", stream, got, (int)page[i].data_len,
                                (const char *)page[i].data, got < n_want ? want[got] : "(nothing)");
                    bad++;
                }
            }
        }
        if (got != n_want) {
            fprintf(stderr, "  %s: %zu events, want %zu\n", stream, got, n_want);
            bad++;
        }
        for (size_t i = 0; i < n_want; i++)
            free(want[i]);
        free(want);
    }
    return bad;
}

/* Worker processes whose parent is gone (reparented to init or a
 * subreaper) and that still run: there must be none. */
static int orphan_workers(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        /* pid (comm) state ppid */
        char *rp = strrchr(buf, ')');
        if (!strstr(buf, "(factum-js)") || !rp) continue;
        int ppid = atoi(rp + 4);
        if (ppid == 1 || ppid == (int)getpid()) n++;
    }
    closedir(d);
    return n;
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
        usleep(200);
    }
    return NULL;
}

static void child_main(int live, uint64_t k, uint64_t seed)
{
    h_rng r = {seed};
    factum_store *s = open_plain();
    if (!s) _exit(2);
    factum_projections *m = open_projections(s, 1 + (uint32_t)h_below(&r, 300));
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

static void t_kill9(void)
{
    uint64_t seed = harness_seed("projection (JavaScript) kill -9");
    h_rng r = {seed};
    const char *e = getenv("FACTUM_PROJ_CRASH_CYCLES");
    int cycles = e ? atoi(e) : 8;
    harness_tmpdir(dir, sizeof dir, "proj-js-kill");
    factum_store *s = open_plain();
    REQUIRE(s);
    factum_projections *m = open_projections(s, 64);
    REQUIRE(m);
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = "crashy";
    d.query = QUERY;
    d.emit_enabled = 1;
    d.enabled = 0;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    CHECK_RC(factum_projection_enable(m, "crashy", NULL, NULL), 0);
    factum_projections_close(m);
    int rc = 0;
    uint64_t k = 0;
    for (int i = 0; i < 3000; i++)
        k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
    REQUIRE(rc == 0);
    factum_store_close(s);
    int live_cycles = 0, catchup_cycles = 0;
    for (int c = 0; c < cycles; c++) {
        int live = c % 2;
        if (!live) {
            s = open_plain();
            REQUIRE(s);
            for (int i = 0; i < 1500; i++)
                k += (uint64_t)append_source(s, k, 1 + (int)h_below(&r, 3), &rc);
            factum_store_close(s);
        }
        uint64_t child_seed = h_rand(&r);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_main(live, k, child_seed);
        usleep((useconds_t)(50000 + h_below(&r, live ? 400000 : 250000)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        live ? live_cycles++ : catchup_cycles++;
        if (live) { /* the writer's events: count them from the log */
            s = open_plain();
            REQUIRE(s);
            uint64_t n = 0, from = 1;
            for (;;) {
                factum_event page[256];
                size_t got = 0;
                uint64_t next;
                if (factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, page, 256, &got, &next) || !got) break;
                for (size_t i = 0; i < got; i++)
                    n += page[i].stream[0] == 's';
                from = next;
            }
            k = n;
            factum_store_close(s);
        }
    }
    s = open_plain();
    REQUIRE(s);
    m = open_projections(s, 4096);
    REQUIRE(m);
    CHECK(wait_done(m, s));
    uint64_t n_sources = 0;
    CHECK_RC(verify(s, m, &n_sources), 0);
    factum_projections_close(m);
    factum_store_close(s);
    int orphans = 0;
    for (int i = 0; i < 50 && (orphans = orphan_workers()); i++)
        usleep(100000);
    CHECK(orphans == 0);
    printf("  %d kill -9 during catch-up, %d during live processing; %llu source events\n", catchup_cycles,
           live_cycles, (unsigned long long)n_sources);
    harness_rm_rf(dir);
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set: the JavaScript worker was not built (skipped)\n");
        return 77;
    }
    RUN(t_kill9);
    return harness_done();
}
