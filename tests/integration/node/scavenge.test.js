// Scavenging a factumd through the official Node client: its Operations
// stubs (StartScavenge, StopScavenge, from @kurrent/kurrentdb-client's own
// generated code) against a factumd of its own with 1 MiB segments, while the
// client's catch-up subscription to $all and a consumer group read and a
// writer appends. Afterwards a stream under $maxCount reads its last events
// only, $all has lost the expired ones, a catch-up from the start gets every
// survivor exactly once and in order, and the group delivered every event
// it read in order of version.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const { KurrentDBClient, jsonEvent, START, FORWARDS, persistentSubscriptionToStreamSettingsFromDefaults } =
  require('@kurrent/kurrentdb-client');
const opsPb = require('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/operations_pb');
const { OperationsClient } = require('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/operations_grpc_pb');

const factumd = process.env.FACTUMD_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;

async function until(what, fn, ms = 30000 * slow) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function startServer(dir) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--db', dir, '--chunk-size', '1048576', '--node-ip', '127.0.0.1',
      '--node-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

const pad = 'x'.repeat(2000);

describe('scavenge through the Operations service', { skip: factumd ? false : 'FACTUMD_BIN is not set (ctest runs this file)' }, () => {
  let srv, dir, client, ops, base;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factum-scavenge-'));
    srv = await startServer(path.join(dir, 'db'));
    base = `http://127.0.0.1:${srv.port}`;
    client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    ops = new OperationsClient(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    if (ops) ops.close();
    if (client) await client.dispose();
    if (srv) {
      const exited = new Promise((r) => srv.p.once('exit', r));
      srv.p.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = () => new Promise((resolve, reject) => {
    const req = new opsPb.StartScavengeReq();
    const o = new opsPb.StartScavengeReq.Options();
    o.setThreadCount(1);
    o.setStartFromChunk(0);
    req.setOptions(o);
    ops.startScavenge(req, (err, res) => (err ? reject(err) : resolve(res)));
  });
  const stop = (id) => new Promise((resolve) => {
    const req = new opsPb.StopScavengeReq();
    const o = new opsPb.StopScavengeReq.Options();
    o.setScavengeId(id);
    req.setOptions(o);
    ops.stopScavenge(req, (err, res) => resolve({ err, res }));
  });
  const status = async (id) => (await fetch(`${base}/admin/scavenge/${id}`)).json();

  it('removes what $maxCount expired while clients read and write', async () => {
    await client.setStreamMetadata('orders', { maxCount: 10 });
    for (let b = 0; b < 30; b++) {
      const batch = [];
      for (let i = 0; i < 50; i++) batch.push(jsonEvent({ type: 'Placed', data: { n: b * 50 + i, pad } }));
      await client.appendToStream('orders', batch);
    }
    const allBefore = [];
    for await (const e of client.readAll({ direction: FORWARDS, fromPosition: START })) {
      if (e.event && e.event.streamId === 'orders') allBefore.push(e.event.revision);
    }
    assert.equal(allBefore.length, 1500);

    // A consumer group on the stream, reading from its start (the ten events
    // $maxCount leaves readable) while the scavenge runs.
    await client.createPersistentSubscriptionToStream('orders', 'g',
      persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }));
    const group = client.subscribeToPersistentSubscriptionToStream('orders', 'g');
    const delivered = [];
    const groupDone = (async () => {
      for await (const e of group) {
        delivered.push(Number(e.event.revision));
        await group.ack(e);
        if (delivered.length >= 10) break;
      }
    })();
    // A writer meanwhile, and a catch-up subscription to $all.
    let writing = true;
    const writer = (async () => {
      let n = 0;
      while (writing) await client.appendToStream('other', jsonEvent({ type: 'T', data: { n: n++ } }));
      return n;
    })();
    const live = client.subscribeToAll({ fromPosition: START });
    const livePositions = [];
    live.on('data', (e) => { if (e.event) livePositions.push(e.event.position.commit); });

    // A slow one over HTTP (1 MB/s), which StartScavenge then finds in progress.
    const slowRes = await (await fetch(`${base}/admin/scavenge?throttle=1000000`, { method: 'POST' })).json();
    const r1 = await start();
    assert.equal(r1.getScavengeResult(), opsPb.ScavengeResp.ScavengeResult.INPROGRESS);
    assert.equal(r1.getScavengeId(), slowRes.scavengeId);
    const bad = await stop('00000000-0000-0000-0000-000000000000');
    assert.equal(bad.err && bad.err.code, grpc.status.NOT_FOUND, String(bad.err));
    assert.deepEqual(bad.err.metadata.get('exception'), ['scavenge-not-found']);
    const s1 = await stop(slowRes.scavengeId);
    assert.equal(s1.err, null, String(s1.err));
    assert.equal(s1.res.getScavengeResult(), opsPb.ScavengeResp.ScavengeResult.STOPPED);
    await until('the slow scavenge stopped', async () => (await status(slowRes.scavengeId)).state === 'stopped');

    const r2 = await start();
    assert.equal(r2.getScavengeResult(), opsPb.ScavengeResp.ScavengeResult.STARTED);
    const id = r2.getScavengeId();
    const st = await until('the scavenge', async () => {
      const s = await status(id);
      return s.state === 'running' ? null : s;
    });
    assert.equal(st.state, 'completed', JSON.stringify(st));
    assert.ok(st.segments >= 2, JSON.stringify(st));
    writing = false;
    const written = await writer;
    await groupDone;
    await group.unsubscribe();

    // The stream: its last ten, as before.
    const revs = [];
    for await (const e of client.readStream('orders')) revs.push(Number(e.event.revision));
    assert.deepEqual(revs, Array.from({ length: 10 }, (_, i) => 1490 + i));
    assert.deepEqual(delivered, revs, 'the group delivered the readable events, in order');
    // $all: the expired events of the compacted segments are gone.
    const allAfter = [];
    const positions = [];
    for await (const e of client.readAll({ direction: FORWARDS, fromPosition: START })) {
      if (!e.event) continue;
      positions.push(e.event.position.commit);
      if (e.event.streamId === 'orders') allAfter.push(Number(e.event.revision));
    }
    assert.ok(allAfter.length < 1500 - 500, `orders in $all after: ${allAfter.length}`);
    for (let i = 1; i < positions.length; i++) assert.ok(positions[i] > positions[i - 1], 'positions rise');
    let others = 0;
    for await (const e of client.readStream('other')) { if (e.event) others++; }
    assert.equal(others, written, 'every append of the writer is there');
    // A catch-up from the start now: every survivor, once, in order.
    const catchUp = client.subscribeToAll({ fromPosition: START });
    const got = [];
    for await (const e of catchUp) {
      if (e.event) got.push(e.event.position.commit);
      if (got.length === positions.length) break;
    }
    await catchUp.unsubscribe();
    assert.deepEqual(got, positions);
    // The live subscription that ran through the scavenge never went back.
    await live.unsubscribe();
    for (let i = 1; i < livePositions.length; i++) assert.ok(livePositions[i] > livePositions[i - 1]);
    // History.
    const hist = [];
    for await (const e of client.readStream('$scavenges')) hist.push(`${e.event.type} ${e.event.data.scavengeId}`);
    assert.ok(hist.includes(`$scavengeCompleted ${id}`), hist.join('\n'));
  });
});
