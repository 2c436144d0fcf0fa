/* Unit tests of crypto-shredding in the store (SEAL-1..4, ADR 0027): the
 * events of a data subject (by category rule, by `$subject` metadata, and a
 * snapshot of a subject's stream) sealed on append, no plaintext of them in
 * any file of the data directory; reads with a reader bound open them,
 * without one they come back SEALED and empty; a store with keys refuses to
 * open without its master key or with another; a shred makes every read of
 * the subject's events SHREDDED, is recorded in `$shreds`, moves the epoch
 * and survives a reopen, while other subjects stay readable; a backup made
 * before a shred and restored with the shreds made since keeps the subject
 * shredded; a changed sealed byte (its CRC fixed) is refused as damage. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "factum.h"
#include "factum_readmodel.h"

static char dir[512], keyfile[600], keyfile2[600];

#define MARK "SECRET-PLAINTEXT-OF-SUBJECT"

static void write_key(const char *path, uint8_t seed)
{
    uint8_t k[32];
    for (unsigned i = 0; i < 32; i++)
        k[i] = (uint8_t)(seed + i * 13);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, k, sizeof k) == (ssize_t)sizeof k);
    close(fd);
}

static factum_store *open_store(const char *data, const char *mk, const char *cats, int *rc_out)
{
    factum_options o;
    factum_options_init(&o);
    o.master_key_file = mk;
    o.shred_categories = cats;
    factum_store *s = NULL;
    int rc = factum_store_open(data, &o, &s);
    if (rc_out) *rc_out = rc;
    return rc ? NULL : s;
}

static void append(factum_store *s, const char *stream, const char *data, const char *meta)
{
    factum_event_data d = {0};
    d.type = "Registered";
    d.flags = FACTUM_EVENT_JSON | (meta ? FACTUM_EVENT_META_JSON : 0);
    d.data = data;
    d.data_len = strlen(data);
    d.metadata = meta;
    d.metadata_len = meta ? strlen(meta) : 0;
    CHECK_RC(factum_append(s, stream, FACTUM_ANY, &d, 1, NULL), 0);
}

/* Files under the data directory holding MARK. */
static int marked;
static int scan_one(const char *path, const struct stat *st, int kind, struct FTW *f)
{
    (void)f;
    if (kind != FTW_F || !S_ISREG(st->st_mode) || !st->st_size) return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    uint8_t *b = malloc((size_t)st->st_size);
    ssize_t n = b ? read(fd, b, (size_t)st->st_size) : -1;
    close(fd);
    if (n > 0 && memmem(b, (size_t)n, MARK, sizeof MARK - 1)) {
        fprintf(stderr, "  plaintext found in %s\n", path);
        marked++;
    }
    free(b);
    return 0;
}
static int plaintext_files(const char *root)
{
    marked = 0;
    nftw(root, scan_one, 16, FTW_PHYS);
    return marked;
}

/* Read stream's first event; returns its flags, copies data into out. */
static uint32_t first_event(factum_store *s, const char *stream, char *out, size_t cap, char *meta,
                            size_t mcap)
{
    factum_event ev;
    size_t n = 0;
    int rc = factum_read_stream(s, stream, 0, FACTUM_FORWARD, &ev, 1, &n, NULL);
    CHECK_RC(rc, 0);
    if (rc || n != 1) return 0xffffffffu;
    snprintf(out, cap, "%.*s", (int)ev.data_len, (const char *)ev.data);
    if (meta) snprintf(meta, mcap, "%.*s", (int)ev.metadata_len, (const char *)ev.metadata);
    return ev.flags;
}

