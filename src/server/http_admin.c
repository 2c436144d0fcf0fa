/*
 * http_admin.c - factumd's online backup over HTTP (docs/operations.md,
 * "Backup and restore"), for operators and admins:
 *
 *   POST /admin/backup?destination=NAME  start one into NAME under
 *        --backup-dir (a relative path without `..`, or an absolute path
 *        inside it); 202 {"backupId","destination"}, 409 while one runs, 400
 *        for a missing or outside destination, 403 without --backup-dir
 *   GET  /admin/backup                    the one running or the last one:
 *        {"backupId","destination","state":"running"|"completed"|"failed",
 *         "doneBytes","totalBytes","position","segments","linked","copied",
 *         "kept","bytesCopied","verified","error","tookMs"}
 *
 * The backup (factum_backup) runs on a thread of its own, never on the
 * event loop; the loop only reads its state under a mutex. Shutting down
 * stops it between two segments (srv_backup_stop) before the store closes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/principal.h"
#include "base/json.h"
#include "server/log.h"
#include "server/server.h"

typedef struct srv_backup {
    pthread_mutex_t mu;
    pthread_t thread;
    int started; /* a thread was started (and not joined) */
    int running; /* it has not finished */
    int stop;    /* shutting down: stop at the next segment */
    char id[37];
    char *dest;
    uint64_t done, total, t0;
    int rc;
    factum_backup_report rep;
    factum_store *store;
} srv_backup;

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    srv_backup *b = ctx;
    pthread_mutex_lock(&b->mu);
    b->done = done;
    b->total = total;
    int stop = b->stop;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

static void *run(void *arg)
{
    srv_backup *b = arg;
    factum_backup_options o = {0, on_progress, b, NULL, NULL};
    factum_backup_report rep;
    int rc = factum_backup(b->store, b->dest, &o, &rep);
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->rep = rep;
    b->running = 0;
    pthread_mutex_unlock(&b->mu);
    if (rc == -ECANCELED)
        slog_write(SLOG_WARN,
                   "backup %s into %s stopped: factumd is shutting down (the directory holds no complete "
                   "backup)",
                   b->id, b->dest);
    else if (rc)
        slog_write(SLOG_ERROR, "backup %s into %s failed: %s", b->id, b->dest, factum_strerror(rc));
    else
        slog_write(SLOG_INFO, "backup %s into %s completed: positions 1..%" PRIu64 ", %" PRIu64 " segments",
                   b->id, b->dest, rep.position, rep.segments);
    return NULL;
}

/* The directory a destination names inside root: root/rel for a relative
 * one, or an absolute one under root; no empty, `.` or `..` component, at
 * most 1024 bytes. malloc'd, or NULL. */
static char *backup_path(const char *root, const char *dest)
{
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    const char *rel = dest;
    if (dest[0] == '/') {
        if (strncmp(dest, root, rl) || dest[rl] != '/') return NULL;
        rel = dest + rl + 1;
    }
    size_t n = strlen(rel);
    if (!n || n > 1024) return NULL;
    for (const char *c = rel; *c;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (!len || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) return NULL;
        c += len;
        if (*c) c++;
        if (e && !*c) break; /* a trailing slash */
    }
    char *out = malloc(rl + 1 + n + 1);
    if (!out) return NULL;
    memcpy(out, root, rl);
    out[rl] = '/';
    memcpy(out + rl + 1, rel, n + 1);
    return out;
}

/* Make the directories above path (the root included) if missing. */
static void make_parents(char *path)
{
    for (char *c = path + 1; *c; c++) {
        if (*c != '/') continue;
        *c = 0;
        mkdir(path, 0755); /* EEXIST, or the backup says why it cannot */
        *c = '/';
    }
}

static void answer_error(net_http_resp *resp, int status, const char *msg)
{
    resp->status = status;
    resp->content_type = "application/json";
    base_buf_append(&resp->body, "{\"error\":", 9);
    json_write_string(&resp->body, msg, strlen(msg));
    base_buf_append(&resp->body, "}\n", 2);
}

