/*
 * client.c - the C client (include/factum_client.h) against a real factumd,
 * whose connection string comes in FACTUMD_URL (tests/integration/client.sh
 * starts the server with a temporary database). Covers every call: appends
 * with each kind of expectation and the wrong-version details, idempotent
 * replays, stream and $all reads in both directions with counts, positions
 * and filters, soft delete against tombstone, metadata and what it hides,
 * large appends and events, unicode and maximal names, twenty clients
 * racing on one stream (CL-1 on the server's side: one winner per
 * version), the atomic multi-stream append, and bad input: connection
 * strings, refused and silent endpoints, oversized events (CL-2, CL-3);
 * and catch-up subscriptions (history then live from another client,
 * starting points, idle, filters with checkpoints, links, tombstones); the
 * read models (create, wait, query, status, list, pause, a fault, rebuild,
 * drop, and the error of each refusal).
 * Stream names carry a per-run tag so that the test can be re-run against
 * a server that keeps its data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include "client/client_int.h" /* CL-9's counters */
#include "factum_client.h"
#include "harness.h"

static const char *url;
/* FACTUMD_URL without tls=false: the server (or tests/integration/tls_proxy
 * in front of it) speaks TLS, and the strings the tests make carry the
 * query of FACTUMD_URL (its tlsCAFile) and its credentials. */
static int secure;
static char query[1200]; /* FACTUMD_URL's "?..." (or "?tls=false") */
static char creds[300];  /* its "user:pass@", or "" */
static char tag[32];
static factum_client *cl;

/* A stream name of this run. */
static const char *sname(char *buf, size_t n, const char *base)
{
    snprintf(buf, n, "%s-%s", base, tag);
    return buf;
}

static factum_event_data ev_json(const char *type, const char *json)
{
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    return e;
}

/* Events of a stream read forward from 0 (up to 100000), or -1 on error rc. */
static long count_stream(const char *stream, int *rc_out)
{
    factum_client_batch *b;
    int rc = factum_client_read_stream(cl, stream, 0, FACTUM_FORWARD, 100000, &b);
    if (rc_out) *rc_out = rc;
    if (rc) return -1;
    long n = (long)factum_client_batch_count(b);
    factum_client_batch_free(b);
    return n;
}

/* ---- connecting, server info ---------------------------------------------------- */

static void t_version_stats(void)
{
    char v[32];
    CHECK_RC(factum_client_server_version(cl, v, sizeof v), 0);
    CHECK(strcmp(v, "25.1.0") == 0);
    char tiny[3];
    CHECK_RC(factum_client_server_version(cl, tiny, sizeof tiny), -ERANGE);
    char *text = NULL;
    CHECK_RC(factum_client_stats(cl, &text), 0);
    REQUIRE(text);
    CHECK(strstr(text, "es-writer-lastPosition ") != NULL);
    CHECK(strstr(text, "es-readEvents ") != NULL);
    free(text);
    /* The client still works after the cancelled Stats stream. */
    CHECK_RC(factum_client_server_version(cl, v, sizeof v), 0);
}

/* What protects the connection: TLS 1.3 against factumd (both offer it;
 * TLS 1.2 from a server that knows no better), nothing in cleartext. */
static void t_tls(void)
{
    const char *tls = factum_client_tls(cl);
    printf("  connection: %s\n", tls[0] ? tls : "cleartext");
    if (secure)
        CHECK(strncmp(tls, "TLSv1.3 TLS_", 12) == 0 || strncmp(tls, "TLSv1.2 ", 8) == 0);
    else
        CHECK(tls[0] == 0);
    CHECK(factum_client_tls(NULL)[0] == 0);
}

static void t_connect_forms(void)
{
    /* The same server through other spellings of the connection string. */
    const char *port = strrchr(url, ':');
    REQUIRE(port);
    int p = atoi(port + 1);
    char u[2048];
    /* Each form, then the port. */
    const char *forms[] = {
        "kurrent://127.0.0.1:",
        "kdb://admin:changeit@127.0.0.1:",
        "esdb+discover://127.0.0.1:",
        "kurrentdb://127.0.0.1:1,127.0.0.1:",
        "kurrentdb+discover://localhost:",
    };
    const char *queries[] = {
        "?tls=false",
        "/?tls=false&keepAliveInterval=10000&keepAliveTimeout=10000",
        "?TLS=False&nodePreference=leader",
        "?tls=false&connectionName=test-client",
        "?tls=false&defaultDeadline=5000",
    };
    const char *secure_queries[] = {
        "", "&keepAliveInterval=10000&keepAliveTimeout=10000", "&TLS=True&nodePreference=leader",
        "&connectionName=test-client", "&defaultDeadline=5000",
    };
    /* Behind tests/integration/tls_proxy, Gossip names factumd's own
     * (cleartext) port: +discover would leave the proxy. */
    int proxied = getenv("FACTUMD_BEHIND_PROXY") != NULL;
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        if (proxied && strstr(forms[i], "+discover")) continue;
        if (secure) {
            /* The forms with the secure string's credentials and query. */
            const char *f = forms[i], *sep = strstr(f, "://") + 3, *at = strchr(f, '@');
            snprintf(u, sizeof u, "%.*s%s%s%d%s%s", (int)(sep - f), f, creds, at ? at + 1 : sep, p,
                     i == 1 ? "/" : "", query);
            snprintf(u + strlen(u), sizeof u - strlen(u), "%s", secure_queries[i]);
        } else {
            snprintf(u, sizeof u, "%s%d%s", forms[i], p, queries[i]);
        }
        factum_client *c;
        int rc = factum_client_connect(u, NULL, &c);
        CHECK_RC(rc, 0);
        if (rc) {
            fprintf(stderr, "  %s: %s\n", u, factum_client_last_error(NULL));
            continue;
        }
        char v[32];
        CHECK_RC(factum_client_server_version(c, v, sizeof v), 0);
        factum_client_close(c);
    }
    factum_client_close(NULL);
}

/* pollForAnswerUs (CL-8, ADR 0031): off, the default and the longest
 * window give the same answers, back to back (where the client polls)
 * and after pauses (where it does not); a bad value is refused. */
static void t_poll_for_answer(void)
{
    /* 10 us: every answer over loopback is slower, so the window closes at
     * once and the calls that follow closely sleep, then poll (CL-9). */
    const char *opts[] = {"&pollForAnswerUs=0", "", "&pollForAnswerUs=10000", "&pollForAnswerUs=10"};
    char stream[64], u[2048];
    sname(stream, sizeof stream, "poll-for-answer");
    const char *port = strrchr(url, ':');
    REQUIRE(port);
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
        snprintf(u, sizeof u, "kurrentdb://%s127.0.0.1:%d%s%s", creds, atoi(port + 1), query, opts[o]);
        factum_client *c;
        int rc = factum_client_connect(u, NULL, &c);
        CHECK_RC(rc, 0);
        if (rc) continue;
        for (int i = 0; i < 100; i++) {
            char json[64];
            snprintf(json, sizeof json, "{\"o\":%zu,\"i\":%d}", o, i);
            factum_event_data e = ev_json("Polled", json);
            factum_append_result r;
            CHECK_RC(factum_client_append(c, stream, FACTUM_ANY, &e, 1, &r), 0);
            factum_client_batch *b;
            uint64_t at = o * 100 + (size_t)i;
            CHECK(r.last_version == at);
            int rc2 = factum_client_read_stream(c, stream, at, FACTUM_FORWARD, 10, &b);
            CHECK_RC(rc2, 0);
            if (rc2) continue;
            CHECK(factum_client_batch_count(b) == 1);
            const factum_event *ev = factum_client_batch_event(b, 0);
            CHECK(ev && ev->data_len == strlen(json) && !memcmp(ev->data, json, ev->data_len));
            factum_client_batch_free(b);
            if (i % 25 == 24) usleep(2000); /* a pause: the next call sleeps at once */
        }
        cpu_set_t set;
        int spare = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
        if (o == 3 && spare) {
            /* Of the ~190 calls that may follow closely, how many do
             * depends on the machine (behind tls_proxy under ASan: 95 to
             * 196 waits). Most of those waits sleep then poll; the others
             * are, at the start and again each time the window opens (an
             * answer during a sleep already no longer than the aim, 5 us
             * here, lead_reopens; a probe that caught its answer; an
             * answer found already there), the first
             * SPINWIN_MISSES (the window open), those until one slow
             * enough teaches the sleep, and the probes of the closed window
             * (SPIN-3: at most 8 in 264 waits). How many of each depends
             * on the machine's load (in one loaded run 21 of 187 did not
             * sleep then poll, none of them after a window opened by
             * CL-9); the exact rules are unit_client_poll's. */
            printf("  # pollForAnswerUs=10: %" PRIu64 " waits followed closely, %" PRIu64
                   " of them slept then polled, %" PRIu64 " answers so caught, %" PRIu64
                   " windows opened by an answer during the shortest sleep\n",
                   c->answer_waits, c->lead_waits, c->lead_caught, c->lead_reopens);
            CHECK(c->answer_waits >= 10); /* a few to judge by, however slow the machine */
            CHECK(c->lead_waits >= c->answer_waits / 2);
        } else if (o == 0 || o == 2) {
            CHECK(c->lead_waits == 0); /* off, or a window no answer here outlasts */
            if (o == 0) CHECK(c->answer_waits == 0); /* off: never polls */
        }
        factum_client_close(c);
    }
    snprintf(u, sizeof u, "kurrentdb://127.0.0.1:%d?tls=false&pollForAnswerUs=20000", atoi(port + 1));
    factum_client *c = (factum_client *)&c;
    CHECK_RC(factum_client_connect(u, NULL, &c), FACTUM_EBADURL);
    CHECK(c == NULL);
    CHECK(strstr(factum_client_last_error(NULL), "pollForAnswerUs must be a number of microseconds") != NULL);
}

