#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_handlers.c into corpus/handlers:
well-formed requests of every service and the hostile ones of issue 10 (deep
nesting, regex bombs, large events, many batches, junk). Each file is: byte 0
the method (the order of paths[] in fuzz_handlers.c), byte 1 the flags, then
messages as a 3-byte little-endian length and the bytes. Protobuf is encoded
by hand here from the field numbers of proto/ (no generated code needed).
Run it from anywhere; it rewrites the files it names and leaves others."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "handlers")
(READ, APPEND, DELETE, TOMBSTONE, BATCH, SESSION, PS_CREATE, PS_UPDATE, PS_DELETE, PS_READ, PS_GETINFO,
 PS_REPLAY, PS_TRUNCATE, PS_LIST, PS_RESTART, STATS, FEATURES, GOSSIP, SHUTDOWN, NOSUCH,
 P_CREATE, P_UPDATE, P_DELETE, P_STATISTICS, P_DISABLE, P_ENABLE, P_RESET, P_STATE, P_RESULT,
 P_RESTART, RM_CREATE, RM_REBUILD, RM_PAUSE, RM_RESUME, RM_DROP, RM_GET, RM_LIST, RM_WAIT, RM_QUERY,
 RM_PARKED) = range(40)


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def f(field, payload):  # length-delimited field
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def u(field, value):  # varint field
    return varint(field << 3) + varint(value)


EMPTY = b""
UUIDS = "0f8fad5b-d9cb-469f-a165-70867728950e"


def uuid(i=0):
    s = "%08x-d9cb-469f-a165-70867728950e" % i
    return f(2, s)


def sid(name):
    return f(3, name)


def meta(k, v):
    return f(1, k) + f(2, v)


def proposed(i, data=b"{}", typ="E"):
    return f(1, uuid(i)) + f(2, meta("type", typ)) + f(2, meta("content-type", "application/json")) + f(4, data)


def read_req(stream=None, regex=None, on_type=False, count=100, subscribe=False):
    o = b""
    if stream:
        o += f(1, f(1, sid(stream)) + f(3, EMPTY))
    else:
        o += f(2, f(2, EMPTY))
    o += (f(6, EMPTY) if subscribe else u(5, count))
    if regex is not None:
        o += f(7, f(2 if on_type else 1, f(1, regex)) + f(4, EMPTY) + u(5, 1))
    else:
        o += f(8, EMPTY)
    o += f(9, f(2, EMPTY))
    return f(1, o)


def nested_value(depth, structs):
    v = f(3, "x")
    for _ in range(depth):
        if structs:
            v = f(5, f(1, f(1, "k") + f(2, v)))
        else:
            v = f(6, f(1, v))
    return v


def session_req(stream, props=None, data=b"{}"):
    rec = f(1, UUIDS)
    for k, v in (props or []):
        rec += f(2, f(1, k) + f(2, v))
    rec += f(3, u(1, 1) + f(2, "Deep")) + f(4, data)
    return f(1, stream) + f(2, rec)


def batch_req(i, stream, final=True):
    opts = f(1, sid(stream)) + f(4, EMPTY)
    return f(1, uuid(10000 + i)) + f(2, opts) + f(3, proposed(i)) + (u(4, 1) if final else b"")


def ps_create(group, regex=None, stream=None):
    settings = u(5, 3) + u(10, 100) + u(11, 20) + u(12, 100) + u(14, 10000) + u(15, 1000) + u(7, 1) + u(8, 10)
    if stream:
        where = f(4, f(1, sid(stream)) + f(3, EMPTY))
    else:
        flt = f(4, f(1, f(1, regex)) + f(4, EMPTY) + u(5, 1)) if regex else f(5, EMPTY)
        where = f(5, f(2, EMPTY) + flt)
    return f(1, f(2, group) + f(3, settings) + where)


def ps_read(group, stream=None):
    where = f(1, sid(stream)) if stream else f(5, EMPTY)
    return f(1, where + f(2, group) + u(3, 10) + f(4, f(2, EMPTY)))


def write(name, method, messages, flags=0):
    body = bytes([method, flags])
    for m in messages:
        n = len(m)
        body += struct.pack("<I", n)[:3] + m
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(body)


def write_raw(name, method, raw, flags=1):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(bytes([method, flags]) + raw)


