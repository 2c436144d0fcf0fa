/*
 * read.c - reads over Streams.Read: one stream (from a revision or the end,
 * either direction, a count) or $all (from a position or either end, with
 * a server-side stream or event-type filter), and the batch that holds the
 * events read. ReadResp messages are unpacked one by one as they arrive
 * (into the client's arena, no malloc per field) and their event copied
 * into the batch's chunks (CL-4): the batch owns every byte it points to,
 * and consecutive events of the same stream or type share one copy of the
 * name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "kurrentdb/persistent.pb-c.h"
#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"

typedef EventStore__Client__Streams__ReadReq ReadReq;
typedef EventStore__Client__Streams__ReadReq__Options ReadOpts;
typedef EventStore__Client__Streams__ReadResp ReadResp;
typedef EventStore__Client__Streams__ReadResp__ReadEvent__RecordedEvent RecordedEvent;

/* ---- the batch: events in pages, bytes in chunks, both from a pool ------- */

#define CHUNK       (1u << 20)
#define EV_PER_PAGE (CHUNK / sizeof(factum_event))
#define POOL_MAX    64 /* chunks a client keeps for its next reads (64 MiB) */

typedef struct bchunk {
    struct bchunk *next;
    size_t cap, used;
    max_align_t data[];
} bchunk;

/* Freed chunks, kept for the next batches of the same client: reading in
 * pages then costs no fresh memory (page faults were a third of a read's
 * time). Shared by the client and its batches, which may outlive it and be
 * freed on any thread: reference-counted, with its own lock. */
struct client_pool {
    pthread_mutex_t mu;
    int refs;
    bchunk *free;
    size_t n_free;
};

int client_pool_new(client_pool **out)
{
    client_pool *p = calloc(1, sizeof *p);
    if (!p || pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return -ENOMEM;
    }
    p->refs = 1;
    *out = p;
    return 0;
}

