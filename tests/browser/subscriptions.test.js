// Consumer groups in the admin UI (ADR 0029): a group made and consumed
// through the official Node client shows with its consumer and, once its
// consumer parks a poison message, a parked count; "Replay parked" in the
// browser sends that message to the consumer again. A group created, updated,
// truncated and deleted in the browser is what the client then sees; a
// catch-up subscription shows with its lag. Screenshots: subscriptions.png,
// subscription-group.png, subscriptions-live.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { request } = require('playwright-core');
const { KurrentDBClient, jsonEvent, START, PARK, persistentSubscriptionToStreamSettingsFromDefaults } =
  require('@kurrent/kurrentdb-client');
const { skip, slow, sleep, shot, watch, until, signIn, startTlsServer, noOpenssl, startAll, launchBrowser } = require('./lib.js');

describe('consumer groups', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('subs');
    ({ srv, client, browser } = env);
  });
  after(async () => {
    if (env) await env.stop();
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

  it('creates, updates, truncates and deletes a group, and lists catch-up subscriptions', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/subscriptions.html`);
    await page.locator('#groups tbody tr').first().waitFor({ timeout: 10000 * slow });

    // Created in the browser: the official client finds it with those settings and consumes from it.
    await page.click('#new-group');
    await page.fill('#c-stream', 'mail');
    await page.fill('#c-group', 'senders');
    await page.fill('#c-startFrom', '0');
    await page.fill('#c-maxRetryCount', '0');
    await page.fill('#c-minCheckPointCount', '1'); // a checkpoint after each message: the update below resumes after them
    await page.fill('#c-maxCheckPointCount', '1');
    await page.selectOption('#c-namedConsumerStrategy', 'DispatchToSingle');
    await page.click('#c-save');
    await page.locator('#ok', { hasText: 'Created senders on mail' }).waitFor();
    let info = await client.getPersistentSubscriptionToStreamInfo('mail', 'senders');
    assert.equal(info.settings.maxRetryCount, 0);
    assert.equal(info.settings.consumerStrategyName, 'DispatchToSingle');
    await client.appendToStream('mail', [0, 1, 2, 3].map((n) => jsonEvent({ type: 'Mail', data: { n } })));
    const got = [];
    const sub = client.subscribeToPersistentSubscriptionToStream('mail', 'senders');
    let dropped = null;
    sub.on('error', (e) => { dropped = e; }); // the update below drops it
    sub.on('data', async (e) => {
      got.push(e.event.data.n);
      if (e.event.data.n % 2) await sub.nack(PARK, 'poison', e); // 1 and 3 are parked
      else await sub.ack(e);
    });
    await until('four deliveries', () => got.length >= 4);
    await until('the checkpoint past them', async () =>
      String((await client.getPersistentSubscriptionToStreamInfo('mail', 'senders')).stats.lastCheckpointedEventRevision) === '3');
    const detail = page.locator('#group[data-group="senders"]');
    await detail.waitFor();
    await until('two parked messages listed', async () => (await page.locator('#parked tbody tr').count()) === 2);
    assert.deepEqual(await page.locator('#parked tbody tr td:nth-child(2)').allTextContents(), ['3@mail', '1@mail']);
    await until('one consumer shown', async () => (await page.locator('#members tbody tr').count()) === 1);
    await shot(page, 'subscription-group');

    // Updated in the browser: the client reads the new settings (its consumer is dropped, as on KurrentDB).
    await page.fill('#s-maxRetryCount', '7');
    await page.fill('#s-messageTimeoutMilliseconds', '12000');
    await page.click('#s-save');
    await page.locator('#ok', { hasText: 'Saved the settings of senders' }).waitFor();
    info = await client.getPersistentSubscriptionToStreamInfo('mail', 'senders');
    assert.equal(info.settings.maxRetryCount, 7);
    assert.equal(info.settings.messageTimeout, 12000);
    assert.equal(info.settings.consumerStrategyName, 'DispatchToSingle', 'what was not edited is kept');
    await until('the consumer dropped by the update', () => dropped);
    assert.match(String(dropped), /restarted/);

    // Truncate asks first; cancelled, nothing changes; confirmed, the parked messages are gone for good.
    await page.click('#g-truncate');
    await page.click('#confirm-cancel');
    assert.equal(Number((await client.getPersistentSubscriptionToStreamInfo('mail', 'senders')).stats.parkedMessageCount), 2);
    await page.click('#g-truncate');
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true, 'OK waits for the name');
    await page.fill('#confirm-name', 'senders');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'Truncated' }).waitFor();
    await until('no parked messages', async () =>
      Number((await client.getPersistentSubscriptionToStreamInfo('mail', 'senders')).stats.parkedMessageCount) === 0);
    await until('the list empties', async () => (await page.locator('#parked tbody tr').count()) === 0);
    const again = [];
    const sub2 = client.subscribeToPersistentSubscriptionToStream('mail', 'senders');
    sub2.on('data', async (e) => { again.push(e.event.data.n); await sub2.ack(e); });
    await client.replayParkedMessagesToStream('mail', 'senders');
    await client.appendToStream('mail', jsonEvent({ type: 'Mail', data: { n: 4 } }));
    await until('the new message', () => again.includes(4));
    await sleep(500);
    assert.ok(!again.includes(1) && !again.includes(3), `truncated messages came back: ${again}`);
    await sub2.unsubscribe().catch(() => {});

    // A catch-up subscription shows with its stream, its state and what it was sent.
    const live = client.subscribeToStream('mail', { fromRevision: START });
    let liveSeen = 0;
    live.on('data', () => { liveSeen++; });
    await until('the catch-up subscription', async () => (await page.locator('#live tbody tr[data-stream="mail"]').count()) === 1);
    const lrow = page.locator('#live tbody tr[data-stream="mail"]');
    await until('it is live', async () => (await lrow.locator('td.state').textContent()) === 'live');
    assert.equal(await lrow.locator('td').nth(4).textContent(), '5', 'five events sent');
    assert.equal(await lrow.locator('td.lag').textContent(), '0');
    assert.equal(liveSeen, 5);
    await shot(page, 'subscriptions-live');
    await live.unsubscribe();

    // Delete asks for the group's name; then the client finds no such group.
    await page.click('#g-delete');
    await page.fill('#confirm-name', 'sender');
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true);
    await page.fill('#confirm-name', 'senders');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'Deleted senders on mail' }).waitFor();
    await assert.rejects(client.getPersistentSubscriptionToStreamInfo('mail', 'senders'), /not.*exist|not found/i);
    await until('the row goes', async () => (await page.locator('#groups tbody tr[data-group="senders"]').count()) === 0);
    assert.equal(await page.locator('#group').isHidden(), true);
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('answers the JSON endpoints', async () => {
    const r = await (await fetch(`${srv.base}/api/subscriptions`)).json();
    assert.ok(r.groups.some((g) => g.group === 'workers' && g.stream === 'jobs'));
    assert.equal((await fetch(`${srv.base}/api/subscriptions/replay?stream=jobs&group=nobody`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${srv.base}/api/subscriptions/replay?stream=jobs`, { method: 'POST' })).status, 400);
    // KurrentDB's paths: a group made with PUT, read back, changed with POST, deleted.
    const put = await fetch(`${srv.base}/subscriptions/%24all/audit`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ startFrom: 0, resolveLinktos: true, filter: { on: 'eventType', prefixes: ['Job'] } }) });
    assert.equal(put.status, 201);
    const infoAll = await client.getPersistentSubscriptionToAllInfo('audit');
    assert.equal(infoAll.settings.resolveLinkTos, true);
    const got = await (await fetch(`${srv.base}/subscriptions/%24all/audit/info`)).json();
    assert.deepEqual(got.config.filter, { on: 'eventType', prefixes: ['Job'] });
    assert.equal((await fetch(`${srv.base}/subscriptions/%24all/audit`, { method: 'PUT', body: '{}' })).status, 409);
    assert.equal((await fetch(`${srv.base}/subscriptions/jobs/x`, { method: 'PUT', body: '{"liveBufferSize":-1}' })).status, 400);
    assert.equal((await fetch(`${srv.base}/subscriptions/jobs/x`, { method: 'PUT', body: '{"nope":1}' })).status, 400);
    assert.equal((await fetch(`${srv.base}/subscriptions/jobs/x`, { method: 'PUT', body: '{' })).status, 400);
    assert.equal((await fetch(`${srv.base}/subscriptions/jobs/x`, { method: 'POST', body: '{}' })).status, 404);
    assert.equal((await fetch(`${srv.base}/subscriptions/%24all/audit`, { method: 'POST', body: '{"maxRetryCount":3}' })).status, 200);
    assert.equal((await client.getPersistentSubscriptionToAllInfo('audit')).settings.maxRetryCount, 3);
    // A group from the end owes nothing until an event comes; then that one.
    assert.equal((await fetch(`${srv.base}/api/subscription?stream=jobs&group=tail`, { method: 'PUT' })).status, 201);
    const lagOf = async () => (await (await fetch(`${srv.base}/api/subscription?stream=jobs&group=tail`)).json()).lagEvents;
    assert.equal(await lagOf(), 0);
    await client.appendToStream('jobs', jsonEvent({ type: 'Job', data: { n: 9 } }));
    assert.equal(await lagOf(), 1);
    await sleep(300); // and its age shows, though no consumer made the group read it
    const d = await (await fetch(`${srv.base}/api/subscription?stream=jobs&group=tail`)).json();
    assert.ok(d.lagSeconds >= 0.25 && d.lagSeconds < 60, `lagSeconds ${d.lagSeconds}`);
    const list = await (await fetch(`${srv.base}/subscriptions`)).json();
    assert.ok(list.some((g) => g.groupName === 'audit' && g.eventStreamId === '$all'));
    assert.equal((await fetch(`${srv.base}/subscriptions/%24all/audit`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${srv.base}/subscriptions/%24all/audit/info`)).status, 404);
  });
});

// With users: an $ops user manages groups from the UI (KurrentDB's rule for
// PersistentSubscriptions changes) but may not read the parked stream (a
// system stream: $admins); the page says so and replay still works. A user
// outside $ops and $admins sees the groups and is refused a change.
describe('consumer groups with users', { skip: skip || noOpenssl }, () => {
  let srv, browser, admin;
  const basic = (u, p) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64'), 'X-Requested-With': 't' });
  let base, api;
  before(async () => {
    // TLS: the official client sends credentials only over TLS.
    srv = await startTlsServer('subs-users');
    base = srv.tlsBase;
    admin = KurrentDBClient.connectionString(`kurrentdb://admin:changeit@127.0.0.1:${srv.port}?tls=true&tlsCAFile=${srv.caFile}`);
    browser = await launchBrowser();
    api = await request.newContext({ baseURL: base, ignoreHTTPSErrors: true });
    for (const [login, groups] of [['opal', ['$ops']], ['rita', []]]) {
      const r = await api.post('/api/users', { headers: basic('admin', 'changeit'),
        data: { login, fullName: login, groups, password: 'pw-' + login } });
      assert.equal(r.status(), 200, `user ${login}`);
    }
  });
  after(async () => {
    if (api) await api.dispose();
    if (admin) await admin.dispose();
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('lets $ops replay without reading the parked stream, and refuses others', async () => {
    await admin.createPersistentSubscriptionToStream('work', 'crew', persistentSubscriptionToStreamSettingsFromDefaults({ startFrom: START }));
    await admin.appendToStream('work', jsonEvent({ type: 'Task', data: { n: 1 } }));
    const seen = [];
    const sub = admin.subscribeToPersistentSubscriptionToStream('work', 'crew');
    sub.on('data', async (e) => {
      seen.push(e.event.data.n);
      if (seen.length === 1) await sub.nack(PARK, 'poison', e);
      else await sub.ack(e);
    });
    await until('parked', async () => Number((await admin.getPersistentSubscriptionToStreamInfo('work', 'crew')).stats.parkedMessageCount) === 1);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await signIn(page, base, 'opal', 'pw-opal');
    await page.goto(`${base}/ui/subscriptions.html`);
    await page.locator('#groups tbody tr[data-group="crew"]').click();
    await page.locator('#no-parked', { hasText: 'cannot be listed here' }).waitFor({ timeout: 10000 * slow });
    await page.locator('#s-save').waitFor(); // the rest of the group still shows
    await page.click('#g-replay');
    await page.locator('#ok', { hasText: 'Replaying' }).waitFor();
    await until('the parked message delivered again', () => seen.length === 2);
    await sub.unsubscribe();
    await ctx.close();

    // rita may look, not change.
    assert.equal((await api.get('/api/subscriptions', { headers: basic('rita', 'pw-rita') })).status(), 200);
    for (const [method, url] of [['PUT', '/api/subscription?stream=work&group=x'], ['POST', '/api/subscription?stream=work&group=crew'],
      ['DELETE', '/api/subscription?stream=work&group=crew'], ['POST', '/api/subscriptions/truncate?stream=work&group=crew'],
      ['PUT', '/subscriptions/work/y']]) {
      const r = await api.fetch(url, { method, headers: basic('rita', 'pw-rita'), data: method === 'DELETE' ? undefined : '{}' });
      assert.equal(r.status(), 403, `${method} ${url}`);
    }
    assert.equal((await api.get('/api/subscriptions', { headers: { 'X-Requested-With': 't' } })).status(), 401);
    // and the group is still there as it was
    assert.equal((await admin.getPersistentSubscriptionToStreamInfo('work', 'crew')).groupName, 'crew');
  });
});
