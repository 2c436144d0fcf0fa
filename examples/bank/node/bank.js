#!/usr/bin/env node
// bank.js - the bank account of examples/bank as a Node application with the
// official KurrentDB client (@kurrent/kurrentdb-client) against factumd: the
// same events, the same no-overdraft decider, and factum's snapshot
// convention, with not a line of factum-specific client code:
//
//   node bank.js URL open ACCOUNT OWNER [--valid-from T]
//   node bank.js URL deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID] [--valid-from T]
//   node bank.js URL balance ACCOUNT [--valid-at T] [--as-of T]
//   node bank.js URL import-v1 ACCOUNT AMOUNT
//
// A command loads the account in one read of factum's `$load/account-<id>`
// virtual stream (the newest snapshot of `$snapshots-account-<id>`, whose
// metadata {"$streamVersion": V} says which version it reflects, then the
// events after V), decides, and appends with the loaded revision as the
// expected one; when another writer came first (WrongExpectedVersion) it loads
// and decides again. Every 20 events it appends a snapshot (factumd checks
// $streamVersion) and keeps 3 ($maxCount). A COMMAND-ID makes a command
// idempotent: its events' ids are derived from it exactly as libfactum's
// factum_app_derive_id does, so the C program (example_bank) and this one
// recognise each other's commands.
//
// The store does the rest, for a client it has never seen:
// - upcasting: deposits are {"amount", "currency"} with {"$schemaVersion": 2};
//   an older application wrote {"value"} (version 1: `import-v1` writes one).
//   The program registers the upcaster 1 -> 2 in `$upcasters` (an idempotent
//   append), and from then on factumd sends every such event as version 2;
//   the stored bytes stay as written (`$raw/account-<id>` shows them).
// - time: --valid-from records when a fact happened ("$validFrom"), and
//   `balance --valid-at T [--as-of T1]` is the balance at T as known now (or at
//   T1), read from `$asof/account-<id>?time=...&valid=...`.
// Exit status: 0 done, 2 refused by the domain, 1 an error.
'use strict';
const crypto = require('node:crypto');
const { KurrentDBClient, jsonEvent, ANY, NO_STREAM, STREAM_EXISTS, FORWARDS, WrongExpectedVersionError, StreamNotFoundError } =
  require('@kurrent/kurrentdb-client');

const SNAPSHOT_EVERY = Number(process.env.BANK_SNAPSHOT_EVERY || 20);
const KEEP = 3;
const MAX_ATTEMPTS = 1000;

class Refused extends Error {}

// factum_app_derive_id (src/cqrs/decider.c): SHA-256 over a domain tag, the
// base id, the salt's length and bytes, and the index, as a version-8 UUID.
function deriveId(base, salt, index) {
  const h = crypto.createHash('sha256');
  h.update('factum-derived-id/1');
  h.update(Buffer.from(base.replace(/-/g, ''), 'hex'));
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(Buffer.byteLength(salt)));
  h.update(len);
  h.update(salt);
  const ix = Buffer.alloc(4);
  ix.writeUInt32BE(index);
  h.update(ix);
  const b = h.digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x80;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const initial = () => ({ opened: false, owner: '', balance: 0 });

function evolve(st, e) {
  switch (e.type) {
    case 'AccountOpened': return { ...st, opened: true, owner: e.data.owner };
    case 'MoneyDeposited': return { ...st, balance: st.balance + e.data.amount };
    case 'MoneyWithdrawn': return { ...st, balance: st.balance - e.data.amount };
    default: return st;
  }
}

// When a fact happened, if earlier than now: "$validFrom" (RFC 3339 UTC).
function validFrom(cmd) {
  if (cmd.validFrom === undefined) return {};
  const t = new Date(cmd.validFrom);
  if (!/^\d{4}-\d\d-\d\d/.test(cmd.validFrom) || Number.isNaN(t.getTime())) throw new Refused('--valid-from must be an RFC 3339 time or a date');
  return { $validFrom: t.toISOString() };
}

