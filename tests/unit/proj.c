/* Unit tests of the projections layer (src/proj): the system handlers on
 * their own (categories and their configuration, the source rule, the JSON
 * scanner), then the five system projections over a store with a scenario
 * whose every expected output is written out by hand (links, `$@` events,
 * deletions, links as sources, metadata streams, correlation ids, link
 * metadata), checkpoints (PRJ-1), restarts (PRJ-3), commands (enable,
 * disable, set_query, reset: PRJ-6), faults, and many small batches in
 * flight (PRJ-2, PRJ-4). Crashes and power loss: tests/fault/proj_crash.c. */
#include <pthread.h>

#include "harness.h"
#include "proj/proj.h"

static char dir[512];

static factum_store *open_fresh(const char *name)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static factum_store *reopen(void)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "reopen: %s\n", factum_strerror(rc));
    return s;
}

/* ---- the handlers, without a store ------------------------------------ */

static const prj_handler *H(const char *name)
{
    return prj_system_handler(name);
}

static int cat_of(const char *query, const char *stream, char *out)
{
    prj_config c;
    char err[200];
    if (H("$stream_by_category")->configure(&c, query, strlen(query), err, sizeof err)) return -1;
    factum_event rec = {
        .stream = stream, .stream_len = strlen(stream), .type = "T", .type_len = 1, .version = 0};
    char scratch[FACTUM_MAX_STREAM_LEN + 1];
    prj_src src = {&rec, &rec, scratch};
    prj_emit e;
    if (!H("$stream_by_category")->process(&c, &src, &e)) return 0;
    memcpy(out, e.name, e.name_len);
    out[e.name_len] = 0;
    return 1;
}

static void t_categories(void)
{
    char cat[256];
    CHECK(cat_of("first\r\n-", "account-1", cat) == 1 && !strcmp(cat, "account"));
    CHECK(cat_of("first\n-", "shopping-cart-1", cat) == 1 && !strcmp(cat, "shopping"));
    CHECK(cat_of("last\n-", "shopping-cart-1", cat) == 1 && !strcmp(cat, "shopping-cart"));
    CHECK(cat_of("  LAST \n-  ", "a-b-c", cat) == 1 && !strcmp(cat, "a-b"));
    CHECK(cat_of("-", "a-b-c", cat) == 1 && !strcmp(cat, "a-b")); /* a lone separator: the last one */
    CHECK(cat_of("first\n_", "user_42", cat) == 1 && !strcmp(cat, "user"));
    CHECK(cat_of("first\n\xc3\xa9", "caf\xc3\xa9x\xc3\xa9y", cat) == 1 && !strcmp(cat, "caf")); /* UTF-8 */
    CHECK(cat_of("first\n-", "nodash", cat) == 0);
    CHECK(cat_of("first\n-", "-leading", cat) == 0);    /* separator at index 0: none */
    CHECK(cat_of("first\n-", "$ce-account", cat) == 0); /* system streams have none */
    /* Refused configurations. */
    CHECK(cat_of("", "a-b", cat) == -1);
    CHECK(cat_of("middle\n-", "a-b", cat) == -1);
    CHECK(cat_of("first\n--", "a-b", cat) == -1);
    CHECK(cat_of("first\n-\nx", "a-b", cat) == -1);
    prj_config c;
    char err[200];
    CHECK_RC(H("$streams")->configure(&c, " \n", 2, err, sizeof err), 0);
    CHECK_RC(H("$streams")->configure(&c, "x", 1, err, sizeof err), FACTUM_EINVAL);
    CHECK_RC(H("$by_event_type")->configure(&c, "", 0, err, sizeof err), 0);
    const char *q = "{\"correlationIdProperty\":\"$myCorrelationId\"}";
    CHECK_RC(H("$by_correlation_id")->configure(&c, q, strlen(q), err, sizeof err), 0);
    CHECK(!strcmp(c.corr_key, "$myCorrelationId"));
    CHECK_RC(H("$by_correlation_id")->configure(&c, "", 0, err, sizeof err), 0);
    CHECK(!strcmp(c.corr_key, "$correlationId"));
    CHECK_RC(H("$by_correlation_id")->configure(&c, "{\"x\":1}", 7, err, sizeof err), FACTUM_EINVAL);
    CHECK_RC(H("$by_correlation_id")->configure(&c, "nope", 4, err, sizeof err), FACTUM_EINVAL);
}

