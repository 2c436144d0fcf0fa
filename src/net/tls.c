/*
 * tls.c - OpenSSL 3 for factumd's port (tls.h): the server context built
 * and checked from KurrentDB's certificate settings, and the non-blocking
 * handshake, read and write of one connection on its socket (a socket BIO:
 * see docs/adr/0007-tls.md for why not a memory BIO).
 *
 * The context follows TLS-1: TLS 1.2 and 1.3 only, TLS 1.2 with ECDHE and
 * AEAD ciphers only, no renegotiation, no compression; ALPN picks h2, else
 * http/1.1 (a plain HTTP request on h2 is sent to HTTP/1.1 by the call
 * layer: HTTP_1_1_REQUIRED). It asks for a client certificate without requiring one
 * (TLS-3), verified against the same trusted roots as the node's own.
 */
#include "net/tls.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* TLS 1.2: forward secrecy (ECDHE) and AEAD only. TLS 1.3's suites are all
 * AEAD; OpenSSL's default list is kept. */
static const char TLS12_CIPHERS[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const unsigned char ALPN[] = "\x02h2\x08http/1.1";

static void ssl_err(char *out, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(out, n, "unknown error");
        return;
    }
    const char *r = ERR_reason_error_string(e);
    snprintf(out, n, "%s", r ? r : "unknown error");
}

static void fmt_time(const ASN1_TIME *t, char *out, size_t n)
{
    struct tm tm;
    if (t && ASN1_TIME_to_tm(t, &tm))
        strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(out, n, "?");
}

static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read the %s %s: %s", what, path, strerror(e));
        return e == ENOENT ? -ENOENT : e == EACCES ? -EACCES : -EINVAL;
    }
    fclose(f);
    return 0;
}

/* Load the trusted roots: every certificate of one file, or of every file
 * of a directory (KurrentDB's TrustedRootCertificatesPath is a directory).
 * Also collects their subjects: the CAs a client certificate may come
 * from. */
static int load_roots(const char *path, X509_STORE *store, STACK_OF(X509_NAME) * names, char *err,
                      size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb)) {
        int e = errno;
        snprintf(err, errlen, "cannot read the trusted root certificates path %s: %s", path, strerror(e));
        return e == ENOENT ? -ENOENT : -EACCES;
    }
    int loaded = 0;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            snprintf(err, errlen, "cannot read the trusted root certificates directory %s: %s", path,
                     strerror(errno));
            return -EACCES;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            size_t l = strlen(de->d_name);
            if (l > 4 && !strcmp(de->d_name + l - 4, ".key"))
                continue; /* a CA's key beside it (factum certs) */
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            struct stat fs;
            if (stat(p, &fs) || !S_ISREG(fs.st_mode)) continue;
            ERR_set_mark();
            if (X509_STORE_load_file(store, p) == 1) {
                SSL_add_file_cert_subjects_to_stack(names, p);
                loaded++;
            }
            ERR_pop_to_mark(); /* a file that is no certificate is skipped */
        }
        closedir(d);
    } else {
        if (X509_STORE_load_file(store, path) != 1) {
            char why[128];
            ssl_err(why, sizeof why);
            snprintf(err, errlen, "cannot load the trusted root certificates in %s: %s", path, why);
            return -EINVAL;
        }
        SSL_add_file_cert_subjects_to_stack(names, path);
        loaded++;
    }
    if (!loaded) {
        snprintf(err, errlen, "no trusted root certificate found in %s", path);
        return -EINVAL;
    }
    return 0;
}

/* The key's password: the setting, never a prompt (a prompt would block). */
static int key_password(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pw = u;
    size_t n = pw ? strlen(pw) : 0;
    if (!n || n > (size_t)size) return 0;
    memcpy(buf, pw, n);
    return (int)n;
}

