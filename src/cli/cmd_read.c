/*
 * cmd_read.c - `factum read` of one stream or of the global log '$all'
 * (with stream and type filters), paging through the library (or, with
 * --server, the client) in fixed-size batches so that any number of events
 * can be printed in bounded memory; and `factum streams`, the stream
 * catalog in creation order (local only: the protocol has no listing).
 */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

#define PAGE 512

static const char read_help[] =
    "usage: factum read STREAM [--from VERSION] [--backward] [--count N] [--json]\n"
    "                          [--as-of TIME | --as-of-position P] [--valid-at TIME]\n"
    "       factum read '$all' [--from POSITION] [--backward] [--count N] [--stream-prefix P]...\n"
    "                          [--type-prefix P]... [--stream-regex R] [--type-regex R] [--exclude-system]\n"
    "                          [--json] [--raw]\n"
    "\n"
    "Print the events of a stream (hidden ones, under $maxCount, $maxAge or $tb, are skipped) or of the\n"
    "global log. Human output: one line per event with position, stream@version, type, short id,\n"
    "timestamp (UTC) and data. --json prints NDJSON, one object per event.\n"
    "\n"
    "  --from N          first version (stream) or position ($all) to read, inclusive\n"
    "                    (default: the start, or the end with --backward)\n"
    "  --backward        read from the end towards the start\n"
    "  --count N         print at most N events (default: all)\n"
    "  --stream-prefix P ($all) only streams beginning with P; may be repeated (any matches)\n"
    "  --type-prefix P   ($all) only event types beginning with P; may be repeated\n"
    "  --stream-regex R  ($all) only streams matching the regular expression R (PCRE2)\n"
    "  --type-regex R    ($all) only event types matching R\n"
    "  --exclude-system  ($all) drop events whose stream or type begins with '$'\n"
    "  --as-of TIME      read as recorded at TIME (RFC 3339, e.g. 2026-03-15T00:00:00Z, or a date):\n"
    "                    only events committed by then, the stream's metadata as it was then\n"
    "  --as-of-position P  read as recorded up to global position P\n"
    "  --valid-at TIME   only events valid at TIME (their \"$validFrom\" metadata, else their commit\n"
    "                    time): with --as-of, \"as recorded at T1 about T2\" (docs/temporal.md)\n"
    "  --json            NDJSON output\n"
    "  --raw             events as stored: without upcasting (docs/upcasting.md); by default events\n"
    "                    are upcast by the registered upcasters, and one that fails stops the read\n";

static const cli_opt read_opts[] = {
    {"from", CLI_ARG},
    {"backward", 0},
    {"count", CLI_ARG},
    {"json", 0},
    {"stream-prefix", CLI_ARG | CLI_MULTI},
    {"type-prefix", CLI_ARG | CLI_MULTI},
    {"stream-regex", CLI_ARG},
    {"type-regex", CLI_ARG},
    {"exclude-system", 0},
    {"as-of", CLI_ARG},
    {"as-of-position", CLI_ARG},
    {"valid-at", CLI_ARG},
    {"raw", 0},
};

static const char *const all_only[] = {"stream-prefix", "type-prefix", "stream-regex", "type-regex",
                                       "exclude-system"};

/* How events are printed. */
typedef struct printer {
    int json;
    int width;
    base_buf buf;
    int failed;
    factum_store *s;       /* local reads: upcast with it (NULL: raw, or a server did) */
    factum_upcast_buf *ub;
    cli_ctx *c;
} printer;

/* Upcast (local reads) and print. CLI_OK, or CLI_FAIL after saying why. */
static int print_event(printer *p, const factum_event *in)
{
    factum_event up;
    const factum_event *ev = in;
    if (p->s) {
        factum_upcast_buf_reset(p->ub);
        int rc = factum_upcast(p->s, in, p->ub, &up);
        if (rc == FACTUM_EUPCAST) {
            cli_msg(p->c, "%s", factum_upcast_buf_error(p->ub));
            return CLI_FAIL;
        }
        if (rc < 0) return cli_fail(p->c, rc, "upcasting");
        ev = &up;
    }
    if (!p->json) {
        cli_event_line(ev, p->width);
        return CLI_OK;
    }
    p->buf.len = 0;
    if (cli_event_json(&p->buf, ev))
        p->failed = 1;
    else
        fwrite(p->buf.data, 1, p->buf.len, stdout);
    return CLI_OK;
}

/* A temporal read (--as-of, --as-of-position, --valid-at): asof is set. */
typedef struct temporal {
    int on;
    factum_asof asof;
    const char *time, *position, *valid; /* as given, for --server */
} temporal;

