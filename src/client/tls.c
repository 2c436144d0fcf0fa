/*
 * tls.c - the C client's TLS: contexts built from the connection string
 * (tlsCAFile or the system's roots, tlsVerifyCert, a client certificate
 * for mutual TLS), shared by the clients of a process (CL-6), and the
 * handshake on a connected socket, with the reasons a connection is
 * refused. The records themselves move in conn.c (CL-5).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "client/client_int.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "kurrentdb/gossip.pb-c.h"
#include "kurrentdb/shared.pb-c.h"

static int file_readable(const char *path, char *why, size_t wlen, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, wlen, "cannot read %s '%.300s': %s", what, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* Contexts are shared by the clients of a process that ask for the same
 * files (CL-6): making one costs ~0.5 ms, and loading the system's roots
 * ~40 ms, which a program opening many clients (or reconnecting) should
 * not pay each time. An entry is keyed by the settings and by each file's
 * identity and modification time, so a renewed CA or client certificate
 * is loaded afresh. At most CTX_CACHE entries; the oldest goes. */
#define CTX_CACHE 8
typedef struct ctx_entry {
    SSL_CTX *ctx;
    char key[3 * 1100 + 200];
    uint64_t used;
} ctx_entry;
static pthread_mutex_t ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static ctx_entry ctx_cache[CTX_CACHE];
static uint64_t ctx_clock;

static void file_id(char *buf, size_t n, const char *path)
{
    struct stat st;
    if (!path[0] || stat(path, &st))
        snprintf(buf, n, "%s|-", path);
    else
        snprintf(buf, n, "%s|%ju.%ju.%jd.%ld.%jd", path, (uintmax_t)st.st_dev, (uintmax_t)st.st_ino,
                 (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (intmax_t)st.st_size);
}

static void ctx_key(const client_url *u, char *key, size_t n)
{
    char a[1100], b[1100], d[1100];
    file_id(a, sizeof a, u->tls_verify_cert ? u->ca_file : "");
    file_id(b, sizeof b, u->user_cert_file);
    file_id(d, sizeof d, u->user_key_file);
    snprintf(key, n, "%d\n%s\n%s\n%s", u->tls_verify_cert, a, b, d);
}

static SSL_CTX *ctx_lookup(const char *key)
{
    SSL_CTX *ctx = NULL;
    pthread_mutex_lock(&ctx_mu);
    for (int i = 0; i < CTX_CACHE; i++)
        if (ctx_cache[i].ctx && !strcmp(ctx_cache[i].key, key) && SSL_CTX_up_ref(ctx_cache[i].ctx)) {
            ctx = ctx_cache[i].ctx;
            ctx_cache[i].used = ++ctx_clock;
            break;
        }
    pthread_mutex_unlock(&ctx_mu);
    return ctx;
}

static void ctx_store(const char *key, SSL_CTX *ctx)
{
    if (strlen(key) >= sizeof ctx_cache[0].key || !SSL_CTX_up_ref(ctx)) return;
    pthread_mutex_lock(&ctx_mu);
    int victim = 0;
    for (int i = 0; i < CTX_CACHE; i++) {
        if (ctx_cache[i].ctx && !strcmp(ctx_cache[i].key, key)) { /* raced: keep the first */
            victim = -1;
            break;
        }
        if (!ctx_cache[i].ctx || ctx_cache[i].used < ctx_cache[victim].used) victim = i;
        if (!ctx_cache[i].ctx) break;
    }
    SSL_CTX *old = NULL;
    if (victim >= 0) {
        old = ctx_cache[victim].ctx;
        ctx_cache[victim].ctx = ctx;
        snprintf(ctx_cache[victim].key, sizeof ctx_cache[victim].key, "%s", key);
        ctx_cache[victim].used = ++ctx_clock;
    }
    pthread_mutex_unlock(&ctx_mu);
    SSL_CTX_free(victim >= 0 ? old : ctx);
}

/* The context every connection of c uses: TLS 1.2+, modern ciphers, ALPN
 * h2, the CA (or the system's roots), the client certificate. 0, or
 * FACTUM_ETLS / -ENOMEM with client_errbuf() set. */
static int tls_context_new(factum_client *c);

int client_tls_context(factum_client *c)
{
    char key[sizeof ctx_cache[0].key];
    ctx_key(&c->url, key, sizeof key);
    if ((c->ssl_ctx = ctx_lookup(key)) != NULL) return 0;
    int rc = tls_context_new(c);
    if (!rc) ctx_store(key, c->ssl_ctx);
    return rc;
}

static int tls_context_new(factum_client *c)
{
    char why[700], reason[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        client_seterr(c, "TLS: %s", client_tls_reason(reason, sizeof reason));
        return -ENOMEM;
    }
    static const unsigned char alpn[] = {2, 'h', '2'};
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20") ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn) != 0) {
        client_seterr(c, "TLS: %s", client_tls_reason(reason, sizeof reason));
        SSL_CTX_free(ctx);
        return -ENOMEM;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    const client_url *u = &c->url;
    if (u->tls_verify_cert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (u->ca_file[0]) {
            if (file_readable(u->ca_file, why, sizeof why, "tlsCAFile")) goto fail;
            if (SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL) != 1) {
                snprintf(why, sizeof why, "tlsCAFile '%.300s' holds no PEM certificate (%s)", u->ca_file,
                         client_tls_reason(reason, sizeof reason));
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(why, sizeof why, "cannot load the system's CA certificates (%s); give tlsCAFile",
                     client_tls_reason(reason, sizeof reason));
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (u->user_cert_file[0]) {
        if (file_readable(u->user_cert_file, why, sizeof why, "userCertFile") ||
            file_readable(u->user_key_file, why, sizeof why, "userKeyFile"))
            goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx, u->user_cert_file) != 1) {
            snprintf(why, sizeof why, "userCertFile '%.300s' holds no PEM certificate (%s)", u->user_cert_file,
                     client_tls_reason(reason, sizeof reason));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, u->user_key_file, SSL_FILETYPE_PEM) != 1) {
            int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
            client_tls_reason(reason, sizeof reason);
            if (mismatch)
                snprintf(why, sizeof why, "userKeyFile '%.300s' is not the key of userCertFile '%.300s'",
                         u->user_key_file, u->user_cert_file);
            else
                snprintf(why, sizeof why, "userKeyFile '%.300s' holds no unencrypted PEM private key (%s)",
                         u->user_key_file, reason);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            snprintf(why, sizeof why, "userKeyFile '%.300s' is not the key of userCertFile '%.300s'",
                     u->user_key_file, u->user_cert_file);
            goto fail;
        }
    }
    c->ssl_ctx = ctx;
    return 0;
fail:
    client_seterr(c, "%s", why);
    SSL_CTX_free(ctx);
    return FACTUM_ETLS;
}

