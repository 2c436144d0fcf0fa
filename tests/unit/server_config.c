/* Unit tests of factumd's configuration (src/server/config.c): defaults,
 * flags in both forms, KurrentDB-style environment variables and config
 * file keys, precedence, and the errors for bad values; --commit-mode
 * auto's rule (rpc_commit_next). */
#include "harness.h"

#include "rpc/rpc.h"

#include "server/config.h"

static int parse(srv_config *c, int argc, const char **argv)
{
    return srv_config_parse(c, argc, (char **)argv);
}

static void t_defaults_and_flags(void)
{
    srv_config c;
    const char *a0[] = {"factumd"};
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(!strcmp(c.db, "/var/lib/factum") && c.node_port == 2113 && !c.insecure && !c.mem_db);
    CHECK(c.max_append_event_size == 16u << 20);
    const char *a1[] = {"factumd",           "--db", "/tmp/x",      "--insecure", "--http-port=2200",
                        "--max-append-size", "8M",   "--log-level", "debug",      "--mem-db=false"};
    CHECK_RC(parse(&c, 10, a1), 0);
    CHECK(!strcmp(c.db, "/tmp/x") && c.insecure && c.node_port == 2200 && c.max_append_size == 8u << 20);
    CHECK(c.log_level == 3 && !c.mem_db);
    const char *bad1[] = {"factumd", "--no-such-thing"};
    CHECK_RC(parse(&c, 2, bad1), -1);
    const char *bad2[] = {"factumd", "--node-port", "lots"};
    CHECK_RC(parse(&c, 3, bad2), -1);
    const char *bad3[] = {"factumd", "--db"};
    CHECK_RC(parse(&c, 2, bad3), -1);
    const char *bad4[] = {"factumd", "--insecure=maybe"};
    CHECK_RC(parse(&c, 2, bad4), -1);
    /* concurrent calls per connection: 100 by default, 1..100000 */
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(c.max_streams == 100);
    const char *ms[] = {"factumd", "--max-concurrent-streams", "2000"};
    CHECK_RC(parse(&c, 3, ms), 0);
    CHECK(c.max_streams == 2000);
    const char *ms0[] = {"factumd", "--max-concurrent-streams", "0"};
    CHECK_RC(parse(&c, 3, ms0), -1);
    const char *msbig[] = {"factumd", "--max-concurrent-streams", "100001"};
    CHECK_RC(parse(&c, 3, msbig), -1);
    /* --commit-mode (docs/adr/0024): auto by default; --io-uring is the
     * older spelling of io-uring and leaves commit_mode alone. */
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(c.commit_mode == SRV_COMMIT_AUTO && c.commit_loop_max_us == 250 && !c.io_uring);
    const char *cm[][3] = {{"factumd", "--commit-mode", "writer"},
                           {"factumd", "--commit-mode", "io-uring"},
                           {"factumd", "--commit-mode", "LOOP"},
                           {"factumd", "--commit-mode", "auto"}};
    int want[] = {SRV_COMMIT_WRITER, SRV_COMMIT_URING, SRV_COMMIT_LOOP, SRV_COMMIT_AUTO};
    for (int i = 0; i < 4; i++) {
        CHECK_RC(parse(&c, 3, cm[i]), 0);
        CHECK(c.commit_mode == want[i]);
    }
    const char *cmbad[] = {"factumd", "--commit-mode", "fast"};
    CHECK_RC(parse(&c, 3, cmbad), -1);
    const char *lm[] = {"factumd", "--commit-loop-max-us", "40"};
    CHECK_RC(parse(&c, 3, lm), 0);
    CHECK(c.commit_loop_max_us == 40);
    const char *lm0[] = {"factumd", "--commit-loop-max-us", "0"};
    CHECK_RC(parse(&c, 3, lm0), -1);
    const char *lmbig[] = {"factumd", "--commit-loop-max-us", "100001"};
    CHECK_RC(parse(&c, 3, lmbig), -1);
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(c.poll_after_answer_us == 100); /* the default */
    const char *pa[] = {"factumd", "--poll-after-answer-us", "0"};
    CHECK_RC(parse(&c, 3, pa), 0);
    CHECK(c.poll_after_answer_us == 0);
    const char *pabig[] = {"factumd", "--poll-after-answer-us", "10001"};
    CHECK_RC(parse(&c, 3, pabig), -1);
    const char *paneg[] = {"factumd", "--poll-after-answer-us", "-1"};
    CHECK_RC(parse(&c, 3, paneg), -1);
    const char *rt[] = {"factumd", "--reader-threads", "4"};
    CHECK_RC(parse(&c, 3, rt), 0);
    CHECK(c.reader_threads == 4);
    const char *rt0[] = {"factumd", "--reader-threads", "0"};
    CHECK_RC(parse(&c, 3, rt0), -1);
    const char *rtbig[] = {"factumd", "--reader-threads", "65"};
    CHECK_RC(parse(&c, 3, rtbig), -1);
    const char *iu[] = {"factumd", "--io-uring"};
    CHECK_RC(parse(&c, 2, iu), 0);
    CHECK(c.io_uring && c.commit_mode == SRV_COMMIT_AUTO);
    /* auto's rule (rpc_commit_next), with --commit-loop-max-us 250: every
     * append on the loop up to 25 us, lone ones up to 250 us, and a level
     * is left downwards only above twice its bound. */
    const uint64_t us = 1000, max = 250 * us;
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 1 * us, max) == RPC_COMMIT_ALL);
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 25 * us, max) == RPC_COMMIT_ALL);
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 26 * us, max) == RPC_COMMIT_LONE);
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 250 * us, max) == RPC_COMMIT_LONE);
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 251 * us, max) == RPC_COMMIT_WRITER);
    CHECK(rpc_commit_next(RPC_COMMIT_WRITER, 5000 * us, max) == RPC_COMMIT_WRITER);
    CHECK(rpc_commit_next(RPC_COMMIT_ALL, 50 * us, max) == RPC_COMMIT_ALL);   /* within 2 x 25 */
    CHECK(rpc_commit_next(RPC_COMMIT_ALL, 51 * us, max) == RPC_COMMIT_LONE);
    CHECK(rpc_commit_next(RPC_COMMIT_ALL, 501 * us, max) == RPC_COMMIT_WRITER);
    CHECK(rpc_commit_next(RPC_COMMIT_LONE, 500 * us, max) == RPC_COMMIT_LONE); /* within 2 x 250 */
    CHECK(rpc_commit_next(RPC_COMMIT_LONE, 501 * us, max) == RPC_COMMIT_WRITER);
    CHECK(rpc_commit_next(RPC_COMMIT_LONE, 10 * us, max) == RPC_COMMIT_ALL);
}

