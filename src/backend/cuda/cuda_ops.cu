/* Row-wise ops of the forward pass on the device (cuda_ops.h). They are small next to the
 * matrix products; each kernel is written for clarity first: one CTA per row for
 * reductions, one thread per element otherwise. Arithmetic follows the CPU backend's ops
 * (src/backend/cpu/cpu_ops.c) where that is free, e.g. RoPE angles by repeated
 * multiplication and the GELU of an F16-rounded input rounded to F16. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#include "backend/cuda/cuda_common.h"
#include "backend/cuda/warp_absmax.h"
#include "backend/cuda/pdl.h"
#include "backend/cuda/quant_act_device.h"
#include "backend/cuda/dequant_device.h"

extern "C" {
#include "backend/cuda/cuda_ops.h"
}

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) {
    const int64_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

#define QR_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the CTA (up to 1024 threads); every thread gets the total. */
__device__ float block_sum(float v, float *red) {
    v = warp_sum(v);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) t += red[w];
    __syncthreads();
    return t;
}

/* CTA (row, 256-element slice): one element per thread. */
__global__ void get_rows_kernel(qr_type t, const uint8_t *w, size_t pitch, int bs, int ts, int64_t n_in,
                                const int32_t *ids, float scale, float *out) {
    const int64_t r = blockIdx.x, c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= n_in) return;
    const uint8_t *row = w + (size_t)ids[r] * pitch;
    const float v = qr_deq_elem(t, row + (c / bs) * ts, (int)(c % bs));
    out[r * n_in + c] = scale != 1.0f ? v * scale : v;
}

/* One CTA per row, sized to the row (dim/4 threads, 32..1024), 16-byte accesses when the
 * rows allow: with b, sum = a + b is written first (the residual add); then y =
 * rmsnorm(a [+ b]) * w. Each thread reads back only what it wrote, so y may alias a. */
template <bool VEC>
__global__ void __launch_bounds__(1024) rmsnorm_kernel(const float *a, const float *b, float *sum, const float *w,
                                                       int64_t dim, float eps, float *y, uint8_t *act,
                                                       qr_cuda_act_layout L) {
    qr_pdl_begin(); /* pdl.h: the kernel before is done; a GEMV after this may start fetching weights */
    __shared__ float red[32];
    const int64_t base = blockIdx.x * dim;
    float s = 0.0f;
    if (VEC) {
        const float4 *a4 = (const float4 *)(a + base), *b4 = (const float4 *)(b ? b + base : a);
        float4 *s4 = (float4 *)(sum ? sum + base : NULL);
        for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            float4 v = a4[i];
            if (b) {
                const float4 u = b4[i];
                v.x += u.x, v.y += u.y, v.z += u.z, v.w += u.w;
                s4[i] = v;
            }
            s = fmaf(v.x, v.x, s), s = fmaf(v.y, v.y, s), s = fmaf(v.z, v.z, s), s = fmaf(v.w, v.w, s);
        }
    } else {
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float v = a[base + i];
            if (b) sum[base + i] = v = v + b[base + i];
            s = fmaf(v, v, s);
        }
    }
    const float scale = 1.0f / sqrtf(block_sum(s, red) / (float)dim + eps);
    const float *src = b ? sum : a;
    if (VEC) {
        const float4 *x4 = (const float4 *)(src + base), *w4 = (const float4 *)w;
        float4 *y4 = (float4 *)(y + base);
        for (int64_t i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            float4 v = x4[i];
            v.x *= scale, v.y *= scale, v.z *= scale, v.w *= scale;
            if (w) {
                const float4 g = w4[i];
                v.x *= g.x, v.y *= g.y, v.z *= g.z, v.w *= g.w;
            }
            y4[i] = v;
        }
    } else {
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            const float v = src[base + i] * scale;
            y[base + i] = w ? v * w[i] : v;
        }
    }
    if (act) { /* the row's quantized form for the next product (qr_cuda_add_rmsnorm_quant) */
        __syncthreads();
        qr_quant_column(y + base, act + blockIdx.x * L.col_bytes, L, threadIdx.x / 32, blockDim.x / 32,
                        threadIdx.x % 32);
    }
}

__global__ void add_kernel(float *dst, const float *a, const float *b, int64_t n) {
    QR_GRID_STRIDE(i, n) dst[i] = a[i] + b[i];
}

