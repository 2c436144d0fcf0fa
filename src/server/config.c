/*
 * config.c - factumd's settings from the command line, the environment
 * (FACTUM_<NAME>, also KURRENTDB_<NAME> and EVENTSTORE_<NAME> so that a
 * KurrentDB deployment's variables work) and a config file of `Key: value`
 * lines (KurrentDB's YAML keys, e.g. `Db: /var/lib/factum`, `Insecure: true`).
 */
#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "factum.h"

enum { T_STR, T_BOOL, T_INT, T_SIZE, T_LEVEL, T_PROJ };

typedef struct opt {
    const char *name;  /* flag without dashes, lower-case with dashes */
    const char *alias; /* another flag name, or NULL */
    int type;
    size_t off;
    size_t size; /* for strings */
    const char *def;
    const char *help;
} opt;

#define OFF(f) offsetof(srv_config, f)
#define SZ(f)  sizeof(((srv_config *)0)->f)

static const opt opts[] = {
    {"db", NULL, T_STR, OFF(db), SZ(db), "/var/lib/factum", "data directory"},
    {"mem-db", NULL, T_BOOL, OFF(mem_db), 0, "false",
     "keep the data in a temporary directory that is removed at exit (for tests)"},
    {"node-ip", "http-ip", T_STR, OFF(node_ip), SZ(node_ip), "0.0.0.0", "address to listen on"},
    {"node-port", "http-port", T_INT, OFF(node_port), 0, "2113", "port for gRPC and HTTP"},
    {"insecure", NULL, T_BOOL, OFF(insecure), 0, "false",
     "serve cleartext without TLS, authentication or authorization (development only)"},
    {"certificate-file", NULL, T_STR, OFF(certificate_file), SZ(certificate_file), "",
     "the node's certificate (PEM; intermediates after it), required unless --insecure"},
    {"certificate-private-key-file", NULL, T_STR, OFF(certificate_private_key_file),
     SZ(certificate_private_key_file), "", "the node certificate's private key (PEM)"},
    {"certificate-private-key-password", NULL, T_STR, OFF(certificate_private_key_password),
     SZ(certificate_private_key_password), "", "the password of an encrypted private key"},
    {"trusted-root-certificates-path", NULL, T_STR, OFF(trusted_root_certificates_path),
     SZ(trusted_root_certificates_path), "",
     "a directory of trusted root CA certificates (PEM; or one file): the node's and clients' certificates must "
     "chain to one"},
    {"disable-tls", NULL, T_BOOL, OFF(disable_tls), 0, "false",
     "serve cleartext but keep authentication and authorization on (credentials cross the network in the clear)"},
    {"failed-logins-per-minute", NULL, T_INT, OFF(failed_logins_per_minute), 0, "10",
     "failed logins a client address may make (at once, and then per minute) before its logins are refused "
     "without being checked; 0: no limit"},
    {"allow-anonymous-stream-access", NULL, T_BOOL, OFF(allow_anonymous_stream_access), 0, "false",
     "let calls without credentials use streams their ACL opens to $all (otherwise they need a user)"},
    {"allow-anonymous-endpoint-access", NULL, T_BOOL, OFF(allow_anonymous_endpoint_access), 0, "false",
     "let calls without credentials read the statistics endpoints"},
    {"authorization-default-policy-type", NULL, T_STR, OFF(authorization_default_policy_type),
     SZ(authorization_default_policy_type), "acl",
     "acl (stream ACLs and $settings) or streampolicy (prefix rules in $policies), while "
     "$authorization-policy-settings holds no choice"},
    {"relaxed-durability", NULL, T_BOOL, OFF(relaxed), 0, "false",
     "acknowledge appends before fdatasync (fdatasync every 100 ms)"},
    {"commit-mode", NULL, T_INT, OFF(commit_mode), 0, "auto",
     "who makes an append's fdatasync: writer (the writer thread), io-uring (the event loop, through io_uring), "
     "loop (the event loop itself, synchronously: for a fast disk), auto (the loop for every append while the "
     "disk's fdatasync takes at most a tenth of --commit-loop-max-us, for an append that comes alone while it "
     "takes at most --commit-loop-max-us, else the writer thread)"},
    {"commit-loop-max-us", NULL, T_INT, OFF(commit_loop_max_us), 0, "250",
     "commit-mode auto: the longest average fdatasync, in microseconds, that the event loop makes itself "
     "(1..100000)"},
    {"poll-after-answer-us", NULL, T_INT, OFF(poll_after_answer_us), 0, "100",
     "after answering a call, the event loop polls up to this many microseconds for the next request instead "
     "of sleeping (0..10000; 0: sleep at once)"},
    {"io-uring", NULL, T_BOOL, OFF(io_uring), 0, "false", "the same as --commit-mode io-uring (older name)"},
    {"max-append-size", NULL, T_SIZE, OFF(max_append_size), 0, "67108864", "largest append, in bytes"},
    {"max-append-event-size", NULL, T_SIZE, OFF(max_append_event_size), 0, "16777216",
     "largest event (data + metadata), in bytes"},
    {"chunk-size", "segment-size", T_SIZE, OFF(segment_size), 0, "67108864",
     "log segment size for a new database, in bytes"},
    {"max-connections", NULL, T_SIZE, OFF(max_connections), 0, "10000", "concurrent client connections"},
    {"max-concurrent-streams", NULL, T_SIZE, OFF(max_streams), 0, "100",
     "concurrent calls on one connection (HTTP/2 streams: a multiplexing client's subscriptions and calls "
     "together), 1..100000"},
    {"subscription-live-lag", NULL, T_SIZE, OFF(subscription_live_lag), 0, "10000",
     "a live subscription this many events behind the head falls behind and reads from the log"},
    {"reader-threads", NULL, T_INT, OFF(reader_threads), 0, "2",
     "threads that read log pages not in memory for Read calls, catch-ups and parked replays (1..64)"},
    {"cold-reads", NULL, T_INT, OFF(cold_reads), 0, "detect",
     "detect: reads of log pages not in memory go to the reader threads, others stay on the event loop; "
     "always: every such read goes to them; never: all stay on the event loop"},
    {"max-client-memory", NULL, T_SIZE, OFF(max_client_memory), 0, "0",
     "memory all clients together may make the server hold (buffers, requests, queued answers); over it the "
     "connection holding the most is closed. 0: a quarter of the RAM, at most 1 GiB"},
    {"max-connection-memory", NULL, T_SIZE, OFF(max_connection_memory), 0, "0",
     "memory one connection may make the server hold; a call that would go over fails with "
     "RESOURCE_EXHAUSTED. "
     "0: 128 MiB, or more if the append limits need it"},
    {"request-timeout-ms", NULL, T_INT, OFF(request_timeout_ms), 0, "30000",
     "how long an incomplete request may wait for its next byte (HTTP/1.1 request, HTTP/2 preface, gRPC "
     "message)"},
    {"log-level", NULL, T_LEVEL, OFF(log_level), 0, "info", "error, warning, information or debug"},
    {"log-format", NULL, T_STR, 0, 0, "text", "text or json (structured lines)"},
    {"config", NULL, T_STR, OFF(config_file), SZ(config_file), "", "config file of `Key: value` lines"},
    {"shutdown-timeout-ms", NULL, T_INT, OFF(drain_ms), 0, "5000",
     "on SIGTERM, how long calls in flight may take before the server closes"},
    {"run-projections", NULL, T_PROJ, OFF(run_projections), 0, "None",
     "None, System (the five system projections exist; enabled ones run) or All (user projections too)"},
    {"start-standard-projections", NULL, T_BOOL, OFF(start_standard_projections), 0, "false",
     "enable the five system projections at start (with --run-projections System or All)"},
    {"projection-execution-timeout", NULL, T_INT, OFF(projection_execution_timeout), 0, "250",
     "milliseconds a JavaScript projection's handler may take for one event before the projection faults"},
    {"max-projection-state-size", NULL, T_SIZE, OFF(max_projection_state_size), 0, "16777216",
     "largest state (JSON) of a JavaScript projection or of one of its partitions, in bytes"},
    {"projection-heap-mib", NULL, T_INT, OFF(projection_heap_mib), 0, "256",
     "memory a JavaScript projection's engine may use for its heap, in MiB"},
    {"run-readmodels", NULL, T_BOOL, OFF(run_readmodels), 0, "true",
     "keep the read models (SQL tables maintained from the log; docs/readmodels.md) and serve them"},
    {"readmodels-dir", NULL, T_STR, OFF(readmodels_dir), SZ(readmodels_dir), "",
     "directory of the read models' SQLite files (default: <db>/readmodels)"},
    {"backup-dir", NULL, T_STR, OFF(backup_dir), SZ(backup_dir), "",
     "directory under which POST /admin/backup writes backups (each into a directory inside it, named by the "
     "request); empty: backups over HTTP are off"},
    {"scavenge-grace-ms", NULL, T_SIZE, OFF(scavenge_grace_ms), 0, "60000",
     "after a scavenge swapped a rewritten segment in, how long the file it replaced stays readable for "
     "events read before (held ones are read again by position); then its disk space goes back"},
    {"archive-dir", NULL, T_STR, OFF(archive_dir), SZ(archive_dir), "",
     "the archive tier: a directory (another disk, a mounted object store) where sealed log segments are "
     "copied and verified; local copies older than the retention below are then dropped and read from it. "
     "Empty: none (docs/operations.md \"Archive\")"},
    {"archive-retain-bytes", NULL, T_SIZE, OFF(archive_retain_bytes), 0, "1073741824",
     "keep a segment's local copy while less than this many bytes of the log follow it"},
    {"archive-retain-seconds", NULL, T_SIZE, OFF(archive_retain_seconds), 0, "604800",
     "keep a segment's local copy while its newest event is younger than this"},
    {"archive-keep-local", NULL, T_BOOL, OFF(archive_keep_local), 0, "false",
     "never drop local copies: the archive is a second copy only"},
    {"archive-throttle", NULL, T_SIZE, OFF(archive_throttle), 0, "0",
     "bytes per second the archiver's copies write and read back (0: as fast as the disks allow)"},
    {"master-key-file", NULL, T_STR, OFF(master_key_file), SZ(master_key_file), "",
     "crypto-shredding: a file outside the data directory (mode 0600) holding the 256-bit master key that "
     "wraps each data subject's key; with it the events of a subject are sealed (AES-256-GCM) and "
     "POST /admin/shred erases them for good. A database that has keys does not open without it "
     "(docs/operations.md \"Crypto-shredding\")"},
    {"shred-categories", NULL, T_STR, OFF(shred_categories), SZ(shred_categories), "",
     "crypto-shredding: comma-separated categories whose streams are sealed under the subject named by the "
     "rest of the stream name (user-42: subject 42); any stream can name one with \"$subject\" in its metadata"},
    {"archive-interval-ms", NULL, T_INT, OFF(archive_interval_ms), 0, "10000",
     "how often the archiver looks for sealed segments to copy and local copies to drop (0: only when asked, "
     "POST /admin/archive)"},
};
#define N_OPTS (sizeof opts / sizeof *opts)

