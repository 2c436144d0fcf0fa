/*
 * cmd_upcaster.c - `factum upcaster set|list|remove`: the store's upcasters
 * (docs/upcasting.md), on a local data directory through the library, or on
 * a server (--server) by appending to and reading stream `$upcasters`
 * through the client (the server checks what is appended as the library
 * does).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

static const char upcaster_help[] =
    "usage: factum upcaster set FILE|-\n"
    "       factum upcaster list [--json]\n"
    "       factum upcaster remove TYPE FROM_VERSION\n"
    "\n"
    "Register, list and remove upcasters: documents that turn events of one type at one schema version\n"
    "into the next shape when they are read (docs/upcasting.md). set reads the document from FILE (- for\n"
    "stdin), checks it and registers it; it replaces the one of the same eventType and fromVersion. A\n"
    "document with \"steps\" is declarative; one with a \"script\" (a JavaScript function) is compiled first\n"
    "on a data directory (with --server the server checks the document, and a script that does not\n"
    "compile fails the reads of its events).\n"
    "list prints one line per upcaster (TYPE FROM -> TO, steps or script), or with --json the documents as\n"
    "NDJSON.\n"
    "remove drops the upcaster of TYPE at FROM_VERSION. Works on --data or --server.\n"
    "\n"
    "  --json            list: the documents, one per line\n";

static const cli_opt upcaster_opts[] = {
    {"json", 0},
};

/* ---- list ------------------------------------------------------------------ */

typedef struct lister {
    int json;
    uint64_t n;
} lister;

static void print_one(lister *l, const char *type, int64_t from, int64_t to, const char *doc, size_t len)
{
    l->n++;
    json_value *v = NULL;
    int parsed = json_parse(doc, len, &v) == 0;
    if (l->json) { /* one line each (NDJSON): compacted */
        base_buf b = {0};
        if (parsed && !json_write_value(&b, v)) fwrite(b.data, 1, b.len, stdout);
        else fwrite(doc, 1, len, stdout);
        fputc('\n', stdout);
        base_buf_free(&b);
        json_free(v);
        return;
    }
    size_t steps = 0, script = 0;
    if (parsed) {
        const json_value *s = json_get(v, "steps"), *js = json_get(v, "script");
        if (s && s->type == JSON_ARRAY) steps = s->n;
        if (js && js->type == JSON_STRING) script = js->len;
    }
    json_free(v);
    if (script)
        printf("%s %" PRId64 " -> %" PRId64 " (script, %zu bytes)\n", type, from, to, script);
    else
        printf("%s %" PRId64 " -> %" PRId64 " (%zu step%s)\n", type, from, to, steps, steps == 1 ? "" : "s");
}

static int list_cb(void *ctx, const factum_upcaster_info *u)
{
    print_one(ctx, u->event_type, u->from_version, u->to_version, u->json, u->json_len);
    return 0;
}

/* The server's registry, rebuilt from `$upcasters` as the store does
 * (latest per type and version), kept in a small list. */
typedef struct rentry {
    char *type;
    int64_t from, to;
    char *doc;
    size_t len;
} rentry;

static int rcmp(const void *a, const void *b)
{
    const rentry *x = a, *y = b;
    int c = strcmp(x->type, y->type);
    return c ? c : (x->from > y->from) - (x->from < y->from);
}

static int remote_list(cli_ctx *c, factum_client *cl, lister *l)
{
    rentry *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t next = 0;
    int code = CLI_OK;
    for (;;) {
        factum_client_batch *b;
        int rc = factum_client_read_stream(cl, FACTUM_UPCASTERS_STREAM, next, FACTUM_FORWARD, 500, &b);
        if (rc == FACTUM_ENOTFOUND) break;
        if (rc) {
            code = cli_remote_fail(c, cl, rc, "reading %s", FACTUM_UPCASTERS_STREAM);
            goto out;
        }
        size_t got = factum_client_batch_count(b);
        for (size_t i = 0; i < got; i++) {
            const factum_event *ev = factum_client_batch_event(b, i);
            json_value *d = NULL;
            int64_t from = 0, to = 0;
            const json_value *t;
            if (json_parse((const char *)ev->data, ev->data_len, &d) || !(t = json_get(d, "eventType")) ||
                t->type != JSON_STRING || json_int64(json_get(d, "fromVersion"), &from)) {
                json_free(d);
                continue;
            }
            int set = strcmp(ev->type, FACTUM_UPCASTER_SET_TYPE) == 0;
            if (set) json_int64(json_get(d, "toVersion"), &to);
            size_t k = 0;
            while (k < n && (v[k].from != from || strcmp(v[k].type, t->str))) k++;
            if (k < n) {
                free(v[k].type);
                free(v[k].doc);
                v[k] = v[--n];
            }
            if (set) {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    rentry *nv = realloc(v, nc * sizeof *nv);
                    if (!nv) {
                        json_free(d);
                        factum_client_batch_free(b);
                        cli_msg(c, "out of memory");
                        code = CLI_FAIL;
                        goto out;
                    }
                    v = nv;
                    cap = nc;
                }
                v[n] = (rentry){strdup(t->str), from, to, malloc(ev->data_len + 1), ev->data_len};
                if (v[n].doc) memcpy(v[n].doc, ev->data, ev->data_len);
                if (v[n].type && v[n].doc) n++;
                else {
                    free(v[n].type);
                    free(v[n].doc);
                }
            }
            json_free(d);
        }
        uint64_t last = got ? factum_client_batch_event(b, got - 1)->version : 0;
        factum_client_batch_free(b);
        if (got < 500) break;
        next = last + 1;
    }
    if (n) qsort(v, n, sizeof *v, rcmp);
    for (size_t i = 0; i < n; i++) print_one(l, v[i].type, v[i].from, v[i].to, v[i].doc, v[i].len);
