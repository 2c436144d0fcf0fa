// How fast one official Node client (@kurrent/kurrentdb-client 1.x) can go
// against factumd, so users know where the client, not the server, is the
// limit: sequential single-event appends (latency bound), many appends in
// flight on one client, and reads of a stream and of $all.
// Usage: FACTUMD_URL=kurrentdb://127.0.0.1:2113?tls=false node bench/node-client.js [--quick]
'use strict';
const path = require('node:path');
const lib = require(path.join(__dirname, '../tests/integration/node/node_modules/@kurrent/kurrentdb-client'));
const quick = process.argv.includes('--quick');
const client = lib.KurrentDBClient.connectionString(process.env.FACTUMD_URL);
const data = { accountId: 'account-1', amount: 1234, currency: 'EUR', reference: 'INV-00000001', description: 'Deposit at branch 042, counter 7, teller Ms. J. Smith', at: '2024-03-15T10:22:31.123Z' };
const meta = { correlationId: '6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a', causationId: '0d2f8e1b-4c3a-4c55-9a7e-6f1c2a9e3b1d', user: 'alice' };
const ev = () => lib.jsonEvent({ type: 'MoneyDeposited', data, metadata: meta });
const tag = Date.now().toString(36);
const rate = (n, t0) => Math.round(n / ((Date.now() - t0) / 1000));

(async () => {
  const n1 = quick ? 2000 : 10000;
  const ver = new Map();
  let t0 = Date.now();
  for (let i = 0; i < n1; i++) {
    const s = `nb-${tag}-${i % 1000}`;
    const r = await client.appendToStream(s, [ev()], { streamState: ver.has(s) ? ver.get(s) : lib.NO_STREAM });
    ver.set(s, r.nextExpectedRevision);
  }
  console.log(`| Node 1.x | sequential single-event appends (each awaited) | ${rate(n1, t0)} ev/s |`);
  const n2 = quick ? 10000 : 50000, inflight = 100;
  t0 = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: inflight }, async (_, w) => {
    for (let i = next++; i < n2; i = next++) await client.appendToStream(`nc-${tag}-${w}`, [ev()]);
  }));
  console.log(`| Node 1.x | ${inflight} single-event appends in flight on one client | ${rate(n2, t0)} ev/s |`);
  const big = `nr-${tag}`;
  for (let i = 0; i < 10; i++) await client.appendToStream(big, Array.from({ length: 1000 }, ev));
  t0 = Date.now();
  let n = 0;
  for (let p = 0; p < 3; p++) for await (const e of client.readStream(big, { maxCount: 100000 })) n += e.event ? 1 : 0;
  console.log(`| Node 1.x | read a 10,000-event stream 3 times | ${rate(n, t0)} ev/s |`);
  t0 = Date.now();
  n = 0;
  for await (const e of client.readAll({ maxCount: quick ? 50000 : 200000 })) n += e.event ? 1 : 0;
  console.log(`| Node 1.x | read $all (${n} events) | ${rate(n, t0)} ev/s |`);
  await client.dispose();
})().catch((e) => { console.error(e); process.exit(1); });
