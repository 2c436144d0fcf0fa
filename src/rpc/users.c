/*
 * users.c - event_store.client.users.Users: Create, Update, Delete,
 * Disable, Enable, Details, ChangePassword, ResetPassword, on the users of
 * src/auth/users.h (rpc_ctx.users).
 *
 * Who may do what is KurrentDB's default policy (LegacyPolicySelectorFactory):
 * admins (group `$admins` or login `admin`) create, update, delete, enable,
 * disable, reset passwords and list every user; a user may read its own
 * details and change its own password (ChangePassword is for oneself only,
 * admins included: they reset). Anything else is PERMISSION_DENIED "Access
 * Denied" with `exception: access-denied`. On an insecure server every call
 * acts as the system principal and passes.
 *
 * Errors as KurrentDB's service gives them (RpcExceptions): an unknown user
 * is NOT_FOUND "User 'x' is not found." with `exception: user-not-found` and
 * `login-name: x`; creating an existing user succeeds if the password is the
 * same (KurrentDB's retried create); otherwise, or for a change that lost a race, it is
 * FAILED_PRECONDITION "Conflict." with `user-conflict`; a wrong current
 * password (ChangePassword) is "Access Denied". A request that names no
 * user or carries a bad name, group or password is INVALID_ARGUMENT.
 *
 * The changes are asynchronous (USERS-1): the call is referenced until the
 * answer comes through the loop; a call its client gave up on is only
 * released then. Every change that succeeded is audited (rpc_audit).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "auth/users.h"
#include "kurrentdb/users.pb-c.h"
#include "net/grpc.h"
#include "net/pb.h"
#include "rpc/rpc.h"

enum { U_CREATE, U_UPDATE, U_DELETE, U_DISABLE, U_ENABLE, U_DETAILS, U_CHANGE, U_RESET };

static const char *const action_names[] = {"user-created",     "user-updated",  "user-deleted",
                                           "user-disabled",    "user-enabled",  "",
                                           "password-changed", "password-reset"};

/* A call in flight. */
typedef struct ucall {
    rpc_ctx *ctx;
    net_call *c;
    int method;
    int have_request;
    char login[AUTH_LOGIN_MAX + 1];
    /* Details of every user: the next login to send is after this one */
    int listing;
    char after[AUTH_LOGIN_MAX + 1];
    int started_listing;
} ucall;

static void access_denied(net_call *c)
{
    rpc_fail(c, GRPC_PERMISSION_DENIED, "Access Denied", "access-denied", NULL);
}

static void user_fail(net_call *c, int rc, const char *login)
{
    char msg[AUTH_LOGIN_MAX + 64];
    switch (rc) {
    case AUTH_ENOTFOUND:
        snprintf(msg, sizeof msg, "User '%s' is not found.", login);
        rpc_fail(c, GRPC_NOT_FOUND, msg, "user-not-found", "login-name", login, NULL);
        return;
    case AUTH_ECONFLICT:
        rpc_fail(c, GRPC_FAILED_PRECONDITION, "Conflict.", "user-conflict", "login-name", login, NULL);
        return;
    case AUTH_EDENIED:
        access_denied(c);
        return;
    case AUTH_EBUSY:
        rpc_fail(c, GRPC_UNAVAILABLE, "the server is busy: try again", NULL, NULL);
        return;
    case AUTH_EINVAL:
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "invalid login name, full name, group or password", NULL, NULL);
        return;
    default:
        rpc_fail_store(c, rc, NULL, 0, 0);
        return;
    }
}

static void ucall_free(ucall *uc)
{
    free(uc);
}

/* ---- changes ------------------------------------------------------------------- */