static void t_seal_and_shred(void)
{
    harness_tmpdir(dir, sizeof dir, "shred_store");
    REQUIRE(mkdir(dir, 0755) == 0);
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(keyfile, sizeof keyfile, "%s/master.key", dir);
    snprintf(keyfile2, sizeof keyfile2, "%s/other.key", dir);
    write_key(keyfile, 1);
    write_key(keyfile2, 99);

    int rc;
    factum_store *s = open_store(data, keyfile, "user, profile", &rc);
    REQUIRE(s);
    append(s, "user-42", "{\"name\":\"" MARK "-42\"}", "{\"ip\":\"" MARK "-meta\"}");
    append(s, "profile-42", "{\"bio\":\"" MARK "-bio\"}", NULL);
    append(s, "user-7", "{\"name\":\"" MARK "-7\"}", NULL);
    const char *doc = "{\"$subject\":\"alice\"}";
    CHECK_RC(factum_set_stream_metadata(s, "acct-1", FACTUM_ANY, doc, strlen(doc), NULL), 0);
    append(s, "acct-1", "{\"iban\":\"" MARK "-iban\"}", NULL);
    append(s, "order-1", "{\"total\":3}", NULL); /* no subject: in the clear */
    CHECK_RC(factum_snapshot_write(s, "user-42", 0, "UserState", "{\"s\":\"" MARK "-snap\"}",
                                   strlen("{\"s\":\"" MARK "-snap\"}"), 0, NULL),
             0);
    /* A bad $subject is refused like any bad metadata. */
    CHECK_RC(factum_set_stream_metadata(s, "acct-2", FACTUM_ANY, "{\"$subject\":7}", 14, NULL),
             FACTUM_EBADJSON);

    /* SEAL-1: nothing of it in any file, the key file included. */
    CHECK_EQ_U64(plaintext_files(data), 0);
    size_t subjects = 0;
    CHECK_RC(factum_shred_count(s, &subjects), 0);
    CHECK_EQ_U64(subjects, 3); /* 42, 7, alice */

    /* SEAL-2: without a reader, sealed and empty; unsealed streams as they are. */
    char buf[256], mbuf[256];
    uint32_t f = first_event(s, "user-42", buf, sizeof buf, mbuf, sizeof mbuf);
    CHECK(f & FACTUM_EVENT_SEALED);
    CHECK(!(f & (FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON)));
    CHECK(buf[0] == 0 && mbuf[0] == 0);
    f = first_event(s, "order-1", buf, sizeof buf, NULL, 0);
    CHECK(f == FACTUM_EVENT_JSON && !strcmp(buf, "{\"total\":3}"));

    /* With a reader: opened, data and metadata apart, flags as appended. */
    factum_reader *r = factum_reader_new();
    REQUIRE(r);
    factum_reader *prev = factum_reader_use(r);
    CHECK(prev == NULL);
    f = first_event(s, "user-42", buf, sizeof buf, mbuf, sizeof mbuf);
    CHECK(f == (FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON | FACTUM_EVENT_OPENED));
    CHECK(!strcmp(buf, "{\"name\":\"" MARK "-42\"}"));
    CHECK(!strcmp(mbuf, "{\"ip\":\"" MARK "-meta\"}"));
    CHECK(factum_reader_bytes(r) > 0);
    f = first_event(s, "acct-1", buf, sizeof buf, NULL, 0);
    CHECK(f == (FACTUM_EVENT_JSON | FACTUM_EVENT_OPENED) && strstr(buf, MARK "-iban"));
    f = first_event(s, "profile-42", buf, sizeof buf, NULL, 0);
    CHECK(strstr(buf, MARK "-bio") != NULL);
    factum_snapshot snap;
    size_t n;
    CHECK_RC(factum_snapshot_load(s, "user-42", &snap, NULL, 0, &n, NULL), 0);
    CHECK(snap.found && snap.event.data_len && strstr((const char *)snap.event.data, MARK "-snap"));
    /* $all and by position. */
    factum_event all[16];
    CHECK_RC(factum_read_all(s, 0, FACTUM_FORWARD, NULL, 0, all, 16, &n, NULL), 0);
    int opened = 0;
    uint64_t pos42 = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(!(all[i].flags & (FACTUM_EVENT_SEALED | FACTUM_EVENT_SHREDDED)));
        if (all[i].data_len && memmem(all[i].data, all[i].data_len, MARK, sizeof MARK - 1)) opened++;
        if (!strcmp(all[i].stream, "user-42")) pos42 = all[i].position;
    }
    CHECK_EQ_U64(opened, 5);
    factum_event one;
    CHECK_RC(factum_read_position(s, pos42, &one), 0);
    CHECK(one.data_len && memmem(one.data, one.data_len, MARK "-42", sizeof MARK + 2));
    /* A reset forgets what was opened. */
    factum_reader_reset(r);
    CHECK_EQ_U64(factum_reader_bytes(r), 0);

    /* Shred subject 42 (user-42, profile-42, the snapshot of user-42). */
    uint64_t epoch = factum_store_epoch(s);
    uint32_t kid = 0;
    CHECK_RC(factum_shred(s, "42", &kid), 0);
    CHECK(kid > 0);
    CHECK(factum_store_epoch(s) != epoch); /* SEAL-3 */
    CHECK_RC(factum_shred(s, "42", NULL), FACTUM_ENOTFOUND);
    f = first_event(s, "user-42", buf, sizeof buf, mbuf, sizeof mbuf);
    CHECK(f == FACTUM_EVENT_SHREDDED && !buf[0] && !mbuf[0]);
    f = first_event(s, "profile-42", buf, sizeof buf, NULL, 0);
    CHECK(f == FACTUM_EVENT_SHREDDED);
    CHECK_RC(factum_snapshot_load(s, "user-42", &snap, NULL, 0, &n, NULL), 0);
    CHECK(!snap.found); /* a shredded snapshot is not usable */
    f = first_event(s, "user-7", buf, sizeof buf, NULL, 0);
    CHECK(f == (FACTUM_EVENT_JSON | FACTUM_EVENT_OPENED) && strstr(buf, MARK "-7"));
    factum_reader_use(NULL);
    f = first_event(s, "user-42", buf, sizeof buf, NULL, 0);
    CHECK(f == FACTUM_EVENT_SHREDDED); /* shredded, reader or not */
    /* Recorded in $shreds, with the key id. */
    f = first_event(s, FACTUM_SHREDS_STREAM, buf, sizeof buf, NULL, 0);
    char want[64];
    snprintf(want, sizeof want, "\"keyId\":%u", kid);
    CHECK(strstr(buf, "\"subject\":\"42\"") && strstr(buf, want));
    CHECK_RC(factum_shred(s, "nobody", NULL), FACTUM_ENOTFOUND);
    CHECK_RC(factum_store_close(s), 0);

    /* SEAL-4: no master key, or another one: refused. */
    CHECK(open_store(data, NULL, NULL, &rc) == NULL);
    CHECK_RC(rc, FACTUM_EKEY);
    CHECK(open_store(data, keyfile2, NULL, &rc) == NULL);
    CHECK_RC(rc, FACTUM_EKEY);
    CHECK(open_store(data, NULL, "user", &rc) == NULL);
    CHECK_RC(rc, FACTUM_EINVAL); /* a category rule needs a master key */
    /* A master key inside the data directory is refused (a copy of the
     * directory would carry the key that opens it). */
    char inside[700];
    snprintf(inside, sizeof inside, "%s/master.key", data);
    write_key(inside, 1);
    CHECK(open_store(data, inside, NULL, &rc) == NULL);
    CHECK_RC(rc, FACTUM_EKEY);
    unlink(inside);

    /* After a reopen: still shredded; the others still open. */
    s = open_store(data, keyfile, "user,profile", &rc);
    REQUIRE(s);
    factum_reader_use(r);
    f = first_event(s, "user-42", buf, sizeof buf, NULL, 0);
    CHECK(f == FACTUM_EVENT_SHREDDED);
    f = first_event(s, "acct-1", buf, sizeof buf, NULL, 0);
    CHECK(strstr(buf, MARK "-iban") != NULL);
    CHECK_RC(factum_shred_count(s, &subjects), 0);
    CHECK_EQ_U64(subjects, 2);
    factum_reader_use(NULL);
    factum_reader_free(r);
    CHECK_RC(factum_store_close(s), 0);
    CHECK_EQ_U64(plaintext_files(data), 0);
}

