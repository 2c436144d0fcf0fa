/*
 * log.h - factumd's structured, levelled log lines on stderr:
 *   2026-12-01T11:22:33.123Z INFO  listening on 127.0.0.1:2113
 * or, with --log-format json, one JSON object per line:
 *   {"time":"2026-12-01T11:22:33.123Z","level":"info","msg":"listening on 127.0.0.1:2113"}
 */
#ifndef FACTUM_SERVER_LOG_H
#define FACTUM_SERVER_LOG_H

enum { SLOG_ERROR = 0, SLOG_WARN = 1, SLOG_INFO = 2, SLOG_DEBUG = 3 };

void slog_setup(int level, int json);
void slog_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adapter for factum_options.log_fn and net_config.log_fn (ctx unused). */
void slog_sink(void *ctx, int level, const char *msg);

#endif
