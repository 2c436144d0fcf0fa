/*
 * stage.h - events staged for a JavaScript worker: copies of what the
 * handlers will see (the event, upcast, or the target of a link), kept in
 * one arena until the batch is handed over, because the store's pointers
 * and the upcast buffer do not outlive the next read. Shared by the live
 * projection (jsrun.c) and the replay of a projection as of a position
 * (asof.c), so that both hand the worker the very same events.
 */
#ifndef FACTUM_PROJ_STAGE_H
#define FACTUM_PROJ_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "factum.h"
#include "jshost/jsproc.h"

/* One staged event: offsets into the arena. */
typedef struct prj_staged {
    uint64_t position; /* in $all: of the record (the link, if through one) */
    uint64_t seq;      /* its number in its stream */
    int64_t timestamp_ns;
    size_t stream_off, type_off, data_off, meta_off, link_meta_off;
    size_t stream_len, type_len, data_len, meta_len, link_meta_len;
    uint8_t id[16];
    uint8_t is_json, has_link, deleted;
} prj_staged;

typedef struct prj_stage {
    base_buf arena;
    prj_staged *ev;
    size_t n, cap;
    prj_js_event *jev; /* the worker's view, made by prj_stage_view */
    size_t cap_jev;
} prj_stage;

/* Stage ev as the handlers see it; rec is the record read from $all (the
 * link when ev is its target; rec == ev otherwise), deleted a $deleted
 * notification (then ev == rec). 0 or -ENOMEM (nothing staged). */
int prj_stage_add(prj_stage *st, const factum_event *rec, const factum_event *ev, int deleted);
/* The staged events as the worker takes them, valid until the next add,
 * clear or free. 0 or -ENOMEM. */
int prj_stage_view(prj_stage *st, const prj_js_event **out);
/* A staged event's metadata (meta_len bytes). */
static inline const char *prj_stage_meta(const prj_stage *st, const prj_staged *e)
{
    return (const char *)st->arena.data + e->meta_off;
}
/* Forget the staged events (memory kept for the next batch). */
void prj_stage_clear(prj_stage *st);
void prj_stage_free(prj_stage *st);

#endif
