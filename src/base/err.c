/*
 * err.c - factum_strerror: one static message for every code the library
 * returns, its own FACTUM_E* codes (those of factum_client.h too) and
 * -errno alike.
 */
#include "base/base.h"
#include "factum_client.h"

#include <string.h>

const char *factum_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case FACTUM_EWRONGVERSION:
        return "wrong expected version";
    case FACTUM_ENOTFOUND:
        return "stream not found";
    case FACTUM_EDELETED:
        return "stream deleted (tombstoned)";
    case FACTUM_EIDEMPOTENCY:
        return "event ids partly match events already in the stream";
    case FACTUM_ETOOBIG:
        return "event or append exceeds the size limit";
    case FACTUM_EBADNAME:
        return "invalid stream name (empty, too long or not UTF-8)";
    case FACTUM_EBADTYPE:
        return "invalid event type (empty, too long or not UTF-8)";
    case FACTUM_EBADUUID:
        return "malformed UUID";
    case FACTUM_EBADJSON:
        return "malformed JSON";
    case FACTUM_ECORRUPT:
        return "stored data is corrupt (checksum or structure)";
    case FACTUM_EFAILED:
        return "store stopped after an I/O error; reopen it to recover";
    case FACTUM_ENOTSTORE:
        return "not a factum data directory";
    case FACTUM_EFORMAT:
        return "data directory has a newer, unsupported format version";
    case FACTUM_ELOCKED:
        return "data directory is locked by another process";
    case FACTUM_EINVAL:
        return "invalid argument";
    case FACTUM_ECLOSED:
        return "store is closing";
    case FACTUM_EREADONLY:
        return "store is open read-only";
    case FACTUM_EBADREGEX:
        return "invalid regular expression";
    case FACTUM_EDUPLICATEID:
        return "the same event id appears twice in one append";
    case FACTUM_EREGEXLIMIT:
        return "a filter's regular expression needed more than its match limits";
    case FACTUM_EFAULTED:
        return "the projection or read model is faulted (its status says why)";
    case FACTUM_EBADSTATE:
        return "the projection is not in a state that allows it";
    case FACTUM_ETARGET:
        return "the read model's target database failed";
    case FACTUM_EUPCAST:
        return "an upcaster could not be applied to an event";
    /* The client's codes (factum_client.h). */
    case FACTUM_ECONNECT:
        return "cannot connect to the server, or the connection was lost";
    case FACTUM_EPROTOCOL:
        return "the server's answer breaks the protocol";
    case FACTUM_ESERVER:
        return "the server failed the call";
    case FACTUM_EUNSUPPORTED:
        return "the server does not implement this call";
    case FACTUM_ETIMEDOUT:
        return "not done within the deadline (no answer from the server, or a wait timed out)";
    case FACTUM_EEXISTS:
        return "it exists already";
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
    if (code < 0 && code > -4096) {
        /* strerror's table is static for known errno values in glibc. */
        return strerror(-code);
    }
    return "unknown error";
}
