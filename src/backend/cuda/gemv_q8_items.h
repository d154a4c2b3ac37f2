/* The integer GEMV's per-format decoders (gemv.cu's gemv_q8_kernel): each format's
 * blocks are cut into IPB items, and dot<NC, NR>() multiplies one item of the same weight
 * block of NR rows (staged in shared memory) with the matching quantized activations of
 * NC columns (gemv_q8.h layout) using dp4a, adding the item's float contribution to
 * acc[r * NC + c]. The integer sums are exact; each (row, column)'s float operations are
 * explicit _rn intrinsics in a fixed order, so its result does not depend on NR or NC.
 *
 * Device code, included by gemv.cu after it defines half_at (an fp16 at a 2-byte
 * aligned address as a float) and includes dequant_device.h (qr_k4_scale_min). */
#ifndef QR_BACKEND_CUDA_GEMV_Q8_ITEMS_H
#define QR_BACKEND_CUDA_GEMV_Q8_ITEMS_H

#include <stdint.h>

/* Super-blocks per staged tile of the 256-element formats (Q2_K/Q3_K: twice as many, as
 * they have 2 items per block): 8 gives each lane one item per tile; an override is
 * for tuning runs only (more bytes in flight per warp, more registers). */
#ifndef QR_GEMV_Q8_KTB
#define QR_GEMV_Q8_KTB 8
#endif

namespace qr_q8 {

/* Activation loads are coherent (ld.global.ca), not __ldg's read-only path: the kernel may
 * run as a programmatic dependent of the kernel writing them (pdl.h), and __ldg promises
 * data that no kernel writes while this one lives; its loads may also be hoisted above
 * the dependency wait by the compiler. */
template <class T>
__device__ __forceinline__ T act_ld(const T *p) {
    return __ldca(p);
}

/* The quantized activations of the columns (layout in gemv_q8.h). Offsets are 32-bit (a
 * product's activations are far below 4 GiB), which spares each item's address arithmetic
 * the 64-bit multiply-adds. */
struct Act {
    const uint8_t *base;
    uint32_t stride, d_off, bs_off, s_off;
    __device__ const uint8_t *at(int c, uint32_t off) const { return base + ((uint32_t)c * stride + off); }
    __device__ const int4 *q16(int c, int64_t e) const { /* 16 quants from element e */
        return (const int4 *)at(c, (uint32_t)e);
    }
    __device__ float d(int c, int64_t b) const { return act_ld((const float *)at(c, d_off + 4u * (uint32_t)b)); }
    __device__ float s(int c, int64_t b) const { return act_ld((const float *)at(c, s_off + 4u * (uint32_t)b)); }
    __device__ const int16_t *bs(int c, int64_t g) const { /* from the sum of 16-group g */
        return (const int16_t *)at(c, bs_off + 2u * (uint32_t)g);
    }
};

/* n words from a 2-byte aligned shared-memory address: aligned words, funnel-shifted
 * (reads one word past the end; the stage has a spare chunk). */
template <int N>
__device__ __forceinline__ void ld_words_a2(const uint8_t *p, uint32_t *out) {
    const uint32_t *a = (const uint32_t *)((uintptr_t)p & ~(uintptr_t)3);
    const unsigned sh = ((uintptr_t)p & 2u) * 8u;
    uint32_t w[N + 1];
#pragma unroll
    for (int i = 0; i <= N; i++) w[i] = a[i];
#pragma unroll
    for (int i = 0; i < N; i++) out[i] = __funnelshift_r(w[i], w[i + 1], sh);
}

/* Sum of 16 products of four quant words with 16 activations. */
__device__ __forceinline__ int dot16(const uint32_t *q, const int4 a, int acc) {
    acc = __dp4a((int)q[0], a.x, acc);
    acc = __dp4a((int)q[1], a.y, acc);
    acc = __dp4a((int)q[2], a.z, acc);
    return __dp4a((int)q[3], a.w, acc);
}

/* Bits 0..3 of n to bit 0 of bytes 0..3. */
__device__ __forceinline__ uint32_t spread4(uint32_t n) { return ((n & 0xF) * 0x00204081u) & 0x01010101u; }

/* a * b + c rounded once, whatever the compiler's contraction choices: the same result for every NC. */
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }

