/*
 * tail.h - the shared tail of live $all subscriptions (tail.c, ADR 0021):
 * the most recent committed events, read from the store once and packed
 * once per variant, for every subscription at the head to copy.
 */
#ifndef FACTUM_RPC_TAIL_H
#define FACTUM_RPC_TAIL_H

#include "rpc/rpc.h"

/* Bounds (TAIL-3): events held, and bytes of packed messages held over
 * every variant; a packed message larger than RPC_TAIL_MAX_FRAME is not
 * kept (its subscribers read it from the store, as without the tail). */
#define RPC_TAIL_SLOTS     4096u
#define RPC_TAIL_MAX_BYTES (8u << 20)
#define RPC_TAIL_MAX_FRAME (256u << 10)

typedef struct rpc_tail rpc_tail;

/* The event at `position` (valid until the store closes), reading the
 * events committed since the last call into the tail first when position
 * is past its end; NULL when the tail does not hold it (too old, not yet
 * committed, out of memory, or a read error: the caller reads from the
 * store, which reports any error). Loop thread only; the tail is created
 * at the first call (ctx->tail). */
const factum_event *rpc_tail_event(rpc_ctx *ctx, uint64_t position);

/* The ReadResp carrying the event at `position` (rpc_tail_event returned
 * it) as a subscriber that asked for uuid_string and raw would be sent it
 * without the tail (rpc_event_fill of rpc_upcast's form, packed as
 * rpc_send_event packs it), packed at the first call for that variant.
 * 0 with *msg and *len (valid until the next call into the tail); 1 when the
 * tail does not cover it (its upcast needs a script, fails, or the message
 * is over RPC_TAIL_MAX_FRAME, or out of memory): the caller reads it from
 * the store. Loop thread only. */
int rpc_tail_frame(rpc_ctx *ctx, uint64_t position, int uuid_string, int raw, const uint8_t **msg,
                   size_t *len);

/* Free the tail (rpc_deinit; NULL tail: nothing). */
void rpc_tail_free(rpc_ctx *ctx);

#endif
