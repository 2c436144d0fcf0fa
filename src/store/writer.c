/*
 * writer.c - the single writer thread and group commit (ST-1).
 *
 * Producers queue requests (bounded; producers wait when it is full). The
 * writer takes everything queued, up to a group limit, and for each request
 * in order:
 *
 *   check   every part against the stream's state (committed state plus the
 *           group's overlay): tombstone, idempotent replay (ST-5), expected
 *           version. A failed part fails the request; nothing of it is kept.
 *   encode  the accepted parts' events into the group's batch buffer with
 *           consecutive positions and versions, and update the overlay.
 *
 *   size    the batch's real encoded size: a request that does not fit in a
 *           segment fails alone; one that does not fit after the others
 *           starts the next batch (ST-6).
 *
 * Then it writes the batch (LOG-3), fdatasyncs it once (durable mode),
 * indexes it, upserts the cache (ST-3), publishes the committed position
 * (ST-2) and completes every request of the batch. A failed write or
 * fdatasync fails the batch and latches the store (ST-4).
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/json.h"
#include "store/group.h"
#include "store/store_int.h"
#include "store/upcast.h"

#define QUEUE_MAX       4096
#define GROUP_MAX_REQS  4096
#define GROUP_MAX_BYTES (16u << 20)

/* ---- reading events that may be committed or in this group ---------- */

/* Id of `name`'s event at `version`: from the group if it was added here,
 * else from the store. 1 found, 0 not, < 0 error. */
static int event_id_at(factum_store *s, group *g, const char *name, size_t len, uint64_t hash,
                       uint64_t version, uint8_t id[16], uint64_t *position)
{
    for (size_t i = 0; i < g->n_ev; i++) {
        gev *e = &g->ev[i];
        if (e->hash == hash && e->version == version && e->stream_len == len &&
            !memcmp(e->stream, name, len)) {
            memcpy(id, e->id, 16);
            *position = e->position;
            return 1;
        }
    }
    factum_event ev;
    int rc = stream_event(s, name, len, hash, version, &ev, NULL);
    if (rc > 0) {
        memcpy(id, ev.id, 16);
        *position = ev.position;
    }
    return rc;
}

/* Version of `id` in stream `name` (group or store): 1 found, 0 not. */
static int find_id(factum_store *s, group *g, const char *name, size_t len, uint64_t hash,
                   const uint8_t id[16], uint64_t *version)
{
    for (size_t i = 0; i < g->n_ev; i++) {
        gev *e = &g->ev[i];
        if (e->hash == hash && !memcmp(e->id, id, 16) && e->stream_len == len &&
            !memcmp(e->stream, name, len)) {
            *version = e->version;
            return 1;
        }
    }
    uint64_t los[16];
    size_t n;
    int rc = idx_id_lookup(s->idx, id, los, 16, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        factum_event ev;
        if ((rc = event_at(s, los[i], &ev))) return rc;
        if (ev.stream_len == len && !memcmp(ev.stream, name, len) && !memcmp(ev.id, id, 16)) {
            *version = ev.version;
            return 1;
        }
    }
    return 0;
}

/* ---- checking a part ------------------------------------------------ */

enum { CHECK_WRITE = 0, CHECK_REPLAY = 1 };

/* Is this part an exact replay (ST-5)? Returns CHECK_REPLAY (res filled),
 * CHECK_WRITE, or an error. */
static int check_replay(factum_store *s, group *g, const wpart *p, const ovs *o, factum_append_result *res)
{
    const sstate *st = &o->st;
    size_t n = p->n;
    int have_ids = 1;
    for (size_t i = 0; i < n; i++)
        if (!p->events[i].has_id) have_ids = 0;
    if (!n || !have_ids || st->last_version < 0) return CHECK_WRITE;
    uint64_t start = UINT64_MAX;
    if (p->expected >= 0) {
        start = (uint64_t)p->expected + 1;
    } else if (p->expected == FACTUM_NO_STREAM) {
        start = (st->meta.truncate_before > 0 && st->meta.truncate_before != ST_TB_DELETED)
                    ? (uint64_t)st->meta.truncate_before
                    : 0;
    } else {
        uint64_t v;
        int rc = find_id(s, g, p->stream, p->stream_len, o->hash, p->events[0].id, &v);
        if (rc < 0) return rc;
        if (rc) start = v;
    }
    size_t matched = 0;
    uint64_t first_pos = 0, last_pos = 0;
    if (start != UINT64_MAX && start <= (uint64_t)st->last_version) {
        for (size_t i = 0; i < n && start + i <= (uint64_t)st->last_version; i++) {
            uint8_t id[16];
            uint64_t pos;
            int rc = event_id_at(s, g, p->stream, p->stream_len, o->hash, start + i, id, &pos);
            if (rc < 0) return rc;
            if (!rc || memcmp(id, p->events[i].id, 16) != 0) break;
            if (i == 0) first_pos = pos;
            last_pos = pos;
            matched++;
        }
    }
    if (matched == n) {
        res->first_version = start;
        res->last_version = start + n - 1;
        res->first_position = first_pos;
        res->last_position = last_pos;
        res->idempotent = 1;
        res->timestamp_ns = 0;
        return CHECK_REPLAY;
    }
    if (matched > 0) return FACTUM_EIDEMPOTENCY;
    {
        /* Not a replay: then none of the ids may be in the stream already
         * (a partial overlap, or the same events at another place). An id
         * is thus never twice in one stream. */
        int first_known_absent = p->expected < 0 && p->expected != FACTUM_NO_STREAM && start == UINT64_MAX;
        for (size_t i = first_known_absent ? 1 : 0; i < n; i++) {
            uint64_t v;
            int rc = find_id(s, g, p->stream, p->stream_len, o->hash, p->events[i].id, &v);
            if (rc < 0) return rc;
            if (rc) return FACTUM_EIDEMPOTENCY;
        }
    }
    return CHECK_WRITE;
}

static int check_expected(const sstate *st, int64_t expected, factum_append_result *res)
{
    int64_t last = st->last_version;
    int sd = sstate_soft_deleted(st);
    int ok;
    if (expected == FACTUM_ANY)
        ok = 1;
    else if (expected == FACTUM_NO_STREAM)
        ok = last < 0 || sd;
    else if (expected == FACTUM_STREAM_EXISTS)
        ok = (last >= 0 || st->meta_version >= 0) && !sd; /* KurrentDB: metadata alone makes it exist */
    else
        ok = expected >= 0 && last == expected;
    if (ok) return 0;
    res->actual_version = last < 0 ? FACTUM_NO_STREAM : last;
    return FACTUM_EWRONGVERSION;
}

/* ---- encoding -------------------------------------------------------- */

