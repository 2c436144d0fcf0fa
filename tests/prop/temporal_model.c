/* Temporal reads against a model (src/store/temporal.c): random appends to
 * a few streams with random "$validFrom" (RFC 3339, integer milliseconds,
 * none, malformed), random `$maxCount` metadata and tombstones, a wall
 * clock stepped backwards and forwards between appends and across
 * restarts; then, at random times and positions, factum_position_at, a
 * stream as of a position (forward and backward, random page sizes) and
 * $all as of a position, each with a random valid-time bound, compared
 * with the model. Checks TM-1 (timestamps strictly increase along
 * positions, whatever the clock did), TM-2 and TM-3. Prints its seed;
 * FACTUM_SEED replays it, FACTUM_TEMPORAL_OPS sets the number of appends. */
#include "harness.h"

#include "base/base.h"

#define STREAMS 5
#define MAXEV 4096

typedef struct mev {
    int stream;      /* 0..STREAMS-1, or -1 for another stream ($$s, ...) */
    uint64_t version;
    uint64_t position;
    int64_t ts;
    int64_t valid;
    int kind; /* 0 event, 1 metadata of `stream`, 2 tombstone of `stream` */
    int64_t max_count; /* kind 1 */
} mev;

static mev model[MAXEV];
static size_t n_model;
static int64_t next_version[STREAMS];
static const int64_t SEC = 1000000000;

static void name_of(int i, char *buf)
{
    snprintf(buf, 32, "tm-%d", i);
}

/* What the model says a stream looks like as of p with valid <= v: the
 * positions in version order, or an error. */
static int model_stream(int si, uint64_t p, int64_t v, uint64_t *out, size_t *n_out)
{
    *n_out = 0;
    int64_t last = -1, mc = -1;
    for (size_t i = 0; i < n_model && model[i].position <= p; i++) {
        if (model[i].stream != si) continue;
        if (model[i].kind == 2) return FACTUM_EDELETED;
        if (model[i].kind == 1) mc = model[i].max_count;
        if (model[i].kind == 0) last = (int64_t)model[i].version;
    }
    if (last < 0) return FACTUM_ENOTFOUND;
    int64_t first = mc >= 0 ? last - mc + 1 : 0;
    for (size_t i = 0; i < n_model && model[i].position <= p; i++)
        if (model[i].stream == si && model[i].kind == 0 && (int64_t)model[i].version >= first &&
            model[i].valid <= v)
            out[(*n_out)++] = model[i].position;
    return 0;
}

static void check_stream(factum_store *s, h_rng *r, int si, uint64_t p, int64_t v)
{
    static uint64_t want[MAXEV], got[MAXEV];
    size_t nw, ng = 0;
    int wrc = model_stream(si, p, v, want, &nw);
    char name[32];
    name_of(si, name);
    factum_asof a = {p, v};
    int back = (int)h_below(r, 2);
    uint64_t from = back ? FACTUM_END : 0;
    factum_event evs[8];
    for (int guard = 0; guard < 100000; guard++) {
        size_t cap = 1 + h_below(r, 7), n;
        uint64_t next;
        int rc = factum_read_stream_asof(s, name, &a, from, back, evs, cap, &n, &next);
        if (rc) {
            if (rc != wrc) fprintf(stderr, "  stream %s as of %" PRIu64 ": rc %d, model %d\n", name, p, rc, wrc);
            CHECK_RC(rc, wrc);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            CHECK(evs[i].position <= p);
            CHECK(factum_event_valid_time(&evs[i]) <= v);
            got[ng++] = evs[i].position;
        }
        if (next == FACTUM_END) break;
        from = next;
    }
    CHECK_RC(0, wrc);
    if (back)
        for (size_t i = 0; i < ng / 2; i++) {
            uint64_t t = got[i];
            got[i] = got[ng - 1 - i];
            got[ng - 1 - i] = t;
        }
    CHECK_EQ_U64(ng, nw);
    int same = ng == nw;
    for (size_t i = 0; same && i < ng; i++)
        same = got[i] == want[i];
    if (!same) fprintf(stderr, "  stream %s as of %" PRIu64 " valid %" PRId64 ": differs\n", name, p, v);
    CHECK(same);
}

