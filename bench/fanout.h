/*
 * fanout.h - what W11 and W12 (BENCH.md) share between the benchmark
 * programs: a latency histogram that many threads fill at once (W12 records
 * millions of deliveries: too many to keep each one), the CPU time and
 * memory of a server process and its children (from /proc), and the number
 * of subscribers W12 runs (--w12-subs). Header-only, after bench.h.
 *
 * W12's figures, the same for every system: delivery latency p50/p99/p99.9
 * over every delivery to every subscriber; the server's CPU time
 * (utime + stime of the server process and its children, from
 * /proc/PID/stat) while the writer runs and the deliveries drain, per
 * subscriber; its memory growth (the sum of Pss over the process and its
 * children, from /proc/PID/smaps_rollup, which for a single process is its
 * resident private memory; VmRSS where smaps_rollup cannot be read) from
 * before the subscribers connect to the end of the deliveries, per
 * subscriber; and the measuring program's own CPU time (getrusage) beside
 * it, so that the cost of the subscriber side is written down.
 */
#ifndef FACTUM_BENCH_FANOUT_H
#define FACTUM_BENCH_FANOUT_H

#include <dirent.h>
#include <stdatomic.h>
#include <sys/resource.h>

/* ---- a log-linear latency histogram (µs) ------------------------------------
 * Below 1,024 µs one bucket per µs; above, 64 buckets per power of two
 * (1.6% wide) up to 2^40 µs. Counters are atomic: threads add at once. */
#define HIST_LINEAR 1024
#define HIST_SUB 64
#define HIST_BUCKETS (HIST_LINEAR + 31 * HIST_SUB)

typedef struct hist {
    _Atomic uint64_t count[HIST_BUCKETS];
    _Atomic uint64_t n;
} hist;

static inline size_t hist_bucket(uint64_t us)
{
    if (us < HIST_LINEAR) return (size_t)us;
    int log2 = 63 - __builtin_clzll(us); /* >= 10 */
    size_t b = HIST_LINEAR + (size_t)(log2 - 10) * HIST_SUB + (size_t)((us >> (log2 - 6)) & (HIST_SUB - 1));
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* The lower bound (µs) of a bucket. */
static inline double hist_value(size_t b)
{
    if (b < HIST_LINEAR) return (double)b;
    size_t k = (b - HIST_LINEAR) / HIST_SUB, sub = (b - HIST_LINEAR) % HIST_SUB;
    return (double)((uint64_t)(HIST_SUB + sub) << (k + 4));
}

static inline void hist_add(hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->count[hist_bucket(ns / 1000)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
}

/* The p-th percentile in µs (0 if empty). */
static inline double hist_pct(hist *h, double p)
{
    uint64_t n = atomic_load(&h->n);
    if (!n) return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)(n - 1) + 0.5), seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += atomic_load_explicit(&h->count[b], memory_order_relaxed);
        if (seen > rank) return hist_value(b);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* Every 0.1 percentile to $FACTUM_BENCH_LAT, as latencies() does. */
static inline void hist_latencies(const char *w, hist *h)
{
    const char *path = getenv("FACTUM_BENCH_LAT");
    FILE *f = path && atomic_load(&h->n) ? fopen(path, "a") : NULL;
    if (!f) return;
    for (size_t i = 0; i < 1000; i++) fprintf(f, "%s\t%s\t%.1f\t%.1f\n", bench_system, w, i / 10.0, hist_pct(h, i / 10.0));
    fclose(f);
}

/* ---- a server's CPU time and memory ------------------------------------------ */

typedef struct proc_usage {
    double cpu_s;    /* utime + stime of the process and its live children, plus its reaped children's */
    double mem_kb;   /* Pss (or VmRSS) of the process and its live children */
    int procs;       /* how many processes were counted */
} proc_usage;

/* Fields 14-17 (utime, stime, cutime, cstime) and 4 (ppid) of /proc/PID/stat. */
static inline int proc_stat(int pid, int *ppid, double *cpu, double *child_cpu)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may hold spaces */
    if (!p) return -1;
    char st;
    int pp;
    unsigned long long ut, stt;
    long long cut, cst;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &st, &pp, &ut, &stt, &cut, &cst) != 6)
        return -1;
    double tick = (double)sysconf(_SC_CLK_TCK);
    *ppid = pp;
    *cpu = (double)(ut + stt) / tick;
    *child_cpu = (double)(cut + cst) / tick;
    return 0;
}

static inline double proc_mem_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    double kb = -1;
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "Pss:", 4)) kb = strtod(line + 4, NULL);
        fclose(f);
    }
    if (kb >= 0) return kb;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r"))) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtod(line + 6, NULL);
    fclose(f);
    return kb > 0 ? kb : 0;
}

/* The usage of pid and its children (one level: PostgreSQL's backends are
 * the postmaster's children). 0, or -1 if pid is not there. */
static inline int proc_usage_get(int pid, proc_usage *u)
{
    int ppid;
    double cpu, ccpu;
    if (pid <= 0 || proc_stat(pid, &ppid, &cpu, &ccpu)) return -1;
    u->cpu_s = cpu + ccpu;
    u->mem_kb = proc_mem_kb(pid);
    u->procs = 1;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        int child = atoi(e->d_name), pp;
        if (child <= 0 || child == pid || proc_stat(child, &pp, &cpu, &ccpu) || pp != pid) continue;
        u->cpu_s += cpu;
        u->mem_kb += proc_mem_kb(child);
        u->procs++;
    }
    closedir(d);
    return 0;
}

