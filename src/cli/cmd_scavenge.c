/*
 * cmd_scavenge.c - `factum scavenge` (factum_scavenge_start on the store in
 * --data, with a progress bar, waiting for its end). A running factumd holds
 * its data directory: its scavenge is POST /admin/scavenge (or the
 * Operations service's StartScavenge).
 */
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char scavenge_help[] =
    "usage: factum scavenge [--seal] [--threshold PCT] [--throttle BYTES_PER_SEC] [--json]\n"
    "\n"
    "Give back the disk space of events that retention and deletes made unreadable ($tb, $maxCount,\n"
    "$maxAge, soft-deleted and tombstoned streams, older metadata): each sealed segment before the scavenge\n"
    "point is rewritten without them and swapped in, while the store stays usable. Each stream keeps its\n"
    "last event (a stub without data where it is unreadable too), its first (a stub), its tombstone and\n"
    "its last metadata. Positions never change; a read from a removed position starts at the next event.\n"
    "The run is recorded in $scavenges and $scavenges-<id>; an interrupted one resumes when the store is\n"
    "next opened. A running factumd holds its data directory: use POST /admin/scavenge on it.\n"
    "\n"
    "  --seal             first roll the log to a new segment, so that the newest data is scavenged too\n"
    "  --threshold PCT    skip segments where less than PCT percent of the bytes would be freed (default 0)\n"
    "  --throttle BPS     read and write at most BPS bytes per second (default: as fast as it can)\n"
    "  --json             print the result as one JSON object (docs/http.md, GET /admin/scavenge)\n";

static const cli_opt scavenge_opts[] = {{"seal", 0}, {"threshold", CLI_ARG}, {"throttle", CLI_ARG}, {"json", 0}};

int cli_cmd_scavenge(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, scavenge_opts, 4, &a);
    if (code) return code;
    factum_store *s = NULL;
    if (a.help) {
        code = cli_help(scavenge_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, ""))) goto out;
    if (c->server) {
        cli_msg(c, "not available over --server: use POST /admin/scavenge on the server");
        code = CLI_FAIL;
        goto out;
    }
    factum_scavenge_options o = {.seal = cli_has(&a, "seal")};
    uint64_t v;
    if (cli_get(&a, "threshold")) {
        if ((code = cli_parse_u64(c, "--threshold", cli_get(&a, "threshold"), &v))) goto out;
        if (v > 100) {
            cli_msg(c, "--threshold is a percentage: 0 to 100");
            code = CLI_USAGE;
            goto out;
        }
        o.threshold_percent = (unsigned)v;
    }
    if (cli_get(&a, "throttle") &&
        (code = cli_parse_u64(c, "--throttle", cli_get(&a, "throttle"), &o.throttle_bytes_per_sec)))
        goto out;
    if (!cli_store_present(c)) {
        cli_msg(c, "no store in '%s'", c->data_dir ? c->data_dir : "");
        code = CLI_FAIL;
        goto out;
    }
    c->locked_hint = "if a factumd runs on it, start its scavenge with POST /admin/scavenge (docs/operations.md)";
    if ((code = cli_open_write(c, 0, &s))) goto out;
    char id[37];
    int rc = factum_scavenge_start(s, &o, id);
    factum_scavenge_status st;
    if (rc == FACTUM_EEXISTS) {
        /* One resumed at the open (interrupted earlier): follow that one. */
        rc = 0;
    }
    if (rc) {
        cli_msg(c, "scavenge: %s", factum_strerror(rc));
        code = cli_exit_code(rc);
        goto close;
    }
    cli_progress p = {0};
    while (!factum_scavenge_get_status(s, id, &st) && st.state == FACTUM_SCAVENGE_RUNNING) {
        if (st.segments && !p.total) cli_progress_start(&p, "segments", st.segments);
        if (p.total) cli_progress_update(&p, st.segment);
        usleep(100 * 1000);
    }
    factum_scavenge_wait(s, id, &st);
    if (p.total) cli_progress_update(&p, st.segment);
    cli_progress_end(&p);
    if (cli_has(&a, "json")) {
        char json[FACTUM_SCAVENGE_JSON_MAX];
        factum_scavenge_status_json(&st, json, sizeof json);
        printf("%s\n", json);
    } else {
        static const char *const state[] = {"?", "running", "completed", "stopped", "failed"};
        printf("scavenge %s %s: %" PRIu64 " of %" PRIu64 " segments compacted (%" PRIu64 " skipped), %" PRIu64
               " events removed, %" PRIu64 " bytes freed (%" PRIu64 " -> %" PRIu64 ")\n",
               st.id, st.state >= 1 && st.state <= 4 ? state[st.state] : "?", st.compacted, st.segments, st.skipped,
               st.events_removed, st.bytes_before > st.bytes_after ? st.bytes_before - st.bytes_after : 0,
               st.bytes_before, st.bytes_after);
    }
    if (st.state == FACTUM_SCAVENGE_FAILED) {
        cli_msg(c, "scavenge failed: %s", factum_strerror(st.error));
        code = cli_exit_code(st.error);
    }
close:
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
