/*
 * frame.c - encoding and checking of the log's frames (docs/format.md).
 * log_decode_frame is the one place where bytes from disk become events, so
 * it checks every length against what is available before touching it, and
 * the CRC before trusting any field (LOG-2). It is fuzzed (tests/fuzz).
 *
 * Event frame:                          Batch frame (48 bytes):
 *   0 u32 length   4 u32 crc              0 u32 length=48  4 u32 crc
 *   8 u8 type=2    9 u8 flags             8 u8 type=1      9 u8 flags
 *  10 u16 stream_len 12 u16 type_len     12 u32 n_events
 *  14 u16 0       16 u64 position        16 u64 first_position
 *  24 u64 version 32 i64 timestamp_ns    24 u64 body_len
 *  40 u8[16] event id                    32 i64 timestamp_ns
 *  56 u32 data_len 60 u32 meta_len       40 u32 0   44 u32 length
 *  64 stream NUL type NUL data metadata, zero padding, u32 length
 *
 * A chained batch frame (80 bytes, LOG-7) has the same bytes 0..39, then
 * 40 u8[32] the batch's chain hash, 72 u32 0, 76 u32 length=80.
 *
 * Compacted generations (LOG-8) add removed frames (type 3; log.h) and
 * stubs: event frames with LOG_EV_STUB whose 32 data bytes are the digest
 * of the frame they replace.
 */
#include "log/log.h"

static uint32_t frame_crc(const uint8_t *p, uint32_t len)
{
    uint32_t c = base_crc32c(0, p, 4);
    return base_crc32c(c, p + 8, len - 8);
}

void log_encode_event(uint8_t *p, const factum_event *ev, uint32_t frame_flags)
{
    uint32_t len = log_event_frame_len(ev->stream_len, ev->type_len, ev->data_len, ev->metadata_len);
    base_put32(p, len);
    p[8] = LOG_FRAME_EVENT;
    p[9] = (uint8_t)((ev->flags & (FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON)) | frame_flags);
    base_put16(p + 10, (uint16_t)ev->stream_len);
    base_put16(p + 12, (uint16_t)ev->type_len);
    base_put16(p + 14, 0);
    base_put64(p + 16, ev->position);
    base_put64(p + 24, ev->version);
    base_put64(p + 32, (uint64_t)ev->timestamp_ns);
    memcpy(p + 40, ev->id, 16);
    base_put32(p + 56, (uint32_t)ev->data_len);
    base_put32(p + 60, (uint32_t)ev->metadata_len);
    uint8_t *q = p + LOG_EVENT_HDR_LEN;
    memcpy(q, ev->stream, ev->stream_len);
    q += ev->stream_len;
    *q++ = 0;
    memcpy(q, ev->type, ev->type_len);
    q += ev->type_len;
    *q++ = 0;
    if (ev->data_len) memcpy(q, ev->data, ev->data_len);
    q += ev->data_len;
    if (ev->metadata_len) memcpy(q, ev->metadata, ev->metadata_len);
    q += ev->metadata_len;
    while (q < p + len - 4)
        *q++ = 0;
    base_put32(p + len - 4, len);
    base_put32(p + 4, frame_crc(p, len));
}

void log_encode_batch(uint8_t *p, uint32_t n_events, uint64_t first_position, uint64_t body_len, int64_t ts,
                      uint32_t flags, const uint8_t *chain)
{
    uint32_t len = chain ? LOG_BATCH_CHAIN_LEN : LOG_BATCH_FRAME_LEN;
    memset(p, 0, len);
    base_put32(p, len);
    p[8] = LOG_FRAME_BATCH;
    p[9] = (uint8_t)flags;
    base_put32(p + 12, n_events);
    base_put64(p + 16, first_position);
    base_put64(p + 24, body_len);
    base_put64(p + 32, (uint64_t)ts);
    if (chain) memcpy(p + 40, chain, LOG_HASH_LEN);
    base_put32(p + len - 4, len);
    base_put32(p + 4, frame_crc(p, len));
}

void log_encode_removed(uint8_t *p, uint64_t first_position, uint32_t count, const uint8_t *digests)
{
    uint32_t len = log_removed_frame_len(count);
    memset(p, 0, LOG_REMOVED_HDR_LEN);
    base_put32(p, len);
    p[8] = LOG_FRAME_REMOVED;
    base_put32(p + 12, count);
    base_put64(p + 16, first_position);
    memcpy(p + LOG_REMOVED_HDR_LEN, digests, (size_t)count * LOG_HASH_LEN);
    base_put32(p + len - 8, 0);
    base_put32(p + len - 4, len);
    base_put32(p + 4, frame_crc(p, len));
}

void log_removed_get(const uint8_t *p, log_removed *r)
{
    r->count = base_get32(p + 12);
    r->first_position = base_get64(p + 16);
    r->digests = p + LOG_REMOVED_HDR_LEN;
}

