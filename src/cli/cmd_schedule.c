/*
 * cmd_schedule.c - `factum schedule`: schedule an event to be appended to
 * a stream at a time (--at) or after a delay (--in), list the pending
 * requests, cancel one. Scheduling works locally (factum_schedule) or on a
 * server (a request appended to `$scheduled`, delivered by factumd);
 * listing and cancelling need the data directory. docs/temporal.md.
 */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

static const char help[] =
    "usage: factum schedule STREAM TYPE DATA (--at TIME | --in DURATION) [--metadata JSON] [--id UUID] "
    "[--json]\n"
    "       factum schedule list [--json]\n"
    "       factum schedule cancel ID\n"
    "\n"
    "Schedule an event of type TYPE with JSON data DATA to be appended to STREAM at a time, once (the\n"
    "store delivers it while it is open: factumd, or any program with the store open for writing; one\n"
    "already due when the store opens is delivered at once). Prints the schedule id.\n"
    "\n"
    "  --at TIME        when: RFC 3339 (2026-03-15T09:00:00Z, 2026-03-15T10:00:00+01:00) or a date\n"
    "  --in DURATION    after a delay from now: a number with a unit, ms, s, m, h or d (30s, 15m, 2h)\n"
    "  --metadata JSON  the event's metadata (a JSON object; \"$deliverAt\"/\"$deliverTo\" are added)\n"
    "  --id UUID        the schedule id (default: a random one); scheduling it again is a no-op\n"
    "  --json           print {\"id\": ..., \"deliverAt\": ...}\n"
    "\n"
    "list prints the pending requests (id, due time, stream, type); cancel withdraws one (exit code 4\n"
    "when it was already delivered, cancelled, or failed, or is unknown). Both need --data.\n";

static const cli_opt opts[] = {
    {"at", CLI_ARG}, {"in", CLI_ARG}, {"metadata", CLI_ARG}, {"id", CLI_ARG}, {"json", 0},
};

/* "30s", "15m", "1500ms", "2h", "1d" into ns. */
static int parse_duration(const char *t, int64_t *ns)
{
    char *end;
    double v = strtod(t, &end);
    if (end == t || v < 0) return -1;
    double unit;
    if (!strcmp(end, "ms"))
        unit = 1e6;
    else if (!strcmp(end, "s"))
        unit = 1e9;
    else if (!strcmp(end, "m"))
        unit = 60e9;
    else if (!strcmp(end, "h"))
        unit = 3600e9;
    else if (!strcmp(end, "d"))
        unit = 86400e9;
    else
        return -1;
    if (v * unit > 9.2e18) return -1;
    *ns = (int64_t)(v * unit);
    return 0;
}

typedef struct list_ctx {
    int json;
    base_buf buf;
} list_ctx;

static int list_cb(void *ctx, const factum_schedule_info *info)
{
    list_ctx *l = ctx;
    char id[37], at[40];
    factum_uuid_format(info->id, id);
    factum_time_format(info->deliver_at_ns, at);
    if (!l->json) {
        printf("%s  %s  %s  %s\n", id, at, info->stream, info->type);
        return 0;
    }
    l->buf.len = 0;
    int rc = base_buf_printf(&l->buf, "{\"id\":\"%s\",\"deliverAt\":\"%s\",\"stream\":", id, at);
    if (!rc) rc = json_write_string(&l->buf, info->stream, strlen(info->stream));
    if (!rc) rc = base_buf_append(&l->buf, ",\"type\":", 8);
    if (!rc) rc = json_write_string(&l->buf, info->type, strlen(info->type));
    if (!rc) rc = base_buf_printf(&l->buf, ",\"position\":%llu}\n", (unsigned long long)info->position);
    if (rc) return rc;
    fwrite(l->buf.data, 1, l->buf.len, stdout);
    return 0;
}

static int do_list(cli_ctx *c, const cli_args *a)
{
    int code;
    if ((code = cli_local_only(c, "listing reads the scheduler's checkpoint (read '$scheduled' instead)")))
        return code;
    factum_store *s;
    if ((code = cli_open_read(c, &s))) return code;
    list_ctx l = {cli_has(a, "json"), {0}};
    int rc = factum_schedule_list(s, list_cb, &l);
    base_buf_free(&l.buf);
    if (rc) code = cli_fail(c, rc, "listing scheduled events");
    code = cli_finish_output(c, code);
    return cli_close(c, s, code);
}

static int do_cancel(cli_ctx *c, const char *text)
{
    uint8_t id[16];
    if (factum_uuid_parse(text, strlen(text), id)) return cli_usage(c, "'%s' is not a UUID", text);
    int code;
    if ((code = cli_local_only(c, "cancelling needs the data directory"))) return code;
    factum_store *s;
    if ((code = cli_open_write(c, 0, &s))) return code;
    int rc = factum_schedule_cancel(s, id);
    if (rc == FACTUM_ENOTFOUND) {
        cli_msg(c, "%s is not pending (already delivered, cancelled or failed, or unknown)", text);
        code = CLI_NOT_FOUND;
    } else if (rc) {
        code = cli_fail(c, rc, "cancelling %s", text);
    }
    return cli_close(c, s, code);
}

