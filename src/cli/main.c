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
    {"schedule", cli_cmd_schedule, "schedule an event for a later time; list or cancel scheduled events"},
    {"verify", cli_cmd_verify, "check every record of the store (--chain: and its hash chain)"},
    {"chain", cli_cmd_chain, "export and sign the hash chain's head (a receipt)"},
    {"backup", cli_cmd_backup, "copy the store into a backup directory (incremental, verified)"},
    {"restore", cli_cmd_restore, "restore a backup into a new data directory"},
    {"scavenge", cli_cmd_scavenge, "give back the space of expired and deleted events (online, resumable)"},
    {"archive", cli_cmd_archive, "copy sealed segments to the archive directory, drop old local copies"},
    {"shred", cli_cmd_shred, "delete a data subject's key: its sealed events read as shredded for good"},
    {"shreds", cli_cmd_shreds, "list the shreds recorded in $shreds (--ids: for restore --shreds)"},
    {"dump", cli_cmd_dump, "print every raw log record"},
    {"export", cli_cmd_export, "write every event as NDJSON"},
    {"import", cli_cmd_import, "append the events of an export file"},
    {"stats", cli_cmd_stats, "print the store's statistics"},
    {"projection", cli_cmd_projection, "list, create, change and inspect projections"},
    {"readmodel", cli_cmd_readmodel, "create, list, pause, rebuild, drop and wait for read models"},
    {"query", cli_cmd_query, "run a read-only SQL query on a read model"},
    {"upcaster", cli_cmd_upcaster, "register, list and remove upcasters (old event shapes read as new)"},
    {"user", cli_cmd_user, "create, change, list and delete a server's users"},
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
            "  --server URL   work on a factumd (or KurrentDB) server instead (default: $FACTUM_SERVER), e.g.\n"
            "                 'kurrentdb://admin:changeit@localhost:2113?tlsCAFile=certs/ca/ca.crt', or\n"
            "                 kurrentdb://127.0.0.1:2113?tls=false for a server started with --insecure;\n"
            "                 streams, verify and dump need a data directory\n"
            "  --username U, --password P   credentials for the server, over the connection string's\n"
            "                 (default: $FACTUM_USERNAME, $FACTUM_PASSWORD)\n"
            "  --tls-ca-file F  the CA to verify the server with, over tlsCAFile (default: $FACTUM_TLS_CA_FILE)\n"
            "  --user-cert-file F, --user-key-file F  a client certificate for mutual TLS\n"
            "                 (default: $FACTUM_USER_CERT_FILE, $FACTUM_USER_KEY_FILE)\n"
            "  --master-key-file F  crypto-shredding: the master key of the store's subject keys (needed to\n"
            "                 open a store that has them; default: $FACTUM_MASTER_KEY_FILE)\n"
            "  --shred-categories LIST  crypto-shredding: categories whose streams are sealed under the\n"
            "                 subject named by the rest of the name, e.g. user (default: $FACTUM_SHRED_CATEGORIES)\n"
            "  --help, -h     this help; 'factum COMMAND --help' explains a command\n"
            "  --version      print the version\n"
            "\n"
            "Commands:\n",
            FACTUM_VERSION_STRING);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s  %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "Exit codes: 0 success, 1 failure, 2 usage error or malformed input,\n"
                 "3 wrong expected version, 4 stream not found or deleted,\n"
                 "5 not authenticated or access denied (a server).\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    cli_ctx c = {0};
    const char *data_opt = NULL, *server_opt = NULL;
    /* The options that go with a server, and their environment variables. */
    struct {
        const char *name, *env;
        const char **dst;
        const char *given;
    } conn_opts[] = {
        {"username", "FACTUM_USERNAME", &c.username, NULL},
        {"password", "FACTUM_PASSWORD", &c.password, NULL},
        {"tls-ca-file", "FACTUM_TLS_CA_FILE", &c.tls_ca_file, NULL},
        {"user-cert-file", "FACTUM_USER_CERT_FILE", &c.user_cert_file, NULL},
        {"user-key-file", "FACTUM_USER_KEY_FILE", &c.user_key_file, NULL},
    };
    const size_t n_conn_opts = sizeof conn_opts / sizeof *conn_opts;
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
        } else if (!strcmp(w, "--master-key-file") || !strcmp(w, "--shred-categories")) {
            if (i + 1 >= argc) return cli_usage(&c, "option '%s' needs a value", w);
            /* Crypto-shredding: read by cli_default_options, as the environment would be. */
            setenv(w[2] == 'm' ? "FACTUM_MASTER_KEY_FILE" : "FACTUM_SHRED_CATEGORIES", argv[++i], 1);
        } else if (!strncmp(w, "--master-key-file=", 18)) {
            setenv("FACTUM_MASTER_KEY_FILE", w + 18, 1);
        } else if (!strncmp(w, "--shred-categories=", 19)) {
            setenv("FACTUM_SHRED_CATEGORIES", w + 19, 1);
        } else {
            size_t k = 0, len = 0;
            for (; k < n_conn_opts; k++) {
                len = strlen(conn_opts[k].name);
                if (!strncmp(w, "--", 2) && !strncmp(w + 2, conn_opts[k].name, len) &&
                    (w[2 + len] == 0 || w[2 + len] == '='))
                    break;
            }
            if (k == n_conn_opts) return cli_usage(&c, "unknown global option '%s' (see factum --help)", w);
            if (w[2 + len] == '=') {
                conn_opts[k].given = w + 3 + len;
            } else {
                if (i + 1 >= argc) return cli_usage(&c, "option '%s' needs a value", w);
                conn_opts[k].given = argv[++i];
            }
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
    for (size_t k = 0; k < n_conn_opts; k++) {
        if (conn_opts[k].given && !c.server)
            return cli_usage(&c, "--%s goes with --server (or FACTUM_SERVER)", conn_opts[k].name);
        const char *env = getenv(conn_opts[k].env);
        *conn_opts[k].dst = conn_opts[k].given ? conn_opts[k].given : c.server && env && *env ? env : NULL;
    }
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
