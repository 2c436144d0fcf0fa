/* Unit tests of online backup and restore (backup.c, BK-1..4): a backup
 * taken while a thread appends holds exactly positions 1..P, with the live
 * store's chain head at P, and restores into a store equal to the live one
 * up to P; an incremental backup keeps the segments it had whole; an empty
 * store; and the refusals: a destination holding something else or another
 * store's backup, a restore into a non-empty directory or from a directory
 * without a backup, a damaged backup; a backup stopped half-way. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "base/base.h"
#include "store/store_int.h"

static char live[512], bdir[512], rdir[512];

static factum_store *open_at(const char *d)
{
    factum_options o;
    harness_small_opts(&o);
    factum_store *s = NULL;
    int rc = factum_store_open(d, &o, &s);
    if (rc) fprintf(stderr, "open %s: %s\n", d, factum_strerror(rc));
    return s;
}

typedef struct writer_arg {
    factum_store *s;
    _Atomic int stop;
    _Atomic uint64_t appended;
    int failed;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (uint64_t i = 0; !atomic_load(&w->stop); i++) {
        factum_event_data e[3];
        for (int k = 0; k < 3; k++)
            e[k] =
                harness_event("Deposited", "{\"amount\":100,\"note\":\"a payment while the backup runs\"}");
        char stream[24];
        snprintf(stream, sizeof stream, "acct-%d", (int)(i % 37));
        if (factum_append(w->s, stream, FACTUM_ANY, e, 3, NULL)) {
            w->failed = 1;
            break;
        }
        atomic_fetch_add(&w->appended, 3);
    }
    return NULL;
}

/* Every event 1..p of a and b is the same (position, stream, version, id,
 * data). */
static void same_prefix(factum_store *a, factum_store *b, uint64_t p)
{
    factum_event ea[256], eb[256];
    uint64_t from = 1;
    while (from <= p) {
        size_t na, nb;
        uint64_t next;
        CHECK_RC(factum_read_all(a, from, FACTUM_FORWARD, NULL, 0, ea, 256, &na, &next), 0);
        CHECK_RC(factum_read_all(b, from, FACTUM_FORWARD, NULL, 0, eb, 256, &nb, &next), 0);
        REQUIRE(na > 0 && nb > 0);
        size_t n = na < nb ? na : nb;
        for (size_t i = 0; i < n && from + i <= p; i++) {
            CHECK_EQ_U64(ea[i].position, eb[i].position);
            CHECK_EQ_U64(ea[i].version, eb[i].version);
            CHECK(ea[i].stream_len == eb[i].stream_len &&
                  !memcmp(ea[i].stream, eb[i].stream, ea[i].stream_len));
            CHECK(!memcmp(ea[i].id, eb[i].id, 16));
            CHECK(ea[i].data_len == eb[i].data_len && !memcmp(ea[i].data, eb[i].data, ea[i].data_len));
        }
        from += n;
    }
}

