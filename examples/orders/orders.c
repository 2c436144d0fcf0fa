/*
 * orders.c - the orders domain of orders.h: the four aggregates as deciders,
 * the saga definition and its command functions, the read models.
 *
 * Every aggregate here is the same small shape: its state is the set of
 * event types its stream holds (and the order's amount), evolve adds one,
 * decide looks at the set. What matters for the saga is that every command
 * is idempotent by its command id (factum_decider_handle derives the event
 * ids from it) and also by state (a payment charged once is not charged
 * again), and that a refused command is a domain code the saga's command
 * function turns into FACTUM_SAGA_FAILED.
 */
#include "orders.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { AGG_ORDER = 0, AGG_PAYMENT, AGG_INVENTORY, AGG_SHIPMENT, N_AGG };

static const char *const agg_prefix[N_AGG] = {"order", "payment", "inventory", "shipment"};
/* The event types of each aggregate, by bit. */
static const char *const agg_types[N_AGG][4] = {
    {"OrderPlaced", "OrderCompleted", "OrderCancelled", NULL},
    {"PaymentCharged", "PaymentDeclined", "PaymentTimedOut", "PaymentRefunded"},
    {"InventoryReserved", "InventoryUnavailable", "InventoryReleased", NULL},
    {"ShipmentCreated", "ShipmentFailed", "ShipmentCancelled", NULL},
};

/* Domain refusal (a positive code of factum_decider_handle). */
#define REFUSED 1

enum {
    CMD_PLACE,
    CMD_COMPLETE,
    CMD_CANCEL,
    CMD_CHARGE,
    CMD_REFUND,
    CMD_RESERVE,
    CMD_RELEASE,
    CMD_SHIP,
    CMD_UNSHIP
};

typedef struct command {
    int kind;
    const char *id; /* order id */
    const char *customer;
    long amount;
    char sku[64];
    int qty;
} command;

typedef struct state {
    unsigned seen; /* bit i: agg_types[agg][i] is in the stream */
    long amount;
} state;

typedef struct agg {
    orders_app *app;
    int kind;
} agg;

struct orders_app {
    factum_store *s;
    orders_config cfg;
    agg aggs[N_AGG];
    factum_decider *dec[N_AGG];
    factum_saga_step steps[N_STEPS];
    factum_saga_def def;
    factum_saga *saga;
};

/* ---- failure injection: a pure function of (seed, order, step) ------------- */

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double draw(uint64_t seed, const char *id, int what)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (double)(mix(h ^ mix(seed + (uint64_t)what)) >> 11) / 9007199254740992.0;
}

int orders_fails(const orders_config *cfg, const char *id, int step)
{
    return draw(cfg->seed, id, step) < cfg->fail[step];
}

int orders_silent(const orders_config *cfg, const char *id)
{
    return draw(cfg->seed, id, 100) < cfg->silent_payment;
}

/* ---- tiny JSON readers for the data this file writes itself -------------- */

static long json_long(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : 0;
}

static void json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    out[0] = 0;
    if (!p) return;
    p += strlen(pat);
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = 0;
}

/* ---- the deciders ------------------------------------------------------- */

static void *st_initial(void *ctx)
{
    (void)ctx;
    return calloc(1, sizeof(state));
}

static void st_free(void *ctx, void *st)
{
    (void)ctx;
    free(st);
}

static int st_evolve(void *ctx, void *vst, const factum_event *ev)
{
    agg *g = ctx;
    state *st = vst;
    for (int i = 0; i < 4; i++)
        if (agg_types[g->kind][i] && !strcmp(ev->type, agg_types[g->kind][i])) st->seen |= 1u << i;
    if (!strcmp(ev->type, "OrderPlaced") || !strcmp(ev->type, "PaymentCharged")) {
        char *copy = malloc(ev->data_len + 1);
        if (!copy) return -ENOMEM;
        memcpy(copy, ev->data, ev->data_len);
        copy[ev->data_len] = 0;
        st->amount = json_long(copy, "amount");
        free(copy);
    }
    return 0;
}

/* Append one event of the decision: data from fmt, metadata the correlation id. */
static int emit(factum_decision *d, const char *type, const char *id, const char *data)
{
    char meta[300];
    snprintf(meta, sizeof meta, "{\"$correlationId\":\"%s\"}", id);
    return factum_decision_add(d, type, FACTUM_EVENT_JSON | FACTUM_EVENT_META_JSON, data, strlen(data), meta,
                               strlen(meta));
}

