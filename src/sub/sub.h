/*
 * sub.h - what factumd's shared tail (src/rpc/tail.c, ADR 0021) needs of a
 * subscription (sub.c) beyond the public API: the committed head, whether a
 * subscription may take its next events from the tail, and moving its cursor
 * past an event the tail examined for it. With these the cursor stays the
 * one source of truth (SUB-1): an event taken from the tail advances it
 * exactly as reading it would have, checkpoints fall where a read would put
 * them (SUB-5), and a subscription that leaves the tail reads on from its
 * cursor. Internal to the server; not exported.
 */
#ifndef FACTUM_SUB_SUB_H
#define FACTUM_SUB_SUB_H

#include <stdint.h>

#include "factum.h"

/* The last committed position of the store (0: empty). Any thread. */
uint64_t sub_head(factum_store *s);

/* May sub take its next event from a shared tail? 1 with *next (the first
 * position not yet examined) and *head (the committed head) when it is a
 * $all subscription that is live (SUB-4), has no latched error, does not
 * upcast itself and is not more than live_lag behind (else its next poll
 * reports FELL_BEHIND: it must poll); 0 otherwise. */
int sub_tail_cursor(const factum_sub *sub, uint64_t *next, uint64_t *head);

/* The event at `position` (which must be the cursor's next, from
 * sub_tail_cursor) was examined and, if `delivered`, sent: advance past it
 * (SUB-1). 1 when a checkpoint is due at `position` (checkpoint_interval
 * events examined since the last one: the caller sends it after the event,
 * SUB-5), 0 if not, FACTUM_EINVAL if position is not the cursor's next
 * (nothing changes). */
int sub_tail_advance(factum_sub *sub, uint64_t position, int delivered);

#endif
