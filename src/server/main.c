/*
 * main.c - factumd: parse the configuration, open the store, serve gRPC and
 * HTTP on one port until SIGTERM/SIGINT (or Operations.Shutdown), then shut
 * down gracefully: stop accepting, let calls in flight finish (up to
 * --shutdown-timeout-ms), close the store (which finishes its appends and
 * writes an index checkpoint).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth/users.h"
#include "base/base.h"
#include "factum_readmodel.h"
#include "rpc/readmodels.h"
#include "net/tls.h"
#include "auth/acl.h"
#include "rpc/persistent.h"
#include "server/log.h"
#include "server/server.h"

static net_server *g_net;

static void on_signal(int sig)
{
    (void)sig;
    if (g_net) net_server_stop(g_net);
}

static void on_hup(int sig)
{
    (void)sig;
    if (g_net) net_server_request_reload(g_net);
}

int srv_tls_load(srv_state *st, SSL_CTX **out)
{
    const srv_config *c = &st->cfg;
    tls_files f = {c->certificate_file, c->certificate_private_key_file, c->certificate_private_key_password,
                   c->trusted_root_certificates_path};
    char err[1024];
    if (tls_server_ctx_new(&f, out, err, sizeof err)) {
        slog_write(SLOG_ERROR, "%s", err);
        return -1;
    }
    return 0;
}

void srv_tls_reload(void *arg)
{
    srv_state *st = arg;
    if (!st->sec.tls) {
        slog_write(SLOG_INFO, "reload: no certificates to reload (TLS is off)");
        return;
    }
    /* As KurrentDB does, read the settings again (the config file may name
     * other files now); only the certificate settings change. */
    srv_config *fresh = malloc(sizeof *fresh);
    if (!fresh || srv_config_parse(fresh, st->argc, st->argv) != 0) {
        free(fresh);
        slog_write(SLOG_ERROR,
                   "reload: the settings cannot be read (see above): the current certificates stay in use");
        return;
    }
    srv_config *c = &st->cfg;
    char keep[3][4096], keep_pw[sizeof c->certificate_private_key_password];
    memcpy(keep[0], c->certificate_file, sizeof keep[0]);
    memcpy(keep[1], c->certificate_private_key_file, sizeof keep[1]);
    memcpy(keep[2], c->trusted_root_certificates_path, sizeof keep[2]);
    memcpy(keep_pw, c->certificate_private_key_password, sizeof keep_pw);
    memcpy(c->certificate_file, fresh->certificate_file, sizeof c->certificate_file);
    memcpy(c->certificate_private_key_file, fresh->certificate_private_key_file,
           sizeof c->certificate_private_key_file);
    memcpy(c->trusted_root_certificates_path, fresh->trusted_root_certificates_path,
           sizeof c->trusted_root_certificates_path);
    memcpy(c->certificate_private_key_password, fresh->certificate_private_key_password, sizeof keep_pw);
    free(fresh);
    SSL_CTX *ctx = NULL;
    slog_write(SLOG_INFO, "reloading the certificates");
    if (srv_config_check_certificates(c) || srv_tls_load(st, &ctx)) {
        memcpy(c->certificate_file, keep[0], sizeof keep[0]); /* a failed reload changes nothing (TLS-4) */
        memcpy(c->certificate_private_key_file, keep[1], sizeof keep[1]);
        memcpy(c->trusted_root_certificates_path, keep[2], sizeof keep[2]);
        memcpy(c->certificate_private_key_password, keep_pw, sizeof keep_pw);
        slog_write(SLOG_ERROR,
                   "the certificates were not reloaded (see above): the current ones stay in use");
        rpc_audit_as(&st->rpc, NULL, NULL, "certificates-reload-failed", c->certificate_file, NULL);
        return;
    }
    char d[512];
    tls_ctx_describe(ctx, d, sizeof d);
    net_server_set_tls(st->net, ctx);
    slog_write(SLOG_INFO, "certificates reloaded: new connections get %s", d);
    rpc_audit_as(&st->rpc, NULL, NULL, "certificates-reloaded", c->certificate_file, NULL);
}

