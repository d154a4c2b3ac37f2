/* Reference quantization of F32/F16/BF16, the 32-element block formats and Q8_K,
 * following llama.cpp's quantize_row_*_ref (ggml/src/ggml-quants.c) step by step so the
 * bytes match llama-quantize and the gguf package's numpy code exactly.
 *
 * The one deliberate deviation: llama.cpp converts floats to integers with plain C casts,
 * which are undefined for NaN or out-of-range values (reachable only from inf/NaN
 * input). Here every such conversion goes through to_level(), which truncates and clamps
 * (NaN -> the lowest level), matching llama.cpp's x86 behaviour for every finite input
 * and never invoking undefined behaviour. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_internal.h"

/* trunc(v) clamped to [lo, hi]; NaN gives lo. */
static int to_level(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* roundf (half away from zero) clamped to the int8 range; NaN gives 0. */
static int8_t round_i8(float v) {
    if (v != v) return 0;
    return (int8_t)to_level(roundf(v), -128, 127);
}

/* Round half to even through the 1.5*2^23 magic constant (llama.cpp nearest_int; valid
 * for |v| < 2^22, which the Q8_K scaling guarantees). */
static int nearest_int(float v) {
    const float shifted = v + 12582912.f;
    return (int)(qr_f32_bits(shifted) & 0x007fffff) - 0x00400000;
}

void qr_quant_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void qr_quant_f16(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = qr_f32_to_f16(src[i]);
}

void qr_quant_bf16(const float *src, void *dst, int64_t n) {
    uint16_t *b = dst;
    for (int64_t i = 0; i < n; i++) b[i] = qr_f32_to_bf16(src[i]);
}

/* The element of largest magnitude, sign kept (first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* Symmetric 2^bits-level block: d = max / -2^(bits-1), q = trunc(x/d + 2^(bits-1) + 0.5)
 * clamped to the top level. Writes the scale and the levels (0..2^bits-1). */
static uint16_t quant_sym_levels(const float *x, int bits, int q[QR_QK]) {
    const int half = 1 << (bits - 1);
    const float d = signed_absmax(x, QR_QK) / (float)-half;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QR_QK; j++) {
        const float v = x[j] * id; /* its own statement: no FMA contraction */
        q[j] = to_level(v + ((float)half + 0.5f), 0, 2 * half - 1);
    }
    return qr_f32_to_f16(d);
}

/* Asymmetric block: d = (max - min) / (2^bits - 1), q = trunc((x - min)/d + 0.5). */
static void quant_affine_levels(const float *x, int bits, int q[QR_QK], uint16_t *d16,
                                uint16_t *m16) {
    const int top = (1 << bits) - 1;
    float min, max;
    min_max(x, QR_QK, &min, &max);
    const float d = (max - min) / (float)top;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QR_QK; j++) {
        const float v = (x[j] - min) * id;
        q[j] = to_level(v + 0.5f, 0, top);
    }
    *d16 = qr_f32_to_f16(d);
    *m16 = qr_f32_to_f16(min);
}

/* Low nibbles of elements j and j+16 share byte j. */
static void pack_nibbles(const int q[QR_QK], uint8_t qs[QR_QK / 2]) {
    for (int j = 0; j < QR_QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + QR_QK / 2] & 0x0F) << 4);
    }
}

/* Bit 4 of element e goes to bit e of the little-endian u32 qh. */
static void pack_fifth_bits(const int q[QR_QK], uint8_t qh[4]) {
    memset(qh, 0, 4);
    for (int e = 0; e < QR_QK; e++) qh[e / 8] |= (uint8_t)(((q[e] >> 4) & 1) << (e % 8));
}

void qr_quant_q4_0(const float *src, void *dst, int64_t n) {
    qr_block_q4_0 *b = dst;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        b[i].d = quant_sym_levels(src, 4, q);
        pack_nibbles(q, b[i].qs);
    }
}

void qr_quant_q4_1(const float *src, void *dst, int64_t n) {
    qr_block_q4_1 *b = dst;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        quant_affine_levels(src, 4, q, &b[i].d, &b[i].m);
        pack_nibbles(q, b[i].qs);
    }
}

void qr_quant_q5_0(const float *src, void *dst, int64_t n) {
    qr_block_q5_0 *b = dst;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        b[i].d = quant_sym_levels(src, 5, q);
        pack_nibbles(q, b[i].qs);
        pack_fifth_bits(q, b[i].qh);
    }
}

void qr_quant_q5_1(const float *src, void *dst, int64_t n) {
    qr_block_q5_1 *b = dst;
    int q[QR_QK];
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        quant_affine_levels(src, 5, q, &b[i].d, &b[i].m);
        pack_nibbles(q, b[i].qs);
        pack_fifth_bits(q, b[i].qh);
    }
}

/* d = amax/127 (kept in f32 for the rounding, stored as fp16); q = roundf(x/d). Returns
 * the f32 d, which Q8_1's sum needs. */
static float quant_q8_levels(const float *x, int8_t qs[QR_QK]) {
    float amax = 0.0f;
    for (int j = 0; j < QR_QK; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QR_QK; j++) qs[j] = round_i8(x[j] * id);
    return d;
}

void qr_quant_q8_0(const float *src, void *dst, int64_t n) {
    qr_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        b[i].d = qr_f32_to_f16(quant_q8_levels(src, b[i].qs));
    }
}

/* As Q8_0, plus s = fp16(sum(q) * d) with the f32 d, as llama.cpp stores it. */
void qr_quant_q8_1(const float *src, void *dst, int64_t n) {
    qr_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QR_QK; i++, src += QR_QK) {
        const float d = quant_q8_levels(src, b[i].qs);
        int sum = 0;
        for (int j = 0; j < QR_QK; j++) sum += b[i].qs[j];
        b[i].d = qr_f32_to_f16(d);
        b[i].s = qr_f32_to_f16((float)sum * d);
    }
}

/* Q8_K: iscale = -127/max with max the signed extreme, q = min(127, nearest_int(iscale*x))
 * (so the extreme maps to -127 and -128 is reachable by rounding), d = 1/iscale in f32. */
static void quant_q8_k_block(const float *x, qr_block_q8_k *b) {
    const float max = signed_absmax(x, QR_QK_K);
    memset(b, 0, sizeof *b);
    if (max == 0.0f) return; /* all zero: d = 0, as llama.cpp (which leaves bsums unset) */
    const float iscale = -127.f / max;
    for (int j = 0; j < QR_QK_K; j++) {
        const float v = iscale * x[j];
        /* |v| <= 127 up to rounding; inf/NaN elements (only with inf input) clamp. */
        const int q = fabsf(v) <= 128.0f ? nearest_int(v) : (v > 0 ? 127 : -128);
        b->qs[j] = (int8_t)(q < 127 ? q : 127);
    }
    for (int g = 0; g < QR_QK_K / 16; g++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += b->qs[16 * g + l];
        b->bsums[g] = (int16_t)sum;
    }
    b->d = 1 / iscale;
}

void qr_quant_q8_k(const float *src, void *dst, int64_t n) {
    qr_block_q8_k *b = dst;
    for (int64_t i = 0; i < n / QR_QK_K; i++) quant_q8_k_block(src + i * QR_QK_K, &b[i]);
}
