/* Attention of one query row and head over its KV cells, following ggml's CPU
 * flash-attention kernel for small batches (ggml/src/ggml-cpu/ops.cpp,
 * ggml_compute_forward_flash_attn_ext_f16_one_chunk), which llama.cpp uses by default:
 *
 *   - with an F16 cache, Q is rounded to F16 and dotted with F16 K (float sum);
 *   - scores are scaled (and soft-capped), then an online softmax runs in cell order:
 *     a new maximum rescales the accumulator by expf(M_old - M), otherwise the value
 *     weight is expf(s - M);
 *   - with an F16 cache the V accumulator itself is F16: each step is
 *     acc = f16(acc + v * w) with a fused multiply-add, as ggml_vec_mad_f16;
 *   - the result is acc / S.
 *
 * With qr_attn_args.tiled the tiled kernel below is emulated instead (llama.cpp's choice
 * for batches of 64+ query rows); the forward pass asks for it only outside
 * batch-invariant mode. */
/* Bit-exactness with llama.cpp needs each a*b+c rounded exactly as written here (fmaf
 * where ggml's build fuses, two roundings elsewhere): no FMA contraction by the compiler.
 * Clang contracts by default unless told; GCC does not in ISO C mode (-std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile the CPU backend as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/fp16.h"

typedef struct attn_job {
    qr_cpu_backend *cb;
    const qr_attn_args *a;
} attn_job;

static float score(const qr_attn_args *a, float s) {
    if (a->softcap != 0.0f) {
        /* ggml: scale /= softcap, then s = softcap * tanhf(s * scale). */
        return a->softcap * tanhf(s * (a->scale / a->softcap));
    }
    return s * a->scale;
}

static void attend_f16(const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0, int64_t c1,
                       void *scratch, float *out) {
    const int32_t dk = a->head_dim_k, dv = a->head_dim_v;
    uint16_t *qh = scratch;
    uint16_t *acc = qh + dk;
    for (int32_t i = 0; i < dk; i++) qh[i] = qr_f32_to_f16(q[i]);
    memset(acc, 0, (size_t)dv * sizeof *acc);
    const uint16_t *K = a->k, *V = a->v;
    float S = 0.0f, M = -INFINITY;
    for (int64_t ci = c0; ci < c1; ci++) {
        const int64_t cell = a->cells[ci];
        const uint16_t *kc = K + cell * a->kv_stride_k + (int64_t)kvh * dk;
        const uint16_t *vc = V + cell * a->kv_stride_v + (int64_t)kvh * dv;
        const float s = score(a, qr_cpu_dot_f16(qh, kc, dk));
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            qr_cpu_vec_scale_f16(dv, acc, ms);
        } else {
            vs = expf(s - M);
        }
        qr_cpu_vec_mad_f16(dv, acc, vc, vs);
        S = fmaf(S, ms, vs); /* ggml's -march=native build contracts this */
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int32_t i = 0; i < dv; i++) out[i] = qr_f16_to_f32(acc[i]) * inv;
}

/* attend_f16 with the SIMD helpers (AVX-512 CPUs): every score first (they do not depend
 * on the softmax state), 8 keys at a time, then the same online softmax in cell order. */
static void attend_f16_simd(const qr_cpu_backend *cb, const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0,
                            int64_t c1, void *scratch, float *out) {
    const int32_t dk = a->head_dim_k, dv = a->head_dim_v;
    const bool fp16 = cb->features.avx512fp16;
    uint16_t *qh = scratch;
    uint16_t *acc = qh + ((dk + 31) & ~31);
    float *sc = (float *)(acc + ((dv + 31) & ~31));
    for (int32_t i = 0; i < dk; i++) qh[i] = qr_f32_to_f16(q[i]);
    memset(acc, 0, (size_t)dv * sizeof *acc);
    const uint16_t *K = a->k, *V = a->v;
    for (int64_t ci = c0; ci < c1; ci += 8) {
        const int n = c1 - ci < 8 ? (int)(c1 - ci) : 8;
        const uint16_t *keys[8];
        for (int k = 0; k < n; k++) keys[k] = K + a->cells[ci + k] * a->kv_stride_k + (int64_t)kvh * dk;
        qr_cpu_dot_f16_keys(qh, keys, n, dk, fp16, sc + (ci - c0));
    }
    float S = 0.0f, M = -INFINITY;
    for (int64_t ci = c0; ci < c1; ci++) {
        const uint16_t *vc = V + a->cells[ci] * a->kv_stride_v + (int64_t)kvh * dv;
        const float s = score(a, sc[ci - c0]);
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            qr_cpu_vec_scale_f16_fast(dv, acc, ms, fp16);
        } else {
            vs = expf(s - M);
        }
        qr_cpu_vec_mad_f16_fast(dv, acc, vc, vs, fp16);
        S = fmaf(S, ms, vs);
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int32_t i = 0; i < dv; i++) out[i] = qr_f16_to_f32(acc[i]) * inv;
}

