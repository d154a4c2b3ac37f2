/* Whole-model speed on one device, measured like llama-bench: pp (one batch of P random
 * tokens into an empty context) and tg (N tokens decoded one at a time from an empty
 * context), each the median of R runs, plus the decode roofline:
 *   bytes per token = every weight tensor once, except the token embedding (one row;
 *                     all of it when the output shares it) + the KV cache read at the
 *                     mean position of the tg run;
 *   roofline t/s    = device-to-device copy bandwidth (bytes read + written, 1 GiB
 *                     cudaMemcpy, median of 11) / bytes per token.
 * usage: cuda_forward_bench MODEL [-p P] [-n N] [-r R] [--device cpu|cuda] [-s S [-c N_CTX]]
 * Prints one markdown table row (the header with --header).
 * With -s S: a server's decode instead: S sequences, each given a P-token prompt, then
 * N steps of S rows (one per sequence) in batch-invariant mode, each row asking only for
 * its greedy token (QR_OUTPUT_ARGMAX), as `quarrel serve` runs its streams; prints the
 * median step time and the aggregate tokens/s over R runs. -c: the context's cells
 * (default S * (P + N + 16); `quarrel serve -c 16384` for a server's). */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "gguf/types.h"
#include "model/model.h"
#include "quarrel.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static double copy_bandwidth(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0.0;
    cudaMemset(a, 1, bytes);
    double t[11];
    for (int i = 0; i < 13; i++) {
        cudaDeviceSynchronize();
        const double t0 = qr_time_now_s();
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaDeviceSynchronize();
        if (i >= 2) t[i - 2] = qr_time_now_s() - t0;
    }
    cudaFree(a);
    cudaFree(b);
    return 2.0 * (double)bytes / median(t, 11);
}

static double weight_bytes(const qr_weight *w) {
    if (!w->data) return 0.0;
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)w->type);
    return (double)qr_type_row_size(tr, w->ne0) * (double)(w->ne1 > 0 ? w->ne1 : 1);
}

/* Weights a decode step reads (see the header comment). */
static double step_weight_bytes(const qr_model *m) {
    double b = 0.0;
    for (uint32_t il = 0; il < m->desc.hp.n_layer; il++) {
        const qr_layer_weights *L = &m->layers[il];
        const qr_weight *all[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk, &L->bv, &L->bo,
                                  &L->q_norm, &L->k_norm, &L->post_attn_norm, &L->ffn_norm, &L->ffn_gate,
                                  &L->ffn_up, &L->ffn_down, &L->b_gate, &L->b_up, &L->b_down, &L->post_ffw_norm};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b += weight_bytes(all[i]);
    }
    b += weight_bytes(&m->output_norm) + weight_bytes(&m->output_bias) + weight_bytes(&m->output);
    if (m->output.data != m->tok_embd.data) b += weight_bytes(&m->tok_embd) / (double)m->tok_embd.ne1;
    return b;
}

/* The next pseudo-random token below nv (an LCG: every run sees the same tokens). */
static qr_token next_token(uint32_t *s, int32_t nv) {
    *s = *s * 1664525u + 1013904223u;
    return (qr_token)((*s >> 8) % (uint32_t)nv);
}

static int decode(qr_ctx *c, const qr_token *t, int32_t n) {
    char err[512];
    qr_batch b = {.n_tokens = n, .tokens = t};
    if (qr_decode(c, &b, err, sizeof err) != 0) {
        fprintf(stderr, "cuda_forward_bench: %s\n", err);
        return 1;
    }
    return 0;
}

