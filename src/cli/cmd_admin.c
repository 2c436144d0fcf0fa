/*
 * cmd_admin.c - the commands that look at the store as a whole: `verify`
 * (every checksum, frame and index entry, offline), `dump` (every raw log
 * record) and `stats` (the counters of an open store, or with --server the
 * server's Monitoring.Stats). verify and dump read files: local only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/chain.h"
#include "cli/cli.h"

/* ---- verify --------------------------------------------------------- */

static const char verify_help[] =
    "usage: factum verify [--json] [--archive-dir DIR] [--chain [--receipt FILE [--public-key FILE]]]\n"
    "\n"
    "Check every record of the store (checksums, framing, gapless positions, the index) without changing\n"
    "anything. Prints each damage found (file, offset, what) and a summary. Exit status 0 if the store is\n"
    "intact (a torn, never acknowledged write at the end is not damage), 1 if it is damaged.\n"
    "\n"
    "  --json          print one JSON object: intact, damage (a list of {file, offset, what}), segments,\n"
    "                  batches, events, bytes, firstPosition, lastPosition, tornTail; with --chain also\n"
    "                  chain {batches, firstPosition, head, receipt}\n"
    "  --archive-dir DIR  the store's archive directory, when it is not the one the store recorded\n"
    "  --chain         also recompute the hash chain (a SHA-256 of every event): a batch changed after it\n"
    "                  was written, with its checksums fixed, breaks it\n"
    "  --receipt FILE  with --chain: a signed head from 'factum chain sign'; the chain must pass through it\n"
    "                  (a log cut, replaced, or changed and re-hashed since the receipt fails)\n"
    "  --public-key F  the receipt must be signed with this key (PREFIX.pub from 'factum chain keygen')\n";

static const cli_opt verify_opts[] = {
    {"json", 0}, {"chain", 0}, {"receipt", CLI_ARG}, {"public-key", CLI_ARG}, {"archive-dir", CLI_ARG}};

typedef struct damage_list {
    int json;
    base_buf buf; /* JSON: the members of the "damage" array */
    int oom;
} damage_list;

static void on_damage(void *ctx, const factum_damage *d)
{
    damage_list *l = ctx;
    if (!l->json) {
        printf("damage: %s offset %" PRIu64 ": %s\n", d->file, d->offset, d->what);
        return;
    }
    int rc = base_buf_printf(&l->buf, "%s{\"file\":", l->buf.len ? "," : "");
    if (!rc) rc = json_write_string(&l->buf, d->file, strlen(d->file));
    if (!rc) rc = base_buf_printf(&l->buf, ",\"offset\":%" PRIu64 ",\"what\":", d->offset);
    if (!rc) rc = json_write_string(&l->buf, d->what, strlen(d->what));
    if (!rc) rc = base_buf_append(&l->buf, "}", 1);
    if (rc) l->oom = 1;
}

