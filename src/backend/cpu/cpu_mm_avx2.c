/* The AVX2 matmul entry point: the format families' kernels in one table slot. */
#include "backend/cpu/cpu_internal.h"

bool qr_cpu_mm_avx2(const mm_job *j, int64_t o0, int64_t o1, int tid) {
    (void)tid;
    return qr_cpu_mm_q32_avx2(j, o0, o1) || qr_cpu_mm_kquant_avx2(j, o0, o1);
}
