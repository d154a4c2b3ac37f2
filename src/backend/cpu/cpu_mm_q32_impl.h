/* AVX2 matmul for the 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL)
 * against Q8_0 / Q8_1 activations, in the float order of qr_cpu_vdot_q32:
 *
 *   - Q4_1, Q5_0, Q5_1, Q8_0: per block 8 int32 lanes (lane l = elements 4l..4l+3, which
 *     is what maddubs + madd produce), acc = fma(dw * da, float(lanes), acc); Q4_1 and
 *     Q5_1 add a scalar chain of fma(m, s) after the final hsum8;
 *   - Q4_0, IQ4_NL: one int sum per block and a scalar fma chain over the blocks; the
 *     sums of 8 blocks come out of one transposing reduction.
 * Each weight block is unpacked once and met by up to 4 activation rows (prompt batches). */
/* Included by one small .c file per instruction set (*_avx2.c, *_avx512.c), which
 * defines QR_KFN to name the entry point; the AVX-512 build turns maddubs + madd into
 * VNNI dot products (cpu_simd_avx2.h). It may also define QR_Q32_DECODE_Q4_0 and
 * QR_Q32_DECODE_LANES (Q5_0, Q8_0): wider single-row kernels with the same bits. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd_avx2.h"

#define ROWS_PER_PASS 4

static const int8_t IQ4NL_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

typedef struct q32_fmt {
    qr_type t;
    size_t bytes;    /* block size */
    bool has_min;    /* Q4_1 / Q5_1: element = d*q + m */
    bool is_signed;  /* quants are signed after unpacking */
    bool per_block;  /* Q4_0 / IQ4_NL: scalar chain of block sums */
} q32_fmt;

/* The block's 32 quants in element order (see unpack_block32 in cpu_matmul.c). */
QR_INLINE __m256i unpack(qr_type t, const uint8_t *b) {
    switch (t) {
    case QR_TYPE_Q4_0:
        return _mm256_sub_epi8(qr_nibbles32(b + 2), _mm256_set1_epi8(8));
    case QR_TYPE_Q4_1:
        return qr_nibbles32(b + 4);
    case QR_TYPE_Q5_0: {
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        return _mm256_sub_epi8(_mm256_or_si256(qr_nibbles32(b + 6), qr_bits_to_0x10(qh)), _mm256_set1_epi8(16));
    }
    case QR_TYPE_Q5_1: {
        uint32_t qh;
        memcpy(&qh, b + 4, 4);
        return _mm256_or_si256(qr_nibbles32(b + 8), qr_bits_to_0x10(qh));
    }
    case QR_TYPE_Q8_0:
        return _mm256_loadu_si256((const __m256i *)(b + 2));
    default: { /* IQ4_NL */
        const __m128i tab = _mm_loadu_si128((const __m128i *)IQ4NL_VALUES);
        return _mm256_shuffle_epi8(_mm256_set_m128i(tab, tab), qr_nibbles32(b + 2));
    }
    }
}

QR_INLINE __m256i lanes(const q32_fmt *f, __m256i w, const int8_t *a) {
    const __m256i av = _mm256_loadu_si256((const __m256i *)a);
    return f->is_signed ? qr_dot_s8s8(w, av) : qr_dot_u8s8(w, av);
}

/* Outputs of one weight row for activation rows r0 .. r0+nr-1, 8-lane formats. */
QR_INLINE void rows_lanes(const q32_fmt *f, const mm_job *j, const uint8_t *wrow, int64_t o, int64_t r0, int nr) {
    const int64_t nb = j->n_in / 32;
    __m256 acc[ROWS_PER_PASS];
    float summs[ROWS_PER_PASS];
    for (int k = 0; k < nr; k++) acc[k] = _mm256_setzero_ps(), summs[k] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = wrow + (size_t)b * f->bytes;
        if (b % 2 == 0) qr_prefetch_block(blk, 2 * f->bytes);
        const __m256i w = unpack(f->t, blk);
        const float dw = qr_f16_load(blk);
        for (int k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            const __m256i l = lanes(f, w, j->xq.q + r * j->n_in + b * 32);
            const float dd = dw * j->xq.d[r * nb + b];
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(l), acc[k]);
            if (f->has_min) summs[k] = fmaf(qr_f16_load(blk + 2), j->xq.s[r * nb + b], summs[k]);
        }
    }
    for (int k = 0; k < nr; k++) {
        const float s = qr_hsum8_ps(acc[k]);
        j->y[(r0 + k) * j->n_out + o] = f->has_min ? s + summs[k] : s;
    }
}

