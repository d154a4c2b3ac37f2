/* Errors are values: a function that can fail returns QR_OK or QR_ERR and writes a
 * human-readable message into the caller's qr_error, naming the file, field or
 * parameter at fault. Nothing in the library aborts on bad input. */
#ifndef QR_CORE_ERROR_H
#define QR_CORE_ERROR_H

#include <stddef.h>

#define QR_OK 0
#define QR_ERR (-1)

typedef struct qr_error {
    char msg[512];
} qr_error;

/* Formats the message into err (which may be NULL) and returns QR_ERR, so call sites
 * read `return qr_fail(err, "...", ...);`. */
int qr_fail(qr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("reading model.gguf: ") to an existing message; returns QR_ERR. */
int qr_fail_prefix(qr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
