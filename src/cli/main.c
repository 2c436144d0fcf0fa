/*
 * main.c - the `factum` program: the global options (--data, --server,
 * --help, --version), the table of commands, and dispatch to the cmd_*.c
 * file that implements each. docs/cli.md is the manual of everything
 * reachable from here.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(cli_ctx *c, int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"append", cli_cmd_append, "append events to a stream"},
    {"read", cli_cmd_read, "read a stream, or the global log '$all'"},
    {"tail", cli_cmd_tail, "follow a stream or '$all' on a server, as events are committed"},
    {"streams", cli_cmd_streams, "list streams in creation order"},
    {"info", cli_cmd_info, "show a stream's status, last version and metadata"},
    {"meta", cli_cmd_meta, "get or set a stream's metadata"},
    {"delete", cli_cmd_delete, "soft-delete a stream"},
    {"tombstone", cli_cmd_tombstone, "delete a stream permanently"},
    {"verify", cli_cmd_verify, "check every record of the store"},
    {"dump", cli_cmd_dump, "print every raw log record"},
    {"export", cli_cmd_export, "write every event as NDJSON"},
    {"import", cli_cmd_import, "append the events of an export file"},
    {"stats", cli_cmd_stats, "print the store's statistics"},
    {"projection", cli_cmd_projection, "list, create, change and inspect projections"},
    {"bench", cli_cmd_bench, "run the BENCH.md workloads (locally or against --server)"},
    {"certs", cli_cmd_certs, "create a development CA, node and user certificates (TLS)"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: factum [--data DIR] COMMAND [ARGS...]\n"
            "       factum --server URL COMMAND [ARGS...]\n"
            "\n"
            "factum %s - the command line of the factum event store.\n"
            "\n"
            "Global options (before the command):\n"
            "  --data DIR     data directory (default: $FACTUM_DATA); the first write creates the store\n"
            "  --server URL   work on a factumd (or KurrentDB) server instead, e.g.\n"
            "                 kurrentdb://127.0.0.1:2113?tls=false (default: $FACTUM_SERVER);\n"
            "                 streams, verify and dump need a data directory\n"
            "  --help, -h     this help; 'factum COMMAND --help' explains a command\n"
            "  --version      print the version\n"
            "\n"
            "Commands:\n",
            FACTUM_VERSION_STRING);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Exit codes: 0 success, 1 failure, 2 usage error or malformed input,\n"
                 "3 wrong expected version, 4 stream not found or deleted.\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    cli_ctx c = {NULL, NULL, NULL};
    const char *data_opt = NULL, *server_opt = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *w = argv[i];
        if (!strcmp(w, "--help") || !strcmp(w, "-h")) {
            usage(stdout);
            return cli_finish_output(&c, CLI_OK);
        }
        if (!strcmp(w, "--version")) {
            printf("factum %s (on-disk format %d)\n", FACTUM_VERSION_STRING, FACTUM_FORMAT_VERSION);
            return cli_finish_output(&c, CLI_OK);
        }
        if (!strcmp(w, "--data")) {
            if (i + 1 >= argc) return cli_usage(&c, "option '--data' needs a directory");
            data_opt = argv[++i];
        } else if (!strncmp(w, "--data=", 7)) {
            data_opt = w + 7;
        } else if (!strcmp(w, "--server")) {
            if (i + 1 >= argc) return cli_usage(&c, "option '--server' needs a connection string");
            server_opt = argv[++i];
        } else if (!strncmp(w, "--server=", 9)) {
            server_opt = w + 9;
        } else {
            return cli_usage(&c, "unknown global option '%s' (see factum --help)", w);
        }
    }
    /* Options beat the environment; FACTUM_SERVER beats FACTUM_DATA. */
    if (data_opt && server_opt) return cli_usage(&c, "give --data or --server, not both");
    const char *env_server = getenv("FACTUM_SERVER");
    if (server_opt)
        c.server = server_opt;
    else if (data_opt)
        c.data_dir = data_opt;
    else if (env_server && *env_server)
        c.server = env_server;
    else
        c.data_dir = getenv("FACTUM_DATA");
    if (c.server && !*c.server) return cli_usage(&c, "--server needs a connection string");
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[i];
    if (!strcmp(name, "help")) {
        if (i + 1 >= argc) {
            usage(stdout);
            return cli_finish_output(&c, CLI_OK);
        }
        const command *cmd = find_command(argv[i + 1]);
        if (!cmd) return cli_usage(&c, "unknown command '%s' (see factum --help)", argv[i + 1]);
        char help[] = "--help";
        char *hargv[] = {help, NULL};
        c.cmd = cmd->name;
        return cmd->run(&c, 1, hargv);
    }
    const command *cmd = find_command(name);
    if (!cmd) return cli_usage(&c, "unknown command '%s' (see factum --help)", name);
    c.cmd = cmd->name;
    return cmd->run(&c, argc - i - 1, argv + i + 1);
}