/* In a process of its own (FACTUM_TEST_POLL_CPU=pinned|free, so that the
 * client works out its pollers' cap afresh): 2,000 back-to-back reads with
 * pollForAnswerUs=10000, pinned to one CPU or not; prints the process's
 * CPU time over the wall time. Polling keeps the thread on the CPU until
 * each answer comes (a ratio near 1); sleeping leaves it off the CPU while
 * the server works. */
static int poll_cpu_child(const char *mode)
{
    if (!strcmp(mode, "pinned")) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
        if (sched_setaffinity(0, sizeof one, &one)) return 2;
    }
    char u[2048], stream[64];
    snprintf(u, sizeof u, "%s%spollForAnswerUs=10000", url, strchr(url, '?') ? "&" : "?");
    factum_client *c;
    if (factum_client_connect(u, NULL, &c)) return 3;
    sname(stream, sizeof stream, "poll-cpu");
    factum_event_data e = ev_json("Polled", "{}");
    if (factum_client_append(c, stream, FACTUM_ANY, &e, 1, NULL)) return 4;
    struct timespec w0, w1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int i = 0; i < 2000; i++) {
        factum_client_batch *b;
        if (factum_client_read_stream(c, stream, 0, FACTUM_FORWARD, 1, &b)) return 5;
        factum_client_batch_free(b);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    factum_client_close(c);
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    printf("%.3f\n", cpu / wall);
    return 0;
}

/* Run poll_cpu_child in a new process; its ratio, or -1. */
static double poll_cpu(const char *mode)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "FACTUM_TEST_POLL_CPU=%s /proc/%d/exe", mode, (int)getpid());
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    double r = -1;
    if (fscanf(f, "%lf", &r) != 1) r = -1;
    if (pclose(f) != 0) r = -1;
    return r;
}

/* CL-8's cap: a process that may run on one CPU never polls (with the cap
 * broken, the pinned ratio read 0.998). The same reads on every CPU, where
 * the cap allows a poller, are printed for comparison (0.54-1.0 on an idle
 * machine) but not checked: beside other tests the follow-up rule and the
 * poller's yields make them vary down to the pinned figure. */
static void t_poll_cap(void)
{
    double pinned = poll_cpu("pinned");
    printf("  CPU / wall time of 2,000 reads polling up to 10 ms: pinned to one CPU %.3f", pinned);
    CHECK(pinned >= 0 && pinned < 0.7);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 2) {
        double free_ = poll_cpu("free");
        printf(", on %d CPUs %.3f", CPU_COUNT(&set), free_);
    }
    printf("\n");
}

/* ---- appends ------------------------------------------------------------------------ */

static void t_expectations(void)
{
    char s[64];
    sname(s, sizeof s, "exp");
    factum_event_data e = ev_json("Created", "{\"n\":0}");
    factum_append_result r;
    /* exists on a missing stream; an exact version on a missing stream */
    CHECK_RC(factum_client_append(cl, s, FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == FACTUM_NO_STREAM);
    CHECK(strstr(factum_client_last_error(cl), "wrong expected version") != NULL);
    CHECK_RC(factum_client_append(cl, s, 0, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == FACTUM_NO_STREAM);
    /* no-stream creates it */
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &e, 1, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    CHECK_EQ_U64(r.last_version, 0);
    CHECK(r.last_position > 0 && r.first_position == r.last_position);
    CHECK(r.idempotent == 0 && r.timestamp_ns > 0);
    uint64_t p0 = r.last_position;
    /* no-stream again: wrong, actual 0 */
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 0);
    /* exact */
    factum_event_data two[2] = {ev_json("A", "{}"), ev_json("B", "[1,2]")};
    CHECK_RC(factum_client_append(cl, s, 0, two, 2, &r), 0);
    CHECK_EQ_U64(r.first_version, 1);
    CHECK_EQ_U64(r.last_version, 2);
    CHECK(r.last_position == r.first_position + 1 && r.first_position > p0);
    CHECK_RC(factum_client_append(cl, s, 1, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 2);
    CHECK_RC(factum_client_append(cl, s, 7, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 2);
    /* exists and any */
    CHECK_RC(factum_client_append(cl, s, FACTUM_STREAM_EXISTS, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 3);
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 4);
    /* res may be NULL */
    CHECK_RC(factum_client_append(cl, s, 4, &e, 1, NULL), 0);
    CHECK(count_stream(s, NULL) == 6);
    /* Arguments refused before anything is sent. */
    CHECK_RC(factum_client_append(cl, s, -3, &e, 1, &r), FACTUM_EINVAL);
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &e, 0, &r), FACTUM_EINVAL);
    CHECK_RC(factum_client_append(cl, "", FACTUM_ANY, &e, 1, &r), FACTUM_EBADNAME);
    factum_event_data bad = ev_json("", "{}");
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &bad, 1, &r), FACTUM_EBADTYPE);
    bad.type = "\xff\xfe";
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &bad, 1, &r), FACTUM_EBADTYPE);
    CHECK(count_stream(s, NULL) == 6);
}

static void t_idempotent(void)
{
    char s[64];
    sname(s, sizeof s, "idem");
    factum_event_data e[3] = {ev_json("A", "{\"i\":1}"), ev_json("B", "{\"i\":2}"),
                              ev_json("C", "{\"i\":3}")};
    for (int i = 0; i < 3; i++) {
        e[i].has_id = 1;
        factum_uuid_v4(e[i].id);
    }
    factum_append_result r1, r2;
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, e, 3, &r1), 0);
    /* The same ids with the same expectation: success, nothing new. */
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, e, 3, &r2), 0);
    CHECK_EQ_U64(r2.last_version, r1.last_version);
    CHECK_EQ_U64(r2.last_position, r1.last_position);
    CHECK_EQ_U64(r2.first_version, 0);
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, e, 3, &r2), 0);
    CHECK_EQ_U64(r2.last_position, r1.last_position);
    CHECK(count_stream(s, NULL) == 3);
    /* Read back: the ids are the ones we gave. */
    factum_client_batch *b;
    REQUIRE(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b) == 0);
    CHECK(factum_client_batch_count(b) == 3);
    for (size_t i = 0; i < factum_client_batch_count(b) && i < 3; i++)
        CHECK(memcmp(factum_client_batch_event(b, i)->id, e[i].id, 16) == 0);
    factum_client_batch_free(b);
    /* Part of them again, elsewhere: not idempotent. */
    factum_event_data mix[2] = {e[2], ev_json("D", "{}")};
    CHECK(factum_client_append(cl, s, FACTUM_ANY, mix, 2, &r2) != 0);
    CHECK(count_stream(s, NULL) == 3);
    /* The same id twice in one append. */
    factum_event_data dup[2] = {ev_json("X", "{}"), ev_json("Y", "{}")};
    dup[0].has_id = dup[1].has_id = 1;
    factum_uuid_v4(dup[0].id);
    memcpy(dup[1].id, dup[0].id, 16);
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, dup, 2, &r2), FACTUM_EDUPLICATEID);
    CHECK(count_stream(s, NULL) == 3);
}

/* ---- reads --------------------------------------------------------------------------- */

static void check_versions(factum_client_batch *b, const uint64_t *want, size_t n)
{
    CHECK_EQ_U64(factum_client_batch_count(b), n);
    for (size_t i = 0; i < n && i < factum_client_batch_count(b); i++)
        CHECK_EQ_U64(factum_client_batch_event(b, i)->version, want[i]);
}

static void t_read_stream(void)
{
    char s[64];
    sname(s, sizeof s, "rd");
    factum_event_data e[10];
    char data[10][32];
    for (int i = 0; i < 10; i++) {
        snprintf(data[i], sizeof data[i], "{\"i\":%d}", i);
        e[i] = ev_json(i % 2 ? "Odd" : "Even", data[i]);
        if (i == 9) {
            e[i].flags = 0; /* binary */
            e[i].metadata = "meta\0bytes";
            e[i].metadata_len = 10;
        }
    }
    factum_append_result r;
    REQUIRE(factum_client_append(cl, s, FACTUM_NO_STREAM, e, 10, &r) == 0);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 3, &b), 0);
    check_versions(b, (const uint64_t[]){0, 1, 2}, 3);
    const factum_event *ev = factum_client_batch_event(b, 1);
    REQUIRE(ev);
    CHECK(strcmp(ev->stream, s) == 0 && ev->stream_len == strlen(s));
    CHECK(strcmp(ev->type, "Odd") == 0 && ev->type_len == 3);
    CHECK(ev->data_len == strlen(data[1]) && memcmp(ev->data, data[1], ev->data_len) == 0);
    CHECK(ev->flags == FACTUM_EVENT_JSON);
    CHECK(ev->metadata_len == 0);
    CHECK(ev->position == r.first_position + 1);
    int64_t now = (int64_t)time(NULL) * 1000000000;
    CHECK(ev->timestamp_ns > now - 600 * 1000000000LL && ev->timestamp_ns < now + 600 * 1000000000LL);
    CHECK(factum_client_batch_event(b, 3) == NULL);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, 5, FACTUM_FORWARD, 100, &b), 0);
    check_versions(b, (const uint64_t[]){5, 6, 7, 8, 9}, 5);
    ev = factum_client_batch_event(b, 4);
    REQUIRE(ev);
    CHECK(ev->flags == 0 && ev->metadata_len == 10 && memcmp(ev->metadata, "meta\0bytes", 10) == 0);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, FACTUM_END, FACTUM_BACKWARD, 2, &b), 0);
    check_versions(b, (const uint64_t[]){9, 8}, 2);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, 3, FACTUM_BACKWARD, 100, &b), 0);
    check_versions(b, (const uint64_t[]){3, 2, 1, 0}, 4);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, 10, FACTUM_FORWARD, 100, &b), 0);
    CHECK(factum_client_batch_count(b) == 0);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, FACTUM_END, FACTUM_FORWARD, 100, &b), 0);
    CHECK(factum_client_batch_count(b) == 0);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 0, &b), 0);
    CHECK(factum_client_batch_count(b) == 0);
    factum_client_batch_free(b);
    /* Missing streams and bad arguments. */
    char m[64];
    CHECK_RC(factum_client_read_stream(cl, sname(m, sizeof m, "missing"), 0, FACTUM_FORWARD, 10, &b),
             FACTUM_ENOTFOUND);
    CHECK(b == NULL);
    CHECK(strstr(factum_client_last_error(cl), "not found") != NULL);
    CHECK_RC(factum_client_read_stream(cl, s, 0, 7, 10, &b), FACTUM_EINVAL);
    CHECK_RC(factum_client_read_stream(cl, "", 0, FACTUM_FORWARD, 10, &b), FACTUM_EBADNAME);
    factum_client_batch_free(NULL);
    CHECK(factum_client_batch_count(NULL) == 0);
}

