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
 * The same path serves every batch size, so a row's output never depends on how many
 * rows share its batch (llama.cpp switches to a tiled F32 kernel at 64+ query rows). */
#include <math.h>
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
        if (a->kv_f32) {
            attend_f32(a, q, h / group, c0, c1, scratch, out);
        } else {
            attend_f16(a, q, h / group, c0, c1, scratch, out);
        }
    }
}

int qr_cpu_attention(qr_backend *be, const qr_attn_args *a, qr_error *err) {
    qr_cpu_backend *cb = be->impl;
    if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0) {
        return qr_fail(err, "attention: n_head %d is not a multiple of n_head_kv %d", a->n_head, a->n_head_kv);
    }
    size_t need = (size_t)(a->head_dim_k + a->head_dim_v) * sizeof(float);
    if (qr_cpu_reserve_per_thread(cb, need, err) != QR_OK) return QR_ERR;
    attn_job j = {cb, a};
    qr_threadpool_parallel_for(cb->pool, (int64_t)a->n_rows * a->n_head, 1, attn_worker, &j);
    return QR_OK;
}