static void status(srv_backup *b, net_http_resp *resp)
{
    pthread_mutex_lock(&b->mu);
    base_buf *o = &resp->body;
    base_buf_printf(o, "{\"backupId\":\"%s\",\"destination\":", b->id);
    json_write_string(o, b->dest, strlen(b->dest));
    const char *state = b->running ? "running" : b->rc ? "failed" : "completed";
    base_buf_printf(o, ",\"state\":\"%s\",\"doneBytes\":%" PRIu64 ",\"totalBytes\":%" PRIu64, state, b->done,
                    b->total);
    if (!b->running && !b->rc) {
        const factum_backup_report *r = &b->rep;
        base_buf_printf(o,
                        ",\"position\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"linked\":%" PRIu64
                        ",\"copied\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"bytesCopied\":%" PRIu64
                        ",\"verified\":%s",
                        r->position, r->segments, r->linked, r->copied, r->kept, r->bytes_copied,
                        r->verified ? "true" : "false");
        char head[FACTUM_CHAIN_JSON_MAX];
        factum_chain_head_json(&r->head, head, sizeof head);
        base_buf_printf(o, ",\"chainHead\":%s", head);
    }
    if (!b->running && b->rc) {
        const char *e = factum_strerror(b->rc);
        base_buf_append(o, ",\"error\":", 9);
        json_write_string(o, e, strlen(e));
    }
    base_buf_printf(o, ",\"tookMs\":%" PRIu64 "}\n", (base_mono_ns() - b->t0) / 1000000);
    pthread_mutex_unlock(&b->mu);
    resp->status = 200;
    resp->content_type = "application/json";
}

void srv_http_backup(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    srv_backup *b = st->backup;
    if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")) {
        if (!b)
            answer_error(resp, 404, "no backup was started since factumd started");
        else
            status(b, resp);
        return;
    }
    if (strcmp(req->method, "POST")) {
        answer_error(resp, 405, "method not allowed: GET or POST");
        return;
    }
    if (!st->cfg.backup_dir[0]) {
        answer_error(resp, 403, "backups over HTTP are off: start factumd with --backup-dir DIR");
        return;
    }
    base_buf name = {0};
    int q = srv_qs_get(req->query, "destination", &name);
    char *path = q > 0 ? backup_path(st->cfg.backup_dir, (const char *)name.data) : NULL;
    base_buf_free(&name);
    if (!path) {
        answer_error(
            resp, 400,
            "give ?destination=NAME: a directory inside --backup-dir (relative, or absolute under it; "
            "no '..')");
        return;
    }
    if (b) {
        pthread_mutex_lock(&b->mu);
        int busy = b->running;
        pthread_mutex_unlock(&b->mu);
        if (busy) {
            free(path);
            answer_error(resp, 409, "a backup is running (GET /admin/backup)");
            return;
        }
        pthread_join(b->thread, NULL);
        free(b->dest);
        pthread_mutex_destroy(&b->mu);
        free(b);
        st->backup = b = NULL;
    }
    if (!(b = calloc(1, sizeof *b))) {
        free(path);
        answer_error(resp, 503, "out of memory");
        return;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->dest = path;
    make_parents(path);
    b->store = st->store;
    b->running = 1;
    b->t0 = base_mono_ns();
    uint8_t u[16];
    factum_uuid_v4(u);
    factum_uuid_format(u, b->id);
    if (pthread_create(&b->thread, NULL, run, b)) {
        free(b->dest);
        pthread_mutex_destroy(&b->mu);
        free(b);
        answer_error(resp, 503, "cannot start a thread");
        return;
    }
    b->started = 1;
    st->backup = b;
    slog_write(SLOG_INFO, "backup %s into %s started", b->id, b->dest);
    resp->status = 202;
    resp->content_type = "application/json";
    base_buf_printf(&resp->body, "{\"backupId\":\"%s\",\"destination\":", b->id);
    json_write_string(&resp->body, b->dest, strlen(b->dest));
    base_buf_append(&resp->body, "}\n", 2);
}

void srv_backup_stop(srv_state *st)
{
    srv_backup *b = st->backup;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_mutex_unlock(&b->mu);
    if (b->started) pthread_join(b->thread, NULL);
    free(b->dest);
    pthread_mutex_destroy(&b->mu);
    free(b);
    st->backup = NULL;
}

/* ---- scavenge ---------------------------------------------------------
 *
 *   POST   /admin/scavenge?threshold=PCT&throttle=BYTES_PER_SEC&seal=true
 *          start one (factum_scavenge_start: on the store's own thread);
 *          200 {"scavengeId"}, 409 {"scavengeId","error"} while one runs
 *   GET    /admin/scavenge/<id|current|last>   its status (the JSON of
 *          factum_scavenge_status_json), 404 if not known since the start;
 *          GET /admin/scavenge the last one's, or {"state":"none"}
 *   DELETE /admin/scavenge/<id|current>        stop it after its segment:
 *          200 {"scavengeId","result":"Stopped"}, 404 if that id is not
 *          running
 */

