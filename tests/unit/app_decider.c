/*
 * app_decider.c - aggregates as deciders (factum_app.h, src/cqrs/decider.c)
 * with the bank account of examples/bank: decisions and domain errors,
 * command ids (DC-2), the snapshot policy (DC-4), bounded retries, and
 * concurrent withdrawals from many threads against one account (DC-1):
 * the balance never goes below zero, every accepted operation is in the
 * stream once, and the final balance is the model's. Randomised; the seed
 * is printed (FACTUM_SEED replays it).
 */
#include <pthread.h>

#include "account.h"
#include "harness.h"

static factum_store *open_store(const char *name, char *dir, size_t n)
{
    factum_options o;
    harness_small_opts(&o);
    o.durability = FACTUM_RELAXED;
    harness_tmpdir(dir, n, name);
    factum_store *s = NULL;
    int rc = factum_store_open(dir, &o, &s);
    if (rc) fprintf(stderr, "open: %s\n", factum_strerror(rc));
    return s;
}

static int cmd(factum_decider *d, const char *stream, int kind, int64_t amount, const uint8_t *id,
               factum_decide_result *res)
{
    bank_command c = {kind, amount, "Alice", NULL};
    return factum_decider_handle(d, stream, &c, id, res);
}

static int64_t balance_of(factum_decider *d, const char *stream, int64_t *version, int64_t *snap)
{
    factum_decider_def def;
    bank_decider_def(&def, 0);
    void *st;
    int64_t v, sv;
    if (factum_decider_load(d, stream, &st, &v, &sv)) return INT64_MIN;
    int64_t b = ((bank_state *)st)->balance;
    def.state_free(def.ctx, st);
    if (version) *version = v;
    if (snap) *snap = sv;
    return b;
}

static void t_derive_id(void)
{
    uint8_t base[16], a[16], b[16], c[16], d[16];
    factum_uuid_v4(base);
    factum_app_derive_id(base, "s", 1, 0, a);
    factum_app_derive_id(base, "s", 1, 0, b);
    factum_app_derive_id(base, "s", 1, 1, c);
    factum_app_derive_id(base, "t", 1, 0, d);
    CHECK(!memcmp(a, b, 16));
    CHECK(memcmp(a, c, 16) && memcmp(a, d, 16) && memcmp(a, base, 16));
    CHECK((a[6] >> 4) == 8 && (a[8] & 0xc0) == 0x80);
    /* a fixed vector: examples/bank/node/bank.js derives the same (bank-example.test.js) */
    uint8_t b16[16];
    char text[37];
    for (int i = 0; i < 16; i++) b16[i] = (uint8_t)i;
    factum_app_derive_id(b16, "account-1", 9, 2, a);
    factum_uuid_format(a, text);
    CHECK(!strcmp(text, "c2bd4492-a06f-845d-a42d-d728fe105c39"));
}

