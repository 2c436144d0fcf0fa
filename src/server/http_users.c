/*
 * http_users.c - factumd's users as JSON, for the admin web UI (ADR 0029,
 * docs/protocol.md) and scripts: list, create, update, enable, disable,
 * reset a password, delete; and a user's own password change. Each is
 * checked against KurrentDB's Users operation rules; changes run through
 * src/auth/users.c (the password hashing on its workers) and are answered
 * later, on the loop (NET-9).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/acl.h"
#include "auth/policy.h"
#include "auth/principal.h"
#include "auth/users.h"
#include "base/json.h"
#include "rpc/rpc.h"
#include "server/server.h"

static const auth_principal *who(const net_http_req *req)
{
    return req->auth ? req->auth : auth_principal_system();
}

static void user_json(base_buf *b, const auth_user *x)
{
    base_buf_append(b, "{\"login\":", 9);
    json_write_string(b, x->login, strlen(x->login));
    base_buf_append(b, ",\"fullName\":", 12);
    json_write_string(b, x->full_name ? x->full_name : "", x->full_name ? strlen(x->full_name) : 0);
    base_buf_append(b, ",\"groups\":[", 11);
    for (size_t i = 0; i < x->n_groups; i++) {
        if (i) base_buf_append(b, ",", 1);
        json_write_string(b, x->groups[i], strlen(x->groups[i]));
    }
    base_buf_printf(b, "],\"disabled\":%s,\"updated\":%lld}", x->disabled ? "true" : "false",
                    (long long)(x->updated_ns / 1000000));
}

typedef struct user_job {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p;
    char action[40];
    char login[AUTH_LOGIN_MAX + 1];
} user_job;

static void user_done(void *arg, int rc)
{
    user_job *j = arg;
    net_http_resp r = {0};
    if (rc < 0) {
        int s = rc == AUTH_ENOTFOUND   ? 404
                : rc == AUTH_ECONFLICT ? 409
                : rc == AUTH_EDENIED   ? 403
                : rc == AUTH_EBUSY     ? 503
                : rc == AUTH_EINVAL    ? 400
                                       : 500;
        srv_json_fail(&r, s,
                      rc == AUTH_ENOTFOUND   ? "no such user"
                      : rc == AUTH_ECONFLICT ? "that user exists already"
                      : rc == AUTH_EDENIED   ? "the current password is wrong"
                      : rc == AUTH_EBUSY     ? "busy: try again"
                      : rc == AUTH_EINVAL    ? "a bad user name, group or password"
                                             : factum_strerror(rc));
    } else {
        rpc_audit_as(&j->st->rpc, j->p, NULL, j->action, j->login, NULL);
        r.status = 200;
        r.content_type = "application/json";
        base_buf_append(&r.body, "{}\n", 3);
    }
    net_http_answer(j->later, &r);
    base_buf_free(&r.body);
    base_buf_free(&r.headers);
    if (j->p) auth_principal_unref(j->p);
    free(j);
}

/* A change: parse the body (JSON object, may be NULL), start it, answer later. */
enum { U_CREATE, U_UPDATE, U_DELETE, U_ENABLE, U_DISABLE, U_RESET, U_CHANGE };