/* Per format: TS bytes and QK elements per block, TB blocks per staged tile (TB * TS a
 * multiple of 16 bytes, TB * IPB a multiple of 32), ROWS rows per warp for one or two
 * columns (2 for the 4- to 6-bit formats: cuda_gemv_bench on an H100, 4096 x 14336 Q4_K
 * 22.6 -> 14.4 us, Q6_K 24.3 -> 20.0, Q4_0 18.9 -> 14.3; 1 for Q8_0, whose weight bytes
 * outweigh its activation loads and which lost 4.5% of 8B decode with two), and
 * dot<NC, NR>(): item `it` (< IPB)
 * of the blocks at b[0..NR-1] in shared memory (the same block, global index gb, of NR
 * rows) into acc[r * NC + c]. Every item reads its weights once for all columns and each
 * column's activations once for all rows; each (row, column) keeps the float operations
 * and order of a single row and column, so results do not depend on NR or NC. */

/* 32-element blocks with a 4-bit or 5-bit low part: lo/hi = elements 0..15 / 16..31 of row r. */
template <int NC, int NR, bool MIN>
__device__ __forceinline__ void dot_q32(const uint32_t (*lo)[4], const uint32_t (*hi)[4], const float *d,
                                        const float *m, int offset, int64_t gb, const Act &a, float *acc) {
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const int4 *x = a.q16(c, gb * 32);
        const int4 x0 = act_ld(x), x1 = act_ld(x + 1);
        int off = 0;
        if (offset) {
            const int two = act_ld((const int *)a.bs(c, 2 * gb)); /* both 16-sums of the block */
            off = offset * ((int)(int16_t)(two & 0xFFFF) + (two >> 16));
        }
        const float ad = a.d(c, gb), as = MIN ? a.s(c, gb) : 0.0f;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            const int isum = dot16(hi[r], x1, dot16(lo[r], x0, 0)) - off;
            const float t = __fmul_rn(__fmul_rn(d[r], ad), (float)isum);
            acc[r * NC + c] = __fadd_rn(acc[r * NC + c], MIN ? fma_rn(m[r], as, t) : t);
        }
    }
}

struct IQ4_1 {
    static constexpr int TS = 20, QK = 32, TB = 64, IPB = 1, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int, int64_t gb, const Act &a, float *acc) {
        uint32_t lo[NR][4], hi[NR][4];
        float d[NR], m[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint32_t w = ((const uint32_t *)(b[r] + 4))[i];
                lo[r][i] = w & 0x0F0F0F0F, hi[r][i] = (w >> 4) & 0x0F0F0F0F;
            }
            d[r] = half_at(b[r]), m[r] = half_at(b[r] + 2);
        }
        dot_q32<NC, NR, true>(lo, hi, d, m, 0, gb, a, acc);
    }
};

/* Q5_0/Q5_1: the fifth bit of element j is bit j of qh. */
template <bool ONE>
struct IQ5 {
    static constexpr int TS = ONE ? 24 : 22, QK = 32, TB = 64, IPB = 1, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int, int64_t gb, const Act &a, float *acc) {
        constexpr int QH = ONE ? 4 : 2;
        uint32_t lo[NR][4], hi[NR][4];
        float d[NR], m[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            uint32_t w[5];
            ld_words_a2<5>(b[r] + QH, w); /* qh, then the 16 bytes of qs */
#pragma unroll
            for (int i = 0; i < 4; i++) {
                lo[r][i] = (w[i + 1] & 0x0F0F0F0F) | spread4(w[0] >> (4 * i)) << 4;
                hi[r][i] = ((w[i + 1] >> 4) & 0x0F0F0F0F) | spread4(w[0] >> (16 + 4 * i)) << 4;
            }
            d[r] = half_at(b[r]), m[r] = ONE ? half_at(b[r] + 2) : 0.0f;
        }
        dot_q32<NC, NR, ONE>(lo, hi, d, m, ONE ? 0 : 16, gb, a, acc);
    }
};

