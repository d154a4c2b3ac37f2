/* ggml's tiled flash-attention order (attend_tiled in cpu_attention.c) with AVX-512:
 * the same float steps per (query row, head), bit for bit, made fast by
 *
 *   - scores 16 cells at a time: each cell's score is still its own sequential fma chain
 *     over the head dimension, the 16 chains run in the lanes of one vector. Keys are
 *     read from a transposed F32 copy of each 64-cell tile ([dim][slot]), built once per
 *     thread and KV head and reused by every query row (and query head) of the group;
 *   - ggml_v_expf on 16 lanes, exactly as ggml's AVX-512 code computes it;
 *   - V accumulated over the tile's slots in slot order, 16 dimensions per vector.
 * Rows are handed to threads head-major so that a thread's rows share its tiles. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx512.h"

/* ggml_v_expf (AVX-512 form); also used by the SiLU in cpu_glu_avx512.c. */
__m512 qr_cpu_v_expf_avx512(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OS);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (d == 0) return res;
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(d, res, alt);
}

static float score(const qr_attn_args *a, float s) {
    if (a->softcap != 0.0f) return a->softcap * tanhf(s * (a->scale / a->softcap));
    return s * a->scale;
}

/* Transposed keys of one tile: kt[d * 64 + slot] = K[64 * tile + slot][d] as F32; cells
 * past max_cell (never attended) are zero. */
static void build_tile(const qr_attn_args *a, int32_t kvh, int64_t tile, int64_t max_cell, float *kt) {
    const int32_t dk = a->head_dim_k;
    for (int s = 0; s < 64; s++) {
        const int64_t cell = 64 * tile + s;
        if (cell > max_cell) {
            for (int32_t d = 0; d < dk; d++) kt[d * 64 + s] = 0.0f;
            continue;
        }
        if (a->kv_f32) {
            const float *kc = (const float *)a->k + cell * a->kv_stride_k + (int64_t)kvh * dk;
            for (int32_t d = 0; d < dk; d++) kt[d * 64 + s] = kc[d];
        } else {
            const uint16_t *kc = (const uint16_t *)a->k + cell * a->kv_stride_k + (int64_t)kvh * dk;
            int32_t d = 0;
            for (; d + 16 <= dk; d += 16) {
                float tmp[16];
                _mm512_storeu_ps(tmp, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kc + d))));
                for (int k = 0; k < 16; k++) kt[(d + k) * 64 + s] = tmp[k];
            }
            for (; d < dk; d++) kt[d * 64 + s] = _cvtsh_ss(kc[d]);
        }
    }
}

/* One (row, head): see attend_tiled in cpu_attention.c for the order being reproduced. */
void qr_cpu_attend_tiled_avx512(const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0, int64_t c1,
                                qr_cpu_tile_cache *tc, float *out) {
    const int32_t dk = a->head_dim_k, dv = a->head_dim_v;
    float *acc = tc->acc;
    memset(acc, 0, (size_t)dv * sizeof *acc);
    float M = -INFINITY, S = 0.0f;
    if (tc->kvh != kvh) {
        memset(tc->built, 0, (size_t)tc->n_tiles);
        tc->kvh = kvh;
    }
    for (int64_t i = c0; i < c1;) {
        const int64_t tile = a->cells[i] / 64;
        float *kt = tc->kt + tile * dk * 64;
        if (!tc->built[tile]) {
            build_tile(a, kvh, tile, tc->max_cell, kt);
            tc->built[tile] = 1;
        }
        /* which slots this row attends to */
        uint64_t used = 0;
        for (; i < c1 && a->cells[i] / 64 == tile; i++) used |= 1ULL << (a->cells[i] % 64);
        __m512 s4[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int32_t d = 0; d < dk; d++) {
            const __m512 qd = _mm512_set1_ps(q[d]);
            for (int g = 0; g < 4; g++) s4[g] = _mm512_fmadd_ps(_mm512_loadu_ps(kt + d * 64 + 16 * g), qd, s4[g]);
        }
        float kq[64];
        for (int g = 0; g < 4; g++) _mm512_storeu_ps(kq + 16 * g, s4[g]);
        float tmax = -INFINITY;
        for (int s = 0; s < 64; s++) {
            if (!((used >> s) & 1)) {
                kq[s] = -INFINITY;
                continue;
            }
            kq[s] = score(a, kq[s]);
            tmax = kq[s] > tmax ? kq[s] : tmax;
        }
        if (tmax == -INFINITY) continue;
        const float m_new = fmaxf(M, tmax);
        if (m_new > M) {
            const float ms = expf(M - m_new);
            for (int32_t d = 0; d < dv; d++) acc[d] *= ms;
            S *= ms;
        }
        M = m_new;
        double sum = 0.0;
        float p[64];
        for (int g = 0; g < 4; g++) {
            const __m512 e = qr_cpu_v_expf_avx512(_mm512_sub_ps(_mm512_loadu_ps(kq + 16 * g), _mm512_set1_ps(M)));
            _mm512_storeu_ps(p + 16 * g, e);
            sum += (double)qr_reduce16_ps(e);
        }
        S = (float)((double)S + sum);
        for (int s = 0; s < 64; s++) {
            if (!((used >> s) & 1)) continue;
            const int64_t cell = 64 * tile + s;
            const __m512 ps = _mm512_set1_ps(p[s]);
            int32_t d = 0;
            if (a->kv_f32) {
                const float *vc = (const float *)a->v + cell * a->kv_stride_v + (int64_t)kvh * dv;
                for (; d + 16 <= dv; d += 16) {
                    _mm512_storeu_ps(acc + d, _mm512_fmadd_ps(_mm512_loadu_ps(vc + d), ps, _mm512_loadu_ps(acc + d)));
                }
                for (; d < dv; d++) acc[d] = fmaf(vc[d], p[s], acc[d]);
            } else {
                const uint16_t *vc = (const uint16_t *)a->v + cell * a->kv_stride_v + (int64_t)kvh * dv;
                for (; d + 16 <= dv; d += 16) {
                    const __m512 vv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vc + d)));
                    _mm512_storeu_ps(acc + d, _mm512_fmadd_ps(vv, ps, _mm512_loadu_ps(acc + d)));
                }
                for (; d < dv; d++) acc[d] = fmaf(_cvtsh_ss(vc[d]), p[s], acc[d]);
            }
        }
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int32_t d = 0; d < dv; d++) out[d] = acc[d] * inv;
}
