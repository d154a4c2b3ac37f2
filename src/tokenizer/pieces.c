/* The piece of every token (its text as bytes, with special tokens rendered), computed
 * once at load like llama.cpp's cache_token_to_piece: SPM/WPM normal tokens turn "▁" into
 * " ", BPE normal tokens go through GPT-2's inverse byte map, byte tokens give their byte,
 * control / unknown / user-defined tokens give their text, unused/undefined give "". */
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
    uint16_t a = v->attr[id];
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

int qr_vocab_build_pieces(qr_vocab *v, qr_error *err) {
    size_t n = (size_t)v->n_tokens;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) cap += v->text_len[i];
    cap = cap + 1024;
    v->piece_off = malloc(sizeof(uint32_t) * n);
    v->piece_len = malloc(sizeof(uint32_t) * n);
    v->piece_arena = malloc(cap);
    size_t max_tok = (size_t)v->max_token_len;
    /* The [UNK_BYTE] marker can grow a piece well beyond its text: scratch per token. */
    char *scratch = malloc((max_tok + 1) * (max_tok + 40) + 64);
    if (!v->piece_off || !v->piece_len || !v->piece_arena || !scratch) {
        free(scratch);
        return qr_fail(err, "out of memory for the piece cache");
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = render_piece(v, (int32_t)i, scratch);
        if (off + len > cap) {
            size_t ncap = (off + len) * 2;
            char *p = realloc(v->piece_arena, ncap);
            if (!p) {
                free(scratch);
                return qr_fail(err, "out of memory for the piece cache");
            }
            v->piece_arena = p;
            cap = ncap;
        }
        memcpy(v->piece_arena + off, scratch, len);
        v->piece_off[i] = (uint32_t)off;
        v->piece_len[i] = (uint32_t)len;
        off += len;
    }
    free(scratch);
    return QR_OK;
}

