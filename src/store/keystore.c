/*
 * keystore.c - per-subject keys wrapped under a master key (keystore.h,
 * KS-1..4, ADR 0027).
 *
 * The file `keystore`:
 *   header, 64 bytes: "FKEYSTR1", u32 version (1), u32 next id, the 40-byte
 *     check value (the master key's wrap of 32 zero bytes), u32 CRC-32C of
 *     bytes 0..55, 4 zero bytes;
 *   then one record per subject, appended as subjects are met: u32 record
 *     length, u32 key id, u8 subject length, the subject, the 40-byte
 *     wrapped key, u32 CRC-32C of the record's bytes before it.
 * A new subject's record is appended and fdatasync'd before its key is
 * used, so a torn last record (a crash while appending) held a key no
 * event was sealed under: it is cut when the file is opened. A shred
 * rewrites the whole file without the subject (KS-2, KS-3); the header's
 * next id keeps shredded ids from coming back.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "store/keystore.h"

#define KS_FILE     "keystore"
#define KS_MAGIC    "FKEYSTR1"
#define KS_HDR_LEN  64u
#define KS_WRAP_LEN 40u /* RFC 5649 wrap of a 32-byte key */

typedef struct ks_ent {
    uint32_t id;
    uint8_t len;
    char subject[KS_MAX_SUBJECT + 1];
    uint8_t wrapped[KS_WRAP_LEN];
    uint8_t have_key; /* key is the unwrapped one (unwrapped at first use, kept in memory only) */
    uint8_t key[KS_KEY_LEN];
} ks_ent;

/* The entry's key, unwrapped once (the master key is in memory anyway; an
 * unwrap per append or per read costs microseconds). */
static int ent_key(keystore *ks, ks_ent *e, uint8_t key[KS_KEY_LEN]);

struct keystore {
    io_env *io;
    char *dir, *path;
    uint8_t master[KS_KEY_LEN];
    int fd;
    uint64_t end; /* where the next record goes */
    int unsynced; /* records written (ks_subject_key, create 2) and not fdatasync'd yet */
    uint32_t next_id;
    ks_ent *ents;
    size_t n, cap;
    uint32_t *slots; /* open addressing: index + 1 into ents, 0 empty */
    size_t n_slots;
};

/* ---- the master key ---------------------------------------------------- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int ks_master_load(const char *path, uint8_t master[KS_KEY_LEN], const char **why)
{
    static const char *none;
    if (!why) why = &none;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = "the master key file cannot be opened";
        return FACTUM_EKEY;
    }
    uint8_t buf[80];
    ssize_t n = -1;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        *why = "the master key file is not a regular file";
        rc = FACTUM_EKEY;
    } else if (st.st_mode & 077) {
        *why = "the master key file may be read by others than its owner (chmod 600 it)";
        rc = FACTUM_EKEY;
    } else {
        n = read(fd, buf, sizeof buf);
    }
    close(fd);
    if (rc) return rc;
    if (n == KS_KEY_LEN) {
        memcpy(master, buf, KS_KEY_LEN);
        OPENSSL_cleanse(buf, sizeof buf);
        return 0;
    }
    if (n == 2 * KS_KEY_LEN || (n == 2 * KS_KEY_LEN + 1 && buf[2 * KS_KEY_LEN] == '\n')) {
        for (unsigned i = 0; i < KS_KEY_LEN; i++) {
            int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = FACTUM_EKEY;
                break;
            }
            master[i] = (uint8_t)(hi << 4 | lo);
        }
        OPENSSL_cleanse(buf, sizeof buf);
        if (!rc) return 0;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    *why = "the master key file holds neither 32 bytes nor 64 hexadecimal digits";
    return FACTUM_EKEY;
}

/* ---- wrapping (RFC 5649) ------------------------------------------------ */

static int kw(const uint8_t master[KS_KEY_LEN], int wrap, const uint8_t *in, int in_len, uint8_t *out, int *out_len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return -ENOMEM;
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    int n = 0, m = 0, ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap_pad(), NULL, master, NULL, wrap) == 1 &&
                          EVP_CipherUpdate(c, out, &n, in, in_len) == 1 && EVP_CipherFinal_ex(c, out + n, &m) == 1;
    EVP_CIPHER_CTX_free(c);
    *out_len = n + m;
    return ok ? 0 : FACTUM_EKEY;
}

static int wrap_key(const uint8_t master[KS_KEY_LEN], const uint8_t key[KS_KEY_LEN], uint8_t out[KS_WRAP_LEN])
{
    int n;
    int rc = kw(master, 1, key, KS_KEY_LEN, out, &n);
    return rc ? rc : n == KS_WRAP_LEN ? 0 : -EIO;
}

