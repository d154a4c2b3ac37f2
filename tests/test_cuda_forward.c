/* The CUDA forward pass against quarrel's own CPU backend, through the public API.
 *
 * For each model (stories260K, every ../shared/models/synth file, and `quarrel synth`
 * models of every architecture written to a temporary folder: F16, Q8_0 and Q4_K_M,
 * Mistral and Gemma 3 with a 16-token sliding window so the ring wraps) a CUDA context
 * and a CPU context take the same 40-token prompt in one batch, logits for every row.
 * Two comparisons (compare_model says why two):
 *   - CUDA with F32 activations (QUARREL_CUDA_FLOAT_GEMV=1) against the CPU on an F32 copy
 *     of the weights (`quarrel quantize IN OUT F32`; float models against themselves),
 *     where neither rounds activations to 8 bits: ||cuda - cpu||_2 / ||cpu||_2 < 1e-2 at
 *     every prompt position, then 32 greedy tokens, one per step (the CUDA graph path),
 *     identical, with the same bound on each step's logits. A divergence at a near tie
 *     (the CPU's margin between the two tokens within twice the largest logit difference)
 *     is printed and ends that model's comparison without failing: random tiny models
 *     have such ties;
 *   - the default path (activations rounded to the CPU's 8-bit grid) against the CPU on
 *     the file itself: < 0.1 per prompt position and per decode step until the tokens
 *     part, error and greedy agreement printed.
 * A second pass over one model decodes the prompt in batches of 1, 7 and 40 rows and
 * checks that the CUDA logits of a row do not depend on the batch (batch_invariant), and
 * that rows asking only for their greedy token (QR_OUTPUT_ARGMAX) get the argmax of the
 * logits the same row gives otherwise, in mixed prompt batches and single-row steps.
 * Exits 77 without a CUDA device; models that are absent are skipped with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_backend.h"
#include "logits_compare.h"
#include "quarrel.h"
#include "testing.h"

enum { N_PROMPT = 40, N_GEN = 32, N_CTX = 256 };

static qr_ctx *make_ctx(qr_model *m, qr_device dev, bool batch_invariant) {
    char err[512];
    qr_ctx_params p = qr_ctx_default_params();
    p.n_ctx = N_CTX;
    p.n_batch = 64;
    p.n_threads = 4;
    p.device = dev;
    p.batch_invariant = batch_invariant;
    qr_ctx *c = qr_ctx_create(m, &p, err, sizeof err);
    CHECK_MSG(c != NULL, "%s context: %s", dev == QR_DEVICE_CUDA ? "cuda" : "cpu", err);
    return c;
}

/* CUDA with the F32 GEMV (QUARREL_CUDA_FLOAT_GEMV=1: activations kept in F32, as the
 * CPU keeps them for F32 weights) on `m`. */
static qr_ctx *make_float_ctx(qr_model *m) {
    setenv("QUARREL_CUDA_FLOAT_GEMV", "1", 1);
    qr_ctx *c = make_ctx(m, QR_DEVICE_CUDA, false);
    unsetenv("QUARREL_CUDA_FLOAT_GEMV");
    return c;
}

/* Greedy tokens from both contexts (already past the prompt) for N_GEN steps: each step's
 * logits within tol (tol <= 0: not checked), tokens equal except at a near tie (the CPU's
 * margin between the two tokens within twice the largest logit difference), which is
 * printed and ends the comparison. Returns the number of identical tokens; *worst grows
 * to the largest error seen. */
