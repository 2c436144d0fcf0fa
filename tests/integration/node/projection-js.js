// JavaScript projections through the Projections service with an official
// Node client: a counting projection's state and result, listing, disable
// -> append -> enable catching up, reset recomputing (not doubling),
// delete; emit() and linkTo() into other streams with $causedBy in the
// metadata; partitioned state (foreachStream, partitionBy) read per
// partition; a faulting script's status and reason; a script in modern
// syntax (arrow functions, const, template literals); an existing name.
// These need the JavaScript engine (factum-js) in the projection manager.
// Each client's entry file (projection-js-*.test.js) calls run().
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { sleep, until, startServer, stopServer, readAll, rejectsWith } = require('./projserver');

function run(lib, makeClient, features) {
  const { jsonEvent } = lib;
  const uid = () => features.name + crypto.randomUUID().slice(0, 8);
  let srv, client;

  const status = (name) => client.getProjectionStatus(name);
  const state = (name, partition) => client.getProjectionState(name, partition ? { partition } : {});
  const result = (name, partition) => client.getProjectionResult(name, partition ? { partition } : {});
  const append = (stream, type, data, metadata) =>
    client.appendToStream(stream, [jsonEvent({ type, data, ...(metadata ? { metadata } : {}) })]);

  before(async () => {
    srv = await startServer();
    client = makeClient(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
  });

  after(async () => {
    if (client) await client.dispose();
    await stopServer(srv);
  });

  describe('JavaScript projections', () => {
    const src = `${uid()}counter-1`;
    const name = `count-${uid()}`;
    const counting = `
      fromStream('${src}')
        .when({
          $init: function () { return { count: 0, sum: 0 }; },
          Added: function (s, e) { s.count += 1; s.sum += e.body.n; return s; }
        })
        .outputState();`;
    const counted = async (n) => until(`count ${n}`, async () => {
      const s = await state(name);
      return s && s.count === n && s;
    });

    it('creates a counting projection and reads its state and result', async () => {
      for (let i = 1; i <= 3; i++) await append(src, 'Added', { n: i });
      await client.createProjection(name, counting);
      const s = await counted(3);
      assert.deepEqual(s, { count: 3, sum: 6 });
      await until('the result', async () => {
        const r = await result(name);
        return r && r.count === 3;
      });
      assert.deepEqual(await result(name), { count: 3, sum: 6 });
    });

    it('lists it, running, with its statistics', async () => {
      const list = await client.listProjections();
      const p = list.find((x) => x.name === name);
      assert.ok(p, 'listed');
      assert.equal(p.status, 'Running');
      const st = await status(name);
      assert.equal(st.name, name);
      assert.equal(st.projectionStatus, 'Running');
      assert.ok(st.eventsProcessedAfterRestart >= 3n);
      assert.match(st.position, /^C:\d+\/P:\d+$/);
    });

    it('a second projection of the same name is an UnknownError', async () => {
      await rejectsWith(client.createProjection(name, counting), lib.UnknownError, 'create twice');
    });

    it('disable -> append -> enable catches up', async () => {
      await client.disableProjection(name);
      await until('stopped', async () => (await status(name)).projectionStatus === 'Stopped');
      await append(src, 'Added', { n: 10 });
      await sleep(300);
      assert.equal((await state(name)).count, 3, 'a stopped projection does not move');
      await client.enableProjection(name);
      assert.deepEqual(await counted(4), { count: 4, sum: 16 });
    });

    it('reset recomputes the state from the start (not doubled)', async () => {
      const epoch = (await status(name)).epoch;
      await client.resetProjection(name);
      await until('a new epoch', async () => (await status(name)).epoch > epoch);
      await append(src, 'Added', { n: 100 });
      assert.deepEqual(await counted(5), { count: 5, sum: 116 });
      await sleep(200);
      assert.deepEqual(await state(name), { count: 5, sum: 116 });
    });

    it('update replaces the query; the projection goes on with it', async () => {
      await client.updateProjection(name, counting.replace('s.count += 1', 's.count += 2'));
      await append(src, 'Added', { n: 1 });
      await until('the new query counted', async () => (await state(name)).count >= 7);
    });

    it('deletes it only once it is stopped; then it is gone', async () => {
      await rejectsWith(client.deleteProjection(name), lib.UnknownError, 'delete a running projection');
      await client.disableProjection(name);
      await until('stopped', async () => (await status(name)).projectionStatus === 'Stopped');
      await client.deleteProjection(name, { deleteStateStream: true, deleteCheckpointStream: true });
      await until('gone', async () => {
        try {
          await status(name);
          return false;
        } catch (e) {
          return e instanceof lib.NotFoundError;
        }
      });
      assert.ok(!(await client.listProjections()).some((p) => p.name === name));
    });

    it('emit() and linkTo() write to other streams, with $causedBy in the metadata', async () => {
      const from = `${uid()}src-1`, out = `${uid()}emitted`, links = `${uid()}linked`;
      const pname = `emit-${uid()}`;
      await client.createProjection(pname, `
        fromStream('${from}').when({
          Ordered: function (s, e) {
            emit('${out}', 'Confirmed', { order: e.body.order }, { by: 'test' });
            linkTo('${links}', e);
          }
        });`, { emitEnabled: true, trackEmittedStreams: true });
      await append(from, 'Ordered', { order: 1 });
      await append(from, 'Ordered', { order: 2 });
      const srcEvents = await readAll(client, from);
      const emitted = await until('2 emitted', async () => { const e = await readAll(client, out); return e.length === 2 && e; });
      assert.deepEqual(emitted.map((e) => e.event.type), ['Confirmed', 'Confirmed']);
      assert.deepEqual(emitted.map((e) => e.event.data.order), [1, 2]);
      emitted.forEach((e, k) => {
        assert.equal(e.event.metadata.$causedBy, srcEvents[k].event.id, 'emitted $causedBy');
        assert.equal(e.event.metadata.by, 'test');
      });
      const linked = await until('2 links', async () => {
        const e = await readAll(client, links, { resolveLinkTos: true });
        return e.length === 2 && e;
      });
      assert.deepEqual(linked.map((e) => [e.event.streamId, e.event.revision]), [[from, 0n], [from, 1n]]);
      assert.ok(linked.every((e) => e.link.type === '$>'));
      assert.equal(linked[0].link.metadata.$causedBy, srcEvents[0].event.id, 'link $causedBy');
      // trackEmittedStreams: the streams it emitted to are listed.
      const tracked = await until('tracked streams', async () => {
        const e = await readAll(client, `$projections-${pname}-emittedstreams`);
        return e.length >= 1 && e;
      });
      assert.ok(tracked.every((e) => e.event.type === '$StreamTracked'));
    });

    it('a projection that emits without emitEnabled faults', async () => {
      const from = `${uid()}noemit-1`, pname = `noemit-${uid()}`;
      await client.createProjection(pname, `fromStream('${from}').when({ X: function (s, e) { emit('${from}-out', 'Y', {}); } });`);
      await append(from, 'X', {});
      const st = await until('faulted', async () => { const s = await status(pname); return s.projectionStatus.startsWith('Faulted') && s; });
      assert.ok(st.stateReason.length > 0);
    });

    it('keeps a state per stream with foreachStream, read with a partition', async () => {
      const cat = `${uid()}cart`.replace(/-/g, '');
      const pname = `per-stream-${uid()}`;
      await client.createProjection(pname, `
        fromCategory('${cat}').foreachStream().when({
          $init: function () { return { items: 0 }; },
          ItemAdded: function (s, e) { s.items += e.body.qty; return s; }
        });`);
      await append(`${cat}-a`, 'ItemAdded', { qty: 2 });
      await append(`${cat}-b`, 'ItemAdded', { qty: 5 });
      await append(`${cat}-a`, 'ItemAdded', { qty: 1 });
      await until('partition a', async () => (await state(pname, `${cat}-a`)).items === 3);
      assert.deepEqual(await state(pname, `${cat}-a`), { items: 3 });
      assert.deepEqual(await state(pname, `${cat}-b`), { items: 5 });
      // A partition it never saw has no state: {} as KurrentDB answers.
      assert.deepEqual(await state(pname, `${cat}-zzz`), {});
    });

    it('keeps a state per key with partitionBy', async () => {
      const from = `${uid()}sales-1`, pname = `by-region-${uid()}`;
      await client.createProjection(pname, `
        fromStream('${from}').partitionBy(function (e) { return e.body.region; }).when({
          $init: function () { return { total: 0 }; },
          Sold: function (s, e) { s.total += e.body.amount; return s; }
        });`);
      await append(from, 'Sold', { region: 'eu', amount: 5 });
      await append(from, 'Sold', { region: 'us', amount: 7 });
      await append(from, 'Sold', { region: 'eu', amount: 1 });
      await until('eu', async () => (await state(pname, 'eu')).total === 6);
      assert.deepEqual(await state(pname, 'us'), { total: 7 });
    });

    it('a script that throws faults, with the reason in its status', async () => {
      const from = `${uid()}boom-1`, pname = `faulty-${uid()}`;
      await client.createProjection(pname, `
        fromStream('${from}').when({
          $init: function () { return {}; },
          Boom: function (s, e) { throw new Error('kaboom ' + e.body.why); }
        });`);
      await append(from, 'Boom', { why: 'on purpose' });
      const st = await until('faulted', async () => { const s = await status(pname); return s.projectionStatus.startsWith('Faulted') && s; });
      assert.match(st.status, /^Faulted/);
      assert.match(st.stateReason, /kaboom on purpose/);
      // Listed as faulted too, and it can be disabled and deleted.
      const listed = (await client.listProjections()).find((p) => p.name === pname);
      assert.match(listed.status, /^Faulted/);
      await client.disableProjection(pname);
      await client.deleteProjection(pname);
    });

    it('a script that does not compile is created, and faults with the reason', async () => {
      const pname = `broken-${uid()}`;
      await client.createProjection(pname, 'fromAll().when({ $init: function ( { return 1; } });');
      const st = await until('faulted', async () => { const s = await status(pname); return s.projectionStatus.startsWith('Faulted') && s; });
      assert.ok(st.stateReason.length > 0);
    });

    it('runs modern syntax: arrow functions, const, template literals', async () => {
      const from = `${uid()}greet-1`, pname = `modern-${uid()}`;
      await client.createProjection(pname, `
        const greet = (who) => \`hello \${who}\`;
        fromStream('${from}').when({
          $init: () => ({ greetings: [], n: 0 }),
          Named: (s, e) => {
            const { name } = e.body;
            s.greetings.push(greet(name));
            s.n = s.greetings.length;
            return s;
          }
        });`);
      await append(from, 'Named', { name: 'ada' });
      await append(from, 'Named', { name: 'grace' });
      await until('two greetings', async () => (await state(pname)).n === 2);
      assert.deepEqual(await state(pname), { greetings: ['hello ada', 'hello grace'], n: 2 });
    });
  });
}

module.exports = { run };
