/*
 * append.c - the public write calls: append (single, multi-stream, async),
 * soft delete, tombstone and metadata. Everything that can be checked
 * without the stream's state is checked here, in the caller's thread,
 * before a request reaches the writer: names, types, sizes, duplicate ids.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/store_int.h"
#include "store/upcast.h"

static int check_type(const char *type)
{
    if (!type) return FACTUM_EBADTYPE;
    size_t n = strnlen(type, FACTUM_MAX_TYPE_LEN + 1);
    if (n == 0 || n > FACTUM_MAX_TYPE_LEN || !base_utf8_valid(type, n)) return FACTUM_EBADTYPE;
    return 0;
}

/* Duplicate detection within one request: pairwise for a few items, an
 * open-addressing table of indexes for more (a projection's batch carries
 * thousands of events and parts; pairwise, that was 30% of its cost). */
#define DUP_PAIRWISE 16

typedef int (*dup_eq_fn)(const void *items, size_t a, size_t b);

/* The index + 1 of the first item of items[0..n) equal by eq to an
 * earlier one (hash[i] their hashes), 0 if none, -ENOMEM. */
static long dup_find(const void *items, const uint64_t *hash, size_t n, dup_eq_fn eq)
{
    if (n <= DUP_PAIRWISE) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (eq(items, i, j)) return (long)i + 1;
        return 0;
    }
    size_t cap = 64;
    while (cap < 2 * n)
        cap <<= 1;
    uint32_t *slot = calloc(cap, sizeof *slot); /* index + 1; 0 = empty */
    if (!slot) return -ENOMEM;
    long found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        size_t k = (size_t)hash[i] & (cap - 1);
        for (; slot[k]; k = (k + 1) & (cap - 1)) {
            size_t j = slot[k] - 1;
            if (hash[j] == hash[i] && eq(items, i, j)) {
                found = (long)i + 1;
                break;
            }
        }
        slot[k] = (uint32_t)(i + 1);
    }
    free(slot);
    return found;
}

static int event_id_eq(const void *items, size_t a, size_t b)
{
    const factum_event_data *ev = items;
    return ev[a].has_id && ev[b].has_id && !memcmp(ev[a].id, ev[b].id, 16);
}

/* FACTUM_EDUPLICATEID if two events of the part carry the same id. */
static int check_dup_ids(const factum_event_data *ev, size_t n)
{
    uint64_t *hash = NULL;
    if (n > DUP_PAIRWISE) {
        if (!(hash = malloc(n * sizeof *hash))) return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            hash[i] = ev[i].has_id ? base_hash64(ev[i].id, 16) : ~(uint64_t)i;
    }
    long rc = dup_find(ev, hash, n, event_id_eq);
    free(hash);
    return rc > 0 ? FACTUM_EDUPLICATEID : (int)rc;
}

static int part_name_eq(const void *items, size_t a, size_t b)
{
    const wpart *p = items;
    return p[a].stream_len == p[b].stream_len && !memcmp(p[a].stream, p[b].stream, p[a].stream_len);
}

/* The index + 1 of a part whose stream an earlier part has, 0, -ENOMEM. */
static long find_dup_stream(const wpart *parts, size_t n)
{
    uint64_t *hash = NULL;
    if (n > DUP_PAIRWISE) {
        if (!(hash = malloc(n * sizeof *hash))) return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            hash[i] = base_hash64(parts[i].stream, parts[i].stream_len);
    }
    long rc = dup_find(parts, hash, n, part_name_eq);
    free(hash);
    return rc;
}

static int check_expected_value(int64_t e)
{
    return (e >= 0 || e == FACTUM_ANY || e == FACTUM_NO_STREAM || e == FACTUM_STREAM_EXISTS) ? 0
                                                                                             : FACTUM_EINVAL;
}

