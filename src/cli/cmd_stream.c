/*
 * cmd_stream.c - the commands about one stream as a whole: `info` (status,
 * last version and position, metadata), `meta get` / `meta set`, and the two
 * deletions, `delete` (soft: the numbering continues on the next append)
 * and `tombstone` (permanent); each on a data directory or, with --server,
 * through the client.
 */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

static const char *status_name(int status)
{
    switch (status) {
    case FACTUM_STREAM_NONE:
        return "none";
    case FACTUM_STREAM_LIVE:
        return "live";
    case FACTUM_STREAM_SOFT_DELETED:
        return "soft-deleted";
    case FACTUM_STREAM_TOMBSTONED:
        return "tombstoned";
    default:
        return "unknown";
    }
}

/* ---- info ----------------------------------------------------------- */

static const char info_help[] =
    "usage: factum info STREAM [--json]\n"
    "\n"
    "Print a stream's status (none, live, soft-deleted, tombstoned), its last version and last position,\n"
    "the version of its metadata and the metadata document. A stream never written has status none.\n"
    "\n"
    "  --json   print one JSON object: stream, status, lastVersion, lastPosition (null when none),\n"
    "           metadataVersion (null when none), metadata\n";

static const cli_opt info_opts[] = {{"json", 0}};

/* What info shows. Over --server the protocol does not tell everything:
 * an unknown version or position is printed as "unknown" (null in JSON). */
typedef struct info_view {
    int status;
    int version_known, position_known;
    int64_t last_version;
    uint64_t last_position;
    int64_t mver;
    const char *meta;
    size_t mlen;
} info_view;

