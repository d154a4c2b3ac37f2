/* Dispatch of qr_quantize_row / qr_dequantize_row to the per-format kernels, with the
 * argument checks the kernels rely on (n a positive multiple of the block size). */
#include "quant/quant.h"

#include <stddef.h>

#include "quant/quant_internal.h"

typedef void (*dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_fn)(const float *src, void *dst, int64_t n);

typedef struct {
    dequant_fn to_float;
    quant_fn from_float; /* NULL: no reference quantizer (the IQ types need an imatrix) */
} kernels;

static const kernels KERNELS[QR_TYPE_COUNT] = {
    [QR_TYPE_F32] = {qr_dequant_f32, qr_quant_f32},
    [QR_TYPE_F16] = {qr_dequant_f16, qr_quant_f16},
    [QR_TYPE_BF16] = {qr_dequant_bf16, qr_quant_bf16},
    [QR_TYPE_Q4_0] = {qr_dequant_q4_0, qr_quant_q4_0},
    [QR_TYPE_Q4_1] = {qr_dequant_q4_1, qr_quant_q4_1},
    [QR_TYPE_Q5_0] = {qr_dequant_q5_0, qr_quant_q5_0},
    [QR_TYPE_Q5_1] = {qr_dequant_q5_1, qr_quant_q5_1},
    [QR_TYPE_Q8_0] = {qr_dequant_q8_0, qr_quant_q8_0},
    [QR_TYPE_Q8_1] = {qr_dequant_q8_1, qr_quant_q8_1},
    [QR_TYPE_Q2_K] = {qr_dequant_q2_k, qr_quant_q2_k},
    [QR_TYPE_Q3_K] = {qr_dequant_q3_k, qr_quant_q3_k},
    [QR_TYPE_Q4_K] = {qr_dequant_q4_k, qr_quant_q4_k},
    [QR_TYPE_Q5_K] = {qr_dequant_q5_k, qr_quant_q5_k},
    [QR_TYPE_Q6_K] = {qr_dequant_q6_k, qr_quant_q6_k},
    [QR_TYPE_Q8_K] = {qr_dequant_q8_k, qr_quant_q8_k},
    [QR_TYPE_IQ4_NL] = {qr_dequant_iq4_nl, NULL},
    [QR_TYPE_IQ4_XS] = {qr_dequant_iq4_xs, NULL},
};

/* The kernels of `type` after checking type and n; NULL (with err filled) when bad. */
static const kernels *lookup(qr_type type, int64_t n, const char *what, qr_error *err) {
    const qr_type_traits *t = qr_type_get_traits((uint32_t)type);
    if (t == NULL || KERNELS[type].to_float == NULL) {
        qr_fail(err, "%s: unsupported tensor type id %d", what, (int)type);
        return NULL;
    }
    if (n <= 0 || n % t->block_size != 0) {
        qr_fail(err, "%s: element count n=%lld is not a positive multiple of the %s block size %d",
                what, (long long)n, t->name, t->block_size);
        return NULL;
    }
    return &KERNELS[type];
}

int qr_dequantize_row(qr_type type, const void *src, float *dst, int64_t n, qr_error *err) {
    const kernels *k = lookup(type, n, "qr_dequantize_row", err);
    if (k == NULL) return QR_ERR;
    k->to_float(src, dst, n);
    return QR_OK;
}

bool qr_can_quantize(qr_type type) {
    const qr_type_traits *t = qr_type_get_traits((uint32_t)type);
    return t != NULL && KERNELS[type].from_float != NULL;
}

int qr_quantize_row(qr_type type, const float *src, void *dst, int64_t n, qr_error *err) {
    const kernels *k = lookup(type, n, "qr_quantize_row", err);
    if (k == NULL) return QR_ERR;
    if (k->from_float == NULL) {
        return qr_fail(err, "qr_quantize_row: quantization to %s is not supported (needs an "
                            "importance matrix in llama.cpp; no reference quantizer)",
                       qr_type_name(type));
    }
    k->from_float(src, dst, n);
    return QR_OK;
}
