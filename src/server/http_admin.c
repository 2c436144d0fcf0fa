/*
 * http_admin.c - factumd's online backup over HTTP (docs/operations.md,
 * "Backup and restore"), for operators and admins:
 *
 *   POST /admin/backup?destination=DIR   start one (a directory on the
 *        server's host); 202 {"backupId","destination"}, 409 while one runs,
 *        400 without a destination
 *   GET  /admin/backup                    the one running or the last one:
 *        {"backupId","destination","state":"running"|"completed"|"failed",
 *         "doneBytes","totalBytes","position","segments","linked","copied",
 *         "kept","bytesCopied","verified","error","tookMs"}
 *
 * The backup (factum_backup) runs on a thread of its own, never on the
 * event loop; the loop only reads its state under a mutex. Shutting down
 * stops it between two segments (srv_backup_stop) before the store closes.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
    factum_backup_options o = {0, on_progress, b};
    factum_backup_report rep;
    int rc = factum_backup(b->store, b->dest, &o, &rep);
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->rep = rep;
    b->running = 0;
    pthread_mutex_unlock(&b->mu);
    if (rc)
        slog_write(SLOG_ERROR, "backup %s into %s failed: %s", b->id, b->dest, factum_strerror(rc));
    else
        slog_write(SLOG_INFO, "backup %s into %s completed: positions 1..%" PRIu64 ", %" PRIu64 " segments",
                   b->id, b->dest, rep.position, rep.segments);
    return NULL;
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
    base_buf dest = {0};
    int q = srv_qs_get(req->query, "destination", &dest);
    if (q <= 0 || dest.len <= 1 || ((char *)dest.data)[0] != '/') {
        base_buf_free(&dest);
        answer_error(resp, 400, "give ?destination=DIR, an absolute directory on the server's host");
        return;
    }
    if (b) {
        pthread_mutex_lock(&b->mu);
        int busy = b->running;
        pthread_mutex_unlock(&b->mu);
        if (busy) {
            base_buf_free(&dest);
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
        base_buf_free(&dest);
        answer_error(resp, 503, "out of memory");
        return;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->dest = (char *)dest.data; /* NUL-terminated by srv_qs_get */
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
