/* The priority queue that SPM and BPE merging share: candidate merges of two adjacent
 * symbols, popped highest priority first and, on ties, leftmost first (both llama.cpp
 * tokenizers break ties that way). SPM's priority is the merged token's score; BPE's is
 * the negated merge rank (ranks below 2^24 are exact in a float). */
#ifndef QR_TOKENIZER_MERGE_QUEUE_H
#define QR_TOKENIZER_MERGE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct qr_merge {
    float priority;
    int32_t left, right; /* symbol indices */
    int32_t size;        /* bytes of the merged text, to detect stale entries */
} qr_merge;

typedef struct qr_merge_queue {
    qr_merge *v;
    size_t n, cap;
} qr_merge_queue;

/* Returns QR_OK, or QR_ERR when out of memory. */
int qr_merge_queue_push(qr_merge_queue *q, qr_merge m);
/* The queue must not be empty. */
qr_merge qr_merge_queue_pop(qr_merge_queue *q);
void qr_merge_queue_free(qr_merge_queue *q);

#endif
