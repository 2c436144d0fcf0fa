/*
 * streams_int.h - what streams.c shares with the other services' files:
 * batch.c's BatchAppend callbacks (in streams.c's method table) and that
 * table (misc.c). Events in and out are in events.h; subscription reads
 * in subscribe.h.
 */
#ifndef FACTUM_RPC_STREAMS_INT_H
#define FACTUM_RPC_STREAMS_INT_H

#include "rpc/rpc.h"

/* BatchAppend (batch.c). */
int rpc_batch_start(net_call *c, void *svc);
void rpc_batch_message(net_call *c, const uint8_t *msg, size_t len);
void rpc_batch_half_close(net_call *c);
void rpc_batch_writable(net_call *c);
void rpc_batch_close(net_call *c);

extern const net_method rpc_streams_methods[];
extern const size_t rpc_streams_n;

#endif
