/* The GLU activations with AVX-512, bit-identical to qr_cpu_glu's scalar forms:
 *   SiLU: ggml_vec_swiglu_f32 on AVX-512 = 16 lanes of x / (1 + ggml_v_expf(-x)) times
 *         up, the tail (n % 16) with expf;
 *   GELU: ggml's F16 table: x <= -10 -> 0, x >= 10 -> x, else table[f16(x)]. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx512.h"

void qr_cpu_glu_avx512(const qr_cpu_backend *cb, qr_glu_kind kind, const float *gate, const float *up, float *out,
                       int64_t n) {
    const int64_t nv = n & ~(int64_t)15;
    int64_t i = 0;
    if (kind == QR_GLU_SILU) {
        const __m512 one = _mm512_set1_ps(1.0f);
        for (; i < nv; i += 16) {
            const __m512 x = _mm512_loadu_ps(gate + i);
            const __m512 e = qr_cpu_v_expf_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x));
            _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
        }
        for (; i < n; i++) out[i] = (gate[i] / (1.0f + expf(-gate[i]))) * up[i];
        return;
    }
    const __m512 lo = _mm512_set1_ps(-10.0f), hi = _mm512_set1_ps(10.0f);
    for (; i < nv; i += 16) {
        const __m512 x = _mm512_loadu_ps(gate + i);
        const __m512i idx = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        /* 32-bit gather at 2-byte steps: the table has one spare entry past the end */
        const __m512i g32 = _mm512_i32gather_epi32(idx, (const void *)cb->gelu_f16, 2);
        __m512 g = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g32));
        g = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GE_OQ), g, x);
        g = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ), g, _mm512_setzero_ps());
        _mm512_storeu_ps(out + i, _mm512_mul_ps(g, _mm512_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        const float x = gate[i];
        const float g = x <= -10.0f ? 0.0f : x >= 10.0f ? x : _cvtsh_ss(cb->gelu_f16[_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)]);
        out[i] = g * up[i];
    }
}