static void t_env_and_file(void)
{
    char dir[512], path[600];
    harness_tmpdir(dir, sizeof dir, "cfg");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/factumd.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("# a KurrentDB-style file\n---\nDb: \"/srv/from-file\"\nInsecure: true\nNodePort: 3000\nMemDb: "
          "false\n",
          f);
    fclose(f);
    srv_config c;
    const char *a[] = {"factumd", "--config", path, "--node-port", "4000"};
    setenv("KURRENTDB_MAX_CONNECTIONS", "77", 1);
    CHECK_RC(parse(&c, 5, a), 0);
    /* flag beats file; file fills the rest; the environment works */
    CHECK(c.node_port == 4000 && !strcmp(c.db, "/srv/from-file") && c.insecure && c.max_connections == 77);
    setenv("FACTUM_DB", "/srv/from-env", 1);
    CHECK_RC(parse(&c, 5, a), 0);
    CHECK(!strcmp(c.db, "/srv/from-env")); /* environment beats file */
    unsetenv("FACTUM_DB");
    unsetenv("KURRENTDB_MAX_CONNECTIONS");
    f = fopen(path, "w");
    fputs("Db /no/colon\n", f);
    fclose(f);
    CHECK_RC(parse(&c, 5, a), -1);
    f = fopen(path, "w");
    fputs("NoSuchKey: 1\n", f);
    fclose(f);
    CHECK_RC(parse(&c, 5, a), -1);
    const char *missing[] = {"factumd", "--config", "/nonexistent/file"};
    CHECK_RC(parse(&c, 3, missing), -1);
    harness_rm_rf(dir);
}

/* KurrentDB's RunProjections and StartStandardProjections: flags,
 * environment (its own names), config-file keys. */
