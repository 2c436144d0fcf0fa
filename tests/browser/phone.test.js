// The admin UI on a phone (ADR 0029: "usable on a laptop and a phone"): every
// page at a phone's viewport (390 x 844, touch) lays out without the page
// itself scrolling sideways (wide tables scroll within their box), with its
// navigation and its main controls on screen, and logs no error.
// Screenshots: phone-dashboard.png, phone-stream.png, phone-subscriptions.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent, persistentSubscriptionToStreamSettingsFromDefaults } = require('@kurrent/kurrentdb-client');
const { skip, slow, shot, watch, startAll } = require('./lib.js');

const PAGES = [
  ['/ui/', 'dashboard', '#charts'],
  ['/ui/streams.html', 'streams', '#streams'],
  ['/ui/stream.html?name=orders-1', 'stream', '#events'],
  ['/ui/all.html', 'all', '#events'],
  ['/ui/subscriptions.html', 'subscriptions', '#groups'],
  ['/ui/projections.html', 'projections', 'main'],
  ['/ui/readmodels.html', 'readmodels', 'main'],
  ['/ui/operations.html', 'operations', 'main'],
  ['/ui/users.html', 'users', 'main'],
  ['/ui/login.html', 'login', '#signin'],
];

describe('on a phone', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('phone', ['--run-projections', 'All']);
    ({ srv, client, browser } = env);
    await client.appendToStream('orders-1', [1, 2, 3].map((n) => jsonEvent({ type: 'OrderPlaced', data: { n, item: 'a long item name to wrap' } })));
    await client.createPersistentSubscriptionToStream('orders-1', 'a-consumer-group-with-a-long-name', persistentSubscriptionToStreamSettingsFromDefaults());
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('lays out every page at 390 pixels wide', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    for (const [url, name, main] of PAGES) {
      const page = await ctx.newPage();
      const problems = watch(page);
      await page.goto(`${srv.base}${url}`);
      await page.locator(main).first().waitFor({ timeout: 10000 * slow });
      await page.waitForLoadState('networkidle');
      const m = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
        wide: [...document.querySelectorAll('body *')].filter((e) => {
          const r = e.getBoundingClientRect();
          return r.width && r.right > window.innerWidth + 1 && !e.closest('.scroll, pre, .CodeMirror, .chart');
        }).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`),
      }));
      assert.ok(m.scroll <= m.inner + 1, `${name}: the page is ${m.scroll} px wide on a ${m.inner} px screen (${m.wide.join(', ')})`);
      if (name !== 'login') {
        const nav = await page.locator('header nav').boundingBox();
        assert.ok(nav && nav.x >= 0 && nav.x + nav.width <= 391, `${name}: the navigation is off screen`);
      }
      if (['dashboard', 'stream', 'subscriptions'].includes(name)) await shot(page, `phone-${name}`);
      assert.deepEqual(problems, [], name);
      await page.close();
    }
    await ctx.close();
  });
});
