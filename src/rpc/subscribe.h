/*
 * subscribe.h - subscription reads (subscribe.c): what streams.c calls to
 * serve Streams.Read in subscription mode, and what the commit dispatcher
 * (live.c) calls to wake them and to report their lag.
 */
#ifndef FACTUM_RPC_SUBSCRIBE_H
#define FACTUM_RPC_SUBSCRIBE_H

#include "kurrentdb/streams.pb-c.h"
#include "rpc/rpc.h"

/* Start one per the options (NULL if the call was failed instead), resume
 * it when the call can take output, and free it when the call closes (NULL
 * is a no-op). The commit listener must be registered (rpc_listen). */
struct rpc_sub *rpc_sub_start(rpc_ctx *ctx, net_call *c, const EventStore__Client__Streams__ReadReq__Options *o);
void rpc_sub_writable(struct rpc_sub *s);
void rpc_sub_free(struct rpc_sub *s);

/* Pump every subscription waiting at the head (RPC-4): on the loop, from
 * the wake-up a commit posts. */
void rpc_sub_wake_all(rpc_ctx *ctx);
/* The lag of every open subscription (kind "subscription"). */
void rpc_sub_lag_each(rpc_ctx *ctx, rpc_lag_fn fn, void *arg);

#endif
