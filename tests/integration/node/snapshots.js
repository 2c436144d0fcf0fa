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
  });
}

module.exports = { run };
