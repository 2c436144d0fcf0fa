// The Projections service (projection-service.js) with @kurrent/kurrentdb-client 1.x.
'use strict';
const lib = require('@kurrent/kurrentdb-client');
const { run } = require('./projection-service');
run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1' });
