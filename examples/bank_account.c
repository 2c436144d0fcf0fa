/*
 * bank_account.c - the brief's bank account, event-sourced with libfactum.
 *
 * Opens (or creates) a store, appends AccountOpened / MoneyDeposited /
 * MoneyWithdrawn events to stream account-42 with optimistic concurrency,
 * then rebuilds the balance by replaying the stream. Build:
 *   cc bank_account.c -lfactum -o bank_account && ./bank_account /tmp/bank
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "factum.h"

static factum_event_data json_event(const char *type, const char *json)
{
    factum_event_data e = {0};
    e.type = type;
    e.flags = FACTUM_EVENT_JSON;
    e.data = json;
    e.data_len = strlen(json);
    return e; /* has_id = 0: the store generates the event id */
}

/* Parse "amount": N out of an event's JSON (enough for this example). */
static long amount_of(const factum_event *ev)
{
    const char *p = memmem(ev->data, ev->data_len, "\"amount\":", 9);
    return p ? strtol(p + 9, NULL, 10) : 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/factum-bank";
    factum_store *store;
    int rc = factum_store_open(dir, NULL, &store);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, factum_strerror(rc));
        return 1;
    }

    /* Where is the account now? A new stream has no version yet. */
    factum_stream_info info;
    factum_stream_get_info(store, "account-42", &info);
    int64_t expected = info.last_version; /* FACTUM_NO_STREAM for a new account */

    factum_event_data events[3];
    size_t n = 0;
    if (expected == FACTUM_NO_STREAM)
        events[n++] = json_event("AccountOpened", "{\"owner\":\"Alice\",\"balance\":0}");
    events[n++] = json_event("MoneyDeposited", "{\"amount\":1000}");
    events[n++] = json_event("MoneyWithdrawn", "{\"amount\":250}");

    factum_append_result res;
    rc = factum_append(store, "account-42", expected, events, n, &res);
    if (rc == FACTUM_EWRONGVERSION) {
        fprintf(stderr, "someone else changed the account (now at version %lld); retry\n",
                (long long)res.actual_version);
    } else if (rc) {
        fprintf(stderr, "append: %s\n", factum_strerror(rc));
    } else {
        printf("appended versions %llu..%llu at positions %llu..%llu\n",
               (unsigned long long)res.first_version, (unsigned long long)res.last_version,
               (unsigned long long)res.first_position, (unsigned long long)res.last_position);
    }

    /* Rebuild the state by replaying the stream, a page at a time. */
    long balance = 0;
    factum_event page[64];
    size_t got;
    uint64_t next = 0;
    do {
        rc = factum_read_stream(store, "account-42", next, FACTUM_FORWARD, page, 64, &got, &next);
        if (rc) break;
        for (size_t i = 0; i < got; i++) {
            if (!strcmp(page[i].type, "MoneyDeposited")) balance += amount_of(&page[i]);
            if (!strcmp(page[i].type, "MoneyWithdrawn")) balance -= amount_of(&page[i]);
        }
    } while (next != FACTUM_END);
    printf("account-42 balance: %ld\n", balance);
    return factum_store_close(store) ? 1 : 0;
}
