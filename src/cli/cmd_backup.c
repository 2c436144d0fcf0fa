/*
 * cmd_backup.c - `factum backup DEST` (factum_backup of the store in --data)
 * and `factum restore BACKUP` (factum_restore into --data). A running
 * factumd holds its data directory: its backup is POST /admin/backup.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char backup_help[] =
    "usage: factum backup DEST [--no-verify] [--json]\n"
    "\n"
    "Copy the store in --data into the directory DEST (created if missing; empty, or an earlier backup of\n"
    "the same store, which makes this one incremental), up to its last acknowledged position. Segment files\n"
    "are hard-linked where DEST is on the same file system (they are never written again) and copied\n"
    "otherwise; the last one is copied up to that position. DEST then gets a BACKUP descriptor: the\n"
    "position, and the hash chain's head there. The copy is verified (every checksum and the hash chain)\n"
    "unless --no-verify. The index is not copied: a restored store rebuilds it when first opened.\n"
    "A running factumd holds its data directory: back it up with POST /admin/backup?destination=DIR.\n"
    "\n"
    "  --no-verify  skip the verification of the copy\n"
    "  --json       print the result as one JSON object\n";

static const char restore_help[] =
    "usage: factum restore BACKUP [--shreds FILE] [--no-verify] [--json]\n"
    "\n"
    "Restore the backup in the directory BACKUP (made by 'factum backup' or POST /admin/backup) into "
    "--data,\n"
    "which must be missing or empty: its files are copied, the store is opened once there (rebuilding its\n"
    "index) and must end at the backup's position with the backup's hash chain head, then it is verified\n"
    "unless --no-verify.\n"
    "\n"
    "With crypto-shredding, the restored store is opened with the master key (--master-key-file, before the\n"
    "command, or FACTUM_MASTER_KEY_FILE) and every shred it recorded in $shreds is applied again before it\n"
    "is used; --shreds FILE applies those of a newer list too ('factum shreds --ids' on the live store),\n"
    "so that a subject shredded after the backup stays shredded.\n"
    "\n"
    "  --shreds FILE  key ids to shred again, one per line (factum shreds --ids)\n"
    "  --no-verify    skip the verification\n"
    "  --json         print the result as one JSON object\n";

static const cli_opt backup_opts[] = {{"no-verify", 0}, {"json", 0}};
static const cli_opt restore_opts[] = {{"no-verify", 0}, {"json", 0}, {"shreds", CLI_ARG}};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    cli_progress *p = ctx;
    if (!p->total) cli_progress_start(p, "segments", total);
    cli_progress_update(p, done);
    return 0;
}

static void print_report(const factum_backup_report *r, int json, const char *what, const char *dir)
{
    char head[FACTUM_CHAIN_JSON_MAX];
    factum_chain_head_json(&r->head, head, sizeof head);
    if (json) {
        printf("{\"position\":%" PRIu64 ",\"logEnd\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"linked\":%" PRIu64
               ",\"copied\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"bytesCopied\":%" PRIu64
               ",\"verified\":%s,\"chainHead\":%s}\n",
               r->position, r->log_end, r->segments, r->linked, r->copied, r->kept, r->bytes_copied,
               r->verified ? "true" : "false", head);
        return;
    }
    printf("%s %s: positions 1..%" PRIu64 ", %" PRIu64 " segment%s", what, dir, r->position, r->segments,
           r->segments == 1 ? "" : "s");
    if (r->linked || r->copied || r->kept)
        printf(" (%" PRIu64 " linked, %" PRIu64 " copied, %" PRIu64 " kept from the last backup)", r->linked,
               r->copied, r->kept);
    printf("\nchain head %s\n%s\n", head, r->verified ? "verified" : "not verified (--no-verify)");
}

static int explain(cli_ctx *c, int rc, const char *dir, int restoring)
{
    if (rc == FACTUM_EEXISTS && restoring)
        cli_msg(c, "'%s' is not empty: restore into a missing or empty directory", dir);
    else if (rc == FACTUM_EEXISTS)
        cli_msg(c, "'%s' holds something else than a backup of this store: give a missing or empty directory",
                dir);
    else if (rc == FACTUM_ENOTSTORE && restoring)
        cli_msg(c, "'%s' holds no complete backup (no BACKUP descriptor)", dir);
    else if (rc == FACTUM_ECORRUPT)
        cli_msg(c, "%s: the copy does not verify: %s", dir, factum_strerror(rc));
    else
        cli_msg(c, "%s %s: %s", restoring ? "restore from" : "backup into", dir, factum_strerror(rc));
    return cli_exit_code(rc);
}

int cli_cmd_backup(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, backup_opts, 2, &a);
    if (code) return code;
    factum_store *s = NULL;
    if (a.help) {
        code = cli_help(backup_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "DEST"))) goto out;
    if (c->server) {
        cli_msg(c, "not available over --server: use POST /admin/backup?destination=DIR on the server");
        code = CLI_FAIL;
        goto out;
    }
    c->locked_hint =
        "if a factumd runs on it, back it up with POST /admin/backup?destination=NAME (docs/operations.md)";
    if ((code = cli_open_read(c, &s))) goto out;
    cli_progress p = {0};
    factum_backup_options o = {cli_has(&a, "no-verify"), on_progress, &p, NULL, NULL};
    factum_backup_report r;
    int rc = factum_backup(s, a.pos[0], &o, &r);
    cli_progress_end(&p);
    if (rc)
        code = explain(c, rc, a.pos[0], 0);
    else
        print_report(&r, cli_has(&a, "json"), "backed up into", a.pos[0]);
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

int cli_cmd_restore(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, restore_opts, 3, &a);
    if (code) return code;
    if (a.help) {
        code = cli_help(restore_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "BACKUP")) ||
        (code = cli_local_only(c, "restore writes a data directory (give --data DIR)")) ||
        (code = cli_need_dir(c)))
        goto out;
    cli_progress p = {0};
    const char *mk = getenv("FACTUM_MASTER_KEY_FILE");
    factum_backup_options o = {cli_has(&a, "no-verify"), on_progress, &p, mk && *mk ? mk : NULL,
                               cli_get(&a, "shreds")};
    factum_backup_report r;
    int rc = factum_restore(a.pos[0], c->data_dir, &o, &r);
    cli_progress_end(&p);
    if (rc && o.shreds_file && (rc == FACTUM_EINVAL || rc == -ENOENT || rc == -EACCES)) {
        cli_msg(c, "--shreds %s: %s", o.shreds_file,
                rc == FACTUM_EINVAL ? "not a list of key ids, one per line ('factum shreds --ids')" : strerror(-rc));
        code = CLI_FAIL;
    } else if (rc == FACTUM_EKEY) {
        cli_msg(c, "the backup holds sealed data: give the store's master key (--master-key-file F before the "
                   "command, or FACTUM_MASTER_KEY_FILE)");
        code = CLI_FAIL;
    } else if (rc)
        code = explain(c, rc, rc == FACTUM_EEXISTS ? c->data_dir : a.pos[0], 1);
    else
        print_report(&r, cli_has(&a, "json"), "restored into", c->data_dir);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
