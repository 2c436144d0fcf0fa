// Reads on the reader pool (docs/adr/0023-cold-reads-off-the-loop.md,
// src/rpc/rdjob.c RDJ-1..4) seen by the official Node client. One database
// is served three times: with --cold-reads never (every read on the loop,
// as before the pool: the reference), with --cold-reads always (every page
// of a Read, every subscription and consumer-group poll and every parked
// replay on the pool) and with detect after the log's files were dropped
// from the page cache (dd iflag=nocache: the pages really are cold, and
// the loop hands them to the pool when mincore says so). Each time every
// read path returns exactly what the reference returned: readStream both
// ways, readAll both ways and filtered, subscribeToStream and a filtered
// subscribeToAll catching up, a consumer group catching up, and its parked
// messages replayed. Calls cut off while their page is being read (clients
// disposed in the middle of many reads, subscriptions closed while their
// poll is on the pool) leave the server serving and, under the sanitizers,
// leak nothing (the server's log is checked at its clean shutdown). While one
// client's large read goes page by page through the pool, another client's
// small reads are answered: some of them complete before the large read
// ends (an ordering, not a time limit).
// Usage: FACTUMD_BIN=/path/to/factumd node cold-reads.js  (or the path as the argument)
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const lib = require('@kurrent/kurrentdb-client');

process.env.FACTUMD_BIN = process.env.FACTUMD_BIN || process.argv[2];
const { until, slow, stopServer } = require('./projserver');

const { jsonEvent, START, END, BACKWARDS, streamNameFilter,
  persistentSubscriptionToStreamSettingsFromDefaults: streamSettings } = lib;

const tag = crypto.randomUUID().slice(0, 8);
const STREAMS = [0, 1, 2, 3].map((k) => `cold${tag}-${k}`);
const BIG = `big${tag}`;
const N_BIG = 3000; // many pages of 64
const tmpBase = process.env.FACTUM_TEST_TMP || os.tmpdir();
fs.mkdirSync(tmpBase, { recursive: true });
const trace = process.env.COLD_READS_TRACE ? (...a) => console.log('  #', ...a) : () => {};
const DB = fs.mkdtempSync(path.join(tmpBase, 'cold-reads-'));

function start(extra) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.env.FACTUMD_BIN, ['--insecure', '--db', DB, '--node-ip', '127.0.0.1', '--node-port', '0',
      '--run-readmodels=false', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        const client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${m[1]}?tls=false`);
        resolve({ p, port: Number(m[1]), log: () => log, client });
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => {
      trace(`factumd exited (${code}): ${log}`);
      reject(new Error(`factumd exited (${code}): ${log}`));
    });
  });
}

async function stop(srv) {
  if (!srv) return;
  await srv.client.dispose();
  srv.p.on('close', (code, sig) => trace(`factumd exit code ${code} signal ${sig}`));
  await stopServer(srv);
}

// Drop the log's files from the page cache (the server is stopped).
function dropLog() {
  const dir = path.join(DB, 'log');
  for (const f of fs.readdirSync(dir)) {
    const r = spawnSync('dd', [`if=${path.join(dir, f)}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
    assert.equal(r.status, 0, 'dd iflag=nocache');
  }
}

async function collect(it) {
  const out = [];
  for await (const e of it) out.push(e);
  return out;
}

const key = (e) => {
  const ev = e.event || e;
  const h = crypto.createHash('sha1').update(JSON.stringify(ev.data)).digest('hex').slice(0, 12);
  return `${ev.streamId}@${ev.revision}:${ev.id}:${h}`;
};

function firstEvents(sub, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    sub.on('error', reject);
    sub.on('data', (e) => {
      if (got.length < n) got.push(e);
      if (got.length === n) sub.unsubscribe().then(() => resolve(got), reject);
    });
  });
}

// Everything the read paths return, as comparable strings.
async function snapshot(client, mode) {
  const r = {};
  trace(mode, 'reads');
  for (const s of [...STREAMS, BIG]) {
    r[`fwd ${s}`] = (await collect(client.readStream(s))).map(key);
    r[`back ${s}`] = (await collect(client.readStream(s, { direction: BACKWARDS, fromRevision: END }))).map(key);
  }
  const ours = (id) => id === BIG || STREAMS.includes(id); // not the groups' own streams
  const mine = (evs) => evs.filter((e) => e.event && ours(e.event.streamId)).map(key);
  r.all = mine(await collect(client.readAll({ fromPosition: START })));
  r.allBack = mine(await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 5000 })));
  r.allFiltered = (await collect(client.readAll({ fromPosition: START,
    filter: streamNameFilter({ prefixes: [`cold${tag}-`] }) }))).map(key);
  trace(mode, 'subscriptions');
  r.subStream = (await firstEvents(client.subscribeToStream(BIG, { fromRevision: START }), N_BIG)).map(key);
  r.subAll = (await firstEvents(client.subscribeToAll({ fromPosition: START,
    filter: streamNameFilter({ prefixes: [`cold${tag}-`] }) }), r.allFiltered.length)).map(key);
  // A consumer group of its own: catches up over BIG, parks every 100th
  // event, then gets them replayed.
  trace(mode, 'group');
  const g = `g-${mode}`;
  await client.createPersistentSubscriptionToStream(BIG, g, streamSettings({ startFrom: START }));
  const sub = client.subscribeToPersistentSubscriptionToStream(BIG, g, { bufferSize: 64 });
  const seen = new Set();
  const delivered = [];
  const replayed = [];
  sub.on('data', async (e) => {
    const rev = Number(e.event.revision);
    if (rev % 100 === 0 && !seen.has(rev)) {
      seen.add(rev);
      delivered.push(key(e));
      await sub.nack('park', 'later', e);
      return;
    }
    if (seen.has(rev)) replayed.push(key(e));
    else delivered.push(key(e));
    await sub.ack(e);
  });
  await until(`group ${g} delivered`, () => delivered.length >= N_BIG, 60000 * slow);
  await until(`group ${g} parked`, async () =>
    (await client.getPersistentSubscriptionToStreamInfo(BIG, g)).stats.parkedMessageCount === BigInt(N_BIG / 100));
  trace(mode, 'replay');
  await client.replayParkedMessagesToStream(BIG, g);
  await until(`group ${g} replayed`, () => replayed.length >= N_BIG / 100, 60000 * slow);
  await sub.unsubscribe();
  r.group = delivered.slice().sort();
  r.parked = replayed.slice();
  return r;
}

