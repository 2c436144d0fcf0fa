/*
 * snapshot.h - what the snapshot convention (factum.h "Snapshots",
 * snapshot.c) offers the layers above the store besides the public calls:
 * the check factumd applies to appends to `$snapshots-S` arriving over
 * the network, and the one call the `$load/S` virtual stream needs.
 */
#ifndef FACTUM_STORE_SNAPSHOT_H
#define FACTUM_STORE_SNAPSHOT_H

#include <stddef.h>

#include "base/base.h"
#include "factum.h"

/* Is `stream` (len bytes) a snapshot stream `$snapshots-S`? Then 1 and
 * *source / *source_len name S (pointing into stream); else 0. */
int snapshot_source(const char *stream, size_t len, const char **source, size_t *source_len);

/* Check an append of n events to `stream` against the convention: when
 * stream is `$snapshots-S`, each event's metadata must be a JSON object
 * whose "$streamVersion" is an integer >= 0 and <= S's last version, and
 * S must exist (not soft-deleted, not tombstoned). Returns 0 (also for any
 * other stream) or FACTUM_EINVAL with a message for the client in
 * msg[0..msg_len). Reads S's state only (the stream cache, or the index):
 * no log read, bounded CPU. Thread-safe. */
int snapshot_check_append(factum_store *s, const char *stream, const factum_event_data *events, size_t n,
                          char *msg, size_t msg_len);

/* For the `$load/S` virtual stream: the newest usable snapshot of S into
 * *snap (snap->found 0 if none) and in *from the version of S to read on
 * from (FACTUM_END when no event follows it). The same as
 * factum_snapshot_load with cap 0. Errors as factum_snapshot_load. */
int snapshot_latest(factum_store *s, const char *stream, factum_snapshot *snap, uint64_t *from);

/* The metadata document of a snapshot stream with `$maxCount` = keep and
 * its other keys kept, from its current document json[0..len) ("{}" or
 * anything not an object: none). Returns 1 with the new document in *out
 * (NUL-terminated, out->len without the NUL), 0 when json has that
 * `$maxCount` already (out untouched), -ENOMEM. */
int snapshot_retention_doc(const char *json, size_t len, uint32_t keep, base_buf *out);

/* For the toolkit (src/cqrs: a command's idempotency): the committed event
 * of `stream` whose id is `id`, through the event-id index. 1 and *ev if
 * found, 0 if not, < 0 on a read error. Thread-safe. */
int store_find_event_id(factum_store *s, const char *stream, const uint8_t id[16], factum_event *ev);

#endif
