/*
 * read.c - the read calls: a stream in either direction (honouring its
 * metadata: truncate-before, max count, max age), the global log ($all)
 * with filters, single positions, stream state and metadata, and the stream
 * catalog. Reads run in the caller's thread, take no lock the writer holds
 * for long, and never see beyond the committed position (ST-2). Events are
 * returned as pointers into the mapped log: no copies.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define KV_BATCH       256
#define RANGE_SKIP_MAX 4096 /* events a stream read skips by valid time in one call, at most */

static int name_arg(const char *stream, size_t *len)
{
    if (!stream) return FACTUM_EBADNAME;
    *len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    return factum_check_stream_name(stream, *len);
}

/* First version visible under the stream's metadata (ignoring max age). */
static uint64_t first_visible(const sstate *st)
{
    uint64_t first = 0;
    if (st->meta.truncate_before > 0) first = (uint64_t)st->meta.truncate_before;
    if (st->meta.max_count >= 0 && st->last_version >= 0) {
        int64_t mc = st->last_version - st->meta.max_count + 1;
        if (mc > 0 && (uint64_t)mc > first) first = (uint64_t)mc;
    }
    return first;
}

int factum_read_stream(factum_store *s, const char *stream, uint64_t from, int direction,
                       factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out)
{
    if (!s || !n_out || (cap && !events)) return FACTUM_EINVAL;
    *n_out = 0;
    if (next_out) *next_out = FACTUM_END;
    size_t len;
    int rc = name_arg(stream, &len);
    if (rc) return rc;
    int nowait = direction & FACTUM_NOWAIT;
    direction &= ~FACTUM_NOWAIT;
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) return FACTUM_EINVAL;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    sstate st;
    if ((rc = state_get(s, stream, len, &st))) return rc;
    if (st.last_version < 0 || sstate_soft_deleted(&st)) return FACTUM_ENOTFOUND;
    if (sstate_tombstoned(&st)) return FACTUM_EDELETED;
    int64_t min_ts = INT64_MIN;
    if (st.meta.max_age_s >= 0) min_ts = base_now_ns() - st.meta.max_age_s * 1000000000ll;
    uint64_t first = first_visible(&st);
    stream_range r = {first, (uint64_t)st.last_version, committed, min_ts, INT64_MAX, 0, 0, 0, 0};
    if (nowait) {
        r.nowait = 1;
        r.epoch = (unsigned)(base_now_ns() >> 30);
    }
    rc = stream_read_range(s, stream, len, &r, from, direction == FACTUM_BACKWARD, events, cap, n_out, next_out);
    /* ST-2: the state counts appends committed after `committed` was read.
     * When every event the read met is one of them, and it began at the
     * stream's start (forward) or went down to it (backward: versions grow
     * with positions, so nothing below was committed either), the stream
     * had no event yet as of this read: not found, as it would have been a
     * moment earlier, rather than an existing stream without events. */
    if (!rc && *n_out == 0 && r.examined && r.beyond == r.examined &&
        (direction == FACTUM_BACKWARD ? (!next_out || *next_out == FACTUM_END) : from <= first))
        return FACTUM_ENOTFOUND;
    return rc;
}

