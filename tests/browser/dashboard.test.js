// The admin UI's dashboard in a real browser (Debian's chromium, headless,
// driven by playwright-core; ADR 0029): `/` leads to it; in --insecure mode
// its banner says so; the node's cards are filled; while a writer appends
// through the official Node client, the charts' readings and drawings move;
// the page loads nothing from another host and logs no error; the UI's
// responses carry the strict Content-Security-Policy. A screenshot of the page
// goes to $FACTUM_UI_SHOTS (docs/ui.md, scripts/ui-screenshots.sh).
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { KurrentDBClient, jsonEvent } = require('@kurrent/kurrentdb-client');

const { skip, slow, sleep, startServer, shot, watch, launchBrowser } = require('./lib.js');

describe('the dashboard in a browser', { skip }, () => {
  let srv, browser, base;
  before(async () => {
    srv = await startServer('dashboard', ['--insecure']);
    base = srv.base;
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('shows the node and charts that move while a writer runs', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const problems = watch(page), hosts = new Set();
    page.on('request', (r) => hosts.add(new URL(r.url()).host));
    const resp = await page.goto(`${base}/`);
    assert.equal(new URL(page.url()).pathname, '/ui/', '/ redirects to the UI');
    const csp = resp.headers()['content-security-policy'] || '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(resp.headers()['x-content-type-options'], 'nosniff');
    await page.locator('.banner').waitFor();
    assert.match(await page.locator('.banner').textContent(), /Insecure mode/);
    assert.equal(await page.locator('#signout').count(), 0, 'nothing to sign out of in --insecure mode');
    assert.doesNotMatch(await page.locator('header').textContent(), /null|undefined/);
    await page.locator('.card .v[data-k="Durability"]', { hasText: 'durable' }).waitFor();
    assert.match(await page.locator('.card .v[data-k="Data directory"]').textContent(), /factum-ui-dashboard-.*\/db$/);

    const canvas = () => page.evaluate(() => document.querySelector('#chart-events canvas').toDataURL());
    const quiet = await canvas();
    // A writer: single-event appends through the official client for a few seconds.
    const client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    let stop = false, appended = 0;
    const writer = (async () => {
      while (!stop) {
        await client.appendToStream(`ui-${appended % 10}`, jsonEvent({ type: 'Tick', data: { n: appended } }));
        appended++;
      }
    })();
    let peak = 0;
    const end = Date.now() + 15000 * slow;
    while (Date.now() < end && peak <= 0) {
      await sleep(500);
      peak = Number((await page.locator('#now-events').textContent()).replace(/[^0-9.]/g, '')) || 0;
    }
    await sleep(2500); // a few more points on the charts
    await shot(page, 'dashboard');
    stop = true;
    await writer;
    await client.dispose();
    assert.ok(appended > 0);
    assert.ok(peak > 0, 'events written/s stayed 0 while a writer ran');
    assert.notEqual(await canvas(), quiet, 'the events chart did not move');
    // The node's last position catches up with what was appended (refreshed each second).
    let last = 0;
    for (const until = Date.now() + 10000 * slow; last < appended && Date.now() < until; await sleep(200))
      last = Number((await page.locator('.card .v[data-k="Last position"]').textContent()).replace(/,/g, ''));
    assert.ok(last >= appended, `the last position shown, ${last}, is below the ${appended} appended`);
    assert.deepEqual([...hosts], [`127.0.0.1:${srv.port}`], 'requests to another host');
    assert.deepEqual(problems, [], 'errors in the browser console');
    await page.close();
  });

  it('answers a path that is not the UI\'s with 404, and changes with 405', async () => {
    assert.equal((await fetch(`${base}/ui/nothing.js`)).status, 404);
    assert.equal((await fetch(`${base}/ui/`, { method: 'POST' })).status, 405);
    const r = await fetch(`${base}/ui/dashboard.js`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/javascript/);
  });
});
