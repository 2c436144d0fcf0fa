/*
 * chain.c - the hash chain over the log's batches (LOG-7, docs/format.md,
 * ADR 0025). Each event frame is hashed on its own, so that a batch's hash
 * can still be recomputed from the 32-byte digests of events a scavenge
 * removed; a batch's hash takes the previous one, so no batch can be
 * changed, dropped, inserted or moved without every later hash changing.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "log/log.h"

static const char genesis_label[] = "factum hash chain v1";

int log_hasher_init(log_hasher *h)
{
    memset(h, 0, sizeof *h);
    if (!(h->md = EVP_MD_fetch(NULL, "SHA256", NULL)) || !(h->batch = EVP_MD_CTX_new()) ||
        !(h->event = EVP_MD_CTX_new())) {
        log_hasher_free(h);
        return -ENOMEM;
    }
    return 0;
}

void log_hasher_free(log_hasher *h)
{
    EVP_MD_CTX_free(h->event);
    EVP_MD_CTX_free(h->batch);
    EVP_MD_free(h->md);
    memset(h, 0, sizeof *h);
}

static int one(log_hasher *h, EVP_MD_CTX *c, const void *a, size_t alen, const void *b, size_t blen,
               uint8_t out[LOG_HASH_LEN])
{
    unsigned n = 0;
    if (EVP_DigestInit_ex2(c, h->md, NULL) != 1 || EVP_DigestUpdate(c, a, alen) != 1 ||
        (blen && EVP_DigestUpdate(c, b, blen) != 1) || EVP_DigestFinal_ex(c, out, &n) != 1 ||
        n != LOG_HASH_LEN)
        return -ENOMEM;
    return 0;
}

int log_chain_genesis(log_hasher *h, const uint8_t uuid[16], uint8_t out[LOG_HASH_LEN])
{
    return one(h, h->batch, genesis_label, sizeof genesis_label - 1, uuid, 16, out);
}

int log_chain_genesis_of(const uint8_t uuid[16], uint8_t out[LOG_HASH_LEN])
{
    log_hasher h;
    int rc = log_hasher_init(&h);
    if (!rc) rc = log_chain_genesis(&h, uuid, out);
    log_hasher_free(&h);
    return rc;
}

int log_chain_event(log_hasher *h, const uint8_t *frame, size_t len, uint8_t out[LOG_HASH_LEN])
{
    return one(h, h->event, frame, len, NULL, 0, out);
}

int log_chain_begin(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame)
{
    EVP_MD_CTX *c = h->batch;
    return EVP_DigestInit_ex2(c, h->md, NULL) == 1 && EVP_DigestUpdate(c, prev, LOG_HASH_LEN) == 1 &&
                   EVP_DigestUpdate(c, frame + 8, 32) == 1
               ? 0
               : -ENOMEM;
}

int log_chain_add(log_hasher *h, const uint8_t *digests, size_t n)
{
    return !n || EVP_DigestUpdate(h->batch, digests, n * LOG_HASH_LEN) == 1 ? 0 : -ENOMEM;
}

int log_chain_end(log_hasher *h, uint8_t out[LOG_HASH_LEN])
{
    unsigned n = 0;
    return EVP_DigestFinal_ex(h->batch, out, &n) == 1 && n == LOG_HASH_LEN ? 0 : -ENOMEM;
}

int log_chain_combine(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame,
                      const uint8_t *digests, size_t n, uint8_t out[LOG_HASH_LEN])
{
    int rc = log_chain_begin(h, prev, frame);
    if (!rc) rc = log_chain_add(h, digests, n);
    return rc ? rc : log_chain_end(h, out);
}

int log_chain_batch(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame,
                    const uint8_t *events, uint64_t body_len, uint8_t out[LOG_HASH_LEN])
{
    enum { CHUNK = 64 }; /* digests gathered before they go into the batch's hash */
    uint8_t dig[CHUNK * LOG_HASH_LEN];
    int rc = log_chain_begin(h, prev, frame);
    size_t k = 0;
    for (uint64_t off = 0; off < body_len && !rc;) {
        uint32_t len = body_len - off >= 8 ? base_get32(events + off) : 0;
        if (len < 8 || (len & 7) || len > body_len - off) {
            rc = FACTUM_ECORRUPT;
            break;
        }
        rc = log_chain_event(h, events + off, len, dig + k * LOG_HASH_LEN);
        off += len;
        if (!rc && (++k == CHUNK || off == body_len)) {
            rc = log_chain_add(h, dig, k);
            k = 0;
        }
    }
    return rc ? rc : log_chain_end(h, out);
}

int log_event_digest(flog *l, log_hasher *h, uint64_t lo, uint64_t position, uint8_t out[LOG_HASH_LEN])
{
    uint64_t avail;
    const uint8_t *p = log_ptr(l, lo, &avail);
    if (!p) return FACTUM_ECORRUPT;
    int type;
    factum_event ev;
    int n = log_decode_frame(p, avail, &type, &ev, NULL, NULL);
    if (n <= 0) return FACTUM_ECORRUPT;
    if (type == LOG_FRAME_REMOVED) {
        log_removed r;
        log_removed_get(p, &r);
        if (position < r.first_position || position - r.first_position >= r.count) return FACTUM_ECORRUPT;
        memcpy(out, r.digests + (position - r.first_position) * LOG_HASH_LEN, LOG_HASH_LEN);
        return 0;
    }
    if (ev.position != position) return FACTUM_ECORRUPT;
    if (ev.flags & LOG_EV_STUB) {
        memcpy(out, ev.data, LOG_HASH_LEN);
        return 0;
    }
    return log_chain_event(h, p, (size_t)n, out);
}
