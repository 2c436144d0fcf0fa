#!/usr/bin/env node
// orders.js - the orders of examples/orders as a Node application with the
// official KurrentDB client (@kurrent/kurrentdb-client) against factumd: the
// same four aggregates, the same saga model as libfactum's runner
// (docs/sagas.md), and the payment's timeout as a factum scheduled event -
// an ordinary append to `$scheduled` with "$deliverAt" and "$deliverTo" in its
// metadata, which factumd's scheduler delivers into the payment's stream.
// Not a line of factum-specific client code.
//
//   node orders.js URL run N [SEED] [FAIL] [SILENT]
//
// places N orders (ids n<SEED>-<i>), runs the saga until every order has
// ended, checks each (completed with every step, or fully compensated in
// reverse order) and prints a summary. FAIL is the probability that a step
// fails (default 0.1 for each step), SILENT that the payment never answers
// (default 0.05; it then times out after 500 ms). Exit status 0 when every
// order ended as it must, 1 if not.
//
// The saga keeps each instance's state in `saga-ordersnode-<id>` (one event
// per transition, appended with the revision it loaded as the expected one),
// and derives every event id it writes from the instance and the cause, as
// libfactum's runner does: a transition or a command repeated after a crash is
// an idempotent replay.
'use strict';
const crypto = require('node:crypto');
const { KurrentDBClient, jsonEvent, ANY, NO_STREAM, BACKWARDS, END, START, FORWARDS, eventTypeFilter,
  WrongExpectedVersionError, StreamNotFoundError } = require('@kurrent/kurrentdb-client');

const SAGA = 'ordersnode';
const PAYMENT_TIMEOUT_MS = 500;

// factum_app_derive_id (src/cqrs/decider.c), as examples/bank/node/bank.js has it.
function deriveId(base, salt, index) {
  const h = crypto.createHash('sha256');
  h.update('factum-derived-id/1');
  h.update(Buffer.from(base.replace(/-/g, ''), 'hex'));
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(Buffer.byteLength(salt)));
  h.update(len);
  h.update(salt);
  const ix = Buffer.alloc(4);
  ix.writeUInt32BE(index);
  h.update(ix);
  const b = h.digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x80;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
const ZERO = '00000000-0000-0000-0000-000000000000';

// ---- failure injection: a pure function of (seed, order, what) --------------
function draw(seed, id, what) {
  const h = crypto.createHash('sha256').update(`${seed}/${id}/${what}`).digest();
  return h.readUInt32BE(0) / 2 ** 32;
}

// ---- the participants: aggregates whose commands are idempotent by id -------
const STEPS = [
  { name: 'payment', stream: 'payment', done: 'PaymentCharged', failed: 'PaymentDeclined', undone: 'PaymentRefunded',
    timeout: 'PaymentTimedOut' },
  { name: 'inventory', stream: 'inventory', done: 'InventoryReserved', failed: 'InventoryUnavailable',
    undone: 'InventoryReleased' },
  { name: 'shipment', stream: 'shipment', done: 'ShipmentCreated', failed: 'ShipmentFailed', undone: 'ShipmentCancelled' },
  { name: 'completion', stream: 'order', done: 'OrderCompleted', failed: 'OrderCompletionRefused' },
];

async function readAll(client, stream) {
  const out = [];
  try {
    for await (const r of client.readStream(stream, { direction: FORWARDS, fromRevision: START })) out.push(r.event);
  } catch (e) {
    if (!(e instanceof StreamNotFoundError)) throw e;
  }
  return out;
}

// Handle a command on `stream`: load, decide (types of the events to append,
// or none), append with the loaded revision; the events' ids come from the
// command id, so the command a second time is a replay (or decided on a state
// that already has them: nothing).
async function command(client, stream, commandId, decide) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const evs = await readAll(client, stream);
    const seen = new Set(evs.map((e) => e.type));
    if (evs.some((e) => e.id === deriveId(commandId, stream, 0))) return; // done before
    const out = decide(seen);
    if (!out.length) return;
    const events = out.map((o, i) => jsonEvent({ id: deriveId(commandId, stream, i), type: o.type, data: o.data,
      metadata: { $correlationId: o.data.orderId } }));
    try {
      await client.appendToStream(stream, events,
        { streamState: evs.length ? BigInt(evs[evs.length - 1].revision) : NO_STREAM });
      return;
    } catch (e) {
      if (!(e instanceof WrongExpectedVersionError)) throw e;
    }
  }
  throw new Error(`${stream}: too many conflicts`);
}

