/*
 * cmd_readmodel.c - `factum readmodel` (create, list, status, pause, resume,
 * drop, rebuild, wait, parked) and `factum query` (a read-only SQL
 * statement on a read model, printed as a table or as JSON), on a server
 * (--server: factumd's ReadModels service through the C client) or on a
 * local data directory (include/factum_readmodel.h, opened on the store for
 * the one command: the read models run in this process meanwhile, and go
 * on from their checkpoints at the next open).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "cli/cli.h"
#include "factum_readmodel.h"

static const char readmodel_help[] =
    "usage: factum readmodel create FILE|-\n"
    "       factum readmodel list [--json]\n"
    "       factum readmodel status NAME [--json] [--definition]\n"
    "       factum readmodel pause|resume|drop NAME\n"
    "       factum readmodel rebuild NAME [FILE|-]\n"
    "       factum readmodel wait NAME POSITION [--timeout MS]\n"
    "       factum readmodel parked NAME [--limit N] [--json]\n"
    "\n"
    "Read models: SQL tables that factum keeps up to date from the events of the log\n"
    "(docs/readmodels.md), on a server (--server) or in a data directory (--data; opening it runs the\n"
    "read models in this process until the command ends). Query them with `factum query`.\n"
    "\n"
    "  create    a read model from its JSON definition (a file, or - for stdin); it starts at once\n"
    "  list      every read model: state, lifecycle, target, position, lag, events applied\n"
    "  status    one read model in full (--definition: print its definition instead)\n"
    "  pause     stop applying events (queries are still served); resume goes on (also after a fault)\n"
    "  drop      stop it, forget its definition and delete its tables\n"
    "  rebuild   build it again from the start of the log, with its definition or a new one; the\n"
    "            current tables serve queries until the new ones have caught up\n"
    "  wait      until it has applied every event up to POSITION (what an append printed); exit 1\n"
    "            after --timeout MS (default 5000)\n"
    "  parked    the events parked by an onError \"park\" policy (--limit, default 100)\n"
    "\n"
    "Exit codes: 2 for a bad definition (the message says what is wrong; nothing was changed),\n"
    "4 when there is no read model of that name, 1 for other failures (a wait that timed out).\n";

static const char query_help[] =
    "usage: factum query NAME SQL [--param KEY=VALUE]... [--params JSON] [--min-position P]\n"
    "                    [--wait-ms MS] [--row-limit N] [--time-limit MS] [--json]\n"
    "                    [--as-of TIME | --as-of-position P]\n"
    "\n"
    "Run one read-only SQL statement on read model NAME and print the rows as a table (as psql\n"
    "does) or, with --json, the answer as JSON: {\"columns\", \"rows\", \"truncated\", \"position\",\n"
    "\"lag_events\", \"lag_ms\"}. Statements that could write are refused.\n"
    "\n"
    "  --param KEY=VALUE  bind :KEY; a VALUE that is a JSON number, true, false, null or a\n"
    "                     \"quoted string\" is that value, anything else is text\n"
    "  --params JSON      every parameter at once, as a JSON object\n"
    "  --min-position P   first wait until the read model has applied position P (--wait-ms, 5000)\n"
    "  --row-limit N      rows at most (default 1000); --time-limit MS: the statement's time (5000)\n"
    "  --as-of TIME       the tables as they were at TIME (RFC 3339 or a date), built afresh from\n"
    "                     the log up to then (a replay: slow on a long log; the read model is not\n"
    "                     touched); --as-of-position P: as they were at global position P\n"
    "\n"
    "Exit codes: 2 for a statement or parameter refused (not read-only, unknown parameter, bad\n"
    "SQL), 4 when there is no read model of that name, 1 for other failures (timeouts).\n";

static const cli_opt rm_opts[] = {
    {"json", 0}, {"definition", 0}, {"timeout", CLI_ARG}, {"limit", CLI_ARG},
};

static const cli_opt query_opts[] = {
    {"param", CLI_ARG | CLI_MULTI}, {"params", CLI_ARG},     {"min-position", CLI_ARG}, {"wait-ms", CLI_ARG},
    {"row-limit", CLI_ARG},         {"time-limit", CLI_ARG}, {"json", 0},
    {"as-of", CLI_ARG},             {"as-of-position", CLI_ARG},
};

/* Where the command works: a server, or a store with its read models. */
typedef struct target {
    cli_ctx *c;
    factum_client *cl;
    factum_store *s;
    factum_readmodels *m;
} target;

