/* Unit tests of the store's basic semantics: appends with each kind of
 * expectation, reads both ways, $all, reopen. */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>

#include "base/base.h"
#include "store/store_int.h"

static char dir[512];

static factum_store *open_fresh(const char *name)
{
    factum_options o;
    harness_small_opts(&o);
    harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void t_append_read(void)
{
    factum_store *s = open_fresh("append_read");
    REQUIRE(s);
    factum_event_data ev[3] = {harness_event("A", "{\"n\":1}"), harness_event("B", "{\"n\":2}"),
                               harness_event("C", "{\"n\":3}")};
    factum_append_result r;
    CHECK_RC(factum_append(s, "account-1", FACTUM_NO_STREAM, ev, 3, &r), 0);
    CHECK_EQ_U64(r.first_version, 0);
    CHECK_EQ_U64(r.last_version, 2);
    CHECK_EQ_U64(r.first_position, 1);
    CHECK_EQ_U64(r.last_position, 3);
    factum_event out[10];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "account-1", 0, FACTUM_FORWARD, out, 10, &n, &next), 0);
    CHECK_EQ_U64(n, 3);
    CHECK(next == FACTUM_END);
    CHECK(n == 3 && !strcmp(out[1].type, "B") && out[1].version == 1 && out[1].position == 2);
    CHECK(n == 3 && out[2].data_len == 7 && !memcmp(out[2].data, "{\"n\":3}", 7));
    CHECK(n == 3 && !memcmp(out[0].id, ev[0].id, 16));
    CHECK_RC(factum_read_stream(s, "account-1", FACTUM_END, FACTUM_BACKWARD, out, 2, &n, &next), 0);
    CHECK_EQ_U64(n, 2);
    CHECK(n == 2 && out[0].version == 2 && out[1].version == 1);
    CHECK_EQ_U64(next, 0);
    CHECK_RC(factum_read_stream(s, "nope", 0, FACTUM_FORWARD, out, 10, &n, &next), FACTUM_ENOTFOUND);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_expectations(void)
{
    factum_store *s = open_fresh("expect");
    REQUIRE(s);
    factum_event_data e = harness_event("X", "{}");
    factum_append_result r;
    CHECK_RC(factum_append(s, "s", FACTUM_STREAM_EXISTS, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == FACTUM_NO_STREAM);
    CHECK_RC(factum_append(s, "s", 5, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK_RC(factum_append(s, "s", FACTUM_NO_STREAM, &e, 1, &r), 0);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_NO_STREAM, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 0);
    CHECK_RC(factum_append(s, "s", 0, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 1);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_STREAM_EXISTS, &e, 1, &r), 0);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", FACTUM_ANY, &e, 1, &r), 0);
    CHECK_EQ_U64(r.last_version, 3);
    /* The same event again, expected at the same place: an idempotent replay. */
    CHECK_RC(factum_append(s, "s", 2, &e, 1, &r), 0);
    CHECK(r.idempotent == 1 && r.last_version == 3);
    e = harness_event("X", "{}");
    CHECK_RC(factum_append(s, "s", 2, &e, 1, &r), FACTUM_EWRONGVERSION);
    CHECK(r.actual_version == 3);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static void t_reopen(void)
{
    factum_store *s = open_fresh("reopen");
    REQUIRE(s);
    char json[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(json, sizeof json, "{\"i\":%d}", i);
        factum_event_data e = harness_event("E", json);
        char stream[32];
        snprintf(stream, sizeof stream, "st-%d", i % 7);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
    CHECK_RC(factum_store_close(s), 0);
    factum_options o;
    harness_small_opts(&o);
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "st-3", &info), 0);
    CHECK_EQ_U64(info.last_version, 3000 / 7 - 1 + (3 < 3000 % 7));
    factum_event out[1000];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, NULL, 0, out, 1000, &n, &next), 0);
    CHECK_EQ_U64(n, 1000);
    CHECK_EQ_U64(next, 1001);
    CHECK(n == 1000 && out[999].position == 1000);
    uint64_t count;
    CHECK_RC(factum_stream_count(s, &count), 0);
    CHECK_EQ_U64(count, 7);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* A read-only open after a crash replays the log tail in memory and serves
 * all of it, without writing anything. */
