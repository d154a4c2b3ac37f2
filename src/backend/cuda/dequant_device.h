/* Element-wise device dequantization of every block format in gguf/types.h: element i of
 * one block, bit-identical to the scalar oracle src/quant/dequant.c. Each scale product
 * and each sum is a separate __f*_rn intrinsic, which nvcc never fuses into an FMA, so
 * every rounding step matches the oracle's (docs/quantization.md states its order).
 * Fields are read byte by byte: these paths favour exactness over speed (the fast GEMV
 * kernels in gemv.cu decode whole sub-blocks instead). */
#ifndef QR_BACKEND_CUDA_DEQUANT_DEVICE_H
#define QR_BACKEND_CUDA_DEQUANT_DEVICE_H

#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/cuda_common.h"

/* IQ4_NL / IQ4_XS non-linear codebook (llama.cpp kvalues_iq4nl). */
static __constant__ int8_t qr_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                   1,    13,   25,  38,  53,  69,  89,  113};

__device__ __forceinline__ int qr_iq4nl_value(int q) { return qr_iq4nl_values[q]; }

__device__ __forceinline__ uint32_t qr_rd16(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

__device__ __forceinline__ float qr_f16f(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)qr_rd16(p)));
}

__device__ __forceinline__ float qr_bf16f(uint32_t b) { return __uint_as_float(b << 16); }

/* Q4_K/Q5_K 6-bit (scale, min) pair j of 8 (llama.cpp get_scale_min_k4). */
__device__ __forceinline__ void qr_k4_scale_min(const uint8_t *q, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | (q[j - 4] >> 6) << 4;
        *m = (q[j + 4] >> 4) | (q[j] >> 6) << 4;
    }
}

/* (d*sc)*q - (dmin*m), each product rounded before the subtraction. */
__device__ __forceinline__ float qr_scale_min(float d, float dmin, int sc, int m, int q) {
    const float p = __fmul_rn(__fmul_rn(d, (float)sc), (float)q);
    return __fsub_rn(p, __fmul_rn(dmin, (float)m));
}

__device__ __forceinline__ float qr_deq_q2_k(const uint8_t *b, int i) {
    const int s = i / 16, l = i % 16, h = s / 8, j = (s % 8) / 2, g = s % 2;
    const int q = (b[16 + 32 * h + 16 * g + l] >> (2 * j)) & 3;
    return qr_scale_min(qr_f16f(b + 80), qr_f16f(b + 82), b[s] & 0x0F, b[s] >> 4, q);
}

__device__ __forceinline__ float qr_deq_q3_k(const uint8_t *b, int i) {
    const int s = i / 16, l = i % 16, h = s / 8, j = (s % 8) / 2, g = s % 2;
    const uint8_t *sc = b + 96;
    const int lo = s < 8 ? sc[s] & 0x0F : sc[s - 8] >> 4;
    const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    const int q = (b[32 + 32 * h + 16 * g + l] >> (2 * j)) & 3;
    const int hbit = (b[16 * g + l] >> (4 * h + j)) & 1;
    const float dl = __fmul_rn(qr_f16f(b + 108), (float)((lo | hi << 4) - 32));
    return __fmul_rn(dl, (float)(q - (hbit ? 0 : 4)));
}