static void on_shutdown_rpc(void *arg)
{
    net_server_stop(arg);
}

static const char *commit_level_text(int level)
{
    return level == RPC_COMMIT_ALL    ? "the event loop makes them itself"
           : level == RPC_COMMIT_LONE ? "the event loop makes those of appends that come alone, the writer thread "
                                        "the others"
                                      : "the writer thread makes them";
}

static void on_tick(void *arg)
{
    rpc_ps_tick(arg);
    rpc_rm_tick(arg); /* RMS-2: waits whose time is up */
    rpc_submit_retry(arg); /* RPC-5: completions retry too; this covers room made by anything else */
    rpc_ctx *r = arg;
    uint64_t avg;
    if (rpc_commit_tick(r, &avg)) {
        /* A disk near a bound, or with hiccups, may change the level often:
         * a line at info level at most once a minute (the count of changes
         * in between), the others at debug (factum_commit_level in /metrics). */
        static uint64_t last_info_ns, changes_at_info;
        uint64_t now = base_mono_ns();
        int info = !last_info_ns || now - last_info_ns >= 60000000000ull;
        slog_write(info ? SLOG_INFO : SLOG_DEBUG,
                   "commit-mode auto: fdatasync takes %.0f us on average: %s (%llu other changes since the "
                   "last line like this)",
                   avg / 1e3, commit_level_text(r->commit_level),
                   (unsigned long long)(r->commit_changes - changes_at_info - 1));
        if (info) {
            last_info_ns = now;
            changes_at_info = r->commit_changes;
        }
    }
}

/* The disk's fdatasync, timed on a scratch file in the data directory
 * (--commit-mode auto's first level, docs/adr/0024): 4 KiB written over
 * blocks already written and made durable, and fdatasync'd, PROBE_SYNCS
 * times, as the store writes its appends into segments made of zeros
 * (LOG-6). Blocks only fallocated would be slower to write the first time
 * (each write turns an unwritten extent into a written one, a journal
 * commit in the fdatasync): on a virtio disk that measured 298 us where
 * the store's own fdatasyncs took 180. Returns the median in nanoseconds,
 * 0 when it cannot tell (the store's own fdatasyncs decide then). */
