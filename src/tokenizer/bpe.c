/* Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe:
 * pre-tokenize into words, map each word's bytes to GPT-2's printable code points, then
 * repeatedly merge the adjacent pair with the lowest merge rank (ties: leftmost). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"
#include "tokenizer/merge_queue.h"
#include "tokenizer/word_cache.h"

typedef struct {
    const char *text;
    int32_t n; /* bytes; 0 once merged into the left neighbour */
    int32_t prev, next;
} symbol;

typedef struct {
    const qr_vocab *v;
    symbol *sym;
    size_t n_sym, cap_sym;
    qr_merge_queue q;
    char *word; /* byte-encoded word */
    size_t word_cap;
} bpe_state;

static int try_pair(bpe_state *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return QR_OK;
    const symbol *a = &s->sym[left], *b = &s->sym[right];
    int32_t rank = qr_vocab_merge_rank(s->v, a->text, (size_t)a->n, b->text, (size_t)b->n);
    if (rank < 0) return QR_OK;
    qr_merge bg = {-(float)rank, left, right, a->n + b->n};
    return qr_merge_queue_push(&s->q, bg);
}

static int emit_symbol(const qr_vocab *v, const char *t, size_t n, qr_ids *out) {
    int32_t id = qr_vocab_find(v, t, n);
    if (id >= 0) return qr_ids_push(out, id);
    int rc = QR_OK;
    for (size_t i = 0; i < n; i++) { /* each byte alone, when such a token exists */
        id = qr_vocab_find(v, t + i, 1);
        if (id >= 0) rc |= qr_ids_push(out, id);
    }
    return rc;
}

static int merge_word(bpe_state *s, const char *w, size_t len, qr_ids *out) {
    const qr_vocab *v = s->v;
    if (v->ignore_merges) {
        int32_t id = qr_vocab_find(v, w, len);
        if (id >= 0) return qr_ids_push(out, id);
    }
    if (len > s->cap_sym) {
        symbol *p = realloc(s->sym, len * sizeof *p);
        if (!p) return QR_ERR;
        s->sym = p;
        s->cap_sym = len;
    }
    s->n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = qr_utf8_seq_len((uint8_t)w[off]);
        if (n > len - off) n = len - off;
        int32_t i = (int32_t)s->n_sym++;
        s->sym[i] = (symbol){w + off, (int32_t)n, i - 1, off + n == len ? -1 : i + 1};
        off += n;
    }
    s->q.n = 0;
    int rc = QR_OK;
    for (size_t i = 1; i < s->n_sym; i++) rc |= try_pair(s, (int32_t)i - 1, (int32_t)i);
    while (s->q.n > 0 && rc == QR_OK) {
        qr_merge b = qr_merge_queue_pop(&s->q);
        symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        rc |= try_pair(s, l->prev, b.left);
        rc |= try_pair(s, b.left, l->next);
    }
    for (int32_t i = 0; i >= 0 && rc == QR_OK; i = s->sym[i].next) {
        rc |= emit_symbol(v, s->sym[i].text, (size_t)s->sym[i].n, out);
    }
    return rc;
}

/* GPT-2 byte encoding of code points [cp, cp+n): UTF-8 bytes, each mapped to a code
 * point, written as UTF-8. */
static size_t byte_encode(const uint32_t *cp, size_t n, char *dst) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char raw[4];
        size_t k = qr_utf8_encode(cp[i], raw);
        for (size_t j = 0; j < k; j++) o += qr_utf8_encode(qr_byte_to_cpt((uint8_t)raw[j]), dst + o);
    }
    return o;
}

int qr_bpe_tokenize(const qr_vocab *v, const qr_pretok *p, const char *text, size_t len, qr_ids *out,
                    qr_error *err) {
    uint32_t *cpts = malloc((len + 1) * sizeof *cpts);
    if (!cpts) return qr_fail(err, "out of memory tokenizing %zu bytes", len);
    size_t n = 0;
    for (size_t pos = 0; pos < len;) cpts[n++] = qr_utf8_decode((const uint8_t *)text, len, &pos);
    qr_sizes words = {0};
    bpe_state s = {.v = v};
    qr_word_cache cache = {0};
    int rc = qr_pretok_split(p, cpts, n, &words, err);
    bool split_ok = rc == QR_OK;
    size_t start = 0;
    for (size_t i = 0; i < words.n && rc == QR_OK; i++) {
        size_t wn = words.v[i];
        if (wn * 8 > s.word_cap) { /* 4 UTF-8 bytes, each becoming up to 2 */
            char *w = realloc(s.word, wn * 8);
            if (!w) {
                rc = QR_ERR;
                break;
            }
            s.word = w;
            s.word_cap = wn * 8;
        }
        size_t wl = byte_encode(cpts + start, wn, s.word);
        start += wn;
        if (wl == 0) continue;
        uint32_t h;
        if (qr_word_cache_get(&cache, s.word, wl, &h, out, &rc)) continue;
        size_t from = out->n;
        rc = merge_word(&s, s.word, wl, out);
        if (rc == QR_OK) qr_word_cache_put(&cache, s.word, wl, h, out, from);
    }
    if (rc != QR_OK && split_ok) qr_fail(err, "out of memory tokenizing %zu bytes", len);
    qr_word_cache_free(&cache);
    free(words.v);
    free(s.sym);
    qr_merge_queue_free(&s.q);
    free(s.word);
    free(cpts);
    return rc;
}
