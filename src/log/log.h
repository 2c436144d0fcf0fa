/*
 * log.h - the segmented append-only log: frame encoding and decoding, the
 * segment files, writing batches at the tail, the recovery scan that finds a
 * torn tail, and verification. The log knows frames, batches and events; it
 * knows nothing of streams' semantics or of the index.
 *
 * Design note (invariants; tests cite them as LOG-n):
 *  LOG-1  A log offset (LO) is seg_no * segment_size + offset within the
 *         segment. Frames start at 8-byte aligned offsets >= LOG_SEG_HEADER
 *         and never cross a segment; every frame's length is a multiple of 8
 *         and it ends with a copy of its length (backward scanning).
 *  LOG-2  Every frame carries a CRC32C over all its bytes but the CRC field.
 *  LOG-3  The writer appends whole batches: a batch frame followed by its
 *         n_events event frames, with consecutive global positions. The
 *         batch is the unit of recovery: after a crash it is wholly present
 *         or wholly cut. Every append (commit) lies inside one batch.
 *  LOG-4  In durable mode, a batch is written only after every earlier batch
 *         was fdatasync'd. So at most the last batch can be torn, and damage
 *         followed by a valid durable batch is corruption of acknowledged
 *         data: open refuses it (FACTUM_ECORRUPT) instead of skipping it.
 *  LOG-5  Bytes after the end of the log in a segment are zero. Recovery
 *         zeroes a cut tail, so stale frames can never reappear.
 *  LOG-6  Segments are created whole (header + zeros, fdatasync'd, renamed
 *         into place) before the writer uses them, so a write into a segment
 *         never changes its size and fdatasync has no metadata to flush.
 *  LOG-7  Every batch in a segment of format >= 3 is chained (an 80-byte
 *         batch frame); batches in older segments are plain (48 bytes). A
 *         chained batch's hash is SHA-256(the previous chained batch's hash
 *         | its frame's bytes 8..39 | SHA-256 of each of its event frames,
 *         in order) (chain.c); the first chained batch of a store follows
 *         log_chain_genesis(uuid). So the chain over every chained batch
 *         can be recomputed from the log alone (factum verify --chain).
 *  LOG-8  A compacted generation of a segment (compact.c, ADR 0026) holds
 *         the frames a scavenge kept, back to back and unchanged, stubs
 *         for events whose bodies went, and removed frames (type 3) for
 *         each run of removed events inside a batch (their positions and
 *         chain digests), then a footer mapping every frame's logical
 *         offset (where the writer put it) to where it is now. LOs stay
 *         logical everywhere: log_ptr translates; stepping to the next or
 *         previous frame goes through log_next_lo / log_prev_lo. A batch
 *         frame is kept while its segment exists, so batches still parse
 *         and the chain still verifies (LOG-7).
 */
#ifndef FACTUM_LOG_H
#define FACTUM_LOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/base.h"
#include "io/io.h"

#define LOG_SEG_HEADER   4096u
#define LOG_SEG_MAGIC    "FCTMSEG"
/* The segment table: pages of LOG_SEG_PAGE entries, allocated as the log
 * grows; 2^28 segments (16 PiB of 64 MiB segments) in all. */
#define LOG_SEG_PAGE     4096u
#define LOG_SEG_PAGES    65536u
#define LOG_MAX_SEGMENTS ((uint64_t)LOG_SEG_PAGE * LOG_SEG_PAGES)

#define LOG_FRAME_BATCH   1
#define LOG_FRAME_EVENT   2
#define LOG_FRAME_REMOVED 3 /* compacted generations only (LOG-8) */

#define LOG_BATCH_FRAME_LEN 48u /* a plain batch frame (segments of format < 3) */
#define LOG_BATCH_CHAIN_LEN 80u /* a chained batch frame (LOG-7): 32 more bytes, the hash */
#define LOG_CHAIN_FORMAT    3u  /* segments of this format and later hold chained batches */
#define LOG_HASH_LEN        32u
#define LOG_EVENT_HDR_LEN   64u

