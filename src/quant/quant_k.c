/* Reference quantization of the K-quant super-block formats (256 elements per block),
 * following llama.cpp's quantize_row_q{2..6}_K_ref. llama-quantize without an importance
 * matrix reaches exactly these (quantize_q*_K(..., imatrix=NULL) calls the _ref row
 * function), so matching them bit for bit reproduces its files. Each block first picks a
 * float scale (and min) per sub-block, then quantizes those to 4/6/8 bits against one
 * fp16 super-scale, and finally re-quantizes the values against the scales as stored. */
#include <math.h>
#include <string.h>

/* Bit-exactness with llama.cpp needs every a*b+c rounded twice, as written: no FMA
 * contraction even when the build enables FMA. Clang contracts by default unless told;
 * GCC does not in ISO C mode (-std=c11) but does in GNU mode. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile src/quant as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_internal.h"
#include "quant/quant_k_helpers.h"

/* Packs four 2-bit planes: byte l of each 32-byte group holds elements l, l+32, l+64,
 * l+96 of the 128-element half (Q2_K and Q3_K share this layout). */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QR_QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
        }
    }
}

/* ---- Q2_K --------------------------------------------------------------------------- */

/* 16 sub-blocks of 16: each gets a 4-bit scale and a 4-bit min relative to the block's
 * fp16 d and dmin. */
static void quant_block_q2_k(const float *x, qr_block_q2_k *y) {
    uint8_t L[QR_QK_K], Laux[16];
    float weights[16], mins[QR_QK_K / 16], scales[QR_QK_K / 16];
    const float q4scale = 15.f;
    float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are >= 0 */
    for (int j = 0; j < QR_QK_K / 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = qr_make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                        -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
        float iscale = q4scale / max_scale;
        for (int j = 0; j < QR_QK_K / 16; ++j) {
            y->scales[j] = (uint8_t)qr_nearest_int(iscale * scales[j]);
        }
        y->d = qr_f32_to_f16(max_scale / q4scale);
    } else {
        memset(y->scales, 0, sizeof y->scales);
        y->d = qr_f32_to_f16(0.f);
    }
    if (max_min > 0) {
        float iscale = q4scale / max_min;
        for (int j = 0; j < QR_QK_K / 16; ++j) {
            int l = qr_nearest_int(iscale * mins[j]);
            y->scales[j] |= (uint8_t)(l << 4);
        }
        y->dmin = qr_f32_to_f16(max_min / q4scale);
    } else {
        y->dmin = qr_f32_to_f16(0.f);
    }
    /* Re-quantize against the scales as stored; a zero scale keeps the search's quants. */
    for (int j = 0; j < QR_QK_K / 16; ++j) {
        const float d = qr_f16_to_f32(y->d) * (y->scales[j] & 0xF);
        if (!d) continue;
        const float dm = qr_f16_to_f32(y->dmin) * (y->scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) {
            int l = qr_nearest_int((x[16 * j + ii] + dm) / d);
            L[16 * j + ii] = (uint8_t)qr_clamp_int(l, 0, 3);
        }
    }
    pack_2bit(L, y->qs);
}

void qr_quant_q2_k(const float *src, void *dst, int64_t n) {
    qr_block_q2_k *y = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_block_q2_k(src + i * QR_QK_K, &y[i]);
}

/* ---- Q3_K --------------------------------------------------------------------------- */

/* Stores the signed 6-bit scale of sub-block j (value + 32): low nibbles in bytes 0..7
 * (sub-blocks 8..15 in the high nibble), the top two bits in bytes 8..11. */
static void q3_k_set_scale(uint8_t *scales, int j, int l) {
    if (j < 8) {
        scales[j] = (uint8_t)(l & 0xF);
    } else {
        scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
    }
    l >>= 4;
    scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
}