static void t_projections(void)
{
    srv_config c;
    const char *a0[] = {"factumd"};
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(c.run_projections == SRV_PROJ_NONE && !c.start_standard_projections);
    const char *a1[] = {"factumd", "--run-projections=All", "--start-standard-projections=true"};
    CHECK_RC(parse(&c, 3, a1), 0);
    CHECK(c.run_projections == SRV_PROJ_ALL && c.start_standard_projections);
    const char *a2[] = {"factumd", "--run-projections", "system", "--start-standard-projections"};
    CHECK_RC(parse(&c, 4, a2), 0);
    CHECK(c.run_projections == SRV_PROJ_SYSTEM && c.start_standard_projections);
    const char *bad[] = {"factumd", "--run-projections", "some"};
    CHECK_RC(parse(&c, 3, bad), -1);
    setenv("KURRENTDB_RUN_PROJECTIONS", "System", 1);
    setenv("EVENTSTORE_START_STANDARD_PROJECTIONS", "True", 1);
    CHECK_RC(parse(&c, 1, a0), 0);
    CHECK(c.run_projections == SRV_PROJ_SYSTEM && c.start_standard_projections);
    unsetenv("KURRENTDB_RUN_PROJECTIONS");
    unsetenv("EVENTSTORE_START_STANDARD_PROJECTIONS");
    char dir[512], path[600];
    harness_tmpdir(dir, sizeof dir, "cfg-proj");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/factumd.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("RunProjections: All\nStartStandardProjections: true\n", f);
    fclose(f);
    const char *a3[] = {"factumd", "--config", path};
    CHECK_RC(parse(&c, 3, a3), 0);
    CHECK(c.run_projections == SRV_PROJ_ALL && c.start_standard_projections);
    harness_rm_rf(dir);
}

/* The certificate settings (KurrentDB's names in their three forms) and
 * the one decision of what the port speaks. */
static void t_security(void)
{
    srv_config c;
    const char *a0[] = {"factumd"};
    CHECK_RC(parse(&c, 1, a0), 0);
    srv_security sec = srv_config_security(&c);
    CHECK(sec.tls && sec.auth); /* secure by default */
    CHECK_RC(srv_config_check_certificates(&c), -1); /* ... and so a certificate is needed */
    const char *a1[] = {"factumd", "--insecure"};
    CHECK_RC(parse(&c, 2, a1), 0);
    sec = srv_config_security(&c);
    CHECK(!sec.tls && !sec.auth);
    const char *a2[] = {"factumd", "--certificate-file", "/c/node.crt", "--certificate-private-key-file=/c/node.key"};
    setenv("EVENTSTORE_TRUSTED_ROOT_CERTIFICATES_PATH", "/c/ca", 1);
    CHECK_RC(parse(&c, 4, a2), 0);
    unsetenv("EVENTSTORE_TRUSTED_ROOT_CERTIFICATES_PATH");
    CHECK(!strcmp(c.certificate_file, "/c/node.crt") && !strcmp(c.certificate_private_key_file, "/c/node.key"));
    CHECK(!strcmp(c.trusted_root_certificates_path, "/c/ca"));
    CHECK_RC(srv_config_check_certificates(&c), 0);
    char dir[512], path[600];
    harness_tmpdir(dir, sizeof dir, "cfgtls");
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/factumd.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("CertificateFile: /f/a.crt\nCertificatePrivateKeyFile: /f/a.key\nTrustedRootCertificatesPath: /f/ca\n", f);
    fclose(f);
    const char *a3[] = {"factumd", "--config", path};
    setenv("KURRENTDB_CERTIFICATE_FILE", "/e/b.crt", 1);
    CHECK_RC(parse(&c, 3, a3), 0);
    unsetenv("KURRENTDB_CERTIFICATE_FILE");
    CHECK(!strcmp(c.certificate_file, "/e/b.crt")); /* the environment beats the file */
    CHECK(!strcmp(c.certificate_private_key_file, "/f/a.key") && !strcmp(c.trusted_root_certificates_path, "/f/ca"));
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_defaults_and_flags);
    RUN(t_env_and_file);
    RUN(t_projections);
    RUN(t_security);
    return harness_done();
}
