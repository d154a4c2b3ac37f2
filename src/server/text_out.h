/* A sequence's generated text on its way to the client: stop strings are cut out (the
 * text ends just before the first match), and text that could still become a stop string
 * or is an incomplete UTF-8 character is held back until the next token decides. */
#ifndef QS_TEXT_OUT_H
#define QS_TEXT_OUT_H

#include <stdbool.h>
#include <stddef.h>

#include "server/bytes.h"

typedef struct qs_text_out {
    qs_bytes text;   /* everything generated so far */
    size_t released; /* bytes already handed to the client */
} qs_text_out;

void qs_text_out_reset(qs_text_out *t);
void qs_text_out_free(qs_text_out *t);

/* Appends a token's bytes; sets [*out, *out + *out_len) to the text now safe to release
 * and *stopped when a stop string matched (nothing after it is ever released). -1 on out
 * of memory. */
int qs_text_out_add(qs_text_out *t, const char *piece, size_t len, char *const *stop, int n_stop,
                    const char **out, size_t *out_len, bool *stopped);
/* At the end of generation (not by a stop string): the held-back rest. */
void qs_text_out_flush(qs_text_out *t, const char **out, size_t *out_len);

/* Bytes of s[0..n) that form complete UTF-8 characters: n minus an incomplete tail. */
size_t qs_utf8_complete_prefix(const char *s, size_t n);

#endif