/* This process's own CPU time (the measuring side). */
static inline double self_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* The server's pid: $FACTUM_BENCH_SERVER_PID (the run-*.sh scripts set it), or 0. */
static inline int server_pid(void)
{
    const char *p = getenv("FACTUM_BENCH_SERVER_PID");
    return p ? atoi(p) : 0;
}

/* Raise the open-file limit to its hard maximum (W12 opens a connection per subscriber). */
static inline void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- W12's report, the same for every system ----------------------------------- */

typedef struct w12_report {
    const char *how;        /* how the subscribers are served, for the row */
    size_t subs, events;    /* subscribers; events planned */
    size_t appended;        /* events appended (the writer stops at twice the planned time) */
    uint64_t delivered;     /* deliveries counted (of subs * events) */
    double secs;            /* the writer's time */
    double wall_s;          /* from all subscribed to the deliveries drained (the CPU figures' interval) */
    proc_usage before, connected, after; /* before the subscribers, all subscribed, deliveries drained */
    int have_server;        /* the usage figures are the server's (else this process's) */
    double self_cpu_s;      /* this process's CPU time over the same interval as the server's */
} w12_report;

static inline void w12_print(const char *w, const char *system_name, hist *h, const w12_report *r)
{
    double cpu = r->after.cpu_s - r->connected.cpu_s, mem = r->after.mem_kb - r->before.mem_kb;
    double expect = (double)r->subs * (double)r->appended;
    printf("| %s | %s | %zu subscribers on $all (%s), %zu of %zu single appends at 1,000/s made in %.1f s, %" PRIu64
           " of %.0f deliveries | "
           "p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs | %s CPU %.2f s (%.0f%% of a core; %.2f ms per subscriber, "
           "%.2f µs per delivery), memory +%.0f KiB (%.1f KiB per subscriber), %d process%s; measuring side CPU %.2f s |\n",
           w, system_name, r->subs, r->how, r->appended, r->events, r->secs, r->delivered, expect, hist_pct(h, 50), hist_pct(h, 99),
           hist_pct(h, 99.9), r->have_server ? "server" : "process", cpu, r->wall_s > 0 ? 100.0 * cpu / r->wall_s : 0,
           1000.0 * cpu / (double)r->subs, r->delivered ? 1e6 * cpu / (double)r->delivered : 0, mem, mem / (double)r->subs, r->after.procs, r->after.procs == 1 ? "" : "es",
           r->self_cpu_s);
    result(w, "p50_us", hist_pct(h, 50));
    result(w, "p99_us", hist_pct(h, 99));
    result(w, "p999_us", hist_pct(h, 99.9));
    result(w, "delivered_pct", expect > 0 ? 100.0 * (double)r->delivered / expect : 0);
    result(w, "pace_pct", r->secs > 0 ? (double)r->appended / r->secs / 10.0 : 0); /* of 1,000/s */
    result(w, "cpu_ms_per_sub", 1000.0 * cpu / (double)r->subs);
    /* per delivery: comparable when a system made fewer appends (pace_pct) */
    result(w, "cpu_us_per_delivery", r->delivered ? 1e6 * cpu / (double)r->delivered : 0);
    result(w, "mem_kb_per_sub", mem / (double)r->subs);
    result(w, "client_cpu_s", r->self_cpu_s);
    hist_latencies(w, h);
    fflush(stdout);
}

/* W12's name in the results: W12 (BENCH.md's 1,000 subscribers, or
 * --quick's fewer: the row says how many), W12_10K for --big's 10,000. */
static inline const char *w12_name(size_t subs)
{
    return subs >= 10000 ? "W12_10K" : "W12";
}

/* W12's sizes: subscribers (1,000; --quick 100; --big 10,000) and events
 * appended at 1,000/s (5,000; --quick 1,000; --big 2,000). */
static inline size_t w12_subs(int quick_, int big)
{
    return big ? 10000 : quick_ ? 100 : 1000;
}
static inline size_t w12_events(int quick_, int big)
{
    return big ? 2000 : quick_ ? 1000 : 5000;
}

/* Sleep until the next millisecond of a 1,000/s pace. */
static inline void pace_ms(struct timespec *next)
{
    next->tv_nsec += 1000000;
    if (next->tv_nsec >= 1000000000) {
        next->tv_nsec -= 1000000000;
        next->tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
}

/* The writer's deadline: twice the planned time (a system that cannot take
 * the pace shows it in pace_pct, and the run stays bounded). */
static inline int w12_late(uint64_t t0, size_t planned)
{
    return now_ns() - t0 > (uint64_t)planned * 2000000u;
}

/* Wait for the deliveries to drain after the writer: until all came, or
 * none came for 5 s, or 60 s passed. */
static inline void w12_drain(_Atomic uint64_t *delivered, uint64_t expect)
{
    uint64_t last = atomic_load(delivered), t_last = now_ns(), t0 = t_last;
    while (atomic_load(delivered) < expect) {
        usleep(10000);
        uint64_t d = atomic_load(delivered), t = now_ns();
        if (d != last) last = d, t_last = t;
        if (t - t_last > 5000000000u || t - t0 > 60000000000u) break;
    }
}

#endif
