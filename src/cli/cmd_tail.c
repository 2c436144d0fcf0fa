/*
 * cmd_tail.c - `factum tail`: follow a stream or $all on a server through a
 * catch-up subscription of the C client (factum_client_subscribe), printing
 * events as they are committed, like `tail -f`. A data directory is locked
 * by the process that writes to it, so following needs a server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char tail_help[] =
    "usage: factum --server URL tail STREAM [--from start|end|N] [--count N] [--idle-exit MS] [--json]\n"
    "                                     [--markers] [--resolve-links]\n"
    "       factum --server URL tail '$all' [same options] [--stream-prefix P]... | [--type-prefix P]...\n"
    "                                     | [--stream-regex R] | [--type-regex R]\n"
    "\n"
    "Follow a stream or the global log: print the events after the starting point, then every event\n"
    "appended later, as it is committed, until interrupted (or --count / --idle-exit). Output as for\n"
    "`factum read` (one line per event, or NDJSON with --json).\n"
    "\n"
    "  --from start|end|N  where to begin: the first event, only new events (default), or after\n"
    "                      version N (a stream) / position N ($all), exclusive: pass the last one seen\n"
    "  --count N           exit after N events\n"
    "  --idle-exit MS      exit when nothing arrived for MS milliseconds\n"
    "  --markers           also print '# caught up', '# fell behind' and filter checkpoints\n"
    "                      (with --json: {\"marker\":...,\"position\":N} objects)\n"
    "  --resolve-links     print the targets of link events ($>) instead of the links\n"
    "  --raw               events as stored, not upcast (docs/upcasting.md)\n"
    "  --stream-prefix P, --type-prefix P, --stream-regex R, --type-regex R\n"
    "                      ($all) one server-side filter (prefixes may be repeated)\n";

static const cli_opt tail_opts[] = {
    {"from", CLI_ARG},          {"count", CLI_ARG},          {"idle-exit", CLI_ARG},
    {"json", 0},                {"markers", 0},              {"resolve-links", 0},
    {"raw", 0},
    {"stream-prefix", CLI_ARG | CLI_MULTI}, {"type-prefix", CLI_ARG | CLI_MULTI},
    {"stream-regex", CLI_ARG}, {"type-regex", CLI_ARG},
};

typedef struct tail_ctx {
    int json, markers, width;
    uint64_t count, printed;
    base_buf buf;
    int failed;
} tail_ctx;

static int on_item(void *arg, const factum_sub_item *it)
{
    tail_ctx *t = arg;
    if (it->kind == FACTUM_SUB_IDLE) return 1;
    if (it->kind != FACTUM_SUB_EVENT) {
        if (!t->markers) return 0;
        const char *what = it->kind == FACTUM_SUB_CAUGHT_UP     ? "caught up"
                           : it->kind == FACTUM_SUB_FELL_BEHIND ? "fell behind"
                                                                : "checkpoint";
        if (t->json)
            printf("{\"marker\":\"%s\",\"position\":%llu}\n", it->kind == FACTUM_SUB_CAUGHT_UP ? "caught_up"
                                                              : it->kind == FACTUM_SUB_FELL_BEHIND ? "fell_behind"
                                                                                                   : "checkpoint",
                   (unsigned long long)it->position);
        else if (it->position == FACTUM_END)
            printf("# %s\n", what);
        else
            printf("# %s at %llu\n", what, (unsigned long long)it->position);
        fflush(stdout);
        return 0;
    }
    if (t->json) {
        t->buf.len = 0;
        if (cli_event_json(&t->buf, &it->event)) {
            t->failed = 1;
            return 1;
        }
        fwrite(t->buf.data, 1, t->buf.len, stdout);
    } else {
        cli_event_line(&it->event, t->width);
    }
    fflush(stdout);
    if (ferror(stdout)) return -EIO; /* stop; reported below */
    return ++t->printed >= t->count;
}

