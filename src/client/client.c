/*
 * client.c - the factum_client handle (include/factum_client.h): options,
 * connecting and closing, the last error, and the calls that are one
 * request and one answer: Delete and Tombstone, stream metadata (a read
 * of `$$<stream>` backwards and an append of a `$metadata` event to it),
 * ServerFeatures.GetSupportedMethods for the server's version, and
 * Monitoring.Stats; the table through which libfactum's remote decider
 * calls a client (common/remote.h). Appends are in append.c, reads in read.c, the
 * transport in conn.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "base/json.h"
#include "client/client_int.h"
#include "kurrentdb/monitoring.pb-c.h"
#include "kurrentdb/serverfeatures.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"

/* Why the last factum_client_connect of this thread failed. */
static _Thread_local char connect_err[1024];

void factum_client_options_init(factum_client_options *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = FACTUM_CLIENT_DEFAULT_TIMEOUT;
    o->connect_timeout_ms = 5000;
}

/* Copy an option over the connection string's value. */
static int override(char *dst, size_t cap, const char *v, const char *what)
{
    if (!v) return 0;
    size_t n = strlen(v);
    int ctl = 0;
    for (size_t i = 0; i < n; i++)
        ctl |= (unsigned char)v[i] < 0x20 || v[i] == 0x7f;
    if (n >= cap || ctl) {
        snprintf(connect_err, sizeof connect_err, "%s is too long or has a control character", what);
        return FACTUM_EBADURL;
    }
    memcpy(dst, v, n + 1);
    return 0;
}

/* The options that override the connection string, and the authorization
 * header made once from the credentials. */
static int apply_options(factum_client *c, const factum_client_options *o)
{
    client_url *u = &c->url;
    int rc = override(u->username, sizeof u->username, o->username, "the user name");
    if (!rc) rc = override(u->password, sizeof u->password, o->password, "the password");
    if (!rc) rc = override(u->ca_file, sizeof u->ca_file, o->tls_ca_file, "tls_ca_file");
    if (!rc) rc = override(u->user_cert_file, sizeof u->user_cert_file, o->user_cert_file, "user_cert_file");
    if (!rc) rc = override(u->user_key_file, sizeof u->user_key_file, o->user_key_file, "user_key_file");
    if (rc) return rc;
    if (o->username) {
        if (!o->username[0] || strchr(o->username, ':')) {
            snprintf(connect_err, sizeof connect_err, "the user name is empty or has a ':'");
            return FACTUM_EBADURL;
        }
        u->has_credentials = 1;
    }
    if (!u->user_cert_file[0] != !u->user_key_file[0]) {
        snprintf(connect_err, sizeof connect_err,
                 "a client certificate needs both its certificate and its key file");
        return FACTUM_EBADURL;
    }
    c->auth[0] = 0;
    if (u->has_credentials) {
        /* authorization: Basic base64(user:password) (RFC 7617). */
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char plain[sizeof u->username + sizeof u->password + 1];
        int pn = snprintf(plain, sizeof plain, "%s:%s", u->username, u->password);
        size_t j = 0;
        j += (size_t)snprintf(c->auth, sizeof c->auth, "Basic ");
        for (int i = 0; i < pn; i += 3) {
            uint32_t v = (uint32_t)(unsigned char)plain[i] << 16;
            if (i + 1 < pn) v |= (uint32_t)(unsigned char)plain[i + 1] << 8;
            if (i + 2 < pn) v |= (unsigned char)plain[i + 2];
            c->auth[j++] = b64[v >> 18 & 63];
            c->auth[j++] = b64[v >> 12 & 63];
            c->auth[j++] = i + 1 < pn ? b64[v >> 6 & 63] : '=';
            c->auth[j++] = i + 2 < pn ? b64[v & 63] : '=';
        }
        c->auth[j] = 0;
        OPENSSL_cleanse(plain, sizeof plain);
    }
    return 0;
}

