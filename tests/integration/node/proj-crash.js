// kill -9 of factumd while JavaScript projections run (PRJ-1..3, exactly
// once, docs/projections.md): factumd --run-projections All on a data
// directory; a backlog appended with the official client; two projections
// created over it:
//   - crash-part: fromCategory().foreachStream() with a shared state
//     ($initShared: biState), outputState, emit() and linkTo() into
//     streams of its own, emit enabled and emitted streams tracked;
//   - crash-total: fromCategory(), not partitioned, outputState;
// then SIGKILL at seeded random moments, first while they catch up on the
// backlog (each kill a seeded while after one of them checkpointed past a
// seeded point of it), then
// while a writer appends and they follow it live; a restart on the same
// directory after each. At the end, once both have caught up:
//   - a second factumd, fresh and never killed, is fed the same source
//     events (same ids, same streams, same order) and runs the same
//     projections; every output stream (the emitted ones, the linked ones,
//     the list of tracked streams) is compared event by event (type, data,
//     metadata, the source positions in $c/$p as the index of the source
//     event they stand for), and every state and result (root and each
//     partition) through getProjectionState / getProjectionResult;
//   - the states also say, independently of the second server, that every
//     source event was handled once and in order (a count and an
//     order-sensitive hash per partition and in total);
//   - no factum-js worker outlives the factumd that started it (killed, or
//     stopped with SIGTERM at the end).
// The result streams are compared through their last result only: a
// result is written once per batch (docs/projections.md), and batches
// depend on timing.
// The seed (printed; FACTUM_SEED=n to reuse) drives the events and the kill
// points; the exact moments still vary with the timing.
// Usage: node proj-crash.js /path/to/factumd
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const lib = require('@kurrent/kurrentdb-client');

const slow = process.env.FACTUM_SANITIZED ? 4 : 1;
const STREAMS = 12;
const BACKLOG = 12000; // source events before the projections exist
const CATCHUP_KILLS = 3, LIVE_KILLS = 3;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A small seeded generator (mulberry32): rand() in [0, 1), int(n) in [0, n).
function rng(seed) {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { rand, int: (n) => Math.floor(rand() * n) };
}

// ---- the projections ---------------------------------------------------------

const PART = 'crash-part', TOTAL = 'crash-total';
// h: an order-sensitive hash of the source events a state has seen; w:
// work for each event (WORK rounds of the hash), so that catching up takes
// a few seconds and can be cut.
const WORK = 30000;
const PART_QUERY = `
const WORK = ${WORK};
const mix = (h, k) => (Math.imul(h ^ k, 0x9e3779b1) + 7) >>> 0;
const work = (k) => { let h = k; for (let i = 0; i < WORK; i++) h = mix(h, i); return h; };
const seen = (s, e) => {
  s.w = work(e.body.k);
  if (e.sequenceNumber !== s.last + 1) s.gaps++;
  s.last = e.sequenceNumber; s.n++; s.h = mix(s.h, e.body.k);
};
fromCategory('acct').foreachStream().when({
  $initShared: () => ({ events: 0, total: 0, h: 0 }),
  $init: () => ({ balance: 0, n: 0, last: -1, gaps: 0, h: 0, notes: 0 }),
  Deposited: ([s, sh], e) => {
    seen(s, e); s.balance += e.body.amount;
    sh.events++; sh.total += e.body.amount; sh.h = mix(sh.h, e.body.k);
    if (e.body.k % 3 === 0) emit('audit-' + e.streamId, 'Audited', { k: e.body.k, balance: s.balance }, { by: 'crash' });
    if (e.body.amount > 70) linkTo('crash-big', e, { amount: e.body.amount });
    return [s, sh];
  },
  Withdrawn: ([s, sh], e) => {
    seen(s, e); s.balance -= e.body.amount;
    sh.events++; sh.total -= e.body.amount; sh.h = mix(sh.h, e.body.k);
    linkTo('crash-out-' + (e.body.k % 3), e);
    return [s, sh];
  },
  Noted: ([s, sh], e) => {
    seen(s, e); s.notes++;
    sh.events++; sh.h = mix(sh.h, e.body.k);
    emit('crash-notes', 'Note', { k: e.body.k, stream: e.streamId, n: s.notes });
    return [s, sh];
  },
}).outputState();`;
const TOTAL_QUERY = `
const WORK = ${WORK};
fromCategory('acct').when({
  $init: () => ({ n: 0, balance: 0, byType: {}, h: 0 }),
  $any: (s, e) => {
    let w = e.body.k;
    for (let i = 0; i < WORK; i++) w = (Math.imul(w ^ i, 0x9e3779b1) + 7) >>> 0;
    s.w = w;
    s.n++;
    s.byType[e.eventType] = (s.byType[e.eventType] || 0) + 1;
    if (e.eventType === 'Deposited') s.balance += e.body.amount;
    if (e.eventType === 'Withdrawn') s.balance -= e.body.amount;
    s.h = (Math.imul(s.h ^ e.body.k, 0x9e3779b1) + 7) >>> 0;
    return s;
  },
}).outputState();`;
const mix = (h, k) => (Math.imul(h ^ k, 0x9e3779b1) + 7) >>> 0;

