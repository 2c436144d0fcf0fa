/* Unit test of the log's segment table (log.h: pages of LOG_SEG_PAGE
 * segments, no 65,536 cap) and of its descriptors (only the last segments
 * keep one open): a log of LOG_SEG_PAGE + 5 segments opens with a limit of
 * 256 open files, a batch is written, synced and scanned in its last
 * segment (the table's second page), the descriptors stay few, and a
 * missing segment in the numbering is still refused. */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"

#define SEG (1u << 20)

static char dir[512], logdir[600];
static uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* A segment file as the writer makes it (header, then zeros: sparse here). */
static void make_segment(uint64_t no)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%08" PRIu64 ".seg", logdir, no);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    uint8_t h[64] = {0};
    memcpy(h, LOG_SEG_MAGIC, 8);
    base_put32(h + 8, FACTUM_FORMAT_VERSION);
    base_put32(h + 12, LOG_SEG_HEADER);
    base_put64(h + 16, no);
    base_put64(h + 24, SEG);
    memcpy(h + 32, uuid, 16);
    base_put64(h + 48, 1);
    base_put32(h + 56, base_crc32c(0, h, 56));
    CHECK(pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h);
    CHECK(ftruncate(fd, SEG) == 0);
    close(fd);
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

static void t_many_segments(void)
{
    harness_tmpdir(dir, sizeof dir, "log_table");
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    REQUIRE(mkdir(logdir, 0755) == 0);
    const uint64_t n = LOG_SEG_PAGE + 5;
    for (uint64_t no = 0; no < n; no++)
        make_segment(no);
    struct rlimit old, low = {256, 0};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low.rlim_max = old.rlim_max;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);

    flog *l = NULL;
    char why[256] = "";
    int rc = log_open(io_posix(), logdir, NULL, SEG, uuid, 0, 0, why, sizeof why, &l);
    CHECK_RC(rc, 0);
    if (rc) fprintf(stderr, "log_open: %s\n", why);
    REQUIRE(l);
    CHECK_EQ_U64(atomic_load(&l->n_segs), n);
    CHECK(log_seg_get(l, n - 1) != NULL);
    CHECK(log_seg_get(l, n) == NULL);
    CHECK(open_fds() < 64);

    /* One batch of one event into the last segment (the second page). */
    factum_event ev;
    memset(&ev, 0, sizeof ev);
    ev.stream = "far-away";
    ev.stream_len = 8;
    ev.type = "Arrived";
    ev.type_len = 7;
    ev.data = (const uint8_t *)"{\"n\":1}";
    ev.data_len = 7;
    ev.position = 1;
    ev.timestamp_ns = 5;
    uint32_t elen = log_event_frame_len(ev.stream_len, ev.type_len, ev.data_len, 0);
    uint8_t buf[4096];
    log_encode_event(buf + LOG_BATCH_CHAIN_LEN, &ev, 0);
    log_hasher h;
    REQUIRE(log_hasher_init(&h) == 0);
    uint8_t g[32], hash[32];
    log_chain_genesis(&h, uuid, g);
    log_encode_batch(buf, 1, 1, elen, 5, LOG_BATCH_DURABLE, NULL);
    CHECK_RC(log_chain_batch(&h, g, buf, buf + LOG_BATCH_CHAIN_LEN, elen, hash), 0);
    log_encode_batch(buf, 1, 1, elen, 5, LOG_BATCH_DURABLE, hash);
    log_hasher_free(&h);
    uint64_t lo = (n - 1) * SEG + LOG_SEG_HEADER, at;
    log_set_tail(l, lo);
    CHECK_RC(log_reserve(l, LOG_BATCH_CHAIN_LEN + elen, &at), 0);
    CHECK_EQ_U64(at, lo);
    CHECK_RC(log_write(l, lo, buf, LOG_BATCH_CHAIN_LEN + elen), 0);
    CHECK_RC(log_sync(l), 0);
    CHECK(log_seg_chained(l, lo));
    log_scan_result res;
    CHECK_RC(log_scan(l, lo, 1, NULL, NULL, NULL, &res), 0);
    CHECK_EQ_U64(res.batches, 1);
    CHECK_EQ_U64(res.events, 1);
    CHECK(!res.corrupt && !res.torn);
    const uint8_t *p = log_ptr(l, lo + LOG_BATCH_CHAIN_LEN, NULL);
    REQUIRE(p);
    factum_event back;
    int type;
    CHECK(log_decode_frame(p, elen, &type, &back, NULL, NULL) == (int)elen);
    CHECK(back.stream_len == 8 && !memcmp(back.stream, "far-away", 8));
    CHECK(open_fds() < 64);
    /* A sync of older segments (as an index checkpoint asks) opens and
     * closes what it needs. */
    CHECK_RC(log_sync_upto(l, 3 * SEG), 0);
    log_close(l);

    /* A hole in the numbering is refused, past the first page as well. */
    char p17[700];
    snprintf(p17, sizeof p17, "%s/%08d.seg", logdir, 4097);
    REQUIRE(unlink(p17) == 0);
    l = NULL;
    CHECK_RC(log_open(io_posix(), logdir, NULL, SEG, uuid, 0, 0, why, sizeof why, &l), FACTUM_ECORRUPT);
    CHECK(strstr(why, "segment 4097 is missing") != NULL);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_many_segments);
    return harness_done();
}