static void rm_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level <= 1) fprintf(stderr, "factum: read models: %s\n", msg);
}

static int any_starting(void *ctx, const factum_readmodel_status *st)
{
    (void)ctx;
    return st->state == FACTUM_READMODEL_STARTING;
}

static int target_open(cli_ctx *c, target *t)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    if (c->server) return cli_connect(c, &t->cl);
    int code = cli_need_dir(c);
    if (code) return code;
    if ((code = cli_open_write(c, 0, &t->s))) return code;
    factum_readmodels_options o;
    factum_readmodels_options_init(&o);
    o.log_fn = rm_log;
    int rc = factum_readmodels_open(t->s, &o, &t->m);
    if (rc) {
        code = cli_fail(c, rc, "opening the read models of '%s'", c->data_dir);
        return cli_close(c, t->s, code);
    }
    /* Let each read model's thread read its checkpoint (STARTING ends), so
     * that statuses and answers say where its tables stand; 5 s at most
     * (a PostgreSQL target that does not answer stays STARTING). */
    for (int i = 0; i < 500 && factum_readmodels_each(t->m, any_starting, NULL); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    return CLI_OK;
}

static int target_close(target *t, int code)
{
    if (t->cl) factum_client_close(t->cl);
    if (t->m) factum_readmodels_close(t->m);
    if (t->s) code = cli_close(t->c, t->s, code);
    return code;
}

/* Report rc of `what` on read model `name` (err: the library's reason). */
static int target_fail(target *t, int rc, const char *what, const char *name, const char *err)
{
    if (rc == FACTUM_ENOTFOUND) {
        cli_msg(t->c, "no read model '%s'", name);
        return CLI_NOT_FOUND;
    }
    const char *why = t->cl ? factum_client_last_error(t->cl) : err ? err : "";
    if (why[0] && strcmp(why, factum_strerror(rc)))
        cli_msg(t->c, "%s%s%s: %s (%s)", what, name ? " " : "", name ? name : "", factum_strerror(rc), why);
    else
        cli_msg(t->c, "%s%s%s: %s", what, name ? " " : "", name ? name : "", factum_strerror(rc));
    switch (rc) {
    case FACTUM_EINVAL:
    case FACTUM_EBADJSON:
    case FACTUM_ETARGET: return CLI_USAGE; /* the definition, statement or parameter */
    case FACTUM_EEXISTS: return CLI_FAIL;
    default: return cli_exit_code(rc);
    }
}

/* ---- statuses ------------------------------------------------------------------ */

static const char *state_text(int s)
{
    switch (s) {
    case FACTUM_READMODEL_RUNNING: return "running";
    case FACTUM_READMODEL_PAUSED: return "paused";
    case FACTUM_READMODEL_FAULTED: return "faulted";
    case FACTUM_READMODEL_STARTING: return "starting";
    default: return "unknown";
    }
}

static const char *lifecycle_text(int l)
{
    return l == FACTUM_READMODEL_INLINE ? "inline" : "async";
}

/* The status as one JSON object (the shape of GET /readmodels/<name>'s "status"). */
static int status_json(base_buf *b, const factum_readmodel_status *st)
{
    int rc = base_buf_append(b, "{\"name\":", 8) || json_write_string(b, st->name, strlen(st->name)) ||
             base_buf_append(b, ",\"target\":", 10) || json_write_string(b, st->target, strlen(st->target));
    rc = rc || base_buf_printf(b,
                               ",\"lifecycle\":\"%s\",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"position\":%" PRIu64
                               ",\"head\":%" PRIu64 ",\"lagEvents\":%" PRIu64 ",\"lagSeconds\":%.6f,\"applied\":%" PRIu64
                               ",\"skipped\":%" PRIu64 ",\"parked\":%" PRIu64
                               ",\"eventsPerSecond\":%.1f,\"live\":%s,\"readers\":",
                               lifecycle_text(st->lifecycle), state_text(st->state), st->generation, st->position,
                               st->head, st->lag_events, (double)st->lag_ns / 1e9, st->applied, st->skipped,
                               st->parked, st->events_per_second, st->live ? "true" : "false");
    int readers_ok = st->readers[0] == '[' && json_validate(st->readers, strlen(st->readers)) == 0;
    rc = rc || base_buf_append(b, readers_ok ? st->readers : "[]", readers_ok ? strlen(st->readers) : 2);
    if (st->building)
        rc = rc || base_buf_printf(b, ",\"rebuild\":{\"generation\":%" PRIu64 ",\"position\":%" PRIu64 "}",
                                   st->building, st->building_position);
    if (st->state == FACTUM_READMODEL_FAULTED)
        rc = rc || base_buf_append(b, ",\"error\":{\"message\":", 20) ||
             json_write_string(b, st->error, strlen(st->error)) || base_buf_append(b, ",\"statement\":", 13) ||
             json_write_string(b, st->statement, strlen(st->statement)) ||
             base_buf_printf(b, ",\"position\":%" PRIu64 ",\"version\":%" PRIu64 ",\"stream\":", st->error_position,
                             st->error_version) ||
             json_write_string(b, st->error_stream, strlen(st->error_stream)) || base_buf_append(b, "}", 1);
    return rc || base_buf_append(b, "}", 1) ? -ENOMEM : 0;
}

