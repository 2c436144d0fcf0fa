/*
 * tlsflood.h - the hostile suite's TLS phase (tlsflood.c): handshake floods
 * and slow handshakes against a factumd with certificates while
 * well-behaved TLS clients measure their latency.
 */
#ifndef FACTUM_TEST_TLSFLOOD_H
#define FACTUM_TEST_TLSFLOOD_H

/* Run the phase (prints its table); the number of failed checks. Skipped
 * (0) without FACTUM_MKCERTS. */
int hostile_tls_phase(const char *factumd, const char *tmp);

#endif
