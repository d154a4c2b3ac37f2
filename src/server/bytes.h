/* A growable byte buffer, always NUL-terminated after its n bytes (request bodies,
 * generated text, pending server-sent events, the metrics page). */
#ifndef QS_BYTES_H
#define QS_BYTES_H

#include <stddef.h>

typedef struct qs_bytes {
    char *s;
    size_t n, cap;
} qs_bytes;

/* Appends data[0..len); -1 on out of memory (the buffer is unchanged). */
int qs_bytes_append(qs_bytes *b, const char *data, size_t len);
/* printf-style append; -1 on out of memory or a formatting error. */
int qs_bytes_printf(qs_bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qs_bytes_free(qs_bytes *b);

#endif
