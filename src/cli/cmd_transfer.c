/*
 * cmd_transfer.c - `factum export` writes every event of $all as NDJSON (the
 * shape of `read --json`); `factum import` appends such a file into a store,
 * stream by stream with the exact expected version of each event, so that
 * every event keeps its stream, version and id, and (into an empty store)
 * its position. Metadata events go to their `$$` streams as they are, and
 * a tombstone is re-made with factum_tombstone_stream.
 *
 * Import reads the file twice: the first pass checks every line (and that
 * each stream's versions follow each other) and compares each stream's
 * first version with the store, so that a bad file changes nothing; the
 * second pass writes, batching consecutive events of one stream into one
 * append. Both commands draw a progress bar when stderr is a terminal.
 *
 * With --server both work through the client: export pages through
 * read_all, import checks each stream's last version with a backward read
 * and appends with the same expectations (no relaxed durability there:
 * the server decides).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/events.h"

#define PAGE         512
#define BATCH_EVENTS 1000
#define BATCH_BYTES  (8u * 1024u * 1024u)

/* ---- export --------------------------------------------------------- */

static const char export_help[] =
    "usage: factum export [FILE]\n"
    "\n"
    "Write every event of the global log, system events included, as NDJSON in the shape of\n"
    "'factum read --json' to FILE (written to a temporary file, then renamed) or to standard output.\n"
    "Shows a progress bar on stderr when stderr is a terminal.\n";

static int export_events(cli_ctx *c, factum_store *s, FILE *out, uint64_t total, uint64_t *n_out)
{
    factum_event *evs = malloc(PAGE * sizeof *evs);
    base_buf b = {0};
    if (!evs) {
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    cli_progress bar;
    cli_progress_start(&bar, "export", total);
    int code = CLI_OK;
    uint64_t pos = 1, done = 0;
    while (1) {
        size_t n;
        uint64_t next;
        cli_page_reader();
        int rc = factum_read_all(s, pos, FACTUM_FORWARD, NULL, 0, evs, PAGE, &n, &next);
        if (rc) {
            code = cli_fail(c, rc, "reading $all at position %llu", (unsigned long long)pos);
            break;
        }
        for (size_t i = 0; i < n && !code; i++) {
            b.len = 0;
            if (cli_event_json(&b, &evs[i])) {
                cli_msg(c, "out of memory");
                code = CLI_FAIL;
            } else if (fwrite(b.data, 1, b.len, out) != b.len) {
                cli_msg(c, "writing the export failed: %s", strerror(errno));
                code = CLI_FAIL;
            }
        }
        done += n;
        cli_progress_update(&bar, done);
        if (code || n < PAGE) break;
        pos = next;
    }
    cli_progress_end(&bar);
    free(evs);
    base_buf_free(&b);
    *n_out = done;
    return code;
}

#define REMOTE_PAGE 1000

static int export_events_remote(cli_ctx *c, factum_client *cl, FILE *out, uint64_t total, uint64_t *n_out)
{
    base_buf b = {0};
    cli_progress bar;
    cli_progress_start(&bar, "export", total);
    int code = CLI_OK;
    uint64_t pos = 0, done = 0;
    while (1) {
        factum_client_batch *batch;
        int rc = factum_client_read_all(cl, pos, FACTUM_FORWARD, NULL, REMOTE_PAGE, &batch);
        if (rc) {
            code = cli_remote_fail(c, cl, rc, "reading $all at position %llu", (unsigned long long)pos);
            break;
        }
        size_t n = factum_client_batch_count(batch);
        for (size_t i = 0; i < n && !code; i++) {
            b.len = 0;
            if (cli_event_json(&b, factum_client_batch_event(batch, i))) {
                cli_msg(c, "out of memory");
                code = CLI_FAIL;
            } else if (fwrite(b.data, 1, b.len, out) != b.len) {
                cli_msg(c, "writing the export failed: %s", strerror(errno));
                code = CLI_FAIL;
            }
        }
        if (n) pos = factum_client_batch_event(batch, n - 1)->position + 1;
        factum_client_batch_free(batch);
        done += n;
        cli_progress_update(&bar, done);
        if (code || n < REMOTE_PAGE) break;
    }
    cli_progress_end(&bar);
    base_buf_free(&b);
    *n_out = done;
    return code;
}

/* The server's last position (for the progress bar), 0 if unknown. */
static uint64_t remote_last_position(factum_client *cl)
{
    factum_client_batch *b;
    uint64_t last = 0;
    if (factum_client_read_all(cl, FACTUM_END, FACTUM_BACKWARD, NULL, 1, &b) == 0) {
        if (factum_client_batch_count(b)) last = factum_client_batch_event(b, 0)->position;
        factum_client_batch_free(b);
    }
    return last;
}

/* Close what export read from: the store or the connection. */
static int close_source(cli_ctx *c, factum_store *s, factum_client *cl, int code)
{
    if (cl) {
        factum_client_close(cl);
        return code;
    }
    return cli_close(c, s, code);
}

int cli_cmd_export(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, NULL, 0, &a);
    if (code) return code;
    char *tmp = NULL;
    if (a.help) {
        code = cli_help(export_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 1, ""))) goto out;
    const char *file = a.n_pos && strcmp(a.pos[0], "-") ? a.pos[0] : NULL;
    factum_store *s = NULL;
    factum_client *cl = NULL;
    factum_stats st;
    if (c->server) {
        if ((code = cli_connect(c, &cl))) goto out;
        st.last_position = remote_last_position(cl);
    } else {
        if ((code = cli_open_read(c, &s))) goto out;
        if (factum_store_get_stats(s, &st)) st.last_position = 0;
    }
    FILE *f = stdout;
    if (file) {
        size_t len = strlen(file) + 32;
        if (!(tmp = malloc(len))) {
            cli_msg(c, "out of memory");
            code = close_source(c, s, cl, CLI_FAIL);
            goto out;
        }
        snprintf(tmp, len, "%s.tmp.%ld", file, (long)getpid());
        if (!(f = fopen(tmp, "w"))) {
            code = cli_fail(c, -errno, "cannot create '%s'", tmp);
            code = close_source(c, s, cl, CLI_FAIL);
            goto out;
        }
    }
    uint64_t n = 0;
    code = cl ? export_events_remote(c, cl, f, st.last_position, &n)
              : export_events(c, s, f, st.last_position, &n);
    if (file) {
        if (!code && (fflush(f) || fsync(fileno(f)))) code = cli_fail(c, -errno, "writing '%s'", tmp);
        if (fclose(f) && !code) code = cli_fail(c, -errno, "writing '%s'", tmp);
        if (!code && rename(tmp, file)) code = cli_fail(c, -errno, "renaming '%s' to '%s'", tmp, file);
        if (code) {
            unlink(tmp);
            if (code == CLI_USAGE) code = CLI_FAIL;
        } else {
            printf("exported %llu event%s to %s\n", (unsigned long long)n, n == 1 ? "" : "s", file);
        }
    }
    code = cli_finish_output(c, code);
    code = close_source(c, s, cl, code);
