/*
 * cmd_certs.c - `factum certs`: development certificates, what KurrentDB's
 * es-gencert-cli makes, with its command and option names (create-ca,
 * create-node -ip-addresses/-dns-names, create-user -username, -out,
 * -days, -force; one or two dashes) and its file names (ca/ca.crt and
 * ca.key, node.crt and node.key, user-<name>/user-<name>.crt and .key),
 * so that a KurrentDB user finds what they know; `factum certs dev` makes
 * the three at once for a server on this machine. Everything is done
 * in-process with OpenSSL 3 (EVP, X509), never by running openssl.
 *
 * Keys are ECDSA P-256 by default (docs/adr/0010-dev-certificates.md),
 * RSA 2048 with --key-type rsa; a CA key of either kind (es-gencert-cli's
 * PKCS#1 RSA keys included) signs. Keys are written PKCS#8 PEM, mode 0600.
 *
 * Invariants:
 *   CERTS-1 An existing file is never replaced without --force: every
 *           target is checked before a key is generated, and each file is
 *           written to a temporary name and linked into place (link()
 *           fails if the name appeared meanwhile), so no run leaves a
 *           certificate beside a key it does not match.
 *   CERTS-2 A private key is never readable by others, not even briefly:
 *           the temporary file is created 0600 (mkstemp) and stays so.
 *   CERTS-3 Nothing is written when an argument is wrong: every value is
 *           checked (IP addresses, DNS names, user names, days, the CA
 *           pair) before the first file is created.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"

static const char certs_help[] =
    "usage: factum certs create-ca [--out DIR] [--days N] [--key-type ec|rsa] [--force]\n"
    "                              [--ca-certificate F --ca-key F]\n"
    "       factum certs create-node [--ca-certificate F] [--ca-key F] [--out DIR]\n"
    "                                [--ip-addresses A,B] [--dns-names N,M] [--common-name CN]\n"
    "                                [--days N] [--key-type ec|rsa] [--force]\n"
    "       factum certs create-user --username NAME [--ca-certificate F] [--ca-key F] [--out DIR]\n"
    "                                [--days N] [--key-type ec|rsa] [--force]\n"
    "       factum certs dev [--out DIR] [--days N] [--key-type ec|rsa] [--force]\n"
    "\n"
    "Create development certificates, as KurrentDB's es-gencert-cli does (same commands, options\n"
    "and file names; options may be written -name as there, or --name):\n"
    "\n"
    "  create-ca    a certificate authority: DIR/ca.crt and DIR/ca.key (default DIR ./ca,\n"
    "               valid 5 years); with --ca-certificate and --ca-key, an intermediate CA signed\n"
    "               by that one (the certificates it signs then carry it after themselves)\n"
    "  create-node  a server certificate signed by the CA, for factumd's --certificate-file and\n"
    "               --certificate-private-key-file: DIR/node.crt and DIR/node.key (default DIR\n"
    "               ./node1, or the first free ./nodeN; valid 1 year). Give the addresses and names\n"
    "               clients connect to: the certificate is good for those only (and usable as a\n"
    "               client certificate too, as KurrentDB's nodes use theirs)\n"
    "  create-user  a client certificate for mutual TLS whose subject names the user (CN=NAME):\n"
    "               DIR/user-NAME.crt and DIR/user-NAME.key (default DIR ./user-NAME; 1 year)\n"
    "  dev          all three for a server on this machine: DIR/ca, DIR/node (localhost,\n"
    "               127.0.0.1, ::1) and DIR/user-admin (default DIR ./certs)\n"
    "\n"
    "  --ca-certificate F, --ca-key F  the signing CA (default ./ca/ca.crt, ./ca/ca.key)\n"
    "  --ip-addresses A,B   IPv4/IPv6 addresses of the node (subjectAltName IP)\n"
    "  --dns-names N,M      host names of the node (subjectAltName DNS; '*.example.com' allowed)\n"
    "  --common-name CN     the node certificate's subject CN (default eventstoredb-node, the name\n"
    "                       KurrentDB reserves for its nodes)\n"
    "  --days N             validity in days (1..36500)\n"
    "  --key-type ec|rsa    ECDSA P-256 (default) or RSA 2048\n"
    "  --force              replace existing files (never done without it)\n"
    "\n"
    "Private keys are written with mode 0600, certificates 0644, in PEM.\n";

static const cli_opt ca_opts[] = {
    {"out", CLI_ARG},           {"days", CLI_ARG},  {"key-type", CLI_ARG}, {"force", 0},
    {"ca-certificate", CLI_ARG}, {"ca-key", CLI_ARG},
};
static const cli_opt dev_opts[] = {
    {"out", CLI_ARG}, {"days", CLI_ARG}, {"key-type", CLI_ARG}, {"force", 0},
};
static const cli_opt node_opts[] = {
    {"out", CLI_ARG},           {"days", CLI_ARG},         {"key-type", CLI_ARG},  {"force", 0},
    {"ca-certificate", CLI_ARG}, {"ca-key", CLI_ARG},      {"ip-addresses", CLI_ARG}, {"dns-names", CLI_ARG},
    {"common-name", CLI_ARG},
};
static const cli_opt user_opts[] = {
    {"out", CLI_ARG},           {"days", CLI_ARG},  {"key-type", CLI_ARG}, {"force", 0},
    {"ca-certificate", CLI_ARG}, {"ca-key", CLI_ARG}, {"username", CLI_ARG},
};

#define MAX_SANS 64

/* What one certificate is to be. */
typedef struct cert_spec {
    enum { KIND_CA, KIND_NODE, KIND_USER } kind;
    const char *cn;
    int days;
    int rsa;
    /* subjectAltName, "IP:a,DNS:b" (nodes) */
    char san[4096];
} cert_spec;

