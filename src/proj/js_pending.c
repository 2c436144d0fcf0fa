/*
 * js_pending.c - TEMPORARY stand-ins for the calls of JavaScript
 * projections declared in factum.h (factum_projection_def_init, _create,
 * _update, _delete, _get_state, _get_result), so that the Projections
 * service, the client and the command line (branch projsvc) link before
 * the JavaScript engine lands in main. They do what the system
 * projections allow (update is set_query, state and result are empty) and
 * refuse the rest with -ENOSYS.
 *
 * Delete this file when main brings the real ones (the link then fails
 * with duplicate symbols, which is the reminder).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "factum.h"

void factum_projection_def_init(factum_projection_def *d)
{
    memset(d, 0, sizeof *d);
    d->mode = FACTUM_PROJECTION_CONTINUOUS;
    d->enabled = 1;
}

int factum_projection_create(factum_projections *m, const factum_projection_def *d, factum_projection_cb cb,
                             void *ctx)
{
    (void)cb;
    (void)ctx;
    if (!m || !d || !d->name || !d->query) return FACTUM_EINVAL;
    factum_projection_status st;
    if (!factum_projection_get_status(m, d->name, &st)) return FACTUM_EEXISTS;
    return -ENOSYS;
}

int factum_projection_update(factum_projections *m, const char *name, const char *query, int emit_enabled,
                             factum_projection_cb cb, void *ctx)
{
    factum_projection_status st;
    int rc = factum_projection_get_status(m, name, &st);
    if (rc) return rc;
    if (!st.system || emit_enabled != -1) return -ENOSYS;
    if (!query) {
        if (cb) cb(ctx, 0);
        return 0;
    }
    return factum_projection_set_query(m, name, query, cb, ctx);
}

int factum_projection_delete(factum_projections *m, const char *name, unsigned flags, factum_projection_cb cb,
                             void *ctx)
{
    (void)flags;
    (void)cb;
    (void)ctx;
    factum_projection_status st;
    int rc = factum_projection_get_status(m, name, &st);
    if (rc) return rc;
    if (st.system) return FACTUM_EINVAL;
    return -ENOSYS;
}

static int empty(factum_projections *m, const char *name, char **json, size_t *len)
{
    factum_projection_status st;
    int rc = factum_projection_get_status(m, name, &st);
    if (rc) return rc;
    if (!(*json = calloc(1, 1))) return -ENOMEM;
    *len = 0;
    return 0;
}

int factum_projection_get_state(factum_projections *m, const char *name, const char *partition, char **json,
                                size_t *len)
{
    (void)partition;
    return empty(m, name, json, len);
}

int factum_projection_get_result(factum_projections *m, const char *name, const char *partition, char **json,
                                 size_t *len)
{
    (void)partition;
    return empty(m, name, json, len);
}
