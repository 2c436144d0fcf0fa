/*
 * errors.c - the client's errors: the messages of factum_client.h's codes
 * (factum_client_strerror), and a finished call's gRPC status, KurrentDB's
 * trailers and google.rpc.Status details turned into factum codes
 * (client_call_error, client_call_detail). Split from conn.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "kurrentdb/shared.pb-c.h"

/* ---- errors -------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The messages of factum_client.h's codes; NULL for any other code. */
static const char *client_message(int code)
{
    switch (code) {
    case FACTUM_ECONNECT:
        return "cannot connect to the server, or the connection was lost";
    case FACTUM_EPROTOCOL:
        return "the server's answer breaks the protocol";
    case FACTUM_ESERVER:
        return "the server failed the call";
    case FACTUM_EUNSUPPORTED:
        return "the server does not implement this call";
    case FACTUM_EFULL:
        return "the consumer group has its maximum number of consumers";
    case FACTUM_ECANCELED:
        return "the server ended the subscription";
    case FACTUM_EBADURL:
        return "malformed connection string";
    case FACTUM_ETLS:
        return "TLS failed";
    case FACTUM_EUNAUTHENTICATED:
        return "not authenticated (wrong or missing credentials)";
    case FACTUM_EACCESSDENIED:
        return "access denied";
    }
    return NULL;
}

/* Also the target of factum_strerror's hook for the client's range (base/
 * err.c): a code of that range that is not ours is answered here, never
 * handed back (the two would call each other). In this file because every
 * program of the client links it (the hook is a weak reference, which
 * does not pull a member out of a static archive). */
const char *factum_client_strerror(int code)
{
    const char *m = client_message(code);
    if (m) return m;
    if (code <= FACTUM_CLIENT_ECODE_FIRST && code >= FACTUM_CLIENT_ECODE_LAST && code != FACTUM_ETIMEDOUT &&
        code != FACTUM_EEXISTS)
        return "unknown error";
    return factum_strerror(code);
}

/* The factum codes whose factum_strerror text factumd sends as the
 * message of a store error it has no KurrentDB encoding for. */
static const int store_codes[] = {
    FACTUM_EBADNAME,     FACTUM_EBADTYPE,  FACTUM_EBADUUID, FACTUM_EBADJSON,  FACTUM_EDUPLICATEID,
    FACTUM_EIDEMPOTENCY, FACTUM_EBADREGEX, FACTUM_EFAILED,  FACTUM_EREADONLY, FACTUM_ECLOSED,
    FACTUM_ECORRUPT,     FACTUM_ETOOBIG,   FACTUM_EINVAL,
};

/* Decode base64 (standard or URL alphabet, padding optional, as gRPC
 * binary headers allow) into out (room for n / 4 * 3 + 3 bytes). */
static size_t b64_decode(const char *s, size_t n, uint8_t *out)
{
    size_t m = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i], v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+' || ch == '-')
            v = 62;
        else if (ch == '/' || ch == '_')
            v = 63;
        else
            continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[m++] = (uint8_t)(acc >> bits);
        }
    }
    return m;
}

static int detail_code(const client_call *k)
{
    /* The type name is in the Any's type_url, inside the base64: decode
     * just enough to look for it. */
    static const struct {
        const char *type;
        int code;
    } map[] = {
        {"StreamRevisionConflictErrorDetails", FACTUM_EWRONGVERSION},
        {"StreamTombstonedErrorDetails", FACTUM_EDELETED},
        {"StreamNotFoundErrorDetails", FACTUM_ENOTFOUND},
        {"StreamDeletedErrorDetails", FACTUM_ENOTFOUND},
        {"AppendRecordSizeExceededErrorDetails", FACTUM_ETOOBIG},
        {"AppendTransactionSizeExceededErrorDetails", FACTUM_ETOOBIG},
        {"StreamAlreadyInAppendSessionErrorDetails", FACTUM_EINVAL},
        {"AppendConsistencyViolationErrorDetails", FACTUM_EWRONGVERSION},
        {"NotLeaderNodeErrorDetails", FACTUM_ESERVER},
        {"AccessDeniedErrorDetails", FACTUM_EACCESSDENIED},
    };
    if (!k->details) return 0;
    size_t n = k->details_len;
    uint8_t *raw = malloc(n / 4 * 3 + 3);
    if (!raw) return 0;
    size_t m = b64_decode(k->details, n, raw);
    int code = 0;
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, m, raw);
    if (st && st->details && st->details->type_url)
        for (size_t i = 0; i < sizeof map / sizeof *map && !code; i++)
            if (ends_with(st->details->type_url, map[i].type)) code = map[i].code;
    if (st) google__rpc__status__free_unpacked(st, NULL);
    free(raw);
    return code;
}