int stream_read_range(factum_store *s, const char *stream, size_t len, stream_range *r, uint64_t from,
                      int back, factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out)
{
    *n_out = 0;
    if (next_out) *next_out = FACTUM_END;
    uint64_t first = r->first, last = r->last, committed = r->committed;
    int64_t min_ts = r->min_ts;
    int rc;
    uint64_t hash = base_hash64(stream, len);
    uint64_t cur;
    if (!back) {
        cur = from < first ? first : from;
        if (cur > last) return 0;
    } else {
        cur = from > last ? last : from;
        if (cur < first) return 0;
    }
    idx_kv kv[KV_BATCH];
    size_t n = 0, skipped = 0;
    int end = 0;
    size_t extra = 8;
    while (n < cap && !end) {
        size_t want = cap - n + extra < KV_BATCH ? cap - n + extra : KV_BATCH, got;
        if ((rc = idx_stream_range(s->idx, hash, cur, back, kv, want, &got))) return rc;
        if (!got) {
            end = 1;
            break;
        }
        /* Streams whose names share a hash interleave by version (IDX-3).
         * Unless the index had nothing more, leave the last version's
         * entries for the next round: some of them may lie beyond it. */
        size_t limit = got;
        if (got == want) {
            while (limit > 0 && kv[limit - 1].k2 == kv[got - 1].k2)
                limit--;
            if (limit == 0 && want < KV_BATCH) {
                extra = KV_BATCH; /* many streams share this hash and version: look further */
                continue;
            }
            if (limit == 0) limit = got; /* > 256 names with one 64-bit hash: not on this planet */
        } else {
            end = 1;
        }
        int full = 0, stop = 0, at_zero = 0;
        for (size_t i = 0; i < limit && !full && !stop; i++) {
            uint64_t v = kv[i].k2;
            if (back ? v < first : v > last) {
                stop = 1;
                break;
            }
            if (back) {
                if (v == 0)
                    at_zero = 1; /* the last version going backward */
                else
                    cur = v - 1;
            } else {
                cur = v + 1;
            }
            factum_event *ev = &events[n];
            if (r->nowait && !log_frame_resident(s->log, kv[i].v, r->epoch)) {
                *n_out = 0; /* all or nothing (FACTUM_NOWAIT) */
                if (next_out) *next_out = FACTUM_END;
                return -EWOULDBLOCK;
            }
            if ((rc = event_at(s, kv[i].v, ev))) return rc;
            if (ev->stream_len != len || memcmp(ev->stream, stream, len)) continue; /* hash collision, removed */
            if (ev->flags & LOG_EV_STUB) continue; /* a scavenge kept only its header (LOG-8) */
            if ((ev->flags & LOG_EV_SEALED) && (rc = store_unseal(s, ev, 1))) return rc; /* SEAL-2 */
            r->examined++;
            if (ev->position > committed) {
                r->beyond++;
                /* Committed after this read began (the stream's state,
                 * read after `committed`, already counts it): going
                 * forward nothing lies beyond it; going backward the
                 * older events do, and are served. */
                if (back) continue;
                stop = 1;
                break;
            }
            if (ev->timestamp_ns < min_ts) continue; /* older than $maxAge */
            if (r->valid_until != INT64_MAX && factum_event_valid_time(ev) > r->valid_until) {
                /* Bounded work per call: a page thinned by valid time ends early. */
                if (++skipped >= RANGE_SKIP_MAX) full = 1;
                continue;
            }
            if (++n == cap || ((ev->flags & FACTUM_EVENT_OPENED) && store_reader_over())) full = 1;
        }
        if (stop || at_zero) end = 1;
        if (full) {
            end = at_zero;
            break;
        }
        if (!end && limit < got) cur = kv[limit].k2;
    }
    if (back ? cur < first : cur > last) end = 1;
    *n_out = n;
    if (next_out) *next_out = end ? FACTUM_END : cur;
    return 0;
}

/* ---- the global log ------------------------------------------------- */

/* The event frame at lo, checked to be `*position`. Skips a batch frame
 * and the end of a segment going forward. With `skip`, removed frames and
 * stubs (LOG-8) are stepped over too and the next surviving event is
 * taken, *position raised to it (a read from a removed position starts at
 * the next surviving event, ADR 0026); without, a removed position is
 * FACTUM_ENOTFOUND. *lo is updated to the frame. */