static void t_read_all(void)
{
    char a[64], bn[64], mark[64];
    sname(a, sizeof a, "allA");
    sname(bn, sizeof bn, "allB");
    snprintf(mark, sizeof mark, "Mark%s", tag);
    factum_append_result r1, r2;
    factum_event_data ea[3] = {ev_json(mark, "{\"k\":1}"), ev_json("Other", "{\"k\":2}"),
                               ev_json(mark, "{\"k\":3}")};
    factum_event_data eb[2] = {ev_json("Other", "{\"k\":4}"), ev_json(mark, "{\"k\":5}")};
    REQUIRE(factum_client_append(cl, a, FACTUM_NO_STREAM, ea, 3, &r1) == 0);
    REQUIRE(factum_client_append(cl, bn, FACTUM_NO_STREAM, eb, 2, &r2) == 0);
    factum_client_batch *b;
    /* Forward from a position includes it. */
    CHECK_RC(factum_client_read_all(cl, r1.first_position, FACTUM_FORWARD, NULL, 5, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 5);
    for (size_t i = 0; i < factum_client_batch_count(b); i++)
        CHECK_EQ_U64(factum_client_batch_event(b, i)->position, r1.first_position + i);
    factum_client_batch_free(b);
    /* Backward from a position starts before it. */
    CHECK_RC(factum_client_read_all(cl, r2.first_position, FACTUM_BACKWARD, NULL, 2, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 2);
    if (factum_client_batch_count(b) == 2) {
        CHECK_EQ_U64(factum_client_batch_event(b, 0)->position, r1.last_position);
        CHECK_EQ_U64(factum_client_batch_event(b, 1)->position, r1.last_position - 1);
    }
    factum_client_batch_free(b);
    /* From either end. */
    CHECK_RC(factum_client_read_all(cl, FACTUM_END, FACTUM_BACKWARD, NULL, 1, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 1);
    uint64_t last = b && factum_client_batch_count(b) ? factum_client_batch_event(b, 0)->position : 0;
    CHECK(last >= r2.last_position);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, NULL, 1, &b), 0);
    CHECK(factum_client_batch_count(b) == 1 && factum_client_batch_event(b, 0)->position == 1);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_all(cl, FACTUM_END, FACTUM_FORWARD, NULL, 10, &b), 0);
    CHECK(factum_client_batch_count(b) == 0);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_BACKWARD, NULL, 10, &b), 0);
    CHECK(factum_client_batch_count(b) == 0);
    factum_client_batch_free(b);
    /* Stream prefix filter: both streams, from the start. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "all");
    const char *pre[] = {a, bn};
    factum_client_filter f = {FACTUM_FILTER_STREAM, pre, 2, NULL};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &f, 100, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 5);
    factum_client_batch_free(b);
    const char *pre1[] = {bn};
    f.prefixes = pre1;
    f.n_prefixes = 1;
    CHECK_RC(factum_client_read_all(cl, FACTUM_END, FACTUM_BACKWARD, &f, 100, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 2);
    if (factum_client_batch_count(b) == 2) CHECK_EQ_U64(factum_client_batch_event(b, 0)->version, 1);
    factum_client_batch_free(b);
    /* Type prefix: the three Mark events, in order; count limits. */
    const char *tp[] = {mark};
    factum_client_filter tf = {FACTUM_FILTER_EVENT_TYPE, tp, 1, NULL};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &tf, 100, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 3);
    for (size_t i = 0; i < factum_client_batch_count(b); i++)
        CHECK(strcmp(factum_client_batch_event(b, i)->type, mark) == 0);
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &tf, 2, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 2);
    /* Paging with a filter: from the last position + 1. */
    uint64_t next = factum_client_batch_count(b) == 2 ? factum_client_batch_event(b, 1)->position + 1 : 0;
    factum_client_batch_free(b);
    CHECK_RC(factum_client_read_all(cl, next, FACTUM_FORWARD, &tf, 2, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 1);
    factum_client_batch_free(b);
    /* Regex on streams and on types. */
    char re[96];
    snprintf(re, sizeof re, "^all[AB]-%s$", tag);
    factum_client_filter rf = {FACTUM_FILTER_STREAM, NULL, 0, re};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &rf, 100, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 5);
    factum_client_batch_free(b);
    snprintf(re, sizeof re, "^Mark%s$", tag);
    rf.on = FACTUM_FILTER_EVENT_TYPE;
    CHECK_RC(factum_client_read_all(cl, FACTUM_END, FACTUM_BACKWARD, &rf, 100, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 3);
    if (factum_client_batch_count(b) == 3) CHECK(strcmp(factum_client_batch_event(b, 0)->stream, bn) == 0);
    factum_client_batch_free(b);
    /* Bad filters. */
    rf.regex = "([unclosed";
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &rf, 100, &b), FACTUM_EBADREGEX);
    factum_client_filter both = {FACTUM_FILTER_STREAM, pre, 2, "x"};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &both, 100, &b), FACTUM_EINVAL);
    factum_client_filter none = {FACTUM_FILTER_STREAM, NULL, 0, NULL};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &none, 100, &b), FACTUM_EINVAL);
    factum_client_filter on = {9, pre, 2, NULL};
    CHECK_RC(factum_client_read_all(cl, 0, FACTUM_FORWARD, &on, 100, &b), FACTUM_EINVAL);
}

/* ---- deletion, metadata ---------------------------------------------------------------- */

static void t_delete_tombstone(void)
{
    char s[64], t[64];
    sname(s, sizeof s, "soft");
    sname(t, sizeof t, "tomb");
    factum_event_data e = ev_json("E", "{}");
    factum_append_result r;
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, &e, 1, &r) == 0);
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, &e, 1, &r) == 0);
    CHECK_RC(factum_client_delete_stream(cl, s, 0, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 1);
    CHECK_RC(factum_client_delete_stream(cl, s, 1, &r), 0);
    CHECK(r.last_position > 0);
    int rc;
    CHECK(count_stream(s, &rc) == -1 && rc == FACTUM_ENOTFOUND);
    /* A soft-deleted stream continues its numbering. */
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 2);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    check_versions(b, (const uint64_t[]){2}, 1);
    factum_client_batch_free(b);
    /* Tombstone: gone for good. */
    REQUIRE(factum_client_append(cl, t, FACTUM_ANY, &e, 1, &r) == 0);
    CHECK_RC(factum_client_tombstone_stream(cl, t, 5, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 0);
    CHECK_RC(factum_client_tombstone_stream(cl, t, FACTUM_ANY, &r), 0);
    CHECK(r.last_position > 0);
    CHECK_RC(factum_client_read_stream(cl, t, 0, FACTUM_FORWARD, 10, &b), FACTUM_EDELETED);
    CHECK(strstr(factum_client_last_error(cl), "deleted") != NULL);
    CHECK_RC(factum_client_append(cl, t, FACTUM_ANY, &e, 1, &r), FACTUM_EDELETED);
    CHECK_RC(factum_client_delete_stream(cl, t, FACTUM_ANY, &r), FACTUM_EDELETED);
    CHECK_RC(factum_client_tombstone_stream(cl, t, FACTUM_ANY, &r), FACTUM_EDELETED);
    /* The tombstone event is in $all. */
    const char *pre[] = {t};
    factum_client_filter f = {FACTUM_FILTER_STREAM, pre, 1, NULL};
    CHECK_RC(factum_client_read_all(cl, FACTUM_END, FACTUM_BACKWARD, &f, 1, &b), 0);
    if (factum_client_batch_count(b) == 1) {
        CHECK(strcmp(factum_client_batch_event(b, 0)->type, "$streamDeleted") == 0);
        CHECK_EQ_U64(factum_client_batch_event(b, 0)->version, FACTUM_TOMBSTONE_VERSION);
    } else {
        CHECK(!"tombstone not found in $all");
    }
    factum_client_batch_free(b);
    CHECK_RC(factum_client_delete_stream(cl, "", FACTUM_ANY, &r), FACTUM_EBADNAME);
    CHECK_RC(factum_client_delete_stream(cl, s, -7, &r), FACTUM_EINVAL);
}

