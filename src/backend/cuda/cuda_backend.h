/* The CUDA backend's C API: weights are uploaded once in their GGUF block formats and
 * every kernel dequantizes them on the fly (docs/cuda.md).
 *
 * All pointers named *_dev are device memory (from qr_cuda_malloc). Kernels run on
 * `stream` (NULL: the default stream) and return once queued; a fault inside a kernel is
 * reported by the next call that synchronizes (qr_cuda_synchronize, the copies). Every
 * function returns QR_OK or QR_ERR with a message in err; none aborts. */
#ifndef QR_BACKEND_CUDA_BACKEND_H
#define QR_BACKEND_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest batch (columns of X) that qr_cuda_gemv takes in one call. */
#define QR_CUDA_GEMV_MAX_COLS 8

typedef struct qr_cuda_matrix qr_cuda_matrix;

/* Number of CUDA devices; 0 (and QR_OK) when there is no device or no driver. */
int qr_cuda_device_count(int *count, qr_error *err);
/* Name and memory of device 0, for logs and benchmarks. */
int qr_cuda_device_name(char *buf, size_t size, qr_error *err);

int qr_cuda_malloc(void **ptr_dev, size_t bytes, qr_error *err);
void qr_cuda_free(void *ptr_dev);
/* Page-locked host memory: device-to-host copies into it run at the bus's speed, without
 * a staging copy (the logits of a batch: 1 MiB per row for a 262k vocabulary). */
int qr_cuda_host_alloc(void **ptr, size_t bytes, qr_error *err);
void qr_cuda_host_free(void *ptr);
int qr_cuda_copy_to_device(void *dst_dev, const void *src, size_t bytes, qr_error *err);
int qr_cuda_copy_to_host(void *dst, const void *src_dev, size_t bytes, qr_error *err);
int qr_cuda_memset(void *ptr_dev, int byte, size_t bytes, qr_error *err);
int qr_cuda_synchronize(qr_error *err);

/* Copies a rows x cols matrix of `type` (rows stored back to back, as in a GGUF tensor)
 * to the device. cols must be a multiple of the type's block size. */
int qr_cuda_matrix_upload(qr_type type, int64_t rows, int64_t cols, const void *host,
                          qr_cuda_matrix **out, qr_error *err);
/* One matrix of n_parts stacked row blocks (same type and cols; part i has rows[i] rows
 * from host[i]): fused products such as Q|K|V or gate|up in one GEMV. */
int qr_cuda_matrix_upload_stacked(qr_type type, int64_t cols, int n_parts, const int64_t *rows,
                                  const void *const *host, qr_cuda_matrix **out, qr_error *err);
void qr_cuda_matrix_free(qr_cuda_matrix *m);
/* Device bytes the matrix occupies (rows x row pitch). */
size_t qr_cuda_matrix_bytes(const qr_cuda_matrix *m);

/* Writes the whole matrix as rows x cols F32 (dst_type QR_TYPE_F32) or F16 values,
 * bit-identical to qr_dequantize_row (then qr_f32_to_f16 for F16). */
int qr_cuda_dequantize(const qr_cuda_matrix *m, void *dst_dev, qr_type dst_type, void *stream,
                       qr_error *err);

/* Y = W X: for c < ncols (1..QR_CUDA_GEMV_MAX_COLS), y_dev[c*rows + r] = sum over k of
 * W[r][k] * x_dev[c*cols + k], accumulated in F32 in a fixed order per row, so a row's
 * result does not depend on ncols or on the other columns. x_dev must be 16-byte
 * aligned. */
int qr_cuda_gemv(const qr_cuda_matrix *m, const float *x_dev, float *y_dev, int ncols,
                 void *stream, qr_error *err);

#ifdef __cplusplus
}
#endif

#endif
