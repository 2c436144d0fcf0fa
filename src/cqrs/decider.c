/*
 * decider.c - aggregates as deciders (factum_app.h): load a stream's state
 * (snapshot + replay), decide a command, append the decision with the
 * loaded version as the expectation, retry on conflict with a bounded,
 * jittered backoff, and write snapshots by policy. Also the decision list
 * and the derived event ids the toolkit rests on. Over the network the
 * decider calls the C client through the table every factum_client
 * carries (common/remote.h): libfactum does not link libfactum-client.
 *
 * Design note (tests cite DC-n):
 *  DC-1  Nothing is appended that decide did not compute from the state at
 *        exactly the version the append expects: the expectation is the
 *        loaded version, so a concurrent writer makes the append fail with
 *        FACTUM_EWRONGVERSION and the command is decided again on the new
 *        state. Invariants checked by decide therefore hold under any
 *        number of concurrent writers (threads, processes, clients).
 *  DC-2  A command with an id writes events whose ids derive from it; if
 *        its first event id is already in the stream, the command is not
 *        decided again (it was handled: a retry after a timeout or crash).
 *        Two concurrent handlers of the same command: one appends, the
 *        other conflicts (DC-1), reloads and finds the id.
 *  DC-3  No state is cached between calls: every attempt loads from the
 *        store (a snapshot bounds the replay), so there is no cache to
 *        keep coherent with other writers (docs/adr/0014-deciders.md).
 *  DC-4  A snapshot is written only for a state that is exactly the fold of
 *        the stream up to the version appended (the loaded state evolved
 *        with the events just appended, before anyone else's).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/seal.h"
#include "base/json.h"
#include "factum_app.h"
#include "common/remote.h"
#include "store/snapshot.h"

#define DECISION_MAX 4096u
#define LOAD_PAGE    256
/* Events per read over the network: fewer round trips (the client keeps
 * its pages' memory for the next reads; factum_client.h). */
#define REMOTE_PAGE 2048

/* ---- derived ids ----------------------------------------------------- */

void factum_app_derive_id(const uint8_t base[16], const void *salt, size_t salt_len, uint32_t index,
                          uint8_t out[16])
{
    static const char domain[] = "factum-derived-id/1";
    uint8_t ix[4] = {(uint8_t)(index >> 24), (uint8_t)(index >> 16), (uint8_t)(index >> 8), (uint8_t)index};
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)salt_len >> (56 - 8 * i));
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, domain, sizeof domain - 1) && EVP_DigestUpdate(c, base, 16) &&
             EVP_DigestUpdate(c, lenb, 8) && (!salt_len || EVP_DigestUpdate(c, salt, salt_len)) &&
             EVP_DigestUpdate(c, ix, 4) && EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    if (!ok || mdlen < 16) {
        /* OpenSSL cannot fail SHA-256 short of memory exhaustion; keep the
         * id deterministic all the same (a weaker mix of the same inputs). */
        uint64_t h = 1469598103934665603ull;
        const uint8_t *p = base;
        for (size_t i = 0; i < 16; i++)
            h = (h ^ p[i]) * 1099511628211ull;
        p = salt;
        for (size_t i = 0; i < salt_len; i++)
            h = (h ^ p[i]) * 1099511628211ull;
        for (int i = 0; i < 4; i++)
            h = (h ^ ix[i]) * 1099511628211ull;
        for (int i = 0; i < 16; i++) {
            md[i] = (uint8_t)(h >> (8 * (i % 8)));
            if (i == 7) h = (h ^ 0x5bd1e995u) * 1099511628211ull;
        }
    }
    memcpy(out, md, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x80); /* version 8 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

/* ---- decisions ------------------------------------------------------- */

typedef struct devent {
    char *type;
    uint32_t flags;
    uint8_t *data;
    size_t len;
    uint8_t *meta;
    size_t meta_len;
} devent;

struct factum_decision {
    devent *ev;
    size_t n, cap;
};

