/* quarrel perplexity -m MODEL -f TEXT [-c CTX] [-t THREADS] [-b BATCH]: the perplexity of a
 * text, by the method of llama.cpp's llama-perplexity (tools/perplexity), so the numbers
 * are comparable with published ones. Built only on the public API (include/quarrel.h).
 *
 * The method: tokenize the whole text once (BOS added when the vocabulary asks); cut it
 * into non-overlapping chunks of CTX tokens (a tail shorter than CTX is dropped); evaluate
 * each chunk from an empty cache with its first token replaced by BOS (when the vocabulary
 * adds one); score only the second half of the chunk (positions CTX/2 .. CTX-2, each
 * predicting the next token), so every scored token has at least CTX/2 tokens of
 * context. PPL = exp(mean NLL); the error is ppl * sqrt(var(NLL) / (count - 1)). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timer.h"
#include "cli_parse.h"
#include "commands.h"
#include "quarrel.h"

#define CMD "perplexity"

typedef struct ppl_opts {
    const char *model, *file;
    int32_t n_ctx, n_threads, n_batch, n_chunks;
    bool kv_f32;
    qr_device device;
    int32_t n_gpu_layers;
    qr_model_params mp;
} ppl_opts;

typedef struct ppl_acc {
    double nll, nll2;
    int64_t count;
} ppl_acc;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel perplexity -m MODEL -f TEXT [options]\n"
            "\n"
            "Measures the model's perplexity on a text file the way llama.cpp's llama-perplexity\n"
            "does: chunks of CTX tokens, each scored on its second half. Prints the running\n"
            "estimate after each chunk ([1]x,[2]y,...) and 'Final estimate: PPL = X +/- Y'.\n"
            "\n"
            "  -m, --model FILE        GGUF model (llama, mistral, qwen2, gemma3)\n"
            "  -f, --file FILE         the text (one trailing newline is dropped, as llama.cpp's -f)\n"
            "  -c, --ctx-size N        tokens per chunk (default 512); the text needs 2*N tokens\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  -b, --batch-size N      rows per forward step (default 512; at most N)\n"
            "  --chunks N              evaluate at most N chunks (default: all)\n"
            "  --kv-f32                F32 KV cache instead of F16\n"
            CLI_MODEL_HELP
            CLI_DEVICE_HELP
            CLI_NGL_HELP
            "  -h, --help              show this help\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad model, unreadable or too short text), 2 usage.\n");
}

static int parse_value(ppl_opts *o, const char *a, const char *v) {
    if (cli_is(a, "-m", "--model")) o->model = v;
    else if (cli_is(a, "-f", "--file")) o->file = v;
    else if (cli_is(a, "-c", "--ctx-size")) return cli_parse_i32(CMD, a, v, 4, 1 << 24, &o->n_ctx);
    else if (cli_is(a, "-t", "--threads")) return cli_parse_i32(CMD, a, v, 1, 1024, &o->n_threads);
    else if (cli_is(a, "-b", "--batch-size")) return cli_parse_i32(CMD, a, v, 1, 1 << 24, &o->n_batch);
    else if (cli_is(a, "--chunks", NULL)) return cli_parse_i32(CMD, a, v, 1, 1 << 30, &o->n_chunks);
    else if (cli_is(a, "--device", NULL)) return cli_parse_device(CMD, a, v, &o->device);
    else if (cli_is_gpu_layers(a)) return cli_parse_gpu_layers(CMD, a, v, &o->n_gpu_layers);
    else return cli_parse_model(CMD, a, v, &o->mp);
    return 0;
}

/* Returns 0 ok, 1 bad value, 2 usage error, 3 help shown. */
static int parse_args(int argc, char **argv, ppl_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, "-h", "--help")) {
            usage(stdout);
            return 3;
        }
        if (cli_is(a, "--kv-f32", NULL)) {
            o->kv_f32 = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel perplexity: %s '%s' (see quarrel perplexity --help)\n",
                    a[0] == '-' ? "option needs a value or is unknown:" : "unexpected argument", a);
            return 2;
        }
        int rc = parse_value(o, a, argv[++i]);
        if (rc == 2) {
            fprintf(stderr, "quarrel perplexity: unknown option '%s' (see quarrel perplexity --help)\n", a);
            return 2;
        }
        if (rc) return 1;
    }
    if (!o->model || !o->file) {
        fprintf(stderr, "quarrel perplexity: -m MODEL and -f TEXT are required (see quarrel perplexity --help)\n");
        return 2;
    }
    if (o->n_batch > o->n_ctx) o->n_batch = o->n_ctx;
    return 0;
}