typedef struct print_ctx {
    int json, header;
} print_ctx;

static int print_row(void *arg, const factum_readmodel_status *st)
{
    print_ctx *p = arg;
    if (p->json) {
        base_buf b = {0};
        int rc = status_json(&b, st);
        if (!rc) {
            fwrite(b.data, 1, b.len, stdout);
            putchar('\n');
        }
        base_buf_free(&b);
        return rc;
    }
    if (!p->header++)
        printf("%-24s %-8s %-9s %-8s %12s %10s %9s %12s\n", "NAME", "STATE", "LIFECYCLE", "TARGET", "POSITION",
               "LAG", "LAG(s)", "APPLIED");
    printf("%-24s %-8s %-9s %-8s %12" PRIu64 " %10" PRIu64 " %9.3f %12" PRIu64 "\n", st->name, state_text(st->state),
           lifecycle_text(st->lifecycle), st->target, st->position, st->lag_events, (double)st->lag_ns / 1e9,
           st->applied);
    return 0;
}

static void print_full(const factum_readmodel_status *st)
{
    printf("%-12s %s\n", "name", st->name);
    printf("%-12s %s\n", "state", state_text(st->state));
    printf("%-12s %s\n", "lifecycle", lifecycle_text(st->lifecycle));
    printf("%-12s %s\n", "target", st->target);
    printf("%-12s %" PRIu64 "\n", "position", st->position);
    printf("%-12s %" PRIu64 "\n", "head", st->head);
    printf("%-12s %" PRIu64 " events, %.3f s\n", "lag", st->lag_events, (double)st->lag_ns / 1e9);
    printf("%-12s %" PRIu64 "\n", "applied", st->applied);
    printf("%-12s %" PRIu64 "\n", "skipped", st->skipped);
    printf("%-12s %" PRIu64 "\n", "parked", st->parked);
    printf("%-12s %.1f events/s\n", "rate", st->events_per_second);
    printf("%-12s %" PRIu64 "\n", "generation", st->generation);
    printf("%-12s %s\n", "readers", st->readers);
    printf("%-12s %s\n", "live", st->live ? "yes" : "no");
    if (st->building)
        printf("%-12s generation %" PRIu64 ", at position %" PRIu64 "\n", "rebuilding", st->building,
               st->building_position);
    if (st->state == FACTUM_READMODEL_FAULTED) {
        printf("%-12s %s\n", "error", st->error);
        printf("%-12s %s\n", "statement", st->statement);
        printf("%-12s position %" PRIu64 ", stream %s, version %" PRIu64 "\n", "event", st->error_position,
               st->error_stream, st->error_version);
    }
}

/* ---- tables ----------------------------------------------------------------------- */

/* A cell's text: strings as they are (control characters as '?'), numbers
 * as written, null empty, booleans, nested values as compact JSON. */
static int cell_text(const json_value *v, base_buf *b)
{
    b->len = 0;
    int rc = 0;
    switch (v->type) {
    case JSON_NULL: break;
    case JSON_TRUE: rc = base_buf_append(b, "true", 4); break;
    case JSON_FALSE: rc = base_buf_append(b, "false", 5); break;
    case JSON_NUMBER: rc = base_buf_append(b, v->str, v->len); break;
    case JSON_STRING:
        for (size_t i = 0; i < v->len && !rc; i++) {
            char ch = (unsigned char)v->str[i] < 0x20 ? '?' : v->str[i];
            rc = base_buf_append(b, &ch, 1);
        }
        break;
    default: rc = json_write_value(b, v);
    }
    return rc || base_buf_append(b, "", 1) ? -ENOMEM : 0;
}

