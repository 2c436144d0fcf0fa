/*
 * cmd_projection.c - `factum projection`: list, show, create, update,
 * enable, disable, reset, delete projections and print their state and
 * result, on a server (--server: the Projections service through the C
 * client) or on a local data directory (the projection manager of
 * factum.h, opened on the store for the one command).
 *
 * Locally, opening the manager starts the enabled projections in this
 * process until the command ends (they stop at their last committed batch
 * and go on at the next open, PRJ-3); --wait lets them catch up with the
 * log first. The store must not be in use by a server (it is locked).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "cli/cli.h"

static const char projection_help[] =
    "usage: factum projection list [--mode MODE] [--json]\n"
    "       factum projection show NAME [--json]\n"
    "       factum projection state NAME [--partition P] [--as-of TIME | --as-of-position P]\n"
    "       factum projection result NAME [--partition P] [--as-of TIME | --as-of-position P]\n"
    "       factum projection create NAME (--query JS | --file FILE) [--mode MODE] [--emit]\n"
    "                                [--track-emitted-streams] [--wait]\n"
    "       factum projection update NAME [--query JS | --file FILE] [--emit | --no-emit]\n"
    "       factum projection enable NAME [--wait]\n"
    "       factum projection disable NAME\n"
    "       factum projection reset NAME [--wait]\n"
    "       factum projection delete NAME [--delete-emitted-streams] [--delete-state-stream]\n"
    "                                [--delete-checkpoint-stream]\n"
    "\n"
    "Projections on a server (--server; it must run them: factumd --run-projections System or All) or\n"
    "in a data directory (--data; opening it runs the enabled projections in this process until the\n"
    "command ends). The five system projections ($streams, $by_category, $by_event_type,\n"
    "$by_correlation_id, $stream_by_category) are there from the start, stopped; a system projection's\n"
    "query is its configuration (e.g. 'last\\n-' for $by_category). docs/cli.md has the details.\n"
    "\n"
    "  list           every projection: name, status, mode, position read, progress, events processed\n"
    "  show           one projection's status in full (and its query, on a data directory)\n"
    "  state, result  the projection's state or result as JSON ({} when it has none)\n"
    "  create         a JavaScript projection from --query or --file (- for stdin), started at once;\n"
    "                 over --server a one-time projection is named by the server (NAME is ignored)\n"
    "  update         replace the query and/or the emit option; a running projection restarts with it\n"
    "  enable         start it from its last checkpoint (also after a fault)\n"
    "  disable        stop it once its writes in flight are done\n"
    "  reset          start it again from the beginning of the log, its output truncated\n"
    "  delete         delete a stopped projection (disable it first), and with the flags what it wrote\n"
    "\n"
    "  --mode MODE    list: continuous, one-time, transient or all (default all);\n"
    "                 create: continuous (default), one-time or transient\n"
    "  --emit         create, update: the projection may emit() and linkTo() (--no-emit: it may not)\n"
    "  --track-emitted-streams  create: list the streams it emits to (needs --emit)\n"
    "  --partition P  state, result: of partition P (partitionBy, foreachStream)\n"
    "  --as-of TIME   state, result: as they were at TIME (RFC 3339 or a date), computed afresh by\n"
    "                 running the projection's current query over the log up to then (nothing is\n"
    "                 written; --timeout MS bounds it, default 30000); --as-of-position P: as they were\n"
    "                 after global position P (JavaScript projections; docs/temporal.md)\n"
    "  --wait         wait until the projection has caught up with the log (--timeout MS, default 30000)\n"
    "  --json         list, show: one JSON object per projection, with KurrentDB's field names\n"
    "\n"
    "Exit codes: 4 when there is no projection of that name; 1 for other failures.\n";

static const cli_opt projection_opts[] = {
    {"mode", CLI_ARG},
    {"json", 0},
    {"partition", CLI_ARG},
    {"query", CLI_ARG},
    {"file", CLI_ARG},
    {"emit", 0},
    {"no-emit", 0},
    {"track-emitted-streams", 0},
    {"wait", 0},
    {"timeout", CLI_ARG},
    {"delete-emitted-streams", 0},
    {"delete-state-stream", 0},
    {"delete-checkpoint-stream", 0},
    {"as-of", CLI_ARG},
    {"as-of-position", CLI_ARG},
};

/* Where the command works: a server, or a store with its manager. */
typedef struct target {
    cli_ctx *c;
    factum_client *cl;
    factum_store *s;
    factum_projections *m;
} target;