void client_pool_unref(client_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last) return;
    while (p->free) {
        bchunk *k = p->free;
        p->free = k->next;
        free(k);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static bchunk *chunk_get(client_pool *p, size_t n)
{
    bchunk *k = NULL;
    if (n <= CHUNK) {
        pthread_mutex_lock(&p->mu);
        if ((k = p->free)) {
            p->free = k->next;
            p->n_free--;
        }
        pthread_mutex_unlock(&p->mu);
        n = CHUNK;
    }
    if (!k) {
        if (n > SIZE_MAX - sizeof *k || !(k = malloc(sizeof *k + n))) return NULL;
        k->cap = n;
    }
    k->used = 0;
    k->next = NULL;
    return k;
}

static void chunk_put(client_pool *p, bchunk *k)
{
    if (k->cap == CHUNK) {
        pthread_mutex_lock(&p->mu);
        if (p->n_free < POOL_MAX) {
            k->next = p->free;
            p->free = k;
            p->n_free++;
            k = NULL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    free(k);
}

struct factum_client_batch {
    client_pool *pool;
    factum_event **pages; /* EV_PER_PAGE events each, in chunks of their own */
    size_t n_pages, pages_cap;
    size_t n;
    bchunk *chunks; /* every chunk (bytes and pages), the current bytes chunk first */
    const factum_event *last;
};

size_t factum_client_batch_count(const factum_client_batch *b)
{
    return b ? b->n : 0;
}

const factum_event *factum_client_batch_event(const factum_client_batch *b, size_t i)
{
    return b && i < b->n ? &b->pages[i / EV_PER_PAGE][i % EV_PER_PAGE] : NULL;
}

void factum_client_batch_free(factum_client_batch *b)
{
    if (!b) return;
    while (b->chunks) {
        bchunk *k = b->chunks;
        b->chunks = k->next;
        chunk_put(b->pool, k);
    }
    free(b->pages);
    client_pool_unref(b->pool);
    free(b);
}

static factum_client_batch *batch_new(client_pool *pool)
{
    factum_client_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_lock(&pool->mu);
    pool->refs++;
    pthread_mutex_unlock(&pool->mu);
    b->pool = pool;
    return b;
}

/* n bytes that live as long as the batch. */
static uint8_t *batch_alloc(factum_client_batch *b, size_t n)
{
    bchunk *k = b->chunks;
    if (k && k->cap - k->used >= n) {
        uint8_t *p = (uint8_t *)k->data + k->used;
        k->used += n;
        return p;
    }
    if (!(k = chunk_get(b->pool, n))) return NULL;
    k->used = n;
    if (n > CHUNK / 2 && b->chunks) {
        /* A large event: behind the current chunk, whose rest stays in use. */
        k->next = b->chunks->next;
        b->chunks->next = k;
    } else {
        k->next = b->chunks;
        b->chunks = k;
    }
    return (uint8_t *)k->data;
}

/* Room for one more event. */
static factum_event *batch_next(factum_client_batch *b)
{
    if (b->n == b->n_pages * EV_PER_PAGE) {
        if (b->n_pages == b->pages_cap) {
            size_t cap = b->pages_cap ? b->pages_cap * 2 : 16;
            factum_event **pg = realloc(b->pages, cap * sizeof *pg);
            if (!pg) return NULL;
            b->pages = pg;
            b->pages_cap = cap;
        }
        bchunk *k = chunk_get(b->pool, CHUNK);
        if (!k) return NULL;
        k->used = k->cap; /* all of it is the page */
        /* Behind the current bytes chunk, so that its rest stays in use. */
        if (b->chunks) {
            k->next = b->chunks->next;
            b->chunks->next = k;
        } else {
            b->chunks = k;
        }
        b->pages[b->n_pages++] = (factum_event *)(void *)k->data;
    }
    return &b->pages[b->n / EV_PER_PAGE][b->n % EV_PER_PAGE];
}

/* ---- decoding events ------------------------------------------------------ */

static int parse_ticks(const char *s, int64_t *ns)
{
    int neg = *s == '-';
    if (neg) s++;
    if (!*s) return -1;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    if (v > INT64_MAX / 100) return -1;
    *ns = (neg ? -v : v) * 100;
    return 0;
}

static const int8_t hex_digit[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
}; /* value + 1; 0: not a hex digit */

/* The canonical 8-4-4-4-12 form every server sends, without the general
 * parser's work (it was an eighth of a read's time). */
static int uuid_canonical(const char *s, uint8_t out[16])
{
    static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return -1;
    for (int i = 0; i < 16; i++) {
        int hi = hex_digit[(unsigned char)s[at[i]]], lo = hex_digit[(unsigned char)s[at[i] + 1]];
        if (!hi || !lo) return -1;
        out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return 0;
}

static int uuid_of(const EventStore__Client__UUID *u, uint8_t out[16])
{
    if (!u) return -1;
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING) {
        if (!u->string) return -1;
        size_t len = strlen(u->string);
        if (len == 36 && uuid_canonical(u->string, out) == 0) return 0;
        return factum_uuid_parse(u->string, len, out) ? -1 : 0;
    }
    if (u->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED && u->structured) {
        uint64_t m = (uint64_t)u->structured->most_significant_bits;
        uint64_t l = (uint64_t)u->structured->least_significant_bits;
        for (int i = 0; i < 8; i++) {
            out[i] = (uint8_t)(m >> (56 - 8 * i));
            out[8 + i] = (uint8_t)(l >> (56 - 8 * i));
        }
        return 0;
    }
    return -1;
}

/* Decode a recorded event into *ev, pointing into the unpacked message
 * (stream not NUL-terminated; type is). 0 or FACTUM_EPROTOCOL (CL-2). */
static int decode_recorded(factum_client *c, const RecordedEvent *re, factum_event *ev)
{
    if (!re || !re->stream_identifier) {
        client_seterr(c, "the server sent an event without a stream");
        return FACTUM_EPROTOCOL;
    }
    const char *type = NULL, *created = NULL, *ctype = NULL;
    for (size_t i = 0; i < re->n_metadata; i++) {
        const char *k = re->metadata[i]->key, *v = re->metadata[i]->value;
        if (!k || !v) continue;
        if (!strcmp(k, "type"))
            type = v;
        else if (!strcmp(k, "created"))
            created = v;
        else if (!strcmp(k, "content-type"))
            ctype = v;
    }
    if (!type) {
        client_seterr(c, "the server sent an event without a type");
        return FACTUM_EPROTOCOL;
    }
    memset(ev, 0, sizeof *ev);
    if (uuid_of(re->id, ev->id)) {
        client_seterr(c, "the server sent an event with a malformed id");
        return FACTUM_EPROTOCOL;
    }
    if (created && parse_ticks(created, &ev->timestamp_ns)) {
        client_seterr(c, "the server sent an event with a malformed 'created' time");
        return FACTUM_EPROTOCOL;
    }
    if (ctype && !strcmp(ctype, "application/json"))
        ev->flags = FACTUM_EVENT_JSON | (re->custom_metadata.len ? FACTUM_EVENT_META_JSON : 0);
    ev->stream = (const char *)re->stream_identifier->stream_name.data;
    ev->stream_len = re->stream_identifier->stream_name.len;
    ev->type = type;
    ev->type_len = strlen(type);
    ev->version = re->stream_revision;
    ev->position = re->commit_position;
    ev->data = re->data.data;
    ev->data_len = re->data.len;
    ev->metadata = re->custom_metadata.data;
    ev->metadata_len = re->custom_metadata.len;
    return 0;
}

/* Copy one recorded event into the batch. 0, FACTUM_EPROTOCOL or -ENOMEM. */
static int batch_add(factum_client *c, factum_client_batch *b, const RecordedEvent *re)
{
    factum_event in;
    int rc = decode_recorded(c, re, &in);
    if (rc) return rc;
    factum_event *ev = batch_next(b);
    if (!ev) return -ENOMEM;
    *ev = in;
    const factum_event *prev = b->last;
    int same_stream = prev && prev->stream_len == in.stream_len && !memcmp(prev->stream, in.stream, in.stream_len);
    int same_type = prev && prev->type_len == in.type_len && !memcmp(prev->type, in.type, in.type_len);
    size_t need = (same_stream ? 0 : in.stream_len + 1) + (same_type ? 0 : in.type_len + 1) + in.data_len +
                  in.metadata_len;
    uint8_t *p = batch_alloc(b, need ? need : 1);
    if (!p) return -ENOMEM;
    if (same_stream) {
        ev->stream = prev->stream;
    } else {
        if (in.stream_len) memcpy(p, in.stream, in.stream_len);
        p[in.stream_len] = 0;
        ev->stream = (const char *)p;
        p += in.stream_len + 1;
    }
    if (same_type) {
        ev->type = prev->type;
    } else {
        memcpy(p, in.type, in.type_len + 1);
        ev->type = (const char *)p;
        p += in.type_len + 1;
    }
    ev->data = p;
    if (in.data_len) memcpy(p, in.data, in.data_len);
    p += in.data_len;
    ev->metadata = p;
    if (in.metadata_len) memcpy(p, in.metadata, in.metadata_len);
    b->n++;
    b->last = ev;
    return 0;
}

typedef struct read_ctx {
    factum_client *c;
    factum_client_batch *b;
    uint64_t max;
    int not_found;
} read_ctx;

static int on_read(void *arg, const uint8_t *msg, size_t len)
{
    read_ctx *r = arg;
    factum_client *c = r->c;
    client_arena_reset(client_tl_arena());
    ReadResp *resp = (ReadResp *)protobuf_c_message_unpack(
        &event_store__client__streams__read_resp__descriptor, &client_tl_arena()->pa, len, msg);
    if (!resp) {
        client_seterr(c, "the server sent a ReadResp that does not decode");
        return FACTUM_EPROTOCOL;
    }
    switch (resp->content_case) {
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT:
        if (!resp->event || !resp->event->event) {
            client_seterr(c, "the server sent a ReadResp event without a recorded event");
            return FACTUM_EPROTOCOL;
        }
        if (r->b->n >= r->max) {
            client_seterr(c, "the server sent more events than were asked for");
            return FACTUM_EPROTOCOL;
        }
        return batch_add(c, r->b, resp->event->event);
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_STREAM_NOT_FOUND:
        r->not_found = 1;
        return 0;
    default:
        return 0; /* positions, checkpoints, caught-up markers: nothing a read needs */
    }
}

static int run_read(factum_client *c, ReadOpts *o, uint64_t max, const char *stream,
                    factum_client_batch **out)
{
    factum_client_batch *b = batch_new(c->pool);
    if (!b) return -ENOMEM;
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__Streams__ReadReq__Options__UUIDOption uo =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__INIT;
    uo.content_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    uo.string = &empty;
    o->uuid_option = &uo;
    o->count_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_COUNT;
    o->count = max;
    ReadReq req = EVENT_STORE__CLIENT__STREAMS__READ_REQ__INIT;
    req.options = o;
    read_ctx r = {c, b, max, 0};
    client_call k;
    client_call_init(&k, "/event_store.client.streams.Streams/Read", on_read, &r);
    int rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    if (!rc && r.not_found) {
        client_seterr(c, "stream '%.200s' not found", stream ? stream : "");
        rc = FACTUM_ENOTFOUND;
    }
    if (rc == FACTUM_EDELETED)
        client_seterr(c, "stream '%.200s' is deleted (tombstoned)", stream ? stream : "");
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    if (rc) {
        factum_client_batch_free(b);
        *out = NULL;
        return rc;
    }
    *out = b;
    return 0;
}

int client_read_stream_locked(factum_client *c, const char *stream, uint64_t from, int direction,
                              uint64_t max, factum_client_batch **out)
{
    if (!out) return FACTUM_EINVAL;
    *out = NULL;
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) {
        client_seterr(c, "invalid direction");
        return FACTUM_EINVAL;
    }
    if (!stream || factum_check_stream_name(stream, strlen(stream))) {
        client_seterr(c, "invalid stream name");
        return FACTUM_EBADNAME;
    }
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
    sid.stream_name.len = strlen(stream);
    EventStore__Client__Streams__ReadReq__Options__StreamOptions so =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__INIT;
    so.stream_identifier = &sid;
    if (from == FACTUM_END) {
        so.revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END;
        so.end = &empty;
    } else {
        so.revision_option_case =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION;
        so.revision = from;
    }
    ReadOpts o = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__INIT;
    o.stream_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM;
    o.stream = &so;
    o.read_direction = direction == FACTUM_BACKWARD
                           ? EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards
                           : EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Forwards;
    o.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_NO_FILTER;
    o.no_filter = &empty;
    return run_read(c, &o, max, stream, out);
}

int factum_client_read_stream(factum_client *c, const char *stream, uint64_t from, int direction,
                              uint64_t max, factum_client_batch **out)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int rc = client_read_stream_locked(c, stream, from, direction, max, out);
    return rc;
}

static int check_filter(factum_client *c, const factum_client_filter *f)
{
    if (f->on != FACTUM_FILTER_STREAM && f->on != FACTUM_FILTER_EVENT_TYPE) {
        client_seterr(c, "a filter is on FACTUM_FILTER_STREAM or FACTUM_FILTER_EVENT_TYPE");
        return FACTUM_EINVAL;
    }
    if ((f->n_prefixes > 0) == (f->regex != NULL)) {
        client_seterr(c, "a filter has either prefixes or a regular expression");
        return FACTUM_EINVAL;
    }
    if (f->n_prefixes) {
        if (!f->prefixes) return FACTUM_EINVAL;
        for (size_t i = 0; i < f->n_prefixes; i++)
            if (!f->prefixes[i]) {
                client_seterr(c, "a filter prefix is NULL");
                return FACTUM_EINVAL;
            }
        return 0;
    }
    /* The server compiles the same PCRE2 syntax (src/common/filter.c): refuse what it
     * would refuse before asking it. */
    factum_filter *tmp;
    int rc = factum_filter_new(f->on, NULL, 0, f->regex, 0, &tmp);
    if (rc) {
        client_seterr(c, "invalid regular expression '%.200s'", f->regex);
        return rc;
    }
    factum_filter_free(tmp);
    return 0;
}

/* A $all filter into its request messages (borrowing the strings); window
 * 0: "count" (the server's default window), else "max" = window. */
static void fill_filter(const factum_client_filter *f, EventStore__Client__Streams__ReadReq__Options__FilterOptions__Expression *ex,
                        EventStore__Client__Streams__ReadReq__Options__FilterOptions *fo, uint32_t window)
{
    static EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    if (f->regex) ex->regex = (char *)(uintptr_t)f->regex;
    ex->n_prefix = f->n_prefixes;
    ex->prefix = (char **)(uintptr_t)f->prefixes;
    if (f->on == FACTUM_FILTER_STREAM) {
        fo->filter_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER;
        fo->stream_identifier = ex;
    } else {
        fo->filter_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__FILTER_EVENT_TYPE;
        fo->event_type = ex;
    }
    if (window) {
        fo->window_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__WINDOW_MAX;
        fo->max = window;
    } else {
        fo->window_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__WINDOW_COUNT;
        fo->count = &empty;
    }
    fo->checkpointintervalmultiplier = 1;
}

int factum_client_read_all(factum_client *c, uint64_t from, int direction, const factum_client_filter *filter,
                           uint64_t max, factum_client_batch **out)
{
    if (!c || !out) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    *out = NULL;
    int rc = 0;
    if (direction != FACTUM_FORWARD && direction != FACTUM_BACKWARD) {
        client_seterr(c, "invalid direction");
        rc = FACTUM_EINVAL;
    }
    if (!rc && filter) rc = check_filter(c, filter);
    if (!rc) {
        EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
        EventStore__Client__Streams__ReadReq__Options__Position pos =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__POSITION__INIT;
        EventStore__Client__Streams__ReadReq__Options__AllOptions ao =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__INIT;
        if (from == 0) {
            ao.all_option_case =
                EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_START;
            ao.start = &empty;
        } else if (from == FACTUM_END) {
            ao.all_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END;
            ao.end = &empty;
        } else {
            ao.all_option_case =
                EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION;
            pos.commit_position = pos.prepare_position = from;
            ao.position = &pos;
        }
        ReadOpts o = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__INIT;
        o.stream_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL;
        o.all = &ao;
        o.read_direction = direction == FACTUM_BACKWARD
                               ? EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Backwards
                               : EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Forwards;
        EventStore__Client__Streams__ReadReq__Options__FilterOptions fo =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__INIT;
        EventStore__Client__Streams__ReadReq__Options__FilterOptions__Expression ex =
            EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__EXPRESSION__INIT;
        if (filter) {
            fill_filter(filter, &ex, &fo, 0);
            o.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER;
            o.filter = &fo;
        } else {
            o.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_NO_FILTER;
            o.no_filter = &empty;
        }
        rc = run_read(c, &o, max, NULL, out);
    }
    return rc;
}

/* ---- catch-up subscriptions ------------------------------------------------ */

void factum_client_sub_options_init(factum_client_sub_options *o)
{
    memset(o, 0, sizeof *o);
    o->from = FACTUM_SUB_START;
}

typedef struct sub_ctx {
    factum_client *c;
    factum_client_sub_fn fn;
    void *ctx;
    int is_all;
    int stopped; /* the callback asked to stop */
    char name[2][FACTUM_MAX_STREAM_LEN + 1];
} sub_ctx;

/* A recorded event as a factum_event pointing into the unpacked message
 * (the stream name copied into name, NUL-terminated). */
static int sub_event(factum_client *c, const RecordedEvent *re, factum_event *ev, char *name)
{
    int rc = decode_recorded(c, re, ev);
    if (rc) return rc;
    if (ev->stream_len > FACTUM_MAX_STREAM_LEN) {
        client_seterr(c, "the server sent an event with a stream name over %d bytes", FACTUM_MAX_STREAM_LEN);
        return FACTUM_EPROTOCOL;
    }
    if (ev->stream_len) memcpy(name, ev->stream, ev->stream_len);
    name[ev->stream_len] = 0;
    ev->stream = name;
    return 0;
}

static int sub_call_fn(sub_ctx *s, const factum_sub_item *it)
{
    /* The item points into the thread's arena: calls the callback makes
     * (on any client) get one of their own. */
    client_arena tmp, *saved = client_arena_enter(&tmp);
    int rc = s->fn(s->ctx, it);
    client_arena_leave(saved);
    client_arena_deinit(&tmp);
    if (rc > 0) {
        s->stopped = 1;
        return CLIENT_ENOUGH;
    }
    if (rc < 0) client_seterr(s->c, "the subscription's callback stopped it: %s", factum_strerror(rc));
    return rc;
}

static int on_sub_msg(void *arg, const uint8_t *msg, size_t len)
{
    sub_ctx *s = arg;
    factum_client *c = s->c;
    client_arena_reset(client_tl_arena());
    ReadResp *resp = (ReadResp *)protobuf_c_message_unpack(&event_store__client__streams__read_resp__descriptor,
                                                           &client_tl_arena()->pa, len, msg);
    if (!resp) {
        client_seterr(c, "the server sent a ReadResp that does not decode");
        return FACTUM_EPROTOCOL;
    }
    factum_sub_item it;
    memset(&it, 0, sizeof it);
    int rc;
    switch (resp->content_case) {
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT: {
        const EventStore__Client__Streams__ReadResp__ReadEvent *re = resp->event;
        if (!re || (!re->event && !re->link)) {
            client_seterr(c, "the server sent a ReadResp event without a recorded event");
            return FACTUM_EPROTOCOL;
        }
        it.kind = FACTUM_SUB_EVENT;
        if (re->event && (rc = sub_event(c, re->event, &it.event, s->name[0]))) return rc;
        if (re->link) {
            if ((rc = sub_event(c, re->link, re->event ? &it.link : &it.event, s->name[1]))) return rc;
            if (re->event) it.has_link = 1;
            else it.unresolved = 1;
        }
        const factum_event *orig = it.has_link ? &it.link : &it.event;
        it.position = s->is_all ? orig->position : orig->version;
        return sub_call_fn(s, &it);
    }
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP:
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_FELL_BEHIND: {
        int up = resp->content_case == EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CAUGHT_UP;
        it.kind = up ? FACTUM_SUB_CAUGHT_UP : FACTUM_SUB_FELL_BEHIND;
        it.position = s->is_all ? 0 : FACTUM_END;
        if (up && resp->caught_up) {
            if (resp->caught_up->position) it.position = resp->caught_up->position->commit_position;
            else if (resp->caught_up->stream_revision_option_case) it.position = (uint64_t)resp->caught_up->stream_revision;
        } else if (!up && resp->fell_behind) {
            if (resp->fell_behind->position) it.position = resp->fell_behind->position->commit_position;
            else if (resp->fell_behind->stream_revision_option_case)
                it.position = (uint64_t)resp->fell_behind->stream_revision;
        }
        return sub_call_fn(s, &it);
    }
    case EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_CHECKPOINT:
        it.kind = FACTUM_SUB_CHECKPOINT;
        it.position = resp->checkpoint ? resp->checkpoint->commit_position : 0;
        return sub_call_fn(s, &it);
    default:
        return 0; /* the confirmation, old position messages */
    }
}

static int on_sub_idle(void *arg)
{
    sub_ctx *s = arg;
    factum_sub_item it;
    memset(&it, 0, sizeof it);
    it.kind = FACTUM_SUB_IDLE;
    return sub_call_fn(s, &it);
}

typedef struct sub_op {
    client_call k; /* first: on_done gets it */
    sub_ctx s;
    factum_client_sub_end_fn end;
    void *end_ctx;
    char stream[FACTUM_MAX_STREAM_LEN + 1];
} sub_op;

/* The outcome of a finished subscription call. */
static int sub_end(factum_client *c, sub_ctx *s, const char *stream, int rc)
{
    if (!rc && !s->stopped) {
        client_seterr(c, "the server ended the subscription");
        rc = FACTUM_ESERVER;
    }
    if (rc == FACTUM_EDELETED) client_seterr(c, "stream '%.200s' is deleted (tombstoned)", stream);
    return rc;
}

static void sub_done(client_call *k, int rc)
{
    sub_op *op = (sub_op *)k;
    rc = sub_end(op->s.c, &op->s, op->stream, rc);
    if (!rc) client_errbuf()[0] = 0;
    if (op->end) op->end(op->end_ctx, rc, rc ? client_errbuf() : "");
    client_call_deinit(k);
    free(op);
}

/* factum_client_subscribe (op NULL) and factum_client_subscribe_submit. */
static int subscribe(factum_client *c, const factum_client_sub_options *o, factum_client_sub_fn fn, void *ctx,
                     sub_op *op)
{
    if (!c || !fn) return FACTUM_EINVAL;
    factum_client_sub_options def;
    if (!o) {
        factum_client_sub_options_init(&def);
        o = &def;
    }
    client_errbuf()[0] = 0;
    int rc = 0;
    int is_all = !o->stream || !strcmp(o->stream, "$all");
    if (o->from != FACTUM_SUB_START && o->from != FACTUM_SUB_END && o->from != FACTUM_SUB_AFTER) {
        client_seterr(c, "invalid starting point");
        rc = FACTUM_EINVAL;
    } else if (!is_all && factum_check_stream_name(o->stream, strlen(o->stream))) {
        client_seterr(c, "invalid stream name");
        rc = FACTUM_EBADNAME;
    } else if (!is_all && o->filter) {
        client_seterr(c, "filters are for subscriptions to $all");
        rc = FACTUM_EINVAL;
    } else if (o->filter) {
        rc = check_filter(c, o->filter);
    }
    if (rc) {
        return rc;
    }
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    EventStore__Client__Streams__ReadReq__Options__StreamOptions so =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__INIT;
    EventStore__Client__Streams__ReadReq__Options__Position pos =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__POSITION__INIT;
    EventStore__Client__Streams__ReadReq__Options__AllOptions ao =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__INIT;
    EventStore__Client__Streams__ReadReq__Options__FilterOptions fo =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__INIT;
    EventStore__Client__Streams__ReadReq__Options__FilterOptions__Expression ex =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTIONS__EXPRESSION__INIT;
    EventStore__Client__Streams__ReadReq__Options__SubscriptionOptions subo =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__SUBSCRIPTION_OPTIONS__INIT;
    EventStore__Client__Streams__ReadReq__Options__UUIDOption uo =
        EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__INIT;
    ReadOpts ro = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__INIT;
    if (is_all) {
        if (o->from == FACTUM_SUB_START) {
            ao.all_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_START;
            ao.start = &empty;
        } else if (o->from == FACTUM_SUB_END) {
            ao.all_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_END;
            ao.end = &empty;
        } else {
            ao.all_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__ALL_OPTIONS__ALL_OPTION_POSITION;
            pos.commit_position = pos.prepare_position = o->after;
            ao.position = &pos;
        }
        ro.stream_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_ALL;
        ro.all = &ao;
    } else {
        sid.stream_name.data = (uint8_t *)(uintptr_t)o->stream;
        sid.stream_name.len = strlen(o->stream);
        so.stream_identifier = &sid;
        if (o->from == FACTUM_SUB_START) {
            so.revision_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_START;
            so.start = &empty;
        } else if (o->from == FACTUM_SUB_END) {
            so.revision_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_END;
            so.end = &empty;
        } else {
            so.revision_option_case =
                EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTIONS__REVISION_OPTION_REVISION;
            so.revision = o->after;
        }
        ro.stream_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM;
        ro.stream = &so;
    }
    ro.read_direction = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__READ_DIRECTION__Forwards;
    ro.resolve_links = o->resolve_links != 0;
    ro.count_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__COUNT_OPTION_SUBSCRIPTION;
    ro.subscription = &subo;
    uo.content_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    uo.string = &empty;
    ro.uuid_option = &uo;
    if (o->filter) {
        /* checkpoints every window x multiplier events: the window is the interval */
        fill_filter(o->filter, &ex, &fo, o->checkpoint_interval ? o->checkpoint_interval : 32);
        ro.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_FILTER;
        ro.filter = &fo;
    } else {
        ro.filter_option_case = EVENT_STORE__CLIENT__STREAMS__READ_REQ__OPTIONS__FILTER_OPTION_NO_FILTER;
        ro.no_filter = &empty;
    }
    ReadReq req = EVENT_STORE__CLIENT__STREAMS__READ_REQ__INIT;
    req.options = &ro;
    sub_ctx local, *sp = op ? &op->s : &local;
    memset(sp, 0, sizeof *sp);
    sp->c = c;
    sp->fn = fn;
    sp->ctx = ctx;
    sp->is_all = is_all;
    client_call lk, *k = op ? &op->k : &lk;
    client_call_init(k, "/event_store.client.streams.Streams/Read", on_sub_msg, sp);
    k->no_deadline = 1;
    if (o->idle_ms > 0) {
        k->idle_ms = (uint32_t)o->idle_ms;
        k->on_idle = on_sub_idle;
    }
    rc = client_call_add(k, &req.base);
    if (op) {
        snprintf(op->stream, sizeof op->stream, "%s", is_all ? "$all" : o->stream);
        k->on_done = sub_done;
        if (!rc) rc = client_call_submit(c, k);
        if (rc) client_call_deinit(k); /* the caller frees op */
        return rc;
    }
    if (!rc) rc = client_call_run(c, k);
    rc = sub_end(c, sp, is_all ? "$all" : o->stream, rc);
    client_call_deinit(k);
    client_arena_trim(client_tl_arena());
    return rc;
}

int factum_client_subscribe(factum_client *c, const factum_client_sub_options *o, factum_client_sub_fn fn, void *ctx)
{
    return subscribe(c, o, fn, ctx, NULL);
}

int factum_client_subscribe_submit(factum_client *c, const factum_client_sub_options *o, factum_client_sub_fn fn,
                                   void *ctx, factum_client_sub_end_fn end, void *end_ctx)
{
    if (!c || !fn) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    if (o && o->idle_ms > 0) {
        client_seterr(c, "idle_ms is for factum_client_subscribe (a submitted subscription's poller has its own timeout)");
        return FACTUM_EINVAL;
    }
    sub_op *op = calloc(1, sizeof *op);
    if (!op) {
        client_seterr(c, "out of memory");
        return -ENOMEM;
    }
    op->end = end;
    op->end_ctx = end_ctx;
    int rc = subscribe(c, o, fn, ctx, op);
    if (rc) free(op);
    return rc;
}

/* ---- persistent subscriptions ------------------------------------------------ */

typedef EventStore__Client__PersistentSubscriptions__CreateReq PsCreateReq;

void factum_client_ps_settings_init(factum_client_ps_settings *s)
{
    memset(s, 0, sizeof *s);
    s->start = FACTUM_SUB_END;
    s->message_timeout_ms = 30000;
    s->max_retry_count = 10;
    s->checkpoint_after_ms = 2000;
    s->min_checkpoint_count = 10;
    s->max_checkpoint_count = 1000;
    s->live_buffer_size = 500;
    s->read_batch_size = 20;
    s->history_buffer_size = 500;
    s->strategy = "RoundRobin";
}

static int ps_check_target(factum_client *c, const char *stream, const char *group, int *is_all)
{
    *is_all = !stream || !strcmp(stream, "$all");
    if (!group || !group[0]) {
        client_seterr(c, "a group name is required");
        return FACTUM_EINVAL;
    }
    if (!*is_all && factum_check_stream_name(stream, strlen(stream))) {
        client_seterr(c, "invalid stream name");
        return FACTUM_EBADNAME;
    }
    return 0;
}

/* Create or update: UpdateReq has CreateReq's layout minus the filter and
 * the strategy string, so one message shape serves both (the method path
 * differs); the stream form is the current one (Options.stream). */
static int ps_create_or_update(factum_client *c, const char *stream, const char *group,
                               const factum_client_ps_settings *in, int update)
{
    if (!c) return FACTUM_EINVAL;
    factum_client_ps_settings def;
    if (!in) {
        factum_client_ps_settings_init(&def);
        in = &def;
    }
    client_errbuf()[0] = 0;
    int is_all, rc = ps_check_target(c, stream, group, &is_all);
    static const char *const strategies[] = {"DispatchToSingle", "RoundRobin", "Pinned"};
    int named = -1;
    for (int i = 0; in->strategy && i < 3; i++)
        if (!strcmp(in->strategy, strategies[i])) named = i;
    if (!rc && in->strategy && named < 0 && strcmp(in->strategy, "PinnedByCorrelation")) {
        client_seterr(c, "unknown consumer strategy '%.64s'", in->strategy);
        rc = FACTUM_EINVAL;
    }
    if (!rc && update && in->strategy && named < 0) {
        client_seterr(c, "PinnedByCorrelation can be chosen at creation only");
        rc = FACTUM_EINVAL;
    }
    if (!rc && in->filter && !is_all) {
        client_seterr(c, "filters are for groups on $all");
        rc = FACTUM_EINVAL;
    }
    if (!rc && in->filter && update) {
        client_seterr(c, "an update cannot change a group's filter");
        rc = FACTUM_EINVAL;
    }
    if (!rc && in->filter) rc = check_filter(c, in->filter);
    if (rc) {
        return rc;
    }
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__StreamOptions so =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__AllOptions ao =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__Position pos =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__POSITION__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__AllOptions__FilterOptions fo =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__AllOptions__FilterOptions__Expression ex =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__EXPRESSION__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__Settings st =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__INIT;
    EventStore__Client__PersistentSubscriptions__CreateReq__Options o =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__OPTIONS__INIT;
    o.group_name = (char *)(uintptr_t)group;
    if (is_all) {
        o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__OPTIONS__STREAM_OPTION_ALL;
        o.all = &ao;
        if (in->start == FACTUM_SUB_START) {
            ao.all_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__ALL_OPTION_START;
            ao.start = &empty;
        } else if (in->start == FACTUM_SUB_AFTER) {
            ao.all_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__ALL_OPTION_POSITION;
            pos.commit_position = pos.prepare_position = in->start_at;
            ao.position = &pos;
        } else {
            ao.all_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__ALL_OPTION_END;
            ao.end = &empty;
        }
        if (in->filter) {
            if (in->filter->regex) ex.regex = (char *)(uintptr_t)in->filter->regex;
            ex.n_prefix = in->filter->n_prefixes;
            ex.prefix = (char **)(uintptr_t)in->filter->prefixes;
            if (in->filter->on == FACTUM_FILTER_STREAM) {
                fo.filter_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__FILTER_STREAM_IDENTIFIER;
                fo.stream_identifier = &ex;
            } else {
                fo.filter_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__FILTER_EVENT_TYPE;
                fo.event_type = &ex;
            }
            fo.window_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTIONS__WINDOW_COUNT;
            fo.count = &empty;
            fo.checkpointintervalmultiplier = 1;
            ao.filter_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTION_FILTER;
            ao.filter = &fo;
        } else {
            ao.filter_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__ALL_OPTIONS__FILTER_OPTION_NO_FILTER;
            ao.no_filter = &empty;
        }
    } else {
        sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
        sid.stream_name.len = strlen(stream);
        so.stream_identifier = &sid;
        o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__OPTIONS__STREAM_OPTION_STREAM;
        o.stream = &so;
        if (in->start == FACTUM_SUB_START) {
            so.revision_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__REVISION_OPTION_START;
            so.start = &empty;
        } else if (in->start == FACTUM_SUB_AFTER) {
            so.revision_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__REVISION_OPTION_REVISION;
            so.revision = in->start_at;
        } else {
            so.revision_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__STREAM_OPTIONS__REVISION_OPTION_END;
            so.end = &empty;
        }
    }
    st.resolve_links = in->resolve_links != 0;
    st.message_timeout_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__MESSAGE_TIMEOUT_MESSAGE_TIMEOUT_MS;
    st.message_timeout_ms = in->message_timeout_ms;
    st.checkpoint_after_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__SETTINGS__CHECKPOINT_AFTER_CHECKPOINT_AFTER_MS;
    st.checkpoint_after_ms = in->checkpoint_after_ms;
    st.max_retry_count = in->max_retry_count;
    st.min_checkpoint_count = in->min_checkpoint_count;
    st.max_checkpoint_count = in->max_checkpoint_count;
    st.max_subscriber_count = in->max_subscriber_count;
    st.live_buffer_size = in->live_buffer_size;
    st.read_batch_size = in->read_batch_size;
    st.history_buffer_size = in->history_buffer_size;
    st.named_consumer_strategy = named >= 0 ? (EventStore__Client__PersistentSubscriptions__CreateReq__ConsumerStrategy)named
                                            : EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__CONSUMER_STRATEGY__RoundRobin;
    if (named < 0 && in->strategy) st.consumer_strategy = (char *)(uintptr_t)in->strategy;
    o.settings = &st;
    PsCreateReq req = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__CREATE_REQ__INIT;
    req.options = &o;
    client_call k;
    client_call_init(&k, update ? "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Update"
                                : "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Create",
                     NULL, NULL);
    rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    client_call_deinit(&k);
    return rc;
}

int factum_client_ps_create(factum_client *c, const char *stream, const char *group, const factum_client_ps_settings *s)
{
    return ps_create_or_update(c, stream, group, s, 0);
}

int factum_client_ps_update(factum_client *c, const char *stream, const char *group, const factum_client_ps_settings *s)
{
    return ps_create_or_update(c, stream, group, s, 1);
}

int factum_client_ps_delete(factum_client *c, const char *stream, const char *group)
{
    if (!c) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int is_all, rc = ps_check_target(c, stream, group, &is_all);
    if (!rc) {
        EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
        EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
        EventStore__Client__PersistentSubscriptions__DeleteReq__Options o =
            EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__OPTIONS__INIT;
        o.group_name = (char *)(uintptr_t)group;
        if (is_all) {
            o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__OPTIONS__STREAM_OPTION_ALL;
            o.all = &empty;
        } else {
            sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
            sid.stream_name.len = strlen(stream);
            o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
            o.stream_identifier = &sid;
        }
        EventStore__Client__PersistentSubscriptions__DeleteReq req = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__DELETE_REQ__INIT;
        req.options = &o;
        client_call k;
        client_call_init(&k, "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Delete", NULL, NULL);
        rc = client_call_add(&k, &req.base);
        if (!rc) rc = client_call_run(c, &k);
        client_call_deinit(&k);
    }
    return rc;
}

typedef struct ps_ctx {
    factum_client *c;
    client_call *k;
    factum_client_ps_fn fn;
    void *ctx;
    int is_all;
    int stopped;
    char name[2][FACTUM_MAX_STREAM_LEN + 1];
} ps_ctx;

/* The retry count: field 5 of ReadEvent, which the streams descriptor the
 * message was unpacked with keeps as an unknown field. */
static int retry_count_of(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        if (u->tag != 5 || u->wire_type != PROTOBUF_C_WIRE_TYPE_VARINT) continue;
        uint64_t v = 0;
        for (size_t b = 0; b < u->len && b < 10; b++) v |= (uint64_t)(u->data[b] & 0x7f) << (7 * b);
        return (int)(int32_t)v;
    }
    return 0;
}

