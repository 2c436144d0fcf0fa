// kill -9 of factumd under concurrent producers (durability: an acknowledged
// append is never lost; LOG-3: an append is one unit of recovery; ST-1: one
// sequencer, gapless streams). PRODUCERS processes, each with its own
// official client (@kurrent/kurrentdb-client) and APPENDERS concurrent
// appenders, append batches of 1-5 events:
//   - to a stream of their own with exact expectations (no_stream first, then
//     the revision they know), stream_exists or any, and now and then a stale
//     revision that must be refused;
//   - to streams shared by all appenders, with any;
//   - to their own stream and a shared one at once (multiStreamAppend, v2);
// over BatchAppend (the client's default) and, with credentials, Append.
// factumd is killed with SIGKILL at a random moment, restarted on the same
// data directory, and everything is read back:
//   - every acknowledged append is there, its events in order at the
//     acknowledged revisions, its last event at the acknowledged position;
//   - every append that is there is whole, in every stream it wrote: one that
//     was not acknowledged is there entirely or not at all;
//   - nothing refused is there, nothing is there twice, nothing unknown;
//   - each stream's revisions are 0..n-1, and $all holds exactly the
//     streams' events, in increasing positions.
// Then the next cycle appends to the same streams on the same directory.
// The seed (printed; FACTUM_SEED=n to reuse) drives every choice; the
// interleaving of the appends and the kill's exact moment still vary.
// Usage: node append-crash.js /path/to/factumd
//        (each producer: node append-crash.js --produce URL P SEED STATE_JSON)
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('@kurrent/kurrentdb-client');

const CYCLES = 4, PRODUCERS = 3, APPENDERS = 4, SHARED = 3;
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

const ownStream = (p, j) => `own-${p}-${j}`;
const sharedStream = (k) => `shared-${k}`;

// ---- a producer process ------------------------------------------------------

async function produce(url, p, seed, state) {
  const client = lib.KurrentDBClient.connectionString(url);
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\n'); // a pipe: synchronous on Linux
  let stop = false;
  setTimeout(() => { stop = true; }, 60000).unref(); // never outlive a lost parent for long
  process.on('SIGTERM', () => process.exit(0));
  const cycle = state.cycle;
  async function appender(j) {
    const r = rng(seed * 31 + j);
    const own = ownStream(p, j);
    let last = state.last[own] ?? -1; // own streams have one writer: its last revision is known
    for (let seq = 0; !stop; seq++) {
      const id = `${cycle}.${p}.${j}.${seq}`;
      const ev = (stream, n) => Array.from({ length: n }, (_, i) =>
        lib.jsonEvent({ type: 'Crash', data: { id, i, n, stream } }));
      const x = r.rand(), n = 1 + r.int(5);
      const viaAppend = r.rand() < 0.25; // credentials: Streams.Append instead of BatchAppend
      const opts = viaAppend ? { credentials: { username: 'admin', password: 'changeit' } } : {};
      const exact = last < 0 ? lib.NO_STREAM : BigInt(last);
      let kind, parts, run;
      if (x < 0.1) {
        const k = r.int(SHARED), m = 1 + r.int(3);
        kind = 'multi';
        parts = [{ s: own, n }, { s: sharedStream(k), n: m }];
        run = () => client.multiStreamAppend([
          { streamName: own, expectedState: exact, events: ev(own, n) },
          { streamName: sharedStream(k), expectedState: lib.ANY, events: ev(sharedStream(k), m) },
        ]);
      } else {
        let stream = own, streamState, mustFail = false;
        if (x < 0.55) { kind = 'exact'; streamState = exact; }
        else if (x < 0.62 && last >= 1) { kind = 'stale'; streamState = BigInt(last - 1 - r.int(last)); mustFail = true; }
        else if (x < 0.7) { kind = last < 0 ? 'exact' : 'exists'; streamState = last < 0 ? lib.NO_STREAM : lib.STREAM_EXISTS; }
        else if (x < 0.75) { kind = 'any'; streamState = lib.ANY; }
        else { kind = 'shared'; stream = sharedStream(r.int(SHARED)); streamState = lib.ANY; }
        parts = [{ s: stream, n }];
        run = () => client.appendToStream(stream, ev(stream, n), { streamState, ...opts });
        if (mustFail) kind = 'stale';
      }
      out({ t: 'try', id, kind, parts, via: kind === 'multi' ? 'session' : viaAppend ? 'append' : 'batch' });
      let res;
      try {
        res = await run();
      } catch (e) {
        if (e.constructor.name === 'WrongExpectedVersionError') {
          out({ t: 'refused', id });
          continue;
        }
        out({ t: 'error', id, error: `${e.constructor.name}: ${e.message}`.slice(0, 200) });
        return; // the server is gone
      }
      if (kind === 'multi') {
        const revs = parts.map((pt) => res.responses.find((o) => o.streamName === pt.s).revision.toString());
        out({ t: 'ack', id, revs, pos: res.position.toString() });
        last = Number(revs[0]);
      } else {
        out({ t: 'ack', id, revs: [res.nextExpectedRevision.toString()], pos: res.position ? res.position.commit.toString() : null });
        if (parts[0].s === own) last = Number(res.nextExpectedRevision);
      }
    }
  }
  await Promise.all(Array.from({ length: APPENDERS }, (_, j) => appender(j)));
  await Promise.race([client.dispose().catch(() => {}), sleep(1000)]);
  process.exit(0);
}

