// factumd gives a scavenge's space back while it runs (RPC-8), through the
// official Node client: a consumer group with hundreds of messages waiting
// for a slow consumer, a catch-up subscription to $all and a streaming read
// that stopped reading mid-way hold events of segments that a scavenge then
// rewrites. After the scavenge's grace (300 ms here) factumd maps none of the
// replaced files any more (their disk space is back, factumd still running),
// and when the clients go on, every event they get has exactly its data:
// the held ones were read again by position (factum_events_refreshed_total),
// none reads as the zeros a released file leaves behind.
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
const streamsPb = require('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_pb');
const sharedPb = require('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/shared_pb');
const { StreamsClient } = require('@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_grpc_pb');

const factumd = process.env.FACTUMD_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;
const GRACE_MS = 300;

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
      '--node-port', '0', '--scavenge-grace-ms', String(GRACE_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
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

// Event n of "held": its pad is a character that depends on n, so that a
// wrong or zeroed body cannot pass.
const padOf = (n) => String.fromCharCode(97 + (n % 26)).repeat(1500);
const HELD = 1200;

// The replaced segment files factumd still maps ("... (deleted)").
function deletedMaps(pid) {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')
    .filter((l) => /\.seg(\.gen)? \(deleted\)$/.test(l)).length;
}

function checkHeld(e, what) {
  const d = e.data;
  assert.ok(d && typeof d.n === 'number', `${what}: an event without its data (${JSON.stringify(d)})`);
  assert.equal(d.pad, padOf(d.n), `${what}: event ${d.n} has another body`);
}

describe('factumd gives a scavenge\'s space back online', { skip: factumd ? false : 'FACTUMD_BIN is not set (ctest runs this file)' }, () => {
  let srv, dir, client, base;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factum-scavenge-online-'));
    srv = await startServer(path.join(dir, 'db'));
    base = `http://127.0.0.1:${srv.port}`;
    client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  });
  after(async () => {
    if (client) await client.dispose();
    if (srv) {
      const exited = new Promise((r) => srv.p.once('exit', r));
      srv.p.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('holders read again, replaced files released after the grace', async () => {
    // "held" (no retention) interleaved with "junk" (only its last event
    // stays readable): every segment has something to remove.
    await client.setStreamMetadata('junk', { maxCount: 1 });
    for (let b = 0; b < HELD / 50; b++) {
      const held = [], junk = [];
      for (let i = 0; i < 50; i++) {
        const n = b * 50 + i;
        held.push(jsonEvent({ type: 'Held', data: { n, pad: padOf(n) } }));
        junk.push(jsonEvent({ type: 'Junk', data: { n, pad: 'j'.repeat(1500) } }));
      }
      await client.appendToStream('held', held);
      await client.appendToStream('junk', junk);
    }

    // A consumer group whose consumer takes 5 messages and then stops
    // acknowledging: the rest wait in factumd.
    await client.createPersistentSubscriptionToStream('held', 'g',
      persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }));
    const group = client.subscribeToPersistentSubscriptionToStream('held', 'g', { bufferSize: 5 });
    const got = [];
    const unacked = [];
    let acking = false;
    group.on('data', (e) => {
      checkHeld(e.event, 'group');
      got.push(e.event.data.n);
      if (acking) group.ack(e);
      else unacked.push(e);
    });
    await until('the first group messages', () => got.length >= 5);

    // A catch-up subscription to $all and a streaming read of $all, both
    // paused after their first events. The subscription is the client's
    // generated Streams stub on grpc-js, whose pause() stops reading the
    // HTTP/2 stream (the client library's subscription object reads on into
    // a buffer of its own, so factumd would hold nothing).
    const streams = new StreamsClient(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
    const req = new streamsPb.ReadReq();
    const o = new streamsPb.ReadReq.Options();
    o.setAll(new streamsPb.ReadReq.Options.AllOptions().setStart(new sharedPb.Empty()));
    o.setReadDirection(streamsPb.ReadReq.Options.ReadDirection.FORWARDS);
    o.setResolveLinks(false);
    o.setSubscription(new streamsPb.ReadReq.Options.SubscriptionOptions());
    o.setNoFilter(new sharedPb.Empty());
    o.setUuidOption(new streamsPb.ReadReq.Options.UUIDOption().setString(new sharedPb.Empty()));
    req.setOptions(o);
    const allSub = streams.read(req);
    const subGot = [];
    let subBad = 0;
    allSub.on('data', (resp) => {
      if (!resp.hasEvent()) return;
      const rec = resp.getEvent().getEvent();
      const name = Buffer.from(rec.getStreamIdentifier().getStreamName_asU8()).toString();
      let d = null;
      try { d = JSON.parse(Buffer.from(rec.getData_asU8()).toString()); } catch (err) { /* counted below */ }
      if (name === 'junk') {
        if (!d || d.pad !== 'j'.repeat(1500)) subBad++;
        return;
      }
      if (name !== 'held') {
        if (!name.startsWith('$')) subBad++; /* a name that is no stream's: bytes gone */
        return;
      }
      checkHeld({ data: d }, '$all subscription');
      subGot.push(d.n);
      if (subGot.length === 20) allSub.pause();
    });
    allSub.on('error', () => {}); // cancelled at the end
    // (readAll is an async iterator: not asking for the next event pauses it.)
    const reader = client.readAll({ direction: FORWARDS, fromPosition: START });
    const readGot = [];
    const readSome = async (k) => {
      for (;;) {
        if (k !== undefined && readGot.length >= k) return;
        const { value: e, done } = await reader.next();
        if (done) return;
        if (e.event && e.event.streamId === 'held') {
          checkHeld(e.event, 'read');
          readGot.push(e.event.data.n);
        } else if (e.event && e.event.streamId === 'junk') {
          assert.equal(e.event.data.pad, 'j'.repeat(1500), 'read: a junk event with another body');
        } else {
          assert.ok(e.event && e.event.streamId.startsWith('$'), `read: an event of stream ${e.event && e.event.streamId}`);
        }
      }
    };
    await readSome(20);
    await until('the paused clients', () => subGot.length >= 20 && readGot.length >= 20);

    // The scavenge, sealing: every segment so far is rewritten.
    const r = await (await fetch(`${base}/admin/scavenge?seal=true`, { method: 'POST' })).json();
    const st = await until('the scavenge', async () => {
      const s = await (await fetch(`${base}/admin/scavenge/${r.scavengeId}`)).json();
      return s.state !== 'running' && s;
    });
    assert.equal(st.state, 'completed');
    assert.ok(st.compacted >= 3, `compacted ${st.compacted}`);
    assert.ok(st.eventsRemoved >= HELD - 5, `removed ${st.eventsRemoved}`);

    // After the grace, factumd (still running) maps no replaced file.
    await until('the replaced files to be released', () => deletedMaps(srv.p.pid) === 0, 10000 * slow);

    // The clients go on: every event with its body, in order, once.
    acking = true;
    for (const e of unacked) group.ack(e);
    allSub.resume();
    await until('the group', () => got.length >= HELD);
    await until('the $all subscription', () => subGot.length >= HELD);
    await readSome();
    assert.deepEqual(got.slice(0, HELD), [...Array(HELD).keys()]);
    assert.deepEqual(subGot.slice(0, HELD), [...Array(HELD).keys()]);
    assert.deepEqual(readGot, [...Array(HELD).keys()]);
    assert.equal(subBad, 0, 'events of the subscription without their bytes');
    await group.unsubscribe();
    allSub.cancel();
    streams.close();

    // Held events were read again (not only fresh reads after the swap).
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const m = /^factum_events_refreshed_total (\d+)/m.exec(metrics);
    assert.ok(m && Number(m[1]) > 0, `factum_events_refreshed_total: ${m && m[1]}`);
    // And the junk is gone from $all, its last event excepted.
    let junk = 0;
    for await (const e of client.readAll({ direction: FORWARDS, fromPosition: START })) {
      if (e.event && e.event.streamId === 'junk') junk++;
    }
    assert.equal(junk, 1);
  });
});
