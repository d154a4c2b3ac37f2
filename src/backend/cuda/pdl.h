/* Programmatic dependent launch (Hopper, sm_90): a kernel launched with the
 * programmatic-serialization attribute may start while the kernel before it in the stream
 * is still finishing, once every CTA of that kernel has called qr_pdl_trigger() (or
 * exited). It must call qr_pdl_wait() before it reads anything the previous kernel wrote:
 * the wait returns when that kernel has completed and its writes are visible.
 *
 * The decode path uses it to overlap a GEMV's first weight loads (which depend on nothing
 * earlier in the step) with the tail of the kernel producing its activations: a 4096-row
 * product streams only ~10 MB, and its ramp-up is a visible part of it. On older
 * architectures both calls compile to nothing and launches serialize as usual. */
#ifndef QR_BACKEND_CUDA_PDL_H
#define QR_BACKEND_CUDA_PDL_H

#include <cuda_runtime.h>

__device__ __forceinline__ void qr_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void qr_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

/* The prologue of a kernel that touches its predecessor's data from its first instruction:
 * wait for that kernel, then let the next one start launching. */
__device__ __forceinline__ void qr_pdl_begin() {
    qr_pdl_wait();
    qr_pdl_trigger();
}

/* kernel<<<grid, block, 0, s>>>(args...), as a programmatic dependent of the kernel before
 * it in the stream when pdl is set. Such a kernel must qr_pdl_wait() before it touches
 * memory an earlier kernel writes or reads; the decode path's small kernels (RMSNorm,
 * RoPE + KV store, attention, quantization, GLU) start with qr_pdl_begin(), so only their
 * launch and CTA start-up overlap the kernel before them, and the kernel after them may
 * start as early. */
template <typename... KArgs, typename... Args>
cudaError_t qr_launch(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, cudaStream_t s, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

#endif
