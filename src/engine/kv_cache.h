/* The KV cache: keys and values of every layer, F16 by default (llama.cpp's default
 * type) or F32, addressed by (sequence, position).
 *
 * Full-attention layers share a pool of pages of `page_size` cells; each sequence has a
 * page table mapping position / page_size to a page, so sequences grow independently
 * and share prefix pages (qr_kv_seq_copy: reference counts, copy on write). Sliding-window layers keep, per sequence, a
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
    int32_t n_device_layers; /* the last n layers' cells live on a device (the CUDA forward
                                mirrors them there): no host memory for them, qr_kv_k/v
                                return NULL; 0 = every layer on the host */
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

/* Prefix sharing: empties dst, then makes it hold positions 0 .. n-1 of src by sharing
 * src's full-attention pages (reference counted; a page either sequence later writes
 * into is copied first) and copying the sliding-window ring cells dst still needs.
 * QR_ERR when n exceeds src's length or src's ring no longer holds the keys that dst's
 * next row would attend to. */
int qr_kv_seq_copy(qr_kv_cache *kv, int32_t src, int32_t dst, int32_t n, qr_error *err);

/* Called after every cell copy that prefix sharing makes (a copy-on-write page, sliding-
 * window cells of qr_kv_seq_copy), with the cell ranges of every layer of one kind (swa:
 * the rings, else the paged layers): a backend that mirrors the cells elsewhere (CUDA keeps
 * them on the device) repeats the copy there. NULL removes it. */
typedef void (*qr_kv_copy_hook)(void *user, bool swa, int64_t from_cell, int64_t to_cell, int64_t n_cells);
void qr_kv_set_copy_hook(qr_kv_cache *kv, qr_kv_copy_hook fn, void *user);

/* Page accounting: cells per page, pages in the pool, pages free, pages shared. */
int32_t qr_kv_page_size(const qr_kv_cache *kv);
int32_t qr_kv_n_pages(const qr_kv_cache *kv);
int32_t qr_kv_n_free_pages(const qr_kv_cache *kv);
int32_t qr_kv_n_shared_pages(const qr_kv_cache *kv);

/* The cell of (seq, pos) in layer il's arrays (pos must be held). */
int32_t qr_kv_cell(const qr_kv_cache *kv, uint32_t il, int32_t seq, int32_t pos);
/* Base of layer il's K / V cells (F16 or F32 elements); stride = elements per cell. NULL
 * for the layers kept on a device (qr_kv_params.n_device_layers). */
void *qr_kv_k(qr_kv_cache *kv, uint32_t il);
void *qr_kv_v(qr_kv_cache *kv, uint32_t il);
/* Cells of layer il's K and V arrays (what a device copy of them must hold). */
int64_t qr_kv_layer_n_cells(const qr_kv_cache *kv, uint32_t il);
int64_t qr_kv_stride_k(const qr_kv_cache *kv);
int64_t qr_kv_stride_v(const qr_kv_cache *kv);
bool qr_kv_layer_is_swa(const qr_kv_cache *kv, uint32_t il);
uint32_t qr_kv_n_swa(const qr_kv_cache *kv);

#endif
