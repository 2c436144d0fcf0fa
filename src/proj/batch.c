/*
 * batch.c - what a projection writes for one stretch of the log, and its
 * checkpoint, as one multi-stream append (PRJ-1). Events are added in the
 * order they were read; each output stream becomes one part of the append
 * (the store wants a stream in one part only), its events in that order, and
 * the checkpoint part comes last. Output is formatted straight into one
 * arena: link data "<version>@<stream>" and KurrentDB's link metadata
 * {"$c":p,"$p":p,[extras,]"$causedBy":"<source id>"[,"$correlationId":..]}.
 * Pointers into the arena are taken only when the batch is submitted, when
 * it no longer grows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "proj/proj.h"

typedef struct plink {
    uint32_t part;
    uint32_t type; /* 0: "$>", 1: "$@", 2: its own (type_off, type_len) */
    size_t data_off, meta_off, type_off;
    uint32_t data_len, meta_len, type_len;
    uint32_t flags; /* type 2: FACTUM_EVENT_* */
} plink;

typedef struct ppart {
    uint64_t hash;
    size_t name_off; /* NUL-terminated in the arena */
    uint32_t name_len;
    uint32_t n;
} ppart;

enum { B_IDLE = 0, B_PENDING = 1, B_DONE = 2 };

struct prj_batch {
    base_buf arena;
    plink *links;
    size_t n_links, cap_links;
    ppart *parts;
    size_t n_parts, cap_parts;
    uint32_t *idx; /* open addressing over parts: index + 1, 0 empty */
    size_t idx_cap;
    uint64_t from, to;
    /* the append */
    factum_event_data *ev;
    size_t cap_ev;
    factum_append_req *reqs;
    size_t cap_reqs, n_reqs;
    factum_event_data ckpt_ev, ckpt_meta_ev;
    char *ckpt_meta_stream;
    base_buf ckpt_meta;
    base_buf ckpt_data; /* the checkpoint event's data (a JavaScript projection's state) */
    int has_ckpt_data;
    void (*cb)(void *ctx, int rc);
    void *cb_ctx;
    _Atomic int state;
    int rc;
    size_t failed;
};

prj_batch *prj_batch_new(void)
{
    return calloc(1, sizeof(prj_batch));
}

void prj_batch_free(prj_batch *b)
{
    if (!b) return;
    base_buf_free(&b->arena);
    base_buf_free(&b->ckpt_meta);
    base_buf_free(&b->ckpt_data);
    free(b->links);
    free(b->parts);
    free(b->idx);
    free(b->ev);
    free(b->reqs);
    free(b->ckpt_meta_stream);
    free(b);
}

void prj_batch_reset(prj_batch *b, uint64_t from)
{
    b->arena.len = 0;
    b->n_links = 0;
    if (b->n_parts) memset(b->idx, 0, b->idx_cap * sizeof *b->idx);
    b->n_parts = 0;
    b->from = b->to = from;
    b->ckpt_data.len = 0;
    b->has_ckpt_data = 0;
    atomic_store(&b->state, B_IDLE);
}

int prj_batch_set_checkpoint_data(prj_batch *b, const void *data, size_t len)
{
    b->ckpt_data.len = 0;
    b->has_ckpt_data = 1;
    return base_buf_append(&b->ckpt_data, data, len);
}

void prj_batch_cover(prj_batch *b, uint64_t to)
{
    b->to = to;
}

size_t prj_batch_events(const prj_batch *b)
{
    return b->n_links;
}

size_t prj_batch_bytes(const prj_batch *b)
{
    return b->arena.len;
}

uint64_t prj_batch_to(const prj_batch *b)
{
    return b->to;
}

uint64_t prj_batch_from(const prj_batch *b)
{
    return b->from;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n) return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* ---- formatting into the arena (room reserved by the caller) -------- */

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* s as the inside of a JSON string (at most 6 bytes per input byte). */
static char *put_escaped(char *p, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p = put(p, "\\u00", 4);
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static char *put_uuid(char *p, const uint8_t id[16])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
        *p++ = hex[id[i] >> 4];
        *p++ = hex[id[i] & 15];
    }
    return p;
}

/* "yyyy-MM-ddTHH:mm:ss.ffffffZ", as KurrentDB writes $eventTimestamp. */
static char *put_time(char *p, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000);
    int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    char buf[40];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    p = put(p, buf, n);
    *p++ = '.';
    uint64_t us = (uint64_t)frac / 1000;
    for (int d = 100000; d; d /= 10)
        *p++ = (char)('0' + (us / (uint64_t)d) % 10);
    *p++ = 'Z';
    return p;
}

