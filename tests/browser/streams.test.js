// The admin UI's stream browser in a real browser (ADR 0029): streams
// appended through the official Node client appear in the list (searched by
// prefix); a stream's events read back page by page both ways, newest first;
// an event's detail shows its data pretty-printed (JSON) or as hex (binary),
// with its id and position; a link shows where it leads; the stream's
// metadata as the client set it. Screenshots: streams.png, stream.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent, binaryEvent } = require('@kurrent/kurrentdb-client');

const { skip, slow, shot, watch, startAll } = require('./lib.js');

describe('the stream browser', { skip }, () => {
  let env, srv, browser, base, client;
  before(async () => {
    env = await startAll('streams');
    ({ srv, client, browser } = env);
    base = srv.base;
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('lists streams and reads their events back', async () => {
    const evs = [];
    for (let i = 0; i < 45; i++) evs.push(jsonEvent({ type: i % 2 ? 'ItemAdded' : 'PriceChanged', data: { i, sku: `sku-${i}` }, metadata: { by: 'test' } }));
    await client.appendToStream('cart-17', evs);
    await client.appendToStream('cart-18', binaryEvent({ type: 'Blob', data: Uint8Array.from([0, 1, 2, 250, 255]) }));
    await client.appendToStream('other-1', jsonEvent({ type: 'X', data: {} }));
    await client.setStreamMetadata('cart-17', { maxCount: 1000 });

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = watch(page);
    await page.goto(`${base}/ui/streams.html`);
    await page.fill('#prefix', 'cart-');
    await page.click('#search button');
    await page.locator('#streams tbody tr[data-stream="cart-18"]').waitFor({ timeout: 10000 * slow });
    const names = await page.locator('#streams tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.stream));
    assert.deepEqual(names, ['cart-17', 'cart-18'], 'the prefix search');
    assert.equal(await page.locator('#streams tbody tr[data-stream="cart-17"] td.num').first().textContent(), '45');
    await shot(page, 'streams');

    // The stream: newest first, 20 a page; the detail of the newest.
    await page.click('a[href$="name=cart-17"]');
    await page.waitForURL(/stream\.html\?name=cart-17/);
    await page.locator('#events tbody tr').first().waitFor();
    const versions = async () => page.locator('#events tbody tr').evaluateAll((rs) => rs.map((r) => Number(r.dataset.version)));
    assert.deepEqual(await versions(), Array.from({ length: 20 }, (_, k) => 44 - k));
    assert.match(await page.locator('#d-data').textContent(), /"sku": "sku-44"/);
    assert.match(await page.locator('#d-meta').textContent(), /"by": "test"/);
    const fields = await page.locator('#d-fields').textContent();
    assert.match(fields, /Position/);
    assert.match(fields, /ItemAdded|PriceChanged/);
    await shot(page, 'stream');
    // Older, older: down to version 0; newer: back up.
    await page.click('#older');
    await page.locator('#events tbody tr[data-version="24"]').waitFor();
    assert.deepEqual(await versions(), Array.from({ length: 20 }, (_, k) => 24 - k));
    await page.click('#older');
    await page.locator('#events tbody tr[data-version="0"]').waitFor();
    assert.equal((await versions()).length, 5);
    await page.click('#newer');
    await page.locator('#events tbody tr[data-version="24"]').waitFor();
    // An event's detail on click.
    await page.click('#events tbody tr[data-version="7"]');
    assert.match(await page.locator('#d-data').textContent(), /"sku": "sku-7"/);
    // The metadata the client set.
    await page.locator('#metadata', { hasText: '$maxCount' }).waitFor();

    // Binary data as hex.
    await page.goto(`${base}/ui/stream.html?name=cart-18`);
    await page.locator('#d-data', { hasText: '00 01 02 fa ff' }).waitFor({ timeout: 10000 * slow });
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('reads $all with the server-side filters', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = watch(page);
    await page.goto(`${base}/ui/all.html`);
    await page.locator('#events tbody tr').first().waitFor({ timeout: 10000 * slow });
    const streams = () => page.locator('#events tbody tr td:nth-child(2)').evaluateAll((c) => c.map((x) => x.textContent));
    const types = () => page.locator('#events tbody tr td:nth-child(4)').evaluateAll((c) => c.map((x) => x.textContent));
    // Without system events by default: none of $-streams.
    assert.ok((await streams()).every((n) => !n.startsWith('$')));
    await page.fill('#expr', 'cart-');
    await page.click('#apply');
    await page.locator('#range', { hasText: 'positions' }).waitFor();
    await page.waitForTimeout(200);
    let ss = await streams();
    assert.equal(ss.length, 25);
    assert.ok(ss.every((n) => n.startsWith('cart-')), ss.join(','));
    assert.equal(ss[0], 'cart-18', 'newest first');
    // Event types by a regular expression.
    await page.selectOption('#on', 'type');
    await page.selectOption('#kind', 'regex');
    await page.fill('#expr', '^Item');
    await page.click('#apply');
    await page.waitForTimeout(300);
    const ts = await types();
    assert.equal(ts.length, 22, 'every ItemAdded (odd i of 0..44)');
    assert.ok(ts.every((t) => t === 'ItemAdded'), ts.join(','));
    await shot(page, 'all');
    await page.click('#older'); // nothing older matches
    await page.locator('#range', { hasText: 'nothing here' }).waitFor();
    assert.equal(await page.locator('#detail').isHidden(), true);
    // A regular expression that does not compile: an error, shown.
    await page.fill('#expr', '(unclosed');
    await page.click('#apply');
    await page.locator('#error', { hasText: 'regular expression' }).waitFor();
    assert.deepEqual(problems.filter((p) => !/status of 400/.test(p)), []);
    await page.close();
  });

  it('answers the JSON endpoints for scripts too', async () => {
    const r = await (await fetch(`${base}/api/stream?name=cart-17&dir=backward&limit=2`)).json();
    assert.deepEqual(r.events.map((e) => e.version), [44, 43]);
    assert.equal(r.next, 42);
    assert.equal((await fetch(`${base}/api/stream?name=nothing-here`)).status, 404);
    assert.equal((await fetch(`${base}/api/stream?limit=2`)).status, 400);
    assert.equal((await fetch(`${base}/api/streams?limit=5000`)).status, 400);
    assert.equal((await fetch(`${base}/api/streams`, { method: 'POST' })).status, 405);
    const all = await (await fetch(`${base}/api/all?dir=forward&on=stream&prefix=cart-18&limit=5`)).json();
    assert.deepEqual(all.events.map((e) => e.stream), ['cart-18']);
    assert.equal((await fetch(`${base}/api/all?regex=(x&on=type`)).status, 400);
  });
});
