/*
 * pb.h - protobuf messages from the network, decoded within limits.
 *
 * protobuf-c's decoder recurses once per level of nesting and allocates
 * as much as a message asks for. Both are dangerous with bytes from a
 * client: google.protobuf.Value/ListValue/Struct nest without end (one
 * 34 KB request 5,000 levels deep overflows the stack), and a message of
 * empty sub-messages costs tens of bytes of memory per byte of wire. So:
 *
 *  PB-1  Before a message whose schema can nest without bound (a type
 *        reachable from itself, such as google.protobuf.Value) is decoded,
 *        its raw bytes are walked once, without recursion, against the
 *        descriptor: every length-delimited field whose schema type is a
 *        message is entered, and nesting deeper than PB_MAX_DEPTH is
 *        refused. The walk is linear in the bytes and needs no memory.
 *        Other types nest only as deep as their schema (KurrentDB's: at
 *        most 6) and are not walked.
 *  PB-2  The decoder allocates through a counting allocator with a byte
 *        limit: a message that would need more is refused, never
 *        half-decoded. What a decoded message holds is known in real bytes
 *        (malloc's usable size plus its header), so it can be charged to a
 *        memory budget.
 *
 * Nothing here does I/O; the client (src/client) uses it for server
 * answers too.
 */
#ifndef FACTUM_PB_H
#define FACTUM_PB_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of messages accepted (the top-level message is depth 0).
 * KurrentDB's messages nest at most 6 deep; properties of the v2 append
 * (google.protobuf.Value) as deep as a client likes, up to this. */
#define PB_MAX_DEPTH 64

enum {
    PB_OK = 0,
    PB_EMALFORMED = -1, /* not a valid encoding of the message */
    PB_EDEPTH = -2,     /* nested deeper than PB_MAX_DEPTH */
    PB_ETOOBIG = -3,    /* decoding needs more memory than its limit */
};

/* Walk buf as a message of type d (PB-1). PB_OK, PB_EMALFORMED or PB_EDEPTH. */
int pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, unsigned max_depth);

/* A counting allocator (PB-2). charge, if set, is told of every change in
 * the bytes held (delta > 0 before an allocation: a non-zero return refuses
 * it; delta < 0 after a free). */
typedef struct pb_alloc {
    ProtobufCAllocator a;
    size_t used, limit;
    int refused; /* an allocation was refused (limit or charge) */
    int (*charge)(void *ctx, long delta);
    void *charge_ctx;
    size_t charged; /* for a caller that charges the decoded size once, itself */
} pb_alloc;

void pb_alloc_init(pb_alloc *pa, size_t limit);

/* Check (PB-1), then decode through pa (PB-2). On success *out is the
 * message, to be freed with pb_free(out, pa). Returns PB_OK or a PB_E*
 * code (PB_ETOOBIG when the allocator refused). */
int pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, pb_alloc *pa,
              ProtobufCMessage **out);
void pb_free(ProtobufCMessage *m, pb_alloc *pa);

/* What the limit of a decode of len wire bytes should be: decoding
 * legitimately needs a few times the wire size (structures, map entries,
 * copies of strings); this allows PB_DECODE_FACTOR times plus a constant. */
#define PB_DECODE_FACTOR 8
static inline size_t pb_decode_limit(size_t len)
{
    return len * PB_DECODE_FACTOR + 65536;
}

const char *pb_strerror(int rc);

#endif
