// lib.js - what the admin UI's browser tests share: factumd started on a
// fresh database (FACTUMD_BIN), Debian's chromium (CHROMIUM), where the
// screenshots go (FACTUM_UI_SHOTS), and why a file would be skipped.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const factumd = process.env.FACTUMD_BIN;
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.FACTUM_UI_SHOTS;
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;
const skip = !factumd ? 'FACTUMD_BIN is not set (ctest runs this file)'
  : !fs.existsSync(browserPath) ? `no browser at ${browserPath} (scripts/deps.sh test installs chromium)` : false;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// factumd on a fresh database in a new temporary directory: { p, port, dir, stop() }.
function startServer(name, flags) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `factum-ui-${name}-`));
  return new Promise((resolve, reject) => {
    const p = spawn(factumd, [...flags, '--db', path.join(dir, 'db'), '--node-ip', '127.0.0.1', '--node-port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        const port = Number(m[1]);
        resolve({
          p, port, dir, base: `http://127.0.0.1:${port}`,
          async stop() {
            const exited = new Promise((r) => p.once('exit', r));
            p.kill('SIGTERM');
            await exited;
            fs.rmSync(dir, { recursive: true, force: true });
          },
        });
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`factumd exited (${code}): ${log}`)));
  });
}

async function shot(page, name) {
  if (!shots) return;
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

// Errors a page logs (console errors, uncaught exceptions): the array fills as they come.
function watch(page) {
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  return problems;
}

// Poll fn until it answers truthy (its answer), or fail after ms (scaled under sanitizers).
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms * slow;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

module.exports = { browserPath, skip, slow, sleep, startServer, shot, watch, until };

// Sign in through the sign-in page of a factumd with users.
async function signIn(page, base, user, password) {
  await page.goto(`${base}/ui/login.html`);
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#signin');
  await page.waitForURL(`${base}/ui/`);
}

// What a script with Basic credentials gets for GET path.
async function basicStatus(base, path, user, password) {
  const r = await fetch(`${base}${path}`, {
    headers: { Authorization: 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64'), 'X-Requested-With': 't' },
  });
  return r.status;
}

// factumd over TLS with certificates for 127.0.0.1 from a fresh test CA
// (tests/integration/mkcerts.sh): startServer's answer plus tlsBase (https),
// caFile, and a stop() that also removes the certificates.
async function startTlsServer(name, flags = []) {
  const { execFileSync } = require('node:child_process');
  const certs = fs.mkdtempSync(path.join(os.tmpdir(), 'factum-ui-certs-'));
  execFileSync('bash', [path.join(__dirname, '..', 'integration', 'mkcerts.sh'), certs]);
  const srv = await startServer(name, [...flags, '--certificate-file', path.join(certs, 'node.crt'),
    '--certificate-private-key-file', path.join(certs, 'node.key'), '--trusted-root-certificates-path', path.join(certs, 'ca')]);
  const stop = srv.stop;
  return {
    ...srv, tlsBase: `https://127.0.0.1:${srv.port}`, caFile: path.join(certs, 'ca', 'ca.crt'),
    async stop() { await stop(); fs.rmSync(certs, { recursive: true, force: true }); },
  };
}
const noOpenssl = !fs.existsSync('/usr/bin/openssl') && 'no openssl program (tests/integration/mkcerts.sh needs it)';

// Debian's chromium, headless.
function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
}

// What most files start with: factumd (--insecure and flags) on a fresh
// database, the official Node client on it, and the browser:
// { srv, client, browser, stop() }.
async function startAll(name, flags = []) {
  const { KurrentDBClient } = require('@kurrent/kurrentdb-client');
  const srv = await startServer(name, ['--insecure', ...flags]);
  const env = {
    srv, client: KurrentDBClient.connectionString(`kurrentdb://127.0.0.1:${srv.port}?tls=false`), browser: null,
    async stop() {
      await env.client.dispose();
      if (env.browser) await env.browser.close();
      await srv.stop();
    },
  };
  try {
    env.browser = await launchBrowser();
  } catch (e) {
    await env.stop();
    throw e;
  }
  return env;
}

module.exports.launchBrowser = launchBrowser;
module.exports.startAll = startAll;
module.exports.signIn = signIn;
module.exports.startTlsServer = startTlsServer;
module.exports.noOpenssl = noOpenssl;
module.exports.basicStatus = basicStatus;