/* Event frame flags beyond FACTUM_EVENT_JSON / FACTUM_EVENT_META_JSON. */
/* A sealed event (crypto-shredding, ADR 0027; format 5): its data is
 * u32 key id, 12-byte nonce, AES-256-GCM ciphertext of (u32 data_len, data,
 * metadata), 16-byte tag; its metadata is empty. Decoded with the sealed
 * bytes as data and this bit (FACTUM_EVENT_SEALED) in ev->flags; the store
 * opens it (store/seal.c). */
#define LOG_EV_SEALED      0x04u
#define LOG_SEAL_OVERHEAD  (4u + 12u + 4u + 16u) /* key id, nonce, plaintext length, tag */
#define LOG_EV_COMMIT_FIRST 0x10u
#define LOG_EV_COMMIT_LAST  0x20u
/* (0x40 is the store's ST_EV_CREATES.) A stub (LOG-8): an event frame
 * whose data is the 32-byte SHA-256 of the frame it replaces, and no
 * metadata; decoded with data_len 0 and this bit in ev->flags. */
#define LOG_EV_STUB 0x80u
/* Not a frame flag: what log_scan passes for each position of a removed
 * frame (with an event whose stream_len is 0 and only position set). */
#define LOG_EV_REMOVED 0x100u
/* Batch frame flags. */
#define LOG_BATCH_DURABLE 0x1u

/* A removed frame: 0 u32 length, 4 u32 crc, 8 u8 type=3, 9..11 0,
 * 12 u32 count, 16 u64 first position, 24..31 0, 32 count × 32-byte
 * digests, 4 zero bytes, u32 length. */
#define LOG_REMOVED_HDR_LEN 32u
static inline uint32_t log_removed_frame_len(uint32_t count)
{
    return LOG_REMOVED_HDR_LEN + count * LOG_HASH_LEN + 8;
}
void log_encode_removed(uint8_t *p, uint64_t first_position, uint32_t count, const uint8_t *digests);
typedef struct log_removed {
    uint64_t first_position;
    uint32_t count;
    const uint8_t *digests; /* count × LOG_HASH_LEN */
} log_removed;
/* The fields of a removed frame log_decode_frame accepted. */
void log_removed_get(const uint8_t *p, log_removed *r);
/* Encode a stub of the event frame `frame` (its SHA-256 `digest`) into p
 * (log_stub_len bytes). */
uint32_t log_stub_len(const factum_event *ev);
void log_encode_stub(uint8_t *p, const factum_event *ev, uint32_t frame_flags, const uint8_t *digest);

/* Bytes an event frame needs. */
static inline uint32_t log_event_frame_len(size_t stream_len, size_t type_len, size_t data_len,
                                           size_t meta_len)
{
    return (uint32_t)base_align_up(
        LOG_EVENT_HDR_LEN + stream_len + 1 + type_len + 1 + data_len + meta_len + 4, 8);
}

/* Encode an event frame into p (log_event_frame_len bytes). */
void log_encode_event(uint8_t *p, const factum_event *ev, uint32_t frame_flags);
/* Encode a batch frame into p: with chain NULL a plain one
 * (LOG_BATCH_FRAME_LEN bytes), else a chained one (LOG_BATCH_CHAIN_LEN)
 * carrying the 32-byte hash `chain`. */
void log_encode_batch(uint8_t *p, uint32_t n_events, uint64_t first_position, uint64_t body_len, int64_t ts,
                      uint32_t flags, const uint8_t *chain);

typedef struct log_batch_hdr {
    uint32_t n_events;
    uint32_t flags;
    uint64_t first_position;
    uint64_t body_len;
    int64_t timestamp;
    uint32_t frame_len;          /* LOG_BATCH_FRAME_LEN or LOG_BATCH_CHAIN_LEN */
    uint8_t chain[LOG_HASH_LEN]; /* a chained batch's hash (LOG-7); zeros for a plain one */
} log_batch_hdr;