static int add_event(factum_store *s, group *g, ovs *o, const char *type, size_t type_len,
                     const uint8_t id[16], uint32_t flags, const void *data, size_t data_len,
                     const void *meta, size_t meta_len, uint64_t version, uint32_t frame_flags, gev **out)
{
    (void)s;
    factum_event ev = {0};
    ev.stream = o->name;
    ev.stream_len = o->len;
    ev.type = type;
    ev.type_len = type_len;
    memcpy(ev.id, id, 16);
    ev.flags = flags;
    ev.version = version;
    ev.position = g->first_pos + g->n_ev;
    ev.timestamp_ns = g->ts;
    ev.data = data;
    ev.data_len = data_len;
    ev.metadata = meta;
    ev.metadata_len = meta_len;
    uint32_t len = log_event_frame_len(o->len, type_len, data_len, meta_len);
    if (base_buf_reserve(&g->buf, len)) return -ENOMEM;
    if (group_grow((void **)&g->ev, &g->cap_ev, g->n_ev + 1, sizeof *g->ev)) return -ENOMEM;
    if (group_grow((void **)&g->dig, &g->cap_dig, g->n_ev + 1, LOG_HASH_LEN)) return -ENOMEM;
    if (!g->hasher_ready) {
        int rc = log_hasher_init(&g->hasher);
        if (rc) return rc;
        g->hasher_ready = 1;
    }
    size_t off = g->buf.len;
    log_encode_event(g->buf.data + off, &ev, frame_flags);
    /* LOG-7: the frame's digest now, while it is in the cache (used if the
     * batch goes into a segment of chained batches, as all new ones are). */
    int hrc = log_chain_event(&g->hasher, g->buf.data + off, len, g->dig[g->n_ev]);
    if (hrc) return hrc;
    g->buf.len += len;
    gev *e = &g->ev[g->n_ev++];
    *e = (gev){o->hash, o->name, o->len, version, ev.position, {0}, off, (frame_flags & ST_EV_CREATES) != 0};
    memcpy(e->id, id, 16);
    if (out) *out = e;
    return 0;
}

/* The metadata document of stream state `o` with $tb set to tb (>= 0),
 * into g->scratch. Its size is the old document's: up to max_event_size,
 * which is why process_request checks the real encoded size (ST-6). */
static int meta_with_tb(factum_store *s, group *g, const ovs *o, int64_t tb)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    factum_event ev;
    if (o->meta_off) {
        int type;
        if (log_decode_frame(g->buf.data + o->meta_off, g->buf.len - o->meta_off, &type, &ev, NULL, NULL) <=
            0)
            return FACTUM_ECORRUPT;
        data = ev.data;
        len = ev.data_len;
    } else if (o->st.meta_lo) {
        int rc = event_at(s, o->st.meta_lo, &ev);
        if (rc) return rc;
        data = ev.data;
        len = ev.data_len;
    }
    json_value *doc = NULL;
    if (data && (json_parse((const char *)data, len, &doc) || doc->type != JSON_OBJECT)) {
        json_free(doc);
        doc = NULL; /* unreadable old metadata: start afresh */
    }
    base_buf *b = &g->scratch;
    b->len = 0;
    int rc = base_buf_append(b, "{", 1);
    int first = 1;
    for (size_t i = 0; doc && i < doc->n && !rc; i++) {
        if (strcmp(doc->keys[i], "$tb") == 0) continue;
        if (!first) rc = base_buf_append(b, ",", 1);
        first = 0;
        if (!rc) rc = json_write_string(b, doc->keys[i], doc->key_lens[i]);
        if (!rc) rc = base_buf_append(b, ":", 1);
        if (!rc) rc = json_write_value(b, doc->items[i]);
    }
    if (!rc) rc = base_buf_printf(b, "%s\"$tb\":%lld", first ? "" : ",", (long long)tb);
    if (!rc) rc = base_buf_append(b, "}", 1);
    json_free(doc);
    return rc;
}

/* Append a `$metadata` event with g->scratch as data to `$$<o>`. */
static int add_meta_event(factum_store *s, group *g, size_t o_index, uint32_t frame_flags)
{
    char mname[FACTUM_MAX_STREAM_LEN + 3];
    ovs *o = &g->ov[o_index];
    size_t mlen = meta_stream_name(o->name, o->len, mname);
    const char *kept = keep_name(g, mname, mlen);
    if (!kept) return -ENOMEM;
    ovs *m;
    int rc = ov_get(s, g, kept, mlen, &m);
    if (rc) return rc;
    size_t mi = (size_t)(m - g->ov);
    if ((rc = ov_touch(g, mi)) || (rc = ov_touch(g, o_index))) return rc;
    m = &g->ov[mi];
    uint8_t id[16];
    factum_uuid_v4(id);
    gev *e;
    uint64_t version = (uint64_t)(m->st.last_version + 1);
    rc = add_event(s, g, m, "$metadata", 9, id, FACTUM_EVENT_JSON, g->scratch.data, g->scratch.len, NULL, 0,
                   version, frame_flags | (m->st.last_version < 0 ? ST_EV_CREATES : 0), &e);
    if (rc) return rc;
    m->st.last_version = (int64_t)version;
    m->st.last_position = e->position;
    m->dirty = 1;
    o = &g->ov[o_index]; /* ov may have moved */
    o->meta_off = e->off;
    o->st.meta_version = (int64_t)version;
    meta_parse_lenient(g->scratch.data, g->scratch.len, &o->st.meta);
    o->dirty = 1;
    return 0;
}

/* After an event was appended to a `$$<x>` stream: update x's metadata. */
static int meta_appended(factum_store *s, group *g, const ovs *mstream, const gev *e, const void *data,
                         size_t len)
{
    ovs *target;
    const char *tname = mstream->name + 2;
    size_t tlen = mstream->len - 2;
    int rc = ov_get(s, g, tname, tlen, &target);
    if (rc) return rc;
    size_t ti = (size_t)(target - g->ov);
    if ((rc = ov_touch(g, ti))) return rc;
    target = &g->ov[ti];
    target->meta_off = e->off;
    target->st.meta_version = (int64_t)e->version;
    meta_parse_lenient(data, len, &target->st.meta);
    target->dirty = 1;
    return 0;
}

static int is_meta_stream(const char *name, size_t len)
{
    return len > 2 && name[0] == '$' && name[1] == '$';
}

/* Crypto-shredding (seal.c, SEAL-1): the key of the data subject whose key
 * seals the events appended to g->ov[oi], made if new. 1 with *kid and key,
 * 0 when the stream has no subject, or an error. g->ov may move. */
