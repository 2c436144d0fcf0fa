#!/usr/bin/env node
// bank.js - the bank account of examples/bank as a Node application with the
// official KurrentDB client (@kurrent/kurrentdb-client) against factumd: the
// same events, the same no-overdraft decider, and factum's snapshot
// convention, with not a line of factum-specific client code:
//
//   node bank.js URL open ACCOUNT OWNER
//   node bank.js URL deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID]
//   node bank.js URL balance ACCOUNT
//
// A command loads the account (the newest snapshot of `$snapshots-account-<id>`,
// {"$streamVersion": V} in its metadata, then the events after V), decides,
// and appends with the loaded revision as the expected one; when another
// writer came first (WrongExpectedVersion) it loads and decides again. Every
// 20 events it appends a snapshot (factumd checks $streamVersion) and keeps 3
// ($maxCount). A COMMAND-ID makes a command idempotent: its events' ids are
// derived from it exactly as libfactum's factum_app_derive_id does, so the C
// program (example_bank) and this one recognise each other's commands.
// Exit status: 0 done, 2 refused by the domain, 1 an error.
'use strict';
const crypto = require('node:crypto');
const { KurrentDBClient, jsonEvent, ANY, NO_STREAM, FORWARDS, BACKWARDS, END, WrongExpectedVersionError, StreamNotFoundError } =
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

function decide(cmd, st) {
  if (cmd.kind === 'open') {
    if (st.opened) throw new Refused('the account is open already');
    if (!/^[A-Za-z0-9 ._-]{1,63}$/.test(cmd.owner)) throw new Refused('bad owner');
    return [{ type: 'AccountOpened', data: { owner: cmd.owner } }];
  }
  if (!st.opened) throw new Refused('the account is not open');
  if (!Number.isSafeInteger(cmd.amount) || cmd.amount <= 0 || cmd.amount > 1e12) throw new Refused('bad amount');
  if (cmd.kind === 'withdraw' && cmd.amount > st.balance) throw new Refused('insufficient funds: the account may not be overdrawn');
  return [{ type: cmd.kind === 'deposit' ? 'MoneyDeposited' : 'MoneyWithdrawn', data: { amount: cmd.amount } }];
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

// The state: the newest usable snapshot, then the events after it.
async function load(client, stream, idToFind) {
  const snaps = await collect(client.readStream(`$snapshots-${stream}`, { direction: BACKWARDS, fromRevision: END, maxCount: KEEP }));
  const head = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 1 }));
  if (!head.length) return { state: initial(), revision: null, snapshot: null, found: false };
  const last = head[0].revision;
  const snap = snaps.find((e) => e.type === 'AccountSnapshot' && Number.isSafeInteger(e.metadata?.$streamVersion) &&
    BigInt(e.metadata.$streamVersion) <= last);
  for (const useSnapshot of snap ? [true, false] : [false]) {
    let state = useSnapshot ? snap.data : initial();
    let revision = useSnapshot ? BigInt(snap.metadata.$streamVersion) : null;
    const from = revision === null ? 0n : revision + 1n;
    const events = from <= last ? await collect(client.readStream(stream, { direction: FORWARDS, fromRevision: from, maxCount: 1e9 })) : [];
    if (useSnapshot && from <= last && (!events.length || events[0].revision !== from)) continue; // truncated: replay whole
    let found = false;
    for (const e of events) {
      if (idToFind && e.id === idToFind) found = true;
      state = evolve(state, e);
      revision = e.revision;
    }
    return { state, revision, snapshot: useSnapshot ? snap.metadata.$streamVersion : null, found };
  }
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
  const [url, verb, account, ...rest] = process.argv.slice(2);
  if (!url || !verb || !account) {
    console.error('usage: bank.js URL open ACCOUNT OWNER | deposit|withdraw ACCOUNT AMOUNT [COMMAND-ID] | balance ACCOUNT');
    return 1;
  }
  const client = KurrentDBClient.connectionString(url);
  const stream = `account-${account}`;
  try {
    if (verb === 'balance') {
      const { state, revision, snapshot } = await load(client, stream, null);
      if (!state.opened) throw new Refused('the account is not open');
      console.log(`${stream} owner ${state.owner} balance ${state.balance} version ${revision} (snapshot at ${snapshot ?? -1})`);
      return 0;
    }
    const cmd = verb === 'open' ? { kind: 'open', owner: rest[0] } : { kind: verb, amount: Number(rest[0]) };
    if (!['open', 'deposit', 'withdraw'].includes(verb)) throw new Error('unknown command ' + verb);
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
module.exports = { deriveId, handle, load };
