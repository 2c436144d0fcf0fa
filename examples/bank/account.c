/*
 * account.c - the bank account's decider: initial state, evolve, decide,
 * and the snapshot codec. Pure functions of their inputs; the toolkit
 * (factum_decider_handle) does the loading, appending and retrying, so the
 * no-overdraft rule below holds however many writers withdraw at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"

const char *bank_strerror(int code)
{
    switch (code) {
    case BANK_ENOTOPEN:
        return "the account is not open";
    case BANK_EOPEN:
        return "the account is open already";
    case BANK_EINSUFFICIENT:
        return "insufficient funds: the account may not be overdrawn";
    case BANK_EAMOUNT:
        return "the amount must be a whole number of cents, > 0 and <= 10^12";
    case BANK_EOWNER:
        return "the owner must be 1 to 63 characters of letters, digits, space, '.', '_' or '-'";
    case BANK_EVALIDFROM:
        return "--valid-from must be an RFC 3339 time (2026-03-15T10:00:00Z) or a date (2026-03-15)";
    default:
        return factum_strerror(code);
    }
}

/* The integer member `key` of a flat JSON object (enough for these
 * events: written by this program, or by any client with these shapes). */
static int json_int(const uint8_t *data, size_t len, const char *key, int64_t *out)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\"", key);
    const uint8_t *p = memmem(data, len, pat, (size_t)pl);
    if (!p) return -1;
    p += pl;
    const uint8_t *end = data + len;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n'))
        p++;
    char num[32];
    size_t n = 0;
    while (p < end && n < sizeof num - 1 && (isdigit(*p) || (*p == '-' && n == 0)))
        num[n++] = (char)*p++;
    num[n] = 0;
    if (!n || (n == 1 && num[0] == '-')) return -1;
    *out = strtoll(num, NULL, 10);
    return 0;
}

/* The string member `key` (no escapes: owners are restricted to plain
 * characters when an account is opened). */
static int json_str(const uint8_t *data, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\"", key);
    const uint8_t *p = memmem(data, len, pat, (size_t)pl);
    if (!p) return -1;
    p += pl;
    const uint8_t *end = data + len;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"') return -1;
    p++;
    size_t n = 0;
    while (p < end && *p != '"' && n < cap - 1)
        out[n++] = (char)*p++;
    out[n] = 0;
    return 0;
}

static void *initial(void *ctx)
{
    (void)ctx;
    return calloc(1, sizeof(bank_state));
}

static int is_type(const factum_event *ev, const char *t)
{
    return ev->type_len == strlen(t) && !memcmp(ev->type, t, ev->type_len);
}

static int evolve(void *ctx, void *state, const factum_event *ev)
{
    (void)ctx;
    bank_state *st = state;
    int64_t amount;
    /* A MoneyDeposited of version 1 ({"value": N}) reaches here already
     * upcast by the store (docs/upcasting.md): this code reads version 2. */
    if (is_type(ev, "AccountOpened")) {
        st->opened = 1;
        if (json_str(ev->data, ev->data_len, "owner", st->owner, sizeof st->owner)) st->owner[0] = 0;
    } else if (is_type(ev, "MoneyDeposited")) {
        if (json_int(ev->data, ev->data_len, "amount", &amount)) return FACTUM_ECORRUPT;
        st->balance += amount;
    } else if (is_type(ev, "MoneyWithdrawn")) {
        if (json_int(ev->data, ev->data_len, "amount", &amount)) return FACTUM_ECORRUPT;
        st->balance -= amount;
    }
    return 0; /* other types: not the account's concern */
}

static int owner_ok(const char *o)
{
    size_t n = o ? strlen(o) : 0;
    if (!n || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)o[i]) && !strchr(" ._-", o[i])) return 0;
    return 1;
}