static void t_source_rule(void)
{
    CHECK(prj_source_stream("account-1", 9));
    CHECK(!prj_source_stream("$ce-account", 11));
    CHECK(prj_source_stream("$$account-1", 11));    /* metadata of a user stream */
    CHECK(!prj_source_stream("$$$ce-account", 13)); /* metadata of a system stream */
    CHECK(!prj_source_stream("$$", 2));
}

static void t_json_member(void)
{
    const char *v;
    size_t n;
    int str;
    const char *j = "{ \"a\" : {\"x\":[1,\"}\"]}, \"$correlationId\":\"c\\\"1\", \"n\": -42 ,\"b\":null}";
    CHECK(prj_json_member(j, strlen(j), "$correlationId", 14, &v, &n, &str) == 1 && str && n == 4 &&
          !memcmp(v, "c\\\"1", 4));
    CHECK(prj_json_member(j, strlen(j), "n", 1, &v, &n, &str) == 1 && !str && n == 3 && !memcmp(v, "-42", 3));
    CHECK(prj_json_member(j, strlen(j), "b", 1, &v, &n, &str) == 1 && !str && n == 4);
    CHECK(prj_json_member(j, strlen(j), "zz", 2, &v, &n, &str) == 0);
    CHECK(prj_json_member("[1]", 3, "a", 1, &v, &n, &str) == 0);
    CHECK(prj_json_member("{\"a\":1,\"a\":2}", 13, "a", 1, &v, &n, &str) == 1 && v[0] == '2');
    CHECK(prj_json_member("{\"a\":", 5, "a", 1, &v, &n, &str) == 0);
    CHECK(prj_json_member("{\"a\":\"unterminated", 18, "a", 1, &v, &n, &str) == 0);
    CHECK(prj_json_member("{}", 2, "a", 1, &v, &n, &str) == 0);
}

/* ---- the scenario ------------------------------------------------------ */

static int append(factum_store *s, const char *stream, const char *type, const char *meta)
{
    factum_event_data ev = harness_event(type, "{}");
    if (meta) {
        ev.metadata = meta;
        ev.metadata_len = strlen(meta);
        ev.flags |= FACTUM_EVENT_META_JSON;
    }
    return factum_append(s, stream, FACTUM_ANY, &ev, 1, NULL);
}

static int append_link(factum_store *s, const char *stream, const char *target)
{
    factum_event_data ev = {.type = FACTUM_LINK_TYPE, .data = target, .data_len = strlen(target)};
    return factum_append(s, stream, FACTUM_ANY, &ev, 1, NULL);
}

/* The data of every event of `stream` (raw, not resolved), joined with
 * '|'; every event must be of `type`. */
static void stream_data(factum_store *s, const char *stream, const char *type, char *out, size_t cap)
{
    out[0] = 0;
    uint64_t from = 0;
    size_t len = 0;
    while (from != FACTUM_END) {
        factum_event ev[64];
        size_t n = 0;
        int rc = factum_read_stream(s, stream, from, FACTUM_FORWARD, ev, 64, &n, &from);
        if (rc) {
            snprintf(out, cap, "<%s>", factum_strerror(rc));
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(ev[i].type, type)) fprintf(stderr, "  %s: event of type %s\n", stream, ev[i].type);
            len += (size_t)snprintf(out + len, cap - len, "%s%.*s", len ? "|" : "", (int)ev[i].data_len,
                                    (const char *)ev[i].data);
        }
    }
}

