/* Activation quantization for the integer GEMV (gemv_q8.h): the CPU backend's rounding
 * (src/backend/cpu/cpu_matmul.c quantize_q8_block, ggml's x86 quantize_row_q8_0/q8_1;
 * src/quant quant_q8_k_block) reproduced operation for operation, so the device's int8
 * values and scales are the CPU's bit for bit. Divisions and products use the _rn
 * intrinsics so that no compiler flag or contraction can change a rounding. */
#include <cuda_fp16.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/gemv_q8.h"
#include "backend/cuda/pdl.h"
#include "backend/cuda/quant_act_device.h"

extern "C" {
#include "backend/backend.h"
}

namespace {

constexpr int kWarps = 4;

size_t align16(size_t v) { return (v + 15) & ~(size_t)15; }

/* One warp per (column, 32-element block): lane = element (qr_quant_q8_32_block). */
template <bool Q81>
__global__ void quant_q8_32_kernel(const float *__restrict__ x, int64_t n, int64_t n_blocks,
                                   qr_cuda_act_layout L, uint8_t *__restrict__ out) {
    qr_pdl_begin(); /* pdl.h: the kernel before is done; the GEMV reading out may start fetching weights */
    const int64_t gb = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (gb >= n_blocks) return;
    const int64_t nb = n / 32, c = gb / nb, b = gb % nb;
    qr_quant_q8_32_block(x[c * n + b * 32 + lane], lane, Q81, out + (size_t)c * L.col_bytes, b, L);
}

/* One warp per (column, 256-element block), elements lane + 32j (qr_quant_q8_k_block). */
__global__ void quant_q8_k_kernel(const float *__restrict__ x, int64_t n, int64_t n_blocks, qr_cuda_act_layout L,
                                  uint8_t *__restrict__ out) {
    qr_pdl_begin();
    const int64_t gb = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (gb >= n_blocks) return;
    const int64_t nb = n / 256, c = gb / nb, b = gb % nb;
    const float *xb = x + c * n + b * 256;
    float v[8];
#pragma unroll
    for (int j = 0; j < 8; j++) v[j] = xb[lane + 32 * j];
    qr_quant_q8_k_block(v, lane, out + (size_t)c * L.col_bytes, b, L);
}

} // namespace

extern "C" bool qr_cuda_gemv_q8_supported(qr_type t) {
    switch (t) {
    case QR_TYPE_Q4_0: case QR_TYPE_Q4_1: case QR_TYPE_Q5_0: case QR_TYPE_Q5_1: case QR_TYPE_Q8_0:
    case QR_TYPE_Q2_K: case QR_TYPE_Q3_K: case QR_TYPE_Q4_K: case QR_TYPE_Q5_K: case QR_TYPE_Q6_K:
    case QR_TYPE_IQ4_NL: case QR_TYPE_IQ4_XS:
        return true;
    default: return false;
    }
}

extern "C" int qr_cuda_act_q8_layout(qr_type wtype, int64_t n, qr_cuda_act_layout *out, qr_error *err) {
    if (!qr_cuda_gemv_q8_supported(wtype))
        return qr_fail(err, "integer GEMV: no integer path for %s weights", qr_type_name(wtype));
    qr_cuda_act_layout L;
    L.vt = qr_backend_vec_dot_type(wtype);
    L.block = L.vt == QR_TYPE_Q8_K ? 256 : 32;
    if (n <= 0 || n % L.block != 0)
        return qr_fail(err, "integer GEMV: %lld activations are not whole %s blocks", (long long)n,
                       qr_type_name(L.vt));
    L.n = n;
    L.d_off = align16((size_t)n);
    L.bsum_off = align16(L.d_off + (size_t)(n / L.block) * sizeof(float));
    const size_t end = align16(L.bsum_off + (size_t)(n / 16) * sizeof(int16_t));
    L.s_off = L.vt == QR_TYPE_Q8_1 ? end : 0;
    L.col_bytes = L.vt == QR_TYPE_Q8_1 ? align16(end + (size_t)(n / 32) * sizeof(float)) : end;
    *out = L;
    return QR_OK;
}

extern "C" int qr_cuda_quantize_act(qr_type wtype, const float *x_dev, int64_t n, int64_t ncols, void *act_dev,
                                    bool pdl, void *stream, qr_error *err) {
    qr_cuda_act_layout L;
    if (qr_cuda_act_q8_layout(wtype, n, &L, err) != QR_OK) return QR_ERR;
    if (ncols < 1) return QR_OK;
    if ((uintptr_t)act_dev % 16 != 0) return qr_fail(err, "quantize_act: the activation buffer is not 16-byte aligned");
    const int64_t nblk = n / L.block * ncols;
    const unsigned grid = (unsigned)((nblk + kWarps - 1) / kWarps);
    cudaStream_t s = (cudaStream_t)stream;
    uint8_t *out = (uint8_t *)act_dev;
    const dim3 g(grid), b(32 * kWarps);
    switch (L.vt) {
    case QR_TYPE_Q8_0: (void)qr_launch(pdl, quant_q8_32_kernel<false>, g, b, s, x_dev, n, nblk, L, out); break;
    case QR_TYPE_Q8_1: (void)qr_launch(pdl, quant_q8_32_kernel<true>, g, b, s, x_dev, n, nblk, L, out); break;
    default: (void)qr_launch(pdl, quant_q8_k_kernel, g, b, s, x_dev, n, nblk, L, out); break;
    }
    QR_CUDA_LAUNCHED("the activation quantization kernel", err);
    return QR_OK;
}
