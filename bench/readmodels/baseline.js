// baseline.js - the hand-written read model that factum's read models are
// measured against (bench/run-readmodels.sh, docs/PERFORMANCE.md "Read
// models"): what a KurrentDB user writes by hand today. The official Node
// client (@kurrent/kurrentdb-client, from tests/integration/node) subscribes
// to $all from the checkpoint stored in the target, filtered to the streams
// `account-`, and updates the same tables as bench/readmodels.c's read model
// `balances` — through better-sqlite3 (SQLite) or pg (PostgreSQL) — storing
// its checkpoint in the same transaction as each batch's updates (the honest,
// exactly-once way). Batches: up to --batch events (2,000, factum's default),
// cut early at the end of an event-loop turn once the subscription is live
// (caught up), as factum cuts a batch at the head of the log. Durability as
// factum's targets (src/rm): SQLite in WAL mode with synchronous=NORMAL and
// PostgreSQL with synchronous_commit=off - a crash may lose the last
// batches, always with their checkpoint, and they are applied again from the
// log (--sync FULL, --pgsync on: durable commits).
//
// Modes (each prints Markdown rows and "@ baseline-<target> WORKLOAD metric value" lines):
//   catchup  apply the log from the stored checkpoint until --head (RM1 with
//            sqlite, RM2 with postgres); then check the tables against
//            --expect (the totals bench/readmodels.c's generator computed).
//            --target none (SUB): the subscription and batches alone, no SQL
//   lag      RMLAG: W3 (16 clients in a worker thread, --n single-event
//            appends in all) while the subscription follows; lag in events
//            (the last acknowledged position minus the committed checkpoint,
//            sampled every millisecond) and in milliseconds (commit of the
//            batch minus the event's `created`, millisecond resolution)
//   ryow     RYOW: one client appends and waits until its own subscription
//            has committed the append's position (in-process notification:
//            the best case of the hand-written way), p50/p99; and RMINL's
//            analogue: W1 (one client, each append awaited) and W3 (16
//            clients) with and without that wait, as ratios
//
// Usage: node bench/readmodels/baseline.js MODE --url URL --target sqlite|postgres
//          [--sqlite FILE] [--pg CONNINFO] [--sync NORMAL|FULL] [--pgsync off|on] [--batch N]
//          [--head P] [--expect FILE] [--n N] [--fresh]
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const lib = require(path.join(__dirname, '../../tests/integration/node/node_modules/@kurrent/kurrentdb-client'));

const DESCRIPTION = 'Deposit at branch 042, counter 7, teller Ms. J. Smith';
const META = { correlationId: '6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a', causationId: '0d2f8e1b-4c3a-4c55-9a7e-6f1c2a9e3b1d', user: 'alice' };
const ACCOUNTS = 10000;

// A Deposited event as bench/readmodels.c makes them (~200 bytes of data).
function deposited(acct, amount, n) {
  return lib.jsonEvent({
    type: 'Deposited',
    data: { id: `account-${acct}`, amount, day: '2024-03-15', currency: 'EUR', reference: `INV-${String(n).padStart(8, '0')}`, description: DESCRIPTION },
    metadata: META,
  });
}

// ---- the W3 writers, in a worker thread ---------------------------------------------
if (!isMainThread) {
  const { url, n, clients, head } = workerData; // head: a BigInt64Array on shared memory
  (async () => {
    const cs = Array.from({ length: clients }, () => lib.KurrentDBClient.connectionString(url));
    const per = Math.floor(n / clients);
    const t0 = process.hrtime.bigint();
    await Promise.all(cs.map(async (c, t) => {
      let r = 0x9e3779b9 * (t + 1);
      for (let i = 0; i < per; i++) {
        r = (r * 1103515245 + 12345) >>> 0;
        const acct = (r % (ACCOUNTS / clients)) * clients + t; // client t on accounts = t (mod clients)
        const res = await c.appendToStream(`account-${acct}`, [deposited(acct, 100 + (i % 900), i)]);
        const p = res.position.commit;
        for (let cur = Atomics.load(head, 0); cur < p; cur = Atomics.load(head, 0))
          if (Atomics.compareExchange(head, 0, cur, p) === cur) break;
      }
    }));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    await Promise.all(cs.map((c) => c.dispose()));
    parentPort.postMessage({ events: per * clients, secs });
  })().catch((e) => { console.error(e); process.exit(1); });
  return;
}