static void answer_empty(ucall *uc)
{
    /* Every response of a change is an empty message: zero bytes. */
    static const uint8_t none[1];
    if (net_call_send(uc->c, none, 0) == 0)
        net_call_finish(uc->c, GRPC_OK, NULL, NULL, 0);
    else
        net_call_finish(uc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
}

static void changed(void *arg, int rc)
{
    ucall *uc = arg;
    net_call *c = uc->c;
    if (!net_call_done(c)) {
        if (rc == AUTH_UNCHANGED) {
            answer_empty(uc); /* nothing changed: nothing to audit */
        } else if (rc) {
            user_fail(c, rc, uc->login);
        } else {
            if (uc->method != U_DETAILS) rpc_audit(uc->ctx, c, action_names[uc->method], uc->login, NULL);
            answer_empty(uc);
        }
    } else if (rc == 0 && uc->method != U_DETAILS) {
        rpc_audit(uc->ctx, NULL, action_names[uc->method], uc->login, NULL); /* done, even if no one hears */
    }
    if (net_call_state(c) == NULL)
        ucall_free(uc); /* closed meanwhile */
    else
        uc->have_request = 2; /* answered: on_close frees it */
    net_call_unref(c);
}

/* Hand the change to src/auth/users.c: rc is what it said at once. */
static void started(ucall *uc, int rc)
{
    if (rc == 0) {
        net_call_ref(uc->c);  /* until changed() */
        uc->have_request = 3; /* pending */
        return;
    }
    user_fail(uc->c, rc, uc->login);
}

/* The groups of a request, as a borrowed array. */
static int change_message(ucall *uc, const uint8_t *msg, size_t len)
{
    rpc_ctx *ctx = uc->ctx;
    net_call *c = uc->c;
    const auth_principal *p = rpc_principal(c);
    pb_alloc pa;
    int rc = 0;
    switch (uc->method) {
    case U_CREATE:
    case U_UPDATE: {
        /* CreateReq and UpdateReq have the same shape */
        EventStore__Client__Users__CreateReq *req =
            uc->method == U_CREATE ? rpc_unpack(c, &event_store__client__users__create_req__descriptor, msg,
                                                len, &pa, "CreateReq")
                                   : rpc_unpack(c, &event_store__client__users__update_req__descriptor, msg,
                                                len, &pa, "UpdateReq");
        if (!req) return 0;
        const EventStore__Client__Users__CreateReq__Options *o = req->options;
        if (!auth_principal_is_admin(p)) {
            access_denied(c);
        } else if (!o || !o->login_name || !*o->login_name) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request names no user (options.login_name)", NULL, NULL);
        } else {
            snprintf(uc->login, sizeof uc->login, "%s", o->login_name);
            auth_user_spec s = {o->login_name, o->full_name, (const char *const *)o->groups,
                                o->n_groups,   o->password,  o->password ? strlen(o->password) : 0};
            if (uc->method == U_CREATE && (!o->password || !*o->password))
                rpc_fail(c, GRPC_INVALID_ARGUMENT, "a new user needs a password (options.password)", NULL,
                         NULL);
            else
                started(uc, uc->method == U_CREATE ? auth_users_create(ctx->users, &s, changed, uc)
                                                   : auth_users_update(ctx->users, &s, changed, uc));
        }
        rpc_unpack_free(req, &pa);
        return 0;
    }
    case U_DELETE:
    case U_DISABLE:
    case U_ENABLE: {
        const ProtobufCMessageDescriptor *d =
            uc->method == U_DELETE    ? &event_store__client__users__delete_req__descriptor
            : uc->method == U_DISABLE ? &event_store__client__users__disable_req__descriptor
                                      : &event_store__client__users__enable_req__descriptor;
        /* DeleteReq, DisableReq and EnableReq have the same shape */
        EventStore__Client__Users__DeleteReq *req = rpc_unpack(c, d, msg, len, &pa, d->short_name);
        if (!req) return 0;
        const char *login = req->options ? req->options->login_name : NULL;
        if (!auth_principal_is_admin(p)) {
            access_denied(c);
        } else if (!login || !*login) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request names no user (options.login_name)", NULL, NULL);
        } else {
            snprintf(uc->login, sizeof uc->login, "%s", login);
            started(uc,
                    uc->method == U_DELETE
                        ? auth_users_delete(ctx->users, login, changed, uc)
                        : auth_users_set_disabled(ctx->users, login, uc->method == U_DISABLE, changed, uc));
        }
        rpc_unpack_free(req, &pa);
        return 0;
    }
    case U_RESET: {
        EventStore__Client__Users__ResetPasswordReq *req =
            rpc_unpack(c, &event_store__client__users__reset_password_req__descriptor, msg, len, &pa,
                       "ResetPasswordReq");
        if (!req) return 0;
        const EventStore__Client__Users__ResetPasswordReq__Options *o = req->options;
        if (!auth_principal_is_admin(p)) {
            access_denied(c);
        } else if (!o || !o->login_name || !*o->login_name) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request names no user (options.login_name)", NULL, NULL);
        } else {
            snprintf(uc->login, sizeof uc->login, "%s", o->login_name);
            const char *pw = o->new_password ? o->new_password : "";
            started(uc, auth_users_reset_password(ctx->users, o->login_name, pw, strlen(pw), changed, uc));
        }
        rpc_unpack_free(req, &pa);
        return 0;
    }
    case U_CHANGE: {
        EventStore__Client__Users__ChangePasswordReq *req =
            rpc_unpack(c, &event_store__client__users__change_password_req__descriptor, msg, len, &pa,
                       "ChangePasswordReq");
        if (!req) return 0;
        const EventStore__Client__Users__ChangePasswordReq__Options *o = req->options;
        if (!o || !o->login_name || !*o->login_name) {
            rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request names no user (options.login_name)", NULL, NULL);
        } else if (!(p->flags & AUTH_P_SYSTEM) &&
                   (!auth_principal_authenticated(p) || strcmp(p->login, o->login_name) != 0)) {
            access_denied(c); /* for oneself only (KurrentDB: the user parameter must match) */
        } else {
            snprintf(uc->login, sizeof uc->login, "%s", o->login_name);
            const char *cur = o->current_password ? o->current_password : "";
            const char *pw = o->new_password ? o->new_password : "";
            started(uc, auth_users_change_password(ctx->users, o->login_name, cur, strlen(cur), pw,
                                                   strlen(pw), changed, uc));
        }
        rpc_unpack_free(req, &pa);
        return 0;
    }
    }
    return rc;
}

