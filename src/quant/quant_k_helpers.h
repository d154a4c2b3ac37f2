/* Scale searches shared by the K-quant reference quantizers (quant_k.c). They follow
 * llama.cpp's ggml-quants.c helpers step by step, including the order of every float
 * operation: `quarrel quantize` must reproduce llama-quantize's files byte for byte, and
 * a reordered sum changes a rounding somewhere in a 7B model. Internal to src/quant. */
#ifndef QR_QUANT_K_HELPERS_H
#define QR_QUANT_K_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* A group whose largest |x| is below this is treated as all zeros (GROUP_MAX_EPS). */
#define QR_GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, for |f| <= 2^22: adding 1.5*2^23 pushes the integer
 * into the low mantissa bits, where the FPU's own rounding did the work. */
static inline int qr_nearest_int(float f) {
    float biased = f + 12582912.f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int qr_clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Symmetric quantization of n values to [-nmax, nmax-1] stored as L = q + nmax, with a
 * least-squares refinement of the scale weighted by x^2 (llama.cpp make_qx_quants with
 * rmse_type 1 and no importance weights: the only use in the reference path is Q6_K).
 * Returns the scale (negative when the largest-magnitude value is positive). */
float qr_make_qx_quants(int n, int nmax, const float *x, int8_t *L);

/* As above for Q3_K (make_q3_quants with do_rmse): a coordinate-descent pass moves single
 * quants while that improves the weighted fit. */
float qr_make_q3_quants(int n, int nmax, const float *x, int8_t *L);

/* Asymmetric quantization x ~ scale*L - min to [0, nmax] with a grid search over nstep+1
 * candidate scales (make_qkx2_quants). Writes -min (>= 0) to *the_min and returns the
 * scale. Laux is scratch of n bytes. */
float qr_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          bool use_mad);

/* Reads the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of a
 * Q4_K/Q5_K block. */
static inline void qr_get_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