/* Does the PEM file hold an encrypted key? */
static int key_encrypted(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    int enc = 0;
    while (!enc && fgets(line, sizeof line, f))
        enc = strstr(line, "ENCRYPTED") != NULL;
    fclose(f);
    return enc;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, ALPN, sizeof ALPN - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no protocol of ours: the first bytes will tell (or not) */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

/* Check that the node certificate is valid now and chains to the roots
 * (with the intermediates of its file). */
static int check_chain(SSL_CTX *ctx, X509 *leaf, const tls_files *f, char *err, size_t errlen)
{
    char a[64], b[64];
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        fmt_time(X509_get0_notBefore(leaf), a, sizeof a);
        snprintf(err, errlen, "the certificate in %s is not valid yet (not before %s)", f->cert_file, a);
        return -EINVAL;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        fmt_time(X509_get0_notAfter(leaf), b, sizeof b);
        snprintf(err, errlen, "the certificate in %s expired on %s", f->cert_file, b);
        return -EINVAL;
    }
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    if (!vc) return -ENOMEM;
    int rc = 0;
    if (!X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(ctx), leaf, chain)) {
        rc = -ENOMEM;
        goto out;
    }
    X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_SERVER);
    if (X509_verify_cert(vc) != 1) {
        int e = X509_STORE_CTX_get_error(vc);
        snprintf(err, errlen, "the certificate in %s is not signed by a trusted root in %s: %s", f->cert_file,
                 f->trusted_roots, X509_verify_cert_error_string(e));
        rc = -EINVAL;
    }
out:
    X509_STORE_CTX_free(vc);
    return rc;
}

int tls_server_ctx_new(const tls_files *f, SSL_CTX **out, char *err, size_t errlen)
{
    int rc;
    char why[160];
    *out = NULL;
    if ((rc = readable("certificate file", f->cert_file, err, errlen))) return rc;
    if ((rc = readable("certificate private key file", f->key_file, err, errlen))) return rc;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    if (!ctx || !names) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    /* TLS-1 */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* TLS 1.3: AES-128-GCM first (server preference): as strong as the
     * protocol needs and a third cheaper per byte than AES-256 with AES-NI,
     * which bulk reads ($all, catch-up) feel. */
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") !=
            1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        ssl_err(why, sizeof why);
        snprintf(err, errlen, "cannot set the TLS ciphers: %s", why);
        rc = -EINVAL;
        goto fail;
    }
    /* TLS-2, TLS-5: partial writes from a buffer that may move (the rest of
     * a write waits in the connection's buffer), record buffers released
     * when a connection is idle. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: one read() takes what the socket holds into the record
     * buffer, instead of a read for each record's header and one for its
     * body (three system calls per small request otherwise). What it keeps
     * past a turn's budget, SSL_has_pending reports: server.c reads it in
     * the next turn. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* Sessions resume across a reconnect (stateless tickets); the context
     * id lets a resumed session keep its verified client certificate. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"factumd", 7);
    SSL_CTX_set_num_tickets(ctx, 1);

    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert_file) != 1) {
        ssl_err(why, sizeof why);
        snprintf(err, errlen, "cannot load the certificate file %s: %s (a PEM certificate is expected)",
                 f->cert_file, why);
        rc = -EINVAL;
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb(ctx, key_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)f->key_password);
    if (SSL_CTX_use_PrivateKey_file(ctx, f->key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        ssl_err(why, sizeof why);
        if (key_encrypted(f->key_file))
            snprintf(err, errlen, "cannot decrypt the certificate private key file %s: %s", f->key_file,
                     f->key_password && *f->key_password
                         ? "wrong password (--certificate-private-key-password)"
                         : "it is encrypted: give --certificate-private-key-password");
        else if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "the private key in %s does not match the certificate in %s", f->key_file,
                     f->cert_file);
        else
            snprintf(err, errlen,
                     "cannot load the certificate private key file %s: %s (a PEM key is expected)",
                     f->key_file, why);
        rc = -EINVAL;
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "the private key in %s does not match the certificate in %s", f->key_file,
                 f->cert_file);
        rc = -EINVAL;
        goto fail;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    if ((rc = load_roots(f->trusted_roots, store, names, err, errlen))) goto fail;
    if ((rc = check_chain(ctx, SSL_CTX_get0_certificate(ctx), f, err, errlen))) goto fail;
    /* TLS-3: ask for a client certificate from these CAs; one that is
     * sent must verify. */
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    ERR_clear_error();
    *out = ctx;
    return 0;
fail:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

void tls_ctx_describe(SSL_CTX *ctx, char *out, size_t n)
{
    X509 *c = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
    if (!c) {
        snprintf(out, n, "no certificate");
        return;
    }
    char subj[256] = "", until[64];
    X509_NAME_oneline(X509_get_subject_name(c), subj, sizeof subj);
    fmt_time(X509_get0_notAfter(c), until, sizeof until);
    snprintf(out, n, "%s, valid until %s", subj, until);
}