/* ---- OpenSSL helpers ------------------------------------------------- */

/* The reason of OpenSSL's last error, for a message (and the queue cleared). */
static const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, n, "unknown reason");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, n, "%s", r ? r : "unknown reason");
    }
    ERR_clear_error();
    return buf;
}

static EVP_PKEY *new_key(int rsa)
{
    return rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext) return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A 128-bit positive random serial number, as es-gencert-cli uses. */
static int set_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return -1;
    raw[0] &= 0x7f;
    raw[0] |= 0x40; /* positive, and 16 bytes long */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn) return -1;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!ai) return -1;
    int ok = X509_set_serialNumber(x, ai);
    ASN1_INTEGER_free(ai);
    return ok ? 0 : -1;
}

/* Make and sign the certificate of `key` per spec; issuer NULL: self-signed
 * (a CA). */
static X509 *make_cert(const cert_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    if (!x) return NULL;
    if (!X509_set_version(x, 2) || set_serial(x)) goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), s->days, 0, NULL))
        goto fail;
    if (!X509_set_pubkey(x, key)) goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (s->kind == KIND_CA &&
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"factum", -1, -1, 0))
        goto fail;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1, 0))
        goto fail;
    if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name)) goto fail;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    int rc = 0;
    rc |= add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    rc |= add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    if (s->kind == KIND_CA) {
        /* An intermediate signs leaves only (pathlen 0). */
        rc |= add_ext(x, &ctx, NID_basic_constraints, issuer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE");
        rc |= add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        rc |= add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        /* keyEncipherment is for RSA key exchange; an EC key only signs. */
        rc |= add_ext(x, &ctx, NID_key_usage,
                      s->rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature");
        rc |= add_ext(x, &ctx, NID_ext_key_usage, s->kind == KIND_NODE ? "serverAuth,clientAuth" : "clientAuth");
        if (s->kind == KIND_NODE) rc |= add_ext(x, &ctx, NID_subject_alt_name, s->san);
    }
    if (rc) goto fail;
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256())) goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

/* ---- files (CERTS-1, CERTS-2) ------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(path, 0755) && errno != EEXIST) return -errno;
    struct stat st;
    if (stat(path, &st)) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Write the PEM of a certificate or a key to path: a temporary file in the
 * same directory (0600), fsync, then into place (link: never over an
 * existing file; rename with force). */
