/*
 * temporal.c - reads of the past: the position committed at a time, a
 * stream or $all as recorded at a position, restricted by the events' valid
 * time ("$validFrom", bi-temporal), and the RFC 3339 times these use.
 *
 * Design note (invariants; tests cite them as TM-n):
 *  TM-1  Commit timestamps never decrease along positions: the writer stamps
 *        a group max(clock, last + 1) and recovers `last` from the log's
 *        last event at open (store.c). Hence "committed at or before T" is
 *        a prefix of the log, found by binary search (factum_position_at).
 *  TM-2  Versions of a stream are dense (0..last, plus a tombstone at
 *        FACTUM_TOMBSTONE_VERSION) and increase with positions, so the
 *        stream's last version recorded at P is found by binary search.
 *  TM-3  A stream as of P is judged entirely by what was committed by P:
 *        its last version, its tombstone and its metadata (`$$S` as of P).
 *        Nothing committed later changes an as-of answer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/store_int.h"

/* ---- times ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int factum_time_parse(const char *t, size_t len, int64_t *ns_out)
{
    if (!t || !ns_out) return FACTUM_EINVAL;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (len < 10 || digits(t, 4, &y) || t[4] != '-' || digits(t + 5, 2, &mo) || t[7] != '-' ||
        digits(t + 8, 2, &d))
        return FACTUM_EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]) return FACTUM_EINVAL;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return FACTUM_EINVAL;
    int64_t frac = 0, off_s = 0;
    size_t i = 10;
    if (len > 10) {
        if ((t[10] != 'T' && t[10] != 't' && t[10] != ' ') || len < 19 || digits(t + 11, 2, &h) ||
            t[13] != ':' || digits(t + 14, 2, &mi) || t[16] != ':' || digits(t + 17, 2, &sec))
            return FACTUM_EINVAL;
        if (h > 23 || mi > 59 || sec > 60) return FACTUM_EINVAL; /* 60: a leap second, read as :59 + 1 s */
        i = 19;
        if (i < len && t[i] == '.') {
            i++;
            size_t nd = 0;
            while (i < len && t[i] >= '0' && t[i] <= '9') {
                if (nd < 9) frac = frac * 10 + (t[i] - '0');
                nd++;
                i++;
            }
            if (!nd) return FACTUM_EINVAL;
            for (size_t k = nd; k < 9; k++)
                frac *= 10;
        }
        if (i >= len) return FACTUM_EINVAL; /* a time needs its zone */
        if (t[i] == 'Z' || t[i] == 'z') {
            i++;
        } else if (t[i] == '+' || t[i] == '-') {
            int oh, om;
            if (len - i < 6 || digits(t + i + 1, 2, &oh) || t[i + 3] != ':' || digits(t + i + 4, 2, &om) ||
                oh > 23 || om > 59)
                return FACTUM_EINVAL;
            off_s = (int64_t)(oh * 3600 + om * 60) * (t[i] == '-' ? -1 : 1);
            i += 6;
        } else {
            return FACTUM_EINVAL;
        }
    }
    if (i != len) return FACTUM_EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    /* int64 nanoseconds cover 1677..2262. */
    if (secs < INT64_MIN / 1000000000 + 1 || secs > INT64_MAX / 1000000000 - 1) return FACTUM_EINVAL;
    *ns_out = secs * 1000000000 + frac;
    return 0;
}

void factum_time_format(int64_t ns, char buf[40])
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, 40, "%04lld-%02d-%02dT%02d:%02d:%02d.%09lldZ", (long long)y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), (long long)frac);
}

/* A time in metadata: an RFC 3339 string or integer milliseconds. */
int tm_json_time(const json_value *v, int64_t *ns)
{
    if (!v) return FACTUM_EINVAL;
    if (v->type == JSON_STRING) return factum_time_parse(v->str, v->len, ns);
    int64_t ms;
    if (v->type != JSON_NUMBER || json_int64(v, &ms)) return FACTUM_EINVAL;
    if (ms > INT64_MAX / 1000000 || ms < INT64_MIN / 1000000) return FACTUM_EINVAL;
    *ns = ms * 1000000;
    return 0;
}

int64_t factum_event_valid_time(const factum_event *ev)
{
    if (!ev->metadata_len || !memmem(ev->metadata, ev->metadata_len, "\"$validFrom\"", 12))
        return ev->timestamp_ns;
    json_value *doc;
    if (json_parse((const char *)ev->metadata, ev->metadata_len, &doc)) return ev->timestamp_ns;
    int64_t ns = ev->timestamp_ns;
    if (doc->type != JSON_OBJECT || tm_json_time(json_get(doc, "$validFrom"), &ns)) ns = ev->timestamp_ns;
    json_free(doc);
    return ns;
}

