/* Fuzz target: the JSON parser (stream metadata documents come from users
 * and from disk) and the metadata interpretation on top of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    json_value *v = NULL;
    int rc = json_parse(p, size, &v);
    int vrc = json_validate(p, size);
    if ((rc == 0) != (vrc == 0) && rc != -12 /* ENOMEM */) abort();
    if (!rc) {
        base_buf b = {0};
        if (json_write_value(&b, v) == 0) {
            /* What we write must parse again. */
            json_value *w = NULL;
            if (json_parse((const char *)b.data, b.len, &w) != 0) abort();
            json_free(w);
        }
        base_buf_free(&b);
        json_free(v);
    }
    factum_stream_metadata m;
    factum_stream_metadata_parse(p, size, &m);
    free(p);
    return 0;
}
