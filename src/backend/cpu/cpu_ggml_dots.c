/* Float dot products in the exact summation order of llama.cpp's x86 CPU kernels (the
 * reference build is AVX-512), so that F32 and F16 models reproduce its logits to the
 * last bit where possible. With the products fixed, only the order of the float sums
 * differs between implementations, and at head dimension 8 (stories260K) that order
 * flips F16 roundings of cached keys and shows in the log-probabilities.
 *
 *   - matmul, row length a multiple of 16: llamafile's tinyBLAS (ggml/src/ggml-cpu/
 *     llamafile/sgemm.cpp): 16 lanes accumulated with fused multiply-adds, lane l taking
 *     elements l, l+16, ..., then _mm512_reduce_add_ps;
 *   - otherwise ggml_vec_dot_f32 (ggml/src/ggml-cpu/vec.cpp): 4 x 16 lanes over blocks
 *     of 64, folded 0+=2, 1+=3, 0+=1, reduced, then leftovers fused into the float sum;
 *   - ggml_vec_dot_f16 (attention scores): the same 4 x 16 lanes, but reduced into a
 *     double and leftovers added in double. */
#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "core/fp16.h"

/* GCC's _mm512_reduce_add_ps: halves 256, 128, then (0+2, 1+3), then the two. */
static float reduce16(const float v[16]) {
    float a[8], b[4];
    for (int i = 0; i < 8; i++) a[i] = v[8 + i] + v[i];
    for (int i = 0; i < 4; i++) b[i] = a[4 + i] + a[i];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

static float fold64(float s[4][16]) {
    for (int l = 0; l < 16; l++) {
        s[0][l] = s[0][l] + s[2][l];
        s[1][l] = s[1][l] + s[3][l];
    }
    for (int l = 0; l < 16; l++) s[0][l] = s[0][l] + s[1][l];
    return reduce16(s[0]);
}

float qr_cpu_dot_f32_gemm(const float *a, const float *b, int64_t n) {
    float acc[16] = {0};
    for (int64_t i = 0; i < n; i += 16) {
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    }
    return reduce16(acc);
}

float qr_cpu_dot_f32_vec(const float *a, const float *b, int64_t n) {
    const int64_t np = n & ~(int64_t)63;
    float s[4][16] = {{0}};
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 16; l++) s[j][l] = fmaf(a[i + 16 * j + l], b[i + 16 * j + l], s[j][l]);
        }
    }
    float sum = fold64(s);
    for (int64_t i = np; i < n; i++) sum = fmaf(a[i], b[i], sum);
    return sum;
}

float qr_cpu_dot_f32(const float *a, const float *b, int64_t n) {
    return n % 16 == 0 ? qr_cpu_dot_f32_gemm(a, b, n) : qr_cpu_dot_f32_vec(a, b, n);
}

float qr_cpu_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n) {
    const int64_t np = n & ~(int64_t)63;
    float s[4][16] = {{0}};
    for (int64_t i = 0; i < np; i += 64) {
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 16; l++) {
                const int64_t k = i + 16 * j + l;
                s[j][l] = fmaf(qr_f16_to_f32(a[k]), qr_f16_to_f32(b[k]), s[j][l]);
            }
        }
    }
    double sum = np ? (double)fold64(s) : 0.0;
    for (int64_t i = np; i < n; i++) sum += (double)(qr_f16_to_f32(a[i]) * qr_f16_to_f32(b[i]));
    return (float)sum;
}

/* ggml_v_expf (AVX-512 form, from ARM's optimized routines), evaluated lane by lane. */
float qr_cpu_ggml_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int)n);
}
