/*
 * factum.h - the public API of libfactum, an embeddable event store.
 *
 * A store is a data directory holding an append-only log of events organised
 * by stream. Every event has a 0-based version within its stream and a
 * gapless, 1-based global position in commit order (what KurrentDB clients
 * see as commit/prepare position). Appends are atomic, checked against an
 * expected version, idempotent by event id, and durable (fdatasync) before
 * they are acknowledged unless the store was opened in relaxed mode.
 *
 * The storage lifecycle (the hash chain, scavenge, the archive tier, backup
 * and restore, verify and dump) is declared in factum_lifecycle.h, and
 * projections in factum_projection.h; this header includes both at its end.
 *
 * Conventions used throughout this header:
 *   - Functions that can fail return int: 0 on success or a negative code.
 *     System errors are -errno (-ENOSPC, -EIO, ...); factum's own codes are
 *     the FACTUM_E* values below. factum_strerror() describes any code.
 *   - Strings are NUL-terminated UTF-8 unless a length is given beside them.
 *   - "Borrowed" pointers are read during the call only; the caller keeps
 *     ownership. Pointers a function hands out say how long they stay valid.
 *   - A factum_store may be used from any number of threads at once, unless a
 *     function says otherwise. Appends from many threads are group-committed.
 *   - The library never aborts on out-of-memory or on bad bytes from disk; it
 *     returns -ENOMEM or FACTUM_ECORRUPT.
 */
#ifndef FACTUM_H
#define FACTUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FACTUM_BUILDING) && defined(__GNUC__)
#define FACTUM_API __attribute__((visibility("default")))
#else
#define FACTUM_API
#endif

/* ---------------------------------------------------------------------------
 * Versions and limits
 * ------------------------------------------------------------------------- */

#define FACTUM_VERSION_STRING "0.1.0"
#define FACTUM_VERSION_MAJOR  0
#define FACTUM_VERSION_MINOR  1
#define FACTUM_VERSION_PATCH  0

/* Version of the on-disk format this library writes (it reads every
 * earlier one). A data directory of a newer format is refused with
 * FACTUM_EFORMAT. 2: index tables with partitioned Bloom filters. */
#define FACTUM_FORMAT_VERSION 5

/* Longest stream name, in bytes (not counting the NUL). */
#define FACTUM_MAX_STREAM_LEN 1024
/* Longest regular expression of a filter, in bytes. */
#define FACTUM_MAX_REGEX_LEN 1000
/* Longest event type, in bytes. */
#define FACTUM_MAX_TYPE_LEN 1024
/* Default limit on data + metadata of one event (configurable). */
#define FACTUM_DEFAULT_MAX_EVENT_SIZE (16u * 1024u * 1024u)

/* ---------------------------------------------------------------------------
 * Error codes (system errors are returned as -errno)
 * ------------------------------------------------------------------------- */

enum {
    FACTUM_EWRONGVERSION = -1001, /* the expected version did not match */
    FACTUM_ENOTFOUND = -1002,     /* stream does not exist or is soft-deleted */
    FACTUM_EDELETED = -1003,      /* stream is tombstoned (permanently deleted) */
    FACTUM_EIDEMPOTENCY = -1004,  /* event ids partly overlap events already stored */
    FACTUM_ETOOBIG = -1005,       /* event or append over the configured size limit */
    FACTUM_EBADNAME = -1006,      /* stream name empty, too long, or not UTF-8 */
    FACTUM_EBADTYPE = -1007,      /* event type empty, too long, or not UTF-8 */
    FACTUM_EBADUUID = -1008,      /* malformed UUID text */
    FACTUM_EBADJSON = -1009,      /* malformed JSON where JSON is required */
    FACTUM_ECORRUPT = -1010,      /* stored bytes fail their checksum or structure */
    FACTUM_EFAILED = -1011,       /* store is fail-stopped after an I/O error; reopen it */
    FACTUM_ENOTSTORE = -1012,     /* directory is not a factum data directory */
    FACTUM_EFORMAT = -1013,       /* data directory has a newer format version */
    FACTUM_ELOCKED = -1014,       /* data directory is locked by another process */
    FACTUM_EINVAL = -1015,        /* invalid argument */
    FACTUM_ECLOSED = -1016,       /* store is closing; the request was not run */
    FACTUM_EREADONLY = -1017,     /* store was opened read-only */
    FACTUM_EBADREGEX = -1018,     /* a filter's regular expression does not compile */
    FACTUM_EDUPLICATEID = -1019,  /* the same event id twice within one append */
    FACTUM_EREGEXLIMIT = -1020,   /* a filter's regular expression hit its match limits */
    FACTUM_EFAULTED = -1021,      /* the projection is faulted (its status says why) */
    FACTUM_EBADSTATE = -1023,     /* not in a state that allows it (e.g. deleting a running projection) */
    FACTUM_ETARGET = -1024,       /* a read model's target (SQLite, PostgreSQL) failed; its message says why */
    FACTUM_EUPCAST = -1025,       /* an upcaster could not be applied to an event (docs/upcasting.md) */
    FACTUM_EKEY = -1026,          /* the master key is missing, unreadable or not the one the keys were wrapped with */
    FACTUM_ETIMEDOUT = -1105,     /* no answer, or not reached, within the deadline */
    FACTUM_EEXISTS = -1107,       /* it exists already (a projection, a consumer group, a read model) */
};

/* The codes from FACTUM_CLIENT_ECODE_FIRST down to FACTUM_CLIENT_ECODE_LAST,
 * but for the two above, are libfactum-client's (factum_client.h:
 * FACTUM_ECONNECT, FACTUM_ETLS, ...). Their values never change. */
#define FACTUM_CLIENT_ECODE_FIRST (-1101)
#define FACTUM_CLIENT_ECODE_LAST  (-1199)

/* A human-readable, static message for any code (0, -errno or FACTUM_E*),
 * those of libfactum-client included: a program that links both libraries
 * gets the client's messages from either one (libfactum asks the client
 * library's factum_client_strerror, found when the program links it).
 * With libfactum alone, a client code, which none of its calls returns,
 * gets a message naming the client library. libfactum-client exports this
 * function too (a program of the client alone calls it as well). Never
 * NULL. Thread-safe. */
FACTUM_API const char *factum_strerror(int code);

/* ---------------------------------------------------------------------------
 * Opening and closing a store
 * ------------------------------------------------------------------------- */

typedef struct factum_store factum_store;

enum factum_durability {
    /* Acknowledge an append only after fdatasync covered it (default).
     * Concurrent appends share one fdatasync (group commit). */
    FACTUM_DURABLE = 0,
    /* Acknowledge after write(); fdatasync every flush_interval_ms. A crash of
     * the machine (not of the process) can lose the last interval. */
    FACTUM_RELAXED = 1,
};

enum factum_log_level { FACTUM_LOG_ERROR = 0, FACTUM_LOG_WARN, FACTUM_LOG_INFO, FACTUM_LOG_DEBUG };

typedef struct factum_options {
    int create;                  /* create the directory/store if missing (default 1) */
    int read_only;               /* open without writing anything (default 0) */
    int durability;              /* enum factum_durability (default FACTUM_DURABLE) */
    uint32_t flush_interval_ms;  /* relaxed mode: fdatasync period (default 100) */
    size_t max_event_size;       /* data + metadata of one event (default 16 MiB) */
    size_t max_append_size;      /* all events of one append (default 64 MiB) */
    uint64_t segment_size;       /* log segment size, used when creating (default 64 MiB) */
    size_t memtable_entries;     /* index entries kept in memory before a flush (default 262144) */
    size_t stream_cache_entries; /* stream states cached in memory (default 65536) */
    int verify_on_open;          /* check every record of the log on open (default 0) */
    /* After a scavenge swapped a compacted segment in, the file it replaced
     * stays readable this long for readers still holding event pointers into
     * it; then its disk space is given back (default 60000). */
    uint32_t scavenge_grace_ms;
#define FACTUM_SCAVENGE_GRACE_UNTIL_CLOSE UINT32_MAX /* never: replaced files go when the store is closed */
    /* The archive tier (docs/operations.md "Archive", ADR 0028). A directory
     * (another disk, a mounted object store) where sealed segments are
     * copied and verified, under a subdirectory named by the store's uuid;
     * NULL: none. Reads of segments whose local file was dropped are served
     * from it, so a store that dropped any must be opened with it. */
    const char *archive_dir;
    /* A local file is dropped once archived and both older than
     * archive_retain_ms (the age of its newest event) and followed by at
     * least archive_retain_bytes of the log (defaults: 7 days, 1 GiB).
     * FACTUM_ARCHIVE_KEEP_LOCAL in either: never drop (the archive is a
     * copy only). */
    uint64_t archive_retain_bytes;
    uint64_t archive_retain_ms;
#define FACTUM_ARCHIVE_KEEP_LOCAL UINT64_MAX
    /* The archiver looks for work this often (default 10000); 0: only when
     * asked (factum_archive_run, factum_archive_kick). */
    uint32_t archive_interval_ms;
    /* What a copy writes and reads back, paced to this (default 0: as fast
     * as the disks allow; a pass then competes with appends for the disk). */
    uint64_t archive_throttle_bytes_per_sec;
    /* Crypto-shredding (docs/operations.md "Crypto-shredding", ADR 0027).
     * master_key_file: a file outside the data directory (mode 0600 or
     * 0400) holding the 256-bit master key (32 bytes, or 64 hex digits);
     * with it, the events of a data subject are sealed (AES-256-GCM) under
     * that subject's key, kept wrapped in keys/keystore. A store that has
     * keys refuses to open without it (FACTUM_EKEY). NULL: none.
     * shred_categories: a comma-separated list of categories (the part of a
     * stream name before its first '-') whose streams are sealed under the
     * subject named by the rest of the name (`user-42` -> subject `42`), as
     * if their metadata said so; a stream's own `$subject` metadata key
     * names one for any stream. NULL: none. */
    const char *master_key_file;
    const char *shred_categories;
    /* Optional sink for the store's log lines (recovery, warnings). Called from
     * any of the store's threads; must be thread-safe. NULL: silent. */
    void (*log_fn)(void *ctx, int level, const char *message);
    void *log_ctx;
} factum_options;

