// A factumd of its own for the projection tests (projection-service.js,
// projection-js.js): started with --run-projections=All on a temporary
// database and a free port, stopped with SIGTERM, its log checked for
// errors and sanitizer reports. Also the small waiting helpers they share.
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const slow = process.env.FACTUM_SANITIZED ? 5 : 1;

// Poll fn until it returns something truthy (its last error is reported).
async function until(what, fn, ms = 20000 * slow) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(25);
  }
}

function startServer(extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.env.FACTUMD_BIN, ['--insecure', '--mem-db', '--node-ip', '127.0.0.1', '--node-port', '0',
      '--run-projections=All', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const onData = (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({ p, port: Number(m[1]), log: () => log });
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('exit', (code) => reject(new Error(`factumd exited (${code}): ${log}`)));
  });
}

async function stopServer(srv) {
  if (!srv) return;
  srv.p.removeAllListeners('exit');
  const exited = new Promise((r) => srv.p.on('exit', (code, sig) => r({ code, sig })));
  srv.p.kill('SIGTERM');
  const { code } = await exited;
  assert.equal(code, 0, `factumd did not shut down cleanly: ${srv.log()}`);
  // A projection faulting is logged as an error on purpose (the scripts
  // that fault do so by design here); nothing else may be.
  const log = srv.log().split('\n').filter((l) => !/ ERROR projection \S+ faulted: /.test(l)).join('\n');
  assert.doesNotMatch(log, /ERROR|runtime error|AddressSanitizer|LeakSanitizer/);
}

// Every event of a stream ([] if it does not exist).
async function readAll(client, stream, opts = {}) {
  const out = [];
  try {
    for await (const e of client.readStream(stream, opts)) out.push(e);
  } catch (e) {
    if (e.type === 'stream-not-found') return [];
    throw e;
  }
  return out;
}

// The promise rejects with an error of this client's class `cls`.
async function rejectsWith(p, cls, what) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof cls, `${what}: expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    return true;
  }, what);
}

module.exports = { sleep, slow, until, startServer, stopServer, readAll, rejectsWith };
