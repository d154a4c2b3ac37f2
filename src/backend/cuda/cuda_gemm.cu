/* Matrix products of prompt batches (more rows than the GEMV takes): the weight is
 * dequantized to F16 in slices of rows (exactly, dequant.cu), the activations are rounded
 * to F16, and cuBLAS multiplies them on the tensor cores with F32 accumulation. F16 and
 * BF16 weights are used in place.
 *
 * cuBLAS is loaded at run time (dlopen), so libquarrel.so keeps needing only the CUDA
 * driver: where libcublas cannot be found, qr_cuda_gemm_create hands back no GEMM and the
 * forward pass falls back to the GEMV, 8 rows at a time. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <dlfcn.h>
#include <stdlib.h>

#include "backend/cuda/cuda_common.h"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

namespace {

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*destroy_fn)(cublasHandle_t);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                     const void *, cudaDataType, int, const void *, cudaDataType, int, const void *,
                                     void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

/* Weight rows dequantized per slice: at most this many F16 elements (64 MiB). Slices are
 * double-buffered: the next one is dequantized on a side stream while cuBLAS multiplies
 * the current one, so the (memory-bound) dequantization hides behind the (tensor-bound)
 * product for all but a matrix's first slice. */
constexpr int64_t kSliceElems = 32ll << 20;

__device__ __forceinline__ void round_to(float v, __half *p) { *p = __float2half_rn(v); }
__device__ __forceinline__ void round_to(float v, __nv_bfloat16 *p) { *p = __float2bfloat16_rn(v); }

template <typename T>
__global__ void to_half_kernel(const float *x, T *y, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        round_to(x[i], y + i);
}

} // namespace

struct qr_cuda_gemm {
    void *lib;
    cublasHandle_t handle;
    destroy_fn destroy;
    set_stream_fn set_stream;
    gemm_ex_fn gemm_ex;
    void *scratch;
    size_t scratch_bytes;
    cudaStream_t side;                       /* dequantizes the next slice */
    cudaEvent_t start, ready[2], released[2]; /* ordering between the two streams */
};

extern "C" int qr_cuda_gemm_create(qr_cuda_gemm **out, qr_error *err) {
    *out = NULL;
    const char *names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so"};
    void *lib = NULL;
    for (const char *n : names)
        if ((lib = dlopen(n, RTLD_NOW | RTLD_LOCAL)) != NULL) break;
    if (!lib) return QR_OK; /* no cuBLAS: not an error, the GEMV serves */
    qr_cuda_gemm *g = (qr_cuda_gemm *)calloc(1, sizeof *g);
    if (!g) {
        dlclose(lib);
        return qr_fail(err, "out of memory");
    }
    g->lib = lib;
    create_fn create = (create_fn)dlsym(lib, "cublasCreate_v2");
    g->destroy = (destroy_fn)dlsym(lib, "cublasDestroy_v2");
    g->set_stream = (set_stream_fn)dlsym(lib, "cublasSetStream_v2");
    g->gemm_ex = (gemm_ex_fn)dlsym(lib, "cublasGemmEx");
    if (!create || !g->destroy || !g->set_stream || !g->gemm_ex || create(&g->handle) != CUBLAS_STATUS_SUCCESS) {
        g->handle = NULL;
        qr_cuda_gemm_free(g);
        return QR_OK;
    }
    cudaEvent_t *evs[] = {&g->start, &g->ready[0], &g->ready[1], &g->released[0], &g->released[1]};
    cudaError_t st = cudaStreamCreateWithFlags(&g->side, cudaStreamNonBlocking);
    for (cudaEvent_t *e : evs)
        if (st == cudaSuccess) st = cudaEventCreateWithFlags(e, cudaEventDisableTiming);
    if (st != cudaSuccess) {
        qr_cuda_gemm_free(g);
        return qr_fail(err, "CUDA GEMM: creating its stream and events: %s", cudaGetErrorString(st));
    }
    *out = g;
    return QR_OK;
}

extern "C" void qr_cuda_gemm_free(qr_cuda_gemm *g) {
    if (!g) return;
    if (g->handle) g->destroy(g->handle);
    cudaEvent_t evs[] = {g->start, g->ready[0], g->ready[1], g->released[0], g->released[1]};
    for (cudaEvent_t e : evs)
        if (e) cudaEventDestroy(e);
    if (g->side) cudaStreamDestroy(g->side);
    cudaFree(g->scratch);
    if (g->lib) dlclose(g->lib);
    free(g);
}

