// kill -9 of factumd while consumer groups consume (PS-1, PS-2): a producer
// appends, three RoundRobin consumers per group ack what they get, and the
// server is killed in the middle. After a restart on the same data
// directory every group resumes after its last durable checkpoint C:
//  - every event at or before C had been acked before the kill (a
//    checkpoint never passes an unfinished event),
//  - nothing at or before C is delivered again (duplicates are limited to
//    what was not checkpointed),
//  - every stored event after C is delivered after the restart (nothing is
//    lost), and every event acked before the kill is stored.
// One group follows a stream, one a filtered $all.
// Usage: node ps-crash.js /path/to/factumd
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const lib = require('@kurrent/kurrentdb-client');

const factumd = process.argv[2];
const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'ps-crash-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start() {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--db', path.join(dir, 'db'), '--node-ip', '127.0.0.1', '--node-port', '0'],
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

async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const groups = [
  { name: 'gs', kind: 'stream', stream: 'crash-a' },
  { name: 'ga', kind: 'all', prefix: 'crash-' },
];

function subscribe(client, g) {
  return g.kind === 'stream'
    ? client.subscribeToPersistentSubscriptionToStream(g.stream, g.name, { bufferSize: 10 })
    : client.subscribeToPersistentSubscriptionToAll(g.name, { bufferSize: 10 });
}

// The identity of an event in a group: its stream and revision.
const key = (e) => `${e.event.streamId}@${e.event.revision}`;

async function main() {
  let srv = await start();
  let client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  const ck = { checkPointAfter: 100, checkPointLowerBound: 1, checkPointUpperBound: 50 };
  await client.createPersistentSubscriptionToStream('crash-a', 'gs',
    lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: lib.START, ...ck }));
  await client.createPersistentSubscriptionToAll('ga', lib.persistentSubscriptionToAllSettingsFromDefaults({ startFrom: lib.START, ...ck }),
    { filter: lib.streamNameFilter({ prefixes: ['crash-'] }) });
  for (const g of groups) {
    g.acked = new Set();
    g.consumers = [0, 1, 2].map(() => {
      const s = subscribe(client, g);
      s.on('data', (e) => { s.ack(e).then(() => g.acked.add(key(e)), () => {}); });
      s.on('error', () => {});
      return s;
    });
  }
  let producing = true;
  const producer = (async () => {
    for (let b = 0; producing; b++) {
      const stream = b % 2 ? 'crash-a' : 'crash-b';
      try {
        await client.appendToStream(stream, Array.from({ length: 20 }, (_, i) => lib.jsonEvent({ type: 'E', data: { b, i } })));
      } catch {
        return;
      }
    }
  })();
  await until('a good part consumed', () => groups.every((g) => g.acked.size >= 600), 60000);
  srv.p.removeAllListeners('exit');
  srv.p.kill('SIGKILL');
  await new Promise((r) => srv.p.once('exit', r));
  producing = false;
  await producer;
  client.dispose().catch(() => {});
  const ackedBefore = groups.map((g) => g.acked.size);

  srv = await start();
  client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  const stored = {};
  for (const s of ['crash-a', 'crash-b']) {
    stored[s] = [];
    for await (const e of client.readStream(s)) stored[s].push(e.event.revision);
  }
  for (const g of groups) {
    const info = g.kind === 'stream'
      ? await client.getPersistentSubscriptionToStreamInfo(g.stream, g.name)
      : await client.getPersistentSubscriptionToAllInfo(g.name);
    // The durable checkpoint, and which stored events lie at or before it.
    let before, expectAfter;
    if (g.kind === 'stream') {
      const C = info.stats.lastCheckpointedEventRevision;
      assert.ok(C !== undefined, 'the stream group had a checkpoint');
      before = (e) => e.event.revision <= C;
      expectAfter = stored['crash-a'].filter((r) => r > C).map((r) => `crash-a@${r}`);
      g.C = C;
    } else {
      const C = info.stats.lastCheckpointedEventPosition;
      assert.ok(C !== undefined, 'the $all group had a checkpoint');
      before = (e) => e.commitPosition <= C.commit;
      expectAfter = [];
      for await (const e of client.readAll({ fromPosition: { commit: C.commit + 1n, prepare: C.commit + 1n }, maxCount: 1000000 })) {
        if (e.event && e.event.streamId.startsWith('crash-')) expectAfter.push(key(e));
      }
      g.C = C.commit;
    }
    // Everything acked before the kill was stored.
    for (const k of g.acked) {
      const [s, r] = k.split('@');
      assert.ok(stored[s].includes(BigInt(r)), `${g.name}: acked ${k} is stored`);
    }
    const again = new Map();
    let early = 0;
    const subs = [0, 1, 2].map(() => {
      const s = subscribe(client, g);
      s.on('data', (e) => {
        if (before(e)) early++;
        again.set(key(e), (again.get(key(e)) || 0) + 1);
        s.ack(e).catch(() => {});
      });
      s.on('error', () => {});
      return s;
    });
    await until(`${g.name}: everything after the checkpoint delivered`, () => expectAfter.every((k) => again.has(k)), 60000);
    await sleep(300);
    assert.equal(early, 0, `${g.name}: nothing at or before the checkpoint is delivered again`);
    // Everything at or before the checkpoint had been acked.
    if (g.kind === 'stream') {
      for (const r of stored['crash-a'].filter((x) => x <= g.C))
        assert.ok(g.acked.has(`crash-a@${r}`), `${g.name}: crash-a@${r} (before the checkpoint) was acked before the kill`);
    }
    const dup = [...g.acked].filter((k) => again.has(k)).length;
    console.log(`# ${g.name}: ${g.acked.size} acked before the kill, checkpoint ${g.C}, ${expectAfter.length} delivered ` +
      `after the restart, of which ${dup} had been acked already (not yet checkpointed)`);
    for (const s of subs) await s.unsubscribe();
  }
  await client.dispose();
  srv.p.removeAllListeners('exit');
  srv.p.kill('SIGTERM');
  await new Promise((r) => srv.p.once('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`ok: groups resumed after kill -9 (acked before: ${ackedBefore.join(', ')})`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