class Orders {
  constructor(client, seed, fail, silent) {
    Object.assign(this, { client, seed, fail, silent });
  }

  fails(id, step) { return draw(this.seed, id, step) < this.fail; }

  async place(id, amount) {
    await command(this.client, `order-${id}`, deriveId(ZERO, `place\n${id}`, 0), (seen) =>
      seen.size ? [] : [{ type: 'OrderPlaced', data: { orderId: id, amount } }]);
  }

  // The step's command (compensate: its compensation).
  async issue(id, start, step, compensate, cmdId) {
    const s = STEPS[step];
    const stream = `${s.stream}-${id}`;
    const data = { orderId: id, amount: start.amount };
    if (compensate) {
      return command(this.client, stream, cmdId, (seen) =>
        seen.has(s.done) && !seen.has(s.undone) ? [{ type: s.undone, data }] : []);
    }
    return command(this.client, stream, cmdId, (seen) => {
      if (seen.has(s.done) || seen.has(s.failed)) return [];
      if (step === 0 && seen.has(s.timeout)) return []; // timed out: a late charge is refused
      if (step === 0 && draw(this.seed, id, 'silent') < this.silent) return []; // the gateway never answers
      return [{ type: this.fails(id, step) ? s.failed : s.done, data }];
    });
  }

  async cancel(id, cmdId) {
    await command(this.client, `order-${id}`, cmdId, (seen) =>
      seen.has('OrderCancelled') ? [] : [{ type: 'OrderCancelled', data: { orderId: id } }]);
  }
}

// ---- the saga: libfactum's model (docs/sagas.md), in JavaScript --------------
// state: { status, step, failed, done: [bool], undone: [bool], pos, start }
function transition(st, ev) {
  const t = ev.type;
  const effects = [];
  const enter = (i) => {
    if (i >= STEPS.length) { st.status = 'completed'; return; }
    st.status = 'running';
    st.step = i;
    if (i === 0) effects.push(['schedule', 0]);
    effects.push(['do', i]);
  };
  const nextUndo = (from) => {
    for (let j = from; j >= 0; j--) {
      if (st.done[j] && !st.undone[j] && STEPS[j].undone) {
        st.status = 'compensating';
        st.step = j;
        effects.push(['undo', j]);
        return;
      }
    }
    st.status = 'compensating';
    st.step = -1; // the start: cancel the order
    effects.push(['cancel', -1]);
  };
  if (!st) {
    if (t !== 'OrderPlaced') return null;
    st = { status: 'running', step: 0, failed: -1, done: [], undone: [], start: ev.data };
    enter(0);
    return { st, effects, type: 'SagaStarted' };
  }
  if (st.status === 'running') {
    const s = STEPS[st.step];
    const isTimeout = t === s.timeout && ev.metadata && ev.metadata.$saga === SAGA && ev.metadata.$sagaStep === st.step;
    if (t === s.done) {
      st.done[st.step] = true;
      enter(st.step + 1);
      return { st, effects, type: st.status === 'completed' ? 'SagaCompleted' : 'SagaStepCompleted' };
    }
    if (t === s.failed || isTimeout) {
      st.failed = st.step;
      st.reason = isTimeout ? 'timeout' : t;
      nextUndo(st.step - 1);
      return { st, effects, type: 'SagaStepFailed' };
    }
    return null;
  }
  if (st.status === 'compensating') {
    if (st.step >= 0 && t === STEPS[st.step].undone) {
      st.undone[st.step] = true;
      nextUndo(st.step - 1);
      return { st, effects, type: 'SagaStepCompensated' };
    }
    if (st.step === -1 && t === 'OrderCancelled') {
      st.status = 'compensated';
      return { st, effects, type: 'SagaCompensated' };
    }
  }
  return null;
}

