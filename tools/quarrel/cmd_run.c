/* quarrel run -m MODEL -p PROMPT [-n N] [-c CTX] [-t THREADS] [sampling flags]: generates
 * text and streams it to stdout; a stats line goes to stderr. Uses only the public API
 * (include/quarrel.h). Flag names follow llama.cpp's llama-completion. */
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
#include "run_audit.h"

typedef struct run_opts {
    const char *model, *prompt, *dump_path;
    int32_t n_predict, n_ctx, n_threads, n_batch;
    qr_sampling_params sp;
    qr_model_params mp;
    qr_device device;
    int32_t n_gpu_layers;
    bool check_numerics, kv_f32, batch_invariant, display_prompt;
} run_opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel run -m MODEL -p PROMPT [options]\n"
            "\n"
            "Generates a continuation of PROMPT and streams it to stdout (the prompt is echoed\n"
            "first, as llama-completion does). Timing goes to stderr.\n"
            "\n"
            "  -m, --model FILE        GGUF model (llama, mistral, qwen2, gemma3)\n"
            "  -p, --prompt TEXT       the prompt (BOS is added when the vocabulary asks)\n"
            "  -n, --n-predict N       tokens to generate (default 128; stops early at end of text)\n"
            "  -c, --ctx-size N        context size (default: min(training context, 4096))\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  -b, --batch-size N      prompt rows per forward step (default 512)\n"
            "  --temp T                temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K               top-k (default 40; 0 = off)\n"
            "  --top-p P               top-p (default 0.95; 1 = off)\n"
            "  --min-p P               min-p (default 0.05; 0 = off)\n"
            "  --repeat-penalty R      repetition penalty (default 1 = off)\n"
            "  --repeat-last-n N       tokens the penalty looks back over (default 64)\n"
            "  --seed S                sampling seed (default 0)\n"
            CLI_MODEL_HELP
            CLI_DEVICE_HELP
            CLI_NGL_HELP
            "  --no-display-prompt     do not echo the prompt\n"
            "  --kv-f32                F32 KV cache instead of F16\n"
            "  --batch-invariant       sum every row in the decode order (see docs/api.md)\n"
            "  --dump-activations FILE write per-op activation statistics as JSON lines\n"
            "  --check-numerics        stop at the first NaN/Inf, naming the layer and op\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad model, bad value, prompt too long), 2 usage.\n");
}

/* ---- Value parsing: the whole string must be a number in range ---------------------------- */

static int parse_i32(const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "quarrel run: invalid value '%s' for %s (expected an integer in %d..%d)\n", s, flag, lo, hi);
        return 1;
    }
    *out = (int32_t)v;
    return 0;
}

static int parse_f32(const char *flag, const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "quarrel run: invalid value '%s' for %s (expected a number in %g..%g)\n", s, flag, lo, hi);
        return 1;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "quarrel run: invalid value '%s' for %s (expected a non-negative integer)\n", s, flag);
        return 1;
    }
    *out = v;
    return 0;
}

static bool is(const char *a, const char *s, const char *l) { return strcmp(a, s) == 0 || (l && strcmp(a, l) == 0); }

/* Returns 0 ok, 1 bad value, 2 usage error, 3 help shown. */
static int parse_value(run_opts *o, const char *a, const char *v) {
    if (is(a, "-m", "--model")) o->model = v;
    else if (is(a, "-p", "--prompt")) o->prompt = v;
    else if (is(a, "--dump-activations", NULL)) o->dump_path = v;
    else if (is(a, "-n", "--n-predict")) return parse_i32(a, v, 0, 1 << 30, &o->n_predict);
    else if (is(a, "-c", "--ctx-size")) return parse_i32(a, v, 0, 1 << 24, &o->n_ctx);
    else if (is(a, "-t", "--threads")) return parse_i32(a, v, 1, 1024, &o->n_threads);
    else if (is(a, "-b", "--batch-size")) return parse_i32(a, v, 1, 1 << 20, &o->n_batch);
    else if (is(a, "--temp", NULL)) return parse_f32(a, v, 0.0f, 1e6f, &o->sp.temperature);
    else if (is(a, "--top-k", NULL)) return parse_i32(a, v, 0, 1 << 30, &o->sp.top_k);
    else if (is(a, "--top-p", NULL)) return parse_f32(a, v, 1e-9f, 1.0f, &o->sp.top_p);
    else if (is(a, "--min-p", NULL)) return parse_f32(a, v, 0.0f, 1.0f, &o->sp.min_p);
    else if (is(a, "--repeat-penalty", NULL)) return parse_f32(a, v, 1e-6f, 1e6f, &o->sp.repeat_penalty);
    else if (is(a, "--repeat-last-n", NULL)) return parse_i32(a, v, 0, 1 << 20, &o->sp.penalty_last_n);
    else if (is(a, "--seed", NULL)) return parse_u64(a, v, &o->sp.seed);
    else if (is(a, "--device", NULL)) return cli_parse_device("run", a, v, &o->device);
    else if (cli_is_gpu_layers(a)) return cli_parse_gpu_layers("run", a, v, &o->n_gpu_layers);
    else return cli_parse_model("run", a, v, &o->mp);
    return 0;
}

