/*
 * stage.c - events staged for a JavaScript worker (stage.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proj/stage.h"

static void copy_in(prj_stage *st, size_t *off, size_t *len, const void *p, size_t n)
{
    *off = st->arena.len;
    *len = n;
    if (n) memcpy(st->arena.data + st->arena.len, p, n);
    st->arena.len += n;
}

int prj_stage_add(prj_stage *st, const factum_event *rec, const factum_event *ev, int deleted)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        prj_staged *v = realloc(st->ev, cap * sizeof *v);
        if (!v) return -ENOMEM;
        st->ev = v;
        st->cap = cap;
    }
    int link = rec != ev && !deleted;
    size_t need =
        ev->stream_len + ev->type_len + ev->data_len + ev->metadata_len + (link ? rec->metadata_len : 0);
    if (base_buf_reserve(&st->arena, need)) return -ENOMEM;
    prj_staged *s = &st->ev[st->n];
    memset(s, 0, sizeof *s);
    s->position = rec->position;
    s->timestamp_ns = ev->timestamp_ns;
    s->seq = ev->version;
    memcpy(s->id, ev->id, 16);
    s->is_json = (ev->flags & FACTUM_EVENT_JSON) != 0;
    s->deleted = (uint8_t)deleted;
    copy_in(st, &s->stream_off, &s->stream_len, ev->stream, ev->stream_len);
    copy_in(st, &s->type_off, &s->type_len, ev->type, ev->type_len);
    copy_in(st, &s->data_off, &s->data_len, ev->data, ev->data_len);
    copy_in(st, &s->meta_off, &s->meta_len, ev->metadata, ev->metadata_len);
    if (link) {
        s->has_link = 1;
        copy_in(st, &s->link_meta_off, &s->link_meta_len, rec->metadata, rec->metadata_len);
    }
    st->n++;
    return 0;
}

int prj_stage_view(prj_stage *st, const prj_js_event **out)
{
    if (st->cap_jev < st->n) {
        prj_js_event *v = realloc(st->jev, st->n * sizeof *v);
        if (!v) return -ENOMEM;
        st->jev = v;
        st->cap_jev = st->n;
    }
    const char *a = (const char *)st->arena.data;
    for (size_t i = 0; i < st->n; i++) {
        const prj_staged *s = &st->ev[i];
        st->jev[i] = (prj_js_event){.position = s->position,
                                    .stream = a + s->stream_off,
                                    .stream_len = s->stream_len,
                                    .seq = s->seq,
                                    .type = a + s->type_off,
                                    .type_len = s->type_len,
                                    .id = s->id,
                                    .timestamp_ns = s->timestamp_ns,
                                    .data = (const uint8_t *)a + s->data_off,
                                    .data_len = s->data_len,
                                    .is_json = s->is_json,
                                    .meta = (const uint8_t *)a + s->meta_off,
                                    .meta_len = s->meta_len,
                                    .link_meta = s->has_link ? (const uint8_t *)a + s->link_meta_off : NULL,
                                    .link_meta_len = s->link_meta_len,
                                    .deleted = s->deleted};
    }
    *out = st->jev;
    return 0;
}

void prj_stage_clear(prj_stage *st)
{
    st->n = 0;
    st->arena.len = 0;
}

void prj_stage_free(prj_stage *st)
{
    base_buf_free(&st->arena);
    free(st->ev);
    free(st->jev);
    memset(st, 0, sizeof *st);
}
