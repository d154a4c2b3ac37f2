/* Times the CUDA GEMV (y = W x, and W X with 8 columns) per weight format at
 * Llama-3.1-8B shapes and reports achieved bandwidth against the device's measured copy
 * bandwidth (a large device-to-device cudaMemcpy, counting bytes read plus written).
 *
 * Each timing: warm-up, then REPS samples of BATCH launches between two CUDA events;
 * the median sample over BATCH is reported. Launches rotate over enough weight copies
 * (>= 4x the L2 size) that each reads its matrix from device memory, not from L2.
 * Weights are random block bytes with finite fp16 scales (values do not change the
 * work; zeros could). Usage: [QR_BENCH_SHAPE=i] cuda_gemv_bench [FORMAT ...]
 *
 * Formats with the integer GEMV (gemv_q8.h) are timed both ways: "float" is qr_cuda_gemv
 * (F32 activations), "int8" is qr_cuda_gemv_q8 alone on activations quantized once
 * beforehand, and "quant" is qr_cuda_quantize_act alone (the forward pass pays int8 +
 * quant per product; its % of copy counts the int8 GEMV only, with the quantized
 * activation bytes it reads). */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemv_q8.h"
#include "core/fp16.h"

#define REPS 21
#define BATCH 20

#define CK(call)                                                                       \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,               \
                    cudaGetErrorString(e_));                                           \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static uint64_t next_u64(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

/* Device-to-device copy bandwidth in GB/s (read + write bytes). */
static double copy_bandwidth(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) CK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    float t[REPS];
    for (int i = 0; i < REPS; i++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return 2.0 * (double)bytes / (median(t, REPS) * 1e-3) / 1e9;
}

/* Random bytes; fp16 scale fields and F16/BF16 values forced finite. */
static void fill(qr_type t, uint8_t *buf, size_t bytes, int ts, uint64_t *s) {
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        const uint64_t r = next_u64(s);
        memcpy(buf + i, &r, 8);
    }
    uint16_t *h = (uint16_t *)buf;
    if (t == QR_TYPE_F16) {
        for (size_t i = 0; i < bytes / 2; i++) h[i] = (uint16_t)((h[i] & 0x83FF) | 0x3800);
        return;
    }
    if (t == QR_TYPE_BF16) {
        for (size_t i = 0; i < bytes / 2; i++) h[i] = (uint16_t)((h[i] & 0x807F) | 0x3F00);
        return;
    }
    int offs[2] = {0, -1};
    if (t == QR_TYPE_Q4_K || t == QR_TYPE_Q5_K || t == QR_TYPE_Q4_1 || t == QR_TYPE_Q5_1) offs[1] = 2;
    if (t == QR_TYPE_Q6_K) offs[0] = 208;
    if (t == QR_TYPE_Q3_K) offs[0] = 108;
    if (t == QR_TYPE_Q2_K) offs[0] = 80, offs[1] = 82;
    const uint16_t d = qr_f32_to_f16(0.01f);
    for (size_t b = 0; b + (size_t)ts <= bytes; b += (size_t)ts)
        for (int k = 0; k < 2; k++)
            if (offs[k] >= 0) memcpy(buf + b + offs[k], &d, 2);
}

typedef struct {
    int64_t rows, cols;
} shape;

typedef enum { RUN_FLOAT, RUN_INT8, RUN_QUANT } run_kind;

/* One launch of the timed kernel: the float GEMV, the integer GEMV on xq, or the
 * activation quantization of x into xq. */
static int run_once(run_kind kind, const qr_cuda_matrix *w, qr_type t, int64_t cols, const float *x, void *xq,
                    float *y, int ncols, qr_error *err) {
    switch (kind) {
    case RUN_FLOAT: return qr_cuda_gemv(w, x, y, ncols, NULL, err);
    case RUN_INT8: return qr_cuda_gemv_q8(w, xq, y, ncols, false, NULL, err);
    default: return qr_cuda_quantize_act(t, x, cols, ncols, xq, false, NULL, err);
    }
}

