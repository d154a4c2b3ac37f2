/* Packed block layouts of the quantized formats, byte for byte as llama.cpp's
 * ggml-common.h defines them (../shared/MODELS.md section 4). fp16 fields are raw
 * uint16_t bit patterns (convert with core/fp16.h). Every field is a byte array, a
 * uint16_t or (Q8_K only) a float/int16_t at naturally aligned offsets, so the structs
 * have no padding; the _Static_asserts pin the on-disk sizes. Blocks inside a GGUF
 * tensor may sit at any 2-byte-aligned offset, so callers that cannot guarantee the
 * alignment of a struct should memcpy a block out rather than cast the pointer. */
#ifndef QR_QUANT_BLOCKS_H
#define QR_QUANT_BLOCKS_H

#include <stdint.h>

#define QR_QK 32       /* elements per block of the 32-element formats */
#define QR_QK_K 256    /* elements per K-quant super-block */
#define QR_K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[QR_QK / 2]; } qr_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QR_QK / 2]; } qr_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QR_QK / 2]; } qr_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QR_QK / 2]; } qr_block_q5_1;
typedef struct { uint16_t d; int8_t qs[QR_QK]; } qr_block_q8_0;
/* s = d * sum(qs), stored so Q4_1/Q5_1 dots can add the min term without a pass. */
typedef struct { uint16_t d, s; int8_t qs[QR_QK]; } qr_block_q8_1;
typedef struct { uint16_t d; uint8_t qs[QR_QK / 2]; } qr_block_iq4_nl;

/* 16 sub-blocks of 16; scales[i]: low nibble scale, high nibble min. */
typedef struct {
    uint8_t scales[QR_QK_K / 16];
    uint8_t qs[QR_QK_K / 4];
    uint16_t d, dmin;
} qr_block_q2_k;

/* 16 sub-blocks of 16, 6-bit scales packed into 12 bytes; hmask holds the third bit. */
typedef struct {
    uint8_t hmask[QR_QK_K / 8];
    uint8_t qs[QR_QK_K / 4];
    uint8_t scales[QR_K_SCALE_SIZE];
    uint16_t d;
} qr_block_q3_k;

/* 8 sub-blocks of 32, 6-bit scales and mins packed into 12 bytes. */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[QR_K_SCALE_SIZE];
    uint8_t qs[QR_QK_K / 2];
} qr_block_q4_k;

typedef struct {
    uint16_t d, dmin;
    uint8_t scales[QR_K_SCALE_SIZE];
    uint8_t qh[QR_QK_K / 8];
    uint8_t qs[QR_QK_K / 2];
} qr_block_q5_k;

/* 16 sub-blocks of 16, signed 8-bit scales; low 4 bits in ql, high 2 bits in qh. */
typedef struct {
    uint8_t ql[QR_QK_K / 2];
    uint8_t qh[QR_QK_K / 4];
    int8_t scales[QR_QK_K / 16];
    uint16_t d;
} qr_block_q6_k;

/* Activation format of the K-quant dots: f32 scale, bsums = sums of each 16 qs. */
typedef struct {
    float d;
    int8_t qs[QR_QK_K];
    int16_t bsums[QR_QK_K / 16];
} qr_block_q8_k;

/* 8 sub-blocks of 32; 6-bit scale = scales_l nibble | 2 bits of scales_h << 4. */
typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QR_QK_K / 64];
    uint8_t qs[QR_QK_K / 2];
} qr_block_iq4_xs;

_Static_assert(sizeof(qr_block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(qr_block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(qr_block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(qr_block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(qr_block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(qr_block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(qr_block_iq4_nl) == 18, "block_iq4_nl size");
_Static_assert(sizeof(qr_block_q2_k) == 84, "block_q2_K size");
_Static_assert(sizeof(qr_block_q3_k) == 110, "block_q3_K size");
_Static_assert(sizeof(qr_block_q4_k) == 144, "block_q4_K size");
_Static_assert(sizeof(qr_block_q5_k) == 176, "block_q5_K size");
_Static_assert(sizeof(qr_block_q6_k) == 210, "block_q6_K size");
_Static_assert(sizeof(qr_block_q8_k) == 292, "block_q8_K size");
_Static_assert(sizeof(qr_block_iq4_xs) == 136, "block_iq4_xs size");

#endif
