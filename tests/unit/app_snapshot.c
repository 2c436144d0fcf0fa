/*
 * app_snapshot.c - snapshots in the store (factum.h "Snapshots",
 * src/store/snapshot.c): writing with retention, loading with paging, the
 * rules for usable snapshots (SN-2, SN-3), and that reading the stream
 * never shows them (SN-1).
 */
#include "harness.h"

#include "store/snapshot.h"

static factum_store *open_store(const char *name, char *dir, size_t n)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    harness_tmpdir(dir, n, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static void append_n(factum_store *s, const char *stream, int n)
{
    for (int i = 0; i < n; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"i\":%d}", i);
        factum_event_data e = harness_event("E", buf);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, &e, 1, NULL), 0);
    }
}

static void snap(factum_store *s, const char *stream, uint64_t v, uint32_t keep)
{
    char buf[64];
    snprintf(buf, sizeof buf, "{\"upto\":%llu}", (unsigned long long)v);
    CHECK_RC(factum_snapshot_write(s, stream, v, "Snap", buf, strlen(buf), keep, NULL), 0);
}

/* Every visible event of a stream, as "version:data;" text. */
static void dump_stream(factum_store *s, const char *stream, char *out, size_t cap)
{
    out[0] = 0;
    size_t used = 0;
    uint64_t from = 0;
    factum_event ev[8];
    for (;;) {
        size_t n;
        uint64_t next;
        if (factum_read_stream(s, stream, from, FACTUM_FORWARD, ev, 8, &n, &next)) return;
        for (size_t i = 0; i < n && used < cap; i++)
            used += (size_t)snprintf(out + used, cap - used, "%llu:%.*s;", (unsigned long long)ev[i].version,
                                     (int)ev[i].data_len, (const char *)ev[i].data);
        if (next == FACTUM_END) return;
        from = next;
    }
}