static void t_read_only_after_crash(void)
{
    factum_store *s = open_fresh("ro");
    REQUIRE(s);
    for (int i = 0; i < 50; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, "ro", FACTUM_ANY, &e, 1, NULL), 0);
    }
    store_abandon(s); /* no checkpoint: the index must come from the log */
    factum_options o;
    harness_small_opts(&o);
    o.read_only = 1;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_event out[64];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_all(s, 1, FACTUM_FORWARD, NULL, 0, out, 64, &n, &next), 0);
    CHECK_EQ_U64(n, 50);
    CHECK_RC(factum_read_stream(s, "ro", 0, FACTUM_FORWARD, out, 64, &n, &next), 0);
    CHECK_EQ_U64(n, 50);
    factum_event_data e = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "ro", FACTUM_ANY, &e, 1, NULL), FACTUM_EREADONLY);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* The index is derived: removed or damaged, it is rebuilt from the log, and
 * a long rebuild is written out as tables (memory stays bounded). */
static void t_index_rebuild(void)
{
    factum_store *s = open_fresh("rebuild");
    REQUIRE(s);
    for (int i = 0; i < 3000; i++) {
        factum_event_data e = harness_event("E", "{}");
        char stream[16];
        snprintf(stream, sizeof stream, "r-%d", i % 10);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_store_close(s);
    char p[700];
    factum_options o;
    harness_small_opts(&o);
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            snprintf(p, sizeof p, "%s/index", dir);
            harness_rm_rf(p);
        } else {
            snprintf(p, sizeof p, "%s/index/MANIFEST", dir);
            FILE *f = fopen(p, "r+");
            REQUIRE(f);
            fputs("garbage", f);
            fclose(f);
        }
        CHECK_RC(factum_store_open(dir, &o, &s), 0);
        REQUIRE(s);
        factum_stats st;
        factum_store_get_stats(s, &st);
        CHECK_EQ_U64(st.last_position, 3000);
        CHECK(st.index_tables > 0); /* the replay was flushed to tables */
        CHECK(st.memtable_entries <= 2 * o.memtable_entries);
        factum_event out[400];
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_stream(s, "r-7", 0, FACTUM_FORWARD, out, 400, &n, &next), 0);
        CHECK_EQ_U64(n, 300);
        uint64_t count;
        factum_stream_count(s, &count);
        CHECK_EQ_U64(count, 10);
        factum_store_close(s);
    }
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}


typedef struct logcap {
    char last[512];
} logcap;

static void capture_log(void *ctx, int level, const char *msg)
{
    logcap *c = ctx;
    if (level == FACTUM_LOG_ERROR) snprintf(c->last, sizeof c->last, "%s", msg);
}

/* A store of `n` events in 1 MiB segments (about 2.3 KiB each: several
 * segments), closed cleanly so that the index checkpoint covers it all. */
static void make_store(const char *name, int n)
{
    factum_store *s = open_fresh(name);
    if (!s) return;
    static char pad[2048];
    memset(pad, 'p', sizeof pad - 20);
    char json[2100];
    snprintf(json, sizeof json, "{\"pad\":\"%s\"}", pad);
    for (int i = 0; i < n; i++) {
        factum_event_data e = harness_event("E", json);
        CHECK_RC(factum_append(s, "m", FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_store_close(s);
}

static int open_logged(logcap *c, int read_only, factum_store **out)
{
    factum_options o;
    harness_small_opts(&o);
    o.read_only = read_only;
    o.log_fn = capture_log;
    o.log_ctx = c;
    c->last[0] = 0;
    *out = NULL;
    return factum_store_open(dir, &o, out);
}

/* An existing store whose log directory or last segment is gone is refused
 * with a clear error; it is never given a fresh log under its old index. */
static void t_missing_log_refused(void)
{
    char p[700];
    logcap c;
    factum_store *s;
    /* The whole log/ directory. */
    make_store("nolog", 50);
    snprintf(p, sizeof p, "%s/log", dir);
    harness_rm_rf(p);
    for (int ro = 0; ro < 2; ro++) {
        CHECK_RC(open_logged(&c, ro, &s), FACTUM_ECORRUPT);
        CHECK(strstr(c.last, "log") && strstr(c.last, "missing"));
        if (s) factum_store_close(s);
    }
    struct stat st;
    CHECK(stat(p, &st) != 0); /* nothing was created */
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), FACTUM_ECORRUPT);
    harness_rm_rf(dir);

    /* Every segment, the directory kept. */
    make_store("nosegs", 50);
    snprintf(p, sizeof p, "%s/log/00000000.seg", dir);
    CHECK(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/log/00000001.seg", dir);
    unlink(p); /* prepared ahead, maybe */
    CHECK_RC(open_logged(&c, 0, &s), FACTUM_ECORRUPT);
    CHECK(strstr(c.last, "segment") != NULL);
    if (s) factum_store_close(s);
    snprintf(p, sizeof p, "%s/log/00000000.seg", dir);
    CHECK(stat(p, &st) != 0);
    harness_rm_rf(dir);

    /* The last segments, which the index checkpoint covers. */
    make_store("lastseg", 1000); /* about 2.3 MB: segments 0..2 hold data */
    int last = -1;
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/log/%08d.seg", dir, i);
        if (stat(p, &st) == 0) last = i;
    }
    REQUIRE(last >= 2);
    for (int i = 2; i <= last; i++) {
        snprintf(p, sizeof p, "%s/log/%08d.seg", dir, i);
        CHECK(unlink(p) == 0);
    }
    for (int ro = 0; ro < 2; ro++) {
        CHECK_RC(open_logged(&c, ro, &s), FACTUM_ECORRUPT);
        CHECK(strstr(c.last, "segment 2") && strstr(c.last, "missing"));
        if (s) factum_store_close(s);
    }
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), FACTUM_ECORRUPT);
    harness_rm_rf(dir);

    /* A log that does not hold what the index covers: segment 0 is there,
     * valid, but its frames are gone (zeroed). */
    make_store("otherlog", 30);
    snprintf(p, sizeof p, "%s/log/00000000.seg", dir);
    {
        int fd = open(p, O_RDWR);
        static uint8_t zeros[(1 << 20) - 4096];
        CHECK(pwrite(fd, zeros, sizeof zeros, 4096) == (ssize_t)sizeof zeros);
        close(fd);
    }
    CHECK_RC(open_logged(&c, 0, &s), FACTUM_ECORRUPT);
    CHECK(strstr(c.last, "index checkpoint") != NULL);
    if (s) factum_store_close(s);
    harness_rm_rf(dir);
}