int cli_cmd_verify(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, verify_opts, sizeof verify_opts / sizeof verify_opts[0], &a);
    if (code) return code;
    damage_list l = {cli_has(&a, "json"), {0}, 0};
    if (a.help) {
        code = cli_help(verify_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, "")) ||
        (code = cli_local_only(c, "verify reads the files of a data directory (give --data DIR)")) ||
        (code = cli_need_dir(c)))
        goto out;
    factum_chain_head expect;
    factum_verify_options vo = {.chain = cli_has(&a, "chain"), .archive_dir = cli_get(&a, "archive-dir")};
    const char *receipt = cli_get(&a, "receipt"), *pubkey = cli_get(&a, "public-key");
    if ((receipt || pubkey) && !vo.chain) {
        code = cli_usage(c, "--receipt and --public-key need --chain");
        goto out;
    }
    if (pubkey && !receipt) {
        code = cli_usage(c, "--public-key checks a --receipt");
        goto out;
    }
    if (receipt) {
        if ((code = chain_read_receipt(c, receipt, pubkey, &expect))) goto out;
        vo.expect = &expect;
    }
    factum_verify_report r;
    int rc = factum_verify_with(c->data_dir, &vo, on_damage, &l, &r);
    if (rc && rc != FACTUM_ECORRUPT) {
        code = cli_open_error(c, rc, 0);
        goto out;
    }
    int intact = rc == 0;
    if (l.oom) {
        cli_msg(c, "out of memory");
        code = CLI_FAIL;
        goto out;
    }
    char head[FACTUM_CHAIN_JSON_MAX];
    factum_chain_head_json(&r.chain_head, head, sizeof head);
    if (l.json) {
        printf("{\"intact\":%s,\"damage\":[%.*s],\"segments\":%" PRIu64 ",\"batches\":%" PRIu64
               ",\"events\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"firstPosition\":%" PRIu64
               ",\"lastPosition\":%" PRIu64 ",\"removed\":%" PRIu64 ",\"tornTail\":%s",
               intact ? "true" : "false", (int)l.buf.len, l.buf.data ? (const char *)l.buf.data : "",
               r.segments, r.batches, r.events, r.bytes, r.first_position, r.last_position, r.removed,
               r.torn_tail ? "true" : "false");
        if (vo.chain)
            printf(",\"chain\":{\"batches\":%" PRIu64 ",\"firstPosition\":%" PRIu64
                   ",\"head\":%s,\"receipt\":%s}",
                   r.chain_batches, r.chain_first_position, head,
                   !receipt            ? "null"
                   : r.receipt_checked ? "true"
                                       : "false");
        printf("}\n");
    } else {
        printf("segments %" PRIu64 ", batches %" PRIu64 ", events %" PRIu64 ", payload bytes %" PRIu64,
               r.segments, r.batches, r.events, r.bytes);
        if (r.events) printf(", positions %" PRIu64 "..%" PRIu64, r.first_position, r.last_position);
        if (r.removed) printf(" (%" PRIu64 " of them removed by scavenges: their digests remain)", r.removed);
        printf("\n");
        if (r.torn_tail) printf("the log ends in a torn write that was never acknowledged (not damage)\n");
        if (vo.chain) {
            if (r.chain_first_position)
                printf("hash chain: %" PRIu64 " batches from position %" PRIu64 " checked; head %s\n",
                       r.chain_batches, r.chain_first_position, head);
            else
                printf("hash chain: no hashed batch yet (written by a library older than format 3)\n");
            if (receipt && r.receipt_checked)
                printf("the receipt's head (position %" PRIu64 ") is on the chain\n", expect.position);
        }
        if (intact)
            printf("intact\n");
        else
            printf("DAMAGED: %" PRIu64 " finding%s\n", r.damaged, r.damaged == 1 ? "" : "s");
    }
    code = intact ? CLI_OK : CLI_FAIL;
    if (!intact) {
        /* The one line on stderr that scripts see: */
        cli_msg(c, "the store in '%s' is damaged (%" PRIu64 " finding%s)", c->data_dir, r.damaged,
                r.damaged == 1 ? "" : "s");
    }
out:
    base_buf_free(&l.buf);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

/* ---- dump ----------------------------------------------------------- */

static const char dump_help[] =
    "usage: factum dump [--json]\n"
    "\n"
    "Print every raw record of the log, in order, without changing anything: file, offset, length, crc,\n"
    "kind (batch or event) and position; batches also their number of events, events their stream,\n"
    "version and type. Stops with exit status 1 at the first damaged record.\n"
    "\n"
    "  --json   NDJSON: {file, offset, length, crc, kind, position, events} for a batch,\n"
    "           {file, offset, length, crc, kind, position, stream, version, type} for an event\n";

typedef struct dump_ctx {
    int json;
    base_buf buf;
    uint64_t records;
    char last_file[64];
    uint64_t last_end;
} dump_ctx;

