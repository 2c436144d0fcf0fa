/* Fuzz target: log_decode_frame, the one place where log bytes become
 * events (LOG-2). Any input must yield a frame, "no frame" or
 * FACTUM_ECORRUPT, never a read outside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so that reads past `size` are caught by ASan. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    int type;
    factum_event ev;
    log_batch_hdr bh;
    uint32_t ff;
    int n = log_decode_frame(p, size, &type, &ev, &bh, &ff);
    if (n > 0 && type == LOG_FRAME_EVENT) {
        /* Touch every byte the decoder handed out. */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < ev.stream_len; i++)
            sink ^= (uint8_t)ev.stream[i];
        for (size_t i = 0; i < ev.type_len; i++)
            sink ^= (uint8_t)ev.type[i];
        for (size_t i = 0; i < ev.data_len; i++)
            sink ^= ev.data[i];
        for (size_t i = 0; i < ev.metadata_len; i++)
            sink ^= ev.metadata[i];
        (void)sink;
        if ((size_t)n > size || ev.stream[ev.stream_len] != 0 || ev.type[ev.type_len] != 0) abort();
    }
    free(p);
    return 0;
}
