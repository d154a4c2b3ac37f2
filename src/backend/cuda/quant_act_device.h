/* The activation quantizers of the integer GEMV (gemv_q8.h's layout) as warp-level device
 * functions, so that the kernels producing a product's input (RMSNorm, GLU) can write its
 * quantized form themselves instead of leaving it to a separate launch: one launch less
 * per product on the decode path. quantize_act.cu's kernels call the same functions, so
 * the bytes are identical whichever kernel writes them (the CPU's rounding, bit for bit:
 * quantize_act.cu's header says how). */
#ifndef QR_BACKEND_CUDA_QUANT_ACT_DEVICE_H
#define QR_BACKEND_CUDA_QUANT_ACT_DEVICE_H

#include <cuda_fp16.h>

#include "backend/cuda/gemv_q8.h"
#include "backend/cuda/warp_absmax.h"

/* Sum of v over the 16 lanes of each half warp (exact: integers). */
__device__ __forceinline__ int qr_half_warp_sum(int v) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block b (32 elements, lane = element, value v) of column `col` as Q8_0 (q81 false) or
 * Q8_1: d = amax / 127 kept as fp16, q = rint(x * (127 / amax)) (round half to even, as
 * cvtps2dq); Q8_1 adds s = fp16(d * sum(q)) with the unrounded d. */
__device__ __forceinline__ void qr_quant_q8_32_block(float v, int lane, bool q81, uint8_t *col, int64_t b,
                                                     const qr_cuda_act_layout &L) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.f), id = amax != 0.0f ? __fdiv_rn(127.f, amax) : 0.0f;
    const int q = (int)rintf(__fmul_rn(v, id));
    ((int8_t *)col)[b * 32 + lane] = (int8_t)q;
    const int s16 = qr_half_warp_sum(q);
    if (lane % 16 == 0) ((int16_t *)(col + L.bsum_off))[2 * b + lane / 16] = (int16_t)s16;
    const int s32 = s16 + __shfl_xor_sync(0xffffffffu, s16, 16);
    if (lane == 0) {
        ((float *)(col + L.d_off))[b] = __half2float(__float2half_rn(d));
        if (q81) ((float *)(col + L.s_off))[b] = __half2float(__float2half_rn(__fmul_rn(d, (float)s32)));
    }
}

/* Block b (256 elements; lane holds elements lane + 32j in v[j]) of column `col` as Q8_K:
 * iscale = -127 / max with max the first element of largest magnitude, q = min(127,
 * rint(iscale * x)) (beyond +-128 only for inf input: clamped), d = 1 / iscale; an
 * all-zero block has d = 0. */
__device__ __forceinline__ void qr_quant_q8_k_block(const float *v, int lane, uint8_t *col, int64_t b,
                                                    const qr_cuda_act_layout &L) {
    float amax, ext;
    qr_warp_absmax<8>(v, lane, amax, ext);
    const float iscale = ext != 0.0f ? __fdiv_rn(-127.f, ext) : 0.0f;
    int8_t *q = (int8_t *)col + b * 256;
    int16_t *bs = (int16_t *)(col + L.bsum_off) + b * 16;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const float t = __fmul_rn(iscale, v[j]);
        int qi = fabsf(t) <= 128.0f ? (int)rintf(t) : (t > 0 ? 127 : -128);
        qi = qi < 127 ? qi : 127;
        q[lane + 32 * j] = (int8_t)qi;
        const int s = qr_half_warp_sum(qi);
        if (lane % 16 == 0) bs[2 * j + lane / 16] = (int16_t)s;
    }
    if (lane == 0) ((float *)(col + L.d_off))[b] = ext != 0.0f ? __fdiv_rn(1.0f, iscale) : 0.0f;
}

/* Quantizes one column of L.n values at x (already written and visible to the calling
 * warps) into col: warp w of nw takes blocks w, w + nw, ... The whole warp must call. */
__device__ __forceinline__ void qr_quant_column(const float *x, uint8_t *col, const qr_cuda_act_layout &L, int warp,
                                                int nw, int lane) {
    if (L.vt == QR_TYPE_Q8_K) {
        for (int64_t b = warp; b < L.n / 256; b += nw) {
            float v[8];
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = x[b * 256 + lane + 32 * j];
            qr_quant_q8_k_block(v, lane, col, b, L);
        }
    } else {
        for (int64_t b = warp; b < L.n / 32; b += nw) qr_quant_q8_32_block(x[b * 32 + lane], lane, L.vt == QR_TYPE_Q8_1, col, b, L);
    }
}

#endif
