/* The row-wise ops of the forward pass on the device (cuda_ops.cu): the CUDA counterparts
 * of the CPU backend's get_rows, rmsnorm, rope, attention and glu, plus the host-side
 * steps of src/engine/forward.c (residual and bias adds, Q scaling, soft-capping, the KV
 * store, row gathering) so that a whole step stays on the device.
 *
 * Every pointer is device memory, index arrays included; every op is queued on `stream`
 * and returns QR_ERR only for a bad launch. Each row is computed independently of the
 * other rows of its batch, so a row's result does not depend on the batch size. An op
 * with a `pdl` flag launches, when it is set, as a programmatic dependent of the kernel
 * before it (pdl.h: its launch overlaps that kernel's end; it waits before touching
 * memory). */
#ifndef QR_BACKEND_CUDA_OPS_H
#define QR_BACKEND_CUDA_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest head dimension of the attention kernel (Gemma 3 uses 256). */
#define QR_CUDA_ATTN_MAX_HEAD_DIM 256

/* out[r] = row ids[r] of w (dequantized exactly) times scale; n_in = w's row length. */
int qr_cuda_get_rows(const qr_cuda_matrix *w, const int32_t *ids, int64_t n_rows, float scale,
                     float *out, void *stream, qr_error *err);
/* y[r] = x[r] / rms(x[r]) * w (w may be NULL); y may alias x. */
int qr_cuda_rmsnorm(const float *x, const float *w, int64_t n_rows, int64_t dim, float eps, float *y,
                    void *stream, qr_error *err);
/* sum = a + b (rows of dim), then y = rmsnorm(sum) * w (w may be NULL); y must not alias
 * b or sum (it may alias a). The residual add of a block fused with the next block's norm. */
int qr_cuda_add_rmsnorm(const float *a, const float *b, float *sum, const float *w, int64_t n_rows, int64_t dim,
                        float eps, float *y, bool pdl, void *stream, qr_error *err);
/* qr_cuda_add_rmsnorm (b and sum NULL: qr_cuda_rmsnorm) that also writes each row of y
 * quantized for a product with weights of type wtype into act, as qr_cuda_quantize_act
 * would (gemv_q8.h's layout, the same bytes): the product then needs no quantization
 * launch. */
int qr_cuda_add_rmsnorm_quant(const float *a, const float *b, float *sum, const float *w, int64_t n_rows,
                              int64_t dim, float eps, float *y, qr_type wtype, void *act, bool pdl, void *stream,
                              qr_error *err);
/* dst[i] = a[i] + b[i]. */
int qr_cuda_add(float *dst, const float *a, const float *b, int64_t n, void *stream, qr_error *err);
/* y[r][i] += bias[i] for r < n_rows, i < dim. */
int qr_cuda_add_bias(float *y, const float *bias, int64_t n_rows, int64_t dim, void *stream,
                     qr_error *err);
/* x[i] *= s. */
int qr_cuda_scale(float *x, float s, int64_t n, void *stream, qr_error *err);
/* x[i] = tanh(x[i] / cap) * cap. */
int qr_cuda_softcap(float *x, float cap, int64_t n, void *stream, qr_error *err);
/* RoPE in place, as the CPU backend's rope op; pos and a->freq_factors on the device. */
int qr_cuda_rope(float *x, int64_t n_rows, int64_t n_head, int64_t head_dim, const int32_t *pos,
                 const qr_rope_args *a, void *stream, qr_error *err);
/* RoPE of q (in place, then times q_scale) and of k, with k and v written into cell[r]
 * of the caches: qr_cuda_rope twice, qr_cuda_scale and qr_cuda_store_kv in one launch
 * (k itself is left unrotated). q, k, v hold n_rows rows of their heads back to back. */
int qr_cuda_rope_store(float *q, const float *k, const float *v, int64_t n_rows, int n_head, int n_head_kv,
                       int head_dim_k, int head_dim_v, const int32_t *pos, const qr_rope_args *a, float q_scale,
                       const int32_t *cell, void *k_cache, void *v_cache, bool f32, bool pdl, void *stream,
                       qr_error *err);
/* Writes row r of k (sk floats) and v (sv floats) into cell cell[r] of the caches, as F16
 * (round to nearest even) or F32. */
int qr_cuda_store_kv(const float *k, const float *v, int64_t n_rows, int64_t sk, int64_t sv,
                     const int32_t *cell, void *k_cache, void *v_cache, bool f32, void *stream,
                     qr_error *err);
