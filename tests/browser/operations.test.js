// Scavenge from the admin UI (ADR 0029): on a log where most events are past
// their stream's $maxCount, starting a scavenge (sealing the active segment
// first) in the browser runs it to completion with its progress shown, and
// the page reports the events removed and the space given back.
// Screenshot: operations.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent } = require('@kurrent/kurrentdb-client');
const { skip, slow, shot, watch, startAll } = require('./lib.js');

describe('operations', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('ops', ['--chunk-size', '1048576']);
    ({ srv, client, browser } = env);
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('runs a scavenge and shows what it gave back', async () => {
    await client.setStreamMetadata('junk', { maxCount: 1 });
    const pad = 'x'.repeat(2000);
    for (let b = 0; b < 30; b++)
      await client.appendToStream('junk', Array.from({ length: 50 }, (_, i) => jsonEvent({ type: 'J', data: { i, pad } })));
    const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/operations.html`);
    await page.locator('#status dd', { hasText: 'none since factumd started' }).waitFor({ timeout: 10000 * slow });
    await page.click('#start');
    await page.locator('#ok', { hasText: 'started' }).waitFor();
    await page.locator('#status dd[data-k="State"]', { hasText: 'completed' }).waitFor({ timeout: 60000 * slow });
    const removed = Number((await page.locator('#status dd[data-k="Events removed"]').textContent()).replace(/,/g, ''));
    assert.ok(removed > 1000, `events removed: ${removed}`);
    assert.match(await page.locator('#status dd[data-k="Space saved"]').textContent(), /MiB|KiB/);
    assert.equal(await page.locator('#start').isDisabled(), false);
    await shot(page, 'operations');
    // (the status before any scavenge is a 404, which the browser logs)
    assert.deepEqual(problems.filter((p) => !/status of 404/.test(p)), []);
    await page.close();
  });
});