/* ---- Input --------------------------------------------------------------------------------- */

static int read_text(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "quarrel perplexity: cannot read %s: %s\n", path, strerror(errno)), 1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return fprintf(stderr, "quarrel perplexity: cannot read %s\n", path), 1;
    }
    if (n > 0 && buf[n - 1] == '\n') n--; /* llama.cpp's -f drops one trailing newline */
    *out = buf;
    *len = n;
    return 0;
}

/* The whole text as llama.cpp's common_tokenize(ctx, text, add_special = true) gives it:
 * BOS when the vocabulary asks, special-token texts left as plain text. */
static int tokenize_text(const qr_model *m, const ppl_opts *o, qr_token **out, int32_t *n_out) {
    char err[1024], *text = NULL;
    size_t len = 0;
    if (read_text(o->file, &text, &len)) return 1;
    int32_t n = qr_model_tokenize(m, text, len, true, false, NULL, 0, err, sizeof err);
    qr_token *toks = n >= 0 ? malloc((size_t)(n > 0 ? n : 1) * sizeof *toks) : NULL;
    if (toks) qr_model_tokenize(m, text, len, true, false, toks, n, err, sizeof err);
    free(text);
    if (n < 0) return fprintf(stderr, "quarrel perplexity: %s: %s\n", o->file, err), 1;
    if (!toks) return fprintf(stderr, "quarrel perplexity: out of memory\n"), 1;
    *out = toks;
    *n_out = n;
    return 0;
}

/* ---- Scoring -------------------------------------------------------------------------------- */

/* log p(tok) from raw logits: float max, then the sum of expf(l - max) in double (the
 * order of llama-perplexity's log_softmax). */
static double log_prob(const float *logits, int32_t n_vocab, qr_token tok) {
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - max);
    return (double)(logits[tok] - max) - log(sum);
}

/* Decodes one chunk from an empty cache in steps of n_batch rows and scores the rows at
 * positions first .. n_ctx-2 against the token that follows each. */
static int eval_chunk(qr_model *m, qr_ctx *c, const ppl_opts *o, const qr_token *chunk, qr_token *work,
                      int8_t *want, ppl_acc *acc) {
    char err[1024];
    const int32_t n_ctx = o->n_ctx, first = n_ctx / 2, n_vocab = qr_model_n_vocab(m);
    memcpy(work, chunk, (size_t)n_ctx * sizeof *work);
    if (qr_model_add_bos(m)) work[0] = qr_model_bos(m);
    if (qr_ctx_seq_truncate(c, 0, 0, err, sizeof err)) return fprintf(stderr, "quarrel perplexity: %s\n", err), 1;
    for (int32_t off = 0; off < n_ctx; off += o->n_batch) {
        const int32_t n = n_ctx - off < o->n_batch ? n_ctx - off : o->n_batch;
        for (int32_t k = 0; k < n; k++) want[k] = (int8_t)(off + k >= first && off + k <= n_ctx - 2);
        qr_batch b = {.n_tokens = n, .tokens = work + off, .logits = want};
        if (qr_decode(c, &b, err, sizeof err)) return fprintf(stderr, "quarrel perplexity: %s\n", err), 1;
        for (int32_t k = 0; k < n; k++) {
            if (!want[k]) continue;
            const double nll = -log_prob(qr_get_logits(c, k), n_vocab, chunk[off + k + 1]);
            acc->nll += nll;
            acc->nll2 += nll * nll;
            acc->count++;
        }
    }
    return 0;
}

