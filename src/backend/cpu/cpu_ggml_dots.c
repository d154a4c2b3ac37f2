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
 *     of 64, folded 0+=2, 1+=3, 0+=1, reduced, then the leftovers as the compiled
 *     reference build sums them (checked against libggml-cpu's ggml_vec_dot_f32 on
 *     random vectors of many lengths);
 *   - ggml_vec_dot_f16 / vec_mad_f16 / vec_scale_f16 (attention): the reference build
 *     runs on an AVX512-FP16 CPU, where blocks of 128 halves are computed with native
 *     F16 arithmetic (every step rounded to F16) and the rest in float/double.
 * Each emulation was checked bit for bit against the functions exported by the
 * reference build's libggml-cpu (tests/engine_golden_test.py notes how). */
/* Bit-exactness with llama.cpp needs each a*b+c rounded exactly as written here (fmaf
 * where ggml's build fuses, two roundings elsewhere): no FMA contraction by the compiler.
 * Clang contracts by default unless told; GCC does not in ISO C mode (-std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile the CPU backend as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

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
    /* The tail loop `sumf += x[i]*y[i]` is vectorized by GCC: blocks of 16, then one of
     * 8, multiply first and add in order; the last < 8 are contracted into fmas. */
    int64_t i = np;
    for (; n - i >= 16; i += 16) {
        for (int k = 0; k < 16; k++) sum += a[i + k] * b[i + k];
    }
    if (n - i >= 8) {
        for (int k = 0; k < 8; k++) sum += a[i + k] * b[i + k];
        i += 8;
    }
    for (; i < n; i++) sum = fmaf(a[i], b[i], sum);
    return sum;
}

float qr_cpu_dot_f32(const float *a, const float *b, int64_t n) {
    return n % 16 == 0 ? qr_cpu_dot_f32_gemm(a, b, n) : qr_cpu_dot_f32_vec(a, b, n);
}

/* Rounds a double to the nearest F16 (ties to even) in one step, as a native FP16
 * instruction rounds its exact result. */
static uint16_t f64_to_f16(double d) {
    const uint16_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    if (isnan(d)) return 0x7e00;
    if (a >= 65520.0) return sign | 0x7c00;
    if (a < 0x1p-14) {
        const double m = nearbyint(a * 0x1p24); /* subnormal units of 2^-24; 1024 = min normal */
        return sign | (uint16_t)m;
    }
    int e;
    frexp(a, &e);                       /* a = f * 2^e, f in [0.5, 1) */
    double m = nearbyint(ldexp(a, 11 - e)); /* 11 significant bits */
    if (m >= 2048.0) {
        m /= 2.0;
        e++;
    }
    if (e + 14 >= 31) return sign | 0x7c00;
    return sign | (uint16_t)((e + 14) << 10) | (uint16_t)((int)m - 1024);
}

static float h2f(uint16_t h) { return qr_f16_to_f32(h); }
static uint16_t add_h(uint16_t a, uint16_t b) { return f64_to_f16((double)h2f(a) + (double)h2f(b)); }

/* ggml_vec_dot_f16 on an AVX512-FP16 machine: blocks of 128 accumulate in F16 with
 * native F16 fmas (4 x 32 lanes), the lanes are reduced in F16, the remainder is summed
 * in double. Shorter vectors are summed in double throughout. */
float qr_cpu_dot_f16(const uint16_t *a, const uint16_t *b, int64_t n) {
    const int64_t np = n & ~(int64_t)127;
    double sum = 0.0;
    if (np > 0) {
        uint16_t s[4][32] = {{0}};
        for (int64_t i = 0; i < np; i += 128) {
            for (int j = 0; j < 4; j++) {
                for (int l = 0; l < 32; l++) {
                    const int64_t k = i + 32 * j + l;
                    s[j][l] = f64_to_f16((double)h2f(a[k]) * (double)h2f(b[k]) + (double)h2f(s[j][l]));
                }
            }
        }
        uint16_t t[32], u[16], v[8], w[4];
        for (int l = 0; l < 32; l++) t[l] = add_h(add_h(s[0][l], s[2][l]), add_h(s[1][l], s[3][l]));
        for (int l = 0; l < 16; l++) u[l] = add_h(t[l], t[16 + l]);
        for (int l = 0; l < 8; l++) v[l] = add_h(u[l], u[8 + l]);
        for (int l = 0; l < 4; l++) w[l] = add_h(v[l], v[4 + l]);
        sum = (double)h2f(add_h(add_h(w[0], w[2]), add_h(w[1], w[3])));
    }
    for (int64_t i = np; i < n; i++) sum += (double)(h2f(a[i]) * h2f(b[i]));
    return (float)sum;
}

/* ggml_vec_mad_f16: y += x * v. Blocks of 128 use native F16 fmas with v rounded to
 * F16; the remainder is f16(y + x*v) with the float fma the compiler contracts to. */
void qr_cpu_vec_mad_f16(int64_t n, uint16_t *y, const uint16_t *x, float v) {
    const int64_t np = n & ~(int64_t)127;
    const double vh = (double)h2f(qr_f32_to_f16(v));
    for (int64_t i = 0; i < np; i++) y[i] = f64_to_f16((double)h2f(x[i]) * vh + (double)h2f(y[i]));
    for (int64_t i = np; i < n; i++) y[i] = qr_f32_to_f16(fmaf(h2f(x[i]), v, h2f(y[i])));
}

/* ggml_vec_scale_f16: y *= v, likewise (F16 multiply by f16(v) on blocks of 128). */
void qr_cpu_vec_scale_f16(int64_t n, uint16_t *y, float v) {
    const int64_t np = n & ~(int64_t)127;
    const double vh = (double)h2f(qr_f32_to_f16(v));
    for (int64_t i = 0; i < np; i++) y[i] = f64_to_f16((double)h2f(y[i]) * vh);
    for (int64_t i = np; i < n; i++) y[i] = qr_f32_to_f16(h2f(y[i]) * v);
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
