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

/* Uploads m's weights and allocates device buffers for batches of up to max_batch rows
 * over kv (whose cell arrays it mirrors on the device). Fails with a message when there
 * is no device, memory runs out or a weight type is unsupported. */
int qr_cuda_forward_create(const qr_model *m, const qr_kv_cache *kv, int32_t max_batch, int32_t n_ctx,
                           qr_cuda_forward **out, qr_error *err);
void qr_cuda_forward_free(qr_cuda_forward *f);
/* With an observer every op's output is downloaded and handed to it (slow: for audits). */
void qr_cuda_forward_set_observer(qr_cuda_forward *f, qr_fwd_observer fn, void *user);
/* As qr_forward_run. batch_invariant: every matrix product uses the row-by-row GEMV,
 * so a row's logits never depend on the other rows. */
int qr_cuda_forward_run(qr_cuda_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, bool batch_invariant,
                        float *logits, qr_error *err);

#ifdef __cplusplus
}
#endif

#endif