__global__ void add_bias_kernel(float *y, const float *bias, int64_t dim, int64_t n) {
    QR_GRID_STRIDE(i, n) y[i] += bias[i % dim];
}

__global__ void scale_kernel(float *x, float s, int64_t n) {
    QR_GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void softcap_kernel(float *x, float cap, int64_t n) {
    const float ic = 1.0f / cap;
    QR_GRID_STRIDE(i, n) x[i] = tanhf(x[i] * ic) * cap;
}

/* The angle of rotated pair i at position p, as the CPU's running product builds it. */
__device__ __forceinline__ void rope_cs(int32_t p, int64_t i, float theta_scale, float freq_scale, const float *ff,
                                        float *c, float *s) {
    float theta = (float)p;
    for (int64_t k = 0; k < i; k++) theta *= theta_scale;
    const float th = freq_scale * (theta / (ff ? ff[i] : 1.0f));
    *c = cosf(th);
    *s = sinf(th);
}

/* One thread per (row, head, rotated pair). */
__global__ void rope_kernel(float *x, int64_t n_rows, int64_t n_head, int64_t head_dim, const int32_t *pos,
                            int mode_neox, int n_rot, float theta_scale, float freq_scale, const float *ff) {
    const int64_t half = n_rot / 2;
    QR_GRID_STRIDE(idx, n_rows * n_head * half) {
        const int64_t i = idx % half, rh = idx / half, r = rh / n_head;
        float c, s;
        rope_cs(pos[r], i, theta_scale, freq_scale, ff, &c, &s);
        float *xh = x + rh * head_dim;
        const int64_t a = mode_neox ? i : 2 * i, b = mode_neox ? i + half : 2 * i + 1;
        const float x0 = xh[a], x1 = xh[b];
        xh[a] = fmaf(x0, c, -(x1 * s));
        xh[b] = fmaf(x0, s, x1 * c);
    }
}

/* RoPE of Q (in place, then times q_scale) and of K, and the K/V store, in one launch.
 * Per row: Q items (pairs, then unrotated dims), K elements (each computes its own rotated
 * value and writes only the cache, so no thread reads what another writes), V elements. */
template <bool F32>
__global__ void rope_store_kernel(float *q, const float *k, const float *v, int64_t n_rows, int n_head, int n_head_kv,
                                  int hd, int hd_v, const int32_t *pos, int neox, int n_rot, float theta_scale,
                                  float freq_scale, const float *ff, float q_scale, const int32_t *cell, void *kc,
                                  void *vc) {
    qr_pdl_begin();
    const int half = n_rot / 2;
    const int64_t nq = (int64_t)n_head * (half + hd - n_rot), nk = (int64_t)n_head_kv * hd, nv = (int64_t)n_head_kv * hd_v;
    const int64_t per_row = nq + nk + nv;
    QR_GRID_STRIDE(idx, n_rows * per_row) {
        const int64_t r = idx / per_row;
        int64_t e = idx % per_row;
        if (e < nq) {
            const int64_t h = e / (half + hd - n_rot), j = e % (half + hd - n_rot);
            float *xh = q + (r * n_head + h) * hd;
            if (j >= half) {
                xh[n_rot + (j - half)] *= q_scale;
                continue;
            }
            float c, sn;
            rope_cs(pos[r], j, theta_scale, freq_scale, ff, &c, &sn);
            const int64_t a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
            const float x0 = xh[a], x1 = xh[b];
            xh[a] = fmaf(x0, c, -(x1 * sn)) * q_scale;
            xh[b] = fmaf(x0, sn, x1 * c) * q_scale;
            continue;
        }
        e -= nq;
        const bool is_k = e < nk;
        const int64_t i = is_k ? e : e - nk, stride = is_k ? nk : nv;
        float val;
        if (is_k) {
            const int64_t d = i % hd;
            const float *xh = k + r * nk + (i - d);
            val = xh[d];
            if (d < n_rot) {
                const int64_t j = neox ? d % half : d / 2;
                const bool first = neox ? d < half : d % 2 == 0;
                const int64_t a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
                float c, sn;
                rope_cs(pos[r], j, theta_scale, freq_scale, ff, &c, &sn);
                val = first ? fmaf(xh[a], c, -(xh[b] * sn)) : fmaf(xh[a], sn, xh[b] * c);
            }
        } else {
            val = v[r * nv + i];
        }
        const int64_t dst = (int64_t)cell[r] * stride + i;
        if (F32)
            ((float *)(is_k ? kc : vc))[dst] = val;
        else
            ((__half *)(is_k ? kc : vc))[dst] = __float2half_rn(val);
    }
}

template <bool F32>
__global__ void store_kv_kernel(const float *k, const float *v, int64_t n_rows, int64_t sk, int64_t sv,
                                const int32_t *cell, void *kc, void *vc) {
    const int64_t per_row = sk + sv;
    QR_GRID_STRIDE(idx, n_rows * per_row) {
        const int64_t r = idx / per_row, e = idx % per_row;
        const bool is_k = e < sk;
        const int64_t i = is_k ? e : e - sk, stride = is_k ? sk : sv;
        const float val = is_k ? k[r * sk + i] : v[r * sv + i];
        const int64_t dst = (int64_t)cell[r] * stride + i;
        if (F32)
            ((float *)(is_k ? kc : vc))[dst] = val;
        else
            ((__half *)(is_k ? kc : vc))[dst] = __float2half_rn(val);
    }
}

__device__ __forceinline__ float gelu_tanh(float x) {
    const float c = 0.79788456080286535587989211986876f, a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(c * x * fmaf(a * x, x, 1.0f)));
}

