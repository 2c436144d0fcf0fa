// Script upcasters (docs/upcasting.md, "Script upcasters"; ADR 0016) seen by
// the official Node client (@kurrent/kurrentdb-client), against a factumd of
// its own (projserver.js). A JavaScript upcaster is registered by a plain
// append to `$upcasters` after the events were written (more than a page of
// them, so that several hand-offs happen); then every read path returns
// the events the script made: readStream both ways, readAll both ways,
// subscribeToStream (catch-up, then live), a filtered subscribeToAll, a
// consumer group (parked events replayed too), a projection's handlers;
// `$raw/<stream>` still returns the stored bytes. A script that loops
// forever ends the reads that meet it with upcast-failed naming the event
// and the time limit, and the server keeps serving meanwhile: appends and
// reads of another client complete while the endless script runs (UPJ-1).
// That other client runs in a process of its own: the reads of two
// @kurrent/kurrentdb-client instances in one process share its native
// bridge, and one waiting read would hold up the other's on the client side.
// A throwing script ends a consumer group's member with the error.
// Usage: FACTUMD_BIN=/path/to/factumd node upcast-script.js  (or the path as the argument)
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const lib = require('@kurrent/kurrentdb-client');
const { spawn } = require('node:child_process');

process.env.FACTUMD_BIN = process.env.FACTUMD_BIN || process.argv[2];
const { startServer, stopServer, until, slow } = require('./projserver');

const { jsonEvent, START, END, BACKWARDS, streamNameFilter,
  persistentSubscriptionToStreamSettingsFromDefaults: streamSettings } = lib;

const tag = crypto.randomUUID().slice(0, 8);
const ACC = `acct${tag}-1`;
const LOOPS = `loops${tag}-1`;
const THROWS = `throws${tag}-1`;
const N = 150; // more than two pages of 64
const UP = {
  eventType: 'MoneyDeposited', fromVersion: 1, toVersion: 2,
  script: `function (e) {
    // cents from the old amount; the type renamed; metadata kept and added to
    return { type: 'FundsDeposited',
             data: { cents: e.data.amount * 100, note: e.data.note.toUpperCase() },
             metadata: Object.assign({ by: 'script' }, e.metadata) };
  }`,
};

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]);
}

function firstEvents(sub, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    sub.on('error', reject);
    sub.on('data', (e) => {
      got.push(e.event || e);
      if (got.length === n) sub.unsubscribe().then(() => resolve(got), reject);
    });
  });
}

async function collect(iter) {
  const out = [];
  for await (const e of iter) out.push(e.event);
  return out;
}

function checkUpcast(ev, i) {
  assert.equal(ev.type, 'FundsDeposited');
  assert.deepEqual(ev.data, { cents: i * 100, note: `N${i}` });
  assert.deepEqual(ev.metadata, i % 2 ? { by: 'script', src: 'old', $schemaVersion: 2 }
    : { by: 'script', $schemaVersion: 2 });
}

