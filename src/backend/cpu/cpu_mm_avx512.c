/* The AVX-512 matmul entry point (VNNI dot products); formats it lacks fall back to the
 * AVX2 kernels through the backend's kernel list. */
#include "backend/cpu/cpu_internal.h"

bool qr_cpu_mm_avx512(const mm_job *j, int64_t o0, int64_t o1, int tid) {
    if (j->n_rows >= QR_CPU_GEMM_MIN_ROWS && qr_cpu_gemm_panel_supported(j->wtype)) {
        o0 = qr_cpu_gemm_panel_avx512(j, o0, o1, j->cb->per_thread[tid].ptr);
        if (o0 == o1) return true;
    }
    return qr_cpu_mm_q32_avx512(j, o0, o1) || qr_cpu_mm_kquant_avx512(j, o0, o1) ||
           qr_cpu_mm_float_avx512(j, o0, o1, j->cb->features.avx512fp16, j->cb->per_thread[tid].ptr);
}