static void decision_clear(factum_decision *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->ev[i].type);
        free(d->ev[i].data);
        free(d->ev[i].meta);
    }
    d->n = 0;
}

static void decision_deinit(factum_decision *d)
{
    decision_clear(d);
    free(d->ev);
    d->ev = NULL;
    d->cap = 0;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

int factum_decision_add(factum_decision *d, const char *type, uint32_t flags, const void *data, size_t len,
                        const void *metadata, size_t metadata_len)
{
    if (!d || (len && !data) || (metadata_len && !metadata)) return FACTUM_EINVAL;
    if (!type || !*type || strnlen(type, FACTUM_MAX_TYPE_LEN + 1) > FACTUM_MAX_TYPE_LEN)
        return FACTUM_EBADTYPE;
    if (d->n >= DECISION_MAX) return FACTUM_ETOOBIG;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        devent *ev = realloc(d->ev, cap * sizeof *ev);
        if (!ev) return -ENOMEM;
        d->ev = ev;
        d->cap = cap;
    }
    devent e = {0};
    e.type = strdup(type);
    e.data = dup_bytes(data, len);
    e.meta = metadata_len ? dup_bytes(metadata, metadata_len) : NULL;
    if (!e.type || !e.data || (metadata_len && !e.meta)) {
        free(e.type);
        free(e.data);
        free(e.meta);
        return -ENOMEM;
    }
    e.flags = flags;
    e.len = len;
    e.meta_len = metadata_len;
    d->ev[d->n++] = e;
    return 0;
}

int factum_decision_add_json(factum_decision *d, const char *type, const char *json)
{
    if (!json) return FACTUM_EINVAL;
    return factum_decision_add(d, type, FACTUM_EVENT_JSON, json, strlen(json), NULL, 0);
}

/* ---- the decider ------------------------------------------------------ */

struct factum_decider {
    factum_store *store;   /* embedded, or */
    factum_client *client; /* over the network (one of the two), */
    const remote_ops *ops; /* through the client library's table (common/remote.h) */
    factum_decider_def def;
    char *snapshot_type;
};

void factum_decider_def_init(factum_decider_def *d)
{
    memset(d, 0, sizeof *d);
    d->max_attempts = 8;
    d->backoff_ms = 1;
    d->backoff_max_ms = 50;
}

static int decider_new(factum_store *s, factum_client *client, const factum_decider_def *def,
                       factum_decider **out)
{
    if ((!s && !client) || !def || !out) return FACTUM_EINVAL;
    *out = NULL;
    if (!def->initial || !def->evolve || !def->decide || !def->state_free || !def->max_attempts)
        return FACTUM_EINVAL;
    int snaps =
        (def->snapshot_encode != NULL) + (def->snapshot_decode != NULL) + (def->snapshot_type != NULL);
    if (snaps != 0 && snaps != 3) return FACTUM_EINVAL;
    if (def->snapshot_type &&
        (!*def->snapshot_type || strnlen(def->snapshot_type, FACTUM_MAX_TYPE_LEN + 1) > FACTUM_MAX_TYPE_LEN))
        return FACTUM_EINVAL;
    factum_decider *d = calloc(1, sizeof *d);
    if (!d) return -ENOMEM;
    d->store = s;
    d->client = client;
    d->def = *def;
    if (def->snapshot_type && !(d->snapshot_type = strdup(def->snapshot_type))) {
        free(d);
        return -ENOMEM;
    }
    d->def.snapshot_type = d->snapshot_type;
    *out = d;
    return 0;
}

int factum_decider_new(factum_store *s, const factum_decider_def *def, factum_decider **out)
{
    if (!s) return FACTUM_EINVAL;
    return decider_new(s, NULL, def, out);
}

int factum_decider_new_remote(struct factum_client *c, const factum_decider_def *def, factum_decider **out)
{
    const remote_ops *ops = c ? remote_ops_of(c) : NULL;
    if (!ops) return FACTUM_EINVAL; /* RM-1 */
    int rc = decider_new(NULL, c, def, out);
    if (!rc) (*out)->ops = ops;
    return rc;
}

