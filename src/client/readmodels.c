/*
 * readmodels.c - the client's side of factumd's ReadModels service
 * (factum_client_readmodel_*, proto/factum/readmodels.proto): requests
 * from factum_readmodel.h's types, answers back into them. The server's
 * strings are copied truncated into the status's fixed fields (CL-2).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "factum/readmodels.pb-c.h"

#define SVC "/factum.readmodels.ReadModels/"

/* The factum code of a failed call: the statuses the service uses beyond
 * those every call maps (client_call_error). */
static int rm_error(factum_client *c, const client_call *k, int rc)
{
    if (k->grpc_status == GRPC_ALREADY_EXISTS) return FACTUM_EEXISTS;
    if (k->grpc_status == GRPC_FAILED_PRECONDITION) return FACTUM_EFAULTED;
    if (rc == FACTUM_EUNSUPPORTED)
        client_seterr(c, "the server has no read models (not factumd, or a factumd without them)");
    return rc;
}

/* Run one unary call (the lock is held); *resp as client_unary's. */
static int run(factum_client *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    char path[96];
    snprintf(path, sizeof path, SVC "%s", method);
    client_call k;
    int rc = client_unary(c, &k, path, req, desc, resp);
    if (rc) rc = rm_error(c, &k, rc);
    client_call_deinit(&k);
    return rc;
}

static int check_name(factum_client *c, const char *name)
{
    if (!name || !name[0]) {
        client_seterr(c, "a read model's name is required");
        return FACTUM_EINVAL;
    }
    return 0;
}

/* Lengthen the client's timeout for a call that may take wait_ms on the
 * server (a wait, a query's wait and time limit) to that plus 2 s, if it
 * is shorter; returns the timeout to restore. */
static uint32_t stretch(factum_client *c, uint64_t wait_ms)
{
    uint32_t keep = c->timeout_ms;
    if (c->timeout_ms && wait_ms + 2000 > c->timeout_ms)
        c->timeout_ms = wait_ms + 2000 > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)(wait_ms + 2000);
    return keep;
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

int factum_client_readmodel_create(factum_client *c, const char *definition, size_t len)
{
    if (!c || !definition) return FACTUM_EINVAL;
    char *d = dup_str(definition, len); /* the message's string must be NUL-terminated */
    if (!d) return -ENOMEM;
    client_errbuf()[0] = 0;
    Factum__Readmodels__CreateReq req = FACTUM__READMODELS__CREATE_REQ__INIT;
    req.definition = d;
    ProtobufCMessage *m;
    int rc = run(c, "Create", &req.base, &factum__readmodels__empty__descriptor, &m);
    free(d);
    return rc;
}

int factum_client_readmodel_rebuild(factum_client *c, const char *name, const char *definition, size_t len)
{
    if (!c) return FACTUM_EINVAL;
    char *d = definition ? dup_str(definition, len) : NULL;
    if (definition && !d) return -ENOMEM;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__RebuildReq req = FACTUM__READMODELS__REBUILD_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        req.definition = d ? d : "";
        ProtobufCMessage *m;
        rc = run(c, "Rebuild", &req.base, &factum__readmodels__empty__descriptor, &m);
    }
    free(d);
    return rc;
}

static int name_call(factum_client *c, const char *method, const char *name)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__NameReq req = FACTUM__READMODELS__NAME_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        ProtobufCMessage *m;
        rc = run(c, method, &req.base, &factum__readmodels__empty__descriptor, &m);
    }
    return rc;
}

int factum_client_readmodel_pause(factum_client *c, const char *name)
{
    return name_call(c, "Pause", name);
}

int factum_client_readmodel_resume(factum_client *c, const char *name)
{
    return name_call(c, "Resume", name);
}

