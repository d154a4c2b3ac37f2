/* The KV cache: keys and values of every layer, F16 by default (llama.cpp's default
 * type) or F32, addressed by (sequence, position).
 *
 * Full-attention layers share a pool of pages of `page_size` cells; each sequence has a
 * page table mapping position / page_size to a page, so sequences grow independently
 * and a later server can share prefix pages. Sliding-window layers keep, per sequence, a
 * ring of window + max_batch cells (cell = pos mod ring): writing a batch of max_batch
 * rows never evicts a key that an earlier row of the same batch still attends to.
 *
 * Positions of a sequence are contiguous from 0: a row at position p requires p <= the
 * sequence's length; p < length first truncates the sequence to p. */
#ifndef QR_ENGINE_KV_CACHE_H
#define QR_ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "model/descriptor.h"

typedef struct qr_kv_params {
    int32_t n_ctx;      /* cells of full-attention pages in total (all sequences) and the
                           largest position + 1 of one sequence */
    int32_t n_seq_max;  /* sequence ids 0 .. n_seq_max-1 */
    int32_t max_batch;  /* most rows of one forward call */
    int32_t page_size;  /* cells per page (default 16 when 0) */
    bool f32;           /* F32 cells instead of F16 */
} qr_kv_params;

typedef struct qr_kv_cache qr_kv_cache;

int qr_kv_create(const qr_descriptor *d, const qr_kv_params *p, qr_kv_cache **out, qr_error *err);
void qr_kv_free(qr_kv_cache *kv);

bool qr_kv_is_f32(const qr_kv_cache *kv);
int32_t qr_kv_n_ctx(const qr_kv_cache *kv);
int32_t qr_kv_n_seq_max(const qr_kv_cache *kv);
int32_t qr_kv_max_batch(const qr_kv_cache *kv);
/* Number of positions held for seq (its next position). */
int32_t qr_kv_seq_len(const qr_kv_cache *kv, int32_t seq);

/* Makes room for position pos of seq (allocating a page, truncating when pos < length)
 * and records it; QR_ERR when pos leaves a gap, exceeds n_ctx, pages run out, or a
 * truncation would need sliding-window keys already overwritten. */
int qr_kv_append(qr_kv_cache *kv, int32_t seq, int32_t pos, qr_error *err);
/* Drops positions >= pos of seq (pos 0 empties it), freeing its pages. */
int qr_kv_seq_truncate(qr_kv_cache *kv, int32_t seq, int32_t pos, qr_error *err);

/* The cell of (seq, pos) in layer il's arrays (pos must be held). */
int32_t qr_kv_cell(const qr_kv_cache *kv, uint32_t il, int32_t seq, int32_t pos);
/* Base of layer il's K / V cells (F16 or F32 elements); stride = elements per cell. */
void *qr_kv_k(qr_kv_cache *kv, uint32_t il);
void *qr_kv_v(qr_kv_cache *kv, uint32_t il);
int64_t qr_kv_stride_k(const qr_kv_cache *kv);
int64_t qr_kv_stride_v(const qr_kv_cache *kv);
bool qr_kv_layer_is_swa(const qr_kv_cache *kv, uint32_t il);
uint32_t qr_kv_n_swa(const qr_kv_cache *kv);

#endif