static void attend_f32(const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0, int64_t c1,
                       void *scratch, float *out) {
    const int32_t dk = a->head_dim_k, dv = a->head_dim_v;
    float *acc = scratch;
    memset(acc, 0, (size_t)dv * sizeof *acc);
    const float *K = a->k, *V = a->v;
    float S = 0.0f, M = -INFINITY;
    for (int64_t ci = c0; ci < c1; ci++) {
        const int64_t cell = a->cells[ci];
        const float *kc = K + cell * a->kv_stride_k + (int64_t)kvh * dk;
        const float *vc = V + cell * a->kv_stride_v + (int64_t)kvh * dv;
        const float s = score(a, qr_cpu_dot_f32_vec(q, kc, dk));
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            const float m_old = M;
            M = s;
            ms = expf(m_old - M);
            for (int32_t i = 0; i < dv; i++) acc[i] *= ms;
        } else {
            vs = expf(s - M);
        }
        for (int32_t i = 0; i < dv; i++) acc[i] = fmaf(vc[i], vs, acc[i]);
        S = fmaf(S, ms, vs); /* ggml's -march=native build contracts this */
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int32_t i = 0; i < dv; i++) out[i] = acc[i] * inv;
}

/* ggml's tiled flash-attention kernel (ggml_compute_forward_flash_attn_ext_tiled), which
 * llama.cpp uses for batches of 64+ query rows: Q stays F32; keys are taken in tiles of
 * 64 cells (cell / 64), each score a sequential fma chain over the head dimension; per
 * tile the running max moves first (rescaling the F32 accumulator and the sum by
 * expf(M_old - M_new)), then the tile's weights ggml_v_expf(s - M) are summed 16 lanes at
 * a time into a double, and V is accumulated with a sequential fma chain over the tile's
 * slots. A row's result depends only on its own cells. */
