/* The AVX-512 matmul kernels for the K-quants and IQ4_XS (cpu_mm_kquant_impl.h). */
#define QR_KFN(name) name##_avx512
#include "backend/cpu/cpu_mm_kquant_impl.h"