/* Integer options with their own range (T_INT; the value goes to the option's field). */
static const struct {
    const char *name;
    long lo, hi;
} ranged[] = {
    {"poll-after-answer-us", 0, 10000},
    {"commit-loop-max-us", 1, 100000},
    {"reader-threads", 1, 64},
};

static int set(srv_config *c, const opt *o, const char *v, const char *where)
{
    char *p = (char *)c + o->off;
    if (!strcmp(o->name, "log-format")) {
        if (!strcasecmp(v, "json"))
            c->log_json = 1;
        else if (!strcasecmp(v, "text"))
            c->log_json = 0;
        else
            goto bad;
        return 0;
    }
    if (!strcmp(o->name, "commit-mode")) {
        if (!strcasecmp(v, "auto"))
            c->commit_mode = SRV_COMMIT_AUTO;
        else if (!strcasecmp(v, "writer"))
            c->commit_mode = SRV_COMMIT_WRITER;
        else if (!strcasecmp(v, "io-uring"))
            c->commit_mode = SRV_COMMIT_URING;
        else if (!strcasecmp(v, "loop"))
            c->commit_mode = SRV_COMMIT_LOOP;
        else
            goto bad;
        return 0;
    }
    for (size_t i = 0; i < sizeof ranged / sizeof *ranged; i++) {
        if (strcmp(o->name, ranged[i].name)) continue;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < ranged[i].lo || x > ranged[i].hi) goto bad;
        *(int *)p = (int)x;
        return 0;
    }
    if (!strcmp(o->name, "cold-reads")) {
        if (!strcasecmp(v, "detect"))
            c->cold_reads = SRV_COLD_DETECT;
        else if (!strcasecmp(v, "always"))
            c->cold_reads = SRV_COLD_ALWAYS;
        else if (!strcasecmp(v, "never"))
            c->cold_reads = SRV_COLD_NEVER;
        else
            goto bad;
        return 0;
    }
    switch (o->type) {
    case T_STR:
        if (strlen(v) >= o->size) goto bad;
        strcpy(p, v);
        return 0;
    case T_BOOL:
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
            *(int *)p = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
            *(int *)p = 0;
        else
            goto bad;
        return 0;
    case T_INT: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || *end || x < 0 || x > 65535 * 1000) goto bad;
        *(int *)p = (int)x;
        return 0;
    }
    case T_SIZE: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v) goto bad;
        if (*end == 'k' || *end == 'K')
            x <<= 10, end++;
        else if (*end == 'm' || *end == 'M')
            x <<= 20, end++;
        else if (*end == 'g' || *end == 'G')
            x <<= 30, end++;
        if (*end) goto bad;
        *(uint64_t *)p = x;
        return 0;
    }
    case T_PROJ:
        if (!strcasecmp(v, "none"))
            *(int *)p = SRV_PROJ_NONE;
        else if (!strcasecmp(v, "system"))
            *(int *)p = SRV_PROJ_SYSTEM;
        else if (!strcasecmp(v, "all"))
            *(int *)p = SRV_PROJ_ALL;
        else
            goto bad;
        return 0;
    case T_LEVEL:
        if (!strncasecmp(v, "err", 3) || !strcasecmp(v, "fatal"))
            *(int *)p = 0;
        else if (!strncasecmp(v, "warn", 4))
            *(int *)p = 1;
        else if (!strncasecmp(v, "info", 4))
            *(int *)p = 2;
        else if (!strcasecmp(v, "debug") || !strcasecmp(v, "verbose"))
            *(int *)p = 3;
        else
            goto bad;
        return 0;
    }
