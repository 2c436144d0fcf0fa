// Crypto-shredding through the official Node client (ADR 0027): factumd with
// a master key seals the events of data subjects (by category, `user-<id>`,
// and by `$subject` metadata); clients read them as they were written, and
// no file of the data directory holds their plaintext. POST /admin/shred
// then erases a subject for good: reads, $all reads, catch-up
// subscriptions and a consumer group that was holding its events unacked
// all get them with no data and metadata {"$shredded":true}; other subjects
// stay readable; a restart keeps it so, and without the master key factumd
// refuses to open the database.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const { KurrentDBClient, jsonEvent, START, FORWARDS, persistentSubscriptionToStreamSettingsFromDefaults } =
  require('@kurrent/kurrentdb-client');

const factumd = process.env.FACTUMD_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;
const MARK = 'PLAINTEXT-OF-A-SUBJECT';

async function until(what, fn, ms = 30000 * slow) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function startServer(db, key) {
  const args = ['--insecure', '--db', db, '--node-ip', '127.0.0.1', '--node-port', '0'];
  if (key) args.push('--master-key-file', key, '--shred-categories', 'user');
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({ p, port: Number(m[1]), log: () => log });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(Object.assign(new Error(`factumd exited (${code}): ${log}`), { code, log })));
  });
}

async function stop(srv) {
  const exited = new Promise((r) => srv.p.once('exit', r));
  srv.p.kill('SIGTERM');
  await exited;
}

// Files under dir holding MARK.
function marked(dir) {
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.readFileSync(p).includes(MARK)) found.push(p);
    }
  };
  walk(dir);
  return found;
}

const isShredded = (ev) => {
  const md = ev.metadata;
  const meta = md instanceof Uint8Array ? JSON.parse(Buffer.from(md).toString() || '{}') : md;
  const empty = ev.data instanceof Uint8Array ? ev.data.length === 0 : ev.data === undefined || ev.data === null;
  return empty && meta && meta.$shredded === true;
};
const text = (ev) => JSON.stringify(ev.data instanceof Uint8Array ? Buffer.from(ev.data).toString() : ev.data);

async function readAll(client, stream) {
  const out = [];
  for await (const r of client.readStream(stream, { fromRevision: START, direction: FORWARDS })) out.push(r.event);
  return out;
}

describe('crypto-shredding through the official client', { skip: factumd ? false : 'FACTUMD_BIN is not set (ctest runs this file)' }, () => {
  let srv, dir, db, key, client, base;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factum-shred-'));
    db = path.join(dir, 'db');
    key = path.join(dir, 'master.key');
    fs.writeFileSync(key, crypto.randomBytes(32), { mode: 0o600 });
    srv = await startServer(db, key);
    base = `http://127.0.0.1:${srv.port}`;
    client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  });
  after(async () => {
    if (client) await client.dispose();
    if (srv) await stop(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('seals, serves, shreds for good', async () => {
    const N = 40;
    const evs = [];
    for (let i = 0; i < N; i++)
      evs.push(jsonEvent({ type: 'Registered', data: { i, name: `${MARK}-42-${i}` }, metadata: { ip: `${MARK}-ip` } }));
    await client.appendToStream('user-42', evs);
    await client.appendToStream('user-7', jsonEvent({ type: 'Registered', data: { name: `${MARK}-7` } }));
    await client.appendToStream('$$acct-1', jsonEvent({ type: '$metadata', data: { $subject: '42' } }));
    await client.appendToStream('acct-1', jsonEvent({ type: 'Opened', data: { iban: `${MARK}-iban` } }));
    await client.appendToStream('order-1', jsonEvent({ type: 'Placed', data: { total: 3 } }));

    // Served as written.
    const before = await readAll(client, 'user-42');
    assert.equal(before.length, N);
    assert.equal(before[3].data.name, `${MARK}-42-3`);
    assert.equal(before[3].metadata.ip, `${MARK}-ip`);
    assert.equal((await readAll(client, 'acct-1'))[0].data.iban, `${MARK}-iban`);
    assert.deepEqual(marked(db), [], 'plaintext of a subject in the data directory');

    // A consumer group that takes 5 messages and acknowledges none: factumd
    // holds the others, opened.
    await client.createPersistentSubscriptionToStream('user-42', 'g',
      persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START, messageTimeout: 1000, maxRetryCount: 100 }));
    const group = client.subscribeToPersistentSubscriptionToStream('user-42', 'g', { bufferSize: 5 });
    const groupGot = [];
    let acking = false;
    group.on('data', (e) => {
      groupGot.push(e.event);
      if (acking) group.ack(e);
    });
    await until('the group\'s first messages', () => groupGot.length >= 5);
    assert.equal(groupGot[0].data.name.startsWith(`${MARK}-42-`), true);

    // Shred subject 42: user-42 (category rule) and acct-1 ($subject).
    const bad = await fetch(`${base}/admin/shred`, { method: 'POST', body: '{"subject":7}' });
    assert.equal(bad.status, 400);
    const r = await fetch(`${base}/admin/shred`, { method: 'POST', body: JSON.stringify({ subject: '42' }) });
    assert.equal(r.status, 200);
    const ans = await r.json();
    assert.equal(ans.subject, '42');
    assert.ok(ans.keyId > 0);
    assert.equal((await fetch(`${base}/admin/shred`, { method: 'POST', body: '{"subject":"42"}' })).status, 404);

    const after = await readAll(client, 'user-42');
    assert.equal(after.length, N, 'the events stay, positions and all');
    for (const e of after) assert.ok(isShredded(e), `not shredded: ${text(e)}`);
    assert.ok(isShredded((await readAll(client, 'acct-1'))[0]));
    assert.equal((await readAll(client, 'user-7'))[0].data.name, `${MARK}-7`);
    assert.equal((await readAll(client, 'order-1'))[0].data.total, 3);

    // $all, and a catch-up subscription from the start.
    for await (const x of client.readAll({ fromPosition: START, direction: FORWARDS })) {
      if (!x.event || x.event.streamId.startsWith('$')) continue;
      if (x.event.streamId === 'user-42' || x.event.streamId === 'acct-1') assert.ok(isShredded(x.event));
    }
    const sub = client.subscribeToAll({ fromPosition: START });
    let seen = 0;
    for await (const x of sub) {
      if (!x.event) continue;
      if (x.event.streamId === 'user-42') {
        assert.ok(isShredded(x.event), `subscription: ${text(x.event)}`);
        seen++;
      }
      if (x.event.streamId === 'order-1') break;
    }
    await sub.unsubscribe();
    assert.equal(seen, N);

    // The group: every message it delivers from now on, retries of those it
    // held included, comes shredded.
    const from = groupGot.length;
    acking = true;
    await until('the group\'s remaining messages', () => groupGot.slice(from).filter((e) => isShredded(e)).length >= N - 5);
    await group.unsubscribe();
    assert.deepEqual(marked(db), []);
  });

  it('stays shredded across a restart; no master key, no open', async () => {
    await client.dispose();
    client = null;
    await stop(srv);
    srv = null;
    await assert.rejects(startServer(db, null), (e) => /master key/.test(e.log || e.message));
    srv = await startServer(db, key);
    base = `http://127.0.0.1:${srv.port}`;
    client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    for (const e of await readAll(client, 'user-42')) assert.ok(isShredded(e));
    assert.equal((await readAll(client, 'user-7'))[0].data.name, `${MARK}-7`);
    const shreds = await readAll(client, '$shreds');
    assert.equal(shreds.length, 1);
    assert.equal(shreds[0].data.subject, '42');
  });
});