static int write_pem(cli_ctx *c, const char *path, X509 *cert, X509 *chain, EVP_PKEY *key, mode_t mode, int force)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_msg(c, "cannot create a file beside '%s': %s", path, strerror(errno));
        return -1;
    }
    BIO *b = BIO_new(BIO_s_mem());
    int ok = b && (cert ? PEM_write_bio_X509(b, cert) && (!chain || PEM_write_bio_X509(b, chain))
                        : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
    char *data = NULL;
    long len = ok ? BIO_get_mem_data(b, &data) : 0;
    int err = 0;
    if (!ok || len <= 0) {
        err = ENOMEM;
    } else {
        for (long off = 0; off < len && !err;) {
            ssize_t w = write(fd, data + off, (size_t)(len - off));
            if (w < 0 && errno != EINTR) err = errno;
            if (w > 0) off += w;
        }
    }
    if (b) {
        BIO_set_close(b, BIO_CLOSE);
        OPENSSL_cleanse(data, (size_t)(len > 0 ? len : 0));
        BIO_free(b);
    }
    if (!err && fchmod(fd, mode)) err = errno;
    if (!err && fsync(fd)) err = errno;
    if (close(fd) && !err) err = errno;
    if (!err) {
        if (force) {
            if (rename(tmp, path)) err = errno;
        } else if (link(tmp, path)) {
            err = errno;
        }
    }
    unlink(tmp); /* after link() the name in place remains; after rename() this fails harmlessly */
    if (err == EEXIST) {
        cli_msg(c, "'%s' exists; not replaced (give --force to replace it)", path);
        return -1;
    }
    if (err) {
        cli_msg(c, "cannot write '%s': %s", path, strerror(err));
        return -1;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

/* CERTS-1: refuse before anything is generated when a target exists. */
static int check_free(cli_ctx *c, const char *path, int force)
{
    struct stat st;
    if (force || lstat(path, &st)) return 0;
    cli_msg(c, "'%s' exists; not replaced (give --force to replace it)", path);
    return -1;
}

/* ---- reading the CA ------------------------------------------------------ */

static int load_ca(cli_ctx *c, const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key)
{
    char why[256];
    *cert = NULL;
    *key = NULL;
    BIO *b = BIO_new_file(cert_path, "r");
    if (!b) {
        cli_msg(c, "cannot read the CA certificate '%s': %s (create one with 'factum certs create-ca', or "
                   "give --ca-certificate)",
                cert_path, strerror(errno ? errno : ENOENT));
        ERR_clear_error();
        return -1;
    }
    *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!*cert) {
        cli_msg(c, "'%s' is not a PEM certificate: %s", cert_path, ssl_reason(why, sizeof why));
        return -1;
    }
    b = BIO_new_file(key_path, "r");
    if (!b) {
        cli_msg(c, "cannot read the CA key '%s': %s (give --ca-key)", key_path, strerror(errno ? errno : ENOENT));
        ERR_clear_error();
        goto fail;
    }
    *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!*key) {
        cli_msg(c, "'%s' is not an unencrypted PEM private key: %s", key_path, ssl_reason(why, sizeof why));
        goto fail;
    }
    if (X509_check_private_key(*cert, *key) != 1) {
        ERR_clear_error();
        cli_msg(c, "the CA key '%s' does not belong to the CA certificate '%s'", key_path, cert_path);
        goto fail;
    }
    if (X509_check_ca(*cert) == 0) {
        cli_msg(c, "'%s' is not a CA certificate (it may not sign others)", cert_path);
        goto fail;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(*cert)) <= 0) {
        cli_msg(c, "the CA certificate '%s' has expired; create a new CA", cert_path);
        goto fail;
    }
    return 0;
fail:
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return -1;
}

/* ---- checking arguments (CERTS-3) ---------------------------------------- */