class Saga {
  constructor(client, orders) {
    Object.assign(this, { client, orders });
    this.ended = new Map();
  }

  async load(id) {
    try {
      for await (const r of this.client.readStream(`saga-${SAGA}-${id}`, { direction: BACKWARDS, fromRevision: END, maxCount: 1 })) {
        return { st: r.event.data.state, effects: r.event.data.effects, revision: r.event.revision };
      }
    } catch (e) {
      if (!(e instanceof StreamNotFoundError)) throw e;
    }
    return { st: null, effects: [], revision: null };
  }

  async effect(id, st, [kind, step], progressId, progressAt) {
    const base = deriveId(ZERO, `saga\n${SAGA}\n${id}`, 0);
    if (kind === 'do') return this.orders.issue(id, st.start, step, false, deriveId(base, 'do', step + 1));
    if (kind === 'undo') return this.orders.issue(id, st.start, step, true, deriveId(base, 'undo', step + 1));
    if (kind === 'cancel') return this.orders.cancel(id, deriveId(base, 'undo', 0));
    if (kind === 'schedule') {
      // factum's scheduled events: a request in $scheduled, its id the schedule id
      // (derived: requesting it again is a replay), delivered into the payment's stream.
      const request = jsonEvent({
        id: deriveId(base, 'timeout', step + 1), type: STEPS[step].timeout, data: { orderId: id, step },
        metadata: { $deliverAt: progressAt + PAYMENT_TIMEOUT_MS, $deliverTo: `${STEPS[step].stream}-${id}`,
          $correlationId: id, $saga: SAGA, $sagaStep: step },
      });
      return this.client.appendToStream('$scheduled', [request], { streamState: ANY });
    }
  }

  // One event of $all: the transition, its progress (expected revision, id
  // from the cause), then its effects.
  async handle(ev, position) {
    const id = ev.metadata && ev.metadata.$correlationId;
    if (typeof id !== 'string' || !id.startsWith('n')) return;
    for (let attempt = 0; attempt < 100; attempt++) {
      const { st, effects, revision } = await this.load(id);
      if (st && position < BigInt(st.pos)) return;
      if (st && position === BigInt(st.pos)) return this.run(id, st, effects);
      const next = transition(st && JSON.parse(JSON.stringify(st)), ev);
      if (!next) return;
      next.st.pos = position.toString();
      const base = deriveId(ZERO, `saga\n${SAGA}\n${id}`, 0);
      const progress = jsonEvent({ id: deriveId(base, `in:${position}`, 0), type: next.type,
        data: { state: next.st, effects: next.effects }, metadata: { $correlationId: id, $causationId: ev.id } });
      try {
        await this.client.appendToStream(`saga-${SAGA}-${id}`, [progress],
          { streamState: revision === null ? NO_STREAM : revision });
      } catch (e) {
        if (e instanceof WrongExpectedVersionError) continue; // another runner: load again
        throw e;
      }
      return this.run(id, next.st, next.effects);
    }
  }

  async run(id, st, effects) {
    const at = Date.now();
    for (const e of effects) await this.effect(id, st, e, null, at);
    if (st.status === 'completed' || st.status === 'compensated') this.ended.set(id, st.status);
  }
}

// ---- the invariant, from the log alone --------------------------------------
async function check(client, id) {
  const pos = {};
  for (const s of ['order', 'payment', 'inventory', 'shipment']) {
    for (const e of await readAll(client, `${s}-${id}`)) {
      if (pos[e.type] !== undefined) return `${e.type} twice`;
      pos[e.type] = BigInt(e.position.commit);
    }
  }
  if (pos.OrderCompleted !== undefined) {
    for (const s of STEPS.slice(0, 3)) if (pos[s.done] === undefined || pos[s.undone] !== undefined) return `completed, ${s.name} wrong`;
    return 'completed';
  }
  if (pos.OrderCancelled === undefined) return 'in progress';
  let prev = 0n;
  for (let j = 2; j >= 0; j--) {
    const s = STEPS[j];
    if ((pos[s.done] === undefined) !== (pos[s.undone] === undefined)) return `${s.name}: done without compensation, or the reverse`;
    if (pos[s.undone] !== undefined) {
      if (pos[s.undone] < prev) return 'compensations out of order';
      prev = pos[s.undone];
    }
  }
  if (pos.OrderCancelled < prev) return 'cancelled before the compensations';
  return 'compensated';
}