static void t_metadata(void)
{
    char s[64];
    sname(s, sizeof s, "meta");
    char *json;
    int64_t ver;
    CHECK_RC(factum_client_get_stream_metadata(cl, s, &json, &ver), 0);
    CHECK(json && strcmp(json, "{}") == 0 && ver == -1);
    free(json);
    factum_event_data e[6];
    for (int i = 0; i < 6; i++)
        e[i] = ev_json("E", "{}");
    factum_append_result r;
    REQUIRE(factum_client_append(cl, s, FACTUM_NO_STREAM, e, 6, &r) == 0);
    /* $maxCount */
    CHECK_RC(
        factum_client_set_stream_metadata(cl, s, FACTUM_NO_STREAM, "{\"$maxCount\":2,\"owner\":\"x\"}", &r),
        0);
    CHECK_EQ_U64(r.last_version, 0);
    CHECK_RC(factum_client_get_stream_metadata(cl, s, &json, &ver), 0);
    CHECK(json && strcmp(json, "{\"$maxCount\":2,\"owner\":\"x\"}") == 0 && ver == 0);
    free(json);
    CHECK_RC(factum_client_get_stream_metadata(cl, s, &json, NULL), 0);
    free(json);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    check_versions(b, (const uint64_t[]){4, 5}, 2);
    factum_client_batch_free(b);
    /* $tb, with the metadata stream's expectation */
    CHECK_RC(factum_client_set_stream_metadata(cl, s, 5, "{\"$tb\":3}", &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 0);
    CHECK_RC(factum_client_set_stream_metadata(cl, s, 0, "{\"$tb\":3}", &r), 0);
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    check_versions(b, (const uint64_t[]){3, 4, 5}, 3);
    factum_client_batch_free(b);
    /* Bad documents never reach the server. */
    CHECK_RC(factum_client_set_stream_metadata(cl, s, FACTUM_ANY, "{\"$maxCount\":\"two\"}", &r),
             FACTUM_EBADJSON);
    CHECK_RC(factum_client_set_stream_metadata(cl, s, FACTUM_ANY, "[1]", &r), FACTUM_EBADJSON);
    CHECK_RC(factum_client_set_stream_metadata(cl, s, FACTUM_ANY, "{", &r), FACTUM_EBADJSON);
    CHECK_RC(factum_client_set_stream_metadata(cl, s, FACTUM_ANY, NULL, &r), FACTUM_EBADJSON);
    CHECK_RC(factum_client_get_stream_metadata(cl, s, &json, &ver), 0);
    CHECK(json && strcmp(json, "{\"$tb\":3}") == 0 && ver == 1);
    free(json);
    /* $maxAge: events older than a second disappear. */
    char s2[64];
    sname(s2, sizeof s2, "age");
    REQUIRE(factum_client_append(cl, s2, FACTUM_NO_STREAM, e, 2, &r) == 0);
    CHECK_RC(factum_client_set_stream_metadata(cl, s2, FACTUM_ANY, "{\"$maxAge\":1}", &r), 0);
    CHECK(count_stream(s2, NULL) == 2);
    struct timespec ts = {1, 300000000};
    nanosleep(&ts, NULL);
    CHECK(count_stream(s2, NULL) == 0);
    REQUIRE(factum_client_append(cl, s2, FACTUM_ANY, e, 1, &r) == 0);
    CHECK(count_stream(s2, NULL) == 1);
    /* Metadata of a name whose $$ stream would be too long. */
    char big[FACTUM_MAX_STREAM_LEN + 1];
    memset(big, 'm', FACTUM_MAX_STREAM_LEN - 1);
    big[FACTUM_MAX_STREAM_LEN - 1] = 0;
    CHECK_RC(factum_client_get_stream_metadata(cl, big, &json, &ver), FACTUM_EBADNAME);
}

/* ---- sizes and names -------------------------------------------------------------------- */

static void t_large(void)
{
    char s[64];
    sname(s, sizeof s, "thousand");
    enum { N = 1000 };
    factum_event_data *e = calloc(N, sizeof *e);
    char(*data)[32] = calloc(N, 32);
    REQUIRE(e && data);
    for (int i = 0; i < N; i++) {
        snprintf(data[i], 32, "{\"i\":%d}", i);
        e[i] = ev_json("Many", data[i]);
    }
    factum_append_result r;
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, e, N, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    CHECK_EQ_U64(r.last_version, N - 1);
    CHECK_EQ_U64(r.last_position - r.first_position, N - 1);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 2 * N, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), N);
    int ok = 1;
    for (size_t i = 0; i < factum_client_batch_count(b); i++) {
        const factum_event *ev = factum_client_batch_event(b, i);
        if (ev->version != i || ev->position != r.first_position + i || ev->data_len != strlen(data[i]) ||
            memcmp(ev->data, data[i], ev->data_len))
            ok = 0;
    }
    CHECK(ok);
    factum_client_batch_free(b);
    free(e);
    free(data);

    /* One event of 1 MiB of binary data, read back byte for byte. */
    sname(s, sizeof s, "mib");
    size_t n = 1u << 20;
    uint8_t *blob = malloc(n);
    REQUIRE(blob);
    for (size_t i = 0; i < n; i++)
        blob[i] = (uint8_t)(i * 131 + (i >> 11));
    factum_event_data one;
    memset(&one, 0, sizeof one);
    one.type = "Blob";
    one.data = blob;
    one.data_len = n;
    one.metadata = "{\"big\":true}";
    one.metadata_len = 12;
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &one, 1, &r), 0);
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &one, 1, &r), 0);
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 2);
    for (size_t i = 0; i < factum_client_batch_count(b); i++) {
        const factum_event *ev = factum_client_batch_event(b, i);
        CHECK(ev->data_len == n && memcmp(ev->data, blob, n) == 0);
        CHECK(ev->metadata_len == 12 && memcmp(ev->metadata, "{\"big\":true}", 12) == 0);
        CHECK(ev->flags == 0);
    }
    factum_client_batch_free(b);
    free(blob);
}

static void t_names(void)
{
    char s[128];
    snprintf(s, sizeof s,
             "Stra\xc3\x9f"
             "e-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x9a\x80-%s",
             tag);
    const char *type = "\xc3\x89v\xc3\xa9nement-\xf0\x9f\x93\xa6";
    factum_event_data e = ev_json(type, "{\"text\":\"\xe2\x82\xac \xe2\x9c\x93\"}");
    factum_append_result r;
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &e, 1, &r), 0);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    if (factum_client_batch_count(b) == 1) {
        const factum_event *ev = factum_client_batch_event(b, 0);
        CHECK(strcmp(ev->stream, s) == 0 && strcmp(ev->type, type) == 0);
        CHECK(ev->data_len == e.data_len && memcmp(ev->data, e.data, e.data_len) == 0);
    } else {
        CHECK(!"unicode event not read back");
    }
    factum_client_batch_free(b);
    /* The longest name and type, and one byte more. */
    char *lng = malloc(FACTUM_MAX_STREAM_LEN + 2), *lt = malloc(FACTUM_MAX_TYPE_LEN + 2);
    REQUIRE(lng && lt);
    memset(lng, 'n', FACTUM_MAX_STREAM_LEN);
    memcpy(lng, tag, strlen(tag));
    lng[FACTUM_MAX_STREAM_LEN] = 0;
    memset(lt, 't', FACTUM_MAX_TYPE_LEN);
    lt[FACTUM_MAX_TYPE_LEN] = 0;
    factum_event_data le = ev_json(lt, "{}");
    CHECK_RC(factum_client_append(cl, lng, FACTUM_NO_STREAM, &le, 1, &r), 0);
    CHECK_RC(factum_client_read_stream(cl, lng, FACTUM_END, FACTUM_BACKWARD, 1, &b), 0);
    if (factum_client_batch_count(b) == 1) {
        CHECK(factum_client_batch_event(b, 0)->stream_len == FACTUM_MAX_STREAM_LEN);
        CHECK(factum_client_batch_event(b, 0)->type_len == FACTUM_MAX_TYPE_LEN);
    }
    factum_client_batch_free(b);
    lng[FACTUM_MAX_STREAM_LEN] = 'x';
    lng[FACTUM_MAX_STREAM_LEN + 1] = 0;
    CHECK_RC(factum_client_append(cl, lng, FACTUM_ANY, &le, 1, &r), FACTUM_EBADNAME);
    lt[FACTUM_MAX_TYPE_LEN] = 'x';
    lt[FACTUM_MAX_TYPE_LEN + 1] = 0;
    le.type = lt;
    CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &le, 1, &r), FACTUM_EBADTYPE);
    free(lng);
    free(lt);
}

/* ---- concurrency -------------------------------------------------------------------------- */

enum { RACERS = 20, WINS_EACH = 8 };

typedef struct racer {
    int id;
    const char *stream;
    int wins, conflicts, errors;
    uint64_t won[WINS_EACH];
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    factum_client *c;
    if (factum_client_connect(url, NULL, &c)) {
        r->errors++;
        return NULL;
    }
    char data[64];
    while (r->wins < WINS_EACH && r->errors < 5 && r->conflicts < 100000) {
        int64_t expected = FACTUM_NO_STREAM;
        factum_client_batch *b;
        int rc = factum_client_read_stream(c, r->stream, FACTUM_END, FACTUM_BACKWARD, 1, &b);
        if (rc == 0 && factum_client_batch_count(b))
            expected = (int64_t)factum_client_batch_event(b, 0)->version;
        else if (rc && rc != FACTUM_ENOTFOUND)
            r->errors++;
        factum_client_batch_free(b);
        snprintf(data, sizeof data, "{\"racer\":%d,\"n\":%d}", r->id, r->wins);
        factum_event_data e = ev_json("Race", data);
        factum_append_result res;
        rc = factum_client_append(c, r->stream, expected, &e, 1, &res);
        if (rc == 0) {
            if (res.last_version != (uint64_t)(expected + 1)) r->errors++;
            r->won[r->wins++] = res.last_version;
        } else if (rc == FACTUM_EWRONGVERSION) {
            r->conflicts++;
        } else {
            r->errors++;
        }
    }
    factum_client_close(c);
    return NULL;
}

