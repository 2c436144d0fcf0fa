/*
 * persistent.h - what persistent.c (consumer groups) shares with the rest
 * of the services: its method table, its state's life, and the hooks the
 * loop calls (commits, ticks) and the statistics read.
 */
#ifndef FACTUM_RPC_PERSISTENT_H
#define FACTUM_RPC_PERSISTENT_H

#include "rpc/rpc.h"

extern const net_method rpc_ps_methods[];
extern const size_t rpc_ps_n;

/* Load the groups persisted in the store (at start, on the loop's thread
 * before it runs). 0 or an error of the store. */
int rpc_ps_init(rpc_ctx *ctx);
/* The store is about to close: from now on completions and wake-ups touch
 * no group (call before factum_store_close). */
void rpc_ps_close(rpc_ctx *ctx);
/* Free every group (after the server was freed). */
void rpc_ps_free(rpc_ctx *ctx);
/* New events were committed: groups with consumers read and dispatch. */
void rpc_ps_on_commit(rpc_ctx *ctx);
/* About every 100 ms: message timeouts, periodic checkpoints, rates. */
void rpc_ps_tick(rpc_ctx *ctx);
/* Replay the parked messages of the group `group` of `stream` (NULL:
 * $all), all of them or stop_at (>= 0): as PS.ReplayParked. 0, or
 * FACTUM_ENOTFOUND. Loop thread. */
int rpc_ps_replay_parked(rpc_ctx *ctx, const char *stream, const char *group, int64_t stop_at);
/* Truncate the parked messages of a group (all, or the first stop_at >=
 * 0), as PS.TruncateParked. 0 or FACTUM_ENOTFOUND. Loop thread. */
int rpc_ps_truncate_parked(rpc_ctx *ctx, const char *stream, const char *group, int64_t stop_at);

/* ---- changes and details from the HTTP API (docs/protocol.md) ---------- */

/* A change made durable (rc 0) or failed (an error of the store). */
typedef void (*rpc_ps_saved_fn)(void *arg, int rc);
enum { RPC_PS_CREATE, RPC_PS_UPDATE, RPC_PS_DELETE };
/* Create, update or delete the group `group` of `stream` (NULL: $all).
 * body/len: the settings as JSON with KurrentDB's HTTP names (create:
 * over the defaults; update: over the group's settings; delete: unused).
 * 0: the change is made and done(arg, rc) runs on the loop once it is
 * durable (PS-5). Else done does not run: FACTUM_EEXISTS, FACTUM_ENOTFOUND,
 * FACTUM_EINVAL or FACTUM_EBADREGEX (why says what), FACTUM_EBADNAME, or
 * -ENOMEM. Loop thread. */
int rpc_ps_change(rpc_ctx *ctx, int op, const char *stream, const char *group, const char *body, size_t len,
                  char *why, size_t cap, rpc_ps_saved_fn done, void *arg);
/* The group as JSON (its settings with KurrentDB's HTTP names, positions,
 * counts, consumers, the parked stream) appended to b. 0, FACTUM_ENOTFOUND
 * or -ENOMEM. Loop thread. */
int rpc_ps_describe(rpc_ctx *ctx, const char *stream, const char *group, base_buf *b);
/* Every group's (or those of source: a stream's name or "$all"), comma-
 * separated, into b; *n how many. 0 or -ENOMEM. Loop thread. */
int rpc_ps_describe_all(rpc_ctx *ctx, const char *source, base_buf *b, size_t *n);

/* Each group's lag and counts (for /metrics and Monitoring.Stats). */
void rpc_ps_each(rpc_ctx *ctx,
                 void (*fn)(void *arg, const char *src, const char *group, uint64_t lag_events, double lag_seconds,
                            uint64_t inflight, uint64_t parked, size_t consumers),
                 void *arg);

#endif