static int32_t greedy_compare(const char *path, qr_ctx *cpu, qr_ctx *gpu, int32_t nv, double tol, bool strict_tokens,
                              double *worst) {
    int32_t same = 0;
    for (int32_t g = 0; g < N_GEN; g++) {
        const float *lc = qr_get_logits(cpu, -1), *lg = qr_get_logits(gpu, -1);
        const double e = qr_rel_l2(lg, lc, nv);
        if (tol > 0) CHECK_MSG(e < tol, "%s: generated token %d: relative error %.3g", path, g, e);
        if (e > *worst) *worst = e;
        const qr_token tc = qr_argmax(lc, nv), tg = qr_argmax(lg, nv);
        if (tc != tg) {
            double margin, dmax;
            const bool tie = qr_near_tie(lc, lg, nv, tc, tg, &margin, &dmax);
            if (strict_tokens)
                CHECK_MSG(tie, "%s: generated token %d differs: cpu %d, cuda %d (margin %.3g)", path, g, tc, tg, margin);
            printf("  %s: token %d differs: cpu %d, cuda %d, cpu margin %.3g, max |diff| %.3g\n",
                   strrchr(path, '/') + 1, g, tc, tg, margin, dmax);
            break;
        }
        same++;
        if (!qr_test_decode(cpu, &tc, 1, false) || !qr_test_decode(gpu, &tg, 1, false)) break;
    }
    return same;
}

/* The prompt's logits at every position from both contexts; returns the largest error,
 * each checked against bound. */
static double prompt_compare(const char *path, qr_ctx *cpu, qr_ctx *gpu, const qr_token *prompt, int32_t nv,
                             double bound, const char *what) {
    double worst = 0.0;
    if (!cpu || !gpu || !qr_test_decode(cpu, prompt, N_PROMPT, true) || !qr_test_decode(gpu, prompt, N_PROMPT, true))
        return worst;
    for (int32_t i = 0; i < N_PROMPT; i++) {
        const double e = qr_rel_l2(qr_get_logits(gpu, i), qr_get_logits(cpu, i), nv);
        CHECK_MSG(e < bound, "%s: prompt position %d: relative error %.3g %s", path, i, e, what);
        if (e > worst) worst = e;
    }
    return worst;
}

/* Two comparisons per model:
 *   - the function: CUDA with F32 activations (QUARREL_CUDA_FLOAT_GEMV=1) against the CPU
 *     on `ref_path` (an F32 copy of the weights, where the CPU rounds no activations, or
 *     path itself for float models): < tol at every prompt position and generated step,
 *     greedy tokens identical;
 *   - the default path: CUDA rounding activations to the CPU's 8-bit grid (integer GEMV,
 *     rounded prompts) against the CPU on path itself: < 0.1 per prompt position and per
 *     decode step (the CUDA graph path) until the tokens part; the error and the greedy
 *     agreement are printed. Both sides then round alike, but the
 *     CPU's F16 attention accumulators differ from CUDA's F32 ones by ~1e-3, and 8-bit
 *     rounding turns such differences into whole quantization steps (docs/cuda.md). */
static void compare_model(const char *path, const char *ref_path, double tol) {
    char err[512];
    qr_model *m = qr_model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", path, err);
    if (!m) return;
    qr_model *mr = strcmp(ref_path, path) ? qr_model_load(ref_path, err, sizeof err) : m;
    CHECK_MSG(mr != NULL, "%s: %s", ref_path, err);
    if (!mr) {
        qr_model_free(m);
        return;
    }
    const int32_t nv = qr_model_n_vocab(m);
    qr_token prompt[N_PROMPT];
    qr_test_prompt(nv, N_PROMPT, prompt);
    qr_ctx *cpu = make_ctx(mr, QR_DEVICE_CPU, false), *gpu = make_float_ctx(m);
    double worst = prompt_compare(path, cpu, gpu, prompt, nv, tol, "(F32 activations)");
    const int32_t same = cpu && gpu ? greedy_compare(path, cpu, gpu, nv, tol, true, &worst) : 0;
    qr_ctx_free(cpu);
    qr_ctx_free(gpu);
    qr_ctx *cpu_q = make_ctx(m, QR_DEVICE_CPU, false), *gq = make_ctx(m, QR_DEVICE_CUDA, false);
    double worst_q = prompt_compare(path, cpu_q, gq, prompt, nv, 0.1, "against the CPU on the same file");
    const int32_t same_q = cpu_q && gq ? greedy_compare(path, cpu_q, gq, nv, 0.1, false, &worst_q) : 0;
    qr_ctx_free(cpu_q);
    qr_ctx_free(gq);
    printf("%-30s %-7s F32 act.: %.2e vs CPU%s, greedy %2d/%d | 8-bit act.: %.2e vs CPU on this file, greedy %2d/%d\n",
           strrchr(path, '/') + 1, qr_model_arch(m), worst, mr != m ? " on F32 copy" : "", same, N_GEN, worst_q,
           same_q, N_GEN);
    if (mr != m) qr_model_free(mr);
    qr_model_free(m);
}

