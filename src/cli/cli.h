/*
 * cli.h - what the files of the `factum` command line share: the option
 * parser, error reporting with the program's exit codes, opening the store
 * for reading or writing, and the renderings of events (one human line,
 * one NDJSON object) that several commands print. Each command lives in
 * its own cmd_*.c file and is reached through the table in main.c.
 *
 * Exit codes (docs/cli.md): 0 success, 1 failure, 2 usage or malformed
 * input, 3 wrong expected version, 4 stream not found or deleted, 5 not
 * authenticated or access denied.
 */
#ifndef FACTUM_CLI_H
#define FACTUM_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "factum.h"
#include "factum_client.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_WRONG_VERSION = 3, CLI_NOT_FOUND = 4, CLI_DENIED = 5 };

/* One invocation: the data directory or the server, and the command being
 * run, for messages ("factum: meta set: ..."). */
typedef struct cli_ctx {
    const char *data_dir; /* --data or FACTUM_DATA; NULL if neither (or with a server) */
    const char *cmd;      /* command name as shown in messages */
    const char *server;   /* --server or FACTUM_SERVER: work through the client; NULL: locally */
    /* With a server: what overrides the connection string (NULL: as it
     * says): --username/FACTUM_USERNAME, --password/FACTUM_PASSWORD,
     * --tls-ca-file/FACTUM_TLS_CA_FILE, --user-cert-file, --user-key-file. */
    const char *username, *password, *tls_ca_file, *user_cert_file, *user_key_file;
    int raw; /* events as stored, not upcast (`read --raw`; the server: header factum-raw) */
    /* What to do instead when the data directory is locked (a running
     * factumd holds it), added to that error by cli_open_error; NULL: none. */
    const char *locked_hint;
} cli_ctx;

/* ---- option parsing -------------------------------------------------- */

#define CLI_ARG   0x1 /* the option takes a value */
#define CLI_MULTI 0x2 /* the option may be repeated */

typedef struct cli_opt {
    const char *name; /* long name without the leading "--" */
    unsigned flags;   /* CLI_ARG, CLI_MULTI */
} cli_opt;

/* A parsed command line: positional arguments and every option given.
 * Pointers point into argv. Free with cli_args_free. */
typedef struct cli_args {
    const cli_opt *opts;
    size_t n_opts;
    const char **pos;
    size_t n_pos;
    size_t *occ_opt;      /* occurrence i is of opts[occ_opt[i]] */
    const char **occ_val; /* and has this value (NULL for a flag) */
    size_t n_occ;
    int help; /* --help was given */
} cli_args;

/* Parse argv[0..argc) (the words after the command name) against opts
 * (n of them; "help" is always accepted). "--name=value" and "--name value"
 * both work; "--" ends the options. Returns CLI_OK, or prints the problem
 * and returns CLI_USAGE. */
int cli_parse(cli_ctx *c, int argc, char **argv, const cli_opt *opts, size_t n, cli_args *out);
void cli_args_free(cli_args *a);
/* Was the option given (any number of times)? */
int cli_has(const cli_args *a, const char *name);
/* The value of the last occurrence, or NULL. */
const char *cli_get(const cli_args *a, const char *name);
/* Every value of a repeatable option, in order, into a malloc'd array
 * (free() it; NULL with *n = 0 when none was given). */
const char **cli_get_all(const cli_args *a, const char *name, size_t *n);
/* Check the number of positional arguments; prints and returns CLI_USAGE
 * when outside [min, max]. */
int cli_want_pos(cli_ctx *c, const cli_args *a, size_t min, size_t max, const char *what);

/* Parse a --expected value: any, no-stream, exists or a version >= 0. */
int cli_parse_expected(cli_ctx *c, const char *text, int64_t *out);
/* Parse an unsigned decimal number (the whole text). */
int cli_parse_u64(cli_ctx *c, const char *opt, const char *text, uint64_t *out);
/* Check a stream name before anything is opened; prints on error. */
int cli_check_stream(cli_ctx *c, const char *name);

/* ---- messages and exit codes ---------------------------------------- */

