// A JavaScript projection's state and result as of a time or a position
// through the official Node client (@kurrent/kurrentdb-client), which knows
// nothing of them: getProjectionState / getProjectionResult of the name
// `$asof/<name>?time=<RFC 3339>|position=<n>` (with a partition for a
// foreachStream projection) against a model computed here, at random
// positions (the seed is printed); the replays emit nothing (the emitted
// stream is unchanged); errors for a bad point of view, a position past
// the end, an unknown projection, a system projection. docs/temporal.md,
// docs/protocol.md.
// Usage: node projection-asof.js /path/to/factumd
'use strict';
const assert = require('node:assert/strict');
const lib = require('@kurrent/kurrentdb-client');

process.env.FACTUMD_BIN = process.argv[2] || process.env.FACTUMD_BIN;
const { sleep, until, startServer, stopServer } = require('./projserver');

const seed = Number(process.env.FACTUM_SEED || (Date.now() % 1000000007));
console.log(`projection-asof: seed ${seed} (replay with FACTUM_SEED=${seed})`);
let rng = seed;
const rand = (n) => {
  rng = (rng * 1103515245 + 12345) % 2147483648;
  return rng % n;
};

async function main() {
  const srv = await startServer(['--shutdown-timeout-ms', '300']); // shorter than a replay below
  const client = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  let failed = false;
  let c2 = null, inFlight = null;
  try {
    await client.createProjection('total', `
      fromCategory('acct').when({
        $init: () => ({ n: 0, sum: 0 }),
        Deposited: (s, e) => { s.n++; s.sum += e.body.amount; emit('seen', 'Seen', { a: e.body.amount }); return s; },
      }).transformBy((s) => ({ total: s.sum }));`, { emitEnabled: true });
    await client.createProjection('per', `
      fromCategory('acct').foreachStream().when({
        $init: () => ({ bal: 0 }),
        Deposited: (s, e) => { s.bal += e.body.amount; return s; },
      }).outputState();`);
    const evs = []; // [position, account, amount, time before it]
    for (let i = 0; i < 60; i++) {
      const acct = rand(3);
      const amount = 1 + rand(50);
      // JavaScript's clock has milliseconds: 2 ms on each side of the time.
      await sleep(2);
      const before = new Date().toISOString();
      await sleep(2);
      const r = await client.appendToStream(`acct-${acct}`, [lib.jsonEvent({ type: 'Deposited', data: { amount } })]);
      evs.push([Number(r.position.commit), acct, amount, before]);
    }
    const last = evs[evs.length - 1][0];
    await until('total caught up', async () => {
      const s = await client.getProjectionState('total');
      return s && s.n === evs.length;
    });
    const seen = async () => {
      let n = 0;
      for await (const _ of client.readStream('seen')) n++; // eslint-disable-line no-unused-vars
      return n;
    };
    const emitted = await seen();
    assert.equal(emitted, evs.length);
    const upto = (p, acct) => evs.filter((e) => e[0] <= p && (acct === undefined || e[1] === acct));

    // By position: the exact state after the event at that position.
    for (let k = 0; k < 8; k++) {
      const e = evs[k === 0 ? evs.length - 1 : rand(evs.length)];
      const p = e[0];
      const mine = upto(p);
      const sum = mine.reduce((a, x) => a + x[2], 0);
      assert.deepEqual(await client.getProjectionState(`$asof/total?position=${p}`), { n: mine.length, sum });
      assert.deepEqual(await client.getProjectionResult(`$asof/total?position=${p}`), { total: sum });
      const acct = rand(3);
      const bal = upto(p, acct).reduce((a, x) => a + x[2], 0);
      const st = await client.getProjectionState(`$asof/per?position=${p}`, { partition: `acct-${acct}` });
      assert.deepEqual(st, upto(p, acct).length ? { bal } : {}, `per acct-${acct} at ${p}`);
    }
    // By time: the time just before an event excludes it.
    for (let k = 0; k < 4; k++) {
      const i = 1 + rand(evs.length - 1);
      const mine = evs.slice(0, i);
      const sum = mine.reduce((a, x) => a + x[2], 0);
      assert.deepEqual(await client.getProjectionState(`$asof/total?time=${evs[i][3]}`), { n: mine.length, sum },
        `as of ${evs[i][3]}`);
    }
    // The replays emitted nothing.
    assert.equal(await seen(), emitted);
    // Errors.
    const rejects = async (p, re, what) => {
      let err = null;
      try { await p; } catch (e) { err = e; }
      assert.ok(err, `${what}: expected an error`);
      assert.match(String(err.message), re, what);
      return err;
    };
    await rejects(client.getProjectionState('$asof/total?time=yesterday'), /RFC 3339/, 'a bad time');
    await rejects(client.getProjectionState('$asof/total'), /point of view/, 'no point of view');
    await rejects(client.getProjectionState(`$asof/total?position=${last + 1000}`), /past the end/, 'past the end');
    const nf = await rejects(client.getProjectionState('$asof/nope?position=1'), /not found/, 'unknown');
    assert.ok(nf instanceof lib.NotFoundError, `unknown: ${nf.constructor.name}`);
    await rejects(client.getProjectionState('$asof/$by_category?position=1'), /system projection/, 'system');
    // A replay longer than the call's deadline: the client gets its error,
    // the replay ends (the client left), the server goes on answering.
    await client.createProjection('slow', `
      fromCategory('slowcat').when({
        $init: () => ({ n: 0 }),
        Tick: (s) => { const t = Date.now(); while (Date.now() - t < 4) {} s.n++; return s; },
      });`);
    const ticks = [];
    for (let i = 0; i < 1000; i++) ticks.push(lib.jsonEvent({ type: 'Tick', data: {} })); // 4 s of replay
    const tr = await client.appendToStream('slowcat-1', ticks);
    const t0 = Date.now();
    await rejects(client.getProjectionState(`$asof/slow?position=${Number(tr.position.commit)}`, { deadline: 300 }),
      /deadline|Deadline|DEADLINE/, 'past the deadline');
    assert.ok(Date.now() - t0 < 3000, `the deadline was kept (${Date.now() - t0} ms; the whole replay takes 4 s)`);
    assert.deepEqual(await client.getProjectionState(`$asof/total?position=${evs[0][0]}`), { n: 1, sum: evs[0][2] });
    // Bounded: two replays run, eight wait, the others are refused at once.
    const burst = await Promise.all(Array.from({ length: 12 }, () =>
      client.getProjectionState(`$asof/slow?position=${Number(tr.position.commit)}`, { deadline: 800 })
        .then(() => 'answered', (e) => String(e.message))));
    const refused = burst.filter((m) => /try again later/.test(m)).length;
    assert.ok(refused >= 2, `refused: ${refused} of 12 (${burst.join(' | ')})`);
    // The burst's replays end at their next batch once their clients left;
    // until then a new one may still be refused (under load, for a while):
    // the server answers again within seconds.
    const end = Date.now() + 20000;
    for (;;) {
      try {
        assert.deepEqual(await client.getProjectionState(`$asof/total?position=${evs[0][0]}`), { n: 1, sum: evs[0][2] });
        break;
      } catch (e) {
        if (!/try again later/.test(String(e.message)) || Date.now() > end) throw e;
        await sleep(100);
      }
    }
    // The live state is untouched.
    assert.deepEqual(await client.getProjectionState('total'),
      { n: evs.length, sum: evs.reduce((a, x) => a + x[2], 0) });
    // A replay still running when the server stops: it ends at its next
    // batch, the call gets an error, and the server stops cleanly (no leak).
    c2 = lib.KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    inFlight = c2.getProjectionState(`$asof/slow?position=${Number(tr.position.commit)}`)
      .then(() => 'answered', (e) => `error: ${e.message}`);
    await sleep(500);
    console.log('ok projection-asof');
  } catch (e) {
    failed = true;
    console.error(e);
  } finally {
    await client.dispose();
    try {
      const t0 = Date.now();
      await stopServer(srv);
      if (inFlight) console.log(`  stopped in ${Date.now() - t0} ms; the replay in flight: ${await inFlight}`);
    } catch (e) {
      failed = true;
      console.error(e);
    }
    if (c2) await c2.dispose();
  }
  process.exit(failed ? 1 : 0);
}

main();