static int dump_cb(void *ctx, const factum_raw_record *r)
{
    dump_ctx *d = ctx;
    int is_event = r->ev && !strcmp(r->kind, "event");
    d->records++;
    snprintf(d->last_file, sizeof d->last_file, "%s", r->file);
    d->last_end = r->offset + r->length;
    if (!d->json) {
        printf("%s  %10" PRIu64 "  len %6u  crc %08x  %-5s  pos %" PRIu64, r->file, r->offset, r->length,
               r->crc, r->kind, r->position);
        if (is_event) {
            printf("  ");
            fwrite(r->ev->stream, 1, r->ev->stream_len, stdout);
            if (r->ev->version == FACTUM_TOMBSTONE_VERSION)
                printf("@tombstone  ");
            else
                printf("@%" PRIu64 "  ", r->ev->version);
            fwrite(r->ev->type, 1, r->ev->type_len, stdout);
        } else {
            printf("  events %u", r->n_events);
        }
        fputc('\n', stdout);
        return 0;
    }
    d->buf.len = 0;
    int rc = base_buf_append(&d->buf, "{\"file\":", 8);
    if (!rc) rc = json_write_string(&d->buf, r->file, strlen(r->file));
    if (!rc)
        rc = base_buf_printf(&d->buf,
                             ",\"offset\":%" PRIu64
                             ",\"length\":%u,\"crc\":\"%08x\",\"kind\":\"%s\",\"position\":%" PRIu64,
                             r->offset, r->length, r->crc, r->kind, r->position);
    if (!rc && is_event) {
        rc = base_buf_append(&d->buf, ",\"stream\":", 10);
        if (!rc) rc = json_write_string(&d->buf, r->ev->stream, r->ev->stream_len);
        if (!rc) rc = base_buf_printf(&d->buf, ",\"version\":%" PRIu64 ",\"type\":", r->ev->version);
        if (!rc) rc = json_write_string(&d->buf, r->ev->type, r->ev->type_len);
    } else if (!rc) {
        rc = base_buf_printf(&d->buf, ",\"events\":%u", r->n_events);
    }
    if (!rc) rc = base_buf_append(&d->buf, "}\n", 2);
    if (rc) return rc;
    fwrite(d->buf.data, 1, d->buf.len, stdout);
    return 0;
}

int cli_cmd_dump(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, verify_opts, 1, &a);
    if (code) return code;
    dump_ctx d = {cli_has(&a, "json"), {0}, 0, "", 0};
    if (a.help) {
        code = cli_help(dump_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, "")) ||
        (code = cli_local_only(c, "dump reads the files of a data directory (give --data DIR)")) ||
        (code = cli_need_dir(c)))
        goto out;
    int rc = factum_dump(c->data_dir, dump_cb, &d);
    if (rc == FACTUM_ECORRUPT) {
        if (d.records)
            cli_msg(c,
                    "damaged record after %s offset %" PRIu64 " (%" PRIu64
                    " records printed); run factum verify",
                    d.last_file, d.last_end, d.records);
        else
            cli_msg(c, "the first record of the log is damaged; run factum verify");
        code = CLI_FAIL;
    } else if (rc) {
        code = cli_open_error(c, rc, 0);
    }
out:
    base_buf_free(&d.buf);
    cli_args_free(&a);
    return cli_finish_output(c, code);
}

/* ---- stats ---------------------------------------------------------- */

static const char stats_help[] =
    "usage: factum stats [--json]\n"
    "\n"
    "Open the store (read-only) and print its statistics: last position, log bytes, index tables,\n"
    "memtable entries, stream cache size, durability, and the counters since open (appends, events and\n"
    "bytes written, fsyncs, group commits), which are 0 for a command-line open. With --server, the\n"
    "server's statistics (Monitoring.Stats), one 'key value' per line.\n"
    "\n"
    "  --json   print one JSON object with the same fields\n";

/* The server's statistics: its "key value" lines as they come, or one
 * JSON object (numbers where the value is one). */