int cli_cmd_schedule(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, opts, sizeof opts / sizeof opts[0], &a);
    if (code) return code;
    base_buf data = {0}, meta = {0};
    if (a.help) {
        code = cli_help(help);
        goto out;
    }
    if (a.n_pos == 1 && !strcmp(a.pos[0], "list")) {
        code = do_list(c, &a);
        goto out;
    }
    if (a.n_pos == 2 && !strcmp(a.pos[0], "cancel")) {
        code = do_cancel(c, a.pos[1]);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 3, 3, "STREAM TYPE DATA (or list, or cancel ID)"))) goto out;
    const char *stream = a.pos[0], *type = a.pos[1], *at_text = cli_get(&a, "at"),
               *in_text = cli_get(&a, "in");
    if ((code = cli_check_stream(c, stream))) goto out;
    if (!!at_text == !!in_text) {
        code = cli_usage(c, "give exactly one of --at TIME and --in DURATION");
        goto out;
    }
    int64_t at = 0;
    if (at_text && factum_time_parse(at_text, strlen(at_text), &at)) {
        code = cli_usage(c, "--at: '%s' is not an RFC 3339 time (2026-03-15T09:00:00Z) or a date", at_text);
        goto out;
    }
    if (in_text) {
        int64_t d;
        if (parse_duration(in_text, &d)) {
            code = cli_usage(c, "--in: '%s' is not a duration (30s, 15m, 2h, 1d, 500ms)", in_text);
            goto out;
        }
        at = base_now_ns() + d;
    }
    if (cli_json_compact(&data, a.pos[2], strlen(a.pos[2]))) {
        code = cli_usage(c, "DATA must be JSON");
        goto out;
    }
    factum_event_data e = {.type = type, .flags = FACTUM_EVENT_JSON, .data = data.data, .data_len = data.len};
    const char *mt = cli_get(&a, "metadata"), *idt = cli_get(&a, "id");
    if (mt) {
        json_value *doc = NULL;
        int bad = json_parse(mt, strlen(mt), &doc) || doc->type != JSON_OBJECT ||
                  json_get(doc, "$deliverAt") || json_get(doc, "$deliverTo");
        json_free(doc);
        if (bad || cli_json_compact(&meta, mt, strlen(mt))) {
            code = cli_usage(c, "--metadata must be a JSON object without \"$deliverAt\" or \"$deliverTo\"");
            goto out;
        }
    }
    if (idt) {
        if (factum_uuid_parse(idt, strlen(idt), e.id)) {
            code = cli_usage(c, "--id: '%s' is not a UUID", idt);
            goto out;
        }
    } else {
        factum_uuid_v4(e.id);
    }
    e.has_id = 1;
    uint8_t id[16];
    char id_text[37], at_out[40];
    if (c->server) {
        /* The request as any client writes it: the metadata of the convention. */
        factum_time_format(at, at_out);
        base_buf m = {0};
        int rc = base_buf_printf(&m, "{\"$deliverAt\":\"%s\",\"$deliverTo\":", at_out);
        if (!rc) rc = json_write_string(&m, stream, strlen(stream));
        if (!rc && meta.len > 2) {
            rc = base_buf_append(&m, ",", 1);
            if (!rc) rc = base_buf_append(&m, meta.data + 1, meta.len - 1);
        } else if (!rc) {
            rc = base_buf_append(&m, "}", 1);
        }
        factum_client *cl;
        if (rc) {
            base_buf_free(&m);
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
            goto out;
        }
        e.metadata = m.data;
        e.metadata_len = m.len;
        e.flags |= FACTUM_EVENT_META_JSON;
        if (!(code = cli_connect(c, &cl))) {
            rc = factum_client_append(cl, FACTUM_SCHEDULED_STREAM, FACTUM_ANY, &e, 1, NULL);
            if (rc) code = cli_remote_fail(c, cl, rc, "scheduling");
            factum_client_close(cl);
        }
        base_buf_free(&m);
        memcpy(id, e.id, 16);
    } else {
        if (meta.len) {
            e.metadata = meta.data;
            e.metadata_len = meta.len;
            e.flags |= FACTUM_EVENT_META_JSON;
        }
        factum_store *s;
        if ((code = cli_open_write(c, 0, &s))) goto out;
        int rc = factum_schedule(s, stream, at, &e, id);
        if (rc) code = cli_fail(c, rc, "scheduling");
        code = cli_close(c, s, code);
    }
    if (code) goto out;
    factum_uuid_format(id, id_text);
    factum_time_format(at, at_out);
    if (cli_has(&a, "json"))
        printf("{\"id\":\"%s\",\"deliverAt\":\"%s\"}\n", id_text, at_out);
    else
        printf("%s\n", id_text);
out:
    base_buf_free(&data);
    base_buf_free(&meta);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