#define CHECK_STREAM(s, stream, type, want)                                                                  \
    do {                                                                                                     \
        char got_[4096];                                                                                     \
        stream_data(s, stream, type, got_, sizeof got_);                                                     \
        if (strcmp(got_, want)) {                                                                            \
            fprintf(stderr, "  %s: got  %s\n  %*s  want %s\n", stream, got_, (int)strlen(stream), "", want); \
            CHECK(!"stream as expected");                                                                    \
        }                                                                                                    \
    } while (0)

static const char *SYSTEM[] = {"$streams", "$stream_by_category", "$by_category", "$by_event_type",
                               "$by_correlation_id"};

/* Wait until every system projection has done everything up to the
 * store's last position now. */
static int wait_all(factum_projections *m, factum_store *s)
{
    factum_stats st;
    factum_store_get_stats(s, &st);
    for (int i = 0; i < 5; i++) {
        int rc = factum_projection_wait(m, SYSTEM[i], st.last_position, 10000);
        if (rc != 1) {
            fprintf(stderr, "  wait %s: %d (%s)\n", SYSTEM[i], rc, factum_strerror(rc));
            return 0;
        }
    }
    return 1;
}

static void scenario(factum_store *s)
{
    CHECK_RC(append(s, "account-1", "Deposited", "{\"$correlationId\":\"c1\"}"), 0);
    CHECK_RC(append(s, "account-2", "Deposited", NULL), 0);
    CHECK_RC(append(s, "account-1", "Withdrawn", "{\"$correlationId\":\"c1\",\"x\":1}"), 0);
    CHECK_RC(append(s, "order-7-a", "Placed", "{\"$correlationId\":\"c2\"}"), 0);
    CHECK_RC(append(s, "nodash", "Deposited", NULL), 0);
    CHECK_RC(append(s, "$sys", "Deposited", "{\"$correlationId\":\"c9\"}"), 0); /* not a source */
    CHECK_RC(append_link(s, "links-1", "1@account-1"), 0);
    CHECK_RC(factum_set_stream_metadata(s, "account-2", FACTUM_ANY, "{\"$maxCount\":100}", 17, NULL), 0);
    CHECK_RC(append(s, "account-2", "Deposited", "{bad \"$correlationId\":\"c3\""), 0);
    CHECK_RC(factum_delete_stream(s, "order-7-a", FACTUM_ANY, NULL), 0);
    CHECK_RC(factum_tombstone_stream(s, "nodash", FACTUM_ANY, NULL), 0);
    CHECK_RC(append(s, "account-3", "Deposited", "{\"$correlationId\":42}"), 0);
    CHECK_RC(append(s, "account-3", "$special", NULL), 0);
    CHECK_RC(append_link(s, "links-2", "5@nowhere"), 0); /* unresolvable: skipped */
}

static void check_scenario(factum_store *s)
{
    CHECK_STREAM(s, "$ce-account", "$>",
                 "0@account-1|0@account-2|1@account-1|1@account-2|0@account-3|1@account-3");
    CHECK_STREAM(s, "$ce-order", "$>", "0@order-7-a|0@$$order-7-a");
    CHECK_STREAM(s, "$ce-links", "$>", "1@account-1");
    CHECK_STREAM(s, "$category-account", "$@", "account-1|account-2|account-3");
    CHECK_STREAM(s, "$category-order", "$@", "order-7-a");
    CHECK_STREAM(s, "$category-links", "$@", "links-1"); /* links-2 holds an unresolvable link only */
    CHECK_STREAM(
        s, "$streams", "$>",
        "0@account-1|0@account-2|0@order-7-a|0@nodash|0@links-1|0@$$account-2|0@$$order-7-a|0@account-3");
    CHECK_STREAM(s, "$et-Deposited", "$>", "0@account-1|0@account-2|0@nodash|1@account-2|0@account-3");
    CHECK_STREAM(s, "$et-Withdrawn", "$>", "1@account-1");
    CHECK_STREAM(s, "$et-Placed", "$>", "0@order-7-a");
    CHECK_STREAM(s, "$et-$metadata", "$>", "0@$$account-2");
    CHECK_STREAM(s, "$et-$deleted", "$>", "0@order-7-a|9223372036854775807@nodash");
    CHECK_STREAM(s, "$et-$special", "$>", "1@account-3");
    CHECK_STREAM(s, "$bc-c1", "$>", "0@account-1|1@account-1");
    CHECK_STREAM(s, "$bc-c2", "$>", "0@order-7-a");
    CHECK_STREAM(s, "$bc-42", "$>", "0@account-3");
    CHECK_STREAM(s, "$bc-c3", "$>", "<stream not found>");
    CHECK_STREAM(s, "$bc-c9", "$>", "<stream not found>");
    CHECK_STREAM(s, "$et-$>", "$>", "<stream not found>");
}

