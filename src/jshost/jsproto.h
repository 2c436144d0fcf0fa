/*
 * jsproto.h - the wire protocol between the projection manager
 * (jsproc.c, "the host") and a JavaScript projection's worker process
 * (src/js, factum-js), and the bounds-checked codec both sides use. Header
 * only, so that the worker does not link libfactum.
 *
 * Transport: a connected AF_UNIX stream socket, the worker's end on its
 * fd 3 (the host passes it at posix_spawn). Both ends are on one machine:
 * integers are in native byte order. Closing the socket tells the worker
 * to exit.
 *
 * Frame: u32 type, u32 len, then len bytes of payload. len is at most the
 * receiver's maximum (PJP_FRAME_MAX, and the worker's and host's smaller
 * limits below); a longer frame, an unknown type, or a payload that does
 * not decode exactly is a protocol error, and the receiver gives up on
 * the connection. Payload fields, in order, are:
 *   u8/u32/u64/i64  fixed size
 *   str             u32 length, then the bytes (no NUL)
 *   opt             u32 length or PJP_ABSENT (then no bytes): may be absent
 *
 * Host to worker:
 *   OPEN     u32 ms_per_event, u32 heap_mib, u32 state_bytes, str name,
 *            str query. Answered by DEF, or ERROR (then the worker exits).
 *   LOAD     u8 shared, str partition, opt state. Not answered: a state
 *            that does not parse is reported by the next BATCH/RESUME.
 *   BATCH    u32 n; then n EVENT frames. The worker reads them all before
 *            it runs any handler (so it never writes while the host still
 *            writes), then answers with LOG and OUT frames as the handlers
 *            run, and ends with NEED, or PART/SHARED frames and DONE, or
 *            ERROR.
 *   EVENT    u64 position, u64 seq, i64 timestamp_ns, u8 flags
 *            (PJP_EV_*), 16 bytes id, str stream, str type, str data,
 *            str meta, opt link_meta
 *   RESUME   (empty) after NEED and LOAD: go on from the event it stopped at.
 *   GET      u8 shared, str partition. Answered by STATE or ERROR.
 * Worker to host:
 *   DEF      u32 flags (PJP_DEF_*), i32 processing_lag, opt result_stream,
 *            opt partition_result_stream, then three lists, each u32 count
 *            and that many str: streams, categories, events
 *   LOG      str message (at most PJP_LOG_MAX bytes)
 *   OUT      u32 source, u8 kind, u8 is_json, str stream, str type,
 *            str data, opt meta
 *   NEED     u32 at, u8 shared, str partition
 *   PART     str partition, opt state, opt result (absent state: "")
 *   SHARED   str state
 *   DONE     u32 n: the batch is done; u32 partitions: the partition states the
 *            worker keeps now
 *   STATE    opt state
 *   ERROR    u32 kind (PJP_ERR_*), str message. The worker exits after it.
 *
 * Read models (src/rm/js.c): the same worker runs a read model's
 * JavaScript handlers when its first frame is OPEN_RM instead of OPEN.
 * Handlers keep no state, so there is no LOAD, RESUME, GET, NEED or PART.
 *   OPEN_RM  u32 ms_per_event, u32 heap_mib, str name, str script.
 *            Answered by DEF (flags: PJP_DEF_ALL_EVENTS for a $any handler;
 *            events: the types with a handler of their own; the rest
 *            empty), or ERROR (then the worker exits).
 *   BATCH, EVENT as above (link_meta absent). Answered by LOG, SQL and FAIL
 *            frames as the handlers run, then DONE (u32 n: the events
 *            handled, u32 0). A handler's failure does not end the batch:
 *            its event gets a FAIL and no SQL. n is less than the batch's
 *            count only when the script ran out of heap at event n - 1:
 *            the worker exits after that DONE.
 *   SQL      u32 source, str sql (at most PJP_SQL_MAX bytes), str params
 *            (a JSON object, at most PJP_EVENT_MAX bytes)
 *   FAIL     u32 source, u32 kind (PJP_ERR_SCRIPT, _TIMEOUT, _HEAP),
 *            str message (the error, where, and the script's stack)
 *
 * Upcasters (src/store/upscript.c, docs/adr/0016-script-upcasters.md): the
 * same worker runs the store's script upcasters when its first frame is
 * OPEN_UP (src/js/upapi.js). Stateless like a read model's handlers.
 *   OPEN_UP  u32 ms_per_event, u32 heap_mib, u32 n (at most PJP_UP_SCRIPTS),
 *            then n times: str name, str script (at most PJP_UP_SCRIPT_MAX
 *            bytes each: the text of a function expression). Answered by
 *            UPDEF, or ERROR (then the worker exits).
 *   UPDEF    u32 n, then n opt: absent when script i compiled to a function,
 *            else why not (at most PJP_FAIL_MAX bytes). A script that does
 *            not compile fails its events only (the host says so).
 *   BATCH    u32 n; then n UPCAST frames.
 *   UPCAST   u32 script (an index into OPEN_UP's list), then an EVENT's
 *            payload (its type, data and meta are the event as the chain
 *            has made it so far; link_meta absent).
 *   Answered by one UPOUT or FAIL per event, in order, then DONE (u32 n:
 *            the events done, u32 0). n is less than the batch's count only
 *            when the script ran out of heap at event n - 1 (FAIL _HEAP):
 *            the worker exits after that DONE.
 *   UPOUT    u32 source, str type, str data (JSON of an object), opt meta
 *            (JSON of an object; absent: the script left it as it was)
 */
