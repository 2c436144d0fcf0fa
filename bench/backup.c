/*
 * backup.c - the figures issue 16 asks of online backup, for N events
 * (default 10,000,000; BENCH.md's ~410-byte event frame, 100 events per
 * append into 100,000 streams):
 *   - a backup into a directory on the same file system (hard links),
 *   - the same while a writer appends at full rate (its rate beside it),
 *   - a backup into a directory on another file system (--other DIR: copies),
 *   - an incremental backup after 1% more events,
 *   - a restore (copies, the index rebuilt on open, the chain verified),
 * each with its time and the bytes the result takes on disk (st_blocks).
 *
 * Usage: factum-bench-backup [--dir D] [--other D] [--events N]
 * Prints a Markdown table on stdout and "@ factum BACKUP metric value" lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "factum.h"
#include "files.h"


static char data[512], meta[160];

static void fill(factum_event_data *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].type = "MoneyDeposited";
        e[i].flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON;
        e[i].data = data;
        e[i].data_len = strlen(data);
        e[i].metadata = meta;
        e[i].metadata_len = strlen(meta);
        factum_uuid_v4(e[i].id);
        e[i].has_id = 1;
    }
}

static void append_n(factum_store *s, uint64_t n, uint64_t seed)
{
    factum_event_data e[100];
    for (uint64_t i = 0; i < n; i += 100) {
        fill(e, 100);
        char stream[32];
        snprintf(stream, sizeof stream, "account-%" PRIu64, (seed + i / 100) * 7919 % 100000);
        int rc = factum_append(s, stream, FACTUM_ANY, e, 100, NULL);
        if (rc) die("append", rc);
    }
}

typedef struct load {
    factum_store *s;
    _Atomic int stop;
    _Atomic uint64_t events;
} load;

static void *loader(void *p)
{
    load *l = p;
    factum_event_data e[10];
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        fill(e, 10);
        char stream[32];
        snprintf(stream, sizeof stream, "live-%" PRIu64, i % 1000);
        if (factum_append(l->s, stream, FACTUM_ANY, e, 10, NULL)) break;
        atomic_fetch_add(&l->events, 10);
    }
    return NULL;
}

static void row(const char *what, double secs, const factum_backup_report *r, uint64_t bytes,
                const char *note)
{
    printf("| %s | %.2f s | %" PRIu64 " | %" PRIu64 " / %" PRIu64 " / %" PRIu64
           " | %.1f MB | %.1f MB | %s |\n",
           what, secs, r->position, r->linked, r->copied, r->kept, r->bytes_copied / 1e6, bytes / 1e6, note);
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp/factum-bench-backup", *other = NULL;
    uint64_t events = 10000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--other") && i + 1 < argc)
            other = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = strtoull(argv[++i], NULL, 10) / 100 * 100;
        else {
            fprintf(stderr, "usage: %s [--dir D] [--other D] [--events N]\n", argv[0]);
            return 2;
        }
    }
    snprintf(
        data, sizeof data,
        "{\"accountId\":\"account-4711\",\"amount\":1250,\"currency\":\"EUR\",\"reference\":\"INV-00004711\","
        "\"description\":\"Deposit at branch 042, counter 7, teller Ms. J. Smith\","
        "\"at\":\"2024-03-15T10:22:31.123Z\"}");
    snprintf(meta, sizeof meta,
             "{\"correlationId\":\"8f6b3f5e-2a1c-4d7e-9b3a-1c2d3e4f5a6b\",\"causationId\":"
             "\"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\",\"user\":\"alice\"}");
    char live[1024], b1[1024], b2[1024], rs[1024];
    snprintf(live, sizeof live, "%s/live", dir);
    snprintf(b1, sizeof b1, "%s/backup", dir);
    snprintf(rs, sizeof rs, "%s/restored", dir);
    snprintf(b2, sizeof b2, "%s/factum-bench-backup-other", other ? other : dir);
    rm_rf(dir);
    if (other) rm_rf(b2);
    mkdir(dir, 0755);
    factum_store *s;
    factum_options o;
    factum_options_init(&o);
    int rc = factum_store_open(live, &o, &s);
    if (rc) die("open", rc);
    uint64_t t0 = now_ns();
    append_n(s, events, 0);
    double fill_s = (double)(now_ns() - t0) / 1e9;
    uint64_t live_bytes = du(live);
    printf("# Online backup, %" PRIu64 " events (%.1f MB of log, written in %.1f s)\n\n", events,
           live_bytes / 1e6, fill_s);
    printf("| run | time | position | linked / copied / kept | bytes copied | on disk | notes |\n");
    printf("|---|---|---|---|---|---|---|\n");

    factum_backup_report r;
    t0 = now_ns();
    if ((rc = factum_backup(s, b1, NULL, &r))) die("backup", rc);
    double t = (double)(now_ns() - t0) / 1e9;
    row("same file system (links), verified", t, &r, du(b1), "");
    printf("@ factum BACKUP same_fs_s %.3f\n", t);

    /* Again, incremental, with a writer at full rate beside it. */
    load l = {.s = s};
    pthread_t th;
    pthread_create(&th, NULL, loader, &l);
    usleep(300000);
    uint64_t e0 = atomic_load(&l.events), w0 = now_ns();
    append_n(s, events / 100, 7); /* 1% more, then the backup */
    t0 = now_ns();
    if ((rc = factum_backup(s, b1, NULL, &r))) die("incremental backup", rc);
    t = (double)(now_ns() - t0) / 1e9;
    uint64_t e1 = atomic_load(&l.events), w1 = now_ns();
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    char note[128];
    snprintf(note, sizeof note, "a writer appending meanwhile at %.0f ev/s",
             (double)(e1 - e0) / ((double)(w1 - w0) / 1e9));
    row("incremental (+1%), while appending", t, &r, du(b1), note);
    printf("@ factum BACKUP incremental_s %.3f\n", t);

    if (other) {
        t0 = now_ns();
        if ((rc = factum_backup(s, b2, NULL, &r))) die("backup elsewhere", rc);
        t = (double)(now_ns() - t0) / 1e9;
        row("another file system (copies), verified", t, &r, du(b2), other);
        printf("@ factum BACKUP other_fs_s %.3f\n", t);
        factum_backup_options nv = {1, NULL, NULL, NULL, NULL};
        rm_rf(b2);
        t0 = now_ns();
        if ((rc = factum_backup(s, b2, &nv, &r))) die("backup elsewhere", rc);
        t = (double)(now_ns() - t0) / 1e9;
        row("another file system, --no-verify", t, &r, du(b2), other);
        rm_rf(b2);
    }
    factum_store_close(s);

    t0 = now_ns();
    if ((rc = factum_restore(b1, rs, NULL, &r))) die("restore", rc);
    t = (double)(now_ns() - t0) / 1e9;
    row("restore (copies, index rebuilt, verified)", t, &r, du(rs), "");
    printf("@ factum BACKUP restore_s %.3f\n", t);
    rm_rf(dir);
    return 0;
}
