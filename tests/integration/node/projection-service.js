// The Projections service of factumd through an official Node client, on
// the five system projections (what runs without the JavaScript engine):
// listing them, every field of their statistics, enable, disable and reset
// with what `$ce-<category>` holds afterwards (read with resolved links),
// state and result, RestartSubsystem, and the errors the clients map (an
// unknown name is a NotFoundError, an existing one an UnknownError).
// Each client's entry file (projection-service-*.test.js) calls run().
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { sleep, until, startServer, stopServer, readAll, rejectsWith } = require('./projserver');

const SYSTEM = ['$streams', '$stream_by_category', '$by_category', '$by_event_type', '$by_correlation_id'];

function run(lib, makeClient, features) {
  const { jsonEvent } = lib;
  const cat = features.name + 'ord' + crypto.randomUUID().slice(0, 8).replace(/-/g, '');
  const stream = (i) => `${cat}-${i}`;
  const type = 'Placed';
  let srv, client, appended = 0;

  const append = async (i, n = 1) => {
    for (let k = 0; k < n; k++) {
      await client.appendToStream(stream(i), [jsonEvent({ type, data: { i, k: appended } })]);
      appended++;
    }
  };
  const status = (name) => client.getProjectionStatus(name);
  const ceLinks = () => readAll(client, `$ce-${cat}`, { resolveLinkTos: true });

  before(async () => {
    srv = await startServer();
    client = makeClient(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    await append(1, 2);
    await append(2, 1);
  });

  after(async () => {
    if (client) await client.dispose();
    await stopServer(srv);
  });

  describe('the Projections service on the system projections', () => {
    it('lists the five system projections, stopped', async () => {
      const list = await client.listProjections();
      const names = list.map((p) => p.name);
      for (const s of SYSTEM) assert.ok(names.includes(s), `${s} in ${names}`);
      for (const p of list.filter((x) => SYSTEM.includes(x.name))) {
        assert.equal(p.status, 'Stopped', p.name);
        assert.equal(p.projectionStatus, 'Stopped');
        assert.equal(p.effectiveName, p.name);
      }
    });

    it('enable $by_category: it runs, and $ce-<category> resolves to the events', async () => {
      await client.enableProjection('$by_category');
      await until('$by_category running', async () => (await status('$by_category')).status === 'Running');
      const evs = await until('3 links', async () => { const e = await ceLinks(); return e.length === 3 && e; });
      assert.deepEqual(evs.map((e) => [e.event.streamId, e.event.revision]),
        [[stream(1), 0n], [stream(1), 1n], [stream(2), 0n]]);
      assert.ok(evs.every((e) => e.link.type === '$>' && e.link.streamId === `$ce-${cat}`));
      assert.deepEqual(evs.map((e) => e.event.data.k), [0, 1, 2]);
      // Enabling a running projection changes nothing.
      await client.enableProjection('$by_category');
      assert.equal((await status('$by_category')).status, 'Running');
    });

    it('fills every field of the statistics', async () => {
      const s = await until('caught up', async () => {
        const x = await status('$by_category');
        return x.progress >= 100 && x.eventsProcessedAfterRestart > 0n && x;
      });
      assert.equal(s.name, '$by_category');
      assert.equal(s.effectiveName, '$by_category');
      assert.equal(s.status, 'Running');
      assert.equal(s.projectionStatus, 'Running');
      assert.equal(s.processingStatus, '');
      assert.equal(s.stateReason, '');
      assert.match(s.position, /^C:\d+\/P:\d+$/);
      assert.match(s.lastCheckpoint, /^C:(\d+\/P:\d+|0\/P:-1)$/);
      assert.ok(s.progress > 0 && s.progress <= 100, `progress ${s.progress}`);
      for (const k of ['coreProcessingTime', 'version', 'epoch', 'eventsProcessedAfterRestart', 'bufferedEvents'])
        assert.equal(typeof s[k], 'bigint', k);
      for (const k of ['writesInProgress', 'readsInProgress', 'partitionsCached',
        'writePendingEventsBeforeCheckpoint', 'writePendingEventsAfterCheckpoint'])
        assert.equal(typeof s[k], 'number', k);
      assert.ok(s.version >= 1n, `version ${s.version}`);
      assert.ok(s.epoch >= 0n);
      assert.equal(s.partitionsCached, 0);
      assert.equal(typeof s.checkpointStatus, 'string');
      // The position read is at most the end of $all, and at least where our events are.
      const last = await client.readAll({ direction: lib.BACKWARDS, fromPosition: lib.END, maxCount: 1 });
      for await (const e of last) {
        const end = e.event ? e.event.position.commit : e.commitPosition;
        assert.ok(BigInt(s.position.split('/')[0].slice(2)) <= end);
      }
    });

    it('disable stops it; appends wait; enable catches up', async () => {
      await client.disableProjection('$by_category');
      await until('stopped', async () => (await status('$by_category')).status === 'Stopped');
      await append(2, 2);
      await sleep(300);
      assert.equal((await ceLinks()).length, 3, 'a stopped projection writes nothing');
      await client.enableProjection('$by_category');
      const evs = await until('5 links', async () => { const e = await ceLinks(); return e.length === 5 && e; });
      assert.deepEqual(evs.map((e) => e.event.data.k), [0, 1, 2, 3, 4]);
    });

    it('reset recomputes $ce-<category> from the start: the same links, not doubled', async () => {
      const before = await status('$by_category');
      await client.resetProjection('$by_category');
      await until('a new epoch', async () => (await status('$by_category')).epoch > before.epoch);
      await append(1);
      const evs = await until('6 links after the reset', async () => {
        const e = await ceLinks();
        return e.length === 6 && e;
      });
      assert.deepEqual(evs.map((e) => e.event.data.k), [0, 1, 2, 3, 4, 5]);
      await sleep(200);
      assert.equal((await ceLinks()).length, 6, 'nothing projected twice');
      assert.equal((await status('$by_category')).status, 'Running');
    });

    it('a system projection has an empty state and result ({})', async () => {
      assert.deepEqual(await client.getProjectionState('$by_category'), {});
      assert.deepEqual(await client.getProjectionResult('$by_category'), {});
      assert.deepEqual(await client.getProjectionState('$streams', { partition: 'x' }), {});
    });

    it('update changes a system projection\'s configuration', async () => {
      // $by_category: split at the last '-' (KurrentDB's "last\n-").
      await client.updateProjection('$by_category', 'last\n-');
      await client.appendToStream(`${cat}-x-9`, [jsonEvent({ type, data: { k: 99 } })]);
      const evs = await until('the last-separator category', async () => {
        const e = await readAll(client, `$ce-${cat}-x`, { resolveLinkTos: true });
        return e.length === 1 && e;
      });
      assert.equal(evs[0].event.streamId, `${cat}-x-9`);
      await client.updateProjection('$by_category', 'first\n-');
    });

    it('lists by mode as the clients ask (continuous: every system projection)', async () => {
      const list = await client.listProjections();
      const bc = list.find((p) => p.name === '$by_category');
      assert.ok(bc);
      assert.equal(bc.status, 'Running');
      assert.equal(list.filter((p) => SYSTEM.includes(p.name)).length, 5);
    });

    it('an unknown name is a NotFoundError everywhere', async () => {
      const n = 'no-such-projection-' + crypto.randomUUID();
      await rejectsWith(client.getProjectionStatus(n), lib.NotFoundError, 'status');
      await rejectsWith(client.enableProjection(n), lib.NotFoundError, 'enable');
      await rejectsWith(client.disableProjection(n), lib.NotFoundError, 'disable');
      await rejectsWith(client.resetProjection(n), lib.NotFoundError, 'reset');
      await rejectsWith(client.getProjectionState(n), lib.NotFoundError, 'state');
      await rejectsWith(client.getProjectionResult(n), lib.NotFoundError, 'result');
      await rejectsWith(client.updateProjection(n, 'fromAll()'), lib.NotFoundError, 'update');
      await rejectsWith(client.deleteProjection(n), lib.NotFoundError, 'delete');
      try {
        await client.getProjectionStatus(n);
      } catch (e) {
        assert.equal(e.type, 'not-found');
        assert.match(e.message, /Projection '.*' not found/);
      }
    });

    it('an existing name is an UnknownError, as KurrentDB gives', async () => {
      await rejectsWith(client.createProjection('$by_category', 'fromAll().when({})'), lib.UnknownError, 'create');
      await rejectsWith(client.createProjection('$streams', 'fromAll().when({})', { emitEnabled: true, trackEmittedStreams: true }),
        lib.UnknownError, 'create (tracking emitted streams, over gRPC: ServerFeatures lists it)');
    });

    it('RestartSubsystem is accepted and the projections go on', async () => {
      await client.restartSubsystem();
      assert.equal((await status('$by_category')).status, 'Running');
      await append(2);
      await until('7 links', async () => (await ceLinks()).length === 7);
    });

    it('a disabled system projection shows Stopped; the others stay stopped', async () => {
      await client.disableProjection('$by_category');
      await until('stopped', async () => (await status('$by_category')).status === 'Stopped');
      for (const s of SYSTEM.filter((x) => x !== '$by_category'))
        assert.equal((await status(s)).status, 'Stopped', s);
    });
  });
}

module.exports = { run };
