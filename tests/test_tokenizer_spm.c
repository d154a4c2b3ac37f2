/* SentencePiece tokenizers against llama.cpp's test vectors (llama-spm, phi-3), plus the
 * detokenize round trip: for a vocabulary with byte fallback, detokenize(tokenize(s))
 * gives s back exactly (the space the tokenizer adds in front is removed again). */
#include "tokenizer_vectors.h"

static void round_trip(const char *name, int n_texts) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-vectors/ggml-vocab-%s.gguf", name);
    qr_tokenizer *tok = NULL;
    qr_error err = {{0}};
    REQUIRE(qr_tokenizer_load_file(qr_test_shared_file_or_skip(rel), &tok, &err) == QR_OK);
    uint64_t seed = 0x5EED5EED12345ull;
    static char text[1 << 16];
    int ok = 0;
    for (int i = 0; i < n_texts; i++) {
        size_t n = tv_random_text(&seed, text, 200);
        int32_t *ids;
        size_t n_ids;
        REQUIRE(qr_tokenize(tok, text, n, false, false, &ids, &n_ids, &err) == QR_OK);
        char *back;
        size_t back_len;
        REQUIRE(qr_detokenize(tok, ids, n_ids, false, false, &back, &back_len, &err) == QR_OK);
        bool same = back_len == n && memcmp(back, text, n) == 0;
        if (same) ok++;
        else if (ok + 3 > i) {
            fprintf(stderr, "%s round trip %d differs:\n  in:  '", name, i);
            tv_print_escaped(text, n);
            fprintf(stderr, "'\n  out: '");
            tv_print_escaped(back, back_len);
            fprintf(stderr, "'\n");
        }
        CHECK(same);
        free(ids);
        free(back);
    }
    printf("vocab %-16s round trip %d/%d\n", name, ok, n_texts);
    qr_tokenizer_free(tok);
}

int main(void) {
    tv_check_vocab("llama-spm");
    tv_check_vocab("phi-3");
    round_trip("llama-spm", 2000);
    return qr_test_finish("test_tokenizer_spm");
}
