/* Splitting the input on special tokens, as llama.cpp's tokenizer_st_partition: each
 * special token in turn (longest text first) cuts every remaining raw-text fragment at
 * each of its exact occurrences. Control and unknown tokens take part only when
 * parse_special is set; user-defined tokens always do. Tokens with the lstrip / rstrip
 * attribute eat the whitespace before / after them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static int frag_push(qr_fragments *f, int32_t token, size_t off, size_t len) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        qr_fragment *v = realloc(f->v, cap * sizeof *v);
        if (!v) return QR_ERR;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (qr_fragment){token, off, len};
    return QR_OK;
}

/* Cuts one raw fragment [off, off+len) at every occurrence of token `id`. */
static int cut_fragment(const qr_vocab *v, int32_t id, const char *text, size_t off, size_t len,
                        qr_fragments *out) {
    size_t tl;
    const char *t = qr_vocab_text(v, id, &tl);
    uint16_t attr = v->attr[id];
    int rc = QR_OK;
    while (rc == QR_OK) {
        const char *m = memmem(text + off, len, t, tl);
        if (!m) {
            if (len > 0) rc |= frag_push(out, QR_TOKEN_NULL, off, len);
            break;
        }
        size_t match = (size_t)(m - text);
        size_t left_len = match - off;
        if (attr & QR_ATTR_LSTRIP) {
            while (left_len > 0 && isspace((unsigned char)text[off + left_len - 1])) left_len--;
        }
        if (left_len > 0) rc |= frag_push(out, QR_TOKEN_NULL, off, left_len);
        rc |= frag_push(out, id, 0, 0);
        size_t right_off = match + tl;
        size_t right_len = off + len - right_off;
        if (right_len == 0) break;
        if (attr & QR_ATTR_RSTRIP) {
            while (right_len > 0 && isspace((unsigned char)text[right_off])) right_off++, right_len--;
        }
        off = right_off;
        len = right_len;
        if (len == 0) break;
    }
    return rc;
}

int qr_split_special(const qr_vocab *v, const char *text, size_t len, bool parse_special,
                     qr_fragments *out, qr_error *err) {
    out->n = 0;
    if (len == 0) return QR_OK;
    qr_fragments tmp = {0};
    int rc = frag_push(out, QR_TOKEN_NULL, 0, len);
    for (size_t s = 0; s < v->n_special && rc == QR_OK; s++) {
        int32_t id = v->special[s];
        if (!parse_special && (v->attr[id] & (QR_ATTR_CONTROL | QR_ATTR_UNKNOWN))) continue;
        size_t tl;
        const char *t = qr_vocab_text(v, id, &tl);
        /* Most special tokens never occur: skip the rebuild when none of the raw
         * fragments holds this one. */
        bool any = false;
        for (size_t i = 0; i < out->n && !any; i++) {
            const qr_fragment *f = &out->v[i];
            any = f->token == QR_TOKEN_NULL && memmem(text + f->off, f->len, t, tl) != NULL;
        }
        if (!any) continue;
        tmp.n = 0;
        for (size_t i = 0; i < out->n && rc == QR_OK; i++) {
            const qr_fragment *f = &out->v[i];
            if (f->token != QR_TOKEN_NULL) rc |= frag_push(&tmp, f->token, 0, 0);
            else rc |= cut_fragment(v, id, text, f->off, f->len, &tmp);
        }
        qr_fragments sw = *out;
        *out = tmp;
        tmp = sw;
    }
    free(tmp.v);
    return rc == QR_OK ? QR_OK : qr_fail(err, "out of memory splitting special tokens");
}