/* A brand-new directory is still initialised; so is one that holds only
 * what a creation interrupted by a crash leaves behind (no FACTUM yet,
 * segment 0 without events). A directory whose log holds events is never
 * taken for such leftovers. */
static void t_creation_and_leftovers(void)
{
    char p[700];
    factum_store *s = open_fresh("create");
    REQUIRE(s);
    factum_store_close(s);
    /* Leftovers: no FACTUM, an empty segment 0, an empty index/. */
    snprintf(p, sizeof p, "%s/FACTUM", dir);
    CHECK(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/index", dir);
    harness_rm_rf(p);
    CHECK(mkdir(p, 0755) == 0);
    factum_options o;
    harness_small_opts(&o);
    s = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_event_data e = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "x", FACTUM_NO_STREAM, &e, 1, NULL), 0);
    factum_store_close(s);
    /* Now segment 0 holds an event: without FACTUM it is not ours to reuse. */
    snprintf(p, sizeof p, "%s/FACTUM", dir);
    CHECK(unlink(p) == 0);
    CHECK_RC(factum_store_open(dir, &o, &s), FACTUM_ENOTSTORE);
    snprintf(p, sizeof p, "%s/log/00000000.seg", dir);
    struct stat st;
    CHECK(stat(p, &st) == 0);
    harness_rm_rf(dir);
}


/* Rewrite the header's format version of a segment or table file. */
static void set_file_format(const char *path, int table)
{
    int fd = open(path, O_RDWR);
    uint8_t h[4096];
    CHECK(fd >= 0 && pread(fd, h, 4096, 0) == 4096);
    base_put32(h + 8, 1);
    if (table) {
        memset(h + 216, 0, 4096 - 216); /* format 1: no partition fields */
        base_put32(h + 216, base_crc32c(0, h, 216));
    } else {
        base_put32(h + 56, base_crc32c(0, h, 56));
    }
    CHECK(pwrite(fd, h, 4096, 0) == 4096);
    close(fd);
}

/* A store of format 1 (identity, segments and index tables saying 1, and
 * batches without hashes, LOG-7) is read and written by this library. */