/* Characters on screen of UTF-8 text (code points). */
static size_t width_of(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

static void pad(size_t n)
{
    while (n--) putchar(' ');
}

/* Print a query's JSON answer as psql does: a header, a rule, the rows, a count. */
static int print_table(cli_ctx *c, const char *json)
{
    json_value *v = NULL;
    if (json_parse(json, strlen(json), &v) || v->type != JSON_OBJECT) {
        json_free(v);
        cli_msg(c, "the answer is not a JSON object");
        return CLI_FAIL;
    }
    const json_value *cols = json_get(v, "columns"), *rows = json_get(v, "rows"), *tr = json_get(v, "truncated");
    if (!cols || cols->type != JSON_ARRAY || !rows || rows->type != JSON_ARRAY) {
        json_free(v);
        cli_msg(c, "the answer has no columns and rows");
        return CLI_FAIL;
    }
    size_t nc = cols->n;
    size_t *w = calloc(nc ? nc : 1, sizeof *w);
    base_buf cell = {0};
    int code = w ? CLI_OK : CLI_FAIL;
    for (size_t i = 0; i < nc && !code; i++) {
        if (cell_text(cols->items[i], &cell)) code = CLI_FAIL;
        else w[i] = width_of((char *)cell.data);
    }
    for (size_t r = 0; r < rows->n && !code; r++) {
        const json_value *row = rows->items[r];
        for (size_t i = 0; row->type == JSON_ARRAY && i < row->n && i < nc && !code; i++) {
            if (cell_text(row->items[i], &cell)) code = CLI_FAIL;
            else if (width_of((char *)cell.data) > w[i]) w[i] = width_of((char *)cell.data);
        }
    }
    if (!code) {
        for (size_t i = 0; i < nc; i++) {
            cell_text(cols->items[i], &cell);
            size_t cw = width_of((char *)cell.data);
            printf("%s %s", i ? " |" : "", (char *)cell.data);
            pad(w[i] - cw + (i + 1 < nc ? 0 : 0));
        }
        putchar('\n');
        for (size_t i = 0; i < nc; i++) {
            if (i) putchar('+');
            for (size_t k = 0; k < w[i] + 2; k++) putchar('-');
        }
        putchar('\n');
        for (size_t r = 0; r < rows->n; r++) {
            const json_value *row = rows->items[r];
            for (size_t i = 0; i < nc; i++) {
                const json_value *x = row->type == JSON_ARRAY && i < row->n ? row->items[i] : NULL;
                if (x) cell_text(x, &cell);
                else cell.len = 0, base_buf_append(&cell, "", 1);
                size_t cw = width_of((char *)cell.data);
                int right = x && x->type == JSON_NUMBER;
                printf("%s ", i ? " |" : "");
                if (right) pad(w[i] - cw);
                fputs((char *)cell.data, stdout);
                if (!right && i + 1 < nc) pad(w[i] - cw);
            }
            putchar('\n');
        }
        printf("(%zu row%s%s)\n", rows->n, rows->n == 1 ? "" : "s",
               tr && tr->type == JSON_TRUE ? "; truncated at the row limit" : "");
    }
    base_buf_free(&cell);
    free(w);
    json_free(v);
    return code;
}

/* ---- readmodel --------------------------------------------------------------------- */

static int cmd_create(target *t, const char *file, const char *name_for_rebuild)
{
    base_buf b = {0};
    int code = cli_read_file(t->c, file, SIZE_MAX, &b);
    if (code) return code;
    char err[512] = "";
    int rc;
    const char *def = (const char *)b.data;
    if (name_for_rebuild)
        rc = t->cl ? factum_client_readmodel_rebuild(t->cl, name_for_rebuild, def, b.len)
                   : factum_readmodel_rebuild(t->m, name_for_rebuild, def, b.len, err, sizeof err);
    else
        rc = t->cl ? factum_client_readmodel_create(t->cl, def, b.len)
                   : factum_readmodel_create(t->m, def, b.len, err, sizeof err);
    base_buf_free(&b);
    if (rc) return target_fail(t, rc, name_for_rebuild ? "rebuilding read model" : "creating the read model",
                               name_for_rebuild, err);
    if (name_for_rebuild) printf("rebuilding %s\n", name_for_rebuild);
    else printf("created\n");
    return CLI_OK;
}

int cli_cmd_readmodel(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, rm_opts, sizeof rm_opts / sizeof *rm_opts, &a);
    if (code) return code;
    if (a.help) {
        cli_args_free(&a);
        return cli_help(readmodel_help);
    }
    if (a.n_pos < 1) {
        cli_args_free(&a);
        return cli_usage(c, "a subcommand is needed: create, list, status, pause, resume, drop, rebuild, wait or parked");
    }
    const char *sub = a.pos[0];
    static const struct {
        const char *name;
        size_t min, max;
        const char *what;
    } subs[] = {
        {"create", 2, 2, "FILE|-"},   {"list", 1, 1, "nothing"},          {"status", 2, 2, "NAME"},
        {"pause", 2, 2, "NAME"},      {"resume", 2, 2, "NAME"},           {"drop", 2, 2, "NAME"},
        {"rebuild", 2, 3, "NAME [FILE|-]"}, {"wait", 3, 3, "NAME POSITION"}, {"parked", 2, 2, "NAME"},
    };
    size_t k = 0;
    while (k < sizeof subs / sizeof *subs && strcmp(subs[k].name, sub)) k++;
    if (k == sizeof subs / sizeof *subs) {
        code = cli_usage(c, "unknown subcommand '%s' (see factum readmodel --help)", sub);
        cli_args_free(&a);
        return code;
    }
    if (a.n_pos < subs[k].min || a.n_pos > subs[k].max) {
        code = cli_usage(c, "readmodel %s takes %s", sub, subs[k].what);
        cli_args_free(&a);
        return code;
    }
    const char *name = a.n_pos > 1 ? a.pos[1] : NULL;
    uint64_t position = 0, timeout = 5000, limit = 100;
    if (!strcmp(sub, "wait") && (code = cli_parse_u64(c, "POSITION", a.pos[2], &position))) goto out_args;
    if (cli_get(&a, "timeout") && (code = cli_parse_u64(c, "--timeout", cli_get(&a, "timeout"), &timeout)))
        goto out_args;
    if (timeout > 300000) {
        code = cli_usage(c, "--timeout is at most 300000 ms");
        goto out_args;
    }
    if (cli_get(&a, "limit") && (code = cli_parse_u64(c, "--limit", cli_get(&a, "limit"), &limit))) goto out_args;
    if (limit > 100000) {
        code = cli_usage(c, "--limit is at most 100000");
        goto out_args;
    }
    target t;
    if ((code = target_open(c, &t))) goto out_args;
    int rc = 0;
    char err[512] = "";
    if (!strcmp(sub, "create")) {
        code = cmd_create(&t, a.pos[1], NULL);
    } else if (!strcmp(sub, "rebuild")) {
        if (a.n_pos == 3) {
            code = cmd_create(&t, a.pos[2], name);
        } else {
            rc = t.cl ? factum_client_readmodel_rebuild(t.cl, name, NULL, 0)
                      : factum_readmodel_rebuild(t.m, name, NULL, 0, err, sizeof err);
            if (rc) code = target_fail(&t, rc, "rebuilding read model", name, err);
            else printf("rebuilding %s\n", name);
        }
    } else if (!strcmp(sub, "list")) {
        print_ctx p = {cli_has(&a, "json"), 0};
        rc = t.cl ? factum_client_readmodel_list(t.cl, print_row, &p) : factum_readmodels_each(t.m, print_row, &p);
        if (rc) code = target_fail(&t, rc, "listing the read models", NULL, NULL);
    } else if (!strcmp(sub, "status")) {
        factum_readmodel_status st;
        char *def = NULL;
        int want_def = cli_has(&a, "definition");
        rc = t.cl ? factum_client_readmodel_get(t.cl, name, &st, want_def ? &def : NULL)
                  : factum_readmodel_get_status(t.m, name, &st);
        if (!rc && want_def && !t.cl) rc = factum_readmodel_get_definition(t.m, name, &def);
        if (rc) {
            code = target_fail(&t, rc, "read model", name, NULL);
        } else if (want_def) {
            printf("%s\n", def);
        } else if (cli_has(&a, "json")) {
            print_ctx p = {1, 0};
            if (print_row(&p, &st)) code = CLI_FAIL;
        } else {
            print_full(&st);
        }
        free(def);
    } else if (!strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "drop")) {
        if (t.cl)
            rc = sub[0] == 'p' ? factum_client_readmodel_pause(t.cl, name)
                 : sub[0] == 'r' ? factum_client_readmodel_resume(t.cl, name)
                                 : factum_client_readmodel_drop(t.cl, name);
        else
            rc = sub[0] == 'p' ? factum_readmodel_pause(t.m, name)
                 : sub[0] == 'r' ? factum_readmodel_resume(t.m, name)
                                 : factum_readmodel_drop(t.m, name);
        if (rc) code = target_fail(&t, rc, sub, name, NULL);
        else printf("%s %s\n", sub[0] == 'p' ? "paused" : sub[0] == 'r' ? "resumed" : "dropped", name);
    } else if (!strcmp(sub, "wait")) {
        uint64_t reached = 0;
        if (t.cl) {
            rc = factum_client_readmodel_wait(t.cl, name, position, (int)timeout, &reached);
        } else {
            rc = factum_readmodel_wait(t.m, name, position, (int)timeout);
            factum_readmodel_status st;
            if (!rc && factum_readmodel_get_status(t.m, name, &st) == 0) reached = st.position;
        }
        if (rc == FACTUM_ETIMEDOUT) {
            cli_msg(c, "read model %s did not reach position %" PRIu64 " within %" PRIu64 " ms", name, position,
                    timeout);
            code = CLI_FAIL;
        } else if (rc) {
            code = target_fail(&t, rc, "waiting for read model", name, NULL);
        } else {
            printf("%s reached position %" PRIu64 "\n", name, reached > position ? reached : position);
        }
    } else if (!strcmp(sub, "parked")) {
        char *out = NULL;
        rc = t.cl ? factum_client_readmodel_parked(t.cl, name, (uint32_t)limit, &out)
                  : factum_readmodel_parked(t.m, name, (uint32_t)limit, &out, err, sizeof err);
        if (rc) code = target_fail(&t, rc, "parked events of read model", name, err);
        else if (cli_has(&a, "json")) printf("%s\n", out);
        else code = print_table(c, out);
        free(out);
    }
    code = cli_finish_output(c, code);
    code = target_close(&t, code);
