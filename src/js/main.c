/*
 * main.c - factum-js, the worker process that runs one JavaScript
 * projection for the projection manager (src/jshost/jsproc.c). It reads
 * frames of the worker protocol (src/jshost/jsproto.h) from the socket on
 * fd 3, checks each strictly, hands them to the engine (engine.cc, V8)
 * and writes the engine's answers back. A separate process so that what
 * the script does - or V8 itself, on a fatal out-of-memory - can end this
 * process and nothing else (docs/adr/0006-javascript-engine.md).
 *
 * The first frame says which: OPEN a projection, OPEN_RM a read model's
 * JavaScript handlers (src/rm/js.c), OPEN_UP the store's script upcasters
 * (src/store/upscript.c).
 *
 * Usage: factum-js [--fd N]     (the host starts it; N defaults to 3)
 *        factum-js --version
 * Exits 0 when the host closes the socket or after it reported an error
 * in an ERROR frame; 2 on a protocol error or a bad command line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

/* Partition states kept between batches, at most (the engine keeps fewer
 * when its heap fills; the rest are asked for again). */
#define KEEP_PARTITIONS (1u << 20)

static int sock = 3;

static void *re(void *p, size_t n)
{
    return realloc(p, n);
}

static int write_all(const void *p, size_t n)
{
    while (n) {
        ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int flush(void *ctx, pjp_buf *b)
{
    (void)ctx;
    if (b->failed) return -1;
    int rc = write_all(b->p, b->len);
    b->len = 0;
    return rc;
}

/* What the host sent, read in large pieces: a frame is usually far
 * smaller than one read, and a system call per frame header and payload
 * cost more than the handlers of small events. */
static struct {
    uint8_t *p;
    size_t cap, start, end;
} rb;

/* At least n bytes at rb.p + rb.start: 0, 1 at the end of the stream when
 * nothing is buffered and eof_ok, -1 on an error. */
static int rb_need(size_t n, int eof_ok)
{
    if (rb.end - rb.start >= n) return 0;
    if (rb.start) {
        memmove(rb.p, rb.p + rb.start, rb.end - rb.start);
        rb.end -= rb.start;
        rb.start = 0;
    }
    if (n > rb.cap) {
        size_t cap = rb.cap ? rb.cap : 256u << 10;
        while (cap < n)
            cap *= 2;
        uint8_t *p = realloc(rb.p, cap);
        if (!p) return -1;
        rb.p = p;
        rb.cap = cap;
    }
    while (rb.end < n) {
        ssize_t r = read(sock, rb.p + rb.end, rb.cap - rb.end);
        if (r < 0 && errno == EINTR) continue;
        /* the host closed (or died: ECONNRESET when it had unread bytes) */
        if ((r == 0 || (r < 0 && errno == ECONNRESET)) && rb.end == 0 && eof_ok) return 1;
        if (r <= 0) return -1;
        rb.end += (size_t)r;
    }
    return 0;
}

/* Take n bytes (made available by rb_need). */
static const uint8_t *rb_take(size_t n)
{
    const uint8_t *p = rb.p + rb.start;
    rb.start += n;
    return p;
}

/* The largest payload accepted for each frame type from the host. */
static size_t max_len(uint32_t type)
{
    switch (type) {
    case PJP_OPEN:
        return 12 + 8 + PJP_NAME_MAX + PJP_QUERY_MAX;
    case PJP_LOAD:
        return 1 + 8 + PJP_NAME_MAX + PJP_STATE_MAX;
    case PJP_BATCH:
        return 4;
    case PJP_EVENT:
        return 8 * 3 + 1 + 16 + 5 * 4 + 2 * PJP_NAME_MAX + 3 * PJP_EVENT_MAX;
    case PJP_RESUME:
        return 0;
    case PJP_GET:
        return 1 + 4 + PJP_NAME_MAX;
    case PJP_OPEN_RM:
        return 8 + 8 + PJP_NAME_MAX + PJP_QUERY_MAX;
    case PJP_OPEN_UP:
        return PJP_UP_OPEN_MAX;
    case PJP_UPCAST:
        return 4 + 8 * 3 + 1 + 16 + 5 * 4 + 2 * PJP_NAME_MAX + 3 * PJP_EVENT_MAX;
    default:
        return 0;
    }
}

typedef struct frame {
    uint32_t type, len;
    const uint8_t *p; /* the payload, in the read buffer until the next read */
} frame;

/* Read one frame: 0, 1 at the end of the stream, -1 on an error (a
 * message in why). */
static int read_frame(frame *f, char *why, size_t why_len)
{
    int rc = rb_need(PJP_HDR_LEN, 1);
    if (rc) {
        if (rc < 0) snprintf(why, why_len, "the connection broke in a frame header");
        return rc;
    }
    uint32_t h[2];
    memcpy(h, rb_take(PJP_HDR_LEN), sizeof h);
    f->type = h[0];
    f->len = h[1];
    if (f->type < PJP_OPEN || f->type > PJP_OPEN_UP || f->type == PJP_EVENT) {
        snprintf(why, why_len, "a frame of unknown type %u", f->type);
        return -1;
    }
    if (f->len > max_len(f->type)) {
        snprintf(why, why_len, "a frame of type %u and %u bytes (at most %zu)", f->type, f->len,
                 max_len(f->type));
        return -1;
    }
    if (rb_need(f->len, 0)) {
        snprintf(why, why_len, "the connection broke in a frame (or no memory for its %u bytes)", f->len);
        return -1;
    }
    f->p = rb_take(f->len);
    return 0;
}

/* A protocol error: said in an ERROR frame, then the worker exits. */
static int protocol_error(const char *why)
{
    pjp_buf b = {0};
    size_t at = pjp_begin(&b, PJP_ERROR, re);
    pjp_u32(&b, PJP_ERR_PROTOCOL, re);
    pjp_str(&b, why, strlen(why), re);
    pjp_end(&b, at);
    if (!b.failed) write_all(b.p, b.len);
    free(b.p);
    fprintf(stderr, "factum-js: protocol error: %s\n", why);
    return 2;
}

/* The events of one batch: their frames' payloads copied into one block,
 * decoded in place once all are read. */
typedef struct batch {
    jse_event *ev;
    size_t n;
    uint8_t *bytes;
    size_t len, cap;
} batch;

static void batch_free(batch *b)
{
    free(b->bytes);
    free(b->ev);
    memset(b, 0, sizeof *b);
}

/* An EVENT's payload, or an UPCAST's (the script's index first). */
static int decode_event(const uint8_t *p, size_t len, int upcast, jse_event *ev)
{
    pjp_rd r = {p, len, 0};
    ev->script = upcast ? pjp_get_u32(&r) : 0;
    ev->position = pjp_get_u64(&r);
    ev->seq = pjp_get_u64(&r);
    ev->timestamp_ns = (int64_t)pjp_get_u64(&r);
    ev->flags = pjp_get_u8(&r);
    pjp_get(&r, ev->id, 16);
    ev->stream = pjp_get_str(&r, &ev->stream_len, PJP_NAME_MAX);
    ev->type = pjp_get_str(&r, &ev->type_len, PJP_NAME_MAX);
    ev->data = pjp_get_str(&r, &ev->data_len, PJP_EVENT_MAX);
    ev->meta = pjp_get_str(&r, &ev->meta_len, PJP_EVENT_MAX);
    ev->link_meta = pjp_get_opt(&r, &ev->link_meta_len, PJP_EVENT_MAX);
    if (ev->flags & ~(uint32_t)(PJP_EV_JSON | PJP_EV_DELETED)) return -1;
    return pjp_done(&r);
}

/* Read BATCH's n EVENT frames (UPCAST frames for an upcaster engine). */
static int read_batch(uint32_t n, int upcast, batch *b, char *why, size_t why_len)
{
    uint32_t ft = upcast ? PJP_UPCAST : PJP_EVENT;
    if (n > PJP_BATCH_MAX) {
        snprintf(why, why_len, "a batch of %u events (at most %u)", n, PJP_BATCH_MAX);
        return -1;
    }
    b->ev = calloc(n ? n : 1, sizeof *b->ev);
    size_t *off = calloc(n ? n : 1, 2 * sizeof *off);
    if (!b->ev || !off) {
        free(off);
        snprintf(why, why_len, "out of memory for a batch of %u events", n);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t h[2];
        if (rb_need(PJP_HDR_LEN, 0)) {
            snprintf(why, why_len, "the connection broke in a batch");
            goto fail;
        }
        memcpy(h, rb_take(PJP_HDR_LEN), sizeof h);
        if (h[0] != ft || h[1] > max_len(ft) || b->len + h[1] > PJP_BATCH_BYTES) {
            snprintf(why, why_len, "event %u of a batch: a frame of type %u and %u bytes", i, h[0], h[1]);
            goto fail;
        }
        if (b->len + h[1] > b->cap) {
            size_t cap = b->cap ? b->cap : 64u << 10;
            while (cap < b->len + h[1])
                cap *= 2;
            uint8_t *p = realloc(b->bytes, cap);
            if (!p) {
                snprintf(why, why_len, "out of memory for a batch of %zu bytes", cap);
                goto fail;
            }
            b->bytes = p;
            b->cap = cap;
        }
        if (rb_need(h[1], 0)) {
            snprintf(why, why_len, "the connection broke in a batch");
            goto fail;
        }
        memcpy(b->bytes + b->len, rb_take(h[1]), h[1]);
        off[2 * i] = b->len;
        off[2 * i + 1] = h[1];
        b->len += h[1];
    }
    b->n = n;
    for (uint32_t i = 0; i < n; i++) {
        if (decode_event(b->bytes + off[2 * i], off[2 * i + 1], upcast, &b->ev[i])) {
            snprintf(why, why_len, "event %u of a batch does not decode", i);
            goto fail;
        }
    }
    free(off);
    return 0;
fail:
    free(off);
    return -1;
}

/* OPEN_UP: the limits and the scripts, then the engine. 0 (an UPDEF in
 * out), 1 (an ERROR in out), 2 (a protocol error, reported). */
static int open_up(pjp_rd *r, jse_limits *lim, jse_out *out, jse **e)
{
    lim->ms_per_event = pjp_get_u32(r);
    lim->heap_mib = pjp_get_u32(r);
    lim->state_bytes = PJP_EVENT_MAX;
    lim->keep_partitions = 0;
    lim->fatal_fd = sock;
    uint32_t n = pjp_get_u32(r);
    if (r->bad || !lim->ms_per_event || lim->ms_per_event > 3600000 || lim->heap_mib < 4 ||
        lim->heap_mib > 65536 || n > PJP_UP_SCRIPTS)
        return protocol_error("OPEN_UP does not decode or its limits are out of range");
    const char **names = calloc(n ? n : 1, sizeof *names), **srcs = calloc(n ? n : 1, sizeof *srcs);
    size_t *nl = calloc(n ? n : 1, sizeof *nl), *sl = calloc(n ? n : 1, sizeof *sl);
    int rc = 2;
    if (!names || !srcs || !nl || !sl) {
        protocol_error("out of memory for OPEN_UP");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        names[i] = pjp_get_str(r, &nl[i], PJP_NAME_MAX);
        srcs[i] = pjp_get_str(r, &sl[i], PJP_UP_SCRIPT_MAX);
    }
    if (pjp_done(r)) {
        protocol_error("OPEN_UP does not decode");
        goto out;
    }
    rc = jse_open_up(lim, n, names, nl, srcs, sl, out, e) ? 1 : 0;
out:
    free(names);
    free(srcs);
    free(nl);
    free(sl);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: factum-js [--fd N] | --version\n"
                    "The JavaScript projection worker of factum: the projection manager starts it,\n"
                    "with its end of a socket on fd N (default 3).\n");
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version")) {
            printf("factum-js (%s)\n", jse_version());
            return 0;
        } else if (!strcmp(argv[i], "--fd") && i + 1 < argc) {
            sock = atoi(argv[++i]);
        } else {
            return usage();
        }
    }
    struct stat st;
    if (fstat(sock, &st) || !S_ISSOCK(st.st_mode)) return usage();
    signal(SIGPIPE, SIG_IGN);

    char why[512];
    frame f;
    int rc = read_frame(&f, why, sizeof why);
    if (rc) return rc > 0 ? 0 : protocol_error(why);
    if (f.type != PJP_OPEN && f.type != PJP_OPEN_RM && f.type != PJP_OPEN_UP)
        return protocol_error("the first frame is not OPEN");
    pjp_rd r = {f.p, f.len, 0};
    jse_limits lim = {0};
    lim.readmodel = f.type == PJP_OPEN_RM;
    lim.upcaster = f.type == PJP_OPEN_UP;
    jse_out out = {.flush = flush};
    jse *e = NULL;
    if (lim.upcaster) {
        rc = open_up(&r, &lim, &out, &e);
        if (rc == 2) return 2;
        if (flush(NULL, &out.buf) || rc) goto done;
        goto loop;
    }
    lim.ms_per_event = pjp_get_u32(&r);
    lim.heap_mib = pjp_get_u32(&r);
    lim.state_bytes = lim.readmodel ? PJP_EVENT_MAX : pjp_get_u32(&r);
    lim.keep_partitions = KEEP_PARTITIONS;
    lim.fatal_fd = sock;
    size_t name_len, query_len;
    const char *name = pjp_get_str(&r, &name_len, PJP_NAME_MAX);
    const char *query = pjp_get_str(&r, &query_len, PJP_QUERY_MAX);
    if (pjp_done(&r) || !lim.ms_per_event || lim.ms_per_event > 3600000 || lim.heap_mib < 4 ||
        lim.heap_mib > 65536 || !lim.state_bytes || lim.state_bytes > PJP_STATE_MAX)
        return protocol_error("OPEN does not decode or its limits are out of range");

    rc = jse_open(&lim, name, name_len, query, query_len, &out, &e);
    if (flush(NULL, &out.buf) || rc) goto done;

