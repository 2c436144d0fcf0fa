// Robustness of factumd against bad and hostile clients (NET-2, NET-3): truncated
// and malformed HTTP/2 frames, malformed gRPC messages and protobuf, oversized
// messages, a client that stops reading, 1,000 concurrent connections and abrupt
// disconnects in the middle of appends. After each, the server must still serve
// other clients correctly, and nothing partial may be stored. Raw frames are
// built with node:net and node:http2; correctness is checked with the official
// client.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const tls = require('node:tls');
const http2 = require('node:http2');
const fs = require('node:fs');
const crypto = require('node:crypto');
const lib = require('@kurrent/kurrentdb-client');

const port = Number(process.env.FACTUMD_PORT);
const url = process.env.FACTUMD_URL;
const pid = Number(process.env.FACTUMD_PID || 0);
const tag = 'rob-' + crypto.randomUUID().slice(0, 8);

// ---- a minimal protobuf writer for the few requests we hand-craft ----------
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const field = (num, wire, payload) => Buffer.concat([varint((num << 3) | wire), payload]);
const bytesField = (num, buf) => field(num, 2, Buffer.concat([varint(buf.length), buf]));
const msgField = (num, parts) => bytesField(num, Buffer.concat(parts));
const grpcFrame = (msg) => Buffer.concat([Buffer.from([0, msg.length >>> 24, (msg.length >>> 16) & 255, (msg.length >>> 8) & 255, msg.length & 255]), msg]);
// AppendReq{options{stream_identifier{stream_name}, any{}}}
const appendOptions = (stream) => msgField(1, [msgField(1, [bytesField(3, Buffer.from(stream))]), bytesField(4, Buffer.alloc(0))]);
// AppendReq{proposed_message{id{string}, metadata{type, content-type}, data}}
function proposed(type, data) {
  const entry = (k, v) => msgField(2, [bytesField(1, Buffer.from(k)), bytesField(2, Buffer.from(v))]);
  return msgField(2, [msgField(1, [bytesField(2, Buffer.from(crypto.randomUUID()))]), entry('type', type), entry('content-type', 'application/json'), bytesField(4, Buffer.from(data))]);
}

// The connection string's credentials (secure mode: admin:changeit), sent as
// the official clients send them: a secure server authorizes every call.
const cred = (() => { const u = new URL(url.replace(/^[a-z+]+:/, 'http:')); return u.username ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : ''; })();
const authHeader = cred ? { authorization: 'Basic ' + Buffer.from(cred).toString('base64') } : {};

function grpcCall(session, path, body, { end = true } = {}) {
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...authHeader });
  const result = new Promise((resolve) => {
    const chunks = [];
    let trailers = {};
    let headers = {};
    req.on('response', (h) => { headers = h; });
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', (d) => chunks.push(d));
    req.on('close', () => resolve({ headers, trailers, body: Buffer.concat(chunks), status: Number(trailers['grpc-status'] ?? headers['grpc-status']) }));
    req.on('error', () => {});
  });
  if (body) req.write(body);
  if (end) req.end();
  return { req, result };
}

// In secure mode (run.sh --secure) the same bytes go through TLS (ALPN h2;
// the test CA from NODE_EXTRA_CA_CERTS).
const secure = process.env.FACTUMD_TLS === '1';
const base = secure ? `https://127.0.0.1:${port}` : `http://127.0.0.1:${port}`;
const h2 = (opts) => http2.connect(base, opts);
const rawConnect = (cb) => secure ? tls.connect({ port, host: '127.0.0.1', ALPNProtocols: ['h2'] }, cb)
                                  : net.connect(port, '127.0.0.1', cb);

async function serverHealthy(client) {
  const s = `${tag}-probe-${crypto.randomUUID().slice(0, 6)}`;
  const r = await client.appendToStream(s, [lib.jsonEvent({ type: 'Probe', data: { ok: true } })]);
  assert.equal(r.nextExpectedRevision, 0n);
  const res = await fetch(`${base}/health/live`);
  assert.equal(res.status, 204);
}

