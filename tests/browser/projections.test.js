// Projections in the admin UI (ADR 0029): a JavaScript projection created in
// the browser (its query in the CodeMirror editor) runs over events the
// official Node client appended, and its state shows in the page; disabled
// from the UI it stops; deleting it asks for its name first.
// Screenshot: projections.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent } = require('@kurrent/kurrentdb-client');
const { skip, slow, shot, watch, until, startAll } = require('./lib.js');

describe('projections', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('proj', ['--run-projections', 'all']);
    ({ srv, client, browser } = env);
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('creates one in the editor, runs it, disables and deletes it', async () => {
    for (let i = 0; i < 5; i++) await client.appendToStream(`shop-${i}`, jsonEvent({ type: 'Sold', data: { amount: 10 + i } }));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/projections.html`);
    await page.locator('#projections tbody tr[data-name="$by_category"]').waitFor({ timeout: 10000 * slow });
    await page.click('#new');
    await page.fill('#p-name', 'sales');
    // The query, typed into the editor.
    await page.click('.CodeMirror');
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText(
      "fromCategory('shop').when({ $init: function () { return { total: 0, n: 0 }; },\n" +
      "  Sold: function (s, e) { s.total += e.data.amount; s.n++; return s; } });");
    await page.click('#p-save');
    await page.locator('#ok', { hasText: 'created' }).waitFor({ timeout: 10000 * slow });
    const row = page.locator('#projections tbody tr[data-name="sales"]');
    await row.waitFor();
    // fromCategory needs $by_category: enable it from the UI too.
    await page.click('#projections tbody tr[data-name="$by_category"]');
    await page.locator('#p-title', { hasText: '$by_category' }).waitFor();
    if (!(await page.locator('#p-enable').isDisabled())) await page.click('#p-enable');
    await page.click('#projections tbody tr[data-name="sales"]');
    await page.locator('#p-title', { hasText: 'sales' }).waitFor();
    await until('its state', async () => /"total": 60/.test(await page.locator('#p-st').textContent()));
    assert.match(await page.locator('#p-st').textContent(), /"n": 5/);
    assert.match(await row.locator('td.state').textContent(), /running/);
    await shot(page, 'projections');

    await page.click('#p-disable');
    await until('stopped', async () => /stopped/.test(await row.locator('td.state').textContent()));
    await page.click('#p-delete');
    await page.locator('#confirm[open]').waitFor();
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true);
    await page.fill('#confirm-name', 'sales');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'deleted' }).waitFor();
    await until('gone from the list', async () => (await row.count()) === 0);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