/* Why a handshake failed, in words a user can act on. */
static void handshake_error(factum_client *c, const client_host *h, int ssl_err, char *why, size_t wlen)
{
    char reason[200];
    long vr = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    client_tls_reason(reason, sizeof reason);
    if (vr != X509_V_OK && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        const char *what = X509_verify_cert_error_string(vr);
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(why, wlen, "certificate verify failed: %s (the server's certificate does not name '%.200s')",
                     what, h->name);
        else if (vr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || vr == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                 vr == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || vr == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
            snprintf(why, wlen, "certificate verify failed: %s (%s)", what,
                     c->url.ca_file[0] ? "the server's certificate is not signed by the CA of tlsCAFile"
                                       : "give the server's CA with tlsCAFile");
        else
            snprintf(why, wlen, "certificate verify failed: %s", what);
    } else if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG ||
               ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        snprintf(why, wlen, "the server does not speak TLS (%s): for a server started with --insecure, "
                            "add tls=false", reason);
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN || strstr(reason, "unexpected eof")) {
        snprintf(why, wlen, "the server closed the connection during the TLS handshake");
    } else if (strstr(reason, "no application protocol")) {
        snprintf(why, wlen, "the server does not offer HTTP/2 over TLS (ALPN h2): %s", reason);
    } else if (c->rx_bytes <= 7 && strstr(reason, "alert handshake failure")) {
        /* One alert and nothing else: what factumd --insecure answers a
         * ClientHello with (and a TLS server that shares nothing with us). */
        snprintf(why, wlen, "TLS handshake failed: %s (a server started with --insecure answers so: then add "
                            "tls=false)", reason);
    } else {
        snprintf(why, wlen, "TLS handshake failed: %s", reason);
    }
}

/* The TLS handshake on the connected socket, over memory BIOs (CL-5), by
 * connect_timeout_ms. 0, or FACTUM_ETLS / FACTUM_ECONNECT / -ENOMEM with
 * why. */