function rssKiB() {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('robustness', () => {
  let client;
  before(() => { client = lib.KurrentDBClient.connectionString(url); });
  after(async () => { await client.dispose(); });

  it('survives garbage after the HTTP/2 preface and a truncated frame', async () => {
    for (const tail of [Buffer.from('this is not a frame at all, just bytes.............'),
                        Buffer.from([0, 0x40, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3]) /* a DATA frame cut short */,
                        Buffer.from([0xff, 0xff, 0xff, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff]) /* absurd length */]) {
      await new Promise((resolve) => {
        const sock = rawConnect(() => {
          sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
          sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])); // empty SETTINGS
          sock.write(tail);
          setTimeout(() => sock.destroy(), 100);
        });
        sock.on('error', () => {});
        sock.on('close', resolve);
      });
    }
    // plain garbage, and an HTTP/1.1 request line that never ends
    await new Promise((resolve) => {
      const sock = rawConnect(() => { sock.write('GARBAGE\x00\x01\x02' + 'x'.repeat(20000)); setTimeout(() => sock.destroy(), 100); });
      sock.on('error', () => {});
      sock.on('close', resolve);
    });
    await serverHealthy(client);
  });

  it('answers malformed gRPC messages on that stream only', async () => {
    const s = h2();
    const bad = [
      [Buffer.from([7, 0, 0, 0, 1, 0]), 13],                       // bad flag byte: INTERNAL
      [Buffer.from([1, 0, 0, 0, 1, 0]), 12],                       // compressed without negotiation: UNIMPLEMENTED
      [grpcFrame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])), 3],  // not protobuf: INVALID_ARGUMENT
      [Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]), 8],               // a 2 GiB message: RESOURCE_EXHAUSTED
      [Buffer.from([0, 0, 0, 0, 9, 1, 2]), 13],                    // ends in the middle of a message
    ];
    for (const [body, code] of bad) {
      const { result } = grpcCall(s, '/event_store.client.streams.Streams/Read', body);
      const r = await result;
      assert.equal(r.status, code, `body ${body.toString('hex')}`);
    }
    // Every persistent-subscription call refuses bytes that are not its request.
    for (const m of ['Create', 'Update', 'Delete', 'Read', 'GetInfo', 'ReplayParked', 'TruncateParked', 'List']) {
      const { result: pr } = grpcCall(s, `/event_store.client.persistent_subscriptions.PersistentSubscriptions/${m}`,
        grpcFrame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
      assert.equal((await pr).status, 3, `PersistentSubscriptions/${m}`);
    }
    // A subscription read backwards is an invalid combination.
    const { result: back } = grpcCall(s, '/event_store.client.streams.Streams/Read',
      grpcFrame(Buffer.concat([Buffer.from([0x0a, 0x0a]), Buffer.from([0x12, 0x00, 0x18, 0x01, 0x32, 0x00, 0x4a, 0x02, 0x12, 0x00])])));
    assert.equal((await back).status, 3, 'backwards subscription');
    const { result } = grpcCall(s, '/event_store.client.streams.Streams/NoSuchMethod', grpcFrame(Buffer.alloc(0)));
    assert.equal((await result).status, 12);
    // the same connection still works
    const ok = grpcCall(s, '/event_store.client.server_features.ServerFeatures/GetSupportedMethods', grpcFrame(Buffer.alloc(0)));
    const r = await ok.result;
    assert.equal(r.status, 0);
    assert.ok(r.body.length > 5);
    s.close();
    await serverHealthy(client);
  });

  it('sends plain HTTP requests over HTTP/2 to HTTP/1.1, keeping the connection', async () => {
    // A browser that chose h2 over TLS asks for the admin UI on an HTTP/2
    // connection: the stream is reset with HTTP_1_1_REQUIRED (RFC 9113), which
    // browsers and curl answer by asking again over HTTP/1.1; gRPC on the same
    // connection goes on.
    const s = h2();
    for (const [method, path] of [['GET', '/ui/'], ['GET', '/health/live'], ['POST', '/api/stream?name=x']]) {
      const req = s.request({ ':method': method, ':path': path, ...authHeader });
      req.end();
      const code = await new Promise((resolve) => {
        req.on('response', () => resolve('a response'));
        req.on('error', () => {});
        req.on('close', () => resolve(req.rstCode));
        req.resume();
      });
      assert.equal(code, http2.constants.NGHTTP2_HTTP_1_1_REQUIRED, `${method} ${path}`);
    }
    const ok = grpcCall(s, '/event_store.client.server_features.ServerFeatures/GetSupportedMethods', grpcFrame(Buffer.alloc(0)));
    assert.equal((await ok.result).status, 0);
    s.close();
    await serverHealthy(client);
  });

  it('refuses an oversized event and an oversized message, storing nothing', async () => {
    const s = h2();
    const stream = `${tag}-oversize`;
    const big = 'x'.repeat(17 * 1024 * 1024);
    const { result } = grpcCall(s, '/event_store.client.streams.Streams/Append', Buffer.concat([grpcFrame(appendOptions(stream)), grpcFrame(proposed('Big', '"' + big + '"'))]));
    const r = await result;
    assert.notEqual(r.status, 0);
    s.close();
    await assert.rejects(client.appendToStream(stream, [lib.binaryEvent({ type: 'Big', data: Buffer.alloc(16 * 1024 * 1024 + 1) })]));
    await assert.rejects(async () => { for await (const e of client.readStream(stream)) void e; }, (e) => e.constructor.name === 'StreamNotFoundError');
    await serverHealthy(client);
  });

  it('keeps memory bounded when a client stops reading, and serves others meanwhile', async () => {
    const stream = `${tag}-slow`;
    const payload = { pad: 'y'.repeat(900) };
    for (let i = 0; i < 20; i++)
      await client.appendToStream(stream, Array.from({ length: 1000 }, (_, k) => lib.jsonEvent({ type: 'Pad', data: { ...payload, i, k } })));
    const before = rssKiB();
    // ReadReq{options{stream{stream_identifier, start}, forwards, count 1e9, uuid_option{string}, no_filter}}
    const readReq = msgField(1, [msgField(1, [msgField(1, [bytesField(3, Buffer.from(stream))]), bytesField(3, Buffer.alloc(0))]),
      field(5, 0, varint(1000000000)), msgField(9, [bytesField(2, Buffer.alloc(0))]), bytesField(8, Buffer.alloc(0))]);
    const slow = [];
    for (let i = 0; i < 10; i++) {
      const s = h2({ settings: { initialWindowSize: 65535 } });
      const { req } = grpcCall(s, '/event_store.client.streams.Streams/Read', grpcFrame(readReq));
      req.pause(); // never read: the flow-control windows fill up and stay full
      slow.push(s);
    }
    await new Promise((r) => setTimeout(r, 1500));
    // others are served while the slow readers hang
    const t0 = Date.now();
    await serverHealthy(client);
    assert.ok(Date.now() - t0 < 5000);
    const grown = rssKiB() - before;
    console.log(`factumd RSS grew by ${grown} KiB with 10 stalled readers of a 20 MB stream`);
    // 10 stalled reads of a 20 MB stream: each may hold its bounded queue, not the stream
    if (pid) assert.ok(grown < 10 * 8 * 1024 + 64 * 1024, `RSS grew by ${grown} KiB`);
    for (const s of slow) s.destroy();
    await serverHealthy(client);
  });

  it('serves 1,000 concurrent connections', async () => {
    const sessions = [];
    try {
      for (let i = 0; i < 1000; i++) sessions.push(h2());
      const results = await Promise.all(sessions.map((s) => grpcCall(s, '/event_store.client.server_features.ServerFeatures/GetSupportedMethods', grpcFrame(Buffer.alloc(0))).result));
      assert.equal(results.filter((r) => r.status === 0).length, 1000);
      const stream = `${tag}-thousand`;
      const appends = await Promise.all(sessions.slice(0, 200).map((s, i) =>
        grpcCall(s, '/event_store.client.streams.Streams/Append', Buffer.concat([grpcFrame(appendOptions(stream)), grpcFrame(proposed('T', JSON.stringify({ i })))])).result));
      assert.equal(appends.filter((r) => r.status === 0).length, 200);
      let n = 0;
      for await (const e of client.readStream(stream, { maxCount: 1000 })) { assert.equal(e.event.revision, BigInt(n)); n++; }
      assert.equal(n, 200);
    } finally {
      for (const s of sessions) s.destroy();
    }
    await serverHealthy(client);
  });

  it('stores all or nothing of appends whose clients vanish in the middle', async () => {
    const streams = [];
    for (let i = 0; i < 30; i++) {
      const stream = `${tag}-cut-${i}`;
      streams.push(stream);
      const s = h2();
      const { req } = grpcCall(s, '/event_store.client.streams.Streams/Append', null, { end: false });
      req.write(grpcFrame(appendOptions(stream)));
      for (let k = 0; k < 50; k++) req.write(grpcFrame(proposed('Part', JSON.stringify({ k }))));
      if (i % 3 === 0) req.end(); // some complete...
      await new Promise((r) => setTimeout(r, i % 2 ? 0 : 5));
      s.destroy(); // ...and then the connection is gone, mid-append or right after
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const stream of streams) {
      let n = 0;
      try { for await (const e of client.readStream(stream, { maxCount: 100 })) { assert.equal(e.event.revision, BigInt(n)); n++; } }
      catch (e) { assert.equal(e.constructor.name, 'StreamNotFoundError'); }
      assert.ok(n === 0 || n === 50, `${stream} holds ${n} events`);
    }
    await serverHealthy(client);
  });
});