static void check_all(factum_store *s, h_rng *r, uint64_t p, int64_t v)
{
    static uint64_t got[MAXEV];
    size_t ng = 0, nw = 0;
    for (size_t i = 0; i < n_model && model[i].position <= p; i++)
        if (model[i].valid <= v) nw++;
    factum_asof a = {p, v};
    int back = (int)h_below(r, 2);
    uint64_t from = back ? FACTUM_END : 0;
    factum_event evs[8];
    for (int guard = 0; guard < 100000; guard++) {
        size_t cap = 1 + h_below(r, 7), n;
        uint64_t next;
        size_t max_scan = h_below(r, 3) ? 0 : 1 + h_below(r, 10);
        CHECK_RC(factum_read_all_asof(s, &a, from, back, NULL, max_scan, evs, cap, &n, &next), 0);
        for (size_t i = 0; i < n; i++)
            got[ng++] = evs[i].position;
        if (back ? next == 0 : next > p) break;
        if (next == from && n == 0) break;
        from = next;
    }
    CHECK_EQ_U64(ng, nw);
    size_t k = 0;
    int same = 1;
    for (size_t j = 0; j < n_model && model[j].position <= p && same; j++) {
        if (model[j].valid > v) continue;
        size_t at = back ? ng - 1 - k : k;
        same = k < ng && got[at] == model[j].position;
        k++;
    }
    if (!same) fprintf(stderr, "  $all as of %" PRIu64 " valid %" PRId64 ": differs\n", p, v);
    CHECK(same);
}

/* Record what the store wrote (read back by position) into the model. */
static void record(factum_store *s, uint64_t first, uint64_t last, int si, int kind, int64_t mc)
{
    for (uint64_t pos = first; pos <= last; pos++) {
        factum_event ev;
        if (factum_read_position(s, pos, &ev)) return;
        mev *m = &model[n_model++];
        m->stream = si;
        m->version = ev.version;
        m->position = pos;
        m->ts = ev.timestamp_ns;
        m->valid = factum_event_valid_time(&ev);
        m->kind = kind;
        m->max_count = mc;
    }
}

