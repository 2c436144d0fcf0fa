/*
 * passwd.c - password hashing (scrypt, and KurrentDB's PBKDF2 for records
 * it wrote), base64, and the parsing of Basic credentials and certificate
 * subjects (passwd.h).
 */
#include "auth/passwd.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

#include "factum.h"

#define SCRYPT_KEY_LEN 32
#define PBKDF2_KEY_LEN 20

void auth_hash_params_default(auth_hash *h)
{
    memset(h, 0, sizeof *h);
    h->alg = AUTH_KDF_SCRYPT;
    h->n = 1u << 14;
    h->r = 8;
    h->p = 1;
}

static int scrypt(const auth_hash *h, const char *pw, size_t pw_len, uint8_t *out, size_t out_len)
{
    /* Bounds: a record is data from the store, never trusted to ask for
     * gigabytes (N*r*128 bytes) or hours. */
    if (h->n < 2 || (h->n & (h->n - 1)) || h->n > (1u << 20) || h->r < 1 || h->r > 32 || h->p < 1 || h->p > 16 ||
        h->n * h->r * 128u > (256u << 20))
        return -EINVAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!kctx) return -EIO;
    uint64_t n = h->n, maxmem = (uint64_t)h->n * h->r * 128u * h->p + (1u << 20);
    uint32_t r = h->r, p = h->p;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(pw_len ? pw : ""), pw_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)h->salt, h->salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok ? 0 : -EIO;
}

static int derive(const auth_hash *h, const char *pw, size_t pw_len, uint8_t *out, size_t out_len)
{
    if (out_len == 0 || out_len > AUTH_KEY_MAX || h->salt_len == 0 || h->salt_len > sizeof h->salt) return -EINVAL;
    if (h->alg == AUTH_KDF_SCRYPT) return scrypt(h, pw, pw_len, out, out_len);
    if (h->alg == AUTH_KDF_PBKDF2_SHA1) {
        if (h->n < 1 || h->n > 1000000) return -EINVAL;
        return PKCS5_PBKDF2_HMAC(pw, (int)pw_len, h->salt, (int)h->salt_len, (int)h->n, EVP_sha1(), (int)out_len,
                                 out) == 1
                   ? 0
                   : -EIO;
    }
    return -EINVAL;
}

int auth_hash_make(auth_hash *h, const char *pw, size_t pw_len)
{
    if (pw_len > AUTH_PASSWORD_MAX) return -EINVAL;
    h->salt_len = AUTH_SALT_LEN;
    if (RAND_bytes(h->salt, AUTH_SALT_LEN) != 1) return -EIO;
    h->key_len = h->alg == AUTH_KDF_SCRYPT ? SCRYPT_KEY_LEN : PBKDF2_KEY_LEN;
    return derive(h, pw, pw_len, h->key, h->key_len);
}

int auth_hash_verify(const auth_hash *h, const char *pw, size_t pw_len)
{
    uint8_t k[AUTH_KEY_MAX];
    if (pw_len > AUTH_PASSWORD_MAX) return 0;
    int rc = derive(h, pw, pw_len, k, h->key_len);
    if (rc) return rc;
    int same = CRYPTO_memcmp(k, h->key, h->key_len) == 0;
    OPENSSL_cleanse(k, sizeof k);
    return same;
}

/* ---- base64 ---------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t auth_b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < len ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static int b64v(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 4) return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int pad = 0;
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            int x;
            if (c == '=' && i + 4 == len && j >= 2) {
                pad++;
                x = 0;
            } else {
                if (pad) return -EINVAL; /* data after padding */
                x = b64v(c);
                if (x < 0) return -EINVAL;
            }
            v = v << 6 | (uint32_t)x;
        }
        size_t n = 3u - (size_t)pad;
        if (o + n > cap) return -EINVAL;
        out[o++] = (uint8_t)(v >> 16);
        if (n > 1) out[o++] = (uint8_t)(v >> 8);
        if (n > 2) out[o++] = (uint8_t)v;
    }
    *out_len = o;
    return 0;
}

/* ---- credentials from the network ------------------------------------------ */

int auth_login_valid(const char *login, size_t len)
{
    if (len == 0 || len > AUTH_LOGIN_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)login[i];
        if (c < 0x20 || c == 0x7f || c == ':') return 0;
    }
    /* Valid UTF-8, by the rule stream names follow (it becomes `$user-<login>`). */
    return factum_check_stream_name(login, len) == 0;
}

int auth_parse_basic(const char *header, char login[AUTH_LOGIN_MAX + 1], char password[AUTH_PASSWORD_MAX + 1],
                     size_t *password_len)
{
    if (!header) return AUTH_CRED_NONE;
    /* The scheme is case-insensitive (RFC 9110), one space, then the token. */
    if (strncasecmp(header, "Basic ", 6) != 0) return AUTH_CRED_BAD;
    const char *t = header + 6;
    while (*t == ' ') t++;
    size_t tl = strlen(t);
    while (tl && t[tl - 1] == ' ') tl--;
    /* login + ':' + password, base64: at most this long */
    if (tl == 0 || tl > 4 * ((AUTH_LOGIN_MAX + 1 + AUTH_PASSWORD_MAX + 2) / 3)) return AUTH_CRED_BAD;
    uint8_t raw[AUTH_LOGIN_MAX + 1 + AUTH_PASSWORD_MAX + 3];
    size_t n;
    if (auth_b64_decode(t, tl, raw, sizeof raw, &n)) return AUTH_CRED_BAD;
    uint8_t *colon = memchr(raw, ':', n);
    if (!colon) goto bad;
    size_t ll = (size_t)(colon - raw), pl = n - ll - 1;
    if (!auth_login_valid((const char *)raw, ll) || pl > AUTH_PASSWORD_MAX) goto bad;
    memcpy(login, raw, ll);
    login[ll] = 0;
    memcpy(password, colon + 1, pl);
    password[pl] = 0;
    *password_len = pl;
    OPENSSL_cleanse(raw, sizeof raw);
    return AUTH_CRED_BASIC;
bad:
    OPENSSL_cleanse(raw, sizeof raw);
    return AUTH_CRED_BAD;
}

int auth_cert_login(const char *cn, char out[AUTH_LOGIN_MAX + 1])
{
    if (!cn) return -EINVAL;
    size_t len = strlen(cn);
    if (!auth_login_valid(cn, len)) return -EINVAL;
    memcpy(out, cn, len + 1);
    return 0;
}
