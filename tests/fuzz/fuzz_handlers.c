/* Fuzz target: factumd's own service handlers, not only the generated
 * decoders. One factumd lives in this process - a real store in a temporary
 * directory, the real method table, the real event loop on 127.0.0.1 - and
 * each input becomes one gRPC call over a real HTTP/2 connection:
 *
 *   byte 0       which method (of paths[] below)
 *   byte 1       bit 0: the rest is sent raw, not as gRPC messages (framing
 *                errors); bit 1: no half close (the call is cut off instead);
 *                bit 2: an HTTP/1.1 request instead (byte 0 is then ignored):
 *                the rest is a method byte (GET, POST, DELETE, PUT), the
 *                request target up to a newline, and the body
 *   the rest     messages, each as a 3-byte little-endian length and its bytes
 *                (a length past the end takes what is left)
 *
 * The call gets up to 50 ms to be answered, then its connection is closed.
 * Whatever the bytes - nested thousands deep, regex bombs, megabytes - the
 * server must not crash, leak or read out of bounds; at exit it is stopped
 * cleanly (NET-5's accounting checked in Debug builds) and its store closed.
 * tests/fuzz/gen_handlers_corpus.py writes the seed corpus. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "../hostile/h2c.h"
#include "net/net.h"
#include "factum_readmodel.h"
#include "rpc/persistent.h"
#include "rpc/readmodels.h"
#include "rpc/rpc.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
    "/event_store.client.streams.Streams/Read",
    "/event_store.client.streams.Streams/Append",
    "/event_store.client.streams.Streams/Delete",
    "/event_store.client.streams.Streams/Tombstone",
    "/event_store.client.streams.Streams/BatchAppend",
    "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Create",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Update",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Delete",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Read",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/GetInfo",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/ReplayParked",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/TruncateParked",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/List",
    "/event_store.client.persistent_subscriptions.PersistentSubscriptions/RestartSubsystem",
    "/event_store.client.monitoring.Monitoring/Stats",
    "/event_store.client.server_features.ServerFeatures/GetSupportedMethods",
    "/event_store.client.gossip.Gossip/Read",
    "/event_store.client.operations.Operations/Shutdown",
    "/no.such.Service/Method",
    /* Added after the end, so that the older seeds keep their methods. */
    "/event_store.client.projections.Projections/Create",
    "/event_store.client.projections.Projections/Update",
    "/event_store.client.projections.Projections/Delete",
    "/event_store.client.projections.Projections/Statistics",
    "/event_store.client.projections.Projections/Disable",
    "/event_store.client.projections.Projections/Enable",
    "/event_store.client.projections.Projections/Reset",
    "/event_store.client.projections.Projections/State",
    "/event_store.client.projections.Projections/Result",
    "/event_store.client.projections.Projections/RestartSubsystem",
    "/factum.readmodels.ReadModels/Create",
    "/factum.readmodels.ReadModels/Rebuild",
    "/factum.readmodels.ReadModels/Pause",
    "/factum.readmodels.ReadModels/Resume",
    "/factum.readmodels.ReadModels/Drop",
    "/factum.readmodels.ReadModels/Get",
    "/factum.readmodels.ReadModels/List",
    "/factum.readmodels.ReadModels/Wait",
    "/factum.readmodels.ReadModels/Query",
    "/factum.readmodels.ReadModels/Parked",
};
#define N_PATHS (sizeof paths / sizeof *paths)

static struct {
    int ready;
    char dir[512];
    factum_store *store;
    srv_state st; /* its rpc: the handlers' context; the rest for the HTTP endpoints */
    net_method *methods;
    size_t n_methods;
    net_server *net;
    pthread_t loop;
} g;

static void on_tick(void *arg)
{
    rpc_ps_tick(arg);
    rpc_rm_tick(arg);
    rpc_submit_retry(arg);
}

static void no_shutdown(void *arg)
{
    (void)arg; /* Operations.Shutdown must not stop the fuzzed server */
}

static void *run_loop(void *arg)
{
    (void)arg;
    net_server_run(g.net, 1000);
    return NULL;
}

static void teardown(void)
{
    if (!g.ready) return;
    net_server_stop(g.net);
    pthread_join(g.loop, NULL);
    rpc_deinit(&g.st.rpc);
    rpc_rm_stop(&g.st.rpc);
    factum_readmodels_close(g.st.rpc.readmodels);
    g.st.rpc.readmodels = NULL;
    factum_projections_close(g.st.rpc.projections);
    factum_store_close(g.store);
    net_server_free(g.net);
    rpc_ps_free(&g.st.rpc);
    free(g.methods);
    free(g.st.rpc.pack_buf);
    harness_rm_rf(g.dir);
    g.ready = 0;
}

