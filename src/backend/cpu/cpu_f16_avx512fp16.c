/* The F16-arithmetic parts of the attention and F16 matmul helpers: the only file built
 * with -mavx512fp16, so that no other code can pick up FP16 instructions (CPUs with
 * AVX-512 but without FP16, e.g. Zen 4 and Ice Lake, run the rest). Callers check
 * qr_cpu_features.avx512fp16 first. Orders: see cpu_f16_avx512.c and cpu_ggml_dots.c. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

/* Blocks of 128 in F16: 4 x 32 lanes of fma, reduced as the oracle does. */
float qr_cpu_dot_f16_blocks_fp16(const uint16_t *a, const uint16_t *b, int64_t np) {
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
    return (float)_mm_cvtsh_h(y);
}

/* ggml_vec_dot_f16 on AVX512-FP16 (callers check the CPU has it). */
float qr_cpu_dot_f16_fp16(const uint16_t *a, const uint16_t *b, int64_t n) {
    const int64_t np = n & ~(int64_t)127;
    double sum = np > 0 ? (double)qr_cpu_dot_f16_blocks_fp16(a, b, np) : 0.0;
    for (int64_t i = np; i < n; i++) sum += (double)(_cvtsh_ss(a[i]) * _cvtsh_ss(b[i]));
    return (float)sum;
}

/* y += x * f16(v) on blocks of 128, one F16 rounding per element (native fma). */
void qr_cpu_vec_mad_f16_blocks_fp16(int64_t np, uint16_t *y, const uint16_t *x, float v) {
    const __m512h vh = _mm512_set1_ph((_Float16)v);
    for (int64_t i = 0; i < np; i += 32) {
        const __m512h xv = _mm512_castsi512_ph(_mm512_loadu_si512(x + i));
        const __m512h yv = _mm512_castsi512_ph(_mm512_loadu_si512(y + i));
        _mm512_storeu_si512(y + i, _mm512_castph_si512(_mm512_fmadd_ph(xv, vh, yv)));
    }
}

/* y *= f16(v) on blocks of 128. */
void qr_cpu_vec_scale_f16_blocks_fp16(int64_t np, uint16_t *y, float v) {
    const __m512h vh = _mm512_set1_ph((_Float16)v);
    for (int64_t i = 0; i < np; i += 32) {
        const __m512h yv = _mm512_castsi512_ph(_mm512_loadu_si512(y + i));
        _mm512_storeu_si512(y + i, _mm512_castph_si512(_mm512_mul_ph(yv, vh)));
    }
}