/* ---- the position at a time (TM-1) ---------------------------------- */

int factum_position_at(factum_store *s, int64_t time_ns, uint64_t *pos)
{
    if (!s || !pos) return FACTUM_EINVAL;
    uint64_t lo = 0, hi = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    /* Invariant: position lo is at or before time_ns (0: nothing is), every
     * position after hi is later. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        factum_event ev;
        int rc = factum_read_position(s, mid, &ev);
        if (rc) return rc == FACTUM_ENOTFOUND ? FACTUM_ECORRUPT : rc;
        if (ev.timestamp_ns <= time_ns)
            lo = mid;
        else
            hi = mid - 1;
    }
    *pos = lo;
    return 0;
}

int factum_asof_at_time(factum_store *s, int64_t time_ns, int64_t valid_until_ns, factum_asof *a)
{
    if (!a) return FACTUM_EINVAL;
    uint64_t p;
    int rc = factum_position_at(s, time_ns, &p);
    if (rc) return rc;
    a->position = p;
    a->valid_until_ns = valid_until_ns;
    return 0;
}

/* ---- a stream as of a position (TM-2, TM-3) -------------------------- */

/* The last version of the stream (tombstone excluded) in the index, or -1. */
static int last_real_version(factum_store *s, const char *name, size_t len, uint64_t hash, int64_t *out)
{
    uint64_t from = (uint64_t)INT64_MAX - 1;
    idx_kv kv[64];
    *out = -1;
    while (1) {
        size_t n;
        int rc = idx_stream_range(s->idx, hash, from, 1, kv, 64, &n);
        if (rc) return rc;
        if (!n) return 0;
        for (size_t i = 0; i < n; i++) {
            factum_event ev;
            if ((rc = event_at(s, kv[i].v, &ev))) return rc;
            if (ev.stream_len == len && !memcmp(ev.stream, name, len)) {
                *out = (int64_t)ev.version;
                return 0;
            }
        }
        if (n < 64 || kv[n - 1].k2 == 0) return 0;
        from = kv[n - 1].k2 - 1;
    }
}

/* The first stored version of `name` in [from, upto] (a scavenge removes
 * some, ADR 0026): 1 and *ev, 0 if none. */
static int next_version(factum_store *s, const char *name, size_t len, uint64_t hash, uint64_t from, uint64_t upto,
                        factum_event *ev)
{
    idx_kv kv[64];
    while (from <= upto) {
        size_t n;
        int rc = idx_stream_range(s->idx, hash, from, 0, kv, 64, &n);
        if (rc) return rc;
        for (size_t i = 0; i < n && kv[i].k2 <= upto; i++) {
            if ((rc = event_at(s, kv[i].v, ev))) return rc;
            if (ev->stream_len == len && !memcmp(ev->stream, name, len) && ev->version == kv[i].k2) return 1;
        }
        if (n < 64 || kv[n - 1].k2 >= upto) return 0;
        from = kv[n - 1].k2 + 1; /* (entries of that version past the 64th: other streams of the hash) */
    }
    return 0;
}

/* The last version of `name` committed at or before position p: 1 and
 * *version (the event in *ev), 0 if none; the tombstone is not counted. */
static int version_at(factum_store *s, const char *name, size_t len, uint64_t p, int64_t *version,
                      factum_event *ev)
{
    uint64_t hash = base_hash64(name, len);
    int64_t last;
    int rc = last_real_version(s, name, len, hash, &last);
    if (rc) return rc;
    int64_t lo = -1, hi = last; /* lo: at or before p (-1: none); after hi: later */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        /* TM-2: versions are dense, but for the ones a scavenge removed
         * (ADR 0026): then the next stored one decides. */
        rc = next_version(s, name, len, hash, (uint64_t)mid, (uint64_t)hi, ev);
        if (rc < 0) return rc;
        if (rc == 1 && ev->position <= p)
            lo = (int64_t)ev->version;
        else
            hi = mid - 1;
    }
    if (lo < 0) return 0;
    rc = stream_event(s, name, len, hash, (uint64_t)lo, ev, NULL);
    if (rc <= 0) return rc < 0 ? rc : FACTUM_ECORRUPT;
    *version = lo;
    return 1;
}

typedef struct asof_state {
    int64_t last_version; /* -1: none */
    int tombstoned;
    factum_stream_metadata meta;
} asof_state;

