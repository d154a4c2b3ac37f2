/* Quantized matrix-vector products y = W x (and Y = W X for up to 8 columns) straight
 * from the GGUF block formats (docs/cuda.md).
 *
 * One warp per row (the integer GEMV: two for the 4- to 6-bit formats, gemv_q8_kernel).
 * The warp walks its row in tiles of whole blocks whose size is a multiple of 16 bytes:
 * every lane fetches the tile with 16-byte coalesced loads (the
 * next tile's loads are issued before the current one is decoded, so several are in
 * flight per lane) and parks it in shared memory. Staging makes the same 16-byte loads
 * work for blocks of 18, 34 or 210 bytes, which are not 16-byte aligned themselves.
 * The lanes then decode the tile's per-16-element scales into shared memory once, and
 * walk its elements four per lane, so the warp's reads of x are contiguous.
 *
 * Integer quants become exact floats with the 2^23 trick (byte | 0x4B000000 is the float
 * 2^23 + byte: a byte permute and an add, where an int-to-float conversion runs at a
 * quarter of the FMA rate), the dot with x is F32 FMAs, and each 16-element group's
 * scale (and min) is applied once per lane and group. Each lane accumulates in a fixed
 * order and the warp reduces with a fixed butterfly, so a row's result is the same for
 * any batch size.
 *
 * The integer GEMV (gemv_q8_kernel, gemv_q8.h) stages weight tiles the same way, but
 * takes activations quantized to int8 as the CPU backend quantizes them
 * (quantize_act.cu) and multiplies them with the weights' integer quants with dp4a,
 * four products per instruction: about one instruction per weight where the float path
 * spends five. The per-format decoders are in gemv_q8_items.h. The float path remains
 * for F32/F16/BF16, for the formats without an integer decoder, and for comparisons. */
#include <cuda_fp16.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/dequant_device.h"
#include "backend/cuda/gemv_q8.h"
#include "backend/cuda/pdl.h"

namespace {

constexpr int kWarps = 4; /* rows per CTA */

/* Resident CTAs per SM the block kernels ask the compiler to fit for 1-2 columns (caps
 * their registers at 65536 / (128 * this)); an override is for tuning runs only. */
#ifndef QR_GEMV_MIN_BLOCKS
#define QR_GEMV_MIN_BLOCKS 6
#endif
/* The same for the integer GEMV's products of at most QR_GEMV_SMALL_ROWS rows (one or two
 * columns): fewer resident CTAs but more registers each. On an H100 (cuda_gemv_bench) this
 * took 4096 x 14336 Q8_0 from 30.2 to 24.0 us and Q6_K from 26.8 to 22.3, where the
 * 14336- and 128256-row products got slower; 8B Q8_0 decode 257 -> 274 t/s. */
#ifndef QR_GEMV_SMALL_MINB
#define QR_GEMV_SMALL_MINB 4
#endif
#define QR_GEMV_SMALL_ROWS 4096

/* Streams weights past L1 (read once) so x stays cached there. */
__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* Byte k of w minus bias, exactly, as a float. */
__device__ __forceinline__ float byte_f(uint32_t w, int k, float bias) {
    return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440u | (unsigned)k)) -
           (8388608.0f + bias);
}

/* 4 bytes at a 2-byte aligned shared-memory address. */
__device__ __forceinline__ uint32_t ld32_a2(const uint8_t *p) {
    const uint16_t *h = (const uint16_t *)p;
    return (uint32_t)h[0] | (uint32_t)h[1] << 16;
}

__device__ __forceinline__ float half_at(const uint8_t *p) {
    return __half2float(*(const __half *)p);
}

/* Per format: TS bytes per block, QK elements per block, TB blocks per staged tile
 * (TB*TS a multiple of 16 bytes, TB*QK = 2048 elements), GS elements per scale group,
 * BIAS subtracted from every stored quant byte, and two decoders working on a block in
 * shared memory:
 *   group(b, g, sc, mn): scale and min of the GS-element group g (the weight is
 *                        sc * (byte - BIAS) - mn);
 *   quad(b, e):          the quant bytes of elements e..e+3 (e a multiple of 4). */
