/* Whole-matrix dequantization to F32 or F16 on the device: one thread per element, so
 * writes are coalesced; bit-identical to qr_dequantize_row (dequant_device.h). */
#include <cuda_fp16.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/dequant_device.h"

namespace {

/* CTA (256-column slice, rows r = blockIdx.y, +gridDim.y, ...): one element per thread,
 * 32-bit index arithmetic. T fixes the format at compile time for the formats that matter
 * for speed (the GEMM dequantizes every weight of a prompt batch), so qr_deq_elem's switch
 * folds away; QR_TYPE_COUNT keeps the run-time switch for the others. */
template <qr_type T, bool TO_F16>
__global__ void qr_dequant_kernel(qr_type t, const uint8_t *__restrict__ w, size_t pitch, int64_t rows, int cols,
                                  int bs, int ts, void *__restrict__ out) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const qr_type type = T == QR_TYPE_COUNT ? t : T;
    const int off = (c / bs) * ts, i = c % bs;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const float v = qr_deq_elem(type, w + (size_t)r * pitch + off, i);
        const int64_t idx = r * cols + c;
        if (TO_F16)
            ((__half *)out)[idx] = __float2half_rn(v);
        else
            ((float *)out)[idx] = v;
    }
}

/* The block formats (32+ elements per block): eight consecutive elements per thread, all
 * in one block, so the block's scales are decoded once for eight values (the compiler
 * sees i8 * 8 + j and folds the per-element index math) and the F16 results leave in one
 * 16-byte store; one element per thread spent its time in that decoding (615 GB/s on an
 * H100 for Q4_K). cols is a multiple of 8. */
template <qr_type T, bool TO_F16>
__global__ void qr_dequant8_kernel(qr_type t, const uint8_t *__restrict__ w, size_t pitch, int64_t rows, int cols,
                                   int bs, int ts, void *__restrict__ out) {
    const int c8 = blockIdx.x * blockDim.x + threadIdx.x;
    if (8 * c8 >= cols) return;
    const qr_type type = T == QR_TYPE_COUNT ? t : T;
    const int blocks8 = bs / 8, off = (c8 / blocks8) * ts, i8 = c8 % blocks8;
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const uint8_t *blk = w + (size_t)r * pitch + off;
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = qr_deq_elem(type, blk, i8 * 8 + j);
        const int64_t idx = r * cols + 8 * c8;
        if (TO_F16) {
            uint4 h;
            uint32_t *hw = &h.x;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const __half2 p = __halves2half2(__float2half_rn(v[2 * j]), __float2half_rn(v[2 * j + 1]));
                hw[j] = *(const uint32_t *)&p;
            }
            *(uint4 *)((__half *)out + idx) = h;
        } else {
            float4 *o = (float4 *)((float *)out + idx);
            o[0] = make_float4(v[0], v[1], v[2], v[3]);
            o[1] = make_float4(v[4], v[5], v[6], v[7]);
        }
    }
}

template <bool TO_F16>
void launch(const qr_cuda_matrix *m, const qr_type_traits *tr, void *dst, cudaStream_t s) {
    if (tr->block_size >= 32 && tr->block_size % 8 == 0 && m->cols % 8 == 0) {
        const dim3 g((unsigned)((m->cols / 8 + 255) / 256), (unsigned)(m->rows < 65535 ? m->rows : 65535));
        const int cols = (int)m->cols;
#define QR_DEQ8(T) qr_dequant8_kernel<T, TO_F16><<<g, 256, 0, s>>>(m->type, m->data, m->pitch, m->rows, cols, \
                                                                    tr->block_size, tr->type_size, dst)
        switch (m->type) {
        case QR_TYPE_Q4_0: QR_DEQ8(QR_TYPE_Q4_0); break;
        case QR_TYPE_Q8_0: QR_DEQ8(QR_TYPE_Q8_0); break;
        case QR_TYPE_Q4_K: QR_DEQ8(QR_TYPE_Q4_K); break;
        case QR_TYPE_Q5_K: QR_DEQ8(QR_TYPE_Q5_K); break;
        case QR_TYPE_Q6_K: QR_DEQ8(QR_TYPE_Q6_K); break;
        default: QR_DEQ8(QR_TYPE_COUNT); break;
        }
#undef QR_DEQ8
        return;
    }
    const dim3 g((unsigned)((m->cols + 255) / 256), (unsigned)(m->rows < 65535 ? m->rows : 65535));
    const int cols = (int)m->cols;
#define QR_DEQ(T) qr_dequant_kernel<T, TO_F16><<<g, 256, 0, s>>>(m->type, m->data, m->pitch, m->rows, cols, \
                                                                  tr->block_size, tr->type_size, dst)
    switch (m->type) {
    case QR_TYPE_Q4_0: QR_DEQ(QR_TYPE_Q4_0); break;
    case QR_TYPE_Q8_0: QR_DEQ(QR_TYPE_Q8_0); break;
    case QR_TYPE_Q4_K: QR_DEQ(QR_TYPE_Q4_K); break;
    case QR_TYPE_Q5_K: QR_DEQ(QR_TYPE_Q5_K); break;
    case QR_TYPE_Q6_K: QR_DEQ(QR_TYPE_Q6_K); break;
    default: QR_DEQ(QR_TYPE_COUNT); break;
    }
#undef QR_DEQ
}

} // namespace

int qr_cuda_dequant_launch(const qr_cuda_matrix *m, void *dst, bool to_f16, cudaStream_t s, qr_error *err) {
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)m->type);
    if (m->cols > INT32_MAX) return qr_fail(err, "qr_cuda_dequantize: %lld columns", (long long)m->cols);
    if (to_f16)
        launch<true>(m, tr, dst, s);
    else
        launch<false>(m, tr, dst, s);
    QR_CUDA_LAUNCHED("qr_dequant_kernel", err);
    return QR_OK;
}