static int frame_fwd(factum_store *s, uint64_t *lo, uint64_t *position, int skip, factum_event *ev,
                     uint32_t *len, const unsigned *probe)
{
    int skipped = 0; /* stepped over removed events: a later position is expected */
    int resynced = 0;
    for (uint64_t hops = 0; hops < 4 || ((skipped || resynced) && hops < ((uint64_t)1 << 32)); hops++) {
        /* A segment's start (the step past a full segment: a compacted
         * one maps no frame at its header's offsets) goes to its first frame. */
        if (*lo % s->seg_size < LOG_SEG_HEADER) {
            *lo = (*lo / s->seg_size) * s->seg_size + LOG_SEG_HEADER;
            continue;
        }
        uint64_t avail;
        const uint8_t *p = log_ptr(s->log, *lo, &avail);
        if (!p) break;
        if (probe && !log_frame_resident(s->log, *lo, *probe)) return -EWOULDBLOCK; /* FACTUM_NOWAIT */
        int type;
        log_batch_hdr bh;
        int n = log_decode_frame(p, avail, &type, ev, &bh, NULL);
        if (n == 0) { /* end of this segment's data */
            *lo = log_next_seg_lo(s->log, *lo);
            continue;
        }
        if (n < 0) break;
        if (type == LOG_FRAME_BATCH) {
            *lo = log_next_lo(s->log, *lo, (uint32_t)n);
            continue;
        }
        if (type == LOG_FRAME_REMOVED) {
            log_removed r;
            log_removed_get(p, &r);
            uint64_t after = r.first_position + r.count;
            int holds = *position >= r.first_position && *position < after;
            if (!holds && !(skipped && r.first_position >= *position)) break;
            if (!skip) return FACTUM_ENOTFOUND;
            skipped = 1;
            *position = after;
            *lo = log_next_lo(s->log, *lo, (uint32_t)n);
            continue;
        }
        if (ev->position != *position && !(skipped && ev->position > *position)) {
            /* The caller's step may have crossed a segment that a scavenge
             * swapped meanwhile (the frame it read came from the generation
             * before, the step from the new one): find the position again
             * through the position map, once, before calling it damage. */
            if (resynced || idx_posmap_get(s->idx, *position, lo)) break;
            resynced = 1;
            continue;
        }
        if (ev->flags & LOG_EV_STUB) {
            if (!skip) return FACTUM_ENOTFOUND;
            skipped = 1;
            *position = ev->position + 1;
            *lo = log_next_lo(s->log, *lo, (uint32_t)n);
            continue;
        }
        *position = ev->position;
        *len = (uint32_t)n;
        return 0;
    }
    store_log(s, FACTUM_LOG_ERROR, "damaged log at segment %llu offset %llu reading position %llu",
              (unsigned long long)(*lo / s->seg_size), (unsigned long long)(*lo % s->seg_size),
              (unsigned long long)*position);
    return FACTUM_ECORRUPT;
}

/* Going backward: the event frame at lo, checked to be `*position`; over
 * batch frames, removed frames and stubs (LOG-8) it steps back to the
 * surviving event before. 0, 1 when no event is left (position 0), or an
 * error. */
static int frame_back(factum_store *s, uint64_t *lo, uint64_t *position, factum_event *ev, const unsigned *probe)
{
    int resynced = 0;
    for (uint64_t hops = 0; hops < ((uint64_t)1 << 32); hops++) {
        *lo = log_frame_lo(s->log, *lo);
        uint64_t avail;
        const uint8_t *p = log_ptr(s->log, *lo, &avail);
        if (!p) break;
        if (probe && !log_frame_resident(s->log, *lo, *probe)) return -EWOULDBLOCK;
        int type;
        log_batch_hdr bh;
        int n = log_decode_frame(p, avail, &type, ev, &bh, NULL);
        if (n <= 0) break;
        int off_track = 0;
        if (type == LOG_FRAME_EVENT) {
            off_track = ev->position != *position;
        } else if (type == LOG_FRAME_REMOVED) {
            log_removed r;
            log_removed_get(p, &r);
            off_track = *position < r.first_position || *position >= r.first_position + r.count;
        }
        if (off_track) {
            /* A step across a segment a scavenge swapped meanwhile (as in
             * frame_fwd): the position map, once. */
            if (resynced || idx_posmap_get(s->idx, *position, lo)) break;
            resynced = 1;
            continue;
        }
        if (type == LOG_FRAME_EVENT) {
            if (!(ev->flags & LOG_EV_STUB)) return 0;
            --*position;
        } else if (type == LOG_FRAME_REMOVED) {
            log_removed r;
            log_removed_get(p, &r);
            *position = r.first_position - 1;
        }
        if (*position == 0) return 1;
        /* The frame before, or the position map's at a segment's start. */
        uint64_t prev;
        if (!log_prev_lo(s->log, *lo, &prev)) {
            *lo = prev;
            continue;
        }
        int rc = idx_posmap_get(s->idx, *position, lo);
        if (rc) return rc == FACTUM_ENOTFOUND ? FACTUM_ECORRUPT : rc;
    }
    store_log(s, FACTUM_LOG_ERROR, "damaged log at segment %llu offset %llu reading position %llu backward",
              (unsigned long long)(*lo / s->seg_size), (unsigned long long)(*lo % s->seg_size),
              (unsigned long long)*position);
    return FACTUM_ECORRUPT;
}

