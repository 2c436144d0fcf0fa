/*
 * account.h - the bank account of the brief as a decider (factum_app.h):
 * its events (AccountOpened, MoneyDeposited, MoneyWithdrawn), its state,
 * its commands and the no-overdraft invariant. Used by the command line
 * (main.c), the tests (tests/unit/app_decider.c, tests/prop/app_bank.c)
 * and the benchmark (bench/app.c).
 *
 * Event data (JSON):
 *   AccountOpened   {"owner": "Alice"}
 *   MoneyDeposited  {"amount": 100}        (integer cents)
 *   MoneyWithdrawn  {"amount": 40}
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
} bank_command;

/* Fill a decider definition for the account (snapshot every
 * `snapshot_every` events; 0: none). */
void bank_decider_def(factum_decider_def *def, uint32_t snapshot_every);

/* Largest amount one command may move (keeps sums far from overflow). */
#define BANK_MAX_AMOUNT 1000000000000LL

#endif
