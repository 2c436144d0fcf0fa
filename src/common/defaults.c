/*
 * defaults.c - the defaults of the option structs that the embedded calls
 * and the C client's calls both take (factum_readmodel.h's query options,
 * factum.h's projection definition), so that an application of the client
 * alone can fill them.
 */
#include <string.h>

#include "factum.h"
#include "factum_readmodel.h"

void factum_query_options_init(factum_query_options *o)
{
    memset(o, 0, sizeof *o);
    o->wait_ms = 5000;
    o->row_limit = 1000;
    o->time_limit_ms = 5000;
}

void factum_projection_def_init(factum_projection_def *d)
{
    memset(d, 0, sizeof *d);
    d->mode = FACTUM_PROJECTION_CONTINUOUS;
    d->enabled = 1;
}
