/* Quantized dot products in the exact float order of llama.cpp's x86 CPU kernels
 * (ggml/src/ggml-cpu/arch/x86/quants.c, AVX2 paths; ggml-cpu/quants.c generic paths used
 * by the repacked Q4_0/IQ4_NL layouts). The integer parts are exact in any order; what
 * these functions fix is which partial sums become floats and in what order they meet:
 *
 *   - 32-element formats (AVX2): 8 int32 lanes, lane l = sum of the products of elements
 *     4l..4l+3 of a block; per block acc[l] = fma(dx*dy, float(lane), acc[l]); the 8
 *     lanes are then reduced as hsum_float_8 ((l, l+4) pairs, then (0+2)+(1+3)). Q4_1 and
 *     Q5_1 add a scalar sum of m*s afterwards.
 *   - Q4_0 / IQ4_NL (repacked in llama.cpp; same order as the generic kernel): one int sum
 *     per block, accumulated sequentially.
 *   - Q6_K (AVX2): lane l gathers elements with (e % 32) / 4 == l over the super-block,
 *     minus 32 * (scale * bsum) of sub-blocks 2l, 2l+1; acc[l] = fma(d, float(lane), acc[l]).
 * Each was checked bit for bit against the functions exported by the reference build's
 * libggml-cpu on real model rows. */
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
#include "quant/blocks.h"

static float hsum8(const float v[8]) {
    float r[4];
    for (int i = 0; i < 4; i++) r[i] = v[4 + i] + v[i];
    return (r[0] + r[2]) + (r[1] + r[3]);
}

float qr_cpu_vdot_q32(qr_type t, const int8_t *q, const float *d, const float *m, const int8_t *qy,
                      const float *dy, const float *sy, int64_t nb) {
    if (t == QR_TYPE_Q4_0 || t == QR_TYPE_IQ4_NL) {
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            int isum = 0;
            for (int k = 0; k < 32; k++) isum += q[b * 32 + k] * qy[b * 32 + k];
            /* generic: sumf += sumi*dx*dy (Q4_0) / dx*dy*sumi (IQ4_NL), contracted */
            if (t == QR_TYPE_Q4_0) sum = fmaf((float)isum * d[b], dy[b], sum);
            else sum = fmaf(d[b] * dy[b], (float)isum, sum);
        }
        return sum;
    }
    float acc[8] = {0};
    float summs = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const float dd = d[b] * dy[b];
        for (int l = 0; l < 8; l++) {
            int lane = 0;
            for (int k = 4 * l; k < 4 * l + 4; k++) lane += q[b * 32 + k] * qy[b * 32 + k];
            acc[l] = fmaf(dd, (float)lane, acc[l]);
        }
        if (m) summs = fmaf(m[b], sy[b], summs);
    }
    return m ? hsum8(acc) + summs : hsum8(acc);
}

/* Q6_K: ql[128] qh[64] scales[16] d; element e of half h = 128h + 32k + b. */
float qr_cpu_vdot_q6_k(const void *wrow, const void *yrow, int64_t nb) {
    const qr_block_q6_k *x = wrow;
    const qr_block_q8_k *y = yrow;
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        qr_block_q6_k xb;
        memcpy(&xb, &x[i], sizeof xb);
        const float d = y[i].d * qr_f16_to_f32(xb.d);
        int32_t lane[8] = {0};
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = xb.ql + 64 * h, *qh = xb.qh + 32 * h;
            for (int b = 0; b < 32; b++) {
                const int q0 = (ql[b] & 15) | ((qh[b] & 3) << 4);
                const int q1 = (ql[b + 32] & 15) | (((qh[b] >> 2) & 3) << 4);
                const int q2 = (ql[b] >> 4) | (((qh[b] >> 4) & 3) << 4);
                const int q3 = (ql[b + 32] >> 4) | (((qh[b] >> 6) & 3) << 4);
                const int qv[4] = {q0, q1, q2, q3};
                for (int k = 0; k < 4; k++) {
                    const int e = 128 * h + 32 * k + b;
                    lane[b / 4] += xb.scales[e / 16] * qv[k] * y[i].qs[e];
                }
            }
        }
        for (int l = 0; l < 8; l++) {
            lane[l] -= 32 * (y[i].bsums[2 * l] * xb.scales[2 * l] + y[i].bsums[2 * l + 1] * xb.scales[2 * l + 1]);
            acc[l] = fmaf(d, (float)lane[l], acc[l]);
        }
    }
    return hsum8(acc);
}