struct FmtQ4_0 {
    static constexpr int TS = 18, QK = 32, TB = 64, GS = 32;
    static constexpr float BIAS = 8.0f;
    static constexpr bool HAS_MIN = false;
    __device__ static void group(const uint8_t *b, int, float &sc, float &mn) {
        sc = half_at(b);
        mn = 0.0f;
    }
    __device__ static uint32_t quad(const uint8_t *b, int e) {
        return (ld32_a2(b + 2 + (e & 15)) >> (e & 16 ? 4 : 0)) & 0x0F0F0F0F;
    }
};

struct FmtQ8_0 {
    static constexpr int TS = 34, QK = 32, TB = 64, GS = 32;
    static constexpr float BIAS = 128.0f;
    static constexpr bool HAS_MIN = false;
    __device__ static void group(const uint8_t *b, int, float &sc, float &mn) {
        sc = half_at(b);
        mn = 0.0f;
    }
    /* int8 -> uint8 + 128, so every format shares the unsigned byte conversion */
    __device__ static uint32_t quad(const uint8_t *b, int e) {
        return ld32_a2(b + 2 + e) ^ 0x80808080u;
    }
};

/* Q4_K/Q5_K: sub-block s = e/32 holds nibble s%2 of qs[32*(s/2) + e%32]; Q5_K's fifth
 * bit is bit s of qh[e%32]. Blocks of 144/176 bytes keep 4-byte alignment. */
template <bool FIVE>
struct FmtK45 {
    static constexpr int TS = FIVE ? 176 : 144, QK = 256, TB = 8, GS = 32;
    static constexpr float BIAS = 0.0f;
    static constexpr bool HAS_MIN = true;
    __device__ static void group(const uint8_t *b, int g, float &sc, float &mn) {
        int s, m;
        qr_k4_scale_min(b + 4, g, &s, &m);
        sc = half_at(b) * (float)s;
        mn = half_at(b + 2) * (float)m;
    }
    __device__ static uint32_t quad(const uint8_t *b, int e) {
        const int s = e / 32, l = e % 32;
        uint32_t v = (*(const uint32_t *)(b + (FIVE ? 48 : 16) + 32 * (s / 2) + l) >> (4 * (s % 2))) &
                     0x0F0F0F0F;
        if (FIVE) v |= ((*(const uint32_t *)(b + 16 + l) >> s) & 0x01010101) << 4;
        return v;
    }
};

/* Q6_K: element e = 128h + 32k + l: low nibble k/2 of ql[64h + 32(k%2) + l], high bits
 * 2k of qh[32h + l]; group g uses scales[g]. */
struct FmtQ6_K {
    static constexpr int TS = 210, QK = 256, TB = 8, GS = 16;
    static constexpr float BIAS = 32.0f;
    static constexpr bool HAS_MIN = false;
    __device__ static void group(const uint8_t *b, int g, float &sc, float &mn) {
        sc = half_at(b + 208) * (float)(int8_t)b[192 + g];
        mn = 0.0f;
    }
    __device__ static uint32_t quad(const uint8_t *b, int e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint32_t lo = (ld32_a2(b + 64 * h + 32 * (k % 2) + l) >> (4 * (k / 2))) & 0x0F0F0F0F;
        const uint32_t hi = ((ld32_a2(b + 128 + 32 * h + l) >> (2 * k)) & 0x03030303) << 4;
        return lo | hi;
    }
};

template <class F>
struct Tile {
    static constexpr int BYTES = F::TB * F::TS;
    static constexpr int CHUNKS = BYTES / 16;
    static constexpr int ELEMS = F::TB * F::QK;
    static constexpr int GROUPS = ELEMS / F::GS;
    static_assert(BYTES % 16 == 0, "a tile must be a whole number of 16-byte chunks");
    static_assert(ELEMS == 2048, "tiles of 16 warp steps of 128 elements");
};

template <int NC>
__device__ __forceinline__ void warp_store(float *acc, float *y, int64_t rows, int64_t r, int lane) {
#pragma unroll
    for (int c = 0; c < NC; c++) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[c] += __shfl_xor_sync(0xffffffffu, acc[c], o);
    }
    if (lane == 0) {
#pragma unroll
        for (int c = 0; c < NC; c++) y[c * rows + r] = acc[c];
    }
}

