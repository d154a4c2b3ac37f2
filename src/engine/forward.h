/* The forward pass: one batch of (token, position, sequence) rows through every layer,
 * written once against the backend op table and driven by the model's descriptor.
 *
 * Each row's arithmetic is independent of the other rows (batch-invariant): the same
 * token at the same position of the same history gives bit-identical logits whether it
 * is decoded alone or among other rows. */
#ifndef QR_ENGINE_FORWARD_H
#define QR_ENGINE_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/kv_cache.h"
#include "model/model.h"

typedef struct qr_fwd_batch {
    int32_t n_rows;
    const int32_t *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *want_logits; /* NULL = only the last row; QR_FWD_WANT_ARGMAX: see below */
} qr_fwd_batch;

/* want_logits[r] == QR_FWD_WANT_ARGMAX (quarrel.h's QR_OUTPUT_ARGMAX): the row's greedy
 * token is all the caller reads. The CPU pass computes its logits as for any other value
 * != 0; the CUDA pass downloads only the token (qr_cuda_forward_run). */
#define QR_FWD_WANT_ARGMAX 2

/* Called after every op with its output rows; layer is -1 for the embedding, final norm
 * and logits. Return nonzero to stop the pass (it then fails with a message naming the
 * layer and op). */
typedef int (*qr_fwd_observer)(void *user, int32_t layer, const char *op, const float *data,
                               int64_t n_rows, int64_t n_cols);

typedef struct qr_forward qr_forward;

/* Workspace for batches of up to max_batch rows over a KV cache of n_ctx positions. */
int qr_forward_create(const qr_model *m, qr_backend *be, int32_t max_batch, int32_t n_ctx,
                      qr_forward **out, qr_error *err);
void qr_forward_free(qr_forward *f);
void qr_forward_set_observer(qr_forward *f, qr_fwd_observer fn, void *user);

/* Runs the batch, storing K/V in kv, and writes n_vocab logits for each row that wants
 * them, in row order, to logits (caller-sized: rows wanted x n_vocab). Invalid rows
 * (token out of range, bad sequence id, position gap or past the context) fail before
 * anything is computed and leave kv as it was. */
int qr_forward_run(qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, float *logits,
                   qr_error *err);

/* The CPU half of a pass split between devices (-ngl, src/engine/api.c): the embedding
 * and layers 0 .. n_layers-1 of every row, whose hidden states (n_embd floats a row, in
 * row order, before any output norm) go to hidden (caller-sized: rows x n_embd); the
 * other device runs the remaining layers and the output. The rows must already be in kv
 * (qr_forward_append_rows: the caller appends them once for both halves, and drops them
 * when either half fails). */
int qr_forward_run_first(qr_forward *f, qr_kv_cache *kv, const qr_fwd_batch *b, uint32_t n_layers, float *hidden,
                         qr_error *err);

/* The batch checks and KV bookkeeping of qr_forward_run, shared with the CUDA forward
 * pass (src/backend/cuda/cuda_forward.h). check_batch: 1..max_batch rows, tokens in the
 * vocabulary. append_rows: records every row's (sequence, position) in kv, or none
 * (saved_len, n_rows entries, receives each row's sequence length before). */
int qr_forward_check_batch(const qr_model *m, int32_t max_batch, const qr_fwd_batch *b, qr_error *err);
int qr_forward_append_rows(qr_kv_cache *kv, const qr_fwd_batch *b, int32_t *saved_len, qr_error *err);

#endif
