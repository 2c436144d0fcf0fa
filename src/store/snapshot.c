/*
 * snapshot.c - snapshots of a stream's state kept in the store, by the
 * convention of factum.h "Snapshots": the snapshots of S are the events of
 * `$snapshots-S` carrying {"$streamVersion": V} in their metadata, retention
 * is that stream's `$maxCount`, and a load is the newest usable snapshot
 * plus S's events after it. Everything here is built on the public read
 * and append calls: a snapshot is an ordinary event, which is what lets a
 * client in any language write and read them with plain appends and reads.
 *
 * Design note (tests cite SN-n):
 *  SN-1  Snapshots never change what reading S returns: they are written to
 *        another stream, and nothing here writes to S.
 *  SN-2  A snapshot at V is used only if V <= S's last version, V + 1 >=
 *        the first visible version of S (no visible event is missing
 *        between the snapshot and the replay), and it was committed after
 *        S's latest soft delete (a re-created stream continues its
 *        numbering: without this rule the deleted state would come back).
 *        Unusable or malformed snapshots are skipped, never an error.
 *  SN-3  The replay starts at V + 1 and its first event must be V + 1: if S
 *        was truncated between the two reads, the load starts again, so a
 *        load never folds a snapshot with a gap after it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/snapshot.h"
#include "store/store_int.h"

#define SNAP_PREFIX_LEN (sizeof FACTUM_SNAPSHOT_PREFIX - 1)
#define SNAP_PAGE       16
#define LOAD_TRIES      4

int snapshot_source(const char *stream, size_t len, const char **source, size_t *source_len)
{
    if (len <= SNAP_PREFIX_LEN || memcmp(stream, FACTUM_SNAPSHOT_PREFIX, SNAP_PREFIX_LEN)) return 0;
    *source = stream + SNAP_PREFIX_LEN;
    *source_len = len - SNAP_PREFIX_LEN;
    return 1;
}

/* "$snapshots-" + stream into buf (FACTUM_MAX_STREAM_LEN + 1 bytes). */
static int snap_stream_name(const char *stream, char *buf)
{
    size_t len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(stream, len);
    if (rc) return rc;
    if (len + SNAP_PREFIX_LEN > FACTUM_MAX_STREAM_LEN) return FACTUM_EINVAL;
    memcpy(buf, FACTUM_SNAPSHOT_PREFIX, SNAP_PREFIX_LEN);
    memcpy(buf + SNAP_PREFIX_LEN, stream, len + 1);
    return 0;
}

/* "$streamVersion" of a metadata document: 0 and *v, or FACTUM_EINVAL
 * (missing, not an integer >= 0, not a JSON object), -ENOMEM. */
static int stream_version_of(const void *meta, size_t len, uint64_t *v)
{
    if (!meta || !len) return FACTUM_EINVAL;
    json_value *doc;
    int rc = json_parse(meta, len, &doc);
    if (rc) return rc == -ENOMEM ? rc : FACTUM_EINVAL;
    int64_t x = -1;
    const json_value *f = doc->type == JSON_OBJECT ? json_get(doc, "$streamVersion") : NULL;
    rc = f && json_int64(f, &x) == 0 && x >= 0 ? 0 : FACTUM_EINVAL;
    json_free(doc);
    if (!rc) *v = (uint64_t)x;
    return rc;
}

/* The first version of S a read shows (truncate-before and max count;
 * max age is left to the read itself). */
static uint64_t first_visible(const factum_stream_info *info)
{
    uint64_t first = 0;
    if (info->meta.truncate_before > 0) first = (uint64_t)info->meta.truncate_before;
    if (info->meta.max_count >= 0 && info->last_version >= 0) {
        int64_t mc = info->last_version - info->meta.max_count + 1;
        if (mc > 0 && (uint64_t)mc > first) first = (uint64_t)mc;
    }
    return first;
}

/* Was S soft-deleted by a metadata event committed after `position`?
 * Reads `$$S` backward down to that position: 1 yes, 0 no, < 0 error. */
static int deleted_since(factum_store *s, const char *stream, uint64_t position)
{
    char meta[FACTUM_MAX_STREAM_LEN + 3];
    size_t len = strlen(stream);
    meta_stream_name(stream, len, meta);
    factum_event page[SNAP_PAGE];
    uint64_t from = FACTUM_END;
    for (;;) {
        size_t n;
        uint64_t next;
        int rc = factum_read_stream(s, meta, from, FACTUM_BACKWARD, page, SNAP_PAGE, &n, &next);
        if (rc == FACTUM_ENOTFOUND) return 0;
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            if (page[i].position <= position) return 0;
            factum_stream_metadata m;
            meta_parse_lenient(page[i].data, page[i].data_len, &m);
            if (m.truncate_before == ST_TB_DELETED) return 1;
        }
        if (next == FACTUM_END || !n) return 0;
        from = next;
    }
}

