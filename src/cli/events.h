/*
 * events.h - reading events from NDJSON lines and checking events before
 * the store is opened (events.c). Shared by `append` and `import`.
 */
#ifndef FACTUM_CLI_EVENTS_H
#define FACTUM_CLI_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "factum.h"

/* The limits the command line opens the store with (the library defaults). */
#define CLI_MAX_EVENT_SIZE  FACTUM_DEFAULT_MAX_EVENT_SIZE
#define CLI_MAX_APPEND_SIZE (64u * 1024u * 1024u)

enum { CLI_LINE_APPEND = 0, CLI_LINE_IMPORT = 1 };

/* One event read from a line. The strings and buffers are owned. */
typedef struct cli_input_event {
    char *stream;    /* import lines: "stream" */
    int64_t version; /* import lines: "version"; -1 otherwise */
    char *type;
    uint8_t id[16];
    int has_id;
    uint32_t flags; /* FACTUM_EVENT_JSON, FACTUM_EVENT_META_JSON */
    base_buf data;
    base_buf metadata;
} cli_input_event;

/* Parse one line (a JSON object). CLI_LINE_APPEND accepts type, data,
 * dataEncoding, metadata (an object), metadataEncoding and id;
 * CLI_LINE_IMPORT also stream and version (required), position and
 * timestamp (ignored), and metadata of any JSON type. JSON payloads are
 * stored compactly. Returns 0, or -1 with the reason in err. */
int cli_parse_event_line(const char *line, size_t len, int mode, cli_input_event *ev, char *err,
                         size_t errlen);
void cli_input_event_free(cli_input_event *ev);

/* Valid UTF-8 without NUL, overlongs or surrogates? */
int cli_utf8_valid(const char *s, size_t n);
/* Check an event type; -1 with the reason in err. */
int cli_check_type(const char *type, char *err, size_t errlen);
/* The checks the store would make on one append's events that do not need
 * its state: sizes and duplicate ids. 0 or the library's code, with err. */
int cli_check_batch(const factum_event_data *evs, size_t n, char *err, size_t errlen);
/* For a `$$<stream>` metadata stream: every event must be a `$metadata`
 * event holding a valid metadata document. 0 or -1 with err. */
int cli_check_meta_events(const char *stream, const factum_event_data *evs, size_t n, char *err,
                          size_t errlen);

#endif
