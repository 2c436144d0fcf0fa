/*
 * temporal.c - the cost of time (issue 14): factum_position_at on a long
 * log, a 10,000-event stream read as of a position (and with a valid-time
 * bound) beside a plain read, $all as of a position beside a plain read,
 * and the scheduler's delivery rate (requests all due at once, durable).
 *
 * Usage: factum-bench-temporal [DIR] [EVENTS]   (default /tmp, 1,000,000)
 * Prints "@ factum <workload> <metric> <value>" lines and a readable table.
 */
#include <inttypes.h>
#include <unistd.h>

#include "bench.h"
#include "factum.h"

#define STREAM_EVENTS 10000

static void fill(factum_store *s, uint64_t total)
{
    char meta[96], data[64];
    factum_event_data evs[100];
    for (uint64_t i = 0; i < total; i += 100) {
        int agg = (i / 100) % 100 == 0 && i / 100 / 100 < STREAM_EVENTS / 100; /* one stream of 10,000 */
        for (int k = 0; k < 100; k++) {
            snprintf(data, sizeof data, "{\"n\":%" PRIu64 "}", i + (uint64_t)k);
            snprintf(meta, sizeof meta, "{\"$validFrom\":%" PRIu64 "}",
                     (uint64_t)1700000000000 + (i + (uint64_t)k) * 7 % 100000);
            evs[k] = (factum_event_data){.type = "E",
                                         .flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON,
                                         .data = strdup(data),
                                         .data_len = strlen(data),
                                         .metadata = strdup(meta),
                                         .metadata_len = strlen(meta)};
        }
        char stream[32];
        snprintf(stream, sizeof stream, agg ? "account-1" : "other-%" PRIu64, i / 100 % 1000);
        if (factum_append(s, stream, FACTUM_ANY, evs, 100, NULL)) {
            fprintf(stderr, "append failed\n");
            exit(1);
        }
        for (int k = 0; k < 100; k++) {
            free((void *)evs[k].data);
            free((void *)evs[k].metadata);
        }
    }
}

static double read_stream_rate(factum_store *s, const factum_asof *a, int reps)
{
    static factum_event evs[512];
    uint64_t t0 = now_ns(), n_total = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t from = 0, next;
        for (;;) {
            size_t n;
            int rc = a ? factum_read_stream_asof(s, "account-1", a, from, FACTUM_FORWARD, evs, 512, &n, &next)
                       : factum_read_stream(s, "account-1", from, FACTUM_FORWARD, evs, 512, &n, &next);
            if (rc) {
                fprintf(stderr, "read: %s\n", factum_strerror(rc));
                exit(1);
            }
            n_total += n;
            if (next == FACTUM_END) break;
            from = next;
        }
    }
    return (double)n_total / ((double)(now_ns() - t0) / 1e9);
}

