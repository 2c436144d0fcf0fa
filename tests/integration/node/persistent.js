// Persistent subscriptions (consumer groups) against a real factumd with an
// official Node client: the management calls and their errors, competing
// consumers under each strategy, acks and nacks (retry up to the max retry
// count, then parked; skip; park), message timeouts, the parked stream and
// its replay, max subscriber count, checkpoints, dropping consumers on
// delete, $all groups with filters, and restarting the subsystem. Each
// client's entry file calls run() with its library.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// A consumer of a group: records what it gets, acts on each event with
// onEvent (default: ack), and can be stopped.
function consume(sub, onEvent) {
  const st = { sub, events: [], error: null, confirmed: false };
  sub.on('confirmation', () => { st.confirmed = true; });
  sub.on('error', (e) => { st.error = e; });
  sub.on('data', async (e) => {
    st.events.push(e);
    try {
      if (onEvent) await onEvent(e, sub, st);
      else await sub.ack(e);
    } catch (err) {
      st.error = err;
    }
  });
  return st;
}

function run(lib, makeClient, features) {
  const { jsonEvent, START, END, persistentSubscriptionToStreamSettingsFromDefaults: streamSettings,
    persistentSubscriptionToAllSettingsFromDefaults: allSettings } = lib;
  const url = process.env.FACTUMD_URL;
  features = { ...features, metricsPort: Number(process.env.FACTUMD_PORT || 0) };
  const tag = features.name + 'ps-' + crypto.randomUUID().slice(0, 8);
  const sn = (s) => `${tag}-${s}`;
  const ev = (type, data) => jsonEvent({ type, data });
  const batch = (n, from = 0, type = 'E') => Array.from({ length: n }, (_, i) => ev(type, { i: from + i }));
  let client;
  const open = [];
  const sub = (stream, group, opts) => {
    const s = stream === '$all'
      ? client.subscribeToPersistentSubscriptionToAll(group, opts)
      : client.subscribeToPersistentSubscriptionToStream(stream, group, opts);
    open.push(s);
    return s;
  };

  before(() => { client = makeClient(url); });
  after(async () => {
    for (const s of open) await s.unsubscribe().catch(() => {});
    await client.dispose();
  });

  describe('persistent subscriptions', () => {
    it('creates, describes, lists, updates and deletes groups, with the errors of each', async () => {
      const s = sn('mgmt');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, maxRetryCount: 4 }));
      await assert.rejects(client.createPersistentSubscriptionToStream(s, 'g', streamSettings()),
        (e) => e.constructor.name === 'PersistentSubscriptionExistsError');
      const info = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
      assert.equal(info.eventSource, s);
      assert.equal(info.groupName, 'g');
      assert.equal(info.settings.startFrom, START);
      assert.equal(info.settings.maxRetryCount, 4);
      assert.equal(info.settings.consumerStrategyName, 'RoundRobin');
      assert.equal(info.settings.messageTimeout, 30000);
      assert.equal(info.settings.checkPointAfter, 2000);
      assert.equal(info.settings.historyBufferSize, 500);
      await client.createPersistentSubscriptionToAll(sn('allgrp'), allSettings({ startFrom: END }),
        { filter: lib.streamNameFilter({ prefixes: [sn('x')] }) });
      const ai = await client.getPersistentSubscriptionToAllInfo(sn('allgrp'));
      assert.equal(ai.eventSource, '$all');
      assert.equal(ai.settings.startFrom, END);
      const mine = (await client.listAllPersistentSubscriptions()).filter((x) => x.groupName === 'g' || x.groupName === sn('allgrp'));
      assert.ok(mine.some((x) => x.eventSource === s) && mine.some((x) => x.eventSource === '$all'));
      const onStream = await client.listPersistentSubscriptionsToStream(s);
      assert.deepEqual(onStream.map((x) => x.groupName), ['g']);
      assert.ok((await client.listPersistentSubscriptionsToAll()).some((x) => x.groupName === sn('allgrp')));
      await client.updatePersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, maxRetryCount: 7, consumerStrategyName: lib.DISPATCH_TO_SINGLE }));
      const upd = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
      assert.equal(upd.settings.maxRetryCount, 7);
      assert.equal(upd.settings.consumerStrategyName, 'DispatchToSingle');
      await client.updatePersistentSubscriptionToAll(sn('allgrp'), allSettings({ startFrom: END, maxRetryCount: 2 }));
      assert.equal((await client.getPersistentSubscriptionToAllInfo(sn('allgrp'))).settings.maxRetryCount, 2);
      await assert.rejects(client.updatePersistentSubscriptionToStream(s, 'nope', streamSettings()),
        (e) => e.constructor.name === 'PersistentSubscriptionDoesNotExistError');
      await client.deletePersistentSubscriptionToStream(s, 'g');
      await client.deletePersistentSubscriptionToAll(sn('allgrp'));
      await assert.rejects(client.getPersistentSubscriptionToStreamInfo(s, 'g'),
        (e) => e.constructor.name === 'PersistentSubscriptionDoesNotExistError');
      await assert.rejects(client.deletePersistentSubscriptionToStream(s, 'g'),
        (e) => e.constructor.name === 'PersistentSubscriptionDoesNotExistError');
      const gone = follow_error(sub(s, 'g'));
      await until('subscribe to a missing group fails', () => gone.error);
      assert.equal(gone.error.constructor.name, 'PersistentSubscriptionDoesNotExistError');
    });

    it('shares a stream among RoundRobin consumers: disjoint events, all of them', async () => {
      const s = sn('rr');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, extraStatistics: true }));
      const a = consume(sub(s, 'g', { bufferSize: 5 }));
      const b = consume(sub(s, 'g', { bufferSize: 5 }));
      await until('both consumers confirmed', () => a.confirmed && b.confirmed);
      for (let k = 0; k < 4; k++) await client.appendToStream(s, batch(10, k * 10));
      await until('40 events delivered', () => a.events.length + b.events.length >= 40);
      await sleep(100);
      const ia = a.events.map((e) => e.event.data.i), ib = b.events.map((e) => e.event.data.i);
      assert.equal(ia.length + ib.length, 40, 'each event once');
      assert.deepEqual([...ia, ...ib].sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i));
      assert.ok(ia.length >= 10 && ib.length >= 10, `round robin: ${ia.length} / ${ib.length}`);
      assert.equal(a.error, null);
      const info = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
      assert.equal(info.connections.length, 2);
      assert.equal(info.stats.totalItems, 40n);
      assert.equal(info.settings.extraStatistics, true);
      const acked = await until('acks counted', async () => {
        const i = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
        const n = i.connections.reduce((t, c) => t + (c.extraStatistics ? c.extraStatistics.get('ackedcount') : 0n), 0n);
        return n === 40n ? i : null;
      });
      assert.ok(acked.connections.every((c) => c.extraStatistics.has('acklatencymeanus') && c.availableSlots === 5));
    });

    it('DispatchToSingle gives everything to the first consumer while it has room', async () => {
      const s = sn('single');
      await client.createPersistentSubscriptionToStream(s, 'g',
        streamSettings({ startFrom: START, consumerStrategyName: lib.DISPATCH_TO_SINGLE }));
      const a = consume(sub(s, 'g', { bufferSize: 100 }));
      await until('first confirmed', () => a.confirmed);
      const b = consume(sub(s, 'g', { bufferSize: 100 }));
      await until('second confirmed', () => b.confirmed);
      await client.appendToStream(s, batch(30));
      await until('30 delivered', () => a.events.length + b.events.length >= 30);
      await sleep(100);
      assert.equal(a.events.length, 30);
      assert.equal(b.events.length, 0);
    });

    it('Pinned keeps each stream of a filtered $all group on one consumer', async () => {
      const pre = sn('pin');
      const g = sn('pinned');
      await client.createPersistentSubscriptionToAll(g, allSettings({ startFrom: END, consumerStrategyName: lib.PINNED }),
        { filter: lib.streamNameFilter({ prefixes: [pre] }) });
      const cs = [consume(sub('$all', g, { bufferSize: 50 })), consume(sub('$all', g, { bufferSize: 50 }))];
      await until('confirmed', () => cs.every((c) => c.confirmed));
      await client.appendToStream(sn('other'), batch(5)); // filtered out
      for (let k = 0; k < 8; k++) await client.appendToStream(`${pre}-${k}`, batch(5));
      await until('40 delivered', () => cs[0].events.length + cs[1].events.length >= 40);
      await sleep(100);
      assert.equal(cs[0].events.length + cs[1].events.length, 40);
      for (let k = 0; k < 8; k++) {
        const owners = cs.map((c) => c.events.filter((e) => e.event.streamId === `${pre}-${k}`).length);
        assert.ok(owners.includes(0) && owners.includes(5), `stream ${k}: ${owners}`);
      }
      assert.ok(cs.every((c) => c.events.every((e) => e.event.streamId.startsWith(pre))));
    });

    if (lib.PINNED_BY_CORRELATION) {
      it('PinnedByCorrelation keeps each $correlationId on one consumer', async () => {
        const s = sn('corr');
        await client.createPersistentSubscriptionToStream(s, 'g',
          streamSettings({ startFrom: START, consumerStrategyName: lib.PINNED_BY_CORRELATION }));
        assert.equal((await client.getPersistentSubscriptionToStreamInfo(s, 'g')).settings.consumerStrategyName, 'PinnedByCorrelation');
        const cs = [consume(sub(s, 'g', { bufferSize: 50 })), consume(sub(s, 'g', { bufferSize: 50 }))];
        await until('confirmed', () => cs.every((c) => c.confirmed));
        const evs = [];
        for (let i = 0; i < 40; i++)
          evs.push(jsonEvent({ type: 'C', data: { i }, metadata: { $correlationId: `order-${i % 6}` } }));
        await client.appendToStream(s, evs);
        await until('40 delivered', () => cs[0].events.length + cs[1].events.length >= 40);
        for (let k = 0; k < 6; k++) {
          const owners = cs.map((c) => c.events.filter((e) => e.event.data.i % 6 === k).length);
          assert.ok(owners.includes(0), `correlation order-${k} went to both: ${owners}`);
        }
      });
    }

    it('resolves links for a group with resolveLinkTos, and acks by the link', async () => {
      const target = sn('ltarget');
      const links = sn('llinks');
      await client.appendToStream(target, batch(3));
      await client.appendToStream(links, [0, 1, 2].map((r) => lib.binaryEvent({ type: '$>', data: Buffer.from(`${r}@${target}`) })));
      await client.createPersistentSubscriptionToStream(links, 'g', streamSettings({ startFrom: START, resolveLinkTos: true }));
      const c = consume(sub(links, 'g'));
      await until('3 delivered', () => c.events.length >= 3);
      assert.deepEqual(c.events.map((e) => e.event.data.i), [0, 1, 2]);
      assert.ok(c.events.every((e) => e.link && e.link.streamId === links && e.event.streamId === target));
      await until('acked (nothing in flight)', async () =>
        (await client.getPersistentSubscriptionToStreamInfo(links, 'g')).stats.totalInFlightMessages === 0);
    });

    it('retries a nacked event up to the max retry count, then parks it; skip and park act at once', async () => {
      const s = sn('nack');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, maxRetryCount: 2 }));
      const seen = [];
      const c = consume(sub(s, 'g'), async (e, su) => {
        seen.push([e.event.data.i, e.retryCount]);
        if (e.event.data.i === 0) await su.nack('retry', 'again', e);
        else if (e.event.data.i === 1) await su.nack('skip', 'skip it', e);
        else if (e.event.data.i === 2) await su.nack('park', 'poison', e);
        else await su.ack(e);
      });
      await client.appendToStream(s, batch(4));
      await until('retries done and parked', async () =>
        (await client.getPersistentSubscriptionToStreamInfo(s, 'g')).stats.parkedMessageCount === 2n);
      if (features.metricsPort) {
        // /metrics needs an authenticated user on a secure server (an insecure one ignores the header)
        const body = await (await fetch(`${process.env.FACTUMD_HTTP || `http://127.0.0.1:${features.metricsPort}`}/metrics`,
          { headers: { authorization: 'Basic ' + Buffer.from('admin:changeit').toString('base64') } })).text();
        const line = body.split('\n').find((l) => l.startsWith(`factum_persistent_subscription_parked_messages{stream="${s}",group="g"}`));
        assert.ok(line && line.endsWith(' 2'), `parked count in /metrics: ${line}`);
        assert.ok(body.includes(`factum_persistent_subscription_lag_events{stream="${s}",group="g"}`));
      }
      const zero = seen.filter(([i]) => i === 0).map(([, r]) => r);
      assert.deepEqual(zero, [0, 1, 2], 'event 0 delivered 1 + maxRetryCount times with its retry count');
      assert.equal(seen.filter(([i]) => i === 1).length, 1, 'skipped: not redelivered');
      assert.equal(seen.filter(([i]) => i === 2).length, 1, 'parked at once');
      assert.equal(seen.filter(([i]) => i === 3).length, 1);
      // The parked stream holds links to the two parked events.
      const parked = [];
      for await (const e of client.readStream(`$persistentsubscription-${s}::g-parked`, { resolveLinkTos: true })) parked.push(e);
      assert.deepEqual(parked.map((e) => e.event.data.i).sort(), [0, 2]);
      assert.ok(parked.every((e) => e.link && e.link.type === '$>'));
      await c.sub.unsubscribe();
      // Replay: both come back (to a new consumer, which acks them); the parked count drops to 0.
      const r = consume(sub(s, 'g'));
      await until('confirmed', () => r.confirmed);
      await client.replayParkedMessagesToStream(s, 'g');
      await until('replayed', () => r.events.length >= 2);
      assert.deepEqual(r.events.map((e) => e.event.data.i).sort(), [0, 2]);
      await until('parked stream emptied', async () =>
        (await client.getPersistentSubscriptionToStreamInfo(s, 'g')).stats.parkedMessageCount === 0n);
    });

    it('replays parked messages up to stop-at', async () => {
      const s = sn('stopat');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START }));
      const c = consume(sub(s, 'g'), (e, su) => su.nack('park', 'all of them', e));
      await client.appendToStream(s, batch(5));
      await until('5 parked', async () => (await client.getPersistentSubscriptionToStreamInfo(s, 'g')).stats.parkedMessageCount === 5n);
      await c.sub.unsubscribe();
      const r = consume(sub(s, 'g'));
      await until('confirmed', () => r.confirmed);
      await client.replayParkedMessagesToStream(s, 'g', { stopAt: 2 });
      await until('2 replayed', () => r.events.length >= 2);
      await sleep(300);
      assert.equal(r.events.length, 2);
      await until('3 still parked', async () => (await client.getPersistentSubscriptionToStreamInfo(s, 'g')).stats.parkedMessageCount === 3n);
    });

    it('redelivers an event not acked within the message timeout, with its retry count', async () => {
      const s = sn('timeout');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, messageTimeout: 300 }));
      const got = [];
      const c = consume(sub(s, 'g'), async (e, su) => {
        got.push(e.retryCount);
        if (e.retryCount > 0) await su.ack(e); // the first delivery is left to time out
      });
      await client.appendToStream(s, batch(1));
      await until('redelivered', () => got.length >= 2);
      assert.deepEqual(got.slice(0, 2), [0, 1]);
      assert.equal(c.error, null);
    });

    it('works with the smallest buffers (read batch 1, live and history buffers of 2)', async () => {
      const s = sn('tiny');
      await client.appendToStream(s, batch(7));
      await client.createPersistentSubscriptionToStream(s, 'g',
        streamSettings({ startFrom: START, readBatchSize: 1, liveBufferSize: 2, historyBufferSize: 2 }));
      const c = consume(sub(s, 'g', { bufferSize: 1 }));
      await until('7 delivered through a lane of 4', () => c.events.length >= 7);
      await client.appendToStream(s, batch(3, 7));
      await until('and 3 live', () => c.events.length >= 10);
      assert.deepEqual(c.events.map((e) => e.event.data.i), Array.from({ length: 10 }, (_, i) => i));
      assert.equal((await client.getPersistentSubscriptionToStreamInfo(s, 'g')).status, 'Live');
    });

    it('refuses consumers beyond the max subscriber count', async () => {
      const s = sn('max');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START, maxSubscriberCount: 1 }));
      const a = consume(sub(s, 'g'));
      await until('first confirmed', () => a.confirmed);
      const b = follow_error(sub(s, 'g'));
      await until('second refused', () => b.error);
      assert.equal(b.error.constructor.name, 'PersistentSubscriptionMaximumSubscribersReachedError');
    });

    it('checkpoints acked events, and drops consumers when the group is deleted', async () => {
      const s = sn('ckpt');
      await client.createPersistentSubscriptionToStream(s, 'g',
        streamSettings({ startFrom: START, checkPointAfter: 100, checkPointLowerBound: 1, checkPointUpperBound: 5 }));
      const c = consume(sub(s, 'g'));
      await client.appendToStream(s, batch(12));
      await until('all acked', () => c.events.length >= 12);
      const info = await until('checkpoint at the last event', async () => {
        const i = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
        return i.stats.lastCheckpointedEventRevision === 11n ? i : null;
      });
      assert.equal(info.stats.lastKnownEventRevision, 11n);
      const ck = [];
      for await (const e of client.readStream(`$persistentsubscription-${s}::g-checkpoint`, { direction: lib.BACKWARDS, fromRevision: END, maxCount: 1 })) ck.push(e);
      assert.equal(ck[0].event.type, '$SubscriptionCheckpoint');
      assert.equal(ck[0].event.data, 11);
      // Only the last checkpoint is kept readable ($maxCount 1, as KurrentDB), so a scavenge takes the others.
      const cm = await client.getStreamMetadata(`$persistentsubscription-${s}::g-checkpoint`);
      assert.equal(cm.metadata && cm.metadata.maxCount, 1);
      const all = [];
      for await (const e of client.readStream(`$persistentsubscription-${s}::g-checkpoint`)) all.push(e);
      assert.equal(all.length, 1);
      await client.deletePersistentSubscriptionToStream(s, 'g');
      await until('the consumer is dropped', () => c.error);
      assert.equal(c.error.constructor.name, 'PersistentSubscriptionDroppedError');
    });

    it('accepts a checkpoint lower bound above the upper bound, as KurrentDB: the upper bound decides', async () => {
      // The clients' defaults (lower bound 10) with checkPointUpperBound: 1, as
      // the Node client's own tests create groups.
      const s = sn('bounds');
      await client.createPersistentSubscriptionToStream(s, 'g',
        streamSettings({ startFrom: START, checkPointAfter: 60000, checkPointUpperBound: 1 }));
      const info = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
      assert.equal(info.settings.checkPointLowerBound, 10);
      assert.equal(info.settings.checkPointUpperBound, 1);
      const c = consume(sub(s, 'g'));
      await client.appendToStream(s, batch(3));
      await until('all delivered', () => c.events.length >= 3);
      // Fewer than the lower bound are done and checkPointAfter is a minute
      // away: only the upper bound can have written this checkpoint.
      await until('checkpoint at the last event', async () =>
        (await client.getPersistentSubscriptionToStreamInfo(s, 'g')).stats.lastCheckpointedEventRevision === 2n);
      assert.equal(c.error, null);
      await client.updatePersistentSubscriptionToStream(s, 'g',
        streamSettings({ startFrom: START, checkPointLowerBound: 50, checkPointUpperBound: 2 }));
      const upd = await client.getPersistentSubscriptionToStreamInfo(s, 'g');
      assert.equal(upd.settings.checkPointLowerBound, 50);
      assert.equal(upd.settings.checkPointUpperBound, 2);
      await client.createPersistentSubscriptionToAll(sn('bounds-all'), allSettings({ startFrom: END, checkPointUpperBound: 1 }),
        { filter: lib.streamNameFilter({ prefixes: [sn('bounds')] }) });
      assert.equal((await client.getPersistentSubscriptionToAllInfo(sn('bounds-all'))).settings.checkPointUpperBound, 1);
      await client.deletePersistentSubscriptionToAll(sn('bounds-all'));
      await client.deletePersistentSubscriptionToStream(s, 'g');
    });

    it('restarts the subsystem: groups survive, consumers reconnect', async () => {
      const s = sn('restart');
      await client.createPersistentSubscriptionToStream(s, 'g', streamSettings({ startFrom: START }));
      await client.restartPersistentSubscriptionSubsystem();
      const c = consume(sub(s, 'g'));
      await client.appendToStream(s, batch(3));
      await until('delivered after a restart', () => c.events.length >= 3);
    });
  });

  function follow_error(s) {
    const st = { error: null };
    s.on('error', (e) => { st.error = e; });
    s.on('data', () => {});
    return st;
  }
}

module.exports = { run };