static int decide(void *ctx, const void *command, const void *state, factum_decision *out)
{
    (void)ctx;
    const bank_command *c = command;
    const bank_state *st = state;
    char buf[128];
    switch (c->kind) {
    case BANK_OPEN:
        if (st->opened) return BANK_EOPEN;
        if (!owner_ok(c->owner)) return BANK_EOWNER;
        snprintf(buf, sizeof buf, "{\"owner\":\"%s\"}", c->owner);
        if (c->valid_from) {
            char meta[80], when[40];
            int64_t t;
            if (strlen(c->valid_from) > 64 || factum_time_parse(c->valid_from, strlen(c->valid_from), &t))
                return BANK_EVALIDFROM;
            factum_time_format(t, when);
            int m = snprintf(meta, sizeof meta, "{\"$validFrom\":\"%s\"}", when);
            return factum_decision_add(out, "AccountOpened", FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON, buf,
                                       strlen(buf), meta, (size_t)m);
        }
        return factum_decision_add_json(out, "AccountOpened", buf);
    case BANK_DEPOSIT:
    case BANK_WITHDRAW:
        if (!st->opened) return BANK_ENOTOPEN;
        if (c->amount <= 0 || c->amount > BANK_MAX_AMOUNT) return BANK_EAMOUNT;
        /* the invariant: never below zero */
        if (c->kind == BANK_WITHDRAW && c->amount > st->balance) return BANK_EINSUFFICIENT;
        /* metadata: the shape's version of a deposit, and when it
         * happened if that was before now (checked: a time we can parse) */
        char meta[160];
        int64_t t;
        size_t m = 0;
        const char *vf = c->valid_from;
        int dep = c->kind == BANK_DEPOSIT;
        char when[40];
        if (vf) { /* written in the canonical form: RFC 3339 UTC */
            if (strlen(vf) > 64 || factum_time_parse(vf, strlen(vf), &t)) return BANK_EVALIDFROM;
            factum_time_format(t, when);
        }
        if (dep || vf)
            m = (size_t)snprintf(meta, sizeof meta, "{%s%s%s%s%s}", dep ? "\"$schemaVersion\":2" : "",
                                 dep && vf ? "," : "", vf ? "\"$validFrom\":\"" : "", vf ? when : "", vf ? "\"" : "");
        int n = c->kind == BANK_DEPOSIT
                    ? snprintf(buf, sizeof buf, "{\"amount\":%" PRId64 ",\"currency\":\"EUR\"}", c->amount)
                    : snprintf(buf, sizeof buf, "{\"amount\":%" PRId64 "}", c->amount);
        return factum_decision_add(out, c->kind == BANK_DEPOSIT ? "MoneyDeposited" : "MoneyWithdrawn",
                                   FACTUM_EVENT_JSON | (m ? FACTUM_EVENT_META_JSON : 0), buf, (size_t)n,
                                   m ? meta : NULL, m);
    default:
        return FACTUM_EINVAL;
    }
}

static void state_free(void *ctx, void *state)
{
    (void)ctx;
    free(state);
}

static int snap_encode(void *ctx, const void *state, char **data, size_t *len)
{
    (void)ctx;
    const bank_state *st = state;
    char buf[160];
    int n = snprintf(buf, sizeof buf, "{\"owner\":\"%s\",\"balance\":%" PRId64 ",\"opened\":%d}", st->owner,
                     st->balance, st->opened);
    if (!(*data = strdup(buf))) return -12; /* -ENOMEM */
    *len = (size_t)n;
    return 0;
}

static int snap_decode(void *ctx, const void *data, size_t len, void **state)
{
    (void)ctx;
    bank_state *st = calloc(1, sizeof *st);
    if (!st) return -12;
    int64_t opened = 0;
    if (json_int(data, len, "balance", &st->balance) || json_int(data, len, "opened", &opened) ||
        json_str(data, len, "owner", st->owner, sizeof st->owner)) {
        free(st);
        return FACTUM_ECORRUPT;
    }
    st->opened = opened != 0;
    *state = st;
    return 0;
}

void bank_decider_def(factum_decider_def *def, uint32_t snapshot_every)
{
    factum_decider_def_init(def);
    def->initial = initial;
    def->evolve = evolve;
    def->decide = decide;
    def->state_free = state_free;
    def->snapshot_encode = snap_encode;
    def->snapshot_decode = snap_decode;
    def->snapshot_type = "AccountSnapshot";
    def->snapshot_every = snapshot_every;
    def->max_attempts = 64; /* many writers on one account in the tests */
}

static int has_upcaster(void *ctx, const factum_upcaster_info *u)
{
    (void)ctx;
    return !strcmp(u->event_type, "MoneyDeposited") && u->from_version == 1 &&
           u->json_len == sizeof BANK_DEPOSIT_UPCASTER - 1 && !memcmp(u->json, BANK_DEPOSIT_UPCASTER, u->json_len);
}

int bank_register_upcaster(factum_store *s)
{
    int rc = factum_upcasters_each(s, has_upcaster, NULL);
    if (rc < 0) return rc;
    if (rc > 0) return 0; /* registered already */
    return factum_upcaster_set(s, BANK_DEPOSIT_UPCASTER, sizeof BANK_DEPOSIT_UPCASTER - 1, NULL, 0);
}
