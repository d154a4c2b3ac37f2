/* Scalar dequantization of every block format, following llama.cpp's dequantize_row_*
 * (ggml/src/ggml-quants.c) element order and float evaluation order exactly, so the
 * results are bit-identical to both llama.cpp (built without FMA contraction) and the
 * gguf package's numpy code (docs/quantization.md compares the two).
 *
 * Evaluation-order rule used throughout: every scale product is rounded to float before
 * it meets the next operand, e.g. Q4_K computes p = (d*sc) * q; y = p - (dmin*m). The
 * product and the subtraction are separate statements so that no compiler may fuse them
 * into an FMA (C11 allows contraction only inside one expression; GCC in ISO mode never
 * contracts).
 *
 * Blocks are read through the structs of blocks.h, so src must be 2-byte aligned (4 for
 * Q8_K), as GGUF tensor data always is. */
#include <string.h>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_internal.h"

/* IQ4_NL / IQ4_XS non-linear codebook (llama.cpp kvalues_iq4nl). */
static const int8_t IQ4NL_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

void qr_dequant_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void qr_dequant_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = qr_f16_to_f32(h[i]);
}

void qr_dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *b = src;
    for (int64_t i = 0; i < n; i++) dst[i] = qr_bf16_to_f32(b[i]);
}

/* ---- 32-element formats: byte j holds element j (low nibble) and j+16 (high). ---- */

void qr_dequant_q4_0(const void *src, float *dst, int64_t n) {
    const qr_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d);
        for (int j = 0; j < QR_QK / 2; j++) {
            dst[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            dst[j + QR_QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void qr_dequant_q4_1(const void *src, float *dst, int64_t n) {
    const qr_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d), m = qr_f16_to_f32(b[i].m);
        for (int j = 0; j < QR_QK / 2; j++) {
            const float lo = (float)(b[i].qs[j] & 0x0F) * d;
            const float hi = (float)(b[i].qs[j] >> 4) * d;
            dst[j] = lo + m;
            dst[j + QR_QK / 2] = hi + m;
        }
    }
}

/* The fifth bit of element e is bit e of the little-endian u32 qh. */
static uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void unpack_q5(const uint8_t qs[16], uint32_t qh, int q[QR_QK]) {
    for (int j = 0; j < QR_QK / 2; j++) {
        q[j] = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        q[j + QR_QK / 2] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

void qr_dequant_q5_0(const void *src, float *dst, int64_t n) {
    const qr_block_q5_0 *b = src;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d);
        unpack_q5(b[i].qs, load_qh(b[i].qh), q);
        for (int j = 0; j < QR_QK; j++) dst[j] = (float)(q[j] - 16) * d;
    }
}

void qr_dequant_q5_1(const void *src, float *dst, int64_t n) {
    const qr_block_q5_1 *b = src;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d), m = qr_f16_to_f32(b[i].m);
        unpack_q5(b[i].qs, load_qh(b[i].qh), q);
        for (int j = 0; j < QR_QK; j++) {
            const float p = (float)q[j] * d;
            dst[j] = p + m;
        }
    }
}

void qr_dequant_q8_0(const void *src, float *dst, int64_t n) {
    const qr_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d);
        for (int j = 0; j < QR_QK; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

/* The stored sum s is redundant for dequantization (llama.cpp has no Q8_1 dequant; this
 * is the natural x = d*q). */
void qr_dequant_q8_1(const void *src, float *dst, int64_t n) {
    const qr_block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d);
        for (int j = 0; j < QR_QK; j++) dst[j] = (float)b[i].qs[j] * d;
    }
}

void qr_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    const qr_block_iq4_nl *b = src;
    for (int64_t i = 0; i < n / QR_QK; i++, dst += QR_QK) {
        const float d = qr_f16_to_f32(b[i].d);
        for (int j = 0; j < QR_QK / 2; j++) {
            dst[j] = d * (float)IQ4NL_VALUES[b[i].qs[j] & 0x0F];
            dst[j + QR_QK / 2] = d * (float)IQ4NL_VALUES[b[i].qs[j] >> 4];
        }
    }
}

/* ---- 256-element super-blocks ---- */

/* Q2_K: 16 sub-blocks of 16. Half h (128 elements) reads qs[32h .. 32h+31]; shift 2j
 * selects the 32-element group j, whose two 16-element halves are sub-blocks 8h+2j+g. */
static void dequant_q2_k_block(const qr_block_q2_k *b, float *y) {
    const float d = qr_f16_to_f32(b->d), dmin = qr_f16_to_f32(b->dmin);
    for (int s = 0; s < QR_QK_K / 16; s++) {
        const int h = s / 8, j = (s % 8) / 2, g = s % 2;
        const uint8_t *q = b->qs + 32 * h + 16 * g;
        const float dl = d * (float)(b->scales[s] & 0x0F);
        const float ml = dmin * (float)(b->scales[s] >> 4);
        for (int l = 0; l < 16; l++) {
            const float p = dl * (float)((q[l] >> (2 * j)) & 3);
            y[16 * s + l] = p - ml;
        }
    }
}

void qr_dequant_q2_k(const void *src, float *dst, int64_t n) {
    const qr_block_q2_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_q2_k_block(&b[i], dst + i * QR_QK_K);
}