/* Validate one part; fill the internal part; add its encoded size. */
static int check_part(factum_store *s, const factum_append_req *q, wpart *p, size_t *bytes)
{
    if (!q->stream) return FACTUM_EBADNAME;
    size_t slen = strnlen(q->stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(q->stream, slen);
    if (rc) return rc;
    if ((rc = check_expected_value(q->expected))) return rc;
    if (q->n_events && !q->events) return FACTUM_EINVAL;
    int meta_stream = slen > 2 && q->stream[0] == '$' && q->stream[1] == '$';
    if (meta_stream && slen - 2 > FACTUM_MAX_STREAM_LEN - 2) return FACTUM_EBADNAME;
    uint64_t total = 0;
    for (size_t i = 0; i < q->n_events; i++) {
        const factum_event_data *d = &q->events[i];
        if ((rc = check_type(d->type))) return rc;
        if ((d->data_len && !d->data) || (d->metadata_len && !d->metadata)) return FACTUM_EINVAL;
        if (d->data_len > s->opts.max_event_size || d->metadata_len > s->opts.max_event_size ||
            d->data_len + d->metadata_len > s->opts.max_event_size)
            return FACTUM_ETOOBIG;
        if (meta_stream) {
            /* `$$x` holds x's metadata: `$metadata` events with a JSON object. */
            factum_stream_metadata m;
            if (strcmp(d->type, "$metadata") != 0) return FACTUM_EINVAL;
            if ((rc = factum_stream_metadata_parse(d->data, d->data_len, &m))) return rc;
        }
        if (upc_is_stream(q->stream, slen) && (rc = upc_check_event(d->type, d->data, d->data_len, NULL, 0)))
            return rc; /* UPC-1: a bad upcaster is refused here, whoever appends it */
        total += log_event_frame_len(slen, strlen(d->type), d->data_len, d->metadata_len) +
                 (seal_enabled(s) ? LOG_SEAL_OVERHEAD : 0);
    }
    /* An estimate of the metadata event the writer may add (re-creating a
     * soft-deleted stream), for grouping only: the writer checks the real
     * size before anything is written (ST-6). */
    total += 4096;
    if (total > s->opts.max_append_size + 4096) return FACTUM_ETOOBIG;
    if ((rc = check_dup_ids(q->events, q->n_events))) return rc;
    p->stream = q->stream;
    p->stream_len = slen;
    p->expected = q->expected;
    p->events = q->events;
    p->n = q->n_events;
    p->op = OP_APPEND;
    *bytes += total;
    return 0;
}

static int precheck(factum_store *s)
{
    if (!s) return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    if (atomic_load(&s->failed)) return FACTUM_EFAILED;
    return 0;
}

/* Validate reqs into r (parts allocated). On error *failed is set. */
static int build(factum_store *s, const factum_append_req *reqs, size_t n, wreq *r, wpart *parts,
                 size_t *failed)
{
    if (!reqs || !n) return FACTUM_EINVAL;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_part(s, &reqs[i], &parts[i], &bytes);
        if (rc) {
            if (failed) *failed = i;
            return rc;
        }
    }
    long dup = find_dup_stream(parts, n); /* a stream may appear in one part only */
    if (dup) {
        if (failed) *failed = dup > 0 ? (size_t)dup - 1 : 0;
        return dup > 0 ? FACTUM_EINVAL : (int)dup;
    }
    if (bytes > s->opts.max_append_size + 4096 * n) {
        if (failed) *failed = 0;
        return FACTUM_ETOOBIG;
    }
    r->kind = REQ_APPEND;
    r->parts = parts;
    r->n_parts = n;
    r->bytes = bytes;
    return 0;
}

/* Run a request synchronously. */
static int run_sync(factum_store *s, wreq *r)
{
    int rc = writer_submit(s, r);
    return rc ? rc : r->rc;
}

int factum_append_multi(factum_store *s, const factum_append_req *reqs, size_t n,
                        factum_append_result *results, size_t *failed)
{
    int rc = precheck(s);
    if (rc) return rc;
    wpart parts_small[8];
    factum_append_result res_small[8];
    wpart *parts = n <= 8 ? parts_small : calloc(n, sizeof *parts);
    factum_append_result *res = results ? results : n <= 8 ? res_small : calloc(n, sizeof *res);
    wreq r = {0};
    if (!parts || !res) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = build(s, reqs, n, &r, parts, failed))) goto out;
    r.results = res;
    rc = run_sync(s, &r);
    if (rc && failed) *failed = r.failed;
out:
    if (parts != parts_small) free(parts);
    if (res != results && res != res_small) free(res);
    return rc;
}

int factum_append(factum_store *s, const char *stream, int64_t expected, const factum_event_data *events,
                  size_t n, factum_append_result *res)
{
    factum_append_req q = {stream, expected, events, n};
    return factum_append_multi(s, &q, 1, res, NULL);
}

