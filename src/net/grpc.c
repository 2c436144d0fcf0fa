/*
 * grpc.c - the I/O-free gRPC codec of grpc.h. Every byte arrives from the
 * network, so lengths are checked before they are used and a message is
 * only buffered up to max_message.
 */
#include "net/grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void grpc_deframer_init(grpc_deframer *d, size_t max_message)
{
    memset(d, 0, sizeof *d);
    d->max_message = max_message;
}

static void drop_buffer(grpc_deframer *d)
{
    if (!d->msg) return;
    free(d->msg);
    d->msg = NULL;
    if (d->charge) d->charge(d->charge_ctx, -(long)d->msg_cap);
    d->msg_cap = 0;
}

void grpc_deframer_deinit(grpc_deframer *d)
{
    drop_buffer(d);
}

/* Room for `need` bytes of the message (need <= msg_need): doubling, so
 * that a large message is copied a few times, not once per chunk; never
 * beyond the declared length. */
static int grow(grpc_deframer *d, size_t need)
{
    if (need <= d->msg_cap) return 0;
    size_t cap = d->msg_cap ? d->msg_cap : 16384;
    while (cap < need) cap *= 2;
    if (cap > d->msg_need) cap = d->msg_need;
    if (d->charge && d->charge(d->charge_ctx, (long)(cap - d->msg_cap))) return GRPC_DEFRAME_NOMEM;
    uint8_t *m = realloc(d->msg, cap);
    if (!m) {
        if (d->charge) d->charge(d->charge_ctx, -(long)(cap - d->msg_cap));
        return GRPC_DEFRAME_NOMEM;
    }
    d->msg = m;
    d->msg_cap = cap;
    return 0;
}

int grpc_deframe(grpc_deframer *d, const uint8_t *data, size_t len,
                 int (*on_msg)(void *ctx, const uint8_t *msg, size_t len), void *ctx)
{
    const uint8_t *start = data;
    d->consumed = 0;
    while (len) {
        if (d->hdr_len < 5) {
            size_t take = 5 - d->hdr_len < len ? 5 - d->hdr_len : len;
            memcpy(d->hdr + d->hdr_len, data, take);
            d->hdr_len += take;
            data += take;
            len -= take;
            if (d->hdr_len < 5) break;
            if (d->hdr[0] == 1) return GRPC_DEFRAME_COMPRESSED;
            if (d->hdr[0] != 0) return GRPC_DEFRAME_BAD_FLAG;
            uint32_t n = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 | (uint32_t)d->hdr[3] << 8 | d->hdr[4];
            if (n > d->max_message) return GRPC_DEFRAME_TOO_LARGE;
            d->msg_need = n;
            d->msg_len = 0;
            if (n == 0) {
                d->hdr_len = 0;
                int rc = on_msg(ctx, (const uint8_t *)"", 0);
                if (rc) {
                    d->consumed = (size_t)(data - start);
                    return rc;
                }
                continue;
            }
            /* A whole message in this chunk: hand it out without a copy. */
            if (len >= n) {
                d->hdr_len = 0;
                int rc = on_msg(ctx, data, n);
                data += n;
                len -= n;
                if (rc) {
                    d->consumed = (size_t)(data - start);
                    return rc;
                }
                continue;
            }
            if (!len) break; /* the prefix ended the chunk */
        }
        size_t take = d->msg_need - d->msg_len < len ? d->msg_need - d->msg_len : len;
        int grc = grow(d, d->msg_len + take);
        if (grc) return grc;
        memcpy(d->msg + d->msg_len, data, take);
        d->msg_len += take;
        data += take;
        len -= take;
        if (d->msg_len == d->msg_need) {
            d->hdr_len = 0;
            int rc = on_msg(ctx, d->msg, d->msg_len);
            if (d->msg_cap > 65536) drop_buffer(d); /* do not keep a large buffer for the stream's lifetime */
            if (rc) {
                d->consumed = (size_t)(data - start);
                return rc;
            }
        }
    }
    d->consumed = (size_t)(data - start);
    return GRPC_DEFRAME_OK;
}

int grpc_frame_prefix(base_buf *out, size_t len)
{
    if (len > UINT32_MAX) return -EMSGSIZE;
    uint8_t h[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    return base_buf_append(out, h, 5);
}

int grpc_parse_timeout(const char *v, size_t len, uint64_t *ns)
{
    /* TimeoutValue: 1..8 ASCII digits; TimeoutUnit: H M S m u n. */
    if (len < 2 || len > 9) return -1;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    uint64_t mul;
    switch (v[len - 1]) {
    case 'H': mul = 3600ull * 1000000000ull; break;
    case 'M': mul = 60ull * 1000000000ull; break;
    case 'S': mul = 1000000000ull; break;
    case 'm': mul = 1000000ull; break;
    case 'u': mul = 1000ull; break;
    case 'n': mul = 1; break;
    default: return -1;
    }
    *ns = n * mul;
    return 0;
}

int grpc_encode_message(base_buf *out, const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        char buf[3];
        int rc;
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            rc = base_buf_append(out, p, 1);
        } else {
            buf[0] = '%';
            buf[1] = hex[*p >> 4];
            buf[2] = hex[*p & 15];
            rc = base_buf_append(out, buf, 3);
        }
        if (rc) return rc;
    }
    return 0;
}

int grpc_split_path(const char *path, size_t len, const char **service, size_t *service_len,
                    const char **method, size_t *method_len)
{
    if (len < 4 || path[0] != '/') return -1;
    const char *slash = memchr(path + 1, '/', len - 1);
    if (!slash || slash == path + 1 || slash == path + len - 1) return -1;
    if (memchr(slash + 1, '/', (size_t)(path + len - slash - 1))) return -1;
    *service = path + 1;
    *service_len = (size_t)(slash - path - 1);
    *method = slash + 1;
    *method_len = (size_t)(path + len - slash - 1);
    return 0;
}
