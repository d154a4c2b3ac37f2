/* Shared by the tokenizer tests (test_tokenizer_*.c): runs llama.cpp's tokenizer test
 * vectors (../shared/tokenizer-vectors/ggml-vocab-NAME.gguf + .inp + .out, see the
 * README there) and a detokenize round trip over generated UTF-8 text. Included, not
 * linked, because tests/CMakeLists.txt builds each test from one source file. */
#ifndef QR_TESTS_TOKENIZER_VECTORS_H
#define QR_TESTS_TOKENIZER_VECTORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing.h"
#include "tokenizer/tokenizer.h"

#define TV_SEP "\n__ggml_vocab_test__\n"

static inline char *tv_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Prints bytes with escapes, for failure messages. */
static inline void tv_print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
}

static inline void tv_print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Runs every case of ggml-vocab-NAME against the tokenizer `tok` (or loads it from the
 * shared folder when tok is NULL). inp/out are paths of the case files. Returns the
 * number of passing cases and sets *n_cases. */
static inline int tv_run_cases(const qr_tokenizer *tok, const char *name, const char *inp_path,
                        const char *out_path, int *n_cases) {
    size_t in_len, out_len;
    char *inp = tv_read(inp_path, &in_len);
    char *out = tv_read(out_path, &out_len);
    REQUIRE(inp && out);
    int pass = 0, cases = 0;
    char *ip = inp, *op = out;
    for (;;) {
        char *sep = strstr(ip, TV_SEP);
        if (!sep) break;
        char *eol = strchr(op, '\n');
        REQUIRE(eol);
        *eol = '\0';
        int32_t expect[4096];
        size_t n_expect = 0;
        for (char *p = op; *p;) {
            while (*p == ' ') p++;
            if (!*p) break;
            expect[n_expect++] = (int32_t)strtol(p, &p, 10);
        }
        int32_t *ids = NULL;
        size_t n = 0;
        qr_error err = {{0}};
        int rc = qr_tokenize(tok, ip, (size_t)(sep - ip), false, false, &ids, &n, &err);
        bool ok = rc == QR_OK && n == n_expect && memcmp(ids, expect, n * sizeof *ids) == 0;
        cases++;
        if (ok) {
            pass++;
        } else {
            fprintf(stderr, "%s case %d FAILED: '", name, cases);
            tv_print_escaped(ip, (size_t)(sep - ip));
            fprintf(stderr, "'%s%s\n", rc == QR_OK ? "" : " error: ", rc == QR_OK ? "" : err.msg);
            tv_print_ids("expected", expect, n_expect);
            tv_print_ids("got     ", ids, n);
            qr_test_failures++;
        }
        free(ids);
        ip = sep + strlen(TV_SEP);
        op = eol + 1;
    }
    free(inp);
    free(out);
    *n_cases = cases;
    return pass;
}

/* Loads ggml-vocab-NAME.gguf from the shared folder and runs its cases. */
static inline void tv_check_vocab(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-vectors/ggml-vocab-%s.gguf", name);
    const char *p = qr_test_shared_file_or_skip(rel);
    char gguf[4000], inp[4096], out[4096];
    snprintf(gguf, sizeof gguf, "%s", p);
    snprintf(inp, sizeof inp, "%s.inp", gguf);
    snprintf(out, sizeof out, "%s.out", gguf);
    qr_tokenizer *tok = NULL;
    qr_error err = {{0}};
    if (qr_tokenizer_load_file(gguf, &tok, &err) != QR_OK) {
        fprintf(stderr, "%s: load failed: %s\n", name, err.msg);
        qr_test_failures++;
        return;
    }
    int n = 0;
    int pass = tv_run_cases(tok, name, inp, out, &n);
    printf("vocab %-16s %d/%d cases match\n", name, pass, n);
    CHECK(n > 0);
    qr_tokenizer_free(tok);
}

/* ---- round trip -------------------------------------------------------------------- */

/* A small deterministic generator (xorshift), so failures reproduce. */
static inline uint64_t tv_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline size_t tv_put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Random valid UTF-8 (no NUL, no surrogates) mixing words, spaces, punctuation,
 * digits, newlines and code points from several scripts. */
static inline size_t tv_random_text(uint64_t *s, char *o, size_t max_cps) {
    static const char *const words[] = {"Hello", "world", "the", "'s", "'ll", "don't", "  ", "\n",
                                        "\t", " ?", " .", "3333", "Ünïcödé", "привет", "你好",
                                        "🦙", "<s>", "</s>", "<|endoftext|>", " ' ", "y'all"};
    static const uint32_t ranges[][2] = {{0x20, 0x7E}, {0xA0, 0x24F}, {0x370, 0x3FF}, {0x400, 0x4FF},
                                         {0x590, 0x6FF}, {0x900, 0x97F}, {0x1780, 0x17FF},
                                         {0x3000, 0x30FF}, {0x4E00, 0x4FFF}, {0xAC00, 0xAD00},
                                         {0x1F300, 0x1F64F}, {0x1, 0x1F}, {0xE000, 0xE010}};
    size_t n = 0;
    size_t cps = 1 + tv_rand(s) % max_cps;
    for (size_t i = 0; i < cps; i++) {
        uint64_t r = tv_rand(s);
        if (r % 3 == 0) {
            const char *w = words[(r >> 8) % (sizeof words / sizeof words[0])];
            size_t l = strlen(w);
            memcpy(o + n, w, l);
            n += l;
        } else {
            size_t k = (r >> 8) % (sizeof ranges / sizeof ranges[0]);
            uint32_t cp = ranges[k][0] + (uint32_t)((r >> 16) % (ranges[k][1] - ranges[k][0] + 1));
            n += tv_put_utf8(o + n, cp);
        }
    }
    return n;
}

#endif
