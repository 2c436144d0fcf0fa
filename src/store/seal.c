/*
 * seal.c - crypto-shredding in the store (ADR 0027): the key file opened
 * under the master key, the data subject of a stream, sealing an event's
 * bytes as the writer encodes it, opening sealed events as reads return
 * them (into the factum_reader bound to the calling thread), and shredding.
 *
 * Design note (invariants; tests cite them as SEAL-n):
 *  SEAL-1  No plaintext of a sealed event is written to the data directory:
 *          the writer seals data and metadata together before the frame is
 *          encoded, under a key that is durable in the key file before
 *          anything sealed under it is written (the new subjects of a group
 *          are written to the key file as they are met, and made durable by
 *          one fdatasync before the group's batch is written: seal_sync).
 *  SEAL-2  A read never returns sealed bytes as data: a sealed event comes
 *          back opened (into the thread's reader), or with empty data and
 *          metadata and FACTUM_EVENT_SEALED (no reader) or
 *          FACTUM_EVENT_SHREDDED (its key is gone), its JSON flags cleared.
 *  SEAL-3  A shred is durable in the key file before factum_shred returns,
 *          then recorded in `$shreds`, then the store's epoch moves, so that
 *          holders of opened events (factumd's buffers) read them again and
 *          meet FACTUM_EVENT_SHREDDED. Readers' key caches are dropped by the
 *          shred generation.
 *  SEAL-4  A store whose key file exists does not open without its master
 *          key (FACTUM_EKEY): it never serves sealed events as if it had no
 *          keys, and never writes new subjects' events in the clear.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/json.h"
#include "common/common.h"
#include "store/keystore.h"
#include "store/seal.h"
#include "store/store_int.h"

#define KEYS_DIR "keys"

struct seal {
    keystore *ks;
    pthread_mutex_t mu;   /* ks */
    _Atomic uint64_t gen; /* bumped by each shred */
    uint64_t uid;         /* this open's, for readers' key caches (a store's address can come again) */
    char **cats;          /* shred_categories, split */
    size_t n_cats;
};

/* ---- readers ------------------------------------------------------------ */

typedef struct rchunk {
    struct rchunk *next;
    size_t cap, used;
    uint8_t data[];
} rchunk;

#define RD_KEYS 8

struct factum_reader {
    rchunk *head;
    size_t used, limit; /* bytes handed out since the reset; factum_reader_set_limit's (0: none) */
    struct {
        uint64_t uid, gen;
        uint32_t id;
        int have;
        ks_gcm *g; /* keyed with the slot's key once (NULL until used) */
        int keyed;
    } keys[RD_KEYS];
    unsigned next_slot;
};

static _Thread_local factum_reader *tls_reader;
static _Atomic uint64_t seal_uids;

factum_reader *factum_reader_new(void)
{
    return calloc(1, sizeof(factum_reader));
}

void factum_reader_reset(factum_reader *r)
{
    if (!r) return;
    rchunk *keep = NULL;
    for (rchunk *c = r->head, *next; c; c = next) {
        next = c->next;
        OPENSSL_cleanse(c->data, c->used);
        if (!keep || c->cap > keep->cap) {
            if (keep) free(keep);
            keep = c;
        } else {
            free(c);
        }
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    r->head = keep;
    r->used = 0;
}

void factum_reader_set_limit(factum_reader *r, size_t bytes)
{
    if (r) r->limit = bytes;
}

int store_reader_over(void)
{
    const factum_reader *r = tls_reader;
    return r && r->limit && r->used > r->limit;
}

void factum_reader_free(factum_reader *r)
{
    if (!r) return;
    if (tls_reader == r) tls_reader = NULL;
    factum_reader_reset(r);
    free(r->head);
    for (unsigned i = 0; i < RD_KEYS; i++)
        ks_gcm_free(r->keys[i].g);
    OPENSSL_cleanse(r->keys, sizeof r->keys);
    free(r);
}

factum_reader *factum_reader_use(factum_reader *r)
{
    factum_reader *prev = tls_reader;
    tls_reader = r;
    return prev;
}

size_t factum_reader_bytes(const factum_reader *r)
{
    return r ? r->used : 0;
}

static uint8_t *rd_alloc(factum_reader *r, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (!r->head || r->head->cap - r->head->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        rchunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = r->head;
        r->head = c;
    }
    uint8_t *p = r->head->data + r->head->used;
    r->head->used += n;
    r->used += n;
    return p;
}

/* ---- open and close ------------------------------------------------------ */

static int split_categories(struct seal *se, const char *list)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ')) {
            p++;
            n--;
        }
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            if (memchr(p, '-', n) || *p == '$') return FACTUM_EINVAL;
            char **c = realloc(se->cats, (se->n_cats + 1) * sizeof *c);
            if (!c) return -ENOMEM;
            se->cats = c;
            if (!(c[se->n_cats] = strndup(p, n))) return -ENOMEM;
            se->n_cats++;
        }
        p = e ? e + 1 : p + strlen(p);
    }
    return 0;
}

