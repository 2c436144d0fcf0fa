/* Unit tests of the scavenger (SV-1..4, ADR 0026): each retention rule
 * ($tb, $maxCount, $maxAge, soft delete, tombstone, older metadata) gives
 * back the bytes of what it made unreadable (du before and after) and
 * leaves readers exactly what they read before; a second scavenge finds
 * nothing to do; history in $scavenges; stop, and a run interrupted by a
 * close resumes at the next open; appends and catch-up readers go on while
 * scavenges run in a loop, every survivor read exactly once, in order. */
#include "harness.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "factum_app.h"
#include "factum_projection.h"
#include "log/log.h"
#include "store/store_int.h"

static char dir[512];

static factum_store *open_dir(uint32_t grace_ms)
{
    factum_options o;
    harness_small_opts(&o);
    o.scavenge_grace_ms = grace_ms;
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static uint64_t du_log(void)
{
    uint64_t total = 0;
    for (int no = 0; no < 10000; no++) {
        char p[600];
        snprintf(p, sizeof p, "%s/log/%08d.seg", dir, no);
        struct stat sb;
        if (stat(p, &sb)) break;
        total += (uint64_t)sb.st_blocks * 512;
    }
    return total;
}

#define RULES 6
static const char *rule_stream[RULES] = {"tb-1", "mc-1", "age-1", "sd-1", "ts-1", "live-1"};
#define PER_STREAM 300
static char big[2048];

static void append_v(factum_store *s, const char *stream, uint64_t v)
{
    char json[2200];
    snprintf(json, sizeof json, "{\"v\":%" PRIu64 ",\"pad\":\"%s\"}", v, big);
    factum_event_data e = harness_event("Happened", json);
    CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
}

static uint64_t frame_len_of(const char *stream, uint64_t v)
{
    char json[2200];
    int n = snprintf(json, sizeof json, "{\"v\":%" PRIu64 ",\"pad\":\"%s\"}", v, big);
    return log_event_frame_len(strlen(stream), strlen("Happened"), (size_t)n, 0);
}

/* Count the events of each rule stream in $all, and check data matches versions. */
static void all_counts(factum_store *s, uint64_t counts[RULES], uint64_t *total)
{
    memset(counts, 0, sizeof(uint64_t) * RULES);
    *total = 0;
    static factum_event evs[128];
    uint64_t from = 1, prev = 0;
    while (1) {
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 128, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            CHECK(evs[i].position > prev);
            prev = evs[i].position;
            (*total)++;
            if (evs[i].version == FACTUM_TOMBSTONE_VERSION) continue; /* a tombstone: no data */
            for (int r = 0; r < RULES; r++)
                if (evs[i].stream_len == strlen(rule_stream[r]) &&
                    !memcmp(evs[i].stream, rule_stream[r], evs[i].stream_len)) {
                    counts[r]++;
                    char want[32];
                    snprintf(want, sizeof want, "{\"v\":%" PRIu64 ",", evs[i].version);
                    CHECK(evs[i].data_len > strlen(want) && !memcmp(evs[i].data, want, strlen(want)));
                }
        }
        if (n < 128) break;
        from = next;
    }
}

