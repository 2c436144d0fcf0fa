// Store-side upcasting (docs/upcasting.md) seen by the official Node client
// (@kurrent/kurrentdb-client), a client factum never wrote a line for,
// against a factumd of its own (projserver.js: --run-projections=All, so
// that the events of a failing upcaster cannot reach the other files'
// server). Upcasters are registered by appending to `$upcasters` with the
// client, after the events were written; then every read path returns the
// upcast events: readStream both ways, readAll both ways, subscribeToStream,
// subscribeToAll with a filter, a persistent subscription (consumer group,
// parked events replayed too) and a JavaScript projection's handlers. A chain v1 -> v2 -> v3 with a type
// rename composes; a bad document is refused at append time with its
// reason; a failing upcaster ends each read path with an error naming the
// event, and faults a projection.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const lib = require('@kurrent/kurrentdb-client');
const { startServer, stopServer, until, slow } = require('./projserver');

const { jsonEvent, START, END, FORWARDS, BACKWARDS, streamNameFilter,
  persistentSubscriptionToStreamSettingsFromDefaults: streamSettings } = lib;

const tag = crypto.randomUUID().slice(0, 8);
const ACC = `acct${tag}-1`; // a category of its own: acct<tag>
const BAD = `fragile${tag}-1`;
const V1 = { eventType: 'MoneyDeposited', fromVersion: 1, toVersion: 2, steps: [
  { op: 'rename', from: 'amount', to: 'amountCents' },
  { op: 'default', path: 'currency', value: 'EUR' }] };
const V2 = { eventType: 'MoneyDeposited', fromVersion: 2, toVersion: 3, steps: [
  { op: 'move', from: 'amountCents', to: 'money.cents' },
  { op: 'move', from: 'currency', to: 'money.currency' },
  { op: 'type', to: 'FundsDeposited' }] };
const FRAGILE = { eventType: 'Fragile', fromVersion: 1, toVersion: 2, steps: [
  { op: 'move', from: 'a', to: 'b.c' }] };

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]);
}

// The first `n` events of a subscription (then unsubscribed), or its error.
function firstEvents(sub, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    sub.on('error', reject);
    sub.on('data', (e) => {
      const ev = e.event || e;
      got.push(ev);
      if (got.length === n) sub.unsubscribe().then(() => resolve(got), reject);
    });
  });
}

async function collect(iter) {
  const out = [];
  for await (const e of iter) out.push(e.event);
  return out;
}

