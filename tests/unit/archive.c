/* Unit tests of the archive tier (LOG-9, AR-1..4, ADR 0028): sealed
 * segments copied to the archive and verified; local files dropped as the
 * retention options say, their events then read from the archive with the
 * same bytes at the same addresses (pointers held across the drop still
 * read them); the store finds its archive again at the next open without
 * being told; a failing archive costs nothing; a scavenge compacts archived
 * segments in the archive, so an erasure leaves no byte of the erased data
 * in either directory; backup and restore of a store whose segments are
 * archived; writers, catch-up readers, archive passes and scavenges at
 * once. */
#include "harness.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "io/io.h"
#include "log/log.h"
#include "store/store_int.h"

static char dir[512], adir[512];

static void opts(factum_options *o, uint64_t retain_bytes, uint64_t retain_ms)
{
    harness_small_opts(o);
    o->archive_dir = adir;
    o->archive_retain_bytes = retain_bytes;
    o->archive_retain_ms = retain_ms;
    o->archive_interval_ms = 0; /* passes only when the test asks */
    o->scavenge_grace_ms = 0;
}

static factum_store *open_with(const factum_options *o)
{
    factum_store *s = NULL;
    int rc = factum_store_open(dir, o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

/* Event i of stream "s-<i % 8>": data {"i":i,"pad":"..."} (about 1 KiB). */
static void append_range(factum_store *s, uint64_t from, uint64_t to)
{
    static char pad[1000];
    memset(pad, 'a', sizeof pad - 1);
    for (uint64_t i = from; i < to; i++) {
        char json[1100], stream[32];
        snprintf(json, sizeof json, "{\"i\":%" PRIu64 ",\"pad\":\"%s\"}", i, pad);
        snprintf(stream, sizeof stream, "s-%" PRIu64, i % 8);
        factum_event_data e = harness_event("Happened", json);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
}

/* $all holds events 0..n-1 of append_range, in order, each with its data. */
static void check_all(factum_store *s, uint64_t n)
{
    static factum_event evs[256];
    uint64_t from = 1, seen = 0;
    while (1) {
        size_t got;
        uint64_t next;
        CHECK_RC(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, evs, 256, &got, &next), 0);
        for (size_t k = 0; k < got; k++) {
            if (evs[k].stream_len < 2 || memcmp(evs[k].stream, "s-", 2)) continue; /* $-streams */
            char want[40];
            int w = snprintf(want, sizeof want, "{\"i\":%" PRIu64 ",", seen);
            if (!(evs[k].data_len > (size_t)w && !memcmp(evs[k].data, want, (size_t)w))) {
                CHECK(!"an event differs from what was appended");
                return;
            }
            seen++;
        }
        if (got < 256) break;
        from = next;
    }
    CHECK_EQ_U64(seen, n);
}

static int seg_exists(const char *d, uint64_t no)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%08" PRIu64 ".seg", d, no);
    return access(p, F_OK) == 0;
}

static void store_arch(factum_store *s, char *out, size_t n)
{
    char u[40];
    factum_uuid_format(s->uuid, u);
    snprintf(out, n, "%s/%s", adir, u);
}

static void t_archive_and_drop(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_drop");
    harness_tmpdir(adir, sizeof adir, "archive_drop_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    factum_options o;
    opts(&o, 0, 0); /* drop as soon as archived */
    factum_store *s = open_with(&o);
    REQUIRE(s);
    append_range(s, 0, 4000); /* about 4 MiB: 4 sealed 1 MiB segments */
    /* A pointer read before the drop, and what it reads now. */
    factum_event early;
    CHECK_RC(factum_read_position(s, 1, &early), 0);
    char early_copy[1100];
    REQUIRE(early.data_len < sizeof early_copy);
    memcpy(early_copy, early.data, early.data_len);
    factum_archive_status st;
    CHECK_RC(factum_archive_run(s, &st), 0);
    printf("  %" PRIu64 " sealed segments: %" PRIu64 " copied (%" PRIu64 " bytes), %" PRIu64 " dropped\n",
           st.segments, st.copied, st.bytes_copied, st.dropped);
    CHECK(st.segments >= 3);
    CHECK_EQ_U64(st.copied, st.segments);
    CHECK_EQ_U64(st.dropped, st.segments);
    CHECK_EQ_U64(st.archive_only, st.segments);
    CHECK_EQ_U64(st.local_only + st.archived, 0);
    CHECK_EQ_U64(st.bytes_local, 0);
    CHECK_EQ_U64(st.last_error, 0);
    char arch[700], logd[600];
    store_arch(s, arch, sizeof arch);
    snprintf(logd, sizeof logd, "%s/log", dir);
    for (uint64_t no = 0; no < st.segments; no++) {
        CHECK(!seg_exists(logd, no));
        CHECK(seg_exists(arch, no));
    }
    CHECK(seg_exists(logd, st.segments)); /* the active one stays */
    /* The same bytes at the same address. */
    CHECK(!memcmp(early.data, early_copy, early.data_len));
    check_all(s, 4000);
    /* A second pass has nothing to do. */
    uint64_t segs = st.segments;
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK_EQ_U64(st.copied, segs);
    CHECK_EQ_U64(st.dropped, segs);
    char json[FACTUM_ARCHIVE_JSON_MAX];
    int jl = factum_archive_status_json(&st, json, sizeof json);
    CHECK(jl > 0 && jl < (int)sizeof json);
    CHECK(strstr(json, "\"archiveOnly\":") && strstr(json, "\"enabled\":true"));
    /* More appends, another pass. */
    append_range(s, 4000, 6000);
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK(st.segments > segs && st.archive_only == st.segments);
    check_all(s, 6000);
    factum_chain_head head;
    CHECK_RC(factum_chain_get_head(s, &head), 0);
    CHECK_RC(factum_store_close(s), 0);

    /* AR-4: the store recorded its archive; open without the option. */
    factum_options plain;
    harness_small_opts(&plain);
    s = open_with(&plain);
    REQUIRE(s);
    check_all(s, 6000);
    CHECK_RC(factum_archive_run(s, NULL), FACTUM_EINVAL); /* no archiving without the option */
    CHECK_RC(factum_store_close(s), 0);
    /* Offline: verify the chain through both directories. */
    factum_verify_options vo = {.chain = 1, .expect = &head};
    factum_verify_report vr;
    CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.receipt_checked);
    /* The archive gone: the open says what is missing, and loses nothing. */
    char moved[600];
    snprintf(moved, sizeof moved, "%s.away", adir);
    REQUIRE(rename(adir, moved) == 0);
    factum_store *bad = NULL;
    CHECK_RC(factum_store_open(dir, &plain, &bad), FACTUM_ECORRUPT);
    CHECK(bad == NULL);
    /* Opened once with the archive where it is now, the store records that
     * (AR-4): the next open without the option finds it there. */
    char first[600];
    snprintf(first, sizeof first, "%s", adir);
    snprintf(adir, sizeof adir, "%.500s", moved);
    opts(&o, 0, 0);
    s = open_with(&o);
    REQUIRE(s);
    check_all(s, 6000);
    CHECK_RC(factum_store_close(s), 0);
    s = open_with(&plain);
    REQUIRE(s);
    check_all(s, 6000);
    factum_store_close(s);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
    harness_rm_rf(first);
}

static void t_retention(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_retain");
    harness_tmpdir(adir, sizeof adir, "archive_retain_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    factum_options o;
    /* Keep local the segments followed by less than 2.5 MiB of the log. */
    opts(&o, (5u << 20) / 2, 0);
    factum_store *s = open_with(&o);
    REQUIRE(s);
    append_range(s, 0, 6000);
    factum_archive_status st;
    CHECK_RC(factum_archive_run(s, &st), 0);
    printf("  retain 2.5 MiB: %" PRIu64 " sealed, %" PRIu64 " archived and local, %" PRIu64 " archive only\n",
           st.segments, st.archived, st.archive_only);
    CHECK_EQ_U64(st.copied, st.segments);
    CHECK_EQ_U64(st.local_only, 0);
    CHECK(st.archive_only >= 2);
    CHECK(st.archived >= 2);
    /* Exactly the segments followed by >= 2.5 MiB went. */
    uint64_t tail = atomic_load(&s->log_end);
    for (uint64_t no = 0; no < st.segments; no++) {
        log_seg *g = log_seg_get(s->log, no);
        int far = tail - (no + 1) * s->seg_size >= o.archive_retain_bytes;
        CHECK(atomic_load(&g->where) == (far ? LOG_ARCHIVE : LOG_LOCAL));
    }
    check_all(s, 6000);
    CHECK_RC(factum_store_close(s), 0);
    /* By age: nothing sealed is an hour old, so nothing more goes. */
    opts(&o, 0, 3600 * 1000);
    s = open_with(&o);
    REQUIRE(s);
    append_range(s, 6000, 9000);
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK_EQ_U64(st.dropped, 0);
    CHECK(st.copied >= 2); /* what was sealed since */
    CHECK_EQ_U64(st.local_only, 0);
    CHECK_RC(factum_store_close(s), 0);
    /* Keep local: copies only. */
    opts(&o, FACTUM_ARCHIVE_KEEP_LOCAL, 0);
    s = open_with(&o);
    REQUIRE(s);
    append_range(s, 9000, 11000);
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK_EQ_U64(st.dropped, 0);
    CHECK_EQ_U64(st.local_only, 0);
    check_all(s, 11000);
    factum_store_close(s);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
}

/* The archive failing (its writes, its fdatasync, the directory missing)
 * drops nothing; the next pass after it mends does the work. */
static void t_failure(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_fail");
    harness_tmpdir(adir, sizeof adir, "archive_fail_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    factum_options o;
    opts(&o, 0, 0);
    io_fault *f = io_fault_new(1);
    factum_store *s = NULL;
    CHECK_RC(store_open_io(dir, &o, io_fault_env(f), &s), 0);
    REQUIRE(s);
    append_range(s, 0, 4000);
    io_fault_target(f, "archive_fail_arch");
    io_fault_fail_write(f, 1, -EIO, 1);
    factum_archive_status st;
    CHECK_RC(factum_archive_run(s, &st), -EIO);
    CHECK_EQ_U64(st.last_error, -EIO);
    CHECK_EQ_U64(st.dropped, 0);
    CHECK_EQ_U64(st.archive_only, 0);
    io_fault_fail_write(f, 0, 0, 0);
    io_fault_fail_fsync(f, 1, -EIO);
    CHECK_RC(factum_archive_run(s, &st), -EIO);
    CHECK_EQ_U64(st.archive_only, 0);
    io_fault_fail_fsync(f, 0, 0);
    char logd[600], arch[700];
    snprintf(logd, sizeof logd, "%s/log", dir);
    store_arch(s, arch, sizeof arch);
    for (uint64_t no = 0; no < st.segments; no++) CHECK(seg_exists(logd, no));
    /* No temporary file left behind. */
    DIR *d = opendir(arch);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) CHECK(strstr(de->d_name, ".tmp") == NULL);
        closedir(d);
    }
    check_all(s, 4000);
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK_EQ_U64(st.last_error, 0);
    CHECK_EQ_U64(st.archive_only, st.segments);
    check_all(s, 4000);
    factum_store_close(s);
    io_fault_free(f);
    /* The archive's directory missing (an unmounted disk): nothing goes. */
    harness_rm_rf(dir);
    harness_tmpdir(dir, sizeof dir, "archive_fail2");
    mkdir(dir, 0755);
    snprintf(adir, sizeof adir, "%.400s/not-mounted", dir);
    opts(&o, 0, 0);
    char d2[600];
    snprintf(d2, sizeof d2, "%s/store", dir);
    factum_store *s2 = NULL;
    CHECK_RC(factum_store_open(d2, &o, &s2), 0);
    REQUIRE(s2);
    append_range(s2, 0, 3000);
    CHECK_RC(factum_archive_run(s2, &st), -ENOENT);
    CHECK_EQ_U64(st.archive_only, 0);
    check_all(s2, 3000);
    factum_store_close(s2);
    harness_rm_rf(dir);
}

static int has_bytes(const char *d, const char *needle)
{
    DIR *dd = opendir(d);
    if (!dd) return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(dd))) {
        if (!strstr(de->d_name, ".seg")) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        FILE *fp = fopen(p, "rb");
        if (!fp) continue;
        static char buf[1 << 20];
        size_t n;
        while (!found && (n = fread(buf, 1, sizeof buf, fp)) > 0)
            found = memmem(buf, n, needle, strlen(needle)) != NULL;
        fclose(fp);
    }
    closedir(dd);
    return found;
}