out:
    free(tmp);
    cli_args_free(&a);
    return code;
}

/* ---- import: the streams of the file --------------------------------- */

/* What the file holds for one stream. */
typedef struct sinfo {
    char *name;
    int64_t first;  /* first version in the file; -1: only a tombstone */
    int64_t last;   /* last version so far (pass 1: in the file; pass 2: written) */
    int tombstoned; /* the file ends this stream with a tombstone */
} sinfo;

typedef struct smap {
    sinfo *slots;
    size_t cap, n;
} smap;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void smap_free(smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].name);
    free(m->slots);
}

static sinfo *smap_find(smap *m, const char *name)
{
    if (!m->cap) return NULL;
    for (size_t i = hash_name(name) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].name) return NULL;
        if (!strcmp(m->slots[i].name, name)) return &m->slots[i];
    }
}

/* The entry of `name`, added (first = last = -1) if new; NULL on OOM. */
static sinfo *smap_get(smap *m, const char *name)
{
    sinfo *e = smap_find(m, name);
    if (e) return e;
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        sinfo *slots = calloc(cap, sizeof *slots);
        if (!slots) return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].name) continue;
            size_t j = hash_name(m->slots[i].name) & (cap - 1);
            while (slots[j].name)
                j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    size_t i = hash_name(name) & (m->cap - 1);
    while (m->slots[i].name)
        i = (i + 1) & (m->cap - 1);
    if (!(m->slots[i].name = strdup(name))) return NULL;
    m->slots[i].first = m->slots[i].last = -1;
    m->slots[i].tombstoned = 0;
    m->n++;
    return &m->slots[i];
}

static int is_tombstone(const cli_input_event *ev)
{
    return (uint64_t)ev->version == FACTUM_TOMBSTONE_VERSION;
}

/* ---- import: reading the file ----------------------------------------- */

