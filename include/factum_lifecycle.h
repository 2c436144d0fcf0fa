/*
 * factum_lifecycle.h - the storage lifecycle of a libfactum store: the hash
 * chain, scavenge, the archive tier, online backup and restore, and the
 * offline tools (verify, dump).
 *
 * Part of factum.h, which includes it: include either. Everything here
 * follows factum.h's conventions (its first comment).
 */
#ifndef FACTUM_LIFECYCLE_H
#define FACTUM_LIFECYCLE_H

#include "factum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * The hash chain (docs/durability.md, "Integrity"; ADR 0025)
 *
 * Every batch the writer commits carries a SHA-256 hash of the previous
 * batch's hash, its own header and the SHA-256 of each of its events, so
 * the last hash (the head) stands for the whole log up to its position.
 * Export it (`factum chain head`), sign it (`factum chain sign`) and keep it
 * elsewhere: `factum verify --chain --receipt` later proves that the log
 * still holds exactly what it held then. Stores written by a library older
 * than format 3 start their chain in their first segment of format 3.
 * ------------------------------------------------------------------------- */

#define FACTUM_HASH_LEN 32

typedef struct factum_chain_head {
    uint8_t store_uuid[16];
    uint64_t position;            /* the last position the chain covers; 0: no chained batch yet */
    uint8_t hash[FACTUM_HASH_LEN]; /* the hash of the batch ending there (position 0: the genesis) */
} factum_chain_head;

/* The head as of the last commit. Thread-safe. */
FACTUM_API int factum_chain_get_head(factum_store *s, factum_chain_head *out);
/* The head as one line of JSON, {"store":"<uuid>","position":N,"hash":"<64
 * hex digits>"}, into buf (FACTUM_CHAIN_JSON_MAX bytes are enough). Returns
 * its length, as snprintf does. */
#define FACTUM_CHAIN_JSON_MAX 160
FACTUM_API int factum_chain_head_json(const factum_chain_head *h, char *buf, size_t cap);

/* ---------------------------------------------------------------------------
 * Scavenge (docs/operations.md "Scavenge", ADR 0026)
 *
 * A scavenge gives back the disk space of what retention and deletes made
 * unreadable: events before $tb, beyond $maxCount, older than $maxAge (as of
 * the scavenge's start), of soft-deleted and tombstoned streams, and older
 * $$metadata events. It keeps each stream's last event (a stub — its
 * header without data — where that event is unreadable too), its first
 * (a stub, for the stream list), tombstones and the last metadata. It runs
 * in a thread of its own while appends, reads and subscriptions go on: each
 * sealed segment before the scavenge point (a $scavengeStarted event it
 * appends to $scavenges) is rewritten as a compacted generation and swapped
 * in; positions never change, and a read from a removed position starts at
 * the next surviving event. Crash-safe: an interrupted scavenge resumes
 * when the store is next opened. History: $scavengeStarted and
 * $scavengeCompleted in $scavenges, one $scavengeSegmentCompleted per
 * compacted segment in $scavenges-<id>.
 * ------------------------------------------------------------------------- */

typedef struct factum_scavenge_options {
    int seal;                        /* first roll the log to a new segment, so that everything written
                                        before the start is scavenged, the newest data included */
    unsigned threshold_percent;      /* skip a segment unless compacting it frees at least this share of
                                        its bytes (0: compact every segment with anything to remove, even
                                        when the file does not shrink, so that an erasure reaches it) */
    uint64_t throttle_bytes_per_sec; /* pace what it reads and writes to this (0: as fast as it can) */
} factum_scavenge_options;

enum factum_scavenge_state {
    FACTUM_SCAVENGE_RUNNING = 1,
    FACTUM_SCAVENGE_COMPLETED = 2,
    FACTUM_SCAVENGE_STOPPED = 3,
    FACTUM_SCAVENGE_FAILED = 4,
};

typedef struct factum_scavenge_status {
    char id[37];
    int state;                      /* enum factum_scavenge_state */
    int error;                      /* FAILED: why (a FACTUM_E* or -errno) */
    uint64_t point;                 /* the scavenge point: only what is before it is scavenged */
    uint64_t segments;              /* sealed segments before the point */
    uint64_t segment;               /* the next one to look at (progress: segment of segments) */
    uint64_t compacted, skipped;    /* segments rewritten; segments left as they were (little to gain) */
    uint64_t events_removed;        /* events removed (not counting earlier scavenges') */
    uint64_t bytes_before, bytes_after; /* the compacted segments' files, before and after */
    uint64_t bytes_read, bytes_written;
    int64_t started_ns, finished_ns; /* wall clock; finished 0 while running */
} factum_scavenge_status;

/* Start a scavenge in the background; *id_out (37 bytes, may be NULL) gets
 * its id. One at a time: FACTUM_EEXISTS with the running one's id. */