static int ps_send_action(ps_ctx *p, const uint8_t id[16], int action)
{
    char text[37];
    factum_uuid_format(id, text);
    EventStore__Client__UUID u = EVENT_STORE__CLIENT__UUID__INIT;
    u.value_case = EVENT_STORE__CLIENT__UUID__VALUE_STRING;
    u.string = text;
    EventStore__Client__UUID *ids[1] = {&u};
    EventStore__Client__PersistentSubscriptions__ReadReq req = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__INIT;
    EventStore__Client__PersistentSubscriptions__ReadReq__Ack ack = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__ACK__INIT;
    EventStore__Client__PersistentSubscriptions__ReadReq__Nack nack = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__INIT;
    if (action == FACTUM_PS_ACK) {
        ack.n_ids = 1;
        ack.ids = ids;
        req.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_ACK;
        req.ack = &ack;
    } else {
        nack.n_ids = 1;
        nack.ids = ids;
        nack.action = action == FACTUM_PS_PARK    ? EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Park
                      : action == FACTUM_PS_RETRY ? EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Retry
                                                  : EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__NACK__ACTION__Skip;
        nack.reason = action == FACTUM_PS_PARK ? "parked by the consumer" : "";
        req.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_NACK;
        req.nack = &nack;
    }
    return client_call_push(p->c, p->k, &req.base);
}