static int q3_k_get_scale(const uint8_t *scales, int j) {
    int sc = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
    return (sc | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

static void quant_block_q3_k(const float *x, qr_block_q3_k *y) {
    int8_t L[QR_QK_K];
    float scales[QR_QK_K / 16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QR_QK_K / 16; ++j) {
        scales[j] = qr_make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        float scale = fabsf(scales[j]);
        if (scale > amax) {
            amax = scale;
            max_scale = scales[j];
        }
    }
    memset(y->scales, 0, sizeof y->scales);
    if (max_scale) {
        float iscale = -32.f / max_scale;
        for (int j = 0; j < QR_QK_K / 16; ++j) {
            int8_t l = (int8_t)qr_nearest_int(iscale * scales[j]);
            q3_k_set_scale(y->scales, j, qr_clamp_int(l, -32, 31) + 32);
        }
        y->d = qr_f32_to_f16(1 / iscale);
    } else {
        y->d = qr_f32_to_f16(0.f);
    }
    for (int j = 0; j < QR_QK_K / 16; ++j) {
        float d = qr_f16_to_f32(y->d) * q3_k_get_scale(y->scales, j);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = qr_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(qr_clamp_int(l, -4, 3) + 4);
        }
    }
    /* The third bit of element j goes to hmask[j % 32], bit j / 32. */
    memset(y->hmask, 0, sizeof y->hmask);
    uint8_t L2[QR_QK_K];
    for (int j = 0; j < QR_QK_K; ++j) {
        int l = L[j];
        if (l > 3) {
            y->hmask[j % (QR_QK_K / 8)] |= (uint8_t)(1u << (j / (QR_QK_K / 8)));
            l -= 4;
        }
        L2[j] = (uint8_t)l;
    }
    pack_2bit(L2, y->qs);
}

void qr_quant_q3_k(const float *src, void *dst, int64_t n) {
    qr_block_q3_k *y = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_block_q3_k(src + i * QR_QK_K, &y[i]);
}

/* ---- Q4_K and Q5_K ---------------------------------------------------------------- */

/* The part Q4_K and Q5_K share: 8 sub-blocks of 32 with a 6-bit scale and min each,
 * packed into 12 bytes; returns the final quants (0..nmax) in L. */
static void quant_scales_k4(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out,
                            uint16_t *dmin_out, uint8_t scales_out[QR_K_SCALE_SIZE],
                            uint8_t L[QR_QK_K]) {
    uint8_t Laux[32];
    float weights[32], mins[QR_QK_K / 32], scales[QR_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QR_QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = qr_make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                        rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *q = scales_out;
    for (int j = 0; j < QR_QK_K / 32; ++j) {
        /* llama.cpp stores into uint8_t before clamping: a negative value wraps to > 63. */
        uint8_t ls = (uint8_t)qr_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)qr_nearest_int(inv_min * mins[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            q[j] = ls;
            q[j + 4] = lm;
        } else {
            q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            q[j - 4] |= (uint8_t)((ls >> 4) << 6);
            q[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    const uint16_t d = qr_f32_to_f16(max_scale / 63.f);
    const uint16_t dmin = qr_f32_to_f16(max_min / 63.f);
    *d_out = d;
    *dmin_out = dmin;
    for (int j = 0; j < QR_QK_K / 32; ++j) {
        uint8_t sc, m;
        qr_get_scale_min_k4(j, q, &sc, &m);
        const float dd = qr_f16_to_f32(d) * sc;
        if (!dd) continue;
        const float dm = qr_f16_to_f32(dmin) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = qr_nearest_int((x[32 * j + ii] + dm) / dd);
            L[32 * j + ii] = (uint8_t)qr_clamp_int(l, 0, nmax);
        }
    }
}

static void quant_block_q4_k(const float *x, qr_block_q4_k *y) {
    uint8_t L[QR_QK_K];
    quant_scales_k4(x, 15, -1.f, 20, &y->d, &y->dmin, y->scales, L);
    uint8_t *q = y->qs;
    for (int j = 0; j < QR_QK_K; j += 64) {
        for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        q += 32;
    }
}

void qr_quant_q4_k(const float *src, void *dst, int64_t n) {
    qr_block_q4_k *y = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_block_q4_k(src + i * QR_QK_K, &y[i]);
}

static void quant_block_q5_k(const float *x, qr_block_q5_k *y) {
    uint8_t L[QR_QK_K];
    quant_scales_k4(x, 31, -0.5f, 15, &y->d, &y->dmin, y->scales, L);
    /* Low nibbles as in Q4_K; the fifth bit of chunk c goes to qh bits 2c and 2c+1. */
    uint8_t *qh = y->qh, *ql = y->qs;
    memset(qh, 0, sizeof y->qh);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QR_QK_K; n += 64) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            int l2 = L[n + j + 32];
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
        ql += 32;
    }
}

void qr_quant_q5_k(const float *src, void *dst, int64_t n) {
    qr_block_q5_k *y = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_block_q5_k(src + i * QR_QK_K, &y[i]);
}

/* ---- Q6_K --------------------------------------------------------------------------- */

static void quant_block_q6_k(const float *x, qr_block_q6_k *y) {
    int8_t L[QR_QK_K];
    float scales[QR_QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QR_QK_K / 16; ++ib) {
        const float scale = qr_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        scales[ib] = scale;
        const float abs_scale = fabsf(scale);
        if (abs_scale > max_abs_scale) {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    if (max_abs_scale < QR_GROUP_MAX_EPS) {
        memset(y, 0, sizeof *y);
        y->d = qr_f32_to_f16(0.f);
        return;
    }
    float iscale = -128.f / max_scale;
    y->d = qr_f32_to_f16(1 / iscale);
    for (int ib = 0; ib < QR_QK_K / 16; ++ib) {
        int s = qr_nearest_int(iscale * scales[ib]);
        y->scales[ib] = (int8_t)(s < 127 ? s : 127);
    }
    for (int j = 0; j < QR_QK_K / 16; ++j) {
        float d = qr_f16_to_f32(y->d) * y->scales[j];
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) {
            int l = qr_nearest_int(x[16 * j + ii] / d);
            L[16 * j + ii] = (int8_t)(qr_clamp_int(l, -32, 31) + 32);
        }
    }
    /* Low nibbles: ql[l] holds elements l (lo) and l+64 (hi) of each 128-element half,
     * ql[l+32] elements l+32 and l+96; the two high bits of all four go to qh[l]. */
    uint8_t *ql = y->ql, *qh = y->qh;
    for (int j = 0; j < QR_QK_K; j += 128) {
        for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF;
            const uint8_t q2 = L[j + l + 32] & 0xF;
            const uint8_t q3 = L[j + l + 64] & 0xF;
            const uint8_t q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
        ql += 64;
        qh += 32;
    }
}

void qr_quant_q6_k(const float *src, void *dst, int64_t n) {
    qr_block_q6_k *y = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_block_q6_k(src + i * QR_QK_K, &y[i]);
}