/* A warp's stream of tiles of TB blocks of TS bytes from one row: fetch() issues a tile's
 * coalesced 16-byte loads into registers (lane l takes chunks l, l + 32, ...), park()
 * stores them in the warp's shared-memory stage. Fetching the next tile before the
 * parked one is used keeps its loads in flight meanwhile. */
template <int TS, int TB>
struct TileStream {
    static constexpr int CHUNKS = TB * TS / 16, CPL = (CHUNKS + 31) / 32; /* loads per lane */
    const uint8_t *row;
    int64_t nb;
    int lane;
    int nchunks; /* chunks of the fetched tile */
    uint4 v[CPL];
    __device__ __forceinline__ void fetch(int64_t b0) {
        const int64_t nblk = min((int64_t)TB, nb - b0);
        nchunks = (int)((nblk * TS + 15) / 16); /* may read the row's zero pad */
        const uint4 *src = (const uint4 *)(row + b0 * TS);
#pragma unroll
        for (int k = 0; k < CPL; k++) {
            const int ch = lane + 32 * k;
            if (ch < nchunks) v[k] = ld_stream(src + ch);
        }
    }
    __device__ __forceinline__ void park(uint4 *stage) const {
#pragma unroll
        for (int k = 0; k < CPL; k++) {
            const int ch = lane + 32 * k;
            if (ch < nchunks) stage[ch] = v[k];
        }
    }
};

/* The dot of one staged tile with x: 8 warp steps of 256 elements; lane l takes elements
 * 4l..4l+3 and 128+4l..+3 of each, so its offsets inside a block are the same at every
 * step and each x load of the warp reads 512 contiguous bytes. */
template <class F, int NC, bool FULL>
__device__ __forceinline__ void tile_dot(const uint8_t *tile, const float2 *scales,
                                         const float *xt, int64_t ldx, int nel, int lane,
                                         float *acc) {
#pragma unroll
    for (int j = 0; j < 8; j++) {
        float4 xv[2][NC];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int e = 256 * j + 128 * h + 4 * lane;
            if (FULL || e < nel) {
#pragma unroll
                for (int c = 0; c < NC; c++) xv[h][c] = __ldg((const float4 *)(xt + c * ldx + e));
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int e = 256 * j + 128 * h + 4 * lane; /* element within the tile */
            if (!FULL && e >= nel) break;
            const uint32_t qb = F::quad(tile + (e / F::QK) * F::TS, e % F::QK);
            float q[4];
#pragma unroll
            for (int i = 0; i < 4; i++) q[i] = byte_f(qb, i, F::BIAS);
            const float2 sm = scales[e / F::GS];
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const float4 v = xv[h][c];
                float s = q[0] * v.x;
                s = fmaf(q[1], v.y, s);
                s = fmaf(q[2], v.z, s);
                s = fmaf(q[3], v.w, s);
                if (F::HAS_MIN) {
                    const float sx = (v.x + v.y) + (v.z + v.w);
                    acc[c] += sm.x * s - sm.y * sx;
                } else {
                    acc[c] = fmaf(sm.x, s, acc[c]);
                }
            }
        }
    }
}

/* Per tile: (1) the lanes fetch it with 16-byte loads into shared memory; (2) the lanes
 * decode the tile's 64 or 128 group scales into shared memory; (3) tile_dot. (One lane
 * per 32-element unit instead made each lane read its own 128-byte line of x, and L1
 * served about 4 elements per clock: 14-30% of the copy bandwidth.) */
