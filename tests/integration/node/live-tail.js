// The shared tail of live $all subscriptions (src/rpc/tail.c, ADR 0021)
// against a factumd of its own, seen by official clients: many subscribers
// with different options on one server — the official Node client (UUIDs
// as strings; the two clients cannot share a process) and raw gRPC calls through @grpc/grpc-js asking for structured
// UUIDs, some of them for events as stored (`factum-raw: 1`) while an
// upcaster rewrites one event type; no filter, stream-prefix and event-type
// filters, the system-event exclusion, checkpoint intervals, resolved links;
// starting from the start, the end or a position while appends go on — each
// receives exactly what an independent read of $all returns for it (a
// filter applied here, in JavaScript), in order, with no gap or duplicate
// across the catch-up -> live switch, and every checkpoint at a position p
// comes after exactly the matching events up to p (SUB-5). A subscriber that
// stops reading while far more events than the tail holds are appended
// (TAIL-3) falls behind, gets everything exactly once when it reads again,
// and the server's anonymous memory stays bounded meanwhile; /metrics shows
// that the tail served and bounded itself. Randomised: prints its seed
// (FACTUM_SEED=<seed> replays the same choices).
// Usage: node live-tail.js /path/to/factumd
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const kurrent = require('@kurrent/kurrentdb-client');

const factumd = process.argv[2];
const protoRoot = path.join(__dirname, '..', '..', '..', 'proto');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seed = Number(process.env.FACTUM_SEED || (Date.now() % 1000000007));
console.log(`# live-tail seed ${seed} (FACTUM_SEED=${seed} replays it)`);
let rs = seed >>> 0;
const rnd = () => { // mulberry32
  rs = (rs + 0x6D2B79F5) >>> 0;
  let t = rs;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const LIVE_LAG = 3000;

function startServer(db) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--db', db, '--node-ip', '127.0.0.1', '--node-port', '0',
      '--subscription-live-lag', String(LIVE_LAG)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m && !p.port) { p.port = Number(m[1]); resolve(p); }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.log = () => log;
    p.on('exit', (code) => { if (!p.port) reject(new Error(`factumd exited (${code}): ${log}`)); });
  });
}