static void t_system_projections(void)
{
    factum_store *s = open_fresh("proj-system");
    REQUIRE(s);
    scenario(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    factum_projections *m = NULL;
    /* Created stopped: nothing happens until they are enabled. */
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.state == FACTUM_PROJECTION_STOPPED && !st.enabled && st.system && st.epoch == 0);
    CHECK(!strcmp(st.handler, "native:KurrentDB.Projections.Core.Standard.CategorizeEventsByStreamPath"));
    CHECK_RC(factum_projection_get_status(m, "$nope", &st), FACTUM_ENOTFOUND);
    CHECK_RC(factum_projection_enable(m, "$nope", NULL, NULL), FACTUM_ENOTFOUND);
    char *q = NULL;
    CHECK_RC(factum_projection_get_query(m, "$by_category", &q), 0);
    CHECK(q && !strcmp(q, "first\r\n-"));
    free(q);
    for (int i = 0; i < 5; i++)
        CHECK_RC(factum_projection_enable(m, SYSTEM[i], NULL, NULL), 0);
    REQUIRE(wait_all(m, s));
    check_scenario(s);

    /* KurrentDB's link metadata: the source position, $o, $deleted,
     * $causedBy (the source's id), its $correlationId; $eventTimestamp in
     * $bc- streams. */
    factum_event ev[4], src;
    size_t n;
    CHECK_RC(factum_read_stream(s, "$ce-account", 0, FACTUM_FORWARD, ev, 1, &n, NULL), 0);
    CHECK_RC(factum_read_stream(s, "account-1", 0, FACTUM_FORWARD, &src, 1, &n, NULL), 0);
    char want[512], id[37];
    factum_uuid_format(src.id, id);
    snprintf(want, sizeof want,
             "{\"$c\":1,\"$p\":1,\"$o\":\"account-1\",\"$causedBy\":\"%s\",\"$correlationId\":\"c1\"}", id);
    CHECK(ev[0].metadata_len == strlen(want) && !memcmp(ev[0].metadata, want, ev[0].metadata_len));
    CHECK(ev[0].flags == FACTUM_EVENT_META_JSON);
    CHECK_RC(factum_read_stream(s, "$ce-order", 1, FACTUM_FORWARD, ev, 1, &n, NULL), 0);
    CHECK(n == 1 && memmem(ev[0].metadata, ev[0].metadata_len, "\"$o\":\"order-7-a\",\"$deleted\":-1", 30));
    CHECK_RC(factum_read_stream(s, "$bc-c2", 0, FACTUM_FORWARD, ev, 1, &n, NULL), 0);
    CHECK(n == 1 && memmem(ev[0].metadata, ev[0].metadata_len, "\"$eventTimestamp\":\"20", 21));
    /* Links resolve on read. */
    factum_event target;
    CHECK_RC(factum_read_stream(s, "$ce-account", 2, FACTUM_FORWARD, ev, 1, &n, NULL), 0);
    CHECK_RC(factum_resolve_link(s, &ev[0], &target), 0);
    CHECK(!strcmp(target.stream, "account-1") && target.version == 1 && !strcmp(target.type, "Withdrawn"));
    /* The checkpoint stream: KurrentDB's name, event type, $maxCount 2. */
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "$projections-$by_category-checkpoint", &info), 0);
    CHECK(info.status == FACTUM_STREAM_LIVE && info.meta.max_count == 2);
    CHECK_RC(factum_read_stream(s, "$projections-$by_category-checkpoint", FACTUM_END, FACTUM_BACKWARD, ev, 1,
                                &n, NULL),
             0);
    CHECK(n == 1 && !strcmp(ev[0].type, "$ProjectionCheckpoint"));
    CHECK(n == 1 && memmem(ev[0].metadata, ev[0].metadata_len, "\"$v\":\"", 6));
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.state == FACTUM_PROJECTION_RUNNING && st.enabled && st.events_emitted == 9);
    CHECK(st.checkpoint <= st.position && st.writes_in_flight == 0);
    /* The definitions: the registry and one definition per projection. */
    factum_event reg[8];
    CHECK_RC(factum_read_stream(s, "$projections-$all", 0, FACTUM_FORWARD, reg, 8, &n, NULL), 0);
    CHECK(n == 6 && !strcmp(reg[0].type, "$ProjectionsInitialized") &&
          !strcmp(reg[3].type, "$ProjectionCreated"));
    CHECK(n == 6 && reg[3].data_len == 12 && !memcmp(reg[3].data, "$by_category", 12));
    CHECK_RC(
        factum_read_stream(s, "$projections-$by_category", FACTUM_END, FACTUM_BACKWARD, reg, 1, &n, NULL), 0);
    CHECK(n == 1 && !strcmp(reg[0].type, "$ProjectionUpdated") &&
          memmem(reg[0].data, reg[0].data_len, "\"Enabled\":true", 14) &&
          memmem(reg[0].data, reg[0].data_len, "\"Query\":\"first\\r\\n-\"", 20));
    factum_projections_close(m);
    /* Enabled is stored: a new manager runs them again, from their
     * checkpoints, and projects only what is new (PRJ-3). */
    CHECK_RC(append(s, "account-1", "Deposited", NULL), 0);
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    REQUIRE(wait_all(m, s));
    CHECK_STREAM(s, "$ce-account", "$>",
                 "0@account-1|0@account-2|1@account-1|1@account-2|0@account-3|1@account-3|2@account-1");
    CHECK_STREAM(
        s, "$streams", "$>",
        "0@account-1|0@account-2|0@order-7-a|0@nodash|0@links-1|0@$$account-2|0@$$order-7-a|0@account-3");
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* start_system enables all five at open; disable stops one (stored), a
 * new query applies from the next event, enable goes on from the
 * checkpoint. */
