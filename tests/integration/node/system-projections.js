// The system projections of factumd seen through an official Node client:
// a factumd of its own, started as KurrentDB would be for them
// (--run-projections=All --start-standard-projections=true), events appended
// by the client, and what the projections write read back with link
// resolution everywhere a client can ask for it: stream reads, $all reads,
// catch-up subscriptions to a stream and to $all, and a consumer group.
// `$ce-<category>`, `$et-<type>`, `$bc-<correlation id>`, `$streams` and
// `$category-<category>` are checked event by event; unresolvable links
// (a deleted source) come alone; /metrics shows every projection running.
// Each client's entry file (projections-*.test.js) calls run() with its
// library.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { spawn } = require('node:child_process');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]);
}

async function until(what, fn, ms = 20000 * slow) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function startServer(factumd) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--insecure', '--mem-db', '--node-ip', '127.0.0.1', '--node-port', '0',
      '--run-projections=All', '--start-standard-projections=true'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

function metrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

// Collect a subscription's events until `n` have come.
function collect(sub, n) {
  const events = [];
  const done = new Promise((resolve, reject) => {
    sub.on('data', (e) => {
      events.push(e);
      if (events.length >= n) sub.unsubscribe().catch(() => {}).then(() => resolve(events));
    });
    sub.on('error', reject);
  });
  return { events, done };
}

