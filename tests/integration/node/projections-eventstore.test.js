// The system projections (system-projections.js) with @eventstore/db-client 6.x.
'use strict';
const lib = require('@eventstore/db-client');
const { run } = require('./system-projections');
run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6', filters: false });