/* Median seconds per launch with ncols columns. */
static double time_gemv(run_kind kind, qr_cuda_matrix **w, int nw, qr_type type, int64_t cols, const float *x,
                        void *xq, float *y, int ncols) {
    qr_error err;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    int k = 0;
    for (int i = 0; i < 2 * nw + 5; i++, k++)
        if (run_once(kind, w[k % nw], type, cols, x, xq, y, ncols, &err) != QR_OK) {
            fprintf(stderr, "gemv: %s\n", err.msg);
            exit(1);
        }
    float t[REPS];
    for (int r = 0; r < REPS; r++) {
        CK(cudaEventRecord(e0, 0));
        for (int i = 0; i < BATCH; i++, k++) (void)run_once(kind, w[k % nw], type, cols, x, xq, y, ncols, &err);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return median(t, REPS) * 1e-3 / BATCH;
}

int main(int argc, char **argv) {
    static const qr_type FORMATS[] = {QR_TYPE_Q4_K, QR_TYPE_Q5_K, QR_TYPE_Q6_K, QR_TYPE_Q8_0, QR_TYPE_Q4_0,
                                      QR_TYPE_Q4_1, QR_TYPE_Q5_0, QR_TYPE_Q5_1, QR_TYPE_Q2_K, QR_TYPE_Q3_K,
                                      QR_TYPE_IQ4_NL, QR_TYPE_IQ4_XS, QR_TYPE_F16, QR_TYPE_BF16};
    static const shape SHAPES[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    int count = 0;
    qr_error err;
    if (qr_cuda_device_count(&count, &err) != QR_OK || count == 0) {
        fprintf(stderr, "SKIPPED: no CUDA device\n");
        return 77;
    }
    char name[256];
    if (qr_cuda_device_name(name, sizeof name, &err) != QR_OK) return 1;
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    const double copy_gbs = copy_bandwidth();
    printf("device: %s\n", name);
    printf("device-to-device copy: %.0f GB/s (read + write)\n\n", copy_gbs);
    printf("| format | rows x cols | weight MB | float us (1 col) | %% of copy | int8 us (1 col) | %% of copy | "
           "quant us (1 col) | float us (8 cols) | int8 us (8 cols) | quant us (8 cols) |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    uint64_t s = 0x243F6A8885A308D3ull;
    for (size_t fi = 0; fi < sizeof FORMATS / sizeof FORMATS[0]; fi++) {
        const qr_type t = FORMATS[fi];
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++) want |= qr_type_from_name(argv[a]) == (int)t;
            if (!want) continue;
        }
        const qr_type_traits *tr = qr_type_get_traits(t);
        for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
            /* QR_BENCH_SHAPE=i times only shape i (for profiler runs) */
            const char *only = getenv("QR_BENCH_SHAPE");
            if (only && *only && (size_t)atoi(only) != si) continue;
            const shape sh = SHAPES[si];
            const size_t bytes = qr_type_row_size(tr, sh.cols) * (size_t)sh.rows;
            int nw = (int)((4 * (size_t)p.l2CacheSize + bytes - 1) / bytes);
            if (nw < 2) nw = 2;
            if (nw > 64) nw = 64;
            uint8_t *host = malloc(bytes);
            if (!host) return 1;
            fill(t, host, bytes, tr->type_size, &s);
            qr_cuda_matrix *w[64];
            for (int i = 0; i < nw; i++)
                if (qr_cuda_matrix_upload(t, sh.rows, sh.cols, host, &w[i], &err) != QR_OK) {
                    fprintf(stderr, "upload: %s\n", err.msg);
                    return 1;
                }
            free(host);
            float *hx = malloc((size_t)sh.cols * 8 * sizeof *hx);
            for (int64_t i = 0; i < sh.cols * 8; i++)
                hx[i] = (float)((double)(next_u64(&s) >> 11) / 9007199254740992.0 - 0.5);
            float *x, *y;
            void *xq = NULL;
            qr_cuda_act_layout L;
            const int q8 = qr_cuda_gemv_q8_supported(t) && qr_cuda_act_q8_layout(t, sh.cols, &L, &err) == QR_OK;
            if (q8) CK(cudaMalloc(&xq, L.col_bytes * 8));
            CK(cudaMalloc((void **)&x, (size_t)sh.cols * 8 * 4));
            CK(cudaMalloc((void **)&y, (size_t)sh.rows * 8 * 4));
            CK(cudaMemcpy(x, hx, (size_t)sh.cols * 8 * 4, cudaMemcpyHostToDevice));
            free(hx);
            const double t1 = time_gemv(RUN_FLOAT, w, nw, t, sh.cols, x, xq, y, 1);
            const double t8 = time_gemv(RUN_FLOAT, w, nw, t, sh.cols, x, xq, y, 8);
            const double moved1 = (double)bytes + 4.0 * (double)(sh.cols + sh.rows);
            printf("| %s | %lld x %lld | %.1f | %.1f | %.0f%% |", tr->name, (long long)sh.rows, (long long)sh.cols,
                   (double)bytes / 1e6, t1 * 1e6, 100.0 * moved1 / t1 / 1e9 / copy_gbs);
            if (q8) {
                const double q1 = time_gemv(RUN_QUANT, w, nw, t, sh.cols, x, xq, y, 1);
                const double i1 = time_gemv(RUN_INT8, w, nw, t, sh.cols, x, xq, y, 1);
                const double q8t = time_gemv(RUN_QUANT, w, nw, t, sh.cols, x, xq, y, 8);
                const double i8 = time_gemv(RUN_INT8, w, nw, t, sh.cols, x, xq, y, 8);
                const double moved_i1 = (double)bytes + (double)L.col_bytes + 4.0 * (double)sh.rows;
                printf(" %.1f | %.0f%% | %.1f | %.1f | %.1f | %.1f |\n", i1 * 1e6,
                       100.0 * moved_i1 / i1 / 1e9 / copy_gbs, q1 * 1e6, t8 * 1e6, i8 * 1e6, q8t * 1e6);
            } else {
                printf(" - | - | - | %.1f | - | - |\n", t8 * 1e6);
            }
            fflush(stdout);
            for (int i = 0; i < nw; i++) qr_cuda_matrix_free(w[i]);
            CK(cudaFree(x));
            CK(cudaFree(y));
            if (xq) CK(cudaFree(xq));
        }
    }
    return 0;
}