static int read_stream(cli_ctx *c, factum_store *s, const char *stream, uint64_t from, int back,
                       uint64_t count, printer *p, const temporal *t)
{
    factum_event *evs = malloc(PAGE * sizeof *evs);
    if (!evs) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    int code = CLI_OK;
    uint64_t printed = 0, next = from;
    while (printed < count) {
        size_t want = count - printed < PAGE ? (size_t)(count - printed) : PAGE, n;
        cli_page_reader();
        int rc = t->on
                     ? factum_read_stream_asof(s, stream, &t->asof, next,
                                               back ? FACTUM_BACKWARD : FACTUM_FORWARD, evs, want, &n, &next)
                     : factum_read_stream(s, stream, next, back ? FACTUM_BACKWARD : FACTUM_FORWARD, evs, want,
                                          &n, &next);
        if (rc) {
            code = cli_stream_error(c, s, stream, FACTUM_ANY, rc, NULL);
            break;
        }
        for (size_t i = 0; i < n && code == CLI_OK; i++)
            code = print_event(p, &evs[i]);
        if (code != CLI_OK) break;
        printed += n;
        if (next == FACTUM_END || (n == 0 && !t->on)) break; /* as of: a page may be thinned by valid time */
    }
    free(evs);
    return code;
}

/* The filters of a '$all' read. The first one is given to the library; an
 * event must pass every one (so that, say, a stream prefix and a type regex
 * can be combined). */
typedef struct filters {
    factum_filter *f[5];
    size_t n;
} filters;

static void filters_free(filters *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        factum_filter_free(fs->f[i]);
}

static int add_filter(cli_ctx *c, filters *fs, int on, const char *const *prefixes, size_t n,
                      const char *regex, int exclude_system, const char *opt)
{
    int rc = factum_filter_new(on, prefixes, n, regex, exclude_system, &fs->f[fs->n]);
    if (rc == FACTUM_EBADREGEX)
        return cli_usage(c, "%s: '%s' is not a valid regular expression (PCRE2 syntax, at most %d bytes)",
                         opt, regex ? regex : "", FACTUM_MAX_REGEX_LEN);
    if (rc) return cli_fail(c, rc, "%s", opt);
    fs->n++;
    return CLI_OK;
}

static int build_filters(cli_ctx *c, const cli_args *a, filters *fs)
{
    size_t ns, nt;
    const char **sp = cli_get_all(a, "stream-prefix", &ns), **tp = cli_get_all(a, "type-prefix", &nt);
    const char *sr = cli_get(a, "stream-regex"), *tr = cli_get(a, "type-regex");
    int code = CLI_OK;
    if (ns && (code = add_filter(c, fs, FACTUM_FILTER_STREAM, sp, ns, NULL, 0, "--stream-prefix"))) goto out;
    if (sr && (code = add_filter(c, fs, FACTUM_FILTER_STREAM, NULL, 0, sr, 0, "--stream-regex"))) goto out;
    if (nt && (code = add_filter(c, fs, FACTUM_FILTER_EVENT_TYPE, tp, nt, NULL, 0, "--type-prefix")))
        goto out;
    if (tr && (code = add_filter(c, fs, FACTUM_FILTER_EVENT_TYPE, NULL, 0, tr, 0, "--type-regex"))) goto out;
    if (cli_has(a, "exclude-system"))
        code = add_filter(c, fs, FACTUM_FILTER_STREAM, NULL, 0, NULL, 1, "--exclude-system");
out:
    free(sp);
    free(tp);
    return code;
}

static int read_all(cli_ctx *c, factum_store *s, uint64_t from, int back, uint64_t count, const filters *fs,
                    printer *p, const temporal *t)
{
    factum_event *evs = malloc(PAGE * sizeof *evs);
    if (!evs) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    int code = CLI_OK;
    uint64_t printed = 0, pos = from;
    while (printed < count) {
        size_t n;
        uint64_t next;
        cli_page_reader();
        int rc = t->on ? factum_read_all_asof(s, &t->asof, pos, back ? FACTUM_BACKWARD : FACTUM_FORWARD,
                                              fs->n ? fs->f[0] : NULL, 0, evs, PAGE, &n, &next)
                       : factum_read_all(s, pos, back ? FACTUM_BACKWARD : FACTUM_FORWARD,
                                         fs->n ? fs->f[0] : NULL, 0, evs, PAGE, &n, &next);
        if (rc) {
            code = cli_fail(c, rc, "reading $all");
            break;
        }
        for (size_t i = 0; i < n && printed < count; i++) {
            int pass = 1;
            for (size_t k = 1; k < fs->n && pass > 0; k++)
                pass = factum_filter_match(fs->f[k], &evs[i]);
            if (pass < 0) {
                code = cli_fail(c, pass, "filtering $all");
                break;
            }
            if (!pass) continue;
            if ((code = print_event(p, &evs[i]))) break;
            printed++;
        }
        if (code != CLI_OK) break;
        /* A read returns fewer than PAGE events only at the end (no scan limit). */
        if (n < PAGE || (back && next == 0) || (!back && t->on && next > t->asof.position)) break;
        pos = next;
    }
    free(evs);
    return code;
}