static void t_write_load_and_reads_unchanged(void)
{
    char dir[512];
    factum_store *s = open_store("snap-basic", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "acc-1", 10);
    char before[4096], after[4096];
    dump_stream(s, "acc-1", before, sizeof before);
    snap(s, "acc-1", 6, 0);
    /* SN-1: reading the stream shows exactly the same events */
    dump_stream(s, "acc-1", after, sizeof after);
    CHECK(!strcmp(before, after));
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "acc-1", &info), 0);
    CHECK_EQ_U64(info.last_version, 9);

    factum_snapshot sn;
    factum_event ev[16];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, &next), 0);
    CHECK(sn.found == 1);
    CHECK_EQ_U64(sn.version, 6);
    CHECK_EQ_U64(sn.from, 7);
    CHECK(sn.last_version == 9);
    CHECK(sn.event.data_len == strlen("{\"upto\":6}") &&
          !memcmp(sn.event.data, "{\"upto\":6}", sn.event.data_len));
    CHECK(!strcmp(sn.event.type, "Snap"));
    CHECK(sn.event.flags & FACTUM_EVENT_JSON);
    CHECK_EQ_U64(n, 3);
    if (n == 3) CHECK_EQ_U64(ev[0].version, 7);
    CHECK(next == FACTUM_END);

    /* paging: one event at a time */
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 1, &n, &next), 0);
    CHECK_EQ_U64(n, 1);
    CHECK_EQ_U64(next, 8);
    size_t total = n;
    while (next != FACTUM_END) {
        REQUIRE(factum_read_stream(s, "acc-1", next, FACTUM_FORWARD, ev, 1, &n, &next) == 0);
        total += n;
    }
    CHECK_EQ_U64(total, 3);

    /* cap 0: the snapshot only, and where to read on */
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, NULL, 0, &n, &next), 0);
    CHECK_EQ_U64(next, 7);
    CHECK_RC(snapshot_latest(s, "acc-1", &sn, &next), 0);
    CHECK(sn.found && next == 7);

    /* a snapshot at the last version: nothing follows */
    snap(s, "acc-1", 9, 0);
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, &next), 0);
    CHECK(sn.found && sn.version == 9 && n == 0 && next == FACTUM_END);

    /* no snapshot: the whole stream */
    append_n(s, "acc-2", 3);
    CHECK_RC(factum_snapshot_load(s, "acc-2", &sn, ev, 16, &n, &next), 0);
    CHECK(!sn.found && sn.from == 0 && n == 3);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_errors(void)
{
    char dir[512];
    factum_store *s = open_store("snap-errors", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "acc-1", 3);
    CHECK_RC(factum_snapshot_write(s, "acc-1", 3, "Snap", "{}", 2, 0, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_snapshot_write(s, "nope", 0, "Snap", "{}", 2, 0, NULL), FACTUM_ENOTFOUND);
    CHECK_RC(factum_snapshot_write(s, "acc-1", 0, "", "{}", 2, 0, NULL), FACTUM_EBADTYPE);
    CHECK_RC(factum_snapshot_write(s, "", 0, "Snap", "{}", 2, 0, NULL), FACTUM_EBADNAME);
    char longname[FACTUM_MAX_STREAM_LEN + 1];
    memset(longname, 'x', FACTUM_MAX_STREAM_LEN - 3);
    longname[FACTUM_MAX_STREAM_LEN - 3] = 0;
    CHECK_RC(factum_snapshot_write(s, longname, 0, "Snap", "{}", 2, 0, NULL), FACTUM_EINVAL);
    factum_snapshot sn;
    size_t n;
    CHECK_RC(factum_snapshot_load(s, "nope", &sn, NULL, 0, &n, NULL), FACTUM_ENOTFOUND);
    append_n(s, "acc-t", 2);
    CHECK_RC(factum_tombstone_stream(s, "acc-t", FACTUM_ANY, NULL), 0);
    CHECK_RC(factum_snapshot_write(s, "acc-t", 0, "Snap", "{}", 2, 0, NULL), FACTUM_EDELETED);
    CHECK_RC(factum_snapshot_load(s, "acc-t", &sn, NULL, 0, &n, NULL), FACTUM_EDELETED);
    /* nothing was written by the refused calls */
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "$snapshots-acc-1", &info), 0);
    CHECK(info.last_version == FACTUM_NO_STREAM);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_retention(void)
{
    char dir[512];
    factum_store *s = open_store("snap-keep", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "acc-1", 20);
    /* a custom key of the snapshot stream's metadata survives */
    const char *m = "{\"owner\":\"ops\"}";
    CHECK_RC(factum_set_stream_metadata(s, "$snapshots-acc-1", FACTUM_ANY, m, strlen(m), NULL), 0);
    for (uint64_t v = 0; v < 10; v++)
        snap(s, "acc-1", v, 0);
    factum_event ev[16];
    size_t n;
    CHECK_RC(factum_read_stream(s, "$snapshots-acc-1", 0, FACTUM_FORWARD, ev, 16, &n, NULL), 0);
    CHECK_EQ_U64(n, FACTUM_SNAPSHOT_KEEP_DEFAULT);
    if (n) CHECK(!memcmp(ev[n - 1].data, "{\"upto\":9}", 10));
    char *json;
    size_t len;
    int64_t mv;
    CHECK_RC(factum_get_stream_metadata(s, "$snapshots-acc-1", &json, &len, &mv), 0);
    CHECK(strstr(json, "\"owner\":\"ops\"") && strstr(json, "\"$maxCount\":3"));
    free(json);
    /* written once, not per snapshot: the metadata stream has 2 events */
    CHECK(mv == 1);
    snap(s, "acc-1", 12, 1);
    CHECK_RC(factum_read_stream(s, "$snapshots-acc-1", 0, FACTUM_FORWARD, ev, 16, &n, NULL), 0);
    CHECK_EQ_U64(n, 1);
    factum_snapshot sn;
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, NULL), 0);
    CHECK(sn.found && sn.version == 12 && n == 7);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* SN-2: snapshots newer than the stream, before a gap, before a soft
 * delete, or malformed, are ignored. */
