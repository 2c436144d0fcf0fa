/*
 * manifest.c - the index manifest's text (manifest.h), without I/O:
 *
 *   factum-index 1
 *   covered_lo <u64>
 *   next_position <u64>
 *   next_table_id <u64>
 *   table <s|i|c> <id> <file>     kinds in this order, oldest first within each
 *   crc <8 lowercase hex digits>  CRC32C of all bytes before this line
 *
 * Numbers are decimal without sign or leading zeros; every line ends with
 * '\n' and nothing follows the crc line. The parser takes exactly this
 * (MAN-1) rather than whatever sscanf would let through: a manifest is only
 * ever written by idx_manifest_format, so anything else is damage, and the
 * index is rebuilt from the log.
 */
#include "index/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base/base.h"

static const char kind_chars[IDX_KINDS] = {'s', 'i', 'c'};

#define CRC_LINE 13u /* "crc " + 8 hex digits + '\n' */

char idx_kind_char(int kind)
{
    return kind >= 0 && kind < IDX_KINDS ? kind_chars[kind] : '?';
}

/* A cursor over the bytes before the crc line. */
typedef struct cur {
    const uint8_t *p, *end;
} cur;

static int lit(cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n)) return 0;
    c->p += n;
    return 1;
}

/* A canonical decimal u64: "0", or digits without a leading zero. */
static int num(cur *c, uint64_t *v)
{
    const uint8_t *s = c->p;
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
        c->p++;
    }
    size_t n = (size_t)(c->p - s);
    if (n == 0 || (n > 1 && s[0] == '0')) return 0;
    *v = x;
    return 1;
}

/* "<key> <u64>\n" */
static int field(cur *c, const char *key, uint64_t *v)
{
    return lit(c, key) && lit(c, " ") && num(c, v) && lit(c, "\n");
}

/* A table's file name: printable, no '/', ending in ".tbl" (MAN-2). */
static int name_ok(const char *s, size_t n)
{
    if (n <= 4 || n > IDX_NAME_MAX || memcmp(s + n - 4, ".tbl", 4)) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '/') return 0;
    return 1;
}

/* MAN-2, for the parser's result and before anything is written. */
static int check(const idx_manifest *m)
{
    if (m->cp.next_position == 0 || (m->cp.covered_lo == 0) != (m->cp.next_position == 1)) return 0;
    for (int k = 0; k < IDX_KINDS; k++) {
        if (m->nt[k] > IDX_MAX_TABLES) return 0;
        for (size_t i = 0; i < m->nt[k]; i++) {
            const idx_manifest_table *a = &m->t[k][i];
            if (!name_ok(a->name, a->name_len) || a->id == 0 || a->id >= m->next_table_id) return 0;
            /* Unique, against every table before it (at most 192: quadratic is fine). */
            for (int k2 = 0; k2 <= k; k2++)
                for (size_t j = 0; j < (k2 == k ? i : m->nt[k2]); j++) {
                    const idx_manifest_table *b = &m->t[k2][j];
                    if (b->id == a->id ||
                        (b->name_len == a->name_len && !memcmp(b->name, a->name, a->name_len)))
                        return 0;
                }
        }
    }
    return 1;
}

static int hexval(uint8_t ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

int idx_manifest_parse(const uint8_t *buf, size_t len, idx_manifest *m)
{
    memset(m, 0, sizeof *m);
    /* The last line is the CRC of everything before it; nothing is read
     * before it matched. */
    if (len < CRC_LINE) return FACTUM_ECORRUPT;
    const uint8_t *cl = buf + len - CRC_LINE;
    if (memcmp(cl, "crc ", 4) || cl[CRC_LINE - 1] != '\n') return FACTUM_ECORRUPT;
    uint32_t crc = 0;
    for (unsigned i = 0; i < 8; i++) {
        int h = hexval(cl[4 + i]);
        if (h < 0) return FACTUM_ECORRUPT;
        crc = crc << 4 | (uint32_t)h;
    }
    if (crc != base_crc32c(0, buf, len - CRC_LINE)) return FACTUM_ECORRUPT;
    cur c = {buf, cl};
    uint64_t version;
    if (!field(&c, "factum-index", &version)) return FACTUM_ECORRUPT;
    if (version > IDX_MANIFEST_VERSION) return FACTUM_EFORMAT;
    if (version != IDX_MANIFEST_VERSION) return FACTUM_ECORRUPT;
    if (!field(&c, "covered_lo", &m->cp.covered_lo) || !field(&c, "next_position", &m->cp.next_position) ||
        !field(&c, "next_table_id", &m->next_table_id))
        return FACTUM_ECORRUPT;
    int last_kind = 0;
    while (c.p < c.end) {
        uint64_t id;
        if (!lit(&c, "table ") || c.p == c.end) return FACTUM_ECORRUPT;
        int k = 0;
        while (k < IDX_KINDS && kind_chars[k] != (char)*c.p)
            k++;
        if (k == IDX_KINDS || k < last_kind || m->nt[k] == IDX_MAX_TABLES) return FACTUM_ECORRUPT;
        c.p++;
        if (!lit(&c, " ") || !num(&c, &id) || !lit(&c, " ")) return FACTUM_ECORRUPT;
        const uint8_t *name = c.p;
        while (c.p < c.end && *c.p != '\n')
            c.p++;
        if (!lit(&c, "\n")) return FACTUM_ECORRUPT;
        idx_manifest_table *t = &m->t[k][m->nt[k]++];
        t->id = id;
        t->name = (const char *)name;
        t->name_len = (size_t)(c.p - 1 - name);
        last_kind = k;
    }
    return check(m) ? 0 : FACTUM_ECORRUPT;
}

int idx_manifest_format(const idx_manifest *m, base_buf *b)
{
    if (!check(m)) return FACTUM_EINVAL;
    size_t start = b->len;
    int rc = base_buf_printf(
        b, "factum-index %d\ncovered_lo %" PRIu64 "\nnext_position %" PRIu64 "\nnext_table_id %" PRIu64 "\n",
        IDX_MANIFEST_VERSION, m->cp.covered_lo, m->cp.next_position, m->next_table_id);
    for (int k = 0; k < IDX_KINDS && !rc; k++)
        for (size_t i = 0; i < m->nt[k] && !rc; i++) {
            const idx_manifest_table *t = &m->t[k][i];
            rc = base_buf_printf(b, "table %c %" PRIu64 " %.*s\n", kind_chars[k], t->id, (int)t->name_len,
                                 t->name);
        }
    if (!rc) rc = base_buf_printf(b, "crc %08x\n", base_crc32c(0, b->data + start, b->len - start));
    return rc;
}