/* Fill *opts with the defaults above. Always call this first, then change the
 * fields you need, so that fields added later get their defaults. */
FACTUM_API void factum_options_init(factum_options *opts);

/* Open (and with opts->create, create) the store in directory `path`.
 * opts may be NULL for the defaults. On success *out is a new handle; close it
 * with factum_store_close(). The directory is locked against other processes.
 * Opening recovers from a crash: a torn tail of the log is cut and the index
 * is brought up to date from its last checkpoint, reading only the log after
 * that checkpoint. Damage found there that is followed by acknowledged data
 * fails the open with FACTUM_ECORRUPT; damage in older parts of the log is
 * found when those events are read (FACTUM_ECORRUPT, never served) or by
 * factum_verify / `factum verify`, which check everything.
 * A read-only open cannot write index tables, so it replays the log after
 * the checkpoint into memory: at most what a writer with the same
 * memtable_entries leaves behind (two memtables); a longer tail (an index
 * deleted, or written with larger memtables) fails with FACTUM_EREADONLY:
 * open read-write once, or pass a larger memtable_entries.
 * A store whose log directory or segments covered by the index are missing
 * fails with FACTUM_ECORRUPT (the log line says what is missing).
 * Errors: FACTUM_ENOTSTORE, FACTUM_EFORMAT, FACTUM_ELOCKED, FACTUM_ECORRUPT,
 * FACTUM_EREADONLY (read-only, see above), FACTUM_EINVAL, -ENOENT (missing
 * and !create), -errno. */
FACTUM_API int factum_store_open(const char *path, const factum_options *opts, factum_store **out);

/* The directory the store was opened with (valid until close). */
FACTUM_API const char *factum_store_path(const factum_store *s);

/* A number that changes each time a scavenge swaps a rewritten segment in
 * (thread-safe, cheap: one atomic load). Event pointers read while it had
 * one value stay valid until scavenge_grace_ms after it changes. Whoever
 * keeps events longer than that (a buffer waiting for a slow consumer)
 * takes it before reading, compares it before using the events, and on a
 * change reads them again by position (factum_read_position: FACTUM_ENOTFOUND
 * means the scavenge removed the event). */
FACTUM_API uint64_t factum_store_epoch(factum_store *s);

/* Finish in-flight appends, write an index checkpoint, release the lock and
 * free the handle. Pointers handed out by reads become invalid. NULL is a
 * no-op. No other call on this store may be running or start. Free the
 * store's drivers first (factum_driver_free waits for their appends): with a
 * driver left, close returns -EBUSY and closes nothing. Returns 0 or the
 * error of the final checkpoint (the log itself is already durable). */
FACTUM_API int factum_store_close(factum_store *s);

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------- */

/* Flags of an event. */
#define FACTUM_EVENT_JSON      0x1u /* data is JSON (content-type application/json) */
#define FACTUM_EVENT_META_JSON 0x2u /* metadata is JSON */
/* Set by reads only (crypto-shredding): the event is sealed under its data
 * subject's key and was read without a factum_reader bound to the thread,
 * so data and metadata are empty. */
#define FACTUM_EVENT_SEALED 0x4u
/* Set by reads only: the event's data subject was shredded
 * (factum_shred); its data and metadata are gone for good (empty). */
#define FACTUM_EVENT_SHREDDED 0x8u
/* Set by reads only: the event was sealed and opened into the reader bound
 * to the thread; its data and metadata live there (not in the mapped log):
 * valid until that reader is reset. Copy them to keep them longer. */
#define FACTUM_EVENT_OPENED 0x10u

/* An event to append. Every pointer is borrowed for the call (or, for
 * factum_append_async, until its callback ran). */
typedef struct factum_event_data {
    const char *type; /* event type, non-empty UTF-8 */
    uint8_t id[16];   /* event id (UUID, RFC 4122 byte order) */
    int has_id;       /* 0: the store generates a random (v4) id */
    uint32_t flags;   /* FACTUM_EVENT_* */
    const void *data; /* payload, data_len bytes (may be NULL if 0) */
    size_t data_len;
    const void *metadata; /* user metadata, metadata_len bytes (may be NULL if 0) */
    size_t metadata_len;
} factum_event_data;

/* A stored event, as returned by reads. All pointers point into the store's
 * memory-mapped log and stay valid until factum_store_close(), or, once a
 * scavenge rewrote the segment holding the event, for
 * factum_options.scavenge_grace_ms more (then they read zeros; copy what you
 * keep longer, or compare factum_store_epoch and read it again by position).
 * With crypto-shredding (factum_lifecycle.h), the data and metadata of a
 * sealed event point into the factum_reader bound to the reading thread
 * (FACTUM_EVENT_OPENED) and stay valid until it is reset.
 * `stream` and `type` are NUL-terminated. */
typedef struct factum_event {
    const char *stream;
    size_t stream_len;
    const char *type;
    size_t type_len;
    uint8_t id[16];
    uint32_t flags;       /* FACTUM_EVENT_* */
    uint64_t version;     /* 0-based within the stream; FACTUM_TOMBSTONE_VERSION for a tombstone */
    uint64_t position;    /* global position, 1-based, gapless */
    int64_t timestamp_ns; /* commit time, nanoseconds since the Unix epoch (UTC) */
    const uint8_t *data;
    size_t data_len;
    const uint8_t *metadata;
    size_t metadata_len;
} factum_event;

/* Version of the `$streamDeleted` event a tombstone writes into its stream. */
#define FACTUM_TOMBSTONE_VERSION ((uint64_t)INT64_MAX)

/* ---------------------------------------------------------------------------
 * Appending
 * ------------------------------------------------------------------------- */

/* Expected version of an append (KurrentDB's values), or an exact version >= 0. */
#define FACTUM_ANY           ((int64_t)-2) /* no check */
#define FACTUM_NO_STREAM     ((int64_t)-1) /* the stream must not exist (or be soft-deleted) */
#define FACTUM_STREAM_EXISTS ((int64_t)-4) /* the stream must have events or metadata, and not be soft-deleted */

typedef struct factum_append_result {
    /* On success: versions and positions of the first and last event written
     * (for an idempotent replay: of the events already stored). */
    uint64_t first_version;
    uint64_t last_version; /* the stream's new current version */
    uint64_t first_position;
    uint64_t last_position;
    int64_t timestamp_ns;
    int idempotent; /* 1: these events were already stored; nothing was written */
    /* On FACTUM_EWRONGVERSION: the stream's actual version, FACTUM_NO_STREAM
     * if it has no events, FACTUM_TOMBSTONE... never (that is FACTUM_EDELETED). */
    int64_t actual_version;
} factum_append_result;

/* Append n events (1 <= n) atomically to `stream` if its current version
 * matches `expected`. On success fills *res (may be NULL). Blocks until the
 * append is durable (or, relaxed, written).
 *
 * Idempotency (docs/durability.md states the full rules): if every event id
 * of the request is already in the stream, consecutively, in the same order,
 * at the place the expectation allows, the call succeeds, writes nothing and
 * reports the original versions and positions with res->idempotent = 1.
 * Otherwise, if any of the ids is already in the stream (some but not all,
 * or at another place): FACTUM_EIDEMPOTENCY. An id is never twice in a stream.
 *
 * Errors: FACTUM_EWRONGVERSION (res->actual_version set), FACTUM_EDELETED,
 * FACTUM_EIDEMPOTENCY, FACTUM_EDUPLICATEID, FACTUM_EBADNAME, FACTUM_EBADTYPE,
 * FACTUM_ETOOBIG (an event over max_event_size, the events over
 * max_append_size, or, re-creating a soft-deleted stream, the events and
 * the `$metadata` event the store adds do not fit in one log segment; only
 * this append fails), FACTUM_EINVAL, FACTUM_EFAILED, FACTUM_EREADONLY,
 * -errno of the write or fdatasync (after which the store is fail-stopped).
 * No request fail-stops the store because of its content or size. */
FACTUM_API int factum_append(factum_store *s, const char *stream, int64_t expected,
                             const factum_event_data *events, size_t n, factum_append_result *res);

