/* Shared helpers of the CUDA backend's .cu files: error checks that turn a CUDA status
 * into a qr_error (the library never aborts), and the C headers it needs, included with
 * C linkage because the .cu files are C++. */
#ifndef QR_BACKEND_CUDA_COMMON_H
#define QR_BACKEND_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "core/error.h"
#include "gguf/types.h"
}

/* Returns QR_ERR from the enclosing function, naming the call and CUDA's message. */
#define QR_CUDA_TRY(call, err)                                                          \
    do {                                                                               \
        cudaError_t qr_cuda_status_ = (call);                                          \
        if (qr_cuda_status_ != cudaSuccess)                                            \
            return qr_fail((err), "%s:%d: %s: %s", __FILE__, __LINE__, #call,          \
                           cudaGetErrorString(qr_cuda_status_));                       \
    } while (0)

/* After a kernel launch: reports a bad launch configuration at once, naming the kernel.
 * Faults inside the kernel surface at the next synchronizing call, checked the same way. */
#define QR_CUDA_LAUNCHED(what, err)                                                     \
    do {                                                                               \
        cudaError_t qr_cuda_status_ = cudaGetLastError();                              \
        if (qr_cuda_status_ != cudaSuccess)                                            \
            return qr_fail((err), "%s:%d: launching %s: %s", __FILE__, __LINE__, (what), \
                           cudaGetErrorString(qr_cuda_status_));                       \
    } while (0)

/* Weight rows start at 16-byte aligned offsets so every kernel may read them with
 * 16-byte vector loads; the bytes between row_bytes and pitch are zero. */
#define QR_CUDA_ROW_ALIGN 16

/* A weight matrix on the device, in its GGUF block format: rows x cols elements, each
 * row row_bytes long at data + r * pitch. */
struct qr_cuda_matrix {
    qr_type type;
    int64_t rows, cols;
    size_t row_bytes, pitch;
    uint8_t *data;
};

/* dequant.cu */
int qr_cuda_dequant_launch(const qr_cuda_matrix *m, void *dst, bool to_f16, cudaStream_t s,
                           qr_error *err);
/* gemv.cu */
/* pdl: F32/F16/BF16 weights' GEMV launched as a programmatic dependent (pdl.h) */
int qr_cuda_gemv_launch(const qr_cuda_matrix *m, const float *x, float *y, int ncols, bool pdl,
                        cudaStream_t s, qr_error *err);

#endif
