/* Shared state of the CPU backend: the thread pool and grow-only scratch buffers, so
 * that ops allocate nothing once the first batch of the largest size has run. */
#ifndef QR_BACKEND_CPU_INTERNAL_H
#define QR_BACKEND_CPU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/threadpool.h"
#include "quant/blocks.h"

typedef struct qr_cpu_scratch {
    void *ptr;
    size_t cap;
} qr_cpu_scratch;

/* What the running CPU can execute (cpu_features.c). */
typedef struct qr_cpu_features {
    bool avx2;      /* AVX2 + FMA + F16C */
    bool avx512;    /* F, BW, VL, VNNI */
    bool avx512fp16;
} qr_cpu_features;

typedef struct mm_job mm_job;
typedef bool (*qr_cpu_mm_kernel)(const mm_job *j, int64_t o0, int64_t o1, int tid);

typedef struct qr_cpu_backend {
    qr_threadpool *pool;
    int n_threads;
    qr_cpu_scratch act;        /* matmul activations in their paired format */
    qr_cpu_scratch *per_thread; /* one per thread: a dequantized weight row, attention state */
    uint16_t *gelu_f16;        /* 65536 entries: f16(gelu_tanh(f16 value i)), as ggml's table */
    qr_cpu_kernels kernels;      /* the level chosen at creation */
    qr_cpu_features features;    /* what the CPU can run, capped at that level */
    qr_cpu_mm_kernel mm_fast[2]; /* SIMD matmul kernels, best first; NULL = none */
} qr_cpu_backend;

void qr_cpu_glu_avx512(const qr_cpu_backend *cb, qr_glu_kind kind, const float *gate, const float *up, float *out,
                       int64_t n);

/* Activation quantization with AVX-512 (cpu_quant_act_avx512.c), bit-identical. */
void qr_cpu_quantize_q8_row_avx512(const float *x, int64_t nb, int8_t *q, float *d, float *s, int32_t *sum);
void qr_cpu_quantize_q8_k_row_avx512(const float *x, int64_t nb, qr_block_q8_k *out);

/* Scale and min j (0..7) of a Q4_K / Q5_K super-block's 12 packed 6-bit bytes. */
static inline void qr_cpu_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Fills the GELU table (called once by qr_backend_cpu_create). */
void qr_cpu_gelu_table_init(uint16_t *table);

/* Makes s hold at least n bytes (contents not kept); QR_ERR when memory runs out. */
int qr_cpu_scratch_reserve(qr_cpu_scratch *s, size_t n, qr_error *err);
/* Every thread's scratch at least n bytes. */
int qr_cpu_reserve_per_thread(qr_cpu_backend *cb, size_t n, qr_error *err);

/* Q8_0 / Q8_1 activations as integers plus their scales, one block of 32 at a time. */
typedef struct q8_rows {
    int8_t *q;  /* [n_rows][n_in] */
    float *d;   /* [n_rows][n_in/32]: fp16 scale, widened */
    float *s;   /* [n_rows][n_in/32]: fp16 d*sum(q), widened (Q8_1) */
    int32_t *sum; /* [n_rows][n_in/32]: sum(q), exact (offset corrections of the SIMD kernels) */
} q8_rows;

/* One matmul, as the workers see it (cpu_matmul.c). */
struct mm_job {
    qr_cpu_backend *cb;
    qr_type wtype, vtype;
    const uint8_t *w;
    size_t row_bytes;
    int64_t n_in, n_out, n_rows;
    const float *xf;  /* float activations (F32/F16/BF16/Q8_K paths) */
    const uint16_t *xh; /* F16 activations as bits (F16 weights, decode order) */
    const qr_block_q8_k *xk; /* Q8_K activation blocks (K-quant weights) */
    bool gemm_order;  /* llamafile's tinyBLAS order (prompt batches) instead of ggml_vec_dot */
    bool x_round_f16; /* xf not yet rounded to F16 (the AVX-512 float GEMM rounds as it packs) */
    int64_t n_gemm_rows; /* repacked Q4_K: rows 0..n-1 use the 4-row kernel's order */
    q8_rows xq;       /* integer activations (Q8_0/Q8_1 paths) */
    float *y;
};

/* SIMD kernels: outputs [o0, o1) of every row of the job, each value bit-identical to
 * the scalar kernels (same products, same float order). They return false when they do
 * not handle the job's weight type (the scalar path then runs). */
bool qr_cpu_mm_avx2(const mm_job *j, int64_t o0, int64_t o1, int tid);
bool qr_cpu_mm_q32_avx2(const mm_job *j, int64_t o0, int64_t o1);
bool qr_cpu_mm_kquant_avx2(const mm_job *j, int64_t o0, int64_t o1);
bool qr_cpu_mm_q32_avx512(const mm_job *j, int64_t o0, int64_t o1);
bool qr_cpu_mm_kquant_avx512(const mm_job *j, int64_t o0, int64_t o1);
/* Float weights (F32/F16/BF16). Prompt batches in tinyBLAS order need per-thread scratch
 * of qr_cpu_mm_float_scratch_bytes(n_in) (AVX-512 CPUs only: call it only there). */
size_t qr_cpu_mm_float_scratch_bytes(int64_t n_in);
bool qr_cpu_mm_float_avx512(const mm_job *j, int64_t o0, int64_t o1, bool has_fp16, void *scratch);
/* Prompt batches (cpu_gemm_panel_avx512.c): whole panels of 16 output rows in [o0, o1),
 * using per-thread scratch of qr_cpu_gemm_panel_bytes(n_in); returns the first output
 * row not done (the caller finishes the rest with the row kernels). */