static void change(srv_state *st, const net_http_req *req, net_http_resp *r, int c, const char *login)
{
    static const int ops[] = {AUTH_OP_USERS_CREATE,         AUTH_OP_USERS_UPDATE,
                              AUTH_OP_USERS_DELETE,         AUTH_OP_USERS_ENABLE,
                              AUTH_OP_USERS_DISABLE,        AUTH_OP_USERS_RESET_PASSWORD,
                              AUTH_OP_USERS_CHANGE_PASSWORD};
    static const char *const actions[] = {"user-created",         "user-updated",  "user-deleted",
                                          "user-enabled",         "user-disabled", "user-password-reset",
                                          "user-password-changed"};
    json_value *doc = NULL;
    const json_value *v;
    if ((c == U_CREATE || c == U_UPDATE || c == U_RESET || c == U_CHANGE) &&
        (req->body_len > 65536 || json_parse((const char *)req->body, req->body_len, &doc) ||
         doc->type != JSON_OBJECT)) {
        json_free(doc);
        srv_json_fail(r, 400, "the body must be a JSON object");
        return;
    }
    if (c == U_CREATE) login = (v = json_get(doc, "login")) && v->type == JSON_STRING ? v->str : "";
    if (!login[0] || strlen(login) > AUTH_LOGIN_MAX) {
        json_free(doc);
        srv_json_fail(r, 400, "a user name is needed (login)");
        return;
    }
    if (!srv_may_op(st, req, ops[c], login, r)) {
        json_free(doc);
        return;
    }
    user_job *j = calloc(1, sizeof *j);
    if (!j || !(j->later = net_http_defer(req))) {
        free(j);
        json_free(doc);
        srv_json_fail(r, 503, "out of memory");
        return;
    }
    j->st = st;
    snprintf(j->action, sizeof j->action, "%s", actions[c]);
    snprintf(j->login, sizeof j->login, "%s", login);
    j->p = auth_principal_ref(who(req));
    const char *groups[64];
    size_t ng = 0;
    auth_user_spec s = {j->login, NULL, groups, 0, NULL, 0};
    if (doc) {
        if ((v = json_get(doc, "fullName")) && v->type == JSON_STRING) s.full_name = v->str;
        if ((v = json_get(doc, "groups")) && v->type == JSON_ARRAY)
            for (size_t i = 0; i < v->n && ng < 64; i++)
                if (v->items[i]->type == JSON_STRING) groups[ng++] = v->items[i]->str;
        s.n_groups = ng;
        if ((v = json_get(doc, "password")) && v->type == JSON_STRING) {
            s.password = v->str;
            s.password_len = v->len;
        }
    }
    int rc;
    switch (c) {
    case U_CREATE:
        rc = auth_users_create(st->users, &s, user_done, j);
        break;
    case U_UPDATE:
        rc = auth_users_update(st->users, &s, user_done, j);
        break;
    case U_DELETE:
        rc = auth_users_delete(st->users, j->login, user_done, j);
        break;
    case U_ENABLE:
        rc = auth_users_set_disabled(st->users, j->login, 0, user_done, j);
        break;
    case U_DISABLE:
        rc = auth_users_set_disabled(st->users, j->login, 1, user_done, j);
        break;
    case U_RESET:
        rc = s.password
                 ? auth_users_reset_password(st->users, j->login, s.password, s.password_len, user_done, j)
                 : AUTH_EINVAL;
        break;
    default: {
        const json_value *cur = json_get(doc, "current");
        rc = s.password && cur && cur->type == JSON_STRING
                 ? auth_users_change_password(st->users, j->login, cur->str, cur->len, s.password,
                                              s.password_len, user_done, j)
                 : AUTH_EINVAL;
    }
    }
    static const char *const secret[] = {"password", "current"}; /* copied by the calls that take them */
    for (size_t i = 0; doc && i < 2; i++)
        if ((v = json_get(doc, secret[i])) && v->type == JSON_STRING) OPENSSL_cleanse(v->str, v->len);
    json_free(doc);
    if (rc) user_done(j, rc < 0 ? rc : AUTH_EINVAL); /* not started: the callback will not run */
}

int srv_http_users(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    const char *p = req->path;
    if (strcmp(p, "/api/users") && strncmp(p, "/api/user", 9)) return 0;
    if (!st->users || !st->sec.auth) {
        srv_json_fail(resp, 409, "factumd runs without users (--insecure)");
        return 1;
    }
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    int post = !strcmp(req->method, "POST");
    if (!strcmp(p, "/api/users")) {
        if (get) {
            if (srv_may_op(st, req, AUTH_OP_USERS_LIST, NULL, resp)) {
                size_t n = 0;
                const auth_user *const *all = auth_users_all(st->users, &n);
                base_buf_append(&resp->body, "{\"users\":[", 10);
                for (size_t i = 0; i < n; i++) {
                    if (i) base_buf_append(&resp->body, ",", 1);
                    user_json(&resp->body, all[i]);
                }
                base_buf_append(&resp->body, "]}\n", 3);
                resp->status = 200;
                resp->content_type = "application/json";
            }
        } else if (post) {
            change(st, req, resp, U_CREATE, NULL);
        } else {
            srv_json_fail(resp, 405, "method not allowed");
        }
        return 1;
    }
    base_buf login = {0};
    if (srv_qs_get(req->query, "login", &login) != 1 || !login.len) {
        base_buf_free(&login);
        srv_json_fail(resp, 400, "bad parameters: login");
        return 1;
    }
    const char *l = (const char *)login.data, *cmd = p + 9; /* after /api/user */
    if (!strcmp(cmd, "") && !strcmp(req->method, "PUT"))
        change(st, req, resp, U_UPDATE, l);
    else if (!strcmp(cmd, "") && !strcmp(req->method, "DELETE"))
        change(st, req, resp, U_DELETE, l);
    else if (post && !strcmp(cmd, "/enable"))
        change(st, req, resp, U_ENABLE, l);
    else if (post && !strcmp(cmd, "/disable"))
        change(st, req, resp, U_DISABLE, l);
    else if (post && !strcmp(cmd, "/reset-password"))
        change(st, req, resp, U_RESET, l);
    else if (post && !strcmp(cmd, "/change-password"))
        change(st, req, resp, U_CHANGE, l);
    else
        srv_json_fail(resp, 404, "not found, or method not allowed");
    base_buf_free(&login);
    return 1;
}
