/*
 * vstream.c - the virtual read-only streams of vstream.h: the table of
 * kinds, name parsing (`<prefix><stream>?key=value&...`), `$asof/`, `$load/`
 * and `$raw/`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/vstream.h"
#include "store/snapshot.h"

/* ---- $asof/<S>?time=<T>|position=<P>[&valid=<T2>] ------------------- */

static int parse_u64(const char *p, size_t n, uint64_t *out)
{
    if (!n || n > 20) return FACTUM_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return FACTUM_EINVAL;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return FACTUM_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int asof_parse(factum_store *s, const char *rest, size_t len, rpc_vstream *v, const char **why)
{
    const char *q = NULL;
    for (size_t i = len; i > 0; i--)
        if (rest[i - 1] == '?') {
            q = rest + i - 1;
            break;
        }
    if (!q || q == rest) {
        *why = "$asof/ needs a stream and a query: $asof/<stream>?time=<RFC 3339>|position=<n>[&valid=<RFC "
               "3339>]";
        return FACTUM_EINVAL;
    }
    size_t slen = (size_t)(q - rest);
    int have_time = 0, have_pos = 0, have_valid = 0;
    int64_t t = 0, valid = FACTUM_VALID_ANY;
    uint64_t pos = 0;
    const char *p = q + 1, *end = rest + len;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp) amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        if (!eq) {
            *why = "$asof/: the query is key=value pairs joined by &";
            return FACTUM_EINVAL;
        }
        size_t kl = (size_t)(eq - p), vl = (size_t)(amp - eq - 1);
        const char *val = eq + 1;
        if (kl == 4 && !memcmp(p, "time", 4) && !have_time) {
            have_time = 1;
            if (factum_time_parse(val, vl, &t)) {
                *why = "$asof/: time must be an RFC 3339 UTC time";
                return FACTUM_EINVAL;
            }
        } else if (kl == 8 && !memcmp(p, "position", 8) && !have_pos) {
            have_pos = 1;
            if (parse_u64(val, vl, &pos)) {
                *why = "$asof/: position must be a non-negative integer";
                return FACTUM_EINVAL;
            }
        } else if (kl == 5 && !memcmp(p, "valid", 5) && !have_valid) {
            have_valid = 1;
            if (factum_time_parse(val, vl, &valid)) {
                *why = "$asof/: valid must be an RFC 3339 UTC time";
                return FACTUM_EINVAL;
            }
        } else {
            *why = "$asof/: unknown or repeated key (time, position, valid)";
            return FACTUM_EINVAL;
        }
        p = amp + 1;
    }
    if (have_time == have_pos) {
        *why = "$asof/: give exactly one of time= and position=";
        return FACTUM_EINVAL;
    }
    if (slen == 4 && !memcmp(rest, "$all", 4)) {
        v->is_all = 1;
    } else if (factum_check_stream_name(rest, slen) || rpc_vstream_is(rest, slen)) {
        *why = "$asof/: invalid stream name";
        return FACTUM_EINVAL;
    }
    if (!(v->target = strndup(rest, slen))) return -ENOMEM;
    v->asof.position = pos;
    v->asof.valid_until_ns = valid;
    if (have_time) {
        int rc = factum_asof_at_time(s, t, valid, &v->asof);
        if (rc) return rc;
    }
    return 0;
}

static int asof_read(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                     factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end)
{
    int rc;
    if (v->is_all) {
        rc = factum_read_all_asof(s, &v->asof, from, direction, NULL, max_scan, events, cap, n_out, next_out);
        if (!rc) {
            uint64_t p = v->asof.position;
            factum_stats st;
            factum_store_get_stats(s, &st);
            if (p > st.last_position) p = st.last_position;
            *end = direction == FACTUM_BACKWARD ? *next_out == 0 : *next_out > p;
        }
    } else {
        rc = factum_read_stream_asof(s, v->target, &v->asof, from, direction, events, cap, n_out, next_out);
        if (!rc) *end = *next_out == FACTUM_END;
    }
    return rc;
}

/* ---- $load/<S> and $raw/<S> -------------------------------------------- */

/* The name after the prefix: a stream (or, for $raw/, `$all`), no query. */
static int plain_parse(const char *kind, int all_ok, const char *rest, size_t len, rpc_vstream *v,
                       const char **why)
{
    if (all_ok && len == 4 && !memcmp(rest, "$all", 4)) {
        v->is_all = 1;
    } else if (factum_check_stream_name(rest, len) || rpc_vstream_is(rest, len)) {
        *why = kind;
        return FACTUM_EINVAL;
    }
    if (!(v->target = strndup(rest, len))) return -ENOMEM;
    return 0;
}

static int load_parse(factum_store *s, const char *rest, size_t len, rpc_vstream *v, const char **why)
{
    (void)s;
    return plain_parse("$load/<stream>: an invalid stream name", 0, rest, len, v, why);
}

