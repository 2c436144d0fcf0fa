/*
 * client_read.c - how fast the C client reads $all from a running factumd
 * (a benchmark, not a test). It appends N events of S bytes of JSON data
 * in appends of 1000 (unless --no-load), then reads all of $all forward in
 * pages of P events, several rounds, and prints for each round events/s,
 * MB/s of event data, and the CPU time the client itself used per event
 * (user + system: what the client would need if the server were
 * infinitely fast).
 *
 *   factum-bench-client URL [--events N] [--size S] [--page P] [--rounds R] [--no-load]
 *
 * Defaults: 1300000 events of 300 bytes, pages of 100000, 3 rounds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "factum_client.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [--events N] [--size S] [--page P] [--rounds R] [--no-load]\n",
                argv[0]);
        return 2;
    }
    const char *url = argv[1];
    uint64_t n_events = 1300000, page = 100000;
    size_t size = 300;
    int rounds = 3, load = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--page") && i + 1 < argc)
            page = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-load"))
            load = 0;
        else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    factum_client_options o;
    factum_client_options_init(&o);
    o.timeout_ms = 0; /* a benchmark may take its time */
    factum_client *c;
    int rc = factum_client_connect(url, &o, &c);
    if (rc) {
        fprintf(stderr, "connect: %s: %s\n", factum_strerror(rc), factum_client_last_error(NULL));
        return 1;
    }
    if (load) {
        char *data = malloc(size + 1);
        if (!data || size < 12) {
            fprintf(stderr, "--size must be at least 12\n");
            return 2;
        }
        /* {"p":"xxxx...x"} */
        memset(data, 'x', size);
        memcpy(data, "{\"p\":\"", 6);
        memcpy(data + size - 2, "\"}", 2);
        enum { BATCH = 1000 };
        factum_event_data *ev = calloc(BATCH, sizeof *ev);
        for (int i = 0; i < BATCH; i++) {
            ev[i].type = "BenchEvent";
            ev[i].flags = FACTUM_EVENT_JSON;
            ev[i].data = data;
            ev[i].data_len = size;
        }
        double t0 = now_s();
        for (uint64_t done = 0; done < n_events;) {
            size_t k = n_events - done < BATCH ? (size_t)(n_events - done) : BATCH;
            char stream[32];
            snprintf(stream, sizeof stream, "bench-%" PRIu64, done / 100000);
            rc = factum_client_append(c, stream, FACTUM_ANY, ev, k, NULL);
            if (rc) {
                fprintf(stderr, "append: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
                return 1;
            }
            done += k;
        }
        double t = now_s() - t0;
        printf("loaded %" PRIu64 " events of %zu bytes in %.2f s (%.0f events/s)\n", n_events, size, t,
               (double)n_events / t);
        free(ev);
        free(data);
    }
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s(), c0 = cpu_s();
        uint64_t total = 0, bytes = 0, pos = 0;
        for (;;) {
            factum_client_batch *b;
            rc = factum_client_read_all(c, pos, FACTUM_FORWARD, NULL, page, &b);
            if (rc) {
                fprintf(stderr, "read: %s: %s\n", factum_strerror(rc), factum_client_last_error(c));
                return 1;
            }
            size_t n = factum_client_batch_count(b);
            for (size_t i = 0; i < n; i++)
                bytes += factum_client_batch_event(b, i)->data_len;
            total += n;
            if (n) pos = factum_client_batch_event(b, n - 1)->position + 1;
            factum_client_batch_free(b);
            if (n < page) break;
        }
        double t = now_s() - t0, cpu = cpu_s() - c0;
        printf("round %d: read %" PRIu64 " events (%.1f MB of data) in %.3f s: %.0f events/s, %.0f MB/s; "
               "client CPU %.3f s, %.2f us/event\n",
               r + 1, total, (double)bytes / 1e6, t, (double)total / t, (double)bytes / 1e6 / t, cpu,
               total ? cpu * 1e6 / (double)total : 0.0);
    }
    factum_client_close(c);
    return 0;
}
