/*
 * tls.h - TLS for factumd's one port, over OpenSSL 3: the server context
 * built from KurrentDB's three certificate settings (and checked, so that a
 * bad certificate stops the server at start with a clear reason), and the
 * non-blocking handshake, read and write of one connection. server.c's
 * transport (conn_recv/conn_send) is the only caller of the per-connection
 * functions; nothing else in factumd touches OpenSSL's SSL objects.
 *
 * Design note (invariants; tests cite them as TLS-n):
 *  TLS-1  Only TLS 1.2 and 1.3; TLS 1.2 only with ECDHE key exchange and an
 *         AEAD cipher (AES-GCM, ChaCha20-Poly1305). No renegotiation, no
 *         compression.
 *  TLS-2  Every SSL call is non-blocking on the connection's own socket:
 *         a call that cannot go on says which readiness it waits for (read
 *         or write; SSL_read may want to write and SSL_write to read).
 *  TLS-3  A client certificate is requested, never required. One that is
 *         sent must chain to the trusted roots (else the handshake fails);
 *         the subject CN of a verified one is the connection's peer CN.
 *  TLS-4  A server context is immutable once built; a reload builds a new
 *         one and swaps it for new connections (OpenSSL counts the
 *         references: connections keep the context they started with). A
 *         reload that fails changes nothing.
 *  TLS-5  What OpenSSL holds for a connection is charged to the memory
 *         budget (NET-5) as measured constants: TLS_MEM_HANDSHAKE while the
 *         handshake runs, TLS_MEM_OPEN after (SSL_MODE_RELEASE_BUFFERS
 *         frees the record buffers of an idle connection), plus
 *         TLS_MEM_RECORD for each direction in which a partial record is
 *         held. tests/unit/tls.c measures the real figures and fails if
 *         they exceed these constants.
 *  TLS-6  A turn reads a connection until its socket is drained, with no
 *         read that only meets EAGAIN: the socket BIO reports whether each
 *         read was short (tls_conn_new); level-triggered epoll reports what
 *         arrives later.
 */
#ifndef FACTUM_NET_TLS_H
#define FACTUM_NET_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* TLS-5: bytes charged per TLS connection (tests/unit/tls.c measures the
 * real figures, docs/security.md lists them): during the handshake; once
 * open and idle (the session, the peer's certificate, the cipher states);
 * and one record buffer more for each direction in which OpenSSL holds a
 * partial record (decrypted bytes not yet taken; a write the socket did
 * not take). */
#define TLS_MEM_HANDSHAKE (48u << 10)
#define TLS_MEM_OPEN      (32u << 10)
#define TLS_MEM_RECORD    (20u << 10)

typedef struct tls_files {
    const char *cert_file;     /* CertificateFile: PEM, the node certificate then its intermediates */
    const char *key_file;      /* CertificatePrivateKeyFile: PEM */
    const char *key_password;  /* CertificatePrivateKeyPassword: for an encrypted key, or NULL */
    const char *trusted_roots; /* TrustedRootCertificatesPath: a directory of PEM files, or one file */
} tls_files;

/* Build a server context from the files and check them (TLS-1, TLS-3):
 * the files are readable and parse, the key matches the certificate, the
 * certificate is valid now and chains to the trusted roots. 0 and *out
 * (free with SSL_CTX_free), or -EINVAL/-ENOENT/-EACCES/-ENOMEM with a
 * one-line reason in err. */
int tls_server_ctx_new(const tls_files *f, SSL_CTX **out, char *err, size_t errlen);

/* A short description of the certificate in ctx (subject, expiry) for the
 * log. */
void tls_ctx_describe(SSL_CTX *ctx, char *out, size_t n);

/* What a non-blocking TLS call waits for (TLS-2). */
enum { TLS_OK = 0, TLS_WANT_READ = 1, TLS_WANT_WRITE = 2 };

/* A server-side SSL on the accepted socket fd. NULL on out of memory.
 * TLS-6: after every read from the socket, *drained (which must outlive
 * the SSL) says whether that read found the socket empty (it took less
 * than it asked for, or nothing): then, once the SSL holds nothing either
 * (tls_conn_pending), another read would only meet EAGAIN. */
SSL *tls_conn_new(SSL_CTX *ctx, int fd, int *drained);
/* Drive the handshake: 0 when done, a positive TLS_WANT_* to wait, or
 * -EPROTO (failed; reason says why, for the log) / -EPIPE (the peer went
 * away). */
int tls_conn_handshake(SSL *ssl, char *reason, size_t n);
/* Read decrypted bytes: > 0, 0 at the end (close_notify or EOF), or a
 * negative value: -EAGAIN with *want set, -EPROTO (reason says why) or
 * -EPIPE. */
ssize_t tls_conn_read(SSL *ssl, void *buf, size_t n, int *want, char *reason, size_t rn);
/* Write (partial writes allowed; the same bytes again after -EAGAIN, the
 * buffer may move): > 0 bytes taken, -EAGAIN with *want set, -EPIPE. */
ssize_t tls_conn_write(SSL *ssl, const void *p, size_t n, int *want);
/* Decrypted or undecrypted bytes held inside the SSL (epoll does not see
 * them). */
int tls_conn_pending(SSL *ssl);
/* The subject CN of the verified client certificate (TLS-3), as a
 * malloc'ed string, or NULL. */
char *tls_conn_peer_cn(SSL *ssl);
/* The ALPN protocol chosen ("h2", "http/1.1") or "" */
void tls_conn_alpn(SSL *ssl, char *out, size_t n);
/* Close: send close_notify if the connection is healthy (best effort, never
 * waits), then free. */
void tls_conn_free(SSL *ssl, int healthy);

#endif