/* TLS-6: after each read from the socket, was it drained (a short read,
 * or nothing)? */
static long read_watch(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                       size_t *processed)
{
    (void)argp, (void)argi, (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        int *drained = (int *)BIO_get_callback_arg(b);
        *drained = ret <= 0 || !processed || *processed < len;
    }
    return ret;
}

SSL *tls_conn_new(SSL_CTX *ctx, int fd, int *drained)
{
    SSL *ssl = SSL_new(ctx);
    /* Two socket BIOs on the one fd (neither closes it): only reads are
     * watched, writes pay for no callback. */
    BIO *r = BIO_new_socket(fd, BIO_NOCLOSE), *w = BIO_new_socket(fd, BIO_NOCLOSE);
    if (!ssl || !r || !w) {
        BIO_free(r);
        BIO_free(w);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_callback_arg(r, (char *)drained);
    BIO_set_callback_ex(r, read_watch);
    SSL_set_bio(ssl, r, w);
    SSL_set_accept_state(ssl);
    return ssl;
}

/* The thread's OpenSSL error queue is emptied after every failure, so that
 * the next SSL_get_error is right; clearing it costs ~800 instructions, a
 * look ~50, so it is cleared only when something is there. */
static void errq_clear(void)
{
    if (ERR_peek_error()) ERR_clear_error();
}

/* Map an SSL result: the readiness to wait for, or an error. */
static int outcome(SSL *ssl, int r, int *want)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        return -EPIPE; /* the socket failed or the peer went away */
    default:
        return -EPROTO;
    }
}

int tls_conn_handshake(SSL *ssl, char *reason, size_t n)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) return 0;
    int want = 0, rc = outcome(ssl, r, &want);
    if (rc == -EAGAIN) return want;
    if (rc == 0 || rc == -EPIPE) {
        snprintf(reason, n, "the client closed the connection during the handshake");
        return -EPIPE;
    }
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK && SSL_get0_peer_certificate(ssl))
        snprintf(reason, n, "client certificate refused: %s", X509_verify_cert_error_string(v));
    else
        ssl_err(reason, n);
    ERR_clear_error();
    return -EPROTO;
}

ssize_t tls_conn_read(SSL *ssl, void *buf, size_t n, int *want, char *reason, size_t rn)
{
    errq_clear();
    size_t got = 0;
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1) return (ssize_t)got;
    int rc = outcome(ssl, 0, want);
    if (rc == -EPROTO) ssl_err(reason, rn);
    errq_clear();
    return rc;
}

ssize_t tls_conn_write(SSL *ssl, const void *p, size_t n, int *want)
{
    errq_clear();
    size_t put = 0;
    int r = SSL_write_ex(ssl, p, n, &put);
    if (r == 1) return (ssize_t)put;
    int rc = outcome(ssl, 0, want);
    errq_clear();
    return rc == 0 ? -EPIPE : rc == -EPROTO ? -EPIPE : rc;
}

int tls_conn_pending(SSL *ssl)
{
    return SSL_has_pending(ssl);
}

char *tls_conn_peer_cn(SSL *ssl)
{
    X509 *c = SSL_get0_peer_certificate(ssl);
    if (!c || SSL_get_verify_result(ssl) != X509_V_OK) return NULL;
    X509_NAME *name = X509_get_subject_name(c);
    int idx = -1, last = -1;
    while ((idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0)
        last = idx;
    if (last < 0) return NULL;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last)));
    if (len <= 0 || len > 1024 || memchr(utf8, 0, (size_t)len)) { /* an embedded NUL names nobody */
        OPENSSL_free(utf8);
        return NULL;
    }
    char *s = strndup((const char *)utf8, (size_t)len);
    OPENSSL_free(utf8);
    return s;
}

void tls_conn_alpn(SSL *ssl, char *out, size_t n)
{
    const unsigned char *p = NULL;
    unsigned int l = 0;
    SSL_get0_alpn_selected(ssl, &p, &l);
    snprintf(out, n, "%.*s", (int)l, p ? (const char *)p : "");
}

void tls_conn_free(SSL *ssl, int healthy)
{
    if (!ssl) return;
    if (healthy && SSL_is_init_finished(ssl)) {
        ERR_clear_error();
        SSL_shutdown(ssl); /* close_notify, if the socket takes it now */
    }
    ERR_clear_error();
    SSL_free(ssl);
}