int factum_client_readmodel_drop(factum_client *c, const char *name)
{
    return name_call(c, "Drop", name);
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void from_status(factum_readmodel_status *st, const Factum__Readmodels__Status *s)
{
    memset(st, 0, sizeof *st);
    copy_field(st->name, sizeof st->name, s->name);
    copy_field(st->target, sizeof st->target, s->target);
    st->lifecycle = s->lifecycle && !strcmp(s->lifecycle, "inline") ? FACTUM_READMODEL_INLINE : FACTUM_READMODEL_ASYNC;
    const char *state = s->state ? s->state : "";
    st->state = !strcmp(state, "paused")     ? FACTUM_READMODEL_PAUSED
                : !strcmp(state, "faulted")  ? FACTUM_READMODEL_FAULTED
                : !strcmp(state, "starting") ? FACTUM_READMODEL_STARTING
                                             : FACTUM_READMODEL_RUNNING;
    st->generation = s->generation;
    st->position = s->position;
    st->head = s->head;
    st->lag_events = s->lag_events;
    st->lag_ns = s->lag_seconds > 0 && s->lag_seconds < 9e9 ? (int64_t)(s->lag_seconds * 1e9) : 0;
    st->applied = s->applied;
    st->skipped = s->skipped;
    st->parked = s->parked;
    st->events_per_second = s->events_per_second;
    st->building = s->building;
    st->building_position = s->building_position;
    copy_field(st->error, sizeof st->error, s->error);
    copy_field(st->statement, sizeof st->statement, s->statement);
    st->error_position = s->error_position;
    copy_field(st->error_stream, sizeof st->error_stream, s->error_stream);
    st->error_version = s->error_version;
    copy_field(st->readers, sizeof st->readers, s->readers);
    st->live = s->live;
}

int factum_client_readmodel_get(factum_client *c, const char *name, factum_readmodel_status *st, char **definition)
{
    if (!c || !st) return FACTUM_EINVAL;
    if (definition) *definition = NULL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__NameReq req = FACTUM__READMODELS__NAME_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        ProtobufCMessage *m;
        rc = run(c, "Get", &req.base, &factum__readmodels__get_resp__descriptor, &m);
        if (!rc) {
            const Factum__Readmodels__GetResp *r = (const void *)m;
            if (!r->status) {
                client_seterr(c, "the server's GetResp has no status");
                rc = FACTUM_EPROTOCOL;
            } else {
                from_status(st, r->status);
                const char *d = r->definition ? r->definition : "";
                if (definition && !(*definition = dup_str(d, strlen(d)))) rc = -ENOMEM;
            }
        }
        client_arena_trim(client_tl_arena());
    }
    return rc;
}

int factum_client_readmodel_list(factum_client *c, int (*cb)(void *ctx, const factum_readmodel_status *st),
                                 void *ctx)
{
    if (!c || !cb) return FACTUM_EINVAL;
    factum_readmodel_status *st = malloc(sizeof *st);
    if (!st) return -ENOMEM;
    client_errbuf()[0] = 0;
    Factum__Readmodels__Empty req = FACTUM__READMODELS__EMPTY__INIT;
    ProtobufCMessage *m;
    int rc = run(c, "List", &req.base, &factum__readmodels__list_resp__descriptor, &m);
    if (!rc) {
        const Factum__Readmodels__ListResp *r = (const void *)m;
        for (size_t i = 0; i < r->n_read_models && !rc; i++) {
            from_status(st, r->read_models[i]);
            rc = cb(ctx, st);
        }
    }
    client_arena_trim(client_tl_arena());
    free(st);
    return rc;
}

int factum_client_readmodel_wait(factum_client *c, const char *name, uint64_t position, int timeout_ms,
                                 uint64_t *reached)
{
    if (!c || timeout_ms < 0) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__WaitReq req = FACTUM__READMODELS__WAIT_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        req.position = position;
        req.timeout_ms = timeout_ms;
        uint32_t keep = stretch(c, timeout_ms ? (uint64_t)timeout_ms : 5000);
        ProtobufCMessage *m;
        rc = run(c, "Wait", &req.base, &factum__readmodels__wait_resp__descriptor, &m);
        c->timeout_ms = keep;
        if (!rc && reached) *reached = ((const Factum__Readmodels__WaitResp *)(const void *)m)->position;
    }
    return rc;
}

