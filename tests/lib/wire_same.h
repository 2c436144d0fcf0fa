/* wire_same.h - whether two decoded AppendReq messages are equal, field by
 * field: the comparison of src/rpc/wire.c against protobuf-c shared by
 * tests/unit/wire.c and tests/fuzz/fuzz_wire.c. */
#ifndef FACTUM_TESTS_WIRE_SAME_H
#define FACTUM_TESTS_WIRE_SAME_H

#include <string.h>

#include "kurrentdb/streams.pb-c.h"

static int same_str(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int same_bin(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (!a.len || memcmp(a.data, b.data, a.len) == 0);
}

static int same_req(const EventStore__Client__Streams__AppendReq *a, const EventStore__Client__Streams__AppendReq *b)
{
    if (a->content_case != b->content_case) return 0;
    if (a->content_case == EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__CONTENT_OPTIONS) {
        const EventStore__Client__Streams__AppendReq__Options *x = a->options, *y = b->options;
        if (!x || !y || !x->stream_identifier != !y->stream_identifier) return 0;
        if (x->stream_identifier && !same_bin(x->stream_identifier->stream_name, y->stream_identifier->stream_name))
            return 0;
        if (x->expected_stream_revision_case != y->expected_stream_revision_case) return 0;
        if (x->expected_stream_revision_case ==
            EVENT_STORE__CLIENT__STREAMS__APPEND_REQ__OPTIONS__EXPECTED_STREAM_REVISION_REVISION)
            return x->revision == y->revision;
        if (x->expected_stream_revision_case) return x->no_stream && y->no_stream;
        return 1;
    }
    const EventStore__Client__Streams__AppendReq__ProposedMessage *x = a->proposed_message, *y = b->proposed_message;
    if (!x || !y || !x->id != !y->id) return 0;
    if (x->id) {
        if (x->id->value_case != y->id->value_case) return 0;
        if (x->id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING && !same_str(x->id->string, y->id->string))
            return 0;
        if (x->id->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED &&
            (!x->id->structured || !y->id->structured ||
             x->id->structured->most_significant_bits != y->id->structured->most_significant_bits ||
             x->id->structured->least_significant_bits != y->id->structured->least_significant_bits))
            return 0;
    }
    if (x->n_metadata != y->n_metadata) return 0;
    for (size_t i = 0; i < x->n_metadata; i++)
        if (!same_str(x->metadata[i]->key, y->metadata[i]->key) || !same_str(x->metadata[i]->value, y->metadata[i]->value))
            return 0;
    return same_bin(x->custom_metadata, y->custom_metadata) && same_bin(x->data, y->data);
}


static int same_uuid(const EventStore__Client__UUID *x, const EventStore__Client__UUID *y)
{
    if (!x || !y) return !x && !y;
    if (x->value_case != y->value_case) return 0;
    if (x->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRING) return same_str(x->string, y->string);
    if (x->value_case == EVENT_STORE__CLIENT__UUID__VALUE_STRUCTURED)
        return x->structured && y->structured &&
               x->structured->most_significant_bits == y->structured->most_significant_bits &&
               x->structured->least_significant_bits == y->structured->least_significant_bits;
    return 1;
}

static int same_batch(const EventStore__Client__Streams__BatchAppendReq *a,
                      const EventStore__Client__Streams__BatchAppendReq *b)
{
    if (!same_uuid(a->correlation_id, b->correlation_id) || !a->is_final != !b->is_final) return 0;
    if (!a->options != !b->options) return 0;
    if (a->options) {
        const EventStore__Client__Streams__BatchAppendReq__Options *x = a->options, *y = b->options;
        if (!x->stream_identifier != !y->stream_identifier) return 0;
        if (x->stream_identifier && !same_bin(x->stream_identifier->stream_name, y->stream_identifier->stream_name))
            return 0;
        if (x->expected_stream_position_case != y->expected_stream_position_case) return 0;
        if (x->expected_stream_position_case ==
                EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__EXPECTED_STREAM_POSITION_STREAM_POSITION &&
            x->stream_position != y->stream_position)
            return 0;
        if (x->deadline_option_case != y->deadline_option_case) return 0;
        if (x->deadline_option_case == EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__DEADLINE_OPTION_DEADLINE_21_10_0 &&
            (x->deadline_21_10_0->seconds != y->deadline_21_10_0->seconds ||
             x->deadline_21_10_0->nanos != y->deadline_21_10_0->nanos))
            return 0;
        if (x->deadline_option_case == EVENT_STORE__CLIENT__STREAMS__BATCH_APPEND_REQ__OPTIONS__DEADLINE_OPTION_DEADLINE &&
            (x->deadline->seconds != y->deadline->seconds || x->deadline->nanos != y->deadline->nanos))
            return 0;
    }
    if (a->n_proposed_messages != b->n_proposed_messages) return 0;
    for (size_t i = 0; i < a->n_proposed_messages; i++) {
        const EventStore__Client__Streams__BatchAppendReq__ProposedMessage *x = a->proposed_messages[i],
                                                                          *y = b->proposed_messages[i];
        if (!same_uuid(x->id, y->id) || x->n_metadata != y->n_metadata) return 0;
        for (size_t j = 0; j < x->n_metadata; j++)
            if (!same_str(x->metadata[j]->key, y->metadata[j]->key) ||
                !same_str(x->metadata[j]->value, y->metadata[j]->value))
                return 0;
        if (!same_bin(x->custom_metadata, y->custom_metadata) || !same_bin(x->data, y->data)) return 0;
    }
    return 1;
}

#endif
