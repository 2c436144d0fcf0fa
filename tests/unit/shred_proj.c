/* Crypto-shredding and the derived views (ADR 0027): a JavaScript
 * projection and the system projection $by_category read a data subject's
 * sealed events opened (the projection's state holds what they said); after
 * the subject is shredded, a reset projection recomputes its state from the
 * same events, which now come with no data: what it derived from them does
 * not come back. The events themselves stay (types, streams, positions), so
 * the projection still counts them. Also: a reader's limit ends a read
 * early, after at least one event. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[512], data[600], keyfile[600];

static void write_key(const char *path)
{
    uint8_t k[32];
    for (unsigned i = 0; i < 32; i++)
        k[i] = (uint8_t)(7 + i * 29);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, k, sizeof k) == (ssize_t)sizeof k);
    close(fd);
}

static factum_store *open_store(void)
{
    factum_options o;
    harness_small_opts(&o);
    o.master_key_file = keyfile;
    o.shred_categories = "user";
    factum_store *s = NULL;
    int rc = factum_store_open(data, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static uint64_t append_ev(factum_store *s, const char *stream, const char *json)
{
    factum_event_data ev = {
        .type = "Registered", .flags = FACTUM_EVENT_JSON, .data = json, .data_len = strlen(json)};
    factum_uuid_v4(ev.id);
    factum_append_result res;
    CHECK_RC(factum_append(s, stream, FACTUM_ANY, &ev, 1, &res), 0);
    return res.last_position;
}

static char *state_of(factum_projections *m, const char *name)
{
    char *json = NULL;
    size_t len = 0;
    if (factum_projection_get_state(m, name, NULL, &json, &len)) return NULL;
    return json;
}

static const char NAMES[] = "fromAll().when({ $init: function () { return { n: 0, names: [] }; },\n"
                            "  Registered: function (s, e) { s.n++; if (e.data && e.data.name) "
                            "s.names.push(e.data.name); return s; }\n"
                            "});";

static void t_projection_after_shred(void)
{
    factum_store *s = open_store();
    REQUIRE(s);
    factum_projections_options po;
    factum_projections_options_init(&po);
    factum_projections *m = NULL;
    CHECK_RC(factum_projections_open(s, &po, &m), 0);
    REQUIRE(m);
    append_ev(s, "user-1", "{\"name\":\"Ann Secret\"}");
    append_ev(s, "user-2", "{\"name\":\"Bob Secret\"}");
    uint64_t last = append_ev(s, "user-1", "{\"name\":\"Ann Again\"}");
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = "names";
    d.query = NAMES;
    CHECK_RC(factum_projection_create(m, &d, NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "names", last, 20000), 1);
    char *st = state_of(m, "names");
    CHECK(st && !strcmp(st, "{\"n\":3,\"names\":[\"Ann Secret\",\"Bob Secret\",\"Ann Again\"]}"));
    if (st) fprintf(stderr, "  before: %s\n", st);
    free(st);
    CHECK_RC(factum_projection_enable(m, "$by_category", NULL, NULL), 0);
    CHECK_RC(factum_projection_wait(m, "$by_category", last, 20000), 1);

    CHECK_RC(factum_shred(s, "1", NULL), 0);
    CHECK_RC(factum_projection_reset(m, "names", NULL, NULL), 0);
    factum_stats fs;
    CHECK_RC(factum_store_get_stats(s, &fs), 0);
    CHECK_RC(factum_projection_wait(m, "names", fs.last_position, 20000), 1);
    st = state_of(m, "names");
    /* Shredded events have no JSON body: the projection's handlers pass
     * them by, as they do every non-JSON event. */
    CHECK(st && !strcmp(st, "{\"n\":1,\"names\":[\"Bob Secret\"]}"));
    if (st) fprintf(stderr, "  after the shred and a reset: %s\n", st);
    free(st);

    /* $ce-user links all three; resolved through a reader: two shredded. */
    factum_reader *r = factum_reader_new();
    factum_reader_use(r);
    factum_event links[8], target;
    size_t n = 0;
    CHECK_RC(factum_read_stream(s, "$ce-user", 0, FACTUM_FORWARD, links, 8, &n, NULL), 0);
    CHECK_EQ_U64(n, 3);
    int shredded = 0, open = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(factum_resolve_link(s, &links[i], &target), 0);
        if (target.flags & FACTUM_EVENT_SHREDDED) shredded++;
        if (target.data_len && memmem(target.data, target.data_len, "Bob Secret", 10)) open++;
    }
    CHECK(shredded == 2 && open == 1);
    factum_reader_use(NULL);
    factum_reader_free(r);
    factum_projections_close(m);
    CHECK_RC(factum_store_close(s), 0);
}

/* factum_reader_set_limit: a read through the reader ends after the event
 * that took it over its limit; the next read goes on from there. */
static void t_reader_limit(void)
{
    factum_store *s = open_store();
    REQUIRE(s);
    char body[1100];
    memset(body, 'x', sizeof body);
    memcpy(body, "{\"p\":\"", 6);
    memcpy(body + sizeof body - 3, "\"}", 3);
    uint64_t first = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t p = append_ev(s, "user-5", body);
        if (!first) first = p;
    }
    factum_reader *r = factum_reader_new();
    factum_reader_set_limit(r, 2500);
    factum_reader_use(r);
    factum_event ev[10];
    size_t n = 0, total = 0;
    uint64_t next = 0;
    int reads = 0;
    do {
        factum_reader_reset(r);
        CHECK_RC(factum_read_stream(s, "user-5", next, FACTUM_FORWARD, ev, 10, &n, &next), 0);
        CHECK(n == 3 || (n == 1 && total == 9)); /* > 2500 bytes after the third */
        for (size_t i = 0; i < n; i++)
            CHECK(ev[i].version == total + i && ev[i].data_len == sizeof body - 1);
        total += n;
        reads++;
    } while (next != FACTUM_END && reads < 20);
    CHECK_EQ_U64(total, 10);
    /* $all too. */
    factum_reader_reset(r);
    CHECK_RC(factum_read_all(s, first, FACTUM_FORWARD, NULL, 0, ev, 10, &n, &next), 0);
    CHECK(n == 3 && next == first + 3 && factum_reader_bytes(r) > 2500);
    factum_reader_set_limit(r, 0);
    factum_reader_reset(r);
    CHECK_RC(factum_read_stream(s, "user-5", 0, FACTUM_FORWARD, ev, 10, &n, &next), 0);
    CHECK_EQ_U64(n, 10);
    factum_reader_use(NULL);
    factum_reader_free(r);
    CHECK_RC(factum_store_close(s), 0);
}

static void t_setup(void)
{
    harness_tmpdir(dir, sizeof dir, "shred_proj");
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(keyfile, sizeof keyfile, "%s/master.key", dir);
    write_key(keyfile);
}

int main(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "FACTUM_JS_WORKER is not set: the JavaScript worker was not built (skipped)\n");
        return 77;
    }
    RUN(t_setup);
    RUN(t_projection_after_shred);
    RUN(t_reader_limit);
    return harness_done();
}
