// The Streams scenarios of the integration suite, run against a real factumd
// with an official Node client (@kurrent/kurrentdb-client 1.x, whose reads go
// through its Rust bridge, or @eventstore/db-client 6.x, pure grpc-js). The
// two cannot share one process, so each client has its own entry file that
// calls run() with its library. FACTUMD_URL names the server.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

function run(lib, makeClient, features) {
  const { jsonEvent, binaryEvent, FORWARDS, BACKWARDS, START, END, ANY, NO_STREAM, STREAM_EXISTS } = lib;
  const url = process.env.FACTUMD_URL;
  const tag = features.name + '-' + crypto.randomUUID().slice(0, 8);
  const sn = (s) => `${tag}-${s}`;
  let client;

  async function collect(iter) {
    const out = [];
    for await (const e of iter) out.push(e);
    return out;
  }
  const read = (stream, opts = {}) => collect(client.readStream(stream, opts));
  const ev = (type, data) => jsonEvent({ type, data });
  // 1.x names the append expectation streamState, 6.x expectedRevision.
  const exp = (v) => ({ [features.appendOption]: v });
  // ... and the fields of WrongExpectedVersionError expectedState/actualState (6.x: ...Version).
  const expectedOf = (e) => (e.expectedState !== undefined ? e.expectedState : e.expectedVersion);
  const actualOf = (e) => (e.actualState !== undefined ? e.actualState : e.actualVersion);

  before(() => { client = makeClient(url); });
  after(async () => { await client.dispose(); });

  describe('appends and expectations', () => {
    it('appends to a new stream with no_stream and reports revision and position', async () => {
      const s = sn('new');
      const r = await client.appendToStream(s, [ev('Opened', { n: 1 }), ev('Deposited', { n: 2 })], exp(NO_STREAM));
      assert.equal(r.success, true);
      assert.equal(r.nextExpectedRevision, 1n);
      assert.ok(r.position.commit > 0n);
      assert.equal(r.position.commit, r.position.prepare);
      const evs = await read(s);
      assert.deepEqual(evs.map((e) => e.event.type), ['Opened', 'Deposited']);
      assert.deepEqual(evs[1].event.data, { n: 2 });
      assert.equal(evs[1].event.revision, 1n);
      assert.equal(evs[1].event.streamId, s);
      assert.ok(evs[1].event.created instanceof Date || typeof evs[1].event.created === 'number');
    });

    it('rejects a wrong exact revision with the actual one', async () => {
      const s = sn('wev');
      await client.appendToStream(s, [ev('A', {}), ev('B', {})]);
      await assert.rejects(client.appendToStream(s, [ev('C', {})], exp(0n)), (e) => {
        assert.equal(e.constructor.name, 'WrongExpectedVersionError');
        assert.equal(e.streamName, s);
        assert.equal(expectedOf(e), 0n);
        assert.equal(actualOf(e), 1n);
        return true;
      });
      const r = await client.appendToStream(s, [ev('C', {})], exp(1n));
      assert.equal(r.nextExpectedRevision, 2n);
    });

    it('rejects no_stream on an existing stream and stream_exists on a missing one', async () => {
      const s = sn('exists');
      await client.appendToStream(s, [ev('A', {})]);
      await assert.rejects(client.appendToStream(s, [ev('B', {})], exp(NO_STREAM)), (e) => {
        assert.equal(e.constructor.name, 'WrongExpectedVersionError');
        assert.equal(actualOf(e), 0n);
        return true;
      });
      await assert.rejects(client.appendToStream(sn('missing'), [ev('B', {})], exp(STREAM_EXISTS)),
        (e) => e.constructor.name === 'WrongExpectedVersionError');
      const r = await client.appendToStream(s, [ev('B', {})], exp(STREAM_EXISTS));
      assert.equal(r.nextExpectedRevision, 1n);
      const r2 = await client.appendToStream(s, [ev('C', {})], exp(ANY));
      assert.equal(r2.nextExpectedRevision, 2n);
    });

    it('treats a re-sent append (same event ids) as done, writing nothing', async () => {
      const s = sn('idem');
      const events = [jsonEvent({ id: crypto.randomUUID(), type: 'A', data: {} }), jsonEvent({ id: crypto.randomUUID(), type: 'B', data: {} })];
      const r1 = await client.appendToStream(s, events, exp(NO_STREAM));
      const r2 = await client.appendToStream(s, events, exp(NO_STREAM));
      assert.equal(r2.success, true);
      assert.equal(r2.nextExpectedRevision, r1.nextExpectedRevision);
      const r3 = await client.appendToStream(s, events, exp(ANY));
      assert.equal(r3.nextExpectedRevision, 1n);
      assert.equal((await read(s)).length, 2);
    });

    it('appends 1,000 events in one append', async () => {
      const s = sn('thousand');
      const events = Array.from({ length: 1000 }, (_, i) => ev('Tick', { i }));
      const r = await client.appendToStream(s, events, exp(NO_STREAM));
      assert.equal(r.nextExpectedRevision, 999n);
      const evs = await read(s, { maxCount: 2000 });
      assert.equal(evs.length, 1000);
      evs.forEach((e, i) => assert.equal(e.event.data.i, i));
    });

    it('stores a 1 MiB event intact', async () => {
      const s = sn('big');
      const blob = crypto.randomBytes(1 << 20);
      await client.appendToStream(s, [binaryEvent({ type: 'Blob', data: blob })]);
      const evs = await read(s);
      assert.equal(evs.length, 1);
      assert.ok(Buffer.from(evs[0].event.data).equals(blob));
      assert.equal(evs[0].event.isJson, false);
    });

    it('keeps unicode and long stream names and event types', async () => {
      const s = sn('Überweisung-账户-🚀-' + 'x'.repeat(900));
      await client.appendToStream(s, [jsonEvent({ type: 'Geld€ingang', data: { note: 'naïve café 😀' }, metadata: { who: 'Zoë' } })]);
      const evs = await read(s);
      assert.equal(evs[0].event.streamId, s);
      assert.equal(evs[0].event.type, 'Geld€ingang');
      assert.equal(evs[0].event.data.note, 'naïve café 😀');
      assert.deepEqual(evs[0].event.metadata, { who: 'Zoë' });
    });

    it('lets exactly one of 20 racing appenders win each version, without gaps', async () => {
      const s = sn('race');
      await client.appendToStream(s, [ev('Start', {})], exp(NO_STREAM));
      const wins = [];
      await Promise.all(Array.from({ length: 20 }, async (_, w) => {
        for (let k = 0; k < 10; k++) {
          const cur = (await read(s, { direction: BACKWARDS, fromRevision: END, maxCount: 1 }))[0].event.revision;
          try {
            await client.appendToStream(s, [ev('Step', { w, k })], exp(cur));
            wins.push(cur + 1n);
          } catch (e) {
            assert.equal(e.constructor.name, 'WrongExpectedVersionError');
          }
        }
      }));
      const evs = await read(s, { maxCount: 1000 });
      assert.equal(evs.length, wins.length + 1);
      evs.forEach((e, i) => assert.equal(e.event.revision, BigInt(i)));
      assert.equal(new Set(wins.map(String)).size, wins.length); // each version won once
    });
  });

  describe('reads', () => {
    const s = sn('reads');
    before(async () => {
      await client.appendToStream(s, Array.from({ length: 10 }, (_, i) => ev('E', { i })), exp(NO_STREAM));
    });
    it('reads forward from a revision with a count', async () => {
      const evs = await read(s, { direction: FORWARDS, fromRevision: 3n, maxCount: 4 });
      assert.deepEqual(evs.map((e) => e.event.revision), [3n, 4n, 5n, 6n]);
    });
    it('reads backward from the end and from a revision', async () => {
      assert.deepEqual((await read(s, { direction: BACKWARDS, fromRevision: END, maxCount: 3 })).map((e) => e.event.revision), [9n, 8n, 7n]);
      assert.deepEqual((await read(s, { direction: BACKWARDS, fromRevision: 2n })).map((e) => e.event.revision), [2n, 1n, 0n]);
    });
    it('reads forward from the start by default', async () => {
      assert.equal((await read(s)).length, 10);
      assert.equal((await read(s, { fromRevision: START, maxCount: 100 })).length, 10);
    });
    if (features.edgeReads) {
      // (The 1.x client's Rust bridge rewrites these two combinations itself.)
      it('reads nothing forward from the end, and the first event backward from the start', async () => {
        assert.equal((await read(s, { direction: FORWARDS, fromRevision: END })).length, 0);
        assert.deepEqual((await read(s, { direction: BACKWARDS, fromRevision: START })).map((e) => e.event.revision), [0n]);
      });
    }
    it('reports a missing stream as StreamNotFoundError', async () => {
      await assert.rejects(read(sn('nothing-here')), (e) => e.constructor.name === 'StreamNotFoundError');
    });
    it('reads with link resolution asked for (no links: the same events)', async () => {
      assert.equal((await read(s, { resolveLinkTos: true })).length, 10);
    });
    it('reads $all forward and backward, in commit order', async () => {
      const fwd = await collect(client.readAll({ direction: FORWARDS, fromPosition: START, maxCount: 100000 }));
      const mine = fwd.filter((e) => e.event && e.event.streamId === s);
      assert.deepEqual(mine.map((e) => e.event.data.i), [...Array(10).keys()]);
      for (let i = 1; i < fwd.length; i++) assert.ok(fwd[i].commitPosition > fwd[i - 1].commitPosition);
      const back = await collect(client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 5 }));
      assert.equal(back.length, 5);
      for (let i = 1; i < back.length; i++) assert.ok(back[i].commitPosition < back[i - 1].commitPosition);
      // From a position: forwards includes it, backwards starts before it.
      const p = mine[4].commitPosition;
      const from = await collect(client.readAll({ direction: FORWARDS, fromPosition: { commit: p, prepare: p }, maxCount: 1 }));
      assert.equal(from[0].commitPosition, p);
      const before = await collect(client.readAll({ direction: BACKWARDS, fromPosition: { commit: p, prepare: p }, maxCount: 1 }));
      assert.equal(before[0].commitPosition, mine[3].commitPosition);
    });
    if (features.filters) {
      it('filters $all by stream prefix, stream regex, event type prefix and regex, and system events', async () => {
        const fs = sn('flt');
        await client.appendToStream(fs + '-a', [ev('OrderPlaced', {}), ev('OrderShipped', {})]);
        await client.appendToStream(fs + '-b', [ev('MoneyMoved', {})]);
        const q = (filter) => collect(client.readAll({ fromPosition: START, maxCount: 100000, filter }));
        const byPrefix = await q(lib.streamNameFilter({ prefixes: [fs + '-a'] }));
        assert.deepEqual(byPrefix.map((e) => e.event.type), ['OrderPlaced', 'OrderShipped']);
        const byRegex = await q(lib.streamNameFilter({ regex: `^${fs}-(a|b)$` }));
        assert.equal(byRegex.length, 3);
        const byType = (await q(lib.eventTypeFilter({ prefixes: ['Order'] }))).filter((e) => e.event.streamId.startsWith(fs));
        assert.equal(byType.length, 2);
        const byTypeRe = (await q(lib.eventTypeFilter({ regex: '^Money' }))).filter((e) => e.event.streamId.startsWith(fs));
        assert.deepEqual(byTypeRe.map((e) => e.event.type), ['MoneyMoved']);
        const noSystem = await q(lib.excludeSystemEvents());
        assert.ok(noSystem.every((e) => !e.event.type.startsWith('$')));
      });
      it('filters with the regular expressions KurrentDB users write, and fails a pathological one clearly', async () => {
        const fs = sn('rx');
        await client.appendToStream(fs + '-42', [ev('AccountOpened', {})]);
        await client.appendToStream(fs + '-x1', [ev('AccountOpened', {})]);
        const q = (filter) => collect(client.readAll({ fromPosition: START, maxCount: 100000, filter }));
        const esc = fs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const digits = await q(lib.streamNameFilter({ regex: `^${esc}-\\d+$` }));
        assert.deepEqual(digits.map((e) => e.event.streamId), [fs + '-42']);
        const ci = await q(lib.streamNameFilter({ regex: `(?i)^${esc.toUpperCase()}-[A-Z]\\d$` }));
        assert.deepEqual(ci.map((e) => e.event.streamId), [fs + '-x1']);
        // Catastrophic backtracking hits the match limit: the read fails, the server carries on.
        await client.appendToStream('a'.repeat(60) + '-' + fs, [ev('E', {})]);
        await assert.rejects(q(lib.streamNameFilter({ regex: '^(\\w+\\w?)+$' })), /match limits/);
        assert.equal((await q(lib.streamNameFilter({ prefixes: [fs + '-4'] }))).length, 1);
      });
    }
  });

  describe('metadata, soft delete and tombstone', () => {
    it('honours $maxCount and truncate-before on reads, and returns what was set', async () => {
      const s = sn('meta');
      await client.appendToStream(s, Array.from({ length: 6 }, (_, i) => ev('E', { i })));
      await client.setStreamMetadata(s, { maxCount: 2, custom: 'kept' });
      assert.deepEqual((await read(s)).map((e) => e.event.revision), [4n, 5n]);
      const m = await client.getStreamMetadata(s);
      assert.equal(m.metadata.maxCount, 2);
      assert.equal(m.metadata.custom, 'kept');
      await client.setStreamMetadata(s, { truncateBefore: 3 });
      assert.deepEqual((await read(s)).map((e) => e.event.revision), [3n, 4n, 5n]);
    });

    it('honours $maxAge', async () => {
      const s = sn('age');
      await client.appendToStream(s, [ev('Old', {})]);
      await client.setStreamMetadata(s, { maxAge: 1 });
      assert.equal((await read(s)).length, 1);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal((await read(s)).length, 0);
    });

    it('soft delete hides the stream; appending again continues the numbering', async () => {
      const s = sn('soft');
      await client.appendToStream(s, [ev('A', {}), ev('B', {})]);
      await client.deleteStream(s);
      await assert.rejects(read(s), (e) => e.constructor.name === 'StreamNotFoundError');
      const r = await client.appendToStream(s, [ev('C', {})]);
      assert.equal(r.nextExpectedRevision, 2n);
      const evs = await read(s);
      assert.deepEqual(evs.map((e) => [e.event.revision, e.event.type]), [[2n, 'C']]);
    });

    it('delete with a wrong expected revision fails with its fields', async () => {
      const s = sn('delwev');
      await client.appendToStream(s, [ev('A', {})]);
      await assert.rejects(client.deleteStream(s, { expectedRevision: 5n }), (e) => {
        assert.equal(e.constructor.name, 'WrongExpectedVersionError');
        assert.equal(e.streamName, s);
        return true;
      });
    });

    it('tombstone deletes for ever: reads and appends fail with StreamDeletedError', async () => {
      const s = sn('tomb');
      await client.appendToStream(s, [ev('A', {})]);
      const r = await client.tombstoneStream(s);
      assert.ok(r.position.commit > 0n);
      await assert.rejects(read(s), (e) => e.constructor.name === 'StreamDeletedError');
      await assert.rejects(client.appendToStream(s, [ev('B', {})]), (e) => e.constructor.name === 'StreamDeletedError');
      await assert.rejects(client.tombstoneStream(s), (e) => e.constructor.name === 'StreamDeletedError');
    });
  });

  if (features.multiStream) {
    describe('multi-stream append (v2 AppendSession)', () => {
      it('writes several streams atomically, or none of them', async () => {
        const a = sn('ms-a'), b = sn('ms-b');
        const r = await client.multiStreamAppend([
          { streamName: a, expectedState: NO_STREAM, events: [ev('A1', {}), ev('A2', {})] },
          { streamName: b, expectedState: ANY, events: [ev('B1', {})], },
        ]);
        assert.deepEqual(r.responses.map((x) => [x.streamName, x.revision]), [[a, 1n], [b, 0n]]);
        await assert.rejects(client.multiStreamAppend([
          { streamName: a, expectedState: 5n, events: [ev('A3', {})] },
          { streamName: b, expectedState: ANY, events: [ev('B2', {})] },
        ]));
        assert.equal((await read(b)).length, 1); // nothing of the failed append
      });
    });
  }
}

module.exports = { run };
