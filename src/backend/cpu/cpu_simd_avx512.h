/* Inline AVX-512 helpers shared by the *_avx512.c kernels (compiled with AVX-512 flags). */
#ifndef QR_BACKEND_CPU_SIMD_AVX512_H
#define QR_BACKEND_CPU_SIMD_AVX512_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* The scalar kernels' 16-lane reduction (GCC's _mm512_reduce_add_ps order, reduce16 in
 * cpu_ggml_dots.c): halves 8, then 4, then (0+2) + (1+3). */
static inline float qr_reduce16_ps(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 g = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 t = _mm_add_ps(g, _mm_movehl_ps(g, g));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

/* The weight rows of one decode pass (row o .. o + nr - 1 of w, rows of row_bytes), the
 * last one repeated up to n: the kernels then run whole passes and drop the extra lanes. */
static inline void qr_pass_rows(const uint8_t *w, size_t row_bytes, int64_t o, int nr, int n, const uint8_t **rows) {
    for (int k = 0; k < n; k++) rows[k] = w + (size_t)(o + (k < nr ? k : nr - 1)) * row_bytes;
}

/* The lines [p, p + bytes) into L2 (a later decode pass's weights). Measured on the
 * team's VM (Q4_K_M, Q4_0 tg128, 2 threads): prefetching into L1 instead (T0) gave
 * ~8 % less, no software prefetch ~30 % less. */
static inline void qr_prefetch_l2(const uint8_t *p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + off, _MM_HINT_T1);
}

/* ggml_v_expf, AVX-512 form (cpu_attention_avx512.c): tiled attention and SiLU. */
__m512 qr_cpu_v_expf_avx512(__m512 x);

#endif
