// Reads back what appender.js printed as acknowledged: every such event must
// be there (stream versions 0..n without gaps, n at least the acknowledged one).
'use strict';
const fs = require('node:fs');
const lib = require('@kurrent/kurrentdb-client');
(async () => {
  const acked = new Map();
  for (const line of fs.readFileSync(process.argv[2], 'utf8').split('\n')) {
    const [s, v] = line.split(' ');
    if (s && v) acked.set(s, Math.max(acked.get(s) ?? -1, Number(v)));
  }
  const client = lib.KurrentDBClient.connectionString(process.env.FACTUMD_URL);
  let total = 0, bad = 0;
  for (const [s, v] of acked) {
    let n = 0;
    for await (const e of client.readStream(s, { maxCount: 1000000 })) {
      if (e.event.revision !== BigInt(n)) bad++;
      n++;
    }
    if (n - 1 < v) { console.log(`${s}: acknowledged up to ${v}, found ${n - 1}`); bad++; }
    total += v + 1;
  }
  await client.dispose();
  console.log(`${total} acknowledged events in ${acked.size} streams checked: ${bad ? 'FAIL' : 'all present'}`);
  process.exit(bad || total === 0 ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(1); });