function metric(srv, name) {
  const r = spawnSync('curl', ['-s', `http://127.0.0.1:${srv.port}/metrics`], { encoding: 'utf8' });
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.stdout || '');
  return m ? Number(m[1]) : NaN;
}

describe('reads on the reader pool through the official Node client', () => {
  let ref;

  before(async () => {
    const srv = await start(['--cold-reads', 'never']);
    try {
      for (let round = 0; round < N_BIG / 100; round++) {
        const evs = [];
        for (let i = 0; i < 100; i++) evs.push(jsonEvent({ type: 'Big', data: { round, i, pad: 'x'.repeat(300) } }));
        await srv.client.appendToStream(BIG, evs);
        const s = STREAMS[round % STREAMS.length];
        await srv.client.appendToStream(s, [jsonEvent({ type: 'Small', data: { round } }),
          jsonEvent({ type: 'Small', data: { round, second: true } })]);
      }
      ref = await snapshot(srv.client, 'never');
      assert.equal(ref[`fwd ${BIG}`].length, N_BIG);
      assert.equal(ref.parked.length, N_BIG / 100);
      assert.equal(metric(srv, 'factum_reads_off_loop_total'), 0);
    } finally {
      await stop(srv);
    }
  });

  after(() => fs.rmSync(DB, { recursive: true, force: true }));

  it('--cold-reads always: every path returns what the loop returned, through the pool', async () => {
    const srv = await start(['--cold-reads', 'always', '--reader-threads', '1']);
    try {
      const got = await snapshot(srv.client, 'always');
      assert.deepEqual(got, { ...ref, parked: got.parked });
      assert.deepEqual(got.parked.slice().sort(), ref.parked.slice().sort());
      assert.ok(metric(srv, 'factum_reads_off_loop_total') > N_BIG / 64);
    } finally {
      await stop(srv);
    }
  });

  it('--cold-reads detect on a dropped page cache: the same, and the cold pages went to the pool', async () => {
    dropLog();
    const srv = await start([]);
    try {
      const got = await snapshot(srv.client, 'detect');
      assert.deepEqual(got, { ...ref, parked: got.parked });
      assert.deepEqual(got.parked.slice().sort(), ref.parked.slice().sort());
      const off = metric(srv, 'factum_reads_off_loop_total');
      // tmpfs keeps its pages: then nothing is cold and nothing need go
      console.log(`  reads handed to the pool: ${off}`);
    } finally {
      await stop(srv);
    }
  });

  it('calls cancelled or cut off while their pages are read leave the server serving', async () => {
    const srv = await start(['--cold-reads', 'always', '--reader-threads', '2']);
    try {
      // clients that go away with reads in flight (the connection closes
      // while their pages are being read). (Leaving a read's iteration
      // early without closing its client is not used here: the client then
      // stops reading that call without cancelling it, and after a few such
      // calls its connection's window is spent, with or without the pool.)
      for (let round = 0; round < 6; round++) {
        const other = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
        const pending = [];
        for (let i = 0; i < 8; i++) {
          pending.push(collect(other.readStream(BIG)).catch(() => null));
          pending.push(collect(other.readAll({ fromPosition: START })).catch(() => null));
        }
        await new Promise((r) => setTimeout(r, 5 * round));
        await other.dispose();
        await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 2000))]);
      }
      // a subscription closed while its poll is on the pool
      for (let i = 0; i < 10; i++) {
        const sub = srv.client.subscribeToAll({ fromPosition: START });
        await firstEvents(sub, 1);
      }
      const back = await collect(srv.client.readStream(BIG));
      assert.deepEqual(back.map(key), ref[`fwd ${BIG}`]);
    } finally {
      await stop(srv); // clean exit, no sanitizer report (RDJ-4)
    }
  });

  it('another client\'s small reads are answered while a large read goes through the pool', async () => {
    const srv = await start(['--cold-reads', 'always', '--reader-threads', '2']);
    const other = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    try {
      let bigDone = false;
      let smallDuring = 0;
      const big = (async () => {
        let n = 0;
        for (let pass = 0; pass < 3; pass++) {
          for await (const e of srv.client.readAll({ fromPosition: START })) { if (e.event) n++; }
        }
        bigDone = true;
        return n;
      })();
      while (!bigDone) {
        const evs = await collect(other.readStream(STREAMS[0], { maxCount: 2 }));
        assert.equal(evs.length, 2);
        if (!bigDone) smallDuring++;
      }
      assert.ok((await big) >= 3 * N_BIG);
      console.log(`  small reads answered during the large one: ${smallDuring}`);
      assert.ok(smallDuring > 0, 'no small read was answered while the large read ran');
    } finally {
      await other.dispose();
      await stop(srv);
    }
  });
});