static int unwrap_key(const uint8_t master[KS_KEY_LEN], const uint8_t in[KS_WRAP_LEN], uint8_t key[KS_KEY_LEN])
{
    uint8_t out[KS_WRAP_LEN + 16];
    int n;
    int rc = kw(master, 0, in, KS_WRAP_LEN, out, &n);
    if (!rc && n != KS_KEY_LEN) rc = FACTUM_EKEY;
    if (!rc) memcpy(key, out, KS_KEY_LEN);
    OPENSSL_cleanse(out, sizeof out);
    return rc;
}

/* ---- the map ------------------------------------------------------------ */

static uint64_t hash_subject(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int map_build(keystore *ks)
{
    size_t want = 16;
    while (want < ks->n * 2 + 2) want *= 2;
    uint32_t *slots = calloc(want, sizeof *slots);
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < ks->n; i++) {
        size_t j = hash_subject(ks->ents[i].subject, ks->ents[i].len) & (want - 1);
        while (slots[j]) j = (j + 1) & (want - 1);
        slots[j] = (uint32_t)(i + 1);
    }
    free(ks->slots);
    ks->slots = slots;
    ks->n_slots = want;
    return 0;
}

static ks_ent *find(keystore *ks, const char *s, size_t n)
{
    if (!ks->n_slots) return NULL;
    for (size_t j = hash_subject(s, n) & (ks->n_slots - 1); ks->slots[j]; j = (j + 1) & (ks->n_slots - 1)) {
        ks_ent *e = &ks->ents[ks->slots[j] - 1];
        if (e->len == n && !memcmp(e->subject, s, n)) return e;
    }
    return NULL;
}