/* The calls libfactum's remote decider makes (common/remote.h, RM-1). */
static const remote_ops client_remote_ops = {
    .abi = REMOTE_ABI,
    .size = sizeof(remote_ops),
    .read_stream = factum_client_read_stream,
    .batch_count = factum_client_batch_count,
    .batch_event = factum_client_batch_event,
    .batch_free = factum_client_batch_free,
    .append = factum_client_append,
    .get_stream_metadata = factum_client_get_stream_metadata,
    .set_stream_metadata = factum_client_set_stream_metadata,
};

int factum_client_connect(const char *url, const factum_client_options *opts, factum_client **out)
{
    if (!out) return FACTUM_EINVAL;
    *out = NULL;
    connect_err[0] = 0;
    factum_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(connect_err, sizeof connect_err, "out of memory");
        return -ENOMEM;
    }
    c->head.ops = &client_remote_ops;
    c->fd = -1;
    c->wakefd = -1;
    c->ready_tail = &c->ready;
    int rc = client_url_parse(url, &c->url, connect_err, sizeof connect_err);
    if (rc) {
        free(c);
        return rc;
    }
    factum_client_options o;
    factum_client_options_init(&o);
    if (opts) o = *opts;
    if (o.timeout_ms == FACTUM_CLIENT_DEFAULT_TIMEOUT)
        o.timeout_ms = c->url.default_deadline_ms >= 0 ? (uint32_t)c->url.default_deadline_ms : 10000;
    rc = apply_options(c, &o);
    if (rc) {
        free(c);
        return rc;
    }
    c->timeout_ms = o.timeout_ms;
    c->raw = o.raw;
    c->connect_timeout_ms = o.connect_timeout_ms;
    int64_t poll_us = c->url.poll_for_answer_us >= 0 ? c->url.poll_for_answer_us : CLIENT_POLL_FOR_ANSWER_US;
    spinwin_init(&c->poll_win, (uint32_t)poll_us * 1000u);
    if (client_pool_new(&c->pool)) {
        free(c);
        snprintf(connect_err, sizeof connect_err, "out of memory");
        return -ENOMEM;
    }
    /* Recursive: connecting runs a call (Gossip, +discover) under it. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    int mrc = pthread_mutex_init(&c->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (mrc) {
        client_pool_unref(c->pool);
        free(c);
        snprintf(connect_err, sizeof connect_err, "cannot create a mutex");
        return -ENOMEM;
    }
    client_cond_init(&c->poll_cv);
    client_cond_init(&c->drv_cv);
    c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wakefd < 0) {
        snprintf(connect_err, sizeof connect_err, "eventfd: %s", strerror(errno));
        factum_client_close(c);
        return -ENOMEM;
    }
    rc = client_connect_hosts(c);
    if (rc) {
        snprintf(connect_err, sizeof connect_err, "%s", client_errbuf());
        factum_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void factum_client_close(factum_client *c)
{
    if (!c) return;
    client_end_async(c);
    client_goodbye(c);
    client_disconnect(c);
    SSL_CTX_free(c->ssl_ctx);
    OPENSSL_cleanse(c->url.password, sizeof c->url.password);
    OPENSSL_cleanse(c->auth, sizeof c->auth);
    client_arena_trim(client_tl_arena());
    base_buf_free(&c->wbuf);
    base_buf_free(&c->pbuf);
    free(c->rbuf);
    client_pool_unref(c->pool);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->poll_cv);
    pthread_cond_destroy(&c->drv_cv);
    if (c->wakefd >= 0) close(c->wakefd);
    free(c);
}

const char *factum_client_tls(factum_client *c)
{
    if (!c) return "";
    static _Thread_local char text[96]; /* the calling thread's, as its last error */
    pthread_mutex_lock(&c->mu);
    text[0] = 0;
    if (c->ssl && c->fd >= 0) {
        const char *cipher = SSL_get_cipher_name(c->ssl);
        snprintf(text, sizeof text, "%s %s", SSL_get_version(c->ssl), cipher ? cipher : "");
    }
    pthread_mutex_unlock(&c->mu);
    return text;
}

