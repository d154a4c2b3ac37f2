/* Attention of prompt batches on the tensor cores: flash attention in the FlashAttention-2
 * arrangement (docs/cuda.md, "Attention").
 *
 * A CTA takes 64 consecutive query rows of one head (16 per warp). Their keys are the
 * positions lo(first row) .. pos(last row) of the rows' sequence, walked in tiles of 64:
 * the tile's cells are gathered from the rows' own cell lists (each row's list holds the
 * positions lo_r .. pos_r in order, forward.c's layout), K and V rows are copied into
 * shared memory with cp.async, S = Q K^T and O += P V run as m16n8k16 F16 products with
 * F32 accumulation (mma.sync), and the softmax is the online one, in F32, per row. A key
 * at position P is visible to row r when lo_r <= P <= pos_r: the causal mask and the
 * sliding window in one test. Q and P are rounded to F16 (the CPU backend rounds Q to F16
 * too, for its F16 dot products with the cache).
 *
 * It needs rows grouped so that the 64 rows of a CTA are one sequence at consecutive
 * positions (a prompt; the caller checks), an F16 cache and equal K/V head dims of 64, 128
 * or 256; everything else takes the flash-decoding kernel in cuda_ops.cu. Its sums run in
 * another order than that kernel's, so batches that must be batch invariant (the server)
 * never come here. */
#include <cuda_fp16.h>
#include <limits.h>

#include "backend/cuda/cuda_common.h"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

namespace {

constexpr int kRows = QR_CUDA_ATTN_PREFILL_ROWS; /* query rows per CTA */
constexpr int kKeys = 64; /* keys per tile */
constexpr int kWarps = kRows / 16;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* Four 8x8 F16 matrices from shared memory; lane i gives the address of a row of matrix
 * i / 8 (TRANS: each lane receives a column pair instead of a row pair). */
template <bool TRANS>
__device__ __forceinline__ void ldsm4(uint32_t *r, const __half *p) {
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(smem_addr(p)));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(smem_addr(p)));
}

/* c (16x8, F32) += a (16x16, F16, row-major) * b (16x8, F16, column-major). */
__device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 16 bytes global -> shared without passing through registers; zeros when !valid. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

template <int D>
struct Smem {
    static constexpr int LD = D + 8; /* halves per row: the 16-byte pad keeps ldmatrix conflict-free */
    static constexpr size_t BYTES = (size_t)(kRows + 2 * kKeys) * LD * sizeof(__half);
};

/* The cell of key position P: row r0's list covers lo_r0 .. pos_r0; a later position P is
 * the newest cell of row r0 + (P - pos_r0), the last entry of that row's list. */
__device__ __forceinline__ int32_t key_cell(const qr_attn_args &a, int r0, int lo0, int pos0, int P) {
    if (P <= pos0) return a.cells[a.cells_off[r0] + (P - lo0)];
    return a.cells[a.cells_off[r0 + (P - pos0) + 1] - 1];
}

/* Lane state of one warp: rows g and g + 8 of its 16 (g = lane / 4), each with a running
 * max m (log2 units), a partial sum l over this lane's columns, and D/8 accumulator
 * fragments of 16x8. */
template <int D>
struct RowState {
    float o[D / 8][4];
    float m[2], l[2];
    int lo[2], pos[2];
};

/* Scores of one 16x64 tile: scale (or soft-cap), mask, convert to log2 units. */
template <int D>
__device__ __forceinline__ void mask_scores(const qr_attn_args &a, const RowState<D> &st, int kt, int t,
                                            float (*s)[4]) {
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int P = kt + nt * 8 + 2 * t + (e & 1), w = e >> 1;
            float v = s[nt][e];
            v = a.softcap != 0.0f ? a.softcap * tanhf(v * (a.scale / a.softcap)) : v * a.scale;
            s[nt][e] = st.lo[w] <= P && P <= st.pos[w] ? v * kLog2e : -INFINITY;
        }
    }
}

