/* The forward pass on one CUDA device: src/engine/forward.c step by step, with every
 * tensor on the device (docs/cuda.md, docs/architecture.md say why it is a second driver
 * of the same dataflow rather than a second op table).
 *
 * Weights are uploaded once, in their GGUF block formats; the KV cache's cells live on the
 * device (F16 or F32, as the qr_kv_cache says) while the qr_kv_cache keeps the
 * bookkeeping (sequences, pages, sliding-window rings) on the host. A step uploads the
 * batch's tokens, positions and cell lists, queues every kernel, and downloads the wanted
 * logits: one host synchronization per call. Single-row steps (decode) are captured once
 * into a CUDA graph and replayed. */
#ifndef QR_BACKEND_CUDA_FORWARD_H
#define QR_BACKEND_CUDA_FORWARD_H

#include <stdint.h>

#include "core/error.h"
#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "model/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qr_cuda_forward qr_cuda_forward;

/* Largest decode step (rows) replayed from a CUDA graph (cuda_forward.cu, run_graph). */
#define QR_CUDA_GRAPH_MAX_ROWS 64

/* Uploads m's weights and allocates device buffers for batches of up to max_batch rows
 * over kv (whose cell arrays it mirrors on the device). Fails with a message when there
 * is no device, memory runs out or a weight type is unsupported. It registers kv's copy
 * hook (qr_kv_set_copy_hook), so the cell copies of prefix sharing (copy-on-write pages,
 * sliding-window cells) are repeated on the device; kv must outlive f. */
/* layer_first > 0 (-ngl): layers 0 .. layer_first-1 and the token embedding stay on the
 * CPU (neither uploaded nor given device cells); this forward runs the others and the
 * output, from the hidden states qr_cuda_forward_run_last receives. */
int qr_cuda_forward_create(const qr_model *m, qr_kv_cache *kv, int32_t max_batch, int32_t n_ctx,
                           uint32_t layer_first, qr_cuda_forward **out, qr_error *err);
void qr_cuda_forward_free(qr_cuda_forward *f);
/* With an observer every op's output is downloaded and handed to it (slow: for audits). */
void qr_cuda_forward_set_observer(qr_cuda_forward *f, qr_fwd_observer fn, void *user);
/* Queues on the device the cell copies kv reported since the last call (they are
 * batched: contiguous copies merge into one cudaMemcpyAsync per layer); qr_cuda_forward_run
 * does the same before its kernels. QR_ERR when a copy could not be queued: the device
 * cells then no longer match the cache, and every later run fails with the same message. */
int qr_cuda_forward_sync_kv(qr_cuda_forward *f, qr_error *err);
/* As qr_forward_run. batch_invariant: every matrix product uses the row-by-row GEMV,
 * so a row's logits never depend on the other rows. Rows whose want_logits is
 * QR_OUTPUT_ARGMAX (quarrel.h) download only their greedy token, into argmax[j] for the
 * j-th row with an output (qr_cuda_argmax_rows' codes; other entries are left alone), and
 * leave their logits slot alone. */
int qr_cuda_forward_run(qr_cuda_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, bool batch_invariant,
                        float *logits, int32_t *argmax, qr_error *err);
/* The GPU half of a split pass (layer_first > 0): uploads hidden, the rows' output of
 * layer layer_first-1 (n_embd floats a row, as qr_forward_run_first writes them), runs the
 * remaining layers and the output, and writes the wanted outputs as qr_cuda_forward_run. The
 * rows must already be in kv (the caller appends them once for both halves and drops them
 * when either fails). */
int qr_cuda_forward_run_last(qr_cuda_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, const float *hidden,
                             bool batch_invariant, float *logits, int32_t *argmax, qr_error *err);

#ifdef __cplusplus
}
#endif

#endif
