/*
 * account.h - the bank account of the brief as a decider (factum_app.h):
 * its events (AccountOpened, MoneyDeposited, MoneyWithdrawn), its state,
 * its commands and the no-overdraft invariant. Used by the command line
 * (main.c), the tests (tests/unit/app_decider.c, tests/prop/app_bank.c)
 * and the benchmark (bench/app.c).
 *
 * Event data (JSON):
 *   AccountOpened   {"owner": "Alice"}
 *   MoneyDeposited  {"amount": 100, "currency": "EUR"}   (integer cents;
 *                   metadata {"$schemaVersion": 2})
 *   MoneyWithdrawn  {"amount": 40}
 * A deposit or withdrawal recorded late carries when it happened in its
 * metadata ("$validFrom", docs/temporal.md), so that "the balance on
 * March 15" can be asked as known then or as known now.
 * MoneyDeposited had another shape before (version 1, no $schemaVersion):
 * {"value": 100}. Such events are still in the log; the store upcasts them
 * to version 2 when they are read (BANK_DEPOSIT_UPCASTER, registered by
 * bank_register_upcaster; docs/upcasting.md), so evolve and the read model
 * only know version 2.
 * Stream: "account-<id>". Snapshot type "AccountSnapshot", data
 * {"owner": "...", "balance": N, "opened": 1}.
 */
#ifndef BANK_ACCOUNT_H
#define BANK_ACCOUNT_H

#include <stdint.h>

#include "factum_app.h"

/* Domain errors: positive codes decide returns (factum_app.h). */
enum {
    BANK_ENOTOPEN = 1,      /* the account was never opened */
    BANK_EOPEN = 2,         /* it is open already */
    BANK_EINSUFFICIENT = 3, /* the withdrawal would overdraw it */
    BANK_EAMOUNT = 4,       /* amount <= 0 or too large */
    BANK_EOWNER = 5,        /* owner empty, too long, or not [A-Za-z0-9 ._-] */
    BANK_EVALIDFROM = 6,    /* valid_from is not an RFC 3339 time or a date */
};
const char *bank_strerror(int code); /* a domain code or a factum code */

typedef struct bank_state {
    int opened;
    char owner[64];
    int64_t balance;
} bank_state;

enum { BANK_OPEN = 0, BANK_DEPOSIT = 1, BANK_WITHDRAW = 2 };
typedef struct bank_command {
    int kind;
    int64_t amount;    /* deposit, withdraw */
    const char *owner; /* open */
    /* deposit, withdraw: when it happened, if earlier than now (an RFC 3339
     * time or a date): the event's "$validFrom" (docs/temporal.md); NULL:
     * now, its commit time. */
    const char *valid_from;
} bank_command;

/* Fill a decider definition for the account (snapshot every
 * `snapshot_every` events; 0: none). */
void bank_decider_def(factum_decider_def *def, uint32_t snapshot_every);

/* The upcaster of MoneyDeposited 1 -> 2 (an upcaster document). */
#define BANK_DEPOSIT_UPCASTER                                                                               \
    "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,"                                \
    "\"description\":\"value became amount; currency added\","                                              \
    "\"steps\":[{\"op\":\"rename\",\"from\":\"value\",\"to\":\"amount\"},"                                    \
    "{\"op\":\"default\",\"path\":\"currency\",\"value\":\"EUR\"}]}"

/* Register BANK_DEPOSIT_UPCASTER in the store unless it is registered
 * already. Returns 0 or a factum error. */
int bank_register_upcaster(factum_store *s);

/* Largest amount one command may move (keeps sums far from overflow). */
#define BANK_MAX_AMOUNT 1000000000000LL

#endif