#define PROBE_SYNCS 9
static uint64_t probe_fdatasync(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.fdatasync-probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    uint64_t t[PROBE_SYNCS] = {0};
    char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    int ok = 1;
    for (int i = 0; ok && i < PROBE_SYNCS; i++)
        ok = pwrite(fd, buf, sizeof buf, (off_t)sizeof buf * i) == (ssize_t)sizeof buf;
    ok = ok && fdatasync(fd) == 0;
    for (int i = 0; ok && i < PROBE_SYNCS; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        ok = pwrite(fd, buf, sizeof buf, (off_t)sizeof buf * i) == (ssize_t)sizeof buf && fdatasync(fd) == 0;
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
    }
    close(fd);
    unlink(path);
    if (!ok) return 0;
    for (int i = 1; i < PROBE_SYNCS; i++) /* insertion sort: nine numbers */
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            uint64_t x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[PROBE_SYNCS / 2] ? t[PROBE_SYNCS / 2] : 1;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The memory budget for clients (NET-5): configured, or a quarter of the
 * RAM up to 1 GiB; a connection may hold enough for the largest append
 * being assembled plus a few messages in flight (128 MiB by default). */
static void srv_memory_limits(const srv_config *cfg, net_config *nc)
{
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t total = cfg->max_client_memory;
    if (!total) total = ram / 4 < (1u << 30) && ram ? ram / 4 : (1u << 30);
    uint64_t per = cfg->max_connection_memory;
    if (!per) {
        per = 128u << 20;
        uint64_t need = cfg->max_append_size + 3 * nc->max_message + (4u << 20);
        if (need > per) per = need;
    }
    if (per > total) per = total;
    nc->max_client_memory = (size_t)total;
    nc->max_connection_memory = (size_t)per;
    if (per < cfg->max_append_size + nc->max_message)
        slog_write(SLOG_WARN,
                   "--max-connection-memory (%llu bytes) is smaller than the largest append and message "
                   "need (%llu): such appends will fail with RESOURCE_EXHAUSTED",
                   (unsigned long long)per, (unsigned long long)(cfg->max_append_size + nc->max_message));
}

int main(int argc, char **argv)
{
    /* Large buffers (partial messages, queued output) come from mmap and go
     * back to the system when freed: glibc's adaptive threshold would keep
     * them in the heap, resident after a hostile client is gone (NET-5). */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    srv_state st;
    memset(&st, 0, sizeof st);
    st.started_ns = base_now_ns();
    st.argc = argc;
    st.argv = argv;
    int prc = srv_config_parse(&st.cfg, argc, argv);
    if (prc) return prc > 0 ? 0 : 2;
    srv_config *cfg = &st.cfg;
    slog_setup(cfg->log_level, cfg->log_json);
    st.sec = srv_config_security(cfg);
    SSL_CTX *tls = NULL;
    if (st.sec.tls) {
        if (srv_config_check_certificates(cfg)) return 2;
        if (srv_tls_load(&st, &tls)) return 2;
    }
    if (!st.sec.tls && !st.sec.auth)
        slog_write(SLOG_WARN, "INSECURE MODE: --insecure serves cleartext (no TLS) with NO AUTHENTICATION and NO "
                              "AUTHORIZATION: anyone who reaches the port may read, write and delete every stream "
                              "and shut the server down. For development only.");
    if (st.sec.auth && !st.sec.tls)
        slog_write(SLOG_WARN, "TLS is disabled (--disable-tls): authentication and authorization are on, but "
                              "credentials and data cross the network in the clear");
    /* Many connections need many descriptors: raise the soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char tmpdir[64] = "";
    if (cfg->mem_db) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/factumd-memdb-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            slog_write(SLOG_ERROR, "cannot create a temporary directory: %s", strerror(errno));
            return 1;
        }
        snprintf(cfg->db, sizeof cfg->db, "%s/data", tmpdir);
    }
    factum_options o;
    factum_options_init(&o);
    o.durability = cfg->relaxed ? FACTUM_RELAXED : FACTUM_DURABLE;
    o.max_append_size = cfg->max_append_size;
    o.max_event_size = cfg->max_append_event_size;
    o.segment_size = cfg->segment_size;
    o.log_fn = slog_sink;
    /* What factumd keeps across the loop's turns (a slow client's page, a
     * consumer group's messages, a subscription's items, the shared tail)
     * is read again by position after a scavenge's swap (RPC-8): the files
     * a scavenge replaced go after the grace, factumd running. */
    o.scavenge_grace_ms = cfg->scavenge_grace_ms >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)cfg->scavenge_grace_ms;
    if (cfg->archive_dir[0]) {
        o.archive_dir = cfg->archive_dir;
        o.archive_retain_bytes = cfg->archive_keep_local ? FACTUM_ARCHIVE_KEEP_LOCAL : cfg->archive_retain_bytes;
        o.archive_retain_ms = cfg->archive_keep_local || cfg->archive_retain_seconds > UINT64_MAX / 1000
                                  ? FACTUM_ARCHIVE_KEEP_LOCAL
                                  : cfg->archive_retain_seconds * 1000;
        o.archive_interval_ms = (uint32_t)cfg->archive_interval_ms;
        o.archive_throttle_bytes_per_sec = cfg->archive_throttle;
    }
    if (cfg->master_key_file[0]) o.master_key_file = cfg->master_key_file;
    if (cfg->shred_categories[0]) o.shred_categories = cfg->shred_categories;
    int rc = factum_store_open(cfg->db, &o, &st.store);
    if (rc) {
        slog_write(SLOG_ERROR, "cannot open the database %s: %s", cfg->db, factum_strerror(rc));
        goto out;
    }
    if (cfg->run_projections != SRV_PROJ_NONE) {
        factum_projections_options po;
        factum_projections_options_init(&po);
        po.create_system = 1;
        po.start_system = cfg->start_standard_projections;
        po.run_user = cfg->run_projections == SRV_PROJ_ALL;
        po.js_ms_per_event = (uint32_t)cfg->projection_execution_timeout;
        po.js_state_bytes = cfg->max_projection_state_size > UINT32_MAX ? UINT32_MAX
                                                                         : (uint32_t)cfg->max_projection_state_size;
        po.js_heap_mib = (uint32_t)cfg->projection_heap_mib;
        po.log_fn = slog_sink;
        if ((rc = factum_projections_open(st.store, &po, &st.proj))) {
            slog_write(SLOG_ERROR, "cannot start the projections: %s", factum_strerror(rc));
            goto out;
        }
    }
    if (cfg->run_readmodels) {
        factum_readmodels_options ro;
        factum_readmodels_options_init(&ro);
        ro.dir = cfg->readmodels_dir[0] ? cfg->readmodels_dir : NULL;
        ro.log_fn = slog_sink;
        if ((rc = factum_readmodels_open(st.store, &ro, &st.rm))) {
            slog_write(SLOG_ERROR, "cannot open the read models: %s", factum_strerror(rc));
            goto out;
        }
    }
    /* The users, also with --insecure (the Users service works; no call is
     * authenticated). Blocking: the default users' hashes are made here. */
    auth_users_options ao;
    auth_users_options_init(&ao);
    ao.store = st.store;
    ao.log_fn = slog_sink;
    ao.fail_burst = ao.fail_per_minute = (unsigned)cfg->failed_logins_per_minute;
    if ((rc = auth_users_open(&ao, &st.users))) {
        slog_write(SLOG_ERROR, "cannot load the users: %s", factum_strerror(rc));
        goto out;
    }
    rpc_ctx *r = &st.rpc;
    r->users = st.users;
    r->store = st.store;
    r->projections = st.proj;
    r->readmodels = st.rm;
    factum_uuid_v4(r->instance_id);
    snprintf(r->advertise_host, sizeof r->advertise_host, "%s", cfg->node_ip);
    r->max_append_size = cfg->max_append_size;
    r->max_event_size = cfg->max_append_event_size;
    r->log_fn = slog_sink;
    r->sub_live_lag = cfg->subscription_live_lag;
    r->reader_threads = (unsigned)cfg->reader_threads;
    r->cold_reads = cfg->cold_reads == SRV_COLD_ALWAYS  ? RPC_COLD_ALWAYS
                    : cfg->cold_reads == SRV_COLD_NEVER ? RPC_COLD_NEVER
                                                        : RPC_COLD_DETECT;
    int policy_type = auth_policy_type_parse(cfg->authorization_default_policy_type);
    if (policy_type < 0) {
        slog_write(SLOG_ERROR, "unknown --authorization-default-policy-type %s (acl or streampolicy)",
                   cfg->authorization_default_policy_type);
        rc = FACTUM_EINVAL;
        goto out;
    }
    if ((rc = rpc_authz_init(r, cfg->allow_anonymous_stream_access, cfg->allow_anonymous_endpoint_access,
                             policy_type)))
        goto out;
    if ((rc = rpc_methods(r, &st.methods, &st.n_methods))) goto out;
    if ((rc = rpc_ps_init(r))) {
        slog_write(SLOG_ERROR, "cannot load the persistent subscriptions: %s", factum_strerror(rc));
        goto out;
    }
    /* Who makes an append's fdatasync (docs/adr/0020, 0024). The loop
     * drives its appends through a driver made on this thread, which runs
     * the loop: through io_uring, or synchronously (loop, and auto while
     * the disk is fast). Without io_uring an io-uring driver says so once
     * and would hand the appends to the writer thread: then plain
     * asynchronous appends do the same with one layer less. */
    int mode = cfg->commit_mode;
    if (cfg->io_uring && mode == SRV_COMMIT_AUTO) mode = SRV_COMMIT_URING;
    if (cfg->relaxed && mode == SRV_COMMIT_AUTO) mode = SRV_COMMIT_WRITER; /* no fdatasync to wait for */
    if (mode != SRV_COMMIT_WRITER) {
        unsigned flags = (mode == SRV_COMMIT_URING ? 0 : FACTUM_DRIVER_SYNC) | FACTUM_DRIVER_POLL_READY; /* the loop checks drive_ready before every wait */
        if ((rc = factum_driver_new(st.store, flags, &r->drv))) {
            slog_write(SLOG_ERROR, "cannot make the loop's store driver: %s", factum_strerror(rc));
            goto out;
        }
        if (mode == SRV_COMMIT_URING && !factum_driver_uring(r->drv)) {
            factum_driver_free(r->drv);
            r->drv = NULL;
        }
        if (mode == SRV_COMMIT_AUTO) {
            uint64_t probe = probe_fdatasync(cfg->db);
            rpc_commit_start(r, (uint64_t)cfg->commit_loop_max_us * 1000u, probe);
            slog_write(SLOG_INFO, "commit-mode auto: fdatasync of the data directory's disk: %.0f us (median of %d): %s",
                       probe / 1e3, PROBE_SYNCS, commit_level_text(r->commit_level));
        }
        r->loop_thread = pthread_self();
    }
    net_config nc;
    net_config_init(&nc);
    nc.host = cfg->node_ip;
    nc.port = cfg->node_port;
    nc.max_connections = cfg->max_connections;
    nc.max_streams = cfg->max_streams;
    nc.max_message = cfg->max_append_event_size + (1u << 20);
    srv_memory_limits(cfg, &nc);
    nc.request_timeout_ms = (unsigned)cfg->request_timeout_ms;
    nc.log_fn = slog_sink;
    nc.spin_hint = rpc_spin_hint;
    nc.poll_after_answer_us = (unsigned)cfg->poll_after_answer_us;
    nc.spin_ctx = r;
    if (r->drv) {
        nc.drive_fd = factum_driver_fd(r->drv);
        nc.drive_ready = rpc_drive_ready;
        nc.drive_run = rpc_drive_run;
        nc.drive_ctx = r;
    }
    nc.tick_fn = on_tick;
    nc.tick_ctx = r;
    nc.tick_ms = 100;
    nc.reload_fn = srv_tls_reload;
    nc.reload_ctx = &st;
    if (st.sec.auth) {
        nc.auth_fn = auth_users_authenticate; /* NET-8: every call and HTTP request */
        nc.auth_ctx = st.users;
        nc.auth_slot_free = auth_users_slot_free; /* USERS-7 */
        nc.http_challenge = "Basic realm=\"factum\"";
    }
    if ((rc = net_server_new(&nc, st.methods, st.n_methods, srv_http, &st, &st.net))) {
        slog_write(SLOG_ERROR, "cannot listen on %s:%d: %s", cfg->node_ip, cfg->node_port, strerror(-rc));
        SSL_CTX_free(tls);
        goto out;
    }
    char tls_desc[512] = "";
    if (tls) tls_ctx_describe(tls, tls_desc, sizeof tls_desc);
    net_server_set_tls(st.net, tls); /* the server owns it now */
    r->net = st.net;
    if ((rc = rpc_rm_init(r))) {
        slog_write(SLOG_ERROR, "cannot start the read models' workers: %s", strerror(-rc));
        goto out;
    }
    auth_users_set_net(st.users, st.net);
    auth_users_set_on_change(st.users, rpc_live_recheck, r);
    if (rpc_listen(r)) {
        rc = -ENOMEM;
        goto out;
    }
    r->advertise_port = net_server_port(st.net);
    r->shutdown = on_shutdown_rpc;
    r->shutdown_arg = st.net;
    g_net = st.net;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    factum_stats fs;
    factum_store_get_stats(st.store, &fs);
    slog_write(SLOG_INFO, "factumd %s: database %s%s, %s durability, %llu events, projections: %s, read models: %s",
               FACTUM_VERSION_STRING, cfg->db, cfg->mem_db ? " (temporary)" : "",
               cfg->relaxed ? "RELAXED" : "full", (unsigned long long)fs.last_position,
               cfg->run_projections == SRV_PROJ_ALL      ? "all"
               : cfg->run_projections == SRV_PROJ_SYSTEM ? "system"
                                                         : "none",
               st.rm ? "on" : "off");
    slog_write(SLOG_INFO, "appends: %s",
               !st.rpc.drv                        ? "the writer thread makes the fdatasyncs"
               : st.rpc.commit_auto_max_ns        ? "commit-mode auto: the event loop makes the fdatasyncs itself "
                                                    "while they are short, else the writer thread"
               : factum_driver_sync(st.rpc.drv) ? "the event loop makes the fdatasyncs itself"
                                                  : "the event loop leads the group commit (io_uring)");
    if (st.sec.tls)
        slog_write(SLOG_INFO,
                   "listening on %s:%d (TLS: gRPC over HTTP/2 and HTTP/1.1; certificate %s; authentication on)",
                   cfg->node_ip, r->advertise_port, tls_desc);
    else
        slog_write(SLOG_INFO, "listening on %s:%d (CLEARTEXT: gRPC over HTTP/2, and HTTP/1.1; authentication %s)",
                   cfg->node_ip, r->advertise_port, st.sec.auth ? "on" : "off");
    rc = net_server_run(st.net, cfg->drain_ms);
    slog_write(SLOG_INFO, "shutting down");
out:
    g_net = NULL;
    /* The loop's appends in flight finish (their answers go to calls that
     * are over, as posted completions do below). */
    factum_driver_free(st.rpc.drv);
    st.rpc.drv = NULL;
    /* The password workers' last answers go to the server's queue (run by
     * net_server_free below); from here on nothing touches the store. */
    auth_users_stop(st.users);
    if (st.store) rpc_deinit(&st.rpc);
    rpc_authz_free(&st.rpc);
    /* The read models' workers finish their jobs (those still queued are
     * answered as cancelled), then the read models stop at their last
     * committed batch; both before the store. */
    rpc_rm_stop(&st.rpc);
    factum_readmodels_close(st.rm);
    st.rpc.readmodels = NULL;
    /* The projections before the store: their appends in flight finish. */
    factum_projections_close(st.proj);
    /* A backup stops at its next segment (its directory is left without a
     * descriptor: incomplete). */
    srv_backup_stop(&st);
    while (atomic_load(&st.shreds_running)) /* a shred (POST /admin/shred) finishes first */
        usleep(1000);
    /* The store first: it completes the appends in flight, whose answers are
     * posted to the (stopped) server; freeing the server then runs them. */
    int crc = factum_store_close(st.store);
    net_server_free(st.net);
    auth_users_free(st.users);
    rpc_ps_free(&st.rpc);
    free(st.methods);
    free(st.rpc.pack_buf);
    if (crc) slog_write(SLOG_ERROR, "closing the database: %s", factum_strerror(crc));
    if (tmpdir[0]) nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (!rc && !crc) slog_write(SLOG_INFO, "stopped");
    return rc || crc ? 1 : 0;
}