static void t_commands(void)
{
    factum_store *s = open_fresh("proj-commands");
    REQUIRE(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.start_system = 1;
    factum_projections *m = NULL;
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    CHECK_RC(append(s, "shopping-cart-1", "Added", NULL), 0);
    REQUIRE(wait_all(m, s));
    CHECK_STREAM(s, "$ce-shopping", "$>", "0@shopping-cart-1");
    CHECK_RC(factum_projection_disable(m, "$by_category", NULL, NULL), 0);
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.state == FACTUM_PROJECTION_STOPPED && !st.enabled);
    CHECK_RC(append(s, "shopping-cart-1", "Added", NULL), 0);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    CHECK_RC(factum_projection_wait(m, "$by_category", fs.last_position, 100), 0); /* stopped */
    CHECK_RC(factum_projection_set_query(m, "$by_category", "middle\n-", NULL, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_projection_set_query(m, "$by_category", "last\n-", NULL, NULL), 0);
    CHECK_RC(factum_projection_enable(m, "$by_category", NULL, NULL), 0);
    CHECK_RC(factum_projection_enable(m, "$by_category", NULL, NULL), 0); /* again: no-op */
    REQUIRE(wait_all(m, s));
    CHECK_STREAM(s, "$ce-shopping", "$>", "0@shopping-cart-1");
    CHECK_STREAM(s, "$ce-shopping-cart", "$>", "1@shopping-cart-1");
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.version == 4 && st.epoch == 0); /* enabled, disabled, query, enabled */
    factum_projections_close(m);
    /* A manager that does not start them finds them as they were stored. */
    po.start_system = 0;
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    char *q = NULL;
    CHECK_RC(factum_projection_get_query(m, "$by_category", &q), 0);
    CHECK(q && !strcmp(q, "last\n-"));
    free(q);
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.enabled && st.version == 4);
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

