// Authentication and the Users service (docs/security.md; src/auth/users.h
// USERS-1..5, src/net/net.h NET-8), against a factumd of its own started with
// --disable-tls (cleartext, authentication on), driven by:
//   - @kurrent/kurrentdb-client, whose reads go through its Rust bridge and
//     carry the URL's credentials even with tls=false (grpc-js does not);
//   - @grpc/grpc-js with our proto/kurrentdb/users.proto for the Users
//     service (neither official Node client has a user management API) and
//     for calls with hand-made `authorization` headers;
//   - HTTP/1.1 with Basic credentials.
// Also measures authenticated calls per second for a cached user beside the
// same calls to an --insecure server (printed; a figure, not a check).
// Usage: node auth.js /path/to/factumd
'use strict';
const { test, after, before } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const http = require('node:http');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const lib = require('@kurrent/kurrentdb-client');

const factumd = process.argv[2] || process.env.FACTUMD_BIN;
const protoRoot = path.join(__dirname, '..', '..', '..', 'proto');
const servers = [];

function start(flags, db) {
  return new Promise((resolve, reject) => {
    const where = db ? ['--db', db] : ['--mem-db'];
    const p = spawn(factumd, [...where, '--node-ip', '127.0.0.1', '--node-port', '0', ...flags], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    p.stderr.on('data', (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m && !p.port) {
        p.port = Number(m[1]);
        resolve(p);
      }
    });
    p.log = () => log;
    p.on('exit', (code) => { if (!p.port) reject(new Error(`factumd exited (${code}): ${log}`)); });
    servers.push(p);
  });
}

function stop(p) {
  return new Promise((resolve) => {
    if (p.exitCode !== null) return resolve(p.exitCode);
    p.on('exit', (code) => resolve(code));
    p.kill('SIGTERM');
  });
}

let srv, users, basic;
const pkg = loader.loadSync(['kurrentdb/users.proto', 'kurrentdb/serverfeatures.proto'], {
  includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true,
});
const proto = grpc.loadPackageDefinition(pkg);