void factum_decider_free(factum_decider *d)
{
    if (!d) return;
    free(d->snapshot_type);
    free(d);
}

/* The state of a stream, loaded: snapshot + replay (SN-3 of snapshot.c
 * keeps the two consistent). */
static int load_bound(factum_decider *d, const char *stream, void **state_out, int64_t *version,
                      int64_t *snap_version, factum_reader *rdr);

/* A stream's sealed events (crypto-shredding) open into a reader of this
 * load's, reset per page: each page is evolved before the next is read. */
static int load(factum_decider *d, const char *stream, void **state_out, int64_t *version,
                int64_t *snap_version)
{
    factum_reader *rdr = NULL;
    holder_bind hb = holder_reader_enter(d->store, &rdr, 0);
    int rc = load_bound(d, stream, state_out, version, snap_version, rdr);
    holder_reader_leave(hb);
    factum_reader_free(rdr);
    return rc;
}

static int load_bound(factum_decider *d, const char *stream, void **state_out, int64_t *version,
                      int64_t *snap_version, factum_reader *rdr)
{
    const factum_decider_def *def = &d->def;
    factum_event page[LOAD_PAGE];
    factum_snapshot snap;
    size_t n;
    uint64_t next;
    *snap_version = FACTUM_NO_STREAM;
    int rc = factum_snapshot_load(d->store, stream, &snap, page, LOAD_PAGE, &n, &next);
    if (rc == FACTUM_ENOTFOUND) {
        /* never written, or soft-deleted: a new stream */
        void *st = def->initial(def->ctx);
        if (!st) return -ENOMEM;
        *state_out = st;
        *version = FACTUM_NO_STREAM;
        return 0;
    }
    if (rc) return rc;
    void *st = NULL;
    if (snap.found && def->snapshot_decode && snap.event.type_len == strlen(def->snapshot_type) &&
        !memcmp(snap.event.type, def->snapshot_type, snap.event.type_len) &&
        def->snapshot_decode(def->ctx, snap.event.data, snap.event.data_len, &st) == 0 && st) {
        *snap_version = (int64_t)snap.version;
        *version = (int64_t)snap.version;
    } else {
        /* no snapshot, or not one this decider reads: replay from the start */
        if (snap.found) {
            size_t m;
            uint64_t nx;
            if ((rc = factum_read_stream(d->store, stream, 0, FACTUM_FORWARD, page, LOAD_PAGE, &m, &nx)))
                return rc;
            n = m;
            next = nx;
        }
        if (!(st = def->initial(def->ctx))) return -ENOMEM;
        *version = FACTUM_NO_STREAM;
    }
    /* evolve sees events upcast by the store's upcasters (docs/upcasting.md),
     * as every other reader does; snapshots hold states, not events, and
     * are not upcast. */
    factum_upcast_buf *ub;
    if ((rc = factum_upcast_buf_new(&ub))) {
        def->state_free(def->ctx, st);
        return rc;
    }
    for (;;) {
        factum_upcast_buf_reset(ub);
        for (size_t i = 0; i < n; i++) {
            factum_event ev;
            if ((rc = factum_upcast(d->store, &page[i], ub, &ev)) < 0 || (rc = def->evolve(def->ctx, st, &ev)))
                goto fail;
            *version = (int64_t)page[i].version;
        }
        if (next == FACTUM_END) break;
        factum_reader_reset(rdr); /* the page is evolved */
        if ((rc = factum_read_stream(d->store, stream, next, FACTUM_FORWARD, page, LOAD_PAGE, &n, &next))) {
            if (rc == FACTUM_ENOTFOUND) rc = FACTUM_EWRONGVERSION; /* deleted meanwhile: load again */
            goto fail;
        }
    }
    factum_upcast_buf_free(ub);
    *state_out = st;
    return 0;
fail:
    factum_upcast_buf_free(ub);
    def->state_free(def->ctx, st);
    return rc;
}

/* ---- over the network (factum_decider_new_remote) -------------------- */

