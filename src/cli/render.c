/*
 * render.c - how events look on the command line: one human line per event
 * (fitted to the terminal), and one NDJSON object per event, the shape that
 * `read --json` and `export` print and `import` reads back. Also base64,
 * timestamps, and the progress bar that long commands draw on stderr when
 * it is a terminal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "cli/cli.h"
#include "cli/events.h"

void cli_format_time(int64_t ns, char buf[32])
{
    int64_t sec = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, 32, "?");
        return;
    }
    size_t n = strftime(buf, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", (int)(rem / 1000000));
}

/* ---- base64 --------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int cli_base64_encode(base_buf *b, const uint8_t *p, size_t n)
{
    if (base_buf_reserve(b, (n + 2) / 3 * 4)) return -ENOMEM;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], i + 1 < n ? b64[(v >> 6) & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        memcpy(b->data + b->len, q, 4);
        b->len += 4;
    }
    return 0;
}

static int b64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

int cli_base64_decode(const char *s, size_t n, base_buf *out)
{
    if (n % 4) return FACTUM_EBADJSON;
    if (base_buf_reserve(out, n / 4 * 3 + 1)) return -ENOMEM;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(s[i + k])) < 0) {
                return FACTUM_EBADJSON; /* a character after '=' or outside the alphabet */
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t bytes[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
        memcpy(out->data + out->len, bytes, (size_t)(3 - pad));
        out->len += (size_t)(3 - pad);
    }
    return 0;
}

/* ---- JSON ----------------------------------------------------------- */

int cli_json_compact(base_buf *b, const char *text, size_t len)
{
    json_value *v;
    int rc = json_parse(text, len, &v);
    if (rc) return rc;
    rc = json_write_value(b, v);
    json_free(v);
    return rc;
}

/* A payload as a JSON member: the value itself when it is flagged JSON and
 * parses (re-written compactly, so that a pretty-printed document stays on
 * one line), else a base64 string and "<key>Encoding":"base64". */
static int payload_json(base_buf *b, const char *key, const uint8_t *p, size_t n, int is_json)
{
    int rc = base_buf_printf(b, ",\"%s\":", key);
    if (rc) return rc;
    if (is_json) {
        size_t mark = b->len;
        if (!cli_json_compact(b, (const char *)p, n)) return 0;
        b->len = mark;
    }
    rc = base_buf_append(b, "\"", 1);
    if (!rc) rc = cli_base64_encode(b, p, n);
    if (!rc) rc = base_buf_printf(b, "\",\"%sEncoding\":\"base64\"", key);
    return rc;
}

int cli_event_json(base_buf *b, const factum_event *ev)
{
    char id[37], ts[32];
    factum_uuid_format(ev->id, id);
    cli_format_time(ev->timestamp_ns, ts);
    int rc = base_buf_append(b, "{\"stream\":", 10);
    if (!rc) rc = json_write_string(b, ev->stream, ev->stream_len);
    if (!rc)
        rc = base_buf_printf(b, ",\"version\":%llu,\"position\":%llu,\"id\":\"%s\",\"type\":",
                             (unsigned long long)ev->version, (unsigned long long)ev->position, id);
    if (!rc) rc = json_write_string(b, ev->type, ev->type_len);
    if (!rc) rc = base_buf_printf(b, ",\"timestamp\":\"%s\"", ts);
    if (!rc && (ev->flags & FACTUM_EVENT_SHREDDED)) rc = base_buf_printf(b, ",\"shredded\":true");
    if (!rc && (ev->flags & FACTUM_EVENT_SEALED)) rc = base_buf_printf(b, ",\"sealed\":true");
    if (!rc) rc = payload_json(b, "data", ev->data, ev->data_len, (ev->flags & FACTUM_EVENT_JSON) != 0);
    if (!rc && (ev->metadata_len || (ev->flags & FACTUM_EVENT_META_JSON)))
        rc = payload_json(b, "metadata", ev->metadata, ev->metadata_len,
                          (ev->flags & FACTUM_EVENT_META_JSON) != 0);
    if (!rc) rc = base_buf_append(b, "}\n", 2);
    return rc;
}

/* ---- human lines ---------------------------------------------------- */