static void check_streams(factum_store *s)
{
    static factum_event evs[400];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "tb-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), 0);
    CHECK_EQ_U64(n, 50);
    if (n) CHECK_EQ_U64(evs[0].version, 250);
    CHECK_RC(factum_read_stream(s, "mc-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), 0);
    CHECK_EQ_U64(n, 10);
    if (n) CHECK_EQ_U64(evs[0].version, 290);
    CHECK_RC(factum_read_stream(s, "mc-1", FACTUM_END, FACTUM_BACKWARD, evs, 400, &n, &next), 0);
    CHECK_EQ_U64(n, 10);
    CHECK_RC(factum_read_stream(s, "age-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), 0);
    CHECK_EQ_U64(n, 0);
    CHECK_RC(factum_read_stream(s, "sd-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), FACTUM_ENOTFOUND);
    CHECK_RC(factum_read_stream(s, "ts-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), FACTUM_EDELETED);
    CHECK_RC(factum_read_stream(s, "live-1", 0, FACTUM_FORWARD, evs, 400, &n, &next), 0);
    CHECK_EQ_U64(n, PER_STREAM);
    for (int r = 0; r < RULES; r++) {
        factum_stream_info info;
        CHECK_RC(factum_stream_get_info(s, rule_stream[r], &info), 0);
        if (r == 4)
            CHECK(info.status == FACTUM_STREAM_TOMBSTONED);
        else
            CHECK_EQ_U64((uint64_t)info.last_version, PER_STREAM - 1);
    }
    char *json;
    CHECK_RC(factum_get_stream_metadata(s, "mc-1", &json, NULL, NULL), 0);
    CHECK(strstr(json, "\"$maxCount\":10") != NULL);
    free(json);
}

static int count_cb(void *ctx, const char *name, size_t len, uint64_t created)
{
    (void)name;
    (void)len;
    (void)created;
    (*(int *)ctx)++;
    return 0;
}

static void t_rules(void)
{
    harness_tmpdir(dir, sizeof dir, "scavenge_rules");
    memset(big, 'x', sizeof big - 1);
    factum_store *s = open_dir(0);
    REQUIRE(s);
    /* Interleaved, so that every segment holds some of each. */
    for (uint64_t v = 0; v < PER_STREAM; v++)
        for (int r = 0; r < RULES; r++)
            append_v(s, rule_stream[r], v);
    CHECK_RC(factum_set_stream_metadata(s, "tb-1", FACTUM_ANY, "{\"$tb\":250}", 11, NULL), 0);
    CHECK_RC(factum_set_stream_metadata(s, "mc-1", FACTUM_ANY, "{\"$maxCount\":50}", 16, NULL), 0);
    CHECK_RC(factum_set_stream_metadata(s, "mc-1", FACTUM_ANY, "{\"$maxCount\":20}", 16, NULL), 0);
    CHECK_RC(factum_set_stream_metadata(s, "mc-1", FACTUM_ANY, "{\"$maxCount\":10}", 16, NULL), 0);
    CHECK_RC(factum_set_stream_metadata(s, "age-1", FACTUM_ANY, "{\"$maxAge\":1}", 13, NULL), 0);
    CHECK_RC(factum_delete_stream(s, "sd-1", FACTUM_ANY, NULL), 0);
    CHECK_RC(factum_tombstone_stream(s, "ts-1", FACTUM_ANY, NULL), 0);
    usleep(1200 * 1000); /* age-1's events are older than its $maxAge now */
    check_streams(s);
    uint64_t before[RULES], total_before;
    all_counts(s, before, &total_before);
    for (int r = 0; r < RULES; r++)
        CHECK_EQ_U64(before[r], PER_STREAM);
    factum_chain_head head;
    CHECK_RC(factum_chain_get_head(s, &head), 0);
    uint64_t du_before = du_log();

    /* What goes: frames a reader can no longer get, but each stream's first
     * (a stub) and last (a stub where unreadable), and the tombstone. */
    uint64_t predicted = 0;
    for (uint64_t v = 1; v < PER_STREAM - 1; v++) {
        if (v < 250) predicted += frame_len_of("tb-1", v);
        if (v < 290) predicted += frame_len_of("mc-1", v);
        predicted += frame_len_of("age-1", v) + frame_len_of("sd-1", v) + frame_len_of("ts-1", v);
    }
    predicted += frame_len_of("ts-1", PER_STREAM - 1);

    char id[37];
    factum_scavenge_options so = {.seal = 1};
    CHECK_RC(factum_scavenge_start(s, &so, id), 0);
    char id2[37];
    CHECK_RC(factum_scavenge_start(s, &so, id2), FACTUM_EEXISTS);
    factum_scavenge_status st;
    CHECK_RC(factum_scavenge_wait(s, id, &st), 0);
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
    CHECK(!strcmp(st.id, id));
    CHECK(st.compacted >= 3);
    CHECK_EQ_U64(st.segment, st.segments);
    factum_scavenge_status st1 = st;
    uint64_t du_after = du_log();
    printf("  scavenge: %" PRIu64 " segments compacted, %" PRIu64 " events removed; log %" PRIu64 " -> %" PRIu64
           " bytes (predicted to free %" PRIu64 ")\n",
           st.compacted, st.events_removed, du_before, du_after, predicted);
    /* The generations replaced are released after the grace (0 here) by the
     * scavenge's thread; du counts the files in place. */
    CHECK(du_before - du_after >= predicted * 9 / 10);
    CHECK(st.bytes_before - st.bytes_after >= predicted * 9 / 10);

    check_streams(s);
    uint64_t after[RULES], total_after;
    all_counts(s, after, &total_after);
    CHECK_EQ_U64(after[0], 50);
    CHECK_EQ_U64(after[1], 10);
    CHECK_EQ_U64(after[2], 0);
    CHECK_EQ_U64(after[3], 0);
    CHECK_EQ_U64(after[4], 0); /* the tombstone is a $streamDeleted event in ts-1: counted below */
    CHECK_EQ_U64(after[5], PER_STREAM);
    int streams = 0;
    CHECK_RC(factum_list_streams(s, 0, count_cb, &streams), 0);
    CHECK(streams >= RULES);
    /* As-of reads over scavenged history (TM-2 with holes): the stored
     * events as they stood at a position; none of them fails. */
    for (uint64_t p = 1; p <= total_before + 20; p += 97) {
        factum_asof a = {p, FACTUM_VALID_ANY};
        static factum_event ae[400];
        size_t an;
        uint64_t anext;
        for (int r = 0; r < RULES; r++) {
            int rc = factum_read_stream_asof(s, rule_stream[r], &a, 0, FACTUM_FORWARD, ae, 400, &an, &anext);
            CHECK(rc == 0 || rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED);
            for (size_t i = 0; i < an; i++) CHECK(ae[i].position <= p);
        }
    }
    {
        /* mc-1 as of now: its ten readable events. */
        factum_asof a = {FACTUM_END, FACTUM_VALID_ANY};
        static factum_event ae[400];
        size_t an;
        uint64_t anext;
        CHECK_RC(factum_read_stream_asof(s, "mc-1", &a, 0, FACTUM_FORWARD, ae, 400, &an, &anext), 0);
        CHECK_EQ_U64(an, 10);
    }

    /* A second scavenge finds nothing to do. */
    CHECK_RC(factum_scavenge_start(s, NULL, id2), 0);
    CHECK_RC(factum_scavenge_wait(s, NULL, &st), 0);
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
    CHECK_EQ_U64(st.compacted, 0);
    CHECK_EQ_U64(st.events_removed, 0);
    CHECK_RC(factum_scavenge_get_status(s, "last", &st), 0);
    CHECK(!strcmp(st.id, id2));
    CHECK_RC(factum_scavenge_get_status(s, "nope", &st), FACTUM_ENOTFOUND);
    CHECK_RC(factum_scavenge_stop(s, NULL), FACTUM_ENOTFOUND);

    /* History. */
    static factum_event evs[16];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "$scavenges", 0, FACTUM_FORWARD, evs, 16, &n, &next), 0);
    CHECK_EQ_U64(n, 4);
    if (n == 4) {
        CHECK(evs[0].type_len == 16 && !memcmp(evs[0].type, "$scavengeStarted", 16));
        CHECK(evs[1].type_len == 18 && !memcmp(evs[1].type, "$scavengeCompleted", 18));
        CHECK(memmem(evs[1].data, evs[1].data_len, "\"result\":\"Success\"", 18) != NULL);
    }
    char hs[64];
    snprintf(hs, sizeof hs, "$scavenges-%s", id);
    CHECK_RC(factum_read_stream(s, hs, 0, FACTUM_FORWARD, evs, 16, &n, &next), 0);
    CHECK_EQ_U64(n, 2 + st1.compacted); /* started, a segment each, completed */
    factum_store_close(s);

    factum_verify_options vo = {.chain = 1, .expect = &head};
    factum_verify_report vr;
    CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.receipt_checked);
    CHECK(vr.removed > 0);

    /* Reopened, with the index rebuilt from the log too: the same reads. */
    s = open_dir(0);
    REQUIRE(s);
    check_streams(s);
    all_counts(s, after, &total_after);
    CHECK_EQ_U64(after[1], 10);
    factum_store_close(s);
    char idx[600];
    snprintf(idx, sizeof idx, "%s/index", dir);
    harness_rm_rf(idx);
    s = open_dir(0);
    REQUIRE(s);
    check_streams(s);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* Stop; and a close in the middle leaves it interrupted, resumed at the next open. */
static void t_stop_resume(void)
{
    harness_tmpdir(dir, sizeof dir, "scavenge_stop");
    memset(big, 'y', sizeof big - 1);
    factum_store *s = open_dir(0);
    REQUIRE(s);
    CHECK_RC(factum_set_stream_metadata(s, "mc-1", FACTUM_ANY, "{\"$maxCount\":1}", 15, NULL), 0);
    for (uint64_t v = 0; v < 4000; v++)
        append_v(s, "mc-1", v);
    /* Slow (a throttle of 1 MiB/s over some 8 MiB): stopped on its way. */
    factum_scavenge_options so = {.seal = 1, .throttle_bytes_per_sec = 1u << 20};
    char id[37];
    CHECK_RC(factum_scavenge_start(s, &so, id), 0);
    usleep(300 * 1000);
    CHECK_RC(factum_scavenge_stop(s, "not-this-one"), FACTUM_ENOTFOUND);
    CHECK_RC(factum_scavenge_stop(s, id), 0);
    factum_scavenge_status st;
    CHECK_RC(factum_scavenge_wait(s, id, &st), 0);
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_STOPPED);
    CHECK(st.segment < st.segments);
    char chk[600];
    snprintf(chk, sizeof chk, "%s/scavenge.chk", dir);
    CHECK(access(chk, F_OK) != 0); /* stopped: not resumed */

    CHECK_RC(factum_scavenge_start(s, &so, id), 0);
    usleep(300 * 1000);
    factum_store_close(s); /* interrupted */
    CHECK(access(chk, F_OK) == 0);
    s = open_dir(0);
    REQUIRE(s);
    CHECK_RC(factum_scavenge_wait(s, NULL, &st), 0);
    printf("  resumed: segment %" PRIu64 " of %" PRIu64 ", %" PRIu64 " compacted, %" PRIu64 " skipped, point %" PRIu64 "\n",
           st.segment, st.segments, st.compacted, st.skipped, st.point);
    CHECK(!strcmp(st.id, id));
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
    CHECK(access(chk, F_OK) != 0);
    static factum_event evs[4];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "mc-1", 0, FACTUM_FORWARD, evs, 4, &n, &next), 0);
    CHECK_EQ_U64(n, 1);
    CHECK_EQ_U64(evs[0].version, 3999);
    uint64_t c[RULES], total;
    all_counts(s, c, &total);
    CHECK_EQ_U64(c[1], 1);
    factum_store_close(s);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}

/* ---- online: writers and catch-up readers while scavenges loop -------- */

typedef struct online {
    factum_store *s;
    _Atomic int stop, go;
    _Atomic uint64_t last_pos; /* the reader's, for the main thread */
    _Atomic uint64_t appended;
    uint64_t *seen; /* positions a catch-up reader got, in order */
    size_t n_seen, cap_seen;
    int errors;
} online;

static void *writer_main(void *arg)
{
    online *o = arg;
    uint64_t v[8] = {0};
    h_rng r = {42};
    while (!atomic_load(&o->stop)) {
        int k = (int)h_below(&r, 8);
        char name[16];
        snprintf(name, sizeof name, "w-%d", k);
        append_v(o->s, name, v[k]++);
        atomic_fetch_add(&o->appended, 1);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    online *o = arg;
    static factum_event evs[64];
    uint64_t from = 1, prev = 0;
    /* It starts once a scavenge compacted the start of the log: its catch-up
     * crosses removed positions while more scavenges run. */
    while (!atomic_load(&o->go) && !atomic_load(&o->stop))
        usleep(1000);
    while (!atomic_load(&o->stop)) {
        size_t n;
        uint64_t next;
        int rc = factum_read_all(o->s, from, FACTUM_FORWARD, NULL, 0, evs, 1 + (size_t)(prev % 64), &n, &next);
        if (rc) {
            o->errors++;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (evs[i].position <= prev) o->errors++;
            prev = evs[i].position;
            if (evs[i].stream_len == 3 && evs[i].stream[0] == 'w') {
                char want[32];
                snprintf(want, sizeof want, "{\"v\":%" PRIu64 ",", evs[i].version);
                if (evs[i].data_len < strlen(want) || memcmp(evs[i].data, want, strlen(want))) o->errors++;
            }
            if (o->n_seen == o->cap_seen) {
                o->cap_seen = o->cap_seen ? o->cap_seen * 2 : 65536;
                o->seen = realloc(o->seen, o->cap_seen * sizeof *o->seen);
            }
            o->seen[o->n_seen++] = evs[i].position;
            atomic_store(&o->last_pos, evs[i].position);
        }
        from = next;
        if (n == 0) usleep(1000);
    }
    return NULL;
}

static void t_online(void)
{
    harness_tmpdir(dir, sizeof dir, "scavenge_online");
    memset(big, 'z', 512);
    big[512] = 0;
    /* Grace 200 ms: the reader checks what it read right away (event pointers
     * are valid until then, factum.h), and the replaced files go meanwhile. */
    factum_store *s = open_dir(200);
    REQUIRE(s);
    for (int k = 0; k < 8; k++) {
        char name[16], meta[64];
        snprintf(name, sizeof name, "w-%d", k);
        int n = snprintf(meta, sizeof meta, "{\"$maxCount\":%d}", 5 + k * 20);
        CHECK_RC(factum_set_stream_metadata(s, name, FACTUM_ANY, meta, (size_t)n, NULL), 0);
    }
    online o = {.s = s};
    pthread_t w, r;
    pthread_create(&w, NULL, writer_main, &o);
    pthread_create(&r, NULL, reader_main, &o);
    for (int round = 0; round < 4; round++) {
        while (atomic_load(&o.appended) < (uint64_t)(round + 1) * 4000)
            usleep(10000);
        char id[37];
        factum_scavenge_options so = {.seal = round % 2};
        CHECK_RC(factum_scavenge_start(s, &so, id), 0);
        factum_scavenge_status st;
        CHECK_RC(factum_scavenge_wait(s, id, &st), 0);
        if (st.state != FACTUM_SCAVENGE_COMPLETED) printf("  scavenge: %s\n", factum_strerror(st.error));
        CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
        printf("  round %d: %" PRIu64 " of %" PRIu64 " segments compacted, %" PRIu64 " events removed\n", round,
               st.compacted, st.segments, st.events_removed);
        atomic_store(&o.go, 1);
    }
    /* Let the reader reach the head. */
    for (int i = 0; i < 2000 && atomic_load(&o.last_pos) + 100 < atomic_load(&s->committed_pos); i++)
        usleep(1000);
    atomic_store(&o.stop, 1);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    CHECK_EQ_U64(o.errors, 0);
    /* Every event that survives now, up to where the reader got, it read
     * exactly once and in order (it never saw one twice: positions rose). */
    uint64_t upto = o.n_seen ? o.seen[o.n_seen - 1] : 0;
    static factum_event evs[256];
    uint64_t from = 1;
    size_t j = 0;
    int missing = 0;
    while (from <= upto) {
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 256, &n, &next), 0);
        for (size_t i = 0; i < n && evs[i].position <= upto; i++) {
            while (j < o.n_seen && o.seen[j] < evs[i].position)
                j++;
            if (j == o.n_seen || o.seen[j] != evs[i].position) missing++;
        }
        if (n < 256) break;
        from = next;
    }
    CHECK_EQ_U64(missing, 0);
    printf("  reader saw %zu events up to position %" PRIu64 "\n", o.n_seen, upto);
    free(o.seen);
    factum_store_close(s);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}

/* The system projections ($by_category among them) and an application
 * consumer (its checkpoint in $consumer-<name>, $maxCount 1) run while a
 * writer appends and scavenges loop: the consumer handles each event once,
 * in order, with its data; the projection reaches the head without a fault
 * and links every surviving event of category w into $ce-w, in order. */
typedef struct consumed {
    uint64_t prev, n, errors;
    _Atomic uint64_t last; /* for the main thread (the consumer is its thread's only) */
} consumed;

static int consume_one(void *ctx, struct sqlite3 *db, const factum_event *ev)
{
    consumed *c = ctx;
    (void)db;
    if (ev->position <= c->prev) c->errors++;
    c->prev = ev->position;
    if (ev->stream_len == 3 && ev->stream[0] == 'w') {
        char want[32];
        snprintf(want, sizeof want, "{\"v\":%" PRIu64 ",", ev->version);
        if (ev->data_len < strlen(want) || memcmp(ev->data, want, strlen(want))) c->errors++;
    }
    c->n++;
    atomic_store(&c->last, ev->position);
    return 0;
}

typedef struct consumer_run {
    factum_consumer *c;
    _Atomic int stop;
    int poll_errors;
} consumer_run;

static void *consumer_main(void *arg)
{
    consumer_run *r = arg;
    while (!atomic_load(&r->stop)) {
        size_t n;
        if (factum_consumer_poll(r->c, 20, &n)) r->poll_errors++;
    }
    return NULL;
}

static void t_online_consumers(void)
{
    harness_tmpdir(dir, sizeof dir, "scavenge_consumers");
    memset(big, 'c', 512);
    big[512] = 0;
    factum_store *s = open_dir(200);
    REQUIRE(s);
    for (int k = 0; k < 8; k++) {
        char name[16], meta[64];
        snprintf(name, sizeof name, "w-%d", k);
        int n = snprintf(meta, sizeof meta, "{\"$maxCount\":%d}", 5 + k * 20);
        CHECK_RC(factum_set_stream_metadata(s, name, FACTUM_ANY, meta, (size_t)n, NULL), 0);
    }
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.create_system = 1;
    po.start_system = 1;
    po.run_user = 0;
    factum_projections *pm = NULL;
    CHECK_RC(factum_projections_open(s, &po, &pm), 0);
    REQUIRE(pm);
    consumed got = {0};
    factum_consumer_options co;
    factum_consumer_options_init(&co);
    co.name = "scavenge-test";
    co.handle = consume_one;
    co.ctx = &got;
    co.batch_events = 64;
    consumer_run cr = {0};
    CHECK_RC(factum_consumer_open(s, &co, &cr.c), 0);
    REQUIRE(cr.c);
    online o = {.s = s};
    pthread_t w, ct;
    pthread_create(&w, NULL, writer_main, &o);
    pthread_create(&ct, NULL, consumer_main, &cr);
    for (int round = 0; round < 4; round++) {
        while (atomic_load(&o.appended) < (uint64_t)(round + 1) * 3000)
            usleep(10000);
        char id[37];
        factum_scavenge_options so = {.seal = round % 2};
        CHECK_RC(factum_scavenge_start(s, &so, id), 0);
        factum_scavenge_status st;
        CHECK_RC(factum_scavenge_wait(s, id, &st), 0);
        CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
        printf("  round %d: %" PRIu64 " segments compacted, %" PRIu64 " events removed\n", round, st.compacted,
               st.events_removed);
    }
    atomic_store(&o.stop, 1);
    pthread_join(w, NULL);
    uint64_t head = atomic_load(&s->committed_pos);
    /* The consumer and the projection reach the head. */
    uint64_t last_w = 0; /* the position of the writer's last event */
    for (int k = 0; k < 8; k++) {
        char name[16];
        snprintf(name, sizeof name, "w-%d", k);
        factum_event e;
        size_t n;
        if (!factum_read_stream(s, name, FACTUM_END, FACTUM_BACKWARD, &e, 1, &n, NULL) && n && e.position > last_w)
            last_w = e.position;
    }
    for (int i = 0; i < 3000 && atomic_load(&got.last) < last_w; i++)
        usleep(10000);
    CHECK(atomic_load(&got.last) >= last_w);
    atomic_store(&cr.stop, 1);
    pthread_join(ct, NULL);
    CHECK_EQ_U64(cr.poll_errors, 0);
    CHECK_EQ_U64(got.errors, 0);
    CHECK(got.n > 0);
    CHECK_EQ_U64(factum_projection_wait(pm, "$by_category", head, 30000), 1);
    /* $ce-w: a link that resolves for every w event still readable (its
     * stream's read returns it), in order of position. */
    static factum_event evs[256];
    uint64_t survivors = 0;
    for (int k = 0; k < 8; k++) {
        char name[16];
        snprintf(name, sizeof name, "w-%d", k);
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_stream(s, name, 0, FACTUM_FORWARD, evs, 256, &n, &next), 0);
        survivors += n; /* $maxCount 5..145: all in one page */
    }
    uint64_t linked = 0, prev = 0, gone = 0, bad = 0, ver = 0;
    for (;;) {
        size_t n;
        uint64_t next;
        int rc = factum_read_stream(s, "$ce-w", ver, FACTUM_FORWARD, evs, 256, &n, &next);
        CHECK_RC(rc, 0);
        if (rc) break;
        for (size_t i = 0; i < n; i++) {
            factum_event target;
            int r = factum_resolve_link(s, &evs[i], &target);
            if (r == FACTUM_ENOTFOUND) {
                gone++;
                continue;
            }
            if (r || target.position <= prev || target.stream_len != 3 || target.stream[0] != 'w') bad++;
            prev = target.position;
            linked++;
        }
        if (n < 256 || next == FACTUM_END) break;
        ver = next;
    }
    printf("  consumer handled %" PRIu64 " events; $ce-w: %" PRIu64 " links to readable events (of %" PRIu64
           "), %" PRIu64 " to removed or expired ones\n",
           got.n, linked, survivors, gone);
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(linked, survivors);
    factum_consumer_close(cr.c);
    factum_projections_close(pm);
    free(o.seen);
    factum_store_close(s);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}

/* A backup while a writer appends and a scavenge runs, then a restore: the
 * restored store holds the backup's position with the live store's chain
 * head there, and every event the live store still has up to there, the
 * same. */
static void t_backup_during(void)
{
    harness_tmpdir(dir, sizeof dir, "scavenge_backup");
    memset(big, 'b', 1024);
    big[1024] = 0;
    char bdir[600], rdir[600];
    snprintf(bdir, sizeof bdir, "%s-b", dir);
    snprintf(rdir, sizeof rdir, "%s-r", dir);
    harness_rm_rf(bdir);
    harness_rm_rf(rdir);
    factum_store *s = open_dir(0);
    REQUIRE(s);
    CHECK_RC(factum_set_stream_metadata(s, "w-0", FACTUM_ANY, "{\"$maxCount\":3}", 15, NULL), 0);
    for (uint64_t v = 0; v < 3000; v++)
        append_v(s, "w-0", v);
    online o = {.s = s};
    pthread_t w;
    pthread_create(&w, NULL, writer_main, &o);
    factum_scavenge_options so = {.seal = 1, .throttle_bytes_per_sec = 4u << 20};
    char id[37];
    CHECK_RC(factum_scavenge_start(s, &so, id), 0);
    usleep(200 * 1000);
    factum_backup_report br;
    CHECK_RC(factum_backup(s, bdir, NULL, &br), 0);
    CHECK(br.verified);
    factum_scavenge_status st;
    CHECK_RC(factum_scavenge_wait(s, id, &st), 0);
    if (st.state != FACTUM_SCAVENGE_COMPLETED) printf("  scavenge: %s\n", factum_strerror(st.error));
    CHECK_EQ_U64(st.state, FACTUM_SCAVENGE_COMPLETED);
    atomic_store(&o.stop, 1);
    pthread_join(w, NULL);
    factum_backup_report rr;
    CHECK_RC(factum_restore(bdir, rdir, NULL, &rr), 0);
    CHECK_EQ_U64(rr.position, br.position);
    CHECK(memcmp(rr.head.hash, br.head.hash, 32) == 0);
    /* The live store's chain passes through the backup's head. */
    factum_store_close(s);
    factum_verify_options vo = {.chain = 1, .expect = &br.head};
    factum_verify_report vr;
    CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.receipt_checked);
    /* Every event live up to the backup's position is in the restore, equal. */
    s = open_dir(0);
    REQUIRE(s);
    factum_options ro;
    harness_small_opts(&ro);
    ro.read_only = 1;
    factum_store *r;
    CHECK_RC(factum_store_open(rdir, &ro, &r), 0);
    static factum_event evs[128];
    uint64_t from = 1, checked = 0;
    while (from <= br.position) {
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 128, &n, &next), 0);
        for (size_t i = 0; i < n && evs[i].position <= br.position; i++) {
            factum_event e;
            CHECK_RC(factum_read_position(r, evs[i].position, &e), 0);
            CHECK(e.data_len == evs[i].data_len && !memcmp(e.data, evs[i].data, e.data_len));
            checked++;
        }
        if (n < 128) break;
        from = next;
    }
    CHECK(checked > 0);
    factum_store_close(r);
    factum_store_close(s);
    harness_rm_rf(bdir);
    harness_rm_rf(rdir);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_rules);
    RUN(t_backup_during);
    RUN(t_stop_resume);
    RUN(t_online);
    RUN(t_online_consumers);
    return harness_done();
}
