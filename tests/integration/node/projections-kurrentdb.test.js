// The system projections (system-projections.js) with @kurrent/kurrentdb-client 1.x.
'use strict';
const lib = require('@kurrent/kurrentdb-client');
const { run } = require('./system-projections');
run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1', filters: true });