// ---- arguments -----------------------------------------------------------------------
const argv = process.argv.slice(2);
const mode = argv.shift();
const opt = { url: process.env.FACTUMD_URL, target: 'sqlite', sqlite: '/tmp/baseline.db', pg: process.env.PG_CONNINFO, sync: 'NORMAL', pgsync: 'off', batch: 2000, head: 0n, expect: null, n: 0, fresh: false };
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '');
  if (k === 'fresh') { opt.fresh = true; continue; }
  if (!(k in opt) || i + 1 >= argv.length) usage();
  const v = argv[++i];
  opt[k] = k === 'head' ? BigInt(v) : ['batch', 'n'].includes(k) ? Number(v) : v;
}
function usage() {
  console.error('usage: node baseline.js catchup|lag|ryow --url URL --target sqlite|postgres|none [--sqlite FILE] [--pg CONNINFO] [--sync NORMAL|FULL] [--pgsync off|on] [--batch N] [--head P] [--expect FILE] [--n N] [--fresh]');
  process.exit(2);
}
if (!['catchup', 'lag', 'ryow'].includes(mode) || !opt.url || !['sqlite', 'postgres', 'none'].includes(opt.target)) usage();
if (opt.target === 'none' && mode !== 'catchup') usage();
if (opt.target === 'postgres' && !opt.pg) usage();
const system = `baseline-${opt.target === 'none' ? 'sqlite' : opt.target}`;
const result = (w, metric, v) => console.log(`@ ${system} ${w} ${metric} ${v}`);
const pct = (sorted, p) => (sorted.length ? sorted[Math.round((p / 100) * (sorted.length - 1))] : 0);

// ---- the targets: the same tables and statements as bench/readmodels.c's definition ----
const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS balances(id TEXT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL, version BIGINT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS daily_totals(day TEXT PRIMARY KEY, deposited BIGINT NOT NULL, withdrawn BIGINT NOT NULL, events BIGINT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL)',
];
const SQL = {
  open: 'INSERT INTO balances(id, owner, balance, version) VALUES ($1, $2, 0, $3)',
  move: 'UPDATE balances SET balance = balance + $1, version = $2 WHERE id = $3',
  day: 'INSERT INTO daily_totals(day, deposited, withdrawn, events) VALUES ($1, $2, $3, 1) ON CONFLICT(day) DO UPDATE ' +
    'SET deposited = daily_totals.deposited + excluded.deposited, withdrawn = daily_totals.withdrawn + excluded.withdrawn, events = daily_totals.events + 1',
  checkpoint: 'INSERT INTO checkpoint(id, position) VALUES (1, $1) ON CONFLICT(id) DO UPDATE SET position = excluded.position',
  check1: 'SELECT count(*) AS accounts, sum(balance) AS balance, sum(version) AS versions FROM balances',
  check2: 'SELECT sum(deposited) AS deposited, sum(withdrawn) AS withdrawn, sum(events) AS events FROM daily_totals',
};