/* The newest usable snapshot of S (SN-2) into *snap. */
static int find_snapshot(factum_store *s, const char *stream, const factum_stream_info *info,
                         factum_snapshot *snap)
{
    char name[FACTUM_MAX_STREAM_LEN + 1];
    int rc = snap_stream_name(stream, name);
    if (rc == FACTUM_EINVAL) return 0; /* a name too long to have snapshots */
    if (rc) return rc;
    uint64_t first = first_visible(info);
    factum_event page[SNAP_PAGE];
    uint64_t from = FACTUM_END;
    for (;;) {
        size_t n;
        uint64_t next;
        rc = factum_read_stream(s, name, from, FACTUM_BACKWARD, page, SNAP_PAGE, &n, &next);
        if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) return 0;
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            rc = stream_version_of(page[i].metadata, page[i].metadata_len, &v);
            if (rc == -ENOMEM) return rc;
            if (rc || info->last_version < 0 || v > (uint64_t)info->last_version || v + 1 < first) continue;
            rc = deleted_since(s, stream, page[i].position);
            if (rc < 0) return rc;
            /* Older snapshots were committed even earlier: none is usable. */
            if (rc) return 0;
            snap->found = 1;
            snap->event = page[i];
            snap->version = v;
            return 0;
        }
        if (next == FACTUM_END || !n) return 0;
        from = next;
    }
}

int factum_snapshot_load(factum_store *s, const char *stream, factum_snapshot *snap, factum_event *events,
                         size_t cap, size_t *n_out, uint64_t *next_out)
{
    if (!s || !stream || !snap || !n_out || (cap && !events)) return FACTUM_EINVAL;
    *n_out = 0;
    if (next_out) *next_out = FACTUM_END;
    int rc = 0;
    for (int attempt = 0; attempt < LOAD_TRIES; attempt++) {
        memset(snap, 0, sizeof *snap);
        factum_stream_info info;
        if ((rc = factum_stream_get_info(s, stream, &info))) return rc;
        if (info.status == FACTUM_STREAM_TOMBSTONED) return FACTUM_EDELETED;
        if (info.status != FACTUM_STREAM_LIVE || info.last_version < 0) return FACTUM_ENOTFOUND;
        snap->last_version = info.last_version;
        if ((rc = find_snapshot(s, stream, &info, snap))) return rc;
        uint64_t first = first_visible(&info);
        snap->from = snap->found ? snap->version + 1 : first;
        if (snap->from > (uint64_t)info.last_version) return 0; /* nothing after the snapshot (yet) */
        if (!cap) {
            if (next_out) *next_out = snap->from;
            return 0;
        }
        uint64_t next;
        rc = factum_read_stream(s, stream, snap->from, FACTUM_FORWARD, events, cap, n_out, &next);
        if (rc) return rc;
        /* SN-3: the first event must follow the snapshot. A snapshot-less
         * load may start later (max age hides old events). */
        if (snap->found && *n_out && events[0].version != snap->from && attempt + 1 < LOAD_TRIES) {
            *n_out = 0;
            continue;
        }
        if (snap->found && *n_out && events[0].version != snap->from) {
            /* Truncated again and again: replay what is visible, no snapshot. */
            snap->found = 0;
            snap->from = events[0].version;
        }
        if (next_out) *next_out = next;
        return 0;
    }
    return rc;
}

int snapshot_latest(factum_store *s, const char *stream, factum_snapshot *snap, uint64_t *from)
{
    size_t n;
    return factum_snapshot_load(s, stream, snap, NULL, 0, &n, from);
}

int snapshot_retention_doc(const char *json, size_t len, uint32_t keep, base_buf *out)
{
    json_value *doc = NULL;
    int rc = json_parse(json, len, &doc);
    if (rc == -ENOMEM) return rc;
    if (!rc && doc->type != JSON_OBJECT) {
        json_free(doc);
        doc = NULL;
    }
    int64_t cur = -1;
    const json_value *mc = doc ? json_get(doc, "$maxCount") : NULL;
    if (mc && json_int64(mc, &cur) == 0 && cur == (int64_t)keep) {
        json_free(doc);
        return 0;
    }
    rc = base_buf_append(out, "{", 1);
    int comma = 0;
    for (size_t i = 0; doc && !rc && i < doc->n; i++) {
        if (!strcmp(doc->keys[i], "$maxCount")) continue;
        if (comma) rc = base_buf_append(out, ",", 1);
        if (!rc) rc = json_write_string(out, doc->keys[i], doc->key_lens[i]);
        if (!rc) rc = base_buf_append(out, ":", 1);
        if (!rc) rc = json_write_value(out, doc->items[i]);
        comma = 1;
    }
    if (!rc) rc = base_buf_printf(out, "%s\"$maxCount\":%" PRIu32 "}", comma ? "," : "", keep);
    if (!rc) rc = base_buf_append(out, "", 1); /* NUL-terminated; len excludes it */
    if (!rc) out->len--;
    json_free(doc);
    return rc ? rc : 1;
}