bad:
    fprintf(stderr, "factumd: invalid value '%s' for %s (%s)\n", v, o->name, where);
    return -1;
}

/* "mem-db" <-> "MemDb" <-> "MEM_DB" */
static int name_eq(const char *optname, const char *key)
{
    for (; *optname || *key; optname++, key++) {
        if (*optname == '-') {
            if (*key == '_' || *key == '-') continue;
            key--; /* CamelCase key: no separator */
            continue;
        }
        if (tolower((unsigned char)*optname) != tolower((unsigned char)*key)) return 0;
    }
    return 1;
}

static const opt *find(const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (name_eq(opts[i].name, key) || (opts[i].alias && name_eq(opts[i].alias, key))) return &opts[i];
    return NULL;
}

static int load_file(srv_config *c, const char *path, const unsigned char *from_cli)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "factumd: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[8192];
    int n = 0, rc = 0;
    while (fgets(line, sizeof line, f) && !rc) {
        n++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#' || !strncmp(s, "---", 3)) continue;
        char *colon = strchr(s, ':');
        if (!colon) {
            fprintf(stderr, "factumd: %s:%d: expected `Key: value`\n", path, n);
            rc = -1;
            break;
        }
        *colon = 0;
        char *v = colon + 1, *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            *--e = 0;
        while (isspace((unsigned char)*v))
            v++;
        e = v + strlen(v);
        while (e > v && isspace((unsigned char)e[-1]))
            *--e = 0;
        if ((*v == '"' || *v == '\'') && e > v + 1 && e[-1] == *v) {
            v++;
            e[-1] = 0;
        }
        const opt *o = find(s);
        if (!o) {
            fprintf(stderr, "factumd: %s:%d: unknown setting '%s'\n", path, n, s);
            rc = -1;
            break;
        }
        if (from_cli[o - opts]) continue; /* the command line wins */
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, n);
        rc = set(c, o, v, where);
    }
    fclose(f);
    return rc;
}

