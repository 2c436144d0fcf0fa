// Catch-up subscriptions (Streams.Read in subscription mode) against a real
// factumd with an official Node client: history then live without a gap or a
// duplicate under concurrent appends, every starting point (exclusive, as
// KurrentDB), streams not yet written, filtered $all with checkpoints and
// resuming from one, resolved and unresolved links (in subscriptions and in
// reads), tombstones, a consumer that stops reading (fell behind -> caught
// up, with the server's memory bounded), and unsubscribing. Each client's
// entry file calls run() with its library.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function metrics(port) {
  return new Promise((resolve, reject) => {
    // FACTUMD_HTTP (run.sh): http:// or, in secure mode, https:// (the CA from NODE_EXTRA_CA_CERTS)
    const base = process.env.FACTUMD_HTTP || `http://127.0.0.1:${port}`;
    // /metrics needs an authenticated user on a secure server (an insecure one ignores the header)
    const headers = { authorization: 'Basic ' + Buffer.from('admin:changeit').toString('base64') };
    (base.startsWith('https:') ? https : http).get(`${base}/metrics`, { headers }, (res) => {
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
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /RssAnon:\s+(\d+) kB/.exec(st);
  return m ? Number(m[1]) : 0;
}

// Follow a subscription in flowing mode: events and markers in the order the
// server sent them. When until(state) holds the call is cancelled and done
// resolves; an error also ends it (state.error).
function follow(sub, until) {
  const st = { sub, events: [], log: [], caughtUp: 0, fellBehind: 0, error: null };
  st.done = new Promise((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      sub.unsubscribe().catch(() => {}).then(() => resolve(st));
    };
    const check = () => { if (until(st)) finish(); };
    sub.on('caughtUp', () => { st.caughtUp++; st.log.push('caughtUp'); check(); });
    sub.on('fellBehind', () => { st.fellBehind++; st.log.push('fellBehind'); check(); });
    sub.on('data', (e) => { st.events.push(e); st.log.push('event'); check(); });
    sub.on('error', (e) => { st.error = e; finish(); });
    sub.on('end', finish);
  });
  return st;
}

function run(lib, makeClient, features) {
  const { jsonEvent, binaryEvent, START, END } = lib;
  const url = process.env.FACTUMD_URL;
  const port = Number(process.env.FACTUMD_PORT);
  const pid = Number(process.env.FACTUMD_PID || 0);
  const tag = features.name + 'sub-' + crypto.randomUUID().slice(0, 8);
  const sn = (s) => `${tag}-${s}`;
  const ev = (type, data) => jsonEvent({ type, data });
  let client;

  before(() => { client = makeClient(url); });
  after(async () => { await client.dispose(); });

  describe('catch-up subscriptions', () => {
    it('delivers history, then live events, each once and in order, while appends race the switch', async () => {
      const s = sn('race');
      for (let i = 0; i < 10; i++) await client.appendToStream(s, Array.from({ length: 30 }, (_, k) => ev('H', { n: i * 30 + k })));
      const sub = client.subscribeToStream(s, { fromRevision: START });
      const st = follow(sub, (x) => x.events.length >= 600 && x.caughtUp > 0);
      // 300 more, in 60 small appends, while the subscription catches up.
      for (let i = 0; i < 60; i++) await client.appendToStream(s, Array.from({ length: 5 }, (_, k) => ev('L', { n: 300 + i * 5 + k })));
      await withTimeout(st.done, 30000, 'race subscription');
      assert.equal(st.error, null);
      assert.equal(st.events.length, 600);
      st.events.forEach((e, i) => {
        assert.equal(e.event.revision, BigInt(i));
        assert.equal(e.event.data.n, i);
        assert.equal(e.event.streamId, s);
      });
      assert.ok(st.caughtUp >= 1, 'caughtUp was emitted');
      assert.equal(sub.id.length, 36, 'the confirmation carried a subscription id');
    });

    it('starts after a revision (exclusive), or at the end with only new events', async () => {
      const s = sn('from');
      await client.appendToStream(s, [ev('A', {}), ev('B', {}), ev('C', {})]);
      const after1 = follow(client.subscribeToStream(s, { fromRevision: 1n }), (x) => x.events.length >= 1);
      const atEnd = follow(client.subscribeToStream(s, { fromRevision: END }), (x) => x.events.length >= 1);
      await sleep(200);
      await client.appendToStream(s, [ev('D', {})]);
      const [a, e] = await withTimeout(Promise.all([after1.done, atEnd.done]), 20000, 'from revision / end');
      assert.deepEqual(a.events.map((x) => x.event.type), ['C']);
      assert.deepEqual(e.events.map((x) => x.event.type), ['D']);
      assert.equal(e.log[0], 'caughtUp', 'from END: caught up before the first live event');
    });

    it('follows $all from a position (exclusive) and from the end', async () => {
      const s = sn('allpos');
      const r1 = await client.appendToStream(s, [ev('P1', {})]);
      await client.appendToStream(s, [ev('P2', {})]);
      const mine = (x) => x.events.filter((e) => e.event && e.event.streamId === s);
      const fromPos = follow(client.subscribeToAll({ fromPosition: r1.position }), (x) => mine(x).length >= 2);
      const fromEnd = follow(client.subscribeToAll({ fromPosition: END }), (x) => mine(x).length >= 1);
      await sleep(200);
      await client.appendToStream(s, [ev('P3', {})]);
      const [p, e] = await withTimeout(Promise.all([fromPos.done, fromEnd.done]), 20000, '$all from position / end');
      assert.deepEqual(mine(p).map((x) => x.event.type), ['P2', 'P3']);
      assert.ok(p.events[0].event.position.commit > r1.position.commit);
      assert.deepEqual(mine(e).map((x) => x.event.type), ['P3']);
      for (let i = 1; i < p.events.length; i++) assert.ok(p.events[i].commitPosition > p.events[i - 1].commitPosition);
    });

    it('waits on a stream not yet written, and delivers it when it is', async () => {
      const s = sn('later');
      const st = follow(client.subscribeToStream(s), (x) => x.events.length >= 2);
      await sleep(300);
      assert.equal(st.events.length, 0);
      await client.appendToStream(s, [ev('First', {}), ev('Second', {})]);
      await withTimeout(st.done, 20000, 'stream written later');
      assert.deepEqual(st.events.map((x) => x.event.type), ['First', 'Second']);
      assert.equal(st.log[0], 'caughtUp');
    });

    it('filters $all server-side with checkpoints at the interval, and resumes from a checkpoint without loss', async () => {
      const noise = sn('noise');
      const sig = `Signal${tag.replace(/[^a-zA-Z0-9]/g, '')}`;
      for (let i = 0; i < 4; i++) await client.appendToStream(noise, Array.from({ length: 50 }, () => ev('Noise', {})));
      const r1 = await client.appendToStream(sn('sig'), [ev(sig, { k: 1 })]);
      for (let i = 0; i < 2; i++) await client.appendToStream(noise, Array.from({ length: 50 }, () => ev('Noise', {})));
      const r2 = await client.appendToStream(sn('sig'), [ev(sig, { k: 2 })]);
      const cps = [];
      const filter = lib.eventTypeFilter({
        regex: `^${sig}$`,
        checkpointInterval: 2,
        maxSearchWindow: 10,
        checkpointReached: (_s, pos) => { cps.push(pos.commit); },
      });
      const st = follow(client.subscribeToAll({ fromPosition: START, filter }), (x) => x.events.length >= 2 && x.caughtUp > 0);
      await withTimeout(st.done, 30000, 'filtered $all');
      assert.equal(st.error, null);
      assert.deepEqual(st.events.map((x) => x.event.data.k), [1, 2]);
      // 300 noise events before and between the signals: a checkpoint every
      // 20 events examined (window 10 x multiplier 2), increasing.
      assert.ok(cps.length >= 15, `checkpoints: ${cps.length}`);
      for (let i = 1; i < cps.length; i++) assert.ok(cps[i] > cps[i - 1]);
      // Resume from the last checkpoint before the second signal.
      const cp = cps.filter((c) => c < r2.position.commit && c >= r1.position.commit).pop();
      assert.ok(cp !== undefined, 'a checkpoint between the two signals');
      const again = follow(client.subscribeToAll({ fromPosition: { commit: cp, prepare: cp }, filter: lib.eventTypeFilter({ regex: `^${sig}$` }) }),
        (x) => x.caughtUp > 0);
      await withTimeout(again.done, 20000, 'resume from checkpoint');
      assert.deepEqual(again.events.map((x) => x.event.data.k), [2]);
    });

    it('filters $all by stream name prefix', async () => {
      const pre = sn('pfx');
      await client.appendToStream(pre + '-a', [ev('X', {})]);
      await client.appendToStream(sn('other'), [ev('X', {})]);
      await client.appendToStream(pre + '-b', [ev('Y', {})]);
      const st = follow(client.subscribeToAll({ fromPosition: START, filter: lib.streamNameFilter({ prefixes: [pre] }) }),
        (x) => x.events.length >= 2);
      await withTimeout(st.done, 20000, 'stream prefix filter');
      assert.deepEqual(st.events.map((x) => x.event.streamId), [pre + '-a', pre + '-b']);
    });

    it('resolves links in subscriptions and in reads; an unresolvable link comes alone', async () => {
      const target = sn('target');
      const links = sn('links');
      await client.appendToStream(target, [ev('Real', { i: 0 }), ev('Real', { i: 1 })]);
      const link = (data) => binaryEvent({ type: '$>', data: Buffer.from(data) });
      await client.appendToStream(links, [link(`1@${target}`), link(`7@${target}`), link(`0@${target}`)]);
      const check = (evs, what) => {
        assert.equal(evs.length, 3, what);
        assert.equal(evs[0].event.streamId, target, what);
        assert.equal(evs[0].event.revision, 1n, what);
        assert.deepEqual(evs[0].event.data, { i: 1 }, what);
        assert.equal(evs[0].link.streamId, links, what);
        assert.equal(evs[0].link.revision, 0n, what);
        assert.equal(evs[0].link.type, '$>', what);
        assert.equal(evs[1].event, undefined, what);
        assert.equal(evs[1].link.revision, 1n, what);
        assert.equal(evs[2].event.revision, 0n, what);
        assert.equal(evs[2].link.revision, 2n, what);
      };
      const st = follow(client.subscribeToStream(links, { resolveLinkTos: true }), (x) => x.events.length >= 3);
      await withTimeout(st.done, 20000, 'links subscription');
      check(st.events, 'subscription');
      const read = [];
      for await (const e of client.readStream(links, { resolveLinkTos: true })) read.push(e);
      check(read, 'read');
      const raw = [];
      for await (const e of client.readStream(links)) raw.push(e);
      assert.ok(raw.every((e) => e.event.type === '$>' && e.link === undefined));
    });

    it('refuses a tombstoned stream, and ends a subscription when its stream is tombstoned', async () => {
      const s = sn('tomb');
      await client.appendToStream(s, [ev('A', {})]);
      const st = follow(client.subscribeToStream(s), (x) => false);
      await sleep(300);
      await client.tombstoneStream(s);
      await withTimeout(st.done, 20000, 'tombstone while subscribed');
      assert.equal(st.events.length, 1);
      assert.ok(st.error, 'the subscription ended with an error');
      assert.equal(st.error.constructor.name, 'StreamDeletedError');
      const again = follow(client.subscribeToStream(s), () => false);
      await withTimeout(again.done, 20000, 'subscribe to a tombstoned stream');
      assert.equal(again.error && again.error.constructor.name, 'StreamDeletedError');
    });

    it('lets a consumer that stops reading fall behind and catch up, receiving everything in order', async () => {
      const s = sn('slow');
      const total = 64 * 1000;
      const payload = 'x'.repeat(1000);
      let pausedOnce = false;
      let bad = 0;
      const st = follow(client.subscribeToStream(s, { fromRevision: END }), (x) => {
        const last = x.events[x.events.length - 1];
        if (x.log[x.log.length - 1] === 'event' && last.event.revision !== BigInt(x.events.length - 1)) bad++;
        if (x.events.length === 1 && !pausedOnce) { pausedOnce = true; x.sub.pause(); } // stop reading
        return x.events.length >= total && x.log[x.log.length - 1] === 'caughtUp';
      });
      await sleep(200);
      const rss0 = pid ? rssAnonKiB(pid) : 0;
      let rssMax = rss0;
      for (let i = 0; i < total / 1000; i++) {
        await client.appendToStream(s, Array.from({ length: 1000 }, (_, k) => jsonEvent({ type: 'Big', data: { p: payload, n: i * 1000 + k } })));
        if (pid) rssMax = Math.max(rssMax, rssAnonKiB(pid));
      }
      const m = await metrics(port);
      // Lag monitoring: the paused subscription's lag is visible.
      const lagKey = Object.keys(m).find((k) => k.startsWith(`factum_subscription_lag_events{stream="${s}"`));
      assert.ok(lagKey && m[lagKey] > 1000, `lag in /metrics: ${lagKey} ${m[lagKey]}`);
      const secKey = lagKey.replace('_lag_events', '_lag_seconds');
      assert.ok(m[secKey] > 0, `lag in seconds: ${m[secKey]}`);
      st.sub.resume();
      await withTimeout(st.done, 120000, 'slow consumer');
      assert.equal(st.error, null);
      assert.equal(bad, 0, 'every event in order');
      assert.equal(st.events.length, total);
      assert.ok(st.fellBehind >= 1, `markers: ${st.log.filter((k) => k !== 'event').join(',')}`);
      assert.ok((await metrics(port)).factum_subscription_fell_behind_total > m.factum_subscription_fell_behind_total);
      // 64 MB were appended while the consumer did not read: had the server
      // buffered them, its anonymous memory would have grown by as much.
      // (Sanitizer builds keep freed memory in quarantine: not measured.)
      if (pid && !process.env.FACTUM_SANITIZED) {
        const grownMiB = (rssMax - rss0) / 1024;
        console.log(`# slow consumer: ${total} events (64 MB) appended unread; factumd anonymous memory grew ${grownMiB.toFixed(1)} MiB`);
        assert.ok(grownMiB < 32, `factumd anonymous memory grew ${grownMiB.toFixed(1)} MiB`);
      }
    });

    it('unsubscribing ends the call on the server', async () => {
      const settle = async (want) => {
        let now;
        for (let i = 0; i < 100; i++) {
          now = (await metrics(port)).factum_subscriptions;
          if (now === want) break;
          await sleep(50);
        }
        return now;
      };
      assert.equal(await settle(0), 0, 'the earlier tests left no subscription open');
      const subs = [client.subscribeToAll({ fromPosition: END }), client.subscribeToStream(sn('unsub'))];
      assert.equal(await settle(2), 2);
      for (const x of subs) await x.unsubscribe();
      assert.equal(await settle(0), 0);
    });
  });
}

module.exports = { run };
