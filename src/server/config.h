/*
 * config.h - factumd's configuration: every setting has a command-line
 * flag, environment variables and a config-file key, with names close to
 * KurrentDB's (--db, --mem-db, --node-ip, --node-port/--http-port,
 * --insecure, ...). Precedence: command line, then environment, then the
 * config file, then the default.
 */
#ifndef FACTUM_SERVER_CONFIG_H
#define FACTUM_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv_config {
    char db[4096];    /* data directory */
    int mem_db;       /* a temporary directory, removed at exit */
    char node_ip[64]; /* listen address */
    int node_port;    /* gRPC + HTTP port */
    int insecure;     /* cleartext, no authentication, no authorization (development) */
    char certificate_file[4096];             /* CertificateFile: the node's PEM certificate (and chain) */
    char certificate_private_key_file[4096]; /* CertificatePrivateKeyFile */
    char certificate_private_key_password[256]; /* CertificatePrivateKeyPassword: for an encrypted key */
    char trusted_root_certificates_path[4096]; /* TrustedRootCertificatesPath: a directory (or file) of CAs */
    int disable_tls;  /* cleartext, but authentication and authorization on (KurrentDB 26.2's DisableTls) */
    int failed_logins_per_minute; /* per client address, before its logins are refused (0: no limit) */
    int relaxed;      /* relaxed durability */
    int io_uring;     /* --io-uring: the older name of --commit-mode io-uring */
    int commit_mode;  /* SRV_COMMIT_* (docs/adr/0020, 0024) */
    int commit_loop_max_us; /* SRV_COMMIT_AUTO: the loop syncs itself while fdatasync takes at most this */
    int poll_after_answer_us; /* net_config.poll_after_answer_us */
    uint64_t max_append_size;
    uint64_t max_append_event_size;
    uint64_t segment_size;
    uint64_t max_connections;
    uint64_t max_streams; /* concurrent calls per connection */
    uint64_t subscription_live_lag; /* events behind the head before a live subscription falls behind */
    int reader_threads;             /* the reader pool's threads (rdjob.c) */
    int cold_reads;                 /* SRV_COLD_DETECT, _ALWAYS or _NEVER */
    uint64_t
        max_client_memory; /* all that clients make the server hold (0: a quarter of RAM, at most 1 GiB) */
    uint64_t max_connection_memory; /* what one connection may make it hold (0: from the append limits) */
    int request_timeout_ms;         /* an incomplete request's time */
    int log_level;                  /* 0 error, 1 warn, 2 info, 3 debug */
    int log_json;                   /* structured JSON log lines instead of text */
    char config_file[4096];
    int drain_ms;                   /* graceful shutdown: how long calls in flight may take */
    int run_projections;            /* SRV_PROJ_NONE, _SYSTEM or _ALL (KurrentDB's RunProjections) */
    int start_standard_projections; /* enable the five system projections at start */
    int projection_execution_timeout; /* ms a JavaScript handler may take for one event */
    uint64_t max_projection_state_size; /* a JavaScript projection's state, at most */
    int projection_heap_mib;          /* a JavaScript projection's heap */
    int run_readmodels;               /* open the read models (include/factum_readmodel.h) */
    char readmodels_dir[4096];        /* their SQLite files ("": <db>/readmodels) */
    char backup_dir[4096];            /* POST /admin/backup writes under it ("": off) */
    uint64_t scavenge_grace_ms;       /* a replaced segment stays readable this long (factum_options) */
    char archive_dir[4096];           /* the archive tier's directory ("": none; factum_options.archive_dir) */
    uint64_t archive_retain_bytes;    /* local copies kept while fewer log bytes follow them */
    uint64_t archive_retain_seconds;  /* ... or while younger than this */
    int archive_keep_local;           /* never drop local copies (the archive is a copy only) */
    int archive_interval_ms;          /* the archiver's period (0: only on POST /admin/archive) */
    uint64_t archive_throttle;        /* bytes per second a copy writes and reads back (0: no limit) */
    char master_key_file[4096];       /* crypto-shredding: the master key ("": off; factum_options) */
    char shred_categories[4096];      /* categories sealed by subject ("": none) */
    int allow_anonymous_stream_access;   /* KurrentDB's AllowAnonymousStreamAccess */
    int allow_anonymous_endpoint_access; /* KurrentDB's AllowAnonymousEndpointAccess */
    char authorization_default_policy_type[32]; /* "acl" or "streampolicy" (Authorization:DefaultPolicyType) */
} srv_config;

/* RunProjections: None (no projections at all), System (the five system
 * projections exist and those enabled run), All (user projections too). */
enum { SRV_PROJ_NONE = 0, SRV_PROJ_SYSTEM = 1, SRV_PROJ_ALL = 2 };
/* --cold-reads: which page reads go to the reader pool (rpc.h RPC_COLD_*). */
enum { SRV_COLD_DETECT = 0, SRV_COLD_ALWAYS = 1, SRV_COLD_NEVER = 2 };
/* --commit-mode: who makes an append's fdatasync (docs/adr/0024). */
enum { SRV_COMMIT_AUTO = 0, SRV_COMMIT_WRITER = 1, SRV_COMMIT_URING = 2, SRV_COMMIT_LOOP = 3 };

/* Parse argv (and the environment and the config file it names). Returns
 * 0, 1 if --help/--version was handled (exit 0), or -1 after printing a
 * one-line error (exit 2). */
int srv_config_parse(srv_config *c, int argc, char **argv);

/* What the port speaks and whether calls are authenticated: the one place
 * that decides (docs/security.md):
 *  --insecure      cleartext; no authentication, no authorization (every
 *                  call acts as the system principal);
 *  --disable-tls   cleartext; authentication and authorization on;
 *  neither         TLS on the port; authentication and authorization on. */
typedef struct srv_security {
    int tls;  /* TLS on the port (certificates required) */
    int auth; /* calls are authenticated and authorized */
} srv_security;
srv_security srv_config_security(const srv_config *c);

/* With TLS on: are the three certificate settings given? 0, or -1 after
 * logging an error that names the settings and `factum certs`. */
int srv_config_check_certificates(const srv_config *c);

/* Print the option reference (for --help and docs). */
void srv_config_usage(void);

#endif
