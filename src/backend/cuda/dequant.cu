/* Whole-matrix dequantization to F32 or F16 on the device: one thread per element, so
 * writes are coalesced; bit-identical to qr_dequantize_row (dequant_device.h). */
#include <cuda_fp16.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/dequant_device.h"

template <bool TO_F16>
__global__ void qr_dequant_kernel(qr_type t, const uint8_t *__restrict__ w, size_t pitch,
                                  int64_t rows, int64_t cols, int bs, int ts,
                                  void *__restrict__ out) {
    const int64_t n = rows * cols;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = idx / cols, c = idx % cols;
        const uint8_t *blk = w + (size_t)r * pitch + (size_t)(c / bs) * (size_t)ts;
        const float v = qr_deq_elem(t, blk, (int)(c % bs));
        if (TO_F16)
            ((__half *)out)[idx] = __float2half_rn(v);
        else
            ((float *)out)[idx] = v;
    }
}

int qr_cuda_dequant_launch(const qr_cuda_matrix *m, void *dst, bool to_f16, cudaStream_t s,
                           qr_error *err) {
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)m->type);
    const int64_t n = m->rows * m->cols;
    const int threads = 256;
    /* A grid-stride loop: enough blocks to fill the device, capped for huge matrices. */
    const int64_t want = (n + threads - 1) / threads;
    const unsigned grid = (unsigned)(want < 65535 * 8 ? want : 65535 * 8);
    if (to_f16)
        qr_dequant_kernel<true><<<grid, threads, 0, s>>>(m->type, m->data, m->pitch, m->rows,
                                                         m->cols, tr->block_size, tr->type_size, dst);
    else
        qr_dequant_kernel<false><<<grid, threads, 0, s>>>(m->type, m->data, m->pitch, m->rows,
                                                          m->cols, tr->block_size, tr->type_size, dst);
    QR_CUDA_LAUNCHED("qr_dequant_kernel", err);
    return QR_OK;
}
