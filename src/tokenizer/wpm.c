/* WordPiece (tokenizer.ggml.model = "bert"), as llama.cpp's llm_tokenizer_wpm: BERT
 * normalisation (NFD first code point + accent stripping, lowercasing, dropping control
 * characters), split on whitespace with punctuation / ASCII symbols / CJK ideographs as
 * one-character words; then per word "▁" + word, greedy longest match from the left,
 * and the whole word becomes [UNK] if any part fails. The GGUF converter stores
 * continuation pieces "##x" as "x" and word-initial pieces "x" as "▁x". */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

static bool is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest-prefix matching of one word (already prefixed with "▁"). */
static int match_word(const qr_vocab *v, const char *w, size_t n, qr_ids *out) {
    size_t before = out->n;
    int rc = QR_OK;
    for (size_t i = 0; i < n && rc == QR_OK; i++) {
        size_t j = i + (size_t)v->max_token_len + 1;
        if (j > n) j = n;
        bool matched = false;
        for (; j > i; j--) {
            int32_t id = qr_vocab_find(v, w + i, j - i);
            if (id >= 0) {
                rc = qr_ids_push(out, id);
                matched = true;
                i = j - 1;
                break;
            }
        }
        if (!matched) {
            out->n = before;
            break;
        }
    }
    if (rc == QR_OK && out->n == before && v->unk >= 0) rc = qr_ids_push(out, v->unk);
    return rc;
}

typedef struct {
    char *buf; /* "▁" + current word */
    size_t n, cap;
} word_buf;

static int wb_append(word_buf *w, const char *s, size_t n) {
    if (w->n + n > w->cap) {
        size_t cap = (w->n + n) * 2 + 16;
        char *b = realloc(w->buf, cap);
        if (!b) return QR_ERR;
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->n, s, n);
    w->n += n;
    return QR_OK;
}

static int flush_word(const qr_vocab *v, word_buf *w, qr_ids *out) {
    int rc = QR_OK;
    if (w->n > 3) rc = match_word(v, w->buf, w->n, out);
    w->n = 3; /* keep the "▁" prefix */
    return rc;
}

int qr_wpm_tokenize(const qr_vocab *v, const char *text, size_t len, qr_ids *out, qr_error *err) {
    word_buf w = {0};
    int rc = wb_append(&w, "\xE2\x96\x81", 3);
    for (size_t pos = 0; pos < len && rc == QR_OK;) {
        uint32_t cp = qr_utf8_decode((const uint8_t *)text, len, &pos);
        if (v->norm_strip_accents) cp = qr_cpt_nfd_first(cp);
        uint16_t f = qr_cpt_flags(cp);
        if (f & QR_CPT_WHITESPACE) {
            rc = flush_word(v, &w, out);
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || (f & QR_CPT_CONTROL)) continue;
        if (v->norm_strip_accents && (f & QR_CPT_MARK)) continue;
        char s[4];
        size_t sn = qr_utf8_encode(v->norm_lowercase ? qr_cpt_tolower(cp) : cp, s);
        if ((f & QR_CPT_PUNCT) || (cp < 0x7F && (f & QR_CPT_SYMBOL)) || is_chinese(cp)) {
            rc = flush_word(v, &w, out);
            if (rc == QR_OK) rc = wb_append(&w, s, sn);
            if (rc == QR_OK) rc = flush_word(v, &w, out);
        } else {
            rc = wb_append(&w, s, sn);
        }
    }
    if (rc == QR_OK) rc = flush_word(v, &w, out);
    free(w.buf);
    return rc == QR_OK ? QR_OK : qr_fail(err, "out of memory tokenizing %zu bytes", len);
}
