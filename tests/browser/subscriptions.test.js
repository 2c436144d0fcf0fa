// Consumer groups in the admin UI (ADR 0029): a group made and consumed
// through the official Node client shows with its consumer and, once its
// consumer parks a poison message, a parked count; "Replay parked" in the
// browser sends that message to the consumer again. Screenshot: subscriptions.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');
const { KurrentDBClient, jsonEvent, START, PARK, persistentSubscriptionToStreamSettingsFromDefaults } =
  require('@kurrent/kurrentdb-client');
const { browserPath, skip, slow, sleep, startServer, shot, watch, until } = require('./lib.js');


describe('consumer groups', { skip }, () => {
  let srv, browser, client;
  before(async () => {
    srv = await startServer('subs', ['--insecure']);
    client = KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`);
    browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  });
  after(async () => {
    if (client) await client.dispose();
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('shows a group and replays its parked message', async () => {
    await client.createPersistentSubscriptionToStream('jobs', 'workers',
      persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }));
    await client.appendToStream('jobs', [0, 1, 2].map((n) => jsonEvent({ type: 'Job', data: { n } })));
    const seen = [];
    let parkIt = true;
    const sub = client.subscribeToPersistentSubscriptionToStream('jobs', 'workers');
    sub.on('data', async (e) => {
      seen.push(e.event.data.n);
      if (e.event.data.n === 1 && parkIt) {
        parkIt = false;
        await sub.nack(PARK, 'poison', e);
      } else {
        await sub.ack(e);
      }
    });
    await until('three deliveries', () => seen.length >= 3);

    const page = await browser.newPage({ viewport: { width: 1280, height: 600 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/subscriptions.html`);
    const row = page.locator('#groups tbody tr[data-group="workers"]');
    await row.waitFor({ timeout: 10000 * slow });
    assert.equal(await row.getAttribute('data-stream'), 'jobs');
    await until('the parked count', async () => (await row.locator('td.parked').textContent()) === '1');
    assert.equal(await row.locator('td').nth(2).textContent(), '1', 'one consumer');
    await shot(page, 'subscriptions');
    assert.deepEqual(seen.filter((n) => n === 1), [1]);
    await row.locator('button.replay').click();
    await page.locator('#ok', { hasText: 'Replaying' }).waitFor();
    await until('the parked message delivered again', () => seen.filter((n) => n === 1).length === 2);
    await sub.unsubscribe();
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('answers the JSON endpoints', async () => {
    const r = await (await fetch(`${srv.base}/api/subscriptions`)).json();
    assert.ok(r.groups.some((g) => g.group === 'workers' && g.stream === 'jobs'));
    assert.equal((await fetch(`${srv.base}/api/subscriptions/replay?stream=jobs&group=nobody`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${srv.base}/api/subscriptions/replay?stream=jobs`, { method: 'POST' })).status, 400);
  });
});