static int reserve(qr_cuda_gemm *g, size_t bytes, qr_error *err) {
    if (bytes <= g->scratch_bytes) return QR_OK;
    cudaFree(g->scratch); /* waits for the kernels still reading it */
    g->scratch = NULL;
    g->scratch_bytes = 0;
    QR_CUDA_TRY(cudaMalloc(&g->scratch, bytes), err);
    g->scratch_bytes = bytes;
    return QR_OK;
}

extern "C" int qr_cuda_gemm_run(qr_cuda_gemm *g, const qr_cuda_matrix *w, const float *x, int64_t n_rows, float *y,
                                void *stream, qr_error *err) {
    const cudaStream_t s = (cudaStream_t)stream;
    const int64_t K = w->cols, N = w->rows;
    const bool bf16 = w->type == QR_TYPE_BF16, in_place = bf16 || w->type == QR_TYPE_F16;
    const int64_t slice = in_place ? N : (kSliceElems / K > 0 ? kSliceElems / K : 1);
    const int64_t slice_rows = slice < N ? slice : N;
    const size_t xbytes = (size_t)(n_rows * K) * 2, wbytes = in_place ? 0 : ((size_t)(slice_rows * K) * 2 + 255) / 256 * 256;
    if (reserve(g, (xbytes + 255) / 256 * 256 + 2 * wbytes, err) != QR_OK) return QR_ERR;
    void *xh = g->scratch;
    char *wh[2] = {(char *)g->scratch + (xbytes + 255) / 256 * 256, NULL};
    wh[1] = wh[0] + wbytes;
    /* The side stream starts after everything queued on s so far (earlier users of the
     * scratch included). */
    QR_CUDA_TRY(cudaEventRecord(g->start, s), err);
    QR_CUDA_TRY(cudaStreamWaitEvent(g->side, g->start, 0), err);
    const int64_t nx = n_rows * K;
    const unsigned blocks = (unsigned)((nx + 255) / 256 < 65535 * 16 ? (nx + 255) / 256 : 65535 * 16);
    if (bf16)
        to_half_kernel<__nv_bfloat16><<<blocks, 256, 0, s>>>(x, (__nv_bfloat16 *)xh, nx);
    else
        to_half_kernel<__half><<<blocks, 256, 0, s>>>(x, (__half *)xh, nx);
    QR_CUDA_LAUNCHED("to_half_kernel", err);
    if (g->set_stream(g->handle, s) != CUBLAS_STATUS_SUCCESS) return qr_fail(err, "cublasSetStream failed");
    const cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t r0 = 0, i = 0; r0 < N; r0 += slice_rows, i++) {
        const int64_t rows = N - r0 < slice_rows ? N - r0 : slice_rows;
        const void *a = NULL;
        int64_t lda = K;
        if (in_place) {
            a = w->data;
            lda = (int64_t)(w->pitch / 2);
        } else {
            const int b = (int)(i % 2);
            qr_cuda_matrix view = *w;
            view.rows = rows;
            view.data = w->data + (size_t)r0 * w->pitch;
            if (i >= 2) QR_CUDA_TRY(cudaStreamWaitEvent(g->side, g->released[b], 0), err); /* slice i - 2 is done */
            if (qr_cuda_dequant_launch(&view, wh[b], true, g->side, err) != QR_OK) return QR_ERR;
            QR_CUDA_TRY(cudaEventRecord(g->ready[b], g->side), err);
            QR_CUDA_TRY(cudaStreamWaitEvent(s, g->ready[b], 0), err);
            a = wh[b];
        }
        /* Column-major view: Y^T[N x R] = W[K x N]^T X^T[K x R], both read as K-major. */
        const cublasStatus_t st = g->gemm_ex(g->handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n_rows, (int)K, &alpha,
                                             a, t, (int)lda, xh, t, (int)K, &beta, y + r0, CUDA_R_32F, (int)N,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return qr_fail(err, "cublasGemmEx (%lld x %lld x %lld, %s) failed: status %d", (long long)rows,
                           (long long)n_rows, (long long)K, qr_type_name(w->type), (int)st);
        if (!in_place) QR_CUDA_TRY(cudaEventRecord(g->released[i % 2], s), err);
    }
    return QR_OK;
}

extern "C" bool qr_cuda_gemm_supported(const qr_cuda_gemm *g, const qr_cuda_matrix *w) {
    /* cuBLAS wants 16-byte aligned leading dimensions (8 halves) and int sizes. */
    return g && w->type != QR_TYPE_F32 && w->cols % 8 == 0 && w->rows < (1ll << 31) && w->cols < (1ll << 31);
}
