/*
 * events.c - events coming in as text: one NDJSON line per event, as
 * `append --stdin/--file` and `import` read them, and the checks that are
 * made on every event before the store is opened (type, UTF-8, sizes,
 * duplicate ids), so that bad input is refused without changing anything.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "cli/cli.h"
#include "cli/events.h"

int cli_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

int cli_check_type(const char *type, char *err, size_t errlen)
{
    size_t n = strlen(type);
    if (n == 0)
        snprintf(err, errlen, "invalid event type: it is empty");
    else if (n > FACTUM_MAX_TYPE_LEN)
        snprintf(err, errlen, "invalid event type: %zu bytes, the limit is %d", n, FACTUM_MAX_TYPE_LEN);
    else if (!cli_utf8_valid(type, n))
        snprintf(err, errlen, "invalid event type: it is not valid UTF-8");
    else
        return 0;
    return -1;
}

void cli_input_event_free(cli_input_event *ev)
{
    free(ev->stream);
    free(ev->type);
    base_buf_free(&ev->data);
    base_buf_free(&ev->metadata);
    memset(ev, 0, sizeof *ev);
}

static char *dup_str(const json_value *v)
{
    char *s = malloc(v->len + 1);
    if (s) {
        memcpy(s, v->str, v->len);
        s[v->len] = 0;
    }
    return s;
}

/* The payload member `key` (data or metadata) and its "<key>Encoding". */
static int take_payload(const json_value *doc, const char *key, const char *enc_key, base_buf *out,
                        int *is_json, int *present, char *err, size_t errlen)
{
    const json_value *v = json_get(doc, key), *enc = json_get(doc, enc_key);
    *is_json = 0;
    *present = v != NULL;
    if (!v) {
        if (enc) {
            snprintf(err, errlen, "\"%s\" without \"%s\"", enc_key, key);
            return -1;
        }
        return 0;
    }
    if (enc) {
        if (enc->type != JSON_STRING || strcmp(enc->str, "base64") != 0) {
            snprintf(err, errlen, "\"%s\" must be \"base64\"", enc_key);
            return -1;
        }
        if (v->type != JSON_STRING) {
            snprintf(err, errlen, "\"%s\" must be a base64 string", key);
            return -1;
        }
        int rc = cli_base64_decode(v->str, v->len, out);
        if (rc == -ENOMEM) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (rc) {
            snprintf(err, errlen, "\"%s\" is not valid base64", key);
            return -1;
        }
        return 0;
    }
    if (json_write_value(out, v)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *is_json = 1;
    return 0;
}

static int is_key(const char *k, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(k, *keys)) return 1;
    return 0;
}