loop:;
    batch b = {0};
    int waiting = 0; /* stopped for a state (NEED sent): LOAD and RESUME may come */
    size_t at = 0;
    for (;;) {
        rc = read_frame(&f, why, sizeof why);
        if (rc) {
            if (rc < 0)
                rc = protocol_error(why);
            else
                rc = 0;
            break;
        }
        r = (pjp_rd){f.p, f.len, 0};
        int run = 0;
        if ((lim.readmodel || lim.upcaster) && f.type != PJP_BATCH) {
            rc = protocol_error("a read model's or upcasters' worker takes only BATCH frames after its OPEN");
            break;
        }
        switch (f.type) {
        case PJP_LOAD: {
            uint8_t shared = pjp_get_u8(&r);
            size_t klen, slen;
            const char *key = pjp_get_str(&r, &klen, PJP_NAME_MAX);
            const char *state = pjp_get_opt(&r, &slen, PJP_STATE_MAX);
            if (pjp_done(&r) || shared > 1) {
                rc = protocol_error("LOAD does not decode");
                break;
            }
            jse_load(e, shared, key, klen, state, slen);
            break;
        }
        case PJP_BATCH: {
            uint32_t n = pjp_get_u32(&r);
            if (pjp_done(&r) || waiting) {
                rc = protocol_error(waiting ? "BATCH while a batch waits for a state"
                                            : "BATCH does not decode");
                break;
            }
            batch_free(&b);
            if (read_batch(n, lim.upcaster, &b, why, sizeof why)) {
                rc = protocol_error(why);
                break;
            }
            at = 0;
            run = 1;
            break;
        }
        case PJP_RESUME:
            if (!waiting) {
                rc = protocol_error("RESUME without a NEED");
                break;
            }
            run = 1;
            break;
        case PJP_GET: {
            uint8_t shared = pjp_get_u8(&r);
            size_t klen;
            const char *key = pjp_get_str(&r, &klen, PJP_NAME_MAX);
            if (pjp_done(&r) || shared > 1) {
                rc = protocol_error("GET does not decode");
                break;
            }
            rc = jse_get(e, shared, key, klen, &out) < 0 ? 1 : 0;
            if (flush(NULL, &out.buf)) rc = 1;
            break;
        }
        default:
            rc = protocol_error("a frame out of place");
            break;
        }
        if (rc) break;
        if (run) {
            int s = jse_run(e, b.ev, b.n, &at, &out);
            if (flush(NULL, &out.buf) || s < 0) {
                rc = 1;
                break;
            }
            waiting = s == 1;
        }
    }
    batch_free(&b);
done:
    jse_free(e);
    free(out.buf.p);
    free(rb.p);
    return rc == 2 ? 2 : 0;
}