static int part_seal_key(factum_store *s, group *g, size_t oi, uint32_t *kid, uint8_t key[32])
{
    if (!seal_enabled(s)) return 0;
    const char *name = g->ov[oi].name;
    size_t len = g->ov[oi].len;
    size_t pl = sizeof FACTUM_SNAPSHOT_PREFIX - 1;
    int snap = len > pl && memcmp(name, FACTUM_SNAPSHOT_PREFIX, pl) == 0;
    if (snap) { /* a snapshot has its stream's subject */
        name += pl;
        len -= pl;
    }
    if (!len || name[0] == '$') return 0;
    const char *sub;
    size_t sub_len;
    char buf[256];
    if (!seal_category_subject(s, name, len, &sub, &sub_len)) {
        ovs *t = &g->ov[oi];
        int rc;
        if (snap && (rc = ov_get(s, g, name, len, &t))) return rc;
        if (!t->st.meta.has_subject) return 0;
        factum_event ev;
        int type;
        if (t->meta_off) {
            if (log_decode_frame(g->buf.data + t->meta_off, g->buf.len - t->meta_off, &type, &ev, NULL, NULL) <= 0)
                return FACTUM_ECORRUPT;
        } else if (!t->st.meta_lo || (rc = event_at(s, t->st.meta_lo, &ev))) {
            return t->st.meta_lo ? rc : 0;
        }
        if (!seal_doc_subject(ev.data, ev.data_len, buf, &sub_len)) return 0;
        sub = buf;
    }
    int rc = seal_subject_key(s, sub, sub_len, kid, key);
    return rc ? rc : 1;
}

/* Encode one accepted part. */
static int encode_part(factum_store *s, group *g, const wpart *p, size_t oi, factum_append_result *res,
                       int first_part, int last_part)
{
    int rc = ov_touch(g, oi);
    if (rc) return rc;
    ovs *o = &g->ov[oi];
    int64_t last = o->st.last_version;
    res->idempotent = 0;
    res->timestamp_ns = g->ts;
    uint32_t commit_first = first_part ? LOG_EV_COMMIT_FIRST : 0;
    if (p->op == OP_TOMBSTONE) {
        uint8_t id[16];
        factum_uuid_v4(id);
        gev *e;
        rc = add_event(s, g, o, "$streamDeleted", 14, id, 0, NULL, 0, NULL, 0, FACTUM_TOMBSTONE_VERSION,
                       commit_first | (last_part ? LOG_EV_COMMIT_LAST : 0) | (last < 0 ? ST_EV_CREATES : 0),
                       &e);
        if (rc) return rc;
        o = &g->ov[oi];
        o->st.last_version = INT64_MAX;
        o->st.last_position = e->position;
        o->dirty = 1;
        res->first_version = res->last_version = FACTUM_TOMBSTONE_VERSION;
        res->first_position = res->last_position = e->position;
        return 0;
    }
    if (p->op == OP_DELETE) {
        /* As KurrentDB: the document holds $tb alone; earlier keys go. */
        g->scratch.len = 0;
        if ((rc = base_buf_printf(&g->scratch, "{\"$tb\":%lld}", (long long)ST_TB_DELETED))) return rc;
        size_t before = g->n_ev;
        rc = add_meta_event(s, g, oi, commit_first | (last_part ? LOG_EV_COMMIT_LAST : 0));
        if (rc) return rc;
        o = &g->ov[oi];
        res->first_version = res->last_version = (uint64_t)(last < 0 ? -1 : last);
        res->first_position = res->last_position = g->ev[before].position;
        return 0;
    }
    if (p->n == 0) {
        res->first_version = res->last_version = (uint64_t)last;
        res->first_position = res->last_position = o->st.last_position;
        return 0;
    }
    if (sstate_soft_deleted(&o->st)) {
        /* Recreating a soft-deleted stream: old events stay hidden. */
        if ((rc = meta_with_tb(s, g, o, last + 1))) return rc;
        if ((rc = add_meta_event(s, g, oi, commit_first))) return rc;
        commit_first = 0;
        o = &g->ov[oi];
    }
    int meta = is_meta_stream(o->name, o->len);
    uint32_t kid = 0;
    uint8_t key[32];
    int sealed = part_seal_key(s, g, oi, &kid, key);
    if (sealed < 0) return sealed;
    o = &g->ov[oi];
    for (size_t i = 0; i < p->n; i++) {
        const factum_event_data *d = &p->events[i];
        uint8_t id[16];
        if (d->has_id)
            memcpy(id, d->id, 16);
        else
            factum_uuid_v4(id);
        uint64_t version = (uint64_t)(last + 1 + (int64_t)i);
        uint32_t ff = (i == 0 ? commit_first : 0) | (i + 1 == p->n && last_part ? LOG_EV_COMMIT_LAST : 0) |
                      (i == 0 && last < 0 ? ST_EV_CREATES : 0);
        gev *e;
        size_t tlen = strlen(d->type);
        if (sealed) {
            rc = seal_event(&g->gcm, kid, key, o->name, o->len, d->type, tlen, id, d->data, d->data_len,
                            d->metadata, d->metadata_len, &g->seal_out);
            if (!rc)
                rc = add_event(s, g, o, d->type, tlen, id, d->flags, g->seal_out.data, g->seal_out.len, NULL, 0,
                               version, ff | LOG_EV_SEALED, &e);
        } else {
            rc = add_event(s, g, o, d->type, tlen, id, d->flags, d->data, d->data_len, d->metadata,
                           d->metadata_len, version, ff, &e);
        }
        if (rc) {
            OPENSSL_cleanse(key, sizeof key);
            return rc;
        }
        o = &g->ov[oi];
        if (i == 0) res->first_position = e->position;
        res->last_position = e->position;
        if (meta) {
            if ((rc = meta_appended(s, g, o, e, d->data, d->data_len))) return rc;
            o = &g->ov[oi];
        }
    }
    OPENSSL_cleanse(key, sizeof key);
    o->st.last_version = last + (int64_t)p->n;
    o->st.last_position = res->last_position;
    o->dirty = 1;
    res->first_version = (uint64_t)(last + 1);
    res->last_version = (uint64_t)o->st.last_version;
    return 0;
}

/* ---- sizes (ST-6) ---------------------------------------------------- */

/* A batch, its frame included, never crosses a segment (LOG-1). */
static uint64_t batch_room(const factum_store *s)
{
    return s->seg_size - LOG_SEG_HEADER;
}

/* What a group's batch should hold at most: take_group's target (on the
 * requests' estimates) and process_request's split point (on real sizes). */
static size_t group_limit(const factum_store *s)
{
    size_t limit = GROUP_MAX_BYTES;
    if (limit > batch_room(s) - GROUP_HDR) limit = (size_t)(batch_room(s) - GROUP_HDR);
    return limit;
}

/* process_request: the request does not fit after the others of this
 * batch; it was undone and goes first into the next batch. */
#define REQ_NEXT_BATCH 1

/* Check, then encode, one request (all or nothing). Returns 0 (r->rc is
 * then the request's outcome), a negative code for the request, or
 * REQ_NEXT_BATCH. */