#ifndef FACTUM_PROJ_JSPROTO_H
#define FACTUM_PROJ_JSPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    /* host to worker */
    PJP_OPEN = 1,
    PJP_LOAD = 2,
    PJP_BATCH = 3,
    PJP_EVENT = 4,
    PJP_RESUME = 5,
    PJP_GET = 6,
    PJP_OPEN_RM = 7,
    PJP_OPEN_UP = 8,
    PJP_UPCAST = 9,
    /* worker to host */
    PJP_DEF = 101,
    PJP_LOG = 102,
    PJP_OUT = 103,
    PJP_NEED = 104,
    PJP_PART = 105,
    PJP_SHARED = 106,
    PJP_DONE = 107,
    PJP_STATE = 108,
    PJP_ERROR = 109,
    PJP_SQL = 110,
    PJP_FAIL = 111,
    PJP_UPDEF = 112,
    PJP_UPOUT = 113,
};

#define PJP_HDR_LEN     8
#define PJP_ABSENT      0xffffffffu
#define PJP_FRAME_MAX   (160u << 20) /* any frame: two states at PJP_STATE_MAX and a little */
#define PJP_STATE_MAX   (64u << 20)  /* the largest state_bytes a host may ask for */
#define PJP_EVENT_MAX   (16u << 20)  /* the data (or metadata) of one event in or out */
#define PJP_QUERY_MAX   (4u << 20)   /* a projection's source */
#define PJP_LOG_MAX     (16u << 10)  /* one log() message (longer ones are cut) */
#define PJP_BATCH_MAX   (1u << 20)   /* events in one batch */
#define PJP_BATCH_BYTES (512u << 20) /* the encoded events of one batch, in the worker */
#define PJP_OUT_BYTES   (256u << 20) /* the OUT frames of one batch, in the host */
#define PJP_NAME_MAX    4096u        /* a stream, type or partition name */
#define PJP_SQL_MAX     (1u << 20)   /* the text of one sql() statement (read models) */
#define PJP_SQL_CALLS   10000u       /* sql() calls of one event's handler, at most */
#define PJP_FAIL_MAX    (16u << 10)  /* a FAIL frame's message */
#define PJP_UP_SCRIPTS    1024u        /* scripts of one OPEN_UP (FACTUM_UPCASTERS_MAX) */
#define PJP_UP_SCRIPT_MAX (64u << 10)  /* one upcaster's script (FACTUM_UPCAST_MAX_DOC) */
#define PJP_UP_OPEN_MAX   (12u + PJP_UP_SCRIPTS * (8u + PJP_NAME_MAX + PJP_UP_SCRIPT_MAX))

/* EVENT flags */
#define PJP_EV_JSON    0x1u /* data is JSON */
#define PJP_EV_DELETED 0x2u /* a notification that `stream` was deleted ($deleted) */

/* DEF flags */
#define PJP_DEF_ALL_STREAMS      0x0001u
#define PJP_DEF_ALL_EVENTS       0x0002u
#define PJP_DEF_BY_STREAMS       0x0004u
#define PJP_DEF_BY_CUSTOM        0x0008u
#define PJP_DEF_DEFINES_FOLD     0x0010u
#define PJP_DEF_HANDLES_DELETED  0x0020u
#define PJP_DEF_PRODUCES_RESULTS 0x0040u
#define PJP_DEF_INCLUDE_LINKS    0x0080u
#define PJP_DEF_REORDER_EVENTS   0x0100u
#define PJP_DEF_BI_STATE         0x0200u
#define PJP_DEF_STATE_TRANSFORM  0x0400u