#define HAS(st, bit) ((st)->seen & (1u << (bit)))

static int st_decide(void *ctx, const void *vcmd, const void *vst, factum_decision *out)
{
    agg *g = ctx;
    const command *c = vcmd;
    const state *st = vst;
    const orders_config *cfg = &g->app->cfg;
    char data[512];
    switch (c->kind) {
    case CMD_PLACE:
        if (st->seen) return 0; /* placed already */
        snprintf(data, sizeof data,
                 "{\"orderId\":\"%s\",\"customer\":\"%s\",\"amount\":%ld,\"sku\":\"%s\",\"qty\":%d,"
                 "\"address\":\"%d Main Street\"}",
                 c->id, c->customer, c->amount, c->sku, c->qty, (int)(draw(cfg->seed, c->id, 200) * 1000));
        return emit(out, "OrderPlaced", c->id, data);
    case CMD_COMPLETE:
        if (HAS(st, 2)) return REFUSED; /* cancelled */
        if (HAS(st, 1)) return 0;
        if (orders_fails(cfg, c->id, STEP_COMPLETION)) return REFUSED; /* e.g. the final fraud check */
        snprintf(data, sizeof data, "{\"orderId\":\"%s\",\"amount\":%ld}", c->id, st->amount);
        return emit(out, "OrderCompleted", c->id, data);
    case CMD_CANCEL:
        if (HAS(st, 2)) return 0;
        snprintf(data, sizeof data, "{\"orderId\":\"%s\"}", c->id);
        return emit(out, "OrderCancelled", c->id, data);
    case CMD_CHARGE:
        if (HAS(st, 2)) return REFUSED; /* timed out: a late charge is refused */
        if (HAS(st, 0) || HAS(st, 1)) return 0;
        if (orders_silent(cfg, c->id)) return 0; /* the gateway never answers */
        snprintf(data, sizeof data, "{\"orderId\":\"%s\",\"amount\":%ld}", c->id, c->amount);
        return emit(out, orders_fails(cfg, c->id, STEP_PAYMENT) ? "PaymentDeclined" : "PaymentCharged", c->id,
                    data);
    case CMD_REFUND:
        if (!HAS(st, 0) || HAS(st, 3)) return 0;
        snprintf(data, sizeof data, "{\"orderId\":\"%s\",\"amount\":%ld}", c->id, st->amount);
        return emit(out, "PaymentRefunded", c->id, data);
    case CMD_RESERVE:
        if (st->seen) return 0;
        snprintf(data, sizeof data, "{\"orderId\":\"%s\",\"sku\":\"%s\",\"qty\":%d}", c->id, c->sku, c->qty);
        return emit(out,
                    orders_fails(cfg, c->id, STEP_INVENTORY) ? "InventoryUnavailable" : "InventoryReserved",
                    c->id, data);
    case CMD_RELEASE:
        if (!HAS(st, 0) || HAS(st, 2)) return 0;
        snprintf(data, sizeof data, "{\"orderId\":\"%s\",\"sku\":\"%s\",\"qty\":%d}", c->id, c->sku, c->qty);
        return emit(out, "InventoryReleased", c->id, data);
    case CMD_SHIP:
        if (st->seen) return 0;
        if (orders_fails(cfg, c->id, STEP_SHIPMENT)) {
            snprintf(data, sizeof data, "{\"orderId\":\"%s\"}", c->id);
            return emit(out, "ShipmentFailed", c->id, data);
        }
        snprintf(
            data, sizeof data,
            "{\"orderId\":\"%s\",\"carrier\":\"carrier-%d\",\"address\":\"%d Main Street\",\"sku\":\"%s\","
            "\"qty\":%d}",
            c->id, (int)(draw(cfg->seed, c->id, 300) * 3), (int)(draw(cfg->seed, c->id, 200) * 1000), c->sku,
            c->qty);
        return emit(out, "ShipmentCreated", c->id, data);
    case CMD_UNSHIP:
        if (!HAS(st, 0) || HAS(st, 2)) return 0;
        snprintf(data, sizeof data, "{\"orderId\":\"%s\"}", c->id);
        return emit(out, "ShipmentCancelled", c->id, data);
    }
    return FACTUM_EINVAL;
}

