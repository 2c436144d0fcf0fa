// Snapshots by factum's convention (docs/app-toolkit.md) from the two official
// Node clients, which know nothing of them: a snapshot of stream S is an event
// of `$snapshots-S` with {"$streamVersion": V} in its metadata. Reading S never
// shows it; factumd refuses snapshot appends without a valid $streamVersion
// (InvalidArgument, nothing written) and takes good ones.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

// run(name, lib, connect, option): option is the append expectation's name
// (1.x streamState, 6.x expectedRevision). The two clients cannot share a
// process: snapshots-kurrentdb.test.js and snapshots-eventstore.test.js.
function run(name, lib, connect, option) {
  describe(`snapshots with ${name}`, () => {
    let client;
    before(() => { client = connect(process.env.FACTUMD_URL); });
    after(async () => { await client.dispose(); });
    const s = `acct-${name}-${crypto.randomUUID().slice(0, 8)}`;
    const snap = `$snapshots-${s}`;
    const ev = (type, data, metadata) => lib.jsonEvent({ type, data, metadata });
    const any = { [option]: lib.ANY };
    const read = async (stream) => {
      const out = [];
      for await (const e of client.readStream(stream)) out.push(e.event);
      return out;
    };

    it('a snapshot is written beside the stream, never in it', async () => {
      await client.appendToStream(s, [ev('Opened', {}), ev('Deposited', { amount: 5 }), ev('Deposited', { amount: 7 })], any);
      await client.appendToStream(snap, [ev('AccountSnapshot', { balance: 5 }, { $streamVersion: 1 })], any);
      const events = await read(s);
      assert.deepEqual(events.map((e) => e.type), ['Opened', 'Deposited', 'Deposited']);
      const snaps = await read(snap);
      assert.equal(snaps.length, 1);
      assert.equal(snaps[0].metadata.$streamVersion, 1);
      assert.deepEqual(snaps[0].data, { balance: 5 });
    });

    it('a snapshot without a valid $streamVersion is refused and not written', async () => {
      const bad = [
        [{}, /\$streamVersion/],
        [{ $streamVersion: 3 }, /beyond the stream's last version 2/],
        [{ $streamVersion: '1' }, /\$streamVersion/],
        [{ $streamVersion: -1 }, /\$streamVersion/],
      ];
      for (const [metadata, why] of bad) {
        await assert.rejects(client.appendToStream(snap, [ev('AccountSnapshot', { balance: 0 }, metadata)], any), (e) => {
          assert.match(String(e.message), why);
          return true;
        });
      }
      await assert.rejects(client.appendToStream(`$snapshots-none-${s}`, [ev('AccountSnapshot', {}, { $streamVersion: 0 })], any),
        (e) => { assert.match(String(e.message), /does not exist/); return true; });
      assert.equal((await read(snap)).length, 1);
    });

    // $load/S: one read gives the newest usable snapshot, then S's events after it.
    it('$load/S reads the newest snapshot, then the events after it', async () => {
      const full = async (stream) => {
        const out = [];
        for await (const e of client.readStream(stream)) out.push(e.event);
        return out;
      };
      // the first test left S at versions 0..2 and a snapshot at version 1
      let got = await full(`$load/${s}`);
      assert.deepEqual(got.map((e) => [e.streamId, e.type, Number(e.revision)]),
        [[snap, 'AccountSnapshot', 0], [s, 'Deposited', 2]]);
      assert.deepEqual(got[0].data, { balance: 5 });
      // a newer snapshot at the last version: the snapshot alone
      await client.appendToStream(snap, [ev('AccountSnapshot', { balance: 12 }, { $streamVersion: 2 })], any);
      got = await full(`$load/${s}`);
      assert.deepEqual(got.map((e) => [e.streamId, e.type]), [[snap, 'AccountSnapshot']]);
      assert.deepEqual(got[0].data, { balance: 12 });
      // events after it, over more than one page of the server's reads (64)
      const more = Array.from({ length: 150 }, (_, i) => ev('Deposited', { amount: i }));
      await client.appendToStream(s, more, any);
      got = await full(`$load/${s}`);
      assert.equal(got.length, 151);
      assert.equal(got[0].streamId, snap);
      assert.deepEqual(got.slice(1).map((e) => Number(e.revision)), Array.from({ length: 150 }, (_, i) => i + 3));
      // maxCount counts the snapshot
      const two = [];
      for await (const e of client.readStream(`$load/${s}`, { maxCount: 2 })) two.push(e.event);
      assert.deepEqual(two.map((e) => e.streamId), [snap, s]);
      // a stream without snapshots: the whole stream; a missing one: not found
      const plain = `plain-${name}-${crypto.randomUUID().slice(0, 8)}`;
      await client.appendToStream(plain, [ev('A', {}), ev('B', {})], any);
      assert.deepEqual((await full(`$load/${plain}`)).map((e) => e.type), ['A', 'B']);
      await assert.rejects(full(`$load/missing-${s}`), (e) => {
        assert.match(String(e.constructor.name + ' ' + e.message), /not ?found/i);
        return true;
      });
      // read-only, and not for subscriptions
      await assert.rejects(client.appendToStream(`$load/${s}`, [ev('X', {})], any), (e) => {
        assert.match(String(e.message), /read-only/);
        return true;
      });
      await assert.rejects(full('$load/'), (e) => {
        assert.match(String(e.message), /invalid stream name/);
        return true;
      });
    });

    // $raw/S: the events as stored, past any upcaster.
    it('$raw/S reads the stored bytes; S itself is upcast', async () => {
      const t = `Legacy${name}${crypto.randomUUID().slice(0, 8).replace(/-/g, '')}`;
      const r = `raw-${name}-${crypto.randomUUID().slice(0, 8)}`;
      await client.appendToStream(r, [ev(t, { value: 3 })], any);
      const doc = { eventType: t, fromVersion: 1, toVersion: 2, steps: [{ op: 'rename', from: 'value', to: 'amount' }] };
      await client.appendToStream('$upcasters', [lib.jsonEvent({ type: '$upcaster-set', data: doc })], any);
      const up = [];
      for await (const e of client.readStream(r)) up.push(e.event);
      assert.deepEqual(up[0].data, { amount: 3 });
      assert.equal(up[0].metadata.$schemaVersion, 2);
      const raw = [];
      for await (const e of client.readStream(`$raw/${r}`)) raw.push(e.event);
      assert.deepEqual(raw[0].data, { value: 3 });
      assert.equal(raw[0].streamId, r);
      // $raw/$all as well
      let found = null;
      for await (const e of client.readStream('$raw/$all', { direction: lib.BACKWARDS, fromRevision: lib.END, maxCount: 50 }))
        if (e.event && e.event.streamId === r) found = e.event;
      assert.ok(found, 'the event in $raw/$all');
      assert.deepEqual(found.data, { value: 3 });
    });
  });
}

module.exports = { run };
