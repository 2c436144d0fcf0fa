// upapi.js - what a script upcaster sees (docs/upcasting.md, "Script
// upcasters"), run by factum-js in its upcaster mode (OPEN_UP,
// src/jshost/jsproto.h) before the store's scripts are compiled. Its value is a
// function that the worker (engine.cc) calls once with the global object and
// a native log function; it makes the sandbox deterministic, installs log()
// and returns the control object the worker drives: define(i, value of script
// i), then step() per event.
//
// An upcast must depend on the event alone: the same stored event read twice,
// by two readers or a year apart, has one upcast form. So the sandbox has no
// clock and no randomness (Date.now(), Date() and new Date() without
// arguments, and Math.random() throw), and no I/O at all (V8 alone: no
// require, no timers, no network, no files; eval and new Function are off).
(function (global, nativeLog) {
    'use strict';

    const fns = [];

    function describe(v) {
        if (v === null) return 'null';
        if (v === undefined) return 'undefined';
        if (Array.isArray(v)) return 'an array';
        return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v).slice(0, 40)}`;
    }

    function nondeterministic(what) {
        return function () {
            throw new Error(`${what} is not available to upcasters: an upcast must depend on the event alone`);
        };
    }

    const RealDate = Date;
    function SafeDate(...args) {
        if (!new.target) nondeterministic('Date()')();
        if (args.length === 0) nondeterministic('new Date() without arguments')();
        return new RealDate(...args);
    }
    SafeDate.prototype = RealDate.prototype;
    Object.defineProperty(RealDate.prototype, 'constructor', { value: SafeDate });
    SafeDate.UTC = RealDate.UTC;
    SafeDate.parse = RealDate.parse;
    SafeDate.now = nondeterministic('Date.now()');
    Object.defineProperty(global, 'Date', { value: SafeDate, writable: false, configurable: false });
    Object.defineProperty(Math, 'random', { value: nondeterministic('Math.random()'), writable: false,
        configurable: false });

    function log(...args) {
        nativeLog(args.map((a) => (a !== null && typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' '));
    }
    Object.defineProperty(global, 'log', { value: log, writable: false, configurable: false });

    function isObject(v) {
        return v !== null && typeof v === 'object' && !Array.isArray(v);
    }

    return {
        // Script i's value: the upcaster function. Throws why it is not one.
        define(i, f) {
            if (typeof f !== 'function')
                throw new TypeError('the script must be a function expression, such as ' +
                    '"function (e) { e.data.cents = e.data.amount * 100; return e; }", not ' + describe(f));
            const kind = Object.getPrototypeOf(f).constructor.name;
            if (kind !== 'Function')
                throw new TypeError(`the script's function is async or a generator (${kind}): ` +
                    'an upcaster must be a plain synchronous function');
            fns[i] = f;
        },

        // Upcast one event with script i: [type, data JSON, metadata JSON or
        // null (unchanged)], or an exception.
        step(i, type, data, meta) {
            const f = fns[i];
            const m = meta === '' ? {} : JSON.parse(meta);
            const e = { type, data: JSON.parse(data), metadata: isObject(m) ? m : {} };
            const r = f.call(undefined, e);
            if (!isObject(r))
                throw new TypeError(`the script returned ${describe(r)}, not an object {type?, data, metadata?}`);
            if (typeof r.then === 'function')
                throw new TypeError('the script returned a promise: an upcaster must be synchronous');
            if (!isObject(r.data))
                throw new TypeError(`the script returned data that is ${describe(r.data)}, not an object`);
            let t = type;
            if (r.type !== undefined) {
                if (typeof r.type !== 'string' || r.type === '' || r.type[0] === '$')
                    throw new TypeError(`the script returned type ${describe(r.type)}: an event type is a ` +
                        'non-empty string that does not start with $');
                t = r.type;
            }
            let mo = null;
            if (r.metadata !== undefined && r.metadata !== null) {
                if (!isObject(r.metadata))
                    throw new TypeError(`the script returned metadata that is ${describe(r.metadata)}, not an object`);
                mo = JSON.stringify(r.metadata);
            }
            return [t, JSON.stringify(r.data), mo];
        },
    };
})