template <class F, int NC>
__global__ void __launch_bounds__(32 * kWarps, NC <= 2 ? QR_GEMV_MIN_BLOCKS : 3)
gemv_block_kernel(const uint8_t *__restrict__ w, size_t pitch, int64_t rows, int64_t cols,
                  const float *__restrict__ x, float *__restrict__ y) {
    using T = Tile<F>;
    __shared__ uint4 stage[kWarps][T::CHUNKS];
    __shared__ float2 scales[kWarps][T::GROUPS];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * kWarps + warp;
    if (r >= rows) return; /* whole warps leave together: no block-wide barrier below */
    const uint8_t *row = w + (size_t)r * pitch;
    const int64_t nb = cols / F::QK;
    const uint8_t *tile = (const uint8_t *)stage[warp];
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;

    TileStream<F::TS, F::TB> ts;
    ts.row = row, ts.nb = nb, ts.lane = lane;
    ts.fetch(0);
    for (int64_t b0 = 0; b0 < nb; b0 += F::TB) {
        ts.park(stage[warp]);
        __syncwarp();
        if (b0 + F::TB < nb) ts.fetch(b0 + F::TB); /* in flight while this tile is decoded */
        const int nel = (int)min((int64_t)F::TB, nb - b0) * F::QK;
#pragma unroll
        for (int k = 0; k < T::GROUPS / 32; k++) {
            const int g = lane + 32 * k;
            if (g * F::GS < nel) {
                float sc, mn;
                F::group(tile + (g / (F::QK / F::GS)) * F::TS, g % (F::QK / F::GS), sc, mn);
                scales[warp][g] = make_float2(sc, mn);
            }
        }
        __syncwarp();
        const float *xt = x + b0 * F::QK;
        /* A full tile takes the branch-free path, so the compiler can issue the x loads of
         * several steps before their use (a guard per step serialized them). */
        if (nel == T::ELEMS)
            tile_dot<F, NC, true>(tile, scales[warp], xt, cols, nel, lane, acc);
        else
            tile_dot<F, NC, false>(tile, scales[warp], xt, cols, nel, lane, acc);
        __syncwarp();
    }
    warp_store<NC>(acc, y, rows, r, lane);
}

/* F32 / F16 / BF16 rows: 16-byte chunks of E elements, four chunks per lane in flight.
 * VEC_X: x columns are 16-byte aligned (cols a multiple of 4). */
template <qr_type T>
__device__ __forceinline__ void chunk_to_f(const uint4 &c, float *f) {
    const uint32_t w[4] = {c.x, c.y, c.z, c.w};
    if (T == QR_TYPE_F32) {
#pragma unroll
        for (int i = 0; i < 4; i++) f[i] = __uint_as_float(w[i]);
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (T == QR_TYPE_F16) {
                const float2 p = __half22float2(*(const __half2 *)&w[i]);
                f[2 * i] = p.x;
                f[2 * i + 1] = p.y;
            } else {
                f[2 * i] = __uint_as_float(w[i] << 16);
                f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
            }
        }
    }
}

template <qr_type T, int NC, bool VEC_X>
__global__ void __launch_bounds__(32 * kWarps)
gemv_float_kernel(const uint8_t *__restrict__ w, size_t pitch, int64_t rows, int64_t cols, const float *x,
                  float *__restrict__ y) {
    constexpr int E = T == QR_TYPE_F32 ? 4 : 8, U = 4;
    qr_pdl_trigger();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * kWarps + warp;
    if (r >= rows) return;
    const uint4 *row = (const uint4 *)(w + (size_t)r * pitch);
    const int64_t nfull = cols / E;
    /* As a programmatic dependent (pdl.h): the first chunks head for L2 while the kernel
     * writing x finishes; x is read only after the wait, with coherent loads (__ldg's
     * read-only path promises data no running kernel writes). */
#pragma unroll
    for (int k = 0; k < U; k++)
        if (lane + 32 * k < nfull) asm volatile("prefetch.global.L2 [%0];" ::"l"(row + lane + 32 * k));
    qr_pdl_wait();
    asm volatile("" : "+l"(x)); /* no x load can be moved above the wait */
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;
    for (int64_t c0 = 0; c0 < nfull; c0 += 32 * U) {
        uint4 v[U];
#pragma unroll
        for (int k = 0; k < U; k++) {
            const int64_t ch = c0 + lane + 32 * k;
            if (ch < nfull) v[k] = ld_stream(row + ch);
        }
#pragma unroll
        for (int k = 0; k < U; k++) {
            const int64_t ch = c0 + lane + 32 * k;
            if (ch >= nfull) break;
            float f[E];
            chunk_to_f<T>(v[k], f);
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const float *xc = x + c * cols + ch * E;
                float s = 0.0f;
                if (VEC_X) {
#pragma unroll
                    for (int i = 0; i < E / 4; i++) {
                        const float4 xv = __ldca((const float4 *)xc + i);
                        s = fmaf(f[4 * i], xv.x, s);
                        s = fmaf(f[4 * i + 1], xv.y, s);
                        s = fmaf(f[4 * i + 2], xv.z, s);
                        s = fmaf(f[4 * i + 3], xv.w, s);
                    }
                } else {
#pragma unroll
                    for (int i = 0; i < E; i++) s = fmaf(f[i], __ldca(xc + i), s);
                }
                acc[c] += s;
            }
        }
    }
    /* Tail elements past the last whole chunk, one per lane. */
    const int64_t e = nfull * E + lane;
    if (e < cols) {
        const float f = qr_deq_elem(T, (const uint8_t *)row + e * (E == 4 ? 4 : 2), 0);
#pragma unroll
        for (int c = 0; c < NC; c++) acc[c] = fmaf(f, __ldca(x + c * cols + e), acc[c]);
    }
    warp_store<NC>(acc, y, rows, r, lane);
}

