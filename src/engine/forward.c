/* Layer dataflow (MODELS.md section 2):
 *   llama/qwen2: h = x + Wo·attn(rope(Wq·n1), rope(Wk·n1), Wv·n1), n1 = rms(x)·attn_norm;
 *                x' = h + down(act(gate·n2) ⊙ up·n2), n2 = rms(h)·ffn_norm
 *   gemma3:      embeddings × sqrt(n_embd); per-head rms Q/K norms before RoPE; Q scaled
 *                before attention; rms post-norms on the attention and FFN outputs.
 * The residual stream, norms and RoPE stay in F32; the matmuls convert activations as
 * the backend's matmul op documents; K and V are stored in the cache's type. */
/* Bit-exactness with llama.cpp needs each a*b+c rounded exactly as written here (fmaf
 * where ggml's build fuses, two roundings elsewhere): no FMA contraction by the compiler.
 * Clang contracts by default unless told; GCC does not in ISO C mode (-std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile the CPU backend as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

#include "engine/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"

struct qr_forward {
    const qr_model *m;
    qr_backend *be;
    int32_t max_batch, n_ctx;
    float *x, *h, *cur;
    /* q, k, v and attn (attention), gate and up (FFN) and out_rows (the output) are never
     * live at the same time: they share `work`, which holds the largest of the three. */
    float *work, *q, *k, *v, *attn, *gate, *up, *out_rows;
    int64_t up_cols; /* columns of `up` per pass (the FFN's up projection runs in parts) */
    int32_t *cells;
    int64_t *cells_off;
    int32_t *out_idx;
    qr_fwd_observer observer;
    void *observer_user;
};

static float *alloc_f(int64_t n) { return malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); }

int qr_forward_create(const qr_model *m, qr_backend *be, int32_t max_batch, int32_t n_ctx,
                      qr_forward **out, qr_error *err) {
    *out = NULL;
    if (max_batch < 1 || n_ctx < 1) return qr_fail(err, "forward: max_batch and n_ctx must be >= 1");
    const qr_hparams *hp = &m->desc.hp;
    qr_forward *f = calloc(1, sizeof *f);
    if (!f) return qr_fail(err, "out of memory");
    f->m = m;
    f->be = be;
    f->max_batch = max_batch;
    f->n_ctx = n_ctx;
    const int64_t B = max_batch;
    const int64_t nq = (int64_t)hp->n_head * hp->head_dim_k, nqv = (int64_t)hp->n_head * hp->head_dim_v;
    const int64_t wide = nq > hp->n_embd ? nq : hp->n_embd;
    f->x = alloc_f(B * hp->n_embd);
    f->h = alloc_f(B * hp->n_embd);
    f->cur = alloc_f(B * wide);
    /* Prompt batches compute the up projection a quarter of the columns at a time (in
     * parts that are multiples of 16, so the GLU's vector/tail split stays the row's), to
     * keep the batch's scratch small; decode keeps whole rows. */
    f->up_cols = B > 64 ? (((int64_t)hp->n_ff + 3) / 4 + 15) / 16 * 16 : hp->n_ff;
    if (f->up_cols > hp->n_ff) f->up_cols = hp->n_ff;
    const int64_t nk = (int64_t)hp->n_head_kv * hp->head_dim_k, nv = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t attn_cols = nq + nk + nv + nqv, ffn_cols = hp->n_ff + f->up_cols;
    int64_t work_cols = attn_cols > ffn_cols ? attn_cols : ffn_cols;
    if (work_cols < hp->n_embd) work_cols = hp->n_embd;
    f->work = alloc_f(B * work_cols);
    if (f->work) {
        f->q = f->work, f->k = f->q + B * nq, f->v = f->k + B * nk, f->attn = f->v + B * nv;
        f->gate = f->work, f->up = f->gate + B * hp->n_ff;
        f->out_rows = f->work;
    }
    f->cells = malloc((size_t)(B * n_ctx) * sizeof *f->cells);
    f->cells_off = malloc((size_t)(B + 1) * sizeof *f->cells_off);
    f->out_idx = malloc((size_t)B * sizeof *f->out_idx);
    if (!f->x || !f->h || !f->cur || !f->work || !f->cells || !f->cells_off || !f->out_idx) {
        qr_forward_free(f);
        return qr_fail(err, "out of memory for forward buffers (batch %d, context %d)", max_batch, n_ctx);
    }
    *out = f;
    return QR_OK;
}

