// ui-watch.js - a dashboard open in Debian's chromium, headless, refreshing
// every second (as an operator would leave it) until killed: what
// bench/run-ui.sh measures W1 and W3 beside. Usage: node bench/ui-watch.js URL
'use strict';
const path = require('node:path');
const { chromium } = require(path.join(__dirname, '../tests/browser/node_modules/playwright-core'));

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage();
  await page.goto(`${process.argv[2]}/ui/`);
  await page.locator('#chart-events canvas').first().waitFor();
  console.log('watching');
  const stop = async () => { await browser.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
})();