static int saw_rc = 99;
static void on_done(void *ctx, int rc)
{
    (void)ctx;
    __atomic_store_n(&saw_rc, rc, __ATOMIC_SEQ_CST);
}

/* Reset: a new epoch, the output streams truncated, everything projected
 * again from the start (PRJ-6); a command with a callback. */
static void t_reset(void)
{
    factum_store *s = open_fresh("proj-reset");
    REQUIRE(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.start_system = 1;
    factum_projections *m = NULL;
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_RC(append(s, "account-9", "Deposited", NULL), 0);
    REQUIRE(wait_all(m, s));
    CHECK_RC(factum_stream_metadata_parse("{}", 2, &(factum_stream_metadata){0}), 0);
    CHECK_RC(factum_set_stream_metadata(s, "$ce-account", FACTUM_ANY, "{\"custom\":true}", 15, NULL), 0);
    CHECK_RC(factum_projection_reset(m, "$by_category", on_done, NULL), 0);
    for (int i = 0; i < 2000 && __atomic_load_n(&saw_rc, __ATOMIC_SEQ_CST) == 99; i++)
        usleep(5000);
    CHECK_RC(saw_rc, 0);
    REQUIRE(wait_all(m, s));
    /* The old links are hidden, the new epoch's follow them; the stream's
     * other metadata is kept. */
    CHECK_STREAM(s, "$ce-account", "$>", "0@account-9|1@account-9|2@account-9");
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "$ce-account", &info), 0);
    CHECK(info.last_version == 5 && info.meta.truncate_before == 3);
    char *json = NULL;
    size_t len;
    int64_t mv;
    CHECK_RC(factum_get_stream_metadata(s, "$ce-account", &json, &len, &mv), 0);
    CHECK(json && strstr(json, "\"custom\":true"));
    free(json);
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.epoch == 2 && st.state == FACTUM_PROJECTION_RUNNING); /* version 1 (enabled) + 1 */
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* An output stream tombstoned by hand: the batch writing to it fails, the
 * projection faults with the reason; waiting for it says so. */
