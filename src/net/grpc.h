/*
 * grpc.h - gRPC over HTTP/2 as an I/O-free codec: the 5-byte length prefix
 * of each message (decoded incrementally from DATA chunks of any size), the
 * grpc-timeout header, status codes, and the percent-encoding of
 * grpc-message. Nothing here touches a socket, so it is unit-tested and
 * fuzzed on its own (tests/fuzz/fuzz_grpc.c).
 */
#ifndef FACTUM_GRPC_H
#define FACTUM_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* google.rpc.Code */
enum {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
    GRPC_UNAUTHENTICATED = 16,
};

/* Incremental decoder of length-prefixed messages. The buffer of a partial
 * message grows with the bytes that arrive, never to the length the prefix
 * declares before they are there; charge (optional) is told of every
 * change of its size and may refuse growth. */
typedef struct grpc_deframer {
    uint8_t hdr[5];
    size_t hdr_len;
    uint8_t *msg; /* the message being assembled */
    size_t msg_len, msg_need, msg_cap;
    size_t max_message; /* larger messages are refused */
    size_t consumed;    /* bytes of the last grpc_deframe input used (all but on an early stop) */
    int (*charge)(void *ctx, long delta);
    void *charge_ctx;
} grpc_deframer;

enum {
    GRPC_DEFRAME_OK = 0,
    GRPC_DEFRAME_TOO_LARGE = -1,  /* a message over max_message */
    GRPC_DEFRAME_COMPRESSED = -2, /* compressed flag set (no compression was negotiated) */
    GRPC_DEFRAME_BAD_FLAG = -3,   /* flag byte neither 0 nor 1 */
    GRPC_DEFRAME_NOMEM = -4,      /* out of memory, or charge refused the growth */
};

void grpc_deframer_init(grpc_deframer *d, size_t max_message);
void grpc_deframer_deinit(grpc_deframer *d);
/* Feed bytes; calls on_msg for every complete message (the bytes are valid
 * during the call). Returns GRPC_DEFRAME_OK, an error above (the stream is
 * then unusable), or on_msg's non-zero return value: then d->consumed says
 * how many input bytes were used (up to the end of that message); feed the
 * rest later to go on. */
int grpc_deframe(grpc_deframer *d, const uint8_t *data, size_t len,
                 int (*on_msg)(void *ctx, const uint8_t *msg, size_t len), void *ctx);
/* Bytes of a partial message still buffered (0 at a message boundary). */
static inline int grpc_deframer_partial(const grpc_deframer *d)
{
    return d->hdr_len != 0;
}
/* Bytes held for a partial message (its buffer's size). */
static inline size_t grpc_deframer_held(const grpc_deframer *d)
{
    return d->msg_cap;
}

/* Append the 5-byte prefix for a message of len bytes. */
int grpc_frame_prefix(base_buf *out, size_t len);

/* Parse a grpc-timeout value ("100m", "5S", ...) into nanoseconds.
 * Returns 0, or -1 if malformed. */
int grpc_parse_timeout(const char *v, size_t len, uint64_t *ns);

/* Percent-encode a grpc-message value (RFC 3986 unreserved + space etc.
 * pass; everything else %XX). Appends to out; no NUL. */
int grpc_encode_message(base_buf *out, const char *msg);

/* The HTTP/2 :path of a gRPC method: "/<service>/<method>". Returns 0 and
 * pointers into path, or -1. */
int grpc_split_path(const char *path, size_t len, const char **service, size_t *service_len,
                    const char **method, size_t *method_len);

#endif
