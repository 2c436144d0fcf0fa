// rmapi.js - what a read model's JavaScript handlers see (docs/readmodels.md,
// "JavaScript handlers"), run by factum-js in its read-model mode (OPEN_RM,
// src/jshost/jsproto.h) before the read model's script. Its value is a
// function that the worker (engine.cc) calls once with the global object and
// a native log function; it installs sql() and log() as globals and returns
// the control object the worker drives: define(value of the script), then
// step() per event and take() for the statements its handler asked for.
//
// A handler keeps no state: the tables are the state, and it may not read
// them (sql() only queues a statement; the applier runs them, in the
// batch's transaction, after the whole page went through the script). What
// a handler asks for must depend on the event alone, so that a rebuild or a
// batch applied again after a crash does the same.
(function (global, nativeLog) {
    'use strict';

    const MAX_CALLS = 10000;      // PJP_SQL_CALLS
    const MAX_TEXT = 1 << 20;     // PJP_SQL_MAX (bytes; checked on characters here, in bytes by the worker)
    const MAX_PARAMS = 16 << 20;  // PJP_EVENT_MAX

    let handlers = null;
    let any = null;
    let self = null;
    let current = -1; // index of the event whose handler runs
    let out = [];     // two values per sql(): the text, the parameters' JSON
    let calls = 0;

    function describe(v) {
        if (v === null) return 'null';
        if (Array.isArray(v)) return 'an array';
        return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v).slice(0, 40)}`;
    }

    // Parameters as JSON: undefined binds NULL (the name is given), a
    // BigInt its decimal text.
    function replacer(k, v) {
        if (v === undefined) return null;
        if (typeof v === 'bigint') return v.toString();
        return v;
    }

    function sql(text, params) {
        if (current < 0) throw new Error('sql() can only be called from a handler');
        if (typeof text !== 'string' || text.trim() === '')
            throw new TypeError('sql(text, params): the text must be a non-empty string');
        if (text.length > MAX_TEXT) throw new RangeError(`sql(): a statement of more than ${MAX_TEXT} bytes`);
        let p = '{}';
        if (params !== undefined && params !== null) {
            if (typeof params !== 'object' || Array.isArray(params))
                throw new TypeError('sql(text, params): params must be an object of named parameters, not ' +
                    describe(params));
            p = JSON.stringify(params, replacer);
            if (p.length > MAX_PARAMS) throw new RangeError(`sql(): parameters of more than ${MAX_PARAMS} bytes`);
        }
        if (++calls > MAX_CALLS) throw new RangeError(`more than ${MAX_CALLS} sql() calls for one event`);
        out.push(text, p);
    }

    function log(...args) {
        nativeLog(args.map((a) => (a !== null && typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' '));
    }

    for (const [k, f] of [['sql', sql], ['log', log]])
        Object.defineProperty(global, k, { value: f, writable: false, configurable: false });

    // data and metadata: the parsed JSON, or the raw text if it is not
    // JSON; null when empty.
    function parse(raw) {
        if (raw === '') return null;
        try {
            return JSON.parse(raw);
        } catch (x) {
            return raw;
        }
    }

    const DATA = Symbol('data'), META = Symbol('metadata'), UNSET = Symbol('unset');
    const MS = Symbol('ms'), MICROS = Symbol('micros');

    function Event(type, stream, version, position, id, dataRaw, metaRaw, ms, micros) {
        this.type = type;
        this.stream = stream;
        this.version = version;
        this.position = position;
        this.id = id;
        this[MS] = ms;
        this[MICROS] = micros;
        this.dataRaw = dataRaw;
        this.metadataRaw = metaRaw;
        this[DATA] = UNSET;
        this[META] = UNSET;
    }
    Object.defineProperties(Event.prototype, {
        data: {
            get() {
                if (this[DATA] === UNSET) this[DATA] = parse(this.dataRaw);
                return this[DATA];
            },
            enumerable: true,
        },
        metadata: {
            get() {
                if (this[META] === UNSET) this[META] = parse(this.metadataRaw);
                return this[META];
            },
            enumerable: true,
        },
        // The stream's name before its first '-' (:category).
        category: {
            get() {
                const i = this.stream.indexOf('-');
                return i < 0 ? this.stream : this.stream.slice(0, i);
            },
            enumerable: true,
        },
        // ISO 8601 UTC with microseconds, as :timestamp.
        timestamp: {
            get() {
                return new Date(this[MS]).toISOString().slice(0, 23) + String(this[MICROS]).padStart(3, '0') + 'Z';
            },
            enumerable: true,
        },
        toJSON: {
            value() {
                const o = {};
                for (const k of ['type', 'stream', 'category', 'version', 'position', 'id', 'timestamp', 'data',
                    'metadata'])
                    o[k] = this[k];
                return o;
            },
        },
    });

    return {
        // The script's value: an object of handler functions by event type
        // ($any: any type). Returns the definition as for projections:
        // [flags, 0, null, null, [], [], types].
        define(obj) {
            if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
                throw new TypeError('the script must evaluate to an object of handler functions, such as ' +
                    '({ Deposited(e) { sql("...", {...}); } }), not ' + describe(obj) +
                    ' (an object literal alone needs parentheses)');
            const names = Object.getOwnPropertyNames(obj);
            if (names.length === 0) throw new TypeError('the script\'s object has no handlers');
            const types = [];
            handlers = new Map();
            for (const k of names) {
                const f = obj[k];
                if (typeof f !== 'function')
                    throw new TypeError(`the script's member "${k}" must be a handler function, not ${describe(f)}`);
                // sql() queues statements: there is nothing to await, and what
                // an async or generator function did after its first step
                // would be lost.
                const kind = Object.getPrototypeOf(f).constructor.name;
                if (kind !== 'Function')
                    throw new TypeError(`the script's handler "${k}" is async or a generator (${kind}): handlers ` +
                        'must be plain synchronous functions');
                if (k === '$any') {
                    any = f;
                } else {
                    handlers.set(k, f);
                    types.push(k);
                }
            }
            self = obj;
            return [any !== null ? 0x2 : 0, 0, null, null, [], [], types];
        },

        // Run event i's handler: the number of statements it asked for
        // (take() them), or an exception.
        step(i, type, stream, version, position, id, data, meta, ms, micros) {
            out = [];
            calls = 0;
            let f = handlers.get(type);
            if (f === undefined) f = any;
            if (f === null) return 0;
            current = i;
            try {
                const r = f.call(self, new Event(type, stream, version, position, id, data, meta, ms, micros));
                if (r !== null && typeof r === 'object' && typeof r.then === 'function')
                    throw new TypeError('the handler returned a promise: handlers must be synchronous');
            } catch (x) {
                out = [];
                throw x;
            } finally {
                current = -1;
            }
            return out.length >> 1;
        },

        take() {
            const o = out;
            out = [];
            return o;
        },
    };
})
