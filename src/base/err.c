/*
 * err.c - factum_strerror: one static message for every code of factum.h
 * and for -errno. The codes of libfactum-client (factum_client.h, -1101 to
 * -1199 but for factum.h's FACTUM_ETIMEDOUT and FACTUM_EEXISTS) are the
 * client library's to describe: this file names none of them, and hands
 * that range to factum_client_strerror when the client library is in the
 * process (docs/adr/0018-client-library.md).
 */
#include "base/base.h"

#include <string.h>

/* A weak reference: resolved to libfactum-client's function when the
 * program links that library too (or when this copy of base is the client
 * library's own), NULL when it does not: then no code of that range can
 * have reached the program through a call of ours, and the range gets a
 * message that names the library. */
extern const char *factum_client_strerror(int code) __attribute__((weak));

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
    case FACTUM_EKEY:
        return "the master key is missing, unreadable, too open, or not the one the store's keys were wrapped with";
    case FACTUM_ETIMEDOUT:
        return "not done within the deadline (no answer from the server, or a wait timed out)";
    case FACTUM_EEXISTS:
        return "it exists already";
    }
    if (code <= FACTUM_CLIENT_ECODE_FIRST && code >= FACTUM_CLIENT_ECODE_LAST)
        return factum_client_strerror ? factum_client_strerror(code)
                                      : "an error of libfactum-client (factum_client_strerror describes it)";
    if (code < 0 && code > -4096) {
        /* strerror's table is static for known errno values in glibc. */
        return strerror(-code);
    }
    return "unknown error";
}
