/*
 * cmd_chain.c - `factum chain`: the hash chain's head (ADR 0025) exported,
 * and signed with an Ed25519 key so that it can be kept elsewhere as a
 * receipt; `factum verify --chain --receipt` (cmd_admin.c) checks a store
 * against one.
 *
 *   head     the head of the store in --data, as JSON (a running factumd
 *            gives the same on GET /admin/chain)
 *   keygen   a new Ed25519 key pair: PREFIX.key (PKCS#8 PEM, mode 0600)
 *            and PREFIX.pub (the public key, PEM)
 *   sign     a head (a file, stdin, or --data's own) signed into a receipt
 *
 * A receipt is one JSON object: the head's store, position and hash, the
 * time it was signed (signedAt), the algorithm, the public key and the
 * signature (both base64) over the text chain_receipt_message() builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "cli/chain.h"
#include "cli/cli.h"

#define RECEIPT_MAX 4096

static const char chain_help[] =
    "usage: factum chain head [--json]\n"
    "       factum chain keygen --out PREFIX\n"
    "       factum chain sign --key PREFIX.key [FILE]\n"
    "\n"
    "The hash chain: every committed batch carries a SHA-256 hash over the previous batch's hash and its "
    "own\n"
    "events, so the last hash (the head) stands for the whole log up to its position. Keep a signed head\n"
    "somewhere else (a receipt); 'factum verify --chain --receipt FILE' later proves that the log still "
    "holds\n"
    "exactly what it held then.\n"
    "\n"
    "  head     print the head of the store in --data: {\"store\", \"position\", \"hash\"}. A running "
    "factumd\n"
    "           gives the same on GET /admin/chain (operations or admin users).\n"
    "  keygen   write a new Ed25519 key pair: PREFIX.key (the private key, PEM, mode 0600) and PREFIX.pub\n"
    "  sign     sign a head into a receipt: the head JSON in FILE (- for stdin), or without FILE the head\n"
    "           of the store in --data; prints the receipt (the head, signedAt, algorithm, publicKey,\n"
    "           signature)\n"
    "\n"
    "  --json   head: the same JSON object (the default output is also JSON; kept for symmetry)\n"
    "  --out P  keygen: the files' prefix\n"
    "  --key F  sign: the private key\n";

static const cli_opt chain_opts[] = {{"json", 0}, {"out", CLI_ARG}, {"key", CLI_ARG}};

int chain_receipt_message(const factum_chain_head *h, const char *signed_at, char *buf, size_t cap)
{
    char uuid[40], hex[2 * FACTUM_HASH_LEN + 1];
    factum_uuid_format(h->store_uuid, uuid);
    base_hex_encode(h->hash, FACTUM_HASH_LEN, hex);
    return snprintf(buf, cap, "factum chain head v1\nstore %s\nposition %" PRIu64 "\nhash %s\nsigned %s\n",
                    uuid, h->position, hex, signed_at);
}

int chain_head_from_json(const json_value *v, factum_chain_head *h, char *why, size_t why_len)
{
    const json_value *store = json_get(v, "store"), *pos = json_get(v, "position"),
                     *hash = json_get(v, "hash");
    int64_t p;
    memset(h, 0, sizeof *h);
    if (!v || v->type != JSON_OBJECT || !store || store->type != JSON_STRING || !pos || json_int64(pos, &p) ||
        p < 0 || !hash || hash->type != JSON_STRING) {
        snprintf(why, why_len, "not a chain head: it needs \"store\", \"position\" and \"hash\"");
        return -1;
    }
    if (factum_uuid_parse(store->str, store->len, h->store_uuid)) {
        snprintf(why, why_len, "\"store\" is not a uuid");
        return -1;
    }
    if (base_hex_decode(hash->str, hash->len, h->hash, FACTUM_HASH_LEN)) {
        snprintf(why, why_len, "\"hash\" is not 64 lower-case hex digits");
        return -1;
    }
    h->position = (uint64_t)p;
    return 0;
}

static int head_of_dir(cli_ctx *c, factum_chain_head *h)
{
    int code = cli_local_only(c, "the head of a running factumd is on its GET /admin/chain");
    if (!code) code = cli_need_dir(c);
    if (code) return code;
    c->locked_hint = "if a factumd runs on it, its head is on GET /admin/chain";
    int rc = factum_chain_head_offline(c->data_dir, h);
    return rc ? cli_open_error(c, rc, 0) : CLI_OK;
}

static int cmd_head(cli_ctx *c)
{
    factum_chain_head h;
    int code = head_of_dir(c, &h);
    if (code) return code;
    char buf[FACTUM_CHAIN_JSON_MAX];
    factum_chain_head_json(&h, buf, sizeof buf);
    printf("%s\n", buf);
    return CLI_OK;
}

static int write_pem(cli_ctx *c, const char *path, mode_t mode, EVP_PKEY *k, int private_key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        cli_msg(c, "cannot create '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && (private_key ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
                               : PEM_write_PUBKEY(f, k)) == 1;
    if (f ? fclose(f) : close(fd)) ok = 0;
    if (!ok) {
        cli_msg(c, "cannot write '%s'", path);
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int cmd_keygen(cli_ctx *c, const char *prefix)
{
    if (!prefix || !*prefix) return cli_usage(c, "keygen needs --out PREFIX");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k) {
        cli_msg(c, "cannot make an Ed25519 key");
        return CLI_FAIL;
    }
    char kp[4096], pp[4096];
    snprintf(kp, sizeof kp, "%s.key", prefix);
    snprintf(pp, sizeof pp, "%s.pub", prefix);
    int code = write_pem(c, kp, 0600, k, 1);
    if (!code) code = write_pem(c, pp, 0644, k, 0);
    EVP_PKEY_free(k);
    if (!code) printf("wrote %s (keep it private) and %s\n", kp, pp);
    return code;
}

static EVP_PKEY *read_private_key(cli_ctx *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_msg(c, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        cli_msg(c, "'%s' is not an Ed25519 private key in PEM", path);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

static int cmd_sign(cli_ctx *c, const char *key_path, const char *file)
{
    if (!key_path) return cli_usage(c, "sign needs --key FILE (from 'factum chain keygen')");
    factum_chain_head h;
    int code = CLI_OK;
    if (file) {
        base_buf b = {0};
        if ((code = cli_read_file(c, file, RECEIPT_MAX, &b))) return code;
        json_value *v = NULL;
        char why[160];
        if (json_parse((const char *)b.data, b.len, &v) || chain_head_from_json(v, &h, why, sizeof why)) {
            if (!v) snprintf(why, sizeof why, "not JSON");
            code = cli_usage(c, "'%s': %s", file, why);
        }
        json_free(v);
        base_buf_free(&b);
    } else {
        code = head_of_dir(c, &h);
    }
    if (code) return code;
    EVP_PKEY *k = read_private_key(c, key_path);
    if (!k) return CLI_FAIL;
    char at[32], msg[512];
    cli_format_time((int64_t)time(NULL) * 1000000000, at);
    int mlen = chain_receipt_message(&h, at, msg, sizeof msg);
    uint8_t sig[64], pub[32];
    size_t slen = sizeof sig, plen = sizeof pub;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(m, sig, &slen, (const uint8_t *)msg, (size_t)mlen) == 1 &&
             EVP_PKEY_get_raw_public_key(k, pub, &plen) == 1;
    EVP_MD_CTX_free(m);
    EVP_PKEY_free(k);
    if (!ok) {
        cli_msg(c, "signing failed");
        return CLI_FAIL;
    }
    char head[FACTUM_CHAIN_JSON_MAX];
    int hl = factum_chain_head_json(&h, head, sizeof head);
    base_buf out = {0};
    int rc = base_buf_append(&out, head, (size_t)hl - 1); /* without the closing brace */
    if (!rc)
        rc = base_buf_printf(&out, ",\"signedAt\":\"%s\",\"algorithm\":\"Ed25519\",\"publicKey\":\"", at);
    if (!rc) rc = cli_base64_encode(&out, pub, plen);
    if (!rc) rc = base_buf_append(&out, "\",\"signature\":\"", 15);
    if (!rc) rc = cli_base64_encode(&out, sig, slen);
    if (!rc) rc = base_buf_append(&out, "\"}\n", 3);
    if (!rc) fwrite(out.data, 1, out.len, stdout);
    base_buf_free(&out);
    if (rc) cli_msg(c, "out of memory");
    return rc ? CLI_FAIL : CLI_OK;
}