/* The IQ4_NL codebook values (llama.cpp kvalues_iq4nl) of the four nibbles in bytes 0..3
 * of v (each < 16): two byte permutes of the table's halves, picked by bit 3. */
__device__ __forceinline__ uint32_t iq4_lookup(uint32_t v) {
    constexpr uint32_t T0 = 0xBFAD9881u, T1 = 0xF6EADDCFu; /* -127 -104 -83 -65 | -49 -35 -22 -10 */
    constexpr uint32_t T2 = 0x26190D01u, T3 = 0x71594535u; /*    1   13  25  38 |  53  69  89 113 */
    const uint32_t x = v & 0x07070707u, y = x | x >> 4;
    const uint32_t sel = (y & 0xFFu) | (y >> 8 & 0xFF00u); /* the four 3-bit indices as nibbles */
    const uint32_t lo = __byte_perm(T0, T1, sel), hi = __byte_perm(T2, T3, sel);
    const uint32_t m = ((v >> 3) & 0x01010101u) * 0xFFu;
    return (lo & ~m) | (hi & m);
}

/* Q4_0 (values q - 8) and IQ4_NL (codebook values): d, then 16 bytes whose low nibbles
 * are elements 0..15 and high nibbles 16..31. */
template <bool NL>
struct IQ4_32 {
    static constexpr int TS = 18, QK = 32, TB = 64, IPB = 1, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int, int64_t gb, const Act &a, float *acc) {
        uint32_t lo[NR][4], hi[NR][4];
        float d[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            uint32_t w[4];
            ld_words_a2<4>(b[r] + 2, w);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                lo[r][i] = w[i] & 0x0F0F0F0F, hi[r][i] = (w[i] >> 4) & 0x0F0F0F0F;
                if (NL) lo[r][i] = iq4_lookup(lo[r][i]), hi[r][i] = iq4_lookup(hi[r][i]);
            }
            d[r] = half_at(b[r]);
        }
        dot_q32<NC, NR, false>(lo, hi, d, d, NL ? 0 : 8, gb, a, acc);
    }
};

/* Q8_0: item h = elements 16h..16h+15. */
struct IQ8_0 {
    static constexpr int TS = 34, QK = 32, TB = 64, IPB = 2, ROWS = 1;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int h, int64_t gb, const Act &a, float *acc) {
        uint32_t w[NR][4];
        float d[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) ld_words_a2<4>(b[r] + 2 + 16 * h, w[r]), d[r] = half_at(b[r]);
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int4 x = act_ld(a.q16(c, gb * 32 + 16 * h));
            const float ad = a.d(c, gb);
#pragma unroll
            for (int r = 0; r < NR; r++)
                acc[r * NC + c] = __fadd_rn(acc[r * NC + c], __fmul_rn(__fmul_rn(d[r], ad), (float)dot16(w[r], x, 0)));
        }
    }
};

/* K-quants: acc += d8 * (d * sum(sc * isum) - dmin * sum(m * bsum)), the integer sums
 * over the item's groups exact (d8: the column's block scale). */
__device__ __forceinline__ void acc_k(float &acc, float d8, float d, int si, float dmin, int mi) {
    const float t = fma_rn(-dmin, (float)mi, __fmul_rn(d, (float)si)); /* exact d * si when mi = 0 */
    acc = fma_rn(d8, t, acc);
}