static int process_request(factum_store *s, group *g, wreq *r)
{
    size_t mark_buf = g->buf.len, mark_ev = g->n_ev, mark_ov = g->n_ov;
    size_t nparts = r->n_parts;
    size_t oi_small[16];
    int dec_small[16];
    size_t *oi = nparts <= 16 ? oi_small : malloc(nparts * sizeof *oi);
    int *dec = nparts <= 16 ? dec_small : malloc(nparts * sizeof *dec);
    int rc = (oi && dec) ? 0 : -ENOMEM;
    size_t replays = 0, writes = 0;
    for (size_t i = 0; i < nparts && !rc; i++) {
        wpart *p = &r->parts[i];
        factum_append_result *res = &r->results[i];
        memset(res, 0, sizeof *res);
        res->actual_version = FACTUM_NO_STREAM;
        ovs *o;
        if ((rc = ov_get(s, g, p->stream, p->stream_len, &o))) {
            r->failed = i;
            break;
        }
        oi[i] = (size_t)(o - g->ov);
        const sstate *st = &o->st;
        if (sstate_tombstoned(st)) {
            rc = FACTUM_EDELETED;
            r->failed = i;
            break;
        }
        if (p->op == OP_APPEND) {
            rc = check_replay(s, g, p, o, res);
            if (rc == CHECK_REPLAY) {
                dec[i] = CHECK_REPLAY;
                replays++;
                rc = 0;
                continue;
            }
            if (rc < 0) {
                r->failed = i;
                break;
            }
        }
        if ((rc = check_expected(st, p->expected, res))) {
            r->failed = i;
            break;
        }
        dec[i] = CHECK_WRITE;
        if (p->op != OP_APPEND || p->n) writes++;
    }
    if (!rc && replays && writes) {
        rc = FACTUM_EIDEMPOTENCY; /* some parts replayed, others new */
        for (size_t i = nparts; i-- > 0;)
            if (dec[i] == CHECK_REPLAY) r->failed = i;
    }
    /* States loaded into the overlay while checking are committed states:
     * keeping them is harmless even when the request fails. */
    g->req_seq++;
    g->n_undo = 0;
    /* Sizes are checked here, on the real encoded size, before anything
     * is written (ST-6): re-creating a soft-deleted stream adds a copy of
     * its metadata that no estimate made in the caller's thread can know. */
    int alone = mark_buf == GROUP_HDR;
    for (size_t i = 0; i < nparts && !rc; i++) {
        if (dec[i] == CHECK_REPLAY) continue;
        rc = encode_part(s, g, &r->parts[i], oi[i], &r->results[i], i == 0, i + 1 == nparts);
        if (!rc && g->buf.len > (alone ? batch_room(s) : GROUP_HDR + group_limit(s)))
            rc = alone ? FACTUM_ETOOBIG : REQ_NEXT_BATCH;
        if (rc) r->failed = i;
    }
    if (rc && (g->buf.len != mark_buf || g->n_ev != mark_ev || g->n_undo)) {
        /* A resource error or a size limit half-way through encoding: undo
         * this request. */
        for (size_t k = g->n_undo; k-- > 0;)
            g->ov[g->undo[k].idx] = g->undo[k].saved;
        g->buf.len = mark_buf;
        g->n_ev = mark_ev;
        if (g->n_ov > mark_ov) {
            g->n_ov = mark_ov;
            ov_rebuild_index(g);
        }
    }
    if (oi != oi_small) free(oi);
    if (dec != dec_small) free(dec);
    return rc;
}

/* ---- committing ------------------------------------------------------ */

static void set_failed(factum_store *s, int rc)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&s->failed, &zero, rc))
        store_log(s, FACTUM_LOG_ERROR, "store stopped after an I/O error: %s (reopen to recover)",
                  factum_strerror(rc));
}

static void sync_account(factum_store *s, uint64_t dt)
{
    atomic_fetch_add(&s->st_fsyncs, 1);
    atomic_fetch_add(&s->st_fsync_ns, dt);
    uint64_t mx = atomic_load(&s->st_fsync_max);
    while (dt > mx && !atomic_compare_exchange_weak(&s->st_fsync_max, &mx, dt)) {
    }
}

static int do_sync(factum_store *s)
{
    uint64_t t0 = base_mono_ns();
    int rc = log_sync(s->log);
    sync_account(s, base_mono_ns() - t0);
    s->unsynced = 0;
    s->last_sync_ns = base_mono_ns();
    return rc;
}

/* Write the group's batch (page cache). *need_sync: it must be fdatasync'd
 * before it is published (durable mode, a factum_store_sync in the group,
 * or relaxed mode's interval is over). Returns 0 or the I/O error. */
static int commit_write(factum_store *s, group *g, int want_sync, uint64_t *lo_out, int *need_sync)
{
    *need_sync = 0;
    *lo_out = 0;
    if (!g->n_ev) {
        *need_sync = want_sync && s->unsynced;
        return 0;
    }
    int durable = s->opts.durability == FACTUM_DURABLE;
    uint32_t flags = durable ? LOG_BATCH_DURABLE : 0;
    uint64_t body = g->buf.len - GROUP_HDR, lo;
    /* A scavenge with seal: this batch starts a new segment, so that every
     * earlier one is sealed and can be compacted (ADR 0026). */
    if (atomic_exchange(&s->seal_req, 0)) log_seal(s->log);
    /* SEAL-1: the keys of the group's new data subjects are durable before
     * anything sealed under them is written (one fdatasync for all). */
    int rc = seal_sync(s);
    if (rc) return rc;
    rc = log_reserve(s->log, g->buf.len, &lo);
    if (rc) return rc;
    size_t skip = 0;
    g->chained = log_seg_chained(s->log, lo);
    if (g->chained) {
        /* LOG-7: the batch's hash covers the frame's bytes 8..39, which the
         * plain encoding writes alike, and every event frame. */
        log_encode_batch(g->buf.data, (uint32_t)g->n_ev, g->first_pos, body, g->ts, flags, NULL);
        if ((rc = log_chain_combine(&g->hasher, s->log->chain, g->buf.data, (const uint8_t *)g->dig, g->n_ev,
                                    g->chain)))
            return rc;
        log_encode_batch(g->buf.data, (uint32_t)g->n_ev, g->first_pos, body, g->ts, flags, g->chain);
    } else {
        skip = GROUP_HDR - LOG_BATCH_FRAME_LEN;
        log_encode_batch(g->buf.data + skip, (uint32_t)g->n_ev, g->first_pos, body, g->ts, flags, NULL);
    }
    if ((rc = log_write(s->log, lo, g->buf.data + skip, g->buf.len - skip))) return rc;
    if (g->chained) {
        memcpy(s->log->chain, g->chain, LOG_HASH_LEN);
        s->log->chain_pos = g->first_pos + g->n_ev - 1;
    }
    lo -= skip; /* where the buffer's start would be: event frames are at lo + their offset */
    s->unsynced = 1;
    /* Relaxed: the writer thread syncs every interval when idle; a leader
     * that never lets go of the lead (a queue that never empties) syncs
     * here, so the loss window stays flush_interval_ms. */
    int due = !durable && base_mono_ns() - atomic_load(&s->last_sync_ns) >=
                              (uint64_t)s->opts.flush_interval_ms * 1000000u;
    *need_sync = durable || want_sync || due;
    *lo_out = lo;
    return 0;
}