uint32_t log_stub_len(const factum_event *ev)
{
    return log_event_frame_len(ev->stream_len, ev->type_len, LOG_HASH_LEN, 0);
}

void log_encode_stub(uint8_t *p, const factum_event *ev, uint32_t frame_flags, const uint8_t *digest)
{
    factum_event st = *ev;
    st.data = digest;
    st.data_len = LOG_HASH_LEN;
    st.metadata = NULL;
    st.metadata_len = 0;
    log_encode_event(
        p, &st, (frame_flags & ~(uint32_t)(FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON | LOG_EV_SEALED)) | LOG_EV_STUB);
}

int log_decode_frame(const uint8_t *p, uint64_t avail, int *type, factum_event *ev, log_batch_hdr *bh,
                     uint32_t *frame_flags)
{
    if (avail < 8) return FACTUM_ECORRUPT;
    uint32_t len = base_get32(p);
    if (len == 0) {
        /* Zero bytes: no frame here. Anything else non-zero is damage. */
        return base_get32(p + 4) == 0 ? 0 : FACTUM_ECORRUPT;
    }
    if (len < LOG_BATCH_FRAME_LEN || (len & 7) || len > avail) return FACTUM_ECORRUPT;
    if (base_get32(p + len - 4) != len) return FACTUM_ECORRUPT;
    if (frame_crc(p, len) != base_get32(p + 4)) return FACTUM_ECORRUPT;
    int t = p[8];
    if (type) *type = t;
    if (frame_flags) *frame_flags = p[9];
    if (t == LOG_FRAME_BATCH) {
        if (!bh || (len != LOG_BATCH_FRAME_LEN && len != LOG_BATCH_CHAIN_LEN)) return FACTUM_ECORRUPT;
        bh->frame_len = len;
        if (len == LOG_BATCH_CHAIN_LEN)
            memcpy(bh->chain, p + 40, LOG_HASH_LEN);
        else
            memset(bh->chain, 0, LOG_HASH_LEN);
        bh->flags = p[9];
        bh->n_events = base_get32(p + 12);
        bh->first_position = base_get64(p + 16);
        bh->body_len = base_get64(p + 24);
        bh->timestamp = (int64_t)base_get64(p + 32);
        if (bh->n_events == 0 || bh->first_position == 0) return FACTUM_ECORRUPT;
        return (int)len;
    }
    if (t == LOG_FRAME_REMOVED) {
        uint32_t count = base_get32(p + 12);
        if (count == 0 || count > (len - LOG_REMOVED_HDR_LEN) / LOG_HASH_LEN ||
            log_removed_frame_len(count) != len || base_get64(p + 16) == 0)
            return FACTUM_ECORRUPT;
        return (int)len;
    }
    if (t != LOG_FRAME_EVENT || !ev) return FACTUM_ECORRUPT;
    if (len < LOG_EVENT_HDR_LEN + 4) return FACTUM_ECORRUPT;
    uint64_t slen = base_get16(p + 10), tlen = base_get16(p + 12);
    uint64_t dlen = base_get32(p + 56), mlen = base_get32(p + 60);
    uint64_t need = LOG_EVENT_HDR_LEN + slen + 1 + tlen + 1 + dlen + mlen + 4;
    if (need > len || base_align_up(need, 8) != len) return FACTUM_ECORRUPT;
    if (slen == 0 || tlen == 0) return FACTUM_ECORRUPT;
    const uint8_t *q = p + LOG_EVENT_HDR_LEN;
    if (q[slen] != 0 || q[slen + 1 + tlen] != 0) return FACTUM_ECORRUPT;
    ev->stream = (const char *)q;
    ev->stream_len = slen;
    ev->type = (const char *)q + slen + 1;
    ev->type_len = tlen;
    ev->data = q + slen + 1 + tlen + 1;
    ev->data_len = dlen;
    ev->metadata = ev->data + dlen;
    ev->metadata_len = mlen;
    ev->flags = p[9] & (FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON);
    if (p[9] & LOG_EV_STUB) {
        if (dlen != LOG_HASH_LEN || mlen != 0) return FACTUM_ECORRUPT;
        ev->data_len = 0; /* the digest is not data */
        ev->metadata = ev->data + dlen;
        ev->flags |= LOG_EV_STUB;
    } else if (p[9] & LOG_EV_SEALED) {
        if (dlen < LOG_SEAL_OVERHEAD || mlen != 0) return FACTUM_ECORRUPT;
        ev->flags |= LOG_EV_SEALED;
    }
    ev->position = base_get64(p + 16);
    ev->version = base_get64(p + 24);
    ev->timestamp_ns = (int64_t)base_get64(p + 32);
    memcpy(ev->id, p + 40, 16);
    if (ev->position == 0) return FACTUM_ECORRUPT;
    return (int)len;
}