/* The per-block chain of Q4_0 (fma(isum * dw, da, sum)) and IQ4_NL (fma(dw * da, isum, sum)). */
QR_INLINE float chain_step(qr_type t, float sum, int32_t isum, float dw, float da) {
    return t == QR_TYPE_Q4_0 ? fmaf((float)isum * dw, da, sum) : fmaf(dw * da, (float)isum, sum);
}

/* Q4_0 / IQ4_NL quants as unsigned bytes q + off (nibble, or IQ4_NL value + 128): the
 * block sum is then dot(u, a) - off * sum(a), one VNNI instruction per block. */
QR_INLINE __m256i unpack_offset(qr_type t, const uint8_t *b) {
    if (t == QR_TYPE_Q4_0) return qr_nibbles32(b + 2);
    static const uint8_t IQ4NL_U8[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
    const __m128i tab = _mm_loadu_si128((const __m128i *)IQ4NL_U8);
    return _mm256_shuffle_epi8(_mm256_set_m128i(tab, tab), qr_nibbles32(b + 2));
}

/* Eight blocks of one row: the weight side unpacked once (u, dw), then per activation row
 * eight exact block sums in one vector and the scalar chain over them. */
QR_INLINE void rows_per_block(const q32_fmt *f, const mm_job *j, const uint8_t *wrow, int64_t o, int64_t r0, int nr) {
    const int64_t nb = j->n_in / 32;
    /* IQ4_NL + 128 reaches 241: without VNNI (maddubs saturates int16 pairs) it keeps its
     * signed quants and the sign trick instead. */
    const bool offset = f->t == QR_TYPE_Q4_0 || QR_HAVE_VNNI;
    const int shift = f->t == QR_TYPE_Q4_0 ? 3 : 7; /* off = 8 or 128 */
    float sum[ROWS_PER_PASS] = {0};
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256i u[8];
        uint16_t dh[8];
        qr_prefetch_block(wrow + (size_t)b * f->bytes, 8 * f->bytes);
        for (int i = 0; i < 8; i++) {
            const uint8_t *blk = wrow + (size_t)(b + i) * f->bytes;
            u[i] = offset ? unpack_offset(f->t, blk) : unpack(f->t, blk);
            memcpy(&dh[i], blk, 2);
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
        for (int k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            const int8_t *a = j->xq.q + r * j->n_in + b * 32;
            __m256i l[8];
            for (int i = 0; i < 8; i++) {
                l[i] = offset ? qr_dot_u8s8(u[i], _mm256_loadu_si256((const __m256i *)(a + 32 * i))) : lanes(f, u[i], a + 32 * i);
            }
            __m256i is = qr_hsum8x8_epi32(l);
            if (offset) is = _mm256_sub_epi32(is, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(j->xq.sum + r * nb + b)), shift));
            const __m256 isum = _mm256_cvtepi32_ps(is);
            const __m256 da = _mm256_loadu_ps(j->xq.d + r * nb + b);
            float t[8], v[8];
            /* Q4_0: fma(isum * dw, da); IQ4_NL: fma(dw * da, isum). */
            if (f->t == QR_TYPE_Q4_0) {
                _mm256_storeu_ps(t, _mm256_mul_ps(isum, dw));
                _mm256_storeu_ps(v, da);
            } else {
                _mm256_storeu_ps(t, _mm256_mul_ps(dw, da));
                _mm256_storeu_ps(v, isum);
            }
            float acc = sum[k];
            for (int i = 0; i < 8; i++) acc = fmaf(t[i], v[i], acc);
            sum[k] = acc;
        }
    }
    for (; b < nb; b++) {
        const uint8_t *blk = wrow + (size_t)b * f->bytes;
        const __m256i w = unpack(f->t, blk);
        const float dw = qr_f16_load(blk);
        for (int k = 0; k < nr; k++) {
            const int64_t r = r0 + k;
            const int32_t is = qr_hsum8_epi32(lanes(f, w, j->xq.q + r * j->n_in + b * 32));
            sum[k] = chain_step(f->t, sum[k], is, dw, j->xq.d[r * nb + b]);
        }
    }
    for (int k = 0; k < nr; k++) j->y[(r0 + k) * j->n_out + o] = sum[k];
}

