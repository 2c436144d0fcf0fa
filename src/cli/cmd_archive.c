/*
 * cmd_archive.c - `factum archive`: one archiver pass on the store in --data
 * (copy its sealed segments to the archive directory, drop the local copies
 * the retention options let go) and its status. A running factumd holds its
 * data directory: its archiver runs by itself (--archive-dir), and
 * POST /admin/archive asks it for a pass now.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char archive_help[] =
    "usage: factum archive [--archive-dir DIR] [--retain-bytes N] [--retain-seconds S] [--keep-local]\n"
    "                      [--throttle BYTES_PER_SEC] [--status] [--json]\n"
    "\n"
    "Copy every sealed log segment of the store to its archive directory (written, fdatasync'd, read back\n"
    "and compared, then named), and drop the local copies that are both older than --retain-seconds and\n"
    "followed by --retain-bytes of the log: their events are then read from the archive. The store\n"
    "remembers its archive directory (the file ARCHIVE in the data directory), so --archive-dir is needed\n"
    "the first time only. A running factumd holds its data directory: it archives by itself with\n"
    "--archive-dir, and POST /admin/archive asks it for a pass now (docs/operations.md \"Archive\").\n"
    "\n"
    "  --archive-dir DIR   the archive (another disk, a mounted object store); the store's segments go\n"
    "                      into DIR/<store uuid>/\n"
    "  --retain-bytes N    keep local copies followed by fewer than N bytes of the log (default 1073741824)\n"
    "  --retain-seconds S  keep local copies whose newest event is younger than S (default 604800: 7 days)\n"
    "  --keep-local        drop nothing: the archive is a second copy\n"
    "  --throttle BPS      write and read back at most BPS bytes per second (default: as fast as it can)\n"
    "  --status            print the status only, without a pass\n"
    "  --json              print the status as one JSON object (docs/http.md, GET /admin/archive)\n";

static const cli_opt archive_opts[] = {{"archive-dir", CLI_ARG},    {"retain-bytes", CLI_ARG},
                                       {"retain-seconds", CLI_ARG}, {"keep-local", 0},
                                       {"status", 0},               {"json", 0},
                                       {"throttle", CLI_ARG}};

/* The archive directory the store recorded ("" if none). */
static void recorded(const char *data_dir, char *out, size_t n)
{
    out[0] = 0;
    char p[4200];
    snprintf(p, sizeof p, "%s/ARCHIVE", data_dir);
    FILE *f = fopen(p, "r");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\r\n")] = 0;
    fclose(f);
}

int cli_cmd_archive(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, archive_opts, sizeof archive_opts / sizeof archive_opts[0], &a);
    if (code) return code;
    factum_store *s = NULL;
    if (a.help) {
        code = cli_help(archive_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, ""))) goto out;
    if (c->server) {
        cli_msg(c, "not available over --server: GET /admin/archive on the server shows its archive, POST asks "
                   "for a pass");
        code = CLI_FAIL;
        goto out;
    }
    if ((code = cli_need_dir(c))) goto out;
    if (!cli_store_present(c)) {
        cli_msg(c, "no store in '%s'", c->data_dir ? c->data_dir : "");
        code = CLI_FAIL;
        goto out;
    }
    factum_options o;
    cli_default_options(&o);
    char rec[4096];
    recorded(c->data_dir, rec, sizeof rec);
    o.archive_dir = cli_get(&a, "archive-dir") ? cli_get(&a, "archive-dir") : rec[0] ? rec : NULL;
    if (!o.archive_dir) {
        cli_msg(c, "the store has no archive yet: give --archive-dir DIR");
        code = CLI_USAGE;
        goto out;
    }
    o.archive_interval_ms = 0; /* this pass only */
    uint64_t v;
    if (cli_get(&a, "retain-bytes")) {
        if ((code = cli_parse_u64(c, "--retain-bytes", cli_get(&a, "retain-bytes"), &v))) goto out;
        o.archive_retain_bytes = v;
    }
    if (cli_get(&a, "retain-seconds")) {
        if ((code = cli_parse_u64(c, "--retain-seconds", cli_get(&a, "retain-seconds"), &v))) goto out;
        o.archive_retain_ms = v > UINT64_MAX / 1000 ? FACTUM_ARCHIVE_KEEP_LOCAL : v * 1000;
    }
    if (cli_get(&a, "throttle") &&
        (code = cli_parse_u64(c, "--throttle", cli_get(&a, "throttle"), &o.archive_throttle_bytes_per_sec)))
        goto out;
    if (cli_has(&a, "keep-local")) o.archive_retain_bytes = o.archive_retain_ms = FACTUM_ARCHIVE_KEEP_LOCAL;
    c->locked_hint = "if a factumd runs on it, it archives by itself with --archive-dir; POST /admin/archive "
                     "asks it for a pass now (docs/operations.md)";
    if ((code = cli_open_write_opts(c, &o, &s))) goto out;
    factum_archive_status st;
    int rc = cli_has(&a, "status") ? factum_archive_get_status(s, &st) : factum_archive_run(s, &st);
    if (cli_has(&a, "json")) {
        char json[FACTUM_ARCHIVE_JSON_MAX];
        factum_archive_status_json(&st, json, sizeof json);
        printf("%s\n", json);
    } else {
        printf("archive %s: %" PRIu64 " sealed segments: %" PRIu64 " not archived, %" PRIu64
               " archived (local kept), %" PRIu64 " archive only; %" PRIu64 " copied now (%" PRIu64
               " bytes), %" PRIu64 " local copies dropped now; local %" PRIu64 " bytes, archived %" PRIu64
               " bytes\n",
               o.archive_dir, st.segments, st.local_only, st.archived, st.archive_only, st.copied, st.bytes_copied,
               st.dropped, st.bytes_local, st.bytes_archived);
    }
    if (rc) {
        cli_msg(c, "archive: %s (nothing was dropped that is not archived; the next pass tries again)",
                factum_strerror(rc));
        code = cli_exit_code(rc);
    }
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