/* Every other format: lanes stride over the row's elements, dequantizing each one
 * exactly (dequant_device.h). Correct for all types, not tuned. */
template <int NC>
__global__ void __launch_bounds__(32 * kWarps)
gemv_generic_kernel(qr_type t, int bs, int ts, const uint8_t *__restrict__ w, size_t pitch,
                    int64_t rows, int64_t cols, const float *__restrict__ x,
                    float *__restrict__ y) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * kWarps + warp;
    if (r >= rows) return;
    const uint8_t *row = w + (size_t)r * pitch;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.0f;
    for (int64_t e = lane; e < cols; e += 32) {
        const float f = qr_deq_elem(t, row + (e / bs) * ts, (int)(e % bs));
#pragma unroll
        for (int c = 0; c < NC; c++) acc[c] = fmaf(f, __ldg(x + c * cols + e), acc[c]);
    }
    warp_store<NC>(acc, y, rows, r, lane);
}

/* ---- Integer GEMV on quantized activations (gemv_q8.h) ------------------------------------ */

} // namespace

#include "backend/cuda/gemv_q8_items.h"

namespace {

using namespace qr_q8;

/* NR rows per warp, NR * kWarps per CTA. Each row is walked in tiles of TB blocks fetched
 * with coalesced 16-byte loads into shared memory (the next tiles in flight while these
 * are used), then lane l takes items l, l + 32, ... of the tiles in that fixed order;
 * an item's activations are loaded once for the NR rows (dot<NC, NR>), which halves the
 * L1 traffic per weight byte of the 4-bit formats at NR = 2 and puts two rows' loads in
 * flight per warp. A row's float operations are those of NR = 1, so results do not
 * depend on NR. Launched as a programmatic dependent (pdl.h), the first tiles' loads are
 * issued before waiting for the kernel that wrote the activations. */
template <class F, int NC, int MINB, int NR>
__global__ void __launch_bounds__(32 * kWarps, NC <= 2 ? MINB : 3)
gemv_q8_kernel(const uint8_t *__restrict__ w, size_t pitch, int64_t rows, int64_t cols, Act a,
               float *__restrict__ y) {
    using Stream = TileStream<F::TS, F::TB>;
    constexpr int ITEMS = F::TB * F::IPB, SLOT = Stream::CHUNKS + 1; /* + 1: ld_words_a2 reads a word past a block */
    static_assert(F::TB * F::TS % 16 == 0 && ITEMS % 32 == 0, "tile shape");
    __shared__ uint4 stage[kWarps][NR * SLOT];
    qr_pdl_trigger();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t r0 = ((int64_t)blockIdx.x * kWarps + warp) * NR;
    if (r0 >= rows) return;
    const int64_t nb = cols / F::QK;
    float acc[NR * NC];
#pragma unroll
    for (int i = 0; i < NR * NC; i++) acc[i] = 0.0f;

    Stream ts[NR];
    const uint8_t *tile[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) { /* a missing last row repeats the one before, unstored */
        ts[r].row = w + (size_t)min(r0 + r, rows - 1) * pitch, ts[r].nb = nb, ts[r].lane = lane;
        ts[r].fetch(0);
        tile[r] = (const uint8_t *)(stage[warp] + r * SLOT);
    }
    qr_pdl_wait(); /* the activations (and y's previous readers) are done from here on */
    asm volatile("" : "+l"(a.base)); /* no activation load can be moved above the wait */
    for (int64_t b0 = 0; b0 < nb; b0 += F::TB) {
#pragma unroll
        for (int r = 0; r < NR; r++) ts[r].park(stage[warp] + r * SLOT);
        __syncwarp();
        if (b0 + F::TB < nb) {
#pragma unroll
            for (int r = 0; r < NR; r++) ts[r].fetch(b0 + F::TB);
        }
        const int nit = (int)min((int64_t)F::TB, nb - b0) * F::IPB;
        auto item = [&](int it) { /* item `it` of the tile, for the NR rows */
            const uint8_t *blk[NR];
#pragma unroll
            for (int r = 0; r < NR; r++) blk[r] = tile[r] + (it / F::IPB) * F::TS;
            F::template dot<NC, NR>(blk, it % F::IPB, b0 + it / F::IPB, a, acc);
        };
        if (nit == ITEMS) {
#pragma unroll
            for (int k = 0; k < ITEMS / 32; k++) item(lane + 32 * k);
        } else {
            for (int it = lane; it < nit; it += 32) item(it);
        }
        __syncwarp();
    }
#pragma unroll
    for (int r = 0; r < NR; r++)
        if (r0 + r < rows) warp_store<NC>(acc + r * NC, y, rows, r0 + r, lane);
}

template <class F, int NC>
void launch_q8_kernel(const qr_cuda_matrix *m, const Act &a, float *y, cudaStream_t s, bool pdl) {
    constexpr int NR = NC <= 2 ? F::ROWS : 1; /* the server's wider steps keep one row a warp: registers */
    const dim3 grid((unsigned)((m->rows + kWarps * NR - 1) / (kWarps * NR))), block(32 * kWarps);
    const uint8_t *w = (const uint8_t *)m->data;
    if constexpr (NR > 1) { /* two rows a warp need the small products' registers (no spills) */
        (void)qr_launch(pdl, gemv_q8_kernel<F, NC, QR_GEMV_SMALL_MINB, NR>, grid, block, s, w, m->pitch, m->rows,
                        m->cols, a, y);
    } else {
        const bool small = NC <= 2 && m->rows <= QR_GEMV_SMALL_ROWS;
        (void)qr_launch(pdl,
                        small ? gemv_q8_kernel<F, NC, QR_GEMV_SMALL_MINB, 1> : gemv_q8_kernel<F, NC, QR_GEMV_MIN_BLOCKS, 1>,
                        grid, block, s, w, m->pitch, m->rows, m->cols, a, y);
    }
}

template <int NC>
void launch_q8(const qr_cuda_matrix *m, const Act &a, float *y, cudaStream_t s, bool pdl) {
#define QR_Q8(F) launch_q8_kernel<F, NC>(m, a, y, s, pdl)
    switch (m->type) {
    case QR_TYPE_Q4_0: QR_Q8(IQ4_32<false>); break;
    case QR_TYPE_Q4_1: QR_Q8(IQ4_1); break;
    case QR_TYPE_Q5_0: QR_Q8(IQ5<false>); break;
    case QR_TYPE_Q5_1: QR_Q8(IQ5<true>); break;
    case QR_TYPE_Q8_0: QR_Q8(IQ8_0); break;
    case QR_TYPE_Q2_K: QR_Q8(IQ2_K); break;
    case QR_TYPE_Q3_K: QR_Q8(IQ3_K); break;
    case QR_TYPE_Q4_K: QR_Q8(IK45<false>); break;
    case QR_TYPE_Q5_K: QR_Q8(IK45<true>); break;
    case QR_TYPE_Q6_K: QR_Q8(IQ6_K); break;
    case QR_TYPE_IQ4_NL: QR_Q8(IQ4_32<true>); break;
    default: QR_Q8(IIQ4_XS); break;
    }
#undef QR_Q8
}

struct Launch {
    const qr_cuda_matrix *m;
    const float *x;
    float *y;
    cudaStream_t s;
    bool pdl; /* F32/F16/BF16 weights only (gemv_float_kernel waits); the block kernels never */
    dim3 grid() const { return dim3((unsigned)((m->rows + kWarps - 1) / kWarps)); }
};

template <int NC>
void launch_nc(const Launch &L) {
    const qr_cuda_matrix *m = L.m;
    const dim3 g = L.grid(), b(32 * kWarps);
    const bool vec = m->cols % 4 == 0;
#define QR_BLOCK(F) gemv_block_kernel<F, NC><<<g, b, 0, L.s>>>(m->data, m->pitch, m->rows, m->cols, L.x, L.y)
#define QR_FLOAT(T)                                                                                           \
    (void)qr_launch(L.pdl, vec ? gemv_float_kernel<T, NC, true> : gemv_float_kernel<T, NC, false>, g, b, L.s, \
                    (const uint8_t *)m->data, m->pitch, m->rows, m->cols, L.x, L.y)
    switch (m->type) {
    case QR_TYPE_Q4_0: QR_BLOCK(FmtQ4_0); break;
    case QR_TYPE_Q8_0: QR_BLOCK(FmtQ8_0); break;
    case QR_TYPE_Q4_K: QR_BLOCK(FmtK45<false>); break;
    case QR_TYPE_Q5_K: QR_BLOCK(FmtK45<true>); break;
    case QR_TYPE_Q6_K: QR_BLOCK(FmtQ6_K); break;
    case QR_TYPE_F32: QR_FLOAT(QR_TYPE_F32); break;
    case QR_TYPE_F16: QR_FLOAT(QR_TYPE_F16); break;
    case QR_TYPE_BF16: QR_FLOAT(QR_TYPE_BF16); break;
    default: {
        const qr_type_traits *tr = qr_type_get_traits((uint32_t)m->type);
        gemv_generic_kernel<NC><<<g, b, 0, L.s>>>(m->type, tr->block_size, tr->type_size, m->data,
                                                 m->pitch, m->rows, m->cols, L.x, L.y);
    }
    }
#undef QR_BLOCK
#undef QR_FLOAT
}

} // namespace