template <qr_glu_kind K>
__device__ __forceinline__ float glu_value(float x, float up) {
    float g;
    if (K == QR_GLU_SILU) {
        g = x / (1.0f + expf(-x));
    } else if (x <= -10.0f) {
        g = 0.0f;
    } else if (x >= 10.0f) {
        g = x;
    } else { /* the CPU's F16 table: gelu of the F16-rounded input, rounded to F16 */
        g = __half2float(__float2half_rn(gelu_tanh(__half2float(__float2half_rn(x)))));
    }
    return g * up;
}

template <qr_glu_kind K>
__global__ void glu_kernel(const float *gate, const float *up, float *out, int64_t n) {
    qr_pdl_begin();
    QR_GRID_STRIDE(i, n) out[i] = glu_value<K>(gate[i], up[i]);
}

/* GLU with the product's quantization fused: one warp per quantization block of a row
 * (32 or 256 elements, lane + 32j), computing, storing and quantizing its values. */
template <qr_glu_kind K>
__global__ void glu_quant_kernel(const float *gate, const float *up, float *out, int64_t n_rows, int64_t n,
                                 uint8_t *act, qr_cuda_act_layout L) {
    qr_pdl_begin();
    const int64_t per_row = n / L.block, gb = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (gb >= n_rows * per_row) return;
    const int64_t r = gb / per_row, b = gb % per_row, at = r * n + b * L.block;
    uint8_t *col = act + r * L.col_bytes;
    if (L.vt == QR_TYPE_Q8_K) {
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            v[j] = glu_value<K>(gate[at + lane + 32 * j], up[at + lane + 32 * j]);
            out[at + lane + 32 * j] = v[j];
        }
        qr_quant_q8_k_block(v, lane, col, b, L);
    } else {
        const float v = glu_value<K>(gate[at + lane], up[at + lane]);
        out[at + lane] = v;
        qr_quant_q8_32_block(v, lane, L.vt == QR_TYPE_Q8_1, col, b, L);
    }
}

__global__ void gather_kernel(float *dst, const float *src, const int32_t *idx, int64_t dim, int64_t n) {
    QR_GRID_STRIDE(i, n) dst[i] = src[(int64_t)idx[i / dim] * dim + i % dim];
}

/* ---- Activation rounding -------------------------------------------------------------------- */

/* One warp per block: Q8_0/Q8_1 (32 elements; x86 ggml: d = amax/127 kept as fp16,
 * q = round-half-even(x * 127/amax)) or Q8_K (256; iscale = -127/max with max the first
 * element of largest magnitude, q = min(127, rint(iscale * x)), d = 1/iscale). Writes
 * the values d * q the CPU backend's integer dot products stand for. */