static int run_chunks(qr_model *m, qr_ctx *c, const ppl_opts *o, const qr_token *toks, int32_t n_chunk) {
    qr_token *work = malloc((size_t)o->n_ctx * sizeof *work);
    int8_t *want = malloc((size_t)o->n_batch);
    ppl_acc acc = {0};
    int rc = work && want ? 0 : (fprintf(stderr, "quarrel perplexity: out of memory\n"), 1);
    const double t0 = qr_time_now_s();
    for (int32_t i = 0; i < n_chunk && !rc; i++) {
        rc = eval_chunk(m, c, o, toks + (size_t)i * (size_t)o->n_ctx, work, want, &acc);
        if (rc) break;
        if (i == 0) {
            const double t = qr_time_now_s() - t0;
            fprintf(stderr, "quarrel perplexity: %.2f seconds per chunk, ETA %.2f minutes\n", t, t * n_chunk / 60.0);
        }
        printf("[%d]%.4f,", i + 1, exp(acc.nll / (double)acc.count));
        fflush(stdout);
    }
    free(work);
    free(want);
    if (rc) return rc;
    const double mean = acc.nll / (double)acc.count, ppl = exp(mean);
    const double var = acc.nll2 / (double)acc.count - mean * mean;
    printf("\n");
    if (var > 0 && acc.count > 1) {
        printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(acc.count - 1)) * ppl);
    } else {
        printf("Final estimate: PPL = %.4f (no spread: the log-probabilities do not vary)\n", ppl);
    }
    fprintf(stderr, "quarrel perplexity: %d chunks, %lld tokens scored, %.2f s, %d threads\n", n_chunk,
            (long long)acc.count, qr_time_now_s() - t0, qr_ctx_n_threads(c));
    return 0;
}

static int perplexity(const ppl_opts *o) {
    char err[1024];
    qr_token *toks = NULL;
    int32_t n_tok = 0;
    qr_ctx *c = NULL;
    int rc = 1;
    qr_model *m = qr_model_load_with(o->model, &o->mp, err, sizeof err);
    if (!m) {
        fprintf(stderr, "quarrel perplexity: %s\n", err);
        return 1;
    }
    if (tokenize_text(m, o, &toks, &n_tok)) goto done;
    if (n_tok < 2 * o->n_ctx) {
        fprintf(stderr,
                "quarrel perplexity: %s tokenizes to only %d tokens; a context of %d needs at least %d "
                "(two chunks, llama.cpp's rule): use a longer text or a smaller -c\n",
                o->file, n_tok, o->n_ctx, 2 * o->n_ctx);
        goto done;
    }
    if (o->n_ctx > qr_model_n_ctx_train(m)) {
        fprintf(stderr, "quarrel perplexity: warning: the model was trained on only %d tokens of context (-c %d)\n",
                qr_model_n_ctx_train(m), o->n_ctx);
    }
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_batch = o->n_batch;
    cp.n_threads = o->n_threads;
    cp.kv_f32 = o->kv_f32;
    cp.device = o->device;
    cp.n_gpu_layers = o->n_gpu_layers;
    c = qr_ctx_create(m, &cp, err, sizeof err);
    if (!c) {
        fprintf(stderr, "quarrel perplexity: %s\n", err);
        goto done;
    }
    int32_t n_chunk = n_tok / o->n_ctx;
    if (o->n_chunks > 0 && o->n_chunks < n_chunk) n_chunk = o->n_chunks;
    fprintf(stderr, "quarrel perplexity: %d tokens, %d chunks of %d, scoring the last %d tokens of each\n", n_tok,
            n_chunk, o->n_ctx, o->n_ctx - o->n_ctx / 2 - 1);
    rc = run_chunks(m, c, o, toks, n_chunk);
done:
    free(toks);
    qr_ctx_free(c);
    qr_model_free(m);
    return rc;
}

int cmd_perplexity(int argc, char **argv) {
    ppl_opts o = {.n_ctx = 512, .n_batch = 512, .mp = qr_model_default_params(), .n_gpu_layers = -1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    return perplexity(&o);
}