/* One stream's part of a multi-stream append. */
typedef struct factum_append_req {
    const char *stream;
    int64_t expected;
    const factum_event_data *events;
    size_t n_events;
} factum_append_req;

/* Append to several streams atomically: either every part is written (in the
 * order given, with consecutive positions) or none is. Each part has its own
 * expectation. A stream may appear in only one part. results (may be NULL)
 * receives n results. On failure *failed (may be NULL) is the index of the
 * part that failed, and results[*failed].actual_version is set for
 * FACTUM_EWRONGVERSION. An append in which every part is an idempotent
 * replay succeeds without writing; a mix of replayed and new parts fails
 * with FACTUM_EIDEMPOTENCY. Errors as factum_append(). */
FACTUM_API int factum_append_multi(factum_store *s, const factum_append_req *reqs, size_t n,
                                   factum_append_result *results, size_t *failed);

/* Completion of an asynchronous append. rc is 0 or an error as for
 * factum_append_multi; results has n entries (valid during the call only);
 * failed is the failing part's index when rc != 0.
 *
 * (Appends made through a driver are called back on the driver's thread
 * instead: see "Drivers" below.) Called on the store's writer thread, never
 * on an application thread (not
 * inside the caller's own factum_append, whatever thread led the group
 * commit), one callback at a time, in commit order. The writer thread calls
 * the next group's callbacks only after this one returned: return quickly
 * and do not block. From a callback you may call the read functions and the
 * asynchronous ones (factum_append_async, factum_delete_stream_async,
 * factum_tombstone_stream_async; with the request queue full they return
 * -EAGAIN, as everywhere). Functions of the same store
 * that wait for the writer (factum_append, factum_append_multi,
 * factum_delete_stream, factum_tombstone_stream, factum_set_stream_metadata,
 * factum_store_sync, factum_store_close, factum_wait_for_position with a
 * timeout) would wait for themselves: there they fail at once with
 * -EDEADLK. Do not block in subscriptions (factum_sub_poll with a timeout)
 * from a callback either. */
typedef void (*factum_append_cb)(void *ctx, int rc, const factum_append_result *results, size_t n,
                                 size_t failed);

/* Queue a multi-stream append and return at once: it never waits. Everything
 * reqs points to (streams, events, their bytes) stays borrowed until cb has
 * run. Returns 0 when queued (cb will run exactly once, on the writer
 * thread), -EAGAIN when the store's queue is full (4096 requests; nothing
 * was queued: try again after one of the requests in flight completed), or
 * an error for a request that is invalid on its face (then cb does not run
 * either). */
FACTUM_API int factum_append_async(factum_store *s, const factum_append_req *reqs, size_t n,
                                   factum_append_cb cb, void *ctx);

/* ---------------------------------------------------------------------------
 * Drivers: the completion API (one thread, many appends in flight)
 *
 * A driver lets one thread keep many appends in flight and collect their
 * completions without a blocked thread per append: an event loop, or an
 * application serving many logical clients. Submit with
 * factum_driver_append (it never waits); completions are called back on
 * the driver's thread inside factum_driver_run, which you call when
 * factum_driver_fd is readable (epoll/poll), or with a timeout to wait.
 *
 * Where io_uring is available (Linux >= 5.6, liburing at build time, not
 * forbidden by seccomp), the driver's thread leads the group commit itself
 * (docs/adr/0020-loop-led-group-commit.md): if no other thread leads, it
 * checks, encodes and writes the group and starts its fdatasync on its
 * io_uring, and returns at once; factum_driver_run finishes the group when
 * the fdatasync completed and leads the next one. No other thread is woken
 * on the way. Elsewhere (or with FACTUM_DRIVER_NO_URING) the driver hands
 * its appends to the store's writer thread as factum_append_async does,
 * and only its completions come back to the driver's thread (through the
 * fd). Either way the results are those of factum_append_multi, in the
 * same order as every other append of the store (one sequencer), and the
 * durability is the store's (durable: acknowledged after fdatasync).
 * ------------------------------------------------------------------------- */

typedef struct factum_driver factum_driver;

/* Flags of factum_driver_new. */
#define FACTUM_DRIVER_NO_URING 0x1u /* never use io_uring: hand appends to the writer thread */
/* The driver's thread makes the fdatasync itself, synchronously, inside
 * factum_driver_run: for a disk whose fdatasync is shorter than a thread
 * wake-up (tens of microseconds on small virtual machines). Appends are
 * only queued by factum_driver_append; the next factum_driver_run commits
 * all of them as one group and calls back in that same call, so an event
 * loop that submits a turn's appends and then runs the driver commits a
 * turn per group. The thread is blocked for the fdatasync: not for slow
 * disks. Wins over FACTUM_DRIVER_NO_URING. (docs/adr/0024) */
#define FACTUM_DRIVER_SYNC 0x2u
/* The application looks at factum_driver_ready (or calls factum_driver_run)
 * before every wait on the fd, as an event loop that polls its driver does:
 * then appends submitted, and completions decided, on the driver's own
 * thread do not make the fd readable (a write and a read of the eventfd
 * saved per append); completions from other threads and io_uring still do.
 * Without it, every reason to run makes the fd readable. */
#define FACTUM_DRIVER_POLL_READY 0x4u

/* Make a driver of store s for the calling thread (its thread: the only one
 * that may call the driver's functions, except factum_driver_free). flags:
 * FACTUM_DRIVER_*. If io_uring cannot be set up, the driver logs it once
 * (the store's log_fn) and uses the writer thread. On success *out is the
 * new driver; free it with factum_driver_free() before closing the store.
 * Errors: FACTUM_EINVAL, FACTUM_EREADONLY, -ENOMEM, -errno (eventfd).
 * Thread safety: several drivers may serve one store, each on its thread,
 * beside any number of threads appending with the other functions. */
FACTUM_API int factum_driver_new(factum_store *s, unsigned flags, factum_driver **out);

/* 1 if d leads group commits through io_uring, 0 if it uses the writer
 * thread. */
FACTUM_API int factum_driver_uring(const factum_driver *d);

/* 1 if d makes its fdatasyncs itself, synchronously (FACTUM_DRIVER_SYNC). */
FACTUM_API int factum_driver_sync(const factum_driver *d);

/* A file descriptor (an eventfd, owned by d, valid until
 * factum_driver_free) that becomes readable when completions may be ready
 * for factum_driver_run. Level-triggered: factum_driver_run reads it. */
FACTUM_API int factum_driver_fd(const factum_driver *d);

/* Queue a multi-stream append through d and return at once; it never
 * waits (not for room, not for the disk). Everything reqs points to stays
 * borrowed until cb has run. cb runs exactly once, on d's thread, inside a
 * later factum_driver_run (never inside this call, even when the append
 * was decided at once), with the arguments of factum_append_cb; the
 * callbacks of one driver run one at a time, in commit order. From a
 * callback you may call the read functions, factum_driver_append and the
 * asynchronous functions; the functions that wait for the writer fail there
 * with -EDEADLK (as in factum_append_cb), and so they do on d's thread
 * outside callbacks while d leads a group whose fdatasync is in flight
 * (they would wait for this thread). Returns 0 when queued, -EAGAIN when
 * the store's queue is full (4096 requests; try again after a completion),
 * or an error for a request invalid on its face (as factum_append_async;
 * cb does not run then). */
FACTUM_API int factum_driver_append(factum_driver *d, const factum_append_req *reqs, size_t n,
                                    factum_append_cb cb, void *ctx);

/* Run what is ready: finish the group whose fdatasync completed (and lead
 * the next), then call back every completed append of d, in commit order.
 * timeout_ms 0: never wait; > 0: if nothing was ready and appends are in
 * flight, wait up to that long for the first completion; < 0: wait without
 * limit while appends are in flight. Returns the number of callbacks run
 * (>= 0), or FACTUM_EINVAL. Not from inside one of d's callbacks. While
 * appends of d are in flight, keep calling it: d's thread may lead a group
 * that holds other threads' appends too (never once d has none of its own
 * left). */
FACTUM_API int factum_driver_run(factum_driver *d, int timeout_ms);

/* Is something ready for factum_driver_run, without a system call (a look
 * at io_uring's completion queue in memory and at d's completed list)? For
 * a loop that polls while appends are in flight. 1 or 0. */
FACTUM_API int factum_driver_ready(const factum_driver *d);

/* Appends submitted through d whose callbacks have not run yet. */
FACTUM_API size_t factum_driver_in_flight(const factum_driver *d);

/* Wait for every append submitted through d (running their callbacks, on
 * the calling thread), then free d. NULL is a no-op. Call it on d's thread,
 * or on another once d's thread stopped using d; never from d's callbacks. */
FACTUM_API void factum_driver_free(factum_driver *d);

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------- */

enum factum_direction { FACTUM_FORWARD = 0, FACTUM_BACKWARD = 1 };