static int qs_bool(const char *qs, const char *key, int *out)
{
    base_buf v = {0};
    int q = srv_qs_get(qs, key, &v);
    int rc = 0;
    if (q > 0) {
        const char *t = (const char *)v.data;
        rc = 1;
        if (!strcmp(t, "true") || !strcmp(t, "1") || !*t)
            *out = 1;
        else if (!strcmp(t, "false") || !strcmp(t, "0"))
            *out = 0;
        else
            rc = -1;
    } else if (q < 0) {
        rc = -1;
    }
    base_buf_free(&v);
    return rc;
}

void srv_http_scavenge(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    const char *rest = req->path + strlen("/admin/scavenge");
    const char *id = *rest == '/' ? rest + 1 : NULL;
    if (id && (!*id || strchr(id, '/') || strlen(id) > 36)) {
        answer_error(resp, 404, "no such scavenge");
        return;
    }
    char json[FACTUM_SCAVENGE_JSON_MAX];
    factum_scavenge_status ss;
    if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")) {
        if (factum_scavenge_get_status(st->store, id ? id : "last", &ss)) {
            if (!id) { /* GET /admin/scavenge: the last one, or that there is none */
                resp->status = 200;
                resp->content_type = "application/json";
                base_buf_append(&resp->body, "{\"state\":\"none\"}\n", 17);
                return;
            }
            answer_error(resp, 404, "no such scavenge since factumd started (earlier ones: the $scavenges stream)");
            return;
        }
        factum_scavenge_status_json(&ss, json, sizeof json);
        resp->status = 200;
        resp->content_type = "application/json";
        base_buf_printf(&resp->body, "%s\n", json);
        return;
    }
    if (!strcmp(req->method, "DELETE")) {
        if (!id || factum_scavenge_stop(st->store, id)) {
            answer_error(resp, 404, "no such scavenge is running");
            return;
        }
        factum_scavenge_get_status(st->store, id, &ss);
        rpc_audit_as(&st->rpc, req->auth, NULL, "scavenge-stopped", ss.id, NULL);
        resp->status = 200;
        resp->content_type = "application/json";
        base_buf_printf(&resp->body, "{\"scavengeId\":\"%s\",\"result\":\"Stopped\"}\n", ss.id);
        return;
    }
    if (strcmp(req->method, "POST") || id) {
        answer_error(resp, 405, "method not allowed: POST /admin/scavenge, GET or DELETE /admin/scavenge/<id>");
        return;
    }
    factum_scavenge_options o = {0};
    uint64_t threshold = 0, throttle = 0;
    int a = srv_qs_u64(req->query, "threshold", 100, &threshold),
        b = srv_qs_u64(req->query, "throttle", UINT64_MAX, &throttle),
        c = qs_bool(req->query, "seal", &o.seal);
    if (a < 0 || b < 0 || c < 0 || threshold > 100) {
        answer_error(resp, 400,
                     "bad parameters: threshold is a percentage (0..100), throttle bytes per second, seal true or "
                     "false");
        return;
    }
    o.threshold_percent = (unsigned)threshold;
    o.throttle_bytes_per_sec = throttle;
    char sid[37];
    int rc = factum_scavenge_start(st->store, &o, sid);
    resp->content_type = "application/json";
    if (rc == FACTUM_EEXISTS) {
        resp->status = 409;
        base_buf_printf(&resp->body, "{\"scavengeId\":\"%s\",\"error\":\"a scavenge is running\"}\n", sid);
        return;
    }
    if (rc) {
        answer_error(resp, 503, factum_strerror(rc));
        return;
    }
    rpc_audit_as(&st->rpc, req->auth, NULL, "scavenge-started", sid, NULL);
    slog_write(SLOG_INFO, "scavenge %s started (seal %s, threshold %u%%, throttle %" PRIu64 " B/s)", sid,
               o.seal ? "yes" : "no", o.threshold_percent, o.throttle_bytes_per_sec);
    resp->status = 200;
    base_buf_printf(&resp->body, "{\"scavengeId\":\"%s\"}\n", sid);
}

/* ---- archive ----------------------------------------------------------
 *
 *   GET  /admin/archive   the archive tier's status (the JSON of
 *        factum_archive_status_json)
 *   POST /admin/archive   ask the archiver for a pass now (it runs on its
 *        own thread): 202 with the status as it is; 409 without an
 *        --archive-dir
 */