int factum_read_position(factum_store *s, uint64_t position, factum_event *ev)
{
    if (!s || !ev) return FACTUM_EINVAL;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    if (position == 0 || position > committed) return FACTUM_ENOTFOUND;
    uint64_t lo;
    int rc = idx_posmap_get(s->idx, position, &lo);
    if (rc == FACTUM_ENOTFOUND) return FACTUM_ECORRUPT; /* a committed position must be mapped */
    if (rc) return rc;
    uint32_t len;
    rc = frame_fwd(s, &lo, &position, 0, ev, &len, NULL);
    if (!rc && (ev->flags & LOG_EV_SEALED)) rc = store_unseal(s, ev, 1); /* SEAL-2 */
    return rc;
}

int factum_read_all(factum_store *s, uint64_t from, int direction, const factum_filter *filter,
                    size_t max_scan, factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out)
{
    if (!s || !n_out || (cap && !events)) return FACTUM_EINVAL;
    unsigned epoch = 0, *probe = NULL;
    if (direction & FACTUM_NOWAIT) {
        epoch = (unsigned)(base_now_ns() >> 30);
        probe = &epoch;
        direction &= ~FACTUM_NOWAIT;
    }
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) return FACTUM_EINVAL;
    *n_out = 0;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    int back = direction == FACTUM_BACKWARD;
    uint64_t pos = back ? (from > committed ? committed : from) : (from < 1 ? 1 : from);
    if (next_out) *next_out = back ? 0 : (pos > committed + 1 ? pos : committed + 1);
    if (back ? pos == 0 : pos > committed) return 0;
    uint64_t lo;
    int rc = idx_posmap_get(s->idx, pos, &lo);
    if (rc) return rc == FACTUM_ENOTFOUND ? FACTUM_ECORRUPT : rc;
    size_t n = 0, scanned = 0;
    while (n < cap && (!max_scan || scanned < max_scan)) {
        factum_event *ev = &events[n];
        uint32_t len = 0;
        rc = back ? frame_back(s, &lo, &pos, ev, probe) : frame_fwd(s, &lo, &pos, 1, ev, &len, probe);
        if (rc < 0) {
            if (rc == -EWOULDBLOCK) *n_out = 0; /* all or nothing (FACTUM_NOWAIT) */
            return rc;
        }
        if (rc == 1) { /* backward past the first surviving event */
            pos = 0;
            break;
        }
        if (!back && pos > committed) break; /* skipped removed events up to the end */
        scanned++;
        if ((ev->flags & LOG_EV_SEALED) && (rc = store_unseal(s, ev, 1))) return rc; /* SEAL-2 */
        int m = factum_filter_match(filter, ev);
        if (m < 0) return m;
        n += (size_t)m;
        int over = m && (ev->flags & FACTUM_EVENT_OPENED) && store_reader_over();
        if (!back) {
            lo = log_next_lo(s->log, lo, len);
            if (++pos > committed || over) break;
        } else {
            if (--pos == 0 || over) break;
            /* Step to the previous frame (LOG-1, LOG-8), or ask the
             * position map at the start of a segment. */
            uint64_t prev;
            if (probe && lo % s->seg_size >= LOG_SEG_HEADER + 8) {
                uint64_t av;
                const uint8_t *t = log_ptr(s->log, lo - 4, &av);
                if (t && !log_resident(s->log, t, 4, epoch)) return -EWOULDBLOCK; /* *n_out is 0 still */
            }
            if (!log_prev_lo(s->log, lo, &prev)) {
                lo = prev;
            } else {
                rc = idx_posmap_get(s->idx, pos, &lo);
                if (rc) return rc == FACTUM_ENOTFOUND ? FACTUM_ECORRUPT : rc;
            }
        }
    }
    *n_out = n;
    if (next_out) *next_out = pos;
    return 0;
}

/* ---- stream state, metadata, catalog -------------------------------- */

int factum_stream_get_info(factum_store *s, const char *stream, factum_stream_info *info)
{
    if (!s || !info) return FACTUM_EINVAL;
    size_t len;
    int rc = name_arg(stream, &len);
    if (rc) return rc;
    sstate st;
    if ((rc = state_get(s, stream, len, &st))) return rc;
    memset(info, 0, sizeof *info);
    info->last_version = st.last_version < 0 ? FACTUM_NO_STREAM : st.last_version;
    info->last_position = st.last_position;
    info->metadata_version = st.meta_version;
    info->meta = st.meta;
    if (st.last_version < 0)
        info->status = FACTUM_STREAM_NONE;
    else if (sstate_tombstoned(&st))
        info->status = FACTUM_STREAM_TOMBSTONED;
    else if (sstate_soft_deleted(&st))
        info->status = FACTUM_STREAM_SOFT_DELETED;
    else
        info->status = FACTUM_STREAM_LIVE;
    return 0;
}