/* OR'd into the direction of factum_read_stream and factum_read_all: a read
 * that never waits for the disk. Before it touches an event's record it
 * checks that every page of it is in memory (mincore on the mapped log, the
 * answer remembered for about a second); when one is not, it returns
 * -EWOULDBLOCK and nothing else (*n_out 0): repeat the read without the flag
 * on a thread that may wait (factumd's reader pool does;
 * docs/adr/0023-cold-reads-off-the-loop.md). Only the log's pages are
 * checked: the index and the stream states are kept in memory or read
 * through the operating system's cache as before. For a thread that must
 * not block (an event loop); costs one mincore per page not seen in memory
 * within the last second. */
#define FACTUM_NOWAIT 0x100

/* "From the end" for backward reads (a version or a position). */
#define FACTUM_END UINT64_MAX

/* Read up to `cap` events of `stream` starting at version `from` (inclusive)
 * in `direction`. Backward from FACTUM_END starts at the last event. Events
 * hidden by the stream's metadata (truncate-before, max count, max age) are
 * skipped. *n_out receives the number of events written to events[0..].
 * *next_out (may be NULL) receives the version to continue from, or
 * FACTUM_END when the read reached the end of the stream in that direction.
 * Errors: FACTUM_ENOTFOUND (missing or soft-deleted), FACTUM_EDELETED,
 * FACTUM_EBADNAME, FACTUM_ECORRUPT; with FACTUM_NOWAIT also -EWOULDBLOCK. */
FACTUM_API int factum_read_stream(factum_store *s, const char *stream, uint64_t from, int direction,
                                  factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out);

/* A compiled filter for reads of the global log ($all). */
typedef struct factum_filter factum_filter;

enum factum_filter_on { FACTUM_FILTER_STREAM = 0, FACTUM_FILTER_EVENT_TYPE = 1 };

/* Compile a filter on stream names or event types (`on`): either a set of
 * prefixes (n_prefixes > 0; matches if any is a prefix) or a regular
 * expression (regex non-NULL, searched anywhere unless anchored). Regular
 * expressions are PCRE2's (Perl syntax, UTF-8: `^account-\d+$`, `(?i)x`,
 * classes, alternation, lazy quantifiers; close to the .NET syntax of
 * KurrentDB's filters), at most FACTUM_MAX_REGEX_LEN bytes, with
 * parentheses nested at most 64 deep; docs/security.md gives every limit.
 * exclude_system additionally drops events whose type or stream begins
 * with '$'. Pass n_prefixes = 0 and regex = NULL for exclude_system alone.
 * Strings are copied. Errors: FACTUM_EBADREGEX (does not compile, or over
 * a limit), FACTUM_EINVAL, -ENOMEM. */
FACTUM_API int factum_filter_new(int on, const char *const *prefixes, size_t n_prefixes, const char *regex,
                                 int exclude_system, factum_filter **out);
FACTUM_API void factum_filter_free(factum_filter *f);
/* Does the event pass? 1 yes, 0 no, or FACTUM_EREGEXLIMIT when the regular
 * expression needed more than its match, depth or heap limit for this
 * event (a pathological pattern: reads with this filter fail with it),
 * -ENOMEM. Thread-safe. */
FACTUM_API int factum_filter_match(const factum_filter *f, const factum_event *ev);

/* Read the global log from position `from` (inclusive; 0 or 1 is the start,
 * FACTUM_END the end) in `direction`, returning up to `cap` events that pass
 * `filter` (may be NULL). At most `max_scan` events are examined (0: no
 * limit), so that a sparse filter returns regularly. *next_out (may be
 * NULL) receives the position to continue from: forward, the first position
 * not yet examined (last committed + 1 once the end was reached, so a later
 * call picks up new events); backward, the position before the last one
 * examined (0 once the start was reached). Only committed events are seen.
 * Errors: FACTUM_ECORRUPT, FACTUM_EINVAL; with FACTUM_NOWAIT also
 * -EWOULDBLOCK. */
FACTUM_API int factum_read_all(factum_store *s, uint64_t from, int direction, const factum_filter *filter,
                               size_t max_scan, factum_event *events, size_t cap, size_t *n_out,
                               uint64_t *next_out);

/* Read the event at global position `position`. Errors: FACTUM_ENOTFOUND
 * (no such position), FACTUM_ECORRUPT. */
FACTUM_API int factum_read_position(factum_store *s, uint64_t position, factum_event *ev);

/* Links: an event of type "$>" whose data is "<version>@<stream>" points
 * at that event (projections write them). Resolve the link `link` into
 * *target. Errors: FACTUM_EINVAL (not a link, or malformed data),
 * FACTUM_ENOTFOUND (the target does not exist or is hidden by its stream's
 * metadata), FACTUM_EDELETED (its stream is tombstoned), FACTUM_ECORRUPT. */
#define FACTUM_LINK_TYPE "$>"
FACTUM_API int factum_resolve_link(factum_store *s, const factum_event *link, factum_event *target);

/* ---------------------------------------------------------------------------
 * Upcasting: old event shapes read as new ones (docs/upcasting.md)
 *
 * An upcaster turns the data of events of one type at one schema version
 * into the next shape: {"eventType":"MoneyDeposited","fromVersion":1,
 * "toVersion":2,"steps":[{"op":"rename","from":"amount","to":"value"}, ...]}.
 * Steps: rename (a member to another name in the same object), move (a
 * path to another path, objects created on the way), default (set if
 * missing), set (always), remove, type (rename the event type); paths are
 * member names joined by '.'. An event's schema version is its JSON
 * metadata's "$schemaVersion" (absent: 1). Upcasting an event applies the
 * upcaster registered for (its type, its version), then the one for (the
 * type now, the version reached), and so on: chains compose.
 *
 * Upcasters live as events in stream `$upcasters` (type `$upcaster-set`,
 * data the document; `$upcaster-removed`, data {"eventType","fromVersion"});
 * the latest per (eventType, fromVersion) wins. Appends to `$upcasters`
 * from anywhere (these calls, factumd, a client) are checked and a bad
 * document is refused with FACTUM_EBADJSON or FACTUM_EINVAL. A commit to
 * `$upcasters` is seen by every upcast that starts after it.
 *
 * The stored bytes never change: factum_read_* return events as stored
 * (raw). factumd, projections and read models upcast what they deliver;
 * an embedding application asks for it per subscription
 * (factum_sub_options.upcast) or per event (factum_upcast).
 * ------------------------------------------------------------------------- */

#define FACTUM_UPCASTERS_STREAM "$upcasters"
#define FACTUM_UPCASTER_SET_TYPE "$upcaster-set"
#define FACTUM_UPCASTER_REMOVED_TYPE "$upcaster-removed"

/* Limits of an upcaster document (docs/upcasting.md). A document over one
 * is refused; an upcast output over the store's max_event_size fails
 * with FACTUM_EUPCAST. */
#define FACTUM_UPCAST_MAX_DOC      (64u * 1024u) /* bytes of one document */
#define FACTUM_UPCAST_MAX_STEPS    64            /* steps of one upcaster */
#define FACTUM_UPCAST_MAX_DEPTH    16            /* members in one path */
#define FACTUM_UPCAST_MAX_PATH     256           /* bytes of one path */
#define FACTUM_UPCAST_MAX_VERSION  1000000       /* highest schema version */
#define FACTUM_UPCASTERS_MAX       1024          /* upcasters registered at once */
#define FACTUM_UPCAST_MAX_CHAIN    64            /* upcasters applied to one event */
/* Script upcasters (docs/upcasting.md, "Script upcasters") run in worker
 * processes (factum-js), at most FACTUM_UPCAST_WORKERS per open store,
 * each script call on one event within FACTUM_UPCAST_SCRIPT_MS and the
 * scripts' heap within FACTUM_UPCAST_SCRIPT_HEAP_MIB. */
#define FACTUM_UPCAST_SCRIPT_MS       250
#define FACTUM_UPCAST_SCRIPT_HEAP_MIB 64
#define FACTUM_UPCAST_WORKERS         2

/* Check an upcaster document without registering it. err (may be NULL)
 * receives a NUL-terminated reason of at most err_len bytes. Thread-safe.
 * Errors: FACTUM_EBADJSON (not JSON), FACTUM_EINVAL (not a valid
 * document: a missing or unknown member, a bad step, a limit). */
FACTUM_API int factum_upcaster_check(const char *json, size_t len, char *err, size_t err_len);

/* Check one event as an append to `$upcasters` would: type
 * FACTUM_UPCASTER_SET_TYPE with a valid document, or
 * FACTUM_UPCASTER_REMOVED_TYPE with {"eventType": ..., "fromVersion": ...}.
 * err as for factum_upcaster_check. Thread-safe. Errors: FACTUM_EBADJSON,
 * FACTUM_EINVAL (another type, or a document that is not valid). */
FACTUM_API int factum_upcaster_check_event(const char *type, const void *data, size_t len, char *err,
                                           size_t err_len);

/* Register an upcaster: append its document (checked first) to
 * `$upcasters`. It replaces one of the same (eventType, fromVersion).
 * Errors: those of factum_upcaster_check, FACTUM_EINVAL (FACTUM_UPCASTERS_MAX
 * reached), errors of factum_append(). */
FACTUM_API int factum_upcaster_set(factum_store *s, const char *json, size_t len, char *err, size_t err_len);