typedef struct reader {
    FILE *f;
    const char *name;
    char *line;
    size_t cap;
    size_t lineno;
    uint64_t offset; /* bytes read so far, for the progress bar */
} reader;

/* The next event: 1 (ev filled), 0 at the end, or an exit code < 0 (-code). */
static int next_event(cli_ctx *c, reader *r, cli_input_event *ev)
{
    ssize_t len;
    while ((len = getline(&r->line, &r->cap, r->f)) >= 0) {
        r->lineno++;
        r->offset += (uint64_t)len;
        size_t k = 0;
        while (k < (size_t)len && strchr(" \t\r\n", r->line[k]))
            k++;
        if (k == (size_t)len) continue;
        char err[256];
        if (cli_parse_event_line(r->line, (size_t)len, CLI_LINE_IMPORT, ev, err, sizeof err))
            return -cli_usage(c, "%s: line %zu: %s", r->name, r->lineno, err);
        return 1;
    }
    if (ferror(r->f)) return -cli_fail(c, -errno, "reading '%s'", r->name);
    return 0;
}

static factum_event_data event_data(const cli_input_event *in)
{
    factum_event_data e;
    memset(&e, 0, sizeof e);
    e.type = in->type;
    e.has_id = in->has_id;
    memcpy(e.id, in->id, 16);
    e.flags = in->flags;
    e.data = in->data.data;
    e.data_len = in->data.len;
    e.metadata = in->metadata.data;
    e.metadata_len = in->metadata.len;
    return e;
}

/* Pass 1: check every line; fill the stream map. */
static int check_file(cli_ctx *c, reader *r, smap *m, uint64_t size, uint64_t *n_events)
{
    cli_progress bar;
    cli_progress_start(&bar, "checking", size);
    int code = CLI_OK;
    cli_input_event ev;
    int got = 0;
    char err[320];
    while (!code && (got = next_event(c, r, &ev)) > 0) {
        sinfo *e = smap_get(m, ev.stream);
        factum_event_data d = event_data(&ev);
        if (!e) {
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
        } else if (e->tombstoned) {
            code = cli_usage(c, "%s: line %zu: an event of stream '%.64s' after its tombstone", r->name,
                             r->lineno, ev.stream);
        } else if (is_tombstone(&ev)) {
            if (strcmp(ev.type, "$streamDeleted") != 0)
                code = cli_usage(
                    c, "%s: line %zu: version %lld is the tombstone's, but the type is not $streamDeleted",
                    r->name, r->lineno, (long long)ev.version);
            e->tombstoned = 1;
        } else if (e->first >= 0 && ev.version != e->last + 1) {
            code = cli_usage(c, "%s: line %zu: stream '%.64s' version %lld does not follow version %lld",
                             r->name, r->lineno, ev.stream, (long long)ev.version, (long long)e->last);
        } else if (cli_check_batch(&d, 1, err, sizeof err)) {
            cli_msg(c, "%s: line %zu: %s", r->name, r->lineno, err);
            code = CLI_FAIL;
        } else if (cli_check_meta_events(ev.stream, &d, 1, err, sizeof err)) {
            code = cli_usage(c, "%s: line %zu: %s", r->name, r->lineno, err);
        } else {
            if (e->first < 0) e->first = ev.version;
            e->last = ev.version;
            (*n_events)++;
        }
        cli_input_event_free(&ev);
        cli_progress_update(&bar, r->offset);
    }
    cli_progress_end(&bar);
    if (!code && got < 0) code = -got;
    return code;
}

/* Before writing: does each stream of the file start where the store is? */
static int check_store(cli_ctx *c, factum_store *s, smap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        sinfo *e = &m->slots[i];
        if (!e->name) continue;
        int64_t expected = e->first > 0 ? e->first - 1 : FACTUM_NO_STREAM;
        factum_stream_info info;
        memset(&info, 0, sizeof info);
        info.last_version = FACTUM_NO_STREAM; /* without a store: every stream is new */
        int rc = s ? factum_stream_get_info(s, e->name, &info) : 0;
        if (rc) return cli_stream_error(c, s, e->name, expected, rc, NULL);
        if (info.status == FACTUM_STREAM_TOMBSTONED)
            return cli_stream_error(c, s, e->name, expected, FACTUM_EDELETED, NULL);
        if (info.last_version != expected)
            return cli_wrong_version(c, s, e->name, expected, info.last_version);
        e->last = expected;
    }
    return CLI_OK;
}

/* The same check through the client: each stream's last event, by a
 * backward read of one. Where the server does not tell (a soft-deleted
 * stream, or one whose events its metadata hides), the appends' own
 * expectations decide. */
