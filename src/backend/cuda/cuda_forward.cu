/* The forward pass on the device: src/engine/forward.c's dataflow, op for op, over device
 * buffers (cuda_forward.h). Kernels come from gemv.cu (matrix products), cuda_gemm.cu
 * (prompt batches) and cuda_ops.cu (everything else). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_common.h"

extern "C" {
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/cuda_ops.h"
#include "backend/cuda/gemv_q8.h"
}

namespace {

struct dev_layer {
    qr_cuda_matrix *wq, *wk, *wv, *wo, *gate, *up, *down;
    qr_cuda_matrix *wqkv, *gate_up; /* the stacked products, where the types allow */
    qr_cuda_matrix *wqk;            /* Q|K stacked where V's type differs (Q4_K_M's Q6_K V) */
    float *attn_norm, *bq, *bk, *bv, *bo, *q_norm, *k_norm, *post_attn_norm;
    float *ffn_norm, *b_gate, *b_up, *b_down, *post_ffw_norm;
    void *kc, *vc;
    bool swa; /* a sliding-window layer (its cells are ring cells) */
};

/* A cell copy the KV cache reported (its copy hook), waiting for the next flush. */
struct cell_copy {
    bool swa;
    int64_t from, to, n;
};

} // namespace

/* Index staging (int32, host pinned and device alike): tokens, pos, the row's cell in
 * full-attention layers, in sliding-window layers, output row ids (B each), then the cell
 * lists of full and sliding layers (B * n_ctx each). Offsets (int64): full, then sliding
 * (B + 1 each). */
enum { IX_TOK = 0, IX_POS, IX_CELL_FULL, IX_CELL_SWA, IX_OUT, IX_HEADER };

struct qr_cuda_forward {
    const qr_model *m;
    int32_t max_batch, n_ctx;
    int n_split;
    cudaStream_t s;
    qr_cuda_matrix *tok_embd, *output;
    float *output_norm, *output_bias, *rope_freqs;
    dev_layer *L;        /* every layer's slot; only layer_first .. n_layer-1 are filled */
    uint32_t n_layer;
    uint32_t layer_first; /* -ngl: the layers before it run on the CPU (api.c) */
    int32_t layer_full, layer_swa; /* a layer of each kind, -1 if none */
    bool kv_f32;
    int64_t stride_k, stride_v;
    float *x, *h, *cur, *q, *k, *v, *attn, *gate, *up, *out_rows, *logits, *part;
    unsigned *attn_counters; /* zeroed once; the attention kernel leaves them zero */
    int32_t *argmax;         /* the output rows' greedy tokens (qr_cuda_argmax_rows) */
    float *xr; /* a matrix product's input, rounded as the CPU backend rounds it */
    float *qkv, *gu; /* outputs of the stacked products */
    qr_cuda_gemm *gemm; /* NULL without cuBLAS */
    int32_t *ix_host, *ix_dev;
    int64_t *off_host, *off_dev;
    int32_t *saved_len;
    qr_fwd_observer observer;
    void *observer_user;
    float *obs_host;
    size_t obs_cap;
    bool batch_invariant;
    bool prompt_runs;  /* the batch's rows come in runs of QR_CUDA_ATTN_PREFILL_ROWS, each one sequence at
                          consecutive positions (qr_cuda_attention_prefill) */
    bool tc_attention; /* prompt batches may use it (QUARREL_CUDA_NO_TC_ATTN=1: never, for comparisons) */
    bool round_activations;
    bool float_gemv; /* QUARREL_CUDA_FLOAT_GEMV=1: the F32 GEMV instead of the integer one (comparisons) */
    bool pdl;        /* integer GEMVs as programmatic dependents (pdl.h); QUARREL_CUDA_NO_PDL=1: never */
    size_t xr_bytes; /* xr's size: also the integer GEMV's quantized activations */
    qr_type xr_vt;    /* what xr holds: x quantized to this vec-dot type (QR_TYPE_COUNT: nothing */
    int64_t xr_cols;  /* reusable), xr_cols floats a row, xr_rows rows (matmul's reuse_x) */
    int64_t xr_rows;
    /* Decode steps replay graphs (run_graph): one per row count and batch-invariance mode,
     * captured on first use; QUARREL_CUDA_NO_GRAPH=1 turns them off. */
    cudaGraphExec_t graphs[2][QR_CUDA_GRAPH_MAX_ROWS + 1];
    bool use_graphs;
    qr_kv_cache *kv;      /* whose copy hook fills `copies` */
    cell_copy *copies;    /* queued for the device, in the order the cache made them */
    size_t n_copies, copies_cap;
    bool copy_failed;     /* sticky: the device cells no longer match the cache */
    qr_error copy_err;
};

namespace {

int64_t ix_lists(const qr_cuda_forward *f) { return (int64_t)IX_HEADER * f->max_batch; }
int32_t *ix(const qr_cuda_forward *f, int which) { return f->ix_dev + (int64_t)which * f->max_batch; }
int32_t *cells_dev(const qr_cuda_forward *f, bool swa) {
    return f->ix_dev + ix_lists(f) + (swa ? (int64_t)f->max_batch * f->n_ctx : 0);
}
int64_t *offs_dev(const qr_cuda_forward *f, bool swa) { return f->off_dev + (swa ? f->max_batch + 1 : 0); }

/* ---- Setup ---------------------------------------------------------------------------------- */

int upload_matrix(const qr_weight *w, qr_cuda_matrix **out, qr_error *err) {
    *out = NULL;
    if (!w->data) return QR_OK;
    return qr_cuda_matrix_upload(w->type, w->ne1, w->ne0, w->data, out, err);
}

int upload_vector(const qr_weight *w, float **out, qr_error *err) {
    *out = NULL;
    if (!w->data) return QR_OK;
    if (w->type != QR_TYPE_F32) return qr_fail(err, "CUDA forward: a norm/bias tensor is %s, not F32", qr_type_name(w->type));
    const size_t bytes = (size_t)(w->ne0 * (w->ne1 > 0 ? w->ne1 : 1)) * sizeof(float);
    QR_CUDA_TRY(cudaMalloc((void **)out, bytes), err);
    QR_CUDA_TRY(cudaMemcpy(*out, w->data, bytes, cudaMemcpyHostToDevice), err);
    return QR_OK;
}

bool stackable(const qr_weight *a, const qr_weight *b) {
    return a->data && b->data && a->type == b->type && a->ne0 == b->ne0;
}

/* Q|K|V and gate|up become one matrix each when their types match (one GEMV launch with
 * enough rows to fill the device, where K and V alone have a few hundred). */
int upload_stacked(const qr_weight *const *w, int n, qr_cuda_matrix **out, qr_error *err) {
    int64_t rows[3];
    const void *host[3];
    for (int i = 0; i < n; i++) rows[i] = w[i]->ne1, host[i] = w[i]->data;
    return qr_cuda_matrix_upload_stacked(w[0]->type, w[0]->ne0, n, rows, host, out, err);
}

int upload_layer(const qr_layer_weights *W, dev_layer *D, qr_error *err) {
    const qr_weight *qkv[] = {&W->wq, &W->wk, &W->wv}, *gu[] = {&W->ffn_gate, &W->ffn_up};
    const bool fuse_qk = stackable(&W->wq, &W->wk), fuse_qkv = fuse_qk && stackable(&W->wq, &W->wv);
    const bool fuse_gu = stackable(&W->ffn_gate, &W->ffn_up);
    if (fuse_qkv && upload_stacked(qkv, 3, &D->wqkv, err) != QR_OK) return QR_ERR;
    if (fuse_qk && !fuse_qkv && upload_stacked(qkv, 2, &D->wqk, err) != QR_OK) return QR_ERR;
    if (fuse_gu && upload_stacked(gu, 2, &D->gate_up, err) != QR_OK) return QR_ERR;
    const qr_weight *mats[] = {&W->wq, &W->wk, &W->wv, &W->wo, &W->ffn_gate, &W->ffn_up, &W->ffn_down};
    qr_cuda_matrix **dm[] = {&D->wq, &D->wk, &D->wv, &D->wo, &D->gate, &D->up, &D->down};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        if ((i < 3 && fuse_qkv) || (i < 2 && fuse_qk) || ((i == 4 || i == 5) && fuse_gu)) continue;
        if (upload_matrix(mats[i], dm[i], err) != QR_OK) return QR_ERR;
    }
    const qr_weight *vecs[] = {&W->attn_norm, &W->bq, &W->bk, &W->bv, &W->bo, &W->q_norm, &W->k_norm,
                               &W->post_attn_norm, &W->ffn_norm, &W->b_gate, &W->b_up, &W->b_down,
                               &W->post_ffw_norm};
    float **dv[] = {&D->attn_norm, &D->bq, &D->bk, &D->bv, &D->bo, &D->q_norm, &D->k_norm,
                    &D->post_attn_norm, &D->ffn_norm, &D->b_gate, &D->b_up, &D->b_down, &D->post_ffw_norm};
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
        if (upload_vector(vecs[i], dv[i], err) != QR_OK) return QR_ERR;
    return QR_OK;
}

