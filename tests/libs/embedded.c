/*
 * embedded.c - a program of libfactum alone (tests/libs/libs.sh builds it
 * against an install prefix with `pkg-config factum` and checks that it
 * needs neither libfactum-client nor nghttp2 nor protobuf-c): open a store,
 * append, read back, and the messages of factum.h's codes and of a client
 * code (which none of libfactum's calls returns: a message naming the
 * client library). Usage: embedded DIR. Exit 0 when all holds.
 */
#include <factum.h>
#include <stdio.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), 1)

int main(int argc, char **argv)
{
    if (argc != 2) return FAIL("usage: embedded DIR");
    factum_options o;
    factum_options_init(&o);
    factum_store *s;
    int rc = factum_store_open(argv[1], &o, &s);
    if (rc) return FAIL("open: %s", factum_strerror(rc));
    factum_event_data ev[2];
    memset(ev, 0, sizeof ev);
    for (int i = 0; i < 2; i++) {
        ev[i].type = "Tested";
        ev[i].flags = FACTUM_EVENT_JSON;
        ev[i].data = "{}";
        ev[i].data_len = 2;
    }
    factum_append_result ar;
    if ((rc = factum_append(s, "libs-1", FACTUM_NO_STREAM, ev, 2, &ar))) return FAIL("append: %s", factum_strerror(rc));
    factum_event got[4];
    size_t n;
    uint64_t next;
    rc = factum_read_stream(s, "libs-1", 0, FACTUM_FORWARD, got, 4, &n, &next);
    if (rc || n != 2) return FAIL("read: %s, %zu events", factum_strerror(rc), n);
    factum_store_close(s);
    if (strcmp(factum_strerror(FACTUM_EWRONGVERSION), "wrong expected version"))
        return FAIL("factum_strerror(FACTUM_EWRONGVERSION) = %s", factum_strerror(FACTUM_EWRONGVERSION));
    if (!strstr(factum_strerror(-1101), "libfactum-client"))
        return FAIL("factum_strerror(-1101) without the client = %s", factum_strerror(-1101));
    printf("embedded: 2 events appended and read back\n");
    return 0;
}
