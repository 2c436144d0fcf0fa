/*
 * engine.h - the JavaScript engine of factum-js: one projection in V8
 * (engine.cc, C++), behind a C API that main.c drives. The engine speaks
 * in frames of the worker protocol (src/jshost/jsproto.h): each call
 * appends its answer (DEF, OUT, NEED, PART, DONE, STATE, or ERROR) to the
 * caller's buffer, and LOG frames are flushed as soon as the script logs.
 *
 * One engine per process, used by one thread (main's); the engine's own
 * watchdog thread is the only other thread that touches it (to terminate
 * a handler that runs too long). After an error the engine is dead: the
 * caller sends the ERROR frame and exits.
 */
#ifndef FACTUM_JS_ENGINE_H
#define FACTUM_JS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "jshost/jsproto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct jse jse;

typedef struct jse_limits {
    uint32_t ms_per_event;    /* a handler's time for one event */
    uint32_t heap_mib;        /* the script's heap */
    uint32_t state_bytes;     /* one state's (or result's) JSON */
    uint32_t keep_partitions; /* partition states kept between batches, at least */
    int fatal_fd;             /* where a fatal error of V8 (out of memory) is reported before exiting */
    int readmodel;            /* a read model's handlers (OPEN_RM, rmapi.js), not a projection */
    int upcaster;             /* the store's script upcasters (OPEN_UP, upapi.js) */
} jse_limits;

/* Where an engine's frames go. */
typedef struct jse_out {
    pjp_buf buf;
    /* Write buf out and empty it: 0, or -1 (the host is gone). */
    int (*flush)(void *ctx, pjp_buf *b);
    void *ctx;
} jse_out;

/* One event, borrowed for the call. */
typedef struct jse_event {
    uint64_t position, seq;
    int64_t timestamp_ns;
    uint32_t flags; /* PJP_EV_* */
    uint8_t id[16];
    const char *stream, *type, *data, *meta, *link_meta; /* link_meta NULL: none */
    size_t stream_len, type_len, data_len, meta_len, link_meta_len;
    uint32_t script; /* an upcaster engine's script for it (UPCAST) */
} jse_event;

/* The engine's name and version ("V8 10.2.154.26-node.37"). */
const char *jse_version(void);

/* Start an engine and run the projection's source in it: 0 with *e and a
 * DEF frame in o; a negative PJP_ERR_* with an ERROR frame in o (and *e
 * NULL). name and src are borrowed. */
int jse_open(const jse_limits *l, const char *name, size_t name_len, const char *src, size_t src_len,
             jse_out *o, jse **e);

/* Start an upcaster engine (l->upcaster set): compile the n scripts (each
 * the text of a function expression) under their names. 0 with *e and an
 * UPDEF frame in o (a script that does not compile is reported there, not
 * an error of the call); a negative PJP_ERR_* with an ERROR frame in o. */
int jse_open_up(const jse_limits *l, uint32_t n, const char *const *names, const size_t *name_lens,
                const char *const *srcs, const size_t *src_lens, jse_out *o, jse **e);

/* Give the engine a partition's state (state NULL: none yet). An error
 * (the JSON does not parse) is reported by the next jse_run or jse_get. */
void jse_load(jse *e, int shared, const char *key, size_t key_len, const char *state, size_t state_len);

/* Handle ev[*at..n): 0 when all are done (OUT, PART, SHARED, DONE frames
 * in o); 1 when it stopped at *at for want of a state (NEED in o:
 * jse_load it, then call again); a negative PJP_ERR_* (ERROR).
 * A read model's engine: SQL and FAIL frames, then DONE; 0, or a negative
 * PJP_ERR_* after a DONE of fewer events (out of heap: the engine is
 * dead) or an ERROR.
 * An upcaster engine: an UPOUT or a FAIL per event, then DONE; as a read
 * model's otherwise. */
int jse_run(jse *e, const jse_event *ev, size_t n, size_t *at, jse_out *o);

/* The state of a partition: 0 with a STATE frame, or a negative PJP_ERR_*. */
int jse_get(jse *e, int shared, const char *key, size_t key_len, jse_out *o);

void jse_free(jse *e);

#ifdef __cplusplus
}
#endif
#endif
