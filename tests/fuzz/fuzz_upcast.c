/* Fuzz target: upcaster documents and their application (src/store/
 * upcast.c). Documents come from any client (an append to $upcasters);
 * event data and metadata too. The input is split at NUL bytes: the first
 * parts are documents (each checked with factum_upcaster_check, whose
 * verdict must not depend on anything but the bytes), the last two the
 * event's data and metadata, upcast through the valid documents as type
 * "T" (upc_apply_docs). What must hold: no crash, no leak; a success is
 * 0 (as stored) or 1 (upcast: JSON object data, metadata holding
 * "$schemaVersion", within the size limit); a failure is FACTUM_EUPCAST
 * with a message naming the event, or -ENOMEM. And with an upcaster of no
 * steps the data comes out as json.c parses and writes it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "factum.h"
#include "store/upcast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PARTS 8
#define MAX_OUT   65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *part[MAX_PARTS + 2];
    size_t len[MAX_PARTS + 2], n = 0;
    const char *p = (const char *)data, *end = p + size;
    while (n < MAX_PARTS + 2) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        part[n] = p;
        len[n++] = (size_t)((z ? z : end) - p);
        if (!z) break;
        p = z + 1;
    }
    if (n < 3) return 0;
    size_t ndocs = n - 2;
    char err[256];
    for (size_t i = 0; i < ndocs; i++) {
        int a = factum_upcaster_check(part[i], len[i], err, sizeof err);
        int b = factum_upcaster_check(part[i], len[i], NULL, 0);
        if (a != b || (a && a != FACTUM_EINVAL && a != FACTUM_EBADJSON && a != -ENOMEM)) abort();
        if (a && !err[0]) abort();
    }
    /* The event, as a type every document may name. */
    factum_event ev;
    memset(&ev, 0, sizeof ev);
    ev.stream = "fuzz-1";
    ev.stream_len = 6;
    ev.type = "T";
    ev.type_len = 1;
    ev.position = 7;
    ev.data = (const uint8_t *)part[ndocs];
    ev.data_len = len[ndocs];
    ev.metadata = (const uint8_t *)part[ndocs + 1];
    ev.metadata_len = len[ndocs + 1];
    factum_upcast_buf *b;
    if (factum_upcast_buf_new(&b)) return 0;
    factum_event out;
    int rc = upc_apply_docs(part, len, ndocs, MAX_OUT, &ev, b, &out);
    if (rc == 1) {
        if (out.data_len + out.metadata_len > MAX_OUT) abort();
        json_value *v = NULL;
        if (json_parse((const char *)out.data, out.data_len, &v) || v->type != JSON_OBJECT) abort();
        json_free(v);
        v = NULL;
        if (json_parse((const char *)out.metadata, out.metadata_len, &v) || !json_get(v, "$schemaVersion")) abort();
        json_free(v);
        if (!out.type || strlen(out.type) != out.type_len) abort();
    } else if (rc == 0) {
        if (out.data != ev.data || out.metadata != ev.metadata) abort();
    } else if (rc == FACTUM_EUPCAST) {
        if (!strstr(factum_upcast_buf_error(b), "event 0@fuzz-1 (position 7")) abort();
    } else if (rc != -ENOMEM) {
        abort();
    }
    /* Differential: an upcaster without steps rewrites the data as json.c
     * would (upcast.c parses into its arena and writes by itself). */
    static const char none[] = "{\"eventType\":\"T\",\"fromVersion\":1,\"toVersion\":2,\"steps\":[]}";
    const char *d1[] = {none};
    size_t l1[] = {sizeof none - 1};
    factum_event plain = ev;
    plain.metadata_len = 0;
    rc = upc_apply_docs(d1, l1, 1, SIZE_MAX, &plain, b, &out);
    json_value *v = NULL;
    int ok = json_parse((const char *)ev.data, ev.data_len, &v) == 0 && v->type == JSON_OBJECT;
    if (rc == 1) {
        base_buf w = {0};
        if (!ok || json_write_value(&w, v) || w.len != out.data_len || memcmp(w.data, out.data, w.len)) abort();
        base_buf_free(&w);
    } else if (rc != -ENOMEM && (rc != FACTUM_EUPCAST || ok)) {
        abort();
    }
    json_free(v);
    factum_upcast_buf_free(b);
    return 0;
}
