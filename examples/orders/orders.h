/*
 * orders.h - the brief's orders, event-sourced with libfactum: four
 * aggregates written as deciders (factum_app.h), the saga that drives an
 * order through them (factum_saga.h), and three read models over the same
 * events (factum_readmodel.h). The driver (main.c), the crash test
 * (tests/fault/saga_crash.c) and the benchmark (bench/sagas.c) share it.
 *
 * Streams and events (data is JSON, every event's metadata carries
 * {"$correlationId": <order id>}, which the saga correlates on):
 *   order-<id>      OrderPlaced, OrderCompleted, OrderCancelled
 *   payment-<id>    PaymentCharged | PaymentDeclined | PaymentTimedOut, PaymentRefunded
 *   inventory-<id>  InventoryReserved | InventoryUnavailable, InventoryReleased
 *   shipment-<id>   ShipmentCreated | ShipmentFailed, ShipmentCancelled
 *
 * The saga "orders": OrderPlaced -> payment -> inventory -> shipment ->
 * completion. When a step fails (its service answers with a failure, the
 * payment times out, or the order refuses completion) the completed steps
 * are compensated in reverse order: ShipmentCancelled, InventoryReleased,
 * PaymentRefunded, and last OrderCancelled.
 *
 * Failures are injected, deterministically: step s of order o fails when a
 * hash of (seed, o, s) falls below the step's probability, so a run is
 * reproducible and a command decided again after a crash decides the same.
 */
#ifndef ORDERS_H
#define ORDERS_H

#include "factum.h"
#include "factum_app.h"
#include "factum_readmodel.h"
#include "factum_saga.h"

enum { STEP_PAYMENT = 0, STEP_INVENTORY, STEP_SHIPMENT, STEP_COMPLETION, N_STEPS };

typedef struct orders_config {
    uint64_t seed;
    double fail[N_STEPS];       /* probability that the step fails (payment: declined) */
    double silent_payment;      /* probability that the payment service never answers (-> timeout) */
    int64_t payment_timeout_ms; /* default 30000 */
    uint32_t saga_workers;      /* the saga runner's worker threads (0: its default) */
} orders_config;

typedef struct orders_app orders_app;

/* Open the application on store s: its deciders and the saga definition.
 * run_saga: also start a threaded saga runner. Returns NULL on error
 * (printed). */
orders_app *orders_open(factum_store *s, const orders_config *cfg, int run_saga);
void orders_close(orders_app *a);
factum_saga *orders_saga(orders_app *a);

/* Place order `id` (PlaceOrder through the order decider, command id
 * derived from the id: placing it twice places it once). *position
 * (may be NULL) receives the position of OrderPlaced. Returns 0 or an error. */
int orders_place(orders_app *a, const char *id, const char *customer, long amount, const char *sku, int qty,
                 uint64_t *position);

/* Whether step `step` of order `id` fails under cfg (the injection). */
int orders_fails(const orders_config *cfg, const char *id, int step);
int orders_silent(const orders_config *cfg, const char *id);

/* Create the three read models (order_summary, revenue, shipping_manifest)
 * if they do not exist yet. */
int orders_readmodels(factum_readmodels *m);

/* Check the saga's invariant for order `id` from the log alone: the order
 * is completed (every step's event, no compensation) or fully compensated
 * (OrderCancelled, and each completed step's compensation, once, in
 * reverse order), no event type twice in a stream, and the saga instance
 * agrees. Returns FACTUM_SAGA_COMPLETED or FACTUM_SAGA_COMPENSATED, 0 when
 * the order is still in progress (or not placed yet), -1 for a violation;
 * `why` says what. */
int orders_check(factum_store *s, const char *id, char *why, size_t why_len);

/* The read model names. */
extern const char *const orders_readmodel_names[3];

#endif