static double read_all_rate(factum_store *s, const factum_asof *a, uint64_t upto)
{
    static factum_event evs[512];
    uint64_t t0 = now_ns(), n_total = 0, from = 1, next;
    while (from <= upto) {
        size_t n;
        int rc = a ? factum_read_all_asof(s, a, from, FACTUM_FORWARD, NULL, 0, evs, 512, &n, &next)
                   : factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 512, &n, &next);
        if (rc) exit(1);
        n_total += n;
        if (next == from) break;
        from = next;
    }
    return (double)n_total / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    bench_system = "factum";
    const char *base = argc > 1 ? argv[1] : "/tmp";
    uint64_t total = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/factum-bench-temporal-%d", base, (int)getpid());
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s;
    if (factum_store_open(dir, &o, &s)) return 1;
    uint64_t t0 = now_ns();
    fill(s, total);
    printf("filled %" PRIu64 " events in %.1f s\n", total, (double)(now_ns() - t0) / 1e9);
    factum_stats st;
    factum_store_get_stats(s, &st);
    factum_event first, last;
    factum_read_position(s, 1, &first);
    factum_read_position(s, st.last_position, &last);

    /* position_at: random times over the log. */
    enum { Q = 20000 };
    static uint64_t lat[Q];
    uint64_t seed = 88172645463325252ull;
    for (int i = 0; i < Q; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        int64_t t =
            first.timestamp_ns + (int64_t)(seed % (uint64_t)(last.timestamp_ns - first.timestamp_ns + 1));
        uint64_t p, q0 = now_ns();
        factum_position_at(s, t, &p);
        lat[i] = now_ns() - q0;
    }
    qsort(lat, Q, sizeof lat[0], cmp_u64);
    printf("position_at over %" PRIu64 " events: p50 %.2f us, p99 %.2f us\n", total, pct(lat, Q, 50),
           pct(lat, Q, 99));
    result("T1-position-at", "p50_us", pct(lat, Q, 50));
    result("T1-position-at", "p99_us", pct(lat, Q, 99));

    /* A 10,000-event stream: plain, as of the head, as of the head with a valid-time bound. */
    read_stream_rate(s, NULL, 2); /* warm: the comparisons below read what is in the page cache */
    read_all_rate(s, NULL, st.last_position / 2);
    factum_asof head = {FACTUM_END, FACTUM_VALID_ANY},
                valid = {FACTUM_END, 1700000000000ll * 1000000 + 50000ll * 1000000};
    double plain = read_stream_rate(s, NULL, 20), asof = read_stream_rate(s, &head, 20),
           bi = read_stream_rate(s, &valid, 20);
    printf("stream of %d events: plain %.0f ev/s, as of %.0f ev/s (%.2fx), as of + valid time (about half "
           "pass) %.0f ev/s returned\n",
           STREAM_EVENTS, plain, asof, asof / plain, bi);
    result("T2-stream-read", "plain_ev_s", plain);
    result("T2-stream-read", "asof_ev_s", asof);
    result("T2-stream-read", "asof_valid_ev_s", bi);

    /* $all up to the middle: plain and as of. */
    uint64_t mid = st.last_position / 2;
    factum_asof half = {mid, FACTUM_VALID_ANY};
    double aplain = read_all_rate(s, NULL, mid), aasof = read_all_rate(s, &half, mid);
    printf("$all to position %" PRIu64 ": plain %.0f ev/s, as of %.0f ev/s (%.2fx)\n", mid, aplain, aasof,
           aasof / aplain);
    result("T3-all-read", "plain_ev_s", aplain);
    result("T3-all-read", "asof_ev_s", aasof);
    factum_store_close(s);

    /* The scheduler, durable: N requests due now, the time until all are delivered. */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s-sched", dir);
    factum_options_init(&o);
    if (factum_store_open(dir2, &o, &s)) return 1;
    enum { N = 2000 };
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + 500000000; /* all due in 0.5 s */
    for (int i = 0; i < N; i++) {
        factum_event_data e = {.type = "Due", .data = "{}", .data_len = 2, .flags = FACTUM_EVENT_JSON};
        char stream[32];
        snprintf(stream, sizeof stream, "due-%d", i % 50);
        if (factum_schedule(s, stream, at, &e, NULL)) return 1;
    }
    for (;;) {
        clock_gettime(CLOCK_REALTIME, &now);
        if ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec >= at) break;
        usleep(1000);
    }
    uint64_t d0 = now_ns();
    for (;;) {
        factum_stream_info info;
        if (!factum_stream_get_info(s, FACTUM_SCHEDULED_DONE_STREAM, &info) && info.last_version == N - 1)
            break;
        usleep(1000);
    }
    double secs = (double)(now_ns() - d0) / 1e9;
    printf("scheduler (durable): %d requests due at once delivered in %.2f s: %.0f deliveries/s\n", N, secs,
           N / secs);
    result("T4-scheduler", "deliveries_s", N / secs);
    factum_store_close(s);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, dir2);
    return system(cmd) ? 1 : 0;
}