void qr_forward_free(qr_forward *f) {
    if (!f) return;
    float *bufs[] = {f->x, f->h, f->cur, f->work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->cells);
    free(f->cells_off);
    free(f->out_idx);
    free(f);
}

void qr_forward_set_observer(qr_forward *f, qr_fwd_observer fn, void *user) {
    f->observer = fn;
    f->observer_user = user;
}

/* ---- Small helpers ------------------------------------------------------------------------- */

static int observe(qr_forward *f, int32_t layer, const char *op, const float *data, int64_t rows,
                   int64_t cols, qr_error *err) {
    if (!f->observer) return QR_OK;
    if (f->observer(f->observer_user, layer, op, data, rows, cols) != 0) {
        return qr_fail(err, "forward pass stopped after layer %d, op %s", layer, op);
    }
    return QR_OK;
}

static int matmul(qr_forward *f, const qr_weight *w, const qr_weight *bias, const float *x, int64_t rows,
                  float *y, qr_error *err) {
    if (f->be->ops->matmul(f->be, w->type, w->data, w->ne0, w->ne1, x, rows, y, err) != QR_OK) return QR_ERR;
    if (bias && bias->data) {
        const float *b = bias->data;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < w->ne1; i++) y[r * w->ne1 + i] += b[i];
        }
    }
    return QR_OK;
}

static void rmsnorm(qr_forward *f, const float *x, const qr_weight *w, int64_t rows, int64_t dim, float *y) {
    f->be->ops->rmsnorm(f->be, x, w->data, rows, dim, f->m->desc.norm_eps, y);
}

static void add_rows(float *dst, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = a[i] + b[i];
}

/* ---- Attention block ------------------------------------------------------------------------ */

static void store_kv(qr_forward *f, qr_kv_cache *kv, uint32_t il, const qr_fwd_batch *b) {
    const int64_t sk = qr_kv_stride_k(kv), sv = qr_kv_stride_v(kv);
    for (int32_t r = 0; r < b->n_rows; r++) {
        const int64_t cell = qr_kv_cell(kv, il, b->seq[r], b->pos[r]);
        const float *kr = f->k + r * sk, *vr = f->v + r * sv;
        if (qr_kv_is_f32(kv)) {
            memcpy((float *)qr_kv_k(kv, il) + cell * sk, kr, (size_t)sk * sizeof(float));
            memcpy((float *)qr_kv_v(kv, il) + cell * sv, vr, (size_t)sv * sizeof(float));
        } else {
            uint16_t *kd = (uint16_t *)qr_kv_k(kv, il) + cell * sk, *vd = (uint16_t *)qr_kv_v(kv, il) + cell * sv;
            for (int64_t i = 0; i < sk; i++) kd[i] = qr_f32_to_f16(kr[i]);
            for (int64_t i = 0; i < sv; i++) vd[i] = qr_f32_to_f16(vr[i]);
        }
    }
}

/* Each row sees its own sequence's positions lo..pos in position order, lo = pos - n_swa
 * + 1 on sliding-window layers (llama.cpp's is_masked_swa), else 0. */
static void build_cells(qr_forward *f, qr_kv_cache *kv, uint32_t il, const qr_fwd_batch *b) {
    const bool swa = qr_kv_layer_is_swa(kv, il);
    const int64_t n_swa = qr_kv_n_swa(kv);
    int64_t n = 0;
    for (int32_t r = 0; r < b->n_rows; r++) {
        f->cells_off[r] = n;
        int64_t lo = swa ? (int64_t)b->pos[r] - n_swa + 1 : 0;
        if (lo < 0) lo = 0;
        for (int64_t p = lo; p <= b->pos[r]; p++) f->cells[n++] = qr_kv_cell(kv, il, b->seq[r], (int32_t)p);
    }
    f->cells_off[b->n_rows] = n;
}

static qr_rope_args rope_args(const qr_forward *f, bool swa) {
    const qr_descriptor *d = &f->m->desc;
    qr_rope_args a = {
        .mode = d->rope_type == QR_ROPE_NEOX ? QR_ROPE_MODE_NEOX : QR_ROPE_MODE_NORM,
        .n_rot = (int32_t)d->hp.n_rot,
        .base = swa ? d->rope_base_swa : d->rope_base,
        .freq_scale = swa ? d->rope_freq_scale_swa : d->rope_freq_scale,
        .freq_factors = f->m->rope_freqs.data,
    };
    return a;
}