int cli_parse_event_line(const char *line, size_t len, int mode, cli_input_event *ev, char *err,
                         size_t errlen)
{
    static const char *const append_keys[] = {"type", "data", "dataEncoding", "metadata", "metadataEncoding",
                                              "id",   NULL};
    static const char *const import_keys[] = {
        "type",    "data",     "dataEncoding", "metadata", "metadataEncoding", "id", "stream",
        "version", "position", "timestamp",    NULL};
    memset(ev, 0, sizeof *ev);
    ev->version = -1;
    json_value *doc;
    int rc = json_parse(line, len, &doc);
    if (rc) {
        snprintf(err, errlen, rc == -ENOMEM ? "out of memory" : "not valid JSON");
        return -1;
    }
    rc = -1;
    if (doc->type != JSON_OBJECT) {
        snprintf(err, errlen, "not a JSON object");
        goto out;
    }
    for (size_t i = 0; i < doc->n; i++) {
        if (!is_key(doc->keys[i], mode == CLI_LINE_IMPORT ? import_keys : append_keys)) {
            snprintf(err, errlen, "unknown key \"%.64s\"", doc->keys[i]);
            goto out;
        }
    }
    const json_value *v = json_get(doc, "type");
    if (!v || v->type != JSON_STRING) {
        snprintf(err, errlen, "\"type\" (a string) is required");
        goto out;
    }
    if (strlen(v->str) != v->len) {
        snprintf(err, errlen, "invalid event type: it contains NUL");
        goto out;
    }
    if (cli_check_type(v->str, err, errlen)) goto out;
    if (!(ev->type = dup_str(v))) goto oom;
    if ((v = json_get(doc, "id"))) {
        if (v->type != JSON_STRING || factum_uuid_parse(v->str, v->len, ev->id)) {
            snprintf(err, errlen, "\"id\" is not a UUID");
            goto out;
        }
        ev->has_id = 1;
    }
    if (mode == CLI_LINE_IMPORT) {
        v = json_get(doc, "stream");
        if (!v || v->type != JSON_STRING || strlen(v->str) != v->len ||
            factum_check_stream_name(v->str, v->len)) {
            snprintf(err, errlen, "\"stream\" (a valid stream name) is required");
            goto out;
        }
        if (!(ev->stream = dup_str(v))) goto oom;
        v = json_get(doc, "version");
        int64_t ver;
        if (!v || json_int64(v, &ver) || ver < 0) {
            snprintf(err, errlen, "\"version\" (an integer >= 0) is required");
            goto out;
        }
        ev->version = ver;
    }
    int is_json, present;
    if (take_payload(doc, "data", "dataEncoding", &ev->data, &is_json, &present, err, errlen)) goto out;
    if (is_json) ev->flags |= FACTUM_EVENT_JSON;
    if (take_payload(doc, "metadata", "metadataEncoding", &ev->metadata, &is_json, &present, err, errlen))
        goto out;
    if (is_json) {
        ev->flags |= FACTUM_EVENT_META_JSON;
        if (mode == CLI_LINE_APPEND && json_get(doc, "metadata")->type != JSON_OBJECT) {
            snprintf(err, errlen, "\"metadata\" must be a JSON object");
            goto out;
        }
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    json_free(doc);
    if (rc) cli_input_event_free(ev);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

int cli_check_batch(const factum_event_data *evs, size_t n, char *err, size_t errlen)
{
    size_t total = 0, n_ids = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sz = evs[i].data_len + evs[i].metadata_len;
        if (sz > CLI_MAX_EVENT_SIZE) {
            snprintf(err, errlen, "event %zu is %zu bytes (data + metadata), over the limit of %u bytes",
                     i + 1, sz, (unsigned)CLI_MAX_EVENT_SIZE);
            return FACTUM_ETOOBIG;
        }
        total += sz;
        if (evs[i].has_id) n_ids++;
    }
    if (total > CLI_MAX_APPEND_SIZE) {
        snprintf(err, errlen, "the events are %zu bytes together, over the limit of %u bytes for one append",
                 total, (unsigned)CLI_MAX_APPEND_SIZE);
        return FACTUM_ETOOBIG;
    }
    if (n_ids < 2) return 0;
    uint8_t(*ids)[16] = malloc(n_ids * 16);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (evs[i].has_id) memcpy(ids[k++], evs[i].id, 16);
    qsort(ids, n_ids, 16, cmp_id);
    int rc = 0;
    for (size_t i = 1; i < n_ids && !rc; i++) {
        if (!memcmp(ids[i - 1], ids[i], 16)) {
            char text[37];
            factum_uuid_format(ids[i], text);
            snprintf(err, errlen, "event id %s appears more than once", text);
            rc = FACTUM_EDUPLICATEID;
        }
    }
    free(ids);
    return rc;
}

int cli_check_meta_events(const char *stream, const factum_event_data *evs, size_t n, char *err,
                          size_t errlen)
{
    if (!(stream[0] == '$' && stream[1] == '$' && stream[2])) return 0;
    for (size_t i = 0; i < n; i++) {
        factum_stream_metadata m;
        if (strcmp(evs[i].type, "$metadata") != 0) {
            snprintf(err, errlen, "stream '%.64s' holds metadata: its events must have type $metadata",
                     stream);
            return -1;
        }
        if (!evs[i].data || factum_stream_metadata_parse(evs[i].data, evs[i].data_len, &m)) {
            snprintf(err, errlen,
                     "stream '%.64s' holds metadata: the data must be a JSON object whose $-keys have their "
                     "types ($maxAge, $maxCount, $tb, $cacheControl: integers >= 0; $acl: an object)",
                     stream);
            return -1;
        }
    }
    return 0;
}