int append_async_via(factum_store *s, struct factum_driver *d, const factum_append_req *reqs, size_t n,
                     factum_append_cb cb, void *ctx)
{
    int rc = precheck(s);
    if (rc) return rc;
    if (!cb) return FACTUM_EINVAL;
    /* One allocation: the request, its parts and its results. */
    wreq *r = calloc(1, sizeof *r + n * (sizeof(wpart) + sizeof(factum_append_result)));
    if (!r) return -ENOMEM;
    wpart *parts = (wpart *)(r + 1);
    if ((rc = build(s, reqs, n, r, parts, NULL))) {
        free(r);
        return rc;
    }
    r->results = (factum_append_result *)(parts + n);
    r->cb = cb;
    r->ctx = ctx;
    r->owns_memory = 1;
    r->drv = d;
    rc = writer_submit(s, r);
    if (rc) free(r);
    return rc;
}

int factum_append_async(factum_store *s, const factum_append_req *reqs, size_t n, factum_append_cb cb,
                        void *ctx)
{
    return append_async_via(s, NULL, reqs, n, cb, ctx);
}

static int stream_op(factum_store *s, const char *stream, int64_t expected, int op, factum_append_result *res)
{
    int rc = precheck(s);
    if (rc) return rc;
    if (!stream) return FACTUM_EBADNAME;
    size_t len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    if ((rc = factum_check_stream_name(stream, len))) return rc;
    if (len > FACTUM_MAX_STREAM_LEN - 2) return FACTUM_EBADNAME; /* its $$ stream must fit */
    if ((rc = check_expected_value(expected))) return rc;
    wpart part = {stream, len, expected, NULL, 0, op};
    factum_append_result r0;
    wreq r = {0};
    r.kind = REQ_APPEND;
    r.parts = &part;
    r.n_parts = 1;
    r.results = res ? res : &r0;
    r.bytes = 8192;
    return run_sync(s, &r);
}

static int stream_op_async(factum_store *s, const char *stream, int64_t expected, int op, factum_append_cb cb,
                           void *ctx)
{
    int rc = precheck(s);
    if (rc) return rc;
    if (!cb) return FACTUM_EINVAL;
    if (!stream) return FACTUM_EBADNAME;
    size_t len = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    if ((rc = factum_check_stream_name(stream, len))) return rc;
    if (len > FACTUM_MAX_STREAM_LEN - 2) return FACTUM_EBADNAME;
    if ((rc = check_expected_value(expected))) return rc;
    /* One allocation: the request, its part, its result and the name. */
    wreq *r = calloc(1, sizeof *r + sizeof(wpart) + sizeof(factum_append_result) + len + 1);
    if (!r) return -ENOMEM;
    wpart *part = (wpart *)(r + 1);
    r->results = (factum_append_result *)(part + 1);
    char *name = (char *)(r->results + 1);
    memcpy(name, stream, len + 1);
    *part = (wpart){name, len, expected, NULL, 0, op};
    r->kind = REQ_APPEND;
    r->parts = part;
    r->n_parts = 1;
    r->bytes = 8192;
    r->cb = cb;
    r->ctx = ctx;
    r->owns_memory = 1;
    rc = writer_submit(s, r);
    if (rc) free(r);
    return rc;
}

int factum_delete_stream_async(factum_store *s, const char *stream, int64_t expected, factum_append_cb cb,
                               void *ctx)
{
    return stream_op_async(s, stream, expected, OP_DELETE, cb, ctx);
}

int factum_tombstone_stream_async(factum_store *s, const char *stream, int64_t expected, factum_append_cb cb,
                                  void *ctx)
{
    return stream_op_async(s, stream, expected, OP_TOMBSTONE, cb, ctx);
}

int factum_delete_stream(factum_store *s, const char *stream, int64_t expected, factum_append_result *res)
{
    return stream_op(s, stream, expected, OP_DELETE, res);
}

int factum_tombstone_stream(factum_store *s, const char *stream, int64_t expected, factum_append_result *res)
{
    return stream_op(s, stream, expected, OP_TOMBSTONE, res);
}

int factum_set_stream_metadata(factum_store *s, const char *stream, int64_t expected, const char *json,
                               size_t len, factum_append_result *res)
{
    if (!s) return FACTUM_EINVAL;
    if (!stream) return FACTUM_EBADNAME;
    size_t slen = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(stream, slen);
    if (rc) return rc;
    if (slen > FACTUM_MAX_STREAM_LEN - 2) return FACTUM_EBADNAME;
    factum_stream_metadata m;
    if ((rc = factum_stream_metadata_parse(json, len, &m))) return rc;
    char mname[FACTUM_MAX_STREAM_LEN + 3];
    meta_stream_name(stream, slen, mname);
    factum_event_data ev = {0};
    ev.type = "$metadata";
    ev.flags = FACTUM_EVENT_JSON;
    ev.data = json;
    ev.data_len = len;
    return factum_append(s, mname, expected, &ev, 1, res);
}
