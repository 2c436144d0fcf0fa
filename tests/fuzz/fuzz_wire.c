/* Fuzz target: src/rpc/wire.c, factumd's AppendReq decoder without
 * protobuf-c's heap, against protobuf-c itself (WIRE-1..3): whatever the
 * bytes, the fast path either declines them or decodes exactly what
 * protobuf-c decodes, as an AppendReq and as a BatchAppendReq; a difference
 * aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "lib/wire_same.h"
#include "rpc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rpc_wire_append w;
    int fast = rpc_wire_append_req(data, size, &w);
    EventStore__Client__Streams__AppendReq *ref = event_store__client__streams__append_req__unpack(NULL, size, data);
    if (fast == 0 && (!ref || !same_req(&w.req, ref))) abort();
    if (ref) event_store__client__streams__append_req__free_unpacked(ref, NULL);
    static rpc_wire_batch wb;
    fast = rpc_wire_batch_req(data, size, &wb);
    EventStore__Client__Streams__BatchAppendReq *bref =
        event_store__client__streams__batch_append_req__unpack(NULL, size, data);
    if (fast == 0 && (!bref || !same_batch(&wb.req, bref))) abort();
    if (bref) event_store__client__streams__batch_append_req__free_unpacked(bref, NULL);
    return 0;
}
