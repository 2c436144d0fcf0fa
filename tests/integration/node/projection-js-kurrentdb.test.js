// JavaScript projections (projection-js.js) with @kurrent/kurrentdb-client 1.x.
'use strict';
const lib = require('@kurrent/kurrentdb-client');
const { run } = require('./projection-js');
run(lib, (url) => lib.KurrentDBClient.connectionString(url), { name: 'k1' });