static void t_race(void)
{
    char s[64];
    sname(s, sizeof s, "race");
    racer r[RACERS];
    pthread_t th[RACERS];
    memset(r, 0, sizeof r);
    for (int i = 0; i < RACERS; i++) {
        r[i].id = i;
        r[i].stream = s;
        REQUIRE(pthread_create(&th[i], NULL, race, &r[i]) == 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    int total = 0, conflicts = 0;
    static char won_by[RACERS * WINS_EACH];
    memset(won_by, 0, sizeof won_by);
    for (int i = 0; i < RACERS; i++) {
        CHECK(r[i].errors == 0);
        CHECK(r[i].wins == WINS_EACH);
        total += r[i].wins;
        conflicts += r[i].conflicts;
        for (int k = 0; k < r[i].wins; k++) {
            CHECK(r[i].won[k] < RACERS * WINS_EACH);
            if (r[i].won[k] < RACERS * WINS_EACH) won_by[r[i].won[k]]++;
        }
    }
    /* Exactly one winner per version, no gaps. */
    for (int v = 0; v < RACERS * WINS_EACH; v++)
        CHECK(won_by[v] == 1);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10000, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), (uint64_t)total);
    for (size_t i = 0; i < factum_client_batch_count(b); i++)
        CHECK_EQ_U64(factum_client_batch_event(b, i)->version, i);
    factum_client_batch_free(b);
    printf("  race: %d appends won, %d lost to a wrong expected version\n", total, conflicts);
}

/* One client shared by threads: calls are serialised. */
typedef struct sharer {
    const char *stream;
    int errors;
} sharer;

static void *share(void *arg)
{
    sharer *s = arg;
    for (int i = 0; i < 30; i++) {
        factum_event_data e = ev_json("Shared", "{}");
        if (factum_client_append(cl, s->stream, FACTUM_ANY, &e, 1, NULL)) s->errors++;
        factum_client_batch *b;
        if (factum_client_read_stream(cl, s->stream, FACTUM_END, FACTUM_BACKWARD, 5, &b)) s->errors++;
        factum_client_batch_free(b);
    }
    return NULL;
}

static void t_shared_client(void)
{
    char s[64];
    sname(s, sizeof s, "shared");
    sharer sh[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        sh[i].stream = s;
        sh[i].errors = 0;
        REQUIRE(pthread_create(&th[i], NULL, share, &sh[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(sh[i].errors == 0);
    }
    CHECK(count_stream(s, NULL) == 120);
}

/* A batch owns its events: it stays valid after its client is closed
 * (its memory comes from a pool both share), and may be freed after. */
static void t_batch_outlives_client(void)
{
    char s[64];
    sname(s, sizeof s, "outlive");
    factum_client *c;
    REQUIRE(factum_client_connect(url, NULL, &c) == 0);
    factum_event_data e[3] = {ev_json("O", "{\"o\":1}"), ev_json("O", "{\"o\":2}"),
                              ev_json("P", "{\"o\":3}")};
    REQUIRE(factum_client_append(c, s, FACTUM_NO_STREAM, e, 3, NULL) == 0);
    factum_client_batch *b1, *b2;
    REQUIRE(factum_client_read_stream(c, s, 0, FACTUM_FORWARD, 10, &b1) == 0);
    REQUIRE(factum_client_read_stream(c, s, FACTUM_END, FACTUM_BACKWARD, 10, &b2) == 0);
    factum_client_batch_free(b2); /* its memory goes back to the pool */
    REQUIRE(factum_client_read_stream(c, s, 1, FACTUM_FORWARD, 10, &b2) == 0);
    factum_client_close(c);
    CHECK_EQ_U64(factum_client_batch_count(b1), 3);
    CHECK_EQ_U64(factum_client_batch_count(b2), 2);
    for (size_t i = 0; i < factum_client_batch_count(b1); i++) {
        const factum_event *ev = factum_client_batch_event(b1, i);
        CHECK(strcmp(ev->stream, s) == 0 && ev->data_len == e[i].data_len &&
              !memcmp(ev->data, e[i].data, ev->data_len));
        CHECK(strcmp(ev->type, i < 2 ? "O" : "P") == 0);
    }
    CHECK(strcmp(factum_client_batch_event(b2, 1)->type, "P") == 0);
    factum_client_batch_free(b1);
    factum_client_batch_free(b2);
}

/* ---- multi-stream appends ------------------------------------------------------------------- */

static void t_append_multi(void)
{
    char a[64], bn[64], t[64];
    sname(a, sizeof a, "multiA");
    sname(bn, sizeof bn, "multiB");
    sname(t, sizeof t, "multiT");
    factum_event_data ea[2] = {ev_json("A1", "{\"a\":1}"), ev_json("A2", "{\"a\":2}")};
    factum_event_data eb[1] = {ev_json("B1", "{\"b\":1}")};
    eb[0].metadata = "{\"user\":\"bob\",\"n\":3,\"nested\":{\"x\":[true,null]}}";
    eb[0].metadata_len = strlen(eb[0].metadata);
    factum_append_req q[2] = {{a, FACTUM_NO_STREAM, ea, 2}, {bn, FACTUM_ANY, eb, 1}};
    factum_append_result res[2];
    size_t failed = 99;
    CHECK_RC(factum_client_append_multi(cl, q, 2, res, &failed), 0);
    CHECK_EQ_U64(res[0].first_version, 0);
    CHECK_EQ_U64(res[0].last_version, 1);
    CHECK_EQ_U64(res[1].last_version, 0);
    CHECK(res[1].last_position == res[0].last_position + 1);
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, bn, 0, FACTUM_FORWARD, 10, &b), 0);
    if (factum_client_batch_count(b) == 1) {
        const factum_event *ev = factum_client_batch_event(b, 0);
        CHECK(strcmp(ev->type, "B1") == 0);
        CHECK(ev->metadata_len == strlen(eb[0].metadata) &&
              !memcmp(ev->metadata, eb[0].metadata, ev->metadata_len));
    } else {
        CHECK(!"multi-append event not read");
    }
    factum_client_batch_free(b);
    /* One part's expectation fails: nothing is written. */
    factum_append_req q2[2] = {{a, 1, ea, 1}, {bn, 5, eb, 1}};
    failed = 99;
    CHECK_RC(factum_client_append_multi(cl, q2, 2, res, &failed), FACTUM_EWRONGVERSION);
    CHECK(failed == 1);
    CHECK(res[1].actual_version == 0);
    CHECK(count_stream(a, NULL) == 2);
    CHECK(count_stream(bn, NULL) == 1);
    factum_append_req q3[2] = {{a, FACTUM_NO_STREAM, ea, 1}, {bn, 0, eb, 1}};
    CHECK_RC(factum_client_append_multi(cl, q3, 2, res, &failed), FACTUM_EWRONGVERSION);
    CHECK(failed == 0 && res[0].actual_version == 1);
    CHECK(count_stream(bn, NULL) == 1);
    /* A tombstoned part. */
    factum_append_result r;
    REQUIRE(factum_client_append(cl, t, FACTUM_ANY, eb, 1, &r) == 0);
    REQUIRE(factum_client_tombstone_stream(cl, t, FACTUM_ANY, &r) == 0);
    factum_append_req q4[2] = {{a, FACTUM_ANY, ea, 1}, {t, FACTUM_ANY, ea, 1}};
    CHECK_RC(factum_client_append_multi(cl, q4, 2, res, &failed), FACTUM_EDELETED);
    CHECK(failed == 1);
    CHECK(count_stream(a, NULL) == 2);
    /* Checked before sending. */
    factum_append_req q5[2] = {{a, FACTUM_ANY, ea, 1}, {a, FACTUM_ANY, ea, 1}};
    CHECK_RC(factum_client_append_multi(cl, q5, 2, res, &failed), FACTUM_EINVAL);
    CHECK(failed == 1);
    factum_event_data bin = ev_json("Bin", "{}");
    bin.metadata = "not json";
    bin.metadata_len = 8;
    factum_append_req q6[1] = {{a, FACTUM_ANY, &bin, 1}};
    CHECK_RC(factum_client_append_multi(cl, q6, 1, res, &failed), FACTUM_EINVAL);
    CHECK_RC(factum_client_append_multi(cl, q6, 0, res, &failed), FACTUM_EINVAL);
    factum_append_req q7[1] = {{a, FACTUM_ANY, ea, 2}};
    CHECK_RC(factum_client_append_multi(cl, q7, 1, NULL, NULL), 0);
    CHECK(count_stream(a, NULL) == 4);
}

/* ---- bad input ----------------------------------------------------------------------------------- */

static void t_bad_urls(void)
{
    const char *bad[] = {
        "kurrentdb://127.0.0.1:2113?userCertFile=/x.crt", /* without userKeyFile */
        "kurrentdb://127.0.0.1:2113?tlsVerifyCert=no",    /* not a boolean */
        "kurrentdb://127.0.0.1:2113?tls=maybe",           /* not a boolean */
        "http://127.0.0.1:2113?tls=false",      /* not a scheme of the clients */
        "127.0.0.1:2113",
        "kurrentdb://?tls=false",
        "kurrentdb://host:0?tls=false",
        "kurrentdb://host:99999?tls=false",
        "kurrentdb://host:12ab?tls=false",
        "kurrentdb://a,,b?tls=false",
        "kurrentdb://::1?tls=false",
        "kurrentdb://[::1?tls=false",
        "kurrentdb://host/path?tls=false",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        factum_client *c = (factum_client *)&c;
        CHECK_RC(factum_client_connect(bad[i], NULL, &c), FACTUM_EBADURL);
        CHECK(c == NULL);
        CHECK(factum_client_last_error(NULL)[0] != 0);
    }
    factum_client *c;
    CHECK_RC(factum_client_connect(NULL, NULL, &c), FACTUM_EBADURL);
    CHECK_RC(factum_client_connect("kurrentdb://127.0.0.1:2113?userKeyFile=k", NULL, &c), FACTUM_EBADURL);
    CHECK(strstr(factum_client_last_error(NULL), "userCertFile and userKeyFile go together") != NULL);
    CHECK(strstr(factum_strerror(FACTUM_EBADURL), "connection string") != NULL);
}

/* A port with a listener that never answers, and one that says HTTP/1.1. */
typedef struct fake {
    int fd;
    int port;
    int reply; /* write an HTTP/1.1 answer and close */
    pthread_t th;
} fake;

static void *fake_run(void *arg)
{
    fake *f = arg;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) return NULL;
        if (f->reply) {
            const char *r = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            ssize_t w = write(c, r, strlen(r));
            (void)w;
            close(c);
        } else {
            char buf[4096];
            while (read(c, buf, sizeof buf) > 0) {
            }
            close(c);
        }
    }
}

