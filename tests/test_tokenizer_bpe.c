/* Byte-level BPE against llama.cpp's test vectors (every ggml-vocab-*.gguf whose
 * tokenizer.ggml.model is gpt2), plus the detokenize round trip on generated UTF-8:
 * exact where the vocabulary keeps spaces (deepseek-*), and equal to llama.cpp's
 * documented clean_up_tokenization_spaces of the input where it cleans them (gpt-2,
 * mpt, falcon, starcoder, refact). The clean-up reference here is written as three
 * independent rewrite rules, not as a copy of the library's in-place passes. */
#include "tokenizer_vectors.h"

/* The clean-up as rules over the original text:
 *  1. a space before ? ! . , is dropped;
 *  2. " ' " becomes "'" (leftmost, non-overlapping);
 *  3. a space before 's 'm 're 've is dropped. */
static size_t reference_clean(const char *in, size_t n, char *out) {
    char *a = malloc(n + 1), *b = malloc(n + 1);
    size_t na = 0, nb = 0, no = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == ' ' && i + 1 < n && strchr("?!.,", in[i + 1]) && in[i + 1]) continue;
        a[na++] = in[i];
    }
    for (size_t i = 0; i < na;) {
        if (i + 2 < na && a[i] == ' ' && a[i + 1] == '\'' && a[i + 2] == ' ') {
            b[nb++] = '\'';
            i += 3;
        } else {
            b[nb++] = a[i++];
        }
    }
    for (size_t i = 0; i < nb; i++) {
        if (b[i] == ' ' && i + 2 < nb && b[i + 1] == '\'') {
            char c = b[i + 2];
            bool two = i + 3 < nb && ((c == 'r' && b[i + 3] == 'e') || (c == 'v' && b[i + 3] == 'e'));
            if (c == 's' || c == 'm' || two) continue;
        }
        out[no++] = b[i];
    }
    free(a);
    free(b);
    return no;
}

/* GPT-2's byte -> code point map, written out independently of the library: printable
 * bytes map to themselves, the 68 others to U+0100.. in ascending order. */
static uint32_t gpt2_byte_cpt(unsigned b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (printable) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++) {
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    }
    return 0x100 + n;
}

/* Bytes whose one-character token is missing (falcon lacks some control bytes) cannot
 * come back: llama.cpp drops them. */
static void find_missing_bytes(const qr_tokenizer *tok, bool missing[256]) {
    for (unsigned b = 0; b < 256; b++) {
        char u[4];
        size_t n = tv_put_utf8(u, gpt2_byte_cpt(b));
        missing[b] = qr_tokenizer_find(tok, u, n) < 0;
    }
}

static void round_trip(const char *name, bool cleans, int n_texts) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-vectors/ggml-vocab-%s.gguf", name);
    qr_tokenizer *tok = NULL;
    qr_error err = {{0}};
    REQUIRE(qr_tokenizer_load_file(qr_test_shared_file_or_skip(rel), &tok, &err) == QR_OK);
    uint64_t seed = 0xC0FFEE1234ull;
    static char text[1 << 16], want[1 << 16], kept[1 << 16];
    bool missing[256];
    find_missing_bytes(tok, missing);
    int ok = 0;
    for (int i = 0; i < n_texts; i++) {
        size_t n = tv_random_text(&seed, text, 200);
        size_t nk = 0;
        for (size_t k = 0; k < n; k++) {
            if (!missing[(unsigned char)text[k]]) kept[nk++] = text[k];
        }
        size_t nw = cleans ? reference_clean(kept, nk, want) : (memcpy(want, kept, nk), nk);
        int32_t *ids;
        size_t n_ids;
        REQUIRE(qr_tokenize(tok, text, n, false, false, &ids, &n_ids, &err) == QR_OK);
        char *back;
        size_t back_len;
        REQUIRE(qr_detokenize(tok, ids, n_ids, false, false, &back, &back_len, &err) == QR_OK);
        bool same = back_len == nw && memcmp(back, want, nw) == 0;
        if (same) ok++;
        else if (ok + 3 > i) {
            fprintf(stderr, "%s round trip %d differs:\n  want: '", name, i);
            tv_print_escaped(want, nw);
            fprintf(stderr, "'\n  got:  '");
            tv_print_escaped(back, back_len);
            fprintf(stderr, "'\n");
        }
        CHECK(same);
        free(ids);
        free(back);
    }
    printf("vocab %-16s round trip %d/%d (%s)\n", name, ok, n_texts,
           cleans ? "against the space clean-up" : "exact");
    qr_tokenizer_free(tok);
}

int main(void) {
    static const char *const vocabs[] = {"gpt-2", "falcon", "mpt", "refact", "starcoder",
                                         "deepseek-llm", "deepseek-coder"};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) tv_check_vocab(vocabs[i]);
    round_trip("gpt-2", true, 1000);
    round_trip("mpt", true, 300);
    round_trip("falcon", true, 300);
    round_trip("starcoder", true, 300);
    round_trip("refact", true, 300);
    round_trip("deepseek-llm", false, 300);
    round_trip("deepseek-coder", false, 300);
    return qr_test_finish("test_tokenizer_bpe");
}
