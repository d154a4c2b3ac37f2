/* The F16 vector helpers of the decode attention (ggml_vec_dot_f16, ggml_vec_mad_f16,
 * ggml_vec_scale_f16 as the AVX512-FP16 reference build computes them; scalar oracles in
 * cpu_ggml_dots.c) with SIMD:
 *
 *   - blocks of 128 halves: native F16 arithmetic (_ph instructions), as ggml does, only
 *     when the CPU has AVX512-FP16 (has_fp16); otherwise the scalar oracle runs;
 *   - the rest (all of it below 128): F16C conversions around float fmas, or for the dot
 *     a double sum per key that stays sequential; 8 keys run their chains side by side.
 * Bit-identical to the oracles (tests/test_cpu_kernels.c). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

/* Blocks of 128 in F16: 4 x 32 lanes of fma, reduced as the oracle does. */
static _Float16 dot_f16_blocks(const uint16_t *a, const uint16_t *b, int64_t np) {
    __m512h s[4] = {_mm512_setzero_ph(), _mm512_setzero_ph(), _mm512_setzero_ph(), _mm512_setzero_ph()};
    for (int64_t i = 0; i < np; i += 128) {
        for (int j = 0; j < 4; j++) {
            const __m512h x = _mm512_castsi512_ph(_mm512_loadu_si512(a + i + 32 * j));
            const __m512h y = _mm512_castsi512_ph(_mm512_loadu_si512(b + i + 32 * j));
            s[j] = _mm512_fmadd_ph(x, y, s[j]);
        }
    }
    const __m512h t = _mm512_add_ph(_mm512_add_ph(s[0], s[2]), _mm512_add_ph(s[1], s[3]));
    /* 32 -> 16 -> 8 -> 4 lanes, then (0+2) + (1+3): each a native F16 add, one rounding */
    const __m256h u = _mm256_add_ph(_mm512_castph512_ph256(t),
                                    _mm256_castsi256_ph(_mm512_extracti64x4_epi64(_mm512_castph_si512(t), 1)));
    const __m128h v = _mm_add_ph(_mm256_castph256_ph128(u),
                                 _mm_castsi128_ph(_mm256_extracti128_si256(_mm256_castph_si256(u), 1)));
    const __m128h w = _mm_add_ph(v, _mm_castsi128_ph(_mm_srli_si128(_mm_castph_si128(v), 8)));
    const __m128h x = _mm_add_ph(w, _mm_castsi128_ph(_mm_srli_si128(_mm_castph_si128(w), 4)));
    const __m128h y = _mm_add_ph(x, _mm_castsi128_ph(_mm_srli_si128(_mm_castph_si128(x), 2)));
    return _mm_cvtsh_h(y);
}

/* ggml_vec_dot_f16 on AVX512-FP16 (callers check the CPU has it). */
float qr_cpu_dot_f16_fp16(const uint16_t *a, const uint16_t *b, int64_t n) {
    const int64_t np = n & ~(int64_t)127;
    double sum = np > 0 ? (double)(float)dot_f16_blocks(a, b, np) : 0.0;
    for (int64_t i = np; i < n; i++) sum += (double)(_cvtsh_ss(a[i]) * _cvtsh_ss(b[i]));
    return (float)sum;
}

/* The scores of n_keys keys at once: out[c] = dot_f16(q, keys[c], n) in the oracle's order. */
void qr_cpu_dot_f16_keys(const uint16_t *q, const uint16_t *const *keys, int n_keys, int64_t n, bool has_fp16,
                         float *out) {
    const int64_t np = n & ~(int64_t)127;
    if (np > 0 && !has_fp16) {
        for (int c = 0; c < n_keys; c++) out[c] = qr_cpu_dot_f16(q, keys[c], n);
        return;
    }
    double sum[8];
    for (int c = 0; c < n_keys; c++) sum[c] = np > 0 ? (double)(float)dot_f16_blocks(q, keys[c], np) : 0.0;
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
        const __m512h vh = _mm512_set1_ph((_Float16)v);
        for (; i < np; i += 32) {
            const __m512h xv = _mm512_castsi512_ph(_mm512_loadu_si512(x + i));
            const __m512h yv = _mm512_castsi512_ph(_mm512_loadu_si512(y + i));
            _mm512_storeu_si512(y + i, _mm512_castph_si512(_mm512_fmadd_ph(xv, vh, yv)));
        }
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
        const __m512h vh = _mm512_set1_ph((_Float16)v);
        for (; i < np; i += 32) {
            const __m512h yv = _mm512_castsi512_ph(_mm512_loadu_si512(y + i));
            _mm512_storeu_si512(y + i, _mm512_castph_si512(_mm512_mul_ph(yv, vh)));
        }
    }
    const __m512 vf = _mm512_set1_ps(v);
    for (; i + 16 <= n; i += 16) {
        const __m512 yv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(y + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_mul_ps(yv, vf), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) y[i] = _cvtss_sh(_cvtsh_ss(y[i]) * v, _MM_FROUND_TO_NEAREST_INT);
}