/* The online softmax step: new maxima, rescale l and o, s becomes p = 2^(s - m). */
template <int D>
__device__ __forceinline__ void softmax_step(RowState<D> &st, float (*s)[4]) {
#pragma unroll
    for (int w = 0; w < 2; w++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * w], s[nt][2 * w + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(st.m[w], mx);
        const float base = m_new == -INFINITY ? 0.0f : m_new; /* a row with nothing visible yet */
        const float corr = exp2f(st.m[w] - base);
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; nt++) {
            s[nt][2 * w] = exp2f(s[nt][2 * w] - base);
            s[nt][2 * w + 1] = exp2f(s[nt][2 * w + 1] - base);
            sum += s[nt][2 * w] + s[nt][2 * w + 1];
        }
        st.l[w] = st.l[w] * corr + sum;
#pragma unroll
        for (int n = 0; n < D / 8; n++) st.o[n][2 * w] *= corr, st.o[n][2 * w + 1] *= corr;
        st.m[w] = m_new;
    }
}

template <int D>
__global__ void __launch_bounds__(32 * kWarps) attn_prefill_kernel(qr_attn_args a, const int32_t *__restrict__ pos) {
    using S = Smem<D>;
    constexpr int LD = S::LD;
    extern __shared__ __align__(16) unsigned char smem[];
    __half *sq = (__half *)smem, *sk = sq + kRows * LD, *sv = sk + kKeys * LD;
    __shared__ int32_t tile_cell[kKeys], row_lo[kRows], row_pos[kRows];

    const int h = blockIdx.x, r0 = blockIdx.y * kRows, nr = min(kRows, a.n_rows - r0);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int kvh = h / (a.n_head / a.n_head_kv);
    for (int i = threadIdx.x; i < kRows; i += blockDim.x) {
        if (i < nr) {
            const int r = r0 + i, p = pos[r];
            row_pos[i] = p;
            row_lo[i] = p - (int)(a.cells_off[r + 1] - a.cells_off[r]) + 1;
        } else {
            row_pos[i] = INT_MIN / 2, row_lo[i] = INT_MAX / 2; /* sees no key */
        }
    }
    for (int i = threadIdx.x; i < kRows * D / 4; i += blockDim.x) {
        const int row = i / (D / 4), c4 = i % (D / 4);
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (row < nr) v = *(const float4 *)(a.q + ((int64_t)(r0 + row) * a.n_head + h) * D + 4 * c4);
        uint2 hv;
        hv.x = pack_half2(v.x, v.y), hv.y = pack_half2(v.z, v.w);
        *(uint2 *)(sq + row * LD + 4 * c4) = hv;
    }
    __syncthreads();

    RowState<D> st;
    const int wr = warp * 16;
    int wlo = INT_MAX, whi = INT_MIN; /* the warp's visible key range */
#pragma unroll
    for (int w = 0; w < 2; w++) {
        st.lo[w] = row_lo[wr + g + 8 * w], st.pos[w] = row_pos[wr + g + 8 * w];
        st.m[w] = -INFINITY, st.l[w] = 0.0f;
        wlo = min(wlo, st.lo[w]), whi = max(whi, st.pos[w]);
    }
#pragma unroll
    for (int o = 4; o < 32; o <<= 1) {
        wlo = min(wlo, __shfl_xor_sync(0xffffffffu, wlo, o));
        whi = max(whi, __shfl_xor_sync(0xffffffffu, whi, o));
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++) st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.0f;

    const int lo0 = row_lo[0], pos0 = row_pos[0], last = row_pos[nr - 1];
    const __half *kbase = (const __half *)a.k + (int64_t)kvh * D, *vbase = (const __half *)a.v + (int64_t)kvh * D;
    for (int kt = lo0; kt <= last; kt += kKeys) {
        if (threadIdx.x < kKeys) {
            const int P = kt + threadIdx.x;
            tile_cell[threadIdx.x] = P <= last ? key_cell(a, r0, lo0, pos0, P) : -1;
        }
        __syncthreads(); /* the cells are known, and every warp is done with the last tile */
        for (int i = threadIdx.x; i < kKeys * D / 8; i += blockDim.x) {
            const int key = i / (D / 8), ch = i % (D / 8), c = tile_cell[key];
            const int64_t cell = c < 0 ? 0 : c;
            cp_async16(sk + key * LD + ch * 8, kbase + cell * a.kv_stride_k + ch * 8, c >= 0);
            cp_async16(sv + key * LD + ch * 8, vbase + cell * a.kv_stride_v + ch * 8, c >= 0);
        }
        asm volatile("cp.async.wait_all;" ::: "memory");
        __syncthreads();
        if (whi < kt || wlo > kt + kKeys - 1) continue; /* no row of this warp sees the tile */

        float s[kKeys / 8][4];
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[4];
            ldsm4<false>(qa, sq + (wr + lane % 16) * LD + kk * 16 + (lane / 16) * 8);
#pragma unroll
            for (int nt = 0; nt < kKeys / 8; nt += 2) {
                uint32_t b[4];
                ldsm4<false>(b, sk + (nt * 8 + lane % 8 + (lane / 16) * 8) * LD + kk * 16 + ((lane / 8) % 2) * 8);
                mma(s[nt], qa, b[0], b[1]);
                mma(s[nt + 1], qa, b[2], b[3]);
            }
        }
        mask_scores<D>(a, st, kt, t, s);
        softmax_step<D>(st, s);
#pragma unroll
        for (int kk = 0; kk < kKeys / 16; kk++) {
            const uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < D / 8; n += 2) {
                uint32_t b[4];
                ldsm4<true>(b, sv + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LD + n * 8 + (lane / 16) * 8);
                mma(st.o[n], pa, b[0], b[1]);
                mma(st.o[n + 1], pa, b[2], b[3]);
            }
        }
    }

