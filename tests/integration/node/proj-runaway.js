// Runaway JavaScript projections while clients append (docs/projections.md,
// Isolation; JSP-1, JSP-3): factumd with --max-projection-state-size 1 MiB,
// --projection-execution-timeout 100 ms and --projection-heap-mib 32; 12
// concurrent appenders, each with its own official client, append single
// events (as W3 of bench/ does). Once they are under way, a well-behaved
// counting projection is created, then scripts that run away: an infinite
// loop, a state growing past the limit, unbounded recursion, an exception
// in $init, a heap growing past its limit (its reason may be the time
// limit: V8's collections near the heap's limit take longer than 100 ms,
// and the watchdog stops it first). For a while each runaway one is
// enabled again whenever it has faulted (it goes on from its checkpoint and
// runs away again), then left faulted. Then:
//   - each runaway projection is Faulted, its reason (Statistics
//     stateReason) says why;
//   - every append succeeded;
//   - the well-behaved projection never faulted and catches up: it counted
//     every event appended;
//   - factumd stops cleanly (no error in its log but the faults).
// The appenders' latency (p50, p99) before and while the scripts run away
// is printed: reported, not asserted.
// Usage: FACTUMD_BIN=/path/to/factumd node proj-runaway.js
'use strict';
const assert = require('node:assert/strict');
const lib = require('@kurrent/kurrentdb-client');
const { sleep, slow, until, startServer, stopServer } = require('./projserver');

const APPENDERS = 12;
const BEFORE_MS = 3000, DURING_MS = 4000;
const url = (srv) => `kurrentdb://127.0.0.1:${srv.port}?tls=false`;

const GOOD = ['good', `fromCategory('w3').when({
  $init: () => ({ n: 0 }),
  $any: (s, e) => { s.n++; return s; },
}).outputState();`];
// name, query, what its reason must say
const RUNAWAY = [
  ['loop', `fromCategory('w3').when({ $any: (s, e) => { for (;;) {} } });`, /timed out after 100 ms/],
  ['big-state', `fromCategory('w3').when({
     $init: () => ({ l: [] }),
     $any: (s, e) => { s.l.push('x'.repeat(1024)); return s; },
   });`, /more than the limit \(MaxProjectionStateSize\) of 1048576 bytes/],
  ['recursion', `fromCategory('w3').when({
     $any: (s, e) => { const r = (n) => r(n + 1) + 1; return r(0); },
   });`, /RangeError: Maximum call stack size exceeded/],
  ['init-throws', `fromCategory('w3').when({
     $init: () => { throw new Error('boom in $init'); },
     $any: (s) => s,
   });`, /Error: boom in \$init/],
  ['heap', `fromCategory('w3').when({
     $any: (s, e) => { const keep = []; for (;;) keep.push(new Array(1 << 20).fill(e.body.n)); },
   });`, /reached its heap limit of 32 MiB|timed out after 100 ms/],
];

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}
function summary(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return `${s.length} appends, p50 ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms, ` +
    `max ${s[s.length - 1].toFixed(2)} ms`;
}

async function main() {
  const t0 = Date.now();
  const srv = await startServer(['--max-projection-state-size', '1048576', '--projection-execution-timeout', '100',
    '--projection-heap-mib', '32']);
  const admin = lib.KurrentDBClient.connectionString(url(srv));
  const clients = Array.from({ length: APPENDERS }, () => lib.KurrentDBClient.connectionString(url(srv)));
  const lat = { warm: [], before: [], during: [], after: [] };
  let phase = 'warm', stop = false, acked = 0;
  const failures = [];
  const appenders = clients.map(async (c, i) => {
    for (let n = 0; !stop; n++) {
      const t = process.hrtime.bigint();
      try {
        await c.appendToStream(`w3-${i}`, [lib.jsonEvent({ type: 'Tick', data: { i, n } })]);
      } catch (e) {
        failures.push(`appender ${i}, append ${n}: ${e.constructor.name}: ${e.message}`);
        return;
      }
      lat[phase].push(Number(process.hrtime.bigint() - t) / 1e6);
      acked++;
    }
  });
  try {
    await sleep(500);
    phase = 'before';
    await sleep(BEFORE_MS);
    phase = 'during';

    await admin.createProjection(...GOOD);
    for (const [name, query] of RUNAWAY) await admin.createProjection(name, query);
    // Runaway after runaway: enabled again each time it faulted.
    const faults = Object.fromEntries(RUNAWAY.map(([name]) => [name, 0]));
    const end = Date.now() + DURING_MS;
    while (Date.now() < end) {
      for (const [name] of RUNAWAY) {
        const st = await admin.getProjectionStatus(name);
        if (/^Faulted/.test(st.status)) {
          faults[name]++;
          await admin.enableProjection(name);
        }
      }
      const good = await admin.getProjectionStatus(GOOD[0]);
      assert.doesNotMatch(good.status, /^Faulted/, `the well-behaved projection faulted: ${good.stateReason}`);
      await sleep(50);
    }
    const behind = acked - ((await admin.getProjectionState(GOOD[0])).n || 0);
    // Left to fault one last time, with their reasons.
    const reasons = {};
    for (const [name, , why] of RUNAWAY) {
      const st = await until(`${name} faulted`, async () => {
        const s = await admin.getProjectionStatus(name);
        return /^Faulted/.test(s.status) && s;
      }, 30000 * slow);
      faults[name]++;
      reasons[name] = st.stateReason;
      assert.match(st.stateReason, why, `the reason ${name} faulted`);
    }
    phase = 'after';
    await sleep(500);
    stop = true;
    await Promise.all(appenders);
    assert.deepEqual(failures, [], 'every append succeeded');

    // The well-behaved one goes on and counts every event appended.
    const good = await until('the well-behaved projection caught up', async () => {
      const s = await admin.getProjectionState(GOOD[0]);
      return s && s.n === acked && s;
    }, 60000 * slow).catch(async (e) => {
      const st = await admin.getProjectionStatus(GOOD[0]);
      throw new Error(`${e.message} (${acked} appended; its state ${JSON.stringify(await admin.getProjectionState(GOOD[0]))}, ` +
        `status ${st.status} ${st.stateReason})`);
    });
    assert.equal((await admin.getProjectionStatus(GOOD[0])).status, 'Running');
    assert.deepEqual(await admin.getProjectionResult(GOOD[0]), good);

    for (const [name] of RUNAWAY) console.log(`# ${name}: faulted ${faults[name]} times; last: ${reasons[name]}`);
    console.log(`# appenders: ${APPENDERS} concurrent, single events, ${acked} appended, none failed`);
    console.log(`# latency before the runaway scripts: ${summary(lat.before)}`);
    console.log(`# latency while they run away:        ${summary(lat.during)}`);
    console.log(`# well-behaved projection: ${behind} events behind the appenders when the runaway phase ended; ` +
      `then counted all ${good.n}`);
    await Promise.all([admin, ...clients].map((c) => c.dispose()));
    await stopServer(srv);
    console.log(`ok: every runaway script faulted with its reason, every append succeeded, the well-behaved ` +
      `projection caught up (${Date.now() - t0} ms)`);
  } finally {
    stop = true;
    srv.p.removeAllListeners('exit');
    srv.p.kill('SIGKILL');
  }
}

process.env.FACTUMD_BIN = process.env.FACTUMD_BIN || process.argv[2];
main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
