// The Streams scenarios with @kurrent/kurrentdb-client 1.x (reads through its Rust bridge).
'use strict';
const lib = require('@kurrent/kurrentdb-client');
const { run } = require('./scenarios');
const subscriptions = require('./subscriptions');
const persistent = require('./persistent');
run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1', filters: true, multiStream: true, edgeReads: false, appendOption: 'streamState' });
subscriptions.run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1', filters: true, multiStream: true, edgeReads: false, appendOption: 'streamState' });
persistent.run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1', filters: true, multiStream: true, edgeReads: false, appendOption: 'streamState' });
