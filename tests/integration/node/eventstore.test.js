// The Streams scenarios with @eventstore/db-client 6.x (pure grpc-js).
'use strict';
const lib = require('@eventstore/db-client');
const { run } = require('./scenarios');
const subscriptions = require('./subscriptions');
const persistent = require('./persistent');
run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6', filters: false, multiStream: false, edgeReads: true, appendOption: 'expectedRevision' });
subscriptions.run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6', filters: false, multiStream: false, edgeReads: true, appendOption: 'expectedRevision' });
persistent.run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6', filters: false, multiStream: false, edgeReads: true, appendOption: 'expectedRevision' });
