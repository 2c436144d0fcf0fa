// factumd.js - factum's read models inside factumd, driven the way an
// application does it with the official Node client: the same appends as
// baseline.js's ryow mode, so that RYOW and RMINL compare like with like
// (the same client, the same network, the same server; only where the read
// model lives differs). bench/run-readmodels.sh runs it after baseline.js,
// on the same factumd.
//   RYOW   the read model `balances` (async, SQLite) created over HTTP
//          (POST /readmodels); one client appends an event and then waits
//          for it with GET /readmodels/balances/wait?position=P: p50/p99
//   RMINL  three rounds, each W1 (one client, each append awaited) and W3
//          (16 clients) without a read model (dropped: DELETE), then with
//          the read model inline (created again; it catches up over the log
//          first, not timed): the ratio of the medians with / without
//
// Usage: node bench/readmodels/factumd.js --url URL --def FILE [--n N]
//   FILE: the definition (bench/readmodels.c's FILL writes DIR/balances.json)
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const lib = require(path.join(__dirname, '../../tests/integration/node/node_modules/@kurrent/kurrentdb-client'));

const opt = { url: null, def: null, n: 9000 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, '');
  if (!(k in opt) || i + 1 >= argv.length) usage();
  opt[k] = k === 'n' ? Number(argv[i + 1]) : argv[i + 1];
}
function usage() {
  console.error('usage: node factumd.js --url kurrentdb://HOST:PORT?tls=false --def FILE [--n N]');
  process.exit(2);
}
if (!opt.url || !opt.def) usage();
const m = /^kurrentdb:\/\/([^/?]+)/.exec(opt.url);
if (!m) usage();
const http = `http://${m[1]}`;
const definition = JSON.parse(fs.readFileSync(opt.def, 'utf8'));
const ACCOUNTS = 10000;
const DESCRIPTION = 'Deposit at branch 042, counter 7, teller Ms. J. Smith';
const META = { correlationId: '6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a', causationId: '0d2f8e1b-4c3a-4c55-9a7e-6f1c2a9e3b1d', user: 'alice' };
const result = (w, metric, v) => console.log(`@ factumd ${w} ${metric} ${v}`);
const pct = (sorted, p) => (sorted.length ? sorted[Math.round((p / 100) * (sorted.length - 1))] : 0);
const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function deposited(acct, amount, n) {
  return lib.jsonEvent({
    type: 'Deposited',
    data: { id: `account-${acct}`, amount, day: '2024-03-15', currency: 'EUR', reference: `INV-${String(n).padStart(8, '0')}`, description: DESCRIPTION },
    metadata: META,
  });
}

async function call(method, p, body) {
  const r = await fetch(`${http}${p}`, { method, body: body ? JSON.stringify(body) : undefined, headers: body ? { 'content-type': 'application/json' } : {} });
  const text = await r.text();
  return { status: r.status, text };
}

async function create(lifecycle) {
  const r = await call('POST', '/readmodels', { ...definition, lifecycle });
  if (r.status !== 201) throw new Error(`POST /readmodels: ${r.status} ${r.text}`);
  // Until it has caught up with the log and is live (an inline one holds appends only then).
  for (;;) {
    const s = await call('GET', '/readmodels/balances');
    const st = JSON.parse(s.text).status;
    if (st.state === 'faulted' || st.state === 2) throw new Error(`balances faulted: ${s.text}`);
    if (st.live && BigInt(st.position) >= BigInt(st.head)) return;
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function drop() {
  const r = await call('DELETE', '/readmodels/balances');
  if (r.status !== 200 && r.status !== 404) throw new Error(`DELETE /readmodels/balances: ${r.status} ${r.text}`);
}

(async () => {
  const client = lib.KurrentDBClient.connectionString(opt.url);
  const cs = Array.from({ length: 16 }, () => lib.KurrentDBClient.connectionString(opt.url));
  const rounds = 3;
  const n = Math.max(1, Math.floor(opt.n / rounds));
  const per = Math.max(1, Math.floor((n * 2) / cs.length));
  let waitHttp = false;
  const lat = [];
  const w1 = async (recordLat) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const acct = (i * 7919) % ACCOUNTS;
      const a = process.hrtime.bigint();
      const r = await client.appendToStream(`account-${acct}`, [deposited(acct, 100 + (i % 900), i)]);
      if (waitHttp) {
        const w = await call('GET', `/readmodels/balances/wait?position=${r.position.commit}&timeout=10000`);
        if (w.status !== 200) throw new Error(`wait: ${w.status} ${w.text}`);
      }
      if (recordLat) lat.push(Number(process.hrtime.bigint() - a) / 1e3);
    }
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  const w3 = async () => {
    const t0 = process.hrtime.bigint();
    await Promise.all(cs.map(async (c, t) => {
      for (let i = 0; i < per; i++) {
        const acct = ((i * 613) % (ACCOUNTS / 16)) * 16 + t;
        await c.appendToStream(`account-${acct}`, [deposited(acct, 100 + (i % 900), i)]);
      }
    }));
    return (per * cs.length) / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  await Promise.all([client, ...cs].map((c, i) => c.appendToStream(`account-${i}`, [deposited(i, 1, i)]))); // connected

  // RYOW: an async read model, each append then its wait over HTTP.
  await drop();
  await create('async');
  waitHttp = true;
  for (let r = 0; r < rounds; r++) await w1(true);
  waitHttp = false;
  lat.sort((a, b) => a - b);
  console.log(`| RYOW | factumd: append (Node client), then GET /readmodels/balances/wait?position=P (async read model, SQLite), ${lat.length} times | p50 ${pct(lat, 50).toFixed(0)} / p99 ${pct(lat, 99).toFixed(0)} µs | |`);
  result('RYOW', 'p50_us', pct(lat, 50));
  result('RYOW', 'p99_us', pct(lat, 99));

  // RMINL: without a read model, then with it inline, in alternating rounds.
  const rate = { w1Alone: [], w1With: [], w3Alone: [], w3With: [] };
  for (let r = 0; r < rounds; r++) {
    await drop();
    rate.w1Alone.push(await w1(false));
    rate.w3Alone.push(await w3());
    await create('inline');
    rate.w1With.push(await w1(false));
    rate.w3With.push(await w3());
  }
  await drop();
  const [w1Alone, w1With, w3Alone, w3With] = [rate.w1Alone, rate.w1With, rate.w3Alone, rate.w3With].map(med);
  console.log(`| RMINL | factumd: W1 (one Node client, ${rounds} × ${n} appends) with an inline read model / none | ${(w1With / w1Alone).toFixed(2)} | ${Math.round(w1With)} / ${Math.round(w1Alone)} ev/s (medians of ${rounds} alternating rounds) |`);
  console.log(`| RMINL | factumd: W3 (16 Node clients, ${rounds} × ${per * cs.length} appends) inline / none | ${(w3With / w3Alone).toFixed(2)} | ${Math.round(w3With)} / ${Math.round(w3Alone)} ev/s |`);
  result('RMINL', 'W1_ratio', w1With / w1Alone);
  result('RMINL', 'W3_ratio', w3With / w3Alone);
  result('RMINL', 'W1_with_ev_per_s', w1With);
  result('RMINL', 'W1_alone_ev_per_s', w1Alone);
  result('RMINL', 'W3_with_ev_per_s', w3With);
  result('RMINL', 'W3_alone_ev_per_s', w3Alone);
  await Promise.all([client, ...cs].map((c) => c.dispose()));
})().catch((e) => { console.error(e); process.exit(1); });