static int take_result(factum_client *c, const ProtobufCMessage *m, char **out)
{
    const Factum__Readmodels__QueryResp *r = (const void *)m;
    const char *s = r->result ? r->result : "";
    if (!(*out = dup_str(s, strlen(s)))) {
        client_seterr(c, "out of memory for the answer");
        return -ENOMEM;
    }
    return 0;
}

/* One Query call: now (as_of 0, waiting for o->min_position) or as of a
 * time (as_of_time) or a position (as_of 1, as_of_position). */
static int query_call(factum_client *c, const char *name, int as_of, const char *as_of_time, uint64_t as_of_position,
                      const char *sql, const char *params_json, const factum_query_options *o, char **out)
{
    if (!c || !sql || !out) return FACTUM_EINVAL;
    *out = NULL;
    factum_query_options dflt;
    factum_query_options_init(&dflt);
    if (!o) o = &dflt;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__QueryReq req = FACTUM__READMODELS__QUERY_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        req.sql = (char *)(uintptr_t)sql;
        req.params = (char *)(uintptr_t)(params_json ? params_json : "");
        req.row_limit = o->row_limit;
        req.time_limit_ms = o->time_limit_ms;
        uint64_t wait = o->time_limit_ms ? o->time_limit_ms : 5000;
        if (!as_of) {
            req.min_position = o->min_position;
            req.wait_ms = o->wait_ms > 0 ? (uint32_t)o->wait_ms : 0;
            wait += o->min_position ? (uint64_t)(o->wait_ms > 0 ? o->wait_ms : 5000) : 0;
        } else {
            if (as_of_time) {
                req.as_of_option_case = FACTUM__READMODELS__QUERY_REQ__AS_OF_OPTION_AS_OF;
                req.as_of = (char *)(uintptr_t)as_of_time;
            } else {
                req.as_of_option_case = FACTUM__READMODELS__QUERY_REQ__AS_OF_OPTION_AS_OF_POSITION;
                req.as_of_position = as_of_position;
            }
            wait += 300000; /* the server replays the read model up to then */
        }
        uint32_t keep = stretch(c, wait);
        ProtobufCMessage *m;
        rc = run(c, "Query", &req.base, &factum__readmodels__query_resp__descriptor, &m);
        c->timeout_ms = keep;
        if (!rc) rc = take_result(c, m, out);
        client_arena_trim(client_tl_arena());
    }
    return rc;
}

int factum_client_readmodel_query(factum_client *c, const char *name, const char *sql, const char *params_json,
                                  const factum_query_options *o, char **out)
{
    return query_call(c, name, 0, NULL, 0, sql, params_json, o, out);
}

int factum_client_readmodel_query_asof(factum_client *c, const char *name, const char *as_of_time,
                                       uint64_t as_of_position, const char *sql, const char *params_json,
                                       const factum_query_options *o, char **out)
{
    return query_call(c, name, 1, as_of_time, as_of_position, sql, params_json, o, out);
}

int factum_client_readmodel_parked(factum_client *c, const char *name, uint32_t limit, char **out)
{
    if (!c || !out) return FACTUM_EINVAL;
    *out = NULL;
    client_errbuf()[0] = 0;
    int rc = check_name(c, name);
    if (!rc) {
        Factum__Readmodels__ParkedReq req = FACTUM__READMODELS__PARKED_REQ__INIT;
        req.name = (char *)(uintptr_t)name;
        req.limit = limit;
        ProtobufCMessage *m;
        rc = run(c, "Parked", &req.base, &factum__readmodels__query_resp__descriptor, &m);
        if (!rc) rc = take_result(c, m, out);
        client_arena_trim(client_tl_arena());
    }
    return rc;
}