srv_security srv_config_security(const srv_config *c)
{
    /* --insecure: cleartext, everyone is the system principal. The
     * default: TLS and authentication. --disable-tls (KurrentDB 26.2):
     * cleartext with authentication. --insecure wins over both. */
    srv_security s = {1, 1};
    if (c->disable_tls) s.tls = 0;
    if (c->insecure) s.tls = s.auth = 0;
    return s;
}

int srv_config_check_certificates(const srv_config *c)
{
    const char *missing = !c->certificate_file[0]                 ? "--certificate-file"
                          : !c->certificate_private_key_file[0]   ? "--certificate-private-key-file"
                          : !c->trusted_root_certificates_path[0] ? "--trusted-root-certificates-path"
                                                                  : NULL;
    if (!missing) return 0;
    static const char why[] =
        "Give --certificate-file, --certificate-private-key-file and --trusted-root-certificates-path "
        "(config "
        "file: CertificateFile, CertificatePrivateKeyFile, TrustedRootCertificatesPath; environment: "
        "KURRENTDB_CERTIFICATE_FILE, ...). `factum certs` creates a development CA and a node certificate. "
        "--insecure serves cleartext without authentication (development only).";
    fprintf(stderr, "factumd: TLS needs a certificate, and %s is not set. %s\n", missing, why);
    return -1;
}

