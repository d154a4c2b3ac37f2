#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QR_CPU_RELAX() _mm_pause()
#else
#define QR_CPU_RELAX() ((void)0)
#endif

/* Iterations a worker spins on the job counter before it sleeps (tens of microseconds):
 * long enough to catch the next op of a forward pass, short enough not to burn a core. */
#define SPIN_ITERATIONS 2000

struct qr_threadpool {
    int n_threads;
    pthread_t *threads;

    pthread_mutex_t mutex;
    pthread_cond_t work_cv; /* generation changed (new job or stop) */
    pthread_cond_t done_cv; /* pending reached zero */

    /* A job is published by bumping `generation` after the fields below are set; workers
     * read them only after seeing the new generation (sequentially consistent atomics). */
    atomic_uint_fast64_t generation;
    atomic_bool stop;
    qr_parallel_fn fn;
    void *ctx;
    int64_t n;
    int64_t grain;
    atomic_int_fast64_t next; /* first index of the next unclaimed chunk */
    atomic_int pending;       /* workers that have not finished the current job */
};

typedef struct {
    qr_threadpool *pool;
    int thread_id;
} worker_arg;

static void run_chunks(qr_threadpool *p, int thread_id) {
    for (;;) {
        int64_t begin = atomic_fetch_add(&p->next, p->grain);
        if (begin >= p->n) return;
        int64_t end = begin + p->grain < p->n ? begin + p->grain : p->n;
        p->fn(p->ctx, begin, end, thread_id);
    }
}

/* Waits until the generation differs from `seen`: spin first, then sleep. */
static uint64_t wait_for_job(qr_threadpool *p, uint64_t seen) {
    for (int i = 0; i < SPIN_ITERATIONS; i++) {
        uint64_t g = atomic_load(&p->generation);
        if (g != seen) return g;
        QR_CPU_RELAX();
    }
    pthread_mutex_lock(&p->mutex);
    uint64_t g;
    while ((g = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->work_cv, &p->mutex);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    qr_threadpool *p = wa->pool;
    const int thread_id = wa->thread_id;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        run_chunks(p, thread_id);
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            /* Signal under the mutex so the caller cannot miss it between its check and
             * its wait. */
            pthread_mutex_lock(&p->mutex);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mutex);
        }
    }
}

static void publish(qr_threadpool *p) {
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mutex);
}

static void stop_workers(qr_threadpool *p, int n_started) {
    atomic_store(&p->stop, true);
    publish(p);
    for (int i = 0; i < n_started; i++) pthread_join(p->threads[i], NULL);
}

int qr_threadpool_create(int n_threads, qr_threadpool **out, qr_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) {
        return qr_fail(err, "thread pool: n_threads must be in [1, 1024], got %d", n_threads);
    }
    qr_threadpool *p = calloc(1, sizeof *p);
    if (!p) return qr_fail(err, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        qr_threadpool_destroy(p);
        return qr_fail(err, "thread pool: out of memory");
    }
    for (int i = 0; i < n_threads - 1; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i + 1};
        int rc = wa ? pthread_create(&p->threads[i], NULL, worker_main, wa) : -1;
        if (rc != 0) {
            free(wa);
            stop_workers(p, i);
            p->n_threads = 1; /* the workers are already joined */
            qr_threadpool_destroy(p);
            return qr_fail(err, "thread pool: cannot start thread %d of %d: %s", i + 1, n_threads,
                           rc > 0 ? strerror(rc) : "out of memory");
        }
    }
    *out = p;
    return QR_OK;
}

void qr_threadpool_destroy(qr_threadpool *p) {
    if (!p) return;
    if (p->n_threads > 1 && p->threads) stop_workers(p, p->n_threads - 1);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mutex);
    free(p->threads);
    free(p);
}

int qr_threadpool_n_threads(const qr_threadpool *p) { return p->n_threads; }

void qr_threadpool_parallel_for(qr_threadpool *p, int64_t n, int64_t grain, qr_parallel_fn fn,
                                void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (p->n_threads == 1 || n <= grain) {
        fn(ctx, 0, n, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    atomic_store(&p->next, 0);
    atomic_store(&p->pending, p->n_threads - 1);
    publish(p);
    run_chunks(p, 0);
    for (int i = 0; i < SPIN_ITERATIONS && atomic_load(&p->pending) != 0; i++) QR_CPU_RELAX();
    pthread_mutex_lock(&p->mutex);
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done_cv, &p->mutex);
    pthread_mutex_unlock(&p->mutex);
}

int qr_threadpool_pin(qr_threadpool *p, qr_error *err) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return qr_fail(err, "thread pool: cannot read the CPU set");
    int cpus[CPU_SETSIZE], n_cpus = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &allowed)) cpus[n_cpus++] = c;
    }
    if (n_cpus == 0) return qr_fail(err, "thread pool: no CPU to pin to");
    for (int i = 0; i < p->n_threads; i++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[i % n_cpus], &one);
        const pthread_t t = i == 0 ? pthread_self() : p->threads[i - 1];
        const int rc = pthread_setaffinity_np(t, sizeof one, &one);
        if (rc != 0) return qr_fail(err, "thread pool: cannot pin thread %d to CPU %d: %s", i, cpus[i % n_cpus], strerror(rc));
    }
    return QR_OK;
}

int qr_threadpool_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}