int cli_output_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    const char *cols = getenv("COLUMNS");
    if (cols) {
        long v = strtol(cols, NULL, 10);
        if (v >= 20 && v <= 100000) return (int)v;
    }
    return 120;
}

/* Columns taken by UTF-8 text (one per code point: good enough here). */
static size_t columns(const char *s, size_t n)
{
    size_t cols = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) cols++;
    return cols;
}

/* Write s, cut to at most `avail` columns with "..." marking the cut. */
static void put_fitted(const char *s, size_t n, size_t avail)
{
    if (columns(s, n) <= avail) {
        fwrite(s, 1, n, stdout);
        return;
    }
    size_t keep = avail > 3 ? avail - 3 : 0, cols = 0, i = 0;
    for (; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (cols == keep) break;
            cols++;
        }
    }
    fwrite(s, 1, i, stdout);
    fputs("...", stdout);
}

void cli_event_line(const factum_event *ev, int width)
{
    char id[37], ts[32], head[256];
    factum_uuid_format(ev->id, id);
    cli_format_time(ev->timestamp_ns, ts);
    base_buf line = {0};
    int rc = base_buf_printf(&line, "%llu  ", (unsigned long long)ev->position);
    if (!rc) rc = base_buf_append(&line, ev->stream, ev->stream_len);
    if (!rc && ev->version == FACTUM_TOMBSTONE_VERSION)
        rc = base_buf_printf(&line, "@tombstone  ");
    else if (!rc)
        rc = base_buf_printf(&line, "@%llu  ", (unsigned long long)ev->version);
    if (!rc) rc = base_buf_append(&line, ev->type, ev->type_len);
    snprintf(head, sizeof head, "  %.8s  %s  ", id, ts);
    if (!rc) rc = base_buf_append(&line, head, strlen(head));
    /* Control characters in names would garble the terminal. */
    for (size_t i = 0; !rc && i < line.len; i++)
        if (line.data[i] < 0x20 || line.data[i] == 0x7f) line.data[i] = '?';
    size_t used = rc ? 0 : columns((const char *)line.data, line.len);
    base_buf data = {0};
    if (!rc) {
        int shown = 0;
        if (ev->flags & FACTUM_EVENT_JSON)
            shown = !cli_json_compact(&data, (const char *)ev->data, ev->data_len);
        if (!shown) {
            data.len = 0;
            if (ev->flags & FACTUM_EVENT_SHREDDED)
                rc = base_buf_printf(&data, "<shredded>");
            else if (ev->flags & FACTUM_EVENT_SEALED)
                rc = base_buf_printf(&data, "<sealed: give --master-key-file>");
            else if (ev->data_len == 0)
                rc = base_buf_printf(&data, "<empty>");
            else if (cli_utf8_valid((const char *)ev->data, ev->data_len))
                rc = json_write_string(&data, (const char *)ev->data, ev->data_len);
            else
                rc = base_buf_printf(&data, "<binary, %zu bytes>", ev->data_len);
        }
    }
    if (!rc) {
        fwrite(line.data, 1, line.len, stdout);
        size_t avail = (size_t)width > used + 16 ? (size_t)width - used : 16;
        put_fitted((const char *)data.data, data.len, avail);
        fputc('\n', stdout);
    } else {
        printf("%llu  (out of memory)\n", (unsigned long long)ev->position);
    }
    base_buf_free(&line);
    base_buf_free(&data);
}

/* ---- progress ------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
}

static void draw(cli_progress *p, uint64_t done)
{
    enum { BAR = 30 };
    uint64_t total = p->total ? p->total : 1;
    if (done > total) done = total;
    int pct = (int)(done * 100 / total);
    int fill = (int)(done * BAR / total);
    char bar[BAR + 1];
    for (int i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    fprintf(stderr, "\r%s [%s] %3d%% %llu/%llu", p->label, bar, pct, (unsigned long long)done,
            (unsigned long long)p->total);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    if (!p->on) return;
    uint64_t now = mono_ns();
    if (p->drawn && now - p->last_ns < 100000000u && done < p->total) return;
    p->last_ns = now;
    draw(p, done);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->on || !p->drawn) return;
    fputs("\r\033[K", stderr); /* leave the line clean for the summary */
    fflush(stderr);
}