out_args:
    cli_args_free(&a);
    return code;
}

/* ---- query ----------------------------------------------------------------------------- */

/* --param KEY=VALUE... and --params JSON into one JSON object in b. */
static int build_params(cli_ctx *c, const cli_args *a, base_buf *b)
{
    const char *all = cli_get(a, "params");
    size_t n = 0;
    const char **ps = cli_get_all(a, "param", &n);
    json_value *obj = NULL;
    int code = CLI_OK;
    if (all && (json_parse(all, strlen(all), &obj) || obj->type != JSON_OBJECT)) {
        code = cli_usage(c, "--params must be a JSON object");
        goto out;
    }
    if (base_buf_append(b, "{", 1)) goto oom;
    size_t written = 0;
    for (size_t i = 0; obj && i < obj->n; i++) {
        if ((written++ && base_buf_append(b, ",", 1)) || json_write_string(b, obj->keys[i], obj->key_lens[i]) ||
            base_buf_append(b, ":", 1) || json_write_value(b, obj->items[i]))
            goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(ps[i], '=');
        if (!eq || eq == ps[i]) {
            code = cli_usage(c, "--param takes KEY=VALUE, not '%s'", ps[i]);
            goto out;
        }
        const char *v = eq + 1;
        json_value *jv = NULL;
        int is_json = json_parse(v, strlen(v), &jv) == 0 && jv->type != JSON_ARRAY && jv->type != JSON_OBJECT;
        json_free(jv);
        if ((written++ && base_buf_append(b, ",", 1)) || json_write_string(b, ps[i], (size_t)(eq - ps[i])) ||
            base_buf_append(b, ":", 1) ||
            (is_json ? base_buf_append(b, v, strlen(v)) : json_write_string(b, v, strlen(v))))
            goto oom;
    }
    if (base_buf_append(b, "}", 1) || base_buf_append(b, "", 1)) goto oom;
    goto out;
oom:
    cli_msg(c, "out of memory");
    code = CLI_FAIL;
out:
    json_free(obj);
    free(ps);
    return code;
}