/* An erasure reaches the archive: the secret stream tombstoned, a sealing
 * scavenge, and no byte of its data is left in any segment file, local or
 * archived; the other events all read back. */
static void t_scavenge_reaches_archive(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_scav");
    harness_tmpdir(adir, sizeof adir, "archive_scav_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    factum_options o;
    opts(&o, (3u << 20) / 2, 0); /* some archived segments stay local too */
    factum_store *s = open_with(&o);
    REQUIRE(s);
    for (int round = 0; round < 6; round++) {
        char json[128];
        snprintf(json, sizeof json, "{\"ssn\":\"SECRET-%04d-PERSONAL\"}", round);
        factum_event_data e = harness_event("Registered", json);
        CHECK_RC(factum_append(s, "person-42", FACTUM_ANY, &e, 1, NULL), 0);
        append_range(s, (uint64_t)round * 1000, (uint64_t)round * 1000 + 1000);
    }
    factum_archive_status st;
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK(st.archive_only >= 2 && st.archived >= 1);
    char arch[700], logd[600];
    store_arch(s, arch, sizeof arch);
    snprintf(logd, sizeof logd, "%s/log", dir);
    CHECK(has_bytes(arch, "SECRET-0000"));
    CHECK_RC(factum_tombstone_stream(s, "person-42", FACTUM_ANY, NULL), 0);
    factum_scavenge_options so = {.seal = 1};
    CHECK_RC(factum_scavenge_start(s, &so, NULL), 0);
    factum_scavenge_status ss;
    CHECK_RC(factum_scavenge_wait(s, NULL, &ss), 0);
    CHECK_EQ_U64(ss.state, FACTUM_SCAVENGE_COMPLETED);
    printf("  scavenge: %" PRIu64 " segments, %" PRIu64 " compacted, %" PRIu64 " skipped, %" PRIu64 " removed\n",
           ss.segments, ss.compacted, ss.skipped, ss.events_removed);
    CHECK(ss.compacted >= 3);
    CHECK(!has_bytes(arch, "SECRET-"));
    CHECK(!has_bytes(logd, "SECRET-"));
    /* Each local compacted segment's archived copy was replaced at once
     * (AR-3): no archived copy is of an older generation. */
    CHECK_RC(factum_archive_get_status(s, &st), 0);
    uint64_t replaced = 0;
    for (uint64_t no = 0; no < st.segments; no++) {
        log_seg *g = log_seg_get(s->log, no);
        if (atomic_load(&g->where) != LOG_LOCAL || !seg_exists(arch, no)) continue;
        CHECK_EQ_U64(log_archive_has(s->log, no), 1);
        CHECK(g->gen >= 1);
        replaced++;
    }
    CHECK(replaced >= 1);
    check_all(s, 6000);
    size_t n;
    uint64_t next;
    factum_event ev[8];
    CHECK_RC(factum_read_stream(s, "person-42", 0, FACTUM_FORWARD, ev, 8, &n, &next), FACTUM_EDELETED);
    /* The archive's compacted generations read back after a reopen. */
    CHECK_RC(factum_store_close(s), 0);
    s = open_with(&o);
    REQUIRE(s);
    check_all(s, 6000);
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK(st.copied <= 1); /* the segment the scavenge sealed, nothing else */
    CHECK_EQ_U64(st.local_only, 0);
    factum_store_close(s);
    factum_verify_report vr;
    factum_verify_options vo = {.chain = 1};
    CHECK_RC(factum_verify_with(dir, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.removed > 0);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
}

static void t_backup_restore(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_backup");
    harness_tmpdir(adir, sizeof adir, "archive_backup_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    char bdir[512], rdir[512];
    harness_tmpdir(bdir, sizeof bdir, "archive_backup_dest");
    harness_tmpdir(rdir, sizeof rdir, "archive_backup_restored");
    harness_rm_rf(bdir);
    harness_rm_rf(rdir);
    factum_options o;
    opts(&o, 0, 0);
    factum_store *s = open_with(&o);
    REQUIRE(s);
    append_range(s, 0, 5000);
    factum_archive_status st;
    CHECK_RC(factum_archive_run(s, &st), 0);
    CHECK(st.archive_only >= 3);
    factum_backup_report br;
    CHECK_RC(factum_backup(s, bdir, NULL, &br), 0);
    factum_chain_head head;
    CHECK_RC(factum_chain_get_head(s, &head), 0);
    CHECK_RC(factum_store_close(s), 0);
    CHECK_RC(factum_restore(bdir, rdir, NULL, NULL), 0);
    /* The restored store has every segment of its own, and no archive. */
    factum_options plain;
    harness_small_opts(&plain);
    factum_store *r = NULL;
    CHECK_RC(factum_store_open(rdir, &plain, &r), 0);
    REQUIRE(r);
    check_all(r, 5000);
    factum_chain_head rh;
    CHECK_RC(factum_chain_get_head(r, &rh), 0);
    CHECK_EQ_U64(rh.position, head.position);
    CHECK(!memcmp(rh.hash, head.hash, sizeof rh.hash));
    CHECK_EQ_U64(r->log->arch == NULL, 1);
    factum_store_close(r);
    harness_rm_rf(bdir);
    harness_rm_rf(rdir);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
}

/* Online: a writer, a catch-up reader of $all, archive passes and
 * scavenges all at once; the reader reads each event once, in order, with
 * its data. */
typedef struct online {
    factum_store *s;
    _Atomic int stop, writer_done;
    _Atomic uint64_t written;
    uint64_t read, bad;
} online;

static void *writer_main(void *arg)
{
    online *w = arg;
    uint64_t i = 0;
    while (!atomic_load(&w->stop)) {
        append_range(w->s, i, i + 50);
        i += 50;
        atomic_store(&w->written, i);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    online *w = arg;
    static factum_event evs[128];
    uint64_t from = 1, want = 0;
    int last_round = 0;
    while (1) {
        int stopping = atomic_load(&w->writer_done);
        size_t n;
        uint64_t next;
        if (factum_read_all(w->s, from, FACTUM_FORWARD, NULL, 0, evs, 128, &n, &next)) {
            w->bad++;
            break;
        }
        for (size_t k = 0; k < n; k++) {
            if (evs[k].stream_len < 2 || memcmp(evs[k].stream, "s-", 2)) continue;
            char pre[40];
            int pl = snprintf(pre, sizeof pre, "{\"i\":%" PRIu64 ",", want);
            if (!(evs[k].data_len > (size_t)pl && !memcmp(evs[k].data, pre, (size_t)pl))) w->bad++;
            want++;
        }
        if (n) from = next;
        if (n < 128) {
            if (last_round) break;
            if (stopping) last_round = 1;
            else usleep(1000);
        }
    }
    w->read = want;
    return NULL;
}

static void t_online(void)
{
    harness_tmpdir(dir, sizeof dir, "archive_online");
    harness_tmpdir(adir, sizeof adir, "archive_online_arch");
    mkdir(adir, 0755); /* the archive is a directory that exists (a mount) */
    factum_options o;
    opts(&o, 1u << 20, 0);
    o.scavenge_grace_ms = 60000; /* the reader holds pointers for a moment */
    factum_store *s = open_with(&o);
    REQUIRE(s);
    CHECK_RC(factum_set_stream_metadata(s, "$scavenges", FACTUM_ANY, "{\"$maxCount\":2}", 15, NULL), 0);
    online w = {.s = s};
    pthread_t wt, rt;
    REQUIRE(pthread_create(&wt, NULL, writer_main, &w) == 0);
    REQUIRE(pthread_create(&rt, NULL, reader_main, &w) == 0);
    uint64_t t0 = base_mono_ns(), passes = 0, scavenges = 0;
    factum_archive_status st;
    while (base_mono_ns() - t0 < 3000000000ull) {
        CHECK_RC(factum_archive_run(s, &st), 0);
        passes++;
        if (passes % 3 == 0) {
            factum_scavenge_options so = {.seal = (passes % 2) != 0};
            if (factum_scavenge_start(s, &so, NULL) == 0) {
                factum_scavenge_status ss;
                CHECK_RC(factum_scavenge_wait(s, NULL, &ss), 0);
                CHECK_EQ_U64(ss.state, FACTUM_SCAVENGE_COMPLETED);
                scavenges++;
            }
        }
        usleep(20000);
    }
    atomic_store(&w.stop, 1);
    pthread_join(wt, NULL);
    atomic_store(&w.writer_done, 1);
    pthread_join(rt, NULL);
    CHECK_RC(factum_archive_run(s, &st), 0);
    printf("  %" PRIu64 " events written and read back once each; %" PRIu64 " passes, %" PRIu64
           " scavenges; %" PRIu64 " of %" PRIu64 " sealed segments archive only\n",
           atomic_load(&w.written), passes, scavenges, st.archive_only, st.segments);
    CHECK_EQ_U64(w.bad, 0);
    CHECK_EQ_U64(w.read, atomic_load(&w.written));
    CHECK(st.archive_only >= 2);
    check_all(s, atomic_load(&w.written));
    factum_store_close(s);
    harness_rm_rf(dir);
    harness_rm_rf(adir);
}

int main(void)
{
    RUN(t_archive_and_drop);
    RUN(t_retention);
    RUN(t_failure);
    RUN(t_scavenge_reaches_archive);
    RUN(t_backup_restore);
    RUN(t_online);
    return harness_done();
}
