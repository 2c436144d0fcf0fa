/*
 * proj_asof.c - the time to answer "a projection's state as of a position"
 * (factum_projection_state_asof, issue 14) at the middle of a log of
 * EVENTS source events: a JavaScript projection without partitions
 * replayed from the start of the log and from its newest usable checkpoint,
 * a foreachStream projection's partition (only that stream's events go to
 * the handlers), and the fixed cost (position 0: the worker's start).
 * The projections run while the events are appended, as they would live,
 * with the default batch of 4096 events (so a checkpoint every few thousand
 * events at most).
 *
 * Usage: factum-bench-proj-asof [DIR] [EVENTS]   (default /tmp, 100,000)
 * factum-js is found as $FACTUM_JS_WORKER or beside the program's parent
 * directory's factum-js (build/<dir>/factum-js).
 * Prints "@ factum <workload> <metric> <value>" lines and a readable table.
 */
#include <inttypes.h>
#include <limits.h>
#include <unistd.h>

#include "bench.h"
#include "factum.h"

#define RUNS 5

static const char TOTAL[] = "fromCategory('acct').when({\n"
                            "  $init: () => ({n: 0, sum: 0}),\n"
                            "  Deposited: (s, e) => { s.n++; s.sum += e.body.amount; return s; },\n"
                            "}).outputState();\n";
static const char PER[] = "fromCategory('acct').foreachStream().when({\n"
                          "  $init: () => ({bal: 0}),\n"
                          "  Deposited: (s, e) => { s.bal += e.body.amount; return s; },\n"
                          "});\n";

static void die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "%s: %s%s%s\n", what, factum_strerror(rc), err ? ": " : "", err ? err : "");
    exit(1);
}

typedef struct measure {
    double ms[RUNS];
    uint64_t from, read, handled;
} measure;

static void ask(factum_projections *m, const char *name, const char *part, uint64_t pos, int ckpt,
                measure *out)
{
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.use_checkpoints = ckpt;
    o.time_limit_ms = 600000;
    for (int r = 0; r < RUNS; r++) {
        factum_projection_asof a;
        char err[512];
        uint64_t t0 = now_ns();
        int rc = factum_projection_state_asof(m, name, part, pos, &o, &a, err, sizeof err);
        if (rc) die("state as of", rc, err);
        out->ms[r] = (double)(now_ns() - t0) / 1e6;
        out->from = a.from;
        out->read = a.events_read;
        out->handled = a.events_handled;
        factum_projection_asof_free(&a);
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *w, const char *what, measure *me)
{
    qsort(me->ms, RUNS, sizeof me->ms[0], cmp_d);
    printf("| %s | %.1f ms (%.1f-%.1f) | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", what, me->ms[RUNS / 2],
           me->ms[0], me->ms[RUNS - 1], me->from, me->read, me->handled);
    result(w, "p50_ms", me->ms[RUNS / 2]);
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    const char *base = argc > 1 ? argv[1] : "/tmp";
    uint64_t total = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    if (total < 200) total = 200;
    char worker[PATH_MAX + 16];
    if (!getenv("FACTUM_JS_WORKER")) {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = 0;
            char *slash = strrchr(self, '/');
            if (slash) *slash = 0;
            snprintf(worker, sizeof worker, "%s/../factum-js", self);
            setenv("FACTUM_JS_WORKER", worker, 1);
        }
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/factum-bench-proj-asof-%d", base, (int)getpid());
    factum_options so;
    factum_options_init(&so);
    so.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &so, &s);
    if (rc) die("open", rc, dir);
    factum_projections *m = NULL;
    if ((rc = factum_projections_open(s, NULL, &m))) die("projections", rc, NULL);
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = "total", d.query = TOTAL;
    if ((rc = factum_projection_create(m, &d, NULL, NULL))) die("create", rc, NULL);
    d.name = "per", d.query = PER;
    if ((rc = factum_projection_create(m, &d, NULL, NULL))) die("create", rc, NULL);
    uint64_t mid = 0;
    factum_event_data evs[100];
    char data[100][48];
    for (uint64_t i = 0; i < total; i += 100) {
        for (int k = 0; k < 100; k++) {
            snprintf(data[k], sizeof data[k], "{\"amount\":%d}", (int)((i + (uint64_t)k) % 97));
            evs[k] = (factum_event_data){.type = "Deposited",
                                         .flags = FACTUM_EVENT_JSON,
                                         .data = data[k],
                                         .data_len = strlen(data[k])};
        }
        char stream[32];
        snprintf(stream, sizeof stream, "acct-%" PRIu64, i / 100 % 100);
        factum_append_result res;
        if ((rc = factum_append(s, stream, FACTUM_ANY, evs, 100, &res))) die("append", rc, NULL);
        if (!mid && i + 100 >= total / 2) mid = res.last_position;
    }
    factum_stats st;
    factum_store_get_stats(s, &st);
    if (factum_projection_wait(m, "total", st.last_position, 600000) != 1 ||
        factum_projection_wait(m, "per", st.last_position, 600000) != 1)
        die("catching up", FACTUM_ETIMEDOUT, NULL);
    printf("%" PRIu64 " source events (log %" PRIu64
           " positions with the projections' own), as of position %" PRIu64 "; %d runs, median (min-max)\n\n",
           total, st.last_position, mid, RUNS);
    printf("| replay | time | from | events read | handled |\n|---|---|---|---|---|\n");
    measure me;
    ask(m, "total", NULL, 0, 1, &me);
    report("asof-empty", "position 0 (the worker's start alone)", &me);
    ask(m, "total", NULL, mid, 0, &me);
    report("asof-start", "no partitions, from the start of the log", &me);
    ask(m, "total", NULL, mid, 1, &me);
    report("asof-checkpoint", "no partitions, from the newest usable checkpoint", &me);
    ask(m, "per", "acct-7", mid, 1, &me);
    report("asof-partition", "foreachStream, one partition (its stream only to the handlers)", &me);
    factum_projections_close(m);
    factum_store_close(s);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
