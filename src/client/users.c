/*
 * users.c - the client's side of the Users service (factum_client_user_*):
 * requests from plain strings, DetailsResp back into factum_user_info, and
 * KurrentDB's `user-conflict` made FACTUM_EEXISTS.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "client/client_int.h"
#include "kurrentdb/users.pb-c.h"

#define SVC "/event_store.client.users.Users/"

static int user_error(const client_call *k, int rc)
{
    if (!strcmp(k->exception, "user-conflict")) return FACTUM_EEXISTS;
    return rc;
}

/* Run a call whose answer is an empty message. */
static int run_empty(factum_client *c, const char *method, const ProtobufCMessage *req)
{
    char path[96];
    snprintf(path, sizeof path, SVC "%s", method);
    client_errbuf()[0] = 0;
    client_call k;
    client_call_init(&k, path, NULL, NULL);
    int rc = client_call_add(&k, req);
    if (!rc) rc = client_call_run(c, &k);
    if (rc) rc = user_error(&k, rc);
    client_call_deinit(&k);
    return rc;
}

static int need_login(factum_client *c, const char *login)
{
    if (!c) return FACTUM_EINVAL;
    if (!login || !login[0]) {
        client_seterr(c, "a login name is required");
        return FACTUM_EINVAL;
    }
    return 0;
}

#define S(x) ((char *)(uintptr_t)(x))

int factum_client_user_create(factum_client *c, const char *login, const char *full_name,
                              const char *const *groups, size_t n_groups, const char *password)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__CreateReq req = EVENT_STORE__CLIENT__USERS__CREATE_REQ__INIT;
    EventStore__Client__Users__CreateReq__Options o = EVENT_STORE__CLIENT__USERS__CREATE_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    o.full_name = S(full_name ? full_name : "");
    o.password = S(password ? password : "");
    o.n_groups = n_groups;
    o.groups = (char **)(uintptr_t)groups;
    req.options = &o;
    return run_empty(c, "Create", &req.base);
}

int factum_client_user_update(factum_client *c, const char *login, const char *full_name,
                              const char *const *groups, size_t n_groups)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__UpdateReq req = EVENT_STORE__CLIENT__USERS__UPDATE_REQ__INIT;
    EventStore__Client__Users__UpdateReq__Options o = EVENT_STORE__CLIENT__USERS__UPDATE_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    o.full_name = S(full_name ? full_name : "");
    o.n_groups = n_groups;
    o.groups = (char **)(uintptr_t)groups;
    req.options = &o;
    return run_empty(c, "Update", &req.base);
}

int factum_client_user_delete(factum_client *c, const char *login)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__DeleteReq req = EVENT_STORE__CLIENT__USERS__DELETE_REQ__INIT;
    EventStore__Client__Users__DeleteReq__Options o = EVENT_STORE__CLIENT__USERS__DELETE_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    req.options = &o;
    return run_empty(c, "Delete", &req.base);
}

int factum_client_user_enable(factum_client *c, const char *login)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__EnableReq req = EVENT_STORE__CLIENT__USERS__ENABLE_REQ__INIT;
    EventStore__Client__Users__EnableReq__Options o = EVENT_STORE__CLIENT__USERS__ENABLE_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    req.options = &o;
    return run_empty(c, "Enable", &req.base);
}

int factum_client_user_disable(factum_client *c, const char *login)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__DisableReq req = EVENT_STORE__CLIENT__USERS__DISABLE_REQ__INIT;
    EventStore__Client__Users__DisableReq__Options o = EVENT_STORE__CLIENT__USERS__DISABLE_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    req.options = &o;
    return run_empty(c, "Disable", &req.base);
}

int factum_client_user_change_password(factum_client *c, const char *login, const char *current,
                                       const char *new_password)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__ChangePasswordReq req = EVENT_STORE__CLIENT__USERS__CHANGE_PASSWORD_REQ__INIT;
    EventStore__Client__Users__ChangePasswordReq__Options o =
        EVENT_STORE__CLIENT__USERS__CHANGE_PASSWORD_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    o.current_password = S(current ? current : "");
    o.new_password = S(new_password ? new_password : "");
    req.options = &o;
    return run_empty(c, "ChangePassword", &req.base);
}

int factum_client_user_reset_password(factum_client *c, const char *login, const char *new_password)
{
    int rc = need_login(c, login);
    if (rc) return rc;
    EventStore__Client__Users__ResetPasswordReq req = EVENT_STORE__CLIENT__USERS__RESET_PASSWORD_REQ__INIT;
    EventStore__Client__Users__ResetPasswordReq__Options o =
        EVENT_STORE__CLIENT__USERS__RESET_PASSWORD_REQ__OPTIONS__INIT;
    o.login_name = S(login);
    o.new_password = S(new_password ? new_password : "");
    req.options = &o;
    return run_empty(c, "ResetPassword", &req.base);
}

typedef struct list_ctx {
    factum_client *c;
    int (*cb)(void *ctx, const factum_user_info *u);
    void *ctx;
    int stopped;
} list_ctx;

static int on_details(void *arg, const uint8_t *msg, size_t len)
{
    list_ctx *l = arg;
    client_arena_reset(client_tl_arena());
    EventStore__Client__Users__DetailsResp *r =
        event_store__client__users__details_resp__unpack(&client_tl_arena()->pa, len, msg);
    if (!r) {
        client_seterr(l->c, "the server's DetailsResp does not decode");
        return FACTUM_EPROTOCOL;
    }
    const EventStore__Client__Users__DetailsResp__UserDetails *d = r->user_details;
    if (!d) return 0;
    factum_user_info u;
    memset(&u, 0, sizeof u);
    u.login = d->login_name ? d->login_name : "";
    u.full_name = d->full_name ? d->full_name : "";
    u.groups = (const char *const *)d->groups;
    u.n_groups = d->n_groups;
    u.disabled = d->disabled;
    u.updated_ns = d->last_updated ? d->last_updated->ticks_since_epoch * 100 : 0;
    int rc = l->cb(l->ctx, &u);
    if (rc) {
        l->stopped = rc;
        return CLIENT_ENOUGH;
    }
    return 0;
}

int factum_client_user_list(factum_client *c, const char *login,
                            int (*cb)(void *ctx, const factum_user_info *u), void *ctx)
{
    if (!c || !cb) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    EventStore__Client__Users__DetailsReq req = EVENT_STORE__CLIENT__USERS__DETAILS_REQ__INIT;
    EventStore__Client__Users__DetailsReq__Options o = EVENT_STORE__CLIENT__USERS__DETAILS_REQ__OPTIONS__INIT;
    o.login_name = S(login ? login : "");
    req.options = &o;
    list_ctx l = {c, cb, ctx, 0};
    client_call k;
    client_call_init(&k, SVC "Details", on_details, &l);
    int rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    if (rc && !l.stopped) rc = user_error(&k, rc);
    if (l.stopped) rc = l.stopped;
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    return rc;
}