/* ---- K-quants whose AVX2 kernels keep 8 int32 lanes over the super-block -------------------
 * Q3_K, Q5_K and IQ4_XS: lane l sums scale * q * q8 over the elements e with
 * (e % 32) / 4 == l; per super-block acc[l] = fma(d, float(lane), acc[l]). Q5_K's mins are
 * a separate scalar sum, fma(dmin, float(sum of m * bsums), summs), added after hsum8. */

static void lanes_fma(const int16_t v[256], const int8_t *q8, float d, float acc[8]) {
    int32_t lane[8] = {0};
    for (int e = 0; e < 256; e++) lane[(e & 31) >> 2] += v[e] * q8[e];
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
}

static void unpack_q3k(const qr_block_q3_k *x, int16_t v[256]) {
    const uint8_t *b = x->scales;
    int sc[16];
    for (int s = 0; s < 16; s++) {
        const int lo = s < 8 ? b[s] & 15 : b[s - 8] >> 4;
        const int hi = (b[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (lo | hi << 4) - 32;
    }
    for (int h = 0; h < 2; h++) {
        for (int j = 0; j < 4; j++) {
            for (int g = 0; g < 2; g++) {
                for (int l = 0; l < 16; l++) {
                    const int e = 128 * h + 32 * j + 16 * g + l;
                    int q = (x->qs[32 * h + 16 * g + l] >> (2 * j)) & 3;
                    if (!((x->hmask[16 * g + l] >> (4 * h + j)) & 1)) q -= 4;
                    v[e] = (int16_t)(sc[8 * h + 2 * j + g] * q);
                }
            }
        }
    }
}

float qr_cpu_vdot_kq(qr_type t, const void *wrow, const void *yrow, int64_t nb) {
    const qr_block_q8_k *y = yrow;
    float acc[8] = {0}, summs = 0.0f;
    int16_t v[256];
    for (int64_t i = 0; i < nb; i++) {
        float d;
        if (t == QR_TYPE_Q3_K) {
            qr_block_q3_k x;
            memcpy(&x, (const qr_block_q3_k *)wrow + i, sizeof x);
            unpack_q3k(&x, v);
            d = y[i].d * qr_f16_to_f32(x.d);
        } else if (t == QR_TYPE_Q5_K) {
            qr_block_q5_k x;
            memcpy(&x, (const qr_block_q5_k *)wrow + i, sizeof x);
            int msum = 0;
            for (int c = 0; c < 4; c++) {
                int sc0, m0, sc1, m1;
                qr_cpu_scale_min_k4(2 * c, x.scales, &sc0, &m0);
                qr_cpu_scale_min_k4(2 * c + 1, x.scales, &sc1, &m1);
                msum += m0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) + m1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
                for (int l = 0; l < 32; l++) {
                    const int lo = (x.qs[32 * c + l] & 15) | (((x.qh[l] >> (2 * c)) & 1) << 4);
                    const int hi = (x.qs[32 * c + l] >> 4) | (((x.qh[l] >> (2 * c + 1)) & 1) << 4);
                    v[64 * c + l] = (int16_t)(sc0 * lo);
                    v[64 * c + 32 + l] = (int16_t)(sc1 * hi);
                }
            }
            d = y[i].d * qr_f16_to_f32(x.d);
            const float dmin = -y[i].d * qr_f16_to_f32(x.dmin);
            summs = fmaf(dmin, (float)msum, summs);
        } else { /* IQ4_XS */
            static const int8_t K[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
            qr_block_iq4_xs x;
            memcpy(&x, (const qr_block_iq4_xs *)wrow + i, sizeof x);
            for (int ib = 0; ib < 8; ib++) {
                const int ls = (((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((x.scales_h >> (2 * ib)) & 3) << 4)) - 32;
                for (int j = 0; j < 16; j++) {
                    v[32 * ib + j] = (int16_t)(ls * K[x.qs[16 * ib + j] & 15]);
                    v[32 * ib + j + 16] = (int16_t)(ls * K[x.qs[16 * ib + j] >> 4]);
                }
            }
            d = qr_f16_to_f32(x.d) * y[i].d;
        }
        lanes_fma(v, y[i].qs, d, acc);
    }
    return t == QR_TYPE_Q5_K ? hsum8(acc) + summs : hsum8(acc);
}

/* Q4_K as llama.cpp's repacked 8x8 kernels compute it on x86 (arch/x86/repack.cpp):
 * ggml_gemv_q4_K_8x8_q8_K (single rows) takes one exact int sum per super-block for the
 * scaled quants and one for the mins, each accumulated as fma(float(sum), dw * d8, acc);
 * ggml_gemm_q4_K_8x8_q8_K (groups of 4 rows) does the same per 64-element chunk. The
 * result is acc - accm. */
float qr_cpu_vdot_q4_k_repack(const void *wrow, const void *yrow, int64_t nb, bool gemm) {
    const qr_block_q8_k *y = yrow;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        qr_block_q4_k x;
        memcpy(&x, (const qr_block_q4_k *)wrow + i, sizeof x);
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) qr_cpu_scale_min_k4(j, x.scales, &sc[j], &m[j]);
        const float dd = qr_f16_to_f32(x.d) * y[i].d, dm = qr_f16_to_f32(x.dmin) * y[i].d;
        int isum = 0, imin = 0;
        for (int c = 0; c < 4; c++) {
            int csum = 0;
            for (int l = 0; l < 32; l++) {
                const uint8_t b = x.qs[32 * c + l];
                csum += sc[2 * c] * (b & 15) * y[i].qs[64 * c + l] + sc[2 * c + 1] * (b >> 4) * y[i].qs[64 * c + 32 + l];
            }
            const int cmin = m[2 * c] * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                             m[2 * c + 1] * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
            if (gemm) {
                acc = fmaf((float)csum, dd, acc);
                accm = fmaf((float)cmin, dm, accm);
            }
            isum += csum;
            imin += cmin;
        }
        if (!gemm) {
            acc = fmaf((float)isum, dd, acc);
            accm = fmaf((float)imin, dm, accm);
        }
    }
    return acc - accm;
}

/* Q2_K as llama.cpp's repacked 8x8 kernels compute it on x86: exact int sums of
 * scale * q * q8 and of min * bsum, turned into floats per super-block (gemv, single
 * rows) or per 128-element half (gemm, groups of 4 rows): fma(float(sum), dw * d8, acc),
 * fma(float(mins), dmin * d8, accm); result acc - accm. */
float qr_cpu_vdot_q2_k_repack(const void *wrow, const void *yrow, int64_t nb, bool gemm) {
    const qr_block_q8_k *y = yrow;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        qr_block_q2_k x;
        memcpy(&x, (const qr_block_q2_k *)wrow + i, sizeof x);
        const float dd = qr_f16_to_f32(x.d) * y[i].d, dm = qr_f16_to_f32(x.dmin) * y[i].d;
        int isum = 0, imin = 0;
        for (int h = 0; h < 2; h++) {
            int hsum = 0, hmin = 0;
            for (int j = 0; j < 4; j++) {
                for (int g = 0; g < 2; g++) {
                    const int sub = 8 * h + 2 * j + g;
                    const int sc = x.scales[sub] & 15, m = x.scales[sub] >> 4;
                    int s = 0;
                    for (int l = 0; l < 16; l++) {
                        const int q = (x.qs[32 * h + 16 * g + l] >> (2 * j)) & 3;
                        s += q * y[i].qs[128 * h + 32 * j + 16 * g + l];
                    }
                    hsum += sc * s;
                    hmin += m * y[i].bsums[sub];
                }
            }
            if (gemm) {
                acc = fmaf((float)hsum, dd, acc);
                accm = fmaf((float)hmin, dm, accm);
            }
            isum += hsum;
            imin += hmin;
        }
        if (!gemm) {
            acc = fmaf((float)isum, dd, acc);
            accm = fmaf((float)imin, dm, accm);
        }
    }
    return acc - accm;
}
