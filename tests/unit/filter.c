/* Unit tests of the $all filters' regular expressions (src/common/filter.c):
 * the syntax KurrentDB users write (.NET-like, through PCRE2), and the
 * limits that keep a client's pattern from costing more than a bounded
 * amount of work (FLT-1, FLT-2). */
#include <pthread.h>

#include "harness.h"

static int match(const factum_filter *f, const char *name)
{
    factum_event ev = {0};
    ev.stream = name;
    ev.stream_len = strlen(name);
    ev.type = name;
    ev.type_len = strlen(name);
    return factum_filter_match(f, &ev);
}

static int try(const char *re, const char *name)
{
    factum_filter *f;
    int rc = factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, re, 0, &f);
    if (rc) return rc;
    rc = match(f, name);
    factum_filter_free(f);
    return rc;
}

/* What KurrentDB matches, factum matches: its filters are .NET regular
 * expressions, searched anywhere in the name (Regex.IsMatch). */
static void t_dotnet_syntax(void)
{
    CHECK_RC(try("^account-\\d+$", "account-42"), 1);
    CHECK_RC(try("^account-\\d+$", "account-x"), 0);
    CHECK_RC(try("^account-\\d+$", "account-42-old"), 0);
    CHECK_RC(try("(?i)^ORDER-", "order-7"), 1);
    CHECK_RC(try("\\w+-\\d{2,}", "cart-123"), 1);
    CHECK_RC(try("\\w+-\\d{2,}", "cart-1"), 0);
    CHECK_RC(try("ord", "my-order-1"), 1); /* unanchored: anywhere */
    CHECK_RC(try("^(?:order|invoice)-[0-9a-f]{8}$", "invoice-deadbeef"), 1);
    CHECK_RC(try("a.*?b", "axxb"), 1);
    CHECK_RC(try("^konto-\\p{L}+$", "konto-\xc3\xa4pfel"), 1); /* "konto-äpfel": UTF-8, Unicode classes */
    CHECK_RC(try("^konto-.$", "konto-\xc3\xa4"), 1);           /* one character, two bytes */
    CHECK_RC(try("^\\$", "$stats"), 1);
    CHECK_RC(try("[[:digit:]]+", "x-9"), 1); /* POSIX classes still work */
}

/* FLT-1: what does not compile, is too long or nests too deep is refused
 * at once; a pattern whose compiled form explodes is refused by size. */
static void t_compile_limits(void)
{
    factum_filter *f;
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "([", 0, &f), FACTUM_EBADREGEX);
    char big[FACTUM_MAX_REGEX_LEN + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, big, 0, &f), FACTUM_EBADREGEX);
    big[FACTUM_MAX_REGEX_LEN] = 0; /* exactly the limit: fine */
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, big, 0, &f), 0);
    factum_filter_free(f);
    char deep[300];
    size_t n = 0;
    for (int i = 0; i < 100; i++) deep[n++] = '(';
    deep[n++] = 'a';
    for (int i = 0; i < 100; i++) deep[n++] = ')';
    deep[n] = 0;
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, deep, 0, &f), FACTUM_EBADREGEX);
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "((a{1,100}){1,100}){1,100}", 0, &f), FACTUM_EBADREGEX);
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "\xff", 0, &f), FACTUM_EBADREGEX); /* not UTF-8 */
}

/* FLT-2: catastrophic backtracking stops at the match limit with
 * FACTUM_EREGEXLIMIT instead of running for seconds; the same filter still
 * answers for names it can decide within the limits. */
static void t_match_limits(void)
{
    char subject[1001];
    memset(subject, 'a', 999);
    subject[999] = '!';
    subject[1000] = 0;
    const char *evil[] = {"^(a+)+$", "^(a|a)*$", "^(\\w+\\s?)*$", "(.*a){20}", "^(a|aa)+$"};
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        factum_filter *f;
        CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, evil[i], 0, &f), 0);
        if (!f) continue;
        CHECK_RC(match(f, subject), FACTUM_EREGEXLIMIT);
        CHECK_RC(match(f, "aaaa"), i == 3 ? 0 : 1);
        factum_filter_free(f);
    }
}

/* A read of $all with such a filter fails with the limit's error: the
 * caller learns why, and nothing else is affected. */
static void t_read_all_fails_clearly(void)
{
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "filter_read");
    factum_store *s;
    CHECK_RC(factum_store_open(dir, NULL, &s), 0);
    REQUIRE(s);
    char name[600];
    memset(name, 'a', 500);
    name[500] = '!';
    name[501] = 0;
    factum_event_data e = harness_event("E", "{}");
    CHECK_RC(factum_append(s, "short", FACTUM_ANY, &e, 1, NULL), 0);
    CHECK_RC(factum_append(s, name, FACTUM_ANY, &e, 1, NULL), 0);
    factum_filter *f;
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "^(a+)+$", 0, &f), 0);
    factum_event out[4];
    size_t n;
    uint64_t next;
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, f, 0, out, 4, &n, &next), FACTUM_EREGEXLIMIT);
    factum_filter_free(f);
    /* The store is untouched by it. */
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, NULL, 0, out, 4, &n, &next), 0);
    CHECK_EQ_U64(n, 2);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* Filters are thread-safe: many threads match one filter at once. */
static void *matcher(void *arg)
{
    const factum_filter *f = arg;
    long bad = 0;
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "account-%d", i);
        if (match(f, name) != 1 || match(f, "account-") != 0) bad++;
    }
    return (void *)bad;
}

static void t_threads(void)
{
    factum_filter *f;
    CHECK_RC(factum_filter_new(FACTUM_FILTER_STREAM, NULL, 0, "^account-\\d+$", 0, &f), 0);
    REQUIRE(f);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, matcher, f);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK(bad == NULL);
    }
    factum_filter_free(f);
}

int main(void)
{
    RUN(t_dotnet_syntax);
    RUN(t_compile_limits);
    RUN(t_match_limits);
    RUN(t_read_all_fails_clearly);
    RUN(t_threads);
    return harness_done();
}