async function main() {
  const [url, verb, nArg, seedArg, failArg, silentArg] = process.argv.slice(2);
  if (!url || verb !== 'run' || !(Number(nArg) >= 1)) {
    console.error('usage: node orders.js URL run N [SEED] [FAIL] [SILENT]');
    return 1;
  }
  const n = Number(nArg), seed = seedArg || '1';
  const client = KurrentDBClient.connectionString(url);
  const orders = new Orders(client, seed, failArg === undefined ? 0.1 : Number(failArg),
    silentArg === undefined ? 0.05 : Number(silentArg));
  const saga = new Saga(client, orders);
  const ids = Array.from({ length: n }, (_, i) => `n${seed}-${i}`);
  const types = ['OrderPlaced', 'OrderCancelled', ...STEPS.flatMap((s) => [s.done, s.failed, s.undone, s.timeout].filter(Boolean))];
  const sub = client.subscribeToAll({ fromPosition: START, filter: eventTypeFilter({ prefixes: types }) });
  // Orders are independent: each order's events are handled in log order, one
  // after another (a chain of promises per order), different orders at the
  // same time, at most MAX_IN_FLIGHT events in hand (as libfactum's runner
  // shares a batch out to its workers by key, SAGA-6).
  const MAX_IN_FLIGHT = 256;
  const chains = new Map();
  let inFlight = 0, failure = null, finished = false;
  const wakeups = [];
  const finish = () => { if (!finished) { finished = true; sub.unsubscribe().catch(() => {}); } };
  const started = Date.now();
  const done = (async () => {
    for await (const r of sub) {
      if (failure || finished) break;
      const ev = r.event;
      if (!ev || !types.includes(ev.type) || ev.streamId.startsWith('$')) continue;
      const key = (ev.metadata && ev.metadata.$correlationId) || '';
      while (inFlight >= MAX_IN_FLIGHT) await new Promise((w) => wakeups.push(w));
      inFlight++;
      const next = (chains.get(key) || Promise.resolve()).then(() => saga.handle(ev, BigInt(ev.position.commit)))
        .catch((e) => { failure = failure || e; finish(); })
        .finally(() => {
          inFlight--;
          if (chains.get(key) === next) chains.delete(key);
          if (wakeups.length) wakeups.shift()();
          if (ids.every((id) => saga.ended.has(id))) finish();
        });
      chains.set(key, next);
    }
    await Promise.all([...chains.values()]);
  })();
  await Promise.all(ids.map((id, i) => orders.place(id, 100 + i)));
  const timer = setTimeout(finish, 60000 + 2 * PAYMENT_TIMEOUT_MS);
  await done;
  clearTimeout(timer);
  finish();
  if (failure) throw failure;
  const seconds = (Date.now() - started) / 1000;
  const tally = {};
  let wrong = 0;
  for (const id of ids) {
    const r = await check(client, id);
    tally[r] = (tally[r] || 0) + 1;
    if (r !== 'completed' && r !== 'compensated') {
      wrong++;
      console.error(`order ${id}: ${r}`);
    }
  }
  const reasons = {};
  for (const id of ids) {
    const { st } = await saga.load(id);
    if (st && st.reason) reasons[st.reason] = (reasons[st.reason] || 0) + 1;
  }
  console.log(`${n} orders: ${tally.completed || 0} completed, ${tally.compensated || 0} compensated, ${wrong} wrong`);
  console.log(`failures: ${JSON.stringify(reasons)}`);
  console.log(`time: ${seconds.toFixed(2)} s from the first order placed to the last ended, ${(n / seconds).toFixed(1)} orders/s`);
  await client.dispose();
  return wrong ? 1 : 0;
}

module.exports = { deriveId, transition };
if (require.main === module) main().then((c) => process.exit(c), (e) => { console.error(e); process.exit(1); });