static void t_reads_format_1(void)
{
    log_new_segment_format = 1; /* write segments as an older library did */
    factum_store *s = open_fresh("format1");
    log_new_segment_format = FACTUM_FORMAT_VERSION;
    REQUIRE(s);
    for (int i = 0; i < 3000; i++) {
        factum_event_data e = harness_event("E", "{}");
        char stream[16];
        snprintf(stream, sizeof stream, "f-%d", i % 10);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_store_close(s);
    char p[1200];
    int tables = 0;
    DIR *d;
    struct dirent *de;
    snprintf(p, sizeof p, "%s/index", dir);
    REQUIRE((d = opendir(p)));
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".tbl")) continue;
        snprintf(p, sizeof p, "%s/index/%s", dir, de->d_name);
        set_file_format(p, 1);
        tables++;
    }
    closedir(d);
    CHECK(tables > 0);
    snprintf(p, sizeof p, "%s/log", dir);
    REQUIRE((d = opendir(p)));
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".seg")) continue;
        snprintf(p, sizeof p, "%s/log/%s", dir, de->d_name);
        set_file_format(p, 0);
    }
    closedir(d);
    {
        snprintf(p, sizeof p, "%s/FACTUM", dir);
        FILE *f = fopen(p, "r");
        REQUIRE(f);
        char buf[1024] = {0};
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        (void)len;
        char *fmt = strstr(buf, "\nformat ");
        REQUIRE(fmt);
        fmt[8] = '1';
        char *crc = strstr(buf, "crc ");
        REQUIRE(crc);
        sprintf(crc, "crc %08x\n", base_crc32c(0, buf, (size_t)(crc - buf)));
        f = fopen(p, "w");
        fputs(buf, f);
        fclose(f);
    }
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    factum_options o;
    harness_small_opts(&o);
    s = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    REQUIRE(s);
    factum_event out[400];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_stream(s, "f-3", 0, FACTUM_FORWARD, out, 400, &n, &next), 0);
    CHECK_EQ_U64(n, 300);
    factum_event_data e = harness_event("E", "{}");
    factum_append_result r;
    CHECK_RC(factum_append(s, "f-3", 299, &e, 1, &r), 0); /* found through format-1 tables */
    CHECK_EQ_U64(r.first_position, 3001);
    factum_store_close(s);
    CHECK_RC(factum_verify(dir, NULL, NULL, NULL), 0);
    harness_rm_rf(dir);
}


/* A read-only open replays the log after the index checkpoint into memory
 * (it may not write tables): bounded to what a writer with the same
 * memtable_entries can leave behind, two memtables. A longer tail (here: a
 * deleted index) is refused with FACTUM_EREADONLY, not read into memory. */
static void t_read_only_replay_bounded(void)
{
    factum_store *s = open_fresh("robound");
    REQUIRE(s);
    for (int i = 0; i < 5000; i++) {
        factum_event_data e = harness_event("E", "{}");
        CHECK_RC(factum_append(s, "rb", FACTUM_ANY, &e, 1, NULL), 0);
    }
    store_abandon(s); /* a crash: the tail a writer leaves is read back */
    logcap c;
    CHECK_RC(open_logged(&c, 1, &s), 0);
    factum_stats st;
    if (s) {
        factum_store_get_stats(s, &st);
        CHECK_EQ_U64(st.last_position, 5000);
        CHECK(st.memtable_entries <= 2 * 1024 + 1);
        factum_store_close(s);
    }
    /* Without an index the whole log is the tail. */
    char p[700];
    snprintf(p, sizeof p, "%s/index", dir);
    harness_rm_rf(p);
    CHECK_RC(open_logged(&c, 1, &s), FACTUM_EREADONLY);
    CHECK(strstr(c.last, "read-write") != NULL);
    if (s) factum_store_close(s);
    /* A larger memtable_entries allows more. */
    factum_options o;
    harness_small_opts(&o);
    o.read_only = 1;
    o.memtable_entries = 4096;
    s = NULL;
    CHECK_RC(factum_store_open(dir, &o, &s), 0);
    if (s) {
        factum_event out[8];
        size_t n;
        uint64_t next;
        CHECK_RC(factum_read_stream(s, "rb", 4990, FACTUM_FORWARD, out, 8, &n, &next), 0);
        CHECK_EQ_U64(n, 8);
        factum_store_close(s);
    }
    /* A read-write open brings the index up to date; then read-only is fine. */
    CHECK_RC(open_logged(&c, 0, &s), 0);
    if (s) factum_store_close(s);
    CHECK_RC(open_logged(&c, 1, &s), 0);
    if (s) factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_missing_log_refused);
    RUN(t_reads_format_1);
    RUN(t_creation_and_leftovers);
    RUN(t_index_rebuild);
    RUN(t_read_only_after_crash);
    RUN(t_read_only_replay_bounded);
    RUN(t_append_read);
    RUN(t_expectations);
    RUN(t_reopen);
    return harness_done();
}
