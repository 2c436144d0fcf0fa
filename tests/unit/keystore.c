/* Unit tests of the key store of crypto-shredding (KS-1..4, ADR 0027): the
 * master key file's checks; keys made, kept and found again after a
 * reopen; no key in the clear in the file; a wrong master key refused; a
 * shredded subject gone from the file and its id never given again; a torn
 * last record cut; a damaged header refused; a power cut at every
 * operation of a shred or of a new subject's append leaves the old set or
 * the new one; sealing bound to its key, its additional data and its
 * bytes. */
#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "store/keystore.h"

static char dir[512];

static void write_file(const char *path, const void *b, size_t n, int mode)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(b, 1, n, f) == n);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static uint8_t buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void t_master(void)
{
    harness_tmpdir(dir, sizeof dir, "ks_master");
    mkdir(dir, 0755);
    char p[600];
    uint8_t m[KS_KEY_LEN], raw[KS_KEY_LEN];
    for (unsigned i = 0; i < KS_KEY_LEN; i++) raw[i] = (uint8_t)(i * 7 + 1);
    const char *why = NULL;
    snprintf(p, sizeof p, "%s/raw.key", dir);
    write_file(p, raw, sizeof raw, 0600);
    CHECK_RC(ks_master_load(p, m, &why), 0);
    CHECK(!memcmp(m, raw, sizeof raw));
    char hex[2 * KS_KEY_LEN + 2];
    for (unsigned i = 0; i < KS_KEY_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * KS_KEY_LEN] = '\n';
    snprintf(p, sizeof p, "%s/hex.key", dir);
    write_file(p, hex, 2 * KS_KEY_LEN + 1, 0400);
    memset(m, 0, sizeof m);
    CHECK_RC(ks_master_load(p, m, &why), 0);
    CHECK(!memcmp(m, raw, sizeof raw));
    chmod(p, 0644);
    CHECK_RC(ks_master_load(p, m, &why), FACTUM_EKEY);
    CHECK(why && strstr(why, "chmod 600"));
    snprintf(p, sizeof p, "%s/short.key", dir);
    write_file(p, raw, 31, 0600);
    CHECK_RC(ks_master_load(p, m, &why), FACTUM_EKEY);
    hex[5] = 'g';
    snprintf(p, sizeof p, "%s/badhex.key", dir);
    write_file(p, hex, 2 * KS_KEY_LEN, 0600);
    CHECK_RC(ks_master_load(p, m, &why), FACTUM_EKEY);
    snprintf(p, sizeof p, "%s/none.key", dir);
    CHECK_RC(ks_master_load(p, m, &why), FACTUM_EKEY);
    CHECK_RC(ks_master_load(dir, m, &why), FACTUM_EKEY); /* a directory */
    harness_rm_rf(dir);
}

#define NSUB 500
static uint8_t keys[NSUB][KS_KEY_LEN];
static uint32_t ids[NSUB];