/* Is s a well-formed inside of a JSON string (escapes, no control
 * characters)? Then it can be copied as it is. */
static int json_string_body_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"') return 0;
        if (c != '\\') continue;
        if (++i >= n) return 0;
        c = (unsigned char)s[i];
        if (c == 'u') {
            if (i + 4 >= n) return 0;
            for (int k = 1; k <= 4; k++) {
                char h = s[i + (size_t)k];
                if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return 0;
            }
            i += 4;
        } else if (!strchr("\"\\/bfnrt", c)) {
            return 0;
        }
    }
    return base_utf8_valid(s, n) || !n;
}

/* ---- adding ----------------------------------------------------------- */

static int part_of(prj_batch *b, const char *name, size_t len, uint32_t *out)
{
    uint64_t h = base_hash64(name, len);
    if (b->n_parts) { /* most batches write to one stream again and again */
        ppart *last = &b->parts[b->links[b->n_links - 1].part];
        if (last->hash == h && last->name_len == len && !memcmp(b->arena.data + last->name_off, name, len)) {
            *out = (uint32_t)(last - b->parts);
            return 0;
        }
    }
    if ((b->n_parts + 1) * 2 > b->idx_cap) {
        size_t cap = b->idx_cap ? b->idx_cap * 2 : 256;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx) return -ENOMEM;
        for (size_t k = 0; k < b->n_parts; k++) {
            size_t i = b->parts[k].hash & (cap - 1);
            while (idx[i])
                i = (i + 1) & (cap - 1);
            idx[i] = (uint32_t)(k + 1);
        }
        free(b->idx);
        b->idx = idx;
        b->idx_cap = cap;
    }
    size_t i = h & (b->idx_cap - 1);
    for (; b->idx[i]; i = (i + 1) & (b->idx_cap - 1)) {
        ppart *p = &b->parts[b->idx[i] - 1];
        if (p->hash == h && p->name_len == len && !memcmp(b->arena.data + p->name_off, name, len)) {
            *out = b->idx[i] - 1;
            return 0;
        }
    }
    if (!base_utf8_valid(name, len)) return FACTUM_EBADNAME;
    if (grow((void **)&b->parts, &b->cap_parts, b->n_parts + 1, sizeof *b->parts)) return -ENOMEM;
    if (base_buf_reserve(&b->arena, len + 1)) return -ENOMEM;
    ppart *p = &b->parts[b->n_parts];
    *p = (ppart){h, b->arena.len, (uint32_t)len, 0};
    memcpy(b->arena.data + b->arena.len, name, len);
    b->arena.data[b->arena.len + len] = 0;
    b->arena.len += len + 1;
    b->idx[i] = (uint32_t)(++b->n_parts);
    *out = (uint32_t)(p - b->parts);
    return 0;
}

