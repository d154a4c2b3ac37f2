#include "server/bytes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(qs_bytes *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    const size_t cap = 2 * (b->n + extra + 1) + 64;
    char *s = realloc(b->s, cap);
    if (!s) return -1;
    b->s = s;
    b->cap = cap;
    return 0;
}

int qs_bytes_append(qs_bytes *b, const char *data, size_t len) {
    if (reserve(b, len) != 0) return -1;
    memcpy(b->s + b->n, data, len);
    b->n += len;
    b->s[b->n] = 0;
    return 0;
}

int qs_bytes_printf(qs_bytes *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || reserve(b, (size_t)k) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
    return 0;
}

void qs_bytes_free(qs_bytes *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
