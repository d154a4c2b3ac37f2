/* Device queries, memory and weight upload: the C API of cuda_backend.h that is not a
 * kernel. */
#include <stdio.h>
#include <stdlib.h>

#include "backend/cuda/cuda_common.h"

extern "C" {
#include "backend/cuda/cuda_backend.h"
}

extern "C" int qr_cuda_device_count(int *count, qr_error *err) {
    *count = 0;
    cudaError_t s = cudaGetDeviceCount(count);
    /* No GPU or no driver is a normal state (CI machines): zero devices, not a failure. */
    if (s == cudaErrorNoDevice || s == cudaErrorInsufficientDriver) {
        (void)cudaGetLastError(); /* clear the sticky status the query left */
        *count = 0;
        return QR_OK;
    }
    QR_CUDA_TRY(s, err);
    return QR_OK;
}

extern "C" int qr_cuda_device_name(char *buf, size_t size, qr_error *err) {
    cudaDeviceProp p;
    QR_CUDA_TRY(cudaGetDeviceProperties(&p, 0), err);
    snprintf(buf, size, "%s (sm_%d%d, %d SMs, %.1f GiB, %d MiB L2)", p.name, p.major, p.minor,
             p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             p.l2CacheSize / (1024 * 1024));
    return QR_OK;
}

extern "C" int qr_cuda_malloc(void **ptr_dev, size_t bytes, qr_error *err) {
    *ptr_dev = NULL;
    QR_CUDA_TRY(cudaMalloc(ptr_dev, bytes), err);
    return QR_OK;
}

extern "C" void qr_cuda_free(void *ptr_dev) {
    if (ptr_dev) (void)cudaFree(ptr_dev);
}

extern "C" int qr_cuda_host_alloc(void **ptr, size_t bytes, qr_error *err) {
    *ptr = NULL;
    QR_CUDA_TRY(cudaMallocHost(ptr, bytes), err);
    return QR_OK;
}

extern "C" void qr_cuda_host_free(void *ptr) {
    if (ptr) (void)cudaFreeHost(ptr);
}

extern "C" int qr_cuda_copy_to_device(void *dst_dev, const void *src, size_t bytes,
                                      qr_error *err) {
    QR_CUDA_TRY(cudaMemcpy(dst_dev, src, bytes, cudaMemcpyHostToDevice), err);
    return QR_OK;
}

extern "C" int qr_cuda_copy_to_host(void *dst, const void *src_dev, size_t bytes,
                                    qr_error *err) {
    QR_CUDA_TRY(cudaMemcpy(dst, src_dev, bytes, cudaMemcpyDeviceToHost), err);
    return QR_OK;
}

extern "C" int qr_cuda_memset(void *ptr_dev, int byte, size_t bytes, qr_error *err) {
    QR_CUDA_TRY(cudaMemset(ptr_dev, byte, bytes), err);
    return QR_OK;
}

extern "C" int qr_cuda_synchronize(qr_error *err) {
    QR_CUDA_TRY(cudaDeviceSynchronize(), err);
    return QR_OK;
}

static int check_shape(qr_type type, int64_t rows, int64_t cols, const qr_type_traits **tr,
                       qr_error *err) {
    *tr = qr_type_get_traits((uint32_t)type);
    if (!*tr) return qr_fail(err, "qr_cuda_matrix_upload: unsupported type %d", (int)type);
    if (rows < 1 || cols < 1)
        return qr_fail(err, "qr_cuda_matrix_upload: bad shape %lld x %lld", (long long)rows,
                       (long long)cols);
    if (cols % (*tr)->block_size != 0)
        return qr_fail(err, "qr_cuda_matrix_upload: cols %lld is not a multiple of %s's "
                       "block size %d", (long long)cols, (*tr)->name, (*tr)->block_size);
    return QR_OK;
}

