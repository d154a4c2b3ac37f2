/* The element of largest magnitude of a warp's block (lane l holds elements l + 32j of
 * v[0..PER)), the first one on ties: what the CPU's Q8_0/Q8_K quantizers take as the
 * block's scale. Both the activation rounding (cuda_ops.cu) and the integer GEMV's
 * activation quantizer (quantize_act.cu) must pick the same element as the CPU. */
#ifndef QR_BACKEND_CUDA_WARP_ABSMAX_H
#define QR_BACKEND_CUDA_WARP_ABSMAX_H

/* amax = |ext|, ext the element itself; every lane gets the result. */
template <int PER>
__device__ __forceinline__ void qr_warp_absmax(const float *v, int lane, float &amax, float &ext) {
    amax = 0.0f, ext = 0.0f;
    int at = 32 * PER;
#pragma unroll
    for (int j = 0; j < PER; j++)
        if (fabsf(v[j]) > amax) amax = fabsf(v[j]), ext = v[j], at = lane + 32 * j;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float a2 = __shfl_xor_sync(0xffffffffu, amax, o), e2 = __shfl_xor_sync(0xffffffffu, ext, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, at, o);
        if (a2 > amax || (a2 == amax && i2 < at)) amax = a2, ext = e2, at = i2;
    }
}

#endif
