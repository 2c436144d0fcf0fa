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

const { skip, slow, startServer, shot, startTlsServer, noOpenssl, launchBrowser } = require('./lib.js');

// The one cookie a sign-in gives: the session's, HttpOnly, SameSite=Strict,
// 256 random bits, and Secure exactly when the connection was TLS.
function sessionCookie(cookies, secure) {
  assert.equal(cookies.length, 1);
  const [c] = cookies;
  assert.equal(c.name, 'factum_session');
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Strict');
  assert.equal(c.secure, secure);
  assert.ok(c.value.length >= 43);
  return c;
}

describe('signing in', { skip }, () => {
  let srv, browser, base;
  before(async () => {
    srv = await startServer('signin', ['--disable-tls']);
    base = srv.base;
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('signs in, refuses CSRF and cross-origin changes, signs out', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await ctx.newPage();
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    await page.goto(`${base}/`);
    await page.waitForURL(/\/ui\/login\.html/, { timeout: 10000 * slow });
    assert.equal(new URL(page.url()).searchParams.get('next'), '/ui/');
    await shot(page, 'login');

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
    const cookie = sessionCookie(await ctx.cookies(), false);
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

// Over TLS (certificates from tests/integration/mkcerts.sh, trusted by the
// browser context for the test) the session cookie is Secure too, and the
// sign-in works the same.
describe('signing in over TLS', { skip: skip || noOpenssl }, () => {
  let srv, browser;
  before(async () => {
    srv = await startTlsServer('signin-tls');
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  it('gives a Secure, HttpOnly, SameSite=Strict cookie', async () => {
    const base = srv.tlsBase;
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await page.goto(`${base}/ui/login.html`, { timeout: 10000 * slow });
    await page.fill('#user', 'admin');
    await page.fill('#password', 'changeit');
    await page.click('#signin');
    await page.waitForURL(`${base}/ui/`, { timeout: 10000 * slow });
    await page.locator('#who', { hasText: 'admin' }).waitFor();
    sessionCookie(await ctx.cookies(), true);
    await ctx.close();
  });
});
