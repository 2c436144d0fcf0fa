// The Projections service (projection-service.js) with @eventstore/db-client 6.x.
'use strict';
const lib = require('@eventstore/db-client');
const { run } = require('./projection-service');
run(lib, (url) => lib.EventStoreDBClient.connectionString(url.replace(/^kurrentdb:/, 'esdb:')), { name: 'e6' });
