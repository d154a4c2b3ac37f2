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

#endif