const char *factum_client_last_error(const factum_client *c)
{
    return c ? client_errbuf() : connect_err;
}

/* ---- ServerFeatures, Monitoring ---------------------------------------------- */

int factum_client_server_version(factum_client *c, char *buf, size_t len)
{
    if (!c || !buf || !len) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    ProtobufCMessage *m;
    int rc = client_unary(c, NULL, "/event_store.client.server_features.ServerFeatures/GetSupportedMethods",
                          &e.base, &event_store__client__server_features__supported_methods__descriptor, &m);
    if (!rc) {
        const EventStore__Client__ServerFeatures__SupportedMethods *sm = (const void *)m;
        const char *v = sm->event_store_server_version ? sm->event_store_server_version : "";
        if (strlen(v) >= len) {
            client_seterr(c, "the version '%.64s' does not fit in %zu bytes", v, len);
            rc = -ERANGE;
        } else {
            memcpy(buf, v, strlen(v) + 1);
        }
    }
    if (rc == FACTUM_EUNSUPPORTED) client_seterr(c, "the server does not implement ServerFeatures");
    client_arena_trim(client_tl_arena());
    return rc;
}

typedef struct stats_ctx {
    factum_client *c;
    base_buf text;
    int got, oom;
} stats_ctx;

static int on_stats(void *arg, const uint8_t *msg, size_t len)
{
    stats_ctx *s = arg;
    client_arena_reset(client_tl_arena());
    EventStore__Client__Monitoring__StatsResp *r =
        event_store__client__monitoring__stats_resp__unpack(&client_tl_arena()->pa, len, msg);
    if (!r) {
        client_seterr(s->c, "the server's StatsResp does not decode");
        return FACTUM_EPROTOCOL;
    }
    for (size_t i = 0; i < r->n_stats; i++) {
        const char *k = r->stats[i]->key ? r->stats[i]->key : "",
                   *v = r->stats[i]->value ? r->stats[i]->value : "";
        if (base_buf_printf(&s->text, "%s %s\n", k, v)) {
            s->oom = 1;
            return -ENOMEM;
        }
    }
    s->got = 1;
    /* KurrentDB streams a new snapshot every refresh period: one is all we want. */
    return CLIENT_ENOUGH;
}

int factum_client_stats(factum_client *c, char **text_out)
{
    if (!c || !text_out) return FACTUM_EINVAL;
    *text_out = NULL;
    client_errbuf()[0] = 0;
    stats_ctx s = {c, {0}, 0, 0};
    EventStore__Client__Monitoring__StatsReq req = EVENT_STORE__CLIENT__MONITORING__STATS_REQ__INIT;
    req.use_metadata = 0;
    req.refresh_time_period_in_ms = 1000;
    client_call k;
    client_call_init(&k, "/event_store.client.monitoring.Monitoring/Stats", on_stats, &s);
    int rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    if (!rc && !s.got) {
        client_seterr(c, "the server ended Monitoring.Stats without statistics");
        rc = FACTUM_EPROTOCOL;
    }
    if (rc == -ENOMEM) client_seterr(c, "out of memory");
    if (!rc && base_buf_append(&s.text, "", 1)) rc = -ENOMEM;
    if (!rc)
        *text_out = (char *)s.text.data;
    else
        base_buf_free(&s.text);
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    return rc;
}

/* ---- Delete, Tombstone ------------------------------------------------------------ */