static int print_info(cli_ctx *c, const char *stream, const info_view *v, int as_json)
{
    int none = v->status == FACTUM_STREAM_NONE;
    int tomb = v->status == FACTUM_STREAM_TOMBSTONED;
    base_buf b = {0};
    /* A metadata document that does not parse is shown as a string. */
    base_buf mjson = {0};
    int rc = 0;
    if (cli_json_compact(&mjson, v->meta, v->mlen)) {
        mjson.len = 0;
        rc = json_write_string(&mjson, v->meta, v->mlen);
    }
    if (as_json) {
        if (!rc) rc = base_buf_append(&b, "{\"stream\":", 10);
        if (!rc) rc = json_write_string(&b, stream, strlen(stream));
        if (!rc) rc = base_buf_printf(&b, ",\"status\":\"%s\",\"lastVersion\":", status_name(v->status));
        if (!rc)
            rc = none || !v->version_known ? base_buf_printf(&b, "null")
                                           : base_buf_printf(&b, "%lld", (long long)v->last_version);
        if (!rc) rc = base_buf_printf(&b, ",\"lastPosition\":");
        if (!rc)
            rc = none || !v->position_known
                     ? base_buf_printf(&b, "null")
                     : base_buf_printf(&b, "%llu", (unsigned long long)v->last_position);
        if (!rc) rc = base_buf_printf(&b, ",\"metadataVersion\":");
        if (!rc)
            rc = v->mver < 0 ? base_buf_printf(&b, "null") : base_buf_printf(&b, "%lld", (long long)v->mver);
        if (!rc) rc = base_buf_printf(&b, ",\"metadata\":");
        if (!rc) rc = base_buf_append(&b, mjson.data, mjson.len);
        if (!rc) rc = base_buf_append(&b, "}\n", 2);
        if (!rc) fwrite(b.data, 1, b.len, stdout);
    } else if (!rc) {
        printf("stream:           %s\n", stream);
        printf("status:           %s\n", status_name(v->status));
        if (none)
            printf("last version:     none\n");
        else if (tomb)
            printf("last version:     tombstone (%lld)\n", (long long)v->last_version);
        else if (!v->version_known)
            printf("last version:     unknown\n");
        else
            printf("last version:     %lld\n", (long long)v->last_version);
        if (none)
            printf("last position:    none\n");
        else if (!v->position_known)
            printf("last position:    unknown\n");
        else
            printf("last position:    %llu\n", (unsigned long long)v->last_position);
        if (v->mver < 0)
            printf("metadata version: none\n");
        else
            printf("metadata version: %lld\n", (long long)v->mver);
        printf("metadata:         %.*s\n", (int)mjson.len, mjson.data ? (const char *)mjson.data : "");
    }
    base_buf_free(&mjson);
    base_buf_free(&b);
    if (rc) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* info through the client: the last event (a backward read of 1) and the
 * metadata. A soft-deleted stream is told by its metadata; the versions
 * and positions of deleted streams are not reported by the protocol. */
static int remote_info(cli_ctx *c, const char *stream, int as_json)
{
    factum_client *cl;
    int code = cli_connect(c, &cl);
    if (code) return code;
    info_view v;
    memset(&v, 0, sizeof v);
    char *meta = NULL;
    factum_client_batch *b = NULL;
    int rc = factum_client_read_stream(cl, stream, FACTUM_END, FACTUM_BACKWARD, 1, &b);
    if (rc == 0) {
        v.status = FACTUM_STREAM_LIVE;
        if (factum_client_batch_count(b)) {
            const factum_event *ev = factum_client_batch_event(b, 0);
            v.version_known = v.position_known = 1;
            v.last_version = (int64_t)ev->version;
            v.last_position = ev->position;
        }
    } else if (rc == FACTUM_EDELETED) {
        v.status = FACTUM_STREAM_TOMBSTONED;
        v.version_known = 1;
        v.last_version = (int64_t)FACTUM_TOMBSTONE_VERSION;
        rc = 0;
    } else if (rc == FACTUM_ENOTFOUND) {
        v.status = FACTUM_STREAM_NONE;
        rc = 0;
    }
    factum_client_batch_free(b);
    if (!rc) rc = factum_client_get_stream_metadata(cl, stream, &meta, &v.mver);
    if (!rc && v.status == FACTUM_STREAM_NONE && meta) {
        factum_stream_metadata m;
        if (factum_stream_metadata_parse(meta, strlen(meta), &m) == 0 && m.truncate_before == INT64_MAX)
            v.status = FACTUM_STREAM_SOFT_DELETED;
    }
    if (rc) {
        code = cli_remote_stream_error(c, cl, stream, FACTUM_ANY, rc, NULL);
    } else {
        v.meta = meta;
        v.mlen = strlen(meta);
        code = print_info(c, stream, &v, as_json);
    }
    free(meta);
    factum_client_close(cl);
    return cli_finish_output(c, code);
}

int cli_cmd_info(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, info_opts, 1, &a);
    if (code) return code;
    char *meta = NULL;
    if (a.help) {
        code = cli_help(info_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "STREAM")) || (code = cli_check_stream(c, a.pos[0]))) goto out;
    const char *stream = a.pos[0];
    if (c->server) {
        code = remote_info(c, stream, cli_has(&a, "json"));
        goto out;
    }
    factum_store *s;
    if ((code = cli_open_read(c, &s))) goto out;
    factum_stream_info info;
    size_t mlen;
    int64_t mver;
    int rc = factum_stream_get_info(s, stream, &info);
    if (!rc) rc = factum_get_stream_metadata(s, stream, &meta, &mlen, &mver);
    if (rc) {
        code = cli_stream_error(c, s, stream, FACTUM_ANY, rc, NULL);
    } else {
        info_view v = {info.status, 1, 1, info.last_version, info.last_position, mver, meta, mlen};
        code = print_info(c, stream, &v, cli_has(&a, "json"));
    }
    code = cli_finish_output(c, code);
    code = cli_close(c, s, code);
out:
    free(meta);
    cli_args_free(&a);
    return code;
}

/* ---- meta get / set ------------------------------------------------- */

static const char meta_help[] =
    "usage: factum meta get STREAM\n"
    "       factum meta set STREAM JSON [--expected E] [--json]\n"
    "\n"
    "get prints the stream's metadata document ({} when none was set). set writes a new document, a JSON\n"
    "object, as the next event of '$$STREAM'. KurrentDB's keys are understood: $maxAge (seconds),\n"
    "$maxCount, $tb (truncate before this version), $cacheControl (seconds), $acl (an object); any other\n"
    "keys are kept as they are.\n"
    "\n"
    "  --expected E   any (default), no-stream, exists, or the metadata stream's current version N\n"
    "  --json         (set) print the result as a JSON object\n";

static const cli_opt meta_opts[] = {{"expected", CLI_ARG}, {"json", 0}};