extern "C" int qr_cuda_matrix_upload_stacked(qr_type type, int64_t cols, int n_parts, const int64_t *rows,
                                             const void *const *host, qr_cuda_matrix **out, qr_error *err) {
    int64_t total = 0;
    for (int i = 0; i < n_parts; i++) total += rows[i];
    *out = NULL;
    if (n_parts < 1) return qr_fail(err, "qr_cuda_matrix_upload_stacked: no parts");
    const qr_type_traits *tr;
    if (check_shape(type, total, cols, &tr, err) != QR_OK) return QR_ERR;
    qr_cuda_matrix *m = (qr_cuda_matrix *)calloc(1, sizeof *m);
    if (!m) return qr_fail(err, "qr_cuda_matrix_upload_stacked: out of host memory");
    m->type = type;
    m->rows = total;
    m->cols = cols;
    m->row_bytes = qr_type_row_size(tr, cols);
    m->pitch = (m->row_bytes + QR_CUDA_ROW_ALIGN - 1) / QR_CUDA_ROW_ALIGN * QR_CUDA_ROW_ALIGN;
    const size_t bytes = m->pitch * (size_t)total;
    cudaError_t s = cudaMalloc((void **)&m->data, bytes);
    if (s == cudaSuccess && m->pitch != m->row_bytes) s = cudaMemset(m->data, 0, bytes);
    /* The padding is zeroed so that 16-byte loads past a row's end read defined bytes;
     * each part's rows follow the previous part's. */
    size_t at = 0;
    for (int i = 0; i < n_parts && s == cudaSuccess; i++) {
        s = cudaMemcpy2D(m->data + at * m->pitch, m->pitch, host[i], m->row_bytes, m->row_bytes, (size_t)rows[i],
                         cudaMemcpyHostToDevice);
        at += (size_t)rows[i];
    }
    if (s != cudaSuccess) {
        qr_cuda_matrix_free(m);
        return qr_fail(err, "qr_cuda_matrix_upload: %s x %lld x %lld (%zu bytes): %s", tr->name, (long long)total,
                       (long long)cols, bytes, cudaGetErrorString(s));
    }
    *out = m;
    return QR_OK;
}

extern "C" int qr_cuda_matrix_upload(qr_type type, int64_t rows, int64_t cols, const void *host,
                                     qr_cuda_matrix **out, qr_error *err) {
    return qr_cuda_matrix_upload_stacked(type, cols, 1, &rows, &host, out, err);
}

extern "C" void qr_cuda_matrix_free(qr_cuda_matrix *m) {
    if (!m) return;
    if (m->data) (void)cudaFree(m->data);
    free(m);
}

extern "C" size_t qr_cuda_matrix_bytes(const qr_cuda_matrix *m) {
    return m->pitch * (size_t)m->rows;
}

extern "C" int qr_cuda_dequantize(const qr_cuda_matrix *m, void *dst_dev, qr_type dst_type,
                                  void *stream, qr_error *err) {
    if (dst_type != QR_TYPE_F32 && dst_type != QR_TYPE_F16)
        return qr_fail(err, "qr_cuda_dequantize: output type %s is not F32 or F16",
                       qr_type_name(dst_type));
    return qr_cuda_dequant_launch(m, dst_dev, dst_type == QR_TYPE_F16, (cudaStream_t)stream, err);
}

extern "C" int qr_cuda_gemv(const qr_cuda_matrix *m, const float *x_dev, float *y_dev, int ncols,
                            void *stream, qr_error *err) {
    if (ncols < 1 || ncols > QR_CUDA_GEMV_MAX_COLS)
        return qr_fail(err, "qr_cuda_gemv: ncols %d is outside 1..%d", ncols,
                       QR_CUDA_GEMV_MAX_COLS);
    if (((uintptr_t)x_dev & 15) != 0)
        return qr_fail(err, "qr_cuda_gemv: x is not 16-byte aligned");
    return qr_cuda_gemv_launch(m, x_dev, y_dev, ncols, false, (cudaStream_t)stream, err);
}
