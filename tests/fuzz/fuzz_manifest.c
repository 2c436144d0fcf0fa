/* Fuzz target: the index manifest's parser (idx_manifest_parse), which
 * src/index/index.c runs on the MANIFEST file when a store opens. Any input
 * must yield a manifest, FACTUM_ECORRUPT or FACTUM_EFORMAT, never a read
 * outside the input. What a successful parse returns is checked here
 * against MAN-2 without the parser's own help (table counts, names inside
 * the input and safe as file names, unique ids below next_table_id, a
 * consistent checkpoint), and formatting it must give the input back byte
 * for byte (MAN-1). Each input is tried as it is and with a valid crc
 * line in place of its last 13 bytes. Seeds: corpus/manifest, written by gen_index_corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static idx_manifest m; /* 4.6 KiB: not on the fuzzer's stack */

static void run(const uint8_t *data, size_t size)
{
    /* A private copy, so that reads past `size` are caught by ASan. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return;
    memcpy(p, data, size);
    int rc = idx_manifest_parse(p, size, &m);
    if (rc != 0 && rc != FACTUM_ECORRUPT && rc != FACTUM_EFORMAT) abort();
    if (rc == 0) {
        if (m.cp.next_position == 0 || (m.cp.covered_lo == 0) != (m.cp.next_position == 1)) abort();
        for (int k = 0; k < IDX_KINDS; k++) {
            if (m.nt[k] > IDX_MAX_TABLES) abort();
            for (size_t i = 0; i < m.nt[k]; i++) {
                const idx_manifest_table *t = &m.t[k][i];
                const uint8_t *n = (const uint8_t *)t->name;
                if (n < p || n + t->name_len > p + size || t->name_len < 5 || t->name_len > IDX_NAME_MAX)
                    abort();
                for (size_t j = 0; j < t->name_len; j++)
                    if (n[j] <= ' ' || n[j] > '~' || n[j] == '/') abort();
                if (memcmp(n + t->name_len - 4, ".tbl", 4)) abort();
                if (t->id == 0 || t->id >= m.next_table_id) abort();
                for (int k2 = 0; k2 < IDX_KINDS; k2++)
                    for (size_t j = 0; j < m.nt[k2]; j++) {
                        const idx_manifest_table *u = &m.t[k2][j];
                        if (u == t) continue;
                        if (u->id == t->id ||
                            (u->name_len == t->name_len && !memcmp(u->name, n, t->name_len)))
                            abort();
                    }
            }
        }
        base_buf b = {0};
        int f = idx_manifest_format(&m, &b);
        if (f == FACTUM_EINVAL || (f == 0 && (b.len != size || memcmp(b.data, p, size)))) abort();
        base_buf_free(&b);
    }
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    /* Again with the last 13 bytes replaced by a valid crc line, so that
     * the fuzzer reaches the syntax behind the checksum. */
    if (size >= 13) {
        uint8_t *p = malloc(size);
        if (!p) return 0;
        memcpy(p, data, size);
        char line[14];
        snprintf(line, sizeof line, "crc %08x\n", base_crc32c(0, p, size - 13));
        memcpy(p + size - 13, line, 13);
        if (memcmp(p, data, size)) run(p, size);
        free(p);
    }
    return 0;
}