static void t_backup_restore(void)
{
    char data[600], b1[600], b2[600], r1[600], r2[600], r3[600], ids[600];
    snprintf(data, sizeof data, "%s/bdata", dir);
    snprintf(b1, sizeof b1, "%s/b1", dir);
    snprintf(b2, sizeof b2, "%s/b2", dir);
    snprintf(r1, sizeof r1, "%s/r1", dir);
    snprintf(r2, sizeof r2, "%s/r2", dir);
    snprintf(r3, sizeof r3, "%s/r3", dir);
    snprintf(ids, sizeof ids, "%s/shreds.txt", dir);
    int rc;
    factum_store *s = open_store(data, keyfile, "user", &rc);
    REQUIRE(s);
    append(s, "user-1", "{\"n\":\"" MARK "-1\"}", NULL);
    append(s, "user-2", "{\"n\":\"" MARK "-2\"}", NULL);
    CHECK_RC(factum_backup(s, b1, NULL, NULL), 0); /* before any shred */
    uint32_t k1, k2;
    CHECK_RC(factum_shred(s, "1", &k1), 0);
    CHECK_RC(factum_backup(s, b2, NULL, NULL), 0); /* after the shred of 1 */
    CHECK_RC(factum_shred(s, "2", &k2), 0);
    CHECK_RC(factum_store_close(s), 0);
    CHECK_EQ_U64(plaintext_files(b1), 0);

    /* The shreds made since b1, as `factum shreds --ids` prints them. */
    FILE *fp = fopen(ids, "w");
    REQUIRE(fp);
    fprintf(fp, "# key ids\n%u\n%u\n", k1, k2);
    fclose(fp);
    factum_backup_options o = {0, NULL, NULL, keyfile, ids};
    CHECK_RC(factum_restore(b1, r1, &o, NULL), 0);
    factum_backup_options bare = {0, NULL, NULL, NULL, NULL};
    CHECK_RC(factum_restore(b2, r3, &bare, NULL), FACTUM_EKEY); /* sealed data, no master key */
    bare.master_key_file = keyfile;
    harness_rm_rf(r3);
    CHECK_RC(factum_restore(b2, r2, &bare, NULL), 0); /* its own $shreds: 1 */

    factum_reader *r = factum_reader_new();
    factum_reader_use(r);
    char buf[256];
    s = open_store(r1, keyfile, "user", &rc);
    REQUIRE(s);
    CHECK(first_event(s, "user-1", buf, sizeof buf, NULL, 0) == FACTUM_EVENT_SHREDDED);
    CHECK(first_event(s, "user-2", buf, sizeof buf, NULL, 0) == FACTUM_EVENT_SHREDDED);
    CHECK_RC(factum_store_close(s), 0);
    s = open_store(r2, keyfile, "user", &rc);
    REQUIRE(s);
    CHECK(first_event(s, "user-1", buf, sizeof buf, NULL, 0) == FACTUM_EVENT_SHREDDED);
    /* 2 was shredded after b2 and no list was given: b2 still holds its key. */
    CHECK(first_event(s, "user-2", buf, sizeof buf, NULL, 0) == (FACTUM_EVENT_JSON | FACTUM_EVENT_OPENED) &&
          strstr(buf, MARK "-2"));
    CHECK_RC(factum_store_close(s), 0);
    factum_reader_use(NULL);
    factum_reader_free(r);
}

