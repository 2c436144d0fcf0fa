/*
 * tls_proxy.c - a TLS front for a cleartext factumd, for the client's tests:
 * it accepts TLS (OpenSSL's own server, blocking, one process per
 * connection), offers ALPN h2 (or nothing, or http/1.1, to test the
 * client's checks), optionally requires a client certificate signed by a
 * CA, and passes the decrypted bytes to the upstream server and back. The
 * C client then meets a TLS stack other than its own, as it meets
 * KurrentDB's in the field; factumd's own TLS is tested by the secure run
 * of client.sh.
 *
 * Usage: tls_proxy CERT KEY UPSTREAM_PORT [--client-ca CA] [--alpn h2|none|http/1.1]
 * Prints "port N" on stdout once listening on 127.0.0.1, then serves until
 * killed. Each connection's client certificate subject is written to
 * stderr ("client CN=..."), for the tests to check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static const char *alpn_mode = "h2";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    if (!strcmp(alpn_mode, "none")) return SSL_TLSEXT_ERR_NOACK;
    static const unsigned char h2[] = "h2", h1[] = "http/1.1";
    const unsigned char *want = !strcmp(alpn_mode, "h2") ? h2 : h1;
    unsigned int wl = (unsigned int)strlen((const char *)want);
    if (!strcmp(alpn_mode, "http/1.1")) { /* whatever the client asked */
        *out = want;
        *outlen = (unsigned char)wl;
        return SSL_TLSEXT_ERR_OK;
    }
    for (unsigned int i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == wl && i + 1 + wl <= inlen && !memcmp(in + i + 1, want, wl)) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void serve(SSL_CTX *ctx, int fd, int upstream_port)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        unsigned long e = ERR_peek_last_error();
        fprintf(stderr, "handshake failed: %s\n", e ? ERR_reason_error_string(e) : "eof");
        _exit(0);
    }
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer) {
        char cn[256] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
        fprintf(stderr, "client CN=%s\n", cn);
        X509_free(peer);
    }
    int up = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(up, (struct sockaddr *)&a, sizeof a)) _exit(1);
    int one = 1;
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[65536];
    for (;;) {
        /* Decrypted bytes may wait inside OpenSSL: take them before polling. */
        while (SSL_pending(ssl) > 0) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n <= 0) _exit(0);
            if (send(up, buf, (size_t)n, MSG_NOSIGNAL) != n) _exit(0);
        }
        struct pollfd p[2] = {{fd, POLLIN, 0}, {up, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) _exit(1);
        if (p[0].revents) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n <= 0) _exit(0);
            if (send(up, buf, (size_t)n, MSG_NOSIGNAL) != n) _exit(0);
        }
        if (p[1].revents) {
            ssize_t n = recv(up, buf, sizeof buf, 0);
            if (n <= 0) {
                SSL_shutdown(ssl);
                _exit(0);
            }
            if (SSL_write(ssl, buf, (int)n) != (int)n) _exit(0);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: tls_proxy CERT KEY UPSTREAM_PORT [--client-ca CA] [--alpn h2|none|http/1.1]\n");
        return 2;
    }
    const char *client_ca = NULL;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--client-ca")) client_ca = argv[i + 1];
        if (!strcmp(argv[i], "--alpn")) alpn_mode = argv[i + 1];
    }
    signal(SIGCHLD, SIG_IGN);            /* no zombies */
    prctl(PR_SET_PDEATHSIG, SIGTERM);    /* the test that started us is gone: so are we */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tls_proxy: cannot load %s / %s\n", argv[1], argv[2]);
        return 1;
    }
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (client_ca) {
        SSL_CTX_load_verify_locations(ctx, client_ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64) ||
        getsockname(ls, (struct sockaddr *)&a, &al)) {
        perror("tls_proxy");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int upstream = atoi(argv[3]);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            close(ls);
            serve(ctx, fd, upstream);
            _exit(0);
        }
        close(fd);
    }
}
