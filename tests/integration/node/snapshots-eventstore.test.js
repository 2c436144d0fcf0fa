// Snapshots by factum's convention with @eventstore/db-client 6.x (snapshots.js).
'use strict';
const lib = require('@eventstore/db-client');
require('./snapshots').run('eventstore', lib,
  (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), 'expectedRevision');