/* A sealed byte changed, the frame's CRC fixed: GCM refuses it (damage,
 * never garbage served as data). */
static void t_tamper(void)
{
    char data[600], seg[700];
    snprintf(data, sizeof data, "%s/tdata", dir);
    int rc;
    factum_store *s = open_store(data, keyfile, "user", &rc);
    REQUIRE(s);
    append(s, "user-9", "{\"n\":\"" MARK "-9-abcdefghijklmnopqrstuvwxyz\"}", NULL);
    CHECK_RC(factum_store_close(s), 0);
    snprintf(seg, sizeof seg, "%s/log/00000000.seg", data);
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    static uint8_t b[1 << 20];
    ssize_t n = pread(fd, b, sizeof b, 0);
    REQUIRE(n > 4096);
    /* The event frame of user-9: find its stream name after a frame header. */
    uint8_t *p = memmem(b + 4096, (size_t)n - 4096, "user-9", 7);
    REQUIRE(p);
    uint8_t *frame = p - 64;
    uint32_t len = base_get32(frame);
    CHECK(frame[8] == 2 && (frame[9] & 0x04));
    frame[64 + 7 + 11 + 1 + 20] ^= 0x40; /* a ciphertext byte: stream NUL type NUL, key id, nonce, ... */
    uint32_t c = base_crc32c(0, frame, 4);
    base_put32(frame + 4, base_crc32c(c, frame + 8, len - 8));
    REQUIRE(pwrite(fd, frame, len, frame - b) == (ssize_t)len);
    close(fd);
    s = open_store(data, keyfile, "user", &rc);
    REQUIRE(s);
    factum_reader *r = factum_reader_new();
    factum_reader_use(r);
    factum_event ev;
    size_t got;
    CHECK_RC(factum_read_stream(s, "user-9", 0, FACTUM_FORWARD, &ev, 1, &got, NULL), FACTUM_ECORRUPT);
    factum_reader_use(NULL);
    factum_reader_free(r);
    CHECK_RC(factum_store_close(s), 0);
}

