/* The piece of every token (its text as bytes, with special tokens rendered), computed
 * once at load like llama.cpp's cache_token_to_piece: SPM/WPM normal tokens turn "▁" into
 * " ", BPE normal tokens go through GPT-2's inverse byte map, byte tokens give their byte,
 * control / unknown / user-defined tokens give their text, unused/undefined give "".
 * Only the pieces that differ from their token's text are stored, each after its length:
 * the others are the text itself, in the GGUF mapping. For Gemma 3 that is 138k of 262k
 * pieces, 2.4 MiB with the per-token references instead of 4.4. (A bit per token with a
 * count per 64 tokens instead of the references took 0.6 MiB less, but computing the rank
 * before the piece's load made every lookup about 3 ns slower.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte of a <0xXX> token (strtol semantics: stops at the first non-hex digit). */
static uint8_t byte_token_value(const char *t, size_t len) {
    int v = 0;
    for (size_t i = 3; i < 5 && i < len; i++) {
        int h = hexval(t[i]);
        if (h < 0) break;
        v = v * 16 + h;
    }
    return (uint8_t)v;
}

/* Writes the piece of token id to buf, which has room for the worst case: every
 * character unmapped, each adding an [UNK_BYTE_0x..] marker with the whole text. */
static size_t render_piece(const qr_vocab *v, int32_t id, char *buf) {
    size_t len;
    const char *t = qr_vocab_text(v, id, &len);
    uint8_t a = v->attr[id];
    if (a & (QR_ATTR_UNKNOWN | QR_ATTR_CONTROL | QR_ATTR_USER_DEFINED)) {
        memcpy(buf, t, len);
        return len;
    }
    if (a & QR_ATTR_NORMAL) {
        size_t o = 0;
        if (v->type != QR_VOCAB_BPE || v->escape_whitespaces) {
            for (size_t i = 0; i < len;) { /* "▁" -> " " */
                if (i + 3 <= len && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
                    buf[o++] = ' ';
                    i += 3;
                } else {
                    buf[o++] = t[i++];
                }
            }
            return o;
        }
        for (size_t i = 0; i < len;) { /* inverse GPT-2 byte map */
            size_t start = i;
            uint32_t cp = qr_utf8_decode((const uint8_t *)t, len, &i);
            int b = qr_cpt_to_byte(cp);
            if (b >= 0) {
                buf[o++] = (char)b;
                continue;
            }
            /* llama.cpp writes this marker (with the whole token text) for an unmapped char */
            o += (size_t)sprintf(buf + o, "[UNK_BYTE_0x");
            for (size_t k = start; k < i; k++) o += (size_t)sprintf(buf + o, "%02x", (uint8_t)t[k]);
            memcpy(buf + o, t, len);
            o += len;
            buf[o++] = ']';
        }
        return o;
    }
    if (a & QR_ATTR_BYTE) {
        buf[0] = (char)byte_token_value(t, len);
        return 1;
    }
    return 0;
}

/* Appends a piece, after its length, to the arena (growing it); returns its offset, 0 when
 * memory runs out. */
static uint32_t append_piece(qr_vocab *v, size_t *size, size_t *cap, const char *p, size_t len) {
    size_t head = len < 255 ? 1 : 5, at = *size, end = at + head + len;
    if (end > UINT32_MAX) return 0;
    if (end > *cap) {
        size_t ncap = end * 2;
        char *a = realloc(v->piece_arena, ncap);
        if (!a) return 0;
        v->piece_arena = a;
        *cap = ncap;
    }
    char *d = v->piece_arena + at;
    if (head == 1) {
        d[0] = (char)len;
    } else {
        uint32_t n = (uint32_t)len;
        d[0] = (char)255;
        memcpy(d + 1, &n, 4);
    }
    memcpy(d + head, p, len);
    *size = end;
    return (uint32_t)at;
}

/* References the tokens whose piece is not their text to their stored piece. */
static int fill_pieces(qr_vocab *v, char *scratch) {
    /* Offset 0 means "no piece stored": a zero byte there, which qr_vocab_piece reads. */
    size_t size = 1, cap = 4096;
    if (!(v->piece_arena = malloc(cap))) return QR_ERR;
    v->piece_arena[0] = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        size_t len, tl;
        const char *t = qr_vocab_text(v, i, &tl);
        len = render_piece(v, i, scratch);
        if (len == tl && memcmp(scratch, t, len) == 0) continue;
        if ((v->piece_ref[i] = append_piece(v, &size, &cap, scratch, len)) == 0) return QR_ERR;
    }
    /* Give back what doubling over-reserved (a shrink does not fail on common allocators). */
    char *a = realloc(v->piece_arena, size);
    if (a) v->piece_arena = a;
    return QR_OK;
}

int qr_vocab_build_pieces(qr_vocab *v, qr_error *err) {
    v->piece_ref = calloc((size_t)v->n_tokens, sizeof(uint32_t));
    size_t max_tok = (size_t)v->max_token_len;
    /* The [UNK_BYTE] marker can grow a piece well beyond its text: scratch per token. */
    char *scratch = malloc((max_tok + 1) * (max_tok + 40) + 64);
    int rc = v->piece_ref && scratch ? fill_pieces(v, scratch) : QR_ERR;
    free(scratch);
    return rc == QR_OK ? QR_OK : qr_fail(err, "out of memory for the piece cache");
}