void free_layer(dev_layer *D) {
    qr_cuda_matrix *mats[] = {D->wq, D->wk, D->wv, D->wo, D->gate, D->up, D->down, D->wqkv, D->wqk, D->gate_up};
    for (qr_cuda_matrix *m : mats) qr_cuda_matrix_free(m);
    float *vecs[] = {D->attn_norm, D->bq, D->bk, D->bv, D->bo, D->q_norm, D->k_norm, D->post_attn_norm,
                     D->ffn_norm, D->b_gate, D->b_up, D->b_down, D->post_ffw_norm};
    for (float *v : vecs) cudaFree(v);
    cudaFree(D->kc);
    cudaFree(D->vc);
}

int alloc_kv(qr_cuda_forward *f, const qr_kv_cache *kv, qr_error *err) {
    const size_t elem = f->kv_f32 ? 4 : 2;
    f->layer_full = f->layer_swa = -1;
    for (uint32_t il = f->layer_first; il < f->n_layer; il++) {
        const size_t cells = (size_t)qr_kv_layer_n_cells(kv, il);
        const size_t kb = cells * (size_t)f->stride_k * elem, vb = cells * (size_t)f->stride_v * elem;
        QR_CUDA_TRY(cudaMalloc(&f->L[il].kc, kb), err);
        QR_CUDA_TRY(cudaMalloc(&f->L[il].vc, vb), err);
        QR_CUDA_TRY(cudaMemset(f->L[il].kc, 0, kb), err);
        QR_CUDA_TRY(cudaMemset(f->L[il].vc, 0, vb), err);
        f->L[il].swa = qr_kv_layer_is_swa(kv, il);
        int32_t *rep = f->L[il].swa ? &f->layer_swa : &f->layer_full;
        if (*rep < 0) *rep = (int32_t)il;
    }
    return QR_OK;
}

int dev_floats(float **p, int64_t n, qr_error *err) {
    QR_CUDA_TRY(cudaMalloc((void **)p, (size_t)(n > 0 ? n : 1) * sizeof(float)), err);
    return QR_OK;
}

int alloc_activations(qr_cuda_forward *f, qr_error *err) {
    const qr_hparams *hp = &f->m->desc.hp;
    const int64_t B = f->max_batch;
    const int64_t nq = (int64_t)hp->n_head * hp->head_dim_k, nqv = (int64_t)hp->n_head * hp->head_dim_v;
    const int64_t wide = nq > (int64_t)hp->n_embd ? nq : (int64_t)hp->n_embd;
    struct {
        float **p;
        int64_t n;
    } bufs[] = {
        {&f->xr, B * (wide > (int64_t)hp->n_ff ? wide : (int64_t)hp->n_ff)}, {&f->x, B * hp->n_embd}, {&f->h, B * hp->n_embd}, {&f->cur, B * wide}, {&f->q, B * nq},
        {&f->k, B * hp->n_head_kv * hp->head_dim_k}, {&f->v, B * hp->n_head_kv * hp->head_dim_v},
        {&f->attn, B * nqv}, {&f->qkv, B * (nq + hp->n_head_kv * (hp->head_dim_k + hp->head_dim_v))},
        {&f->gu, B * 2 * hp->n_ff}, {&f->gate, B * hp->n_ff}, {&f->up, B * hp->n_ff}, {&f->out_rows, B * hp->n_embd},
        {&f->logits, B * hp->n_vocab},
        {&f->part, qr_cuda_attention_scratch(B, hp->n_head, hp->head_dim_v, f->n_split)},
    };
    for (auto &b : bufs) {
        if (dev_floats(b.p, b.n, err) != QR_OK) return QR_ERR;
        if (b.p == &f->xr) f->xr_bytes = (size_t)b.n * sizeof(float); /* >= 1.4 bytes per input quantized */
    }
    const size_t n_cnt = (size_t)(B * hp->n_head) * sizeof(unsigned);
    QR_CUDA_TRY(cudaMalloc((void **)&f->attn_counters, n_cnt), err);
    QR_CUDA_TRY(cudaMemset(f->attn_counters, 0, n_cnt), err);
    QR_CUDA_TRY(cudaMalloc((void **)&f->argmax, (size_t)B * sizeof(int32_t)), err);
    const size_t n_ix = (size_t)(ix_lists(f) + 2 * B * f->n_ctx), n_off = (size_t)(2 * (B + 1));
    QR_CUDA_TRY(cudaMallocHost((void **)&f->ix_host, n_ix * sizeof(int32_t)), err);
    QR_CUDA_TRY(cudaMalloc((void **)&f->ix_dev, n_ix * sizeof(int32_t)), err);
    QR_CUDA_TRY(cudaMallocHost((void **)&f->off_host, n_off * sizeof(int64_t)), err);
    QR_CUDA_TRY(cudaMalloc((void **)&f->off_dev, n_off * sizeof(int64_t)), err);
    f->saved_len = (int32_t *)malloc((size_t)B * sizeof(int32_t));
    if (!f->saved_len) return qr_fail(err, "out of memory");
    return QR_OK;
}

/* ---- Prefix sharing's cell copies ------------------------------------------------------------- */

void copy_failed(qr_cuda_forward *f, const char *what) {
    f->copy_failed = true;
    qr_fail(&f->copy_err, "CUDA forward: %s; the device KV cells no longer match the cache (recreate the context)",
            what);
}

/* The KV cache's copy hook: cells [from, from + n) -> [to, to + n) of every layer of one
 * kind. Copies are queued, not issued, because qr_kv_seq_copy reports a sliding-window
 * copy one cell at a time: consecutive cells merge into one range (one cudaMemcpyAsync
 * per layer instead of one per cell and layer). Order is kept, since a later copy may
 * read cells an earlier one wrote (a sequence copied on from a copy). */