static int target_open(cli_ctx *c, target *t, int need_store)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    if (c->server) return cli_connect(c, &t->cl);
    int code = cli_need_dir(c);
    if (code) return code;
    if (need_store && !cli_store_present(c)) {
        cli_msg(c, "no factum store in '%s' (the first write creates it)", c->data_dir);
        return CLI_FAIL;
    }
    if ((code = cli_open_write(c, 0, &t->s))) return code;
    factum_projections_options po;
    factum_projections_options_init(&po);
    int rc = factum_projections_open(t->s, &po, &t->m);
    if (rc) {
        code = cli_fail(c, rc, "opening the projections of '%s'", c->data_dir);
        return cli_close(c, t->s, code);
    }
    return CLI_OK;
}

static int target_close(target *t, int code)
{
    if (t->cl) factum_client_close(t->cl);
    if (t->m) factum_projections_close(t->m);
    if (t->s) code = cli_close(t->c, t->s, code);
    return code;
}

/* Report rc of what was done to projection `name`. */
static int target_fail(target *t, int rc, const char *what, const char *name)
{
    if (rc == FACTUM_ENOTFOUND) {
        cli_msg(t->c, "no projection '%s'", name);
        return CLI_NOT_FOUND;
    }
    if (t->cl) return cli_remote_fail(t->c, t->cl, rc, "%s '%s'", what, name);
    return cli_fail(t->c, rc, "%s '%s'", what, name);
}

/* ---- statuses ----------------------------------------------------------- */

static const char *mode_text(int mode)
{
    switch (mode) {
    case FACTUM_PROJECTION_ONE_TIME: return "OneTime";
    case FACTUM_PROJECTION_TRANSIENT: return "Transient";
    default: return "Continuous";
    }
}

/* KurrentDB's status text: the server's as it sent it (the client leaves
 * it in `handler`), locally made the way KurrentDB makes it. */
static void status_text(const target *t, const factum_projection_status *st, char *buf, size_t n)
{
    if (t->cl) {
        snprintf(buf, n, "%s", st->handler ? st->handler : "");
        return;
    }
    const char *en = st->enabled ? " (Enabled)" : "";
    switch (st->state) {
    case FACTUM_PROJECTION_RUNNING: snprintf(buf, n, "Running"); break;
    case FACTUM_PROJECTION_STOPPING: snprintf(buf, n, "Stopping"); break;
    case FACTUM_PROJECTION_COMPLETED: snprintf(buf, n, "Completed"); break;
    case FACTUM_PROJECTION_FAULTED: snprintf(buf, n, "Faulted%s", en); break;
    default: snprintf(buf, n, "Stopped%s", en);
    }
}

typedef struct print_ctx {
    target *t;
    int json, full, header;
    const char *query; /* show, locally */
} print_ctx;

