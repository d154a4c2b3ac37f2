/* Row-wise ops: RMSNorm, RoPE, gated activations. Each follows the arithmetic of ggml's
 * CPU op step by step (ggml/src/ggml-cpu/ops.cpp, vec.h), because their rounding feeds
 * every later layer. They are cheap next to the matmuls and run on the calling thread. */
/* Bit-exactness with llama.cpp needs each a*b+c rounded exactly as written here (fmaf
 * where ggml's build fuses, two roundings elsewhere): no FMA contraction by the compiler.
 * Clang contracts by default unless told; GCC does not in ISO C mode (-std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile the CPU backend as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/fp16.h"

/* ggml_compute_forward_rms_norm: squares summed in double, mean narrowed to float,
 * scale = 1/sqrtf(mean + eps), y = x*scale; the weight multiply is a separate op. */
void qr_cpu_rmsnorm(qr_backend *be, const float *x, const float *w, int64_t n_rows, int64_t dim,
                    float eps, float *y) {
    (void)be;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++) sum += (double)(xr[i] * xr[i]);
        const float mean = (float)(sum / (double)dim);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < dim; i++) yr[i] = xr[i] * scale;
        if (w) {
            for (int64_t i = 0; i < dim; i++) yr[i] = yr[i] * w[i];
        }
    }
}

/* ggml_rope_cache_init without YaRN: theta_i built by repeated float multiplication
 * from pos, divided by the frequency factor, times freq_scale; then cosf/sinf. */
static void rope_cache(int32_t pos, const qr_rope_args *a, float *cache) {
    const float theta_scale = powf(a->base, -2.0f / (float)a->n_rot);
    float theta = (float)pos;
    for (int32_t i0 = 0; i0 < a->n_rot; i0 += 2) {
        const float ff = a->freq_factors ? a->freq_factors[i0 / 2] : 1.0f;
        const float th = a->freq_scale * (theta / ff);
        cache[i0] = cosf(th);
        cache[i0 + 1] = sinf(th);
        theta *= theta_scale;
    }
}

static void rotate(float *x, int32_t n_rot, int32_t n_offset, int32_t step, const float *cache) {
    for (int32_t i0 = 0; i0 < n_rot; i0 += 2) {
        const int32_t ic = i0 / step;
        const float c = cache[i0], s = cache[i0 + 1];
        const float x0 = x[ic], x1 = x[ic + n_offset];
        /* ggml's build contracts these into fused multiply-adds this way. */
        x[ic] = fmaf(x0, c, -(x1 * s));
        x[ic + n_offset] = fmaf(x0, s, x1 * c);
    }
}

void qr_cpu_rope(qr_backend *be, float *x, int64_t n_rows, int64_t n_head, int64_t head_dim,
                 const int32_t *pos, const qr_rope_args *a) {
    (void)be;
    float cache[1024];
    if (a->n_rot > 1024) return; /* the model loader refuses such heads */
    for (int64_t r = 0; r < n_rows; r++) {
        rope_cache(pos[r], a, cache);
        for (int64_t h = 0; h < n_head; h++) {
            float *xh = x + (r * n_head + h) * head_dim;
            if (a->mode == QR_ROPE_MODE_NORM) {
                rotate(xh, a->n_rot, 1, 1, cache);
            } else {
                rotate(xh, a->n_rot, a->n_rot / 2, 2, cache);
            }
        }
    }
}

/* ggml_gelu_f32 as ggml's build compiles it: 1 + a*x*x is contracted into an fma (this
 * changes one table entry, at x = -1.9990234). */
static float gelu_tanh(float x) {
    const float c = 0.79788456080286535587989211986876f, a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(c * x * fmaf(a * x, x, 1.0f)));
}

void qr_cpu_gelu_table_init(uint16_t *table) {
    for (uint32_t i = 0; i < 65536; i++) {
        table[i] = qr_f32_to_f16(gelu_tanh(qr_f16_to_f32((uint16_t)i)));
    }
}

/* ggml_vec_swiglu_f32 (scalar form x/(1+expf(-x)) * g) and ggml_vec_geglu_f32 with
 * GGML_GELU_FP16: x <= -10 -> 0, x >= 10 -> x, else the table entry of f16(x). */
void qr_cpu_glu(qr_backend *be, qr_glu_kind kind, const float *gate, const float *up, float *out,
                int64_t n) {
    const qr_cpu_backend *cb = be->impl;
    if (cb->features.avx512) {
        qr_cpu_glu_avx512(cb, kind, gate, up, out, n);
        return;
    }
    if (kind == QR_GLU_SILU) {
        /* ggml_vec_swiglu_f32 on AVX-512: 16 at a time with ggml_v_expf, the tail
         * with expf. Applied per row by the caller, so the tail matches. */
        const int64_t nv = n & ~(int64_t)15;
        for (int64_t i = 0; i < n; i++) {
            const float x = gate[i];
            const float e = i < nv ? qr_cpu_ggml_expf(-x) : expf(-x);
            out[i] = (x / (1.0f + e)) * up[i];
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const float x = gate[i];
        float g;
        if (x <= -10.0f) {
            g = 0.0f;
        } else if (x >= 10.0f) {
            g = x;
        } else {
            g = qr_f16_to_f32(cb->gelu_f16[qr_f32_to_f16(x)]);
        }
        out[i] = g * up[i];
    }
}