static int qkv(qr_forward *f, const qr_layer_weights *L, uint32_t il, const qr_fwd_batch *b, bool swa,
               qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const int64_t R = b->n_rows;
    if (matmul(f, &L->wq, &L->bq, f->cur, R, f->q, err) != QR_OK) return QR_ERR;
    if (matmul(f, &L->wk, &L->bk, f->cur, R, f->k, err) != QR_OK) return QR_ERR;
    if (matmul(f, &L->wv, &L->bv, f->cur, R, f->v, err) != QR_OK) return QR_ERR;
    if (d->qk_norm) {
        rmsnorm(f, f->q, &L->q_norm, R * hp->n_head, hp->head_dim_k, f->q);
        rmsnorm(f, f->k, &L->k_norm, R * hp->n_head_kv, hp->head_dim_k, f->k);
    }
    const qr_rope_args ra = rope_args(f, swa);
    f->be->ops->rope(f->be, f->q, R, hp->n_head, hp->head_dim_k, b->pos, &ra);
    f->be->ops->rope(f->be, f->k, R, hp->n_head_kv, hp->head_dim_k, b->pos, &ra);
    if (d->q_prescaled) {
        const int64_t n = R * hp->n_head * hp->head_dim_k;
        for (int64_t i = 0; i < n; i++) f->q[i] *= d->attn_scale;
    }
    if (observe(f, (int32_t)il, "q", f->q, R, (int64_t)hp->n_head * hp->head_dim_k, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "k", f->k, R, (int64_t)hp->n_head_kv * hp->head_dim_k, err) != QR_OK) return QR_ERR;
    return observe(f, (int32_t)il, "v", f->v, R, (int64_t)hp->n_head_kv * hp->head_dim_v, err);
}

