/* The integer GEMV of the CUDA backend (gemv.cu, quantize_act.cu): the activations are
 * quantized once per product to the weight type's vec-dot type, exactly as the CPU
 * backend does it (qr_backend_vec_dot_type: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for
 * Q4_1/Q5_1, Q8_K for Q2_K..Q6_K/IQ4_XS), and the products are integer dot products (dp4a) of
 * the weights' quants with those int8 values. The integer sums are exact, so a row's
 * result differs from the CPU's only by the order of the final float combination.
 *
 * Quantized activations ("act" buffer), one column after another, each column
 * qr_cuda_act_q8_layout().col_bytes long (a multiple of 16) and laid out as
 *   int8  q[n]          the quants (values d * q);
 *   float d[n / QB]     the scale of each QB-element block (QB = 32 for Q8_0/Q8_1, 256
 *                       for Q8_K), fp16-rounded for Q8_0/Q8_1 as the CPU stores it;
 *   int16 bsum[n / 16]  the sum of each 16 consecutive quants;
 *   float s[n / 32]     Q8_1 only: fp16(d32 * sum of the block's 32 quants), d32 the
 *                       unrounded F32 scale, as the CPU's Q8_1 blocks hold it;
 * each section starting at a 16-byte aligned offset (q_off = 0, d_off, bsum_off, s_off). */
#ifndef QR_BACKEND_CUDA_GEMV_Q8_H
#define QR_BACKEND_CUDA_GEMV_Q8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "gguf/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    qr_type vt;       /* vec-dot type: Q8_0, Q8_1 or Q8_K */
    int64_t n;        /* elements per column */
    int block;        /* QB: elements per scale */
    size_t d_off, bsum_off, s_off; /* s_off is 0 unless vt is Q8_1 */
    size_t col_bytes; /* bytes per column */
} qr_cuda_act_layout;

/* True when weights of type t have the integer GEMV. */
bool qr_cuda_gemv_q8_supported(qr_type t);

/* Layout of one column of n activations for weights of type wtype; QR_ERR when wtype
 * has no integer GEMV or n is not a whole number of the vec-dot type's blocks. */
int qr_cuda_act_q8_layout(qr_type wtype, int64_t n, qr_cuda_act_layout *out, qr_error *err);

/* Quantizes ncols columns of n floats (x_dev, column c at x_dev + c * n) into act_dev
 * (ncols * col_bytes bytes, 16-byte aligned) for weights of type wtype; pdl: launched as
 * a programmatic dependent of the kernel before it (pdl.h). */
int qr_cuda_quantize_act(qr_type wtype, const float *x_dev, int64_t n, int64_t ncols, void *act_dev, bool pdl,
                         void *stream, qr_error *err);

/* y_dev[c * rows + r] = W[r] . column c of the quantized activations, for c < ncols
 * (1..QR_CUDA_GEMV_MAX_COLS); act_dev as qr_cuda_quantize_act wrote it for m->type and
 * m->cols (16-byte aligned). Each row is summed in a fixed order whatever ncols is.
 * pdl: launched as a programmatic dependent of the kernel before it in the stream
 * (pdl.h): its first weight loads overlap that kernel's end, and it waits for that kernel
 * before reading the activations. */
int qr_cuda_gemv_q8(const qr_cuda_matrix *m, const void *act_dev, float *y_dev, int ncols, bool pdl, void *stream,
                    qr_error *err);

#ifdef __cplusplus
}
#endif

#endif