static int fake_start(fake *f, int reply)
{
    memset(f, 0, sizeof *f);
    f->reply = reply;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof a) || listen(f->fd, 8) ||
        getsockname(f->fd, (struct sockaddr *)&a, &al))
        return -1;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->th, NULL, fake_run, f);
}

static void fake_stop(fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    close(f->fd);
    pthread_join(f->th, NULL);
}

static void t_bad_endpoints(void)
{
    /* Refused: a port nobody listens on (bound, then closed). */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &al) == 0);
    close(s);
    char u[2048];
    snprintf(u, sizeof u, "kurrentdb://127.0.0.1:%d%s", ntohs(a.sin_port), query);
    factum_client *c;
    CHECK_RC(factum_client_connect(u, NULL, &c), FACTUM_ECONNECT);
    CHECK(strstr(factum_client_last_error(NULL), "refused") != NULL);
    snprintf(u, sizeof u, "kurrentdb://no-such-host.invalid:2113%s", query);
    CHECK_RC(factum_client_connect(u, NULL, &c), FACTUM_ECONNECT);
    /* Silent and HTTP/1.1-only servers are not HTTP/2 servers. */
    factum_client_options o;
    factum_client_options_init(&o);
    CHECK(o.timeout_ms == FACTUM_CLIENT_DEFAULT_TIMEOUT && o.connect_timeout_ms == 5000);
    o.connect_timeout_ms = 300;
    fake f1, f2;
    REQUIRE(fake_start(&f1, 0) == 0);
    REQUIRE(fake_start(&f2, 1) == 0);
    snprintf(u, sizeof u, "kurrentdb://127.0.0.1:%d%s", f1.port, query);
    CHECK_RC(factum_client_connect(u, &o, &c), FACTUM_ECONNECT);
    CHECK(strstr(factum_client_last_error(NULL), secure ? "no TLS handshake within" : "no HTTP/2 answer") != NULL);
    snprintf(u, sizeof u, "kurrentdb://127.0.0.1:%d%s", f2.port, query);
    /* With TLS, an HTTP/1.1 answer to the ClientHello: not a TLS server. */
    CHECK_RC(factum_client_connect(u, &o, &c), secure ? FACTUM_ETLS : FACTUM_ECONNECT);
    if (secure)
        CHECK(strstr(factum_client_last_error(NULL),
                     "does not speak TLS (it answered 'HTTP/1.1 400 Bad Request')") != NULL);
    /* ... but the next host of the list may be. */
    const char *port = strrchr(url, ':');
    snprintf(u, sizeof u, "kurrentdb://%s127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d%s", creds, f1.port, f2.port,
             atoi(port + 1), query);
    CHECK_RC(factum_client_connect(u, &o, &c), 0);
    if (c) {
        char v[32];
        CHECK_RC(factum_client_server_version(c, v, sizeof v), 0);
        factum_client_close(c);
    }
    fake_stop(&f1);
    fake_stop(&f2);
}

static void t_oversized(void)
{
    char s[64];
    sname(s, sizeof s, "big");
    /* Over the server's event limit (16 MiB by default), in two ways: just
     * over (refused by the append), and over its message limit (refused by
     * the framing). The connection survives both. */
    size_t sizes[] = {FACTUM_DEFAULT_MAX_EVENT_SIZE + 1, FACTUM_DEFAULT_MAX_EVENT_SIZE + (4u << 20)};
    for (int i = 0; i < 2; i++) {
        uint8_t *blob = calloc(1, sizes[i]);
        REQUIRE(blob);
        factum_event_data e;
        memset(&e, 0, sizeof e);
        e.type = "Huge";
        e.data = blob;
        e.data_len = sizes[i];
        factum_append_result r;
        CHECK_RC(factum_client_append(cl, s, FACTUM_ANY, &e, 1, &r), FACTUM_ETOOBIG);
        CHECK(factum_client_last_error(cl)[0] != 0);
        free(blob);
        int rc;
        CHECK(count_stream(s, &rc) == -1 && rc == FACTUM_ENOTFOUND);
    }
    factum_event_data ok = ev_json("Small", "{}");
    CHECK_RC(factum_client_append(cl, s, FACTUM_NO_STREAM, &ok, 1, NULL), 0);
}

static void t_deadline(void)
{
    /* A deadline too short for a large read: ETIMEDOUT, and the
     * connection is still good afterwards (CL-3). */
    char s[64];
    sname(s, sizeof s, "deadline");
    factum_client_options o;
    factum_client_options_init(&o);
    o.timeout_ms = 1;
    factum_client *c;
    REQUIRE(factum_client_connect(url, &o, &c) == 0);
    size_t n = 4u << 20;
    uint8_t *blob = calloc(1, n);
    REQUIRE(blob);
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = "Slow";
    e.data = blob;
    e.data_len = n;
    factum_event_data es[3] = {e, e, e};
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, 3, NULL) == 0);
    int timeouts = 0;
    for (int i = 0; i < 5; i++) {
        factum_client_batch *b;
        int rc = factum_client_read_stream(c, s, 0, FACTUM_FORWARD, 10, &b);
        if (rc == FACTUM_ETIMEDOUT)
            timeouts++;
        else
            CHECK_RC(rc, 0);
        factum_client_batch_free(b);
    }
    CHECK(timeouts > 0);
    free(blob);
    factum_client_close(c);
    /* The default deadline is fine for the same read. */
    factum_client_batch *b;
    CHECK_RC(factum_client_read_stream(cl, s, 0, FACTUM_FORWARD, 10, &b), 0);
    CHECK_EQ_U64(factum_client_batch_count(b), 3);
    factum_client_batch_free(b);
}

/* ---- catch-up subscriptions ----------------------------------------------------- */

typedef struct sub_rec {
    size_t n_events, n_caught, n_fell, n_ckpt, n_idle;
    uint64_t versions[4096];
    uint64_t positions[4096];
    char types[4096][16];
    uint64_t ckpts[1024];
    size_t n_ckpts;
    size_t stop_after;     /* events, 0: never by count */
    int stop_on_caught_up; /* stop at the first caught-up (after stop_after events if set) */
    int stop_on_idle;
    int fail_with;         /* return this at the first event */
    int links_ok;          /* resolved-link checks */
    char link_target[64];
    int order_bad;
    pthread_t writer;
    int start_writer;      /* start the live writer at caught-up */
} sub_rec;

static const char *live_stream;
static void *live_writer(void *arg)
{
    (void)arg;
    factum_client *w;
    if (factum_client_connect(url, NULL, &w)) return NULL;
    for (int i = 0; i < 50; i++) {
        factum_event_data e = ev_json("Live", "{}");
        factum_client_append(w, live_stream, FACTUM_ANY, &e, 1, NULL);
    }
    factum_client_close(w);
    return NULL;
}

static int on_sub(void *ctx, const factum_sub_item *it)
{
    sub_rec *r = ctx;
    switch (it->kind) {
    case FACTUM_SUB_EVENT:
        if (r->fail_with) return r->fail_with;
        if (r->n_events < 4096) {
            r->versions[r->n_events] = it->event.version;
            r->positions[r->n_events] = it->position;
            snprintf(r->types[r->n_events], 16, "%s", it->event.type);
            if (r->n_events && it->position <= r->positions[r->n_events - 1]) r->order_bad++;
        }
        if (it->has_link && strcmp(it->event.stream, r->link_target) == 0 && strcmp(it->link.type, "$>") == 0)
            r->links_ok++;
        r->n_events++;
        if (r->stop_after && r->n_events >= r->stop_after && !r->stop_on_caught_up) return 1;
        return 0;
    case FACTUM_SUB_CAUGHT_UP:
        r->n_caught++;
        if (r->start_writer && r->n_caught == 1) pthread_create(&r->writer, NULL, live_writer, NULL);
        return r->stop_on_caught_up && r->n_events >= r->stop_after;
    case FACTUM_SUB_FELL_BEHIND: r->n_fell++; return 0;
    case FACTUM_SUB_CHECKPOINT:
        /* The newest 1024 (a long $all of earlier runs has more). */
        if (r->n_ckpts == 1024) memmove(r->ckpts, r->ckpts + 1, --r->n_ckpts * sizeof *r->ckpts);
        r->ckpts[r->n_ckpts++] = it->position;
        r->n_ckpt++;
        return 0;
    case FACTUM_SUB_IDLE: r->n_idle++; return r->stop_on_idle;
    }
    return -1;
}