int qr_cuda_gemv_launch(const qr_cuda_matrix *m, const float *x, float *y, int ncols, bool pdl,
                        cudaStream_t s, qr_error *err) {
    const Launch L = {m, x, y, s, pdl};
    switch (ncols) {
    case 1: launch_nc<1>(L); break;
    case 2: launch_nc<2>(L); break;
    case 3: launch_nc<3>(L); break;
    case 4: launch_nc<4>(L); break;
    case 5: launch_nc<5>(L); break;
    case 6: launch_nc<6>(L); break;
    case 7: launch_nc<7>(L); break;
    default: launch_nc<8>(L); break;
    }
    QR_CUDA_LAUNCHED("the GEMV kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_gemv_q8(const qr_cuda_matrix *m, const void *act_dev, float *y_dev, int ncols, bool pdl,
                               void *stream, qr_error *err) {
    if (ncols < 1 || ncols > QR_CUDA_GEMV_MAX_COLS)
        return qr_fail(err, "qr_cuda_gemv_q8: ncols %d is outside 1..%d", ncols, QR_CUDA_GEMV_MAX_COLS);
    if ((uintptr_t)act_dev % 16 != 0) return qr_fail(err, "qr_cuda_gemv_q8: the activations are not 16-byte aligned");
    qr_cuda_act_layout L;
    if (qr_cuda_act_q8_layout(m->type, m->cols, &L, err) != QR_OK) return QR_ERR;
    if ((uint64_t)L.col_bytes * (uint64_t)ncols > UINT32_MAX)
        return qr_fail(err, "qr_cuda_gemv_q8: %d columns of %zu bytes exceed the kernel's 32-bit offsets", ncols,
                       L.col_bytes);
    const Act a = {(const uint8_t *)act_dev, (uint32_t)L.col_bytes, (uint32_t)L.d_off, (uint32_t)L.bsum_off,
                   (uint32_t)L.s_off};
    cudaStream_t s = (cudaStream_t)stream;
    switch (ncols) {
    case 1: launch_q8<1>(m, a, y_dev, s, pdl); break;
    case 2: launch_q8<2>(m, a, y_dev, s, pdl); break;
    case 3: launch_q8<3>(m, a, y_dev, s, pdl); break;
    case 4: launch_q8<4>(m, a, y_dev, s, pdl); break;
    case 5: launch_q8<5>(m, a, y_dev, s, pdl); break;
    case 6: launch_q8<6>(m, a, y_dev, s, pdl); break;
    case 7: launch_q8<7>(m, a, y_dev, s, pdl); break;
    default: launch_q8<8>(m, a, y_dev, s, pdl); break;
    }
    QR_CUDA_LAUNCHED("the integer GEMV kernel", err);
    return QR_OK;
}