/* Does the public key in PEM at path equal raw (32 bytes)? */
static int same_public_key(cli_ctx *c, const char *path, const uint8_t *raw)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_msg(c, "cannot read '%s': %s", path, strerror(errno));
        return 0;
    }
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    uint8_t pub[32];
    size_t plen = sizeof pub;
    int same = k && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 &&
               EVP_PKEY_get_raw_public_key(k, pub, &plen) == 1 && plen == 32 && !memcmp(pub, raw, 32);
    EVP_PKEY_free(k);
    if (!k) cli_msg(c, "'%s' is not an Ed25519 public key in PEM", path);
    return same;
}

int chain_read_receipt(cli_ctx *c, const char *file, const char *public_key, factum_chain_head *h)
{
    base_buf b = {0};
    int code = cli_read_file(c, file, RECEIPT_MAX, &b);
    if (code) return code;
    json_value *v = NULL;
    char why[200] = "";
    if (json_parse((const char *)b.data, b.len, &v)) snprintf(why, sizeof why, "not JSON");
    const json_value *at = v ? json_get(v, "signedAt") : NULL, *alg = v ? json_get(v, "algorithm") : NULL,
                     *pk = v ? json_get(v, "publicKey") : NULL, *sg = v ? json_get(v, "signature") : NULL;
    base_buf pub = {0}, sig = {0};
    if (!why[0] && chain_head_from_json(v, h, why, sizeof why)) {
    } else if (!why[0] && (!at || at->type != JSON_STRING || at->len > 40 || !alg ||
                           alg->type != JSON_STRING || strcmp(alg->str, "Ed25519") || !pk ||
                           pk->type != JSON_STRING || !sg || sg->type != JSON_STRING)) {
        snprintf(why, sizeof why,
                 "not a receipt: it needs signedAt, algorithm \"Ed25519\", publicKey and signature");
    } else if (!why[0] && (cli_base64_decode(pk->str, pk->len, &pub) || pub.len != 32 ||
                           cli_base64_decode(sg->str, sg->len, &sig) || sig.len != 64)) {
        snprintf(why, sizeof why, "the receipt's publicKey or signature is not base64 of the right length");
    }
    if (why[0]) {
        code = cli_usage(c, "'%s': %s", file, why);
    } else {
        char msg[512];
        int mlen = chain_receipt_message(h, at->str, msg, sizeof msg);
        EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub.data, 32);
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        int ok = k && m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, k) == 1 &&
                 EVP_DigestVerify(m, sig.data, 64, (const uint8_t *)msg, (size_t)mlen) == 1;
        EVP_MD_CTX_free(m);
        EVP_PKEY_free(k);
        if (!ok) {
            cli_msg(c, "'%s': the receipt's signature does not verify: it was changed after signing", file);
            code = CLI_FAIL;
        } else if (public_key && !same_public_key(c, public_key, pub.data)) {
            cli_msg(c, "'%s' was not signed with the key of '%s'", file, public_key);
            code = CLI_FAIL;
        }
    }
    base_buf_free(&pub);
    base_buf_free(&sig);
    json_free(v);
    base_buf_free(&b);
    return code;
}

