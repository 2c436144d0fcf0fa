/* Randomised test of the store against a small in-memory model: appends
 * with every kind of expectation (and exact replays of earlier appends,
 * drawn from the whole run), reads of streams both ways, reads of $all both
 * ways, metadata ($maxCount, $tb), soft deletes, tombstones and reopens.
 * Every result is compared with the model. Prints its seed; FACTUM_SEED=<seed>
 * replays a run, and FACTUM_PROP_OPS sets the number of operations (default
 * 4000). The model grows with the run: every operation asked for is run. */
#include "harness.h"

#include "base/base.h"

#define NSTREAMS 16
#define HISTORY  512 /* appends kept for replays: a uniform sample of the whole run */

typedef struct mev {
    int stream; /* index; -1 - i for the metadata stream of i */
    uint64_t version, position;
    uint8_t id[16];
    char type[16];
} mev;

typedef struct mstream {
    char name[16];
    int64_t last;     /* -1 none, INT64_MAX tombstoned */
    int64_t tb;       /* -1 none */
    int64_t maxcount; /* -1 none */
    int64_t meta_last;
    uint64_t *evpos; /* positions of versions 0.. */
    size_t evpos_cap;
} mstream;

static mev *evs;
static size_t n_evs, cap_evs;
static mstream ms[NSTREAMS];

/* (stream, event id) -> version of the event: the model's event-id index. */
typedef struct idslot {
    uint8_t id[16];
    int stream; /* -1: empty */
    uint64_t version;
} idslot;
static idslot *ids;
static size_t ids_cap, ids_n;

typedef struct past {
    int stream;
    int64_t expected;
    size_t n;
    factum_event_data ev[4];
    char data[4][32];
} past;
static past history[HISTORY];
static size_t n_hist;     /* slots in use */
static uint64_t n_appended; /* successful new appends so far (the sample's population) */

static char dir[512];
static h_rng rng;

static factum_store *reopen(factum_store *s)
{
    if (s) factum_store_close(s);
    factum_options o;
    harness_small_opts(&o);
    o.memtable_entries = 64 + h_below(&rng, 300); /* exercise flushes and merges */
    o.stream_cache_entries = 1 + h_below(&rng, 8);
    factum_store *n = NULL;
    int rc = factum_store_open(dir, &o, &n);
    if (rc) fprintf(stderr, "reopen: %s\n", factum_strerror(rc));
    return n;
}

static int soft_deleted(const mstream *m)
{
    return m->last != INT64_MAX && m->tb == INT64_MAX;
}

static void *grow_or_die(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *n = realloc(p, c * elem);
    if (!n) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    *cap = c;
    return n;
}

static size_t id_slot(const uint8_t *id, int stream)
{
    uint64_t h = base_get64(id) ^ (base_get64(id + 8) * 31) ^ (uint64_t)stream * 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & (ids_cap - 1);
    while (ids[i].stream != -1 && !(ids[i].stream == stream && !memcmp(ids[i].id, id, 16)))
        i = (i + 1) & (ids_cap - 1);
    return i;
}

/* Version of event `id` in stream `stream`: 1 and *v, or 0. */
static int id_find(int stream, const uint8_t *id, uint64_t *v)
{
    if (!ids_cap) return 0;
    idslot *sl = &ids[id_slot(id, stream)];
    if (sl->stream == -1) return 0;
    *v = sl->version;
    return 1;
}

static void id_add(int stream, const uint8_t *id, uint64_t version)
{
    if ((ids_n + 1) * 2 > ids_cap) {
        idslot *old = ids;
        size_t oc = ids_cap;
        ids_cap = ids_cap ? ids_cap * 2 : 4096;
        ids = malloc(ids_cap * sizeof *ids);
        if (!ids) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        for (size_t i = 0; i < ids_cap; i++)
            ids[i].stream = -1;
        for (size_t i = 0; i < oc; i++)
            if (old[i].stream != -1) ids[id_slot(old[i].id, old[i].stream)] = old[i];
        free(old);
    }
    idslot *sl = &ids[id_slot(id, stream)];
    if (sl->stream != -1) return; /* the first (oldest) one is the one the index finds */
    memcpy(sl->id, id, 16);
    sl->stream = stream;
    sl->version = version;
    ids_n++;
}

static uint64_t add_model_event(int stream, uint64_t version, const uint8_t *id, const char *type)
{
    evs = grow_or_die(evs, &cap_evs, n_evs + 1, sizeof *evs);
    mev *e = &evs[n_evs];
    e->stream = stream;
    e->version = version;
    e->position = ++n_evs;
    memcpy(e->id, id, 16);
    snprintf(e->type, sizeof e->type, "%s", type);
    if (stream >= 0 && version != FACTUM_TOMBSTONE_VERSION) {
        mstream *m = &ms[stream];
        m->evpos = grow_or_die(m->evpos, &m->evpos_cap, version + 1, sizeof *m->evpos);
        m->evpos[version] = e->position;
        id_add(stream, id, version);
    }
    return e->position;
}