int cli_cmd_query(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, query_opts, sizeof query_opts / sizeof *query_opts, &a);
    if (code) return code;
    if (a.help) {
        cli_args_free(&a);
        return cli_help(query_help);
    }
    if ((code = cli_want_pos(c, &a, 2, 2, "NAME and SQL"))) {
        cli_args_free(&a);
        return code;
    }
    const char *name = a.pos[0], *sql = a.pos[1];
    factum_query_options o;
    factum_query_options_init(&o);
    uint64_t v;
    base_buf params = {0};
    if (cli_get(&a, "min-position")) {
        if ((code = cli_parse_u64(c, "--min-position", cli_get(&a, "min-position"), &v))) goto out;
        o.min_position = v;
    }
    if (cli_get(&a, "wait-ms")) {
        if ((code = cli_parse_u64(c, "--wait-ms", cli_get(&a, "wait-ms"), &v))) goto out;
        if (v > 300000) {
            code = cli_usage(c, "--wait-ms is at most 300000");
            goto out;
        }
        o.wait_ms = (int)v;
    }
    if (cli_get(&a, "row-limit")) {
        if ((code = cli_parse_u64(c, "--row-limit", cli_get(&a, "row-limit"), &v))) goto out;
        if (v < 1 || v > 100000) {
            code = cli_usage(c, "--row-limit is 1 to 100000");
            goto out;
        }
        o.row_limit = (uint32_t)v;
    }
    if (cli_get(&a, "time-limit")) {
        if ((code = cli_parse_u64(c, "--time-limit", cli_get(&a, "time-limit"), &v))) goto out;
        if (v < 1 || v > 60000) {
            code = cli_usage(c, "--time-limit is 1 to 60000 ms");
            goto out;
        }
        o.time_limit_ms = (uint32_t)v;
    }
    if ((code = build_params(c, &a, &params))) goto out;
    const char *asof_t = cli_get(&a, "as-of"), *asof_p = cli_get(&a, "as-of-position");
    int64_t asof_ns = 0;
    uint64_t asof_pos = 0;
    if (asof_t && asof_p) {
        code = cli_usage(c, "give --as-of or --as-of-position, not both");
        goto out;
    }
    if (asof_t && factum_time_parse(asof_t, strlen(asof_t), &asof_ns)) {
        code = cli_usage(c, "--as-of: '%s' is not an RFC 3339 time (2026-03-15T10:00:00Z) or a date", asof_t);
        goto out;
    }
    if (asof_p && (code = cli_parse_u64(c, "--as-of-position", asof_p, &asof_pos))) goto out;
    target t;
    if ((code = target_open(c, &t))) goto out;
    char *out = NULL, err[512] = "";
    int rc = 0;
    const char *pj = (const char *)params.data;
    if (!asof_t && !asof_p) {
        rc = t.cl ? factum_client_readmodel_query(t.cl, name, sql, pj, &o, &out)
                  : factum_readmodel_query(t.m, name, sql, pj, &o, &out, err, sizeof err);
    } else if (t.cl) {
        rc = factum_client_readmodel_query_asof(t.cl, name, asof_t, asof_pos, sql, pj, &o, &out);
    } else {
        if (asof_t) rc = factum_position_at(t.s, asof_ns, &asof_pos);
        if (!rc) rc = factum_readmodel_query_asof(t.m, name, asof_pos, sql, pj, &o, &out, err, sizeof err);
    }
    if (rc == FACTUM_ETIMEDOUT) {
        const char *why = t.cl ? factum_client_last_error(t.cl) : err;
        cli_msg(c, "read model %s: %s%s%s", name, o.min_position ? "position not reached, or the statement ran out of time" : "the statement ran out of time", why[0] ? ": " : "", why);
        code = CLI_FAIL;
    } else if (rc) {
        code = target_fail(&t, rc, "query on read model", name, err);
    } else if (cli_has(&a, "json")) {
        printf("%s\n", out);
    } else {
        code = print_table(c, out);
    }
    free(out);
    code = cli_finish_output(c, code);
    code = target_close(&t, code);
out:
    base_buf_free(&params);
    cli_args_free(&a);
    return code;
}