static int print_status(void *arg, const factum_projection_status *st)
{
    print_ctx *p = arg;
    char status[96];
    status_text(p->t, st, status, sizeof status);
    if (p->json) {
        base_buf b = {0};
        int rc = base_buf_append(&b, "{\"name\":", 8);
        if (!rc) rc = json_write_string(&b, st->name, strlen(st->name));
        if (!rc) rc = base_buf_append(&b, ",\"status\":", 10);
        if (!rc) rc = json_write_string(&b, status, strlen(status));
        if (!rc)
            rc = base_buf_printf(
                &b,
                ",\"mode\":\"%s\",\"enabled\":%s,\"position\":%" PRIu64 ",\"lastCheckpoint\":%" PRIu64
                ",\"progress\":%.1f,\"eventsProcessedAfterRestart\":%" PRIu64 ",\"epoch\":%" PRId64
                ",\"version\":%" PRId64 ",\"writesInProgress\":%" PRIu32 ",\"bufferedEvents\":%" PRIu32
                ",\"partitionsCached\":%" PRIu32 ",\"stateReason\":",
                mode_text(st->mode), st->enabled ? "true" : "false", st->position, st->checkpoint,
                st->progress, st->events_processed, st->epoch, st->version, st->writes_in_flight,
                st->buffered_events, st->partitions_cached);
        if (!rc) rc = json_write_string(&b, st->reason, strlen(st->reason));
        if (!rc && p->query) {
            rc = base_buf_append(&b, ",\"query\":", 9);
            if (!rc) rc = json_write_string(&b, p->query, strlen(p->query));
        }
        if (!rc) rc = base_buf_append(&b, "}\n", 2);
        if (!rc) fwrite(b.data, 1, b.len, stdout);
        base_buf_free(&b);
        return rc;
    }
    if (p->full) {
        printf("%-22s %s\n", "name", st->name);
        printf("%-22s %s\n", "status", status);
        printf("%-22s %s\n", "mode", mode_text(st->mode));
        printf("%-22s %s\n", "enabled", st->enabled ? "yes" : "no");
        printf("%-22s %" PRIu64 "\n", "position", st->position);
        printf("%-22s %" PRIu64 "\n", "last checkpoint", st->checkpoint);
        printf("%-22s %.1f%%\n", "progress", st->progress);
        printf("%-22s %" PRIu64 "\n", "events processed", st->events_processed);
        if (!p->t->cl) {
            printf("%-22s %" PRIu64 "\n", "events written", st->events_emitted);
            printf("%-22s %" PRIu64 "\n", "lag events", st->lag_events);
            printf("%-22s %.3f\n", "lag seconds", (double)st->lag_ns / 1e9);
            printf("%-22s %.0f\n", "events per second", st->events_per_second);
        }
        printf("%-22s %" PRId64 "\n", "epoch", st->epoch);
        printf("%-22s %" PRId64 "\n", "version", st->version);
        printf("%-22s %" PRIu32 "\n", "writes in progress", st->writes_in_flight);
        printf("%-22s %" PRIu32 "\n", "buffered events", st->buffered_events);
        printf("%-22s %" PRIu32 "\n", "partitions cached", st->partitions_cached);
        if (st->reason[0]) printf("%-22s %s\n", "reason", st->reason);
        if (p->query) printf("%-22s %s\n", "query", p->query);
        return 0;
    }
    if (!p->header) {
        printf("%-24s %-18s %-10s %12s %8s %12s\n", "NAME", "STATUS", "MODE", "POSITION", "PROGRESS",
               "EVENTS");
        p->header = 1;
    }
    printf("%-24s %-18s %-10s %12" PRIu64 " %7.1f%% %12" PRIu64 "\n", st->name, status, mode_text(st->mode),
           st->position, st->progress, st->events_processed);
    if (st->state == FACTUM_PROJECTION_FAULTED && st->reason[0]) printf("  %s\n", st->reason);
    return 0;
}

static int parse_mode(cli_ctx *c, const char *text, int allow_all, int *out)
{
    if (!text) {
        *out = allow_all ? -1 : FACTUM_PROJECTION_CONTINUOUS;
        return CLI_OK;
    }
    if (!strcmp(text, "continuous")) *out = FACTUM_PROJECTION_CONTINUOUS;
    else if (!strcmp(text, "one-time") || !strcmp(text, "onetime")) *out = FACTUM_PROJECTION_ONE_TIME;
    else if (!strcmp(text, "transient")) *out = FACTUM_PROJECTION_TRANSIENT;
    else if (allow_all && !strcmp(text, "all")) *out = -1;
    else
        return cli_usage(c, "--mode '%s': use continuous, one-time, transient%s", text,
                         allow_all ? " or all" : "");
    return CLI_OK;
}

