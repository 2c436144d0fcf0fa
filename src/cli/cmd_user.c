/*
 * cmd_user.c - `factum user`: create, update, delete, enable, disable, show
 * and list users, change and reset passwords, on a server (--server: the
 * Users service through the C client; users live in the server's
 * `$user-<login>` streams, and only a server keeps them).
 *
 * A new password never has to be on the command line (where `ps` shows
 * it): --new-password-file reads it from a file or, with '-', from the
 * first line of stdin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"

static const char user_help[] =
    "usage: factum --server URL user list [--json]\n"
    "       factum --server URL user show LOGIN [--json]\n"
    "       factum --server URL user create LOGIN [--full-name NAME] [--group G]... NEW-PASSWORD\n"
    "       factum --server URL user update LOGIN [--full-name NAME] [--group G]...\n"
    "       factum --server URL user delete|enable|disable LOGIN\n"
    "       factum --server URL user change-password LOGIN CURRENT-PASSWORD NEW-PASSWORD\n"
    "       factum --server URL user reset-password LOGIN NEW-PASSWORD\n"
    "\n"
    "The users of a server (KurrentDB's Users service), as the connection's user (--username and\n"
    "--password, or user:pass@ in the URL). Admins (group $admins) create, update, delete, enable,\n"
    "disable, reset passwords and list users; a user may show itself and change its own password.\n"
    "\n"
    "  NEW-PASSWORD, CURRENT-PASSWORD  a password; or give --new-password-file FILE (and for\n"
    "                 change-password --current-password-file FILE) instead, '-' for the first line of\n"
    "                 stdin, to keep passwords out of the process list\n"
    "  --full-name NAME  the user's full name (update: replaces it; empty when not given)\n"
    "  --group G      a group the user is in (repeat it); update replaces the groups\n"
    "  --json         list, show: one JSON object per user\n"
    "\n"
    "Exit codes: 4 when there is no such user; 5 when the credentials are refused or the user may not\n"
    "do it; 1 for other failures (e.g. the login is taken).\n";

static const cli_opt user_opts[] = {
    {"full-name", CLI_ARG},
    {"group", CLI_ARG | CLI_MULTI},
    {"json", 0},
    {"new-password-file", CLI_ARG},
    {"current-password-file", CLI_ARG},
};

/* A password from FILE ('-': stdin), its first line, into buf. */
static int read_password(cli_ctx *c, const char *file, char *buf, size_t cap)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!f) {
        cli_msg(c, "cannot open '%s': %s", file, strerror(errno));
        return CLI_FAIL;
    }
    int ok = fgets(buf, (int)cap, f) != NULL;
    if (f != stdin) fclose(f);
    if (!ok) {
        cli_msg(c, "no password in '%s'", file);
        return CLI_FAIL;
    }
    buf[strcspn(buf, "\r\n")] = 0;
    return CLI_OK;
}

typedef struct show_ctx {
    int json, any;
} show_ctx;

static int print_user(void *arg, const factum_user_info *u)
{
    show_ctx *s = arg;
    s->any = 1;
    char when[32];
    cli_format_time(u->updated_ns, when);
    if (s->json) {
        base_buf b = {0};
        int rc = base_buf_append(&b, "{\"loginName\":", 13);
        if (!rc) rc = json_write_string(&b, u->login, strlen(u->login));
        if (!rc) rc = base_buf_append(&b, ",\"fullName\":", 12);
        if (!rc) rc = json_write_string(&b, u->full_name, strlen(u->full_name));
        if (!rc) rc = base_buf_append(&b, ",\"groups\":[", 11);
        for (size_t i = 0; i < u->n_groups && !rc; i++) {
            if (i) rc = base_buf_append(&b, ",", 1);
            if (!rc) rc = json_write_string(&b, u->groups[i], strlen(u->groups[i]));
        }
        if (!rc)
            rc = base_buf_printf(&b, "],\"disabled\":%s,\"dateLastUpdated\":\"%s\"}\n", u->disabled ? "true" : "false",
                                 when);
        if (!rc) fwrite(b.data, 1, b.len, stdout);
        base_buf_free(&b);
        return rc;
    }
    printf("%-20s %-8s %-24s %s  ", u->login, u->disabled ? "disabled" : "enabled", when, u->full_name);
    for (size_t i = 0; i < u->n_groups; i++) printf("%s%s", i ? "," : "[", u->groups[i]);
    printf("%s\n", u->n_groups ? "]" : "[]");
    return 0;
}

