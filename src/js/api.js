// api.js - KurrentDB's projection API (fromAll().when({...}), partitionBy,
// outputState, emit, linkTo, ...), run by factum-js before a projection's
// source. Its value is a function that the worker (engine.cc) calls once
// with the global object and a native log function; it installs the
// definition functions as globals and returns the control object the
// worker drives: define() after the source ran, then step() per event,
// load() for states the worker had to ask for, finish() per batch.
//
// Semantics follow KurrentDB's runtime (JintProjectionStateHandler and the
// checks of ReaderStrategy), docs/adr/0006-javascript-engine.md lists them:
//  - handlers get (state, event) and their return value, unless undefined,
//    becomes the state; with no handler for a type and no $any the state
//    becomes the event's body (KurrentDB's default fold);
//  - a partition's state is $init() (or {}) the first time it is met, then
//    $created(state, event) runs (return ignored), then the handler;
//  - biState: handlers get [state, shared] and return it; $initShared()
//    makes the shared state;
//  - events with empty data are not given to handlers;
//  - $deleted(state, null, partition, false) for a deleted stream
//    (foreachStream only; its return is ignored);
//  - results: outputState() gives the state itself, transformBy/filterBy
//    a transformed copy, null (a removed result) when a filter says no.
// Where KurrentDB's runtime is incomplete we keep its older engine's
// meaning: copyTo(stream, event, metadata) copies the event (Jint's does
// nothing), linkStreamTo accepts its metadata.
(function (global, nativeLog) {
    'use strict';

    const NEED_PARTITION = 1, NEED_SHARED = 2, HAS_OUTPUT = 4;
    const OUT_EMIT = 0, OUT_LINK_TO = 1, OUT_LINK_STREAM = 2;

    // ---- the definition, as KurrentDB's SourceDefinitionBuilder keeps it
    const def = {
        allStreams: false, categories: [], streams: [], allEvents: true, events: [],
        byStreams: false, byCustom: false, definesFold: false, handlesDeleted: false,
        producesResults: false, definesStateTransform: false, includeLinks: false,
        reorderEvents: false, processingLag: 0, biState: false,
        resultStreamName: null, partitionResultStreamNamePattern: null,
    };
    const handlers = new Map(); // event type -> function
    const created = [];
    const transforms = []; // [isFilter, fn]
    let init = null, initShared = null, any = null, deleted = null, partitionFn = null;
    let defining = true;

    // ---- running
    const parts = new Map(); // partition -> { state, fresh, json }
    const touched = new Set();
    let shared, sharedLoaded = false, sharedFresh = false, sharedTouched = false, sharedJson = null;
    let lastKey = null;
    let pendingAt = -1, pendingKey = null; // the partition of the event stopped for want of a state
    let current = -1; // index of the event whose handler runs
    let out = [];     // outputs not yet taken: 7 values each
    let category = null;
    let needKey = '';

    function argError(name, what) {
        return new TypeError(what ? `${name}: ${what}` : `${name} may not be null or empty`);
    }

    // ---- the definition functions (globals until define() runs) --------

    // What each step of the chain offers next (KurrentDB's RestrictProperties).
    const next = {
        fromAll: ['when', 'partitionBy', 'outputState', 'foreachStream'],
        fromCategory: ['when', 'partitionBy', 'outputState', 'foreachStream'],
        fromStream: ['when', 'partitionBy', 'outputState'],
        when: ['transformBy', 'filterBy', 'outputState', 'outputTo', '$defines_state_transform'],
        foreachStream: ['when'],
        partitionBy: ['when'],
        outputState: ['transformBy', 'filterBy', 'outputTo'],
        transformBy: ['transformBy', 'filterBy', 'outputState', 'outputTo'],
        filterBy: ['transformBy', 'filterBy', 'outputState', 'outputTo'],
        outputTo: [],
    };
    const steps = {
        when(h) {
            if (h !== null && typeof h === 'object') {
                for (const name of Object.getOwnPropertyNames(h)) {
                    const f = h[name];
                    if (typeof f === 'function') addHandler(name, f);
                }
            }
            def.definesFold = true;
            return stage('when');
        },
        partitionBy(f) {
            if (typeof f !== 'function') throw argError('partitionBy', 'a function expected');
            def.byCustom = true;
            partitionFn = f;
            return stage('partitionBy');
        },
        foreachStream() {
            def.byStreams = true;
            return stage('foreachStream');
        },
        outputState() {
            def.producesResults = true;
            return stage('outputState');
        },
        transformBy(f) {
            if (typeof f !== 'function') throw argError('transformBy', 'a function expected');
            def.definesStateTransform = def.producesResults = true;
            transforms.push([false, f]);
            return stage('transformBy');
        },
        filterBy(f) {
            if (typeof f !== 'function') throw argError('filterBy', 'a function expected');
            def.definesStateTransform = def.producesResults = true;
            transforms.push([true, f]);
            return stage('filterBy');
        },
        outputTo(resultStream, partitionPattern) {
            if (arguments.length !== 1 && arguments.length !== 2)
                throw argError('outputTo', 'invalid number of parameters');
            if (typeof resultStream !== 'string') throw argError('outputTo', 'a string expected (resultStream)');
            if (arguments.length === 2 && typeof partitionPattern !== 'string')
                throw argError('outputTo', 'a string expected (partitionResultStreamPattern)');
            def.resultStreamName = blankToNull(resultStream);
            if (arguments.length === 2) def.partitionResultStreamNamePattern = blankToNull(partitionPattern);
            return stage('outputTo');
        },
        $defines_state_transform() {
            def.definesStateTransform = def.producesResults = true;
        },
    };
    function stage(name) {
        const o = {};
        for (const k of next[name]) o[k] = steps[k];
        return o;
    }
    function blankToNull(s) {
        return s.trim() === '' ? null : s;
    }

    function addHandler(name, f) {
        switch (name) {
        case '$init': init = f; break;
        case '$initShared': def.biState = true; initShared = f; break;
        case '$any': any = f; def.allEvents = true; break;
        case '$created': created.push(f); break;
        case '$deleted':
            if (def.biState) throw new Error('Cannot handle deletes in bi-state projections');
            def.handlesDeleted = true;
            deleted = f;
            break;
        default:
            def.allEvents = false;
            def.events.push(name);
            handlers.set(name, f);
        }
    }

    const setters = {
        $includelinks: (v) => { def.includeLinks = bool(v); },
        reorderevents: (v) => { def.reorderEvents = bool(v); },
        processinglag: (v) => {
            if (typeof v !== 'number') throw new Error('Invalid value');
            def.processingLag = v | 0;
        },
        resultstreamname: (v) => {
            if (typeof v !== 'string') throw new Error('Invalid value');
            def.resultStreamName = blankToNull(v);
        },
        bistate: (v) => { def.biState = bool(v); },
    };
    function bool(v) {
        if (typeof v !== 'boolean') throw new Error('Invalid value');
        return v;
    }

    const definitionGlobals = {
        options(o) {
            if (o !== null && typeof o === 'object') {
                for (const k of Object.getOwnPropertyNames(o)) {
                    const set = setters[k.toLowerCase()];
                    if (!set) throw new Error(`Unrecognized option: ${k}`);
                    set(o[k]);
                }
            }
        },
        fromAll() {
            def.allStreams = true;
            return stage('fromAll');
        },
        fromStream(s) {
            if (typeof s !== 'string') throw argError('fromStream', 'a string expected');
            def.streams.push(s);
            return stage('fromStream');
        },
        fromStreams(...a) {
            const list = Array.isArray(a[0]) ? a[0] : a;
            for (const s of list) {
                if (typeof s !== 'string') throw argError('fromStreams', 'strings expected');
                def.streams.push(s);
            }
            return stage('fromStream');
        },
        // One category reads "$ce-<name>" as a category; several are
        // several streams (KurrentDB's FromCategory).
        fromCategory(...a) {
            if (a.length === 0) return stage('fromCategory');
            if (a.length === 1 && Array.isArray(a[0])) {
                for (const c of a[0]) {
                    if (typeof c !== 'string') throw argError('fromCategories', 'strings expected');
                    def.streams.push('$ce-' + c);
                }
            } else if (a.length > 1) {
                for (const c of a) {
                    if (typeof c !== 'string') throw argError('fromCategories', 'strings expected');
                    def.streams.push('$ce-' + c);
                }
            } else {
                if (typeof a[0] !== 'string') throw argError('fromCategory', 'a string expected');
                def.categories.push(a[0]);
            }
            return stage('fromCategory');
        },
        on_event(name, f) {
            if (arguments.length !== 2) throw argError('on_event', 'invalid number of parameters');
            if (typeof name !== 'string') throw argError('on_event', 'eventName');
            if (typeof f !== 'function') throw argError('on_event', 'eventHandler');
            addHandler(name, f);
        },
        on_any(f) {
            if (typeof f !== 'function') throw argError('on_any', 'eventHandler');
            addHandler('$any', f);
        },
    };
    definitionGlobals.fromCategories = definitionGlobals.fromCategory;
    for (const k of Object.keys(definitionGlobals))
        Object.defineProperty(global, k, { value: definitionGlobals[k], writable: true, configurable: true });

    // ---- what handlers call ---------------------------------------------

    function handlerOnly(name) {
        if (current < 0) throw new Error(`${name}() can only be called from a handler`);
    }
    function nonEmptyString(v, name) {
        if (typeof v === 'string' && v.trim() !== '') return v;
        if (v === null || v === undefined || typeof v === 'string') throw argError(name);
        throw argError(name, 'a string expected');
    }
    function objectArg(v, name) {
        if (v === null || v === undefined) throw argError(name);
        if (typeof v !== 'object' && typeof v !== 'function') throw argError(name, 'an object expected');
        return v;
    }
    function metaJson(m, name) {
        if (m === undefined || m === null) return null;
        if (typeof m !== 'object') throw argError(name, 'an object expected');
        return JSON.stringify(m);
    }
    function output(kind, stream, type, data, isJson, meta) {
        out.push(current, kind, stream, type, data, isJson, meta);
    }

    const api = {
        emit(streamId, eventType, body, metadata) {
            handlerOnly('emit');
            if (arguments.length < 3) throw argError('emit', 'invalid number of parameters');
            const s = nonEmptyString(streamId, 'streamId'), t = nonEmptyString(eventType, 'eventName');
            const data = JSON.stringify(objectArg(body, 'eventBody'));
            output(OUT_EMIT, s, t, data, true, metaJson(metadata, 'metadata'));
        },
        linkTo(streamId, event, metadata) {
            handlerOnly('linkTo');
            if (arguments.length !== 2 && arguments.length !== 3) throw argError('linkTo', 'wrong number of parameters');
            const s = nonEmptyString(streamId, 'streamId');
            const e = objectArg(event, 'event');
            const n = e.sequenceNumber, src = e.streamId;
            if (typeof n !== 'number' || typeof src !== 'string') throw new Error(`Invalid link to event ${n}@${src}`);
            output(OUT_LINK_TO, s, '$>', `${n}@${src}`, false, metaJson(metadata, 'metaData'));
        },
        linkStreamTo(streamId, linkedStreamId, metadata) {
            handlerOnly('linkStreamTo');
            const s = nonEmptyString(streamId, 'streamId'), l = nonEmptyString(linkedStreamId, 'linkedStreamId');
            output(OUT_LINK_STREAM, s, '$@', l, false, metaJson(metadata, 'metaData'));
        },
        copyTo(streamId, event, metadata) {
            handlerOnly('copyTo');
            const s = nonEmptyString(streamId, 'streamId');
            const e = objectArg(event, 'event');
            const m = {};
            const em = e.metadata;
            if (em !== null && typeof em === 'object') Object.assign(m, em);
            if (metadata !== null && metadata !== undefined) Object.assign(m, objectArg(metadata, 'metadata'));
            const type = nonEmptyString(e.eventType, 'eventType');
            output(OUT_EMIT, s, type, String(e.bodyRaw ?? ''), e.isJson === true, JSON.stringify(m));
        },
        log(...args) {
            nativeLog(args.map((a) => (a !== null && typeof a === 'object' ? JSON.stringify(a) : String(a))).join(' '));
        },
    };
    for (const k of Object.keys(api))
        Object.defineProperty(global, k, { value: api[k], writable: true, configurable: true });

    // ---- the event object ------------------------------------------------

    const BODY = Symbol('body'), META = Symbol('metadata'), LINK = Symbol('linkMetadata');
    const MS = Symbol('ms'), TICKS = Symbol('ticks'), UNSET = Symbol('unset');

    function Event(stream, type, seq, id, data, isJson, meta, linkMeta, partition, cat, ms, ticks) {
        this.streamId = stream;
        this.sequenceNumber = seq;
        this.eventType = type;
        this.eventId = id;
        this.isJson = isJson;
        this.bodyRaw = data;
        this.metadataRaw = meta;
        this.linkMetadataRaw = linkMeta;
        this.partition = partition;
        this.category = cat;
        this[BODY] = UNSET;
        this[META] = UNSET;
        this[LINK] = UNSET;
        this[MS] = ms;
        this[TICKS] = ticks;
    }
    function parsedBody() {
        let b = this[BODY];
        if (b === UNSET) b = this[BODY] = this.isJson ? JSON.parse(this.bodyRaw) : undefined;
        return b;
    }
    function parsedOrNull(raw) {
        return raw === null || raw === '' ? null : JSON.parse(raw);
    }
    Object.defineProperties(Event.prototype, {
        body: { get: parsedBody, enumerable: true },
        data: { get: parsedBody, enumerable: true },
        metadata: {
            get() {
                let m = this[META];
                if (m === UNSET) m = this[META] = parsedOrNull(this.metadataRaw);
                return m;
            },
            enumerable: true,
        },
        linkMetadata: {
            get() {
                let m = this[LINK];
                if (m === UNSET) m = this[LINK] = this.linkMetadataRaw === null ? undefined : parsedOrNull(this.linkMetadataRaw);
                return m;
            },
            enumerable: true,
        },
        // .NET's round-trip format ("o"), as KurrentDB gives it: 7 digits of fraction.
        created: {
            get() {
                const iso = new Date(this[MS]).toISOString();
                return iso.slice(0, 23) + String(this[TICKS]).padStart(4, '0') + 'Z';
            },
            enumerable: true,
        },
        toJSON: {
            value() {
                const o = {};
                for (const k of ['streamId', 'sequenceNumber', 'eventType', 'eventId', 'isJson', 'body', 'bodyRaw',
                    'metadata', 'metadataRaw', 'linkMetadata', 'linkMetadataRaw', 'partition', 'category', 'created'])
                    o[k] = this[k];
                return o;
            },
        },
    });

    // ---- the control object ------------------------------------------------

    function validate() {
        // ReaderStrategy.Create's checks, with its messages.
        const hasStreams = def.streams.length > 0, hasCategories = def.categories.length > 0;
        if (!def.allStreams && !hasCategories && !hasStreams) throw new Error('None of streams and categories are included');
        if (!def.allEvents && def.events.length === 0) throw new Error('None of events are included');
        if (hasStreams && hasCategories) throw new Error('Streams and categories cannot be included in a filter at the same time');
        if (def.allStreams && (hasCategories || hasStreams)) throw new Error('Both FromAll and specific categories/streams cannot be set');
        if (def.allEvents && def.events.length > 0) throw new Error('Both AllEvents and specific event filters cannot be set');
        if (def.byStreams && hasStreams) throw new Error('foreachStream projections are not supported on stream based sources');
        if (def.reorderEvents) {
            if (def.allStreams) throw new Error('Event reordering cannot be used with fromAll()');
            if (!(hasStreams && def.streams.length > 1)) throw new Error('Event reordering is only available in fromStreams([]) projections');
            if (def.processingLag < 50) throw new Error('Event reordering requires processing lag at least of 50ms');
        }
        if (def.handlesDeleted && !def.byStreams) throw new Error('Deleted stream notifications are only supported with foreachStream()');
    }

    function partitionOf(stream, type, seq, id, data, isJson, meta, linkMeta, ms, ticks) {
        if (def.byStreams) {
            if (linkMeta !== null && linkMeta.indexOf('"$o"') >= 0) {
                const m = JSON.parse(linkMeta);
                if (m !== null && typeof m === 'object' && typeof m.$o === 'string') return m.$o;
            }
            return stream.startsWith('$$') ? stream.slice(2) : stream;
        }
        if (partitionFn !== null) {
            const e = new Event(stream, type, seq, id, data, isJson, meta, linkMeta, '', category, ms, ticks);
            const p = partitionFn(e);
            if (typeof p === 'string') return p;
            if (typeof p === 'number') return String(p);
            return null; // the event belongs to no partition: skipped
        }
        return '';
    }

    function initState() {
        return init !== null ? init() : {};
    }

    // The partition's state, initialized if it is new: [entry, isNew].
    function enter(p, key) {
        let fresh = p.fresh;
        // KurrentDB initializes a partition whose stored state is empty
        // each time it switches to it.
        if (!fresh && key !== lastKey && (p.state === null || p.state === undefined)) fresh = true;
        if (fresh) {
            p.fresh = false;
            p.state = initState();
        }
        if (def.biState && sharedFresh) {
            sharedFresh = false;
            shared = initShared !== null ? initShared() : {};
            sharedTouched = true;
        }
        lastKey = key;
        touched.add(key);
        if (parts.size > 1) {
            // most recently used last (the cache's eviction order)
            parts.delete(key);
            parts.set(key, p);
        }
        return fresh;
    }

    function fold(p, st) {
        if (def.biState) {
            sharedTouched = true;
            if (Array.isArray(st)) {
                p.state = st[0];
                shared = st[1];
            } else {
                p.state = st;
            }
        } else {
            p.state = st;
        }
    }

    function isBlank(s) {
        if (s.length === 0) return true;
        const c = s.charCodeAt(0);
        return (c === 32 || c === 9 || c === 10 || c === 13) && s.trim() === '';
    }

    function stringifyState(v) {
        if (v === null || v === undefined) return null;
        const s = JSON.stringify(v);
        return s === undefined ? null : s;
    }

    function result(p) {
        let st = def.biState ? [p.state, shared] : p.state;
        for (const [isFilter, f] of transforms) {
            if (isFilter) {
                if (f(st) !== true) return null;
            } else {
                st = f(st);
            }
            if (st === null || st === undefined) return null;
        }
        return stringifyState(st);
    }

    return {
        NEED_PARTITION, NEED_SHARED, HAS_OUTPUT,

        // After the source ran: check it, drop the definition globals, and
        // describe it for the host.
        define() {
            validate();
            for (const k of Object.keys(definitionGlobals)) delete global[k];
            defining = false;
            if (def.categories.length === 1) category = def.categories[0];
            if (def.biState) sharedLoaded = false;
            const flags = (def.allStreams ? 0x1 : 0) | (def.allEvents ? 0x2 : 0) | (def.byStreams ? 0x4 : 0) |
                (def.byCustom ? 0x8 : 0) | (def.definesFold ? 0x10 : 0) | (def.handlesDeleted ? 0x20 : 0) |
                (def.producesResults ? 0x40 : 0) | (def.includeLinks ? 0x80 : 0) | (def.reorderEvents ? 0x100 : 0) |
                (def.biState ? 0x200 : 0) | (def.definesStateTransform ? 0x400 : 0);
            return [flags, def.processingLag, def.resultStreamName, def.partitionResultStreamNamePattern,
                def.streams, def.categories, def.events];
        },

        // Handle event i: 0, or NEED_PARTITION (needKey says which) or
        // NEED_SHARED before it did anything, with HAS_OUTPUT or'ed in
        // when outputs wait to be taken.
        step(i, stream, type, seq, id, data, isJson, meta, linkMeta, ms, ticks, isDeleted) {
            let key;
            if (pendingAt === i) {
                key = pendingKey;
            } else {
                if (isDeleted) {
                    if (deleted === null) return 0;
                    key = stream.startsWith('$$') ? stream.slice(2) : stream;
                } else {
                    current = i;
                    try {
                        key = partitionOf(stream, type, seq, id, data, isJson, meta, linkMeta, ms, ticks);
                    } finally {
                        current = -1;
                    }
                    if (key === null) return out.length ? HAS_OUTPUT : 0;
                }
            }
            const p = parts.get(key);
            if (p === undefined) {
                pendingAt = i;
                pendingKey = needKey = key;
                return NEED_PARTITION | (out.length ? HAS_OUTPUT : 0);
            }
            if (def.biState && !sharedLoaded) {
                pendingAt = i;
                pendingKey = key;
                return NEED_SHARED | (out.length ? HAS_OUTPUT : 0);
            }
            pendingAt = -1;
            pendingKey = null;
            current = i;
            try {
                if (isDeleted) {
                    enter(p, key);
                    deleted(def.biState ? [p.state, shared] : p.state, null, key, false);
                    return out.length ? HAS_OUTPUT : 0;
                }
                const isNew = enter(p, key);
                let st = def.biState ? [p.state, shared] : p.state;
                let ev = null;
                if (isNew && created.length) {
                    ev = new Event(stream, type, seq, id, data, isJson, meta, linkMeta, key, '', ms, ticks);
                    for (const f of created) f(st, ev);
                }
                if (isJson ? isBlank(data) : data.length === 0) return out.length ? HAS_OUTPUT : 0;
                let f = handlers.get(type);
                if (f === undefined) f = any;
                ev = new Event(stream, type, seq, id, data, isJson, meta, linkMeta, key, category, ms, ticks);
                if (f !== null) {
                    const r = f(st, ev);
                    if (r !== undefined) st = r;
                } else {
                    st = isJson ? ev.body : data;
                }
                fold(p, st);
                return out.length ? HAS_OUTPUT : 0;
            } finally {
                current = -1;
            }
        },

        // The outputs written since the last call: 7 values each (source,
        // kind, stream, type, data, isJson, metadata JSON or null).
        takeOutputs() {
            const o = out;
            out = [];
            return o;
        },

        needKey() {
            return needKey;
        },

        // A state from the host: JSON text, or null for none yet.
        load(key, isShared, json) {
            const v = json === null || json === '' ? undefined : JSON.parse(json);
            if (isShared) {
                shared = v;
                sharedLoaded = true;
                sharedFresh = v === undefined;
                sharedJson = v === undefined ? null : json;
                return;
            }
            parts.set(key, { state: v, fresh: v === undefined, json: v === undefined ? null : json });
        },

        // The end of a batch: for each partition whose state changed, its
        // key, state JSON (null: none) and result JSON (null: removed,
        // undefined: the projection has no results), then the shared state
        // (undefined if unchanged). Then the cache is trimmed to keep.
        finish(keep) {
            const r = [];
            for (const key of touched) {
                const p = parts.get(key);
                const json = stringifyState(p.state);
                if (json === p.json) continue;
                p.json = json;
                let res;
                if (def.producesResults) res = def.definesStateTransform ? result(p) : json;
                r.push(key, json, res);
            }
            touched.clear();
            let sh;
            if (sharedTouched) {
                sharedTouched = false;
                const json = stringifyState(shared);
                if (json !== sharedJson) sh = sharedJson = json;
            }
            r.push(sh);
            if (parts.size > keep) {
                for (const key of parts.keys()) {
                    if (parts.size <= keep) break;
                    if (key !== lastKey) parts.delete(key);
                }
            }
            return r;
        },

        // The state as the worker holds it (JSON), or null.
        getState(key, isShared) {
            if (isShared) return sharedLoaded && !sharedFresh ? stringifyState(shared) : null;
            const p = parts.get(key);
            return p === undefined || p.fresh ? null : stringifyState(p.state);
        },

        partitions() {
            return parts.size;
        },

        defining() {
            return defining;
        },
    };
})
