// Authorization end to end with @kurrent/kurrentdb-client against the real
// factumd (docs/security.md, Authorization): stream ACLs, $settings defaults,
// operations, every path (reads, $all, subscriptions, Append, BatchAppend,
// the v2 multi-stream append, deletes, metadata, consumer groups,
// projections), links, live subscriptions losing access, a user's changes
// (groups, disabling) reaching its open calls (PRINCIPAL-1 in
// src/auth/principal.h), stream policies and the audit trail.
//
// factumd runs secure, as in production: TLS with the certificates of
// `factum certs dev`, --mem-db, --run-projections All. Its users are real:
// admin and ops (password changeit) are factumd's own; alice (no groups),
// bob (group writers) and carol ($admins) are made through the Users service
// (raw grpc-js with proto/kurrentdb/users.proto, as auth.js does). Every client
// connects with tls=true, since grpc-js sends no credentials without TLS; the
// anonymous client is one without credentials.
// Usage: node acl.js FACTUMD FACTUM (or FACTUMD_BIN and FACTUM_BIN set)
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const lib = require('@kurrent/kurrentdb-client');

const { KurrentDBClient, jsonEvent, binaryEvent, AccessDeniedError, ANY, NO_STREAM, START, END } = lib;
const factumd = process.argv[2] || process.env.FACTUMD_BIN;
const factum = process.argv[3] || process.env.FACTUM_BIN;
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
process.removeAllListeners('warning'); // grpc-js warns about an IP address as SNI; not ours to fix

// Certificates as a user makes them, then factumd with TLS on them.
function startServer(dir) {
  execFileSync(factum, ['certs', 'dev', '--out', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--mem-db', '--node-ip', '127.0.0.1', '--node-port', '0', '--run-projections', 'All',
      '--certificate-file', path.join(dir, 'node', 'node.crt'),
      '--certificate-private-key-file', path.join(dir, 'node', 'node.key'),
      '--trusted-root-certificates-path', path.join(dir, 'ca')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '', port = 0;
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m && !port) resolve({ p, port: (port = Number(m[1])), log: () => log });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`factumd exited (${code}): ${log}`)));
  });
}

// The Users service and Operations.Shutdown through grpc-js, with hand-made credentials.
const protoRoot = path.join(__dirname, '..', '..', '..', 'proto');
const proto = grpc.loadPackageDefinition(loader.loadSync(['kurrentdb/users.proto'], {
  includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true,
}));
const basic = (login, password) => {
  const md = new grpc.Metadata();
  if (login !== undefined) md.set('authorization', 'Basic ' + Buffer.from(`${login}:${password}`).toString('base64'));
  return md;
};
const unary = (client, method, req, md) => new Promise((resolve) => {
  client[method](req, md, (err, res) => resolve({ err, res }));
});

const tag = 'acl' + crypto.randomUUID().slice(0, 8);
const sn = (s) => `${tag}-${s}`;
const ev = (type, data) => jsonEvent({ type, data });
const password = (login) => (login === 'admin' || login === 'ops' ? 'changeit' : `pw-${login}-${tag}`);

