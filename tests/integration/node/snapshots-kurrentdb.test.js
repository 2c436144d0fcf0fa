// Snapshots by factum's convention with @kurrent/kurrentdb-client 1.x (snapshots.js).
'use strict';
const lib = require('@kurrent/kurrentdb-client');
require('./snapshots').run('kurrentdb', lib, (url) => lib.KurrentDBClient.connectionString(url), 'streamState');
