/* Reads that never wait for the disk (FACTUM_NOWAIT, factum.h; the probe
 * of src/log/resident.c, RES-1): after the store's files were dropped from
 * the page cache (posix_fadvise DONTNEED, as the benchmark does), a NOWAIT
 * read either returns exactly what the ordinary read returns or
 * -EWOULDBLOCK with nothing; once the ordinary read brought the pages in,
 * every NOWAIT read succeeds with the same events: streams both ways, $all
 * both ways with a filter, and a subscription (factum_sub_set_nowait) that
 * falls back to a waiting poll delivers the same sequence as one that never
 * used the flag. On a file system whose pages cannot be dropped (tmpfs) the
 * cold half is reported as skipped and the rest still runs. The seed picks
 * the streams and sizes (FACTUM_SEED replays it). */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>

#define N_STREAMS 24
#define N_EVENTS  3000

static h_rng rng;
static uint64_t n_per[N_STREAMS];

/* Drop every file of dir/log from the page cache; 1 when the first page of
 * the first segment is then out of memory (checked with our own mapping). */
static int drop_log(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/log", dir);
    DIR *d = opendir(p);
    if (!d) return 0;
    struct dirent *e;
    int evicted = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[1200];
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        int fd = open(f, O_RDONLY);
        if (fd < 0) continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (!strcmp(e->d_name, "00000000.seg")) {
            void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
            unsigned char v = 1;
            if (m != MAP_FAILED) {
                if (!mincore(m, 4096, &v) && !(v & 1)) evicted = 1;
                munmap(m, 4096);
            }
        }
        close(fd);
    }
    closedir(d);
    return evicted;
}

static int same_events(const factum_event *a, const factum_event *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].position != b[i].position || a[i].version != b[i].version || a[i].data_len != b[i].data_len ||
            memcmp(a[i].data, b[i].data, a[i].data_len) || memcmp(a[i].id, b[i].id, 16))
            return 0;
    return 1;
}

static void fill(factum_store *s)
{
    char data[1024];
    for (int i = 0; i < N_EVENTS; i++) {
        int k = (int)h_below(&rng, N_STREAMS);
        char st[32];
        snprintf(st, sizeof st, "cold-%d", k);
        size_t pad = (size_t)h_below(&rng, 600);
        int len = snprintf(data, sizeof data, "{\"i\":%d,\"pad\":\"", i);
        memset(data + len, 'x', pad);
        snprintf(data + len + pad, sizeof data - len - pad, "\"}");
        factum_event_data e = harness_event("Cold", data);
        if (factum_append(s, st, FACTUM_ANY, &e, 1, NULL)) return;
        n_per[k]++;
    }
}

/* One stream read with and without the flag: the same, or -EWOULDBLOCK and
 * nothing (counted in *blocked). */
static void compare_stream(factum_store *s, const char *st, uint64_t from, int dir, size_t *blocked)
{
    factum_event a[64], b[64];
    size_t na = 0, nb = 99;
    uint64_t xa = 0, xb = 0;
    int rb = factum_read_stream(s, st, from, dir | FACTUM_NOWAIT, b, 64, &nb, &xb);
    CHECK_RC(factum_read_stream(s, st, from, dir, a, 64, &na, &xa), 0);
    if (rb == -EWOULDBLOCK) {
        CHECK_EQ_U64(nb, 0);
        if (blocked) (*blocked)++;
        else CHECK(!"NOWAIT read blocked on warm pages");
        return;
    }
    CHECK_RC(rb, 0);
    CHECK_EQ_U64(nb, na);
    CHECK_EQ_U64(xb, xa);
    CHECK(same_events(a, b, na < nb ? na : nb));
}

static void compare_all(factum_store *s, uint64_t from, int dir, const factum_filter *f, size_t *blocked)
{
    factum_event a[64], b[64];
    size_t na = 0, nb = 99;
    uint64_t xa = 0, xb = 0;
    int rb = factum_read_all(s, from, dir | FACTUM_NOWAIT, f, 500, b, 64, &nb, &xb);
    CHECK_RC(factum_read_all(s, from, dir, f, 500, a, 64, &na, &xa), 0);
    if (rb == -EWOULDBLOCK) {
        CHECK_EQ_U64(nb, 0);
        if (blocked) (*blocked)++;
        else CHECK(!"NOWAIT $all read blocked on warm pages");
        return;
    }
    CHECK_RC(rb, 0);
    CHECK_EQ_U64(nb, na);
    CHECK_EQ_U64(xb, xa);
    CHECK(same_events(a, b, na < nb ? na : nb));
}

/* Every event of $all through a subscription: with nowait (falling back to
 * a waiting poll on -EWOULDBLOCK) or without. Positions into pos[]. */
static size_t sub_all(factum_store *s, int nowait, uint64_t *pos, size_t cap, size_t *fallbacks)
{
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.from = FACTUM_SUB_START;
    factum_sub *sub;
    if (factum_sub_open(s, &so, &sub)) return 0;
    size_t n = 0;
    for (int guard = 0; guard < 100000; guard++) {
        factum_sub_item it[40];
        size_t got = 0;
        factum_sub_set_nowait(sub, nowait);
        int rc = factum_sub_poll(sub, it, 40, &got, 0);
        if (rc == -EWOULDBLOCK) {
            CHECK_EQ_U64(got, 0);
            (*fallbacks)++;
            factum_sub_set_nowait(sub, 0);
            rc = factum_sub_poll(sub, it, 40, &got, 0);
        }
        CHECK_RC(rc, 0);
        if (rc) break;
        int caught_up = 0;
        for (size_t i = 0; i < got; i++) {
            if (it[i].kind == FACTUM_SUB_EVENT && n < cap) pos[n++] = it[i].event.position;
            if (it[i].kind == FACTUM_SUB_CAUGHT_UP) caught_up = 1;
        }
        if (caught_up) break;
    }
    factum_sub_close(sub);
    return n;
}

