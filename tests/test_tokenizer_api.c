/* The tokenizer API beyond the test vectors: special-token parsing on/off, BOS/EOS and
 * BERT's CLS/SEP, token pieces, the streaming detokenizer holding back incomplete UTF-8,
 * end-of-generation ids, and the load errors for unsupported tokenizer.ggml.model /
 * .pre values (files written here with the GGUF writer). Expected ids come from the
 * vocab files' own token texts, not from our tokenizer's output. */
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer_vectors.h"

static qr_tokenizer *load(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-vectors/ggml-vocab-%s.gguf", name);
    qr_tokenizer *t = NULL;
    qr_error err = {{0}};
    if (qr_tokenizer_load_file(qr_test_shared_file_or_skip(rel), &t, &err) != QR_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        exit(1);
    }
    return t;
}

static int32_t id_of(const qr_tokenizer *t, const char *text) {
    return qr_tokenizer_find(t, text, strlen(text));
}

static void test_special_parsing(void) {
    qr_tokenizer *t = load("llama-spm");
    int32_t bos = id_of(t, "<s>"), eos = id_of(t, "</s>");
    CHECK(bos == 1 && eos == 2);
    CHECK(qr_tokenizer_bos(t) == bos && qr_tokenizer_eos(t) == eos);
    CHECK(qr_tokenizer_is_eog(t, eos));
    CHECK(!qr_tokenizer_is_eog(t, id_of(t, "\xE2\x96\x81Hello")));
    int32_t *ids;
    size_t n;
    qr_error err = {{0}};
    const char *text = "Hello</s>";
    /* parse_special: "</s>" is one token after "▁Hello". */
    REQUIRE(qr_tokenize(t, text, strlen(text), true, true, &ids, &n, &err) == QR_OK);
    CHECK(n == 3 && ids[0] == bos && ids[1] == id_of(t, "\xE2\x96\x81Hello") && ids[2] == eos);
    free(ids);
    /* without: plain text, no control token anywhere. */
    REQUIRE(qr_tokenize(t, text, strlen(text), false, false, &ids, &n, &err) == QR_OK);
    CHECK(n > 2);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != eos && ids[i] != bos);
    free(ids);
    /* pieces: control tokens render only when asked. */
    size_t pl;
    const char *p = qr_token_to_piece(t, eos, false, &pl);
    CHECK(pl == 0);
    p = qr_token_to_piece(t, eos, true, &pl);
    CHECK(pl == 4 && memcmp(p, "</s>", 4) == 0);
    p = qr_token_to_piece(t, id_of(t, "<0x0A>"), false, &pl);
    CHECK(pl == 1 && p[0] == '\n');
    CHECK(qr_tokenizer_linefeed(t) == id_of(t, "<0x0A>"));
    p = qr_token_to_piece(t, 1 << 30, true, &pl);
    CHECK(pl == 0);
    qr_tokenizer_free(t);
}

static void test_bert_specials(void) {
    qr_tokenizer *t = load("bert-bge");
    int32_t *ids;
    size_t n;
    qr_error err = {{0}};
    REQUIRE(qr_tokenize(t, "hello", 5, true, false, &ids, &n, &err) == QR_OK);
    CHECK(n == 3 && ids[0] == id_of(t, "[CLS]") && ids[2] == id_of(t, "[SEP]"));
    CHECK(n == 3 && ids[1] == id_of(t, "\xE2\x96\x81hello"));
    free(ids);
    qr_tokenizer_free(t);
}

/* Llama's "🦙" is four byte tokens: the stream must hold them back until complete. */
static void test_stream(void) {
    qr_tokenizer *t = load("llama-spm");
    const char *bytes[] = {"<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"};
    int32_t ids[6] = {id_of(t, "\xE2\x96\x81Hi"), 0, 0, 0, 0, id_of(t, "\xE2\x96\x81there")};
    for (int i = 0; i < 4; i++) ids[1 + i] = id_of(t, bytes[i]);
    for (int i = 0; i < 6; i++) REQUIRE(ids[i] >= 0);
    qr_detok_stream *s = qr_detok_stream_new(t, false);
    REQUIRE(s);
    char acc[64];
    size_t acc_len = 0, len;
    const char *p = qr_detok_stream_push(s, ids[0], &len);
    CHECK(len == 2 && memcmp(p, "Hi", 2) == 0); /* leading space removed */
    memcpy(acc + acc_len, p, len), acc_len += len;
    for (int i = 1; i <= 3; i++) {
        p = qr_detok_stream_push(s, ids[i], &len);
        CHECK(len == 0);
    }
    p = qr_detok_stream_push(s, ids[4], &len);
    CHECK(len == 4 && memcmp(p, "\xF0\x9F\xA6\x99", 4) == 0);
    memcpy(acc + acc_len, p, len), acc_len += len;
    p = qr_detok_stream_push(s, ids[5], &len);
    memcpy(acc + acc_len, p, len), acc_len += len;
    p = qr_detok_stream_flush(s, &len);
    CHECK(len == 0);
    char *whole;
    size_t whole_len;
    qr_error err = {{0}};
    REQUIRE(qr_detokenize(t, ids, 6, false, false, &whole, &whole_len, &err) == QR_OK);
    CHECK(whole_len == acc_len && memcmp(whole, acc, acc_len) == 0);
    CHECK(whole_len == strlen("Hi\xF0\x9F\xA6\x99 there") && memcmp(whole, "Hi\xF0\x9F\xA6\x99 there", whole_len) == 0);
    free(whole);
    /* an incomplete tail comes out at flush */
    p = qr_detok_stream_push(s, ids[1], &len);
    CHECK(len == 0);
    p = qr_detok_stream_flush(s, &len);
    CHECK(len == 1 && (uint8_t)p[0] == 0xF0);
    qr_detok_stream_free(s);
    qr_tokenizer_free(t);
}