/* Index the written (and, as needed, synced) group, update the cache and
 * publish it (ST-2, ST-3). */
static void commit_publish(factum_store *s, group *g, uint64_t lo)
{
    if (!g->n_ev) return;
    atomic_fetch_add(&s->st_events, g->n_ev);
    atomic_fetch_add(&s->st_bytes, g->buf.len);
    /* Index entries (IDX-1 is the index thread's business). */
    int irc = 0;
    for (int k = 0; k < IDX_KINDS && !irc; k++)
        irc = group_grow((void **)&g->ent[k], &g->cap_ent[k], g->n_ev, sizeof(idx_entry));
    if (!irc) irc = group_grow((void **)&g->los, &g->cap_los, g->n_ev, sizeof(uint64_t));
    if (!irc) {
        for (size_t i = 0; i < g->n_ev; i++) {
            gev *e = &g->ev[i];
            uint64_t elo = lo + e->off;
            g->los[i] = elo;
            g->ent[IDX_STREAM][g->n_ent[IDX_STREAM]++] = (idx_entry){e->hash, e->version, elo};
            g->ent[IDX_ID][g->n_ent[IDX_ID]++] = (idx_entry){base_get64(e->id), base_get64(e->id + 8), elo};
            if (e->creates) g->ent[IDX_CAT][g->n_ent[IDX_CAT]++] = (idx_entry){e->position, e->hash, elo};
        }
        irc = idx_posmap_put(s->idx, g->first_pos, g->los, g->n_ev);
    }
    if (!irc) {
        const idx_entry *ents[IDX_KINDS] = {g->ent[0], g->ent[1], g->ent[2]};
        irc = idx_add(s->idx, ents, g->n_ent, lo + g->buf.len, g->first_pos + g->n_ev);
    }
    for (size_t i = 0; i < g->n_ov; i++) {
        ovs *o = &g->ov[i];
        if (!o->dirty) continue;
        if (o->meta_off) o->st.meta_lo = lo + o->meta_off;
        cache_put(&s->cache, o->hash, o->name, o->len, &o->st);
        if (upc_is_stream(o->name, o->len) || (o->len > 2 && o->name[0] == '$' && o->name[1] == '$' &&
                                                upc_is_stream(o->name + 2, o->len - 2)))
            atomic_fetch_add(&s->upc_gen, 1); /* UPC-2 */
    }
    if (g->chained) {
        pthread_mutex_lock(&s->chain_mu);
        memcpy(s->chain_head, g->chain, sizeof s->chain_head);
        s->chain_pos = g->first_pos + g->n_ev - 1;
        pthread_mutex_unlock(&s->chain_mu);
    }
    atomic_store(&s->log_end, lo + g->buf.len);
    atomic_store_explicit(&s->committed_pos, g->first_pos + g->n_ev - 1, memory_order_release);
    notify_commit(s, g->first_pos + g->n_ev - 1);
    if (irc) {
        /* The events are durable, but the in-memory index could not take
         * them: stop accepting appends; reopening rebuilds the index. */
        set_failed(s, irc);
    }
}

/* Write, sync and index the group. Returns 0 or the I/O error. */
static int commit_group(factum_store *s, group *g, int want_sync)
{
    uint64_t lo;
    int need_sync;
    int rc = commit_write(s, g, want_sync, &lo, &need_sync);
    if (!rc && need_sync) rc = do_sync(s);
    if (rc) return rc;
    commit_publish(s, g, lo);
    return 0;
}

/* ---- completion ------------------------------------------------------ */

/* Waking a waiting caller: its request's state word, with a futex. The
 * waker may touch the word after the caller saw it change and returned
 * (its stack may be reused); a futex wake there is at worst a spurious
 * wake-up of a later wait, which re-checks its own word. No lock is held,
 * so woken callers do not stumble on q_mu. */