void on_cell_copy(void *user, bool swa, int64_t from, int64_t to, int64_t n) {
    qr_cuda_forward *f = (qr_cuda_forward *)user;
    if (f->copy_failed || n <= 0) return;
    /* The cache only copies between distinct pages or distinct sequences' rings; an
     * overlapping range would need memmove order, which no caller asks for. */
    if ((from < to ? to - from : from - to) < n) return copy_failed(f, "an overlapping KV cell copy was requested");
    if (f->n_copies > 0) {
        cell_copy *last = &f->copies[f->n_copies - 1];
        const int64_t merged = last->n + n, gap = last->from < last->to ? last->to - last->from : last->from - last->to;
        if (last->swa == swa && last->from + last->n == from && last->to + last->n == to && gap >= merged) {
            last->n = merged;
            return;
        }
    }
    if (f->n_copies == f->copies_cap) {
        const size_t cap = f->copies_cap ? 2 * f->copies_cap : 64;
        cell_copy *grown = (cell_copy *)realloc(f->copies, cap * sizeof *grown);
        if (!grown) return copy_failed(f, "out of memory queuing a KV cell copy");
        f->copies = grown;
        f->copies_cap = cap;
    }
    f->copies[f->n_copies++] = cell_copy{swa, from, to, n};
}

/* Issues the queued copies on the forward's stream, ahead of any kernel that reads the
 * cells. */
int flush_copies(qr_cuda_forward *f, qr_error *err) {
    const size_t elem = f->kv_f32 ? 4 : 2;
    const size_t bk = (size_t)f->stride_k * elem, bv = (size_t)f->stride_v * elem;
    for (size_t i = 0; i < f->n_copies && !f->copy_failed; i++) {
        const cell_copy *c = &f->copies[i];
        for (uint32_t il = 0; il < f->n_layer; il++) {
            if (f->L[il].swa != c->swa || !f->L[il].kc) continue; /* no device cells: not ours */
            char *k = (char *)f->L[il].kc, *v = (char *)f->L[il].vc;
            cudaError_t st = cudaMemcpyAsync(k + (size_t)c->to * bk, k + (size_t)c->from * bk, (size_t)c->n * bk,
                                             cudaMemcpyDeviceToDevice, f->s);
            if (st == cudaSuccess)
                st = cudaMemcpyAsync(v + (size_t)c->to * bv, v + (size_t)c->from * bv, (size_t)c->n * bv,
                                     cudaMemcpyDeviceToDevice, f->s);
            if (st != cudaSuccess) {
                char what[256];
                snprintf(what, sizeof what, "copying KV cells %lld..%lld to %lld of layer %u: %s", (long long)c->from,
                         (long long)(c->from + c->n - 1), (long long)c->to, il, cudaGetErrorString(st));
                copy_failed(f, what);
                break;
            }
        }
    }
    f->n_copies = 0;
    if (f->copy_failed) return qr_fail(err, "%s", f->copy_err.msg);
    return QR_OK;
}

} // namespace

extern "C" int qr_cuda_forward_sync_kv(qr_cuda_forward *f, qr_error *err) { return flush_copies(f, err); }

extern "C" int qr_cuda_forward_create(const qr_model *m, qr_kv_cache *kv, int32_t max_batch, int32_t n_ctx,
                                      uint32_t layer_first, qr_cuda_forward **out, qr_error *err) {
    *out = NULL;
    int n_dev = 0;
    if (qr_cuda_device_count(&n_dev, err) != QR_OK) return QR_ERR;
    if (n_dev < 1) return qr_fail(err, "CUDA forward: no CUDA device");
    if (max_batch < 1 || n_ctx < 1) return qr_fail(err, "CUDA forward: max_batch and n_ctx must be >= 1");
    if (layer_first > m->desc.hp.n_layer)
        return qr_fail(err, "CUDA forward: first layer %u of a %u-layer model", layer_first, m->desc.hp.n_layer);
    qr_cuda_forward *f = (qr_cuda_forward *)calloc(1, sizeof *f);
    if (!f) return qr_fail(err, "out of memory");
    f->m = m;
    f->max_batch = max_batch;
    f->n_ctx = n_ctx;
    /* Flash decoding: a row's cells are cut into n_split chunks, about 256 cells each; a
     * function of the context only, so a row's result does not depend on its batch. */
    const int splits = (n_ctx + 255) / 256;
    f->n_split = splits < 1 ? 1 : splits > 16 ? 16 : splits;
    const char *split_env = getenv("QUARREL_CUDA_ATTN_SPLITS"); /* 1..64: a fixed count, for tuning runs */
    if (split_env) {
        const int n = atoi(split_env);
        f->n_split = n < 1 ? 1 : n > 64 ? 64 : n;
    }
    f->n_layer = m->desc.hp.n_layer;
    f->layer_first = layer_first;
    f->round_activations = getenv("QUARREL_CUDA_ROUND_ACT") != NULL;
    f->float_gemv = getenv("QUARREL_CUDA_FLOAT_GEMV") != NULL;
    f->pdl = getenv("QUARREL_CUDA_NO_PDL") == NULL;
    f->tc_attention = getenv("QUARREL_CUDA_NO_TC_ATTN") == NULL;
    f->use_graphs = getenv("QUARREL_CUDA_NO_GRAPH") == NULL;
    f->kv_f32 = qr_kv_is_f32(kv);
    f->stride_k = qr_kv_stride_k(kv);
    f->stride_v = qr_kv_stride_v(kv);
    f->L = (dev_layer *)calloc(f->n_layer, sizeof *f->L);
    int rc = f->L ? QR_OK : qr_fail(err, "out of memory");
    if (rc == QR_OK) {
        cudaError_t s = cudaStreamCreateWithFlags(&f->s, cudaStreamNonBlocking);
        if (s != cudaSuccess) rc = qr_fail(err, "CUDA forward: cudaStreamCreate: %s", cudaGetErrorString(s));
    }
    for (uint32_t il = layer_first; rc == QR_OK && il < f->n_layer; il++) {
        rc = upload_layer(&m->layers[il], &f->L[il], err);
        if (rc != QR_OK) qr_fail_prefix(err, "layer %u: ", il);
    }
    /* The embedding is looked up here only when no layer runs on the CPU; a tied output
     * matrix then shares its upload. */
    const bool embd_here = layer_first == 0;
    if (rc == QR_OK && embd_here) rc = upload_matrix(&m->tok_embd, &f->tok_embd, err);
    if (rc == QR_OK && (!embd_here || m->output.data != m->tok_embd.data))
        rc = upload_matrix(&m->output, &f->output, err);
    if (rc == QR_OK) rc = upload_vector(&m->output_norm, &f->output_norm, err);
    if (rc == QR_OK) rc = upload_vector(&m->output_bias, &f->output_bias, err);
    if (rc == QR_OK) rc = upload_vector(&m->rope_freqs, &f->rope_freqs, err);
    if (rc == QR_OK) rc = alloc_kv(f, kv, err);
    if (rc == QR_OK) rc = alloc_activations(f, err);
    if (rc == QR_OK) rc = qr_cuda_gemm_create(&f->gemm, err);
    if (rc != QR_OK) {
        qr_cuda_forward_free(f);
        return qr_fail_prefix(err, "CUDA forward: ");
    }
    f->kv = kv;
    qr_kv_set_copy_hook(kv, on_cell_copy, f);
    *out = f;
    return QR_OK;
}

