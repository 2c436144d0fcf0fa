/* Fuzz target: the gRPC side of factumd without any I/O - the length-prefix
 * deframer fed in chunks of varying size (the first input byte picks the
 * chunking), and every complete message decoded as each request message the
 * server accepts (ReadReq, AppendReq, BatchAppendReq, DeleteReq, v2
 * AppendRequest), plus the grpc-timeout and :path parsers on the raw bytes.
 * Whatever the bytes, nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kurrentdb/streams.pb-c.h"
#include "kurrentdb/v2/streams.pb-c.h"
#include "net/grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_msg(void *ctx, const uint8_t *msg, size_t len)
{
    (void)ctx;
    EventStore__Client__Streams__ReadReq *r = event_store__client__streams__read_req__unpack(NULL, len, msg);
    if (r) event_store__client__streams__read_req__free_unpacked(r, NULL);
    EventStore__Client__Streams__AppendReq *a = event_store__client__streams__append_req__unpack(NULL, len, msg);
    if (a) event_store__client__streams__append_req__free_unpacked(a, NULL);
    EventStore__Client__Streams__BatchAppendReq *b = event_store__client__streams__batch_append_req__unpack(NULL, len, msg);
    if (b) event_store__client__streams__batch_append_req__free_unpacked(b, NULL);
    EventStore__Client__Streams__DeleteReq *d = event_store__client__streams__delete_req__unpack(NULL, len, msg);
    if (d) event_store__client__streams__delete_req__free_unpacked(d, NULL);
    Kurrentdb__Protocol__V2__Streams__AppendRequest *v = kurrentdb__protocol__v2__streams__append_request__unpack(NULL, len, msg);
    if (v) kurrentdb__protocol__v2__streams__append_request__free_unpacked(v, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    grpc_deframer d;
    grpc_deframer_init(&d, 1u << 20);
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
    uint64_t ns;
    grpc_parse_timeout((const char *)data, size < 16 ? size : 16, &ns);
    const char *svc, *meth;
    size_t sl, ml;
    grpc_split_path((const char *)data, size < 256 ? size : 256, &svc, &sl, &meth, &ml);
    return 0;
}