void srv_config_usage(void)
{
    printf("usage: factumd [OPTIONS]\n\nfactumd %s - the factum event store server, speaking the KurrentDB "
           "gRPC client "
           "protocol.\n\nOptions (environment: FACTUM_<NAME>, KURRENTDB_<NAME> or EVENTSTORE_<NAME>; config "
           "file: "
           "<Name>: value):\n",
           FACTUM_VERSION_STRING);
    for (size_t i = 0; i < N_OPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", opts[i].name, opts[i].alias ? ", --" : "",
                 opts[i].alias ? opts[i].alias : "");
        printf("  %-34s %s (default: %s)\n", flag, opts[i].help, *opts[i].def ? opts[i].def : "none");
    }
    printf("  %-34s %s\n  %-34s %s\n", "--help", "this help", "--version", "print the version");
}

static void env_name(const char *prefix, const char *name, char *out, size_t n)
{
    size_t j = 0;
    for (const char *p = prefix; *p && j + 1 < n; p++)
        out[j++] = *p;
    for (const char *p = name; *p && j + 1 < n; p++)
        out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[j] = 0;
}

int srv_config_parse(srv_config *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    unsigned char from_cli[N_OPTS] = {0}, from_env[N_OPTS] = {0};
    for (size_t i = 0; i < N_OPTS; i++)
        if (set(c, &opts[i], opts[i].def, "default")) return -1;
    /* Command line. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            srv_config_usage();
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("factumd %s\n", FACTUM_VERSION_STRING);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "factumd: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        char key[128];
        const char *eq = strchr(a, '=');
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof key) kl = sizeof key - 1;
        memcpy(key, a + 2, kl);
        key[kl] = 0;
        const opt *o = find(key);
        if (!o) {
            fprintf(stderr, "factumd: unknown option '--%s' (see --help)\n", key);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (o->type == T_BOOL)
                v = "true";
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                fprintf(stderr, "factumd: option --%s needs a value\n", o->name);
                return -1;
            }
        }
        if (set(c, o, v, "command line")) return -1;
        from_cli[o - opts] = 1;
    }
    /* Environment. */
    static const char *prefixes[] = {"FACTUM_", "KURRENTDB_", "EVENTSTORE_"};
    for (size_t i = 0; i < N_OPTS; i++) {
        if (from_cli[i]) continue;
        for (int p = 0; p < 3; p++) {
            char en[128];
            env_name(prefixes[p], opts[i].name, en, sizeof en);
            const char *v = getenv(en);
            if (!v && opts[i].alias) {
                env_name(prefixes[p], opts[i].alias, en, sizeof en);
                v = getenv(en);
            }
            if (v) {
                if (set(c, &opts[i], v, en)) return -1;
                from_env[i] = 1;
                break;
            }
        }
    }
    /* Config file (lowest precedence but the defaults). */
    if (c->config_file[0]) {
        unsigned char taken[N_OPTS];
        for (size_t i = 0; i < N_OPTS; i++)
            taken[i] = from_cli[i] | from_env[i];
        if (load_file(c, c->config_file, taken)) return -1;
    }
    if (c->request_timeout_ms < 0) {
        fprintf(stderr, "factumd: --request-timeout-ms must be 0 or more\n");
        return -1;
    }
    if (c->max_streams < 1 || c->max_streams > 100000) {
        fprintf(stderr, "factumd: --max-concurrent-streams must be 1..100000\n");
        return -1;
    }
    if (c->node_port <= 0 || c->node_port > 65535) {
        if (c->node_port != 0) {
            fprintf(stderr, "factumd: --node-port must be 0..65535\n");
            return -1;
        }
    }
    return 0;
}