void srv_http_archive(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    char json[FACTUM_ARCHIVE_JSON_MAX];
    factum_archive_status as;
    int post = !strcmp(req->method, "POST");
    if (!post && strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        answer_error(resp, 405, "method not allowed: GET or POST /admin/archive");
        return;
    }
    if (post) {
        if (factum_archive_kick(st->store)) {
            answer_error(resp, 409, "factumd runs without an archive (start it with --archive-dir)");
            return;
        }
        rpc_audit_as(&st->rpc, req->auth, NULL, "archive-requested", "/admin/archive", NULL);
    }
    factum_archive_get_status(st->store, &as);
    factum_archive_status_json(&as, json, sizeof json);
    resp->status = post ? 202 : 200;
    resp->content_type = "application/json";
    base_buf_printf(&resp->body, "%s\n", json);
}

/* ---- crypto-shredding --------------------------------------------------
 *
 *   POST /admin/shred   body {"subject": "..."}: the subject's key leaves
 *        the key file, for good (factum_shred): 200 {"subject","keyId"};
 *        404 no key for it (nothing sealed, or shredded already); 409
 *        without --master-key-file; 400 a bad body. $admins only, audited.
 *        The shred (an fdatasync of the key file, an append to $shreds)
 *        runs on a thread of its own; the answer comes back on the loop.
 */
typedef struct shred_job {
    srv_state *st;
    net_http_later *later;
    const auth_principal *p;
    char subject[256];
    size_t len;
    uint32_t id;
    int rc;
} shred_job;

static void shred_answer(void *arg)
{
    shred_job *j = arg;
    net_http_resp r = {0};
    if (j->rc == FACTUM_EKEY) {
        answer_error(&r, 409, "factumd runs without a master key (start it with --master-key-file)");
    } else if (j->rc == FACTUM_ENOTFOUND) {
        answer_error(&r, 404, "no key for that subject: nothing of it was sealed, or it was shredded already");
    } else if (j->rc) {
        answer_error(&r, 500, factum_strerror(j->rc));
    } else {
        char kid[16];
        snprintf(kid, sizeof kid, "%u", j->id);
        rpc_audit_as(&j->st->rpc, j->p, NULL, "subject-shredded", "/admin/shred", kid);
        slog_write(SLOG_INFO, "shredded a data subject (key %u)", j->id);
        r.status = 200;
        r.content_type = "application/json";
        base_buf_append(&r.body, "{\"subject\":", 11);
        json_write_string(&r.body, j->subject, j->len);
        base_buf_printf(&r.body, ",\"keyId\":%u}\n", j->id);
    }
    net_http_answer(j->later, &r);
    base_buf_free(&r.body);
    if (j->p) auth_principal_unref(j->p);
    free(j);
}

static void *shred_run(void *arg)
{
    shred_job *j = arg;
    srv_state *st = j->st;
    j->rc = factum_shred(st->store, j->subject, &j->id);
    while (net_post(st->net, shred_answer, j))
        usleep(1000); /* out of memory: the answer must still be given, once */
    atomic_fetch_sub(&st->shreds_running, 1);
    return NULL;
}

void srv_http_shred(srv_state *st, const net_http_req *req, net_http_resp *resp)
{
    if (strcmp(req->method, "POST")) {
        answer_error(resp, 405, "method not allowed: POST /admin/shred");
        return;
    }
    json_value *doc = NULL;
    const json_value *sub = NULL;
    if (req->body_len <= 4096 && !json_parse((const char *)req->body, req->body_len, &doc) &&
        doc->type == JSON_OBJECT)
        sub = json_get(doc, "subject");
    if (!sub || sub->type != JSON_STRING || !sub->len || sub->len > 255 || memchr(sub->str, 0, sub->len)) {
        json_free(doc);
        answer_error(resp, 400, "the body must be {\"subject\": \"...\"} (1 to 255 bytes, no NUL)");
        return;
    }
    shred_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_free(doc);
        answer_error(resp, 503, "out of memory");
        return;
    }
    j->st = st;
    memcpy(j->subject, sub->str, sub->len);
    j->len = sub->len;
    json_free(doc);
    if (!(j->later = net_http_defer(req))) {
        free(j);
        answer_error(resp, 503, "out of memory");
        return;
    }
    if (req->auth) j->p = auth_principal_ref(req->auth);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&st->shreds_running, 1);
    if (pthread_create(&t, &a, shred_run, j)) {
        atomic_fetch_sub(&st->shreds_running, 1);
        j->rc = -EAGAIN;
        shred_answer(j);
    }
    pthread_attr_destroy(&a);
}
