/* Tensor element types as GGUF numbers them (gguf-py constants.py, ggml.h), with the
 * block layout traits of llama.cpp's C structs (ggml-common.h). */
#ifndef QR_GGUF_TYPES_H
#define QR_GGUF_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum qr_type {
    QR_TYPE_F32 = 0,
    QR_TYPE_F16 = 1,
    QR_TYPE_Q4_0 = 2,
    QR_TYPE_Q4_1 = 3,
    QR_TYPE_Q5_0 = 6,
    QR_TYPE_Q5_1 = 7,
    QR_TYPE_Q8_0 = 8,
    QR_TYPE_Q8_1 = 9,
    QR_TYPE_Q2_K = 10,
    QR_TYPE_Q3_K = 11,
    QR_TYPE_Q4_K = 12,
    QR_TYPE_Q5_K = 13,
    QR_TYPE_Q6_K = 14,
    QR_TYPE_Q8_K = 15,
    QR_TYPE_IQ4_NL = 20,
    QR_TYPE_IQ4_XS = 23,
    QR_TYPE_BF16 = 30,
    QR_TYPE_COUNT = 31 /* one past the largest id; not every id below it is supported */
} qr_type;

typedef struct qr_type_traits {
    const char *name;   /* "Q4_K", as llama.cpp and the gguf package print it */
    int block_size;     /* elements per block */
    int type_size;      /* bytes per block */
    bool is_quantized;
} qr_type_traits;

/* NULL when id is not a type quarrel supports (the GGUF reader reports it by name). */
const qr_type_traits *qr_type_get_traits(uint32_t id);
const char *qr_type_name(qr_type type);
/* Looks a type up by its name, case-insensitively; returns -1 when unknown. */
int qr_type_from_name(const char *name);

/* Bytes for n elements of `type`; n must be a multiple of the block size (callers check). */
static inline size_t qr_type_row_size(const qr_type_traits *t, int64_t n) {
    return (size_t)(n / t->block_size) * (size_t)t->type_size;
}

#endif
