// JavaScript projections (projection-js.js) with @eventstore/db-client 6.x.
'use strict';
const lib = require('@eventstore/db-client');
const { run } = require('./projection-js');
run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6' });