static void add_model_meta(int i)
{
    uint8_t id[16] = {0};
    add_model_event(-1 - i, (uint64_t)++ms[i].meta_last, id, "$metadata");
}

/* The model's answer to an append (the rules of docs/durability.md). */
static int model_append(int si, int64_t exp, const factum_event_data *ev, size_t n, factum_append_result *r)
{
    mstream *m = &ms[si];
    if (m->last == INT64_MAX) return FACTUM_EDELETED;
    /* Replay? */
    int64_t start = -1;
    if (m->last >= 0) {
        if (exp >= 0)
            start = exp + 1;
        else if (exp == FACTUM_NO_STREAM)
            start = (m->tb > 0 && m->tb != INT64_MAX) ? m->tb : 0;
        else {
            uint64_t v;
            if (id_find(si, ev[0].id, &v)) start = (int64_t)v;
        }
    }
    size_t matched = 0;
    if (start >= 0 && start <= m->last)
        for (size_t i = 0; i < n && start + (int64_t)i <= m->last; i++) {
            const mev *e = &evs[m->evpos[start + (int64_t)i] - 1];
            if (memcmp(e->id, ev[i].id, 16)) break;
            matched++;
        }
    if (matched == n && n) {
        r->first_version = (uint64_t)start;
        r->first_position = m->evpos[start];
        r->idempotent = 1;
        return 0;
    }
    if (matched) return FACTUM_EIDEMPOTENCY;
    for (size_t k = 0; k < n; k++) { /* an id is never twice in a stream */
        uint64_t v;
        if (id_find(si, ev[k].id, &v)) return FACTUM_EIDEMPOTENCY;
    }
    int sd = soft_deleted(m);
    int ok = exp == FACTUM_ANY || (exp == FACTUM_NO_STREAM && (m->last < 0 || sd)) ||
             (exp == FACTUM_STREAM_EXISTS && (m->last >= 0 || m->meta_last >= 0) && !sd) || (exp >= 0 && m->last == exp);
    if (!ok) {
        r->actual_version = m->last < 0 ? FACTUM_NO_STREAM : m->last;
        return FACTUM_EWRONGVERSION;
    }
    if (n == 0) return 0;
    if (sd) {
        m->tb = m->last + 1;
        add_model_meta(si);
    }
    r->first_version = (uint64_t)(m->last + 1);
    r->idempotent = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t p = add_model_event(si, (uint64_t)(m->last + 1), ev[i].id, ev[i].type);
        if (i == 0) r->first_position = p;
        m->last++;
    }
    return 0;
}

static int64_t first_visible(const mstream *m)
{
    int64_t f = m->tb > 0 ? m->tb : 0;
    if (m->maxcount >= 0 && m->last - m->maxcount + 1 > f) f = m->last - m->maxcount + 1;
    return f;
}

static int check_stream_read(factum_store *s, int si)
{
    mstream *m = &ms[si];
    int back = (int)h_below(&rng, 2);
    uint64_t span = m->last == INT64_MAX ? 3 : (uint64_t)(m->last + 3);
    uint64_t from = h_below(&rng, 4) == 0 ? (back ? FACTUM_END : 0) : h_below(&rng, span);
    size_t cap = 1 + h_below(&rng, 12);
    factum_event out[16];
    size_t n;
    uint64_t next;
    int rc =
        factum_read_stream(s, m->name, from, back ? FACTUM_BACKWARD : FACTUM_FORWARD, out, cap, &n, &next);
    int want_rc = m->last < 0 || soft_deleted(m) ? FACTUM_ENOTFOUND
                  : m->last == INT64_MAX         ? FACTUM_EDELETED
                                                 : 0;
    if (rc != want_rc) {
        fprintf(stderr, "read %s: rc %d want %d\n", m->name, rc, want_rc);
        return 1;
    }
    if (rc) return 0;
    int64_t first = first_visible(m);
    size_t k = 0;
    if (!back) {
        for (int64_t v = (int64_t)from < first ? first : (int64_t)from; v <= m->last && k < cap; v++, k++) {
            if (k >= n || out[k].version != (uint64_t)v || out[k].position != m->evpos[v]) {
                fprintf(stderr, "read %s fwd from %" PRIu64 ": event %zu wrong\n", m->name, from, k);
                return 1;
            }
        }
    } else {
        int64_t v0 = from > (uint64_t)m->last ? m->last : (int64_t)from;
        for (int64_t v = v0; v >= first && k < cap; v--, k++) {
            if (k >= n || out[k].version != (uint64_t)v || out[k].position != m->evpos[v]) {
                fprintf(stderr,
                        "read %s back from %" PRIu64 " cap %zu first %" PRId64 ": event %zu wrong: got",
                        m->name, from, cap, first, k);
                for (size_t j = 0; j < n; j++)
                    fprintf(stderr, " v%" PRIu64 "@%" PRIu64, out[j].version, out[j].position);
                fprintf(stderr, "; model v%" PRId64 "@%" PRIu64 "\n", v, m->evpos[v]);

                return 1;
            }
        }
    }
    if (n != k) {
        fprintf(stderr, "read %s: %zu events, model %zu\n", m->name, n, k);
        return 1;
    }
    return 0;
}

