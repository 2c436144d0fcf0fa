/*
 * pb.c - the guarded protobuf decoding of pb.h: a non-recursive walk of
 * the wire format against the message descriptors (PB-1) and a counting
 * allocator for protobuf-c (PB-2).
 */
#include "net/pb.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Read a varint at *pos (< end). 0, or -1 if truncated or over 10 bytes. */
static int varint(const uint8_t *buf, size_t *pos, size_t end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*pos >= end) return -1;
        uint8_t b = buf[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, unsigned max_depth)
{
    /* The open messages: each one's descriptor and where its bytes end. */
    struct {
        const ProtobufCMessageDescriptor *d;
        size_t end;
    } st[PB_MAX_DEPTH + 1];
    if (max_depth > PB_MAX_DEPTH) max_depth = PB_MAX_DEPTH;
    unsigned depth = 0;
    st[0].d = d;
    st[0].end = len;
    size_t pos = 0;
    for (;;) {
        while (pos == st[depth].end) {
            if (depth == 0) return PB_OK;
            depth--;
        }
        size_t end = st[depth].end;
        uint64_t key, v;
        if (varint(buf, &pos, end, &key)) return PB_EMALFORMED;
        uint64_t field = key >> 3;
        if (field == 0 || field > 0x1fffffff) return PB_EMALFORMED;
        switch (key & 7) {
        case 0:
            if (varint(buf, &pos, end, &v)) return PB_EMALFORMED;
            break;
        case 1:
            if (end - pos < 8) return PB_EMALFORMED;
            pos += 8;
            break;
        case 5:
            if (end - pos < 4) return PB_EMALFORMED;
            pos += 4;
            break;
        case 2: {
            if (varint(buf, &pos, end, &v) || v > end - pos) return PB_EMALFORMED;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(st[depth].d, (unsigned)field);
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
                if (depth + 1 > max_depth) return PB_EDEPTH;
                depth++;
                st[depth].d = f->descriptor;
                st[depth].end = pos + (size_t)v;
            } else {
                pos += (size_t)v;
            }
            break;
        }
        default: /* groups (3, 4) are not part of proto3; 6 and 7 do not exist */
            return PB_EMALFORMED;
        }
    }
}

/* What an allocation really costs: what malloc reserved plus its header. */
static size_t real_size(void *p)
{
    return malloc_usable_size(p) + sizeof(size_t);
}

static void *pa_alloc(void *data, size_t size)
{
    pb_alloc *pa = data;
    /* Refuse before allocating when even the request does not fit. */
    if (size > pa->limit || pa->used > pa->limit - size) {
        pa->refused = 1;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (!p) {
        pa->refused = 1;
        return NULL;
    }
    size_t n = real_size(p);
    if (pa->used + n > pa->limit || (pa->charge && pa->charge(pa->charge_ctx, (long)n))) {
        free(p);
        pa->refused = 1;
        return NULL;
    }
    pa->used += n;
    return p;
}

static void pa_free(void *data, void *p)
{
    pb_alloc *pa = data;
    if (!p) return;
    size_t n = real_size(p);
    free(p);
    pa->used -= n;
    if (pa->charge) pa->charge(pa->charge_ctx, -(long)n);
}

void pb_alloc_init(pb_alloc *pa, size_t limit)
{
    pa->a.alloc = pa_alloc;
    pa->a.free = pa_free;
    pa->a.allocator_data = pa;
    pa->used = 0;
    pa->limit = limit;
    pa->refused = 0;
    pa->charge = NULL;
    pa->charge_ctx = NULL;
    pa->charged = 0;
}

/* Can a message of type d nest without bound (a message type reachable
 * from itself)? Depth-first over the schema; `on` holds the path. */
static int reaches_itself(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **on, int depth)
{
    for (int i = 0; i < depth; i++)
        if (on[i] == d) return 1;
    if (depth >= PB_MAX_DEPTH) return 1; /* a schema this deep is treated as unbounded */
    on[depth] = d;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor && reaches_itself(f->descriptor, on, depth + 1))
            return 1;
    }
    return 0;
}

/* Whether d's messages need the depth walk (PB-1), remembered per type:
 * messages whose schema cannot nest (most of KurrentDB's: at most 6 deep)
 * skip it. A lock-free table; a type not in it (full) is walked. */
static int needs_walk(const ProtobufCMessageDescriptor *d)
{
    static _Atomic(const ProtobufCMessageDescriptor *) keys[64];
    static _Atomic int vals[64];
    size_t h = ((uintptr_t)d >> 4) % 64;
    for (size_t i = 0; i < 64; i++) {
        size_t j = (h + i) % 64;
        const ProtobufCMessageDescriptor *k = atomic_load_explicit(&keys[j], memory_order_acquire);
        if (k == d) {
            int v = atomic_load_explicit(&vals[j], memory_order_acquire); /* 0: not stored yet */
            if (v) return v - 1;
            break;
        }
        if (k) continue;
        const ProtobufCMessageDescriptor *empty = NULL;
        if (atomic_compare_exchange_strong_explicit(&keys[j], &empty, d, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            const ProtobufCMessageDescriptor *on[PB_MAX_DEPTH + 1];
            int v = reaches_itself(d, on, 0);
            atomic_store_explicit(&vals[j], v + 1, memory_order_release);
            return v;
        }
        if (empty == d) break; /* another thread is filling this slot for d */
        /* the slot went to another type: try the next one */
    }
    const ProtobufCMessageDescriptor *on[PB_MAX_DEPTH + 1];
    return reaches_itself(d, on, 0);
}

int pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, pb_alloc *pa,
              ProtobufCMessage **out)
{
    *out = NULL;
    int rc = needs_walk(d) ? pb_check(d, buf, len, PB_MAX_DEPTH) : PB_OK;
    if (rc) return rc;
    pa->refused = 0;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &pa->a, len, buf);
    if (!m) return pa->refused ? PB_ETOOBIG : PB_EMALFORMED;
    *out = m;
    return PB_OK;
}

void pb_free(ProtobufCMessage *m, pb_alloc *pa)
{
    if (m) protobuf_c_message_free_unpacked(m, &pa->a);
}

const char *pb_strerror(int rc)
{
    switch (rc) {
    case PB_OK: return "ok";
    case PB_EMALFORMED: return "malformed message";
    case PB_EDEPTH: return "message nested too deeply";
    case PB_ETOOBIG: return "message needs too much memory to decode";
    }
    return "unknown error";
}