static void t_nowait_cold_then_warm(void)
{
    rng.s = harness_seed("cold_read");
    char d[512];
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED; /* closing syncs: the files are whole before they are dropped */
    factum_store *s;
    REQUIRE(factum_store_open(harness_tmpdir(d, sizeof d, "cold-read"), &o, &s) == 0);
    fill(s);
    CHECK_RC(factum_store_close(s), 0);
    int evicted = drop_log(d);
    REQUIRE(factum_store_open(d, &o, &s) == 0);
    evicted &= drop_log(d); /* what opening read back in (recovery's scan releases its mapping) */

    /* Cold: the same, or nothing. The first stream's first page is at the
     * start of the log, which was shown evicted. */
    size_t blocked = 0, reads = 0;
    factum_filter *f;
    const char *pre[] = {"cold-1"};
    REQUIRE(factum_filter_new(1, pre, 1, NULL, 0, &f) == 0);
    compare_all(s, 1, FACTUM_FORWARD, NULL, &blocked);
    reads++;
    for (int k = 0; k < N_STREAMS; k++) {
        char st[32];
        snprintf(st, sizeof st, "cold-%d", k);
        if (!n_per[k]) continue;
        compare_stream(s, st, 0, FACTUM_FORWARD, &blocked);
        compare_stream(s, st, FACTUM_END, FACTUM_BACKWARD, &blocked);
        reads += 2;
    }
    if (evicted) {
        printf("  cold: %zu of %zu NOWAIT reads said -EWOULDBLOCK\n", blocked, reads);
        CHECK(blocked > 0);
    } else {
        printf("  SKIP cold half: the page cache kept the log (tmpfs?)\n");
    }

    /* Warm: the ordinary reads above brought every page they touched in;
     * the flag changes nothing now. */
    for (int k = 0; k < N_STREAMS; k++) {
        char st[32];
        snprintf(st, sizeof st, "cold-%d", k);
        if (!n_per[k]) continue;
        uint64_t mid = h_below(&rng, n_per[k]);
        compare_stream(s, st, 0, FACTUM_FORWARD, NULL);
        compare_stream(s, st, FACTUM_END, FACTUM_BACKWARD, NULL);
        /* pages further in were not read yet: bring them in, then compare */
        factum_event tmp[64];
        size_t n;
        for (uint64_t v = 0; v < n_per[k]; v += 64) factum_read_stream(s, st, v, FACTUM_FORWARD, tmp, 64, &n, NULL);
        compare_stream(s, st, mid, FACTUM_FORWARD, NULL);
        compare_stream(s, st, mid, FACTUM_BACKWARD, NULL);
    }
    factum_event tmp[64];
    size_t n;
    uint64_t nx = 1;
    for (int g = 0; g < 1000 && nx <= N_EVENTS; g++) factum_read_all(s, nx, FACTUM_FORWARD, NULL, 0, tmp, 64, &n, &nx);
    compare_all(s, 1, FACTUM_FORWARD, f, NULL);
    compare_all(s, 1 + h_below(&rng, N_EVENTS), FACTUM_FORWARD, NULL, NULL);
    compare_all(s, 1 + h_below(&rng, N_EVENTS), FACTUM_BACKWARD, NULL, NULL);
    compare_all(s, FACTUM_END, FACTUM_BACKWARD, f, NULL);
    factum_filter_free(f);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(d);
}

static void t_sub_nowait_same_sequence(void)
{
    char d[512];
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s;
    REQUIRE(factum_store_open(harness_tmpdir(d, sizeof d, "cold-sub"), &o, &s) == 0);
    memset(n_per, 0, sizeof n_per);
    fill(s);
    CHECK_RC(factum_store_close(s), 0);
    drop_log(d);
    REQUIRE(factum_store_open(d, &o, &s) == 0);
    drop_log(d);
    static uint64_t a[N_EVENTS + 16], b[N_EVENTS + 16];
    size_t fb = 0, fb0 = 0;
    size_t nb = sub_all(s, 1, b, N_EVENTS + 16, &fb);
    size_t na = sub_all(s, 0, a, N_EVENTS + 16, &fb0);
    printf("  subscription: %zu events, %zu polls fell back to waiting\n", nb, fb);
    CHECK_EQ_U64(fb0, 0);
    CHECK(na >= N_EVENTS); /* plus the store's own events */
    CHECK_EQ_U64(nb, na);
    CHECK(!memcmp(a, b, na * sizeof *a));
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(d);
}

static void t_bad_direction(void)
{
    char d[512];
    factum_options o;
    harness_small_opts(&o);
    factum_store *s;
    REQUIRE(factum_store_open(harness_tmpdir(d, sizeof d, "cold-bad"), &o, &s) == 0);
    factum_event_data e = harness_event("T", "{}");
    CHECK_RC(factum_append(s, "x", FACTUM_ANY, &e, 1, NULL), 0);
    factum_event ev;
    size_t n = 7;
    CHECK_RC(factum_read_stream(s, "x", 0, 2 | FACTUM_NOWAIT, &ev, 1, &n, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_read_all(s, 1, 2 | FACTUM_NOWAIT, NULL, 0, &ev, 1, &n, NULL), FACTUM_EINVAL);
    CHECK_RC(factum_sub_set_nowait(NULL, 1), FACTUM_EINVAL);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(d);
}

int main(void)
{
    RUN(t_nowait_cold_then_warm);
    RUN(t_sub_nowait_same_sequence);
    RUN(t_bad_direction);
    return harness_done();
}