/* Remove the upcaster of (`type`, `from_version`): append a
 * `$upcaster-removed` event. Errors: FACTUM_ENOTFOUND (none registered),
 * FACTUM_EBADTYPE, FACTUM_EINVAL, errors of factum_append(). */
FACTUM_API int factum_upcaster_remove(factum_store *s, const char *type, int64_t from_version);

/* One registered upcaster, for factum_upcasters_each. Pointers are valid
 * during the callback only. */
typedef struct factum_upcaster_info {
    const char *event_type;
    int64_t from_version;
    int64_t to_version;
    const char *json; /* the document as registered */
    size_t json_len;
    uint64_t position; /* of the `$upcaster-set` event */
} factum_upcaster_info;

/* Call cb for every registered upcaster, by event type and version.
 * cb returns 0 to go on, anything else to stop (returned). cb must not
 * call factum_upcaster_* or factum_upcast (a lock is held). Errors: read
 * errors of `$upcasters`, -ENOMEM. */
FACTUM_API int factum_upcasters_each(factum_store *s, int (*cb)(void *ctx, const factum_upcaster_info *u),
                                     void *ctx);

/* Scratch memory for upcast events: what factum_upcast writes stays valid
 * until factum_upcast_buf_reset or _free. One buffer is used by one thread
 * at a time. */
typedef struct factum_upcast_buf factum_upcast_buf;

/* Errors: -ENOMEM. */
FACTUM_API int factum_upcast_buf_new(factum_upcast_buf **out);
/* Forget every event written into b (their pointers become invalid). */
FACTUM_API void factum_upcast_buf_reset(factum_upcast_buf *b);
/* NULL is a no-op. */
FACTUM_API void factum_upcast_buf_free(factum_upcast_buf *b);
/* Why the last factum_upcast on b failed, naming the event ("" if none).
 * Valid until the next call on b. */
FACTUM_API const char *factum_upcast_buf_error(const factum_upcast_buf *b);

/* The upcast form of the stored event *in into *out. If no upcaster
 * applies (the fast path: one hash lookup of the type), *out = *in
 * (pointers into the log) and 0 is returned. Otherwise the data is
 * rewritten, the metadata's "$schemaVersion" set to the version reached
 * (JSON metadata keeps its other members; metadata that is empty or not
 * a JSON object becomes {"$schemaVersion":N}), both flags JSON, the type
 * renamed if a step says so; these bytes live in b; 1 is returned. The
 * stored event is never changed. in and out may be the same. Thread-safe
 * (with one b per thread). A chain with a script upcaster blocks the
 * caller while the script runs in a worker process (factum_upcast_many).
 * Errors: FACTUM_EUPCAST (the data is not a JSON object, the metadata's
 * "$schemaVersion" is not an integer >= 1, a step cannot apply, a script
 * threw, timed out, returned no event or its worker failed, the output is
 * over max_event_size: factum_upcast_buf_error(b) names the event and the
 * upcaster), -ENOMEM, read errors of `$upcasters`. */
FACTUM_API int factum_upcast(factum_store *s, const factum_event *in, factum_upcast_buf *b, factum_event *out);

/* factum_upcast of in[0..n) into out[0..n) (out may be in), in one round
 * trip to the script upcasters' worker per script in the longest chain,
 * not one per event: what a reader with a page of events calls. 0 with
 * *n_done = n; FACTUM_EUPCAST with *n_done the index of the first event
 * that cannot be upcast (out[0..*n_done) are upcast, the message names
 * that event); -ENOMEM, read errors of `$upcasters` (*n_done 0). Events
 * before *n_done live in b as factum_upcast's do. n at most 4096
 * (FACTUM_EINVAL beyond). Blocks while a script runs (at most
 * FACTUM_UPCAST_SCRIPT_MS per event and script, plus a worker's start);
 * thread-safe as factum_upcast. */
FACTUM_API int factum_upcast_many(factum_store *s, const factum_event *in, size_t n, factum_upcast_buf *b,
                                  factum_event *out, size_t *n_done);

/* ---------------------------------------------------------------------------
 * Commit notification
 * ------------------------------------------------------------------------- */

/* Called after each group of appends is committed (durable mode: after its
 * fdatasync), with the new last committed position. It runs on the thread
 * that committed the group (the store's writer, an appending thread, or a
 * driver's thread inside factum_driver_run or factum_driver_append), before
 * the appends of the group are acknowledged: return quickly, do not block,
 * and call no function of this store from it but the read calls. */
typedef void (*factum_commit_fn)(void *ctx, uint64_t last_position);

/* Register / unregister a listener (fn and ctx together name it). After
 * remove returns, fn is not running and will not be called again for ctx.
 * Errors: -ENOMEM, FACTUM_ENOTFOUND (remove of an unknown listener). */
FACTUM_API int factum_commit_listener_add(factum_store *s, factum_commit_fn fn, void *ctx);
FACTUM_API int factum_commit_listener_remove(factum_store *s, factum_commit_fn fn, void *ctx);

/* Wait until the last committed position is greater than `position`, or
 * timeout_ms passed (< 0: no limit). Returns 1 when it is, 0 on timeout.
 * Any number of threads may wait at once. */
FACTUM_API int factum_wait_for_position(factum_store *s, uint64_t position, int timeout_ms);

/* ---------------------------------------------------------------------------
 * Temporal reads
 *
 * Every event carries its commit time (factum_event.timestamp_ns), and
 * commit times never go backwards along the log: the writer stamps each
 * group max(wall clock, previous stamp + 1 ns), and at open it takes the
 * previous stamp from the last event of the log, so a clock stepped back
 * (NTP, a VM restored, a restart on another machine) cannot make a later
 * position look older (docs/temporal.md). Positions and times therefore
 * order the log the same way, and "the log as of time T" is "the log up to
 * the last position committed at or before T".
 *
 * Bi-temporal: an event may say when the fact it records became true in
 * the world with the metadata key "$validFrom" (an RFC 3339 UTC string,
 * "2026-03-15T00:00:00Z", fractional seconds allowed, or an integer of
 * milliseconds since the epoch); without it (or with metadata that is not
 * JSON, or a value that does not parse) its valid time is its commit time.
 * A read "as recorded at T1 about T2" returns the events committed at or
 * before T1 whose valid time is at or before T2: corrections that arrived
 * late are included only when asked as of a time after they arrived.
 * ------------------------------------------------------------------------- */

/* "No bound on valid time" for factum_asof.valid_until_ns. */
#define FACTUM_VALID_ANY INT64_MAX

/* The valid time of `ev`: its "$validFrom" when present and well formed,
 * else its commit time. Never fails. Thread-safe. */
FACTUM_API int64_t factum_event_valid_time(const factum_event *ev);

/* Parse a time as the conventions above write it: RFC 3339 with "Z" or an
 * offset ("2026-03-15T10:00:00.5+02:00"), or a date alone ("2026-03-15",
 * midnight UTC), into nanoseconds since the epoch. len bytes of text (no
 * NUL needed). Errors: FACTUM_EINVAL (anything else, or out of range). */
FACTUM_API int factum_time_parse(const char *text, size_t len, int64_t *ns_out);

/* Format ns as RFC 3339 UTC with nanoseconds ("2026-03-15T00:00:00.000000000Z")
 * into buf (>= 40 bytes). */
FACTUM_API void factum_time_format(int64_t ns, char buf[40]);

/* The last position committed at or before time_ns into *pos (0 when the
 * first event is later, or the store is empty). A binary search over the
 * log's positions: O(log n) event reads. Errors: FACTUM_ECORRUPT, FACTUM_EINVAL. */
FACTUM_API int factum_position_at(factum_store *s, int64_t time_ns, uint64_t *pos);

/* The point of view of a temporal read. */
typedef struct factum_asof {
    /* As recorded up to this global position (inclusive); FACTUM_END: up to
     * the last committed. factum_asof_at_time() fills it from a time. */
    uint64_t position;
    /* Only events whose valid time (factum_event_valid_time) is <= this;
     * FACTUM_VALID_ANY: every event. */
    int64_t valid_until_ns;
} factum_asof;

/* Fill *a for "as recorded at time_ns about valid_until_ns" (pass
 * FACTUM_VALID_ANY for no valid-time bound). Errors as factum_position_at. */
FACTUM_API int factum_asof_at_time(factum_store *s, int64_t time_ns, int64_t valid_until_ns, factum_asof *a);

/* Read `stream` as it was recorded at a->position, restricted to events
 * whose valid time is <= a->valid_until_ns: as factum_read_stream (same
 * paging: from, direction, cap, *n_out, *next_out; backward from
 * FACTUM_END starts at the last event recorded by then), except that:
 *   - events committed after a->position do not exist for the read;
 *   - a stream created after it is FACTUM_ENOTFOUND; a stream tombstoned
 *     after it reads as it was (the tombstone is later than the read);
 *   - the stream's metadata (truncate-before, max count) applies as it was
 *     at a->position; max age is not applied (the past is asked for);
 *   - a soft deletion later than a->position is not seen.
 * Events excluded by valid time are skipped like hidden ones (a page may be
 * shorter than cap while *next_out != FACTUM_END).
 * Errors: as factum_read_stream, FACTUM_EINVAL (a NULL argument). */