static int parse_args(int argc, char **argv, run_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is(a, "-h", "--help")) { usage(stdout); return 3; }
        if (is(a, "--check-numerics", NULL)) { o->check_numerics = true; continue; }
        if (is(a, "--kv-f32", NULL)) { o->kv_f32 = true; continue; }
        if (is(a, "--batch-invariant", NULL)) { o->batch_invariant = true; continue; }
        if (is(a, "--no-display-prompt", NULL)) { o->display_prompt = false; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel run: %s\n", a[0] == '-' ? "option needs a value or is unknown" : "unexpected argument");
            fprintf(stderr, "  (at '%s'; see quarrel run --help)\n", a);
            return 2;
        }
        int rc = parse_value(o, a, argv[i + 1]);
        if (rc == 2) {
            fprintf(stderr, "quarrel run: unknown option '%s' (see quarrel run --help)\n", a);
            return 2;
        }
        if (rc) return 1;
        i++;
    }
    if (!o->model || !o->prompt) {
        fprintf(stderr, "quarrel run: -m MODEL and -p PROMPT are required (see quarrel run --help)\n");
        return 2;
    }
    return 0;
}

/* ---- Generation ------------------------------------------------------------------------------- */

typedef struct run_state {
    qr_model *m;
    qr_ctx *c;
    qr_sampling *s;
    run_audit audit;
    qr_token *prompt;
    int32_t n_prompt, n_gen;
    double t_load, t_prompt, t_gen;
} run_state;

static int tokenize_prompt(run_state *st, const run_opts *o) {
    char err[512];
    const size_t len = strlen(o->prompt);
    int32_t n = qr_model_tokenize(st->m, o->prompt, len, true, false, NULL, 0, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "quarrel run: %s\n", err);
        return 1;
    }
    st->prompt = malloc((size_t)(n > 0 ? n : 1) * sizeof *st->prompt);
    if (!st->prompt) return fprintf(stderr, "quarrel run: out of memory\n"), 1;
    st->n_prompt = qr_model_tokenize(st->m, o->prompt, len, true, false, st->prompt, n, err, sizeof err);
    if (st->n_prompt <= 0) {
        fprintf(stderr, "quarrel run: the prompt tokenizes to no tokens\n");
        return 1;
    }
    if (st->n_prompt >= qr_ctx_n_ctx(st->c)) {
        fprintf(stderr, "quarrel run: the prompt is %d tokens, longer than the context (%d); raise -c\n",
                st->n_prompt, qr_ctx_n_ctx(st->c));
        return 1;
    }
    return 0;
}

static int decode(run_state *st, const qr_token *toks, int32_t n) {
    char err[512];
    qr_batch b = {.n_tokens = n, .tokens = toks};
    if (qr_decode(st->c, &b, err, sizeof err) != 0) {
        if (st->audit.failure[0]) fprintf(stderr, "quarrel run: %s\n", st->audit.failure);
        else fprintf(stderr, "quarrel run: %s\n", err);
        return 1;
    }
    st->audit.step++;
    return 0;
}

static void emit(const run_state *st, qr_token t) {
    char buf[256];
    int32_t n = qr_model_token_to_piece(st->m, t, false, buf, sizeof buf);
    fwrite(buf, 1, (size_t)(n < (int32_t)sizeof buf ? n : (int32_t)sizeof buf), stdout);
    fflush(stdout);
}

