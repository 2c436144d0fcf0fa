/*
 * cmd_append.c - `factum append`: one event from the arguments, or many
 * from NDJSON lines (stdin or a file) written atomically in one append with
 * one expectation. Everything is parsed and checked before the store is
 * opened (or the server is asked), so malformed input never creates or
 * changes a store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"
#include "cli/events.h"

static const char help[] =
    "usage: factum append STREAM [--expected E] --type TYPE [--id UUID] [--data JSON] [--metadata JSON]\n"
    "                            [--binary] [--json]\n"
    "       factum append STREAM [--expected E] (--stdin | --file F.ndjson) [--json]\n"
    "\n"
    "Append one event built from the options, or every event of an NDJSON input (one JSON object per\n"
    "line: {\"type\":..., \"data\":<any JSON>, \"metadata\":<object>, \"id\":\"<uuid>\"}; data, metadata\n"
    "and id are optional; \"dataEncoding\":\"base64\" makes data a base64 string of raw bytes) atomically.\n"
    "\n"
    "  --expected E   any (default), no-stream, exists, or the stream's current version N\n"
    "  --type TYPE    event type (required for a single event)\n"
    "  --id UUID      event id (default: a random one); appending the same id again is a no-op\n"
    "  --data JSON    event data, must be valid JSON (default: empty)\n"
    "  --binary       store --data as raw bytes, not JSON\n"
    "  --metadata JSON  event metadata, a JSON object\n"
    "  --stdin        read NDJSON events from standard input\n"
    "  --file F       read NDJSON events from file F\n"
    "  --json         print the result as a JSON object\n";

static const cli_opt opts[] = {
    {"expected", CLI_ARG}, {"type", CLI_ARG}, {"id", CLI_ARG},   {"data", CLI_ARG}, {"metadata", CLI_ARG},
    {"binary", 0},         {"stdin", 0},      {"file", CLI_ARG}, {"json", 0},
};

/* Events read from NDJSON, and the factum_event_data pointing into them. */
typedef struct batch {
    cli_input_event *in;
    factum_event_data *evs;
    size_t n, cap;
} batch;

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        cli_input_event_free(&b->in[i]);
    free(b->in);
    free(b->evs);
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static int read_lines(cli_ctx *c, FILE *f, const char *name, batch *b)
{
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    ssize_t len;
    int code = CLI_OK;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (is_blank(line, (size_t)len)) continue;
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 16;
            cli_input_event *p = realloc(b->in, cap * sizeof *p);
            if (!p) {
                code = CLI_FAIL;
                cli_msg(c, "out of memory");
                break;
            }
            b->in = p;
            b->cap = cap;
        }
        char err[256];
        if (cli_parse_event_line(line, (size_t)len, CLI_LINE_APPEND, &b->in[b->n], err, sizeof err)) {
            code = cli_usage(c, "%s: line %zu: %s", name, lineno, err);
            break;
        }
        b->n++;
    }
    if (!code && ferror(f)) code = cli_fail(c, -errno, "reading %s", name);
    free(line);
    if (!code && b->n == 0) code = cli_usage(c, "%s: no events in the input", name);
    if (code) return code;
    if (!(b->evs = calloc(b->n, sizeof *b->evs))) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    for (size_t i = 0; i < b->n; i++) {
        factum_event_data *e = &b->evs[i];
        const cli_input_event *in = &b->in[i];
        e->type = in->type;
        e->has_id = in->has_id;
        memcpy(e->id, in->id, 16);
        e->flags = in->flags;
        e->data = in->data.data;
        e->data_len = in->data.len;
        e->metadata = in->metadata.data;
        e->metadata_len = in->metadata.len;
    }
    return CLI_OK;
}

/* The single event of the options into *e (pointers into argv). */
static int event_from_args(cli_ctx *c, const cli_args *a, factum_event_data *e)
{
    char err[256];
    memset(e, 0, sizeof *e);
    const char *type = cli_get(a, "type"), *id = cli_get(a, "id"), *data = cli_get(a, "data"),
               *meta = cli_get(a, "metadata");
    if (!type) return cli_usage(c, "missing --type (every event has a type)");
    if (cli_check_type(type, err, sizeof err)) return cli_usage(c, "%s", err);
    e->type = type;
    if (id) {
        if (factum_uuid_parse(id, strlen(id), e->id)) return cli_usage(c, "--id: '%s' is not a UUID", id);
        e->has_id = 1;
    }
    if (data) {
        if (!cli_has(a, "binary")) {
            if (json_validate(data, strlen(data)))
                return cli_usage(c, "--data is not valid JSON (use --binary for raw bytes)");
            e->flags |= FACTUM_EVENT_JSON;
        }
        e->data = data;
        e->data_len = strlen(data);
    }
    if (meta) {
        json_value *v;
        if (json_parse(meta, strlen(meta), &v)) return cli_usage(c, "--metadata is not valid JSON");
        int obj = v->type == JSON_OBJECT;
        json_free(v);
        if (!obj) return cli_usage(c, "--metadata must be a JSON object");
        e->flags |= FACTUM_EVENT_META_JSON;
        e->metadata = meta;
        e->metadata_len = strlen(meta);
    }
    return CLI_OK;
}