int cli_cmd_tail(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, tail_opts, sizeof tail_opts / sizeof tail_opts[0], &a);
    if (code) return code;
    tail_ctx t = {cli_has(&a, "json"), cli_has(&a, "markers"), cli_output_width(), UINT64_MAX, 0, {0}, 0};
    c->raw = cli_has(&a, "raw"); /* the header factum-raw: 1 (cli_connect) */
    const char **sp = NULL, **tp = NULL;
    if (a.help) {
        code = cli_help(tail_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "STREAM (or '$all')"))) goto out;
    if (!c->server) {
        code = cli_usage(c, "tail follows a server: give --server URL (or FACTUM_SERVER); a data directory "
                            "is locked by the process that writes to it (use 'factum read' for it)");
        goto out;
    }
    const char *stream = a.pos[0];
    int all = !strcmp(stream, "$all");
    factum_client_sub_options o;
    factum_client_sub_options_init(&o);
    o.stream = stream;
    o.from = FACTUM_SUB_END;
    o.resolve_links = cli_has(&a, "resolve-links");
    const char *from = cli_get(&a, "from");
    if (from && !strcmp(from, "start")) {
        o.from = FACTUM_SUB_START;
    } else if (from && strcmp(from, "end")) {
        o.from = FACTUM_SUB_AFTER;
        if ((code = cli_parse_u64(c, "--from", from, &o.after))) goto out;
    }
    if (cli_get(&a, "count") && (code = cli_parse_u64(c, "--count", cli_get(&a, "count"), &t.count))) goto out;
    if (cli_get(&a, "idle-exit")) {
        uint64_t ms;
        if ((code = cli_parse_u64(c, "--idle-exit", cli_get(&a, "idle-exit"), &ms))) goto out;
        if (ms == 0 || ms > 86400000u) {
            code = cli_usage(c, "--idle-exit: between 1 and 86400000 milliseconds");
            goto out;
        }
        o.idle_ms = (int)ms;
    }
    size_t ns, nt;
    sp = cli_get_all(&a, "stream-prefix", &ns);
    tp = cli_get_all(&a, "type-prefix", &nt);
    const char *sr = cli_get(&a, "stream-regex"), *tr = cli_get(&a, "type-regex");
    int n_filters = (ns > 0) + (nt > 0) + (sr != NULL) + (tr != NULL);
    factum_client_filter f = {0, NULL, 0, NULL};
    if (n_filters && !all) {
        code = cli_usage(c, "filters apply to '$all' only");
        goto out;
    }
    if (n_filters > 1) {
        code = cli_usage(c, "one filter at a time (the server applies a single filter to a subscription)");
        goto out;
    }
    if (ns) f = (factum_client_filter){FACTUM_FILTER_STREAM, sp, ns, NULL};
    if (nt) f = (factum_client_filter){FACTUM_FILTER_EVENT_TYPE, tp, nt, NULL};
    if (sr) f = (factum_client_filter){FACTUM_FILTER_STREAM, NULL, 0, sr};
    if (tr) f = (factum_client_filter){FACTUM_FILTER_EVENT_TYPE, NULL, 0, tr};
    if (n_filters) o.filter = &f;
    if (!all && (code = cli_check_stream(c, stream))) goto out;
    if (t.count == 0) goto out;
    factum_client *cl;
    if ((code = cli_connect(c, &cl))) goto out;
    int rc = factum_client_subscribe(cl, &o, on_item, &t);
    if (rc == FACTUM_EBADREGEX)
        code = cli_usage(c, "'%s' is not a valid regular expression (PCRE2 syntax, at most %d bytes)", sr ? sr : tr,
                         FACTUM_MAX_REGEX_LEN);
    else if (rc == -EIO && ferror(stdout))
        code = CLI_FAIL;
    else if (rc)
        code = cli_remote_stream_error(c, cl, all ? "$all" : stream, FACTUM_ANY, rc, NULL);
    factum_client_close(cl);
    if (t.failed && !code) {
        cli_msg(c, "out of memory");
        code = CLI_FAIL;
    }
out:
    free(sp);
    free(tp);
    base_buf_free(&t.buf);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