static void attend_tiled(const qr_attn_args *a, const float *q, int32_t kvh, int64_t c0, int64_t c1, void *scratch,
                         float *out) {
    const int32_t dk = a->head_dim_k, dv = a->head_dim_v;
    float *acc = scratch, *p = acc + dv, *kq = p + 64;
    int64_t *slot_cell = (int64_t *)(kq + 64);
    memset(acc, 0, (size_t)dv * sizeof *acc);
    float M = -INFINITY, S = 0.0f;
    for (int64_t i = c0; i < c1;) {
        const int64_t tile = a->cells[i] / 64;
        for (int t = 0; t < 64; t++) kq[t] = -INFINITY, slot_cell[t] = -1;
        float tmax = -INFINITY;
        for (; i < c1 && a->cells[i] / 64 == tile; i++) {
            const int64_t cell = a->cells[i];
            float s = 0.0f;
            if (a->kv_f32) {
                const float *kc = (const float *)a->k + cell * a->kv_stride_k + (int64_t)kvh * dk;
                for (int32_t d = 0; d < dk; d++) s = fmaf(kc[d], q[d], s);
            } else {
                const uint16_t *kc = (const uint16_t *)a->k + cell * a->kv_stride_k + (int64_t)kvh * dk;
                for (int32_t d = 0; d < dk; d++) s = fmaf(qr_f16_to_f32(kc[d]), q[d], s);
            }
            s = score(a, s);
            kq[cell % 64] = s;
            slot_cell[cell % 64] = cell;
            tmax = s > tmax ? s : tmax;
        }
        if (tmax == -INFINITY) continue;
        const float m_new = fmaxf(M, tmax);
        if (m_new > M) {
            const float ms = expf(M - m_new);
            for (int32_t d = 0; d < dv; d++) acc[d] *= ms;
            S *= ms;
        }
        M = m_new;
        double sum = 0.0;
        for (int b = 0; b < 4; b++) {
            float lane[16];
            for (int l = 0; l < 16; l++) lane[l] = p[16 * b + l] = qr_cpu_ggml_expf(kq[16 * b + l] - M);
            float h[8], g[4];
            for (int l = 0; l < 8; l++) h[l] = lane[8 + l] + lane[l];
            for (int l = 0; l < 4; l++) g[l] = h[4 + l] + h[l];
            sum += (double)((g[0] + g[2]) + (g[1] + g[3]));
        }
        S = (float)((double)S + sum);
        for (int t = 0; t < 64; t++) {
            if (slot_cell[t] < 0) continue; /* masked slots add fma(v, 0, acc) = acc */
            const int64_t cell = slot_cell[t];
            if (a->kv_f32) {
                const float *vc = (const float *)a->v + cell * a->kv_stride_v + (int64_t)kvh * dv;
                for (int32_t d = 0; d < dv; d++) acc[d] = fmaf(vc[d], p[t], acc[d]);
            } else {
                const uint16_t *vc = (const uint16_t *)a->v + cell * a->kv_stride_v + (int64_t)kvh * dv;
                for (int32_t d = 0; d < dv; d++) acc[d] = fmaf(qr_f16_to_f32(vc[d]), p[t], acc[d]);
            }
        }
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    for (int32_t d = 0; d < dv; d++) out[d] = acc[d] * inv;
}

static void attn_worker(void *ctx, int64_t begin, int64_t end, int tid) {
    const attn_job *j = ctx;
    const qr_attn_args *a = j->a;
    void *scratch = j->cb->per_thread[tid].ptr;
    const int32_t group = a->n_head / a->n_head_kv;
    for (int64_t it = begin; it < end; it++) {
        const int64_t r = it / a->n_head;
        const int32_t h = (int32_t)(it % a->n_head);
        const float *q = a->q + (r * a->n_head + h) * a->head_dim_k;
        float *out = a->out + (r * a->n_head + h) * a->head_dim_v;
        const int64_t c0 = a->cells_off[r], c1 = a->cells_off[r + 1];
        if (a->tiled) {
            attend_tiled(a, q, h / group, c0, c1, scratch, out);
        } else if (a->kv_f32) {
            attend_f32(a, q, h / group, c0, c1, scratch, out);
        } else if (j->cb->features.avx512) {
            attend_f16_simd(j->cb, a, q, h / group, c0, c1, scratch, out);
        } else {
            attend_f16(a, q, h / group, c0, c1, scratch, out);
        }
    }
}

/* The SIMD tiled kernel: items head-major, so a thread's consecutive items share tiles. */
static void attn_worker_tiled_simd(void *ctx, int64_t begin, int64_t end, int tid) {
    const attn_job *j = ctx;
    const qr_attn_args *a = j->a;
    qr_cpu_tile_cache *tc = j->cb->per_thread[tid].ptr;
    const int32_t group = a->n_head / a->n_head_kv;
    for (int64_t it = begin; it < end; it++) {
        const int32_t h = (int32_t)(it / a->n_rows);
        const int64_t r = it % a->n_rows;
        const float *q = a->q + (r * a->n_head + h) * a->head_dim_k;
        float *out = a->out + (r * a->n_head + h) * a->head_dim_v;
        qr_cpu_attend_tiled_avx512(a, q, h / group, a->cells_off[r], a->cells_off[r + 1], tc, out);
    }
}

/* Lays out each thread's tile cache in its scratch (QR_OK, or QR_ERR out of memory). */
static int setup_tile_caches(qr_cpu_backend *cb, const qr_attn_args *a, qr_error *err) {
    int64_t max_cell = 0;
    for (int64_t i = 0; i < a->cells_off[a->n_rows]; i++) max_cell = a->cells[i] > max_cell ? a->cells[i] : max_cell;
    const int64_t n_tiles = max_cell / 64 + 1;
    const size_t head = (sizeof(qr_cpu_tile_cache) + 63) & ~(size_t)63;
    const size_t kt = (size_t)n_tiles * (size_t)a->head_dim_k * 64 * sizeof(float);
    const size_t need = head + kt + (size_t)n_tiles + 64 + (size_t)a->head_dim_v * sizeof(float) + 64;
    if (qr_cpu_reserve_per_thread(cb, need, err) != QR_OK) return QR_ERR;
    for (int t = 0; t < cb->n_threads; t++) {
        uint8_t *base = cb->per_thread[t].ptr;
        qr_cpu_tile_cache *tc = (qr_cpu_tile_cache *)base;
        tc->kvh = -1;
        tc->n_tiles = n_tiles;
        tc->max_cell = max_cell;
        tc->kt = (float *)(base + head);
        tc->built = (uint8_t *)tc->kt + kt;
        tc->acc = (float *)(((uintptr_t)(tc->built + n_tiles) + 63) & ~(uintptr_t)63);
    }
    return QR_OK;
}

int qr_cpu_attention(qr_backend *be, const qr_attn_args *a, qr_error *err) {
    qr_cpu_backend *cb = be->impl;
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0) {
        return qr_fail(err, "attention: n_head %d is not a multiple of n_head_kv %d", a->n_head, a->n_head_kv);
    }
    attn_job j = {cb, a};
    const int64_t n_items = (int64_t)a->n_rows * a->n_head;
    if (a->tiled && cb->features.avx512) {
        if (setup_tile_caches(cb, a, err) != QR_OK) return QR_ERR;
        const int64_t grain = n_items / (cb->n_threads * 4) > 1 ? n_items / (cb->n_threads * 4) : 1;
        qr_threadpool_parallel_for(cb->pool, n_items, grain, attn_worker_tiled_simd, &j);
        return QR_OK;
    }
    int64_t max_cells = 0;
    for (int32_t r = 0; r < a->n_rows; r++) {
        const int64_t n = a->cells_off[r + 1] - a->cells_off[r];
        max_cells = n > max_cells ? n : max_cells;
    }
    size_t need = (size_t)(a->head_dim_k + a->head_dim_v + 128) * sizeof(float) + 64 * sizeof(int64_t) +
                  (size_t)max_cells * sizeof(float);
    if (qr_cpu_reserve_per_thread(cb, need, err) != QR_OK) return QR_ERR;
    qr_threadpool_parallel_for(cb->pool, n_items, 1, attn_worker, &j);
    return QR_OK;
}