// ---- the test --------------------------------------------------------------------

function startServer(factumd, db) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--db', db, '--node-ip', '127.0.0.1', '--node-port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
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

function spawnProducer(url, p, seed, state, onLine) {
  const child = spawn(process.execPath, [__filename, '--produce', url, String(p), String(seed), JSON.stringify(state)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  const done = new Promise((r) => child.on('close', r));
  return { child, done };
}

async function readStream(client, s) {
  const out = [];
  try {
    for await (const e of client.readStream(s, { maxCount: 10000000 })) out.push(e);
  } catch (e) {
    if (e.constructor.name !== 'StreamNotFoundError') throw e;
  }
  return out;
}

async function main(factumd) {
  const seed = process.env.FACTUM_SEED ? Number(process.env.FACTUM_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`# seed ${seed} (FACTUM_SEED=${seed} to reuse it)`);
  const r = rng(seed);
  const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'append-crash-'));
  const db = path.join(dir, 'db');
  const appends = new Map(); // id -> { parts, kind, via, acked: {revs, pos} | null, refused }
  const problems = [];
  const fail = (msg) => { if (problems.length < 30) problems.push(msg); };
  const last = {}; // own stream -> last revision after the last verification
  let srv = null, producers = [];
  const cleanup = () => {
    for (const pr of producers) pr.child.kill('SIGKILL');
    if (srv) { srv.p.removeAllListeners('exit'); srv.p.kill('SIGKILL'); }
  };
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      srv = await startServer(factumd, db);
      const url = `kurrentdb://127.0.0.1:${srv.port}?tls=false`;
      let acks = 0, killed = false;
      const onLine = (o) => {
        if (o.t === 'try') appends.set(o.id, { parts: o.parts, kind: o.kind, via: o.via, acked: null, refused: false });
        else if (o.t === 'ack') { appends.get(o.id).acked = { revs: o.revs, pos: o.pos }; acks++; }
        else if (o.t === 'refused') appends.get(o.id).refused = true;
        else if (o.t === 'error' && !killed) fail(`append ${o.id} failed while factumd ran: ${o.error}`);
      };
      producers = Array.from({ length: PRODUCERS }, (_, p) =>
        spawnProducer(url, p, seed * 1000 + cycle * 10 + p, { cycle, last }, onLine));
      // Kill once the producers are well under way, at a random moment.
      const t0 = Date.now();
      while (acks < 40 && Date.now() - t0 < 30000) await sleep(10);
      if (acks < 40) throw new Error(`cycle ${cycle}: only ${acks} appends acknowledged in 30 s`);
      await sleep(r.int(1000));
      killed = true;
      srv.p.removeAllListeners('exit');
      srv.p.kill('SIGKILL');
      await new Promise((res) => srv.p.once('exit', res));
      srv = null;
      // The producers notice, report their last answers and exit.
      const exited = await Promise.race([Promise.all(producers.map((pr) => pr.done)).then(() => true), sleep(20000)]);
      if (!exited) throw new Error(`cycle ${cycle}: producers still running 20 s after the kill`);
      producers = [];

      srv = await startServer(factumd, db);
      const client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
      const streams = [...new Set([...appends.values()].flatMap((a) => a.parts.map((pt) => pt.s)))].sort();
      const found = new Map(); // id -> [{ s, first, last, maxPos }] per stream where it is
      let total = 0;
      const inStreams = new Set();
      for (const s of streams) {
        const evs = await readStream(client, s);
        total += evs.length;
        evs.forEach((e, k) => {
          if (e.event.revision !== BigInt(k)) fail(`${s}: revision ${e.event.revision} at index ${k} (a gap)`);
          inStreams.add(`${s}@${e.event.revision}`);
        });
        if (s.startsWith('own-')) last[s] = evs.length - 1;
        // Runs of one append's events: whole, in order, adjacent.
        for (let k = 0; k < evs.length;) {
          const d = evs[k].event.data, a = appends.get(d.id);
          const part = a && a.parts.find((pt) => pt.s === s);
          if (!part) { fail(`${s}@${k}: an event of an unknown append ${d.id}`); k++; continue; }
          let ok = true;
          for (let i = 0; i < part.n; i++) {
            const e = evs[k + i];
            if (!e || e.event.data.id !== d.id || e.event.data.i !== i || e.event.data.n !== part.n || e.event.data.stream !== s) ok = false;
          }
          if (!ok) { fail(`${s}@${k}: append ${d.id} (${a.kind}) is not whole and in order: ${part.n} events expected`); k++; continue; }
          const where = found.get(d.id) || [];
          if (where.some((w) => w.s === s)) fail(`${s}: append ${d.id} is there twice`);
          let maxPos = 0n;
          for (let i = 0; i < part.n; i++) if (evs[k + i].commitPosition > maxPos) maxPos = evs[k + i].commitPosition;
          where.push({ s, first: k, last: k + part.n - 1, maxPos });
          found.set(d.id, where);
          k += part.n;
        }
      }
      // $all: exactly the streams' events, positions increasing.
      let prev = -1n, inAll = 0;
      for await (const e of client.readAll({ maxCount: 100000000 })) {
        if (!e.event || e.event.streamId.startsWith('$')) continue;
        if (e.commitPosition <= prev) fail(`$all: position ${e.commitPosition} after ${prev}`);
        prev = e.commitPosition;
        inAll++;
        if (!inStreams.has(`${e.event.streamId}@${e.event.revision}`)) fail(`$all: ${e.event.streamId}@${e.event.revision} is in no stream read`);
      }
      if (inAll !== total) fail(`$all holds ${inAll} events of ours, the streams ${total}`);
      // Every append: acknowledged ones where they were acknowledged, all
      // of them whole (in every stream or in none), refused ones absent.
      let acked = 0, unackedThere = 0, unackedAbsent = 0, refused = 0;
      for (const [id, a] of appends) {
        const where = found.get(id) || [];
        if (where.length && where.length !== a.parts.length) fail(`append ${id} (${a.kind}) is in ${where.length} of its ${a.parts.length} streams`);
        if (a.refused && a.kind !== 'stale') fail(`append ${id} (${a.kind}) was refused though its expectation held`);
        if (a.refused || a.kind === 'stale') {
          if (a.acked) fail(`append ${id} with a stale expectation was acknowledged`);
          if (where.length) fail(`append ${id} (${a.kind}) was refused but is there`);
          refused++;
          continue;
        }
        if (!a.acked) {
          if (where.length) unackedThere++;
          else unackedAbsent++;
          continue;
        }
        if (where.length !== a.parts.length) { fail(`acknowledged append ${id} (${a.kind}, ${a.via}) is missing`); continue; }
        acked++;
        a.parts.forEach((pt, i) => {
          const w = where.find((x) => x.s === pt.s);
          if (String(w.last) !== a.acked.revs[i])
            fail(`acknowledged append ${id} ends at ${pt.s}@${w.last}, acknowledged at ${a.acked.revs[i]}`);
        });
        const maxPos = where.reduce((m, w) => (w.maxPos > m ? w.maxPos : m), 0n);
        if (a.acked.pos !== null && String(maxPos) !== a.acked.pos)
          fail(`acknowledged append ${id} (${a.via}) ends at position ${maxPos}, acknowledged at ${a.acked.pos}`);
      }
      await client.dispose();
      console.log(`# cycle ${cycle}: killed after ${acks} acknowledged appends; now ${total} events in ${streams.length} streams; ` +
        `${acked} acknowledged appends all there, ${unackedThere} unacknowledged there whole, ${unackedAbsent} absent, ` +
        `${refused} refused and absent`);
      if (problems.length) break;
      if (cycle < CYCLES - 1) {
        srv.p.removeAllListeners('exit');
        srv.p.kill('SIGTERM');
        await new Promise((res) => srv.p.once('exit', res));
        srv = null;
      }
    }
    if (problems.length) throw new Error(`seed ${seed}:\n  ${problems.join('\n  ')}`);
    const kinds = {};
    for (const a of appends.values()) kinds[`${a.kind}/${a.via}`] = (kinds[`${a.kind}/${a.via}`] || 0) + 1;
    console.log(`# appends tried, by expectation/call: ${JSON.stringify(kinds)}`);
    srv.p.removeAllListeners('exit');
    srv.p.kill('SIGTERM');
    const code = await new Promise((res) => srv.p.once('exit', res));
    srv = null;
    if (code !== 0) throw new Error(`factumd exited with ${code} on SIGTERM`);
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`ok: ${CYCLES} kill -9 cycles, every acknowledged append there, every append whole or absent`);
  } finally {
    cleanup();
  }
}

if (process.argv[2] === '--produce') {
  produce(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), JSON.parse(process.argv[6])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main(process.argv[2]).then(() => process.exit(0), (e) => {
    console.error(e);
    process.exit(1);
  });
}
