/* Fuzz target: the C client's connection strings (src/client/url.c), which
 * come from users, configuration files and environment variables: any
 * bytes parse or fail with FACTUM_EBADURL and a NUL-terminated reason, and
 * what parses keeps the parser's promises (at least one host, ports in
 * range, every field NUL-terminated, the client certificate's two files
 * both or neither). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, 0, cap)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (!p) return 0;
    memcpy(p, data, size);
    p[size] = 0;
    client_url u;
    char err[256];
    int rc = client_url_parse(p, &u, err, sizeof err);
    check_str(err, sizeof err);
    if (rc == 0) {
        if (u.n_hosts < 1 || u.n_hosts > CLIENT_MAX_HOSTS) abort();
        for (size_t i = 0; i < u.n_hosts; i++) {
            check_str(u.hosts[i].name, sizeof u.hosts[i].name);
            if (!u.hosts[i].name[0] || u.hosts[i].port == 0) abort();
        }
        check_str(u.username, sizeof u.username);
        check_str(u.password, sizeof u.password);
        check_str(u.ca_file, sizeof u.ca_file);
        check_str(u.user_cert_file, sizeof u.user_cert_file);
        check_str(u.user_key_file, sizeof u.user_key_file);
        check_str(u.connection_name, sizeof u.connection_name);
        if (!u.user_cert_file[0] != !u.user_key_file[0]) abort();
        if (u.tls != 0 && u.tls != 1) abort();
        if (u.has_credentials && (!u.username[0] || strchr(u.username, ':'))) abort();
    } else if (rc != FACTUM_EBADURL || !err[0]) {
        abort();
    }
    free(p);
    return 0;
}