int factum_get_stream_metadata(factum_store *s, const char *stream, char **json_out, size_t *len_out,
                               int64_t *version_out)
{
    if (!s || !json_out) return FACTUM_EINVAL;
    size_t len;
    int rc = name_arg(stream, &len);
    if (rc) return rc;
    sstate st;
    if ((rc = state_get(s, stream, len, &st))) return rc;
    const uint8_t *data = (const uint8_t *)"{}";
    size_t dlen = 2;
    factum_event ev;
    if (st.meta_lo) {
        if ((rc = event_at(s, st.meta_lo, &ev))) return rc;
        data = ev.data;
        dlen = ev.data_len;
    }
    char *out = malloc(dlen + 1);
    if (!out) return -ENOMEM;
    memcpy(out, data, dlen);
    out[dlen] = 0;
    *json_out = out;
    if (len_out) *len_out = dlen;
    if (version_out) *version_out = st.meta_version;
    return 0;
}

int factum_list_streams(factum_store *s, uint64_t after, factum_stream_cb cb, void *ctx)
{
    if (!s || !cb) return FACTUM_EINVAL;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    idx_kv kv[KV_BATCH];
    while (1) {
        size_t n;
        int rc = idx_cat_range(s->idx, after, kv, KV_BATCH, &n);
        if (rc) return rc;
        for (size_t i = 0; i < n; i++) {
            if (kv[i].k2 > committed) return 0;
            factum_event ev;
            if ((rc = event_at(s, kv[i].v, &ev))) return rc;
            if (ev.stream_len && (rc = cb(ctx, ev.stream, ev.stream_len, kv[i].k2))) return rc;
            after = kv[i].k2;
        }
        if (n < KV_BATCH) return 0;
    }
}

int factum_stream_count(factum_store *s, uint64_t *count)
{
    if (!s || !count) return FACTUM_EINVAL;
    *count = idx_cat_count(s->idx);
    return 0;
}

/* A link's data, "<version>@<stream>", into *version and name (NUL-terminated). */
static int link_parse(const factum_event *link, uint64_t *version, char name[FACTUM_MAX_STREAM_LEN + 1])
{
    if (link->type_len != 2 || memcmp(link->type, FACTUM_LINK_TYPE, 2)) return FACTUM_EINVAL;
    const uint8_t *d = link->data, *end = d + link->data_len;
    uint64_t v = 0;
    size_t digits = 0;
    while (d < end && *d >= '0' && *d <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*d++ - '0');
        digits++;
    }
    if (!digits || d == end || *d != '@') return FACTUM_EINVAL;
    d++;
    size_t len = (size_t)(end - d);
    if (factum_check_stream_name((const char *)d, len)) return FACTUM_EINVAL;
    memcpy(name, d, len);
    name[len] = 0;
    *version = v;
    return 0;
}

int factum_resolve_link(factum_store *s, const factum_event *link, factum_event *target)
{
    if (!s || !link || !target) return FACTUM_EINVAL;
    char name[FACTUM_MAX_STREAM_LEN + 1];
    uint64_t version;
    int rc = link_parse(link, &version, name);
    if (rc) return rc;
    size_t n;
    if ((rc = factum_read_stream(s, name, version, FACTUM_FORWARD, target, 1, &n, NULL))) return rc;
    if (n != 1 || target->version != version) return FACTUM_ENOTFOUND;
    return 0;
}

int factum_resolve_link_asof(factum_store *s, const factum_event *link, const factum_asof *a, factum_event *target)
{
    if (!s || !link || !a || !target) return FACTUM_EINVAL;
    char name[FACTUM_MAX_STREAM_LEN + 1];
    uint64_t version;
    int rc = link_parse(link, &version, name);
    if (rc) return rc;
    size_t n;
    if ((rc = factum_read_stream_asof(s, name, a, version, FACTUM_FORWARD, target, 1, &n, NULL))) return rc;
    if (n != 1 || target->version != version) return FACTUM_ENOTFOUND;
    return 0;
}