function decide(cmd, st) {
  if (cmd.kind === 'open') {
    if (st.opened) throw new Refused('the account is open already');
    if (!/^[A-Za-z0-9 ._-]{1,63}$/.test(cmd.owner)) throw new Refused('bad owner');
    return [{ type: 'AccountOpened', data: { owner: cmd.owner }, metadata: validFrom(cmd) }];
  }
  if (!st.opened) throw new Refused('the account is not open');
  if (!Number.isSafeInteger(cmd.amount) || cmd.amount <= 0 || cmd.amount > 1e12) throw new Refused('bad amount');
  if (cmd.kind === 'withdraw' && cmd.amount > st.balance) throw new Refused('insufficient funds: the account may not be overdrawn');
  if (cmd.kind === 'deposit')
    return [{ type: 'MoneyDeposited', data: { amount: cmd.amount, currency: 'EUR' }, metadata: { $schemaVersion: 2, ...validFrom(cmd) } }];
  return [{ type: 'MoneyWithdrawn', data: { amount: cmd.amount }, metadata: validFrom(cmd) }];
}

// The upcaster of MoneyDeposited 1 -> 2, as example_bank registers it
// (examples/bank/account.h). Its event id is fixed, so registering it again is
// an idempotent replay of the same append.
const UPCASTER_ID = '5d1c0e2a-7b3f-4c61-9a8e-2f4b6d8c0a17';
const UPCASTER = {
  eventType: 'MoneyDeposited', fromVersion: 1, toVersion: 2, description: 'value became amount; currency added',
  steps: [{ op: 'rename', from: 'value', to: 'amount' }, { op: 'default', path: 'currency', value: 'EUR' }],
};
async function registerUpcaster(client) {
  await client.appendToStream('$upcasters', jsonEvent({ id: UPCASTER_ID, type: '$upcaster-set', data: UPCASTER }), { streamState: ANY });
}

async function collect(iter) {
  const out = [];
  try {
    for await (const r of iter) out.push(r.event);
  } catch (e) {
    if (!(e instanceof StreamNotFoundError)) throw e;
  }
  return out;
}

// The state in one read: `$load/S` gives the newest usable snapshot (an event
// of `$snapshots-S`) and then the events of S after it.
async function load(client, stream, idToFind) {
  let state = initial(), revision = null, snapshot = null, found = false;
  for (const e of await collect(client.readStream(`$load/${stream}`, { direction: FORWARDS, fromRevision: 0n, maxCount: 1e9 }))) {
    if (e.streamId === `$snapshots-${stream}`) {
      state = e.data;
      snapshot = e.metadata.$streamVersion;
      revision = BigInt(snapshot);
      continue;
    }
    if (idToFind && e.id === idToFind) found = true;
    state = evolve(state, e);
    revision = e.revision;
  }
  return { state, revision, snapshot, found };
}

// The balance at a valid time, as known now or at an earlier time.
async function balanceAsOf(client, stream, validAt, asOf) {
  const iso = (t, what) => {
    const d = new Date(t);
    if (Number.isNaN(d.getTime())) throw new Refused(`${what} must be an RFC 3339 time or a date`);
    return d.toISOString();
  };
  let q = `time=${asOf === undefined ? new Date().toISOString() : iso(asOf, '--as-of')}`;
  if (validAt !== undefined) q += `&valid=${iso(validAt, '--valid-at')}`;
  let state = initial();
  for (const e of await collect(client.readStream(`$asof/${stream}?${q}`, { direction: FORWARDS, fromRevision: 0n, maxCount: 1e9 })))
    state = evolve(state, e);
  return state;
}