FACTUM_API int factum_read_stream_asof(factum_store *s, const char *stream, const factum_asof *a, uint64_t from,
                                       int direction, factum_event *events, size_t cap, size_t *n_out,
                                       uint64_t *next_out);

/* Resolve the link `link` (factum_resolve_link) as of *a: its target as a
 * temporal read of its stream returns it (recorded by a->position, valid
 * by a->valid_until_ns, the target stream's metadata as it was then).
 * Errors as factum_resolve_link (FACTUM_ENOTFOUND also when the target is
 * excluded by *a). */
FACTUM_API int factum_resolve_link_asof(factum_store *s, const factum_event *link, const factum_asof *a,
                                        factum_event *target);

/* Read `$all` as it was recorded at a->position (positions after it do not
 * exist for the read), restricted by valid time: as factum_read_all, with
 * the same paging and max_scan (events skipped by valid time count as
 * examined). Errors as factum_read_all. */
FACTUM_API int factum_read_all_asof(factum_store *s, const factum_asof *a, uint64_t from, int direction,
                                    const factum_filter *filter, size_t max_scan, factum_event *events, size_t cap,
                                    size_t *n_out, uint64_t *next_out);

/* ---------------------------------------------------------------------------
 * Scheduled events
 *
 * Append an event to a stream at a future time, durably and once. A request
 * is an event appended to the stream `$scheduled` (FACTUM_SCHEDULED_STREAM)
 * whose JSON metadata holds "$deliverAt" (RFC 3339 UTC or integer
 * milliseconds since the epoch) and "$deliverTo" (the target stream); its
 * type, data, flags and the rest of its metadata are what is appended to the
 * target when the time comes. Any client may write such a request (factumd
 * checks the two keys of appends to `$scheduled`); factum_schedule writes
 * one for you. The request's event id is the schedule id.
 *
 * A read-write store runs a scheduler thread from open to close. It wakes
 * at the next due time (the wall clock) or when `$scheduled` grows, and
 * appends every due event to its target together with an outcome marker in
 * `$scheduled-done` (FACTUM_SCHEDULED_DONE_STREAM), in one atomic
 * multi-stream append. The delivered event's id and the marker's id are
 * derived from the schedule id, so a delivery repeated after a crash is an
 * idempotent replay: each request is delivered at most once and, while the
 * store runs, at least once. A request already due at open (the store was
 * closed at its time) is delivered at once, and closing a store delivers
 * what is due first. Read-only stores deliver nothing.
 *
 * Markers (event types, data JSON {"id": "<schedule id>", ...}):
 *   "$delivered"  appended to the target (data also holds "stream", the target,
 *                 and "version", the request's version in `$scheduled`)
 *   "$cancelled"  factum_schedule_cancel won
 *   "$failed"     the target refused the append or the request is malformed
 *                 (data also holds "error" and "code"); never retried.
 * A request has at most one marker (its id is derived from the schedule id),
 * so a cancellation and a delivery racing each other cannot both win.
 *
 * Restarts: the scheduler keeps a checkpoint in `$scheduled-checkpoint` (the
 * lowest version of `$scheduled` not yet resolved); at open it reads
 * `$scheduled` from there, not from the start.
 *
 * Memory: at most FACTUM_SCHEDULE_MAX_PENDING requests are held in memory
 * (32 bytes each), the earliest due; when more are pending, the rest
 * are found again by reading `$scheduled` from the checkpoint when the
 * earliest of them comes due or room frees (docs/temporal.md).
 * ------------------------------------------------------------------------- */

#define FACTUM_SCHEDULED_STREAM      "$scheduled"
#define FACTUM_SCHEDULED_DONE_STREAM "$scheduled-done"
#define FACTUM_SCHEDULE_MAX_PENDING  65536

/* Schedule *ev to be appended to `stream` (with FACTUM_ANY) at deliver_at_ns
 * (nanoseconds since the epoch, wall clock; a time in the past is delivered
 * at once). ev is borrowed for the call; its metadata, if any, must be a
 * JSON object (it may not hold "$deliverAt" or "$deliverTo"), and is kept
 * with those two keys added. ev->has_id: the schedule id is ev->id (so
 * scheduling the same request twice is an idempotent replay), else a random
 * one. *schedule_id (may be NULL) receives it. Returns once the request is
 * durable. Errors: FACTUM_EBADNAME (stream), FACTUM_EBADTYPE, FACTUM_EBADJSON
 * (metadata not a JSON object), FACTUM_EINVAL (NULL arguments, the reserved
 * keys given, a target that is a `$scheduled...` stream), FACTUM_EREADONLY,
 * and errors of factum_append() on `$scheduled`. Thread-safe. */
FACTUM_API int factum_schedule(factum_store *s, const char *stream, int64_t deliver_at_ns,
                               const factum_event_data *ev, uint8_t schedule_id[16]);

/* Cancel a pending request: appends its "$cancelled" marker. Exactly one of
 * a cancellation and a delivery racing each other wins (the first marker
 * committed). Errors: FACTUM_ENOTFOUND (no such request, or it was already
 * delivered, cancelled or failed), FACTUM_EREADONLY, errors of
 * factum_append(). Thread-safe. */
FACTUM_API int factum_schedule_cancel(factum_store *s, const uint8_t schedule_id[16]);

/* Check the metadata of a request to `$scheduled` (what factumd does for
 * appends from clients): a JSON object with a valid "$deliverTo" (not a
 * `$scheduled...` stream) and "$deliverAt". Returns 0 or FACTUM_EINVAL with
 * *why (may be NULL) set to a static message. Thread-safe. */
FACTUM_API int factum_schedule_check_request(const void *metadata, size_t len, const char **why);

/* One pending request, for factum_schedule_list. Pointers are valid during
 * the callback only. */
typedef struct factum_schedule_info {
    uint8_t id[16];        /* the schedule id (the request's event id) */
    const char *stream;    /* target stream (NUL-terminated) */
    const char *type;      /* event type (NUL-terminated) */
    int64_t deliver_at_ns; /* when it is due */
    uint64_t position;     /* the request's position in the log */
    uint64_t version;      /* its version in `$scheduled` */
} factum_schedule_info;

/* Call cb for every pending request (not yet delivered, cancelled or
 * failed), in `$scheduled` order, reading `$scheduled` from the
 * scheduler's checkpoint (works on read-only stores too). cb returns 0 to
 * go on, anything else to stop (that value is returned). Errors:
 * FACTUM_ECORRUPT, -ENOMEM. Thread-safe. */
FACTUM_API int factum_schedule_list(factum_store *s, int (*cb)(void *ctx, const factum_schedule_info *info),
                                    void *ctx);

/* ---------------------------------------------------------------------------
 * Acknowledgement gates
 *
 * A gate lets a consumer that must have applied an append before its
 * writer is told (an inline read model, factum_readmodel.h) hold the
 * acknowledgements: while a gate has not been released up to a committed
 * position, the appends committed up to it are durable and readable but
 * not acknowledged (factum_append does not return, an asynchronous
 * append's callback does not run). Appends that fail are acknowledged at
 * once. The writer does not wait for gates: it goes on committing later
 * appends meanwhile. A gate that is never released holds every append for
 * ever: release it as you apply, and remove it when you stop.
 * ------------------------------------------------------------------------- */

typedef struct factum_ack_gate factum_ack_gate;

/* Add a gate that has passed `position` (appends up to it are not held).
 * Errors: FACTUM_EINVAL, -ENOMEM. */
FACTUM_API int factum_ack_gate_add(factum_store *s, uint64_t position, factum_ack_gate **out);
/* Everything up to `position` is applied: acknowledge what every gate has
 * passed. Any thread; never blocks on the writer. Lower positions than the
 * gate's are ignored. */
FACTUM_API void factum_ack_gate_release(factum_ack_gate *g, uint64_t position);
/* Remove the gate (what only it held is acknowledged) and free it. Call it
 * before closing the store; a gate left at close is let go there, and then
 * only freed by this call. NULL is a no-op. */
FACTUM_API void factum_ack_gate_remove(factum_ack_gate *g);

/* ---------------------------------------------------------------------------
 * Subscriptions: follow a stream or $all, catching up, then live
 *
 * A subscription is a cursor over the log: it reads what is already stored
 * and then what is committed later, in order, each event exactly once, with
 * no gap at the switch from history to live (there is no switch in the data
 * path: history and live events are read from the same log). It holds no
 * buffer of events: a consumer that reads slowly simply reads from further
 * back (for the operating system, from disk rather than page cache), so
 * memory does not grow with its lag.
 *
 * Pull style: factum_sub_poll returns the next items (events and markers)
 * and can wait for more. A subscription is used by one thread at a time;
 * many subscriptions may run at once from any threads. Close every
 * subscription before its store.
 * ------------------------------------------------------------------------- */

typedef struct factum_sub factum_sub;

enum factum_sub_from {
    FACTUM_SUB_START = 0, /* from the first event */
    FACTUM_SUB_END = 1,   /* only events committed after the subscription opened */
    FACTUM_SUB_AFTER = 2, /* after `after` (a version, or for $all a position): exclusive,
                             as KurrentDB; pass a checkpoint here to resume */
};

