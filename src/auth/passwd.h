/*
 * passwd.h - password hashes as factum stores them in a user's record, and
 * the parsing of credentials that arrive from the network. Pure functions:
 * no store, no threads, no globals (unit tests and tests/fuzz call them
 * directly).
 *
 * New hashes are scrypt (OpenSSL 3's EVP_KDF "SCRYPT"; docs/adr/0008):
 * a random 16-byte salt, a 32-byte key, and the cost parameters recorded
 * beside them so that they can be raised later without invalidating the
 * stored hashes. A record without parameters is KurrentDB's own (PBKDF2
 * with HMAC-SHA1, 1,000 iterations, 20 bytes): users written by KurrentDB
 * still log in, and get a scrypt hash the next time their password is set.
 *
 * Every comparison of secrets is constant time (CRYPTO_memcmp).
 */
#ifndef FACTUM_AUTH_PASSWD_H
#define FACTUM_AUTH_PASSWD_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_LOGIN_MAX 256    /* bytes of a login name */
#define AUTH_PASSWORD_MAX 1024 /* bytes of a password */
#define AUTH_SALT_LEN 16
#define AUTH_KEY_MAX 64

enum { AUTH_KDF_PBKDF2_SHA1 = 0, AUTH_KDF_SCRYPT = 1 };

/* A stored hash: how it was made and what it is. */
typedef struct auth_hash {
    int alg;                  /* AUTH_KDF_* */
    uint64_t n;               /* scrypt: CPU/memory cost (a power of 2); pbkdf2: iterations */
    uint32_t r, p;            /* scrypt: block size, parallelism */
    uint8_t salt[AUTH_SALT_LEN + 16];
    size_t salt_len;
    uint8_t key[AUTH_KEY_MAX];
    size_t key_len;
} auth_hash;

/* The parameters of new hashes: scrypt N=2^14, r=8, p=1 (16 MiB, tens of ms). */
void auth_hash_params_default(auth_hash *h);

/* Hash `pw` with h's parameters (alg, n, r, p) and a fresh random salt into
 * h. 0, -EINVAL (bad parameters) or -EIO (OpenSSL failed). Slow: never on
 * the loop thread. */
int auth_hash_make(auth_hash *h, const char *pw, size_t pw_len);
/* Does `pw` match h? 1 yes, 0 no, <0 an error (bad parameters). Slow. */
int auth_hash_verify(const auth_hash *h, const char *pw, size_t pw_len);

/* Base64 (RFC 4648 with padding). encode: out needs 4*((len+2)/3)+1 bytes;
 * returns the text length. decode: 0 and *out_len, or -EINVAL. */
size_t auth_b64_encode(const uint8_t *in, size_t len, char *out);
int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* An `authorization` header's credentials.
 *  AUTH_CRED_NONE   no header (NULL)
 *  AUTH_CRED_BASIC  `Basic base64(login:password)`: login (1..AUTH_LOGIN_MAX
 *                   bytes, no control characters) and password (at most
 *                   AUTH_PASSWORD_MAX bytes, may be empty) are copied out,
 *                   NUL-terminated
 *  AUTH_CRED_BAD    anything else (another scheme, bad base64, no colon,
 *                   a login out of bounds): the request is unauthenticated */
enum { AUTH_CRED_NONE = 0, AUTH_CRED_BASIC = 1, AUTH_CRED_BAD = -1 };
int auth_parse_basic(const char *header, char login[AUTH_LOGIN_MAX + 1], char password[AUTH_PASSWORD_MAX + 1],
                     size_t *password_len);

/* Is `login` acceptable as a login name: 1..AUTH_LOGIN_MAX bytes of valid
 * UTF-8 without control characters or ':' (Basic credentials split at the
 * first colon)? 1 or 0. Groups follow the same rule. */
int auth_login_valid(const char *login, size_t len);

/* The login a verified client certificate's subject names: its CN when
 * that is a valid login (auth_login_valid). 0 and out, or -EINVAL. */
int auth_cert_login(const char *cn, char out[AUTH_LOGIN_MAX + 1]);

#endif