static void t_fault(void)
{
    factum_store *s = open_fresh("proj-fault");
    REQUIRE(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.start_system = 1;
    factum_projections *m = NULL;
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    CHECK_RC(factum_tombstone_stream(s, "$ce-account", FACTUM_ANY, NULL), 0);
    CHECK_RC(append(s, "account-1", "Deposited", NULL), 0);
    factum_stats fs;
    factum_store_get_stats(s, &fs);
    CHECK_RC(factum_projection_wait(m, "$by_category", fs.last_position, 10000), FACTUM_EFAULTED);
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.state == FACTUM_PROJECTION_FAULTED && strstr(st.reason, "$ce-account"));
    /* The others run on. */
    CHECK_RC(factum_projection_wait(m, "$by_event_type", fs.last_position, 10000), 1);
    /* Enabling it again starts it again, from its checkpoint: same fault. */
    CHECK_RC(factum_projection_enable(m, "$by_category", NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "$by_category", fs.last_position, 10000), FACTUM_EFAULTED);
    CHECK_RC(factum_projection_disable(m, "$by_category", NULL, NULL), 0);
    CHECK_RC(factum_projection_get_status(m, "$by_category", &st), 0);
    CHECK(st.state == FACTUM_PROJECTION_STOPPED && !st.reason[0]);
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

/* Small batches, several in flight, concurrent writers: every event once,
 * in order, in every output (PRJ-1, PRJ-2, PRJ-4). */
typedef struct writer_arg {
    factum_store *s;
    int id, n;
} writer_arg;

static void *writer(void *arg)
{
    writer_arg *w = arg;
    char stream[32], corr[64];
    for (int i = 0; i < w->n; i++) {
        snprintf(stream, sizeof stream, "c%d-%d", w->id, i % 7);
        snprintf(corr, sizeof corr, "{\"$correlationId\":\"w%d-%d\"}", w->id, i % 5);
        if (append(w->s, stream, i % 2 ? "Odd" : "Even", corr)) return (void *)1;
    }
    return NULL;
}

static void t_many_batches(void)
{
    factum_store *s = open_fresh("proj-many");
    REQUIRE(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    po.start_system = 1;
    po.batch_events = 7;
    po.batches_in_flight = 3;
    factum_projections *m = NULL;
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    enum { W = 4, N = 600 };
    pthread_t t[W];
    writer_arg a[W];
    for (int i = 0; i < W; i++) {
        a[i] = (writer_arg){s, i, N};
        pthread_create(&t[i], NULL, writer, &a[i]);
    }
    for (int i = 0; i < W; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    REQUIRE(wait_all(m, s));
    /* Every source event, in $all order, once in each of its outputs. */
    uint64_t from = 1;
    size_t seen = 0, at_ce[W] = {0}, at_et[2] = {0};
    while (from) {
        factum_event page[128];
        size_t n = 0;
        uint64_t next;
        REQUIRE(factum_read_all(s, from, FACTUM_FORWARD, NULL, 0, page, 128, &n, &next) == 0);
        for (size_t i = 0; i < n; i++) {
            const factum_event *e = &page[i];
            if (e->stream[0] != 'c') continue;
            int w = e->stream[1] - '0';
            char link[64], cat[16], et[16];
            snprintf(link, sizeof link, "%llu@%s", (unsigned long long)e->version, e->stream);
            snprintf(cat, sizeof cat, "$ce-c%d", w);
            snprintf(et, sizeof et, "$et-%s", e->type);
            factum_event l;
            size_t got = 0;
            int k = !strcmp(e->type, "Odd");
            CHECK_RC(factum_read_stream(s, cat, at_ce[w]++, FACTUM_FORWARD, &l, 1, &got, NULL), 0);
            CHECK(got == 1 && l.data_len == strlen(link) && !memcmp(l.data, link, l.data_len));
            CHECK_RC(factum_read_stream(s, et, at_et[k]++, FACTUM_FORWARD, &l, 1, &got, NULL), 0);
            CHECK(got == 1 && l.data_len == strlen(link) && !memcmp(l.data, link, l.data_len));
            seen++;
        }
        from = n ? next : 0;
        if (!n) break;
    }
    CHECK_EQ_U64(seen, W * N);
    for (int w = 0; w < W; w++) {
        char cat[16];
        snprintf(cat, sizeof cat, "$ce-c%d", w);
        factum_stream_info info;
        CHECK_RC(factum_stream_get_info(s, cat, &info), 0);
        CHECK_EQ_U64(info.last_version + 1, N); /* nothing doubled */
    }
    factum_projection_status st;
    CHECK_RC(factum_projection_get_status(m, "$by_correlation_id", &st), 0);
    CHECK_EQ_U64(st.events_emitted, W * N);
    CHECK(st.lag_events == 0 || st.position > 0);
    factum_projections_close(m);
    /* A store reopened: the same, nothing again. */
    factum_store_close(s);
    s = reopen();
    REQUIRE(s);
    REQUIRE(factum_projections_open(s, &po, &m) == 0);
    REQUIRE(wait_all(m, s));
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "$ce-c0", &info), 0);
    CHECK_EQ_U64(info.last_version + 1, N);
    factum_projections_close(m);
    factum_store_close(s);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_categories);
    RUN(t_source_rule);
    RUN(t_json_member);
    RUN(t_system_projections);
    RUN(t_commands);
    RUN(t_reset);
    RUN(t_fault);
    RUN(t_many_batches);
    return harness_done();
}