static void setup(void)
{
    const char *tmp = getenv("FACTUM_TEST_TMP") ? getenv("FACTUM_TEST_TMP") : "/tmp";
    mkdir(tmp, 0755);
    snprintf(g.dir, sizeof g.dir, "%s/fuzz-handlers-XXXXXX", tmp);
    if (!mkdtemp(g.dir)) abort();
    factum_options o;
    factum_options_init(&o);
    o.durability = FACTUM_RELAXED; /* fdatasync is not what is fuzzed */
    if (factum_store_open(g.dir, &o, &g.store)) abort();
    g.st.rpc.store = g.store;
    factum_uuid_v4(g.st.rpc.instance_id);
    snprintf(g.st.rpc.advertise_host, sizeof g.st.rpc.advertise_host, "127.0.0.1");
    g.st.rpc.max_append_size = 64u << 20;
    g.st.rpc.max_event_size = 16u << 20;
    g.st.rpc.sub_live_lag = 10000;
    g.st.rpc.shutdown = no_shutdown;
    if (factum_projections_open(g.store, NULL, &g.st.rpc.projections)) abort();
    if (factum_readmodels_open(g.store, NULL, &g.st.rpc.readmodels)) abort();
    if (rpc_methods(&g.st.rpc, &g.methods, &g.n_methods) || rpc_ps_init(&g.st.rpc)) abort();
    net_config nc;
    net_config_init(&nc);
    nc.port = 0;
    nc.max_message = (16u << 20) + (1u << 20);
    nc.max_client_memory = 256u << 20;
    nc.max_connection_memory = 128u << 20;
    nc.request_timeout_ms = 2000;
    nc.spin_hint = rpc_spin_hint;
    nc.spin_ctx = &g.st.rpc;
    nc.tick_fn = on_tick;
    nc.tick_ctx = &g.st.rpc;
    nc.tick_ms = 100;
    g.st.store = g.store;
    g.st.rm = g.st.rpc.readmodels;
    if (net_server_new(&nc, g.methods, g.n_methods, srv_http, &g.st, &g.net)) abort();
    g.st.net = g.net;
    g.st.rpc.net = g.net;
    if (rpc_rm_init(&g.st.rpc) || rpc_listen(&g.st.rpc)) abort();
    g.st.rpc.advertise_port = net_server_port(g.net);
    if (pthread_create(&g.loop, NULL, run_loop, NULL)) abort();
    g.ready = 1;
    atexit(teardown);
}

/* An HTTP/1.1 request (the /readmodels endpoints, and the others): sent
 * whole, then the answer read for up to 200 ms; then the connection closes
 * (a deferred answer is given up, NET-9). */
static void http_input(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT"};
    if (size < 1) return;
    const char *method = methods[data[0] % 4];
    data++;
    size--;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tl = nl ? (size_t)(nl - data) : size;
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t bl = nl ? size - tl - 1 : 0;
    wbuf req = {0};
    char head[128];
    wb_put(&req, method, strlen(method));
    wb_put(&req, " ", 1);
    wb_put(&req, data, tl);
    int hn = snprintf(head, sizeof head, " HTTP/1.1\r\nHost: f\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", bl);
    wb_put(&req, head, (size_t)hn);
    wb_put(&req, body, bl);
    int fd = tcp_connect(net_server_port(g.net));
    if (fd < 0) abort(); /* the server must still take connections */
    size_t off = 0;
    uint64_t t0 = (uint64_t)time(NULL);
    while (off < req.len && (uint64_t)time(NULL) - t0 < 2) {
        ssize_t w = write(fd, req.data + off, req.len - off);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno != EAGAIN) break;
        else {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 10);
        }
    }
    char buf[4096], status[16] = "";
    size_t got = 0;
    for (int i = 0; i < 20; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10) <= 0) continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
        if (!got) snprintf(status, sizeof status, "%.12s", buf);
        got += (size_t)r;
    }
    if (getenv("FUZZ_HANDLERS_VERBOSE"))
        fprintf(stderr, "HTTP %s %.*s: %s, %zu bytes back\n", method, (int)(tl > 80 ? 80 : tl), (const char *)data,
                status, got);
    close(fd);
    wb_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    if (!g.ready) setup();
    if (data[1] & 4) {
        http_input(data + 2, size - 2);
        return 0;
    }
    const char *path = paths[data[0] % N_PATHS];
    int raw = data[1] & 1, cut = data[1] & 2;
    data += 2;
    size -= 2;
    h2c_bytes bd = {{0}, 0, !cut};
    if (raw) {
        wb_put(&bd.b, data, size);
    } else {
        while (size >= 3) {
            size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16;
            data += 3;
            size -= 3;
            if (n > size) n = size;
            wbuf m = {(uint8_t *)data, n, n};
            wb_grpc(&bd.b, &m);
            data += n;
            size -= n;
        }
    }
    h2c *h = h2c_open(net_server_port(g.net));
    if (!h) abort(); /* the server must still take connections */
    h2c_stream st = {.produce = h2c_bytes_produce, .ctx = &bd};
    h2c_call(h, path, &st);
    for (int i = 0; i < 10 && !st.closed && h2c_ok(h); i++) h2c_pump(h, 5, 1);
    if (getenv("FUZZ_HANDLERS_VERBOSE"))
        fprintf(stderr, "%s: %s, grpc-status %d %s, %zu bytes back\n", path, st.closed ? "closed" : "open",
                st.grpc_status, st.message, st.data_in);
    h2c_close(h);
    wb_free(&bd.b);
    return 0;
}