out:
    for (size_t i = 0; i < n; i++) {
        free(v[i].type);
        free(v[i].doc);
    }
    free(v);
    return code;
}

/* ---- the command -------------------------------------------------------------- */

static int set_cmd(cli_ctx *c, const char *file)
{
    base_buf b = {0};
    int code = cli_read_file(c, file, FACTUM_UPCAST_MAX_DOC, &b);
    if (code) return code;
    /* Trailing white space (an editor's newline) is no part of the document. */
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' || b.data[b.len - 1] == ' '))
        b.len--;
    char err[512];
    int rc = factum_upcaster_check((const char *)b.data, b.len, err, sizeof err);
    if (rc) {
        cli_msg(c, "'%s' is not a valid upcaster document: %s", file, err);
        base_buf_free(&b);
        return CLI_USAGE;
    }
    if (c->server) {
        factum_client *cl;
        if (!(code = cli_connect(c, &cl))) {
            factum_event_data ev;
            memset(&ev, 0, sizeof ev);
            ev.type = FACTUM_UPCASTER_SET_TYPE;
            ev.flags = FACTUM_EVENT_JSON;
            ev.data = b.data;
            ev.data_len = b.len;
            rc = factum_client_append(cl, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &ev, 1, NULL);
            if (rc) code = cli_remote_fail(c, cl, rc, "registering the upcaster");
            factum_client_close(cl);
        }
    } else {
        factum_store *s;
        if (!(code = cli_open_write(c, 0, &s))) {
            rc = factum_upcaster_set(s, (const char *)b.data, b.len, err, sizeof err);
            if (rc && err[0]) {
                cli_msg(c, "%s", err);
                code = CLI_USAGE;
            } else if (rc) {
                code = cli_fail(c, rc, "registering the upcaster");
            }
            code = cli_close(c, s, code);
        }
    }
    base_buf_free(&b);
    return code;
}

static int remove_cmd(cli_ctx *c, const char *type, const char *version)
{
    uint64_t v;
    int code = cli_parse_u64(c, "FROM_VERSION", version, &v);
    if (code) return code;
    if (v < 1 || v > FACTUM_UPCAST_MAX_VERSION) return cli_usage(c, "FROM_VERSION must be 1 to %d", FACTUM_UPCAST_MAX_VERSION);
    if (c->server) {
        base_buf b = {0};
        int rc = base_buf_append(&b, "{\"eventType\":", 13);
        if (!rc) rc = json_write_string(&b, type, strlen(type));
        if (!rc) rc = base_buf_printf(&b, ",\"fromVersion\":%" PRIu64 "}", v);
        factum_client *cl;
        if (rc) {
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
        } else if (!(code = cli_connect(c, &cl))) {
            factum_event_data ev;
            memset(&ev, 0, sizeof ev);
            ev.type = FACTUM_UPCASTER_REMOVED_TYPE;
            ev.flags = FACTUM_EVENT_JSON;
            ev.data = b.data;
            ev.data_len = b.len;
            rc = factum_client_append(cl, FACTUM_UPCASTERS_STREAM, FACTUM_ANY, &ev, 1, NULL);
            if (rc) code = cli_remote_fail(c, cl, rc, "removing the upcaster");
            factum_client_close(cl);
        }
        base_buf_free(&b);
        return code;
    }
    factum_store *s;
    if ((code = cli_open_write(c, 0, &s))) return code;
    int rc = factum_upcaster_remove(s, type, (int64_t)v);
    if (rc == FACTUM_ENOTFOUND) {
        cli_msg(c, "no upcaster of %s from version %" PRIu64, type, v);
        code = CLI_FAIL;
    } else if (rc) {
        code = cli_fail(c, rc, "removing the upcaster");
    }
    return cli_close(c, s, code);
}

int cli_cmd_upcaster(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, upcaster_opts, sizeof upcaster_opts / sizeof upcaster_opts[0], &a);
    if (code) return code;
    if (a.help) {
        code = cli_help(upcaster_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 3, "set|list|remove"))) goto out;
    const char *sub = a.pos[0];
    if (!c->server && (code = cli_need_dir(c))) goto out;
    if (!strcmp(sub, "set")) {
        if (!(code = cli_want_pos(c, &a, 2, 2, "set FILE|-"))) code = set_cmd(c, a.pos[1]);
    } else if (!strcmp(sub, "remove")) {
        if (!(code = cli_want_pos(c, &a, 3, 3, "remove TYPE FROM_VERSION"))) code = remove_cmd(c, a.pos[1], a.pos[2]);
    } else if (!strcmp(sub, "list")) {
        if ((code = cli_want_pos(c, &a, 1, 1, "list"))) goto out;
        lister l = {cli_has(&a, "json"), 0};
        if (c->server) {
            factum_client *cl;
            if (!(code = cli_connect(c, &cl))) {
                code = remote_list(c, cl, &l);
                factum_client_close(cl);
            }
        } else {
            factum_store *s;
            if (!(code = cli_open_read(c, &s))) {
                int rc = factum_upcasters_each(s, list_cb, &l);
                if (rc) code = cli_fail(c, rc, "listing the upcasters");
                code = cli_close(c, s, code);
            }
        }
    } else {
        code = cli_usage(c, "unknown subcommand '%s' (set, list or remove)", sub);
    }
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