static void t_keys(void)
{
    harness_tmpdir(dir, sizeof dir, "ks_keys");
    uint8_t master[KS_KEY_LEN], other[KS_KEY_LEN];
    memset(master, 0x5a, sizeof master);
    memset(other, 0xa5, sizeof other);
    keystore *ks = NULL;
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), -ENOENT);
    CHECK_RC(ks_open(io_posix(), dir, master, 1, &ks), 0);
    REQUIRE(ks);
    char s[32];
    uint8_t k[KS_KEY_LEN];
    uint32_t id;
    CHECK_RC(ks_subject_key(ks, "user-0", 6, 0, &id, k), FACTUM_ENOTFOUND);
    CHECK_RC(ks_subject_key(ks, "", 0, 1, &id, k), FACTUM_EINVAL);
    for (int i = 0; i < NSUB; i++) {
        int n = snprintf(s, sizeof s, "user-%d", i);
        CHECK_RC(ks_subject_key(ks, s, (size_t)n, 1, &ids[i], keys[i]), 0);
        CHECK_EQ_U64(ids[i], (uint64_t)i + 1);
    }
    for (int i = 1; i < NSUB; i++) CHECK(memcmp(keys[i], keys[i - 1], KS_KEY_LEN) != 0);
    CHECK_RC(ks_subject_key(ks, "user-7", 6, 1, &id, k), 0); /* found, not made again */
    CHECK_EQ_U64(id, ids[7]);
    CHECK(!memcmp(k, keys[7], KS_KEY_LEN));
    CHECK_EQ_U64(ks_count(ks), NSUB);
    ks_close(ks);
    /* KS-1: no key in the clear anywhere in the file. */
    char path[600];
    snprintf(path, sizeof path, "%s/keystore", dir);
    size_t flen;
    uint8_t *file = slurp(path, &flen);
    REQUIRE(file);
    for (int i = 0; i < NSUB; i++) CHECK(memmem(file, flen, keys[i], KS_KEY_LEN) == NULL);
    CHECK(memmem(file, flen, master, KS_KEY_LEN) == NULL);
    /* Reopened: the same keys under the same ids; another master key is refused. */
    CHECK_RC(ks_open(io_posix(), dir, other, 0, &ks), FACTUM_EKEY);
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), 0);
    REQUIRE(ks);
    for (int i = 0; i < NSUB; i += 37) {
        int n = snprintf(s, sizeof s, "user-%d", i);
        CHECK_RC(ks_subject_key(ks, s, (size_t)n, 0, &id, k), 0);
        CHECK_EQ_U64(id, ids[i]);
        CHECK(!memcmp(k, keys[i], KS_KEY_LEN));
        CHECK_RC(ks_key(ks, ids[i], k), 0);
        CHECK(!memcmp(k, keys[i], KS_KEY_LEN));
    }
    /* KS-3: a shred takes the subject out of the file; its id is not given again. */
    CHECK_RC(ks_shred(ks, "user-42", 7, &id), 0);
    CHECK_EQ_U64(id, ids[42]);
    CHECK_RC(ks_shred(ks, "user-42", 7, NULL), FACTUM_ENOTFOUND);
    CHECK_RC(ks_subject_key(ks, "user-42", 7, 0, &id, k), FACTUM_ENOTFOUND);
    CHECK_RC(ks_key(ks, ids[42], k), FACTUM_ENOTFOUND);
    CHECK_RC(ks_shred(ks, "user-499", 8, NULL), 0); /* the newest id */
    CHECK_RC(ks_subject_key(ks, "user-42", 7, 1, &id, k), 0); /* a new key, a new id */
    CHECK(id > (uint32_t)NSUB);
    CHECK(memcmp(k, keys[42], KS_KEY_LEN) != 0);
    ks_close(ks);
    file = slurp(path, &flen);
    REQUIRE(file);
    CHECK(memmem(file, flen, "user-499", 8) == NULL);
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), 0);
    REQUIRE(ks);
    CHECK_RC(ks_subject_key(ks, "user-499", 8, 0, &id, k), FACTUM_ENOTFOUND);
    CHECK_RC(ks_subject_key(ks, "user-42", 7, 0, &id, k), 0);
    CHECK(id > (uint32_t)NSUB);
    CHECK_EQ_U64(ks_count(ks), NSUB - 1);
    ks_close(ks);
    /* A torn last record is cut; what precedes it stays. */
    FILE *f = fopen(path, "ab");
    REQUIRE(f);
    fwrite("\x40\x00\x00\x00torn", 1, 8, f);
    fclose(f);
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), 0);
    REQUIRE(ks);
    CHECK_EQ_U64(ks_count(ks), NSUB - 1);
    CHECK_RC(ks_subject_key(ks, "late", 4, 1, &id, k), 0);
    ks_close(ks);
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), 0);
    REQUIRE(ks);
    CHECK_EQ_U64(ks_count(ks), NSUB);
    ks_close(ks);
    /* A damaged header. */
    file = slurp(path, &flen);
    file[13] ^= 1;
    write_file(path, file, flen, 0644);
    CHECK_RC(ks_open(io_posix(), dir, master, 0, &ks), FACTUM_ECORRUPT);
    harness_rm_rf(dir);
}

/* KS-2: a power cut before every operation of a shred, and of a new
 * subject's append: the file is the old set or the new one. */