extern "C" void qr_cuda_forward_free(qr_cuda_forward *f) {
    if (!f) return;
    if (f->kv) qr_kv_set_copy_hook(f->kv, NULL, NULL);
    if (f->s) cudaStreamSynchronize(f->s);
    for (int m = 0; m < 2; m++)
        for (int r = 0; r <= QR_CUDA_GRAPH_MAX_ROWS; r++)
            if (f->graphs[m][r]) cudaGraphExecDestroy(f->graphs[m][r]);
    qr_cuda_gemm_free(f->gemm);
    for (uint32_t il = 0; f->L && il < f->n_layer; il++) free_layer(&f->L[il]);
    free(f->L);
    qr_cuda_matrix_free(f->tok_embd);
    qr_cuda_matrix_free(f->output);
    float *bufs[] = {f->output_norm, f->output_bias, f->rope_freqs, f->x, f->h, f->cur, f->q, f->k, f->v,
                     f->attn, f->gate, f->up, f->out_rows, f->logits, f->part, f->xr, f->qkv, f->gu};
    for (float *b : bufs) cudaFree(b);
    cudaFreeHost(f->ix_host);
    cudaFreeHost(f->off_host);
    cudaFree(f->ix_dev);
    cudaFree(f->attn_counters);
    cudaFree(f->argmax);
    cudaFree(f->off_dev);
    if (f->s) cudaStreamDestroy(f->s);
    free(f->saved_len);
    free(f->obs_host);
    free(f->copies);
    free(f);
}

extern "C" void qr_cuda_forward_set_observer(qr_cuda_forward *f, qr_fwd_observer fn, void *user) {
    f->observer = fn;
    f->observer_user = user;
}