static int add_ent(keystore *ks, uint32_t id, const char *s, size_t n, const uint8_t wrapped[KS_WRAP_LEN])
{
    if (ks->n == ks->cap) {
        size_t nc = ks->cap ? ks->cap * 2 : 64;
        ks_ent *e = malloc(nc * sizeof *e); /* not realloc: the old block held keys, wiped before it goes */
        if (!e) return -ENOMEM;
        if (ks->n) memcpy(e, ks->ents, ks->n * sizeof *e);
        if (ks->ents) OPENSSL_cleanse(ks->ents, ks->cap * sizeof *ks->ents);
        free(ks->ents);
        ks->ents = e;
        ks->cap = nc;
    }
    ks_ent *e = &ks->ents[ks->n++];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->len = (uint8_t)n;
    memcpy(e->subject, s, n);
    memcpy(e->wrapped, wrapped, KS_WRAP_LEN);
    if (id >= ks->next_id) ks->next_id = id + 1;
    if (ks->n * 2 + 2 > ks->n_slots) return map_build(ks); /* it holds the new one too */
    size_t j = hash_subject(e->subject, e->len) & (ks->n_slots - 1);
    while (ks->slots[j]) j = (j + 1) & (ks->n_slots - 1);
    ks->slots[j] = (uint32_t)ks->n;
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

static void encode_header(const keystore *ks, uint8_t h[KS_HDR_LEN], const uint8_t check[KS_WRAP_LEN])
{
    memset(h, 0, KS_HDR_LEN);
    memcpy(h, KS_MAGIC, 8);
    base_put32(h + 8, 1);
    base_put32(h + 12, ks->next_id);
    memcpy(h + 16, check, KS_WRAP_LEN);
    base_put32(h + 56, base_crc32c(0, h, 56));
}

static size_t record_len(size_t subject_len)
{
    return 4 + 4 + 1 + subject_len + KS_WRAP_LEN + 4;
}

static size_t encode_record(const ks_ent *e, uint8_t *p)
{
    size_t n = record_len(e->len);
    base_put32(p, (uint32_t)n);
    base_put32(p + 4, e->id);
    p[8] = e->len;
    memcpy(p + 9, e->subject, e->len);
    memcpy(p + 9 + e->len, e->wrapped, KS_WRAP_LEN);
    base_put32(p + n - 4, base_crc32c(0, p, n - 4));
    return n;
}

/* The whole file from memory, written atomically (KS-2), then opened for
 * appending. */
static int rewrite(keystore *ks)
{
    uint8_t check[KS_WRAP_LEN], zero[KS_KEY_LEN] = {0};
    int rc = wrap_key(ks->master, zero, check);
    if (rc) return rc;
    size_t len = KS_HDR_LEN;
    for (size_t i = 0; i < ks->n; i++) len += record_len(ks->ents[i].len);
    uint8_t *buf = malloc(len);
    if (!buf) return -ENOMEM;
    encode_header(ks, buf, check);
    size_t at = KS_HDR_LEN;
    for (size_t i = 0; i < ks->n; i++) at += encode_record(&ks->ents[i], buf + at);
    if (ks->fd >= 0) {
        ks->io->close(ks->io, ks->fd);
        ks->fd = -1;
    }
    rc = io_write_file_atomic(ks->io, ks->dir, KS_FILE, buf, len);
    free(buf);
    if (rc) return rc;
    ks->end = len;
    ks->fd = ks->io->open(ks->io, ks->path, O_RDWR, 0);
    return ks->fd < 0 ? ks->fd : 0;
}

/* Parse the file's bytes; a torn tail is cut (*cut: where the valid
 * records end, < len if there was one). */
static int parse(keystore *ks, const uint8_t *b, size_t len, uint64_t *valid_end)
{
    if (len < KS_HDR_LEN || memcmp(b, KS_MAGIC, 8) || base_get32(b + 8) != 1 ||
        base_crc32c(0, b, 56) != base_get32(b + 56))
        return FACTUM_ECORRUPT;
    uint8_t zero[KS_KEY_LEN];
    if (unwrap_key(ks->master, b + 16, zero)) return FACTUM_EKEY; /* KS-1: another master key */
    for (unsigned i = 0; i < KS_KEY_LEN; i++)
        if (zero[i]) return FACTUM_EKEY;
    ks->next_id = base_get32(b + 12);
    size_t at = KS_HDR_LEN;
    while (at + 4 <= len) {
        size_t n = base_get32(b + at);
        if (n < record_len(1) || n > record_len(KS_MAX_SUBJECT) || at + n > len ||
            base_crc32c(0, b + at, n - 4) != base_get32(b + at + n - 4) || b[at + 8] == 0 ||
            record_len(b[at + 8]) != n)
            break; /* a torn last record */
        uint32_t id = base_get32(b + at + 4);
        const char *s = (const char *)b + at + 9;
        size_t sl = b[at + 8];
        if (find(ks, s, sl) || (ks->n && id <= ks->ents[ks->n - 1].id))
            return FACTUM_ECORRUPT; /* never written twice, ids rising */
        int rc = add_ent(ks, id, s, sl, b + at + 9 + sl);
        if (rc) return rc;
        at += n;
    }
    *valid_end = at;
    return 0;
}

int ks_open(io_env *io, const char *dir, const uint8_t master[KS_KEY_LEN], int create, keystore **out)
{
    keystore *ks = calloc(1, sizeof *ks);
    if (!ks) return -ENOMEM;
    ks->io = io;
    ks->fd = -1;
    ks->next_id = 1;
    memcpy(ks->master, master, KS_KEY_LEN);
    size_t pl = strlen(dir) + sizeof KS_FILE + 2;
    int rc = 0;
    if (!(ks->dir = strdup(dir)) || !(ks->path = malloc(pl))) rc = -ENOMEM;
    if (!rc) snprintf(ks->path, pl, "%s/" KS_FILE, dir);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!rc) rc = io_read_file(io, ks->path, (size_t)64 << 20, &buf, &len);
    if (rc == -ENOENT && create > 0) {
        if (!(rc = io_ensure_dir(io, dir))) rc = rewrite(ks);
    } else if (!rc) {
        uint64_t valid = 0;
        rc = parse(ks, buf, len, &valid);
        ks->end = valid;
        if (create < 0) {
            /* read-only: nothing is written, a torn tail is left to the next writer */
        } else if (!rc && (ks->fd = io->open(io, ks->path, O_RDWR, 0)) < 0) {
            rc = ks->fd;
        } else if (!rc && valid < len) { /* a torn last record: cut it */
            rc = io->ftruncate(io, ks->fd, (off_t)valid);
            if (!rc) rc = io->fdatasync(io, ks->fd);
        }
    }
    free(buf);
    if (rc) {
        ks_close(ks);
        return rc;
    }
    *out = ks;
    return 0;
}

void ks_close(keystore *ks)
{
    if (!ks) return;
    if (ks->fd >= 0) ks->io->close(ks->io, ks->fd);
    OPENSSL_cleanse(ks->master, sizeof ks->master);
    if (ks->ents) OPENSSL_cleanse(ks->ents, ks->cap * sizeof *ks->ents);
    free(ks->ents);
    free(ks->slots);
    free(ks->dir);
    free(ks->path);
    free(ks);
}