/* Every sealed event has its own nonce (drawn in bulk by the writer: a
 * reused nonce under one key would undo GCM), across batches and reopens. */
static uint8_t nonces[2000][12];
static size_t n_nonces;
static int collect(void *ctx, const factum_raw_record *rec)
{
    (void)ctx;
    if (rec->ev && (rec->ev->flags & FACTUM_EVENT_SEALED) && n_nonces < 2000)
        memcpy(nonces[n_nonces++], rec->ev->data + 4, 12);
    return 0;
}
static int cmp12(const void *a, const void *b)
{
    return memcmp(a, b, 12);
}
static void t_nonces(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/ndata", dir);
    int rc;
    for (int round = 0; round < 2; round++) {
        factum_store *s = open_store(data, keyfile, "user", &rc);
        REQUIRE(s);
        for (int i = 0; i < 300; i++)
            append(s, i % 2 ? "user-1" : "user-2", "{\"same\":1}", NULL); /* the same bytes each time */
        factum_event_data d[100];
        for (int i = 0; i < 100; i++)
            d[i] = (factum_event_data){.type = "Same", .data = "x", .data_len = 1};
        CHECK_RC(factum_append(s, "user-3", FACTUM_ANY, d, 100, NULL), 0);
        CHECK_RC(factum_store_close(s), 0);
    }
    n_nonces = 0;
    CHECK_RC(factum_dump(data, collect, NULL), 0);
    CHECK_EQ_U64(n_nonces, 800);
    qsort(nonces, n_nonces, 12, cmp12);
    size_t same = 0;
    for (size_t i = 1; i < n_nonces; i++)
        if (!memcmp(nonces[i - 1], nonces[i], 12)) same++;
    CHECK_EQ_U64(same, 0);
}

/* Readers on three threads (each with its own reader) while the main
 * thread appends to 20 subjects and shreds them one by one: every event
 * read is either exactly what was appended (opened) or shredded, never
 * other bytes; a subject whose shred returned before a read began is read
 * shredded (SEAL-3: the readers' key caches follow the shred generation). */
#define C_SUBJECTS 20
typedef struct conc {
    factum_store *s;
    _Atomic int shredded[C_SUBJECTS]; /* 1: its factum_shred returned */
    _Atomic int stop;
    _Atomic long opened, seen_shredded, bad;
} conc;

static void *conc_reader(void *arg)
{
    conc *c = arg;
    factum_reader *r = factum_reader_new();
    factum_reader_use(r);
    factum_event ev[32];
    unsigned x = (unsigned)(uintptr_t)&ev;
    while (!atomic_load(&c->stop)) {
        int k = (int)((x = x * 1103515245u + 12345u) >> 16) % C_SUBJECTS;
        char stream[32];
        snprintf(stream, sizeof stream, "user-%d", k);
        int was = atomic_load(&c->shredded[k]);
        factum_reader_reset(r);
        size_t n = 0;
        if (factum_read_stream(c->s, stream, 0, FACTUM_FORWARD, ev, 32, &n, NULL)) continue;
        for (size_t i = 0; i < n; i++) {
            char want[64];
            int wl =
                snprintf(want, sizeof want, "{\"k\":%d,\"v\":%llu}", k, (unsigned long long)ev[i].version);
            if (ev[i].flags & FACTUM_EVENT_SHREDDED) {
                atomic_fetch_add(&c->seen_shredded, 1);
            } else if ((ev[i].flags & FACTUM_EVENT_OPENED) && !was && ev[i].data_len == (size_t)wl &&
                       !memcmp(ev[i].data, want, (size_t)wl)) {
                atomic_fetch_add(&c->opened, 1);
            } else {
                atomic_fetch_add(&c->bad, 1);
            }
        }
    }
    factum_reader_use(NULL);
    factum_reader_free(r);
    return NULL;
}

