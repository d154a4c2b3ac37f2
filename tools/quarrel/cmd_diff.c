/* quarrel diff -m MODEL -p PROMPT [--a cpu] [--b cuda] [--tol 1e-2] [-n N] [--json]: runs
 * the same tokens through two contexts on one loaded model, op for op, and reports per
 * layer and op the relative error of side b against side a, the first op over the
 * tolerance, and the final logits' error and top-1 agreement per position. With -n, N
 * greedy tokens (side a's choice, fed to both) are compared too. Uses only the public
 * API (include/quarrel.h) and its activation callback. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_parse.h"
#include "commands.h"
#include "diff_lockstep.h"
#include "diff_report.h"
#include "quarrel.h"

#define CMD "diff"

typedef struct diff_opts {
    const char *model, *prompt, *file;
    diff_side a, b;
    int32_t threads, a_threads, b_threads; /* -1: not given */
    float tol;
    int32_t n_gen, n_ctx, n_batch;
    bool json;
    qr_model_params mp;
} diff_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel diff -m MODEL (-p PROMPT | -f FILE) [options]\n"
            "\n"
            "Runs the prompt through two contexts (sides a and b) of the same model op for op and\n"
            "reports, per layer and op, the error of b against a: relative L2 ||b-a||/||a|| and\n"
            "max |b-a|, summed over all steps. The first op whose error in some step exceeds the\n"
            "tolerance is named with the position of its worst row. Then the final logits of every\n"
            "position: relative L2, max |b-a| and both sides' top-1 token.\n"
            "\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --prompt TEXT       the prompt (BOS is added when the vocabulary asks)\n"
            "  -f, --file FILE         read the prompt from FILE\n"
            "  --a DEV, --b DEV        the sides' devices: cpu | cuda (default: a cpu, b cuda)\n"
            "  --tol X                 tolerance on the relative L2 error (default 1e-2)\n"
            "  -n, --n-predict N       also compare N greedy tokens (side a's choice; default 0)\n"
            "  -c, --ctx-size N        context size (default: min(training context, 4096))\n"
            "  -b, --batch-size N      prompt rows per step (default 512)\n"
            "  -t, --threads N         CPU threads of both sides (default: all CPUs)\n"
            "  --a-threads N, --b-threads N     one side's CPU threads\n"
            "  --a-kv-f32, --b-kv-f32           F32 KV cache on one side (default F16)\n"
            "  --a-kernels L, --b-kernels L     CPU kernel level of one side: scalar | avx2 |\n"
            "                          avx512-nofp16 | avx512 | auto (QUARREL_CPU_KERNELS)\n"
            CLI_MODEL_HELP
            "  --json                  one JSON object instead of the table\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit codes: 0 every op and position within the tolerance, 1 something exceeds it,\n"
            "2 usage error, or the model, a context (e.g. \"device cuda: ...\") or a step failed.\n");
}

/* ---- Options ------------------------------------------------------------------------------------ */

static int parse_side_device(const char *flag, const char *v, qr_device *out) {
    if (strcmp(v, "cpu") == 0) *out = QR_DEVICE_CPU;
    else if (strcmp(v, "cuda") == 0) *out = QR_DEVICE_CUDA;
    else {
        fprintf(stderr, "quarrel " CMD ": invalid value '%s' for %s (expected cpu or cuda)\n", v, flag);
        return 1;
    }
    return 0;
}

static int parse_kernels(const char *flag, const char *v, const char **out) {
    static const char *const LEVELS[] = {"scalar", "avx2", "avx512-nofp16", "avx512", "auto"};
    for (size_t i = 0; i < sizeof LEVELS / sizeof LEVELS[0]; i++) {
        if (strcmp(v, LEVELS[i]) == 0) {
            *out = v;
            return 0;
        }
    }
    fprintf(stderr, "quarrel " CMD ": invalid value '%s' for %s (expected scalar, avx2, avx512-nofp16, avx512 or auto)\n",
            v, flag);
    return 1;
}

/* Returns 0 parsed, 1 bad value, 2 unknown flag. */
static int parse_value(diff_opts *o, const char *a, const char *v) {
    if (cli_is(a, "-m", "--model")) o->model = v;
    else if (cli_is(a, "-p", "--prompt")) o->prompt = v;
    else if (cli_is(a, "-f", "--file")) o->file = v;
    else if (cli_is(a, "--a", NULL)) return parse_side_device(a, v, &o->a.device);
    else if (cli_is(a, "--b", NULL)) return parse_side_device(a, v, &o->b.device);
    else if (cli_is(a, "--tol", NULL)) return cli_parse_f32(CMD, a, v, 0.0f, 1e30f, &o->tol);
    else if (cli_is(a, "-n", "--n-predict")) return cli_parse_i32(CMD, a, v, 0, 1 << 24, &o->n_gen);
    else if (cli_is(a, "-c", "--ctx-size")) return cli_parse_i32(CMD, a, v, 0, 1 << 24, &o->n_ctx);
    else if (cli_is(a, "-b", "--batch-size")) return cli_parse_i32(CMD, a, v, 1, 1 << 20, &o->n_batch);
    else if (cli_is(a, "-t", "--threads")) return cli_parse_i32(CMD, a, v, 1, 1024, &o->threads);
    else if (cli_is(a, "--a-threads", NULL)) return cli_parse_i32(CMD, a, v, 1, 1024, &o->a_threads);
    else if (cli_is(a, "--b-threads", NULL)) return cli_parse_i32(CMD, a, v, 1, 1024, &o->b_threads);
    else if (cli_is(a, "--a-kernels", NULL)) return parse_kernels(a, v, &o->a.kernels);
    else if (cli_is(a, "--b-kernels", NULL)) return parse_kernels(a, v, &o->b.kernels);
    else return cli_parse_model(CMD, a, v, &o->mp);
    return 0;
}