/* CUDA on path against the CPU: float models against themselves, quantized ones against
 * an F32 copy of their weights (`quarrel quantize ... F32`) for the F32-activation check. */
static void check_model(const char *path, const char *tmpdir) {
    const char *name = strrchr(path, '/') + 1;
    const char *bin = getenv("QUARREL_BIN");
    if (strstr(name, "F32") || strstr(name, "stories260K") || !bin) {
        compare_model(path, path, 1e-2);
        return;
    }
    char ref[1024], cmd[2600];
    snprintf(ref, sizeof ref, "%s/f32-%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' '%s' F32 >/dev/null 2>&1", bin, path, ref);
    const int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
    if (rc == 0) compare_model(path, ref, 1e-2);
    remove(ref);
}

/* The model at path (NULL, with a CHECK failure, when it does not load) and the shared
 * prompt for its vocabulary. */
static qr_model *load_with_prompt(const char *path, qr_token *prompt, int32_t *nv) {
    char err[512];
    qr_model *m = qr_model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", path, err);
    if (!m) return NULL;
    *nv = qr_model_n_vocab(m);
    qr_test_prompt(*nv, N_PROMPT, prompt);
    return m;
}

/* A row's CUDA logits are the same alone or in any batch (batch_invariant mode). */
static void check_batch_invariance(const char *path) {
    int32_t nv = 0;
    qr_token prompt[N_PROMPT];
    qr_model *m = load_with_prompt(path, prompt, &nv);
    if (!m) return;
    const int32_t sizes[] = {N_PROMPT, 7, 1};
    float *ref = malloc((size_t)N_PROMPT * (size_t)nv * sizeof(float));
    REQUIRE(ref);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        qr_ctx *c = make_ctx(m, QR_DEVICE_CUDA, true);
        if (!c) break;
        int32_t bad = 0;
        for (int32_t i0 = 0; i0 < N_PROMPT; i0 += sizes[k]) {
            const int32_t n = N_PROMPT - i0 < sizes[k] ? N_PROMPT - i0 : sizes[k];
            if (!qr_test_decode(c, prompt + i0, n, true)) break;
            for (int32_t i = 0; i < n; i++) {
                float *r = ref + (size_t)(i0 + i) * (size_t)nv;
                const float *l = qr_get_logits(c, i);
                if (k == 0) memcpy(r, l, (size_t)nv * sizeof(float));
                else bad += memcmp(r, l, (size_t)nv * sizeof(float)) != 0;
            }
        }
        CHECK_MSG(bad == 0, "%s: %d rows differ between batches of %d and %d rows", path, bad, sizes[0], sizes[k]);
        qr_ctx_free(c);
    }
    printf("batch invariance (batches of 40, 7, 1 rows) checked on %s\n", strrchr(path, '/') + 1);
    free(ref);
    qr_model_free(m);
}

/* QR_OUTPUT_ARGMAX rows: no logits, and the argmax of the logits a QR_OUTPUT_LOGITS
 * context computes for the same row (both batch invariant, so bit-identical logits). */