static int delete_common(factum_client *c, const char *stream, int64_t expected, factum_append_result *res,
                         int tombstone)
{
    if (!c) return FACTUM_EINVAL;
    factum_append_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->actual_version = FACTUM_NO_STREAM;
    client_errbuf()[0] = 0;
    int rc = 0;
    if (!stream || factum_check_stream_name(stream, strlen(stream))) {
        client_seterr(c, "invalid stream name");
        rc = FACTUM_EBADNAME;
    } else if (client_check_expected(expected)) {
        client_seterr(c, "invalid expected version %" PRId64, expected);
        rc = FACTUM_EINVAL;
    }
    if (!rc) {
        /* DeleteReq and TombstoneReq have the same fields and numbers, and
         * so have their answers; each is sent with its own descriptor. */
        EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
        EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
        sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
        sid.stream_name.len = strlen(stream);
        EventStore__Client__Streams__DeleteReq__Options dopt =
            EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__INIT;
        EventStore__Client__Streams__DeleteReq dreq = EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__INIT;
        EventStore__Client__Streams__TombstoneReq__Options topt =
            EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_REQ__OPTIONS__INIT;
        EventStore__Client__Streams__TombstoneReq treq = EVENT_STORE__CLIENT__STREAMS__TOMBSTONE_REQ__INIT;
        int which;
        uint64_t rev = 0;
        if (expected >= 0) {
            which = EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION;
            rev = (uint64_t)expected;
        } else if (expected == FACTUM_NO_STREAM) {
            which = EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_NO_STREAM;
        } else if (expected == FACTUM_STREAM_EXISTS) {
            which = EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_STREAM_EXISTS;
        } else {
            which = EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_ANY;
        }
        const ProtobufCMessage *req;
        if (tombstone) {
            topt.stream_identifier = &sid;
            topt.expected_stream_revision_case =
                (EventStore__Client__Streams__TombstoneReq__Options__ExpectedStreamRevisionCase)which;
            if (which == EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION)
                topt.revision = rev;
            else
                topt.any = &empty; /* the member of the union for the Empty cases */
            treq.options = &topt;
            req = &treq.base;
        } else {
            dopt.stream_identifier = &sid;
            dopt.expected_stream_revision_case =
                (EventStore__Client__Streams__DeleteReq__Options__ExpectedStreamRevisionCase)which;
            if (which == EVENT_STORE__CLIENT__STREAMS__DELETE_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION)
                dopt.revision = rev;
            else
                dopt.any = &empty;
            dreq.options = &dopt;
            req = &dreq.base;
        }
        const char *path = tombstone ? "/event_store.client.streams.Streams/Tombstone"
                                     : "/event_store.client.streams.Streams/Delete";
        const ProtobufCMessageDescriptor *desc =
            tombstone ? &event_store__client__streams__tombstone_resp__descriptor
                      : &event_store__client__streams__delete_resp__descriptor;
        ProtobufCMessage *m = NULL;
        client_call k; /* kept: a wrong expected version is in its trailers */
        rc = client_unary(c, &k, path, req, desc, &m);
        if (!rc) {
            /* Both answers: oneof position {Position position = 1; Empty no_position = 2}. */
            const EventStore__Client__Streams__DeleteResp *r = (const void *)m;
            if (r->position_option_case ==
                    EVENT_STORE__CLIENT__STREAMS__DELETE_RESP__POSITION_OPTION_POSITION &&
                r->position)
                res->first_position = res->last_position = r->position->commit_position;
            res->timestamp_ns = base_now_ns();
        } else if (rc == FACTUM_EWRONGVERSION) {
            char eb[32];
            res->actual_version = client_call_actual_version(&k);
            if (expected >= 0) snprintf(eb, sizeof eb, "%" PRId64, expected);
            client_seterr(c, "wrong expected version for stream '%.200s': expected %s, actual %s", stream,
                          expected >= 0                      ? eb
                          : expected == FACTUM_NO_STREAM     ? "no stream"
                          : expected == FACTUM_STREAM_EXISTS ? "stream exists"
                                                             : "any",
                          k.actual_version[0] ? k.actual_version : "no stream");
        } else if (rc == FACTUM_EDELETED) {
            client_seterr(c, "stream '%.200s' is deleted (tombstoned)", stream);
        } else if (rc == FACTUM_ENOTFOUND) {
            client_seterr(c, "stream '%.200s' not found", stream);
        }
        client_call_deinit(&k);
    }
    client_arena_trim(client_tl_arena());
    return rc;
}