// Each target: open() -> checkpoint (bigint), apply(batch) commits the
// events' updates and the last one's position in one transaction, check()
// the totals, close().
function sqliteTarget() {
  const Database = require('better-sqlite3');
  if (opt.fresh) for (const s of ['', '-wal', '-shm']) fs.rmSync(opt.sqlite + s, { force: true });
  const db = new Database(opt.sqlite);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${opt.sync}`);
  db.defaultSafeIntegers(true);
  for (const s of SCHEMA) db.exec(s);
  const q = (s) => db.prepare(s.replace(/\$\d/g, '?'));
  const st = { open: q(SQL.open), move: q(SQL.move), day: q(SQL.day), checkpoint: q(SQL.checkpoint) };
  const txn = db.transaction((events) => {
    for (const e of events) handle(e, (name, ...args) => st[name].run(...args));
    st.checkpoint.run(events[events.length - 1].event.position.commit);
  });
  const row = db.prepare('SELECT position FROM checkpoint').get();
  return {
    checkpoint: row ? BigInt(row.position) : 0n,
    apply: (events) => txn(events),
    check: () => ({ ...db.prepare(SQL.check1).get(), ...db.prepare(SQL.check2).get() }),
    close: () => db.close(),
  };
}

function pgConfig(s) {
  if (s.includes('://')) return { connectionString: s };
  const c = {};
  for (const kv of s.trim().split(/\s+/)) {
    const [k, v] = kv.split('=');
    c[{ dbname: 'database' }[k] || k] = k === 'port' ? Number(v) : v;
  }
  return c;
}

async function pgTarget() {
  const { Client } = require('pg');
  const db = new Client(pgConfig(opt.pg));
  await db.connect();
  if (opt.fresh) await db.query('DROP SCHEMA IF EXISTS rm_baseline CASCADE');
  await db.query('CREATE SCHEMA IF NOT EXISTS rm_baseline');
  await db.query('SET search_path TO rm_baseline');
  await db.query(`SET synchronous_commit = ${opt.pgsync === 'on' ? 'on' : 'off'}`);
  for (const s of SCHEMA) await db.query(s);
  // Named statements: prepared once per connection, then only bound.
  const run = (name, ...values) =>
    db.query({ name, text: SQL[name], values: values.map((v) => (typeof v === 'bigint' ? v.toString() : v)) });
  const r = await db.query('SELECT position FROM checkpoint');
  return {
    checkpoint: r.rows.length ? BigInt(r.rows[0].position) : 0n,
    apply: async (events) => {
      await db.query('BEGIN');
      try {
        // One statement at a time, each awaited: how an application does it
        // with pg (the client queues rather than pipelines them anyway).
        for (const e of events) {
          const calls = [];
          handle(e, (name, ...args) => calls.push([name, args]));
          for (const [name, args] of calls) await run(name, ...args);
        }
        await run('checkpoint', events[events.length - 1].event.position.commit);
        await db.query('COMMIT');
      } catch (err) {
        await db.query('ROLLBACK').catch(() => {});
        throw err;
      }
    },
    check: async () => ({ ...(await db.query(SQL.check1)).rows[0], ...(await db.query(SQL.check2)).rows[0] }),
    close: () => db.end(),
  };
}

// The handlers: the statements of each event type, as the definition's.
function handle(e, exec) {
  const ev = e.event;
  const d = ev.data;
  const version = ev.revision;
  switch (ev.type) {
    case 'AccountOpened': exec('open', d.id, d.owner, version); break;
    case 'Deposited': exec('move', d.amount, version, d.id); exec('day', d.day, d.amount, 0); break;
    case 'Withdrawn': exec('move', -d.amount, version, d.id); exec('day', d.day, 0, d.amount); break;
    default: break;
  }
}

// ---- the subscription and its batches ------------------------------------------------
// follow(target, client, onCommit[, from]): subscribe from the target's checkpoint;
// returns { position(), idle(), close() }. onCommit(position, events) runs
// after each batch is committed.
function follow(target, client, onCommit, from = target.checkpoint) {
  let position = from;
  let pending = [], applying = false, live = false, scheduled = false, timer = null, last = 0;
  const sub = client.subscribeToAll({
    fromPosition: position > 0n ? { commit: position, prepare: position } : lib.START,
    filter: lib.streamNameFilter({ prefixes: ['account-'] }),
  });
  const flush = async () => {
    scheduled = false;
    if (applying || pending.length === 0) return;
    applying = true;
    const batch = pending.length > opt.batch ? pending.splice(0, opt.batch) : pending;
    if (batch === pending) pending = [];
    try {
      await target.apply(batch);
    } catch (err) {
      console.error(`baseline: applying the batch ending at ${batch[batch.length - 1].event.position.commit}: ${err.message}`);
      process.exit(1);
    }
    position = batch[batch.length - 1].event.position.commit;
    applying = false;
    if (sub.isPaused() && pending.length < opt.batch) sub.resume();
    onCommit(position, batch);
    if (pending.length >= opt.batch || (live && pending.length)) schedule();
  };
  const schedule = () => { if (!scheduled) { scheduled = true; setImmediate(flush); } };
  sub.on('data', (e) => {
    pending.push(e);
    if (pending.length >= opt.batch) {
      if (applying) sub.pause();
      else schedule();
    } else if (live) schedule();
    else {
      // Before caught up: a batch is cut when full; a tail that stalls for
      // 10 ms is flushed (belt and braces: caughtUp normally does it).
      last = Date.now();
      if (!timer) timer = setTimeout(stalled, 10);
    }
  });
  const stalled = () => {
    timer = null;
    if (Date.now() - last >= 10) schedule();
    else if (!live) timer = setTimeout(stalled, 10);
  };
  sub.on('caughtUp', () => { live = true; schedule(); });
  sub.on('error', (err) => { console.error(`baseline: subscription: ${err.message}`); process.exit(1); });
  return {
    position: () => position,
    // Caught up, and everything received is committed.
    idle: () => live && !applying && pending.length === 0,
    close: () => { clearTimeout(timer); return sub.unsubscribe(); },
  };
}

// No target: the subscription and its batches alone (where the hand-written
// side's time goes: catchup --target none).
function noTarget() {
  return { checkpoint: 0n, apply: () => {}, check: () => ({}), close: () => {} };
}

async function openTarget() {
  if (opt.target === 'none') return noTarget();
  return opt.target === 'sqlite' ? sqliteTarget() : pgTarget();
}

// ---- catchup: RM1 / RM2 ----------------------------------------------------------------
async function catchup() {
  const w = { sqlite: 'RM1', postgres: 'RM2', none: 'SUB' }[opt.target];
  const target = await openTarget();
  const client = lib.KurrentDBClient.connectionString(opt.url);
  const from = target.checkpoint;
  const t0 = process.hrtime.bigint();
  let batches = 0;
  let resolveDone;
  const done = new Promise((r) => { resolveDone = r; });
  if (from >= opt.head) resolveDone();
  const f = follow(target, client, (p) => { batches++; if (p >= opt.head) resolveDone(); });
  await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await f.close();
  const n = Number(opt.head - from);
  const got = await target.check();
  let verdict = 'not checked';
  if (opt.expect && opt.target !== 'none') {
    const want = JSON.parse(fs.readFileSync(opt.expect, 'utf8'));
    const bad = Object.keys(want).filter((k) => got[k] === undefined || got[k] === null || BigInt(got[k]) !== BigInt(want[k]));
    if (bad.length) {
      console.error(`baseline ${w}: the tables do not match the generator: ${bad.map((k) => `${k} ${got[k]} != ${want[k]}`).join(', ')}`);
      process.exit(1);
    }
    verdict = `totals checked (${got.accounts} accounts, balance ${got.balance}, ${got.events} money events)`;
  }
  const how = { sqlite: '+ better-sqlite3', postgres: '+ pg', none: 'alone, no SQL' }[opt.target];
  console.log(`| ${w} | hand-written catch-up (Node client ${how}) over ${n} events | **${Math.round(n / secs)} ev/s** | ${secs.toFixed(2)} s, ${batches} transactions; ${verdict} |`);
  result(w, 'ev_per_s', n / secs);
  await client.dispose();
  await target.close();
}

// Resolves when the subscription has committed `p` (in-process notification).
function committedWaiters() {
  const waiting = []; // [position, resolve], in the order of the appends
  return {
    wait: (pos, p) => (pos() >= p ? Promise.resolve() : new Promise((r) => waiting.push([p, r]))),
    commit: (p) => {
      for (let i = 0; i < waiting.length;) if (waiting[i][0] <= p) { waiting[i][1](); waiting.splice(i, 1); } else i++;
    },
  };
}

async function caughtUp(f) {
  while (!f.idle()) await new Promise((r) => setTimeout(r, 5));
}

// ---- lag: RMLAG --------------------------------------------------------------------------
async function lag() {
  const w = opt.target === 'sqlite' ? 'RMLAG' : 'RMLAGPG';
  const target = await openTarget();
  const client = lib.KurrentDBClient.connectionString(opt.url);
  const lagMs = [];
  const f = follow(target, client, (p, batch) => {
    const now = Date.now();
    for (const e of batch) lagMs.push(now - e.event.created.getTime());
  });
  await caughtUp(f);
  lagMs.length = 0;
  const head = new BigInt64Array(new SharedArrayBuffer(8));
  head[0] = f.position();
  const lagEvents = [];
  const sampler = setInterval(() => { const h = Atomics.load(head, 0); const p = f.position(); lagEvents.push(h > p ? Number(h - p) : 0); }, 1);
  const n = opt.n || 200000;
  const worker = new Worker(__filename, { workerData: { url: opt.url, n, clients: 16, head } });
  const w3 = await new Promise((res, rej) => { worker.on('message', res); worker.on('error', rej); });
  const tEnd = process.hrtime.bigint();
  const last = Atomics.load(head, 0);
  while (f.position() < last) await new Promise((r) => setImmediate(r));
  const drainMs = Number(process.hrtime.bigint() - tEnd) / 1e6;
  clearInterval(sampler);
  await f.close();
  lagEvents.sort((a, b) => a - b);
  lagMs.sort((a, b) => a - b);
  const rate = w3.events / w3.secs;
  console.log(`| ${w} | W3 (16 Node clients in a worker thread, ${w3.events} single-event appends) with the hand-written subscription following (${opt.target}) | W3 ${Math.round(rate)} ev/s | lag p50 ${pct(lagEvents, 50)} / p99 ${pct(lagEvents, 99)} / max ${lagEvents[lagEvents.length - 1] ?? 0} events (${lagEvents.length} samples); p50 ${pct(lagMs, 50)} / p99 ${pct(lagMs, 99)} ms (${lagMs.length} events, ms resolution); drained ${drainMs.toFixed(1)} ms after the last append |`);
  result(w, 'w3_ev_per_s', rate);
  result(w, 'lag_events_p50', pct(lagEvents, 50));
  result(w, 'lag_events_p99', pct(lagEvents, 99));
  result(w, 'lag_ms_p50', pct(lagMs, 50));
  result(w, 'lag_ms_p99', pct(lagMs, 99));
  await client.dispose();
  await target.close();
}

// ---- ryow: RYOW and RMINL's analogue -----------------------------------------------------
// Three rounds, each: W1 and W3 without a read model (the subscription
// stopped: in this process it would compete with the appends for the event
// loop), then the subscription started again from its checkpoint, caught
// up, and W1 and W3 each waiting until their append is applied. Rates are
// the medians of the rounds; RYOW's latencies are all the waiting W1's.
async function ryow() {
  const target = await openTarget();
  const client = lib.KurrentDBClient.connectionString(opt.url);
  const cs = Array.from({ length: 16 }, () => lib.KurrentDBClient.connectionString(opt.url));
  const cw = committedWaiters();
  const rounds = 3;
  const n = Math.max(1, Math.floor((opt.n || 9000) / rounds));
  let f = null;
  // W1: one client, each append awaited (and, if wait, its read model).
  const w1 = async (wait, lat) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const acct = (i * 7919) % ACCOUNTS;
      const a = process.hrtime.bigint();
      const r = await client.appendToStream(`account-${acct}`, [deposited(acct, 100 + (i % 900), i)]);
      if (wait) await cw.wait(f.position, r.position.commit);
      if (lat) lat.push(Number(process.hrtime.bigint() - a) / 1e3);
    }
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  // W3: 16 clients, each append awaited (and its read model, if wait).
  const per = Math.max(1, Math.floor((n * 2) / cs.length));
  const w3 = async (wait) => {
    const t0 = process.hrtime.bigint();
    await Promise.all(cs.map(async (c, t) => {
      for (let i = 0; i < per; i++) {
        const acct = ((i * 613) % (ACCOUNTS / 16)) * 16 + t;
        const r = await c.appendToStream(`account-${acct}`, [deposited(acct, 100 + (i % 900), i)]);
        if (wait) await cw.wait(f.position, r.position.commit);
      }
    }));
    return (per * cs.length) / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  await Promise.all([client, ...cs].map((c, i) => c.appendToStream(`account-${i}`, [deposited(i, 1, i)]))); // connected
  const lat = [], rate = { w1Alone: [], w1With: [], w3Alone: [], w3With: [] };
  let from = target.checkpoint;
  for (let r = 0; r < rounds; r++) {
    rate.w1Alone.push(await w1(false, null));
    rate.w3Alone.push(await w3(false));
    f = follow(target, client, (p) => cw.commit(p), from);
    await caughtUp(f);
    rate.w1With.push(await w1(true, lat));
    rate.w3With.push(await w3(true));
    await f.close();
    from = f.position();
  }
  const med = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const [w1Alone, w1With, w3Alone, w3With] = [rate.w1Alone, rate.w1With, rate.w3Alone, rate.w3With].map(med);
  lat.sort((a, b) => a - b);
  console.log(`| RYOW | append (Node client) until the hand-written subscription committed it (${opt.target}), ${lat.length} times | p50 ${pct(lat, 50).toFixed(0)} / p99 ${pct(lat, 99).toFixed(0)} µs | in-process notification on commit (the best case) |`);
  console.log(`| RMINL | W1 (one Node client, ${rounds} × ${n} appends) waiting for the read model / no read model | ${(w1With / w1Alone).toFixed(2)} | ${Math.round(w1With)} / ${Math.round(w1Alone)} ev/s (medians of ${rounds} alternating rounds) |`);
  console.log(`| RMINL | W3 (16 Node clients, ${rounds} × ${per * cs.length} appends) waiting / no read model | ${(w3With / w3Alone).toFixed(2)} | ${Math.round(w3With)} / ${Math.round(w3Alone)} ev/s |`);
  result('RYOW', 'p50_us', pct(lat, 50));
  result('RYOW', 'p99_us', pct(lat, 99));
  result('RMINL', 'W1_ratio', w1With / w1Alone);
  result('RMINL', 'W3_ratio', w3With / w3Alone);
  result('RMINL', 'W1_with_ev_per_s', w1With);
  result('RMINL', 'W1_alone_ev_per_s', w1Alone);
  result('RMINL', 'W3_with_ev_per_s', w3With);
  result('RMINL', 'W3_alone_ev_per_s', w3Alone);
  await Promise.all([client, ...cs].map((c) => c.dispose()));
  await target.close();
}

({ catchup, lag, ryow })[mode]().catch((e) => { console.error(e); process.exit(1); });
