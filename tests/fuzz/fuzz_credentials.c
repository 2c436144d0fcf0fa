/* Fuzz target: the parsing of credentials from the network (src/auth/passwd.h):
 * an `authorization` header's value (auth_parse_basic) and a client
 * certificate's subject CN mapped to a login (auth_cert_login). Whatever the
 * bytes, nothing may crash or read out of bounds, and what is accepted must
 * obey the rules: a valid login of at most AUTH_LOGIN_MAX bytes, a password
 * of at most AUTH_PASSWORD_MAX, and re-encoding them gives the same
 * credentials back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    char *s = malloc(size + 1); /* a private, NUL-terminated copy: reads past it are caught */
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char login[AUTH_LOGIN_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    size_t pl = 0;
    int kind = auth_parse_basic(s, login, pw, &pl);
    if (kind == AUTH_CRED_BASIC) {
        size_t ll = strlen(login);
        if (!auth_login_valid(login, ll) || pl > AUTH_PASSWORD_MAX) abort();
        /* round trip: login:password, base64, parsed again */
        char raw[AUTH_LOGIN_MAX + 1 + AUTH_PASSWORD_MAX + 1];
        memcpy(raw, login, ll);
        raw[ll] = ':';
        memcpy(raw + ll + 1, pw, pl);
        char hdr[6 + 4 * ((sizeof raw + 2) / 3) + 1];
        memcpy(hdr, "Basic ", 6);
        auth_b64_encode((const uint8_t *)raw, ll + 1 + pl, hdr + 6);
        char login2[AUTH_LOGIN_MAX + 1], pw2[AUTH_PASSWORD_MAX + 1];
        size_t pl2 = 0;
        if (auth_parse_basic(hdr, login2, pw2, &pl2) != AUTH_CRED_BASIC || strcmp(login, login2) || pl != pl2 ||
            memcmp(pw, pw2, pl))
            abort();
    } else if (kind != AUTH_CRED_BAD) {
        abort(); /* never NONE for a header that is there */
    }
    /* The same bytes as a certificate's CN. */
    char cn[AUTH_LOGIN_MAX + 1];
    if (auth_cert_login(s, cn) == 0 && (strcmp(cn, s) || !auth_login_valid(cn, strlen(cn)))) abort();
    /* And as base64 on its own. */
    uint8_t out[6200];
    size_t n;
    if (auth_b64_decode(s, size, out, sizeof out, &n) == 0 && n > size) abort();
    free(s);
    return 0;
}