int factum_client_delete_stream(factum_client *c, const char *stream, int64_t expected,
                                factum_append_result *res)
{
    return delete_common(c, stream, expected, res, 0);
}

int factum_client_tombstone_stream(factum_client *c, const char *stream, int64_t expected,
                                   factum_append_result *res)
{
    return delete_common(c, stream, expected, res, 1);
}

/* ---- stream metadata ------------------------------------------------------------------ */

static int meta_stream(factum_client *c, const char *stream, char **out)
{
    if (!stream || factum_check_stream_name(stream, strlen(stream)) ||
        strlen(stream) + 2 > FACTUM_MAX_STREAM_LEN) {
        client_seterr(c, "invalid stream name (its metadata stream '$$...' must fit in %d bytes)",
                      FACTUM_MAX_STREAM_LEN);
        return FACTUM_EBADNAME;
    }
    size_t n = strlen(stream) + 3;
    if (!(*out = malloc(n))) return -ENOMEM;
    snprintf(*out, n, "$$%s", stream);
    return 0;
}

int factum_client_get_stream_metadata(factum_client *c, const char *stream, char **json_out,
                                      int64_t *version_out)
{
    if (!c || !json_out) return FACTUM_EINVAL;
    *json_out = NULL;
    if (version_out) *version_out = -1;
    client_errbuf()[0] = 0;
    char *ms = NULL;
    factum_client_batch *b = NULL;
    int rc = meta_stream(c, stream, &ms);
    if (!rc) rc = client_read_stream_locked(c, ms, FACTUM_END, FACTUM_BACKWARD, 1, &b);
    const char *doc = "{}";
    size_t len = 2;
    int64_t version = -1;
    if (rc == FACTUM_ENOTFOUND) {
        client_errbuf()[0] = 0;
        rc = 0;
    } else if (!rc && factum_client_batch_count(b)) {
        const factum_event *ev = factum_client_batch_event(b, 0);
        doc = (const char *)ev->data;
        len = ev->data_len;
        version = (int64_t)ev->version;
    }
    if (!rc) {
        char *j = malloc(len + 1);
        if (!j) {
            rc = -ENOMEM;
        } else {
            memcpy(j, doc, len);
            j[len] = 0;
            *json_out = j;
            if (version_out) *version_out = version;
        }
    }
    factum_client_batch_free(b);
    free(ms);
    return rc;
}

int factum_client_set_stream_metadata(factum_client *c, const char *stream, int64_t expected,
                                      const char *json, factum_append_result *res)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    char *ms = NULL;
    int rc = meta_stream(c, stream, &ms);
    if (!rc) {
        /* The document KurrentDB's clients and the store accept: an object
         * whose $-keys have their types. */
        json_value *v = NULL;
        factum_stream_metadata m;
        size_t len = json ? strlen(json) : 0;
        if (!json || json_parse(json, len, &v) || v->type != JSON_OBJECT ||
            factum_stream_metadata_parse(json, len, &m)) {
            client_seterr(c, "the metadata is not a JSON object with $-keys of the right types");
            rc = FACTUM_EBADJSON;
        }
        json_free(v);
    }
    if (!rc) {
        factum_event_data e;
        memset(&e, 0, sizeof e);
        e.type = "$metadata";
        e.flags = FACTUM_EVENT_JSON;
        e.data = json;
        e.data_len = strlen(json);
        rc = client_append_locked(c, ms, expected, &e, 1, res);
    }
    free(ms);
    return rc;
}