static int meta_get(cli_ctx *c, const char *stream)
{
    if (c->server) {
        factum_client *cl;
        int code = cli_connect(c, &cl);
        if (code) return code;
        char *json;
        int rc = factum_client_get_stream_metadata(cl, stream, &json, NULL);
        if (rc) {
            code = cli_remote_stream_error(c, cl, stream, FACTUM_ANY, rc, NULL);
        } else {
            printf("%s\n", json);
            free(json);
        }
        factum_client_close(cl);
        return cli_finish_output(c, code);
    }
    factum_store *s;
    int code = cli_open_read(c, &s);
    if (code) return code;
    char *json;
    size_t len;
    int rc = factum_get_stream_metadata(s, stream, &json, &len, NULL);
    if (rc) {
        code = cli_stream_error(c, s, stream, FACTUM_ANY, rc, NULL);
    } else {
        fwrite(json, 1, len, stdout);
        fputc('\n', stdout);
        free(json);
    }
    code = cli_finish_output(c, code);
    return cli_close(c, s, code);
}

/* The result of a write that is one event (metadata, delete, tombstone). */
static void print_one(const char *what, const char *stream, const char *mstream,
                      const factum_append_result *r, int json)
{
    if (!json) {
        printf("%s %s: %s@%llu, position %llu\n", what, stream, mstream, (unsigned long long)r->last_version,
               (unsigned long long)r->last_position);
        return;
    }
    base_buf b = {0};
    int rc = base_buf_append(&b, "{\"stream\":", 10);
    if (!rc) rc = json_write_string(&b, stream, strlen(stream));
    if (!rc)
        rc = base_buf_printf(&b, ",\"version\":%llu,\"position\":%llu}\n",
                             (unsigned long long)r->last_version, (unsigned long long)r->last_position);
    if (!rc) fwrite(b.data, 1, b.len, stdout);
    base_buf_free(&b);
}

static int meta_set(cli_ctx *c, const char *stream, const char *json, int64_t expected, int as_json)
{
    size_t len = strlen(json);
    factum_stream_metadata m;
    json_value *v;
    if (json_parse(json, len, &v)) return cli_usage(c, "the metadata is not valid JSON");
    int obj = v->type == JSON_OBJECT;
    json_free(v);
    if (!obj) return cli_usage(c, "the metadata must be a JSON object");
    if (factum_stream_metadata_parse(json, len, &m))
        return cli_usage(
            c, "the metadata has a $-key of the wrong type ($maxAge, $maxCount, $tb, $cacheControl: "
               "integers >= 0 or null; $acl: an object)");
    if (strlen(stream) > FACTUM_MAX_STREAM_LEN - 2)
        return cli_usage(c, "invalid stream name: its metadata stream '$$...' would be over %d bytes",
                         FACTUM_MAX_STREAM_LEN);
    char *mstream = malloc(strlen(stream) + 3);
    if (!mstream) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    snprintf(mstream, strlen(stream) + 3, "$$%s", stream);
    int code;
    factum_store *s;
    factum_client *cl;
    if (c->server) {
        if (!(code = cli_connect(c, &cl))) {
            factum_append_result res;
            memset(&res, 0, sizeof res);
            int rc = factum_client_set_stream_metadata(cl, stream, expected, json, &res);
            if (rc)
                code = cli_remote_stream_error(c, cl, mstream, expected, rc, &res);
            else
                print_one("set the metadata of", stream, mstream, &res, as_json);
            factum_client_close(cl);
        }
    } else if (!cli_store_present(c) && (expected >= 0 || expected == FACTUM_STREAM_EXISTS)) {
        code = cli_wrong_version(c, NULL, mstream, expected, FACTUM_NO_STREAM);
    } else if (!(code = cli_open_write(c, 0, &s))) {
        factum_append_result res;
        memset(&res, 0, sizeof res);
        int rc = factum_set_stream_metadata(s, stream, expected, json, len, &res);
        if (rc)
            code = cli_stream_error(c, s, mstream, expected, rc, &res);
        else
            print_one("set the metadata of", stream, mstream, &res, as_json);
        code = cli_close(c, s, code);
    }
    free(mstream);
    return cli_finish_output(c, code);
}

int cli_cmd_meta(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, meta_opts, sizeof meta_opts / sizeof meta_opts[0], &a);
    if (code) return code;
    if (a.help) {
        code = cli_help(meta_help);
        goto out;
    }
    if (a.n_pos == 0) {
        code = cli_usage(c, "missing get or set (see --help)");
        goto out;
    }
    const char *sub = a.pos[0];
    if (!strcmp(sub, "get")) {
        c->cmd = "meta get";
        if (cli_has(&a, "expected") || cli_has(&a, "json")) {
            code = cli_usage(c, "--expected and --json apply to meta set only");
            goto out;
        }
        if ((code = cli_want_pos(c, &a, 2, 2, "STREAM")) || (code = cli_check_stream(c, a.pos[1]))) goto out;
        code = meta_get(c, a.pos[1]);
    } else if (!strcmp(sub, "set")) {
        c->cmd = "meta set";
        int64_t expected;
        if ((code = cli_want_pos(c, &a, 3, 3, a.n_pos < 2 ? "STREAM and JSON" : "JSON")) ||
            (code = cli_check_stream(c, a.pos[1])) ||
            (code = cli_parse_expected(c, cli_get(&a, "expected"), &expected)) || (code = cli_need_dir(c)))
            goto out;
        code = meta_set(c, a.pos[1], a.pos[2], expected, cli_has(&a, "json"));
    } else {
        code = cli_usage(c, "unknown subcommand '%s': use get or set", sub);
    }
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