/* The 6-bit scales and mins of sub-blocks 2p and 2p + 1 of a Q4_K/Q5_K block (q: its 12
 * scale bytes, 4-byte aligned), as qr_k4_scale_min decodes them, without branches: the
 * lanes of a warp hold items p = 0..3 side by side, and qr_k4_scale_min's two paths
 * (j < 4, j >= 4) would run one after the other. Bytes: q[0..3] = a, q[4..7] = bb,
 * q[8..11] = c; sub-blocks 0..3: sc = a & 63, m = bb & 63; 4..7: sc = c's low nibble |
 * a's top two bits << 4, m = c's high nibble | bb's top two bits << 4. */
__device__ __forceinline__ void k4_scale_min_pair(const uint8_t *q, int p, int *sc0, int *m0, int *sc1, int *m1) {
    const uint32_t a = ((const uint32_t *)q)[0], bb = ((const uint32_t *)q)[1], c = ((const uint32_t *)q)[2];
    const bool hi = p >= 2;
    const uint32_t sc = hi ? (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u) : a & 0x3F3F3F3Fu;
    const uint32_t m = hi ? ((c >> 4) & 0x0F0F0F0Fu) | ((bb >> 2) & 0x30303030u) : bb & 0x3F3F3F3Fu;
    const unsigned sh = 16u * (unsigned)(p & 1); /* sub-blocks 2p, 2p + 1 are bytes 2(p % 2), +1 */
    *sc0 = (int)((sc >> sh) & 0xFF), *sc1 = (int)((sc >> (sh + 8)) & 0xFF);
    *m0 = (int)((m >> sh) & 0xFF), *m1 = (int)((m >> (sh + 8)) & 0xFF);
}

/* Q4_K/Q5_K: item p = sub-blocks 2p (low nibbles of qs[32p..32p+31]) and 2p+1 (high). */
template <bool FIVE>
struct IK45 {
    static constexpr int TS = FIVE ? 176 : 144, QK = 256, TB = QR_GEMV_Q8_KTB, IPB = 4, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int p, int64_t gb, const Act &a, float *acc) {
        uint32_t lo[NR][8], hi[NR][8];
        int sc0[NR], m0[NR], sc1[NR], m1[NR];
        float d[NR], dmin[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            const uint4 *qs = (const uint4 *)(b[r] + (FIVE ? 48 : 16) + 32 * p);
            const uint4 u0 = qs[0], u1 = qs[1];
            const uint32_t w[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
            for (int i = 0; i < 8; i++) lo[r][i] = w[i] & 0x0F0F0F0F, hi[r][i] = (w[i] >> 4) & 0x0F0F0F0F;
            if (FIVE) {
                const uint4 h0 = ((const uint4 *)(b[r] + 16))[0], h1 = ((const uint4 *)(b[r] + 16))[1];
                const uint32_t qh[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    lo[r][i] |= ((qh[i] >> (2 * p)) & 0x01010101) << 4;
                    hi[r][i] |= ((qh[i] >> (2 * p + 1)) & 0x01010101) << 4;
                }
            }
            k4_scale_min_pair(b[r] + 4, p, &sc0[r], &m0[r], &sc1[r], &m1[r]);
            d[r] = half_at(b[r]), dmin[r] = half_at(b[r] + 2);
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int4 *x = a.q16(c, gb * 256 + 64 * p);
            const int4 x0 = act_ld(x), x1 = act_ld(x + 1), x2 = act_ld(x + 2), x3 = act_ld(x + 3);
            const short4 bs = act_ld((const short4 *)a.bs(c, gb * 16 + 4 * p));
            const float d8 = a.d(c, gb);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                const int i0 = dot16(lo[r] + 4, x1, dot16(lo[r], x0, 0));
                const int i1 = dot16(hi[r] + 4, x3, dot16(hi[r], x2, 0));
                acc_k(acc[r * NC + c], d8, d[r], sc0[r] * i0 + sc1[r] * i1, dmin[r],
                      m0[r] * (bs.x + bs.y) + m1[r] * (bs.z + bs.w));
            }
        }
    }
};

