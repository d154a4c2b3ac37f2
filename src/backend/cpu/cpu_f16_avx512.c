/* The F16 vector helpers of the decode attention (ggml_vec_dot_f16, ggml_vec_mad_f16,
 * ggml_vec_scale_f16 as the AVX512-FP16 reference build computes them; scalar oracles in
 * cpu_ggml_dots.c) with SIMD:
 *
 *   - blocks of 128 halves: native F16 arithmetic (cpu_f16_avx512fp16.c, the only file built
 *     with -mavx512fp16), only when the CPU has AVX512-FP16 (has_fp16); otherwise the
 *     scalar oracle runs;
 *   - the rest (all of it below 128): F16C conversions around float fmas, or for the dot
 *     a double sum per key that stays sequential; 8 keys run their chains side by side.
 * Bit-identical to the oracles (tests/test_cpu_kernels.c). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

/* The scores of n_keys keys at once: out[c] = dot_f16(q, keys[c], n) in the oracle's order. */
void qr_cpu_dot_f16_keys(const uint16_t *q, const uint16_t *const *keys, int n_keys, int64_t n, bool has_fp16,
                         float *out) {
    const int64_t np = n & ~(int64_t)127;
    if (np > 0 && !has_fp16) {
        for (int c = 0; c < n_keys; c++) out[c] = qr_cpu_dot_f16(q, keys[c], n);
        return;
    }
    double sum[8];
    for (int c = 0; c < n_keys; c++) sum[c] = np > 0 ? (double)qr_cpu_dot_f16_blocks_fp16(q, keys[c], np) : 0.0;
    for (int64_t i = np; i < n; i++) {
        const float qi = _cvtsh_ss(q[i]);
        for (int c = 0; c < n_keys; c++) sum[c] += (double)(qi * _cvtsh_ss(keys[c][i]));
    }
    for (int c = 0; c < n_keys; c++) out[c] = (float)sum[c];
}

/* y += x * v (ggml_vec_mad_f16). */
void qr_cpu_vec_mad_f16_fast(int64_t n, uint16_t *y, const uint16_t *x, float v, bool has_fp16) {
    const int64_t np = n & ~(int64_t)127;
    if (np > 0 && !has_fp16) {
        qr_cpu_vec_mad_f16(n, y, x, v);
        return;
    }
    int64_t i = 0;
    if (np > 0) {
        qr_cpu_vec_mad_f16_blocks_fp16(np, y, x, v);
        i = np;
    }
    const __m512 vf = _mm512_set1_ps(v);
    for (; i + 16 <= n; i += 16) {
        const __m512 xv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i)));
        const __m512 yv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_fmadd_ps(xv, vf, yv), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) {
        const float r = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(_cvtsh_ss(x[i])), _mm_set_ss(v), _mm_set_ss(_cvtsh_ss(y[i]))));
        y[i] = _cvtss_sh(r, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* y *= v (ggml_vec_scale_f16). */
void qr_cpu_vec_scale_f16_fast(int64_t n, uint16_t *y, float v, bool has_fp16) {
    const int64_t np = n & ~(int64_t)127;
    if (np > 0 && !has_fp16) {
        qr_cpu_vec_scale_f16(n, y, v);
        return;
    }
    int64_t i = 0;
    if (np > 0) {
        qr_cpu_vec_scale_f16_blocks_fp16(np, y, v);
        i = np;
    }
    const __m512 vf = _mm512_set1_ps(v);
    for (; i + 16 <= n; i += 16) {
        const __m512 yv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_mul_ps(yv, vf), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) y[i] = _cvtss_sh(_cvtsh_ss(y[i]) * v, _MM_FROUND_TO_NEAREST_INT);
}
