/* Unicode helpers shared by the tokenizers. They reproduce llama.cpp's conventions
 * (src/unicode.cpp) where tokenization depends on them:
 *  - UTF-8 decoding is permissive in the same way: the lead byte picks the length, only
 *    continuation bytes are checked (no overlong/surrogate checks), and a bad sequence
 *    becomes U+FFFD while advancing one byte;
 *  - code point classes are the general-category groups (L, N, P, M, S, C, Z, undefined)
 *    from utf8proc, plus the fixed White_Space set;
 *  - GPT-2's byte <-> code point map. */
#ifndef QR_TOKENIZER_UNICODE_H
#define QR_TOKENIZER_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    QR_CPT_UNDEFINED = 0x0001,
    QR_CPT_NUMBER = 0x0002,
    QR_CPT_LETTER = 0x0004,
    QR_CPT_SEPARATOR = 0x0008,
    QR_CPT_MARK = 0x0010,
    QR_CPT_PUNCT = 0x0020,
    QR_CPT_SYMBOL = 0x0040,
    QR_CPT_CONTROL = 0x0080,
    QR_CPT_CATEGORY_MASK = 0x00FF,
    QR_CPT_WHITESPACE = 0x0100,
};

/* Bytes in the UTF-8 sequence that starts with `lead`, by its high nibble (1 for a
 * stray continuation byte). */
size_t qr_utf8_seq_len(uint8_t lead);

/* Decodes one code point at s[*pos] (n bytes in all) and advances *pos. */
uint32_t qr_utf8_decode(const uint8_t *s, size_t n, size_t *pos);

/* Encodes cp (<= 0x10FFFF, surrogates allowed) into out; returns the byte count. */
size_t qr_utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8 sequence,
 * treating an invalid lead byte as complete (so bad bytes are never held back). */
size_t qr_utf8_complete_prefix(const uint8_t *s, size_t n);

/* Category flags of a code point (0 above 0x10FFFF). */
uint16_t qr_cpt_flags(uint32_t cp);

/* Simple lowercase mapping (UnicodeData field 13). */
uint32_t qr_cpt_tolower(uint32_t cp);

/* First code point of the canonical decomposition (NFD) of cp; llama.cpp's WordPiece
 * normaliser keeps only that one. */
uint32_t qr_cpt_nfd_first(uint32_t cp);

/* GPT-2 byte-level map: byte -> code point, and code point -> byte (-1 if none). */
uint32_t qr_byte_to_cpt(uint8_t b);
int qr_cpt_to_byte(uint32_t cp);

#endif
