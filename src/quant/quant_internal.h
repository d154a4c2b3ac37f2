/* Per-format row kernels behind qr_quantize_row / qr_dequantize_row (quant.c holds the
 * dispatch). n is the element count, already checked to be a multiple of the block size.
 * Layouts: ../shared/MODELS.md section 4 (llama.cpp's ggml-common.h structs). */
#ifndef QR_QUANT_INTERNAL_H
#define QR_QUANT_INTERNAL_H

#include <stdint.h>

/* dequant.c */
void qr_dequant_f32(const void *src, float *dst, int64_t n);
void qr_dequant_f16(const void *src, float *dst, int64_t n);
void qr_dequant_bf16(const void *src, float *dst, int64_t n);
void qr_dequant_q4_0(const void *src, float *dst, int64_t n);
void qr_dequant_q4_1(const void *src, float *dst, int64_t n);
void qr_dequant_q5_0(const void *src, float *dst, int64_t n);
void qr_dequant_q5_1(const void *src, float *dst, int64_t n);
void qr_dequant_q8_0(const void *src, float *dst, int64_t n);
void qr_dequant_q8_1(const void *src, float *dst, int64_t n);
void qr_dequant_q2_k(const void *src, float *dst, int64_t n);
void qr_dequant_q3_k(const void *src, float *dst, int64_t n);
void qr_dequant_q4_k(const void *src, float *dst, int64_t n);
void qr_dequant_q5_k(const void *src, float *dst, int64_t n);
void qr_dequant_q6_k(const void *src, float *dst, int64_t n);
void qr_dequant_q8_k(const void *src, float *dst, int64_t n);
void qr_dequant_iq4_nl(const void *src, float *dst, int64_t n);
void qr_dequant_iq4_xs(const void *src, float *dst, int64_t n);

/* quant_legacy.c: F32/F16/BF16 and the 32-element block formats, plus Q8_K */
void qr_quant_f32(const float *src, void *dst, int64_t n);
void qr_quant_f16(const float *src, void *dst, int64_t n);
void qr_quant_bf16(const float *src, void *dst, int64_t n);
void qr_quant_q4_0(const float *src, void *dst, int64_t n);
void qr_quant_q4_1(const float *src, void *dst, int64_t n);
void qr_quant_q5_0(const float *src, void *dst, int64_t n);
void qr_quant_q5_1(const float *src, void *dst, int64_t n);
void qr_quant_q8_0(const float *src, void *dst, int64_t n);
void qr_quant_q8_1(const float *src, void *dst, int64_t n);
void qr_quant_q8_k(const float *src, void *dst, int64_t n);

/* quant_k.c: the K-quant super-block formats (llama.cpp's *_ref algorithms) */
void qr_quant_q2_k(const float *src, void *dst, int64_t n);
void qr_quant_q3_k(const float *src, void *dst, int64_t n);
void qr_quant_q4_k(const float *src, void *dst, int64_t n);
void qr_quant_q5_k(const float *src, void *dst, int64_t n);
void qr_quant_q6_k(const float *src, void *dst, int64_t n);

#endif
