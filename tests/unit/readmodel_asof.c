/* A read model's tables as of a position (factum_readmodel_query_asof,
 * src/rm/manager.c, rm_gen_build_upto in src/rm/apply.c): the answer is the
 * one the read model gave when it had applied exactly that position; the
 * scratch tables are deleted; the live read model is untouched; bad input
 * is refused. SQLite target. */
#include "harness.h"

#include <dirent.h>

#include "factum_readmodel.h"

static const char *DEF =
    "{\"name\":\"bank\",\"schema\":[\"CREATE TABLE acc(id TEXT PRIMARY KEY, balance INTEGER NOT NULL)\"],"
    "\"streams\":[\"account-\"],"
    "\"handlers\":{"
    "\"Opened\":\"INSERT INTO acc VALUES (:data.id, 0)\","
    "\"Deposited\":\"UPDATE acc SET balance = balance + :data.amount WHERE id = :data.id\","
    "\"Withdrawn\":\"UPDATE acc SET balance = balance - :data.amount WHERE id = :data.id\"}}";

static uint64_t put(factum_store *s, const char *stream, const char *type, const char *data)
{
    factum_event_data e = {.type = type, .flags = FACTUM_EVENT_JSON, .data = data, .data_len = strlen(data)};
    factum_append_result r;
    if (factum_append(s, stream, FACTUM_ANY, &e, 1, &r)) return 0;
    return r.last_position;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The balances as the query answers them: the "rows" part of the JSON. */
static int rows_of(const char *json, char *buf, size_t n)
{
    const char *r = strstr(json, "\"rows\":");
    const char *e = r ? strstr(r, ",\"truncated\"") : NULL;
    if (!e) return -1;
    snprintf(buf, n, "%.*s", (int)(e - r - 7), r + 7);
    return 0;
}

static void t_asof(void)
{
    char dir[512], rmdir_[600];
    harness_tmpdir(dir, sizeof dir, "rm-asof");
    factum_store *s;
    REQUIRE(!factum_store_open(dir, NULL, &s));
    factum_readmodels *m;
    REQUIRE(!factum_readmodels_open(s, NULL, &m));
    char err[512];
    CHECK_RC(factum_readmodel_create(m, DEF, strlen(DEF), err, sizeof err), 0);
    uint64_t p0 = put(s, "other", "Noise", "{}");
    uint64_t p1 = put(s, "account-1", "Opened", "{\"id\":\"a\"}");
    uint64_t p2 = put(s, "account-1", "Deposited", "{\"id\":\"a\",\"amount\":100}");
    uint64_t p3 = put(s, "account-2", "Opened", "{\"id\":\"b\"}");
    uint64_t p4 = put(s, "account-1", "Deposited", "{\"id\":\"a\",\"amount\":50}");
    uint64_t p5 = put(s, "account-1", "Withdrawn", "{\"id\":\"a\",\"amount\":30}");
    REQUIRE(p0 && p1 == p0 + 1 && p2 == p1 + 1 && p3 == p2 + 1 && p4 == p3 + 1 && p5 == p4 + 1);
    CHECK_RC(factum_readmodel_wait(m, "bank", p5, 10000), 0);
    factum_readmodel_status before, after;
    CHECK_RC(factum_readmodel_get_status(m, "bank", &before), 0);
    snprintf(rmdir_, sizeof rmdir_, "%s/readmodels", dir);
    int files = count_files(rmdir_);
    const struct {
        uint64_t pos;
        const char *rows;
    } cases[] = {
        {0, "[]"},
        {p0, "[]"},
        {p1, "[[\"a\",0]]"},
        {p2, "[[\"a\",100]]"},
        {p3, "[[\"a\",100],[\"b\",0]]"},
        {p4, "[[\"a\",150],[\"b\",0]]"},
        {p5, "[[\"a\",120],[\"b\",0]]"},
        {FACTUM_END, "[[\"a\",120],[\"b\",0]]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, rows[256];
        int rc =
            factum_readmodel_query_asof(m, "bank", cases[i].pos, "SELECT id, balance FROM acc ORDER BY id",
                                        NULL, NULL, &out, err, sizeof err);
        CHECK_RC(rc, 0);
        if (rc) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        CHECK(!rows_of(out, rows, sizeof rows));
        if (strcmp(rows, cases[i].rows))
            fprintf(stderr, "  as of %" PRIu64 ": %s, expected %s (%s)\n", cases[i].pos, rows, cases[i].rows,
                    out);
        CHECK(!strcmp(rows, cases[i].rows));
        free(out);
    }
    /* The live read model: as it was; the scratch tables: gone. */
    char *out = NULL, rows[256];
    CHECK_RC(factum_readmodel_query(m, "bank", "SELECT id, balance FROM acc ORDER BY id", NULL, NULL, &out,
                                    err, sizeof err),
             0);
    CHECK(out && !rows_of(out, rows, sizeof rows) && !strcmp(rows, "[[\"a\",120],[\"b\",0]]"));
    free(out);
    CHECK_RC(factum_readmodel_get_status(m, "bank", &after), 0);
    CHECK_EQ_U64(after.applied, before.applied);
    CHECK_EQ_U64(after.generation, before.generation);
    CHECK(after.state == FACTUM_READMODEL_RUNNING);
    CHECK(count_files(rmdir_) == files);
    /* Refused. */
    out = NULL;
    CHECK_RC(factum_readmodel_query_asof(m, "bank", 3, "DELETE FROM acc", NULL, NULL, &out, err, sizeof err),
             FACTUM_EINVAL);
    CHECK_RC(factum_readmodel_query_asof(m, "nope", 3, "SELECT 1", NULL, NULL, &out, err, sizeof err),
             FACTUM_ENOTFOUND);
    /* A statement the target refuses: as the live query says. */
    int want = factum_readmodel_query(m, "bank", "SELECT * FROM missing", NULL, NULL, &out, err, sizeof err);
    CHECK(want < 0);
    CHECK_RC(
        factum_readmodel_query_asof(m, "bank", 3, "SELECT * FROM missing", NULL, NULL, &out, err, sizeof err),
        want);
    CHECK_RC(factum_readmodel_query_asof(m, "bank", 3, "SELECT 1", "[1]", NULL, &out, err, sizeof err),
             FACTUM_EINVAL);
    CHECK(out == NULL);
    CHECK(count_files(rmdir_) == files);
    /* An event whose statement fails (policy stop): the state after it never
     * existed; before it, it did. */
    uint64_t pb = put(s, "account-1", "Deposited", "{\"id\":\"a\"}"); /* amount missing: NOT NULL fails */
    REQUIRE(pb);
    err[0] = 0;
    CHECK_RC(factum_readmodel_query_asof(m, "bank", pb, "SELECT 1", NULL, NULL, &out, err, sizeof err),
             FACTUM_EFAULTED);
    char where[64];
    snprintf(where, sizeof where, "position %" PRIu64, pb);
    CHECK(strstr(err, where) != NULL);
    CHECK_RC(factum_readmodel_query_asof(m, "bank", p5, "SELECT balance FROM acc WHERE id = 'a'", NULL, NULL,
                                         &out, err, sizeof err),
             0);
    CHECK(out && strstr(out, "[[120]]"));
    free(out);
    CHECK(count_files(rmdir_) == files);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_asof);
    return harness_done();
}
