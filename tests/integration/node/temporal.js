// Temporal reads and scheduled events through the official Node client
// (@kurrent/kurrentdb-client), which knows nothing of them: plain
// readStream of `$asof/<stream>?time=...|position=...[&valid=...]` and of
// `$asof/$all?...`, forwards and backwards (events come with their real
// stream and revision); errors for a bad query, a subscription or an
// append to a virtual stream; a scheduled event appended to `$scheduled`
// with `$deliverAt`/`$deliverTo` and delivered by factumd; a malformed
// request refused (InvalidArgument). docs/temporal.md.
// Usage: node temporal.js /path/to/factumd
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const lib = require('@kurrent/kurrentdb-client');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startServer(factumd, db) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--db', db, '--node-ip', '127.0.0.1', '--node-port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({ p, port: Number(m[1]), log: () => log });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`factumd exited (${code}): ${log}`)));
  });
}

async function collect(iter) {
  const out = [];
  for await (const r of iter) out.push(r.event);
  return out;
}

async function throws(fn, what) {
  let err = null;
  try { await fn(); } catch (e) { err = e; }
  assert.ok(err, `${what}: expected an error`);
  return err;
}

async function main() {
  const factumd = process.argv[2];
  const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'temporal-'));
  const srv = await startServer(factumd, path.join(dir, 'db'));
  const client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  let failed = false;
  try {
    const ev = (type, amount, validFrom) => lib.jsonEvent({
      type, data: { amount }, metadata: validFrom ? { $validFrom: validFrom } : {},
    });
    const a1 = await client.appendToStream('acct-1', [
      ev('MoneyDeposited', 100, '2026-03-10T00:00:00Z'),
      ev('MoneyDeposited', 50, '2026-03-14T00:00:00Z'),
    ]);
    await sleep(30);
    const t1 = new Date().toISOString();
    await sleep(30);
    // A correction that arrives late: valid from the 12th, recorded now.
    await client.appendToStream('acct-1', [ev('MoneyWithdrawn', 30, Date.parse('2026-03-12T00:00:00Z'))]);
    await client.appendToStream('acct-2', [ev('MoneyDeposited', 7)]);
    await client.appendToStream('acct-1', [ev('MoneyDeposited', 1)]);
    const now = new Date(Date.now() + 1000).toISOString();

    // As recorded at t1: the first two.
    let got = await collect(client.readStream(`$asof/acct-1?time=${t1}`));
    assert.deepEqual(got.map((e) => [e.streamId, Number(e.revision), e.data.amount]),
      [['acct-1', 0, 100], ['acct-1', 1, 50]]);
    // As of the first append's position: the same.
    const p1 = a1.position.commit;
    got = await collect(client.readStream(`$asof/acct-1?position=${p1}`));
    assert.deepEqual(got.map((e) => Number(e.revision)), [0, 1]);
    // Backwards.
    got = await collect(client.readStream(`$asof/acct-1?time=${t1}`,
      { direction: lib.BACKWARDS, fromRevision: lib.END }));
    assert.deepEqual(got.map((e) => Number(e.revision)), [1, 0]);
    // Bi-temporal: as recorded now, about the 13th: the deposit of the 10th
    // and the late withdrawal of the 12th; as recorded at t1 about the 13th:
    // the deposit alone (the correction had not arrived).
    got = await collect(client.readStream(`$asof/acct-1?time=${now}&valid=2026-03-13T00:00:00Z`));
    assert.deepEqual(got.map((e) => [Number(e.revision), e.type]), [[0, 'MoneyDeposited'], [2, 'MoneyWithdrawn']]);
    got = await collect(client.readStream(`$asof/acct-1?time=${t1}&valid=2026-03-13T00:00:00Z`));
    assert.deepEqual(got.map((e) => Number(e.revision)), [0]);
    // Paging through maxCount.
    got = await collect(client.readStream(`$asof/acct-1?time=${now}`, { maxCount: 2 }));
    assert.deepEqual(got.map((e) => Number(e.revision)), [0, 1]);
    // $all as of t1: the two events of acct-1, nothing later.
    got = (await collect(client.readStream(`$asof/$all?time=${t1}`))).filter((e) => !e.streamId.startsWith('$'));
    assert.deepEqual(got.map((e) => [e.streamId, Number(e.revision)]), [['acct-1', 0], ['acct-1', 1]]);
    got = (await collect(client.readStream(`$asof/$all?time=${now}`, { direction: lib.BACKWARDS, fromRevision: lib.END })))
      .filter((e) => !e.streamId.startsWith('$'));
    assert.deepEqual(got.map((e) => [e.streamId, Number(e.revision)]),
      [['acct-1', 3], ['acct-2', 0], ['acct-1', 2], ['acct-1', 1], ['acct-1', 0]]);
    // A stream that did not exist then.
    await throws(() => collect(client.readStream(`$asof/acct-2?time=${t1}`)), 'acct-2 as of t1');
    // Bad queries, a subscription, an append: refused.
    for (const bad of ['$asof/acct-1', '$asof/acct-1?when=2026-01-01T00:00:00Z', '$asof/acct-1?time=yesterday',
      '$asof/acct-1?time=2026-01-01T00:00:00Z&position=3', '$asof/acct-1?position=-1']) {
      const e = await throws(() => collect(client.readStream(bad)), bad);
      assert.ok(/asof|invalid|argument/i.test(String(e.message)), `${bad}: ${e.message}`);
    }
    await throws(() => new Promise((resolve, reject) => {
      const sub = client.subscribeToStream(`$asof/acct-1?time=${t1}`);
      sub.on('error', reject);
      sub.on('data', () => { sub.unsubscribe(); resolve(); });
      setTimeout(() => { sub.unsubscribe(); resolve(); }, 3000);
    }), 'subscription to a virtual stream');
    await throws(() => client.appendToStream(`$asof/acct-1?time=${t1}`, [ev('X', 1)]), 'append to a virtual stream');
    await throws(() => client.deleteStream(`$asof/acct-1?time=${t1}`), 'delete of a virtual stream');
    await throws(() => client.tombstoneStream(`$asof/acct-1?time=${t1}`), 'tombstone of a virtual stream');
    await throws(() => client.createPersistentSubscriptionToStream(`$asof/acct-1?time=${t1}`, 'g',
      lib.persistentSubscriptionToStreamSettingsFromDefaults()), 'a consumer group on a virtual stream');

    // A read model's tables as of a time or a position, over HTTP (factumd's /readmodels).
    const http = `http://127.0.0.1:${srv.port}`;
    const def = {
      name: 'balances', schema: ['CREATE TABLE b(id TEXT PRIMARY KEY, n INTEGER NOT NULL)'], streams: ['acct-'],
      handlers: {
        MoneyDeposited: "INSERT INTO b VALUES (:stream, :data.amount) ON CONFLICT(id) DO UPDATE SET n = n + :data.amount",
        MoneyWithdrawn: "INSERT INTO b VALUES (:stream, -:data.amount) ON CONFLICT(id) DO UPDATE SET n = n - :data.amount",
      },
    };
    let r = await fetch(`${http}/readmodels`, { method: 'POST', body: JSON.stringify(def) });
    assert.equal(r.status, 201, await r.text());
    const q = async (extra) => {
      const res = await fetch(`${http}/readmodels/balances/query`, {
        method: 'POST', body: JSON.stringify({ sql: 'SELECT id, n FROM b ORDER BY id', ...extra }),
      });
      return [res.status, await res.json()];
    };
    let [code, body] = await q({ asOf: t1 });
    assert.equal(code, 200, JSON.stringify(body));
    assert.deepEqual(body.rows, [['acct-1', 150]]);
    [code, body] = await q({ asOfPosition: Number(p1) });
    assert.deepEqual(body.rows, [['acct-1', 150]]);
    [code, body] = await q({ asOf: now });
    assert.deepEqual(body.rows, [['acct-1', 121], ['acct-2', 7]]);
    r = await fetch(`${http}/readmodels/balances/query?sql=${encodeURIComponent('SELECT n FROM b')}&as_of=${t1}`);
    assert.equal(r.status, 200);
    assert.deepEqual((await r.json()).rows, [[150]]);
    [code, body] = await q({ asOf: 'yesterday' });
    assert.equal(code, 400);
    [code, body] = await q({ asOf: t1, asOfPosition: 3 });
    assert.equal(code, 400);

    // Links resolve as of the read: a link stream to tgt-3 (not an acct- stream: the read model below takes those), whose events are
    // then truncated away ($tb): read now, the links lead nowhere; read as of
    // before the truncation, they lead to the events as they were.
    const a3 = await client.appendToStream('tgt-3', [ev('MoneyDeposited', 3), ev('MoneyDeposited', 4)]);
    await client.appendToStream('links-3', [0, 1].map((v) => lib.binaryEvent({ type: '$>', data: Buffer.from(`${v}@tgt-3`) })));
    await sleep(30);
    const beforeTb = new Date().toISOString();
    await sleep(30);
    await client.setStreamMetadata('tgt-3', { truncateBefore: 2 });
    const resolved = async (name) => {
      const out = [];
      for await (const r of client.readStream(name, { resolveLinkTos: true })) out.push(r.link ? (r.event ? r.event.data.amount : null) : 'no link');
      return out;
    };
    assert.deepEqual(await resolved(`$asof/links-3?time=${beforeTb}`), [3, 4]);
    assert.deepEqual(await resolved('links-3'), [null, null], 'read now, the links lead nowhere (the link alone)');
    assert.ok(a3.position.commit > 0n);

    // Scheduled events: a request appended by the client, delivered by factumd.
    const at = new Date(Date.now() + 400).toISOString();
    await client.appendToStream('$scheduled', [lib.jsonEvent({
      type: 'PaymentTimedOut', data: { order: 'o-1' },
      metadata: { $deliverAt: at, $deliverTo: 'order-o-1', $correlationId: 'c-1' },
    })]);
    await throws(() => collect(client.readStream('order-o-1')), 'order-o-1 before it is due');
    let delivered = [];
    for (let i = 0; i < 100 && delivered.length === 0; i++) {
      await sleep(50);
      try { delivered = await collect(client.readStream('order-o-1')); } catch { /* not yet */ }
    }
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0].type, 'PaymentTimedOut');
    assert.deepEqual(delivered[0].data, { order: 'o-1' });
    assert.equal(delivered[0].metadata.$correlationId, 'c-1');
    assert.equal(delivered[0].metadata.$deliverAt, undefined);
    assert.ok(Date.now() >= Date.parse(at));
    // Malformed requests: refused, nothing written.
    for (const metadata of [{ $deliverAt: at }, { $deliverTo: 'x' }, { $deliverAt: 'soon', $deliverTo: 'x' }]) {
      await throws(() => client.appendToStream('$scheduled', [lib.jsonEvent({ type: 'T', data: {}, metadata })]),
        `request ${JSON.stringify(metadata)}`);
    }
    got = await collect(client.readStream('$scheduled'));
    assert.equal(got.length, 1);
    // The same through the v2 AppendSession (multiStreamAppend): checked, and delivered.
    await throws(() => client.multiStreamAppend([{ streamName: '$scheduled', expectedState: lib.ANY,
      events: [lib.jsonEvent({ type: 'T', data: {}, metadata: { $deliverTo: 'x' } })] }]), 'v2 request without $deliverAt');
    await client.multiStreamAppend([{ streamName: '$scheduled', expectedState: lib.ANY,
      events: [lib.jsonEvent({ type: 'Reminder', data: { n: 2 },
        metadata: { $deliverAt: new Date(Date.now() + 200).toISOString(), $deliverTo: 'reminders-v2' } })] }]);
    delivered = [];
    for (let i = 0; i < 100 && delivered.length === 0; i++) {
      await sleep(50);
      try { delivered = await collect(client.readStream('reminders-v2')); } catch { /* not yet */ }
    }
    assert.deepEqual(delivered.map((e) => [e.type, e.data.n]), [['Reminder', 2]]);
    console.log('ok temporal reads and scheduled events through the official client');
  } catch (e) {
    failed = true;
    console.error('FAIL', e);
    console.error(srv.log());
  } finally {
    await Promise.race([client.dispose().catch(() => {}), sleep(1000)]);
    srv.p.removeAllListeners('exit');
    srv.p.kill('SIGTERM');
    await new Promise((r) => srv.p.on('exit', r));
    if (/Sanitizer|runtime error/.test(srv.log())) {
      failed = true;
      console.error('FAIL: a sanitizer report from factumd:\n' + srv.log());
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
