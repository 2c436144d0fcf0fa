/*
 * cmd_shred.c - crypto-shredding on the store in --data (ADR 0027):
 * `factum shred SUBJECT` deletes a data subject's key, so that its sealed
 * events read as shredded for good; `factum shreds` lists the shreds the
 * store recorded in `$shreds` (--ids: one key id per line, the list
 * `factum restore --shreds FILE` applies again to an older backup). A
 * running factumd holds its data directory: POST /admin/shred shreds there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

static const char shred_help[] =
    "usage: factum --master-key-file F shred SUBJECT [--json]\n"
    "\n"
    "Shred the data subject SUBJECT: its key leaves the store's key file (keys/keystore) for good, the shred\n"
    "is recorded in the stream $shreds, and every read of the subject's events (streams whose metadata says\n"
    "\"$subject\": SUBJECT, or of a category given to --shred-categories, e.g. user-SUBJECT) then returns\n"
    "them with no data and no metadata, marked shredded. Nothing can read them again: not the store, not a\n"
    "projection or read model rebuilt from them, not a backup restored with the shreds made since it\n"
    "('factum shreds --ids' and 'factum restore --shreds'). A running factumd holds its data directory:\n"
    "POST /admin/shred with {\"subject\": SUBJECT} shreds there (docs/operations.md \"Crypto-shredding\").\n"
    "\n"
    "  --json   print the result as one JSON object\n";

static const char shreds_help[] =
    "usage: factum [--master-key-file F] shreds [--ids] [--json]\n"
    "\n"
    "List the shreds recorded in the store's $shreds stream: position, time, key id and subject.\n"
    "\n"
    "  --ids    one key id per line: the file 'factum restore --shreds FILE' applies again to a backup\n"
    "           made before these shreds\n"
    "  --json   one JSON object per line, as recorded\n";

static const cli_opt shred_opts[] = {{"json", 0}};
static const cli_opt shreds_opts[] = {{"json", 0}, {"ids", 0}};

int cli_cmd_shred(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, shred_opts, 1, &a);
    if (code) return code;
    factum_store *s = NULL;
    if (a.help) {
        code = cli_help(shred_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "SUBJECT"))) goto out;
    if ((code = cli_local_only(c, "POST /admin/shred with {\"subject\": ...} on the server"))) goto out;
    c->locked_hint = "if a factumd runs on it, shred with POST /admin/shred (docs/operations.md)";
    if ((code = cli_open_write(c, 0, &s))) goto out;
    uint32_t id = 0;
    int rc = factum_shred(s, a.pos[0], &id);
    if (rc == FACTUM_EKEY) {
        cli_msg(c, "this store has no master key: give --master-key-file F before the command (or set "
                   "FACTUM_MASTER_KEY_FILE)");
        code = CLI_USAGE;
    } else if (rc == FACTUM_ENOTFOUND) {
        cli_msg(c, "no key for subject '%s': nothing of it was sealed, or it was shredded already", a.pos[0]);
        code = CLI_NOT_FOUND;
    } else if (rc) {
        cli_msg(c, "shred: %s", factum_strerror(rc));
        code = cli_exit_code(rc);
    } else if (cli_has(&a, "json")) {
        base_buf b = {0};
        json_write_string(&b, a.pos[0], strlen(a.pos[0]));
        printf("{\"subject\":%.*s,\"keyId\":%u}\n", (int)b.len, (const char *)b.data, id);
        base_buf_free(&b);
    } else {
        printf("shredded subject %s (key %u)\n", a.pos[0], id);
    }
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

int cli_cmd_shreds(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, shreds_opts, 2, &a);
    if (code) return code;
    factum_store *s = NULL;
    if (a.help) {
        code = cli_help(shreds_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, ""))) goto out;
    if ((code = cli_local_only(c, "read the stream $shreds on the server ('factum read $shreds')"))) goto out;
    if ((code = cli_open_read(c, &s))) goto out;
    int ids = cli_has(&a, "ids"), json = cli_has(&a, "json");
    if (ids) printf("# factum shreds of %s: key ids, for factum restore --shreds\n", c->data_dir);
    factum_event ev[128];
    uint64_t from = 0, next = 0;
    for (;;) {
        size_t n = 0;
        cli_page_reader();
        int rc = factum_read_stream(s, FACTUM_SHREDS_STREAM, from, FACTUM_FORWARD, ev, 128, &n, &next);
        if (rc == FACTUM_ENOTFOUND) break;
        if (rc) {
            cli_msg(c, "reading %s: %s", FACTUM_SHREDS_STREAM, factum_strerror(rc));
            code = cli_exit_code(rc);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            json_value *doc = NULL;
            int64_t id = 0;
            const json_value *sub = NULL;
            if (!json_parse((const char *)ev[i].data, ev[i].data_len, &doc) && doc->type == JSON_OBJECT) {
                const json_value *k = json_get(doc, "keyId");
                if (k && json_int64(k, &id)) id = 0;
                sub = json_get(doc, "subject");
            }
            if (json) {
                printf("%.*s\n", (int)ev[i].data_len, (const char *)ev[i].data);
            } else if (ids) {
                if (id > 0) printf("%" PRId64 "\n", id);
            } else {
                char t[32];
                cli_format_time(ev[i].timestamp_ns, t);
                printf("%" PRIu64 "  %s  key %" PRId64 "  %s\n", ev[i].position, t, id,
                       sub && sub->type == JSON_STRING ? sub->str : "(restored)");
            }
            json_free(doc);
        }
        if (!n || next == FACTUM_END) break;
        from = next;
    }
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