static int ps_result(ps_ctx *p, int r, const uint8_t *id)
{
    if (r < 0) {
        client_seterr(p->c, "the subscription's callback stopped it: %s", factum_strerror(r));
        return r;
    }
    if (r == FACTUM_PS_STOP) {
        p->stopped = 1;
        return CLIENT_ENOUGH;
    }
    if (r == FACTUM_PS_LATER || !id) return 0;
    if (r > FACTUM_PS_SKIP) {
        client_seterr(p->c, "the subscription's callback returned an unknown action %d", r);
        return FACTUM_EINVAL;
    }
    return ps_send_action(p, id, r) ? -ENOMEM : 0;
}

static int on_ps_msg(void *arg, const uint8_t *msg, size_t len)
{
    ps_ctx *p = arg;
    factum_client *c = p->c;
    client_arena_reset(client_tl_arena());
    /* The persistent ReadResp has the streams one's layout (event = 1,
     * confirmation = 2) plus ReadEvent.retry_count (5). */
    ReadResp *resp = (ReadResp *)protobuf_c_message_unpack(&event_store__client__streams__read_resp__descriptor,
                                                           &client_tl_arena()->pa, len, msg);
    if (!resp) {
        client_seterr(c, "the server sent a ReadResp that does not decode");
        return FACTUM_EPROTOCOL;
    }
    if (resp->content_case != EVENT_STORE__CLIENT__STREAMS__READ_RESP__CONTENT_EVENT) return 0;
    const EventStore__Client__Streams__ReadResp__ReadEvent *re = resp->event;
    if (!re || (!re->event && !re->link)) {
        client_seterr(c, "the server sent a ReadResp event without a recorded event");
        return FACTUM_EPROTOCOL;
    }
    factum_sub_item it;
    memset(&it, 0, sizeof it);
    it.kind = FACTUM_SUB_EVENT;
    int rc;
    if (re->event && (rc = sub_event(c, re->event, &it.event, p->name[0]))) return rc;
    if (re->link) {
        if ((rc = sub_event(c, re->link, re->event ? &it.link : &it.event, p->name[1]))) return rc;
        if (re->event) it.has_link = 1;
        else it.unresolved = 1;
    }
    const factum_event *orig = it.has_link ? &it.link : &it.event;
    it.position = p->is_all ? orig->position : orig->version;
    uint8_t id[16];
    memcpy(id, orig->id, 16);
    int retries = retry_count_of(&re->base);
    client_arena tmp, *saved = client_arena_enter(&tmp); /* as sub_call_fn */
    int r = p->fn(p->ctx, &it, retries);
    client_arena_leave(saved);
    client_arena_deinit(&tmp);
    return ps_result(p, r, id);
}