/* Make `$maxCount` of the snapshot stream `keep`, keeping the other keys
 * of its metadata document; written only when it differs. */
static int set_retention(factum_store *s, const char *name, uint32_t keep)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        char *json;
        size_t len;
        int64_t mv;
        int rc = factum_get_stream_metadata(s, name, &json, &len, &mv);
        if (rc) return rc;
        base_buf b = {0};
        rc = snapshot_retention_doc(json, len, keep, &b);
        free(json);
        if (rc == 1)
            rc = factum_set_stream_metadata(s, name, mv < 0 ? FACTUM_NO_STREAM : mv, (const char *)b.data,
                                            b.len, NULL);
        base_buf_free(&b);
        if (rc != FACTUM_EWRONGVERSION) return rc;
    }
    return FACTUM_EWRONGVERSION;
}

int factum_snapshot_write(factum_store *s, const char *stream, uint64_t version, const char *type,
                          const void *data, size_t len, uint32_t keep, factum_append_result *res)
{
    if (!s || !stream || !type || (len && !data)) return FACTUM_EINVAL;
    char name[FACTUM_MAX_STREAM_LEN + 1];
    int rc = snap_stream_name(stream, name);
    if (rc) return rc;
    factum_stream_info info;
    if ((rc = factum_stream_get_info(s, stream, &info))) return rc;
    if (info.status == FACTUM_STREAM_TOMBSTONED) return FACTUM_EDELETED;
    if (info.status != FACTUM_STREAM_LIVE || info.last_version < 0) return FACTUM_ENOTFOUND;
    if (version > (uint64_t)info.last_version || version > INT64_MAX) return FACTUM_EINVAL;
    char meta[64];
    int ml = snprintf(meta, sizeof meta, "{\"$streamVersion\":%" PRIu64 "}", version);
    factum_event_data ev = {0};
    ev.type = type;
    ev.flags = FACTUM_EVENT_META_JSON;
    if (len && json_validate(data, len) == 0) ev.flags |= FACTUM_EVENT_JSON;
    ev.data = data;
    ev.data_len = len;
    ev.metadata = meta;
    ev.metadata_len = (size_t)ml;
    if ((rc = factum_append(s, name, FACTUM_ANY, &ev, 1, res))) return rc;
    return set_retention(s, name, keep ? keep : FACTUM_SNAPSHOT_KEEP_DEFAULT);
}

int snapshot_check_append(factum_store *s, const char *stream, const factum_event_data *events, size_t n,
                          char *msg, size_t msg_len)
{
    const char *src;
    size_t src_len;
    size_t len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    if (!snapshot_source(stream, len, &src, &src_len)) return 0;
    factum_stream_info info;
    int rc = factum_stream_get_info(s, src, &info);
    if (rc || info.status != FACTUM_STREAM_LIVE || info.last_version < 0) {
        snprintf(msg, msg_len, "a snapshot of stream '%.200s', which does not exist%s", src,
                 info.status == FACTUM_STREAM_TOMBSTONED ? " (it is deleted)" : "");
        return FACTUM_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        rc = stream_version_of(events[i].metadata, events[i].metadata_len, &v);
        if (rc == -ENOMEM) return rc;
        if (rc) {
            snprintf(msg, msg_len,
                     "event %zu of a snapshot append to '%.200s' lacks metadata \"$streamVersion\" "
                     "(an integer >= 0: the version of the stream it captures)",
                     i, stream);
            return FACTUM_EINVAL;
        }
        if (v > (uint64_t)info.last_version) {
            snprintf(msg, msg_len,
                     "event %zu of a snapshot append to '%.200s' has \"$streamVersion\" %" PRIu64
                     ", beyond the stream's last version %" PRId64,
                     i, stream, v, info.last_version);
            return FACTUM_EINVAL;
        }
    }
    return 0;
}

int store_find_event_id(factum_store *s, const char *stream, const uint8_t id[16], factum_event *ev)
{
    uint64_t los[16];
    size_t n;
    int rc = idx_id_lookup(s->idx, id, los, 16, &n);
    if (rc) return rc;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    size_t len = strlen(stream);
    for (size_t i = 0; i < n; i++) {
        factum_event e;
        if ((rc = event_at(s, los[i], &e))) return rc;
        if (e.position > committed || memcmp(e.id, id, 16) || e.stream_len != len ||
            memcmp(e.stream, stream, len) || (e.flags & LOG_EV_STUB))
            continue;
        *ev = e;
        return 1;
    }
    return 0;
}
