/* Greedy token choice on the device: the first index of each row's largest logit, so a
 * server's greedy streams download one int per row instead of a whole row of logits (1 MiB
 * a row with a 262k vocabulary). The same rule as the sampler's greedy scan
 * (src/engine/sampler.c): -inf never wins, a row of only -inf has no choice, and a NaN or
 * +inf logit is an error the host reports by token id. */
#include <limits.h>
#include <math.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/cuda_ops.h"

namespace {

constexpr int kThreads = 1024;

/* (value, index) with the better one first: the larger value, then the smaller index. */
__device__ __forceinline__ void keep_better(float &v, int &i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
    }
}

/* One CTA per row; each thread scans a strided share, warps then the CTA reduce. */
__global__ void argmax_kernel(const float *__restrict__ x, int64_t n, int32_t *__restrict__ out) {
    __shared__ float s_v[kThreads / 32];
    __shared__ int s_i[kThreads / 32], s_bad[kThreads / 32];
    const float *row = x + (int64_t)blockIdx.x * n;
    float best = -INFINITY;
    int at = INT_MAX, bad = INT_MAX;
    for (int64_t j = threadIdx.x; j < n; j += kThreads) {
        const float v = row[j];
        if (!(v < INFINITY)) bad = min(bad, (int)j); /* NaN or +inf */
        if (v > best) { /* strict: this thread's indices rise, so the first one stays */
            best = v;
            at = (int)j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, at, o);
        bad = min(bad, __shfl_xor_sync(0xffffffffu, bad, o));
        keep_better(best, at, ov, oi);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        s_v[warp] = best;
        s_i[warp] = at;
        s_bad[warp] = bad;
    }
    __syncthreads();
    if (warp != 0) return;
    best = s_v[lane];
    at = s_i[lane];
    bad = s_bad[lane];
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, at, o);
        bad = min(bad, __shfl_xor_sync(0xffffffffu, bad, o));
        keep_better(best, at, ov, oi);
    }
    if (lane == 0) out[blockIdx.x] = bad != INT_MAX ? QR_CUDA_ARGMAX_BAD(bad) : (best == -INFINITY ? -1 : at);
}

} // namespace

extern "C" int qr_cuda_argmax_rows(const float *x, int64_t n_rows, int64_t n, int32_t *out, void *stream,
                                   qr_error *err) {
    if (n_rows < 1) return QR_OK;
    if (n < 1 || n >= INT_MAX / 2) return qr_fail(err, "CUDA argmax: row length %lld out of range", (long long)n);
    if (n_rows > INT_MAX) return qr_fail(err, "CUDA argmax: %lld rows", (long long)n_rows);
    argmax_kernel<<<(unsigned)n_rows, kThreads, 0, (cudaStream_t)stream>>>(x, n, out);
    QR_CUDA_LAUNCHED("argmax_kernel", err);
    return QR_OK;
}