/* The events of one command id seen while loading (DC-2 over the network). */
typedef struct seen_cmd {
    const uint8_t *cmd; /* NULL: no command id */
    const char *stream;
    size_t slen;
    uint32_t next;    /* index of the next derived id to look for */
    uint8_t want[16]; /* its id */
    int found;
    uint64_t first_version, first_position, last_version, last_position;
} seen_cmd;

static void seen_init(seen_cmd *sc, const uint8_t *cmd, const char *stream, size_t slen)
{
    memset(sc, 0, sizeof *sc);
    sc->cmd = cmd;
    sc->stream = stream;
    sc->slen = slen;
    if (cmd) factum_app_derive_id(cmd, stream, slen, 0, sc->want);
}

static void seen_check(seen_cmd *sc, const factum_event *ev)
{
    if (!sc->cmd || memcmp(ev->id, sc->want, 16)) return;
    if (!sc->found) {
        sc->found = 1;
        sc->first_version = ev->version;
        sc->first_position = ev->position;
    }
    sc->last_version = ev->version;
    sc->last_position = ev->position;
    factum_app_derive_id(sc->cmd, sc->stream, sc->slen, ++sc->next, sc->want);
}

#define REMOTE_SNAPSHOTS 16 /* newest snapshots examined */

/* The newest snapshot the decoder accepts with $streamVersion <= last. */
static int remote_snapshot(factum_decider *d, const char *stream, uint64_t last, void **st, uint64_t *v)
{
    const factum_decider_def *def = &d->def;
    char name[FACTUM_MAX_STREAM_LEN + 1];
    if (strlen(stream) + sizeof FACTUM_SNAPSHOT_PREFIX - 1 > FACTUM_MAX_STREAM_LEN) return 0;
    snprintf(name, sizeof name, FACTUM_SNAPSHOT_PREFIX "%s", stream);
    factum_client_batch *b;
    int rc = d->ops->read_stream(d->client, name, FACTUM_END, FACTUM_BACKWARD, REMOTE_SNAPSHOTS, &b);
    if (rc == FACTUM_ENOTFOUND || rc == FACTUM_EDELETED) return 0;
    if (rc) return rc;
    size_t n = d->ops->batch_count(b);
    for (size_t i = 0; i < n && !*st; i++) {
        const factum_event *ev = d->ops->batch_event(b, i);
        if (ev->type_len != strlen(def->snapshot_type) || memcmp(ev->type, def->snapshot_type, ev->type_len))
            continue;
        json_value *doc;
        if (!ev->metadata_len || json_parse((const char *)ev->metadata, ev->metadata_len, &doc)) continue;
        int64_t x = -1;
        const json_value *f = doc->type == JSON_OBJECT ? json_get(doc, "$streamVersion") : NULL;
        int ok = f && json_int64(f, &x) == 0 && x >= 0 && (uint64_t)x <= last;
        json_free(doc);
        void *s2 = NULL;
        if (ok && def->snapshot_decode(def->ctx, ev->data, ev->data_len, &s2) == 0 && s2) {
            *st = s2;
            *v = (uint64_t)x;
        }
    }
    d->ops->batch_free(b);
    return 0;
}