int client_tls_start(factum_client *c, const client_host *h, char *why, size_t wlen)
{
    char reason[200];
    SSL *ssl = SSL_new(c->ssl_ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty: "retry", not end of file */
    SSL_set_bio(ssl, rb, wb);
    c->ssl = ssl;
    /* SNI and the name the certificate must carry: a DNS name, or an
     * address (without an IPv6 zone) checked against its IP entries. */
    char addr[256];
    snprintf(addr, sizeof addr, "%s", h->name);
    char *zone = strchr(addr, '%');
    if (zone) *zone = 0;
    unsigned char raw[16];
    int is_ip = inet_pton(AF_INET, addr, raw) == 1 || inet_pton(AF_INET6, addr, raw) == 1;
    int ok = 1;
    if (!is_ip) ok = SSL_set_tlsext_host_name(ssl, h->name) == 1;
    if (ok && c->url.tls_verify_cert) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), addr) == 1
                   : SSL_set1_host(ssl, h->name) == 1;
    }
    if (!ok) {
        snprintf(why, wlen, "TLS: cannot use the host name '%.200s': %s", h->name, client_tls_reason(reason, sizeof reason));
        return FACTUM_ETLS;
    }
    uint64_t deadline = c->connect_timeout_ms ? client_now_ns() + (uint64_t)c->connect_timeout_ms * 1000000u : 0;
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
        if (client_out_tls(c)) return -ENOMEM;
        /* Done: the last flight (Finished, a certificate) waits in wbuf and
         * leaves with HTTP/2's preface. */
        if (e == SSL_ERROR_NONE) break;
        int rc = client_out_send(c);
        if (rc) {
            snprintf(why, wlen, "%.300s", client_errbuf());
            return rc;
        }
        if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
            handshake_error(c, h, e, why, wlen);
            return FACTUM_ETLS;
        }
        int timeout = -1;
        if (deadline) {
            uint64_t now = client_now_ns();
            if (now >= deadline) {
                snprintf(why, wlen, "no TLS handshake within %u ms", c->connect_timeout_ms);
                return FACTUM_ECONNECT;
            }
            timeout = (int)((deadline - now + 999999) / 1000000);
        }
        struct pollfd pfd = {c->fd, (short)(e == SSL_ERROR_WANT_READ ? POLLIN : 0), 0};
        if (c->woff < c->wbuf.len) pfd.events |= POLLOUT;
        int pr = poll(&pfd, 1, timeout);
        if (pr < 0 && errno != EINTR) {
            snprintf(why, wlen, "poll: %s", strerror(errno));
            return FACTUM_ECONNECT;
        }
        if (pr <= 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n;
        do
            n = recv(c->fd, c->rbuf, c->rcap, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n < 0) {
            snprintf(why, wlen, "reading from the server failed: %s", strerror(errno));
            return FACTUM_ECONNECT;
        }
        if (n == 0) {
            snprintf(why, wlen, "%s", c->rx_bytes ? "the server closed the connection during the TLS handshake"
                                                  : "the server closed the connection at the TLS handshake "
                                                    "(does it speak TLS? for a server started with --insecure, "
                                                    "add tls=false)");
            return c->rx_bytes ? FACTUM_ETLS : FACTUM_ECONNECT;
        }
        if (!c->rx_bytes && !client_looks_like_tls(c->rbuf, (size_t)n)) {
            /* Not a TLS record: a cleartext server (its HTTP/2 SETTINGS, or
             * an HTTP/1 answer whose first line may say why). */
            if (n > 5 && !memcmp(c->rbuf, "HTTP/", 5)) {
                size_t l = 0;
                while (l < (size_t)n && l < 200 && c->rbuf[l] != '\r' && c->rbuf[l] != '\n')
                    l++;
                snprintf(why, wlen, "the server does not speak TLS (it answered '%.*s'): for a server started "
                                    "with --insecure, add tls=false", (int)l, (const char *)c->rbuf);
            } else {
                snprintf(why, wlen, "the server does not speak TLS: for a server started with --insecure, "
                                    "add tls=false");
            }
            return FACTUM_ETLS;
        }
        c->rx_bytes += (uint64_t)n;
        if (BIO_write(rb, c->rbuf, (int)n) != (int)n) return -ENOMEM;
    }
    /* ALPN: h2, or nothing chosen (a server that knows no ALPN: HTTP/2 is
     * tried with prior knowledge); anything else cannot carry gRPC. */
    const unsigned char *proto;
    unsigned int plen;
    SSL_get0_alpn_selected(ssl, &proto, &plen);
    if (plen && !(plen == 2 && !memcmp(proto, "h2", 2))) {
        snprintf(why, wlen, "the server chose '%.*s' over TLS, not HTTP/2 (ALPN h2)", (int)plen, (const char *)proto);
        return FACTUM_ETLS;
    }
    c->rx_bytes = 0; /* what follows is HTTP/2 */
    return 0;
}