/* ---- reads through the client (--server) ------------------------------- */

#define REMOTE_PAGE 1000

static int remote_read_stream(cli_ctx *c, factum_client *cl, const char *stream, uint64_t from, int back,
                              uint64_t count, printer *p)
{
    uint64_t printed = 0, next = from;
    while (printed < count) {
        uint64_t want = count - printed < REMOTE_PAGE ? count - printed : REMOTE_PAGE;
        factum_client_batch *b;
        int rc =
            factum_client_read_stream(cl, stream, next, back ? FACTUM_BACKWARD : FACTUM_FORWARD, want, &b);
        if (rc) return cli_remote_stream_error(c, cl, stream, FACTUM_ANY, rc, NULL);
        size_t n = factum_client_batch_count(b);
        for (size_t i = 0; i < n; i++)
            print_event(p, factum_client_batch_event(b, i));
        printed += n;
        uint64_t last = n ? factum_client_batch_event(b, n - 1)->version : 0;
        factum_client_batch_free(b);
        if (n < want || (back && last == 0)) break;
        next = back ? last - 1 : last + 1;
    }
    return CLI_OK;
}

/* The server filters on the first of the filter options (in the order
 * build_filters makes them); the others, and --exclude-system, are
 * applied here to what it sends. */
static int remote_read_all(cli_ctx *c, factum_client *cl, const cli_args *a, uint64_t from, int back,
                           uint64_t count, const filters *fs, printer *p)
{
    size_t ns, nt;
    const char **sp = cli_get_all(a, "stream-prefix", &ns), **tp = cli_get_all(a, "type-prefix", &nt);
    const char *sr = cli_get(a, "stream-regex"), *tr = cli_get(a, "type-regex");
    factum_client_filter sf = {FACTUM_FILTER_STREAM, NULL, 0, NULL};
    if (ns) {
        sf.prefixes = sp;
        sf.n_prefixes = ns;
    } else if (sr) {
        sf.regex = sr;
    } else if (nt) {
        sf.on = FACTUM_FILTER_EVENT_TYPE;
        sf.prefixes = tp;
        sf.n_prefixes = nt;
    } else if (tr) {
        sf.on = FACTUM_FILTER_EVENT_TYPE;
        sf.regex = tr;
    }
    int server_side = sf.n_prefixes || sf.regex;
    size_t first_local = server_side ? 1 : 0;
    int code = CLI_OK;
    uint64_t printed = 0, pos = from;
    /* --from is inclusive both ways; the protocol's backward reads start
     * before their position. */
    if (back && pos != FACTUM_END) pos++;
    while (printed < count) {
        uint64_t want = first_local < fs->n || count - printed > REMOTE_PAGE ? REMOTE_PAGE : count - printed;
        factum_client_batch *b;
        int rc = factum_client_read_all(cl, pos, back ? FACTUM_BACKWARD : FACTUM_FORWARD,
                                        server_side ? &sf : NULL, want, &b);
        if (rc) {
            code = cli_remote_fail(c, cl, rc, "reading $all");
            break;
        }
        size_t n = factum_client_batch_count(b);
        for (size_t i = 0; i < n && printed < count; i++) {
            const factum_event *ev = factum_client_batch_event(b, i);
            int pass = 1;
            for (size_t k = first_local; k < fs->n && pass > 0; k++)
                pass = factum_filter_match(fs->f[k], ev);
            if (pass < 0) {
                code = cli_fail(c, pass, "filtering $all");
                break;
            }
            if (!pass) continue;
            print_event(p, ev); /* the server upcast it (or not: --raw) */
            printed++;
        }
        if (code != CLI_OK) {
            factum_client_batch_free(b);
            break;
        }
        uint64_t last = n ? factum_client_batch_event(b, n - 1)->position : 0;
        factum_client_batch_free(b);
        if (n < want || (back && last <= 1)) break;
        pos = back ? last : last + 1;
    }
    free(sp);
    free(tp);
    return code;
}