const auth = (user, pass) => {
  const md = new grpc.Metadata();
  if (user !== undefined) md.set('authorization', 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64'));
  return md;
};
const unary = (client, method, req, md) => new Promise((resolve) => {
  client[method](req, md || new grpc.Metadata(), (err, res) => resolve({ err, res }));
});
const details = (client, login, md) => new Promise((resolve) => {
  const out = [];
  const s = client.Details({ options: { login_name: login } }, md);
  s.on('data', (d) => out.push(d.user_details));
  s.on('error', (err) => resolve({ err, out }));
  s.on('end', () => resolve({ err: null, out }));
});
const httpGet = (port, p, user, pass) => new Promise((resolve, reject) => {
  const headers = user ? { authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') } : {};
  http.get({ host: '127.0.0.1', port, path: p, headers }, (res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
  }).on('error', reject);
});

before(async () => {
  srv = await start(['--disable-tls', '--failed-logins-per-minute', '1000']);
  const addr = `127.0.0.1:${srv.port}`;
  users = new proto.event_store.client.users.Users(addr, grpc.credentials.createInsecure());
  basic = new proto.event_store.client.server_features.ServerFeatures(addr, grpc.credentials.createInsecure());
});

after(async () => {
  users && users.close();
  basic && basic.close();
  for (const p of servers) {
    const code = await stop(p);
    assert.equal(code, 0, `factumd did not stop cleanly: ${p.log()}`);
  }
});

test('the default users exist and are announced with a warning (admin, ops, changeit)', async () => {
  assert.match(srv.log(), /'admin' user still has the default password/);
  assert.match(srv.log(), /'ops' user still has the default password/);
  const { err, out } = await details(users, '', auth('admin', 'changeit'));
  assert.equal(err, null);
  assert.deepEqual(out.map((u) => u.login_name), ['admin', 'ops']);
  assert.deepEqual(out[0].groups, ['$admins']);
  assert.deepEqual(out[1].groups, ['$ops']);
  assert.ok(Number(out[0].last_updated.ticks_since_epoch) > 0);
});

test('the Rust-bridge client reads with admin:changeit; wrong, unknown and malformed credentials are Unauthenticated', async () => {
  const url = (cred) => `kurrentdb://${cred}127.0.0.1:${srv.port}?tls=false`;
  const good = lib.KurrentDBClient.connectionString(url('admin:changeit@'));
  // $users is a system stream: only an admin reads it, so reading it proves the credentials arrived and
  // were taken. (This client's appends go through grpc-js, which sends no credentials with tls=false.)
  let n = 0;
  for await (const _ of good.readStream('$users')) n++;
  assert.equal(n, 2, 'the $User events of admin and ops');
  for (const cred of ['admin:wrong@', 'nobody:changeit@']) {
    const bad = lib.KurrentDBClient.connectionString(url(cred));
    await assert.rejects(async () => { for await (const _ of bad.readStream('$users')) {} },
      (e) => /Unauthenticated|AccessDenied|access|denied/i.test(`${e.type} ${e.message} ${e.name}`), 'bad credentials read');
    await bad.dispose();
  }
  await good.dispose();
  // grpc-js directly: status 16 and KurrentDB's message
  for (const md of [auth('admin', 'nope'), auth('ghost', 'x'), (() => { const m = new grpc.Metadata(); m.set('authorization', 'Bearer abc'); return m; })()]) {
    const { err } = await unary(basic, 'GetSupportedMethods', {}, md);
    assert.equal(err && err.code, grpc.status.UNAUTHENTICATED);
    assert.equal(err.details, 'Unauthenticated');
  }
  // no header at all: the anonymous principal, the call goes on
  const { err } = await unary(basic, 'GetSupportedMethods', {}, new grpc.Metadata());
  assert.equal(err, null);
});

test('the Users service: create, details, update, disable, enable, change and reset passwords, delete', async () => {
  const A = auth('admin', 'changeit');
  let r = await unary(users, 'Create', { options: { login_name: 'ann', password: 'pw-1', full_name: 'Ann', groups: ['team'] } }, A);
  assert.equal(r.err, null);
  r = await unary(users, 'Create', { options: { login_name: 'ann', password: 'pw-1', full_name: 'Ann', groups: [] } }, A);
  assert.equal(r.err, null, 'a retried create (the same password) succeeds, as in KurrentDB');
  r = await unary(users, 'Create', { options: { login_name: 'ann', password: 'pw-X', full_name: 'Ann', groups: [] } }, A);
  assert.equal(r.err.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(r.err.metadata.get('exception')[0], 'user-conflict');
  assert.equal(r.err.metadata.get('login-name')[0], 'ann');
  let d = await details(users, 'ann', auth('ann', 'pw-1'));
  assert.equal(d.err, null);
  assert.equal(d.out[0].full_name, 'Ann');
  assert.deepEqual(d.out[0].groups, ['team']);
  // a user may not list everyone, nor read another, nor create
  d = await details(users, '', auth('ann', 'pw-1'));
  assert.equal(d.err.code, grpc.status.PERMISSION_DENIED);
  assert.equal(d.err.metadata.get('exception')[0], 'access-denied');
  d = await details(users, 'admin', auth('ann', 'pw-1'));
  assert.equal(d.err.code, grpc.status.PERMISSION_DENIED);
  r = await unary(users, 'Create', { options: { login_name: 'bob', password: 'x' } }, auth('ann', 'pw-1'));
  assert.equal(r.err.code, grpc.status.PERMISSION_DENIED);
  r = await unary(users, 'Create', { options: { login_name: 'bob', password: 'x' } }, new grpc.Metadata());
  assert.equal(r.err.code, grpc.status.PERMISSION_DENIED, 'anonymous');
  // not found
  r = await unary(users, 'Delete', { options: { login_name: 'nobody' } }, A);
  assert.equal(r.err.code, grpc.status.NOT_FOUND);
  assert.equal(r.err.details, "User 'nobody' is not found.");
  assert.equal(r.err.metadata.get('exception')[0], 'user-not-found');
  assert.equal(r.err.metadata.get('login-name')[0], 'nobody');
  // bad names
  for (const login of ['', 'a:b', 'tab\there']) {
    r = await unary(users, 'Create', { options: { login_name: login, password: 'x' } }, A);
    assert.equal(r.err.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(login));
  }
  // update
  r = await unary(users, 'Update', { options: { login_name: 'ann', full_name: 'Ann B', groups: ['team', 'ops2'] } }, A);
  assert.equal(r.err, null);
  d = await details(users, 'ann', A);
  assert.equal(d.out[0].full_name, 'Ann B');
  assert.deepEqual(d.out[0].groups, ['team', 'ops2']);
  // disabled: its (cached) credentials stop working at once (USERS-3), and look like a wrong password (USERS-4)
  r = await unary(users, 'Disable', { options: { login_name: 'ann' } }, A);
  assert.equal(r.err, null);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-1'));
  assert.equal(r.err.code, grpc.status.UNAUTHENTICATED);
  assert.equal(r.err.details, 'Unauthenticated');
  d = await details(users, 'ann', A);
  assert.equal(d.out[0].disabled, true);
  r = await unary(users, 'Enable', { options: { login_name: 'ann' } }, A);
  assert.equal(r.err, null);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-1'));
  assert.equal(r.err, null);
  // change password: oneself only, with the current password
  r = await unary(users, 'ChangePassword', { options: { login_name: 'ann', current_password: 'bad', new_password: 'pw-2' } }, auth('ann', 'pw-1'));
  assert.equal(r.err.code, grpc.status.PERMISSION_DENIED);
  r = await unary(users, 'ChangePassword', { options: { login_name: 'ann', current_password: 'pw-1', new_password: 'pw-2' } }, A);
  assert.equal(r.err.code, grpc.status.PERMISSION_DENIED, 'admin changes no one else\'s password');
  r = await unary(users, 'ChangePassword', { options: { login_name: 'ann', current_password: 'pw-1', new_password: 'pw-2' } }, auth('ann', 'pw-1'));
  assert.equal(r.err, null);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-1'));
  assert.equal(r.err.code, grpc.status.UNAUTHENTICATED, 'the old password (cached before) is void');
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-2'));
  assert.equal(r.err, null);
  // reset: admins
  r = await unary(users, 'ResetPassword', { options: { login_name: 'ann', new_password: 'pw-3' } }, auth('ann', 'pw-2'));
  assert.equal(r.err.code, grpc.status.PERMISSION_DENIED);
  r = await unary(users, 'ResetPassword', { options: { login_name: 'ann', new_password: 'pw-3' } }, A);
  assert.equal(r.err, null);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-2'));
  assert.equal(r.err.code, grpc.status.UNAUTHENTICATED);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-3'));
  assert.equal(r.err, null);
  // delete: gone, its credentials too; the login may be created again
  r = await unary(users, 'Delete', { options: { login_name: 'ann' } }, A);
  assert.equal(r.err, null);
  r = await unary(basic, 'GetSupportedMethods', {}, auth('ann', 'pw-3'));
  assert.equal(r.err.code, grpc.status.UNAUTHENTICATED);
  d = await details(users, 'ann', A);
  assert.equal(d.err.code, grpc.status.NOT_FOUND);
  r = await unary(users, 'Create', { options: { login_name: 'ann', password: 'again', full_name: 'Ann 2' } }, A);
  assert.equal(r.err, null);
  d = await details(users, 'ann', auth('ann', 'again'));
  assert.equal(d.out[0].full_name, 'Ann 2');
});

test('the users and their changes are in the store: $users, $user-<login>, $audit', async () => {
  const client = lib.KurrentDBClient.connectionString(`kurrentdb://admin:changeit@127.0.0.1:${srv.port}?tls=false`);
  const types = [];
  for await (const e of client.readStream('$user-ann')) types.push(e.event.type);
  assert.deepEqual(types, ['$UserCreated']); // the second life of the stream (the first was deleted)
  const logins = [];
  for await (const e of client.readStream('$users')) logins.push(Buffer.from(e.event.data).toString());
  assert.deepEqual(logins, ['admin', 'ops', 'ann', 'ann']);
  const audit = [];
  for await (const e of client.readStream('$audit')) audit.push(e.event.type);
  for (const a of ['user-created', 'user-updated', 'user-disabled', 'user-enabled', 'password-changed', 'password-reset', 'user-deleted'])
    assert.ok(audit.includes(a), `$audit has ${a}: ${audit}`);
  await client.dispose();
});

test('users are loaded at start: a restart keeps them, their passwords and flags; no second default user', async () => {
  const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'auth-'));
  try {
    let s = await start(['--disable-tls'], dir);
    let c = new proto.event_store.client.users.Users(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const A = auth('admin', 'changeit');
    assert.equal((await unary(c, 'Create', { options: { login_name: 'kim', password: 'k1', full_name: 'Kim', groups: ['g'] } }, A)).err, null);
    assert.equal((await unary(c, 'Create', { options: { login_name: 'lee', password: 'l1' } }, A)).err, null);
    assert.equal((await unary(c, 'Disable', { options: { login_name: 'lee' } }, A)).err, null);
    assert.equal((await unary(c, 'Create', { options: { login_name: 'gone', password: 'g' } }, A)).err, null);
    assert.equal((await unary(c, 'Delete', { options: { login_name: 'gone' } }, A)).err, null);
    assert.equal((await unary(c, 'Create', { options: { login_name: 'back', password: 'b1', full_name: 'first' } }, A)).err, null);
    assert.equal((await unary(c, 'Delete', { options: { login_name: 'back' } }, A)).err, null);
    assert.equal((await unary(c, 'Create', { options: { login_name: 'back', password: 'b2', full_name: 'second' } }, A)).err, null);
    assert.equal((await unary(c, 'ChangePassword', { options: { login_name: 'admin', current_password: 'changeit', new_password: 'secret' } }, A)).err, null);
    c.close();
    assert.equal(await stop(s), 0);
    s = await start(['--disable-tls'], dir);
    assert.doesNotMatch(s.log(), /'admin' user still has the default password/);
    assert.match(s.log(), /'ops' user still has the default password/);
    assert.doesNotMatch(s.log(), /user account has been created/);
    c = new proto.event_store.client.users.Users(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const d = await details(c, '', auth('admin', 'secret'));
    assert.equal(d.err, null);
    assert.deepEqual(d.out.map((u) => [u.login_name, u.full_name, u.groups, u.disabled]),
      [['admin', 'factum Administrator', ['$admins'], false], ['back', 'second', [], false], ['kim', 'Kim', ['g'], false],
        ['lee', '', [], true], ['ops', 'factum Operations', ['$ops'], false]]);
    assert.equal((await details(c, 'back', auth('back', 'b2'))).err, null, 'the second life of a deleted login');
    assert.equal((await details(c, 'back', auth('back', 'b1'))).err.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await details(c, 'kim', auth('kim', 'k1'))).err, null);
    assert.equal((await details(c, 'lee', auth('lee', 'l1'))).err.code, grpc.status.UNAUTHENTICATED);
    assert.equal((await details(c, '', A)).err.code, grpc.status.UNAUTHENTICATED);
    c.close();
    assert.equal(await stop(s), 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('X.509 user certificates (USERS-6): a verified client certificate whose CN names an enabled user is that user', async () => {
  const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'auth-x509-'));
  try {
    execFileSync('bash', [path.join(__dirname, '..', 'mkcerts.sh'), dir], { env: { ...process.env, MKCERTS_EXTRA: '1' } });
    const s = await start(['--certificate-file', `${dir}/node.crt`, '--certificate-private-key-file', `${dir}/node.key`,
      '--trusted-root-certificates-path', `${dir}/ca`]);
    const ca = fs.readFileSync(`${dir}/ca/ca.crt`);
    const client = (cert) => new proto.event_store.client.users.Users(`localhost:${s.port}`,
      cert ? grpc.credentials.createSsl(ca, fs.readFileSync(`${dir}/${cert}.key`), fs.readFileSync(`${dir}/${cert}.crt`))
        : grpc.credentials.createSsl(ca));
    const asAdmin = client('user-admin'); // CN=admin
    let d = await details(asAdmin, '', new grpc.Metadata());
    assert.equal(d.err, null, 'the certificate of admin lists users');
    assert.deepEqual(d.out.map((u) => u.login_name), ['admin', 'ops']);
    const plain = client(null);
    d = await details(plain, '', new grpc.Metadata());
    assert.equal(d.err.code, grpc.status.PERMISSION_DENIED, 'no certificate: anonymous');
    // a header wins over the certificate
    d = await details(asAdmin, '', auth('ops', 'changeit'));
    assert.equal(d.err.code, grpc.status.PERMISSION_DENIED, 'ops (the header), not admin (the certificate)');
    d = await details(asAdmin, '', auth('admin', 'wrong'));
    assert.equal(d.err.code, grpc.status.UNAUTHENTICATED, 'a wrong header is not saved by the certificate');
    // a disabled user's certificate is anonymous
    assert.equal((await unary(asAdmin, 'Create', { options: { login_name: 'root', password: 'r', groups: ['$admins'] } }, new grpc.Metadata())).err, null);
    assert.equal((await unary(asAdmin, 'Disable', { options: { login_name: 'admin' } }, auth('root', 'r'))).err, null);
    d = await details(asAdmin, '', new grpc.Metadata());
    assert.equal(d.err.code, grpc.status.PERMISSION_DENIED, 'disabled: anonymous');
    assert.equal((await unary(plain, 'Enable', { options: { login_name: 'admin' } }, auth('root', 'r'))).err, null);
    d = await details(asAdmin, '', new grpc.Metadata());
    assert.equal(d.err, null);
    // both official clients over TLS: the right password works, a wrong one, an unknown user and a
    // disabled one are AccessDeniedError (status 16). Each client in a process of its own (the two
    // cannot share one: their generated protobuf code collides).
    assert.equal((await unary(asAdmin, 'Create', { options: { login_name: 'off', password: 'o' } }, new grpc.Metadata())).err, null);
    assert.equal((await unary(asAdmin, 'Disable', { options: { login_name: 'off' } }, new grpc.Metadata())).err, null);
    const probe = `
      const [pkg, cls, scheme, port, ca] = process.argv.slice(1);
      const lib = require(pkg);
      (async () => {
        const out = {};
        for (const cred of ['admin:changeit', 'admin:wrong', 'nobody:changeit', 'off:o']) {
          const c = lib[cls].connectionString(scheme + '://' + cred + '@localhost:' + port + '?tls=true&tlsCAFile=' + ca);
          try {
            await c.appendToStream('tls-probe', lib.jsonEvent({ type: 't', data: {} }));
            out[cred] = 'ok';
          } catch (e) { out[cred] = e.constructor.name; }
          await c.dispose();
        }
        console.log(JSON.stringify(out));
      })();`;
    for (const [pkg, cls, scheme] of [['@kurrent/kurrentdb-client', 'KurrentDBClient', 'kurrentdb'],
      ['@eventstore/db-client', 'EventStoreDBClient', 'esdb']]) {
      const out = JSON.parse(execFileSync('node', ['-e', probe, pkg, cls, scheme, String(s.port), `${dir}/ca/ca.crt`],
        { cwd: __dirname, encoding: 'utf8' }).trim().split('\n').pop());
      assert.deepEqual(out, { 'admin:changeit': 'ok', 'admin:wrong': 'AccessDeniedError', 'nobody:changeit': 'AccessDeniedError',
        'off:o': 'AccessDeniedError' }, pkg);
    }
    // a certificate from a CA the server does not trust never names a user
    const bad = client('user-bad');
    d = await details(bad, '', new grpc.Metadata());
    assert.notEqual(d.err, null);
    for (const c of [asAdmin, plain, bad]) c.close();
    assert.equal(await stop(s), 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('HTTP Basic: /info for anyone, /metrics and /gossip for authenticated users (401 with a challenge), reloads for $ops (403)', async () => {
  let r = await httpGet(srv.port, '/info');
  assert.equal(r.status, 200);
  r = await httpGet(srv.port, '/metrics');
  assert.equal(r.status, 401);
  assert.equal(r.headers['www-authenticate'], 'Basic realm="factum"');
  r = await httpGet(srv.port, '/metrics', 'admin', 'wrong');
  assert.equal(r.status, 401);
  r = await httpGet(srv.port, '/metrics', 'ops', 'changeit');
  assert.equal(r.status, 200);
  for (const m of ['factum_users', 'factum_auth_cache_hits_total', 'factum_auth_verifications_total', 'factum_auth_failures_total'])
    assert.match(r.body, new RegExp(`^${m} \\d`, 'm'), m);
  r = await httpGet(srv.port, '/gossip', 'admin', 'changeit');
  assert.equal(r.status, 200);
  // POST /admin/reloadconfig: $ops and $admins; anonymous 401, another user 403
  const post = (user, pass) => new Promise((resolve, reject) => {
    const headers = user ? { authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') } : {};
    const rq = http.request({ host: '127.0.0.1', port: srv.port, path: '/admin/reloadconfig', method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    rq.on('error', reject);
    rq.end();
  });
  assert.equal(await post(), 401);
  assert.equal((await unary(users, 'Create', { options: { login_name: 'plain', password: 'p' } }, auth('admin', 'changeit'))).err, null);
  assert.equal(await post('plain', 'p'), 403);
  // a reload asked for by an operator is audited with who asked; refused ones are not
  assert.equal(await post('ops', 'changeit'), 200);
  const client = lib.KurrentDBClient.connectionString(`kurrentdb://admin:changeit@127.0.0.1:${srv.port}?tls=false`);
  const reloads = [];
  for (let i = 0; i < 50 && reloads.length === 0; i++) {
    for await (const e of client.readStream('$audit')) {
      if (e.event.type === 'configuration-reload-requested') reloads.push(e.event.data);
    }
    if (reloads.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  await client.dispose();
  assert.equal(reloads.length, 1, 'one audited reload (the refused ones are not recorded)');
  assert.equal(reloads[0].user, 'ops');
  assert.equal(reloads[0].action, 'configuration-reload-requested');
});

test('failed logins are rate-limited per source (USERS-5), and logged', async () => {
  // a fresh server: the source's budget is whole
  const s = await start(['--disable-tls', '--failed-logins-per-minute', '10']);
  const c = new proto.event_store.client.server_features.ServerFeatures(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
  for (let i = 0; i < 10; i++) {
    const { err } = await unary(c, 'GetSupportedMethods', {}, auth('admin', `bad-${i}`));
    assert.equal(err.code, grpc.status.UNAUTHENTICATED);
  }
  // factumd's log reaches us through a pipe: give the line a moment on a loaded machine
  for (let i = 0; i < 50 && !/too many failed logins from 127\.0\.0\.1/.test(s.log()); i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.match(s.log(), /too many failed logins from 127\.0\.0\.1/);
  // now even the right password is refused fast, without a KDF
  const t0 = process.hrtime.bigint();
  const { err } = await unary(c, 'GetSupportedMethods', {}, auth('admin', 'changeit'));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(err.code, grpc.status.UNAUTHENTICATED);
  console.log(`# a rate-limited login was refused in ${ms.toFixed(2)} ms`);
  c.close();
});

test('a flood of wrong passwords does not stall a client whose credentials are cached (USERS-1, POOL-1)', async () => {
  const c = new proto.event_store.client.server_features.ServerFeatures(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  const good = auth('ops', 'changeit');
  assert.equal((await unary(c, 'GetSupportedMethods', {}, good)).err, null); // cached now
  const flood = new proto.event_store.client.server_features.ServerFeatures(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure(),
    { 'grpc.use_local_subchannel_pool': 1 });
  let stop = false;
  const codes = {};
  const flooding = (async () => {
    let i = 0;
    while (!stop) {
      const batch = Array.from({ length: 100 }, () => unary(flood, 'GetSupportedMethods', {}, auth('admin', `guess-${i++}`)));
      for (const { err } of await Promise.all(batch)) codes[err ? err.code : 0] = (codes[err ? err.code : 0] || 0) + 1;
    }
  })();
  const lat = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    const t = process.hrtime.bigint();
    const { err } = await unary(c, 'GetSupportedMethods', {}, good);
    assert.equal(err, null);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  stop = true;
  await flooding;
  lat.sort((a, b) => a - b);
  const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
  console.log(`# during a flood of wrong passwords (${JSON.stringify(codes)}): ${lat.length} cached calls, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`);
  assert.ok(!codes[0], 'no guess got in');
  assert.ok(codes[grpc.status.UNAUTHENTICATED] > 0);
  c.close();
  flood.close();
});

test('clients that leave while their credentials are being checked (NET-8: the answer finds no one)', async () => {
  const net = require('node:net');
  const c = new proto.event_store.client.server_features.ServerFeatures(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  // gRPC: cancelled right after the headers went, with credentials not cached yet (a KDF runs for each)
  for (let i = 0; i < 20; i++) {
    const call = c.GetSupportedMethods({}, auth('ops', `cancel-${i}`), () => {});
    setTimeout(() => call.cancel(), i % 3);
  }
  // HTTP/1.1: the connection closed while its request is held
  await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise((resolve) => {
    const sock = net.connect(srv.port, '127.0.0.1', () => {
      const cred = Buffer.from(`ops:http-${i}`).toString('base64');
      sock.write(`GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${cred}\r\n\r\nGET /info HTTP/1.1\r\n\r\n`);
      setTimeout(() => { sock.destroy(); resolve(); }, i % 4);
    });
    sock.on('error', resolve);
  })));
  // and a held HTTP request answered in order with the one behind it
  const answers = await new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1', () => {
      const cred = Buffer.from('admin:changeit').toString('base64');
      sock.write(`GET /gossip HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${cred}\r\n\r\nGET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    let buf = '';
    sock.on('data', (d) => { buf += d; });
    sock.on('end', () => resolve(buf));
    sock.on('error', reject);
  });
  const statuses = [...answers.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '200']);
  assert.ok(answers.indexOf('"members"') < answers.indexOf('"esVersion"'), 'in order');
  // the server is fine, and every pending check was answered or dropped
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await unary(c, 'GetSupportedMethods', {}, auth('ops', 'changeit'))).err, null);
  c.close();
});

test('cached credentials: calls per second beside an insecure server (a figure)', async () => {
  const ins = await start(['--insecure']);
  // --insecure: no authentication runs; any authorization header is ignored (the system principal)
  {
    const c = new proto.event_store.client.users.Users(`127.0.0.1:${ins.port}`, grpc.credentials.createInsecure());
    for (const md of [auth('admin', 'wrong'), auth('ghost', 'x'), new grpc.Metadata()]) {
      const d = await details(c, '', md);
      assert.equal(d.err, null);
      assert.deepEqual(d.out.map((u) => u.login_name), ['admin', 'ops']);
    }
    c.close();
  }
  const measure = async (port, md) => {
    const c = new proto.event_store.client.server_features.ServerFeatures(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    await unary(c, 'GetSupportedMethods', {}, md); // warm: the first one runs the KDF
    const N = 4000, CONC = 32;
    let done = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONC }, async () => {
      while (done < N) {
        done++;
        const { err } = await unary(c, 'GetSupportedMethods', {}, md);
        assert.equal(err, null);
      }
    }));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    c.close();
    return N / s;
  };
  // alternating rounds, the best of each (the machine is shared: noise is large)
  let a = 0, b = 0;
  for (let round = 0; round < 3; round++) {
    a = Math.max(a, await measure(srv.port, auth('ops', 'changeit')));
    b = Math.max(b, await measure(ins.port, new grpc.Metadata()));
  }
  console.log(`# cached authenticated calls: ${a.toFixed(0)}/s; insecure: ${b.toFixed(0)}/s; ratio ${(a / b).toFixed(3)}`);
});

test("a connection's memo of its credentials (USERS-7) follows every change to its user", async () => {
  const A = auth('admin', 'changeit');
  const metric = async (name) => {
    const r = await httpGet(srv.port, '/metrics', 'admin', 'changeit');
    const m = new RegExp(`^${name} (\\d+)`, 'm').exec(r.body);
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  };
  let r = await unary(users, 'Create', { options: { login_name: 'mia', password: 'm-1', full_name: 'Mia', groups: ['$admins'] } }, A);
  assert.equal(r.err, null);
  const m0 = await metric('factum_auth_memo_hits_total');
  for (let i = 0; i < 4; i++) { // the first derives, the second finds the cache, the rest the memo
    const d = await details(users, '', auth('mia', 'm-1'));
    assert.equal(d.err, null, 'an admin lists the users');
  }
  assert.ok(await metric('factum_auth_memo_hits_total') >= m0 + 2, 'calls decided by the memo');
  // her groups change: the same header on the same connection acts as she is now
  r = await unary(users, 'Update', { options: { login_name: 'mia', full_name: 'Mia', groups: [] } }, A);
  assert.equal(r.err, null);
  let d = await details(users, '', auth('mia', 'm-1'));
  assert.equal(d.err && d.err.code, grpc.status.PERMISSION_DENIED, 'no longer an admin');
  for (let i = 0; i < 3; i++) assert.equal((await details(users, 'mia', auth('mia', 'm-1'))).err, null);
  r = await unary(users, 'Disable', { options: { login_name: 'mia' } }, A);
  assert.equal(r.err, null);
  d = await details(users, 'mia', auth('mia', 'm-1'));
  assert.equal(d.err && d.err.code, grpc.status.UNAUTHENTICATED, 'disabled');
  r = await unary(users, 'Enable', { options: { login_name: 'mia' } }, A);
  for (let i = 0; i < 3; i++) assert.equal((await details(users, 'mia', auth('mia', 'm-1'))).err, null);
  r = await unary(users, 'ChangePassword', { options: { login_name: 'mia', current_password: 'm-1', new_password: 'm-2' } }, auth('mia', 'm-1'));
  assert.equal(r.err, null);
  d = await details(users, 'mia', auth('mia', 'm-1'));
  assert.equal(d.err && d.err.code, grpc.status.UNAUTHENTICATED, 'the old password');
  for (let i = 0; i < 3; i++) assert.equal((await details(users, 'mia', auth('mia', 'm-2'))).err, null);
  r = await unary(users, 'Delete', { options: { login_name: 'mia' } }, A);
  assert.equal(r.err, null);
  d = await details(users, 'mia', auth('mia', 'm-2'));
  assert.equal(d.err && d.err.code, grpc.status.UNAUTHENTICATED, 'deleted');
});