/* ---- delete / tombstone --------------------------------------------- */

static const char delete_help[] =
    "usage: factum delete STREAM [--expected E] [--json]\n"
    "\n"
    "Soft-delete a stream: it reads as not found, and the next append to it continues its numbering\n"
    "(the old events stay hidden). Writes a metadata event to '$$STREAM'.\n"
    "\n"
    "  --expected E   any (default), no-stream, exists, or the stream's current version N\n"
    "  --json         print the result as a JSON object (stream, and the metadata event's position)\n";

static const char tombstone_help[] =
    "usage: factum tombstone STREAM [--expected E] [--json]\n"
    "\n"
    "Delete a stream permanently: afterwards reading it and appending to it fail, forever.\n"
    "\n"
    "  --expected E   any (default), no-stream, exists, or the stream's current version N\n"
    "  --json         print the result as a JSON object (the tombstone's position)\n";

static const cli_opt delete_opts[] = {{"expected", CLI_ARG}, {"json", 0}};

static int delete_cmd(cli_ctx *c, int argc, char **argv, int tombstone)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, delete_opts, sizeof delete_opts / sizeof delete_opts[0], &a);
    if (code) return code;
    int64_t expected;
    if (a.help) {
        code = cli_help(tombstone ? tombstone_help : delete_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "STREAM")) || (code = cli_check_stream(c, a.pos[0])) ||
        (code = cli_parse_expected(c, cli_get(&a, "expected"), &expected)) || (code = cli_need_dir(c)))
        goto out;
    const char *stream = a.pos[0];
    if (strlen(stream) > FACTUM_MAX_STREAM_LEN - 2) {
        code = cli_usage(c, "invalid stream name: its metadata stream '$$...' would be over %d bytes",
                         FACTUM_MAX_STREAM_LEN);
        goto out;
    }
    factum_store *s = NULL;
    factum_client *cl = NULL;
    factum_append_result res;
    memset(&res, 0, sizeof res);
    int rc;
    if (c->server) {
        if ((code = cli_connect(c, &cl))) goto out;
        rc = tombstone ? factum_client_tombstone_stream(cl, stream, expected, &res)
                       : factum_client_delete_stream(cl, stream, expected, &res);
    } else {
        if (!cli_store_present(c) && (expected >= 0 || expected == FACTUM_STREAM_EXISTS)) {
            code = cli_wrong_version(c, NULL, stream, expected, FACTUM_NO_STREAM);
            goto out;
        }
        if ((code = cli_open_write(c, 0, &s))) goto out;
        rc = tombstone ? factum_tombstone_stream(s, stream, expected, &res)
                       : factum_delete_stream(s, stream, expected, &res);
    }
    if (rc && cl) {
        code = cli_remote_stream_error(c, cl, stream, expected, rc, &res);
    } else if (rc) {
        code = cli_stream_error(c, s, stream, expected, rc, &res);
    } else if (cli_has(&a, "json")) {
        printf("{\"stream\":");
        base_buf b = {0};
        if (!json_write_string(&b, stream, strlen(stream))) fwrite(b.data, 1, b.len, stdout);
        base_buf_free(&b);
        printf(",\"position\":%llu}\n", (unsigned long long)res.last_position);
    } else if (tombstone) {
        printf("tombstoned %s at position %llu\n", stream, (unsigned long long)res.last_position);
    } else {
        printf("soft-deleted %s (metadata event at position %llu)\n", stream,
               (unsigned long long)res.last_position);
    }
    if (cl)
        factum_client_close(cl);
    else
        code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

int cli_cmd_delete(cli_ctx *c, int argc, char **argv)
{
    return delete_cmd(c, argc, argv, 0);
}

int cli_cmd_tombstone(cli_ctx *c, int argc, char **argv)
{
    return delete_cmd(c, argc, argv, 1);
}
