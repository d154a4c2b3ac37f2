/* SentencePiece BPE (tokenizer.ggml.model = "llama"), as llama.cpp's llm_tokenizer_spm:
 * spaces become U+2581, the text is cut into UTF-8 characters, and the adjacent pair
 * whose concatenation is the highest-scoring token is merged first (ties: leftmost),
 * with a priority queue. A final symbol that is not a token (a lone character missing
 * from the vocabulary) falls back to one <0xXX> token per byte. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"
#include "tokenizer/merge_queue.h"
#include "tokenizer/word_cache.h"

typedef struct {
    int32_t n; /* bytes; 0 once merged into the left neighbour */
    int32_t prev, next;
    size_t off; /* start in the escaped text */
} symbol;

/* Symbols are contiguous in the text, so a pair's concatenation is a substring. */
static int try_pair(const qr_vocab *v, const char *text, const symbol *sym, qr_merge_queue *q, int32_t left,
                    int32_t right) {
    if (left < 0 || right < 0) return QR_OK;
    size_t n = (size_t)(sym[left].n + sym[right].n);
    int32_t id = qr_vocab_find(v, text + sym[left].off, n);
    if (id < 0) return QR_OK;
    qr_merge b = {qr_vocab_score(v, id), left, right, (int32_t)n};
    return qr_merge_queue_push(q, b);
}

static int emit(const qr_vocab *v, const char *t, size_t n, qr_ids *out) {
    int32_t id = qr_vocab_find(v, t, n);
    if (id >= 0) return qr_ids_push(out, id);
    int rc = QR_OK;
    for (size_t i = 0; i < n; i++) {
        id = qr_vocab_byte_token(v, (uint8_t)t[i]);
        if (id >= 0) rc |= qr_ids_push(out, id);
    }
    return rc;
}

/* " " -> U+2581, with an optional leading one. */
static char *escape_spaces(const char *text, size_t len, bool prefix_space, size_t *out_len) {
    size_t spaces = prefix_space;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    char *e = malloc(len + 2 * spaces + 3 + 1);
    if (!e) return NULL;
    size_t o = 0;
    if (prefix_space) memcpy(e, "\xE2\x96\x81", 3), o = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e + o, "\xE2\x96\x81", 3);
            o += 3;
        } else {
            e[o++] = text[i];
        }
    }
    *out_len = o;
    return e;
}

static bool is_mark(const char *t, int32_t n) { return n == 3 && memcmp(t, "\xE2\x96\x81", 3) == 0; }

/* A complete, well-formed character (ASCII, or a lead byte and its continuations). */
static bool is_whole_char(const char *t, int32_t n) {
    if (n == 1) return (uint8_t)t[0] < 0x80;
    if ((size_t)n != qr_utf8_seq_len((uint8_t)t[0])) return false;
    for (int32_t i = 1; i < n; i++) {
        if (((uint8_t)t[i] & 0xC0) != 0x80) return false;
    }
    return true;
}

/* Merges the symbols [a, b) (linked among themselves only) and emits their tokens. */
static int merge_chunk(const qr_vocab *v, const char *text, symbol *sym, int32_t a, int32_t b, qr_merge_queue *q,
                       qr_ids *out) {
    int rc = QR_OK;
    q->n = 0;
    for (int32_t i = a + 1; rc == QR_OK && i < b; i++) rc |= try_pair(v, text, sym, q, i - 1, i);
    while (rc == QR_OK && q->n > 0) {
        qr_merge bg = qr_merge_queue_pop(q);
        symbol *l = &sym[bg.left], *r = &sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = bg.left;
        rc |= try_pair(v, text, sym, q, l->prev, bg.left);
        rc |= try_pair(v, text, sym, q, bg.left, l->next);
    }
    for (int32_t i = a; rc == QR_OK && i >= 0; i = sym[i].next) {
        rc |= emit(v, text + sym[i].off, (size_t)sym[i].n, out);
    }
    return rc;
}

int qr_spm_tokenize(const qr_vocab *v, const char *raw, size_t raw_len, bool prefix_space, qr_ids *out,
                    qr_error *err) {
    size_t len = 0;
    char *text = escape_spaces(raw, raw_len, prefix_space, &len);
    symbol *sym = text ? malloc((len + 1) * sizeof *sym) : NULL;
    qr_merge_queue q = {0};
    qr_word_cache cache = {0};
    int rc = sym ? QR_OK : QR_ERR;
    int32_t n_sym = 0;
    for (size_t off = 0; rc == QR_OK && off < len;) {
        size_t n = qr_utf8_seq_len((uint8_t)text[off]);
        if (n > len - off) n = len - off;
        int32_t i = n_sym++;
        sym[i] = (symbol){(int32_t)n, i - 1, off + n == len ? -1 : i + 1, off};
        off += n;
    }
    /* Merge word by word where the vocabulary allows it (same result, and the queue
     * stays small); else the whole fragment at once. A word starts at a "▁" that
     * follows another whole character. */
    int32_t a = 0;
    for (int32_t i = 1; rc == QR_OK && i <= n_sym; i++) {
        bool cut = i == n_sym;
        if (!cut && v->spm_word_chunks) {
            const symbol *p = &sym[i - 1], *c = &sym[i];
            cut = is_mark(text + c->off, c->n) && !is_mark(text + p->off, p->n) &&
                  is_whole_char(text + p->off, p->n);
        }
        if (!cut) continue;
        sym[i - 1].next = -1;
        sym[a].prev = -1;
        const char *w = text + sym[a].off;
        size_t wl = sym[i - 1].off + (size_t)sym[i - 1].n - sym[a].off;
        uint32_t h;
        if (!v->spm_word_chunks || !qr_word_cache_get(&cache, w, wl, &h, out, &rc)) {
            size_t from = out->n;
            rc = merge_chunk(v, text, sym, a, i, &q, out);
            if (rc == QR_OK && v->spm_word_chunks) qr_word_cache_put(&cache, w, wl, h, out, from);
        }
        a = i;
    }
    qr_word_cache_free(&cache);
    qr_merge_queue_free(&q);
    free(sym);
    free(text);
    return rc == QR_OK ? QR_OK : qr_fail(err, "out of memory tokenizing %zu bytes", raw_len);
}