size_t ks_count(const keystore *ks)
{
    return ks->n;
}

int ks_subject_key(keystore *ks, const char *subject, size_t len, int create, uint32_t *id, uint8_t key[KS_KEY_LEN])
{
    if (!len || len > KS_MAX_SUBJECT) return FACTUM_EINVAL;
    ks_ent *e = find(ks, subject, len);
    if (e) {
        *id = e->id;
        return ent_key(ks, e, key);
    }
    if (!create) return FACTUM_ENOTFOUND;
    uint8_t fresh[KS_KEY_LEN], wrapped[KS_WRAP_LEN];
    if (RAND_priv_bytes(fresh, sizeof fresh) != 1) return -EIO;
    int rc = wrap_key(ks->master, fresh, wrapped);
    ks_ent rec;
    memset(&rec, 0, sizeof rec);
    rec.id = ks->next_id;
    rec.len = (uint8_t)len;
    memcpy(rec.subject, subject, len);
    memcpy(rec.wrapped, wrapped, KS_WRAP_LEN);
    uint8_t buf[4 + 4 + 1 + KS_MAX_SUBJECT + KS_WRAP_LEN + 4];
    size_t n = encode_record(&rec, buf);
    /* Durable before the key seals anything (create 2: before anything it
     * sealed is written, by the caller's ks_sync). */
    if (!rc) rc = io_write_full(ks->io, ks->fd, buf, n, (off_t)ks->end);
    if (!rc && create != 2) rc = ks->io->fdatasync(ks->io, ks->fd);
    if (!rc && create == 2) ks->unsynced = 1;
    if (!rc) rc = add_ent(ks, rec.id, subject, len, wrapped);
    if (!rc) {
        ks_ent *made = find(ks, subject, len);
        if (made) {
            memcpy(made->key, fresh, KS_KEY_LEN);
            made->have_key = 1;
        }
    }
    if (rc) {
        OPENSSL_cleanse(fresh, sizeof fresh);
        return rc;
    }
    ks->end += n;
    *id = rec.id;
    memcpy(key, fresh, KS_KEY_LEN);
    OPENSSL_cleanse(fresh, sizeof fresh);
    return 0;
}

static int ent_key(keystore *ks, ks_ent *e, uint8_t key[KS_KEY_LEN])
{
    if (!e->have_key) {
        int rc = unwrap_key(ks->master, e->wrapped, e->key);
        if (rc) return rc;
        e->have_key = 1;
    }
    memcpy(key, e->key, KS_KEY_LEN);
    return 0;
}

int ks_sync(keystore *ks)
{
    if (!ks->unsynced) return 0;
    int rc = ks->io->fdatasync(ks->io, ks->fd);
    if (!rc) ks->unsynced = 0;
    return rc;
}

int ks_key(keystore *ks, uint32_t id, uint8_t key[KS_KEY_LEN])
{
    /* Entries are in the order of their ids (records are appended with
     * rising ids; parse checks it). */
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ks->ents[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    if (lo < ks->n && ks->ents[lo].id == id) return ent_key(ks, &ks->ents[lo], key);
    return FACTUM_ENOTFOUND;
}

int ks_shred(keystore *ks, const char *subject, size_t len, uint32_t *id)
{
    ks_ent *e = len && len <= KS_MAX_SUBJECT ? find(ks, subject, len) : NULL;
    if (!e) return FACTUM_ENOTFOUND;
    size_t i = (size_t)(e - ks->ents);
    uint32_t gone = e->id;
    ks_ent saved = *e;
    memmove(&ks->ents[i], &ks->ents[i + 1], (ks->n - i - 1) * sizeof *ks->ents);
    ks->n--;
    OPENSSL_cleanse(&ks->ents[ks->n], sizeof *ks->ents); /* the vacated slot held the last entry's copy */
    int rc = rewrite(ks); /* KS-2, KS-3: next_id stays past the shredded id */
    if (!rc) rc = map_build(ks);
    if (rc) { /* not shredded: put it back */
        memmove(&ks->ents[i + 1], &ks->ents[i], (ks->n - i) * sizeof *ks->ents);
        ks->ents[i] = saved;
        ks->n++;
        map_build(ks);
        OPENSSL_cleanse(&saved, sizeof saved);
        return rc;
    }
    OPENSSL_cleanse(&saved, sizeof saved);
    if (id) *id = gone;
    return 0;
}

int ks_shred_id(keystore *ks, uint32_t id)
{
    for (size_t i = 0; i < ks->n; i++) {
        if (ks->ents[i].id != id) continue;
        char subject[KS_MAX_SUBJECT];
        size_t len = ks->ents[i].len;
        memcpy(subject, ks->ents[i].subject, len);
        int rc = ks_shred(ks, subject, len, NULL);
        OPENSSL_cleanse(subject, sizeof subject);
        return rc;
    }
    return FACTUM_ENOTFOUND;
}

/* ---- sealing (AES-256-GCM) ---------------------------------------------- */

/* A context keeps a key's schedule: set once per key (rekey), then only the
 * nonce changes per event (the cost of a small event is then the cipher
 * itself, not the context's setup). */
ks_gcm *ks_gcm_new(void)
{
    return (ks_gcm *)EVP_CIPHER_CTX_new();
}

void ks_gcm_free(ks_gcm *g)
{
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)g);
}