int prj_batch_add(prj_batch *b, const prj_src *src, const prj_emit *e)
{
    char name[FACTUM_MAX_STREAM_LEN + 1];
    size_t pl = strlen(e->prefix);
    if (pl + e->name_len > FACTUM_MAX_STREAM_LEN) return FACTUM_EBADNAME;
    memcpy(name, e->prefix, pl);
    if (e->name_len) memcpy(name + pl, e->name, e->name_len);
    uint32_t part;
    int rc = part_of(b, name, pl + e->name_len, &part);
    if (rc) return rc;
    if (grow((void **)&b->links, &b->cap_links, b->n_links + 1, sizeof *b->links)) return -ENOMEM;

    /* The source's $correlationId, copied into the link's metadata as
     * KurrentDB does for events whose data is JSON. */
    const factum_event *ev = src->ev, *rec = src->rec;
    const char *corr = NULL;
    size_t corr_len = 0;
    int corr_str = 0;
    if ((ev->flags & FACTUM_EVENT_JSON) && ev->metadata_len &&
        prj_json_member((const char *)ev->metadata, ev->metadata_len, "$correlationId", 14, &corr, &corr_len,
                        &corr_str)) {
        if (corr_str ? !json_string_body_ok(corr, corr_len) : (!corr_len || !strchr("-0123456789", corr[0])))
            corr = NULL;
    }
    size_t need = 20 + (e->data_kind == PRJ_DATA_RAW ? e->raw_len : e->target_len) + 64 + 6 * e->orig_len +
                  80 + 60 + 48 + corr_len + 24;
    if (base_buf_reserve(&b->arena, need)) return -ENOMEM;
    plink *l = &b->links[b->n_links];
    l->part = part;
    l->type = e->type[1] == '@';
    char *start = (char *)b->arena.data + b->arena.len, *p = start;
    if (e->data_kind == PRJ_DATA_RAW) {
        p = put(p, e->raw, e->raw_len);
    } else {
        p = put_u64(p, e->version);
        *p++ = '@';
        p = put(p, e->target, e->target_len);
    }
    l->data_off = b->arena.len;
    l->data_len = (uint32_t)(p - start);
    char *m = p;
    p = put(p, "{\"$c\":", 6);
    p = put_u64(p, rec->position);
    p = put(p, ",\"$p\":", 6);
    p = put_u64(p, rec->position);
    if (e->orig) {
        p = put(p, ",\"$o\":\"", 7);
        p = put_escaped(p, e->orig, e->orig_len);
        *p++ = '"';
    }
    if (e->deleted) p = put(p, ",\"$deleted\":-1", 14);
    if (e->timestamp) {
        p = put(p, ",\"$eventTimestamp\":\"", 20);
        p = put_time(p, rec->timestamp_ns);
        *p++ = '"';
    }
    p = put(p, ",\"$causedBy\":\"", 14);
    p = put_uuid(p, ev->id);
    *p++ = '"';
    if (corr) {
        p = put(p, ",\"$correlationId\":\"", 19);
        p = put(p, corr, corr_len);
        *p++ = '"';
    }
    *p++ = '}';
    l->meta_off = l->data_off + l->data_len;
    l->meta_len = (uint32_t)(p - m);
    b->arena.len += (size_t)(p - start);
    b->parts[part].n++;
    b->n_links++;
    return 0;
}

