// prelude.js - the part of KurrentDB's projection API that the engine
// prototypes need to run W10 and the isolation cases: fromAll/fromStream/
// fromStreams/fromCategory, options, when with $init, $any and per-type
// handlers, emit and linkTo (recorded, not written), log. The host (jsrt_duk.c,
// v8shim.cc) runs it once per engine and then calls the functions of
// __factum. Written in ES5 so that every candidate engine can load it.
//
// The state stays here between events as a JavaScript value; the host asks
// for its JSON only at checkpoints. An event's body and metadata arrive as
// JSON text and are parsed only if the handler reads them.
var __factum = (function (global) {
    'use strict';
    var def = { source: null, handlers: null, options: {}, partitioned: false };
    var state;
    var emitted = [];

    function Event(type, stream, seq, bodyRaw, metaRaw) {
        this.eventType = type;
        this.streamId = stream;
        this.sequenceNumber = seq;
        this.bodyRaw = bodyRaw;
        this.metadataRaw = metaRaw;
        this.isJson = true;
        this.partition = '';
        this._body = undefined;
        this._meta = undefined;
    }
    function parsedBody() {
        if (this._body === undefined) this._body = this.bodyRaw ? JSON.parse(this.bodyRaw) : null;
        return this._body;
    }
    Object.defineProperty(Event.prototype, 'body', { get: parsedBody });
    Object.defineProperty(Event.prototype, 'data', { get: parsedBody });
    Object.defineProperty(Event.prototype, 'metadata', {
        get: function () {
            if (this._meta === undefined) this._meta = this.metadataRaw ? JSON.parse(this.metadataRaw) : null;
            return this._meta;
        }
    });

    // What a source selection returns: the definition steps that may follow.
    var afterWhen = {
        outputState: function () { def.options.outputState = true; return afterWhen; },
        transformBy: function (f) { def.transform = f; return afterWhen; },
        filterBy: function (f) { def.filter = f; return afterWhen; },
        outputTo: function (s) { def.options.resultStreamName = s; return afterWhen; }
    };
    var selected = {
        when: function (handlers) {
            if (def.handlers) throw new Error('when() called twice');
            if (typeof handlers !== 'object' || handlers === null) throw new TypeError('when() needs an object of handlers');
            def.handlers = handlers;
            return afterWhen;
        },
        foreachStream: function () { def.partitioned = true; return selected; },
        partitionBy: function (f) { def.partitioned = true; def.partitionBy = f; return selected; }
    };
    function from(kind, what) {
        if (def.source) throw new Error('the projection selects its source twice');
        def.source = { kind: kind, what: what };
        return selected;
    }

    global.fromAll = function () { return from('all', null); };
    global.fromStream = function (s) { return from('stream', [s]); };
    global.fromStreams = function () {
        var a = Array.isArray(arguments[0]) ? arguments[0] : Array.prototype.slice.call(arguments);
        return from('streams', a);
    };
    global.fromCategory = function (c) { return from('category', [c]); };
    global.options = function (o) { for (var k in o) def.options[k] = o[k]; };
    global.emit = function (streamId, eventType, body, metadata) {
        emitted.push({ kind: 'emit', streamId: String(streamId), eventType: String(eventType),
                       body: JSON.stringify(body), metadata: metadata ? JSON.stringify(metadata) : null });
    };
    global.linkTo = function (streamId, event, metadata) {
        emitted.push({ kind: 'link', streamId: String(streamId),
                       target: event.sequenceNumber + '@' + event.streamId,
                       metadata: metadata ? JSON.stringify(metadata) : null });
    };
    global.log = function () {};

    function handlers() {
        if (!def.handlers) throw new Error('the projection defines no handlers (fromAll().when({...}))');
        return def.handlers;
    }

    return {
        init: function () {
            var h = handlers();
            state = typeof h.$init === 'function' ? h.$init() : {};
            if (state === undefined) state = {};
        },
        handle: function (type, stream, seq, bodyRaw, metaRaw) {
            var h = def.handlers, f = h[type];
            if (typeof f !== 'function' || type.charAt(0) === '$') f = h.$any;
            if (typeof f !== 'function') return;
            var r = f(state, new Event(type, stream, seq, bodyRaw, metaRaw));
            if (r !== undefined) state = r;
        },
        getState: function () {
            var s = JSON.stringify(state);
            return s === undefined ? 'null' : s;
        },
        setState: function (json) { state = JSON.parse(json); },
        takeEmitted: function () {
            var n = emitted.length;
            emitted = [];
            return n;
        }
    };
})(this);
