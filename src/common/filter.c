/*
 * filter.c - filters of the global log ($all) on stream names or event
 * types: prefixes, or a regular expression.
 *
 * Regular expressions come from clients (read, subscription and consumer
 * group filters), so they run through PCRE2 with limits (docs/security.md):
 *
 *  FLT-1  A pattern is at most FACTUM_MAX_REGEX_LEN bytes and nests
 *         parentheses at most REGEX_NEST deep; PCRE2 itself refuses a
 *         compiled pattern over 64 KiB (the `((a{1,100}){1,100}){1,100}`
 *         kind), so compiling is bounded too. Refused patterns are
 *         FACTUM_EBADREGEX.
 *  FLT-2  Every match runs under a match limit, a depth limit and a heap
 *         limit (JIT when the CPU has it: the match limit applies there).
 *         A match that hits one returns FACTUM_EREGEXLIMIT: the read or
 *         subscription using the filter fails with that error; nothing else
 *         is affected and no work is unbounded.
 *
 * The syntax is Perl's (PCRE2), which is what the .NET expressions that
 * KurrentDB users write mostly are: `^account-\d+$`, `(?i)order`, classes,
 * alternations, lazy quantifiers. Matching searches anywhere in the name
 * unless anchored, as KurrentDB's Regex.IsMatch does. Subjects are UTF-8.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "factum.h"

#define REGEX_NEST 64
#define REGEX_MATCH_LIMIT 20000u
#define REGEX_DEPTH_LIMIT 2000u
#define REGEX_HEAP_LIMIT_KIB 512u

struct factum_filter {
    int on;
    char **prefixes;
    size_t *prefix_lens;
    size_t n_prefixes;
    pcre2_code *re;
    pcre2_match_context *mctx;
    int exclude_system;
};

/* Match data is per thread (a filter may be matched from many threads at
 * once); one ovector pair is all a yes/no match needs. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void md_init(void)
{
    pthread_key_create(&md_key, md_free);
}

static pcre2_match_data *thread_md(void)
{
    pthread_once(&md_once, md_init);
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (!md && (md = pcre2_match_data_create(1, NULL)) && pthread_setspecific(md_key, md)) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    return md;
}

void factum_filter_free(factum_filter *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_prefixes; i++)
        free(f->prefixes[i]);
    free(f->prefixes);
    free(f->prefix_lens);
    pcre2_code_free(f->re);
    pcre2_match_context_free(f->mctx);
    free(f);
}

/* Compile under FLT-1 and set up FLT-2. */
static int compile(factum_filter *f, const char *regex)
{
    size_t len = strnlen(regex, FACTUM_MAX_REGEX_LEN + 1);
    if (len > FACTUM_MAX_REGEX_LEN) return FACTUM_EBADREGEX;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) return -ENOMEM;
    pcre2_set_max_pattern_length(cc, FACTUM_MAX_REGEX_LEN);
    pcre2_set_parens_nest_limit(cc, REGEX_NEST);
    int err;
    PCRE2_SIZE erroff;
    f->re = pcre2_compile((PCRE2_SPTR)regex, len, PCRE2_UTF, &err, &erroff, cc);
    pcre2_compile_context_free(cc);
    if (!f->re) return err == PCRE2_ERROR_NOMEMORY ? -ENOMEM : FACTUM_EBADREGEX;
    (void)pcre2_jit_compile(f->re, PCRE2_JIT_COMPLETE); /* the interpreter serves where JIT is unavailable */
    if (!(f->mctx = pcre2_match_context_create(NULL))) return -ENOMEM;
    pcre2_set_match_limit(f->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(f->mctx, REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(f->mctx, REGEX_HEAP_LIMIT_KIB);
    return 0;
}

int factum_filter_new(int on, const char *const *prefixes, size_t n_prefixes, const char *regex,
                      int exclude_system, factum_filter **out)
{
    if (!out || (on != FACTUM_FILTER_STREAM && on != FACTUM_FILTER_EVENT_TYPE)) return FACTUM_EINVAL;
    if ((n_prefixes && regex) || (n_prefixes && !prefixes)) return FACTUM_EINVAL;
    factum_filter *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->on = on;
    f->exclude_system = exclude_system;
    int rc = 0;
    if (n_prefixes) {
        f->prefixes = calloc(n_prefixes, sizeof *f->prefixes);
        f->prefix_lens = calloc(n_prefixes, sizeof *f->prefix_lens);
        if (!f->prefixes || !f->prefix_lens) rc = -ENOMEM;
        for (size_t i = 0; i < n_prefixes && !rc; i++) {
            if (!prefixes[i]) rc = FACTUM_EINVAL;
            else if (!(f->prefixes[i] = strdup(prefixes[i]))) rc = -ENOMEM;
            else {
                f->prefix_lens[i] = strlen(prefixes[i]);
                f->n_prefixes++;
            }
        }
    }
    if (!rc && regex) rc = compile(f, regex);
    if (rc) {
        factum_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int factum_filter_match(const factum_filter *f, const factum_event *ev)
{
    if (!f) return 1;
    if (f->exclude_system && (ev->type[0] == '$' || ev->stream[0] == '$')) return 0;
    const char *subj = f->on == FACTUM_FILTER_STREAM ? ev->stream : ev->type;
    size_t slen = f->on == FACTUM_FILTER_STREAM ? ev->stream_len : ev->type_len;
    if (f->n_prefixes) {
        for (size_t i = 0; i < f->n_prefixes; i++)
            if (slen >= f->prefix_lens[i] && !memcmp(subj, f->prefixes[i], f->prefix_lens[i])) return 1;
        return 0;
    }
    if (!f->re) return 1;
    pcre2_match_data *md = thread_md();
    if (!md) return -ENOMEM;
    int rc = pcre2_match(f->re, (PCRE2_SPTR)subj, slen, 0, 0, md, f->mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc == PCRE2_ERROR_NOMEMORY) return -ENOMEM;
    /* Limits (FLT-2), and subjects that are not UTF-8 (names are checked
     * when written, so only a damaged store has them). */
    return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
                   rc == PCRE2_ERROR_JIT_STACKLIMIT
               ? FACTUM_EREGEXLIMIT
               : FACTUM_ECORRUPT;
}