/* out[i] = act(gate[i]) * up[i] over n_rows rows of n (out may alias gate). */
int qr_cuda_glu(qr_glu_kind kind, const float *gate, const float *up, float *out, int64_t n, bool pdl,
                void *stream, qr_error *err);
/* qr_cuda_glu over n_rows rows of n, also writing each row quantized for a product with
 * weights of type wtype into act (as qr_cuda_add_rmsnorm_quant). */
int qr_cuda_glu_quant(qr_glu_kind kind, const float *gate, const float *up, float *out, int64_t n_rows, int64_t n,
                      qr_type wtype, void *act, bool pdl, void *stream, qr_error *err);
/* dst[i] = src[idx[i]] for i < n_rows rows of dim floats (dst must not alias src). */
int qr_cuda_gather_rows(float *dst, const float *src, const int32_t *idx, int64_t n_rows,
                        int64_t dim, void *stream, qr_error *err);

/* out[r] = the first index of the largest value of row r (n values; rows back to back):
 * the sampler's greedy choice. -1 when every value is -inf; QR_CUDA_ARGMAX_BAD(j) when
 * value j is NaN or +inf (the first such j). n < 2^30. */
#define QR_CUDA_ARGMAX_BAD(j) (-2 - (j))
int qr_cuda_argmax_rows(const float *x, int64_t n_rows, int64_t n, int32_t *out, void *stream, qr_error *err);

/* y = x rounded as the CPU backend rounds a matrix product's activations for weights
 * whose vec-dot type (qr_backend_vec_dot_type) is vt: Q8_0/Q8_1 and Q8_K blocks (the
 * values d * q they stand for), F16 or BF16. n must be whole blocks; y may alias x. */
int qr_cuda_round_activations(qr_type vt, const float *x, float *y, int64_t n, void *stream, qr_error *err);

/* Floats of partial results qr_cuda_attention needs for n_rows rows split n_split ways. */
int64_t qr_cuda_attention_scratch(int64_t n_rows, int64_t n_head, int64_t head_dim_v, int n_split);
/* Attention as the backend op (qr_attn_args; every pointer on the device, cells_off too;
 * `tiled` is ignored): each row's cell list is cut into n_split contiguous chunks, each
 * chunk reduced with an online softmax in F32 (flash decoding), and the chunks merged by
 * the last CTA of each (row, head) to finish, in the same launch. counters: n_rows *
 * n_head zeroed words (each call leaves them zero again). n_split (1..64) must not depend
 * on the batch for results to be batch invariant. */
int qr_cuda_attention(const qr_attn_args *a, int n_split, float *scratch, unsigned *counters, bool pdl,
                      void *stream, qr_error *err);

/* Attention of a prompt batch on the tensor cores (attn_prefill.cu): as qr_cuda_attention,
 * for batches whose rows come in runs of QR_CUDA_ATTN_PREFILL_ROWS (the last may be shorter) that are each
 * one sequence at consecutive positions, row r's cells being the positions
 * pos[r] - len_r + 1 .. pos[r] in order; pos[r] on the device. Sums in another order than
 * qr_cuda_attention, so not for batch-invariant steps. supported: F16 cache, K and V
 * head dims equal and 64, 128 or 256. */
#define QR_CUDA_ATTN_PREFILL_ROWS 64
bool qr_cuda_attention_prefill_supported(const qr_attn_args *a);
int qr_cuda_attention_prefill(const qr_attn_args *a, const int32_t *pos, void *stream, qr_error *err);

/* Matrix products of prompt batches through cuBLAS (cuda_gemm.cu), loaded at run time:
 * create hands back NULL (and QR_OK) where libcublas is absent. run: y[r] = W x[r] for
 * r < n_rows, W dequantized exactly to F16 (BF16 weights: BF16), x rounded to the same
 * type, sums in F32 on the tensor cores. */
typedef struct qr_cuda_gemm qr_cuda_gemm;
int qr_cuda_gemm_create(qr_cuda_gemm **out, qr_error *err);
void qr_cuda_gemm_free(qr_cuda_gemm *g);
bool qr_cuda_gemm_supported(const qr_cuda_gemm *g, const qr_cuda_matrix *w);
int qr_cuda_gemm_run(qr_cuda_gemm *g, const qr_cuda_matrix *w, const float *x, int64_t n_rows, float *y,
                     void *stream, qr_error *err);

#ifdef __cplusplus
}
#endif

#endif
