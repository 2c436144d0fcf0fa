/* Fuzz target: the gRPC side of factumd without any I/O - the length-prefix
 * deframer fed in chunks of varying size (the first input byte picks the
 * chunking), and every complete message decoded as each request message the
 * server accepts (ReadReq, AppendReq, BatchAppendReq, DeleteReq, v2
 * AppendRequest), plus the grpc-timeout and :path parsers on the raw bytes.
 * Whatever the bytes, nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kurrentdb/persistent.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every request message factumd decodes, through the guarded decoder it
 * uses (src/net/pb.c: depth checked on the raw bytes, memory limited). */
static const ProtobufCMessageDescriptor *const requests[] = {
    &event_store__client__streams__read_req__descriptor,
    &event_store__client__streams__append_req__descriptor,
    &event_store__client__streams__batch_append_req__descriptor,
    &event_store__client__streams__delete_req__descriptor,
    &kurrentdb__protocol__v2__streams__append_request__descriptor,
    &event_store__client__persistent_subscriptions__read_req__descriptor,
    &event_store__client__persistent_subscriptions__create_req__descriptor,
    &event_store__client__persistent_subscriptions__update_req__descriptor,
    &event_store__client__persistent_subscriptions__delete_req__descriptor,
    &event_store__client__persistent_subscriptions__get_info_req__descriptor,
    &event_store__client__persistent_subscriptions__replay_parked_req__descriptor,
    &event_store__client__persistent_subscriptions__list_req__descriptor,
};

static int on_msg(void *ctx, const uint8_t *msg, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
        pb_alloc pa;
        pb_alloc_init(&pa, pb_decode_limit(len));
        ProtobufCMessage *m = NULL;
        if (pb_unpack(requests[i], msg, len, &pa, &m) == PB_OK) pb_free(m, &pa);
        if (pa.used != 0) abort(); /* every byte decoded is given back */
    }
    return 0;
}

static int charge(void *ctx, long delta)
{
    *(long *)ctx += delta;
    return *(long *)ctx > (2L << 20); /* refuse growth past 2 MiB, as a connection cap would */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long held = 0;
    if (size == 0) return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    grpc_deframer d;
    grpc_deframer_init(&d, 1u << 20);
    d.charge = charge;
    d.charge_ctx = &held;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        uint8_t *piece = malloc(n); /* a private copy: reads past it are caught */
        if (!piece) break;
        memcpy(piece, data + off, n);
        int rc = grpc_deframe(&d, piece, n, on_msg, NULL);
        free(piece);
        if (rc) break;
    }
    grpc_deframer_deinit(&d);
    if (held != 0) abort(); /* the deframer gave back all it charged */
    uint64_t ns;
    grpc_parse_timeout((const char *)data, size < 16 ? size : 16, &ns);
    const char *svc, *meth;
    size_t sl, ml;
    grpc_split_path((const char *)data, size < 256 ? size : 256, &svc, &sl, &meth, &ml);
    return 0;
}
