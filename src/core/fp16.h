/* IEEE half and bfloat16 conversions, bit-exact with ggml's reference conversions:
 * F32->F16 and F32->BF16 round to nearest even; BF16 conversion quiets NaNs. */
#ifndef QR_CORE_FP16_H
#define QR_CORE_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t qr_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qr_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qr_f16_to_f32(uint16_t h);
uint16_t qr_f32_to_f16(float f);

static inline float qr_bf16_to_f32(uint16_t b) { return qr_bits_f32((uint32_t)b << 16); }

static inline uint16_t qr_f32_to_bf16(float f) {
    uint32_t u = qr_f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

#endif
