/*
 * wire.h - the hot request messages decoded without protobuf-c's heap
 * (issue 15): an Append call's AppendReq (its options, then one proposed
 * message per event) is read straight from the request's bytes into
 * protobuf-c's own structures kept on the caller's stack, so that the code
 * after it is the same whichever decoder ran.
 *
 *  WIRE-1  Only the canonical encoding is taken: every known field at most
 *          once (a map entry once per entry), no unknown field, no other
 *          wire type, no key or length in more than 5 bytes (protobuf-c
 *          refuses those), at most RPC_WIRE_META entries and RPC_WIRE_TEXT bytes
 *          of strings. Anything else answers "not mine" (1) and the caller
 *          decodes with protobuf-c (rpc_unpack), which settles merges,
 *          duplicates and errors as before. Real clients send the canonical
 *          form.
 *  WIRE-2  What it accepts, it decodes to exactly what protobuf-c would
 *          (tests/unit/wire.c compares the two on random and mutated
 *          messages): strings are NUL-terminated copies (a string with a
 *          NUL inside reads as protobuf-c's does: up to the NUL), bytes
 *          point into the message, absent fields hold protobuf-c's defaults.
 *  WIRE-3  It allocates nothing and holds nothing: the result is valid while
 *          the message's bytes and the rpc_wire_append are.
 *
 * And the hot answer: a ReadResp.ReadEvent (every event a read, a
 * subscription or a consumer group sends) packed by hand.
 *
 *  WIRE-4  The bytes are exactly protobuf-c's for the same structure (the
 *          fields in number order, proto3's zero values left out, oneof
 *          members written when their case is set; tests/unit/wire.c
 *          compares them on random events). Unknown fields kept in the
 *          structures are not written: the server never sets any.
 */
#ifndef FACTUM_RPC_WIRE_H
#define FACTUM_RPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "kurrentdb/shared.pb-c.h"
#include "kurrentdb/streams.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#define RPC_WIRE_META 16  /* metadata entries of a proposed message */
#define RPC_WIRE_TEXT 768 /* bytes of its strings, each with its NUL */

typedef struct rpc_wire_append {
    EventStore__Client__Streams__AppendReq req;
    EventStore__Client__Streams__AppendReq__Options opt;
    EventStore__Client__StreamIdentifier sid;
    EventStore__Client__Empty empty;
    EventStore__Client__Streams__AppendReq__ProposedMessage pm;
    EventStore__Client__UUID id;
    EventStore__Client__UUID__Structured su;
    EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry me[RPC_WIRE_META];
    EventStore__Client__Streams__AppendReq__ProposedMessage__MetadataEntry *mep[RPC_WIRE_META];
    char text[RPC_WIRE_TEXT];
} rpc_wire_append;

/* Decode an AppendReq (WIRE-1..3). 0: w->req is the message; 1: not the
 * canonical form (or malformed): decode it with protobuf-c instead. */
int rpc_wire_append_req(const uint8_t *msg, size_t len, rpc_wire_append *w);

#define RPC_WIRE_BATCH 16       /* proposed messages of a BatchAppendReq */
#define RPC_WIRE_BATCH_META 64  /* metadata entries of all of them */
#define RPC_WIRE_BATCH_TEXT 4096

/* A BatchAppendReq decoded in place: the official clients' appends. About
 * 13 KiB: keep one per thread, not on a small stack. */
typedef struct rpc_wire_batch {
    EventStore__Client__Streams__BatchAppendReq req;
    EventStore__Client__UUID corr;
    EventStore__Client__UUID__Structured corr_su;
    EventStore__Client__Streams__BatchAppendReq__Options opt;
    EventStore__Client__StreamIdentifier sid;
    Google__Protobuf__Empty empty;
    Google__Protobuf__Timestamp ts;
    Google__Protobuf__Duration dur;
    EventStore__Client__Streams__BatchAppendReq__ProposedMessage pm[RPC_WIRE_BATCH];
    EventStore__Client__Streams__BatchAppendReq__ProposedMessage *pmp[RPC_WIRE_BATCH];
    EventStore__Client__UUID id[RPC_WIRE_BATCH];
    EventStore__Client__UUID__Structured su[RPC_WIRE_BATCH];
    EventStore__Client__Streams__BatchAppendReq__ProposedMessage__MetadataEntry me[RPC_WIRE_BATCH_META];
    EventStore__Client__Streams__BatchAppendReq__ProposedMessage__MetadataEntry *mep[RPC_WIRE_BATCH_META];
    char text[RPC_WIRE_BATCH_TEXT];
} rpc_wire_batch;

/* Decode a BatchAppendReq (WIRE-1..3 as for AppendReq; the bool is_final
 * only as one byte 0 or 1). 0: w->req is the message; 1: use protobuf-c. */
int rpc_wire_batch_req(const uint8_t *msg, size_t len, rpc_wire_batch *w);

/* ReadResp.ReadEvent packed (WIRE-4): its size, and the bytes written to
 * out (which has room for the size), returning the size. */
size_t rpc_wire_read_event_size(const EventStore__Client__Streams__ReadResp__ReadEvent *re);
size_t rpc_wire_read_event_pack(const EventStore__Client__Streams__ReadResp__ReadEvent *re, uint8_t *out);

#endif