static int check_store_remote(cli_ctx *c, factum_client *cl, smap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        sinfo *e = &m->slots[i];
        if (!e->name) continue;
        int64_t expected = e->first > 0 ? e->first - 1 : FACTUM_NO_STREAM;
        factum_client_batch *b;
        int rc = factum_client_read_stream(cl, e->name, FACTUM_END, FACTUM_BACKWARD, 1, &b);
        int64_t last = expected;
        if (rc == 0 && factum_client_batch_count(b))
            last = (int64_t)factum_client_batch_event(b, 0)->version;
        else if (rc == FACTUM_ENOTFOUND && !cli_remote_soft_deleted(cl, e->name))
            last = FACTUM_NO_STREAM;
        else if (rc && rc != FACTUM_ENOTFOUND)
            return cli_remote_stream_error(c, cl, e->name, expected, rc, NULL);
        factum_client_batch_free(b);
        if (last != expected) return cli_wrong_version(c, NULL, e->name, expected, last);
        e->last = expected;
    }
    return CLI_OK;
}

/* ---- import: writing ---------------------------------------------------- */

typedef struct pending {
    cli_input_event ev[BATCH_EVENTS];
    factum_event_data d[BATCH_EVENTS];
    size_t n, bytes;
    size_t first_line;
} pending;

typedef struct import_state {
    cli_ctx *c;
    factum_store *s;
    factum_client *cl; /* with --server, instead of s */
    smap *m;
    const char *file;
    pending p;
    uint64_t written, first_pos, last_pos;
} import_state;

/* A failed write, reported with the line of the file it came from. */
static int line_error(import_state *st, size_t lineno, const char *stream, int64_t expected, int rc,
                      const factum_append_result *res)
{
    char where[512];
    const char *saved = st->c->cmd;
    snprintf(where, sizeof where, "%s: %s: line %zu", saved, st->file, lineno);
    st->c->cmd = where;
    int code = st->cl ? cli_remote_stream_error(st->c, st->cl, stream, expected, rc, res)
                      : cli_stream_error(st->c, st->s, stream, expected, rc, res);
    st->c->cmd = saved;
    return code;
}

static void pending_clear(pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        cli_input_event_free(&p->ev[i]);
    p->n = p->bytes = 0;
}

static void note_positions(import_state *st, const factum_append_result *res, size_t n)
{
    if (!st->first_pos) st->first_pos = res->first_position;
    st->last_pos = res->last_position;
    st->written += n;
}

static int flush(import_state *st)
{
    pending *p = &st->p;
    if (!p->n) return CLI_OK;
    const char *stream = p->ev[0].stream;
    sinfo *e = smap_find(st->m, stream);
    int64_t expected = p->ev[0].version > 0 ? p->ev[0].version - 1 : FACTUM_NO_STREAM;
    factum_append_result res;
    memset(&res, 0, sizeof res);
    int rc = st->cl ? factum_client_append(st->cl, stream, expected, p->d, p->n, &res)
                    : factum_append(st->s, stream, expected, p->d, p->n, &res);
    int code = CLI_OK;
    if (rc) {
        code = line_error(st, p->first_line, stream, expected, rc, &res);
    } else {
        note_positions(st, &res, p->n);
        if (e) e->last = p->ev[p->n - 1].version;
    }
    pending_clear(p);
    return code;
}

static int tombstone(import_state *st, const cli_input_event *ev, size_t lineno)
{
    sinfo *e = smap_find(st->m, ev->stream);
    int64_t expected = e && e->last >= 0 ? e->last : FACTUM_NO_STREAM;
    factum_append_result res;
    memset(&res, 0, sizeof res);
    int rc = st->cl ? factum_client_tombstone_stream(st->cl, ev->stream, expected, &res)
                    : factum_tombstone_stream(st->s, ev->stream, expected, &res);
    if (rc) {
        return line_error(st, lineno, ev->stream, expected, rc, &res);
    }
    note_positions(st, &res, 1);
    return CLI_OK;
}

