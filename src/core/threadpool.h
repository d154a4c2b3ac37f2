/* A small persistent thread pool with one operation: a parallel for over [0, n).
 *
 * The threads are created once and sleep between jobs, so a parallel_for costs a wake-up,
 * not a thread creation: the CPU engine calls it hundreds of times per token. Workers spin
 * briefly after a job before sleeping, so back-to-back jobs do not pay a futex round trip.
 *
 * The calling thread takes part in every job (as thread 0), so a pool of n threads starts
 * n - 1 workers; a pool of 1 thread runs everything inline. The range is cut into chunks
 * of `grain` indices handed out dynamically; which thread runs which chunk varies between
 * runs, so a job's result must not depend on it (per-thread scratch indexed by thread_id
 * is fine). One caller at a time: parallel_for is not reentrant and must not be called
 * from inside a job. */
#ifndef QR_CORE_THREADPOOL_H
#define QR_CORE_THREADPOOL_H

#include <stdint.h>

#include "core/error.h"

typedef struct qr_threadpool qr_threadpool;

/* Runs indices [begin, end) of the job; thread_id is in [0, n_threads). */
typedef void (*qr_parallel_fn)(void *ctx, int64_t begin, int64_t end, int thread_id);

/* n_threads >= 1 (values above 1024 are rejected). */
int qr_threadpool_create(int n_threads, qr_threadpool **out, qr_error *err);
/* Joins the workers; NULL is a no-op. */
void qr_threadpool_destroy(qr_threadpool *pool);
int qr_threadpool_n_threads(const qr_threadpool *pool);

/* Calls fn over [0, n) in chunks of at most `grain` (>= 1; smaller values are taken as 1)
 * and returns when every chunk has run. */
void qr_threadpool_parallel_for(qr_threadpool *pool, int64_t n, int64_t grain, qr_parallel_fn fn,
                                void *ctx);

/* Pins the calling thread to the first allowed CPU and worker i to the (i+1)-th, wrapping
 * around (only when asked: QUARREL_PIN_THREADS=1 for the CPU backend). */
int qr_threadpool_pin(qr_threadpool *pool, qr_error *err);

/* The number of online CPUs (at least 1): the default pool size. */
int qr_threadpool_default_threads(void);

#endif
