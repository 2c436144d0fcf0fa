// certs-client.js PORT CERTDIR - the official Node client against a secure
// factumd whose certificates `factum certs dev` made (tests/integration/client.sh):
// grpc-js (appends) and the Rust bridge (reads, rustls) accept the node's
// ECDSA P-256 certificate by name and by address, and mutual TLS with the
// user certificate (CN=admin, no password) is accepted.
const { KurrentDBClient, jsonEvent } = require("@kurrent/kurrentdb-client");
const [port, dir] = process.argv.slice(2);
process.removeAllListeners("warning"); // grpc-js warns about an IP as SNI; not ours to fix
(async () => {
  const ca = `tlsCAFile=${dir}/ca/ca.crt`;
  const tries = [
    ["localhost", `kurrentdb://admin:changeit@localhost:${port}?tls=true&${ca}`],
    ["127.0.0.1", `kurrentdb://admin:changeit@127.0.0.1:${port}?tls=true&${ca}`],
    ["mutual TLS", `kurrentdb://localhost:${port}?tls=true&${ca}&userCertFile=${dir}/user-admin/user-admin.crt` +
      `&userKeyFile=${dir}/user-admin/user-admin.key`],
  ];
  for (const [what, cs] of tries) {
    const client = KurrentDBClient.connectionString(cs);
    const stream = `certs-${what.replace(/[^a-z0-9]/gi, "")}-${Date.now()}`;
    await client.appendToStream(stream, [jsonEvent({ type: "T", data: { what } })]);
    let n = 0;
    for await (const e of client.readStream(stream)) if (e.event.data.what === what) n++;
    await client.dispose();
    if (n !== 1) throw new Error(`${what}: read ${n} events, expected 1`);
    console.log(`   node client, ${what}: ok`);
  }
})().catch((e) => {
  console.error(`FAIL ${e.message}`);
  process.exit(1);
});