/* Print "factum: <cmd>: <message>" on stderr. */
void cli_msg(cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage problem and return CLI_USAGE. */
int cli_usage(cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "<message>: <factum_strerror(rc)>" and return the exit code of rc. */
int cli_fail(cli_ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The exit code for a library error code. */
int cli_exit_code(int rc);
/* Report FACTUM_EWRONGVERSION: what was expected and what the stream has. */
int cli_wrong_version(cli_ctx *c, factum_store *s, const char *stream, int64_t expected, int64_t actual);
/* Report an error of a call on `stream` (wrong version, not found, ...).
 * s may be NULL; res may be NULL unless rc is FACTUM_EWRONGVERSION. */
int cli_stream_error(cli_ctx *c, factum_store *s, const char *stream, int64_t expected, int rc,
                     const factum_append_result *res);
/* Format an expected version as it is written on the command line. */
const char *cli_expected_str(int64_t e, char buf[32]);
/* Flush stdout and report a write error (e.g. a full disk) as CLI_FAIL. */
int cli_finish_output(cli_ctx *c, int code);

/* ---- the store ------------------------------------------------------ */

/* Open the data directory read-only; it must already hold a store. */
int cli_open_read(cli_ctx *c, factum_store **out);
/* Open it for writing, creating the store if the directory is missing or
 * empty; a directory that is not a store is refused without being touched.
 * relaxed selects FACTUM_RELAXED durability (the caller syncs). */
int cli_open_write(cli_ctx *c, int relaxed, factum_store **out);
/* The same with options (start from cli_default_options). */
int cli_open_write_opts(cli_ctx *c, const factum_options *opts, factum_store **out);
void cli_default_options(factum_options *o);
/* 1 if the data directory exists and is not empty (it holds, or claims to
 * hold, a store), 0 if a write would create a new store. */
int cli_store_present(cli_ctx *c);
/* Report why the data directory could not be opened (or verified); the
 * store's last error log line is added when there is one. */
int cli_open_error(cli_ctx *c, int rc, int writing);
/* Close, reporting a failed final checkpoint. Returns code, or CLI_FAIL. */
int cli_close(cli_ctx *c, factum_store *s, int code);
/* Require a data directory (or a server); prints and returns CLI_USAGE
 * without one. */
int cli_need_dir(cli_ctx *c);

/* ---- a server (--server; the C client of factum_client.h) ------------ */

/* Connect to c->server; prints why not and returns the exit code (2 for a
 * malformed connection string, else 1). */
int cli_connect(cli_ctx *c, factum_client **out);
/* Print "<message>: <factum_strerror(rc)> (<the server's message>)" and
 * return the exit code of rc. */
int cli_remote_fail(cli_ctx *c, const factum_client *cl, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* cli_stream_error for a call through the client (soft-deleted streams
 * are recognised by their metadata). */
int cli_remote_stream_error(cli_ctx *c, factum_client *cl, const char *stream, int64_t expected, int rc,
                            const factum_append_result *res);
/* Is the stream soft-deleted (its metadata's $tb is the deletion mark)? */
int cli_remote_soft_deleted(factum_client *cl, const char *stream);
/* The whole of FILE (- for stdin), at most max bytes, into b
 * (NUL-terminated, not counted). Prints why not and returns CLI_FAIL. */
int cli_read_file(cli_ctx *c, const char *file, size_t max, base_buf *b);
/* For the commands that need a data directory: with a server, print that
 * the command is local-only and return CLI_FAIL; else CLI_OK. */
int cli_local_only(cli_ctx *c, const char *why);

/* ---- rendering ------------------------------------------------------- */

/* "2024-05-01T12:34:56.789Z" into buf (>= 32 bytes). */
void cli_format_time(int64_t ns, char buf[32]);
/* Before each page of events read locally: the events of the page before
 * are done with; sealed events of the next open into the CLI's reader. */
void cli_page_reader(void);
/* Standard base64 (RFC 4648, with padding). */
int cli_base64_encode(base_buf *b, const uint8_t *p, size_t n);
/* Decode base64; FACTUM_EBADJSON if the text is not valid base64. */
int cli_base64_decode(const char *s, size_t n, base_buf *out);
/* Append an event as one NDJSON object (with the newline). */
int cli_event_json(base_buf *b, const factum_event *ev);
/* Print an event as one human line on stdout, fitted to the width. */
void cli_event_line(const factum_event *ev, int width);
/* Width to fit human lines to: the terminal's, $COLUMNS, or 120. */
int cli_output_width(void);
/* Compact JSON text of a valid JSON document into b (FACTUM_EBADJSON). */
int cli_json_compact(base_buf *b, const char *text, size_t len);

/* ---- progress on stderr (only when stderr is a terminal) ------------ */

typedef struct cli_progress {
    int on;
    const char *label;
    uint64_t total;
    uint64_t last_ns;
    int drawn;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(cli_progress *p, uint64_t done);
void cli_progress_end(cli_progress *p);

/* ---- commands (cmd_*.c) --------------------------------------------- */

int cli_cmd_append(cli_ctx *c, int argc, char **argv);
int cli_cmd_read(cli_ctx *c, int argc, char **argv);
int cli_cmd_streams(cli_ctx *c, int argc, char **argv);
int cli_cmd_info(cli_ctx *c, int argc, char **argv);
int cli_cmd_meta(cli_ctx *c, int argc, char **argv);
int cli_cmd_delete(cli_ctx *c, int argc, char **argv);
int cli_cmd_tombstone(cli_ctx *c, int argc, char **argv);
int cli_cmd_verify(cli_ctx *c, int argc, char **argv);
int cli_cmd_dump(cli_ctx *c, int argc, char **argv);
int cli_cmd_stats(cli_ctx *c, int argc, char **argv);
int cli_cmd_bench(cli_ctx *c, int argc, char **argv);
int cli_cmd_tail(cli_ctx *c, int argc, char **argv);
int cli_cmd_export(cli_ctx *c, int argc, char **argv);
int cli_cmd_import(cli_ctx *c, int argc, char **argv);
int cli_cmd_projection(cli_ctx *c, int argc, char **argv);
int cli_cmd_user(cli_ctx *c, int argc, char **argv);
int cli_cmd_readmodel(cli_ctx *c, int argc, char **argv);
int cli_cmd_query(cli_ctx *c, int argc, char **argv);
int cli_cmd_upcaster(cli_ctx *c, int argc, char **argv);
int cli_cmd_certs(cli_ctx *c, int argc, char **argv);
int cli_cmd_schedule(cli_ctx *c, int argc, char **argv);
int cli_cmd_chain(cli_ctx *c, int argc, char **argv);
int cli_cmd_backup(cli_ctx *c, int argc, char **argv);
int cli_cmd_scavenge(cli_ctx *c, int argc, char **argv);
int cli_cmd_archive(cli_ctx *c, int argc, char **argv);
int cli_cmd_shred(cli_ctx *c, int argc, char **argv);
int cli_cmd_shreds(cli_ctx *c, int argc, char **argv);
int cli_cmd_restore(cli_ctx *c, int argc, char **argv);

/* Print a command's help text (stdout) and return CLI_OK. */
int cli_help(const char *text);

#endif
