// The bank account as a Node application (examples/bank/node/bank.js) with the
// official client against factumd: its command line, snapshots by factum's
// convention, command ids derived as libfactum derives them, and concurrent
// withdrawals from four connections against one account (the no-overdraft
// invariant holds, conflicts are retried, the final balance is the model's);
// loading through $load/, old deposits upcast by factumd (and the stored bytes
// through $raw/), and the balance at a valid time as known now and before a
// late booking ($asof/).
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { execFile } = require('node:child_process');
const lib = require('@kurrent/kurrentdb-client');

process.env.NODE_PATH = path.join(__dirname, 'node_modules'); // for the example, outside this package
require('node:module').Module._initPaths();
const bankPath = path.join(__dirname, '../../../examples/bank/node/bank.js');
const bank = require(bankPath);
const url = process.env.FACTUMD_URL;
const tag = crypto.randomUUID().slice(0, 8);

function cli(...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [bankPath, url, ...args], { env: process.env }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, out: stdout + stderr });
    });
  });
}

describe('the bank account in Node', () => {
  let client;
  before(() => { client = lib.KurrentDBClient.connectionString(url); });
  after(async () => { await client.dispose(); });

  it('derives command ids as libfactum does', () => {
    assert.equal(bank.deriveId('00010203-0405-0607-0809-0a0b0c0d0e0f', 'account-1', 2), 'c2bd4492-a06f-845d-a42d-d728fe105c39');
  });

  it('runs from its command line', async () => {
    const a = `n${tag}`;
    assert.equal((await cli('deposit', a, '5')).code, 2);
    assert.equal((await cli('open', a, 'Alice')).code, 0);
    assert.equal((await cli('deposit', a, '100')).code, 0);
    const over = await cli('withdraw', a, '101');
    assert.equal(over.code, 2);
    assert.match(over.out, /insufficient funds/);
    const id = crypto.randomUUID();
    assert.equal((await cli('withdraw', a, '60', id)).code, 0);
    const again = await cli('withdraw', a, '60', id);
    assert.equal(again.code, 0);
    assert.match(again.out, /already done/);
    const b = await cli('balance', a);
    assert.match(b.out, /balance 40 version 2/);
  });

  it('keeps the invariant under concurrent withdrawals from four connections', async () => {
    const stream = `account-c${tag}`;
    const clients = [0, 1, 2, 3].map(() => lib.KurrentDBClient.connectionString(url));
    await bank.handle(clients[0], stream, { kind: 'open', owner: 'Bob' });
    await bank.handle(clients[0], stream, { kind: 'deposit', amount: 2000 });
    let deposited = 0, withdrawn = 0, accepted = 0, attempts = 0;
    await Promise.all(clients.map(async (c, k) => {
      for (let i = 0; i < 40; i++) {
        const deposit = (i + k) % 4 === 0;
        const amount = 1 + ((i * 37 + k * 11) % 120);
        try {
          const r = await bank.handle(c, stream, { kind: deposit ? 'deposit' : 'withdraw', amount }, crypto.randomUUID());
          attempts += r.attempts;
          accepted++;
          if (deposit) deposited += amount; else withdrawn += amount;
        } catch (e) {
          if (!/insufficient/.test(e.message)) throw e;
          attempts++;
        }
      }
    }));
    await Promise.all(clients.map((c) => c.dispose()));
    let balance = 0, lowest = 0, n = 0;
    for await (const { event: e } of client.readStream(stream)) {
      if (e.type === 'MoneyDeposited') balance += e.data.amount;
      if (e.type === 'MoneyWithdrawn') balance -= e.data.amount;
      lowest = Math.min(lowest, balance);
      n++;
    }
    assert.equal(lowest, 0, 'never overdrawn');
    assert.equal(balance, 2000 + deposited - withdrawn);
    assert.equal(n, 2 + accepted);
    assert.ok(attempts > 160, `conflicts were retried (${attempts} attempts for 160 commands)`);
    const loaded = await bank.load(client, stream, null);
    assert.equal(loaded.state.balance, balance);
    assert.notEqual(loaded.snapshot, null, 'loaded from a snapshot');
    const snaps = [];
    for await (const { event: e } of client.readStream(`$snapshots-${stream}`)) snaps.push(e);
    assert.ok(snaps.length >= 1 && snaps.length <= 3, `retention keeps 3 (${snaps.length})`);
  });

  it('reads an old deposit upcast, and the stored bytes through $raw/', async () => {
    const a = `u${tag}`, stream = `account-${a}`;
    assert.equal((await cli('open', a, 'Carol')).code, 0);
    assert.equal((await cli('deposit', a, '100')).code, 0);
    const imp = await cli('import-v1', a, '25');
    assert.equal(imp.code, 0, imp.out);
    const b = await cli('balance', a);
    assert.match(b.out, /balance 125 version 2/);
    const up = [], raw = [];
    for await (const { event: e } of client.readStream(stream)) up.push(e);
    for await (const { event: e } of client.readStream(`$raw/${stream}`)) raw.push(e);
    assert.deepEqual(up[2].data, { amount: 25, currency: 'EUR' });
    assert.equal(up[2].metadata.$schemaVersion, 2);
    assert.deepEqual(raw[2].data, { value: 25 });
    assert.deepEqual(up[1].data, raw[1].data, 'a version 2 deposit is not changed');
    assert.equal((await cli('withdraw', a, '125')).code, 0);
    assert.equal((await cli('withdraw', a, '1')).code, 2);
  });

  it('answers the balance on March 15, as known now and as known before a late booking', async () => {
    const a = `t${tag}`;
    assert.equal((await cli('open', a, 'Dan', '--valid-from', '2026-03-01')).code, 0);
    assert.equal((await cli('deposit', a, '100', '--valid-from', '2026-03-10')).code, 0);
    assert.equal((await cli('deposit', a, '50', '--valid-from', '2026-03-14T09:30:00Z')).code, 0);
    let r = await cli('balance', a, '--valid-at', '2026-03-15');
    assert.match(r.out, /balance 150 at 2026-03-15 as known now \(open\)/);
    await new Promise((res) => setTimeout(res, 50));
    const before = new Date().toISOString();
    await new Promise((res) => setTimeout(res, 50));
    assert.equal((await cli('withdraw', a, '30', '--valid-from', '2026-03-12')).code, 0);
    r = await cli('balance', a, '--valid-at', '2026-03-15');
    assert.match(r.out, /balance 120 at 2026-03-15 as known now/);
    r = await cli('balance', a, '--valid-at', '2026-03-15', '--as-of', before);
    assert.match(r.out, /balance 150 at 2026-03-15 as known at /);
    r = await cli('balance', a, '--valid-at', '2026-03-11');
    assert.match(r.out, /balance 100 at 2026-03-11/);
    r = await cli('balance', a, '--valid-at', '2026-02-01');
    assert.match(r.out, /balance 0 at 2026-02-01 as known now \(not open then\)/);
    r = await cli('deposit', a, '5', '--valid-from', 'yesterday');
    assert.equal(r.code, 2);
    assert.match(r.out, /RFC 3339/);
  });
});
