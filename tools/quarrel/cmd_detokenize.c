/* quarrel detokenize -m MODEL [--special] ID...: prints the text of token ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel detokenize -m MODEL [--special] ID...\n"
            "\n"
            "Prints the text of the token ids (decimal; several may share one argument,\n"
            "separated by spaces) with the tokenizer stored in MODEL, exactly as\n"
            "llama.cpp's llama_detokenize would (SentencePiece's leading space removed,\n"
            "clean_up_tokenization_spaces applied where the vocabulary asks for it). The\n"
            "text is written as it is, with no newline added.\n"
            "\n"
            "  -m, --model MODEL   the GGUF file\n"
            "  --special           render control tokens (<s>, <|im_end|>, ...) as text\n"
            "  -h, --help          show this help\n"
            "\n"
            "Exit codes: 0 ok, 1 unreadable model, 2 usage (including an id out of range).\n");
}

/* Parses the ids of one argument ("12 34" or "12"); returns the count or -1. */
static int parse_ids(const char *arg, int32_t **ids, size_t *n, size_t *cap) {
    const char *p = arg;
    int count = 0;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) return -1;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            int32_t *nv = realloc(*ids, *cap * sizeof **ids);
            if (!nv) return -1;
            *ids = nv;
        }
        (*ids)[(*n)++] = (int32_t)v;
        count++;
        p = end;
    }
    return count;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    bool special = false;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int status = 0;
    for (int i = 1; i < argc && status == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(ids);
            return 0;
        } else if ((strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(a, "--special") == 0) {
            special = true;
        } else if (parse_ids(a, &ids, &n, &cap) < 0) {
            fprintf(stderr, "quarrel detokenize: '%s' is not a token id or an option\n\n", a);
            status = 2;
        }
    }
    if (status == 0 && !model) {
        fprintf(stderr, "quarrel detokenize: need -m MODEL\n\n");
        status = 2;
    }
    if (status) {
        usage(stderr);
        free(ids);
        return status;
    }
    qr_error err = {{0}};
    qr_tokenizer *tok = NULL;
    if (qr_tokenizer_load_file(model, &tok, &err) != QR_OK) {
        fprintf(stderr, "quarrel detokenize: %s\n", err.msg);
        free(ids);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= qr_tokenizer_n_vocab(tok)) {
            fprintf(stderr, "quarrel detokenize: token id %d is out of range (the vocabulary has %d)\n",
                    ids[i], qr_tokenizer_n_vocab(tok));
            free(ids);
            qr_tokenizer_free(tok);
            return 2;
        }
    }
    char *text = NULL;
    size_t len = 0;
    int rc = qr_detokenize(tok, ids, n, false, special, &text, &len, &err);
    if (rc == QR_OK) fwrite(text, 1, len, stdout);
    else fprintf(stderr, "quarrel detokenize: %s\n", err.msg);
    free(text);
    free(ids);
    qr_tokenizer_free(tok);
    return rc == QR_OK ? 0 : 1;
}