async function createProjections(client) {
  await client.createProjection(PART, PART_QUERY, { emitEnabled: true, trackEmittedStreams: true });
  await client.createProjection(TOTAL, TOTAL_QUERY);
}

// ---- servers -----------------------------------------------------------------------

function startServer(factumd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--node-ip', '127.0.0.1', '--node-port', '0', '--run-projections=All', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({ p, port: Number(m[1]), log: () => log });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code, sig) => reject(new Error(`factumd exited (${code ?? sig}): ${log}`)));
  });
}
const connect = (srv) => lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);

// The factum-js processes whose parent is pid (from /proc).
function workersOf(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
    if (m && m[1] === 'factum-js' && Number(m[3]) === pid) out.push(Number(d));
  }
  return out;
}
// Is pid still a live factum-js (not gone, not a zombie waiting to be reaped)?
function aliveWorker(pid) {
  try {
    const m = /^\d+ \((.*)\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return m && m[1] === 'factum-js' && m[2] !== 'Z' && m[2] !== 'X';
  } catch {
    return false;
  }
}

// The workers notice their host is gone (their socket closes) and exit.
async function workersGone(workers, how) {
  const end = Date.now() + 10000 * slow;
  while (workers.some(aliveWorker) && Date.now() < end) await sleep(20);
  const left = workers.filter(aliveWorker);
  if (left.length) throw new Error(`factum-js worker(s) ${left.join(', ')} outlived their factumd (${how})`);
}

// ---- statistics --------------------------------------------------------------------

const commitOf = (text) => {
  const m = /^C:(\d+)/.exec(text || '');
  return m ? BigInt(m[1]) : 0n;
};

async function statuses(client) {
  const out = {};
  for (const name of [PART, TOTAL]) out[name] = await client.getProjectionStatus(name);
  return out;
}

function checkNotFaulted(st, when) {
  for (const [name, s] of Object.entries(st))
    if (/Faulted/.test(s.status)) throw new Error(`${name} faulted ${when}: ${s.stateReason}`);
}

// Wait until both have checkpointed past `pos` with nothing in flight.
async function caughtUp(client, pos, what) {
  const end = Date.now() + 60000 * slow;
  for (;;) {
    const st = await statuses(client);
    checkNotFaulted(st, what);
    if (Object.values(st).every((s) => commitOf(s.lastCheckpoint) >= pos && s.writesInProgress === 0 && s.bufferedEvents === 0n))
      return st;
    if (Date.now() > end)
      throw new Error(`${what}: not caught up to ${pos} in time: ${Object.values(st).map((s) => `${s.name} ${s.status} ${s.position} ${s.lastCheckpoint}`).join('; ')}`);
    await sleep(50);
  }
}

// ---- reading ----------------------------------------------------------------------

async function readStream(client, s) {
  const out = [];
  try {
    for await (const e of client.readStream(s, { maxCount: 10000000 })) out.push(e.event);
  } catch (e) {
    if (e.type === 'stream-not-found' || e.constructor.name === 'StreamNotFoundError') return [];
    throw e;
  }
  return out;
}

// The source events (streams acct-*) in $all order.
async function readSources(client) {
  const out = [];
  for await (const e of client.readAll({ maxCount: 100000000 }))
    if (e.event && e.event.streamId.startsWith('acct-')) out.push(e.event);
  return out;
}

// Everything the projections wrote that the comparison covers, with the
// source positions ($c/$p) in metadata replaced by the source's index.
async function snapshot(client, sources) {
  const index = new Map(sources.map((e, i) => [e.position.commit, i]));
  const tracked = await readStream(client, `$projections-${PART}-emittedstreams`);
  const streams = [...new Set([...tracked.map((e) => e.data && typeof e.data === 'object' ? JSON.stringify(e.data) : String(Buffer.from(e.data))),
    'crash-big', 'crash-out-0', 'crash-out-1', 'crash-out-2'])].sort();
  const norm = (e) => {
    let meta = e.metadata;
    if (meta && typeof meta === 'object' && !(meta instanceof Uint8Array)) {
      meta = { ...meta };
      for (const k of ['$c', '$p']) {
        if (k in meta) {
          const i = index.get(BigInt(meta[k]));
          meta[k] = i === undefined ? `unknown position ${meta[k]}` : `source #${i}`;
        }
      }
    } else if (meta instanceof Uint8Array) {
      meta = `bytes:${Buffer.from(meta).toString()}`;
    }
    const data = e.data instanceof Uint8Array ? `bytes:${Buffer.from(e.data).toString()}` : e.data;
    return { revision: String(e.revision), type: e.type, isJson: e.isJson, data, meta };
  };
  const out = { tracked: tracked.map(norm), streams: {} };
  for (const s of streams) out.streams[s] = (await readStream(client, s)).map(norm);
  out.state = {}, out.result = {};
  for (const name of [PART, TOTAL]) {
    out.state[name] = { '': await client.getProjectionState(name) };
    out.result[name] = { '': await client.getProjectionResult(name) };
  }
  for (let k = 0; k < STREAMS; k++) {
    const partition = `acct-${k}`;
    out.state[PART][partition] = await client.getProjectionState(PART, { partition });
    out.result[PART][partition] = await client.getProjectionResult(PART, { partition });
  }
  return out;
}

// ---- the test ---------------------------------------------------------------------

async function main(factumd) {
  const seed = process.env.FACTUM_SEED ? Number(process.env.FACTUM_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`# seed ${seed} (FACTUM_SEED=${seed} to reuse it)`);
  const r = rng(seed);
  const t0 = Date.now();
  const base = process.env.FACTUM_TEST_TMP || os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'proj-crash-'));
  const db = path.join(dir, 'db');
  const logs = [];
  let srv = null, fresh = null, client = null;
  let k = 0; // the next source event's number (its body's k)
  const nextEvents = (rr, n) => Array.from({ length: n }, () => {
    const x = rr.rand(), kk = k++;
    const type = x < 0.5 ? 'Deposited' : x < 0.8 ? 'Withdrawn' : 'Noted';
    const data = type === 'Noted' ? { k: kk } : { k: kk, amount: 1 + rr.int(100) };
    const metadata = kk % 4 === 0 ? { $correlationId: `corr-${kk % 7}`, note: kk } : undefined;
    return lib.jsonEvent({ type, data, ...(metadata ? { metadata } : {}) });
  });
  let workersSeen = 0;
  const kill = async () => {
    const workers = workersOf(srv.p.pid);
    workersSeen += workers.length;
    srv.p.removeAllListeners('exit');
    const exited = new Promise((res) => srv.p.once('exit', res));
    srv.p.kill('SIGKILL');
    await exited;
    logs.push(srv.log());
    srv = null;
    const c = client;
    client = null;
    c.dispose().catch(() => {});
    await workersGone(workers, 'kill -9');
    return workers.length;
  };
  const restart = async () => {
    srv = await startServer(factumd, ['--db', db]);
    client = connect(srv);
  };
  try {
    await restart();
    // The backlog, appended before the projections exist.
    const br = rng(seed + 1);
    while (k < BACKLOG) await client.appendToStream(`acct-${br.int(STREAMS)}`, nextEvents(br, 1 + br.int(100)));
    const backlog = await readSources(client);
    const lastBacklog = backlog[backlog.length - 1].position.commit;
    await createProjections(client);
    console.log(`# ${backlog.length} source events in ${STREAMS} streams; projections created (${Date.now() - t0} ms)`);

    // Kill while they catch up: kill i once one of them has checkpointed
    // past a seeded point in the i-th part of the backlog, then a seeded
    // while later (they checkpoint every batch_events events read, and take
    // turns on the manager's thread: the kills fall between two checkpoints
    // of one, before the first of the other, ...).
    let midway = 0;
    for (let i = 0; i < CATCHUP_KILLS; i++) {
      const at = Math.floor(backlog.length * (i + r.rand()) / (CATCHUP_KILLS + 1));
      const target = backlog[at].position.commit, ms = r.int(1000); // the scripts' pace is the same under ASan
      const end = Date.now() + 60000 * slow;
      for (;;) {
        const st = await statuses(client);
        checkNotFaulted(st, 'while catching up');
        if (Object.values(st).some((s) => commitOf(s.lastCheckpoint) >= target) || Date.now() > end) break;
        await sleep(5);
      }
      await sleep(ms);
      const st = await statuses(client);
      checkNotFaulted(st, 'while catching up');
      const behind = Object.values(st).filter((s) => commitOf(s.lastCheckpoint) < lastBacklog).length;
      if (behind) midway++;
      const n = await kill();
      console.log(`# catch-up kill ${i + 1}: ${ms} ms after one checkpointed past source #${at} of ${backlog.length} ` +
        `(${Object.values(st).map((s) => `${s.name} checkpoint ${commitOf(s.lastCheckpoint)}`).join(', ')}, ` +
        `the backlog ends at ${lastBacklog}; ${n} workers)`);
      await restart();
    }
    if (midway < CATCHUP_KILLS) console.log(`# note: only ${midway} of the catch-up kills came before both had caught up`);

    // Kill while a writer appends and they follow it.
    let writing = true, acked = 0;
    const wr = rng(seed + 2);
    const writer = (async () => {
      while (writing) {
        const c = client;
        if (!c) {
          await sleep(10);
          continue;
        }
        try {
          await c.appendToStream(`acct-${wr.int(STREAMS)}`, nextEvents(wr, 1 + wr.int(3)));
          acked++;
        } catch {
          await sleep(10);
        }
      }
    })();
    for (let i = 0; i < LIVE_KILLS; i++) {
      const ms = (300 + r.int(1200)) * Math.min(slow, 2);
      await sleep(ms);
      const st = await statuses(client);
      checkNotFaulted(st, 'while following the writer');
      const a = acked, n = await kill();
      console.log(`# live kill ${i + 1} after ${ms} ms (${a} appends acknowledged so far; ` +
        `${Object.values(st).map((s) => `${s.name} checkpoint ${commitOf(s.lastCheckpoint)}`).join(', ')}; ${n} workers)`);
      await restart();
    }
    await sleep(500 * slow);
    writing = false;
    await writer;
    if (!workersSeen) throw new Error('no factum-js worker was ever seen: is the check looking at the right processes?');

    // Both caught up on the killed server.
    const sources = await readSources(client);
    await caughtUp(client, sources[sources.length - 1].position.commit, 'after the kills');
    const got = await snapshot(client, sources);
    console.log(`# ${sources.length} source events after ${acked} live appends; caught up (${Date.now() - t0} ms)`);

    // A fresh server, never killed, fed the same events in the same order.
    fresh = await startServer(factumd, ['--mem-db']);
    const fc = connect(fresh);
    for (let i = 0; i < sources.length;) {
      let j = i + 1;
      while (j < sources.length && sources[j].streamId === sources[i].streamId) j++;
      const batch = sources.slice(i, j).map((e) => lib.jsonEvent({ id: e.id, type: e.type, data: e.data,
        ...(e.metadata && Object.keys(e.metadata).length ? { metadata: e.metadata } : {}) }));
      await fc.appendToStream(sources[i].streamId, batch, { streamState: sources[i].revision === 0n ? lib.NO_STREAM : sources[i].revision - 1n });
      i = j;
    }
    const fsources = await readSources(fc);
    assert.deepEqual(fsources.map((e) => [e.streamId, e.revision, e.id, e.type]), sources.map((e) => [e.streamId, e.revision, e.id, e.type]),
      'the fresh server holds the same source events in the same order');
    await createProjections(fc);
    await caughtUp(fc, fsources[fsources.length - 1].position.commit, 'on the fresh server');
    const want = await snapshot(fc, fsources);
    await fc.dispose();

    // Event by event, state by state.
    const problems = [];
    const same = (what, a, b) => {
      try {
        assert.deepStrictEqual(a, b);
      } catch (e) {
        if (problems.length < 20) problems.push(`${what} differs:\n${e.message.split('\n').slice(0, 40).join('\n')}`);
      }
    };
    same('the list of tracked emitted streams', got.tracked, want.tracked);
    same('the set of output streams', Object.keys(got.streams), Object.keys(want.streams));
    for (const s of Object.keys(want.streams)) {
      const a = got.streams[s] || [], b = want.streams[s];
      if (a.length !== b.length) problems.push(`${s}: ${a.length} events after the kills, ${b.length} without`);
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) {
          same(`${s} event ${i}`, a[i], b[i]);
          break;
        }
      }
    }
    for (const name of [PART, TOTAL]) {
      for (const p of Object.keys(want.state[name])) {
        same(`state of ${name}${p ? ` partition ${p}` : ''}`, got.state[name][p], want.state[name][p]);
        same(`result of ${name}${p ? ` partition ${p}` : ''}`, got.result[name][p], want.result[name][p]);
      }
    }
    // What the states must say, from the source events alone.
    const per = new Map();
    let total = { n: 0, h: 0 }, shared = { events: 0, h: 0 };
    for (const e of sources) {
      const s = per.get(e.streamId) || { n: 0, h: 0 };
      s.n++;
      s.h = mix(s.h, e.data.k);
      per.set(e.streamId, s);
      total = { n: total.n + 1, h: mix(total.h, e.data.k) };
      shared = { events: shared.events + 1, h: mix(shared.h, e.data.k) };
    }
    const tot = got.state[TOTAL][''];
    if (tot.n !== total.n || tot.h !== total.h) problems.push(`${TOTAL}: n ${tot.n} h ${tot.h}, the sources say n ${total.n} h ${total.h}`);
    const sh = got.state[PART][''];
    if (!sh || sh.events !== shared.events || sh.h !== shared.h)
      problems.push(`${PART} shared state ${JSON.stringify(sh)}, the sources say events ${shared.events} h ${shared.h}`);
    for (const [stream, s] of per) {
      const g = got.state[PART][stream];
      if (g.n !== s.n || g.h !== s.h || g.gaps !== 0 || g.last !== s.n - 1)
        problems.push(`${PART} partition ${stream}: ${JSON.stringify(g)}, the sources say n ${s.n} h ${s.h}`);
    }
    if (problems.length) throw new Error(`seed ${seed}:\n  ${problems.join('\n  ')}`);
    const nOut = Object.values(got.streams).reduce((a, v) => a + v.length, 0);
    console.log(`# compared ${Object.keys(got.streams).length} output streams (${nOut} events), ${got.tracked.length} tracked, ` +
      `the states and results of ${PART} (shared and ${per.size} partitions) and ${TOTAL}`);

    // Both servers stop cleanly; nothing in their logs.
    for (const s of [srv, fresh]) {
      const workers = workersOf(s.p.pid);
      s.p.removeAllListeners('exit');
      const exited = new Promise((res) => s.p.once('exit', (code, sig) => res(code ?? sig)));
      s.p.kill('SIGTERM');
      const code = await exited;
      logs.push(s.log());
      if (code !== 0) throw new Error(`factumd exited with ${code} on SIGTERM: ${s.log()}`);
      await workersGone(workers, 'SIGTERM');
    }
    await client.dispose();
    srv = fresh = client = null;
    for (const l of logs) assert.doesNotMatch(l, /ERROR|runtime error|AddressSanitizer|LeakSanitizer/);
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`ok: ${CATCHUP_KILLS} kills while catching up, ${LIVE_KILLS} while live: the same output as a run never ` +
      `killed; no worker outlived its factumd (${Date.now() - t0} ms)`);
  } finally {
    for (const s of [srv, fresh]) {
      if (!s) continue;
      s.p.removeAllListeners('exit');
      s.p.kill('SIGKILL');
    }
  }
}

main(process.argv[2]).then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