/* ---- Details --------------------------------------------------------------------- */

static int send_user(ucall *uc, const auth_user *x)
{
    EventStore__Client__Users__DetailsResp r = EVENT_STORE__CLIENT__USERS__DETAILS_RESP__INIT;
    EventStore__Client__Users__DetailsResp__UserDetails d =
        EVENT_STORE__CLIENT__USERS__DETAILS_RESP__USER_DETAILS__INIT;
    EventStore__Client__Users__DetailsResp__UserDetails__DateTime t =
        EVENT_STORE__CLIENT__USERS__DETAILS_RESP__USER_DETAILS__DATE_TIME__INIT;
    d.login_name = x->login;
    d.full_name = x->full_name;
    d.n_groups = x->n_groups;
    d.groups = x->groups;
    d.disabled = x->disabled;
    t.ticks_since_epoch = rpc_ticks(x->updated_ns);
    d.last_updated = &t;
    r.user_details = &d;
    return rpc_send(uc->ctx, uc->c, &r.base);
}

/* Send users after uc->after while the queue takes them. */
static void list_more(ucall *uc)
{
    size_t n;
    const auth_user *const *all = auth_users_all(uc->ctx->users, &n);
    /* the table is sorted by login: continue after the last one sent */
    size_t i = 0;
    if (uc->started_listing)
        while (i < n && strcmp(all[i]->login, uc->after) <= 0)
            i++;
    for (; i < n; i++) {
        int rc = send_user(uc, all[i]);
        if (rc == -EAGAIN) return; /* on_writable goes on */
        if (rc) {
            net_call_finish(uc->c, GRPC_INTERNAL, "could not send the response", NULL, 0);
            return;
        }
        uc->started_listing = 1;
        snprintf(uc->after, sizeof uc->after, "%s", all[i]->login);
    }
    net_call_finish(uc->c, GRPC_OK, NULL, NULL, 0);
}