static void check_argmax_outputs(const char *path) {
    char err[512];
    int32_t nv = 0;
    qr_token prompt[N_PROMPT];
    qr_model *m = load_with_prompt(path, prompt, &nv);
    if (!m) return;
    qr_ctx *ref = make_ctx(m, QR_DEVICE_CUDA, true), *c = make_ctx(m, QR_DEVICE_CUDA, true);
    int8_t want[N_PROMPT];
    for (int32_t i = 0; i < N_PROMPT; i++) want[i] = (int8_t)(i % 3); /* none, logits, argmax */
    qr_batch b = {.n_tokens = N_PROMPT, .tokens = prompt, .logits = want};
    REQUIRE(ref && c && qr_test_decode(ref, prompt, N_PROMPT, true) && qr_decode(c, &b, err, sizeof err) == 0);
    int32_t bad = 0;
    for (int32_t i = 0; i < N_PROMPT; i++) {
        const float *l = qr_get_logits(c, i), *lr = qr_get_logits(ref, i);
        const qr_token t = qr_get_argmax(c, i, err, sizeof err);
        if (want[i] == QR_OUTPUT_NONE) bad += l != NULL || t != -1;
        if (want[i] == QR_OUTPUT_LOGITS) bad += !l || memcmp(l, lr, (size_t)nv * sizeof(float)) != 0 || t != qr_argmax(lr, nv);
        if (want[i] == QR_OUTPUT_ARGMAX) bad += l != NULL || t != qr_argmax(lr, nv);
    }
    CHECK_MSG(bad == 0, "%s: %d rows of a mixed-output batch wrong", path, bad);
    const int8_t one_argmax = QR_OUTPUT_ARGMAX;
    int32_t same = 0;
    for (int32_t step = 0; step < 8; step++) { /* single rows: the CUDA graph path */
        const qr_token t = qr_argmax(qr_get_logits(ref, -1), nv);
        qr_batch s1 = {.n_tokens = 1, .tokens = &t, .logits = &one_argmax};
        if (!qr_test_decode(ref, &t, 1, true) || qr_decode(c, &s1, err, sizeof err) != 0) break;
        same += qr_get_argmax(c, -1, err, sizeof err) == qr_argmax(qr_get_logits(ref, -1), nv);
    }
    CHECK_MSG(same == 8, "%s: %d of 8 single-row greedy tokens matched", path, same);
    printf("greedy-token outputs checked on %s\n", strrchr(path, '/') + 1);
    qr_ctx_free(ref);
    qr_ctx_free(c);
    qr_model_free(m);
}

static void synth_models(const char *dir) {
    const char *bin = qr_test_quarrel_bin("synth models");
    if (!bin) return;
    const char *archs[] = {"llama", "mistral", "qwen2", "gemma3"};
    const char *types[] = {"F16", "Q4_K_M", "Q8_0"};
    for (size_t a = 0; a < 4; a++) {
        for (size_t t = 0; t < 3; t++) {
            char path[1024], cmd[2600];
            snprintf(path, sizeof path, "%s/synth-%s-%s.gguf", dir, archs[a], types[t]);
            const bool slide = a == 1 || a == 3;
            snprintf(cmd, sizeof cmd, "'%s' synth --arch %s --type %s %s -o '%s' >/dev/null", bin, archs[a], types[t],
                     slide ? "--window 16" : "", path);
            const int rc = system(cmd);
            CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
            if (rc == 0) check_model(path, dir);
            remove(path);
        }
    }
}

int main(void) {
    qr_error e;
    int n = 0;
    if (qr_cuda_device_count(&n, &e) != QR_OK || n == 0) qr_test_skip("no CUDA device");
    char dir[] = "/tmp/quarrel-cuda-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    const char *shared = qr_test_shared_dir();
    if (shared) {
        char path[1024];
        snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
        if (access(path, R_OK) == 0) {
            check_model(path, dir);
            check_batch_invariance(path);
            check_argmax_outputs(path);
        }
        const char *synth[] = {"F32", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M",
                               "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"};
        for (size_t i = 0; i < sizeof synth / sizeof synth[0]; i++) {
            snprintf(path, sizeof path, "%s/models/synth/tiny-llama-%s.gguf", shared, synth[i]);
            if (access(path, R_OK) == 0) check_model(path, dir);
            else printf("absent: %s\n", path);
        }
    } else {
        printf("SKIPPED part: no shared folder (QUARREL_SHARED)\n");
    }
    synth_models(dir);
    rmdir(dir);
    return qr_test_finish("test_cuda_forward");
}
