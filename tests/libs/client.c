/*
 * client.c - a program of libfactum-client alone (tests/libs/libs.sh
 * builds it with `pkg-config factum-client` only and checks that it needs
 * no libfactum, SQLite or PostgreSQL): connects to factumd, appends and
 * reads back, uses the store-independent helpers of factum.h the client
 * library exports (factum_uuid_*, factum_query_options_init, ...), and
 * checks the messages of the client's codes from factum_strerror and
 * factum_client_strerror. Usage: client URL. Exit 0 when all holds.
 */
#include <factum_client.h>
#include <stdio.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), 1)

int main(int argc, char **argv)
{
    if (argc != 2) return FAIL("usage: client URL");
    static const int codes[] = {FACTUM_ECONNECT, FACTUM_EPROTOCOL, FACTUM_ESERVER, FACTUM_EUNSUPPORTED, FACTUM_EBADURL,
                                FACTUM_EFULL, FACTUM_ECANCELED, FACTUM_ETLS, FACTUM_EUNAUTHENTICATED,
                                FACTUM_EACCESSDENIED, FACTUM_ETIMEDOUT, FACTUM_EEXISTS, FACTUM_EWRONGVERSION};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *a = factum_strerror(codes[i]), *b = factum_client_strerror(codes[i]);
        if (strcmp(a, b) || !strcmp(a, "unknown error") || strstr(a, "libfactum-client"))
            return FAIL("code %d: factum_strerror '%s', factum_client_strerror '%s'", codes[i], a, b);
    }
    factum_client *bad;
    int rc = factum_client_connect("nonsense://", NULL, &bad);
    if (rc != FACTUM_EBADURL) return FAIL("a bad URL: %s", factum_strerror(rc));
    factum_query_options qo;
    factum_query_options_init(&qo);
    if (qo.row_limit != 1000) return FAIL("factum_query_options_init");
    uint8_t id[16], back[16];
    char text[37];
    factum_uuid_v4(id);
    factum_uuid_format(id, text);
    if (factum_uuid_parse(text, 36, back) || memcmp(id, back, 16)) return FAIL("uuid round trip");

    factum_client *c;
    if ((rc = factum_client_connect(argv[1], NULL, &c)))
        return FAIL("connect: %s (%s)", factum_strerror(rc), factum_client_last_error(NULL));
    char stream[64];
    snprintf(stream, sizeof stream, "libs-%s", text);
    factum_event_data ev;
    memset(&ev, 0, sizeof ev);
    ev.type = "Tested";
    ev.flags = FACTUM_EVENT_JSON;
    ev.data = "{\"n\":1}";
    ev.data_len = strlen(ev.data);
    factum_append_result ar;
    if ((rc = factum_client_append(c, stream, FACTUM_NO_STREAM, &ev, 1, &ar)))
        return FAIL("append: %s", factum_strerror(rc));
    rc = factum_client_append(c, stream, FACTUM_NO_STREAM, &ev, 1, &ar);
    if (rc != FACTUM_EWRONGVERSION) return FAIL("a second append expecting no stream: %s", factum_strerror(rc));
    factum_client_batch *b;
    if ((rc = factum_client_read_stream(c, stream, 0, FACTUM_FORWARD, 10, &b)))
        return FAIL("read: %s", factum_strerror(rc));
    size_t n = factum_client_batch_count(b);
    const factum_event *e = n ? factum_client_batch_event(b, 0) : NULL;
    int ok = n == 1 && e->data_len == ev.data_len && !memcmp(e->data, ev.data, ev.data_len);
    factum_client_batch_free(b);
    factum_client_close(c);
    if (!ok) return FAIL("read back %zu events, not the one appended", n);
    printf("client: appended and read back over the network\n");
    return 0;
}