static void t_unusable(void)
{
    char dir[512];
    factum_store *s = open_store("snap-unusable", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "acc-1", 5);
    snap(s, "acc-1", 2, 10);
    /* written by hand (embedded appends are not checked): beyond the stream, malformed */
    const char *metas[] = {"{\"$streamVersion\":100}",
                           "{\"$streamVersion\":-1}",
                           "{\"$streamVersion\":\"3\"}",
                           "not json",
                           "[]",
                           ""};
    for (size_t i = 0; i < sizeof metas / sizeof metas[0]; i++) {
        factum_event_data e = harness_event("Snap", "{\"bad\":1}");
        e.metadata = metas[i];
        e.metadata_len = strlen(metas[i]);
        e.flags |= FACTUM_EVENT_META_JSON;
        CHECK_RC(factum_append(s, "$snapshots-acc-1", FACTUM_ANY, &e, 1, NULL), 0);
    }
    factum_snapshot sn;
    factum_event ev[16];
    size_t n;
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, NULL), 0);
    CHECK(sn.found && sn.version == 2 && n == 2);

    /* truncation: $tb = 3 leaves the snapshot at 2 usable (nothing missing) */
    CHECK_RC(factum_set_stream_metadata(s, "acc-1", FACTUM_ANY, "{\"$tb\":3}", 9, NULL), 0);
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, NULL), 0);
    CHECK(sn.found && sn.version == 2 && n == 2);
    /* $tb = 4: events 3 would be missing after it -> not used */
    CHECK_RC(factum_set_stream_metadata(s, "acc-1", FACTUM_ANY, "{\"$tb\":4}", 9, NULL), 0);
    CHECK_RC(factum_snapshot_load(s, "acc-1", &sn, ev, 16, &n, NULL), 0);
    CHECK(!sn.found && sn.from == 4 && n == 1);

    /* soft delete and re-create: the old snapshot (even at the last
     * version) must not come back */
    append_n(s, "acc-2", 4);
    snap(s, "acc-2", 3, 0);
    CHECK_RC(factum_delete_stream(s, "acc-2", FACTUM_ANY, NULL), 0);
    CHECK_RC(factum_snapshot_load(s, "acc-2", &sn, ev, 16, &n, NULL), FACTUM_ENOTFOUND);
    append_n(s, "acc-2", 2); /* versions 4, 5 */
    CHECK_RC(factum_snapshot_load(s, "acc-2", &sn, ev, 16, &n, NULL), 0);
    CHECK(!sn.found && n == 2);
    if (n == 2) CHECK_EQ_U64(ev[0].version, 4);
    /* a snapshot written after the re-creation is used */
    snap(s, "acc-2", 4, 0);
    CHECK_RC(factum_snapshot_load(s, "acc-2", &sn, ev, 16, &n, NULL), 0);
    CHECK(sn.found && sn.version == 4 && n == 1);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_check_append(void)
{
    char dir[512];
    factum_store *s = open_store("snap-check", dir, sizeof dir);
    REQUIRE(s);
    append_n(s, "acc-1", 3);
    char msg[512];
    factum_event_data e = harness_event("Snap", "{}");
    const char *ok = "{\"$streamVersion\":2,\"by\":\"node\"}";
    e.metadata = ok;
    e.metadata_len = strlen(ok);
    CHECK_RC(snapshot_check_append(s, "$snapshots-acc-1", &e, 1, msg, sizeof msg), 0);
    CHECK_RC(snapshot_check_append(s, "acc-1", &e, 1, msg, sizeof msg), 0); /* not a snapshot stream */
    const char *beyond = "{\"$streamVersion\":3}";
    e.metadata = beyond;
    e.metadata_len = strlen(beyond);
    CHECK_RC(snapshot_check_append(s, "$snapshots-acc-1", &e, 1, msg, sizeof msg), FACTUM_EINVAL);
    CHECK(strstr(msg, "beyond"));
    e.metadata = NULL;
    e.metadata_len = 0;
    CHECK_RC(snapshot_check_append(s, "$snapshots-acc-1", &e, 1, msg, sizeof msg), FACTUM_EINVAL);
    CHECK(strstr(msg, "$streamVersion"));
    e.metadata = ok;
    e.metadata_len = strlen(ok);
    CHECK_RC(snapshot_check_append(s, "$snapshots-none", &e, 1, msg, sizeof msg), FACTUM_EINVAL);
    CHECK(strstr(msg, "does not exist"));
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_write_load_and_reads_unchanged);
    RUN(t_errors);
    RUN(t_retention);
    RUN(t_unusable);
    RUN(t_check_append);
    return harness_done();
}