template <bool K>
__global__ void act_q8_kernel(const float *x, float *y, int64_t n_blocks) {
    constexpr int QK = K ? 256 : 32, PER = QK / 32;
    const int64_t b = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (b >= n_blocks) return;
    const float *xb = x + b * QK;
    float v[PER], amax, ext;
#pragma unroll
    for (int j = 0; j < PER; j++) v[j] = xb[lane + 32 * j];
    qr_warp_absmax<PER>(v, lane, amax, ext);
    float *yb = y + b * QK;
    if (!K) {
        const float d = __half2float(__float2half_rn(amax / 127.f)), id = amax != 0.0f ? 127.f / amax : 0.0f;
#pragma unroll
        for (int j = 0; j < PER; j++) yb[lane + 32 * j] = d * (float)(int)rintf(v[j] * id); /* -0 becomes 0 */
        return;
    }
    const float iscale = ext != 0.0f ? -127.f / ext : 0.0f, d = ext != 0.0f ? 1.0f / iscale : 0.0f;
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const float t = iscale * v[j];
        const int q = fabsf(t) <= 128.0f ? (int)rintf(t) : (t > 0 ? 127 : -128);
        yb[lane + 32 * j] = d * (float)(q < 127 ? q : 127);
    }
}

template <bool BF16>
__global__ void act_half_kernel(const float *x, float *y, int64_t n) {
    QR_GRID_STRIDE(i, n) y[i] = BF16 ? __bfloat162float(__float2bfloat16_rn(x[i])) : __half2float(__float2half_rn(x[i]));
}

/* ---- Attention ------------------------------------------------------------------------------ */

constexpr int kAttnWarps = 4;
/* Fewest cells a split takes (one pass of the CTA's warps, 4 cells each): a row with
 * fewer than n_split * kAttnMinChunk cells uses fewer splits, and its other CTAs only
 * count themselves in. On a server's context (-c 16384: 16 splits) with rows of ~100
 * cells this took a 32-stream Gemma 3 1B step from 6.9 to ~6.7 ms (H100). The chunk
 * depends on the row's own cell count only, so results stay batch invariant. */
constexpr int64_t kAttnMinChunk = 4 * kAttnWarps;

__device__ __forceinline__ int64_t attn_chunk(int64_t n, int n_split) {
    const int64_t c = (n + n_split - 1) / n_split;
    return c > kAttnMinChunk ? c : kAttnMinChunk;
}

template <bool F32>
__device__ __forceinline__ float kv_at(const void *p, int64_t i) {
    if (F32) return ((const float *)p)[i];
    return __half2float(((const __half *)p)[i]);
}

/* out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M) over the n_split partials of
 * (row, head), read through L2 (__ldcg: other CTAs wrote them). */
__device__ void merge_splits(const qr_attn_args &a, int n_split, const float *part, int r, int h) {
    const int dv = a.head_dim_v;
    const float *p = part + ((int64_t)r * a.n_head + h) * n_split * (dv + 2);
    const int64_t n = a.cells_off[r + 1] - a.cells_off[r], chunk = attn_chunk(n, n_split);
    const int n_used = (int)min((int64_t)n_split, (n + chunk - 1) / chunk); /* the others wrote nothing */
    n_split = n_used > 0 ? n_used : 1;
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++) M = fmaxf(M, __ldcg(p + s * (dv + 2)));
    float L = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const float ms = __ldcg(p + s * (dv + 2));
        if (ms != -INFINITY) L += __ldcg(p + s * (dv + 2) + 1) * expf(ms - M);
    }
    const float inv = L == 0.0f ? 0.0f : 1.0f / L;
    float *out = a.out + ((int64_t)r * a.n_head + h) * dv;
    for (int i = threadIdx.x; i < dv; i += blockDim.x) {
        float t = 0.0f;
        for (int s = 0; s < n_split; s++) {
            const float ms = __ldcg(p + s * (dv + 2));
            if (ms != -INFINITY) t += __ldcg(p + s * (dv + 2) + 2 + i) * expf(ms - M);
        }
        out[i] = t * inv;
    }
}

/* A split's CTA is done (its partial written, or none): the last of the (row, head) to
 * count itself in merges the partials. */
__device__ __forceinline__ void count_in_and_merge(const qr_attn_args &a, int n_split, const float *part,
                                                   unsigned *counters, int r, int h) {
    __threadfence(); /* this CTA's partial is visible device-wide before it counts itself */
    __syncthreads();
    __shared__ bool last;
    if (threadIdx.x == 0) {
        unsigned *c = counters + (int64_t)r * a.n_head + h;
        last = atomicAdd(c, 1u) == (unsigned)n_split - 1;
        if (last) *c = 0;
    }
    __syncthreads();
    if (last) merge_splits(a, n_split, part, r, h);
}

