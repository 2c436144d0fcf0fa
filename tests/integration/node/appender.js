// Appends continuously (10 concurrent appenders, official 1.x client) until the
// server goes away, printing every acknowledged append as "stream version";
// used by shutdown.sh to check that what was acknowledged survives a restart.
'use strict';
const lib = require('@kurrent/kurrentdb-client');
const client = lib.KurrentDBClient.connectionString(process.env.FACTUMD_URL);
let stop = false;
async function appender(w) {
  const stream = `sd-${w}`;
  for (let i = 0; !stop; i++) {
    try {
      const r = await client.appendToStream(stream, [lib.jsonEvent({ type: 'Tick', data: { w, i } })]);
      process.stdout.write(`${stream} ${r.nextExpectedRevision}\n`);
    } catch (e) {
      stop = true;
    }
  }
}
Promise.all(Array.from({ length: 10 }, (_, w) => appender(w))).then(() => client.dispose()).then(() => process.exit(0));
setTimeout(() => { stop = true; }, 20000);