static void t_backup_while_appending(void)
{
    harness_tmpdir(live, sizeof live, "bk_live");
    harness_tmpdir(bdir, sizeof bdir, "bk_backup");
    harness_tmpdir(rdir, sizeof rdir, "bk_restored");
    factum_store *s = open_at(live);
    REQUIRE(s);
    writer_arg w = {.s = s};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, writer, &w) == 0);
    while (atomic_load(&w.appended) < 20000)
        usleep(1000);
    factum_backup_report r;
    CHECK_RC(factum_backup(s, bdir, NULL, &r), 0);
    uint64_t at_end = atomic_load(&w.appended);
    while (atomic_load(&w.appended) < at_end + 3000) /* appends went on during and after it */
        usleep(1000);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    CHECK(!w.failed);
    CHECK(r.position >= 20000);
    CHECK(r.position < atomic_load(&s->committed_pos));
    CHECK(r.verified);
    CHECK(r.segments > 2);
    CHECK_EQ_U64(r.linked + r.copied, r.segments);
    CHECK(r.linked >= 1); /* the same file system: sealed segments are links */
    CHECK_EQ_U64(r.head.position, r.position);
    CHECK(!memcmp(r.head.store_uuid, s->uuid, 16));

    factum_backup_report d;
    CHECK_RC(factum_backup_read(bdir, &d), 0);
    CHECK_EQ_U64(d.position, r.position);
    CHECK(!memcmp(d.head.hash, r.head.hash, 32));

    factum_backup_report rr;
    CHECK_RC(factum_restore(bdir, rdir, NULL, &rr), 0);
    CHECK(rr.verified);
    factum_store *b = open_at(rdir);
    REQUIRE(b);
    CHECK_EQ_U64(atomic_load(&b->committed_pos), r.position);
    same_prefix(s, b, r.position);
    factum_chain_head h;
    CHECK_RC(factum_chain_get_head(b, &h), 0);
    CHECK(!memcmp(h.hash, r.head.hash, 32));
    /* The restored store is a store: it takes appends and goes on chaining. */
    factum_event_data e = harness_event("After", "{}");
    factum_append_result ar;
    CHECK_RC(factum_append(b, "after-restore", FACTUM_NO_STREAM, &e, 1, &ar), 0);
    CHECK_EQ_U64(ar.first_position, r.position + 1);
    factum_store_close(b);
    factum_store_close(s);
    /* The live store's chain passes through the backup's head. */
    factum_verify_options vo = {.chain = 1, .expect = &r.head};
    factum_verify_report vr;
    CHECK_RC(factum_verify_with(live, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.receipt_checked);
    CHECK_RC(factum_verify_with(rdir, &vo, NULL, NULL, &vr), 0);
    CHECK(vr.receipt_checked);
    harness_rm_rf(rdir);
}

/* Into the same directory again: the segments it had whole are kept. */
static void t_incremental(void)
{
    factum_store *s = open_at(live);
    REQUIRE(s);
    factum_backup_report old;
    CHECK_RC(factum_backup_read(bdir, &old), 0);
    writer_arg w = {.s = s};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, writer, &w) == 0);
    while (atomic_load(&w.appended) < 15000)
        usleep(1000);
    factum_backup_report r;
    CHECK_RC(factum_backup(s, bdir, NULL, &r), 0);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    CHECK(r.position > old.position);
    CHECK_EQ_U64(r.kept, old.segments - 1);
    CHECK_EQ_U64(r.kept + r.linked + r.copied, r.segments);
    CHECK(r.verified);
    CHECK_RC(factum_restore(bdir, rdir, NULL, NULL), 0);
    factum_store *b = open_at(rdir);
    REQUIRE(b);
    CHECK_EQ_U64(atomic_load(&b->committed_pos), r.position);
    same_prefix(s, b, r.position);
    factum_store_close(b);
    factum_store_close(s);
    harness_rm_rf(rdir);
}