describe('upcasting by the store, through the official Node client', () => {
  let srv, client;
  const register = (doc) => client.appendToStream('$upcasters', jsonEvent({ type: '$upcaster-set', data: doc }));

  before(async () => {
    srv = await startServer();
    client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    // Events written in the old shapes, before any upcaster exists.
    await client.appendToStream(ACC, [
      jsonEvent({ type: 'MoneyDeposited', data: { amount: 100 } }),
      jsonEvent({ type: 'MoneyDeposited', data: { amountCents: 5, currency: 'USD' },
        metadata: { $schemaVersion: 2, $correlationId: 'c-1' } }),
      jsonEvent({ type: 'MoneyWithdrawn', data: { amount: 1 } }),
    ]);
  });

  after(async () => {
    if (client) await client.dispose();
    await stopServer(srv);
  });

  it('reads events as stored while no upcaster is registered', async () => {
    const evs = await collect(client.readStream(ACC));
    assert.deepEqual(evs[0].data, { amount: 100 });
  });

  it('refuses a bad upcaster document at append time, with the reason', async () => {
    await assert.rejects(register({ eventType: 'X', fromVersion: 2, toVersion: 1, steps: [] }),
      (e) => /toVersion/.test(e.message));
    const deep = { eventType: 'X', fromVersion: 1, toVersion: 2,
      steps: [{ op: 'remove', path: Array.from({ length: 40 }, () => 'a').join('.') }] };
    await assert.rejects(register(deep), (e) => /members/.test(e.message));
    const many = { eventType: 'X', fromVersion: 1, toVersion: 2,
      steps: Array.from({ length: 1000 }, () => ({ op: 'remove', path: 'a' })) };
    await assert.rejects(register(many), (e) => /steps/.test(e.message));
    await assert.rejects(client.appendToStream('$upcasters', jsonEvent({ type: 'Other', data: {} })),
      (e) => /\$upcaster-set/.test(e.message));
    // A valid removal beside a bad document: the message names the bad one (event 1), nothing is written.
    await assert.rejects(client.appendToStream('$upcasters', [
      jsonEvent({ type: '$upcaster-removed', data: { eventType: 'X', fromVersion: 1 } }),
      jsonEvent({ type: '$upcaster-removed', data: { eventType: 'X' } })]),
      (e) => /refused event 1 .*fromVersion/.test(e.message));
  });

  it('upcasts on readStream (both directions), with $schemaVersion in the metadata', async () => {
    await register(V1);
    const fwd = await collect(client.readStream(ACC));
    assert.equal(fwd.length, 3);
    assert.deepEqual(fwd[0].data, { amountCents: 100, currency: 'EUR' });
    assert.deepEqual(fwd[0].metadata, { $schemaVersion: 2 });
    assert.equal(fwd[0].type, 'MoneyDeposited');
    assert.equal(fwd[0].revision, 0n);
    assert.deepEqual(fwd[1].data, { amountCents: 5, currency: 'USD' }); // already v2
    assert.deepEqual(fwd[2].data, { amount: 1 }); // another type
    const back = await collect(client.readStream(ACC, { direction: BACKWARDS, fromRevision: END }));
    assert.deepEqual(back[2].data, { amountCents: 100, currency: 'EUR' });
  });

  it('composes a chain v1 -> v2 -> v3 with a type rename', async () => {
    await register(V2);
    const evs = await collect(client.readStream(ACC));
    assert.equal(evs[0].type, 'FundsDeposited');
    assert.deepEqual(evs[0].data, { money: { cents: 100, currency: 'EUR' } });
    assert.deepEqual(evs[0].metadata, { $schemaVersion: 3 });
    assert.equal(evs[1].type, 'FundsDeposited');
    assert.deepEqual(evs[1].data, { money: { cents: 5, currency: 'USD' } });
    assert.deepEqual(evs[1].metadata, { $correlationId: 'c-1', $schemaVersion: 3 });
  });

  it('upcasts on readAll, both directions', async () => {
    const mine = (evs) => evs.filter((e) => e.streamId === ACC);
    const fwd = mine(await collect(client.readAll({ fromPosition: START })));
    assert.equal(fwd.length, 3);
    assert.deepEqual(fwd[0].data, { money: { cents: 100, currency: 'EUR' } });
    const back = mine(await collect(client.readAll({ direction: BACKWARDS, fromPosition: END })));
    assert.equal(back.length, 3);
    assert.equal(back[2].type, 'FundsDeposited');
  });

  it('upcasts on subscribeToStream and on a filtered subscribeToAll', async () => {
    const s1 = await withTimeout(firstEvents(client.subscribeToStream(ACC, { fromRevision: START }), 2),
      20000 * slow, 'subscribeToStream');
    assert.deepEqual(s1[0].data, { money: { cents: 100, currency: 'EUR' } });
    const s2 = await withTimeout(firstEvents(client.subscribeToAll({ fromPosition: START,
      filter: streamNameFilter({ prefixes: [`acct${tag}-`] }) }), 2), 20000 * slow, 'subscribeToAll');
    assert.equal(s2[0].type, 'FundsDeposited');
    assert.deepEqual(s2[1].data, { money: { cents: 5, currency: 'USD' } });
  });

  it('upcasts what a consumer group delivers', async () => {
    await client.createPersistentSubscriptionToStream(ACC, 'g', streamSettings({ startFrom: START }));
    const sub = client.subscribeToPersistentSubscriptionToStream(ACC, 'g');
    const got = await withTimeout(new Promise((resolve, reject) => {
      const evs = [];
      sub.on('error', reject);
      sub.on('data', async (e) => {
        evs.push(e.event);
        await sub.ack(e);
        if (evs.length === 3) resolve(evs);
      });
    }), 20000 * slow, 'persistent subscription');
    await sub.unsubscribe();
    assert.deepEqual(got[0].data, { money: { cents: 100, currency: 'EUR' } });
    assert.deepEqual(got[0].metadata, { $schemaVersion: 3 });
  });

  it('upcasts parked events replayed to a consumer group', async () => {
    await client.createPersistentSubscriptionToStream(ACC, 'parking', streamSettings({ startFrom: START }));
    const sub = client.subscribeToPersistentSubscriptionToStream(ACC, 'parking');
    const replayed = [];
    let parked = false;
    sub.on('data', async (e) => {
      if (!parked && e.event.revision === 0n) {
        parked = true;
        await sub.nack('park', 'later', e);
        return;
      }
      if (parked && e.event.revision === 0n) replayed.push(e.event);
      await sub.ack(e);
    });
    await until('parked', async () =>
      (await client.getPersistentSubscriptionToStreamInfo(ACC, 'parking')).stats.parkedMessageCount === 1n);
    await client.replayParkedMessagesToStream(ACC, 'parking');
    await until('replayed', () => replayed.length === 1);
    await sub.unsubscribe();
    assert.equal(replayed[0].type, 'FundsDeposited');
    assert.deepEqual(replayed[0].data, { money: { cents: 100, currency: 'EUR' } });
  });

  it('gives a JavaScript projection the upcast events, by their new type', async () => {
    const name = `sum${tag}`;
    await client.createProjection(name, `
      fromStream('${ACC}').when({
        $init: function () { return { n: 0, cents: 0 }; },
        FundsDeposited: function (s, e) { s.n += 1; s.cents += e.body.money.cents; return s; }
      });`);
    const st = await until('the projection state', async () => {
      const s = await client.getProjectionState(name);
      return s && s.n === 2 && s;
    });
    assert.deepEqual(st, { n: 2, cents: 105 });
  });

  describe('a failing upcaster', () => {
    const named = (e) => {
      assert.match(e.message, new RegExp(`cannot upcast event 0@${BAD} \\(position \\d+`));
      assert.match(e.message, /"b" of "b.c" is not an object/);
      return true;
    };
    before(async () => {
      await client.appendToStream(BAD, jsonEvent({ type: 'Fragile', data: { a: 1, b: 2 } }));
      await register(FRAGILE);
    });

    it('ends readStream (both directions) and readAll with an error naming the event', async () => {
      await assert.rejects(collect(client.readStream(BAD)), named);
      await assert.rejects(collect(client.readStream(BAD, { direction: BACKWARDS, fromRevision: END })), named);
      await assert.rejects(collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 50 })), named);
    });

    it('ends a subscription and a consumer group with that error', async () => {
      await assert.rejects(withTimeout(firstEvents(client.subscribeToStream(BAD, { fromRevision: START }), 1),
        20000 * slow, 'subscribeToStream'), named);
      await assert.rejects(withTimeout(firstEvents(client.subscribeToAll({ fromPosition: START,
        filter: streamNameFilter({ prefixes: [`fragile${tag}-`] }) }), 1), 20000 * slow, 'subscribeToAll'), named);
      await client.createPersistentSubscriptionToStream(BAD, 'g', streamSettings({ startFrom: START }));
      const sub = client.subscribeToPersistentSubscriptionToStream(BAD, 'g');
      await assert.rejects(withTimeout(new Promise((resolve, reject) => {
        sub.on('error', reject);
        sub.on('data', (e) => resolve(e));
      }), 20000 * slow, 'persistent subscription'), named);
    });

    it('faults a projection that reads the event, with the message', async () => {
      const name = `fragile${tag}`;
      await client.createProjection(name, `fromStream('${BAD}').when({ $any: function (s, e) { return s; } });`);
      const st = await until('the fault', async () => {
        const s = await client.getProjectionStatus(name);
        return s && /faulted/i.test(s.projectionStatus) && s;
      });
      assert.match(st.stateReason, new RegExp(`cannot upcast event 0@${BAD}`));
    });

    it('reads the event again once the upcaster is fixed (no skip)', async () => {
      await register({ ...FRAGILE, steps: [{ op: 'move', from: 'a', to: 'moved.a' }] });
      const evs = await collect(client.readStream(BAD));
      assert.deepEqual(evs[0].data, { b: 2, moved: { a: 1 } });
    });
  });
});
