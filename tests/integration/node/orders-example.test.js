// The orders as a Node application (examples/orders/node/orders.js) with the
// official client against factumd: 30 orders through the saga with failures
// at every step and payments that time out through factum's scheduled events
// (a plain append to $scheduled, delivered by factumd into the payment's
// stream); every order completed or fully compensated in reverse order; the
// same run again changes nothing (every write is an idempotent replay).
'use strict';
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { execFile } = require('node:child_process');

process.env.NODE_PATH = path.join(__dirname, 'node_modules'); // for the example, outside this package
require('node:module').Module._initPaths();
const ordersPath = path.join(__dirname, '../../../examples/orders/node/orders.js');
const orders = require(ordersPath);
const url = process.env.FACTUMD_URL;
const seed = crypto.randomUUID().slice(0, 8);

function cli(...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [ordersPath, url, ...args], { env: process.env, timeout: 120000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, out: stdout + stderr });
    });
  });
}

describe('the orders in Node', () => {
  it('derives ids as libfactum does', () => {
    assert.equal(orders.deriveId('00010203-0405-0607-0809-0a0b0c0d0e0f', 'account-1', 2), 'c2bd4492-a06f-845d-a42d-d728fe105c39');
  });

  it('compensates the completed steps in reverse order', () => {
    let r = orders.transition(null, { type: 'OrderPlaced', data: { orderId: 'n1', amount: 5 } });
    assert.deepEqual(r.effects, [['schedule', 0], ['do', 0]]);
    for (const t of ['PaymentCharged', 'InventoryReserved', 'ShipmentCreated']) r = orders.transition(r.st, { type: t });
    r = orders.transition(r.st, { type: 'OrderCompletionRefused' });
    const undo = [];
    while (r && r.st.status === 'compensating') {
      undo.push(r.effects);
      const next = r.st.step === -1 ? 'OrderCancelled' : ['PaymentRefunded', 'InventoryReleased', 'ShipmentCancelled'][r.st.step];
      r = orders.transition(r.st, { type: next });
    }
    assert.deepEqual(undo, [[['undo', 2]], [['undo', 1]], [['undo', 0]], [['cancel', -1]]]);
    assert.equal(r.st.status, 'compensated');
  });

  it('runs 30 orders end to end, and again', async () => {
    const first = await cli('run', '30', seed, '0.15', '0.15');
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /^30 orders: \d+ completed, \d+ compensated, 0 wrong$/m);
    const again = await cli('run', '30', seed, '0.15', '0.15');
    assert.equal(again.code, 0, again.out);
    assert.equal(again.out.split('\n')[0], first.out.split('\n')[0]);
    assert.equal((await cli('run')).code, 1);
  });
});