static void t_subscribe(void)
{
    char s[64];
    sname(s, sizeof s, "subs");
    live_stream = s;
    for (int i = 0; i < 10; i++) {
        factum_event_data es[10];
        for (int k = 0; k < 10; k++) es[k] = ev_json("Hist", "{}");
        REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, 10, NULL) == 0);
    }
    factum_client *c;
    REQUIRE(factum_client_connect(url, NULL, &c) == 0);
    /* History (100), caught up, then 50 live events from another client
     * started at the switch: 150 in order, none twice. */
    static sub_rec r;
    memset(&r, 0, sizeof r);
    r.stop_after = 150;
    r.start_writer = 1;
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.stream = s;
    CHECK_RC(factum_client_subscribe(c, &o, on_sub, &r), 0);
    pthread_join(r.writer, NULL);
    CHECK_EQ_U64(r.n_events, 150);
    for (size_t i = 0; i < 150; i++)
        CHECK_EQ_U64(r.versions[i], i);
    CHECK(r.order_bad == 0);
    CHECK(r.n_caught >= 1);
    CHECK(strcmp(r.types[99], "Hist") == 0 && strcmp(r.types[100], "Live") == 0);
    /* After a version (exclusive); the client is usable for other calls after. */
    memset(&r, 0, sizeof r);
    r.stop_after = 1;
    o.from = FACTUM_SUB_AFTER;
    o.after = 148;
    CHECK_RC(factum_client_subscribe(c, &o, on_sub, &r), 0);
    CHECK(r.n_events == 1 && r.versions[0] == 149);
    CHECK(count_stream(s, NULL) == 150);
    /* From the end of a quiet stream: caught up, then idle. */
    memset(&r, 0, sizeof r);
    r.stop_on_idle = 1;
    o.from = FACTUM_SUB_END;
    o.idle_ms = 100;
    CHECK_RC(factum_client_subscribe(c, &o, on_sub, &r), 0);
    CHECK(r.n_events == 0 && r.n_caught == 1 && r.n_idle == 1);
    o.idle_ms = 0;
    /* The callback's error ends it with that code; the client goes on. */
    memset(&r, 0, sizeof r);
    r.fail_with = -EINTR;
    o.from = FACTUM_SUB_START;
    CHECK_RC(factum_client_subscribe(c, &o, on_sub, &r), -EINTR);
    CHECK(count_stream(s, NULL) == 150);

    /* $all, filtered by type, with checkpoints every 10 events examined:
     * the matching events only, and resuming after a checkpoint loses none. */
    char ty[48], pre[48];
    snprintf(ty, sizeof ty, "Sig%s", tag);
    snprintf(pre, sizeof pre, "Sig%s", tag);
    factum_append_result a1, a2;
    factum_event_data sig = ev_json(ty, "{}");
    factum_event_data noise[40];
    for (int k = 0; k < 40; k++) noise[k] = ev_json("Noise", "{}");
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, &sig, 1, &a1) == 0);
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, noise, 40, NULL) == 0);
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, &sig, 1, &a2) == 0);
    const char *prefixes[] = {pre};
    factum_client_filter f = {FACTUM_FILTER_EVENT_TYPE, prefixes, 1, NULL};
    factum_client_sub_options ao;
    factum_client_sub_options_init(&ao);
    ao.filter = &f;
    ao.checkpoint_interval = 10;
    memset(&r, 0, sizeof r);
    r.stop_after = 2;
    r.stop_on_caught_up = 1;
    CHECK_RC(factum_client_subscribe(c, &ao, on_sub, &r), 0);
    CHECK(r.n_events == 2 && r.positions[0] == a1.last_position && r.positions[1] == a2.last_position);
    CHECK(r.n_ckpts >= 4);
    uint64_t resume = 0;
    for (size_t i = 0; i < r.n_ckpts; i++) {
        if (i) CHECK(r.ckpts[i] > r.ckpts[i - 1]);
        if (r.ckpts[i] >= a1.last_position && r.ckpts[i] < a2.last_position) resume = r.ckpts[i];
    }
    CHECK(resume != 0);
    memset(&r, 0, sizeof r);
    r.stop_after = 1;
    ao.from = FACTUM_SUB_AFTER;
    ao.after = resume;
    CHECK_RC(factum_client_subscribe(c, &ao, on_sub, &r), 0);
    CHECK(r.n_events == 1 && r.positions[0] == a2.last_position);

    /* Links, resolved. */
    char target[64], links[64], data[128];
    sname(target, sizeof target, "sub-target");
    sname(links, sizeof links, "sub-links");
    factum_event_data t0 = ev_json("Real", "{}");
    REQUIRE(factum_client_append(cl, target, FACTUM_ANY, &t0, 1, NULL) == 0);
    snprintf(data, sizeof data, "0@%s", target);
    factum_event_data lk;
    memset(&lk, 0, sizeof lk);
    lk.type = "$>";
    lk.data = data;
    lk.data_len = strlen(data);
    REQUIRE(factum_client_append(cl, links, FACTUM_ANY, &lk, 1, NULL) == 0);
    factum_client_sub_options lo;
    factum_client_sub_options_init(&lo);
    lo.stream = links;
    lo.resolve_links = 1;
    memset(&r, 0, sizeof r);
    snprintf(r.link_target, sizeof r.link_target, "%s", target);
    r.stop_after = 1;
    CHECK_RC(factum_client_subscribe(c, &lo, on_sub, &r), 0);
    CHECK(r.n_events == 1 && r.links_ok == 1 && r.positions[0] == 0 && strcmp(r.types[0], "Real") == 0);

    /* Bad input, and a tombstoned stream. */
    factum_client_sub_options bo;
    factum_client_sub_options_init(&bo);
    bo.stream = s;
    bo.filter = &f;
    CHECK_RC(factum_client_subscribe(c, &bo, on_sub, &r), FACTUM_EINVAL);
    bo.filter = NULL;
    bo.stream = "";
    CHECK_RC(factum_client_subscribe(c, &bo, on_sub, &r), FACTUM_EBADNAME);
    REQUIRE(factum_client_tombstone_stream(cl, target, FACTUM_ANY, NULL) == 0);
    bo.stream = target;
    CHECK_RC(factum_client_subscribe(c, &bo, on_sub, &r), FACTUM_EDELETED);
    CHECK(strstr(factum_client_last_error(c), "tombstoned") != NULL);
    factum_client_close(c);
}

/* ---- persistent subscriptions ------------------------------------------------------ */

typedef struct ps_rec {
    size_t n, stop_after;
    int64_t values[256];
    int retries[256];
    int retry_first; /* RETRY every delivery of version 0 */
    int park_v1;     /* PARK version 1 */
    int idle_stop;
    size_t idles;
} ps_rec;

static int on_ps(void *ctx, const factum_sub_item *it, int retry)
{
    ps_rec *r = ctx;
    if (it->kind == FACTUM_SUB_IDLE) {
        r->idles++;
        return r->idle_stop ? FACTUM_PS_STOP : FACTUM_PS_LATER;
    }
    if (r->n < 256) {
        r->values[r->n] = (int64_t)it->event.version;
        r->retries[r->n] = retry;
    }
    r->n++;
    int action = FACTUM_PS_ACK;
    if (r->retry_first && it->event.version == 0) action = FACTUM_PS_RETRY;
    if (r->park_v1 && it->event.version == 1) action = FACTUM_PS_PARK;
    if (r->stop_after && r->n >= r->stop_after) return action == FACTUM_PS_ACK ? FACTUM_PS_STOP : action;
    return action;
}

static void *ps_holder(void *arg)
{
    const char *s = arg;
    factum_client *c;
    if (factum_client_connect(url, NULL, &c)) return NULL;
    ps_rec r;
    memset(&r, 0, sizeof r);
    r.idle_stop = 1;
    factum_client_ps_subscribe(c, s, "g", 10, 800, on_ps, &r);
    factum_client_close(c);
    return NULL;
}

static void t_persistent(void)
{
    char s[64];
    sname(s, sizeof s, "psub");
    factum_client *c;
    REQUIRE(factum_client_connect(url, NULL, &c) == 0);
    factum_client_ps_settings st;
    factum_client_ps_settings_init(&st);
    st.start = FACTUM_SUB_START;
    st.max_retry_count = 1;
    st.max_subscriber_count = 1;
    CHECK_RC(factum_client_ps_create(cl, s, "g", &st), 0);
    CHECK_RC(factum_client_ps_create(cl, s, "g", &st), FACTUM_EEXISTS);
    factum_event_data es[20];
    for (int k = 0; k < 20; k++) es[k] = ev_json("P", "{}");
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, 20, NULL) == 0);
    /* Version 0 is retried once then parked, version 1 parked at once; the
     * rest acked: 2 + 1 + 18 deliveries. */
    static ps_rec r;
    memset(&r, 0, sizeof r);
    r.retry_first = 1;
    r.park_v1 = 1;
    r.stop_after = 21;
    CHECK_RC(factum_client_ps_subscribe(c, s, "g", 5, 0, on_ps, &r), 0);
    CHECK_EQ_U64(r.n, 21);
    int zero = 0, one = 0;
    for (size_t i = 0; i < r.n && i < 256; i++) {
        if (r.values[i] == 0) CHECK(r.retries[i] == zero++);
        if (r.values[i] == 1) one++;
    }
    CHECK(zero == 2 && one == 1);
    /* The parked stream holds the two. */
    char parked[128];
    snprintf(parked, sizeof parked, "$persistentsubscription-%s::g-parked", s);
    long np = 0;
    for (int i = 0; i < 100 && (np = count_stream(parked, NULL)) != 2; i++)
        usleep(20000); /* parking is asynchronous */
    CHECK(np == 2);
    /* One consumer at most: a second one is refused while the first is in. */
    pthread_t th;
    pthread_create(&th, NULL, ps_holder, s);
    usleep(300000);
    memset(&r, 0, sizeof r);
    CHECK_RC(factum_client_ps_subscribe(c, s, "g", 5, 0, on_ps, &r), FACTUM_EFULL);
    pthread_join(th, NULL);
    /* Update, delete, and what follows. */
    st.max_subscriber_count = 0;
    st.strategy = "PinnedByCorrelation";
    CHECK_RC(factum_client_ps_update(cl, s, "g", &st), FACTUM_EINVAL); /* creation only */
    st.strategy = "DispatchToSingle";
    CHECK_RC(factum_client_ps_update(cl, s, "g", &st), 0);
    CHECK_RC(factum_client_ps_delete(cl, s, "g"), 0);
    CHECK_RC(factum_client_ps_delete(cl, s, "g"), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_ps_subscribe(c, s, "g", 5, 0, on_ps, &r), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_ps_update(cl, s, "nope", &st), FACTUM_ENOTFOUND);
    /* $all with a filter. */
    char pre[64], gname[64];
    sname(pre, sizeof pre, "psall");
    snprintf(gname, sizeof gname, "g-%s", tag);
    const char *prefixes[] = {pre};
    factum_client_filter f = {FACTUM_FILTER_STREAM, prefixes, 1, NULL};
    factum_client_ps_settings_init(&st);
    st.filter = &f;
    CHECK_RC(factum_client_ps_create(cl, "$all", gname, &st), 0); /* from the end */
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, es, 3, NULL) == 0);  /* not matching */
    char mine[96];
    snprintf(mine, sizeof mine, "%s-x", pre);
    REQUIRE(factum_client_append(cl, mine, FACTUM_ANY, es, 4, NULL) == 0);
    memset(&r, 0, sizeof r);
    r.stop_after = 4;
    CHECK_RC(factum_client_ps_subscribe(c, NULL, gname, 10, 0, on_ps, &r), 0);
    CHECK(r.n == 4 && r.values[0] == 0 && r.values[3] == 3);
    CHECK_RC(factum_client_ps_delete(cl, NULL, gname), 0);
    CHECK_RC(factum_client_ps_create(cl, s, "", &st), FACTUM_EINVAL);
    factum_client_close(c);
}