/* Check and decode the frame at p with at most `avail` bytes available.
 * Returns its length (> 0), 0 if the bytes are zero (no frame), or
 * FACTUM_ECORRUPT. Decodes into *ev / *bh by type (either may be NULL to
 * refuse that type); a removed frame (LOG-8) is accepted whatever they
 * are, its fields left to log_removed_get. *frame_flags gets the raw
 * flags byte. */
int log_decode_frame(const uint8_t *p, uint64_t avail, int *type, factum_event *ev, log_batch_hdr *bh,
                     uint32_t *frame_flags);

/* ---- the hash chain (chain.c, LOG-7) --------------------------------- */

/* SHA-256 state, reused (fetching the algorithm and making contexts cost
 * more than hashing a small event). One user at a time. */
typedef struct log_hasher {
    struct evp_md_st *md;
    struct evp_md_ctx_st *batch, *event;
} log_hasher;
int log_hasher_init(log_hasher *h); /* 0 or -ENOMEM */
void log_hasher_free(log_hasher *h);
/* The hash before a store's first chained batch: SHA-256 of a fixed label
 * and the store's uuid, so that a chain belongs to one store. */
int log_chain_genesis(log_hasher *h, const uint8_t uuid[16], uint8_t out[LOG_HASH_LEN]);
/* The same with a hasher of its own (once per open or backup, not per batch). */
int log_chain_genesis_of(const uint8_t uuid[16], uint8_t out[LOG_HASH_LEN]);
/* SHA-256 of one event frame (its `len` bytes as written). */
int log_chain_event(log_hasher *h, const uint8_t *frame, size_t len, uint8_t out[LOG_HASH_LEN]);
/* The hash of a chained batch: prev, the batch frame's bytes 8..39 (the
 * frame at `frame`, chained or not: those bytes are the same) and the
 * SHA-256 of each event frame in `events` (body_len bytes, back to back,
 * each starting with its length). 0, FACTUM_ECORRUPT if the events do not
 * parse as frames, or -ENOMEM. */
int log_chain_batch(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame,
                    const uint8_t *events, uint64_t body_len, uint8_t out[LOG_HASH_LEN]);
/* The same in steps: begin, add the events' digests (n × LOG_HASH_LEN
 * bytes at a time), end. */
int log_chain_begin(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame);
int log_chain_add(log_hasher *h, const uint8_t *digests, size_t n);
int log_chain_end(log_hasher *h, uint8_t out[LOG_HASH_LEN]);
/* The same from the events' digests (n × LOG_HASH_LEN bytes). */
int log_chain_combine(log_hasher *h, const uint8_t prev[LOG_HASH_LEN], const uint8_t *frame,
                      const uint8_t *digests, size_t n, uint8_t out[LOG_HASH_LEN]);

struct flog;
/* The chain digest of the event at position `position` whose frame is at
 * lo (LOG-7): SHA-256 of its frame, a stub's recorded one, or a removed
 * frame's (lo: that frame, or a removed event's old offset inside it). */
int log_event_digest(struct flog *l, log_hasher *h, uint64_t lo, uint64_t position, uint8_t out[LOG_HASH_LEN]);

/* The format new segments get: this library's. Tests set an older one to
 * make the files an older library wrote (plain batches, LOG-7). */
extern uint32_t log_new_segment_format;

/* One segment file, mapped whole. Its descriptor is open only while the
 * segment may be written or synced (the last segments); a sealed, synced
 * segment is read through its mapping alone, so that a large log does not
 * hold a descriptor per segment. log_seg_fd opens it again when needed. */