static void t_bank_rules(void)
{
    char dir[512];
    factum_store *s = open_store("dec-rules", dir, sizeof dir);
    REQUIRE(s);
    factum_decider_def def;
    bank_decider_def(&def, 0);
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    factum_decide_result r;
    CHECK_RC(cmd(d, "account-1", BANK_DEPOSIT, 10, NULL, &r), BANK_ENOTOPEN);
    CHECK_RC(cmd(d, "account-1", BANK_OPEN, 0, NULL, &r), 0);
    CHECK(r.n_events == 1 && r.version == 0 && r.attempts == 1);
    CHECK_RC(cmd(d, "account-1", BANK_OPEN, 0, NULL, &r), BANK_EOPEN);
    CHECK_RC(cmd(d, "account-1", BANK_DEPOSIT, 0, NULL, &r), BANK_EAMOUNT);
    CHECK_RC(cmd(d, "account-1", BANK_DEPOSIT, 100, NULL, &r), 0);
    CHECK_RC(cmd(d, "account-1", BANK_WITHDRAW, 101, NULL, &r), BANK_EINSUFFICIENT);
    CHECK_RC(cmd(d, "account-1", BANK_WITHDRAW, 100, NULL, &r), 0);
    CHECK_RC(cmd(d, "account-1", BANK_WITHDRAW, 1, NULL, &r), BANK_EINSUFFICIENT);
    int64_t v;
    CHECK(balance_of(d, "account-1", &v, NULL) == 0);
    CHECK(v == 2); /* rejected commands wrote nothing */
    bank_command bad = {BANK_OPEN, 0, "Bob\"}", NULL};
    CHECK_RC(factum_decider_handle(d, "account-2", &bad, NULL, NULL), BANK_EOWNER);
    factum_stream_info info;
    CHECK_RC(factum_stream_get_info(s, "account-2", &info), 0);
    CHECK(info.status == FACTUM_STREAM_NONE);

    /* definitions are checked */
    factum_decider *x;
    factum_decider_def bd = def;
    bd.evolve = NULL;
    CHECK_RC(factum_decider_new(s, &bd, &x), FACTUM_EINVAL);
    bd = def;
    bd.snapshot_decode = NULL;
    CHECK_RC(factum_decider_new(s, &bd, &x), FACTUM_EINVAL);
    bd = def;
    bd.max_attempts = 0;
    CHECK_RC(factum_decider_new(s, &bd, &x), FACTUM_EINVAL);
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* DC-2: a command id makes a command idempotent, even when retried
 * after a state change that would make it fail if decided again. */
static void t_command_id(void)
{
    char dir[512];
    factum_store *s = open_store("dec-cmdid", dir, sizeof dir);
    REQUIRE(s);
    factum_decider_def def;
    bank_decider_def(&def, 0);
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    factum_decide_result r1, r2;
    uint8_t id[16];
    CHECK_RC(cmd(d, "account-1", BANK_OPEN, 0, NULL, NULL), 0);
    CHECK_RC(cmd(d, "account-1", BANK_DEPOSIT, 50, NULL, NULL), 0);
    factum_uuid_v4(id);
    CHECK_RC(cmd(d, "account-1", BANK_WITHDRAW, 50, id, &r1), 0);
    CHECK(!r1.idempotent && r1.n_events == 1);
    /* decided again it would be refused (balance 0): it is not decided */
    CHECK_RC(cmd(d, "account-1", BANK_WITHDRAW, 50, id, &r2), 0);
    CHECK(r2.idempotent && r2.n_events == 0 && r2.first_version == r1.first_version &&
          r2.last_position == r1.last_position);
    int64_t v;
    CHECK(balance_of(d, "account-1", &v, NULL) == 0 && v == 2);
    /* the same id on another account is another command */
    CHECK_RC(cmd(d, "account-2", BANK_OPEN, 0, id, &r2), 0);
    CHECK(!r2.idempotent);
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

static void t_snapshot_policy(void)
{
    char dir[512];
    factum_store *s = open_store("dec-snap", dir, sizeof dir);
    REQUIRE(s);
    factum_decider_def def;
    bank_decider_def(&def, 5);
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    factum_decide_result r;
    CHECK_RC(cmd(d, "account-1", BANK_OPEN, 0, NULL, NULL), 0);
    int written = 0;
    for (int i = 1; i <= 12; i++) {
        CHECK_RC(cmd(d, "account-1", BANK_DEPOSIT, i, NULL, &r), 0);
        CHECK_RC(r.snapshot_rc, 0);
        written += r.snapshot_written;
    }
    /* versions 0..12: snapshots at 4 (>= 5 events) and 9 (5 after 4) */
    CHECK(written == 2);
    int64_t v, sv;
    CHECK(balance_of(d, "account-1", &v, &sv) == 78);
    CHECK(v == 12 && sv == 9);
    /* a decider without snapshot functions replays everything, same state */
    factum_decider_def plain;
    bank_decider_def(&plain, 0);
    plain.snapshot_encode = NULL;
    plain.snapshot_decode = NULL;
    plain.snapshot_type = NULL;
    factum_decider *p;
    REQUIRE(factum_decider_new(s, &plain, &p) == 0);
    CHECK(balance_of(p, "account-1", &v, &sv) == 78);
    CHECK(v == 12 && sv == FACTUM_NO_STREAM);
    /* a snapshot of another type is not decoded: replay from the start */
    CHECK_RC(factum_snapshot_write(s, "account-1", 12, "Other", "{\"balance\":1}", 13, 0, NULL), 0);
    CHECK(balance_of(d, "account-1", &v, &sv) == 78);
    CHECK(sv == FACTUM_NO_STREAM);
    factum_decider_free(p);
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* A decide that writes to its own stream makes every append conflict: the
 * retries are bounded. */
typedef struct meddler {
    factum_store *s;
    int calls;
} meddler;
static void *m_initial(void *ctx)
{
    (void)ctx;
    return calloc(1, 1);
}
static int m_evolve(void *ctx, void *st, const factum_event *ev)
{
    (void)ctx, (void)st, (void)ev;
    return 0;
}
static int m_decide(void *ctx, const void *command, const void *st, factum_decision *out)
{
    (void)command, (void)st;
    meddler *m = ctx;
    m->calls++;
    factum_event_data e = harness_event("Meddle", "{}");
    factum_append(m->s, "m-1", FACTUM_ANY, &e, 1, NULL);
    return factum_decision_add_json(out, "Decided", "{}");
}
static void m_free(void *ctx, void *st)
{
    (void)ctx;
    free(st);
}

static void t_bounded_retries(void)
{
    char dir[512];
    factum_store *s = open_store("dec-retry", dir, sizeof dir);
    REQUIRE(s);
    meddler m = {s, 0};
    factum_decider_def def;
    factum_decider_def_init(&def);
    def.initial = m_initial;
    def.evolve = m_evolve;
    def.decide = m_decide;
    def.state_free = m_free;
    def.max_attempts = 5;
    def.ctx = &m;
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    factum_decide_result r;
    CHECK_RC(factum_decider_handle(d, "m-1", NULL, NULL, &r), FACTUM_EWRONGVERSION);
    CHECK(m.calls == 5 && r.attempts == 5);
    factum_event ev[16];
    size_t n;
    CHECK_RC(factum_read_stream(s, "m-1", 0, FACTUM_FORWARD, ev, 16, &n, NULL), 0);
    CHECK(n == 5); /* the meddler's only */
    for (size_t i = 0; i < n; i++)
        CHECK(!strcmp(ev[i].type, "Meddle"));
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* ---- many threads, one account ---------------------------------------- */

#define THREADS 8
#define OPS     150

typedef struct worker {
    factum_decider *d;
    uint64_t seed;
    int64_t deposited, withdrawn; /* accepted */
    int accepted, refused;
    uint64_t attempts;
    int errors;
    uint8_t same_id[16]; /* one command all threads send: once in the stream */
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    h_rng r = {w->seed};
    for (int i = 0; i < OPS; i++) {
        int deposit = h_below(&r, 4) == 0;
        int64_t amount = 1 + (int64_t)h_below(&r, 120);
        uint8_t id[16];
        factum_uuid_v4(id);
        factum_decide_result res;
        int rc = cmd(w->d, "account-c", deposit ? BANK_DEPOSIT : BANK_WITHDRAW, amount, id, &res);
        w->attempts += res.attempts;
        if (rc == 0 && res.n_events == 1) {
            w->accepted++;
            if (deposit)
                w->deposited += amount;
            else
                w->withdrawn += amount;
        } else if (rc == BANK_EINSUFFICIENT) {
            w->refused++;
        } else {
            fprintf(stderr, "  command: %s\n", bank_strerror(rc));
            w->errors++;
        }
        if (i == OPS / 2) {
            rc = cmd(w->d, "account-c", BANK_DEPOSIT, 7, w->same_id, &res);
            if (rc) w->errors++;
        }
    }
    return NULL;
}

/* The account's decide, slowed down a little: more commands decide on the
 * same version, so conflicts (and their retries) are certain, not lucky. */
static int (*bank_decide)(void *, const void *, const void *, factum_decision *);
static int slow_decide(void *ctx, const void *command, const void *state, factum_decision *out)
{
    usleep(50);
    return bank_decide(ctx, command, state, out);
}

static void t_concurrent_withdrawals(void)
{
    uint64_t seed = harness_seed("concurrent withdrawals");
    char dir[512];
    factum_store *s = open_store("dec-conc", dir, sizeof dir);
    REQUIRE(s);
    factum_decider_def def;
    bank_decider_def(&def, 16); /* snapshots written while others write */
    def.max_attempts = 1000;
    bank_decide = def.decide;
    def.decide = slow_decide;
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    CHECK_RC(cmd(d, "account-c", BANK_OPEN, 0, NULL, NULL), 0);
    CHECK_RC(cmd(d, "account-c", BANK_DEPOSIT, 5000, NULL, NULL), 0);
    worker w[THREADS];
    pthread_t th[THREADS];
    uint8_t same[16];
    factum_uuid_v4(same);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].d = d;
        w[i].seed = seed + (uint64_t)i * 7919;
        memcpy(w[i].same_id, same, 16);
        REQUIRE(pthread_create(&th[i], NULL, work, &w[i]) == 0);
    }
    int64_t dep = 0, wd = 0;
    int acc = 0, errs = 0, refused = 0;
    uint64_t attempts = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        dep += w[i].deposited;
        wd += w[i].withdrawn;
        acc += w[i].accepted;
        refused += w[i].refused;
        errs += w[i].errors;
        attempts += w[i].attempts;
    }
    CHECK(errs == 0);
    int64_t model = 5000 + dep - wd + 7; /* + the one shared command, once */
    int64_t v;
    CHECK(balance_of(d, "account-c", &v, NULL) == model);
    printf("  %d accepted, %d refused, %" PRIu64 " decide attempts for %d commands; balance %" PRId64 "\n",
           acc, refused, attempts, THREADS * OPS, model);
    /* the stream: every accepted op once (no lost update), running balance >= 0 */
    CHECK(v == 2 + acc); /* open, first deposit, the accepted ops, the shared one */
    int64_t bal = 0, min = 0, n_events = 0;
    uint64_t from = 0;
    factum_event ev[64];
    for (;;) {
        size_t n;
        uint64_t next;
        REQUIRE(factum_read_stream(s, "account-c", from, FACTUM_FORWARD, ev, 64, &n, &next) == 0);
        for (size_t i = 0; i < n; i++) {
            const char *p = memmem(ev[i].data, ev[i].data_len, "\"amount\":", 9);
            int64_t a = p ? strtoll(p + 9, NULL, 10) : 0;
            if (!strcmp(ev[i].type, "MoneyDeposited")) bal += a;
            if (!strcmp(ev[i].type, "MoneyWithdrawn")) bal -= a;
            if (bal < min) min = bal;
            n_events++;
        }
        if (next == FACTUM_END) break;
        from = next;
    }
    CHECK(min >= 0);
    CHECK(bal == model);
    CHECK(n_events == 3 + acc);
    CHECK(attempts > (uint64_t)(THREADS * OPS)); /* conflicts happened and were retried */
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

/* A decider loads events through a script upcaster (ADR 0016): an old
 * MoneyDeposited ({"value": N}) reaches evolve as version 2 ({"amount": N}),
 * the script's doing; a command decided on that state sees the balance.
 * Needs the worker (FACTUM_JS_WORKER); skipped without it. */
static void t_script_upcaster(void)
{
    if (!getenv("FACTUM_JS_WORKER")) {
        fprintf(stderr, "  FACTUM_JS_WORKER is not set: skipped\n");
        return;
    }
    char dir[512];
    factum_store *s = open_store("dec-script", dir, sizeof dir);
    REQUIRE(s);
    factum_decider_def def;
    bank_decider_def(&def, 0);
    factum_decider *d;
    REQUIRE(factum_decider_new(s, &def, &d) == 0);
    factum_decide_result r;
    CHECK_RC(cmd(d, "account-9", BANK_OPEN, 0, NULL, &r), 0);
    factum_event_data old = harness_event("MoneyDeposited", "{\"value\":40}");
    REQUIRE(factum_append(s, "account-9", FACTUM_ANY, &old, 1, NULL) == 0);
    static const char up[] = "{\"eventType\":\"MoneyDeposited\",\"fromVersion\":1,\"toVersion\":2,\"script\":"
                             "\"function (e) { return { data: { amount: e.data.value, currency: 'EUR' } }; }\"}";
    char err[512] = "";
    int rc = factum_upcaster_set(s, up, sizeof up - 1, err, sizeof err);
    if (rc) fprintf(stderr, "  %s\n", err);
    REQUIRE(rc == 0);
    int64_t v = 0;
    CHECK(balance_of(d, "account-9", &v, NULL) == 40);
    CHECK(v == 1);
    CHECK_RC(cmd(d, "account-9", BANK_WITHDRAW, 41, NULL, &r), BANK_EINSUFFICIENT);
    CHECK_RC(cmd(d, "account-9", BANK_WITHDRAW, 40, NULL, &r), 0);
    CHECK(balance_of(d, "account-9", &v, NULL) == 0);
    factum_decider_free(d);
    CHECK_RC(factum_store_close(s), 0);
    harness_rm_rf(dir);
}

int main(void)
{
    RUN(t_derive_id);
    RUN(t_bank_rules);
    RUN(t_command_id);
    RUN(t_snapshot_policy);
    RUN(t_bounded_retries);
    RUN(t_concurrent_withdrawals);
    RUN(t_script_upcaster);
    return harness_done();
}