async function handle(client, stream, cmd, commandId) {
  const id0 = commandId ? deriveId(commandId, stream, 0) : null;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (attempt) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    const { state, revision, snapshot, found } = await load(client, stream, id0);
    if (found) return { revision, already: true, attempts: attempt };
    const events = decide(cmd, state);
    const data = events.map((e, i) => jsonEvent({ ...e, ...(commandId ? { id: deriveId(commandId, stream, i) } : {}) }));
    try {
      const r = await client.appendToStream(stream, data, { streamState: revision === null ? NO_STREAM : revision });
      let after = state;
      for (const e of events) after = evolve(after, e);
      const base = snapshot === null ? -1n : BigInt(snapshot);
      if (SNAPSHOT_EVERY > 0 && r.nextExpectedRevision - base >= BigInt(SNAPSHOT_EVERY)) {
        await client.appendToStream(`$snapshots-${stream}`,
          [jsonEvent({ type: 'AccountSnapshot', data: after, metadata: { $streamVersion: Number(r.nextExpectedRevision) } })],
          { streamState: ANY });
        const meta = await client.getStreamMetadata(`$snapshots-${stream}`);
        if (meta.metadata?.maxCount !== KEEP) await client.setStreamMetadata(`$snapshots-${stream}`, { maxCount: KEEP });
      }
      return { revision: r.nextExpectedRevision, already: false, attempts: attempt + 1 };
    } catch (e) {
      if (e instanceof WrongExpectedVersionError) continue; // someone came first: decide again
      throw e;
    }
  }
  throw new Error('still conflicting after ' + MAX_ATTEMPTS + ' attempts');
}

async function main() {
  const args = process.argv.slice(2), pos = [], opt = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--(valid-from|valid-at|as-of)$/.exec(args[i]);
    if (m && i + 1 < args.length) opt[m[1]] = args[++i];
    else pos.push(args[i]);
  }
  const [url, verb, account, ...rest] = pos;
  if (!url || !verb || !account) {
    console.error('usage: bank.js URL open ACCOUNT OWNER | deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID] [--valid-from T] |\n' +
      '       balance ACCOUNT [--valid-at T] [--as-of T] | import-v1 ACCOUNT AMOUNT');
    return 1;
  }
  const client = KurrentDBClient.connectionString(url);
  const stream = `account-${account}`;
  try {
    await registerUpcaster(client);
    if (verb === 'balance' && (opt['valid-at'] !== undefined || opt['as-of'] !== undefined)) {
      const st = await balanceAsOf(client, stream, opt['valid-at'], opt['as-of']);
      console.log(`${stream} balance ${st.balance} at ${opt['valid-at'] ?? 'any time'} as known ${opt['as-of'] ? 'at ' + opt['as-of'] : 'now'}` +
        ` (${st.opened ? 'open' : 'not open then'})`);
      return 0;
    }
    if (verb === 'balance') {
      const { state, revision, snapshot } = await load(client, stream, null);
      if (!state.opened) throw new Refused('the account is not open');
      console.log(`${stream} owner ${state.owner} balance ${state.balance} version ${revision} (snapshot at ${snapshot ?? -1})`);
      return 0;
    }
    if (verb === 'import-v1') {
      // the old application's shape, as it stored it: no $schemaVersion
      const amount = Number(rest[0]);
      if (!Number.isSafeInteger(amount) || amount <= 0) throw new Refused('bad amount');
      const r = await client.appendToStream(stream, jsonEvent({ type: 'MoneyDeposited', data: { value: amount } }), { streamState: STREAM_EXISTS });
      console.log(`import-v1 ${stream}: version ${r.nextExpectedRevision} (stored as version 1)`);
      return 0;
    }
    if (!['open', 'deposit', 'withdraw'].includes(verb)) throw new Error('unknown command ' + verb);
    const cmd = verb === 'open' ? { kind: 'open', owner: rest[0] } : { kind: verb, amount: Number(rest[0]) };
    if (opt['valid-from'] !== undefined) cmd.validFrom = opt['valid-from'];
    const r = await handle(client, stream, cmd, verb === 'open' ? null : rest[1]);
    console.log(`${verb} ${stream}: version ${r.revision}${r.already ? ', already done' : ''} (attempts ${r.attempts})`);
    return 0;
  } catch (e) {
    if (e instanceof Refused) {
      console.error(`${verb} ${stream}: refused: ${e.message}`);
      return 2;
    }
    console.error(`${verb} ${stream}: ${e.message}`);
    return 1;
  } finally {
    await client.dispose();
  }
}

if (require.main === module) main().then((rc) => { process.exitCode = rc; });
module.exports = { deriveId, handle, load, balanceAsOf, registerUpcaster };