static void t_refusals(void)
{
    factum_store *s = open_at(live);
    REQUIRE(s);
    char other[512], p[1200];
    harness_tmpdir(other, sizeof other, "bk_other");
    /* A directory with something else in it. */
    REQUIRE(mkdir(other, 0755) == 0 || errno == EEXIST);
    snprintf(p, sizeof p, "%s/notes.txt", other);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fputs("mine\n", f);
    fclose(f);
    CHECK_RC(factum_backup(s, other, NULL, NULL), FACTUM_EEXISTS);
    CHECK_RC(factum_restore(bdir, other, NULL, NULL), FACTUM_EEXISTS);
    CHECK_RC(factum_restore(other, rdir, NULL, NULL), FACTUM_ENOTSTORE);
    harness_rm_rf(other);
    /* Another store's backup. */
    char live2[512];
    harness_tmpdir(live2, sizeof live2, "bk_live2");
    factum_store *s2 = open_at(live2);
    REQUIRE(s2);
    CHECK_RC(factum_backup(s2, bdir, NULL, NULL), FACTUM_EEXISTS);
    /* An empty store's backup. */
    harness_tmpdir(other, sizeof other, "bk_empty");
    factum_backup_report r;
    CHECK_RC(factum_backup(s2, other, NULL, &r), 0);
    CHECK_EQ_U64(r.position, 0);
    CHECK_EQ_U64(r.segments, 1);
    CHECK_RC(factum_restore(other, rdir, NULL, NULL), 0);
    harness_rm_rf(rdir);
    harness_rm_rf(other);
    factum_store_close(s2);
    harness_rm_rf(live2);
    /* A damaged backup: a byte of its last segment (always a copy, never a
     * link to the live store's file) changed. */
    CHECK_RC(factum_backup(s, bdir, NULL, &r), 0);
    snprintf(p, sizeof p, "%s/log/%08" PRIu64 ".seg", bdir, r.segments - 1);
    int fd = open(p, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t byte;
    off_t at = (off_t)(r.log_end % (1u << 20)) - 20;
    CHECK(pread(fd, &byte, 1, at) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    close(fd);
    CHECK(factum_restore(bdir, rdir, NULL, NULL) != 0);
    factum_store_close(s);
    harness_rm_rf(rdir);
    harness_rm_rf(bdir);
    harness_rm_rf(live);
}

static int stop_after_first(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    int *calls = ctx;
    (*calls)++;
    return done > 0; /* stop after the first segment */
}

/* BK-3: a backup stopped half-way (a crash would leave the same) leaves no
 * descriptor: nothing can restore from it, and the next backup into it
 * starts over and completes; an incremental run that is stopped leaves the
 * directory incomplete rather than claiming the older backup. */
static void t_stopped_backup(void)
{
    harness_tmpdir(live, sizeof live, "bk_stop_live");
    harness_tmpdir(bdir, sizeof bdir, "bk_stop_backup");
    harness_tmpdir(rdir, sizeof rdir, "bk_stop_restored");
    factum_store *s = open_at(live);
    REQUIRE(s);
    writer_arg w = {.s = s};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, writer, &w) == 0);
    while (atomic_load(&w.appended) < 15000)
        usleep(1000);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    int calls = 0;
    factum_backup_options o = {0, stop_after_first, &calls, NULL, NULL};
    CHECK_RC(factum_backup(s, bdir, &o, NULL), -ECANCELED);
    CHECK_EQ_U64(calls, 1);
    factum_backup_report r;
    CHECK_RC(factum_backup_read(bdir, &r), FACTUM_ENOTSTORE);
    CHECK_RC(factum_restore(bdir, rdir, NULL, NULL), FACTUM_ENOTSTORE);
    CHECK_RC(factum_backup(s, bdir, NULL, &r), 0);
    CHECK_EQ_U64(r.kept, 0); /* started over */
    CHECK(r.segments > 1);
    /* An incremental run stopped: the earlier descriptor is gone too. */
    factum_event_data e = harness_event("More", "{}");
    CHECK_RC(factum_append(s, "more", FACTUM_ANY, &e, 1, NULL), 0);
    calls = 0;
    CHECK_RC(factum_backup(s, bdir, &o, NULL), -ECANCELED);
    CHECK_RC(factum_backup_read(bdir, &r), FACTUM_ENOTSTORE);
    CHECK_RC(factum_backup(s, bdir, NULL, &r), 0);
    CHECK_RC(factum_restore(bdir, rdir, NULL, NULL), 0);
    factum_store *b = open_at(rdir);
    REQUIRE(b);
    CHECK_EQ_U64(atomic_load(&b->committed_pos), atomic_load(&s->committed_pos));
    factum_store_close(b);
    factum_store_close(s);
    harness_rm_rf(rdir);
    harness_rm_rf(bdir);
    harness_rm_rf(live);
}

int main(void)
{
    RUN(t_backup_while_appending);
    RUN(t_incremental);
    RUN(t_refusals);
    RUN(t_stopped_backup);
    return harness_done();
}