/* -s: N steps of S rows after an S-sequence prefill; the median over R runs. */
static int bench_streams(qr_model *m, const char *name, qr_device dev, int32_t S, int32_t P, int32_t N, int32_t R,
                         int32_t n_ctx) {
    char err[512];
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = n_ctx > 0 ? n_ctx : S * (P + N + 16);
    cp.n_batch = S > P ? S : P;
    cp.n_seq_max = S;
    cp.batch_invariant = true;
    cp.device = dev;
    qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
    if (!c) return fprintf(stderr, "cuda_forward_bench: %s\n", err), 1;
    const int32_t nv = qr_model_n_vocab(m);
    const int32_t n = S > P ? S : P;
    qr_token *tok = malloc((size_t)n * sizeof *tok);
    int32_t *seq = malloc((size_t)n * sizeof *seq);
    int8_t *out = malloc((size_t)S);
    if (!tok || !seq || !out) {
        fprintf(stderr, "cuda_forward_bench: out of memory\n");
        free(tok), free(seq), free(out);
        qr_ctx_free(c);
        return 1;
    }
    double step[64];
    int rc = 0;
    uint32_t rs = 7u;
    for (int r = -1; r < R && !rc; r++) {
        for (int32_t q = 0; q < S && !rc; q++) { /* each sequence's prompt, one batch each */
            qr_ctx_seq_truncate(c, q, 0, NULL, 0);
            for (int32_t i = 0; i < P; i++) {
                tok[i] = next_token(&rs, nv);
                seq[i] = q;
            }
            qr_batch b = {.n_tokens = P, .tokens = tok, .seq_id = seq};
            if (qr_decode(c, &b, err, sizeof err) != 0) rc = 1;
        }
        const double t0 = qr_time_now_s();
        for (int32_t i = 0; i < N && !rc; i++) {
            for (int32_t q = 0; q < S; q++) {
                tok[q] = next_token(&rs, nv);
                seq[q] = q;
                out[q] = QR_OUTPUT_ARGMAX;
            }
            qr_batch b = {.n_tokens = S, .tokens = tok, .seq_id = seq, .logits = out};
            if (qr_decode(c, &b, err, sizeof err) != 0) rc = 1;
            for (int32_t q = 0; q < S && !rc; q++)
                if (qr_get_argmax(c, q, err, sizeof err) < 0) rc = 1;
        }
        if (r >= 0) step[r] = (qr_time_now_s() - t0) / N;
    }
    if (rc) fprintf(stderr, "cuda_forward_bench: %s\n", err);
    else {
        const double ms = median(step, R);
        printf("| %s | %s | %d streams | %.3f ms a step | %.1f t/s |\n", name, dev == QR_DEVICE_CUDA ? "cuda" : "cpu", S,
               1e3 * ms, S / ms);
    }
    free(tok), free(seq), free(out);
    qr_ctx_free(c);
    return rc;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int32_t P = 512, N = 128, R = 3, S = 0, C = 0;
    qr_device dev = QR_DEVICE_CUDA;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--header")) {
            printf("| model | device | weights GB | pp%d t/s | tg%d t/s | bytes/token GB | copy GB/s | roofline t/s | %% of roofline |\n",
                   P, N);
            printf("|---|---|---|---|---|---|---|---|---|\n");
            return 0;
        }
        if (i + 1 < argc && !strcmp(argv[i], "-p")) P = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-n")) N = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r")) R = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-s")) S = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-c")) C = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--device")) dev = strcmp(argv[++i], "cpu") ? QR_DEVICE_CUDA : QR_DEVICE_CPU;
        else path = argv[i];
    }
    if (!path || P < 1 || N < 1 || R < 1 || R > 64 || S < 0) {
        fprintf(stderr, "usage: cuda_forward_bench MODEL [-p P] [-n N] [-r R] [--device cpu|cuda] [-s S [-c N_CTX]] | --header\n");
        return 2;
    }
    char err[512];
    qr_model *m = qr_model_load(path, err, sizeof err);
    if (!m) return fprintf(stderr, "cuda_forward_bench: %s\n", err), 1;
    if (S > 0) {
        const int rc = bench_streams(m, strrchr(path, '/') ? strrchr(path, '/') + 1 : path, dev, S, P, N, R, C);
        qr_model_free(m);
        return rc;
    }
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = P + N + 16;
    cp.n_batch = P;
    cp.device = dev;
    qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
    if (!c) return fprintf(stderr, "cuda_forward_bench: %s\n", err), 1;
    const int32_t nv = qr_model_n_vocab(m);
    qr_token *toks = malloc((size_t)(P + N) * sizeof *toks);
    uint32_t s = 42u;
    for (int32_t i = 0; i < P + N; i++) toks[i] = next_token(&s, nv);
    double pp[64], tg[64];
    int rc = 0;
    for (int r = -1; r < R && !rc; r++) { /* r = -1: warm-up (graph capture, cuBLAS) */
        qr_ctx_seq_truncate(c, 0, 0, NULL, 0);
        double t0 = qr_time_now_s();
        rc |= decode(c, toks, P);
        if (r >= 0) pp[r] = (double)P / (qr_time_now_s() - t0);
        qr_ctx_seq_truncate(c, 0, 0, NULL, 0);
        t0 = qr_time_now_s();
        for (int32_t i = 0; i < N && !rc; i++) rc |= decode(c, toks + P + i, 1);
        if (r >= 0) tg[r] = (double)N / (qr_time_now_s() - t0);
    }
    if (rc) return 1;
    const qr_hparams *hp = &m->desc.hp;
    const double kv = (double)hp->n_layer * hp->n_head_kv * (hp->head_dim_k + hp->head_dim_v) * 2.0 * (N / 2.0);
    const double bytes = step_weight_bytes(m) + kv;
    const double bw = dev == QR_DEVICE_CUDA ? copy_bandwidth() : 0.0;
    const double tgm = median(tg, R), roof = bw > 0 ? bw / bytes : 0.0;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("| %s | %s | %.2f | %.1f | %.1f | %.3f | %.0f | %.1f | %.0f%% |\n", name,
           dev == QR_DEVICE_CUDA ? "cuda" : "cpu", step_weight_bytes(m) / 1e9, median(pp, R), tgm, bytes / 1e9,
           bw / 1e9, roof, roof > 0 ? 100.0 * tgm / roof : 0.0);
    free(toks);
    qr_ctx_free(c);
    qr_model_free(m);
    return 0;
}
