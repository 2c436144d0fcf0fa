/*
 * seal.h - for the library's own holders of events (projections, read
 * models, consumers, deciders, sagas): a reader of their own for the
 * sealed events they read (crypto-shredding, ADR 0027).
 */
#ifndef FACTUM_STORE_SEAL_H
#define FACTUM_STORE_SEAL_H

#include "factum.h"

/* Bind *r to the calling thread for the reads that follow, making it on
 * first use when the store seals (nothing is made or bound otherwise);
 * reset: forget what it opened before (the holder is done with those
 * events). Returns what to give holder_reader_leave. */
typedef struct holder_bind {
    factum_reader *prev;
    int bound;
} holder_bind;
holder_bind holder_reader_enter(factum_store *s, factum_reader **r, int reset);
void holder_reader_leave(holder_bind b);

#endif