int client_call_error(const client_call *k)
{
    static const struct {
        const char *exception;
        int code;
    } exc[] = {
        {"stream-deleted", FACTUM_EDELETED},
        {"wrong-expected-version", FACTUM_EWRONGVERSION},
        {"stream-not-found", FACTUM_ENOTFOUND},
        {"maximum-append-event-size-exceeded", FACTUM_ETOOBIG},
        {"maximum-append-size-exceeded", FACTUM_ETOOBIG},
        {"missing-required-metadata-property", FACTUM_EINVAL},
        {"invalid-transaction", FACTUM_EINVAL},
        {"not-leader", FACTUM_ESERVER},
        {"access-denied", FACTUM_EACCESSDENIED},
        {"persistent-subscription-exists", FACTUM_EEXISTS},
        {"persistent-subscription-does-not-exist", FACTUM_ENOTFOUND},
        {"maximum-subscribers-reached", FACTUM_EFULL},
        {"persistent-subscription-dropped", FACTUM_ECANCELED},
    };
    if (k->grpc_status == GRPC_OK) return 0;
    for (size_t i = 0; i < sizeof exc / sizeof *exc; i++)
        if (!strcmp(k->exception, exc[i].exception)) return exc[i].code;
    int code = detail_code(k);
    if (code) return code;
    for (size_t i = 0; i < sizeof store_codes / sizeof *store_codes; i++)
        if (!strcmp(k->message, factum_strerror(store_codes[i]))) return store_codes[i];
    switch (k->grpc_status) {
    case GRPC_INVALID_ARGUMENT:
        if (strstr(k->message, "regex")) return FACTUM_EBADREGEX;
        return FACTUM_EINVAL;
    case GRPC_NOT_FOUND:
        return FACTUM_ENOTFOUND;
    case GRPC_DEADLINE_EXCEEDED:
        return FACTUM_ETIMEDOUT;
    case GRPC_UNIMPLEMENTED:
        return FACTUM_EUNSUPPORTED;
    case GRPC_UNAUTHENTICATED:
        return FACTUM_EUNAUTHENTICATED;
    case GRPC_PERMISSION_DENIED:
        return FACTUM_EACCESSDENIED;
    case GRPC_RESOURCE_EXHAUSTED:
        if (strstr(k->message, "larger than")) return FACTUM_ETOOBIG;
        return FACTUM_ESERVER;
    default:
        return FACTUM_ESERVER;
    }
}

int64_t client_call_actual_version(const client_call *k)
{
    const char *s = k->actual_version;
    if (!*s) return FACTUM_NO_STREAM;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < -1) return FACTUM_NO_STREAM;
    return v < 0 ? FACTUM_NO_STREAM : (int64_t)v;
}

int client_call_detail(factum_client *c, const client_call *k, const char **type, ProtobufCBinaryData *value)
{
    if (!k->details) return -1;
    size_t n = k->details_len;
    uint8_t *raw = client_arena_alloc(client_tl_arena(), n / 4 * 3 + 3);
    if (!raw) return -1;
    size_t m = b64_decode(k->details, n, raw);
    Google__Rpc__Status *st = google__rpc__status__unpack(&client_tl_arena()->pa, m, raw);
    if (!st || !st->details || !st->details->type_url) return -1;
    const char *slash = strrchr(st->details->type_url, '/');
    *type = slash ? slash + 1 : st->details->type_url;
    *value = st->details->value;
    return 0;
}