typedef struct log_seg {
    uint64_t no;
    int fd; /* -1: closed (seg_mu) */
    uint8_t *map;
    uint64_t map_len; /* seg_size, or a compacted generation's file size */
    uint32_t format;  /* from its header: >= LOG_CHAIN_FORMAT holds chained batches (LOG-7) */
    uint32_t gen;     /* 0: as the writer made it; >= 1: a compacted generation (LOG-8) */
    /* A compacted generation: n_ent (logical offset, offset now) pairs of
     * u32, sorted, inside the mapping; the frames end at body_end; the
     * segment's logical data ended at logical_end. */
    const uint8_t *ent;
    uint64_t n_ent, body_end, logical_end;
    int64_t retired_at;    /* a replaced generation: when (ns), for the grace period */
    struct log_seg *next; /* on flog.retired */
    /* The archive tier (archive.c, LOG-9): where its file is (LOG_LOCAL,
     * LOG_ARCHIVE: only the archive holds it), and whether the archive is
     * known to hold a copy of exactly this file. */
    _Atomic uint8_t where;
    _Atomic uint8_t archived;
} log_seg;

enum { LOG_LOCAL = 0, LOG_ARCHIVE = 1 };

typedef _Atomic(log_seg *) log_seg_slot;

#define LOG_RES_SLOTS 8192 /* pages whose residence resident.c remembers (64 KiB) */

typedef struct flog {
    io_env *io;
    char *dir;  /* <datadir>/log */
    char *arch; /* <archive_dir>/<store uuid>, or NULL: no archive tier (LOG-9) */
    uint64_t seg_size;
    uint8_t store_uuid[16];
    int read_only;
    /* Segments 0..n_segs-1 by number, in pages of LOG_SEG_PAGE entries;
     * pages and entries are published with release stores, so readers look
     * them up without a lock (log_seg_get, LOG-1). */
    _Atomic(log_seg_slot *) seg_pages[LOG_SEG_PAGES];
    _Atomic uint64_t n_segs;
    pthread_mutex_t seg_mu;  /* allocating pages; closing and reopening descriptors */
    uint64_t fds_closed_below; /* segments below this have their descriptors closed (seg_mu) */
    /* Writer state (writer thread only). */
    uint64_t tail_lo;            /* LO where the next batch goes */
    uint8_t chain[LOG_HASH_LEN]; /* the hash of the last chained batch, or the genesis (LOG-7) */
    uint64_t chain_pos;          /* the last position that batch holds (0: none yet) */
    uint64_t unsynced_from;      /* lowest segment number with unsynced writes */
    /* Everything before this LO is known fdatasync'd (any thread reads it;
     * it only grows). */
    _Atomic uint64_t synced_lo;
    /* Segment preparation (a background thread creates segments ahead). */
    pthread_mutex_t prep_mu;
    pthread_cond_t prep_cv;
    pthread_t prep_thread;
    int prep_running, prep_stop, prep_err;
    uint64_t prep_want;  /* create segments up to this number */
    uint64_t prep_asked; /* writer: highest segment it asked for */
    /* Generations replaced by compacted ones, newest first (seg_mu): their
     * mappings stay until log_retire (ADR 0026's grace period) and are
     * unmapped by log_close. */
    log_seg *retired;
    /* Bumped (release) after each compacted generation is published: event
     * pointers read before a change may point into a replaced file, which
     * stays readable for the grace period after it (factum_store_epoch). */
    _Atomic uint64_t swap_epoch;
    /* Pages seen in memory lately (resident.c, RES-1..2). */
    _Atomic uint64_t res_cache[LOG_RES_SLOTS];
} flog;

/* Open the log in dir. With create (a new store only), make dir and
 * segment 0 when missing; without it, a missing directory, no segment at
 * all, or a gap in the numbering is FACTUM_ECORRUPT. arch (may be NULL):
 * the store's archive directory, where segments missing from dir are
 * looked for (LOG-9). Validates every segment header; maps every segment.
 * On failure `why` (may be NULL) receives what is wrong. */
int log_open(io_env *io, const char *dir, const char *arch, uint64_t seg_size, const uint8_t uuid[16],
             int create, int read_only, char *why, size_t why_len, flog **out);
