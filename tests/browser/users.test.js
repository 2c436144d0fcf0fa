// Users in the admin UI (ADR 0029) on a factumd with users: an admin creates
// a user in the browser, who can then sign in; disabling shuts them out and
// enabling lets them back; a reset password replaces the old one; the user
// changes their own password on the same page; deleting asks for the name
// first. Every check of who may sign in is made with Basic credentials, as a
// script's. Screenshot: users.png.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { skip, slow, startServer, shot, watch, signIn, basicStatus, until, launchBrowser } = require('./lib.js');

describe('users', { skip }, () => {
  let srv, browser;
  before(async () => {
    srv = await startServer('users', ['--disable-tls']);
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('creates, disables, enables, resets, changes and deletes', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    const page = await ctx.newPage();
    const problems = watch(page);
    await signIn(page, srv.base, 'admin', 'changeit');
    await page.goto(`${srv.base}/ui/users.html`);
    await page.locator('#users tbody tr[data-user="admin"]').waitFor({ timeout: 10000 * slow });
    const ok = (s) => basicStatus(srv.base, '/ui/api/session', 'alice', s);

    await page.fill('#u-login', 'alice');
    await page.fill('#u-name', 'Alice A.');
    await page.fill('#u-groups', 'readers, $ops');
    await page.fill('#u-password', 'first-pw');
    await page.click('#u-create');
    const row = page.locator('#users tbody tr[data-user="alice"]');
    await row.waitFor();
    assert.match(await row.textContent(), /readers, \$ops/);
    assert.equal(await ok('first-pw'), 200);
    await shot(page, 'users');

    await row.locator('button.toggle').click();
    await until('disabled', async () => (await row.locator('td.state').textContent()) === 'disabled');
    assert.equal(await ok('first-pw'), 401, 'a disabled user cannot sign in');
    await row.locator('button.toggle').click();
    await until('enabled', async () => (await row.locator('td.state').textContent()) === 'enabled');
    await until('signing in again', async () => (await ok('first-pw')) === 200);

    await row.locator('button.reset').click();
    await page.fill('#confirm-input', 'second-pw');
    await page.click('#confirm-ok');
    await page.locator('#ok', { hasText: 'was reset' }).waitFor();
    await until('the new password', async () => (await ok('second-pw')) === 200);
    assert.equal(await ok('first-pw'), 401);

    // Alice changes her own password, signed in as herself.
    const c2 = await browser.newContext();
    const p2 = await c2.newPage();
    await signIn(p2, srv.base, 'alice', 'second-pw');
    await p2.goto(`${srv.base}/ui/users.html`);
    await p2.fill('#own-current', 'second-pw');
    await p2.fill('#own-new', 'third-pw');
    await p2.click('#own-save');
    await p2.locator('#ok', { hasText: 'changed' }).waitFor();
    assert.equal(await p2.locator('#admin').isHidden(), true, 'not an admin: no user list');
    await c2.close();
    await until('her new password', async () => (await ok('third-pw')) === 200);

    // Delete: only once the name is typed.
    await row.locator('button.delete').click();
    await page.fill('#confirm-input', 'alic');
    assert.equal(await page.locator('#confirm-ok').isDisabled(), true);
    await page.fill('#confirm-input', 'alice');
    await page.click('#confirm-ok');
    await until('gone', async () => (await row.count()) === 0);
    assert.equal(await ok('third-pw'), 401);
    assert.deepEqual(problems, []);
    await ctx.close();
  });
});