static int state_asof(factum_store *s, const char *name, size_t len, uint64_t p, asof_state *st)
{
    factum_event ev;
    memset(st, 0, sizeof *st);
    st->last_version = -1;
    meta_none(&st->meta);
    int64_t v;
    int rc = version_at(s, name, len, p, &v, &ev);
    if (rc < 0) return rc;
    if (rc) st->last_version = v;
    rc = stream_event(s, name, len, base_hash64(name, len), FACTUM_TOMBSTONE_VERSION, &ev, NULL);
    if (rc < 0) return rc;
    if (rc && ev.position <= p) st->tombstoned = 1;
    if (len >= 2 && name[0] == '$' && name[1] == '$') return 0;
    char mname[FACTUM_MAX_STREAM_LEN + 3];
    size_t mlen = meta_stream_name(name, len, mname);
    rc = version_at(s, mname, mlen, p, &v, &ev);
    if (rc < 0) return rc;
    if (rc) meta_parse_lenient(ev.data, ev.data_len, &st->meta);
    return 0;
}

int factum_read_stream_asof(factum_store *s, const char *stream, const factum_asof *a, uint64_t from,
                            int direction, factum_event *events, size_t cap, size_t *n_out,
                            uint64_t *next_out)
{
    if (!s || !a || !n_out || (cap && !events)) return FACTUM_EINVAL;
    *n_out = 0;
    if (next_out) *next_out = FACTUM_END;
    if (!stream) return FACTUM_EBADNAME;
    size_t len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(stream, len);
    if (rc) return rc;
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) return FACTUM_EINVAL;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    uint64_t p = a->position > committed ? committed : a->position;
    asof_state st;
    if ((rc = state_asof(s, stream, len, p, &st))) return rc;
    if (st.tombstoned) return FACTUM_EDELETED;
    if (st.last_version < 0 || st.meta.truncate_before == ST_TB_DELETED) return FACTUM_ENOTFOUND;
    uint64_t last = (uint64_t)st.last_version, first = 0;
    if (st.meta.truncate_before > 0) first = (uint64_t)st.meta.truncate_before;
    if (st.meta.max_count >= 0) {
        int64_t mc = st.last_version - st.meta.max_count + 1;
        if (mc > 0 && (uint64_t)mc > first) first = (uint64_t)mc;
    }
    stream_range r = {first, last, p, INT64_MIN, a->valid_until_ns, 0, 0, 0, 0};
    return stream_read_range(s, stream, len, &r, from, direction == FACTUM_BACKWARD, events, cap, n_out,
                             next_out);
}

/* ---- $all as of a position ------------------------------------------ */

int factum_read_all_asof(factum_store *s, const factum_asof *a, uint64_t from, int direction,
                         const factum_filter *filter, size_t max_scan, factum_event *events, size_t cap,
                         size_t *n_out, uint64_t *next_out)
{
    if (!s || !a || !n_out || (cap && !events)) return FACTUM_EINVAL;
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) return FACTUM_EINVAL;
    *n_out = 0;
    uint64_t committed = atomic_load_explicit(&s->committed_pos, memory_order_acquire);
    uint64_t p = a->position > committed ? committed : a->position;
    int back = direction == FACTUM_BACKWARD;
    uint64_t pos = back ? (from > p ? p : from) : (from < 1 ? 1 : from);
    size_t n = 0, scanned = 0;
    int rc = 0;
    while (n < cap && (!max_scan || scanned < max_scan)) {
        if (back ? pos == 0 : pos > p) break;
        size_t want = cap - n;
        size_t scan_left = max_scan ? max_scan - scanned : 0;
        if (!back && (!scan_left || scan_left > p - pos + 1)) scan_left = (size_t)(p - pos + 1);
        size_t got;
        uint64_t next;
        if ((rc = factum_read_all(s, pos, direction, filter, scan_left, events + n, want, &got, &next)))
            return rc;
        scanned += (size_t)(back ? pos - next : next - pos);
        /* Forward reads stop at p through scan_left; keep only what is
         * recorded by p and valid by valid_until. */
        size_t base = n;
        for (size_t i = 0; i < got; i++) {
            factum_event *ev = &events[base + i];
            if (ev->position > p ||
                (a->valid_until_ns != FACTUM_VALID_ANY && factum_event_valid_time(ev) > a->valid_until_ns))
                continue;
            if (&events[n] != ev) events[n] = *ev;
            n++;
        }
        if (next == pos) break; /* nothing examined: the end */
        pos = next;
        if (store_reader_over()) break; /* the reader's bound (factum_reader_set_limit) */
    }
    *n_out = n;
    if (next_out) *next_out = back ? pos : (pos > p ? p + 1 : pos);
    return 0;
}