/* ---- Decode: one activation row, WR weight rows at a time --------------------------------
 * A weight row's float chain (one fma per block) is a dependency chain of the FMA latency
 * per block; running WR rows side by side overlaps their chains and loads each activation
 * block once for all of them. Each row's own operations stay those of the kernels above. */
#define WR 4

QR_INLINE void decode_per_block(const q32_fmt *f, const mm_job *j, int64_t o, const int nw) {
    const int64_t nb = j->n_in / 32;
    const bool offset = f->t == QR_TYPE_Q4_0 || QR_HAVE_VNNI;
    const int shift = f->t == QR_TYPE_Q4_0 ? 3 : 7;
    float sum[WR] = {0};
    const int8_t *a = j->xq.q;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256i av[8];
        for (int i = 0; i < 8; i++) av[i] = _mm256_loadu_si256((const __m256i *)(a + 32 * (b + i)));
        const __m256i off = _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(j->xq.sum + b)), shift);
        const __m256 da = _mm256_loadu_ps(j->xq.d + b);
        float t[WR][8], v[WR][8];
        for (int w = 0; w < nw; w++) {
            const uint8_t *wrow = j->w + (size_t)(o + w) * j->row_bytes + (size_t)b * f->bytes;
            /* the same place in the next group of rows: the streams stay a group ahead */
            qr_prefetch_lines(wrow + (size_t)WR * j->row_bytes, 8 * f->bytes);
            __m256i l[8];
            uint16_t dh[8];
            for (int i = 0; i < 8; i++) {
                const uint8_t *blk = wrow + (size_t)i * f->bytes;
                l[i] = offset ? qr_dot_u8s8(unpack_offset(f->t, blk), av[i]) : qr_dot_s8s8(unpack(f->t, blk), av[i]);
                memcpy(&dh[i], blk, 2);
            }
            __m256i is = qr_hsum8x8_epi32(l);
            if (offset) is = _mm256_sub_epi32(is, off);
            const __m256 isum = _mm256_cvtepi32_ps(is), dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
            if (f->t == QR_TYPE_Q4_0) {
                _mm256_storeu_ps(t[w], _mm256_mul_ps(isum, dw));
                _mm256_storeu_ps(v[w], da);
            } else {
                _mm256_storeu_ps(t[w], _mm256_mul_ps(dw, da));
                _mm256_storeu_ps(v[w], isum);
            }
        }
        for (int i = 0; i < 8; i++) {
            for (int w = 0; w < nw; w++) sum[w] = fmaf(t[w][i], v[w][i], sum[w]);
        }
    }
    for (; b < nb; b++) {
        for (int w = 0; w < nw; w++) {
            const uint8_t *blk = j->w + (size_t)(o + w) * j->row_bytes + (size_t)b * f->bytes;
            const int32_t is = qr_hsum8_epi32(lanes(f, unpack(f->t, blk), a + b * 32));
            sum[w] = chain_step(f->t, sum[w], is, qr_f16_load(blk), j->xq.d[b]);
        }
    }
    for (int w = 0; w < nw; w++) j->y[o + w] = sum[w];
}