/* The option combinations; returns 0 or 2 after a message. */
static int check_opts(diff_opts *o) {
    if (!o->model || (!o->prompt && !o->file) || (o->prompt && o->file)) {
        fprintf(stderr, "quarrel " CMD ": -m MODEL and one of -p PROMPT or -f FILE are required (see quarrel " CMD
                        " --help)\n");
        return 2;
    }
    const diff_side *s[2] = {&o->a, &o->b};
    for (int i = 0; i < 2; i++) {
        if (s[i]->kernels && s[i]->device != QR_DEVICE_CPU) {
            fprintf(stderr, "quarrel " CMD ": --%c-kernels applies to a cpu side only\n", 'a' + i);
            return 2;
        }
    }
    o->a.threads = o->a_threads >= 0 ? o->a_threads : o->threads;
    o->b.threads = o->b_threads >= 0 ? o->b_threads : o->threads;
    return 0;
}

/* Returns 0 ok, 2 usage error, 3 help shown. */
static int parse_args(int argc, char **argv, diff_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, "-h", "--help")) { usage(stdout); return 3; }
        if (cli_is(a, "--json", NULL)) { o->json = true; continue; }
        if (cli_is(a, "--a-kv-f32", NULL)) { o->a.kv_f32 = true; continue; }
        if (cli_is(a, "--b-kv-f32", NULL)) { o->b.kv_f32 = true; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel " CMD ": %s '%s' (see quarrel " CMD " --help)\n",
                    a[0] == '-' ? "option needs a value or is unknown:" : "unexpected argument", a);
            return 2;
        }
        const int rc = parse_value(o, a, argv[i + 1]);
        if (rc == 2) {
            fprintf(stderr, "quarrel " CMD ": unknown option '%s' (see quarrel " CMD " --help)\n", a);
            return 2;
        }
        if (rc) return 2;
        i++;
    }
    return check_opts(o);
}

/* ---- Setup ---------------------------------------------------------------------------------------- */

typedef struct diff_state {
    qr_model *m;
    qr_ctx *ca, *cb;
    char *text;            /* the prompt read with -f */
    qr_token *prompt;
    int32_t n_vocab, n_layer;
    diff_result r;
} diff_state;

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "quarrel " CMD ": cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
        }
    }
    fclose(f);
    if (!buf) fprintf(stderr, "quarrel " CMD ": out of memory reading %s\n", path);
    else buf[n] = '\0';
    return buf;
}

/* The side's context; its kernel level goes through QUARREL_CPU_KERNELS, which the CPU
 * backend reads when the context is created (restored afterwards). */
static qr_ctx *create_side(qr_model *m, const diff_opts *o, const diff_side *s, char name) {
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_batch = o->n_batch;
    cp.n_threads = s->threads;
    cp.kv_f32 = s->kv_f32;
    cp.device = s->device;
    const char *env = getenv("QUARREL_CPU_KERNELS");
    char *saved = env ? strdup(env) : NULL;
    if (s->kernels) setenv("QUARREL_CPU_KERNELS", s->kernels, 1);
    char err[512];
    qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
    if (s->kernels) {
        if (saved) setenv("QUARREL_CPU_KERNELS", saved, 1);
        else unsetenv("QUARREL_CPU_KERNELS");
    }
    free(saved);
    if (!c) fprintf(stderr, "quarrel " CMD ": side %c: %s\n", name, err);
    return c;
}

static int tokenize(diff_state *st, const char *text) {
    char err[512];
    const size_t len = strlen(text);
    const int32_t n = qr_model_tokenize(st->m, text, len, true, false, NULL, 0, err, sizeof err);
    if (n < 0) return fprintf(stderr, "quarrel " CMD ": %s\n", err), 2;
    if (n == 0) return fprintf(stderr, "quarrel " CMD ": the prompt tokenizes to no tokens\n"), 2;
    st->prompt = malloc((size_t)n * sizeof *st->prompt);
    if (!st->prompt) return fprintf(stderr, "quarrel " CMD ": out of memory\n"), 2;
    st->r.n_prompt = qr_model_tokenize(st->m, text, len, true, false, st->prompt, n, err, sizeof err);
    return 0;
}

