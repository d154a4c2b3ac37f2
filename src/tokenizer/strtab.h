/* The strings of a GGUF string array (token texts, BPE merges), read in place from the
 * file's mapping instead of copied: a GGUF string is its 8-byte length followed by its
 * bytes, so string i is base[off[i] .. off[i + 1] - QR_STRTAB_GAP) and only the offsets
 * are allocated (4 bytes a string). The mapping's pages count once in the resident set
 * whether or not the vocabulary reads them, so Gemma 3's 262k token texts cost 1 MiB of
 * offsets instead of 2.2 MiB of copied text plus 1 MiB of lengths.
 *
 * The mapping must outlive the table. When the strings cannot be used in place (llama.cpp
 * renames empty token texts), a private copy in the same layout is made. */
#ifndef QR_TOKENIZER_STRTAB_H
#define QR_TOKENIZER_STRTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

/* Bytes between one string's end and the next one's start: the next one's length. */
#define QR_STRTAB_GAP 8u

typedef struct qr_strtab {
    const char *base; /* the array's first element in the mapping, or `own` */
    uint32_t *off;    /* n + 1 entries */
    char *own;        /* the private copy, or NULL */
    uint32_t n;
} qr_strtab;

/* Reads the GGUF array of strings `arr` (key `key` of file `path`, for messages).
 * name_empty: an empty string i becomes "[EMPTY_<i>]" (llama.cpp's rule for token texts),
 * which forces a private copy. QR_ERR when memory runs out or the strings take 4 GiB. */
int qr_strtab_load(qr_strtab *t, const qr_gguf_value *arr, bool name_empty, const char *path,
                   const char *key, qr_error *err);
void qr_strtab_free(qr_strtab *t);

static inline const char *qr_strtab_get(const qr_strtab *t, uint32_t i, size_t *len) {
    *len = t->off[i + 1] - t->off[i] - QR_STRTAB_GAP;
    return t->base + t->off[i];
}


#endif