/* Q3_K 6-bit scale s: low 4 bits from a nibble of bytes 0..7, high 2 bits from 8..11. */
static int q3_k_scale(const uint8_t sc[12], int s) {
    const int lo = s < 8 ? sc[s] & 0x0F : sc[s - 8] >> 4;
    const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* Same element order as Q2_K; bit (4h+j) of hmask[16g+l] is the third bit, and a clear
 * bit means "subtract 4". */
static void dequant_q3_k_block(const qr_block_q3_k *b, float *y) {
    const float d = qr_f16_to_f32(b->d);
    for (int s = 0; s < QR_QK_K / 16; s++) {
        const int h = s / 8, j = (s % 8) / 2, g = s % 2;
        const uint8_t *q = b->qs + 32 * h + 16 * g, *hm = b->hmask + 16 * g;
        const float dl = d * (float)q3_k_scale(b->scales, s);
        for (int l = 0; l < 16; l++) {
            const int hbit = (hm[l] >> (4 * h + j)) & 1;
            y[16 * s + l] = dl * (float)(((q[l] >> (2 * j)) & 3) - (hbit ? 0 : 4));
        }
    }
}

void qr_dequant_q3_k(const void *src, float *dst, int64_t n) {
    const qr_block_q3_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_q3_k_block(&b[i], dst + i * QR_QK_K);
}

/* Q4_K/Q5_K 6-bit (scale, min) pair j of 8 (llama.cpp get_scale_min_k4). */
static void k4_scale_min(const uint8_t q[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* One 32-element sub-block: y = (d*sc)*q - (dmin*m), each product rounded first. */
static void dequant_sub32(const uint8_t q[32], const float d, const float dmin, int sc,
                          int m, float *y) {
    const float dl = d * (float)sc, ml = dmin * (float)m;
    for (int l = 0; l < 32; l++) {
        const float p = dl * (float)q[l];
        y[l] = p - ml;
    }
}

/* Chunk c (64 elements) uses qs[32c..32c+31]: low nibbles are sub-block 2c, high 2c+1. */
static void dequant_q4_k_block(const qr_block_q4_k *b, float *y) {
    const float d = qr_f16_to_f32(b->d), dmin = qr_f16_to_f32(b->dmin);
    uint8_t q[32];
    for (int s = 0; s < QR_QK_K / 32; s++) {
        int sc, m;
        k4_scale_min(b->scales, s, &sc, &m);
        const uint8_t *qs = b->qs + 32 * (s / 2);
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)((qs[l] >> (4 * (s % 2))) & 0x0F);
        dequant_sub32(q, d, dmin, sc, m, y + 32 * s);
    }
}

void qr_dequant_q4_k(const void *src, float *dst, int64_t n) {
    const qr_block_q4_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_q4_k_block(&b[i], dst + i * QR_QK_K);
}

/* As Q4_K, plus the fifth bit of sub-block s's element l in bit s of qh[l]. */
static void dequant_q5_k_block(const qr_block_q5_k *b, float *y) {
    const float d = qr_f16_to_f32(b->d), dmin = qr_f16_to_f32(b->dmin);
    uint8_t q[32];
    for (int s = 0; s < QR_QK_K / 32; s++) {
        int sc, m;
        k4_scale_min(b->scales, s, &sc, &m);
        const uint8_t *qs = b->qs + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            const int hbit = (b->qh[l] >> s) & 1;
            q[l] = (uint8_t)(((qs[l] >> (4 * (s % 2))) & 0x0F) + 16 * hbit);
        }
        dequant_sub32(q, d, dmin, sc, m, y + 32 * s);
    }
}

void qr_dequant_q5_k(const void *src, float *dst, int64_t n) {
    const qr_block_q5_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_q5_k_block(&b[i], dst + i * QR_QK_K);
}

/* Q6_K: halves h (128 elements) use ql[64h..], qh[32h..], scales[8h..]. Quarter k
 * (elements 32k..32k+31 of the half) takes nibble k/2 of ql[l + 32(k%2)] and bits 2k of
 * qh[l]; element 32k+l uses scale 2k + l/16. y = (d*sc)*q. */
static void dequant_q6_k_block(const qr_block_q6_k *b, float *y) {
    const float d = qr_f16_to_f32(b->d);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int k = 0; k < 4; k++) {
            for (int l = 0; l < 32; l++) {
                const int lo = (ql[l + 32 * (k % 2)] >> (4 * (k / 2))) & 0x0F;
                const int q = (lo | ((qh[l] >> (2 * k)) & 3) << 4) - 32;
                const float dl = d * (float)b->scales[8 * h + 2 * k + l / 16];
                y[128 * h + 32 * k + l] = dl * (float)q;
            }
        }
    }
}

void qr_dequant_q6_k(const void *src, float *dst, int64_t n) {
    const qr_block_q6_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_q6_k_block(&b[i], dst + i * QR_QK_K);
}

void qr_dequant_q8_k(const void *src, float *dst, int64_t n) {
    const qr_block_q8_k *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++, dst += QR_QK_K) {
        for (int j = 0; j < QR_QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
    }
}

/* IQ4_XS sub-block s of 8: 6-bit scale = nibble s%2 of scales_l[s/2] | 2 bits of
 * scales_h << 4, minus 32; elements as IQ4_NL within the sub-block. */
static void dequant_iq4_xs_block(const qr_block_iq4_xs *b, float *y) {
    const float d = qr_f16_to_f32(b->d);
    for (int s = 0; s < QR_QK_K / 32; s++, y += 32) {
        const int lo = (b->scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
        const int hi = (b->scales_h >> (2 * s)) & 3;
        const float dl = d * (float)((lo | hi << 4) - 32);
        const uint8_t *qs = b->qs + 16 * s;
        for (int j = 0; j < 16; j++) {
            y[j] = dl * (float)IQ4NL_VALUES[qs[j] & 0x0F];
            y[j + 16] = dl * (float)IQ4NL_VALUES[qs[j] >> 4];
        }
    }
}

void qr_dequant_iq4_xs(const void *src, float *dst, int64_t n) {
    const qr_block_iq4_xs *b = src;
    for (int64_t i = 0; i < n / QR_QK_K; i++) dequant_iq4_xs_block(&b[i], dst + i * QR_QK_K);
}
