/* Unit tests of the hash chain (LOG-7, ADR 0025): the head follows every
 * commit and survives reopening; factum_verify_with(chain) recomputes it;
 * a changed byte (with its CRC fixed), a removed batch and two swapped
 * batches (positions renumbered, CRCs fixed) are each detected, by the
 * chain itself or, when the whole chain was recomputed by whoever changed
 * the log, by an exported head (a receipt); a store written by an older
 * library starts its chain in its first segment of format 3. */
#include "harness.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "store/store_int.h"

static char dir[512];

static factum_store *open_dir(void)
{
    factum_options o;
    harness_small_opts(&o);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

/* n appends of k events each to streams s-0..s-4. */
static void append_some(factum_store *s, int n, int k)
{
    for (int i = 0; i < n; i++) {
        factum_event_data e[8];
        for (int j = 0; j < k && j < 8; j++)
            e[j] = harness_event("Happened", "{\"n\":12345,\"who\":\"somebody\"}");
        char stream[16];
        snprintf(stream, sizeof stream, "s-%d", i % 5);
        CHECK_RC(factum_append(s, stream, FACTUM_ANY, e, (size_t)k, NULL), 0);
    }
}

typedef struct found {
    int n;
    char first[256];
    uint64_t offset;
} found;

static void on_damage(void *ctx, const factum_damage *d)
{
    found *f = ctx;
    if (!f->n++) {
        snprintf(f->first, sizeof f->first, "%s", d->what);
        f->offset = d->offset;
    }
}

static int verify_chain(const factum_chain_head *expect, factum_verify_report *r, found *f)
{
    factum_verify_options o = {.chain = 1, .expect = expect};
    memset(f, 0, sizeof *f);
    return factum_verify_with(dir, &o, on_damage, f, r);
}

static void t_head_follows_commits(void)
{
    harness_tmpdir(dir, sizeof dir, "chain_head");
    factum_store *s = open_dir();
    REQUIRE(s);
    factum_chain_head h0, h1, h2;
    CHECK_RC(factum_chain_get_head(s, &h0), 0);
    CHECK_EQ_U64(h0.position, 0);
    append_some(s, 1, 1);
    CHECK_RC(factum_chain_get_head(s, &h1), 0);
    CHECK_EQ_U64(h1.position, 1);
    CHECK(memcmp(h0.hash, h1.hash, 32) != 0);
    CHECK(memcmp(h0.store_uuid, s->uuid, 16) == 0);
    append_some(s, 200, 3);
    CHECK_RC(factum_chain_get_head(s, &h2), 0);
    CHECK_EQ_U64(h2.position, 601);
    factum_store_close(s);

    /* Offline, and recomputed from the log, the head is the same. */
    factum_chain_head off;
    CHECK_RC(factum_chain_head_offline(dir, &off), 0);
    CHECK_EQ_U64(off.position, 601);
    CHECK(memcmp(off.hash, h2.hash, 32) == 0);
    factum_verify_report r;
    found f;
    CHECK_RC(verify_chain(&h1, &r, &f), 0);
    CHECK_EQ_U64(r.chain_batches, 201);
    CHECK_EQ_U64(r.chain_first_position, 1);
    CHECK_EQ_U64(r.chain_head.position, 601);
    CHECK(memcmp(r.chain_head.hash, h2.hash, 32) == 0);
    CHECK(r.receipt_checked);
    CHECK_RC(verify_chain(&h0, &r, &f), 0); /* the empty store's head: the genesis */
    CHECK(r.receipt_checked);

    /* Reopened (the index checkpoint covers everything: the head is found
     * through the position map), the chain goes on from the same head. */
    s = open_dir();
    REQUIRE(s);
    factum_chain_head h3;
    CHECK_RC(factum_chain_get_head(s, &h3), 0);
    CHECK_EQ_U64(h3.position, 601);
    CHECK(memcmp(h3.hash, h2.hash, 32) == 0);
    append_some(s, 1500, 2); /* into more segments */
    CHECK(atomic_load(&s->log->n_segs) > 1);
    CHECK_RC(factum_chain_get_head(s, &h3), 0);
    factum_store_close(s);
    CHECK_RC(verify_chain(&h2, &r, &f), 0);
    CHECK(r.receipt_checked);
    CHECK_EQ_U64(r.chain_head.position, 3601);
    CHECK(memcmp(r.chain_head.hash, h3.hash, 32) == 0);

    /* A head of another store, or one the log never reached, is refused. */
    factum_chain_head bad = h2;
    bad.store_uuid[0] ^= 1;
    CHECK_RC(verify_chain(&bad, &r, &f), FACTUM_ECORRUPT);
    CHECK(strstr(f.first, "another store") != NULL);
    bad = h3;
    bad.position = 5000;
    CHECK_RC(verify_chain(&bad, &r, &f), FACTUM_ECORRUPT);
    CHECK(strstr(f.first, "cut or replaced") != NULL);
    bad = h2;
    bad.hash[31] ^= 1;
    CHECK_RC(verify_chain(&bad, &r, &f), FACTUM_ECORRUPT);
    CHECK(strstr(f.first, "does not pass through") != NULL);
    harness_rm_rf(dir);
}

/* ---- changing the log as someone with write access to the files could --- */

typedef struct rframe {
    uint8_t *p;
    uint32_t len;
} rframe;

typedef struct rbatch {
    uint8_t hdr[LOG_BATCH_CHAIN_LEN];
    rframe ev[16];
    int n;
} rbatch;

/* Read the batches of segment 0 (the tests keep to one). */
static int read_batches(const char *seg, rbatch *b, int cap, uint8_t **map_out)
{
    int fd = open(seg, O_RDONLY);
    if (fd < 0) return -1;
    size_t size = 1u << 20;
    uint8_t *m = malloc(size);
    if (pread(fd, m, size, 0) != (ssize_t)size) {
        close(fd);
        free(m);
        return -1;
    }
    close(fd);
    int nb = 0;
    uint64_t off = LOG_SEG_HEADER;
    while (off < size && base_get32(m + off) && nb < cap) {
        log_batch_hdr bh;
        int type;
        int n = log_decode_frame(m + off, size - off, &type, NULL, &bh, NULL);
        if (n <= 0 || type != LOG_FRAME_BATCH) break;
        memcpy(b[nb].hdr, m + off, (size_t)n);
        off += (uint64_t)n;
        b[nb].n = 0;
        for (uint32_t i = 0; i < bh.n_events && i < 16; i++) {
            uint32_t len = base_get32(m + off);
            b[nb].ev[i] = (rframe){m + off, len};
            b[nb].n++;
            off += len;
        }
        nb++;
    }
    *map_out = m;
    return nb;
}

static uint32_t frame_crc(const uint8_t *p, uint32_t len)
{
    return base_crc32c(base_crc32c(0, p, 4), p + 8, len - 8);
}

/* Write batches back with consecutive positions from 1 and valid CRCs;
 * with rechain, also with a recomputed chain (a thorough forger). Then
 * drop the index, which the next open rebuilds from the log. */
static void write_batches(const char *seg, rbatch *b, int nb, const uint8_t uuid[16], int rechain)
{
    size_t size = 1u << 20;
    uint8_t *out = calloc(1, size);
    int fd = open(seg, O_RDWR);
    CHECK(fd >= 0 && pread(fd, out, LOG_SEG_HEADER, 0) == LOG_SEG_HEADER);
    uint64_t off = LOG_SEG_HEADER, pos = 1;
    log_hasher h;
    CHECK_RC(log_hasher_init(&h), 0);
    uint8_t prev[32];
    log_chain_genesis(&h, uuid, prev);
    for (int i = 0; i < nb; i++) {
        uint8_t *bf = out + off;
        memcpy(bf, b[i].hdr, LOG_BATCH_CHAIN_LEN);
        base_put64(bf + 16, pos);
        off += LOG_BATCH_CHAIN_LEN;
        uint8_t *evs = out + off;
        uint64_t body = 0;
        for (int j = 0; j < b[i].n; j++) {
            uint8_t *e = out + off;
            memcpy(e, b[i].ev[j].p, b[i].ev[j].len);
            base_put64(e + 16, pos++);
            base_put32(e + 4, frame_crc(e, b[i].ev[j].len));
            off += b[i].ev[j].len;
            body += b[i].ev[j].len;
        }
        if (rechain) {
            uint8_t hsh[32];
            CHECK_RC(log_chain_batch(&h, prev, bf, evs, body, hsh), 0);
            memcpy(bf + 40, hsh, 32);
            memcpy(prev, hsh, 32);
        }
        base_put32(bf + 4, frame_crc(bf, LOG_BATCH_CHAIN_LEN));
    }
    log_hasher_free(&h);
    CHECK(pwrite(fd, out, size, 0) == (ssize_t)size);
    close(fd);
    free(out);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/index'", dir);
    CHECK(system(cmd) == 0);
    factum_store *s = open_dir(); /* rebuilds the index over the changed log */
    REQUIRE(s);
    factum_store_close(s);
}

/* A store of 12 batches of 3 events; its head after batch 12 and the
 * segment's path. */
static void make_store(const char *name, factum_chain_head *head, char *seg, size_t seg_len, uint8_t uuid[16])
{
    harness_tmpdir(dir, sizeof dir, name);
    factum_store *s = open_dir();
    REQUIRE(s);
    append_some(s, 12, 3);
    CHECK_RC(factum_chain_get_head(s, head), 0);
    memcpy(uuid, s->uuid, 16);
    factum_store_close(s);
    snprintf(seg, seg_len, "%s/log/00000000.seg", dir);
}

static void t_changed_byte(void)
{
    factum_chain_head head;
    char seg[600];
    uint8_t uuid[16];
    make_store("chain_byte", &head, seg, sizeof seg, uuid);
    rbatch b[16];
    uint8_t *m;
    REQUIRE(read_batches(seg, b, 16, &m) == 12);
    /* One byte of batch 5's second event's data ("12345" -> "92345"), its
     * CRC fixed: the checksums cannot tell. */
    uint8_t *e = b[4].ev[1].p;
    uint8_t *d = memmem(e, b[4].ev[1].len, "12345", 5);
    REQUIRE(d);
    *d = '9';
    write_batches(seg, b, 12, uuid, 0);
    free(m);
    factum_verify_report r;
    found f;
    CHECK_RC(factum_verify(dir, NULL, NULL, &r), 0);
    CHECK_RC(verify_chain(NULL, &r, &f), FACTUM_ECORRUPT);
    CHECK_EQ_U64(f.n, 1); /* that batch alone: the others link to what was written */
    CHECK(strstr(f.first, "positions 13..15") != NULL);
    CHECK_EQ_U64(r.chain_batches, 11);
    harness_rm_rf(dir);
}

static void t_removed_batch(void)
{
    factum_chain_head head;
    char seg[600];
    uint8_t uuid[16];
    make_store("chain_removed", &head, seg, sizeof seg, uuid);
    rbatch b[16];
    uint8_t *m;
    REQUIRE(read_batches(seg, b, 16, &m) == 12);
    /* Batch 7 goes; later positions move down to close the gap. */
    memmove(&b[6], &b[7], 5 * sizeof b[0]);
    write_batches(seg, b, 11, uuid, 0);
    factum_verify_report r;
    found f;
    CHECK_RC(factum_verify(dir, NULL, NULL, &r), 0);
    CHECK_RC(verify_chain(NULL, &r, &f), FACTUM_ECORRUPT);
    CHECK(strstr(f.first, "hash chain broken") != NULL);
    /* The same, with the whole chain recomputed: consistent in itself, but
     * not through the head exported before. */
    write_batches(seg, b, 11, uuid, 1);
    free(m);
    CHECK_RC(verify_chain(NULL, &r, &f), 0);
    CHECK_RC(verify_chain(&head, &r, &f), FACTUM_ECORRUPT);
    CHECK(f.n >= 1);
    CHECK(!r.receipt_checked);
    harness_rm_rf(dir);
}

static void t_swapped_batches(void)
{
    factum_chain_head head;
    char seg[600];
    uint8_t uuid[16];
    make_store("chain_swapped", &head, seg, sizeof seg, uuid);
    rbatch b[16];
    uint8_t *m;
    REQUIRE(read_batches(seg, b, 16, &m) == 12);
    rbatch t = b[3];
    b[3] = b[8];
    b[8] = t;
    write_batches(seg, b, 12, uuid, 0);
    factum_verify_report r;
    found f;
    CHECK_RC(factum_verify(dir, NULL, NULL, &r), 0);
    CHECK_RC(verify_chain(NULL, &r, &f), FACTUM_ECORRUPT);
    CHECK(f.n >= 2); /* both moved batches */
    write_batches(seg, b, 12, uuid, 1);
    free(m);
    CHECK_RC(verify_chain(NULL, &r, &f), 0);
    CHECK_RC(verify_chain(&head, &r, &f), FACTUM_ECORRUPT); /* same position, another hash */
    CHECK(strstr(f.first, "does not pass through") != NULL);
    harness_rm_rf(dir);
}

/* A store an older library wrote (segments of format 2: plain batches) goes
 * on writing plain batches in its last segment, and chains from its first
 * new segment on, from the genesis. */
static void t_older_store(void)
{
    harness_tmpdir(dir, sizeof dir, "chain_older");
    log_new_segment_format = 2;
    factum_store *s = open_dir();
    log_new_segment_format = FACTUM_FORMAT_VERSION;
    REQUIRE(s);
    append_some(s, 50, 2);
    factum_store_close(s);
    /* Segments made ahead by the old writer say 2 too. */
    for (int no = 0; no < 4; no++) {
        char p[700];
        snprintf(p, sizeof p, "%s/log/%08d.seg", dir, no);
        int fd = open(p, O_RDWR);
        if (fd < 0) break;
        uint8_t h[64];
        CHECK(pread(fd, h, 64, 0) == 64);
        if (base_get32(h + 8) != 2) {
            base_put32(h + 8, 2);
            base_put32(h + 56, base_crc32c(0, h, 56));
            CHECK(pwrite(fd, h, 64, 0) == 64);
        }
        close(fd);
    }
    s = open_dir();
    REQUIRE(s);
    factum_chain_head h;
    CHECK_RC(factum_chain_get_head(s, &h), 0);
    CHECK_EQ_U64(h.position, 0);
    append_some(s, 10, 2); /* still the old segment */
    CHECK_RC(factum_chain_get_head(s, &h), 0);
    CHECK_EQ_U64(h.position, 0);
    uint64_t segs = atomic_load(&s->log->n_segs);
    append_some(s, 3000, 8); /* on into new segments (about 7,000 events fill one) */
    CHECK(atomic_load(&s->log->n_segs) > segs + 1);
    CHECK_RC(factum_chain_get_head(s, &h), 0);
    CHECK_EQ_U64(h.position, 24120);
    factum_store_close(s);
    factum_verify_report r;
    found f;
    CHECK_RC(verify_chain(&h, &r, &f), 0);
    CHECK(r.chain_first_position > 120);
    CHECK(r.receipt_checked);
    CHECK_EQ_U64(r.chain_head.position, 24120);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_head_follows_commits);
    RUN(t_changed_byte);
    RUN(t_removed_batch);
    RUN(t_swapped_batches);
    RUN(t_older_store);
    return harness_done();
}
