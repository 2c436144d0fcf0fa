/*
 * app_snapshot.c - property: loading an aggregate from its newest usable
 * snapshot plus the events after it gives the same state and version as
 * replaying the whole stream, and both equal an in-memory model - under
 * random commands on several bank accounts, random snapshot policies and
 * retention, manual snapshots, soft deletes and re-creation (SN-2), and
 * reopening the store. FACTUM_SEED replays a run; FACTUM_PROP_OPS sets the
 * number of operations (default 3000).
 */
#include "account.h"
#include "harness.h"

#define ACCOUNTS 4

typedef struct model {
    int opened;
    int64_t balance;
} model;

static int load(factum_decider *d, const char *stream, bank_state *out, int64_t *v, int64_t *sv)
{
    void *st;
    int rc = factum_decider_load(d, stream, &st, v, sv);
    if (rc) return rc;
    *out = *(bank_state *)st;
    free(st);
    return 0;
}

int main(void)
{
    uint64_t seed = harness_seed("snapshot load = full replay");
    const char *e = getenv("FACTUM_PROP_OPS");
    int ops = e ? atoi(e) : 3000;
    h_rng r = {seed};
    char dir[512];
    harness_tmpdir(dir, sizeof dir, "prop-snap");
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    factum_store *s;
    if (factum_store_open(dir, &o, &s)) return 1;

    factum_decider_def with, plain;
    bank_decider_def(&with, 1 + (uint32_t)h_below(&r, 8));
    with.snapshot_keep = 1 + (uint32_t)h_below(&r, 4);
    bank_decider_def(&plain, 0);
    plain.snapshot_encode = NULL;
    plain.snapshot_decode = NULL;
    plain.snapshot_type = NULL;
    factum_decider *dw, *dp;
    if (factum_decider_new(s, &with, &dw) || factum_decider_new(s, &plain, &dp)) return 1;
    printf("snapshot every %u, keep %u, %d operations\n", with.snapshot_every, with.snapshot_keep, ops);

    model m[ACCOUNTS] = {{0}};
    int snapshots_used = 0, failures = 0;
    for (int i = 0; i < ops && failures < 5; i++) {
        int a = (int)h_below(&r, ACCOUNTS);
        char stream[32];
        snprintf(stream, sizeof stream, "account-%d", a);
        uint64_t what = h_below(&r, 100);
        if (what < 2 && m[a].opened) {
            /* soft delete: the account starts again from nothing */
            CHECK_RC(factum_delete_stream(s, stream, FACTUM_ANY, NULL), 0);
            m[a].opened = 0;
            m[a].balance = 0;
        } else if (what < 5 && m[a].opened) {
            /* a manual snapshot of the current state */
            bank_state st;
            int64_t v, sv;
            if (load(dp, stream, &st, &v, &sv) == 0 && v >= 0) {
                char *data;
                size_t len;
                if (with.snapshot_encode(NULL, &st, &data, &len) == 0) {
                    CHECK_RC(factum_snapshot_write(s, stream, (uint64_t)v, "AccountSnapshot", data, len,
                                                   with.snapshot_keep, NULL),
                             0);
                    free(data);
                }
            }
        } else if (what < 6) {
            /* reopen the store: snapshots and streams are durable state */
            factum_decider_free(dw);
            factum_decider_free(dp);
            CHECK_RC(factum_store_close(s), 0);
            if (factum_store_open(dir, &o, &s)) return 1;
            if (factum_decider_new(s, &with, &dw) || factum_decider_new(s, &plain, &dp)) return 1;
        } else {
            bank_command c = {BANK_OPEN, 0, "Owner", NULL};
            if (m[a].opened) {
                c.kind = h_below(&r, 2) ? BANK_DEPOSIT : BANK_WITHDRAW;
                c.amount = 1 + (int64_t)h_below(&r, 200);
            }
            int want = 0;
            if (c.kind == BANK_WITHDRAW && c.amount > m[a].balance) want = BANK_EINSUFFICIENT;
            factum_decider *d = h_below(&r, 2) ? dw : dp; /* writers with and without snapshots */
            int rc = factum_decider_handle(d, stream, &c, NULL, NULL);
            CHECK_RC(rc, want);
            if (!rc) {
                if (c.kind == BANK_OPEN) m[a].opened = 1;
                if (c.kind == BANK_DEPOSIT) m[a].balance += c.amount;
                if (c.kind == BANK_WITHDRAW) m[a].balance -= c.amount;
            }
        }
        /* the property, on the account just touched */
        bank_state sw, sp;
        int64_t vw, vp, svw, svp;
        int rw = load(dw, stream, &sw, &vw, &svw), rp = load(dp, stream, &sp, &vp, &svp);
        CHECK_RC(rw, 0);
        CHECK_RC(rp, 0);
        if (rw || rp) {
            failures++;
            continue;
        }
        snapshots_used += svw >= 0;
        if (sw.balance != sp.balance || sw.opened != sp.opened || vw != vp || strcmp(sw.owner, sp.owner) ||
            sw.balance != m[a].balance || sw.opened != m[a].opened) {
            fprintf(stderr,
                    "  FAIL op %d %s: snapshot+replay balance %" PRId64 " v%" PRId64 " (snapshot %" PRId64
                    "), replay %" PRId64 " v%" PRId64 ", model %" PRId64 "\n",
                    i, stream, sw.balance, vw, svw, sp.balance, vp, m[a].balance);
            h_checks_failed_in_test++;
            failures++;
        }
    }
    printf("loads from a snapshot: %d\n", snapshots_used);
    CHECK(snapshots_used > 0);
    factum_decider_free(dw);
    factum_decider_free(dp);
    CHECK_RC(factum_store_close(s), 0);
    if (!h_checks_failed_in_test) harness_rm_rf(dir);
    printf("%s\n", h_checks_failed_in_test ? "FAILED" : "ok");
    return h_checks_failed_in_test ? 1 : 0;
}