typedef struct mode_filter {
    int mode;
    print_ctx *p;
} mode_filter;

static int print_if_mode(void *arg, const factum_projection_status *st)
{
    mode_filter *f = arg;
    if (f->mode >= 0 && st->mode != f->mode) return 0;
    return print_status(f->p, st);
}

static int cmd_list(target *t, const cli_args *a)
{
    int mode = 0, code;
    if ((code = parse_mode(t->c, cli_get(a, "mode"), 1, &mode))) return code;
    print_ctx p = {t, cli_has(a, "json"), 0, 0, NULL};
    int rc;
    if (t->cl) {
        rc = factum_client_projection_list(t->cl, NULL, mode, print_status, &p);
    } else {
        mode_filter f = {mode, &p};
        rc = factum_projections_each(t->m, print_if_mode, &f);
    }
    if (rc) return t->cl ? cli_remote_fail(t->c, t->cl, rc, "listing the projections")
                         : cli_fail(t->c, rc, "listing the projections");
    if (!p.json && !p.header) printf("no projections\n");
    return CLI_OK;
}

static int cmd_show(target *t, const cli_args *a, const char *name)
{
    print_ctx p = {t, cli_has(a, "json"), 1, 0, NULL};
    int rc;
    char *query = NULL;
    if (t->cl) {
        rc = factum_client_projection_list(t->cl, name, -1, print_status, &p);
    } else {
        factum_projection_status st;
        rc = factum_projection_get_status(t->m, name, &st);
        if (!rc && !(rc = factum_projection_get_query(t->m, name, &query))) {
            p.query = query;
            rc = print_status(&p, &st);
        }
    }
    free(query);
    return rc ? target_fail(t, rc, "showing projection", name) : CLI_OK;
}

/* state/result --as-of TIME | --as-of-position P: a replay in this process
 * (factum_projection_state_asof) or on the server (the name
 * "$asof/NAME?time=T|position=P", docs/protocol.md). */
static int cmd_state_asof(target *t, const cli_args *a, const char *name, int result, char **json, size_t *len,
                          int *rc)
{
    const char *at = cli_get(a, "as-of"), *pos_text = cli_get(a, "as-of-position");
    const char *partition = cli_get(a, "partition");
    if (at && pos_text) return cli_usage(t->c, "give --as-of or --as-of-position, not both");
    int64_t at_ns = 0;
    uint64_t pos = 0;
    if (at && factum_time_parse(at, strlen(at), &at_ns))
        return cli_usage(t->c, "--as-of: '%s' is not an RFC 3339 time (2026-03-15T10:00:00Z) or a date (2026-03-15)",
                         at);
    int code;
    if (pos_text && (code = cli_parse_u64(t->c, "--as-of-position", pos_text, &pos))) return code;
    uint64_t timeout = 30000;
    if (cli_get(a, "timeout") && (code = cli_parse_u64(t->c, "--timeout", cli_get(a, "timeout"), &timeout)))
        return code;
    if (t->cl) {
        size_t n = strlen(name) + (at ? strlen(at) : 24) + 32;
        char *vname = malloc(n);
        if (!vname) return cli_fail(t->c, -ENOMEM, "reading the state of projection '%s'", name);
        if (at) snprintf(vname, n, "$asof/%s?time=%s", name, at);
        else snprintf(vname, n, "$asof/%s?position=%" PRIu64, name, pos);
        *rc = result ? factum_client_projection_result(t->cl, vname, partition, json, len)
                     : factum_client_projection_state(t->cl, vname, partition, json, len);
        free(vname);
        return CLI_OK;
    }
    if (at && (*rc = factum_position_at(t->s, at_ns, &pos))) return CLI_OK;
    factum_projection_asof_options o;
    factum_projection_asof_options_init(&o);
    o.time_limit_ms = timeout > 600000 ? 600000 : (uint32_t)timeout;
    factum_projection_asof r;
    char err[512] = "";
    *rc = factum_projection_state_asof(t->m, name, partition, pos, &o, &r, err, sizeof err);
    if (*rc == FACTUM_ENOTFOUND) return CLI_OK;
    if (*rc) {
        cli_msg(t->c, "%s of projection '%s' as of %s: %s", result ? "the result" : "the state", name,
                at ? at : pos_text, err[0] ? err : factum_strerror(*rc));
        return CLI_FAIL;
    }
    if (result) {
        *json = r.result, *len = r.result_len;
        r.result = NULL;
    } else {
        *json = r.state, *len = r.state_len;
        r.state = NULL;
    }
    factum_projection_asof_free(&r);
    return CLI_OK;
}