/* Forward, the first page is the newest usable snapshot of S (an event of
 * `$snapshots-S`, factum.h "Snapshots") followed by S's events after it;
 * the next pages go on in S. Without a snapshot it is S from its start.
 * Backward it is S backward (there is nothing to load from the end). */
static int load_read(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                     factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end)
{
    (void)max_scan;
    size_t got = 0;
    int rc;
    if (direction == FACTUM_FORWARD && !v->loaded) {
        factum_snapshot snap;
        if ((rc = snapshot_latest(s, v->target, &snap, &from))) return rc;
        v->loaded = 1;
        if (snap.found && cap) {
            events[got++] = snap.event;
            cap--;
        }
        if (from == FACTUM_END) {
            *n_out = got;
            *next_out = FACTUM_END;
            *end = 1;
            return 0;
        }
    }
    size_t n = 0;
    rc = factum_read_stream(s, v->target, from, direction, events + got, cap, &n, next_out);
    if (rc == FACTUM_ENOTFOUND && got) { /* deleted after the snapshot was read: the snapshot alone */
        n = 0;
        *next_out = FACTUM_END;
        rc = 0;
    }
    if (rc) return rc;
    *n_out = got + n;
    *end = *next_out == FACTUM_END;
    return 0;
}

static int raw_parse(factum_store *s, const char *rest, size_t len, rpc_vstream *v, const char **why)
{
    (void)s;
    v->raw = 1;
    return plain_parse("$raw/<stream>: an invalid stream name ($raw/$all for the log)", 1, rest, len, v, why);
}

/* The stream (or the log) as a plain read gives it; the caller sends the
 * events as stored (v->raw). */
static int raw_read(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                    factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end)
{
    int rc;
    if (v->is_all) {
        rc = factum_read_all(s, from, direction, NULL, max_scan, events, cap, n_out, next_out);
        if (!rc) {
            factum_stats st;
            factum_store_get_stats(s, &st);
            *end = direction == FACTUM_BACKWARD ? *next_out == 0 : *next_out > st.last_position;
        }
    } else {
        rc = factum_read_stream(s, v->target, from, direction, events, cap, n_out, next_out);
        if (!rc) *end = *next_out == FACTUM_END;
    }
    return rc;
}

/* ---- the table -------------------------------------------------------- */

static const rpc_vstream_kind kinds[] = {
    {"$asof/", asof_parse, asof_read},
    {"$load/", load_parse, load_read},
    {"$raw/", raw_parse, raw_read},
};

static const rpc_vstream_kind *kind_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (len >= pl && !memcmp(name, kinds[i].prefix, pl)) return &kinds[i];
    }
    return NULL;
}

int rpc_vstream_is(const char *name, size_t len)
{
    return kind_of(name, len) != NULL;
}

int rpc_vstream_open(factum_store *s, const char *name, size_t len, rpc_vstream **out, const char **why)
{
    const rpc_vstream_kind *k = kind_of(name, len);
    *why = "not a virtual stream";
    if (!k) return FACTUM_EINVAL;
    rpc_vstream *v = calloc(1, sizeof *v);
    if (!v) return -ENOMEM;
    v->kind = k;
    size_t pl = strlen(k->prefix);
    int rc = k->parse(s, name + pl, len - pl, v, why);
    if (rc) {
        rpc_vstream_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void rpc_vstream_free(rpc_vstream *v)
{
    if (!v) return;
    free(v->target);
    free(v);
}

int rpc_vstream_read(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                     factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end)
{
    return v->kind->read(s, v, from, direction, max_scan, events, cap, n_out, next_out, end);
}

int rpc_vstream_resolve(factum_store *s, const rpc_vstream *v, const factum_event *ev, factum_event *target)
{
    if (ev->type_len != 2 || memcmp(ev->type, FACTUM_LINK_TYPE, 2) != 0) return 0;
    int rc = v->kind->parse == asof_parse ? factum_resolve_link_asof(s, ev, &v->asof, target)
                                          : factum_resolve_link(s, ev, target);
    if (rc == 0) return 1;
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED || rc == FACTUM_EINVAL) return -1;
    return rc < -1 ? rc : -1;
}

int rpc_vstream_check_append(const char *stream, size_t len, const void *metadata, size_t metadata_len,
                             const char **why)
{
    if (rpc_vstream_is(stream, len)) {
        *why = "virtual streams ($asof/, $load/, $raw/) are read-only";
        return FACTUM_EINVAL;
    }
    size_t sl = strlen(FACTUM_SCHEDULED_STREAM);
    if (len == sl && !memcmp(stream, FACTUM_SCHEDULED_STREAM, sl))
        return factum_schedule_check_request(metadata, metadata_len, why);
    return 0;
}