int prj_batch_add_event(prj_batch *b, const char *stream, size_t stream_len, const char *type, size_t type_len,
                        uint32_t flags, const void *data, size_t data_len, const void *meta, size_t meta_len)
{
    if (!stream_len || stream_len > FACTUM_MAX_STREAM_LEN) return FACTUM_EBADNAME;
    uint32_t part;
    int rc = part_of(b, stream, stream_len, &part);
    if (rc) return rc;
    if (grow((void **)&b->links, &b->cap_links, b->n_links + 1, sizeof *b->links)) return -ENOMEM;
    if (base_buf_reserve(&b->arena, type_len + 1 + data_len + meta_len)) return -ENOMEM;
    plink *l = &b->links[b->n_links];
    l->part = part;
    l->type = 2;
    l->flags = flags;
    l->type_off = b->arena.len;
    l->type_len = (uint32_t)type_len;
    memcpy(b->arena.data + b->arena.len, type, type_len);
    b->arena.data[b->arena.len + type_len] = 0; /* factum_event_data.type is a C string */
    b->arena.len += type_len + 1;
    l->data_off = b->arena.len;
    l->data_len = (uint32_t)data_len;
    if (data_len) memcpy(b->arena.data + b->arena.len, data, data_len);
    b->arena.len += data_len;
    l->meta_off = b->arena.len;
    l->meta_len = (uint32_t)meta_len;
    if (meta_len) memcpy(b->arena.data + b->arena.len, meta, meta_len);
    b->arena.len += meta_len;
    b->parts[part].n++;
    b->n_links++;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------ */

int prj_checkpoint_meta(base_buf *b, int64_t projection_id, int64_t epoch, int64_t version, uint64_t position)
{
    b->len = 0;
    return base_buf_printf(b, "{\"$v\":\"%lld:%lld:%lld:%d\",\"$c\":%llu,\"$p\":%llu}",
                           (long long)projection_id, (long long)epoch, (long long)version, PRJ_SUBSYSTEM,
                           (unsigned long long)position, (unsigned long long)position);
}

int prj_checkpoint_parse(const uint8_t *meta, size_t len, uint64_t *position, int64_t *epoch)
{
    json_value *doc = NULL;
    int rc = FACTUM_ECORRUPT;
    if (json_parse((const char *)meta, len, &doc) || doc->type != JSON_OBJECT) goto out;
    const json_value *c = json_get(doc, "$c"), *v = json_get(doc, "$v");
    int64_t pos;
    if (!c || json_int64(c, &pos) || pos < 0) goto out;
    *position = (uint64_t)pos;
    *epoch = 0;
    if (v && v->type == JSON_STRING) { /* "<id>:<epoch>:<version>:<subsystem>" */
        const char *colon = memchr(v->str, ':', v->len);
        if (colon) *epoch = strtoll(colon + 1, NULL, 10);
    }
    rc = 0;
out:
    json_free(doc);
    return rc;
}

/* ---- the append -------------------------------------------------------- */

static void done(void *ctx, int rc, const factum_append_result *res, size_t n, size_t failed)
{
    (void)res;
    (void)n;
    prj_batch *b = ctx;
    b->rc = rc;
    b->failed = failed;
    void (*cb)(void *, int) = b->cb;
    void *cb_ctx = b->cb_ctx;
    atomic_store_explicit(&b->state, B_DONE, memory_order_release);
    cb(cb_ctx, rc); /* b may be reused from here on */
}

int prj_batch_submit(prj_batch *b, factum_store *s, const prj_batch_ctx *c, void (*cb)(void *ctx, int rc),
                     void *ctx)
{
    size_t n_parts = b->n_parts + 1 + (c->ckpt_create ? 1 : 0);
    if (grow((void **)&b->ev, &b->cap_ev, b->n_links ? b->n_links : 1, sizeof *b->ev) ||
        grow((void **)&b->reqs, &b->cap_reqs, n_parts, sizeof *b->reqs))
        return -ENOMEM;
    /* Each part's events together, in the order they were added. */
    size_t at = 0;
    for (size_t k = 0; k < b->n_parts; k++) {
        ppart *p = &b->parts[k];
        b->reqs[k] =
            (factum_append_req){(const char *)b->arena.data + p->name_off, FACTUM_ANY, b->ev + at, 0};
        at += p->n;
    }
    for (size_t i = 0; i < b->n_links; i++) {
        const plink *l = &b->links[i];
        factum_append_req *q = &b->reqs[l->part];
        factum_event_data *d = (factum_event_data *)q->events + q->n_events++;
        memset(d, 0, sizeof *d);
        d->type = l->type == 2 ? (const char *)b->arena.data + l->type_off : l->type ? "$@" : FACTUM_LINK_TYPE;
        d->flags = l->type == 2 ? l->flags : FACTUM_EVENT_META_JSON;
        d->data = b->arena.data + l->data_off;
        d->data_len = l->data_len;
        d->metadata = b->arena.data + l->meta_off;
        d->metadata_len = l->meta_len;
    }
    size_t k = b->n_parts;
    if (c->ckpt_create) { /* KurrentDB keeps the last two checkpoints */
        size_t len = strlen(c->ckpt_stream);
        char *meta = realloc(b->ckpt_meta_stream, len + 3);
        if (!meta) return -ENOMEM;
        b->ckpt_meta_stream = meta;
        memcpy(meta, "$$", 2);
        memcpy(meta + 2, c->ckpt_stream, len + 1);
        static const char doc[] = "{\"$maxCount\":2}";
        b->ckpt_meta_ev = (factum_event_data){
            .type = "$metadata", .flags = FACTUM_EVENT_JSON, .data = doc, .data_len = sizeof doc - 1};
        b->reqs[k++] = (factum_append_req){meta, FACTUM_ANY, &b->ckpt_meta_ev, 1};
    }
    int rc = prj_checkpoint_meta(&b->ckpt_meta, c->projection_id, c->epoch, c->version, b->to);
    if (rc) return rc;
    b->ckpt_ev = (factum_event_data){.type = PRJ_CHECKPOINT_TYPE,
                                     .flags = FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON,
                                     .metadata = b->ckpt_meta.data,
                                     .metadata_len = b->ckpt_meta.len};
    if (b->has_ckpt_data) {
        b->ckpt_ev.data = b->ckpt_data.data;
        b->ckpt_ev.data_len = b->ckpt_data.len;
    }
    b->reqs[k++] = (factum_append_req){c->ckpt_stream, c->ckpt_expected, &b->ckpt_ev, 1};
    b->n_reqs = k;
    b->cb = cb;
    b->cb_ctx = ctx;
    atomic_store(&b->state, B_PENDING);
    rc = factum_append_async(s, b->reqs, k, done, b);
    if (rc) atomic_store(&b->state, B_IDLE);
    return rc;
}

int prj_batch_done(prj_batch *b, int *rc, const char **failed_stream)
{
    if (atomic_load_explicit(&b->state, memory_order_acquire) != B_DONE) return 0;
    *rc = b->rc;
    *failed_stream = b->rc && b->failed < b->n_reqs ? b->reqs[b->failed].stream : NULL;
    return 1;
}