typedef struct factum_sub_options {
    const char *stream;   /* the stream to follow; NULL or "$all": the global log */
    int from;             /* enum factum_sub_from (default FACTUM_SUB_START) */
    uint64_t after;       /* for FACTUM_SUB_AFTER */
    const factum_filter *filter; /* $all only (NULL: every event); borrowed until close */
    /* $all: emit a FACTUM_SUB_CHECKPOINT item after every this many events
     * examined (matching the filter or not), so that a consumer of a sparse
     * filter can record its progress. 0: never (default). */
    uint32_t checkpoint_interval;
    /* A live subscription that is more than this many events (of $all, or
     * of its stream) behind the head is reported as having fallen behind
     * (FACTUM_SUB_FELL_BEHIND), and as caught up again when it reaches the
     * head. Default 10000; 0 is taken as 1. */
    uint64_t live_lag;
    int resolve_links; /* deliver the target of "$>" link events, with the link beside it */
    /* $all: at most this many events are examined by one factum_sub_poll
     * (a sparse filter may match none of them; factum_sub_pending then
     * says to poll again at once). Bounds the work of one poll, for callers
     * that serve many subscriptions on one thread. Default 65536; 0 is
     * taken as the default. */
    uint32_t max_scan;
    /* Deliver events upcast (factum_upcast; docs/upcasting.md). Upcast
     * events live in the subscription's memory until the next
     * factum_sub_poll or close (other events: until the store closes).
     * An event whose upcast fails is not delivered: the poll returns the
     * items before it, and the next poll fails with FACTUM_EUPCAST
     * (factum_sub_error says why), and again at every poll until an
     * upcaster that works is registered; it is never skipped. Default 0:
     * events as stored. */
    int upcast;
} factum_sub_options;

FACTUM_API void factum_sub_options_init(factum_sub_options *o);

/* Open a subscription per *o (NULL: $all from the start). Subscribing to a
 * stream that does not exist yet, or is soft-deleted, is allowed (its events
 * arrive when it is written). Errors: FACTUM_EBADNAME, FACTUM_EDELETED (the
 * stream is tombstoned), FACTUM_EINVAL (a filter on a stream subscription),
 * -ENOMEM. */
FACTUM_API int factum_sub_open(factum_store *s, const factum_sub_options *o, factum_sub **out);
/* Close and free. NULL is a no-op. */
FACTUM_API void factum_sub_close(factum_sub *sub);

enum factum_sub_item_kind {
    FACTUM_SUB_EVENT = 0,       /* `event` (and `link`, for a resolved link) */
    FACTUM_SUB_CAUGHT_UP = 1,   /* everything up to the head was delivered; live from here */
    FACTUM_SUB_FELL_BEHIND = 2, /* live, but more than live_lag behind: catching up again */
    FACTUM_SUB_CHECKPOINT = 3,  /* everything up to `position` was examined ($all) */
    FACTUM_SUB_IDLE = 4,        /* (factum_client_subscribe only) nothing arrived for idle_ms */
};

typedef struct factum_sub_item {
    int kind;            /* enum factum_sub_item_kind */
    factum_event event;  /* FACTUM_SUB_EVENT: the event, or a link's target */
    factum_event link;   /* the link event when has_link */
    int has_link;        /* resolve_links and the event was a resolved link */
    int unresolved;      /* resolve_links, a link whose target is gone: `event` is the link itself */
    /* Progress after this item: for $all the last position examined; for a
     * stream, the last version delivered (FACTUM_END if none yet). Resume
     * with FACTUM_SUB_AFTER and this value. */
    uint64_t position;
} factum_sub_item;

/* Fill items[0..cap) with the next items in order and set *n_out. If none
 * are ready, wait up to timeout_ms (0: return at once with *n_out = 0;
 * < 0: no limit) for new commits. Event pointers are valid as factum_event
 * says (upcast ones: see factum_sub_options.upcast). The first FACTUM_SUB_CAUGHT_UP comes once the subscription
 * reached the head (at once for FACTUM_SUB_END). Errors: FACTUM_EDELETED
 * (the stream was tombstoned; the items before it were delivered by earlier
 * calls), FACTUM_ECORRUPT, FACTUM_EINVAL (cap < 4), FACTUM_EUPCAST (the
 * upcast option). A return with *n_out = 0
 * does not always mean the subscription is at the head: each call examines
 * a bounded number of events (a sparse filter may match none of them);
 * factum_sub_pending tells whether to call again at once. */
FACTUM_API int factum_sub_poll(factum_sub *sub, factum_sub_item *items, size_t cap, size_t *n_out, int timeout_ms);
/* Make the following polls of sub read with FACTUM_NOWAIT (on non-zero) or
 * not (0, the default): a poll that would touch a page of the log not in
 * memory then returns the items before it, or -EWOULDBLOCK with none and
 * nothing moved (poll again, without it, on a thread that may wait; with a
 * timeout it does not wait either). The subscription is still used by one
 * thread at a time. 0, or FACTUM_EINVAL (sub NULL). */
FACTUM_API int factum_sub_set_nowait(factum_sub *sub, int on);

/* Why the last poll failed with FACTUM_EUPCAST, naming the event ("" if
 * it did not, or without the upcast option). Valid until the next poll. */
FACTUM_API const char *factum_sub_error(const factum_sub *sub);

/* 1 if committed events wait at the cursor (poll again without waiting),
 * 0 if the subscription is at the head. */
FACTUM_API int factum_sub_pending(const factum_sub *sub);

/* Where a subscription stands. */
typedef struct factum_sub_status {
    int live;              /* caught up and not fallen behind since */
    uint64_t position;     /* as factum_sub_item.position after the last item returned */
    uint64_t delivered;    /* events returned so far */
    uint64_t lag_events;   /* committed events (of $all, or of its stream) not yet examined */
    int64_t lag_ns;        /* age of the oldest of them (0 when lag_events is 0) */
} factum_sub_status;

/* Fill *st (reads the log for lag_ns). Errors: FACTUM_ECORRUPT. */
FACTUM_API int factum_sub_get_status(factum_sub *sub, factum_sub_status *st);

/* ---------------------------------------------------------------------------
 * Snapshots
 *
 * A snapshot is an application's state of stream S as of version V, kept
 * so that loading S need not replay it from the start. The convention
 * (docs/app-toolkit.md), which every client language can follow with plain
 * appends and reads:
 *   - the snapshots of S are the events of stream `$snapshots-S`, one event
 *     per snapshot; its type is the application's, its data the state, its
 *     metadata a JSON object with "$streamVersion": V (other keys allowed);
 *   - retention is `$maxCount` of `$snapshots-S`'s metadata (older
 *     snapshots are hidden by it; a scavenge reclaims them);
 *   - reading S never shows its snapshots: they live in another stream;
 *   - loading S takes the newest usable snapshot, then S's events from
 *     V + 1. A snapshot is usable when V <= S's last version, no visible
 *     event of S is missing after it (V + 1 >= S's truncate-before point),
 *     and it was written after S's latest soft delete, if any (a stream
 *     deleted and re-created continues its numbering, and the old state
 *     must not come back). An unusable snapshot is ignored, not an error.
 * factumd checks appends to `$snapshots-S` made over the network
 * (docs/protocol.md): each event's metadata must carry "$streamVersion" as
 * an integer within S's versions, or the append fails with
 * InvalidArgument and writes nothing.
 * ------------------------------------------------------------------------- */

/* Prefix of the stream that holds the snapshots of a stream. */
#define FACTUM_SNAPSHOT_PREFIX "$snapshots-"
/* Snapshots kept by factum_snapshot_write when `keep` is 0. */
#define FACTUM_SNAPSHOT_KEEP_DEFAULT 3u

/* Write a snapshot of `stream` at `version`: appends one event of type
 * `type` with data[0..len) (flagged as JSON when it is valid JSON) and
 * metadata {"$streamVersion": version} to `$snapshots-<stream>`, and makes
 * sure that stream's `$maxCount` is `keep` (0: FACTUM_SNAPSHOT_KEEP_DEFAULT),
 * rewriting its metadata (other keys kept) only when it differs. res (may
 * be NULL) receives the snapshot append's result. All pointers are
 * borrowed for the call. Blocks like factum_append.
 * The caller's state must be exactly the fold of the stream's events up to
 * `version`: factum cannot check that, only that the version exists.
 * Errors: FACTUM_ENOTFOUND (the stream does not exist or is soft-deleted),
 * FACTUM_EDELETED (tombstoned), FACTUM_EINVAL (version beyond the stream's
 * last version, a NULL argument, or a stream name so long that the
 * snapshot stream's name would pass FACTUM_MAX_STREAM_LEN), FACTUM_EBADNAME,
 * FACTUM_EBADTYPE, errors of factum_append (the snapshot is not written)
 * and of factum_set_stream_metadata (the snapshot is written, the
 * retention not yet set: the next call sets it). Thread-safe. */
