/*
 * chain.h - receipts of the hash chain's head, shared by `factum chain`
 * (cmd_chain.c) and `factum verify --chain --receipt` (cmd_admin.c).
 */
#ifndef FACTUM_CLI_CHAIN_H
#define FACTUM_CLI_CHAIN_H

#include "base/json.h"
#include "cli/cli.h"

/* The text a receipt's signature covers. Returns its length. */
int chain_receipt_message(const factum_chain_head *h, const char *signed_at, char *buf, size_t cap);
/* A head's members (store, position, hash) from a JSON object; -1 and why. */
int chain_head_from_json(const json_value *v, factum_chain_head *h, char *why, size_t why_len);
/* Read the receipt in file, check its signature (and, with public_key, that
 * it was made with that key) and give its head. Prints why not. */
int chain_read_receipt(cli_ctx *c, const char *file, const char *public_key, factum_chain_head *h);

#endif