FACTUM_API int factum_scavenge_start(factum_store *s, const factum_scavenge_options *opts, char id_out[37]);
/* Stop the running scavenge (id NULL or "current": whichever runs) after
 * the segment it is on; it ends STOPPED. FACTUM_ENOTFOUND when that id is
 * not running. */
FACTUM_API int factum_scavenge_stop(factum_store *s, const char *id);
/* The status of the running or the last scavenge since the store was
 * opened (id NULL, "current" or "last"), or of that id. FACTUM_ENOTFOUND if
 * none (earlier ones are in $scavenges). */
FACTUM_API int factum_scavenge_get_status(factum_store *s, const char *id, factum_scavenge_status *out);
/* Wait until the scavenge `id` (NULL: the current one) ends; *out as above. */
FACTUM_API int factum_scavenge_wait(factum_store *s, const char *id, factum_scavenge_status *out);
/* A status as one line of JSON (docs/http.md, GET /admin/scavenge):
 * {"scavengeId","state":"running"|"completed"|"stopped"|"failed","point",
 * "segments","segment","compacted","skipped","eventsRemoved","bytesBefore",
 * "bytesAfter","spaceSaved","bytesRead","bytesWritten","startedAt",
 * "finishedAt" (ns since the epoch, 0 while running),"error"}. Returns its
 * length, as snprintf does; FACTUM_SCAVENGE_JSON_MAX bytes are enough. */
#define FACTUM_SCAVENGE_JSON_MAX 640
FACTUM_API int factum_scavenge_status_json(const factum_scavenge_status *st, char *buf, size_t cap);

/* ---------------------------------------------------------------------------
 * The archive tier (docs/operations.md "Archive", ADR 0028)
 *
 * With factum_options.archive_dir set, a thread of the store copies each
 * sealed segment to <archive_dir>/<store uuid>/ (written, fdatasync'd, read
 * back and compared, then renamed into place) and drops local files the
 * retention options let go; their events are then read from the archive,
 * transparently. A scavenge compacts archived segments too, in the archive
 * (an erasure reaches it), and a local segment's archived copy is replaced
 * by its new generation. A backup copies archived segments like local ones.
 * ------------------------------------------------------------------------- */

typedef struct factum_archive_status {
    int enabled;                    /* an archive_dir is set */
    uint64_t segments;              /* sealed segments (the archiver's to copy) */
    uint64_t local_only;            /* of them: not archived yet */
    uint64_t archived;              /* archived, the local file kept */
    uint64_t archive_only;          /* archived, the local file dropped */
    uint64_t bytes_local;           /* sealed segments' local files */
    uint64_t bytes_archived;        /* their archived copies */
    uint64_t copied, bytes_copied;  /* copies made since the store was opened */
    uint64_t dropped;               /* local files dropped since then */
    uint64_t passes;                /* archiver passes since then */
    int last_error;                 /* of the last pass (FACTUM_E* or -errno), 0: none */
    int64_t last_pass_ns;           /* wall clock, 0: none yet */
} factum_archive_status;

/* One archiver pass now, in the calling thread: copy what is not archived,
 * drop what retention lets go. *after (may be NULL) gets the status then.
 * FACTUM_EINVAL without an archive_dir; a pass's error (also kept in
 * last_error; the next pass tries again). */
FACTUM_API int factum_archive_run(factum_store *s, factum_archive_status *after);
/* Ask the archiver's thread for a pass now (returns at once). */
FACTUM_API int factum_archive_kick(factum_store *s);
FACTUM_API int factum_archive_get_status(factum_store *s, factum_archive_status *out);
/* A status as one line of JSON (docs/http.md, GET /admin/archive):
 * {"enabled","segments","localOnly","archived","archiveOnly","bytesLocal",
 * "bytesArchived","copied","bytesCopied","dropped","passes","lastPassAt",
 * "error"}. Returns its length, as snprintf does;
 * FACTUM_ARCHIVE_JSON_MAX bytes are enough. */
#define FACTUM_ARCHIVE_JSON_MAX 512
FACTUM_API int factum_archive_status_json(const factum_archive_status *st, char *buf, size_t cap);

/* ---------------------------------------------------------------------------
 * Online backup and restore (docs/operations.md "Backup and restore")
 *
 * factum_backup copies an open store, while appends go on, up to the last
 * position acknowledged when it starts (made durable first): the segments
 * before the last by hard links where the file system allows (they are never
 * written again) and by copies otherwise, the last one copied up to that
 * position and zero-filled, the identity file, and last a BACKUP descriptor
 * (the position, the log's end, the hash chain's head there). The index is
 * not copied: a restored store rebuilds it on its first open. Into a
 * directory that holds an earlier backup of the same store it is
 * incremental: the segments the earlier one had whole are kept. Then the copy
 * is verified: every checksum and the hash chain, which must end in the head
 * the live store had at that position.
 * ------------------------------------------------------------------------- */

