/* Activation quantization for the matmuls with AVX-512, bit-identical to the scalar
 * forms (quantize_q8_block in cpu_matmul.c, quant_q8_k_block in src/quant): products and
 * quotients are the same IEEE operations, rounding to integers is round-half-even
 * (cvtps2dq in the default mode = nearbyintf = ggml's nearest_int for |v| < 2^22). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "quant/quant.h"

static inline float f16_round(float v) { return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }

/* One row of Q8_0 / Q8_1 blocks: d = amax / 127 (fp16), q = rint(x * 127 / amax). */
void qr_cpu_quantize_q8_row_avx512(const float *x, int64_t nb, int8_t *q, float *d, float *s, int32_t *sum) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < nb; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_and_ps(x1, absmask)));
        const float dd = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(id)));
        const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(id)));
        _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
        const int isum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        d[b] = f16_round(dd);
        s[b] = f16_round(dd * (float)isum);
        sum[b] = isum;
    }
}

/* One row of Q8_K blocks; blocks holding inf or NaN take the scalar path (its clamps). */
void qr_cpu_quantize_q8_k_row_avx512(const float *x, int64_t nb, qr_block_q8_k *out) {
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + 256 * i;
        __m512 am = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) am = _mm512_max_ps(am, _mm512_and_ps(_mm512_loadu_ps(xb + 16 * k), absmask));
        const float amax = _mm512_reduce_max_ps(am);
        if (!(amax <= 3.0e38f)) { /* inf or NaN somewhere */
            qr_quantize_row(QR_TYPE_Q8_K, xb, &out[i], 256, NULL);
            continue;
        }
        qr_block_q8_k *b = &out[i];
        memset(b, 0, sizeof *b);
        if (amax == 0.0f) continue;
        float max = 0.0f; /* the first element of largest magnitude, with its sign */
        for (int j = 0; j < 256; j++) {
            if (fabsf(xb[j]) == amax) {
                max = xb[j];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 is = _mm512_set1_ps(iscale);
        for (int k = 0; k < 16; k++) {
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(is, _mm512_loadu_ps(xb + 16 * k)));
            v = _mm512_min_epi32(v, _mm512_set1_epi32(127));
            _mm_storeu_si128((__m128i *)(b->qs + 16 * k), _mm512_cvtepi32_epi8(v));
            b->bsums[k] = (int16_t)_mm512_reduce_add_epi32(v);
        }
        b->d = 1 / iscale;
    }
}