/* CTA (head, row, split): the warps take the chunk's cells 4 at a time in turn, each keeping
 * a running max m, sum l and F32 accumulator (lane holds dims lane, lane+32, ...), then
 * merge. With
 * one split the CTA writes the result; otherwise the chunk's (m, l, acc) go to the
 * scratch, and the last CTA of the (row, head) to finish (a counter, left at 0 again)
 * merges them: one launch, no second kernel. */
template <bool F32>
__global__ void __launch_bounds__(32 * kAttnWarps) attn_chunk_kernel(qr_attn_args a, int n_split, float *part,
                                                                     unsigned *counters) {
    qr_pdl_begin();
    constexpr int DV = QR_CUDA_ATTN_MAX_HEAD_DIM / 32;
    __shared__ float qs[QR_CUDA_ATTN_MAX_HEAD_DIM];
    __shared__ float wm[kAttnWarps], wl[kAttnWarps], wacc[kAttnWarps][QR_CUDA_ATTN_MAX_HEAD_DIM];
    const int h = blockIdx.x, r = blockIdx.y, sp = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int dk = a.head_dim_k, dv = a.head_dim_v;
    const int kvh = h / (a.n_head / a.n_head_kv);
    const float *q = a.q + ((int64_t)r * a.n_head + h) * dk;
    for (int i = threadIdx.x; i < dk; i += blockDim.x) qs[i] = q[i];
    __syncthreads();
    const int64_t c0 = a.cells_off[r], n = a.cells_off[r + 1] - c0;
    const int64_t chunk = attn_chunk(n, n_split);
    const int64_t lo = c0 + sp * chunk, hi = min(lo + chunk, c0 + n);
    if (lo >= hi && n_split > 1 && sp > 0) { /* no cells for this split: only count in */
        count_in_and_merge(a, n_split, part, counters, r, h);
        return;
    }
    float m = -INFINITY, l = 0.0f, acc[DV];
#pragma unroll
    for (int j = 0; j < DV; j++) acc[j] = 0.0f;
    /* Each warp step takes 4 cells, 8 lanes per cell for the score (so 4 dot products
     * and their loads are in flight at once, not one), then all 32 lanes update the
     * accumulator with the 4 weights. */
    constexpr int CPW = 4;
    const int grp = lane / 8, gl = lane % 8;
    for (int64_t cb = lo + (int64_t)warp * CPW; cb < hi; cb += (int64_t)kAttnWarps * CPW) {
        const int64_t ci = cb + grp;
        float s = 0.0f;
        int64_t vb_mine = 0;
        if (ci < hi) {
            const int64_t cell = a.cells[ci];
            const int64_t kb = cell * a.kv_stride_k + (int64_t)kvh * dk;
            for (int i = gl; i < dk; i += 8) s = fmaf(qs[i], kv_at<F32>(a.k, kb + i), s);
            vb_mine = cell * a.kv_stride_v + (int64_t)kvh * dv;
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s += __shfl_xor_sync(0xffffffffu, s, 4);
        s = a.softcap != 0.0f ? a.softcap * tanhf(s * (a.scale / a.softcap)) : s * a.scale;
        float sc[CPW], p[CPW];
        int64_t vb[CPW];
        float m_new = m;
#pragma unroll
        for (int c = 0; c < CPW; c++) {
            sc[c] = cb + c < hi ? __shfl_sync(0xffffffffu, s, 8 * c) : -INFINITY;
            vb[c] = __shfl_sync(0xffffffffu, vb_mine, 8 * c);
            m_new = fmaxf(m_new, sc[c]);
        }
        const float corr = expf(m - m_new); /* cell cb is valid, so m_new is finite */
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < CPW; c++) psum += p[c] = expf(sc[c] - m_new);
        l = fmaf(l, corr, psum);
#pragma unroll
        for (int j = 0; j < DV; j++) {
            const int i = lane + 32 * j;
            if (i >= dv) continue;
            float t = acc[j] * corr;
#pragma unroll
            for (int c = 0; c < CPW; c++)
                if (cb + c < hi) t = fmaf(p[c], kv_at<F32>(a.v, vb[c] + i), t);
            acc[j] = t;
        }
        m = m_new;
    }
    if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
    for (int j = 0; j < DV; j++) {
        const int i = lane + 32 * j;
        if (i < dv) wacc[warp][i] = acc[j];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < kAttnWarps; w++) M = fmaxf(M, wm[w]);
    float L = 0.0f;
    for (int w = 0; w < kAttnWarps; w++) L += wm[w] == -INFINITY ? 0.0f : wl[w] * expf(wm[w] - M);
    if (n_split == 1) {
        const float inv = L == 0.0f ? 0.0f : 1.0f / L;
        float *o = a.out + ((int64_t)r * a.n_head + h) * dv;
        for (int i = threadIdx.x; i < dv; i += blockDim.x) {
            float t = 0.0f;
            for (int w = 0; w < kAttnWarps; w++) t += wm[w] == -INFINITY ? 0.0f : wacc[w][i] * expf(wm[w] - M);
            o[i] = t * inv;
        }
        return;
    }
    float *out = part + (((int64_t)r * a.n_head + h) * n_split + sp) * (dv + 2);
    if (threadIdx.x == 0) out[0] = M, out[1] = L;
    for (int i = threadIdx.x; i < dv; i += blockDim.x) {
        float t = 0.0f;
        for (int w = 0; w < kAttnWarps; w++) t += wm[w] == -INFINITY ? 0.0f : wacc[w][i] * expf(wm[w] - M);
        out[2 + i] = t;
    }
    count_in_and_merge(a, n_split, part, counters, r, h);
}

} // namespace