static int parse_days(cli_ctx *c, const cli_args *a, int dflt, int *out)
{
    const char *v = cli_get(a, "days");
    *out = dflt;
    if (!v) return CLI_OK;
    uint64_t d;
    if (cli_parse_u64(c, "--days", v, &d)) return CLI_USAGE;
    if (d < 1 || d > 36500) return cli_usage(c, "--days: %s is outside 1..36500", v);
    *out = (int)d;
    return CLI_OK;
}

static int parse_key_type(cli_ctx *c, const cli_args *a, int *rsa)
{
    const char *v = cli_get(a, "key-type");
    *rsa = 0;
    if (!v || !strcmp(v, "ec") || !strcmp(v, "ecdsa")) return CLI_OK;
    if (!strcmp(v, "rsa")) {
        *rsa = 1;
        return CLI_OK;
    }
    return cli_usage(c, "--key-type: '%s' is not ec or rsa", v);
}

static int dns_name_ok(const char *s, size_t n)
{
    if (!n || n > 253) return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (!label) return 0;
            label = 0;
            continue;
        }
        int wildcard = ch == '*' && i == 0 && n > 2 && s[1] == '.';
        if (!wildcard && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
            ch != '-' && ch != '_')
            return 0;
        if (++label > 63) return 0;
    }
    return label > 0;
}

/* Append the comma-separated list `v` to spec->san as "IP:" or "DNS:" items. */
static int add_sans(cli_ctx *c, cert_spec *s, const char *v, int ip, int *count)
{
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[256];
        if (n == 0 || n >= sizeof item)
            return cli_usage(c, "%s: empty or overlong item in '%s'", ip ? "--ip-addresses" : "--dns-names", v);
        memcpy(item, p, n);
        item[n] = 0;
        if (ip) {
            unsigned char raw[16];
            if (inet_pton(AF_INET, item, raw) != 1 && inet_pton(AF_INET6, item, raw) != 1)
                return cli_usage(c, "--ip-addresses: '%s' is not an IPv4 or IPv6 address", item);
        } else if (!dns_name_ok(item, n)) {
            return cli_usage(c, "--dns-names: '%s' is not a host name", item);
        }
        if (++*count > MAX_SANS) return cli_usage(c, "more than %d addresses and names", MAX_SANS);
        size_t used = strlen(s->san);
        int w = snprintf(s->san + used, sizeof s->san - used, "%s%s:%s", used ? "," : "", ip ? "IP" : "DNS", item);
        if (w < 0 || (size_t)w >= sizeof s->san - used) return cli_usage(c, "too many addresses and names");
        p = comma ? comma + 1 : p + n;
        if (comma && !*p)
            return cli_usage(c, "%s: empty item at the end of '%s'", ip ? "--ip-addresses" : "--dns-names", v);
    }
    return CLI_OK;
}

/* A user name for CN=NAME and the file name user-NAME: printable, no '/'. */
static int user_name_ok(cli_ctx *c, const char *u)
{
    size_t n = strlen(u);
    if (!n) return cli_usage(c, "--username: empty");
    if (n > 64) return cli_usage(c, "--username: longer than 64 bytes (the limit of a certificate's CN)");
    if (!strcmp(u, ".") || !strcmp(u, "..")) return cli_usage(c, "--username: '%s' is not a user name", u);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/')
            return cli_usage(c, "--username: control characters and '/' are not allowed");
    }
    return CLI_OK;
}

static const char *validity_text(int days, char buf[32])
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%d", &tm);
    return buf;
}

/* ---- the commands ---------------------------------------------------------- */

/* Generate a key and its certificate per spec and write DIR/BASE.crt and
 * DIR/BASE.key. */
