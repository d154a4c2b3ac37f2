/* Scalar reference quantization and dequantization of every block format. These follow
 * llama.cpp's reference rounding exactly: they are the oracles that every SIMD and CUDA
 * kernel is tested against, and `quarrel quantize` reproduces llama-quantize's files
 * byte for byte with them. */
#ifndef QR_QUANT_QUANT_H
#define QR_QUANT_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/types.h"

/* Converts n elements (a multiple of the type's block size) of `type` to F32.
 * Supported for every type in qr_type. Returns QR_ERR for a bad n or type. */
int qr_dequantize_row(qr_type type, const void *src, float *dst, int64_t n, qr_error *err);

/* True when qr_quantize_row supports `type` (all but the IQ types). */
bool qr_can_quantize(qr_type type);

/* Quantizes n elements (a multiple of the block size) from F32 into `type` with
 * llama.cpp's reference algorithm (no importance matrix). */
int qr_quantize_row(qr_type type, const float *src, void *dst, int64_t n, qr_error *err);

#endif