/* IQ4_XS: item p = sub-blocks 2p and 2p + 1 (qs[32p..32p+31], each 16 bytes as IQ4_NL's),
 * 6-bit scales - 32 (low nibble p of scales_l, bits 2s of scales_h). */
struct IIQ4_XS {
    static constexpr int TS = 136, QK = 256, TB = QR_GEMV_Q8_KTB, IPB = 4, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int p, int64_t gb, const Act &a, float *acc) {
        uint32_t lo[NR][8], hi[NR][8];
        int s0[NR], s1[NR];
        float d[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const uint32_t w = ((const uint32_t *)(b[r] + 8 + 32 * p))[i];
                lo[r][i] = iq4_lookup(w & 0x0F0F0F0F), hi[r][i] = iq4_lookup((w >> 4) & 0x0F0F0F0F);
            }
            const int sh = *(const uint16_t *)(b[r] + 2), sl = b[r][4 + p];
            s0[r] = ((sl & 0xF) | ((sh >> (4 * p)) & 3) << 4) - 32;
            s1[r] = ((sl >> 4) | ((sh >> (4 * p + 2)) & 3) << 4) - 32;
            d[r] = half_at(b[r]);
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int4 *x = a.q16(c, gb * 256 + 64 * p);
            const int4 x0 = act_ld(x), x1 = act_ld(x + 1), x2 = act_ld(x + 2), x3 = act_ld(x + 3);
            const float d8 = a.d(c, gb);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                const int i0 = dot16(hi[r], x1, dot16(lo[r], x0, 0));
                const int i1 = dot16(hi[r] + 4, x3, dot16(lo[r] + 4, x2, 0));
                acc_k(acc[r * NC + c], d8, d[r], s0[r] * i0 + s1[r] * i1, 0.0f, 0);
            }
        }
    }
};

/* Q6_K: item p = (h, j) = (p / 2, p % 2): elements 128h + 32k + l for k = j (low nibbles
 * of ql[64h + 32j + l]) and k = j + 2 (high nibbles); bits 2k of qh[32h + l] on top;
 * group 8h + 2k + l / 16 has scale sc; quants are stored + 32. */
struct IQ6_K {
    static constexpr int TS = 210, QK = 256, TB = QR_GEMV_Q8_KTB, IPB = 4, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int p, int64_t gb, const Act &a, float *acc) {
        const int h = p / 2, j = p % 2;
        uint32_t q[NR][2][8];
        int s[NR][4];
        float d[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
            uint32_t ql[8], qh[8];
            ld_words_a2<8>(b[r] + 64 * h + 32 * j, ql);
            ld_words_a2<8>(b[r] + 128 + 32 * h, qh);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                q[r][0][i] = (ql[i] & 0x0F0F0F0F) | ((qh[i] >> (2 * j)) & 0x03030303) << 4;
                q[r][1][i] = ((ql[i] >> 4) & 0x0F0F0F0F) | ((qh[i] >> (2 * j + 4)) & 0x03030303) << 4;
            }
            const int8_t *sc = (const int8_t *)b[r] + 192 + 8 * h + 2 * j; /* groups g, g+1, g+4, g+5 */
            s[r][0] = sc[0], s[r][1] = sc[1], s[r][2] = sc[4], s[r][3] = sc[5];
            d[r] = half_at(b[r] + 208);
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int64_t e = gb * 256 + 128 * h + 32 * j;
            const int4 *x = a.q16(c, e);
            const int16_t *bs = a.bs(c, e / 16);
            int4 xv[2][2];
            int bsum[2][2];
#pragma unroll
            for (int k = 0; k < 2; k++) /* k = j, then j + 2 (64 elements on) */
#pragma unroll
                for (int g = 0; g < 2; g++) xv[k][g] = act_ld(x + 4 * k + g), bsum[k][g] = act_ld(bs + 4 * k + g);
            const float d8 = a.d(c, gb);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                int si = 0;
#pragma unroll
                for (int k = 0; k < 2; k++)
#pragma unroll
                    for (int g = 0; g < 2; g++)
                        si += s[r][2 * k + g] * (dot16(q[r][k] + 4 * g, xv[k][g], 0) - 32 * bsum[k][g]);
                acc_k(acc[r * NC + c], d8, d[r], si, 0.0f, 0);
            }
        }
    }
};