/* ---- read models (factumd's ReadModels service) ------------------------------ */

static int find_rm(void *ctx, const factum_readmodel_status *st)
{
    return !strcmp(st->name, (const char *)ctx) ? 1 : 0;
}

static void t_readmodels(void)
{
    char name[64], s[64], def[1024];
    snprintf(name, sizeof name, "rm_%s", tag);
    sname(s, sizeof s, "rmacct");
    snprintf(def, sizeof def,
             "{\"name\":\"%s\",\"streams\":[\"%s\"],\"schema\":[\"CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER "
             "NOT NULL)\"],\"handlers\":{\"Add\":\"INSERT INTO t(id, n) VALUES (:data.id, :data.n)\"}}",
             name, s);
    CHECK_RC(factum_client_readmodel_create(cl, def, strlen(def)), 0);
    CHECK_RC(factum_client_readmodel_create(cl, def, strlen(def)), FACTUM_EEXISTS);
    factum_event_data es[3] = {ev_json("Add", "{\"id\":\"a\",\"n\":1}"), ev_json("Add", "{\"id\":\"b\",\"n\":2}"),
                               ev_json("Add", "{\"id\":\"c\",\"n\":3}")};
    factum_append_result res;
    REQUIRE(factum_client_append(cl, s, FACTUM_NO_STREAM, es, 3, &res) == 0);
    uint64_t reached = 0;
    CHECK_RC(factum_client_readmodel_wait(cl, name, res.last_position, 5000, &reached), 0);
    CHECK(reached >= res.last_position);
    char *out = NULL;
    CHECK_RC(factum_client_readmodel_query(cl, name, "SELECT sum(n) AS s FROM t", NULL, NULL, &out), 0);
    CHECK(out && strstr(out, "\"columns\":[\"s\"]") && strstr(out, "\"rows\":[[6]]"));
    free(out);
    factum_query_options o;
    factum_query_options_init(&o);
    o.min_position = res.last_position;
    o.row_limit = 1;
    CHECK_RC(factum_client_readmodel_query(cl, name, "SELECT n FROM t WHERE id >= :id ORDER BY id", "{\"id\":\"b\"}",
                                           &o, &out),
             0);
    CHECK(out && strstr(out, "\"rows\":[[2]]") && strstr(out, "\"truncated\":true"));
    free(out);
    /* refused statements: INVALID_ARGUMENT with the reason */
    CHECK_RC(factum_client_readmodel_query(cl, name, "DELETE FROM t", NULL, NULL, &out), FACTUM_EINVAL);
    CHECK(out == NULL && factum_client_last_error(cl)[0]);
    CHECK_RC(factum_client_readmodel_query(cl, name, "SELECT :nope", NULL, NULL, &out), FACTUM_EINVAL);
    CHECK(strstr(factum_client_last_error(cl), "nope") != NULL);
    /* status, definition, list */
    factum_readmodel_status st;
    char *d = NULL;
    CHECK_RC(factum_client_readmodel_get(cl, name, &st, &d), 0);
    CHECK(!strcmp(st.name, name) && !strcmp(st.target, "sqlite") && st.state == FACTUM_READMODEL_RUNNING);
    CHECK(st.position >= res.last_position && st.lifecycle == FACTUM_READMODEL_ASYNC);
    CHECK(d && strstr(d, name));
    free(d);
    CHECK_RC(factum_client_readmodel_list(cl, find_rm, name), 1);
    /* a wait out of time; pause and resume; parked */
    CHECK_RC(factum_client_readmodel_wait(cl, name, res.last_position + 1000000, 200, NULL), FACTUM_ETIMEDOUT);
    CHECK_RC(factum_client_readmodel_pause(cl, name), 0);
    CHECK_RC(factum_client_readmodel_get(cl, name, &st, NULL), 0);
    CHECK(st.state == FACTUM_READMODEL_PAUSED);
    CHECK_RC(factum_client_readmodel_resume(cl, name), 0);
    CHECK_RC(factum_client_readmodel_parked(cl, name, 10, &out), 0);
    CHECK(out && strstr(out, "\"rows\":[]"));
    free(out);
    /* a statement that fails stops it: FAILED_PRECONDITION for waits */
    factum_event_data dup = ev_json("Add", "{\"id\":\"a\",\"n\":9}");
    REQUIRE(factum_client_append(cl, s, FACTUM_ANY, &dup, 1, &res) == 0);
    CHECK_RC(factum_client_readmodel_wait(cl, name, res.last_position, 5000, NULL), FACTUM_EFAULTED);
    CHECK(strstr(factum_client_last_error(cl), "stopped at position") != NULL);
    CHECK_RC(factum_client_readmodel_get(cl, name, &st, NULL), 0);
    CHECK(st.state == FACTUM_READMODEL_FAULTED && st.error_position == res.last_position && st.error[0]);
    /* unknown names, bad input */
    char nosuch[64];
    snprintf(nosuch, sizeof nosuch, "nosuch_%s", tag);
    CHECK_RC(factum_client_readmodel_get(cl, nosuch, &st, NULL), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_readmodel_query(cl, nosuch, "SELECT 1", NULL, NULL, &out), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_readmodel_wait(cl, nosuch, 1, 100, NULL), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_readmodel_get(cl, "", &st, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_client_readmodel_get(cl, "no/such", &st, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_client_readmodel_create(cl, "{\"name\":", 8), FACTUM_EINVAL);
    /* rebuild (it replaces the faulted generation), drop */
    CHECK_RC(factum_client_readmodel_rebuild(cl, name, NULL, 0), 0);
    CHECK_RC(factum_client_readmodel_drop(cl, name), 0);
    CHECK_RC(factum_client_readmodel_drop(cl, name), FACTUM_ENOTFOUND);
    CHECK_RC(factum_client_readmodel_list(cl, find_rm, name), 0);
}

int main(void)
{
    url = getenv("FACTUMD_URL");
    if (!url || !*url) {
        fprintf(stderr, "FACTUMD_URL is not set: run this through tests/integration/client.sh\n");
        return 1;
    }
    const char *poll_mode = getenv("FACTUM_TEST_POLL_CPU");
    if (poll_mode) return poll_cpu_child(poll_mode);
    secure = strstr(url, "tls=false") == NULL;
    const char *q = strchr(url, '?');
    snprintf(query, sizeof query, "%s", q ? q : "?tls=true");
    const char *sep = strstr(url, "://"), *at = strchr(url, '@');
    if (sep && at && at > sep) snprintf(creds, sizeof creds, "%.*s", (int)(at + 1 - (sep + 3)), sep + 3);
    if (secure) printf("secure mode: TLS%s\n", creds[0] ? " with credentials" : "");
    snprintf(tag, sizeof tag, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    int rc = factum_client_connect(url, NULL, &cl);
    if (rc) {
        fprintf(stderr, "cannot connect to %s: %s: %s\n", url, factum_strerror(rc),
                factum_client_last_error(NULL));
        return 1;
    }
    RUN(t_tls);
    RUN(t_version_stats);
    RUN(t_connect_forms);
    RUN(t_poll_for_answer);
    RUN(t_poll_cap);
    RUN(t_expectations);
    RUN(t_idempotent);
    RUN(t_read_stream);
    RUN(t_read_all);
    RUN(t_delete_tombstone);
    RUN(t_metadata);
    RUN(t_large);
    RUN(t_names);
    RUN(t_race);
    RUN(t_shared_client);
    RUN(t_batch_outlives_client);
    RUN(t_append_multi);
    RUN(t_bad_urls);
    RUN(t_bad_endpoints);
    RUN(t_oversized);
    RUN(t_deadline);
    RUN(t_subscribe);
    RUN(t_persistent);
    RUN(t_readmodels);
    factum_client_close(cl);
    return harness_done();
}
