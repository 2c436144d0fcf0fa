// ui-load.js - the admin UI's page load times (issue 17, ADR 0029): the
// dashboard and the page of a 10,000-event stream, each loaded cold (a new
// browser context: no cache, no cookies) N times in Debian's chromium,
// headless; from the navigation's start until the page shows its data (the
// dashboard: its node cards filled and its charts drawn; the stream: its
// first page of events in the table). Usage:
//   node bench/ui-load.js http://127.0.0.1:PORT [N]
// (bench/run-ui.sh starts factumd and fills the stream). Prints medians and
// p90 in ms, and "@ ui ..." result lines.
'use strict';
const path = require('node:path');
const { chromium } = require(path.join(__dirname, '../tests/browser/node_modules/playwright-core'));

const base = process.argv[2];
const n = Number(process.argv[3] || 20);
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor((a.length * p) / 100))];

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const runs = { dashboard: [], stream: [] };
  for (let i = 0; i < n; i++) {
    for (const which of ['dashboard', 'stream']) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      const t0 = Date.now();
      if (which === 'dashboard') {
        await page.goto(`${base}/ui/`);
        await page.locator('.card .v[data-k="Durability"]', { hasText: /durable|relaxed/ }).waitFor();
        await page.locator('#chart-events canvas').first().waitFor();
      } else {
        await page.goto(`${base}/ui/stream.html?name=big-1`);
        await page.locator('#events tbody tr[data-version="9999"]').waitFor();
      }
      runs[which].push(Date.now() - t0);
      await ctx.close();
    }
  }
  await browser.close();
  for (const [k, v] of Object.entries(runs)) {
    console.log(`${k}: median ${pct(v, 50)} ms, p90 ${pct(v, 90)} ms (${v.length} cold loads)`);
    console.log(`@ ui ${k}_load_ms_p50 ${pct(v, 50)}`);
  }
})();