__device__ __forceinline__ float qr_deq_q4_k(const uint8_t *b, int i) {
    const int s = i / 32, l = i % 32;
    int sc, m;
    qr_k4_scale_min(b + 4, s, &sc, &m);
    const int q = (b[16 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F;
    return qr_scale_min(qr_f16f(b), qr_f16f(b + 2), sc, m, q);
}

__device__ __forceinline__ float qr_deq_q5_k(const uint8_t *b, int i) {
    const int s = i / 32, l = i % 32;
    int sc, m;
    qr_k4_scale_min(b + 4, s, &sc, &m);
    const int q = ((b[48 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0F) + 16 * ((b[16 + l] >> s) & 1);
    return qr_scale_min(qr_f16f(b), qr_f16f(b + 2), sc, m, q);
}

__device__ __forceinline__ float qr_deq_q6_k(const uint8_t *b, int i) {
    const int h = i / 128, k = (i % 128) / 32, l = i % 32;
    const int lo = (b[64 * h + l + 32 * (k % 2)] >> (4 * (k / 2))) & 0x0F;
    const int q = (lo | ((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4) - 32;
    const float dl = __fmul_rn(qr_f16f(b + 208), (float)(int8_t)b[192 + 8 * h + 2 * k + l / 16]);
    return __fmul_rn(dl, (float)q);
}

__device__ __forceinline__ float qr_deq_iq4_xs(const uint8_t *b, int i) {
    const int s = i / 32, j = i % 32;
    const int lo = (b[4 + s / 2] >> (4 * (s % 2))) & 0x0F;
    const int hi = (int)(qr_rd16(b + 2) >> (2 * s)) & 3;
    const float dl = __fmul_rn(qr_f16f(b), (float)((lo | hi << 4) - 32));
    const uint8_t qb = b[8 + 16 * s + (j % 16)];
    return __fmul_rn(dl, (float)qr_iq4nl_value(j < 16 ? qb & 0x0F : qb >> 4));
}

/* The 32-element formats: element i < 16 is the low nibble of byte i, i >= 16 the high
 * nibble of byte i - 16; the fifth bit of element i is bit i of the u32 qh. */
__device__ __forceinline__ int qr_nib32(const uint8_t *qs, int i) {
    return i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4;
}

__device__ __forceinline__ float qr_deq_small(qr_type t, const uint8_t *b, int i) {
    switch (t) {
    case QR_TYPE_Q4_0: return __fmul_rn((float)(qr_nib32(b + 2, i) - 8), qr_f16f(b));
    case QR_TYPE_Q4_1:
        return __fadd_rn(__fmul_rn((float)qr_nib32(b + 4, i), qr_f16f(b)), qr_f16f(b + 2));
    case QR_TYPE_Q5_0: {
        const uint32_t qh = qr_rd16(b + 2) | qr_rd16(b + 4) << 16;
        const int q = qr_nib32(b + 6, i) | (int)((qh >> i) & 1) << 4;
        return __fmul_rn((float)(q - 16), qr_f16f(b));
    }
    case QR_TYPE_Q5_1: {
        const uint32_t qh = qr_rd16(b + 4) | qr_rd16(b + 6) << 16;
        const int q = qr_nib32(b + 8, i) | (int)((qh >> i) & 1) << 4;
        return __fadd_rn(__fmul_rn((float)q, qr_f16f(b)), qr_f16f(b + 2));
    }
    case QR_TYPE_Q8_0: return __fmul_rn((float)(int8_t)b[2 + i], qr_f16f(b));
    case QR_TYPE_Q8_1: return __fmul_rn((float)(int8_t)b[4 + i], qr_f16f(b));
    default: /* IQ4_NL */
        return __fmul_rn(qr_f16f(b), (float)qr_iq4nl_value(qr_nib32(b + 2, i)));
    }
}

/* Element i (< block size) of the block at b. */
__device__ __forceinline__ float qr_deq_elem(qr_type t, const uint8_t *b, int i) {
    switch (t) {
    case QR_TYPE_F32: {
        const uint8_t *p = b + 4 * i;
        return __uint_as_float(qr_rd16(p) | qr_rd16(p + 2) << 16);
    }
    case QR_TYPE_F16: return qr_f16f(b + 2 * i);
    case QR_TYPE_BF16: return qr_bf16f(qr_rd16(b + 2 * i));
    case QR_TYPE_Q2_K: return qr_deq_q2_k(b, i);
    case QR_TYPE_Q3_K: return qr_deq_q3_k(b, i);
    case QR_TYPE_Q4_K: return qr_deq_q4_k(b, i);
    case QR_TYPE_Q5_K: return qr_deq_q5_k(b, i);
    case QR_TYPE_Q6_K: return qr_deq_q6_k(b, i);
    case QR_TYPE_Q8_K: {
        const float d = __uint_as_float(qr_rd16(b) | qr_rd16(b + 2) << 16);
        return __fmul_rn(d, (float)(int8_t)b[4 + i]);
    }
    case QR_TYPE_IQ4_XS: return qr_deq_iq4_xs(b, i);
    default: return qr_deq_small(t, b, i);
    }
}

#endif