static int generate(run_state *st, const run_opts *o) {
    char err[512];
    double t0 = qr_time_now_s();
    for (int32_t i = 0; i < st->n_prompt; i++) qr_sampling_accept(st->s, st->prompt[i]);
    if (decode(st, st->prompt, st->n_prompt)) return 1;
    st->t_prompt = qr_time_now_s() - t0;
    t0 = qr_time_now_s();
    const int32_t room = qr_ctx_n_ctx(st->c) - st->n_prompt;
    for (int32_t i = 0; i < o->n_predict; i++) {
        qr_token t = qr_sampling_sample(st->s, st->c, -1, err, sizeof err);
        if (t < 0) return fprintf(stderr, "quarrel run: %s\n", err), 1;
        st->audit.step--; /* the logits belong to the decode just done */
        run_audit_logits(&st->audit, qr_get_logits(st->c, -1), qr_model_n_vocab(st->m), t);
        st->audit.step++;
        if (qr_model_is_eog(st->m, t)) break;
        emit(st, t);
        qr_sampling_accept(st->s, t);
        st->n_gen++;
        if (st->n_gen >= room) {
            fprintf(stderr, "\nquarrel run: context full (%d tokens); stopping\n", qr_ctx_n_ctx(st->c));
            break;
        }
        if (i + 1 < o->n_predict && decode(st, &t, 1)) return 1;
    }
    st->t_gen = qr_time_now_s() - t0;
    return 0;
}

static int setup(run_state *st, const run_opts *o) {
    char err[512];
    double t0 = qr_time_now_s();
    st->m = qr_model_load_with(o->model, &o->mp, err, sizeof err);
    if (!st->m) return fprintf(stderr, "quarrel run: %s\n", err), 1;
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    if (o->n_batch) cp.n_batch = o->n_batch;
    cp.kv_f32 = o->kv_f32;
    cp.batch_invariant = o->batch_invariant;
    cp.device = o->device;
    cp.n_gpu_layers = o->n_gpu_layers;
    st->c = qr_ctx_create(st->m, &cp, err, sizeof err);
    if (!st->c) return fprintf(stderr, "quarrel run: %s\n", err), 1;
    st->s = qr_sampling_create(st->m, &o->sp, err, sizeof err);
    if (!st->s) return fprintf(stderr, "quarrel run: %s\n", err), 1;
    st->t_load = qr_time_now_s() - t0;
    if (o->dump_path) {
        st->audit.dump = fopen(o->dump_path, "w");
        if (!st->audit.dump) return fprintf(stderr, "quarrel run: cannot write %s: %s\n", o->dump_path, strerror(errno)), 1;
    }
    st->audit.check_numerics = o->check_numerics;
    if (o->dump_path || o->check_numerics) qr_ctx_set_activation_callback(st->c, run_audit_observe, &st->audit);
    return 0;
}

static void teardown(run_state *st) {
    if (st->audit.dump) fclose(st->audit.dump);
    qr_sampling_free(st->s);
    qr_ctx_free(st->c);
    qr_model_free(st->m);
    free(st->prompt);
}

int cmd_run(int argc, char **argv) {
    run_opts o = {.n_predict = 128, .sp = qr_sampling_default_params(), .mp = qr_model_default_params(),
                  .n_gpu_layers = -1, .display_prompt = true};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    run_state st = {0};
    rc = setup(&st, &o);
    if (!rc) rc = tokenize_prompt(&st, &o);
    if (!rc && o.display_prompt) {
        fputs(o.prompt, stdout);
        fflush(stdout);
    }
    if (!rc) rc = generate(&st, &o);
    if (!rc) {
        fputc('\n', stdout);
        fflush(stdout);
        fprintf(stderr, "quarrel run: load %.0f ms | prompt %d tokens, %.2f t/s | generation %d tokens, %.2f t/s | %s\n",
                st.t_load * 1e3, st.n_prompt, st.t_prompt > 0 ? st.n_prompt / st.t_prompt : 0.0, st.n_gen,
                st.t_gen > 0 ? st.n_gen / st.t_gen : 0.0, qr_ctx_device(st.c) == QR_DEVICE_CUDA ? "cuda" : "cpu");
    }
    teardown(&st);
    return rc;
}