static int on_ps_idle(void *arg)
{
    ps_ctx *p = arg;
    factum_sub_item it;
    memset(&it, 0, sizeof it);
    it.kind = FACTUM_SUB_IDLE;
    return ps_result(p, p->fn(p->ctx, &it, 0), NULL);
}

int factum_client_ps_subscribe(factum_client *c, const char *stream, const char *group, int buffer_size, int idle_ms,
                               factum_client_ps_fn fn, void *ctx)
{
    if (!c || !fn || buffer_size < 0) return FACTUM_EINVAL;
    client_errbuf()[0] = 0;
    int is_all, rc = ps_check_target(c, stream, group, &is_all);
    if (rc) {
        return rc;
    }
    EventStore__Client__Empty empty = EVENT_STORE__CLIENT__EMPTY__INIT;
    EventStore__Client__StreamIdentifier sid = EVENT_STORE__CLIENT__STREAM_IDENTIFIER__INIT;
    EventStore__Client__PersistentSubscriptions__ReadReq__Options__UUIDOption uo =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__INIT;
    EventStore__Client__PersistentSubscriptions__ReadReq__Options o =
        EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__INIT;
    o.group_name = (char *)(uintptr_t)group;
    o.buffer_size = buffer_size ? buffer_size : 10;
    uo.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__UUIDOPTION__CONTENT_STRING;
    uo.string = &empty;
    o.uuid_option = &uo;
    if (is_all) {
        o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__STREAM_OPTION_ALL;
        o.all = &empty;
    } else {
        sid.stream_name.data = (uint8_t *)(uintptr_t)stream;
        sid.stream_name.len = strlen(stream);
        o.stream_option_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__OPTIONS__STREAM_OPTION_STREAM_IDENTIFIER;
        o.stream_identifier = &sid;
    }
    EventStore__Client__PersistentSubscriptions__ReadReq req = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__INIT;
    req.content_case = EVENT_STORE__CLIENT__PERSISTENT_SUBSCRIPTIONS__READ_REQ__CONTENT_OPTIONS;
    req.options = &o;
    ps_ctx p;
    memset(&p, 0, sizeof p);
    client_call k;
    client_call_init(&k, "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Read", on_ps_msg, &p);
    p.c = c;
    p.k = &k;
    p.fn = fn;
    p.ctx = ctx;
    p.is_all = is_all;
    k.no_deadline = 1;
    k.streaming = 1;
    if (idle_ms > 0) {
        k.idle_ms = (uint32_t)idle_ms;
        k.on_idle = on_ps_idle;
    }
    rc = client_call_add(&k, &req.base);
    if (!rc) rc = client_call_run(c, &k);
    if (!rc && !p.stopped) {
        client_seterr(c, "the server ended the subscription");
        rc = FACTUM_ESERVER;
    }
    client_call_deinit(&k);
    client_arena_trim(client_tl_arena());
    return rc;
}