function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}/metrics`, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const m = {};
        for (const line of body.split('\n')) {
          const [k, v] = line.split(' ');
          if (k && !k.startsWith('#')) m[k] = Number(v);
        }
        resolve(m);
      });
    }).on('error', reject);
  });
}

function rssAnonKiB(pid) {
  const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]);
}

// A structured UUID (two signed 64-bit halves, as strings) in its text form.
function uuidText(su) {
  const hex = (x) => BigInt.asUintN(64, BigInt(x)).toString(16).padStart(16, '0');
  const h = hex(su.most_significant_bits) + hex(su.least_significant_bits);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// One delivered or expected item, the same shape from every source:
// position, the event's id, type, stream, revision and data, the link's id.
const item = (pos, ev, link, data) => ({
  pos: BigInt(pos), id: ev ? ev.id : null, type: ev ? ev.type : null, stream: ev ? ev.stream : null,
  rev: ev ? BigInt(ev.rev) : null, data, link: link ? link.id : null,
});
const fromClient = (r) => item(r.commitPosition, r.event && { id: r.event.id, type: r.event.type, stream: r.event.streamId,
  rev: r.event.revision }, r.link && { id: r.link.id }, r.event && r.event.isJson ? JSON.stringify(r.event.data) : null);

async function main() {
  const dir = fs.mkdtempSync(path.join(process.env.FACTUM_TEST_TMP || os.tmpdir(), 'live-tail-'));
  const srv = await startServer(path.join(dir, 'db'));
  // However this process ends, the server goes with it.
  process.on('exit', () => { if (srv.exitCode === null) srv.kill('SIGKILL'); });
  const bounded = (p) => withTimeout(Promise.resolve(p).catch(() => {}), 5000, 'cleanup').catch(() => {});
  const url = `kurrentdb://127.0.0.1:${srv.port}?tls=false`;
  const client = kurrent.KurrentDBClient.connectionString(url);
  const pkg = loader.loadSync(['kurrentdb/streams.proto'], { includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true, oneofs: true });
  const proto = grpc.loadPackageDefinition(pkg);
  const streams = new proto.event_store.client.streams.Streams(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  const tag = 'lt' + seed.toString(36);
  const subs = [];
  let failed = false;
  try {
    // An upcaster for Alpha (no script): subscribers that ask for events as
    // stored see { n }, the others { num } (TAIL-2: two variants).
    await client.appendToStream('$upcasters', kurrent.jsonEvent({ type: '$upcaster-set', data: {
      eventType: 'Alpha', fromVersion: 1, toVersion: 2, steps: [{ op: 'rename', from: 'n', to: 'num' }] } }));
    const types = ['Alpha', 'Beta', 'Gamma'];
    const written = []; // [stream, revision] of events a link may point at
    let seq = 0;
    const appendSome = async () => {
      const stream = `${tag}-${pick(['a', 'b', 'c'])}-${Math.floor(rnd() * 4)}`;
      const n = 1 + Math.floor(rnd() * 12);
      const evs = [];
      for (let i = 0; i < n; i++) {
        if (written.length && rnd() < 0.1) { // a link to an earlier event
          const [s, r] = pick(written);
          evs.push(kurrent.binaryEvent({ type: '$>', data: Buffer.from(`${r}@${s}`) }));
        } else {
          evs.push(kurrent.jsonEvent({ type: pick(types), data: { n: seq++, pad: 'p'.repeat(Math.floor(rnd() * 300)) } }));
        }
      }
      const r = await client.appendToStream(stream, evs);
      const last = Number(r.nextExpectedRevision);
      for (let i = 0; i < n; i++) written.push([stream, last - n + 1 + i]);
      return r.position;
    };
    const positions = [];
    for (let i = 0; i < 40; i++) positions.push(await appendSome());

    // ---- subscribers --------------------------------------------------
    const filters = [
      { kind: 'none' },
      { kind: 'prefix', prefixes: [`${tag}-a`, `${tag}-c-1`] },
      { kind: 'typeRegex', regex: '^(Alpha|Gamma)$' },
      { kind: 'typePrefix', prefixes: ['Be', '$'] },
      { kind: 'noSystem' },
    ];
    const matches = (f, r) => { // on the event as stored: a link is filtered as the link
      const e = r.link ? r.link : r.event;
      const type = r.link ? '$>' : e.type;
      const stream = e.streamId;
      switch (f.kind) {
        case 'none': return true;
        case 'prefix': return f.prefixes.some((p) => stream.startsWith(p));
        case 'typeRegex': return new RegExp(f.regex).test(type);
        case 'typePrefix': return f.prefixes.some((p) => type.startsWith(p));
        default: return !type.startsWith('$');
      }
    };
    const startSub = (k) => startSubWith(k, null);
    const startSubWith = (k, only) => {
      const f = only ? filters[0] : pick(filters);
      const resolve = only ? false : rnd() < 0.4;
      const fromChoice = only || pick(['start', 'end', 'pos']);
      const fromPos = fromChoice === 'pos' ? pick(positions) : null;
      const ckInterval = 1 + Math.floor(rnd() * 3), window = 1 + Math.floor(rnd() * 20);
      const raw = k % 3 === 2; // every third: raw gRPC, structured UUIDs
      const st = { k, f, resolve, fromChoice, fromPos, raw, asStored: raw && rnd() < 0.5, items: [], cps: [],
        caughtUp: 0, fellBehind: 0, error: null, startedAt: null };
      st.desc = `sub ${k}: ${raw ? (st.asStored ? 'grpc raw' : 'grpc') : 'kurrentdb'} ` +
        `filter ${f.kind} resolve ${resolve} from ${fromChoice}${fromPos ? ' ' + fromPos.commit : ''}` +
        (f.kind !== 'none' ? ` checkpoint ${ckInterval}x${window}` : '');
      if (!raw) {
        const lib = kurrent;
        const c = client;
        const opt = { resolveLinkTos: resolve };
        opt.fromPosition = fromChoice === 'start' ? lib.START : fromChoice === 'end' ? lib.END : fromPos;
        if (f.kind !== 'none') {
          const fo = { checkpointInterval: ckInterval, maxSearchWindow: window,
            checkpointReached: (_s, p) => { st.cps.push([p.commit, st.items.length]); } };
          if (f.kind === 'prefix') opt.filter = lib.streamNameFilter({ prefixes: f.prefixes, ...fo });
          else if (f.kind === 'typeRegex') opt.filter = lib.eventTypeFilter({ regex: f.regex, ...fo });
          else if (f.kind === 'typePrefix') opt.filter = lib.eventTypeFilter({ prefixes: f.prefixes, ...fo });
          else opt.filter = lib.excludeSystemEvents(fo);
        }
        const sub = c.subscribeToAll(opt);
        st.sub = sub;
        sub.on('data', (r) => st.items.push(fromClient(r)));
        sub.on('caughtUp', () => { st.caughtUp++; });
        sub.on('fellBehind', () => { st.fellBehind++; });
        sub.on('error', (e) => { st.error = e; });
      } else {
        const options = { read_direction: 'Forwards', resolve_links: resolve, subscription: {}, all: {},
          uuid_option: { structured: {} } };
        if (fromChoice === 'start') options.all.start = {};
        else if (fromChoice === 'end') options.all.end = {};
        else options.all.position = { commit_position: String(fromPos.commit), prepare_position: String(fromPos.prepare) };
        if (f.kind === 'none') options.no_filter = {};
        else {
          const ex = f.kind === 'prefix' || f.kind === 'typePrefix' ? { prefix: f.prefixes } : { regex: f.kind === 'noSystem' ? '^[^$].*' : f.regex };
          options.filter = { max: window, checkpointIntervalMultiplier: ckInterval };
          if (f.kind === 'prefix') options.filter.stream_identifier = ex; else options.filter.event_type = ex;
        }
        const md = new grpc.Metadata();
        if (st.asStored) md.set('factum-raw', '1');
        const call = streams.Read({ options }, md);
        st.call = call;
        const rec = (e) => e && { id: uuidText(e.id.structured), type: e.metadata.type, stream: e.stream_identifier.stream_name.toString(),
          rev: e.stream_revision, data: e.data, json: e.metadata['content-type'] === 'application/json' };
        call.on('data', (m) => {
          if (m.content === 'event') {
            const ev = rec(m.event.event), link = rec(m.event.link);
            let data = null;
            if (ev && ev.json) data = JSON.stringify(JSON.parse(ev.data.toString()));
            st.items.push(item(m.event.commit_position, ev, link, data));
          } else if (m.content === 'checkpoint') st.cps.push([m.checkpoint.commit_position, st.items.length]);
          else if (m.content === 'caught_up') st.caughtUp++;
          else if (m.content === 'fell_behind') st.fellBehind++;
        });
        call.on('error', (e) => { if (e.code !== grpc.status.CANCELLED) st.error = e; });
      }
      subs.push(st);
      return st;
    };

    // A crowd of plain ones (raw gRPC, from the end, no filter): more than
    // a wake-up pumps in one turn of the loop (SUB_WAKE_CHUNK, RPC-4), so
    // the fan-out continues over several turns while appends go on.
    // (Three connections of 50 calls: a connection takes at most 100 calls.)
    const crowd = [];
    const crowdClients = [0, 1, 2].map((i) => new proto.event_store.client.streams.Streams(`127.0.0.1:${srv.port}`,
      grpc.credentials.createInsecure(), { 'factum.test.connection': i }));
    for (let k = 0; k < 150; k++) {
      const c = { pos: [], error: null };
      const options = { read_direction: 'Forwards', resolve_links: false, subscription: {}, all: { end: {} },
        no_filter: {}, uuid_option: { structured: {} } };
      c.call = crowdClients[k % 3].Read({ options }, new grpc.Metadata());
      c.call.on('data', (m) => { if (m.content === 'event') c.pos.push(BigInt(m.event.commit_position)); });
      c.call.on('error', (e) => { if (e.code !== grpc.status.CANCELLED) c.error = e; });
      crowd.push(c);
    }
    await sleep(300);
    // Subscribers start while appends go on: their switches race commits.
    let writing = true;
    const writer = (async () => { while (writing) { positions.push(await appendSome()); if (rnd() < 0.3) await sleep(1); } })();
    const N = 15;
    for (let k = 0; k < N; k++) {
      startSub(k);
      await sleep(20 + Math.floor(rnd() * 60));
    }
    await sleep(500);
    writing = false;
    await writer;
    const last = await appendSome();

    // ---- what an independent read returns for each ----------------------
    const readAll = async (resolve) => {
      const out = [];
      for await (const r of client.readAll({ fromPosition: kurrent.START, resolveLinkTos: resolve, maxCount: 10000000 })) out.push(r);
      return out;
    };
    const all = { false: await readAll(false), true: await readAll(true) };
    const head = all.false[all.false.length - 1].commitPosition;
    assert.ok(head >= last.commit, 'the read reached the last append');
    const expected = (st) => all[st.resolve].filter((r) => {
      if (st.fromChoice === 'pos' && r.commitPosition <= st.fromPos.commit) return false;
      if (st.fromChoice === 'end' && r.commitPosition <= st.endAfter) return false;
      return matches(st.f, r);
    }).map(fromClient);
    // A subscription from the end starts after the head at its start: the
    // first event it got tells where (an independent read cannot know).
    for (const st of subs) {
      if (st.fromChoice !== 'end') continue;
      st.endAfter = st.items.length ? st.items[0].pos - 1n : head;
    }
    const want = new Map(subs.map((st) => [st, expected(st)]));
    await withTimeout((async () => {
      for (;;) {
        if (subs.every((st) => st.error || st.items.length >= want.get(st).length)) return;
        await sleep(50);
      }
    })(), 120000, 'every subscriber receives its events');
    await sleep(500); // anything extra would arrive now
    for (const st of subs) {
      assert.equal(st.error, null, `${st.desc}: ${st.error}`);
      const w = want.get(st);
      assert.equal(st.items.length, w.length, `${st.desc}: ${st.items.length} received, ${w.length} expected`);
      for (let i = 0; i < w.length; i++) {
        const g = st.items[i], e = w[i];
        const what = `${st.desc}: item ${i} at ${e.pos}`;
        assert.equal(g.pos, e.pos, what);
        assert.equal(g.id, e.id, what);
        assert.equal(g.link, e.link, what);
        assert.equal(g.type, e.type, what);
        assert.equal(g.stream, e.stream, what);
        assert.equal(g.rev, e.rev, what);
        if (st.asStored && e.type === 'Alpha') { // as stored: { n }, upcast: { num }
          const gd = JSON.parse(g.data), ed = JSON.parse(e.data);
          assert.equal(gd.n, ed.num, what);
          assert.equal(gd.num, undefined, what);
        } else assert.equal(g.data, e.data, what);
      }
      assert.ok(st.caughtUp >= 1, `${st.desc}: caught up`);
      // SUB-5: a checkpoint at p comes after exactly the matching events <= p.
      let prev = -1n;
      for (const [p, count] of st.cps) {
        const cp = BigInt(p);
        assert.ok(cp > prev, `${st.desc}: checkpoints increase`);
        prev = cp;
        assert.equal(count, w.filter((x) => x.pos <= cp).length, `${st.desc}: checkpoint at ${cp} after exactly the events up to it`);
      }
      if (st.f.kind !== 'none') assert.ok(st.cps.length > 0, `${st.desc}: checkpoints came`);
      console.log(`# ${st.desc}: ${st.items.length} events, ${st.cps.length} checkpoints in order`);
    }
    // The crowd: every position from its first one to the last, once, in order.
    const allPos = all.false.map((r) => r.commitPosition);
    await withTimeout((async () => {
      for (;;) {
        if (crowd.every((c) => c.error || (c.pos.length && c.pos[c.pos.length - 1] >= head))) return;
        await sleep(50);
      }
    })(), 120000, 'the crowd receives every event');
    for (const [k, c] of crowd.entries()) {
      assert.equal(c.error, null, `crowd ${k}: ${c.error}`);
      const from = allPos.findIndex((p) => p === c.pos[0]);
      assert.ok(from >= 0, `crowd ${k}: its first position is in $all`);
      assert.deepEqual(c.pos, allPos.slice(from), `crowd ${k}: every event once, in order`);
      c.call.cancel();
    }
    for (const cc of crowdClients) cc.close();
    console.log(`# a crowd of ${crowd.length} plain subscribers: each got every event from its first, once, in order`);
    // Phase one's tail: live deliveries were copies, each packing served several.
    const m1a = await metrics(srv.port);
    console.log(`# phase one: tail read ${m1a.factum_subscription_tail_events_total} events, packed ${m1a.factum_subscription_tail_packed_total} messages, sent ${m1a.factum_subscription_tail_copies_total} copies of ${m1a.factum_subscription_events_total} subscription events`);
    assert.ok(m1a.factum_subscription_tail_copies_total > m1a.factum_subscription_tail_packed_total, 'a packed message served more than one subscriber');
    for (const st of subs) {
      if (st.sub) await st.sub.unsubscribe().catch(() => {});
      if (st.call) st.call.cancel();
    }
    subs.length = 0;

    // ---- a subscriber that stops reading -------------------------------
    // Beside it two that read: one per UUID form, so that the tail packs
    // the new events in two variants and fills up to its bound.
    const fast = [startSubWith(3, 'end'), startSubWith(5, 'end')];
    const m0 = await metrics(srv.port);
    const slow = { items: [], caughtUp: 0, fellBehind: 0, error: null, paused: false };
    const slowSub = client.subscribeToAll({ fromPosition: kurrent.END });
    slowSub.on('data', (r) => {
      slow.items.push(fromClient(r));
      if (!slow.paused) { slow.paused = true; slowSub.pause(); } // stop reading its socket
    });
    slowSub.on('caughtUp', () => { slow.caughtUp++; });
    slowSub.on('fellBehind', () => { slow.fellBehind++; });
    slowSub.on('error', (e) => { slow.error = e; });
    await sleep(300);
    await appendSome();
    while (!slow.paused) await sleep(20);
    // Far more than the tail's 4,096 events (and its 8 MiB), unread by it.
    const BIG = 15000, payload = 'x'.repeat(2000);
    const rss0 = rssAnonKiB(srv.pid);
    let rssMax = rss0, rssMid = 0, bytesMax = 0;
    for (let i = 0; i < BIG / 500; i++) {
      await client.appendToStream(`${tag}-big`, Array.from({ length: 500 }, (_, j) => kurrent.jsonEvent({ type: 'Big', data: { n: i * 500 + j, p: payload } })));
      rssMax = Math.max(rssMax, rssAnonKiB(srv.pid));
      bytesMax = Math.max(bytesMax, (await metrics(srv.port)).factum_subscription_tail_bytes);
      if (i === BIG / 1000 - 1) rssMid = rssMax;
    }
    const last2 = await appendSome();
    await sleep(300);
    rssMax = Math.max(rssMax, rssAnonKiB(srv.pid));
    slowSub.resume();
    const all2 = await readAll(false);
    assert.ok(all2[all2.length - 1].commitPosition >= last2.commit);
    // The slow one: everything from where it started, exactly once, in order.
    const slowWant = all2.filter((r) => r.commitPosition >= slow.items[0].pos).map(fromClient);
    await withTimeout((async () => { while (!slow.error && slow.items.length < slowWant.length) await sleep(50); })(), 120000, 'the slow subscriber');
    await sleep(300);
    assert.equal(slow.error, null);
    assert.equal(slow.items.length, slowWant.length, 'the slow subscriber: count');
    slow.items.forEach((g, i) => {
      assert.equal(g.pos, slowWant[i].pos, `slow: item ${i}`);
      assert.equal(g.id, slowWant[i].id, `slow: item ${i}`);
    });
    assert.ok(slow.fellBehind >= 1, 'the slow subscriber fell behind');
    assert.ok(slow.caughtUp >= 2, 'and caught up again');
    // The tail served (one packing for many copies) and stayed within its bounds.
    const m1 = await metrics(srv.port);
    const copies = m1.factum_subscription_tail_copies_total, packed = m1.factum_subscription_tail_packed_total;
    console.log(`# tail: ${m1.factum_subscription_tail_events_total} events read, ${packed} messages packed, ${copies} copies sent; ` +
      `${m1.factum_subscription_events_total} subscription events in all; at most ${bytesMax} bytes held while the slow one paused`);
    assert.ok(copies > m0.factum_subscription_tail_copies_total, 'live deliveries came from the tail');
    assert.ok(bytesMax <= 8 * 1024 * 1024, `the tail held at most 8 MiB: ${bytesMax}`);
    assert.ok(bytesMax > 4 * 1024 * 1024, `the tail filled towards its bound: ${bytesMax}`);
    // 30 MB appended while one subscriber did not read. The tail's own
    // bytes stayed within its bound (above). The process's anonymous memory
    // grows too while subscribers read appends of this size (so it does on
    // main without the tail: request and connection buffers, malloc's
    // high-water mark; about 18 MiB here with two readers), the tail adds
    // at most its 8 MiB; a tail that kept the unread events for the slow
    // one would add 30 MB per variant, 60 MB here, on top.
    // (Sanitizer builds keep freed memory in quarantine: not measured.)
    const grownMiB = (rssMax - rss0) / 1024;
    console.log(`# ${BIG} events (30 MB) appended unread by one subscriber: factumd anonymous memory grew ` +
      `${grownMiB.toFixed(1)} MiB (${((rssMid - rss0) / 1024).toFixed(1)} MiB after the first half)`);
    if (!process.env.FACTUM_SANITIZED) assert.ok(grownMiB < 64, `factumd anonymous memory grew ${grownMiB.toFixed(1)} MiB`);
    slowSub.unsubscribe().catch(() => {});
    console.log('ok live-tail');
  } catch (e) {
    failed = true;
    console.error(e);
    console.error(`seed ${seed}; server log tail:\n${srv.log().slice(-2000)}`);
  } finally {
    for (const st of subs) {
      if (st.sub) await bounded(st.sub.unsubscribe());
      if (st.call) st.call.cancel();
    }
    await bounded(client.dispose());
    streams.close();
    const code = await new Promise((r) => {
      if (srv.exitCode !== null) return r(srv.exitCode);
      srv.on('exit', (c) => r(c));
      srv.kill('SIGTERM');
    });
    // A clean stop, and nothing from the sanitizers (ASan/UBSan builds).
    if (code !== 0 || /AddressSanitizer|LeakSanitizer|runtime error/.test(srv.log())) {
      failed = true;
      console.error(`factumd stopped with ${code}:\n${srv.log().slice(-4000)}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