/* The name of the virtual stream that reads `stream` as of t on a server. */
static char *asof_name(const char *stream, const temporal *t)
{
    base_buf b = {0};
    int rc = base_buf_printf(&b, "$asof/%s?", stream);
    if (!rc && t->time) rc = base_buf_printf(&b, "time=%s", t->time);
    if (!rc && t->position) rc = base_buf_printf(&b, "position=%s", t->position);
    if (!rc && !t->time && !t->position) rc = base_buf_printf(&b, "position=18446744073709551615");
    if (!rc && t->valid) rc = base_buf_printf(&b, "&valid=%s", t->valid);
    if (!rc) rc = base_buf_append(&b, "", 1);
    if (rc) {
        base_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* `$asof/$all?...` over the protocol: a stream read whose revisions are positions. */
static int remote_read_vall(cli_ctx *c, factum_client *cl, const char *name, uint64_t from, int back,
                            uint64_t count, const filters *fs, printer *p)
{
    uint64_t printed = 0, next = from;
    while (printed < count) {
        factum_client_batch *b;
        int rc = factum_client_read_stream(cl, name, next, back ? FACTUM_BACKWARD : FACTUM_FORWARD,
                                           REMOTE_PAGE, &b);
        if (rc) return cli_remote_fail(c, cl, rc, "reading $all");
        size_t n = factum_client_batch_count(b);
        for (size_t i = 0; i < n && printed < count; i++) {
            const factum_event *ev = factum_client_batch_event(b, i);
            int pass = 1;
            for (size_t k = 0; k < fs->n && pass > 0; k++)
                pass = factum_filter_match(fs->f[k], ev);
            if (pass < 0) {
                factum_client_batch_free(b);
                return cli_fail(c, pass, "filtering $all");
            }
            if (!pass) continue;
            print_event(p, ev);
            printed++;
        }
        uint64_t last = n ? factum_client_batch_event(b, n - 1)->position : 0;
        factum_client_batch_free(b);
        if (n < REMOTE_PAGE || (back && last <= 1)) break;
        next = back ? last - 1 : last + 1;
    }
    return CLI_OK;
}

int cli_cmd_read(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, read_opts, sizeof read_opts / sizeof read_opts[0], &a);
    if (code) return code;
    filters fs = {{0}, 0};
    printer p = {cli_has(&a, "json"), cli_output_width(), {0}, 0, NULL, NULL, c};
    c->raw = cli_has(&a, "raw");
    if (a.help) {
        code = cli_help(read_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "STREAM (or '$all')"))) goto out;
    const char *stream = a.pos[0];
    int all = !strcmp(stream, "$all"), back = cli_has(&a, "backward");
    uint64_t from = back ? FACTUM_END : 0, count = UINT64_MAX;
    if (cli_get(&a, "from") && (code = cli_parse_u64(c, "--from", cli_get(&a, "from"), &from))) goto out;
    if (cli_get(&a, "count") && (code = cli_parse_u64(c, "--count", cli_get(&a, "count"), &count))) goto out;
    if (!all) {
        for (size_t i = 0; i < sizeof all_only / sizeof all_only[0]; i++) {
            if (cli_has(&a, all_only[i])) {
                code = cli_usage(c, "--%s applies to reads of '$all' only", all_only[i]);
                goto out;
            }
        }
        if ((code = cli_check_stream(c, stream))) goto out;
    } else if ((code = build_filters(c, &a, &fs))) {
        goto out;
    }
    temporal t = {0};
    t.time = cli_get(&a, "as-of");
    t.position = cli_get(&a, "as-of-position");
    t.valid = cli_get(&a, "valid-at");
    t.on = t.time || t.position || t.valid;
    t.asof.position = FACTUM_END;
    t.asof.valid_until_ns = FACTUM_VALID_ANY;
    int64_t at_ns = 0;
    if (t.time && t.position) {
        code = cli_usage(c, "give --as-of or --as-of-position, not both");
        goto out;
    }
    if (t.time && factum_time_parse(t.time, strlen(t.time), &at_ns)) {
        code = cli_usage(
            c, "--as-of: '%s' is not an RFC 3339 time (2026-03-15T10:00:00Z) or a date (2026-03-15)", t.time);
        goto out;
    }
    if (t.position && (code = cli_parse_u64(c, "--as-of-position", t.position, &t.asof.position))) goto out;
    if (t.valid && factum_time_parse(t.valid, strlen(t.valid), &t.asof.valid_until_ns)) {
        code = cli_usage(
            c, "--valid-at: '%s' is not an RFC 3339 time (2026-03-15T10:00:00Z) or a date (2026-03-15)",
            t.valid);
        goto out;
    }
    if (c->server && t.on) {
        char *name = asof_name(stream, &t);
        factum_client *cl;
        if (!name) {
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
            goto out;
        }
        if (!(code = cli_connect(c, &cl))) {
            code = all ? remote_read_vall(c, cl, name, from, back, count, &fs, &p)
                       : remote_read_stream(c, cl, name, from, back, count, &p);
            factum_client_close(cl);
        }
        free(name);
        goto out;
    }
    if (c->server) {
        factum_client *cl;
        if ((code = cli_connect(c, &cl))) goto out;
        if (all)
            code = remote_read_all(c, cl, &a, from, back, count, &fs, &p);
        else
            code = remote_read_stream(c, cl, stream, from, back, count, &p);
        factum_client_close(cl);
        if (p.failed && !code) {
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
        }
        goto out;
    }
    factum_store *s;
    if ((code = cli_open_read(c, &s))) goto out;
    if (!c->raw) {
        if (factum_upcast_buf_new(&p.ub)) {
            factum_store_close(s);
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
            goto out;
        }
        p.s = s;
    }
    int rc = t.time ? factum_asof_at_time(s, at_ns, t.asof.valid_until_ns, &t.asof) : 0;
    if (rc)
        code = cli_fail(c, rc, "finding the position at %s", t.time);
    else if (all)
        code = read_all(c, s, from, back, count, &fs, &p, &t);
    else
        code = read_stream(c, s, stream, from, back, count, &p, &t);
    if (p.failed && !code) {
        cli_msg(c, "out of memory");
        code = CLI_FAIL;
    }
    code = cli_finish_output(c, code);
    code = cli_close(c, s, code);
out:
    factum_upcast_buf_free(p.ub);
    base_buf_free(&p.buf);
    filters_free(&fs);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

/* ---- streams -------------------------------------------------------- */

static const char streams_help[] =
    "usage: factum streams [--all] [--count] [--json]\n"
    "\n"
    "List the streams in the order they were created (deleted ones included). Without --all only user\n"
    "streams are listed; --all adds the system streams ('$'-streams such as '$$<stream>' metadata).\n"
    "\n"
    "  --all     include system streams\n"
    "  --count   print only the number of streams that would be listed\n"
    "  --json    NDJSON, one {\"stream\":..., \"createdPosition\":...} per stream; with --count "
    "{\"count\":N}\n";

static const cli_opt streams_opts[] = {{"all", 0}, {"count", 0}, {"json", 0}};

typedef struct list_ctx {
    int all, count_only, json;
    uint64_t n;
    base_buf buf;
} list_ctx;

static int list_cb(void *ctx, const char *name, size_t len, uint64_t created)
{
    list_ctx *l = ctx;
    if (!l->all && len && name[0] == '$') return 0;
    l->n++;
    if (l->count_only) return 0;
    if (!l->json) {
        fwrite(name, 1, len, stdout);
        fputc('\n', stdout);
        return 0;
    }
    l->buf.len = 0;
    int rc = base_buf_append(&l->buf, "{\"stream\":", 10);
    if (!rc) rc = json_write_string(&l->buf, name, len);
    if (!rc) rc = base_buf_printf(&l->buf, ",\"createdPosition\":%llu}\n", (unsigned long long)created);
    if (rc) return rc;
    fwrite(l->buf.data, 1, l->buf.len, stdout);
    return 0;
}

int cli_cmd_streams(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, streams_opts, sizeof streams_opts / sizeof streams_opts[0], &a);
    if (code) return code;
    list_ctx l = {cli_has(&a, "all"), cli_has(&a, "count"), cli_has(&a, "json"), 0, {0}};
    if (a.help) {
        code = cli_help(streams_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, "")) ||
        (code = cli_local_only(c, "the protocol has no stream listing (read '$all' instead)")))
        goto out;
    factum_store *s;
    if ((code = cli_open_read(c, &s))) goto out;
    int rc;
    if (l.all && l.count_only)
        rc = factum_stream_count(s, &l.n); /* no scan needed */
    else
        rc = factum_list_streams(s, 0, list_cb, &l);
    if (rc)
        code = cli_fail(c, rc, "listing streams");
    else if (l.count_only && l.json)
        printf("{\"count\":%llu}\n", (unsigned long long)l.n);
    else if (l.count_only)
        printf("%llu\n", (unsigned long long)l.n);
    code = cli_finish_output(c, code);
    code = cli_close(c, s, code);
out:
    base_buf_free(&l.buf);
    cli_args_free(&a);
    return code;
}