void seal_free(factum_store *s)
{
    struct seal *se = s->seal;
    if (!se) return;
    if (se->ks) ks_close(se->ks);
    for (size_t i = 0; i < se->n_cats; i++)
        free(se->cats[i]);
    free(se->cats);
    pthread_mutex_destroy(&se->mu);
    free(se);
    s->seal = NULL;
}

int seal_open(factum_store *s)
{
    const factum_options *o = &s->opts;
    char dir[PATH_MAX], file[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" KEYS_DIR, s->path);
    snprintf(file, sizeof file, "%s/keystore", dir);
    struct stat st;
    int has_keys = stat(file, &st) == 0;
    if (!o->master_key_file) {
        if (o->shred_categories && *o->shred_categories) {
            store_log(s, FACTUM_LOG_ERROR, "shred_categories needs a master key (master_key_file)");
            return FACTUM_EINVAL;
        }
        if (has_keys) {
            /* SEAL-4 */
            store_log(s, FACTUM_LOG_ERROR,
                      "this store has sealed data (%s): open it with its master key (--master-key-file)",
                      file);
            return FACTUM_EKEY;
        }
        return 0;
    }
    struct seal *se = calloc(1, sizeof *se);
    if (!se) return -ENOMEM;
    pthread_mutex_init(&se->mu, NULL);
    se->uid = atomic_fetch_add(&seal_uids, 1) + 1;
    s->seal = se;
    int rc = split_categories(se, o->shred_categories);
    if (rc) {
        if (rc == FACTUM_EINVAL)
            store_log(s, FACTUM_LOG_ERROR,
                      "shred_categories: a category is a name without '-' or a leading '$'");
        return rc;
    }
    /* Outside the data directory: a copy of the directory (a backup, an
     * archive) must not carry the key that opens it. */
    char rk[PATH_MAX], rd[PATH_MAX];
    if (realpath(o->master_key_file, rk) && realpath(s->path, rd)) {
        size_t dl = strlen(rd);
        if (!strncmp(rk, rd, dl) && (rk[dl] == '/' || rd[dl - 1] == '/')) {
            store_log(s, FACTUM_LOG_ERROR,
                      "master key %s: it is inside the data directory; keep it elsewhere",
                      o->master_key_file);
            return FACTUM_EKEY;
        }
    }
    uint8_t master[KS_KEY_LEN];
    const char *why = NULL;
    if ((rc = ks_master_load(o->master_key_file, master, &why))) {
        store_log(s, FACTUM_LOG_ERROR, "master key %s: %s", o->master_key_file,
                  why ? why : factum_strerror(rc));
        return rc;
    }
    rc = ks_open(s->io, dir, master, o->read_only ? -1 : 1, &se->ks);
    OPENSSL_cleanse(master, sizeof master);
    if (rc == -ENOENT && o->read_only) return 0; /* no keys yet: nothing is sealed */
    if (rc == FACTUM_EKEY)
        store_log(s, FACTUM_LOG_ERROR, "%s: its keys were wrapped under another master key than %s", file,
                  o->master_key_file);
    else if (rc)
        store_log(s, FACTUM_LOG_ERROR, "opening the key file %s: %s", file, factum_strerror(rc));
    return rc;
}

void seal_lock(factum_store *s, int lock)
{
    if (lock)
        pthread_mutex_lock(&s->seal->mu);
    else
        pthread_mutex_unlock(&s->seal->mu);
}

int factum_store_sealing(factum_store *s)
{
    return s && s->seal;
}

int seal_enabled(const factum_store *s)
{
    return s->seal && s->seal->ks;
}

/* ---- subjects and sealing -------------------------------------------------- */

int seal_category_subject(const factum_store *s, const char *name, size_t len, const char **sub,
                          size_t *sub_len)
{
    const struct seal *se = s->seal;
    if (!se || !se->n_cats || !len || name[0] == '$') return 0;
    const char *dash = memchr(name, '-', len);
    if (!dash || dash + 1 == name + len) return 0;
    size_t cl = (size_t)(dash - name);
    for (size_t i = 0; i < se->n_cats; i++) {
        if (strlen(se->cats[i]) == cl && memcmp(se->cats[i], name, cl) == 0) {
            *sub = dash + 1;
            *sub_len = len - cl - 1;
            return *sub_len <= KS_MAX_SUBJECT;
        }
    }
    return 0;
}

int seal_doc_subject(const uint8_t *doc, size_t len, char *out, size_t *out_len)
{
    json_value *v;
    if (json_parse((const char *)doc, len, &v)) return 0;
    const char *sub;
    size_t n;
    int rc = v->type == JSON_OBJECT ? meta_subject(v, &sub, &n) : 0;
    if (rc == 1) {
        memcpy(out, sub, n);
        *out_len = n;
    }
    json_free(v);
    return rc == 1;
}

int seal_subject_key(factum_store *s, const char *sub, size_t len, uint32_t *id, uint8_t key[32])
{
    struct seal *se = s->seal;
    pthread_mutex_lock(&se->mu);
    int rc = ks_subject_key(se->ks, sub, len, 2, id, key); /* durable by seal_sync, before the batch */
    pthread_mutex_unlock(&se->mu);
    return rc;
}

int seal_sync(factum_store *s)
{
    if (!seal_enabled(s)) return 0;
    pthread_mutex_lock(&s->seal->mu);
    int rc = ks_sync(s->seal->ks);
    pthread_mutex_unlock(&s->seal->mu);
    if (rc) store_log(s, FACTUM_LOG_ERROR, "making new data subjects' keys durable: %s", factum_strerror(rc));
    return rc;
}

/* The additional data a sealed body is bound to (KS-4): stream, type and
 * event id (the position and version are not known when it is sealed). */
static size_t aad_of(const char *stream, size_t slen, const char *type, size_t tlen, const uint8_t id[16],
                     uint8_t *out)
{
    memcpy(out, stream, slen);
    out[slen] = 0;
    memcpy(out + slen + 1, type, tlen);
    out[slen + 1 + tlen] = 0;
    memcpy(out + slen + tlen + 2, id, 16);
    return slen + tlen + 18;
}

#define AAD_MAX (FACTUM_MAX_STREAM_LEN + FACTUM_MAX_TYPE_LEN + 18)

int seal_event(seal_gcm *sg, uint32_t key_id, const uint8_t key[32], const char *stream, size_t slen,
               const char *type, size_t tlen, const uint8_t id[16], const void *data, size_t dlen,
               const void *meta, size_t mlen, base_buf *out)
{
    if (slen > FACTUM_MAX_STREAM_LEN || tlen > FACTUM_MAX_TYPE_LEN) return FACTUM_EINVAL;
    if (!sg->g && !(sg->g = ks_gcm_new())) return -ENOMEM;
    uint8_t aad[AAD_MAX];
    size_t alen = aad_of(stream, slen, type, tlen, id, aad);
    size_t plen = 4 + dlen + mlen;
    out->len = 0;
    if (base_buf_reserve(out, plen + LOG_SEAL_OVERHEAD - 4)) return -ENOMEM;
    uint8_t dl[4];
    base_put32(dl, (uint32_t)dlen);
    ks_iov v[3] = {{dl, 4}, {data, dlen}, {meta, mlen}};
    base_put32(out->data, key_id);
    if (!sg->nonces_left) { /* random nonces, drawn in bulk (one RAND_bytes costs more than a seal) */
        if (RAND_bytes(sg->nonces, sizeof sg->nonces) != 1) return -EIO;
        sg->nonces_left = SEAL_NONCES;
    }
    const uint8_t *nonce = sg->nonces + (size_t)(SEAL_NONCES - sg->nonces_left--) * KS_NONCE_LEN;
    /* The context keeps the last key's schedule: set again only for another key. */
    int rc = ks_seal_iov(sg->g, sg->kid == key_id ? NULL : key, nonce, aad, alen, v, 3, out->data + 4);
    sg->kid = rc ? 0 : key_id;
    if (rc) return rc;
    out->len = 4 + plen + KS_SEAL_EXTRA;
    return 0;
}

void seal_gcm_free(seal_gcm *sg)
{
    ks_gcm_free(sg->g);
    sg->g = NULL;
    sg->kid = 0;
    sg->nonces_left = 0;
}

/* ---- opening on read ------------------------------------------------------ */

/* The key with id `id`: into the reader's slot (*slot: its index; the
 * slot's context keyed with it when *rekey is set), or, without a reader,
 * into key. 0, FACTUM_ENOTFOUND (shredded, or no keys), or an error. */
static int key_of(factum_store *s, factum_reader *r, uint32_t id, uint8_t key[32], unsigned *slot, int *rekey)
{
    struct seal *se = s->seal;
    *rekey = 0;
    if (!se || !se->ks) return FACTUM_ENOTFOUND;
    uint64_t gen = atomic_load_explicit(&se->gen, memory_order_acquire);
    if (r) {
        for (unsigned i = 0; i < RD_KEYS; i++) {
            if (r->keys[i].uid == se->uid && r->keys[i].id == id && r->keys[i].gen == gen) {
                if (!r->keys[i].have) return FACTUM_ENOTFOUND;
                *slot = i;
                if (r->keys[i].keyed) return 0;
                break; /* its context was never keyed: fill it again */
            }
        }
    }
    pthread_mutex_lock(&se->mu);
    int rc = ks_key(se->ks, id, key);
    pthread_mutex_unlock(&se->mu);
    if (r && (rc == 0 || rc == FACTUM_ENOTFOUND)) {
        unsigned i = *slot < RD_KEYS && r->keys[*slot].uid == se->uid && r->keys[*slot].id == id
                         ? *slot
                         : r->next_slot++ % RD_KEYS;
        r->keys[i].uid = se->uid;
        r->keys[i].id = id;
        r->keys[i].gen = gen;
        r->keys[i].have = rc == 0;
        r->keys[i].keyed = 0;
        *slot = i;
        *rekey = rc == 0;
    }
    return rc;
}

static void emptied(factum_event *ev, uint32_t why)
{
    ev->data = ev->metadata = (const uint8_t *)"";
    ev->data_len = ev->metadata_len = 0;
    ev->flags = (ev->flags & ~(uint32_t)(FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON | LOG_EV_SEALED)) | why;
}

static int open_one(factum_store *s, factum_reader *r, factum_event *ev)
{
    const uint8_t *b = ev->data;
    size_t blen = ev->data_len;
    uint32_t id = base_get32(b);
    uint8_t key[KS_KEY_LEN];
    unsigned slot = RD_KEYS;
    int rekey = 0;
    int rc = key_of(s, r, id, key, &slot, &rekey);
    if (rc == FACTUM_ENOTFOUND) {
        emptied(ev, FACTUM_EVENT_SHREDDED);
        return 0;
    }
    if (rc) return rc;
    if (!r) {
        OPENSSL_cleanse(key, sizeof key);
        emptied(ev, FACTUM_EVENT_SEALED);
        return 0;
    }
    size_t plen = blen - 4 - KS_SEAL_EXTRA;
    uint8_t *out = rd_alloc(r, plen);
    if (!out || (!r->keys[slot].g && !(r->keys[slot].g = ks_gcm_new()))) {
        OPENSSL_cleanse(key, sizeof key);
        return -ENOMEM;
    }
    uint8_t aad[AAD_MAX];
    size_t alen = aad_of(ev->stream, ev->stream_len, ev->type, ev->type_len, ev->id, aad);
    /* The slot's context keeps its key's schedule: keyed once per slot fill. */
    rc = ks_unseal_with(r->keys[slot].g, rekey ? key : NULL, aad, alen, b + 4, blen - 4, out);
    if (rekey) r->keys[slot].keyed = 1;
    OPENSSL_cleanse(key, sizeof key);
    uint32_t dlen = rc ? 0 : base_get32(out);
    if (!rc && dlen > plen - 4) rc = FACTUM_ECORRUPT;
    if (rc) {
        store_log(s, FACTUM_LOG_ERROR, "sealed event at position %llu does not open under its key %u",
                  (unsigned long long)ev->position, id);
        return rc == -ENOMEM ? rc : FACTUM_ECORRUPT;
    }
    ev->data = out + 4;
    ev->data_len = dlen;
    ev->metadata = out + 4 + dlen;
    ev->metadata_len = plen - 4 - dlen;
    ev->flags = (ev->flags & ~(uint32_t)LOG_EV_SEALED) | FACTUM_EVENT_OPENED;
    return 0;
}

int store_unseal(factum_store *s, factum_event *evs, size_t n)
{
    factum_reader *r = tls_reader;
    for (size_t i = 0; i < n; i++) {
        if (!(evs[i].flags & LOG_EV_SEALED)) continue;
        int rc = open_one(s, r, &evs[i]);
        if (rc) return rc;
    }
    return 0;
}

/* ---- shredding ----------------------------------------------------------- */

static int record_shred(factum_store *s, const char *subject, size_t len, uint32_t id)
{
    base_buf b = {0};
    int rc = base_buf_append(&b, "{\"subject\":", 11);
    if (!rc) rc = json_write_string(&b, subject, len);
    if (!rc) rc = base_buf_printf(&b, ",\"keyId\":%u}", id);
    if (!rc) {
        factum_event_data d = {0};
        d.type = FACTUM_SHRED_EVENT_TYPE;
        d.flags = FACTUM_EVENT_JSON;
        d.data = b.data;
        d.data_len = b.len;
        rc = factum_append(s, FACTUM_SHREDS_STREAM, FACTUM_ANY, &d, 1, NULL);
    }
    free(b.data);
    return rc;
}

static void shredded_now(factum_store *s)
{
    atomic_fetch_add_explicit(&s->seal->gen, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&s->shred_epoch, 1, memory_order_release);
}

int factum_shred(factum_store *s, const char *subject, uint32_t *key_id)
{
    if (!s || !subject) return FACTUM_EINVAL;
    if (s->opts.read_only) return FACTUM_EREADONLY;
    size_t len = strlen(subject);
    if (!len || len > KS_MAX_SUBJECT) return FACTUM_EINVAL;
    if (!seal_enabled(s)) return FACTUM_EKEY;
    struct seal *se = s->seal;
    uint32_t id;
    pthread_mutex_lock(&se->mu);
    int rc = ks_shred(se->ks, subject, len, &id);
    pthread_mutex_unlock(&se->mu);
    if (rc) return rc;
    shredded_now(s);
    if (key_id) *key_id = id;
    store_log(s, FACTUM_LOG_INFO, "shredded data subject key %u", id);
    return record_shred(s, subject, len, id);
}

int store_shred_id(factum_store *s, uint32_t id)
{
    if (!seal_enabled(s)) return FACTUM_EKEY;
    struct seal *se = s->seal;
    pthread_mutex_lock(&se->mu);
    int rc = ks_shred_id(se->ks, id);
    pthread_mutex_unlock(&se->mu);
    if (!rc) shredded_now(s);
    return rc;
}

int factum_shred_count(factum_store *s, size_t *subjects)
{
    if (!s || !subjects) return FACTUM_EINVAL;
    if (!seal_enabled(s)) {
        *subjects = 0;
        return 0;
    }
    pthread_mutex_lock(&s->seal->mu);
    *subjects = ks_count(s->seal->ks);
    pthread_mutex_unlock(&s->seal->mu);
    return 0;
}

/* ---- the library's holders (seal.h) -------------------------------------- */

holder_bind holder_reader_enter(factum_store *s, factum_reader **r, int reset)
{
    holder_bind b = {NULL, 0};
    if (!*r && s && s->seal) *r = factum_reader_new();
    if (!*r) return b;
    if (reset) factum_reader_reset(*r);
    b.prev = factum_reader_use(*r);
    b.bound = 1;
    return b;
}

void holder_reader_leave(holder_bind b)
{
    if (b.bound) factum_reader_use(b.prev);
}