namespace {

/* ---- Helpers ---------------------------------------------------------------------------------- */

/* Downloads an op's output for the observer (audits only: it synchronizes). */
int observe(qr_cuda_forward *f, int32_t layer, const char *op, const float *data, int64_t rows, int64_t cols,
            qr_error *err) {
    if (!f->observer) return QR_OK;
    const size_t n = (size_t)(rows * cols);
    if (n > f->obs_cap) {
        free(f->obs_host);
        f->obs_host = (float *)malloc((n ? n : 1) * sizeof(float));
        f->obs_cap = f->obs_host ? n : 0;
        if (!f->obs_host) return qr_fail(err, "out of memory for the activation observer");
    }
    QR_CUDA_TRY(cudaMemcpyAsync(f->obs_host, data, n * sizeof(float), cudaMemcpyDeviceToHost, f->s), err);
    QR_CUDA_TRY(cudaStreamSynchronize(f->s), err);
    if (f->observer(f->observer_user, layer, op, f->obs_host, rows, cols) != 0)
        return qr_fail(err, "forward pass stopped after layer %d, op %s", layer, op);
    return QR_OK;
}

/* y = W x (+ bias), x in F32. Products of up to QR_CUDA_GEMV_MAX_COLS rows (and every
 * product when batch invariant) on weights with an integer GEMV (gemv_q8.h) quantize x
 * once into f->xr exactly as the CPU backend quantizes it, then take integer dot
 * products, so they match the CPU to the float combination order
 * (QUARREL_CUDA_FLOAT_GEMV=1: the F32 GEMV instead, for comparisons). Prompt batches
 * (cuBLAS) on quantized weights first round x to the same Q8_0/Q8_1/Q8_K grid (values
 * d * q, which the GEMM then rounds to F16 within 2^-11), so prompts match the CPU too;
 * QUARREL_CUDA_ROUND_ACT=1 rounds for every product, also the float GEMV's
 * (docs/cuda.md, "Numerics"). */
bool use_gemm(const qr_cuda_forward *f, const qr_cuda_matrix *w, int64_t rows) {
    return rows > QR_CUDA_GEMV_MAX_COLS && !f->batch_invariant && qr_cuda_gemm_supported(f->gemm, w);
}

/* Whether a product of w over `rows` rows takes the integer GEMV (L: its activations' layout). */
bool use_gemv_q8(const qr_cuda_forward *f, const qr_cuda_matrix *w, int64_t rows, qr_cuda_act_layout *L) {
    qr_error ignored;
    return !use_gemm(f, w, rows) && !f->float_gemv && qr_cuda_gemv_q8_supported(w->type) &&
           qr_cuda_act_q8_layout(w->type, w->cols, L, &ignored) == QR_OK && (size_t)rows * L->col_bytes <= f->xr_bytes;
}

int matmul_x(qr_cuda_forward *f, const qr_cuda_matrix *w, const float *bias, const float *x, int64_t rows, float *y,
             bool reuse_x, qr_error *err) {
    const bool gemm = use_gemm(f, w, rows);
    qr_cuda_act_layout L;
    if (use_gemv_q8(f, w, rows, &L)) {
        const bool have = reuse_x && f->xr_vt == L.vt && f->xr_cols == w->cols && f->xr_rows == rows;
        if (!have && qr_cuda_quantize_act(w->type, x, w->cols, rows, f->xr, f->pdl, f->s, err) != QR_OK) return QR_ERR;
        f->xr_vt = L.vt;
        f->xr_cols = w->cols;
        f->xr_rows = rows;
        for (int64_t r0 = 0; r0 < rows; r0 += QR_CUDA_GEMV_MAX_COLS) {
            const int64_t nc = rows - r0 < QR_CUDA_GEMV_MAX_COLS ? rows - r0 : QR_CUDA_GEMV_MAX_COLS;
            if (qr_cuda_gemv_q8(w, (const uint8_t *)f->xr + r0 * L.col_bytes, y + r0 * w->rows, (int)nc, f->pdl,
                                    f->s, err) != QR_OK)
                return QR_ERR;
        }
        if (bias) return qr_cuda_add_bias(y, bias, rows, w->rows, f->s, err);
        return QR_OK;
    }
    f->xr_vt = QR_TYPE_COUNT; /* xr is overwritten below, or holds nothing x's next product could use */
    const qr_type vt = qr_backend_vec_dot_type(w->type);
    const bool q8_grid = vt == QR_TYPE_Q8_0 || vt == QR_TYPE_Q8_1 || vt == QR_TYPE_Q8_K;
    if (f->round_activations || (gemm && q8_grid && !f->float_gemv)) {
        if (vt != QR_TYPE_F32 && vt != QR_TYPE_COUNT) {
            if (qr_cuda_round_activations(vt, x, f->xr, rows * w->cols, f->s, err) != QR_OK) return QR_ERR;
            x = f->xr;
        }
    }
    if (gemm) {
        if (qr_cuda_gemm_run(f->gemm, w, x, rows, y, f->s, err) != QR_OK) return QR_ERR;
    } else {
        for (int64_t r0 = 0; r0 < rows; r0 += QR_CUDA_GEMV_MAX_COLS) {
            const int64_t nc = rows - r0 < QR_CUDA_GEMV_MAX_COLS ? rows - r0 : QR_CUDA_GEMV_MAX_COLS;
            if (qr_cuda_gemv_launch(w, x + r0 * w->cols, y + r0 * w->rows, (int)nc, f->pdl, f->s, err) != QR_OK)
                return QR_ERR;
        }
    }
    if (bias) return qr_cuda_add_bias(y, bias, rows, w->rows, f->s, err);
    return QR_OK;
}

int matmul(qr_cuda_forward *f, const qr_cuda_matrix *w, const float *bias, const float *x, int64_t rows, float *y,
           qr_error *err) {
    return matmul_x(f, w, bias, x, rows, y, false, err);
}

/* The same x as the previous matmul (nothing wrote it since): its quantized copy in xr
 * is reused when the types agree, saving a quantization launch (Q, K, V of one norm). */
int matmul_same_x(qr_cuda_forward *f, const qr_cuda_matrix *w, const float *bias, const float *x, int64_t rows,
                  float *y, qr_error *err) {
    return matmul_x(f, w, bias, x, rows, y, true, err);
}

int rmsnorm(qr_cuda_forward *f, const float *x, const float *w, int64_t rows, int64_t dim, float *y, qr_error *err) {
    return qr_cuda_rmsnorm(x, w, rows, dim, f->m->desc.norm_eps, y, f->s, err);
}

/* Where the producer of the next product's input (`rows` rows for weights w) can write
 * that input quantized, so the product (matmul_same_x) skips its quantization launch:
 * f->xr when the product takes the integer GEMV, else NULL. Either way the record of
 * what xr holds is updated for that product. */
void *act_for(qr_cuda_forward *f, const qr_cuda_matrix *w, int64_t rows) {
    qr_cuda_act_layout L;
    f->xr_vt = QR_TYPE_COUNT;
    if (!w || !use_gemv_q8(f, w, rows, &L)) return NULL;
    f->xr_vt = L.vt;
    f->xr_cols = w->cols;
    f->xr_rows = rows;
    return f->xr;
}

/* sum = a + b (b NULL: no add), y = rmsnorm(sum) * w, and y quantized for the product
 * of `next` that reads it (act_for). */
int norm_for(qr_cuda_forward *f, const float *a, const float *b, float *sum, const float *w, int64_t rows,
             float *y, const qr_cuda_matrix *next, qr_error *err) {
    const qr_hparams *hp = &f->m->desc.hp;
    void *act = act_for(f, next && next->cols == hp->n_embd ? next : NULL, rows);
    if (act)
        return qr_cuda_add_rmsnorm_quant(a, b, sum, w, rows, hp->n_embd, f->m->desc.norm_eps, y, next->type, act, f->pdl, f->s,
                                         err);
    if (b) return qr_cuda_add_rmsnorm(a, b, sum, w, rows, hp->n_embd, f->m->desc.norm_eps, y, f->pdl, f->s, err);
    return qr_cuda_rmsnorm(a, w, rows, hp->n_embd, f->m->desc.norm_eps, y, f->s, err);
}

/* The first product of a layer's attention and FFN blocks (the stacked one where there is one). */
const qr_cuda_matrix *first_attn_matrix(const dev_layer *L) { return L->wqkv ? L->wqkv : L->wqk ? L->wqk : L->wq; }
const qr_cuda_matrix *first_ffn_matrix(const dev_layer *L) { return L->gate_up ? L->gate_up : L->gate; }

qr_rope_args rope_args(const qr_cuda_forward *f, bool swa) {
    const qr_descriptor *d = &f->m->desc;
    qr_rope_args a;
    a.mode = d->rope_type == QR_ROPE_NEOX ? QR_ROPE_MODE_NEOX : QR_ROPE_MODE_NORM;
    a.n_rot = (int32_t)d->hp.n_rot;
    a.base = swa ? d->rope_base_swa : d->rope_base;
    a.freq_scale = swa ? d->rope_freq_scale_swa : d->rope_freq_scale;
    a.freq_factors = f->rope_freqs;
    return a;
}

/* ---- Layers (forward.c's attention_block and ffn_block) ---------------------------------------- */

/* Splits R rows of a stacked product (row width = the parts' sum) into separate buffers;
 * one row needs no copy: its parts are already contiguous. */
int split_rows(qr_cuda_forward *f, const float *src, int64_t R, int n, const int64_t *width, float **dst,
               float **out, qr_error *err) {
    int64_t total = 0, at = 0;
    for (int i = 0; i < n; i++) total += width[i];
    for (int i = 0; i < n; i++) {
        if (R == 1) {
            out[i] = (float *)src + at;
        } else {
            QR_CUDA_TRY(cudaMemcpy2DAsync(dst[i], (size_t)width[i] * 4, src + at, (size_t)total * 4, (size_t)width[i] * 4,
                                          (size_t)R, cudaMemcpyDeviceToDevice, f->s),
                        err);
            out[i] = dst[i];
        }
        at += width[i];
    }
    return QR_OK;
}

/* Q, K, V of R rows (out: their buffers), normalized (Gemma 3), rotated and scaled, K and
 * V stored in the layer's cache cells. Without an observer the last steps are one launch
 * (the K buffer then stays unrotated: only the cache is read later). */
int qkv(qr_cuda_forward *f, const dev_layer *L, uint32_t il, int64_t R, bool swa, float **out, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const int64_t w[3] = {(int64_t)hp->n_head * hp->head_dim_k, (int64_t)hp->n_head_kv * hp->head_dim_k,
                          (int64_t)hp->n_head_kv * hp->head_dim_v};
    float *sep[3] = {f->q, f->k, f->v};
    if (L->wqkv) {
        if (matmul_same_x(f, L->wqkv, NULL, f->cur, R, f->qkv, err) != QR_OK) return QR_ERR;
        if (split_rows(f, f->qkv, R, 3, w, sep, out, err) != QR_OK) return QR_ERR;
        const float *bias[3] = {L->bq, L->bk, L->bv};
        for (int i = 0; i < 3; i++)
            if (bias[i] && qr_cuda_add_bias(out[i], bias[i], R, w[i], f->s, err) != QR_OK) return QR_ERR;
    } else if (L->wqk) {
        if (matmul_same_x(f, L->wqk, NULL, f->cur, R, f->qkv, err) != QR_OK) return QR_ERR;
        if (split_rows(f, f->qkv, R, 2, w, sep, out, err) != QR_OK) return QR_ERR;
        const float *bias[2] = {L->bq, L->bk};
        for (int i = 0; i < 2; i++)
            if (bias[i] && qr_cuda_add_bias(out[i], bias[i], R, w[i], f->s, err) != QR_OK) return QR_ERR;
        if (matmul_same_x(f, L->wv, L->bv, f->cur, R, f->v, err) != QR_OK) return QR_ERR;
        out[2] = f->v;
    } else {
        if (matmul_same_x(f, L->wq, L->bq, f->cur, R, f->q, err) != QR_OK) return QR_ERR;
        if (matmul_same_x(f, L->wk, L->bk, f->cur, R, f->k, err) != QR_OK) return QR_ERR;
        if (matmul_same_x(f, L->wv, L->bv, f->cur, R, f->v, err) != QR_OK) return QR_ERR;
        for (int i = 0; i < 3; i++) out[i] = sep[i];
    }
    float *q = out[0], *k = out[1];
    if (d->qk_norm) {
        if (rmsnorm(f, q, L->q_norm, R * hp->n_head, hp->head_dim_k, q, err) != QR_OK) return QR_ERR;
        if (rmsnorm(f, k, L->k_norm, R * hp->n_head_kv, hp->head_dim_k, k, err) != QR_OK) return QR_ERR;
    }
    const qr_rope_args ra = rope_args(f, swa);
    const int32_t *pos = ix(f, IX_POS);
    if (!f->observer) { /* one launch: rope of Q and K, Q's scale, the K/V store */
        const float qs = d->q_prescaled ? d->attn_scale : 1.0f;
        return qr_cuda_rope_store(q, k, out[2], R, (int)hp->n_head, (int)hp->n_head_kv, (int)hp->head_dim_k,
                                  (int)hp->head_dim_v, pos, &ra, qs, ix(f, swa ? IX_CELL_SWA : IX_CELL_FULL), L->kc,
                                  L->vc, f->kv_f32, f->pdl, f->s, err);
    }
    if (R == 1 && k == q + w[0]) { /* one row of a stacked product: Q and K heads in one launch */
        if (qr_cuda_rope(q, 1, hp->n_head + hp->n_head_kv, hp->head_dim_k, pos, &ra, f->s, err) != QR_OK) return QR_ERR;
    } else {
        if (qr_cuda_rope(q, R, hp->n_head, hp->head_dim_k, pos, &ra, f->s, err) != QR_OK) return QR_ERR;
        if (qr_cuda_rope(k, R, hp->n_head_kv, hp->head_dim_k, pos, &ra, f->s, err) != QR_OK) return QR_ERR;
    }
    if (d->q_prescaled && qr_cuda_scale(q, d->attn_scale, R * w[0], f->s, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "q", q, R, w[0], err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "k", k, R, w[1], err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "v", out[2], R, w[2], err) != QR_OK) return QR_ERR;
    return qr_cuda_store_kv(k, out[2], R, f->stride_k, f->stride_v, ix(f, swa ? IX_CELL_SWA : IX_CELL_FULL), L->kc,
                            L->vc, f->kv_f32, f->s, err);
}

/* normed_in: cur already holds rmsnorm(x) (fused into the previous block's residual add).
 * fuse_out: the residual add also writes rmsnorm(h) * ffn_norm into cur. */
int attention_block(qr_cuda_forward *f, const qr_kv_cache *kv, uint32_t il, int64_t R, bool normed_in, bool fuse_out,
                    qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const dev_layer *L = &f->L[il];
    const bool swa = qr_kv_layer_is_swa(kv, il);
    if (!normed_in && norm_for(f, f->x, NULL, NULL, L->attn_norm, R, f->cur, first_attn_matrix(L), err) != QR_OK)
        return QR_ERR;
    if (observe(f, (int32_t)il, "attn_norm", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    float *qkv_rows[3];
    if (qkv(f, L, il, R, swa, qkv_rows, err) != QR_OK) return QR_ERR;
    qr_attn_args a;
    memset(&a, 0, sizeof a);
    a.q = qkv_rows[0];
    a.n_rows = (int32_t)R;
    a.n_head = (int32_t)hp->n_head;
    a.n_head_kv = (int32_t)hp->n_head_kv;
    a.head_dim_k = (int32_t)hp->head_dim_k;
    a.head_dim_v = (int32_t)hp->head_dim_v;
    a.kv_f32 = f->kv_f32;
    a.k = L->kc;
    a.v = L->vc;
    a.kv_stride_k = f->stride_k;
    a.kv_stride_v = f->stride_v;
    a.cells = cells_dev(f, swa);
    a.cells_off = offs_dev(f, swa);
    a.scale = d->q_prescaled ? 1.0f : d->attn_scale;
    a.softcap = d->attn_softcap;
    a.out = f->attn;
    /* Prompt batches take the tensor cores; decode rows and batch-invariant steps the flash
     * decoding kernel, whose per-row order does not depend on the batch. */
    const bool tc = R > QR_CUDA_GEMV_MAX_COLS && f->prompt_runs && !f->batch_invariant &&
                    qr_cuda_attention_prefill_supported(&a) && f->tc_attention;
    if (tc ? qr_cuda_attention_prefill(&a, ix(f, IX_POS), f->s, err) != QR_OK
           : qr_cuda_attention(&a, f->n_split, f->part, f->attn_counters, f->pdl, f->s, err) != QR_OK)
        return QR_ERR;
    if (observe(f, (int32_t)il, "attn", f->attn, R, (int64_t)hp->n_head * hp->head_dim_v, err) != QR_OK) return QR_ERR;
    if (matmul(f, L->wo, L->bo, f->attn, R, f->cur, err) != QR_OK) return QR_ERR;
    if (d->post_norms && rmsnorm(f, f->cur, L->post_attn_norm, R, hp->n_embd, f->cur, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "attn_out", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    if (fuse_out) {
        if (norm_for(f, f->cur, f->x, f->h, L->ffn_norm, R, f->cur, first_ffn_matrix(L), err) != QR_OK) return QR_ERR;
    } else if (qr_cuda_add(f->h, f->cur, f->x, R * hp->n_embd, f->s, err) != QR_OK) {
        return QR_ERR;
    }
    return observe(f, (int32_t)il, "ffn_inp", f->h, R, hp->n_embd, err);
}

/* normed_in: cur already holds rmsnorm(h) * ffn_norm. next_norm (NULL: none): the
 * residual add also writes rmsnorm(x) * next_norm into next_out, quantized for the
 * product of `next` that reads it (the next layer's first, or the output). */
int ffn_block(qr_cuda_forward *f, uint32_t il, int64_t R, bool normed_in, const float *next_norm, float *next_out,
              const qr_cuda_matrix *next, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const qr_hparams *hp = &d->hp;
    const dev_layer *L = &f->L[il];
    if (!normed_in && norm_for(f, f->h, NULL, NULL, L->ffn_norm, R, f->cur, first_ffn_matrix(L), err) != QR_OK)
        return QR_ERR;
    if (observe(f, (int32_t)il, "ffn_norm", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    float *gu[2] = {f->gate, f->up};
    if (L->gate_up) {
        const int64_t w[2] = {hp->n_ff, hp->n_ff};
        float *sep[2] = {f->gate, f->up};
        if (matmul_same_x(f, L->gate_up, NULL, f->cur, R, f->gu, err) != QR_OK) return QR_ERR;
        if (split_rows(f, f->gu, R, 2, w, sep, gu, err) != QR_OK) return QR_ERR;
        if (L->b_gate && qr_cuda_add_bias(gu[0], L->b_gate, R, hp->n_ff, f->s, err) != QR_OK) return QR_ERR;
        if (L->b_up && qr_cuda_add_bias(gu[1], L->b_up, R, hp->n_ff, f->s, err) != QR_OK) return QR_ERR;
    } else {
        if (matmul_same_x(f, L->gate, L->b_gate, f->cur, R, f->gate, err) != QR_OK) return QR_ERR;
        if (matmul_same_x(f, L->up, L->b_up, f->cur, R, f->up, err) != QR_OK) return QR_ERR;
    }
    const qr_glu_kind kind = d->act == QR_ACT_GELU_TANH ? QR_GLU_GELU_TANH : QR_GLU_SILU;
    void *act = act_for(f, L->down, R);
    if (act ? qr_cuda_glu_quant(kind, gu[0], gu[1], f->gate, R, hp->n_ff, L->down->type, act, f->pdl, f->s, err) != QR_OK
            : qr_cuda_glu(kind, gu[0], gu[1], f->gate, R * hp->n_ff, f->pdl, f->s, err) != QR_OK)
        return QR_ERR;
    if (observe(f, (int32_t)il, "ffn_act", f->gate, R, hp->n_ff, err) != QR_OK) return QR_ERR;
    if (matmul_same_x(f, L->down, L->b_down, f->gate, R, f->cur, err) != QR_OK) return QR_ERR;
    if (d->post_norms && rmsnorm(f, f->cur, L->post_ffw_norm, R, hp->n_embd, f->cur, err) != QR_OK) return QR_ERR;
    if (observe(f, (int32_t)il, "ffn_out", f->cur, R, hp->n_embd, err) != QR_OK) return QR_ERR;
    if (next_norm) {
        if (norm_for(f, f->cur, f->h, f->x, next_norm, R, next_out, next, err) != QR_OK) return QR_ERR;
    } else if (qr_cuda_add(f->x, f->cur, f->h, R * hp->n_embd, f->s, err) != QR_OK) {
        return QR_ERR;
    }
    return observe(f, (int32_t)il, "l_out", f->x, R, hp->n_embd, err);
}

const qr_cuda_matrix *output_matrix(const qr_cuda_forward *f) { return f->output ? f->output : f->tok_embd; }

/* The rows that want logits, at the front of h (forward.c's compact_outputs). */
int compact_outputs(qr_cuda_forward *f, int64_t R, int64_t n_out, qr_error *err) {
    if (n_out == R || n_out == 0) return QR_OK; /* the wanted rows are then 0..R-1 in order */
    const int64_t n_embd = f->m->desc.hp.n_embd;
    if (qr_cuda_gather_rows(f->out_rows, f->h, ix(f, IX_OUT), n_out, n_embd, f->s, err) != QR_OK) return QR_ERR;
    QR_CUDA_TRY(cudaMemcpyAsync(f->h, f->out_rows, (size_t)(n_out * n_embd) * sizeof(float), cudaMemcpyDeviceToDevice,
                                f->s),
                err);
    return QR_OK;
}

/* out_rows already holds rmsnorm(x) * output_norm (fused into the last residual add). */
int output(qr_cuda_forward *f, int64_t n_out, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    const int64_t n_embd = d->hp.n_embd, n_vocab = d->hp.n_vocab;
    if (n_out == 0) return QR_OK;
    if (observe(f, -1, "result_norm", f->out_rows, n_out, n_embd, err) != QR_OK) return QR_ERR;
    if (matmul_same_x(f, output_matrix(f), f->output_bias, f->out_rows, n_out, f->logits, err) != QR_OK) return QR_ERR;
    if (d->final_softcap != 0.0f && qr_cuda_softcap(f->logits, d->final_softcap, n_out * n_vocab, f->s, err) != QR_OK)
        return QR_ERR;
    return observe(f, -1, "logits", f->logits, n_out, n_vocab, err);
}

/* -ngl 0: the CPU ran every layer; the output norm of the wanted rows is left (into
 * out_rows, where the last residual add would have fused it). */
int norm_outputs(qr_cuda_forward *f, int64_t R, int64_t n_out, qr_error *err) {
    const int64_t n_embd = f->m->desc.hp.n_embd;
    if (n_out == 0) return QR_OK;
    const float *rows = f->x;
    if (n_out != R) {
        if (qr_cuda_gather_rows(f->h, f->x, ix(f, IX_OUT), n_out, n_embd, f->s, err) != QR_OK) return QR_ERR;
        rows = f->h;
    }
    return norm_for(f, rows, NULL, NULL, f->output_norm, n_out, f->out_rows, output_matrix(f), err);
}

int run_layers(qr_cuda_forward *f, const qr_kv_cache *kv, int64_t R, int64_t n_out, qr_error *err) {
    const qr_descriptor *d = &f->m->desc;
    f->xr_vt = QR_TYPE_COUNT; /* nothing in xr is this pass's (matmul_same_x) */
    if (f->layer_first == 0) { /* else x holds the CPU layers' output, uploaded by run_batch */
        if (qr_cuda_get_rows(f->tok_embd, ix(f, IX_TOK), R, d->embd_scale, f->x, f->s, err) != QR_OK) return QR_ERR;
        if (observe(f, -1, "embd", f->x, R, d->hp.n_embd, err) != QR_OK) return QR_ERR;
    }
    int64_t rows = R;
    bool normed = false;
    if (f->layer_first == d->hp.n_layer) {
        if (norm_outputs(f, R, n_out, err) != QR_OK) return QR_ERR;
        rows = n_out;
    }
    for (uint32_t il = f->layer_first; il < d->hp.n_layer; il++) {
        const bool last = il == d->hp.n_layer - 1;
        /* The last layer drops the rows without logits between its two blocks; the norm
         * can be fused across that point only when no row is dropped. */
        const bool fuse = !last || n_out == R;
        if (attention_block(f, kv, il, R, normed, fuse, err) != QR_OK) return qr_fail_prefix(err, "layer %u: ", il);
        if (last) {
            if (compact_outputs(f, R, n_out, err) != QR_OK) return QR_ERR;
            rows = n_out;
        }
        const float *next_norm = last ? f->output_norm : f->L[il + 1].attn_norm;
        float *next_out = last ? f->out_rows : f->cur;
        const qr_cuda_matrix *next = last ? output_matrix(f) : first_attn_matrix(&f->L[il + 1]);
        if (rows > 0 && ffn_block(f, il, rows, fuse, next_norm, next_out, next, err) != QR_OK)
            return qr_fail_prefix(err, "layer %u: ", il);
        normed = true;
    }
    return output(f, rows, err);
}

/* ---- Batch indices ------------------------------------------------------------------------------- */

/* Fills the staging buffers for batch b (as forward.c's store_kv and build_cells read the
 * KV cache) and copies them to the device; returns the number of rows wanting logits. */
int upload_indices(qr_cuda_forward *f, const qr_kv_cache *kv, const qr_fwd_batch *b, int64_t *n_out, qr_error *err) {
    const int64_t B = f->max_batch, R = b->n_rows;
    int32_t *h = f->ix_host;
    int64_t *off = f->off_host;
    *n_out = 0;
    int64_t n_cells[2] = {0, 0};
    const int32_t rep[2] = {f->layer_full, f->layer_swa};
    f->prompt_runs = true;
    for (int64_t r = 1; r < R; r++)
        if (r % QR_CUDA_ATTN_PREFILL_ROWS != 0 && (b->seq[r] != b->seq[r - 1] || b->pos[r] != b->pos[r - 1] + 1)) f->prompt_runs = false;
    const int64_t n_swa = qr_kv_n_swa(kv);
    for (int64_t r = 0; r < R; r++) {
        h[IX_TOK * B + r] = b->tokens[r];
        h[IX_POS * B + r] = b->pos[r];
        const bool want = b->want_logits ? b->want_logits[r] != 0 : r == R - 1;
        if (want) h[IX_OUT * B + (*n_out)++] = (int32_t)r;
        for (int k = 0; k < 2; k++) {
            int32_t *list = h + ix_lists(f) + (int64_t)k * B * f->n_ctx;
            off[k * (B + 1) + r] = n_cells[k];
            if (rep[k] < 0) continue;
            const uint32_t il = (uint32_t)rep[k];
            h[(IX_CELL_FULL + k) * B + r] = qr_kv_cell(kv, il, b->seq[r], b->pos[r]);
            int64_t lo = k == 1 ? (int64_t)b->pos[r] - n_swa + 1 : 0;
            if (lo < 0) lo = 0;
            for (int64_t p = lo; p <= b->pos[r]; p++) list[n_cells[k]++] = qr_kv_cell(kv, il, b->seq[r], (int32_t)p);
        }
    }
    for (int k = 0; k < 2; k++) off[k * (B + 1) + R] = n_cells[k];
    QR_CUDA_TRY(cudaMemcpyAsync(f->ix_dev, h, (size_t)ix_lists(f) * sizeof(int32_t), cudaMemcpyHostToDevice, f->s), err);
    QR_CUDA_TRY(cudaMemcpyAsync(f->off_dev, off, (size_t)(2 * (B + 1)) * sizeof(int64_t), cudaMemcpyHostToDevice, f->s),
                err);
    for (int k = 0; k < 2; k++) {
        if (n_cells[k] == 0) continue;
        const int64_t at = ix_lists(f) + (int64_t)k * B * f->n_ctx;
        QR_CUDA_TRY(cudaMemcpyAsync(f->ix_dev + at, h + at, (size_t)n_cells[k] * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, f->s),
                    err);
    }
    return QR_OK;
}

/* A decode step replays a graph captured on the first step of its shape: the kernels read
 * tokens, positions and cell lists from fixed device buffers, so only those uploads change
 * from step to step. A step qualifies when every row wants logits, there is no observer,
 * and its kernels depend on its row count alone: at most QR_CUDA_GEMV_MAX_COLS rows (the
 * GEMV and the flash-decoding attention, whatever the batch holds), or any count up to
 * QR_CUDA_GRAPH_MAX_ROWS when batch invariant (the GEMV in groups, never cuBLAS or the
 * prompt attention): a server's decode steps of 32 streams launch ~700 kernels. */
bool graph_step(const qr_cuda_forward *f, int64_t R, int64_t n_out) {
    return f->use_graphs && !f->observer && n_out == R && R <= QR_CUDA_GRAPH_MAX_ROWS &&
           (R <= QR_CUDA_GEMV_MAX_COLS || f->batch_invariant);
}

int run_graph(qr_cuda_forward *f, const qr_kv_cache *kv, int64_t R, qr_error *err) {
    cudaGraphExec_t *slot = &f->graphs[f->batch_invariant ? 1 : 0][R];
    if (!*slot) {
        QR_CUDA_TRY(cudaStreamBeginCapture(f->s, cudaStreamCaptureModeThreadLocal), err);
        const int rc = run_layers(f, kv, R, R, err);
        cudaGraph_t g = NULL;
        const cudaError_t s = cudaStreamEndCapture(f->s, &g);
        if (rc != QR_OK) {
            if (g) cudaGraphDestroy(g);
            return QR_ERR;
        }
        if (s != cudaSuccess) return qr_fail(err, "CUDA forward: capturing the decode graph: %s", cudaGetErrorString(s));
        const cudaError_t si = cudaGraphInstantiate(slot, g, 0);
        cudaGraphDestroy(g);
        if (si != cudaSuccess) {
            *slot = NULL;
            return qr_fail(err, "CUDA forward: instantiating the decode graph: %s", cudaGetErrorString(si));
        }
    }
    QR_CUDA_TRY(cudaGraphLaunch(*slot, f->s), err);
    return QR_OK;
}

/* Downloads the step's outputs: the greedy tokens when a row asks for QR_FWD_WANT_ARGMAX,
 * and the logits of the other rows with an output, in runs of consecutive rows (the
 * output rows are compacted at the front of f->logits, in row order). */
int download_outputs(qr_cuda_forward *f, const qr_fwd_batch *b, int64_t n_out, float *logits, int32_t *argmax,
                     qr_error *err) {
    const int64_t n_vocab = f->m->desc.hp.n_vocab;
    int64_t j = 0, run0 = -1;
    bool any_argmax = false;
    for (int64_t r = 0; r <= b->n_rows; r++) {
        const int8_t want = r == b->n_rows ? 0 : b->want_logits ? b->want_logits[r] : (int8_t)(r == b->n_rows - 1);
        const bool full = want != 0 && want != QR_FWD_WANT_ARGMAX;
        if (!full && run0 >= 0 && logits) { /* a run of logits rows ends before j */
            QR_CUDA_TRY(cudaMemcpyAsync(logits + run0 * n_vocab, f->logits + run0 * n_vocab,
                                        (size_t)((j - run0) * n_vocab) * sizeof(float), cudaMemcpyDeviceToHost, f->s),
                        err);
        }
        if (!full) run0 = -1;
        else if (run0 < 0) run0 = j;
        any_argmax |= want == QR_FWD_WANT_ARGMAX;
        j += want != 0;
    }
    if (any_argmax && n_out > 0) {
        if (!argmax) return qr_fail(err, "CUDA forward: rows ask for their greedy token but no argmax buffer was given");
        if (qr_cuda_argmax_rows(f->logits, n_out, n_vocab, f->argmax, f->s, err) != QR_OK) return QR_ERR;
        QR_CUDA_TRY(cudaMemcpyAsync(argmax, f->argmax, (size_t)n_out * sizeof(int32_t), cudaMemcpyDeviceToHost, f->s),
                    err);
    }
    return QR_OK;
}

/* hidden: the rows' input to layer_first from the CPU (NULL when the embedding is here). */
int run_batch(qr_cuda_forward *f, const qr_kv_cache *kv, const qr_fwd_batch *b, const float *hidden, float *logits,
              int32_t *argmax, qr_error *err) {
    int64_t n_out = 0;
    if (upload_indices(f, kv, b, &n_out, err) != QR_OK) return QR_ERR;
    if (hidden) {
        const size_t n = (size_t)b->n_rows * (size_t)f->m->desc.hp.n_embd;
        QR_CUDA_TRY(cudaMemcpyAsync(f->x, hidden, n * sizeof(float), cudaMemcpyHostToDevice, f->s), err);
    }
    const int rc = graph_step(f, b->n_rows, n_out) ? run_graph(f, kv, b->n_rows, err)
                                                   : run_layers(f, kv, b->n_rows, n_out, err);
    if (rc != QR_OK || download_outputs(f, b, n_out, logits, argmax, err) != QR_OK) return QR_ERR;
    QR_CUDA_TRY(cudaStreamSynchronize(f->s), err);
    return QR_OK;
}

int check_run(const qr_cuda_forward *f, const qr_kv_cache *kv, const qr_fwd_batch *b, qr_error *err) {
    if (qr_forward_check_batch(f->m, f->max_batch, b, err) != QR_OK) return QR_ERR;
    if (qr_kv_max_batch(kv) < b->n_rows) return qr_fail(err, "batch larger than the KV cache's max_batch");
    if (qr_kv_n_ctx(kv) > f->n_ctx) return qr_fail(err, "KV cache context exceeds the forward workspace");
    return QR_OK;
}

} // namespace

extern "C" int qr_cuda_forward_run_last(qr_cuda_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b,
                                        const float *hidden, bool batch_invariant, float *logits, int32_t *argmax,
                                        qr_error *err) {
    if (f->layer_first == 0) return qr_fail(err, "CUDA forward: every layer is here: use qr_cuda_forward_run");
    if (check_run(f, kv, b, err) != QR_OK) return QR_ERR;
    f->batch_invariant = batch_invariant;
    if (flush_copies(f, err) != QR_OK) return QR_ERR;
    return run_batch(f, kv, b, hidden, logits, argmax, err);
}

extern "C" int qr_cuda_forward_run(qr_cuda_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, bool batch_invariant,
                                   float *logits, int32_t *argmax, qr_error *err) {
    if (f->layer_first > 0) return qr_fail(err, "CUDA forward: layers before %u are not here", f->layer_first);
    if (check_run(f, kv, b, err) != QR_OK) return QR_ERR;
    if (qr_forward_append_rows(kv, b, f->saved_len, err) != QR_OK) return QR_ERR;
    f->batch_invariant = batch_invariant;
    /* Appending may have copied shared pages (copy on write): the device repeats those
     * copies before the pass stores into them. */
    if (flush_copies(f, err) != QR_OK || run_batch(f, kv, b, NULL, logits, argmax, err) != QR_OK) {
        /* As forward.c: a failed pass drops the rows it appended. */
        for (int32_t r = b->n_rows - 1; r >= 0; r--) qr_kv_seq_truncate(kv, b->seq[r], f->saved_len[r], NULL);
        return QR_ERR;
    }
    return QR_OK;
}