void log_close(flog *l);

/* Start/stop the background thread that keeps one segment prepared ahead. */
int log_prep_start(flog *l);
void log_prep_stop(flog *l);

/* Events found by the recovery scan. Return non-zero to abort the scan. */
typedef int (*log_event_fn)(void *ctx, const factum_event *ev, uint64_t lo, uint32_t frame_flags);
/* Called after each valid batch's events. Return non-zero to abort. */
typedef int (*log_batch_fn)(void *ctx, uint64_t end_lo, uint64_t next_position);

typedef struct log_scan_result {
    uint64_t end_lo;        /* LO after the last valid batch */
    uint64_t next_position; /* position after the last valid event */
    uint64_t last_batch_lo; /* LO of the last valid batch (0: none scanned) */
    uint64_t batches, events;
    int torn;            /* a torn tail was found at end_lo */
    uint64_t torn_bytes; /* non-zero bytes after end_lo in its segment */
    int corrupt;         /* damage before valid durable data (LOG-4) */
    uint64_t corrupt_lo; /* where */
    char what[160];      /* description of the damage */
} log_scan_result;

/* Scan and validate batches from `from_lo` (a batch boundary) whose first
 * position is `from_position`, calling fn for every event and bfn after
 * every batch (either may be NULL), until the end of the log. Never modifies anything. Returns 0 (see
 * res->corrupt and res->torn), a callback's non-zero value, or -errno. */
int log_scan(flog *l, uint64_t from_lo, uint64_t from_position, log_event_fn fn, log_batch_fn bfn, void *ctx,
             log_scan_result *res);

/* After a scan found a torn tail: zero everything from end_lo to the end of
 * its segment's non-zero bytes, fdatasync, and make end_lo the tail. */
int log_cut_tail(flog *l, uint64_t end_lo);
/* Set the writer's tail (after a clean scan). */
void log_set_tail(flog *l, uint64_t end_lo);

/* Writer: where a batch of `len` bytes will go (rolling to the next segment
 * if it does not fit); waits for the preparer if that segment is not ready.
 * Returns 0 and *lo, or -errno / FACTUM_ETOOBIG. */
int log_reserve(flog *l, uint64_t len, uint64_t *lo);
/* Writer: the next batch goes into a new segment (unless the current one
 * holds nothing yet). */
void log_seal(flog *l);
/* Writer: write len bytes at lo (from log_reserve); advances the tail. */
int log_write(flog *l, uint64_t lo, const void *buf, size_t len);
/* Writer: fdatasync every segment written since the last sync. */
int log_sync(flog *l);
/* Writer, for an fdatasync made elsewhere (an io_uring, store/drive.c): the
 * descriptors of the segments log_sync would fdatasync now, into fds (up to
 * cap; *n receives how many there are, which may exceed cap), and the tail
 * they cover (*upto). Then, with the writer's lead kept and nothing written
 * meanwhile, log_sync_done(upto) once all of them were fdatasync'd. */
void log_sync_fds(flog *l, int *fds, size_t cap, size_t *n, uint64_t *upto);
void log_sync_done(flog *l, uint64_t upto);
/* Any thread: make the log durable up to `lo` (every segment that may hold
 * unsynced bytes below lo is fdatasync'd, however many there are). For an
 * index checkpoint covering lo (IDX-1). 0 or -errno. */
int log_sync_upto(flog *l, uint64_t lo);

/* Is the segment holding lo one of chained batches (LOG-7)? */
int log_seg_chained(flog *l, uint64_t lo);
/* The batch holding the event frame at event_lo: walks back over the frames
 * before it (their lengths end each frame, LOG-1) to the batch frame. 0 and
 * *batch_lo / *bh, or FACTUM_ECORRUPT. */
int log_batch_of(flog *l, uint64_t event_lo, uint64_t *batch_lo, log_batch_hdr *bh);
/* Writer, on open: the chain continues after the batch at batch_lo (a
 * chained one: its hash; a plain one or none, 0: the genesis). */
