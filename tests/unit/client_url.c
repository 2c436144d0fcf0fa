/*
 * client_url.c - the connection strings of the C client (src/client/url.c,
 * client_url_parse): every scheme and its +discover form, host lists with
 * default and explicit ports, IPv6 in brackets, credentials (percent-
 * decoded), TLS as the default and its options (tlsCAFile, tlsVerifyCert,
 * userCertFile/userKeyFile), the other options that are used
 * (defaultDeadline, connectionName) and those that are ignored, and
 * everything refused with FACTUM_EBADURL and a reason. No network:
 * factum_client_connect is only called with strings or files that fail
 * before it would connect.
 */
#include <unistd.h>

#include "client/client_int.h"
#include "harness.h"

static client_url u;
static char err[512];

static int parse(const char *s)
{
    return client_url_parse(s, &u, err, sizeof err);
}

static void t_schemes(void)
{
    const char *ok[] = {"kurrentdb", "kurrent", "kdb", "esdb", "KurrentDB", "ESDB"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char s[128];
        snprintf(s, sizeof s, "%s://localhost:2113?tls=false", ok[i]);
        CHECK_RC(parse(s), 0);
        CHECK(u.discover == 0);
        snprintf(s, sizeof s, "%s+discover://localhost:2113?tls=false", ok[i]);
        CHECK_RC(parse(s), 0);
        CHECK(u.discover == 1);
    }
    const char *bad[] = {"http://h?tls=false",      "kurrentdb:/h?tls=false",        "h:2113?tls=false",
                         "+discover://h?tls=false", "kurrentdb+disco://h?tls=false", "://h?tls=false",
                         "tcp://h:1113?tls=false"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_RC(parse(bad[i]), FACTUM_EBADURL);
        CHECK(strstr(err, "not a connection string") != NULL);
    }
}

static void t_hosts(void)
{
    CHECK_RC(parse("kurrentdb://localhost?tls=false"), 0);
    CHECK(u.n_hosts == 1 && !strcmp(u.hosts[0].name, "localhost") && u.hosts[0].port == 2113);
    CHECK_RC(parse("kurrentdb://127.0.0.1:1234/?tls=false"), 0);
    CHECK(u.n_hosts == 1 && !strcmp(u.hosts[0].name, "127.0.0.1") && u.hosts[0].port == 1234);
    CHECK_RC(parse("esdb+discover://node1.example.com:2111,node2.example.com,10.0.0.3:2113?tls=false"), 0);
    CHECK(u.n_hosts == 3);
    CHECK(!strcmp(u.hosts[0].name, "node1.example.com") && u.hosts[0].port == 2111);
    CHECK(!strcmp(u.hosts[1].name, "node2.example.com") && u.hosts[1].port == 2113);
    CHECK(!strcmp(u.hosts[2].name, "10.0.0.3") && u.hosts[2].port == 2113);
    CHECK_RC(parse("kurrentdb://[::1]:2115,[fe80::1%eth0]?tls=false"), 0);
    CHECK(u.n_hosts == 2 && !strcmp(u.hosts[0].name, "::1") && u.hosts[0].port == 2115);
    CHECK(!strcmp(u.hosts[1].name, "fe80::1%eth0") && u.hosts[1].port == 2113);
    CHECK_RC(parse("kurrentdb://h:65535?tls=false"), 0);
    CHECK(u.hosts[0].port == 65535);
    CHECK_RC(parse("kurrentdb://under_score-host:1?tls=false"), 0);
    /* Without a query at all: TLS, as in KurrentDB's clients. */
    CHECK_RC(parse("kurrentdb://h:1"), 0);
    CHECK(u.tls == 1 && u.tls_verify_cert == 1 && u.ca_file[0] == 0 && u.user_cert_file[0] == 0);

    const char *bad[] = {
        "kurrentdb://?tls=false",
        "kurrentdb://:2113?tls=false",
        "kurrentdb://h:0?tls=false",
        "kurrentdb://h:65536?tls=false",
        "kurrentdb://h:?tls=false",
        "kurrentdb://h:12x?tls=false",
        "kurrentdb://h:-1?tls=false",
        "kurrentdb://a,,b?tls=false",
        "kurrentdb://a,?tls=false",
        "kurrentdb://,a?tls=false",
        "kurrentdb://::1?tls=false",
        "kurrentdb://[::1?tls=false",
        "kurrentdb://[::1]x?tls=false",
        "kurrentdb://[zz::1]?tls=false",
        "kurrentdb://[]:1?tls=false",
        "kurrentdb://h/path?tls=false",
        "kurrentdb://h h?tls=false",
        "kurrentdb://h\x01?tls=false",
        "kurrentdb://h:99999999999999999999?tls=false",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i]);
        CHECK_RC(rc, FACTUM_EBADURL);
        if (rc != FACTUM_EBADURL) fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK(err[0] != 0);
    }
    /* More hosts than the client keeps. */
    char many[2048] = "kurrentdb://";
    for (int i = 0; i <= CLIENT_MAX_HOSTS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sh%d", i ? "," : "", i);
    strcat(many, "?tls=false");
    CHECK_RC(parse(many), FACTUM_EBADURL);
    /* A host name longer than DNS allows. */
    char lng[400] = "kurrentdb://";
    memset(lng + strlen(lng), 'a', 300);
    lng[12 + 300] = 0;
    strcat(lng, "?tls=false");
    CHECK_RC(parse(lng), FACTUM_EBADURL);
}