#define QR_STREAM(s) ((cudaStream_t)(s))

extern "C" int qr_cuda_get_rows(const qr_cuda_matrix *w, const int32_t *ids, int64_t n_rows, float scale,
                                float *out, void *stream, qr_error *err) {
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)w->type);
    if (n_rows < 1) return QR_OK;
    const dim3 g((unsigned)n_rows, (unsigned)((w->cols + kThreads - 1) / kThreads));
    get_rows_kernel<<<g, kThreads, 0, QR_STREAM(stream)>>>(
        w->type, w->data, w->pitch, tr->block_size, tr->type_size, w->cols, ids, scale, out);
    QR_CUDA_LAUNCHED("get_rows_kernel", err);
    return QR_OK;
}

static int launch_rmsnorm(const float *a, const float *b, float *sum, const float *w, int64_t n_rows, int64_t dim,
                          float eps, float *y, qr_type wtype, void *act, bool pdl, void *stream, qr_error *err) {
    if (n_rows < 1) return QR_OK;
    qr_cuda_act_layout L;
    memset(&L, 0, sizeof L);
    if (act && qr_cuda_act_q8_layout(wtype, dim, &L, err) != QR_OK) return QR_ERR;
    const bool vec = dim % 4 == 0 && ((uintptr_t)a | (uintptr_t)b | (uintptr_t)sum | (uintptr_t)w | (uintptr_t)y) % 16 == 0;
    int64_t t = ((vec ? dim / 4 : dim) + 31) / 32 * 32;
    t = t < 32 ? 32 : t > 1024 ? 1024 : t;
    (void)qr_launch(pdl, vec ? rmsnorm_kernel<true> : rmsnorm_kernel<false>, dim3((unsigned)n_rows), dim3((unsigned)t),
                    QR_STREAM(stream), a, b, sum, w, dim, eps, y, (uint8_t *)act, L);
    QR_CUDA_LAUNCHED("rmsnorm_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_rmsnorm(const float *x, const float *w, int64_t n_rows, int64_t dim, float eps, float *y,
                               void *stream, qr_error *err) {
    return launch_rmsnorm(x, NULL, NULL, w, n_rows, dim, eps, y, QR_TYPE_COUNT, NULL, false, stream, err);
}

extern "C" int qr_cuda_add_rmsnorm(const float *a, const float *b, float *sum, const float *w, int64_t n_rows,
                                   int64_t dim, float eps, float *y, bool pdl, void *stream, qr_error *err) {
    return launch_rmsnorm(a, b, sum, w, n_rows, dim, eps, y, QR_TYPE_COUNT, NULL, pdl, stream, err);
}

extern "C" int qr_cuda_add_rmsnorm_quant(const float *a, const float *b, float *sum, const float *w, int64_t n_rows,
                                         int64_t dim, float eps, float *y, qr_type wtype, void *act, bool pdl,
                                         void *stream, qr_error *err) {
    return launch_rmsnorm(a, b, b ? sum : NULL, w, n_rows, dim, eps, y, wtype, act, pdl, stream, err);
}

extern "C" int qr_cuda_add(float *dst, const float *a, const float *b, int64_t n, void *stream, qr_error *err) {
    add_kernel<<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(dst, a, b, n);
    QR_CUDA_LAUNCHED("add_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_add_bias(float *y, const float *bias, int64_t n_rows, int64_t dim, void *stream,
                                qr_error *err) {
    add_bias_kernel<<<blocks_for(n_rows * dim), kThreads, 0, QR_STREAM(stream)>>>(y, bias, dim, n_rows * dim);
    QR_CUDA_LAUNCHED("add_bias_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_scale(float *x, float s, int64_t n, void *stream, qr_error *err) {
    scale_kernel<<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(x, s, n);
    QR_CUDA_LAUNCHED("scale_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_softcap(float *x, float cap, int64_t n, void *stream, qr_error *err) {
    softcap_kernel<<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(x, cap, n);
    QR_CUDA_LAUNCHED("softcap_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_rope(float *x, int64_t n_rows, int64_t n_head, int64_t head_dim, const int32_t *pos,
                            const qr_rope_args *a, void *stream, qr_error *err) {
    const float theta_scale = powf(a->base, -2.0f / (float)a->n_rot);
    const int64_t n = n_rows * n_head * (a->n_rot / 2);
    if (n < 1) return QR_OK;
    rope_kernel<<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(x, n_rows, n_head, head_dim, pos,
                                                                    a->mode == QR_ROPE_MODE_NEOX, a->n_rot,
                                                                    theta_scale, a->freq_scale, a->freq_factors);
    QR_CUDA_LAUNCHED("rope_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_store_kv(const float *k, const float *v, int64_t n_rows, int64_t sk, int64_t sv,
                                const int32_t *cell, void *k_cache, void *v_cache, bool f32, void *stream,
                                qr_error *err) {
    const unsigned g = blocks_for(n_rows * (sk + sv));
    if (f32)
        store_kv_kernel<true><<<g, kThreads, 0, QR_STREAM(stream)>>>(k, v, n_rows, sk, sv, cell, k_cache, v_cache);
    else
        store_kv_kernel<false><<<g, kThreads, 0, QR_STREAM(stream)>>>(k, v, n_rows, sk, sv, cell, k_cache, v_cache);
    QR_CUDA_LAUNCHED("store_kv_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_rope_store(float *q, const float *k, const float *v, int64_t n_rows, int n_head, int n_head_kv,
                                  int head_dim_k, int head_dim_v, const int32_t *pos, const qr_rope_args *a,
                                  float q_scale, const int32_t *cell, void *k_cache, void *v_cache, bool f32,
                                  bool pdl, void *stream, qr_error *err) {
    const float theta_scale = powf(a->base, -2.0f / (float)a->n_rot);
    const int64_t per_row = (int64_t)n_head * (a->n_rot / 2 + head_dim_k - a->n_rot) +
                            (int64_t)n_head_kv * (head_dim_k + head_dim_v);
    const unsigned g = blocks_for(n_rows * per_row);
    const int neox = a->mode == QR_ROPE_MODE_NEOX;
    (void)qr_launch(pdl, f32 ? rope_store_kernel<true> : rope_store_kernel<false>, dim3(g), dim3(kThreads),
                    QR_STREAM(stream), q, k, v, n_rows, n_head, n_head_kv, head_dim_k, head_dim_v, pos, neox, a->n_rot,
                    theta_scale, a->freq_scale, a->freq_factors, q_scale, cell, k_cache, v_cache);
    QR_CUDA_LAUNCHED("rope_store_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_glu(qr_glu_kind kind, const float *gate, const float *up, float *out, int64_t n, bool pdl,
                           void *stream, qr_error *err) {
    (void)qr_launch(pdl, kind == QR_GLU_SILU ? glu_kernel<QR_GLU_SILU> : glu_kernel<QR_GLU_GELU_TANH>,
                    dim3(blocks_for(n)), dim3(kThreads), QR_STREAM(stream), gate, up, out, n);
    QR_CUDA_LAUNCHED("glu_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_glu_quant(qr_glu_kind kind, const float *gate, const float *up, float *out, int64_t n_rows,
                                 int64_t n, qr_type wtype, void *act, bool pdl, void *stream, qr_error *err) {
    qr_cuda_act_layout L;
    if (qr_cuda_act_q8_layout(wtype, n, &L, err) != QR_OK) return QR_ERR;
    if (n_rows < 1) return QR_OK;
    const int64_t warps = n_rows * (n / L.block), per_cta = kThreads / 32;
    const unsigned g = (unsigned)((warps + per_cta - 1) / per_cta);
    (void)qr_launch(pdl, kind == QR_GLU_SILU ? glu_quant_kernel<QR_GLU_SILU> : glu_quant_kernel<QR_GLU_GELU_TANH>,
                    dim3(g), dim3(kThreads), QR_STREAM(stream), gate, up, out, n_rows, n, (uint8_t *)act, L);
    QR_CUDA_LAUNCHED("glu_quant_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_gather_rows(float *dst, const float *src, const int32_t *idx, int64_t n_rows, int64_t dim,
                                   void *stream, qr_error *err) {
    if (n_rows < 1) return QR_OK;
    gather_kernel<<<blocks_for(n_rows * dim), kThreads, 0, QR_STREAM(stream)>>>(dst, src, idx, dim, n_rows * dim);
    QR_CUDA_LAUNCHED("gather_kernel", err);
    return QR_OK;
}

extern "C" int qr_cuda_round_activations(qr_type vt, const float *x, float *y, int64_t n, void *stream,
                                         qr_error *err) {
    const int warps = kThreads / 32;
    switch (vt) {
    case QR_TYPE_Q8_0:
    case QR_TYPE_Q8_1:
    case QR_TYPE_Q8_K: {
        const bool k = vt == QR_TYPE_Q8_K;
        const int64_t qk = k ? 256 : 32;
        if (n % qk != 0) return qr_fail(err, "round_activations: %lld values are not whole %s blocks", (long long)n,
                                        qr_type_name(vt));
        const int64_t nb = n / qk;
        const unsigned g = (unsigned)((nb + warps - 1) / warps);
        if (k)
            act_q8_kernel<true><<<g, kThreads, 0, QR_STREAM(stream)>>>(x, y, nb);
        else
            act_q8_kernel<false><<<g, kThreads, 0, QR_STREAM(stream)>>>(x, y, nb);
        break;
    }
    case QR_TYPE_F16: act_half_kernel<false><<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(x, y, n); break;
    case QR_TYPE_BF16: act_half_kernel<true><<<blocks_for(n), kThreads, 0, QR_STREAM(stream)>>>(x, y, n); break;
    default: return qr_fail(err, "round_activations: no rounding to %s", qr_type_name(vt));
    }
    QR_CUDA_LAUNCHED("the activation rounding kernel", err);
    return QR_OK;
}

extern "C" int64_t qr_cuda_attention_scratch(int64_t n_rows, int64_t n_head, int64_t head_dim_v, int n_split) {
    return n_rows * n_head * (int64_t)n_split * (head_dim_v + 2);
}

extern "C" int qr_cuda_attention(const qr_attn_args *a, int n_split, float *scratch, unsigned *counters, bool pdl,
                                 void *stream, qr_error *err) {
    if (a->head_dim_k > QR_CUDA_ATTN_MAX_HEAD_DIM || a->head_dim_v > QR_CUDA_ATTN_MAX_HEAD_DIM)
        return qr_fail(err, "CUDA attention: head dimension %d/%d exceeds %d", a->head_dim_k, a->head_dim_v,
                       QR_CUDA_ATTN_MAX_HEAD_DIM);
    if (n_split < 1 || n_split > 64) return qr_fail(err, "CUDA attention: n_split %d outside 1..64", n_split);
    if (a->n_head_kv < 1 || a->n_head % a->n_head_kv != 0)
        return qr_fail(err, "CUDA attention: %d heads over %d KV heads", a->n_head, a->n_head_kv);
    if (a->n_rows < 1) return QR_OK;
    const dim3 g((unsigned)a->n_head, (unsigned)a->n_rows, (unsigned)n_split);
    (void)qr_launch(pdl, a->kv_f32 ? attn_chunk_kernel<true> : attn_chunk_kernel<false>, g, dim3(32 * kAttnWarps),
                    QR_STREAM(stream), *a, n_split, scratch, counters);
    QR_CUDA_LAUNCHED("attn_chunk_kernel", err);
    return QR_OK;
}