/* Q2_K / Q3_K: item h = elements 128h + 32k + l (k < 4, l < 32) with 2-bit quants in
 * bits 2k of qs[32h + l]; group 8h + 2k + l / 16. */
struct IQ2_K {
    static constexpr int TS = 84, QK = 256, TB = 2 * QR_GEMV_Q8_KTB, IPB = 2, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int h, int64_t gb, const Act &a, float *acc) {
        uint32_t w[NR][8];
        float d[NR], dmin[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) {
#pragma unroll
            for (int i = 0; i < 8; i++) w[r][i] = ((const uint32_t *)(b[r] + 16 + 32 * h))[i];
            d[r] = half_at(b[r] + 80), dmin[r] = half_at(b[r] + 82);
        }
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int64_t e = gb * 256 + 128 * h;
            const int4 *x = a.q16(c, e);
            const int16_t *bs = a.bs(c, e / 16);
            const float d8 = a.d(c, gb);
#pragma unroll
            for (int r = 0; r < NR; r++) {
                const uint8_t *sc = b[r] + 8 * h;
                int si = 0, mi = 0;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    uint32_t q[8];
#pragma unroll
                    for (int i = 0; i < 8; i++) q[i] = (w[r][i] >> (2 * k)) & 0x03030303;
#pragma unroll
                    for (int g = 0; g < 2; g++) {
                        const int s = sc[2 * k + g];
                        si += (s & 0xF) * dot16(q + 4 * g, act_ld(x + 2 * k + g), 0);
                        mi += (s >> 4) * (int)act_ld(bs + 2 * k + g);
                    }
                }
                acc_k(acc[r * NC + c], d8, d[r], si, dmin[r], mi);
            }
        }
    }
};

/* Q3_K: the third bit is bit 4h + k of hmask[l], set meaning +0 and clear -4 (so the
 * stored value is q + 4 with the bit as bit 2); 6-bit scales - 32. */
struct IQ3_K {
    static constexpr int TS = 110, QK = 256, TB = 2 * QR_GEMV_Q8_KTB, IPB = 2, ROWS = 2;
    template <int NC, int NR>
    __device__ static void dot(const uint8_t *const *b, int h, int64_t gb, const Act &a, float *acc) {
#pragma unroll
        for (int r = 0; r < NR; r++) { /* registers: one row at a time (the activations come from L1) */
            uint32_t w[8], hm[8];
            ld_words_a2<8>(b[r] + 32 + 32 * h, w);
            ld_words_a2<8>(b[r], hm);
            int s[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int g = 8 * h + i;
                const int lo = g < 8 ? b[r][96 + g] & 0x0F : b[r][96 + g - 8] >> 4;
                s[i] = (lo | ((b[r][104 + g % 4] >> (2 * (g / 4))) & 3) << 4) - 32;
            }
            const float d = half_at(b[r] + 108);
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int64_t e = gb * 256 + 128 * h;
                const int4 *x = a.q16(c, e);
                const int16_t *bs = a.bs(c, e / 16);
                int si = 0;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    uint32_t q[8];
#pragma unroll
                    for (int i = 0; i < 8; i++)
                        q[i] = ((w[i] >> (2 * k)) & 0x03030303) | ((hm[i] >> (4 * h + k)) & 0x01010101) << 2;
#pragma unroll
                    for (int g = 0; g < 2; g++)
                        si += s[2 * k + g] * (dot16(q + 4 * g, act_ld(x + 2 * k + g), 0) - 4 * (int)act_ld(bs + 2 * k + g));
                }
                acc_k(acc[r * NC + c], a.d(c, gb), d, si, 0.0f, 0);
            }
        }
    }
};

} // namespace qr_q8

#endif