#define QR_CPU_GEMM_MIN_ROWS 8
bool qr_cpu_gemm_panel_supported(qr_type t);
size_t qr_cpu_gemm_panel_bytes(int64_t n_in);
int64_t qr_cpu_gemm_panel_avx512(const mm_job *j, int64_t o0, int64_t o1, void *scratch);
bool qr_cpu_mm_avx512(const mm_job *j, int64_t o0, int64_t o1, int tid);

qr_cpu_features qr_cpu_detect_features(void);

int qr_cpu_matmul(qr_backend *be, qr_type wtype, const void *w, int64_t n_in, int64_t n_out,
                  const float *x, int64_t n_rows, float *y, qr_error *err);
int qr_cpu_get_rows(qr_backend *be, qr_type wtype, const void *w, int64_t n_in, const int32_t *ids,
                    int64_t n_rows, float scale, float *out, qr_error *err);
void qr_cpu_rmsnorm(qr_backend *be, const float *x, const float *w, int64_t n_rows, int64_t dim,
                    float eps, float *y);
void qr_cpu_rope(qr_backend *be, float *x, int64_t n_rows, int64_t n_head, int64_t head_dim,
                 const int32_t *pos, const qr_rope_args *a);
int qr_cpu_attention(qr_backend *be, const qr_attn_args *a, qr_error *err);
void qr_cpu_glu(qr_backend *be, qr_glu_kind kind, const float *gate, const float *up, float *out,
                int64_t n);

/* A thread's transposed K tiles for the tiled attention kernel (per call, per KV head). */
typedef struct qr_cpu_tile_cache {
    int32_t kvh;       /* the KV head the tiles belong to; -1 = none yet */
    int64_t n_tiles;   /* tiles covering cells 0 .. max_cell */
    int64_t max_cell;  /* the largest cell any row of the call attends to */
    float *kt;         /* [n_tiles][head_dim_k][64] */
    uint8_t *built;    /* [n_tiles] */
    float *acc;        /* [head_dim_v] */
} qr_cpu_tile_cache;

void qr_cpu_attend_tiled_avx512(const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0, int64_t c1,
                                qr_cpu_tile_cache *tc, float *out);

/* SIMD forms of the F16 helpers below, bit-identical (cpu_f16_avx512.c; AVX-512 CPUs;
 * blocks of 128 need has_fp16 = AVX512-FP16, else they run the scalar oracle). */
void qr_cpu_dot_f16_keys(const uint16_t *q, const uint16_t *const *keys, int n_keys, int64_t n, bool has_fp16,
                         float *out);
/* AVX512-FP16 only (cpu_f16_avx512fp16.c): ggml_vec_dot_f16; its blocks of 128 (np a
 * multiple of 128); vec_mad / vec_scale on blocks of 128. */
float qr_cpu_dot_f16_fp16(const uint16_t *a, const uint16_t *b, int64_t n);
float qr_cpu_dot_f16_blocks_fp16(const uint16_t *a, const uint16_t *b, int64_t np);
void qr_cpu_vec_mad_f16_blocks_fp16(int64_t np, uint16_t *y, const uint16_t *x, float v);
void qr_cpu_vec_scale_f16_blocks_fp16(int64_t np, uint16_t *y, float v);
void qr_cpu_vec_mad_f16_fast(int64_t n, uint16_t *y, const uint16_t *x, float v, bool has_fp16);
void qr_cpu_vec_scale_f16_fast(int64_t n, uint16_t *y, float v, bool has_fp16);

/* Dot products in llama.cpp's x86 summation orders (cpu_ggml_dots.c): the matmul order
 * (tinyBLAS when n % 16 == 0, else ggml_vec_dot_f32), ggml_vec_dot_f32 itself, and
 * ggml_vec_dot_f16 (F16 inputs, double tail). Fixed per length: batch-invariant. */
float qr_cpu_dot_f32(const float *a, const float *b, int64_t n);
float qr_cpu_dot_f32_gemm(const float *a, const float *b, int64_t n);
float qr_cpu_dot_f32_vec(const float *a, const float *b, int64_t n);
float qr_cpu_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n);
void qr_cpu_vec_mad_f16(int64_t n, uint16_t *y, const uint16_t *x, float v);
void qr_cpu_vec_scale_f16(int64_t n, uint16_t *y, float v);
/* Quantized dots in llama.cpp's x86 orders (cpu_ggml_qdots.c). q/d/m: the weight row's
 * blocks unpacked to integers, scales and mins (m NULL for symmetric formats); qy/dy/sy:
 * the Q8_0/Q8_1 activation row. */
float qr_cpu_vdot_q32(qr_type t, const int8_t *q, const float *d, const float *m, const int8_t *qy,
                      const float *dy, const float *sy, int64_t nb);
/* Q6_K weights x Q8_K activations (qr_block_q8_k[nb]). */
float qr_cpu_vdot_q6_k(const void *wrow, const void *yrow, int64_t nb);
/* Q3_K, Q5_K, IQ4_XS weights x Q8_K activations. */
float qr_cpu_vdot_kq(qr_type t, const void *wrow, const void *yrow, int64_t nb);
/* Q4_K in the order of llama.cpp's repacked (8x8 interleaved) kernels: gemm = the
 * 4-row kernel's order, else the single-row kernel's. */
float qr_cpu_vdot_q4_k_repack(const void *wrow, const void *yrow, int64_t nb, bool gemm);
float qr_cpu_vdot_q2_k_repack(const void *wrow, const void *yrow, int64_t nb, bool gemm);
/* ggml_v_expf: the vectorized exp approximation ggml's SiLU uses. */
float qr_cpu_ggml_expf(float x);

#endif