#pragma unroll
    for (int w = 0; w < 2; w++) {
        float l = st.l[w];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = wr + g + 8 * w;
        if (row >= nr) continue;
        const float inv = l == 0.0f ? 0.0f : 1.0f / l;
        float *out = a.out + ((int64_t)(r0 + row) * a.n_head + h) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < D / 8; n++) *(float2 *)(out + n * 8) = make_float2(st.o[n][2 * w] * inv, st.o[n][2 * w + 1] * inv);
    }
}

template <int D>
int launch(const qr_attn_args *a, const int32_t *pos, cudaStream_t s, qr_error *err) {
    const size_t bytes = Smem<D>::BYTES;
    QR_CUDA_TRY(cudaFuncSetAttribute(attn_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                err);
    const dim3 grid((unsigned)a->n_head, (unsigned)((a->n_rows + kRows - 1) / kRows));
    attn_prefill_kernel<D><<<grid, 32 * kWarps, bytes, s>>>(*a, pos);
    QR_CUDA_LAUNCHED("attn_prefill_kernel", err);
    return QR_OK;
}

} // namespace

extern "C" bool qr_cuda_attention_prefill_supported(const qr_attn_args *a) {
    const int d = a->head_dim_k;
    return !a->kv_f32 && d == a->head_dim_v && (d == 64 || d == 128 || d == 256) && a->n_head_kv > 0 &&
           a->n_head % a->n_head_kv == 0 && a->kv_stride_k % 8 == 0 && a->kv_stride_v % 8 == 0;
}

extern "C" int qr_cuda_attention_prefill(const qr_attn_args *a, const int32_t *pos, void *stream, qr_error *err) {
    if (!qr_cuda_attention_prefill_supported(a))
        return qr_fail(err, "CUDA prefill attention: head dims %d/%d, %s cache: not supported", a->head_dim_k,
                       a->head_dim_v, a->kv_f32 ? "F32" : "F16");
    if (a->n_rows <= 0) return QR_OK;
    cudaStream_t s = (cudaStream_t)stream;
    switch (a->head_dim_k) {
    case 64: return launch<64>(a, pos, s, err);
    case 128: return launch<128>(a, pos, s, err);
    default: return launch<256>(a, pos, s, err);
    }
}