static int remote_load(factum_decider *d, const char *stream, void **state_out, int64_t *version,
                       int64_t *snap_version, seen_cmd *sc)
{
    const factum_decider_def *def = &d->def;
    *snap_version = FACTUM_NO_STREAM;
    factum_client_batch *b;
    int rc = d->ops->read_stream(d->client, stream, FACTUM_END, FACTUM_BACKWARD, 1, &b);
    uint64_t last = 0;
    int empty = rc == FACTUM_ENOTFOUND;
    if (rc && !empty) return rc;
    if (!rc) {
        empty = d->ops->batch_count(b) == 0;
        if (!empty) last = d->ops->batch_event(b, 0)->version;
        d->ops->batch_free(b);
    }
    if (empty) {
        void *st = def->initial(def->ctx);
        if (!st) return -ENOMEM;
        *state_out = st;
        *version = FACTUM_NO_STREAM;
        return 0;
    }
    void *st = NULL;
    uint64_t sv = 0;
    if (def->snapshot_decode && (rc = remote_snapshot(d, stream, last, &st, &sv))) return rc;
    for (int with_snapshot = st != NULL;; with_snapshot = 0) {
        uint64_t from = 0;
        if (with_snapshot) {
            from = sv + 1;
            *snap_version = *version = (int64_t)sv;
        } else {
            if (st) def->state_free(def->ctx, st);
            if (!(st = def->initial(def->ctx))) return -ENOMEM;
            *snap_version = *version = FACTUM_NO_STREAM;
            seen_init(sc, sc->cmd, sc->stream, sc->slen);
        }
        int restart = 0, first = 1;
        for (;;) {
            /* factumd sends the events upcast (the client does not ask for raw ones) */
            rc = d->ops->read_stream(d->client, stream, from, FACTUM_FORWARD, REMOTE_PAGE, &b);
            if (rc == FACTUM_ENOTFOUND) rc = FACTUM_EWRONGVERSION; /* deleted meanwhile: load again */
            if (rc) {
                def->state_free(def->ctx, st);
                return rc;
            }
            size_t n = d->ops->batch_count(b);
            if (first && with_snapshot &&
                (n ? d->ops->batch_event(b, 0)->version != from : from <= last)) {
                restart = 1; /* the stream was truncated after the snapshot: replay it whole */
                d->ops->batch_free(b);
                break;
            }
            first = 0;
            for (size_t i = 0; i < n && !rc; i++) {
                const factum_event *ev = d->ops->batch_event(b, i);
                seen_check(sc, ev);
                rc = def->evolve(def->ctx, st, ev);
                *version = (int64_t)ev->version;
                from = ev->version + 1;
            }
            d->ops->batch_free(b);
            if (rc) {
                def->state_free(def->ctx, st);
                return rc;
            }
            if (n < REMOTE_PAGE) break;
        }
        if (!restart) break;
    }
    *state_out = st;
    return 0;
}

static int remote_snapshot_write(factum_decider *d, const char *stream, uint64_t version, const char *data,
                                 size_t len)
{
    char name[FACTUM_MAX_STREAM_LEN + 1];
    if (strlen(stream) + sizeof FACTUM_SNAPSHOT_PREFIX - 1 > FACTUM_MAX_STREAM_LEN) return FACTUM_EINVAL;
    snprintf(name, sizeof name, FACTUM_SNAPSHOT_PREFIX "%s", stream);
    char meta[64];
    int ml = snprintf(meta, sizeof meta, "{\"$streamVersion\":%llu}", (unsigned long long)version);
    factum_event_data ev = {0};
    ev.type = d->def.snapshot_type;
    ev.flags = FACTUM_EVENT_META_JSON | (json_validate(data, len) == 0 ? FACTUM_EVENT_JSON : 0);
    ev.data = data;
    ev.data_len = len;
    ev.metadata = meta;
    ev.metadata_len = (size_t)ml;
    int rc = d->ops->append(d->client, name, FACTUM_ANY, &ev, 1, NULL);
    if (rc) return rc;
    /* retention: `$maxCount` of the snapshot stream (only when it differs) */
    uint32_t keep = d->def.snapshot_keep ? d->def.snapshot_keep : FACTUM_SNAPSHOT_KEEP_DEFAULT;
    char *json = NULL;
    int64_t mv;
    if ((rc = d->ops->get_stream_metadata(d->client, name, &json, &mv))) return rc;
    base_buf b = {0};
    rc = snapshot_retention_doc(json, strlen(json), keep, &b);
    free(json);
    if (rc == 1)
        rc = d->ops->set_stream_metadata(d->client, name, mv < 0 ? FACTUM_NO_STREAM : mv,
                                               (const char *)b.data, NULL);
    base_buf_free(&b);
    /* FACTUM_EWRONGVERSION: another writer changed it meanwhile; the next snapshot checks again */
    return rc == FACTUM_EWRONGVERSION ? 0 : rc;
}