int log_chain_resume(flog *l, uint64_t batch_lo);

/* Find the first valid batch frame after `from` (for verification after
 * damage): 1 and *lo / *first_position, or 0 if none. */
int log_find_batch(flog *l, uint64_t from, uint64_t *lo, uint64_t *first_position);

/* Drop the log's bytes in [from_lo, to_lo) from this process's resident
 * memory (they stay in the page cache; a later read maps them again): after
 * a long scan such as recovery's. */
void log_release(flog *l, uint64_t from_lo, uint64_t to_lo);

/* Are the len bytes at p (inside a segment's mapping) all in memory, so
 * that reading them takes no major page fault (resident.c)? 1 yes, 0 not
 * known. epoch: a number that changes about every second (store reads
 * pass base_now_ns() >> 30); answers are remembered within one (RES-1). */
int log_resident(flog *l, const uint8_t *p, uint64_t len, unsigned epoch);
/* Is the whole frame at lo in memory (its header, then the length it
 * gives)? 1 yes (or no segment there: the read reports that), 0 not known. */
int log_frame_resident(flog *l, uint64_t lo, unsigned epoch);

/* Segment `no`, or NULL (any thread, no lock). */
static inline log_seg *log_seg_get(flog *l, uint64_t no)
{
    if (no >= LOG_MAX_SEGMENTS) return NULL;
    log_seg_slot *page = atomic_load_explicit(&l->seg_pages[no / LOG_SEG_PAGE], memory_order_acquire);
    return page ? atomic_load_explicit(&page[no % LOG_SEG_PAGE], memory_order_acquire) : NULL;
}
/* Publish segment `no` (allocating its page of the table). 0 or -ENOMEM. */
int log_seg_publish(flog *l, uint64_t no, log_seg *s);
/* s's descriptor, opened again if it was closed; -errno if it cannot be. */
int log_seg_fd(flog *l, log_seg *s);

/* Map an LO to its bytes; `avail` receives the bytes up to the end of the
 * segment. NULL if the segment does not exist. In a compacted generation
 * (LOG-8): an LO past its data gives zero bytes; the old offset of a
 * removed event gives the removed frame standing for it; an offset that
 * is no frame's gives NULL. */
const uint8_t *log_ptr(flog *l, uint64_t lo, uint64_t *avail);
/* The LO of the frame after the frame at lo (len: its length as decoded):
 * lo + len, or in a compacted generation the next frame's logical offset. */
uint64_t log_next_lo(flog *l, uint64_t lo, uint32_t len);
/* The logical offset of the frame log_ptr(lo) gives: lo itself, or in a
 * compacted generation the removed frame's own when lo is a removed
 * event's old offset. */
uint64_t log_frame_lo(flog *l, uint64_t lo);
/* The LO of the frame that ends at `end` (a frame boundary, or the end of
 * the segment's data): 0 and *prev, FACTUM_ENOTFOUND at the segment's
 * first frame, FACTUM_ECORRUPT if the bytes there are no frame's end. */
int log_prev_lo(flog *l, uint64_t end, uint64_t *prev);

/* ---- compacted generations (compact.c, LOG-8, ADR 0026) ------------- */

/* A compacted generation's header fields (bytes 64..107 of its header;
 * docs/format.md). */
#define LOG_GEN_MAGIC 0x4e454746u /* "FGEN" */
typedef struct log_gen_info {
    uint32_t gen, batch_format, footer_crc;
    uint64_t footer_off, n_ent, logical_end;
} log_gen_info;
/* Encode g into a segment header h whose bytes 0..59 are set (the format
 * becomes this library's: older ones refuse a compacted segment). */
void log_gen_header(uint8_t *h, const log_gen_info *g);

