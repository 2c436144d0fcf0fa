// Read models in the admin UI (ADR 0029): one created over HTTP and fed by
// the official Node client shows with its state and lag; the query console
// runs SQL on it and shows the rows; pause and resume change its state; a
// rebuild from the UI makes a new generation with the same rows.
// Screenshot: readmodels.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { jsonEvent } = require('@kurrent/kurrentdb-client');
const { skip, slow, shot, watch, until, startAll } = require('./lib.js');

const DEF = {
  name: 'balances', lifecycle: 'async', streams: ['acct-'],
  schema: 'CREATE TABLE balances(id TEXT PRIMARY KEY, balance INTEGER NOT NULL)',
  handlers: {
    Opened: 'INSERT INTO balances VALUES (:stream, 0)',
    Deposited: 'UPDATE balances SET balance = balance + :data.amount WHERE id = :stream',
  },
};

describe('read models', { skip }, () => {
  let env, srv, browser, client;
  before(async () => {
    env = await startAll('rm');
    ({ srv, client, browser } = env);
  });
  after(async () => {
    if (env) await env.stop();
  });

  it('lists, queries, pauses, resumes and rebuilds', async () => {
    const c = await fetch(`${srv.base}/readmodels`, { method: 'POST', body: JSON.stringify(DEF) });
    assert.equal(c.status, 201, await c.text());
    for (const a of ['acct-1', 'acct-2']) {
      await client.appendToStream(a, jsonEvent({ type: 'Opened', data: {} }));
      await client.appendToStream(a, jsonEvent({ type: 'Deposited', data: { amount: a === 'acct-1' ? 70 : 5 } }));
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const problems = watch(page);
    await page.goto(`${srv.base}/ui/readmodels.html`);
    const row = page.locator('#models tbody tr[data-model="balances"]');
    await row.waitFor({ timeout: 10000 * slow });
    await until('lag 0', async () => (await row.locator('td.lag').textContent()) === '0');
    assert.equal(await row.locator('td.state').textContent(), 'running');

    const run = async (sql) => {
      await page.fill('#q-sql', sql);
      await page.click('#q-run');
      await page.locator('#q-info', { hasText: 'rows' }).waitFor();
      return page.locator('#q-result tbody tr').evaluateAll((rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    };
    await page.selectOption('#q-model', 'balances');
    assert.deepEqual(await run('SELECT id, balance FROM balances ORDER BY id'), [['acct-1', '70'], ['acct-2', '5']]);
    await shot(page, 'readmodels');

    await row.locator('button', { hasText: 'Pause' }).click();
    await until('paused', async () => (await row.locator('td.state').textContent()) === 'paused');
    await row.locator('button', { hasText: 'Resume' }).click();
    await until('running again', async () => (await row.locator('td.state').textContent()) === 'running');

    const gen = (await (await fetch(`${srv.base}/readmodels/balances`)).json()).status.generation;
    await row.locator('button.rebuild').click();
    await page.locator('#ok', { hasText: 'rebuilding' }).waitFor();
    await until('a new generation', async () => {
      const s = (await (await fetch(`${srv.base}/readmodels/balances`)).json()).status;
      return s.generation > gen && !s.rebuild;
    });
    page.once('dialog', (d) => d.dismiss());
    assert.deepEqual(await run('SELECT id, balance FROM balances ORDER BY id'), [['acct-1', '70'], ['acct-2', '5']]);
    // A query that could write is refused, shown as an error.
    await page.fill('#q-sql', 'DELETE FROM balances');
    await page.click('#q-run');
    await page.locator('#error', { hasText: /read-only|400/ }).waitFor();
    assert.deepEqual(problems.filter((p) => !/400/.test(p)), []);
    await page.close();
  });
});