int factum_decider_load(factum_decider *d, const char *stream, void **state, int64_t *version,
                        int64_t *snapshot_version)
{
    if (!d || !stream || !state || !version) return FACTUM_EINVAL;
    int64_t sv;
    int rc;
    seen_cmd sc;
    seen_init(&sc, NULL, stream, 0);
    for (int i = 0; i < 4; i++) {
        rc = d->store ? load(d, stream, state, version, &sv)
                      : remote_load(d, stream, state, version, &sv, &sc);
        if (rc != FACTUM_EWRONGVERSION) break;
    }
    if (!rc && snapshot_version) *snapshot_version = sv;
    return rc;
}

/* ---- as of a position and a valid time ------------------------------- */

static int load_asof_bound(factum_decider *d, const char *stream, const factum_asof *a, void *st,
                           int64_t *version, factum_reader *rdr);

static int load_asof_local(factum_decider *d, const char *stream, const factum_asof *a, void *st, int64_t *version)
{
    factum_reader *rdr = NULL; /* as load */
    holder_bind hb = holder_reader_enter(d->store, &rdr, 0);
    int rc = load_asof_bound(d, stream, a, st, version, rdr);
    holder_reader_leave(hb);
    factum_reader_free(rdr);
    return rc;
}

static int load_asof_bound(factum_decider *d, const char *stream, const factum_asof *a, void *st,
                           int64_t *version, factum_reader *rdr)
{
    const factum_decider_def *def = &d->def;
    factum_event page[LOAD_PAGE];
    factum_upcast_buf *ub;
    int rc = factum_upcast_buf_new(&ub);
    if (rc) return rc;
    uint64_t next = 0;
    do {
        size_t n;
        factum_reader_reset(rdr); /* the page before is evolved */
        rc = factum_read_stream_asof(d->store, stream, a, next, FACTUM_FORWARD, page, LOAD_PAGE, &n, &next);
        if (rc == FACTUM_ENOTFOUND && *version == FACTUM_NO_STREAM) rc = 0, next = FACTUM_END; /* not then */
        if (rc) break;
        factum_upcast_buf_reset(ub);
        for (size_t i = 0; i < n && !rc; i++) {
            factum_event ev;
            if ((rc = factum_upcast(d->store, &page[i], ub, &ev)) >= 0 && !(rc = def->evolve(def->ctx, st, &ev)))
                *version = (int64_t)page[i].version;
        }
    } while (!rc && next != FACTUM_END);
    factum_upcast_buf_free(ub);
    return rc;
}

/* Over the network: the `$asof/<stream>?position=P[&valid=T]` virtual
 * stream (docs/temporal.md), whose events factumd sends upcast. */
static int load_asof_remote(factum_decider *d, const char *stream, const factum_asof *a, void *st, int64_t *version)
{
    const factum_decider_def *def = &d->def;
    size_t len = strlen(stream);
    char *name = malloc(len + 96);
    if (!name) return -ENOMEM;
    int k = snprintf(name, len + 96, "$asof/%s?position=%llu", stream, (unsigned long long)a->position);
    if (a->valid_until_ns != FACTUM_VALID_ANY) {
        char t[40];
        factum_time_format(a->valid_until_ns, t);
        snprintf(name + k, len + 96 - (size_t)k, "&valid=%s", t);
    }
    uint64_t from = 0;
    int rc;
    for (;;) {
        factum_client_batch *b;
        rc = d->ops->read_stream(d->client, name, from, FACTUM_FORWARD, REMOTE_PAGE, &b);
        if (rc == FACTUM_ENOTFOUND && *version == FACTUM_NO_STREAM) rc = 0; /* not then */
        if (rc) break;
        size_t n = d->ops->batch_count(b);
        for (size_t i = 0; i < n && !rc; i++) {
            const factum_event *ev = d->ops->batch_event(b, i);
            if (!(rc = def->evolve(def->ctx, st, ev))) *version = (int64_t)ev->version;
            from = ev->version + 1;
        }
        d->ops->batch_free(b);
        if (rc || n < REMOTE_PAGE) break;
    }
    free(name);
    return rc;
}