static int handle(orders_app *a, int aggk, const command *c, const uint8_t id[16])
{
    char stream[256];
    snprintf(stream, sizeof stream, "%s-%s", agg_prefix[aggk], c->id);
    return factum_decider_handle(a->dec[aggk], stream, c, id, NULL);
}

/* ---- the saga's command functions ----------------------------------------- */

static void from_start(const factum_saga_command *sc, command *c)
{
    memset(c, 0, sizeof *c);
    c->id = sc->key;
    c->amount = json_long(sc->start_data, "amount");
    c->qty = (int)json_long(sc->start_data, "qty");
    json_str(sc->start_data, "sku", c->sku, sizeof c->sku);
}

/* Forward: a refusal fails the step at once; otherwise the answer comes as
 * an event (or, for completion, the step is done now). */
static int forward(orders_app *a, const factum_saga_command *sc, int aggk, int kind)
{
    command c;
    from_start(sc, &c);
    c.kind = kind;
    int rc = handle(a, aggk, &c, sc->id);
    if (rc > 0) return FACTUM_SAGA_FAILED;
    return rc < 0 ? rc : FACTUM_SAGA_PENDING;
}

/* Compensation: its confirming event follows (a refusal would mean
 * nothing to undo: done). */
static int backward(orders_app *a, const factum_saga_command *sc, int aggk, int kind)
{
    command c;
    from_start(sc, &c);
    c.kind = kind;
    int rc = handle(a, aggk, &c, sc->id);
    if (rc > 0) return FACTUM_SAGA_DONE;
    return rc < 0 ? rc : FACTUM_SAGA_PENDING;
}

static int do_charge(void *ctx, const factum_saga_command *c)
{
    return forward(ctx, c, AGG_PAYMENT, CMD_CHARGE);
}
static int do_refund(void *ctx, const factum_saga_command *c)
{
    return backward(ctx, c, AGG_PAYMENT, CMD_REFUND);
}
static int do_reserve(void *ctx, const factum_saga_command *c)
{
    return forward(ctx, c, AGG_INVENTORY, CMD_RESERVE);
}
static int do_release(void *ctx, const factum_saga_command *c)
{
    return backward(ctx, c, AGG_INVENTORY, CMD_RELEASE);
}
static int do_ship(void *ctx, const factum_saga_command *c)
{
    return forward(ctx, c, AGG_SHIPMENT, CMD_SHIP);
}
static int do_unship(void *ctx, const factum_saga_command *c)
{
    return backward(ctx, c, AGG_SHIPMENT, CMD_UNSHIP);
}
static int do_complete(void *ctx, const factum_saga_command *c)
{
    return forward(ctx, c, AGG_ORDER, CMD_COMPLETE);
}
static int do_cancel(void *ctx, const factum_saga_command *c)
{
    return backward(ctx, c, AGG_ORDER, CMD_CANCEL);
}

static const char *const t_placed[] = {"OrderPlaced"}, *const t_cancelled[] = {"OrderCancelled"};
static const char *const t_charged[] = {"PaymentCharged"}, *const t_declined[] = {"PaymentDeclined"};
static const char *const t_refunded[] = {"PaymentRefunded"};
static const char *const t_reserved[] = {"InventoryReserved"}, *const t_unavailable[] = {
                                                                   "InventoryUnavailable"};
static const char *const t_released[] = {"InventoryReleased"};
static const char *const t_shipped[] = {"ShipmentCreated"}, *const t_shipfailed[] = {"ShipmentFailed"};
static const char *const t_unshipped[] = {"ShipmentCancelled"};
static const char *const t_completed[] = {"OrderCompleted"};