static int check_all_read(factum_store *s)
{
    int back = (int)h_below(&rng, 2);
    uint64_t from = h_below(&rng, n_evs + 2);
    if (back && h_below(&rng, 3) == 0) from = FACTUM_END;
    size_t cap = 1 + h_below(&rng, 16);
    factum_event out[16];
    size_t n;
    uint64_t next;
    int rc = factum_read_all(s, from, back ? FACTUM_BACKWARD : FACTUM_FORWARD, NULL, 0, out, cap, &n, &next);
    if (rc) {
        fprintf(stderr, "read $all: %s\n", factum_strerror(rc));
        return 1;
    }
    size_t k = 0;
    if (!back) {
        for (uint64_t p = from < 1 ? 1 : from; p <= n_evs && k < cap; p++, k++)
            if (k >= n || out[k].position != p ||
                memcmp(out[k].type, evs[p - 1].type, strlen(evs[p - 1].type)))
                goto bad;
    } else {
        for (uint64_t p = from > n_evs ? n_evs : from; p >= 1 && k < cap; p--, k++)
            if (k >= n || out[k].position != p || out[k].version != evs[p - 1].version) goto bad;
    }
    if (k != n) goto bad;
    return 0;
bad:
    fprintf(stderr, "read $all %s from %" PRIu64 " cap %zu: got %zu events, mismatch at %zu\n",
            back ? "backward" : "forward", from, cap, n, k);
    return 1;
}

/* Keep a successful new append for later replays: reservoir sampling, so
 * that the HISTORY kept are a uniform sample of every append so far. */
static void remember(const past *p)
{
    n_appended++;
    size_t slot = n_hist < HISTORY ? n_hist++ : (size_t)h_below(&rng, n_appended);
    if (slot >= HISTORY) return;
    history[slot] = *p;
    for (size_t i = 0; i < p->n; i++)
        history[slot].ev[i].data = history[slot].data[i]; /* its own copy of the bytes */
}