int factum_decider_load_asof(factum_decider *d, const char *stream, const factum_asof *a, void **state,
                             int64_t *version)
{
    if (!d || !stream || !a || !state || !version) return FACTUM_EINVAL;
    int rc = factum_check_stream_name(stream, strlen(stream));
    if (rc) return rc;
    void *st = d->def.initial(d->def.ctx);
    if (!st) return -ENOMEM;
    *version = FACTUM_NO_STREAM;
    rc = d->store ? load_asof_local(d, stream, a, st, version) : load_asof_remote(d, stream, a, st, version);
    if (rc) {
        d->def.state_free(d->def.ctx, st);
        return rc;
    }
    *state = st;
    return 0;
}

static void backoff(const factum_decider_def *def, uint32_t attempt)
{
    if (!def->backoff_ms) return;
    uint64_t cap = (uint64_t)def->backoff_ms << (attempt < 16 ? attempt : 16);
    if (cap > def->backoff_max_ms) cap = def->backoff_max_ms;
    if (!cap) return;
    uint8_t r[16];
    factum_uuid_v4(r); /* thread-safe randomness, enough for jitter */
    uint64_t x;
    memcpy(&x, r, sizeof x);
    uint64_t us = x % (cap * 1000 + 1);
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Fold the events just appended into the loaded state and write a
 * snapshot of it (DC-4). */
static int snapshot_after(factum_decider *d, const char *stream, void *state, const factum_event_data *evs,
                          size_t n, const factum_append_result *ar)
{
    const factum_decider_def *def = &d->def;
    for (size_t i = 0; i < n; i++) {
        factum_event e = {0};
        e.stream = stream;
        e.stream_len = strlen(stream);
        e.type = evs[i].type;
        e.type_len = strlen(evs[i].type);
        memcpy(e.id, evs[i].id, 16);
        e.flags = evs[i].flags;
        e.version = ar->first_version + i;
        e.position = ar->first_position + i;
        e.timestamp_ns = ar->timestamp_ns;
        e.data = evs[i].data;
        e.data_len = evs[i].data_len;
        e.metadata = evs[i].metadata;
        e.metadata_len = evs[i].metadata_len;
        int rc = def->evolve(def->ctx, state, &e);
        if (rc) return rc;
    }
    char *data = NULL;
    size_t len = 0;
    int rc = def->snapshot_encode(def->ctx, state, &data, &len);
    if (rc) return rc;
    if (d->store)
        rc = factum_snapshot_write(d->store, stream, ar->last_version, def->snapshot_type, data, len,
                                   def->snapshot_keep, NULL);
    else
        rc = remote_snapshot_write(d, stream, ar->last_version, data, len);
    free(data);
    return rc;
}

int factum_decider_handle(factum_decider *d, const char *stream, const void *command,
                          const uint8_t *command_id, factum_decide_result *res)
{
    factum_decide_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    res->version = FACTUM_NO_STREAM;
    if (!d || !stream) return FACTUM_EINVAL;
    size_t slen = strnlen(stream, FACTUM_MAX_STREAM_LEN + 1);
    int rc = factum_check_stream_name(stream, slen);
    if (rc) return rc;
    const factum_decider_def *def = &d->def;
    uint8_t id0[16];
    if (command_id) factum_app_derive_id(command_id, stream, slen, 0, id0);
    factum_decision dec = {0};
    factum_event_data *evs = NULL;
    size_t evs_cap = 0;
    rc = FACTUM_EWRONGVERSION;
    for (uint32_t attempt = 0; attempt < def->max_attempts; attempt++) {
        if (attempt) backoff(def, attempt - 1);
        /* DC-2: handled before? (over the network: found by the load) */
        if (command_id && d->store) {
            factum_event found;
            int f = store_find_event_id(d->store, stream, id0, &found);
            if (f < 0) {
                rc = f;
                break;
            }
            if (f) {
                factum_stream_info info;
                res->idempotent = 1;
                res->first_version = found.version;
                res->first_position = found.position;
                res->last_version = found.version;
                res->last_position = found.position;
                /* the rest of that command's events follow it */
                for (uint32_t i = 1;; i++) {
                    uint8_t idi[16];
                    factum_event e;
                    factum_app_derive_id(command_id, stream, slen, i, idi);
                    if (store_find_event_id(d->store, stream, idi, &e) != 1) break;
                    res->last_version = e.version;
                    res->last_position = e.position;
                }
                res->n_events = 0;
                res->version = factum_stream_get_info(d->store, stream, &info) == 0
                                   ? info.last_version
                                   : (int64_t)res->last_version;
                rc = 0;
                break;
            }
        }
        void *state;
        int64_t version, snap_version;
        seen_cmd sc;
        seen_init(&sc, d->store ? NULL : command_id, stream, slen);
        rc = d->store ? load(d, stream, &state, &version, &snap_version)
                      : remote_load(d, stream, &state, &version, &snap_version, &sc);
        if (rc) {
            if (rc == FACTUM_EWRONGVERSION) continue;
            break;
        }
        if (sc.found) {
            def->state_free(def->ctx, state);
            res->idempotent = 1;
            res->first_version = sc.first_version;
            res->first_position = sc.first_position;
            res->last_version = sc.last_version;
            res->last_position = sc.last_position;
            res->version = version;
            rc = 0;
            break;
        }
        res->attempts = attempt + 1;
        res->version = version;
        decision_clear(&dec);
        rc = def->decide(def->ctx, command, state, &dec);
        if (rc || !dec.n) {
            def->state_free(def->ctx, state);
            break; /* rejected (> 0), failed (< 0), or nothing to write */
        }
        if (dec.n > evs_cap) {
            factum_event_data *ne = realloc(evs, dec.n * sizeof *ne);
            if (!ne) {
                def->state_free(def->ctx, state);
                rc = -ENOMEM;
                break;
            }
            evs = ne;
            evs_cap = dec.n;
        }
        for (size_t i = 0; i < dec.n; i++) {
            factum_event_data *e = &evs[i];
            memset(e, 0, sizeof *e);
            e->type = dec.ev[i].type;
            e->flags = dec.ev[i].flags;
            e->data = dec.ev[i].data;
            e->data_len = dec.ev[i].len;
            e->metadata = dec.ev[i].meta;
            e->metadata_len = dec.ev[i].meta_len;
            e->has_id = 1;
            if (command_id)
                factum_app_derive_id(command_id, stream, slen, (uint32_t)i, e->id);
            else
                factum_uuid_v4(e->id);
        }
        factum_append_result ar;
        rc = d->store ? factum_append(d->store, stream, version, evs, dec.n, &ar)
                      : d->ops->append(d->client, stream, version, evs, dec.n, &ar);
        if (rc == FACTUM_EWRONGVERSION) {
            def->state_free(def->ctx, state);
            continue; /* DC-1: someone came first; decide again on their state */
        }
        if (rc) {
            def->state_free(def->ctx, state);
            break;
        }
        res->n_events = ar.idempotent ? 0 : dec.n;
        res->idempotent = ar.idempotent;
        res->first_version = ar.first_version;
        res->last_version = ar.last_version;
        res->first_position = ar.first_position;
        res->last_position = ar.last_position;
        res->version = (int64_t)ar.last_version;
        int64_t base = snap_version < 0 ? -1 : snap_version;
        if (def->snapshot_every && !ar.idempotent &&
            (int64_t)ar.last_version - base >= (int64_t)def->snapshot_every) {
            res->snapshot_rc = snapshot_after(d, stream, state, evs, dec.n, &ar);
            res->snapshot_written = res->snapshot_rc == 0;
        }
        def->state_free(def->ctx, state);
        break;
    }
    decision_deinit(&dec);
    free(evs);
    return rc;
}