static int attention_block(qr_forward *f, qr_kv_cache *kv, uint32_t il, const qr_fwd_batch *b, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const qr_layer_weights *L = &f->m->layers[il];
    const int64_t R = b->n_rows;
    const bool swa = qr_kv_layer_is_swa(kv, il);
    rmsnorm(f, f->x, &L->attn_norm, R, hp->n_embd, f->cur);
    if (observe(f, (int32_t)il, "attn_norm", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    if (qkv(f, L, il, b, swa, err) != QR_OK) return QR_ERR;
    store_kv(f, kv, il, b);
    build_cells(f, kv, il, b);
    qr_attn_args a = {
        .q = f->q, .n_rows = b->n_rows, .n_head = (int32_t)hp->n_head, .n_head_kv = (int32_t)hp->n_head_kv,
        .head_dim_k = (int32_t)hp->head_dim_k, .head_dim_v = (int32_t)hp->head_dim_v,
        .kv_f32 = qr_kv_is_f32(kv), .k = qr_kv_k(kv, il), .v = qr_kv_v(kv, il),
        .kv_stride_k = qr_kv_stride_k(kv), .kv_stride_v = qr_kv_stride_v(kv),
        .cells = f->cells, .cells_off = f->cells_off,
        .scale = d->q_prescaled ? 1.0f : d->attn_scale, .softcap = d->attn_softcap, .out = f->attn,
        /* llama.cpp's CPU flash attention switches to a tiled kernel at 64 query rows. */
        .tiled = !f->be->batch_invariant && b->n_rows >= 64 && hp->head_dim_v % 16 == 0,
    };
    if (f->be->ops->attention(f->be, &a, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "attn", f->attn, R, (int64_t)hp->n_head * hp->head_dim_v, err) != QR_OK) return QR_ERR;
    if (matmul(f, &L->wo, &L->bo, f->attn, R, f->cur, err) != QR_OK) return QR_ERR;
    if (d->post_norms) rmsnorm(f, f->cur, &L->post_attn_norm, R, hp->n_embd, f->cur);
    if (observe(f, (int32_t)il, "attn_out", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    add_rows(f->h, f->cur, f->x, R * hp->n_embd);
    return observe(f, (int32_t)il, "ffn_inp", f->h, R, hp->n_embd, err);
}

/* gate = act(gate) * (W_up . cur), the up projection in parts of up_cols output columns
 * (each output's dot does not depend on the others, so this changes no bits). */
static int up_glu(qr_forward *f, const qr_layer_weights *L, int64_t R, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const int64_t n_ff = d->hp.n_ff;
    const qr_glu_kind kind = d->act == QR_ACT_GELU_TANH ? QR_GLU_GELU_TANH : QR_GLU_SILU;
    const size_t row_bytes = qr_type_row_size(qr_type_get_traits(L->ffn_up.type), L->ffn_up.ne0);
    for (int64_t c0 = 0; c0 < n_ff; c0 += f->up_cols) {
        const int64_t nc = n_ff - c0 < f->up_cols ? n_ff - c0 : f->up_cols;
        qr_weight part = L->ffn_up, bias = L->b_up;
        part.data = (const uint8_t *)L->ffn_up.data + (size_t)c0 * row_bytes;
        part.ne1 = nc;
        if (bias.data) bias.data = (const float *)L->b_up.data + c0;
        if (matmul(f, &part, &bias, f->cur, R, f->up, err) != QR_OK) return QR_ERR;
        for (int64_t r = 0; r < R; r++) { /* per row: ggml's vector/tail split is per row */
            float *g = f->gate + r * n_ff + c0;
            f->be->ops->glu(f->be, kind, g, f->up + r * nc, g, nc);
        }
    }
    return QR_OK;
}

static int ffn_block(qr_forward *f, uint32_t il, int64_t R, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const qr_layer_weights *L = &f->m->layers[il];
    rmsnorm(f, f->h, &L->ffn_norm, R, hp->n_embd, f->cur);
    if (observe(f, (int32_t)il, "ffn_norm", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    if (matmul(f, &L->ffn_gate, &L->b_gate, f->cur, R, f->gate, err) != QR_OK) return QR_ERR;
    if (up_glu(f, L, R, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "ffn_act", f->gate, R, hp->n_ff, err) != QR_OK) return QR_ERR;
    if (matmul(f, &L->ffn_down, &L->b_down, f->gate, R, f->cur, err) != QR_OK) return QR_ERR;
    if (d->post_norms) rmsnorm(f, f->cur, &L->post_ffw_norm, R, hp->n_embd, f->cur);
    if (observe(f, (int32_t)il, "ffn_out", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    add_rows(f->x, f->cur, f->h, R * hp->n_embd);
    return observe(f, (int32_t)il, "l_out", f->x, R, hp->n_embd, err);
}

/* ---- Batch checks, output --------------------------------------------------------------------- */

int qr_forward_check_batch(const qr_model *m, int32_t max_batch, const qr_fwd_batch *b, qr_error *err) {
    if (b->n_rows < 1 || b->n_rows > max_batch) {
        return qr_fail(err, "batch has %d rows; allowed 1..%d", b->n_rows, max_batch);
    }
    const int32_t n_vocab = (int32_t)m->desc.hp.n_vocab;
    for (int32_t r = 0; r < b->n_rows; r++) {
        if (b->tokens[r] < 0 || b->tokens[r] >= n_vocab) {
            return qr_fail(err, "batch row %d: token %d is out of range [0, %d)", r, b->tokens[r], n_vocab);
        }
    }
    return QR_OK;
}

/* Appends every row to the cache, or none: on failure the sequences are cut back. */
int qr_forward_append_rows(qr_kv_cache *kv, const qr_fwd_batch *b, int32_t *saved_len, qr_error *err) {
    const int32_t n_seq = qr_kv_n_seq_max(kv);
    for (int32_t r = 0; r < b->n_rows; r++) {
        if (b->seq[r] < 0 || b->seq[r] >= n_seq) {
            return qr_fail(err, "batch row %d: sequence id %d is out of range [0, %d)", r, b->seq[r], n_seq);
        }
    }
    for (int32_t r = 0; r < b->n_rows; r++) saved_len[r] = qr_kv_seq_len(kv, b->seq[r]);
    for (int32_t r = 0; r < b->n_rows; r++) {
        if (qr_kv_append(kv, b->seq[r], b->pos[r], err) != QR_OK) {
            for (int32_t i = r - 1; i >= 0; i--) qr_kv_seq_truncate(kv, b->seq[i], saved_len[i], NULL);
            return qr_fail_prefix(err, "batch row %d: ", r);
        }
    }
    return QR_OK;
}

/* Keeps only the rows that want logits (in row order) at the front of h; returns their
 * count. llama.cpp drops the other rows at the same point of the last layer (after the
 * attention output projection), so the last FFN runs on the output rows only. */
static int64_t compact_outputs(qr_forward *f, const qr_fwd_batch *b) {
    const int64_t n_embd = f->m->desc.hp.n_embd;
    int64_t n_out = 0;
    for (int32_t r = 0; r < b->n_rows; r++) {
        const bool want = b->want_logits ? b->want_logits[r] != 0 : r == b->n_rows - 1;
        if (!want) continue;
        if (n_out != r) memmove(f->h + n_out * n_embd, f->h + (int64_t)r * n_embd, (size_t)n_embd * sizeof(float));
        n_out++;
    }
    return n_out;
}

static int output(qr_forward *f, int64_t n_out, float *logits, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const int64_t n_embd = d->hp.n_embd, n_vocab = d->hp.n_vocab;
    if (n_out == 0) return QR_OK;
    rmsnorm(f, f->x, &f->m->output_norm, n_out, n_embd, f->out_rows);
    if (observe(f, -1, "result_norm", f->out_rows, n_out, n_embd, err) != QR_OK) return QR_ERR;
    if (matmul(f, &f->m->output, &f->m->output_bias, f->out_rows, n_out, logits, err) != QR_OK) return QR_ERR;
    if (d->final_softcap != 0.0f) {
        const float c = d->final_softcap, ic = 1.0f / d->final_softcap;
        for (int64_t i = 0; i < n_out * n_vocab; i++) logits[i] = tanhf(logits[i] * ic) * c;
    }
    return observe(f, -1, "logits", logits, n_out, n_vocab, err);
}

/* The embedding and layers [0, n_layers) of every row, the hidden states left in f->x.
 * to_output: the pass ends with the output here, so the model's last layer keeps only the
 * rows that want logits; *rows receives the rows x holds. */
static int run_layers(qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, uint32_t n_layers, bool to_output,
                      int64_t *rows, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const int64_t R = b->n_rows;
    const qr_weight *e = &f->m->tok_embd;
    if (f->be->ops->get_rows(f->be, e->type, e->data, e->ne0, b->tokens, R, d->embd_scale, f->x, err) != QR_OK) {
        return QR_ERR;
    }
    if (observe(f, -1, "embd", f->x, R, d->hp.n_embd, err) != QR_OK) return QR_ERR;
    *rows = R;
    for (uint32_t il = 0; il < n_layers; il++) {
        if (attention_block(f, kv, il, b, err) != QR_OK) return qr_fail_prefix(err, "layer %u: ", il);
        if (to_output && il == d->hp.n_layer - 1) *rows = compact_outputs(f, b);
        if (*rows > 0 && ffn_block(f, il, *rows, err) != QR_OK) return qr_fail_prefix(err, "layer %u: ", il);
    }
    return QR_OK;
}

/* Batch and workspace checks; kv must hold host cells for the n_layers layers run here
 * (a cache made for a split pass has none for the GPU's). */
static int check_run(const qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, uint32_t n_layers, qr_error *err) {
    if (qr_forward_check_batch(f->m, f->max_batch, b, err) != QR_OK) return QR_ERR;
    if (qr_kv_max_batch(kv) < b->n_rows) return qr_fail(err, "batch larger than the KV cache's max_batch");
    if (qr_kv_n_ctx(kv) > f->n_ctx) return qr_fail(err, "KV cache context exceeds the forward workspace");
    if (n_layers > f->m->desc.hp.n_layer) {
        return qr_fail(err, "forward: %u layers asked of a %u-layer model", n_layers, f->m->desc.hp.n_layer);
    }
    if (n_layers > 0 && !qr_kv_k(kv, n_layers - 1)) {
        return qr_fail(err, "forward: the KV cache keeps layer %u on a device, not on the host", n_layers - 1);
    }
    return QR_OK;
}

int qr_forward_run(qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, float *logits, qr_error *err) {
    if (check_run(f, kv, b, f->m->desc.hp.n_layer, err) != QR_OK) return QR_ERR;
    int32_t *saved = f->out_idx; /* scratch: max_batch entries */
    if (qr_forward_append_rows(kv, b, saved, err) != QR_OK) return QR_ERR;
    int64_t rows = 0;
    if (run_layers(f, kv, b, f->m->desc.hp.n_layer, true, &rows, err) != QR_OK ||
        output(f, rows, logits, err) != QR_OK) {
        /* A failed pass (out of memory, a stop by the observer) leaves the rows' cells
         * half written: drop them, so the sequences end where they ended before. */
        for (int32_t r = b->n_rows - 1; r >= 0; r--) qr_kv_seq_truncate(kv, b->seq[r], saved[r], NULL);
        return QR_ERR;
    }
    return QR_OK;
}

int qr_forward_run_first(qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, uint32_t n_layers, float *hidden,
                         qr_error *err) {
    if (check_run(f, kv, b, n_layers, err) != QR_OK) return QR_ERR;
    int64_t rows = 0;
    if (run_layers(f, kv, b, n_layers, false, &rows, err) != QR_OK) return QR_ERR;
    memcpy(hidden, f->x, (size_t)(rows * f->m->desc.hp.n_embd) * sizeof(float));
    return QR_OK;
}
