/* Fuzz target: what a read model reads from outside (src/rm).
 * The first byte chooses:
 *   0  a definition document (rm_def_parse, with its statements compiled
 *      for both targets): from administrators, over the network;
 *   1  "path\n json": a JSON path into event data (jscan_path and
 *      jscan_unescape): event data is written by any client;
 *   2  a query's SQL text, compiled with named parameters for each target,
 *      then bound from a JSON object (rest after the first '\n'). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rm/rm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int named(void *ctx, const char *name, size_t len, rm_param *p, char *err, size_t err_len)
{
    (void)ctx, (void)err, (void)err_len;
    p->src = RMP_NAMED;
    if (!(p->path = malloc(len + 1))) return -ENOMEM;
    memcpy(p->path, name, len);
    p->path[len] = 0;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 3;
    char *p = malloc(size);
    if (!p) return 0;
    memcpy(p, data + 1, size - 1);
    p[size - 1] = 0;
    size_t len = size - 1;
    char err[256];
    if (mode == 0) {
        rm_def *d = NULL;
        if (rm_def_parse(p, len, &d, err, sizeof err) == 0) {
            for (size_t i = 0; i < d->n_handlers; i++)
                if (rm_def_handler(d, d->handlers[i].type, strlen(d->handlers[i].type)) != &d->handlers[i]) abort();
            rm_def_free(d);
        }
    } else if (mode == 1) {
        char *nl = memchr(p, '\n', len);
        if (nl) {
            size_t plen = (size_t)(nl - p);
            const char *json = nl + 1;
            size_t jlen = len - plen - 1;
            jscan_val v = jscan_path(json, jlen, p, plen);
            if (v.kind != JV_MISSING && (v.p < json || v.p + v.len > json + jlen)) abort();
            if (v.kind == JV_STRING) {
                base_buf b = {0};
                int rc = jscan_unescape(&b, v.p, v.len);
                if (!rc && (b.len < 1 || b.len > v.len + 1 || b.data[b.len - 1] != 0)) abort();
                base_buf_free(&b);
            }
        }
    } else {
        char *nl = memchr(p, '\n', len);
        const char *params = nl ? nl + 1 : "{}";
        if (nl) *nl = 0;
        for (int t = 0; t < 2; t++) {
            rm_stmt st;
            if (rm_stmt_compile(&st, p, t, named, NULL, err, sizeof err)) continue;
            if (!st.target_text || st.n_params > 100) abort();
            base_buf sc = {0};
            rm_value v[100];
            size_t n = 0;
            for (; n < st.n_params; n++)
                if (rm_bind_named(&st.params[n], params, strlen(params), &sc, &v[n]) == -ENOMEM) break;
            rm_values_fix(v, n, &sc);
            base_buf_free(&sc);
            rm_stmt_free(&st);
        }
    }
    free(p);
    return 0;
}