static void t_credentials(void)
{
    CHECK_RC(parse("kurrentdb://admin:changeit@localhost:2113?tls=false"), 0);
    CHECK(u.has_credentials == 1 && u.n_hosts == 1 && !strcmp(u.hosts[0].name, "localhost"));
    CHECK_RC(parse("kurrentdb://user@h1,h2?tls=false"), 0);
    CHECK(u.has_credentials == 1 && u.n_hosts == 2);
    CHECK_RC(parse("kurrentdb://us@er:p@ss@h?tls=false"), 0); /* up to the last '@' */
    CHECK(!strcmp(u.hosts[0].name, "h"));
    CHECK(!strcmp(u.username, "us@er") && !strcmp(u.password, "p@ss"));
    CHECK_RC(parse("kurrentdb://h?tls=false"), 0);
    CHECK(u.has_credentials == 0 && u.username[0] == 0 && u.password[0] == 0);
    CHECK_RC(parse("kurrentdb://admin:changeit@h"), 0);
    CHECK(!strcmp(u.username, "admin") && !strcmp(u.password, "changeit") && u.tls == 1);
    /* The password may hold ':' (the user name may not); both are percent-decoded. */
    CHECK_RC(parse("kurrentdb://a%40b:p%3Aw:x%2F%zz@h"), 0);
    CHECK(!strcmp(u.username, "a@b") && !strcmp(u.password, "p:w:x/%zz"));
    CHECK_RC(parse("kurrentdb://onlyuser@h"), 0);
    CHECK(!strcmp(u.username, "onlyuser") && u.password[0] == 0 && u.has_credentials);
    CHECK_RC(parse("kurrentdb://a%3Ab:pw@h"), FACTUM_EBADURL); /* a ':' in the user name */
    CHECK_RC(parse("kurrentdb://a%0Ab:pw@h"), FACTUM_EBADURL); /* a control character */
    CHECK_RC(parse("kurrentdb://a:p%00w@h"), FACTUM_EBADURL);
    char lng[600] = "kurrentdb://";
    memset(lng + 12, 'u', 300);
    strcpy(lng + 312, ":p@h");
    CHECK_RC(parse(lng), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://@h?tls=false"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://:pw@h?tls=false"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://user:pw@?tls=false"), FACTUM_EBADURL);
}

static void t_options(void)
{
    CHECK_RC(parse("kurrentdb://h?tls=false"), 0);
    CHECK(u.default_deadline_ms == -1 && u.connection_name[0] == 0);
    CHECK_RC(parse("kurrentdb://h?TLS=FALSE"), 0);
    CHECK_RC(parse("kurrentdb://h?tls=true&tls=false"), 0); /* the last wins */
    CHECK_RC(parse("kurrentdb://h?tls=false&&keepAliveInterval=10000&"), 0);
    CHECK_RC(parse("kurrentdb://h?keepAliveInterval=10000&keepAliveTimeout=10000&nodePreference=leader"
                   "&tlsVerifyCert=false&maxDiscoverAttempts=3&discoveryInterval=100&gossipTimeout=5"
                   "&throwOnAppendFailure=true&someFutureOption=x&tls=false"),
             0);
    CHECK_RC(parse("kurrentdb://h?tls=false&defaultDeadline=2500&connectionName=my-app"), 0);
    CHECK(u.default_deadline_ms == 2500 && !strcmp(u.connection_name, "my-app"));
    CHECK_RC(parse("kurrentdb://h?tls=false&DEFAULTDEADLINE=0"), 0);
    CHECK(u.default_deadline_ms == 0);

    CHECK(u.tls == 0);
    CHECK_RC(parse("kurrentdb://h"), 0);
    CHECK(u.tls == 1);
    CHECK_RC(parse("kurrentdb://h?keepAliveInterval=1"), 0);
    CHECK(u.tls == 1);
    CHECK_RC(parse("kurrentdb://h?tls=true"), 0);
    CHECK(u.tls == 1);
    CHECK_RC(parse("kurrentdb://h?tls=false&tls=true"), 0);
    CHECK(u.tls == 1);
    /* The TLS options, as KurrentDB's clients name them (keys in any case). */
    CHECK_RC(parse("kurrentdb://admin:changeit@localhost:2113?tls=true&tlsCAFile=/certs/ca/ca.crt"
                   "&tlsVerifyCert=true&userCertFile=/c/user-admin.crt&userKeyFile=/c/user-admin.key"),
             0);
    CHECK(!strcmp(u.ca_file, "/certs/ca/ca.crt") && u.tls_verify_cert == 1);
    CHECK(!strcmp(u.user_cert_file, "/c/user-admin.crt") && !strcmp(u.user_key_file, "/c/user-admin.key"));
    CHECK_RC(parse("kurrentdb://h?TLSCAFILE=my%20certs/ca.crt&TLSVERIFYCERT=FALSE"), 0);
    CHECK(!strcmp(u.ca_file, "my certs/ca.crt") && u.tls_verify_cert == 0);
    CHECK_RC(parse("kurrentdb://h?tls=false&tlsCAFile=/x"), 0); /* accepted, unused */
    CHECK(u.tls == 0);
    CHECK_RC(parse("kurrentdb://h?userCertFile=/c.crt"), FACTUM_EBADURL);
    CHECK(strstr(err, "userCertFile and userKeyFile go together") != NULL);
    CHECK_RC(parse("kurrentdb://h?userKeyFile=/c.key"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tlsCAFile="), FACTUM_EBADURL);
    CHECK(strstr(err, "tlsCAFile is empty") != NULL);
    CHECK_RC(parse("kurrentdb://h?tlsCAFile=a%0Ab"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tlsVerifyCert=maybe"), FACTUM_EBADURL);
    CHECK(strstr(err, "tlsVerifyCert must be true or false") != NULL);
    char longfile[1200] = "kurrentdb://h?tlsCAFile=";
    memset(longfile + strlen(longfile), 'f', 1100);
    CHECK_RC(parse(longfile), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tls=no"), FACTUM_EBADURL);
    CHECK(strstr(err, "true or false") != NULL);
    CHECK_RC(parse("kurrentdb://h?tls"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?=false"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tls=false&defaultDeadline=soon"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tls=false&defaultDeadline=-5"), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tls=false&defaultDeadline=99999999999"), FACTUM_EBADURL);
    char name[256];
    snprintf(name, sizeof name, "kurrentdb://h?tls=false&connectionName=%0200d", 7);
    CHECK_RC(parse(name), FACTUM_EBADURL);
    CHECK_RC(parse("kurrentdb://h?tls=false&connectionName=a\tb"), FACTUM_EBADURL);
    CHECK_RC(parse(""), FACTUM_EBADURL);
    CHECK_RC(client_url_parse(NULL, &u, err, sizeof err), FACTUM_EBADURL);
    /* A tiny or absent error buffer is fine. */
    char tiny[4];
    CHECK_RC(client_url_parse("nope", &u, tiny, sizeof tiny), FACTUM_EBADURL);
    CHECK(strlen(tiny) == 3);
    CHECK_RC(client_url_parse("nope", &u, NULL, 0), FACTUM_EBADURL);
}

static void t_connect_refuses(void)
{
    /* factum_client_connect fails on the string alone, and says why. */
    factum_client *c = (factum_client *)&c;
    CHECK_RC(factum_client_connect("kurrentdb://localhost:2113?userCertFile=/x", NULL, &c), FACTUM_EBADURL);
    CHECK(c == NULL);
    CHECK(strstr(factum_client_last_error(NULL), "userKeyFile") != NULL);
    CHECK_RC(factum_client_connect(NULL, NULL, &c), FACTUM_EBADURL);
    CHECK_RC(factum_client_connect("kurrentdb://h?tls=false", NULL, NULL), FACTUM_EINVAL);
    /* ... or on the TLS files, before any connection is tried. */
    CHECK_RC(factum_client_connect("kurrentdb://127.0.0.1:1?tlsCAFile=/nonexistent/ca.crt", NULL, &c), FACTUM_ETLS);
    CHECK(strstr(factum_client_last_error(NULL), "cannot read tlsCAFile '/nonexistent/ca.crt'") != NULL);
    char tmpl[] = "/tmp/factum-client-url-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    CHECK(write(fd, "not a certificate\n", 18) == 18);
    close(fd);
    char url[256];
    snprintf(url, sizeof url, "kurrentdb://127.0.0.1:1?tlsCAFile=%s", tmpl);
    CHECK_RC(factum_client_connect(url, NULL, &c), FACTUM_ETLS);
    CHECK(strstr(factum_client_last_error(NULL), "holds no PEM certificate") != NULL);
    snprintf(url, sizeof url, "kurrentdb://127.0.0.1:1?tlsVerifyCert=false&userCertFile=%s&userKeyFile=%s", tmpl,
             tmpl);
    CHECK_RC(factum_client_connect(url, NULL, &c), FACTUM_ETLS);
    CHECK(strstr(factum_client_last_error(NULL), "userCertFile") != NULL);
    unlink(tmpl);
    /* Options override the string, and are checked as it is. */
    factum_client_options o;
    factum_client_options_init(&o);
    CHECK(o.timeout_ms == FACTUM_CLIENT_DEFAULT_TIMEOUT && o.connect_timeout_ms == 5000);
    CHECK(o.username == NULL && o.password == NULL && o.tls_ca_file == NULL);
    o.tls_ca_file = "/nonexistent/other.crt";
    CHECK_RC(factum_client_connect("kurrentdb://127.0.0.1:1?tlsCAFile=/x", &o, &c), FACTUM_ETLS);
    CHECK(strstr(factum_client_last_error(NULL), "/nonexistent/other.crt") != NULL);
    factum_client_options_init(&o);
    o.username = "a:b";
    CHECK_RC(factum_client_connect("kurrentdb://127.0.0.1:1?tls=false", &o, &c), FACTUM_EBADURL);
    o.username = "admin";
    o.user_cert_file = "/x.crt";
    CHECK_RC(factum_client_connect("kurrentdb://127.0.0.1:1?tls=false", &o, &c), FACTUM_EBADURL);
    /* The client's codes have messages of their own. */
    const int codes[] = {FACTUM_ECONNECT, FACTUM_EPROTOCOL, FACTUM_ESERVER,          FACTUM_EUNSUPPORTED,
                         FACTUM_ETIMEDOUT, FACTUM_EBADURL,  FACTUM_ETLS, FACTUM_EUNAUTHENTICATED,
                         FACTUM_EACCESSDENIED};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        CHECK(strncmp(factum_strerror(codes[i]), "Unknown", 7) != 0 &&
              strcmp(factum_strerror(codes[i]), "unknown error"));
}

int main(void)
{
    RUN(t_schemes);
    RUN(t_hosts);
    RUN(t_credentials);
    RUN(t_options);
    RUN(t_connect_refuses);
    return harness_done();
}
