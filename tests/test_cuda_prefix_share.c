/* Prefix sharing on CUDA contexts: the cell copies of qr_ctx_seq_copy (copy-on-write pages,
 * sliding-window ring cells) must be repeated on the device, where the CUDA forward keeps
 * the KV cells (its copy hook, src/backend/cuda/cuda_forward.cu).
 *
 * The independent reference is the recomputation: a fresh CUDA context of the same size
 * (so the same attention split) decodes the whole prompt and generates greedily. In a
 * second context, a sequence continuing a copied prefix, and one continuing a copy of that
 * copy, must give bit-identical logits at every step (batch_invariant: a row's logits do
 * not depend on its batch). A missing or misplaced device copy leaves stale cells, which
 * changes the logits. The prefix ends inside a page, so both continuations copy that page
 * on write.
 *
 * Models: stories260K (paged layers only; with F16 and F32 cells), and `quarrel synth`
 * Gemma 3 (4 layers, every second one global) and Mistral (every layer sliding) with a
 * 16-token window: the ring then has 16 + 32 cells, the sequence is longer than that, and
 * the copied ring cells wrap around it. Exits 77 without a CUDA device; absent models are skipped
 * with a message. QUARREL_CUDA_PREFIX_DEVICE=cpu runs the same checks on the CPU backend
 * (a dry run of the test itself where there is no GPU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda/cuda_backend.h"
#include "quarrel.h"
#include "testing.h"

enum { N_PROMPT = 60, N_GEN = 12, N_CTX = 256, N_BATCH = 32, N_SEQ = 3 };

static bool dry_run_on_cpu(void) {
    const char *d = getenv("QUARREL_CUDA_PREFIX_DEVICE");
    return d && strcmp(d, "cpu") == 0;
}

static qr_ctx *cuda_ctx(qr_model *m, int32_t n_seq, bool kv_f32) {
    qr_ctx_params p = qr_ctx_default_params();
    p.n_ctx = N_CTX;
    p.n_batch = N_BATCH;
    p.n_seq_max = n_seq;
    p.n_threads = 2;
    p.kv_f32 = kv_f32;
    p.batch_invariant = true;
    p.device = dry_run_on_cpu() ? QR_DEVICE_CPU : QR_DEVICE_CUDA;
    char err[512];
    qr_ctx *c = qr_ctx_create(m, &p, err, sizeof err);
    CHECK_MSG(c != NULL, "context: %s", err);
    return c;
}

/* Decodes toks[from..n) into seq (qr_decode cuts it into N_BATCH-row steps), then N_GEN
 * greedy tokens; out gets the last row's logits of each step (N_GEN + 1 rows). */
static bool generate(qr_ctx *c, int32_t nv, int32_t seq, const qr_token *toks, int32_t from, int32_t n, float *out) {
    char err[512];
    int32_t seqs[N_PROMPT];
    for (int32_t i = 0; i < N_PROMPT; i++) seqs[i] = seq;
    qr_batch b = {.n_tokens = n - from, .tokens = toks + from, .seq_id = seqs};
    if (qr_decode(c, &b, err, sizeof err) != 0) {
        CHECK_MSG(false, "decoding the prompt of sequence %d: %s", seq, err);
        return false;
    }
    for (int32_t step = 0; step <= N_GEN; step++) {
        const float *lg = qr_get_logits(c, -1);
        REQUIRE(lg != NULL);
        memcpy(out + (size_t)step * (size_t)nv, lg, (size_t)nv * sizeof(float));
        qr_token best = 0;
        for (int32_t t = 1; t < nv; t++) best = lg[t] > lg[best] ? t : best;
        qr_batch one = {.n_tokens = 1, .tokens = &best, .seq_id = &seq};
        if (step < N_GEN && qr_decode(c, &one, err, sizeof err) != 0) {
            CHECK_MSG(false, "decoding step %d of sequence %d: %s", step, seq, err);
            return false;
        }
    }
    return true;
}

/* The first step whose logits differ, or -1. */
static int32_t first_difference(const float *a, const float *b, int32_t nv) {
    for (int32_t s = 0; s <= N_GEN; s++) {
        if (memcmp(a + (size_t)s * (size_t)nv, b + (size_t)s * (size_t)nv, (size_t)nv * sizeof(float)) != 0) return s;
    }
    return -1;
}