// The promise rejects with AccessDeniedError.
async function denied(p, what) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof AccessDeniedError, `${what}: expected AccessDeniedError, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    return true;
  }, what);
}

async function readAll(client, stream, opts = {}) {
  const out = [];
  try {
    for await (const e of client.readStream(stream, opts)) out.push(e);
  } catch (e) {
    if (e.type === 'stream-not-found') return [];
    throw e;
  }
  return out;
}

describe('authorization', { skip: factumd && factum ? false : 'FACTUMD_BIN and FACTUM_BIN are not set (ctest runs this file)' }, () => {
  let srv, dir, ca, users;
  const clients = [];
  // A client that authenticates as this (real) user on every call.
  const as = (login) => {
    const c = KurrentDBClient.connectionString(
      `kurrentdb://${login}:${encodeURIComponent(password(login))}@127.0.0.1:${srv.port}?tls=true&tlsCAFile=${ca}`);
    clients.push(c);
    return c;
  };
  const createUser = async (login, groups) => {
    const { err } = await unary(users, 'Create',
      { options: { login_name: login, password: password(login), full_name: login, groups } }, basic('admin', 'changeit'));
    assert.equal(err, null, `creating ${login}: ${err}`);
  };
  let admin, ops, alice, bob, anon;

  before(async () => {
    const tmp = process.env.FACTUM_TEST_TMP || os.tmpdir();
    fs.mkdirSync(tmp, { recursive: true });
    dir = fs.mkdtempSync(path.join(tmp, 'acl-'));
    ca = path.join(dir, 'ca', 'ca.crt');
    srv = await startServer(dir);
    users = new proto.event_store.client.users.Users(`127.0.0.1:${srv.port}`,
      grpc.credentials.createSsl(fs.readFileSync(ca)));
    await createUser('alice', []);
    await createUser('bob', ['writers']);
    await createUser('carol', ['$admins']);
    admin = as('admin');
    ops = as('ops');
    alice = as('alice');
    bob = as('bob');
    anon = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=true&tlsCAFile=${ca}`);
    clients.push(anon);
  });

  after(async () => {
    for (const c of clients) await c.dispose().catch(() => {});
    if (users) users.close();
    if (srv) {
      srv.p.removeAllListeners('exit');
      const exited = new Promise((r) => srv.p.on('exit', (code) => r(code)));
      srv.p.kill('SIGTERM');
      assert.equal(await exited, 0, `factumd did not shut down cleanly: ${srv.log()}`);
      assert.doesNotMatch(srv.log(), /ERROR|runtime error|AddressSanitizer|LeakSanitizer/);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('by default: users use user streams, anonymous nothing, system streams and $all only admins', async () => {
    const s = sn('open');
    await alice.appendToStream(s, [ev('A', { n: 1 })]);
    assert.equal((await readAll(bob, s)).length, 1);
    await denied(readAll(anon, s), 'anonymous read');
    await denied(anon.appendToStream(s, [ev('A', { n: 2 })]), 'anonymous append');
    assert.equal((await readAll(admin, s)).length, 1, 'nothing written by the refused append');
    await denied(readAll(alice, '$settings'), 'system stream read');
    await denied(alice.appendToStream('$' + s, [ev('A', {})]), 'system stream append');
    const all = async (c) => { let n = 0; for await (const e of c.readAll({ maxCount: 5 })) n += e ? 1 : 0; return n; };
    await denied(all(alice), '$all read');
    await denied(all(anon), '$all read, anonymous');
    assert.ok(await all(admin) > 0);
    assert.ok(await all(as('carol')) > 0, 'a member of $admins');
    // $all is read through its own ACL ($$$all); writes and deletes never
    await admin.setStreamMetadata('$all', { acl: { readRoles: ['alice', '$admins'] } });
    assert.ok(await all(alice) > 0, 'alice may read $all once $$$all says so');
    await denied(all(bob), '$all read, bob');
    await admin.setStreamMetadata('$all', {});
    await denied(all(alice), '$all read after the ACL went');
  });

  it('stream ACL: each key, users and groups, on every append path; nothing is written when refused', async () => {
    const s = sn('secret'), other = sn('other');
    await admin.setStreamMetadata(s, {
      acl: { readRoles: ['alice'], writeRoles: ['writers'], deleteRoles: [], metaReadRoles: 'alice', metaWriteRoles: [] },
    });
    // BatchAppend (no per-call credentials) and Append (per-call credentials)
    await bob.appendToStream(s, [ev('W', { by: 'bob' })]);
    await bob.appendToStream(s, [ev('W', { by: 'bob-append' })], { credentials: { username: 'bob', password: password('bob') } });
    await denied(alice.appendToStream(s, [ev('W', { by: 'alice' })]), 'BatchAppend by alice');
    await denied(alice.appendToStream(s, [ev('W', { by: 'alice' })], { credentials: { username: 'alice', password: password('alice') } }),
      'Append by alice');
    // v2 multi-stream append: all or nothing
    await denied(alice.multiStreamAppend([
      { streamName: other, expectedState: NO_STREAM, events: [ev('O', {})] },
      { streamName: s, expectedState: ANY, events: [ev('W', { by: 'alice-v2' })] },
    ]), 'multi-stream append by alice');
    assert.equal((await readAll(admin, other)).length, 0, 'no part of the refused multi-stream append');
    const events = await readAll(alice, s);
    assert.deepEqual(events.map((e) => e.event.data.by), ['bob', 'bob-append']);
    await denied(readAll(bob, s), 'read by bob');
    await denied(readAll(bob, s, { direction: 'backwards', fromRevision: END }), 'backward read by bob');
    // metadata: $mr, $mw
    assert.deepEqual((await alice.getStreamMetadata(s)).metadata.acl.readRoles, ['alice']);
    await denied(bob.getStreamMetadata(s), 'metadata read by bob');
    await denied(alice.setStreamMetadata(s, {}), 'metadata write by alice');
    // deletes: $d is empty (admins only)
    await denied(alice.deleteStream(s), 'delete by alice');
    await denied(bob.tombstoneStream(s), 'tombstone by bob');
    assert.equal((await readAll(alice, s)).length, 2, 'still there');
    await admin.deleteStream(s);
    assert.equal((await readAll(admin, s)).length, 0);
  });

  it('an ACL change counts from the very next call', async () => {
    const s = sn('next');
    await admin.appendToStream(s, [ev('E', {})]);
    assert.equal((await readAll(alice, s)).length, 1);
    await admin.setStreamMetadata(s, { acl: { readRoles: ['bob'] } });
    await denied(readAll(alice, s), 'alice right after the change');
    assert.equal((await readAll(bob, s)).length, 1);
    await admin.setStreamMetadata(s, { acl: { readRoles: ['alice'] } });
    assert.equal((await readAll(alice, s)).length, 1);
    await denied(readAll(bob, s), 'bob right after the change back');
  });

  it("a user's change counts from the very next call and on its open calls (Users: Update, Disable, Enable)", async () => {
    const s = sn('groups'), g = 'dave-group';
    await admin.setStreamMetadata(s, { acl: { readRoles: ['writers'], writeRoles: ['writers'] } });
    await createUser('dave', ['writers']);
    const dave = as('dave');
    const userOp = async (method, options) => {
      const { err } = await unary(users, method, { options }, basic('admin', 'changeit'));
      assert.equal(err, null, `${method} dave: ${err}`);
    };
    // a live subscription or a consumer of dave's: what it got and how it ended
    const watch = (sub, ack) => {
      const got = [];
      const ended = new Promise((resolve) => {
        sub.on('data', (e) => { got.push(e.event.data.n); if (ack) sub.ack(e).catch(() => {}); });
        sub.on('error', resolve);
        sub.on('end', () => resolve(null));
      });
      return { got, ended: Promise.race([ended, sleep(10000 * slow).then(() => 'timeout')]) };
    };
    const until = async (w, n) => {
      const deadline = Date.now() + 10000 * slow;
      while (w.got.length < n && Date.now() < deadline) await sleep(20);
      assert.equal(w.got.length, n, 'the subscription delivers first');
    };
    await dave.appendToStream(s, [ev('E', { n: 1 })]); // opens dave's BatchAppend call, which stays open
    const sub1 = dave.subscribeToStream(s, { fromRevision: START });
    const w1 = watch(sub1);
    await until(w1, 1);
    // out of writers: the next call, the open BatchAppend call and the live subscription
    await userOp('Update', { login_name: 'dave', full_name: 'dave', groups: [] });
    const e1 = await w1.ended;
    assert.ok(e1 instanceof AccessDeniedError, `the live subscription ended with ${e1}`);
    await sub1.unsubscribe().catch(() => {});
    await denied(readAll(dave, s), 'dave reading out of writers');
    await denied(dave.appendToStream(s, [ev('E', { n: 2 })], { credentials: { username: 'dave', password: password('dave') } }),
      'dave appending (Append) out of writers');
    await denied(dave.appendToStream(s, [ev('E', { n: 2 })]), 'dave appending on his open BatchAppend call out of writers');
    assert.equal((await readAll(admin, s)).length, 1, 'nothing written by the refused appends');
    await userOp('Update', { login_name: 'dave', full_name: 'dave', groups: ['writers'] });
    await dave.appendToStream(s, [ev('E', { n: 3 })]);
    // disabled: his open calls end (BatchAppend, a subscription, a consumer), new ones are refused
    await ops.createPersistentSubscriptionToStream(s, g,
      lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }));
    const sub2 = dave.subscribeToStream(s, { fromRevision: START });
    const con = dave.subscribeToPersistentSubscriptionToStream(s, g);
    const w2 = watch(sub2), wc = watch(con, true);
    await until(w2, 2);
    await until(wc, 2);
    await userOp('Disable', { login_name: 'dave' });
    for (const [what, w] of [['live subscription', w2], ['consumer', wc]]) {
      const e = await w.ended;
      assert.ok(e instanceof AccessDeniedError, `the ${what} ended with ${e}`);
    }
    await sub2.unsubscribe().catch(() => {});
    await con.unsubscribe().catch(() => {});
    await denied(dave.appendToStream(s, [ev('E', { n: 4 })]), 'dave appending on his open BatchAppend call, disabled');
    await denied(dave.appendToStream(s, [ev('E', { n: 4 })]), 'dave appending on a new BatchAppend call, disabled');
    await denied(readAll(dave, s), 'dave reading, disabled');
    assert.deepEqual((await readAll(admin, s)).map((e) => e.event.data.n), [1, 3]);
    // enabled again: the same client, with the same password, works again
    await userOp('Enable', { login_name: 'dave' });
    await dave.appendToStream(s, [ev('E', { n: 5 })]);
    assert.deepEqual((await readAll(dave, s)).map((e) => e.event.data.n), [1, 3, 5]);
    await ops.deletePersistentSubscriptionToStream(s, g);
  });

  it('$settings: the default ACL of user streams', async () => {
    const s = sn('settings');
    await admin.appendToStream('$settings', [ev('$settings', { $userStreamAcl: { $r: '$all', $w: 'writers' } })]);
    try {
      await denied(alice.appendToStream(s, [ev('E', {})]), 'alice under $userStreamAcl');
      await bob.appendToStream(s, [ev('E', {})]);
      assert.equal((await readAll(alice, s)).length, 1);
    } finally {
      await admin.appendToStream('$settings', [ev('$settings', {})]);
    }
    await alice.appendToStream(s, [ev('E', {})]);
  });

  it('a live subscription (stream and $all) ends with AccessDenied when its ACL is taken away', async () => {
    const s = sn('live');
    await admin.appendToStream(s, [ev('E', { i: 0 })]);
    for (const target of ['stream', '$all']) {
      if (target === '$all') await admin.setStreamMetadata('$all', { acl: { readRoles: ['alice'] } });
      const sub = target === 'stream' ? alice.subscribeToStream(s, { fromRevision: START })
        : alice.subscribeToAll({ fromPosition: START, filter: lib.streamNameFilter({ prefixes: [s] }) });
      const got = [];
      const ended = new Promise((resolve) => {
        sub.on('data', (e) => got.push(e.event.data.i));
        sub.on('error', resolve);
        sub.on('end', () => resolve(null));
      });
      const deadline = Date.now() + 10000 * slow;
      while (!got.length && Date.now() < deadline) await sleep(20);
      assert.ok(got.length >= 1, `${target}: the subscription delivers first`);
      if (target === 'stream') await admin.setStreamMetadata(s, { acl: { readRoles: ['bob'] } });
      else await admin.setStreamMetadata('$all', {});
      const n = got.length;
      await admin.appendToStream(s, [ev('E', { i: 100 })]);
      const err = await Promise.race([ended, sleep(10000 * slow).then(() => 'timeout')]);
      assert.ok(err instanceof AccessDeniedError, `${target}: ended with ${err && err.constructor && err.constructor.name}: ${err}`);
      assert.ok(!got.slice(n).includes(100), `${target}: nothing after the change`);
      await sub.unsubscribe().catch(() => {});
      if (target === 'stream') await admin.setStreamMetadata(s, {});
    }
  });

  it('a link does not reveal an event its reader may not read', async () => {
    const secret = sn('hidden'), links = sn('links');
    await admin.appendToStream(secret, [ev('Secret', { pin: 1234 })]);
    await admin.setStreamMetadata(secret, { acl: { readRoles: ['bob'] } });
    await admin.appendToStream(links, [binaryEvent({ type: '$>', data: Buffer.from(`0@${secret}`) })]);
    const [a] = await readAll(alice, links, { resolveLinkTos: true });
    assert.equal(a.event, undefined, 'alice gets the link alone, as a link whose target is gone');
    assert.equal(a.link.type, '$>');
    assert.doesNotMatch(JSON.stringify(a, (k, v) => (typeof v === 'bigint' ? String(v) : v)), /1234/);
    const [b] = await readAll(bob, links, { resolveLinkTos: true });
    assert.equal(b.event.type, 'Secret', 'bob gets the target');
    assert.equal(b.event.data.pin, 1234);
    assert.equal(b.link.type, '$>');
  });

  it('consumer groups: administration for $ops/$admins, consuming needs stream read, access lost on change', async () => {
    const s = sn('ps'), g = 'g1';
    const settings = lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START });
    await denied(alice.createPersistentSubscriptionToStream(s, g, settings), 'create by alice');
    await denied(anon.createPersistentSubscriptionToStream(s, g, settings), 'create by anonymous');
    await ops.createPersistentSubscriptionToStream(s, g, settings);
    await denied(alice.updatePersistentSubscriptionToStream(s, g, settings), 'update by alice');
    await denied(alice.replayParkedMessagesToStream(s, g), 'replay parked by alice');
    await denied(alice.restartPersistentSubscriptionSubsystem(), 'restart by alice');
    await admin.setStreamMetadata(s, { acl: { readRoles: ['alice'] } });
    await admin.appendToStream(s, [ev('E', { i: 0 })]);
    // bob may not read the stream: his connection is refused
    const bsub = bob.subscribeToPersistentSubscriptionToStream(s, g);
    const berr = await new Promise((resolve) => { bsub.on('error', resolve); bsub.on('data', () => resolve('data')); });
    assert.ok(berr instanceof AccessDeniedError, `bob consuming: ${berr}`);
    await bsub.unsubscribe().catch(() => {});
    // alice consumes, then loses access
    const sub = alice.subscribeToPersistentSubscriptionToStream(s, g);
    const got = [];
    const ended = new Promise((resolve) => {
      sub.on('data', async (e) => { got.push(e.event.data.i); await sub.ack(e).catch(() => {}); });
      sub.on('error', resolve);
    });
    const deadline = Date.now() + 10000 * slow;
    while (!got.length && Date.now() < deadline) await sleep(20);
    assert.deepEqual(got, [0]);
    await admin.setStreamMetadata(s, { acl: { readRoles: ['bob'] } });
    await admin.appendToStream(s, [ev('E', { i: 1 })]);
    const err = await Promise.race([ended, sleep(10000 * slow).then(() => 'timeout')]);
    assert.ok(err instanceof AccessDeniedError, `alice's connection ended with ${err}`);
    assert.deepEqual(got, [0], 'nothing after the change');
    await sub.unsubscribe().catch(() => {});
    await denied(alice.deletePersistentSubscriptionToStream(s, g), 'delete by alice');
    await admin.deletePersistentSubscriptionToStream(s, g);
  });

  it('$all: subscriptions and consumer groups need read access to $all', async () => {
    const first = (sub) => new Promise((resolve) => {
      sub.on('error', resolve);
      sub.on('data', () => resolve('data'));
    });
    const s1 = alice.subscribeToAll({ fromPosition: START });
    const e1 = await first(s1);
    assert.ok(e1 instanceof AccessDeniedError, `alice subscribing to $all: ${e1}`);
    await s1.unsubscribe().catch(() => {});
    const g = sn('allgroup');
    await ops.createPersistentSubscriptionToAll(g, lib.persistentSubscriptionToAllSettingsFromDefaults({ startFrom: START }));
    const s2 = alice.subscribeToPersistentSubscriptionToAll(g);
    const e2 = await first(s2);
    assert.ok(e2 instanceof AccessDeniedError, `alice consuming a group on $all: ${e2}`);
    await s2.unsubscribe().catch(() => {});
    const s3 = admin.subscribeToPersistentSubscriptionToAll(g);
    assert.equal(await first(s3), 'data', 'an admin consumes it');
    await s3.unsubscribe().catch(() => {});
    await ops.deletePersistentSubscriptionToAll(g);
  });

  it('projections: reading for users, deleting and restarting for $ops/$admins, nothing for anonymous', async () => {
    const list = (c) => c.listProjections();
    assert.ok((await list(alice)).length >= 1);
    await denied(list(anon), 'list by anonymous');
    await denied(alice.deleteProjection('$by_category'), 'delete by alice');
    await denied(alice.restartSubsystem(), 'restart subsystem by alice');
    await ops.restartSubsystem();
  });

  it('stream policies (prefix rules in $policies) instead of ACLs, and back', async () => {
    const acct = sn('account'), open = sn('free');
    await admin.appendToStream(acct, [ev('E', {})]);
    await admin.setStreamMetadata(open, { acl: { readRoles: ['bob'] } });
    await admin.appendToStream(open, [ev('E', {})]);
    await denied(readAll(alice, open), 'the ACL first');
    const policy = {
      streamPolicies: {
        pub: { $r: ['$all'], $w: ['$all'], $d: ['$all'], $mr: ['$all'], $mw: ['$all'] },
        adm: { $r: ['$admins'], $w: ['$admins'], $d: ['$admins'], $mr: ['$admins'], $mw: ['$admins'] },
        acct: { $r: ['writers'], $w: ['writers'], $d: [], $mr: ['writers'], $mw: [] },
      },
      streamRules: [{ startsWith: acct, policy: 'acct' }],
      defaultStreamRules: { userStreams: 'pub', systemStreams: 'adm' },
    };
    await denied(alice.appendToStream('$policies', [ev('$policy-updated', policy)]), '$policies by alice');
    await admin.appendToStream('$policies', [ev('$policy-updated', policy)]);
    await admin.appendToStream('$authorization-policy-settings',
      [ev('$authorization-policy-changed', { streamAccessPolicyType: 'streampolicy' })]);
    try {
      assert.equal((await readAll(alice, open)).length, 1, 'ACLs are not enforced under stream policies');
      await denied(readAll(alice, acct), 'alice on the account prefix');
      assert.equal((await readAll(bob, acct)).length, 1);
      await bob.appendToStream(acct, [ev('E', {})]);
      await denied(alice.appendToStream(acct, [ev('E', {})]), 'alice appending on the prefix');
      await denied(bob.deleteStream(acct), 'delete: nobody but admins');
      await denied(readAll(ops, open), '$all does not include $ops-only users');
    } finally {
      await admin.appendToStream('$authorization-policy-settings',
        [ev('$authorization-policy-changed', { streamAccessPolicyType: 'acl' })]);
    }
    await denied(readAll(alice, open), 'ACLs again');
    assert.equal((await readAll(alice, acct)).length, 2);
  });

  it('Operations.Shutdown: $ops/$admins only; the exact status and trailer of each refusal', async () => {
    const raw = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createSsl(fs.readFileSync(ca)));
    const call = (md) => new Promise((resolve) => {
      raw.makeUnaryRequest('/event_store.client.operations.Operations/Shutdown', (x) => x, (b) => b,
        Buffer.alloc(0), md, (err) => resolve(err));
    });
    try {
      for (const who of ['alice', 'bob']) {
        const a = await call(basic(who, password(who)));
        assert.equal(a && a.code, grpc.status.PERMISSION_DENIED, `${who}: ${a}`);
        assert.deepEqual(a.metadata.get('exception'), ['access-denied']);
      }
      const n = await call(new grpc.Metadata());
      assert.equal(n && n.code, grpc.status.UNAUTHENTICATED, String(n));
      const w = await call(basic('ops', 'wrong'));
      assert.equal(w && w.code, grpc.status.UNAUTHENTICATED, `a wrong password: ${w}`);
      assert.equal(w.details, 'Unauthenticated');
    } finally {
      raw.close();
    }
    // the server is still up
    assert.equal((await readAll(admin, sn('open'))).length, 1);
  });

  it('records administrative actions in $audit (readable by admins only)', async () => {
    await denied(readAll(alice, '$audit'), '$audit by alice');
    const records = await readAll(admin, '$audit');
    const actions = records.map((e) => `${e.event.type} ${e.event.data.user} ${e.event.data.target}`);
    assert.ok(actions.includes(`acl-changed admin ${sn('secret')}`), actions.join('\n'));
    // an ACL change carries the document it set
    const aclChange = records.find((e) => e.event.type === 'acl-changed' && e.event.data.target === sn('secret'));
    assert.ok(aclChange.event.data.detail && aclChange.event.data.detail.$acl, JSON.stringify(aclChange.event.data));
    assert.ok(actions.includes(`stream-deleted admin ${sn('secret')}`));
    assert.ok(actions.includes('settings-changed admin $settings'));
    assert.ok(actions.includes(`subscription-group-deleted admin ${sn('ps')}::g1`));
    assert.ok(actions.includes('projections-restarted ops '));
    assert.ok(actions.includes('stream-policy-changed admin $authorization-policy-settings'));
    assert.ok(actions.includes('stream-policy-changed admin $policies'));
    assert.ok(!actions.some((a) => a.startsWith('stream-deleted alice')), 'refused actions are not recorded as done');
    assert.ok(!actions.some((a) => a.startsWith('shutdown')), 'a refused shutdown is not recorded');
  });
});