enum { LOG_KEEP = 0, LOG_STUB = 1, LOG_REMOVE = 2 };
/* What becomes of the event at lo (ev decoded, ff its frame flags; a stub
 * already is one): LOG_KEEP, LOG_STUB, LOG_REMOVE, or < 0 to fail. */
typedef int (*log_decide_fn)(void *ctx, const factum_event *ev, uint64_t lo, uint32_t ff);
typedef struct log_compact_stats {
    uint64_t events, kept, stubbed, removed; /* stubbed, removed: including earlier generations' */
    uint64_t stubbed_now, removed_before;   /* stubs made now; events removed by earlier generations */
    uint64_t bytes_before, bytes_after;     /* the files' sizes */
} log_compact_stats;
/* Write the next generation of sealed segment `no` as NNNNNNNN.seg.gen
 * (fdatasync'd; not yet in place), deciding each event with fn. A segment
 * with nothing to remove still gets one (the caller weighs first). */
int log_compact_write(flog *l, uint64_t no, log_decide_fn fn, void *ctx, log_compact_stats *st);
/* The same decisions without writing anything: what log_compact_write
 * would make of the segment (bytes_after: the size it would have). */
int log_compact_weigh(flog *l, uint64_t no, log_decide_fn fn, void *ctx, log_compact_stats *st);
/* Put the generation log_compact_write made in place: rename over the
 * segment, fsync the directory, map it and publish it; the generation it
 * replaces stays mapped (readers may hold pointers into it) until
 * log_close. */
int log_compact_swap(flog *l, uint64_t no);
/* Map the file named for segment `no` in `where` (LOG_LOCAL, LOG_ARCHIVE)
 * and publish it (a new segment, or compact.c's swap: in place of the one
 * readers find). */
int log_seg_attach(flog *l, uint64_t no, int where);
/* The path of segment no's file in `where`, with a suffix ("", ".gen",
 * ".tmp"), and the directory holding it. */
void log_seg_path(const flog *l, int where, uint64_t no, const char *suffix, char *buf, size_t n);
static inline const char *log_seg_dir(const flog *l, int where)
{
    return where == LOG_ARCHIVE ? l->arch : l->dir;
}
/* Drop a generation written but not swapped in. */
void log_compact_abandon(flog *l, uint64_t no);
/* Release the files of generations replaced more than grace_ns ago: their
 * mappings become anonymous zero pages (a pointer held past the grace
 * reads zeros instead of faulting), so the disk space goes back once no
 * other link (a backup) holds the file. Returns how many were released. */
int log_retire(flog *l, int64_t grace_ns);
/* ---- the archive tier (archive.c, LOG-9, ADR 0028) ------------------ */

/* Does the archive hold a copy of sealed segment no's current file (the
 * same size and header; copies are only ever named once verified)? 1, 0,
 * or -errno. Remembered in s->archived. */
int log_archive_has(flog *l, uint64_t no);
/* Copy sealed segment no's file to the archive: a temporary file written
 * from the mapping, fdatasync'd, read back and compared (CRC-32C), renamed
 * into place, the directory fsync'd; what it writes and reads paced to
 * throttle_bps (0: as fast as it can). *bytes: its size. 0 or -errno /
 * FACTUM_ECORRUPT (the read-back differs). The caller keeps the segment
 * from being compacted meanwhile. */
int log_archive_copy(flog *l, uint64_t no, uint64_t throttle_bps, uint64_t *bytes);
/* Serve segment no from its archived copy and drop the local file: the
 * archive's file is mapped over the same addresses (its bytes are the same,
 * so pointers readers hold stay valid), then the local file is unlinked
 * and the directory fsync'd. Requires log_archive_has. 0 or -errno. */
int log_archive_drop_local(flog *l, uint64_t no);

/* LO of the first frame of the segment after the one holding lo. */
static inline uint64_t log_next_seg_lo(const flog *l, uint64_t lo)
{
    return (lo / l->seg_size + 1) * l->seg_size + LOG_SEG_HEADER;
}

#endif