static void t_model(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "temporal-model");
    h_rng r = {harness_seed("temporal model")};
    const char *e = getenv("FACTUM_TEMPORAL_OPS");
    size_t ops = e ? strtoul(e, NULL, 10) : 600;
    factum_store *s;
    REQUIRE(!factum_store_open(dir, NULL, &s));
    n_model = 0;
    memset(next_version, 0, sizeof next_version);
    int tomb[STREAMS] = {0};
    int64_t t0 = base_now_ns();
    int64_t stepped = 0;
    for (size_t op = 0; op < ops && n_model + 8 < MAXEV; op++) {
        /* The clock steps back (or forward) now and then. */
        uint64_t c = h_below(&r, 20);
        if (c == 0) {
            int64_t d = -(int64_t)(1 + h_below(&r, 30)) * SEC;
            base_clock_step_for_tests(d);
            stepped += d;
        } else if (c == 1 && stepped < 0) {
            int64_t d = (int64_t)h_below(&r, (uint64_t)-stepped + 1);
            base_clock_step_for_tests(d);
            stepped += d;
        } else if (c == 2) {
            /* A restart, the clock possibly behind the log. */
            CHECK_RC(factum_store_close(s), 0);
            REQUIRE(!factum_store_open(dir, NULL, &s));
        }
        int si = (int)h_below(&r, STREAMS);
        char name[32];
        name_of(si, name);
        factum_append_result res;
        uint64_t k = h_below(&r, 40);
        if (k == 0 && !tomb[si] && op > ops / 2) {
            int rc = factum_tombstone_stream(s, name, FACTUM_ANY, &res);
            CHECK_RC(rc, 0);
            if (!rc) {
                tomb[si] = 1;
                record(s, res.last_position, res.last_position, si, 2, 0);
            }
            continue;
        }
        if (k <= 2) {
            int64_t mc = (int64_t)(1 + h_below(&r, 6));
            char json[64];
            snprintf(json, sizeof json, "{\"$maxCount\":%" PRId64 "}", mc);
            int rc = factum_set_stream_metadata(s, name, FACTUM_ANY, json, strlen(json), &res);
            if (!tomb[si]) CHECK_RC(rc, 0);
            if (!rc) record(s, res.last_position, res.last_position, si, 1, mc);
            continue;
        }
        size_t n = 1 + h_below(&r, 3);
        factum_event_data evs[3];
        char metas[3][128];
        for (size_t i = 0; i < n; i++) {
            int64_t valid = t0 + ((int64_t)h_below(&r, 400) - 200) * SEC + (int64_t)h_below(&r, 1000) * 1000000;
            switch (h_below(&r, 4)) {
            case 0: {
                char tb[40];
                factum_time_format(valid, tb);
                snprintf(metas[i], sizeof metas[i], "{\"$validFrom\":\"%s\",\"x\":1}", tb);
                break;
            }
            case 1:
                snprintf(metas[i], sizeof metas[i], "{\"$validFrom\":%" PRId64 "}", valid / 1000000);
                break;
            case 2:
                snprintf(metas[i], sizeof metas[i], "{\"$validFrom\":\"yesterday\"}"); /* malformed: commit time */
                break;
            default:
                metas[i][0] = 0;
            }
            evs[i] = (factum_event_data){.type = "E", .data = "{}", .data_len = 2, .metadata = metas[i],
                                         .metadata_len = strlen(metas[i]), .flags = FACTUM_EVENT_JSON};
        }
        int rc = factum_append(s, name, FACTUM_ANY, evs, n, &res);
        if (tomb[si]) {
            CHECK_RC(rc, FACTUM_EDELETED);
            continue;
        }
        CHECK_RC(rc, 0);
        if (rc) continue;
        record(s, res.first_position, res.last_position, si, 0, 0);
    }
    base_clock_step_for_tests(-stepped);
    /* Every position is in the model (nothing else wrote), and TM-1. */
    factum_stats st;
    CHECK_RC(factum_store_get_stats(s, &st), 0);
    CHECK_EQ_U64(st.last_position, n_model);
    for (size_t i = 1; i < n_model; i++)
        CHECK(model[i].ts >= model[i - 1].ts); /* a group shares its stamp */
    for (size_t i = 0; i < n_model; i++)
        CHECK_EQ_U64(model[i].position, i + 1);
    /* Queries. */
    for (int q = 0; q < 300; q++) {
        uint64_t p;
        int64_t t;
        size_t at = h_below(&r, n_model);
        switch (h_below(&r, 3)) {
        case 0: t = model[at].ts; break;
        case 1: t = model[at].ts - 1; break;
        default: t = model[0].ts - (int64_t)h_below(&r, 2) + (int64_t)h_below(&r, (uint64_t)(model[n_model - 1].ts - model[0].ts + 2));
        }
        CHECK_RC(factum_position_at(s, t, &p), 0);
        uint64_t want = 0;
        for (size_t i = 0; i < n_model && model[i].ts <= t; i++)
            want = model[i].position;
        CHECK_EQ_U64(p, want);
        int64_t v = h_below(&r, 4) == 0 ? FACTUM_VALID_ANY
                                        : t0 + ((int64_t)h_below(&r, 440) - 220) * SEC;
        if (h_below(&r, 2)) p = h_below(&r, n_model + 2);
        for (int si = 0; si < STREAMS; si++)
            check_stream(s, &r, si, p, v);
        if (q % 5 == 0) check_all(s, &r, p, v);
    }
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_model);
    return harness_done();
}
