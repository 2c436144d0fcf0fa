// Changes made in the admin UI, read back through the official Node client
// (ADR 0029): metadata edited in the UI is what the client reads; an event
// appended by hand is in the stream; deleting a stream asks for its name
// first (Cancel changes nothing; the button stays disabled until the name is
// typed), then the client finds it gone; tombstoning likewise, for good.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent, START, FORWARDS } = require('@kurrent/kurrentdb-client');
const { skip, slow, shot, watch, startAll } = require('./lib.js');

async function read(client, stream) {
  const out = [];
  for await (const r of client.readStream(stream, { fromRevision: START, direction: FORWARDS })) out.push(r.event);
  return out;
}

describe('changes from the UI', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('changes');
    ({ srv, client, browser } = env);
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('edits metadata, appends, and deletes only when confirmed', async () => {
    await client.appendToStream('acct-9', jsonEvent({ type: 'Opened', data: { owner: 'Kim' } }));
    await client.appendToStream('acct-10', jsonEvent({ type: 'Opened', data: { owner: 'Lee' } }));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/stream.html?name=acct-9`);
    await page.locator('#events tbody tr').first().waitFor({ timeout: 10000 * slow });

    // Metadata: edited here, read there.
    await page.click('#meta-edit');
    await page.fill('#meta-text', '{"$maxCount": 3, "owner": "ui"}');
    await page.click('#meta-save');
    await page.locator('#ok', { hasText: 'Metadata saved' }).waitFor();
    const md = await client.getStreamMetadata('acct-9');
    assert.equal(md.metadata.maxCount, 3);
    assert.equal(md.metadata.owner, 'ui');

    // An event by hand.
    await page.fill('#ev-type', 'Renamed');
    await page.fill('#ev-data', '{"owner": "Kim Park"}');
    await page.fill('#ev-meta', '{"by": "operator"}');
    await page.click('#ev-append');
    await page.locator('#ok', { hasText: 'Appended at version 1' }).waitFor();
    const evs = await read(client, 'acct-9');
    assert.equal(evs.length, 2);
    assert.equal(evs[1].type, 'Renamed');
    assert.deepEqual(evs[1].data, { owner: 'Kim Park' });
    assert.deepEqual(evs[1].metadata, { by: 'operator' });
    await shot(page, 'stream-changes');

    // Delete: a confirmation that needs the name; Cancel keeps the stream.
    await page.click('#delete');
    await page.locator('#confirm[open]').waitFor();
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true);
    await page.fill('#confirm-name', 'acct-');
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true, 'a wrong name confirms nothing');
    await shot(page, 'confirm');
    await page.click('#confirm-cancel');
    assert.equal((await read(client, 'acct-9')).length, 2, 'cancelled, and still there');
    await page.click('#delete');
    await page.fill('#confirm-name', 'acct-9');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'deleted' }).waitFor();
    await assert.rejects(read(client, 'acct-9'), (e) => e.constructor.name === 'StreamNotFoundError');

    // Tombstone: for good.
    await page.goto(`${srv.base}/ui/stream.html?name=acct-10`);
    await page.locator('#events tbody tr').first().waitFor();
    await page.click('#tombstone');
    await page.fill('#confirm-name', 'acct-10');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'tombstoned' }).waitFor();
    await assert.rejects(client.appendToStream('acct-10', jsonEvent({ type: 'X', data: {} })),
      (e) => e.constructor.name === 'StreamDeletedError');
    assert.deepEqual(problems.filter((p) => !/404|410/.test(p)), []); // the page reads the deleted streams back: 404
    await page.close();
  });
});
