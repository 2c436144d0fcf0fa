/*
 * audit.c - the audit trail: every administrative action (user changes,
 * ACL and `$settings` changes, deletes, shutdown, subsystem restarts) is
 * recorded as one JSON event in the `$audit` stream, with who did it and
 * from where. Written asynchronously through the store's queue like the
 * consumer groups' own writes (RPC-5: it waits in line when the queue is
 * full, never blocking the loop); a record that cannot be written is
 * logged, never silently dropped.
 *
 * Record (event type = the action, e.g. `user-created`):
 *   {"action": "...", "user": "<login>" | "$system" | "$anonymous",
 *    "source": "<ip>:<port>" | "", "target": "...", "detail": {...}}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/principal.h"
#include "base/json.h"
#include "rpc/persistent_int.h"
#include "rpc/rpc.h"

static void audit_done(rpc_ctx *ctx, uint64_t gid, void *arg, int rc, uint64_t version)
{
    (void)gid;
    (void)version;
    char *what = arg;
    if (rc && ctx->log_fn) {
        char msg[512];
        snprintf(msg, sizeof msg, "audit record not written (%s): %s", factum_strerror(rc), what);
        ctx->log_fn(ctx->log_ctx, 1, msg);
    }
    free(what);
}

void rpc_audit(rpc_ctx *ctx, net_call *c, const char *action, const char *target, const char *detail_json)
{
    char source[80] = "";
    if (c) net_call_peer(c, source, sizeof source);
    rpc_audit_as(ctx, c ? rpc_principal(c) : NULL, source, action, target, detail_json);
}

void rpc_audit_as(rpc_ctx *ctx, const auth_principal *p, const char *source, const char *action, const char *target,
                  const char *detail_json)
{
    if (!p) p = auth_principal_system();
    if (!source) source = "";
    const char *user = (p->flags & AUTH_P_SYSTEM)      ? "$system"
                       : (p->flags & AUTH_P_ANONYMOUS) ? "$anonymous"
                                                       : p->login;
    base_buf b = {0};
    int bad = base_buf_append(&b, "{\"action\":", 10) || json_write_string(&b, action, strlen(action)) ||
              base_buf_append(&b, ",\"user\":", 8) || json_write_string(&b, user, strlen(user)) ||
              base_buf_append(&b, ",\"source\":", 10) || json_write_string(&b, source, strlen(source)) ||
              base_buf_append(&b, ",\"target\":", 10) ||
              json_write_string(&b, target ? target : "", target ? strlen(target) : 0);
    if (!bad && detail_json && json_validate(detail_json, strlen(detail_json)) == 0)
        bad = base_buf_append(&b, ",\"detail\":", 10) || base_buf_append(&b, detail_json, strlen(detail_json));
    bad = bad || base_buf_append(&b, "}", 1);
    char *what = NULL;
    if (!bad) {
        what = malloc(b.len + 1);
        if (what) {
            memcpy(what, b.data, b.len);
            what[b.len] = 0;
        }
    }
    int rc = bad || !what ? -ENOMEM
                          : rpc_ps_append(ctx, 0, RPC_AUDIT_STREAM, action, b.data, b.len, 1, NULL, audit_done, what);
    if (rc) {
        if (ctx->log_fn) {
            char msg[512];
            snprintf(msg, sizeof msg, "audit record not written (%s): %s by %s on %s", factum_strerror(rc), action,
                     user, target ? target : "");
            ctx->log_fn(ctx->log_ctx, 1, msg);
        }
        free(what);
    }
    base_buf_free(&b);
}

/* ---- ACL, `$settings` and stream-policy changes (authz.c decides, this records) --- */

/* The document a write sets (its last event's data), as the record's
 * detail: NUL-terminated copy, or NULL when there is none or it is larger
 * than 16 KiB (rpc_audit_as leaves out a detail that is not JSON). */
static char *written_document(const factum_event_data *evs, size_t n)
{
    if (!n || !evs[n - 1].data || !evs[n - 1].data_len || evs[n - 1].data_len > 16384) return NULL;
    char *d = malloc(evs[n - 1].data_len + 1);
    if (!d) return NULL;
    memcpy(d, evs[n - 1].data, evs[n - 1].data_len);
    d[evs[n - 1].data_len] = 0;
    return d;
}

void rpc_audit_stream_write(rpc_ctx *ctx, net_call *c, const char *stream, const factum_event_data *evs, size_t n)
{
    const char *action = NULL, *target = stream;
    if (strcmp(stream, AUTH_SETTINGS_STREAM) == 0) {
        action = "settings-changed";
    } else if (strcmp(stream, AUTH_POLICY_SETTINGS_STREAM) == 0 || strcmp(stream, AUTH_POLICIES_STREAM) == 0) {
        action = "stream-policy-changed";
    } else if (auth_is_metastream(stream)) {
        /* Every metadata write replaces the whole document: one that carries
         * `$acl` sets or changes the ACL; one without it may remove one, so
         * it is recorded too (as a metadata change). */
        int acl = 0;
        for (size_t i = 0; i < n && !acl; i++) {
            const char *d = evs[i].data;
            acl = d && evs[i].data_len >= 6 && memmem(d, evs[i].data_len, "\"$acl\"", 6);
        }
        action = acl ? "acl-changed" : "metadata-changed";
        target = stream + 2;
    } else {
        return;
    }
    char *doc = written_document(evs, n);
    rpc_audit(ctx, c, action, target, doc);
    free(doc);
}
