/* The AVX2 matmul kernels for the 32-element block formats (cpu_mm_q32_impl.h). */
#define QR_KFN(name) name##_avx2
#include "backend/cpu/cpu_mm_q32_impl.h"