static void define_saga(orders_app *a)
{
    factum_saga_step *s = a->steps;
    memset(s, 0, sizeof a->steps);
    s[STEP_PAYMENT] = (factum_saga_step){.name = "payment",
                                         .run = do_charge,
                                         .done_types = t_charged,
                                         .n_done = 1,
                                         .failed_types = t_declined,
                                         .n_failed = 1,
                                         .compensate = do_refund,
                                         .compensated_types = t_refunded,
                                         .n_compensated = 1,
                                         /* The timeout goes to the payment's own stream: the payment decider
                                          * sees it and refuses a charge that comes later, so exactly one of
                                          * "charged" and "timed out" is ever true of a payment. */
                                         .timeout_ms = a->cfg.payment_timeout_ms,
                                         .timeout_stream = "payment-{key}",
                                         .timeout_type = "PaymentTimedOut"};
    s[STEP_INVENTORY] = (factum_saga_step){.name = "inventory",
                                           .run = do_reserve,
                                           .done_types = t_reserved,
                                           .n_done = 1,
                                           .failed_types = t_unavailable,
                                           .n_failed = 1,
                                           .compensate = do_release,
                                           .compensated_types = t_released,
                                           .n_compensated = 1};
    s[STEP_SHIPMENT] = (factum_saga_step){.name = "shipment",
                                          .run = do_ship,
                                          .done_types = t_shipped,
                                          .n_done = 1,
                                          .failed_types = t_shipfailed,
                                          .n_failed = 1,
                                          .compensate = do_unship,
                                          .compensated_types = t_unshipped,
                                          .n_compensated = 1};
    s[STEP_COMPLETION] =
        (factum_saga_step){.name = "completion", .run = do_complete, .done_types = t_completed, .n_done = 1};
    a->def = (factum_saga_def){.name = "orders",
                               .start_types = t_placed,
                               .n_start = 1,
                               .compensate_start = do_cancel,
                               .start_compensated_types = t_cancelled,
                               .n_start_compensated = 1,
                               .steps = a->steps,
                               .n_steps = N_STEPS,
                               .ctx = a};
}

orders_app *orders_open(factum_store *s, const orders_config *cfg, int run_saga)
{
    orders_app *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->s = s;
    a->cfg = *cfg;
    if (a->cfg.payment_timeout_ms <= 0) a->cfg.payment_timeout_ms = 30000;
    for (int k = 0; k < N_AGG; k++) {
        a->aggs[k] = (agg){a, k};
        factum_decider_def d;
        factum_decider_def_init(&d);
        d.initial = st_initial;
        d.evolve = st_evolve;
        d.decide = st_decide;
        d.state_free = st_free;
        d.ctx = &a->aggs[k];
        int rc = factum_decider_new(s, &d, &a->dec[k]);
        if (rc) {
            fprintf(stderr, "decider: %s\n", factum_strerror(rc));
            orders_close(a);
            return NULL;
        }
    }
    define_saga(a);
    if (run_saga) {
        factum_saga_options so;
        factum_saga_options_init(&so);
        if (a->cfg.saga_workers) so.workers = a->cfg.saga_workers;
        int rc = factum_saga_open(s, &a->def, &so, &a->saga);
        if (rc) {
            fprintf(stderr, "saga: %s\n", factum_strerror(rc));
            orders_close(a);
            return NULL;
        }
    }
    return a;
}

void orders_close(orders_app *a)
{
    if (!a) return;
    factum_saga_close(a->saga);
    for (int k = 0; k < N_AGG; k++)
        factum_decider_free(a->dec[k]);
    free(a);
}

factum_saga *orders_saga(orders_app *a)
{
    return a->saga;
}

int orders_place(orders_app *a, const char *id, const char *customer, long amount, const char *sku, int qty,
                 uint64_t *position)
{
    command c = {.kind = CMD_PLACE, .id = id, .customer = customer, .amount = amount, .qty = qty};
    snprintf(c.sku, sizeof c.sku, "%s", sku);
    static const uint8_t zero[16];
    uint8_t cid[16];
    char salt[300];
    int n = snprintf(salt, sizeof salt, "place\n%s", id);
    factum_app_derive_id(zero, salt, (size_t)n, 0, cid);
    char stream[256];
    snprintf(stream, sizeof stream, "order-%s", id);
    factum_decide_result res;
    int rc = factum_decider_handle(a->dec[AGG_ORDER], stream, &c, cid, &res);
    if (!rc && position) *position = res.last_position;
    return rc;
}

/* ---- the read models ---------------------------------------------------- */

const char *const orders_readmodel_names[3] = {"order_summary", "revenue", "shipping_manifest"};

