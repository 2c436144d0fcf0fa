// Signing in to the admin UI in a real browser (Debian's chromium, headless;
// ADR 0029, SESS-1..3) on a factumd with users (--disable-tls: the cookie
// then has no Secure flag, so that the test can speak http): the dashboard
// sends whoever is not signed in to the sign-in page, with no browser
// password dialog; a wrong password is refused and stays there; the right
// one lands on the dashboard with a session cookie that is HttpOnly and
// SameSite=Strict; a change without the session's CSRF token, with a wrong
// one, or from another origin is refused (403), and the right one passes;
// signing out ends the session (its cookie no longer opens anything).
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { chromium } = require('playwright-core');

const factumd = process.env.FACTUMD_BIN;
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.FACTUM_UI_SHOTS;
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;

function startServer(db) {
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, ['--disable-tls', '--db', db, '--node-ip', '127.0.0.1', '--node-port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({ p, port: Number(m[1]) });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`factumd exited (${code}): ${log}`)));
  });
}

const skip = !factumd ? 'FACTUMD_BIN is not set (ctest runs this file)'
  : !fs.existsSync(browserPath) ? `no browser at ${browserPath} (scripts/deps.sh test installs chromium)` : false;

describe('signing in', { skip }, () => {
  let srv, dir, browser, base;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factum-ui-signin-'));
    srv = await startServer(path.join(dir, 'db'));
    base = `http://127.0.0.1:${srv.port}`;
    browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) {
      const exited = new Promise((r) => srv.p.once('exit', r));
      srv.p.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('signs in, refuses CSRF and cross-origin changes, signs out', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    await page.goto(`${base}/`);
    await page.waitForURL(/\/ui\/login\.html/, { timeout: 10000 * slow });
    assert.equal(new URL(page.url()).searchParams.get('next'), '/ui/');
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, 'login.png') });
    }

    // A wrong password: refused, still here, no cookie.
    await page.fill('#user', 'admin');
    await page.fill('#password', 'not-the-password');
    await page.click('#signin');
    await page.locator('#error', { hasText: 'Wrong user name or password' }).waitFor();
    assert.match(page.url(), /login\.html/);
    assert.equal((await ctx.cookies()).length, 0);

    // The right one: the dashboard, signed in as admin.
    await page.fill('#password', 'changeit');
    await page.click('#signin');
    await page.waitForURL(`${base}/ui/`, { timeout: 10000 * slow });
    await page.locator('#who', { hasText: 'admin' }).waitFor();
    const [cookie] = await ctx.cookies();
    assert.equal(cookie.name, 'factum_session');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(cookie.value.length >= 43);
    assert.deepEqual(dialogs, [], 'a browser dialog opened');

    // The session opens what Basic credentials would: the metrics.
    const api = ctx.request;
    assert.equal((await api.get(`${base}/metrics`)).status(), 200);
    const who = await (await api.get(`${base}/ui/api/session`)).json();
    assert.equal(who.login, 'admin');
    assert.ok(who.csrf && who.csrf.length >= 43);
    // Changes: without the CSRF token, with a wrong one, from another origin.
    assert.equal((await api.post(`${base}/admin/scavenge`)).status(), 403);
    assert.equal((await api.post(`${base}/ui/api/logout`, { headers: { 'X-CSRF-Token': 'x'.repeat(43) } })).status(), 403);
    assert.equal((await api.post(`${base}/ui/api/logout`,
      { headers: { 'X-CSRF-Token': who.csrf, Origin: 'http://evil.example' } })).status(), 403);
    // The right token passes (a harmless change: an archive pass is 409 without an archive).
    assert.equal((await api.post(`${base}/admin/archive`, { headers: { 'X-CSRF-Token': who.csrf } })).status(), 409);
    assert.equal((await api.get(`${base}/ui/api/session`)).status(), 200, 'the session survived the refusals');

    // Signing out: back to the sign-in page; the old cookie opens nothing.
    const old = cookie.value;
    await page.click('#signout');
    await page.waitForURL(/\/ui\/login\.html/, { timeout: 10000 * slow });
    const r = await fetch(`${base}/metrics`, { headers: { Cookie: `factum_session=${old}`, 'X-Requested-With': 't' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), null, 'no challenge for a script');
    await ctx.close();
  });
});
