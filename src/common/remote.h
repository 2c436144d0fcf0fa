/*
 * remote.h - how libfactum reaches a factum_client without linking
 * libfactum-client (docs/adr/0018-client-library.md). The toolkit's remote
 * decider (factum_decider_new_remote, src/cqrs/decider.c) is libfactum's,
 * the client is the other library's; the program that uses the one links
 * both, but neither library names the other's functions. So every
 * factum_client begins with a pointer to a table of the client calls the
 * decider makes, filled by the client library (src/client/client.c), and
 * libfactum calls through it.
 *
 *  RM-1  The table is a contract between the two libraries of one release:
 *        `abi` and `size` say which; libfactum refuses a client whose table
 *        is not the one it was built with (FACTUM_EINVAL) rather than call
 *        through a table of another shape.
 *  RM-2  The head stays the first member of struct factum_client, and the
 *        table is static and immutable: reading it needs no lock, and the
 *        calls through it are the public ones, with their own locking
 *        (factum_client.h).
 */
#ifndef FACTUM_COMMON_REMOTE_H
#define FACTUM_COMMON_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "factum_client.h"

#define REMOTE_ABI 1

typedef struct remote_ops {
    uint32_t abi;  /* REMOTE_ABI */
    uint32_t size; /* sizeof(remote_ops) */
    /* factum_client_read_stream, _batch_count, _batch_event, _batch_free,
     * _append, _get_stream_metadata, _set_stream_metadata: same contracts. */
    int (*read_stream)(factum_client *c, const char *stream, uint64_t from, int direction, uint64_t max,
                       factum_client_batch **out);
    size_t (*batch_count)(const factum_client_batch *b);
    const factum_event *(*batch_event)(const factum_client_batch *b, size_t i);
    void (*batch_free)(factum_client_batch *b);
    int (*append)(factum_client *c, const char *stream, int64_t expected, const factum_event_data *events,
                  size_t n, factum_append_result *res);
    int (*get_stream_metadata)(factum_client *c, const char *stream, char **json_out, int64_t *version_out);
    int (*set_stream_metadata)(factum_client *c, const char *stream, int64_t expected, const char *json,
                               factum_append_result *res);
} remote_ops;

/* The first member of every struct factum_client (RM-2). */
typedef struct remote_head {
    const remote_ops *ops;
} remote_head;

/* The table of client c, or NULL if it is not one this libfactum can use
 * (RM-1). */
static inline const remote_ops *remote_ops_of(const factum_client *c)
{
    const remote_ops *ops = ((const remote_head *)(const void *)c)->ops;
    return ops && ops->abi == REMOTE_ABI && ops->size == sizeof(remote_ops) ? ops : NULL;
}

#endif