static const char ORDER_SUMMARY[] =
    "{\"name\":\"order_summary\",\"streams\":[\"order-\",\"payment-\",\"inventory-\",\"shipment-\"],"
    "\"schema\":[\"CREATE TABLE orders(id TEXT PRIMARY KEY, customer TEXT, amount INTEGER NOT NULL, "
    "status TEXT NOT NULL, paid INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0, "
    "shipped INTEGER NOT NULL DEFAULT 0, reason TEXT, updated TEXT)\"],"
    "\"handlers\":{"
    "\"OrderPlaced\":\"INSERT INTO orders(id, customer, amount, status, updated) VALUES (:data.orderId, "
    ":data.customer, :data.amount, 'placed', :timestamp)\","
    "\"PaymentCharged\":\"UPDATE orders SET paid = 1, status = 'paid', updated = :timestamp WHERE id = "
    ":data.orderId\","
    "\"InventoryReserved\":\"UPDATE orders SET reserved = 1, status = 'reserved', updated = :timestamp WHERE "
    "id = "
    ":data.orderId\","
    "\"ShipmentCreated\":\"UPDATE orders SET shipped = 1, status = 'shipped', updated = :timestamp WHERE id "
    "= "
    ":data.orderId\","
    "\"OrderCompleted\":\"UPDATE orders SET status = 'completed', updated = :timestamp WHERE id = "
    ":data.orderId\","
    "\"PaymentDeclined\":\"UPDATE orders SET status = 'compensating', reason = :type WHERE id = "
    ":data.orderId\","
    "\"InventoryUnavailable\":\"UPDATE orders SET status = 'compensating', reason = :type WHERE id = "
    ":data.orderId\","
    "\"ShipmentFailed\":\"UPDATE orders SET status = 'compensating', reason = :type WHERE id = "
    ":data.orderId\","
    "\"ShipmentCancelled\":\"UPDATE orders SET shipped = 0, status = 'compensating', updated = :timestamp "
    "WHERE id = "
    ":data.orderId\","
    "\"InventoryReleased\":\"UPDATE orders SET reserved = 0, status = 'compensating', updated = :timestamp "
    "WHERE id = "
    ":data.orderId\","
    "\"PaymentRefunded\":\"UPDATE orders SET paid = 0, status = 'compensating', updated = :timestamp WHERE "
    "id = "
    ":data.orderId\","
    "\"OrderCancelled\":\"UPDATE orders SET status = 'cancelled', updated = :timestamp WHERE id = "
    ":data.orderId\"}}";

static const char REVENUE[] =
    "{\"name\":\"revenue\",\"streams\":[\"payment-\"],"
    "\"schema\":[\"CREATE TABLE revenue(day TEXT PRIMARY KEY, charged INTEGER NOT NULL, refunded INTEGER NOT "
    "NULL, "
    "payments INTEGER NOT NULL, refunds INTEGER NOT NULL)\"],"
    "\"handlers\":{"
    "\"PaymentCharged\":\"INSERT INTO revenue VALUES (substr(:timestamp, 1, 10), :data.amount, 0, 1, 0) "
    "ON CONFLICT(day) DO UPDATE SET charged = charged + excluded.charged, payments = payments + 1\","
    "\"PaymentRefunded\":\"INSERT INTO revenue VALUES (substr(:timestamp, 1, 10), 0, :data.amount, 0, 1) "
    "ON CONFLICT(day) DO UPDATE SET refunded = refunded + excluded.refunded, refunds = refunds + 1\"}}";

static const char MANIFEST[] =
    "{\"name\":\"shipping_manifest\",\"streams\":[\"shipment-\",\"order-\"],"
    "\"schema\":[\"CREATE TABLE manifest(order_id TEXT PRIMARY KEY, carrier TEXT NOT NULL, address TEXT NOT "
    "NULL, "
    "sku TEXT, qty INTEGER, status TEXT NOT NULL)\"],"
    "\"handlers\":{"
    "\"ShipmentCreated\":\"INSERT INTO manifest VALUES (:data.orderId, :data.carrier, :data.address, "
    ":data.sku, "
    ":data.qty, 'created')\","
    "\"ShipmentCancelled\":\"UPDATE manifest SET status = 'cancelled' WHERE order_id = :data.orderId\","
    "\"OrderCompleted\":\"UPDATE manifest SET status = 'ready' WHERE order_id = :data.orderId\"}}";

int orders_readmodels(factum_readmodels *m)
{
    const char *defs[3] = {ORDER_SUMMARY, REVENUE, MANIFEST};
    for (int i = 0; i < 3; i++) {
        char err[512] = "";
        int rc = factum_readmodel_create(m, defs[i], strlen(defs[i]), err, sizeof err);
        if (rc == FACTUM_EEXISTS) continue;
        if (rc) {
            fprintf(stderr, "read model %s: %s %s\n", orders_readmodel_names[i], factum_strerror(rc), err);
            return rc;
        }
    }
    return 0;
}

