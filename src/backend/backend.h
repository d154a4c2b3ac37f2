/* The backend op table: the few numeric operations the forward pass is written against.
 *
 * The forward pass (src/engine/forward.c) calls only these ops, so a backend is one
 * implementation of this table (src/backend/cpu/ now; CUDA later). Every op works on
 * rows (one row = one token of a batch) and computes each row with arithmetic that does
 * not depend on the other rows: a row's result is the same alone or among 31 others.
 *
 * Numerics follow llama.cpp's CPU backend where they decide the result (MODELS.md
 * section 5): a matmul converts its F32 activations to the format llama.cpp pairs with
 * the weight type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) before the dot products; RMSNorm
 * sums squares in double; attention reads an F16 (or F32) KV cache with an online
 * softmax the way ggml's flash-attention kernel does. */
#ifndef QR_BACKEND_BACKEND_H
#define QR_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/types.h"

typedef enum qr_glu_kind {
    QR_GLU_SILU = 0,  /* out = silu(gate) * up */
    QR_GLU_GELU_TANH, /* out = gelu_tanh(gate) * up, GELU read from ggml's F16 table */
} qr_glu_kind;

typedef enum qr_rope_mode {
    QR_ROPE_MODE_NORM = 0, /* adjacent pairs */
    QR_ROPE_MODE_NEOX,     /* halves */
} qr_rope_mode;

typedef struct qr_rope_args {
    qr_rope_mode mode;
    int32_t n_rot;             /* rotated dims at the start of each head; the rest pass */
    float base;                /* theta_i = pos * base^(-2i/n_rot) */
    float freq_scale;          /* theta *= freq_scale (linear scaling) */
    const float *freq_factors; /* NULL, or n_rot/2 divisors (Llama 3 rope_freqs) */
} qr_rope_args;

/* One attention call: every row attends, head by head, to its own list of KV cells.
 * Cell c of KV head h holds K at k + c*kv_stride_k + h*head_dim_k (elements of the KV
 * type) and V likewise. Query head h reads KV head h / (n_head / n_head_kv). */
typedef struct qr_attn_args {
    const float *q;          /* [n_rows][n_head * head_dim_k] */
    int32_t n_rows, n_head, n_head_kv, head_dim_k, head_dim_v;
    bool kv_f32;             /* cache holds F32 instead of F16 */
    const void *k, *v;
    int64_t kv_stride_k, kv_stride_v; /* elements per cell */
    const int32_t *cells;     /* the cells of row r: cells[cells_off[r] .. cells_off[r+1]) */
    const int64_t *cells_off; /* n_rows + 1 offsets */
    float scale;              /* applied to each score (1 when Q was pre-scaled) */
    float softcap;            /* 0 = none; else s = softcap * tanh(s * scale / softcap) */
    bool tiled;               /* the summation order of ggml's tiled kernel (64+ query
                                 rows in llama.cpp) instead of its per-row kernel */
    float *out;               /* [n_rows][n_head * head_dim_v] */
} qr_attn_args;

typedef struct qr_backend qr_backend;

/* Ops that allocate scratch or read weights return QR_OK or QR_ERR (out of memory, an
 * unsupported weight type); the others cannot fail. */
typedef struct qr_backend_ops {
    const char *name;
    void (*destroy)(qr_backend *be);
    /* y[r][o] = W[o] . x[r] for r < n_rows, o < n_out. W is {n_in, n_out} in wtype,
     * row-major by output. Summation order: see qr_backend.batch_invariant. */
    int (*matmul)(qr_backend *be, qr_type wtype, const void *w, int64_t n_in, int64_t n_out,
                  const float *x, int64_t n_rows, float *y, qr_error *err);
    /* out[r] = row ids[r] of W (dequantized) times scale. */
    int (*get_rows)(qr_backend *be, qr_type wtype, const void *w, int64_t n_in,
                    const int32_t *ids, int64_t n_rows, float scale, float *out, qr_error *err);
    /* y[r] = (x[r] / rms(x[r])) * w, row length dim; y may alias x. */
    void (*rmsnorm)(qr_backend *be, const float *x, const float *w, int64_t n_rows, int64_t dim,
                    float eps, float *y);
    /* Rotates x[r][h] in place for each of n_head heads of head_dim; pos[r] per row. */
    void (*rope)(qr_backend *be, float *x, int64_t n_rows, int64_t n_head, int64_t head_dim,
                 const int32_t *pos, const qr_rope_args *a);
    int (*attention)(qr_backend *be, const qr_attn_args *a, qr_error *err);
    /* out[i] = act(gate[i]) * up[i] for i < n (out may alias gate). */
    void (*glu)(qr_backend *be, qr_glu_kind kind, const float *gate, const float *up, float *out,
                int64_t n);
} qr_backend_ops;

struct qr_backend {
    const qr_backend_ops *ops;
    void *impl;
    /* false (default): a matmul over 2+ rows sums in the order llama.cpp's prompt path
     * uses and a single row in its decode order, so logits match llama.cpp bit for bit
     * on F32/F16 models. true: every row uses the decode order whatever the batch, so a
     * row's result never depends on the batch it is in (what a server promises). */
    bool batch_invariant;
};

/* The CPU backend with n_threads threads (>= 1), using the fastest kernels the CPU runs
 * unless the environment variable QUARREL_CPU_KERNELS (scalar | avx2 | avx512-nofp16 |
 * avx512) caps them. */
int qr_backend_cpu_create(int n_threads, qr_backend **out, qr_error *err);

/* Kernel levels: every level computes bit-identical results (the scalar kernels are the
 * oracle the SIMD ones are tested against); higher levels are faster. */
typedef enum qr_cpu_kernels {
    QR_CPU_KERNELS_AUTO = 0, /* the best the CPU has, capped by QUARREL_CPU_KERNELS */
    QR_CPU_KERNELS_SCALAR,
    QR_CPU_KERNELS_AVX2,     /* AVX2 + FMA + F16C */
    QR_CPU_KERNELS_AVX512_NOFP16, /* AVX-512 F/BW/VL/VNNI without FP16 arithmetic (as on Zen 4) */
    QR_CPU_KERNELS_AVX512,   /* AVX-512 F/BW/VL/VNNI (+ FP16 where present) */
} qr_cpu_kernels;

/* As qr_backend_cpu_create with the kernels capped at `max` (lowered to what the CPU
 * supports). */
int qr_backend_cpu_create_with(int n_threads, qr_cpu_kernels max, qr_backend **out, qr_error *err);
/* The level a backend made by the calls above runs. */
qr_cpu_kernels qr_backend_cpu_kernels(const qr_backend *be);

static inline void qr_backend_destroy(qr_backend *be) {
    if (be) be->ops->destroy(be);
}

/* The activation format llama.cpp's CPU backend converts activations to before a dot
 * with weights of type wtype (its vec_dot_type); QR_TYPE_COUNT when unsupported. */
qr_type qr_backend_vec_dot_type(qr_type wtype);

#endif
