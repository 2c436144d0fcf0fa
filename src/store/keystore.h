/*
 * keystore.h - the per-subject keys of crypto-shredding (ADR 0027, step 3):
 * each data subject's 256-bit AES key, wrapped (AES-256 key wrap with
 * padding, RFC 5649) under a master key that lives outside the data
 * directory, in one file rewritten atomically (keys/keystore); and the
 * AES-256-GCM sealing of an event's bytes under such a key.
 *
 * Design note (invariants; tests cite them as KS-n):
 *  KS-1  No key is ever written in the clear: the file holds wrapped keys
 *        only, and a check value (a wrapped block of zeros) that tells a
 *        wrong master key from a damaged file (FACTUM_EKEY, not garbage).
 *  KS-2  The file is replaced whole (temporary file, fdatasync, rename,
 *        directory fsync): after a crash it is the old set of keys or the
 *        new one, never a mix; its CRC-32C catches a damaged one
 *        (FACTUM_ECORRUPT).
 *  KS-3  A shredded subject's entry is gone from the file once ks_shred
 *        returns, and its key id is never given again (the file keeps the
 *        next id): what was sealed under it cannot be opened by any key
 *        the store will ever hold.
 *  KS-4  A sealed body is bound to its event: the GCM tag covers the
 *        additional data the caller gives (stream, type, position,
 *        version, id), so a body moved to another event does not open.
 */
#ifndef FACTUM_STORE_KEYSTORE_H
#define FACTUM_STORE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"

#define KS_KEY_LEN     32u
#define KS_NONCE_LEN   12u
#define KS_TAG_LEN     16u
#define KS_SEAL_EXTRA  (KS_NONCE_LEN + KS_TAG_LEN) /* a sealed body: nonce, ciphertext, tag */
#define KS_MAX_SUBJECT 255u

typedef struct keystore keystore;

/* Read the master key from `path` (outside the data directory): 32 raw
 * bytes, or 64 hexadecimal digits and an optional newline. The file must
 * be a regular file readable by its owner only (mode 0600 or 0400).
 * 0, or FACTUM_EKEY with *why (static) saying what is wrong. */
int ks_master_load(const char *path, uint8_t master[KS_KEY_LEN], const char **why);

/* Open (create=1: create if missing; -1: read-only, nothing is ever
 * written through it) the key file `dir`/keystore under `master`. 0; FACTUM_EKEY (the file's keys were wrapped under another
 * master key); FACTUM_ECORRUPT (damaged); -ENOENT (missing, !create);
 * -errno. */
int ks_open(io_env *io, const char *dir, const uint8_t master[KS_KEY_LEN], int create, keystore **out);
void ks_close(keystore *ks);

/* The key of `subject` (1..KS_MAX_SUBJECT bytes): its id and the key. With
 * create, a missing subject gets a new random key, written (KS-2) before
 * this returns; with create 2 written but not fdatasync'd: the caller calls
 * ks_sync before anything sealed under it is written (the writer makes
 * the new subjects of a group durable with one fdatasync). 0,
 * FACTUM_ENOTFOUND (missing, !create), -errno. */
int ks_subject_key(keystore *ks, const char *subject, size_t len, int create, uint32_t *id, uint8_t key[KS_KEY_LEN]);
/* Make the records create 2 wrote durable (nothing to do: 0). */
int ks_sync(keystore *ks);
/* The key with id `id`: 0, or FACTUM_ENOTFOUND (never made, or shredded). */
int ks_key(keystore *ks, uint32_t id, uint8_t key[KS_KEY_LEN]);
/* Shred `subject`: its entry leaves the file (KS-2, KS-3). *id (may be
 * NULL) gets the key id it had. 0, FACTUM_ENOTFOUND, -errno. */
int ks_shred(keystore *ks, const char *subject, size_t len, uint32_t *id);
/* Shred by key id (a restore re-applying `$shreds`): as ks_shred. */
int ks_shred_id(keystore *ks, uint32_t id);
/* Subjects held now. */
size_t ks_count(const keystore *ks);

/* Seal len bytes of `in` under key: out (len + KS_SEAL_EXTRA bytes) gets a
 * random nonce, the ciphertext and the tag over aad (KS-4). 0 or -EIO. */
int ks_seal(const uint8_t key[KS_KEY_LEN], const void *aad, size_t aad_len, const void *in, size_t len,
            uint8_t *out);
/* Open what ks_seal made (sealed_len >= KS_SEAL_EXTRA bytes) into out
 * (sealed_len - KS_SEAL_EXTRA bytes). 0, or FACTUM_ECORRUPT (wrong key,
 * wrong aad, or changed bytes). */
int ks_unseal(const uint8_t key[KS_KEY_LEN], const void *aad, size_t aad_len, const uint8_t *sealed,
              size_t sealed_len, uint8_t *out);

/* The same with a context of the caller's that keeps a key's schedule:
 * rekey is the key when it differs from the context's last (or the context
 * is new), NULL to use that one again. Not thread-safe: one per user. */
typedef struct ks_gcm ks_gcm;
ks_gcm *ks_gcm_new(void); /* NULL: out of memory */
void ks_gcm_free(ks_gcm *g);
int ks_seal_with(ks_gcm *g, const uint8_t *rekey, const void *aad, size_t aad_len, const void *in, size_t len,
                 uint8_t *out);
/* ks_seal_with of the bytes of in[0..n_in) one after the other, with the
 * given random nonce (KS_NONCE_LEN bytes; NULL: drawn here). A caller
 * sealing many events draws their nonces in bulk: one RAND_bytes call costs
 * more than sealing a small event. */
typedef struct ks_iov {
    const void *p;
    size_t len;
} ks_iov;
int ks_seal_iov(ks_gcm *g, const uint8_t *rekey, const uint8_t *nonce, const void *aad, size_t aad_len,
                const ks_iov *in, size_t n_in, uint8_t *out);
int ks_unseal_with(ks_gcm *g, const uint8_t *rekey, const void *aad, size_t aad_len, const uint8_t *sealed,
                   size_t sealed_len, uint8_t *out);

#endif