/* Writes a minimal vocab GGUF with the given model / pre values. */
static void write_vocab(const char *path, const char *model, const char *pre) {
    qr_gguf_writer *w = NULL;
    qr_error err = {{0}};
    const char *toks[] = {"a", "b", "ab"};
    const char *merges[] = {"a b"};
    REQUIRE(qr_gguf_writer_create(path, &w, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str(w, "tokenizer.ggml.model", model, &err) == QR_OK);
    if (pre) REQUIRE(qr_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 3, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, 1, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
}

static void test_load_errors(void) {
    char path[] = "/tmp/quarrel-tok-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    qr_tokenizer *t = NULL;
    qr_error err = {{0}};

    write_vocab(path, "t5", NULL);
    CHECK(qr_tokenizer_load_file(path, &t, &err) == QR_ERR && t == NULL);
    CHECK_MSG(strstr(err.msg, "'t5'") && strstr(err.msg, "llama, gpt2, bert"), "%s", err.msg);

    write_vocab(path, "gpt2", "tekken-ish");
    CHECK(qr_tokenizer_load_file(path, &t, &err) == QR_ERR && t == NULL);
    CHECK_MSG(strstr(err.msg, "'tekken-ish'") && strstr(err.msg, "qwen2") && strstr(err.msg, "llama-bpe"),
              "%s", err.msg);

    /* a tiny valid one: "ab" merges */
    write_vocab(path, "gpt2", "gpt-2");
    REQUIRE(qr_tokenizer_load_file(path, &t, &err) == QR_OK);
    int32_t *ids;
    size_t n;
    REQUIRE(qr_tokenize(t, "abba", 4, false, false, &ids, &n, &err) == QR_OK);
    CHECK(n == 3 && ids[0] == 2 && ids[1] == 1 && ids[2] == 0);
    free(ids);
    qr_tokenizer_free(t);
    unlink(path);
}

/* Texts and pieces read from the file's mapping, and llama.cpp's rules for them: an empty
 * token text is named "[EMPTY_<id>]", a normal SentencePiece token's piece has every "▁"
 * turned into " " (one of them 301 bytes long), a byte token's piece is its byte, a
 * control token's piece is its text when asked for. The file is deleted right after loading: the
 * tokenizer keeps its own mapping. */
static void test_pieces_from_file(void) {
    char path[] = "/tmp/quarrel-tok-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    char long_tok[3 + 300 + 1] = "\xE2\x96\x81", long_piece[1 + 300 + 1] = " ";
    memset(long_tok + 3, 'y', 300), memset(long_piece + 1, 'y', 300);
    long_tok[303] = long_piece[301] = '\0';
    const char *toks[] = {"<unk>", "<s>", "</s>", "", long_tok, "<0x41>", "\xE2\x96\x81" "a\xE2\x96\x81\xE2\x96\x81" "b", "plain"};
    const int32_t types[] = {2, 3, 3, 1, 1, 6, 1, 1};
    const float scores[] = {0, 0, 0, -1, -2, -3, -4, -5};
    qr_gguf_writer *w = NULL;
    qr_error err = {{0}};
    REQUIRE(qr_gguf_writer_create(path, &w, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama", &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", toks, 8, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", QR_GGUF_INT32, types, 8, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_arr(w, "tokenizer.ggml.scores", QR_GGUF_FLOAT32, scores, 8, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
    qr_tokenizer *t = NULL;
    REQUIRE(qr_tokenizer_load_file(path, &t, &err) == QR_OK);
    unlink(path);
    size_t l;
    const char *p = qr_tokenizer_token_text(t, 3, &l);
    CHECK(l == 9 && memcmp(p, "[EMPTY_3]", 9) == 0);
    CHECK(qr_tokenizer_find(t, "[EMPTY_3]", 9) == 3);
    p = qr_tokenizer_token_text(t, 4, &l);
    CHECK(l == 303 && memcmp(p, long_tok, 303) == 0);
    CHECK(qr_tokenizer_find(t, long_tok, 303) == 4);
    p = qr_token_to_piece(t, 4, false, &l);
    CHECK(l == 301 && memcmp(p, long_piece, 301) == 0);
    p = qr_token_to_piece(t, 5, false, &l);
    CHECK(l == 1 && p[0] == 'A');
    p = qr_token_to_piece(t, 6, false, &l);
    CHECK(l == 5 && memcmp(p, " a  b", 5) == 0);
    p = qr_token_to_piece(t, 7, false, &l);
    CHECK(l == 5 && memcmp(p, "plain", 5) == 0);
    p = qr_token_to_piece(t, 2, true, &l);
    CHECK(l == 4 && memcmp(p, "</s>", 4) == 0);
    p = qr_token_to_piece(t, 2, false, &l);
    CHECK(l == 0);
    qr_tokenizer_free(t);
}

int main(void) {
    test_special_parsing();
    test_bert_specials();
    test_stream();
    test_load_errors();
    test_pieces_from_file();
    return qr_test_finish("test_tokenizer_api");
}
