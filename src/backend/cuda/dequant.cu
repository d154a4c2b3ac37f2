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

template <bool TO_F16>
void launch(const qr_cuda_matrix *m, const qr_type_traits *tr, void *dst, cudaStream_t s) {
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
