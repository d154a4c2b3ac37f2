/* Structured logging: the one way library code reports what it does. Every call site
 * looks like
 *     QR_LOG_INFO("gguf", "opened %s: %u tensors", path, n);
 * and produces either a text line or a JSON object per line on stderr:
 *     2026-11-26T13:40:00.123Z info  gguf: opened model.gguf: 12 tensors
 *     {"ts":"2026-11-26T13:40:00.123Z","level":"info","module":"gguf","msg":"opened ..."}
 * The level and format are the only global mutable state the library keeps. */
#ifndef QR_CORE_LOG_H
#define QR_CORE_LOG_H

#include <stdio.h>

typedef enum { QR_LOG_DEBUG = 0, QR_LOG_INFO, QR_LOG_WARN, QR_LOG_ERROR, QR_LOG_OFF } qr_log_level;
typedef enum { QR_LOG_TEXT = 0, QR_LOG_JSON } qr_log_format;

void qr_log_set_level(qr_log_level level);
void qr_log_set_format(qr_log_format format);
void qr_log_set_stream(FILE *stream); /* default stderr */
qr_log_level qr_log_get_level(void);

/* Parses "debug|info|warn|error|off" and "text|json"; return 0 on success, -1 otherwise. */
int qr_log_parse_level(const char *s, qr_log_level *out);
int qr_log_parse_format(const char *s, qr_log_format *out);

/* Reads QUARREL_LOG_LEVEL and QUARREL_LOG_FORMAT from the environment, if set. */
void qr_log_init_from_env(void);

void qr_log_write(qr_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define QR_LOG_DEBUG(module, ...) qr_log_write(QR_LOG_DEBUG, module, __VA_ARGS__)
#define QR_LOG_INFO(module, ...) qr_log_write(QR_LOG_INFO, module, __VA_ARGS__)
#define QR_LOG_WARN(module, ...) qr_log_write(QR_LOG_WARN, module, __VA_ARGS__)
#define QR_LOG_ERROR(module, ...) qr_log_write(QR_LOG_ERROR, module, __VA_ARGS__)

#endif
