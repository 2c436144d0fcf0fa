/* Unit tests of the I/O-free gRPC codec (src/net/grpc.c): messages split at
 * every byte, several per chunk, empty ones, the size limit and the flag
 * byte; grpc-timeout; grpc-message percent-encoding; :path splitting. */
#include "harness.h"

#include "net/grpc.h"

typedef struct got {
    int n;
    size_t lens[16];
    uint8_t first[16];
} got;

static int collect(void *ctx, const uint8_t *msg, size_t len)
{
    got *g = ctx;
    if (g->n < 16) {
        g->lens[g->n] = len;
        g->first[g->n] = len ? msg[0] : 0;
    }
    g->n++;
    return 0;
}

static void t_deframe(void)
{
    uint8_t stream[64];
    base_buf b = {0};
    const char *msgs[] = {"hello", "", "world!!"};
    for (int i = 0; i < 3; i++) {
        grpc_frame_prefix(&b, strlen(msgs[i]));
        base_buf_append(&b, msgs[i], strlen(msgs[i]));
    }
    REQUIRE(b.len < sizeof stream);
    memcpy(stream, b.data, b.len);
    /* Every way to cut the bytes into two chunks gives the same messages. */
    for (size_t cut = 0; cut <= b.len; cut++) {
        grpc_deframer d;
        grpc_deframer_init(&d, 100);
        got g = {0};
        CHECK_RC(grpc_deframe(&d, stream, cut, collect, &g), 0);
        CHECK_RC(grpc_deframe(&d, stream + cut, b.len - cut, collect, &g), 0);
        CHECK(g.n == 3 && g.lens[0] == 5 && g.lens[1] == 0 && g.lens[2] == 7 && g.first[2] == 'w');
        CHECK(!grpc_deframer_partial(&d));
        grpc_deframer_deinit(&d);
    }
    /* One byte at a time. */
    grpc_deframer d;
    grpc_deframer_init(&d, 100);
    got g = {0};
    for (size_t i = 0; i < b.len; i++) CHECK_RC(grpc_deframe(&d, stream + i, 1, collect, &g), 0);
    CHECK(g.n == 3);
    /* A partial message is visible as such. */
    CHECK_RC(grpc_deframe(&d, stream, 3, collect, &g), 0);
    CHECK(grpc_deframer_partial(&d));
    grpc_deframer_deinit(&d);
    base_buf_free(&b);
    /* Limits and flags. */
    uint8_t big[5] = {0, 0, 0, 0, 101}, comp[6] = {1, 0, 0, 0, 1, 'x'}, flag[6] = {2, 0, 0, 0, 1, 'x'};
    grpc_deframer_init(&d, 100);
    CHECK_RC(grpc_deframe(&d, big, 5, collect, &g), GRPC_DEFRAME_TOO_LARGE);
    grpc_deframer_deinit(&d);
    grpc_deframer_init(&d, 100);
    CHECK_RC(grpc_deframe(&d, comp, 6, collect, &g), GRPC_DEFRAME_COMPRESSED);
    grpc_deframer_deinit(&d);
    grpc_deframer_init(&d, 100);
    CHECK_RC(grpc_deframe(&d, flag, 6, collect, &g), GRPC_DEFRAME_BAD_FLAG);
    grpc_deframer_deinit(&d);
}

static void t_timeout_message_path(void)
{
    uint64_t ns;
    CHECK(grpc_parse_timeout("100m", 4, &ns) == 0 && ns == 100000000ull);
    CHECK(grpc_parse_timeout("5S", 2, &ns) == 0 && ns == 5000000000ull);
    CHECK(grpc_parse_timeout("1H", 2, &ns) == 0 && ns == 3600000000000ull);
    CHECK(grpc_parse_timeout("7n", 2, &ns) == 0 && ns == 7);
    CHECK(grpc_parse_timeout("S", 1, &ns) == -1);
    CHECK(grpc_parse_timeout("12x", 3, &ns) == -1);
    CHECK(grpc_parse_timeout("123456789S", 10, &ns) == -1); /* more than 8 digits */
    CHECK(grpc_parse_timeout("1a0m", 4, &ns) == -1);
    base_buf b = {0};
    CHECK_RC(grpc_encode_message(&b, "Wrong expected version: 100% sure\n\xc3\xa9"), 0);
    base_buf_append(&b, "", 1);
    CHECK(!strcmp((char *)b.data, "Wrong expected version: 100%25 sure%0A%C3%A9"));
    base_buf_free(&b);
    const char *s, *m;
    size_t sl, ml;
    const char *p = "/event_store.client.streams.Streams/Read";
    CHECK(grpc_split_path(p, strlen(p), &s, &sl, &m, &ml) == 0 && sl == 34 && ml == 4 && !memcmp(m, "Read", 4));
    CHECK(grpc_split_path("/x", 2, &s, &sl, &m, &ml) == -1);
    CHECK(grpc_split_path("//Read", 6, &s, &sl, &m, &ml) == -1);
    CHECK(grpc_split_path("/a/b/c", 6, &s, &sl, &m, &ml) == -1);
    CHECK(grpc_split_path("a/b", 3, &s, &sl, &m, &ml) == -1);
}

int main(void)
{
    RUN(t_deframe);
    RUN(t_timeout_message_path);
    return harness_done();
}