int main(void)
{
    uint64_t seed = harness_seed("store_model");
    const char *hm = getenv("FACTUM_TEST_HASH_MASK");
    if (hm) {
        base_hash_mask_for_tests(strtoull(hm, NULL, 0));
        printf("stream hashes masked with %s: collisions everywhere\n", hm);
    }
    rng.s = seed;
    const char *e = getenv("FACTUM_PROP_OPS");
    long ops = e ? atol(e) : 4000;
    harness_tmpdir(dir, sizeof dir, "model");
    for (int i = 0; i < NSTREAMS; i++) {
        snprintf(ms[i].name, sizeof ms[i].name, "s%d", i);
        ms[i].last = ms[i].tb = ms[i].maxcount = ms[i].meta_last = -1;
    }
    factum_store *s = reopen(NULL);
    int bad = 0;
    long op = 0;
    for (; op < ops && !bad && s; op++) {
        int si = (int)h_below(&rng, NSTREAMS);
        mstream *m = &ms[si];
        uint64_t dice = h_below(&rng, 100);
        if (dice < 45) {
            factum_append_result r = {0}, mr = {0};
            past p = {0};
            int replay = n_hist && h_below(&rng, 5) == 0;
            if (replay) {
                p = history[h_below(&rng, n_hist)];
                si = p.stream;
                m = &ms[si];
            } else {
                p.stream = si;
                p.n = h_below(&rng, 4) + (h_below(&rng, 10) != 0);
                int k = (int)h_below(&rng, 8);
                p.expected = k == 0   ? FACTUM_ANY
                             : k == 1 ? FACTUM_NO_STREAM
                             : k == 2 ? FACTUM_STREAM_EXISTS
                             : k == 3 ? (int64_t)h_below(&rng, 8)
                                      : (m->last == INT64_MAX ? 0 : m->last);
                if (p.expected == -1 && k >= 3) p.expected = FACTUM_NO_STREAM;
                for (size_t i = 0; i < p.n; i++) {
                    snprintf(p.data[i], sizeof p.data[i], "{\"op\":%ld}", op);
                    p.ev[i] = harness_event(h_below(&rng, 2) ? "Deposited" : "Withdrawn", p.data[i]);
                }
            }
            int rc = factum_append(s, m->name, p.expected, p.ev, p.n, &r);
            int mrc = model_append(si, p.expected, p.ev, p.n, &mr);
            if (rc != mrc ||
                (rc == 0 && p.n &&
                 (r.first_version != mr.first_version || r.first_position != mr.first_position ||
                  r.idempotent != mr.idempotent)) ||
                (rc == FACTUM_EWRONGVERSION && r.actual_version != mr.actual_version)) {
                fprintf(stderr,
                        "op %ld append %s exp %" PRId64 " n %zu%s: rc %d (v%" PRIu64 " p%" PRIu64
                        " idem %d act %" PRId64 ") model %d (v%" PRIu64 " p%" PRIu64 " idem %d act %" PRId64
                        ")\n",
                        op, m->name, p.expected, p.n, replay ? " (replay)" : "", rc, r.first_version,
                        r.first_position, r.idempotent, r.actual_version, mrc, mr.first_version,
                        mr.first_position, mr.idempotent, mr.actual_version);
                bad = 1;
            }
            if (!rc && !replay && p.n) remember(&p);
        } else if (dice < 65) {
            bad = check_stream_read(s, si);
        } else if (dice < 80) {
            bad = check_all_read(s);
        } else if (dice < 86) {
            /* Metadata: replace with $maxCount and/or $tb. */
            if (m->last == INT64_MAX) continue;
            char json[64];
            int64_t mc = h_below(&rng, 2) ? (int64_t)h_below(&rng, 5) : -1;
            int64_t tb = h_below(&rng, 3) == 0 ? (int64_t)h_below(&rng, 6) : -1;
            if (mc >= 0 && tb >= 0)
                snprintf(json, sizeof json, "{\"$maxCount\":%lld,\"$tb\":%lld}", (long long)mc,
                         (long long)tb);
            else if (mc >= 0)
                snprintf(json, sizeof json, "{\"$maxCount\":%lld}", (long long)mc);
            else if (tb >= 0)
                snprintf(json, sizeof json, "{\"$tb\":%lld}", (long long)tb);
            else
                snprintf(json, sizeof json, "{}");
            int rc = factum_set_stream_metadata(s, m->name, FACTUM_ANY, json, strlen(json), NULL);
            if (rc) {
                fprintf(stderr, "op %ld set metadata: %s\n", op, factum_strerror(rc));
                bad = 1;
            }
            m->maxcount = mc;
            m->tb = tb;
            add_model_meta(si);
        } else if (dice < 90) {
            factum_append_result r;
            int64_t exp = h_below(&rng, 2) ? FACTUM_ANY : m->last;
            int rc = factum_delete_stream(s, m->name, exp, &r);
            int want = m->last == INT64_MAX ? FACTUM_EDELETED : 0;
            if (!want && exp == FACTUM_NO_STREAM && m->last >= 0 && !soft_deleted(m))
                want = FACTUM_EWRONGVERSION;
            if (rc != want) {
                fprintf(stderr, "op %ld delete %s exp %" PRId64 ": %d want %d\n", op, m->name, exp, rc, want);
                bad = 1;
            }
            if (!rc) {
                m->tb = INT64_MAX; /* the document holds $tb alone (KurrentDB) */
                m->maxcount = -1;
                add_model_meta(si);
            }
        } else if (dice < 91 && si >= NSTREAMS - 4) { /* a few streams may die */
            factum_append_result r;
            int rc = factum_tombstone_stream(s, m->name, FACTUM_ANY, &r);
            int want = m->last == INT64_MAX ? FACTUM_EDELETED : 0;
            if (rc != want) {
                fprintf(stderr, "op %ld tombstone %s: %d want %d\n", op, m->name, rc, want);
                bad = 1;
            }
            if (!rc) {
                uint8_t id[16] = {0};
                add_model_event(si, FACTUM_TOMBSTONE_VERSION, id, "$streamDeleted");
                m->last = INT64_MAX;
            }
        } else if (dice < 95) {
            s = reopen(s);
        } else {
            factum_stats st;
            factum_store_get_stats(s, &st);
            if (st.last_position != n_evs) {
                fprintf(stderr, "op %ld: last position %" PRIu64 ", model %zu\n", op, st.last_position,
                        n_evs);
                bad = 1;
            }
        }
    }
    if (!s) bad = 1;
    if (bad)
        fprintf(stderr, "FAILED with seed %" PRIu64 "\n", seed);
    else
        printf("%ld operations, %zu events match the model (replays drawn from %" PRIu64 " appends)\n", op,
               n_evs, n_appended);
    factum_store_close(s);
    if (!bad) harness_rm_rf(dir);
    for (int i = 0; i < NSTREAMS; i++)
        free(ms[i].evpos);
    free(evs);
    free(ids);
    printf("%d passed, %d failed\n", !bad, bad);
    return bad;
}