typedef struct factum_backup_options {
    int no_verify; /* skip the verification of the copy (the hash chain over all of it) */
    /* Progress (may be NULL): bytes of segments done of the total, after each
     * segment. A non-zero return stops the backup (-ECANCELED; the directory
     * then holds no BACKUP descriptor: an incomplete backup). */
    int (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* factum_restore, crypto-shredding: the master key to open the restored
     * store with (its keys/keystore was copied by the backup), and a file of
     * shreds made after the backup to apply again (`factum shreds --ids`:
     * one key id per line). The restored store's own `$shreds` are applied
     * again in any case, before it opens for anything else. */
    const char *master_key_file;
    const char *shreds_file;
} factum_backup_options;

typedef struct factum_backup_report {
    uint64_t position;       /* the last position in the backup (0: an empty store) */
    uint64_t log_end;        /* the log offset after it */
    factum_chain_head head;  /* the hash chain's head at that position */
    uint64_t segments;       /* segment files in the backup */
    uint64_t linked, copied; /* of them: hard-linked, copied */
    uint64_t kept;           /* of them: already there from an earlier backup (incremental) */
    uint64_t bytes_copied;
    int verified;            /* the copy was verified */
} factum_backup_report;

/* Back up s into dest (created if missing; it must be empty or hold a backup
 * of this store). Thread-safe; not from an append callback. Errors:
 * FACTUM_EEXISTS (dest holds something else), FACTUM_ECORRUPT (the copy did
 * not verify), -errno. opts and report may be NULL. */
FACTUM_API int factum_backup(factum_store *s, const char *dest, const factum_backup_options *opts,
                             factum_backup_report *report);
/* The BACKUP descriptor of the backup in dir, into *report (position,
 * log_end, head, segments). FACTUM_ENOTSTORE if dir holds no complete
 * backup. */
FACTUM_API int factum_backup_read(const char *dir, factum_backup_report *report);
/* Restore the backup in `backup` into the data directory dest (missing or
 * empty): copy its files, open the store there (rebuilding its index),
 * check that it ends at the backup's position with the backup's chain head,
 * and (unless opts->no_verify) verify it. report gets the backup's
 * descriptor. */
FACTUM_API int factum_restore(const char *backup, const char *dest, const factum_backup_options *opts,
                              factum_backup_report *report);

/* ---------------------------------------------------------------------------
 * Crypto-shredding (docs/operations.md "Crypto-shredding", ADR 0027)
 *
 * With factum_options.master_key_file set, the events of a data subject are
 * sealed when they are appended: data and metadata together, AES-256-GCM
 * under the subject's own key (random nonce, bound to the event's stream,
 * type and id), the key kept in keys/keystore wrapped under the master key.
 * A stream has a subject when its metadata names one (`"$subject": "..."`,
 * for events appended after it) or when factum_options.shred_categories
 * lists its category (`user-42` -> subject `42`); a snapshot stream has its
 * stream's subject. System streams (`$...`) are never sealed. Stream names,
 * types, ids, positions and times stay in the clear.
 *
 * Reads return event pointers into the mapped log, where only the sealed
 * bytes are. The opened bytes go into a factum_reader the calling thread
 * bound with factum_reader_use: they stay valid until the reader is reset or
 * freed. Without a reader bound, a sealed event comes back with empty data
 * and metadata and FACTUM_EVENT_SEALED; once its subject is shredded, with
 * empty data and metadata and FACTUM_EVENT_SHREDDED, reader or not. Stores
 * without a master key never meet either flag.
 * ------------------------------------------------------------------------- */

/* A place for the opened bytes of sealed events. Not thread-safe: one per
 * thread (or per call site, used by one thread at a time). */
typedef struct factum_reader factum_reader;
FACTUM_API factum_reader *factum_reader_new(void); /* NULL: out of memory */
/* Forget (and wipe) every body opened into r; its memory is kept for reuse.
 * Events read through it before lose their data. */
FACTUM_API void factum_reader_reset(factum_reader *r);
FACTUM_API void factum_reader_free(factum_reader *r);
/* Bind r (NULL: none) to the calling thread for the reads it makes next;
 * returns the reader bound before, to put back. A reader grows with what is
 * read through it between resets: reset it between batches. */
FACTUM_API factum_reader *factum_reader_use(factum_reader *r);
/* Bytes of opened bodies r holds now. */
FACTUM_API size_t factum_reader_bytes(const factum_reader *r);
/* Bound what one read opens into r: a read (factum_read_stream,
 * factum_read_all and their as-of forms) through r ends early, after at
 * least one event, once r holds more than `bytes` (0: no bound, the
 * default). A server sets it so that one call's page cannot hold more
 * plaintext than that. */
FACTUM_API void factum_reader_set_limit(factum_reader *r, size_t bytes);
/* 1 when the store was opened with a master key (it may seal and open
 * events), else 0. */
FACTUM_API int factum_store_sealing(factum_store *s);

/* Where shreds are recorded: one event per shred, type
 * FACTUM_SHRED_EVENT_TYPE, data {"subject": S, "keyId": N}. */
#define FACTUM_SHREDS_STREAM     "$shreds"
#define FACTUM_SHRED_EVENT_TYPE  "$shredded"

/* Shred a data subject: its key leaves the key file (durable before this
 * returns), the shred is recorded in `$shreds`, and from then on every read
 * of its events returns them as FACTUM_EVENT_SHREDDED; the store's epoch
 * (factum_store_epoch) moves so that whoever holds opened events reads them
 * again. *key_id (may be NULL) gets the key's id. Errors: FACTUM_ENOTFOUND
 * (no key for that subject: nothing of it was sealed, or it was shredded
 * already), FACTUM_EKEY (no master key), FACTUM_EREADONLY, FACTUM_EINVAL. */
FACTUM_API int factum_shred(factum_store *s, const char *subject, uint32_t *key_id);
/* Subjects whose keys the store holds now (0 without a master key). */
FACTUM_API int factum_shred_count(factum_store *s, size_t *subjects);

/* ---------------------------------------------------------------------------
 * Offline tools: verification and raw dump (used by `factum verify`/`dump`)
 * ------------------------------------------------------------------------- */

/* One finding of factum_verify(). */
typedef struct factum_damage {
    const char *file; /* file name within the data directory */
    uint64_t offset;  /* byte offset within that file */
    const char *what; /* description */
} factum_damage;

typedef struct factum_verify_report {
    uint64_t segments;
    uint64_t batches;
    uint64_t events;
    uint64_t bytes;
    uint64_t first_position;
    uint64_t last_position;
    uint64_t damaged;   /* number of findings reported */
    uint64_t torn_tail; /* 1 if the log ends in a torn (unacknowledged) write */
    /* With factum_verify_options.chain: */
    uint64_t chain_batches;        /* chained batches whose hash was recomputed and matched */
    uint64_t chain_first_position; /* the first position the chain covers (0: none) */
    factum_chain_head chain_head;  /* the recomputed head */
    int receipt_checked;           /* the expected head was found on the chain */
    uint64_t removed;              /* positions a scavenge removed (counted in events; their digests remain) */
} factum_verify_report;

typedef struct factum_verify_options {
    int chain; /* also recompute the hash chain (a SHA-256 of every event) */
    /* With chain: a head exported earlier (a receipt's), which the chain must
     * pass through: the batch ending at its position must have its hash
     * (else the log was changed, cut or replaced since). NULL: none. */
    const factum_chain_head *expect;
    const char *archive_dir; /* the store's factum_options.archive_dir, if it has one (NULL: none) */
} factum_verify_options;

/* Check every record of the store in `path` (checksums, framing, gapless
 * positions, index consistency) without modifying anything. cb (may be NULL)
 * is called for each damage found. Returns 0 if the store is intact
 * (a torn tail alone is not damage), FACTUM_ECORRUPT if damage was found,
 * or another error if the store could not be read. */
FACTUM_API int factum_verify(const char *path, void (*cb)(void *ctx, const factum_damage *d), void *ctx,
                             factum_verify_report *report);
/* factum_verify with options (opts NULL: the same as factum_verify). A
 * broken chain or a missed receipt is damage (FACTUM_ECORRUPT). */
FACTUM_API int factum_verify_with(const char *path, const factum_verify_options *opts,
                                  void (*cb)(void *ctx, const factum_damage *d), void *ctx,
                                  factum_verify_report *report);

/* The chain head of the store in `path`, offline (no other process may have
 * it open for writing). */
FACTUM_API int factum_chain_head_offline(const char *path, factum_chain_head *out);

/* One raw log record for factum_dump(). For kind "batch", only file, offset,
 * length, position (first of the batch) and n_events are meaningful; for
 * "event", ev is set as well. */
typedef struct factum_raw_record {
    const char *file;
    uint64_t offset;
    uint32_t length;
    uint32_t crc;
    const char *kind; /* "batch", "event", or after a scavenge "stub" (an event kept without its data) or
                         "removed" (n_events removed positions from position) */
    uint64_t position;
    uint32_t n_events;
    const factum_event *ev;
} factum_raw_record;

/* Walk every record of the log in `path` in order, read-only. Stops at the
 * first damaged record (returning FACTUM_ECORRUPT) or when cb returns
 * non-zero (returning that value). */
FACTUM_API int factum_dump(const char *path, int (*cb)(void *ctx, const factum_raw_record *r), void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* FACTUM_LIFECYCLE_H */
