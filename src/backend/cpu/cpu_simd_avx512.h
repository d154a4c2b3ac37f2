/* Inline AVX-512 helpers shared by the *_avx512.c kernels (compiled with AVX-512 flags). */
#ifndef QR_BACKEND_CPU_SIMD_AVX512_H
#define QR_BACKEND_CPU_SIMD_AVX512_H

#include <immintrin.h>

/* The scalar kernels' 16-lane reduction (GCC's _mm512_reduce_add_ps order, reduce16 in
 * cpu_ggml_dots.c): halves 8, then 4, then (0+2) + (1+3). */
static inline float qr_reduce16_ps(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 g = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 t = _mm_add_ps(g, _mm_movehl_ps(g, g));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/* ggml_v_expf, AVX-512 form (cpu_attention_avx512.c): tiled attention and SiLU. */
__m512 qr_cpu_v_expf_avx512(__m512 x);

#endif