/* ---- the invariant ------------------------------------------------------ */

int orders_check(factum_store *s, const char *id, char *why, size_t why_len)
{
    /* The position of each event type of the order's four streams (0: absent). */
    static const char *const names[] = {"OrderPlaced",       "PaymentCharged",  "InventoryReserved",
                                        "ShipmentCreated",   "OrderCompleted",  "ShipmentCancelled",
                                        "InventoryReleased", "PaymentRefunded", "OrderCancelled"};
    enum { N = sizeof names / sizeof *names };
    uint64_t pos[N] = {0};
    for (int k = 0; k < N_AGG; k++) {
        char stream[256];
        snprintf(stream, sizeof stream, "%s-%s", agg_prefix[k], id);
        factum_event evs[16];
        size_t n = 0;
        int rc = factum_read_stream(s, stream, 0, FACTUM_FORWARD, evs, 16, &n, NULL);
        if (rc == FACTUM_ENOTFOUND) continue;
        if (rc) {
            snprintf(why, why_len, "%s: %s", stream, factum_strerror(rc));
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            for (int t = 0; t < N; t++) {
                if (strcmp(evs[i].type, names[t])) continue;
                if (pos[t]) {
                    snprintf(why, why_len, "%s twice in %s", names[t], stream);
                    return -1;
                }
                pos[t] = evs[i].position;
            }
        }
    }
    factum_saga_instance in;
    int rc = factum_saga_instance_get(s, "orders", id, &in);
    if (rc == FACTUM_ENOTFOUND || !pos[0]) { /* not placed yet, or the saga has not seen it yet */
        for (int t = 1; t < N; t++)
            if (pos[t]) {
                int rc2 = factum_saga_instance_get(s, "orders", id, &in);
                return snprintf(why, why_len, "%s without a saga instance (read again: %s; at %llu)",
                                names[t], factum_strerror(rc2), (unsigned long long)pos[t]),
                       -1;
            }
        snprintf(why, why_len, "%s", pos[0] ? "placed, the saga has not started yet" : "not placed");
        return 0;
    }
    if (rc) {
        snprintf(why, why_len, "saga instance: %s", factum_strerror(rc));
        return -1;
    }
    /* What may never be, even in the middle of a saga: a completed order
     * with a compensation, a compensation of a step that did not happen,
     * compensations out of order. */
    static const int undo_of[4] = {8, 7, 6, 5}; /* step t (1..3) -> its compensation; 0 -> OrderCancelled */
    for (int t = 5; t < N && pos[4]; t++)
        if (pos[t]) return snprintf(why, why_len, "completed, yet %s", names[t]), -1;
    uint64_t prev = 0;
    for (int t = 3; t >= 0; t--) {
        uint64_t u = pos[undo_of[t]];
        if (t > 0 && !pos[t] && u)
            return snprintf(why, why_len, "%s without %s", names[undo_of[t]], names[t]), -1;
        if (!u) continue;
        if (u < prev)
            return snprintf(why, why_len, "%s before the compensation of a later step", names[undo_of[t]]),
                   -1;
        prev = u;
    }
    if (in.status == FACTUM_SAGA_COMPLETED) { /* every step, no compensation */
        for (int t = 1; t <= 4; t++)
            if (!pos[t]) return snprintf(why, why_len, "completed without %s", names[t]), -1;
        return FACTUM_SAGA_COMPLETED;
    }
    if (in.status != FACTUM_SAGA_COMPENSATED) {
        snprintf(why, why_len, "in progress (saga status %d, step %d)", in.status, in.step);
        return 0;
    }
    /* Compensated: the order cancelled, each completed step undone. */
    if (pos[4]) return snprintf(why, why_len, "compensated, yet completed"), -1;
    if (!pos[8]) return snprintf(why, why_len, "compensated, yet not cancelled"), -1;
    for (int t = 1; t <= 3; t++)
        if (pos[t] && !pos[undo_of[t]]) return snprintf(why, why_len, "%s not compensated", names[t]), -1;
    return FACTUM_SAGA_COMPENSATED;
}