static int write_file(import_state *st, reader *r, uint64_t size)
{
    cli_progress bar;
    cli_progress_start(&bar, "importing", size);
    pending *p = &st->p;
    int code = CLI_OK, got = 0;
    cli_input_event ev;
    while (!code && (got = next_event(st->c, r, &ev)) > 0) {
        size_t sz = ev.data.len + ev.metadata.len;
        if (p->n && (is_tombstone(&ev) || strcmp(p->ev[0].stream, ev.stream) != 0 || p->n == BATCH_EVENTS ||
                     p->bytes + sz > BATCH_BYTES))
            code = flush(st);
        if (code) {
            cli_input_event_free(&ev);
        } else if (is_tombstone(&ev)) {
            code = tombstone(st, &ev, r->lineno);
            cli_input_event_free(&ev);
        } else {
            if (!p->n) p->first_line = r->lineno;
            p->ev[p->n] = ev;
            p->d[p->n] = event_data(&p->ev[p->n]);
            p->n++;
            p->bytes += sz;
        }
        cli_progress_update(&bar, r->offset);
    }
    if (!code && got < 0) code = -got;
    if (!code) code = flush(st);
    pending_clear(p);
    cli_progress_end(&bar);
    return code;
}

static const char import_help[] =
    "usage: factum import FILE\n"
    "\n"
    "Append the events of an export file (NDJSON in the shape of 'factum read --json') to the store,\n"
    "normally an empty one. Each event keeps its stream, version and id: consecutive events of a stream\n"
    "are appended together with the exact expected version, metadata events go to their '$$' streams,\n"
    "and tombstones are re-made. Into an empty store every event also keeps its position; timestamps\n"
    "are new, and so are tombstone ids. The whole file is checked first, and each stream must continue\n"
    "where the store has it, so that a bad file or a conflicting store changes nothing. An error while\n"
    "writing stops the import after the batches already written. Shows a progress bar on stderr when\n"
    "stderr is a terminal.\n";

static void print_imported(const import_state *st)
{
    printf("imported %llu event%s into %zu stream%s", (unsigned long long)st->written,
           st->written == 1 ? "" : "s", st->m->n, st->m->n == 1 ? "" : "s");
    if (st->written)
        printf(", positions %llu..%llu", (unsigned long long)st->first_pos, (unsigned long long)st->last_pos);
    printf("\n");
}

/* import through the client (--server), after the file was checked. */
static int import_remote(cli_ctx *c, reader *r, smap *m, uint64_t size)
{
    factum_client *cl;
    int code = cli_connect(c, &cl);
    if (code) return code;
    import_state *st = calloc(1, sizeof *st);
    if (!st) {
        cli_msg(c, "out of memory");
        factum_client_close(cl);
        return CLI_FAIL;
    }
    st->c = c;
    st->cl = cl;
    st->m = m;
    st->file = r->name;
    if (!(code = check_store_remote(c, cl, m))) {
        rewind(r->f);
        r->lineno = 0;
        r->offset = 0;
        code = write_file(st, r, size);
    }
    if (!code) print_imported(st);
    free(st);
    factum_client_close(cl);
    return code;
}

int cli_cmd_import(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, NULL, 0, &a);
    if (code) return code;
    smap m = {0};
    reader r = {0};
    import_state *st = NULL;
    if (a.help) {
        code = cli_help(import_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 1, 1, "FILE")) || (code = cli_need_dir(c))) goto out;
    r.name = a.pos[0];
    struct stat sb;
    if (!(r.f = fopen(r.name, "r"))) {
        code = cli_fail(c, -errno, "cannot open '%s'", r.name);
        goto out;
    }
    if (fstat(fileno(r.f), &sb) || !S_ISREG(sb.st_mode)) {
        code = cli_usage(c, "'%s' is not a regular file (import reads its file twice)", r.name);
        goto out;
    }
    uint64_t n_events = 0, size = (uint64_t)sb.st_size;
    if ((code = check_file(c, &r, &m, size, &n_events))) goto out;
    if (c->server) {
        code = import_remote(c, &r, &m, size);
        goto out;
    }
    if (!cli_store_present(c) && (code = check_store(c, NULL, &m)))
        goto out; /* create nothing on a conflict */
    if (!(st = calloc(1, sizeof *st))) {
        cli_msg(c, "out of memory");
        code = CLI_FAIL;
        goto out;
    }
    factum_store *s;
    if ((code = cli_open_write(c, 1, &s))) goto out;
    st->c = c;
    st->s = s;
    st->m = &m;
    st->file = r.name;
    if (!(code = check_store(c, s, &m))) {
        rewind(r.f);
        r.lineno = 0;
        r.offset = 0;
        code = write_file(st, &r, size);
    }
    int rc = factum_store_sync(s);
    if (rc && !code) code = cli_fail(c, rc, "syncing the store");
    if (!code) print_imported(st);
    code = cli_close(c, s, code);
out:
    free(st);
    free(r.line);
    if (r.f) fclose(r.f);
    smap_free(&m);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