/* ERROR kinds */
enum {
    PJP_ERR_DEFINITION = 1, /* the source does not compile or defines what KurrentDB refuses (at OPEN) */
    PJP_ERR_SCRIPT = 2,     /* a handler threw (a stack overflow included) */
    PJP_ERR_TIMEOUT = 3,    /* a handler ran past ms_per_event */
    PJP_ERR_HEAP = 4,       /* the script's heap reached heap_mib */
    PJP_ERR_STATE_SIZE = 5, /* a state's JSON is larger than state_bytes */
    PJP_ERR_OUTPUT = 6,     /* an emitted event is malformed or too large */
    PJP_ERR_PROTOCOL = 7,   /* the worker got a frame it does not accept */
    PJP_ERR_NOMEM = 8,      /* the worker's own allocation failed */
};

/* ---- encoding: a growing buffer ------------------------------------- */

typedef struct pjp_buf {
    uint8_t *p;
    size_t len, cap;
    int failed; /* an allocation failed: the frame is unusable */
} pjp_buf;

/* The allocator is the caller's: both sides pass realloc. */
static inline int pjp_reserve(pjp_buf *b, size_t n, void *(*re)(void *, size_t))
{
    if (b->failed) return -1;
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = (uint8_t *)re(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline void pjp_put(pjp_buf *b, const void *p, size_t n, void *(*re)(void *, size_t))
{
    if (n && pjp_reserve(b, n, re) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

static inline void pjp_u8(pjp_buf *b, uint8_t v, void *(*re)(void *, size_t))
{
    pjp_put(b, &v, 1, re);
}

static inline void pjp_u32(pjp_buf *b, uint32_t v, void *(*re)(void *, size_t))
{
    pjp_put(b, &v, 4, re);
}

static inline void pjp_u64(pjp_buf *b, uint64_t v, void *(*re)(void *, size_t))
{
    pjp_put(b, &v, 8, re);
}

static inline void pjp_str(pjp_buf *b, const void *p, size_t n, void *(*re)(void *, size_t))
{
    pjp_u32(b, (uint32_t)n, re);
    pjp_put(b, p, n, re);
}

/* p NULL: absent */
static inline void pjp_opt(pjp_buf *b, const void *p, size_t n, void *(*re)(void *, size_t))
{
    if (!p)
        pjp_u32(b, PJP_ABSENT, re);
    else
        pjp_str(b, p, n, re);
}

/* Start a frame of `type`; pjp_end fills in its length. */
static inline size_t pjp_begin(pjp_buf *b, uint32_t type, void *(*re)(void *, size_t))
{
    size_t at = b->len;
    pjp_u32(b, type, re);
    pjp_u32(b, 0, re);
    return at;
}

static inline void pjp_end(pjp_buf *b, size_t at)
{
    if (b->failed) return;
    uint32_t len = (uint32_t)(b->len - at - PJP_HDR_LEN);
    memcpy(b->p + at + 4, &len, 4);
}

/* ---- decoding: a cursor over one payload ------------------------------ */

typedef struct pjp_rd {
    const uint8_t *p;
    size_t left;
    int bad; /* read past the end, or a length over its bound */
} pjp_rd;

static inline int pjp_get(pjp_rd *r, void *out, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        memset(out, 0, n);
        return -1;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static inline uint8_t pjp_get_u8(pjp_rd *r)
{
    uint8_t v;
    pjp_get(r, &v, 1);
    return v;
}

static inline uint32_t pjp_get_u32(pjp_rd *r)
{
    uint32_t v;
    pjp_get(r, &v, 4);
    return v;
}

static inline uint64_t pjp_get_u64(pjp_rd *r)
{
    uint64_t v;
    pjp_get(r, &v, 8);
    return v;
}

/* A str of at most max bytes: points into the payload (not NUL-terminated). */
static inline const char *pjp_get_str(pjp_rd *r, size_t *len, size_t max)
{
    uint32_t n = pjp_get_u32(r);
    *len = 0;
    if (r->bad || n > max || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    r->left -= n;
    *len = n;
    return s;
}

/* An opt: NULL when absent (not an error). */
static inline const char *pjp_get_opt(pjp_rd *r, size_t *len, size_t max)
{
    if (r->bad || r->left < 4) {
        r->bad = 1;
        *len = 0;
        return NULL;
    }
    uint32_t n;
    memcpy(&n, r->p, 4);
    if (n == PJP_ABSENT) {
        r->p += 4;
        r->left -= 4;
        *len = 0;
        return NULL;
    }
    return pjp_get_str(r, len, max);
}

/* 0 if the payload decoded exactly (nothing left over, nothing missing). */
static inline int pjp_done(const pjp_rd *r)
{
    return r->bad || r->left ? -1 : 0;
}

#endif