static void t_concurrent(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/cdata", dir);
    int rc;
    static conc c;
    memset(&c, 0, sizeof c);
    c.s = open_store(data, keyfile, "user", &rc);
    REQUIRE(c.s);
    for (int v = 0; v < 5; v++)
        for (int k = 0; k < C_SUBJECTS; k++) {
            char stream[32], body[64];
            snprintf(stream, sizeof stream, "user-%d", k);
            snprintf(body, sizeof body, "{\"k\":%d,\"v\":%d}", k, v);
            append(c.s, stream, body, NULL);
        }
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_create(&th[i], NULL, conc_reader, &c) == 0);
    for (int k = 0; k < C_SUBJECTS; k++) {
        usleep(2000);
        char sub[16];
        snprintf(sub, sizeof sub, "%d", k);
        CHECK_RC(factum_shred(c.s, sub, NULL), 0);
        atomic_store(&c.shredded[k], 1);
    }
    usleep(20000);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "  %ld opened, %ld shredded, %ld other\n", atomic_load(&c.opened),
            atomic_load(&c.seen_shredded), atomic_load(&c.bad));
    CHECK_EQ_U64(atomic_load(&c.bad), 0);
    CHECK(atomic_load(&c.opened) > 0 && atomic_load(&c.seen_shredded) > 0);
    CHECK_RC(factum_store_close(c.s), 0);
}

/* A SQL read model over a subject's sealed events: its rows hold what the
 * events said; after the shred, a rebuild makes them again from the same
 * events, now shredded: the subject's name does not come back (the row is
 * there, its name NULL), the other subject's does. */
static int has(const char *out, const char *what)
{
    return out && strstr(out, what) != NULL;
}

static void t_readmodel_rebuild(void)
{
    char data[600];
    snprintf(data, sizeof data, "%s/rmdata", dir);
    int rc;
    factum_store *s = open_store(data, keyfile, "user", &rc);
    REQUIRE(s);
    factum_readmodels *m = NULL;
    CHECK_RC(factum_readmodels_open(s, NULL, &m), 0);
    REQUIRE(m);
    append(s, "user-1", "{\"name\":\"Ann " MARK "\"}", NULL);
    append(s, "user-2", "{\"name\":\"Bob\"}", NULL);
    static const char def[] =
        "{\"name\":\"people\",\"lifecycle\":\"async\",\"streams\":[\"user-\"],"
        "\"schema\":\"CREATE TABLE people(id TEXT PRIMARY KEY, name TEXT)\","
        "\"handlers\":{\"Registered\":\"INSERT INTO people VALUES (:stream, :data.name)\"}}";
    char err[512] = "";
    CHECK_RC(factum_readmodel_create(m, def, sizeof def - 1, err, sizeof err), 0);
    factum_stats fs;
    CHECK_RC(factum_store_get_stats(s, &fs), 0);
    CHECK_RC(factum_readmodel_wait(m, "people", fs.last_position, 30000), 0);
    char *out = NULL;
    CHECK_RC(factum_readmodel_query(m, "people", "SELECT id, name FROM people ORDER BY id", NULL, NULL, &out,
                                    err, sizeof err),
             0);
    CHECK(has(out, MARK) && has(out, "Bob"));
    free(out);
    factum_readmodel_status st;
    CHECK_RC(factum_readmodel_get_status(m, "people", &st), 0);
    uint64_t gen = st.generation;

    CHECK_RC(factum_shred(s, "1", NULL), 0);
    CHECK_RC(factum_readmodel_rebuild(m, "people", NULL, 0, err, sizeof err), 0);
    for (int i = 0; i < 3000; i++) {
        CHECK_RC(factum_readmodel_get_status(m, "people", &st), 0);
        if (st.generation != gen && !st.building) break;
        usleep(10000);
    }
    CHECK(st.generation != gen);
    out = NULL;
    CHECK_RC(factum_readmodel_query(m, "people", "SELECT id, name FROM people ORDER BY id", NULL, NULL, &out,
                                    err, sizeof err),
             0);
    if (out) fprintf(stderr, "  after the shred and a rebuild: %s\n", out);
    CHECK(!has(out, MARK) && has(out, "Bob") && has(out, "[\"user-1\",null]"));
    free(out);
    factum_readmodels_close(m);
    CHECK_RC(factum_store_close(s), 0);
}

int main(void)
{
    RUN(t_seal_and_shred);
    RUN(t_backup_restore);
    RUN(t_tamper);
    RUN(t_nonces);
    RUN(t_concurrent);
    RUN(t_readmodel_rebuild);
    return harness_done();
}
