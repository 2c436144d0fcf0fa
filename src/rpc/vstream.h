/*
 * vstream.h - virtual read-only streams: names that Streams.Read answers
 * from other streams instead of a stream of their own, so that the
 * official clients reach store features with a plain readStream:
 *
 *   $asof/<S>?time=<T>|position=<P>[&valid=<T2>]   S (or $all) as recorded at T
 *   $load/<S>      the newest usable snapshot of S, then S's events after it
 *   $raw/<S>       S (or $all) as stored: no upcasting
 *
 * A kind is a prefix and two functions (parse the rest of the name, read a
 * page); adding one is a table entry in vstream.c. Events come back with
 * their real stream names and revisions. Subscriptions to virtual streams
 * are refused (they read the past), and so are appends.
 */
#ifndef FACTUM_RPC_VSTREAM_H
#define FACTUM_RPC_VSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "factum.h"

typedef struct rpc_vstream rpc_vstream;

/* One kind of virtual stream. */
typedef struct rpc_vstream_kind {
    const char *prefix; /* e.g. "$asof/" */
    /* Parse `rest` (the name after the prefix, len bytes) into v: set
     * v->target (malloc'd: the stream read, "$all" for the log) and the
     * kind's state. 0, or FACTUM_EINVAL with *why (static), -ENOMEM. */
    int (*parse)(factum_store *s, const char *rest, size_t len, rpc_vstream *v, const char **why);
    /* Read a page as factum_read_stream (a stream) or factum_read_all
     * (`$all`: `from` is a position, max_scan bounds the work) would;
     * *end: nothing more in this direction. */
    int (*read)(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end);
} rpc_vstream_kind;

struct rpc_vstream {
    const rpc_vstream_kind *kind;
    char *target; /* the stream it reads ("$all": the log) */
    int is_all;
    factum_asof asof; /* $asof/ */
    int loaded;       /* $load/: the snapshot was read (the first forward page) */
    int raw;          /* $raw/: send the events as stored */
};

/* Is `name` (len bytes) a virtual stream's name (one of the prefixes)? */
int rpc_vstream_is(const char *name, size_t len);
/* Parse `name`: 0 and *out (free with rpc_vstream_free), FACTUM_EINVAL with
 * *why (a static message for InvalidArgument), -ENOMEM. */
int rpc_vstream_open(factum_store *s, const char *name, size_t len, rpc_vstream **out, const char **why);
void rpc_vstream_free(rpc_vstream *v);
/* Read a page (see rpc_vstream_kind.read). */
int rpc_vstream_read(factum_store *s, rpc_vstream *v, uint64_t from, int direction, size_t max_scan,
                     factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out, int *end);

/* Resolve a link met in a read of v (resolveLinkTos), as rpc_resolve
 * does: `$asof/` resolves it as of its point of view (the target as it was
 * then), the other kinds as a plain read. */
int rpc_vstream_resolve(factum_store *s, const rpc_vstream *v, const factum_event *ev, factum_event *target);

/* Checks of an append to `stream` from a client: a virtual stream is
 * read-only; a request to `$scheduled` must have the metadata of the
 * convention (factum_schedule_check_request). 0, or FACTUM_EINVAL with
 * *why (static). */
int rpc_vstream_check_append(const char *stream, size_t len, const void *metadata, size_t metadata_len,
                             const char **why);

#endif