static void wstate_set(wreq *r, int bit)
{
    atomic_fetch_or(&r->wstate, bit);
    syscall(SYS_futex, (int *)&r->wstate, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int wstate_wait(wreq *r)
{
    int st;
    while ((st = atomic_load(&r->wstate)) == 0)
        syscall(SYS_futex, (int *)&r->wstate, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return st;
}

/* ---- callbacks --------------------------------------------------------
 *
 * Asynchronous appends are called back on the store's writer thread only,
 * never on an application thread: a thread leading groups inside its own
 * factum_append hands the asynchronous requests it completed to the writer
 * thread (cq, in completion order) instead of calling them back itself. So
 * a callback never runs inside a caller's factum_append (where the caller
 * may hold its own locks), and callbacks run one at a time, in commit order.
 * A callback that calls a function waiting for the writer (a synchronous
 * append, sync, close, waiting for a position) would wait for itself: those
 * calls fail at once with -EDEADLK there, and an asynchronous append that
 * finds the queue full fails with -EAGAIN instead of waiting for room.
 */

static _Thread_local const factum_store *tl_writer_of;   /* set on the writer thread */
static _Thread_local const factum_store *tl_callback_of; /* set while a callback runs */

int writer_in_callback(const factum_store *s)
{
    return tl_callback_of == s;
}

void writer_call_back(factum_store *s, wreq *list)
{
    const factum_store *outer = tl_callback_of;
    tl_callback_of = s;
    for (wreq *r = list; r;) {
        wreq *next = r->next;
        r->cb(r->ctx, r->rc, r->results, r->n_parts, r->failed);
        if (r->owns_memory) free(r); /* parts and results share its allocation */
        r = next;
    }
    tl_callback_of = outer;
}

/* Wake the writer thread for work it has to do. */
static void wake_writer(factum_store *s)
{
    if (atomic_load(&s->writer_spinning))
        atomic_store_explicit(&s->writer_kick, 1, memory_order_release);
    else
        pthread_cond_signal(&s->q_cv);
}

/* The callbacks handed to the writer thread so far (q_mu held). */
static wreq *take_callbacks(factum_store *s)
{
    wreq *l = s->cq_head;
    s->cq_head = s->cq_tail = NULL;
    return l;
}

void writer_complete_now(factum_store *s, wreq *list)
{
    wreq *cbs = NULL, **cbs_tail = &cbs, *cbs_last = NULL;
    /* Waiting callers first: no callback delays an acknowledgement. */
    for (wreq *r = list; r;) {
        wreq *next = r->next; /* read before the caller may let go of r */
        atomic_fetch_add(&s->st_appends, r->kind == REQ_APPEND);
        if (r->drv) {
            drive_deliver(r->drv, r); /* called back on the driver's thread */
        } else if (r->cb) {
            r->next = NULL;
            *cbs_tail = cbs_last = r;
            cbs_tail = &r->next;
        } else {
            wstate_set(r, WSTATE_DONE);
        }
        r = next;
    }
    if (!cbs) return;
    pthread_mutex_lock(&s->q_mu);
    if (s->cq_tail)
        s->cq_tail->next = cbs;
    else
        s->cq_head = cbs;
    s->cq_tail = cbs_last;
    wreq *now = tl_writer_of == s ? take_callbacks(s) : NULL;
    pthread_mutex_unlock(&s->q_mu);
    if (now)
        writer_call_back(s, now); /* earlier ones handed over by other leaders first */
    else
        wake_writer(s);
}

/* Complete the requests of list, except those an acknowledgement gate
 * holds (gate.c): they are completed when the gates let them go. */
static void complete(factum_store *s, wreq *list)
{
    if (atomic_load_explicit(&s->n_gates, memory_order_acquire)) list = gate_hold(s, list);
    if (list) writer_complete_now(s, list);
}

static void fail_all(wreq *list, int rc)
{
    for (wreq *r = list; r; r = r->next) {
        r->rc = rc;
        r->failed = 0;
    }
}

/* Check and encode requests of `list` into one batch (g). Returns the
 * requests that do not fit in this batch (the tail of list, from the first
 * that did not), or NULL. *done: the store had failed, or memory ran out:
 * list was completed with that error, there is nothing to commit. */
static wreq *batch_encode(factum_store *s, group *g, wreq *list, int *want_sync_out, int *done)
{
    group_reset(g);
    *done = 1;
    int failed = atomic_load(&s->failed);
    if (failed) {
        fail_all(list, FACTUM_EFAILED);
        complete(s, list);
        return NULL;
    }
    g->first_pos = atomic_load(&s->committed_pos) + 1;
    int64_t now = base_now_ns();
    g->ts = now > s->last_ts ? now : s->last_ts + 1;
    s->last_ts = g->ts;
    int want_sync = 0;
    if (base_buf_reserve(&g->buf, GROUP_HDR)) {
        fail_all(list, -ENOMEM);
        complete(s, list);
        return NULL;
    }
    *done = 0;
    g->buf.len = GROUP_HDR;
    wreq *rest = NULL;
    for (wreq *r = list, *prev = NULL; r; prev = r, r = r->next) {
        r->rc = 0;
        r->failed = 0;
        if (r->kind == REQ_SYNC) {
            want_sync = 1;
            continue;
        }
        int rc = process_request(s, g, r);
        if (rc == REQ_NEXT_BATCH) {
            /* Only a request after others can be moved, so prev is set. */
            prev->next = NULL;
            rest = r;
            break;
        }
        r->rc = rc;
    }
    *want_sync_out = want_sync;
    return rest;
}

/* The batch of list was committed (rc 0) or failed with the I/O error rc
 * (ST-4): complete its requests. */
static void batch_finish(factum_store *s, wreq *list, int rc)
{
    if (rc) {
        set_failed(s, rc);
        for (wreq *r = list; r; r = r->next)
            if (!r->rc) r->rc = rc;
    }
    atomic_fetch_add(&s->st_groups, 1);
    uint64_t nreq = 0;
    for (wreq *r = list; r; r = r->next)
        nreq++;
    uint64_t mx = atomic_load(&s->st_group_max);
    if (nreq > mx) atomic_store(&s->st_group_max, nreq);
    complete(s, list);
}

/* Check and encode requests of `list` into one batch, commit it and
 * complete its requests. Returns the requests that did not fit in this
 * batch (the tail of list, from the first that did not), or NULL. */
static wreq *run_batch(factum_store *s, group *g, wreq *list)
{
    int want_sync, done;
    wreq *rest = batch_encode(s, g, list, &want_sync, &done);
    if (done) return NULL;
    batch_finish(s, list, commit_group(s, g, want_sync));
    return rest;
}

/* Process one group: as many batches as its requests' real sizes need,
 * in queue order. */
static void run_group(factum_store *s, group *g, wreq *list)
{
    while (list)
        list = run_batch(s, g, list);
}

/* ---- leadership ------------------------------------------------------
 *
 * Whoever leads runs groups; there is at most one leader at a time (ST-1).
 * A thread calling factum_append queues its request and, if nobody leads,
 * leads itself: a lone client then pays no thread switch at all, only its
 * write and fdatasync. While a group is being written, later callers queue
 * up and wait; when the leader's own request is done and requests remain,
 * it hands the lead to the thread of the oldest one (or to the writer thread
 * for asynchronous requests, which have no thread of their own). The
 * writer thread also does relaxed mode's periodic fdatasync and drains the
 * queue on close. Leadership passes under q_mu, which orders the leader-only
 * state (the group, the log tail, `unsynced`) between leaders.
 */

/* SYNC-2: a request of a SYNC driver waits for its driver's run to lead
 * it. Nobody else takes the lead for such requests alone: not the writer
 * thread when it happens to be awake (it would make the hand-offs SYNC is
 * there to avoid, and commit them behind the driver's back), not hand_off.
 * Any other request in the queue still gets a leader at once, and that
 * leader takes the deferred ones along (whoever leads takes the queue in
 * order), so nothing but a SYNC driver's own requests ever waits for its
 * thread. q_deferred counts them (q_mu). */
static int is_deferred(const wreq *r)
{
    return r->drv && drive_is_sync(r->drv);
}

/* Is there a request that someone must lead now (q_mu held)? */
static int queue_wants_leader(const factum_store *s)
{
    return s->q_head && (s->q_len > s->q_deferred || s->stopping);
}

/* Take a group off the queue (q_mu held, queue non-empty). */
static wreq *take_group(factum_store *s)
{
    size_t limit = group_limit(s);
    wreq *list = s->q_head, *last = list;
    size_t bytes = list->bytes, n = 1, deferred = is_deferred(list);
    while (last->next && n < GROUP_MAX_REQS && bytes + last->next->bytes <= limit) {
        last = last->next;
        bytes += last->bytes;
        n++;
        deferred += is_deferred(last);
    }
    s->q_head = last->next;
    if (!s->q_head) s->q_tail = NULL;
    last->next = NULL;
    s->q_len -= n;
    s->q_deferred -= deferred;
    if (s->q_waiting_space) pthread_cond_broadcast(&s->q_space);
    return list;
}

/* Pass the lead on (q_mu held): to the oldest queued request's thread, or
 * to the writer thread, or to nobody if the queue is empty. */
static void hand_off(factum_store *s)
{
    wreq *h = s->q_head;
    if (!h) {
        s->leader = 0;
        return;
    }
    if (!queue_wants_leader(s)) {
        /* SYNC-2: only SYNC drivers' requests: their drivers lead them. */
        s->leader = 0;
        struct factum_driver *told = NULL;
        for (wreq *q = h; q; q = q->next)
            if (q->drv != told) drive_signal(told = q->drv);
        return;
    }
    if (!h->cb) {
        wstate_set(h, WSTATE_LEAD);
    } else {
        s->writer_lead = 1;
        pthread_cond_signal(&s->q_cv);
    }
}

/* Run groups (q_mu held on entry and exit) until `me` is done (or, for the
 * writer thread, me == NULL, until the queue is empty). */
#define EXTRA_GROUPS 2 /* groups a leader runs for others after its own is done */
#define SPIN_NS 300000u        /* how long the writer thread looks for work before sleeping */
#define SPIN_AFTER_NS 2000000u /* ... if it led a group this recently */

static void lead(factum_store *s, wreq *me)
{
    int extra = 0;
    while (s->q_head) {
        if (!me || (atomic_load(&me->wstate) & WSTATE_DONE)) {
            /* Groups for others: only while one of them needs a leader.
             * SYNC-2: a queue of SYNC drivers' requests alone is theirs to
             * lead, also for the writer thread just back from a group
             * whose callbacks let their submitter queue them. */
            if (!queue_wants_leader(s)) break;
            if (me && extra++ >= EXTRA_GROUPS) break;
        }
        if (s->abandon) {
            wreq *list = s->q_head;
            s->q_head = s->q_tail = NULL;
            s->q_len = 0;
            s->q_deferred = 0;
            pthread_cond_broadcast(&s->q_space);
            pthread_mutex_unlock(&s->q_mu);
            fail_all(list, FACTUM_ECLOSED);
            complete(s, list);
            pthread_mutex_lock(&s->q_mu);
            break;
        }
        wreq *list = take_group(s);
        pthread_mutex_unlock(&s->q_mu);
        run_group(s, s->grp, list);
        pthread_mutex_lock(&s->q_mu);
    }
    hand_off(s);
}

/* ---- a driver leads (drive.c, docs/adr/0020) ---------------------------
 *
 * A driver's thread leads without ever waiting: it takes a group, checks,
 * encodes and writes it (the page cache: microseconds), has its driver
 * start the fdatasync (an io_uring operation) and returns with the lead
 * kept; the group is then "in flight" (g->fl_*). Requests arriving
 * meanwhile queue as for any leader. When the fdatasync completes, the
 * driver's thread calls writer_drive_synced: the group is published and
 * completed there, and the same thread leads the next group, or lets go.
 *
 *   DW-1  At most one group is in flight, and only while its driver leads
 *         (s->drv_leader): no other thread touches the group, the log tail
 *         or `unsynced` until the driver lets go, under q_mu as always.
 *   DW-2  A group is published only after its fdatasync succeeded; a failed
 *         one fails its requests and latches the store (ST-4), as on the
 *         synchronous path.
 *   DW-3  A driver that leads never waits for anything but q_mu: a blocking
 *         call of the same store on its thread while it leads would wait for
 *         itself and fails with -EDEADLK.
 */

#define DRIVE_GROUPS 4 /* groups a driver finishes at once (no fdatasync) before it hands the lead on */

/* Start the batch of list (d leads, q_mu not held). Returns 1 when its
 * fdatasync is in flight, 0 when the batch is done (completed). */
static int drive_batch_start(factum_store *s, group *g, wreq *list, struct factum_driver *d)
{
    int want_sync, done;
    g->rest = batch_encode(s, g, list, &want_sync, &done);
    if (done) return 0;
    uint64_t lo;
    int need_sync;
    int rc = commit_write(s, g, want_sync, &lo, &need_sync);
    if (!rc && need_sync) {
        g->fl_list = list;
        g->fl_lo = lo;
        g->fl_t0 = base_mono_ns();
        rc = drive_sync_start(d, s->log, &g->fl_upto);
        if (!rc) return 1;
        g->fl_list = NULL;
    }
    if (!rc) commit_publish(s, g, lo);
    batch_finish(s, list, rc);
    return 0;
}

/* d leads (q_mu not held): run batches until one is in flight or the queue
 * is empty (then let go). */
static void drive_lead(factum_store *s, struct factum_driver *d)
{
    group *g = s->grp;
    int n = 0;
    for (;;) {
        wreq *list = g->rest;
        g->rest = NULL;
        if (!list) {
            pthread_mutex_lock(&s->q_mu);
            if (s->abandon && s->q_head) {
                wreq *all = s->q_head;
                s->q_head = s->q_tail = NULL;
                s->q_len = 0;
                s->q_deferred = 0;
                pthread_cond_broadcast(&s->q_space);
                pthread_mutex_unlock(&s->q_mu);
                fail_all(all, FACTUM_ECLOSED);
                complete(s, all);
                pthread_mutex_lock(&s->q_mu);
            }
            if (!s->q_head || n >= DRIVE_GROUPS || !drive_has_uncompleted(d)) { /* DRV-3 */
                s->drv_leader = NULL;
                hand_off(s);
                if (!s->leader && s->stopping) pthread_cond_broadcast(&s->q_cv);
                pthread_mutex_unlock(&s->q_mu);
                return;
            }
            list = take_group(s);
            pthread_mutex_unlock(&s->q_mu);
        }
        n++;
        if (drive_batch_start(s, g, list, d)) return;
    }
}

int writer_drive_synced(factum_store *s, struct factum_driver *d, int rc)
{
    group *g = s->grp;
    sync_account(s, base_mono_ns() - g->fl_t0);
    if (!rc) {
        log_sync_done(s->log, g->fl_upto);
        s->unsynced = 0;
        s->last_sync_ns = base_mono_ns();
        commit_publish(s, g, g->fl_lo);
    }
    wreq *list = g->fl_list;
    g->fl_list = NULL;
    batch_finish(s, list, rc);
    if (g->rest) {
        drive_lead(s, d); /* the rest of a split batch goes first */
        return 0;
    }
    return 1; /* d keeps the lead: writer_drive_resume after its callbacks (DRV-4) */
}

void writer_drive_resume(factum_store *s, struct factum_driver *d)
{
    drive_lead(s, d);
}

void writer_drive_kick(factum_store *s, struct factum_driver *d)
{
    pthread_mutex_lock(&s->q_mu);
    if (!s->q_head || s->leader || s->writer_lead || !drive_has_uncompleted(d)) {
        pthread_mutex_unlock(&s->q_mu);
        return;
    }
    s->leader = 1;
    s->drv_leader = d;
    pthread_mutex_unlock(&s->q_mu);
    drive_lead(s, d);
}

static void relaxed_sync(factum_store *s)
{
    int rc = atomic_load(&s->failed) ? 0 : do_sync(s);
    if (rc) set_failed(s, rc);
}

static void *writer_main(void *arg)
{
    factum_store *s = arg;
    tl_writer_of = s;
    pthread_mutex_lock(&s->q_mu);
    while (1) {
        if (s->cq_head) {
            /* Callbacks of requests other leaders completed. */
            wreq *l = take_callbacks(s);
            pthread_mutex_unlock(&s->q_mu);
            writer_call_back(s, l);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        int idle = !s->writer_lead && !(!s->leader && queue_wants_leader(s)); /* SYNC-2 */
        if (idle && s->stopping && !s->leader && !s->q_head) break;
        if (idle && !s->stopping && base_mono_ns() - s->last_group_ns < SPIN_AFTER_NS) {
            /* Busy recently: look for new work for a moment before sleeping.
             * A thread wake-up costs tens of microseconds on small virtual
             * machines, about what the next request of a busy client takes to
             * arrive. Submitters do not signal while we spin (writer_kick). */
            atomic_store(&s->writer_spinning, 1);
            pthread_mutex_unlock(&s->q_mu);
            uint64_t until = base_mono_ns() + SPIN_NS;
            while (!atomic_load_explicit(&s->writer_kick, memory_order_acquire) && base_mono_ns() < until)
                base_cpu_relax();
            atomic_store(&s->writer_spinning, 0);
            atomic_store(&s->writer_kick, 0);
            pthread_mutex_lock(&s->q_mu);
            if (!s->writer_lead && !(!s->leader && queue_wants_leader(s)))
                s->last_group_ns = 0; /* nothing came: sleep next */
            continue;
        }
        if (idle) {
            if (s->opts.durability == FACTUM_RELAXED) {
                /* Leaders write without waking this thread, so in relaxed
                 * mode it wakes up every interval to look for unsynced data. */
                uint64_t due = s->last_sync_ns + (uint64_t)s->opts.flush_interval_ms * 1000000u;
                uint64_t now = base_mono_ns();
                if (!s->unsynced || s->leader) {
                    due = now + (uint64_t)s->opts.flush_interval_ms * 1000000u;
                } else if (now >= due) {
                    s->leader = 1;
                    pthread_mutex_unlock(&s->q_mu);
                    relaxed_sync(s);
                    pthread_mutex_lock(&s->q_mu);
                    hand_off(s);
                    continue;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t wait = due - now;
                ts.tv_sec += (time_t)(wait / 1000000000u);
                ts.tv_nsec += (long)(wait % 1000000000u);
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&s->q_cv, &s->q_mu, &ts);
            } else {
                pthread_cond_wait(&s->q_cv, &s->q_mu);
            }
            continue;
        }
        /* Lead: either handed to us, or asynchronous work with no leader. */
        s->writer_lead = 0;
        s->leader = 1;
        lead(s, NULL);
        s->last_group_ns = base_mono_ns();
    }
    /* Closing: make the relaxed tail durable. */
    if (!s->abandon && s->unsynced && !atomic_load(&s->failed)) {
        s->leader = 1;
        pthread_mutex_unlock(&s->q_mu);
        relaxed_sync(s);
        pthread_mutex_lock(&s->q_mu);
        s->leader = 0;
    }
    pthread_mutex_unlock(&s->q_mu);
    return NULL;
}

int writer_start(factum_store *s)
{
    s->last_sync_ns = base_mono_ns();
    if (!(s->grp = calloc(1, sizeof(group)))) return -ENOMEM;
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    if (rc) {
        free(s->grp);
        s->grp = NULL;
        return -rc;
    }
    s->writer_running = 1;
    return 0;
}

void writer_stop(factum_store *s)
{
    if (!s->writer_running) return;
    pthread_mutex_lock(&s->q_mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->q_cv);
    pthread_cond_broadcast(&s->q_space);
    pthread_mutex_unlock(&s->q_mu);
    pthread_join(s->writer, NULL);
    s->writer_running = 0;
    group_free(s->grp);
    free(s->grp);
    s->grp = NULL;
}

int writer_submit(factum_store *s, wreq *r)
{
    if (!r->cb && writer_in_callback(s)) return -EDEADLK; /* it would wait for itself */
    pthread_mutex_lock(&s->q_mu);
    if (!r->cb && s->drv_leader && drive_is_own_thread(s->drv_leader)) {
        pthread_mutex_unlock(&s->q_mu);
        return -EDEADLK; /* DW-3 */
    }
    if (r->cb && s->q_len >= QUEUE_MAX && !s->stopping) {
        /* Asynchronous callers never wait (an event loop must not, and a
         * callback on the writer thread cannot: only this thread would make
         * room): the queue is full, they try again after a completion. */
        pthread_mutex_unlock(&s->q_mu);
        return -EAGAIN;
    }
    while (s->q_len >= QUEUE_MAX && !s->stopping) {
        s->q_waiting_space++;
        pthread_cond_wait(&s->q_space, &s->q_mu);
        s->q_waiting_space--;
    }
    if (s->stopping) {
        pthread_mutex_unlock(&s->q_mu);
        return FACTUM_ECLOSED;
    }
    r->next = NULL;
    atomic_store(&r->wstate, 0);
    if (s->q_tail)
        s->q_tail->next = r;
    else
        s->q_head = r;
    s->q_tail = r;
    s->q_len++;
    s->q_deferred += is_deferred(r);
    if (r->drv && drive_leads(r->drv)) {
        /* A driver's: its thread leads if nobody does (DW-1). */
        if (s->leader || s->writer_lead || drive_defers_lead(r->drv)) {
            pthread_mutex_unlock(&s->q_mu);
            return 0;
        }
        s->leader = 1;
        s->drv_leader = r->drv;
        pthread_mutex_unlock(&s->q_mu);
        drive_lead(s, r->drv);
        return 0;
    }
    if (r->cb) {
        /* Asynchronous: the writer thread leads if nobody does. Signal after
         * unlocking, so that it does not wake only to wait for q_mu. */
        int wake = !s->leader && !s->writer_lead;
        if (wake) {
            s->writer_lead = 1;
            s->leader = 1; /* reserved for the writer thread */
        }
        pthread_mutex_unlock(&s->q_mu);
        if (wake) wake_writer(s);
        return 0;
    }
    if (!s->leader) {
        s->leader = 1;
        lead(s, r);
    }
    pthread_mutex_unlock(&s->q_mu);
    /* Done, or waiting: for the lead, for a leader to run it, or (after it
     * was committed) for an acknowledgement gate to let it go. */
    while (!(wstate_wait(r) & WSTATE_DONE)) {
        /* The lead was handed to us: run groups until our request is done
         * (it may be already), then pass the lead on. */
        atomic_fetch_and(&r->wstate, ~WSTATE_LEAD);
        pthread_mutex_lock(&s->q_mu);
        lead(s, r);
        pthread_mutex_unlock(&s->q_mu);
    }
    return 0;
}