static int remote_stats(cli_ctx *c, int as_json)
{
    factum_client *cl;
    int code = cli_connect(c, &cl);
    if (code) return code;
    char *text;
    int rc = factum_client_stats(cl, &text);
    if (rc) {
        code = cli_remote_fail(c, cl, rc, "reading the server's statistics");
    } else if (!as_json) {
        fputs(text, stdout);
    } else {
        base_buf b = {0};
        int brc = base_buf_append(&b, "{", 1);
        int first = 1;
        for (const char *line = text; !brc && *line;) {
            const char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            const char *sp = memchr(line, ' ', len);
            if (sp) {
                const char *v = sp + 1;
                size_t vl = (size_t)(line + len - v);
                int num = vl > 0 && vl < 20;
                for (size_t i = 0; i < vl && num; i++)
                    num = v[i] >= '0' && v[i] <= '9';
                if (!first) brc = base_buf_append(&b, ",", 1);
                first = 0;
                if (!brc) brc = json_write_string(&b, line, (size_t)(sp - line));
                if (!brc) brc = base_buf_append(&b, ":", 1);
                if (!brc) brc = num ? base_buf_append(&b, v, vl) : json_write_string(&b, v, vl);
            }
            line += len + (nl != NULL);
        }
        if (!brc) brc = base_buf_append(&b, "}\n", 2);
        if (brc) {
            cli_msg(c, "out of memory");
            code = CLI_FAIL;
        } else {
            fwrite(b.data, 1, b.len, stdout);
        }
        base_buf_free(&b);
    }
    if (!rc) free(text);
    factum_client_close(cl);
    return code;
}

int cli_cmd_stats(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, verify_opts, 1, &a);
    if (code) return code;
    if (a.help) {
        code = cli_help(stats_help);
        goto out;
    }
    if ((code = cli_want_pos(c, &a, 0, 0, ""))) goto out;
    if (c->server) {
        code = remote_stats(c, cli_has(&a, "json"));
        goto out;
    }
    factum_store *s;
    if ((code = cli_open_read(c, &s))) goto out;
    factum_stats st;
    int rc = factum_store_get_stats(s, &st);
    if (rc) {
        code = cli_fail(c, rc, "reading the statistics");
    } else {
        const struct {
            const char *key, *label;
            uint64_t v;
        } f[] = {
            {"lastPosition", "last position", st.last_position},
            {"logBytes", "log bytes", st.log_bytes},
            {"indexTables", "index tables", st.index_tables},
            {"memtableEntries", "memtable entries", st.memtable_entries},
            {"streamCacheSize", "stream cache size", st.stream_cache_size},
            {"appends", "appends", st.appends},
            {"eventsWritten", "events written", st.events_written},
            {"bytesWritten", "bytes written", st.bytes_written},
            {"fsyncs", "fsyncs", st.fsyncs},
            {"fsyncNsTotal", "fsync ns total", st.fsync_ns_total},
            {"fsyncNsMax", "fsync ns max", st.fsync_ns_max},
            {"groups", "group commits", st.groups},
            {"groupEventsMax", "largest group", st.group_events_max},
        };
        const char *dur = st.durability == FACTUM_RELAXED ? "relaxed" : "durable";
        int json = cli_has(&a, "json");
        if (json) printf("{");
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            if (json)
                printf("\"%s\":%" PRIu64 ",", f[i].key, f[i].v);
            else
                printf("%-18s %" PRIu64 "\n", f[i].label, f[i].v);
        }
        if (json) {
            printf("\"durability\":\"%s\",\"failed\":%s,\"failedCode\":%d}\n", dur,
                   st.failed ? "true" : "false", st.failed_code);
        } else {
            printf("%-18s %s\n", "durability", dur);
            if (st.failed)
                printf("%-18s %s\n", "failed", factum_strerror(st.failed_code));
            else
                printf("%-18s no\n", "failed");
        }
    }
    code = cli_finish_output(c, code);
    code = cli_close(c, s, code);
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