int cli_cmd_user(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, user_opts, sizeof user_opts / sizeof user_opts[0], &a);
    if (code) return code;
    const char **groups = NULL;
    factum_client *cl = NULL;
    char pw1[1100] = "", pw2[1100] = "";
    if (a.help) {
        code = cli_help(user_help);
        goto out;
    }
    if (a.n_pos == 0) {
        code = cli_usage(c, "missing a subcommand (see --help)");
        goto out;
    }
    static const char *const subs[] = {"list",   "show",    "create",          "update",        "delete",
                                       "enable", "disable", "change-password", "reset-password"};
    const char *sub = a.pos[0];
    size_t k = 0;
    while (k < sizeof subs / sizeof *subs && strcmp(subs[k], sub)) k++;
    if (k == sizeof subs / sizeof *subs) {
        code = cli_usage(c, "unknown subcommand '%s' (see --help)", sub);
        goto out;
    }
    char cmd[40];
    snprintf(cmd, sizeof cmd, "user %s", sub);
    c->cmd = cmd;
    if (!c->server) {
        cli_msg(c, "users live in a server: give --server URL (or FACTUM_SERVER)");
        code = CLI_USAGE;
        goto out;
    }
    /* positional passwords: how many the subcommand takes, unless given by files */
    int n_pw = !strcmp(sub, "create") || !strcmp(sub, "reset-password") ? 1 : !strcmp(sub, "change-password") ? 2 : 0;
    const char *new_file = cli_get(&a, "new-password-file"), *cur_file = cli_get(&a, "current-password-file");
    size_t from_files = (new_file ? 1u : 0u) + (n_pw == 2 && cur_file ? 1u : 0u);
    size_t want = !strcmp(sub, "list") ? 1 : 2 + (size_t)n_pw - (n_pw ? from_files : 0);
    if ((code = cli_want_pos(c, &a, want, want, "LOGIN and passwords"))) goto out;
    const char *login = a.n_pos > 1 ? a.pos[1] : NULL;
    const char *cur = NULL, *neu = NULL;
    size_t p = 2;
    if (n_pw == 2) {
        if (cur_file) {
            if ((code = read_password(c, cur_file, pw2, sizeof pw2))) goto out;
            cur = pw2;
        } else {
            cur = a.pos[p++];
        }
    }
    if (n_pw) {
        if (new_file) {
            if ((code = read_password(c, new_file, pw1, sizeof pw1))) goto out;
            neu = pw1;
        } else {
            neu = a.pos[p++];
        }
    }
    size_t n_groups = 0;
    groups = cli_get_all(&a, "group", &n_groups);
    const char *full = cli_get(&a, "full-name");
    if ((code = cli_connect(c, &cl))) goto out;
    int rc = 0;
    show_ctx sc = {cli_has(&a, "json"), 0};
    switch (k) {
    case 0: rc = factum_client_user_list(cl, NULL, print_user, &sc); break;
    case 1: rc = factum_client_user_list(cl, login, print_user, &sc); break;
    case 2: rc = factum_client_user_create(cl, login, full, groups, n_groups, neu); break;
    case 3: rc = factum_client_user_update(cl, login, full, groups, n_groups); break;
    case 4: rc = factum_client_user_delete(cl, login); break;
    case 5: rc = factum_client_user_enable(cl, login); break;
    case 6: rc = factum_client_user_disable(cl, login); break;
    case 7: rc = factum_client_user_change_password(cl, login, cur, neu); break;
    case 8: rc = factum_client_user_reset_password(cl, login, neu); break;
    }
    if (rc == FACTUM_ENOTFOUND && login) {
        cli_msg(c, "no user '%s'", login);
        code = CLI_NOT_FOUND;
    } else if (rc) {
        code = cli_remote_fail(c, cl, rc, "%s%s%s", sub, login ? " " : "", login ? login : "");
    }
out:
    memset(pw1, 0, sizeof pw1);
    memset(pw2, 0, sizeof pw2);
    free(groups);
    if (cl) factum_client_close(cl);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