static void details_message(ucall *uc, const uint8_t *msg, size_t len)
{
    net_call *c = uc->c;
    pb_alloc pa;
    EventStore__Client__Users__DetailsReq *req =
        rpc_unpack(c, &event_store__client__users__details_req__descriptor, msg, len, &pa, "DetailsReq");
    if (!req) return;
    const char *login = req->options && req->options->login_name ? req->options->login_name : "";
    const auth_principal *p = rpc_principal(c);
    int admin = auth_principal_is_admin(p);
    if (!*login) {
        if (!admin)
            access_denied(c); /* Users.List */
        else {
            uc->listing = 1;
            list_more(uc);
        }
    } else if (!admin && !(auth_principal_authenticated(p) && strcmp(p->login, login) == 0)) {
        access_denied(c); /* Users.Read: admins, or oneself */
    } else {
        const auth_user *x = auth_users_find(uc->ctx->users, login);
        if (!x) {
            user_fail(c, AUTH_ENOTFOUND, login);
        } else if (send_user(uc, x) == 0) {
            net_call_finish(c, GRPC_OK, NULL, NULL, 0);
        } else {
            net_call_finish(c, GRPC_INTERNAL, "could not send the response", NULL, 0);
        }
    }
    rpc_unpack_free(req, &pa);
}

/* ---- the calls ------------------------------------------------------------------- */

static int u_start(net_call *c, rpc_ctx *ctx, int method)
{
    if (!ctx->users) {
        rpc_fail(c, GRPC_UNIMPLEMENTED, "no users on this server: it runs with --insecure (no authentication, so no user management)", NULL, NULL);
        return 0;
    }
    ucall *uc = calloc(1, sizeof *uc);
    if (!uc) return -ENOMEM;
    uc->ctx = ctx;
    uc->c = c;
    uc->method = method;
    net_call_set_state(c, uc);
    return 0;
}

#define START(fn, m)                                                                                         \
    static int fn(net_call *c, void *svc)                                                                    \
    {                                                                                                        \
        return u_start(c, svc, m);                                                                           \
    }
START(create_start, U_CREATE)
START(update_start, U_UPDATE)
START(delete_start, U_DELETE)
START(disable_start, U_DISABLE)
START(enable_start, U_ENABLE)
START(details_start, U_DETAILS)
START(change_start, U_CHANGE)
START(reset_start, U_RESET)
#undef START

static void u_message(net_call *c, const uint8_t *msg, size_t len)
{
    ucall *uc = net_call_state(c);
    if (!uc || uc->have_request) return; /* unary: one request */
    uc->have_request = 1;
    if (uc->method == U_DETAILS)
        details_message(uc, msg, len);
    else
        change_message(uc, msg, len);
}

static void u_half_close(net_call *c)
{
    ucall *uc = net_call_state(c);
    if (uc && !uc->have_request && !net_call_done(c))
        rpc_fail(c, GRPC_INVALID_ARGUMENT, "the request message is missing", NULL, NULL);
}

static void u_writable(net_call *c)
{
    ucall *uc = net_call_state(c);
    if (uc && uc->listing && !net_call_done(c)) list_more(uc);
}

static void u_close(net_call *c)
{
    ucall *uc = net_call_state(c);
    net_call_set_state(c, NULL);
    if (!uc) return;
    if (uc->have_request == 3) return; /* a change in flight: changed() frees it */
    ucall_free(uc);
}

#define UM(method, start)                                                                                    \
    {                                                                                                        \
        "/event_store.client.users.Users/" method, start, u_message, u_half_close, u_writable, u_close, NULL \
    }
const net_method rpc_users_methods[] = {
    UM("Create", create_start),         UM("Update", update_start),       UM("Delete", delete_start),
    UM("Disable", disable_start),       UM("Enable", enable_start),       UM("Details", details_start),
    UM("ChangePassword", change_start), UM("ResetPassword", reset_start),
};
#undef UM
const size_t rpc_users_n = sizeof rpc_users_methods / sizeof *rpc_users_methods;
