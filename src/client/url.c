/*
 * url.c - connection strings as KurrentDB's clients write them:
 *
 *   scheme://[user:pass@]host[:port][,host[:port]...][/][?key=value&...]
 *
 * with scheme kurrentdb, kurrent, kdb or esdb, each also as <scheme>+discover
 * (case-insensitive); hosts are names, IPv4 addresses or [IPv6] addresses,
 * the port defaults to 2113. Keys are case-insensitive; the last of a
 * repeated key wins. As in KurrentDB's clients, TLS is the default (tls=true)
 * and tls=false asks for cleartext HTTP/2. Used: tls, tlsVerifyCert,
 * tlsCAFile, userCertFile and userKeyFile (both or neither), the
 * credentials (user name and password, percent-decoded as in any URL),
 * defaultDeadline (ms), connectionName and pollForAnswerUs (factum's own,
 * CL-8); the rest (keepAlive*,
 * nodePreference, discovery options, ...) and keys this client does not
 * know are accepted and ignored. No I/O happens here (a file named by
 * tlsCAFile is read when connecting).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client_int.h"

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
    if (n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return FACTUM_EBADURL;
}

static const char *const schemes[] = {"kurrentdb", "kurrent", "kdb", "esdb"};

/* Is [p, p+n) one of the schemes, with or without +discover? */
static int parse_scheme(const char *p, size_t n, int *discover)
{
    static const char disc[] = "+discover";
    *discover = 0;
    if (n > sizeof disc - 1 && !strncasecmp(p + n - (sizeof disc - 1), disc, sizeof disc - 1)) {
        *discover = 1;
        n -= sizeof disc - 1;
    }
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strlen(schemes[i]) == n && !strncasecmp(p, schemes[i], n)) return 0;
    return -1;
}

/* A decimal number of [p, p+n) in [lo, hi]. */
static int parse_num(const char *p, size_t n, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!n || n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int host_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/* One host[:port] of the list, [p, p+n). */
static int parse_host(const char *p, size_t n, client_host *h, char *err, size_t errlen)
{
    const char *name = p, *port = NULL;
    size_t name_len, port_len = 0;
    if (n && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close) return bad(err, errlen, "unclosed '[' in host '%.*s'", (int)n, p);
        name = p + 1;
        name_len = (size_t)(close - name);
        size_t rest = n - (size_t)(close + 1 - p);
        if (rest) {
            if (close[1] != ':')
                return bad(err, errlen, "unexpected text after ']' in host '%.*s'", (int)n, p);
            port = close + 2;
            port_len = rest - 1;
        }
        int zone = 0; /* after '%': an interface name */
        for (size_t i = 0; i < name_len; i++) {
            char ch = name[i];
            if (ch == '%' && !zone)
                zone = 1;
            else if (zone ? !host_char(ch) : !isxdigit((unsigned char)ch) && ch != ':' && ch != '.')
                return bad(err, errlen, "invalid IPv6 address '%.*s'", (int)n, p);
        }
    } else {
        const char *colon = memchr(p, ':', n);
        name_len = colon ? (size_t)(colon - p) : n;
        if (colon) {
            port = colon + 1;
            port_len = n - name_len - 1;
            if (memchr(port, ':', port_len))
                return bad(err, errlen, "host '%.*s': write IPv6 addresses in brackets, [::1]:2113", (int)n,
                           p);
        }
        for (size_t i = 0; i < name_len; i++)
            if (!host_char(name[i])) return bad(err, errlen, "invalid character in host '%.*s'", (int)n, p);
    }
    if (!name_len) return bad(err, errlen, "empty host name in '%.*s'", (int)n, p);
    if (name_len >= sizeof h->name) return bad(err, errlen, "host name too long");
    memcpy(h->name, name, name_len);
    h->name[name_len] = 0;
    h->port = CLIENT_DEFAULT_PORT;
    if (port) {
        uint64_t v;
        if (parse_num(port, port_len, 1, 65535, &v))
            return bad(err, errlen, "invalid port '%.*s' (1..65535)", (int)port_len, port);
        h->port = (uint16_t)v;
    }
    return 0;
}

static int is_key(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && !strncasecmp(k, name, kl);
}

static int parse_bool(const char *v, size_t vl, int *out)
{
    if (vl == 4 && !strncasecmp(v, "true", 4))
        *out = 1;
    else if (vl == 5 && !strncasecmp(v, "false", 5))
        *out = 0;
    else
        return -1;
    return 0;
}

static int hexdigit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode [v, v+vl) into dst (cap bytes with the NUL). A '%' not
 * followed by two hex digits stays as it is. -1 if it does not fit or
 * decodes to a NUL or a control character. */
static int pct_decode(const char *v, size_t vl, char *dst, size_t cap)
{
    size_t j = 0;
    for (size_t i = 0; i < vl; i++) {
        int hi, lo;
        unsigned char ch = (unsigned char)v[i];
        if (ch == '%' && i + 2 < vl && (hi = hexdigit(v[i + 1])) >= 0 && (lo = hexdigit(v[i + 2])) >= 0) {
            ch = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f) return -1;
        if (j + 1 >= cap) return -1;
        dst[j++] = (char)ch;
    }
    dst[j] = 0;
    return 0;
}

/* A file option (tlsCAFile, userCertFile, userKeyFile): decoded, not empty. */
static int file_opt(const char *k, size_t kl, const char *v, size_t vl, char *dst, size_t cap, char *err,
                    size_t errlen)
{
    if (!vl) return bad(err, errlen, "%.*s is empty", (int)kl, k);
    if (pct_decode(v, vl, dst, cap))
        return bad(err, errlen, "%.*s is too long or has a control character", (int)kl, k);
    return 0;
}