static int issue(cli_ctx *c, const cert_spec *s, X509 *ca, EVP_PKEY *ca_key, const char *dir, const char *base,
                 int force)
{
    char crt[4096], key_path[4096], why[256];
    if (snprintf(crt, sizeof crt, "%s/%s.crt", dir, base) >= (int)sizeof crt ||
        snprintf(key_path, sizeof key_path, "%s/%s.key", dir, base) >= (int)sizeof key_path)
        return cli_usage(c, "--out: the path is too long");
    if (check_free(c, crt, force) || check_free(c, key_path, force)) return CLI_FAIL;
    int rc = mkdir_p(dir);
    if (rc) {
        cli_msg(c, "cannot create the directory '%s': %s", dir, strerror(-rc));
        return CLI_FAIL;
    }
    EVP_PKEY *key = new_key(s->rsa);
    if (!key) {
        cli_msg(c, "cannot generate a key: %s", ssl_reason(why, sizeof why));
        return CLI_FAIL;
    }
    X509 *x = make_cert(s, key, ca, ca_key);
    if (!x) {
        cli_msg(c, "cannot make the certificate: %s", ssl_reason(why, sizeof why));
        EVP_PKEY_free(key);
        return CLI_FAIL;
    }
    int code = CLI_OK;
    /* The key first: a certificate without its key is of no use, the
     * reverse would be worse (a key nobody can tell the purpose of is just
     * removed). */
    /* A leaf signed by an intermediate carries it after itself, as servers
     * (--certificate-file) and clients (userCertFile) send their chain. */
    X509 *chain = ca && s->kind != KIND_CA && X509_NAME_cmp(X509_get_subject_name(ca), X509_get_issuer_name(ca))
                      ? ca
                      : NULL;
    if (write_pem(c, key_path, NULL, NULL, key, 0600, force) || write_pem(c, crt, x, chain, NULL, 0644, force)) {
        code = CLI_FAIL;
    } else {
        sync_dir(dir);
        char until[32];
        if (ca && X509_cmp_time(X509_get0_notAfter(ca), &(time_t){time(NULL) + (time_t)s->days * 86400}) < 0)
            cli_msg(c, "warning: the CA expires before this certificate; clients will refuse it from then");
        printf("created %s and %s (%s, valid until %s)\n", crt, key_path, s->rsa ? "RSA 2048" : "ECDSA P-256",
               validity_text(s->days, until));
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return code;
}

static int create_ca(cli_ctx *c, const char *dir, int days, int rsa, int force, X509 *parent, EVP_PKEY *parent_key)
{
    cert_spec s = {.kind = KIND_CA, .days = days, .rsa = rsa};
    unsigned char r[4];
    char cn[64];
    if (RAND_bytes(r, sizeof r) != 1) {
        cli_msg(c, "no random numbers");
        return CLI_FAIL;
    }
    snprintf(cn, sizeof cn, "factum dev %sCA %02x%02x%02x%02x", parent ? "intermediate " : "", r[0], r[1], r[2], r[3]);
    s.cn = cn;
    return issue(c, &s, parent, parent_key, dir, "ca", force);
}

/* The first ./nodeN that does not exist (es-gencert-cli's default). */
static int free_node_dir(char *buf, size_t n)
{
    for (int i = 1; i <= 100; i++) {
        struct stat st;
        snprintf(buf, n, "node%d", i);
        if (stat(buf, &st) && errno == ENOENT) return 0;
    }
    return -1;
}

static int cmd_create_ca(cli_ctx *c, const cli_args *a)
{
    int days, rsa, rc;
    if ((rc = parse_days(c, a, 5 * 365 + 1, &days)) || (rc = parse_key_type(c, a, &rsa))) return rc;
    const char *out = cli_get(a, "out");
    const char *cc = cli_get(a, "ca-certificate"), *ck = cli_get(a, "ca-key");
    if (!cc != !ck) return cli_usage(c, "an intermediate CA needs both --ca-certificate and --ca-key");
    if (!cc) return create_ca(c, out ? out : "ca", days, rsa, cli_has(a, "force"), NULL, NULL);
    /* An intermediate CA, signed by the given one (es-gencert-cli's create-ca -ca-certificate -ca-key). */
    X509 *parent;
    EVP_PKEY *parent_key;
    if (load_ca(c, cc, ck, &parent, &parent_key)) return CLI_FAIL;
    rc = create_ca(c, out ? out : "ca", days, rsa, cli_has(a, "force"), parent, parent_key);
    X509_free(parent);
    EVP_PKEY_free(parent_key);
    return rc;
}

static int cmd_create_node(cli_ctx *c, const cli_args *a)
{
    cert_spec s = {.kind = KIND_NODE};
    int rc, count = 0;
    if ((rc = parse_days(c, a, 365, &s.days)) || (rc = parse_key_type(c, a, &s.rsa))) return rc;
    const char *ips = cli_get(a, "ip-addresses"), *dns = cli_get(a, "dns-names");
    if (ips && (rc = add_sans(c, &s, ips, 1, &count))) return rc;
    if (dns && (rc = add_sans(c, &s, dns, 0, &count))) return rc;
    if (!count)
        return cli_usage(c, "give at least one address or name of the node with --ip-addresses or --dns-names");
    s.cn = cli_get(a, "common-name") ? cli_get(a, "common-name") : "eventstoredb-node";
    if (!*s.cn || strlen(s.cn) > 64) return cli_usage(c, "--common-name: empty or longer than 64 bytes");
    char dir[4096];
    const char *out = cli_get(a, "out");
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
    } else if (free_node_dir(dir, sizeof dir)) {
        return cli_usage(c, "node1 .. node100 all exist: give --out");
    }
    X509 *ca;
    EVP_PKEY *ca_key;
    const char *cc = cli_get(a, "ca-certificate"), *ck = cli_get(a, "ca-key");
    if (load_ca(c, cc ? cc : "ca/ca.crt", ck ? ck : "ca/ca.key", &ca, &ca_key)) return CLI_FAIL;
    rc = issue(c, &s, ca, ca_key, dir, "node", cli_has(a, "force"));
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

static int create_user(cli_ctx *c, const char *user, const char *ca_crt, const char *ca_key_path,
                       const char *out, int days, int rsa, int force)
{
    cert_spec s = {.kind = KIND_USER, .cn = user, .days = days, .rsa = rsa};
    char base[80], dir[4096];
    snprintf(base, sizeof base, "user-%s", user);
    snprintf(dir, sizeof dir, "%s", out ? out : base);
    X509 *ca;
    EVP_PKEY *ca_key;
    if (load_ca(c, ca_crt, ca_key_path, &ca, &ca_key)) return CLI_FAIL;
    int rc = issue(c, &s, ca, ca_key, dir, base, force);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

static int cmd_create_user(cli_ctx *c, const cli_args *a)
{
    int days, rsa, rc;
    if ((rc = parse_days(c, a, 365, &days)) || (rc = parse_key_type(c, a, &rsa))) return rc;
    const char *user = cli_get(a, "username");
    if (!user) return cli_usage(c, "give the user with --username NAME");
    if ((rc = user_name_ok(c, user))) return rc;
    const char *cc = cli_get(a, "ca-certificate"), *ck = cli_get(a, "ca-key");
    return create_user(c, user, cc ? cc : "ca/ca.crt", ck ? ck : "ca/ca.key", cli_get(a, "out"), days, rsa,
                       cli_has(a, "force"));
}

/* ca/, node/ and user-admin/ under one directory, for a server here. */
static int cmd_dev(cli_ctx *c, const cli_args *a)
{
    int days, rsa, rc, count = 0;
    if ((rc = parse_days(c, a, 365, &days)) || (rc = parse_key_type(c, a, &rsa))) return rc;
    const char *out = cli_get(a, "out") ? cli_get(a, "out") : "certs";
    int force = cli_has(a, "force");
    char ca_dir[4096], ca_crt[4200], ca_key[4200], node_dir[4096], user_dir[4096];
    if (snprintf(ca_dir, sizeof ca_dir, "%s/ca", out) >= (int)sizeof ca_dir) return cli_usage(c, "--out: too long");
    snprintf(ca_crt, sizeof ca_crt, "%s/ca.crt", ca_dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", ca_dir);
    snprintf(node_dir, sizeof node_dir, "%s/node", out);
    snprintf(user_dir, sizeof user_dir, "%s/user-admin", out);
    /* CERTS-1 across the three: nothing is made if any of them exists. */
    const char *files[] = {"ca/ca.crt", "ca/ca.key", "node/node.crt", "node/node.key", "user-admin/user-admin.crt",
                           "user-admin/user-admin.key"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        if (check_free(c, p, force)) return CLI_FAIL;
    }
    cert_spec node = {.kind = KIND_NODE, .cn = "eventstoredb-node", .days = days, .rsa = rsa};
    if ((rc = add_sans(c, &node, "127.0.0.1,::1", 1, &count)) || (rc = add_sans(c, &node, "localhost", 0, &count)))
        return rc;
    if ((rc = create_ca(c, ca_dir, days > 5 * 365 + 1 ? days : 5 * 365 + 1, rsa, force, NULL, NULL))) return rc;
    X509 *ca;
    EVP_PKEY *cak;
    if (load_ca(c, ca_crt, ca_key, &ca, &cak)) return CLI_FAIL;
    rc = issue(c, &node, ca, cak, node_dir, "node", force);
    X509_free(ca);
    EVP_PKEY_free(cak);
    if (rc) return rc;
    if ((rc = create_user(c, "admin", ca_crt, ca_key, user_dir, days, rsa, force))) return rc;
    printf("\nstart the server:  factumd --db DATA --certificate-file %s/node.crt \\\n"
           "                     --certificate-private-key-file %s/node.key \\\n"
           "                     --trusted-root-certificates-path %s\n"
           "connect:           factum --server 'kurrentdb://admin:changeit@localhost:2113?tlsCAFile=%s' ...\n",
           node_dir, node_dir, ca_dir, ca_crt);
    return CLI_OK;
}

int cli_cmd_certs(cli_ctx *c, int argc, char **argv)
{
    if (argc < 1) {
        fputs(certs_help, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "-help") || !strcmp(sub, "help"))
        return cli_help(certs_help);
    static const struct {
        const char *name;
        int (*run)(cli_ctx *, const cli_args *);
        const cli_opt *opts;
        size_t n_opts;
    } subs[] = {
        {"create-ca", cmd_create_ca, ca_opts, sizeof ca_opts / sizeof *ca_opts},
        {"create-node", cmd_create_node, node_opts, sizeof node_opts / sizeof *node_opts},
        {"create-user", cmd_create_user, user_opts, sizeof user_opts / sizeof *user_opts},
        {"dev", cmd_dev, dev_opts, sizeof dev_opts / sizeof *dev_opts},
    };
    size_t which = 0;
    while (which < sizeof subs / sizeof *subs && strcmp(subs[which].name, sub))
        which++;
    if (which == sizeof subs / sizeof *subs)
        return cli_usage(c, "unknown subcommand '%s' (create-ca, create-node, create-user, dev; see --help)", sub);
    /* es-gencert-cli's options are Go flags, written -name: take them too. */
    char **args = calloc((size_t)argc, sizeof *args);
    char **owned = calloc((size_t)argc, sizeof *owned);
    if (!args || !owned) {
        free(args);
        free(owned);
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    int n = 0, code;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (w[0] == '-' && w[1] && w[1] != '-' && w[2]) {
            size_t len = strlen(w);
            owned[i] = malloc(len + 2);
            if (!owned[i]) {
                cli_msg(c, "out of memory");
                code = CLI_FAIL;
                goto out;
            }
            owned[i][0] = '-';
            memcpy(owned[i] + 1, w, len + 1);
            args[n++] = owned[i];
        } else {
            args[n++] = argv[i];
        }
    }
    cli_args a;
    code = cli_parse(c, n, args, subs[which].opts, subs[which].n_opts, &a);
    if (code) goto out;
    if (a.help) {
        code = cli_help(certs_help);
    } else if (a.n_pos) {
        code = cli_usage(c, "unexpected argument '%s' (see --help)", a.pos[0]);
    } else {
        code = subs[which].run(c, &a);
    }
    cli_args_free(&a);
out:
    for (int i = 0; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(args);
    return cli_finish_output(c, code);
}