static void print_result(const char *stream, size_t n, const factum_append_result *r, int json)
{
    if (json) {
        base_buf b = {0};
        char ts[32];
        int rc = base_buf_append(&b, "{\"stream\":", 10);
        if (!rc) rc = json_write_string(&b, stream, strlen(stream));
        if (!rc)
            rc = base_buf_printf(
                &b,
                ",\"count\":%zu,\"firstVersion\":%llu,\"lastVersion\":%llu,\"firstPosition\":%llu,"
                "\"lastPosition\":%llu,\"idempotent\":%s,\"timestamp\":",
                n, (unsigned long long)r->first_version, (unsigned long long)r->last_version,
                (unsigned long long)r->first_position, (unsigned long long)r->last_position,
                r->idempotent ? "true" : "false");
        if (!rc && r->idempotent)
            rc = base_buf_printf(&b, "null}\n");
        else if (!rc) {
            cli_format_time(r->timestamp_ns, ts);
            rc = base_buf_printf(&b, "\"%s\"}\n", ts);
        }
        if (!rc) fwrite(b.data, 1, b.len, stdout);
        base_buf_free(&b);
        return;
    }
    if (r->idempotent)
        printf("already appended, nothing written: ");
    else
        printf("appended %zu event%s: ", n, n == 1 ? "" : "s");
    if (n == 1)
        printf("%s@%llu, position %llu\n", stream, (unsigned long long)r->first_version,
               (unsigned long long)r->first_position);
    else
        printf("%s@%llu..%llu, positions %llu..%llu\n", stream, (unsigned long long)r->first_version,
               (unsigned long long)r->last_version, (unsigned long long)r->first_position,
               (unsigned long long)r->last_position);
}

/* The append through the client (--server). */
static int remote_append(cli_ctx *c, const char *stream, int64_t expected, const factum_event_data *evs,
                         size_t n, int json)
{
    factum_client *cl;
    int code = cli_connect(c, &cl);
    if (code) return code;
    factum_append_result res;
    memset(&res, 0, sizeof res);
    int rc = factum_client_append(cl, stream, expected, evs, n, &res);
    if (rc)
        code = cli_remote_stream_error(c, cl, stream, expected, rc, &res);
    else
        print_result(stream, n, &res, json);
    factum_client_close(cl);
    return code;
}

int cli_cmd_append(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, opts, sizeof opts / sizeof opts[0], &a);
    if (code) return code;
    batch b = {0};
    factum_event_data single;
    factum_event_data *evs = &single;
    size_t n = 1;
    int64_t expected;
    if (a.help) {
        code = cli_help(help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "STREAM"))) goto out;
    const char *stream = a.pos[0];
    if ((code = cli_check_stream(c, stream)) ||
        (code = cli_parse_expected(c, cli_get(&a, "expected"), &expected)))
        goto out;
    int from_stdin = cli_has(&a, "stdin");
    const char *file = cli_get(&a, "file");
    if (from_stdin || file) {
        static const char *const single_only[] = {"type", "id", "data", "metadata", "binary"};
        if (from_stdin && file) {
            code = cli_usage(c, "give --stdin or --file, not both");
            goto out;
        }
        for (size_t i = 0; i < sizeof single_only / sizeof single_only[0]; i++) {
            if (cli_has(&a, single_only[i])) {
                code = cli_usage(c, "--%s describes a single event; it cannot be combined with --%s",
                                 single_only[i], from_stdin ? "stdin" : "file");
                goto out;
            }
        }
        if (file) {
            FILE *f = fopen(file, "r");
            if (!f) {
                code = cli_fail(c, -errno, "cannot open '%s'", file);
                goto out;
            }
            code = read_lines(c, f, file, &b);
            fclose(f);
        } else {
            code = read_lines(c, stdin, "stdin", &b);
        }
        if (code) goto out;
        evs = b.evs;
        n = b.n;
    } else {
        if (cli_has(&a, "binary") && !cli_has(&a, "data")) {
            code = cli_usage(c, "--binary needs --data");
            goto out;
        }
        if ((code = event_from_args(c, &a, &single))) goto out;
    }
    if ((code = cli_need_dir(c))) goto out;
    char err[320];
    int rc = cli_check_batch(evs, n, err, sizeof err);
    if (rc) {
        cli_msg(c, "%s", err);
        code = CLI_FAIL;
        goto out;
    }
    if (cli_check_meta_events(stream, evs, n, err, sizeof err)) {
        code = cli_usage(c, "%s (or use factum meta set)", err);
        goto out;
    }
    if (c->server) {
        code = remote_append(c, stream, expected, evs, n, cli_has(&a, "json"));
        goto out;
    }
    if (!cli_store_present(c) && (expected >= 0 || expected == FACTUM_STREAM_EXISTS)) {
        /* Bound to fail on a store that does not exist yet: do not create one. */
        code = cli_wrong_version(c, NULL, stream, expected, FACTUM_NO_STREAM);
        goto out;
    }
    factum_store *s;
    if ((code = cli_open_write(c, 0, &s))) goto out;
    factum_append_result res;
    memset(&res, 0, sizeof res);
    rc = factum_append(s, stream, expected, evs, n, &res);
    if (rc == FACTUM_EIDEMPOTENCY) {
        cli_msg(c,
                "some of these event ids are already in stream '%s', but not all of them in this order at "
                "this place: %s",
                stream, factum_strerror(rc));
        code = CLI_FAIL;
    } else if (rc) {
        code = cli_stream_error(c, s, stream, expected, rc, &res);
    } else {
        print_result(stream, n, &res, cli_has(&a, "json"));
    }
    code = cli_close(c, s, code);
out:
    batch_free(&b);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
