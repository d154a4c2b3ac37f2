/* Inline AVX2 helpers shared by the SIMD matmul kernels (*_avx2.c and *_avx512.c files,
 * which are compiled with the matching -m flags). Each helper keeps the float rounding
 * steps of the scalar kernels it replaces; integer sums are exact in any order. */
#ifndef QR_BACKEND_CPU_SIMD_AVX2_H
#define QR_BACKEND_CPU_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define QR_INLINE static inline __attribute__((always_inline))

/* acc + 8 int32 lanes, lane l = sum over bytes 4l..4l+3 of u[k] * s[k] (u unsigned, s
 * signed). Without VNNI each pair of products must fit an int16 (maddubs saturates),
 * which every block format here guarantees; so both forms give the same sums. */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define QR_HAVE_VNNI 1
#else
#define QR_HAVE_VNNI 0
#endif

QR_INLINE __m256i qr_dpbusd(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

QR_INLINE __m256i qr_dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* The same for two signed vectors: |w| times s with w's sign moved onto s. */
QR_INLINE __m256i qr_dot_s8s8(__m256i w, __m256i s) {
    return qr_dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w));
}

/* u * s summed over byte pairs, then each int16 pair scaled by sc (int16 lanes). */
QR_INLINE __m256i qr_dot_u8s8_scaled(__m256i u, __m256i s, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc);
}

/* hsum8 of the scalar kernels: r[i] = v[4+i] + v[i], then (r0 + r2) + (r1 + r3). */
QR_INLINE float qr_hsum8_ps(__m256 v) {
    const __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    const __m128 t = _mm_add_ps(r, _mm_movehl_ps(r, r));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

QR_INLINE int32_t qr_hsum8_epi32(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_extracti128_si256(v, 1), _mm256_castsi256_si128(v));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    return _mm_cvtsi128_si32(r);
}

/* Eight lane vectors in, one vector out whose lane k is the sum of v[k]'s lanes. */
QR_INLINE __m256i qr_hsum8x8_epi32(const __m256i v[8]) {
    const __m256i t0 = _mm256_hadd_epi32(v[0], v[1]), t1 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i t2 = _mm256_hadd_epi32(v[4], v[5]), t3 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* 16 packed bytes to 32: low nibbles then high nibbles (the 32-element formats' order). */
QR_INLINE __m256i qr_nibbles32(const uint8_t *p) {
    const __m128i x = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

/* 32 bits to 32 bytes: byte e = 0x10 when bit e is set (Q5's fifth bit). */
QR_INLINE __m256i qr_bits_to_0x10(uint32_t bits) {
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                          _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                                           2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask), _mm256_set1_epi8(0x10));
}

/* Weights stream from memory once per token: ask for the lines QR_PREFETCH_AHEAD bytes
 * past a block while it is being used (rows are contiguous, so this runs on into the
 * next rows; the hardware prefetcher stops at 4 KiB page boundaries, this does not). */
#define QR_PREFETCH_AHEAD 2048
QR_INLINE void qr_prefetch_block(const uint8_t *p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + QR_PREFETCH_AHEAD + off, _MM_HINT_T0);
}

/* The lines of [p, p + bytes) (callers pick the distance). */
QR_INLINE void qr_prefetch_lines(const uint8_t *p, size_t bytes) {
    for (size_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + off, _MM_HINT_T0);
}

QR_INLINE float qr_f16_load(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

#endif