int cli_cmd_chain(cli_ctx *c, int argc, char **argv)
{
    cli_args a;
    int code = cli_parse(c, argc, argv, chain_opts, sizeof chain_opts / sizeof chain_opts[0], &a);
    if (code) return code;
    if (a.help || a.n_pos == 0) {
        code = a.help ? cli_help(chain_help)
                      : cli_usage(c, "which: head, keygen or sign? (factum chain --help)");
        goto out;
    }
    const char *sub = a.pos[0];
    if (!strcmp(sub, "head")) {
        if (!(code = cli_want_pos(c, &a, 1, 1, "head"))) code = cmd_head(c);
    } else if (!strcmp(sub, "keygen")) {
        if (!(code = cli_want_pos(c, &a, 1, 1, "keygen"))) code = cmd_keygen(c, cli_get(&a, "out"));
    } else if (!strcmp(sub, "sign")) {
        if (!(code = cli_want_pos(c, &a, 1, 2, "sign [FILE]")))
            code = cmd_sign(c, cli_get(&a, "key"), a.n_pos > 1 ? a.pos[1] : NULL);
    } else {
        code = cli_usage(c, "unknown subcommand '%s' (head, keygen or sign)", sub);
    }
out:
    cli_args_free(&a);
    return cli_finish_output(c, code);
}
