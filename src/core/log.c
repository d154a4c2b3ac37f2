#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static qr_log_level g_level = QR_LOG_WARN;
static qr_log_format g_format = QR_LOG_TEXT;
static FILE *g_stream;

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error", "off"};

void qr_log_set_level(qr_log_level level) { g_level = level; }
void qr_log_set_format(qr_log_format format) { g_format = format; }
void qr_log_set_stream(FILE *stream) { g_stream = stream; }
qr_log_level qr_log_get_level(void) { return g_level; }

int qr_log_parse_level(const char *s, qr_log_level *out) {
    for (int i = 0; i <= QR_LOG_OFF; i++) {
        if (strcmp(s, LEVEL_NAMES[i]) == 0) {
            *out = (qr_log_level)i;
            return 0;
        }
    }
    return -1;
}

int qr_log_parse_format(const char *s, qr_log_format *out) {
    if (strcmp(s, "text") == 0) *out = QR_LOG_TEXT;
    else if (strcmp(s, "json") == 0) *out = QR_LOG_JSON;
    else return -1;
    return 0;
}

void qr_log_init_from_env(void) {
    const char *lv = getenv("QUARREL_LOG_LEVEL");
    const char *fm = getenv("QUARREL_LOG_FORMAT");
    qr_log_level level;
    qr_log_format format;
    if (lv && qr_log_parse_level(lv, &level) == 0) g_level = level;
    if (fm && qr_log_parse_format(fm, &format) == 0) g_format = format;
}

static void format_timestamp(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + len, n - len, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes s as the body of a JSON string (without quotes). */
static void write_json_escaped(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
}

void qr_log_write(qr_log_level level, const char *module, const char *fmt, ...) {
    if (level < g_level || level >= QR_LOG_OFF) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    format_timestamp(ts, sizeof ts);
    FILE *f = g_stream ? g_stream : stderr;
    flockfile(f);
    if (g_format == QR_LOG_JSON) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"", ts, LEVEL_NAMES[level]);
        write_json_escaped(f, module);
        fputs("\",\"msg\":\"", f);
        write_json_escaped(f, msg);
        fputs("\"}\n", f);
    } else {
        fprintf(f, "%s %-5s %s: %s\n", ts, LEVEL_NAMES[level], module, msg);
    }
    funlockfile(f);
}
