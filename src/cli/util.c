/*
 * util.c - messages and exit codes, and opening the store the way every
 * command needs it: read-only for the commands that only look, and for
 * writing with the store created on the first write. A directory that is
 * not a store is refused before anything is written into it. With
 * --server, connecting instead, and the same messages for the errors the
 * server reports.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

/* ---- messages ------------------------------------------------------- */

static void vmsg(cli_ctx *c, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vmsg(cli_ctx *c, const char *fmt, va_list ap)
{
    fprintf(stderr, "factum: %s%s", c->cmd ? c->cmd : "", c->cmd ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_msg(cli_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, fmt, ap);
    va_end(ap);
}

int cli_usage(cli_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(c, fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

int cli_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return CLI_OK;
    case FACTUM_EWRONGVERSION:
        return CLI_WRONG_VERSION;
    case FACTUM_ENOTFOUND:
    case FACTUM_EDELETED:
        return CLI_NOT_FOUND;
    case FACTUM_EBADNAME:
    case FACTUM_EBADTYPE:
    case FACTUM_EBADUUID:
    case FACTUM_EBADJSON:
    case FACTUM_EBADREGEX:
    case FACTUM_EBADURL:
        return CLI_USAGE;
    case FACTUM_EUNAUTHENTICATED:
    case FACTUM_EACCESSDENIED:
        return CLI_DENIED;
    default:
        return CLI_FAIL;
    }
}

int cli_fail(cli_ctx *c, int rc, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cli_msg(c, "%s: %s%s", what, factum_strerror(rc), rc == FACTUM_ECORRUPT ? " (run factum verify)" : "");
    return cli_exit_code(rc);
}

/* Stream names go into messages quoted and cut, so that a 1 KiB name or a
 * control character cannot make the line unreadable. */
static const char *show_name(const char *name, char buf[96])
{
    size_t j = 0, i = 0;
    for (; name[i] && j < 80; i++) {
        unsigned char ch = (unsigned char)name[i];
        buf[j++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (name[i]) {
        while (j > 0 && ((unsigned char)buf[j - 1] & 0xc0) == 0x80)
            j--; /* no cut UTF-8 sequence */
        if (j > 0 && (unsigned char)buf[j - 1] >= 0xc0) j--;
        memcpy(buf + j, "...", 4);
    } else {
        buf[j] = 0;
    }
    return buf;
}

int cli_wrong_version(cli_ctx *c, factum_store *s, const char *stream, int64_t expected, int64_t actual)
{
    char eb[32], ab[48], nb[96];
    const char *note = "";
    factum_stream_info info;
    if (s && !factum_stream_get_info(s, stream, &info) && info.status == FACTUM_STREAM_SOFT_DELETED)
        note = " (soft-deleted)";
    if (actual == FACTUM_NO_STREAM)
        snprintf(ab, sizeof ab, "the stream has no events");
    else
        snprintf(ab, sizeof ab, "actual version %lld%s", (long long)actual, note);
    cli_msg(c, "wrong expected version for stream '%s': expected %s, %s", show_name(stream, nb),
            cli_expected_str(expected, eb), ab);
    return CLI_WRONG_VERSION;
}

int cli_stream_error(cli_ctx *c, factum_store *s, const char *stream, int64_t expected, int rc,
                     const factum_append_result *res)
{
    char nb[96];
    factum_stream_info info;
    switch (rc) {
    case FACTUM_EWRONGVERSION:
        return cli_wrong_version(c, s, stream, expected, res ? res->actual_version : -1);
    case FACTUM_ENOTFOUND:
        if (s && !factum_stream_get_info(s, stream, &info) && info.status == FACTUM_STREAM_SOFT_DELETED) {
            cli_msg(c, "stream '%s' is soft-deleted", show_name(stream, nb));
            return CLI_NOT_FOUND;
        }
        cli_msg(c, "stream '%s' not found", show_name(stream, nb));
        return CLI_NOT_FOUND;
    case FACTUM_EDELETED:
        cli_msg(c, "stream '%s' is tombstoned (permanently deleted)", show_name(stream, nb));
        return CLI_NOT_FOUND;
    default:
        return cli_fail(c, rc, "stream '%s'", show_name(stream, nb));
    }
}

int cli_finish_output(cli_ctx *c, int code)
{
    if (fflush(stdout) || ferror(stdout)) {
        cli_msg(c, "writing the output failed: %s", strerror(errno ? errno : EIO));
        return code ? code : CLI_FAIL;
    }
    return code;
}

int cli_help(const char *text)
{
    fputs(text, stdout);
    return CLI_OK;
}

/* ---- the store ------------------------------------------------------ */

/* The store's own log lines: the last error is kept so that a failed open
 * can say why in its one line (e.g. where the log is damaged). The store
 * may log from its threads, hence the lock. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_log[512];

static void store_log(void *ctx, int level, const char *message)
{
    (void)ctx;
    if (level > FACTUM_LOG_ERROR) return;
    pthread_mutex_lock(&log_mu);
    snprintf(last_log, sizeof last_log, "%s", message);
    pthread_mutex_unlock(&log_mu);
}

void cli_default_options(factum_options *o)
{
    factum_options_init(o);
    o->log_fn = store_log;
    o->log_ctx = NULL;
    /* Crypto-shredding: --master-key-file / --shred-categories (main.c) or the environment. */
    const char *mk = getenv("FACTUM_MASTER_KEY_FILE"), *cats = getenv("FACTUM_SHRED_CATEGORIES");
    o->master_key_file = mk && *mk ? mk : NULL;
    o->shred_categories = cats && *cats ? cats : NULL;
}

void cli_page_reader(void)
{
    /* One reader for the process (the CLI reads on its main thread), reset
     * before each page: sealed events open into it (crypto-shredding). */
    static factum_reader *r;
    if (!r && (r = factum_reader_new())) factum_reader_use(r);
    factum_reader_reset(r);
}

int cli_need_dir(cli_ctx *c)
{
    if (c->server) return CLI_OK;
    if (!c->data_dir || !c->data_dir[0])
        return cli_usage(c, "no data directory: give --data DIR (before the command) or set FACTUM_DATA "
                            "(or work on a server with --server URL)");
    return CLI_OK;
}

int cli_read_file(cli_ctx *c, const char *file, size_t max, base_buf *b)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
    if (!f) {
        cli_msg(c, "cannot read '%s': %s", file, strerror(errno));
        return CLI_FAIL;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while (!rc && b->len <= max && (n = fread(buf, 1, sizeof buf, f)) > 0)
        rc = base_buf_append(b, buf, n);
    int err = ferror(f);
    if (f != stdin) fclose(f);
    if (!rc) rc = base_buf_append(b, "", 1);
    if (rc || err) {
        cli_msg(c, "cannot read '%s'%s", file, rc ? ": out of memory" : "");
        return CLI_FAIL;
    }
    b->len--;
    if (b->len > max) {
        cli_msg(c, "'%s' is larger than %zu bytes", file, max);
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_local_only(cli_ctx *c, const char *why)
{
    if (!c->server) return CLI_OK;
    cli_msg(c, "not available over --server: %s", why);
    return CLI_FAIL;
}

int cli_open_error(cli_ctx *c, int rc, int writing)
{
    char detail[512];
    pthread_mutex_lock(&log_mu);
    snprintf(detail, sizeof detail, "%s", last_log);
    pthread_mutex_unlock(&log_mu);
    if (rc == -ENOENT && writing) {
        cli_msg(c, "cannot create the data directory '%s': %s", c->data_dir, strerror(ENOENT));
        return CLI_FAIL;
    }
    if (rc == -ENOENT || rc == FACTUM_ENOTSTORE) {
        struct stat st;
        if (rc == -ENOENT || (stat(c->data_dir, &st) == 0 && S_ISDIR(st.st_mode) && !cli_store_present(c))) {
            cli_msg(c, "no factum store in '%s' (the first write creates it)", c->data_dir);
            return CLI_FAIL;
        }
        cli_msg(c, "'%s' is not a factum data directory", c->data_dir);
        return CLI_FAIL;
    }
    if (rc == FACTUM_ELOCKED) {
        cli_msg(c, "'%s' is locked by another process%s%s", c->data_dir, c->locked_hint ? ": " : "",
                c->locked_hint ? c->locked_hint : "");
        return CLI_FAIL;
    }
    if (detail[0]) {
        cli_msg(c, "cannot open the store in '%s': %s (%s)", c->data_dir, factum_strerror(rc), detail);
        return CLI_FAIL;
    }
    cli_msg(c, "cannot open the store in '%s': %s", c->data_dir, factum_strerror(rc));
    return CLI_FAIL;
}

int cli_open_read(cli_ctx *c, factum_store **out)
{
    if (cli_local_only(c, "this needs a data directory")) return CLI_FAIL;
    int code = cli_need_dir(c);
    if (code) return code;
    factum_options o;
    cli_default_options(&o);
    o.create = 0;
    o.read_only = 1;
    int rc = factum_store_open(c->data_dir, &o, out);
    return rc ? cli_open_error(c, rc, 0) : CLI_OK;
}

int cli_store_present(cli_ctx *c)
{
    DIR *d = opendir(c->data_dir);
    if (!d) return errno != ENOENT; /* a file, or unreadable: let the open say what it is */
    struct dirent *de;
    int present = 0;
    /* A lone LOCK file is what an interrupted first open leaves behind; the
     * library treats such a directory as empty, and so do we. */
    while (!present && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "LOCK")) present = 1;
    closedir(d);
    return present;
}

int cli_open_write(cli_ctx *c, int relaxed, factum_store **out)
{
    factum_options o;
    cli_default_options(&o);
    if (relaxed) o.durability = FACTUM_RELAXED;
    return cli_open_write_opts(c, &o, out);
}

int cli_open_write_opts(cli_ctx *c, const factum_options *opts, factum_store **out)
{
    if (cli_local_only(c, "this needs a data directory")) return CLI_FAIL;
    int code = cli_need_dir(c);
    if (code) return code;
    factum_options o = *opts;
    if (cli_store_present(c)) {
        /* Opening for writing creates the lock file before the store is
         * recognised; a read-only open first refuses a directory that is
         * not a store without leaving anything behind in it. */
        factum_options ro = o;
        ro.create = 0;
        ro.read_only = 1;
        factum_store *probe;
        int rc = factum_store_open(c->data_dir, &ro, &probe);
        if (rc) return cli_open_error(c, rc, 0);
        factum_store_close(probe);
        o.create = 0;
    }
    int rc = factum_store_open(c->data_dir, &o, out);
    return rc ? cli_open_error(c, rc, 1) : CLI_OK;
}

int cli_close(cli_ctx *c, factum_store *s, int code)
{
    int rc = factum_store_close(s);
    if (rc) {
        cli_fail(c, rc, "closing the store");
        return code ? code : CLI_FAIL;
    }
    return code;
}

/* ---- a server ------------------------------------------------------- */

int cli_connect(cli_ctx *c, factum_client **out)
{
    factum_client_options o;
    factum_client_options_init(&o);
    o.username = c->username;
    o.password = c->password;
    o.tls_ca_file = c->tls_ca_file;
    o.user_cert_file = c->user_cert_file;
    o.user_key_file = c->user_key_file;
    o.raw = c->raw;
    /* The connection string's defaultDeadline, as without options. */
    int rc = factum_client_connect(c->server, &o, out);
    if (rc == FACTUM_EBADURL) {
        cli_msg(c, "--server '%s': %s", c->server, factum_client_last_error(NULL));
        return CLI_USAGE;
    }
    if (rc) {
        cli_msg(c, "cannot connect to '%s': %s", c->server, factum_client_last_error(NULL));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_remote_fail(cli_ctx *c, const factum_client *cl, int rc, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *detail = cl ? factum_client_last_error(cl) : "";
    if (detail[0] && strcmp(detail, factum_strerror(rc)))
        cli_msg(c, "%s: %s (%s)", what, factum_strerror(rc), detail);
    else
        cli_msg(c, "%s: %s", what, factum_strerror(rc));
    return cli_exit_code(rc);
}

int cli_remote_soft_deleted(factum_client *cl, const char *stream)
{
    char *json = NULL;
    factum_stream_metadata m;
    int deleted = factum_client_get_stream_metadata(cl, stream, &json, NULL) == 0 &&
                  factum_stream_metadata_parse(json, strlen(json), &m) == 0 && m.truncate_before == INT64_MAX;
    free(json);
    return deleted;
}

int cli_remote_stream_error(cli_ctx *c, factum_client *cl, const char *stream, int64_t expected, int rc,
                            const factum_append_result *res)
{
    char nb[96];
    switch (rc) {
    case FACTUM_EWRONGVERSION:
        return cli_wrong_version(c, NULL, stream, expected, res ? res->actual_version : -1);
    case FACTUM_ENOTFOUND:
        if (cli_remote_soft_deleted(cl, stream)) {
            cli_msg(c, "stream '%s' is soft-deleted", show_name(stream, nb));
            return CLI_NOT_FOUND;
        }
        cli_msg(c, "stream '%s' not found", show_name(stream, nb));
        return CLI_NOT_FOUND;
    case FACTUM_EDELETED:
        cli_msg(c, "stream '%s' is tombstoned (permanently deleted)", show_name(stream, nb));
        return CLI_NOT_FOUND;
    default:
        return cli_remote_fail(c, cl, rc, "stream '%s'", show_name(stream, nb));
    }
}