int client_url_parse(const char *url, client_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->default_deadline_ms = -1;
    u->poll_for_answer_us = -1;
    if (errlen) err[0] = 0;
    if (!url || !*url) return bad(err, errlen, "empty connection string");
    const char *sep = strstr(url, "://");
    if (!sep || parse_scheme(url, (size_t)(sep - url), &u->discover))
        return bad(err, errlen,
                   "'%.200s' is not a connection string: expected kurrentdb://host:port?tls=false "
                   "(schemes kurrentdb, kurrent, kdb, esdb, and their +discover forms)",
                   url);
    const char *p = sep + 3;
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    /* An optional "/" before the query; no other path. */
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (slash && slash + 1 != end)
        return bad(err, errlen, "a connection string has no path ('%.*s')", (int)(end - slash), slash);
    const char *hosts_end = slash ? slash : end;
    /* Credentials: everything up to the last '@'. */
    const char *at = NULL;
    for (const char *s = p; s < hosts_end; s++)
        if (*s == '@') at = s;
    if (at) {
        if (at == p || *p == ':') return bad(err, errlen, "empty user name before '@'");
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *ue = colon ? colon : at;
        if (pct_decode(p, (size_t)(ue - p), u->username, sizeof u->username))
            return bad(err, errlen, "the user name is too long or has a control character");
        if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password))
            return bad(err, errlen, "the password is too long or has a control character");
        if (strchr(u->username, ':')) return bad(err, errlen, "the user name has a ':'");
        u->has_credentials = 1;
        p = at + 1;
    }
    if (p == hosts_end) return bad(err, errlen, "no host in the connection string");
    while (p < hosts_end) {
        const char *comma = memchr(p, ',', (size_t)(hosts_end - p));
        const char *he = comma ? comma : hosts_end;
        if (u->n_hosts == CLIENT_MAX_HOSTS) return bad(err, errlen, "more than %d hosts", CLIENT_MAX_HOSTS);
        int rc = parse_host(p, (size_t)(he - p), &u->hosts[u->n_hosts], err, errlen);
        if (rc) return rc;
        u->n_hosts++;
        if (comma && comma + 1 == hosts_end) return bad(err, errlen, "empty host after ','");
        p = comma ? comma + 1 : hosts_end;
    }
    int tls = 1, verify = 1;
    if (q) {
        p = q + 1;
        while (*p) {
            const char *amp = strchr(p, '&');
            const char *pe = amp ? amp : p + strlen(p);
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            if (pe == p) { /* "&&" or a trailing '&' */
                p = amp ? amp + 1 : pe;
                continue;
            }
            if (!eq || eq == p) return bad(err, errlen, "option '%.*s' is not key=value", (int)(pe - p), p);
            const char *k = p, *v = eq + 1;
            size_t kl = (size_t)(eq - p), vl = (size_t)(pe - v);
            if (is_key(k, kl, "tls")) {
                if (parse_bool(v, vl, &tls))
                    return bad(err, errlen, "tls must be true or false, not '%.*s'", (int)vl, v);
            } else if (is_key(k, kl, "tlsVerifyCert")) {
                if (parse_bool(v, vl, &verify))
                    return bad(err, errlen, "tlsVerifyCert must be true or false, not '%.*s'", (int)vl, v);
            } else if (is_key(k, kl, "tlsCAFile")) {
                int rc = file_opt(k, kl, v, vl, u->ca_file, sizeof u->ca_file, err, errlen);
                if (rc) return rc;
            } else if (is_key(k, kl, "userCertFile")) {
                int rc = file_opt(k, kl, v, vl, u->user_cert_file, sizeof u->user_cert_file, err, errlen);
                if (rc) return rc;
            } else if (is_key(k, kl, "userKeyFile")) {
                int rc = file_opt(k, kl, v, vl, u->user_key_file, sizeof u->user_key_file, err, errlen);
                if (rc) return rc;
            } else if (is_key(k, kl, "defaultDeadline")) {
                uint64_t ms;
                if (parse_num(v, vl, 0, UINT32_MAX, &ms))
                    return bad(err, errlen, "defaultDeadline must be a number of milliseconds, not '%.*s'",
                               (int)vl, v);
                u->default_deadline_ms = (int64_t)ms;
            } else if (is_key(k, kl, "pollForAnswerUs")) {
                uint64_t us;
                if (parse_num(v, vl, 0, 10000, &us))
                    return bad(err, errlen,
                               "pollForAnswerUs must be a number of microseconds from 0 to 10000, not '%.*s'",
                               (int)vl, v);
                u->poll_for_answer_us = (int64_t)us;
            } else if (is_key(k, kl, "connectionName")) {
                if (vl >= sizeof u->connection_name) return bad(err, errlen, "connectionName is too long");
                for (size_t i = 0; i < vl; i++)
                    if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
                        return bad(err, errlen, "connectionName has a control character");
                memcpy(u->connection_name, v, vl);
                u->connection_name[vl] = 0;
            }
            /* Anything else (keepAliveInterval, keepAliveTimeout,
             * nodePreference, maxDiscoverAttempts, discoveryInterval,
             * gossipTimeout, throwOnAppendFailure, ...) does not apply to
             * this client and is ignored. */
            p = amp ? amp + 1 : pe;
        }
    }
    u->tls = tls;
    u->tls_verify_cert = verify;
    if (!u->user_cert_file[0] != !u->user_key_file[0])
        return bad(err, errlen, "userCertFile and userKeyFile go together: give both or neither");
    return 0;
}