function run(lib, makeClient, features) {
  const { jsonEvent, START } = lib;
  // A category of our own: stream names split at their first '-'.
  const cat = features.name + 'acct' + crypto.randomUUID().slice(0, 8).replace(/-/g, '');
  const type = `${features.name}Deposited${crypto.randomUUID().slice(0, 8)}`;
  const corr = crypto.randomUUID();
  const stream = (i) => `${cat}-${i}`;
  let srv, client;

  // The events: acct-1 gets three, acct-2 two, in this order.
  const plan = [[1, 0], [2, 0], [1, 1], [1, 2], [2, 1]];
  const expected = plan.map(([i, r]) => ({ streamId: stream(i), revision: BigInt(r) }));

  before(async () => {
    srv = await startServer(process.env.FACTUMD_BIN);
    client = makeClient(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    for (const [i, r] of plan)
      await client.appendToStream(stream(i), [jsonEvent({ type, data: { i, r }, metadata: { $correlationId: corr } })]);
  });

  after(async () => {
    if (client) await client.dispose();
    if (!srv) return;
    srv.p.removeAllListeners('exit');
    const exited = new Promise((r) => srv.p.on('exit', (code, sig) => r({ code, sig })));
    srv.p.kill('SIGTERM');
    const { code } = await exited;
    assert.equal(code, 0, `factumd did not shut down cleanly: ${srv.log()}`);
    assert.doesNotMatch(srv.log(), /ERROR|runtime error|AddressSanitizer|LeakSanitizer/);
  });

  const readAllOf = async (s, opts = {}) => {
    const out = [];
    for await (const e of client.readStream(s, opts)) out.push(e);
    return out;
  };
  // Wait until a projection wrote `n` events to s, then read them resolved.
  const resolved = async (s, n) => {
    await until(`${n} events in ${s}`, async () => {
      try { return (await readAllOf(s)).length >= n; } catch (e) { return false; }
    });
    return readAllOf(s, { resolveLinkTos: true });
  };
  const checkLinks = (evs, linkStream, what, want = expected) => {
    assert.equal(evs.length, want.length, what);
    evs.forEach((e, k) => {
      assert.equal(e.event.streamId, want[k].streamId, `${what} #${k}`);
      assert.equal(e.event.revision, want[k].revision, `${what} #${k}`);
      assert.equal(e.event.type, type, `${what} #${k}`);
      assert.deepEqual(e.event.data, { i: Number(want[k].streamId.split('-')[1]), r: Number(want[k].revision) });
      assert.equal(e.link.streamId, linkStream, `${what} #${k}`);
      assert.equal(e.link.type, '$>', `${what} #${k}`);
      assert.equal(e.link.revision, BigInt(k), `${what} #${k}`);
    });
  };

  describe('system projections', () => {
    it('$ce-<category> read with resolved links after $by_category ran', async () => {
      const evs = await resolved(`$ce-${cat}`, 5);
      checkLinks(evs, `$ce-${cat}`, '$ce read');
      // KurrentDB's link metadata: where the source came from, what caused it.
      const m = evs[0].link.metadata;
      assert.equal(m.$o, stream(1));
      assert.equal(m.$causedBy, evs[0].event.id);
      assert.equal(m.$correlationId, corr);
      assert.equal(typeof m.$c, 'number');
      // Without resolution: the link events themselves, "<revision>@<stream>".
      const raw = await readAllOf(`$ce-${cat}`);
      assert.deepEqual(raw.map((e) => e.event.type), Array(5).fill('$>'));
      assert.deepEqual(raw.map((e) => Buffer.from(e.event.data).toString()),
        expected.map((x) => `${x.revision}@${x.streamId}`));
      assert.ok(raw.every((e) => e.link === undefined));
    });

    it('$et-<type>, $bc-<correlation id>, $streams and $category-<category>', async () => {
      checkLinks(await resolved(`$et-${type}`, 5), `$et-${type}`, '$et read');
      checkLinks(await resolved(`$bc-${corr}`, 5), `$bc-${corr}`, '$bc read');
      const cats = await resolved(`$category-${cat}`, 2);
      assert.deepEqual(cats.map((e) => e.event.type), ['$@', '$@']);
      assert.deepEqual(cats.map((e) => Buffer.from(e.event.data).toString()), [stream(1), stream(2)]);
      const all = await readAllOf('$streams', { resolveLinkTos: true });
      const ours = all.filter((e) => e.event && e.event.streamId.startsWith(cat + '-'));
      assert.deepEqual(ours.map((e) => [e.event.streamId, e.event.revision]), [[stream(1), 0n], [stream(2), 0n]]);
      assert.ok(ours.every((e) => e.link.streamId === '$streams'));
    });

    it('resolves the links in $all reads', async () => {
      await resolved(`$ce-${cat}`, 5);
      const got = [];
      for await (const e of client.readAll({ resolveLinkTos: true, maxCount: 100000 }))
        if (e.link && e.link.streamId === `$ce-${cat}`) got.push(e);
      checkLinks(got, `$ce-${cat}`, '$all read');
      // Unresolved, the same records are the links themselves.
      const raw = [];
      for await (const e of client.readAll({ maxCount: 100000 }))
        if (e.event && e.event.streamId === `$ce-${cat}`) raw.push(e);
      assert.equal(raw.length, 5);
      assert.ok(raw.every((e) => e.event.type === '$>' && !e.link));
    });

    it('resolves them in catch-up subscriptions, history then live', async () => {
      await resolved(`$ce-${cat}`, 5);
      const sub = collect(client.subscribeToStream(`$ce-${cat}`, { fromRevision: START, resolveLinkTos: true }), 6);
      await sleep(100);
      await client.appendToStream(stream(3), [jsonEvent({ type, data: { i: 3, r: 0 }, metadata: { $correlationId: corr } })]);
      const evs = await withTimeout(sub.done, 20000 * slow, 'stream subscription');
      const want = [...expected, { streamId: stream(3), revision: 0n }];
      checkLinks(evs, `$ce-${cat}`, 'stream subscription', want);
      if (features.filters) {
        const filter = lib.streamNameFilter({ prefixes: [`$ce-${cat}`] });
        const all = collect(client.subscribeToAll({ fromPosition: START, resolveLinkTos: true, filter }), 6);
        const got = await withTimeout(all.done, 20000 * slow, '$all subscription');
        checkLinks(got, `$ce-${cat}`, '$all subscription', want);
      }
    });

    it('resolves them for a consumer group (persistent subscription with resolveLinkTos)', async () => {
      await resolved(`$ce-${cat}`, 6);
      await client.createPersistentSubscriptionToStream(`$ce-${cat}`, 'g',
        lib.persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START, resolveLinkTos: true }));
      const sub = client.subscribeToPersistentSubscriptionToStream(`$ce-${cat}`, 'g');
      const got = [];
      await withTimeout(new Promise((resolve, reject) => {
        sub.on('data', async (e) => {
          got.push(e);
          await sub.ack(e);
          if (got.length >= 6) resolve();
        });
        sub.on('error', reject);
      }), 20000 * slow, 'consumer group');
      await sub.unsubscribe().catch(() => {});
      const want = [...expected, { streamId: stream(3), revision: 0n }];
      checkLinks(got.slice().sort((a, b) => Number(a.link.revision - b.link.revision)), `$ce-${cat}`, 'group', want);
    });

    it('leaves a link to a deleted event unresolved: it comes alone', async () => {
      await client.deleteStream(stream(2));
      const evs = await resolved(`$ce-${cat}`, 7); // the deletion itself is linked too, with $deleted
      assert.equal(evs.length, 7);
      assert.equal(evs[6].link.metadata.$deleted, -1);
      assert.equal(evs[6].link.metadata.$o, stream(2));
      assert.equal(evs[1].event, undefined);
      assert.equal(evs[1].link.type, '$>');
      assert.equal(evs[0].event.streamId, stream(1));
    });

    it('reports every projection running in /metrics', async () => {
      const body = await metrics(srv.port);
      for (const p of ['$streams', '$stream_by_category', '$by_category', '$by_event_type', '$by_correlation_id'])
        assert.match(body, new RegExp(`factum_projection_running\\{projection="\\${p}"\\} 1`), p);
      assert.match(body, /factum_projection_lag_events\{projection="\$by_category"\} \d+/);
    });
  });
}

module.exports = { run };