QR_INLINE void decode_lanes(const q32_fmt *f, const mm_job *j, int64_t o, const int nw) {
    const int64_t nb = j->n_in / 32;
    __m256 acc[WR];
    float summs[WR];
    for (int w = 0; w < nw; w++) acc[w] = _mm256_setzero_ps(), summs[w] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const __m256i av = _mm256_loadu_si256((const __m256i *)(j->xq.q + b * 32));
        const float da = j->xq.d[b];
        for (int w = 0; w < nw; w++) {
            const uint8_t *blk = j->w + (size_t)(o + w) * j->row_bytes + (size_t)b * f->bytes;
            if (b % 2 == 0) qr_prefetch_lines(blk + (size_t)WR * j->row_bytes, 2 * f->bytes);
            const __m256i q = unpack(f->t, blk);
            const __m256i l = f->is_signed ? qr_dot_s8s8(q, av) : qr_dot_u8s8(q, av);
            acc[w] = _mm256_fmadd_ps(_mm256_set1_ps(qr_f16_load(blk) * da), _mm256_cvtepi32_ps(l), acc[w]);
            if (f->has_min) summs[w] = fmaf(qr_f16_load(blk + 2), j->xq.s[b], summs[w]);
        }
    }
    for (int w = 0; w < nw; w++) {
        const float s = qr_hsum8_ps(acc[w]);
        j->y[o + w] = f->has_min ? s + summs[w] : s;
    }
}

QR_INLINE void run_decode(const q32_fmt *f, const mm_job *j, int64_t o0, int64_t o1) {
    int64_t o = o0;
    for (; o + WR <= o1; o += WR) {
        if (f->per_block) decode_per_block(f, j, o, WR);
        else decode_lanes(f, j, o, WR);
    }
    for (; o < o1; o++) {
        if (f->per_block) decode_per_block(f, j, o, 1);
        else decode_lanes(f, j, o, 1);
    }
}

QR_INLINE void run(const q32_fmt f, const mm_job *j, int64_t o0, int64_t o1) {
    if (j->n_rows == 1) {
#ifdef QR_Q32_DECODE_Q4_0
        /* a wider decode kernel where the instruction set has one (same bits) */
        if (f.t == QR_TYPE_Q4_0) {
            QR_Q32_DECODE_Q4_0(j, o0, o1);
            return;
        }
        if (f.t == QR_TYPE_Q8_0 || f.t == QR_TYPE_Q5_0) {
            QR_Q32_DECODE_LANES(f.t, j, o0, o1);
            return;
        }
#endif
        run_decode(&f, j, o0, o1);
        return;
    }
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *wrow = j->w + (size_t)o * j->row_bytes;
        for (int64_t r0 = 0; r0 < j->n_rows; r0 += ROWS_PER_PASS) {
            const int nr = j->n_rows - r0 < ROWS_PER_PASS ? (int)(j->n_rows - r0) : ROWS_PER_PASS;
            if (f.per_block) rows_per_block(&f, j, wrow, o, r0, nr);
            else rows_lanes(&f, j, wrow, o, r0, nr);
        }
    }
}

bool QR_KFN(qr_cpu_mm_q32)(const mm_job *j, int64_t o0, int64_t o1) {
    switch (j->wtype) {
    case QR_TYPE_Q4_0: run((q32_fmt){QR_TYPE_Q4_0, 18, false, true, true}, j, o0, o1); return true;
    case QR_TYPE_Q4_1: run((q32_fmt){QR_TYPE_Q4_1, 20, true, false, false}, j, o0, o1); return true;
    case QR_TYPE_Q5_0: run((q32_fmt){QR_TYPE_Q5_0, 22, false, true, false}, j, o0, o1); return true;
    case QR_TYPE_Q5_1: run((q32_fmt){QR_TYPE_Q5_1, 24, true, false, false}, j, o0, o1); return true;
    case QR_TYPE_Q8_0: run((q32_fmt){QR_TYPE_Q8_0, 34, false, true, false}, j, o0, o1); return true;
    case QR_TYPE_IQ4_NL: run((q32_fmt){QR_TYPE_IQ4_NL, 18, false, true, true}, j, o0, o1); return true;
    default: return false;
    }
}
