/* quarrel tokenize -m MODEL (-p TEXT | -f FILE) [--ids] [--bos] [--special]: prints the
 * token ids of a text with the model's own tokenizer. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel tokenize -m MODEL (-p TEXT | -f FILE) [--ids] [--bos] [--special]\n"
            "\n"
            "Tokenizes a text with the tokenizer stored in MODEL (a GGUF file; a vocab-only\n"
            "file is enough) and prints the result.\n"
            "\n"
            "  -m, --model MODEL   the GGUF file\n"
            "  -p, --prompt TEXT   the text to tokenize\n"
            "  -f, --file FILE     read the text from FILE (bytes as they are)\n"
            "  --ids               print only the ids: decimal, space-separated, one line\n"
            "  --bos               add the special tokens the vocabulary asks for (BOS, and\n"
            "                      EOS / BERT's CLS+SEP where it adds them); default: none\n"
            "  --special           parse special-token text (e.g. <|im_start|>) as one token\n"
            "  -h, --help          show this help\n"
            "\n"
            "Without --ids each token is one line 'ID<TAB>PIECE', where PIECE is the token's\n"
            "text with \\\\, tab, newline, CR and other control or non-UTF-8 bytes escaped\n"
            "(\\\\, \\t, \\n, \\r, \\xNN). Exit codes: 0 ok, 1 unreadable model or file, 2 usage.\n");
}

/* Reads a whole file into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

static size_t valid_utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
    }
    return len;
}

static void print_escaped(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '\\') fputs("\\\\", f), i++;
        else if (c == '\t') fputs("\\t", f), i++;
        else if (c == '\n') fputs("\\n", f), i++;
        else if (c == '\r') fputs("\\r", f), i++;
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\x%02X", c), i++;
        else if (c < 0x80) fputc((int)c, f), i++;
        else {
            size_t k = valid_utf8_len(p + i, n - i);
            if (k == 0) {
                fprintf(f, "\\x%02X", c);
                i++;
            } else {
                fwrite(p + i, 1, k, f);
                i += k;
            }
        }
    }
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool ids_only = false, bos = false, special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if ((strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) && has_value) {
            model = argv[++i];
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) && has_value) {
            prompt = argv[++i];
        } else if ((strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) && has_value) {
            file = argv[++i];
        } else if (strcmp(a, "--ids") == 0) {
            ids_only = true;
        } else if (strcmp(a, "--bos") == 0) {
            bos = true;
        } else if (strcmp(a, "--special") == 0) {
            special = true;
        } else {
            fprintf(stderr, "quarrel tokenize: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || (!prompt && !file) || (prompt && file)) {
        fprintf(stderr, "quarrel tokenize: need -m MODEL and exactly one of -p TEXT / -f FILE\n\n");
        usage(stderr);
        return 2;
    }
    size_t len = 0;
    char *text = NULL;
    if (file) {
        text = read_file(file, &len);
        if (!text) {
            fprintf(stderr, "quarrel tokenize: cannot read '%s': %s\n", file, strerror(errno));
            return 1;
        }
    }
    qr_error err = {{0}};
    qr_tokenizer *tok = NULL;
    if (qr_tokenizer_load_file(model, &tok, &err) != QR_OK) {
        fprintf(stderr, "quarrel tokenize: %s\n", err.msg);
        free(text);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = qr_tokenize(tok, text ? text : prompt, text ? len : strlen(prompt), bos, special, &ids,
                         &n, &err);
    if (rc != QR_OK) {
        fprintf(stderr, "quarrel tokenize: %s\n", err.msg);
    } else if (ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = qr_token_to_piece(tok, ids[i], true, &pl);
            printf("%" PRId32 "\t", ids[i]);
            print_escaped(stdout, p, pl);
            putchar('\n');
        }
    }
    free(ids);
    free(text);
    qr_tokenizer_free(tok);
    return rc == QR_OK ? 0 : 1;
}