static void t_power_cut(void)
{
    uint64_t seed = harness_seed("keystore_cut");
    h_rng r = {seed};
    harness_tmpdir(dir, sizeof dir, "ks_cut");
    uint8_t master[KS_KEY_LEN];
    memset(master, 0x33, sizeof master);
    uint64_t rounds = 0;
    /* what: 0 a shred, 1 a new subject, 2 a new subject written and made
     * durable apart (create 2, then ks_sync: as the writer does per group) */
    for (int what = 0; what < 3; what++) {
        for (uint64_t k = 1;; k++) {
            harness_rm_rf(dir);
            keystore *ks;
            REQUIRE(ks_open(io_posix(), dir, master, 1, &ks) == 0);
            uint8_t key[KS_KEY_LEN], kk[KS_KEY_LEN];
            uint32_t id;
            for (int i = 0; i < 20; i++) {
                char s[16];
                int n = snprintf(s, sizeof s, "s-%d", i);
                REQUIRE(ks_subject_key(ks, s, (size_t)n, 1, &id, keys[i]) == 0);
            }
            ks_close(ks);
            io_fault *f = io_fault_new(h_rand(&r));
            REQUIRE(ks_open(io_fault_env(f), dir, master, 0, &ks) == 0);
            REQUIRE(io_fault_watch(f, dir) == 0);
            io_fault_cut(f, k);
            int rc = what == 0 ? ks_shred(ks, "s-5", 3, NULL) : ks_subject_key(ks, "new", 3, what, &id, key);
            if (what == 2 && !rc) rc = ks_sync(ks);
            int cut = io_fault_ops(f) >= k;
            ks_close(ks);
            CHECK_RC(io_fault_power_loss(f, (int)h_below(&r, 3)), 0);
            io_fault_free(f);
            REQUIRE(ks_open(io_posix(), dir, master, 0, &ks) == 0);
            size_t want_old = 20, want_new = what == 0 ? 19 : 21;
            size_t have = ks_count(ks);
            CHECK(have == want_old || have == want_new);
            if (!rc && !cut) CHECK_EQ_U64(have, want_new);
            for (int i = 0; i < 20; i++) {
                char s[16];
                int n = snprintf(s, sizeof s, "s-%d", i);
                int g = ks_subject_key(ks, s, (size_t)n, 0, &id, kk);
                if (what == 0 && i == 5 && have == want_new) {
                    CHECK_RC(g, FACTUM_ENOTFOUND);
                    continue;
                }
                CHECK_RC(g, 0);
                CHECK(!memcmp(kk, keys[i], KS_KEY_LEN));
            }
            if (what >= 1 && have == want_new) {
                CHECK_RC(ks_subject_key(ks, "new", 3, 0, &id, kk), 0);
                if (!rc) CHECK(!memcmp(kk, key, KS_KEY_LEN));
            }
            ks_close(ks);
            rounds++;
            if (!cut || h_failed) break;
        }
    }
    printf("  %" PRIu64 " cut points\n", rounds);
    CHECK(rounds >= 6);
    harness_rm_rf(dir);
}

static void t_seal(void)
{
    uint8_t key[KS_KEY_LEN], other[KS_KEY_LEN];
    memset(key, 1, sizeof key);
    memset(other, 2, sizeof other);
    const char aad[] = "stream\0type\0position 7", aad2[] = "stream\0type\0position 8";
    const char msg[] = "{\"ssn\":\"123-45-6789\"}";
    uint8_t a[sizeof msg + KS_SEAL_EXTRA], b[sizeof msg + KS_SEAL_EXTRA], out[sizeof msg];
    CHECK_RC(ks_seal(key, aad, sizeof aad, msg, sizeof msg, a), 0);
    CHECK_RC(ks_seal(key, aad, sizeof aad, msg, sizeof msg, b), 0);
    CHECK(memcmp(a, b, KS_NONCE_LEN) != 0);                        /* random nonces */
    CHECK(memmem(a, sizeof a, "123-45", 6) == NULL);              /* no plaintext */
    CHECK_RC(ks_unseal(key, aad, sizeof aad, a, sizeof a, out), 0);
    CHECK(!memcmp(out, msg, sizeof msg));
    CHECK_RC(ks_unseal(other, aad, sizeof aad, a, sizeof a, out), FACTUM_ECORRUPT);
    CHECK_RC(ks_unseal(key, aad2, sizeof aad2, a, sizeof a, out), FACTUM_ECORRUPT); /* KS-4 */
    a[KS_NONCE_LEN + 3] ^= 0x10;
    CHECK_RC(ks_unseal(key, aad, sizeof aad, a, sizeof a, out), FACTUM_ECORRUPT);
    CHECK_RC(ks_unseal(key, aad, sizeof aad, a, KS_SEAL_EXTRA - 1, out), FACTUM_ECORRUPT);
    uint8_t e[KS_SEAL_EXTRA];
    CHECK_RC(ks_seal(key, NULL, 0, NULL, 0, e), 0); /* an empty body */
    CHECK_RC(ks_unseal(key, NULL, 0, e, sizeof e, out), 0);
}

int main(void)
{
    RUN(t_master);
    RUN(t_keys);
    RUN(t_power_cut);
    RUN(t_seal);
    return harness_done();
}
