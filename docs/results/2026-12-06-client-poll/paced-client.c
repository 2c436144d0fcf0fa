/* factumd's CPU and the client's own while one client loads a 10-event stream every PERIOD us for 5 s.
 * Usage: paced-client URL FACTUMD_PID PERIOD_US */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include "factum.h"
#include "factum_client.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(int pid) {
    char p[64], b[1024]; snprintf(p, sizeof p, "/proc/%d/stat", pid);
    FILE *f = fopen(p, "r"); if (!f) return 0; size_t n = fread(b, 1, sizeof b - 1, f); fclose(f); b[n] = 0;
    char *s = strrchr(b, ')') + 2; long ut = 0, st = 0; int i = 0;
    for (char *tok = strtok(s, " "); tok; tok = strtok(NULL, " "), i++) { if (i == 11) ut = atol(tok); if (i == 12) { st = atol(tok); break; } }
    return (ut + st) / (double)sysconf(_SC_CLK_TCK);
}
static double self(void) {
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
int main(int argc, char **argv) {
    (void)argc;
    factum_client *c; int pid = atoi(argv[2]); int period = atoi(argv[3]);
    if (factum_client_connect(argv[1], NULL, &c)) return 1;
    factum_event_data ev[10]; for (int i = 0; i < 10; i++) ev[i] = (factum_event_data){.type = "E", .data = "{}", .data_len = 2, .flags = FACTUM_EVENT_JSON};
    factum_append_result r; if (factum_client_append(c, "agg-1", FACTUM_ANY, ev, 10, &r)) return 2;
    double c0 = cpu(pid), t0 = now(), m0 = self(); long n = 0;
    while (now() - t0 < 5) {
        factum_client_batch *b; if (factum_client_read_stream(c, "agg-1", 0, FACTUM_FORWARD, 10, &b)) return 3;
        factum_client_batch_free(b); n++;
        usleep(period);
    }
    double secs = now() - t0;
    printf("%ld loads (%.0f/s), factumd CPU %.1f%% of a core, the client's %.1f%%\n", n, n / secs, (cpu(pid) - c0) / secs * 100,
           (self() - m0) / secs * 100);
    return 0;
}
