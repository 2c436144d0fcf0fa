/*
 * log.c - the log lines of log.h. One write(2) per line, so that lines from
 * the store's threads and the loop do not interleave.
 */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "base/json.h"

static int max_level = SLOG_INFO, as_json;

void slog_setup(int level, int json)
{
    max_level = level;
    as_json = json;
}

static void emit(int level, const char *msg)
{
    if (level > max_level) return;
    static const char *names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    static const char *jnames[] = {"error", "warning", "info", "debug"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    base_buf b = {0};
    if (as_json) {
        base_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", when, jnames[level & 3]);
        json_write_string(&b, msg, strlen(msg));
        base_buf_append(&b, "}\n", 2);
    } else {
        base_buf_printf(&b, "%s %s %s\n", when, names[level & 3], msg);
    }
    if (b.data) {
        ssize_t w = write(2, b.data, b.len);
        (void)w;
    }
    base_buf_free(&b);
}

void slog_write(int level, const char *fmt, ...)
{
    if (level > max_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(level, buf);
}

void slog_sink(void *ctx, int level, const char *msg)
{
    (void)ctx;
    emit(level, msg);
}