FACTUM_API int factum_snapshot_write(factum_store *s, const char *stream, uint64_t version, const char *type,
                                     const void *data, size_t len, uint32_t keep, factum_append_result *res);

/* What factum_snapshot_load found. */
typedef struct factum_snapshot {
    int found;              /* 1: `event` is the newest usable snapshot; 0: none (replay from the start) */
    factum_event event;     /* the snapshot event of `$snapshots-S` (type, data = the state); pointers
                               valid until the store is closed */
    uint64_t version;       /* found: the version of S it captures ($streamVersion) */
    uint64_t from;          /* the first version of S to replay: version + 1, or the first visible one */
    int64_t last_version;   /* S's last version when it was loaded */
} factum_snapshot;

/* Load `stream` in one call: the newest usable snapshot (see above) into
 * *snap, and the first events of S after it into events[0..cap), *n_out
 * of them, in version order. *next_out receives the version to continue
 * from with factum_read_stream(..., FACTUM_FORWARD, ...), or FACTUM_END
 * when the stream's end was reached: page through the rest that way
 * (cap may be 0: then only the snapshot is loaded, and *next_out is
 * snap->from, or FACTUM_END when nothing follows it). The snapshot and the events are read
 * consistently: if S is truncated between the two reads, the load starts
 * again. Event pointers are valid until the store is closed.
 * Errors: FACTUM_ENOTFOUND (missing or soft-deleted), FACTUM_EDELETED,
 * FACTUM_EBADNAME, FACTUM_EINVAL (NULL snap or n_out, events NULL with
 * cap > 0), FACTUM_ECORRUPT. A malformed snapshot event (not usable) is
 * skipped, never an error. Thread-safe. */
FACTUM_API int factum_snapshot_load(factum_store *s, const char *stream, factum_snapshot *snap,
                                    factum_event *events, size_t cap, size_t *n_out, uint64_t *next_out);

/* ---------------------------------------------------------------------------
 * Streams: state, metadata, deletion, listing
 * ------------------------------------------------------------------------- */

/* Stream metadata as KurrentDB keeps it in `$$<stream>` (event type
 * `$metadata`, JSON keys `$maxAge` (s), `$maxCount`, `$tb`, `$cacheControl`
 * (s), `$acl`, plus any custom keys; factum's own `$subject`, a string of 1
 * to 255 bytes naming the data subject whose key seals the stream's events
 * appended after it, with crypto-shredding on). -1 means "not set". */
typedef struct factum_stream_metadata {
    int64_t max_age_s;
    int64_t max_count;
    int64_t truncate_before;
    int64_t cache_control_s;
    int has_subject; /* 1: the document names a data subject (`$subject`, crypto-shredding) */
} factum_stream_metadata;

enum factum_stream_status {
    FACTUM_STREAM_NONE = 0,         /* never written */
    FACTUM_STREAM_LIVE = 1,         /* has events */
    FACTUM_STREAM_SOFT_DELETED = 2, /* reads as not found; appending continues the numbering */
    FACTUM_STREAM_TOMBSTONED = 3,   /* permanently deleted */
};

typedef struct factum_stream_info {
    int status;                  /* enum factum_stream_status */
    int64_t last_version;        /* FACTUM_NO_STREAM if none was ever written */
    uint64_t last_position;      /* position of the last event (0 if none) */
    int64_t metadata_version;    /* version of the latest `$$<stream>` event, -1 if none */
    factum_stream_metadata meta; /* the effective metadata */
} factum_stream_info;

/* Current state of a stream. Errors: FACTUM_EBADNAME, FACTUM_ECORRUPT. */
FACTUM_API int factum_stream_get_info(factum_store *s, const char *stream, factum_stream_info *info);

/* The stream's metadata document (the data of the latest `$$<stream>`
 * event) as JSON. *json_out is malloc'd, NUL-terminated; free() it. "{}" and
 * *version_out = -1 when none was set. Errors: FACTUM_EBADNAME,
 * FACTUM_ECORRUPT, -ENOMEM. */
FACTUM_API int factum_get_stream_metadata(factum_store *s, const char *stream, char **json_out,
                                          size_t *len_out, int64_t *version_out);

/* Write a new metadata document for `stream`: appends a `$metadata` event
 * to `$$<stream>` with expectation `expected` (on the metadata stream). The
 * document must be a JSON object; the `$` keys must have the types KurrentDB
 * gives them. Errors: FACTUM_EBADJSON, errors of factum_append(). */
FACTUM_API int factum_set_stream_metadata(factum_store *s, const char *stream, int64_t expected,
                                          const char *json, size_t len, factum_append_result *res);

/* Parse a metadata document into *out (unset fields are -1).
 * Errors: FACTUM_EBADJSON. */
FACTUM_API int factum_stream_metadata_parse(const char *json, size_t len, factum_stream_metadata *out);

/* Soft delete: the stream reads as not found; a later append continues its
 * numbering (old events stay hidden). As KurrentDB, it writes a metadata
 * document holding only `$tb` = INT64_MAX (earlier metadata keys are not
 * kept); the next append sets `$tb` to its first version in a copy of the
 * metadata current then. `expected` is checked against the stream's
 * version. res->last_position is the metadata event's position.
 * Errors: as factum_append(), FACTUM_ENOTFOUND is not an error for FACTUM_ANY. */
FACTUM_API int factum_delete_stream(factum_store *s, const char *stream, int64_t expected,
                                    factum_append_result *res);

/* Tombstone: writes a `$streamDeleted` event at FACTUM_TOMBSTONE_VERSION;
 * afterwards reads and appends fail with FACTUM_EDELETED, forever. */
FACTUM_API int factum_tombstone_stream(factum_store *s, const char *stream, int64_t expected,
                                       factum_append_result *res);

/* Asynchronous soft delete / tombstone: queue the operation and return;
 * cb runs exactly once on the writer thread (as for factum_append_async) with
 * one result. The stream name is copied. Returns 0 when queued, -EAGAIN when
 * the queue is full (as factum_append_async), or an error for an invalid
 * name or expectation (then cb does not run). */
FACTUM_API int factum_delete_stream_async(factum_store *s, const char *stream, int64_t expected, factum_append_cb cb,
                                          void *ctx);
FACTUM_API int factum_tombstone_stream_async(factum_store *s, const char *stream, int64_t expected,
                                             factum_append_cb cb, void *ctx);

/* Call cb for each stream in creation order, starting after the stream
 * created at position `after` (0: from the first). cb returns 0 to go on,
 * anything else to stop (that value is returned). `name` is valid during the
 * call only. System streams (`$...`) are included; check name[0]. */
typedef int (*factum_stream_cb)(void *ctx, const char *name, size_t name_len, uint64_t created_position);
FACTUM_API int factum_list_streams(factum_store *s, uint64_t after, factum_stream_cb cb, void *ctx);

/* Number of streams ever created (including system streams and deleted
 * ones), without scanning the log. */
FACTUM_API int factum_stream_count(factum_store *s, uint64_t *count);

/* ---------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------- */

typedef struct factum_stats {
    uint64_t last_position;  /* last committed global position (0: empty) */
    uint64_t log_bytes;      /* bytes of log in use */
    uint64_t appends;        /* append requests completed since open */
    uint64_t events_written; /* events written since open */
    uint64_t bytes_written;  /* log bytes written since open */
    uint64_t fsyncs;         /* fdatasync calls on the log since open */
    uint64_t fsync_ns_total; /* time spent in them */
    uint64_t fsync_ns_max;
    uint64_t groups;            /* group commits since open */
    uint64_t group_events_max;  /* largest group, in appends */
    uint64_t index_tables;      /* on-disk index tables in use */
    uint64_t memtable_entries;  /* index entries in memory */
    uint64_t stream_cache_size; /* stream states cached */
    int durability;             /* enum factum_durability */
    int failed;                 /* 1 if fail-stopped; the error is failed_code */
    int failed_code;
} factum_stats;

FACTUM_API int factum_store_get_stats(factum_store *s, factum_stats *out);

/* Wait until all appends acknowledged so far are on disk (relaxed mode:
 * forces the fdatasync; durable mode: returns at once). */
FACTUM_API int factum_store_sync(factum_store *s);

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

/* Parse a UUID in text (8-4-4-4-12 hex, optional braces) into 16 bytes.
 * Errors: FACTUM_EBADUUID. */
FACTUM_API int factum_uuid_parse(const char *text, size_t len, uint8_t out[16]);
/* Format 16 bytes as lower-case 8-4-4-4-12 text into buf (>= 37 bytes). */
FACTUM_API void factum_uuid_format(const uint8_t id[16], char buf[37]);
/* A random version-4 UUID. Thread-safe. */
FACTUM_API void factum_uuid_v4(uint8_t out[16]);

/* Check a stream name: non-empty, <= FACTUM_MAX_STREAM_LEN bytes, valid
 * UTF-8 without NUL. Returns 0 or FACTUM_EBADNAME. */
FACTUM_API int factum_check_stream_name(const char *name, size_t len);

#ifdef __cplusplus
}
#endif

/* The storage lifecycle and projections: headers of their own, part of this one. */
#include "factum_lifecycle.h"
#include "factum_projection.h"

#endif /* FACTUM_H */