describe('script upcasters through the official Node client', () => {
  let srv, client;
  const register = (doc) => client.appendToStream('$upcasters', jsonEvent({ type: '$upcaster-set', data: doc }));

  before(async () => {
    srv = await startServer();
    const url = `kurrentdb://127.0.0.1:${srv.port}?tls=false`;
    client = lib.KurrentDBClient.connectionString(url);
    const evs = [];
    for (let i = 0; i < N; i++) {
      evs.push(jsonEvent({ type: 'MoneyDeposited', data: { amount: i, note: `n${i}` },
        metadata: i % 2 ? { src: 'old' } : undefined }));
    }
    evs.push(jsonEvent({ type: 'Other', data: { k: 1 } }));
    await client.appendToStream(ACC, evs);
    await register(UP);
  });

  after(async () => {
    if (client) await client.dispose();
    await stopServer(srv);
  });

  it('upcasts on readStream, both directions, and $raw/ stays raw', async () => {
    const fwd = await collect(client.readStream(ACC));
    assert.equal(fwd.length, N + 1);
    fwd.slice(0, N).forEach(checkUpcast);
    assert.equal(fwd[N].type, 'Other');
    assert.deepEqual(fwd[N].data, { k: 1 });
    const back = await collect(client.readStream(ACC, { direction: BACKWARDS, fromRevision: END }));
    assert.equal(back.length, N + 1);
    back.reverse().slice(0, N).forEach(checkUpcast);
    const raw = await collect(client.readStream(`$raw/${ACC}`, { maxCount: 3 }));
    assert.equal(raw[0].type, 'MoneyDeposited');
    assert.deepEqual(raw[0].data, { amount: 0, note: 'n0' });
  });

  it('upcasts on readAll, both directions', async () => {
    const mine = (evs) => evs.filter((e) => e.streamId === ACC);
    const fwd = mine(await collect(client.readAll({ fromPosition: START })));
    assert.equal(fwd.length, N + 1);
    fwd.slice(0, N).forEach(checkUpcast);
    const back = mine(await collect(client.readAll({ direction: BACKWARDS, fromPosition: END })));
    back.reverse().slice(0, N).forEach(checkUpcast);
  });

  it('upcasts on subscribeToStream (catch-up, then live) and a filtered subscribeToAll', async () => {
    const sub = client.subscribeToStream(ACC, { fromRevision: START });
    const got = withTimeout(firstEvents(sub, N + 2), 30000 * slow, 'subscribeToStream');
    await new Promise((r) => setTimeout(r, 300));
    await client.appendToStream(ACC, jsonEvent({ type: 'MoneyDeposited', data: { amount: 7, note: 'live' } }));
    const evs = await got;
    evs.slice(0, N).forEach(checkUpcast);
    assert.equal(evs[N + 1].type, 'FundsDeposited');
    assert.deepEqual(evs[N + 1].data, { cents: 700, note: 'LIVE' });
    const all = await withTimeout(firstEvents(client.subscribeToAll({ fromPosition: START,
      filter: streamNameFilter({ prefixes: [`acct${tag}-`] }) }), N), 30000 * slow, 'subscribeToAll');
    all.slice(0, N).forEach(checkUpcast); // (more may have come before the unsubscription)
  });

  it('upcasts what a consumer group delivers, parked events replayed too', async () => {
    await client.createPersistentSubscriptionToStream(ACC, 'g', streamSettings({ startFrom: START }));
    const sub = client.subscribeToPersistentSubscriptionToStream(ACC, 'g');
    const got = [];
    let parked = false;
    let replayed = null;
    sub.on('data', async (e) => {
      if (e.event.revision === 0n && !parked) {
        parked = true;
        await sub.nack('park', 'later', e);
        return;
      }
      if (e.event.revision === 0n) replayed = e.event;
      else got.push(e.event);
      await sub.ack(e);
    });
    await until('the group delivered', () => got.length >= N);
    for (const ev of got) if (ev.revision < BigInt(N)) checkUpcast(ev, Number(ev.revision));
    await until('parked', async () =>
      (await client.getPersistentSubscriptionToStreamInfo(ACC, 'g')).stats.parkedMessageCount === 1n);
    await client.replayParkedMessagesToStream(ACC, 'g');
    await until('replayed', () => replayed);
    await sub.unsubscribe();
    checkUpcast(replayed, 0);
  });

  it('gives a JavaScript projection the events the script made', async () => {
    const name = `sum${tag}`;
    await client.createProjection(name, `
      fromStream('${ACC}').when({
        $init: function () { return { n: 0, cents: 0 }; },
        FundsDeposited: function (s, e) { s.n += 1; s.cents += e.body.cents; return s; }
      });`);
    const want = (N * (N - 1) / 2 + 7) * 100;
    const st = await until('the projection state', async () => {
      const s = await client.getProjectionState(name);
      return s && s.n === N + 1 && s;
    });
    assert.equal(st.cents, want);
  });

  it('ends a read at an endless script with upcast-failed, while the server serves others', async () => {
    await client.appendToStream(LOOPS, [jsonEvent({ type: 'Spin', data: { a: 1 } })]);
    await register({ eventType: 'Spin', fromVersion: 1, toVersion: 2, script: 'function (e) { for (;;) {} }' });
    // Another client, in a process of its own: appends and reads back, again
    // and again, printing when each pair completed.
    const busy = `busy${tag}-1`;
    const child = spawn(process.execPath, ['-e', `
      const lib = require(${JSON.stringify(require.resolve('@kurrent/kurrentdb-client'))});
      const c = lib.KurrentDBClient.connectionString(process.argv[1]);
      (async () => {
        for (let i = 0; ; i++) {
          await c.appendToStream(process.argv[2], lib.jsonEvent({ type: 'Tick', data: { i } }));
          for await (const e of c.readStream(process.argv[2], { direction: lib.BACKWARDS, fromRevision: lib.END,
            maxCount: 1 })) if (e.event.data.i !== i) throw new Error('read ' + e.event.data.i + ', not ' + i);
          console.log(Date.now());
        }
      })().catch((e) => { console.error(e); process.exit(1); });`,
    `kurrentdb://127.0.0.1:${srv.port}?tls=false`, busy], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    try {
      await until('the other client', () => out.split('\n').length > 3);
      const t0 = Date.now();
      const e = await collect(client.readStream(LOOPS)).then(() => null, (x) => x);
      const t1 = Date.now();
      assert.ok(e instanceof Error, 'the read of the endless script failed');
      assert.match(e.message, new RegExp(`cannot upcast event 0@${LOOPS} \\(position \\d+, type Spin`));
      assert.match(e.message, /upcaster Spin v1->v2 \(script\): the script timed out after 250 ms/);
      const during = out.split('\n').filter((l) => l && Number(l) > t0 && Number(l) < t1).length;
      console.log(`# while the endless script ran (${t1 - t0} ms), the other client appended and read ${during} times`);
      assert.ok(t1 - t0 >= 250 && during >= 2, `served ${during} times in ${t1 - t0} ms`);
    } finally {
      child.kill('SIGKILL');
    }
    // the subscription path too
    await assert.rejects(withTimeout(firstEvents(client.subscribeToStream(LOOPS, { fromRevision: START }), 1),
      30000 * slow, 'subscribeToStream'), /timed out after 250 ms/);
  });

  it('ends a consumer group member at a throwing script, the event staying first', async () => {
    await client.appendToStream(THROWS, [jsonEvent({ type: 'Thrower', data: { a: 1 } })]);
    await register({ eventType: 'Thrower', fromVersion: 1, toVersion: 2,
      script: 'function (e) {\n  throw new RangeError("no " + e.data.a);\n}' });
    await client.createPersistentSubscriptionToStream(THROWS, 'g', streamSettings({ startFrom: START }));
    for (let round = 0; round < 2; round++) {
      const sub = client.subscribeToPersistentSubscriptionToStream(THROWS, 'g');
      await assert.rejects(withTimeout(new Promise((resolve, reject) => {
        sub.on('error', reject);
        sub.on('data', (e) => resolve(e));
      }), 30000 * slow, 'persistent subscription'), (e) => {
        assert.match(e.message, new RegExp(`cannot upcast event 0@${THROWS}`));
        assert.match(e.message, /upcaster Thrower v1->v2 \(script\): RangeError: no 1 \(line 2\)/);
        return true;
      });
    }
    // fixed: the same event arrives, upcast
    await register({ eventType: 'Thrower', fromVersion: 1, toVersion: 2,
      script: 'function (e) { return { data: { fixed: e.data.a } }; }' });
    const sub = client.subscribeToPersistentSubscriptionToStream(THROWS, 'g');
    const e = await withTimeout(new Promise((resolve, reject) => {
      sub.on('error', reject);
      sub.on('data', (x) => resolve(x));
    }), 30000 * slow, 'persistent subscription, fixed');
    await sub.ack(e);
    await sub.unsubscribe();
    assert.deepEqual(e.event.data, { fixed: 1 });
  });
});