static void check_model(const char *path, bool kv_f32) {
    char err[512];
    qr_model *m = qr_model_load(path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s: %s", path, err);
    if (!m) return;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const int32_t nv = qr_model_n_vocab(m);
    qr_token toks[N_PROMPT];
    for (int32_t i = 0; i < N_PROMPT; i++) toks[i] = (qr_token)((7919u * (uint32_t)i + 13u) % (uint32_t)nv);
    const size_t rows = (size_t)(N_GEN + 1) * (size_t)nv;
    float *ref = malloc(rows * sizeof(float)), *got = malloc(rows * sizeof(float));
    REQUIRE(ref && got);

    qr_ctx *c0 = cuda_ctx(m, 1, kv_f32);
    const bool have_ref = c0 && generate(c0, nv, 0, toks, 0, N_PROMPT, ref);
    qr_ctx_free(c0);
    qr_ctx *c = have_ref ? cuda_ctx(m, N_SEQ, kv_f32) : NULL;
    if (c && generate(c, nv, 0, toks, 0, N_PROMPT, got)) {
        int32_t d = first_difference(ref, got, nv);
        CHECK_MSG(d < 0, "%s: sequence 0 differs from the fresh context at step %d", name, d);
        /* Sequence s reuses N_PROMPT - 1 positions of sequence s - 1 (for s = 2, a copy of
         * a copy) and computes only the last prompt token and the generated ones. */
        for (int32_t s = 1; s < N_SEQ; s++) {
            const int rc = qr_ctx_seq_copy(c, s - 1, s, N_PROMPT - 1, err, sizeof err);
            CHECK_MSG(rc == 0, "%s: qr_ctx_seq_copy(%d -> %d): %s", name, s - 1, s, err);
            if (rc != 0 || !generate(c, nv, s, toks, N_PROMPT - 1, N_PROMPT, got)) break;
            d = first_difference(ref, got, nv);
            CHECK_MSG(d < 0, "%s: sequence %d (shared prefix) differs from the recomputation at step %d", name, s, d);
        }
        CHECK_MSG(qr_ctx_kv_stats(c).n_shared >= 1, "%s: no page is shared", name);
        for (int32_t s = 0; s < N_SEQ; s++) qr_ctx_seq_truncate(c, s, 0, NULL, 0);
        const qr_kv_stats st = qr_ctx_kv_stats(c);
        CHECK_MSG(st.n_free == st.n_pages, "%s: %d of %d pages free after emptying every sequence", name, st.n_free,
                  st.n_pages);
    }
    qr_ctx_free(c);
    printf("prefix sharing on %s checked on %s (%s cells)\n", dry_run_on_cpu() ? "the CPU" : "CUDA", name,
           kv_f32 ? "F32" : "F16");
    free(ref);
    free(got);
    qr_model_free(m);
}

/* A `quarrel synth` model with a 16-token sliding window in dir (extra: more synth flags);
 * false (with a message) when it cannot be made here. */
static bool synth_model(const char *arch, const char *extra, const char *dir, char *path, size_t n) {
    char what[64];
    snprintf(what, sizeof what, "synth %s model", arch);
    const char *bin = qr_test_quarrel_bin(what);
    if (!bin) return false;
    snprintf(path, n, "%s/synth-%s.gguf", dir, arch);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "'%s' synth --arch %s --type F16 --window 16 %s -o '%s' >/dev/null", bin, arch, extra,
             path);
    const int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
    return rc == 0;
}

int main(void) {
    qr_error e;
    int n_dev = 0;
    if (!dry_run_on_cpu() && (qr_cuda_device_count(&n_dev, &e) != QR_OK || n_dev == 0)) qr_test_skip("no CUDA device");
    const char *shared = qr_test_shared_dir();
    char path[1024];
    if (shared) {
        snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared);
        if (access(path, R_OK) == 0) {
            check_model(path, false);
            check_model(path, true);
        } else {
            printf("absent: %s\n", path);
        }
    } else {
        printf("SKIPPED part: no shared folder (QUARREL_SHARED)\n");
    }
    char dir[] = "/tmp/quarrel-cuda-prefix-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    /* Gemma 3's tiny shape has 2 layers, both sliding under its default pattern of 6. */
    const char *archs[][2] = {{"gemma3", "--layers 4 --swa-pattern 2"}, {"mistral", ""}};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        if (!synth_model(archs[i][0], archs[i][1], dir, path, sizeof path)) continue;
        check_model(path, false);
        remove(path);
    }
    rmdir(dir);
    return qr_test_finish("test_cuda_prefix_share");
}