static int setup(diff_state *st, const diff_opts *o) {
    char err[512];
    st->m = qr_model_load_with(o->model, &o->mp, err, sizeof err);
    if (!st->m) return fprintf(stderr, "quarrel " CMD ": %s\n", err), 2;
    st->n_vocab = qr_model_n_vocab(st->m);
    st->n_layer = qr_model_n_layer(st->m);
    if (o->file && !(st->text = read_file(o->file))) return 2;
    if (!(st->ca = create_side(st->m, o, &o->a, 'a'))) return 2;
    if (!(st->cb = create_side(st->m, o, &o->b, 'b'))) return 2;
    if (tokenize(st, o->file ? st->text : o->prompt)) return 2;
    const int64_t need = (int64_t)st->r.n_prompt + o->n_gen;
    if (need > qr_ctx_n_ctx(st->ca)) {
        fprintf(stderr, "quarrel " CMD ": %d prompt + %d generated tokens exceed the context (%d); raise -c\n",
                st->r.n_prompt, o->n_gen, qr_ctx_n_ctx(st->ca));
        return 2;
    }
    st->r.pos = calloc((size_t)need, sizeof *st->r.pos);
    if (!st->r.pos) return fprintf(stderr, "quarrel " CMD ": out of memory\n"), 2;
    return 0;
}

static void teardown(diff_state *st) {
    qr_ctx_free(st->ca);
    qr_ctx_free(st->cb);
    qr_model_free(st->m);
    diff_table_free(&st->r.table);
    free(st->r.pos);
    free(st->prompt);
    free(st->text);
}

/* ---- Steps ---------------------------------------------------------------------------------------- */

/* Highest logit, lowest id on ties (greedy sampling's choice). */
static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) {
        if (x[i] > x[best]) best = i;
    }
    return best;
}

static void compare_logits(diff_state *st, int32_t pos0, int32_t rows, bool generated) {
    for (int32_t r = 0; r < rows; r++) {
        const float *la = qr_get_logits(st->ca, r), *lb = qr_get_logits(st->cb, r);
        const diff_sums s = diff_measure(la, lb, st->n_vocab);
        st->r.pos[st->r.n_pos++] = (diff_pos){.pos = pos0 + r, .generated = generated, .rel_l2 = diff_rel_l2(&s),
                                              .max_abs = s.max_abs, .top_a = argmax(la, st->n_vocab),
                                              .top_b = argmax(lb, st->n_vocab)};
    }
}

/* One step: rows tokens at positions pos0.. on both sides, every row's logits wanted. */
static int step(diff_state *st, const qr_token *toks, int32_t rows, int32_t pos0, bool generated, int8_t *want) {
    char err[600];
    memset(want, 1, (size_t)rows);
    const qr_batch b = {.n_tokens = rows, .tokens = toks, .logits = want};
    st->r.table.pos0 = pos0;
    if (diff_lockstep_decode(st->ca, st->cb, st->n_layer, &b, &st->r.table, err, sizeof err) != 0) {
        fprintf(stderr, "quarrel " CMD ": step %lld: %s\n", (long long)st->r.table.step, err);
        return 2;
    }
    if (st->r.table.oom) return fprintf(stderr, "quarrel " CMD ": out of memory\n"), 2;
    compare_logits(st, pos0, rows, generated);
    st->r.table.step++;
    return 0;
}

static int run_steps(diff_state *st, const diff_opts *o) {
    const int32_t n_batch = o->n_batch < st->r.n_prompt ? o->n_batch : st->r.n_prompt;
    int8_t *want = malloc((size_t)n_batch);
    if (!want) return fprintf(stderr, "quarrel " CMD ": out of memory\n"), 2;
    int rc = 0;
    for (int32_t p = 0; !rc && p < st->r.n_prompt; p += n_batch) {
        const int32_t rows = st->r.n_prompt - p < n_batch ? st->r.n_prompt - p : n_batch;
        rc = step(st, st->prompt + p, rows, p, false, want);
    }
    for (int32_t g = 0; !rc && g < o->n_gen; g++) {
        const qr_token t = st->r.pos[st->r.n_pos - 1].top_a;
        rc = step(st, &t, 1, st->r.n_prompt + g, true, want);
        if (!rc) st->r.n_gen++;
    }
    free(want);
    return rc;
}

int cmd_diff(int argc, char **argv) {
    diff_opts o = {.a = {.device = QR_DEVICE_CPU}, .b = {.device = QR_DEVICE_CUDA}, .threads = 0, .a_threads = -1,
                   .b_threads = -1, .tol = 1e-2f, .n_batch = 512, .mp = qr_model_default_params()};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    diff_state st = {.r = {.model = o.model, .tol = o.tol, .a = o.a, .b = o.b, .table = {.tol = o.tol}}};
    rc = setup(&st, &o);
    if (!rc) rc = run_steps(&st, &o);
    if (!rc) {
        if (o.json) diff_report_json(stdout, &st.r);
        else diff_report_text(stdout, &st.r);
        rc = diff_n_ops_over(&st.r) || diff_n_pos_over(&st.r) ? 1 : 0;
    }
    teardown(&st);
    return rc;
}