def main():
    os.makedirs(OUT, exist_ok=True)
    longname = "a" * 60 + "-!"
    write("append-three", APPEND, [f(1, f(1, sid("fz-a")) + f(4, EMPTY))] + [f(2, proposed(i)) for i in range(3)])
    write("append-long-name", APPEND, [f(1, f(1, sid(longname)) + f(4, EMPTY)), f(2, proposed(7, typ=longname))])
    write("append-300k", APPEND, [f(1, f(1, sid("fz-big")) + f(4, EMPTY)), f(2, proposed(8, b"x" * 300000))])
    write("append-no-options", APPEND, [f(2, proposed(9))])
    write("append-no-type", APPEND, [f(1, f(1, sid("fz-b")) + f(4, EMPTY)), f(2, f(1, uuid(3)) + f(4, b"{}"))])
    write("append-cut", APPEND, [f(1, f(1, sid("fz-c")) + f(4, EMPTY)), f(2, proposed(11))], flags=2)
    write("read-stream", READ, [read_req("fz-a")])
    write("read-all", READ, [read_req()])
    write("read-all-regex-bomb", READ, [read_req(regex=r"^(\w+\w?)+$", count=100000)])
    write("read-all-regex-bomb-type", READ, [read_req(regex="^(a|aa)+$", on_type=True, count=100000)])
    write("read-all-regex-compile-bomb", READ, [read_req(regex="((a{1,100}){1,100}){1,100}")])
    write("read-all-regex-invalid", READ, [read_req(regex="([")])
    write("subscribe-regex-bomb", READ, [read_req(regex="^(a+)+$", subscribe=True)])
    write("subscribe-stream", READ, [read_req("fz-a", subscribe=True)])
    write("delete", DELETE, [f(1, f(1, sid("fz-a")) + f(4, EMPTY))])
    write("tombstone", TOMBSTONE, [f(1, f(1, sid("fz-t")) + f(4, EMPTY))])
    write("batch-50", BATCH, [batch_req(i, "fz-batch-%d" % (i % 5)) for i in range(50)])
    write("batch-open-256", BATCH, [batch_req(i, "fz-open", final=False) for i in range(300)])
    write("session", SESSION, [session_req("fz-s1", [("k", f(3, "v"))]), session_req("fz-s2")])
    write("session-deep-list", SESSION, [session_req("fz-deep", [("k", nested_value(2500, False))])])
    write("session-deep-struct", SESSION, [session_req("fz-deep", [("k", nested_value(3000, True))])])
    write("session-depth-edge", SESSION, [session_req("fz-edge", [("k", nested_value(30, False))])])
    write("session-twice", SESSION, [session_req("fz-s3"), session_req("fz-s3")])
    write("ps-create-regex-bomb", PS_CREATE, [ps_create("fz-evil", regex=r"^(\w+\w?)+$")])
    write("ps-create-stream", PS_CREATE, [ps_create("fz-g", stream="fz-a")])
    write("ps-update", PS_UPDATE, [ps_create("fz-g", stream="fz-a")])
    write("ps-read", PS_READ, [ps_read("fz-g", "fz-a")])
    write("ps-read-all", PS_READ, [ps_read("fz-evil")])
    write("ps-getinfo", PS_GETINFO, [f(1, f(1, sid("fz-a")) + f(3, "fz-g"))])
    write("ps-list", PS_LIST, [f(1, f(2, EMPTY))])
    write("ps-replay", PS_REPLAY, [f(1, f(2, sid("fz-a")) + f(4, "fz-g") + f(6, EMPTY))])
    write("ps-delete", PS_DELETE, [f(1, f(1, sid("fz-a")) + f(3, "fz-g"))])
    write("ps-restart", PS_RESTART, [b""])
    write("stats", STATS, [u(1, 1) + u(2, 1000)])
    write("features", FEATURES, [b""])
    write("gossip", GOSSIP, [b""])
    write("shutdown", SHUTDOWN, [b""])
    write("no-such-method", NOSUCH, [b"\x0a\x00"])
    # Projections (the system projections exist; JavaScript ones may not run here).
    query = "fromAll().when({$init: function () { return {}; }})"
    write("proj-create", P_CREATE, [f(1, f(3, f(1, "fz-p") + u(2, 1)) + f(4, query))])
    write("proj-create-onetime", P_CREATE, [f(1, f(1, EMPTY) + f(4, query))])
    write("proj-create-track-no-emit", P_CREATE, [f(1, f(3, f(1, "fz-p2") + u(3, 1)) + f(4, query))])
    write("proj-create-no-mode", P_CREATE, [f(1, f(4, query))])
    write("proj-create-deep-properties", P_CREATE,
          [f(1, f(3, f(1, "fz-p3")) + f(4, query) + f(6, f(1, "k") + f(2, nested_value(3000, True))))])
    write("proj-update-system", P_UPDATE, [f(1, f(1, "$by_category") + f(2, "last\n-") + f(4, EMPTY))])
    write("proj-update-bad-query", P_UPDATE, [f(1, f(1, "$by_category") + f(2, "x" * 5000) + u(3, 1))])
    write("proj-delete", P_DELETE, [f(1, f(1, "fz-p") + u(2, 1) + u(3, 1) + u(4, 1))])
    write("proj-statistics-all", P_STATISTICS, [f(1, f(2, EMPTY))])
    write("proj-statistics-name", P_STATISTICS, [f(1, f(1, "$by_category"))])
    write("proj-statistics-continuous", P_STATISTICS, [f(1, f(4, EMPTY))])
    write("proj-statistics-missing", P_STATISTICS, [f(1, f(1, "nope"))])
    write("proj-enable", P_ENABLE, [f(1, f(1, "$by_category"))])
    write("proj-disable", P_DISABLE, [f(1, f(1, "$by_category") + u(2, 1))])
    write("proj-reset", P_RESET, [f(1, f(1, "$streams"))])
    write("proj-state-partition", P_STATE, [f(1, f(1, "$by_category") + f(2, "fz"))])
    write("proj-result-missing", P_RESULT, [f(1, f(1, "nope"))])
    write("proj-restart", P_RESTART, [b""])
    write("proj-enable-twice", P_ENABLE, [f(1, f(1, "$by_event_type")), f(1, f(1, "$by_event_type"))])
    # ReadModels (proto/factum/readmodels.proto): a valid read model, then
    # every call on it and on names that do not exist or are malformed.
    rm_def = ('{"name":"fzrm","schema":["CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER)"],'
              '"handlers":{"*":"INSERT OR REPLACE INTO t(id, n) VALUES (:stream, :data.n)"}}')
    write("rm-create", RM_CREATE, [f(1, rm_def)])
    write("rm-create-bad-json", RM_CREATE, [f(1, '{"name":"fzrm2","schema":[')])
    write("rm-create-bad-sql", RM_CREATE, [f(1, rm_def.replace("fzrm", "fzrm3").replace("VALUES (", "VALUES ((("))])
    write("rm-create-deep-json", RM_CREATE, [f(1, "[" * 5000 + "]" * 5000)])
    write("rm-create-huge-name", RM_CREATE, [f(1, rm_def.replace("fzrm", "x" * 5000))])
    write("rm-rebuild", RM_REBUILD, [f(1, "fzrm")])
    write("rm-rebuild-new", RM_REBUILD, [f(1, "fzrm") + f(2, rm_def)])
    write("rm-rebuild-other-name", RM_REBUILD, [f(1, "fzrm") + f(2, rm_def.replace("fzrm", "other"))])
    write("rm-pause", RM_PAUSE, [f(1, "fzrm")])
    write("rm-resume", RM_RESUME, [f(1, "fzrm")])
    write("rm-get", RM_GET, [f(1, "fzrm")])
    write("rm-get-bad-name", RM_GET, [f(1, "../../etc/passwd")])
    write("rm-get-empty", RM_GET, [b""])
    write("rm-list", RM_LIST, [b""])
    write("rm-wait", RM_WAIT, [f(1, "fzrm") + u(2, 1) + u(3, 30)])
    write("rm-wait-far", RM_WAIT, [f(1, "fzrm") + u(2, 1 << 60) + u(3, 20)])
    write("rm-wait-cut", RM_WAIT, [f(1, "fzrm") + u(2, 1 << 40) + u(3, 100000)], flags=2)
    write("rm-wait-negative", RM_WAIT, [f(1, "fzrm") + u(2, 1) + varint(3 << 3) + b"\xff" * 9 + b"\x01"])
    write("rm-query", RM_QUERY, [f(1, "fzrm") + f(2, "SELECT id, n FROM t WHERE n > :min") + f(3, '{"min":0}')])
    write("rm-query-write", RM_QUERY, [f(1, "fzrm") + f(2, "DELETE FROM t")])
    write("rm-query-two", RM_QUERY, [f(1, "fzrm") + f(2, "SELECT 1; SELECT 2")])
    write("rm-query-missing-param", RM_QUERY, [f(1, "fzrm") + f(2, "SELECT :nope")])
    write("rm-query-bad-params", RM_QUERY, [f(1, "fzrm") + f(2, "SELECT :a") + f(3, "{" * 3000)])
    write("rm-query-recursive", RM_QUERY, [f(1, "fzrm") + f(2, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                                                                "SELECT x + 1 FROM c) SELECT count(*) FROM c")
                                          + u(5, 10) + u(6, 20)])
    write("rm-query-min-position", RM_QUERY, [f(1, "fzrm") + f(2, "SELECT 1") + u(4, 1 << 50) + u(7, 20)])
    write("rm-query-rows", RM_QUERY, [f(1, "fzrm") + f(2, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                                          "FROM c LIMIT 200000) SELECT x, x FROM c") + u(5, 100000)])
    write("rm-parked", RM_PARKED, [f(1, "fzrm") + u(2, 5)])
    write("rm-drop", RM_DROP, [f(1, "fzrm")])
    write("rm-drop-missing", RM_DROP, [f(1, "nope")])
    write("rm-two-requests", RM_GET, [f(1, "fzrm"), f(1, "fzrm")])
    # The same over HTTP/1.1 (flags bit 2): a method byte (0 GET, 1 POST, 2 DELETE, 3 PUT), the target, a
    # newline, the body.
    def http(name, method, target, body=b""):
        write_raw(name, 0, bytes([method]) + target.encode() + b"\n" + body, flags=4)
    http("http-rm-create", 1, "/readmodels", rm_def.replace("fzrm", "fzh").encode())
    http("http-rm-create-bad", 1, "/readmodels", b'{"name":"fzh2","schema":[1]}')
    http("http-rm-create-nul", 1, "/readmodels", b'{"name":"fz\x00h"}')
    http("http-rm-list", 0, "/readmodels")
    http("http-rm-get", 0, "/readmodels/fzh")
    http("http-rm-get-bad-name", 0, "/readmodels/fz%2Fh")
    http("http-rm-query", 0, "/readmodels/fzh/query?sql=SELECT%20id%2C%20n%20FROM%20t%20WHERE%20n%20%3E%20%3Amin"
                             "&params=%7B%22min%22%3A0%7D&row_limit=5&time_limit_ms=50")
    http("http-rm-query-bad-escape", 0, "/readmodels/fzh/query?sql=%zz%2")
    http("http-rm-query-nul", 0, "/readmodels/fzh/query?sql=SELECT%00")
    http("http-rm-query-write", 0, "/readmodels/fzh/query?sql=DROP%20TABLE%20t")
    http("http-rm-query-min-position", 0, "/readmodels/fzh/query?sql=SELECT%201&min_position=99999999999&wait_ms=20")
    http("http-rm-query-numbers", 0, "/readmodels/fzh/query?sql=SELECT%201&row_limit=-1&time_limit_ms=1e9")
    http("http-rm-query-post", 1, "/readmodels/fzh/query", b'{"sql":"SELECT :a AS a","params":{"a":[1,{"b":2}]},'
                                                          b'"rowLimit":3,"timeLimitMs":50,"minPosition":1}')
    http("http-rm-query-post-deep", 1, "/readmodels/fzh/query", b'{"sql":"SELECT 1","params":' + b"[" * 3000 + b"]" * 3000 + b"}")
    http("http-rm-query-post-types", 1, "/readmodels/fzh/query", b'{"sql":["SELECT 1"],"rowLimit":"x","waitMs":1e300}')
    http("http-rm-wait", 0, "/readmodels/fzh/wait?position=1&timeout=20")
    http("http-rm-wait-far", 0, "/readmodels/fzh/wait?position=18446744073709551615&timeout=300000")
    http("http-rm-wait-bad", 0, "/readmodels/fzh/wait?position=&timeout=x")
    http("http-rm-pause", 1, "/readmodels/fzh/pause")
    http("http-rm-resume", 1, "/readmodels/fzh/resume")
    http("http-rm-rebuild", 1, "/readmodels/fzh/rebuild")
    http("http-rm-rebuild-other", 1, "/readmodels/fzh/rebuild", rm_def.encode())
    http("http-rm-parked", 0, "/readmodels/fzh/parked?limit=100001")
    http("http-rm-put", 3, "/readmodels/fzh")
    http("http-rm-unknown", 0, "/readmodels/fzh/x/y")
    http("http-rm-drop", 2, "/readmodels/fzh")
    http("http-metrics", 0, "/metrics")
    # The admin UI (ADR 0029): its files, its sign-in, its JSON endpoints.
    http("http-ui-root", 0, "/")
    http("http-ui-index", 0, "/ui/")
    http("http-ui-missing", 0, "/ui/../../etc/passwd")
    http("http-ui-post", 1, "/ui/index.html", b"x")
    http("http-ui-login", 1, "/ui/api/login")
    http("http-ui-session", 0, "/ui/api/session")
    http("http-ui-logout", 1, "/ui/api/logout")
    http("http-api-streams", 0, "/api/streams?prefix=fz&after=0&limit=200")
    http("http-api-streams-bad", 0, "/api/streams?limit=201&after=-1&prefix=%zz")
    http("http-api-stream", 0, "/api/stream?name=fz-1&dir=backward&limit=200")
    http("http-api-stream-from", 0, "/api/stream?name=fz-1&from=18446744073709551615&dir=forward")
    http("http-api-stream-all", 0, "/api/stream?name=%24all")
    http("http-api-stream-noname", 0, "/api/stream?name=")
    http("http-api-meta", 0, "/api/stream/metadata?name=fz-1")
    http("http-api-append", 1, "/api/stream?name=fz-1&expected=any", b'{"type":"Fz","data":{"a":[1,2,{"b":null}]},"metadata":{"m":1}}')
    http("http-api-append-deep", 1, "/api/stream?name=fz-1", b'{"type":"Fz","data":' + b"[" * 5000 + b"]" * 5000 + b"}")
    http("http-api-append-bad", 1, "/api/stream?name=fz-1&expected=-3", b'{"type":7}')
    http("http-api-append-expected", 1, "/api/stream?name=fz-2&expected=no-stream", b'{"type":"T","data":"s"}')
    http("http-api-meta-put", 3, "/api/stream/metadata?name=fz-1&expected=exists", b'{"$maxCount":5,"$acl":{"$r":"$all"}}')
    http("http-api-meta-put-bad", 3, "/api/stream/metadata?name=fz-1", b'{"$maxCount":"x"}')
    http("http-api-delete", 2, "/api/stream?name=fz-2")
    http("http-api-tombstone", 2, "/api/stream?name=fz-2&hard=true&expected=any")
    http("http-api-unknown", 0, "/api/nothing")
    http("http-api-all", 0, "/api/all?dir=backward&limit=200&on=type&regex=%5E%28a%7Cb%29*%24&excludeSystem=true")
    http("http-api-all-bad-regex", 0, "/api/all?regex=((((&on=stream")
    http("http-api-all-prefix", 0, "/api/all?from=1&dir=forward&on=stream&prefix=fz")
    http("http-api-projections", 0, "/api/projections")
    http("http-api-projection", 0, "/api/projection?name=%24by_category")
    http("http-api-projection-create", 1, "/api/projection?name=fzp&mode=one-time&emit=true",
         b"fromAll().when({$any:function(s,e){return s;}})")
    http("http-api-projection-nul", 1, "/api/projection?name=fzp2", b"from\x00All()")
    http("http-api-projection-update", 3, "/api/projection?name=fzp&emit=false", b"fromAll()")
    http("http-api-projection-enable", 1, "/api/projection/enable?name=fzp")
    http("http-api-projection-reset", 1, "/api/projection/reset?name=fzp")
    http("http-api-projection-disable", 1, "/api/projection/disable?name=fzp")
    http("http-api-projection-delete", 2, "/api/projection?name=fzp&deleteStateStream=true&deleteEmittedStreams=true")
    http("http-api-projection-bad", 0, "/api/projection/x?name=")
    http("http-api-users", 0, "/api/users")
    http("http-api-users-create", 1, "/api/users", b'{"login":"fzu","fullName":"F","groups":["$ops",7],"password":"p"}')
    http("http-api-user-reset", 1, "/api/user/reset-password?login=fzu", b'{"password":' + b"[" * 2000 + b"]" * 2000 + b"}")
    http("http-api-user-change", 1, "/api/user/change-password?login=fzu", b'{"current":"p","password":"q"}')
    http("http-api-user-delete", 2, "/api/user?login=fzu")
    # Consumer groups over HTTP: ours and KurrentDB's paths.
    http("http-api-subs", 0, "/api/subscriptions")
    http("http-api-sub-create", 3, "/api/subscription?stream=fz-1&group=fzg",
         b'{"startFrom":0,"maxRetryCount":1,"namedConsumerStrategy":"Pinned","resolveLinktos":true}')
    http("http-api-sub-create-all", 3, "/api/subscription?stream=%24all&group=fzg",
         b'{"filter":{"on":"stream","regex":"^(a|b)*$"},"filter":{"on":"eventType","prefixes":["a","b"]}}')
    http("http-api-sub-create-bad-regex", 3, "/api/subscription?stream=%24all&group=fzg2", b'{"filter":{"on":"stream","regex":"(((("}}')
    http("http-api-sub-create-deep", 3, "/api/subscription?stream=fz-1&group=fzg3", b'{"filter":' + b"[" * 3000 + b"]" * 3000 + b"}")
    http("http-api-sub-create-huge", 3, "/api/subscription?stream=fz-1&group=fzg4", b'{"liveBufferSize":1000000,"bufferSize":1000000}')
    http("http-api-sub-create-numbers", 3, "/api/subscription?stream=fz-1&group=fzg5",
         b'{"startFrom":18446744073709551616,"maxRetryCount":1e9,"messageTimeoutMilliseconds":-1}')
    http("http-api-sub-get", 0, "/api/subscription?stream=fz-1&group=fzg")
    http("http-api-sub-update", 1, "/api/subscription?stream=fz-1&group=fzg", b'{"maxRetryCount":3,"filter":null}')
    http("http-api-sub-truncate", 1, "/api/subscriptions/truncate?stream=fz-1&group=fzg&stopAt=1")
    http("http-api-sub-replay", 1, "/api/subscriptions/replay?stream=fz-1&group=fzg&stopAt=99999999999999999999")
    http("http-api-sub-delete", 2, "/api/subscription?stream=fz-1&group=fzg")
    http("http-api-sub-bad", 1, "/api/subscription?stream=&group=" + "g" * 300, b"{}")
    http("http-subs-list", 0, "/subscriptions")
    http("http-subs-stream", 0, "/subscriptions/fz-1")
    http("http-subs-put", 3, "/subscriptions/fz-1/kg", b'{"startFrom":-1}')
    http("http-subs-info", 0, "/subscriptions/%24all/fzg/info")
    http("http-subs-replay", 1, "/subscriptions/fz-1/kg/replayParked")
    http("http-subs-bad-escape", 3, "/subscriptions/fz%zz/kg", b"{}")
    http("http-subs-nul", 3, "/subscriptions/fz%00/kg", b"{}")
    http("http-subs-deep-path", 0, "/subscriptions/a/b/c/d/e/f")
    http("http-subs-empty-segments", 2, "/subscriptions//kg")
    http("http-subs-delete", 2, "/subscriptions/fz-1/kg")
    write_raw("raw-bad-prefix", READ, b"\x07\x00\x00\x00\x05hello")
    write_raw("raw-compressed", APPEND, b"\x01\x00\x00\x00\x02\x0a\x00")
    write_raw("raw-too-large", BATCH, b"\x00\x7f\xff\xff\xff" + b"\x00" * 100)
    write_raw("raw-truncated", SESSION, b"\x00\x00\x00\x01\x00" + b"\x0a" * 50)
    write_raw("raw-junk", PS_READ, bytes((i * 37 + 11) % 256 for i in range(4096)))


if __name__ == "__main__":
    main()