static int cmd_state(target *t, const cli_args *a, const char *name, int result)
{
    const char *partition = cli_get(a, "partition");
    char *json = NULL;
    size_t len = 0;
    int rc;
    if (cli_get(a, "as-of") || cli_get(a, "as-of-position")) {
        int code = cmd_state_asof(t, a, name, result, &json, &len, &rc);
        if (code) return code;
    } else if (t->cl)
        rc = result ? factum_client_projection_result(t->cl, name, partition, &json, &len)
                    : factum_client_projection_state(t->cl, name, partition, &json, &len);
    else
        rc = result ? factum_projection_get_result(t->m, name, partition, &json, &len)
                    : factum_projection_get_state(t->m, name, partition, &json, &len);
    if (rc)
        return target_fail(
            t, rc, result ? "reading the result of projection" : "reading the state of projection", name);
    /* As the server answers a projection without one: an empty object. */
    if (len) fwrite(json, 1, len, stdout);
    else fputs("{}", stdout);
    putchar('\n');
    free(json);
    return CLI_OK;
}

/* The query text of --query or --file (- for stdin) into *out (malloc'd). */
static int read_query(cli_ctx *c, const cli_args *a, int required, char **out)
{
    const char *q = cli_get(a, "query"), *file = cli_get(a, "file");
    *out = NULL;
    if (q && file) return cli_usage(c, "give --query or --file, not both");
    if (q) {
        if (!(*out = strdup(q))) {
            cli_msg(c, "out of memory");
            return CLI_FAIL;
        }
        return CLI_OK;
    }
    if (!file)
        return required ? cli_usage(c, "the query is missing: give --query JS or --file FILE") : CLI_OK;
    FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
    if (!f) {
        cli_msg(c, "cannot read '%s': %s", file, strerror(errno));
        return CLI_FAIL;
    }
    base_buf b = {0};
    char buf[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0) rc = base_buf_append(&b, buf, n);
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (!rc) rc = base_buf_append(&b, "", 1);
    if (rc || err) {
        base_buf_free(&b);
        cli_msg(c, "cannot read '%s'%s", file, rc ? ": out of memory" : "");
        return CLI_FAIL;
    }
    if (strlen((char *)b.data) != b.len - 1) {
        base_buf_free(&b);
        return cli_usage(c, "'%s' holds a NUL byte: not a script", file);
    }
    *out = (char *)b.data;
    return CLI_OK;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct wait_probe {
    factum_projection_status st;
    char reason[sizeof ((factum_projection_status *)0)->reason];
    int seen;
} wait_probe;

static int probe_cb(void *arg, const factum_projection_status *st)
{
    wait_probe *w = arg;
    w->st = *st;
    w->seen = 1;
    snprintf(w->reason, sizeof w->reason, "%s", st->reason);
    return 0;
}

/* --wait: until `name` has handled the log up to its end as it is now. */
static int wait_caught_up(target *t, const char *name, int timeout_ms)
{
    if (!t->cl) {
        factum_stats fs;
        int rc = factum_store_get_stats(t->s, &fs);
        if (!rc) rc = factum_projection_wait(t->m, name, fs.last_position, timeout_ms);
        if (rc == 1) return CLI_OK;
        if (rc == FACTUM_EFAULTED) {
            factum_projection_status st;
            factum_projection_get_status(t->m, name, &st);
            cli_msg(t->c, "projection '%s' faulted: %s", name, st.reason);
            return CLI_FAIL;
        }
        if (rc) return target_fail(t, rc, "waiting for projection", name);
        cli_msg(t->c, "projection '%s' did not catch up within %d ms (is it enabled?)", name, timeout_ms);
        return CLI_FAIL;
    }
    /* Over the network: its progress (position read / last position) at
     * 100 while it runs, polled. */
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        wait_probe w;
        memset(&w, 0, sizeof w);
        int rc = factum_client_projection_list(t->cl, name, -1, probe_cb, &w);
        if (rc) return target_fail(t, rc, "waiting for projection", name);
        if (w.seen && w.st.state == FACTUM_PROJECTION_FAULTED) {
            cli_msg(t->c, "projection '%s' faulted: %s", name, w.reason);
            return CLI_FAIL;
        }
        if (w.seen && w.st.state == FACTUM_PROJECTION_RUNNING && w.st.progress >= 100.0 &&
            !w.st.writes_in_flight)
            return CLI_OK;
        if (now_ms() >= end) {
            cli_msg(t->c, "projection '%s' did not catch up within %d ms", name, timeout_ms);
            return CLI_FAIL;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int parse_timeout(cli_ctx *c, const cli_args *a, int *out)
{
    uint64_t v = 30000;
    const char *text = cli_get(a, "timeout");
    if (text && cli_parse_u64(c, "--timeout", text, &v)) return CLI_USAGE;
    *out = v > INT32_MAX ? INT32_MAX : (int)v;
    return CLI_OK;
}

static int cmd_create(target *t, const cli_args *a, const char *name)
{
    int mode = 0, code, timeout;
    if ((code = parse_mode(t->c, cli_get(a, "mode"), 0, &mode)) || (code = parse_timeout(t->c, a, &timeout)))
        return code;
    char *query;
    if ((code = read_query(t->c, a, 1, &query))) return code;
    factum_projection_def d;
    factum_projection_def_init(&d);
    d.name = name;
    d.query = query;
    d.mode = mode;
    d.enabled = 1;
    d.emit_enabled = cli_has(a, "emit");
    d.track_emitted_streams = cli_has(a, "track-emitted-streams");
    int rc =
        t->cl ? factum_client_projection_create(t->cl, &d) : factum_projection_create(t->m, &d, NULL, NULL);
    free(query);
    if (rc == FACTUM_EEXISTS) {
        cli_msg(t->c, "a projection '%s' exists already", name);
        return CLI_FAIL;
    }
    if (rc) return target_fail(t, rc, "creating projection", name);
    if (cli_has(a, "wait") && mode != FACTUM_PROJECTION_ONE_TIME) return wait_caught_up(t, name, timeout);
    return CLI_OK;
}

static int cmd_update(target *t, const cli_args *a, const char *name)
{
    int emit = cli_has(a, "emit") ? 1 : cli_has(a, "no-emit") ? 0 : -1, code;
    if (cli_has(a, "emit") && cli_has(a, "no-emit"))
        return cli_usage(t->c, "give --emit or --no-emit, not both");
    char *query;
    if ((code = read_query(t->c, a, 0, &query))) return code;
    if (!query && emit < 0)
        return cli_usage(t->c, "nothing to update: give --query JS, --file FILE, --emit or --no-emit");
    int rc = t->cl ? factum_client_projection_update(t->cl, name, query, emit)
                   : factum_projection_update(t->m, name, query, emit, NULL, NULL);
    free(query);
    return rc ? target_fail(t, rc, "updating projection", name) : CLI_OK;
}

static int cmd_command(target *t, const cli_args *a, const char *name, const char *verb)
{
    int code, timeout;
    if ((code = parse_timeout(t->c, a, &timeout))) return code;
    int rc;
    if (!strcmp(verb, "enable"))
        rc = t->cl ? factum_client_projection_enable(t->cl, name)
                   : factum_projection_enable(t->m, name, NULL, NULL);
    else if (!strcmp(verb, "disable"))
        rc = t->cl ? factum_client_projection_disable(t->cl, name)
                   : factum_projection_disable(t->m, name, NULL, NULL);
    else
        rc = t->cl ? factum_client_projection_reset(t->cl, name)
                   : factum_projection_reset(t->m, name, NULL, NULL);
    if (rc) {
        const char *what = !strcmp(verb, "enable")    ? "enabling projection"
                           : !strcmp(verb, "disable") ? "disabling projection"
                                                      : "resetting projection";
        return target_fail(t, rc, what, name);
    }
    if (cli_has(a, "wait") && strcmp(verb, "disable")) return wait_caught_up(t, name, timeout);
    return CLI_OK;
}

static int cmd_delete(target *t, const cli_args *a, const char *name)
{
    unsigned flags = 0;
    if (cli_has(a, "delete-emitted-streams")) flags |= FACTUM_PROJECTION_DELETE_EMITTED_STREAMS;
    if (cli_has(a, "delete-state-stream")) flags |= FACTUM_PROJECTION_DELETE_STATE_STREAM;
    if (cli_has(a, "delete-checkpoint-stream")) flags |= FACTUM_PROJECTION_DELETE_CHECKPOINT_STREAM;
    int rc = t->cl ? factum_client_projection_delete(t->cl, name, flags)
                   : factum_projection_delete(t->m, name, flags, NULL, NULL);
    if (rc == FACTUM_EBADSTATE) {
        cli_msg(t->c, "projection '%s' is running: disable it first", name);
        return CLI_FAIL;
    }
    if (rc == FACTUM_EINVAL && name[0] == '$') {
        cli_msg(t->c, "'%s' is a system projection: it cannot be deleted (disable it)", name);
        return CLI_FAIL;
    }
    return rc ? target_fail(t, rc, "deleting projection", name) : CLI_OK;
}

int cli_cmd_projection(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code =
        cli_parse(c, argc, argv, projection_opts, sizeof projection_opts / sizeof projection_opts[0], &a);
    if (code) return code;
    if (a.help) {
        code = cli_help(projection_help);
        goto out;
    }
    if (a.n_pos == 0) {
        code = cli_usage(c, "missing a subcommand (see --help)");
        goto out;
    }
    static const char *const subs[] = {"list",   "show",    "state",  "result", "create",
                                       "update", "enable", "disable", "reset",  "delete"};
    const char *sub = a.pos[0];
    size_t k = 0;
    while (k < sizeof subs / sizeof *subs && strcmp(subs[k], sub)) k++;
    if (k == sizeof subs / sizeof *subs) {
        code = cli_usage(c, "unknown subcommand '%s' (see --help)", sub);
        goto out;
    }
    char cmd[32];
    snprintf(cmd, sizeof cmd, "projection %s", sub);
    c->cmd = cmd;
    int is_list = !strcmp(sub, "list"), is_update = !strcmp(sub, "update");
    if ((code = cli_want_pos(c, &a, is_list ? 1 : 2, is_list ? 1 : 2, "NAME"))) goto out;
    const char *name = is_list ? NULL : a.pos[1];
    int reading = is_list || !strcmp(sub, "show") || !strcmp(sub, "state") || !strcmp(sub, "result");
    target t;
    if ((code = target_open(c, &t, reading))) goto out;
    if (is_list) code = cmd_list(&t, &a);
    else if (!strcmp(sub, "show")) code = cmd_show(&t, &a, name);
    else if (!strcmp(sub, "state")) code = cmd_state(&t, &a, name, 0);
    else if (!strcmp(sub, "result")) code = cmd_state(&t, &a, name, 1);
    else if (!strcmp(sub, "create")) code = cmd_create(&t, &a, name);
    else if (is_update) code = cmd_update(&t, &a, name);
    else if (!strcmp(sub, "delete")) code = cmd_delete(&t, &a, name);
    else code = cmd_command(&t, &a, name, sub);
    code = cli_finish_output(c, code);
    code = target_close(&t, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
