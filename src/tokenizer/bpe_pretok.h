/* Byte-level BPE pre-tokenizers, chosen by tokenizer.ggml.pre: a list of splitting
 * steps applied in order, each cutting every current piece into regex matches and the
 * gaps between them (llama.cpp's unicode_regex_split).
 *
 * GPT-2, Llama-3 and Qwen2 patterns run as hand-written splitters, as in llama.cpp.
 * The other patterns run through PCRE2 in the same way llama.cpp runs them through
 * std::regex, so that the splits agree on every input, not just on common text:
 *  - a pattern with \p{..} classes runs in byte mode over a "collapsed" text holding one
 *    byte per code point: ASCII as itself, other whitespace as 0x0B, other code points
 *    as a category byte (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark,
 *    0xD5 symbol, 0xD0 anything else); each \p{X} in the pattern becomes a class of
 *    that byte plus the ASCII members of X;
 *  - a pattern without \p{..} runs in UTF mode (no Unicode properties, so \s is ASCII)
 *    over the code points with non-ASCII whitespace replaced by 0x0B (and surrogates,
 *    which PCRE2 cannot take, by U+FFFD: no pattern here can match either). */
#ifndef QR_TOKENIZER_BPE_PRETOK_H
#define QR_TOKENIZER_BPE_PRETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum {
    QR_PRE_CLEAN_SPACES_OFF = 1 << 0,
    QR_PRE_IGNORE_MERGES = 1 << 1,
    QR_PRE_ADD_BOS = 1 << 2,
    QR_PRE_ADD_SEP = 1 << 3,
    QR_PRE_NO_BOS = 1 << 4,
};

/* Looks a tokenizer.ggml.pre value up ("" = absent = default). On success *set is the
 * splitter set and *flags the QR_PRE_* flags; on failure err names the value and lists
 * the supported ones. */
int qr_pretok_lookup(const char *name, int *set, unsigned *flags, qr_error *err);

typedef struct qr_pretok qr_pretok;

int qr_pretok_create(int set, qr_pretok **out, qr_error *err);
void qr_pretok_free(qr_pretok *p);

/* A growable array of word lengths, in code points. */
typedef struct qr_sizes {
    size_t *v;
    size_t n, cap;
} qr_sizes;

/* Splits cpts[0..n) into words; *words receives their lengths (replacing its content).
 * QR_ERR only when memory runs out or PCRE2 fails (err says which). */
int qr_pretok_split(const qr_pretok *p, const uint32_t *cpts, size_t n, qr_sizes *words,
                    qr_error *err);

#endif
