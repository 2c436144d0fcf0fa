/*
 * group.c - the writer's group and its overlay (group.h): growable arrays,
 * the streams' states as the group changed them (an open-addressed index
 * by name hash), the undo log, and resetting and freeing a group.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/group.h"

/* ---- small growable arrays ------------------------------------------ */

int group_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n) return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* ---- the overlay ---------------------------------------------------- */

ovs *ov_find(group *g, uint64_t hash, const char *name, size_t len)
{
    if (!g->ov_idx_cap) return NULL;
    size_t i = hash & (g->ov_idx_cap - 1);
    while (g->ov_idx[i]) {
        ovs *o = &g->ov[g->ov_idx[i] - 1];
        if (o->hash == hash && o->len == len && memcmp(o->name, name, len) == 0) return o;
        i = (i + 1) & (g->ov_idx_cap - 1);
    }
    return NULL;
}

int ov_add(group *g, uint64_t hash, const char *name, size_t len, const sstate *st, ovs **out)
{
    if ((g->n_ov + 1) * 2 > g->ov_idx_cap) {
        size_t cap = g->ov_idx_cap ? g->ov_idx_cap * 2 : 256;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx) return -ENOMEM;
        for (size_t k = 0; k < g->n_ov; k++) {
            size_t i = g->ov[k].hash & (cap - 1);
            while (idx[i])
                i = (i + 1) & (cap - 1);
            idx[i] = (uint32_t)(k + 1);
        }
        free(g->ov_idx);
        g->ov_idx = idx;
        g->ov_idx_cap = cap;
    }
    if (group_grow((void **)&g->ov, &g->cap_ov, g->n_ov + 1, sizeof *g->ov)) return -ENOMEM;
    ovs *o = &g->ov[g->n_ov];
    *o = (ovs){hash, name, len, *st, 0, 0, 0};
    size_t i = hash & (g->ov_idx_cap - 1);
    while (g->ov_idx[i])
        i = (i + 1) & (g->ov_idx_cap - 1);
    g->ov_idx[i] = (uint32_t)(++g->n_ov);
    *out = o;
    return 0;
}

/* The state of a stream as of this point in the group. The returned
 * pointer is valid until the next ov_add. */
int ov_get(factum_store *s, group *g, const char *name, size_t len, ovs **out)
{
    uint64_t hash = base_hash64(name, len);
    ovs *o = ov_find(g, hash, name, len);
    if (o) {
        *out = o;
        return 0;
    }
    sstate st;
    uint64_t gen;
    if (!cache_get(&s->cache, hash, name, len, &st, &gen)) {
        int rc = state_load(s, name, len, hash, &st);
        if (rc) return rc;
    }
    return ov_add(g, hash, name, len, &st, out);
}

/* A name that must outlive the group ("$$stream"). */
const char *keep_name(group *g, const char *name, size_t len)
{
    if (group_grow((void **)&g->names, &g->cap_names, g->n_names + 1, sizeof *g->names)) return NULL;
    char *p = malloc(len + 1);
    if (!p) return NULL;
    g->names[g->n_names++] = p;
    memcpy(p, name, len);
    p[len] = 0;
    return p;
}

/* Save g->ov[i] before the current request changes it, so that a failure
 * half-way through encoding can restore the overlay. */
int ov_touch(group *g, size_t i)
{
    if (g->ov[i].touched_req == g->req_seq) return 0;
    if (group_grow((void **)&g->undo, &g->cap_undo, g->n_undo + 1, sizeof *g->undo)) return -ENOMEM;
    g->undo[g->n_undo++] = (undo){i, g->ov[i]};
    g->ov[i].touched_req = g->req_seq;
    return 0;
}

void ov_rebuild_index(group *g)
{
    memset(g->ov_idx, 0, g->ov_idx_cap * sizeof *g->ov_idx);
    for (size_t k = 0; k < g->n_ov; k++) {
        size_t i = g->ov[k].hash & (g->ov_idx_cap - 1);
        while (g->ov_idx[i])
            i = (i + 1) & (g->ov_idx_cap - 1);
        g->ov_idx[i] = (uint32_t)(k + 1);
    }
}

void group_reset(group *g)
{
    g->buf.len = 0;
    g->n_ev = 0;
    g->n_ov = 0;
    if (g->ov_idx) memset(g->ov_idx, 0, g->ov_idx_cap * sizeof *g->ov_idx);
    for (int k = 0; k < IDX_KINDS; k++)
        g->n_ent[k] = 0;
    for (size_t i = 0; i < g->n_names; i++)
        free(g->names[i]);
    g->n_names = 0;
}

void group_free(group *g)
{
    group_reset(g);
    free(g->undo);
    base_buf_free(&g->buf);
    base_buf_free(&g->scratch);
    base_buf_free(&g->seal_out);
    seal_gcm_free(&g->gcm);
    free(g->ev);
    free(g->ov);
    free(g->ov_idx);
    for (int k = 0; k < IDX_KINDS; k++)
        free(g->ent[k]);
    free(g->los);
    free(g->names);
    if (g->hasher_ready) log_hasher_free(&g->hasher);
    free(g->dig);
}