int ks_seal_iov(ks_gcm *g, const uint8_t *rekey, const uint8_t *nonce, const void *aad, size_t aad_len,
                const ks_iov *in, size_t n_in, uint8_t *out)
{
    EVP_CIPHER_CTX *c = (EVP_CIPHER_CTX *)g;
    size_t len = 0;
    for (size_t i = 0; i < n_in; i++)
        len += in[i].len;
    if (len > INT32_MAX || aad_len > INT32_MAX) return FACTUM_EINVAL;
    if (nonce)
        memcpy(out, nonce, KS_NONCE_LEN);
    else if (RAND_bytes(out, KS_NONCE_LEN) != 1)
        return -EIO;
    int n = 0, m = 0;
    int ok = EVP_EncryptInit_ex(c, rekey ? EVP_aes_256_gcm() : NULL, NULL, rekey, out) == 1 &&
             (!aad_len || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1);
    uint8_t *p = out + KS_NONCE_LEN;
    for (size_t i = 0; ok && i < n_in; i++) {
        if (!in[i].len) continue;
        ok = EVP_EncryptUpdate(c, p, &n, in[i].p, (int)in[i].len) == 1;
        p += n;
    }
    ok = ok && EVP_EncryptFinal_ex(c, p, &m) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, KS_TAG_LEN, out + KS_NONCE_LEN + len) == 1;
    return ok ? 0 : -EIO;
}

int ks_seal_with(ks_gcm *g, const uint8_t *rekey, const void *aad, size_t aad_len, const void *in, size_t len,
                 uint8_t *out)
{
    ks_iov v = {in, len};
    return ks_seal_iov(g, rekey, NULL, aad, aad_len, &v, 1, out);
}

int ks_unseal_with(ks_gcm *g, const uint8_t *rekey, const void *aad, size_t aad_len, const uint8_t *sealed,
                   size_t sealed_len, uint8_t *out)
{
    EVP_CIPHER_CTX *c = (EVP_CIPHER_CTX *)g;
    if (sealed_len < KS_SEAL_EXTRA || sealed_len > INT32_MAX || aad_len > INT32_MAX) return FACTUM_ECORRUPT;
    size_t len = sealed_len - KS_SEAL_EXTRA;
    int n = 0, m = 0;
    uint8_t tag[KS_TAG_LEN];
    memcpy(tag, sealed + KS_NONCE_LEN + len, KS_TAG_LEN);
    int ok = EVP_DecryptInit_ex(c, rekey ? EVP_aes_256_gcm() : NULL, NULL, rekey, sealed) == 1 &&
             (!aad_len || EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
             (!len || EVP_DecryptUpdate(c, out, &n, sealed + KS_NONCE_LEN, (int)len) == 1) &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, KS_TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(c, out + (len ? n : 0), &m) == 1;
    if (!ok && len) OPENSSL_cleanse(out, len);
    return ok ? 0 : FACTUM_ECORRUPT;
}

int ks_seal(const uint8_t key[KS_KEY_LEN], const void *aad, size_t aad_len, const void *in, size_t len, uint8_t *out)
{
    ks_gcm *g = ks_gcm_new();
    if (!g) return -ENOMEM;
    int rc = ks_seal_with(g, key, aad, aad_len, in, len, out);
    ks_gcm_free(g);
    return rc;
}

int ks_unseal(const uint8_t key[KS_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *sealed, size_t sealed_len,
              uint8_t *out)
{
    ks_gcm *g = ks_gcm_new();
    if (!g) return -ENOMEM;
    int rc = ks_unseal_with(g, key, aad, aad_len, sealed, sealed_len, out);
    ks_gcm_free(g);
    return rc;
}
