// tls-connect.js LIBRARY URL: one append with the official client LIBRARY
// (@kurrent/kurrentdb-client or @eventstore/db-client) to URL; prints OK, or
// ERR and the client's error (tests/integration/tls.sh checks what each
// client says when TLS is misconfigured on either side).
const name = process.argv[2];
const lib = require(name);
const url = process.argv[3];
(async () => {
  const client = name === '@eventstore/db-client'
    ? lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:'))
    : lib.KurrentDBClient.connectionString(url);
  try {
    await client.appendToStream(`tls-${Date.now()}`, [lib.jsonEvent({ type: 'T', data: {} })]);
    console.log('OK');
  } catch (e) {
    console.log('ERR', String(e.message).split('\n')[0]);
  }
  await client.dispose();
})();
