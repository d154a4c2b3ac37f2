/* The scheduler: one thread that owns the engine context and runs continuous batching.
 *
 * Every step it (1) drops cancelled jobs, freeing their KV pages, (2) admits queued jobs
 * into free sequence slots, reusing the longest cached prompt prefix (its own slot's, or
 * another slot's pages shared through qr_ctx_seq_copy), (3) builds one batch with a decode
 * row for every generating sequence plus prompt chunks of the sequences still prefilling,
 * up to n_batch rows, (4) runs qr_decode once, and (5) samples each sequence's next token
 * and hands the text to its job. The context is batch-invariant, so a sequence's tokens do
 * not depend on what else shares its batches. */
#ifndef QS_SCHEDULER_H
#define QS_SCHEDULER_H

#include <stdint.h>

#include "core/error.h"
#include "quarrel.h"
#include "server/job.h"
#include "server/metrics.h"

typedef struct qs_scheduler qs_scheduler;

typedef struct qs_scheduler_params {
    int32_t n_slots;   /* sequences decoded together (--parallel) */
    int32_t n_batch;   /* rows per forward pass (decode rows + prompt chunk) */
    int32_t max_queue; /* jobs waiting for a slot before submissions are refused */
    int32_t n_sample_threads; /* threads sampling the step's rows (1: the scheduler alone) */
} qs_scheduler_params;

/* ctx must have n_seq_max >= n_slots and n_batch >= params.n_batch; the scheduler uses
 * it from its own thread only. */
int qs_scheduler_start(qr_model *m, qr_ctx *ctx, const qs_scheduler_params *p, qs_metrics *metrics,
                       qs_scheduler **out, qr_error *err);
/* Fails every unfinished job and joins the thread; later submissions are refused. */
void qs_scheduler_stop(qs_scheduler *s);
/* Frees a stopped scheduler (once no HTTP thread can reach it). */
void qs_scheduler_free(qs_scheduler *s);

/* Queues a job (taking a reference): 0, or -1 when the queue is full. */
int qs_scheduler_submit(qs_scheduler *s, qs_job *j);
/* Wakes the scheduler after a job's cancel flag was set. */
void qs_scheduler_poke(qs_scheduler *s);

#endif
